"""Positive controls: real servers start and answer inside the sandbox.

A static C server (the probe), PHP's built-in server, Python's http.server and
Node each listen on 127.0.0.1:8000 inside a grain and answer one request sent
from inside the grain's network namespace (nsenter + curl from the host's
files). The runtimes are bound read-only from the host for the test.
"""
import os
import shutil
import time

import pytest

import sandboxlib

PORT = 8000


@pytest.fixture(scope="module")
def root():
    """A package of symlinks into a read-only bind of the host's /usr."""
    sandboxlib.require_sandbox()
    if not shutil.which("curl") or not shutil.which("nsenter"):
        pytest.fail("curl and nsenter are needed (scripts/deps.sh test)")
    tmp = sandboxlib.mkdtemp()
    pkg = sandboxlib.make_package(os.path.join(tmp, "pkg"))
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink("/" + name):
            os.symlink(os.readlink("/" + name), os.path.join(pkg, name))
    os.makedirs(os.path.join(pkg, "usr"))
    os.makedirs(os.path.join(pkg, "etc", "php"))
    with open(os.path.join(pkg, "app", "index.php"), "w") as f:
        f.write('<?php echo "hello from php ", PHP_MAJOR_VERSION, "\\n";\n')
    with open(os.path.join(pkg, "app", "index.html"), "w") as f:
        f.write("hello from python\n")
    with open(os.path.join(pkg, "app", "server.js"), "w") as f:
        f.write('require("http").createServer((q, s) => s.end("hello from node\\n"))'
                f'.listen({PORT}, "127.0.0.1");\n')
    yield pkg
    sandboxlib.rmtree(tmp)


def serve_and_get(pkg, argv, opts=(), path="/"):
    """Start the server as a grain, GET path from inside its network namespace."""
    g = sandboxlib.Grain(pkg, argv, opts=["--ro-bind", "/usr", "/usr"] + list(opts), ready=None)
    try:
        body = None
        for _ in range(600):  # until it listens (or exits); asserts no duration
            if g.proc.poll() is not None:
                break
            pids = sandboxlib.children(g.proc.pid)
            if pids:
                p = sandboxlib.nsenter_net(pids[0], ["curl", "-sS", "--max-time", "5",
                                                     f"http://127.0.0.1:{PORT}{path}"])
                if p.returncode == 0:
                    body = p.stdout
                    break
            time.sleep(0.05)
    finally:
        code = g.stop()
    return body, code, g.stderr


def test_static_c_server(root):
    body, code, err = serve_and_get(root, ["/probe", "serve", str(PORT)])
    assert body == "hello from a static grain\n", err
    assert code == 128 + 15


def test_php_builtin_server(root):
    php = os.path.realpath(shutil.which("php") or "/usr/bin/php")
    if not os.path.exists(php):
        pytest.fail("php-cli is not installed (scripts/deps.sh test)")
    body, code, err = serve_and_get(root, [php, "-S", f"127.0.0.1:{PORT}", "-t", "/app"],
                                    opts=["--ro-bind", "/etc/php", "/etc/php"],
                                    path="/index.php")
    assert body is not None and body.startswith("hello from php "), err


def test_python_http_server(root):
    body, code, err = serve_and_get(root, ["/usr/bin/python3", "-m", "http.server", str(PORT),
                                           "--bind", "127.0.0.1", "-d", "/app"],
                                    path="/index.html")
    assert body == "hello from python\n", err


def test_node_server(root):
    node = os.path.realpath(shutil.which("node") or "/usr/bin/node")
    if not os.path.exists(node):
        pytest.fail("node is not installed")
    body, code, err = serve_and_get(root, [node, "/app/server.js"])
    assert body == "hello from node\n", err


def test_a_server_on_the_hosts_loopback_is_not_the_grains(root):
    """Negative control: the same GET from the host's own network namespace
    does not reach the grain's server."""
    g = sandboxlib.Grain(root, ["/probe", "check", "tcp-listen", str(PORT)])
    try:
        p = sandboxlib.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{PORT}/"])
        assert "hello" not in p.stdout
    finally:
        g.stop()
