/*
 * The "emu" backend: a vCPU on the software x86-64 CPU.  Memory, port I/O,
 * interrupts and machine MSRs go through struct vm_ops; the CPU's exits
 * become vcpu exits.
 */
#include "accel/accel.h"
#include "core/core.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ranges written by other threads, waiting for the vCPU to drop its code
 * there (vcpu_code_written).  When the list is full the ranges merge into
 * one that covers them all. */
#define PENDING_MAX 32
struct pending_code {
	pthread_mutex_t lock;
	int any; /* read without the lock on the fast path */
	unsigned n;
	uint64_t start[PENDING_MAX], end[PENDING_MAX];
};

struct vcpu {
	struct x86_cpu *cpu;
	struct vcpu_config cfg;
	struct x86_mem_ops mem_ops;
	struct x86_sys_ops sys_ops;
	struct pending_code pend;
};

static void *emu_page_ptr(void *opaque, uint64_t gpa, bool *writable)
{
	struct vcpu *v = opaque;
	return v->cfg.ops->ram_page(v->cfg.opaque, gpa, writable);
}

static int emu_mmio_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct vcpu *v = opaque;
	if (v->cfg.ops->mmio_read(v->cfg.opaque, v->cfg.index, gpa, size, val) < 0)
		*val = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
	return 0;
}

static int emu_mmio_write(void *opaque, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vcpu *v = opaque;
	v->cfg.ops->mmio_write(v->cfg.opaque, v->cfg.index, gpa, size, val);
	return 0;
}

static void emu_pio_read(void *opaque, uint16_t port, unsigned size, uint32_t *val)
{
	struct vcpu *v = opaque;
	v->cfg.ops->pio_read(v->cfg.opaque, v->cfg.index, port, size, val);
}

static void emu_pio_write(void *opaque, uint16_t port, unsigned size, uint32_t val)
{
	struct vcpu *v = opaque;
	v->cfg.ops->pio_write(v->cfg.opaque, v->cfg.index, port, size, val);
}

static int emu_intr_ack(void *opaque)
{
	struct vcpu *v = opaque;
	return v->cfg.ops->get_interrupt(v->cfg.opaque, v->cfg.index);
}

static int emu_rdmsr(void *opaque, uint32_t msr, uint64_t *val)
{
	struct vcpu *v = opaque;
	return v->cfg.ops->rdmsr(v->cfg.opaque, v->cfg.index, msr, val);
}

static int emu_wrmsr(void *opaque, uint32_t msr, uint64_t val)
{
	struct vcpu *v = opaque;
	return v->cfg.ops->wrmsr(v->cfg.opaque, v->cfg.index, msr, val);
}

bool accel_available(const char *name, char *why, unsigned why_len)
{
	if (!strcmp(name, "emu"))
		return true;
	if (why)
		snprintf(why, why_len, "accelerator '%s' is not built into this maquina (available: emu)", name);
	return false;
}

struct vcpu *vcpu_new(const char *accel, const struct vcpu_config *cfg)
{
	if (strcmp(accel, "emu")) {
		errno = ENOENT;
		return NULL;
	}
	struct vcpu *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->cfg = *cfg;
	v->mem_ops = (struct x86_mem_ops){ emu_page_ptr, emu_mmio_read, emu_mmio_write };
	v->sys_ops = (struct x86_sys_ops){ emu_pio_read, emu_pio_write, emu_intr_ack, emu_rdmsr, emu_wrmsr };
	struct x86_cpu_config xc = {
		.user_mode = false,
		.sys_ops = &v->sys_ops,
		.sys_opaque = v,
		.apic = cfg->apic,
		.apic_id = (uint8_t)cfg->index,
		.code_bitmap = cfg->code_bitmap,
		.code_bitmap_pages = cfg->code_bitmap_pages,
	};
	pthread_mutex_init(&v->pend.lock, NULL);
	v->cpu = x86_cpu_new(&v->mem_ops, v, &xc);
	if (!v->cpu) {
		free(v);
		errno = ENOMEM;
		return NULL;
	}
	return v;
}

void vcpu_free(struct vcpu *v)
{
	if (!v)
		return;
	x86_cpu_free(v->cpu);
	pthread_mutex_destroy(&v->pend.lock);
	free(v);
}

