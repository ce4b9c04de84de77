/*
 * hw: the PC platform devices and the plumbing they sit on.
 *
 *   buses    port-I/O and MMIO buses that own their range maps, refuse
 *            overlapping registrations and hand each device (offset, size,
 *            value) inside its own window (Firecracker's BusDevice idea)
 *   irq      a small handle through which a device raises or lowers a line
 *            without knowing what is on the other end
 *   clock    virtual time for devices: "now" in ns, timers with deadlines,
 *            and "when is the next deadline" for a run loop that sleeps
 *   devices  8259A PIC pair, 8254 PIT (+ port 0x61), MC146818 RTC/CMOS,
 *            16550A UART, i8042, LAPIC (+ the APIC bus for IPIs/MSIs),
 *            IOAPIC, PCI host (mechanism #1), fw_cfg, debug-exit, and the
 *            system-control ports 0x80/0x92
 *
 * Nothing here knows the machine, the vCPU backend or the CPU.  Devices
 * are built explicitly (x_new), mapped by the board (x_map) and freed
 * (x_free); there are no globals, so two machines can live in one process.
 *
 * Concurrency: devices are not internally locked.  Every call into a device
 * (bus dispatch, irq, timer callbacks, the CPU-side interrupt queries) must
 * be serialized by the caller, e.g. under one machine lock.
 *
 * Values on the buses are little-endian integers of 1, 2, 4 (or 8 for MMIO)
 * bytes, as the CPU put them on the bus.
 */
#ifndef MAQUINA_HW_H
#define MAQUINA_HW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct mem;

/* ------------------------------------------------------------------ */
/* Buses                                                               */

/*
 * What a device on a bus implements.  offset is relative to the start of
 * the device's window and offset + size never exceeds its length (the bus
 * splits accesses that straddle windows into bytes).  size is 1, 2, 4 or 8.
 * read returns the value (the bus truncates it to size); unimplemented
 * registers should read as all ones or zero, as the hardware does.
 */
struct bus_dev_ops {
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
	void (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t value);
};

struct pio_bus;
struct mmio_bus;

/* Creates an empty bus; NULL on allocation failure. */
struct pio_bus *pio_bus_new(void);
struct mmio_bus *mmio_bus_new(void);
void pio_bus_free(struct pio_bus *bus);
void mmio_bus_free(struct mmio_bus *bus);

/*
 * Maps [base, base + len) to a device.  name is kept (not copied) for
 * messages.  Returns 0, -EINVAL (len 0 or past the end of the address
 * space), -EEXIST (overlaps a registered window) or -ENOMEM.
 */
int pio_bus_register(struct pio_bus *bus, uint16_t base, uint32_t len,
		     const struct bus_dev_ops *ops, void *opaque, const char *name);
int mmio_bus_register(struct mmio_bus *bus, uint64_t base, uint64_t len,
		      const struct bus_dev_ops *ops, void *opaque, const char *name);
/* Removes the window that starts at base: 0 or -ENOENT. */
int pio_bus_unregister(struct pio_bus *bus, uint16_t base);
int mmio_bus_unregister(struct mmio_bus *bus, uint64_t base);

/*
 * Dispatches one access from a vCPU exit.  size: 1, 2 or 4 (port I/O),
 * 1, 2, 4 or 8 (MMIO).  Returns 0, -EINVAL for a bad size, or -ENODEV
 * when no device claims any byte of the access (reads then return all
 * ones, writes are dropped: the caller decides whether to log).  An access
 * that straddles windows or an unclaimed part is split into bytes; bytes
 * nobody claims read as 0xff.
 */
int pio_bus_read(struct pio_bus *bus, uint16_t port, unsigned size, uint32_t *value);
int pio_bus_write(struct pio_bus *bus, uint16_t port, unsigned size, uint32_t value);
int mmio_bus_read(struct mmio_bus *bus, uint64_t gpa, unsigned size, uint64_t *value);
int mmio_bus_write(struct mmio_bus *bus, uint64_t gpa, unsigned size, uint64_t value);

/* The name of the device at addr, or NULL (for messages). */
const char *pio_bus_name_at(const struct pio_bus *bus, uint16_t port);
const char *mmio_bus_name_at(const struct mmio_bus *bus, uint64_t gpa);

