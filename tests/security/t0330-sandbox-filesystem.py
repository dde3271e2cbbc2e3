"""C: the grain's file system.

Inside checks pass in the grain (G); their negative controls fail on the host
(N) or on a path inside the grain where the property does not hold.
"""
import hashlib
import os
import subprocess
import sys
import time

import pytest

import sandboxlib

DEV = ["null", "zero", "full", "random", "urandom", "shm", "fd", "stdin", "stdout", "stderr"]


@pytest.fixture(scope="module")
def env():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    pkg = sandboxlib.make_package(os.path.join(tmp, "pkg"))
    var = os.path.join(tmp, "var")
    os.makedirs(var)
    yield {"tmp": tmp, "pkg": pkg, "var": var}
    subprocess.run(["umount", "-q", os.path.join(pkg, "app", "mnt")], capture_output=True)
    sandboxlib.rmtree(tmp)


def G(env, name, *args, opts=()):
    ok, detail, _ = sandboxlib.check("G", name, *args, pkg=env["pkg"], var=env["var"], opts=opts)
    return ok, detail


@pytest.mark.parametrize("path", ["/", "/app", "/dev"])
def test_read_only(env, path):
    ok, detail = G(env, "write-denied", path)
    assert ok, detail


@pytest.mark.parametrize("path", ["/var", "/tmp", "/dev/shm"])
def test_writable(env, path):
    ok, detail = G(env, "write-allowed", path)
    assert ok, detail


def test_read_only_check_sees_a_writable_dir(env):
    """Negative control: the same check on /var must fail."""
    ok, detail = G(env, "write-denied", "/var")
    assert not ok, detail


@pytest.mark.parametrize("path", ["/app/data.txt", "/probe"])
def test_package_files_do_not_open_for_writing(env, path):
    ok, detail = G(env, "open-write-denied", path)
    assert ok, detail


def test_package_files_open_for_writing_on_the_host(env):
    """Negative control: root on the host opens the same file for writing."""
    ok, detail, _ = sandboxlib.check("N", "open-write-denied",
                                     os.path.join(env["pkg"], "app", "data.txt"))
    assert not ok, detail


def test_dotdot_of_root_is_root(env):
    ok, detail = G(env, "dotdot-is-root")
    assert ok, detail


@pytest.fixture(scope="module")
def canaries(env):
    """A file with a unique name in host places a grain must never see, and
    one with another unique name planted in the package (the control)."""
    name = f"granary-canary-{os.getpid()}-{time.monotonic_ns()}"
    places = ["/tmp", "/var/tmp", "/run", "/root", env["tmp"], os.path.dirname(sandboxlib.SANDBOX)]
    planted = []
    for d in places:
        path = os.path.join(d, name)
        try:
            with open(path, "w") as f:
                f.write("canary\n")
            planted.append(path)
        except OSError:
            pass
    inside = name + "-inside"
    with open(os.path.join(env["pkg"], "app", inside), "w") as f:
        f.write("inside\n")
    yield name, inside, planted
    for path in planted:
        os.unlink(path)


def test_no_host_canary_in_a_full_tree_walk(env, canaries):
    name, _, planted = canaries
    assert len(planted) >= 4
    ok, detail = G(env, "no-name", name)
    assert ok, detail


def test_tree_walk_finds_a_canary_inside(env, canaries):
    """Positive control of the walk: the package's own canary is found."""
    _, inside, _ = canaries
    ok, detail = G(env, "find-name", inside)
    assert ok, detail


def test_tree_walk_finds_a_host_canary_on_the_host(env, canaries):
    """Negative control: the same walk on the host finds the canary."""
    name, _, _ = canaries
    ok, detail, _ = sandboxlib.check("N", "no-name", name, timeout=300)
    assert not ok, detail


MOUNT_CHECKS = ["mounts-nosuid", "mounts-nodev", "mounts-rw-only-var-tmp-shm",
                "mounts-not-shared"]


