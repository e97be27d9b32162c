/* elf.c: the agent's one ELF reader (elf.h), over libelf. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf.h"

#define NT_STAPSDT 3

/* One defined symbol of the index, in walk order (.symtab first, then .dynsym), so
 * "the first one found" keeps meaning what a walk finds first. */
struct ix_sym {
	const char *name;
	uint64_t addr;
	uint64_t size;
	uint32_t next;		/* the next symbol (by walk order) of the same bucket, or NONE */
	uint8_t type;
	uint8_t from_dynsym;
};

#define NONE UINT32_MAX
/* Symbols are hashed on their first HASH_LEN bytes, so a wanted prefix at least that
 * long finds its candidates in one bucket (the prefixes the backends look up are
 * 25 bytes or more); a shorter prefix is a walk of the index. */
#define HASH_LEN 24

/* The symbol index, built on the first lookup: a lookup or address query is then a
 * hash probe or a binary search instead of a pass over ~200k symbols (Node's). */
struct sym_index {
	struct ix_sym *syms;
	size_t n;
	uint32_t *head;		/* nbuckets first symbols, NONE when empty */
	size_t nbuckets;	/* a power of two */
	struct ix_sym **funcs;	/* STT_FUNC with a size, by address; made on the first query */
	size_t nfuncs;
};

static void ix_free(struct sym_index *ix);

struct ls_elf {
	int fd;
	Elf *elf;
	int has_symtab;
	int pie;
	size_t nphdr;
	GElf_Phdr *phdr;
	struct sym_index *ix;		/* NULL until needed (or when it could not be built) */
	struct stat st;			/* the file's identity when opened */
};

/* The last ELF closed, kept for the next open of the same file: an attach opens a
 * target's executable three times (identify it, plan the probes, read V8's metadata)
 * and its symbol index is the costly part. One slot, so at most one file stays open. */
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ls_elf *idle;

static void elf_destroy(struct ls_elf *e);

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int ls_elf_open(const char *path, struct ls_elf **out)
{
	struct ls_elf *e = NULL;
	GElf_Ehdr eh;
	Elf_Scn *scn = NULL;
	int err;

	*out = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (e->fd < 0) {
		err = -errno;
		goto cleanup;
	}
	if (fstat(e->fd, &e->st)) {
		err = -errno;
		goto cleanup;
	}
	pthread_mutex_lock(&idle_lock);
	if (idle && same_file(&idle->st, &e->st)) {
		struct ls_elf *kept = idle;

		idle = NULL;
		pthread_mutex_unlock(&idle_lock);
		close(e->fd);
		free(e);
		*out = kept;
		return 0;
	}
	pthread_mutex_unlock(&idle_lock);
	e->elf = elf_begin(e->fd, ELF_C_READ_MMAP, NULL);
	if (!e->elf || elf_kind(e->elf) != ELF_K_ELF || !gelf_getehdr(e->elf, &eh)) {
		err = -ENOEXEC;
		goto cleanup;
	}
	e->pie = eh.e_type == ET_DYN;
	if (elf_getphdrnum(e->elf, &e->nphdr)) {
		err = -ENOEXEC;
		goto cleanup;
	}
	e->phdr = calloc(e->nphdr ? e->nphdr : 1, sizeof(*e->phdr));
	if (!e->phdr) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (size_t i = 0; i < e->nphdr; i++)
		if (!gelf_getphdr(e->elf, (int)i, &e->phdr[i])) {
			err = -ENOEXEC;
			goto cleanup;
		}
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			e->has_symtab = 1;
	}
	*out = e;
	return 0;
cleanup:
	elf_destroy(e);
	return err;
}

void ls_elf_close(struct ls_elf *e)
{
	struct ls_elf *old;

	if (!e)
		return;
	pthread_mutex_lock(&idle_lock);
	old = idle;
	idle = e;
	pthread_mutex_unlock(&idle_lock);
	elf_destroy(old);
}

static void elf_destroy(struct ls_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e->phdr);
	ix_free(e->ix);
	free(e);
}

