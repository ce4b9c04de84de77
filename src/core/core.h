/*
 * core: logging, error conventions and small helpers shared by every layer.
 *
 * Error convention (all of maquina): functions return 0 or a negative errno;
 * functions returning pointers return NULL; bool is for predicates only.
 * The callee detects an error, the caller that knows the context reports it
 * with log_error(), once, in words a person can act on.
 */
#ifndef MAQUINA_CORE_H
#define MAQUINA_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the program name that prefixes every message ("maquina"). */
void log_set_progname(const char *name);
/* Messages at a level above this one are dropped; default LOG_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Prints "progname: message\n" to stderr.  The message should say what was
 * wrong and, where there is one, what to do about it. */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

/*
 * Parses a size with an optional binary suffix, as qemu does: "512" (bytes
 * unless default_unit says otherwise), "64k", "512M", "2G", "1T", "1P", "1E".
 * A "B" suffix means bytes.  Rejects negative numbers, garbage and overflow.
 * Returns 0 and stores the size, or -EINVAL / -ERANGE.
 */
int parse_size(const char *s, uint64_t default_unit, uint64_t *out_bytes);

/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

/* ------------------------------------------------------------------ */
/* Event loop (the VMM's I/O thread)                                   */

/*
 * A poll(2)-based loop: descriptor watches, timers on clock_ns(), hooks
 * run before each poll, and a wake-up usable from any thread.  One thread
 * runs it (ev_loop_run_once); everything else about a loop (adding,
 * changing, removing watches and timers) must happen in that thread or
 * under the lock given to ev_loop_set_lock.  With a lock set, the loop
 * holds it while it runs hooks, timers and callbacks and drops it only
 * around poll(): callbacks are serialised with whatever else takes it
 * (the machine lock).
 */
struct ev_loop;
struct ev_timer;

/* revents: POLLIN/POLLOUT/POLLERR/POLLHUP bits as poll(2) reports them. */
typedef void ev_fd_fn(void *opaque, int fd, unsigned revents);
typedef void ev_timer_fn(void *opaque);
/* Runs before each poll; may add or change watches and timers. */
typedef void ev_prepare_fn(void *opaque);

/* NULL with errno on failure. */
struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop *loop);
/* A pthread_mutex_t held while callbacks run (NULL: none). */
void ev_loop_set_lock(struct ev_loop *loop, void *pthread_mutex);

/* Watches fd for events (POLLIN and/or POLLOUT).  One watch per fd:
 * -EEXIST for a second, -ENOMEM.  A callback may remove any watch,
 * including its own. */
int ev_loop_add_fd(struct ev_loop *loop, int fd, unsigned events, ev_fd_fn *fn, void *opaque);
/* Changes the events of fd's watch (0 pauses it): 0 or -ENOENT. */
int ev_loop_mod_fd(struct ev_loop *loop, int fd, unsigned events);
/* Removes fd's watch: 0 or -ENOENT. */
int ev_loop_del_fd(struct ev_loop *loop, int fd);

/* A timer, disarmed until ev_timer_mod.  NULL on allocation failure. */
struct ev_timer *ev_timer_new(struct ev_loop *loop, ev_timer_fn *fn, void *opaque);
/* Fires once at deadline_ns (clock_ns() time; UINT64_MAX disarms). */
void ev_timer_mod(struct ev_timer *t, uint64_t deadline_ns);
void ev_timer_free(struct ev_timer *t);

/* Adds a hook run before every poll: 0 or -ENOMEM. */
int ev_loop_add_prepare(struct ev_loop *loop, ev_prepare_fn *fn, void *opaque);

/* Makes a running or the next ev_loop_run_once return early; safe from
 * any thread and from signal handlers. */
void ev_loop_wake(struct ev_loop *loop);

/* Runs hooks, polls until an event, a timer deadline, a wake-up or
 * max_wait_ns (UINT64_MAX: no limit) passes, then runs the callbacks of
 * ready descriptors and due timers.  Returns the number of callbacks run,
 * or -errno from poll (not -EINTR, which counts as a wake-up). */
int ev_loop_run_once(struct ev_loop *loop, uint64_t max_wait_ns);

#endif
