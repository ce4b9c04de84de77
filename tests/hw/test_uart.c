/* 16550A UART: registers, THRE/RDA interrupts, FIFO, loopback, backend. */
#include "hw_test.h"

#define COM1 0x3f8

struct sink {
	uint8_t buf[256];
	size_t len;
	unsigned rx_ready;
};

static size_t sink_write(void *opaque, const uint8_t *b, size_t n)
{
	struct sink *s = opaque;
	for (size_t i = 0; i < n && s->len < sizeof(s->buf); i++)
		s->buf[s->len++] = b[i];
	return n;
}

static void sink_rx_ready(void *opaque)
{
	((struct sink *)opaque)->rx_ready++;
}

static const struct chardev_ops sink_ops = { sink_write, sink_rx_ready };

int main(void)
{
	struct irq_rec rec = { 0 };
	struct sink sink = { 0 };
	struct pio_bus *bus = pio_bus_new();
	struct uart *u = uart_new(irq_rec_line(&rec, 4), (struct chardev){ &sink_ops, &sink });
	CHECK(uart_map(u, bus, COM1) == 0);

	/* reset state */
	CHECK(inb(bus, COM1 + 5) == 0x60); /* THRE | TEMT */
	CHECK(inb(bus, COM1 + 2) == 0x01); /* no interrupt */
	CHECK((inb(bus, COM1 + 6) & 0xb0) == 0xb0);

	/* divisor latch and scratch */
	outb(bus, COM1 + 3, 0x83);
	outb(bus, COM1 + 0, 0x01);
	outb(bus, COM1 + 1, 0x00);
	CHECK(inb(bus, COM1 + 0) == 0x01);
	outb(bus, COM1 + 3, 0x03);
	outb(bus, COM1 + 7, 0xa5);
	CHECK(inb(bus, COM1 + 7) == 0xa5);

	/* transmit goes to the backend */
	outb(bus, COM1, 'h');
	outb(bus, COM1, 'i');
	CHECK(sink.len == 2 && sink.buf[0] == 'h' && sink.buf[1] == 'i');

	/* THRE interrupt: gated by OUT2, raised when enabled with THR empty,
	 * cleared by reading IIR, raised again after a write */
	outb(bus, COM1 + 1, 0x02);
	CHECK(!rec.level[4]); /* OUT2 off */
	outb(bus, COM1 + 4, 0x0b); /* DTR RTS OUT2 */
	CHECK(rec.level[4]);
	CHECK(inb(bus, COM1 + 2) == 0x02);
	CHECK(!rec.level[4]);
	CHECK(inb(bus, COM1 + 2) == 0x01);
	outb(bus, COM1, 'x');
	CHECK(rec.level[4]);
	outb(bus, COM1 + 1, 0x00);
	CHECK(!rec.level[4]);

	/* receive with FIFO, trigger level 4: timeout below it, RDA at it */
	outb(bus, COM1 + 2, 0x47); /* enable, clear, trigger 4 */
	outb(bus, COM1 + 1, 0x01);
	CHECK(uart_rx_space(u) == 16);
	CHECK(uart_receive(u, (const uint8_t *)"ab", 2) == 2);
	CHECK(rec.level[4]);
	CHECK(inb(bus, COM1 + 2) == 0xcc); /* FIFO + timeout */
	CHECK(uart_receive(u, (const uint8_t *)"cd", 2) == 2);
	CHECK(inb(bus, COM1 + 2) == 0xc4); /* FIFO + RDA */
	CHECK(inb(bus, COM1 + 5) & 0x01);
	CHECK(inb(bus, COM1) == 'a' && inb(bus, COM1) == 'b' && inb(bus, COM1) == 'c' &&
	      inb(bus, COM1) == 'd');
	CHECK(!(inb(bus, COM1 + 5) & 0x01));
	CHECK(!rec.level[4]);
	/* a full FIFO takes no more; reading makes room and tells the backend */
	uint8_t many[20] = { 0 };
	CHECK(uart_receive(u, many, 20) == 16);
	CHECK(uart_rx_space(u) == 0);
	inb(bus, COM1);
	CHECK(sink.rx_ready == 1 && uart_rx_space(u) == 1);
	outb(bus, COM1 + 2, 0x03); /* clear the receive FIFO */
	CHECK(!(inb(bus, COM1 + 5) & 0x01));

	/* loopback: transmit comes back, MSR mirrors MCR */
	size_t sent = sink.len;
	outb(bus, COM1 + 4, 0x10 | 0x01 | 0x02);
	outb(bus, COM1, 'L');
	CHECK(sink.len == sent);
	CHECK(inb(bus, COM1) == 'L');
	CHECK((inb(bus, COM1 + 6) & 0xf0) == 0x30);
	outb(bus, COM1 + 4, 0x10 | 0x04 | 0x08);
	CHECK((inb(bus, COM1 + 6) & 0xf0) == 0xc0);
	CHECK(uart_rx_space(u) == 0); /* the outside world is disconnected */

	/* modem status interrupt from delta bits */
	outb(bus, COM1 + 1, 0x08);
	outb(bus, COM1 + 4, 0x10 | 0x08 | 0x02); /* CTS toggles */
	CHECK((inb(bus, COM1 + 2) & 0x0f) == 0x00);
	inb(bus, COM1 + 6);
	CHECK(inb(bus, COM1 + 2) & 0x01);

	/* without FIFO the holding register takes one byte; the backend is told no */
	outb(bus, COM1 + 4, 0x08);
	outb(bus, COM1 + 2, 0x00);
	outb(bus, COM1 + 1, 0x04);
	CHECK(uart_receive(u, (const uint8_t *)"1", 1) == 1);
	CHECK(uart_receive(u, (const uint8_t *)"2", 1) == 0);
	CHECK((inb(bus, COM1 + 5) & 0x02) == 0);

	uart_free(u);
	pio_bus_free(bus);
	TEST_MAIN_END();
}
