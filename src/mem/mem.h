/*
 * mem: guest physical memory.
 *
 * A struct mem is the guest's physical address space as far as RAM goes:
 * a list of RAM regions, each a window of one memfd mapped once into the
 * host.  Everything that is not RAM is a hole: legacy VGA, the 32-bit PCI /
 * MMIO hole below 4 GiB, and everything above the last region.  Accesses to
 * holes fail here; MMIO is the business of hw/'s MMIO bus, not of mem/.
 *
 * Every access from a device or a loader goes through one family of
 * bounds-checked helpers (mem_ram_ptr, mem_read, mem_write): the whole range
 * [gpa, gpa + len) must lie in one RAM region, never only its first byte.
 * Guest-controlled addresses and lengths are untrusted; these helpers never
 * touch host memory outside a region.
 *
 * Dirty-page tracking (for migration and snapshots) is owned here for both
 * vCPU backends: writes through mem_write / mem_ram_ptr_write mark pages;
 * the emulator marks what it writes through host pointers with
 * mem_dirty_mark(); the KVM backend folds in its own log with
 * mem_dirty_merge().  Bitmaps are per region, one bit per 4 KiB page,
 * updated atomically so vCPU threads may mark concurrently.
 *
 * Thread safety: the layout (mem_add_ram) is built before vCPUs start and
 * is immutable afterwards; lookups and accesses may run on any thread.
 */
#ifndef MAQUINA_MEM_H
#define MAQUINA_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEM_PAGE_SIZE 4096ull
#define MEM_PAGE_SHIFT 12

/* The PC layout (QEMU's pc machine): RAM below the 640 KiB-1 MiB legacy
 * window, RAM from 1 MiB up to the start of the 32-bit PCI hole, and the
 * rest relocated above 4 GiB. */
#define MEM_PC_VGA_START 0xa0000ull	 /* legacy VGA window: a hole */
#define MEM_PC_VGA_END 0xc0000ull
#define MEM_PC_4G 0x100000000ull
/* With at least this much RAM, low RAM stops at MEM_PC_LOWMEM_SPLIT and
 * the rest goes above 4 GiB (QEMU: 0xe0000000 and gigabyte alignment). */
#define MEM_PC_LOWMEM_THRESHOLD 0xe0000000ull
#define MEM_PC_LOWMEM_SPLIT 0xc0000000ull
/* Smallest and largest RAM sizes the PC layout accepts. */
#define MEM_PC_MIN_RAM (2ull << 20)
#define MEM_PC_MAX_RAM (1ull << 40)

struct mem;

/* One RAM region as the backends see it (KVM memory slots, the emulator's
 * fast paths).  host points at size bytes mapped read/write. */
struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	int fd;		     /* the memfd backing all regions */
	uint64_t fd_offset;  /* where this region starts in the memfd */
	const char *name;
};

/*
 * Creates guest memory of ram_bytes backed by one memfd and lays it out
 * as QEMU's pc machine does:
 *   [0, 0xa0000)           RAM  "low"
 *   [0xa0000, 0xc0000)     hole (VGA)
 *   [0xc0000, lowmem)      RAM  "below-4g" (ROM shadow area, then RAM from
 *                          1 MiB)
 *   [lowmem, 4 GiB)        hole (32-bit PCI/MMIO: IOAPIC, LAPIC, ...)
 *   [4 GiB, 4 GiB + rest)  RAM  "above-4g" (only if ram_bytes >= 0xe0000000)
 * where lowmem = ram_bytes, or 3 GiB with ram_bytes >= 0xe0000000.
 * The bytes behind the VGA hole exist in the memfd but are unreachable.
 * ram_bytes must be a multiple of 4 KiB within [MEM_PC_MIN_RAM,
 * MEM_PC_MAX_RAM].  Returns NULL with errno set (EINVAL, ENOMEM, or the
 * memfd/mmap error).
 */
struct mem *mem_new_pc(uint64_t ram_bytes);

/* Creates an empty address space with a memfd of ram_bytes (rounded up to
 * pages); regions are added with mem_add_ram().  For tests and other
 * boards.  NULL with errno set on failure. */
struct mem *mem_new(uint64_t ram_bytes);

/* Maps size bytes of the memfd at fd_offset as RAM at gpa.  All three must
 * be page aligned, the range must lie within the memfd and must not overlap
 * another region; at most 8 regions.  Returns 0, -EINVAL, -EEXIST (overlap),
 * -ENOSPC (too many regions) or -ENOMEM. */
