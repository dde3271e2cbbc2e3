"""grain-init as pid 1 of a real grain: the connection broker and the grain log.

Each test runs `granary-sandbox --fd CONTROL --fd LOG -- --control-fd 3
--port P --log-fd 4 ... -- /app MODE...` (the sandbox runs `grain-init --
ARGV`, so grain-init's options lead ARGV), with this file playing front on the
other end of a SOCK_SEQPACKET socket pair (docs/grain-init.md). The app is a
small static C server built here (APP_SOURCE) with ways to misbehave: wait
for /var/go before listening, exit early, crash on /crash, ignore SIGTERM,
flood its stdout. No test asserts a duration: latencies are printed.
"""
import errno
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "security"))
import sandboxlib  # noqa: E402

PORT = 8000

# grains/grain-protocol.h
HEADER = struct.Struct("=III")
ERROR = struct.Struct("=i200s")
STATE = struct.Struct("=IIII")
EXITED = struct.Struct("=ii")
CONNECT, STATUS, CONNECTED, MSG_ERROR, MSG_STATE, MSG_EXITED = range(1, 7)
STARTING, READY, STOPPING = 1, 2, 3
LOG_CHUNK = 64 * 1024  # GRAIN_LOG_CHUNK: how far past the cap the file may grow
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (app|grain-init): ")

APP_SOURCE = r"""
/* The app of t0400: a tiny static HTTP server with ways to misbehave. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char fds_at_start[1024];

/* The fds the app was started with (before it opens any). */
static void record_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t len = 0;

	if (!d) {
		snprintf(fds_at_start, sizeof(fds_at_start), "opendir: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			len += snprintf(fds_at_start + len, sizeof(fds_at_start) - len, "%s ",
					e->d_name);
	closedir(d);
}

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (void *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		perror("listen");
		exit(2);
	}
	return fd;
}

static void respond(int c, const char *body)
{
	char head[128];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			 strlen(body));
	write(c, head, n);
	write(c, body, strlen(body));
}

static void serve(int fd)
{
	for (;;) {
		char req[4096], body[2048], path[256] = "";
		size_t len = 0;
		int c = accept(fd, NULL, NULL);

		if (c < 0)
			continue;
		while (len < sizeof(req) - 1) {
			ssize_t n = read(c, req + len, sizeof(req) - 1 - len);
			if (n <= 0)
				break;
			len += n;
			req[len] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[len] = '\0';
		sscanf(req, "GET %255s", path);
		if (strcmp(path, "/crash") == 0) {
			fprintf(stderr, "crashing on purpose\n");
			raise(SIGSEGV);
		} else if (strcmp(path, "/fds") == 0) {
			char link[256];
			int fd3 = open("/proc/1/fd/3", O_RDWR);
			int e3 = errno;
			ssize_t n = readlink("/proc/1/fd/4", link, sizeof(link) - 1);
			int e4 = errno;

			snprintf(body, sizeof(body),
				 "fds %s\nopen /proc/1/fd/3: %s\nreadlink /proc/1/fd/4: %s\n",
				 fds_at_start, fd3 >= 0 ? "opened" : strerror(e3),
				 n >= 0 ? "read" : strerror(e4));
			respond(c, body);
		} else {
			respond(c, "hello from the grain app\n");
		}
		close(c);
	}
}

int main(int argc, char **argv)
{
	record_fds();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* a client that leaves is not a reason to die */
	if (argc < 2)
		return 64;
	printf("app %s starting\n", argv[1]);
	/* The test decides when the app goes on: it creates /var/go. */
	if (argc > 3 && strcmp(argv[3], "--wait-go") == 0)
		while (access("/var/go", F_OK) < 0)
			usleep(2000);
	if (strcmp(argv[1], "exit") == 0) {
		fprintf(stderr, "last words before exit %s", argv[2]); /* no newline */
		return atoi(argv[2]);
	}
	if (strcmp(argv[1], "never") == 0)
		for (;;)
			pause();
	if (strcmp(argv[1], "lines") == 0) {
		for (int i = 0; i < atoi(argv[2]); i++)
			printf("line %d\n", i);
		return 0;
	}
	if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "flood") == 0 ||
	    strcmp(argv[1], "stubborn") == 0) {
		int fd = listen_on(atoi(argv[2]));

		if (strcmp(argv[1], "stubborn") == 0)
			signal(SIGTERM, SIG_IGN);
		/* A second process: the grain must take every process with it. */
		if (fork() == 0) {
			if (strcmp(argv[1], "flood") == 0) {
				static char line[200];
				memset(line, 'x', sizeof(line));
				line[sizeof(line) - 1] = '\n';
				for (unsigned long long i = 0;; i++) {
					int n = snprintf(line, 40, "flood %llu ", i);
					line[n] = 'x';
					write(1, line, sizeof(line));
				}
			}
			for (;;)
				pause();
		}
		serve(fd);
	}
	return 64;
}
"""


