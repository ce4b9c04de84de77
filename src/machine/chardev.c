/*
 * Host ends of the serial port: the terminal (raw mode, QEMU's Ctrl-A
 * escapes), a file, a unix socket, or nothing.  Output is written
 * directly; input is pulled by chardev_host_pump() when the run loop sees
 * the poll descriptor readable, and only as much as the UART takes, so
 * nothing is lost while the guest is slow to read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "core/core.h"
#include "machine/boot.h"

enum ch_kind { CH_NULL, CH_FDS, CH_STDIO, CH_FILE, CH_UNIX };

struct chardev_host {
	enum ch_kind kind;
	int in_fd, out_fd;    /* current input/output (-1: none) */
	int listen_fd;	      /* unix: listening socket */
	bool own_fds;
	bool escape, esc_pending;
	bool raw;
	struct termios saved;
	char *unix_path;
	uint8_t pend[64];     /* bytes read but not yet taken by the UART */
	size_t pend_len;
};

static size_t ch_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct chardev_host *h = opaque;
	if (h->out_fd < 0)
		return len; /* nobody listening: dropped */
	size_t done = 0;
	while (done < len) {
		ssize_t n = h->kind == CH_UNIX
				    ? send(h->out_fd, buf + done, len - done, MSG_NOSIGNAL)
				    : write(h->out_fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (h->kind == CH_UNIX && n < 0 && errno != EAGAIN) {
				close(h->out_fd); /* the client went away */
				h->out_fd = h->in_fd = -1;
			}
			break;
		}
		done += (size_t)n;
	}
	return len;
}

static const struct chardev_ops ch_ops = { ch_write, NULL };

struct chardev chardev_host_dev(struct chardev_host *h)
{
	return (struct chardev){ &ch_ops, h };
}

static struct chardev_host *ch_alloc(enum ch_kind kind)
{
	struct chardev_host *h = calloc(1, sizeof(*h));
	if (h) {
		h->kind = kind;
		h->in_fd = h->out_fd = h->listen_fd = -1;
	}
	return h;
}

struct chardev_host *chardev_host_from_fds(int in_fd, int out_fd, bool escape)
{
	struct chardev_host *h = ch_alloc(CH_FDS);
	if (h) {
		h->in_fd = in_fd;
		h->out_fd = out_fd;
		h->escape = escape;
	}
	return h;
}

int chardev_host_open(const char *spec, struct chardev_host **out, struct loader_error *err)
{
	struct chardev_host *h = NULL;
	if (!strcmp(spec, "null")) {
		h = ch_alloc(CH_NULL);
	} else if (!strcmp(spec, "stdio")) {
		h = ch_alloc(CH_STDIO);
		if (h) {
			h->in_fd = 0;
			h->out_fd = 1;
			h->escape = true;
			if (isatty(0) && tcgetattr(0, &h->saved) == 0) {
				struct termios raw = h->saved;
				cfmakeraw(&raw); /* the guest sends CR LF itself */
				if (tcsetattr(0, TCSANOW, &raw) == 0)
					h->raw = true;
			}
		}
	} else if (!strncmp(spec, "file:", 5) && spec[5]) {
		int fd = open(spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return loader_fail(err, -errno, "cannot open serial output file '%s': %s",
					   spec + 5, strerror(errno));
		h = ch_alloc(CH_FILE);
		if (!h) {
			close(fd);
		} else {
			h->out_fd = fd;
			h->own_fds = true;
		}
	} else if (!strncmp(spec, "unix:", 5) && spec[5]) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (strlen(spec + 5) >= sizeof(sa.sun_path))
			return loader_fail(err, -ENAMETOOLONG, "unix socket path '%s' is too long",
					   spec + 5);
		strcpy(sa.sun_path, spec + 5);
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return loader_fail(err, -errno, "socket: %s", strerror(errno));
		unlink(sa.sun_path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
			int e = errno;
			close(fd);
			return loader_fail(err, -e, "cannot listen on unix socket '%s': %s", spec + 5,
					   strerror(e));
		}
		h = ch_alloc(CH_UNIX);
		if (!h) {
			close(fd);
		} else {
			h->listen_fd = fd;
			h->unix_path = strdup(spec + 5);
		}
	} else {
		return loader_fail(err, -EINVAL,
				   "unknown serial backend '%s'; use stdio, file:PATH, unix:PATH or null",
				   spec);
	}
	if (!h)
		return loader_fail(err, -ENOMEM, "out of memory");
	*out = h;
	return 0;
}

