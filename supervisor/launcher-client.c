/* SPDX-License-Identifier: MIT */
/*
 * launcher-client.c: front's end of the launcher connection, for many
 * threads at once.
 *
 * The launcher answers most requests at once but an install only when its
 * installer is done, so answers come back in any order; each carries the id
 * of its request (docs/IPC.md). Every caller sends its own request (one
 * datagram: sends from several threads never interleave) and then waits for
 * the answer with its id. There is no reader thread: the first waiter
 * becomes the reader (the leader), hands each answer it reads to the waiter
 * it belongs to, and when its own arrives gives the reading up to the next
 * waiter (leader/follower):
 *
 *	waiter A (leader)        waiter B                 waiter C
 *	recvmsg → id of C        cond_wait                cond_wait
 *	  → C.done, broadcast                              wakes, returns
 *	recvmsg → id of A
 *	  → A.done, reading off, broadcast
 *	returns                  wakes, becomes leader
 *
 * The lock is never held while reading or sending. A launcher that goes
 * away wakes every waiter with -ECONNRESET, and later calls fail the same
 * way (granaryd then restarts front and launcher together). A malformed
 * answer, whose owner cannot be known, fails every call waiting at that
 * moment with -EBADMSG and the connection stays usable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

struct pending_call {
	uint32_t id;
	uint32_t request_type;
	struct ipc_message *reply; /* the caller's; written when done */
	int result;		   /* once done: 0, or -errno */
	bool done;
	struct pending_call *next;
};

struct launcher_client {
	int fd; /* borrowed */
	pthread_mutex_t lock;
	pthread_cond_t changed; /* an answer was handed over, or the leader stepped down */
	uint32_t next_id;
	bool reading; /* a waiter is the leader */
	int dead;     /* 0, or -ECONNRESET (or the read's error) once the connection is gone */
	struct pending_call *pending;
};

/* What a request must be answered with (IPC_ERROR besides), and with how many descriptors. */
static const struct {
	uint32_t reply;
	unsigned n_fds;
} expected[_IPC_TYPE_MAX] = {
	[IPC_PING] = { IPC_PONG, 0 },
	[IPC_GRAIN_STORAGE_CREATE] = { IPC_OK, 0 },
	[IPC_GRAIN_STORAGE_DELETE] = { IPC_OK, 0 },
	[IPC_PACKAGE_INSTALL] = { IPC_PACKAGE_INSTALLED, 0 },
	[IPC_PACKAGE_DELETE] = { IPC_OK, 0 },
	[IPC_GRAIN_START] = { IPC_GRAIN_STARTED, 1 },
	[IPC_GRAIN_STOP] = { IPC_OK, 0 },
	[IPC_GRAIN_STATUS] = { IPC_GRAIN_STATS, 0 },
	[IPC_GRAIN_LOG_OPEN] = { IPC_OK, 1 },
};

int
launcher_client_new(int fd, struct launcher_client **ret)
{
	struct launcher_client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->next_id = 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->changed, NULL);
	*ret = c;
	return 0;
}

