/* nativesym.h: names for machine-code addresses of a process, from the ELF
 * symbols (.symtab, else .dynsym) of each mapped object, C++ names demangled, with
 * file:line from DWARF where the object has it. One cache serves every process;
 * objects are keyed by device and inode, so the node binary is read once. */
#ifndef LS_NATIVESYM_H
#define LS_NATIVESYM_H

#include <stdint.h>
#include <sys/types.h>

#include "proc.h"

struct ls_nsym;

struct ls_nsym_hit {
	const char *function;	/* demangled, without the parameter list; NULL: no symbol covers it */
	const char *module;	/* the mapping's path */
	const char *file;	/* from DWARF, or NULL */
	uint32_t line;
	uint64_t vaddr;		/* the address in the object's own terms */
	uint64_t sym_addr;	/* start of the symbol (vaddr) */
	uint64_t sym_size;	/* its size in bytes */
};

struct ls_nsym *ls_nsym_new(void);
void ls_nsym_free(struct ls_nsym *c);
/* Start reading the symbols of mapping m's object (of pid) in a thread of its own,
 * without privileges, so that the first lookup in it does not wait for them (node's
 * take ~170 ms: samples queued meanwhile would be named late). 0 or -errno. */
int ls_nsym_preload(struct ls_nsym *c, pid_t pid, const struct ls_proc_map *m);
/* Name addr, which lies in mapping m of pid. lines: also look up file:line (dearer:
 * the first call on an object indexes its DWARF). 0, or -errno (the object cannot
 * be opened: hit->module is still set). Strings live as long as the cache. */
int ls_nsym_resolve(struct ls_nsym *c, pid_t pid, const struct ls_proc_map *m, uint64_t addr, int lines,
		    struct ls_nsym_hit *hit);
/* Demangle a C++ symbol name, dropping its parameter list; returns a malloc'd
 * string (a copy of name when it is not mangled), NULL on ENOMEM. */
char *ls_demangle(const char *name);

#endif /* LS_NATIVESYM_H */
