/*
 * Guest physical memory: one memfd, a handful of RAM regions mapped from it,
 * bounds-checked access and dirty-page bitmaps.
 */
#include "mem/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/core.h"

#define MEM_MAX_REGIONS 8

struct mem {
	int fd;
	uint64_t fd_size;
	uint8_t *base; /* the whole memfd mapped once; regions point into it */
	unsigned nr_regions;
	struct mem_region regions[MEM_MAX_REGIONS];
	uint64_t *dirty[MEM_MAX_REGIONS];
	bool dirty_on;
};

struct mem *mem_new(uint64_t ram_bytes)
{
	if (ram_bytes == 0 || ram_bytes > MEM_PC_MAX_RAM) {
		errno = EINVAL;
		return NULL;
	}
	ram_bytes = ALIGN_UP(ram_bytes, MEM_PAGE_SIZE);
	struct mem *mem = calloc(1, sizeof(*mem));
	if (!mem)
		return NULL;
	mem->fd = memfd_create("maquina-ram", MFD_CLOEXEC);
	if (mem->fd < 0)
		goto out_free;
	if (ftruncate(mem->fd, (off_t)ram_bytes) < 0)
		goto out_close;
	void *p = mmap(NULL, ram_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       mem->fd, 0);
	if (p == MAP_FAILED)
		goto out_close;
	mem->base = p;
	mem->fd_size = ram_bytes;
	return mem;

out_close:;
	int saved = errno;
	close(mem->fd);
	errno = saved;
out_free:
	saved = errno;
	free(mem);
	errno = saved;
	return NULL;
}

int mem_add_ram(struct mem *mem, uint64_t gpa, uint64_t size, uint64_t fd_offset,
		const char *name)
{
	if (size == 0 || (gpa | size | fd_offset) & (MEM_PAGE_SIZE - 1))
		return -EINVAL;
	if (gpa + size < gpa || fd_offset > mem->fd_size || size > mem->fd_size - fd_offset)
		return -EINVAL;
	if (mem->nr_regions == MEM_MAX_REGIONS)
		return -ENOSPC;
	unsigned pos = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -EEXIST;
		if (r->gpa < gpa)
			pos = i + 1;
	}
	memmove(&mem->regions[pos + 1], &mem->regions[pos],
		(mem->nr_regions - pos) * sizeof(mem->regions[0]));
	memmove(&mem->dirty[pos + 1], &mem->dirty[pos],
		(mem->nr_regions - pos) * sizeof(mem->dirty[0]));
	mem->regions[pos] = (struct mem_region){
		.gpa = gpa, .size = size, .host = mem->base + fd_offset,
		.fd = mem->fd, .fd_offset = fd_offset, .name = name,
	};
	mem->dirty[pos] = NULL;
	mem->nr_regions++;
	if (mem->dirty_on) {
		mem->dirty[pos] = calloc((size / MEM_PAGE_SIZE + 63) / 64, sizeof(uint64_t));
		if (!mem->dirty[pos])
			return -ENOMEM;
	}
	return 0;
}

