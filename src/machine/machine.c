/*
 * The PC board: builds the devices in order, wires their IRQs, lays out
 * the firmware tables, and answers the vCPUs' interrupt queries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "machine/machine.h"

struct machine;
struct cpu_slot {
	struct machine *m;
	unsigned cpu;
};

struct machine {
	struct machine_config cfg;
	struct cpu_slot slot[PC_MAX_CPUS];
	struct mem *mem;
	struct pio_bus *pio;
	struct mmio_bus *mmio;
	struct hw_clock *clock;
	struct pic *pic;
	struct pit *pit;
	struct rtc *rtc;
	struct uart *uart;
	struct i8042 *kbc;
	struct sysctl *sysctl;
	struct debug_exit *debug_exit;
	struct acpi_pm *acpi_pm;
	struct pci_host *pci;
	struct fw_cfg *fw_cfg;
	struct apic_bus *apic_bus;
	struct ioapic *ioapic;
	struct lapic *lapic[PC_MAX_CPUS];
	unsigned nr_cpus;
	struct e820_map e820;
	uint64_t rsdp;
	enum machine_request request;
	int exit_status;
	const struct irqchip_ops *irqchip;
	void *irqchip_opaque;
	uint64_t pci_mmio_next; /* next free address in the PCI hole */
};

void machine_set_irqchip(struct machine *m, const struct irqchip_ops *ops, void *opaque)
{
	m->irqchip = ops;
	m->irqchip_opaque = opaque;
}

/* ---- IRQ routing ---- */

void machine_irq_line(struct machine *m, unsigned gsi, bool level)
{
	if (m->irqchip) {
		m->irqchip->gsi(m->irqchip_opaque, gsi, level);
		return;
	}
	if (gsi < IOAPIC_NUM_PINS)
		ioapic_set_irq(m->ioapic, gsi, level);
	if (gsi < 16 && gsi != 0)
		pic_set_irq(m->pic, gsi == 2 ? 0 : gsi, level);
}

void machine_isa_irq(struct machine *m, unsigned isa_irq, bool level)
{
	if (isa_irq >= 16 || isa_irq == 2)
		return;
	if (m->irqchip) {
		m->irqchip->isa_irq(m->irqchip_opaque, isa_irq, level);
		return;
	}
	pic_set_irq(m->pic, isa_irq, level);
	ioapic_set_irq(m->ioapic, pc_isa_irq_to_gsi(isa_irq), level);
}

void machine_msi(struct machine *m, uint64_t addr, uint32_t data)
{
	if (m->irqchip) {
		m->irqchip->msi(m->irqchip_opaque, addr, data);
		return;
	}
	apic_bus_msi(m->apic_bus, addr, data);
}

static void isa_irq_set(void *opaque, unsigned line, bool level)
{
	machine_isa_irq(opaque, line, level);
}

static struct irq isa_irq(struct machine *m, unsigned n)
{
	return irq_make(isa_irq_set, m, n);
}

/* The PIC's INTR goes to the BSP's LINT0. */
static void pic_intr_set(void *opaque, unsigned line, bool level)
{
	(void)line;
	struct machine *m = opaque;
	lapic_set_lint(m->lapic[0], 0, level);
}

static void lapic_kick(void *opaque)
{
	struct cpu_slot *slot = opaque;
	if (slot->m->cfg.kick)
		slot->m->cfg.kick(slot->m->cfg.kick_opaque, slot->cpu);
}

static void eoi_to_ioapic(void *opaque, uint8_t vector)
{
	struct machine *m = opaque;
	ioapic_eoi(m->ioapic, vector);
}

/* ---- requests from the guest ---- */

static void on_debug_exit(void *opaque, int status)
{
	struct machine *m = opaque;
	m->request = MACHINE_REQ_EXIT;
	m->exit_status = status;
}

static void on_reset_line(void *opaque, unsigned line, bool level)
{
	(void)line;
	struct machine *m = opaque;
	if (level && m->request == MACHINE_REQ_NONE)
		m->request = MACHINE_REQ_RESET;
}

static void on_poweroff_line(void *opaque, unsigned line, bool level)
{
	(void)line;
	struct machine *m = opaque;
	if (level)
		m->request = MACHINE_REQ_POWEROFF;
}

enum machine_request machine_take_request(struct machine *m, int *status)
{
	enum machine_request r = m->request;
	if (status)
		*status = m->exit_status;
	m->request = MACHINE_REQ_NONE;
	return r;
}

