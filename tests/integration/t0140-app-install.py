"""Installing apps through the API: good packages land in packages/<id>,
bad ones leave no trace, updates and downgrades, removal, and kill -9 of
each granaryd process in the middle of an install."""
import os
import signal
import sqlite3
import stat
import threading

import pytest
import requests

from conftest import Client, Daemon, Packager, add_user, program, run, wait_for

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def packager(tmp_path_factory):
    return Packager(tmp_path_factory.mktemp("packages"))


@pytest.fixture
def admin(granaryd):
    add_user(granaryd.state, "alice", PASSWORD, admin=True)
    c = Client(granaryd)
    c.login("alice", PASSWORD)
    return c


def install(client, path, **kwargs):
    with open(path, "rb") as f:
        return client.post("/api/apps", data=f, headers={"Content-Type": "application/octet-stream"},
                           **kwargs)


def trace(state):
    """Everything an install could leave behind."""
    packages = sorted(os.listdir(os.path.join(state, "packages")))
    uploads = sorted(os.listdir(os.path.join(state, "uploads")))
    db = sqlite3.connect(os.path.join(state, "granary.sqlite3"))
    try:
        rows = db.execute("SELECT id FROM packages ORDER BY id").fetchall()
        apps = db.execute("SELECT id FROM apps ORDER BY id").fetchall()
    finally:
        db.close()
    return packages, uploads, rows, apps


def integrity_ok(state):
    db = sqlite3.connect(os.path.join(state, "granary.sqlite3"))
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_install_lists_and_shows_the_app(admin, packager, granaryd):
    spk = packager.build(title="Notes")
    r = install(admin, spk)
    assert r.status_code == 201, r.text
    app = r.json()["app"]
    assert r.json()["outcome"] == "installed"
    assert app["id"] == packager.app_id and app["title"] == "Notes" and app["version"] == 1
    assert app["size"] == os.path.getsize(spk)
    assert app["manifest"]["app"]["id"] == packager.app_id
    # The package id is the hash of the file, as spk says.
    info = run([program("spk"), "info", str(spk)])
    assert app["packageId"] in info.stdout

    root = os.path.join(granaryd.state, "packages", app["packageId"])
    st = os.lstat(root)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022
    assert os.path.exists(os.path.join(root, "app", "run"))
    assert [a["id"] for a in admin.get("/api/apps").json()["apps"]] == [packager.app_id]
    got = admin.get("/api/apps/" + packager.app_id)
    assert got.status_code == 200 and got.json()["app"]["manifest"]["roles"][0]["name"] == "editor"
    # The same bytes again: nothing new, 200.
    again = install(admin, spk)
    assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
    assert len(os.listdir(os.path.join(granaryd.state, "packages"))) == 1
    assert os.listdir(os.path.join(granaryd.state, "uploads")) == []
    metrics = requests.get(granaryd.url + "/metrics", headers={"Host": admin.host}).text
    assert "granary_app_installs_total 1" in metrics


def corrupt(path, out, offset):
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x40
    open(out, "wb").write(bytes(data))
    return out


@pytest.mark.parametrize("case", ["header_flip", "payload_flip", "signature_flip", "truncated",
                                  "junk", "empty", "tar_not_spk"])
