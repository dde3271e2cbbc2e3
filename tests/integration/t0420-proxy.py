"""The two proxy engines over real sockets, both ways: every test runs on the
event loop (supervisor/front_loop.c: front's engine for plain HTTP) and on
the libmicrohttpd engine (supervisor/front_proxy.c: front's engine over TLS).

build/tests/proxy-harness runs an engine the way front does (--engine loop:
our own epoll loop; --engine mhd: libmicrohttpd, a thread per connection,
upgrades allowed) with a keep-alive pool of its own, in front of App: a raw
HTTP/1.1 server in this process whose answers each test scripts by path,
and which records what it was sent and how many connections it got. Clients speak raw HTTP where the bytes matter
(framing, truncation, keep-alive), http.client elsewhere. No test asserts a
duration; memory is checked as growth of the harness's peak RSS.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import program, wait_for

BLOCK = bytes(range(256)) * 4096  # 1 MiB of a known pattern


def pattern(n):
    """The first n bytes of BLOCK repeated, as an iterator of blocks."""
    while n > 0:
        chunk = BLOCK[:min(n, len(BLOCK))]
        n -= len(chunk)
        yield chunk


def pattern_sha(n):
    h = hashlib.sha256()
    for chunk in pattern(n):
        h.update(chunk)
    return h.hexdigest()


def recv_until(conn, buf, marker, limit=1 << 20):
    """Read from conn until marker is in buf; (head, rest) or (None, buf) at EOF."""
    while marker not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
        if len(buf) > limit:
            raise ValueError("head too large")
    i = buf.index(marker) + len(marker)
    return buf[:i], buf[i:]


class Request:
    def __init__(self, head):
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, self.version = lines[0].split(" ")
        self.headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers.append((name, value.strip()))
        self.path, _, query = self.target.partition("?")
        self.query = dict(urllib.parse.parse_qsl(query))
        self.body_len = 0
        self.body_sha = None
        self.body = b""

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]


class App:
    """The upstream: answers scripted per path, counting connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []
        self.conns = []
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.running = False
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_body(self, conn, buf, req):
        """Read req's body (Content-Length or chunked), hashing it; returns the rest of buf."""
        h = hashlib.sha256()
        keep = req.path != "/upload"
        te = req.header("Transfer-Encoding")
        if te:
            assert te == "chunked", te
            while True:
                line, buf = recv_until(conn, buf, b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    _, buf = recv_until(conn, buf, b"\r\n")  # no trailers from the engine
                    break
                while len(buf) < size + 2:
                    data = conn.recv(1 << 20)
                    if not data:
                        raise EOFError
                    buf += data
                h.update(buf[:size])
                if keep:
                    req.body += buf[:size]
                req.body_len += size
                assert buf[size:size + 2] == b"\r\n"
                buf = buf[size + 2:]
        elif req.header("Content-Length") is not None:
            left = int(req.header("Content-Length"))
            while left > 0:
                if not buf:
                    buf = conn.recv(min(left, 1 << 20))
                    if not buf:
                        raise EOFError
                take = buf[:left]
                buf = buf[len(take):]
                h.update(take)
                if keep:
                    req.body += take
                req.body_len += len(take)
                left -= len(take)
        req.body_sha = h.hexdigest()
        return buf

    def _serve(self, conn):
        buf = b""
        state = {"drop_next": False}
        try:
            while True:
                head, buf = recv_until(conn, buf, b"\r\n\r\n")
                if head is None:
                    return
                req = Request(head)
                if not req.path.startswith("/early"):
                    buf = self._read_body(conn, buf, req)
                with self.lock:
                    self.requests.append(req)
                if state["drop_next"]:
                    return  # read it, never answer: a keep-alive close race
                name = req.path.split("/")[1].replace("-", "_")
                handler = getattr(self, "do_" + name, None)
                keep = handler(conn, req, state) if handler else self.send(conn, 404, b"no")
                if not keep:
                    return
        except (OSError, EOFError, ValueError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def send(conn, status, body=b"", headers=(), reason="OK"):
        head = f"HTTP/1.1 {status} {reason}\r\n"
        for name, value in headers:
            head += f"{name}: {value}\r\n"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\n"
        conn.sendall(head.encode("latin-1") + b"\r\n" + (body or b""))
        return True

    # ---- the app's pages ---------------------------------------------------

    def do_echo(self, conn, req, state):
        body = json.dumps({"method": req.method, "target": req.target, "headers": req.headers,
                           "body_len": req.body_len, "body": req.body.decode("latin-1")})
        return self.send(conn, 200, body.encode(), [("Content-Type", "application/json")])

    def do_cl(self, conn, req, state):
        return self.send(conn, 200, b"x" * int(req.query.get("size", "12")),
                         [("Content-Type", "text/plain")])

    def do_chunked(self, conn, req, state):
        n, size = int(req.query.get("n", "3")), int(req.query.get("size", "5"))
        out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        for i in range(n):
            ext = b";ext=1" if i % 2 else b""
            out += b"%x%s\r\n" % (size, ext) + bytes([97 + i % 26]) * size + b"\r\n"
        out += b"0\r\nX-Trailer: dropped\r\n\r\n"
        if req.query.get("slow"):
            for i in range(0, len(out), 7):  # framing split everywhere
                conn.sendall(out[i:i + 7])
                time.sleep(0.001)
        else:
            conn.sendall(out)
        return True

    def do_close(self, conn, req, state):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        for chunk in pattern(int(req.query.get("size", "100000"))):
            conn.sendall(chunk)
        return False

    def do_http10(self, conn, req, state):
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold style")
        return False

    def do_head(self, conn, req, state):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n"
        conn.sendall(head if req.method == "HEAD" else head + b"h" * 1234)
        return True

    def do_204(self, conn, req, state):
        conn.sendall(b"HTTP/1.1 204 No Content\r\nX-App: 1\r\n\r\n")
        return True

    def do_304(self, conn, req, state):
        length = b"Content-Length: 1234\r\n" if req.query.get("length") else b""
        conn.sendall(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n" + length + b"\r\n")
        return True

    def do_upload(self, conn, req, state):
        body = json.dumps({"len": req.body_len, "sha": req.body_sha}).encode()
        return self.send(conn, 200, body, [("Content-Type", "application/json")])

    def do_download(self, conn, req, state):
        size = int(req.query["size"])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        for chunk in pattern(size):
            conn.sendall(chunk)
        return True

    def do_download_chunked(self, conn, req, state):
        size = int(req.query["size"])
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for chunk in pattern(size):
            conn.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        return True

    def do_slow(self, conn, req, state):
        time.sleep(int(req.query.get("ms", "1500")) / 1000)
        return self.send(conn, 200, b"slow but sure", [("Content-Type", "text/plain")])

    def do_die_cl(self, conn, req, state):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"d" * 300000)
        time.sleep(0.2)
        return False

    def do_die_chunked(self, conn, req, state):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(40):
            conn.sendall(b"2000\r\n" + b"d" * 0x2000 + b"\r\n")
        time.sleep(0.2)
        return False

    RAW = {
        "garbage": b"this is not http\r\n\r\n",
        "version": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "status": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 0\r\n\r\n",
        "space-name": b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
        "ctl-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n",
        "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        "length-list": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab",
        "gzip-te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "te-and-length": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                          b"Content-Length: 5\r\n\r\n0\r\n\r\n"),
        "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        "unasked-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "empty": b"",
        "truncated-head": b"HTTP/1.1 200 OK\r\nContent-Le",
    }

    def do_raw(self, conn, req, state):
        conn.sendall(self.RAW[req.query["name"]])
        time.sleep(0.1)
        return False

    def do_bighead(self, conn, req, state):
        fields = [(f"X-Filler-{i}", "f" * 1000) for i in range(70)]
        return self.send(conn, 200, b"big", fields)

    def do_headers(self, conn, req, state):
        return self.send(conn, 200, b"<p>hi</p>", [
            ("Content-Type", "text/html"),
            ("Connection", "X-Hop, keep-alive"),
            ("X-Hop", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Trailer", "X-T"),
            ("Content-Security-Policy", "default-src 'self'"),
            ("X-Content-Type-Options", "sniff-away"),
            ("X-Empty", ""),
            ("X-Kept", "yes"),
            ("Set-Cookie", "app=1; Domain=.localhost; Path=/; HttpOnly"),
            ("Set-Cookie", "other=2; path=/; domain=evil.example; Secure"),
            ("Set-Cookie", "granary_session=stolen; Path=/"),
        ])

    def do_referrer(self, conn, req, state):
        return self.send(conn, 200, b"r", [("Referrer-Policy", "no-referrer")])

    def do_oneshot(self, conn, req, state):
        self.send(conn, 200, b"once", [("Content-Type", "text/plain")])
        return False  # closes without saying so: the pooled fd goes stale

    def do_drop_next(self, conn, req, state):
        state["drop_next"] = True
        return self.send(conn, 200, b"first", [("Content-Type", "text/plain")])

    def do_early(self, conn, req, state):
        self.send(conn, 413, b"too much", [("Connection", "close")])
        time.sleep(0.5)
        return False

    def do_continue(self, conn, req, state):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        return self.send(conn, 200, b"after hints", [("Content-Type", "text/plain")])

    def do_ws(self, conn, req, state):
        key = req.header("Sec-WebSocket-Key")
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                      "Sec-WebSocket-Protocol: chat\r\n\r\n" % accept).encode()
                     + ws_frame(b"hello from the app"))  # bytes right after the 101 head
        buf = b""
        while True:
            frame, buf = ws_read(conn, buf)
            if frame is None:
                return False
            opcode, payload = frame
            if opcode == 8:  # close: answer it, then close
                conn.sendall(ws_frame(payload, opcode=8))
                return False
            conn.sendall(ws_frame(payload, opcode=opcode))

    def do_ws_refuse(self, conn, req, state):
        return self.send(conn, 403, b"no websockets here", [("Content-Type", "text/plain")],
                         reason="Forbidden")


def ws_frame(payload, opcode=1):
    """A server frame (unmasked)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def ws_read(conn, buf):
    """One client frame (masked): ((opcode, payload), rest) or (None, buf) at EOF."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            data = conn.recv(65536)
            if not data:
                return False
            buf += data
        return True
    if not need(2):
        return None, buf
    opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
    off = 2
    if n == 126:
        if not need(4):
            return None, buf
        n, off = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if not need(10):
            return None, buf
        n, off = int.from_bytes(buf[2:10], "big"), 10
    if not need(off + 4 + n):
        return None, buf
    mask = buf[off:off + 4]
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(buf[off + 4:off + 4 + n]))
    return (opcode, payload), buf[off + 4 + n:]


