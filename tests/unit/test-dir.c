/* SPDX-License-Identifier: MIT */
/*
 * common/dir.c: walking and removing trees without following symlinks, and
 * common/datagram.c: messages with descriptors, and what is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/datagram.h"
#include "common/dir.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static int
path_exists(const char *dir, const char *name)
{
	char p[512];
	struct stat st;

	(void)snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

static void
make_dir(char *tmpl)
{
	if (!mkdtemp(tmpl))
		abort();
}

TEST(remove_tree_removes_links_not_their_targets)
{
	char root[] = "/tmp/test-dir-XXXXXX", victim[] = "/tmp/test-dir-victim-XXXXXX";
	char p[512];
	int fd;

	make_dir(root);
	make_dir(victim);
	(void)snprintf(p, sizeof(p), "%s/keep", victim);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	(void)snprintf(p, sizeof(p), "%s/t", root);
	CHECK(mkdir(p, 0700) == 0);
	(void)snprintf(p, sizeof(p), "%s/t/a", root);
	CHECK(mkdir(p, 0500) == 0); /* read-only: root removes it anyway, others fail */
	(void)snprintf(p, sizeof(p), "%s/t/link", root);
	CHECK(symlink(victim, p) == 0);
	(void)snprintf(p, sizeof(p), "%s/t/file", root);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);

	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_OK(remove_tree_at(fd, "t", 10));
	CHECK(!path_exists(root, "t"));
	CHECK(path_exists(victim, "keep"));
	/* missing: no error */
	CHECK_OK(remove_tree_at(fd, "t", 10));
	/* a symlink to a directory is removed as a link */
	(void)snprintf(p, sizeof(p), "%s/dirlink", root);
	CHECK(symlink(victim, p) == 0);
	CHECK_OK(remove_tree_at(fd, "dirlink", 10));
	CHECK(path_exists(victim, "keep"));
	/* too deep */
	(void)snprintf(p, sizeof(p), "%s/d", root);
	CHECK(mkdir(p, 0700) == 0);
	(void)snprintf(p, sizeof(p), "%s/d/e", root);
	CHECK(mkdir(p, 0700) == 0);
	CHECK_ERR(remove_tree_at(fd, "d", 1), ELOOP);
	CHECK_OK(remove_tree_at(fd, "d", 2));
	close(fd);
	CHECK_OK(remove_tree_at(AT_FDCWD, victim, 2));
	CHECK_OK(remove_tree_at(AT_FDCWD, root, 2));
}

static int
count_or_stop(int fd, const char *entry, void *userdata)
{
	int *n = userdata;

	(void)fd;
	if (strcmp(entry, "stop") == 0)
		return -ECANCELED;
	(*n)++;
	return 0;
}

TEST(dir_foreach_sees_every_entry_and_stops_when_told)
{
	char root[] = "/tmp/test-dir-XXXXXX", p[512];
	int n = 0;

	make_dir(root);
	for (int i = 0; i < 5; i++) {
		(void)snprintf(p, sizeof(p), "%s/e%d", root, i);
		CHECK(mkdir(p, 0700) == 0);
	}
	CHECK_OK(dir_foreach(AT_FDCWD, root, count_or_stop, &n));
	CHECK_INT_EQ(n, 5);
	(void)snprintf(p, sizeof(p), "%s/stop", root);
	CHECK(mkdir(p, 0700) == 0);
	CHECK_ERR(dir_foreach(AT_FDCWD, root, count_or_stop, &n), ECANCELED);
	/* not through a symlink */
	(void)snprintf(p, sizeof(p), "%s/link", root);
	CHECK(symlink(root, p) == 0);
	CHECK(dir_foreach(AT_FDCWD, p, count_or_stop, &n) < 0);
	CHECK_OK(remove_tree_at(AT_FDCWD, root, 2));
}

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int
open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fd_open(fd);
	return n;
}

TEST(datagram_descriptors_and_refusals)
{
	int pair[2], fds[DATAGRAM_FDS_MAX], sent;
	unsigned n_fds = 99;
	char buf[8];

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
	sent = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK_OK(datagram_send(pair[0], "hello", 5, sent, 0));
	CHECK_INT_EQ(datagram_receive(pair[1], buf, sizeof(buf), fds, 1, &n_fds, 0), 5);
	CHECK_UINT_EQ(n_fds, 1);
	CHECK(fd_open(fds[0]) && fds[0] != sent);
	close(fds[0]);

	/* a descriptor where the caller takes none: refused, and closed (none left open) */
	int before = open_fds();
	CHECK_OK(datagram_send(pair[0], "x", 1, sent, 0));
	CHECK_ERR(datagram_receive(pair[1], buf, sizeof(buf), fds, 0, &n_fds, 0), EBADMSG);
	CHECK_INT_EQ(open_fds(), before);
	/* longer than the buffer: truncated, refused */
	CHECK_OK(datagram_send(pair[0], "0123456789", 10, -1, 0));
	CHECK_ERR(datagram_receive(pair[1], buf, sizeof(buf), fds, 1, &n_fds, 0), EBADMSG);
	/* an empty datagram from a live peer is not a hang-up */
	CHECK_OK(datagram_send(pair[0], "", 0, -1, 0));
	CHECK_ERR(datagram_receive(pair[1], buf, sizeof(buf), fds, 1, &n_fds, 0), EBADMSG);
	close(pair[0]);
	CHECK_ERR(datagram_receive(pair[1], buf, sizeof(buf), fds, 1, &n_fds, 0), ECONNRESET);
	close(pair[1]);
	close(sent);
}
