/* SPDX-License-Identifier: MIT */
/*
 * probe.c: the grain under test. A static binary the security tests put in a
 * package and run through granary-sandbox, exactly as a grain runs (mode G),
 * and also directly on the host (N: no filter, the negative control) and
 * under the filter alone as root (O).
 *
 * It measures and reports; the harness (tests/security/sandboxlib.py)
 * decides what each mode must show. Output, one line per item on stdout:
 *
 *	syscall ID RESULT          RESULT: ret:N | errno:ENAME | signal:SIGNAME
 *	check NAME pass|fail DETAIL
 *
 * Commands:
 *	probe syscalls FILE        run each case of FILE ("ID NR A0..A5 [int80]"),
 *	                           each in a forked child so nothing it does
 *	                           (a namespace, a personality, a kill) outlives it
 *	probe check NAME [ARG]...  run one environment check (see checks[])
 *	probe noop | whoami | sleep | serve PORT | print-env
 *
 * Every syscall uses harmless arguments (fd -1, pointer 1, bad flags): an
 * allowed call fails in the kernel with EBADF, EFAULT or EINVAL, a filtered
 * one with the filter's ENOSYS, and nothing changes on the host in mode N.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/securebits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

static const char *self_path = "/proc/self/exe";

/* ---- output -------------------------------------------------------------- */

static void result(const char *name, bool ok, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void
result(const char *name, bool ok, const char *format, ...)
{
	char detail[1024] = "";
	va_list ap;

	va_start(ap, format);
	(void)vsnprintf(detail, sizeof(detail), format, ap);
	va_end(ap);
	for (char *p = detail; *p; p++)
		if (*p == '\n')
			*p = ' ';
	printf("check %s %s %s\n", name, ok ? "pass" : "fail", detail);
	fflush(stdout);
}

static const char *
errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

/* ---- syscall cases -------------------------------------------------------- */

static long
int80(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

static void
run_case(const char *id, long nr, const long a[6], bool use_int80)
{
	int p[2];
	pid_t pid;
	int status;
	long buf[2] = { 0, 0 };

	if (pipe(p) < 0) {
		printf("syscall %s error:pipe\n", id);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		pid_t me = getpid();
		long r;
		int err = 0;

		close(p[0]);
		alarm(5);
		if (use_int80) {
			r = int80(nr, a[0], a[1], a[2]);
			if (r < 0 && r > -4096) {
				err = (int)-r;
				r = -1;
			}
		} else {
			errno = 0;
			r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
			err = r < 0 ? errno : 0;
		}
		if (getpid() != me) /* the new process of a clone that succeeded */
			_exit(0);
		buf[0] = r;
		buf[1] = err;
		(void)!write(p[1], buf, sizeof(buf));
		_exit(0);
	}
	close(p[1]);
	if (pid < 0) {
		printf("syscall %s error:fork\n", id);
		close(p[0]);
		return;
	}
	ssize_t n = read(p[0], buf, sizeof(buf));
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		printf("syscall %s signal:%s\n", id, sigabbrev_np(WTERMSIG(status)) ?: "?");
	else if (n != sizeof(buf))
		printf("syscall %s error:no-result\n", id);
	else if (buf[0] < 0)
		printf("syscall %s errno:%s\n", id, errname((int)buf[1]));
	else
		printf("syscall %s ret:%ld\n", id, buf[0]);
	fflush(stdout);
}

static int
cmd_syscalls(const char *file)
{
	char line[512];
	FILE *f = fopen(file, "re");

	if (!f) {
		fprintf(stderr, "probe: cannot open '%s': %s\n", file, strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		char id[128], flag[16] = "";
		long nr, a[6];
		int n = sscanf(line, "%127s %li %li %li %li %li %li %li %15s", id, &nr, &a[0],
			       &a[1], &a[2], &a[3], &a[4], &a[5], flag);

		if (n < 8)
			continue;
		run_case(id, nr, a, strcmp(flag, "int80") == 0);
	}
	fclose(f);
	return 0;
}

/* ---- helpers --------------------------------------------------------------- */

/* "Key:\tvalue" of /proc/self/status, or NULL. */
static const char *
status_field(const char *key)
{
	static char value[256];
	char line[512];
	size_t klen = strlen(key);
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			const char *v = line + klen + 1;
			v += strspn(v, " \t");
			snprintf(value, sizeof(value), "%s", v);
			value[strcspn(value, "\n")] = '\0';
			fclose(f);
			return value;
		}
	fclose(f);
	return NULL;
}

static bool
try_create(const char *path, int *ret_errno)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	*ret_errno = fd < 0 ? errno : 0;
	if (fd < 0)
		return false;
	close(fd);
	unlink(path);
	return true;
}

/* Run self with argv in a child, return its stdout (first line) and status. */
static int
run_self(char *const argv[], char *out, size_t size)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	n = read(p[0], out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	return status;
}

static int
tcp_listen(const char *ip, int port, int *ret_errno)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd < 0) {
		*ret_errno = errno;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
		*ret_errno = errno;
		close(fd);
		return -1;
	}
	*ret_errno = 0;
	return fd;
}

