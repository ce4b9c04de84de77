/*
 * bench: qemu-img's I/O benchmark on maquina's asynchronous queues.
 */
#include "block/img/img_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct bench_state {
	struct blk_queue *q;
	uint64_t image_size, offset, step;
	uint32_t bufsize;
	unsigned count, submitted, completed, in_flight_io, flush_interval;
	bool write, drain_on_flush, flushing;
	uint8_t *buf;            /* depth slots of bufsize */
	struct iovec *iov;
	unsigned *free_slots, nb_free;
	int error;
};

struct bench_req {
	struct bench_state *b;
	unsigned slot;
	bool flush;
};

static void bench_done(void *opaque, int ret)
{
	struct bench_req *r = opaque;
	struct bench_state *b = r->b;

	if (ret < 0 && !b->error)
		b->error = ret;
	if (r->flush) {
		b->flushing = false;
	} else {
		b->completed++;
		b->in_flight_io--;
		b->free_slots[b->nb_free++] = r->slot;
	}
	free(r);
}

static int bench_submit_io(struct bench_state *b)
{
	struct bench_req *r = malloc(sizeof(*r));
	struct blk_request rq = { 0 };
	int ret;

	if (!r)
		return -ENOMEM;
	r->b = b;
	r->flush = false;
	r->slot = b->free_slots[--b->nb_free];
	rq.op = b->write ? BLK_OP_WRITE : BLK_OP_READ;
	rq.off = b->offset;
	rq.len = b->bufsize;
	rq.iov = &b->iov[r->slot];
	rq.iovcnt = 1;
	rq.done = bench_done;
	rq.opaque = r;
	ret = blk_queue_submit(b->q, &rq);
	if (ret < 0) {
		b->free_slots[b->nb_free++] = r->slot;
		free(r);
		return ret;
	}
	b->submitted++;
	b->in_flight_io++;
	/* next offset, wrapped as qemu-img 7.2 does */
	b->offset += b->step;
	b->offset %= b->image_size;
	if (b->offset + b->bufsize > b->image_size)
		b->offset = 0;
	return 0;
}

static int bench_submit_flush(struct bench_state *b)
{
	struct bench_req *r = malloc(sizeof(*r));
	struct blk_request rq = { 0 };
	int ret;

	if (!r)
		return -ENOMEM;
	r->b = b;
	r->flush = true;
	rq.op = BLK_OP_FLUSH;
	rq.done = bench_done;
	rq.opaque = r;
	ret = blk_queue_submit(b->q, &rq);
	if (ret < 0) {
		free(r);
		return ret;
	}
	b->flushing = true;
	return 0;
}

static bool bench_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

