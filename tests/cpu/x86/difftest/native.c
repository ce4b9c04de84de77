/*
 * The native side of the differential test: test cases run on the host CPU
 * in a forked child, many per child.
 *
 * The code pages at DT_CODE hold, at fixed places, a prologue that saves
 * the host's callee-saved registers and RSP, loads the whole guest state
 * (FXRSTOR64 for x87/SSE/MXCSR, POPFQ for RFLAGS, then the sixteen GPRs,
 * RSP last) and jumps to the test instructions at DT_TEST; landing stubs
 * that record where execution arrived (the fall-through stub right after
 * the test code, seven forward and eight backward stubs for branch
 * targets); and an epilogue that stores every GPR, RFLAGS (PUSHFQ on the
 * host stack) and the FXSAVE64 image, then returns to C.  A fault in the
 * test code is caught by a SA_ONSTACK signal handler that copies the state
 * from the ucontext (its trap number is the vector, its error code and
 * si_addr the #PF details) and resumes at the recovery stub, which returns
 * to C in the same way.  Everything is addressed with absolute disp32
 * operands, so no guest register is needed to find the state.
 */
#include "difftest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#define S_IN_GPR (DT_STATE + 0x000)
#define S_IN_FLAGS (DT_STATE + 0x080)
#define S_HOST_RSP (DT_STATE + 0x088)
#define S_LAND (DT_STATE + 0x090)
#define S_OUT_FLAGS (DT_STATE + 0x098)
#define S_OUT_GPR (DT_STATE + 0x100)
#define S_IN_FX (DT_STATE + 0x200)
#define S_OUT_FX (DT_STATE + 0x400)

#define C_PROLOGUE (DT_CODE + 0x400)
#define C_EPILOGUE (DT_CODE + 0x600)
#define C_RECOVER (DT_CODE + 0x700)

/* The code pages as dt_native_map() wrote them, before any case. */
static uint8_t pristine[DT_CODE_SIZE];
static void write_stub(uint8_t *page, uint64_t addr, unsigned k);

struct asm_buf {
	uint8_t *p;
	uint64_t addr; /* guest address of *p */
};

static void emit(struct asm_buf *a, const uint8_t *b, unsigned n)
{
	memcpy(a->p, b, n);
	a->p += n;
	a->addr += n;
}

static void emit1(struct asm_buf *a, uint8_t b)
{
	emit(a, &b, 1);
}

static void emit32(struct asm_buf *a, uint32_t v)
{
	emit(a, (const uint8_t *)&v, 4);
}

/* op [abs32] with ModRM reg field r (mod 00, rm 100, SIB 25). */
static void emit_abs(struct asm_buf *a, uint8_t rex, const uint8_t *op, unsigned oplen,
		     unsigned r, uint64_t abs)
{
	if (rex)
		emit1(a, rex);
	emit(a, op, oplen);
	emit1(a, (uint8_t)(((r & 7) << 3) | 4));
	emit1(a, 0x25);
	emit32(a, (uint32_t)abs);
}

static void emit_jmp(struct asm_buf *a, uint64_t target)
{
	emit1(a, 0xe9);
	emit32(a, (uint32_t)(target - (a->addr + 4)));
}

static uint8_t *host(uint64_t addr)
{
	return (uint8_t *)(uintptr_t)addr;
}