static int
tcp_connect(const char *ip, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* ---- A: identity and privilege ---------------------------------------------- */

static void
check_cap(const char *name, const char *field)
{
	const char *v = status_field(field);
	result(name, v && strcmp(v, "0000000000000000") == 0, "%s=%s", field, v ? v : "?");
}

static int
check_identity(const char *name, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (strcmp(name, "cap-inheritable") == 0)
		check_cap(name, "CapInh");
	else if (strcmp(name, "cap-permitted") == 0)
		check_cap(name, "CapPrm");
	else if (strcmp(name, "cap-effective") == 0)
		check_cap(name, "CapEff");
	else if (strcmp(name, "cap-bounding") == 0)
		check_cap(name, "CapBnd");
	else if (strcmp(name, "cap-ambient") == 0)
		check_cap(name, "CapAmb");
	else if (strcmp(name, "no-new-privs") == 0) {
		const char *v = status_field("NoNewPrivs");
		result(name, v && strcmp(v, "1") == 0, "NoNewPrivs=%s", v ? v : "?");
	} else if (strcmp(name, "seccomp-filter") == 0) {
		const char *v = status_field("Seccomp");
		result(name, v && strcmp(v, "2") == 0, "Seccomp=%s", v ? v : "?");
	} else if (strcmp(name, "uid-1000") == 0) {
		uid_t r, e, s;
		getresuid(&r, &e, &s);
		result(name, r == 1000 && e == 1000 && s == 1000, "uids=%u,%u,%u", r, e, s);
	} else if (strcmp(name, "gid-1000") == 0) {
		gid_t r, e, s;
		getresgid(&r, &e, &s);
		result(name, r == 1000 && e == 1000 && s == 1000, "gids=%u,%u,%u", r, e, s);
	} else if (strcmp(name, "no-groups") == 0) {
		int n = getgroups(0, NULL);
		result(name, n == 0, "groups=%d", n);
	} else if (strcmp(name, "setuid-0-fails") == 0) {
		int r = setuid(0), e = errno;
		result(name, r < 0, "setuid(0)=%d %s", r, r < 0 ? errname(e) : "");
	} else if (strcmp(name, "securebits-locked") == 0) {
		int bits = prctl(PR_GET_SECUREBITS);
		int want = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
			   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
			   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
		result(name, bits == want, "securebits=%#x want %#x", bits, want);
	} else if (strcmp(name, "setgroups-denied") == 0) {
		char buf[16] = "";
		int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		buf[strcspn(buf, "\n")] = '\0';
		result(name, strcmp(buf, "deny") == 0, "setgroups=%s", buf);
	} else if (strcmp(name, "exec-gains-nothing") == 0) {
		/* argv[0]: a setuid-root or file-capability copy of this probe. */
		char out[256];
		char *args[] = { argv[0], (char *)"whoami", NULL };
		int status = run_self(args, out, sizeof(out));
		result(name,
		       WIFEXITED(status) && strncmp(out, "euid=1000 ", 10) == 0 &&
			       strstr(out, "capeff=0000000000000000"),
		       "%s: %s", argv[0], out);
	} else if (strcmp(name, "fork-works") == 0) {
		pid_t pid = fork();
		int status = 0;
		if (pid == 0)
			_exit(7);
		if (pid > 0)
			waitpid(pid, &status, 0);
		result(name, pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 7, "fork=%d",
		       pid);
	} else if (strcmp(name, "exec-works") == 0) {
		char out[256];
		char *args[] = { (char *)self_path, (char *)"noop", NULL };
		int status = run_self(args, out, sizeof(out));
		result(name, WIFEXITED(status) && WEXITSTATUS(status) == 0, "status=%#x", status);
	} else
		return -1;
	return 0;
}

static void *
thread_main(void *arg)
{
	return arg;
}

static void *
thread_sleep(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

/* ---- C: file system ------------------------------------------------------------ */

static const char *walk_needle;
static char walk_found[4096];
static unsigned long walk_count;

static int
walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	walk_count++;
	if (strcmp(path + ftw->base, walk_needle) == 0 && !walk_found[0])
		snprintf(walk_found, sizeof(walk_found), "%s", path);
	if (strcmp(path, "/proc") == 0)
		return FTW_SKIP_SUBTREE;
	return FTW_CONTINUE;
}

/* Split a mountinfo line into mount point, per-mount options and optional fields. */
static bool
mountinfo_next(FILE *f, char *point, size_t psize, char *opts, size_t osize, char *optional,
	       size_t qsize)
{
	char line[4096];
	char *fields[16];
	int n = 0;

	if (!fgets(line, sizeof(line), f))
		return false;
	for (char *save = NULL, *t = strtok_r(line, " \n", &save); t && n < 16;
	     t = strtok_r(NULL, " \n", &save))
		fields[n++] = t;
	snprintf(point, psize, "%s", n > 4 ? fields[4] : "");
	snprintf(opts, osize, "%s", n > 5 ? fields[5] : "");
	optional[0] = '\0';
	for (int i = 6; i < n && strcmp(fields[i], "-") != 0; i++) {
		size_t len = strlen(optional);
		snprintf(optional + len, qsize - len, "%s ", fields[i]);
	}
	return true;
}

static bool
has_opt(const char *opts, const char *opt)
{
	size_t n = strlen(opt);
	for (const char *p = opts; (p = strstr(p, opt)); p += n)
		if ((p == opts || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

static bool
is_device_bind(const char *point)
{
	static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
					     "/dev/urandom" };
	for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
		if (strcmp(point, nodes[i]) == 0)
			return true;
	return false;
}

static int
check_mounts(const char *name)
{
	char point[1024], opts[512], optional[512], bad[2048] = "";
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int count = 0;

	if (!f) {
		result(name, false, "cannot read mountinfo: %s", strerror(errno));
		return 0;
	}
	while (mountinfo_next(f, point, sizeof(point), opts, sizeof(opts), optional,
			      sizeof(optional))) {
		bool ok = true;

		count++;
		if (strcmp(name, "mounts-nosuid") == 0)
			ok = has_opt(opts, "nosuid");
		else if (strcmp(name, "mounts-nodev") == 0)
			ok = has_opt(opts, "nodev") || is_device_bind(point);
		else if (strcmp(name, "mounts-rw-only-var-tmp-shm") == 0)
			ok = has_opt(opts, "ro") || strcmp(point, "/var") == 0 ||
			     strcmp(point, "/tmp") == 0 || strcmp(point, "/dev/shm") == 0;
		else if (strcmp(name, "mounts-not-shared") == 0)
			ok = !strstr(optional, "shared:");
		if (!ok && strlen(bad) < sizeof(bad) - 200) {
			size_t len = strlen(bad);
			snprintf(bad + len, sizeof(bad) - len, "%s(%s%s) ", point, opts,
				 optional[0] ? " " : "");
		}
	}
	fclose(f);
	result(name, count > 0 && bad[0] == '\0', "%d mounts; offending: %s", count,
	       bad[0] ? bad : "none");
	return 0;
}

static int
check_filesystem(const char *name, int argc, char **argv)
{
	int e;

	if (strcmp(name, "write-denied") == 0) {
		/* argv[0]: a directory; creating a file in it must fail with EROFS. */
		char path[4096];
		snprintf(path, sizeof(path), "%s/.probe-write-%d", argc > 0 ? argv[0] : "/",
			 getpid());
		bool created = try_create(path, &e);
		result(name, !created && e == EROFS, "%s: %s", path,
		       created ? "created" : errname(e));
	} else if (strcmp(name, "write-allowed") == 0) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/.probe-write-%d", argc > 0 ? argv[0] : "/",
			 getpid());
		bool created = try_create(path, &e);
		result(name, created, "%s: %s", path, created ? "created" : errname(e));
	} else if (strcmp(name, "open-write-denied") == 0) {
		/* argv[0]: a file that must not open for writing. */
		int fd = open(argc > 0 ? argv[0] : "/", O_WRONLY | O_CLOEXEC);
		e = errno;
		if (fd >= 0)
			close(fd);
		result(name, fd<0, "%s: %s", argc> 0 ? argv[0] : "?",
		       fd < 0 ? errname(e) : "opened");
	} else if (strcmp(name, "open-read-denied") == 0) {
		int fd = open(argc > 0 ? argv[0] : "/", O_RDONLY | O_CLOEXEC);
		e = errno;
		if (fd >= 0)
			close(fd);
		result(name, fd<0, "%s: %s", argc> 0 ? argv[0] : "?",
		       fd < 0 ? errname(e) : "opened");
	} else if (strcmp(name, "absent") == 0) {
		struct stat st;
		int r = lstat(argc > 0 ? argv[0] : "/", &st);
		e = errno;
		result(name, r < 0 && e == ENOENT, "%s: %s", argc > 0 ? argv[0] : "?",
		       r < 0 ? errname(e) : "exists");
	} else if (strcmp(name, "dotdot-is-root") == 0) {
		struct stat root, up, upup;
		stat("/", &root);
		stat("/..", &up);
		stat("/../../..", &upup);
		result(name,
		       root.st_dev == up.st_dev && root.st_ino == up.st_ino &&
			       root.st_dev == upup.st_dev && root.st_ino == upup.st_ino,
		       "/ %lu:%lu, /.. %lu:%lu", (unsigned long)root.st_dev,
		       (unsigned long)root.st_ino, (unsigned long)up.st_dev,
		       (unsigned long)up.st_ino);
	} else if (strcmp(name, "find-name") == 0 || strcmp(name, "no-name") == 0) {
		/* Walk the whole tree but /proc for a file called argv[0]. */
		walk_needle = argc > 0 ? argv[0] : "";
		walk_found[0] = '\0';
		walk_count = 0;
		nftw("/", walk_one, 64, FTW_PHYS | FTW_ACTIONRETVAL);
		bool found = walk_found[0] != '\0';
		result(name, strcmp(name, "find-name") == 0 ? found : !found,
		       "%lu entries walked; %s", walk_count, found ? walk_found : "not found");
	} else if (strncmp(name, "mounts-", 7) == 0)
		return check_mounts(name);
	else if (strcmp(name, "mknod-device-denied") == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/.probe-null-%d", getpid());
		int r = mknod(path, S_IFCHR | 0600, makedev(1, 3));
		e = errno;
		if (r >= 0)
			unlink(path);
		result(name, r < 0 && e == EPERM, "mknod: %s", r < 0 ? errname(e) : "created");
	} else if (strcmp(name, "mkfifo-works") == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/tmp/.probe-fifo-%d", getpid());
		int r = mknod(path, S_IFIFO | 0600, 0);
		e = errno;
		if (r >= 0)
			unlink(path);
		result(name, r >= 0, "mkfifo: %s", r < 0 ? errname(e) : "created");
	} else if (strcmp(name, "dir-exactly") == 0) {
		/* argv[0]: a directory; argv[1..]: exactly the names it must hold. */
		char got[2048] = "";
		int n = 0, matched = 0;
		DIR *d = opendir(argc > 0 ? argv[0] : "/");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			n++;
			size_t len = strlen(got);
			snprintf(got + len, sizeof(got) - len, "%s ", de->d_name);
			for (int i = 1; i < argc; i++)
				if (strcmp(argv[i], de->d_name) == 0)
					matched++;
		}
		if (d)
			closedir(d);
		result(name, d && n == argc - 1 && matched == argc - 1, "%s: %s", argv[0], got);
	} else if (strcmp(name, "proc-only-pids") == 0) {
		/* /proc holds processes and nothing of the host's: no sys, kcore, meminfo... */
		char other[1024] = "";
		int pids = 0;
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
				pids++;
			else if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
				 strcmp(de->d_name, "self") && strcmp(de->d_name, "thread-self") &&
				 strlen(other) < sizeof(other) - 300) {
				size_t len = strlen(other);
				snprintf(other + len, sizeof(other) - len, "%s ", de->d_name);
			}
		}
		if (d)
			closedir(d);
		result(name, d && pids > 0 && !other[0], "%d processes; other entries: %s", pids,
		       other[0] ? other : "none");
	} else if (strcmp(name, "exe-not-writable") == 0) {
		/* No /proc/PID/exe of any process we can see opens for writing. */
		char bad[1024] = "";
		int seen = 0;
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[300];
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/exe", de->d_name);
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			seen++;
			if (fd >= 0) {
				size_t len = strlen(bad);
				snprintf(bad + len, sizeof(bad) - len, "%s ", path);
				close(fd);
			}
		}
		if (d)
			closedir(d);
		result(name, seen > 0 && !bad[0], "%d processes; writable: %s", seen,
		       bad[0] ? bad : "none");
	} else if (strcmp(name, "fill-tmp") == 0) {
		/* Fill argv[0] (a directory) until ENOSPC; report the bytes written. */
		char path[4096], buf[65536];
		long long total = 0;
		memset(buf, 'x', sizeof(buf));
		snprintf(path, sizeof(path), "%s/.probe-fill", argc > 0 ? argv[0] : "/tmp");
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		e = fd < 0 ? errno : 0;
		while (fd >= 0) {
			ssize_t n = write(fd, buf, sizeof(buf));
			if (n <= 0) {
				e = n < 0 ? errno : ENOSPC;
				break;
			}
			total += n;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
		result(name, e == ENOSPC, "bytes=%lld %s", total, errname(e));
	} else if (strcmp(name, "wait-then-absent") == 0) {
		/* Say ready, wait for argv[1] to appear, then argv[0] must be empty and no mount. */
		struct stat st;
		printf("ready\n");
		fflush(stdout);
		for (int i = 0; i < 3000 && stat(argv[1], &st) < 0; i++)
			usleep(10000);
		int entries = 0;
		DIR *d = opendir(argv[0]);
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				entries++;
		if (d)
			closedir(d);
		char point[1024], opts[512], optional[512];
		bool mounted = false;
		FILE *f = fopen("/proc/self/mountinfo", "re");
		while (f && mountinfo_next(f, point, sizeof(point), opts, sizeof(opts), optional,
					   sizeof(optional)))
			mounted = mounted || strcmp(point, argv[0]) == 0;
		if (f)
			fclose(f);
		result(name, entries == 0 && !mounted, "%s: %d entries, %s", argv[0], entries,
		       mounted ? "a mount point" : "not a mount point");
	} else
		return -1;
	return 0;
}