int ls_elf_has_symtab(const struct ls_elf *e) { return e->has_symtab; }
int ls_elf_is_pie(const struct ls_elf *e) { return e->pie; }

uint64_t ls_elf_first_vaddr(const struct ls_elf *e)
{
	uint64_t lo = UINT64_MAX;

	for (size_t i = 0; i < e->nphdr; i++)
		if (e->phdr[i].p_type == PT_LOAD && e->phdr[i].p_vaddr < lo)
			lo = e->phdr[i].p_vaddr;
	return lo == UINT64_MAX ? 0 : lo & ~0xfffull;
}

int ls_elf_file_offset(const struct ls_elf *e, uint64_t vaddr, uint64_t *off)
{
	for (size_t i = 0; i < e->nphdr; i++) {
		const GElf_Phdr *p = &e->phdr[i];

		if (p->p_type == PT_LOAD && vaddr >= p->p_vaddr && vaddr < p->p_vaddr + p->p_filesz) {
			*off = vaddr - p->p_vaddr + p->p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

int ls_elf_vaddr(const struct ls_elf *e, uint64_t off, uint64_t *vaddr)
{
	for (size_t i = 0; i < e->nphdr; i++) {
		const GElf_Phdr *p = &e->phdr[i];

		if (p->p_type == PT_LOAD && off >= p->p_offset && off < p->p_offset + p->p_filesz) {
			*vaddr = off - p->p_offset + p->p_vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

int ls_elf_read(const struct ls_elf *e, uint64_t vaddr, void *buf, size_t len)
{
	uint64_t off, end;
	ssize_t n;
	int err = ls_elf_file_offset(e, vaddr, &off);

	if (err)
		return err;
	if (len && (err = ls_elf_file_offset(e, vaddr + len - 1, &end)))
		return err;
	n = pread(e->fd, buf, len, (off_t)off);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Every defined, named, non-zero symbol of the sections of type shtype. */
static int walk_table(const struct ls_elf *e, Elf64_Word shtype,
		      int (*fn)(const struct ls_elf_symbol *s, void *ctx), void *ctx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;
		size_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != shtype || !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			struct ls_elf_symbol s;
			GElf_Sym sym;
			int r;

			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF || !sym.st_value ||
			    !sym.st_name)
				continue;
			s.name = elf_strptr(e->elf, sh.sh_link, sym.st_name);
			if (!s.name || !*s.name)
				continue;
			s.addr = sym.st_value;
			s.size = sym.st_size;
			s.type = GELF_ST_TYPE(sym.st_info);
			s.bind = GELF_ST_BIND(sym.st_info);
			s.from_dynsym = shtype == SHT_DYNSYM;
			r = fn(&s, ctx);
			if (r)
				return r;
		}
	}
	return 0;
}

int ls_elf_symbols(const struct ls_elf *e, unsigned tables,
		   int (*fn)(const struct ls_elf_symbol *s, void *ctx), void *ctx)
{
	int r = 0;

	if (tables & LS_ELF_SYMTAB)
		r = walk_table(e, SHT_SYMTAB, fn, ctx);
	if (!r && (tables & LS_ELF_DYNSYM))
		r = walk_table(e, SHT_DYNSYM, fn, ctx);
	return r;
}

struct ix_build {
	struct sym_index *ix;
	size_t cap;
};

static int ix_add(const struct ls_elf_symbol *s, void *ctx)
{
	struct ix_build *b = ctx;
	struct sym_index *ix = b->ix;

	if (ix->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		struct ix_sym *g;

		if (cap >= NONE || !(g = realloc(ix->syms, cap * sizeof(*g))))
			return -ENOMEM;
		ix->syms = g;
		b->cap = cap;
	}
	ix->syms[ix->n++] = (struct ix_sym){ .name = s->name, .addr = s->addr, .size = s->size, .next = NONE,
					     .type = s->type, .from_dynsym = (uint8_t)s->from_dynsym };
	return 0;
}

/* FNV-1a of the first HASH_LEN bytes of name (or of its first len, if shorter). */
static uint64_t name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len && i < HASH_LEN && name[i]; i++)
		h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
	return h;
}

static void ix_free(struct sym_index *ix)
{
	if (!ix)
		return;
	free(ix->syms);
	free(ix->head);
	free(ix->funcs);
	free(ix);
}

/* e's index, built once: one walk of both tables; NULL without memory. */
static struct sym_index *sym_index(const struct ls_elf *e)
{
	struct ls_elf *m = (struct ls_elf *)e;	/* the index is a cache, not a change */
	struct ix_build b = { 0 };
	struct sym_index *ix;

	if (m->ix)
		return m->ix;
	ix = b.ix = calloc(1, sizeof(*ix));
	if (!ix || ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, ix_add, &b))
		goto fail;
	for (ix->nbuckets = 1024; ix->nbuckets < ix->n; ix->nbuckets *= 2)
		;
	ix->head = malloc(ix->nbuckets * sizeof(*ix->head));
	if (!ix->head)
		goto fail;
	memset(ix->head, 0xff, ix->nbuckets * sizeof(*ix->head));
	/* pushed last to first, so each bucket lists its symbols in walk order */
	for (size_t i = ix->n; i-- > 0;) {
		uint32_t *h = &ix->head[name_hash(ix->syms[i].name, SIZE_MAX) & (ix->nbuckets - 1)];

		ix->syms[i].next = *h;
		*h = (uint32_t)i;
	}
	m->ix = ix;
	return ix;
fail:
	ix_free(ix);
	return NULL;
}

static int lookup_type(uint8_t t) { return t == STT_FUNC || t == STT_OBJECT || t == STT_NOTYPE; }

/* The wanted symbol as a walk of .symtab then .dynsym finds it first: a function,
 * object or untyped symbol named name (or, for "prefix*", whose name starts so). */
static const struct ix_sym *ix_find(const struct sym_index *ix, const char *name)
{
	size_t len = strlen(name);
	int prefix = len && name[len - 1] == '*';
	size_t klen = prefix ? len - 1 : len;

	if (!len)
		return NULL;
	if (prefix && klen < HASH_LEN) {	/* the bucket does not tell: walk */
		for (size_t i = 0; i < ix->n; i++)
			if (lookup_type(ix->syms[i].type) && !strncmp(ix->syms[i].name, name, klen))
				return &ix->syms[i];
		return NULL;
	}
	for (uint32_t i = ix->head[name_hash(name, klen) & (ix->nbuckets - 1)]; i != NONE; i = ix->syms[i].next) {
		const struct ix_sym *s = &ix->syms[i];

		if (lookup_type(s->type) && !strncmp(s->name, name, klen) && (prefix || !s->name[klen]))
			return s;
	}
	return NULL;
}

int ls_elf_lookup(const struct ls_elf *e, const struct ls_elf_want *want, size_t n)
{
	const struct sym_index *ix;
	int found = 0;

	for (size_t k = 0; k < n; k++)
		memset(want[k].out, 0, sizeof(*want[k].out));
	if (!n || !(ix = sym_index(e)))
		return 0;
	for (size_t k = 0; k < n; k++) {
		const struct ix_sym *s = ix_find(ix, want[k].name);

		if (!s)
			continue;
		want[k].out->addr = s->addr;
		want[k].out->size = s->size;
		want[k].out->from_dynsym = s->from_dynsym;
		found++;
	}
	return found;
}

static int by_addr_cmp(const void *a, const void *b)
{
	const struct ix_sym *x = *(const struct ix_sym *const *)a, *y = *(const struct ix_sym *const *)b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x > y) - (x < y);	/* walk order */
}

