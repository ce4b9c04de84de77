/*
 * machine: the PC board.  The memory map in one place, which devices exist
 * and where, how ISA IRQs reach the PIC and the IOAPIC, the firmware tables
 * a kernel reads (e820, MP table, ACPI), and the boot loaders (Linux
 * bzImage, multiboot v1) that leave guest memory ready and describe the
 * initial CPU state as a plain struct for a vCPU backend.
 *
 * The vCPU side (accel/, the run loop) is not here: it creates vCPUs,
 * loads struct boot_cpu_state into the BSP, and sends exits to
 * pio_bus_*() / mmio_bus_*() of machine_pio() / machine_mmio(), accesses to
 * the APIC page to lapic_mmio_*() of its own LAPIC, and asks for interrupts
 * with machine_cpu_get_interrupt().
 */
#ifndef MAQUINA_MACHINE_H
#define MAQUINA_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hw/hw.h"
#include "mem/mem.h"

/* ------------------------------------------------------------------ */
/* The memory map (guest physical addresses)                           */

#define PC_BOOT_GDT 0x500ull	     /* boot GDT (loaders) */
#define PC_BOOT_IDT 0x520ull	     /* empty IDT (limit 0) */
#define PC_ZERO_PAGE 0x7000ull	     /* Linux boot_params */
#define PC_BOOT_STACK 0x8ff0ull	     /* initial RSP */
#define PC_PML4 0x9000ull	     /* identity page tables: PML4, */
#define PC_PDPT 0xa000ull	     /* PDPT, */
#define PC_PD 0xb000ull		     /* 4 PDs mapping 0-4 GiB (2 MiB pages) */
#define PC_MB_INFO 0x9000ull	     /* multiboot info (no page tables then) */
#define PC_MB_INFO_END 0x1f000ull
#define PC_CMDLINE 0x20000ull	     /* kernel command line, up to 64 KiB */
#define PC_CMDLINE_MAX 0x10000ull
#define PC_EBDA 0x9fc00ull	     /* reserved like a BIOS EBDA */
#define PC_MPTABLE 0xf0000ull	     /* MP floating pointer + table */
#define PC_BIOS_AREA 0xe0000ull	     /* ACPI tables (RSDP first) */
#define PC_BIOS_AREA_END 0x100000ull
#define PC_HIGH_MEM 0x100000ull	     /* kernels load here */
#define PC_IOAPIC_BASE IOAPIC_DEFAULT_BASE
#define PC_LAPIC_BASE LAPIC_DEFAULT_BASE

/* Port map */
#define PC_PORT_DEBUG_EXIT 0xf4
#define PC_PORT_ACPI_PM ACPI_PM_BASE

/* IRQ routing: ISA IRQ n goes to PIC input n and to IOAPIC pin n, except
 * IRQ 0 (the PIT), which is wired to pin 2 (an interrupt-source override
 * in the MADT and an explicit entry in the MP table). */
#define PC_ISA_IRQ_PIT 0
#define PC_ISA_IRQ_KBD 1
#define PC_ISA_IRQ_COM1 4
#define PC_ISA_IRQ_SCI 9
#define PC_ISA_IRQ_RTC 8
#define PC_ISA_IRQ_AUX 12
#define PC_IOAPIC_ID 0	/* MP/MADT IOAPIC id (CPUs use 0..N-1 too; IDs
			 * of IOAPICs and LAPICs are separate namespaces
			 * on xAPIC systems but we avoid clashes anyway) */
#define PC_MAX_CPUS 64

/* The GSI (IOAPIC pin) of ISA IRQ isa_irq. */
unsigned pc_isa_irq_to_gsi(unsigned isa_irq);

/*
 * PCI: one root bus (0) behind the host bridge at 00:00.0, described to
 * the guest by the DSDT (\_SB.PCI0, PNP0A03) with a _CRS whose memory
 * window is [PC_PCI_MMIO_START, PC_PCI_MMIO_END) and a _PRT that routes
 * INTx pin p (0 = INTA#) of device s to IOAPIC GSI pc_pci_slot_gsi(s, p),
 * level-triggered, active low (GSIs 16-23: no ISA interrupt shares them).
 */
