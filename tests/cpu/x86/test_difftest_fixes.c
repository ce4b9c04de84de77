/*
 * Regression tests for the core-instruction bugs that the differential
 * test (tests/cpu/x86/difftest) found; each expectation is what the host
 * CPU did (AMD EPYC under Linux; the same on Intel per the SDM).
 */
#include "cpu_test.h"

static void test_int1_int3_int4(void)
{
	struct ct t;
	ct_init(&t);
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xf1 }, 1), X86_DB);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 1); /* a trap */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xcd, 0x03 }, 2), X86_BP);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 2);
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xcd, 0x04 }, 2), X86_OFV);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 2);
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xcd, 0x21 }, 2), X86_GP);
	CHECK_EQ_U64(t.exit.error_code, 0x21 * 8 + 2);
	CHECK_EQ_U64(t.st.rip, CT_CODE);
	ct_fini(&t);
}

static void test_system_opcodes(void)
{
	struct ct t;
	ct_init(&t);
	/* MOV r11, CR10 does not exist: #UD before the privilege check */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x4f, 0x0f, 0x20, 0xd3 }, 4), X86_UD);
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x0f, 0x20, 0xc0 }, 3), X86_GP); /* CR0 */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x44, 0x0f, 0x20, 0xc0 }, 4), X86_GP); /* CR8 */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x44, 0x0f, 0x21, 0xc0 }, 4), X86_UD); /* DR8 */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x0f, 0x07 }, 2), X86_GP); /* SYSRET */
	ct_fini(&t);
}

static void test_mov_sreg_rex_r(void)
{
	struct ct t;
	ct_init(&t);
	/* 44 8C C0: MOV EAX, ES (REX.R ignored); then INT3 */
	t.st.gpr[X86_RAX] = ~0ull;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x44, 0x8c, 0xc0, 0xcc }, 4), X86_BP);
	CHECK_EQ_U64(t.st.gpr[X86_RAX], 0);
	ct_fini(&t);
}

static void test_rmw_fault_is_write(void)
{
	struct ct t;
	ct_init(&t);
	uint64_t hole = CT_BASE + CT_MEM_SIZE + 0x1000;
	t.st.gpr[X86_RCX] = hole;
	/* or qword [rcx], 1 on an unmapped page: #PF with W set */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x48, 0x83, 0x09, 0x01 }, 4), X86_PF_FAULT);
	CHECK_EQ_U64(t.exit.error_code & 2, 2);
	CHECK_EQ_U64(t.exit.fault_addr, hole);
	/* lock dec byte [rcx] */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xf0, 0xfe, 0x09 }, 3), X86_PF_FAULT);
	CHECK_EQ_U64(t.exit.error_code & 2, 2);
	/* cmp [rcx], 1 only reads */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x48, 0x83, 0x39, 0x01 }, 4), X86_PF_FAULT);
	CHECK_EQ_U64(t.exit.error_code & 2, 0);
	/* cmpxchg16b [rcx] */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x48, 0x0f, 0xc7, 0x09 }, 4), X86_PF_FAULT);
	CHECK_EQ_U64(t.exit.error_code & 2, 2);
	ct_fini(&t);
}

static void test_enter_leave_stack_faults(void)
{
	struct ct t;
	ct_init(&t);
	/* ENTER 0x8000, 0 with RSP near the bottom of memory: the hardware
	 * touches the new top of stack, which is unmapped. */
	t.st.gpr[X86_RSP] = CT_BASE + 0x100;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xc8, 0x00, 0x80, 0x00 }, 4), X86_PF_FAULT);
	CHECK_EQ_U64(t.exit.fault_addr, CT_BASE + 0x100 - 8 - 0x8000);
	CHECK_EQ_U64(t.st.gpr[X86_RSP], CT_BASE + 0x100); /* nothing committed */
	/* LEAVE with a non-canonical RBP: #SS, not #GP */
	t.st.gpr[X86_RSP] = CT_STACK_TOP - 64;
	t.st.gpr[X86_RBP] = 0x8000000000000000ull;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xc9 }, 1), X86_SS_FAULT);
	/* mov eax, [rbp]: SS again; mov eax, [rbx]: #GP */
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x8b, 0x45, 0x00 }, 3), X86_SS_FAULT);
	t.st.gpr[X86_RBX] = 0x8000000000000000ull;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x8b, 0x03 }, 2), X86_GP);
	/* an access that runs off the canonical lower half: #SS/#GP, not #PF */
	t.st.gpr[X86_RBP] = 0x7fffffffffffull;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0xc9 }, 1), X86_SS_FAULT);
	t.st.gpr[X86_RBX] = 0x7ffffffffffcull;
	CHECK_EQ_U64(ct_run(&t, (const uint8_t[]){ 0x48, 0x8b, 0x03 }, 3), X86_GP);
	ct_fini(&t);
}

static void test_fxrstor_control_and_fwait(void)
{
	struct ct t;
	ct_init(&t);
	struct x86_fxsave *fx = ct_data(&t, CT_DATA);
	memset(fx, 0, sizeof(*fx));
	fx->fcw = 0xe13b;  /* reserved bits set, ZE unmasked (bit 2 clear) */
	fx->fsw = 0x0004;  /* ZE pending */
	fx->mxcsr = 0x1f80;
	t.st.gpr[X86_RAX] = CT_DATA;
	/* fxrstor [rax]; fnstcw? no: fxsave [rax+512]; int3 */
	static const uint8_t code[] = { 0x0f, 0xae, 0x08, 0x0f, 0xae, 0x80, 0x00, 0x02, 0x00, 0x00, 0xcc };
	CHECK_EQ_U64(ct_run(&t, code, sizeof(code)), X86_BP);
	struct x86_fxsave *out = ct_data(&t, CT_DATA + 512);
	CHECK_EQ_U64(out->fcw, 0x017b);           /* (v & 0x1f3f) | 0x40 */
	CHECK_EQ_U64(out->fsw & 0x8080, 0x8080);  /* ES and B: ZE is unmasked */
	/* then FWAIT raises #MF */
	static const uint8_t code2[] = { 0x0f, 0xae, 0x08, 0x9b, 0xcc };
	CHECK_EQ_U64(ct_run(&t, code2, sizeof(code2)), X86_MF);
	CHECK_EQ_U64(t.st.rip, CT_CODE + 3);
	ct_fini(&t);
}

int main(void)
{
	test_int1_int3_int4();
	test_system_opcodes();
	test_mov_sreg_rex_r();
	test_rmw_fault_is_write();
	test_enter_leave_stack_faults();
	test_fxrstor_control_and_fwait();
	TEST_MAIN_END();
}