@pytest.mark.parametrize("name", MOUNT_CHECKS)
def test_mount_flags(env, name):
    ok, detail = G(env, name)
    assert ok, detail


@pytest.mark.parametrize("name", MOUNT_CHECKS)
def test_mount_flags_fail_on_the_host(name):
    """Negative control: the host's mounts (made shared in a mount namespace of
    the test's own, as most hosts have them) fail each check."""
    p = sandboxlib.run(["unshare", "-m", "--propagation", "shared", sandboxlib.PROBE, "check",
                        name])
    checks, _ = sandboxlib.parse(p.stdout)
    assert name in checks, p.stderr
    assert not checks[name][0], checks[name][1]


def test_host_mount_after_start_is_invisible(env):
    mnt = os.path.join(env["pkg"], "app", "mnt")
    go = os.path.join(env["var"], "go")
    with sandboxlib.Grain(env["pkg"], ["/probe", "check", "wait-then-absent", "/app/mnt",
                                       "/var/go"], var=env["var"]) as g:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "canary", mnt], check=True)
        try:
            with open(os.path.join(mnt, "visible"), "w") as f:
                f.write("x")
            with open(go, "w") as f:
                f.write("go")
            g.proc.wait(timeout=60)
        finally:
            subprocess.run(["umount", mnt], check=True)
            os.unlink(go)
    checks, _ = sandboxlib.parse("\n".join(g.lines))
    assert checks["wait-then-absent"][0], checks["wait-then-absent"][1]


def test_mount_made_before_start_is_seen(env):
    """Negative control: the check does see a mount that is part of the package."""
    mnt = os.path.join(env["pkg"], "app", "mnt")
    go = os.path.join(env["var"], "go")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "canary", mnt], check=True)
    try:
        with open(os.path.join(mnt, "visible"), "w") as f:
            f.write("x")
        with open(go, "w") as f:
            f.write("go")
        ok, detail = G(env, "wait-then-absent", "/app/mnt", "/var/go")
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.unlink(go)
    assert not ok, detail


def test_mknod_of_a_device_is_refused(env):
    ok, detail = G(env, "mknod-device-denied")
    assert ok, detail


def test_mknod_of_a_device_works_on_the_host():
    ok, detail, _ = sandboxlib.check("N", "mknod-device-denied")
    assert not ok, detail


def test_mkfifo_works(env):
    ok, detail = G(env, "mkfifo-works")
    assert ok, detail


def test_dev_holds_exactly_the_allowlist(env):
    ok, detail = G(env, "dir-exactly", "/dev", *DEV)
    assert ok, detail


def test_host_dev_is_more():
    ok, detail, _ = sandboxlib.check("N", "dir-exactly", "/dev", *DEV)
    assert not ok, detail


PROC = [("open-write-denied", "/proc/sys/kernel/hostname"),
        ("open-write-denied", "/proc/sysrq-trigger"),
        ("open-read-denied", "/proc/kcore"),
        ("absent", "/sys")]


@pytest.mark.parametrize("name,path", PROC)
def test_proc_and_sys(env, name, path):
    ok, detail = G(env, name, path)
    assert ok, detail


@pytest.mark.parametrize("name,path", PROC)
def test_proc_and_sys_on_the_host(name, path):
    """Negative control: root on the host opens them (and writes nothing)."""
    if not os.path.exists(path):
        pytest.skip(f"host: this kernel has no {path}; the grain's /proc has none either way "
                    "(test_proc_holds_only_processes)")
    ok, detail, _ = sandboxlib.check("N", name, path)
    assert not ok, detail


def test_proc_holds_only_processes(env):
    ok, detail = G(env, "proc-only-pids")
    assert ok, detail


