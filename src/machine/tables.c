/*
 * Firmware tables of the PC board: e820, the Intel MultiProcessor
 * Specification 1.4 table, and ACPI (RSDP v2, RSDT, XSDT, FADT 6.0, DSDT,
 * MADT), checksummed.  Built in host buffers with explicit offsets, then
 * copied into guest RAM with mem_write.
 */
#include <errno.h>
#include <string.h>

#include "core/core.h"
#include "machine/machine.h"

unsigned pc_isa_irq_to_gsi(unsigned isa_irq)
{
	return isa_irq == 0 ? 2 : isa_irq;
}

uint8_t pc_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

static void e820_add(struct e820_map *map, uint64_t addr, uint64_t size, uint32_t type)
{
	if (size && map->count < E820_MAX)
		map->e[map->count++] = (struct e820_entry){ addr, size, type };
}

void pc_e820(const struct mem *mem, struct e820_map *map)
{
	memset(map, 0, sizeof(*map));
	e820_add(map, 0, PC_EBDA, E820_RAM);
	e820_add(map, PC_EBDA, MEM_PC_VGA_START - PC_EBDA, E820_RESERVED);
	e820_add(map, PC_BIOS_AREA, PC_BIOS_AREA_END - PC_BIOS_AREA, E820_RESERVED);
	uint64_t low = mem_lowmem_end(mem);
	if (low > PC_HIGH_MEM)
		e820_add(map, PC_HIGH_MEM, low - PC_HIGH_MEM, E820_RAM);
	uint64_t high = mem_highmem_size(mem);
	if (high)
		e820_add(map, MEM_PC_4G, high, E820_RAM);
}

/* little-endian stores into a byte buffer */
static void w8(uint8_t *b, size_t off, uint8_t v) { b[off] = v; }
static void w16(uint8_t *b, size_t off, uint16_t v) { b[off] = (uint8_t)v; b[off + 1] = (uint8_t)(v >> 8); }
static void w32(uint8_t *b, size_t off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}
static void w64(uint8_t *b, size_t off, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[off + i] = (uint8_t)(v >> (8 * i));
}

/* ---- MP table ---- */

#define MP_CPU_ENTRY 20
#define MP_SMALL_ENTRY 8
#define MP_HEADER 44
#define MP_FLOATING 16
#define MP_PCI_ROUTES (31 * 4)
#define MP_BUS_PCI 0
#define MP_BUS_ISA 1