/* ------------------------------------------------------------------ */
/* IRQ lines                                                           */

/* Sets input `line` of whatever receives the interrupt to `level`. */
typedef void irq_set_fn(void *opaque, unsigned line, bool level);

/* A device's interrupt output.  Copy it freely; a zero handle is a line
 * that goes nowhere. */
struct irq {
	irq_set_fn *set;
	void *opaque;
	unsigned line;
};

static inline struct irq irq_make(irq_set_fn *set, void *opaque, unsigned line)
{
	return (struct irq){ .set = set, .opaque = opaque, .line = line };
}
/* Drives the line; a level that does not change is harmless. */
static inline void irq_set(const struct irq *irq, bool level)
{
	if (irq->set)
		irq->set(irq->opaque, irq->line, level);
}
static inline void irq_raise(const struct irq *irq) { irq_set(irq, true); }
static inline void irq_lower(const struct irq *irq) { irq_set(irq, false); }
/* A rising then falling edge (an edge-triggered event). */
static inline void irq_pulse(const struct irq *irq)
{
	irq_set(irq, true);
	irq_set(irq, false);
}

/* ------------------------------------------------------------------ */
/* Clock and timers                                                    */

/*
 * The devices' time base.  hw_clock_ns() starts near 0 when the clock is
 * made and never goes back.  A host clock follows CLOCK_MONOTONIC; a manual
 * clock only moves through hw_clock_set_ns() (tests, deterministic runs).
 *
 * The TSC is defined from this clock: tsc = ns * tsc_hz / 1e9.  A CPU
 * backend that reads hw_clock_tsc() for RDTSC, and reports tsc_hz in CPUID
 * 0x15/0x16, keeps TSC, PIT, RTC and the LAPIC timer consistent.
 *
 * Timers: a device embeds a struct hw_timer, arms it with an absolute
 * deadline in clock ns, and its callback runs from hw_clock_run_timers()
 * once the deadline has passed.  The run loop:
 *     hw_clock_run_timers(clock);
 *     sleep until min(hw_clock_next_deadline(clock), an event)
 * The notify callback tells the run loop that the earliest deadline moved
 * earlier (a device armed a timer), so a sleeping loop can recompute.
 * hw_clock_ns / hw_clock_tsc may be called from any thread; timers, like
 * the devices, are used under the caller's lock.
 */
struct hw_clock;
typedef void hw_timer_fn(void *opaque);
typedef void hw_clock_notify_fn(void *opaque);

struct hw_timer {
	struct hw_clock *clock;
	hw_timer_fn *cb;
	void *opaque;
	uint64_t deadline_ns;
	bool armed;
	struct hw_timer *next; /* the clock's sorted list; private */
};

/* A clock following the host's CLOCK_MONOTONIC, or a manual one.  tsc_hz
 * must be nonzero.  NULL on allocation failure. */
struct hw_clock *hw_clock_new_host(uint64_t tsc_hz);
struct hw_clock *hw_clock_new_manual(uint64_t tsc_hz);
void hw_clock_free(struct hw_clock *clock);

uint64_t hw_clock_ns(struct hw_clock *clock);
/* Manual clocks only: moves time to ns (ignored if ns is in the past). */
void hw_clock_set_ns(struct hw_clock *clock, uint64_t ns);

uint64_t hw_clock_tsc_hz(const struct hw_clock *clock);
uint64_t hw_clock_tsc(struct hw_clock *clock);
/* Converts a TSC value to clock ns (rounded up, saturating). */
uint64_t hw_clock_tsc_to_ns(const struct hw_clock *clock, uint64_t tsc);

void hw_clock_set_notify(struct hw_clock *clock, hw_clock_notify_fn *fn, void *opaque);

/* The earliest armed deadline in ns, or UINT64_MAX if no timer is armed. */
uint64_t hw_clock_next_deadline(const struct hw_clock *clock);
/* Runs the callbacks of every timer whose deadline is <= now, earliest
 * first; callbacks may re-arm.  Returns how many ran. */
unsigned hw_clock_run_timers(struct hw_clock *clock);

void hw_timer_init(struct hw_timer *t, struct hw_clock *clock, hw_timer_fn *cb, void *opaque);
/* Arms (or re-arms) t for deadline_ns. */
void hw_timer_mod(struct hw_timer *t, uint64_t deadline_ns);
void hw_timer_del(struct hw_timer *t);
bool hw_timer_pending(const struct hw_timer *t);

