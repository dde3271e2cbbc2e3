"""Helpers for the grain sandbox security tests (tests/security/t03*-sandbox-*.py).

The probe (tests/security/probe.c, static) runs in three modes:

  G  the full grain: granary-sandbox --root PKG ... -- /probe ...
  O  the filter only, as full root on the host: sandbox-tool filter-exec probe ...
  N  nothing: the probe straight on the host as root (the negative control:
     a check that passes here proves nothing about the sandbox)

Everything here talks only to 127.0.0.1 or to namespaces the tests create.
"""
import ctypes
import errno
import fcntl
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import tempfile
import time

import pytest

SOURCE = os.environ.get("GRANARY_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("GRANARY_BUILD") or os.path.join(SOURCE, "build")
SANDBOX = os.path.join(BUILD, "granary-sandbox")
GRAIN_INIT = os.path.join(BUILD, "grain-init")
PROBE = os.path.join(BUILD, "tests", "security", "probe")
TOOL = os.path.join(BUILD, "tests", "security", "sandbox-tool")
GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

UID_FIRST = 0x40000000
UID_COUNT = 65536
CGROUP_ROOT = "/sys/fs/cgroup"

# Extra environment for every granary-sandbox the tests start (none needed:
# under make check-asan it runs with the suite's ASAN_OPTIONS, leaks checked).
SANDBOX_ENV_EXTRA = {}


def require_sandbox():
    """Skip unless this host can build sandboxes (root, user namespaces)."""
    if os.geteuid() != 0:
        pytest.skip("host: the sandbox tests run as root")
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                pytest.skip("kernel: user namespaces are disabled (user.max_user_namespaces=0)")
    except FileNotFoundError:
        pytest.skip("kernel: no user namespaces")
    for path in (SANDBOX, PROBE, TOOL, GRAIN_INIT):
        if not os.path.exists(path):
            pytest.fail(f"{path} is not built; run make test")


def mkdtemp(prefix="granary-sbx-"):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


def make_package(root):
    """A package tree for the probe: /probe, setuid and file-capability copies,
    /app with a data file and an empty mount point, a canary found only inside."""
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    probe = os.path.join(root, "probe")
    shutil.copy(PROBE, probe)
    os.chmod(probe, 0o755)
    suid = os.path.join(root, "suid-probe")
    shutil.copy(PROBE, suid)
    os.chown(suid, 0, 0)
    os.chmod(suid, 0o4755)
    filecap = os.path.join(root, "filecap-probe")
    shutil.copy(PROBE, filecap)
    os.chmod(filecap, 0o755)
    # VFS_CAP_REVISION_2, effective flag, CAP_SYS_ADMIN (21) | CAP_SETUID (7) permitted
    caps = (1 << 21) | (1 << 7)
    os.setxattr(filecap, "security.capability",
                struct.pack("<IIIII", 0x02000000 | 1, caps, 0, 0, 0))
    app = os.path.join(root, "app")
    os.makedirs(os.path.join(app, "mnt"), exist_ok=True)
    with open(os.path.join(app, "data.txt"), "w") as f:
        f.write("package data\n")
    for d in ("app", "app/mnt"):
        os.chmod(os.path.join(root, d), 0o755)
    return root


def sandbox_cmd(pkg, argv, var=None, opts=()):
    cmd = [SANDBOX, "--root", pkg]
    if var:
        cmd += ["--var", var]
    return cmd + list(opts) + ["--"] + list(argv)


def run(cmd, timeout=120, env=None, **kw):
    e = dict(os.environ)
    e.update(SANDBOX_ENV_EXTRA)
    if env:
        e.update(env)
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e, **kw)


def run_sandbox(pkg, argv, var=None, opts=(), **kw):
    return run(sandbox_cmd(pkg, argv, var, opts), **kw)


def parse(output):
    """probe output → ({check: (passed, detail)}, {syscall id: result})."""
    checks, syscalls = {}, {}
    for line in output.splitlines():
        parts = line.split(" ", 3)
        if parts[0] == "check" and len(parts) >= 3:
            checks[parts[1]] = (parts[2] == "pass", parts[3] if len(parts) > 3 else "")
        elif parts[0] == "syscall" and len(parts) >= 3:
            syscalls[parts[1]] = parts[2]
    return checks, syscalls


