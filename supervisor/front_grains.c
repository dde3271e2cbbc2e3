/* SPDX-License-Identifier: MIT */
/*
 * front_grains.c: the grain manager, front's view of which grains run.
 *
 * A grain is started on the first request that needs it (the launcher builds
 * its sandbox and hands back the control socket of its grain-init), serves
 * connections brokered by grain-init and pooled here, and is stopped when
 * nothing used it for the idle timeout. One thread of ours watches every
 * control socket (answers to CONNECT, the app's exit) and the idle clocks;
 * request threads block in grain_acquire() until their connection arrives.
 *
 *	STOPPED --acquire--> STARTING --launcher says started--> RUNNING
 *	   ^                     |                                   |
 *	   +---- start failed ---+---- control socket closed, idle, stop ---+
 *
 * Concurrent first requests share one start: the first turns STOPPED into
 * STARTING and calls the launcher without the lock; the others wait for the
 * state to change. A grain whose app died on its own is restarted by the
 * next request, but not before a backoff that doubles with each crash in a
 * row (1 s … CRASH_BACKOFF_MAX), so a crash loop costs little.
 *
 * Connections: an fd handed out is "active" until released. The event loop
 * takes pooled ones without waiting (grain_acquire_nowait()); anything that
 * waits (a start, a CONNECT) it does from a thread of its own. The pool keeps
 * released fds of the current run (generation) for the next request; an fd
 * of an older run is closed. Active connections and waiters count as use:
 * a grain with an open WebSocket never idles out.
 *
 * Locking: m->lock guards everything here. Nothing blocks while holding it
 * (sends to grain-init are MSG_DONTWAIT, launcher calls are made without it).
 * A grain_run lives until the manager is freed or the reaper (our thread,
 * between epoll batches) finds it stopped, unused and unreferenced.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "grains/grain-protocol.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define TABLE_SIZE	   1024
#define POOL_MAX	   32
#define CRASH_BACKOFF_MAX  60000 /* ms */
#define CRASH_FORGET_AFTER 60000 /* ms of running that clear the crash count */
/* grain-init answers a CONNECT within its start timeout (30 s by default). */
#define CONNECT_WAIT_MAX   (2 * 60 * 1000)
#define TICK_MS		   1000

enum grain_run_state {
	GRAIN_STOPPED,
	GRAIN_STARTING,
	GRAIN_RUNNING,
};

struct connect_wait {
	uint32_t id;
	bool done;
	int fd; /* the connection (the waiter's once done), or -errno */
	char message[GRAIN_MSG_TEXT_MAX];
	struct connect_wait *next;
};

struct pooled {
	int fd;
	bool watched; /* PROXY_FD_WATCHED */
};

struct grain_run {
	char id[GRAIN_ID_LEN + 1];
	char package_id[PACKAGE_ID_LEN + 1];
	enum grain_run_state state;
	int control_fd;	     /* owned while RUNNING */
	uint64_t generation; /* bumped at every start */
	uint32_t next_connect_id;
	struct connect_wait *waits;   /* CONNECTs sent, not yet answered */
	struct pooled pool[POOL_MAX]; /* owned: idle connections of this generation */
	unsigned n_pool;
	unsigned active;    /* connections handed out and not released */
	unsigned refs;	    /* grain_manager_get() references */
	int64_t last_used;  /* monotonic ms */
	int64_t started;    /* monotonic ms */
	int64_t started_at; /* Unix seconds, for status */
	unsigned crashes;   /* in a row */
	int64_t retry_at;   /* monotonic ms: no start before */
	char error[256];    /* why it last failed to start or died */
	char ended[96];	    /* how the app of this run ended (EXITED), "" before */
	bool stopping;	    /* we closed it on purpose */
	struct grain_run *next;
};