int img_cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "flush-interval", required_argument, NULL, 'F' + 256 },
		{ "image-opts", no_argument, NULL, 'I' + 256 },
		{ "pattern", required_argument, NULL, 'p' + 256 },
		{ "no-drain", no_argument, NULL, 'd' + 256 },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_state b;
	const char *fmt = NULL, *filename;
	uint64_t count = 75000, depth = 64, bufsize = 4096, step = 0, offset = 0,
		 pattern = 0, flush_interval = 0, v;
	bool quiet = false, write = false, drain = true, uring = true;
	unsigned flags = 0;
	struct blk *blk;
	uint64_t t0, t1;
	int opt, ret = 1;

	memset(&b, 0, sizeof(b));
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, IMG_GETOPT_PREFIX "hc:d:f:ni:o:qs:S:t:wU", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (!bench_parse_uint(optarg, INT32_MAX, &count) || !count) {
				log_error("Invalid request count specified");
				return 1;
			}
			break;
		case 'd':
			if (!bench_parse_uint(optarg, 1024, &depth) || !depth) {
				log_error("Invalid queue depth specified");
				return 1;
			}
			break;
		case 'f': fmt = optarg; break;
		case 'n': uring = false; break; /* native AIO: our kernel path is io_uring */
		case 'i':
			if (!strcmp(optarg, "threads"))
				uring = false;
			else if (!strcmp(optarg, "native") || !strcmp(optarg, "io_uring"))
				uring = true;
			else {
				log_error("Invalid aio option: %s", optarg);
				return 1;
			}
			break;
		case 'o':
			if (img_parse_size(optarg, &offset)) {
				log_error("Invalid offset specified");
				return 1;
			}
			break;
		case 'q': quiet = true; break;
		case 's':
			if (img_parse_size(optarg, &bufsize) || !bufsize || bufsize > INT32_MAX) {
				log_error("Invalid buffer size specified");
				return 1;
			}
			break;
		case 'S':
			if (img_parse_size(optarg, &step) || step > INT32_MAX) {
				log_error("Invalid step size specified");
				return 1;
			}
			break;
		case 't':
			if (!strcmp(optarg, "none") || !strcmp(optarg, "directsync"))
				flags |= BLK_OPEN_DIRECT;
			else if (!strcmp(optarg, "unsafe"))
				flags |= BLK_OPEN_UNSAFE;
			else if (strcmp(optarg, "writeback") && strcmp(optarg, "writethrough")) {
				log_error("Invalid cache mode");
				return 1;
			}
			break;
		case 'w': write = true; break;
		case 'U': break;
		case 'p' + 256:
			if (!bench_parse_uint(optarg, 0xff, &pattern)) {
				log_error("Invalid pattern byte specified");
				return 1;
			}
			break;
		case 'F' + 256:
			if (!bench_parse_uint(optarg, INT32_MAX, &v)) {
				log_error("Invalid flush interval specified");
				return 1;
			}
			flush_interval = v;
			break;
		case 'd' + 256: drain = false; break;
		case 'h': printf("usage: maquina img bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename\n"); return 0;
		case 'I' + 256: log_error("this option is not supported by maquina img"); return 1;
		default: return img_bad_option(argv, opt);
		}
	}
	(void)quiet;
	if (optind != argc - 1)
		return img_usage("Expecting one image file name");
	if (flush_interval && !write) {
		log_error("--flush-interval is only available in write tests");
		return 1;
	}
	if (!drain && !flush_interval) {
		log_error("--no-drain is only available with --flush-interval");
		return 1;
	}
	filename = argv[optind];
	if (!uring)
		flags |= BLK_OPEN_NO_URING;
	blk = img_open(filename, fmt, flags | (write ? BLK_OPEN_RDWR : 0), false);
	if (!blk)
		return 1;
	b.image_size = blk_size(blk);
	if (b.image_size < bufsize) {
		log_error("The image is smaller than the buffer size");
		goto out;
	}
	b.bufsize = (uint32_t)bufsize;
	b.step = step ? step : bufsize;
	b.offset = offset;
	b.count = (unsigned)count;
	b.write = write;
	b.flush_interval = (unsigned)flush_interval;
	b.drain_on_flush = drain;
	b.buf = img_alloc_aligned(depth * bufsize);
	b.iov = calloc(depth, sizeof(*b.iov));
	b.free_slots = calloc(depth, sizeof(*b.free_slots));
	if (!b.buf || !b.iov || !b.free_slots) {
		log_error("out of memory");
		goto out;
	}
	memset(b.buf, write ? (int)pattern : 0, depth * bufsize);
	for (unsigned i = 0; i < depth; i++) {
		b.iov[i].iov_base = b.buf + (uint64_t)i * bufsize;
		b.iov[i].iov_len = bufsize;
		b.free_slots[b.nb_free++] = (unsigned)depth - 1 - i;
	}
	b.q = blk_queue_new(blk, (unsigned)depth + 1, 0, 0);
	if (!b.q) {
		log_error("%s: could not set up the I/O queue: %s", filename, strerror(errno));
		goto out;
	}
	printf("Sending %u %s requests, %u bytes each, %u in parallel (starting at offset %" PRIu64 ", step size %" PRIu64 ")\n",
	       b.count, write ? "write" : "read", b.bufsize, (unsigned)depth, offset, b.step);
	if (flush_interval)
		printf("Sending flush every %u requests\n", b.flush_interval);
	fflush(stdout);
	b.offset %= b.image_size;
	if (b.offset + b.bufsize > b.image_size)
		b.offset = 0;

	t0 = clock_ns();
	while (b.completed < b.count && !b.error) {
		int r;
		/* fill the queue */
		while (b.nb_free && b.submitted < b.count && !b.flushing && !b.error) {
			r = bench_submit_io(&b);
			if (r == -EAGAIN)
				break;
			if (r < 0) {
				b.error = r;
				break;
			}
			if (b.flush_interval && b.submitted % b.flush_interval == 0) {
				if (b.drain_on_flush) {
					while (b.in_flight_io && !b.error)
						if (blk_queue_poll(b.q, true) < 0)
							b.error = -EIO;
				}
				r = bench_submit_flush(&b);
				if (r < 0)
					b.error = r;
				break;
			}
		}
		if (b.error)
			break;
		r = blk_queue_poll(b.q, true);
		if (r < 0) {
			b.error = r;
			break;
		}
	}
	while (blk_queue_inflight(b.q))
		blk_queue_poll(b.q, true);
	t1 = clock_ns();
	if (b.error) {
		log_error("Failed request: %s", strerror(-b.error));
		goto out;
	}
	printf("Run completed in %3.3f seconds.\n", (double)(t1 - t0) / 1e9);
	ret = 0;
out:
	if (b.q)
		blk_queue_free(b.q);
	free(b.buf);
	free(b.iov);
	free(b.free_slots);
	if (blk_close(blk) < 0 && !ret)
		ret = 1;
	return ret;
}
