/* SPDX-License-Identifier: MIT */
/*
 * granaryd.c: the Granary daemon's entry point.
 *
 * The root parent of DESIGN.md's process model. It reads the command line and
 * the config file (config.c), reads the TLS certificate and key while it is
 * still root, takes the state directory's lock, binds the listening socket
 * (as root, so a privileged port works), and forks two children joined by a
 * socket pair:
 *
 *   launcher  stays root; does the few privileged things (launcher.c)
 *   front     becomes the unprivileged user and serves HTTP (front.c)
 *
 * It restarts them when one dies and stops both on SIGTERM/SIGINT (exit 0).
 * Each child dies with it (PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define DEFAULT_STATE  "/var/lib/granary"
#define DEFAULT_LISTEN "127.0.0.1:6080"
#define DEFAULT_USER   "granary"

static const char *arg_config;
/* Settings given as flags; they override the config file's. */
static struct granaryd_config arg_flags = GRANARYD_CONFIG_INIT;

static void
help(void)
{
	printf("Usage: granaryd [OPTION]...\n"
	       "Run the Granary server in the foreground. SIGTERM or Ctrl-C stops it.\n"
	       "\n"
	       "  -c, --config FILE      read settings from FILE, 'key = value' lines; a flag\n"
	       "                         overrides its key (installed: /etc/granary/granary.conf,\n"
	       "                         read only when named here; see docs/admin.md)\n"
	       "  -s, --state DIR        keep state in DIR (default %s)\n"
	       "  -l, --listen ADDR:PORT listen there (default %s; '[::1]:6080',\n"
	       "                         ':6080' for every IPv4 address, port 0 picks one)\n"
	       "      --base-url URL     the shell's public URL (default http://localhost:PORT,\n"
	       "                         https:// with TLS; https:// behind a TLS proxy)\n"
	       "      --wildcard *.HOST[:PORT]\n"
	       "                         host pattern of grain sessions (default "
	       "*.localhost:PORT)\n"
	       "      --tls-cert FILE    serve HTTPS with this PEM certificate (chain)...\n"
	       "      --tls-key FILE     ...and its PEM private key (both or neither; read as\n"
	       "                         root before the network-facing part drops privileges)\n"
	       "  -u, --user NAME        run the network-facing process as NAME (default %s)\n"
	       "      --grain-memory SIZE\n"
	       "                         memory of each grain, swap included (default 256M)\n"
	       "      --grain-pids N     processes and threads of each grain (default 256)\n"
	       "      --grain-cpu CPUS   CPU time of each grain: 1, 0.5... (default 1)\n"
	       "      --grain-tmp SIZE   size of each grain's /tmp (default 64M)\n"
	       "      --grain-start-timeout TIME\n"
	       "                         an app must listen within TIME (default 30s)\n"
	       "      --grain-log-max SIZE\n"
	       "                         cap of each grain's log (default 1M)\n"
	       "      --grain-idle-timeout TIME\n"
	       "                         stop a grain unused this long (default 5m)\n"
	       "      --allow-no-limits[=yes|no]\n"
	       "                         run grains where cgroup limits cannot be applied\n"
	       "                         (default no: grains do not start there)\n"
	       "      --log-level LEVEL  error, warning, notice, info (default) or debug\n"
	       "  -v, --verbose          the same as --log-level debug\n"
	       "  -h, --help             show this help\n"
	       "      --version          show the version\n"
	       "\n"
	       "A flag wins over the config file; GRANARY_LOG_LEVEL comes between them.\n"
	       "Example: granaryd --state ./var --listen 127.0.0.1:6080\n",
	       DEFAULT_STATE, DEFAULT_LISTEN, DEFAULT_USER);
}