#define PC_PCI_MMIO_START 0xe0000000ull
#define PC_PCI_MMIO_END 0xfec00000ull /* the IOAPIC follows */
#define PC_PCI_GSI_BASE 16
unsigned pc_pci_slot_gsi(unsigned slot, unsigned pin);

/* ------------------------------------------------------------------ */
/* e820                                                                */

enum e820_type { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4 };
#define E820_MAX 16

struct e820_entry {
	uint64_t addr, size;
	uint32_t type;
};
struct e820_map {
	unsigned count;
	struct e820_entry e[E820_MAX];
};

/* The map of mem's PC layout: RAM [0, 0x9fc00), reserved [0x9fc00,
 * 0xa0000) and [0xe0000, 1 MiB) (ACPI and MP tables), RAM [1 MiB,
 * lowmem), RAM above 4 GiB. */
void pc_e820(const struct mem *mem, struct e820_map *map);

/* ------------------------------------------------------------------ */
/* Firmware tables                                                     */

/*
 * Writes an MP table (floating pointer at PC_MPTABLE, config table after it)
 * for nr_cpus processors (APIC IDs 0..nr_cpus-1, 0 the BSP), the PCI bus
 * (MP bus 0) and the ISA bus (1), the IOAPIC, the ISA interrupt assignments and
 * the PCI INTx routes (pc_pci_slot_gsi), with LINT0 = ExtINT and
 * LINT1 = NMI.  Returns 0, -EINVAL (nr_cpus 0 or too many to fit) or
 * -EFAULT (no RAM there).
 */
int pc_write_mptable(struct mem *mem, unsigned nr_cpus);

/*
 * Writes ACPI tables in [PC_BIOS_AREA, PC_MPTABLE): RSDP (v2) at
 * PC_BIOS_AREA, RSDT, XSDT, FADT (not hardware-reduced: PM1a/PM timer at
 * PC_PORT_ACPI_PM, SCI on IRQ 9, reset through port 0x64 value 0xfe, RTC
 * century at CMOS 0x32, 8042 present), a DSDT with \_S5 and the PCI root
 * bridge \_SB.PCI0 (_HID PNP0A03, _CRS, _PRT: see PC_PCI_MMIO_START),
 * and a MADT with nr_cpus LAPICs, the IOAPIC, ISOs (IRQ 0 -> GSI 2, SCI
 * level) and LINT1 NMI.  *rsdp_addr gets the RSDP's address.  Returns 0,
 * -EINVAL or -EFAULT.
 */
int pc_write_acpi(struct mem *mem, unsigned nr_cpus, uint64_t *rsdp_addr);

/* The ACPI table checksum rule: bytes sum to 0 (mod 256). */
uint8_t pc_checksum(const uint8_t *p, size_t len);

/* ------------------------------------------------------------------ */
/* Initial CPU state                                                   */

/* A segment register with its hidden part, as a backend loads it. */
struct boot_seg {
	uint16_t selector;
	uint64_t base;
	uint32_t limit; /* in bytes (already scaled by G) */
	uint8_t type;	/* 4-bit type field */
	uint8_t s, dpl, present, avl, l, db, g;
	bool unusable;
};

enum boot_mode { BOOT_MODE_PROTECTED32 = 1, BOOT_MODE_LONG64 = 2 };

/*
 * What the BSP looks like when the loaded kernel starts.  Registers not
 * named here are 0; MSRs not named are the backend's reset values.  The
 * GDT and page tables it refers to are already in guest memory.
 */
struct boot_cpu_state {
	enum boot_mode mode;
	uint64_t rip, rsp, rflags;
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
	uint64_t cr0, cr3, cr4, efer;
	struct boot_seg cs, ds, es, fs, gs, ss, tr, ldtr;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	uint16_t fpu_fcw; /* 0x37f */
	uint32_t mxcsr;	  /* 0x1f80 */
};

/* ------------------------------------------------------------------ */
/* Boot loaders                                                        */

