"""The proxy engine (supervisor/front_proxy.c) over real sockets, both ways.

build/tests/proxy-harness runs the engine the way front does (libmicrohttpd,
a thread per connection, upgrades allowed) with a keep-alive pool of its
own, in front of App: a raw HTTP/1.1 server in this process whose answers
each test scripts by path, and which records what it was sent and how many
connections it got. Clients speak raw HTTP where the bytes matter
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
                if req.path != "/early":
                    buf = self._read_body(conn, buf, req)
                with self.lock:
                    self.requests.append(req)
                if state["drop_next"]:
                    return  # read it, never answer: a keep-alive close race
                handler = getattr(self, "do_" + req.path.strip("/").replace("-", "_"), None)
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
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B9B").encode()).digest()).decode()
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