/* The functions of the index by address, made on the first address query. */
static int func_index(struct sym_index *ix)
{
	if (ix->funcs || !ix->n)
		return ix->n ? 0 : -ENOENT;
	ix->funcs = calloc(ix->n, sizeof(*ix->funcs));
	if (!ix->funcs)
		return -ENOMEM;
	for (size_t i = 0; i < ix->n; i++)
		if (ix->syms[i].type == STT_FUNC && ix->syms[i].size)
			ix->funcs[ix->nfuncs++] = &ix->syms[i];
	if (ix->nfuncs > 1)
		qsort(ix->funcs, ix->nfuncs, sizeof(*ix->funcs), by_addr_cmp);
	return 0;
}

/* How far back from the last function starting at or below an address the search
 * for one whose extent holds it looks (aliases and nested parts share a start). */
#define FUNC_AT_SCAN 64

int ls_elf_func_at(const struct ls_elf *e, uint64_t addr, struct ls_elf_sym *out, char *name, size_t namelen)
{
	struct sym_index *ix;
	const struct ix_sym *best = NULL;
	size_t lo = 0, hi;
	int err;

	memset(out, 0, sizeof(*out));
	if (!(ix = sym_index(e)))
		return -ENOMEM;
	if ((err = func_index(ix)))
		return err;
	hi = ix->nfuncs;
	while (lo < hi) {	/* lo: the first function starting above addr */
		size_t mid = lo + (hi - lo) / 2;

		if (ix->funcs[mid]->addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t k = lo, seen = 0; k > 0 && seen < FUNC_AT_SCAN; k--, seen++) {
		const struct ix_sym *s = ix->funcs[k - 1];

		if (addr < s->addr + s->size && (!best || s < best))
			best = s;
	}
	if (!best)
		return -ENOENT;
	out->addr = best->addr;
	out->size = best->size;
	out->from_dynsym = best->from_dynsym;
	snprintf(name, namelen, "%s", best->name);
	return 0;
}

int ls_elf_import_slots(const struct ls_elf *e, const char *const *names, size_t n, uint64_t *slots)
{
	Elf_Scn *scn = NULL;
	int found = 0;

	memset(slots, 0, n * sizeof(*slots));
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data, *symdata;
		Elf_Scn *symscn;
		GElf_Shdr symsh;
		size_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || !sh.sh_entsize)
			continue;
		symscn = elf_getscn(e->elf, sh.sh_link);
		if (!symscn || !gelf_getshdr(symscn, &symsh) || symsh.sh_type != SHT_DYNSYM)
			continue;
		data = elf_getdata(scn, NULL);
		symdata = elf_getdata(symscn, NULL);
		if (!data || !symdata)
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			GElf_Rela r;
			GElf_Sym sym;
			const char *name;
			uint32_t type;

			if (!gelf_getrela(data, (int)i, &r))
				continue;
			type = (uint32_t)GELF_R_TYPE(r.r_info);
			if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) ||
			    !gelf_getsym(symdata, (int)GELF_R_SYM(r.r_info), &sym) || sym.st_shndx != SHN_UNDEF)
				continue;
			name = elf_strptr(e->elf, symsh.sh_link, sym.st_name);
			for (size_t k = 0; name && k < n; k++)
				if (!slots[k] && !strcmp(names[k], name)) {
					slots[k] = r.r_offset;
					found++;
				}
		}
	}
	return found;
}

