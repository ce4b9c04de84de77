/*
 * Asynchronous request queues: io_uring for raw images where the kernel
 * allows it, otherwise a pool of worker threads running the synchronous
 * driver operations.  Completions run in the thread calling
 * blk_queue_poll().
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/block_int.h"
#include "core/core.h"

struct slot {
	struct blk_request rq;
	int ret;
	unsigned next; /* free list / done list / job list link */
};

struct blk_queue {
	struct blk *b;
	unsigned depth;
	unsigned inflight;
	struct slot *slots;
	unsigned free_head; /* UINT32_MAX: none */
	bool uring;
	struct io_uring ring;
	int efd;
	/* thread pool */
	pthread_t *thr;
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned job_head, job_tail; /* FIFO of slot indices */
	unsigned done_head;
	bool stop;
};

#define NONE UINT32_MAX

static int run_sync(struct blk *b, const struct blk_request *rq)
{
	switch (rq->op) {
	case BLK_OP_READ:
		return blk_preadv(b, rq->off, rq->iov, rq->iovcnt);
	case BLK_OP_WRITE:
		return blk_pwritev(b, rq->off, rq->iov, rq->iovcnt, rq->flags);
	case BLK_OP_FLUSH:
		return blk_flush(b);
	case BLK_OP_DISCARD:
		return blk_discard(b, rq->off, rq->len);
	case BLK_OP_WRITE_ZEROES:
		return blk_write_zeroes(b, rq->off, rq->len, rq->flags);
	case BLK_OP_WRITE_COMPRESSED:
		if (rq->iovcnt != 1)
			return -EINVAL;
		return blk_pwrite_compressed(b, rq->off, rq->iov[0].iov_base,
					     rq->iov[0].iov_len);
	}
	return -EINVAL;
}

static void *worker(void *arg)
{
	struct blk_queue *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stop && q->job_head == NONE)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->job_head == NONE && q->stop)
			break;
		unsigned i = q->job_head;
		q->job_head = q->slots[i].next;
		if (q->job_head == NONE)
			q->job_tail = NONE;
		pthread_mutex_unlock(&q->lock);
		int ret = run_sync(q->b, &q->slots[i].rq);
		pthread_mutex_lock(&q->lock);
		q->slots[i].ret = ret;
		q->slots[i].next = q->done_head;
		q->done_head = i;
		uint64_t one = 1;
		ssize_t w = write(q->efd, &one, 8);
		(void)w;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct blk_queue *blk_queue_new(struct blk *b, unsigned depth,
				unsigned nb_threads, unsigned flags)
{
	(void)flags;
	if (!depth || depth > 1024) {
		errno = EINVAL;
		return NULL;
	}
	struct blk_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->b = b;
	q->depth = depth;
	q->slots = calloc(depth, sizeof(*q->slots));
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!q->slots || q->efd < 0)
		goto fail;
	for (unsigned i = 0; i < depth; i++)
		q->slots[i].next = i + 1 < depth ? i + 1 : NONE;
	q->free_head = 0;
	q->job_head = q->job_tail = q->done_head = NONE;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	bool want_uring = blk_format(b) == BLK_FMT_RAW &&
			  !(b->open_flags & BLK_OPEN_NO_URING);
	if (want_uring && io_uring_queue_init(depth, &q->ring, 0) == 0) {
		q->uring = true;
		if (io_uring_register_eventfd(&q->ring, q->efd) < 0) {
			io_uring_queue_exit(&q->ring);
			q->uring = false;
		}
	}
	/* the pool also serves what io_uring does not (discard, zeroes) */
	q->nthreads = nb_threads ? nb_threads : 4;
	q->thr = calloc(q->nthreads, sizeof(*q->thr));
	if (!q->thr)
		goto fail;
	for (unsigned i = 0; i < q->nthreads; i++) {
		if (pthread_create(&q->thr[i], NULL, worker, q) != 0) {
			q->nthreads = i;
			goto fail;
		}
	}
	return q;
fail:
	blk_queue_free(q);
	errno = ENOMEM;
	return NULL;
}

void blk_queue_free(struct blk_queue *q)
{
	if (!q)
		return;
	while (q->inflight)
		if (blk_queue_poll(q, true) < 0)
			break;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->thr[i], NULL);
	if (q->uring)
		io_uring_queue_exit(&q->ring);
	if (q->efd >= 0)
		close(q->efd);
	free(q->thr);
	free(q->slots);
	free(q);
}

