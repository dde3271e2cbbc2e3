"""build/spk, the packaging tool, as a packager uses it: keygen, init, pack,
verify, info, unpack, with real files, a real keyring and real packages;
the errors say what is wrong and what to do."""
import hashlib
import json
import os
import pty
import select
import stat
import subprocess

import pytest

from conftest import program, run

SPK = program("spk")
COMMANDS = ["keygen", "init", "pack", "verify", "info", "unpack"]


@pytest.fixture
def env(tmp_path):
    """A HOME of our own, so the default keyring lands in the test's directory."""
    home = tmp_path / "home"
    home.mkdir()
    e = {k: v for k, v in os.environ.items() if k not in ("GRANARY_KEYRING", "XDG_CONFIG_HOME")}
    e["HOME"] = str(home)
    return e


def spk(*args, env=None, **kwargs):
    return run([SPK, *map(str, args)], env=env, **kwargs)


@pytest.fixture
def app(tmp_path, env):
    """An initialised app directory with a few files, and its app id."""
    d = tmp_path / "app"
    r = spk("init", "--title", "Hello", d, env=env)
    assert r.returncode == 0, r.stderr
    (d / "start").write_text("#!/bin/sh\necho hello\n")
    (d / "start").chmod(0o755)
    (d / "static").mkdir()
    (d / "static" / "index.html").write_text("<h1>hello</h1>\n")
    (d / "static" / "home").symlink_to("index.html")
    return d, r.stdout.strip()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = spk(command, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"Usage: spk {command}")


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_usage_exits_2_and_points_to_help(command):
    r = spk(command, "--no-such-option")
    assert r.returncode == 2
    assert f"spk {command} --help" in r.stderr


def test_unknown_command():
    r = spk("frobnicate")
    assert r.returncode == 2
    assert "Unknown command 'frobnicate'" in r.stderr


def test_keygen_default_keyring(env):
    r = spk("keygen", env=env)
    assert r.returncode == 0, r.stderr
    app_id = r.stdout.strip()
    assert len(app_id) == 52 and set(app_id) <= set("0123456789abcdefghjkmnpqrstvwxyz")
    keyring = os.path.join(env["HOME"], ".config", "granary", "spk.keyring")
    assert stat.S_IMODE(os.stat(keyring).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(keyring)).st_mode) == 0o700
    assert app_id in open(keyring).read()
    # A second key goes into the same keyring.
    r2 = spk("keygen", env=env)
    assert r2.stdout.strip() != app_id
    assert open(keyring).read().count("\n") >= 4


def test_keygen_explicit_keyring_refuses_loose_permissions(tmp_path):
    keyring = tmp_path / "k"
    assert spk("keygen", "--keyring", keyring).returncode == 0
    assert stat.S_IMODE(os.stat(keyring).st_mode) == 0o600
    keyring.chmod(0o644)
    r = spk("keygen", "--keyring", keyring)
    assert r.returncode == 1
    assert "chmod 600" in r.stderr


