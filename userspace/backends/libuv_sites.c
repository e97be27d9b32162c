/* libuv_sites.c: choosing instruction-exact uprobe sites with Capstone.
 *
 * A uprobe replaces the first byte of an instruction with int3. Placed inside an
 * instruction it corrupts the target, so every site here is the start of an
 * instruction found by decoding the whole function from its symbol's start. Among
 * valid sites we prefer those the kernel emulates (arch/x86/kernel/uprobes.c:
 * branch_setup_xol_ops / push_setup_xol_ops), many times cheaper per hit than an
 * instruction it must single-step out of line (bpf/README.md, "What a probe costs").
 */
#include <errno.h>
#include <capstone/capstone.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libuv.h"
#include "nodeuv.h"

int lu_insn_emulated(const uint8_t *b, size_t len)
{
	size_t i = 0;
	int p66 = 0, rex = 0;

	/* legacy prefixes, then an optional REX */
	while (i < len && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0x2e || b[i] == 0x3e || b[i] == 0xf2 ||
			   b[i] == 0xf3 || b[i] == 0x26 || b[i] == 0x36 || b[i] == 0x64 || b[i] == 0x65)) {
		if (b[i] == 0x66)
			p66 = 1;
		i++;
	}
	if (i < len && (b[i] & 0xf0) == 0x40) {
		rex = b[i];
		i++;
	}
	if (i >= len)
		return 0;
	/* Nops of either form, but never 5 bytes long: Linux 6.18+ may rewrite a uprobe
	 * there into a call of its trampoline, whose return address and saved registers
	 * land below %rsp, where a leaf function of the target may keep data (the x86-64
	 * red zone). Never a site in someone else's code. */
	if (b[i] == 0x90 && !(rex & 1))		/* nop, any prefixes (not xchg %r8,%rax) */
		return len != 5;
	if (p66)				/* the kernel rejects 16-bit branches and pushes */
		return 0;
	if (b[i] == 0xe8 || b[i] == 0xe9 || b[i] == 0xeb)	/* call rel32, jmp rel32/rel8 */
		return 1;
	if (b[i] >= 0x70 && b[i] <= 0x7f)	/* jcc rel8 */
		return 1;
	if (b[i] >= 0x50 && b[i] <= 0x57)	/* push %reg, push %r8-%r15 (REX.B) */
		return rex == 0 || rex == 0x41;
	if (b[i] == 0x0f && i + 1 < len) {
		if (b[i + 1] >= 0x80 && b[i + 1] <= 0x8f)	/* jcc rel32 */
			return 1;
		if (b[i + 1] == 0x1f)		/* multi-byte nop: measured emulated up to 8 bytes */
			return len <= 8 && len != 5;
	}
	return 0;
}

/* A decoded function. */
struct fn_code {
	cs_insn *insn;
	size_t n;
	uint64_t start, end;
};

static int decode(const struct ls_elf *e, const struct ls_elf_sym *fn, csh *cs, struct fn_code *fc)
{
	uint8_t *code = NULL;
	int err;

	memset(fc, 0, sizeof(*fc));
	if (!fn->addr || !fn->size || fn->size > (1u << 20))
		return -ENOENT;
	code = malloc(fn->size);
	if (!code)
		return -ENOMEM;
	err = ls_elf_read(e, fn->addr, code, fn->size);
	if (err)
		goto cleanup;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, cs) != CS_ERR_OK) {
		err = -ENOMEM;
		goto cleanup;
	}
	cs_option(*cs, CS_OPT_DETAIL, CS_OPT_ON);
	fc->n = cs_disasm(*cs, code, fn->size, fn->addr, 0, &fc->insn);
	fc->start = fn->addr;
	fc->end = fn->addr + fn->size;
	err = 0;
	/* Decoding must cover the function to its end (padding included): a stop in the
	 * middle means data or an instruction Capstone does not know. */
	if (!fc->n || fc->insn[fc->n - 1].address + fc->insn[fc->n - 1].size < fc->end - 16)
		err = -EILSEQ;
