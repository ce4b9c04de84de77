/*
 * The event loop of the VMM's I/O thread: poll(2) over a small array of
 * watches, timers kept in a list (a VM has a handful), prepare hooks, and
 * an eventfd for wake-ups from other threads.
 *
 * Removal while dispatching: watches and timers are never freed while the
 * loop walks them; a removed watch is marked dead and swept after the
 * dispatch pass, a freed timer likewise.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/core.h"

struct ev_watch {
	int fd;
	unsigned events;
	ev_fd_fn *fn;
	void *opaque;
	bool dead;
};

struct ev_timer {
	struct ev_loop *loop;
	ev_timer_fn *fn;
	void *opaque;
	uint64_t deadline;
	struct ev_timer *next;
	bool dead;
};

struct ev_prepare {
	ev_prepare_fn *fn;
	void *opaque;
};

struct ev_loop {
	pthread_mutex_t *lock;
	int wake_fd;
	struct ev_watch *w;
	size_t nw, cap_w;
	struct pollfd *pfd;
	size_t cap_pfd;
	struct ev_timer *timers;
	struct ev_prepare *prep;
	size_t nprep;
	bool dispatching;
	bool need_sweep;
};

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		int e = errno;
		free(l);
		errno = e;
		return NULL;
	}
	return l;
}

void ev_loop_free(struct ev_loop *l)
{
	if (!l)
		return;
	struct ev_timer *t = l->timers;
	while (t) {
		struct ev_timer *n = t->next;
		free(t);
		t = n;
	}
	close(l->wake_fd);
	free(l->w);
	free(l->pfd);
	free(l->prep);
	free(l);
}

void ev_loop_set_lock(struct ev_loop *l, void *mutex) { l->lock = mutex; }

static struct ev_watch *find_watch(struct ev_loop *l, int fd)
{
	for (size_t i = 0; i < l->nw; i++)
		if (l->w[i].fd == fd && !l->w[i].dead)
			return &l->w[i];
	return NULL;
}

int ev_loop_add_fd(struct ev_loop *l, int fd, unsigned events, ev_fd_fn *fn, void *opaque)
{
	if (fd < 0 || !fn)
		return -EINVAL;
	if (find_watch(l, fd))
		return -EEXIST;
	if (l->nw == l->cap_w) {
		size_t cap = l->cap_w ? 2 * l->cap_w : 8;
		struct ev_watch *w = realloc(l->w, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		l->w = w;
		l->cap_w = cap;
	}
	l->w[l->nw++] = (struct ev_watch){ fd, events, fn, opaque, false };
	return 0;
}

int ev_loop_mod_fd(struct ev_loop *l, int fd, unsigned events)
{
	struct ev_watch *w = find_watch(l, fd);
	if (!w)
		return -ENOENT;
	w->events = events;
	return 0;
}

static void sweep(struct ev_loop *l)
{
	size_t j = 0;
	for (size_t i = 0; i < l->nw; i++)
		if (!l->w[i].dead)
			l->w[j++] = l->w[i];
	l->nw = j;
	for (struct ev_timer **pp = &l->timers; *pp;) {
		if ((*pp)->dead) {
			struct ev_timer *t = *pp;
			*pp = t->next;
			free(t);
		} else {
			pp = &(*pp)->next;
		}
	}
	l->need_sweep = false;
}

int ev_loop_del_fd(struct ev_loop *l, int fd)
{
	struct ev_watch *w = find_watch(l, fd);
	if (!w)
		return -ENOENT;
	w->dead = true;
	l->need_sweep = true;
	if (!l->dispatching)
		sweep(l);
	return 0;
}

struct ev_timer *ev_timer_new(struct ev_loop *l, ev_timer_fn *fn, void *opaque)
{
	struct ev_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->loop = l;
	t->fn = fn;
	t->opaque = opaque;
	t->deadline = UINT64_MAX;
	t->next = l->timers;
	l->timers = t;
	return t;
}

void ev_timer_mod(struct ev_timer *t, uint64_t deadline_ns) { t->deadline = deadline_ns; }

void ev_timer_free(struct ev_timer *t)
{
	if (!t)
		return;
	struct ev_loop *l = t->loop;
	t->dead = true;
	t->deadline = UINT64_MAX;
	l->need_sweep = true;
	if (!l->dispatching)
		sweep(l);
}

int ev_loop_add_prepare(struct ev_loop *l, ev_prepare_fn *fn, void *opaque)
{
	struct ev_prepare *p = realloc(l->prep, (l->nprep + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	l->prep = p;
	l->prep[l->nprep++] = (struct ev_prepare){ fn, opaque };
	return 0;
}

void ev_loop_wake(struct ev_loop *l)
{
	uint64_t one = 1;
	ssize_t r = write(l->wake_fd, &one, sizeof(one));
	(void)r; /* EAGAIN: the counter is already non-zero, a wake-up is pending */
}

