/*
 * DMA and decoded code on the emu backend: a page the vCPU ran code from
 * is marked in the shared code bitmap; RAM rewritten behind its back keeps
 * running the old translation until vcpu_code_written() (from any thread)
 * makes the vCPU drop it at its next block boundary.
 */
#include "accel/accel.h"
#include "core/core.h"
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#define RAM_BYTES (64 * 1024)
static uint8_t ram[RAM_BYTES] __attribute__((aligned(4096)));

static void *ram_page(void *o, uint64_t gpa, bool *writable)
{
	(void)o;
	*writable = true;
	return gpa < RAM_BYTES ? ram + (gpa & ~0xfffull) : NULL;
}
static void pio_read(void *o, unsigned c, uint16_t p, unsigned s, uint32_t *v)
{
	(void)o; (void)c; (void)p; (void)s;
	*v = ~0u;
}
static void pio_write(void *o, unsigned c, uint16_t p, unsigned s, uint32_t v)
{
	(void)o; (void)c; (void)p; (void)s; (void)v;
}
static int mmio_read(void *o, unsigned c, uint64_t g, unsigned s, uint64_t *v)
{
	(void)o; (void)c; (void)g; (void)s;
	*v = ~0ull;
	return -ENODEV;
}
static int mmio_write(void *o, unsigned c, uint64_t g, unsigned s, uint64_t v)
{
	(void)o; (void)c; (void)g; (void)s; (void)v;
	return -ENODEV;
}
static int get_interrupt(void *o, unsigned c) { (void)o; (void)c; return -1; }
static int rdmsr(void *o, unsigned c, uint32_t m, uint64_t *v) { (void)o; (void)c; (void)m; (void)v; return -ENOENT; }
static int wrmsr(void *o, unsigned c, uint32_t m, uint64_t v) { (void)o; (void)c; (void)m; (void)v; return -ENOENT; }

static const struct vm_ops ops = { ram_page, pio_read, pio_write, mmio_read, mmio_write,
				   get_interrupt, rdmsr, wrmsr };

/* real mode at 0:0x1000:  L: mov ax, imm16 ; jmp L */
static void put_loop(uint16_t imm)
{
	static const uint8_t code[] = { 0xb8, 0, 0, 0xeb, 0xfb };
	memcpy(ram + 0x1000, code, sizeof(code));
	ram[0x1001] = (uint8_t)imm;
	ram[0x1002] = (uint8_t)(imm >> 8);
}

static uint64_t ax_of(struct vcpu *v)
{
	struct x86_state st;
	vcpu_get_state(v, &st);
	return st.gpr[0] & 0xffff;
}

/* A vcpu_code_written() also asks the vCPU to stop (so that a running one
 * drops the code at once); a vCPU that was not running returns KICK at
 * once from its next slice.  Runs slices until the vCPU reached the loop
 * again. */
static void run_slices(struct vcpu *v)
{
	struct vcpu_exit ex;
	for (int i = 0; i < 2; i++)
		vcpu_run(v, 1000, &ex);
}

static void *writer(void *p)
{
	usleep(20 * 1000);
	put_loop(0x3333);
	vcpu_code_written(p, 0x1000, 5);
	return NULL;
}

int main(void)
{
	uint64_t pages = 0;
	uint64_t *bm = accel_code_bitmap_new(RAM_BYTES, &pages);
	CHECK(bm && pages == RAM_BYTES / 4096);
	struct vcpu_config cfg = { .index = 0, .apic = false, .ops = &ops, .opaque = NULL,
				   .code_bitmap = bm, .code_bitmap_pages = pages };
	struct vcpu *v = vcpu_new("emu", &cfg);
	CHECK(v);
	if (!v)
		TEST_MAIN_END();

	struct x86_state st;
	vcpu_get_state(v, &st);
	st.seg[1].sel = 0; /* CS */
	st.seg[1].base = 0;
	st.rip = 0x1000;
	vcpu_set_state(v, &st);
	put_loop(0x1111);

	struct vcpu_exit ex;
	vcpu_run(v, 1000, &ex);
	CHECK(ex.reason == VCPU_EXIT_KICK);
	CHECK_EQ_U64(ax_of(v), 0x1111);
	CHECK(accel_code_bitmap_test(bm, pages, 0x1000, 1));
	CHECK(accel_code_bitmap_test(bm, pages, 0x0ff0, 0x20)); /* overlaps page 1 */
	CHECK(!accel_code_bitmap_test(bm, pages, 0x2000, 0x1000));
	CHECK(!accel_code_bitmap_test(bm, pages, 0x3000, 0));
	CHECK(accel_code_bitmap_test(bm, pages, RAM_BYTES, 1)); /* beyond: assume code */

	/* rewritten behind its back, without telling: the old code runs on */
	put_loop(0x2222);
	vcpu_run(v, 1000, &ex);
	CHECK_EQ_U64(ax_of(v), 0x1111);
	/* told: the new code runs */
	vcpu_code_written(v, 0x1000, 5);
	run_slices(v);
	CHECK_EQ_U64(ax_of(v), 0x2222);

	/* from another thread while the vCPU runs an endless slice: it
	 * stops promptly and runs the new code afterwards */
	pthread_t th;
	CHECK(pthread_create(&th, NULL, writer, v) == 0);
	uint64_t t0 = clock_ns();
	vcpu_run(v, UINT64_MAX, &ex);
	CHECK(ex.reason == VCPU_EXIT_KICK);
	CHECK(clock_ns() - t0 < 10ull * 1000000000ull);
	pthread_join(th, NULL);
	run_slices(v);
	CHECK_EQ_U64(ax_of(v), 0x3333);

	/* many ranges queued at once (more than the pending list holds) */
	put_loop(0x4444);
	for (int i = 0; i < 100; i++)
		vcpu_code_written(v, 0x8000 + (uint64_t)i * 64, 64);
	vcpu_code_written(v, 0x1000, 5);
	for (int i = 0; i < 100; i++)
		vcpu_code_written(v, 0xa000 + (uint64_t)i * 64, 64);
	run_slices(v);
	CHECK_EQ_U64(ax_of(v), 0x4444);

	vcpu_free(v);
	free(bm);
	TEST_MAIN_END();
}