struct grain_manager {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* states, connect answers (CLOCK_MONOTONIC) */
	struct grain_run *table[TABLE_SIZE];
	unsigned n_runs, n_running;
	int epoll_fd; /* owned */
	int wake_fd;  /* owned: eventfd, wakes the thread to quit */
	pthread_t thread;
	bool thread_started, quit;
	struct launcher_client *launcher; /* borrowed */
	int64_t idle_ms;
	char (*kill_list)[GRAIN_ID_LEN + 1]; /* owned: grains to stop hard, by the thread */
	size_t n_kill, kill_size;
};

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned
bucket_of(const char *id)
{
	/* Grain ids are random hex: their first digits are a fine hash. */
	unsigned h = 0;

	for (size_t i = 0; i < 6 && id[i]; i++)
		h = h * 16 + (unsigned)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
	return h % TABLE_SIZE;
}

static struct grain_run *
run_find(struct grain_manager *m, const char *id)
{
	for (struct grain_run *r = m->table[bucket_of(id)]; r; r = r->next)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

static void
pool_drain(struct grain_run *run)
{
	while (run->n_pool > 0)
		(void)safe_close(run->pool[--run->n_pool].fd);
}

/* Ask the thread to have the launcher kill the grain (it may not listen to its control socket). */
static void
kill_later(struct grain_manager *m, const char *id)
{
	if (m->n_kill == m->kill_size) {
		size_t size = m->kill_size ? m->kill_size * 2 : 8;
		void *p = reallocarray(m->kill_list, size, sizeof(*m->kill_list));

		if (!p)
			return; /* closing the control socket is still a stop */
		m->kill_list = p;
		m->kill_size = size;
	}
	(void)snprintf(m->kill_list[m->n_kill++], GRAIN_ID_LEN + 1, "%s", id);
	(void)eventfd_write(m->wake_fd, 1);
}

/*
 * The run is over: its control socket is closed (grain-init then stops the
 * app and exits, and the launcher reaps it), pooled fds closed, waiters told.
 * crashed: it ended on its own, so the next start waits out a backoff.
 */
static void
run_end(struct grain_manager *m, struct grain_run *run, bool crashed, const char *why)
{
	int64_t now = monotonic_ms();

	if (run->state != GRAIN_RUNNING)
		return;
	(void)epoll_ctl(m->epoll_fd, EPOLL_CTL_DEL, run->control_fd, NULL);
	run->control_fd = safe_close(run->control_fd);
	pool_drain(run);
	run->state = GRAIN_STOPPED;
	run->generation++;
	m->n_running--;
	for (struct connect_wait *w = run->waits; w; w = w->next) {
		w->done = true;
		w->fd = -ECONNRESET;
		(void)snprintf(w->message, sizeof(w->message), "%s", why);
	}
	if (crashed) {
		int64_t backoff;

		if (now - run->started >= CRASH_FORGET_AFTER)
			run->crashes = 0;
		run->crashes++;
		/* The first crash is retried at once; then 1 s, 2 s, 4 s ... */
		backoff = run->crashes <= 1 ? 0 : 1000LL << MIN(run->crashes - 2, 16u);
		run->retry_at = now + MIN(backoff, (int64_t)CRASH_BACKOFF_MAX);
		(void)snprintf(run->error, sizeof(run->error), "%s", why);
		log_warning("Grain %s: %s (crash %u in a row; next start in %" PRId64
			    " s at the earliest)",
			    run->id, why, run->crashes, (run->retry_at - now + 999) / 1000);
	} else {
		log_info("Grain %s stopped: %s", run->id, why);
	}
	(void)pthread_cond_broadcast(&m->changed);
}

/* Whatever grain-init says on the control socket (lock held, thread only). */
static void
control_readable(struct grain_manager *m, struct grain_run *run)
{
	while (run->state == GRAIN_RUNNING) {
		struct grain_msg msg;
		int r = grain_msg_receive(run->control_fd, GRAIN_TO_FRONT, MSG_DONTWAIT, &msg);

		if (r == -EAGAIN)
			return;
		if (r == -EBADMSG) {
			/* DESIGN.md: a malformed message from a grain kills that grain. */
			log_error("Grain %s sent a malformed message; stopping it", run->id);
			kill_later(m, run->id);
			run_end(m, run, true, "it broke the control protocol and was stopped");
			return;
		}
		if (r < 0) {
			run_end(m, run, !run->stopping,
				run->ended[0] ? run->ended : "its app stopped");
			return;
		}
		switch (msg.header.type) {
		case GRAIN_MSG_CONNECTED:
		case GRAIN_MSG_ERROR: {
			struct connect_wait *w = run->waits;

			while (w && w->id != msg.header.id)
				w = w->next;
			if (!w || w->done) {
				/* Its waiter gave up: keep the connection for the next one. */
				if (msg.fd >= 0 && run->n_pool < POOL_MAX)
					run->pool[run->n_pool++] = (struct pooled){ msg.fd };
				else
					(void)safe_close(msg.fd);
				break;
			}
			w->done = true;
			if (msg.header.type == GRAIN_MSG_CONNECTED) {
				w->fd = msg.fd;
			} else {
				w->fd = -msg.payload.error.error;
				(void)snprintf(w->message, sizeof(w->message), "%s",
					       msg.payload.error.message);
			}
			(void)pthread_cond_broadcast(&m->changed);
			break;
		}
		case GRAIN_MSG_STATE:
			if (msg.payload.state.state == GRAIN_APP_READY)
				log_debug("Grain %s ready after %u ms", run->id,
					  msg.payload.state.ready_ms);
			break;
		case GRAIN_MSG_EXITED:
			if (msg.payload.exited.signal)
				(void)snprintf(run->ended, sizeof(run->ended),
					       "its app was killed by signal %d",
					       msg.payload.exited.signal);
			else
				(void)snprintf(run->ended, sizeof(run->ended),
					       "its app exited with status %d",
					       msg.payload.exited.code);
			break;
		default:
			(void)safe_close(msg.fd);
			break;
		}
	}
}

/* Stop grains idle for longer than the timeout; forget stopped ones nobody needs. */
static void
tick(struct grain_manager *m)
{
	int64_t now = monotonic_ms();

	for (size_t i = 0; i < TABLE_SIZE; i++) {
		struct grain_run **link = &m->table[i];

		while (*link) {
			struct grain_run *run = *link;

			if (run->state == GRAIN_RUNNING && run->active == 0 && !run->waits &&
			    now - run->last_used >= m->idle_ms) {
				run->stopping = true;
				run_end(m, run, false, "idle");
			}
			if (run->state == GRAIN_STOPPED && run->refs == 0 && run->active == 0 &&
			    !run->waits && (run->crashes == 0 || now >= run->retry_at + 600000)) {
				*link = run->next;
				m->n_runs--;
				free(run);
				continue;
			}
			link = &run->next;
		}
	}
}

static void *
manager_thread(void *userdata)
{
	struct grain_manager *m = userdata;
	int64_t next_tick = monotonic_ms() + TICK_MS;

	for (;;) {
		struct epoll_event events[32];
		char kill_ids[8][GRAIN_ID_LEN + 1];
		size_t n_kill = 0;
		int64_t now = monotonic_ms();
		int n;

		n = epoll_wait(m->epoll_fd, events, ELEMENTSOF(events),
			       (int)MAX(next_tick - now, 0));
		if (n < 0 && errno != EINTR) {
			log_error_errno(errno, "Grain manager: epoll_wait failed: %m");
			return NULL;
		}
		pthread_mutex_lock(&m->lock);
		for (int i = 0; i < n; i++) {
			if (events[i].data.ptr == NULL) {
				eventfd_t value;

				(void)eventfd_read(m->wake_fd, &value);
				continue;
			}
			control_readable(m, events[i].data.ptr);
		}
		if (monotonic_ms() >= next_tick) {
			tick(m);
			next_tick = monotonic_ms() + TICK_MS;
		}
		while (m->n_kill > 0 && n_kill < ELEMENTSOF(kill_ids))
			memcpy(kill_ids[n_kill++], m->kill_list[--m->n_kill], GRAIN_ID_LEN + 1);
		if (m->n_kill > 0)
			(void)eventfd_write(m->wake_fd, 1);
		bool quit = m->quit;
		pthread_mutex_unlock(&m->lock);

		/* Launcher calls without the lock: they wait for its answer. */
		for (size_t i = 0; i < n_kill; i++) {
			struct ipc_message reply; /* OK: no fd (launcher_call() checks) */

			(void)launcher_grain_call(m->launcher, IPC_GRAIN_STOP, kill_ids[i], &reply);
		}
		if (quit)
			return NULL;
	}
}

int
grain_manager_new(struct launcher_client *launcher, unsigned idle_timeout,
		  struct grain_manager **ret)
{
	_cleanup_(grain_manager_freep) struct grain_manager *m = NULL;
	pthread_condattr_t attr;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->epoll_fd = m->wake_fd = -EBADF;
	m->launcher = launcher;
	m->idle_ms = (int64_t)(idle_timeout ? idle_timeout : GRAIN_IDLE_TIMEOUT_DEFAULT) * 1000;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->changed, &attr);
	pthread_condattr_destroy(&attr);
	m->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->epoll_fd < 0 || m->wake_fd < 0)
		return negative_errno();
	if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->wake_fd, &ev) < 0)
		return negative_errno();
	r = -pthread_create(&m->thread, NULL, manager_thread, m);
	if (r < 0)
		return r;
	m->thread_started = true;
	*ret = TAKE_PTR(m);
	return 0;
}