def test_host_proc_holds_more():
    ok, detail, _ = sandboxlib.check("N", "proc-only-pids")
    assert not ok, detail


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_no_exe_opens_for_writing_and_host_binaries_unchanged(env):
    paths = [sandboxlib.SANDBOX, sandboxlib.GRAIN_INIT, sandboxlib.PROBE,
             os.path.join(env["pkg"], "probe")]
    before = [sha256(p) for p in paths]
    ok, detail = G(env, "exe-not-writable")
    assert ok, detail
    assert [sha256(p) for p in paths] == before


@pytest.mark.parametrize("path", ["/tmp", "/dev/shm"])
def test_tmp_full_at_its_size(env, path):
    ok, detail = G(env, "fill-tmp", path, opts=["--tmp-size", "1M"])
    assert ok, detail
    written = int(detail.split()[0].split("=")[1])
    assert (1 << 20) - (256 << 10) <= written <= 1 << 20, detail


def test_tmp_size_is_what_stops_it(env):
    """Negative control: with 4M, more than 1M fits."""
    ok, detail = G(env, "fill-tmp", "/tmp", opts=["--tmp-size", "4M"])
    written = int(detail.split()[0].split("=")[1])
    assert ok and written > 1 << 20, detail


RENAMER = r"""
import os, sys, time
d, target, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
os.makedirs(os.path.join(d, "a.dir"), exist_ok=True)
open(os.path.join(d, "a.dir", "f"), "w").close()
os.symlink(target, os.path.join(d, "a.link"))
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    # "a" is a directory, then a symlink to the host, again and again.
    os.rename(os.path.join(d, "a.dir"), os.path.join(d, "a"))
    os.rename(os.path.join(d, "a"), os.path.join(d, "a.dir"))
    os.rename(os.path.join(d, "a.link"), os.path.join(d, "a"))
    os.rename(os.path.join(d, "a"), os.path.join(d, "a.link"))
    n += 1
print(n)
"""


def host_tree(base):
    host = os.path.join(base, "host-etc")
    os.makedirs(host)
    with open(os.path.join(host, "passwd"), "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    return host


def owners(host, extra=()):
    return [os.lstat(p).st_uid for p in [host, os.path.join(host, "passwd")] + list(extra)]


def test_chown_of_grain_data_never_follows_planted_links():
    """1000 hand-overs of a data dir while the grain renames a dir and a
    symlink to the host back and forth; plus a static symlink and a hard link."""
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    try:
        host = host_tree(tmp)
        var = os.path.join(tmp, "var")
        os.makedirs(var)
        os.symlink(host, os.path.join(var, "l"))
        hostfile = os.path.join(tmp, "host-file")
        with open(hostfile, "w") as f:
            f.write("x")
        os.link(hostfile, os.path.join(var, "hardlink"))
        renamer = subprocess.Popen([sys.executable, "-c", RENAMER, var, host, "600"],
                                   stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.2)
            uid = sandboxlib.random_uid()
            p = sandboxlib.tool("chown-tree", var, uid, uid, 1000, timeout=600)
            assert p.returncode == 0, p.stderr
        finally:
            renamer.kill()
            renamer.wait()
        assert owners(host, [hostfile]) == [0, 0, 0]
        assert os.stat(var).st_uid == uid
        # The renamer was stopped mid-swap: the directory is "a" or "a.dir".
        real = [d for d in ("a", "a.dir") if not os.path.islink(os.path.join(var, d))
                and os.path.isdir(os.path.join(var, d))]
        assert len(real) == 1 and os.lstat(os.path.join(var, real[0], "f")).st_uid in (0, uid)
    finally:
        sandboxlib.rmtree(tmp)


def test_a_following_chown_is_caught():
    """Negative control: chown -R -L follows the planted link; the check sees it."""
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    try:
        host = host_tree(tmp)
        var = os.path.join(tmp, "var")
        os.makedirs(var)
        os.symlink(host, os.path.join(var, "l"))
        uid = sandboxlib.random_uid()
        subprocess.run(["chown", "-R", "-L", str(uid), var], check=True)
        assert owners(host) != [0, 0]
    finally:
        sandboxlib.rmtree(tmp)
