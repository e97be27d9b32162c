/* libuv_elf.c: version and struct offsets of the libuv inside a target (lib/elf.h
 * for the ELF, libdw for DWARF, Capstone to decode uv_version()). */
#include <errno.h>
#include <fcntl.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
#include <capstone/capstone.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "libuv.h"
#include "proc.h"

int lu_version(const struct ls_elf *e, const struct ls_elf_sym *uv_version, uint32_t *hex)
{
	uint8_t code[16];
	csh cs = 0;
	cs_insn *insn = NULL;
	size_t n;
	int err;

	if (!uv_version->addr)
		return -ENOENT;
	err = ls_elf_read(e, uv_version->addr, code, sizeof(code));
	if (err)
		return err;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	n = cs_disasm(cs, code, sizeof(code), uv_version->addr, 4, &insn);
	err = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		const cs_x86 *x = &insn[i].detail->x86;

		/* endbr64 (CET), and a frame-pointer prologue (Node 26 builds keep one) */
		if (insn[i].id == X86_INS_ENDBR64 ||
		    (insn[i].id == X86_INS_PUSH && x->op_count == 1 && x->operands[0].type == X86_OP_REG &&
		     x->operands[0].reg == X86_REG_RBP) ||
		    (insn[i].id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		     x->operands[0].reg == X86_REG_RBP && x->operands[1].type == X86_OP_REG &&
		     x->operands[1].reg == X86_REG_RSP))
			continue;
		/* uv_version(): mov $UV_VERSION_HEX, %eax; ret */
		if (insn[i].id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].reg == X86_REG_EAX && x->operands[1].type == X86_OP_IMM &&
		    x->operands[1].imm >= 0x10000 && x->operands[1].imm < 0x1000000) {
			*hex = (uint32_t)x->operands[1].imm;
			err = 0;
		}
		break;
	}
	if (n)
		cs_free(insn, n);
	cs_close(&cs);
	return err;
}

/* ---- DWARF ---- */

static int die_name_is(Dwarf_Die *d, const char *name)
{
	const char *n = dwarf_diename(d);

	return n && !strcmp(n, name);
}

/* The struct a type chain (typedef / const / volatile) ends in. */
static int peel_type(Dwarf_Die *d, Dwarf_Die *out)
{
	Dwarf_Attribute a;
	Dwarf_Die cur = *d;

	for (int i = 0; i < 8; i++) {
		int tag = dwarf_tag(&cur);

		if (tag == DW_TAG_structure_type || tag == DW_TAG_union_type) {
			*out = cur;
			return 0;
		}
		if (!dwarf_attr_integrate(&cur, DW_AT_type, &a) || !dwarf_formref_die(&a, &cur))
			return -ENOENT;
	}
	return -ENOENT;
}

/* Offset of member name in struct sdie; with sub, of sub inside that member. */
static int member_offset(Dwarf_Die *sdie, const char *name, const char *sub, uint32_t *off)
{
	Dwarf_Die m;

	if (dwarf_child(sdie, &m) != 0)
		return -ENOENT;
	do {
		Dwarf_Attribute a;
		Dwarf_Word w = 0;

		if (dwarf_tag(&m) != DW_TAG_member || !die_name_is(&m, name))
			continue;
		if (dwarf_attr_integrate(&m, DW_AT_data_member_location, &a) && dwarf_formudata(&a, &w))
			return -ENOENT;
		if (sub) {
			Dwarf_Die t, inner;
			uint32_t o2;

			if (!dwarf_attr_integrate(&m, DW_AT_type, &a) || !dwarf_formref_die(&a, &t) ||
			    peel_type(&t, &inner) || member_offset(&inner, sub, NULL, &o2))
				return -ENOENT;
			w += o2;
		}
		*off = (uint32_t)w;
		return 0;
	} while (dwarf_siblingof(&m, &m) == 0);
	return -ENOENT;
}

