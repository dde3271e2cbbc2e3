"""granary-sandbox: bad input gets one clear error and exit 125, and runs nothing."""
import os

import pytest

import sandboxlib


@pytest.fixture(scope="module")
def pkg():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    yield sandboxlib.make_package(os.path.join(tmp, "pkg"))
    sandboxlib.rmtree(tmp)


BAD = [
    (["--", "/probe", "noop"], "No --root given"),
    (["--root", "{pkg}"], "No command given"),
    (["--root", "/nonexistent/pkg", "--", "/probe", "noop"], "Failed to open the package"),
    (["--root", "{pkg}", "--var", "/nonexistent/var", "--", "/probe", "noop"],
     "/nonexistent/var"),
    (["--root", "{pkg}", "--memory", "lots", "--", "/probe", "noop"], "Bad --memory 'lots'"),
    (["--root", "{pkg}", "--memory", "1M", "--", "/probe", "noop"], "at least 4M"),
    (["--root", "{pkg}", "--memory", "256MB", "--", "/probe", "noop"], "Bad --memory"),
    (["--root", "{pkg}", "--pids", "0", "--", "/probe", "noop"], "Bad --pids '0'"),
    (["--root", "{pkg}", "--cpu", "half", "--", "/probe", "noop"], "Bad --cpu 'half'"),
    (["--root", "{pkg}", "--cpu", "0.001", "--", "/probe", "noop"], "Bad --cpu"),
    (["--root", "{pkg}", "--tmp-size", "1", "--", "/probe", "noop"], "Bad --tmp-size"),
    (["--root", "{pkg}", "--nofile", "3", "--", "/probe", "noop"], "Bad --nofile"),
    (["--root", "{pkg}", "--setenv", "A=B", "v", "--", "/probe", "noop"],
     "Bad environment variable name 'A=B'"),
    (["--root", "{pkg}", "--setenv", "A"], "--setenv takes two arguments"),
    (["--root", "{pkg}", "--ro-bind", "/usr", "/var/x", "--", "/probe", "noop"],
     "Bad bind target '/var/x'"),
    (["--root", "{pkg}", "--ro-bind", "/usr", "/a/../etc", "--", "/probe", "noop"],
     "Bad bind target"),
    (["--root", "{pkg}", "--ro-bind", "/nonexistent", "/x", "--", "/probe", "noop"],
     "Failed to open '/nonexistent'"),
    (["--root", "{pkg}", "--ro-bind", "/usr", "/app/missing/dir", "--", "/probe", "noop"],
     "Failed to create 'missing' for bind target"),
    (["--root", "{pkg}", "--hostname", "bad name", "--", "/probe", "noop"],
     "Bad hostname 'bad name'"),
    (["--root", "{pkg}", "--fd", "987", "--", "/probe", "noop"], "Bad --fd '987'"),
    (["--root", "{pkg}", "--uid-range", "0:10", "--", "/probe", "noop"], "Bad --uid-range"),
    (["--root", "{pkg}", "--host-uid", "0", "--", "/probe", "noop"], "Bad --host-uid '0'"),
    (["--root", "{pkg}", "--init", "/nonexistent", "--", "/probe", "noop"],
     "Failed to load the init '/nonexistent'"),
    (["--root", "{pkg}", "--chdir", "/nowhere", "--", "/probe", "noop"],
     "Failed to enter '/nowhere'"),
    (["--root", "{pkg}", "--cgroup-parent", "../escape", "--", "/probe", "noop"],
     "Bad cgroup parent '../escape'"),
    (["--no-such-option"], "Try 'granary-sandbox --help'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input(pkg, args, message):
    p = sandboxlib.run([sandboxlib.SANDBOX] + [a.format(pkg=pkg) for a in args])
    assert p.returncode == 125, (p.returncode, p.stdout, p.stderr)
    assert message in p.stderr, p.stderr
    assert "check " not in p.stdout


def test_help_and_version():
    sandboxlib.require_sandbox()
    p = sandboxlib.run([sandboxlib.SANDBOX, "--help"])
    assert p.returncode == 0 and "--root DIR" in p.stdout
    p = sandboxlib.run([sandboxlib.SANDBOX, "--version"])
    assert p.returncode == 0 and p.stdout.startswith("granary-sandbox ")


def test_command_not_found_is_127(pkg):
    p = sandboxlib.run_sandbox(pkg, ["/app/nothing-here"])
    assert p.returncode == 127
    assert "Failed to run '/app/nothing-here'" in p.stderr


def test_good_input_runs(pkg):
    """The control for the table above: the same options, well formed, run."""
    p = sandboxlib.run_sandbox(pkg, ["/probe", "noop"],
                               opts=["--memory", "64M", "--pids", "16", "--cpu", "0.5",
                                     "--tmp-size", "1M", "--nofile", "64", "--setenv", "A",
                                     "B", "--ro-bind", "/usr", "/usr", "--hostname", "ok",
                                     "--chdir", "/tmp"])
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def test_a_child_failing_early_is_reported_every_time(pkg):
    """The child fails while the parent still copies grain-init: the parent
    must report the child's error, not die of the closed channel."""
    for _ in range(30):
        p = sandboxlib.run([sandboxlib.SANDBOX, "--root", "/nonexistent/pkg", "--", "/x"])
        assert p.returncode == 125, (p.returncode, p.stderr)
        assert "Failed to open the package '/nonexistent/pkg'" in p.stderr
