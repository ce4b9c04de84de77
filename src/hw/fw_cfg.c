/*
 * QEMU's firmware configuration device, x86 flavour: selector at 0x510
 * (16-bit), data at 0x511 (byte stream of the selected item), and the DMA
 * interface at 0x514 (big-endian 64-bit address of a FWCfgDmaAccess,
 * written as two 32-bit halves, the low half at 0x518 starting the
 * transfer).  Items are read-only; files get keys from 0x20 and are listed
 * in the directory item 0x19.  Layouts follow QEMU's docs/specs/fw_cfg.rst.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"
#include "mem/mem.h"

#define DMA_CTL_ERROR 0x01
#define DMA_CTL_READ 0x02
#define DMA_CTL_SKIP 0x04
#define DMA_CTL_SELECT 0x08
#define DMA_CTL_WRITE 0x10
#define FILE_NAME_LEN 56
#define DIR_ENTRY_SIZE 64

struct fw_item {
	uint8_t *data;
	uint32_t len;
};

struct fw_cfg {
	struct mem *mem;
	struct fw_item item[FW_CFG_MAX_ITEMS];
	unsigned nr_files;
	uint16_t sel;
	uint32_t offset;
	uint32_t dma_hi;
};

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int set_item(struct fw_cfg *fw, uint16_t key, const void *data, uint32_t len)
{
	uint8_t *copy = NULL;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	free(fw->item[key].data);
	fw->item[key].data = copy;
	fw->item[key].len = len;
	return 0;
}

int fw_cfg_add_bytes(struct fw_cfg *fw, uint16_t key, const void *data, uint32_t len)
{
	if (key >= FW_CFG_FILE_FIRST || key == FW_CFG_FILE_DIR || (len && !data))
		return -EINVAL;
	return set_item(fw, key, data, len);
}

int fw_cfg_add_u16(struct fw_cfg *fw, uint16_t key, uint16_t value)
{
	uint8_t b[2] = { (uint8_t)value, (uint8_t)(value >> 8) };
	return fw_cfg_add_bytes(fw, key, b, 2);
}

int fw_cfg_add_u32(struct fw_cfg *fw, uint16_t key, uint32_t value)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	return fw_cfg_add_bytes(fw, key, b, 4);
}

int fw_cfg_add_u64(struct fw_cfg *fw, uint16_t key, uint64_t value)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(value >> (8 * i));
	return fw_cfg_add_bytes(fw, key, b, 8);
}

/* Directory: be32 count, then per file be32 size, be16 select, be16 0,
 * char name[56]. */
static int rebuild_dir(struct fw_cfg *fw)
{
	uint32_t len = 4 + fw->nr_files * DIR_ENTRY_SIZE;
	uint8_t *d = calloc(1, len);
	if (!d)
		return -ENOMEM;
	be32(d, fw->nr_files);
	for (unsigned i = 0; i < fw->nr_files; i++) {
		uint8_t *e = d + 4 + i * DIR_ENTRY_SIZE;
		struct fw_item *it = &fw->item[FW_CFG_FILE_FIRST + i];
		be32(e, it->len);
		e[4] = (uint8_t)((FW_CFG_FILE_FIRST + i) >> 8);
		e[5] = (uint8_t)(FW_CFG_FILE_FIRST + i);
	}
	/* names are kept in the old directory; copy them across */
	struct fw_item *old = &fw->item[FW_CFG_FILE_DIR];
	for (unsigned i = 0; i < fw->nr_files && old->data; i++) {
		if (4 + (i + 1) * DIR_ENTRY_SIZE <= old->len)
			memcpy(d + 4 + i * DIR_ENTRY_SIZE + 8, old->data + 4 + i * DIR_ENTRY_SIZE + 8,
			       FILE_NAME_LEN);
	}
	free(old->data);
	old->data = d;
	old->len = len;
	return 0;
}

int fw_cfg_add_file(struct fw_cfg *fw, const char *name, const void *data, uint32_t len)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= FILE_NAME_LEN || (len && !data))
		return -EINVAL;
	struct fw_item *dir = &fw->item[FW_CFG_FILE_DIR];
	for (unsigned i = 0; i < fw->nr_files; i++)
		if (!strncmp((const char *)dir->data + 4 + i * DIR_ENTRY_SIZE + 8, name,
			     FILE_NAME_LEN))
			return -EEXIST;
	if (FW_CFG_FILE_FIRST + fw->nr_files >= FW_CFG_MAX_ITEMS)
		return -ENOSPC;
	uint16_t key = (uint16_t)(FW_CFG_FILE_FIRST + fw->nr_files);
	int ret = set_item(fw, key, data, len);
	if (ret)
		return ret;
	fw->nr_files++;
	ret = rebuild_dir(fw);
	if (ret) {
		fw->nr_files--;
		set_item(fw, key, NULL, 0);
		return ret;
	}
	memcpy(fw->item[FW_CFG_FILE_DIR].data + 4 + (key - FW_CFG_FILE_FIRST) * DIR_ENTRY_SIZE + 8,
	       name, nlen);
	return key;
}

