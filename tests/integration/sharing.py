"""Helpers of the sharing tests (t0440, t0441): a granaryd with users, the
grain-test app with chosen roles, and clients for the shell, share links,
grain sessions and API tokens, all over real HTTP to 127.0.0.0/8.

Every client connects from an address of its own in 127.0.0.0/8 (a
SourceAdapter): granaryd limits bad tokens per address (docs/sharing.md), and
tests that try dead links on purpose must not lock each other out.

    world = World(daemon)                 # alice (admin, owner) and USERS
    grain = world.new_grain()
    r = world.share(grain, "alice", role="viewer")   # POST .../shares
    visit = world.open_link(r.json()["url"], "bob")  # GET /s/<token> as bob
    visit.session.echo()                             # what the app sees
"""
import base64
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import requests
from requests.adapters import HTTPAdapter

from conftest import Client, Daemon, Packager, add_user, enter_session, program, wait_for

PASSWORD = "correct horse battery"
USERS = ("bob", "carol", "dave", "erin")
TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class SourceAdapter(HTTPAdapter):
    """requests' adapter whose connections leave from one loopback address."""

    def __init__(self, address, **kwargs):
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Addresses:
    """Distinct loopback addresses 127.<net>.x.y, one per call."""

    def __init__(self, net):
        self.net, self.n = net, 0

    def next(self):
        self.n += 1
        return f"127.{self.net}.{self.n // 250 % 250}.{self.n % 250 + 1}"


def bind(session, address):
    session.mount("http://", SourceAdapter(address))
    session.mount("https://", SourceAdapter(address))
    session.source_address = address
    return session


def token_of(url):
    """The token of a share URL http://HOST/s/<token>."""
    path = urllib.parse.urlsplit(url).path
    assert path.startswith("/s/"), url
    return path[3:]


def token_encodings(token):
    """The token and its 32 bytes in every encoding a careless store or log
    could hold them in (SECURITY-TESTS I: "no token in any encoding")."""
    raw = base64.urlsafe_b64decode(token + "=")
    std = base64.b64encode(raw)
    out = {
        "token": token.encode(),
        "raw": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base64": std,
        "base64-unpadded": std.rstrip(b"="),
        "url-encoded": urllib.parse.quote_from_bytes(raw, safe="").encode(),
        "url-encoded-lower": "".join(f"%{b:02x}" for b in raw).encode(),
        "token-url-encoded": "".join(f"%{b:02X}" for b in token.encode()).encode(),
    }
    return out


def grain_test_manifest_spk(packager, permissions, roles, title="Sharing test"):
    """apps/grain-test packed with packager's key and the given permissions
    and roles (the manifest's other parts unchanged)."""
    from apps import prepared
    work = pathlib.Path(tempfile.mkdtemp(prefix="sharing-", dir=packager.dir))
    definition = work / "def"
    shutil.copytree(prepared("grain-test"), definition, symlinks=True,
                    ignore=shutil.ignore_patterns(".fingerprint"))
    manifest = json.loads((definition / "spk.json").read_text())
    manifest["app"]["id"] = packager.app_id
    manifest["app"]["title"] = title
    manifest["permissions"] = list(permissions)
    manifest["roles"] = roles
    (definition / "spk.json").write_text(json.dumps(manifest, indent=2))
    out = packager.dir / f"sharing-{packager.count}.spk"
    packager.count += 1
    r = subprocess.run([program("spk"), "pack", "--quiet", str(definition), str(out)],
                       env=packager.env, capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    shutil.rmtree(work)
    return out


def start_daemon():
    """A granaryd in a fresh state directory, logging at debug level (the
    token-leak checks read everything it says). stop_daemon() ends it."""
    root = tempfile.mkdtemp(prefix="granary-sharing-")
    os.chmod(root, 0o711)
    daemon = Daemon(pathlib.Path(root) / "state", env={"GRANARY_LOG_LEVEL": "debug"})
    daemon.root = root
    return daemon


def stop_daemon(daemon):
    try:
        daemon.stop()
    finally:
        shutil.rmtree(daemon.root, ignore_errors=True)


class GrainSession:
    """A grain session host (ui-<hex>.<wildcard>), reached from its own address."""

    def __init__(self, daemon, url, address):
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname.startswith("ui-"), url
        self.daemon, self.url, self.host = daemon, url, parts.netloc
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.http = bind(requests.Session(), address)
        enter_session(self.http, daemon, url)
        self.http.headers["Host"] = self.host
        # Bearer secrets all: the host's label, the one-time key, the cookie.
        self.secrets = (parts.hostname[3:35], parts.query.split("=", 1)[1],
                        self.http.headers["Cookie"].split("=", 1)[1])

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.daemon.url + path, **kwargs)

    def echo(self):
        """GET /echo: (status, {lower-case header: [values]} the app saw, or None)."""
        r = self.request("GET", "/echo")
        if r.status_code != 200:
            return r.status_code, None
        headers = {}
        for name, value in r.json()["headers"]:
            headers.setdefault(name.lower(), []).append(value)
        return 200, headers

    def permissions(self):
        """The session's X-Granary-Permissions as a set, or the status when the
        request did not reach the app."""
        status, headers = self.echo()
        if headers is None:
            return status
        values = headers.get("x-granary-permissions", [])
        assert len(values) == 1, headers
        return {p for p in values[0].split(",") if p}

    def post(self, path="/upload", data=b"x"):
        """An unsafe request from the session's own origin (so that only the
        read-only rule can refuse it): its status."""
        return self.request("POST", path, data=data, headers={"Origin": self.origin}).status_code


class Visit:
    """The outcome of GET /s/<token>: the landing answer, and the session it led to."""

    def __init__(self, response, session):
        self.response, self.session = response, session