cleanup:
	free(code);
	if (err && fc->n) {
		cs_free(fc->insn, fc->n);
		fc->n = 0;
	}
	if (err && *cs)
		cs_close(cs);
	return err;
}

static void release(csh *cs, struct fn_code *fc)
{
	if (fc->n)
		cs_free(fc->insn, fc->n);
	fc->n = 0;
	if (*cs)
		cs_close(cs);
}

/* Direct target of a call / jmp / jcc, or 0. */
static uint64_t direct_target(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	if (x->op_count == 1 && x->operands[0].type == X86_OP_IMM)
		return (uint64_t)x->operands[0].imm;
	return 0;
}

static int is_branch(csh cs, const cs_insn *in)
{
	return cs_insn_group(cs, in, CS_GRP_JUMP) || cs_insn_group(cs, in, CS_GRP_RET) ||
	       cs_insn_group(cs, in, CS_GRP_CALL) || in->id == X86_INS_UD2 || in->id == X86_INS_HLT;
}

static void fill_site(struct lu_site *s, const cs_insn *in, uint32_t cookie)
{
	s->vaddr = in->address;
	s->cookie = cookie;
	s->len = in->size;
	snprintf(s->insn, sizeof(s->insn), "%.12s %.26s", in->mnemonic, in->op_str);
}

/* 1 if a direct branch located outside [lo, hi) lands in (from, to]. */
static int entered_from_outside(csh cs, const struct fn_code *fc, uint64_t from, uint64_t to, uint64_t lo,
				uint64_t hi)
{
	for (size_t i = 0; i < fc->n; i++) {
		const cs_insn *in = &fc->insn[i];
		uint64_t t;

		if (!cs_insn_group(cs, in, CS_GRP_JUMP))
			continue;
		t = direct_target(in);
		if (t > from && t <= to && (in->address < lo || in->address >= hi))
			return 1;
	}
	return 0;
}

/* The first emulated instruction after the call at index ci, on the fall-through
 * path; NULL if a non-emulated branch comes first or the path can be entered from
 * outside [call, limit). */
static const cs_insn *after_call(csh cs, const struct fn_code *fc, size_t ci, uint64_t limit)
{
	for (size_t j = ci + 1; j < fc->n; j++) {
		const cs_insn *in = &fc->insn[j];

		if (lu_insn_emulated(in->bytes, in->size)) {
			if (entered_from_outside(cs, fc, fc->insn[ci].address, in->address, fc->insn[ci].address, limit))
				return NULL;
			return in;
		}
		if (is_branch(cs, in))
			return NULL;
	}
	return NULL;
}

static void add_missing(char *missing, size_t len, const char *name)
{
	size_t n = strlen(missing);

	snprintf(missing + n, len - n, "%s%s", n ? "," : "", name);
}

int lu_uv_run_sites(const struct ls_elf *e, const struct ls_elf_sym *uv_run, const struct lu_uv_callees *c,
		    struct lu_site *out, size_t max, char *missing, size_t missinglen)
{
	static const struct {
		size_t callee;		/* offsetof into lu_uv_callees */
		uint32_t in, out;	/* boundary at the call / after it (NU_NB: none) */
		const char *name;
	} plan[] = {
		{ offsetof(struct lu_uv_callees, run_idle), NU_B_IDLE, NU_NB, "idle" },
		{ offsetof(struct lu_uv_callees, run_prepare), NU_B_PREPARE, NU_NB, "prepare" },
		{ offsetof(struct lu_uv_callees, io_poll), NU_B_POLL_IN, NU_B_POLL_OUT, "poll" },
		{ offsetof(struct lu_uv_callees, run_check), NU_B_CHECK_IN, NU_B_CHECK_OUT, "check" },
		{ offsetof(struct lu_uv_callees, run_timers), NU_B_TIMERS_IN, NU_B_TIMERS_OUT, "timers" },
	};
	csh cs = 0;
	struct fn_code fc;
	size_t n = 0;
	int err;

