/*
 * Split virtqueues (virtio 1.2, 2.7), device side.
 *
 * The rings live in guest RAM, shared with vCPUs that do not take the
 * machine lock, so every value is read once into a local and checked
 * before use, and the orders the spec asks for are explicit:
 *   pop:    load avail->idx (acquire), then the ring entry and descriptors
 *   push:   store the used element, then used->idx (release)
 *   notify: full fence after publishing used->idx, then read the driver's
 *           suppression (avail->flags or used_event)
 *   re-enable notifications: store avail_event / used->flags, full fence,
 *           then look at avail->idx again
 * The host is little-endian x86-64, as is the ring format.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "mem/mem.h"
#include "virtio/virtio_int.h"

/* An element as allocated: the public part first, then what the queue
 * needs to refuse an element popped before a reset. */
struct elem_priv {
	struct virtq_elem e;
	struct virtq *vq;
	uint32_t gen;
};

/* Upper bound on the segments of one chain (a descriptor can be split at
 * RAM region boundaries; regions are few). */
#define SCRATCH_MAX (16u * VIRTQ_MAX_SIZE)

static uint16_t ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t ld16_acquire(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

static void st16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static void st16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELEASE);
}

static void st32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELAXED);
}

static void dma_mark(struct virtio_dev *vd, uint64_t gpa, uint64_t len)
{
	if (!len)
		return;
	mem_dirty_mark(vd->env.mem, gpa, len);
	if (vd->env.dma_written)
		vd->env.dma_written(vd->env.dma_opaque, gpa, len);
}

/* Bumped on every enable and reset: an element popped before either is
 * never completed into the new ring. */
static uint32_t queue_gen(const struct virtq *vq)
{
	return vq->gen;
}

/* ---- setup ---- */

void virtq_init(struct virtq *vq, struct virtio_dev *vd, unsigned index, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->vd = vd;
	vq->index = index;
	vq->max_size = max_size;
	virtq_reset(vq);
}

void virtq_fini(struct virtq *vq)
{
	free(vq->scratch_iov);
	free(vq->scratch_gpa);
	vq->scratch_iov = NULL;
	vq->scratch_gpa = NULL;
	vq->scratch_cap = 0;
}

void virtq_reset(struct virtq *vq)
{
	vq->size = vq->max_size;
	vq->msix_vector = VIRTIO_NO_VECTOR;
	vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
	vq->ready = false;
	vq->desc = vq->avail = vq->used = NULL;
	vq->last_avail = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->notify_enabled = true;
	vq->inflight = vq->pushed = 0;
	vq->gen++;
}

int virtq_enable(struct virtq *vq)
{
	struct virtio_dev *vd = vq->vd;
	struct mem *mem = vd->env.mem;
	char why[160];
	unsigned n = vq->size;

	if (vq->ready)
		return 0;
	if (n == 0 || (n & (n - 1)) || n > vq->max_size) {
		snprintf(why, sizeof(why), "queue %u: size %u is not a power of two in 1..%u", vq->index,
			 n, vq->max_size);
		goto bad;
	}
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
		snprintf(why, sizeof(why),
			 "queue %u: misaligned rings (desc 0x%llx, avail 0x%llx, used 0x%llx)", vq->index,
			 (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
			 (unsigned long long)vq->used_gpa);
		goto bad;
	}
	vq->desc = mem_ram_ptr(mem, vq->desc_gpa, VIRTQ_DESC_BYTES(n));
	vq->avail = mem_ram_ptr(mem, vq->avail_gpa, VIRTQ_AVAIL_BYTES(n));
	vq->used = mem_ram_ptr(mem, vq->used_gpa, VIRTQ_USED_BYTES(n));
	if (!vq->desc || !vq->avail || !vq->used) {
		snprintf(why, sizeof(why),
			 "queue %u: rings outside guest RAM (desc 0x%llx, avail 0x%llx, used 0x%llx)",
			 vq->index, (unsigned long long)vq->desc_gpa,
			 (unsigned long long)vq->avail_gpa, (unsigned long long)vq->used_gpa);
		vq->desc = vq->avail = vq->used = NULL;
		goto bad;
	}
	vq->last_avail = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_valid = false;
	vq->notify_enabled = true;
	vq->inflight = vq->pushed = 0;
	vq->gen++;
	vq->ready = true;
	return 0;
bad:
	virtio_dev_set_broken(vd, why);
	return -EINVAL;
}

/* ---- queries ---- */

unsigned virtq_index(const struct virtq *vq) { return vq->index; }
unsigned virtq_size(const struct virtq *vq) { return vq->ready ? vq->size : 0; }
bool virtq_ready(const struct virtq *vq) { return vq->ready; }

static bool serving(const struct virtq *vq)
{
	return vq->ready && !vq->vd->broken && (vq->vd->status & VIRTIO_STATUS_DRIVER_OK);
}