struct grain_manager *
grain_manager_free(struct grain_manager *m)
{
	if (!m)
		return NULL;
	if (m->thread_started) {
		pthread_mutex_lock(&m->lock);
		m->quit = true;
		pthread_mutex_unlock(&m->lock);
		(void)eventfd_write(m->wake_fd, 1);
		(void)pthread_join(m->thread, NULL);
	}
	/* Closing the control sockets stops the grains (grain-init's rule). */
	for (size_t i = 0; i < TABLE_SIZE; i++)
		while (m->table[i]) {
			struct grain_run *run = m->table[i];

			m->table[i] = run->next;
			(void)safe_close(run->control_fd);
			pool_drain(run);
			free(run);
		}
	(void)safe_close(m->epoll_fd);
	(void)safe_close(m->wake_fd);
	free(m->kill_list);
	pthread_cond_destroy(&m->changed);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}

struct grain_run *
grain_manager_get(struct grain_manager *m, const char *id, const char *package_id)
{
	struct grain_run *run;

	pthread_mutex_lock(&m->lock);
	run = run_find(m, id);
	if (!run) {
		run = calloc(1, sizeof(*run));
		if (!run)
			goto out;
		(void)snprintf(run->id, sizeof(run->id), "%s", id);
		run->control_fd = -EBADF;
		run->state = GRAIN_STOPPED;
		run->next = m->table[bucket_of(id)];
		m->table[bucket_of(id)] = run;
		m->n_runs++;
	}
	/* The next start runs the app's current package (an update since is picked up then). */
	if (strcmp(run->package_id, package_id) != 0)
		(void)snprintf(run->package_id, sizeof(run->package_id), "%s", package_id);
	run->refs++;
out:
	pthread_mutex_unlock(&m->lock);
	return run;
}

