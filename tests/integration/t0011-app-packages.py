"""The interpreted example apps, packed by tests/integration/apps.py with the
host's Debian interpreters (python3; php-cli with php-sqlite3), run from
their packages alone inside real grain sandboxes (root only): the seccomp
allowlist, the read-only root, uid 1000 and /var as the only writable
storage must suit them, and their state must survive a restart."""
import json
import os
import pathlib
import shutil
import tempfile

import pytest

import apps

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="host: a grain sandbox needs root")

GRANARY = {"X-Granary-Username": "Ada <3", "X-Granary-User-Id": "u1",
           "X-Granary-Permissions": "read,write", "X-Granary-Session-Id": "s1"}
READ_ONLY = {**GRANARY, "X-Granary-Permissions": "read"}


@pytest.fixture
def grain_dirs():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="granary-t0011-", dir="/tmp"))
    os.chmod(tmp, 0o755)
    (tmp / "data").mkdir()
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_php_hello(grain_dirs):
    root = apps.unpack(apps.build_app("php-hello"), grain_dirs / "root")
    manifest = json.loads((root / "granary-manifest.json").read_text())
    php = root / manifest["run"]["command"][0].lstrip("/")
    assert php.is_file() and not php.is_symlink()
    assert not (root / "etc").exists(), "the host's /etc/php must not be needed"
    g = apps.SandboxedApp(root, grain_dirs / "data")
    try:
        status, headers, body = g.get("/?format=json", headers=GRANARY)
        assert status == 200, body
        info = json.loads(body)
        assert info["visits"] == 1 and info["note"] is None
        assert info["user"] == {"id": "u1", "name": "Ada <3", "permissions": ["read", "write"],
                                "session": "s1"}
        assert info["request"]["headers"]["X-Granary-Username"] == "Ada <3"
        status, _, body = g.request("POST", "/", body=b"a note from PHP", headers=GRANARY)
        assert status == 204, body
        status, _, body = g.request("POST", "/", body=b"refused", headers=READ_ONLY)
        assert status == 403
        status, headers, body = g.get("/", headers=GRANARY)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"Hello, Ada &lt;3!" in body and b"visited 2 times" in body
        assert b"a note from PHP" in body
    finally:
        g.stop()
    assert "Development Server" in g.stderr
    # The SQLite database is in /var and outlives the grain.
    assert (grain_dirs / "data" / "php-hello.sqlite3").is_file()
    g = apps.SandboxedApp(root, grain_dirs / "data")
    try:
        info = json.loads(g.get("/?format=json", headers=READ_ONLY)[2])
        assert (info["visits"], info["note"]) == (3, "a note from PHP")
    finally:
        g.stop()


def test_python_hello(grain_dirs):
    root = apps.unpack(apps.build_app("python-hello"), grain_dirs / "root")
    g = apps.SandboxedApp(root, grain_dirs / "data")
    try:
        status, _, body = g.request("PUT", "/", body=b"a note from Python", headers=GRANARY)
        assert status == 204, body
        status, _, body = g.request("PUT", "/", body=b"refused", headers=READ_ONLY)
        assert status == 403
    finally:
        g.stop()
    g = apps.SandboxedApp(root, grain_dirs / "data")
    try:
        status, _, body = g.get("/", headers=READ_ONLY)
        assert status == 200 and b"a note from Python" in body
        assert b"Hello, Ada &lt;3!" in body and b"permissions: read<" in body
    finally:
        g.stop()


def test_build_app_signs_with_the_packager_key(tmp_path):
    """Each packager's key is the app id in the package; versions may differ."""
    from conftest import Packager, program, run
    p = Packager(tmp_path / "packager")
    first, second = apps.build_app("grain-test", p), apps.build_app("grain-test", p, version=2)
    assert first != second and apps.build_app("grain-test", p) == first
    for spk, version in ((first, 1), (second, 2)):
        r = run([program("spk"), "info", "--json", str(spk)])
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["appId"] == p.app_id and info["manifest"]["app"]["version"] == version
    assert apps.build_app("grain-test").name != first.name
