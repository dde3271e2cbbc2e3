"""The admin CLI against a running daemon (over its admin socket) and a
stopped one (on the state directly): same commands, same JSON."""
import json
import os
import sqlite3

import pytest

from conftest import Client, Daemon, Packager, program, run

PASSWORD = "correct horse battery"


def cli(state, *args, input=None):
    if input is None:
        return run([program("granary"), "--state", str(state), *args])
    return run([program("granary"), "--state", str(state), *args], input=input, stdin=None)


def ok(state, *args, input=None):
    r = cli(state, *args, input=input)
    assert r.returncode == 0, r.stderr
    return r.stdout


def ok_json(state, *args, input=None):
    return json.loads(ok(state, "--json", *args, input=input))


@pytest.fixture(scope="module")
def packager(tmp_path_factory):
    return Packager(tmp_path_factory.mktemp("cli-packages"))


def metrics(daemon):
    c = Client(daemon)
    return c.get("/metrics").text


def test_cli_through_a_running_daemon(granaryd, packager):
    state = granaryd.state
    assert ok_json(state, "status")["running"] is True
    ok(state, "user", "add", "alice", "--admin", input=PASSWORD + "\n")
    ok(state, "user", "add", "bob", input=PASSWORD + "\n")
    assert [u["name"] for u in ok_json(state, "user", "list")] == ["alice", "bob"]
    spk = packager.build(title="Pad")
    out = ok(state, "app", "install", str(spk))
    assert "Installed Pad" in out and packager.app_id in out
    # It went through the daemon: its counter moved.
    assert "granary_app_installs_total 1" in metrics(granaryd)
    assert ok_json(state, "app", "list")[0]["id"] == packager.app_id

    grain = ok(state, "grain", "new", packager.app_id, "--owner", "bob", "--title", "Bob's").strip()
    assert len(grain) == 32
    assert os.path.isdir(os.path.join(state, "grains", grain, "data"))
    listed = ok_json(state, "grain", "list")
    assert [(g["id"], g["owner"], g["title"]) for g in listed] == [(grain, "bob", "Bob's")]
    # bob sees it in the API as his.
    c = Client(granaryd)
    c.login("bob", PASSWORD)
    assert [g["id"] for g in c.get("/api/grains").json()["grains"]] == [grain]

    r = cli(state, "app", "remove", packager.app_id)
    assert r.returncode == 1 and "delete them first" in r.stderr
    r = cli(state, "grain", "new", packager.app_id, "--owner", "nobody")
    assert r.returncode == 1 and "No user named 'nobody'" in r.stderr
    r = cli(state, "user", "add", "alice", input=PASSWORD + "\n")
    assert r.returncode == 1 and "already" in r.stderr
    status = ok_json(state, "status")
    assert (status["users"], status["apps"], status["grains"]) == (2, 1, 1)


def test_cli_with_the_daemon_stopped(state_root, packager):
    state = state_root / "state"
    d = Daemon(state)
    d.stop()
    # The stopped daemon's socket file is left behind: no answer there is no daemon.
    assert os.path.exists(state / "granaryd.sock")
    assert ok_json(state, "status")["running"] is False
    ok(state, "user", "add", "carol", "--admin", input=PASSWORD + "\n")
    spk = packager.build(title="Offline", version=3)
    installed = ok_json(state, "app", "install", str(spk))
    assert installed["outcome"] == "installed" and installed["app"]["version"] == 3
    package = installed["app"]["packageId"]
    assert os.stat(state / "packages" / package).st_uid == 0
    grain = ok(state, "grain", "new", packager.app_id, "--owner", "carol").strip()
    assert os.path.isdir(state / "grains" / grain / "data")
    # A bad package changes nothing here either.
    bad = state_root / "bad.spk"
    bad.write_bytes(spk.read_bytes()[: os.path.getsize(spk) // 2])
    r = cli(state, "app", "install", str(bad))
    assert r.returncode == 1 and "refused" in r.stderr
    assert sorted(os.listdir(state / "packages")) == [package]

    # The daemon, started again, serves what the CLI did.
    d = Daemon(state)
    try:
        c = Client(d)
        c.login("carol", PASSWORD)
        assert [g["id"] for g in c.get("/api/grains").json()["grains"]] == [grain]
        assert c.get("/api/apps/" + packager.app_id).json()["app"]["packageId"] == package
        assert ok_json(state, "status")["running"] is True
        db = sqlite3.connect(state / "granary.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    finally:
        d.stop()


def test_only_root_may_use_the_admin_socket(granaryd):
    sock = os.path.join(granaryd.state, "granaryd.sock")
    st = os.stat(sock)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600
    r = run(["setpriv", "--reuid=granary", "--regid=granary", "--clear-groups",
             program("granary"), "--state", granaryd.state, "status"])
    assert r.returncode == 1
    assert "Only root" in r.stderr or "Permission denied" in r.stderr, r.stderr


@pytest.mark.parametrize("command", [["user", "add"], ["user", "list"], ["app", "install"],
                                     ["app", "list"], ["app", "remove"], ["grain", "new"],
                                     ["grain", "list"], ["status"]])
def test_every_command_has_help(command, state_root):
    r = run([program("granary"), "--state", str(state_root), *command, "--help"])
    assert r.returncode == 0 and r.stdout.startswith("Usage: granary " + " ".join(command))


def test_usage_errors_are_clear(state_root):
    for args, message in [(["frobnicate"], "Unknown command"), (["app"], "Unknown command"),
                          (["app", "install"], "Usage: granary app install"),
                          (["grain", "new", "x"], "--owner"),
                          (["app", "install", "/nonexistent.spk"], "No such file")]:
        r = run([program("granary"), "--state", str(state_root / "s"), *args])
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