void vcpu_get_state(struct vcpu *v, struct x86_state *st) { x86_get_state(v->cpu, st); }
void vcpu_set_state(struct vcpu *v, const struct x86_state *st) { x86_set_state(v->cpu, st); }

static void drain_pending(struct vcpu *v)
{
	if (!__atomic_load_n(&v->pend.any, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&v->pend.lock);
	for (unsigned i = 0; i < v->pend.n; i++)
		x86_invalidate_code(v->cpu, v->pend.start[i], v->pend.end[i] - v->pend.start[i]);
	v->pend.n = 0;
	__atomic_store_n(&v->pend.any, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->pend.lock);
}

void vcpu_code_written(struct vcpu *v, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
	pthread_mutex_lock(&v->pend.lock);
	struct pending_code *p = &v->pend;
	if (p->n == PENDING_MAX) {
		for (unsigned i = 1; i < p->n; i++) {
			p->start[0] = MIN(p->start[0], p->start[i]);
			p->end[0] = MAX(p->end[0], p->end[i]);
		}
		p->n = 1;
	}
	p->start[p->n] = gpa;
	p->end[p->n] = end;
	p->n++;
	__atomic_store_n(&p->any, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&v->pend.lock);
	x86_cpu_request_exit(v->cpu);
}

uint64_t *accel_code_bitmap_new(uint64_t max_gpa, uint64_t *pages)
{
	uint64_t n = (max_gpa + 4095) >> 12;
	uint64_t *bm = calloc((n + 63) / 64 ? (n + 63) / 64 : 1, sizeof(uint64_t));
	if (bm)
		*pages = n;
	return bm;
}

bool accel_code_bitmap_test(const uint64_t *bm, uint64_t pages, uint64_t gpa, uint64_t len)
{
	if (!len)
		return false;
	/* pairs with the CPU's fence in marking: the data is in RAM before
	 * the bits are read */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint64_t first = gpa >> 12, last = (gpa + len - 1) >> 12;
	if (gpa + len - 1 < gpa || last >= pages)
		return true;
	for (uint64_t p = first; p <= last; p++)
		if (__atomic_load_n(&bm[p / 64], __ATOMIC_RELAXED) & (1ull << (p % 64)))
			return true;
	return false;
}

void vcpu_run(struct vcpu *v, uint64_t max_insns, struct vcpu_exit *exit)
{
	struct x86_exit ex;
	memset(exit, 0, sizeof(*exit));
	drain_pending(v);
	x86_run(v->cpu, max_insns, &ex);
	struct x86_state st;
	switch (ex.reason) {
	case X86_EXIT_HLT:
		exit->reason = VCPU_EXIT_HLT;
		break;
	case X86_EXIT_SHUTDOWN:
		exit->reason = VCPU_EXIT_SHUTDOWN;
		x86_get_state(v->cpu, &st);
		exit->rip = st.rip;
		snprintf(exit->detail, sizeof(exit->detail), "triple fault (last exception %u, error code 0x%x)",
			 ex.vector, ex.error_code);
		return;
	case X86_EXIT_ICOUNT:
	case X86_EXIT_REQUEST:
		exit->reason = VCPU_EXIT_KICK;
		break;
	default:
		exit->reason = VCPU_EXIT_ERROR;
		x86_get_state(v->cpu, &st);
		exit->rip = st.rip;
		snprintf(exit->detail, sizeof(exit->detail), "unexpected CPU exit %d (vector %u)",
			 ex.reason, ex.vector);
		return;
	}
}

void vcpu_set_intr(struct vcpu *v, bool level) { x86_cpu_set_intr(v->cpu, level); }
void vcpu_nmi(struct vcpu *v) { x86_cpu_nmi(v->cpu); }
bool vcpu_can_take_intr(struct vcpu *v) { return x86_cpu_can_take_intr(v->cpu); }
void vcpu_kick(struct vcpu *v) { x86_cpu_request_exit(v->cpu); }
void vcpu_invalidate_code(struct vcpu *v, uint64_t gpa, uint64_t len) { x86_invalidate_code(v->cpu, gpa, len); }
uint64_t vcpu_icount(struct vcpu *v) { return x86_icount(v->cpu); }