def test_init_writes_a_definition_pack_accepts(app, env):
    d, app_id = app
    definition = json.loads((d / "spk.json").read_text())
    assert definition["app"]["id"] == app_id
    assert definition["app"]["title"] == "Hello"
    assert definition["run"]["httpPort"] == 8000
    assert definition["files"]["sources"] == [{"from": ".", "to": "app"}]
    r = spk("init", d, env=env)
    assert r.returncode == 1
    assert "already exists" in r.stderr and "--force" in r.stderr
    r = spk("init", "--force", "--app-id", app_id, "--title", "Again", d, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == app_id
    assert json.loads((d / "spk.json").read_text())["app"]["title"] == "Again"


def test_init_with_an_app_id_not_in_the_keyring_warns(tmp_path, env):
    r = spk("init", "--app-id", "0" * 52, tmp_path / "x", env=env)
    assert r.returncode == 0
    assert "warning" in r.stderr and "keyring" in r.stderr


def test_pack_verify_info_unpack(app, env, tmp_path):
    d, app_id = app
    out = tmp_path / "hello.spk"
    r = spk("pack", d, out, env=env)
    assert r.returncode == 0, r.stderr
    assert "Packed" in r.stderr and "package id" in r.stderr

    r = spk("verify", out)
    assert r.returncode == 0, r.stderr
    assert f"OK, app id {app_id}" in r.stdout

    r = spk("info", "--json", out)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    data = out.read_bytes()
    assert info["appId"] == app_id
    assert info["packageId"] == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert info["fileSize"] == len(data)
    assert info["payloadSize"] == len(data) - 128
    assert info["manifest"]["app"]["title"] == "Hello"
    assert "files" not in info["manifest"]
    # spk.json itself, app/, start, static/, index.html, home, the manifest.
    assert info["entries"] == 6
    assert info["symlinks"] == 1

    r = spk("info", out)
    assert r.returncode == 0 and "title:          Hello" in r.stdout

    dest = tmp_path / "unpacked"
    r = spk("unpack", out, dest)
    assert r.returncode == 0, r.stderr
    assert (dest / "app" / "start").read_text() == "#!/bin/sh\necho hello\n"
    assert stat.S_IMODE(os.stat(dest / "app" / "start").st_mode) == 0o755
    assert os.readlink(dest / "app" / "static" / "home") == "index.html"
    assert not (dest / "app" / "spk.json").exists()
    manifest = json.loads((dest / "granary-manifest.json").read_text())
    assert manifest["app"]["id"] == app_id


def test_payload_is_a_plain_tar_zst(app, env, tmp_path):
    """Standard tools can look inside: skip 128 bytes, zstd -d, tar t."""
    d, _ = app
    out = tmp_path / "p.spk"
    assert spk("pack", d, out, env=env).returncode == 0
    listing = subprocess.run(
        f"tail -c +129 '{out}' | zstd -dq | tar tvf -", shell=True, capture_output=True, text=True
    )
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].endswith("granary-manifest.json")
    assert all(" 0/0 " in line for line in lines)
    assert all("1970-01-01 00:00" in line for line in lines)


def test_pack_is_reproducible(app, env, tmp_path):
    d, _ = app
    a, b = tmp_path / "a.spk", tmp_path / "b.spk"
    assert spk("pack", d, a, env=env).returncode == 0
    os.utime(d / "start", (0, 1234567))
    (d / "static" / "index.html").chmod(0o600)
    assert spk("pack", "--quiet", d, b, env=env).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_pack_errors_say_what_to_do(tmp_path, env, app):
    d, _ = app
    r = spk("pack", tmp_path / "nothing", tmp_path / "x.spk", env=env)
    assert r.returncode == 1 and "spk init" in r.stderr

    other = tmp_path / "other-home"
    other.mkdir()
    r = spk("pack", d, tmp_path / "x.spk", env={**env, "HOME": str(other)})
    assert r.returncode == 1
    assert "no keyring" in r.stderr and "--keyring" in r.stderr

    definition = json.loads((d / "spk.json").read_text())
    definition["run"]["httpPort"] = "8000"
    (d / "spk.json").write_text(json.dumps(definition))
    r = spk("pack", d, tmp_path / "x.spk", env=env)
    assert r.returncode == 1
    assert "run.httpPort: expected an integer, got a string" in r.stderr
    assert not (tmp_path / "x.spk").exists()
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []

    r = spk("pack", "--level", "25", d, tmp_path / "x.spk", env=env)
    assert r.returncode == 2


def corrupt(src, dst, transform):
    dst.write_bytes(transform(bytearray(src.read_bytes())))


