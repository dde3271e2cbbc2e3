"""The example apps in apps/ really work: each builds, packs with a fresh
key, verifies, unpacks, and (as root) runs from the unpacked package alone,
chrooted into it, answering HTTP on 127.0.0.1 as Granary will ask it to."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from conftest import SOURCE, program, run, wait_for

SPK = program("spk")
CHROOT = shutil.which("chroot", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(tmp_path, name):
    """Copy apps/NAME, give it an app id of our own, build and pack it."""
    src = tmp_path / name
    shutil.copytree(os.path.join(SOURCE, "apps", name), src, ignore=shutil.ignore_patterns("*.spk"))
    env = {**os.environ, "GRANARY_KEYRING": str(tmp_path / "keyring"), "SPK": SPK}
    r = run([SPK, "keygen"], env=env)
    assert r.returncode == 0, r.stderr
    definition = json.loads((src / "spk.json").read_text())
    definition["app"]["id"] = r.stdout.strip()
    (src / "spk.json").write_text(json.dumps(definition, indent=2))
    out = tmp_path / f"{name}.spk"
    r = run([str(src / "build.sh"), str(out)], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    r = run([SPK, "verify", out])
    assert r.returncode == 0, r.stderr
    dest = tmp_path / f"{name}-root"
    r = run([SPK, "unpack", out, dest])
    assert r.returncode == 0, r.stderr
    return definition, dest


class Chrooted:
    """The app's command, from its manifest, run chrooted in the package."""

    def __init__(self, root, command, port):
        (root / "var").mkdir()  # what a grain's /var would be
        self.proc = subprocess.Popen(
            [CHROOT, str(root), *command[:-1], str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "HOME": "/var", "LANG": "C.UTF-8"},
        )
        self.url = f"http://127.0.0.1:{port}/"
        ok = wait_for(self.ready, timeout=20)
        if not ok:
            self.stop()
            pytest.fail("the app did not start: " + self.proc.stderr.read().decode())

    def ready(self):
        try:
            socket.create_connection(("127.0.0.1", int(self.url.split(":")[2].rstrip("/"))), 0.2).close()
            return True
        except OSError:
            return self.proc.poll() is not None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(10)


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not CHROOT, reason="running an app from its package needs root and chroot"
)


@needs_root
def test_hello_static_c_app(tmp_path):
    definition, root = build(tmp_path, "hello")
    manifest = json.loads((root / "granary-manifest.json").read_text())
    assert manifest["run"]["command"] == ["/app/hello", "8000"]
    assert sorted(os.listdir(root)) == ["app", "granary-manifest.json"]
    app = Chrooted(root, manifest["run"]["command"], free_port())
    try:
        r = requests.get(app.url, headers={"X-Granary-Username": "Ada <3"}, timeout=5)
        assert r.status_code == 200
        assert "Hello, Ada &lt;3!" in r.text
        assert "visited 1 times" in r.text
        r = requests.get(app.url, timeout=5)
        assert "Hello, stranger!" in r.text and "visited 2 times" in r.text
    finally:
        app.stop()
    assert (root / "var" / "hello-count").read_text() == "2\n"


@needs_root
def test_python_app_with_debian_python(tmp_path):
    definition, root = build(tmp_path, "python-hello")
    manifest = json.loads((root / "granary-manifest.json").read_text())
    # The interpreter came from the host, through the file list, as a file.
    python = root / manifest["run"]["command"][0].lstrip("/")
    assert python.is_file() and not python.is_symlink()
    app = Chrooted(root, manifest["run"]["command"], free_port())
    try:
        headers = {"X-Granary-Username": "Ada", "X-Granary-Permissions": "read,write"}
        r = requests.put(app.url, data="first note", headers=headers, timeout=5)
        assert r.status_code == 204
        r = requests.get(app.url, headers={"X-Granary-Permissions": "read"}, timeout=5)
        assert "first note" in r.text and "permissions: read" in r.text
        r = requests.put(app.url, data="x", headers={"X-Granary-Permissions": "read"}, timeout=5)
        assert r.status_code == 403
    finally:
        app.stop()