static struct fw_item *selected(struct fw_cfg *fw)
{
	uint16_t key = fw->sel & 0x3fff; /* drop the write and arch-local bits */
	if (fw->sel & 0x8000)
		return NULL; /* no arch-local items */
	return key < FW_CFG_MAX_ITEMS ? &fw->item[key] : NULL;
}

static void select_key(struct fw_cfg *fw, uint16_t key)
{
	fw->sel = key;
	fw->offset = 0;
}

/* Runs the DMA descriptor at gpa. */
static void do_dma(struct fw_cfg *fw, uint64_t gpa)
{
	uint8_t desc[16];
	if (mem_read(fw->mem, gpa, desc, sizeof(desc)))
		return; /* nowhere to report the error */
	uint32_t ctl = rd_be32(desc), len = rd_be32(desc + 4);
	uint64_t addr = (uint64_t)rd_be32(desc + 8) << 32 | rd_be32(desc + 12);
	bool ok = true;
	if (ctl & DMA_CTL_SELECT)
		select_key(fw, (uint16_t)(ctl >> 16));
	struct fw_item *it = selected(fw);
	if (ctl & DMA_CTL_WRITE) {
		ok = false; /* items are read-only */
	} else if (ctl & (DMA_CTL_READ | DMA_CTL_SKIP)) {
		uint32_t avail = it && fw->offset < it->len ? it->len - fw->offset : 0;
		uint32_t n = MIN(len, avail);
		if (ctl & DMA_CTL_READ) {
			if (n && mem_write(fw->mem, addr, it->data + fw->offset, n))
				ok = false;
			/* past the end of the item the guest gets zeros */
			if (ok && len > n && mem_fill(fw->mem, addr + n, 0, len - n))
				ok = false;
		}
		fw->offset += n;
	}
	uint8_t status[4];
	be32(status, ok ? 0 : DMA_CTL_ERROR);
	mem_write(fw->mem, gpa, status, 4);
}

static uint64_t fw_io_read(void *opaque, uint64_t off, unsigned size)
{
	struct fw_cfg *fw = opaque;
	if (off == 1) { /* data port: one byte per access on x86 */
		struct fw_item *it = selected(fw);
		uint64_t v = 0;
		for (unsigned i = 0; i < size; i++) {
			uint8_t b = 0;
			if (it && fw->offset < it->len)
				b = it->data[fw->offset++];
			v |= (uint64_t)b << (8 * i);
		}
		return v;
	}
	if (off >= 4 && off < 12) {
		/* reading the DMA address register gives "QEMU CFG", big-endian */
		static const char sig[] = "QEMU CFG";
		uint64_t v = 0;
		for (unsigned i = 0; i < size && off - 4 + i < 8; i++)
			v |= (uint64_t)(uint8_t)sig[off - 4 + i] << (8 * i);
		return v;
	}
	return 0;
}

static void fw_io_write(void *opaque, uint64_t off, unsigned size, uint64_t v)
{
	struct fw_cfg *fw = opaque;
	if (off == 0 && size == 2) {
		select_key(fw, (uint16_t)v);
	} else if (off == 4 && size == 4) {
		fw->dma_hi = __builtin_bswap32((uint32_t)v);
	} else if (off == 8 && size == 4) {
		uint64_t gpa = (uint64_t)fw->dma_hi << 32 | __builtin_bswap32((uint32_t)v);
		fw->dma_hi = 0;
		do_dma(fw, gpa);
	} else if (off == 4 && size == 8) {
		do_dma(fw, __builtin_bswap64(v));
	}
}

static const struct bus_dev_ops fw_ops = { fw_io_read, fw_io_write };

struct fw_cfg *fw_cfg_new(struct mem *mem)
{
	struct fw_cfg *fw = calloc(1, sizeof(*fw));
	if (!fw)
		return NULL;
	fw->mem = mem;
	if (set_item(fw, FW_CFG_SIGNATURE, "QEMU", 4) || fw_cfg_add_u32(fw, FW_CFG_ID, 0x3) ||
	    rebuild_dir(fw)) {
		fw_cfg_free(fw);
		return NULL;
	}
	return fw;
}

void fw_cfg_free(struct fw_cfg *fw)
{
	if (!fw)
		return;
	for (unsigned i = 0; i < FW_CFG_MAX_ITEMS; i++)
		free(fw->item[i].data);
	free(fw);
}

int fw_cfg_map(struct fw_cfg *fw, struct pio_bus *bus)
{
	/* 0x510 selector, 0x511 data, 0x514-0x51b DMA address */
	return pio_bus_register(bus, FW_CFG_PORT_SEL, 12, &fw_ops, fw, "fw_cfg");
}