	missing[0] = 0;
	err = decode(e, uv_run, &cs, &fc);
	if (err)
		return err;
	for (size_t p = 0; p < sizeof(plan) / sizeof(plan[0]); p++) {
		uint64_t callee = *(const uint64_t *)((const char *)c + plan[p].callee);
		int calls = 0, afters = 0;

		for (size_t i = 0; callee && i < fc.n; i++) {
			const cs_insn *in = &fc.insn[i], *a;
			uint64_t limit = fc.end;

			if (in->id != X86_INS_CALL || direct_target(in) != callee)
				continue;
			if (n >= max) {
				err = -E2BIG;
				goto cleanup;
			}
			fill_site(&out[n++], in, plan[p].in);
			calls++;
			if (plan[p].out == NU_NB)
				continue;
			/* The region after this call ends at the next call of any phase function. */
			for (size_t k = i + 1; k < fc.n; k++) {
				uint64_t t = fc.insn[k].id == X86_INS_CALL ? direct_target(&fc.insn[k]) : 0;

				if (t && (t == c->run_idle || t == c->run_prepare || t == c->io_poll ||
					  t == c->run_check || t == c->run_timers)) {
					limit = fc.insn[k].address;
					break;
				}
			}
			a = after_call(cs, &fc, i, limit);
			if (!a)
				continue;
			if (n >= max) {
				err = -E2BIG;
				goto cleanup;
			}
			fill_site(&out[n++], a, plan[p].out);
			afters++;
		}
		if (!calls)
			add_missing(missing, missinglen, plan[p].name);
		else if (plan[p].out != NU_NB && !afters)
			add_missing(missing, missinglen, plan[p].out == NU_B_POLL_OUT ? "poll_end" :
							   plan[p].out == NU_B_CHECK_OUT ? "check_end" : "timers_end");
	}
	err = (int)n;
cleanup:
	release(&cs, &fc);
	return err;
}

/* The GOT slot a PLT stub at addr jumps through (endbr64, then jmp/bnd jmp through
 * [rip + disp]), or 0 if addr is not such a stub. */
static uint64_t plt_slot(const struct ls_elf *e, csh cs, uint64_t addr)
{
	uint8_t code[16];
	cs_insn *in = NULL;
	uint64_t slot = 0;
	size_t n;

	if (ls_elf_read(e, addr, code, sizeof(code)))
		return 0;
	n = cs_disasm(cs, code, sizeof(code), addr, 2, &in);
	for (size_t i = 0; i < n; i++) {
		const cs_x86 *x = &in[i].detail->x86;

		if (in[i].id == X86_INS_ENDBR64)
			continue;
		if (in[i].id == X86_INS_JMP && x->op_count == 1 && x->operands[0].type == X86_OP_MEM &&
		    x->operands[0].mem.base == X86_REG_RIP && x->operands[0].mem.index == X86_REG_INVALID)
			slot = in[i].address + in[i].size + (uint64_t)x->operands[0].mem.disp;
		break;
	}
	if (n)
		cs_free(in, n);
	return slot;
}

/* 1 if an instruction in [from, to) of fc writes %rax (or a part of it). */
static int writes_rax(csh cs, const struct fn_code *fc, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		cs_regs rd, wr;
		uint8_t nrd = 0, nwr = 0;

		if (cs_regs_access(cs, &fc->insn[i], rd, &nrd, wr, &nwr) != CS_ERR_OK)
			return 1;
		for (uint8_t k = 0; k < nwr; k++)
			if (wr[k] == X86_REG_RAX || wr[k] == X86_REG_EAX || wr[k] == X86_REG_AX ||
			    wr[k] == X86_REG_AL || wr[k] == X86_REG_AH)
				return 1;
	}
	return 0;
}

