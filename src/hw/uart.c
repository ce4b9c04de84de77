/*
 * 16550A UART: 16-byte receive FIFO, transmit handed straight to the
 * backend (so THR is empty again at once), interrupt identification with
 * the 16550's priorities, modem control and loopback.  The IRQ output is
 * gated by MCR.OUT2 as on PC serial cards.  A received character below the
 * FIFO trigger level reports the character-timeout interrupt at once.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hw/hw.h"

#define FIFO_SIZE 16

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08
#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_TIMEOUT 0x0c
#define IIR_FIFO 0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct uart {
	struct irq irq;
	struct chardev be;
	uint8_t rx[FIFO_SIZE];
	unsigned rx_head, rx_count;
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
	bool thr_ipending;
	bool irq_level;
};

static void uart_update(struct uart *u);

static unsigned rx_trigger(const struct uart *u)
{
	static const unsigned levels[4] = { 1, 4, 8, 14 };
	return (u->fcr & FCR_ENABLE) ? levels[u->fcr >> 6] : 1;
}

static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	if ((u->ier & IER_RLSI) && (u->lsr & (LSR_OE | LSR_BI)))
		return fifo | IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return fifo | (u->rx_count >= rx_trigger(u) ? IIR_RDI : IIR_TIMEOUT);
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return fifo | IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr & 0x0f))
		return fifo | IIR_MSI;
	return fifo | IIR_NONE;
}

static void uart_update(struct uart *u)
{
	bool level = !(uart_iir(u) & IIR_NONE) && (u->mcr & MCR_OUT2);
	if (level != u->irq_level) {
		u->irq_level = level;
		irq_set(&u->irq, level);
	}
}

static bool rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count == FIFO_SIZE || (!(u->fcr & FCR_ENABLE) && u->rx_count == 1)) {
		u->lsr |= LSR_OE;
		return false;
	}
	u->rx[(u->rx_head + u->rx_count) % FIFO_SIZE] = b;
	u->rx_count++;
	u->lsr |= LSR_DR;
	return true;
}

size_t uart_rx_space(const struct uart *u)
{
	if (u->mcr & MCR_LOOP)
		return 0;
	unsigned cap = (u->fcr & FCR_ENABLE) ? FIFO_SIZE : 1;
	return cap > u->rx_count ? cap - u->rx_count : 0;
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = MIN(len, uart_rx_space(u));
	for (size_t i = 0; i < n; i++)
		rx_push(u, buf[i]);
	if (n)
		uart_update(u);
	return n;
}

/* Modem status from the modem-control lines, with delta bits. */
static void uart_update_msr(struct uart *u)
{
	uint8_t lines;
	if (u->mcr & MCR_LOOP) {
		lines = (u->mcr & MCR_RTS ? MSR_CTS : 0) | (u->mcr & MCR_DTR ? MSR_DSR : 0) |
			(u->mcr & MCR_OUT1 ? MSR_RI : 0) | (u->mcr & MCR_OUT2 ? MSR_DCD : 0);
	} else {
		lines = MSR_DCD | MSR_DSR | MSR_CTS; /* a terminal is attached */
	}
	uint8_t old = u->msr, delta = old & 0x0f;
	if ((old ^ lines) & MSR_CTS)
		delta |= MSR_DCTS;
	if ((old ^ lines) & MSR_DSR)
		delta |= MSR_DDSR;
	if ((old ^ lines) & MSR_DCD)
		delta |= MSR_DDCD;
	if ((old & MSR_RI) && !(lines & MSR_RI))
		delta |= MSR_TERI;
	u->msr = lines | delta;
}

static void uart_transmit(struct uart *u, uint8_t b)
{
	if (u->mcr & MCR_LOOP)
		rx_push(u, b);
	else if (u->be.ops && u->be.ops->write)
		u->be.ops->write(u->be.opaque, &b, 1);
	u->thr_ipending = true;
	u->lsr |= LSR_THRE | LSR_TEMT;
}

static uint64_t uart_read(void *opaque, uint64_t off, unsigned size)
{
	(void)size;
	struct uart *u = opaque;
	uint8_t v = 0xff;
	switch (off) {
	case 0:
		if (u->lcr & LCR_DLAB)
			return u->dll;
		v = 0;
		if (u->rx_count) {
			bool was_full = uart_rx_space(u) == 0;
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % FIFO_SIZE;
			u->rx_count--;
			if (!u->rx_count)
				u->lsr &= ~LSR_DR;
			uart_update(u);
			if (was_full && u->be.ops && u->be.ops->rx_ready)
				u->be.ops->rx_ready(u->be.opaque);
		}
		return v;
	case 1:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case 2:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI) {
			u->thr_ipending = false;
			uart_update(u);
		}
		return v;
	case 3:
		return u->lcr;
	case 4:
		return u->mcr;
	case 5:
		v = u->lsr;
		if (v & (LSR_OE | LSR_BI)) {
			u->lsr &= ~(LSR_OE | LSR_BI);
			uart_update(u);
		}
		return v;
	case 6:
		v = u->msr;
		u->msr &= 0xf0;
		uart_update(u);
		return v;
	case 7:
		return u->scr;
	}
	return v;
}

static void uart_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	(void)size;
	struct uart *u = opaque;
	uint8_t v = (uint8_t)val;
	switch (off) {
	case 0:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			return;
		}
		u->thr_ipending = false;
		uart_transmit(u, v);
		break;
	case 1:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			return;
		}
		/* enabling THRI with THR empty raises it (16550 behaviour) */
		if (!(u->ier & IER_THRI) && (v & IER_THRI) && (u->lsr & LSR_THRE))
			u->thr_ipending = true;
		u->ier = v & 0x0f;
		break;
	case 2:
		if ((v ^ u->fcr) & FCR_ENABLE)
			v |= FCR_CLEAR_RX | FCR_CLEAR_TX;
		if (v & FCR_CLEAR_RX) {
			u->rx_count = 0;
			u->lsr &= ~LSR_DR;
		}
		u->fcr = v & 0xc1;
		break;
	case 3:
		u->lcr = v;
		return;
	case 4:
		u->mcr = v & 0x1f;
		uart_update_msr(u);
		break;
	case 5:
	case 6:
		return; /* read-only (factory test) */
	case 7:
		u->scr = v;
		return;
	}
	uart_update(u);
}

static const struct bus_dev_ops uart_ops = { uart_read, uart_write };

struct uart *uart_new(struct irq irq, struct chardev backend)
{
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->irq = irq;
	u->be = backend;
	u->lsr = LSR_THRE | LSR_TEMT;
	u->dll = 0x0c; /* 9600 baud */
	u->lcr = 0x03;
	uart_update_msr(u);
	u->msr &= 0xf0;
	return u;
}

void uart_free(struct uart *u)
{
	free(u);
}

int uart_map(struct uart *u, struct pio_bus *bus, uint16_t base)
{
	return pio_bus_register(bus, base, 8, &uart_ops, u, "uart");
}
