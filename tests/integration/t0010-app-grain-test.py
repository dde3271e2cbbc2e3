"""apps/grain-test, the app the grain and proxy tests and the benchmarks run,
does what its endpoints promise: checked here directly on 127.0.0.1 (no
Granary in between), so that a failure in a proxy test is the proxy's; and
as root inside a real grain sandbox from its own package (build_app), where
it must find /var writable, uid 1000, only fds 0-2, and keep its files
across restarts."""
import json
import os
import pathlib
import re
import select
import signal
import socket
import subprocess
import tempfile
import zlib

import pytest
import requests
import websocket

import apps
from conftest import program, run, wait_for

GRAIN_TEST = program("apps/grain-test")


PERIOD = bytes((i * 31) % 251 for i in range(251))


def pattern(start, n):
    """The download pattern: byte i is (i * 31) % 251."""
    k = start % 251
    return (PERIOD[k:] + PERIOD * (n // 251 + 1))[:n]


class App:
    """build/apps/grain-test on a free port, its output collected."""

    def __init__(self, tmp_path):
        self.out_path, self.err_path = tmp_path / "stdout", tmp_path / "stderr"
        self.proc = subprocess.Popen([GRAIN_TEST, "0"], stdin=subprocess.DEVNULL,
                                     stdout=open(self.out_path, "wb"),
                                     stderr=open(self.err_path, "wb"))
        assert wait_for(lambda: "listening on" in self.err_path.read_text()
                        or self.proc.poll() is not None)
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.err_path.read_text())
        assert m, self.err_path.read_text()
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return s

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(10)


@pytest.fixture
def app(tmp_path):
    a = App(tmp_path)
    yield a
    a.stop()


def read_response(s, buffered=b"", after_head=False):
    """One HTTP/1.1 response from socket s (Content-Length or chunked or to
    EOF; none after a HEAD): (status, [(name, value)], body, rest, chunk sizes)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        assert more, f"connection closed inside a head: {data!r}"
        data += more
    head, data = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
    h = {k.lower(): v for k, v in headers}
    chunks = []
    if after_head or status in (204, 304) or 100 <= status < 200:
        return status, headers, b"", data, chunks
    if "content-length" in h:
        n = int(h["content-length"])
        while len(data) < n:
            more = s.recv(65536)
            assert more, "connection closed inside a body"
            data += more
        return status, headers, data[:n], data[n:], chunks
    if h.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in data:
                data += s.recv(65536)
            line, data = data.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            while len(data) < size + 2:
                more = s.recv(65536)
                assert more
                data += more
            assert data[size:size + 2] == b"\r\n"
            body, data = body + data[:size], data[size + 2:]
            if size == 0:
                return status, headers, body, data, chunks
            chunks.append(size)
    while True:
        more = s.recv(65536)
        if not more:
            return status, headers, data, b"", chunks
        data += more


def test_version_and_usage():
    r = run([GRAIN_TEST, "--version"])
    assert r.returncode == 0 and re.fullmatch(r"grain-test \d+\.\d+\.\d+\n", r.stdout)
    assert run([GRAIN_TEST, "--help"]).stdout.startswith("Usage: grain-test PORT")
    assert run([GRAIN_TEST, "not-a-port"]).returncode == 2
    assert run([GRAIN_TEST, "70000"]).returncode == 2


def test_hello_and_64k_on_one_kept_alive_connection(app):
    s = app.connect()
    rest = b""
    for _ in range(3):
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, rest, _ = read_response(s, rest)
        assert (status, body) == (200, b"hello world\n")
        assert ("Content-Length", "12") in headers
        assert not any(k.lower() == "connection" for k, _ in headers)
        s.sendall(b"GET /64k HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, rest, _ = read_response(s, rest)
        assert status == 200 and body == pattern(0, 65536)
    s.close()


def test_pipelined_requests_are_answered_in_order(app):
    s = app.connect()
    s.sendall(b"GET /status?code=201 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
              b"GET /status?code=202 HTTP/1.1\r\nHost: x\r\n\r\n")
    st1, _, _, rest, _ = read_response(s)
    st2, _, body, rest, _ = read_response(s, rest)
    st3, _, _, rest, _ = read_response(s, rest)
    assert (st1, st2, st3) == (201, 200, 202)
    assert json.loads(body)["bodyHead"] == "abc"
    s.close()


def test_pipelined_requests_after_a_download_and_a_slow_answer(app):
    s = app.connect()
    s.sendall(b"GET /download?bytes=20000000 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /slow?ms=10 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /download?bytes=5&chunked=1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _, _, body, rest, _ = read_response(s)
    assert body == pattern(0, 20000000)
    _, _, body, rest, _ = read_response(s, rest)
    assert body == b"slept\n"
    _, _, body, rest, _ = read_response(s, rest)
    assert body == pattern(0, 5)
    assert read_response(s, rest)[2] == b"hello world\n"
    s.close()


def test_head_and_http10(app):
    s = app.connect()
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, rest, _ = read_response(s, after_head=True)
    assert status == 200 and ("Content-Length", "12") in headers
    # The HEAD answer has no body: the next bytes are the next answer.
    assert rest == b"" or rest.startswith(b"HTTP/1.1 200")
    status, _, body, _, _ = read_response(s, rest)
    assert body == b"hello world\n"
    s.close()
    # HTTP/1.0 closes unless asked to keep alive.
    s = app.connect()
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    status, headers, body, rest, _ = read_response(s)
    assert ("Connection", "close") in headers and s.recv(10) == b""
    s = app.connect()
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, body, rest, _ = read_response(s)
    assert ("Connection", "keep-alive") in headers
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert read_response(s, rest)[2] == b"hello world\n"
    s.close()


def test_echo_keeps_headers_raw_and_in_order(app):
    s = app.connect()
    s.sendall(b"PATCH /echo/a%20b?x=1&y=%2F HTTP/1.1\r\nHost: h.example\r\n"
              b"X-B: 2\r\nx-a:  spaced value  \r\nX-B: 1\r\nX-Utf8: \xc3\xa9\r\n"
              b"Content-Length: 5\r\n\r\nhello")
    status, headers, body, _, _ = read_response(s)
    assert status == 200 and ("Content-Type", "application/json") in headers
    e = json.loads(body)
    assert e["method"] == "PATCH" and e["target"] == "/echo/a%20b?x=1&y=%2F"
    assert e["version"] == "HTTP/1.1"
    assert e["headers"] == [["Host", "h.example"], ["X-B", "2"], ["x-a", "spaced value"],
                            ["X-B", "1"], ["X-Utf8", "\u00c3\u00a9"], ["Content-Length", "5"]]
    assert e["headers"][4][1].encode("latin-1").decode() == "é"
    assert (e["bodyBytes"], e["bodySum"], e["bodyChunked"]) == (5, zlib.adler32(b"hello"), False)


def test_echo_and_upload_read_chunked_bodies(app):
    data = os.urandom(300000)
    pieces = (data[i:i + 7777] for i in range(0, len(data), 7777))
    r = requests.post(app.url + "/echo", data=pieces, timeout=30)
    e = r.json()
    assert e["bodyChunked"] and e["bodyBytes"] == len(data)
    assert e["bodySum"] == zlib.adler32(data)
    assert e["bodyHead"].encode("latin-1") == data[:1024]
    pieces = (data[i:i + 1000] for i in range(0, len(data), 1000))
    assert requests.put(app.url + "/upload", data=pieces, timeout=30).json() == {
        "bytes": len(data), "sum": zlib.adler32(data)}


def test_upload_with_length_and_expect_100(app):
    data = os.urandom(5 << 20)
    assert requests.post(app.url + "/upload", data=data, timeout=30).json() == {
        "bytes": len(data), "sum": zlib.adler32(data)}
    # Expect: 100-continue is answered before the body is sent.
    s = app.connect()
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
              b"Expect: 100-continue\r\n\r\n")
    status, _, _, rest, _ = read_response(s)
    assert status == 100
    s.sendall(b"abcd")
    status, _, body, _, _ = read_response(s, rest)
    assert json.loads(body) == {"bytes": 4, "sum": zlib.adler32(b"abcd")}
    assert requests.get(app.url + "/upload", timeout=10).status_code == 405


def test_download_length_and_chunked(app):
    r = requests.get(app.url + "/download?bytes=3000000", timeout=30)
    assert r.headers["Content-Length"] == "3000000" and r.content == pattern(0, 3000000)
    s = app.connect()
    s.sendall(b"GET /download?bytes=2000000&chunked=1&seed=7 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _, chunks = read_response(s)
    assert ("Transfer-Encoding", "chunked") in headers
    assert body == pattern(0, 2000000)
    assert len(set(chunks)) > 10 and min(chunks) < 17 and max(chunks) > 1000
    r = requests.get(app.url + "/download?bytes=0", timeout=10)
    assert r.status_code == 200 and r.content == b""
    assert requests.get(app.url + "/download", timeout=10).status_code == 400


def test_slow_answers_later_without_blocking_others(app):
    slow = app.connect()
    slow.sendall(b"GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n")
    # Another connection is served while the slow answer is pending.
    assert requests.get(app.url + "/", timeout=10).text == "hello world\n"
    assert select.select([slow], [], [], 0)[0] == []
    status, _, body, _, _ = read_response(slow)
    assert (status, body) == (200, b"slept\n")


def test_drip_sends_chunks_one_by_one(app):
    s = app.connect()
    s.sendall(b"GET /drip?chunks=4&ms=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body, _, chunks = read_response(s)
    assert status == 200 and ("Transfer-Encoding", "chunked") in headers
    assert body == b"drip 3\ndrip 2\ndrip 1\ndrip 0\n" and len(chunks) == 4


def test_print_writes_to_stdout_and_stderr(app):
    r = requests.get(app.url + "/print", params={"text": "to the log: é"}, timeout=10)
    assert r.text == "printed\n"
    assert wait_for(lambda: "to the log: é\n" in app.out_path.read_text())
    assert "to the log: é\n" in app.err_path.read_text()


def test_cookie_status_and_close(app):
    r = requests.get(app.url + "/cookie", timeout=10)
    cookies = r.raw.headers.getlist("Set-Cookie")
    assert "grain_test=1; Domain=example.com; Path=/" in cookies and len(cookies) == 4
    for code in (200, 201, 302, 404, 418, 500, 503):
        r = requests.get(app.url + f"/status?code={code}", allow_redirects=False, timeout=10)
        assert r.status_code == code and r.text == f"status {code}\n"
    s = app.connect()
    s.sendall(b"GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n")
    st1, h1, _, rest, _ = read_response(s)
    st2, h2, _, rest, _ = read_response(s, rest)
    assert (st1, st2) == (204, 304)
    assert not any(k.lower() == "content-length" for k, _ in h1 + h2)
    st3, h3, body, rest, _ = read_response(s, rest)
    assert (st3, body, rest) == (200, b"bye\n", b"")
    assert ("Connection", "close") in h3 and s.recv(10) == b""
    assert requests.get(app.url + "/nothing-here", timeout=10).status_code == 404


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),  # folding
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_malformed_requests_are_refused_and_closed(app, request_bytes, status):
    s = app.connect()
    s.sendall(request_bytes)
    got, headers, _, rest, _ = read_response(s)
    assert got == status and ("Connection", "close") in headers
    assert rest == b"" and s.recv(10) == b""


def test_websocket_echo(app):
    ws = websocket.create_connection(f"ws://127.0.0.1:{app.port}/ws", timeout=10)
    ws.send("hello é")
    assert ws.recv() == "hello é"
    big = os.urandom(1 << 20)
    ws.send_binary(big)
    assert ws.recv() == big
    ws.ping(b"are you there")
    op, frame = ws.recv_data_frame(control_frame=True)
    assert op == websocket.ABNF.OPCODE_PONG and frame.data == b"are you there"
    # A fragmented message comes back as fragments of one message.
    ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, fin=0))
    ws.send_frame(websocket.ABNF.create_frame("ments", websocket.ABNF.OPCODE_CONT, fin=1))
    assert ws.recv() == "fragments"
    ws.send_close(status=4001, reason=b"bye")
    op, frame = ws.recv_data_frame(control_frame=True)
    assert op == websocket.ABNF.OPCODE_CLOSE and frame.data[:2] == (4001).to_bytes(2, "big")
    ws.shutdown()


def test_websocket_handshake_is_checked(app):
    r = requests.get(app.url + "/ws", timeout=10)
    assert r.status_code == 400
    r = requests.get(app.url + "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                               "Sec-WebSocket-Version": "8"}, timeout=10)
    assert r.status_code == 426 and r.headers["Sec-WebSocket-Version"] == "13"
    # RFC 6455's own example key and accept value.
    s = app.connect()
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    status, headers, _, _, _ = read_response(s)
    assert status == 101 and ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in headers
    s.sendall(b"\x81\x05hello")  # not masked: a protocol error
    data = b""
    while len(data) < 4:
        data += s.recv(10)
    assert data[:4] == b"\x88\x02\x03\xea"  # close 1002
    s.close()


def test_crash_exits_with_status_3(app):
    s = app.connect()
    s.sendall(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(100) == b""
    assert app.proc.wait(10) == 3
    assert "crashing on request\n" in app.err_path.read_text()


def test_many_connections_and_a_slow_reader(app):
    """100 connections at once; a client that does not read a 64 MiB download
    holds the app's memory to what the socket buffers take, and everyone else
    is served meanwhile."""
    socks = [app.connect() for _ in range(100)]
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        assert read_response(s)[2] == b"hello world\n"
        s.close()
    lazy = app.connect()
    lazy.sendall(b"GET /download?bytes=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert requests.get(app.url + "/64k", timeout=10).content == pattern(0, 65536)
    with open(f"/proc/{app.proc.pid}/status") as f:
        rss_kib = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    assert rss_kib < 16 * 1024, f"grain-test holds {rss_kib} KiB for one unread download"
    got = 0
    first = None
    while got < 67108864 + 200:
        data = lazy.recv(1 << 20)
        if not data:
            break
        if first is None:
            first = data
        got += len(data)
        if got > 67108864:
            break
    lazy.close()
    assert first.startswith(b"HTTP/1.1 200")


# ---- inside a real grain sandbox, from its package ---------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="host: a grain sandbox needs root")


@pytest.fixture(scope="module")
def package_root():
    tmp = tempfile.mkdtemp(prefix="granary-t0010-", dir="/tmp")
    os.chmod(tmp, 0o755)
    apps.unpack(apps.build_app("grain-test"), f"{tmp}/root")
    yield tmp
    subprocess.run(["rm", "-rf", tmp])


@needs_root
def test_in_a_grain_sandbox(package_root):
    root, data = pathlib.Path(package_root, "root"), pathlib.Path(package_root, "data")
    data.mkdir(exist_ok=True)
    assert sorted(os.listdir(root)) == ["app", "granary-manifest.json"]
    g = apps.SandboxedApp(root, data)
    try:
        status, _, body = g.get("/whoami")
        who = json.loads(body)
        assert status == 200
        assert (who["uid"], who["gid"], who["pid"], who["hostname"]) == (1000, 1000, 2, "grain")
        assert who["varWritable"] and who["tmpWritable"] and who["cwd"] == "/var"
        assert who["fdsAtStart"] == [0, 1, 2]
        assert who["env"]["HOME"] == "/var" and who["argv"] == ["/app/grain-test", "8000"]
        assert g.get("/file?write=kept&data=survives%20restarts")[0] == 200
        status, _, body = g.get("/download?bytes=5000000")
        assert status == 200 and body == pattern(0, 5000000)
        status, _, body = apps.netns_http(g.pid, g.port, "POST", "/upload", body=b"x" * 100000)
        assert json.loads(body) == {"bytes": 100000, "sum": zlib.adler32(b"x" * 100000)}
    finally:
        assert g.stop() == 128 + signal.SIGTERM, g.stderr
    assert "grain-test: listening on 127.0.0.1:8000" in g.stderr
    # The data, owned by the grain's uid on the host, is there the next time.
    g = apps.SandboxedApp(root, data)
    try:
        assert g.get("/file?read=kept")[2] == b"survives restarts"
        assert g.get("/file?read=missing")[0] == 404
        assert g.get("/file?read=..")[0] == 400
    finally:
        g.stop()
    g = apps.SandboxedApp(root, data)
    try:
        with pytest.raises((ConnectionError, OSError)):
            g.get("/crash")
        assert g.proc.wait(10) == 3
    finally:
        g.stop()
    assert "crashing on request" in g.stderr
