"""G: host preconditions. The self-check reads sysctls from a proc tree (a fake
one here, so each can be flipped alone) and cgroups from a cgroup root; one
real sysctl is also flipped, in the safe direction, and put back."""
import os

import pytest

import sandboxlib

GOOD = {
    "kernel/unprivileged_bpf_disabled": "2",
    "kernel/perf_event_paranoid": "2",
    "vm/unprivileged_userfaultfd": "0",
    "kernel/io_uring_disabled": "2",
    "fs/protected_symlinks": "1",
    "fs/protected_hardlinks": "1",
    "fs/suid_dumpable": "0",
    "kernel/kptr_restrict": "1",
    "kernel/dmesg_restrict": "1",
    "user/max_user_namespaces": "65536",
}
BAD = {
    "kernel/unprivileged_bpf_disabled": "0",
    "kernel/perf_event_paranoid": "1",
    "vm/unprivileged_userfaultfd": "1",
    "kernel/io_uring_disabled": "0",
    "fs/protected_symlinks": "0",
    "fs/protected_hardlinks": "0",
    "fs/suid_dumpable": "2",
    "kernel/kptr_restrict": "0",
    "kernel/dmesg_restrict": "0",
}
OK, WARN, REFUSE = 0, 1, 2


@pytest.fixture
def proc():
    tmp = sandboxlib.mkdtemp()
    for name, value in GOOD.items():
        path = os.path.join(tmp, "sys", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(value + "\n")
    yield tmp
    sandboxlib.rmtree(tmp)


def set_sysctl(proc, name, value):
    with open(os.path.join(proc, "sys", name), "w") as f:
        f.write(value + "\n")


def check_host(proc, cgroups=sandboxlib.CGROUP_ROOT, allow=False):
    p = sandboxlib.tool("check-host", proc, cgroups, *(["allow"] if allow else []))
    return p.returncode, p.stdout


def test_a_good_host_passes(proc):
    sandboxlib.require_sandbox()
    code, out = check_host(proc)
    assert (code, out) == (OK, "")


@pytest.mark.parametrize("name", sorted(BAD))
def test_each_weak_sysctl_warns(proc, name):
    sandboxlib.require_sandbox()
    set_sysctl(proc, name, BAD[name])
    code, out = check_host(proc)
    assert code == WARN, out
    assert out.startswith("warn " + name.replace("/", ".") + " is "), out
    assert out.count("\n") == 1


def test_missing_knobs_are_skipped(proc):
    """Older kernels lack io_uring_disabled and friends: not a finding."""
    sandboxlib.require_sandbox()
    os.unlink(os.path.join(proc, "sys", "kernel/io_uring_disabled"))
    assert check_host(proc) == (OK, "")


def test_no_user_namespaces_refuses(proc):
    sandboxlib.require_sandbox()
    set_sysctl(proc, "user/max_user_namespaces", "0")
    code, out = check_host(proc)
    assert code == REFUSE
    assert "user.max_user_namespaces is 0" in out


def test_no_cgroups_refuses_unless_allowed(proc):
    sandboxlib.require_sandbox()
    empty = sandboxlib.mkdtemp()
    try:
        code, out = check_host(proc, cgroups=empty)
        assert code == REFUSE and "memory" in out, out
        code, out = check_host(proc, cgroups=empty, allow=True)
        assert code == WARN and out.startswith("warn "), out
    finally:
        os.rmdir(empty)


@pytest.fixture(scope="module")
def pkg():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    yield sandboxlib.make_package(os.path.join(tmp, "pkg"))
    sandboxlib.rmtree(tmp)


def test_cli_refuses_without_cgroups(pkg):
    empty = sandboxlib.mkdtemp()
    try:
        p = sandboxlib.run_sandbox(pkg, ["/probe", "noop"], opts=["--cgroup-root", empty])
        assert p.returncode == 125
        assert "cgroup" in p.stderr and "--allow-no-limits" in p.stderr, p.stderr
        p = sandboxlib.run_sandbox(pkg, ["/probe", "noop"],
                                   opts=["--cgroup-root", empty, "--allow-no-limits"])
        assert p.returncode == 0, p.stderr
        assert "without cgroup limits" in p.stderr, p.stderr
    finally:
        os.rmdir(empty)


def test_cli_check_host_reports():
    sandboxlib.require_sandbox()
    p = sandboxlib.run([sandboxlib.SANDBOX, "--check-host"])
    assert p.returncode == 0, p.stderr
    assert "This host can run grain sandboxes" in p.stdout


def test_flipping_a_real_sysctl():
    """kernel.kptr_restrict (or the first weak knob found) set to its safe value
    makes its warning go away; it is put back at once."""
    sandboxlib.require_sandbox()
    for name in ("kernel/kptr_restrict", "fs/protected_symlinks", "kernel/dmesg_restrict"):
        path = os.path.join("/proc/sys", name)
        with open(path) as f:
            old = f.read().strip()
        if old == BAD[name]:
            break
    else:
        pytest.skip("host: kptr_restrict, protected_symlinks and dmesg_restrict are already "
                    "safe here; the fake-tree tests flip each knob")
    dotted = name.replace("/", ".")
    before = sandboxlib.run([sandboxlib.SANDBOX, "--check-host"]).stderr
    try:
        with open(path, "w") as f:
            f.write(GOOD[name])
        after = sandboxlib.run([sandboxlib.SANDBOX, "--check-host"]).stderr
    finally:
        with open(path, "w") as f:
            f.write(old)
    assert dotted + " is " in before
    assert dotted + " is " not in after
