"""Shared fixtures for integration tests: real processes in a temp dir.

`granaryd` starts build/granaryd on 127.0.0.1 with a free port (--listen
127.0.0.1:0) and a fresh state directory, waits for its "listening on" line,
and on teardown sends SIGTERM and checks it stopped cleanly with status 0 and
printed no sanitizer report. Tests talk to it only over loopback.
"""
import json
import os
import pathlib
import shutil
import tempfile
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

BUILD = os.environ.get("GRANARY_BUILD") or os.path.abspath("build")
SOURCE = os.environ.get("GRANARY_SOURCE") or os.path.abspath(".")


def ensure_granary_user():
    """granaryd, started as root, runs its front as the unprivileged user
    'granary' (as `make run` does); create it once on a fresh machine."""
    if os.geteuid() != 0:
        return
    if subprocess.run(["id", "-u", "granary"], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "granary"],
                       check=True)


ensure_granary_user()


def program(name):
    """Absolute path of a built program, e.g. program('granaryd')."""
    return os.path.join(BUILD, name)


def require_kernel_feature(available, why):
    """Skip when a kernel feature is missing; under SANDBOX_MUST_WORK=1 the
    runner turns this skip ("kernel: ...") into a failure."""
    if not available:
        pytest.skip(f"kernel: {why}")


