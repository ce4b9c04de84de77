/*
 * virtio-blk (virtio 1.2, 5.2) on the block layer.
 *
 * One request queue.  A request is a header (type, reserved, sector: 16
 * bytes, anywhere in the readable part of the chain, possibly split over
 * segments), data, and a status byte, the last byte of the writable part.
 * Reads and writes go to a struct blk_queue with iovecs that point
 * straight into guest RAM (slices of the popped element's segments);
 * completions come back through the queue's fd in the VMM's event loop
 * (under the machine lock) and are pushed to the used ring, one
 * interrupt per batch.  When the block queue is full the request waits in
 * a FIFO and popping stops until completions free room.
 *
 * Everything the guest hands over is checked: header and status byte
 * present (or the device goes NEEDS_RESET), data a multiple of 512 bytes,
 * sector ranges inside the disk (computed without overflow), discard and
 * write-zeroes segments (count, flags, size).  Bad values get
 * VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP, never host work outside the
 * disk.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "virtio/virtio.h"

/* Feature bits (5.2.3) */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6) */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_WZ_F_UNMAP 1u

#define VBLK_SECTOR 512u
#define VBLK_ID_BYTES 20
#define VBLK_QUEUE_SIZE 256
#define VBLK_BLKQ_DEPTH 64	      /* block-layer requests in flight */
#define VBLK_MAX_DATA_BYTES (1u << 30) /* one read/write request, at most */
#define VBLK_MAX_DISCARD_SECTORS (1u << 21) /* 1 GiB per segment */
#define VBLK_MAX_DWZ_SEG 1

/* The configuration structure (5.2.4), little-endian, packed. */
struct vblk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct vblk_config) == 60, "virtio_blk_config layout");
_Static_assert(offsetof(struct vblk_config, writeback) == 32, "writeback offset");
_Static_assert(offsetof(struct vblk_config, max_discard_sectors) == 36, "discard offset");

struct vblk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct vblk_dwz_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

struct vblk;

/* One request handed to the block layer. */
struct vblk_req {
	struct vblk *vb;
	struct virtq_elem *elem;
	struct blk_request rq;
	struct iovec *iov; /* the data: slices of elem->iov */
	struct vblk_req *next; /* in the waiting FIFO */
};

struct vblk {
	struct virtio_dev *vd;
	struct virtio_env env;
	struct blk *blk;
	struct blk_queue *q;
	int qfd;
	bool fd_watched;
	uint64_t capacity; /* sectors */
	bool read_only;
	bool active;	   /* DRIVER_OK and not reset since */
	bool need_notify;  /* pushed since the last virtq_notify */
	uint8_t writeback; /* config: 1 write-back, 0 write-through (FUA) */
	uint32_t discard_align; /* sectors */
	char serial[VBLK_ID_BYTES]; /* zero-padded, maybe not terminated */
	struct vblk_req *wait_head, *wait_tail; /* -EAGAIN'd, in order */
	unsigned errors_logged;
};

static uint64_t vblk_features(void *opaque)
{
	struct vblk *vb = opaque;
	uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
		     (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_CONFIG_WCE);
	if (vb->read_only)
		f |= 1ull << VIRTIO_BLK_F_RO;
	else
		f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

static void vblk_fill_config(const struct vblk *vb, struct vblk_config *c)
{
	memset(c, 0, sizeof(*c));
	c->capacity = htole64(vb->capacity);
	c->seg_max = htole32(VBLK_QUEUE_SIZE - 2);
	c->blk_size = htole32(VBLK_SECTOR);
	/* topology (physical_block_exp, min/opt_io_size) is not offered: an
	 * I/O size hint from the qcow2 cluster size would steer mkfs's RAID
	 * stride and stripe width for nothing */
	c->writeback = vb->writeback;
	c->num_queues = htole16(1);
	if (!vb->read_only) {
		c->max_discard_sectors = htole32(VBLK_MAX_DISCARD_SECTORS);
		c->max_discard_seg = htole32(VBLK_MAX_DWZ_SEG);
		c->discard_sector_alignment = htole32(vb->discard_align);
		c->max_write_zeroes_sectors = htole32(VBLK_MAX_DISCARD_SECTORS);
		c->max_write_zeroes_seg = htole32(VBLK_MAX_DWZ_SEG);
		c->write_zeroes_may_unmap = 1;
	}
}

static void vblk_config_read(void *opaque, uint32_t offset, void *buf, uint32_t len)
{
	struct vblk *vb = opaque;
	struct vblk_config c;
	vblk_fill_config(vb, &c);
	if (offset > sizeof(c) || len > sizeof(c) - offset) { /* the core checked */
		memset(buf, 0, len);
		return;
	}
	memcpy(buf, (const uint8_t *)&c + offset, len);
}

static void vblk_config_write(void *opaque, uint32_t offset, const void *buf, uint32_t len)
{
	struct vblk *vb = opaque;
	/* Only writeback is writable, with CONFIG_WCE (5.2.5.2); the rest of
	 * the structure ignores writes. */
	if (offset != offsetof(struct vblk_config, writeback) || len != 1)
		return;
	if (!virtio_dev_has_feature(vb->vd, VIRTIO_BLK_F_CONFIG_WCE))
		return;
	vb->writeback = *(const uint8_t *)buf ? 1 : 0;
}

static struct virtq *vblk_vq(struct vblk *vb)
{
	return virtio_dev_queue(vb->vd, 0);
}

/* Writes the status byte (the last writable byte) and pushes the element.
 * The used length covers the whole writable part: data (for reads) and
 * status. */
static void vblk_complete(struct vblk *vb, struct virtq_elem *e, uint8_t status)
{
	virtq_elem_write(e, e->in_bytes - 1, &status, 1);
	uint32_t written = e->in_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)e->in_bytes;
	virtq_push(vblk_vq(vb), e, written);
	vb->need_notify = true;
}

