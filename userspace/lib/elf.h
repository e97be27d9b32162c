/* elf.h: the one ELF reader of the agent (libelf). Symbols of .symtab and .dynsym,
 * program headers (virtual address <-> file offset), bytes of the file image, GOT
 * slots of imports and stapsdt (USDT) notes.
 *
 * Addresses are the ELF's link-time virtual addresses: add the load bias to find
 * them in a running process (proc.h: ls_proc_file_addr); uprobes take file offsets
 * (ls_elf_file_offset). Errors are negative errno.
 */
#ifndef LS_ELF_H
#define LS_ELF_H

#include <stddef.h>
#include <stdint.h>

struct ls_elf;

struct ls_elf_sym {
	uint64_t addr;		/* 0 when not found */
	uint64_t size;
	uint32_t from_dynsym;	/* found only in .dynsym */
};

/* A symbol wanted by name; names ending in '*' match by prefix (mangled C++ names
 * whose argument types vary between versions). */
struct ls_elf_want {
	const char *name;
	struct ls_elf_sym *out;
};

/* One defined symbol as ls_elf_symbols() passes it; name points into the ELF's
 * string table and lives until ls_elf_close(). */
struct ls_elf_symbol {
	const char *name;
	uint64_t addr;
	uint64_t size;
	uint8_t type;		/* STT_FUNC, STT_OBJECT, STT_NOTYPE, ... */
	uint8_t bind;		/* STB_LOCAL, STB_GLOBAL, STB_WEAK */
	uint32_t from_dynsym;	/* 0: .symtab, 1: .dynsym */
};

/* Which tables ls_elf_symbols() walks. */
enum ls_elf_table {
	LS_ELF_SYMTAB = 1 << 0,
	LS_ELF_DYNSYM = 1 << 1,
};

int ls_elf_open(const char *path, struct ls_elf **out);
void ls_elf_close(struct ls_elf *e);

/* Calls fn for every defined symbol with a name and a non-zero address, first in
 * .symtab then in .dynsym (as tables selects); a non-zero return from fn stops the
 * walk and is returned. 0 when the walk ended. */
int ls_elf_symbols(const struct ls_elf *e, unsigned tables,
		   int (*fn)(const struct ls_elf_symbol *s, void *ctx), void *ctx);
/* The wanted symbols (functions, objects or untyped): one pass over .symtab, then one
 * over .dynsym for what is still missing. Returns how many of the n were found (0..n). */
int ls_elf_lookup(const struct ls_elf *e, const struct ls_elf_want *want, size_t n);

/* The function symbol (STT_FUNC, .symtab first) whose extent holds addr, and its
 * name (truncated to namelen); -ENOENT when none does. One pass over the tables. */
int ls_elf_func_at(const struct ls_elf *e, uint64_t addr, struct ls_elf_sym *out, char *name, size_t namelen);

int ls_elf_has_symtab(const struct ls_elf *e);
int ls_elf_is_pie(const struct ls_elf *e);		/* ET_DYN: needs a load bias */
uint64_t ls_elf_first_vaddr(const struct ls_elf *e);	/* lowest PT_LOAD p_vaddr, page-aligned */
/* File offset of vaddr (inside a PT_LOAD with file bytes) or -ENOENT. */
int ls_elf_file_offset(const struct ls_elf *e, uint64_t vaddr, uint64_t *off);
/* Virtual address of file offset off (inside a PT_LOAD's file bytes) or -ENOENT. */
int ls_elf_vaddr(const struct ls_elf *e, uint64_t off, uint64_t *vaddr);
/* Copy len bytes of the file image at vaddr. */
int ls_elf_read(const struct ls_elf *e, uint64_t vaddr, void *buf, size_t len);

/* GOT slots of functions the ELF imports (R_X86_64_JUMP_SLOT / GLOB_DAT relocations
 * naming undefined .dynsym symbols): slots[k] for names[k], 0 when not imported.
 * Returns how many were found. */
int ls_elf_import_slots(const struct ls_elf *e, const char *const *names, size_t n, uint64_t *slots);

/* 1 if a .note.stapsdt note names provider (a USDT provider), else 0. */
int ls_elf_has_usdt_provider(const struct ls_elf *e, const char *provider);

#endif /* LS_ELF_H */
