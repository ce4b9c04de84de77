/* Guest physical memory: PC layout, bounds checks, accessors, dirty log. */
#include <errno.h>

#include "mem/mem.h"
#include "test.h"

static void test_pc_layout_small(void)
{
	struct mem *m = mem_new_pc(128ull << 20);
	CHECK(m != NULL);
	CHECK_EQ_U64(mem_region_count(m), 2);
	CHECK_EQ_U64(mem_lowmem_end(m), 128ull << 20);
	CHECK_EQ_U64(mem_highmem_size(m), 0);
	CHECK(mem_is_ram(m, 0, 0xa0000));
	CHECK(!mem_is_ram(m, 0, 0xa0001));           /* runs into the VGA hole */
	CHECK(mem_ram_ptr(m, 0xa0000, 1) == NULL);   /* VGA hole */
	CHECK(mem_ram_ptr(m, 0xbffff, 1) == NULL);
	CHECK(mem_ram_ptr(m, 0xc0000, 1) != NULL);
	CHECK(mem_ram_ptr(m, (128ull << 20) - 4, 4) != NULL);
	CHECK(mem_ram_ptr(m, (128ull << 20) - 4, 5) == NULL); /* whole range checked */
	CHECK(mem_ram_ptr(m, 128ull << 20, 1) == NULL);
	CHECK(mem_ram_ptr(m, 0x1000, 0) == NULL);
	CHECK(mem_ram_ptr(m, UINT64_MAX, 2) == NULL);
	CHECK(mem_ram_ptr(m, 0xfee00000, 4) == NULL);
	mem_free(m);
}

static void test_pc_layout_big(void)
{
	/* 4 GiB: low RAM stops at 3 GiB, 1 GiB relocated above 4 GiB.  The
	 * memfd is sparse, so this costs nothing. */
	struct mem *m = mem_new_pc(4ull << 30);
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_EQ_U64(mem_region_count(m), 3);
	CHECK_EQ_U64(mem_lowmem_end(m), 0xc0000000);
	CHECK_EQ_U64(mem_highmem_size(m), 1ull << 30);
	CHECK(mem_ram_ptr(m, 0xbffff000, 0x1000) != NULL);
	CHECK(mem_ram_ptr(m, 0xc0000000, 1) == NULL);
	CHECK(mem_ram_ptr(m, 0xfec00000, 1) == NULL);
	CHECK(mem_ram_ptr(m, 0x100000000ull, 1) != NULL);
	CHECK(mem_ram_ptr(m, 0x13ffffff0ull, 0x10) != NULL);
	CHECK(mem_ram_ptr(m, 0x13ffffff0ull, 0x11) == NULL);
	const struct mem_region *hi = mem_region_get(m, 2);
	CHECK(hi && hi->gpa == 0x100000000ull && hi->fd_offset == 0xc0000000);
	/* RAM above 4 GiB is the memfd's bytes past lowmem. */
	CHECK(mem_write_u32(m, 0x100000000ull, 0x11223344) == 0);
	uint8_t *lo = mem_region_get(m, 0)->host;
	CHECK(lo[0xc0000000] == 0x44);
	mem_free(m);

	/* 3.5 GiB is the threshold; just below it everything stays low. */
	m = mem_new_pc(0xdff00000ull);
	CHECK(m && mem_region_count(m) == 2 && mem_lowmem_end(m) == 0xdff00000ull);
	mem_free(m);
}

static void test_bad_sizes(void)
{
	errno = 0;
	CHECK(mem_new_pc(1ull << 20) == NULL && errno == EINVAL);
	CHECK(mem_new_pc((64ull << 20) + 1) == NULL);
	CHECK(mem_new_pc(2ull << 40) == NULL);
}