static int
parse_argv(int argc, char *argv[])
{
	enum {
		ARG_VERSION = 0x100,
		ARG_BASE_URL,
		ARG_WILDCARD,
		ARG_TLS_CERT,
		ARG_TLS_KEY,
		ARG_LOG_LEVEL,
		ARG_GRAIN_MEMORY,
		ARG_GRAIN_PIDS,
		ARG_GRAIN_CPU,
		ARG_GRAIN_TMP,
		ARG_GRAIN_START_TIMEOUT,
		ARG_GRAIN_LOG_MAX,
		ARG_GRAIN_IDLE_TIMEOUT,
		ARG_ALLOW_NO_LIMITS,
	};
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "base-url", required_argument, NULL, ARG_BASE_URL },
		{ "wildcard", required_argument, NULL, ARG_WILDCARD },
		{ "tls-cert", required_argument, NULL, ARG_TLS_CERT },
		{ "tls-key", required_argument, NULL, ARG_TLS_KEY },
		{ "user", required_argument, NULL, 'u' },
		{ "log-level", required_argument, NULL, ARG_LOG_LEVEL },
		{ "grain-memory", required_argument, NULL, ARG_GRAIN_MEMORY },
		{ "grain-pids", required_argument, NULL, ARG_GRAIN_PIDS },
		{ "grain-cpu", required_argument, NULL, ARG_GRAIN_CPU },
		{ "grain-tmp", required_argument, NULL, ARG_GRAIN_TMP },
		{ "grain-start-timeout", required_argument, NULL, ARG_GRAIN_START_TIMEOUT },
		{ "grain-log-max", required_argument, NULL, ARG_GRAIN_LOG_MAX },
		{ "grain-idle-timeout", required_argument, NULL, ARG_GRAIN_IDLE_TIMEOUT },
		{ "allow-no-limits", optional_argument, NULL, ARG_ALLOW_NO_LIMITS },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	struct config_error err;
	const char *key, *value;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:s:l:u:vh", options, NULL)) >= 0) {
		/* Each setting flag is its config key with '-' for '_' (config.c checks both). */
		value = optarg;
		switch (c) {
		case 'c':
			arg_config = optarg;
			continue;
		case 's':
			key = "state";
			break;
		case 'l':
			key = "listen";
			break;
		case ARG_BASE_URL:
			key = "base_url";
			break;
		case ARG_WILDCARD:
			key = "wildcard";
			break;
		case ARG_TLS_CERT:
			key = "tls_cert";
			break;
		case ARG_TLS_KEY:
			key = "tls_key";
			break;
		case 'u':
			key = "user";
			break;
		case ARG_LOG_LEVEL:
			key = "log_level";
			break;
		case ARG_GRAIN_MEMORY:
			key = "grain_memory";
			break;
		case ARG_GRAIN_PIDS:
			key = "grain_pids";
			break;
		case ARG_GRAIN_CPU:
			key = "grain_cpu";
			break;
		case ARG_GRAIN_TMP:
			key = "grain_tmp";
			break;
		case ARG_GRAIN_START_TIMEOUT:
			key = "grain_start_timeout";
			break;
		case ARG_GRAIN_LOG_MAX:
			key = "grain_log_max";
			break;
		case ARG_GRAIN_IDLE_TIMEOUT:
			key = "grain_idle_timeout";
			break;
		case ARG_ALLOW_NO_LIMITS:
			key = "allow_no_limits";
			value = optarg ?: "yes";
			break;
		case 'v':
			key = "log_level";
			value = "debug";
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("granaryd %s\n", GRANARY_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'granaryd --help'.\n");
			return -EINVAL;
		}
		r = config_set(&arg_flags, key, value, &err);
		if (r < 0) {
			log_error("%s", err.message);
			return r;
		}
	}
	if (optind < argc) {
		log_error("Unexpected argument '%s'; try 'granaryd --help'", argv[optind]);
		return -EINVAL;
	}
	return 1;
}

/*
 * The settings in force: the config file (if any) with the flags over it,
 * checked as a whole. The log level applies at once: flags, then
 * GRANARY_LOG_LEVEL (read by log_setup()), then the file.
 */
