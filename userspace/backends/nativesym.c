/* nativesym.c: address -> symbol for mapped ELF objects (nativesym.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <linux/capability.h>
#include <sys/syscall.h>

#include "libuv.h"
#include "nativesym.h"
#include "stacktab.h"

/* libstdc++'s demangler (C linkage; -lstdc++). */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

struct ns_sym {
	uint64_t addr, size;
	const char *name;	/* mangled, in ns_obj.names */
	char *pretty;		/* demangled, made on first use */
};

struct ns_obj {
	ino_t ino;
	dev_t dev;
	char *path;
	struct ls_elf *elf;	/* NULL: could not be opened */
	struct ns_sym *syms;
	size_t nsyms, cap;
	char *names;
	size_t names_len, names_cap;
	int dw_fd;
	Dwarf *dw;
	int dw_tried;
	struct ns_obj *next;
};

struct ls_nsym {
	struct ns_obj *objs;
	struct ls_stacktab *strs;	/* file names from DWARF */
	struct ns_obj *pending;		/* being indexed by thread (ls_nsym_preload) */
	pthread_t thread;
};

struct ls_nsym *ls_nsym_new(void)
{
	struct ls_nsym *c = calloc(1, sizeof(*c));

	if (c && !(c->strs = ls_stacktab_new())) {
		free(c);
		c = NULL;
	}
	return c;
}

static void obj_free(struct ns_obj *o)
{
	for (size_t i = 0; i < o->nsyms; i++)
		free(o->syms[i].pretty);
	free(o->syms);
	free(o->names);
	free(o->path);
	if (o->dw)
		dwarf_end(o->dw);
	if (o->dw_fd >= 0)
		close(o->dw_fd);
	if (o->elf)
		ls_elf_close(o->elf);
	free(o);
}

void ls_nsym_free(struct ls_nsym *c)
{
	if (!c)
		return;
	if (c->pending) {
		pthread_join(c->thread, NULL);
		obj_free(c->pending);
	}
	while (c->objs) {
		struct ns_obj *n = c->objs->next;

		obj_free(c->objs);
		c->objs = n;
	}
	ls_stacktab_free(c->strs);
	free(c);
}

char *ls_demangle(const char *name)
{
	int status = -1, depth = 0;
	char *d = NULL;

	if (!strncmp(name, "_Z", 2))
		d = __cxa_demangle(name, NULL, NULL, &status);
	if (!d || status)
		return strdup(name);
	/* cut the parameter list: the first '(' outside template brackets that does not
	 * open "(anonymous namespace)" */
	for (char *p = d; *p; p++) {
		if (*p == '<')
			depth++;
		else if (*p == '>' && depth)
			depth--;
		else if (*p == '(' && !depth && strncmp(p, "(anonymous namespace)", 21)) {
			if (p != d)
				*p = 0;
			break;
		}
	}
	return d;
}

/* Symbols are kept names-by-offset while collecting (names may move on realloc). */
static int add_sym(const struct ls_elf_symbol *sym, void *arg)
{
	struct ns_obj *o = arg;
	const char *name = sym->name;
	uint64_t addr = sym->addr, size = sym->size;
	size_t len = strlen(name) + 1;

	if (sym->type != STT_FUNC || !size)
		return 0;
	if (o->nsyms == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 1024;
		struct ns_sym *g = realloc(o->syms, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		o->syms = g;
		o->cap = cap;
	}
	if (o->names_len + len > o->names_cap) {
		size_t cap = o->names_cap ? o->names_cap * 2 : 65536;
		char *g;

		while (cap < o->names_len + len)
			cap *= 2;
		g = realloc(o->names, cap);
		if (!g)
			return -ENOMEM;
		o->names = g;
		o->names_cap = cap;
	}
	memcpy(o->names + o->names_len, name, len);
	o->syms[o->nsyms++] = (struct ns_sym){ .addr = addr, .size = size,
					       .name = (const char *)(uintptr_t)o->names_len };
	o->names_len += len;
	return 0;
}

static int sym_cmp(const void *a, const void *b)
{
	const struct ns_sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->size > y->size ? -1 : x->size < y->size;	/* the widest first */
}

/* An object's file, opened (through map_files: the object the process mapped, even if
 * replaced on disk or in another mount namespace); its symbols are not read yet
 * (obj_index). NULL without memory; elf stays NULL when it cannot be opened. */
static struct ns_obj *obj_open(pid_t pid, const struct ls_proc_map *m)
{
	struct ns_obj *o = calloc(1, sizeof(*o));
	char path[96];

	if (!o)
		return NULL;
	o->dw_fd = -1;
	o->ino = m->ino;
	o->dev = m->dev;
	o->path = strdup(m->path);
	if (!o->path) {
		free(o);
		return NULL;
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid, (unsigned long long)m->start,
		 (unsigned long long)m->end);
	if (ls_elf_open(path, &o->elf) && ls_elf_open(m->path, &o->elf))
		o->elf = NULL;
	return o;
}

/* Its function symbols, sorted by address: for node's ~86k, ~170 ms here. */
static void obj_index(struct ns_obj *o)
{
	if (o->elf && ls_elf_symbols(o->elf, ls_elf_has_symtab(o->elf) ? LS_ELF_SYMTAB : LS_ELF_DYNSYM, add_sym, o) < 0)
		o->nsyms = 0;
	for (size_t i = 0; i < o->nsyms; i++)
		o->syms[i].name = o->names + (uintptr_t)o->syms[i].name;
	qsort(o->syms, o->nsyms, sizeof(*o->syms), sym_cmp);
}

static int obj_is(const struct ns_obj *o, const struct ls_proc_map *m)
{
	return o->ino == m->ino && o->dev == m->dev && !strcmp(o->path, m->path);
}

static void *index_thread(void *arg)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };

	/* it reads a file already open and memory of its own: no privilege (this
	 * thread's own, the process keeps its set) */
	syscall(SYS_capset, &h, d);
	obj_index(arg);
	return NULL;
}