/* A complete (non-declaration) struct named name directly under a CU. */
static int find_struct(Dwarf_Die *cu, const char *name, Dwarf_Die *out)
{
	Dwarf_Die c;

	if (dwarf_child(cu, &c) != 0)
		return -ENOENT;
	do {
		if (dwarf_tag(&c) == DW_TAG_structure_type && die_name_is(&c, name) &&
		    !dwarf_hasattr(&c, DW_AT_declaration)) {
			*out = c;
			return 0;
		}
	} while (dwarf_siblingof(&c, &c) == 0);
	return -ENOENT;
}

/* The metrics fields (struct lu_offsets, mx_*) from the structs of libuv's
 * uv-common.h found so far; 1 once all are known. */
struct mx_dwarf {
	int have_if, have_lm, have_m, old_lm;
	uint32_t lm, flags, metrics, entry, idle, count;
};

static void metrics_dwarf_cu(Dwarf_Die *cu, struct mx_dwarf *x)
{
	Dwarf_Die s;

	if (!x->have_if && !find_struct(cu, "uv__loop_internal_fields_s", &s) &&
	    !member_offset(&s, "flags", NULL, &x->flags) && !member_offset(&s, "loop_metrics", NULL, &x->lm))
		x->have_if = 1;
	if (!x->have_lm && !find_struct(cu, "uv__loop_metrics_s", &s) &&
	    !member_offset(&s, "provider_entry_time", NULL, &x->entry) &&
	    !member_offset(&s, "provider_idle_time", NULL, &x->idle)) {
		x->have_lm = 1;
		/* libuv 1.44 has no uv_metrics_t inside: no loop_count */
		x->old_lm = member_offset(&s, "metrics", NULL, &x->metrics) != 0;
	}
	if (!x->have_m && !find_struct(cu, "uv_metrics_s", &s) && !member_offset(&s, "loop_count", NULL, &x->count))
		x->have_m = 1;
}

static int metrics_dwarf_done(const struct mx_dwarf *x)
{
	return x->have_if && x->have_lm && (x->old_lm || x->have_m);
}

int lu_offsets_dwarf(const char *path, struct lu_offsets *o)
{
	Dwarf *dw = NULL;
	Dwarf_Off off = 0, next;
	size_t hsize;
	int fd, err = -ENOENT, have_loop = 0, have_timer = 0;
	struct lu_offsets r = { 0 };
	struct mx_dwarf x = { 0 };

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dw = dwarf_begin(fd, DWARF_C_READ);
	if (!dw)
		goto cleanup;
	while (!(have_loop && have_timer && metrics_dwarf_done(&x)) &&
	       dwarf_nextcu(dw, off, &next, &hsize, NULL, NULL, NULL) == 0) {
		Dwarf_Die cu, s;

		if (dwarf_offdie(dw, off + hsize, &cu)) {
			Dwarf_Word sz;

			if (!metrics_dwarf_done(&x))
				metrics_dwarf_cu(&cu, &x);
			if (!have_loop && !find_struct(&cu, "uv_loop_s", &s) &&
			    member_offset(&s, "internal_fields", NULL, &r.internal_fields))
				r.internal_fields = 0;

			if (!have_loop && !find_struct(&cu, "uv_loop_s", &s) &&
			    !member_offset(&s, "timer_heap", "min", &r.heap_min) &&
			    !member_offset(&s, "timer_heap", "nelts", &r.heap_nelts) &&
			    !member_offset(&s, "time", NULL, &r.time) &&
			    !member_offset(&s, "backend_fd", NULL, &r.backend_fd)) {
				Dwarf_Attribute a;

				if (dwarf_attr(&s, DW_AT_byte_size, &a) && !dwarf_formudata(&a, &sz)) {
					r.loop_size = (uint32_t)sz;
					have_loop = 1;
				}
			}
			if (!have_timer && !find_struct(&cu, "uv_timer_s", &s) &&
			    !member_offset(&s, "loop", NULL, &r.timer_loop) &&
			    !member_offset(&s, "timeout", NULL, &r.timer_timeout) &&
			    (!member_offset(&s, "heap_node", NULL, &r.timer_node) ||
			     !member_offset(&s, "node", NULL, &r.timer_node)))
				have_timer = 1;
		}
		off = next;
	}
	if (have_loop && have_timer) {
		if (r.internal_fields && metrics_dwarf_done(&x)) {
			r.have_metrics = 1;
			r.mx_flags = x.flags;
			r.mx_entry = x.lm + x.entry;
			r.mx_idle = x.lm + x.idle;
			r.mx_count = x.old_lm ? 0 : x.lm + x.metrics + x.count;
		}
		snprintf(r.source, sizeof(r.source), "DWARF");
		*o = r;
		err = 0;
	}
cleanup:
	if (dw)
		dwarf_end(dw);
	close(fd);
	return err;
}