/* ---- interrupts to the CPUs ---- */

int machine_cpu_get_interrupt(struct machine *m, unsigned cpu)
{
	if (cpu >= m->nr_cpus)
		return -1;
	struct lapic *l = m->lapic[cpu];
	int v = lapic_get_interrupt(l);
	if (v == LAPIC_INTR_EXTINT) {
		lapic_ack(l, LAPIC_INTR_EXTINT);
		if (pic_intr_asserted(m->pic))
			return pic_get_interrupt(m->pic);
		v = lapic_get_interrupt(l); /* an ExtINT message with nothing behind it */
		if (v < 0)
			return -1;
	}
	lapic_ack(l, v);
	return v;
}

bool machine_cpu_has_interrupt(struct machine *m, unsigned cpu)
{
	if (cpu >= m->nr_cpus)
		return false;
	struct lapic *l = m->lapic[cpu];
	int v = lapic_get_interrupt(l);
	if (v == LAPIC_INTR_EXTINT && pic_intr_asserted(m->pic))
		return true;
	if (v == LAPIC_INTR_EXTINT) {
		/* a stale ExtINT message: look past it at the fixed vectors */
		lapic_ack(l, LAPIC_INTR_EXTINT);
		v = lapic_get_interrupt(l);
	}
	return v >= 0;
}

/* ---- construction ---- */

static int fw_cfg_setup(struct machine *m)
{
	struct fw_cfg *fw = m->fw_cfg;
	int ret = fw_cfg_add_u64(fw, FW_CFG_RAM_SIZE, m->cfg.ram_bytes);
	if (!ret)
		ret = fw_cfg_add_u16(fw, FW_CFG_NB_CPUS, (uint16_t)m->nr_cpus);
	if (!ret)
		ret = fw_cfg_add_u16(fw, FW_CFG_MAX_CPUS, (uint16_t)m->nr_cpus);
	if (!ret)
		ret = fw_cfg_add_u16(fw, FW_CFG_NOGRAPHIC, 1);
	if (ret)
		return ret;
	/* etc/e820: packed { u64 address, u64 length, u32 type } */
	uint8_t buf[E820_MAX * 20];
	for (unsigned i = 0; i < m->e820.count; i++) {
		for (int b = 0; b < 8; b++) {
			buf[i * 20 + b] = (uint8_t)(m->e820.e[i].addr >> (8 * b));
			buf[i * 20 + 8 + b] = (uint8_t)(m->e820.e[i].size >> (8 * b));
		}
		for (int b = 0; b < 4; b++)
			buf[i * 20 + 16 + b] = (uint8_t)(m->e820.e[i].type >> (8 * b));
	}
	ret = fw_cfg_add_file(fw, "etc/e820", buf, m->e820.count * 20);
	return ret < 0 ? ret : 0;
}

int machine_fw_cfg_kernel(struct machine *m, uint64_t kernel_addr, uint64_t kernel_size,
			  uint64_t initrd_addr, uint64_t initrd_size, const char *cmdline)
{
	struct fw_cfg *fw = m->fw_cfg;
	const char *c = cmdline ? cmdline : "";
	int ret = fw_cfg_add_u32(fw, FW_CFG_KERNEL_ADDR, (uint32_t)kernel_addr);
	if (!ret)
		ret = fw_cfg_add_u32(fw, FW_CFG_KERNEL_SIZE, (uint32_t)kernel_size);
	if (!ret)
		ret = fw_cfg_add_u32(fw, FW_CFG_INITRD_ADDR, (uint32_t)initrd_addr);
	if (!ret)
		ret = fw_cfg_add_u32(fw, FW_CFG_INITRD_SIZE, (uint32_t)initrd_size);
	if (!ret)
		ret = fw_cfg_add_u32(fw, FW_CFG_CMDLINE_ADDR, (uint32_t)PC_CMDLINE);
	if (!ret)
		ret = fw_cfg_add_u32(fw, FW_CFG_CMDLINE_SIZE, (uint32_t)strlen(c) + 1);
	if (!ret)
		ret = fw_cfg_add_bytes(fw, FW_CFG_CMDLINE_DATA, c, (uint32_t)strlen(c) + 1);
	return ret;
}