void chardev_host_close(struct chardev_host *h)
{
	if (!h)
		return;
	if (h->raw)
		tcsetattr(0, TCSANOW, &h->saved);
	if (h->kind == CH_FILE && h->out_fd >= 0)
		close(h->out_fd);
	if (h->kind == CH_UNIX) {
		if (h->in_fd >= 0)
			close(h->in_fd);
		if (h->listen_fd >= 0)
			close(h->listen_fd);
		if (h->unix_path)
			unlink(h->unix_path);
		free(h->unix_path);
	}
	free(h);
}

int chardev_host_poll_fd(const struct chardev_host *h)
{
	if (h->kind == CH_UNIX && h->in_fd < 0)
		return h->listen_fd;
	return h->in_fd;
}

/* Takes one typed byte through the escape logic; returns 1 on quit. */
static int ch_filter(struct chardev_host *h, uint8_t b, uint8_t *outb, bool *keep)
{
	*keep = true;
	*outb = b;
	if (!h->escape)
		return 0;
	if (h->esc_pending) {
		h->esc_pending = false;
		if (b == 'x' || b == 'X')
			return 1;
		if (b == 0x01)
			return 0; /* Ctrl-A Ctrl-A / Ctrl-A a: a literal Ctrl-A */
		if (b == 'a') {
			*outb = 0x01;
			return 0;
		}
		*keep = false; /* unknown escape: swallowed */
		return 0;
	}
	if (b == 0x01) {
		h->esc_pending = true;
		*keep = false;
	}
	return 0;
}

int chardev_host_pump_sink(struct chardev_host *h, const struct chardev_sink *sink)
{
	if (h->kind == CH_UNIX && h->in_fd < 0 && h->listen_fd >= 0) {
		int c = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c >= 0)
			h->in_fd = h->out_fd = c;
	}
	for (;;) {
		/* hand over what is pending first */
		size_t n = h->pend_len ? sink->receive(sink->opaque, h->pend, h->pend_len) : 0;
		if (n) {
			memmove(h->pend, h->pend + n, h->pend_len - n);
			h->pend_len -= n;
		}
		if (h->pend_len || h->in_fd < 0 || sink->space(sink->opaque) == 0)
			return 0;
		struct pollfd p = { .fd = h->in_fd, .events = POLLIN };
		if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
			return 0;
		uint8_t raw[sizeof(h->pend)];
		ssize_t got = read(h->in_fd, raw, MIN(sizeof(raw), sink->space(sink->opaque)));
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (got <= 0) {
			if (h->kind == CH_UNIX) { /* client gone: wait for another */
				close(h->in_fd);
				h->in_fd = h->out_fd = -1;
				return 0;
			}
			int e = got < 0 ? -errno : 0;
			h->in_fd = -1; /* end of input */
			return e;
		}
		for (ssize_t i = 0; i < got; i++) {
			uint8_t b;
			bool keep;
			if (ch_filter(h, raw[i], &b, &keep))
				return 1;
			if (keep)
				h->pend[h->pend_len++] = b;
		}
	}
}

static size_t uart_sink_receive(void *opaque, const uint8_t *buf, size_t len)
{
	return uart_receive(opaque, buf, len);
}

static size_t uart_sink_space(void *opaque)
{
	return uart_rx_space(opaque);
}

int chardev_host_pump(struct chardev_host *h, struct uart *uart)
{
	const struct chardev_sink sink = { uart_sink_receive, uart_sink_space, uart };
	return chardev_host_pump_sink(h, &sink);
}