def test_verify_and_unpack_refuse_damage(app, env, tmp_path):
    d, _ = app
    good = tmp_path / "good.spk"
    assert spk("pack", d, good, env=env).returncode == 0
    size = good.stat().st_size

    def flip(b, i):
        b[i] ^= 0x40
        return b

    cases = {
        "flip-header": (lambda b: flip(b, 20), "damaged"),
        "flip-key": (lambda b: flip(b, 40), "bad signature"),
        "flip-signature": (lambda b: flip(b, 100), "bad signature"),
        "flip-payload": (lambda b: flip(b, size // 2), "bad signature"),
        "flip-last": (lambda b: flip(b, size - 1), "bad signature"),
        "truncated": (lambda b: b[: size - 10], "truncated"),
        "extended": (lambda b: b + b"x", "extended"),
        "empty": (lambda b: b"", "empty file"),
        "garbage": (lambda b: bytearray(os.urandom(size)), "not an spk package"),
        "version": (lambda b: b[:8] + b"\x02" + b[9:], "update Granary"),
    }
    for name, (transform, message) in cases.items():
        bad = tmp_path / f"{name}.spk"
        corrupt(good, bad, transform)
        for command in (["verify", bad], ["info", bad], ["unpack", bad, tmp_path / f"{name}-d"]):
            r = spk(*command)
            assert r.returncode == 1, (name, command)
            assert message in r.stderr, (name, r.stderr)
        assert not (tmp_path / f"{name}-d").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".spk-unpack-")] == []


def test_unpack_refuses_existing_destination_and_budget(app, env, tmp_path):
    d, _ = app
    out = tmp_path / "p.spk"
    assert spk("pack", d, out, env=env).returncode == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    r = spk("unpack", out, dest)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert os.listdir(dest) == []

    r = spk("unpack", "--max-bytes", "100", out, tmp_path / "small")
    assert r.returncode == 1 and "budget of 100 bytes" in r.stderr
    assert not (tmp_path / "small").exists()
    r = spk("unpack", "--max-entries", "3", out, tmp_path / "few")
    assert r.returncode == 1 and "more than 3 entries" in r.stderr
    r = spk("verify", "--max-bytes", "lots", out)
    assert r.returncode == 2


def test_progress_only_on_a_terminal(app, env, tmp_path):
    d, _ = app
    out = tmp_path / "t.spk"
    r = spk("pack", d, out, env=env)
    assert "\r" not in r.stderr

    # Under a pseudo-terminal the progress line appears (and is cleared).
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(SPK, [SPK, "unpack", str(out), str(tmp_path / "tty-dest")], env)
    output = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"verifying" in output and b"unpacking" in output and b"\r" in output


def test_host_paths_and_file_list(tmp_path, env):
    """An app that pulls a host binary and its libraries, as a Debian app would."""
    d = tmp_path / "hostapp"
    r = spk("init", "--title", "Host", d, env=env)
    assert r.returncode == 0
    definition = json.loads((d / "spk.json").read_text())
    definition["run"]["command"] = ["/usr/bin/env"]
    definition["files"] = {
        "sources": [{"from": "/", "to": "", "followSymlinks": True}],
        "list": "spk-files.list",
    }
    (d / "spk.json").write_text(json.dumps(definition))
    libs = subprocess.run(["ldd", "/usr/bin/env"], capture_output=True, text=True).stdout
    paths = ["/usr/bin/env"] + [w for line in libs.splitlines() for w in line.split() if w.startswith("/")]
    (d / "spk-files.list").write_text("\n".join(paths) + "\n")
    out = tmp_path / "host.spk"
    r = spk("pack", d, out, env=env)
    assert r.returncode == 0, r.stderr
    dest = tmp_path / "host-root"
    assert spk("unpack", out, dest).returncode == 0
    for p in paths:
        assert (dest / p.lstrip("/")).is_file(), p
    assert (dest / "usr/bin/env").read_bytes() == open("/usr/bin/env", "rb").read()
    if os.geteuid() == 0:
        # The package is a complete root: the binary runs inside it alone.
        r = run(["chroot", str(dest), "/usr/bin/env", "-i", "A=1"])
        assert r.returncode == 0 and r.stdout == "A=1\n", r.stderr