static void write_fixed_code(void)
{
	static const uint8_t mov_load[] = { 0x8b }, mov_store[] = { 0x89 };
	static const uint8_t fxrstor[] = { 0x0f, 0xae }, push_m[] = { 0xff }, pop_m[] = { 0x8f };
	struct asm_buf a;

	/* Prologue. */
	a.p = host(C_PROLOGUE);
	a.addr = C_PROLOGUE;
	emit(&a, (const uint8_t[]){ 0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57 }, 10);
	emit_abs(&a, 0x48, mov_store, 1, 4, S_HOST_RSP);
	emit_abs(&a, 0x48, fxrstor, 2, 1, S_IN_FX);
	emit_abs(&a, 0, push_m, 1, 6, S_IN_FLAGS);
	emit1(&a, 0x9d);
	for (unsigned r = 0; r < 16; r++)
		if (r != 4)
			emit_abs(&a, (uint8_t)(0x48 | (r >= 8 ? 4 : 0)), mov_load, 1, r, S_IN_GPR + 8 * r);
	emit_abs(&a, 0x48, mov_load, 1, 4, S_IN_GPR + 8 * 4);
	emit_jmp(&a, DT_TEST);

	/* Epilogue. */
	a.p = host(C_EPILOGUE);
	a.addr = C_EPILOGUE;
	for (unsigned r = 0; r < 16; r++)
		emit_abs(&a, (uint8_t)(0x48 | (r >= 8 ? 4 : 0)), mov_store, 1, r, S_OUT_GPR + 8 * r);
	emit_abs(&a, 0x48, mov_load, 1, 4, S_HOST_RSP);
	emit1(&a, 0x9c);
	emit_abs(&a, 0, pop_m, 1, 0, S_OUT_FLAGS);
	emit_abs(&a, 0x48, fxrstor, 2, 0, S_OUT_FX); /* 0F AE /0: FXSAVE64 */
	emit_jmp(&a, C_RECOVER);

	/* Recovery: back to C with a clean RFLAGS (DF, AC, TF clear). */
	a.p = host(C_RECOVER);
	a.addr = C_RECOVER;
	emit_abs(&a, 0x48, mov_load, 1, 4, S_HOST_RSP);
	emit(&a, (const uint8_t[]){ 0x6a, 0x02, 0x9d }, 3);
	emit(&a, (const uint8_t[]){ 0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3 }, 11);
}

static void *map_fixed(uint64_t addr, size_t len, int prot)
{
	void *p = mmap((void *)(uintptr_t)addr, len, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED || (uintptr_t)p != addr)
		return NULL;
	return p;
}

int dt_native_map(void)
{
	if (!map_fixed(DT_CODE, DT_CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC) ||
	    !map_fixed(DT_DATA, DT_DATA_SIZE, PROT_READ | PROT_WRITE) ||
	    !map_fixed(DT_STATE, 0x1000, PROT_READ | PROT_WRITE))
		return -errno;
	memset(host(DT_CODE), 0xcc, DT_CODE_SIZE);
	write_fixed_code();
	memcpy(pristine, host(DT_CODE), DT_CODE_SIZE);
	return 0;
}

void dt_code_image(const struct dt_case *c, uint8_t *page)
{
	memcpy(page, pristine, DT_CODE_SIZE);
	memcpy(page + (DT_TEST - DT_CODE), c->code, c->code_len);
	for (unsigned k = 0; k < DT_NSTUBS; k++)
		write_stub(page, dt_stub_addr(c, k), k);
}

uint64_t dt_stub_addr(const struct dt_case *c, unsigned k)
{
	if (k < 8)
		return DT_TEST + c->code_len + DT_STUB_BYTES * k;
	return DT_BACK_STUBS + DT_STUB_BYTES * (k - 8);
}

static void write_stub(uint8_t *page, uint64_t addr, unsigned k)
{
	static const uint8_t movd[] = { 0xc7 };
	struct asm_buf a = { page + (addr - DT_CODE), addr };

	emit_abs(&a, 0, movd, 1, 0, S_LAND);
	emit32(&a, k);
	emit_jmp(&a, C_EPILOGUE);
}

/* --- the child --- */

static struct dt_result *volatile g_res;
static void run_one(const struct dt_case *c, const uint8_t *pool, struct dt_result *r);