int ls_elf_has_usdt_provider(const struct ls_elf *e, const char *provider)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;

	if (elf_getshdrstrndx(e->elf, &shstrndx))
		return 0;
	while ((scn = elf_nextscn(e->elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;
		const char *name;
		size_t off = 0, noff, doff;
		GElf_Nhdr nh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		name = elf_strptr(e->elf, shstrndx, sh.sh_name);
		if (!name || strcmp(name, ".note.stapsdt"))
			continue;
		d = elf_getdata(scn, NULL);
		if (!d)
			continue;
		while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
			const char *desc = (const char *)d->d_buf + doff;
			size_t addrs = 3 * (gelf_getclass(e->elf) == ELFCLASS32 ? 4 : 8);

			if (nh.n_type != NT_STAPSDT || nh.n_namesz != sizeof("stapsdt") ||
			    memcmp((const char *)d->d_buf + noff, "stapsdt", sizeof("stapsdt")) ||
			    nh.n_descsz <= addrs)
				continue;
			/* desc: pc, base, semaphore, then "provider\0name\0args\0". */
			if (strnlen(desc + addrs, nh.n_descsz - addrs) < nh.n_descsz - addrs &&
			    !strcmp(desc + addrs, provider))
				return 1;
		}
	}
	return 0;
}