/* ---- D: processes, IPC, network ----------------------------------------------- */

static int
check_process(const char *name, int argc, char **argv)
{
	if (strcmp(name, "kill-all") == 0) {
		/*
		 * kill(-1, SIGKILL) reaches every process we may signal but
		 * ourselves (and a pid namespace's init): our sibling must die;
		 * the host's processes of the same host uid must not (the
		 * harness watches one).
		 */
		pid_t sibling = fork();
		int status = 0;
		if (sibling == 0) {
			pause();
			_exit(0);
		}
		usleep(20000);
		int r = kill(-1, SIGKILL), e = errno;
		waitpid(sibling, &status, 0);
		result(name, r == 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		       "kill(-1): %s; sibling status %#x", r < 0 ? errname(e) : "ok", status);
	} else if (strcmp(name, "few-pids") == 0) {
		/* Only the grain's processes: pid 1, us, maybe a few; all small numbers. */
		int n = 0, max = 0;
		DIR *d = opendir("/proc");
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (de->d_name[0] >= '1' && de->d_name[0] <= '9') {
				int pid = (int)strtol(de->d_name, NULL, 10);
				n++;
				max = pid > max ? pid : max;
			}
		if (d)
			closedir(d);
		result(name, n > 0 && n <= 10 && max < 100, "%d processes, highest pid %d", n, max);
	} else if (strcmp(name, "pid-absent") == 0) {
		int pid = argc > 0 ? (int)strtol(argv[0], NULL, 10) : 0;
		int r = kill(pid, 0), e = errno;
		result(name, r < 0 && e == ESRCH, "kill(%d, 0): %s", pid,
		       r < 0 ? errname(e) : "exists");
	} else if (strcmp(name, "sysv-absent") == 0) {
		/* argv[0]: a key the host made a shm segment, semaphore and queue with. */
		key_t key = argc > 0 ? (key_t)strtol(argv[0], NULL, 0) : 0;
		int shm = shmget(key, 0, 0), e1 = errno;
		int sem = semget(key, 0, 0), e2 = errno;
		int msg = msgget(key, 0), e3 = errno;
		result(name,
		       shm < 0 && e1 == ENOENT && sem < 0 && e2 == ENOENT && msg < 0 &&
			       e3 == ENOENT,
		       "shm %s, sem %s, msg %s", shm < 0 ? errname(e1) : "found",
		       sem < 0 ? errname(e2) : "found", msg < 0 ? errname(e3) : "found");
	} else if (strcmp(name, "hostname") == 0) {
		struct utsname u;
		uname(&u);
		result(name, argc > 0 && strcmp(u.nodename, argv[0]) == 0, "nodename=%s want %s",
		       u.nodename, argc > 0 ? argv[0] : "?");
	} else if (strcmp(name, "abstract-unreachable") == 0 ||
		   strcmp(name, "unix-unreachable") == 0) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		socklen_t len;
		const char *target = argc > 0 ? argv[0] : "";
		if (strcmp(name, "abstract-unreachable") == 0) {
			a.sun_path[0] = '\0';
			snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "%s", target);
			len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(target);
		} else {
			snprintf(a.sun_path, sizeof(a.sun_path), "%s", target);
			len = sizeof(a);
		}
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r = connect(fd, (struct sockaddr *)&a, len), e = errno;
		close(fd);
		result(name, r < 0, "connect %s: %s", target, r < 0 ? errname(e) : "connected");
	} else if (strcmp(name, "abstract-listen") == 0) {
		/* Listen on an abstract name, say ready, stay until killed. */
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1, "%s", argc > 0 ? argv[0] : "x");
		int r = bind(fd, (struct sockaddr *)&a,
			     offsetof(struct sockaddr_un, sun_path) + 1 + strlen(a.sun_path + 1));
		if (r >= 0)
			r = listen(fd, 4);
		result(name, r >= 0, "listening: %s", r < 0 ? errname(errno) : "yes");
		printf("ready\n");
		fflush(stdout);
		for (;;)
			pause();
	} else if (strcmp(name, "only-lo") == 0) {
		char line[512], got[512] = "";
		int n = 0, lo = 0;
		FILE *f = fopen("/proc/self/net/dev", "re");
		while (f && fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (!colon)
				continue;
			*colon = '\0';
			char *ifname = line + strspn(line, " ");
			n++;
			lo += strcmp(ifname, "lo") == 0;
			size_t len = strlen(got);
			snprintf(got + len, sizeof(got) - len, "%s ", ifname);
		}
		if (f)
			fclose(f);
		result(name, n == 1 && lo == 1, "interfaces: %s", got);
	} else if (strcmp(name, "tcp-unreachable") == 0) {
		int port = argc > 0 ? (int)strtol(argv[0], NULL, 10) : 0;
		int fd = tcp_connect("127.0.0.1", port);
		if (fd >= 0)
			close(fd);
		result(name, fd < 0, "connect 127.0.0.1:%d: %s", port,
		       fd < 0 ? errname(-fd) : "connected");
	} else if (strcmp(name, "tcp-listen") == 0) {
		/* Listen on 127.0.0.1:argv[0], say ready, stay until killed. */
		int e, port = argc > 0 ? (int)strtol(argv[0], NULL, 10) : 0;
		int fd = tcp_listen("127.0.0.1", port, &e);
		result(name, fd >= 0, "listen 127.0.0.1:%d: %s", port, fd < 0 ? errname(e) : "yes");
		printf("ready\n");
		fflush(stdout);
		for (;;)
			pause();
	} else if (strcmp(name, "bind-port") == 0) {
		/* argv[0]: port; argv[1]: "ok" or an errno name expected. */
		int e, port = argc > 0 ? (int)strtol(argv[0], NULL, 10) : 0;
		int fd = tcp_listen("127.0.0.1", port, &e);
		const char *want = argc > 1 ? argv[1] : "ok";
		bool ok = strcmp(want, "ok") == 0 ? fd >= 0
						  : (fd < 0 && strcmp(errname(e), want) == 0);
		if (fd >= 0)
			close(fd);
		result(name, ok, "bind 127.0.0.1:%d: %s, want %s", port, fd < 0 ? errname(e) : "ok",
		       want);
	} else if (strcmp(name, "loopback-works") == 0) {
		int e, lfd = tcp_listen("127.0.0.1", 8000, &e);
		int cfd = lfd >= 0 ? tcp_connect("127.0.0.1", 8000) : -1;
		int afd = cfd >= 0 ? accept(lfd, NULL, NULL) : -1;
		result(name, afd >= 0, "listen %s, connect %s", lfd >= 0 ? "ok" : errname(e),
		       cfd >= 0 ? "ok" : errname(-cfd));
		close(afd);
		close(cfd);
		close(lfd);
	} else if (strcmp(name, "threads-work") == 0) {
		pthread_t t;
		void *ret = NULL;
		int r = pthread_create(&t, NULL, thread_main, (void *)42);
		if (r == 0)
			pthread_join(t, &ret);
		result(name, r == 0 && ret == (void *)42, "pthread_create: %s",
		       r ? errname(r) : "ok");
	} else if (strcmp(name, "proc-private") == 0) {
		/*
		 * argv[0]: "1" (grain-init) or "child" (a child of ours, the
		 * control): its mem, environ and exe must not open.
		 */
		pid_t pid = 1, child = 0;
		char path[64], link[256], opened[256] = "";
		if (argc > 0 && strcmp(argv[0], "child") == 0) {
			child = pid = fork();
			if (pid == 0) {
				pause();
				_exit(0);
			}
		}
		static const char *const files[] = { "mem", "environ" };
		for (size_t i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "/proc/%d/%s", pid, files[i]);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				size_t len = strlen(opened);
				snprintf(opened + len, sizeof(opened) - len, "%s ", files[i]);
				close(fd);
			}
		}
		snprintf(path, sizeof(path), "/proc/%d/exe", pid);
		if (readlink(path, link, sizeof(link)) >= 0) {
			size_t len = strlen(opened);
			snprintf(opened + len, sizeof(opened) - len, "exe ");
		}
		if (child > 0) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
		}
		result(name, !opened[0], "pid %d: opened %s", pid, opened[0] ? opened : "nothing");
	} else if (strcmp(name, "pid1-is-init") == 0) {
		char buf[256] = "";
		int fd = open("/proc/1/cmdline", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
		result(name, strcmp(buf, "grain-init") == 0, "pid 1 argv[0]=%s", buf);
	} else
		return -1;
	return 0;
}