struct mem *mem_new_pc(uint64_t ram_bytes)
{
	if (ram_bytes < MEM_PC_MIN_RAM || ram_bytes > MEM_PC_MAX_RAM ||
	    (ram_bytes & (MEM_PAGE_SIZE - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct mem *mem = mem_new(ram_bytes);
	if (!mem)
		return NULL;
	uint64_t lowmem = ram_bytes >= MEM_PC_LOWMEM_THRESHOLD ? MEM_PC_LOWMEM_SPLIT : ram_bytes;
	int ret = mem_add_ram(mem, 0, MEM_PC_VGA_START, 0, "low");
	if (!ret)
		ret = mem_add_ram(mem, MEM_PC_VGA_END, lowmem - MEM_PC_VGA_END, MEM_PC_VGA_END,
				  "below-4g");
	if (!ret && ram_bytes > lowmem)
		ret = mem_add_ram(mem, MEM_PC_4G, ram_bytes - lowmem, lowmem, "above-4g");
	if (ret) {
		mem_free(mem);
		errno = -ret;
		return NULL;
	}
	return mem;
}

void mem_free(struct mem *mem)
{
	if (!mem)
		return;
	mem_dirty_log_stop(mem);
	munmap(mem->base, mem->fd_size);
	close(mem->fd);
	free(mem);
}

uint64_t mem_ram_size(const struct mem *mem)
{
	return mem->fd_size;
}

uint64_t mem_lowmem_end(const struct mem *mem)
{
	uint64_t end = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (r->gpa < MEM_PC_4G)
			end = MAX(end, r->gpa + r->size);
	}
	return end;
}

uint64_t mem_highmem_size(const struct mem *mem)
{
	uint64_t sum = 0;
	for (unsigned i = 0; i < mem->nr_regions; i++)
		if (mem->regions[i].gpa >= MEM_PC_4G)
			sum += mem->regions[i].size;
	return sum;
}

unsigned mem_region_count(const struct mem *mem)
{
	return mem->nr_regions;
}

const struct mem_region *mem_region_get(const struct mem *mem, unsigned i)
{
	return i < mem->nr_regions ? &mem->regions[i] : NULL;
}

static int region_index(const struct mem *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (int)i;
	}
	return -1;
}

const struct mem_region *mem_region_find(const struct mem *mem, uint64_t gpa)
{
	int i = region_index(mem, gpa);
	return i < 0 ? NULL : &mem->regions[i];
}

void *mem_ram_ptr(const struct mem *mem, uint64_t gpa, uint64_t len)
{
	if (len == 0)
		return NULL;
	const struct mem_region *r = mem_region_find(mem, gpa);
	if (!r)
		return NULL;
	uint64_t off = gpa - r->gpa;
	if (len > r->size - off) /* off < size, so no overflow */
		return NULL;
	return r->host + off;
}

bool mem_is_ram(const struct mem *mem, uint64_t gpa, uint64_t len)
{
	return mem_ram_ptr(mem, gpa, len) != NULL;
}

void *mem_ram_ptr_write(struct mem *mem, uint64_t gpa, uint64_t len)
{
	void *p = mem_ram_ptr(mem, gpa, len);
	if (p)
		mem_dirty_mark(mem, gpa, len);
	return p;
}

/* Checks that every byte of [gpa, gpa + len) is RAM, possibly across
 * adjacent regions. */
static bool range_is_ram(const struct mem *mem, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return false;
	while (len) {
		const struct mem_region *r = mem_region_find(mem, gpa);
		if (!r)
			return false;
		uint64_t chunk = MIN(len, r->size - (gpa - r->gpa));
		gpa += chunk;
		len -= chunk;
	}
	return true;
}

int mem_read(const struct mem *mem, uint64_t gpa, void *buf, uint64_t len)
{
	if (!range_is_ram(mem, gpa, len))
		return -EFAULT;
	uint8_t *out = buf;
	while (len) {
		const struct mem_region *r = mem_region_find(mem, gpa);
		uint64_t off = gpa - r->gpa, chunk = MIN(len, r->size - off);
		memcpy(out, r->host + off, chunk);
		out += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

static int mem_write_common(struct mem *mem, uint64_t gpa, const void *buf, int fill,
			    uint64_t len)
{
	if (!range_is_ram(mem, gpa, len))
		return -EFAULT;
	const uint8_t *in = buf;
	while (len) {
		const struct mem_region *r = mem_region_find(mem, gpa);
		uint64_t off = gpa - r->gpa, chunk = MIN(len, r->size - off);
		if (in) {
			memcpy(r->host + off, in, chunk);
			in += chunk;
		} else {
			memset(r->host + off, fill, chunk);
		}
		mem_dirty_mark(mem, gpa, chunk);
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int mem_write(struct mem *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	if (len && !buf)
		return -EINVAL;
	return mem_write_common(mem, gpa, buf, 0, len);
}

int mem_fill(struct mem *mem, uint64_t gpa, uint8_t value, uint64_t len)
{
	return mem_write_common(mem, gpa, NULL, value, len);
}

int mem_read_u32(const struct mem *mem, uint64_t gpa, uint32_t *val)
{
	uint8_t b[4];
	int ret = mem_read(mem, gpa, b, 4);
	if (!ret)
		*val = b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return ret;
}

int mem_read_u64(const struct mem *mem, uint64_t gpa, uint64_t *val)
{
	uint32_t lo, hi;
	int ret = mem_read_u32(mem, gpa, &lo);
	if (!ret)
		ret = mem_read_u32(mem, gpa + 4, &hi);
	if (!ret)
		*val = lo | (uint64_t)hi << 32;
	return ret;
}

int mem_write_u32(struct mem *mem, uint64_t gpa, uint32_t val)
{
	uint8_t b[4] = { val, val >> 8, val >> 16, val >> 24 };
	return mem_write(mem, gpa, b, 4);
}

int mem_write_u64(struct mem *mem, uint64_t gpa, uint64_t val)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(val >> (8 * i));
	return mem_write(mem, gpa, b, 8);
}

static size_t region_words(const struct mem_region *r)
{
	return (r->size / MEM_PAGE_SIZE + 63) / 64;
}

int mem_dirty_log_start(struct mem *mem)
{
	if (mem->dirty_on)
		return 0;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		mem->dirty[i] = calloc(region_words(&mem->regions[i]), sizeof(uint64_t));
		if (!mem->dirty[i]) {
			mem_dirty_log_stop(mem);
			return -ENOMEM;
		}
	}
	__atomic_store_n(&mem->dirty_on, true, __ATOMIC_RELEASE);
	return 0;
}

void mem_dirty_log_stop(struct mem *mem)
{
	__atomic_store_n(&mem->dirty_on, false, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		free(mem->dirty[i]);
		mem->dirty[i] = NULL;
	}
}

bool mem_dirty_log_enabled(const struct mem *mem)
{
	return __atomic_load_n(&mem->dirty_on, __ATOMIC_ACQUIRE);
}

void mem_dirty_mark(struct mem *mem, uint64_t gpa, uint64_t len)
{
	if (!mem_dirty_log_enabled(mem) || len == 0)
		return;
	uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
	while (gpa < end) {
		int i = region_index(mem, gpa);
		if (i < 0) {
			/* a hole: skip to the next page */
			uint64_t next = ALIGN_DOWN(gpa, MEM_PAGE_SIZE) + MEM_PAGE_SIZE;
			if (next <= gpa)
				return;
			gpa = next;
			continue;
		}
		const struct mem_region *r = &mem->regions[i];
		uint64_t stop = MIN(end, r->gpa + r->size);
		uint64_t first = (gpa - r->gpa) >> MEM_PAGE_SHIFT;
		uint64_t last = (stop - 1 - r->gpa) >> MEM_PAGE_SHIFT;
		for (uint64_t p = first; p <= last; p++)
			__atomic_fetch_or(&mem->dirty[i][p / 64], 1ull << (p % 64),
					  __ATOMIC_RELAXED);
		gpa = stop;
	}
}

bool mem_dirty_test(const struct mem *mem, uint64_t gpa)
{
	if (!mem_dirty_log_enabled(mem))
		return false;
	int i = region_index(mem, gpa);
	if (i < 0)
		return false;
	uint64_t p = (gpa - mem->regions[i].gpa) >> MEM_PAGE_SHIFT;
	return __atomic_load_n(&mem->dirty[i][p / 64], __ATOMIC_RELAXED) >> (p % 64) & 1;
}

int64_t mem_dirty_collect(struct mem *mem, unsigned region, uint64_t *out, size_t words)
{
	if (!mem_dirty_log_enabled(mem))
		return -ENODEV;
	if (region >= mem->nr_regions || words < region_words(&mem->regions[region]))
		return -EINVAL;
	int64_t count = 0;
	size_t n = region_words(&mem->regions[region]);
	for (size_t w = 0; w < n; w++) {
		out[w] = __atomic_exchange_n(&mem->dirty[region][w], 0, __ATOMIC_ACQ_REL);
		count += __builtin_popcountll(out[w]);
	}
	return count;
}

int mem_dirty_merge(struct mem *mem, unsigned region, const uint64_t *bitmap, size_t words)
{
	if (!mem_dirty_log_enabled(mem))
		return -ENODEV;
	if (region >= mem->nr_regions || words < region_words(&mem->regions[region]))
		return -EINVAL;
	size_t n = region_words(&mem->regions[region]);
	for (size_t w = 0; w < n; w++)
		if (bitmap[w])
			__atomic_fetch_or(&mem->dirty[region][w], bitmap[w], __ATOMIC_RELAXED);
	return 0;
}