int lu_import_call_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, const uint64_t *slots, size_t nslots,
			 struct lu_site *out, size_t max)
{
	csh cs = 0;
	struct fn_code fc;
	size_t n = 0;
	int err = decode(e, fn, &cs, &fc);

	if (err)
		return err;
	for (size_t i = 0; i < fc.n; i++) {
		const cs_insn *in = &fc.insn[i], *a;
		uint64_t t = in->id == X86_INS_CALL ? direct_target(in) : 0, slot;
		int ours = 0;

		if (!t || (t >= fc.start && t < fc.end))
			continue;
		slot = plt_slot(e, cs, t);
		for (size_t k = 0; slot && k < nslots; k++)
			ours |= slots[k] == slot;
		if (!ours)
			continue;
		/* no branch from anywhere but the call itself may land before the exit site */
		a = after_call(cs, &fc, i, in->address + in->size);
		if (!a || writes_rax(cs, &fc, i + 1, (size_t)(a - fc.insn)) || n + 2 > max) {
			err = !a || n + 2 <= max ? -ENOENT : -E2BIG;
			goto cleanup;
		}
		fill_site(&out[n++], in, 0);
		fill_site(&out[n++], a, 1);
	}
	err = n ? (int)n : -ENOENT;
cleanup:
	release(&cs, &fc);
	return err;
}

int lu_direct_call_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, uint64_t target, uint32_t cookie,
			 struct lu_site *out, size_t max)
{
	csh cs = 0;
	struct fn_code fc;
	size_t n = 0;
	int err = decode(e, fn, &cs, &fc);

	if (err)
		return err;
	for (size_t i = 0; i < fc.n; i++) {
		const cs_insn *in = &fc.insn[i];

		if (!cs_insn_group(cs, in, CS_GRP_CALL) && !cs_insn_group(cs, in, CS_GRP_JUMP))
			continue;
		if (direct_target(in) != target)
			continue;
		if (in->id != X86_INS_CALL) {
			err = -ENOTSUP;
			goto cleanup;
		}
		if (n >= max) {
			err = -E2BIG;
			goto cleanup;
		}
		fill_site(&out[n++], in, cookie);
	}
	err = n ? (int)n : -ENOENT;
cleanup:
	release(&cs, &fc);
	return err;
}

int lu_entry_site(const struct ls_elf *e, const struct ls_elf_sym *fn, struct lu_site *out)
{
	csh cs = 0;
	struct fn_code fc;
	int err = decode(e, fn, &cs, &fc);

	if (err)
		return err;
	err = -ENOENT;
	for (size_t i = 0; i < fc.n && i < 4; i++) {
		const cs_insn *in = &fc.insn[i];

		if (in->id == X86_INS_ENDBR64)
			continue;	/* single-stepped (~11 us): the site is the next one */
		if (lu_insn_emulated(in->bytes, in->size)) {
			/* a loop back to the entry would count the function twice */
			if (!entered_from_outside(cs, &fc, in->address - 1, in->address, 0, 0))
				fill_site(out, in, 0), err = 0;
			break;
		}
		if (is_branch(cs, in))
			break;
	}
	release(&cs, &fc);
	return err;
}

int lu_return_sites(const struct ls_elf *e, const struct ls_elf_sym *fn, struct lu_site *out, size_t max)
{
	csh cs = 0;
	struct fn_code fc;
	size_t n = 0;
	int err = decode(e, fn, &cs, &fc);

	if (err)
		return err;
	for (size_t i = 0; i < fc.n; i++) {
		const cs_insn *in = &fc.insn[i];
		int leaves = 0;

		if (cs_insn_group(cs, in, CS_GRP_RET)) {
			leaves = 1;
		} else if (cs_insn_group(cs, in, CS_GRP_JUMP)) {
			uint64_t t = direct_target(in);

			if (!t) {
				err = -ENOTSUP;	/* jmp *reg / *mem: a switch or a tail call, cannot tell */
				goto cleanup;
			}
			leaves = t < fc.start || t >= fc.end;
			/* a conditional tail call: a probe on it fires taken or not */
			if (leaves && in->id != X86_INS_JMP) {
				err = -ENOTSUP;
				goto cleanup;
			}
		}
		if (!leaves)
			continue;
		if (n >= max) {
			err = -E2BIG;
			goto cleanup;
		}
		fill_site(&out[n++], in, 1);
	}
	err = n ? (int)n : -ENOENT;
cleanup:
	release(&cs, &fc);
	return err;
}