static int
config_resolve(struct granaryd_config *ret)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err;
	const char *env = getenv("GRANARY_LOG_LEVEL");
	int r;

	if (arg_config) {
		r = config_load(arg_config, &c, &err);
		if (r < 0) {
			log_error("%s", err.message);
			return r;
		}
	}
	if (arg_flags.log_level >= 0)
		log_set_max_level(arg_flags.log_level);
	else if (c.log_level >= 0 && !(env && *env))
		log_set_max_level(c.log_level);
	config_merge(&c, &arg_flags);
	r = config_check(&c, &err);
	if (r < 0) {
		log_error("%s", err.message);
		return r;
	}
	*ret = c;
	c = (struct granaryd_config)GRANARYD_CONFIG_INIT;
	return 0;
}

/*
 * Create the state directory if needed and hold a lock on it for our whole
 * life, so two daemons never share one state directory.
 */
static int
state_lock(const char *state, int *ret_fd)
{
	_cleanup_close_ int dir_fd = -EBADF, lock_fd = -EBADF;

	if (mkdir(state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create state directory '%s': %m", state);
	dir_fd = open(state, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dir_fd < 0)
		return log_error_errno(errno, "Failed to open state directory '%s': %m", state);
	lock_fd = openat(dir_fd, "granaryd.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0)
		return log_error_errno(errno, "Failed to open '%s/granaryd.lock': %m", state);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return log_error_errno(EBUSY,
					       "Another granaryd is already running with state "
					       "'%s'; stop it first",
					       state);
		return log_error_errno(errno, "Failed to lock '%s/granaryd.lock': %m", state);
	}
	*ret_fd = TAKE_FD(lock_fd);
	return 0;
}

/*
 * On cgroup v2 hosts, grains' cgroups go below ours, which must then hold no
 * process: we move into a leaf of it before forking launcher and front.
 * Not fatal: a grain that cannot get its limits says so when it starts.
 */
static void
cgroup_leave_own(const char *cgroup_root)
{
	struct sandbox_cgroup_leaf leaf;
	struct sandbox_error e = {};

	if (sandbox_cgroup_leave_own(cgroup_root, &leaf, &e) < 0)
		log_warning("cgroup v2: %s; grains may not get their limits", e.message);
	else if (leaf.others)
		log_warning("cgroup v2: %u process(es) that are not Granary's share its cgroup, so "
			    "grains cannot get cgroups with limits below it; run granaryd as a "
			    "systemd service with Delegate=yes, or in a scope: systemd-run --scope "
			    "-p Delegate=yes granaryd ... (docs/admin.md)",
			    leaf.others);
	else if (leaf.moved)
		log_debug("cgroup v2: moved into a leaf of our cgroup ('supervisor'); grains go "
			  "beside it");
}

/*
 * The state directory's layout and owners (see docs/IPC.md, "Who owns what"):
 * STATE root:<front group> 0770 so front can keep its database there;
 * the database files owned by the front user; grains/ and packages/ root-only,
 * opened and checked by the launcher.
 */
static int
state_prepare(const char *state, bool as_root, uid_t uid, gid_t gid)
{
	static const char *const db_files[] = { "granary.sqlite3", "granary.sqlite3-wal",
						"granary.sqlite3-shm" };
	static const struct {
		const char *name;
		mode_t mode;
	} root_dirs[] = { { "grains", 0711 }, { "packages", 0755 } };
	_cleanup_close_ int dir_fd = -EBADF;

	if (!as_root)
		return 0;
	dir_fd = open(state, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (dir_fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", state);
	if (fchown(dir_fd, 0, gid) < 0 || fchmod(dir_fd, 0770) < 0)
		return log_error_errno(errno, "Failed to set the owner of '%s': %m", state);
	/* Files the CLI created as root become the front's; never through a symlink. */
	for (size_t i = 0; i < ELEMENTSOF(db_files); i++)
		if (fchownat(dir_fd, db_files[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != ENOENT)
			return log_error_errno(errno, "Failed to set the owner of '%s/%s': %m",
					       state, db_files[i]);
	/* The launcher's directories exist before front looks for them. */
	for (size_t i = 0; i < ELEMENTSOF(root_dirs); i++) {
		_cleanup_close_ int fd = -EBADF;
		int r = trusted_dir_open(dir_fd, root_dirs[i].name, root_dirs[i].mode, &fd);

		if (r == -EPERM)
			return log_error_errno(r,
					       "'%s/%s' is not owned by root or is writable by "
					       "others; refusing to use it",
					       state, root_dirs[i].name);
		if (r < 0)
			return log_error_errno(r, "Failed to create '%s/%s': %m", state,
					       root_dirs[i].name);
	}
	return 0;
}

static pid_t
spawn(const char *what, int keep_fd, int close_fd, int (*child)(void *), void *userdata)
{
	pid_t parent = getpid(), pid;

	pid = fork();
	if (pid < 0) {
		log_error_errno(errno, "Failed to start the %s: %m", what);
		return -1;
	}
	if (pid > 0)
		return pid;

	/* A killed parent takes its children with it (and they, later, the grains). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(EXIT_FAILURE);
	(void)close(close_fd);
	(void)keep_fd;
	_exit(child(userdata) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

static int
run_launcher(void *userdata)
{
	sigset_t none;

	/* The launcher takes SIGTERM on its own signalfd (it stops its grains first). */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	return launcher_main(userdata);
}

static int
run_front(void *userdata)
{
	return front_main(userdata);
}

/*
 * SIGTERM pid, wait up to timeout_ms for it to exit, then SIGKILL it.
 * Returns its wait status; *ret_escalated (may be NULL): the SIGKILL was ours.
 */
static int
stop_child(pid_t pid, int timeout_ms, bool *ret_escalated)
{
	int status = 0;

	if (ret_escalated)
		*ret_escalated = false;
	if (pid <= 0)
		return 0;
	(void)kill(pid, SIGTERM);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return status;
		(void)usleep(10 * 1000);
	}
	log_warning("A child (pid %d) ignored SIGTERM for %d ms; killing it", (int)pid, timeout_ms);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	if (ret_escalated)
		*ret_escalated = true;
	return status;
}

static void
describe_exit(const char *what, int status)
{
	if (WIFEXITED(status))
		log_error("The %s exited with status %d; restarting it", what, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		log_error("The %s was killed by signal %d; restarting it", what, WTERMSIG(status));
}

/* A program the launcher runs (libexec_find()), or why not, said for an admin. */
static int
helper_find(const char *name, char path[PATH_MAX])
{
	int r = libexec_find(name, path, PATH_MAX);

	if (r < 0)
		return log_error_errno(r,
				       "Failed to find %s beside granaryd or in '%s': %m; is "
				       "Granary installed completely?",
				       name, GRANARY_LIBEXECDIR);
	return 0;
}

int
main(int argc, char *argv[])
{
	_cleanup_close_ int lock_fd = -EBADF, listen_fd = -EBADF, local_fd = -EBADF;
	_cleanup_(config_release) struct granaryd_config config = GRANARYD_CONFIG_INIT;
	_cleanup_(tls_files_release) struct tls_files tls = {};
	_cleanup_free_ char *state = NULL;
	char installer[PATH_MAX], grain_init[PATH_MAX];
	struct listen_address listen_address;
	struct launcher_config launcher_config = {};
	struct front_config front_config = {};
	bool as_root = geteuid() == 0;
	const char *listen, *user, *state_arg;
	unsigned restarts = 0;
	char where[64];
	sigset_t mask;
	uint16_t port;
	int r;

	log_setup("granaryd");
	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	r = config_resolve(&config);
	if (r < 0)
		return EXIT_FAILURE;
	listen = config.listen ?: DEFAULT_LISTEN;
	user = config.user ?: DEFAULT_USER;
	state_arg = config.state ?: DEFAULT_STATE;

	/* Checked by config.c already; this fills the address in. */
	r = listen_address_parse(listen, &listen_address);
	if (r < 0)
		return log_error_errno(r, "Invalid listen address '%s'", listen), EXIT_FAILURE;

	if (as_root) {
		struct passwd *pw = getpwnam(user);

		if (!pw) {
			log_error("User '%s' does not exist. granaryd runs its network-facing part "
				  "as that user; create it with:",
				  user);
			log_error("  useradd --system --user-group --no-create-home --home-dir "
				  "/nonexistent --shell /usr/sbin/nologin %s",
				  user);
			log_error("or name another unprivileged user with --user (or 'user =' in "
				  "the config file)");
			return EXIT_FAILURE;
		}
		if (pw->pw_uid == 0 || pw->pw_gid == 0) {
			log_error("The user '%s' is root; name an unprivileged one with --user (or "
				  "'user =' in the config file)",
				  user);
			return EXIT_FAILURE;
		}
		front_config.drop_privileges = true;
		front_config.uid = pw->pw_uid;
		front_config.gid = pw->pw_gid;
	} else
		log_warning("Not running as root: front and launcher share this user, and grains "
			    "cannot be sandboxed with a uid of their own");

	/*
	 * Read here, as root and before front drops privileges: the key file is
	 * usually readable by root only. front gets the bytes (front_config).
	 */
	if (config.tls_cert) {
		struct config_error err;

		r = tls_load(config.tls_cert, config.tls_key, &tls, &err);
		if (r < 0)
			return log_error("%s", err.message), EXIT_FAILURE;
	}

	r = state_lock(state_arg, &lock_fd);
	if (r < 0)
		return EXIT_FAILURE;
	/* Absolute from here on: front and launcher chdir() into it. */
	state = realpath(state_arg, NULL);
	if (!state)
		return log_error_errno(errno, "Failed to resolve '%s': %m", state_arg),
		       EXIT_FAILURE;
	r = state_prepare(state, as_root, front_config.uid, front_config.gid);
	if (r < 0)
		return EXIT_FAILURE;

	if (as_root)
		cgroup_leave_own(launcher_config.cgroup_root);

	/*
	 * Signals are taken synchronously: blocked here, before any fork, so the
	 * children start with them blocked too (front takes them with sigwait;
	 * the launcher unblocks them).
	 */
	(void)signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to block signals: %m"), EXIT_FAILURE;

	/* Bound here, as root, so a privileged port works; front inherits the socket. */
	r = listen_socket_open(&listen_address, &listen_fd);
	if (r < 0) {
		log_error_errno(r, "Failed to listen on %s: %m%s", listen,
				r == -EADDRINUSE ? " (is another server using that port? "
						   "choose another with --listen)"
						 : "");
		return EXIT_FAILURE;
	}
	r = listen_socket_port(listen_fd, &port);
	if (r < 0)
		return log_error_errno(r, "Failed to read the listening port: %m"), EXIT_FAILURE;
	/* The admin CLI's way in: only our own uid (root) may connect. */
	r = local_socket_open(state, &local_fd);
	if (r < 0)
		return log_error_errno(r, "Failed to create '%s/%s': %m", state, LOCAL_SOCKET_NAME),
		       EXIT_FAILURE;
	front_config.local_fd = local_fd;

	front_config.listen_fd = listen_fd;
	front_config.port = port;
	front_config.state_dir = state;
	front_config.base_url = config.base_url;
	front_config.wildcard = config.wildcard;
	front_config.tls_cert = tls.cert;
	front_config.tls_key = tls.key;
	front_config.tls_key_size = tls.key_size;
	front_config.parent = getpid();
	launcher_config.state_dir = state;
	if (helper_find("granary-installer", installer) < 0 ||
	    helper_find("grain-init", grain_init) < 0)
		return EXIT_FAILURE;
	launcher_config.installer = installer;
	launcher_config.grain_init = grain_init;
	/* Checked by config.c already; this fills the numbers in. */
	r = config_grain_settings(&config, &launcher_config.grain);
	if (r < 0)
		return log_error_errno(r, "Invalid grain settings: %m"), EXIT_FAILURE;
	front_config.grain_idle_timeout = (unsigned)(launcher_config.grain.idle_timeout_ms / 1000);

	log_info("Granary %s listening on %s://%s/ (state in '%s')", GRANARY_VERSION,
		 tls.cert ? "https" : "http",
		 listen_address_format(&listen_address, port, where, sizeof(where)), state);

	for (;;) {
		_cleanup_close_ int launcher_end = -EBADF, front_end = -EBADF;
		int pair[2], sig, status = 0;
		pid_t launcher, front, dead = 0;
		bool stopping = false;

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
			return log_error_errno(errno, "Failed to create a socket pair: %m"),
			       EXIT_FAILURE;
		launcher_end = pair[0];
		front_end = pair[1];
		launcher_config.fd = launcher_end;
		front_config.launcher_fd = front_end;

		launcher =
			spawn("launcher", launcher_end, front_end, run_launcher, &launcher_config);
		front = launcher > 0
				? spawn("front", front_end, launcher_end, run_front, &front_config)
				: -1;
		launcher_end = safe_close(launcher_end);
		front_end = safe_close(front_end);
		if (launcher < 0 || front < 0) {
			(void)stop_child(launcher, 1000, NULL);
			return EXIT_FAILURE;
		}

		while (!dead && !stopping) {
			siginfo_t info;

			sig = sigwaitinfo(&mask, &info);
			if (sig < 0) {
				if (errno == EINTR)
					continue;
				log_error_errno(errno, "Failed to wait for signals: %m");
				stopping = true;
			} else if (sig == SIGCHLD) {
				pid_t pid;

				while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
					if (pid == launcher || pid == front) {
						dead = pid;
						break;
					}
			} else if (sig == SIGHUP)
				log_info("SIGHUP: nothing to reload yet");
			else {
				log_info("Received %s, stopping",
					 sig == SIGTERM ? "SIGTERM" : "SIGINT");
				stopping = true;
			}
		}

		if (stopping) {
			bool escalated = false;

			/*
			 * front first: it finishes its requests; then the launcher.
			 * A front that died on its own just before the stop (its
			 * SIGCHLD still pending behind SIGTERM, or a signal on its
			 * way) is reported, not taken for a failed stop: a front
			 * stopped by our SIGTERM exits 0, or dies of our SIGKILL.
			 */
			if (waitpid(front, &status, WNOHANG) == front) {
				log_warning("front had ended (%s %d) just before the stop",
					    WIFSIGNALED(status) ? "signal" : "status",
					    WIFSIGNALED(status) ? WTERMSIG(status)
								: WEXITSTATUS(status));
				status = 0;
			} else
				status = stop_child(front, 10000, &escalated);
			if (WIFSIGNALED(status) && !escalated && WTERMSIG(status) != SIGTERM) {
				log_warning("front had ended (signal %d) just before the stop",
					    WTERMSIG(status));
				status = 0;
			}
			(void)stop_child(launcher, 10000, NULL);
			log_info("Stopped");
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? EXIT_SUCCESS
									     : EXIT_FAILURE;
		}

		/*
		 * One died: stop the other too (front's launcher connection and the
		 * launcher's front are one pair) and start both again, backing off
		 * so a child that dies at once does not spin the machine.
		 */
		/*
		 * The other one usually follows at once (the launcher exits when its
		 * front goes), so it may be the one reaped first: tell what happened
		 * to each, and only what is not a clean exit.
		 */
		int other = stop_child(dead == front ? launcher : front, 5000, NULL);
		int front_status = dead == front ? status : other;
		int launcher_status = dead == front ? other : status;

		if (!(WIFEXITED(front_status) && WEXITSTATUS(front_status) == 0))
			describe_exit("front", front_status);
		if (!(WIFEXITED(launcher_status) && WEXITSTATUS(launcher_status) == 0))
			describe_exit("launcher", launcher_status);
		restarts++;
		(void)usleep((useconds_t)MIN(100000U << MIN(restarts, 6U), 5000000U));
	}
}