/* x86-64 Linux, glibc. Produced by compiling offsetof() against the public headers
 * of each release tag (include/uv.h, include/uv/unix.h): 1.44.2, 1.45.0, 1.46.0,
 * 1.47.0, 1.48.0 and 1.49.0 all give the same layout (1.48 renamed heap_node to
 * node without moving it), and Node 20's DWARF for 1.46.0 agrees. */
int lu_offsets_table(uint32_t version_hex, struct lu_offsets *o)
{
	uint32_t major = version_hex >> 16, minor = (version_hex >> 8) & 0xff;
	static const struct lu_offsets v144_149 = {
		.heap_min = 520, .heap_nelts = 528, .time = 544, .backend_fd = 64, .loop_size = 848,
		.timer_loop = 8, .timer_node = 104, .timer_timeout = 128,
		.have_metrics = 1, .internal_fields = 40, .mx_flags = 0,
		.mx_count = 8, .mx_entry = 136, .mx_idle = 144,
		.source = "table for libuv 1.44-1.49",
	};

	if (major != 1 || minor < 44 || minor > 49)
		return -ENOTSUP;
	*o = v144_149;
	/* 1.44's uv__loop_metrics_t has no uv_metrics_t (loop_count) in front */
	if (minor == 44) {
		o->mx_count = 0;
		o->mx_entry = 8;
		o->mx_idle = 16;
	}
	return 0;
}

struct mx_raw {
	uint32_t flags;
	uint64_t count, events, entry, idle;
};

/* One process_vm_readv over the metrics fields (they sit within a few hundred bytes). */
static int metrics_once(pid_t pid, uint64_t fields, const struct lu_offsets *o, struct mx_raw *r)
{
	uint8_t buf[512];
	uint32_t lo = o->mx_flags, hi = o->mx_flags + 4;
	int err;

	if (o->mx_entry < lo)
		lo = o->mx_entry;
	if (o->mx_idle < lo)
		lo = o->mx_idle;
	if (o->mx_count && o->mx_count < lo)
		lo = o->mx_count;
	if (o->mx_entry + 8 > hi)
		hi = o->mx_entry + 8;
	if (o->mx_idle + 8 > hi)
		hi = o->mx_idle + 8;
	if (o->mx_count && o->mx_count + 16 > hi)
		hi = o->mx_count + 16;
	if (hi - lo > sizeof(buf))
		return -EINVAL;
	err = ls_proc_read_mem(pid, fields + lo, buf, hi - lo);
	if (err)
		return err;
	memset(r, 0, sizeof(*r));
	memcpy(&r->flags, buf + o->mx_flags - lo, 4);
	memcpy(&r->entry, buf + o->mx_entry - lo, 8);
	memcpy(&r->idle, buf + o->mx_idle - lo, 8);
	if (o->mx_count) {
		memcpy(&r->count, buf + o->mx_count - lo, 8);
		memcpy(&r->events, buf + o->mx_count + 8 - lo, 8);
	}
	return 0;
}

