"""The real apps of the tests and benchmarks, packed into signed .spk files.

    from apps import build_app
    spk = build_app("grain-test")               # a key (app id) of its own per app
    spk = build_app("php-hello", packager)      # signed with a conftest.Packager's key

build_app() returns the path of a package of apps/NAME, signed with the
packager's key (its app id replaces the one in the app's spk.json), built once
per test process and packager. Apps: "grain-test" (apps/grain-test: the C
test app, build/apps/grain-test from `make`), "python-hello" and "php-hello"
(Debian's python3 and php-cli packed with the app), "hello".

One Packager is one app id: give each app its own (the default does), or a
server takes the second package for an update of the first app.

What is slow is done once per `make test`, not once per test file: the
definition directory of each app, with its file list (make-list.sh asks the
interpreter what it loads) or its binary, is prepared below
BUILD/test-apps/NAME under a lock, and reused while apps/NAME, the binary and
the host's interpreter are unchanged. Packing (signing with each test's own
key) is per packager.

Also here, for tests that run an app in a sandbox by hand:
connect_in_netns(pid, port) opens a TCP connection to 127.0.0.1:port inside the
network namespace of process pid (a grain's), and netns_http(...) sends one
request over it.
"""
import atexit
import ctypes
import fcntl
import hashlib
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

# Outside `make test` (a benchmark, a shell), the tree is the one this file is in.
os.environ.setdefault("GRANARY_SOURCE", os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
os.environ.setdefault("GRANARY_BUILD", os.path.join(os.environ["GRANARY_SOURCE"], "build"))

from conftest import BUILD, SOURCE, Packager, program, wait_for  # noqa: E402

APPS = ("grain-test", "python-hello", "php-hello", "hello")

# The host programs a file list is made from: a new version means a new list.
_HOST_INPUTS = {
    "python-hello": ["/usr/bin/python3"],
    "php-hello": ["/usr/bin/php"],
}

_built = {}  # (name, app id) -> path of the .spk
_default_packagers = {}  # name -> Packager
_tmp = None


def _session_dir():
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="granary-apps-")
        os.chmod(_tmp, 0o711)
        atexit.register(shutil.rmtree, _tmp, True)
    return pathlib.Path(_tmp)


def _fingerprint(name):
    """What the prepared definition of name depends on."""
    h = hashlib.sha256()
    src = pathlib.Path(SOURCE, "apps", name)
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if rel.name == "spk-files.list" or rel.suffix == ".spk" or str(rel) == name:
            continue
        h.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    inputs = list(_HOST_INPUTS.get(name, []))
    if name == "grain-test":
        inputs.append(program("apps/grain-test"))
    for path in inputs:
        real = os.path.realpath(path)
        st = os.stat(real)
        h.update(f"{real} {st.st_size} {st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def prepared(name):
    """BUILD/test-apps/NAME: apps/NAME ready to pack (file list made, binary
    in place), shared by every test process; made again when its inputs change."""
    if name not in APPS:
        raise ValueError(f"unknown app {name!r} (one of {', '.join(APPS)})")
    base = pathlib.Path(BUILD, "test-apps")
    base.mkdir(parents=True, exist_ok=True)
    dest = base / name
    stamp = _fingerprint(name)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (dest / ".fingerprint").is_file() and (dest / ".fingerprint").read_text() == stamp:
                return dest
            tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
            shutil.copytree(pathlib.Path(SOURCE, "apps", name), tmp / "def",
                            ignore=shutil.ignore_patterns("*.spk", "spk-files.list"))
            d = tmp / "def"
            if name == "grain-test":
                binary = program("apps/grain-test")
                if not os.path.exists(binary):
                    raise RuntimeError(f"{binary} is not built; run make")
                shutil.copy(binary, d / "grain-test")
            elif name == "hello":
                r = subprocess.run(["cc", "-static", "-O2", "-I", SOURCE, "-o", str(d / "hello"),
                                    str(d / "hello.c")], capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"compiling hello failed:\n{r.stderr}")
            else:
                r = subprocess.run([str(d / "make-list.sh")], capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL, timeout=120)
                if r.returncode != 0:
                    raise RuntimeError(f"apps/{name}/make-list.sh failed:\n{r.stderr}")
            (d / ".fingerprint").write_text(stamp)
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(d, dest)
            shutil.rmtree(tmp)
            return dest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def default_packager(name):
    """The packager (and so the app id) build_app(name) uses when given none."""
    if name not in _default_packagers:
        _default_packagers[name] = Packager(_session_dir() / f"packager-{name}")
    return _default_packagers[name]


def build_app(name, packager=None, version=None):
    """Path of apps/NAME packed and signed with packager's key (default: one
    per app name, for this process); built once per (app, packager, version).
    version replaces app.version (to test updates)."""
    packager = packager or default_packager(name)
    key = (name, packager.app_id, version)
    if key in _built and _built[key].exists():
        return _built[key]
    src = prepared(name)
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=packager.dir))
    definition = work / "def"
    shutil.copytree(src, definition, symlinks=True,
                    ignore=shutil.ignore_patterns(".fingerprint"))
    manifest = json.loads((definition / "spk.json").read_text())
    manifest["app"]["id"] = packager.app_id
    if version is not None:
        manifest["app"]["version"] = version
    (definition / "spk.json").write_text(json.dumps(manifest, indent=2))
    out = packager.dir / f"{name}-{packager.app_id[:8]}-{version or 'v'}.spk"
    r = subprocess.run([program("spk"), "pack", "--quiet", str(definition), str(out)],
                       env=packager.env, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"spk pack of {name} failed:\n{r.stderr}")
    shutil.rmtree(work)
    _built[key] = out
    return out


