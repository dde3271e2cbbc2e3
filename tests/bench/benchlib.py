"""Shared pieces of the benchmarks B1, B2, B4 and B7 (tests/bench/b*.sh).

The peers run as they are (build/apps/grain-test straight on 127.0.0.1, an
nginx reverse proxy in front of it, bwrap), or, given netns=PID, in the
network namespace of a running grain's app (wrk and nginx through
`nsenter --net`, B1's in-grain rows); Granary runs as a real granaryd
with a user, the app installed through the API, and grains opened through
`POST /api/grains/<id>/open` (the session host, sent as the Host header of
requests to 127.0.0.1:PORT, with the cookie its one-time enter URL set: a
Session, which is the host as a str with a .cookie). Until the daemon offers grains and the proxy,
Granary(...).require() raises NotAvailable and the benchmarks report the
Granary rows as "not run yet".

Everything here talks to 127.0.0.1 only. Run as root (granaryd, sandboxes).
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("GRANARY_SOURCE") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("GRANARY_BUILD") or os.path.join(SOURCE, "build")
os.environ.setdefault("GRANARY_BUILD", BUILD)
os.environ.setdefault("GRANARY_SOURCE", SOURCE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))

import apps  # noqa: E402  (tests/integration/apps.py: build_app)
import conftest  # noqa: E402  (Daemon, Client, add_user, enter_session)
import requests  # noqa: E402

GRAIN_TEST = os.path.join(BUILD, "apps", "grain-test")
DOCS = os.path.join(SOURCE, "docs", "benchmarks")
PASSWORD = "benchmark password, long enough"


class NotAvailable(Exception):
    """The daemon does not offer what a Granary row needs (yet)."""


def die(name, msg):
    sys.exit(f"{name}: {msg}")


# ---- where and when ---------------------------------------------------------------

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')} on {os.cpu_count()} cores ({cpu}), "
            f"Linux {platform.release()}")


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def netns_prefix(pid):
    """The command prefix that runs a program in the network namespace of pid."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net"] if pid else []


def med(xs):
    """(median, min, max) of a non-empty list."""
    return statistics.median(xs), min(xs), max(xs)


def percentile(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))]