struct machine *machine_new(const struct machine_config *cfg)
{
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > PC_MAX_CPUS) {
		errno = EINVAL;
		return NULL;
	}
	struct machine *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cfg = *cfg;
	m->nr_cpus = cfg->nr_cpus;
	uint64_t tsc_hz = cfg->tsc_hz ? cfg->tsc_hz : 1000000000ull;
	int err = ENOMEM;

	m->mem = mem_new_pc(cfg->ram_bytes);
	if (!m->mem) {
		err = errno;
		goto fail;
	}
	m->pio = pio_bus_new();
	m->mmio = mmio_bus_new();
	m->clock = cfg->manual_clock ? hw_clock_new_manual(tsc_hz) : hw_clock_new_host(tsc_hz);
	m->apic_bus = apic_bus_new();
	if (!m->pio || !m->mmio || !m->clock || !m->apic_bus)
		goto fail;
	apic_bus_set_eoi(m->apic_bus, eoi_to_ioapic, m);
	for (unsigned i = 0; i < m->nr_cpus; i++) {
		m->slot[i] = (struct cpu_slot){ m, i };
		m->lapic[i] = lapic_new(m->apic_bus, m->clock, (uint8_t)i, i == 0, lapic_kick,
					&m->slot[i]);
		if (!m->lapic[i])
			goto fail;
	}
	m->ioapic = ioapic_new(m->apic_bus, PC_IOAPIC_ID);
	m->pic = pic_new(irq_make(pic_intr_set, m, 0));
	m->pit = pit_new(m->clock, isa_irq(m, PC_ISA_IRQ_PIT));
	m->rtc = rtc_new(m->clock, isa_irq(m, PC_ISA_IRQ_RTC),
			 cfg->rtc_start ? cfg->rtc_start : time(NULL));
	m->uart = uart_new(isa_irq(m, PC_ISA_IRQ_COM1), cfg->serial);
	m->kbc = i8042_new(isa_irq(m, PC_ISA_IRQ_KBD), isa_irq(m, PC_ISA_IRQ_AUX),
			   irq_make(on_reset_line, m, 0));
	m->sysctl = sysctl_new(irq_make(on_reset_line, m, 0));
	m->debug_exit = debug_exit_new(on_debug_exit, m);
	m->acpi_pm = acpi_pm_new(m->clock, irq_make(on_poweroff_line, m, 0));
	m->pci = pci_host_new();
	m->fw_cfg = fw_cfg_new(m->mem);
	if (!m->ioapic || !m->pic || !m->pit || !m->rtc || !m->uart || !m->kbc || !m->sysctl ||
	    !m->debug_exit || !m->acpi_pm || !m->pci || !m->fw_cfg)
		goto fail;

	int ret = pic_map(m->pic, m->pio);
	if (!ret)
		ret = pit_map(m->pit, m->pio);
	if (!ret)
		ret = rtc_map(m->rtc, m->pio);
	if (!ret)
		ret = uart_map(m->uart, m->pio, UART_COM1_BASE);
	if (!ret)
		ret = i8042_map(m->kbc, m->pio);
	if (!ret)
		ret = sysctl_map(m->sysctl, m->pio);
	if (!ret)
		ret = debug_exit_map(m->debug_exit, m->pio, PC_PORT_DEBUG_EXIT);
	if (!ret)
		ret = acpi_pm_map(m->acpi_pm, m->pio, PC_PORT_ACPI_PM);
	if (!ret)
		ret = pci_host_map(m->pci, m->pio);
	if (!ret)
		ret = fw_cfg_map(m->fw_cfg, m->pio);
	if (!ret)
		ret = ioapic_map(m->ioapic, m->mmio, PC_IOAPIC_BASE);

	pc_e820(m->mem, &m->e820);
	rtc_set_memory_size(m->rtc, mem_lowmem_end(m->mem), mem_highmem_size(m->mem));
	rtc_cmos_set(m->rtc, 0x5f, (uint8_t)(m->nr_cpus - 1));
	if (!ret)
		ret = fw_cfg_setup(m);
	if (!ret)
		ret = pc_write_mptable(m->mem, m->nr_cpus);
	if (!ret)
		ret = pc_write_acpi(m->mem, m->nr_cpus, &m->rsdp);
	if (ret) {
		err = -ret;
		goto fail;
	}
	return m;

fail:
	machine_free(m);
	errno = err;
	return NULL;
}

