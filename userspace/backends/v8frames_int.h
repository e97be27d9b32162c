/* v8frames_int.h: inside the JS frame reader, shared by its two files and by nothing
 * else (the reader's interface is v8frames.h):
 *
 *   v8frames.c  who a frame is: V8's heap objects read from outside (strings,
 *               scripts, SharedFunctionInfo, ScopeInfo names) into a function's name,
 *               file and the line of a script offset; the layout from the binary's
 *               metadata; the interface
 *   v8code.c    where in its function a frame is: the script offset of the bytecode
 *               it runs, or the code object holding its pc (found by scanning down
 *               from it, cached) and what that optimised code's position table and
 *               inlining say
 *
 * The cut is at script offsets: v8code.c hands back SharedFunctionInfo addresses with
 * an offset each and names nothing, so all it takes from here is struct ls_v8 and
 * the reads below, and all v8frames.c takes from it is three functions.
 * One struct ls_v8 per process, made by ls_v8_open (v8frames.c); its code cache
 * (holder_maps to lookups) is v8code.c's alone. Functions here carry a
 * double-underscore prefix (v8__): internal, non-static.
 */
#ifndef LS_V8FRAMES_INT_H
#define LS_V8FRAMES_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"
#include "v8frames.h"
#include "v8pos.h"

#define TAG_MASK 3ull
#define HEAP_TAG 1ull
#define CODE_SLOTS 64			/* optimised code objects kept decoded */
#define MAX_CHAIN 32			/* inlined frames named in one frame */
#define NFRAMETYPES 21			/* V8's typed frames looked for (v8frames.c's frametypes[]) */

/* The v8dbg_* constants used, by index. Names ending in '*' match by prefix (the
 * type suffix changed across V8 versions). */
enum {
	K_FP_FUNCTION, K_FP_CONTEXT, K_SMI_SHIFT, K_TAGGED_SIZE, K_MAP, K_INSTANCE_TYPE,
	K_FIRST_NONSTRING, K_STR_ENC_MASK, K_STR_REP_MASK, K_SEQ_TAG, K_CONS_TAG, K_ONEBYTE_TAG,
	K_SLICED_TAG, K_THIN_TAG, K_EXT_TAG, K_STR_LENGTH, K_SEQ1_CHARS, K_SEQ2_CHARS, K_CONS_FIRST,
	K_CONS_SECOND, K_SLICED_PARENT, K_SLICED_OFFSET, K_THIN_ACTUAL, K_EXT_RESOURCE,
	K_JSFUNCTION_TYPE, K_FIRST_JSFUNCTION, K_LAST_JSFUNCTION, K_JSF_SHARED, K_SFI_TYPE,
	K_SFI_NAME, K_SFI_SCRIPT, K_SFI_SCRIPT_OLD, K_SCOPEINFO_TYPE, K_SI_FIRST_VARS, K_SI_NCONTEXTLOCALS,
	K_SCRIPT_TYPE, K_SCRIPT_NAME, K_SCRIPT_LINE_ENDS, K_SCRIPT_SOURCE, K_FIXED_ARRAY_TYPE,
	K_FA_LENGTH, K_FA_DATA, K_V8_MAJOR, K_V8_MINOR, K_V8_BUILD, K_V8_PATCH,
	/* where a frame runs: its bytecode, or the optimised code and what it inlined */
	K_FP_BC_ARRAY, K_FP_BC_OFFSET, K_BCA_TYPE, K_BCA_DATA, K_BCA_LENGTH, K_CODE_TYPE, K_ISTREAM_TYPE,
	K_ISTREAM_START, K_CODE_START, K_CODE_SIZE, K_CODE_FLAGS, K_KIND_MASK, K_KIND_SHIFT, K_KIND_BASELINE,
	K_CODE_SPT, K_CODE_DD, K_DD_COUNT, K_DD_LIT, K_DD_SFI, K_DD_WSFI, K_DD_IP, K_BA_TYPE, K_TBA_TYPE,
	K_SFIW_TYPE, K_SFIW_SHARED, K_NK,
};

/* Compiled code found from a pc in it (code_find): its instructions, the object that
 * holds them, and for optimised code what a pc offset in it says about the source. */