int pc_write_mptable(struct mem *mem, unsigned nr_cpus)
{
	/* entries: CPUs, 2 buses (ISA 0, PCI 1), 1 IOAPIC, 16 ISA interrupts
	 * (IRQ 2 is the cascade, IRQ 0 goes to pin 2, ExtINT on pin 0), the
	 * INTx routes of PCI slots 1-31 (as the DSDT's _PRT), 2 local */
	unsigned nr_irq = 16 + MP_PCI_ROUTES, nr_local = 2;
	size_t len = MP_HEADER + nr_cpus * MP_CPU_ENTRY +
		     (2 + 1 + nr_irq + nr_local) * MP_SMALL_ENTRY;
	uint8_t buf[MP_FLOATING + MP_HEADER + PC_MAX_CPUS * MP_CPU_ENTRY +
		    (32 + MP_PCI_ROUTES) * MP_SMALL_ENTRY];
	if (nr_cpus == 0 || nr_cpus > PC_MAX_CPUS || MP_FLOATING + len > PC_BIOS_AREA_END - PC_MPTABLE)
		return -EINVAL;
	memset(buf, 0, sizeof(buf));
	uint8_t *fp = buf, *t = buf + MP_FLOATING;
	uint32_t table_addr = (uint32_t)(PC_MPTABLE + MP_FLOATING);

	memcpy(fp, "_MP_", 4);
	w32(fp, 4, table_addr);
	w8(fp, 8, 1);	 /* length in 16-byte units */
	w8(fp, 9, 4);	 /* spec 1.4 */
	/* features 1-5 zero: a configuration table is present, no IMCR */

	memcpy(t, "PCMP", 4);
	w16(t, 4, (uint16_t)len);
	w8(t, 6, 4);
	memcpy(t + 8, "MAQUINA ", 8);
	memcpy(t + 16, "PC          ", 12);
	w32(t, 36, (uint32_t)PC_LAPIC_BASE);
	size_t off = MP_HEADER;
	unsigned count = 0;
	for (unsigned i = 0; i < nr_cpus; i++, count++) {
		w8(t, off, 0);			  /* processor */
		w8(t, off + 1, (uint8_t)i);	  /* LAPIC ID */
		w8(t, off + 2, 0x14);		  /* LAPIC version */
		w8(t, off + 3, 0x01 | (i == 0 ? 0x02 : 0)); /* enabled, BSP */
		w32(t, off + 4, 0x00000600);	  /* family 6 */
		w32(t, off + 8, 0x00000201);	  /* FPU, APIC */
		off += MP_CPU_ENTRY;
	}
	/* bus IDs: a PCI bus's MP ID must be its PCI bus number (Linux
	 * compares them directly), so PCI bus 0 is MP bus 0 and ISA comes
	 * after it, as SeaBIOS lays it out */
	w8(t, off, 1);
	w8(t, off + 1, MP_BUS_PCI);
	memcpy(t + off + 2, "PCI   ", 6);
	off += MP_SMALL_ENTRY;
	count++;
	w8(t, off, 1);
	w8(t, off + 1, MP_BUS_ISA);
	memcpy(t + off + 2, "ISA   ", 6);
	off += MP_SMALL_ENTRY;
	count++;
	w8(t, off, 2); /* IOAPIC */
	w8(t, off + 1, PC_IOAPIC_ID);
	w8(t, off + 2, 0x20);
	w8(t, off + 3, 1); /* enabled */
	w32(t, off + 4, (uint32_t)PC_IOAPIC_BASE);
	off += MP_SMALL_ENTRY;
	count++;
	for (unsigned irq = 0; irq < 16; irq++) {
		if (irq == 2) {
			/* pin 0: the 8259's ExtINT, as BIOSes describe it */
			w8(t, off, 3);
			w8(t, off + 1, 3); /* ExtINT */
			w8(t, off + 4, MP_BUS_ISA);
			w8(t, off + 5, 0);
			w8(t, off + 6, PC_IOAPIC_ID);
			w8(t, off + 7, 0);
		} else {
			w8(t, off, 3);	   /* I/O interrupt */
			w8(t, off + 1, 0); /* INT */
			w16(t, off + 2, 0); /* conforms to the bus: edge, high */
			w8(t, off + 4, MP_BUS_ISA);
			w8(t, off + 5, (uint8_t)irq);
			w8(t, off + 6, PC_IOAPIC_ID);
			w8(t, off + 7, (uint8_t)pc_isa_irq_to_gsi(irq));
		}
		off += MP_SMALL_ENTRY;
		count++;
	}
	/* PCI INTx: source IRQ (slot << 2) | pin on PCI bus 0, level, active low */
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			w8(t, off, 3);
			w8(t, off + 1, 0);
			w16(t, off + 2, 0x000f);
			w8(t, off + 4, MP_BUS_PCI);
			w8(t, off + 5, (uint8_t)(slot << 2 | pin));
			w8(t, off + 6, PC_IOAPIC_ID);
			w8(t, off + 7, (uint8_t)pc_pci_slot_gsi(slot, pin));
			off += MP_SMALL_ENTRY;
			count++;
		}
	}
	/* local interrupts: ExtINT -> LINT0, NMI -> LINT1 of every CPU */
	for (unsigned i = 0; i < 2; i++) {
		w8(t, off, 4);
		w8(t, off + 1, i == 0 ? 3 : 1);
		w8(t, off + 4, 0);
		w8(t, off + 5, 0);
		w8(t, off + 6, 0xff);
		w8(t, off + 7, (uint8_t)i);
		off += MP_SMALL_ENTRY;
		count++;
	}
	w16(t, 34, (uint16_t)count);
	w8(t, 7, pc_checksum(t, len));
	w8(fp, 10, pc_checksum(fp, MP_FLOATING));
	return mem_write(mem, PC_MPTABLE, buf, MP_FLOATING + len);
}

