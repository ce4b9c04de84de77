/* PCI mechanism #1 (host bridge, BAR sizing, registry) and fw_cfg. */
#include <errno.h>

#include "hw_test.h"
#include "mem/mem.h"

static uint32_t cfg_read(struct pio_bus *bus, unsigned devfn, unsigned reg)
{
	outl(bus, 0xcf8, 0x80000000u | devfn << 8 | (reg & 0xfc));
	return inl(bus, 0xcfc);
}

static void test_pci(void)
{
	struct pio_bus *bus = pio_bus_new();
	struct pci_host *h = pci_host_new();
	CHECK(pci_host_map(h, bus) == 0);

	/* the host bridge at 00:00.0 */
	CHECK(cfg_read(bus, 0, 0x00) == 0x12378086);
	CHECK(cfg_read(bus, 0, 0x08) >> 8 == 0x060000);
	CHECK(inl(bus, 0xcf8) == 0x80000008u);
	/* nothing at 00:01.0, nor on bus 1 */
	CHECK(cfg_read(bus, PCI_DEVFN(1, 0), 0) == 0xffffffffu);
	outl(bus, 0xcf8, 0x80010000u);
	CHECK(inl(bus, 0xcfc) == 0xffffffffu);
	/* with the enable bit clear, data reads as ones */
	outl(bus, 0xcf8, 0x00000000u);
	CHECK(inl(bus, 0xcfc) == 0xffffffffu);

	/* a device with a 4 KiB memory BAR and a 64-bit 1 MiB BAR */
	struct pci_device d;
	pci_device_init(&d, 0x1af4, 0x1000, 0x020000, 0);
	CHECK(pci_device_set_bar(&d, 0, 4096, 0) == 0);
	CHECK(pci_device_set_bar(&d, 2, 1u << 20, 0x4 | 0x8) == 0);
	CHECK(pci_device_set_bar(&d, 1, 24, 0) == -EINVAL);
	CHECK(pci_device_set_bar(&d, 5, 4096, 0x4) == -EINVAL);
	CHECK(pci_host_add(h, PCI_DEVFN(3, 0), &d) == 0);
	CHECK(pci_host_add(h, PCI_DEVFN(3, 0), &d) == -EEXIST);
	CHECK(cfg_read(bus, PCI_DEVFN(3, 0), 0) == 0x10001af4);
	/* sizing: write ones, read the mask */
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8 | 0x10);
	outl(bus, 0xcfc, 0xffffffffu);
	CHECK(inl(bus, 0xcfc) == 0xfffff000u);
	outl(bus, 0xcfc, 0xfebf1000u);
	CHECK(inl(bus, 0xcfc) == 0xfebf1000u);
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8 | 0x18);
	outl(bus, 0xcfc, 0xffffffffu);
	CHECK(inl(bus, 0xcfc) == 0xfff0000cu);
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8 | 0x1c);
	outl(bus, 0xcfc, 0xffffffffu);
	CHECK(inl(bus, 0xcfc) == 0xffffffffu);
	/* byte access in the data window; read-only IDs */
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8 | 0x3c);
	outb(bus, 0xcfc, 11);
	CHECK(inb(bus, 0xcfc) == 11);
	CHECK(pio_bus_write(bus, 0xcfe, 2, 0x1234) == 0);
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8);
	outl(bus, 0xcfc, 0);
	CHECK(inl(bus, 0xcfc) == 0x10001af4);
	/* status error bits are write-one-to-clear */
	d.config[7] = 0x80;
	outl(bus, 0xcf8, 0x80000000u | PCI_DEVFN(3, 0) << 8 | 0x04);
	outl(bus, 0xcfc, 0x80000006u);
	CHECK(inl(bus, 0xcfc) == 0x00000006u);
	pci_host_free(h);
	pio_bus_free(bus);
}

