/* v8frames.c: name V8's JS frames from outside (v8frames.h, stacks.md): who a frame
 * is, read from V8's heap objects, and the interface. Where in its function it is
 * (the script offset, through bytecode or optimised code) is v8code.c's; the split
 * and what the two share: v8frames_int.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libuv.h"
#include "v8pos.h"
#include "proc.h"
#include "stacktab.h"
#include "v8frames.h"
#include "v8frames_int.h"

#define MAX_NAME 200
#define MAX_SOURCE (64u << 20)		/* longest script whose line ends we compute */
#define NAME_WINDOW 240			/* source bytes searched for a name before its start */
#define CACHE_SLOTS 4096

static const char *const knames[K_NK] = {
	[K_FP_FUNCTION] = "v8dbg_off_fp_function", [K_FP_CONTEXT] = "v8dbg_off_fp_context",
	[K_SMI_SHIFT] = "v8dbg_SmiShiftSize", [K_TAGGED_SIZE] = "v8dbg_TaggedSize",
	[K_MAP] = "v8dbg_class_HeapObject__map__Map", [K_INSTANCE_TYPE] = "v8dbg_class_Map__instance_type__uint16_t",
	[K_FIRST_NONSTRING] = "v8dbg_FirstNonstringType", [K_STR_ENC_MASK] = "v8dbg_StringEncodingMask",
	[K_STR_REP_MASK] = "v8dbg_StringRepresentationMask", [K_SEQ_TAG] = "v8dbg_SeqStringTag",
	[K_CONS_TAG] = "v8dbg_ConsStringTag", [K_ONEBYTE_TAG] = "v8dbg_OneByteStringTag",
	[K_SLICED_TAG] = "v8dbg_SlicedStringTag", [K_THIN_TAG] = "v8dbg_ThinStringTag",
	[K_EXT_TAG] = "v8dbg_ExternalStringTag", [K_STR_LENGTH] = "v8dbg_class_String__length__int32_t",
	[K_SEQ1_CHARS] = "v8dbg_class_SeqOneByteString__chars__char",
	[K_SEQ2_CHARS] = "v8dbg_class_SeqTwoByteString__chars__char",
	[K_CONS_FIRST] = "v8dbg_class_ConsString__first__*", [K_CONS_SECOND] = "v8dbg_class_ConsString__second__*",
	[K_SLICED_PARENT] = "v8dbg_class_SlicedString__parent__*",
	[K_SLICED_OFFSET] = "v8dbg_class_SlicedString__offset__*",
	[K_THIN_ACTUAL] = "v8dbg_class_ThinString__actual__*",
	[K_EXT_RESOURCE] = "v8dbg_class_ExternalString__resource__*",
	[K_JSFUNCTION_TYPE] = "v8dbg_type_JSFunction__JS_FUNCTION_TYPE",
	[K_FIRST_JSFUNCTION] = "v8dbg_FirstJSFunctionType", [K_LAST_JSFUNCTION] = "v8dbg_LastJSFunctionType",
	[K_JSF_SHARED] = "v8dbg_class_JSFunction__shared__*",
	[K_SFI_TYPE] = "v8dbg_type_SharedFunctionInfo__SHARED_FUNCTION_INFO_TYPE",
	[K_SFI_NAME] = "v8dbg_class_SharedFunctionInfo__name_or_scope_info__*",
	[K_SFI_SCRIPT] = "v8dbg_class_SharedFunctionInfo__script__*",
	[K_SFI_SCRIPT_OLD] = "v8dbg_class_SharedFunctionInfo__script_or_debug_info__*",
	[K_SCOPEINFO_TYPE] = "v8dbg_type_ScopeInfo__SCOPE_INFO_TYPE",
	[K_SI_FIRST_VARS] = "v8dbg_scopeinfo_idx_first_vars",
	[K_SI_NCONTEXTLOCALS] = "v8dbg_scopeinfo_idx_ncontextlocals",
	[K_SCRIPT_TYPE] = "v8dbg_type_Script__SCRIPT_TYPE", [K_SCRIPT_NAME] = "v8dbg_class_Script__name__*",
	[K_SCRIPT_LINE_ENDS] = "v8dbg_class_Script__line_ends__*",
	[K_SCRIPT_SOURCE] = "v8dbg_class_Script__source__*",
	[K_FIXED_ARRAY_TYPE] = "v8dbg_type_FixedArray__FIXED_ARRAY_TYPE",
	[K_FA_LENGTH] = "v8dbg_class_FixedArrayBase__length__SMI", [K_FA_DATA] = "v8dbg_class_FixedArray__data__uintptr_t",
	[K_V8_MAJOR] = "_ZN2v88internal7Version6major_E", [K_V8_MINOR] = "_ZN2v88internal7Version6minor_E",
	[K_V8_BUILD] = "_ZN2v88internal7Version6build_E", [K_V8_PATCH] = "_ZN2v88internal7Version6patch_E",
	[K_FP_BC_ARRAY] = "v8dbg_off_fp_bytecode_array", [K_FP_BC_OFFSET] = "v8dbg_off_fp_bytecode_offset",
	[K_BCA_TYPE] = "v8dbg_type_BytecodeArray__BYTECODE_ARRAY_TYPE",
	[K_BCA_DATA] = "v8dbg_class_BytecodeArray__data__uintptr_t",
	[K_BCA_LENGTH] = "v8dbg_class_BytecodeArray__length__SMI",
	[K_CODE_TYPE] = "v8dbg_type_Code__CODE_TYPE",
	[K_ISTREAM_TYPE] = "v8dbg_type_InstructionStream__INSTRUCTION_STREAM_TYPE",
	[K_ISTREAM_START] = "v8dbg_class_InstructionStream__instruction_start__uintptr_t",
	[K_CODE_START] = "v8dbg_class_Code__instruction_start__*", [K_CODE_SIZE] = "v8dbg_class_Code__instruction_size__int",
	[K_CODE_FLAGS] = "v8dbg_class_Code__flags__uint32_t", [K_KIND_MASK] = "v8dbg_CodeKindFieldMask",
	[K_KIND_SHIFT] = "v8dbg_CodeKindFieldShift", [K_KIND_BASELINE] = "v8dbg_CodeKindBaseline",
	[K_CODE_SPT] = "v8dbg_class_Code__source_position_table__*",
	[K_CODE_DD] = "v8dbg_class_Code__deoptimization_data__*",
	[K_DD_COUNT] = "v8dbg_DeoptimizationDataInlinedFunctionCountIndex",
	[K_DD_LIT] = "v8dbg_DeoptimizationDataLiteralArrayIndex",
	[K_DD_SFI] = "v8dbg_DeoptimizationDataSharedFunctionInfoIndex",
	[K_DD_WSFI] = "v8dbg_DeoptimizationDataWrappedSharedFunctionInfoIndex",
	[K_DD_IP] = "v8dbg_DeoptimizationDataInliningPositionsIndex",
	[K_BA_TYPE] = "v8dbg_type_ByteArray__BYTE_ARRAY_TYPE",
	[K_TBA_TYPE] = "v8dbg_type_TrustedByteArray__TRUSTED_BYTE_ARRAY_TYPE",
	[K_SFIW_TYPE] = "v8dbg_type_SharedFunctionInfoWrapper__SHARED_FUNCTION_INFO_WRAPPER_TYPE",
	[K_SFIW_SHARED] = "v8dbg_class_SharedFunctionInfoWrapper__shared_info__*",
};
/* May be absent (then 0, or a fallback below). */
static const int optional[] = { K_MAP, K_SEQ_TAG, K_FIRST_JSFUNCTION, K_LAST_JSFUNCTION, K_SFI_SCRIPT,
				K_SFI_SCRIPT_OLD, K_V8_PATCH, K_FP_BC_ARRAY, K_FP_BC_OFFSET, K_BCA_TYPE, K_BCA_DATA,
				K_BCA_LENGTH, K_CODE_TYPE, K_ISTREAM_TYPE, K_ISTREAM_START, K_CODE_START, K_CODE_SIZE,
				K_CODE_FLAGS, K_KIND_MASK, K_KIND_SHIFT, K_KIND_BASELINE, K_CODE_SPT, K_CODE_DD,
				K_DD_COUNT, K_DD_LIT, K_DD_SFI, K_DD_WSFI, K_DD_IP, K_BA_TYPE, K_TBA_TYPE, K_SFIW_TYPE,
				K_SFIW_SHARED };

