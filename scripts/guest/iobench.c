/*
 * iobench: the guest side of bench/io, built static by scripts/guest-assets
 * and run by the virtio initramfs's io-bench scenario.  Times itself with
 * the guest's CLOCK_MONOTONIC and prints one line per measurement:
 *
 *   iobench disk DEVICE SIZE_MIB
 *     MAQUINA-BENCH seq-write-1M <MB/s> MB/s     (O_DIRECT, then fdatasync)
 *     MAQUINA-BENCH seq-read-1M <MB/s> MB/s      (O_DIRECT)
 *     MAQUINA-BENCH rand-read-4k <IOPS> IOPS     (O_DIRECT, ~BENCH_SECONDS)
 *     MAQUINA-BENCH rand-write-4k <IOPS> IOPS    (O_DIRECT, ~BENCH_SECONDS)
 *   iobench tcp ADDR PORT SIZE_MIB
 *     MAQUINA-BENCH tcp-send <MB/s> MB/s         (until the peer closes)
 *   iobench tcp-recv ADDR PORT
 *     MAQUINA-BENCH tcp-recv <MB/s> MB/s         (what the peer sends, to EOF)
 *
 * MB here is 10^6 bytes.  The disk is overwritten.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SECONDS 3.0
#define SEQ_BLOCK (1u << 20)
#define RAND_BLOCK 4096u

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

static int full_pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

static int bench_disk(const char *dev, long size_mib)
{
	int fd = open(dev, O_RDWR | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "iobench: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	unsigned char *buf;
	if (posix_memalign((void **)&buf, 4096, SEQ_BLOCK) != 0)
		return 1;
	for (size_t i = 0; i < SEQ_BLOCK; i++)
		buf[i] = (unsigned char)rng_next();
	uint64_t total = (uint64_t)size_mib << 20;

	double t0 = now_s();
	for (uint64_t off = 0; off < total; off += SEQ_BLOCK) {
		if (full_pwrite(fd, buf, SEQ_BLOCK, (off_t)off) < 0) {
			fprintf(stderr, "iobench: write at %llu: %s\n", (unsigned long long)off, strerror(errno));
			return 1;
		}
	}
	fdatasync(fd);
	double t = now_s() - t0;
	printf("MAQUINA-BENCH seq-write-1M %.1f MB/s\n", (double)total / t / 1e6);
	fflush(stdout);

	t0 = now_s();
	for (uint64_t off = 0; off < total; off += SEQ_BLOCK) {
		if (full_pread(fd, buf, SEQ_BLOCK, (off_t)off) < 0) {
			fprintf(stderr, "iobench: read at %llu: %s\n", (unsigned long long)off, strerror(errno));
			return 1;
		}
	}
	t = now_s() - t0;
	printf("MAQUINA-BENCH seq-read-1M %.1f MB/s\n", (double)total / t / 1e6);
	fflush(stdout);

	uint64_t blocks = total / RAND_BLOCK, ops = 0;
	t0 = now_s();
	do {
		for (int k = 0; k < 64; k++, ops++) {
			off_t off = (off_t)(rng_next() % blocks) * RAND_BLOCK;
			if (full_pread(fd, buf, RAND_BLOCK, off) < 0) {
				fprintf(stderr, "iobench: read at %lld: %s\n", (long long)off, strerror(errno));
				return 1;
			}
		}
		t = now_s() - t0;
	} while (t < BENCH_SECONDS);
	printf("MAQUINA-BENCH rand-read-4k %.0f IOPS\n", (double)ops / t);
	fflush(stdout);

	ops = 0;
	t0 = now_s();
	do {
		for (int k = 0; k < 64; k++, ops++) {
			off_t off = (off_t)(rng_next() % blocks) * RAND_BLOCK;
			if (full_pwrite(fd, buf, RAND_BLOCK, off) < 0) {
				fprintf(stderr, "iobench: write at %lld: %s\n", (long long)off, strerror(errno));
				return 1;
			}
		}
		t = now_s() - t0;
	} while (t < BENCH_SECONDS);
	fdatasync(fd);
	t = now_s() - t0;
	printf("MAQUINA-BENCH rand-write-4k %.0f IOPS\n", (double)ops / t);
	fflush(stdout);
	free(buf);
	close(fd);
	return 0;
}

static int bench_tcp(const char *addr, int port, long size_mib)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "iobench: bad address %s\n", addr);
		return 1;
	}
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "iobench: connect %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	static unsigned char buf[1 << 16];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rng_next();
	uint64_t total = (uint64_t)size_mib << 20, sent = 0;
	double t0 = now_s();
	while (sent < total) {
		size_t len = sizeof(buf);
		if (total - sent < len)
			len = (size_t)(total - sent);
		ssize_t n = write(s, buf, len);
		if (n <= 0) {
			fprintf(stderr, "iobench: send: %s\n", strerror(errno));
			return 1;
		}
		sent += (uint64_t)n;
	}
	shutdown(s, SHUT_WR);
	/* the peer closes once it has everything: the time covers delivery */
	while (read(s, buf, sizeof(buf)) > 0)
		;
	double t = now_s() - t0;
	printf("MAQUINA-BENCH tcp-send %.1f MB/s\n", (double)total / t / 1e6);
	fflush(stdout);
	close(s);
	return 0;
}

static int bench_tcp_recv(const char *addr, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "iobench: bad address %s\n", addr);
		return 1;
	}
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "iobench: connect %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	static unsigned char buf[1 << 16];
	uint64_t total = 0;
	double t0 = now_s();
	for (;;) {
		ssize_t n = read(s, buf, sizeof(buf));
		if (n < 0) {
			fprintf(stderr, "iobench: recv: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
	}
	double t = now_s() - t0;
	printf("MAQUINA-BENCH tcp-recv %.1f MB/s %llu bytes\n", (double)total / t / 1e6,
	       (unsigned long long)total);
	fflush(stdout);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "disk") == 0)
		return bench_disk(argv[2], atol(argv[3]));
	if (argc == 5 && strcmp(argv[1], "tcp") == 0)
		return bench_tcp(argv[2], atoi(argv[3]), atol(argv[4]));
	if (argc == 4 && strcmp(argv[1], "tcp-recv") == 0)
		return bench_tcp_recv(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: iobench disk DEVICE SIZE_MIB | iobench tcp ADDR PORT SIZE_MIB | iobench tcp-recv ADDR PORT\n");
	return 2;
}