int lu_metrics_read(pid_t pid, uint64_t loop, const struct lu_offsets *o, struct lu_metrics *m)
{
	struct mx_raw a, b;
	struct timespec ts;
	uint64_t now;
	int err;

	if (!o->have_metrics)
		return -ENOTSUP;
	if (!m->fields && (err = ls_proc_read_mem(pid, loop + o->internal_fields, &m->fields, 8)))
		return err;
	if (!m->fields)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		/* the idle pair is updated under the loop's lock: two reads must agree on it
		 * (the loop and event counts move every iteration: the later read's) */
		if ((err = metrics_once(pid, m->fields, o, &a)) || (err = metrics_once(pid, m->fields, o, &b)))
			return err;
		if (a.entry != b.entry || a.idle != b.idle || a.flags != b.flags)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		if (b.entry > now || b.idle > now)
			return -EINVAL;
		m->flags = b.flags;
		m->loop_count = b.count;
		m->events = b.events;
		m->entry_ns = b.entry;
		m->idle_ns = b.idle;
		return ls_proc_read_mem(pid, loop + o->time, &m->time_ms, 8);
	}
	return -EAGAIN;
}

int lu_loop_check(pid_t pid, uint64_t addr, const struct lu_offsets *o, char *why, size_t whylen)
{
	uint8_t loop[4096];
	uint64_t t, min, nelts32, back = 0, now_ms;
	int32_t fd;
	uint32_t nelts;
	struct timespec ts;
	int err;

	if (o->loop_size > sizeof(loop) || o->time + 8 > o->loop_size || o->heap_min + 8 > o->loop_size ||
	    o->heap_nelts + 4 > o->loop_size || o->backend_fd + 4 > o->loop_size) {
		snprintf(why, whylen, "uv_loop_t offsets out of range");
		return -EINVAL;
	}
	err = ls_proc_read_mem(pid, addr, loop, o->loop_size);
	if (err) {
		snprintf(why, whylen, "cannot read the loop at %#llx: %s", (unsigned long long)addr, strerror(-err));
		return err;
	}
	memcpy(&t, loop + o->time, 8);
	memcpy(&min, loop + o->heap_min, 8);
	memcpy(&nelts, loop + o->heap_nelts, 4);
	memcpy(&fd, loop + o->backend_fd, 4);
	nelts32 = nelts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	/* loop->time is CLOCK_MONOTONIC in ms, refreshed every iteration (an idle loop may
	 * lag, it never leads). */
	if (t == 0 || t > now_ms + 1000) {
		snprintf(why, whylen, "loop->time %llu ms is not a recent CLOCK_MONOTONIC value (now %llu ms)",
			 (unsigned long long)t, (unsigned long long)now_ms);
		return -EINVAL;
	}
	if (fd < 0 || fd > (1 << 24)) {
		snprintf(why, whylen, "loop->backend_fd %d is not an epoll fd", fd);
		return -EINVAL;
	}
	if ((min == 0) != (nelts32 == 0) || nelts32 > 10000000) {
		snprintf(why, whylen, "timer heap min %#llx with %u elements is inconsistent",
			 (unsigned long long)min, nelts);
		return -EINVAL;
	}
	if (min) {
		err = ls_proc_read_mem(pid, min - o->timer_node + o->timer_loop, &back, 8);
		if (err || back != addr) {
			snprintf(why, whylen, "the timer at the heap minimum does not point back at the loop");
			return -EINVAL;
		}
	}
	return 0;
}

int lu_node_version(pid_t pid, uint64_t metadata, char *out, size_t len)
{
	uint64_t str[2];	/* std::string (libstdc++): data pointer, length */
	char buf[32];
	int err;

	out[0] = 0;
	err = ls_proc_read_mem(pid, metadata, str, sizeof(str));
	if (err)
		return err;
	if (!str[1] || str[1] >= sizeof(buf) || str[1] >= len)
		return -EINVAL;
	err = ls_proc_read_mem(pid, str[0], buf, (size_t)str[1]);
	if (err)
		return err;
	buf[str[1]] = 0;
	if (strspn(buf, "0123456789.") != str[1] || buf[0] == '.')
		return -EINVAL;
	memcpy(out, buf, (size_t)str[1] + 1);
	return 0;
}
