/* v8pos_test.c: V8's source position tables and inlining positions
 * (backends/v8pos.c), from bytes: a table read out of Node 26's memory, tables
 * encoded here the way V8 10-13 and V8 14 write them, and malformed ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "v8pos.h"

/* A SourcePosition for script offset off, inlining id inl (-1: not inlined). */
static uint64_t pos_raw(int32_t off, int32_t inl)
{
	return ((uint64_t)(uint32_t)(off + 1) << 1) | ((uint64_t)(uint32_t)(inl + 1) << 31);
}

static size_t put_vlq(uint8_t *b, uint64_t u)
{
	size_t n = 0;

	do {
		b[n] = (uint8_t)(u & 0x7f);
		u >>= 7;
		if (u)
			b[n] |= 0x80;
		n++;
	} while (u);
	return n;
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

struct entry { int32_t code; int32_t off; int32_t inl; int statement; };

/* A table as V8 writes it: deltas from (code -1, position 0). */
static size_t encode(uint8_t *b, enum ls_v8_pos_format fmt, const struct entry *e, size_t n)
{
	int64_t code = -1, pos = 0;
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t d = e[i].code - code, raw = (int64_t)pos_raw(e[i].off, e[i].inl);

		if (fmt == LS_V8_POS_SIGN)
			len += put_vlq(b + len, zigzag(e[i].statement ? d : -d - 1));
		else
			len += put_vlq(b + len, (zigzag(-d - 1) << 1) | (uint64_t)e[i].statement);
		len += put_vlq(b + len, zigzag(raw - pos));
		code = e[i].code;
		pos = raw;
	}
	return len;
}

static int32_t offset_at(const uint8_t *t, size_t n, enum ls_v8_pos_format fmt, uint32_t off, uint32_t limit)
{
	uint64_t raw = 0;
	struct ls_v8_pos p;

	if (ls_v8_pos_find(t, n, fmt, off, limit, &raw))
		return -2;
	ls_v8_pos_unpack(raw, &p);
	return p.script_offset;
}

static void test_unpack(void **state)
{
	struct ls_v8_pos p;

	(void)state;
	ls_v8_pos_unpack(pos_raw(126, -1), &p);
	assert_int_equal(p.script_offset, 126);
	assert_int_equal(p.inlining_id, -1);
	ls_v8_pos_unpack(pos_raw(30, 0), &p);
	assert_int_equal(p.script_offset, 30);
	assert_int_equal(p.inlining_id, 0);
	ls_v8_pos_unpack(pos_raw(5, 700), &p);
	assert_int_equal(p.inlining_id, 700);
	ls_v8_pos_unpack(pos_raw(30, 0) | 1, &p);	/* external: a WebAssembly line */
	assert_int_equal(p.script_offset, -1);
	assert_int_equal(p.inlining_id, -1);
	ls_v8_pos_unpack(0, &p);			/* kNoSourcePosition */
	assert_int_equal(p.script_offset, -1);
}

/* The start of the bytecode table of a `next` arrow function, read out of Node
 * 26.12.1 (V8 14.6), and its positions as `node --print-bytecode` gave them. */