int mem_add_ram(struct mem *mem, uint64_t gpa, uint64_t size, uint64_t fd_offset,
		const char *name);

/* Frees the memory and unmaps everything; NULL is a no-op. */
void mem_free(struct mem *mem);

/* Total RAM bytes (the memfd size). */
uint64_t mem_ram_size(const struct mem *mem);
/* The end of RAM below 4 GiB (lowmem) and the bytes above 4 GiB, for the
 * PC layout; for other layouts, the end of the highest region below 4 GiB
 * and the sum of the regions at or above it. */
uint64_t mem_lowmem_end(const struct mem *mem);
uint64_t mem_highmem_size(const struct mem *mem);

/* The number of regions and region i (0 <= i < count), in address order;
 * NULL past the end. */
unsigned mem_region_count(const struct mem *mem);
const struct mem_region *mem_region_get(const struct mem *mem, unsigned i);

/* The region holding gpa, or NULL for a hole. */
const struct mem_region *mem_region_find(const struct mem *mem, uint64_t gpa);

/* True if [gpa, gpa + len) lies wholly in one RAM region (len 0: false). */
bool mem_is_ram(const struct mem *mem, uint64_t gpa, uint64_t len);

/*
 * Host pointer to [gpa, gpa + len) if the whole range lies inside one RAM
 * region, else NULL (a hole, a range that straddles a region's end, len 0,
 * or overflow).  The pointer is valid for len bytes for the life of mem.
 * mem_ram_ptr is for reading: writes through it must be followed by
 * mem_dirty_mark(); mem_ram_ptr_write marks the range dirty itself.
 */
void *mem_ram_ptr(const struct mem *mem, uint64_t gpa, uint64_t len);
void *mem_ram_ptr_write(struct mem *mem, uint64_t gpa, uint64_t len);

/*
 * Copies len bytes between guest physical memory and buf.  The range may
 * span several adjacent regions but every byte must be RAM; nothing is
 * copied unless all of it is.  Returns 0, or -EFAULT if any byte is in a
 * hole (or the range overflows).  mem_write marks the pages dirty.
 * len 0 succeeds and does nothing.
 */
int mem_read(const struct mem *mem, uint64_t gpa, void *buf, uint64_t len);
int mem_write(struct mem *mem, uint64_t gpa, const void *buf, uint64_t len);
/* Fills [gpa, gpa + len) with byte value; same rules as mem_write. */
int mem_fill(struct mem *mem, uint64_t gpa, uint8_t value, uint64_t len);

/* Little-endian scalar helpers built on mem_read/mem_write. */
int mem_read_u32(const struct mem *mem, uint64_t gpa, uint32_t *val);
int mem_read_u64(const struct mem *mem, uint64_t gpa, uint64_t *val);
int mem_write_u32(struct mem *mem, uint64_t gpa, uint32_t val);
int mem_write_u64(struct mem *mem, uint64_t gpa, uint64_t val);

/*
 * Dirty-page logging.  While disabled (the default) marking is a no-op.
 * mem_dirty_log_start() allocates the bitmaps (all clear) and enables
 * marking: 0 or -ENOMEM.  mem_dirty_log_stop() disables it and frees them.
 */
int mem_dirty_log_start(struct mem *mem);
void mem_dirty_log_stop(struct mem *mem);
bool mem_dirty_log_enabled(const struct mem *mem);

/* Marks the pages covering [gpa, gpa + len) dirty; bytes in holes are
 * ignored.  Safe from any thread. */
void mem_dirty_mark(struct mem *mem, uint64_t gpa, uint64_t len);

/* True if the page holding gpa is marked dirty. */
bool mem_dirty_test(const struct mem *mem, uint64_t gpa);

/*
 * Fetches and clears region i's bitmap: bit p of word p / 64 stands for
 * the page at region.gpa + p * 4096.  out must hold words =
 * ceil(pages / 64) words.  Returns the number of dirty pages (>= 0),
 * -EINVAL (bad region or words too small) or -ENODEV (logging off).
 */
int64_t mem_dirty_collect(struct mem *mem, unsigned region, uint64_t *out, size_t words);

/* ORs an external bitmap (KVM_GET_DIRTY_LOG's, same layout as above) into
 * region i's.  0, -EINVAL or -ENODEV. */
int mem_dirty_merge(struct mem *mem, unsigned region, const uint64_t *bitmap, size_t words);

#endif
