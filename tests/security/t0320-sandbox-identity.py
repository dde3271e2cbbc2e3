"""A: identity and privilege, from inside the grain and from the host.

Each inside check passes in the grain (G) and fails on the host as root (N)
or with the host state set up to make it fail: that is what shows the check
can see the thing it checks.
"""
import os
import subprocess

import pytest

import sandboxlib

# name → command prefix that makes the check fail on the host (negative control)
CHECKS = {
    "cap-inheritable": ["setpriv", "--inh-caps", "+sys_admin", "--"],
    "cap-permitted": [],
    "cap-effective": [],
    "cap-bounding": [],
    "cap-ambient": ["setpriv", "--inh-caps", "+net_bind_service", "--ambient-caps",
                    "+net_bind_service", "--"],
    "no-new-privs": [],
    "seccomp-filter": [],
    "uid-1000": [],
    "gid-1000": [],
    "no-groups": ["setpriv", "--groups", "4,27", "--"],
    "setuid-0-fails": [],
    "securebits-locked": [],
    "setgroups-denied": [],
}


@pytest.fixture(scope="module")
def pkg():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    yield sandboxlib.make_package(os.path.join(tmp, "pkg"))
    sandboxlib.rmtree(tmp)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_inside_the_grain(pkg, name):
    ok, detail, _ = sandboxlib.check("G", name, pkg=pkg)
    assert ok, detail


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_fails_on_the_host(pkg, name):
    p = sandboxlib.run(CHECKS[name] + [sandboxlib.PROBE, "check", name])
    checks, _ = sandboxlib.parse(p.stdout)
    assert name in checks, p.stderr
    assert not checks[name][0], f"negative control passed on the host: {checks[name][1]}"


def test_groups_of_the_caller_do_not_reach_the_grain(pkg):
    """A caller with supplementary groups (root's own, here adm and sudo) gives none."""
    p = sandboxlib.run(["setpriv", "--groups", "4,27", "--"] + sandboxlib.sandbox_cmd(
        pkg, ["/probe", "check", "no-groups"]))
    checks, _ = sandboxlib.parse(p.stdout)
    assert checks.get("no-groups", (False,))[0], p.stdout + p.stderr


def test_filter_alone_shows_seccomp_mode_2():
    ok, detail, _ = sandboxlib.check("O", "seccomp-filter")
    assert ok, detail


@pytest.mark.parametrize("binary", ["suid-probe", "filecap-probe"])
def test_setuid_and_file_caps_gain_nothing(pkg, binary):
    ok, detail, _ = sandboxlib.check("G", "exec-gains-nothing", "/" + binary, pkg=pkg)
    assert ok, detail


@pytest.mark.parametrize("binary", ["suid-probe", "filecap-probe"])
def test_setuid_and_file_caps_work_on_the_host(pkg, binary):
    """Negative control: the same files do raise privilege outside a grain."""
    p = sandboxlib.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                        os.path.join(pkg, binary), "whoami"])
    if binary == "suid-probe":
        assert p.stdout.startswith("euid=0 "), p.stdout + p.stderr
    else:
        assert "capeff=0000000000000000" not in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("name", ["fork-works", "threads-work", "exec-works", "loopback-works"])
def test_positive_controls(pkg, name):
    ok, detail, _ = sandboxlib.check("G", name, pkg=pkg)
    assert ok, detail


def grain_status_problems(pid):
    s = sandboxlib.status_fields(pid)
    bad = [k for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
           if s.get(k) != "0000000000000000"]
    if s.get("NoNewPrivs") != "1":
        bad.append("NoNewPrivs")
    if s.get("Seccomp") != "2":
        bad.append("Seccomp")
    if s.get("Groups", "") != "":
        bad.append("Groups")
    return bad


def test_host_view_of_every_grain_process(pkg):
    with sandboxlib.Grain(pkg, ["/probe", "sleep"]) as g:
        pids = g.pids()
        assert len(pids) == 2, pids  # grain-init and the probe
        for pid in pids:
            assert grain_status_problems(pid) == [], (pid, sandboxlib.status_fields(pid))
    # The same function finds every problem with a host root process.
    assert len(grain_status_problems(os.getpid())) >= 5


def read_map(pid, which):
    with open(f"/proc/{pid}/{which}") as f:
        return [line.split() for line in f.read().splitlines()]


def test_uid_and_gid_maps_one_line_to_a_range_uid(pkg):
    with sandboxlib.Grain(pkg, ["/probe", "sleep"]) as g:
        pid = g.init_pid
        for which in ("uid_map", "gid_map"):
            lines = read_map(pid, which)
            assert len(lines) == 1, lines
            inside, outside, count = map(int, lines[0])
            assert (inside, count) == (1000, 1)
            assert outside != 0
            assert sandboxlib.UID_FIRST <= outside < sandboxlib.UID_FIRST + sandboxlib.UID_COUNT
        with open(f"/proc/{pid}/setgroups") as f:
            assert f.read().strip() == "deny"
        # The host sees the grain's processes owned by that uid, not root.
        assert os.stat(f"/proc/{pid}").st_uid == g.host_uid()


def test_two_grains_get_distinct_host_uids(pkg):
    with sandboxlib.Grain(pkg, ["/probe", "sleep"]) as a, \
            sandboxlib.Grain(pkg, ["/probe", "sleep"]) as b:
        assert a.host_uid() != b.host_uid()


def test_host_uid_option_and_its_lock(pkg):
    uid = sandboxlib.random_uid()
    with sandboxlib.Grain(pkg, ["/probe", "sleep"], opts=["--host-uid", str(uid)]) as g:
        assert g.host_uid() == uid
        # While it runs, no other sandbox may take that uid.
        p = sandboxlib.run_sandbox(pkg, ["/probe", "noop"], opts=["--host-uid", str(uid)])
        assert p.returncode == 125
        assert "used by another running sandbox" in p.stderr
    p = sandboxlib.run_sandbox(pkg, ["/probe", "noop"], opts=["--host-uid", str(uid)])
    assert p.returncode == 0, p.stderr


def test_exit_status_is_the_commands(pkg):
    assert sandboxlib.run_sandbox(pkg, ["/probe", "noop"]).returncode == 0
    assert sandboxlib.run_sandbox(pkg, ["/probe"]).returncode == 2  # usage error
    p = sandboxlib.run_sandbox(pkg, ["/no-such-program"])
    assert p.returncode == 127, p.stderr
    assert "no-such-program" in p.stderr
    with sandboxlib.Grain(pkg, ["/probe", "sleep"]) as g:
        pass
    assert g.proc.returncode == 128 + 15  # SIGTERM, forwarded to the app
    assert subprocess.run(["true"]).returncode == 0