@pytest.fixture(scope="module")
def pkg():
    """A package holding the app (static) and, for the Python test, links into /usr."""
    sandboxlib.require_sandbox()
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.fail("a C compiler is needed to build the test app")
    tmp = sandboxlib.mkdtemp("granary-t0400-")
    root = os.path.join(tmp, "pkg")
    os.makedirs(os.path.join(root, "usr"))
    os.makedirs(os.path.join(root, "www"))
    os.chmod(root, 0o755)
    for name in ("bin", "lib", "lib64"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), os.path.join(root, name))
    with open(os.path.join(root, "www", "index.html"), "w") as f:
        f.write("hello from python\n")
    src = os.path.join(tmp, "app.c")
    with open(src, "w") as f:
        f.write(APP_SOURCE)
    p = subprocess.run([cc, "-static", "-O1", "-w", "-o", os.path.join(root, "app"), src],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    yield root
    sandboxlib.rmtree(tmp)


class Grain:
    """granary-sandbox running grain-init as a broker; self.front is front's end."""

    def __init__(self, pkg, argv, init_opts=(), sandbox_opts=(), log_flags=os.O_RDWR):
        self.var = tempfile.mkdtemp(prefix="granary-t0400-var-", dir="/tmp")
        os.chmod(self.var, 0o755)
        self.log_path = self.var + ".log"  # on the host, as STATE/grains/<id>/log is
        self.front, init_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_fd = os.open(self.log_path, log_flags | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        cmd = [sandboxlib.SANDBOX, "--root", pkg, "--var", self.var, *sandbox_opts,
               "--fd", str(init_end.fileno()), "--fd", str(log_fd), "--",
               "--control-fd", "3", "--port", str(PORT), "--log-fd", "4", *init_opts,
               "--", *argv]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     pass_fds=(init_end.fileno(), log_fd))
        # Only grain-init holds the other end now: its closing is front's EOF.
        init_end.close()
        os.close(log_fd)
        self.ids = 0
        self.uid = None
        for _ in range(2000):  # the grain's host uid, while it runs, for the no-process check
            kids = sandboxlib.children(self.proc.pid)
            if kids:
                try:
                    with open(f"/proc/{kids[0]}/uid_map") as f:
                        self.uid = int(f.read().split()[1])
                    self.init_pid = kids[0]
                    break
                except (FileNotFoundError, IndexError, ProcessLookupError):
                    pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.005)

    # ---- front's side of the protocol ----

    def send(self, type_, id_=None, payload=b"", fds=()):
        if id_ is None:
            self.ids += 1
            id_ = self.ids
        data = HEADER.pack(type_, id_, len(payload)) + payload
        try:
            socket.send_fds(self.front, [data], list(fds))
        except BrokenPipeError:
            raise AssertionError(f"grain-init is gone: exit {self.proc.wait()}, "
                                 f"{self.proc.stderr.read()}")
        return id_

    def recv(self, timeout=30):
        """(type, id, payload, fds), or None when grain-init closed its end."""
        self.front.settimeout(timeout)
        data, fds, flags, _ = socket.recv_fds(self.front, 512, 4)
        if not data and not fds:
            return None
        assert not flags & socket.MSG_TRUNC
        type_, id_, length = HEADER.unpack_from(data)
        assert length == len(data) - HEADER.size, data
        return type_, id_, data[HEADER.size:], fds

    def recv_reply(self, timeout=30):
        """The next message that is not a STATE event."""
        while True:
            m = self.recv(timeout)
            if m is None or not (m[0] == MSG_STATE and m[1] == 0):
                return m

    def connect(self, timeout=30):
        """CONNECT and wait: a socket object, or the ERROR (errno, message)."""
        id_ = self.send(CONNECT)
        m = self.recv_reply(timeout)
        assert m is not None and m[1] == id_, m
        if m[0] == MSG_ERROR:
            return error_of(m)
        assert m[0] == CONNECTED and len(m[3]) == 1, m
        return socket.socket(fileno=m[3][0])

    def status(self):
        id_ = self.send(STATUS)
        m = self.recv_reply()
        assert m[0] == MSG_STATE and m[1] == id_, m
        return STATE.unpack(m[2])

    # ---- the grain ----

    def go(self):
        open(os.path.join(self.var, "go"), "w").close()

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("the grain did not stop: " + err)
        self.stderr = err
        return self.proc.returncode

    def close(self):
        """Stop the grain as front would (closing its end), then by force; wait
        until none of its processes is left, so the next grain may reuse its uid."""
        self.front.close()
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        deadline = time.monotonic() + 30
        while self.uid is not None and sandboxlib.pids_of_uid(self.uid) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        shutil.rmtree(self.var, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass


@pytest.fixture
def grains():
    started = []

    def start(*args, **kw):
        g = Grain(*args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.close()


def error_of(m):
    code, message = ERROR.unpack(m[2])
    return code, message.split(b"\0", 1)[0].decode()


def http_get(sock, path="/"):
    sock.setblocking(True)
    sock.settimeout(30)
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: grain\r\n\r\n".encode())
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body.decode()


def exited_of(m):
    assert m is not None and m[0] == MSG_EXITED and m[1] == 0, m
    return EXITED.unpack(m[2])


# ---- the broker ---------------------------------------------------------------


def test_connect_before_the_app_listens_is_answered_once_it_does(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT), "--wait-go"])
    state = g.status()
    assert state == (1, STARTING, 0, 0), state
    id_ = g.send(CONNECT)
    # Nothing comes while the app waits for /var/go (it cannot be listening yet).
    with pytest.raises(TimeoutError):
        g.recv(timeout=0.5)
    assert g.status()[1:] == (STARTING, 0, 1)
    g.go()
    # READY comes first (STATE, id 0), then the connection itself.
    m = g.recv()
    assert m[0] == MSG_STATE and m[1] == 0 and STATE.unpack(m[2])[1] == READY, m
    m = g.recv()
    assert m[0] == CONNECTED and m[1] == id_ and len(m[3]) == 1, m
    sock = socket.socket(fileno=m[3][0])
    assert sock.type == socket.SOCK_STREAM
    assert sock.getpeername() == ("127.0.0.1", PORT)
    assert http_get(sock) == ("HTTP/1.0 200 OK", "hello from the grain app\n")
    state = g.status()
    assert state[1] == READY and state[3] == 0, state
    print(f"ready {state[2]} ms after the app's start (it waited for /var/go)")


