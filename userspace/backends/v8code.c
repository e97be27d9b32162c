/* v8code.c: where in its function a JS frame is, as a script offset: from the
 * bytecode an interpreted frame runs, or from the code object holding an optimised
 * frame's pc, with the functions that code inlined (stacks.md). Naming what is found
 * is v8frames.c's job; the split and what the two share: v8frames_int.h. */
#include <stdlib.h>
#include <string.h>

#include "v8frames_int.h"
#include "v8pos.h"

#define CODE_SCAN (256u << 10)		/* how far below a pc its code's start is searched */
#define CODE_ALIGN 32			/* V8 aligns instruction starts to (at least) this */
#define MAX_TABLE (1u << 20)		/* longest position table read */
#define MAX_INLINED 1024

/* The bytes of ByteArray (or TrustedByteArray) t, malloc'ed; NULL if t is not one. */
static uint8_t *byte_array(struct ls_v8 *v, uint64_t t, size_t max, size_t *n)
{
	int type = type_of(v, t), ok = 1;
	uint64_t len;
	uint8_t *b;

	*n = 0;
	if (type < 0 || (type != v->k[K_BA_TYPE] && (!v->k[K_TBA_TYPE] || type != v->k[K_TBA_TYPE])))
		return NULL;
	len = rd64(v, t - HEAP_TAG + (uint64_t)v->k[K_FA_LENGTH], &ok);
	if (!ok || !is_smi(len) || smi(v, len) <= 0 || (uint64_t)smi(v, len) > max)
		return NULL;
	*n = (size_t)smi(v, len);
	b = malloc(*n);
	if (b && rd(v, t - HEAP_TAG + (uint64_t)v->k[K_FA_DATA], b, *n)) {
		free(b);
		b = NULL;
	}
	if (!b)
		*n = 0;
	return b;
}

/* t, or the SharedFunctionInfo a SharedFunctionInfoWrapper t holds. */
static uint64_t unwrap_sfi(struct ls_v8 *v, uint64_t t)
{
	int ok = 1;

	if (v->k[K_SFIW_TYPE] && type_of(v, t) == v->k[K_SFIW_TYPE])
		t = rd64(v, t - HEAP_TAG + (uint64_t)v->k[K_SFIW_SHARED], &ok);
	return ok && type_of(v, t) == v->k[K_SFI_TYPE] ? t : 0;
}

static void code_free(struct code *c)
{
	free(c->spt);
	free(c->inl_pos);
	free(c->inl);
	memset(c, 0, sizeof(*c));
}

/* What optimised code c says about positions: its function, position table,
 * inlining positions and inlined functions (DeoptimizationData). c->sfi stays 0
 * when any of it fails a check. */
static void code_positions(struct ls_v8 *v, struct code *c)
{
	const struct layout *l = &v->lay;
	uint64_t spt, dd, len, w[16], lit, ip, sfi;
	int64_t count, need = l->dd_count;
	int ok = 1;

	spt = rd64(v, c->code - HEAP_TAG + (uint64_t)l->code_spt, &ok);
	dd = rd64(v, c->code - HEAP_TAG + (uint64_t)l->code_dd, &ok);
	if (!ok || type_of(v, dd) < 0)
		return;
	need = l->dd_lit > need ? l->dd_lit : need;
	need = l->dd_sfi > need ? l->dd_sfi : need;
	need = l->dd_ip > need ? l->dd_ip : need;
	len = rd64(v, dd - HEAP_TAG + (uint64_t)v->k[K_FA_LENGTH], &ok);
	if (!ok || !is_smi(len) || smi(v, len) <= need || need >= 16 ||
	    rd(v, dd - HEAP_TAG + (uint64_t)v->k[K_FA_DATA], w, (size_t)(need + 1) * 8) || !is_smi(w[l->dd_count]))
		return;
	count = smi(v, w[l->dd_count]);
	sfi = unwrap_sfi(v, w[l->dd_sfi]);
	lit = w[l->dd_lit];
	ip = w[l->dd_ip];
	if (count < 0 || count > MAX_INLINED || !sfi || type_of(v, lit) < 0)
		return;
	if (count) {
		len = rd64(v, lit - HEAP_TAG + (uint64_t)v->k[K_FA_LENGTH], &ok);
		if (!ok || !is_smi(len) || smi(v, len) < count || !(c->inl = calloc((size_t)count, 8)) ||
		    rd(v, lit - HEAP_TAG + (uint64_t)v->k[K_FA_DATA], c->inl, (size_t)count * 8))
			return;
		c->ninl = (uint32_t)count;
		/* checked when used: an inlined function is a SharedFunctionInfo (wrapped from V8 13) */
		if (!(c->inl_pos = byte_array(v, ip, (size_t)MAX_INLINED * 16, &c->ninl_pos)))
			return;
	}
	if (!(c->spt = byte_array(v, spt, MAX_TABLE, &c->nspt)))
		return;
	c->sfi = sfi;
}

