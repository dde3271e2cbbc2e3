/* SPDX-License-Identifier: MIT */
/*
 * front_loop.c: the event loop that serves grain traffic itself, on plain
 * HTTP, and hands every other connection to libmicrohttpd.
 *
 * Why: with a thread per connection (libmicrohttpd's mode that lets the proxy
 * block) every request costs two or three context switches, and through
 * libmicrohttpd's suspend/resume (measured with a prototype: 0.95x nginx at
 * best) every request costs two epoll_ctl() calls and a wasted recv(); nginx
 * does neither. Here one thread owns an epoll set with the listening socket,
 * every client connection it serves and every app fd in use, non-blocking and
 * edge-triggered, each registered once for its life (pooled app fds stay
 * registered: PROXY_FD_WATCHED). A request costs a recv() from the client, a
 * sendmsg() to the app, a recv() of its answer and a sendmsg() to the client,
 * and a share of an epoll_wait(): nginx's count. Nothing is read that an
 * event has not announced (struct readiness). Bodies of a known length whose
 * rest is above LOOP_SPLICE_MIN move with splice(2) through a pipe, never
 * through our memory. Nothing here blocks: what may (looking a session up in
 * the database, starting a grain, asking grain-init for a connection) runs on
 * a thread of its own (a job) and comes back through an eventfd.
 *
 * A connection's first request head is peeked at (MSG_PEEK), not read: when
 * ops->serves() does not want it (the shell, the API, a head we cannot
 * parse), the untouched socket goes to ops->handoff() (libmicrohttpd's
 * MHD_add_connection()). A later request on a served connection that
 * ops->route() does not serve gets a page (421) and the connection ends.
 *
 * A client connection goes through:
 *
 *   PEEK        the first head, looked at: served here or handed off
 *   HEAD        reading a request head (also: idle between requests)
 *   WAIT        a job routes the request or gets an fd to the app
 *   SEND_HEAD   the head for the app (with the first body bytes) goes out
 *   BODY        the rest of the body: as sent (Content-Length, spliced when
 *               large) or re-framed (chunked); an answer of the app before
 *               the end of it (401, 413) is taken, and the connection ends
 *   APP_HEAD    the app's answer head (1xx skipped), parsed strictly
 *   ANSWER      our head and the body: from the buffer, streamed, spliced,
 *               or re-framed (chunked to HTTP/1.1 clients when the app's
 *               length is unknown); the app's fd goes back to the pool as
 *               soon as its answer is read to the end
 *   DISCARD     the small body of a refused request is dropped (keep-alive)
 *   TUNNEL      a WebSocket: bytes both ways, half-closes passed on
 *   LINGER      answered and closing: our side shut, the client's last
 *               bytes read and dropped, so a close never turns into a reset
 *               that eats the answer
 *
 * The rules (which fields pass, retries of pooled fds, error pages) are
 * front_proxy.c's, shared with the libmicrohttpd engine that serves grain
 * traffic over TLS.
 *
 * Timers: one per connection, of a kind (client idle, app head, app idle,
 * linger); a list per kind kept in deadline order (insertion from the tail:
 * O(1) while a kind's duration does not change), and epoll_wait()'s timeout
 * is the nearest deadline.
 *
 * Memory: a connection holds its 32 KiB input buffer; a request in progress
 * an exchange (its head for the app, the app's head and body bytes, our
 * head: ~165 KiB), from a free list of at most LOOP_FREE_MAX. Spliced bodies
 * sit in a pipe (kernel pages, LOOP_PIPE_SIZE at most).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <microhttpd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define LOOP_EVENTS	       64
#define LOOP_ACCEPT_BATCH      16
#define LOOP_REQUEST_MAX       (HTTP_REQUEST_HEAD_MAX + 2048) /* our head for the app */
#define LOOP_OUT_MAX	       (HTTP_HEAD_MAX + 4096)	      /* our head for the client */
#define LOOP_SPLICE_MIN	       (16 * 1024) /* known-length bodies left above this are spliced */
#define LOOP_HEAD_READ	       (16 * 1024) /* bytes read at once while waiting for an answer head */
#define LOOP_PIPES_KEPT	       16
#define LOOP_PIPE_SIZE	       (1024 * 1024)
#define LOOP_DRAIN_MAX	       (64 * 1024) /* a refused body up to this is read, keeping the connection */
#define LOOP_LINGER_MS	       2000
#define LOOP_TUNNEL_CHECK_MS   1000 /* between ops->cut() questions */
#define LOOP_LINGER_MAX	       (1024 * 1024)
#define LOOP_FREE_MAX	       32 /* exchanges kept for the next requests */
#define LOOP_JOBS_MAX	       256
#define LOOP_JOB_STACK	       (256 * 1024)
#define LOOP_ATTEMPTS	       4    /* fds one request may try (stale ones aside) */
#define LOOP_STALE_MAX	       64   /* pooled fds found closed, for one request */
#define LOOP_POOL_TRUSTED_MS   1000 /* a pooled fd back since this long is not polled */
#define LOOP_HEAD_TIMEOUT_MS   (120 * 1000)
#define LOOP_IDLE_TIMEOUT_MS   (300 * 1000)
#define LOOP_CLIENT_TIMEOUT_MS (60 * 1000)
#define LOOP_ERROR_MAX	       8192 /* bytes of an acquire() error (a log excerpt) */

enum client_state {
	CLIENT_PEEK,
	CLIENT_HEAD,
	CLIENT_WAIT,
	CLIENT_SEND_HEAD,
	CLIENT_BODY,
	CLIENT_APP_HEAD,
	CLIENT_ANSWER,
	CLIENT_DISCARD,
	CLIENT_TUNNEL,
	CLIENT_LINGER,
};

enum timer_kind {
	TIMER_NONE = -1,
	TIMER_CLIENT = 0, /* waiting for the client */
	TIMER_APP_HEAD,	  /* waiting for the app's answer head */
	TIMER_APP_IDLE,	  /* waiting for the app in the middle of a body */
	TIMER_LINGER,
	TIMER_TUNNEL, /* a WebSocket: time to ask ops->cut() again */
	_TIMER_MAX,
};

/* What a step of the state machine says. */
enum {
	STEP_AGAIN, /* the state changed or bytes moved: run again */
	STEP_WAIT,  /* blocked on I/O or a job: the next event runs it */
	STEP_GONE,  /* the client is freed */
};

/* What the events said of an fd we read from (edge-triggered). */
struct readiness {
	bool readable; /* an event since the last read that came back short: try */
	bool eof;      /* EPOLLRDHUP seen: the end may be there behind the data */
};

/* Bytes to send, possibly in pieces; iov[i..n) is what is left. */
struct pending {
	struct iovec iov[4];
	unsigned i, n;
	char line[24]; /* a chunk-size line */
};

struct exchange {
	struct exchange *next_free;
	struct http_request_head req; /* strings inside the client's in[] until the head is sent */
	struct loop_route route;
	bool routed;
	bool head_request, repeatable, websocket;
	bool chunked_upload; /* the client's body is chunked: re-framed to the app */
	bool upload_done;    /* every body byte (and the last chunk) went to the app */
	uint64_t body_left;  /* Content-Length bytes not taken from the client yet */
	uint64_t body_sent;
	struct http_chunked upload;
	size_t first_body; /* body bytes sent with the head */
	size_t head_sent;  /* bytes of the head and first_body sent on this fd */

	/* The app's fd. */
	int fd; /* owned until released, or -EBADF */
	bool reused, got_bytes, app_hup;
	struct readiness app_ready;
	unsigned attempts, stale;
	struct pending to_app;
	size_t req_len;

	/* The answer. */
	struct http_response_head head;
	enum http_framing framing;
	bool app_keep_alive;
	bool reframe;	      /* chunked to the client */
	bool close_delimited; /* to the client: its end is our close */
	bool answer_read;     /* the app's answer is read to its end: the fd is back */
	bool last_chunk;      /* "0\r\n\r\n" is still to be sent */
	bool early_answer;
	uint64_t remaining;	     /* HTTP_FRAMING_LENGTH: body bytes not read from the app yet */
	struct http_chunked chunked; /* HTTP_FRAMING_CHUNKED: the app's body */
	size_t start, end;	     /* bytes of buf: the app's, not sent to the client yet */
	size_t raw_start, raw_end;   /* HTTP_FRAMING_CHUNKED: bytes of buf not decoded yet */
	size_t scanned;
	struct pending to_client;
	int pipe[2];   /* splice: owned, or -EBADF */
	size_t piped;  /* bytes in the pipe */
	char *page;    /* owned: a page of ours being sent */
	char *request; /* LOOP_REQUEST_MAX: our head for the app */
	char *out;     /* LOOP_OUT_MAX: our head for the client */
	char buf[HTTP_HEAD_MAX];
};

struct client {
	struct loop *loop;
	struct client *prev, *next;		/* in loop->clients */
	struct client *timer_prev, *timer_next; /* in loop->timers[timer] */
	enum timer_kind timer;
	int64_t deadline;
	int fd; /* owned */
	enum client_state state;
	struct job *job; /* running for us: we are freed when it returns */
	bool dead;	 /* closed while a job ran */
	bool closing;	 /* no further request on this connection */
	struct readiness ready;
	bool client_eof, client_hup, app_eof, app_shut, client_shut; /* tunnels, linger */
	bool progress;						     /* bytes moved in this run */
	uint64_t discard;	      /* CLIENT_DISCARD: body bytes still to drop; LINGER: budget */
	struct exchange *x;	      /* the current request, or NULL */
	struct sockaddr_storage addr; /* the peer, for handoff() */
	socklen_t addr_len;
	size_t in_start, in_end, scanned;
	char in[HTTP_REQUEST_HEAD_MAX];
};