/* Why a load failed, for the caller's message ("maquina: FILE: why"). */
struct loader_error {
	char msg[256];
};

/* Limits on what the loaders read from files. */
#define LOADER_MAX_KERNEL (512ull << 20)
#define LOADER_MAX_INITRD (2ull << 30)

/*
 * Reads a whole regular file of at most max_bytes into a new buffer.
 * Returns 0 and *buf (free() it) / *len, or -errno from open/read,
 * -EISDIR, -EFBIG (larger than max_bytes) or -ENOMEM.
 */
int loader_read_file(const char *path, uint64_t max_bytes, uint8_t **buf, size_t *len);

/* What a Linux boot needs besides guest memory. */
struct linux_boot {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* NULL: none */
	size_t initrd_len;
	const char *cmdline;   /* NULL: empty */
	const struct e820_map *e820;
	uint64_t rsdp_addr;    /* 0: none (the kernel may still scan for it) */
};

/* What the bzImage loader found and did (for tests and messages). */
struct linux_info {
	uint16_t version;     /* boot protocol, e.g. 0x020f */
	uint32_t setup_bytes; /* (setup_sects + 1) * 512 */
	uint64_t load_addr;   /* where the protected-mode kernel went */
	uint64_t kernel_end;  /* end of the memory the kernel needs */
	uint64_t initrd_addr; /* 0: none */
	uint32_t cmdline_max; /* the kernel's cmdline_size */
	bool entry64;	      /* 64-bit entry used (else 32-bit) */
};

/* True if buf looks like a bzImage (boot sector and "HdrS" magic). */
bool linux_is_bzimage(const uint8_t *buf, size_t len);

/*
 * Loads a bzImage per Documentation/arch/x86/boot.rst: validates the setup
 * header (0xaa55, "HdrS", protocol >= 2.06, LOADED_HIGH), copies the
 * protected-mode kernel to 1 MiB, checks that RAM below lowmem holds what
 * the kernel needs (init_size from its run-time address), enforces
 * cmdline_size, puts the initrd as high as initrd_addr_max and lowmem allow
 * above the kernel, and builds boot_params at PC_ZERO_PAGE (setup header
 * copied, type_of_loader 0xff, e820 table, command line, initrd,
 * acpi_rsdp_addr).  With XLF_KERNEL_64 the CPU starts at the 64-bit entry
 * (load + 0x200) in long mode on identity page tables for 0-4 GiB,
 * otherwise at the 32-bit entry in flat protected mode; RSI = boot_params
 * either way.  Returns 0, or -EINVAL / -ENOEXEC (bad image), -E2BIG
 * (command line too long), -ENOMEM (guest RAM too small), -EFAULT, with
 * err->msg saying which.
 */
int linux_load(struct mem *mem, const struct linux_boot *boot, struct boot_cpu_state *cpu,
	       struct linux_info *info, struct loader_error *err);

/* What a multiboot boot needs. */
struct mb_module {
	const uint8_t *data;
	size_t len;
	const char *cmdline; /* the module's string ("name args") */
};
struct multiboot_boot {
	const uint8_t *kernel;
	size_t kernel_len;
	const char *kernel_name; /* QEMU passes "name cmdline" as the cmdline */
	const char *cmdline;
	const struct mb_module *modules;
	unsigned nr_modules;
	const struct e820_map *e820;
};

/* True if a valid multiboot v1 header lies in the first 8 KiB. */
bool multiboot_detect(const uint8_t *buf, size_t len);

/*
 * Loads a multiboot v1 kernel as QEMU's -kernel does: the header in the
 * first 8 KiB (magic 0x1badb002, checksum), the a.out-kludge addresses if
 * flag 16 is set, else ELF32/ELF64 PT_LOAD segments at their physical
 * addresses; modules page-aligned after the kernel; the multiboot info at
 * PC_MB_INFO with mem_lower/upper, cmdline, modules, mmap and the boot
 * loader name.  The CPU starts in flat 32-bit protected mode, paging off,
 * EAX = 0x2badb002, EBX = the info's address.  Returns 0 or -ENOEXEC /
 * -EINVAL / -ENOMEM / -E2BIG / -EFAULT with err->msg.
 */