def manifest_of(name):
    """apps/NAME/spk.json as a dict (its run.command, run.httpPort...)."""
    return json.loads(pathlib.Path(SOURCE, "apps", name, "spk.json").read_text())


# ---- talking to a grain's loopback from the host ---------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def connect_in_netns(pid, port, timeout=10):
    """A TCP socket connected to 127.0.0.1:port in the network namespace of
    process pid (root only). setns() changes only the calling thread, and a
    socket keeps the namespace it was made in: a short-lived thread makes it."""
    result = {}

    def work():
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns into the network of {pid}: {os.strerror(e)}")
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.connect(("127.0.0.1", port))
            except BaseException:
                s.close()
                raise
            result["sock"] = s
        except BaseException as e:  # handed to the caller
            result["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


class NetnsHTTPConnection(http.client.HTTPConnection):
    """http.client over connect_in_netns(): talk HTTP to an app in a grain."""

    def __init__(self, pid, port, timeout=30):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._pid = pid

    def connect(self):
        self.sock = connect_in_netns(self._pid, self.port, self.timeout)


def netns_http(pid, port, method, path, body=None, headers=None, timeout=30):
    """One request to 127.0.0.1:port inside pid's network namespace:
    (status, {header: value} (lower-case names), body bytes)."""
    c = NetnsHTTPConnection(pid, port, timeout)
    try:
        c.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def unpack(spk, dest):
    """spk unpack SPK DEST (DEST must not exist); returns DEST as a Path."""
    r = subprocess.run([program("spk"), "unpack", str(spk), str(dest)], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"spk unpack {spk} failed:\n{r.stderr}")
    return pathlib.Path(dest)


class SandboxedApp:
    """An unpacked package run as a grain runs it (root only), until stop():
    granary-sandbox --root ROOT --var DATA --setenv (run.env) -- run.command,
    ready once its run.httpPort accepts. .pid is the grain's pid 1 on the
    host, .stderr what the sandbox and the app wrote, after stop()."""

    def __init__(self, root, data):
        manifest = json.loads(pathlib.Path(root, "granary-manifest.json").read_text())
        self.port = manifest["run"]["httpPort"]
        cmd = [program("granary-sandbox"), "--root", str(root), "--var", str(data)]
        for k, v in manifest["run"].get("env", {}).items():
            cmd += ["--setenv", k, v]
        self.proc = subprocess.Popen(cmd + ["--"] + manifest["run"]["command"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = None

        def up():
            if self.proc.poll() is not None:
                return True
            kids = open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()
            if not kids:
                return False
            self.pid = int(kids[0])
            connect_in_netns(self.pid, self.port, 1).close()
            return True

        if not wait_for(up, timeout=30) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"{manifest['run']['command']} did not listen on port "
                               f"{self.port} in its sandbox:\n{self.stderr}")

    def request(self, method, path, **kw):
        """netns_http() to the app: (status, headers, body)."""
        return netns_http(self.pid, self.port, method, path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stop(self):
        """SIGTERM; the exit status (128 + 15 when the app obeyed it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        self.stderr = err
        return self.proc.returncode