class World:
    """A daemon with alice (admin, owns the grains) and USERS, all signed in."""

    def __init__(self, daemon, net=20, users=USERS):
        self.daemon = daemon
        self.addresses = Addresses(net)
        add_user(daemon.state, "alice", PASSWORD, admin=True)
        for name in users:
            add_user(daemon.state, name, PASSWORD)
        self.clients = {}
        for name in ("alice", *users):
            self.clients[name] = self.client(name)
        self.tokens = []  # every token seen, for the leak checks

    def client(self, name=None):
        """A shell client from a fresh address, signed in as name (None: anonymous)."""
        c = bind(Client(self.daemon), self.addresses.next())
        if name:
            c.login(name, PASSWORD)
        return c

    def install(self, spk):
        with open(spk, "rb") as f:
            r = self.clients["alice"].post(
                "/api/apps", data=f, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code in (200, 201), r.text
        return r.json()["app"]["id"]

    def new_grain(self, app_id, title="Shared grain"):
        r = self.clients["alice"].post("/api/grains", json={"app": app_id, "title": title})
        assert r.status_code == 201, r.text
        return r.json()["grain"]["id"]

    def share(self, grain, actor, kind="shares", **fields):
        """POST /api/grains/GRAIN/{shares,tokens} as actor with fields (None left out)."""
        body = {k: v for k, v in fields.items() if v is not None}
        r = self.clients[actor].post(f"/api/grains/{grain}/{kind}", json=body)
        if r.status_code == 201:
            answer = r.json()
            self.tokens.append(token_of(answer["url"]) if kind == "shares" else answer["token"])
        return r

    def must_share(self, grain, actor, **fields):
        r = self.share(grain, actor, **fields)
        assert r.status_code == 201, r.text
        return r.json()

    def must_token(self, grain, actor, **fields):
        r = self.share(grain, actor, kind="tokens", **fields)
        assert r.status_code == 201, r.text
        return r.json()

    def open_link(self, url, name=None, client=None):
        """GET the share URL as name (None: anonymous), from a fresh address
        unless a client is given; the session when it answered 303 to one."""
        c = client or self.client(name)
        # Sent byte for byte: requests would decode %XX of unreserved characters.
        prepared = c.prepare_request(requests.Request("GET", self.daemon.url + "/"))
        prepared.url = self.daemon.url + urllib.parse.urlsplit(url).path
        r = c.send(prepared, allow_redirects=False, timeout=30)
        session = None
        location = r.headers.get("Location", "")
        if r.status_code == 303 and urllib.parse.urlsplit(location).hostname and \
                urllib.parse.urlsplit(location).hostname.startswith("ui-"):
            session = GrainSession(self.daemon, location, self.addresses.next())
            self.tokens.extend(session.secrets)
        return Visit(r, session)

    def open_grain(self, grain, name, via=None):
        """POST /api/grains/GRAIN/open as name: (status, GrainSession or None)."""
        body = {"via": via} if via is not None else None
        r = self.clients[name].post(f"/api/grains/{grain}/open", json=body)
        if r.status_code != 201:
            return r.status_code, None
        session = GrainSession(self.daemon, r.json()["url"], self.addresses.next())
        self.tokens.extend(session.secrets)
        return 201, session

    def access(self, grain, name):
        """The access object of grain in name's GET /api/grains, None when absent."""
        r = self.clients[name].get("/api/grains")
        assert r.status_code == 200, r.text
        for g in r.json()["grains"]:
            if g["id"] == grain:
                return g.get("access", {})
        return None

    def shares(self, grain, name="alice"):
        r = self.clients[name].get(f"/api/grains/{grain}/shares")
        assert r.status_code == 200, r.text
        return r.json()["shares"]

    def edge(self, grain, edge_id, name="alice"):
        for s in self.shares(grain, name):
            if s["id"] == edge_id:
                return s
        raise AssertionError(f"no edge #{edge_id} in {name}'s view of {grain}")

    def grant_of(self, grain, link_id, holder):
        """The grant holder got from link link_id (alice's view), or None."""
        for s in self.shares(grain):
            if s["kind"] == "grant" and s["parent"] == link_id and s["holder"] == holder:
                return s
        return None

    def patch(self, grain, actor, edge_id, role):
        return self.clients[actor].patch(f"/api/grains/{grain}/shares/{edge_id}",
                                         json={"role": role})

    def revoke(self, grain, actor, edge_id):
        return self.clients[actor].delete(f"/api/grains/{grain}/shares/{edge_id}")

    def audit(self, grain, name="alice"):
        r = self.clients[name].get(f"/api/grains/{grain}/audit")
        assert r.status_code == 200, r.text
        return r.json()["events"]

    def api(self, token, method="GET", path="/echo", address=None, **kwargs):
        """A request to the api. host with Authorization: Bearer token."""
        http = bind(requests.Session(), address or self.addresses.next())
        headers = {"Host": f"api.localhost:{self.daemon.port}", **kwargs.pop("headers", {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return http.request(method, self.daemon.url + path, headers=headers, timeout=60,
                            allow_redirects=False, **kwargs)


def connect_from(address, port):
    """A TCP socket to 127.0.0.1:port leaving from address."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(address, 0))
    return s


def app_permissions(headers):
    """X-Granary-Permissions of an /echo answer's header map, as a set."""
    values = headers.get("x-granary-permissions", [])
    assert len(values) == 1, headers
    return {p for p in values[0].split(",") if p}


__all__ = ["PASSWORD", "USERS", "TOKEN_CHARS", "World", "GrainSession", "Visit", "Packager",
           "start_daemon", "stop_daemon", "grain_test_manifest_spk", "token_of",
           "token_encodings", "connect_from", "app_permissions", "wait_for", "bind"]
