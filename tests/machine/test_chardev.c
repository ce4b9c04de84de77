/* Host serial backends: pipes with Ctrl-A escapes, file, unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "machine/machine.h"
#include "test.h"

static uint8_t rbr(struct pio_bus *bus)
{
	uint32_t v = 0;
	CHECK(pio_bus_read(bus, 0x3f8, 1, &v) == 0);
	return (uint8_t)v;
}

static void test_pipes(void)
{
	int in[2], out[2];
	CHECK(pipe(in) == 0 && pipe(out) == 0);
	struct chardev_host *h = chardev_host_from_fds(in[0], out[1], true);
	struct pio_bus *bus = pio_bus_new();
	struct uart *u = uart_new((struct irq){ 0 }, chardev_host_dev(h));
	CHECK(uart_map(u, bus, 0x3f8) == 0);
	CHECK(pio_bus_write(bus, 0x3fa, 1, 0x07) == 0); /* FIFO on */
	/* output */
	CHECK(pio_bus_write(bus, 0x3f8, 1, 'Z') == 0);
	char c = 0;
	CHECK(read(out[0], &c, 1) == 1 && c == 'Z');
	/* input, with Ctrl-A a -> Ctrl-A, unknown escapes swallowed */
	CHECK(write(in[1], "hi\x01" "a\x01" "qok", 8) == 8);
	CHECK(chardev_host_pump(h, u) == 0);
	CHECK(rbr(bus) == 'h' && rbr(bus) == 'i' && rbr(bus) == 0x01 && rbr(bus) == 'o' &&
	      rbr(bus) == 'k');
	/* more than the FIFO holds: nothing lost */
	char many[40];
	for (int i = 0; i < 40; i++)
		many[i] = (char)('A' + i % 26);
	CHECK(write(in[1], many, 40) == 40);
	int got = 0;
	for (int round = 0; round < 10 && got < 40; round++) {
		CHECK(chardev_host_pump(h, u) == 0);
		uint32_t lsr;
		while (pio_bus_read(bus, 0x3fd, 1, &lsr) == 0 && (lsr & 1)) {
			CHECK(rbr(bus) == (uint8_t)many[got]);
			got++;
		}
	}
	CHECK(got == 40);
	/* Ctrl-A x quits */
	CHECK(write(in[1], "\x01x", 2) == 2);
	CHECK(chardev_host_pump(h, u) == 1);
	uart_free(u);
	pio_bus_free(bus);
	chardev_host_close(h);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
}

static void test_file_and_errors(void)
{
	char path[] = "/tmp/maquina-serial-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	char spec[64];
	snprintf(spec, sizeof(spec), "file:%s", path);
	struct chardev_host *h = NULL;
	struct loader_error err = { "" };
	CHECK(chardev_host_open(spec, &h, &err) == 0);
	struct chardev d = chardev_host_dev(h);
	CHECK(d.ops->write(d.opaque, (const uint8_t *)"log", 3) == 3);
	CHECK(chardev_host_poll_fd(h) == -1);
	chardev_host_close(h);
	char buf[8] = { 0 };
	fd = open(path, O_RDONLY);
	CHECK(read(fd, buf, 8) == 3 && memcmp(buf, "log", 3) == 0);
	close(fd);
	unlink(path);
	CHECK(chardev_host_open("tcp:1234", &h, &err) == -EINVAL && strstr(err.msg, "unix:PATH"));
	CHECK(chardev_host_open("file:/nonexistent/dir/x", &h, &err) == -ENOENT);
	CHECK(chardev_host_open("null", &h, &err) == 0);
	d = chardev_host_dev(h);
	CHECK(d.ops->write(d.opaque, (const uint8_t *)"x", 1) == 1);
	chardev_host_close(h);
}

static void test_unix(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/maquina-serial-%d.sock", (int)getpid());
	char spec[80];
	snprintf(spec, sizeof(spec), "unix:%s", path);
	struct chardev_host *h = NULL;
	struct loader_error err = { "" };
	CHECK(chardev_host_open(spec, &h, &err) == 0);
	if (!h)
		return;
	struct pio_bus *bus = pio_bus_new();
	struct uart *u = uart_new((struct irq){ 0 }, chardev_host_dev(h));
	CHECK(uart_map(u, bus, 0x3f8) == 0);
	/* output with no client is dropped, not an error */
	CHECK(pio_bus_write(bus, 0x3f8, 1, 'x') == 0);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	CHECK(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(write(c, "q", 1) == 1);
	CHECK(chardev_host_pump(h, u) == 0); /* accepts, reads */
	CHECK(rbr(bus) == 'q');
	CHECK(pio_bus_write(bus, 0x3f8, 1, 'y') == 0);
	char r = 0;
	CHECK(read(c, &r, 1) == 1 && r == 'y');
	close(c);
	/* writing to a client that left must not kill us with SIGPIPE */
	CHECK(pio_bus_write(bus, 0x3f8, 1, 'z') == 0);
	CHECK(pio_bus_write(bus, 0x3f8, 1, 'z') == 0);
	CHECK(chardev_host_pump(h, u) == 0); /* client gone: back to listening */
	CHECK(chardev_host_poll_fd(h) >= 0);
	uart_free(u);
	pio_bus_free(bus);
	chardev_host_close(h);
	CHECK(access(path, F_OK) != 0); /* socket file removed */
}

int main(void)
{
	test_pipes();
	test_file_and_errors();
	test_unix();
	TEST_MAIN_END();
}