enum job_kind {
	JOB_ROUTE,
	JOB_ACQUIRE,
};

struct job {
	struct job *next;
	struct loop *loop;
	struct client *c;
	enum job_kind kind;
	int r;
	int fd;
	bool reused;
	struct loop_route route;
	char error[LOOP_ERROR_MAX];
};

/* What the loop knows of an fd number. */
struct fd_slot {
	struct client *client; /* the client using it (its own fd, or an app's), or NULL */
	int64_t released_at;   /* an app fd of ours: when it went back to the pool (ms) */
	bool idle_event;       /* a hang-up came while no client used it: the app closed it */
};

struct loop {
	int epoll_fd; /* owned */
	int wake_fd;  /* owned: eventfd, jobs done or stop */
	int listen_fd;
	bool listening;	      /* listen_fd is in the epoll set */
	int64_t accept_again; /* after EMFILE: when to listen again (ms) */
	const struct loop_ops *ops;
	void *userdata;
	unsigned client_timeout_ms, max_clients, n_clients;
	struct client *clients;
	struct client *timers[_TIMER_MAX], *timers_tail[_TIMER_MAX];
	struct fd_slot *fds; /* owned: by fd number */
	size_t n_fds;
	struct exchange *free_exchanges;
	unsigned n_free;
	int pipes[LOOP_PIPES_KEPT][2]; /* owned: empty pipes for the next splices */
	unsigned n_pipes;
	int64_t now; /* ms, CLOCK_MONOTONIC, at the last wake-up */
	time_t date_at;
	char date[40]; /* "Date: ..." of date_at */
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;	       /* the fields below */
	struct job *done, *queued;     /* finished jobs; jobs waiting for a thread */
	unsigned jobs_running, n_jobs; /* threads running; jobs not returned to the loop */
	bool stop;		       /* atomic */
};

static int step(struct client *c);
static int answer_local(struct client *c, unsigned status, const char *title, const char *detail);
static int exchange_connect(struct client *c);

static int64_t
clock_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fds and timers ----------------------------------------------------------- */

static struct fd_slot *
slot_of(struct loop *l, int fd)
{
	return fd >= 0 && (size_t)fd < l->n_fds ? &l->fds[fd] : NULL;
}

/*
 * Events of fd go to c from now on. registered: fd is in the set already
 * (a pooled app fd we watched before: PROXY_FD_WATCHED); else it is added
 * (EEXIST is fine: a pooled fd we watched without knowing it).
 */
static int
watch(struct loop *l, int fd, struct client *c, bool registered)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u64 = (uint64_t)fd,
	};

	if ((size_t)fd >= l->n_fds) {
		size_t n = MAX((size_t)fd + 1, l->n_fds * 2);
		struct fd_slot *p = reallocarray(l->fds, n, sizeof(*p));

		if (!p)
			return -ENOMEM;
		memset(p + l->n_fds, 0, (n - l->n_fds) * sizeof(*p));
		l->fds = p;
		l->n_fds = n;
	}
	if (!registered && epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST)
		return -errno;
	l->fds[fd] = (struct fd_slot){ .client = c };
	return 0;
}

static void
unwatch(struct loop *l, int fd)
{
	struct fd_slot *s = slot_of(l, fd);

	if (s)
		*s = (struct fd_slot){ .released_at = l->now };
}

static unsigned
timer_duration(struct client *c, enum timer_kind kind)
{
	const struct proxy_params *p = c->x ? c->x->route.params : NULL;

	switch (kind) {
	case TIMER_APP_HEAD:
		return p && p->head_timeout_ms ? p->head_timeout_ms : LOOP_HEAD_TIMEOUT_MS;
	case TIMER_APP_IDLE:
		return p && p->idle_timeout_ms ? p->idle_timeout_ms : LOOP_IDLE_TIMEOUT_MS;
	case TIMER_LINGER:
		return LOOP_LINGER_MS;
	case TIMER_TUNNEL:
		return LOOP_TUNNEL_CHECK_MS;
	default:
		return c->loop->client_timeout_ms;
	}
}

static void
timer_remove(struct client *c)
{
	struct loop *l = c->loop;

	if (c->timer == TIMER_NONE)
		return;
	if (c->timer_prev)
		c->timer_prev->timer_next = c->timer_next;
	else
		l->timers[c->timer] = c->timer_next;
	if (c->timer_next)
		c->timer_next->timer_prev = c->timer_prev;
	else
		l->timers_tail[c->timer] = c->timer_prev;
	c->timer_prev = c->timer_next = NULL;
	c->timer = TIMER_NONE;
}

/* Wait for kind's timeout from now (or keep the deadline when nothing moved since it was set). */
static void
timer_set(struct client *c, enum timer_kind kind)
{
	struct loop *l = c->loop;
	struct client *after;

	if (kind == c->timer && !c->progress)
		return;
	timer_remove(c);
	if (kind == TIMER_NONE)
		return;
	c->timer = kind;
	c->deadline = l->now + timer_duration(c, kind);
	after = l->timers_tail[kind];
	while (after && after->deadline > c->deadline)
		after = after->timer_prev;
	c->timer_prev = after;
	c->timer_next = after ? after->timer_next : l->timers[kind];
	if (c->timer_next)
		c->timer_next->timer_prev = c;
	else
		l->timers_tail[kind] = c;
	if (after)
		after->timer_next = c;
	else
		l->timers[kind] = c;
}

/* Wait for an event, under kind's timeout. */
static int
wait_for(struct client *c, enum timer_kind kind)
{
	timer_set(c, kind);
	return STEP_WAIT;
}

/* ---- sending --------------------------------------------------------------------- */

static void
pending_add(struct pending *p, const void *data, size_t len)
{
	assert(p->n < ELEMENTSOF(p->iov));
	if (len > 0)
		p->iov[p->n++] = (struct iovec){ (void *)data, len };
}

static void
pending_reset(struct pending *p)
{
	p->i = p->n = 0;
}

static bool
pending_empty(const struct pending *p)
{
	return p->i == p->n;
}

/* A chunk of len bytes at data, framed ("1f4\r\n" data "\r\n"). */
static void
pending_chunk(struct pending *p, const void *data, size_t len)
{
	if (len == 0)
		return;
	pending_add(p, p->line, (size_t)snprintf(p->line, sizeof(p->line), "%zx\r\n", len));
	pending_add(p, data, len);
	pending_add(p, "\r\n", 2);
}

/* Send what p holds: 0 when all is gone, -EAGAIN, or -errno. *ret_sent: bytes sent now. */
static int
pending_send(int fd, struct pending *p, size_t *ret_sent)
{
	size_t total = 0;

	while (p->i < p->n) {
		struct msghdr m = { .msg_iov = p->iov + p->i, .msg_iovlen = p->n - p->i };
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			if (ret_sent)
				*ret_sent = total;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		total += (size_t)w;
		while (p->i < p->n && (size_t)w >= p->iov[p->i].iov_len) {
			w -= (ssize_t)p->iov[p->i].iov_len;
			p->i++;
		}
		if (p->i < p->n) {
			p->iov[p->i].iov_base = (char *)p->iov[p->i].iov_base + w;
			p->iov[p->i].iov_len -= (size_t)w;
		}
	}
	if (ret_sent)
		*ret_sent = total;
	return 0;
}

/*
 * Read what is there. Edge-triggered: once a read came back short (or said
 * EAGAIN), the next event says when to try again, and until then no syscall
 * is spent on it; unless the peer's FIN was announced (EPOLLRDHUP), which
 * may sit behind the data without a new event (nginx's pending_eof). 0: the
 * other side closed.
 */
static ssize_t
recv_some(int fd, struct readiness *ready, void *buf, size_t size)
{
	if (!ready->readable)
		return -EAGAIN;
	for (;;) {
		ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);

		if (n >= 0) {
			if ((size_t)n < size && !ready->eof)
				ready->readable = false;
			return n;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			ready->readable = false;
			return -EAGAIN;
		}
		return -errno;
	}
}

/* n in decimal into buf (24 bytes), NUL-terminated: snprintf() costs more per answer. */
static const char *
decimal(char buf[24], uint64_t n)
{
	char *p = buf + 23;

	*p = '\0';
	do
		*--p = (char)('0' + n % 10);
	while ((n /= 10) > 0);
	return p;
}

/* "HTTP/1.1 200 OK\r\n" for status. */
static void
put_status_line(struct proxy_writer *w, unsigned status)
{
	char code[24];

	proxy_put(w, "HTTP/1.1 ", 9);
	proxy_put_str(w, decimal(code, status));
	proxy_put(w, " ", 1);
	proxy_put_str(w, MHD_get_reason_phrase_for(status));
	proxy_put(w, "\r\n", 2);
}