struct script {
	uint64_t addr;		/* tagged */
	uint64_t source, name;	/* the fields when read: a changed one means another object */
	const char *file;
	uint32_t *ends;		/* line end positions, or NULL */
	uint32_t nends;
};

struct sfi {
	uint64_t addr;		/* tagged */
	uint64_t name_field, script_field;
	int64_t start, end;	/* the function's source range, -1 when unknown */
	struct ls_v8_frame f;
};

/* V8's typed frames (a Smi marker where a JS frame keeps its context), by name. */
static const char *const frametypes[] = {
	"EntryFrame", "ConstructEntryFrame", "ExitFrame", "BuiltinExitFrame", "InternalFrame", "ConstructFrame",
	"StubFrame", "BuiltinFrame", "IrregexpFrame", "NativeFrame", "BuiltinContinuationFrame",
	"JavaScriptBuiltinContinuationFrame", "TurbofanStubWithContextFrame", "FastConstructFrame", "ApiCallbackExitFrame",
	"ApiAccessorExitFrame", "WasmFrame", "WasmExitFrame", "WasmToJsFrame", "JsToWasmFrame", "CWasmEntryFrame",
};
_Static_assert(sizeof(frametypes) / sizeof(frametypes[0]) == NFRAMETYPES, "frametypes[] and NFRAMETYPES");

static const char *intern(struct ls_v8 *v, const char *s) { return ls_stacktab_str(v->strs, s); }

