/* elf.c: the agent's one ELF reader (elf.h), over libelf. */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elf.h"

#define NT_STAPSDT 3

struct ls_elf {
	int fd;
	Elf *elf;
	int has_symtab;
	int pie;
	size_t nphdr;
	GElf_Phdr *phdr;
};

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
	ls_elf_close(e);
	return err;
}

void ls_elf_close(struct ls_elf *e)
{
	if (!e)
		return;
	if (e->elf)
		elf_end(e->elf);
	if (e->fd >= 0)
		close(e->fd);
	free(e->phdr);
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

struct lookup {
	const struct ls_elf_want *want;
	size_t n;
	size_t found;
};

static int name_matches(const char *want, const char *have)
{
	size_t n = strlen(want);

	if (n && want[n - 1] == '*')
		return !strncmp(want, have, n - 1);
	return !strcmp(want, have);
}

/* Fills still-empty wanted symbols; stops the walk once all are found. */
static int lookup_one(const struct ls_elf_symbol *s, void *ctx)
{
	struct lookup *l = ctx;

	if (s->type != STT_FUNC && s->type != STT_OBJECT && s->type != STT_NOTYPE)
		return 0;
	for (size_t k = 0; k < l->n; k++) {
		struct ls_elf_sym *out = l->want[k].out;

		if (out->addr || !name_matches(l->want[k].name, s->name))
			continue;
		out->addr = s->addr;
		out->size = s->size;
		out->from_dynsym = s->from_dynsym;
		l->found++;
	}
	return l->found == l->n;
}

int ls_elf_lookup(const struct ls_elf *e, const struct ls_elf_want *want, size_t n)
{
	struct lookup l = { .want = want, .n = n };

	for (size_t k = 0; k < n; k++)
		memset(want[k].out, 0, sizeof(*want[k].out));
	if (n)
		ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, lookup_one, &l);
	return (int)l.found;
}

struct func_at {
	uint64_t addr;
	struct ls_elf_sym *out;
	char *name;
	size_t namelen;
};

static int func_at_one(const struct ls_elf_symbol *s, void *ctx)
{
	struct func_at *f = ctx;

	if (s->type != STT_FUNC || f->addr < s->addr || f->addr >= s->addr + s->size)
		return 0;
	f->out->addr = s->addr;
	f->out->size = s->size;
	f->out->from_dynsym = s->from_dynsym;
	snprintf(f->name, f->namelen, "%s", s->name);
	return 1;
}

int ls_elf_func_at(const struct ls_elf *e, uint64_t addr, struct ls_elf_sym *out, char *name, size_t namelen)
{
	struct func_at f = { .addr = addr, .out = out, .name = name, .namelen = namelen };

	memset(out, 0, sizeof(*out));
	return ls_elf_symbols(e, LS_ELF_SYMTAB | LS_ELF_DYNSYM, func_at_one, &f) == 1 ? 0 : -ENOENT;
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