static uint64_t next_deadline(const struct ev_loop *l)
{
	uint64_t d = UINT64_MAX;
	for (const struct ev_timer *t = l->timers; t; t = t->next)
		if (!t->dead && t->deadline < d)
			d = t->deadline;
	return d;
}

static int run_timers(struct ev_loop *l)
{
	int n = 0;
	uint64_t now = clock_ns();
	/* A callback may re-arm its own timer for "now": run each due timer
	 * at most once per pass so that such a timer cannot starve the loop. */
	for (struct ev_timer *t = l->timers; t; t = t->next) {
		if (t->dead || t->deadline > now)
			continue;
		t->deadline = UINT64_MAX;
		t->fn(t->opaque);
		n++;
	}
	return n;
}

int ev_loop_run_once(struct ev_loop *l, uint64_t max_wait_ns)
{
	if (l->lock)
		pthread_mutex_lock(l->lock);
	l->dispatching = true;
	for (size_t i = 0; i < l->nprep; i++)
		l->prep[i].fn(l->prep[i].opaque);
	l->dispatching = false;
	if (l->need_sweep)
		sweep(l);

	size_t n = l->nw + 1;
	if (n > l->cap_pfd) {
		struct pollfd *p = realloc(l->pfd, n * sizeof(*p));
		if (!p) {
			if (l->lock)
				pthread_mutex_unlock(l->lock);
			return -ENOMEM;
		}
		l->pfd = p;
		l->cap_pfd = n;
	}
	l->pfd[0] = (struct pollfd){ l->wake_fd, POLLIN, 0 };
	for (size_t i = 0; i < l->nw; i++)
		l->pfd[i + 1] = (struct pollfd){ l->w[i].events ? l->w[i].fd : -1,
						 (short)l->w[i].events, 0 };
	uint64_t now = clock_ns(), dl = next_deadline(l);
	uint64_t wait = max_wait_ns;
	if (dl != UINT64_MAX)
		wait = MIN(wait, dl > now ? dl - now : 0);
	if (l->lock)
		pthread_mutex_unlock(l->lock);

	struct timespec ts, *tsp = NULL;
	if (wait != UINT64_MAX) {
		ts.tv_sec = (time_t)(wait / 1000000000u);
		ts.tv_nsec = (long)(wait % 1000000000u);
		tsp = &ts;
	}
	int r = ppoll(l->pfd, n, tsp, NULL);
	if (r < 0 && errno != EINTR)
		return -errno;

	if (l->lock)
		pthread_mutex_lock(l->lock);
	int ran = 0;
	l->dispatching = true;
	if (r > 0) {
		if (l->pfd[0].revents) {
			uint64_t v;
			ssize_t rr = read(l->wake_fd, &v, sizeof(v));
			(void)rr;
		}
		/* l->w may not grow past n - 1 entries we polled: new watches
		 * added by callbacks are appended and wait for the next pass;
		 * realloc may move l->w, so index it afresh each time. */
		for (size_t i = 0; i + 1 < n && i < l->nw; i++) {
			unsigned re = (unsigned)l->pfd[i + 1].revents;
			if (!re || l->w[i].dead || l->w[i].fd != l->pfd[i + 1].fd)
				continue;
			l->w[i].fn(l->w[i].opaque, l->w[i].fd, re);
			ran++;
		}
	}
	ran += run_timers(l);
	l->dispatching = false;
	if (l->need_sweep)
		sweep(l);
	if (l->lock)
		pthread_mutex_unlock(l->lock);
	return ran;
}
