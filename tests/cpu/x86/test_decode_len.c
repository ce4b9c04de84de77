/*
 * The decoder's instruction lengths against capstone's, on random byte
 * strings shaped like instructions (prefixes, REX, an opcode map, random
 * rest), in 64-bit mode.  Every instruction both accept must have the same
 * length, except the classes in the allow-list below, each of which is a
 * known gap of capstone 4.0.2 (Debian 12), not of the decoder; their
 * counts are printed so that they never pass silently.
 *
 *   test-decode-len [count] [seed]
 */
#include "difftest/decode_helper.h"

#include <capstone/capstone.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Known capstone 4.0.2 disagreements.  match() gets the bytes, the
 * decoder's opcode (map << 8 | opcode), both lengths, and the index of the
 * opcode's first byte (after prefixes). */
struct allow {
	const char *why;
	bool (*match)(const uint8_t *b, unsigned op, unsigned ours, unsigned theirs, unsigned opc_at);
	unsigned count;
};

/* Whether prefix p is among the prefix bytes (legacy or REX) that start b;
 * the random "opcode" may itself have been a prefix, so opc_at is only a
 * lower bound. */
static bool has_prefix(const uint8_t *b, unsigned opc_at, uint8_t p)
{
	(void)opc_at;
	for (unsigned k = 0; k < 15; k++) {
		uint8_t x = b[k];
		bool pfx = x == 0x66 || x == 0x67 || x == 0xf2 || x == 0xf3 || x == 0xf0 || x == 0x2e ||
			   x == 0x3e || x == 0x26 || x == 0x36 || x == 0x64 || x == 0x65 || (x & 0xf0) == 0x40;
		if (!pfx)
			return false;
		if (x == p)
			return true;
	}
	return false;
}

/* Capstone 4 gives near branches with a 66 prefix a 16-bit displacement
 * (AMD's reading); Intel, whose model the CPU follows, ignores 66 there
 * in 64-bit mode and keeps rel32. */
static bool m_branch66(const uint8_t *b, unsigned op, unsigned ours, unsigned theirs, unsigned opc_at)
{
	(void)ours; (void)theirs;
	return has_prefix(b, opc_at, 0x66) &&
	       (op == 0xe8 || op == 0xe9 || (op >= 0x180 && op <= 0x18f));
}

/* Capstone 4 reads RET imm16 (C2) with a 66, 67 or REX.W prefix as having
 * an imm32; it is always imm16 (SDM; the host agrees in the difftest). */
static bool m_ret_imm(const uint8_t *b, unsigned op, unsigned ours, unsigned theirs, unsigned opc_at)
{
	(void)b; (void)opc_at;
	return op == 0xc2 && theirs == ours + 2;
}

/* Capstone 4 reads 66 68 (PUSH imm16) with an imm32; the host pushes 2
 * bytes and the instruction is 2 bytes shorter (checked by the difftest). */
static bool m_push66(const uint8_t *b, unsigned op, unsigned ours, unsigned theirs, unsigned opc_at)
{
	return op == 0x68 && has_prefix(b, opc_at, 0x66) && theirs == ours + 2;
}

/* Capstone 4 gives CALL rel32 under 67 (with REX.W) a rel16; the address
 * size does not change a relative displacement. */
static bool m_call67(const uint8_t *b, unsigned op, unsigned ours, unsigned theirs, unsigned opc_at)
{
	return (op == 0xe8 || op == 0xe9) && has_prefix(b, opc_at, 0x67) && theirs + 2 == ours;
}

static struct allow allow[] = {
	{ "66 on CALL/JMP/Jcc rel32: capstone uses rel16 (AMD), the CPU rel32 (Intel)", m_branch66, 0 },
	{ "RET imm16 with 66/67/REX.W: capstone 4 reads an imm32", m_ret_imm, 0 },
	{ "66 PUSH imm16: capstone 4 reads an imm32", m_push66, 0 },
	{ "67 on CALL/JMP rel32: capstone 4 reads a rel16", m_call67, 0 },
};
#define NALLOW (sizeof(allow) / sizeof(allow[0]))

static unsigned gen(uint8_t *b)
{
	static const uint8_t pfx[] = { 0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65 };
	unsigned n = 0, np = (unsigned)(rnd() % 4);
	for (unsigned k = 0; k < np; k++)
		b[n++] = pfx[rnd() % sizeof(pfx)];
	if (rnd() % 2)
		b[n++] = (uint8_t)(0x40 | (rnd() & 15));
	unsigned m = (unsigned)(rnd() % 10);
	if (m >= 5)
		b[n++] = 0x0f;
	if (m == 8)
		b[n++] = 0x38;
	if (m == 9)
		b[n++] = 0x3a;
	unsigned opc_at = n;
	while (n < 16)
		b[n++] = (uint8_t)rnd();
	return opc_at;
}

int main(int argc, char **argv)
{
	unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000000;
	rng_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 42;
	csh cs;
	unsigned long both = 0, agree = 0, bad = 0, ours_only = 0, theirs_only = 0;

	if (dh_init() < 0 || cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK) {
		fprintf(stderr, "test-decode-len: cannot create the CPU or open capstone\n");
		return 1;
	}
	for (unsigned long it = 0; it < count; it++) {
		uint8_t b[16];
		unsigned opc_at = gen(b), len, op;
		int r = dh_decode(b, 15, &len, &op);
		cs_insn *ins = NULL;
		size_t n = cs_disasm(cs, b, 15, 0x1000, 1, &ins);
		unsigned theirs = n ? ins->size : 0;
		if (n)
			cs_free(ins, n);
		bool ok_ours = r == DH_OK;
		if (ok_ours && !n)
			ours_only++;
		if (!ok_ours && n)
			theirs_only++;
		if (!ok_ours || !n)
			continue;
		both++;
		if (len == theirs) {
			agree++;
			continue;
		}
		bool allowed = false;
		for (unsigned k = 0; k < NALLOW && !allowed; k++)
			if (allow[k].match(b, op, len, theirs, opc_at)) {
				allow[k].count++;
				allowed = true;
			}
		if (allowed)
			continue;
		if (bad++ < 30) {
			printf("length differs: ours %u capstone %u (opcode map %u %02x):", len, theirs, op >> 8, op & 0xff);
			for (unsigned k = 0; k < 15; k++)
				printf(" %02x", b[k]);
			printf("\n");
		}
	}
	printf("random byte strings: %lu; accepted by both: %lu; same length: %lu\n", count, both, agree);
	printf("accepted only by the decoder: %lu (capstone 4 lacks some opcodes); only by capstone: %lu (opcodes the CPU does not implement or advertise)\n",
	       ours_only, theirs_only);
	for (unsigned k = 0; k < NALLOW; k++)
		printf("allowed disagreement, %u times: %s\n", allow[k].count, allow[k].why);
	printf("length mismatches: %lu\n", bad);
	cs_close(&cs);
	dh_fini();
	return bad ? 1 : 0;
}