/* Copy chars [from, from + n) of V8 string t into out (one byte a char; UTF-16
 * units above 0x7e become '?'). Returns the chars copied, or -1 when t is not a
 * string this reader understands. */
static int64_t str_read(struct ls_v8 *v, uint64_t t, uint32_t from, uint32_t n, char *out, int depth)
{
	int type = type_of(v, t), ok = 1;
	int32_t len = 0;
	uint64_t o = t - HEAP_TAG, data;
	int rep, one;

	if (type < 0 || type >= v->k[K_FIRST_NONSTRING] || depth > 16)
		return -1;
	if (rd(v, o + (uint64_t)v->k[K_STR_LENGTH], &len, sizeof(len)) || len < 0)
		return -1;
	if (from >= (uint32_t)len)
		return 0;
	if (n > (uint32_t)len - from)
		n = (uint32_t)len - from;
	rep = type & (int)v->k[K_STR_REP_MASK];
	one = (type & (int)v->k[K_STR_ENC_MASK]) == v->k[K_ONEBYTE_TAG];
	if (rep == v->k[K_CONS_TAG]) {
		uint64_t a = rd64(v, o + (uint64_t)v->k[K_CONS_FIRST], &ok);
		uint64_t b = rd64(v, o + (uint64_t)v->k[K_CONS_SECOND], &ok);
		int32_t alen = 0;
		int64_t got = 0, r;

		if (!ok || type_of(v, a) < 0 || rd(v, a - HEAP_TAG + (uint64_t)v->k[K_STR_LENGTH], &alen, 4) || alen < 0)
			return -1;
		if (from < (uint32_t)alen) {
			r = str_read(v, a, from, n, out, depth + 1);
			if (r < 0)
				return -1;
			got = r;
		}
		if ((uint64_t)got < n) {
			uint32_t bfrom = from + (uint32_t)got - (uint32_t)alen;

			r = str_read(v, b, bfrom, n - (uint32_t)got, out + got, depth + 1);
			if (r < 0)
				return -1;
			got += r;
		}
		return got;
	}
	if (rep == v->k[K_SLICED_TAG]) {
		uint64_t parent = rd64(v, o + (uint64_t)v->k[K_SLICED_PARENT], &ok);
		uint64_t off = rd64(v, o + (uint64_t)v->k[K_SLICED_OFFSET], &ok);

		if (!ok || !is_smi(off))
			return -1;
		return str_read(v, parent, from + (uint32_t)smi(v, off), n, out, depth + 1);
	}
	if (rep == v->k[K_THIN_TAG]) {
		uint64_t actual = rd64(v, o + (uint64_t)v->k[K_THIN_ACTUAL], &ok);

		return ok ? str_read(v, actual, from, n, out, depth + 1) : -1;
	}
	if (rep == v->k[K_EXT_TAG]) {
		/* the cached data pointer follows the resource; uncached external strings
		 * (instance type bit 0x10) have none */
		if (type & 0x10)
			return -1;
		data = rd64(v, o + (uint64_t)v->k[K_EXT_RESOURCE] + 8, &ok);
		if (!ok || !data)
			return -1;
	} else if (rep == v->k[K_SEQ_TAG]) {
		data = o + (uint64_t)(one ? v->k[K_SEQ1_CHARS] : v->k[K_SEQ2_CHARS]);
	} else {
		return -1;
	}
	if (one)
		return rd(v, data + from, out, n) ? -1 : (int64_t)n;
	for (uint32_t i = 0; i < n; i += 256) {
		uint16_t u[256];
		uint32_t k = n - i < 256 ? n - i : 256;

		if (rd(v, data + 2ull * (from + i), u, 2ull * k))
			return -1;
		for (uint32_t j = 0; j < k; j++)
			out[i + j] = u[j] < 0x7f ? (char)u[j] : '?';
	}
	return n;
}

/* A short string (a name) as a C string in buf; 0, or -1. */
static int str_get(struct ls_v8 *v, uint64_t t, char *buf, size_t cap)
{
	int64_t n = str_read(v, t, 0, (uint32_t)cap - 1, buf, 0);

	if (n < 0)
		return -1;
	buf[n] = 0;
	for (int64_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20)
			return -1;
	return 0;
}

static int32_t str_len(struct ls_v8 *v, uint64_t t)
{
	int32_t len = -1;

	if (type_of(v, t) < 0 || rd(v, t - HEAP_TAG + (uint64_t)v->k[K_STR_LENGTH], &len, 4))
		return -1;
	return len;
}

static void script_free(struct script *s)
{
	free(s->ends);
	memset(s, 0, sizeof(*s));
}