def test_a_bad_package_leaves_no_trace(admin, packager, granaryd, tmp_path, case):
    good = packager.build()
    size = os.path.getsize(good)
    before = trace(granaryd.state)
    bad = tmp_path / "bad.spk"
    if case == "header_flip":
        corrupt(good, bad, 8)
    elif case == "payload_flip":
        corrupt(good, bad, size - 100)
    elif case == "signature_flip":
        corrupt(good, bad, 70)
    elif case == "truncated":
        bad.write_bytes(open(good, "rb").read()[: size // 2])
    elif case == "junk":
        bad.write_bytes(os.urandom(100000))
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "tar_not_spk":
        r = run(["tar", "-C", str(tmp_path), "-cf", str(bad), "."])
        assert r.returncode == 0
    r = install(admin, bad)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] in ("bad_package", "empty_upload")
    assert trace(granaryd.state) == before
    assert integrity_ok(granaryd.state)


def test_uploads_need_an_admin_a_session_and_the_origin(admin, packager, granaryd):
    spk = packager.build()
    before = trace(granaryd.state)
    add_user(granaryd.state, "bob", PASSWORD)
    bob = Client(granaryd)
    bob.login("bob", PASSWORD)
    assert install(bob, spk).json()["error"]["code"] == "not_admin"
    assert install(Client(granaryd), spk).json()["error"]["code"] == "not_signed_in"
    foreign = Client(granaryd)
    foreign.cookies.update(admin.cookies)
    foreign.headers["Origin"] = "http://evil.example"
    r = install(foreign, spk)
    assert r.status_code == 403 and r.json()["error"]["code"] == "bad_origin"
    assert trace(granaryd.state) == before


def test_oversized_and_form_uploads_are_refused(admin, packager, granaryd):
    before = trace(granaryd.state)
    # Refused on the announced length, before a byte of the body is read.
    r = admin.post("/api/apps", headers={"Content-Length": str(3 << 30),
                                        "Content-Type": "application/octet-stream"}, data=b"")
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"
    spk = packager.build()
    with open(spk, "rb") as f:
        r = admin.post("/api/apps", files={"file": f})
    assert r.status_code == 415, r.text
    assert trace(granaryd.state) == before


def test_update_downgrade_and_remove(admin, packager, granaryd):
    v1, v2 = packager.build(version=1), packager.build(version=2, title="Renamed")
    p1 = install(admin, v1).json()["app"]["packageId"]
    r = install(admin, v2)
    assert r.status_code == 201 and r.json()["outcome"] == "updated"
    assert admin.get("/api/apps/" + packager.app_id).json()["app"]["title"] == "Renamed"
    # Older than what is installed: refused, and its files are gone again.
    v0 = packager.build(version=0)
    before = trace(granaryd.state)
    r = install(admin, v0)
    assert r.status_code == 409 and r.json()["error"]["code"] == "downgrade"
    assert trace(granaryd.state) == before

    # A grain keeps the app; deleting it twice (trash, then for good) frees it.
    g = admin.post("/api/grains", json={"app": packager.app_id}).json()["grain"]
    r = admin.delete("/api/apps/" + packager.app_id)
    assert r.status_code == 409 and r.json()["error"]["code"] == "app_in_use"
    assert admin.delete("/api/grains/" + g["id"]).status_code == 204
    assert admin.delete("/api/apps/" + packager.app_id).status_code == 409  # in the trash
    assert admin.delete("/api/grains/" + g["id"]).status_code == 204
    assert admin.get("/api/grains/" + g["id"]).status_code == 404
    assert not os.path.exists(os.path.join(granaryd.state, "grains", g["id"]))
    assert admin.delete("/api/apps/" + packager.app_id).status_code == 204
    assert admin.get("/api/apps/" + packager.app_id).status_code == 404
    assert admin.delete("/api/apps/" + packager.app_id).status_code == 404
    assert os.listdir(os.path.join(granaryd.state, "packages")) == []
    assert p1 not in str(trace(granaryd.state))


def processes(daemon):
    """{'parent', 'front', 'launcher'} pids, from /proc."""
    import pwd
    granary = pwd.getpwnam("granary").pw_uid
    found = {"parent": daemon.proc.pid}
    with open(f"/proc/{daemon.proc.pid}/task/{daemon.proc.pid}/children") as f:
        for pid in map(int, f.read().split()):
            with open(f"/proc/{pid}/status") as s:
                uid = int([l for l in s if l.startswith("Uid:")][0].split()[1])
            found["front" if uid == granary else "launcher"] = pid
    return found


@pytest.mark.parametrize("victim", ["launcher", "front", "parent"])
def test_kill_9_during_an_install_leaves_nothing_partial(state_root, packager, victim):
    big = packager.build(big=160 << 20)
    state = state_root / "state"
    d = Daemon(state)
    try:
        add_user(d.state, "alice", PASSWORD, admin=True)
        c = Client(d)
        c.login("alice", PASSWORD)
        assert wait_for(lambda: {"front", "launcher"} <= set(processes(d)))
        pids = processes(d)
        result = {}

        def upload():
            try:
                result["r"] = install(c, big, timeout=120)
            except requests.RequestException as e:
                result["e"] = e

        t = threading.Thread(target=upload)
        t.start()
        packages = os.path.join(d.state, "packages")
        # Kill while the installer is writing its temporary directory.
        assert wait_for(lambda: any(n.startswith(".spk-unpack-") for n in os.listdir(packages)),
                        timeout=60), d.log
        os.kill(pids[victim], signal.SIGKILL)
        t.join(120)
        assert "r" not in result or result["r"].status_code >= 500 or \
            result["r"].status_code == 201  # the race may let it finish
        if victim == "parent":
            d.proc.wait(10)
            for pid in pids.values():
                assert wait_for(lambda: not os.path.exists(f"/proc/{pid}")), pid
        else:
            d.stop()
        # Start again on the same state: what the crash left is cleaned up.
        d = Daemon(state)
        assert wait_for(lambda: "listening" in d.log)
        c = Client(d)
        c.login("alice", PASSWORD)
        assert wait_for(lambda: not any(n.startswith(".") for n in os.listdir(packages))), \
            os.listdir(packages)
        rows = {a["packageId"] for a in c.get("/api/apps").json()["apps"]}
        assert wait_for(lambda: set(os.listdir(packages)) == rows), (os.listdir(packages), rows)
        assert os.listdir(os.path.join(d.state, "uploads")) == []
        assert integrity_ok(d.state)
        # And the same package installs fine afterwards.
        r = install(c, big, timeout=120)
        assert r.status_code in (200, 201), r.text
    finally:
        d.stop(check=False)


def test_trash_older_than_30_days_is_purged_at_start(state_root, packager):
    state = state_root / "state"
    d = Daemon(state)
    try:
        add_user(d.state, "alice", PASSWORD, admin=True)
        c = Client(d)
        c.login("alice", PASSWORD)
        assert install(c, packager.build()).status_code in (200, 201)
        old, recent = (c.post("/api/grains", json={"app": packager.app_id}).json()["grain"]["id"]
                       for _ in range(2))
        for g in (old, recent):
            assert c.delete("/api/grains/" + g).status_code == 204
    finally:
        d.stop()
    db = sqlite3.connect(state / "granary.sqlite3")
    db.execute("UPDATE grains SET trashed_at = strftime('%s','now') - 31*24*3600 WHERE id = ?",
               (old,))
    db.commit()
    db.close()
    d = Daemon(state)
    try:
        c = Client(d)
        c.login("alice", PASSWORD)
        assert c.get("/api/grains/" + old).status_code == 404
        assert not os.path.exists(state / "grains" / old)
        assert c.get("/api/grains/" + recent).json()["grain"]["trashedAt"] is not None
        assert os.path.isdir(state / "grains" / recent / "data")
    finally:
        d.stop()
