/* SPDX-License-Identifier: MIT */
/*
 * launcher.c: the root half of granaryd. It does almost nothing and trusts
 * nothing: it reads the enumerated messages of docs/IPC.md from front, derives
 * every path from the ids itself, and answers. It creates and deletes grain
 * storage, installs packages (through granary-installer, install.c), and
 * starts, stops and watches grains (sandboxes running grain-init).
 *
 * One thread, one epoll loop over:
 *
 *	front's socket      one request at a time, answered at once, except
 *	                    PACKAGE_INSTALL: its answer comes when its installer
 *	                    exits, so answers may come out of order (front
 *	                    matches them by the header's id)
 *	a signalfd          SIGTERM, SIGINT: stop every grain, exit
 *	each grain's pidfd  grain-init exited: reap it, remove its cgroup,
 *	                    release its uid
 *	each install's pidfd  the installer exited: read its result, answer,
 *	                    start the next waiting install
 *
 * Nothing in a handler waits for a grain's app or an install: starting a
 * grain takes milliseconds (sandbox_start() returns once grain-init runs),
 * stopping one waits only for the kernel to tear down its pid namespace.
 *
 * Paths: the launcher opens STATE/grains once at start, refuses it unless it
 * is a real directory owned by root and writable by root only, and then works
 * only relative to that descriptor with O_NOFOLLOW. front owns STATE itself
 * (it writes the database there) and could rename or replace entries in it,
 * but a descriptor keeps pointing at the directory we checked, and a
 * replacement made by front would fail the ownership check at the next start.
 * A sandbox gets its package and data directories as /proc/self/fd/N of
 * descriptors opened here the same way: it never resolves a path front
 * could have changed.
 *
 * Per instance (a state directory), derived from a hash of its real path so
 * that several granaryd on one host (the tests run many) never touch each
 * other's grains:
 *
 *	cgroups   OWN/granary-<8 hex>/grain-<id> in every hierarchy; swept
 *	          (processes killed, directories removed) at every start
 *	host uids 0x50000000 + (hash % 256) * 2^20, 2^20 of them; a grain's uid
 *	          is the owner of its data/ (chosen at GRAIN_STORAGE_CREATE,
 *	          max used + 1), locked with sandbox_uid_acquire() while it
 *	          runs; a uid outside the range (storage made before uids, or by
 *	          the CLI) or locked by another instance's grain is replaced by a
 *	          new one, data/ chowned to it
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sodium.h>

#include "common/dir.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "sandbox/sandbox.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

/* Grains may nest deeper than this; deleting one then fails with ELOOP and says so. */
#define MAX_DEPTH 256

/* Installs run at once; more wait in a queue of this many, then are refused. */
#define INSTALLS_RUNNING_MAX 2
#define INSTALLS_WAITING_MAX 16

/* Host uids of grains: 256 ranges of 2^20 each, one per instance (see above). */
#define GRAIN_UID_BASE	 0x50000000u
#define GRAIN_UID_RANGES 256u
#define GRAIN_UID_COUNT	 (1u << 20)

/* Open this directory below parent_fd, creating it (mode, root:root) when missing, and check it. */
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

/* What epoll's data.ptr points at: each kind of source starts with this. */
enum source {
	SOURCE_FRONT,
	SOURCE_SIGNAL,
	SOURCE_GRAIN,
	SOURCE_INSTALL,
};

struct running_grain {
	enum source source; /* SOURCE_GRAIN */
	char id[GRAIN_ID_LEN + 1];
	struct sandbox *sandbox; /* owned */
	int uid_lock_fd;	 /* owned: held while the grain runs */
	uid_t uid;
	int64_t started_at;
	struct running_grain *prev, *next;
};

struct install_job {
	enum source source; /* SOURCE_INSTALL */
	uint32_t request_id;
	int spk_fd;			 /* owned while waiting */
	struct package_install *install; /* owned once started */
	struct install_job *next;
};

struct launcher {
	const struct launcher_config *config;
	int fd;		 /* the connection to front; borrowed */
	int grains_fd;	 /* owned: STATE/grains */
	int packages_fd; /* owned: STATE/packages */
	int epoll_fd;	 /* owned */
	int signal_fd;	 /* owned */
	int init_fd;	 /* owned: grain-init in a sealed memfd, or -EBADF */
	enum source front_source, signal_source;
	char *state_dir; /* owned: the real path */
	char cgroup_parent[32];
	uid_t uid_first;   /* this instance's range of host uids */
	uid_t uid_next;	   /* the next one GRAIN_STORAGE_CREATE hands out */
	char refusal[512]; /* why no grain can start on this host; "" when they can */
	/* Running grains; O(n) lookups by id, n in the thousands at most. */
	struct running_grain *grains;
	size_t n_grains;
	struct install_job *installs; /* running, at most INSTALLS_RUNNING_MAX */
	size_t n_installs;
	struct install_job *waiting, *waiting_tail; /* FIFO */
	size_t n_waiting;
};