def test_fifty_concurrent_connects(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT)])
    ids = [g.send(CONNECT) for _ in range(50)]
    socks = {}
    while len(socks) < 50:
        m = g.recv_reply()
        assert m is not None and m[0] == CONNECTED, m if m[0] != MSG_ERROR else error_of(m)
        assert m[1] in ids and m[1] not in socks, m
        socks[m[1]] = socket.socket(fileno=m[3][0])
    # All 50 are live connections to the app: requests on all, then answers from all.
    for s in socks.values():
        s.setblocking(True)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    for s in socks.values():
        assert http_get_response(s).endswith(b"hello from the grain app\n")
    assert g.status()[3] == 0


def http_get_response(sock):
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def test_python_http_server(pkg, grains):
    """A real runtime (the host's Python, bound read-only) behind the broker."""
    g = grains(pkg, ["/usr/bin/python3", "-m", "http.server", str(PORT), "--bind", "127.0.0.1",
                     "--directory", "/www"], sandbox_opts=["--ro-bind", "/usr", "/usr"])
    sock = g.connect()
    assert not isinstance(sock, tuple), sock
    assert http_get(sock, "/index.html") == ("HTTP/1.0 200 OK", "hello from python\n")


def test_app_exits_before_listening(pkg, grains):
    g = grains(pkg, ["/app", "exit", "3", "--wait-go"])
    id_ = g.send(CONNECT)
    g.go()
    m = g.recv_reply()
    assert m[0] == MSG_ERROR and m[1] == id_, m
    code, message = error_of(m)
    assert code == errno.ESRCH, (code, message)
    assert message == f"The app exited with status 3 before listening on 127.0.0.1:{PORT}"
    assert exited_of(g.recv()) == (3, 0)
    assert g.recv() is None  # grain-init is gone
    assert g.wait() == 3
    log = g.log()
    # The app's last words (a line it never ended), then grain-init's own line.
    assert re.search(r"Z app: last words before exit 3\n.*Z grain-init: the app exited with "
                     r"status 3 before listening on 127\.0\.0\.1:8000\n$", log), log


