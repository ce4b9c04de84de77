/*
 * maquina run: one virtual PC in this process (the VMM).
 *
 *   main thread   loads the kernel, builds the machine and its devices, then
 *                 runs the I/O thread's event loop (core's ev_loop): device
 *                 timers, the serial console's input, guest requests (exit,
 *                 reset, power-off), and the descriptors devices watch
 *                 (virtio-blk's I/O completions, network backends)
 *   vCPU threads  one per vCPU, each running its vCPU in time slices;
 *                 device accesses from a vCPU take the machine lock
 *
 * Devices are not thread-safe by themselves: every call into machine/ and
 * hw/ happens under vm->lock.
 */
#include "accel/accel.h"
#include "cli/cli.h"
#include "core/core.h"
#include "machine/machine.h"
#include "net/net.h"
#include "virtio/virtio.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLICE_INSNS (1u << 20)

#define RUN_MAX_DISKS 16
#define RUN_MAX_NICS 8
#define RUN_MAX_PCI 31 /* device numbers 1..31 of bus 0 */

struct run_opts {
	const char *kernel, *initrd, *append, *serial, *accel;
	uint64_t ram_bytes;
	unsigned cpus;
	bool no_reboot;
	/* --disk: parsed specs (strings point into disk_buf[i]) */
	unsigned nr_disks;
	const char *disk_spec[RUN_MAX_DISKS];
	struct virtio_blk_opts disk[RUN_MAX_DISKS];
	char *disk_buf[RUN_MAX_DISKS];
	bool rng;
	bool virtio_console; /* --console virtio: --serial feeds hvc0, COM1 is unplugged */
	unsigned nr_nics; /* --net, in order */
	const char *nic_spec[RUN_MAX_NICS];
	struct net_opts nic[RUN_MAX_NICS];
};

struct vm;
/* A virtio function on the board: how its interrupts reach the machine. */
struct vm_pci {
	struct vm *vm;
	struct virtio_pci *vp;
	unsigned gsi; /* INTA#'s GSI */
};

enum vm_action { VM_RUNNING, VM_EXIT, VM_RESET };

struct vm {
	struct run_opts *opts;
	struct machine *m;
	struct vcpu *vcpu[PC_MAX_CPUS];
	pthread_t thread[PC_MAX_CPUS];
	bool started[PC_MAX_CPUS];
	bool wait_sipi[PC_MAX_CPUS];
	int sipi_vector[PC_MAX_CPUS]; /* a start-up to apply, or -1 */
	uint64_t tsc_offset[PC_MAX_CPUS];
	unsigned ncpus;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ev_loop *loop;	/* the I/O thread's loop (this thread: main) */
	struct ev_timer *tick;	/* wakes the loop for the next device deadline */
	int serial_watched;	/* the descriptor the loop watches for input, or -1 */
	bool serial_input;	/* false after a read error: no more input */
	struct vm_pci pci[RUN_MAX_PCI];
	/* --net backends: made at the first boot, kept across reboots (the
	 * TAP interface and forwarded ports stay), freed at exit */
	struct net_backend *nic_be[RUN_MAX_NICS];
	unsigned nr_pci;
	volatile enum vm_action action;
	int exit_status;
	char why[256];
	struct chardev_host *serial; /* COM1's host end (machine/chardev.c) */
	struct virtio_console *vcon; /* --console virtio: the host end feeds it */
	uint64_t *code_bitmap;	     /* pages the emu vCPUs decoded code from */
	uint64_t code_bitmap_pages;
};

/*
 * A device wrote guest RAM at [gpa, gpa + len) (virtio_env.dma_written):
 * vCPUs that may have decoded code there drop it before the guest can see
 * the completion.  Any thread; called before the device publishes it.
 */
static void vm_dma_written(void *opaque, uint64_t gpa, uint64_t len)
{
	struct vm *vm = opaque;
	if (!vm->code_bitmap ||
	    !accel_code_bitmap_test(vm->code_bitmap, vm->code_bitmap_pages, gpa, len))
		return;
	for (unsigned k = 0; k < vm->ncpus; k++)
		if (vm->vcpu[k])
			vcpu_code_written(vm->vcpu[k], gpa, len);
}

/* --- machine callbacks (vm->lock held) ---------------------------------- */

/* Something became pending for vCPU cpu. */
static void vm_kick(void *opaque, unsigned cpu)
{
	struct vm *vm = opaque;
	if (cpu < vm->ncpus && vm->vcpu[cpu])
		vcpu_set_intr(vm->vcpu[cpu], true);
	pthread_cond_broadcast(&vm->cond);
}

/* Wakes the I/O loop (any thread): a deadline moved earlier, or the VM
 * should stop. */
static void clock_notify(void *opaque)
{
	struct vm *vm = opaque;
	ev_loop_wake(vm->loop);
}

