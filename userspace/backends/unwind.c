/* unwind.c: raw samples -> frames (unwind.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "libuv.h"
#include "nativesym.h"
#include "stack_raw.h"
#include "proc.h"
#include "unwind.h"
#include "v8frames.h"

#define MAPS_REFRESH_NS 1000000000ull

struct ksym {
	uint64_t addr;
	char *name;
};

struct ls_unwinder {
	pid_t pid;
	struct ls_stacktab *tab;
	struct ls_nsym *nsym;
	struct ls_v8 *v8;
	char js_why[200];
	struct ls_maps maps;
	uint64_t maps_ns;
	struct ls_leaf *leaves;		/* the sampler's (ls_unwinder_set_leaves), or NULL */
	uint64_t tried[2 * LS_LEAF_MAX];	/* leaves considered for it */
	unsigned ntried;
};

/* The kernel's symbols, read once per process and shared by every unwinder. The file
 * is opened at the first attach, before the agent gives up its privileges: the kernel
 * decides at open whether addresses show (without CAP_SYSLOG every one reads 0), so
 * the descriptor keeps them. A thread reads and sorts it (~5 MB, 20-60 ms) while the
 * attach goes on; the first kernel frame to name waits for it. */
static struct {
	struct ksym *ksyms;
	size_t nksyms;
	char *text;		/* the file, read whole; names point into it */
	int fd;
	int started, joined;
	pthread_t thread;
} kall;

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* fd (/proc/kallsyms), read whole; closed. */
static char *read_kallsyms(int fd, size_t *len)
{
	size_t cap = 1 << 22, n = 0;
	char *buf = NULL;

	for (;;) {
		ssize_t r;

		if (!buf || cap - n < 4096) {
			char *g = realloc(buf, cap *= 2);

			if (!g) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = g;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* The text symbols ("t"/"T") with an address, sorted. Parsed in place: one pass,
 * no allocation per symbol (the ASan agent in make test reads it at every attach). */
static void *load_kallsyms(void *arg)
{
	size_t len = 0, cap = 0;
	char *p, *end;

	(void)arg;
	kall.text = read_kallsyms(kall.fd, &len);
	if (!kall.text)
		return NULL;
	for (p = kall.text, end = kall.text + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *q, *name;
		unsigned long long a;
		char type;

		if (!nl)
			nl = end;
		*nl = 0;
		a = strtoull(p, &q, 16);
		if (q == p || *q != ' ' || !q[1] || q[2] != ' ')
			goto next;
		type = q[1];
		name = q + 3;
		name[strcspn(name, " \t")] = 0;
		if (!a || (type != 't' && type != 'T') || !*name)
			goto next;
		if (kall.nksyms == cap) {
			struct ksym *g = realloc(kall.ksyms, (cap ? cap * 2 : 65536) * sizeof(*g));

			if (!g)
				break;
			kall.ksyms = g;
			cap = cap ? cap * 2 : 65536;
		}
		kall.ksyms[kall.nksyms].addr = a;
		kall.ksyms[kall.nksyms].name = name;
		kall.nksyms++;
next:
		p = nl + 1;
	}
	if (kall.nksyms > 1)
		qsort(kall.ksyms, kall.nksyms, sizeof(*kall.ksyms), ksym_cmp);
	return NULL;
}

/* Open /proc/kallsyms and start reading it, once (at attach, privileges still held). */
static void kallsyms_start(void)
{
	if (kall.started)
		return;
	kall.started = 1;
	kall.fd = open("/proc/kallsyms", O_RDONLY | O_CLOEXEC);
	if (kall.fd < 0) {
		kall.joined = 1;
	} else if (pthread_create(&kall.thread, NULL, load_kallsyms, NULL)) {
		load_kallsyms(NULL);
		kall.joined = 1;
	}
}

static void kallsyms_wait(void)
{
	kallsyms_start();
	if (!kall.joined) {
		pthread_join(kall.thread, NULL);
		kall.joined = 1;
	}
}

static const char *ksym_name(struct ls_unwinder *u, uint64_t ip)
{
	size_t lo = 0, hi;

	(void)u;
	kallsyms_wait();
	hi = kall.nksyms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (kall.ksyms[mid].addr <= ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? kall.ksyms[lo - 1].name : NULL;
}

/* The runtime's own symbols are read in the background from the attach on: the first
 * samples of the first episode are named as they arrive, not ~170 ms later (node's
 * ~86k symbols), when the objects their JS frames point to may have moved. */
static void preload_exe(struct ls_unwinder *u, const char *exe)
{
	const struct ls_proc_map *m;

	if (ls_maps_read(u->pid, &u->maps))
		return;
	u->maps_ns = ls_now_mono_ns();
	if ((m = ls_maps_code(&u->maps, exe)))
		ls_nsym_preload(u->nsym, u->pid, m);
}

int ls_unwinder_new(pid_t pid, const char *exe, uint64_t bias, struct ls_stacktab *tab, struct ls_unwinder **out)
{
	struct ls_unwinder *u = calloc(1, sizeof(*u));
	struct ls_elf *e = NULL;
	int err;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	u->pid = pid;
	u->tab = tab;
	kallsyms_start();	/* now, while the agent may still read the addresses */
	u->nsym = ls_nsym_new();
	if (!u->nsym) {
		free(u);
		return -ENOMEM;
	}
	if (!exe) {
		snprintf(u->js_why, sizeof(u->js_why), "not a Node.js process");
	} else if ((err = ls_elf_open(exe, &e))) {
		snprintf(u->js_why, sizeof(u->js_why), "cannot read %s (%s)", exe, strerror(-err));
	} else if (ls_v8_open(pid, e, bias, &u->v8, u->js_why, sizeof(u->js_why))) {
		u->v8 = NULL;
	}
	if (e)
		ls_elf_close(e);
	if (exe)
		preload_exe(u, exe);
	*out = u;
	return 0;
}

void ls_unwinder_free(struct ls_unwinder *u)
{
	if (!u)
		return;
	ls_v8_close(u->v8);
	ls_nsym_free(u->nsym);
	ls_maps_free(&u->maps);
	free(u);
}

void ls_unwinder_set_leaves(struct ls_unwinder *u, struct ls_leaf *leaves) { u->leaves = leaves; }

const char *ls_unwinder_js_why(const struct ls_unwinder *u) { return u->v8 ? NULL : u->js_why; }

static const struct ls_proc_map *find_map(struct ls_unwinder *u, uint64_t pc)
{
	const struct ls_proc_map *m = ls_maps_find(&u->maps, pc);
	uint64_t now;

	if (m)
		return m;
	now = ls_now_mono_ns();
	if (u->maps_ns && now - u->maps_ns < MAPS_REFRESH_NS)
		return NULL;
	u->maps_ns = now;
	ls_maps_free(&u->maps);
	if (ls_maps_read(u->pid, &u->maps))
		return NULL;
	return ls_maps_find(&u->maps, pc);
}

static void hex_frame(struct ls_unwinder *u, uint64_t pc, const char *module, struct ls_frame *f)
{
	char buf[40];

	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)pc);
	f->function = ls_stacktab_str(u->tab, buf);
	f->module = ls_stacktab_str(u->tab, module);
}

/* Our own vDSO, copied once into a memfd so that the ELF reader can open it: every
 * process on this kernel maps the same image, so a target's vDSO address is named
 * by its offset into ours. */
static struct {
	int fd;		/* -1: none (no vDSO, or it could not be copied) */
	char path[32];	/* /proc/self/fd/N */
	dev_t dev;
	ino_t ino;
	int tried;
} vdso = { .fd = -1 };

static int find_own_vdso(const struct ls_proc_map *m, void *ctx)
{
	struct ls_proc_map *out = ctx;

	if (strcmp(m->path, "[vdso]"))
		return 0;
	*out = *m;
	return 1;
}

/* The mapping m of a target's [vdso] as a mapping of our copy of the image. */
static int vdso_image(const struct ls_proc_map *m, struct ls_proc_map *img)
{
	if (!vdso.tried) {
		struct ls_proc_map own = { 0 };
		struct stat st;
		int fd;

		vdso.tried = 1;
		if (ls_proc_maps(getpid(), find_own_vdso, &own) != 1 || own.end <= own.start)
			return -ENOENT;
		fd = memfd_create("loopscope-vdso", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (write(fd, (const void *)(uintptr_t)own.start, own.end - own.start) != (ssize_t)(own.end - own.start) ||
		    fstat(fd, &st)) {
			close(fd);
			return -EIO;
		}
		vdso.fd = fd;
		vdso.dev = st.st_dev;
		vdso.ino = st.st_ino;
		snprintf(vdso.path, sizeof(vdso.path), "/proc/self/fd/%d", fd);
	}
	if (vdso.fd < 0)
		return -ENOENT;
	*img = *m;
	img->offset = 0;
	img->dev = vdso.dev;
	img->ino = vdso.ino;
	img->path = vdso.path;
	return 0;
}

/* A frame that is no JS function's: named by its symbol, V8's frame type, the
 * vDSO, its object, or its address. */
static void user_native(struct ls_unwinder *u, uint64_t pc, uint64_t at, const struct ls_proc_map *m,
			const struct ls_nsym_hit *hit_in, int maybe_js, const uint64_t *slot, struct ls_frame *f)
{
	struct ls_nsym_hit hit = *hit_in;
	int file_backed = m && m->path[0] == '/';

	if (hit.function) {
		f->function = ls_stacktab_str(u->tab, hit.function);
		f->module = ls_stacktab_str(u->tab, hit.module);
		return;
	}
	if (maybe_js) {
		/* code V8 generated that is no JS function's: a regexp, a stub */
		const char *typed = ls_v8_typed_frame(u->v8, slot);

		if (typed) {
			f->function = ls_stacktab_str(u->tab, typed);
			f->module = ls_stacktab_str(u->tab, "[V8 code]");
			return;
		}
	}
	if (m && !strcmp(m->path, "[vdso]")) {	/* the kernel's vDSO: clock_gettime and friends */
		struct ls_proc_map img;

		f->module = ls_stacktab_str(u->tab, "[vdso]");
		f->function = f->module;
		if (!vdso_image(m, &img) && !ls_nsym_resolve(u->nsym, u->pid, &img, at, 0, &hit) && hit.function)
			f->function = ls_stacktab_str(u->tab, hit.function);
		return;
	}
	if (file_backed) {
		/* no symbol covers it (a stripped library's internal function): name the
		 * object, not a neighbour */
		char buf[300];
		const char *b = strrchr(m->path, '/');

		snprintf(buf, sizeof(buf), "[%s]", b ? b + 1 : m->path);
		f->function = ls_stacktab_str(u->tab, buf);
		f->module = ls_stacktab_str(u->tab, m->path);
		return;
	}
	hex_frame(u, pc, m ? (m->path[0] ? m->path : "[anonymous]") : "[unmapped]", f);
}

/* The frames pc runs in, with the frame whose slots are given (NULL: none): one,
 * or for optimised JS code the functions inlined at pc and then the frame's own
 * (at most max). The count, 1 when f is unnamed (f->function NULL). */
static uint32_t user_frames(struct ls_unwinder *u, uint64_t pc, int is_return, const uint64_t *slot,
			    struct ls_frame *f, uint32_t max)
{
	const struct ls_proc_map *m = find_map(u, pc);
	struct ls_nsym_hit hit = { 0 };
	struct ls_v8_frame jf[16];
	uint64_t at = is_return ? pc - 1 : pc;
	int maybe_js, nj;

	memset(f, 0, sizeof(*f));
	f->kind = LS_FRAME_NATIVE;
	if (m && m->path[0] == '/')
		ls_nsym_resolve(u->nsym, u->pid, m, at, 0, &hit);
	/* V8's code: its builtins (symbols Builtins_*, or no symbol at all in a binary
	 * without .symtab) and what it compiled at run time; ls_v8_frames() checks the rest */
	maybe_js = u->v8 && slot && (!hit.function || !strncmp(hit.function, "Builtins_", 9));
	if (maybe_js && (nj = ls_v8_frames(u->v8, slot, pc, (is_return ? LS_V8_PC_RETURN : 0) |
					   (hit.function ? LS_V8_PC_BUILTIN : 0), jf,
					   (int)(max < 16 ? max : 16))) > 0) {
		for (int i = 0; i < nj; i++) {
			memset(&f[i], 0, sizeof(f[i]));
			f[i].kind = LS_FRAME_JS;
			f[i].function = ls_stacktab_str(u->tab, jf[i].function);
			f[i].file = ls_stacktab_str(u->tab, jf[i].file);
			f[i].line = jf[i].line;
			f[i].column = jf[i].column;
			f[i].module = jf[i].builtin ? ls_stacktab_str(u->tab, "[JS builtin]") : NULL;
		}
		return (uint32_t)nj;
	}
	user_native(u, pc, at, m, &hit, maybe_js, slot, f);
	return 1;
}

/* The target of the direct call (call rel32) that ends just before ret, or 0. A
 * record found by a stack scan may be stale (left in the leaf's frame by an earlier
 * call); one whose return address follows a call of the leaf's own function is not. */
static uint64_t call_target(struct ls_unwinder *u, uint64_t ret)
{
	uint8_t b[5];
	int32_t rel;

	if (ret < 5 || ls_proc_read_mem(u->pid, ret - 5, b, sizeof(b)) || b[0] != 0xe8)
		return 0;
	memcpy(&rel, b + 1, 4);
	return ret + (uint64_t)(int64_t)rel;
}

/* Start of the native function holding pc in the target, or 0; its size in *size
 * when size is not NULL. */
static uint64_t func_start(struct ls_unwinder *u, uint64_t pc, uint64_t *size)
{
	const struct ls_proc_map *m = find_map(u, pc);
	struct ls_nsym_hit hit;

	if (!m || m->path[0] != '/' || ls_nsym_resolve(u->nsym, u->pid, m, pc, 0, &hit) || !hit.function)
		return 0;
	if (size)
		*size = hit.sym_size;
	return pc - (hit.vaddr - hit.sym_addr);
}

/* Does a call instruction end just before ret: call rel32, or call through a
 * register or memory (ff /2, any addressing form)? A stale or made-up return
 * address usually does not. */
static int follows_call(struct ls_unwinder *u, uint64_t ret)
{
	uint8_t b[7];

	if (ret < sizeof(b) || ls_proc_read_mem(u->pid, ret - sizeof(b), b, sizeof(b)))
		return 0;
	if (b[2] == 0xe8)
		return 1;
	for (unsigned k = 2; k <= 7; k++) {
		uint8_t op = b[7 - k], modrm = b[8 - k], mod = modrm >> 6, rm = modrm & 7;
		unsigned len = 2;

		if (op != 0xff || ((modrm >> 3) & 7) != 2)
			continue;
		if (mod != 3 && rm == 4)	/* SIB */
			len += 1 + (mod == 0 && (b[9 - k] & 7) == 5 ? 4 : 0);
		if (mod == 1)
			len += 1;
		else if (mod == 2 || (mod == 0 && rm == 5))
			len += 4;
		if (len == k)
			return 1;
	}
	return 0;
}

#define LEAF_NEAR (64u << 10)	/* where a leaf's dispatchers are looked for */

/* A scan found no caller for a leaf: register it in the sampler's leaves[], with the
 * direct-call targets that enter it: the leaf itself and each function that jumps to
 * it (jmp or jcc rel32) within its first 256 bytes, LEAF_NEAR either side of it (a
 * dispatcher). Once per leaf; nothing when the slots are taken. */
static void register_leaf(struct ls_unwinder *u, uint64_t pc)
{
	const struct ls_proc_map *m;
	struct ls_leaf *slot = NULL, leaf = { 0 };
	uint64_t start, size = 0, lo, hi;
	unsigned nt = 0;
	uint8_t *code;

	if (!u->leaves || !(start = func_start(u, pc, &size)) || !size || !(m = find_map(u, pc)))
		return;
	for (unsigned i = 0; i < u->ntried; i++)
		if (u->tried[i] == start)
			return;
	if (u->ntried == sizeof(u->tried) / sizeof(u->tried[0]))
		return;
	u->tried[u->ntried++] = start;
	for (unsigned i = 0; i < LS_LEAF_MAX && !slot; i++)
		if (!u->leaves[i].lo)
			slot = &u->leaves[i];
	if (!slot)
		return;
	leaf.hi = start + size;
	leaf.target[nt++] = start;
	lo = start - m->start > LEAF_NEAR ? start - LEAF_NEAR : m->start;
	hi = m->end - start > LEAF_NEAR ? start + LEAF_NEAR : m->end;
	code = malloc(hi - lo);
	if (code && !ls_proc_read_mem(u->pid, lo, code, hi - lo)) {
		for (uint64_t i = 0; i + 6 <= hi - lo && nt < LS_LEAF_TARGETS; i++) {
			unsigned len = code[i] == 0xe9 ? 5 : code[i] == 0x0f && (code[i + 1] & 0xf0) == 0x80 ? 6 : 0;
			int32_t rel;
			uint64_t f;
			int dup = 0;

			if (!len)
				continue;
			memcpy(&rel, code + i + len - 4, 4);
			if (lo + i + len + (uint64_t)(int64_t)rel != start)
				continue;
			f = func_start(u, lo + i, NULL);
			if (!f || lo + i - f >= 256)
				continue;
			for (unsigned j = 0; j < nt; j++)
				dup |= leaf.target[j] == f;
			if (!dup)
				leaf.target[nt++] = f;
		}
	}
	free(code);
	memcpy(slot->target, leaf.target, sizeof(leaf.target));
	slot->hi = leaf.hi;
	__atomic_store_n(&slot->lo, start, __ATOMIC_RELEASE);
}

uint32_t ls_unwind(struct ls_unwinder *u, const struct ls_raw *r, size_t len, struct ls_frame *out, uint32_t max)
{
	uint32_t n = 0, nf = r->nframes, nk = r->nkframes;
	size_t have = len >= offsetof(struct ls_raw, frames) ? (len - offsetof(struct ls_raw, frames)) /
								 sizeof(struct ls_raw_frame) : 0;
	uint64_t pc;

	if (len < offsetof(struct ls_raw, frames))
		return 0;
	if (nf > have)
		nf = (uint32_t)have;
	if (nf > LS_RAW_DEPTH)
		nf = LS_RAW_DEPTH;
	if (nk > LS_RAW_KDEPTH)
		nk = LS_RAW_KDEPTH;
	for (uint32_t i = 0; i < nk && n < max; i++) {
		struct ls_frame *f = &out[n++];
		const char *name = ksym_name(u, r->kip[i]);

		memset(f, 0, sizeof(*f));
		f->kind = LS_FRAME_KERNEL;
		if (name) {
			f->function = ls_stacktab_str(u->tab, name);
			f->module = ls_stacktab_str(u->tab, "[kernel]");
		} else {
			hex_frame(u, r->kip[i], "[kernel]", f);
		}
	}
	pc = r->pc;
	if ((r->flags & (LS_RAW_F_SCANNED | LS_RAW_F_LEAFRET)) == LS_RAW_F_SCANNED && !nf)
		register_leaf(u, pc);	/* the scan found no record at all */
	if ((r->flags & LS_RAW_F_LEAFRET) && n < max) {
		/* the scan found the leaf's return address (a direct call of the leaf, or
		 * of a dispatcher that jumps to it), and frames[] start at its caller's
		 * frame record: the leaf, then the caller, then the records */
		if (user_frames(u, pc, 0, NULL, &out[n], max - n) && out[n].function)
			n++;
		pc = r->ret0;
	}
	for (uint32_t i = 0; pc && n < max; i++) {
		int is_return = i > 0 || (r->flags & LS_RAW_F_LEAFRET);
		uint32_t k;

		if (is_return && !find_map(u, pc))
			break;	/* a return address in no mapping: the chain ran off the stack */
		if (i == 1 && (r->flags & LS_RAW_F_LEAFRET) && !follows_call(u, pc))
			break;	/* the record the scan took is no call's */
		if (i == 1 && (r->flags & (LS_RAW_F_SCANNED | LS_RAW_F_LEAFRET)) == LS_RAW_F_SCANNED) {
			uint64_t leaf = func_start(u, r->pc, NULL);

			if (!leaf || call_target(u, pc) != leaf) {
				register_leaf(u, r->pc);
				break;	/* not provably the leaf's caller: only the leaf is known */
			}
		}
		k = user_frames(u, pc, is_return, i < nf ? (const uint64_t *)r->frames[i].slot : NULL, &out[n], max - n);
		if (out[n].function)
			n += k;
		if (i >= nf)
			break;
		pc = r->frames[i].slot[LS_RAW_RET_SLOT];
	}
	return n;
}