int multiboot_load(struct mem *mem, const struct multiboot_boot *boot,
		   struct boot_cpu_state *cpu, struct loader_error *err);

/* ------------------------------------------------------------------ */
/* The board                                                           */

struct machine;

/* Wakes vCPU cpu (it may be sleeping in HLT): an interrupt or event is
 * pending for it. */
typedef void machine_kick_fn(void *opaque, unsigned cpu);

struct machine_config {
	uint64_t ram_bytes;
	unsigned nr_cpus;	  /* 1..PC_MAX_CPUS */
	uint64_t tsc_hz;	  /* 0: 1 GHz */
	bool manual_clock;	  /* time only moves via hw_clock_set_ns */
	time_t rtc_start;	  /* 0: the host's time */
	struct chardev serial;	  /* COM1's backend */
	machine_kick_fn *kick;
	void *kick_opaque;
};

/* What the guest asked the machine to do (machine_take_request). */
enum machine_request {
	MACHINE_REQ_NONE = 0,
	MACHINE_REQ_EXIT,     /* debug-exit: status in *status */
	MACHINE_REQ_RESET,    /* i8042 0xfe, port 0x92, ACPI reset */
	MACHINE_REQ_POWEROFF, /* ACPI S5 */
};

/*
 * Builds the board: guest RAM (mem_new_pc), the buses, clock, PIC pair,
 * PIT, RTC (memory sizes and CPU count in CMOS), COM1, i8042, port 0x80 /
 * 0x92, debug-exit at 0xf4, ACPI PM at 0x600, PCI host, fw_cfg (signature,
 * ID, RAM size, CPU count, "etc/e820"), the IOAPIC and one LAPIC per CPU
 * (APIC ID = CPU index; 0 is the BSP, its LINT0 fed by the PIC), then the
 * MP table and the ACPI tables.  Returns NULL with errno set (EINVAL for a
 * bad config, ENOMEM, or mem's error).
 */
struct machine *machine_new(const struct machine_config *cfg);
void machine_free(struct machine *m);

struct mem *machine_mem(struct machine *m);
struct pio_bus *machine_pio(struct machine *m);
struct mmio_bus *machine_mmio(struct machine *m);
struct hw_clock *machine_clock(struct machine *m);
struct pic *machine_pic(struct machine *m);
struct ioapic *machine_ioapic(struct machine *m);
struct lapic *machine_lapic(struct machine *m, unsigned cpu);
struct uart *machine_uart(struct machine *m);
struct fw_cfg *machine_fw_cfg(struct machine *m);
unsigned machine_nr_cpus(const struct machine *m);
const struct e820_map *machine_e820(const struct machine *m);
uint64_t machine_rsdp(const struct machine *m);

/* Drives GSI gsi (an IOAPIC pin; below 16 also the matching PIC input:
 * GSI 2 is ISA IRQ 0).  The entry point for irq_line(machine, gsi). */
void machine_irq_line(struct machine *m, unsigned gsi, bool level);
/* Drives ISA IRQ isa_irq on both controllers. */
void machine_isa_irq(struct machine *m, unsigned isa_irq, bool level);
/* An MSI write. */
void machine_msi(struct machine *m, uint64_t addr, uint32_t data);

/*
 * Puts a PCI function on bus 0 the way firmware would leave it: at the
 * first free device number (1..31, function 0), its memory BARs (sizes
 * read from the write masks) placed in the PCI hole, naturally aligned,
 * memory decoding and bus mastering on, the interrupt line register set
 * to its INTA# GSI.  Config writes go through the PCI host, so a device's
 * config-write hook sees them (virtio-pci maps its BAR then).  dev stays
 * owned by the caller and must outlive the machine's use of it (free it
 * before machine_free).  *slot gets the device number; its INTx GSI is
 * pc_pci_slot_gsi(slot, pin - 1).  Returns 0, -ENOSPC (no free slot or no
 * room left in the hole) or -EINVAL (an I/O BAR: not supported).
 */