def probe_argv(mode, args, pkg_probe="/probe"):
    if mode == "G":
        return [pkg_probe] + list(args)
    if mode == "O":
        return [TOOL, "filter-exec", PROBE] + list(args)
    return [PROBE] + list(args)


def check(mode, name, *args, pkg=None, var=None, opts=(), expect_exit=0, **kw):
    """Run one probe check in a mode; returns (passed, detail, completed process)."""
    argv = ["check", name] + [str(a) for a in args]
    if mode == "G":
        p = run_sandbox(pkg, probe_argv("G", argv), var=var, opts=opts, **kw)
    else:
        p = run(probe_argv(mode, argv), **kw)
    checks, _ = parse(p.stdout)
    if name not in checks:
        raise AssertionError(
            f"probe check {name} ({mode}) printed no result; exit {p.returncode}\n"
            f"stdout: {p.stdout}\nstderr: {p.stderr}")
    if expect_exit is not None and p.returncode != expect_exit:
        raise AssertionError(f"probe check {name} ({mode}) exited {p.returncode}: {p.stderr}")
    return checks[name][0], checks[name][1], p


class Grain:
    """A sandbox running in the background (granary-sandbox as a child)."""

    def __init__(self, pkg, argv, var=None, opts=(), ready="ready", env=None, **kw):
        e = dict(os.environ)
        e.update(SANDBOX_ENV_EXTRA)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(sandbox_cmd(pkg, argv, var, opts), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                     env=e, **kw)
        self.lines = []
        if ready:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line.rstrip("\n"))
                if line.strip() == ready:
                    break
            else:
                self.stop()
                raise AssertionError("the grain never became ready")
            if not self.lines or self.lines[-1] != ready:
                err = self.proc.stderr.read()
                self.proc.wait()
                raise AssertionError(f"the grain exited before ready: {self.lines} {err}")

    @property
    def init_pid(self):
        """Host pid of the grain's pid 1 (grain-init)."""
        return children(self.proc.pid)[0]

    def pids(self):
        return descendants(self.proc.pid)

    def host_uid(self):
        with open(f"/proc/{self.init_pid}/uid_map") as f:
            return int(f.read().split()[1])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.lines += out.splitlines()
        self.stderr = err
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL if exc[0] else signal.SIGTERM)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def descendants(pid):
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def status_fields(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def pids_of_uid(uid):
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    found.append(int(d))
            except FileNotFoundError:
                pass
    return found


def own_cgroup(controller):
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    return None


def grain_cgroup_dir(pid, controller):
    """Host path of a process's cgroup directory in a v1 hierarchy."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return os.path.join(CGROUP_ROOT, controller, path.lstrip("/"))
    return None


def cgroup_v1():
    return os.path.isdir(os.path.join(CGROUP_ROOT, "memory")) and \
        os.statvfs(CGROUP_ROOT) is not None and \
        not os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def random_uid():
    """A host uid in the upper half of the sandbox range, for --host-uid."""
    return UID_FIRST + UID_COUNT // 2 + random.randrange(UID_COUNT // 2)


def tool(*args, **kw):
    return run([TOOL] + [str(a) for a in args], **kw)


def table():
    """The filter table's cases: list of dicts."""
    p = tool("table")
    assert p.returncode == 0, p.stderr
    rows = []
    for line in p.stdout.splitlines():
        parts = line.split(" ", 10)
        rows.append({"id": parts[0], "kind": parts[1], "abi": parts[2], "nr": int(parts[3]),
                     "args": [int(x) for x in parts[4:10]], "why": parts[10]})
    return rows


# ---- SysV IPC through libc, for the IPC namespace checks -----------------------

_libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_RMID = 0o1000, 0


class HostIpc:
    """A shm segment, a semaphore set and a message queue with one key, on the host."""

    def __init__(self):
        self.key = random.randrange(0x10000000, 0x7fffffff)
        self.shm = _libc.shmget(self.key, 4096, IPC_CREAT | 0o600)
        self.sem = _libc.semget(self.key, 1, IPC_CREAT | 0o600)
        self.msg = _libc.msgget(self.key, IPC_CREAT | 0o600)
        if min(self.shm, self.sem, self.msg) < 0:
            self.close()
            raise OSError(ctypes.get_errno(), "SysV IPC")

    def close(self):
        if self.shm >= 0:
            _libc.shmctl(self.shm, IPC_RMID, None)
        if self.sem >= 0:
            _libc.semctl(self.sem, 0, IPC_RMID)
        if self.msg >= 0:
            _libc.msgctl(self.msg, IPC_RMID, None)


def nsenter_net(pid, cmd, **kw):
    """Run cmd on the host file system inside the network namespace of pid."""
    return run(["nsenter", f"--net=/proc/{pid}/ns/net"] + list(cmd), **kw)


def lock_free(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        return e.errno != errno.EWOULDBLOCK
    finally:
        os.close(fd)


def file_mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---- the offline filter audit ------------------------------------------------------

NATIVE_MAX = 1023


def bpf(which="embedded"):
    """The filter's BPF: "embedded" (compiled in) or "export" (built now from the table)."""
    p = subprocess.run([TOOL, which], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def syscall_names(abi, maximum=NATIVE_MAX):
    p = tool("syscalls", abi, maximum)
    assert p.returncode == 0, p.stderr
    names = {}
    for line in p.stdout.splitlines():
        nr, name = line.split()
        names[int(nr)] = name
    return names


def golden_text(program, names, cases):
    """The reviewed form of the filter's decisions (tests/security/golden/)."""
    from bpfsim import (AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64,
                        X32_SYSCALL_BIT, simulate)

    ones = (0xFFFFFFFFFFFFFFFF,) * 6
    by_nr = {}
    for c in cases:
        if c["abi"] == "x86_64":
            by_nr.setdefault(c["nr"], []).append(c["args"])
    out = ["# The grain's seccomp filter (sandbox/sandbox-seccomp.c), decision by decision,",
           "# simulated over its BPF by tests/security/bpfsim.py. After a reviewed change",
           "# to the table, regenerate with tests/security/update-seccomp-golden.",
           "# [arguments]: the decision depends on the arguments (see the case lines)."]

    def ranges(arch, base, label, top):
        start, prev = None, None
        for n in range(0, top + 1):
            v = simulate(program, base + n, arch)
            if prev is None:
                start, prev = n, v
            elif v != prev:
                out.append(f"{label} {base + start:#x}-{base + n - 1:#x} {prev}")
                start, prev = n, v
        out.append(f"{label} {base + start:#x}-{base + top:#x} {prev}")

    run_start = None
    for nr in range(0, NATIVE_MAX + 1):
        name = names.get(nr)
        verdict = simulate(program, nr)
        if name is None:
            if run_start is None:
                run_start, run_verdict = nr, verdict
            if verdict != run_verdict:
                out.append(f"x86_64 {run_start}-{nr - 1} - {run_verdict}")
                run_start, run_verdict = nr, verdict
            continue
        if run_start is not None:
            out.append(f"x86_64 {run_start}-{nr - 1} - {run_verdict}")
            run_start = None
        vectors = [ones] + by_nr.get(nr, [])
        conditional = any(simulate(program, nr, args=v) != verdict for v in vectors)
        out.append(f"x86_64 {nr} {name} {verdict}" + (" [arguments]" if conditional else ""))
    if run_start is not None:
        out.append(f"x86_64 {run_start}-{NATIVE_MAX} - {run_verdict}")
    for nr in (0x3FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF):
        out.append(f"x86_64 {nr:#x} - {simulate(program, nr)}")
    ranges(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, "x32", NATIVE_MAX)
    ranges(AUDIT_ARCH_I386, 0, "i386", NATIVE_MAX)
    ranges(AUDIT_ARCH_AARCH64, 0, "aarch64", NATIVE_MAX)
    arch_of = {"x86_64": AUDIT_ARCH_X86_64, "x32": AUDIT_ARCH_X86_64, "x86": AUDIT_ARCH_I386}
    for c in sorted(cases, key=lambda c: (c["abi"], c["nr"], c["args"])):
        verdict = simulate(program, c["nr"], arch_of[c["abi"]], c["args"])
        name = c["id"].split("#")[0]
        args = " ".join(f"{a:#x}" for a in c["args"])
        out.append(f"case {c['abi']} {name} {args} {verdict}")
    return "\n".join(out) + "\n"