def test_every_request_is_answered_before_exited(pkg, grains):
    """300 CONNECTs while the app starts: 256 wait in grain-init's slots, the
    rest stay unread in the socket (grain-init stops reading when its slots
    are full). The app exits: all 300 get an ERROR, then EXITED, then a clean
    end of file (unread requests would have made it ECONNRESET)."""
    g = grains(pkg, ["/app", "exit", "4", "--wait-go"])
    g.front.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    ids = {g.send(CONNECT) for _ in range(300)}
    g.go()
    answered = set()
    while len(answered) < 300:
        m = g.recv()
        assert m is not None and m[0] == MSG_ERROR and m[1] in ids, m
        assert error_of(m)[0] == errno.ESRCH, error_of(m)
        answered.add(m[1])
    assert exited_of(g.recv()) == (4, 0)
    assert g.recv() is None
    assert g.wait() == 4


def test_app_crash_later_is_reported(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT)])
    sock = g.connect()
    sock.setblocking(True)
    sock.sendall(b"GET /crash HTTP/1.0\r\n\r\n")
    assert exited_of(g.recv_reply()) == (-1, signal.SIGSEGV)
    assert g.recv() is None
    assert g.wait() == 128 + signal.SIGSEGV
    assert "app: crashing on purpose\n" in g.log()
    assert g.log().endswith("grain-init: the app was killed by signal 11 (SEGV)\n"), g.log()


def test_start_timeout(pkg, grains):
    g = grains(pkg, ["/app", "never"], init_opts=["--start-timeout", "300ms"])
    id_ = g.send(CONNECT)
    m = g.recv_reply()
    assert m[0] == MSG_ERROR and m[1] == id_
    assert error_of(m) == (errno.ETIMEDOUT, f"The app did not listen on 127.0.0.1:{PORT} "
                                            "within 300 ms")
    assert exited_of(g.recv_reply()) == (-1, signal.SIGTERM)
    assert g.wait() == 128 + signal.SIGTERM
    assert "grain-init: stopping the app: it did not listen on 127.0.0.1:8000 within 300 ms" \
        in g.log()


def no_process_left(g):
    assert g.uid is not None, "the grain's host uid was never seen"
    return sandboxlib.pids_of_uid(g.uid) == []


def test_control_socket_closed_stops_the_grain(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT)])
    assert not isinstance(g.connect(), tuple)
    # Negative control: the app and its second process run as the grain's uid.
    assert len(sandboxlib.pids_of_uid(g.uid)) >= 2
    g.front.close()
    assert g.wait() == 128 + signal.SIGTERM
    assert no_process_left(g)
    assert "grain-init: stopping the app: the control socket closed" in g.log()


def test_app_ignoring_sigterm_gets_sigkill(pkg, grains):
    g = grains(pkg, ["/app", "stubborn", str(PORT)], init_opts=["--stop-timeout", "200ms"])
    assert not isinstance(g.connect(), tuple)
    g.front.close()
    assert g.wait() == 128 + signal.SIGKILL
    assert no_process_left(g)
    assert "did not exit within 200 ms of SIGTERM; sending SIGKILL" in g.log()