/* Converts between time and ticks of a frequency, without overflow for
 * any time below ~500 years. */
uint64_t hw_ns_to_ticks(uint64_t ns, uint64_t hz);
uint64_t hw_ticks_to_ns(uint64_t ticks, uint64_t hz);

/* ------------------------------------------------------------------ */
/* Character backends (what a UART talks to)                           */

/*
 * A backend: the machine attaches stdio, a file or a unix socket.
 *   write:    the device sends bytes; the backend returns how many it
 *             took (it may drop bytes it cannot take; never blocks long).
 *   rx_ready: optional; the device has room for input again (the backend
 *             then feeds it with uart_receive()).
 */
struct chardev_ops {
	size_t (*write)(void *opaque, const uint8_t *buf, size_t len);
	void (*rx_ready)(void *opaque);
};
struct chardev {
	const struct chardev_ops *ops;
	void *opaque;
};

/* ------------------------------------------------------------------ */
/* 8259A PIC pair (master 0x20/0x21, slave 0xa0/0xa1, ELCR 0x4d0/0x4d1)  */

struct pic;

/* intr is the master's INTR output to the CPU (or the BSP's LINT0). */
struct pic *pic_new(struct irq intr);
void pic_free(struct pic *pic);
/* Maps 0x20-0x21, 0xa0-0xa1 and 0x4d0-0x4d1: 0 or the bus's error. */
int pic_map(struct pic *pic, struct pio_bus *bus);

/* Drives input irq (0..15; 2 is the cascade) to level.  Edge inputs latch
 * a rising edge; inputs marked in the ELCR follow the level. */
void pic_set_irq(struct pic *pic, unsigned irq, bool level);
/* An irq handle for input irq. */
struct irq pic_irq(struct pic *pic, unsigned irq);

/* True while the master asserts INTR (an unmasked request outranks what
 * is in service).  The CPU samples this when RFLAGS.IF=1. */
bool pic_intr_asserted(const struct pic *pic);
/*
 * The interrupt-acknowledge cycle: returns the vector (0..255) of the
 * highest-priority request and moves it to in-service (unless auto-EOI).
 * With nothing pending it returns the spurious vector of IRQ7 (or IRQ15)
 * as the hardware does.  Call only after pic_intr_asserted() said true.
 */
int pic_get_interrupt(struct pic *pic);

/* ------------------------------------------------------------------ */
/* 8254 PIT (0x40-0x43) and port 0x61                                  */

#define PIT_HZ 1193182u

struct pit;

/* irq0 is channel 0's output (ISA IRQ 0). */
struct pit *pit_new(struct hw_clock *clock, struct irq irq0);
void pit_free(struct pit *pit);
/* Maps 0x40-0x43 and 0x61 (gate of channel 2, speaker, OUT2, refresh). */
int pit_map(struct pit *pit, struct pio_bus *bus);
/* Channel ch's OUT pin now (for tests and port 0x61). */
bool pit_out(struct pit *pit, unsigned ch);
/* Sets the GATE input of channel ch (channel 2's comes from port 0x61). */
void pit_set_gate(struct pit *pit, unsigned ch, bool level);

/* ------------------------------------------------------------------ */
/* MC146818 RTC and CMOS (0x70/0x71)                                   */

struct rtc;

/* The clock runs from start_time (seconds since the epoch, UTC: the host's
 * time(NULL) for a real machine) plus the clock's elapsed time. */
struct rtc *rtc_new(struct hw_clock *clock, struct irq irq8, time_t start_time);
void rtc_free(struct rtc *rtc);
int rtc_map(struct rtc *rtc, struct pio_bus *bus);

/* CMOS bytes for the board (index 0..127; the clock registers 0x00-0x0d
 * are the RTC's own and are ignored by rtc_cmos_set). */
void rtc_cmos_set(struct rtc *rtc, unsigned index, uint8_t value);
uint8_t rtc_cmos_get(struct rtc *rtc, unsigned index);
/* Fills the memory-size fields as PC BIOSes do: 0x15/0x16 base memory
 * (640 KiB), 0x17/0x18 and 0x30/0x31 KiB above 1 MiB (capped at 65535),
 * 0x34/0x35 64 KiB units above 16 MiB below lowmem_end, 0x5b-0x5d 64 KiB
 * units above 4 GiB. */