static void check_requests(struct vm *vm)
{
	int status = 0;
	switch (machine_take_request(vm->m, &status)) {
	case MACHINE_REQ_EXIT:
		vm->exit_status = status;
		vm->action = VM_EXIT;
		break;
	case MACHINE_REQ_POWEROFF:
		vm->exit_status = 0;
		vm->action = VM_EXIT;
		break;
	case MACHINE_REQ_RESET:
		if (vm->opts->no_reboot) {
			vm->exit_status = 0;
			vm->action = VM_EXIT;
		} else {
			vm->action = VM_RESET;
		}
		break;
	default:
		return;
	}
	for (unsigned k = 0; k < vm->ncpus; k++)
		if (vm->vcpu[k])
			vcpu_kick(vm->vcpu[k]);
	pthread_cond_broadcast(&vm->cond);
	clock_notify(vm);
}

/* --- vm_ops ------------------------------------------------------------- */

static void *op_ram_page(void *opaque, uint64_t gpa, bool *writable)
{
	struct vm *vm = opaque;
	*writable = true;
	return mem_ram_ptr(machine_mem(vm->m), gpa, 4096);
}

static void op_pio_read(void *opaque, unsigned cpu, uint16_t port, unsigned size, uint32_t *val)
{
	struct vm *vm = opaque;
	(void)cpu;
	pthread_mutex_lock(&vm->lock);
	if (pio_bus_read(machine_pio(vm->m), port, size, val) < 0)
		*val = size == 4 ? 0xffffffffu : (1u << (size * 8)) - 1;
	pthread_mutex_unlock(&vm->lock);
}

static void op_pio_write(void *opaque, unsigned cpu, uint16_t port, unsigned size, uint32_t val)
{
	struct vm *vm = opaque;
	(void)cpu;
	pthread_mutex_lock(&vm->lock);
	pio_bus_write(machine_pio(vm->m), port, size, val);
	check_requests(vm);
	pthread_mutex_unlock(&vm->lock);
}

static struct lapic *apic_page(struct vm *vm, unsigned cpu, uint64_t gpa)
{
	struct lapic *l = machine_lapic(vm->m, cpu);
	if (l && lapic_hw_enabled(l) && gpa - lapic_base_addr(l) < 4096)
		return l;
	return NULL;
}