static void test_read_write(void)
{
	struct mem *m = mem_new_pc(4ull << 20);
	uint8_t buf[64], out[64];
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	CHECK(mem_write(m, 0x1000, buf, sizeof(buf)) == 0);
	CHECK(mem_read(m, 0x1000, out, sizeof(out)) == 0);
	CHECK(memcmp(buf, out, sizeof(buf)) == 0);
	/* the VGA hole: nothing copied, error */
	memset(out, 0xee, sizeof(out));
	CHECK(mem_read(m, 0x9fff0, out, 32) == -EFAULT);
	CHECK(out[0] == 0xee);
	CHECK(mem_write(m, 0x9fff0, buf, 32) == -EFAULT);
	CHECK(*(uint8_t *)mem_ram_ptr(m, 0x9fff0, 1) == 0);
	/* past the end, overflowing */
	CHECK(mem_read(m, (4ull << 20) - 8, out, 16) == -EFAULT);
	CHECK(mem_read(m, UINT64_MAX - 3, out, 8) == -EFAULT);
	CHECK(mem_read(m, 0, out, 0) == 0);
	uint64_t v;
	CHECK(mem_write_u64(m, 0x2000, 0x0102030405060708ull) == 0);
	CHECK(mem_read_u64(m, 0x2000, &v) == 0 && v == 0x0102030405060708ull);
	uint32_t w;
	CHECK(mem_read_u32(m, 0x2004, &w) == 0 && w == 0x01020304);
	CHECK(mem_fill(m, 0x3000, 0xab, 100) == 0);
	CHECK(mem_read(m, 0x3000, out, 64) == 0 && out[63] == 0xab);
	mem_free(m);
}

static void test_spanning_regions(void)
{
	/* two adjacent regions: accessors may span them, mem_ram_ptr may not */
	struct mem *m = mem_new(0x4000);
	CHECK(mem_add_ram(m, 0x10000, 0x2000, 0, "a") == 0);
	CHECK(mem_add_ram(m, 0x12000, 0x2000, 0x2000, "b") == 0);
	CHECK(mem_add_ram(m, 0x11000, 0x1000, 0, "overlap") == -EEXIST);
	CHECK(mem_add_ram(m, 0x20000, 0x1000, 0x4000, "past fd") == -EINVAL);
	CHECK(mem_add_ram(m, 0x20001, 0x1000, 0, "unaligned") == -EINVAL);
	uint8_t buf[32] = { 1, 2, 3 };
	CHECK(mem_write(m, 0x11ff0, buf, sizeof(buf)) == 0);
	CHECK(mem_ram_ptr(m, 0x11ff0, 32) == NULL);
	CHECK(mem_ram_ptr(m, 0x11ff0, 16) != NULL);
	uint8_t out[32];
	CHECK(mem_read(m, 0x11ff0, out, 32) == 0 && memcmp(out, buf, 32) == 0);
	mem_free(m);
}

static void test_dirty(void)
{
	struct mem *m = mem_new_pc(8ull << 20);
	CHECK(!mem_dirty_log_enabled(m));
	CHECK(mem_write_u32(m, 0x5000, 1) == 0);
	CHECK(!mem_dirty_test(m, 0x5000));
	CHECK(mem_dirty_log_start(m) == 0);
	CHECK(!mem_dirty_test(m, 0x5000));
	CHECK(mem_write_u32(m, 0x5ffe, 1) == 0); /* straddles two pages */
	CHECK(mem_dirty_test(m, 0x5000) && mem_dirty_test(m, 0x6000));
	CHECK(!mem_dirty_test(m, 0x7000));
	CHECK(mem_ram_ptr_write(m, 0x200000, 1) != NULL);
	CHECK(mem_dirty_test(m, 0x200000));
	mem_dirty_mark(m, 0x9f000, 0x22000); /* across the VGA hole */
	CHECK(mem_dirty_test(m, 0x9f000) && mem_dirty_test(m, 0xc0000));
	CHECK(!mem_dirty_test(m, 0xc1000));
	uint64_t bits[64];
	CHECK(mem_dirty_collect(m, 0, bits, 64) == 3); /* 0x5000, 0x6000, 0x9f000 */
	CHECK(bits[0] == ((1ull << 5) | (1ull << 6)) && (bits[2] >> (0x9f - 128) & 1));
	CHECK(mem_dirty_collect(m, 0, bits, 64) == 0); /* collecting clears */
	CHECK(mem_dirty_collect(m, 0, bits, 1) == -EINVAL);
	CHECK(mem_dirty_collect(m, 9, bits, 64) == -EINVAL);
	uint64_t ext[64] = { 0x8 };
	CHECK(mem_dirty_merge(m, 0, ext, 64) == 0);
	CHECK(mem_dirty_test(m, 0x3000));
	mem_dirty_log_stop(m);
	CHECK(mem_dirty_collect(m, 0, bits, 64) == -ENODEV);
	mem_free(m);
}

int main(void)
{
	test_pc_layout_small();
	test_pc_layout_big();
	test_bad_sizes();
	test_read_write();
	test_spanning_regions();
	test_dirty();
	TEST_MAIN_END();
}
