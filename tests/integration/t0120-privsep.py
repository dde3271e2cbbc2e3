"""granaryd's processes: a root parent, a root launcher, a front that runs as
the unprivileged user with no capabilities, NO_NEW_PRIVS and a seccomp filter;
restarts of a dead child; children that die with the parent; launcher
refusing malformed messages."""
import os
import pwd
import signal
import time

import pytest

from conftest import Client, Daemon, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="privilege separation needs root")


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def roles(daemon):
    """{'front': pid, 'launcher': pid} from the children's uids."""
    granary = pwd.getpwnam("granary").pw_uid
    found = {}
    for pid in children(daemon.proc.pid):
        uid = int(status(pid)["Uid"].split()[0])
        found["front" if uid == granary else "launcher"] = pid
    return found


def both_children(daemon):
    return wait_for(lambda: len(roles(daemon)) == 2)


def test_front_is_locked_down(granaryd):
    assert both_children(granaryd)
    # Serving means its lockdown is complete (uid first, seccomp last, then HTTP).
    assert wait_for(lambda: Client(granaryd).get("/healthz").status_code == 200)
    front = status(roles(granaryd)["front"])
    granary = pwd.getpwnam("granary")
    assert front["Uid"].split() == [str(granary.pw_uid)] * 4
    assert front["Gid"].split() == [str(granary.pw_gid)] * 4
    assert front["Groups"] == ""
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(front[cap], 16) == 0, cap
    assert front["NoNewPrivs"] == "1"
    assert front["Seccomp"] == "2"


def test_launcher_stays_root_and_parent_too(granaryd):
    assert both_children(granaryd)
    launcher = status(roles(granaryd)["launcher"])
    assert launcher["Uid"].split()[0] == "0"
    assert status(granaryd.proc.pid)["Uid"].split()[0] == "0"


def test_database_belongs_to_the_front_user(granaryd):
    Client(granaryd).get("/healthz")
    granary = pwd.getpwnam("granary").pw_uid
    assert wait_for(lambda: os.path.exists(granaryd.state + "/granary.sqlite3"))
    assert os.stat(granaryd.state + "/granary.sqlite3").st_uid == granary
    # grains/ is the launcher's: root only.
    st = os.stat(granaryd.state + "/grains")
    assert st.st_uid == 0 and st.st_mode & 0o022 == 0


@pytest.mark.parametrize("victim", ["front", "launcher"])
def test_a_killed_child_is_restarted(granaryd, victim):
    assert both_children(granaryd)
    before = roles(granaryd)
    os.kill(before[victim], signal.SIGKILL)
    assert wait_for(lambda: len(roles(granaryd)) == 2 and roles(granaryd)[victim] != before[victim], timeout=15)
    assert wait_for(lambda: Client(granaryd).get("/healthz").status_code == 200, timeout=15), granaryd.log
    assert f"The {victim} was killed by signal 9; restarting it" in granaryd.log


def test_killed_parent_takes_the_children(state_root):
    d = Daemon(state_root / "state")
    assert both_children(d)
    pids = list(roles(d).values())
    d.proc.kill()
    d.proc.wait()
    for pid in pids:
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or status(pid)["State"].startswith("Z"))


def test_sigterm_stops_all_processes(state_root):
    d = Daemon(state_root / "state")
    assert both_children(d)
    pids = list(roles(d).values())
    assert d.stop() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")


def test_front_has_exactly_one_filter(granaryd):
    """Exactly the filter front installed itself, once, and kept across restarts."""
    assert both_children(granaryd)
    assert wait_for(lambda: Client(granaryd).get("/healthz").status_code == 200)
    assert status(roles(granaryd)["front"])["Seccomp_filters"] == "1"