/* ---- ACPI ---- */

#define ACPI_HDR 36

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	w32(t, 4, len);
	w8(t, 8, rev);
	memcpy(t + 10, "MAQUIN", 6);
	memcpy(t + 16, "MAQUINPC", 8);
	w32(t, 24, 1);
	memcpy(t + 28, "MAQN", 4);
	w32(t, 32, 1);
}

static void acpi_finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = pc_checksum(t, len);
}

/* Generic Address Structure: system I/O, bit width, byte access. */
static void gas_io(uint8_t *b, size_t off, uint8_t bits, uint16_t port)
{
	w8(b, off, 1);
	w8(b, off + 1, bits);
	w8(b, off + 2, 0);
	w8(b, off + 3, 1);
	w64(b, off + 4, port);
}

/* ---- AML (ACPI 6.4, 20) for the DSDT ---- */

/* An AML byte stream with a bound; overflow is remembered, not written. */
struct aml {
	uint8_t *p;
	size_t cap, len;
	bool overflow;
};

static void aml_bytes(struct aml *a, const void *src, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->p + a->len, src, n);
	a->len += n;
}

static void aml_byte(struct aml *a, uint8_t b) { aml_bytes(a, &b, 1); }

/* Integers: ZeroOp/OneOp, BytePrefix, WordPrefix, DWordPrefix. */
static void aml_int(struct aml *a, uint32_t v)
{
	uint8_t b[5];
	if (v <= 1) {
		aml_byte(a, (uint8_t)v);
	} else if (v <= 0xff) {
		b[0] = 0x0a;
		b[1] = (uint8_t)v;
		aml_bytes(a, b, 2);
	} else if (v <= 0xffff) {
		b[0] = 0x0b;
		w16(b, 1, (uint16_t)v);
		aml_bytes(a, b, 3);
	} else {
		b[0] = 0x0c;
		w32(b, 1, v);
		aml_bytes(a, b, 5);
	}
}

/*
 * Opens a construct with a PkgLength: remembers where the body starts and
 * reserves 3 bytes for the length (enough for 1 MiB); aml_close moves the
 * body down if the length needs fewer bytes.
 */
static size_t aml_open(struct aml *a)
{
	aml_bytes(a, "\0\0\0", 3);
	return a->len;
}

static void aml_close(struct aml *a, size_t body)
{
	if (a->overflow)
		return;
	size_t n = a->len - body;
	uint8_t hdr[3];
	unsigned hl;
	if (n + 1 < 0x40) {
		hl = 1;
		hdr[0] = (uint8_t)(n + 1);
	} else if (n + 2 < 0x1000) {
		hl = 2;
		hdr[0] = (uint8_t)(0x40 | ((n + 2) & 0xf));
		hdr[1] = (uint8_t)((n + 2) >> 4);
	} else {
		hl = 3;
		hdr[0] = (uint8_t)(0x80 | ((n + 3) & 0xf));
		hdr[1] = (uint8_t)((n + 3) >> 4);
		hdr[2] = (uint8_t)((n + 3) >> 12);
	}
	uint8_t *start = a->p + body - 3;
	memmove(start + hl, a->p + body, n);
	memcpy(start, hdr, hl);
	a->len = body - 3 + hl + n;
}

/* Name (NAME, ...): the caller appends the object. */
static void aml_name(struct aml *a, const char name[4])
{
	aml_byte(a, 0x08);
	aml_bytes(a, name, 4);
}