static bool has_event_idx(const struct virtq *vq)
{
	return vq->vd->features & (1ull << VIRTIO_F_EVENT_IDX);
}

bool virtq_has_avail(struct virtq *vq)
{
	if (!serving(vq))
		return false;
	return ld16_acquire(vq->avail + 2) != vq->last_avail;
}

/* ---- pop ---- */

static int scratch_grow(struct virtq *vq, unsigned need)
{
	if (need <= vq->scratch_cap)
		return 0;
	if (need > SCRATCH_MAX)
		return -EINVAL;
	unsigned cap = vq->scratch_cap ? vq->scratch_cap : 16;
	while (cap < need)
		cap *= 2;
	if (cap > SCRATCH_MAX)
		cap = SCRATCH_MAX;
	struct iovec *iov = realloc(vq->scratch_iov, cap * sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	vq->scratch_iov = iov;
	uint64_t *gpa = realloc(vq->scratch_gpa, cap * sizeof(*gpa));
	if (!gpa)
		return -ENOMEM;
	vq->scratch_gpa = gpa;
	vq->scratch_cap = cap;
	return 0;
}

/* Appends [addr, addr + len) as one or more segments (split at region
 * boundaries); every byte must be RAM. */
static int add_buffer(struct virtq *vq, unsigned *n, uint64_t addr, uint32_t len)
{
	const struct mem *mem = vq->vd->env.mem;
	if (len == 0)
		return 0;
	if (addr + len < addr)
		return -EINVAL;
	while (len) {
		const struct mem_region *r = mem_region_find(mem, addr);
		if (!r)
			return -EINVAL;
		uint64_t room = r->gpa + r->size - addr;
		uint32_t take = room < len ? (uint32_t)room : len;
		int ret = scratch_grow(vq, *n + 1);
		if (ret)
			return ret;
		vq->scratch_iov[*n] = (struct iovec){ r->host + (addr - r->gpa), take };
		vq->scratch_gpa[*n] = addr;
		(*n)++;
		addr += take;
		len -= take;
	}
	return 0;
}

int virtq_pop(struct virtq *vq, struct virtq_elem **out)
{
	struct virtio_dev *vd = vq->vd;
	*out = NULL;
	if (!serving(vq))
		return 0;

	unsigned size = vq->size;
	uint16_t avail_idx = ld16_acquire(vq->avail + 2);
	uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
	if (pending == 0)
		return 0;
	if (pending > size || vq->inflight >= size)
		return -EINVAL;
	uint16_t head = ld16(vq->avail + 4 + 2 * (vq->last_avail & (size - 1)));
	if (head >= size)
		return -EINVAL;

	/* walk the chain: direct table first, possibly one indirect table */
	const uint8_t *table = vq->desc;
	unsigned table_len = size, idx = head, visited = 0, n = 0, out_num = 0;
	uint64_t out_bytes = 0, in_bytes = 0;
	bool indirect = false, seen_write = false;
	bool may_indirect = vd->features & (1ull << VIRTIO_F_INDIRECT_DESC);
	for (;;) {
		if (idx >= table_len || ++visited > table_len)
			return -EINVAL; /* out of the table, or a loop */
		struct virtq_desc d;
		memcpy(&d, table + 16ull * idx, sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect || !may_indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_SIZE)
				return -EINVAL;
			table = mem_ram_ptr(vd->env.mem, d.addr, d.len);
			if (!table)
				return -EINVAL;
			table_len = d.len / 16;
			idx = 0;
			visited = 0;
			indirect = true;
			continue;
		}
		bool w = d.flags & VIRTQ_DESC_F_WRITE;
		if (!w && seen_write)
			return -EINVAL; /* readable after writable */
		seen_write |= w;
		int ret = add_buffer(vq, &n, d.addr, d.len);
		if (ret)
			return ret;
		if (w)
			in_bytes += d.len;
		else {
			out_bytes += d.len;
			out_num = n;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		idx = d.next;
	}

	struct elem_priv *p = malloc(sizeof(*p) + n * (sizeof(struct iovec) + sizeof(uint64_t)));
	if (!p)
		return -ENOMEM;
	struct virtq_elem *e = &p->e;
	p->vq = vq;
	p->gen = queue_gen(vq);
	e->head = head;
	e->out_num = out_num;
	e->in_num = n - out_num;
	e->out_bytes = out_bytes;
	e->in_bytes = in_bytes;
	e->iov = (struct iovec *)(p + 1);
	e->gpa = (uint64_t *)(e->iov + n);
	e->dev_data = NULL;
	if (n) {
		memcpy(e->iov, vq->scratch_iov, n * sizeof(*e->iov));
		memcpy(e->gpa, vq->scratch_gpa, n * sizeof(*e->gpa));
	}

	vq->last_avail++;
	vq->inflight++;
	if (has_event_idx(vq) && vq->notify_enabled) {
		uint8_t *ev = vq->used + 4 + 8 * size;
		st16(ev, vq->last_avail);
		dma_mark(vd, vq->used_gpa + 4 + 8ull * size, 2);
	}
	*out = e;
	return 1;
}

void virtq_elem_free(struct virtq_elem *elem)
{
	if (!elem)
		return;
	struct elem_priv *p = (struct elem_priv *)elem;
	struct virtq *vq = p->vq;
	if (p->gen == queue_gen(vq) && vq->inflight)
		vq->inflight--;
	free(p);
}

void virtq_unpop(struct virtq *vq, struct virtq_elem *elem)
{
	struct elem_priv *p = (struct elem_priv *)elem;
	if (p->gen == queue_gen(vq) && vq->inflight) {
		vq->last_avail--;
		vq->inflight--;
	}
	free(p);
}

/* ---- push ---- */

void virtq_push(struct virtq *vq, struct virtq_elem *elem, uint32_t written_bytes)
{
	struct elem_priv *p = (struct elem_priv *)elem;
	struct virtio_dev *vd = vq->vd;
	if (!elem)
		return;
	/* an element from before a reset, or a device the driver broke:
	 * nothing more is written to guest memory */
	if (p->gen != queue_gen(vq) || !vq->ready || vd->broken) {
		free(p);
		return;
	}
	if (vq->inflight)
		vq->inflight--;
	if (written_bytes > elem->in_bytes)
		written_bytes = (uint32_t)elem->in_bytes;

	uint64_t left = written_bytes;
	for (unsigned i = elem->out_num; i < elem->out_num + elem->in_num && left; i++) {
		uint64_t n = MIN((uint64_t)elem->iov[i].iov_len, left);
		dma_mark(vd, elem->gpa[i], n);
		left -= n;
	}

	unsigned size = vq->size;
	unsigned slot = vq->used_idx & (size - 1);
	uint8_t *ue = vq->used + 4 + 8 * slot;
	st32(ue, elem->head);
	st32(ue + 4, written_bytes);
	vq->used_idx++;
	st16_release(vq->used + 2, vq->used_idx);
	dma_mark(vd, vq->used_gpa + 4 + 8ull * slot, 8);
	dma_mark(vd, vq->used_gpa + 2, 2);
	vq->pushed++;
	free(p);
}

/* ---- notifications ---- */

void virtq_notify(struct virtq *vq)
{
	struct virtio_dev *vd = vq->vd;
	if (!vq->ready || vd->broken || !vq->pushed)
		return;
	vq->pushed = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	bool need;
	if (has_event_idx(vq)) {
		uint16_t ev = ld16(vq->avail + 4 + 2 * vq->size);
		uint16_t old = vq->signalled_used, now = vq->used_idx;
		need = !vq->signalled_valid || (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
	} else {
		need = !(ld16(vq->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	}
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (need && vd->tr)
		vd->tr->notify_queue(vd->tr_opaque, vq);
}

bool virtq_set_notification(struct virtq *vq, bool enable)
{
	struct virtio_dev *vd = vq->vd;
	vq->notify_enabled = enable;
	if (!serving(vq))
		return false;
	if (has_event_idx(vq)) {
		/* with event index, "disabled" just stops moving avail_event */
		if (enable) {
			st16(vq->used + 4 + 8 * vq->size, vq->last_avail);
			dma_mark(vd, vq->used_gpa + 4 + 8ull * vq->size, 2);
		}
	} else {
		st16(vq->used, enable ? 0 : VIRTQ_USED_F_NO_NOTIFY);
		dma_mark(vd, vq->used_gpa, 2);
	}
	if (!enable)
		return false;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return ld16_acquire(vq->avail + 2) != vq->last_avail;
}

/* ---- copying ---- */

static size_t copy_segments(const struct iovec *iov, unsigned cnt, size_t offset, void *buf,
			    size_t len, bool to_iov)
{
	size_t done = 0;
	for (unsigned i = 0; i < cnt && done < len; i++) {
		size_t seg = iov[i].iov_len;
		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		size_t n = MIN(seg - offset, len - done);
		uint8_t *g = (uint8_t *)iov[i].iov_base + offset;
		if (to_iov)
			memcpy(g, (const uint8_t *)buf + done, n);
		else
			memcpy((uint8_t *)buf + done, g, n);
		done += n;
		offset = 0;
	}
	return done;
}

size_t virtq_elem_read(const struct virtq_elem *e, size_t offset, void *buf, size_t len)
{
	return copy_segments(e->iov, e->out_num, offset, buf, len, false);
}

size_t virtq_elem_write(struct virtq_elem *e, size_t offset, const void *buf, size_t len)
{
	return copy_segments(e->iov + e->out_num, e->in_num, offset, (void *)buf, len, true);
}