void rtc_set_memory_size(struct rtc *rtc, uint64_t lowmem_end, uint64_t highmem_bytes);
/* True while bit 7 of the last write to port 0x70 masks NMIs. */
bool rtc_nmi_masked(const struct rtc *rtc);

/* ------------------------------------------------------------------ */
/* 16550A UART                                                         */

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4

struct uart;

/* irq is the UART's interrupt output (gated by MCR.OUT2, as on a PC). */
struct uart *uart_new(struct irq irq, struct chardev backend);
void uart_free(struct uart *uart);
/* Maps the 8 registers at base (UART_COM1_BASE for COM1). */
int uart_map(struct uart *uart, struct pio_bus *bus, uint16_t base);
/* Feeds received bytes; returns how many fit (the FIFO holds 16). */
size_t uart_receive(struct uart *uart, const uint8_t *buf, size_t len);
/* Free room in the receive FIFO. */
size_t uart_rx_space(const struct uart *uart);

/* ------------------------------------------------------------------ */
/* i8042 keyboard controller (0x60, 0x64)                              */

struct i8042;

/* irq1/irq12: keyboard and aux interrupts; reset: pulsed when the guest
 * asks for a system reset (command 0xfe, or output port bit 0 cleared). */
struct i8042 *i8042_new(struct irq irq1, struct irq irq12, struct irq reset);
void i8042_free(struct i8042 *kbc);
int i8042_map(struct i8042 *kbc, struct pio_bus *bus);
/* Queues a scan code from the keyboard (set 1, as translated). */
void i8042_kbd_put(struct i8042 *kbc, uint8_t code);

/* ------------------------------------------------------------------ */
/* Local APIC and the APIC bus                                         */

#define LAPIC_DEFAULT_BASE 0xfee00000ull
#define LAPIC_MMIO_SIZE 0x1000
/* The timer's input before the divider.  A CPU that reports it as the
 * crystal in CPUID 0x15 (ECX) lets Linux skip LAPIC timer calibration. */
#define LAPIC_BUS_HZ 1000000000ull

/* APIC_BASE MSR bits */
#define LAPIC_BASE_BSP (1u << 8)
#define LAPIC_BASE_ENABLE (1u << 11)

/* lapic_get_interrupt() results besides a vector */
#define LAPIC_INTR_NONE (-1)
#define LAPIC_INTR_EXTINT (-2) /* ask the PIC: pic_get_interrupt() */

/* lapic_take_events() bits: what the CPU must handle besides vectors */
#define LAPIC_EV_NMI (1u << 0)
#define LAPIC_EV_INIT (1u << 1)
#define LAPIC_EV_SIPI (1u << 2)
#define LAPIC_EV_SMI (1u << 3)

/* delivery modes (ICR, LVT, IOAPIC, MSI bits 8-10) */
enum apic_delivery {
	APIC_DM_FIXED = 0, APIC_DM_LOWEST = 1, APIC_DM_SMI = 2,
	APIC_DM_NMI = 4, APIC_DM_INIT = 5, APIC_DM_SIPI = 6, APIC_DM_EXTINT = 7,
};

struct lapic;
struct apic_bus;

/* Called with the vector of an EOI for a level-triggered interrupt, so the
 * IOAPIC can clear its remote IRR (the machine wires it to ioapic_eoi). */
typedef void apic_eoi_fn(void *opaque, uint8_t vector);
/* Wakes the vCPU that owns a LAPIC: something became pending for it. */
typedef void apic_kick_fn(void *opaque);

/* The wires between LAPICs, the IOAPIC and MSIs.  NULL on ENOMEM. */
struct apic_bus *apic_bus_new(void);
void apic_bus_free(struct apic_bus *bus);
void apic_bus_set_eoi(struct apic_bus *bus, apic_eoi_fn *fn, void *opaque);
/*
 * Delivers an interrupt message to the LAPICs it addresses: dest is an
 * APIC ID (physical mode, 0xff broadcast) or a logical mask (logical mode,
 * flat or cluster per each LAPIC's DFR).  Lowest-priority goes to the one
 * matching LAPIC with the lowest PPR.  Returns how many LAPICs accepted.
 */