/* A resource template (a Buffer) describing the root bridge's windows:
 * bus numbers 0-255, the config ports it consumes, the I/O ports around
 * them, and the 32-bit PCI hole below the IOAPIC where BARs live. */
static void aml_pci_crs(struct aml *a)
{
	uint8_t r[128];
	size_t n = 0;
	/* WordBusNumber (producer, MinFixed, MaxFixed): 0 - 0xff */
	const uint8_t bus[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0x00, 0x00,
				0xff, 0x00, 0, 0, 0x00, 0x01 };
	memcpy(r + n, bus, sizeof(bus));
	n += sizeof(bus);
	/* IO (Decode16, 0xcf8, 0xcf8, 1, 8): the config mechanism */
	const uint8_t cfg[] = { 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08 };
	memcpy(r + n, cfg, sizeof(cfg));
	n += sizeof(cfg);
	/* WordIO (producer, MinFixed, MaxFixed, EntireRange): 0-0xcf7, 0xd00-0xffff */
	const uint16_t io[2][2] = { { 0x0000, 0x0cf7 }, { 0x0d00, 0xffff } };
	for (int i = 0; i < 2; i++) {
		uint8_t d[16] = { 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03 };
		w16(d, 8, io[i][0]);
		w16(d, 10, io[i][1]);
		w16(d, 14, (uint16_t)(io[i][1] - io[i][0] + 1));
		memcpy(r + n, d, sizeof(d));
		n += sizeof(d);
	}
	/* DWordMemory (producer, MinFixed, MaxFixed, NonCacheable, ReadWrite) */
	uint8_t mem[26] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01 };
	w32(mem, 10, (uint32_t)PC_PCI_MMIO_START);
	w32(mem, 14, (uint32_t)(PC_PCI_MMIO_END - 1));
	w32(mem, 22, (uint32_t)(PC_PCI_MMIO_END - PC_PCI_MMIO_START));
	memcpy(r + n, mem, sizeof(mem));
	n += sizeof(mem);
	r[n++] = 0x79; /* end tag, checksum 0 */
	r[n++] = 0x00;

	aml_byte(a, 0x11); /* Buffer */
	size_t body = aml_open(a);
	aml_int(a, (uint32_t)n);
	aml_bytes(a, r, n);
	aml_close(a, body);
}

/* _PRT: INTA-INTD of every device on bus 0 -> IOAPIC GSIs 16-23. */
static void aml_pci_prt(struct aml *a)
{
	aml_byte(a, 0x12); /* Package */
	size_t body = aml_open(a);
	aml_byte(a, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml_byte(a, 0x12);
			size_t e = aml_open(a);
			aml_byte(a, 4);
			aml_int(a, (slot << 16) | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0); /* source: none, a GSI follows */
			aml_int(a, pc_pci_slot_gsi(slot, pin));
			aml_close(a, e);
		}
	}
	aml_close(a, body);
}

static void dsdt_body(struct aml *a)
{
	/* Name (_S5, Package () { 5, 5, 0, 0 }) */
	static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
				      0x0a, ACPI_PM_S5_TYP, 0x0a, ACPI_PM_S5_TYP, 0x00, 0x00 };
	aml_bytes(a, s5, sizeof(s5));
	/* Scope (\_SB) { Device (PCI0) { ... } } */
	aml_byte(a, 0x10);
	size_t scope = aml_open(a);
	aml_bytes(a, "\\_SB_", 5);
	aml_bytes(a, "\x5b\x82", 2);
	size_t dev = aml_open(a);
	aml_bytes(a, "PCI0", 4);
	aml_name(a, "_HID");
	aml_int(a, 0x030ad041); /* EisaId ("PNP0A03") */
	aml_name(a, "_ADR");
	aml_int(a, 0);
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_BBN");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	aml_pci_crs(a);
	aml_name(a, "_PRT");
	aml_pci_prt(a);
	aml_close(a, dev);
	aml_close(a, scope);
}

