"""D: processes, IPC and network. Traffic goes only to 127.0.0.1 and to the
network namespaces of grains the tests start."""
import os
import random
import socket
import subprocess

import pytest

import sandboxlib


@pytest.fixture(scope="module")
def pkg():
    sandboxlib.require_sandbox()
    tmp = sandboxlib.mkdtemp()
    yield sandboxlib.make_package(os.path.join(tmp, "pkg"))
    sandboxlib.rmtree(tmp)


def G(pkg, name, *args, opts=()):
    ok, detail, _ = sandboxlib.check("G", name, *args, pkg=pkg, opts=opts)
    return ok, detail


def N(name, *args):
    ok, detail, _ = sandboxlib.check("N", name, *args)
    return ok, detail


def sentinel(uid):
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                             "sleep", "600"])


def test_kill_all_inside_spares_the_host(pkg):
    """A host process with the grain's own host uid survives kill(-1) inside."""
    uid = sandboxlib.random_uid()
    s = sentinel(uid)
    try:
        ok, detail = G(pkg, "kill-all", opts=["--host-uid", str(uid)])
        assert ok, detail
        assert s.poll() is None, "the host sentinel died"
    finally:
        s.kill()
        s.wait()


def test_kill_all_without_a_pid_namespace_kills_the_sentinel():
    """Negative control: the same probe as that uid on the host kills it."""
    sandboxlib.require_sandbox()
    uid = sandboxlib.random_uid()
    s = sentinel(uid)
    try:
        p = sandboxlib.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                            sandboxlib.PROBE, "check", "kill-all"])
        assert "check kill-all pass" in p.stdout, p.stdout + p.stderr
        assert s.wait(timeout=10) == -9
    finally:
        if s.poll() is None:
            s.kill()
            s.wait()


def test_host_pids_invisible(pkg):
    ok, detail = G(pkg, "few-pids")
    assert ok, detail
    ok, detail = G(pkg, "pid-absent", os.getpid())
    assert ok, detail


def test_host_pids_visible_on_the_host():
    assert not N("few-pids")[0]
    assert not N("pid-absent", os.getpid())[0]


def test_host_sysv_ipc_invisible(pkg):
    ipc = sandboxlib.HostIpc()
    try:
        ok, detail = G(pkg, "sysv-absent", hex(ipc.key))
        assert ok, detail
        ok, detail = N("sysv-absent", hex(ipc.key))
        assert not ok, detail
    finally:
        ipc.close()


def test_hostname_is_the_grains(pkg):
    assert G(pkg, "hostname", "grain")[0]
    assert G(pkg, "hostname", "notes-1", opts=["--hostname", "notes-1"])[0]
    if socket.gethostname() != "grain":
        assert not N("hostname", "grain")[0]


@pytest.fixture
def abstract_listener():
    name = f"granary-test-{os.getpid()}-{random.randrange(1 << 30)}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(4)
    yield name
    s.close()


def test_host_abstract_socket_unreachable(pkg, abstract_listener):
    ok, detail = G(pkg, "abstract-unreachable", abstract_listener)
    assert ok, detail


def test_host_abstract_socket_reachable_on_the_host(abstract_listener):
    ok, detail = N("abstract-unreachable", abstract_listener)
    assert not ok, detail


def test_other_grains_abstract_socket_unreachable(pkg):
    name = f"granary-grain-{random.randrange(1 << 30)}"
    with sandboxlib.Grain(pkg, ["/probe", "check", "abstract-listen", name]) as a:
        ok, detail = G(pkg, "abstract-unreachable", name)
        assert ok, detail
        # Negative control: inside a's network namespace the name answers.
        p = sandboxlib.nsenter_net(a.init_pid, [sandboxlib.PROBE, "check",
                                                "abstract-unreachable", name])
        assert "check abstract-unreachable fail" in p.stdout, p.stdout + p.stderr


@pytest.fixture
def control_socket():
    path = f"/run/granary-test-control-{os.getpid()}.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    yield path
    s.close()
    os.unlink(path)


def test_no_path_to_a_host_control_socket(pkg, control_socket):
    ok, detail = G(pkg, "unix-unreachable", control_socket)
    assert ok, detail
    ok, detail = N("unix-unreachable", control_socket)
    assert not ok, detail


def test_only_lo(pkg):
    ok, detail = G(pkg, "only-lo")
    assert ok, detail


def test_host_has_more_than_lo():
    if os.listdir("/sys/class/net") == ["lo"]:
        pytest.skip("host: only lo here, the negative control cannot fail")
    assert not N("only-lo")[0]


@pytest.fixture
def host_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    yield s.getsockname()[1]
    s.close()


def test_host_loopback_port_unreachable(pkg, host_listener):
    ok, detail = G(pkg, "tcp-unreachable", host_listener)
    assert ok, detail
    ok, detail = N("tcp-unreachable", host_listener)
    assert not ok, detail


def test_other_grains_port_unreachable(pkg):
    with sandboxlib.Grain(pkg, ["/probe", "check", "tcp-listen", "8000"]) as a:
        ok, detail = G(pkg, "tcp-unreachable", 8000)
        assert ok, detail
        p = sandboxlib.nsenter_net(a.init_pid, [sandboxlib.PROBE, "check", "tcp-unreachable",
                                                "8000"])
        assert "check tcp-unreachable fail" in p.stdout, p.stdout + p.stderr


def test_port_80_refused_8000_allowed(pkg):
    assert G(pkg, "bind-port", 80, "EACCES")[0]
    assert G(pkg, "bind-port", 8000, "ok")[0]


def test_port_80_binds_as_host_root():
    assert not N("bind-port", 80, "EACCES")[0]


def test_pid_1_is_grain_init(pkg):
    ok, detail = G(pkg, "pid1-is-init")
    assert ok, detail
    assert not N("pid1-is-init")[0]


def test_grain_init_is_private_to_the_app(pkg):
    """grain-init runs from an execute-only memfd: non-dumpable, so the app
    (same uid) cannot open its memory, environment or executable."""
    ok, detail = G(pkg, "proc-private", "1")
    assert ok, detail


def test_an_ordinary_process_of_the_grain_is_not_private(pkg):
    """Negative control: the same check on a child of the probe opens all three."""
    ok, detail = G(pkg, "proc-private", "child")
    assert not ok and "mem environ exe" in detail, detail