unsigned apic_bus_deliver(struct apic_bus *bus, uint8_t dest, bool logical,
			  enum apic_delivery mode, uint8_t vector, bool level_trig);
/* An MSI write (address 0xfeeXXXXX, data) turned into a message. */
unsigned apic_bus_msi(struct apic_bus *bus, uint64_t addr, uint32_t data);

/*
 * Creates the LAPIC of the vCPU with APIC ID apic_id (the BSP if bsp) on
 * bus, in its reset state: enabled at 0xfee00000 in APIC_BASE, software
 * disabled in SVR, every LVT masked except, on the BSP, LINT0 = ExtINT and
 * LINT1 = NMI (the virtual-wire setup a BIOS leaves).  kick is called when
 * something becomes pending.  NULL on ENOMEM or if apic_id is taken.
 */
struct lapic *lapic_new(struct apic_bus *bus, struct hw_clock *clock, uint8_t apic_id,
			bool bsp, apic_kick_fn *kick, void *kick_opaque);
void lapic_free(struct lapic *lapic);
/* Back to the reset state (INIT keeps the APIC ID). */
void lapic_reset(struct lapic *lapic);

/*
 * Register access for the page at the APIC base.  The LAPIC is per CPU, so
 * it is not on the shared MMIO bus: the vCPU glue sends accesses that fall
 * in [lapic_base(l), +4 KiB) (while lapic_hw_enabled) to its own LAPIC.
 * offset is within the page; registers are 32-bit at 16-byte strides,
 * other accesses read 0 and are ignored.
 */
uint32_t lapic_mmio_read(struct lapic *lapic, uint64_t offset, unsigned size);
void lapic_mmio_write(struct lapic *lapic, uint64_t offset, unsigned size, uint64_t value);

/* APIC_BASE MSR (0x1b).  A write with reserved bits set returns -EINVAL
 * (the CPU raises #GP). */
uint64_t lapic_get_base(const struct lapic *lapic);
int lapic_set_base(struct lapic *lapic, uint64_t value);
uint64_t lapic_base_addr(const struct lapic *lapic);
bool lapic_hw_enabled(const struct lapic *lapic);
uint8_t lapic_id(const struct lapic *lapic);

/* IA32_TSC_DEADLINE MSR (0x6e0): effective only in TSC-deadline mode;
 * 0 disarms.  The deadline is in TSC ticks of the hw_clock. */
void lapic_set_tsc_deadline(struct lapic *lapic, uint64_t tsc);
uint64_t lapic_get_tsc_deadline(const struct lapic *lapic);
/* CR8 is TPR[7:4]. */
void lapic_set_cr8(struct lapic *lapic, uint64_t cr8);
uint64_t lapic_get_cr8(const struct lapic *lapic);

/* Drives the LINT0/LINT1 pins (the PIC's INTR goes to the BSP's LINT0). */
void lapic_set_lint(struct lapic *lapic, unsigned pin, bool level);

/*
 * The CPU's interrupt check, when RFLAGS.IF=1 and no interrupt shadow:
 *   v = lapic_get_interrupt(l);
 *   v >= 0             a fixed vector outranks PPR: lapic_ack(l, v) and
 *                      deliver v
 *   LAPIC_INTR_EXTINT  LINT0 is ExtINT (or the APIC is hardware-disabled)
 *                      and the PIC asserts INTR, or an ExtINT message came
 *                      over the bus: lapic_ack(l, LAPIC_INTR_EXTINT), then
 *                      deliver pic_get_interrupt() if pic_intr_asserted()
 *   LAPIC_INTR_NONE    nothing deliverable now
 * lapic_get_interrupt changes no state.  lapic_ack(l, v) moves v from IRR
 * to ISR (raising PPR) and must only follow a get that returned v.
 */
int lapic_get_interrupt(struct lapic *lapic);
void lapic_ack(struct lapic *lapic, int vector);
/* True if an interrupt or event would wake the CPU from HLT (a fixed
 * vector above PPR, ExtINT, or an NMI/INIT/SIPI/SMI event). */
bool lapic_wants_wakeup(struct lapic *lapic);
/* Returns and clears the pending LAPIC_EV_* bits; *sipi_vector gets the
 * start-up vector with LAPIC_EV_SIPI. */