/* Line ends from Script.line_ends when V8 computed them, else from the source. */
static void script_lines(struct ls_v8 *v, struct script *s, uint64_t o)
{
	int ok = 1;
	uint64_t le = rd64(v, o + (uint64_t)v->k[K_SCRIPT_LINE_ENDS], &ok);
	int32_t len;
	char *src;

	if (ok && type_of(v, le) == v->k[K_FIXED_ARRAY_TYPE]) {
		uint64_t n = rd64(v, le - HEAP_TAG + (uint64_t)v->k[K_FA_LENGTH], &ok);
		int64_t cnt = is_smi(n) ? smi(v, n) : -1;
		uint64_t *raw;

		if (ok && cnt > 0 && cnt < (1 << 24) && (raw = malloc((size_t)cnt * 8))) {
			s->ends = malloc((size_t)cnt * 4);
			if (s->ends && !rd(v, le - HEAP_TAG + (uint64_t)v->k[K_FA_DATA], raw, (size_t)cnt * 8)) {
				for (int64_t i = 0; i < cnt; i++)
					s->ends[i] = (uint32_t)smi(v, raw[i]);
				s->nends = (uint32_t)cnt;
			}
			free(raw);
			if (s->nends)
				return;
			free(s->ends);
			s->ends = NULL;
		}
	}
	len = str_len(v, s->source);
	if (len <= 0 || (uint32_t)len > MAX_SOURCE || !(src = malloc((size_t)len)))
		return;
	if (str_read(v, s->source, 0, (uint32_t)len, src, 0) == len) {
		uint32_t cnt = 0;

		for (int32_t i = 0; i < len; i++)
			cnt += src[i] == '\n';
		s->ends = malloc(((size_t)cnt + 1) * 4);
		if (s->ends) {
			for (int32_t i = 0; i < len; i++)
				if (src[i] == '\n')
					s->ends[s->nends++] = (uint32_t)i;
			s->ends[s->nends++] = (uint32_t)len;	/* the last line ends at the end */
		}
	}
	free(src);
}

static struct script *script_get(struct ls_v8 *v, uint64_t t)
{
	struct script *s = &v->scripts[(t >> 3) % CACHE_SLOTS];
	uint64_t o = t - HEAP_TAG, source, name;
	int ok = 1;
	char buf[512];

	source = rd64(v, o + (uint64_t)v->k[K_SCRIPT_SOURCE], &ok);
	name = rd64(v, o + (uint64_t)v->k[K_SCRIPT_NAME], &ok);
	if (!ok)
		return NULL;
	if (s->addr == t && s->source == source && s->name == name)
		return s;
	script_free(s);
	s->addr = t;
	s->source = source;
	s->name = name;
	if (!str_get(v, name, buf, sizeof(buf)) && buf[0])
		s->file = intern(v, buf);
	script_lines(v, s, o);
	return s;
}

static int is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
	       (unsigned char)c >= 0x80 || c == '?';
}

