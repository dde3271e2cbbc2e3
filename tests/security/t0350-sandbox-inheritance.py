"""E: what the grain inherits from whoever starts it: fds, stdin, cwd,
environment, session. Each check passes in the grain and fails for the same
probe started the same way on the host."""
import os
import subprocess

import pytest

import sandboxlib

DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/var", "TMPDIR": "/tmp",
               "LANG": "C.UTF-8"}


@pytest.fixture(scope="module")
def pkg():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    yield sandboxlib.make_package(os.path.join(tmp, "pkg"))
    sandboxlib.rmtree(tmp)


@pytest.fixture
def leaked_fds():
    """fds open without O_CLOEXEC in the process that starts the sandbox."""
    r, w = os.pipe()
    f = os.open("/etc/hostname", os.O_RDONLY)
    for fd in (r, w, f):
        os.set_inheritable(fd, True)
    yield (r, w, f)
    for fd in (r, w, f):
        os.close(fd)


def result(p, name):
    checks, _ = sandboxlib.parse(p.stdout)
    assert name in checks, p.stdout + p.stderr
    return checks[name]


def test_only_fds_0_1_2(pkg, leaked_fds):
    p = sandboxlib.run(sandboxlib.sandbox_cmd(pkg, ["/probe", "check", "fds-exactly", "0"]),
                       pass_fds=leaked_fds)
    ok, detail = result(p, "fds-exactly")
    assert ok, detail


def test_leaked_fds_reach_a_host_process(leaked_fds):
    p = sandboxlib.run([sandboxlib.PROBE, "check", "fds-exactly", "0"], pass_fds=leaked_fds)
    ok, detail = result(p, "fds-exactly")
    assert not ok, detail


def test_control_fd_is_fd_3(pkg, leaked_fds):
    r, w, _ = leaked_fds
    p = sandboxlib.run(sandboxlib.sandbox_cmd(pkg, ["/probe", "check", "fds-exactly", "1"],
                                              opts=["--fd", str(w)]), pass_fds=leaked_fds)
    ok, detail = result(p, "fds-exactly")
    assert ok, detail


def test_stdin_is_dev_null(pkg):
    p = sandboxlib.run(sandboxlib.sandbox_cmd(pkg, ["/probe", "check", "stdin-devnull"]),
                       input="")
    ok, detail = result(p, "stdin-devnull")
    assert ok, detail


def test_stdin_is_a_pipe_on_the_host():
    p = sandboxlib.run([sandboxlib.PROBE, "check", "stdin-devnull"], input="")
    ok, detail = result(p, "stdin-devnull")
    assert not ok, detail


def test_cwd(pkg):
    assert sandboxlib.check("G", "cwd", "/var", pkg=pkg)[0]
    assert sandboxlib.check("G", "cwd", "/tmp", pkg=pkg, opts=["--chdir", "/tmp"])[0]
    assert not sandboxlib.check("N", "cwd", "/var")[0]


def env_of(p):
    return dict(line[4:].split("=", 1) for line in p.stdout.splitlines()
                if line.startswith("env "))


def test_environment_is_exactly_granarys_and_the_given(pkg):
    p = sandboxlib.run_sandbox(pkg, ["/probe", "print-env"],
                               opts=["--setenv", "FOO", "bar", "--setenv", "HOME", "/var/home"],
                               env={"GRANARY_TEST_SECRET": "host-secret"})
    assert p.returncode == 0, p.stderr
    want = dict(DEFAULT_ENV, FOO="bar", HOME="/var/home")
    assert env_of(p) == want


def test_host_environment_reaches_a_host_process():
    p = sandboxlib.run([sandboxlib.PROBE, "print-env"], env={"GRANARY_TEST_SECRET": "s"})
    assert env_of(p).get("GRANARY_TEST_SECRET") == "s"


def test_new_session_without_a_terminal(pkg):
    assert sandboxlib.check("G", "new-session", pkg=pkg)[0]
    assert not sandboxlib.check("N", "new-session")[0]