def test_malformed_messages_are_dropped(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT)])
    assert not isinstance(g.connect(), tuple)
    # A round trip first: grain-init closes its copy of a passed socket just
    # after sending it, so counting right away could catch it still open.
    g.status()
    fds_before = len(os.listdir(f"/proc/{g.init_pid}/fd"))
    r, w = os.pipe()
    bad = [
        b"",                                              # an empty datagram
        b"\x01\x00\x00",                                  # shorter than a header
        HEADER.pack(CONNECT, 1, 4),                       # a length that lies
        HEADER.pack(CONNECT, 1, 4) + b"abcd",             # a payload CONNECT has not
        HEADER.pack(CONNECT, 0, 0),                       # id 0 is for events
        HEADER.pack(0, 1, 0),                             # type 0
        HEADER.pack(99, 1, 0),                            # unknown type
        HEADER.pack(0xFFFFFFFF, 1, 0),
        HEADER.pack(CONNECTED, 1, 0),                     # grain-init's own type
        HEADER.pack(MSG_EXITED, 0, 8) + EXITED.pack(0, 0),
        HEADER.pack(CONNECT, 1, 300) + b"x" * 300,        # longer than any message
    ]
    for data in bad:
        g.front.send(data)
    socket.send_fds(g.front, [HEADER.pack(CONNECT, 1, 0)], [r])  # a descriptor it must not keep
    os.close(r)
    os.close(w)
    # grain-init answers nothing to those, and still serves.
    state = g.status()
    assert state[1] == READY, state
    assert not isinstance(g.connect(), tuple)
    assert g.proc.poll() is None
    g.status()
    assert len(os.listdir(f"/proc/{g.init_pid}/fd")) == fds_before
    assert g.log().count("grain-init: dropped a malformed message") == len(bad) + 1
    g.front.close()
    assert g.wait() == 128 + signal.SIGTERM


def test_app_has_only_fds_0_1_2(pkg, grains):
    g = grains(pkg, ["/app", "serve", str(PORT)])
    status, body = http_get(g.connect(), "/fds")
    lines = body.splitlines()
    assert lines[0] == "fds 0 1 2 ", body
    # grain-init's own descriptors are not reachable through /proc either.
    assert lines[1] == "open /proc/1/fd/3: Permission denied", body
    assert lines[2] == "readlink /proc/1/fd/4: Permission denied", body


def test_without_control_fd_grain_init_runs_as_before(pkg):
    """`grain-init -- CMD` (the sandbox tests' form): no broker, the status comes through."""
    p = sandboxlib.run_sandbox(pkg, ["/app", "exit", "5"])
    assert p.returncode == 5, p.stderr
    assert p.stderr.endswith("last words before exit 5"), p.stderr


