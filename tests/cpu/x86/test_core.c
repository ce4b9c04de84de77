/* Unit tests of the software CPU's core: decoder corners, integer ALU
 * flags, stack and branch instructions, faults and self-modifying code. */
#include "cpu_test.h"

static uint32_t arith(const struct ct *t)
{
	return (uint32_t)t->st.rflags & X86_ARITH_FLAGS;
}

static void test_add_flags(void)
{
	struct ct t;
	ct_init(&t);
	/* add eax, ebx ; int3 */
	static const uint8_t add32[] = { 0x01, 0xd8, 0xcc };
	t.st.gpr[X86_RAX] = 0xffffffff00000001ull;
	t.st.gpr[X86_RBX] = 0xffffffff;
	CHECK(ct_run(&t, add32, sizeof(add32)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0); /* 32-bit result zero-extends */
	CHECK_EQ_U64(arith(&t), X86_CF | X86_ZF | X86_PF | X86_AF);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 3);

	/* sub al, 1 from 0x80: OF set, SF clear */
	static const uint8_t sub8[] = { 0x2c, 0x01, 0xcc };
	t.st.gpr[X86_RAX] = 0x80;
	ct_run(&t, sub8, sizeof(sub8));
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x7f);
	CHECK_EQ_U64(arith(&t), X86_OF | X86_AF);

	/* mov ah, 0x12 ; add ah, ah: the high-byte registers */
	static const uint8_t ah[] = { 0xb4, 0x12, 0x00, 0xe4, 0xcc };
	t.st.gpr[X86_RAX] = 0;
	ct_run(&t, ah, sizeof(ah));
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x2400);

	/* with REX, register 4 of a byte operand is SPL: 40 88 e0 = mov al, spl */
	static const uint8_t spl[] = { 0x40, 0x88, 0xe0, 0xcc };
	t.st.gpr[X86_RAX] = 0;
	t.st.gpr[X86_RSP] = CT_STACK_TOP - 0x41;
	ct_run(&t, spl, sizeof(spl));
	CHECK_EQ_U64(t.st.gpr[X86_RAX], (CT_STACK_TOP - 0x41) & 0xff);
	ct_fini(&t);
}

static void test_loop_and_stack(void)
{
	struct ct t;
	ct_init(&t);
	/*   mov ecx, 10; xor eax, eax
	 * l: add rax, rcx; push rax; pop rdx; dec ecx; jnz l; call f; int3
	 * f: inc rdx; ret */
	static const uint8_t code[] = {
		0xb9, 0x0a, 0x00, 0x00, 0x00, 0x31, 0xc0,
		0x48, 0x01, 0xc8, 0x50, 0x5a, 0xff, 0xc9, 0x75, 0xf7,
		0xe8, 0x01, 0x00, 0x00, 0x00, 0xcc,
		0x48, 0xff, 0xc2, 0xc3,
	};
	uint64_t sp = t.st.gpr[X86_RSP];
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 55);
	CHECK_EQ_U64(t.st.gpr[X86_RDX], 56);
	CHECK_EQ_U64(t.st.gpr[X86_RSP], sp);
	CHECK_EQ_U64(t.st.gpr[X86_RCX], 0);
	ct_fini(&t);
}

static void test_faults(void)
{
	struct ct t;
	ct_init(&t);
	/* mov rax, [0] faults with #PF and leaves rip at the instruction */
	static const uint8_t pf[] = { 0x90, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0xcc };
	CHECK(ct_run(&t, pf, sizeof(pf)) == 14);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 1);
	CHECK_EQ_U64(t.exit.fault_addr, 0);
	CHECK_EQ_U64(t.exit.error_code, 4); /* user, read, not present */

	/* ud2 */
	static const uint8_t ud[] = { 0x0f, 0x0b };
	CHECK(ct_run(&t, ud, sizeof(ud)) == 6);
	CHECK_EQ_U64(t.st.rip, CT_CODE);

	/* a LOCK prefix on a register destination is #UD */
	static const uint8_t lockreg[] = { 0xf0, 0x01, 0xc0 };
	CHECK(ct_run(&t, lockreg, sizeof(lockreg)) == 6);

	/* 15 prefixes + opcode: longer than 15 bytes is #GP(0) */
	uint8_t longi[17];
	memset(longi, 0x66, 15);
	longi[15] = 0x90;
	longi[16] = 0xcc;
	CHECK(ct_run(&t, longi, sizeof(longi)) == 13);

	/* a non-canonical address is #GP(0) */
	static const uint8_t nonc[] = { 0x48, 0xb8, 0, 0, 0, 0, 0, 0x80, 0, 0, 0x8b, 0x00, 0xcc };
	CHECK(ct_run(&t, nonc, sizeof(nonc)) == 13);
	ct_fini(&t);
}

static void test_smc(void)
{
	struct ct t;
	ct_init(&t);
	/* The code patches the immediate of an instruction it runs next:
	 *   mov byte [rip+1], 0x2a   (C6 05 disp32 imm8) -> patches "mov al, 0"
	 *   mov al, 0                (B0 00)
	 *   int3 */
	static const uint8_t code[] = { 0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x2a, 0xb0, 0x00, 0xcc };
	t.st.gpr[X86_RAX] = 0;
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x2a);
	/* and again, now that the block was decoded once */
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0x2a);
	ct_fini(&t);
}

static void test_cmpxchg16b_lock(void)
{
	struct ct t;
	ct_init(&t);
	uint64_t *m = ct_data(&t, CT_DATA);
	m[0] = 1;
	m[1] = 2;
	/* lock cmpxchg16b [rsi]; int3 */
	static const uint8_t code[] = { 0xf0, 0x48, 0x0f, 0xc7, 0x0e, 0xcc };
	t.st.gpr[X86_RSI] = CT_DATA;
	t.st.gpr[X86_RAX] = 1;
	t.st.gpr[X86_RDX] = 2;
	t.st.gpr[X86_RBX] = 3;
	t.st.gpr[X86_RCX] = 4;
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK(m[0] == 3 && m[1] == 4);
	CHECK(t.st.rflags & X86_ZF);
	CHECK(ct_run(&t, code, sizeof(code)) == 3);
	CHECK(!(t.st.rflags & X86_ZF));
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 3);
	CHECK_EQ_U64(t.st.gpr[X86_RDX], 4);
	ct_fini(&t);
}

int main(void)
{
	test_add_flags();
	test_loop_and_stack();
	test_faults();
	test_smc();
	test_cmpxchg16b_lock();
	TEST_MAIN_END();
}
