/* SPDX-License-Identifier: MIT */
/*
 * launcher.c: the root half of granaryd. It does almost nothing and trusts
 * nothing: it reads the enumerated messages of docs/IPC.md from front, derives
 * every path from the ids itself, and answers. Today that is grain storage;
 * sandboxes, package unpacking and killing grains join as their issues land.
 *
 * Paths: the launcher opens STATE/grains once at start, refuses it unless it
 * is a real directory owned by root and writable by root only, and then works
 * only relative to that descriptor with O_NOFOLLOW. front owns STATE itself
 * (it writes the database there) and could rename or replace entries in it,
 * but a descriptor keeps pointing at the directory we checked, and a
 * replacement made by front would fail the ownership check at the next start.
 */
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

/* Open dir below parent_fd, creating it (mode, root:root) when missing, and check it. */
int
trusted_dir_open(int parent_fd, const char *name, mode_t mode, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (mkdirat(parent_fd, name, mode) < 0 && errno != EEXIST)
		return negative_errno();
	fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	/* Ours only: owned by the user we run as, nobody else may write. */
	if (st.st_uid != geteuid() || (st.st_mode & 0022))
		return -EPERM;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* Grains may nest deeper than this; deleting one then fails with ELOOP and says so. */
#define MAX_DEPTH 256

struct launcher {
	int fd;		 /* the connection to front; borrowed */
	int grains_fd;	 /* owned: STATE/grains */
	int packages_fd; /* owned: STATE/packages */
	const char *installer;
};

static bool
grain_id_valid(const char *id)
{
	return strlen(id) == GRAIN_ID_LEN && hex_valid(id, GRAIN_ID_LEN);
}

int
grain_storage_create(int grains_fd, const char *id)
{
	_cleanup_close_ int grain_fd = -EBADF;

	if (!grain_id_valid(id))
		return -EINVAL;
	if (mkdirat(grains_fd, id, 0711) < 0)
		return negative_errno();
	grain_fd = openat(grains_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (grain_fd < 0 || mkdirat(grain_fd, "data", 0700) < 0) {
		int r = negative_errno();

		(void)remove_tree_at(grains_fd, id, MAX_DEPTH);
		return r;
	}
	return 0;
}

int
grain_storage_delete(int grains_fd, const char *id)
{
	if (!grain_id_valid(id))
		return -EINVAL;
	return remove_tree_at(grains_fd, id, MAX_DEPTH);
}

static int
reply_error(struct launcher *l, uint32_t id, int error, const char *what)
{
	struct ipc_error e = { .error = error < 0 ? -error : error };

	(void)snprintf(e.message, sizeof(e.message), "%s", what);
	return ipc_send(l->fd, IPC_ERROR, id, &e, sizeof(e));
}

static int
package_install_reply(struct launcher *l, const struct ipc_message *m)
{
	_cleanup_close_ int spk_fd = m->fds[0];
	struct package_install_result res;
	struct ipc_package_installed installed = {};
	int r;

	r = package_install(l->installer, l->packages_fd, spk_fd, &res);
	if (r == -EBADF)
		return reply_error(l, m->header.id, EBADF, "the upload is not a regular file");
	if (r < 0) {
		log_error_errno(r, "Failed to run the package installer: %m");
		return reply_error(l, m->header.id, r, "the package installer could not run");
	}
	if (res.error < 0) {
		log_info("Package refused: %s", res.message);
		return reply_error(l, m->header.id, res.error, res.message);
	}
	memcpy(installed.package_id, res.package_id, PACKAGE_ID_LEN);
	memcpy(installed.app_id, res.app_id, sizeof(installed.app_id));
	installed.existed = res.existed;
	log_info("Package %s of app %s unpacked%s", res.package_id, res.app_id,
		 res.existed ? " (it was already)" : "");
	return ipc_send(l->fd, IPC_PACKAGE_INSTALLED, m->header.id, &installed, sizeof(installed));
}

static int
handle(struct launcher *l, const struct ipc_message *m)
{
	char id[GRAIN_ID_LEN + 1];
	int r;

	switch (m->header.type) {
	case IPC_PING: {
		struct ipc_pong pong = { .pid = (uint32_t)getpid(), .protocol = IPC_PROTOCOL };

		return ipc_send(l->fd, IPC_PONG, m->header.id, &pong, sizeof(pong));
	}
	case IPC_GRAIN_STORAGE_CREATE:
	case IPC_GRAIN_STORAGE_DELETE:
		memcpy(id, m->payload.grain.grain_id, GRAIN_ID_LEN);
		id[GRAIN_ID_LEN] = '\0';
		if (m->header.type == IPC_GRAIN_STORAGE_CREATE)
			r = grain_storage_create(l->grains_fd, id);
		else
			r = grain_storage_delete(l->grains_fd, id);
		if (r < 0) {
			log_warning_errno(r, "%s of grain %s failed: %m",
					  ipc_type_name(m->header.type), id);
			return reply_error(l, m->header.id, r, "grain storage");
		}
		return ipc_send(l->fd, IPC_OK, m->header.id, NULL, 0);
	case IPC_PACKAGE_INSTALL:
		return package_install_reply(l, m);
	case IPC_PACKAGE_DELETE: {
		char package_id[PACKAGE_ID_LEN + 1];

		memcpy(package_id, m->payload.package.package_id, PACKAGE_ID_LEN);
		package_id[PACKAGE_ID_LEN] = '\0';
		r = package_delete(l->packages_fd, package_id);
		if (r < 0) {
			log_warning_errno(r, "Failed to delete package %s: %m", package_id);
			return reply_error(l, m->header.id, r, "package deletion");
		}
		log_info("Package %s deleted", package_id);
		return ipc_send(l->fd, IPC_OK, m->header.id, NULL, 0);
	}
	default:
		/* ipc_decode() let only launcher-bound types through. */
		return -EBADMSG;
	}
}

/* trusted_dir_open() with the errors said for an admin. */
static int
launcher_dir_open(int state_fd, const char *state_dir, const char *name, mode_t mode, int *ret_fd)
{
	int r = trusted_dir_open(state_fd, name, mode, ret_fd);

	if (r == -EPERM)
		return log_error_errno(r,
				       "'%s/%s' is not owned by root or is writable by others; "
				       "refusing to work in it",
				       state_dir, name);
	if (r < 0)
		return log_error_errno(r, "Failed to open '%s/%s': %m", state_dir, name);
	return 0;
}

int
launcher_main(const struct launcher_config *config)
{
	_cleanup_close_ int state_fd = -EBADF;
	struct launcher l = { .fd = config->fd,
			      .grains_fd = -EBADF,
			      .packages_fd = -EBADF,
			      .installer = config->installer };
	int r;

	log_setup("granaryd-launcher");
	state_fd = open(config->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state_fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", config->state_dir);
	r = launcher_dir_open(state_fd, config->state_dir, "grains", 0711, &l.grains_fd);
	if (r < 0)
		return r;
	r = launcher_dir_open(state_fd, config->state_dir, "packages", 0755, &l.packages_fd);
	if (r < 0) {
		l.grains_fd = safe_close(l.grains_fd);
		return r;
	}
	r = package_sweep(l.packages_fd);
	if (r < 0)
		log_warning_errno(r, "Failed to remove unfinished installs: %m");

	log_debug("launcher ready");
	for (;;) {
		struct ipc_message m;

		r = ipc_receive(l.fd, IPC_TO_LAUNCHER, &m);
		if (r == -ECONNRESET) {
			r = 0; /* front went away: so do we */
			break;
		}
		if (r == -EBADMSG) {
			log_error("Malformed message from front; dropping the connection");
			break;
		}
		if (r < 0) {
			log_error_errno(r, "Failed to read from front: %m");
			break;
		}
		r = handle(&l, &m);
		if (r < 0) {
			log_error_errno(r, "Failed to answer %s: %m", ipc_type_name(m.header.type));
			break;
		}
	}
	l.grains_fd = safe_close(l.grains_fd);
	l.packages_fd = safe_close(l.packages_fd);
	return r;
}