/* The Date field, as every answer of an origin server carries it (RFC 9110 6.6.1). */
static const char *
date_field(struct loop *l)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != l->date_at && gmtime_r(&now, &tm)) {
		l->date_at = now;
		(void)strftime(l->date, sizeof(l->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
			       &tm);
	}
	return l->date;
}

/* ---- exchanges ------------------------------------------------------------------- */

static struct exchange *
exchange_new(struct loop *l)
{
	struct exchange *x = l->free_exchanges;

	if (x) {
		l->free_exchanges = x->next_free;
		l->n_free--;
	} else {
		/* Not zeroed: the buffers are written before they are read. */
		x = malloc(sizeof(*x) + LOOP_REQUEST_MAX + LOOP_OUT_MAX);
		if (!x)
			return NULL;
	}
	memset(x, 0, offsetof(struct exchange, buf));
	x->fd = -EBADF;
	x->pipe[0] = x->pipe[1] = -EBADF;
	x->request = (char *)(x + 1);
	x->out = x->request + LOOP_REQUEST_MAX;
	return x;
}

/* Give the app's fd back: to the pool when reusable. */
static void
upstream_release(struct client *c, bool reusable)
{
	struct exchange *x = c->x;

	if (!x || x->fd < 0)
		return;
	/* An app that hung up right behind its answer does not keep the connection. */
	if (reusable && x->app_ready.eof) {
		reusable = false;
		PROXY_STAT_ADD(upstream_stale, 1);
	}
	unwatch(c->loop, x->fd);
	x->route.params->ops->release(x->route.params->userdata, x->fd,
				      PROXY_FD_WATCHED | (reusable ? PROXY_FD_REUSABLE : 0));
	x->fd = -EBADF;
}

static void
exchange_free(struct client *c)
{
	struct loop *l = c->loop;
	struct exchange *x = c->x;

	if (!x)
		return;
	upstream_release(c, false);
	if (x->routed && l->ops->route_done)
		l->ops->route_done(l->userdata, &x->route);
	free(x->route.body);
	free(x->route.fields);
	free(x->page);
	if (x->pipe[0] >= 0 && x->piped == 0 && l->n_pipes < LOOP_PIPES_KEPT) {
		memcpy(l->pipes[l->n_pipes++], x->pipe, sizeof(x->pipe));
		x->pipe[0] = x->pipe[1] = -EBADF;
	}
	(void)safe_close(x->pipe[0]);
	(void)safe_close(x->pipe[1]);
	c->x = NULL;
	if (l->n_free < LOOP_FREE_MAX) {
		x->next_free = l->free_exchanges;
		l->free_exchanges = x;
		l->n_free++;
	} else
		free(x);
}

/* ---- clients ------------------------------------------------------------------ */

static void
client_free(struct client *c)
{
	struct loop *l = c->loop;

	if (c->state == CLIENT_TUNNEL)
		PROXY_STAT_ADD(tunnels, (uint64_t)-1);
	c->state = CLIENT_WAIT;
	timer_remove(c);
	if (c->fd >= 0) {
		unwatch(l, c->fd);
		(void)close(c->fd);
		c->fd = -EBADF;
	}
	if (c->job) {
		/* The job's thread still uses c (and the exchange's route): freed when it returns. */
		c->dead = true;
		return;
	}
	exchange_free(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		l->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	l->n_clients--;
	free(c);
}

/* Close the connection now (it ended, failed, or timed out). */
static int
client_close(struct client *c)
{
	client_free(c);
	return STEP_GONE;
}

/* The answer is out: the next request, or the end of the connection. */
static int
answer_done(struct client *c)
{
	exchange_free(c);
	if (c->closing) {
		/* Our side ends; the client's last bytes are read and dropped (no reset). */
		(void)shutdown(c->fd, SHUT_WR);
		c->discard = LOOP_LINGER_MAX;
		c->state = CLIENT_LINGER;
		c->progress = true;
		return STEP_AGAIN;
	}
	c->state = c->discard > 0 ? CLIENT_DISCARD : CLIENT_HEAD;
	c->scanned = 0;
	c->progress = true;
	return STEP_AGAIN;
}

/*
 * What becomes of the rest of the request's body when we answer it ourselves:
 * small and announced, it is read and dropped after the answer (the
 * connection lives on); anything else ends the connection after the answer.
 */
static void
body_dispose(struct client *c)
{
	struct exchange *x = c->x;

	if (x->upload_done || (!x->chunked_upload && x->body_left == 0))
		return;
	if (x->chunked_upload || x->body_left > LOOP_DRAIN_MAX || x->body_sent > 0 ||
	    (x->req.expect_continue && x->body_left > 0))
		c->closing = true;
	else
		c->discard = x->body_left;
	x->body_left = 0;
	x->upload_done = true;
}

/* Start sending our answer: the head in x->out (len bytes), then body (body_len bytes). */
static int
answer_send(struct client *c, size_t len, const char *body, size_t body_len)
{
	struct exchange *x = c->x;

	pending_reset(&x->to_client);
	pending_add(&x->to_client, x->out, len);
	pending_add(&x->to_client, body, body_len);
	x->answer_read = true;
	c->state = CLIENT_ANSWER;
	c->progress = true;
	return STEP_AGAIN;
}

/*
 * An answer of ours: an error page of the proxy (title, detail: see
 * proxy_error_page()), status on its own when both are NULL and the route
 * gave a page. The app's fd, if any, is released as not reusable.
 */
static int
answer_local(struct client *c, unsigned status, const char *title, const char *detail)
{
	struct exchange *x = c->x;
	const struct proxy_params *params = x->route.params;
	struct proxy_writer w = { .buf = x->out, .size = LOOP_OUT_MAX };
	_cleanup_(buf_release) struct buf page = BUF_INIT;
	const char *type = "text/html; charset=utf-8", *body;
	char length[64];
	size_t body_len;

	upstream_release(c, false);
	body_dispose(c);
	if (x->route.body || (!title && !detail && !params)) {
		body = x->route.body ? x->route.body : "";
		body_len = x->route.body ? x->route.body_len : 0;
		type = x->route.content_type ? x->route.content_type : type;
		c->closing = c->closing || x->route.close;
	} else {
		if (proxy_error_page(&page, status, title, detail) < 0)
			return client_close(c);
		free(x->page);
		x->page = buf_steal(&page);
		body = x->page;
		body_len = strlen(x->page);
	}
	c->closing = c->closing || !http_request_keeps_alive(&x->req);
	put_status_line(&w, status);
	proxy_put_str(&w, date_field(c->loop));
	proxy_put_field(&w, "Content-Type", type);
	proxy_put_field(&w, "Content-Length", decimal(length, body_len));
	proxy_put_field(&w, "Cache-Control", "no-store");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		proxy_put_field(&w, "Retry-After", "2");
	if (c->closing)
		proxy_put_field(&w, "Connection", "close");
	if (x->route.fields && !params)
		proxy_put_str(&w, x->route.fields);
	if (params)
		proxy_put_security_fields(&w, params, false);
	else
		proxy_put_field(&w, "X-Content-Type-Options", "nosniff");
	proxy_put(&w, "\r\n", 2);
	if (w.overflow)
		return client_close(c);
	return answer_send(c, w.len, x->head_request ? NULL : body, x->head_request ? 0 : body_len);
}

/* ---- jobs: what may block, on threads of their own ------------------------------- */

static void *
job_main(void *arg)
{
	struct job *j = arg;
	struct loop *l = j->loop;
	struct exchange *x = j->c->x;

	if (j->kind == JOB_ROUTE)
		j->r = l->ops->route(l->userdata, &x->req, (const struct sockaddr *)&j->c->addr,
				     true, &j->route);
	else
		j->r = x->route.params->ops->acquire(x->route.params->userdata, &j->fd, &j->reused,
						     j->error, sizeof(j->error));
	pthread_mutex_lock(&l->lock);
	j->next = l->done;
	l->done = j;
	l->jobs_running--;
	pthread_mutex_unlock(&l->lock);
	(void)eventfd_write(l->wake_fd, 1);
	return NULL;
}

/* Start a thread for j (lock held); false: none could be started. */
static bool
job_thread(struct job *j)
{
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	(void)pthread_attr_init(&attr);
	(void)pthread_attr_setstacksize(&attr, LOOP_JOB_STACK);
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&thread, &attr, job_main, j);
	(void)pthread_attr_destroy(&attr);
	if (r != 0) {
		log_warning_errno(-r, "Failed to start a thread for a request: %m");
		return false;
	}
	j->loop->jobs_running++;
	return true;
}

