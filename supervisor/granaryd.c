/* SPDX-License-Identifier: MIT */
/*
 * granaryd.c: the Granary daemon's entry point.
 *
 * The root parent of DESIGN.md's process model. It parses the command line,
 * takes the state directory's lock, binds the listening socket (as root, so a
 * privileged port works), and forks two children joined by a socket pair:
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
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

static const char *arg_state = "/var/lib/granary";
static const char *arg_listen = "127.0.0.1:6080";
static const char *arg_base_url;
static const char *arg_wildcard;
static const char *arg_user = "granary";

static void
help(void)
{
	printf("Usage: granaryd [OPTION]...\n"
	       "Run the Granary server in the foreground. SIGTERM or Ctrl-C stops it.\n"
	       "\n"
	       "  -s, --state DIR        keep state in DIR (default %s)\n"
	       "  -l, --listen ADDR:PORT listen there (default %s; '[::1]:6080',\n"
	       "                         ':6080' for every IPv4 address, port 0 picks one)\n"
	       "      --base-url URL     the shell's public URL (default http://localhost:PORT)\n"
	       "      --wildcard HOST    host pattern of grain sessions (default "
	       "*.localhost:PORT)\n"
	       "  -u, --user NAME        run the network-facing process as NAME (default %s)\n"
	       "  -v, --verbose          log debug messages (or GRANARY_LOG_LEVEL=debug)\n"
	       "  -h, --help             show this help\n"
	       "      --version          show the version\n"
	       "\n"
	       "Example: granaryd --state ./var --listen 127.0.0.1:6080\n",
	       arg_state, arg_listen, arg_user);
}

static int
parse_argv(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100, ARG_BASE_URL, ARG_WILDCARD };
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "base-url", required_argument, NULL, ARG_BASE_URL },
		{ "wildcard", required_argument, NULL, ARG_WILDCARD },
		{ "user", required_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:l:u:vh", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			arg_state = optarg;
			break;
		case 'l':
			arg_listen = optarg;
			break;
		case ARG_BASE_URL:
			arg_base_url = optarg;
			break;
		case ARG_WILDCARD:
			arg_wildcard = optarg;
			break;
		case 'u':
			arg_user = optarg;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
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
	}
	if (optind < argc) {
		log_error("Unexpected argument '%s'; try 'granaryd --help'", argv[optind]);
		return -EINVAL;
	}
	return 1;
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

	/* The launcher has no signal logic of its own: SIGTERM ends it. */
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	return launcher_main(userdata);
}

static int
run_front(void *userdata)
{
	return front_main(userdata);
}

/* Wait up to timeout_ms for pid to exit, then SIGKILL it. Returns its wait status. */
static int
stop_child(pid_t pid, int timeout_ms)
{
	int status = 0;

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

int
main(int argc, char *argv[])
{
	_cleanup_close_ int lock_fd = -EBADF, listen_fd = -EBADF, local_fd = -EBADF;
	char installer[PATH_MAX];
	struct listen_address listen_address;
	struct launcher_config launcher_config = {};
	struct front_config front_config = {};
	bool as_root = geteuid() == 0;
	unsigned restarts = 0;
	char where[64];
	sigset_t mask;
	uint16_t port;
	int r;

	log_setup("granaryd");
	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

	r = listen_address_parse(arg_listen, &listen_address);
	if (r < 0) {
		log_error("Invalid --listen '%s': expected ADDR:PORT such as 127.0.0.1:6080",
			  arg_listen);
		return EXIT_FAILURE;
	}

	if (as_root) {
		struct passwd *pw = getpwnam(arg_user);

		if (!pw) {
			log_error("User '%s' does not exist. granaryd runs its network-facing part "
				  "as that user; create it with:",
				  arg_user);
			log_error("  useradd --system --user-group --no-create-home --home-dir "
				  "/nonexistent --shell /usr/sbin/nologin %s",
				  arg_user);
			log_error("or name another unprivileged user with --user");
			return EXIT_FAILURE;
		}
		if (pw->pw_uid == 0 || pw->pw_gid == 0) {
			log_error("--user '%s' is root; name an unprivileged user", arg_user);
			return EXIT_FAILURE;
		}
		front_config.drop_privileges = true;
		front_config.uid = pw->pw_uid;
		front_config.gid = pw->pw_gid;
	} else
		log_warning("Not running as root: front and launcher share this user, and grains "
			    "cannot be sandboxed with a uid of their own");

	r = state_lock(arg_state, &lock_fd);
	if (r < 0)
		return EXIT_FAILURE;
	r = state_prepare(arg_state, as_root, front_config.uid, front_config.gid);
	if (r < 0)
		return EXIT_FAILURE;

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
		log_error_errno(r, "Failed to listen on %s: %m%s", arg_listen,
				r == -EADDRINUSE ? " (is another server using that port? "
						   "choose another with --listen)"
						 : "");
		return EXIT_FAILURE;
	}
	r = listen_socket_port(listen_fd, &port);
	if (r < 0)
		return log_error_errno(r, "Failed to read the listening port: %m"), EXIT_FAILURE;
	/* The admin CLI's way in: only our own uid (root) may connect. */
	r = local_socket_open(arg_state, &local_fd);
	if (r < 0)
		return log_error_errno(r, "Failed to create '%s/%s': %m", arg_state,
				       LOCAL_SOCKET_NAME),
		       EXIT_FAILURE;
	front_config.local_fd = local_fd;

	front_config.listen_fd = listen_fd;
	front_config.port = port;
	front_config.state_dir = arg_state;
	front_config.base_url = arg_base_url;
	front_config.wildcard = arg_wildcard;
	front_config.parent = getpid();
	launcher_config.state_dir = arg_state;
	r = libexec_find("granary-installer", installer, sizeof(installer));
	if (r < 0)
		return log_error_errno(r,
				       "Failed to find granary-installer beside granaryd or in "
				       "'%s': %m; is Granary installed completely?",
				       GRANARY_LIBEXECDIR),
		       EXIT_FAILURE;
	launcher_config.installer = installer;

	log_info("Granary %s listening on http://%s/ (state in '%s')", GRANARY_VERSION,
		 listen_address_format(&listen_address, port, where, sizeof(where)), arg_state);

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
			(void)stop_child(launcher, 1000);
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
			/* A child that died just before the stop (its SIGCHLD still pending
			 * behind SIGTERM) is reported, not taken for a failed stop. */
			if (waitpid(front, &status, WNOHANG) == front) {
				log_warning("front had ended (%s %d) just before the stop",
					    WIFSIGNALED(status) ? "signal" : "status",
					    WIFSIGNALED(status) ? WTERMSIG(status)
								: WEXITSTATUS(status));
				status = 0;
			} else
				/* front first: it finishes its requests; then the launcher. */
				status = stop_child(front, 10000);
			(void)stop_child(launcher, 10000);
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
		int other = stop_child(dead == front ? launcher : front, 5000);
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