/* ---- E: inheritance ----------------------------------------------------------------- */

static int
check_inheritance(const char *name, int argc, char **argv)
{
	if (strcmp(name, "fds-exactly") == 0) {
		/* argv[0]: how many fds beyond 0, 1, 2 (the control fds). */
		int extra = argc > 0 ? (int)strtol(argv[0], NULL, 10) : 0;
		char got[512] = "";
		int n = 0, dfd;
		bool ok = true;
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		dfd = d ? dirfd(d) : -1;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			int fd = (int)strtol(de->d_name, NULL, 10);
			if (fd == dfd)
				continue;
			n++;
			ok = ok && fd < 3 + extra;
			size_t len = strlen(got);
			snprintf(got + len, sizeof(got) - len, "%d ", fd);
		}
		if (d)
			closedir(d);
		result(name, ok && n == 3 + extra, "fds: %s", got);
	} else if (strcmp(name, "stdin-devnull") == 0) {
		struct stat st;
		int r = fstat(0, &st);
		result(name, r == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
		       "fd 0: mode %o rdev %u:%u", r == 0 ? st.st_mode : 0,
		       r == 0 ? major(st.st_rdev) : 0, r == 0 ? minor(st.st_rdev) : 0);
	} else if (strcmp(name, "cwd") == 0) {
		char cwd[4096] = "";
		(void)!getcwd(cwd, sizeof(cwd));
		result(name, argc > 0 && strcmp(cwd, argv[0]) == 0, "cwd=%s", cwd);
	} else if (strcmp(name, "new-session") == 0) {
		/* Session of pid 1 (it called setsid), no controlling terminal. */
		char stat[1024] = "";
		int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!read(fd, stat, sizeof(stat) - 1);
			close(fd);
		}
		int tty_nr = -1;
		const char *p = strrchr(stat, ')');
		if (p)
			sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr);
		pid_t sid = getsid(0);
		result(name, sid == 1 && tty_nr == 0, "sid=%d tty_nr=%d", sid, tty_nr);
	} else
		return -1;
	return 0;
}