static void test_fw_cfg(void)
{
	struct pio_bus *bus = pio_bus_new();
	struct mem *mem = mem_new_pc(4ull << 20);
	struct fw_cfg *fw = fw_cfg_new(mem);
	CHECK(fw_cfg_map(fw, bus) == 0);
	CHECK(fw_cfg_add_u64(fw, FW_CFG_RAM_SIZE, 4ull << 20) == 0);
	CHECK(fw_cfg_add_u16(fw, FW_CFG_NB_CPUS, 2) == 0);
	CHECK(fw_cfg_add_bytes(fw, FW_CFG_FILE_DIR, "x", 1) == -EINVAL);
	CHECK(fw_cfg_add_file(fw, "etc/test", "hello", 5) == FW_CFG_FILE_FIRST);
	CHECK(fw_cfg_add_file(fw, "etc/other", "abc", 3) == FW_CFG_FILE_FIRST + 1);
	CHECK(fw_cfg_add_file(fw, "etc/test", "x", 1) == -EEXIST);

	/* signature through the data port */
	outw(bus, 0x510, FW_CFG_SIGNATURE);
	char sig[5] = { 0 };
	for (int i = 0; i < 4; i++)
		sig[i] = (char)inb(bus, 0x511);
	CHECK(strcmp(sig, "QEMU") == 0);
	CHECK(inb(bus, 0x511) == 0); /* past the end */
	outw(bus, 0x510, FW_CFG_ID);
	CHECK(inb(bus, 0x511) == 0x03);
	outw(bus, 0x510, FW_CFG_NB_CPUS);
	CHECK(inb(bus, 0x511) == 2 && inb(bus, 0x511) == 0);
	outw(bus, 0x510, FW_CFG_RAM_SIZE);
	uint64_t ram = 0;
	for (int i = 0; i < 8; i++)
		ram |= (uint64_t)inb(bus, 0x511) << (8 * i);
	CHECK(ram == 4ull << 20);

	/* the directory: count 2, big-endian fields */
	outw(bus, 0x510, FW_CFG_FILE_DIR);
	uint8_t dir[4 + 128];
	for (unsigned i = 0; i < sizeof(dir); i++)
		dir[i] = inb(bus, 0x511);
	CHECK(dir[3] == 2 && dir[0] == 0);
	CHECK(dir[4 + 3] == 5 && dir[4 + 5] == 0x20 && strcmp((char *)dir + 4 + 8, "etc/test") == 0);
	CHECK(dir[68 + 3] == 3 && dir[68 + 5] == 0x21 && strcmp((char *)dir + 68 + 8, "etc/other") == 0);

	/* DMA: select file 0x20 and read 8 bytes (5 + 3 zero-filled) */
	uint8_t desc[16] = { 0x00, 0x20, 0x00, 0x0a, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x20, 0x00 };
	CHECK(mem_write(mem, 0x1000, desc, 16) == 0);
	CHECK(mem_fill(mem, 0x2000, 0xee, 16) == 0);
	outl(bus, 0x514, 0);
	outl(bus, 0x518, __builtin_bswap32(0x1000));
	uint8_t out[9];
	CHECK(mem_read(mem, 0x2000, out, 9) == 0);
	CHECK(memcmp(out, "hello\0\0\0\xee", 9) == 0);
	uint32_t ctl;
	CHECK(mem_read_u32(mem, 0x1000, &ctl) == 0 && ctl == 0);
	/* DMA to a hole fails with the error bit */
	uint8_t bad[16] = { 0x00, 0x21, 0x00, 0x0a, 0, 0, 0, 3, 0, 0, 0, 0, 0xfe, 0xc0, 0, 0 };
	CHECK(mem_write(mem, 0x1000, bad, 16) == 0);
	outl(bus, 0x518, __builtin_bswap32(0x1000));
	CHECK(mem_read_u32(mem, 0x1000, &ctl) == 0 && ctl == 0x01000000u);
	/* the DMA register reads the signature */
	CHECK(inl(bus, 0x514) == 0x554d4551u); /* "QEMU" */

	fw_cfg_free(fw);
	mem_free(mem);
	pio_bus_free(bus);
}

int main(void)
{
	test_pci();
	test_fw_cfg();
	TEST_MAIN_END();
}