def tmpdir(prefix):
    """A directory the unprivileged front can reach (0711), removed at exit."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o711)
    return d


def write_section(name, lines):
    os.makedirs(DOCS, exist_ok=True)
    path = os.path.join(DOCS, f"{name}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"{name}: wrote {path}")


# ---- processes and memory --------------------------------------------------------

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def argv0(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except (FileNotFoundError, ProcessLookupError):
        return ""


def kib(pid, *keys):
    """{key: KiB} from /proc/PID/status (VmRSS, VmHWM) and smaps_rollup (Pss...)."""
    out = {}
    for name in ("status", "smaps_rollup"):
        try:
            with open(f"/proc/{pid}/{name}") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in keys:
                        out[k] = int(v.split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_ns(pid):
    """CPU time of every thread of pid so far, in nanoseconds (schedstat)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that ended meanwhile
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def cpu_ns_with_exited(pid):
    """CPU time of pid so far, threads that ended included (/proc/PID/stat:
    clock-tick resolution), in nanoseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1e9 / os.sysconf("SC_CLK_TCK")


def meminfo_used():
    """MemTotal - MemAvailable, KiB."""
    d = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            d[k] = int(v.split()[0])
    return d["MemTotal"] - d["MemAvailable"]


# ---- the peers ---------------------------------------------------------------------

class GrainTest:
    """build/apps/grain-test on a free port of 127.0.0.1."""

    def __init__(self):
        if not os.path.exists(GRAIN_TEST):
            raise SystemExit(f"no {GRAIN_TEST}; run make")
        self.proc = subprocess.Popen([GRAIN_TEST, "0"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise SystemExit(f"grain-test did not start: {line}")
        self.port = int(m.group(1))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Nginx:
    """nginx (1 worker) as a reverse proxy to 127.0.0.1:upstream_port with
    an upstream keep-alive pool of 32 connections. Request bodies stream to
    the app; answers are buffered in memory (8 x 64 KiB), never in a file
    (proxy_max_temp_file_size 0: a full buffer waits for the client), so
    memory stays bounded and a 64 KiB answer is read in one piece.
    netns: run it in the network namespace of that process (a grain's app:
    127.0.0.1:upstream_port is then the app inside the grain)."""

    def __init__(self, upstream_port, workdir, netns=None):
        self.netns = netns
        # A grain's network namespace is fresh: only its app listens there.
        self.port = free_port()
        while netns and self.port == upstream_port:
            self.port = free_port()
        self.dir = os.path.join(workdir, f"nginx-{self.port}")
        os.makedirs(os.path.join(self.dir, "tmp"))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/tmp/body;
    proxy_temp_path {self.dir}/tmp/proxy;
    fastcgi_temp_path {self.dir}/tmp/fastcgi;
    uwsgi_temp_path {self.dir}/tmp/uwsgi;
    scgi_temp_path {self.dir}/tmp/scgi;
    keepalive_requests 1000000;
    upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 32; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_request_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 8 64k;
            proxy_busy_buffers_size 128k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen(netns_prefix(netns) + ["nginx", "-p", self.dir, "-c", conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        if not conftest.wait_for(lambda: connect(self.port, 1, netns).close() is None
                                 or self.proc.poll() is not None):
            raise SystemExit("nginx did not start")
        if self.proc.poll() is not None:
            raise SystemExit("nginx did not start: " + self.proc.stderr.read())

    def worker_pids(self):
        return children(self.proc.pid)  # nsenter without --fork execs nginx: same pid

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class SpliceRelay:
    """tests/bench/splice-relay.c, built here with cc: the least work a TCP
    proxy can do (two threads a connection, blocking splice through a 1 MiB
    pipe, no HTTP), to 127.0.0.1:upstream_port. Its pid is the proxy's."""

    def __init__(self, upstream_port, workdir):
        src = os.path.join(HERE, "splice-relay.c")
        binary = os.path.join(workdir, "splice-relay")
        subprocess.run(["cc", "-O2", "-pthread", "-I", SOURCE, "-o", binary, src], check=True)
        self.port = free_port()
        self.proc = subprocess.Popen([binary, str(self.port), str(upstream_port)],
                                     stdin=subprocess.DEVNULL)
        if not conftest.wait_for(lambda: connect(self.port, 1).close() is None
                                 or self.proc.poll() is not None):
            raise SystemExit("splice-relay did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def connect(port, timeout=10, netns=None):
    """A TCP socket connected to 127.0.0.1:port (in the network namespace of netns)."""
    if netns:
        return apps.connect_in_netns(netns, port, timeout)
    return socket.create_connection(("127.0.0.1", port), timeout)


class Session(str):
    """A grain session's host (the str itself) and the cookie that admits
    requests on it (docs/api.md "Grain sessions"). Peers get plain strs."""

    def __new__(cls, host, cookie):
        s = super().__new__(cls, host)
        s.cookie = cookie
        return s


def head_fields(host):
    """The Host field, and the session's Cookie field when host is a Session."""
    cookie = getattr(host, "cookie", None)
    return f"Host: {host}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "")


def head_args(host):
    """head_fields() as -H arguments (curl, wrk)."""
    cookie = getattr(host, "cookie", None)
    return ["-H", f"Host: {host}"] + (["-H", f"Cookie: {cookie}"] if cookie else [])


def keep_alive_ok(port, host, path="/", netns=None):
    """Two requests on one connection, both answered, no Connection: close."""
    with connect(port, 10, netns) as s:
        f = s.makefile("rb")
        for _ in range(2):
            s.sendall(f"GET {path} HTTP/1.1\r\n{head_fields(host)}\r\n".encode())
            status = f.readline()
            if not status.startswith(b"HTTP/1.1 200"):
                return False
            length, close = None, False
            while True:
                line = f.readline().strip()
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                if k.lower() == "content-length":
                    length = int(v)
                if k.lower() == "connection" and "close" in v.lower():
                    close = True
            if close or length is None:
                return False
            f.read(length)
    return True


WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk(port, host, path, duration, connections=32, threads=1, workdir="/tmp", netns=None):
    """wrk -tT -cC -dD against 127.0.0.1:port with Host: host (run in the
    network namespace of process netns if given): a dict of rps, p50_ms,
    p99_ms, requests and the error counts."""
    script = os.path.join(workdir, "wrk-json.lua")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(WRK_LUA)
    r = subprocess.run(netns_prefix(netns) + ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
                        *head_args(host), "-s", script, f"http://127.0.0.1:{port}{path}"],
                       capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^WRK-JSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")
    d = json.loads(m.group(1))
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["p50_ms"], d["p99_ms"] = d["p50_us"] / 1000, d["p99_us"] / 1000
    d["errors"] = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return d


# ---- Granary -------------------------------------------------------------------------

class Granary:
    """A granaryd with an admin user 'bench', logged in; stop() checks it ends cleanly."""

    def __init__(self, workdir, args=()):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        os.chmod(workdir, 0o711)
        self.daemon = conftest.Daemon(os.path.join(workdir, "state"), args)
        conftest.add_user(self.daemon.state, "bench", PASSWORD, admin=True)
        self.client = conftest.Client(self.daemon)
        self.client.login("bench", PASSWORD)
        self.port = self.daemon.port

    def call(self, method, path, ok=(200, 201, 204), **kw):
        r = self.client.request(method, path, **kw)
        if r.status_code in (404, 405) and r.headers.get("Content-Type", "").startswith(
                "application/json") and r.json().get("error", {}).get("code") in (
                "not_found", "method_not_allowed"):
            raise NotAvailable(f"{method} {path}: {r.status_code} {r.text.strip()}")
        if r.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text.strip()}")
        return r

    def install(self, spk):
        with open(spk, "rb") as f:
            r = self.call("POST", "/api/apps", data=f,
                          headers={"Content-Type": "application/octet-stream"}, timeout=600)
        return r.json()["app"]["id"]

    def new_grain(self, app_id, title="bench"):
        return self.call("POST", "/api/grains", json={"app": app_id, "title": title}
                         ).json()["grain"]["id"]

    def open(self, grain_id):
        """The grain's session from POST /api/grains/<id>/open, entered:
        (url, Session)."""
        d = self.call("POST", f"/api/grains/{grain_id}/open").json()
        if "host" not in d:
            raise NotAvailable(f"POST /api/grains/{grain_id}/open answered {d}")
        http = requests.Session()
        conftest.enter_session(http, self.daemon, d["url"])
        return d["url"], Session(d["host"], http.headers["Cookie"])

    def stop_grain(self, grain_id):
        self.call("POST", f"/api/grains/{grain_id}/stop")

    def require(self, spk):
        """Install spk, make a grain and open it, or raise NotAvailable:
        (app id, grain id, session host)."""
        app_id = self.install(spk)
        grain_id = self.new_grain(app_id)
        _, host = self.open(grain_id)
        return app_id, grain_id, host

    def roles(self):
        """{'launcher': pid, 'front': pid}: granaryd's children by uid."""
        out = {}
        for pid in children(self.daemon.proc.pid):
            with open(f"/proc/{pid}/status") as f:
                uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
            out["launcher" if uid == 0 else "front"] = pid
        return out

    def grain_app_pid(self, program):
        """The pid (as the host sees it) of the running grain's app, by its
        program name (argv[0]'s base name): its network namespace is the grain's."""
        pids = [p for p in descendants(self.daemon.proc.pid) if argv0(p) == program]
        if len(pids) != 1:
            raise RuntimeError(f"expected one running {program} in a grain, found {pids}")
        return pids[0]

    def grain_inits(self):
        return [p for p in descendants(self.daemon.proc.pid) if argv0(p) == "grain-init"]

    def stop(self):
        self.daemon.stop()


def first_byte_ms(port, host, path="/", timeout=60):
    """Milliseconds from connect() to the first byte of the answer to a GET,
    on a new connection; and the status line."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\n{head_fields(host)}Connection: close\r\n\r\n"
                  .encode())
        first = s.recv(1)
        t1 = time.perf_counter()
        rest = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            rest += more
    return (t1 - t0) * 1000, (first + rest).split(b"\r\n", 1)[0].decode("latin-1")


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
