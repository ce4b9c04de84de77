/*
 * virtio-rng (virtio 1.2, 5.4): one request queue; the device fills the
 * driver's writable buffers with bytes from the host's getrandom().
 *
 * Never blocks the machine lock: getrandom() is called with GRND_NONBLOCK
 * (it only blocks before the host's pool is initialised, long before a VM
 * runs; then the request completes with what was there, possibly nothing,
 * and the driver asks again), and each request is capped at
 * RNG_MAX_REQUEST bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "core/core.h"
#include "virtio/virtio.h"

#define RNG_MAX_REQUEST (64u << 10)

struct virtio_rng {
	struct virtio_dev *vd;
};

static uint64_t rng_features(void *opaque)
{
	(void)opaque;
	return 0;
}

/* Fills up to RNG_MAX_REQUEST bytes of e's writable segments. */
static uint32_t rng_fill(struct virtq_elem *e)
{
	uint32_t done = 0;
	for (unsigned i = e->out_num; i < e->out_num + e->in_num && done < RNG_MAX_REQUEST; i++) {
		uint8_t *p = e->iov[i].iov_base;
		size_t len = MIN(e->iov[i].iov_len, (size_t)(RNG_MAX_REQUEST - done));
		size_t got = 0;
		while (got < len) {
			ssize_t n = getrandom(p + got, len - got, GRND_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done + (uint32_t)got;
			got += (size_t)n;
		}
		done += (uint32_t)got;
	}
	return done;
}

static void rng_queue_notify(void *opaque, unsigned q)
{
	struct virtio_rng *rng = opaque;
	struct virtq *vq = virtio_dev_queue(rng->vd, q);
	struct virtq_elem *e;
	int ret;
	while ((ret = virtq_pop(vq, &e)) == 1)
		virtq_push(vq, e, rng_fill(e));
	if (ret == -EINVAL)
		virtio_dev_set_broken(rng->vd, "malformed request on the entropy queue");
	virtq_notify(vq);
}

static void rng_free(void *opaque)
{
	free(opaque);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.nr_queues = 1,
	.queue_max_size = 256,
	.config_size = 0,
	.features = rng_features,
	.queue_notify = rng_queue_notify,
	.free = rng_free,
};

struct virtio_dev *virtio_rng_new(const struct virtio_env *env)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	if (!rng)
		return NULL;
	rng->vd = virtio_dev_new(env, &rng_ops, rng);
	if (!rng->vd) {
		int err = errno;
		free(rng);
		errno = err;
		return NULL;
	}
	return rng->vd;
}