/* 1 if sym_name is a compiler-made part of the function named name: name followed by
 * a GCC clone or split suffix. */
static int is_part_of(const char *name, const char *sym_name)
{
	static const char *const suffixes[] = { ".part.", ".cold", ".isra.", ".constprop.", ".lto_priv." };
	size_t n = strlen(name);

	if (strncmp(sym_name, name, n) || sym_name[n] != '.')
		return 0;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (!strncmp(sym_name + n, suffixes[i], strlen(suffixes[i])))
			return 1;
	return 0;
}

static int in_ranges(const struct lu_range *r, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (addr >= r[i].lo && addr < r[i].hi)
			return 1;
	return 0;
}

int lu_code_ranges(const struct ls_elf *e, const char *name, const struct ls_elf_sym *fn, struct lu_range *out,
		   size_t max)
{
	size_t n = 0;

	if (!max || !fn->addr || !fn->size)
		return -ENOENT;
	out[n++] = (struct lu_range){ fn->addr, fn->addr + fn->size };
	/* out[] doubles as the work list: each range is decoded once, in order */
	for (size_t k = 0; k < n; k++) {
		struct ls_elf_sym part = { .addr = out[k].lo, .size = out[k].hi - out[k].lo };
		csh cs = 0;
		struct fn_code fc;

		/* a part Capstone cannot decode to its end still counts; it is just not followed */
		if (decode(e, &part, &cs, &fc))
			continue;
		for (size_t i = 0; i < fc.n; i++) {
			const cs_insn *in = &fc.insn[i];
			uint64_t t;
			struct ls_elf_sym s;
			char sname[512];

			if (!cs_insn_group(cs, in, CS_GRP_JUMP) && !cs_insn_group(cs, in, CS_GRP_CALL))
				continue;
			t = direct_target(in);
			if (!t || in_ranges(out, n, t) || n >= max)
				continue;
			if (ls_elf_func_at(e, t, &s, sname, sizeof(sname)) || !is_part_of(name, sname) ||
			    in_ranges(out, n, s.addr))
				continue;
			out[n++] = (struct lu_range){ s.addr, s.addr + s.size };
		}
		release(&cs, &fc);
	}
	return (int)n;
}

int lu_call_result_store(const struct ls_elf *e, const struct ls_elf_sym *fn, uint64_t target, uint32_t *disp)
{
	csh cs = 0;
	struct fn_code fc;
	int err = decode(e, fn, &cs, &fc);

	if (err)
		return err;
	err = -ENOENT;
	for (size_t i = 0; i < fc.n && err == -ENOENT; i++) {
		if (fc.insn[i].id != X86_INS_CALL || direct_target(&fc.insn[i]) != target)
			continue;
		for (size_t j = i + 1; j < fc.n && j < i + 8; j++) {
			const cs_insn *in = &fc.insn[j];
			const cs_x86 *x = &in->detail->x86;

			if (in->id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_MEM &&
			    x->operands[1].type == X86_OP_REG && x->operands[1].reg == X86_REG_RAX &&
			    x->operands[0].mem.index == X86_REG_INVALID && x->operands[0].mem.disp >= 0 &&
			    x->operands[0].mem.base != X86_REG_RIP && x->operands[0].mem.base != X86_REG_RSP) {
				*disp = (uint32_t)x->operands[0].mem.disp;
				err = 0;
				break;
			}
			if (is_branch(cs, in) || writes_rax(cs, &fc, j, j + 1))
				break;
		}
	}
	release(&cs, &fc);
	return err;
}