int machine_add_pci(struct machine *m, struct pci_device *dev, unsigned *slot);
/* The PCI host (tests, and devices that need config access). */
struct pci_host *machine_pci(struct machine *m);

/*
 * Where interrupts go when the interrupt controllers are not these
 * devices (KVM's in-kernel irqchip: KVM_IRQ_LINE / KVM_SIGNAL_MSI).  Once
 * set, machine_isa_irq, machine_irq_line and machine_msi (and so every
 * device's IRQ) call these instead of the emulated PIC/IOAPIC/LAPICs.
 * isa_irq gets the ISA IRQ number (0..15, its GSI is pc_isa_irq_to_gsi());
 * gsi gets a GSI.  NULL ops go back to the emulated controllers.
 */
struct irqchip_ops {
	void (*isa_irq)(void *opaque, unsigned isa_irq, bool level);
	void (*gsi)(void *opaque, unsigned gsi, bool level);
	void (*msi)(void *opaque, uint64_t addr, uint32_t data);
};
void machine_set_irqchip(struct machine *m, const struct irqchip_ops *ops, void *opaque);

/*
 * The emulated CPU's interrupt check for vCPU cpu when it can take one
 * (RFLAGS.IF=1, no shadow): returns the vector to deliver, already
 * acknowledged at the LAPIC or the PIC, or -1.  machine_cpu_has_interrupt
 * is the same test without acknowledging (HLT wake-up, interrupt window).
 */
int machine_cpu_get_interrupt(struct machine *m, unsigned cpu);
bool machine_cpu_has_interrupt(struct machine *m, unsigned cpu);

/* Returns and clears the last request from the guest (exit, reset,
 * power-off); *status gets the exit status for MACHINE_REQ_EXIT. */
enum machine_request machine_take_request(struct machine *m, int *status);

/* Adds the kernel items to fw_cfg (addresses, sizes, cmdline) so that
 * firmware or a test kernel can find them. */
int machine_fw_cfg_kernel(struct machine *m, uint64_t kernel_addr, uint64_t kernel_size,
			  uint64_t initrd_addr, uint64_t initrd_size, const char *cmdline);

/* ------------------------------------------------------------------ */
/* Host character backends for the serial port                         */

/*
 * A host end for a UART: "stdio" (the terminal, in raw mode while open if
 * it is one, restored on close; Ctrl-A x asks to quit, Ctrl-A a sends a
 * Ctrl-A), "file:PATH" (output only, truncated), "unix:PATH" (a listening
 * socket; one client at a time, output dropped while none), or "null".
 * Returns 0 and *out, or -errno with err->msg.
 */
struct chardev_host;
int chardev_host_open(const char *spec, struct chardev_host **out, struct loader_error *err);
/* Wraps two descriptors (input may be -1); escape enables Ctrl-A handling.
 * The descriptors are not closed by chardev_host_close. */
struct chardev_host *chardev_host_from_fds(int in_fd, int out_fd, bool escape);
void chardev_host_close(struct chardev_host *h);
/* The struct chardev to give to uart_new / machine_config.serial. */
struct chardev chardev_host_dev(struct chardev_host *h);
/* The descriptor to poll for input (a listening or connected socket, or
 * stdin), or -1. */
int chardev_host_poll_fd(const struct chardev_host *h);
/*
 * Moves the input that is available now (never blocks) into the UART, as
 * much as its FIFO takes; accepts a waiting unix-socket client.  Returns
 * 1 if the user typed Ctrl-A x, 0 otherwise, or -errno on a read error.
 */
int chardev_host_pump(struct chardev_host *h, struct uart *uart);

/* Where chardev_host_pump_sink delivers input: space says how many bytes
 * the device can take now (0: none), receive takes up to len and returns
 * how many it took. */
struct chardev_sink {
	size_t (*receive)(void *opaque, const uint8_t *buf, size_t len);
	size_t (*space)(void *opaque);
	void *opaque;
};
/* chardev_host_pump for any device (e.g. a virtio console). */
int chardev_host_pump_sink(struct chardev_host *h, const struct chardev_sink *sink);

#endif