unsigned lapic_take_events(struct lapic *lapic, uint8_t *sipi_vector);

/* ------------------------------------------------------------------ */
/* IOAPIC (82093AA-style, 24 pins)                                     */

#define IOAPIC_DEFAULT_BASE 0xfec00000ull
#define IOAPIC_MMIO_SIZE 0x1000
#define IOAPIC_NUM_PINS 24

struct ioapic;

struct ioapic *ioapic_new(struct apic_bus *bus, uint8_t id);
void ioapic_free(struct ioapic *ioapic);
int ioapic_map(struct ioapic *ioapic, struct mmio_bus *bus, uint64_t base);
/* Drives pin (0..23): level is the logical assertion (polarity is the
 * guest's description of the wire and is not applied here). */
void ioapic_set_irq(struct ioapic *ioapic, unsigned pin, bool level);
/* EOI broadcast from a LAPIC for a level-triggered vector. */
void ioapic_eoi(struct ioapic *ioapic, uint8_t vector);
/* Redirection entry of pin (tests, debugging). */
uint64_t ioapic_redir(const struct ioapic *ioapic, unsigned pin);

/* ------------------------------------------------------------------ */
/* PCI: configuration mechanism #1 (0xcf8/0xcfc) and the device registry */

#define PCI_DEVFN(dev, fn) ((uint8_t)(((dev) << 3) | (fn)))

struct pci_host;
struct pci_device;

/* Optional hooks of a PCI device: notified after a config write (BAR or
 * command changes), and asked to fill a config read (dynamic registers). */
struct pci_dev_ops {
	void (*config_written)(struct pci_device *dev, unsigned reg, unsigned size);
	void (*config_read)(struct pci_device *dev, unsigned reg, unsigned size);
};

/* A function's 256-byte configuration space.  wmask bits are writable by
 * the guest; everything else is read-only.  Fill it with pci_device_init
 * and pci_device_set_bar, then pci_host_add. */
struct pci_device {
	uint8_t config[256];
	uint8_t wmask[256];
	const struct pci_dev_ops *ops;
	void *opaque;
	uint8_t devfn;
};

struct pci_host *pci_host_new(void);
void pci_host_free(struct pci_host *host);
/* Maps 0xcf8-0xcff. */
int pci_host_map(struct pci_host *host, struct pio_bus *bus);
/* Header type 0 function with these IDs; command/status/BARs/interrupt
 * line writable as on hardware. */
void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint8_t revision);
/* Declares BAR i (0..5) of size (a power of two >= 16; 4 for I/O) with
 * low flag bits (bit 0: I/O space, bits 1-2: 64-bit, bit 3: prefetch).
 * -EINVAL on a bad bar or size. */
int pci_device_set_bar(struct pci_device *dev, unsigned bar, uint64_t size, uint32_t flags);
/* Puts dev at bus 0, devfn; the host bridge takes 00.0.  The device stays
 * owned by the caller.  0, -EEXIST or -EINVAL. */
int pci_host_add(struct pci_host *host, uint8_t devfn, struct pci_device *dev);
/* Config access as mechanism #1 performs it (all ones for no device). */
uint32_t pci_config_read(struct pci_host *host, uint8_t bus, uint8_t devfn, unsigned reg,
			 unsigned size);
void pci_config_write(struct pci_host *host, uint8_t bus, uint8_t devfn, unsigned reg,
		      unsigned size, uint32_t value);

/* ------------------------------------------------------------------ */
/* QEMU fw_cfg (0x510 selector, 0x511 data, 0x514 DMA)                 */