# ---- fixtures and clients ------------------------------------------------------


class Harness:
    def __init__(self, app, args, tmp_path):
        self.stderr_path = tmp_path / f"harness-{time.monotonic_ns()}.log"
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [program("tests/proxy-harness"), "--upstream", str(app.port),
             "--strip-cookie", "granary_session", *args],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, "proxy-harness did not start: " + line + self.log
        self.port = int(m.group(1))

    @property
    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def stats(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/", headers={"Host": "harness.stats"})
        return json.loads(c.getresponse().read())

    def rss(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(field)

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(30)
        self.stderr.close()
        assert rc == 0, f"proxy-harness exited with {rc}:\n{self.log}"
        for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert marker not in self.log, self.log


@pytest.fixture
def app():
    a = App()
    yield a
    a.close()


@pytest.fixture(params=["loop", "mhd"])
def start(app, tmp_path, request):
    started = []

    def start_harness(*args):
        h = Harness(app, ("--engine", request.param, *args), tmp_path)
        started.append(h)
        return h

    yield start_harness
    for h in started:
        h.stop()


@pytest.fixture
def proxy(start):
    return start()


HOST = "ui-0123456789abcdef0123456789abcdef.localhost:6080"


def get(h, path, method="GET", headers=None, body=None):
    """One request on a fresh connection: (status, headers as list, body)."""
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
    c.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheaders(), data


def header(headers, name):
    values = [v for n, v in headers if n.lower() == name.lower()]
    assert len(values) <= 1, (name, values)
    return values[0] if values else None


def headers_named(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


class Raw:
    """A raw client connection: send bytes, read exact responses."""

    def __init__(self, h, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", h.port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError(self.buf)
        self.buf += data

    def response(self, head_request=False):
        """(status, headers, body); body None when the framing was cut short."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        if head_request or status in (204, 304) or status < 200:
            return status, headers, b""
        length, te = header(headers, "Content-Length"), header(headers, "Transfer-Encoding")
        body = b""
        try:
            if te == "chunked":
                while True:
                    while b"\r\n" not in self.buf:
                        self._fill()
                    line, self.buf = self.buf.split(b"\r\n", 1)
                    size = int(line, 16)
                    while len(self.buf) < size + 2:
                        self._fill()
                    body += self.buf[:size]
                    self.buf = self.buf[size + 2:]
                    if size == 0:
                        break
            elif length is not None:
                while len(self.buf) < int(length):
                    self._fill()
                body, self.buf = self.buf[:int(length)], self.buf[int(length):]
            else:
                while True:
                    self._fill()
        except EOFError:
            if length is None and te is None:
                body, self.buf = self.buf, b""
            else:
                return status, headers, None
        return status, headers, body

    def closed(self):
        """True when the server closed the connection (after what was read)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def close(self):
        self.sock.close()


def request(method, path, headers=(), body=b"", host=HOST):
    out = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    for name, value in headers:
        out += f"{name}: {value}\r\n"
    return out.encode("latin-1") + b"\r\n" + body


# ---- the request as the app sees it --------------------------------------------------


def test_request_headers_and_raw_target(app, start):
    h = start("--username", "Zoë % x", "--permissions", "read,write")
    sent = [
        ("X-Custom", "kept"),
        ("Cookie", "a=1; granary_session=secret; b=2"),
        ("X-Granary-User-Id", "forged"),
        ("x-granary-permissions", "admin"),
        ("X_Granary_User_Id", "forged for CGI"),
        ("X-Granary_Username", "forged for CGI"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
        ("Authorization", "Bearer shell-token"),
        ("Proxy-Authorization", "Basic eA=="),
        ("Connection", "keep-alive, X-Hop"),
        ("X-Hop", "named in Connection"),
        ("Keep-Alive", "300"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Accept", "text/html"),
    ]
    c = Raw(h)
    c.send(request("GET", "/echo/a%2Fb/%7E?q=%2F&x=1&x=2", sent))
    status, headers, body = c.response()
    assert status == 200, body
    seen = json.loads(body)
    assert seen["target"] == "/echo/a%2Fb/%7E?q=%2F&x=1&x=2"
    assert seen["method"] == "GET"
    names = [n.lower() for n, _ in seen["headers"]]
    fields = {n.lower(): v for n, v in seen["headers"]}
    # The client's own fields, in order, Host kept.
    assert names[:4] == ["host", "x-custom", "cookie", "accept"], names
    assert fields["host"] == HOST
    assert fields["cookie"] == "a=1; b=2"
    assert not any("_" in n for n in names), names
    for gone in ("x-forwarded-for", "forwarded", "x-real-ip", "authorization",
                 "proxy-authorization", "connection", "x-hop", "keep-alive", "te", "upgrade"):
        assert gone not in names, gone
    # Granary's, once each.
    assert names.count("x-granary-user-id") == 1 and fields["x-granary-user-id"] == "u-1"
    assert names.count("x-granary-permissions") == 1
    assert fields["x-granary-permissions"] == "read,write"
    assert fields["x-granary-username"] == "Zo%C3%AB %25 x"
    assert fields["x-granary-session-id"] == "s-1"
    assert fields["x-forwarded-proto"] == "http"
    assert names.count("x-forwarded-host") == 1 and fields["x-forwarded-host"] == HOST
    c.close()


def test_only_shell_cookies_means_no_cookie_field(app, start):
    h = start("--anonymous")
    status, _, body = get(h, "/echo", headers={"Cookie": "granary_session=x"})
    seen = {n.lower(): v for n, v in json.loads(body)["headers"]}
    assert status == 200
    assert "cookie" not in seen
    assert "x-granary-user-id" not in seen and "x-granary-username" not in seen


def test_bodies_to_the_app(app, proxy):
    # Content-Length as sent.
    status, _, body = get(proxy, "/echo", "POST", {"Content-Type": "text/plain"}, b"hello app")
    seen = json.loads(body)
    assert status == 200 and seen["body"] == "hello app"
    assert ["Content-Length", "9"] in seen["headers"]
    # Chunked from the client: chunked to the app (MHD decodes, we re-frame).
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    c.request("PUT", "/echo", body=iter([b"one ", b"two ", b"three"]),
              headers={"Host": HOST}, encode_chunked=True)
    r = c.getresponse()
    seen = json.loads(r.read())
    assert r.status == 200 and seen["body"] == "one two three"
    assert ["Transfer-Encoding", "chunked"] in seen["headers"]
    assert not any(n.lower() == "content-length" for n, _ in seen["headers"])
    # Expect: 100-continue is answered by MHD, not passed on.
    raw = Raw(proxy)
    raw.send(request("POST", "/echo", [("Content-Length", "5"), ("Expect", "100-continue")]))
    status, _, _ = raw.response()
    assert status == 100
    raw.send(b"12345")
    status, _, body = raw.response()
    seen = json.loads(body)
    assert status == 200 and seen["body"] == "12345"
    assert not any(n.lower() == "expect" for n, _ in seen["headers"])


# ---- the answer as the client sees it ------------------------------------------------


def test_response_headers(app, proxy):
    status, headers, body = get(proxy, "/headers")
    assert status == 200 and body == b"<p>hi</p>"
    for gone in ("X-Hop", "Keep-Alive", "Proxy-Authenticate", "Trailer", "X-Empty"):
        assert header(headers, gone) is None, gone
    assert header(headers, "X-Kept") == "yes"
    assert headers_named(headers, "Content-Security-Policy") == [
        "default-src 'self'", "frame-ancestors http://localhost:6080"]
    assert header(headers, "X-Content-Type-Options") == "nosniff"
    assert header(headers, "Referrer-Policy") == "same-origin"
    assert headers_named(headers, "Set-Cookie") == [
        "app=1; Path=/; HttpOnly", "other=2; path=/; Secure"]
    # The app's own Referrer-Policy stands.
    _, headers, _ = get(proxy, "/referrer")
    assert headers_named(headers, "Referrer-Policy") == ["no-referrer"]


def test_framings(app, proxy):
    c = Raw(proxy)
    # Pipelined on one client connection: each answer must end exactly where it should.
    c.send(request("GET", "/cl?size=12") + request("GET", "/chunked?n=3&size=5")
           + request("GET", "/chunked?n=40&size=3000&slow=1") + request("GET", "/close?size=100000")
           + request("HEAD", "/head") + request("GET", "/204") + request("GET", "/304")
           + request("GET", "/304?length=1") + request("GET", "/continue")
           + request("GET", "/http10") + request("GET", "/head"))
    assert c.response() [0::2] == (200, b"x" * 12)
    status, headers, body = c.response()
    assert (status, body) == (200, b"aaaaabbbbbccccc")
    assert header(headers, "Content-Length") == "15"  # small chunked answers get a length
    status, headers, body = c.response()
    assert status == 200 and len(body) == 40 * 3000
    assert body == b"".join(bytes([97 + i % 26]) * 3000 for i in range(40))
    status, headers, body = c.response()
    assert status == 200 and body == b"".join(pattern(100000))
    assert header(headers, "Transfer-Encoding") == "chunked"  # close-delimited, re-framed
    status, headers, body = c.response(head_request=True)
    assert status == 200 and header(headers, "Content-Length") == "1234"
    status, headers, body = c.response()
    assert status == 204 and header(headers, "Content-Length") is None
    assert header(headers, "X-App") == "1"
    status, headers, _ = c.response()
    assert status == 304 and header(headers, "ETag") == '"v1"'
    status, headers, _ = c.response()
    assert status == 304 and header(headers, "Content-Length") == "1234"
    assert c.response()[0::2] == (200, b"after hints")  # 100 and 103 not passed on
    assert c.response()[0::2] == (200, b"old style")
    assert c.response()[0::2] == (200, b"h" * 1234)
    assert c.buf == b""
    c.close()


def test_client_keep_alive(app, proxy):
    c = Raw(proxy)
    for _ in range(5):
        c.send(request("GET", "/cl"))
        status, headers, _ = c.response()
        assert status == 200
        assert header(headers, "Connection") is None  # kept alive (HTTP/1.1 default)
    c.close()


# ---- which engine serves a connection (the event loop's handoff) ----------------------


@pytest.fixture
def loop_harness(app, tmp_path):
    h = Harness(app, ("--engine", "loop"), tmp_path)
    yield h
    h.stop()


def stats_on(c):
    c.send(request("GET", "/", host="harness.stats"))
    status, _, body = c.response()
    assert status == 200
    return json.loads(body)


def test_first_request_decides_who_serves_the_connection(app, loop_harness):
    # A connection that starts with another host goes, untouched, to libmicrohttpd
    # (front: the shell's), and stays there, requests for the app included.
    c = Raw(loop_harness)
    c.send(request("GET", "/cl?size=3", host="harness.mhd"))
    assert c.response()[0::2] == (200, b"xxx")
    c.send(request("GET", "/cl?size=2"))
    assert c.response()[0::2] == (200, b"xx")
    assert stats_on(c)["engine"] == "mhd"
    c.close()
    # One that starts with a request for the app is the loop's; another host on it
    # gets 421 and the connection ends.
    c = Raw(loop_harness)
    c.send(request("GET", "/cl?size=2"))
    assert c.response()[0::2] == (200, b"xx")
    assert stats_on(c)["engine"] == "loop"
    c.send(request("GET", "/cl", host="harness.mhd"))
    status, headers, _ = c.response()
    assert status == 421 and header(headers, "Connection") == "close"
    assert c.closed()
    c.close()


# ---- the pool -------------------------------------------------------------------------


def test_pooled_fd_reused(app, proxy):
    for _ in range(10):
        assert get(proxy, "/cl")[0] == 200
    c = Raw(proxy)
    for _ in range(10):
        c.send(request("GET", "/chunked"))
        assert c.response()[0] == 200
    assert app.connections == 1
    s = proxy.stats()
    assert s["upstream_fresh"] == 1 and s["upstream_reused"] == 19 and s["pool_idle"] == 1


def test_answers_that_end_the_app_connection(app, proxy):
    for path in ("/close?size=10", "/http10", "/early", "/cl"):
        get(proxy, path)
    # Close-delimited and HTTP/1.0 answers cannot leave a reusable connection.
    assert app.connections == 3 + 1


def test_stale_pooled_fd(app, proxy):
    assert get(proxy, "/oneshot")[2] == b"once"
    wait_for(lambda: len(app.conns) == 1 and app.conns[0].fileno() == -1)
    status, _, _ = get(proxy, "/echo", "POST", body=b"x")
    assert status == 200
    s = proxy.stats()
    assert s["upstream_stale"] == 1 and s["retries"] == 0 and app.connections == 2


def test_close_race_retried_for_repeatable_methods(app, proxy):
    # The app reads the next request on the pooled connection and closes it unanswered.
    assert get(proxy, "/drop-next")[0] == 200
    status, _, body = get(proxy, "/echo")
    assert status == 200 and json.loads(body)["method"] == "GET"
    assert proxy.stats()["retries"] == 1
    # A POST the app may have seen is not sent twice.
    assert get(proxy, "/drop-next")[0] == 200
    before = len(app.requests)
    status, _, body = get(proxy, "/echo", "POST", body=b"")
    assert status == 502 and b"The app did not answer properly" in body
    assert [r.method for r in app.requests[before:]] == ["POST"]


# ---- failures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/die-cl", "/die-chunked"])
def test_app_dies_mid_body(app, proxy, path):
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    c.request("GET", path, headers={"Host": HOST})
    r = c.getresponse()
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    assert proxy.stats()["truncated"] == 1


@pytest.mark.parametrize("name", sorted(App.RAW))
def test_malformed_answers(app, proxy, name):
    status, headers, body = get(proxy, "/raw?name=" + name)
    assert status == 502, (name, body)
    assert header(headers, "Content-Type") == "text/html; charset=utf-8"
    assert b"The app did not answer properly" in body
    assert header(headers, "Content-Security-Policy") == "frame-ancestors http://localhost:6080"


def test_oversized_head(app, proxy):
    status, _, body = get(proxy, "/bighead")
    assert status == 502 and b"too large" in body


def test_head_timeout(app, start):
    h = start("--head-timeout-ms", "300")
    status, _, body = get(h, "/slow?ms=1500")
    assert status == 504 and b"took too long" in body


def test_slow_answer_outlives_mhd_timeout(app, start):
    # MHD's own idle timeout (1 s) must not close a connection whose answer is on its way.
    h = start("--connection-timeout", "1")
    c = Raw(h)
    c.send(request("GET", "/slow?ms=2500"))
    assert c.response()[0::2] == (200, b"slow but sure")
    c.send(request("GET", "/cl"))
    assert c.response()[0] == 200
    c.close()


def test_acquire_error(app, start):
    h = start("--acquire-error", "The app is starting <now>")
    status, headers, body = get(h, "/cl")
    assert status == 503 and b"The app is starting &lt;now&gt;" in body
    assert header(headers, "Retry-After") == "2"
    assert app.connections == 0


def test_early_answer(app, proxy):
    # The app answers 413 without reading an 8 MB body, and closes.
    c = Raw(proxy)
    body = b"u" * (8 << 20)
    c.send(request("POST", "/early", [("Content-Length", str(len(body)))]))
    sender = threading.Thread(target=lambda: _send_quietly(c.sock, body), daemon=True)
    sender.start()
    status, _, data = c.response()
    assert (status, data) == (413, b"too much")
    c.close()


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


# ---- who may reach the app --------------------------------------------------------------


def test_read_only(app, start):
    h = start("--read-only")
    status, _, body = get(h, "/echo", "POST", body=b"change")
    assert status == 403 and b"read-only" in body
    for method in ("PUT", "DELETE", "PATCH"):
        assert get(h, "/echo", method, body=b"x")[0] == 403
    assert app.requests == []
    assert get(h, "/echo")[0] == 200
    assert get(h, "/echo", "HEAD")[0] == 200
    assert get(h, "/echo", "OPTIONS")[0] == 200


def test_foreign_origin(app, start):
    origin = "http://" + HOST
    h = start("--origin", origin)
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": "http://ui-ffff.localhost:6080"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        status, _, body = get(h, "/echo", "POST", headers, b"x")
        assert status == 403 and b"Cross-origin" in body, headers
    assert app.requests == []
    assert get(h, "/echo", "POST", {"Origin": origin}, b"x")[0] == 200
    assert get(h, "/echo", "POST", {"Sec-Fetch-Site": "same-origin"}, b"x")[0] == 200
    assert get(h, "/echo", "POST", {}, b"x")[0] == 200  # not a browser
    assert get(h, "/echo", "GET", {"Origin": "http://evil.example"})[0] == 200
    assert len(app.requests) == 4


def test_refused_large_body_answered_before_it(app, start):
    h = start("--read-only")
    c = Raw(h)
    c.send(request("PUT", "/upload", [("Content-Length", str(10 << 20))]))
    status, headers, body = c.response()  # without sending a byte of the body
    assert status == 403 and b"read-only" in body
    assert header(headers, "Connection").lower() == "close"
    assert app.requests == []


def test_refused_request_keeps_the_connection(app, start):
    h = start("--read-only")
    c = Raw(h)
    c.send(request("POST", "/echo", [("Content-Length", "3")], b"abc"))
    assert c.response()[0] == 403
    c.send(request("GET", "/cl"))
    assert c.response()[0] == 200
    c.close()


# ---- big bodies, bounded memory ------------------------------------------------------------


def test_big_transfers_in_bounded_memory(app, proxy):
    size = 200 << 20
    get(proxy, "/cl")  # threads, pool and buffers exist before the baseline
    start_rss = proxy.rss()
    c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=120)
    c.request("POST", "/upload", body=pattern(size),
              headers={"Host": HOST, "Content-Length": str(size)})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"len": size, "sha": pattern_sha(size)}
    c.request("PUT", "/upload", body=pattern(size), headers={"Host": HOST},
              encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read()) == {"len": size, "sha": pattern_sha(size)}
    for path in ("/download?size=%d" % size, "/download-chunked?size=%d" % size):
        c.request("GET", path, headers={"Host": HOST})
        r = c.getresponse()
        h, n = hashlib.sha256(), 0
        while True:
            data = r.read(1 << 20)
            if not data:
                break
            h.update(data)
            n += len(data)
        assert (r.status, n, h.hexdigest()) == (200, size, pattern_sha(size))
    growth = proxy.rss("VmHWM") - start_rss
    print(f"harness RSS {start_rss >> 10} KiB at start, peak growth {growth >> 10} KiB "
          f"over 2 x {size >> 20} MiB up and 2 x {size >> 20} MiB down")
    assert growth < 8 << 20


# ---- WebSocket --------------------------------------------------------------------------------


def ws_connect(h, path, origin=None):
    import websocket  # python3-websocket
    return websocket.create_connection(
        f"ws://127.0.0.1:{h.port}{path}", host=HOST, origin=origin or "http://" + HOST,
        subprotocols=["chat"], timeout=30)


def test_websocket_echo(app, proxy):
    ws = ws_connect(proxy, "/ws")
    assert ws.getsubprotocol() == "chat"
    assert ws.recv() == "hello from the app"  # sent by the app right behind its 101
    ws.send("ping")
    assert ws.recv() == "ping"
    big = os.urandom(300000)
    ws.send_binary(big)
    assert ws.recv() == big
    assert proxy.stats()["tunnels"] == 1
    ws.close()
    assert wait_for(lambda: proxy.stats()["tunnels"] == 0)
    seen = app.requests[-1]
    assert seen.header("Upgrade") == "websocket" and seen.header("Connection") == "Upgrade"
    assert seen.header("Sec-WebSocket-Key") and seen.header("X-Granary-User-Id") == "u-1"


def test_websocket_refused_by_app(app, proxy):
    import websocket
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_connect(proxy, "/ws-refuse")
    assert e.value.status_code == 403
    assert proxy.stats()["tunnels_total"] == 0


def test_websocket_foreign_origin(app, start):
    import websocket
    h = start("--origin", "http://" + HOST)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        ws_connect(h, "/ws", origin="http://evil.example")
    assert e.value.status_code == 403
    assert app.requests == []


def test_stop_with_open_tunnel(app, start):
    h = start()
    ws = ws_connect(h, "/ws")
    assert ws.recv() == "hello from the app"
    # The fixture stops it: proxy_tunnels_stop() ends the tunnel, then MHD stops.
