"""granaryd: a real libmicrohttpd server with the shell placeholder and
/healthz, keep-alive, clear start-up errors, and a clean stop."""
import http.client
import os
import re
import signal
import socket
import subprocess

import pytest

import requests

from conftest import Client, Daemon, program, run


def test_healthz(granaryd):
    r = Client(granaryd).get("/healthz")
    assert r.status_code == 200
    assert r.text == "ok\n"
    assert r.headers["Content-Type"].startswith("text/plain")


def test_placeholder_page(granaryd):
    r = Client(granaryd).get("/")
    assert r.status_code == 200
    assert "Granary is running" in r.text
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    # The shell's own pages are never framed or sniffed.
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"


def test_head_has_no_body(granaryd):
    conn = http.client.HTTPConnection("127.0.0.1", granaryd.port, timeout=5)
    conn.request("HEAD", "/healthz", headers={"Host": f"localhost:{granaryd.port}"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b""


def test_unknown_path_is_404(granaryd):
    r = Client(granaryd).get("/no/such/page")
    assert r.status_code == 404


def test_unsafe_method_is_405_even_with_a_body(granaryd):
    r = Client(granaryd).post("/healthz", data=b"x" * 100000)
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    # The server is still fine afterwards.
    assert Client(granaryd).get("/healthz").status_code == 200


def test_keep_alive(granaryd):
    """FIELD-NOTES: queueing on the first handler call makes MHD close every
    connection. Many requests on one connection must share one socket."""
    conn = http.client.HTTPConnection("127.0.0.1", granaryd.port, timeout=5)
    local_ports = set()
    for _ in range(50):
        conn.request("GET", "/healthz", headers={"Host": f"localhost:{granaryd.port}"})
        # http.client reconnects silently: a new connection has a new local port.
        local_ports.add(conn.sock.getsockname()[1])
        resp = conn.getresponse()
        assert resp.read() == b"ok\n"
        assert (resp.getheader("Connection") or "").lower() != "close"
    assert len(local_ports) == 1


def test_malformed_requests_get_400(granaryd):
    for bad in [b"GET / HTTP/1.1\r\nBroken header line\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n"]:
        s = socket.create_connection(("127.0.0.1", granaryd.port), timeout=5)
        s.sendall(bad)
        data = s.recv(4096)
        s.close()
        assert data.startswith(b"HTTP/1.1 400"), (bad, data[:100])


def test_binary_garbage_does_not_block_others(granaryd):
    """A connection sending garbage (or nothing) must not hold up anyone else."""
    idle = socket.create_connection(("127.0.0.1", granaryd.port), timeout=5)
    junk = socket.create_connection(("127.0.0.1", granaryd.port), timeout=5)
    junk.sendall(b"\x00\xff GARBAGE \r\n\r\n" + bytes(range(256)))
    for _ in range(20):
        assert Client(granaryd).get("/healthz").status_code == 200
    idle.close()
    junk.close()


def test_oversized_body_is_refused_without_reading_it_all(granaryd):
    """Past the discard limit the server answers at once and closes."""
    s = socket.create_connection(("127.0.0.1", granaryd.port), timeout=10)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
    sent = 0
    try:
        while sent < 64 * 1024 * 1024:
            s.sendall(b"x" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    assert sent < 64 * 1024 * 1024, "the server kept reading a 1 GiB body"
    assert Client(granaryd).get("/healthz").status_code == 200


def test_sigint_also_stops_cleanly(state_root):
    d = Daemon(state_root / "state")
    assert d.stop(sig=signal.SIGINT) == 0
    assert "stopping" in d.log


def test_state_dir_is_private(granaryd):
    """root:granary 0770: the front keeps its database there; others see nothing."""
    st = os.stat(granaryd.state)
    assert st.st_mode & 0o007 == 0
    if os.geteuid() == 0:
        import grp
        assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == "granary"


def test_second_daemon_on_same_state_is_refused(granaryd):
    r = run([program("granaryd"), "--state", granaryd.state, "--listen", "127.0.0.1:0"], timeout=10)
    assert r.returncode != 0
    assert "Another granaryd is already running" in r.stderr
    # The first one is unaffected.
    assert Client(granaryd).get("/healthz").status_code == 200


def test_port_in_use_says_so(granaryd, tmp_path):
    r = run(
        [program("granaryd"), "--state", str(tmp_path / "other"), "--listen", f"127.0.0.1:{granaryd.port}"],
        timeout=10,
    )
    assert r.returncode != 0
    assert "Address already in use" in r.stderr
    assert "--listen" in r.stderr


def test_bad_listen_values(tmp_path):
    for bad in ["", "6080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "256.0.0.1:80",
                "example.com:80", "[::1]6080", "[nonsense]:80", "127.0.0.1:-1"]:
        r = run([program("granaryd"), "--state", str(tmp_path / "s"), "--listen", bad], timeout=10)
        assert r.returncode == 1, bad
        assert "Invalid --listen" in r.stderr, (bad, r.stderr)


def test_ipv6_loopback(state_root):
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this host (no /proc/net/if_inet6)")
    proc = subprocess.Popen(
        [program("granaryd"), "--state", str(state_root / "v6"), "--listen", "[::1]:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "listening on" in line:
                break
        assert "listening on http://[::1]:" in line, line
        port = int(re.search(r"http://\[::1\]:(\d+)/", line).group(1))
        conn = http.client.HTTPConnection("::1", port, timeout=5)
        conn.request("GET", "/healthz", headers={"Host": f"localhost:{port}"})
        assert conn.getresponse().status == 200
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_unexpected_argument(tmp_path):
    r = run([program("granaryd"), "--state", str(tmp_path / "s"), "extra"])
    assert r.returncode == 1
    assert "Unexpected argument 'extra'" in r.stderr


def test_verbose_adds_source_locations(start_granaryd):
    quiet = start_granaryd()
    quiet.stop()
    assert "(supervisor/granaryd.c:" not in quiet.log
    loud = start_granaryd("--verbose")
    loud.stop()
    assert "(supervisor/granaryd.c:" in loud.log


def test_log_level_from_environment(start_granaryd):
    d = start_granaryd(env={"GRANARY_LOG_LEVEL": "debug"})
    d.stop()
    assert "(supervisor/granaryd.c:" in d.log


def test_bad_log_level_is_reported(start_granaryd):
    d = start_granaryd(env={"GRANARY_LOG_LEVEL": "loud"})
    d.stop()
    assert "Ignoring GRANARY_LOG_LEVEL='loud'" in d.log