struct launcher_client *
launcher_client_free(struct launcher_client *c)
{
	if (!c)
		return NULL;
	/* No call may be in flight: the caller stopped every thread that makes them. */
	pthread_cond_destroy(&c->changed);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

static void
message_close_fds(struct ipc_message *m)
{
	for (unsigned i = 0; i < m->n_fds; i++)
		(void)close(m->fds[i]);
	m->n_fds = 0;
}

/* Check an answer against its request and hand it over. Under the lock. */
static void
deliver(struct pending_call *p, struct ipc_message *m)
{
	bool error = m->header.type == IPC_ERROR;

	if (!error && (m->header.type != expected[p->request_type].reply ||
		       m->n_fds != expected[p->request_type].n_fds)) {
		log_error("The launcher answered %s with %s and %u descriptors",
			  ipc_type_name(p->request_type), ipc_type_name(m->header.type), m->n_fds);
		message_close_fds(m);
		p->result = -EBADMSG;
	} else
		p->result = error ? -m->payload.error.error : 0;
	*p->reply = *m;
	p->done = true;
}

/* As the leader: read one answer and hand it to its waiter. Called and returns with the lock. */
static void
read_one(struct launcher_client *c)
{
	struct ipc_message m;
	struct pending_call *p;
	int r;

	c->reading = true;
	pthread_mutex_unlock(&c->lock);
	r = ipc_receive(c->fd, IPC_TO_FRONT, &m);
	pthread_mutex_lock(&c->lock);
	c->reading = false;

	if (r == -EBADMSG) {
		/* Its owner is unknown: everyone waiting now fails, later calls go on. */
		log_error("Malformed answer from the launcher");
		for (p = c->pending; p; p = p->next)
			if (!p->done) {
				p->result = -EBADMSG;
				p->done = true;
			}
	} else if (r < 0) {
		if (r != -ECONNRESET)
			log_error_errno(r, "Failed to read from the launcher: %m");
		c->dead = -ECONNRESET;
	} else {
		for (p = c->pending; p && (p->done || p->id != m.header.id); p = p->next)
			;
		if (p)
			deliver(p, &m);
		else {
			log_error("The launcher answered request %u, which nobody waits for",
				  m.header.id);
			message_close_fds(&m);
		}
	}
	/* An answer for someone, or the reading is up for grabs: wake every waiter. */
	pthread_cond_broadcast(&c->changed);
}

int
launcher_call(struct launcher_client *c, uint32_t type, const void *payload, size_t size,
	      int pass_fd, struct ipc_message *ret_reply)
{
	struct pending_call call = { .request_type = type, .reply = ret_reply };
	int r;

	if (type == 0 || type >= _IPC_TYPE_MAX || expected[type].reply == 0)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	if (c->dead) {
		pthread_mutex_unlock(&c->lock);
		return c->dead;
	}
	call.id = c->next_id++;
	if (c->next_id == 0)
		c->next_id = 1;
	call.next = c->pending;
	c->pending = &call;
	pthread_mutex_unlock(&c->lock);

	/* Registered first: the answer may be read by another waiter before send() returns. */
	r = ipc_send_fd(c->fd, type, call.id, payload, size, pass_fd);

	pthread_mutex_lock(&c->lock);
	if (r < 0) {
		if (r == -EPIPE || r == -ECONNRESET)
			r = -ECONNRESET;
		call.result = r;
		call.done = true;
	}
	while (!call.done && !c->dead) {
		if (c->reading)
			pthread_cond_wait(&c->changed, &c->lock);
		else
			read_one(c);
	}
	for (struct pending_call **p = &c->pending; *p; p = &(*p)->next)
		if (*p == &call) {
			*p = call.next;
			break;
		}
	r = call.done ? call.result : c->dead;
	pthread_mutex_unlock(&c->lock);
	return r;
}

int
launcher_grain_call(struct launcher_client *c, uint32_t type, const char *grain_id,
		    struct ipc_message *ret_reply)
{
	struct ipc_grain g;

	memcpy(g.grain_id, grain_id, GRAIN_ID_LEN);
	return launcher_call(c, type, &g, sizeof(g), -1, ret_reply);
}

int
launcher_grain_log_tail(struct launcher_client *c, const char *grain_id, size_t max, char **ret,
			size_t *ret_len)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *text = NULL;
	struct ipc_message reply;
	struct stat st;
	size_t want;
	ssize_t n;
	int r;

	r = launcher_grain_call(c, IPC_GRAIN_LOG_OPEN, grain_id, &reply);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r >= 0) {
		fd = reply.fds[0];
		if (fstat(fd, &st) < 0)
			return negative_errno();
	} else
		st.st_size = 0; /* no log yet */
	want = MIN(max, (size_t)st.st_size);
	text = malloc(want + 1);
	if (!text)
		return -ENOMEM;
	n = want ? pread(fd, text, want, st.st_size - (off_t)want) : 0;
	if (n < 0)
		return negative_errno();
	text[n] = '\0';
	*ret_len = (size_t)n;
	*ret = TAKE_PTR(text);
	return 0;
}