struct code {
	uint64_t start, end;	/* instructions; end 0: a free slot */
	uint64_t header, map;	/* untagged address of the holder (InstructionStream, or Code
				 * before V8 11) and its map word, re-checked at each use */
	uint64_t code;		/* the Code object, tagged */
	uint64_t sfi;		/* optimised: the function it was compiled for; else 0 */
	uint8_t *spt;		/* its source position table */
	size_t nspt;
	uint8_t *inl_pos;	/* its InliningPositions */
	size_t ninl_pos;
	uint64_t *inl;		/* the SharedFunctionInfo of each inlined function, by index */
	uint32_t ninl;
};

/* Where the objects behind a frame's position sit: v8dbg_* symbols where the binary
 * has them, else the layout measured on the V8 of each official Node major (10.2 in
 * Node 18 to 14.x in Node 26; stacks.md). -1: unknown, positions not decoded. */
struct layout {
	int istream;		/* instructions live in an InstructionStream (V8 11 on) */
	int64_t is_start;	/* InstructionStream: offset of its instructions */
	int64_t code_start;	/* Code: instruction start (a pointer; inline offset before V8 11) */
	int64_t code_size, code_flags, code_spt, code_dd;
	int64_t bca_spt;	/* BytecodeArray: source position table */
	int64_t dd_count, dd_lit, dd_sfi, dd_ip;	/* DeoptimizationData indices */
	enum ls_v8_pos_format pos_format;	/* of source position tables */
};

struct ls_v8 {
	pid_t pid;
	int64_t k[K_NK];
	int64_t frametype[NFRAMETYPES];	/* -1: not in this V8 */
	const char *frametype_label[NFRAMETYPES];
	struct sfi *sfis;	/* direct-mapped cache by address */
	struct script *scripts;
	struct layout lay;
	int code_ok;		/* lay has all optimised code needs */
	uint64_t holder_maps[4];	/* maps seen on code holders, so a scan checks few words */
	struct code codes[CODE_SLOTS];
	uint32_t code_next;	/* the slot the next code found replaces */
	uint64_t miss[CODE_SLOTS];	/* pages of pcs whose code a scan did not find */
	uint32_t miss_next, lookups;
	struct ls_stacktab *strs;	/* names and files handed out */
};

static inline int rd(struct ls_v8 *v, uint64_t addr, void *buf, size_t len)
{
	return ls_proc_read_mem(v->pid, addr, buf, len);
}

static inline uint64_t rd64(struct ls_v8 *v, uint64_t addr, int *ok)
{
	uint64_t x = 0;

	if (rd(v, addr, &x, sizeof(x)))
		*ok = 0;
	return x;
}

static inline int is_heap(uint64_t t) { return (t & TAG_MASK) == HEAP_TAG && t > 0x10000; }
/* Without pointer compression a Smi's value is the upper half, the lower is 0. */
static inline int is_smi(uint64_t t) { return (t & 0xffffffffull) == 0; }
static inline int64_t smi(const struct ls_v8 *v, uint64_t t) { return (int64_t)t >> (v->k[K_SMI_SHIFT] + 1); }

/* The instance type of tagged object t, or -1 when t is not a readable heap object
 * whose map is itself a heap object. */
static inline int type_of(struct ls_v8 *v, uint64_t t)
{
	uint64_t map = 0;
	uint16_t type = 0;

	if (!is_heap(t) || rd(v, t - HEAP_TAG + (uint64_t)v->k[K_MAP], &map, sizeof(map)) || !is_heap(map) ||
	    rd(v, map - HEAP_TAG + (uint64_t)v->k[K_INSTANCE_TYPE], &type, sizeof(type)))
		return -1;
	return type;
}

/* v8code.c */
int32_t v8__interpreted_offset(struct ls_v8 *v, const uint64_t slot[8], uint64_t shared);
int v8__optimised_chain(struct ls_v8 *v, uint64_t shared, uint64_t pc, int is_return, uint64_t fns[MAX_CHAIN],
			int32_t offs[MAX_CHAIN]);
void v8__code_free_all(struct ls_v8 *v);

#endif /* LS_V8FRAMES_INT_H */