void machine_free(struct machine *m)
{
	if (!m)
		return;
	fw_cfg_free(m->fw_cfg);
	pci_host_free(m->pci);
	acpi_pm_free(m->acpi_pm);
	debug_exit_free(m->debug_exit);
	sysctl_free(m->sysctl);
	i8042_free(m->kbc);
	uart_free(m->uart);
	rtc_free(m->rtc);
	pit_free(m->pit);
	pic_free(m->pic);
	ioapic_free(m->ioapic);
	for (unsigned i = 0; i < PC_MAX_CPUS; i++)
		lapic_free(m->lapic[i]);
	apic_bus_free(m->apic_bus);
	hw_clock_free(m->clock);
	mmio_bus_free(m->mmio);
	pio_bus_free(m->pio);
	mem_free(m->mem);
	free(m);
}

struct mem *machine_mem(struct machine *m) { return m->mem; }
struct pio_bus *machine_pio(struct machine *m) { return m->pio; }
struct mmio_bus *machine_mmio(struct machine *m) { return m->mmio; }
struct hw_clock *machine_clock(struct machine *m) { return m->clock; }
struct pic *machine_pic(struct machine *m) { return m->pic; }
struct ioapic *machine_ioapic(struct machine *m) { return m->ioapic; }
struct uart *machine_uart(struct machine *m) { return m->uart; }
struct fw_cfg *machine_fw_cfg(struct machine *m) { return m->fw_cfg; }
unsigned machine_nr_cpus(const struct machine *m) { return m->nr_cpus; }
const struct e820_map *machine_e820(const struct machine *m) { return &m->e820; }
uint64_t machine_rsdp(const struct machine *m) { return m->rsdp; }

struct pci_host *machine_pci(struct machine *m) { return m->pci; }

/* ---- PCI functions ---- */

static uint32_t cfg_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int machine_add_pci(struct machine *m, struct pci_device *dev, unsigned *slot_out)
{
	unsigned slot;
	for (slot = 1; slot < 32; slot++)
		if (pci_config_read(m->pci, 0, PCI_DEVFN(slot, 0), 0, 2) == 0xffff)
			break;
	if (slot == 32)
		return -ENOSPC;

	/* plan the BARs before touching anything */
	uint64_t addr[6] = { 0 }, next = m->pci_mmio_next ? m->pci_mmio_next : PC_PCI_MMIO_START;
	bool is64[6] = { false };
	for (unsigned i = 0; i < 6; i++) {
		unsigned reg = 0x10 + 4 * i;
		uint32_t wm = cfg_le32(&dev->wmask[reg]), flags = cfg_le32(&dev->config[reg]);
		if (!wm)
			continue;
		if (flags & 1)
			return -EINVAL;
		is64[i] = (flags & 6) == 4 && i < 5;
		uint64_t mask = (uint64_t)(wm & ~0xfu) |
				(is64[i] ? (uint64_t)cfg_le32(&dev->wmask[reg + 4]) << 32
					 : 0xffffffff00000000ull);
		uint64_t size = ~mask + 1;
		if (!size || (size & (size - 1)))
			return -EINVAL;
		uint64_t at = ALIGN_UP(next, size);
		if (at < next || at + size > PC_PCI_MMIO_END || at + size < at)
			return -ENOSPC;
		addr[i] = at;
		next = at + size;
		if (is64[i])
			i++;
	}
	int ret = pci_host_add(m->pci, PCI_DEVFN(slot, 0), dev);
	if (ret)
		return ret;
	uint8_t devfn = PCI_DEVFN(slot, 0);
	for (unsigned i = 0; i < 6; i++) {
		if (!addr[i])
			continue;
		pci_config_write(m->pci, 0, devfn, 0x10 + 4 * i, 4, (uint32_t)addr[i]);
		if (is64[i])
			pci_config_write(m->pci, 0, devfn, 0x14 + 4 * i, 4, (uint32_t)(addr[i] >> 32));
	}
	uint8_t pin = dev->config[0x3d];
	if (pin >= 1 && pin <= 4)
		pci_config_write(m->pci, 0, devfn, 0x3c, 1, pc_pci_slot_gsi(slot, pin - 1u));
	uint32_t cmd = pci_config_read(m->pci, 0, devfn, 0x04, 2);
	pci_config_write(m->pci, 0, devfn, 0x04, 2, cmd | 0x6); /* memory, bus master */
	m->pci_mmio_next = next;
	if (slot_out)
		*slot_out = slot;
	return 0;
}

struct lapic *machine_lapic(struct machine *m, unsigned cpu)
{
	return cpu < m->nr_cpus ? m->lapic[cpu] : NULL;
}