enum fw_cfg_key {
	FW_CFG_SIGNATURE = 0x00, FW_CFG_ID = 0x01, FW_CFG_UUID = 0x02,
	FW_CFG_RAM_SIZE = 0x03, FW_CFG_NOGRAPHIC = 0x04, FW_CFG_NB_CPUS = 0x05,
	FW_CFG_MACHINE_ID = 0x06, FW_CFG_KERNEL_ADDR = 0x07, FW_CFG_KERNEL_SIZE = 0x08,
	FW_CFG_KERNEL_CMDLINE = 0x09, FW_CFG_INITRD_ADDR = 0x0a, FW_CFG_INITRD_SIZE = 0x0b,
	FW_CFG_BOOT_DEVICE = 0x0c, FW_CFG_NUMA = 0x0d, FW_CFG_BOOT_MENU = 0x0e,
	FW_CFG_MAX_CPUS = 0x0f, FW_CFG_KERNEL_ENTRY = 0x10, FW_CFG_KERNEL_DATA = 0x11,
	FW_CFG_INITRD_DATA = 0x12, FW_CFG_CMDLINE_ADDR = 0x13, FW_CFG_CMDLINE_SIZE = 0x14,
	FW_CFG_CMDLINE_DATA = 0x15, FW_CFG_SETUP_ADDR = 0x16, FW_CFG_SETUP_SIZE = 0x17,
	FW_CFG_SETUP_DATA = 0x18, FW_CFG_FILE_DIR = 0x19, FW_CFG_FILE_FIRST = 0x20,
};
#define FW_CFG_MAX_ITEMS 0x60	/* keys 0 .. 0x5f; files from 0x20 */
#define FW_CFG_PORT_SEL 0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_PORT_DMA 0x514

struct fw_cfg;

/* With the signature "QEMU", ID (traditional + DMA) and the (empty) file
 * directory in place.  mem is where DMA transfers go. */
struct fw_cfg *fw_cfg_new(struct mem *mem);
void fw_cfg_free(struct fw_cfg *fw);
/* Maps 0x510-0x511 and 0x514-0x51b. */
int fw_cfg_map(struct fw_cfg *fw, struct pio_bus *bus);
/* Sets item key (< FW_CFG_FILE_FIRST) to a copy of data.  0, -EINVAL,
 * -ENOMEM.  The integer forms store little-endian. */
int fw_cfg_add_bytes(struct fw_cfg *fw, uint16_t key, const void *data, uint32_t len);
int fw_cfg_add_u16(struct fw_cfg *fw, uint16_t key, uint16_t value);
int fw_cfg_add_u32(struct fw_cfg *fw, uint16_t key, uint32_t value);
int fw_cfg_add_u64(struct fw_cfg *fw, uint16_t key, uint64_t value);
/* Adds a named file (name < 56 bytes) with a copy of data and lists it in
 * the directory.  Returns its key (>= 0x20), -EEXIST, -EINVAL, -ENOSPC or
 * -ENOMEM. */
int fw_cfg_add_file(struct fw_cfg *fw, const char *name, const void *data, uint32_t len);

/* ------------------------------------------------------------------ */
/* Small system devices                                                */

/* The QEMU-compatible debug exit (isa-debug-exit): a write of v to its
 * port asks the machine to exit with status (v << 1) | 1. */
typedef void hw_exit_fn(void *opaque, int status);
struct debug_exit;
struct debug_exit *debug_exit_new(hw_exit_fn *fn, void *opaque);
void debug_exit_free(struct debug_exit *dev);
/* Maps 4 ports at base (0xf4 on QEMU's test setups). */
int debug_exit_map(struct debug_exit *dev, struct pio_bus *bus, uint16_t base);

/* Port 0x80 (POST codes, ignored; last value readable) and port 0x92
 * (system control A: bit 1 A20 gate, bit 0 fast reset -> reset line). */
struct sysctl;
struct sysctl *sysctl_new(struct irq reset);
void sysctl_free(struct sysctl *dev);
int sysctl_map(struct sysctl *dev, struct pio_bus *bus);
bool sysctl_a20(const struct sysctl *dev);

/*
 * ACPI fixed hardware of a non-reduced FADT, at base (0x600 on this
 * board): PM1a event block (status/enable, 4 bytes at base), PM1a control
 * (2 bytes at base + 4; SCI_EN always set; writing SLP_EN with SLP_TYP
 * ACPI_PM_S5_TYP pulses `poweroff`), and the 24-bit PM timer (4 bytes at
 * base + 8, 3.579545 MHz from the clock).
 */
#define ACPI_PM_BASE 0x600
#define ACPI_PM_S5_TYP 5
#define ACPI_PM_TIMER_HZ 3579545u
struct acpi_pm;
struct acpi_pm *acpi_pm_new(struct hw_clock *clock, struct irq poweroff);
void acpi_pm_free(struct acpi_pm *pm);
int acpi_pm_map(struct acpi_pm *pm, struct pio_bus *bus, uint16_t base);

#endif