/* Is the object at untagged address h the holder of instructions at a? Fills c. */
static int code_at(struct ls_v8 *v, uint64_t h, uint64_t a, uint64_t pc, uint64_t map, struct code *c)
{
	const struct layout *l = &v->lay;
	uint64_t code, hdr[2], start;
	int32_t size = 0;
	uint32_t flags = 0;
	int type;

	if (rd(v, h, hdr, sizeof(hdr)) || hdr[0] != map)
		return 0;
	code = l->istream ? hdr[1] : h + HEAP_TAG;
	if (type_of(v, code) != v->k[K_CODE_TYPE])
		return 0;
	if (l->istream) {
		start = 0;
		if (rd(v, code - HEAP_TAG + (uint64_t)l->code_start, &start, 8) || start != a)
			return 0;
	}
	if (rd(v, code - HEAP_TAG + (uint64_t)l->code_size, &size, 4) || size <= 0 ||
	    rd(v, code - HEAP_TAG + (uint64_t)l->code_flags, &flags, 4) || pc >= a + (uint64_t)size)
		return 0;
	type = l->istream ? (int)v->k[K_ISTREAM_TYPE] : (int)v->k[K_CODE_TYPE];
	if (type_of(v, h + HEAP_TAG) != type)
		return 0;
	memset(c, 0, sizeof(*c));
	c->start = a;
	c->end = a + (uint64_t)size;
	c->header = h;
	c->map = map;
	c->code = code;
	if (((flags & (uint64_t)v->k[K_KIND_MASK]) >> v->k[K_KIND_SHIFT]) > (uint64_t)v->k[K_KIND_BASELINE])
		code_positions(v, c);	/* Maglev or TurboFan */
	return 1;
}

/* The code whose instructions hold pc, from the cache (re-checked) or found by
 * scanning down from pc for its holder's header; NULL when none is found. */
static const struct code *code_find(struct ls_v8 *v, uint64_t pc)
{
	const struct layout *l = &v->lay;
	uint64_t off = l->istream ? (uint64_t)l->is_start : (uint64_t)l->code_start, buf[514];
	struct code found;

	for (int i = 0; i < CODE_SLOTS; i++) {
		struct code *c = &v->codes[i];
		uint64_t hdr[2];

		if (!c->end || pc < c->start || pc >= c->end)
			continue;
		/* the same holder, still holding the same Code (code space is reused):
		 * its map, and the Code it points back to */
		if (!rd(v, c->header, hdr, sizeof(hdr)) && hdr[0] == c->map &&
		    (l->istream ? hdr[1] == c->code : type_of(v, c->code) == v->k[K_CODE_TYPE]))
			return c;
		code_free(c);
	}
	/* pages whose scan found nothing (V8's builtins copied to anonymous memory, say),
	 * forgotten now and then: code space pages are reused */
	if (++v->lookups % 4096 == 0)
		memset(v->miss, 0, sizeof(v->miss));
	for (int i = 0; i < CODE_SLOTS; i++)
		if (v->miss[i] == (pc | 4095))
			return NULL;
	/* holders start CODE_ALIGN-aligned instructions: read the words where their
	 * maps would be, a page of holders at a time, from pc down */
	for (uint64_t a = pc & ~(uint64_t)(CODE_ALIGN - 1); a > off + CODE_ALIGN && a + CODE_SCAN > pc;) {
		uint64_t h = a - off, page = h & ~4095ull;
		uint64_t lo = (page + off + CODE_ALIGN - 1) & ~(uint64_t)(CODE_ALIGN - 1);

		if (lo > a || h + 16 - (lo - off) > sizeof(buf) || rd(v, lo - off, buf, (size_t)(h + 16 - (lo - off))))
			break;	/* an unmapped page: no holder reaches across it */
		for (uint64_t s = a; s >= lo; s -= CODE_ALIGN) {
			uint64_t map = buf[(s - lo) / 8];
			int known = 0;

			if (!is_heap(map))
				continue;
			for (int k = 0; k < 4; k++)
				known |= v->holder_maps[k] == map;
			if (!known && v->holder_maps[3])
				continue;	/* four holder maps already: not one */
			if (code_at(v, s - off, s, pc, map, &found)) {
				struct code *c = &v->codes[v->code_next++ % CODE_SLOTS];

				for (int k = 0; !known && k < 4; k++)
					if (!v->holder_maps[k]) {
						v->holder_maps[k] = map;
						break;
					}
				code_free(c);
				*c = found;
				return c;
			}
		}
		a = lo - CODE_ALIGN;
	}
	v->miss[v->miss_next++ % CODE_SLOTS] = pc | 4095;
	return NULL;
}