static void on_signal(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	uint64_t rip = (uint64_t)g[REG_RIP];
	struct dt_result *r = g_res;
	static const int map[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
				     REG_RSI, REG_RDI, REG_R8, REG_R9, REG_R10, REG_R11,
				     REG_R12, REG_R13, REG_R14, REG_R15 };

	if (!r) {
		/* Not from guest code: the harness itself crashed. */
		char msg[160] = "difftest: native child: unexpected signal NN at run_one+0x";
		unsigned n = (unsigned)strlen(msg);
		uint64_t off = rip - (uint64_t)(uintptr_t)run_one;
		msg[42] = (char)('0' + sig / 10);
		msg[43] = (char)('0' + sig % 10);
		for (int k = 60; k >= 0; k -= 4)
			msg[n++] = "0123456789abcdef"[(off >> k) & 15];
		static const char a[] = " addr 0x";
		memcpy(msg + n, a, sizeof(a) - 1);
		n += sizeof(a) - 1;
		for (int k = 60; k >= 0; k -= 4)
			msg[n++] = "0123456789abcdef"[((uint64_t)(uintptr_t)si->si_addr >> k) & 15];
		msg[n++] = '\n';
		(void)!write(2, msg, n);
		_exit(100 + sig);
	}
	for (unsigned k = 0; k < 16; k++)
		r->out.gpr[k] = (uint64_t)g[map[k]];
	r->out.rip = rip;
	r->out.rflags = (uint64_t)g[REG_EFL];
	r->vector = (uint8_t)g[REG_TRAPNO];
	r->error_code = (uint32_t)g[REG_ERR];
	r->fault_addr = r->vector == X86_PF_FAULT ? (uint64_t)(uintptr_t)si->si_addr : 0;
	if (r->vector == X86_PF_FAULT && (r->error_code & 0x10) && r->fault_addr == rip) {
		/* A fetch fault where a branch landed (outside the landing
		 * stubs): the interpreter stops after the branch, before it
		 * fetches, so this is "arrived at rip". */
		r->vector = DT_NO_EXC;
		r->error_code = 0;
		r->fault_addr = 0;
	}
	if (uc->uc_mcontext.fpregs)
		memcpy(&r->out.fx, uc->uc_mcontext.fpregs, sizeof(r->out.fx));
	g[REG_RIP] = (greg_t)C_RECOVER;
	g[REG_EFL] = 0x202;
}

static void child_setup(void)
{
	static uint8_t altstack[1 << 16] __attribute__((aligned(64)));
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa;

	if (sigaltstack(&ss, NULL) < 0)
		_exit(90);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP };
	for (unsigned k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
		if (sigaction(sigs[k], &sa, NULL) < 0)
			_exit(91);
}

static void run_one(const struct dt_case *c, const uint8_t *pool, struct dt_result *r)
{
	uint16_t host_fcw;
	uint32_t host_mxcsr;

	dt_case_memory(c, pool, host(DT_DATA));
	/* The whole code image, so that an instruction that wrote into it
	 * (a random pointer into the code pages) leaves no trace. */
	dt_code_image(c, host(DT_CODE));
	memcpy(host(S_IN_GPR), c->in.gpr, sizeof(c->in.gpr));
	memcpy(host(S_IN_FLAGS), &c->in.rflags, 8);
	memcpy(host(S_IN_FX), &c->in.fx, sizeof(c->in.fx));
	memset(host(S_OUT_FX), 0, sizeof(struct x86_fxsave));
	*(volatile uint32_t *)host(S_LAND) = 0xffffffff;
	r->vector = DT_NO_EXC;
	r->crashed = 0;
	r->error_code = 0;
	r->fault_addr = 0;

	__asm__ volatile("fnstcw %0; stmxcsr %1" : "=m"(host_fcw), "=m"(host_mxcsr));
	g_res = r;
	__asm__ volatile("" ::: "memory");
	((void (*)(void))(uintptr_t)C_PROLOGUE)();
	__asm__ volatile("" ::: "memory");
	g_res = NULL;
	__asm__ volatile("fninit; fldcw %0; ldmxcsr %1" : : "m"(host_fcw), "m"(host_mxcsr));

	if (r->vector == DT_NO_EXC) {
		uint32_t land = *(volatile uint32_t *)host(S_LAND);
		memcpy(r->out.gpr, host(S_OUT_GPR), sizeof(r->out.gpr));
		memcpy(&r->out.rflags, host(S_OUT_FLAGS), 8);
		memcpy(&r->out.fx, host(S_OUT_FX), sizeof(r->out.fx));
		r->out.rip = land < DT_NSTUBS ? dt_stub_addr(c, land) : 0;
	}
	memcpy(r->mem, host(DT_DATA), DT_DATA_SIZE);
}