static void vblk_req_free(struct vblk_req *r)
{
	free(r->iov);
	free(r);
}

static void vblk_flush_notify(struct vblk *vb)
{
	if (vb->need_notify) {
		vb->need_notify = false;
		virtq_notify(vblk_vq(vb));
	}
}

static void vblk_log_io_error(struct vblk *vb, const struct blk_request *rq, int ret)
{
	if (vb->errors_logged >= 10)
		return;
	vb->errors_logged++;
	static const char *const names[] = { "read",	"write",	 "flush",
					     "discard", "write-zeroes", "compressed write" };
	const char *op = (unsigned)rq->op < ARRAY_SIZE(names) ? names[rq->op] : "request";
	log_warn("%s: %s: %s of %" PRIu64 " bytes at offset %" PRIu64
		 " failed: %s; the guest sees an I/O error%s",
		 virtio_dev_name(vb->vd), blk_filename(vb->blk), op, rq->len, rq->off,
		 strerror(-ret), vb->errors_logged == 10 ? " (further errors not logged)" : "");
}

/* blk_queue callback: runs in blk_queue_poll(), under the machine lock. */
static void vblk_req_done(void *opaque, int ret)
{
	struct vblk_req *r = opaque;
	struct vblk *vb = r->vb;
	if (!vb->active) {
		/* reset while in flight: the driver forgot this buffer; do
		 * not touch guest memory */
		virtq_elem_free(r->elem);
	} else {
		if (ret < 0)
			vblk_log_io_error(vb, &r->rq, ret);
		vblk_complete(vb, r->elem, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	}
	vblk_req_free(r);
}

/*
 * Fills dst with the part [skip, skip + len) of the n segments src.
 * Returns the number of entries used (<= n); the bytes are there (the
 * caller checked the total).
 */
static int iov_slice(const struct iovec *src, unsigned n, uint64_t skip, uint64_t len,
		     struct iovec *dst)
{
	int cnt = 0;
	for (unsigned i = 0; i < n && len; i++) {
		uint64_t l = src[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		uint64_t take = MIN(l - skip, len);
		dst[cnt].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[cnt].iov_len = (size_t)take;
		cnt++;
		len -= take;
		skip = 0;
	}
	return cnt;
}

/* True if [sector, sector + nb_sectors) lies inside the disk. */
static bool vblk_range_ok(const struct vblk *vb, uint64_t sector, uint64_t nb_sectors)
{
	return sector <= vb->capacity && nb_sectors <= vb->capacity - sector;
}

/* Hands r to the block layer or queues it behind the waiting ones. */
static void vblk_submit(struct vblk *vb, struct vblk_req *r)
{
	if (!vb->wait_head) {
		int ret = blk_queue_submit(vb->q, &r->rq);
		if (ret == 0)
			return;
		if (ret != -EAGAIN) {
			vblk_log_io_error(vb, &r->rq, ret);
			vblk_complete(vb, r->elem, VIRTIO_BLK_S_IOERR);
			vblk_req_free(r);
			return;
		}
	}
	r->next = NULL;
	if (vb->wait_tail)
		vb->wait_tail->next = r;
	else
		vb->wait_head = r;
	vb->wait_tail = r;
}

/* Submits the waiting requests, in order, while the block queue has
 * room.  True when none waits any more. */
static bool vblk_submit_waiting(struct vblk *vb)
{
	while (vb->wait_head) {
		struct vblk_req *r = vb->wait_head;
		int ret = blk_queue_submit(vb->q, &r->rq);
		if (ret == -EAGAIN)
			return false;
		vb->wait_head = r->next;
		if (!vb->wait_head)
			vb->wait_tail = NULL;
		if (ret < 0) {
			vblk_log_io_error(vb, &r->rq, ret);
			vblk_complete(vb, r->elem, VIRTIO_BLK_S_IOERR);
			vblk_req_free(r);
		}
	}
	return true;
}

static struct vblk_req *vblk_req_new(struct vblk *vb, struct virtq_elem *e, enum blk_op op)
{
	struct vblk_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->vb = vb;
	r->elem = e;
	r->rq.op = op;
	r->rq.done = vblk_req_done;
	r->rq.opaque = r;
	return r;
}

/* IN / OUT: the data is the writable part less the status byte (reads) or
 * the readable part after the header (writes). */
static void vblk_rw(struct vblk *vb, struct virtq_elem *e, bool write, uint64_t sector)
{
	uint64_t len = write ? e->out_bytes - sizeof(struct vblk_outhdr) : e->in_bytes - 1;
	if (write && vb->read_only) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (len % VBLK_SECTOR || len > VBLK_MAX_DATA_BYTES ||
	    !vblk_range_ok(vb, sector, len / VBLK_SECTOR)) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (len == 0) {
		vblk_complete(vb, e, VIRTIO_BLK_S_OK);
		return;
	}
	struct vblk_req *r = vblk_req_new(vb, e, write ? BLK_OP_WRITE : BLK_OP_READ);
	unsigned n = write ? e->out_num : e->in_num;
	if (r)
		r->iov = calloc(n ? n : 1, sizeof(*r->iov));
	if (!r || !r->iov) {
		if (r)
			vblk_req_free(r);
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (write)
		r->rq.iovcnt = iov_slice(e->iov, e->out_num, sizeof(struct vblk_outhdr), len,
					 r->iov);
	else
		r->rq.iovcnt = iov_slice(e->iov + e->out_num, e->in_num, 0, len, r->iov);
	r->rq.iov = r->iov;
	r->rq.off = sector * VBLK_SECTOR;
	r->rq.len = len;
	if (write && !vb->writeback)
		r->rq.flags = BLK_WRITE_FUA;
	vblk_submit(vb, r);
}

/* DISCARD / WRITE_ZEROES: the readable part after the header holds
 * 16-byte segments (5.2.6). */
static void vblk_dwz(struct vblk *vb, struct virtq_elem *e, bool zeroes)
{
	unsigned feature = zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD;
	if (!virtio_dev_has_feature(vb->vd, feature)) {
		vblk_complete(vb, e, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	if (vb->read_only) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	uint64_t len = e->out_bytes - sizeof(struct vblk_outhdr);
	if (len == 0 || len % sizeof(struct vblk_dwz_seg)) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (len / sizeof(struct vblk_dwz_seg) > VBLK_MAX_DWZ_SEG) {
		vblk_complete(vb, e, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	struct vblk_dwz_seg seg;
	virtq_elem_read(e, sizeof(struct vblk_outhdr), &seg, sizeof(seg));
	uint64_t sector = le64toh(seg.sector);
	uint32_t nb = le32toh(seg.num_sectors);
	uint32_t flags = le32toh(seg.flags);
	/* discard takes no flag; write-zeroes only UNMAP (5.2.6.2) */
	if (flags & ~(zeroes ? VIRTIO_BLK_WZ_F_UNMAP : 0u)) {
		vblk_complete(vb, e, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	if (nb > VBLK_MAX_DISCARD_SECTORS || !vblk_range_ok(vb, sector, nb)) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (nb == 0) {
		vblk_complete(vb, e, VIRTIO_BLK_S_OK);
		return;
	}
	struct vblk_req *r = vblk_req_new(vb, e, zeroes ? BLK_OP_WRITE_ZEROES : BLK_OP_DISCARD);
	if (!r) {
		vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
		return;
	}
	r->rq.off = sector * VBLK_SECTOR;
	r->rq.len = (uint64_t)nb * VBLK_SECTOR;
	if (zeroes && (flags & VIRTIO_BLK_WZ_F_UNMAP))
		r->rq.flags = BLK_ZEROES_MAY_UNMAP;
	vblk_submit(vb, r);
}

static void vblk_handle(struct vblk *vb, struct virtq_elem *e)
{
	struct vblk_outhdr h;
	if (e->out_bytes < sizeof(h) || e->in_bytes < 1) {
		const char *why = e->in_bytes < 1 ? "virtio-blk request without a status byte"
						  : "virtio-blk request shorter than its header";
		virtq_elem_free(e);
		virtio_dev_set_broken(vb->vd, why);
		return;
	}
	virtq_elem_read(e, 0, &h, sizeof(h));
	uint32_t type = le32toh(h.type);
	uint64_t sector = le64toh(h.sector);
	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		vblk_rw(vb, e, type == VIRTIO_BLK_T_OUT, sector);
		return;
	case VIRTIO_BLK_T_FLUSH: {
		if (vb->read_only) {
			vblk_complete(vb, e, VIRTIO_BLK_S_OK);
			return;
		}
		struct vblk_req *r = vblk_req_new(vb, e, BLK_OP_FLUSH);
		if (!r) {
			vblk_complete(vb, e, VIRTIO_BLK_S_IOERR);
			return;
		}
		vblk_submit(vb, r);
		return;
	}
	case VIRTIO_BLK_T_GET_ID: {
		uint64_t room = e->in_bytes - 1;
		virtq_elem_write(e, 0, vb->serial, (size_t)MIN(room, (uint64_t)VBLK_ID_BYTES));
		vblk_complete(vb, e, VIRTIO_BLK_S_OK);
		return;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		vblk_dwz(vb, e, type == VIRTIO_BLK_T_WRITE_ZEROES);
		return;
	default:
		vblk_complete(vb, e, VIRTIO_BLK_S_UNSUPP);
		return;
	}
}

/* Pops and starts requests until the ring is empty or the block queue is
 * full (then the rest waits for completions).  The driver's kicks are
 * turned off while the device pops, and stay off while requests wait for
 * room: the completions resume popping. */
static void vblk_process(struct vblk *vb)
{
	if (!vb->active || (virtio_dev_status(vb->vd) & VIRTIO_STATUS_NEEDS_RESET))
		return;
	struct virtq *vq = vblk_vq(vb);
	if (!vblk_submit_waiting(vb))
		return;
	for (;;) {
		virtq_set_notification(vq, false);
		for (;;) {
			struct virtq_elem *e;
			int ret = virtq_pop(vq, &e);
			if (ret == 0)
				break;
			if (ret < 0) {
				if (ret == -EINVAL) {
					virtio_dev_set_broken(vb->vd,
							      "virtio-blk: malformed descriptor chain");
					return;
				}
				/* -ENOMEM: retried on the next kick or completion */
				virtq_set_notification(vq, true);
				return;
			}
			vblk_handle(vb, e);
			if (virtio_dev_status(vb->vd) & VIRTIO_STATUS_NEEDS_RESET)
				return;
			if (vb->wait_head)
				return; /* kicks stay off until completions free room */
		}
		if (!virtq_set_notification(vq, true))
			return;
		/* buffers arrived while kicks were off: pop them too */
	}
}

static void vblk_queue_notify(void *opaque, unsigned q)
{
	struct vblk *vb = opaque;
	if (q != 0)
		return;
	vblk_process(vb);
	vblk_flush_notify(vb);
}

/* The block queue's fd is readable: run the completions, then carry on
 * with what waited for room. */
static void vblk_fd_ready(void *opaque, int fd, unsigned revents)
{
	struct vblk *vb = opaque;
	(void)fd;
	(void)revents;
	blk_queue_poll(vb->q, false);
	vblk_process(vb);
	vblk_flush_notify(vb);
}

static int vblk_activate(void *opaque)
{
	struct vblk *vb = opaque;
	if (!virtio_dev_has_feature(vb->vd, VIRTIO_BLK_F_FLUSH))
		vb->writeback = 0; /* no flush: every write must be stable */
	vb->active = true;
	vb->errors_logged = 0;
	return 0;
}

/* Forgets the waiting requests and waits for those the block layer runs;
 * their completions free the elements without writing guest memory. */
static void vblk_drain(struct vblk *vb)
{
	vb->active = false;
	while (vb->wait_head) {
		struct vblk_req *r = vb->wait_head;
		vb->wait_head = r->next;
		virtq_elem_free(r->elem);
		vblk_req_free(r);
	}
	vb->wait_tail = NULL;
	while (blk_queue_inflight(vb->q))
		if (blk_queue_poll(vb->q, true) < 0)
			break;
	vb->need_notify = false;
}

static void vblk_reset(void *opaque)
{
	struct vblk *vb = opaque;
	vblk_drain(vb);
	vb->writeback = 1;
}

static void vblk_free(void *opaque)
{
	struct vblk *vb = opaque;
	vblk_drain(vb);
	if (vb->fd_watched)
		ev_loop_del_fd(vb->env.loop, vb->qfd);
	blk_queue_free(vb->q);
	int ret = blk_close(vb->blk);
	if (ret < 0)
		log_warn("virtio-blk: closing the disk failed: %s", strerror(-ret));
	free(vb);
}

static const struct virtio_dev_ops vblk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_max_size = VBLK_QUEUE_SIZE,
	.config_size = sizeof(struct vblk_config),
	.features = vblk_features,
	.config_read = vblk_config_read,
	.config_write = vblk_config_write,
	.activate = vblk_activate,
	.reset = vblk_reset,
	.queue_notify = vblk_queue_notify,
	.free = vblk_free,
};

/* The default GET_ID string: the file's base name (its last 20 bytes if
 * longer, which are the part that tells images apart more often). */
static void vblk_default_serial(const char *path, char out[VBLK_ID_BYTES])
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > VBLK_ID_BYTES)
		base += n - VBLK_ID_BYTES, n = VBLK_ID_BYTES;
	memset(out, 0, VBLK_ID_BYTES);
	memcpy(out, base, n);
}

struct virtio_dev *virtio_blk_new(const struct virtio_env *env, const struct virtio_blk_opts *o,
				  char *err, size_t err_len)
{
	char msg[512] = "";
	if (!env || !env->loop || !o || !o->path) {
		snprintf(err, err_len, "virtio-blk: internal error: no event loop or no path");
		errno = EINVAL;
		return NULL;
	}
	if (o->serial && strlen(o->serial) > VBLK_ID_BYTES) {
		snprintf(err, err_len, "%s: serial '%s' is longer than %d bytes", o->path,
			 o->serial, VBLK_ID_BYTES);
		errno = EINVAL;
		return NULL;
	}
	struct vblk *vb = calloc(1, sizeof(*vb));
	if (!vb) {
		snprintf(err, err_len, "%s: out of memory", o->path);
		return NULL;
	}
	vb->env = *env;
	vb->qfd = -1;
	struct blk_open_opts bo = { .format = o->format };
	if (!o->read_only)
		bo.flags |= BLK_OPEN_RDWR;
	if (o->cache == VIRTIO_BLK_CACHE_NONE)
		bo.flags |= BLK_OPEN_DIRECT;
	int ret = blk_open(o->path, &bo, &vb->blk, msg, sizeof(msg));
	if (ret < 0) {
		if (!msg[0])
			snprintf(msg, sizeof(msg), "%s: %s", o->path, strerror(-ret));
		snprintf(err, err_len, "%s%s", msg,
			 ret == -EACCES || ret == -EROFS || ret == -EPERM
				 ? " (add readonly=on to --disk to use it read-only)"
				 : "");
		free(vb);
		errno = -ret;
		return NULL;
	}
	vb->read_only = o->read_only || blk_is_read_only(vb->blk);
	vb->capacity = blk_size(vb->blk) / VBLK_SECTOR;
	vb->writeback = 1;
	uint32_t cluster = blk_cluster_size(vb->blk);
	vb->discard_align = MAX(cluster, 4096u) / VBLK_SECTOR;
	if (o->serial) {
		memset(vb->serial, 0, sizeof(vb->serial));
		memcpy(vb->serial, o->serial, strlen(o->serial));
	} else {
		vblk_default_serial(o->path, vb->serial);
	}
	vb->q = blk_queue_new(vb->blk, VBLK_BLKQ_DEPTH, 0, 0);
	if (!vb->q) {
		snprintf(err, err_len, "%s: cannot make an I/O queue: %s", o->path,
			 strerror(errno));
		goto fail;
	}
	vb->qfd = blk_queue_fd(vb->q);
	ret = ev_loop_add_fd(env->loop, vb->qfd, POLLIN, vblk_fd_ready, vb);
	if (ret < 0) {
		snprintf(err, err_len, "%s: cannot watch the I/O queue: %s", o->path,
			 strerror(-ret));
		goto fail;
	}
	vb->fd_watched = true;
	vb->vd = virtio_dev_new(env, &vblk_ops, vb);
	if (!vb->vd) {
		snprintf(err, err_len, "%s: cannot make the virtio device: %s", o->path,
			 strerror(errno));
		goto fail;
	}
	return vb->vd;
fail:
	if (vb->fd_watched)
		ev_loop_del_fd(env->loop, vb->qfd);
	blk_queue_free(vb->q);
	blk_close(vb->blk);
	free(vb);
	errno = EINVAL;
	return NULL;
}