static int64_t
wall_seconds(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static int
reply_error(struct launcher *l, uint32_t id, int error, const char *what)
{
	struct ipc_error e = { .error = error < 0 ? -error : error };

	(void)snprintf(e.message, sizeof(e.message), "%s", what);
	return ipc_send(l->fd, IPC_ERROR, id, &e, sizeof(e));
}

static int _printf_(4, 5)
	reply_errorf(struct launcher *l, uint32_t id, int error, const char *format, ...)
{
	char message[sizeof(((struct ipc_error *)NULL)->message)];
	va_list ap;

	va_start(ap, format);
	(void)vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);
	return reply_error(l, id, error, message);
}

/* ---- uids ----------------------------------------------------------------- */

static bool
uid_in_range(const struct launcher *l, uid_t uid)
{
	return uid >= l->uid_first && uid - l->uid_first < GRAIN_UID_COUNT;
}

/* The next uid of the range: -EUSERS once it is used up (2^20 grains made). */
static int
uid_allocate(struct launcher *l, uid_t *ret)
{
	if (!uid_in_range(l, l->uid_next))
		return -EUSERS;
	*ret = l->uid_next++;
	return 0;
}

static int
uid_scan_entry(int fd, const char *entry, void *userdata)
{
	struct launcher *l = userdata;
	char path[GRAIN_ID_LEN + sizeof("/data")];
	struct stat st;

	if (!grain_id_valid(entry))
		return 0;
	(void)snprintf(path, sizeof(path), "%s/data", entry);
	if (fstatat(fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (uid_in_range(l, st.st_uid) && st.st_uid >= l->uid_next)
		l->uid_next = st.st_uid + 1;
	return 0;
}

/*
 * Lock the grain's uid (the owner of data_fd) for as long as it runs; a
 * uid outside our range, or one another instance's grain holds, is
 * replaced by a new one and data/ handed to it.
 */
static int
grain_uid_take(struct launcher *l, int data_fd, uid_t *ret_uid, int *ret_lock_fd, char *why,
	       size_t why_size)
{
	struct stat st;
	uid_t uid;
	int r;

	if (fstat(data_fd, &st) < 0)
		return negative_errno();
	if (uid_in_range(l, st.st_uid)) {
		r = sandbox_uid_acquire(st.st_uid, l->uid_first, GRAIN_UID_COUNT, ret_uid,
					ret_lock_fd);
		if (r != -EBUSY) {
			if (r < 0)
				(void)snprintf(why, why_size, "its uid could not be locked: %s",
					       strerror(-r));
			return r;
		}
		log_info("uid %u is in use by another instance's grain; choosing another",
			 (unsigned)st.st_uid);
	}
	for (;;) {
		r = uid_allocate(l, &uid);
		if (r < 0) {
			(void)snprintf(why, why_size, "this server has used up its grain uids");
			return r;
		}
		r = sandbox_uid_acquire(uid, l->uid_first, GRAIN_UID_COUNT, ret_uid, ret_lock_fd);
		if (r == -EBUSY)
			continue;
		if (r < 0) {
			(void)snprintf(why, why_size, "its uid could not be locked: %s",
				       strerror(-r));
			return r;
		}
		break;
	}
	/* Never through a symlink: the grain owns what is below data/. */
	r = sandbox_chown_tree(data_fd, uid, uid);
	if (r < 0) {
		(void)snprintf(why, why_size, "its files could not be given to uid %u: %s",
			       (unsigned)uid, strerror(-r));
		*ret_lock_fd = safe_close(*ret_lock_fd);
		return r;
	}
	log_info("Grain data given to uid %u (was %u)", (unsigned)uid, (unsigned)st.st_uid);
	return 0;
}

/* ---- grains --------------------------------------------------------------- */

static struct running_grain *
grain_find(struct launcher *l, const char *id)
{
	for (struct running_grain *g = l->grains; g; g = g->next)
		if (strcmp(g->id, id) == 0)
			return g;
	return NULL;
}

/*
 * Kill what still runs, reap grain-init, remove the cgroup (sandbox_free()),
 * release the uid, forget the grain.
 */
static void
grain_forget(struct launcher *l, struct running_grain *g)
{
	(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, sandbox_pidfd(g->sandbox), NULL);
	g->sandbox = sandbox_free(g->sandbox);
	(void)safe_close(g->uid_lock_fd);
	if (g->prev)
		g->prev->next = g->next;
	else
		l->grains = g->next;
	if (g->next)
		g->next->prev = g->prev;
	l->n_grains--;
	free(g);
}

static void
grain_exited(struct launcher *l, struct running_grain *g)
{
	int status = -1;

	(void)sandbox_wait(g->sandbox, &status);
	log_info("grain %s exited with status %d", g->id, status);
	grain_forget(l, g);
}

static void
grain_stop(struct launcher *l, struct running_grain *g, const char *why)
{
	log_info("grain %s stopped (%s)", g->id, why);
	grain_forget(l, g);
}

/*
 * The manifest of an installed package. Packages are root's, written only by
 * the installer, and were verified at install; the file is still opened
 * without following a symlink.
 */
static int
manifest_load(struct launcher *l, const char *package_id, struct spk_manifest **ret)
{
	_cleanup_close_ int fd = -EBADF;
	char path[PACKAGE_ID_LEN + sizeof("/" SPK_MANIFEST_NAME)], self[64];
	struct spk_error err;
	int r;

	(void)snprintf(path, sizeof(path), "%s/%s", package_id, SPK_MANIFEST_NAME);
	fd = openat(l->packages_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	(void)snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	r = spk_manifest_load(self, 0, ret, &err);
	if (r < 0)
		log_warning("The manifest of package %s is unreadable: %s", package_id,
			    err.message);
	return r;
}

/* Top-level names of the grain's tree that do not come from the package. */
static bool
outside_package(const char *path)
{
	static const char *const reserved[] = { "dev", "proc", "sys", "tmp", "var" };

	path += strspn(path, "/");
	for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
		size_t n = strlen(reserved[i]);

		if (strncmp(path, reserved[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
			return true;
	}
	return false;
}

/*
 * Does the package hold the program the manifest runs? Resolved as the grain
 * will (the package as /, its symlinks inside it): a missing program is an
 * error front can show, rather than a grain that starts and dies at once.
 */
static int
command_check(int package_fd, const char *command)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (outside_package(command))
		return 0; /* /var, /tmp...: the grain's own, nothing to check here */
	fd = (int)syscall(SYS_openat2, package_fd, command, &how, sizeof(how));
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if (!(st.st_mode & 0111))
		return -EACCES;
	return 0;
}

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)

/* The environment: Granary's defaults, then the manifest's (which win). *ret is NULL-ended. */
static int
environment_build(const struct spk_manifest *m, char ***ret)
{
	static const char path[] = "PATH=" SANDBOX_DEFAULT_PATH;
	static const char *const defaults[] = { path, "HOME=/var", "LANG=C.UTF-8" };
	char **env;
	size_t n = 0;

	env = calloc(ELEMENTSOF(defaults) + m->n_env + 1, sizeof(char *));
	if (!env)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(defaults); i++) {
		size_t len = strcspn(defaults[i], "=");
		bool overridden = false;

		for (size_t j = 0; j < m->n_env; j++)
			overridden = overridden || (strlen(m->env[j].name) == len &&
						    strncmp(m->env[j].name, defaults[i], len) == 0);
		if (!overridden && !(env[n++] = strdup(defaults[i])))
			goto oom;
	}
	for (size_t j = 0; j < m->n_env; j++)
		if (asprintf(&env[n++], "%s=%s", m->env[j].name, m->env[j].value) < 0) {
			env[--n] = NULL;
			goto oom;
		}
	*ret = env;
	return 0;
oom:
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return -ENOMEM;
}

/*
 * Start grain id of package package_id. On success *ret is in the table and
 * *ret_control is front's end of its control socket (the caller's); on
 * failure why says what went wrong, for the grain's owner.
 */
static int
grain_start(struct launcher *l, const char *id, const char *package_id, struct running_grain **ret,
	    uint16_t *ret_port, int *ret_control, char *why, size_t why_size)
{
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	_cleanup_close_ int grain_fd = -EBADF, data_fd = -EBADF, package_fd = -EBADF,
			    log_fd = -EBADF, lock_fd = -EBADF, control = -EBADF, inside = -EBADF;
	_cleanup_free_ char **argv = NULL;
	_cleanup_(strv_freep) char **envp = NULL;
	const struct grain_settings *gs = &l->config->grain;
	char root[PATH_MAX], var[PATH_MAX], port[8], timeout[32], log_max[32], cgroup_name[64];
	struct stat root_st, var_st;
	struct running_grain *g = NULL;
	struct sandbox_error error;
	int pair[2], keep[2];
	size_t argc = 0;
	uid_t uid;
	int r;

	grain_fd = openat(l->grains_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (grain_fd >= 0)
		data_fd = openat(grain_fd, "data", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (data_fd < 0) {
		r = negative_errno();
		(void)snprintf(why, why_size, "the grain has no storage%s",
			       r == -ENOENT ? "" : " it can use");
		return r;
	}
	package_fd =
		openat(l->packages_fd, package_id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (package_fd < 0) {
		r = negative_errno();
		(void)snprintf(why, why_size, "the package %s is not installed", package_id);
		return r;
	}
	r = manifest_load(l, package_id, &m);
	if (r < 0) {
		(void)snprintf(why, why_size, "the package's manifest is unreadable");
		return r;
	}
	if (m->n_command == 0) {
		(void)snprintf(why, why_size, "the package has no run command");
		return -ENOEXEC;
	}
	r = command_check(package_fd, m->command[0]);
	if (r < 0) {
		(void)snprintf(why, why_size, "the package has no program '%s' to run: %s",
			       m->command[0],
			       r == -EISDIR   ? "not a regular file"
			       : r == -EACCES ? "not executable"
					      : strerror(-r));
		return r;
	}

	r = grain_uid_take(l, data_fd, &uid, &lock_fd, why, why_size);
	if (r < 0)
		return r;
	/* grain-init writes it in place (O_RDWR: it cuts the log's oldest half). */
	log_fd = openat(grain_fd, "log",
			O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (log_fd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		r = negative_errno();
		(void)snprintf(why, why_size, "its %s could not be made: %s",
			       log_fd < 0 ? "log" : "control socket", strerror(-r));
		return r;
	}
	control = pair[0];
	inside = pair[1];

	argv = calloc(m->n_command + 13, sizeof(char *));
	r = argv ? environment_build(m, &envp) : -ENOMEM;
	if (r < 0) {
		(void)snprintf(why, why_size, "out of memory");
		return r;
	}
	(void)snprintf(port, sizeof(port), "%u", (unsigned)m->http_port);
	(void)snprintf(timeout, sizeof(timeout), "%llums",
		       (unsigned long long)gs->start_timeout_ms);
	(void)snprintf(log_max, sizeof(log_max), "%llu", (unsigned long long)gs->log_max);
	/* grain-init's options, then its "--", then the app (docs/grain-init.md). */
	argv[argc++] = (char *)"--control-fd";
	argv[argc++] = (char *)"3";
	argv[argc++] = (char *)"--port";
	argv[argc++] = port;
	argv[argc++] = (char *)"--log-fd";
	argv[argc++] = (char *)"4";
	argv[argc++] = (char *)"--start-timeout";
	argv[argc++] = timeout;
	argv[argc++] = (char *)"--log-max";
	argv[argc++] = log_max;
	argv[argc++] = (char *)"--";
	for (size_t i = 0; i < m->n_command; i++)
		argv[argc++] = (char *)m->command[i];

	/*
	 * The sandbox opens its binds by path, in its own mount namespace; it
	 * checks they are still the directories we hold (front could rename
	 * entries of STATE meanwhile).
	 */
	if ((size_t)snprintf(root, sizeof(root), "%s/packages/%s", l->state_dir, package_id) >=
		    sizeof(root) ||
	    (size_t)snprintf(var, sizeof(var), "%s/grains/%s/data", l->state_dir, id) >=
		    sizeof(var)) {
		(void)snprintf(why, why_size, "the state directory's path is too long");
		return -ENAMETOOLONG;
	}
	if (fstat(package_fd, &root_st) < 0 || fstat(data_fd, &var_st) < 0) {
		r = negative_errno();
		(void)snprintf(why, why_size, "its directories could not be read: %s",
			       strerror(-r));
		return r;
	}
	(void)snprintf(cgroup_name, sizeof(cgroup_name), "grain-%s", id);
	keep[0] = inside;
	keep[1] = log_fd;
	struct sandbox_spec spec = {
		.root = root,
		.var = var,
		.root_identity = &root_st,
		.var_identity = &var_st,
		.tmp_size = gs->tmp,
		.argv = argv,
		.envp = envp,
		.cwd = "/var",
		.host_uid = uid,
		.host_gid = uid,
		.limits = { .memory = gs->memory, .pids = gs->pids, .cpu = gs->cpu },
		.cgroup_root = l->config->cgroup_root,
		.cgroup_parent = l->cgroup_parent,
		.cgroup_name = cgroup_name,
		.init_fd = l->init_fd,
		/* grain-init's own messages: our stderr (the journal); never our stdout. */
		.stdout_fd = STDERR_FILENO,
		.stderr_fd = STDERR_FILENO,
		.keep_fds = keep,
		.n_keep_fds = ELEMENTSOF(keep),
		.flags = gs->allow_no_limits ? SANDBOX_ALLOW_NO_LIMITS : 0,
	};

	g = calloc(1, sizeof(*g));
	if (!g) {
		(void)snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	g->source = SOURCE_GRAIN;
	memcpy(g->id, id, sizeof(g->id));
	r = sandbox_start(&spec, &g->sandbox, &error);
	if (r < 0) {
		(void)snprintf(why, why_size, "the sandbox could not be built: %.440s",
			       error.message);
		free(g);
		return r;
	}
	if (!sandbox_has_limits(g->sandbox))
		log_warning("grain %s runs without resource limits (allow_no_limits)", id);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = g };
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, sandbox_pidfd(g->sandbox), &ev) < 0) {
		r = negative_errno();
		g->sandbox = sandbox_free(g->sandbox);
		free(g);
		(void)snprintf(why, why_size, "the launcher could not watch it: %s", strerror(-r));
		return r;
	}
	g->uid_lock_fd = TAKE_FD(lock_fd);
	g->uid = uid;
	g->started_at = wall_seconds();
	g->next = l->grains;
	if (l->grains)
		l->grains->prev = g;
	l->grains = g;
	l->n_grains++;
	*ret = g;
	*ret_port = m->http_port;
	*ret_control = TAKE_FD(control);
	return 0;
}

/* The ids of a request, NUL-terminated: false (and refused) unless each is valid. */
static bool
request_grain_id(const char raw[GRAIN_ID_LEN], char id[GRAIN_ID_LEN + 1])
{
	memcpy(id, raw, GRAIN_ID_LEN);
	id[GRAIN_ID_LEN] = '\0';
	return grain_id_valid(id);
}

static int
handle_grain_start(struct launcher *l, const struct ipc_message *m)
{
	char id[GRAIN_ID_LEN + 1], package_id[PACKAGE_ID_LEN + 1], why[480] = "";
	struct ipc_grain_started started = {};
	struct running_grain *g;
	uint16_t port = 0;
	int control = -EBADF, r;

	memcpy(package_id, m->payload.start.package_id, PACKAGE_ID_LEN);
	package_id[PACKAGE_ID_LEN] = '\0';
	if (!request_grain_id(m->payload.start.grain_id, id) || !package_id_valid(package_id))
		return reply_error(l, m->header.id, EINVAL, "bad grain or package id");
	if (l->refusal[0])
		return reply_errorf(l, m->header.id, EOPNOTSUPP,
				    "grains cannot run on this server: %s", l->refusal);
	/* front asks again only when it gave the running one up (its control socket closed). */
	g = grain_find(l, id);
	if (g)
		grain_stop(l, g, "started again");

	r = grain_start(l, id, package_id, &g, &port, &control, why, sizeof(why));
	if (r < 0) {
		log_warning("grain %s could not start: %s", id, why);
		return reply_errorf(l, m->header.id, r, "The grain could not start: %s", why);
	}
	started.pid = (uint32_t)sandbox_pid(g->sandbox);
	started.uid = (uint32_t)g->uid;
	started.port = port;
	log_info("grain %s started (package %s, pid %u, uid %u)", id, package_id, started.pid,
		 started.uid);
	r = ipc_send_fd(l->fd, IPC_GRAIN_STARTED, m->header.id, &started, sizeof(started), control);
	/* Ours closed: front's is the only end left, and closing it stops the grain. */
	(void)close(control);
	return r;
}

static int
handle_grain_status(struct launcher *l, const struct ipc_message *m)
{
	struct ipc_grain_stats stats = {};
	struct running_grain *g;
	char id[GRAIN_ID_LEN + 1];

	if (!request_grain_id(m->payload.grain.grain_id, id))
		return reply_error(l, m->header.id, EINVAL, "bad grain id");
	g = grain_find(l, id);
	if (g) {
		struct sandbox_stats s;

		(void)sandbox_stats(g->sandbox, &s);
		stats.running = 1;
		stats.pid = (uint32_t)sandbox_pid(g->sandbox);
		stats.memory_bytes = s.memory_bytes;
		stats.cpu_usec = s.cpu_usec;
		stats.started_at = g->started_at;
	}
	return ipc_send(l->fd, IPC_GRAIN_STATS, m->header.id, &stats, sizeof(stats));
}

static int
handle_grain_log_open(struct launcher *l, const struct ipc_message *m)
{
	_cleanup_close_ int fd = -EBADF;
	char id[GRAIN_ID_LEN + 1], path[GRAIN_ID_LEN + sizeof("/log")];

	if (!request_grain_id(m->payload.grain.grain_id, id))
		return reply_error(l, m->header.id, EINVAL, "bad grain id");
	(void)snprintf(path, sizeof(path), "%s/log", id);
	fd = openat(l->grains_fd, path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int r = negative_errno();

		return reply_error(l, m->header.id, r,
				   r == -ENOENT ? "the grain has no log yet"
						: "the grain's log could not be opened");
	}
	return ipc_send_fd(l->fd, IPC_OK, m->header.id, NULL, 0, fd);
}

static int
handle_storage(struct launcher *l, const struct ipc_message *m)
{
	char id[GRAIN_ID_LEN + 1], path[GRAIN_ID_LEN + sizeof("/data")];
	struct running_grain *g;
	uid_t uid = 0;
	int r;

	if (!request_grain_id(m->payload.grain.grain_id, id))
		return reply_error(l, m->header.id, EINVAL, "bad grain id");
	if (m->header.type == IPC_GRAIN_STORAGE_CREATE) {
		r = uid_allocate(l, &uid);
		if (r >= 0)
			r = grain_storage_create(l->grains_fd, id);
		if (r >= 0) {
			/* data/ is the grain's: its owner is the grain's host uid from now on. */
			(void)snprintf(path, sizeof(path), "%s/data", id);
			if (fchownat(l->grains_fd, path, uid, uid, AT_SYMLINK_NOFOLLOW) < 0) {
				r = negative_errno();
				(void)grain_storage_delete(l->grains_fd, id);
			}
		}
	} else {
		g = grain_find(l, id);
		if (g)
			grain_stop(l, g, "its storage is deleted");
		r = grain_storage_delete(l->grains_fd, id);
	}
	if (r < 0) {
		log_warning_errno(r, "%s of grain %s failed: %m", ipc_type_name(m->header.type),
				  id);
		return reply_error(l, m->header.id, r, "grain storage");
	}
	return ipc_send(l->fd, IPC_OK, m->header.id, NULL, 0);
}

static int
handle_grain_stop(struct launcher *l, const struct ipc_message *m)
{
	struct running_grain *g;
	char id[GRAIN_ID_LEN + 1];

	if (!request_grain_id(m->payload.grain.grain_id, id))
		return reply_error(l, m->header.id, EINVAL, "bad grain id");
	g = grain_find(l, id);
	if (g)
		grain_stop(l, g, "asked to");
	return ipc_send(l->fd, IPC_OK, m->header.id, NULL, 0);
}

/* ---- installs ------------------------------------------------------------- */

static struct install_job *
install_job_free(struct install_job *j)
{
	if (!j)
		return NULL;
	(void)safe_close(j->spk_fd);
	j->install = package_install_free(j->install);
	free(j);
	return NULL;
}

/* Start the installer of j (a running install from now on), or answer its failure. */
static int
install_job_start(struct launcher *l, struct install_job *j)
{
	int r;

	r = package_install_start(l->config->installer, l->packages_fd, j->spk_fd, &j->install);
	j->spk_fd = safe_close(j->spk_fd);
	if (r >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = j };

		if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, package_install_pidfd(j->install), &ev) <
		    0)
			r = negative_errno();
	}
	if (r < 0) {
		uint32_t id = j->request_id;

		install_job_free(j);
		if (r == -EBADF)
			return reply_error(l, id, EBADF, "the upload is not a regular file");
		log_error_errno(r, "Failed to run the package installer: %m");
		return reply_error(l, id, r, "the package installer could not run");
	}
	j->next = l->installs;
	l->installs = j;
	l->n_installs++;
	return 0;
}

static int
handle_package_install(struct launcher *l, const struct ipc_message *m)
{
	struct install_job *j;
	struct stat st;

	/* Refused at once rather than after a wait in the queue. */
	if (fstat(m->fds[0], &st) < 0 || !S_ISREG(st.st_mode)) {
		(void)close(m->fds[0]);
		return reply_error(l, m->header.id, EBADF, "the upload is not a regular file");
	}
	if (l->n_installs >= INSTALLS_RUNNING_MAX && l->n_waiting >= INSTALLS_WAITING_MAX) {
		(void)close(m->fds[0]);
		return reply_error(l, m->header.id, EBUSY,
				   "too many packages are being installed; try again later");
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		(void)close(m->fds[0]);
		return reply_error(l, m->header.id, ENOMEM, "out of memory");
	}
	j->source = SOURCE_INSTALL;
	j->request_id = m->header.id;
	j->spk_fd = m->fds[0];
	if (l->n_installs < INSTALLS_RUNNING_MAX)
		return install_job_start(l, j);
	if (l->waiting_tail)
		l->waiting_tail->next = j;
	else
		l->waiting = j;
	l->waiting_tail = j;
	l->n_waiting++;
	return 0;
}

/* j's installer exited: answer, forget it, start the next waiting one. */
static int
install_job_finished(struct launcher *l, struct install_job *j)
{
	struct package_install_result res;
	struct ipc_package_installed installed = {};
	uint32_t id = j->request_id;
	int r;

	(void)epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, package_install_pidfd(j->install), NULL);
	r = package_install_finish(j->install, &res);
	for (struct install_job **p = &l->installs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	l->n_installs--;
	install_job_free(j);

	if (r < 0) {
		log_error_errno(r, "Failed to run the package installer: %m");
		r = reply_error(l, id, r, "the package installer could not run");
	} else if (res.error < 0) {
		log_info("Package refused: %s", res.message);
		r = reply_error(l, id, res.error, res.message);
	} else {
		memcpy(installed.package_id, res.package_id, PACKAGE_ID_LEN);
		memcpy(installed.app_id, res.app_id, sizeof(installed.app_id));
		installed.existed = res.existed;
		log_info("Package %s of app %s unpacked%s", res.package_id, res.app_id,
			 res.existed ? " (it was already)" : "");
		r = ipc_send(l->fd, IPC_PACKAGE_INSTALLED, id, &installed, sizeof(installed));
	}
	while (r >= 0 && l->waiting && l->n_installs < INSTALLS_RUNNING_MAX) {
		struct install_job *next = l->waiting;

		l->waiting = next->next;
		if (!l->waiting)
			l->waiting_tail = NULL;
		l->n_waiting--;
		next->next = NULL;
		r = install_job_start(l, next);
	}
	return r;
}

/* ---- the loop ------------------------------------------------------------- */

static int
handle(struct launcher *l, const struct ipc_message *m)
{
	switch (m->header.type) {
	case IPC_PING: {
		struct ipc_pong pong = { .pid = (uint32_t)getpid(), .protocol = IPC_PROTOCOL };

		return ipc_send(l->fd, IPC_PONG, m->header.id, &pong, sizeof(pong));
	}
	case IPC_GRAIN_STORAGE_CREATE:
	case IPC_GRAIN_STORAGE_DELETE:
		return handle_storage(l, m);
	case IPC_PACKAGE_INSTALL:
		return handle_package_install(l, m);
	case IPC_PACKAGE_DELETE: {
		char package_id[PACKAGE_ID_LEN + 1];
		int r;

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
	case IPC_GRAIN_START:
		return handle_grain_start(l, m);
	case IPC_GRAIN_STOP:
		return handle_grain_stop(l, m);
	case IPC_GRAIN_STATUS:
		return handle_grain_status(l, m);
	case IPC_GRAIN_LOG_OPEN:
		return handle_grain_log_open(l, m);
	default:
		/* ipc_decode() let only launcher-bound types through. */
		return -EBADMSG;
	}
}

/* One message from front. 1: go on; 0: front is gone; < 0: stop with that error. */
static int
front_readable(struct launcher *l)
{
	struct ipc_message m;
	int r;

	r = ipc_receive(l->fd, IPC_TO_LAUNCHER, &m);
	if (r == -ECONNRESET)
		return 0; /* front went away: so do we */
	if (r == -EBADMSG) {
		log_error("Malformed message from front; dropping the connection");
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "Failed to read from front: %m");
	r = handle(l, &m);
	if (r < 0)
		return log_error_errno(r, "Failed to answer %s: %m", ipc_type_name(m.header.type));
	return 1;
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

static void
host_report(enum sandbox_check_level level, const char *what, const char *advice, void *userdata)
{
	struct launcher *l = userdata;

	if (level == SANDBOX_CHECK_REFUSE) {
		log_error("%s: %s", what, advice);
		if (!l->refusal[0])
			(void)snprintf(l->refusal, sizeof(l->refusal), "%s (%s)", what, advice);
	} else
		log_debug("Host check: %s: %s", what, advice);
}

/*
 * What this instance's grains are called on the host, from a hash of the
 * state directory's real path: the cgroup parent and the range of uids.
 */
static int
instance_setup(struct launcher *l, const char *state_dir)
{
	uint8_t hash[8];
	uint64_t h;

	l->state_dir = realpath(state_dir, NULL);
	if (!l->state_dir)
		return log_error_errno(errno, "Failed to resolve '%s': %m", state_dir);
	if (crypto_generichash(hash, sizeof(hash), (const uint8_t *)l->state_dir,
			       strlen(l->state_dir), NULL, 0) < 0)
		return log_error_errno(EIO, "Failed to hash the state directory's path");
	memcpy(&h, hash, sizeof(h));
	(void)snprintf(l->cgroup_parent, sizeof(l->cgroup_parent), "granary-%08x",
		       (unsigned)(h & 0xffffffffu));
	l->uid_first = GRAIN_UID_BASE + (uid_t)((h >> 32) % GRAIN_UID_RANGES) * GRAIN_UID_COUNT;
	l->uid_next = l->uid_first;
	return 0;
}

/*
 * Everything before the loop: directories, what a crashed launcher left
 * (unfinished unpacks, grains' cgroups and processes), the uids in use, the
 * host check, grain-init.
 */
static int
launcher_setup(struct launcher *l, const struct launcher_config *config)
{
	_cleanup_close_ int state_fd = -EBADF;
	struct sandbox_sweep swept = {};
	struct sandbox_error error;
	struct rlimit rl;
	sigset_t mask;
	int r;

	/* SIGTERM and SIGINT come through the loop, so the grains can be stopped first. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to block signals: %m");
	l->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (l->signal_fd < 0 || l->epoll_fd < 0)
		return log_error_errno(errno, "Failed to set up the event loop: %m");
	/* Each running grain holds descriptors (pidfd, uid lock, cgroup): allow many. */
	if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}

	state_fd = open(config->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state_fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", config->state_dir);
	r = launcher_dir_open(state_fd, config->state_dir, "grains", 0711, &l->grains_fd);
	if (r >= 0)
		r = launcher_dir_open(state_fd, config->state_dir, "packages", 0755,
				      &l->packages_fd);
	if (r >= 0)
		r = instance_setup(l, config->state_dir);
	if (r < 0)
		return r;
	r = package_sweep(l->packages_fd);
	if (r < 0)
		log_warning_errno(r, "Failed to remove unfinished installs: %m");

	/* A launcher killed with its grains (kill -9) left their cgroups, maybe processes. */
	r = sandbox_cgroup_sweep(config->cgroup_root, l->cgroup_parent, 0, &swept, &error);
	if (r < 0 && r != -ENOENT)
		log_warning("Failed to clean up after earlier grains: %s", error.message);
	if (swept.removed > 0 || swept.killed > 0)
		log_info("Removed %u cgroups of grains of an earlier run (%u processes killed)",
			 swept.removed, swept.killed);

	r = dir_foreach(l->grains_fd, ".", uid_scan_entry, l);
	if (r < 0)
		return log_error_errno(r, "Failed to read '%s/grains': %m", config->state_dir);
	log_debug("Grain uids: %u..%u, next %u; cgroups below '%s'", (unsigned)l->uid_first,
		  (unsigned)(l->uid_first + GRAIN_UID_COUNT - 1), (unsigned)l->uid_next,
		  l->cgroup_parent);

	(void)sandbox_check_host(NULL, config->cgroup_root, config->grain.allow_no_limits,
				 host_report, l);
	if (!config->grain_init)
		(void)snprintf(l->refusal, sizeof(l->refusal), "grain-init was not found");
	else {
		r = sandbox_load_init(config->grain_init, &l->init_fd);
		if (r < 0)
			return log_error_errno(r, "Failed to load grain-init '%s': %m",
					       config->grain_init);
	}

	struct epoll_event front = { .events = EPOLLIN, .data.ptr = &l->front_source };
	struct epoll_event sig = { .events = EPOLLIN, .data.ptr = &l->signal_source };
	if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->fd, &front) < 0 ||
	    epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->signal_fd, &sig) < 0)
		return log_error_errno(errno, "Failed to set up the event loop: %m");
	return 0;
}