int ls_nsym_preload(struct ls_nsym *c, pid_t pid, const struct ls_proc_map *m)
{
	struct ns_obj *o;

	if (c->pending)
		return -EBUSY;
	for (o = c->objs; o; o = o->next)
		if (obj_is(o, m))
			return 0;
	o = obj_open(pid, m);
	if (!o)
		return -ENOMEM;
	if (o->elf && !pthread_create(&c->thread, NULL, index_thread, o)) {
		c->pending = o;
		return 0;
	}
	obj_index(o);
	o->next = c->objs;
	c->objs = o;
	return 0;
}

static struct ns_obj *obj_get(struct ls_nsym *c, pid_t pid, const struct ls_proc_map *m)
{
	struct ns_obj *o;

	for (o = c->objs; o; o = o->next)
		if (obj_is(o, m))
			return o;
	if (c->pending && obj_is(c->pending, m)) {
		pthread_join(c->thread, NULL);
		o = c->pending;
		c->pending = NULL;
	} else {
		o = obj_open(pid, m);
		if (!o)
			return NULL;
		obj_index(o);
	}
	o->next = c->objs;
	c->objs = o;
	return o;
}

static struct ns_sym *sym_find(struct ns_obj *o, uint64_t vaddr)
{
	size_t lo = 0, hi = o->nsyms;

	/* the last symbol starting at or below vaddr; nested or overlapping symbols
	 * (aliases, a .cold part inside) are checked a few back */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->syms[mid].addr <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo, tries = 0; k > 0 && tries < 8; k--, tries++) {
		struct ns_sym *s = &o->syms[k - 1];

		if (vaddr < s->addr + s->size)
			return s;
	}
	return NULL;
}

static void dwarf_line(struct ls_nsym *c, struct ns_obj *o, pid_t pid, const struct ls_proc_map *m, uint64_t vaddr,
		       struct ls_nsym_hit *hit)
{
	Dwarf_Die cu;
	Dwarf_Line *line;
	const char *src;
	int lineno = 0;

	if (!o->dw_tried) {
		char path[96];

		o->dw_tried = 1;
		snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
			 (unsigned long long)m->start, (unsigned long long)m->end);
		o->dw_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (o->dw_fd < 0)
			o->dw_fd = open(m->path, O_RDONLY | O_CLOEXEC);
		if (o->dw_fd >= 0)
			o->dw = dwarf_begin(o->dw_fd, DWARF_C_READ);
	}
	if (!o->dw || !dwarf_addrdie(o->dw, vaddr, &cu))
		return;
	line = dwarf_getsrc_die(&cu, vaddr);
	if (!line || !(src = dwarf_linesrc(line, NULL, NULL)) || dwarf_lineno(line, &lineno) || lineno <= 0)
		return;
	hit->file = ls_stacktab_str(c->strs, src);
	hit->line = hit->file ? (uint32_t)lineno : 0;
}

int ls_nsym_resolve(struct ls_nsym *c, pid_t pid, const struct ls_proc_map *m, uint64_t addr, int lines,
		    struct ls_nsym_hit *hit)
{
	struct ns_obj *o;
	struct ns_sym *s;
	uint64_t vaddr;

	memset(hit, 0, sizeof(*hit));
	hit->module = m->path;
	o = obj_get(c, pid, m);
	if (!o)
		return -ENOMEM;
	hit->module = o->path;
	if (!o->elf)
		return -ENOENT;
	if (ls_elf_vaddr(o->elf, addr - m->start + m->offset, &vaddr))
		return -ENOENT;
	hit->vaddr = vaddr;
	s = sym_find(o, vaddr);
	if (s) {
		if (!s->pretty)
			s->pretty = ls_demangle(s->name);
		hit->function = s->pretty;
		hit->sym_addr = s->addr;
		hit->sym_size = s->size;
	}
	if (lines)
		dwarf_line(c, o, pid, m, vaddr, hit);
	return 0;
}
