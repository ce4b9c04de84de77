/* core's event loop: fd watches, timers, prepare hooks, wake-ups from
 * another thread, removal from inside callbacks, and the lock rule. */
#include "core/core.h"
#include "test.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct ctx {
	struct ev_loop *loop;
	int reads, timer_fires, prepares;
	bool locked_in_cb;
	int del_fd;
};

static bool lock_held(void)
{
	/* trylock fails with EBUSY while the loop holds it */
	if (pthread_mutex_trylock(&lock) == 0) {
		pthread_mutex_unlock(&lock);
		return false;
	}
	return true;
}

static void on_read(void *opaque, int fd, unsigned revents)
{
	struct ctx *c = opaque;
	char buf[16];
	if (revents & POLLIN) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r > 0)
			c->reads++;
	}
	c->locked_in_cb = lock_held();
	if (c->del_fd >= 0) {
		CHECK(ev_loop_del_fd(c->loop, c->del_fd) == 0);
		c->del_fd = -1;
	}
}

static void on_timer(void *opaque)
{
	struct ctx *c = opaque;
	c->timer_fires++;
}

static void on_prepare(void *opaque)
{
	struct ctx *c = opaque;
	c->prepares++;
}

static void *waker(void *p)
{
	usleep(50 * 1000);
	ev_loop_wake(p);
	return NULL;
}

int main(void)
{
	struct ctx c = { .del_fd = -1 };
	struct ev_loop *l = ev_loop_new();
	CHECK(l);
	c.loop = l;
	ev_loop_set_lock(l, &lock);
	CHECK(ev_loop_add_prepare(l, on_prepare, &c) == 0);

	int p[2], q[2];
	CHECK(pipe(p) == 0 && pipe(q) == 0);
	CHECK(ev_loop_add_fd(l, p[0], POLLIN, on_read, &c) == 0);
	CHECK(ev_loop_add_fd(l, p[0], POLLIN, on_read, &c) == -EEXIST);
	CHECK(ev_loop_mod_fd(l, 12345, POLLIN) == -ENOENT);
	CHECK(ev_loop_del_fd(l, 12345) == -ENOENT);

	/* nothing ready: returns after the timeout with no callbacks */
	uint64_t t0 = clock_ns();
	CHECK(ev_loop_run_once(l, 20 * 1000000ull) == 0);
	CHECK(clock_ns() - t0 >= 19 * 1000000ull);
	CHECK(c.prepares == 1);

	/* a readable fd runs its callback, under the lock */
	CHECK(write(p[1], "x", 1) == 1);
	CHECK(ev_loop_run_once(l, UINT64_MAX) == 1);
	CHECK(c.reads == 1);
	CHECK(c.locked_in_cb);
	CHECK(!lock_held());

	/* a paused watch does not fire */
	CHECK(ev_loop_mod_fd(l, p[0], 0) == 0);
	CHECK(write(p[1], "y", 1) == 1);
	CHECK(ev_loop_run_once(l, 10 * 1000000ull) == 0);
	CHECK(ev_loop_mod_fd(l, p[0], POLLIN) == 0);
	CHECK(ev_loop_run_once(l, UINT64_MAX) == 1);
	CHECK(c.reads == 2);

	/* timers fire at their deadline, once; UINT64_MAX disarms */
	struct ev_timer *t = ev_timer_new(l, on_timer, &c), *t2 = ev_timer_new(l, on_timer, &c);
	CHECK(t && t2);
	t0 = clock_ns();
	ev_timer_mod(t, t0 + 30 * 1000000ull);
	ev_timer_mod(t2, t0 + 30 * 1000000ull);
	ev_timer_mod(t2, UINT64_MAX);
	while (c.timer_fires == 0)
		CHECK(ev_loop_run_once(l, UINT64_MAX) >= 0);
	CHECK(clock_ns() - t0 >= 29 * 1000000ull);
	CHECK(c.timer_fires == 1);
	CHECK(ev_loop_run_once(l, 10 * 1000000ull) == 0);
	CHECK(c.timer_fires == 1);
	ev_timer_free(t2);

	/* a wake-up from another thread ends an unbounded wait */
	pthread_t th;
	CHECK(pthread_create(&th, NULL, waker, l) == 0);
	CHECK(ev_loop_run_once(l, UINT64_MAX) == 0);
	pthread_join(th, NULL);

	/* a callback removes another watch that is ready in the same pass */
	CHECK(ev_loop_add_fd(l, q[0], POLLIN, on_read, &c) == 0);
	CHECK(write(p[1], "a", 1) == 1 && write(q[1], "b", 1) == 1);
	c.del_fd = q[0];
	int n = ev_loop_run_once(l, UINT64_MAX);
	CHECK(n == 1);
	CHECK(c.reads == 3);
	CHECK(ev_loop_del_fd(l, q[0]) == -ENOENT);
	/* and its own watch */
	c.del_fd = p[0];
	CHECK(write(p[1], "c", 1) == 1);
	CHECK(ev_loop_run_once(l, UINT64_MAX) == 1);
	CHECK(ev_loop_del_fd(l, p[0]) == -ENOENT);

	ev_timer_free(t);
	ev_loop_free(l);
	close(p[0]); close(p[1]); close(q[0]); close(q[1]);
	TEST_MAIN_END();
}