int blk_queue_submit(struct blk_queue *q, const struct blk_request *rq)
{
	if (q->free_head == NONE)
		return -EAGAIN;
	unsigned i = q->free_head;
	q->free_head = q->slots[i].next;
	q->slots[i].rq = *rq;
	q->inflight++;
	bool uring_op = q->uring && (rq->op == BLK_OP_READ ||
				     rq->op == BLK_OP_WRITE ||
				     rq->op == BLK_OP_FLUSH);
	if (uring_op && (rq->op == BLK_OP_WRITE || rq->op == BLK_OP_FLUSH) &&
	    q->b->read_only)
		uring_op = false;
	if (uring_op && (rq->flags & BLK_WRITE_FUA))
		uring_op = false; /* blk_pwritev flushes after a FUA write */
	if (uring_op && rq->op != BLK_OP_FLUSH &&
	    (rq->off > q->b->size || rq->len > q->b->size - rq->off))
		uring_op = false; /* let the sync path report it */
	if (uring_op) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
		if (sqe) {
			if (rq->op == BLK_OP_READ)
				io_uring_prep_readv(sqe, q->b->fd, rq->iov,
						    (unsigned)rq->iovcnt, rq->off);
			else if (rq->op == BLK_OP_WRITE)
				io_uring_prep_writev(sqe, q->b->fd, rq->iov,
						     (unsigned)rq->iovcnt,
						     rq->off);
			else
				io_uring_prep_fsync(sqe, q->b->fd,
						    IORING_FSYNC_DATASYNC);
			io_uring_sqe_set_data64(sqe, i);
			if (io_uring_submit(&q->ring) >= 0)
				return 0;
		}
	}
	pthread_mutex_lock(&q->lock);
	q->slots[i].next = NONE;
	if (q->job_tail == NONE)
		q->job_head = i;
	else
		q->slots[q->job_tail].next = i;
	q->job_tail = i;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

static void complete(struct blk_queue *q, unsigned i, int ret)
{
	struct blk_request rq = q->slots[i].rq;
	q->slots[i].next = q->free_head;
	q->free_head = i;
	q->inflight--;
	if (rq.done)
		rq.done(rq.opaque, ret);
}

/* Finishes an io_uring read/write: short reads at EOF read as zeros,
 * other short transfers are retried synchronously. */
static int uring_result(struct blk_queue *q, const struct blk_request *rq,
			int res)
{
	if (res == -EINVAL && rq->op != BLK_OP_FLUSH) /* O_DIRECT, unaligned */
		return rq->op == BLK_OP_READ
			       ? blk_preadv(q->b, rq->off, rq->iov, rq->iovcnt)
			       : blk_pwritev(q->b, rq->off, rq->iov, rq->iovcnt,
					     rq->flags);
	if (res < 0)
		return res;
	if (rq->op == BLK_OP_FLUSH || (uint64_t)res == rq->len)
		return 0;
	uint64_t done = (uint64_t)res;
	uint64_t pos = 0;
	for (int k = 0; k < rq->iovcnt; k++) {
		uint64_t l = rq->iov[k].iov_len;
		if (pos + l > done) {
			uint64_t skip = done > pos ? done - pos : 0;
			struct iovec part = {
				(char *)rq->iov[k].iov_base + skip, l - skip
			};
			int r = rq->op == BLK_OP_READ
					? blk_preadv(q->b, rq->off + pos + skip,
						     &part, 1)
					: blk_pwritev(q->b, rq->off + pos + skip,
						      &part, 1, 0);
			if (r < 0)
				return r;
		}
		pos += l;
	}
	return 0;
}

int blk_queue_poll(struct blk_queue *q, bool wait)
{
	int n = 0;
	for (;;) {
		/* clear the eventfd before looking for completions, so that
		 * one arriving after the look leaves it readable */
		uint64_t v;
		ssize_t r = read(q->efd, &v, 8);
		(void)r;
		if (q->uring) {
			struct io_uring_cqe *cqe;
			while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
				unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
				int res = cqe->res;
				io_uring_cqe_seen(&q->ring, cqe);
				complete(q, i, uring_result(q, &q->slots[i].rq,
							    res));
				n++;
			}
		}
		pthread_mutex_lock(&q->lock);
		unsigned d = q->done_head;
		q->done_head = NONE;
		pthread_mutex_unlock(&q->lock);
		while (d != NONE) {
			unsigned next = q->slots[d].next;
			complete(q, d, q->slots[d].ret);
			d = next;
			n++;
		}
		if (n || !wait || !q->inflight)
			return n;
		struct pollfd pfd = { .fd = q->efd, .events = POLLIN };
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return -errno;
	}
}

unsigned blk_queue_inflight(const struct blk_queue *q)
{
	return q->inflight;
}

int blk_queue_fd(const struct blk_queue *q)
{
	return q->efd;
}

const char *blk_queue_backend(const struct blk_queue *q)
{
	return q->uring ? "io_uring" : "threads";
}