/* The child: runs batches as the parent posts them. */
static void child_loop(struct dt_native *nt, unsigned start)
{
	child_setup();
	close(nt->to_child[1]);
	close(nt->from_child[0]);
	for (;;) {
		if (start == ~0u) {
			uint32_t n;
			if (read(nt->to_child[0], &n, sizeof(n)) != sizeof(n))
				_exit(0);
			start = 0;
		}
		unsigned n = nt->ctl->n;
		alarm(60); /* per batch: a hung case kills the child, not the run */
		for (unsigned k = start; k < n; k++) {
			run_one(&nt->cases[k], nt->pool, &nt->res[k]);
			__atomic_store_n(&nt->ctl->done, k + 1, __ATOMIC_RELEASE);
		}
		uint32_t ack = n;
		if (write(nt->from_child[1], &ack, sizeof(ack)) != sizeof(ack))
			_exit(0);
		start = ~0u;
	}
}

static int spawn(struct dt_native *nt, unsigned start)
{
	if (pipe(nt->to_child) < 0 || pipe(nt->from_child) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		child_loop(nt, start);
	close(nt->to_child[0]);
	close(nt->from_child[1]);
	nt->pid = pid;
	return 0;
}

static void reap(struct dt_native *nt)
{
	int st;
	close(nt->to_child[1]);
	close(nt->from_child[0]);
	while (waitpid(nt->pid, &st, 0) < 0 && errno == EINTR)
		;
	nt->pid = 0;
}

int dt_native_init(struct dt_native *nt, struct dt_case *cases, struct dt_result *res,
		   struct dt_native_ctl *ctl, const uint8_t *pool)
{
	memset(nt, 0, sizeof(*nt));
	signal(SIGPIPE, SIG_IGN);
	nt->cases = cases;
	nt->res = res;
	nt->ctl = ctl;
	nt->pool = pool;
	return spawn(nt, ~0u);
}

int dt_native_post(struct dt_native *nt, unsigned n)
{
	uint32_t v = n;
	nt->ctl->n = n;
	nt->ctl->done = 0;
	if (write(nt->to_child[1], &v, sizeof(v)) != sizeof(v))
		return -EPIPE;
	return 0;
}

int dt_native_wait(struct dt_native *nt)
{
	int first = 0;
	unsigned n = nt->ctl->n;

	for (;;) {
		uint32_t ack;
		ssize_t r = read(nt->from_child[0], &ack, sizeof(ack));
		if (r == sizeof(ack))
			return first;
		/* The child died running case k. */
		reap(nt);
		unsigned k = __atomic_load_n(&nt->ctl->done, __ATOMIC_ACQUIRE);
		if (k < n) {
			memset(&nt->res[k], 0, offsetof(struct dt_result, mem));
			nt->res[k].crashed = 1;
			nt->res[k].vector = DT_NO_EXC;
			if (!first)
				first = (int)k + 1;
		}
		__atomic_store_n(&nt->ctl->done, k + 1, __ATOMIC_RELEASE);
		int e = spawn(nt, k + 1 < n ? k + 1 : n);
		if (e < 0)
			return e;
	}
}

void dt_native_fini(struct dt_native *nt)
{
	if (nt->pid > 0)
		reap(nt);
}