static void test_node26_bytecode(void **state)
{
	static const uint8_t t[] = { 0x02, 0xd0, 0x04, 0x07, 0x74, 0x3a, 0x1c, 0x16,
				     0x2c, 0x12, 0x1f, 0x0e, 0x13, 0x12, 0x13 };
	static const struct { uint32_t code; int32_t off; } want[] = {
		{ 0, 176 }, { 13, 176 }, { 14, 183 }, { 19, 194 }, { 22, 194 }, { 23, 186 }, { 26, 181 }, { 30, 176 },
		{ 200, 176 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(offset_at(t, sizeof(t), LS_V8_POS_FLAGBIT, want[i].code, 270), want[i].off);
}

static void test_both_formats(void **state)
{
	static const struct entry e[] = {
		{ -1, 10, -1, 0 }, { 0, 12, -1, 1 }, { 7, 40, -1, 0 }, { 9, 31, 0, 0 },
		{ 300, 2000, 1, 1 }, { 301, 50, -1, 0 }, { 20000, 9, -1, 1 },
	};
	uint8_t b[128];

	(void)state;
	for (int fmt = LS_V8_POS_SIGN; fmt <= LS_V8_POS_FLAGBIT; fmt++) {
		size_t n = encode(b, (enum ls_v8_pos_format)fmt, e, sizeof(e) / sizeof(e[0]));
		uint64_t raw;
		struct ls_v8_pos p;

		assert_int_equal(offset_at(b, n, fmt, 0, 30000), 12);
		assert_int_equal(offset_at(b, n, fmt, 6, 30000), 12);
		assert_int_equal(offset_at(b, n, fmt, 8, 30000), 40);
		assert_int_equal(offset_at(b, n, fmt, 299, 30000), 31);
		assert_int_equal(offset_at(b, n, fmt, 300, 30000), 2000);
		assert_int_equal(offset_at(b, n, fmt, 19999, 30000), 50);
		assert_int_equal(offset_at(b, n, fmt, 29999, 30000), 9);
		assert_int_equal(ls_v8_pos_find(b, n, fmt, 9, 30000, &raw), 0);
		ls_v8_pos_unpack(raw, &p);
		assert_int_equal(p.inlining_id, 0);
		/* an entry at or past the code's end: not a table of this code */
		assert_int_equal(offset_at(b, n, fmt, 5, 20000), -2);
		/* an offset past the code */
		assert_int_equal(offset_at(b, n, fmt, 30000, 30000), -2);
	}
}

/* V8 14's form is a guess from the version: a table in the sign form (some code
 * field with bit 1 clear) is read as such; the sign form is never second-guessed. */
static void test_format_guess(void **state)
{
	static const struct entry e[] = { { 0, 12, -1, 1 }, { 2, 40, -1, 0 }, { 9, 31, -1, 0 } };
	uint8_t b[64];
	size_t n = encode(b, LS_V8_POS_SIGN, e, 3);

	(void)state;
	assert_int_equal(offset_at(b, n, LS_V8_POS_FLAGBIT, 1, 100), 12);
	assert_int_equal(offset_at(b, n, LS_V8_POS_FLAGBIT, 2, 100), 40);
	assert_int_equal(offset_at(b, n, LS_V8_POS_FLAGBIT, 50, 100), 31);
	n = encode(b, LS_V8_POS_FLAGBIT, e, 3);
	assert_int_equal(offset_at(b, n, LS_V8_POS_FLAGBIT, 2, 100), 40);
}

static void test_malformed(void **state)
{
	static const struct entry e[] = { { 0, 12, -1, 1 }, { 70, 400, -1, 0 } };
	uint8_t b[64], cont[16];
	size_t n = encode(b, LS_V8_POS_SIGN, e, 2);
	uint64_t raw = 0;

	(void)state;
	/* every truncation: either an entry before the cut, or a failure */
	for (size_t k = 0; k < n; k++) {
		int32_t got = offset_at(b, k, LS_V8_POS_SIGN, 100, 1000);

		assert_true(got == -2 || got == 12);
	}
	assert_int_equal(ls_v8_pos_find(b, 0, LS_V8_POS_SIGN, 0, 10, &raw), -1);
	/* a number whose continuation bits never end */
	memset(cont, 0xff, sizeof(cont));
	assert_int_equal(ls_v8_pos_find(cont, sizeof(cont), LS_V8_POS_SIGN, 0, 1000, &raw), -1);
	assert_int_equal(ls_v8_pos_find(cont, sizeof(cont), LS_V8_POS_FLAGBIT, 0, 1000, &raw), -1);
}

static void test_inlining(void **state)
{
	uint8_t a[32] = { 0 };
	uint64_t site = pos_raw(126, -1), got;
	int32_t fn = 3, gfn;

	(void)state;
	memcpy(a + 16, &site, 8);
	memcpy(a + 24, &fn, 4);
	assert_int_equal(ls_v8_inlining(a, sizeof(a), 1, &got, &gfn), 0);
	assert_int_equal(got, site);
	assert_int_equal(gfn, 3);
	assert_int_equal(ls_v8_inlining(a, sizeof(a), 2, &got, &gfn), -1);
	assert_int_equal(ls_v8_inlining(a, sizeof(a), -1, &got, &gfn), -1);
	assert_int_equal(ls_v8_inlining(a, 31, 1, &got, &gfn), -1);	/* a partial record */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unpack), cmocka_unit_test(test_node26_bytecode),
		cmocka_unit_test(test_both_formats), cmocka_unit_test(test_format_guess), cmocka_unit_test(test_malformed), cmocka_unit_test(test_inlining),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