static int op_mmio_read(void *opaque, unsigned cpu, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct vm *vm = opaque;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	struct lapic *l = apic_page(vm, cpu, gpa);
	if (l)
		*val = lapic_mmio_read(l, gpa - lapic_base_addr(l), size);
	else
		r = mmio_bus_read(machine_mmio(vm->m), gpa, size, val);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static int op_mmio_write(void *opaque, unsigned cpu, uint64_t gpa, unsigned size, uint64_t val)
{
	struct vm *vm = opaque;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	struct lapic *l = apic_page(vm, cpu, gpa);
	if (l)
		lapic_mmio_write(l, gpa - lapic_base_addr(l), size, val);
	else
		r = mmio_bus_write(machine_mmio(vm->m), gpa, size, val);
	check_requests(vm);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static int op_get_interrupt(void *opaque, unsigned cpu)
{
	struct vm *vm = opaque;
	pthread_mutex_lock(&vm->lock);
	int v = machine_cpu_get_interrupt(vm->m, cpu);
	if (v < 0)
		vcpu_set_intr(vm->vcpu[cpu], machine_cpu_has_interrupt(vm->m, cpu));
	pthread_mutex_unlock(&vm->lock);
	return v;
}

#define MSR_TSC 0x10
#define MSR_APIC_BASE 0x1b
#define MSR_TSC_DEADLINE 0x6e0

static int op_rdmsr(void *opaque, unsigned cpu, uint32_t msr, uint64_t *val)
{
	struct vm *vm = opaque;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	struct lapic *l = machine_lapic(vm->m, cpu);
	switch (msr) {
	case MSR_TSC: *val = hw_clock_tsc(machine_clock(vm->m)) + vm->tsc_offset[cpu]; break;
	case MSR_APIC_BASE: *val = lapic_get_base(l); break;
	case MSR_TSC_DEADLINE: *val = lapic_get_tsc_deadline(l); break;
	default: r = -ENOENT; break;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static int op_wrmsr(void *opaque, unsigned cpu, uint32_t msr, uint64_t val)
{
	struct vm *vm = opaque;
	int r = 0;
	pthread_mutex_lock(&vm->lock);
	struct lapic *l = machine_lapic(vm->m, cpu);
	switch (msr) {
	case MSR_TSC: vm->tsc_offset[cpu] = val - hw_clock_tsc(machine_clock(vm->m)); break;
	case MSR_APIC_BASE: r = lapic_set_base(l, val); break;
	case MSR_TSC_DEADLINE:
		lapic_set_tsc_deadline(l, val - vm->tsc_offset[cpu]);
		break;
	default: r = -ENOENT; break;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

static const struct vm_ops vm_ops = {
	op_ram_page, op_pio_read, op_pio_write, op_mmio_read, op_mmio_write,
	op_get_interrupt, op_rdmsr, op_wrmsr,
};

/* --- CPU state ------------------------------------------------------------ */

static struct x86_segment seg_of(const struct boot_seg *b)
{
	struct x86_segment s;
	s.sel = b->selector;
	s.base = b->base;
	s.limit = b->limit;
	s.attr = (uint16_t)((b->type & 0xf) | (b->s << 4) | ((b->dpl & 3) << 5) | (b->present << 7) |
			    (b->avl << 8) | (b->l << 9) | (b->db << 10) | (b->g << 11));
	if (b->unusable)
		s.attr = 0;
	return s;
}

static void boot_state_to_x86(const struct boot_cpu_state *b, struct x86_state *st)
{
	st->gpr[X86_RAX] = b->rax;
	st->gpr[X86_RBX] = b->rbx;
	st->gpr[X86_RCX] = b->rcx;
	st->gpr[X86_RDX] = b->rdx;
	st->gpr[X86_RSI] = b->rsi;
	st->gpr[X86_RDI] = b->rdi;
	st->gpr[X86_RBP] = b->rbp;
	st->gpr[X86_RSP] = b->rsp;
	st->rip = b->rip;
	st->rflags = b->rflags | 2;
	st->seg[X86_CS] = seg_of(&b->cs);
	st->seg[X86_DS] = seg_of(&b->ds);
	st->seg[X86_ES] = seg_of(&b->es);
	st->seg[X86_FS] = seg_of(&b->fs);
	st->seg[X86_GS] = seg_of(&b->gs);
	st->seg[X86_SS] = seg_of(&b->ss);
	st->tr = seg_of(&b->tr);
	st->ldtr = seg_of(&b->ldtr);
	st->gdtr.base = b->gdt_base;
	st->gdtr.limit = b->gdt_limit;
	st->idtr.base = b->idt_base;
	st->idtr.limit = b->idt_limit;
	st->cr0 = b->cr0;
	st->cr3 = b->cr3;
	st->cr4 = b->cr4;
	st->efer = b->efer;
	st->fx.fcw = b->fpu_fcw ? b->fpu_fcw : 0x37f;
	st->fx.mxcsr = b->mxcsr ? b->mxcsr : 0x1f80;
}

/* An AP after SIPI: real mode at vector << 12. */
static void sipi_state(struct vcpu *v, uint8_t vector)
{
	struct x86_state st;
	vcpu_get_state(v, &st);
	memset(st.gpr, 0, sizeof(st.gpr));
	st.rip = 0;
	st.rflags = 2;
	st.seg[X86_CS].sel = (uint16_t)(vector << 8);
	st.seg[X86_CS].base = (uint64_t)vector << 12;
	st.seg[X86_CS].limit = 0xffff;
	st.seg[X86_CS].attr = 0x9b;
	for (unsigned s = 0; s < 6; s++) {
		if (s == X86_CS)
			continue;
		st.seg[s] = (struct x86_segment){ 0, 0xffff, 0, 0x93 };
	}
	st.cr0 = 0x60000010;
	st.cr3 = st.cr4 = st.efer = 0;
	st.idtr = (struct x86_dtable){ 0, 0xffff };
	st.gdtr = (struct x86_dtable){ 0, 0xffff };
	vcpu_set_state(v, &st);
}

/* --- vCPU threads --------------------------------------------------------- */

struct vcpu_arg {
	struct vm *vm;
	unsigned idx;
};

/* Handles LAPIC events (NMI, INIT, SIPI); lock held. */
static void take_events(struct vm *vm, unsigned idx)
{
	uint8_t sipi = 0;
	struct lapic *l = machine_lapic(vm->m, idx);
	unsigned ev = l ? lapic_take_events(l, &sipi) : 0;
	if (ev)
		log_debug("vCPU %u: LAPIC events 0x%x (SIPI vector 0x%x)", idx, ev, sipi);
	if (ev & LAPIC_EV_INIT) {
		vm->wait_sipi[idx] = idx != 0;
		vm->started[idx] = false;
	}
	if ((ev & LAPIC_EV_SIPI) && vm->wait_sipi[idx]) {
		/* the vCPU thread loads the state once it drops the lock */
		vm->sipi_vector[idx] = (int)sipi;
		vm->wait_sipi[idx] = false;
		vm->started[idx] = true;
	}
	if (ev & LAPIC_EV_NMI)
		vcpu_nmi(vm->vcpu[idx]);
}

static void *vcpu_thread(void *p)
{
	struct vcpu_arg *a = p;
	struct vm *vm = a->vm;
	unsigned idx = a->idx;
	struct vcpu *v = vm->vcpu[idx];
	unsigned long slices = 0;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pthread_mutex_lock(&vm->lock);
		take_events(vm, idx);
		while (vm->action == VM_RUNNING && !vm->started[idx]) {
			pthread_cond_wait(&vm->cond, &vm->lock);
			take_events(vm, idx);
		}
		int sipi = vm->sipi_vector[idx];
		vm->sipi_vector[idx] = -1;
		pthread_mutex_unlock(&vm->lock);
		if (vm->action != VM_RUNNING)
			break;
		if (sipi >= 0)
			sipi_state(v, (uint8_t)sipi);

		struct vcpu_exit ex;
		vcpu_run(v, SLICE_INSNS, &ex);
		if (log_get_level() >= LOG_INFO && (++slices & 255) == 0) {
			struct x86_state st;
			vcpu_get_state(v, &st);
			log_info("vCPU %u: %llu instructions, rip 0x%llx", idx,
				 (unsigned long long)vcpu_icount(v), (unsigned long long)st.rip);
		}
		if (ex.reason == VCPU_EXIT_HLT) {
			struct x86_state st;
			vcpu_get_state(v, &st);
			pthread_mutex_lock(&vm->lock);
			if (!(st.rflags & X86_IF) && idx == 0 && vm->ncpus == 1) {
				snprintf(vm->why, sizeof(vm->why),
					 "the guest halted with interrupts disabled at RIP 0x%llx: it can make no more progress",
					 (unsigned long long)st.rip);
				vm->exit_status = 1;
				vm->action = VM_EXIT;
				clock_notify(vm);
			}
			take_events(vm, idx);
			while (vm->action == VM_RUNNING && !vcpu_can_take_intr(v) && vm->started[idx]) {
				if (machine_cpu_has_interrupt(vm->m, idx))
					vcpu_set_intr(v, true);
				if (vcpu_can_take_intr(v))
					break;
				pthread_cond_wait(&vm->cond, &vm->lock);
				take_events(vm, idx);
			}
			pthread_mutex_unlock(&vm->lock);
		} else if (ex.reason == VCPU_EXIT_SHUTDOWN || ex.reason == VCPU_EXIT_ERROR) {
			pthread_mutex_lock(&vm->lock);
			if (ex.reason == VCPU_EXIT_SHUTDOWN && !vm->opts->no_reboot) {
				vm->action = VM_RESET;
			} else {
				snprintf(vm->why, sizeof(vm->why), "vCPU %u: %s at RIP 0x%llx", idx,
					 ex.detail, (unsigned long long)ex.rip);
				vm->exit_status = 1;
				vm->action = VM_EXIT;
			}
			clock_notify(vm);
			pthread_cond_broadcast(&vm->cond);
			pthread_mutex_unlock(&vm->lock);
		}
		if (vm->action != VM_RUNNING)
			break;
	}
	for (unsigned k = 0; k < vm->ncpus; k++)
		if (vm->vcpu[k])
			vcpu_kick(vm->vcpu[k]);
	return NULL;
}

/* --- loading ------------------------------------------------------------- */

static int load_guest(struct vm *vm, struct boot_cpu_state *bs)
{
	struct run_opts *o = vm->opts;
	struct loader_error err = { "" };
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t klen = 0, ilen = 0;
	int r;

	r = loader_read_file(o->kernel, LOADER_MAX_KERNEL, &kernel, &klen);
	if (r < 0) {
		log_error("run: cannot read the kernel %s: %s", o->kernel,
			  r == -EFBIG ? "it is larger than 512 MiB" : strerror(-r));
		return r;
	}
	if (o->initrd) {
		r = loader_read_file(o->initrd, LOADER_MAX_INITRD, &initrd, &ilen);
		if (r < 0) {
			log_error("run: cannot read the initrd %s: %s", o->initrd,
				  r == -EFBIG ? "it is larger than 2 GiB" : strerror(-r));
			free(kernel);
			return r;
		}
	}
	if (linux_is_bzimage(kernel, klen)) {
		struct linux_boot lb = {
			.kernel = kernel, .kernel_len = klen, .initrd = initrd, .initrd_len = ilen,
			.cmdline = o->append, .e820 = machine_e820(vm->m), .rsdp_addr = machine_rsdp(vm->m),
		};
		struct linux_info info;
		r = linux_load(machine_mem(vm->m), &lb, bs, &info, &err);
		if (r == 0)
			machine_fw_cfg_kernel(vm->m, info.load_addr, klen, info.initrd_addr, ilen,
					      o->append ? o->append : "");
	} else if (multiboot_detect(kernel, klen)) {
		struct mb_module mod = { initrd, ilen, o->initrd };
		struct multiboot_boot mb = {
			.kernel = kernel, .kernel_len = klen, .kernel_name = o->kernel,
			.cmdline = o->append, .modules = initrd ? &mod : NULL, .nr_modules = initrd ? 1 : 0,
			.e820 = machine_e820(vm->m),
		};
		r = multiboot_load(machine_mem(vm->m), &mb, bs, &err);
	} else {
		log_error("run: %s is neither a Linux bzImage nor a multiboot ELF kernel", o->kernel);
		r = -ENOEXEC;
	}
	if (r < 0 && err.msg[0])
		log_error("run: %s: %s", o->kernel, err.msg);
	free(kernel);
	free(initrd);
	return r;
}

/* --- the I/O loop --------------------------------------------------------- */

static size_t vcon_sink_receive(void *opaque, const uint8_t *buf, size_t len)
{
	return virtio_console_receive(opaque, buf, len);
}

static size_t vcon_sink_space(void *opaque)
{
	/* the posted buffers' room is not known up front: offer a chunk and
	 * let the host end keep what the console does not take */
	return virtio_console_can_receive(opaque) ? 64 : 0;
}

/* Moves console input into the UART or the virtio console (lock held). */
static void serial_pump(struct vm *vm)
{
	if (!vm->serial_input || vm->action != VM_RUNNING)
		return;
	int r;
	if (vm->vcon) {
		const struct chardev_sink sink = { vcon_sink_receive, vcon_sink_space, vm->vcon };
		r = chardev_host_pump_sink(vm->serial, &sink);
	} else {
		r = chardev_host_pump(vm->serial, machine_uart(vm->m));
	}
	if (r == 1) {
		vm->exit_status = 0;
		vm->action = VM_EXIT;
		snprintf(vm->why, sizeof(vm->why), "terminated by Ctrl-A x");
	} else if (r < 0) {
		vm->serial_input = false; /* a read error: the guest runs on without input */
	}
}

static void serial_ready(void *opaque, int fd, unsigned revents)
{
	(void)fd;
	(void)revents;
	serial_pump(opaque);
}

/* Keeps the loop's watch on the console's current descriptor (a unix
 * socket's changes when a client connects or leaves). */
static void serial_watch(struct vm *vm)
{
	int fd = vm->serial_input ? chardev_host_poll_fd(vm->serial) : -1;
	if (fd == vm->serial_watched)
		return;
	if (vm->serial_watched >= 0)
		ev_loop_del_fd(vm->loop, vm->serial_watched);
	vm->serial_watched = -1;
	if (fd >= 0 && ev_loop_add_fd(vm->loop, fd, POLLIN, serial_ready, vm) == 0)
		vm->serial_watched = fd;
}

/*
 * Runs before each poll of the loop, machine lock held: due device timers,
 * guest requests, console input; then arms the loop's timer for the next
 * device deadline, and at least every 10 ms, since input the UART's FIFO
 * could not take yet waits in the host end.
 */
static void io_prepare(void *opaque)
{
	struct vm *vm = opaque;
	struct hw_clock *clock = machine_clock(vm->m);
	hw_clock_run_timers(clock);
	check_requests(vm);
	serial_pump(vm);
	serial_watch(vm);
	uint64_t now = hw_clock_ns(clock), next = hw_clock_next_deadline(clock);
	uint64_t wait_ns = next > now ? next - now : 0;
	ev_timer_mod(vm->tick, clock_ns() + MIN(wait_ns, 10000000ull));
}

static void io_tick(void *opaque)
{
	(void)opaque; /* the prepare hook does the work */
}

static void io_loop(struct vm *vm)
{
	while (vm->action == VM_RUNNING) {
		int r = ev_loop_run_once(vm->loop, UINT64_MAX);
		if (r < 0) {
			snprintf(vm->why, sizeof(vm->why), "the I/O loop failed: %s", strerror(-r));
			vm->exit_status = 1;
			vm->action = VM_EXIT;
		}
	}
}

/* --- devices --------------------------------------------------------------- */

static void pci_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm_pci *p = opaque;
	machine_msi(p->vm->m, addr, data);
}

static void pci_intx(void *opaque, bool level)
{
	struct vm_pci *p = opaque;
	machine_irq_line(p->vm->m, p->gsi, level);
}

/* Puts vd on the PCI bus (it is freed on failure).  what names it in
 * messages. */
static int add_virtio(struct vm *vm, struct virtio_dev *vd, const char *what)
{
	if (vm->nr_pci >= RUN_MAX_PCI) {
		virtio_dev_free(vd);
		log_error("run: %s: no free PCI slot (%d devices at most)", what, RUN_MAX_PCI);
		return -ENOSPC;
	}
	struct vm_pci *p = &vm->pci[vm->nr_pci];
	p->vm = vm;
	struct virtio_pci_irq irq = { pci_msi, pci_intx, p };
	p->vp = virtio_pci_new(vd, machine_mmio(vm->m), &irq);
	if (!p->vp) {
		int err = errno;
		virtio_dev_free(vd);
		log_error("run: %s: cannot make its PCI function: %s", what, strerror(err));
		return -err;
	}
	unsigned slot = 0;
	int r = machine_add_pci(vm->m, virtio_pci_device(p->vp), &slot);
	if (r < 0) {
		virtio_pci_free(p->vp);
		log_error("run: %s: cannot put it on the PCI bus: %s", what,
			  r == -ENOSPC ? "no free slot or no room left for its registers" : strerror(-r));
		return r;
	}
	p->gsi = pc_pci_slot_gsi(slot, 0);
	vm->nr_pci++;
	return 0;
}

/* Makes the devices the options ask for (lock not needed: no vCPU runs). */
static int add_devices(struct vm *vm)
{
	struct run_opts *o = vm->opts;
	struct virtio_env env = {
		.mem = machine_mem(vm->m), .loop = vm->loop,
		.dma_written = vm_dma_written, .dma_opaque = vm,
	};
	for (unsigned i = 0; i < o->nr_disks; i++) {
		char err[512] = "";
		struct virtio_dev *vd = virtio_blk_new(&env, &o->disk[i], err, sizeof(err));
		if (!vd) {
			log_error("run: --disk %s: %s", o->disk_spec[i], err[0] ? err : "cannot open it");
			return -EINVAL;
		}
		int r = add_virtio(vm, vd, o->disk[i].path);
		if (r < 0)
			return r;
	}
	if (o->virtio_console) {
		struct virtio_dev *vd = virtio_console_new(&env, chardev_host_dev(vm->serial), &vm->vcon);
		if (!vd) {
			log_error("run: --console virtio: cannot make the device: %s", strerror(errno));
			return -ENOMEM;
		}
		int r = add_virtio(vm, vd, "virtio-console");
		if (r < 0)
			return r;
	}
	if (o->rng) {
		struct virtio_dev *vd = virtio_rng_new(&env);
		if (!vd) {
			log_error("run: --rng: cannot make the device: %s", strerror(errno));
			return -ENOMEM;
		}
		int r = add_virtio(vm, vd, "virtio-rng");
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < o->nr_nics; i++) {
		char err[512] = "", what[300];
		if (!vm->nic_be[i])
			vm->nic_be[i] = net_backend_new(vm->loop, &o->nic[i], err, sizeof(err));
		struct virtio_dev *vd = NULL;
		if (vm->nic_be[i])
			vd = virtio_net_new(&env, vm->nic_be[i], o->nic[i].mac, err, sizeof(err));
		if (!vd) {
			log_error("run: --net %s: %s", o->nic_spec[i], err[0] ? err : "cannot make the NIC");
			return -EINVAL;
		}
		snprintf(what, sizeof(what), "--net %s", o->nic_spec[i]);
		int r = add_virtio(vm, vd, what);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Frees the devices (before the machine: they unmap from its buses). */
static void free_devices(struct vm *vm)
{
	for (unsigned i = vm->nr_pci; i-- > 0;)
		virtio_pci_free(vm->pci[i].vp);
	vm->nr_pci = 0;
	vm->vcon = NULL;
}

/* --- one boot ------------------------------------------------------------ */

static enum vm_action boot_once(struct vm *vm)
{
	struct run_opts *o = vm->opts;
	struct machine_config mc = {
		.ram_bytes = o->ram_bytes,
		.nr_cpus = o->cpus,
		/* with --console virtio COM1 has no host end (output dropped) */
		.serial = o->virtio_console ? (struct chardev){ NULL, NULL } : chardev_host_dev(vm->serial),
		.kick = vm_kick,
		.kick_opaque = vm,
	};
	struct boot_cpu_state bs;
	struct vcpu_arg args[PC_MAX_CPUS];

	vm->m = machine_new(&mc);
	if (!vm->m) {
		log_error("run: cannot build the machine with %llu MiB of RAM and %u CPUs: %s",
			  (unsigned long long)(o->ram_bytes >> 20), o->cpus, strerror(errno));
		vm->exit_status = 1;
		return VM_EXIT;
	}
	hw_clock_set_notify(machine_clock(vm->m), clock_notify, vm);
	memset(&bs, 0, sizeof(bs));
	if (load_guest(vm, &bs) < 0 || add_devices(vm) < 0) {
		free_devices(vm);
		machine_free(vm->m);
		vm->m = NULL;
		vm->exit_status = 1;
		return VM_EXIT;
	}
	vm->ncpus = o->cpus;
	vm->action = VM_RUNNING;
	{
		struct mem *mem = machine_mem(vm->m);
		uint64_t top = 0;
		for (unsigned i = 0; i < mem_region_count(mem); i++) {
			const struct mem_region *r = mem_region_get(mem, i);
			top = MAX(top, r->gpa + r->size);
		}
		vm->code_bitmap = accel_code_bitmap_new(top, &vm->code_bitmap_pages);
		if (!vm->code_bitmap) {
			log_error("run: out of memory");
			free_devices(vm);
			machine_free(vm->m);
			vm->exit_status = 1;
			return VM_EXIT;
		}
	}
	for (unsigned k = 0; k < vm->ncpus; k++) {
		struct vcpu_config vc = { .index = k, .apic = true, .ops = &vm_ops, .opaque = vm,
					  .code_bitmap = vm->code_bitmap,
					  .code_bitmap_pages = vm->code_bitmap_pages };
		vm->vcpu[k] = vcpu_new(o->accel, &vc);
		if (!vm->vcpu[k]) {
			log_error("run: cannot create vCPU %u: %s", k, strerror(errno));
			vm->exit_status = 1;
			return VM_EXIT;
		}
		vm->started[k] = k == 0;
		vm->wait_sipi[k] = k != 0;
		vm->sipi_vector[k] = -1;
		vm->tsc_offset[k] = 0;
	}
	struct x86_state st;
	vcpu_get_state(vm->vcpu[0], &st);
	boot_state_to_x86(&bs, &st);
	vcpu_set_state(vm->vcpu[0], &st);

	for (unsigned k = 0; k < vm->ncpus; k++) {
		args[k] = (struct vcpu_arg){ vm, k };
		pthread_create(&vm->thread[k], NULL, vcpu_thread, &args[k]);
	}
	io_loop(vm);
	pthread_mutex_lock(&vm->lock);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned k = 0; k < vm->ncpus; k++)
		vcpu_kick(vm->vcpu[k]);
	for (unsigned k = 0; k < vm->ncpus; k++) {
		pthread_join(vm->thread[k], NULL);
		vcpu_free(vm->vcpu[k]);
		vm->vcpu[k] = NULL;
	}
	enum vm_action a = vm->action;
	pthread_mutex_lock(&vm->lock);
	if (vm->serial_watched >= 0)
		ev_loop_del_fd(vm->loop, vm->serial_watched);
	vm->serial_watched = -1;
	free_devices(vm);
	pthread_mutex_unlock(&vm->lock);
	machine_free(vm->m);
	vm->m = NULL;
	free(vm->code_bitmap);
	vm->code_bitmap = NULL;
	return a;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: maquina run --kernel FILE [options]\n"
		"Starts a virtual PC that boots FILE (a Linux bzImage or a multiboot ELF kernel).\n"
		"  --kernel FILE      the kernel\n"
		"  --initrd FILE      initial ramdisk (Linux) or first module (multiboot)\n"
		"  --append CMDLINE   kernel command line\n"
		"  --memory SIZE      guest RAM, e.g. 512M or 2G (default 512M; a plain number is MiB)\n"
		"  --cpus N           virtual CPUs (default 1)\n"
		"  --serial BACKEND   COM1: stdio (default), null, file:PATH, unix:PATH (a socket\n"
		"                     maquina listens on; one client at a time)\n"
		"  --net SPEC         a virtio-net NIC (repeatable): user[,hostfwd=tcp:127.0.0.1:2222-:22]\n"
		"                     [,restrict=on][,net=10.0.2.0/24][,mac=MAC] (user-mode network:\n"
		"                     gateway 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15), or\n"
		"                     tap,ifname=NAME[,mac=MAC]; MACs default to 52:54:00:12:34:56 + n\n"
		"  --no-reboot        exit instead of rebooting on a guest reset or triple fault\n"
		"  --accel NAME       vCPU backend: emu (the software CPU; default)\n"
		"  --disk SPEC        a virtio-blk disk (repeatable, up to 16): path=FILE\n"
		"                     [,format=raw|qcow2][,readonly=on|off][,cache=none|writeback]\n"
		"                     [,serial=STR]; a bare FILE is path=FILE\n"
		"  --rng              a virtio-rng device fed from the host's getrandom()\n"
		"  --console KIND     where --serial's host end goes: serial (COM1, ttyS0; default)\n"
		"                     or virtio (a virtio-console, the guest's hvc0: add\n"
		"                     console=hvc0 to --append)\n"
		"On the terminal, Ctrl-A x quits.  The guest's power-off ends maquina with status 0;\n"
		"the debug-exit port 0xf4 with (value << 1) | 1.\n");
}

static void run_opts_free(struct run_opts *o)
{
	for (unsigned i = 0; i < o->nr_disks; i++)
		free(o->disk_buf[i]);
	o->nr_disks = 0;
}

static int run_vm(struct run_opts *o);

/* Parses the options into o; returns -1 to go on, or the exit status. */
static int parse_run_opts(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "serial", required_argument, NULL, 's' },
		{ "no-reboot", no_argument, NULL, 'n' },
		{ "accel", required_argument, NULL, 'A' },
		{ "disk", required_argument, NULL, 'D' },
		{ "rng", no_argument, NULL, 'R' },
		{ "console", required_argument, NULL, 'C' },
		{ "net", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': o->kernel = optarg; break;
		case 'i': o->initrd = optarg; break;
		case 'a': o->append = optarg; break;
		case 'm':
			if (parse_size(optarg, 1ull << 20, &o->ram_bytes) < 0 || o->ram_bytes < (16ull << 20) ||
			    o->ram_bytes > (1ull << 40)) {
				log_error("run: --memory '%s' is not a size between 16M and 1T (e.g. 512M, 2G)", optarg);
				return 2;
			}
			break;
		case 'c': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n < 1 || n > PC_MAX_CPUS) {
				log_error("run: --cpus '%s' is not a number from 1 to %d", optarg, PC_MAX_CPUS);
				return 2;
			}
			o->cpus = (unsigned)n;
			break;
		}
		case 's': o->serial = optarg; break;
		case 'n': o->no_reboot = true; break;
		case 'A': o->accel = optarg; break;
		case 'D': {
			if (o->nr_disks >= RUN_MAX_DISKS) {
				log_error("run: too many --disk options: %d at most", RUN_MAX_DISKS);
				return 2;
			}
			char perr[256] = "";
			unsigned i = o->nr_disks;
			if (virtio_blk_parse(optarg, &o->disk[i], &o->disk_buf[i], perr, sizeof(perr)) < 0) {
				log_error("run: %s", perr[0] ? perr : "--disk: not a disk specification");
				return 2;
			}
			o->disk_spec[i] = optarg;
			o->nr_disks++;
			break;
		}
		case 'R': o->rng = true; break;
		case 'C':
			if (!strcmp(optarg, "virtio")) {
				o->virtio_console = true;
			} else if (!strcmp(optarg, "serial")) {
				o->virtio_console = false;
			} else {
				log_error("run: --console '%s' is not known: use serial (COM1) or virtio (hvc0)", optarg);
				return 2;
			}
			break;
		case 'N': {
			char nerr[256];
			if (o->nr_nics == RUN_MAX_NICS) {
				log_error("run: --net %s: at most %d NICs", optarg, RUN_MAX_NICS);
				return 2;
			}
			if (net_parse(optarg, o->nr_nics, &o->nic[o->nr_nics], nerr, sizeof(nerr))) {
				log_error("run: %s", nerr);
				return 2;
			}
			o->nic_spec[o->nr_nics++] = optarg;
			break;
		}
		case 'h': usage(stdout); return 0;
		default:
			/* argv[optind - 1] is the word getopt refused, as typed
			 * ("-x", "--bogus", "--rng=3", "--disk" without a value) */
			log_error("run: option '%s' is not known, lacks its value or takes none; 'maquina run --help' lists the options",
				  argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		log_error("run: unexpected argument '%s'; 'maquina run --help' lists the options", argv[optind]);
		return 2;
	}
	if (!o->kernel) {
		log_error("run: no kernel: give one with --kernel FILE");
		return 2;
	}
	char why[160];
	if (!accel_available(o->accel, why, sizeof(why))) {
		log_error("run: %s", why);
		return 2;
	}
	return -1;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .ram_bytes = 512ull << 20, .cpus = 1, .accel = "emu" };
	int status = parse_run_opts(argc, argv, &o);
	if (status < 0)
		status = run_vm(&o);
	run_opts_free(&o);
	return status;
}

static int run_vm(struct run_opts *o)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return 1;
	vm->opts = o;
	vm->serial_watched = -1;
	vm->serial_input = true;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->loop = ev_loop_new();
	vm->tick = vm->loop ? ev_timer_new(vm->loop, io_tick, vm) : NULL;
	if (!vm->tick || ev_loop_add_prepare(vm->loop, io_prepare, vm) < 0) {
		log_error("run: cannot make the I/O loop: %s", strerror(errno));
		if (vm->tick)
			ev_timer_free(vm->tick);
		ev_loop_free(vm->loop);
		free(vm);
		return 1;
	}
	ev_loop_set_lock(vm->loop, &vm->lock);
	struct loader_error err = { "" };
	const char *spec = o->serial ? o->serial : "stdio";
	if (chardev_host_open(spec, &vm->serial, &err) < 0) {
		log_error("run: --serial %s: %s", spec, err.msg[0] ? err.msg : strerror(errno));
		ev_timer_free(vm->tick);
		ev_loop_free(vm->loop);
		free(vm);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	enum vm_action a;
	do {
		a = boot_once(vm);
	} while (a == VM_RESET);
	for (unsigned i = 0; i < o->nr_nics; i++)
		net_backend_free(vm->nic_be[i]);
	chardev_host_close(vm->serial); /* restores the terminal */
	if (vm->why[0])
		log_error("run: %s", vm->why);
	int status = vm->exit_status;
	ev_timer_free(vm->tick);
	ev_loop_free(vm->loop);
	free(vm);
	return status;
}