static int
job_start(struct client *c, enum job_kind kind)
{
	struct loop *l = c->loop;
	struct job *j = calloc(1, sizeof(*j));
	bool started = true;

	if (!j)
		return answer_local(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Granary is overloaded", NULL);
	*j = (struct job){ .loop = l, .c = c, .kind = kind, .fd = -EBADF };
	pthread_mutex_lock(&l->lock);
	if (l->jobs_running < LOOP_JOBS_MAX)
		started = job_thread(j);
	else {
		/* Started when another one returns. */
		j->next = l->queued;
		l->queued = j;
	}
	if (started)
		l->n_jobs++;
	pthread_mutex_unlock(&l->lock);
	if (!started) {
		free(j);
		return answer_local(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Granary is overloaded", NULL);
	}
	c->job = j;
	c->state = CLIENT_WAIT;
	return wait_for(c, TIMER_NONE);
}

static int after_route(struct client *c);
static int exchange_take_fd(struct client *c, int fd, unsigned flags);

/* A job came back (loop thread). */
static void
job_done(struct job *j)
{
	struct client *c = j->c;
	struct exchange *x = c->x;
	int r;

	c->job = NULL;
	if (c->dead) {
		if (j->kind == JOB_ROUTE && j->r >= 0) {
			x->route = j->route;
			x->routed = true;
		} else if (j->kind == JOB_ACQUIRE && j->r >= 0)
			x->route.params->ops->release(x->route.params->userdata, j->fd, 0);
		client_free(c);
		free(j);
		return;
	}
	if (j->kind == JOB_ROUTE) {
		if (j->r >= 0) {
			x->route = j->route;
			x->routed = true;
			r = after_route(c);
		} else
			r = answer_local(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error",
					 "The request could not be routed.");
	} else if (j->r >= 0)
		r = exchange_take_fd(c, j->fd, j->reused ? PROXY_FD_REUSED : 0);
	else
		/* The grain manager's sentences ("It could not start: ...") are the page. */
		r = answer_local(c, MHD_HTTP_SERVICE_UNAVAILABLE, "The app is not available",
				 j->error[0] ? j->error : "");
	free(j);
	if (r != STEP_GONE) {
		c->progress = true;
		while (r == STEP_AGAIN)
			r = step(c);
	}
}

static void
jobs_collect(struct loop *l)
{
	struct job *done;
	eventfd_t value;

	(void)eventfd_read(l->wake_fd, &value);
	pthread_mutex_lock(&l->lock);
	done = l->done;
	l->done = NULL;
	while (l->queued && l->jobs_running < LOOP_JOBS_MAX) {
		struct job *j = l->queued;

		l->queued = j->next;
		if (!job_thread(j)) {
			/* Not now: back in front, tried again when the next job returns. */
			j->next = l->queued;
			l->queued = j;
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	while (done) {
		struct job *j = done;

		done = j->next;
		pthread_mutex_lock(&l->lock);
		l->n_jobs--;
		pthread_mutex_unlock(&l->lock);
		job_done(j);
	}
}

/* ---- the request --------------------------------------------------------------- */

/* The head for the app, from the client's (in c->in), into x->request. */
static int
request_build(struct client *c)
{
	struct exchange *x = c->x;
	const struct http_request_head *h = &x->req;
	const struct proxy_params *params = x->route.params;
	struct proxy_writer w = { .buf = x->request, .size = LOOP_REQUEST_MAX };
	char n[24];

	proxy_put_str(&w, h->method);
	proxy_put(&w, " ", 1);
	proxy_put_str(&w, h->target);
	proxy_put(&w, " HTTP/1.1\r\n", 11);
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *name = h->headers[i].name, *value = h->headers[i].value;
		size_t len = strlen(name);

		if (proxy_request_field_dropped(name, len, h->connection, h->n_connection))
			continue;
		proxy_put_request_field(&w, params, name, len, value, strlen(value));
	}
	if (x->websocket) {
		proxy_put_field(&w, "Connection", "Upgrade");
		proxy_put_field(&w, "Upgrade", h->upgrade);
	}
	if (x->chunked_upload)
		proxy_put_field(&w, "Transfer-Encoding", "chunked");
	else if (h->has_content_length) {
		proxy_put_field(&w, "Content-Length", decimal(n, h->content_length));
	}
	proxy_put_granary_fields(&w, params);
	proxy_put(&w, "\r\n", 2);
	if (w.overflow)
		return -E2BIG;
	x->req_len = w.len;
	return 0;
}

static const char *
request_field(const struct http_request_head *h, const char *name)
{
	for (size_t i = 0; i < h->n_headers; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

/* The request is routed: a page of the route, a refusal, or on to the app. */
static int
after_route(struct client *c)
{
	struct exchange *x = c->x;
	const struct proxy_params *params = x->route.params;
	const char *title, *detail;

	if (!params)
		return answer_local(c, x->route.status, NULL, NULL);
	PROXY_STAT_ADD(requests, 1);
	if (proxy_method_is_safe(x->req.method) && !x->websocket)
		title = proxy_refusal(params, x->req.method, false, NULL, NULL, &detail);
	else
		title = proxy_refusal(params, x->req.method, x->websocket,
				      request_field(&x->req, "Origin"),
				      request_field(&x->req, "Sec-Fetch-Site"), &detail);
	if (title)
		return answer_local(c, MHD_HTTP_FORBIDDEN, title, detail);
	if (!proxy_params_safe(params))
		return answer_local(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error",
				    "The request cannot be passed on.");
	if (request_build(c) < 0)
		return answer_local(c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
				    "Request header fields too large", NULL);
	return exchange_connect(c);
}

/* A complete head of size bytes at in_start: the request starts. */
static int
request_begin(struct client *c, size_t size)
{
	struct loop *l = c->loop;
	struct exchange *x;
	struct http_request_head *h;
	int r;

	x = c->x = exchange_new(l);
	if (!x)
		return client_close(c);
	h = &x->req;
	r = http_request_head_parse(c->in + c->in_start, size, h);
	c->in_start += size;
	c->scanned = 0;
	if (r < 0) {
		/* Nothing of it can be trusted, its body's length neither. */
		c->closing = true;
		x->upload_done = true;
		return answer_local(c,
				    r == -E2BIG ? MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE
						: MHD_HTTP_BAD_REQUEST,
				    "Bad request", "The request could not be read.");
	}
	x->head_request = strcmp(h->method, "HEAD") == 0;
	x->repeatable = proxy_method_is_repeatable(h->method);
	x->websocket = strcmp(h->method, "GET") == 0 && h->upgrade && h->connection_upgrade &&
		       http_list_has_token(h->upgrade, "websocket");
	x->chunked_upload = h->chunked;
	x->body_left = h->has_content_length ? h->content_length : 0;
	x->upload_done = !x->chunked_upload && x->body_left == 0;
	if (!http_request_keeps_alive(h))
		c->closing = true;
	r = l->ops->route(l->userdata, h, (const struct sockaddr *)&c->addr, false, &x->route);
	if (r == -EWOULDBLOCK)
		return job_start(c, JOB_ROUTE);
	if (r < 0)
		return answer_local(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error",
				    "The request could not be routed.");
	x->routed = true;
	return after_route(c);
}

/*
 * A pooled fd the app closed (or wrote to) while it was idle is no use. One
 * we watched all along says so by a hang-up event (idle_event); one that came back
 * a moment ago cannot have been closed for idleness, and one that was closed
 * for another reason has said so in its last answer (Connection: close).
 * Others are asked (poll()).
 */
static bool
upstream_stale(struct loop *l, int fd, unsigned flags)
{
	struct fd_slot *s = flags & PROXY_FD_WATCHED ? slot_of(l, fd) : NULL;
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	if (!(flags & PROXY_FD_REUSED))
		return false;
	if (s && s->idle_event)
		return true;
	if (s && l->now - s->released_at < LOOP_POOL_TRUSTED_MS)
		return false;
	return poll(&p, 1, 0) != 0;
}

/* Get an fd to the app: from the pool now, or from a job. */
static int
exchange_connect(struct client *c)
{
	struct exchange *x = c->x;
	const struct proxy_upstream_ops *ops = x->route.params->ops;

	int fd = -EBADF, r;
	unsigned flags = 0;

	if (x->attempts >= LOOP_ATTEMPTS || x->stale >= LOOP_STALE_MAX)
		return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				    "Its connections kept failing.");
	r = ops->acquire_nowait ? ops->acquire_nowait(x->route.params->userdata, &fd, &flags)
				: -EWOULDBLOCK;
	if (r == -EWOULDBLOCK)
		return job_start(c, JOB_ACQUIRE);
	if (r < 0)
		return answer_local(c, MHD_HTTP_SERVICE_UNAVAILABLE, "The app is not available",
				    "");
	return exchange_take_fd(c, fd, flags);
}

/* fd leads to the app: send the head (and the body bytes we have). */
static int
exchange_take_fd(struct client *c, int fd, unsigned flags)
{
	struct exchange *x = c->x;
	bool reused = flags & PROXY_FD_REUSED;
	int r;

	if (upstream_stale(c->loop, fd, flags)) {
		x->route.params->ops->release(x->route.params->userdata, fd, 0);
		x->stale++;
		PROXY_STAT_ADD(upstream_stale, 1);
		return exchange_connect(c);
	}
	x->fd = fd;
	x->reused = reused;
	x->attempts++;
	x->got_bytes = x->app_hup = false;
	x->app_ready = (struct readiness){ 0 };
	x->start = x->end = x->scanned = x->head_sent = 0;
	if (reused)
		PROXY_STAT_ADD(upstream_reused, 1);
	else {
		int one = 1;

		/* Heads, chunk framing and small answers are separate writes:
		 * Nagle would hold them for the previous one's ACK. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		PROXY_STAT_ADD(upstream_fresh, 1);
	}
	if (!(flags & PROXY_FD_WATCHED)) {
		/* Once per fd: splice() waits on a socket unless the socket itself is
		 * non-blocking (PROXY_FD_WATCHED ones are, since we watched them). */
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	}
	r = watch(c->loop, fd, c, flags & PROXY_FD_WATCHED);
	if (r < 0) {
		x->fd = -EBADF;
		x->route.params->ops->release(x->route.params->userdata, fd, 0);
		return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				    "The connection to it failed.");
	}
	/* The head, and with it the body bytes that came with the client's head. */
	pending_reset(&x->to_app);
	pending_add(&x->to_app, x->request, x->req_len);
	x->first_body = 0;
	if (!x->chunked_upload && x->body_left > 0) {
		x->first_body = (size_t)MIN(x->body_left, (uint64_t)(c->in_end - c->in_start));
		pending_add(&x->to_app, c->in + c->in_start, x->first_body);
	}
	c->state = CLIENT_SEND_HEAD;
	c->progress = true;
	return STEP_AGAIN;
}

/* The fd failed before any answer: another one, if the request may go again. */
static int
exchange_failed(struct client *c, int error, bool on_read)
{
	struct exchange *x = c->x;

	if (proxy_retry_allowed(x->reused, x->got_bytes, x->body_sent, x->repeatable, error,
				on_read)) {
		upstream_release(c, false);
		PROXY_STAT_ADD(retries, 1);
		return exchange_connect(c);
	}
	if (on_read)
		return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				    "It closed the connection without a complete answer.");
	return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
			    "The connection to it failed.");
}

static int
step_send_head(struct client *c)
{
	struct exchange *x = c->x;
	size_t sent = 0;
	int r;

	r = pending_send(x->fd, &x->to_app, &sent);
	if (sent > 0)
		c->progress = true;
	x->head_sent += sent;
	if (r == -EAGAIN)
		return wait_for(c, TIMER_APP_IDLE);
	if (r < 0) {
		/* Body bytes that went out forbid sending the request again. */
		x->body_sent += x->head_sent > x->req_len ? x->head_sent - x->req_len : 0;
		return exchange_failed(c, r, false);
	}
	c->in_start += x->first_body;
	x->body_left -= x->first_body;
	x->body_sent += x->first_body;
	x->upload_done = !x->chunked_upload && x->body_left == 0;
	if (!x->upload_done && x->req.expect_continue) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		/* Into an empty socket buffer: it fits (if not, the client sends after a wait). */
		(void)send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	c->state = x->upload_done ? CLIENT_APP_HEAD : CLIENT_BODY;
	return STEP_AGAIN;
}

/* The app has something to say before the end of the body: take its answer. */
static int
early_answer(struct client *c)
{
	struct exchange *x = c->x;

	x->early_answer = true;
	x->upload_done = true;
	/* Where the next request would start in what the client still sends is unknown. */
	c->closing = true;
	c->state = CLIENT_APP_HEAD;
	return STEP_AGAIN;
}

/* The exchange's pipe for splice(), and the app's fd non-blocking. */
static int
pipe_ensure(struct loop *l, struct exchange *x)
{
	if (x->pipe[0] < 0) {
		x->piped = 0;
		if (l->n_pipes > 0) {
			memcpy(x->pipe, l->pipes[--l->n_pipes], sizeof(x->pipe));
			return 0;
		}
		if (pipe2(x->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
			return -errno;
		/* Fewer, larger splices; the default (64 KiB) does if the limit is lower. */
		(void)fcntl(x->pipe[1], F_SETPIPE_SZ, LOOP_PIPE_SIZE);
	}
	return 0;
}

/*
 * Move up to *left bytes from src to dst through x's pipe. 0: nothing moved
 * (wait), 1: some moved, -EPIPE: src ended early, other -errno: dst failed.
 * *ret_dst_blocked: dst took nothing (full).
 */
static int
splice_some(struct exchange *x, int src, struct readiness *ready, int dst, uint64_t *left,
	    bool *ret_dst_blocked)
{
	size_t room = LOOP_PIPE_SIZE;
	bool moved = false;
	ssize_t n;

	*ret_dst_blocked = false;
	if (*left > x->piped && ready->readable && x->piped < room) {
		n = splice(src, NULL, x->pipe[1], NULL,
			   (size_t)MIN(*left - x->piped, (uint64_t)(room - x->piped)),
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == 0)
			return -EPIPE;
		if (n > 0) {
			x->piped += (size_t)n;
			moved = true;
		} else if (errno == EAGAIN)
			ready->readable = false;
		else if (errno != EINTR)
			return -EPIPE;
	}
	if (x->piped > 0) {
		n = splice(x->pipe[0], NULL, dst, NULL, x->piped,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK |
				   (*left > x->piped ? SPLICE_F_MORE : 0));
		if (n > 0) {
			x->piped -= (size_t)n;
			*left -= (uint64_t)n;
			moved = true;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		else
			*ret_dst_blocked = true;
	}
	return moved;
}

/* Whether the app said something (or hung up) while we still send the body. */
static bool
app_spoke(struct client *c)
{
	struct exchange *x = c->x;
	ssize_t n;

	n = recv_some(x->fd, &x->app_ready, x->buf, sizeof(x->buf));
	if (n == -EAGAIN)
		return false;
	if (n > 0) {
		x->got_bytes = true;
		x->end = (size_t)n;
	}
	return true;
}

static int
step_body(struct client *c)
{
	struct exchange *x = c->x;
	size_t sent = 0;
	ssize_t n;
	int r;

	if (app_spoke(c))
		return early_answer(c);
	if (!pending_empty(&x->to_app)) {
		r = pending_send(x->fd, &x->to_app, &sent);
		if (sent > 0)
			c->progress = true;
		if (r == -EAGAIN)
			return wait_for(c, TIMER_APP_IDLE);
		if (r < 0)
			return early_answer(c); /* its answer, or a 502 when it has none */
		return STEP_AGAIN;
	}
	if (x->upload_done) {
		c->state = CLIENT_APP_HEAD;
		return STEP_AGAIN;
	}
	if (!x->chunked_upload) {
		size_t avail = c->in_end - c->in_start;

		if (avail > 0) {
			size_t k = (size_t)MIN((uint64_t)avail, x->body_left);

			pending_reset(&x->to_app);
			pending_add(&x->to_app, c->in + c->in_start, k);
			c->in_start += k;
			x->body_left -= k;
			x->body_sent += k;
			x->upload_done = x->body_left == 0;
			return STEP_AGAIN;
		}
		if (x->body_left >= LOOP_SPLICE_MIN || x->piped > 0) {
			bool app_full;

			r = pipe_ensure(c->loop, x);
			if (r < 0)
				return answer_local(c, MHD_HTTP_BAD_GATEWAY,
						    "The app did not answer properly",
						    "The connection to it failed.");
			r = splice_some(x, c->fd, &c->ready, x->fd, &x->body_left, &app_full);
			if (r == -EPIPE)
				return client_close(c); /* the client went away mid-body */
			if (r < 0)
				return early_answer(c);
			x->body_sent = x->req.content_length - x->body_left;
			x->upload_done = x->body_left == 0;
			if (r > 0) {
				c->progress = true;
				return STEP_AGAIN;
			}
			return wait_for(c, app_full ? TIMER_APP_IDLE : TIMER_CLIENT);
		}
	} else {
		const char *data;
		size_t len;

		n = http_chunked_decode(&x->upload, c->in + c->in_start, c->in_end - c->in_start,
					SIZE_MAX, &data, &len);
		if (n < 0) {
			c->closing = true;
			return answer_local(c, MHD_HTTP_BAD_REQUEST, "Bad request",
					    "The request's chunked body is malformed.");
		}
		c->in_start += (size_t)n;
		pending_reset(&x->to_app);
		pending_chunk(&x->to_app, data, len);
		x->body_sent += len;
		if (http_chunked_done(&x->upload)) {
			pending_add(&x->to_app, "0\r\n\r\n", 5);
			x->upload_done = true;
		}
		if (n > 0 || len > 0)
			return STEP_AGAIN;
	}
	/* More from the client. */
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	else if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	if (c->in_end == sizeof(c->in))
		/* A chunk-size line or trailer too long for the decoder to take. */
		return answer_local(c, MHD_HTTP_BAD_REQUEST, "Bad request",
				    "The request's chunked body is malformed.");
	n = recv_some(c->fd, &c->ready, c->in + c->in_end, sizeof(c->in) - c->in_end);
	if (n == -EAGAIN)
		return wait_for(c, TIMER_CLIENT);
	if (n <= 0)
		return client_close(c); /* the client went away mid-body */
	c->in_end += (size_t)n;
	c->progress = true;
	return STEP_AGAIN;
}

/* ---- the answer ------------------------------------------------------------------ */

/* Decode a chunked body in place from raw_start: data at [start, end); true when it ended. */
static int
chunked_in_place(struct exchange *x, bool *ret_done)
{
	return proxy_chunked_in_place(&x->chunked, x->buf, &x->raw_start, x->raw_end, &x->end,
				      ret_done);
}

/* The answer is read to its end: the fd goes back, to the pool if nothing is left over. */
static void
answer_read(struct client *c, bool leftover)
{
	struct exchange *x = c->x;

	x->answer_read = true;
	upstream_release(c, x->app_keep_alive && !leftover);
}

static int tunnel_begin(struct client *c);

/* The app's head is in x->head, body bytes after it at [start, end) of buf. */
static int
answer_begin(struct client *c)
{
	struct exchange *x = c->x;
	struct http_response_head *h = &x->head;
	const struct proxy_params *params = x->route.params;
	struct proxy_writer w = { .buf = x->out, .size = LOOP_OUT_MAX };
	size_t buffered = x->end - x->start, body = 0;
	bool referrer_policy = false, done = false, has_date = false;
	char line[64];
	int r;

	if (h->status == MHD_HTTP_SWITCHING_PROTOCOLS) {
		const char *upgrade = http_response_header(h, "Upgrade");

		if (!x->websocket || !upgrade || !http_list_has_token(upgrade, "websocket"))
			return answer_local(c, MHD_HTTP_BAD_GATEWAY,
					    "The app did not answer properly",
					    "It switched protocols unasked.");
		return tunnel_begin(c);
	}
	x->framing = http_response_framing(h, x->head_request);
	/* After an upgrade offer or a body the app did not read to its end, the
	 * connection is in a state nobody should inherit. */
	x->app_keep_alive = http_response_keeps_alive(h) && !x->websocket && !x->early_answer;
	put_status_line(&w, h->status);
	for (size_t i = 0; i < h->n_headers; i++) {
		if (!proxy_response_field_kept(h, i, params, &referrer_policy))
			continue;
		has_date = has_date || strcasecmp(h->headers[i].name, "Date") == 0;
		proxy_put_field(&w, h->headers[i].name, h->headers[i].value);
	}
	if (!has_date)
		proxy_put_str(&w, date_field(c->loop));

	switch (x->framing) {
	case HTTP_FRAMING_NONE:
		/* HEAD, 304: the size the app announced, with no body. */
		if ((x->head_request || h->status == MHD_HTTP_NOT_MODIFIED) &&
		    h->has_content_length) {
			proxy_put_field(&w, "Content-Length", decimal(line, h->content_length));
		}
		answer_read(c, buffered > 0);
		break;
	case HTTP_FRAMING_LENGTH:
		proxy_put_field(&w, "Content-Length", decimal(line, h->content_length));
		if (h->content_length > buffered &&
		    h->content_length - buffered <= (uint64_t)(sizeof(x->buf) - x->end) &&
		    h->content_length - buffered < LOOP_SPLICE_MIN) {
			/* The little that is left, with the rest: one send. */
			ssize_t n = recv_some(x->fd, &x->app_ready, x->buf + x->end,
					      (size_t)(h->content_length - buffered));

			if (n > 0) {
				x->end += (size_t)n;
				buffered += (size_t)n;
			}
		}
		if (h->content_length <= buffered) {
			body = (size_t)h->content_length;
			answer_read(c, buffered > body);
		} else {
			body = buffered;
			x->remaining = h->content_length - buffered;
		}
		break;
	case HTTP_FRAMING_CHUNKED:
		x->chunked = (struct http_chunked){ 0 };
		x->raw_start = x->start;
		x->raw_end = x->end;
		x->end = x->start;
		r = chunked_in_place(x, &done);
		if (r < 0)
			return answer_local(c, MHD_HTTP_BAD_GATEWAY,
					    "The app did not answer properly",
					    "Its answer was malformed.");
		body = x->end - x->start;
		if (done) {
			/* A whole small answer: sent with a Content-Length instead. */
			proxy_put_field(&w, "Content-Length", decimal(line, body));
			answer_read(c, x->raw_start < x->raw_end);
			break;
		}
		if (x->req.version_minor >= 1) {
			x->reframe = true;
			proxy_put_field(&w, "Transfer-Encoding", "chunked");
		} else
			x->close_delimited = true;
		break;
	case HTTP_FRAMING_CLOSE:
		x->app_keep_alive = false;
		body = buffered;
		if (x->req.version_minor >= 1) {
			x->reframe = true;
			proxy_put_field(&w, "Transfer-Encoding", "chunked");
		} else
			x->close_delimited = true;
		break;
	}
	if (x->close_delimited || x->early_answer)
		c->closing = true;
	if (c->closing)
		proxy_put_field(&w, "Connection", "close");
	proxy_put_security_fields(&w, params, referrer_policy);
	proxy_put(&w, "\r\n", 2);
	if (w.overflow)
		return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				    "Its answer's header was too large.");
	pending_reset(&x->to_client);
	pending_add(&x->to_client, x->out, w.len);
	if (x->reframe)
		pending_chunk(&x->to_client, x->buf + x->start, body);
	else
		pending_add(&x->to_client, x->buf + x->start, body);
	x->start = x->end = 0;
	c->state = CLIENT_ANSWER;
	c->progress = true;
	return STEP_AGAIN;
}

static int
step_app_head(struct client *c)
{
	struct exchange *x = c->x;
	size_t size;
	ssize_t n;
	int r;

	for (;;) {
		/* What is there already (an early answer's first bytes, a 1xx's rest). */
		while (x->end > 0) {
			r = http_head_end(x->buf, x->end, &x->scanned, &size);
			if (r == -EAGAIN)
				break;
			if (r >= 0)
				r = http_response_head_parse(x->buf, size, &x->head);
			if (r < 0)
				return answer_local(c, MHD_HTTP_BAD_GATEWAY,
						    "The app did not answer properly",
						    "Its answer was malformed.");
			if (x->head.status >= 200 || x->head.status == 101) {
				x->start = size;
				return answer_begin(c);
			}
			/* 100 Continue, 103 Early Hints: not passed on. */
			memmove(x->buf, x->buf + size, x->end - size);
			x->end -= size;
			x->scanned = 0;
		}
		if (x->end == sizeof(x->buf))
			return answer_local(c, MHD_HTTP_BAD_GATEWAY,
					    "The app did not answer properly",
					    "Its answer's header was too large.");
		/* A piece at a time: a large body's rest is spliced, not copied. */
		n = recv_some(x->fd, &x->app_ready, x->buf + x->end,
			      MIN(sizeof(x->buf) - x->end, (size_t)LOOP_HEAD_READ));
		if (n == -EAGAIN)
			return wait_for(c, TIMER_APP_HEAD);
		if (n <= 0 && x->end == 0)
			return exchange_failed(c, (int)n, true);
		if (n <= 0)
			return answer_local(c, MHD_HTTP_BAD_GATEWAY,
					    "The app did not answer properly",
					    "It closed the connection without a complete answer.");
		x->got_bytes = true;
		x->end += (size_t)n;
		c->progress = true;
	}
}

/* The app failed in the middle of a body: the client's answer is cut, never silently short. */
static int
answer_truncated(struct client *c, int error)
{
	log_debug_errno(MIN(error, -EPIPE), "App failed in the middle of a body: %m");
	PROXY_STAT_ADD(truncated, 1);
	return client_close(c);
}

/* More of the body from the app into buf, queued for the client. */
static int
answer_more(struct client *c)
{
	struct exchange *x = c->x;
	size_t want = sizeof(x->buf);
	bool done = false;
	ssize_t n;
	int r;

	if (x->framing == HTTP_FRAMING_LENGTH)
		want = (size_t)MIN((uint64_t)want, x->remaining);
	n = recv_some(x->fd, &x->app_ready, x->buf, want);
	if (n == -EAGAIN)
		return wait_for(c, TIMER_APP_IDLE);
	if (n < 0 || (n == 0 && x->framing != HTTP_FRAMING_CLOSE))
		return answer_truncated(c, (int)n);
	c->progress = true;
	pending_reset(&x->to_client);
	switch (x->framing) {
	case HTTP_FRAMING_LENGTH:
		x->remaining -= (uint64_t)n;
		pending_add(&x->to_client, x->buf, (size_t)n);
		if (x->remaining == 0)
			answer_read(c, false);
		break;
	case HTTP_FRAMING_CHUNKED:
		x->raw_start = 0;
		x->raw_end = (size_t)n;
		x->start = x->end = 0;
		r = chunked_in_place(x, &done);
		if (r < 0)
			return answer_truncated(c, r);
		if (x->reframe)
			pending_chunk(&x->to_client, x->buf, x->end);
		else
			pending_add(&x->to_client, x->buf, x->end);
		if (done) {
			answer_read(c, x->raw_start < x->raw_end);
			x->last_chunk = x->reframe;
		}
		break;
	case HTTP_FRAMING_CLOSE:
		if (n == 0) {
			answer_read(c, false);
			x->last_chunk = x->reframe;
		} else if (x->reframe)
			pending_chunk(&x->to_client, x->buf, (size_t)n);
		else
			pending_add(&x->to_client, x->buf, (size_t)n);
		break;
	default:
		answer_read(c, false);
		break;
	}
	return STEP_AGAIN;
}

static int
step_answer(struct client *c)
{
	struct exchange *x = c->x;
	size_t sent = 0;
	bool client_full;
	int r;

	if (!pending_empty(&x->to_client)) {
		r = pending_send(c->fd, &x->to_client, &sent);
		if (sent > 0)
			c->progress = true;
		if (r == -EAGAIN)
			return wait_for(c, TIMER_CLIENT);
		if (r < 0)
			return client_close(c); /* the client went away */
		return STEP_AGAIN;
	}
	if (x->answer_read && x->piped == 0) {
		if (x->last_chunk) {
			x->last_chunk = false;
			pending_reset(&x->to_client);
			pending_add(&x->to_client, "0\r\n\r\n", 5);
			return STEP_AGAIN;
		}
		return answer_done(c);
	}
	if (x->framing == HTTP_FRAMING_LENGTH &&
	    (x->remaining >= LOOP_SPLICE_MIN || x->piped > 0)) {
		uint64_t left = x->remaining + x->piped;

		r = pipe_ensure(c->loop, x);
		if (r < 0)
			return answer_truncated(c, r);
		r = splice_some(x, x->fd, &x->app_ready, c->fd, &left, &client_full);
		if (r == -EPIPE)
			return answer_truncated(c, r);
		if (r < 0)
			return client_close(c); /* the client went away */
		x->remaining = left - x->piped;
		if (x->remaining == 0 && x->fd >= 0)
			answer_read(c, false);
		if (r > 0) {
			c->progress = true;
			return STEP_AGAIN;
		}
		return wait_for(c, client_full ? TIMER_CLIENT : TIMER_APP_IDLE);
	}
	return answer_more(c);
}

/* ---- between requests -------------------------------------------------------------- */

static int
handoff(struct client *c)
{
	struct loop *l = c->loop;
	int fd = c->fd;

	/* Not ours any more: out of our set, and the fd is libmicrohttpd's. */
	(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
	unwatch(l, fd);
	c->fd = -EBADF;
	l->ops->handoff(l->userdata, fd, (struct sockaddr *)&c->addr, c->addr_len);
	return client_close(c);
}

/* The first request of a connection, looked at without reading it: ours, or libmicrohttpd's? */
static int
step_peek(struct client *c)
{
	struct loop *l = c->loop;
	struct http_request_head *h;
	size_t skip, size;
	ssize_t n;
	bool ours;
	int r;

	if (!c->ready.readable)
		return wait_for(c, TIMER_CLIENT);
	n = recv(c->fd, c->in, sizeof(c->in), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		c->ready.readable = false;
		return wait_for(c, TIMER_CLIENT);
	}
	if (n <= 0)
		return client_close(c);
	skip = http_request_skip_empty_lines(c->in, (size_t)n);
	r = http_head_end(c->in + skip, (size_t)n - skip, NULL, &size);
	if (r == -EAGAIN && (size_t)n < sizeof(c->in)) {
		c->ready.readable = false; /* the rest of the head makes a new edge */
		return wait_for(c, TIMER_CLIENT);
	}
	if (r < 0)
		return handoff(c); /* libmicrohttpd says what is wrong with it */
	h = malloc(sizeof(*h));
	if (!h)
		return client_close(c);
	ours = http_request_head_parse(c->in + skip, size, h) >= 0 &&
	       l->ops->serves(l->userdata, h);
	free(h);
	if (!ours)
		return handoff(c);
	/* Ours: now read for real (the bytes are there). */
	n = recv(c->fd, c->in, (size_t)n, MSG_DONTWAIT);
	if (n <= 0)
		return client_close(c);
	c->in_start = 0;
	c->in_end = (size_t)n;
	c->scanned = 0;
	c->state = CLIENT_HEAD;
	return STEP_AGAIN;
}

static int
step_head(struct client *c)
{
	size_t skip, size;
	ssize_t n;
	int r;

	skip = http_request_skip_empty_lines(c->in + c->in_start, c->in_end - c->in_start);
	c->in_start += skip;
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = c->scanned = 0;
	if (c->in_end > c->in_start) {
		r = http_head_end(c->in + c->in_start, c->in_end - c->in_start, &c->scanned, &size);
		if (r >= 0)
			return request_begin(c, size);
		if (r != -EAGAIN || c->in_end - c->in_start == sizeof(c->in)) {
			/* Not HTTP, or a head larger than we take: answered, then closed. */
			c->x = exchange_new(c->loop);
			if (!c->x)
				return client_close(c);
			c->closing = true;
			c->x->upload_done = true;
			c->in_start = c->in_end;
			return answer_local(c,
					    r == -EAGAIN ? MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE
							 : MHD_HTTP_BAD_REQUEST,
					    "Bad request", "The request could not be read.");
		}
		if (c->in_start > 0) {
			memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
			c->in_end -= c->in_start;
			c->in_start = 0;
		}
	}
	n = recv_some(c->fd, &c->ready, c->in + c->in_end, sizeof(c->in) - c->in_end);
	if (n == -EAGAIN)
		return wait_for(c, TIMER_CLIENT);
	if (n <= 0)
		return client_close(c); /* between requests: the client is done */
	c->in_end += (size_t)n;
	c->progress = true;
	return STEP_AGAIN;
}

static int
step_discard(struct client *c)
{
	size_t k = (size_t)MIN(c->discard, (uint64_t)(c->in_end - c->in_start));
	ssize_t n;

	c->in_start += k;
	c->discard -= k;
	if (c->discard == 0) {
		c->state = CLIENT_HEAD;
		return STEP_AGAIN;
	}
	c->in_start = c->in_end = 0;
	n = recv_some(c->fd, &c->ready, c->in, (size_t)MIN(c->discard, (uint64_t)sizeof(c->in)));
	if (n == -EAGAIN)
		return wait_for(c, TIMER_CLIENT);
	if (n <= 0)
		return client_close(c);
	c->in_end = (size_t)n;
	c->progress = true;
	return STEP_AGAIN;
}

static int
step_linger(struct client *c)
{
	ssize_t n = recv_some(c->fd, &c->ready, c->in, sizeof(c->in));

	if (n == -EAGAIN)
		return wait_for(c, TIMER_LINGER);
	if (n <= 0 || (uint64_t)n >= c->discard)
		return client_close(c);
	c->discard -= (uint64_t)n;
	return STEP_AGAIN;
}

/* ---- WebSocket tunnels ------------------------------------------------------------ */

/* The app's 101 is in x->head: ours goes out, then bytes flow both ways. */
static int
tunnel_begin(struct client *c)
{
	struct exchange *x = c->x;
	struct http_response_head *h = &x->head;
	struct proxy_writer w = { .buf = x->out, .size = LOOP_OUT_MAX };
	bool referrer_policy = false;

	proxy_put_str(&w, "HTTP/1.1 101 Switching Protocols\r\n");
	for (size_t i = 0; i < h->n_headers; i++)
		if (proxy_response_field_kept(h, i, x->route.params, &referrer_policy))
			proxy_put_field(&w, h->headers[i].name, h->headers[i].value);
	proxy_put_str(&w, date_field(c->loop));
	proxy_put_field(&w, "Connection", "Upgrade");
	proxy_put_field(&w, "Upgrade", http_response_header(h, "Upgrade"));
	proxy_put_security_fields(&w, x->route.params, referrer_policy);
	proxy_put(&w, "\r\n", 2);
	if (w.overflow)
		return answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				    "Its answer's header was too large.");
	/* What the app sent right behind its 101 follows ours. */
	pending_reset(&x->to_client);
	pending_add(&x->to_client, x->out, w.len);
	pending_add(&x->to_client, x->buf + x->start, x->end - x->start);
	x->start = x->end = 0;
	c->client_eof = c->app_eof = c->app_shut = c->client_shut = false;
	c->closing = true;
	c->state = CLIENT_TUNNEL;
	c->progress = true;
	timer_set(c, x->route.params->ops->cut ? TIMER_TUNNEL : TIMER_NONE);
	PROXY_STAT_ADD(tunnels, 1);
	PROXY_STAT_ADD(tunnels_total, 1);
	return STEP_AGAIN;
}

/* One direction: from src into buf [*start, *end), and from there to dst. <0: a side failed. */
static int
tunnel_pump(struct client *c, int src, struct readiness *ready, int dst, char *buf, size_t size,
	    size_t *start, size_t *end, bool *eof, bool *shut)
{
	ssize_t n;

	if (*start < *end) {
		n = send(dst, buf + *start, *end - *start, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			*start += (size_t)n;
			c->progress = true;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	if (*start == *end)
		*start = *end = 0;
	if (!*eof && *end < size) {
		n = recv_some(src, ready, buf + *end, size - *end);
		if (n > 0) {
			*end += (size_t)n;
			c->progress = true;
			return 1; /* send it on */
		}
		if (n == 0) {
			*eof = true;
			c->progress = true;
		} else if (n != -EAGAIN)
			return (int)n;
	}
	/* Half-close: once everything the source sent is delivered, say so. */
	if (*eof && *start == *end && !*shut) {
		(void)shutdown(dst, SHUT_WR);
		*shut = true;
	}
	return 0;
}

static int
step_tunnel(struct client *c)
{
	struct exchange *x = c->x;
	int r, moved = 0;

	if (!pending_empty(&x->to_client)) {
		r = pending_send(c->fd, &x->to_client, NULL);
		if (r == -EAGAIN)
			return STEP_WAIT;
		if (r < 0)
			return client_close(c);
	}
	c->progress = false;
	r = tunnel_pump(c, c->fd, &c->ready, x->fd, c->in, sizeof(c->in), &c->in_start, &c->in_end,
			&c->client_eof, &c->app_shut);
	if (r >= 0) {
		moved |= r;
		r = tunnel_pump(c, x->fd, &x->app_ready, c->fd, x->buf, sizeof(x->buf), &x->start,
				&x->end, &c->app_eof, &c->client_shut);
		moved |= r;
	}
	/* A side that hung up completely, once what it sent is delivered, takes nothing more. */
	if (r < 0 || (c->app_shut && c->client_shut) || (c->client_hup && c->app_shut) ||
	    (x->app_hup && c->client_shut))
		return client_close(c);
	return moved > 0 ? STEP_AGAIN : STEP_WAIT;
}

/* ---- the loop ----------------------------------------------------------------------- */

static int
step(struct client *c)
{
	switch (c->state) {
	case CLIENT_PEEK:
		return step_peek(c);
	case CLIENT_HEAD:
		return step_head(c);
	case CLIENT_WAIT:
		return STEP_WAIT;
	case CLIENT_SEND_HEAD:
		return step_send_head(c);
	case CLIENT_BODY:
		return step_body(c);
	case CLIENT_APP_HEAD:
		return step_app_head(c);
	case CLIENT_ANSWER:
		return step_answer(c);
	case CLIENT_DISCARD:
		return step_discard(c);
	case CLIENT_TUNNEL:
		return step_tunnel(c);
	case CLIENT_LINGER:
		return step_linger(c);
	}
	return STEP_WAIT;
}

static void
client_run(struct client *c)
{
	int r;

	c->progress = false;
	do
		r = step(c);
	while (r == STEP_AGAIN);
}

static void
listening(struct loop *l, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)l->listen_fd };

	if (on == l->listening)
		return;
	if (epoll_ctl(l->epoll_fd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->listen_fd, &ev) < 0)
		log_warning_errno(errno, "Failed to %s listening: %m", on ? "resume" : "pause");
	else
		l->listening = on;
}

static void
accept_clients(struct loop *l)
{
	for (unsigned i = 0; i < LOOP_ACCEPT_BATCH && l->n_clients < l->max_clients; i++) {
		struct sockaddr_storage addr;
		socklen_t addr_len = sizeof(addr);
		struct client *c;
		int fd, one = 1;

		fd = accept4(l->listen_fd, (struct sockaddr *)&addr, &addr_len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of fds: stop taking connections for a moment. */
				log_warning_errno(errno, "Failed to accept a connection: %m");
				listening(l, false);
				l->accept_again = l->now + 100;
			}
			return;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			(void)close(fd);
			return;
		}
		/* Not calloc(): in[] is written before it is read. */
		memset(c, 0, offsetof(struct client, in));
		c->loop = l;
		c->fd = fd;
		c->timer = TIMER_NONE;
		c->state = l->ops->serves ? CLIENT_PEEK : CLIENT_HEAD;
		c->ready.readable = true;
		memcpy(&c->addr, &addr, addr_len);
		c->addr_len = addr_len;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (watch(l, fd, c, false) < 0) {
			(void)close(fd);
			free(c);
			return;
		}
		c->next = l->clients;
		if (c->next)
			c->next->prev = c;
		l->clients = c;
		l->n_clients++;
		c->progress = true;
		timer_set(c, TIMER_CLIENT);
	}
	if (l->n_clients >= l->max_clients)
		listening(l, false);
}

static void
timeout(struct client *c)
{
	enum timer_kind kind = c->timer;
	bool body = c->state == CLIENT_SEND_HEAD || c->state == CLIENT_BODY;
	int r;

	timer_remove(c);
	c->progress = true;
	if (kind == TIMER_TUNNEL) {
		const struct proxy_params *p = c->x->route.params;

		/* Busy or idle, once a second: is the access it was opened with still there? */
		if (!p->ops->cut(p->userdata)) {
			timer_set(c, TIMER_TUNNEL);
			return;
		}
		r = client_close(c);
	} else if (c->state == CLIENT_APP_HEAD)
		r = answer_local(c, MHD_HTTP_GATEWAY_TIMEOUT, "The app took too long to answer",
				 NULL);
	else if (body && kind == TIMER_APP_IDLE)
		r = answer_local(c, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				 "It stopped reading the request.");
	else if (c->state == CLIENT_ANSWER && kind == TIMER_APP_IDLE)
		r = answer_truncated(c, -ETIMEDOUT);
	else
		r = client_close(c); /* the client is idle, or stopped sending or reading */
	while (r == STEP_AGAIN)
		r = step(c);
}

static int
next_timeout(struct loop *l)
{
	int64_t next = INT64_MAX;

	for (int k = 0; k < _TIMER_MAX; k++)
		if (l->timers[k])
			next = MIN(next, l->timers[k]->deadline);
	if (!l->listening && l->accept_again)
		next = MIN(next, l->accept_again);
	if (next == INT64_MAX)
		return -1;
	return (int)MAX(MIN(next - l->now, (int64_t)INT32_MAX), 0);
}

static void
timers_run(struct loop *l)
{
	for (int k = 0; k < _TIMER_MAX; k++)
		while (l->timers[k] && l->timers[k]->deadline <= l->now)
			timeout(l->timers[k]);
	if (!l->listening && l->accept_again && l->now >= l->accept_again) {
		l->accept_again = 0;
		listening(l, true);
	}
}

static void
readiness_update(struct readiness *ready, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		ready->readable = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		ready->eof = true;
}

static void
dispatch(struct loop *l, const struct epoll_event *ev)
{
	int fd = (int)ev->data.u64;
	struct fd_slot *slot;
	struct client *c;

	if (fd == l->wake_fd) {
		jobs_collect(l);
		return;
	}
	if (fd == l->listen_fd) {
		accept_clients(l);
		return;
	}
	slot = slot_of(l, fd);
	c = slot ? slot->client : NULL;
	if (!c) {
		/* A pooled app fd of ours (or one another engine uses now) the app closed.
		 * (EPOLLIN alone is most often the late edge of an answer read already.) */
		if (slot && (ev->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			slot->idle_event = true;
		return;
	}
	if (c->x && fd == c->x->fd) {
		readiness_update(&c->x->app_ready, ev->events);
		if (ev->events & EPOLLHUP)
			c->x->app_hup = true;
	} else if (fd == c->fd) {
		readiness_update(&c->ready, ev->events);
		if (ev->events & EPOLLHUP)
			c->client_hup = true;
	}
	if (!c->job)
		client_run(c); /* else: the job's return runs it */
}

static bool
stopping(struct loop *l)
{
	return __atomic_load_n(&l->stop, __ATOMIC_ACQUIRE);
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;
	unsigned jobs;

	l->now = clock_ms();
	listening(l, true);
	while (!stopping(l)) {
		struct epoll_event events[LOOP_EVENTS];
		int n = epoll_wait(l->epoll_fd, events, LOOP_EVENTS, next_timeout(l));

		if (n < 0 && errno != EINTR) {
			log_error_errno(errno, "Event loop: epoll_wait failed: %m");
			break;
		}
		l->now = clock_ms();
		for (int i = 0; i < n; i++)
			dispatch(l, &events[i]);
		timers_run(l);
	}

	/* Every connection ends; jobs still running are waited for (they end on their own). */
	listening(l, false);
	for (struct client *c = l->clients, *next; c; c = next) {
		next = c->next;
		if (!c->dead)
			client_free(
				c); /* one a job holds stays listed, dead: job_done() frees it */
	}
	for (;;) {
		pthread_mutex_lock(&l->lock);
		jobs = l->n_jobs;
		pthread_mutex_unlock(&l->lock);
		if (jobs == 0)
			break;
		struct pollfd p = { .fd = l->wake_fd, .events = POLLIN };

		(void)poll(&p, 1, -1);
		jobs_collect(l);
	}
	return NULL;
}

int
loop_start(const struct loop_config *config, struct loop **ret)
{
	_cleanup_(loop_stopp) struct loop *l = NULL;
	struct epoll_event ev;
	int r;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epoll_fd = l->wake_fd = -EBADF;
	l->listen_fd = config->listen_fd;
	l->ops = config->ops;
	l->userdata = config->userdata;
	l->client_timeout_ms = config->client_timeout_ms ?: LOOP_CLIENT_TIMEOUT_MS;
	l->max_clients = config->max_clients ?: 1024;
	pthread_mutex_init(&l->lock, NULL);
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epoll_fd < 0 || l->wake_fd < 0)
		return -errno;
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u64 = (uint64_t)l->wake_fd };
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
		return -errno;
	/* The listening socket may be blocking (shared with libmicrohttpd's setup): accept4() must not wait. */
	r = fcntl(l->listen_fd, F_GETFL);
	if (r < 0 || fcntl(l->listen_fd, F_SETFL, r | O_NONBLOCK) < 0)
		return -errno;
	r = -pthread_create(&l->thread, NULL, loop_main, l);
	if (r < 0)
		return r;
	l->thread_started = true;
	*ret = TAKE_PTR(l);
	return 0;
}

struct loop *
loop_stop(struct loop *l)
{
	if (!l)
		return NULL;
	if (l->thread_started) {
		__atomic_store_n(&l->stop, true, __ATOMIC_RELEASE);
		(void)eventfd_write(l->wake_fd, 1);
		(void)pthread_join(l->thread, NULL);
	}
	while (l->n_pipes > 0) {
		l->n_pipes--;
		(void)close(l->pipes[l->n_pipes][0]);
		(void)close(l->pipes[l->n_pipes][1]);
	}
	while (l->free_exchanges) {
		struct exchange *x = l->free_exchanges;

		l->free_exchanges = x->next_free;
		free(x);
	}
	free(l->fds);
	(void)safe_close(l->epoll_fd);
	(void)safe_close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}