/* ---- F: resources ---------------------------------------------------------------------- */

static int
check_resources(const char *name, int argc, char **argv)
{
	long limit = argc > 0 ? strtol(argv[0], NULL, 10) : 0;

	if (strcmp(name, "fork-bomb") == 0 || strcmp(name, "fork-hold") == 0) {
		/* Fork until refused: must stop below argv[0] with EAGAIN. */
		size_t n = 0, cap = 1024;
		pid_t *kids = malloc(cap * sizeof(pid_t));
		int e = 0;
		for (;;) {
			pid_t pid = fork();
			if (pid == 0) {
				pause();
				_exit(0);
			}
			if (pid < 0) {
				e = errno;
				break;
			}
			if (n == cap) {
				cap *= 2;
				kids = realloc(kids, cap * sizeof(pid_t));
			}
			kids[n++] = pid;
			if (n > 100000)
				break;
		}
		if (strcmp(name, "fork-hold") == 0) {
			printf("ready\n");
			fflush(stdout);
			for (;;)
				pause();
		}
		for (size_t i = 0; i < n; i++)
			kill(kids[i], SIGKILL);
		while (wait(NULL) > 0)
			;
		free(kids);
		result(name, e == EAGAIN && (long)n < limit, "forked %zu before %s (limit %ld)", n,
		       e ? errname(e) : "no error", limit);
	} else if (strcmp(name, "thread-bomb") == 0) {
		int n = 0, r = 0;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 65536);
		for (;;) {
			pthread_t t;
			r = pthread_create(&t, &attr, thread_sleep, NULL);
			if (r)
				break;
			if (++n > 100000)
				break;
		}
		result(name, r == EAGAIN && n < limit, "created %d threads before %s (limit %ld)",
		       n, r ? errname(r) : "no error", limit);
		printf("done\n");
		fflush(stdout);
		_exit(0);
	} else if (strcmp(name, "memory-bomb") == 0) {
		/*
		 * argv[0]: anon, tmpfs or memfd; argv[1]: MiB to stop at and hold
		 * (0: no end). Allocate and touch until stopped: by the kernel
		 * (killed, or an error), or at the cap ("reached", then pause).
		 */
		const char *kind = argc > 0 ? argv[0] : "anon";
		long long cap = argc > 1 ? strtoll(argv[1], NULL, 10) << 20 : 0;
		long long total = 0;
		int fd = -1, e = 0;
		if (strcmp(kind, "tmpfs") == 0)
			fd = open("/tmp/.probe-bomb", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		else if (strcmp(kind, "memfd") == 0)
			fd = memfd_create("bomb", MFD_CLOEXEC);
		printf("started %s\n", kind);
		fflush(stdout);
		for (;;) {
			size_t chunk = 1 << 20;
			if (cap && total >= cap) {
				printf("reached %lld\n", total);
				fflush(stdout);
				for (;;)
					pause();
			}
			if (fd < 0) {
				char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE,
					       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (p == MAP_FAILED) {
					e = errno;
					break;
				}
				memset(p, 1, chunk);
			} else {
				static char buf[1 << 20];
				memset(buf, 1, sizeof(buf));
				if (write(fd, buf, chunk) != (ssize_t)chunk) {
					e = errno;
					break;
				}
			}
			total += chunk;
		}
		/* Only reached when the kernel refused instead of killing. */
		result(name, true, "refused after %lld bytes: %s", total, errname(e));
	} else if (strcmp(name, "fd-exhaust") == 0) {
		int n = 0, e = 0;
		for (;;) {
			int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				e = errno;
				break;
			}
			n++;
		}
		result(name, e == EMFILE && n + 3 <= limit, "opened %d before %s (limit %ld)", n,
		       errname(e), limit);
	} else if (strcmp(name, "cpu-hog") == 0) {
		/* Spin for argv[0] ms of wall time; report the CPU time we got. */
		struct timespec start, now;
		printf("ready\n");
		fflush(stdout);
		clock_gettime(CLOCK_MONOTONIC, &start);
		volatile unsigned long spin = 0;
		do {
			for (int i = 0; i < 100000; i++)
				spin++;
			clock_gettime(CLOCK_MONOTONIC, &now);
		} while ((now.tv_sec - start.tv_sec) * 1000 +
				 (now.tv_nsec - start.tv_nsec) / 1000000 <
			 limit);
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		result(name, true, "cpu_ms=%ld wall_ms=%ld",
		       ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
			       ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000,
		       limit);
	} else
		return -1;
	return 0;
}