/* Optimised code: the functions at pc, innermost first (functions inlined into the
 * frame's own, then its own), fns[i] each (a SharedFunctionInfo, tagged) at script
 * offset offs[i]; returns how many. 0 when its code is not found, is not optimised,
 * or is another function's. */
int v8__optimised_chain(struct ls_v8 *v, uint64_t shared, uint64_t pc, int is_return, uint64_t fns[MAX_CHAIN],
			int32_t offs[MAX_CHAIN])
{
	const struct code *c;
	uint64_t raw;
	struct ls_v8_pos p;
	int n = 0;

	if (!v->code_ok || !(c = code_find(v, pc)) || c->sfi != shared || (is_return && pc == c->start) ||
	    ls_v8_pos_find(c->spt, c->nspt, v->lay.pos_format, (uint32_t)(pc - c->start - (is_return ? 1 : 0)),
			   (uint32_t)(c->end - c->start), &raw))
		return 0;
	ls_v8_pos_unpack(raw, &p);
	/* inlined frames first, each at its position; then the call site in its caller */
	while (p.inlining_id >= 0) {
		uint64_t site;
		int32_t fn;

		if (n >= MAX_CHAIN - 1 || ls_v8_inlining(c->inl_pos, c->ninl_pos, p.inlining_id, &site, &fn) ||
		    fn < 0 || (uint32_t)fn >= c->ninl || !(fns[n] = unwrap_sfi(v, c->inl[fn])))
			return 0;	/* not provably right: the caller says what it can */
		offs[n++] = p.script_offset;
		ls_v8_pos_unpack(site, &p);
	}
	fns[n] = shared;
	offs[n++] = p.script_offset;
	return n;
}

/* An interpreted frame's script offset: the bytecode it runs (a Smi, offset from
 * the BytecodeArray's tagged start), through the array's position table. -2 when
 * the slots are not an interpreter's frame of function shared; -1 when they are
 * but V8 kept no table (it builds them lazily) or the table has no entry there. */
int32_t v8__interpreted_offset(struct ls_v8 *v, const uint64_t slot[8], uint64_t shared)
{
	uint64_t bca, bco, len, spt, raw, own;
	int64_t off;
	int ok = 1;
	size_t n;
	uint8_t *tab;
	struct ls_v8_pos p;

	if (v->lay.bca_spt < 0)
		return -2;
	bca = slot[(48 + v->k[K_FP_BC_ARRAY]) / 8];
	bco = slot[(48 + v->k[K_FP_BC_OFFSET]) / 8];
	if (!is_smi(bco) || type_of(v, bca) != v->k[K_BCA_TYPE])
		return -2;
	/* the function's own bytecode (its first data field, where it holds one) */
	own = rd64(v, shared - HEAP_TAG + 8, &ok);
	if (!ok || (type_of(v, own) == v->k[K_BCA_TYPE] && own != bca))
		return -2;
	off = smi(v, bco) - (v->k[K_BCA_DATA] - (int64_t)HEAP_TAG);
	len = rd64(v, bca - HEAP_TAG + (uint64_t)v->k[K_BCA_LENGTH], &ok);
	if (!ok || !is_smi(len) || off < 0 || off >= smi(v, len))
		return -2;
	spt = rd64(v, bca - HEAP_TAG + (uint64_t)v->lay.bca_spt, &ok);
	if (!ok || !(tab = byte_array(v, spt, MAX_TABLE, &n)))
		return -1;
	ok = !ls_v8_pos_find(tab, n, v->lay.pos_format, (uint32_t)off, (uint32_t)smi(v, len), &raw);
	free(tab);
	if (!ok)
		return -1;
	ls_v8_pos_unpack(raw, &p);
	return p.inlining_id < 0 ? p.script_offset : -1;
}

void v8__code_free_all(struct ls_v8 *v)
{
	for (int i = 0; i < CODE_SLOTS; i++)
		code_free(&v->codes[i]);
}