/* Strip trailing blanks and return the new end. */
static size_t trim(const char *t, size_t n)
{
	while (n && (t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\n' || t[n - 1] == '\r'))
		n--;
	return n;
}

/* If t[0, n) ends with the whole word w, the end without it; else n + 1. */
static size_t drop_word(const char *t, size_t n, const char *w)
{
	size_t wl = strlen(w);

	if (n < wl || memcmp(t + n - wl, w, wl) || (n > wl && is_ident(t[n - wl - 1])))
		return n + 1;
	return n - wl;
}

/* Whether t[0..n) holds "class W" followed by a non-identifier character. */
static int class_head(const char *t, size_t n, const char *w)
{
	size_t wl = strlen(w);

	for (size_t i = 0; i + 6 + wl < n; i++)
		if (!memcmp(t + i, "class ", 6) && (!i || !is_ident(t[i - 1])) && !memcmp(t + i + 6, w, wl) &&
		    !is_ident(t[i + 6 + wl]))
			return 1;
	return 0;
}

enum { SRC_NAMED, SRC_ANONYMOUS, SRC_OTHER, SRC_UNREADABLE };

/* How the source introduces the function starting at pos (its parameter list):
 * SRC_NAMED when the last word of name is what names it there ("function NAME(",
 * "NAME(" for a method, "NAME = (async) (function)" or "NAME: ..." for an
 * expression), SRC_ANONYMOUS when it is an argument or element ("f(() =>", ", function ("),
 * else SRC_OTHER. */
static int name_in_source(struct ls_v8 *v, const struct script *s, const char *name, uint32_t pos)
{
	const char *w = name, *p;
	char t[NAME_WINDOW + 1];
	uint32_t from = pos > NAME_WINDOW ? pos - NAME_WINDOW : 0;
	int64_t got;
	size_t n, k, wl;

	for (p = name; *p; p++)
		if (*p == ' ' || *p == '.')
			w = p + 1;
	wl = strlen(w);
	got = str_read(v, s->source, from, pos - from, t, 0);
	if (got < 0)
		return SRC_UNREADABLE;
	n = trim(t, (size_t)got);
	if (wl && (k = drop_word(t, n, w)) <= n)
		return SRC_NAMED;
	/* a class's constructor, named by its class: "class NAME ... constructor(" with
	 * the class's head in view */
	if (wl && drop_word(t, n, "constructor") <= n && class_head(t, n, w))
		return SRC_NAMED;
	/* "function" / "function*" / "async" between the name and the parameters */
	if (n && t[n - 1] == '*')
		n = trim(t, n - 1);
	if ((k = drop_word(t, n, "function")) <= n)
		n = trim(t, k);
	if ((k = drop_word(t, n, "async")) <= n)
		n = trim(t, k);
	if (n && (t[n - 1] == '(' || t[n - 1] == ',' || t[n - 1] == '['))
		return SRC_ANONYMOUS;
	if (n && (t[n - 1] == '=' || t[n - 1] == ':') && !(n > 1 && strchr("=!<>", t[n - 2]))) {
		n = trim(t, n - 1);
		if (wl && (k = drop_word(t, n, w)) <= n)
			return SRC_NAMED;
	}
	return SRC_OTHER;
}

static void line_of(const struct script *s, uint32_t pos, uint32_t *line, uint32_t *col)
{
	uint32_t lo = 0, hi = s->nends;

	*line = *col = 0;
	if (!s->ends)
		return;
	while (lo < hi) {	/* the first line whose end is at or after pos */
		uint32_t mid = lo + (hi - lo) / 2;

		if (s->ends[mid] < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= s->nends)
		return;
	*line = lo + 1;
	*col = pos - (lo ? s->ends[lo - 1] + 1 : 0) + 1;
}

/* Name, start and end position from a ScopeInfo. Its layout has no metadata past
 * the first slots: after the context locals, the first string is the function's
 * name and the first pair of ascending Smis its start and end (the same reading as
 * the OpenTelemetry profiler's); the caller checks the name against the source.
 * From V8 12.x (scopeinfo_idx_first_vars 5) the position pair comes first, just
 * before the context locals. The context locals are a name and a Smi each, the
 * names inline up to SI_INLINED_NAMES of them, else in one hash table (V8 10.0 on:
 * every Node of the matrix). */
#define SI_INLINED_NAMES 75	/* V8's kScopeInfoMaxInlinedLocalNamesSize */
#define SI_TAIL 20		/* slots read past the context locals */
#define SI_MAX_LOCALS 65536	/* more: not a ScopeInfo's count */
static void scope_info(struct ls_v8 *v, uint64_t t, char *name, size_t cap, int64_t *start, int64_t *end)
{
	uint64_t sl[24], w[SI_TAIL];
	int64_t ncl;
	uint64_t first = (uint64_t)v->k[K_SI_FIRST_VARS], prev = 1, tail;

	name[0] = 0;
	*start = *end = -1;
	if (first >= 24 || rd(v, t - HEAP_TAG + 8, sl, sizeof(sl)) || !is_smi(sl[v->k[K_SI_NCONTEXTLOCALS] & 15]))
		return;
	ncl = smi(v, sl[v->k[K_SI_NCONTEXTLOCALS] & 15]);
	if (ncl < 0 || ncl > SI_MAX_LOCALS)
		return;
	if (first >= 5 && is_smi(sl[first - 2]) && is_smi(sl[first - 1]) &&
	    smi(v, sl[first - 2]) >= 0 && smi(v, sl[first - 2]) < smi(v, sl[first - 1])) {
		*start = smi(v, sl[first - 2]);
		*end = smi(v, sl[first - 1]);
	}
	tail = first + (ncl < SI_INLINED_NAMES ? (uint64_t)ncl : 1) + (uint64_t)ncl;
	if (tail + SI_TAIL <= 24)
		memcpy(w, &sl[tail], sizeof(w));
	else if (rd(v, t - HEAP_TAG + 8 + tail * 8, w, sizeof(w)))
		return;
	for (uint64_t i = 0; i < SI_TAIL; i++) {
		uint64_t cur = w[i];

		if (!name[0] && is_heap(cur)) {
			int ty = type_of(v, cur);

			if (ty >= 0 && ty < v->k[K_FIRST_NONSTRING] && str_get(v, cur, name, cap))
				name[0] = 0;
		}
		if (*start < 0 && is_smi(cur) && is_smi(prev) && smi(v, prev) >= 0 && smi(v, prev) < smi(v, cur)) {
			*start = smi(v, prev);
			*end = smi(v, cur);
		}
		if (name[0] && *start >= 0)
			return;
		prev = cur;
	}
}

static void unknown(struct ls_v8 *v, uint64_t t, struct ls_v8_frame *out)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "[JS unknown 0x%llx]", (unsigned long long)t);
	memset(out, 0, sizeof(*out));
	out->function = intern(v, buf);
	if (!out->function)
		out->function = "[JS unknown]";
}

static void sfi_describe(struct ls_v8 *v, uint64_t t, uint64_t name_field, uint64_t script_field,
			 struct ls_v8_frame *out, int64_t *fstart, int64_t *fend)
{
	char name[MAX_NAME] = "";
	int64_t start = -1, end = -1;
	int nt = type_of(v, name_field), st = type_of(v, script_field);
	struct script *s = NULL;

	memset(out, 0, sizeof(*out));
	*fstart = *fend = -1;
	if (nt == v->k[K_SCOPEINFO_TYPE])
		scope_info(v, name_field, name, sizeof(name), &start, &end);
	else if (nt >= 0 && nt < v->k[K_FIRST_NONSTRING] && str_get(v, name_field, name, sizeof(name)))
		return unknown(v, t, out);
	*fstart = start;
	*fend = end;
	if (st == v->k[K_SCRIPT_TYPE])
		s = script_get(v, script_field);
	if (!s) {
		/* no script: one of V8's own builtins (Array.prototype.map, ...) */
		if (!name[0])
			return unknown(v, t, out);
		out->function = intern(v, name);
		out->builtin = 1;
		return;
	}
	out->file = s->file;
	if (start >= 0)
		line_of(s, (uint32_t)start, &out->line, &out->column);
	if (start < 0 && nt == v->k[K_SCOPEINFO_TYPE]) {
		/* a ScopeInfo read without positions: nothing to check its name against */
		unknown(v, t, out);
		out->file = s->file;
		return;
	}
	if (start >= 0) {
		/* the string read as its name must be what the source names it by */
		int how = name_in_source(v, s, name, (uint32_t)start);

		if (how == SRC_ANONYMOUS) {
			out->function = "(anonymous)";
			return;
		}
		if (how != SRC_NAMED && (name[0] || how != SRC_UNREADABLE)) {
			uint32_t line = out->line, col = out->column;

			unknown(v, t, out);
			out->file = s->file;
			out->line = line;
			out->column = col;
			return;
		}
	}
	out->function = name[0] ? intern(v, name) : "(anonymous)";
}

/* The frame for SharedFunctionInfo shared (tagged), named once and cached. */
static const struct sfi *sfi_get(struct ls_v8 *v, uint64_t shared)
{
	uint64_t name_field, script_field;
	struct sfi *c;
	int ok = 1;

	if (type_of(v, shared) != v->k[K_SFI_TYPE])
		return NULL;
	name_field = rd64(v, shared - HEAP_TAG + (uint64_t)v->k[K_SFI_NAME], &ok);
	script_field = rd64(v, shared - HEAP_TAG + (uint64_t)v->k[K_SFI_SCRIPT], &ok);
	if (!ok)
		return NULL;
	c = &v->sfis[(shared >> 3) % CACHE_SLOTS];
	if (c->addr != shared || c->name_field != name_field || c->script_field != script_field) {
		c->addr = shared;
		c->name_field = name_field;
		c->script_field = script_field;
		sfi_describe(v, shared, name_field, script_field, &c->f, &c->start, &c->end);
	}
	return c;
}

/* *out is c's frame at script offset off when off is inside c's function (or its
 * range is unknown) and its script's lines are known; else its first line. */
static void frame_at(struct ls_v8 *v, const struct sfi *c, int32_t off, struct ls_v8_frame *out)
{
	struct script *s;

	*out = c->f;
	if (off < 0 || !c->f.file || (c->start >= 0 && (off < c->start || off > c->end)))
		return;
	/* c was named from its script, and c still points to it (sfi_get compared the
	 * field): the script's cache entry, when it is that script's, needs no reads */
	s = &v->scripts[(c->script_field >> 3) % CACHE_SLOTS];
	if (s->addr != c->script_field &&
	    (type_of(v, c->script_field) != v->k[K_SCRIPT_TYPE] || !(s = script_get(v, c->script_field))))
		return;
	if (!s->ends)
		return;
	line_of(s, (uint32_t)off, &out->line, &out->column);
	if (!out->line) {
		out->line = c->f.line;
		out->column = c->f.column;
	}
}

/* Optimised code: the frames at pc, innermost first (functions inlined into the
 * frame's own, then its own), each at its line. 0 when its code is not found, is
 * not optimised, or is another function's. */
static int optimised_frames(struct ls_v8 *v, uint64_t shared, uint64_t pc, int is_return,
			    struct ls_v8_frame *out, int max)
{
	const struct sfi *f;
	uint64_t fns[MAX_CHAIN];
	int32_t offs[MAX_CHAIN];
	int n = v8__optimised_chain(v, shared, pc, is_return, fns, offs);

	if (n > max)
		n = max;	/* the innermost are the ones that matter */
	for (int i = 0; i < n; i++) {
		if (!(f = sfi_get(v, fns[i])))
			return 0;
		frame_at(v, f, offs[i], &out[i]);
	}
	return n;
}

int ls_v8_frames(struct ls_v8 *v, const uint64_t slot[8], uint64_t pc, unsigned flags, struct ls_v8_frame *out,
		 int max)
{
	uint64_t fn = slot[(48 + v->k[K_FP_FUNCTION]) / 8], ctx = slot[(48 + v->k[K_FP_CONTEXT]) / 8];
	uint64_t shared;
	const struct sfi *c;
	int type, ok = 1, n;
	int32_t off;

	/* A typed frame (entry, exit, stub) keeps a Smi marker where a JS frame keeps its context. */
	if (max < 1 || !is_heap(fn) || !is_heap(ctx))
		return 0;
	type = type_of(v, fn);
	if (type < v->k[K_FIRST_JSFUNCTION] || type > v->k[K_LAST_JSFUNCTION])
		return 0;
	shared = rd64(v, fn - HEAP_TAG + (uint64_t)v->k[K_JSF_SHARED], &ok);
	if (!ok || !(c = sfi_get(v, shared))) {
		unknown(v, ok && type_of(v, shared) == v->k[K_SFI_TYPE] ? shared : fn, out);
		return 1;
	}
	*out = c->f;
	if (!c->f.file)
		return 1;	/* one of V8's builtins: no script to place it in */
	/* optimised code of this function at pc first: a frame that on-stack
	 * replacement moved into optimised code keeps the interpreter's slots as they
	 * were at the loop it entered by. Then the interpreter's frames, which say so in
	 * their slots (its code may run from a copy of the builtins in anonymous memory,
	 * so pc does not tell; code_find() remembers the pages it found no code in) */
	if (!(flags & LS_V8_PC_BUILTIN) && (n = optimised_frames(v, shared, pc, flags & LS_V8_PC_RETURN, out, max)))
		return n;
	*out = c->f;
	if ((off = v8__interpreted_offset(v, slot, shared)) != -2)
		frame_at(v, c, off, out);
	return 1;	/* or Sparkplug code, or code not found: the function's first line */
}

/* The frame type markers this V8 has (v8dbg_frametype_*); labels like "[V8 IrregexpFrame]". */
static void read_frametypes(struct ls_v8 *v, struct ls_elf *e, uint64_t bias)
{
	for (size_t i = 0; i < NFRAMETYPES; i++) {
		char name[96], label[96];
		struct ls_elf_sym sym;
		struct ls_elf_want w = { .name = name, .out = &sym };
		int32_t x;

		v->frametype[i] = -1;
		snprintf(name, sizeof(name), "v8dbg_frametype_%s", frametypes[i]);
		if (ls_elf_lookup(e, &w, 1) != 1 || ls_proc_read_mem(v->pid, sym.addr + bias, &x, sizeof(x)))
			continue;
		snprintf(label, sizeof(label), "[V8 %s]", frametypes[i]);
		v->frametype_label[i] = intern(v, label);
		if (v->frametype_label[i])
			v->frametype[i] = x;
	}
}

/* The layout of the objects behind a frame's position (struct layout): the binary's
 * metadata, else what was measured on each official Node major's V8 (stacks.md).
 * A V8 newer than those gets the newest layout: every object read is type-checked,
 * so a layout that changed gives first lines, never a wrong one. */
static void set_layout(struct ls_v8 *v, const struct ls_elf_sym *sym)
{
	struct layout *l = &v->lay;
	int64_t major = v->k[K_V8_MAJOR];
#define HAVE(i) (sym[i].addr != 0)
#define OR(i, dflt) (HAVE(i) ? v->k[i] : (dflt))

	l->istream = HAVE(K_ISTREAM_TYPE);
	l->is_start = OR(K_ISTREAM_START, -1);
	l->code_start = OR(K_CODE_START, l->istream ? 40 : -1);
	l->code_size = OR(K_CODE_SIZE, major == 11 ? 56 : -1);
	l->code_flags = OR(K_CODE_FLAGS, major == 11 ? 48 : -1);
	l->code_spt = OR(K_CODE_SPT, major >= 12 ? 16 : 24);
	l->code_dd = OR(K_CODE_DD, major >= 12 ? 8 : 16);
	l->bca_spt = major >= 12 ? 24 : 32;
	l->pos_format = major >= 14 ? LS_V8_POS_FLAGBIT : LS_V8_POS_SIGN;
	l->dd_count = OR(K_DD_COUNT, 1);
	l->dd_lit = OR(K_DD_LIT, 2);
	l->dd_sfi = HAVE(K_DD_WSFI) ? v->k[K_DD_WSFI] : OR(K_DD_SFI, 6);
	l->dd_ip = OR(K_DD_IP, 7);
	if (!HAVE(K_BCA_LENGTH))
		v->k[K_BCA_LENGTH] = v->k[K_FA_LENGTH];
	v->code_ok = HAVE(K_CODE_TYPE) && HAVE(K_KIND_MASK) && HAVE(K_KIND_BASELINE) && HAVE(K_BA_TYPE) &&
		     (!l->istream || l->is_start > 0) && l->code_start > 0 && l->code_size > 0 && l->code_flags > 0 &&
		     l->dd_count >= 0 && l->dd_lit >= 0 && l->dd_sfi >= 0 && l->dd_ip >= 0 && major >= 10;
	if (!HAVE(K_BCA_TYPE) || !HAVE(K_BCA_DATA) || !HAVE(K_FP_BC_ARRAY) || !HAVE(K_FP_BC_OFFSET) ||
	    v->k[K_FP_BC_ARRAY] < -48 || v->k[K_FP_BC_ARRAY] >= 0 || v->k[K_FP_BC_OFFSET] < -48 ||
	    v->k[K_FP_BC_OFFSET] >= 0 || ((v->k[K_FP_BC_ARRAY] | v->k[K_FP_BC_OFFSET]) & 7) || major < 10)
		l->bca_spt = -1;
#undef OR
#undef HAVE
}

int ls_v8_open(pid_t pid, struct ls_elf *e, uint64_t bias, struct ls_v8 **out, char *why, size_t whylen)
{
	struct ls_elf_sym sym[K_NK];
	struct ls_elf_want want[K_NK];
	struct ls_v8 *v = NULL;
	int err, found;

	*out = NULL;
	for (int i = 0; i < K_NK; i++)
		want[i] = (struct ls_elf_want){ .name = knames[i], .out = &sym[i] };
	ls_elf_lookup(e, want, K_NK);
	found = 0;
	for (int i = 0; i < K_NK; i++)
		found += sym[i].addr && !strncmp(knames[i], "v8dbg_", 6);
	if (found <= 0) {
		snprintf(why, whylen, "the binary has no V8 post-mortem metadata (v8dbg_* symbols: stripped?)");
		return -ENOENT;
	}
	for (int i = 0; i < K_NK; i++) {
		int opt = 0;

		for (size_t k = 0; k < sizeof(optional) / sizeof(optional[0]); k++)
			opt |= optional[k] == i;
		if (!sym[i].addr && !opt) {
			snprintf(why, whylen, "the binary's V8 metadata lacks %s", knames[i]);
			return -ENOENT;
		}
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pid = pid;
	v->sfis = calloc(CACHE_SLOTS, sizeof(*v->sfis));
	v->scripts = calloc(CACHE_SLOTS, sizeof(*v->scripts));
	v->strs = ls_stacktab_new();
	if (!v->sfis || !v->scripts || !v->strs) {
		err = -ENOMEM;
		goto cleanup;
	}
	/* the values as the process has them (some live in .bss) */
	for (int i = 0; i < K_NK; i++) {
		int32_t x = 0;

		if (sym[i].addr && (err = ls_proc_read_mem(pid, sym[i].addr + bias, &x, sizeof(x)))) {
			snprintf(why, whylen, "reading the target's memory failed (%s)", strerror(-err));
			goto cleanup;
		}
		v->k[i] = x;
	}
	if (!sym[K_SFI_SCRIPT].addr)
		v->k[K_SFI_SCRIPT] = v->k[K_SFI_SCRIPT_OLD];
	if (!sym[K_FIRST_JSFUNCTION].addr) {
		/* before V8 12: JSFunction's subtypes (class constructors, ...) sit just below it */
		v->k[K_FIRST_JSFUNCTION] = v->k[K_JSFUNCTION_TYPE] - 16;
		v->k[K_LAST_JSFUNCTION] = v->k[K_JSFUNCTION_TYPE];
	}
	if (!sym[K_SFI_SCRIPT].addr && !sym[K_SFI_SCRIPT_OLD].addr) {
		snprintf(why, whylen, "the binary's V8 metadata has no SharedFunctionInfo script field");
		err = -ENOENT;
		goto cleanup;
	}
	if (v->k[K_TAGGED_SIZE] != 8 || v->k[K_SMI_SHIFT] != 31) {
		snprintf(why, whylen, "V8 built with pointer compression (tagged size %lld) is not supported",
			 (long long)v->k[K_TAGGED_SIZE]);
		err = -ENOTSUP;
		goto cleanup;
	}
	if (v->k[K_FP_FUNCTION] < -48 || v->k[K_FP_FUNCTION] >= 0 || v->k[K_FP_CONTEXT] < -48 ||
	    v->k[K_FP_CONTEXT] >= 0 || (v->k[K_FP_FUNCTION] & 7) || (v->k[K_FP_CONTEXT] & 7)) {
		snprintf(why, whylen, "V8's frame layout is not one the sampler copies (function at fp%+lld)",
			 (long long)v->k[K_FP_FUNCTION]);
		err = -ENOTSUP;
		goto cleanup;
	}
	set_layout(v, sym);
	read_frametypes(v, e, bias);
	*out = v;
	return 0;
cleanup:
	ls_v8_close(v);
	return err;
}

const char *ls_v8_typed_frame(struct ls_v8 *v, const uint64_t slot[8])
{
	uint64_t marker = slot[(48 + v->k[K_FP_CONTEXT]) / 8];
	int64_t t;

	/* StackFrame::TypeToMarker: the type shifted by the Smi tag size, not a full Smi */
	if ((marker & 1) || marker >= 256)
		return NULL;
	t = (int64_t)(marker >> 1);
	for (size_t i = 0; i < NFRAMETYPES; i++)
		if (v->frametype[i] >= 0 && v->frametype[i] == t)
			return v->frametype_label[i];
	return NULL;
}


void ls_v8_close(struct ls_v8 *v)
{
	if (!v)
		return;
	v8__code_free_all(v);
	for (size_t i = 0; v->scripts && i < CACHE_SLOTS; i++)
		script_free(&v->scripts[i]);
	free(v->scripts);
	free(v->sfis);
	ls_stacktab_free(v->strs);
	free(v);
}