/* ---- other commands ---------------------------------------------------------------------- */

/* A minimal HTTP/1.0 server: the static C positive control. */
static int
cmd_serve(int port)
{
	int e, lfd = tcp_listen("127.0.0.1", port, &e);

	if (lfd < 0) {
		fprintf(stderr, "probe: listen on %d: %s\n", port, strerror(e));
		return 1;
	}
	for (;;) {
		char req[4096];
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, req, sizeof(req) - 1);
		req[n > 0 ? n : 0] = '\0';
		static const char body[] = "hello from a static grain\n";
		char resp[256];
		int len = snprintf(resp, sizeof(resp),
				   "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
				   "Content-Length: %zu\r\n\r\n%s",
				   sizeof(body) - 1, body);
		(void)!write(fd, resp, len);
		close(fd);
	}
}

int
main(int argc, char *argv[])
{
	if (argc < 2) {
		fprintf(stderr,
			"usage: probe syscalls FILE | check NAME [ARG]... | noop | whoami | "
			"sleep | serve PORT | print-env\n");
		return 2;
	}
	if (strcmp(argv[1], "noop") == 0)
		return 0;
	if (strcmp(argv[1], "whoami") == 0) {
		const char *cap = status_field("CapEff");
		printf("euid=%u capeff=%s\n", geteuid(), cap ? cap : "?");
		return 0;
	}
	if (strcmp(argv[1], "sleep") == 0) {
		printf("ready\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	if (strcmp(argv[1], "print-env") == 0) {
		extern char **environ;
		for (char **e = environ; *e; e++)
			printf("env %s\n", *e);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0 && argc > 2)
		return cmd_serve((int)strtol(argv[2], NULL, 10));
	if (strcmp(argv[1], "syscalls") == 0 && argc > 2)
		return cmd_syscalls(argv[2]);
	if (strcmp(argv[1], "check") == 0 && argc > 2) {
		const char *name = argv[2];
		int n = argc - 3;
		char **args = argv + 3;

		if (check_identity(name, n, args) == 0 || check_filesystem(name, n, args) == 0 ||
		    check_process(name, n, args) == 0 || check_inheritance(name, n, args) == 0 ||
		    check_resources(name, n, args) == 0)
			return 0;
		fprintf(stderr, "probe: no check '%s'\n", name);
		return 2;
	}
	fprintf(stderr, "probe: bad command '%s'\n", argv[1]);
	return 2;
}