unsigned pc_pci_slot_gsi(unsigned slot, unsigned pin)
{
	return PC_PCI_GSI_BASE + ((slot + pin) & 7);
}

int pc_write_acpi(struct mem *mem, unsigned nr_cpus, uint64_t *rsdp_addr)
{
	if (nr_cpus == 0 || nr_cpus > PC_MAX_CPUS)
		return -EINVAL;
	uint8_t area[PC_MPTABLE - PC_BIOS_AREA]; /* the MP table follows */
	memset(area, 0, sizeof(area));
	const uint64_t base = PC_BIOS_AREA;
	size_t rsdp = 0, rsdt = 0x40, xsdt = 0x80, fadt = 0x100, facs = 0x240, madt = 0x300,
	       dsdt = 0x800;

	/* FACS (64-byte aligned, no checksum) */
	memcpy(area + facs, "FACS", 4);
	w32(area + facs, 4, 64);
	w8(area + facs, 32, 2); /* version */

	/* DSDT: \_S5 and the PCI root bridge \_SB.PCI0 */
	struct aml dsdt_aml = { area + dsdt + ACPI_HDR, sizeof(area) - dsdt - ACPI_HDR, 0, false };
	dsdt_body(&dsdt_aml);
	if (dsdt_aml.overflow)
		return -EINVAL;
	uint32_t dsdt_len = ACPI_HDR + (uint32_t)dsdt_aml.len;
	acpi_header(area + dsdt, "DSDT", dsdt_len, 2);
	acpi_finish(area + dsdt, dsdt_len);

	/* FADT 6.0, 276 bytes */
	uint8_t *f = area + fadt;
	uint32_t fadt_len = 276;
	acpi_header(f, "FACP", fadt_len, 6);
	w32(f, 36, (uint32_t)(base + facs));
	w32(f, 40, (uint32_t)(base + dsdt));
	w8(f, 45, 0);			  /* unspecified PM profile */
	w16(f, 46, PC_ISA_IRQ_SCI);	  /* SCI_INT */
	w32(f, 48, 0);			  /* SMI_CMD 0: always in ACPI mode */
	w32(f, 56, PC_PORT_ACPI_PM);	  /* PM1a_EVT_BLK */
	w32(f, 64, PC_PORT_ACPI_PM + 4);  /* PM1a_CNT_BLK */
	w32(f, 76, PC_PORT_ACPI_PM + 8);  /* PM_TMR_BLK */
	w8(f, 88, 4);			  /* PM1_EVT_LEN */
	w8(f, 89, 2);			  /* PM1_CNT_LEN */
	w8(f, 91, 4);			  /* PM_TMR_LEN */
	w16(f, 96, 0x65);		  /* no C2 */
	w16(f, 98, 0x3e9);		  /* no C3 */
	w8(f, 108, 0x32);		  /* CENTURY in CMOS */
	w16(f, 109, 0x0003);		  /* IAPC_BOOT_ARCH: legacy devices, 8042 */
	/* flags: WBINVD, PROC_C1, PWR_BUTTON and SLP_BUTTON as control
	 * methods (none), RESET_REG_SUP */
	w32(f, 112, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5) | (1u << 10));
	gas_io(f, 116, 8, 0x64);	  /* RESET_REG: the i8042 command port */
	w8(f, 128, 0xfe);		  /* RESET_VALUE */
	w8(f, 131, 0);			  /* minor version */
	w64(f, 132, base + facs);	  /* X_FIRMWARE_CTRL */
	w64(f, 140, base + dsdt);	  /* X_DSDT */
	gas_io(f, 148, 32, PC_PORT_ACPI_PM);	  /* X_PM1a_EVT_BLK */
	gas_io(f, 172, 16, PC_PORT_ACPI_PM + 4);  /* X_PM1a_CNT_BLK */
	gas_io(f, 208, 32, PC_PORT_ACPI_PM + 8);  /* X_PM_TMR_BLK */
	memcpy(f + 268, "MAQUINA\0", 8);	  /* hypervisor vendor identity */
	acpi_finish(f, fadt_len);

	/* MADT */
	uint8_t *m = area + madt;
	size_t off = ACPI_HDR + 8;
	w32(m, ACPI_HDR, (uint32_t)PC_LAPIC_BASE);
	w32(m, ACPI_HDR + 4, 1); /* PCAT_COMPAT: 8259s present */
	for (unsigned i = 0; i < nr_cpus; i++) {
		w8(m, off, 0);		/* processor local APIC */
		w8(m, off + 1, 8);
		w8(m, off + 2, (uint8_t)i); /* ACPI processor UID */
		w8(m, off + 3, (uint8_t)i); /* APIC ID */
		w32(m, off + 4, 1);	/* enabled */
		off += 8;
	}
	w8(m, off, 1); /* IOAPIC */
	w8(m, off + 1, 12);
	w8(m, off + 2, PC_IOAPIC_ID);
	w32(m, off + 4, (uint32_t)PC_IOAPIC_BASE);
	w32(m, off + 8, 0); /* GSI base */
	off += 12;
	w8(m, off, 2); /* ISO: ISA IRQ 0 -> GSI 2, conforming */
	w8(m, off + 1, 10);
	w8(m, off + 2, 0);
	w8(m, off + 3, PC_ISA_IRQ_PIT);
	w32(m, off + 4, pc_isa_irq_to_gsi(PC_ISA_IRQ_PIT));
	w16(m, off + 8, 0);
	off += 10;
	w8(m, off, 2); /* ISO: SCI, level, active high */
	w8(m, off + 1, 10);
	w8(m, off + 2, 0);
	w8(m, off + 3, PC_ISA_IRQ_SCI);
	w32(m, off + 4, PC_ISA_IRQ_SCI);
	w16(m, off + 8, 0x000d);
	off += 10;
	w8(m, off, 4); /* local APIC NMI: all processors, LINT1 */
	w8(m, off + 1, 6);
	w8(m, off + 2, 0xff);
	w16(m, off + 3, 0);
	w8(m, off + 5, 1);
	off += 6;
	if (madt + off > dsdt)
		return -EINVAL;
	acpi_header(m, "APIC", (uint32_t)off, 3);
	acpi_finish(m, (uint32_t)off);

	/* RSDT / XSDT: FADT and MADT */
	uint32_t rsdt_len = ACPI_HDR + 2 * 4, xsdt_len = ACPI_HDR + 2 * 8;
	acpi_header(area + rsdt, "RSDT", rsdt_len, 1);
	w32(area + rsdt, ACPI_HDR, (uint32_t)(base + fadt));
	w32(area + rsdt, ACPI_HDR + 4, (uint32_t)(base + madt));
	acpi_finish(area + rsdt, rsdt_len);
	acpi_header(area + xsdt, "XSDT", xsdt_len, 1);
	w64(area + xsdt, ACPI_HDR, base + fadt);
	w64(area + xsdt, ACPI_HDR + 8, base + madt);
	acpi_finish(area + xsdt, xsdt_len);

	/* RSDP v2 */
	uint8_t *r = area + rsdp;
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, "MAQUIN", 6);
	w8(r, 15, 2);
	w32(r, 16, (uint32_t)(base + rsdt));
	w32(r, 20, 36);
	w64(r, 24, base + xsdt);
	w8(r, 8, pc_checksum(r, 20));
	w8(r, 32, pc_checksum(r, 36));

	size_t used = dsdt + dsdt_len;
	int ret = mem_write(mem, base, area, used);
	if (!ret && rsdp_addr)
		*rsdp_addr = base + rsdp;
	return ret;
}