/* Stop every grain and install, close everything. */
static void
launcher_release(struct launcher *l)
{
	if (l->n_grains > 0)
		log_info("Stopping %zu grains", l->n_grains);
	while (l->grains)
		grain_stop(l, l->grains, "granaryd stops");
	/* Our cgroup parent too: an instance that never runs again leaves nothing. */
	if (l->state_dir)
		(void)sandbox_cgroup_sweep(l->config->cgroup_root, l->cgroup_parent,
					   SANDBOX_SWEEP_PARENT, NULL, NULL);
	while (l->installs) {
		struct install_job *j = l->installs;

		l->installs = j->next;
		install_job_free(j);
	}
	while (l->waiting) {
		struct install_job *j = l->waiting;

		l->waiting = j->next;
		install_job_free(j);
	}
	l->grains_fd = safe_close(l->grains_fd);
	l->packages_fd = safe_close(l->packages_fd);
	l->epoll_fd = safe_close(l->epoll_fd);
	l->signal_fd = safe_close(l->signal_fd);
	l->init_fd = safe_close(l->init_fd);
	free(l->state_dir);
	l->state_dir = NULL;
}

int
launcher_main(const struct launcher_config *config)
{
	struct launcher l = {
		.config = config,
		.fd = config->fd,
		.grains_fd = -EBADF,
		.packages_fd = -EBADF,
		.epoll_fd = -EBADF,
		.signal_fd = -EBADF,
		.init_fd = -EBADF,
		.front_source = SOURCE_FRONT,
		.signal_source = SOURCE_SIGNAL,
	};
	int r;

	log_setup("granaryd-launcher");
	r = launcher_setup(&l, config);
	if (r < 0) {
		launcher_release(&l);
		return r;
	}

	log_debug("launcher ready");
	for (r = 1; r > 0;) {
		struct epoll_event event;
		/*
		 * One event per wait: a handler may free what another ready event
		 * points at (a grain stopped by a request). Level-triggered epoll
		 * queues a returned event behind the others, so none starves.
		 */
		int n = epoll_wait(l.epoll_fd, &event, 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = log_error_errno(errno, "Failed to wait for events: %m");
			break;
		}
		enum source *source = event.data.ptr;
		switch (*source) {
		case SOURCE_FRONT:
			r = front_readable(&l);
			break;
		case SOURCE_SIGNAL: {
			struct signalfd_siginfo si;

			if (read(l.signal_fd, &si, sizeof(si)) == sizeof(si) &&
			    si.ssi_signo != SIGHUP) {
				log_info("Received %s, stopping", strsignal((int)si.ssi_signo));
				r = 0;
			}
			break;
		}
		case SOURCE_GRAIN:
			grain_exited(&l, (struct running_grain *)source);
			break;
		case SOURCE_INSTALL:
			r = install_job_finished(&l, (struct install_job *)source);
			if (r >= 0)
				r = 1;
			break;
		}
	}
	launcher_release(&l);
	return r;
}