struct grain_run *
grain_run_unref(struct grain_manager *m, struct grain_run *run)
{
	if (!run)
		return NULL;
	pthread_mutex_lock(&m->lock);
	assert(run->refs > 0);
	run->refs--;
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Start run through the launcher, lock not held; state is STARTING (ours). */
static int
run_start(struct grain_manager *m, struct grain_run *run, char *error, size_t error_size)
{
	struct ipc_grain_start start;
	struct ipc_message reply;
	int r;

	memcpy(start.grain_id, run->id, GRAIN_ID_LEN);
	memcpy(start.package_id, run->package_id, PACKAGE_ID_LEN);
	r = launcher_call(m->launcher, IPC_GRAIN_START, &start, sizeof(start), -1, &reply);
	if (r < 0) {
		if (reply.header.type == IPC_ERROR && reply.payload.error.message[0])
			(void)snprintf(error, error_size, "It could not start: %s",
				       reply.payload.error.message);
		else
			(void)snprintf(error, error_size, "It could not start (%s)", strerror(-r));
		return r;
	}
	if (reply.n_fds != 1)
		return -EBADMSG; /* launcher_call checked this; never */
	log_info("Grain %s started (pid %u, uid %u)", run->id, reply.payload.started.pid,
		 reply.payload.started.uid);
	return reply.fds[0];
}

/* Wait on m->changed until deadline (monotonic ms); false when it passed. */
static bool
wait_until(struct grain_manager *m, int64_t deadline)
{
	struct timespec ts = { .tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000 };

	return pthread_cond_timedwait(&m->changed, &m->lock, &ts) != ETIMEDOUT ||
	       monotonic_ms() < deadline;
}

int
grain_acquire(struct grain_manager *m, struct grain_run *run, int *ret_fd, bool *ret_reused,
	      uint64_t *ret_generation, char *error, size_t error_size)
{
	int64_t deadline = monotonic_ms() + CONNECT_WAIT_MAX;
	int r;

	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (run->state == GRAIN_STARTING) {
			if (!wait_until(m, deadline)) {
				r = -ETIMEDOUT;
				(void)snprintf(error, error_size,
					       "It is taking too long to start.");
				goto out;
			}
			continue;
		}
		if (run->state == GRAIN_STOPPED) {
			int64_t now = monotonic_ms();
			int fd;

			if (now < run->retry_at) {
				r = -EAGAIN;
				(void)snprintf(
					error, error_size,
					"It stopped unexpectedly (%s). Granary will try again "
					"in %" PRId64 " s.",
					run->error, (run->retry_at - now + 999) / 1000);
				goto out;
			}
			run->state = GRAIN_STARTING;
			pthread_mutex_unlock(&m->lock);
			fd = run_start(m, run, error, error_size);
			pthread_mutex_lock(&m->lock);
			if (fd < 0) {
				run->state = GRAIN_STOPPED;
				run->started = monotonic_ms();
				if (run->crashes < UINT_MAX)
					run->crashes++;
				run->retry_at = run->started + MIN(1000LL << MIN(run->crashes, 16u),
								   (int64_t)CRASH_BACKOFF_MAX);
				(void)snprintf(run->error, sizeof(run->error), "%s", error);
				(void)pthread_cond_broadcast(&m->changed);
				r = fd;
				goto out;
			}
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = run };

			if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
				r = negative_errno();
				(void)safe_close(fd);
				run->state = GRAIN_STOPPED;
				(void)snprintf(error, error_size, "It could not be watched (%s).",
					       strerror(-r));
				(void)pthread_cond_broadcast(&m->changed);
				goto out;
			}
			run->control_fd = fd;
			run->ended[0] = '\0';
			run->state = GRAIN_RUNNING;
			run->stopping = false;
			run->generation++;
			run->started = run->last_used = monotonic_ms();
			run->started_at = now_seconds();
			m->n_running++;
			(void)pthread_cond_broadcast(&m->changed);
			continue;
		}

		/* RUNNING: a pooled connection, or a new one from grain-init. */
		if (run->n_pool > 0) {
			*ret_fd = run->pool[--run->n_pool].fd;
			*ret_reused = true;
			break;
		}
		struct connect_wait w = { .id = ++run->next_connect_id, .fd = -EBADF };
		uint64_t generation = run->generation;

		r = grain_msg_send(run->control_fd, GRAIN_MSG_CONNECT, w.id, NULL, 0, -1,
				   MSG_DONTWAIT);
		if (r < 0) {
			/* Gone (the thread will see the hang-up) or flooded: either way, not now. */
			(void)snprintf(error, error_size, "It is not answering (%s).",
				       strerror(-r));
			goto out;
		}
		w.next = run->waits;
		run->waits = &w;
		while (!w.done && wait_until(m, deadline))
			;
		for (struct connect_wait **link = &run->waits; *link; link = &(*link)->next)
			if (*link == &w) {
				*link = w.next;
				break;
			}
		if (!w.done) {
			r = -ETIMEDOUT;
			(void)snprintf(error, error_size, "It is taking too long to answer.");
			goto out;
		}
		if (w.fd < 0) {
			r = w.fd;
			(void)snprintf(error, error_size, "%s%s", w.message[0] ? w.message : "",
				       w.message[0] ? "" : "It did not accept a connection.");
			goto out;
		}
		if (generation != run->generation) {
			/* Answered by a run that has ended since: useless. */
			(void)safe_close(w.fd);
			continue;
		}
		*ret_fd = w.fd;
		*ret_reused = false;
		break;
	}
	run->active++;
	run->last_used = monotonic_ms();
	*ret_generation = run->generation;
	r = 0;