class Daemon:
    """A running granaryd; its stderr is collected in .log as it arrives."""

    def __init__(self, state, args=(), env=None, defaults=True, cwd=None):
        """defaults=False leaves out --state and --listen (a config file gives them)."""
        self.state = str(state)
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        self.scheme = "http"
        cmd = [program("granaryd"), *args]
        if defaults:
            cmd[1:1] = ["--state", self.state, "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(20) or self.port is None:
            self.stop(check=False)
            raise RuntimeError("granaryd did not start:\n" + self.log)
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        # "listening" comes from the parent; front answers a moment later,
        # once it has opened the database. Tests start from a serving daemon.
        wait_for(lambda: self.proc.poll() is not None or requests.get(
            self.url + "/healthz", verify=False, timeout=2).status_code == 200, timeout=20)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            m = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)/", line)
            if m and self.port is None:
                self.scheme, self.port = m.group(1), int(m.group(2))
                self._ready.set()
        self._ready.set()

    @property
    def log(self):
        return "".join(self.lines)

    def stop(self, sig=signal.SIGTERM, check=True, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            if check:
                raise AssertionError("granaryd did not stop within %ds:\n%s" % (timeout, self.log))
        self._reader.join(5)
        if check:
            assert rc == 0, f"granaryd exited with {rc}:\n{self.log}"
            for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                assert marker not in self.log, self.log
        return rc


@pytest.fixture
def state_root():
    """A directory for state dirs that granaryd's unprivileged front can reach
    (pytest's tmp_path lives below a 0700 directory)."""
    path = tempfile.mkdtemp(prefix="granary-test-")
    os.chmod(path, 0o711)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def granaryd(state_root):
    d = Daemon(state_root / "state")
    yield d
    d.stop()


@pytest.fixture
def start_granaryd(state_root):
    """Start daemons with extra arguments; all are stopped (and checked) at the end."""
    started = []

    def start(*args, state=None, env=None, **kwargs):
        d = Daemon(state or state_root / f"state{len(started)}", args, env, **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.stop()


def run(cmd, **kwargs):
    """subprocess.run with text output, stdin closed, and a time limit."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(cmd, **kwargs)


def wait_for(predicate, timeout=10, interval=0.02):
    """True once predicate() is; an exception counts as not yet."""
    def check():
        try:
            return predicate()
        except Exception:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


class Client(requests.Session):
    """HTTP client for the shell host of a Daemon: talks to 127.0.0.1 but sends
    the shell's Host and Origin (glibc does not resolve *.localhost)."""

    def __init__(self, daemon, origin=True):
        super().__init__()
        self.daemon = daemon
        self.host = f"localhost:{daemon.port}"
        self.origin = f"{daemon.scheme}://{self.host}"
        self.headers["Host"] = self.host
        if origin:
            self.headers["Origin"] = self.origin

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return super().request(method, self.daemon.url + path, **kwargs)

    def login(self, name, password):
        r = self.post("/api/login", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        return r


def make_cert(directory, name, san="DNS:localhost,IP:127.0.0.1"):
    """A self-signed P-256 certificate and its key (0600, like a real one)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-addext", f"subjectAltName={san}",
             "-keyout", str(key), "-out", str(cert)])
    assert r.returncode == 0, r.stderr
    os.chmod(key, 0o600)
    return str(cert), str(key)


def enter_session(http, daemon, url):
    """Enter a grain session: GET its one-time URL (to 127.0.0.1 with the
    session's Host) and keep the cookie it sets in http's Cookie header, for
    the session host answers nothing else. The 303 answer."""
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/.granary/enter", url
    r = http.get(f"{daemon.url}{parts.path}?{parts.query}", headers={"Host": parts.netloc},
                 allow_redirects=False, timeout=30)
    assert r.status_code == 303, (r.status_code, r.text)
    http.headers["Cookie"] = grain_cookie(r)
    return r


def set_cookies(response):
    """Each Set-Cookie field of an answer, as [(name=value, [attributes])]."""
    out = []
    for field in response.raw.headers.getlist("Set-Cookie"):
        pair, *attributes = [a.strip() for a in field.split(";")]
        out.append((pair, attributes))
    return out


def grain_cookie(response):
    """The "name=value" of the grain cookie an enter answer sets (the same in
    each of its Set-Cookie fields)."""
    pairs = {pair for pair, _ in set_cookies(response)}
    assert len(pairs) == 1 and "granary_grain=" in next(iter(pairs)), pairs
    return pairs.pop()


def add_user(state, name, password, admin=False):
    """Add a user with the CLI, as an admin would."""
    cmd = [program("granary"), "--state", str(state), "user", "add", name]
    if admin:
        cmd.append("--admin")
    r = run(cmd, input=password + "\n", stdin=None)
    assert r.returncode == 0, r.stderr


class Packager:
    """Builds signed test packages with the real spk tool: one key (app id)
    per Packager, any version, any extra files."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "GRANARY_KEYRING": str(self.dir / "keyring")}
        r = run([program("spk"), "keygen"], env=self.env)
        assert r.returncode == 0, r.stderr
        self.app_id = r.stdout.strip()
        self.count = 0

    def build(self, version=1, title="Test app", files=None, big=0, run_section=None,
              permissions=("read", "write")):
        """Pack a package; files maps package paths to bytes (or (bytes, mode));
        big adds a file of that many random bytes (to make installs take a
        while); run_section replaces the manifest's run section."""
        self.count += 1
        src = self.dir / f"src{self.count}"
        src.mkdir()
        (src / "app").mkdir()
        (src / "app" / "run").write_text("#!/bin/sh\nexit 0\n")
        for path, data in (files or {}).items():
            p = src / path
            p.parent.mkdir(parents=True, exist_ok=True)
            mode = 0o644
            if isinstance(data, tuple):
                data, mode = data
            p.write_bytes(data)
            p.chmod(mode)
        if big:
            with open(src / "app" / "big.bin", "wb") as f:
                for _ in range(0, big, 1 << 20):
                    f.write(os.urandom(1 << 20))
        definition = {
            "app": {"id": self.app_id, "title": title, "version": version,
                    "marketingVersion": f"{version}.0"},
            "run": run_section or {"command": ["/app/run"], "httpPort": 8000},
            "permissions": list(permissions),
            "roles": [{"name": "editor", "permissions": list(permissions), "default": True}],
        }
        (src / "spk.json").write_text(json.dumps(definition))
        out = self.dir / f"p{self.count}.spk"
        r = run([program("spk"), "pack", str(src), str(out)], env=self.env, timeout=300)
        assert r.returncode == 0, r.stderr
        return out
