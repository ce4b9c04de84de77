/*
 * accel: the vCPU backends behind one interface.
 *
 * A backend runs one vCPU until something the machine must handle happens
 * and returns it as an exit.  The backend reaches the machine through
 * struct vm_ops (port I/O, MMIO, interrupt acknowledge, machine-owned
 * MSRs), the same callbacks whichever backend runs, so machine/ and the
 * devices never learn which one it is.  CPU state crosses the seam as the
 * portable struct x86_state.
 *
 * Backends: "emu" (the software CPU of cpu/x86).  "kvm" comes next.
 */
#ifndef MAQUINA_ACCEL_H
#define MAQUINA_ACCEL_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/x86/x86.h"

/* How a vCPU reaches the machine.  cpu is the vCPU's index. */
struct vm_ops {
	/* RAM: host pointer to the 4 KiB guest-physical page at gpa (page
	 * aligned), or NULL for MMIO/holes; *writable false for ROM. */
	void *(*ram_page)(void *opaque, uint64_t gpa, bool *writable);
	void (*pio_read)(void *opaque, unsigned cpu, uint16_t port, unsigned size, uint32_t *val);
	void (*pio_write)(void *opaque, unsigned cpu, uint16_t port, unsigned size, uint32_t val);
	/* MMIO: return 0, or a negative errno when nothing is there (reads
	 * then give all ones and writes are dropped, as on a PC bus). */
	int (*mmio_read)(void *opaque, unsigned cpu, uint64_t gpa, unsigned size, uint64_t *val);
	int (*mmio_write)(void *opaque, unsigned cpu, uint64_t gpa, unsigned size, uint64_t val);
	/* The vector of the highest pending interrupt for this vCPU, already
	 * acknowledged, or -1. */
	int (*get_interrupt)(void *opaque, unsigned cpu);
	/* Machine-owned MSRs (APIC base, TSC, TSC deadline): 0, -ENOENT when
	 * not the machine's, or -EINVAL for #GP. */
	int (*rdmsr)(void *opaque, unsigned cpu, uint32_t msr, uint64_t *val);
	int (*wrmsr)(void *opaque, unsigned cpu, uint32_t msr, uint64_t val);
};

enum vcpu_exit_reason {
	VCPU_EXIT_HLT,      /* halted with nothing to do: wait for an interrupt */
	VCPU_EXIT_KICK,     /* vcpu_kick() or the time slice ended */
	VCPU_EXIT_SHUTDOWN, /* triple fault */
	VCPU_EXIT_ERROR,    /* the backend cannot go on; message in detail */
};

struct vcpu_exit {
	enum vcpu_exit_reason reason;
	uint64_t rip;        /* where the vCPU stopped */
	char detail[160];
};

struct vcpu;

struct vcpu_config {
	unsigned index;      /* vCPU number, also its APIC ID */
	bool apic;           /* the machine has a local APIC per CPU */
	const struct vm_ops *ops;
	void *opaque;
	/* Shared by the VM's vCPUs (accel_code_bitmap_new; NULL: none): lets
	 * DMA writers find out cheaply whether a page may hold decoded code. */
	uint64_t *code_bitmap;
	uint64_t code_bitmap_pages;
};

/* Names a backend ("emu"); NULL if none by that name is built in. */
bool accel_available(const char *name, char *why, unsigned why_len);

/* Creates a vCPU of backend name.  NULL with errno set. */
struct vcpu *vcpu_new(const char *accel, const struct vcpu_config *cfg);
void vcpu_free(struct vcpu *v);

void vcpu_get_state(struct vcpu *v, struct x86_state *st);
void vcpu_set_state(struct vcpu *v, const struct x86_state *st);

/* Runs the vCPU for at most about max_insns instructions (the software
 * CPU's time slice; KVM ignores it) or until an exit. */
void vcpu_run(struct vcpu *v, uint64_t max_insns, struct vcpu_exit *exit);

/* Tells the vCPU an interrupt may be pending (sets its INTR line). */
void vcpu_set_intr(struct vcpu *v, bool level);
void vcpu_nmi(struct vcpu *v);
/* True if a halted vCPU would take an interrupt now. */
bool vcpu_can_take_intr(struct vcpu *v);
/* Makes a running vcpu_run() return VCPU_EXIT_KICK soon; any thread. */
void vcpu_kick(struct vcpu *v);

/* Guest memory changed behind the vCPU's back (loader, DMA).  Only from
 * the vCPU's own thread, or while it is not running. */
void vcpu_invalidate_code(struct vcpu *v, uint64_t gpa, uint64_t len);

/*
 * The same from any other thread, while the vCPU may be running: the range
 * is queued, the vCPU leaves its current block at the next block boundary
 * (vcpu_run returns VCPU_EXIT_KICK) and drops its decoded code there
 * before it runs another instruction.  A device calls this (through the
 * VMM) after the data landed in RAM and before it tells the guest so (the
 * used ring), so the guest cannot run stale code from a DMA'd page.
 */
void vcpu_code_written(struct vcpu *v, uint64_t gpa, uint64_t len);

/* A bitmap with one bit per 4 KiB page below max_gpa for vcpu_config's
 * code_bitmap (free() it after the vCPUs).  NULL on allocation failure. */
uint64_t *accel_code_bitmap_new(uint64_t max_gpa, uint64_t *pages);
/* True if any page of [gpa, gpa + len) is marked (may hold code), or lies
 * beyond the bitmap.  Safe from any thread. */
bool accel_code_bitmap_test(const uint64_t *bm, uint64_t pages, uint64_t gpa, uint64_t len);

/* Instructions retired (emu) or 0. */
uint64_t vcpu_icount(struct vcpu *v);

#endif