out:
	pthread_mutex_unlock(&m->lock);
	return r;
}

int
grain_acquire_nowait(struct grain_manager *m, struct grain_run *run, int *ret_fd, bool *ret_watched,
		     uint64_t *ret_generation)
{
	int r = -EWOULDBLOCK;

	pthread_mutex_lock(&m->lock);
	if (run->state == GRAIN_RUNNING && run->n_pool > 0) {
		run->n_pool--;
		*ret_fd = run->pool[run->n_pool].fd;
		*ret_watched = run->pool[run->n_pool].watched;
		*ret_generation = run->generation;
		run->active++;
		run->last_used = monotonic_ms();
		r = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

void
grain_release(struct grain_manager *m, struct grain_run *run, int fd, bool reusable,
	      uint64_t generation)
{
	grain_release_watched(m, run, fd, reusable, false, generation);
}

void
grain_release_watched(struct grain_manager *m, struct grain_run *run, int fd, bool reusable,
		      bool watched, uint64_t generation)
{
	pthread_mutex_lock(&m->lock);
	assert(run->active > 0);
	run->active--;
	run->last_used = monotonic_ms();
	if (reusable && run->state == GRAIN_RUNNING && generation == run->generation &&
	    run->n_pool < POOL_MAX) {
		run->pool[run->n_pool++] = (struct pooled){ fd, watched };
		fd = -EBADF;
	}
	pthread_mutex_unlock(&m->lock);
	(void)safe_close(fd);
}

int
grain_manager_stop(struct grain_manager *m, const char *id, bool kill)
{
	struct grain_run *run;
	bool was_running = false;

	pthread_mutex_lock(&m->lock);
	run = run_find(m, id);
	if (run) {
		was_running = run->state == GRAIN_RUNNING;
		run->stopping = true;
		run_end(m, run, false, "stopped on request");
		/* Asked for: forget earlier crashes, the next request may start it. */
		run->crashes = 0;
		run->retry_at = 0;
	}
	pthread_mutex_unlock(&m->lock);
	if (kill) {
		struct ipc_message reply;
		int r = launcher_grain_call(m->launcher, IPC_GRAIN_STOP, id, &reply);

		if (r < 0)
			return r;
	}
	return was_running;
}

void
grain_manager_stop_all(struct grain_manager *m)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < TABLE_SIZE; i++)
		for (struct grain_run *run = m->table[i]; run; run = run->next) {
			run->stopping = true;
			run_end(m, run, false, "Granary is stopping");
		}
	pthread_mutex_unlock(&m->lock);
}

void
grain_manager_status(struct grain_manager *m, const char *id, struct grain_status *ret)
{
	struct grain_run *run;

	*ret = (struct grain_status){};
	pthread_mutex_lock(&m->lock);
	run = run_find(m, id);
	if (run) {
		ret->running = run->state == GRAIN_RUNNING;
		ret->generation = run->generation;
		ret->starting = run->state == GRAIN_STARTING;
		ret->connections = run->active;
		ret->idle_connections = run->n_pool;
		ret->started_at = ret->running ? run->started_at : 0;
		ret->crashes = run->crashes;
		(void)snprintf(ret->error, sizeof(ret->error), "%s", run->error);
	}
	pthread_mutex_unlock(&m->lock);
}

void
grain_manager_counts(struct grain_manager *m, unsigned *ret_running, unsigned *ret_known)
{
	pthread_mutex_lock(&m->lock);
	*ret_running = m->n_running;
	*ret_known = m->n_runs;
	pthread_mutex_unlock(&m->lock);
}