@pytest.mark.parametrize("args,message", [
    (["--port", "8000", "--", "true"], "--control-fd and --port go together"),
    (["--control-fd", "0", "--port", "8000", "--", "true"], "Bad --control-fd '0'"),
    (["--control-fd", "999", "--port", "8000", "--", "true"], "Bad --control-fd 999"),
    (["--port", "0", "--", "true"], "Bad --port '0'"),
    (["--log-max", "1K", "--", "true"], "Bad --log-max '1K'"),
    (["--start-timeout", "soon", "--", "true"], "Bad --start-timeout 'soon'"),
    (["--", "--port", "8000", "true"], "must end with a second '--'"),
    (["--bogus", "--", "true"], "Unknown option or missing value '--bogus'"),
])
def test_bad_options(args, message):
    p = subprocess.run([sandboxlib.GRAIN_INIT, *args], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and message in p.stderr, p.stderr


def test_control_fd_must_be_seqpacket():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = subprocess.run([sandboxlib.GRAIN_INIT, "--control-fd", str(b.fileno()), "--port", "8000",
                        "--", "true"], capture_output=True, text=True, timeout=30,
                       pass_fds=(b.fileno(),))
    assert p.returncode == 1 and "is not a SOCK_SEQPACKET socket" in p.stderr, p.stderr


# ---- the grain log ------------------------------------------------------------


def log_lines_well_formed(log):
    lines = log.splitlines()
    bad = [line for line in lines if not LINE.match(line)]
    assert not bad, bad[:5]
    return lines


@pytest.mark.parametrize("readable", [True, False])
def test_log_cut_keeps_the_newest_lines(pkg, grains, readable):
    """20000 numbered lines (~740K with prefixes) into a 64K log: it ends below
    the cap plus one chunk, starts with the cut marker, and holds a gap-free
    run of the newest lines; a log fd not open for reading keeps only what
    came after the last cut."""
    cap = 64 * 1024
    g = grains(pkg, ["/app", "lines", "20000"], init_opts=["--log-max", "64K"],
               log_flags=os.O_RDWR if readable else os.O_WRONLY)
    assert exited_of(g.recv_reply()) == (0, 0)
    assert g.wait() == 0
    log = g.log()
    assert len(log) <= cap + LOG_CHUNK + 1024, len(log)
    lines = log_lines_well_formed(log)
    assert re.search(r"grain-init: log cut: the oldest \d+ bytes were dropped \(the log is "
                     r"capped at 64K\)$", lines[0]), lines[0]
    numbers = [int(m.group(1)) for m in (re.search(r" app: line (\d+)$", x) for x in lines) if m]
    assert lines[-1].endswith("grain-init: the app exited with status 0 before listening on "
                              "127.0.0.1:8000"), lines[-1]
    if readable:
        assert len(log) >= cap // 2 - 1024, len(log)
        assert numbers and numbers[-1] == 19999, lines[-3:]
    # What is kept is a gap-free run of the newest lines (none if the last cut came last).
    assert numbers == list(range(20000 - len(numbers), 20000)), "the kept lines have a gap"


def rss_kib(pid):
    fields = sandboxlib.status_fields(pid)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def connect_latencies(g, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        sock = g.connect()
        out.append((time.perf_counter() - t) * 1000)
        assert not isinstance(sock, tuple), sock
        sock.close()
    return sorted(out)


def test_log_flood_is_capped_and_connects_stay_answered(pkg, grains):
    """SECURITY-TESTS.md F, "a log flood is capped": the app writes as fast as
    it can; the log stays under cap + one chunk, grain-init's memory does not
    grow, and CONNECTs are still answered (latency printed, not asserted)."""
    cap = 256 * 1024
    quiet = grains(pkg, ["/app", "serve", str(PORT)])
    assert not isinstance(quiet.connect(), tuple)
    base = connect_latencies(quiet, 200)

    g = grains(pkg, ["/app", "flood", str(PORT)], init_opts=["--log-max", "256K"])
    assert not isinstance(g.connect(), tuple)
    flood_start = time.monotonic()
    rss_start = rss_kib(g.init_pid)
    sizes = []
    flooded = connect_latencies(g, 200)
    for _ in range(50):
        sizes.append(os.stat(g.log_path).st_size)
        time.sleep(0.01)
    rss_end = rss_kib(g.init_pid)
    g.front.close()
    flood_seconds = time.monotonic() - flood_start
    assert g.wait() == 128 + signal.SIGTERM
    assert no_process_left(g)
    log = g.log()
    lines = log_lines_well_formed(log)
    floods = [int(m.group(1)) for m in (re.search(r" app: flood (\d+) x", x) for x in lines) if m]

    def pct(v, p):
        return v[min(len(v) - 1, int(len(v) * p))]

    print(f"CONNECT round trip, quiet app: median {pct(base, 0.5):.3f} ms, "
          f"p99 {pct(base, 0.99):.3f} ms")
    print(f"CONNECT round trip, app flooding its log: median {pct(flooded, 0.5):.3f} ms, "
          f"p99 {pct(flooded, 0.99):.3f} ms")
    written = (floods[-1] + 1) * 200 if floods else 0
    print(f"log sizes seen during the flood: max {max(sizes)} bytes (cap {cap}); "
          f"grain-init took at least {written >> 20} MiB of output in {flood_seconds:.2f} s "
          f"({written / flood_seconds / (1 << 20):.0f} MiB/s)")
    print(f"grain-init VmRSS {rss_start[0]} -> {rss_end[0]} KiB, VmHWM {rss_end[1]} KiB")
    assert max(sizes) <= cap + LOG_CHUNK + 1024, sizes
    assert len(log) <= cap + LOG_CHUNK + 1024
    assert "grain-init: log cut: the oldest" in lines[0]
    assert floods and floods[-1] * 200 > 4 * cap, "the flood was not a flood"
    # Fixed buffers: the flood costs grain-init no memory beyond them (1 MiB of slack).
    assert rss_end[0] - rss_start[0] < 1024, (rss_start, rss_end)
