"""Sharing by capability URL (issue 7, docs/sharing.md, docs/api.md Sharing),
end to end through real HTTP to granaryd: share links and their landing,
anonymous and signed-in visitors, grants, read-only roles, attenuation,
revocation down the tree (sessions, keep-alive connections, WebSockets), API
tokens on the api. host, the audit log, the CLI, and SECURITY-TESTS.md group
I: token shape and uniqueness, no token in the database or any log, one 404
for every bad token, expiry, robots.txt, and 429 for floods of bad tokens.

One granaryd serves the whole module (logging at debug level, so that the
leak checks read everything it says); each test makes its own grain. Every
client leaves from a loopback address of its own (sharing.py), so that tests
which try bad tokens on purpose stay under the per-address limit, except the
flood test, which is last."""
import base64
import http.client
import json
import os
import re
import sqlite3
import time
import urllib.parse

import pytest

from apps import build_app
from conftest import program, run
from sharing import (TOKEN_CHARS, World, connect_from, start_daemon, stop_daemon, token_encodings,
                     token_of, wait_for)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def world():
    daemon = start_daemon()
    try:
        w = World(daemon, net=40)
        # apps/grain-test: editor (read, write; default), viewer (read;
        # read-only), admin (read, write, admin).
        w.app = w.install(build_app("grain-test"))
        yield w
    finally:
        stop_daemon(daemon)


@pytest.fixture
def grain(world):
    return world.new_grain(world.app)


def shell_host(world):
    return f"localhost:{world.daemon.port}"


def bogus_token():
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def not_found_page(world, token=None):
    """What a never-issued token gets: the reference for every bad token."""
    v = world.open_link(f"/s/{token or bogus_token()}")
    assert v.response.status_code == 404, v.response.text
    assert v.session is None
    return v.response


# ---- the landing ---------------------------------------------------------------------


def test_a_link_lands_on_a_token_free_session(world, grain):
    answer = world.must_share(grain, "alice", role="viewer", label="for the team")
    url = answer["url"]
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == shell_host(world), url
    assert re.fullmatch(r"/s/[A-Za-z0-9_-]{43}", parts.path), url
    share = answer["share"]
    assert share["kind"] == "link" and share["parent"] is None, share
    assert share["role"] == "viewer" and share["permissions"] == ["read"], share
    assert share["readOnly"] is True and share["label"] == "for the team", share
    assert share["holder"] is None and share["createdBy"] == "alice", share
    assert share["expiresAt"] is None and share["revokedAt"] is None, share
    assert share["reshare"] is True and share["loginRequired"] is False, share
    assert share["effective"] == {"active": True, "permissions": ["read"], "readOnly": True}
    token = token_of(url)
    assert token not in json.dumps(share)

    visit = world.open_link(url)
    r = visit.response
    assert r.status_code == 303, (r.status_code, r.text)
    assert visit.session, r.headers
    location = r.headers["Location"]
    assert token not in location and token[:16] not in location, location
    # The session's one-time enter URL, which sets its cookie and leads to "/".
    assert re.fullmatch(r"http://ui-[0-9a-f]{32}\.localhost:%d/\.granary/enter\?k=[0-9a-f]{32}"
                        % world.daemon.port, location), location
    # Browsers apply the last policy they know (a list may come from two fields).
    policies = [p.strip() for p in r.headers.get("Referrer-Policy", "").split(",")]
    assert policies[-1] == "no-referrer", r.headers
    assert "no-store" in r.headers.get("Cache-Control", ""), r.headers

    status, seen = visit.session.echo()
    assert status == 200
    assert seen["x-granary-permissions"] == ["read"], seen
    assert "x-granary-username" not in seen and "x-granary-user-id" not in seen, seen
    assert re.fullmatch(r"[0-9a-f]{32}", seen["x-granary-session-id"][0]), seen
    # The token reaches the app in no header (no Referer, no Cookie).
    assert token not in json.dumps(seen)

    # Each visit is a session of its own.
    again = world.open_link(url)
    assert again.session and again.session.host != visit.session.host


def test_read_only_roles_are_enforced_by_granary(world, grain):
    session = world.open_link(world.must_share(grain, "alice", role="viewer")["url"]).session
    assert session.request("GET", "/").status_code == 200
    assert session.request("HEAD", "/").status_code == 200
    assert session.request("OPTIONS", "/echo").status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = session.request(method, "/file?write=forbidden&data=x",
                            headers={"Origin": session.origin})
        assert r.status_code == 403, (method, r.status_code, r.text)
    # Refused by Granary: the app never saw them.
    assert session.request("GET", "/file?read=forbidden").status_code == 404
    # An editor's session on the same grain writes.
    editor = world.open_link(world.must_share(grain, "alice", role="editor")["url"]).session
    assert editor.post("/file?write=allowed&data=x") == 200
    assert session.request("GET", "/file?read=allowed").text == "x"


def test_signed_in_visitors_get_a_grant_and_see_the_grain(world, grain):
    link = world.must_share(grain, "alice", role="editor")
    assert world.access(grain, "bob") is None
    bob = world.clients["bob"]
    visit = world.open_link(link["url"], client=bob)
    assert visit.response.status_code == 303 and visit.session, visit.response.text
    status, seen = visit.session.echo()
    assert status == 200
    assert seen["x-granary-username"] == ["bob"], seen
    assert seen["x-granary-permissions"] == ["read,write"], seen
    bob_id = seen["x-granary-user-id"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", bob_id)
    assert visit.session.post() == 200

    grant = world.grant_of(grain, link["share"]["id"], "bob")
    assert grant, world.shares(grain)
    assert grant["kind"] == "grant" and grant["role"] == "editor", grant
    assert grant["effective"]["active"] is True
    access = world.access(grain, "bob")
    want = {"owner": False, "role": "editor", "permissions": ["read", "write"],
            "readOnly": False, "via": grant["id"]}
    assert {k: access.get(k) for k in want} == want, access
    assert world.access(grain, "alice")["owner"] is True

    # One grant per (link, person): opening the link again reuses it.
    again = world.open_link(link["url"], client=bob)
    assert again.session and again.session.host != visit.session.host
    grants = [s for s in world.shares(grain) if s["kind"] == "grant"]
    assert [g["id"] for g in grants] == [grant["id"]], grants
    # bob opens the grain from his list later, without the link.
    status, session = world.open_grain(grain, "bob")
    assert status == 201, status
    status, seen = session.echo()
    assert seen["x-granary-user-id"] == [bob_id] and seen["x-granary-username"] == ["bob"]
    assert seen["x-granary-permissions"] == ["read,write"]
    # Someone who holds nothing does not see it and cannot open it.
    assert world.access(grain, "carol") is None
    assert world.open_grain(grain, "carol")[0] == 404

    # The owner opening her own link gets an owner session, and no grant.
    mine = world.open_link(link["url"], client=world.clients["alice"])
    status, seen = mine.session.echo()
    assert seen["x-granary-username"] == ["alice"], seen
    assert seen["x-granary-permissions"] == ["read,write,admin"], seen
    assert seen["x-granary-user-id"] != [bob_id]
    assert not [s for s in world.shares(grain) if s["kind"] == "grant" and s["holder"] == "alice"]


def test_login_required_links_refuse_anonymous_visitors(world, grain):
    link = world.must_share(grain, "alice", role="viewer", loginRequired=True)
    assert link["share"]["loginRequired"] is True
    visit = world.open_link(link["url"])
    assert visit.session is None, visit.response.headers
    assert token_of(link["url"]) not in visit.response.headers.get("Location", "")
    visit = world.open_link(link["url"], client=world.clients["carol"])
    assert visit.session, (visit.response.status_code, visit.response.text)
    assert visit.session.permissions() == {"read"}


def test_a_revoked_grant_is_not_revived_by_the_link(world, grain):
    """docs/sharing.md: one grant per (link, person), *reused* when the person
    opens the link again; so a revoked grant stays revoked, and the person
    cannot get back in through the link while it lives (our reading)."""
    link = world.must_share(grain, "alice", role="editor")
    dave = world.clients["dave"]
    assert world.open_link(link["url"], client=dave).session
    grant = world.grant_of(grain, link["share"]["id"], "dave")
    assert world.revoke(grain, "alice", grant["id"]).status_code == 200
    assert world.access(grain, "dave") is None
    visit = world.open_link(link["url"], client=dave)
    if visit.session:
        assert visit.session.echo()[0] == 404
    assert world.access(grain, "dave") is None
    # Anonymous visitors still get in through the link.
    assert world.open_link(link["url"]).session.permissions() == {"read", "write"}


# ---- tokens: shape, uniqueness, storage ------------------------------------------------


def decode_token(token):
    raw = base64.urlsafe_b64decode(token + "=")
    assert len(raw) == 32
    # Canonical: re-encoding gives the same characters (no stray low bits).
    assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == token, token
    return raw


def database_bytes(world):
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = os.path.join(world.daemon.state, "granary.sqlite3" + suffix)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data += f.read() + b"\0"
    return data


def text_windows(data, width=20):
    """Every width-byte window of the runs of token-like characters in data:
    the text encodings of a token are found through these in O(1) each."""
    windows = set()
    for m in re.finditer(rb"[A-Za-z0-9+/=_%%-]{%d,}" % width, data):
        run_ = m.group()
        for i in range(len(run_) - width + 1):
            windows.add(run_[i:i + width])
    return windows


def leaks(data, tokens):
    """[(token, encoding)] for every token found in data in any encoding."""
    windows = text_windows(data)
    found = []
    for token in tokens:
        for name, encoded in token_encodings(token).items():
            if name == "raw":
                hit = encoded in data
            else:
                hit = encoded[:20] in windows and encoded in data
            if hit:
                found.append((token[:6] + "…", name))
    return found


def test_tokens_are_unique_43_character_base64url(world):
    grain = world.new_grain(world.app, title="Many links")
    tokens = []
    for i in range(1000):
        answer = world.must_share(grain, "alice", role="viewer", label=f"marker-label-{i:04}")
        tokens.append(token_of(answer["url"]))
        tokens.append(world.must_token(grain, "alice", role="viewer")["token"])
    for t in tokens:
        assert len(t) == 43 and set(t) <= TOKEN_CHARS, t
        decode_token(t)
    assert len(set(tokens)) == len(tokens)
    # No shared prefixes either: 96 random bits never collide in 2000 draws.
    assert len({t[:16] for t in tokens}) == len(tokens)
    # Every character position takes many values (a counter or a clock would not).
    for pos in range(42):
        assert len({t[pos] for t in tokens}) > 32, pos

    data = database_bytes(world)
    assert b"marker-label-0999" in data  # the right files, read whole
    assert leaks(data, tokens) == []


# ---- bad tokens ------------------------------------------------------------------------


def variants(token):
    """Near misses of a valid token, each of which must get the plain 404."""
    v = {}
    for pos in (0, 21, 41):
        c = token[pos]
        v[f"flip@{pos}"] = token[:pos] + ALPHABET[(ALPHABET.index(c) + 1) % 64] + token[pos + 1:]
    # The last character carries 4 bits and 2 unused ones: a lax decoder maps
    # these to the very same 32 bytes.
    last = ALPHABET.index(token[-1])
    for low in (1, 2, 3):
        v[f"unused-bits-{low}"] = token[:-1] + ALPHABET[last ^ low]
    v["truncated-1"] = token[:-1]
    v["truncated-half"] = token[:21]
    v["extended-A"] = token + "A"
    v["extended-padding"] = token + "="
    v["extended-long"] = token + "A" * 200
    letters = [i for i, c in enumerate(token) if c.isalpha()]
    v["re-cased-all"] = token.swapcase()
    v["re-cased-one"] = token[:letters[0]] + token[letters[0]].swapcase() + token[letters[0] + 1:]
    v["percent-one"] = "%%%02X" % ord(token[0]) + token[1:]
    v["percent-all"] = "".join("%%%02X" % ord(c) for c in token)
    v["percent-lower"] = token[:5] + "%%%02x" % ord(token[5]) + token[5 + 1:]
    v["standard-alphabet"] = token.replace("-", "+").replace("_", "/")
    v["nul"] = token[:42] + "%00"
    return {k: t for k, t in v.items() if t != token}


def test_every_bad_token_gets_the_same_404(world, grain):
    # A token with '-' or '_' in it, so that the standard alphabet differs.
    for _ in range(20):
        link = world.must_share(grain, "alice", role="viewer")
        token = token_of(link["url"])
        if "-" in token or "_" in token:
            break
    reference = not_found_page(world)
    assert token not in reference.text
    different = []
    for name, bad in variants(token).items():
        v = world.open_link(f"/s/{bad}")
        r = v.response
        assert bad not in r.text and token not in r.text, name
        if v.session or r.status_code != 404 or r.text != reference.text or \
                r.headers.get("Content-Type") != reference.headers.get("Content-Type"):
            different.append((name, r.status_code, r.headers.get("Content-Type"), r.text[:60]))
    assert different == [], different
    # And the real one still works.
    assert world.open_link(link["url"]).session


def test_bad_share_requests_change_nothing(world, grain):
    """Like every endpoint (docs/api.md): bad_json for what does not parse,
    bad_request for fields that are wrong; no edge is made."""
    before = len(world.shares(grain))
    client = world.clients["alice"]
    for kind, body, code in (
            ("shares", b"{", "bad_json"),
            ("shares", b'{"role":"viewer","role":"editor"}', "bad_json"),
            ("shares", b'{"role":5}', "bad_request"),
            ("shares", b'{"role":"viewer","nope":1}', "bad_request"),
            ("shares", b'{"role":"viewer","via":0}', "bad_request"),
            ("shares", b'["viewer"]', "bad_request"),
            ("tokens", b'{"role":"viewer","reshare":false}', "bad_request"),
            ("tokens", b'{"role":"viewer","loginRequired":true}', "bad_request")):
        r = client.post(f"/api/grains/{grain}/{kind}", data=body,
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == code, (body, r.text)
    edge = world.must_share(grain, "alice", role="viewer")["share"]["id"]
    r = client.patch(f"/api/grains/{grain}/shares/{edge}", data=b'{"role":true}',
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
    assert len(world.shares(grain)) == before + 1


def test_expired_links_fail_and_end_what_came_from_them(world, grain):
    r = world.share(grain, "alice", role="viewer", expiresIn=0)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_expiry", r.text
    r = world.share(grain, "alice", role="viewer", expiresIn=11 * 366 * 86400)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_expiry", r.text
    r = world.share(grain, "alice", role="viewer", expiresIn=10 * 365 * 86400)
    assert r.status_code == 201, r.text

    reference = not_found_page(world)
    link = world.must_share(grain, "alice", role="editor", expiresIn=3)
    share = link["share"]
    assert share["expiresAt"] - share["createdAt"] == 3, share
    bob = world.open_link(link["url"], client=world.clients["bob"]).session
    anon = world.open_link(link["url"]).session
    assert bob.permissions() == {"read", "write"} and anon.permissions() == {"read", "write"}
    grant = world.grant_of(grain, share["id"], "bob")
    assert world.access(grain, "bob")["via"] == grant["id"]
    # Wait out the expiry (whole seconds on the server's clock, plus one).
    while time.time() < share["expiresAt"] + 1.2:
        time.sleep(0.2)
    v = world.open_link(link["url"])
    assert v.session is None and v.response.status_code == 404
    assert v.response.text == reference.text
    assert world.open_link(link["url"], client=world.clients["bob"]).session is None
    assert wait_for(lambda: bob.echo()[0] == 404 and anon.echo()[0] == 404, timeout=10)
    assert world.access(grain, "bob") is None
    edge = world.edge(grain, share["id"])
    assert edge["effective"]["active"] is False and edge["revokedAt"] is None, edge
    assert world.edge(grain, grant["id"])["effective"]["active"] is False


def keep_alive_get(conn, session):
    conn.request("GET", "/echo", headers={"Host": session.host,
                                          "Cookie": session.http.headers["Cookie"]})
    r = conn.getresponse()
    r.read()
    return r.status


def test_revoking_a_link_cuts_everything_derived_from_it(world, grain):
    websocket = pytest.importorskip("websocket")
    link = world.must_share(grain, "alice", role="editor", label="for bob")
    bob = world.open_link(link["url"], client=world.clients["bob"]).session
    bob_grant = world.grant_of(grain, link["share"]["id"], "bob")
    # bob passes on a viewer link and a token; carol and a stranger open it.
    bobs = world.must_share(grain, "bob", role="viewer", label="from bob")
    assert bobs["share"]["parent"] == bob_grant["id"], bobs["share"]
    bobs_token = world.must_token(grain, "bob", role="viewer")["token"]
    token_before = world.api(bobs_token).status_code
    carol = world.open_link(bobs["url"], client=world.clients["carol"]).session
    stranger = world.open_link(bobs["url"]).session
    assert carol.permissions() == {"read"} and stranger.permissions() == {"read"}
    assert world.access(grain, "carol")["permissions"] == ["read"]
    # A keep-alive connection and a WebSocket on carol's session.
    address = world.addresses.next()
    conn = http.client.HTTPConnection("127.0.0.1", world.daemon.port, timeout=30,
                                      source_address=(address, 0))
    assert keep_alive_get(conn, carol) == 200
    ws = websocket.create_connection(f"ws://127.0.0.1:{world.daemon.port}/ws", host=carol.host,
                                     origin=carol.origin, timeout=30,
                                     cookie=carol.http.headers["Cookie"],
                                     socket=connect_from(world.addresses.next(),
                                                         world.daemon.port))
    ws.send("before")
    assert ws.recv() == "before"

    r = world.revoke(grain, "alice", link["share"]["id"])
    assert r.status_code == 200, r.text
    assert r.json()["share"]["revokedAt"] is not None
    revoked_at = time.monotonic()
    # The WebSocket is closed by Granary (recv returns the close, or the
    # connection ends); the time limit only bounds a failing run.
    try:
        while True:
            frame = ws.recv()
            if frame in ("", b"", None):
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        pass
    except websocket.WebSocketTimeoutException:
        pytest.fail("the WebSocket stayed open 30 s after its grain was revoked")
    ws_closed_after = time.monotonic() - revoked_at
    print(f"WebSocket closed {ws_closed_after:.3f} s after the revocation")
    ws.close()

    for s in (bob, carol, stranger):
        assert s.echo()[0] == 404, s.host
    try:
        assert keep_alive_get(conn, carol) == 404
    except (http.client.RemoteDisconnected, ConnectionError):
        pytest.fail("the keep-alive connection was closed instead of getting a 404")
    conn.close()
    for name in ("bob", "carol"):
        assert world.access(grain, name) is None, name
        assert world.open_grain(grain, name)[0] == 404
    assert world.open_link(bobs["url"]).session is None
    assert world.open_link(link["url"]).session is None
    edges = {s["id"]: s for s in world.shares(grain)}
    assert edges[link["share"]["id"]]["revokedAt"] is not None
    for derived in (bob_grant["id"], bobs["share"]["id"]):
        assert edges[derived]["effective"]["active"] is False, edges[derived]
    # Revoking again answers the same.
    r = world.revoke(grain, "alice", link["share"]["id"])
    assert r.status_code == 200 and r.json()["share"]["revokedAt"] is not None
    # Other links of the grain live on.
    assert world.open_link(world.must_share(grain, "alice", role="viewer")["url"]).session
    # bob's token died with his grant.
    assert (token_before, world.api(bobs_token).status_code) == (200, 401)


def test_a_holder_drops_a_grant_and_a_maker_revokes_below_it(world, grain):
    link = world.must_share(grain, "alice", role="editor")
    assert world.open_link(link["url"], client=world.clients["bob"]).session
    bob_grant = world.grant_of(grain, link["share"]["id"], "bob")
    bobs = world.must_share(grain, "bob", role="viewer")
    carol = world.open_link(bobs["url"], client=world.clients["carol"]).session
    carol_grant = world.grant_of(grain, bobs["share"]["id"], "carol")
    # Someone unrelated can neither see nor cut bob's edges.
    r = world.revoke(grain, "dave", bobs["share"]["id"])
    assert r.status_code in (403, 404), r.text
    assert carol.permissions() == {"read"}
    # bob, who made the link, cuts carol's grant below it.
    assert world.revoke(grain, "bob", carol_grant["id"]).status_code == 200
    assert carol.echo()[0] == 404 and world.access(grain, "carol") is None
    # carol cannot drop bob's grant; bob drops his own.
    assert world.revoke(grain, "carol", bob_grant["id"]).status_code in (403, 404)
    assert world.revoke(grain, "bob", bob_grant["id"]).status_code == 200
    assert world.access(grain, "bob") is None
    assert world.open_link(bobs["url"]).session is None


# ---- attenuation -----------------------------------------------------------------------


def test_a_downgrade_narrows_everything_derived_at_once(world, grain):
    link = world.must_share(grain, "alice", role="editor", label="for bob")
    bob = world.open_link(link["url"], client=world.clients["bob"]).session
    bob_grant = world.grant_of(grain, link["share"]["id"], "bob")
    # bob re-shares: a viewer link (less than he holds) and an editor link (as much).
    viewer = world.must_share(grain, "bob", role="viewer")
    editor = world.must_share(grain, "bob", role="editor")
    for answer in (viewer, editor):
        assert answer["share"]["parent"] == bob_grant["id"]
        assert answer["share"]["createdBy"] == "bob"
    carol = world.open_link(editor["url"], client=world.clients["carol"]).session
    anon = world.open_link(viewer["url"]).session
    assert bob.permissions() == {"read", "write"} and bob.post() == 200
    assert carol.permissions() == {"read", "write"} and carol.post() == 200
    assert anon.permissions() == {"read"} and anon.post() == 403
    # Never more than he holds.
    r = world.share(grain, "bob", role="admin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_exceeds_yours", r.text
    r = world.share(grain, "bob", kind="tokens", role="admin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_exceeds_yours", r.text
    r = world.patch(grain, "bob", viewer["share"]["id"], "admin")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_exceeds_yours", r.text

    # alice downgrades bob's link: bob, his links and their sessions narrow at once.
    r = world.patch(grain, "alice", link["share"]["id"], "viewer")
    assert r.status_code == 200, r.text
    assert r.json()["share"]["role"] == "viewer"
    assert r.json()["share"]["effective"] == {"active": True, "permissions": ["read"],
                                              "readOnly": True}
    for s in (bob, carol, anon):
        assert s.permissions() == {"read"}, s.host
        assert s.post() == 403, s.host
    access = world.access(grain, "bob")
    assert access["permissions"] == ["read"] and access["readOnly"] is True, access
    assert world.access(grain, "carol")["permissions"] == ["read"]
    edges = {s["id"]: s for s in world.shares(grain)}
    assert edges[editor["share"]["id"]]["role"] == "editor"
    assert edges[editor["share"]["id"]]["effective"] == {
        "active": True, "permissions": ["read"], "readOnly": True}
    # A read-only holder makes no writable link.
    r = world.share(grain, "bob", role="editor")
    assert r.status_code == 403 and r.json()["error"]["code"] == "role_exceeds_yours", r.text
    assert world.share(grain, "bob", role="viewer").status_code == 201
    # And back up: everything derived widens again (the edges' own roles never changed).
    assert world.patch(grain, "alice", link["share"]["id"], "editor").status_code == 200
    assert bob.permissions() == {"read", "write"} and carol.permissions() == {"read", "write"}
    assert anon.permissions() == {"read"}
    # The owner may change any edge, even to more than its maker holds; it still
    # grants no more than the maker.
    r = world.patch(grain, "alice", viewer["share"]["id"], "admin")
    assert r.status_code == 200, r.text
    assert set(r.json()["share"]["effective"]["permissions"]) == {"read", "write"}
    assert anon.permissions() == {"read", "write"}
    r = world.patch(grain, "alice", viewer["share"]["id"], "no-such-role")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_role", r.text
    r = world.patch(grain, "alice", 10 ** 9, "viewer")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_share", r.text


def test_no_reshare_links_cannot_be_passed_on(world, grain):
    link = world.must_share(grain, "alice", role="editor", reshare=False)
    assert link["share"]["reshare"] is False
    assert world.open_link(link["url"], client=world.clients["dave"]).session
    for kind in ("shares", "tokens"):
        r = world.share(grain, "dave", kind=kind, role="viewer")
        assert r.status_code == 403 and r.json()["error"]["code"] == "no_reshare", r.text
    # Through a re-sharable link the same person may (via names the edge).
    other = world.must_share(grain, "alice", role="viewer")
    assert world.open_link(other["url"], client=world.clients["dave"]).session
    other_grant = world.grant_of(grain, other["share"]["id"], "dave")
    r = world.share(grain, "dave", role="viewer", via=other_grant["id"])
    assert r.status_code == 201, r.text
    assert r.json()["share"]["parent"] == other_grant["id"]
    no_grant = world.grant_of(grain, link["share"]["id"], "dave")
    r = world.share(grain, "dave", role="viewer", via=no_grant["id"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_reshare", r.text
    # Below a no-reshare edge the whole chain is barred: bob's link for carol
    # forbids re-sharing, so carol cannot, though bob's own chain allows it.
    world.open_link(other["url"], client=world.clients["bob"])
    bobs = world.must_share(grain, "bob", role="viewer", reshare=False)
    assert world.open_link(bobs["url"], client=world.clients["carol"]).session
    r = world.share(grain, "carol", role="viewer")
    assert r.status_code == 403 and r.json()["error"]["code"] == "no_reshare", r.text
    assert world.share(grain, "bob", role="viewer").status_code == 201
    r = world.share(grain, "alice", role="nobody")
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_role", r.text
    # Someone who holds nothing cannot share at all.
    r = world.share(grain, "erin", role="viewer")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_grain", r.text


def test_others_see_only_their_part_of_the_tree(world, grain):
    link = world.must_share(grain, "alice", role="editor")
    other = world.must_share(grain, "alice", role="viewer", label="not for bob")
    world.open_link(link["url"], client=world.clients["bob"])
    bob_grant = world.grant_of(grain, link["share"]["id"], "bob")
    bobs = world.must_share(grain, "bob", role="viewer")
    world.open_link(bobs["url"], client=world.clients["carol"])
    carol_grant = world.grant_of(grain, bobs["share"]["id"], "carol")
    world.open_link(other["url"], client=world.clients["erin"])
    seen = {s["id"] for s in world.shares(grain, "bob")}
    assert seen == {bob_grant["id"], bobs["share"]["id"], carol_grant["id"]}, seen
    seen = {s["id"] for s in world.shares(grain, "carol")}
    assert seen == {carol_grant["id"]}, seen
    alls = {s["id"] for s in world.shares(grain)}
    assert {link["share"]["id"], other["share"]["id"], bob_grant["id"]} <= alls
    r = world.clients["dave"].get(f"/api/grains/{grain}/shares")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_grain", r.text
    for name in ("bob", "dave"):
        r = world.clients[name].get(f"/api/grains/{grain}/audit")
        assert r.status_code in (403, 404), (name, r.text)


# ---- API tokens ------------------------------------------------------------------------


def test_api_tokens_on_the_api_host(world, grain):
    viewer = world.must_token(grain, "alice", role="viewer", label="backup script")
    token = viewer["token"]
    assert len(token) == 43 and set(token) <= TOKEN_CHARS
    assert viewer["share"]["kind"] == "token" and viewer["share"]["role"] == "viewer"
    assert token not in json.dumps(viewer["share"])
    r = world.api(token, headers={"Cookie": "granary_session=x; app=1"})
    assert r.status_code == 200, r.text
    assert "sandbox" in r.headers.get("Content-Security-Policy", ""), r.headers
    assert "authorization" in r.headers.get("Vary", "").lower(), r.headers
    assert "Set-Cookie" not in r.headers
    seen = {}
    for name, value in r.json()["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    assert seen["x-granary-permissions"] == ["read"], seen
    assert seen["x-granary-username"] == ["alice"], seen  # its holder: who made it
    assert "authorization" not in seen and token not in json.dumps(seen), seen
    assert "granary_session" not in json.dumps(seen.get("cookie", [])), seen
    # The app sets cookies; none reaches a token's client.
    r = world.api(token, path="/cookie")
    assert r.status_code == 200 and "Set-Cookie" not in r.headers, r.headers
    assert "authorization" in r.headers.get("Vary", "").lower()
    # Read-only: only GET, HEAD, OPTIONS.
    assert world.api(token, "HEAD", "/").status_code == 200
    assert world.api(token, "POST", "/upload", data=b"x").status_code == 403
    editor = world.must_token(grain, "alice", role="editor")["token"]
    r = world.api(editor, "POST", "/upload", data=b"xyz")
    assert r.status_code == 200 and r.json()["bytes"] == 3, r.text

    # Missing, malformed, unknown, revoked, expired: one 401.
    short = world.must_token(grain, "alice", role="viewer", expiresIn=1)
    revoked = world.must_token(grain, "alice", role="viewer")
    assert world.revoke(grain, "alice", revoked["share"]["id"]).status_code == 200
    while time.time() < short["share"]["expiresAt"] + 1.2:
        time.sleep(0.2)
    answers = {}
    for name, bad in (("missing", None), ("unknown", bogus_token()), ("short", token[:-1]),
                      ("flipped", variants(token)["flip@21"]), ("revoked", revoked["token"]),
                      ("expired", short["token"]), ("garbage", "%%%")):
        r = world.api(bad)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (name, r.headers)
        assert "Set-Cookie" not in r.headers, name
        answers[name] = r.text
    assert len(set(answers.values())) == 1, answers
    # A token on the shell's host or a session host is not a way in.
    r = world.clients["erin"].get("/api/grains", headers={"Authorization": f"Bearer {token}"})
    assert all(g["id"] != grain for g in r.json().get("grains", [])), r.text


def test_robots_txt_disallows_share_links(world):
    c = world.client()
    r = c.get("/robots.txt")
    assert r.status_code == 200, r.text
    lines = [line.strip() for line in r.text.splitlines()]
    assert "User-agent: *" in lines and "Disallow: /s/" in lines, r.text


# ---- the audit log ---------------------------------------------------------------------


def test_the_audit_log_tells_what_happened(world, grain):
    link = world.must_share(grain, "alice", role="editor", label="audited")
    link_id = link["share"]["id"]
    world.open_link(link["url"])
    world.open_link(link["url"], client=world.clients["bob"])
    bob_grant = world.grant_of(grain, link_id, "bob")
    bobs = world.must_share(grain, "bob", role="viewer")
    token = world.must_token(grain, "alice", role="viewer")
    short = world.must_share(grain, "alice", role="viewer", expiresIn=1)
    assert world.revoke(grain, "alice", bobs["share"]["id"]).status_code == 200

    def has(action, **want):
        for e in world.audit(grain):
            if e["action"] != action:
                continue
            detail = e.get("detail") or {}
            if all((e.get(k) if k == "user" else detail.get(k)) == v for k, v in want.items()):
                return True
        return False

    assert has("share.created", user="alice", share=link_id)
    opened = [e for e in world.audit(grain) if e["action"] == "share.opened"]
    assert any(e["user"] is None for e in opened), opened
    assert any(e["user"] == "bob" and link_id in (e["detail"].get("share"),
                                                  e["detail"].get("via")) for e in opened), opened
    assert has("share.reshared", user="bob", share=bobs["share"]["id"])
    assert has("token.created", user="alice", share=token["share"]["id"])
    assert has("share.revoked", user="alice", share=bobs["share"]["id"])
    assert bob_grant  # (the grant is what bob opened through)

    # The expiry is noted without anyone asking (no request meanwhile): read the database.
    def expiry_noted():
        db = sqlite3.connect(f"file:{world.daemon.state}/granary.sqlite3?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM audit WHERE grain_id = ? AND action = "
                              "'share.expired' AND json_extract(detail, '$.share') = ?",
                              (grain, short["share"]["id"])).fetchone()[0] == 1
        finally:
            db.close()
    assert wait_for(expiry_noted, timeout=15, interval=0.2)
    assert has("share.expired", share=short["share"]["id"]), world.audit(grain)
    events = world.audit(grain)
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    text = json.dumps(events)
    for t in (token_of(link["url"]), token_of(bobs["url"]), token["token"], token_of(short["url"])):
        assert t not in text


# ---- the CLI ---------------------------------------------------------------------------


def granary(world, *args):
    return run([program("granary"), "--state", world.daemon.state, *args])


def test_the_cli_shares_lists_and_revokes(world, grain):
    r = granary(world, "share", grain, "--role", "viewer", "--expires", "1h", "--label",
                "from the CLI")
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert re.fullmatch(r"http://localhost:%d/s/[A-Za-z0-9_-]{43}" % world.daemon.port, url), url
    world.tokens.append(token_of(url))
    visit = world.open_link(url)
    assert visit.session and visit.session.permissions() == {"read"}
    assert world.open_link(url, client=world.clients["bob"]).session

    r = granary(world, "--json", "share", grain, "--role", "editor", "--expires", "7d",
                "--no-reshare", "--login-required")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    world.tokens.append(token_of(answer["url"]))
    share = answer["share"]
    assert share["role"] == "editor" and share["reshare"] is False, share
    assert share["loginRequired"] is True, share
    assert share["expiresAt"] - share["createdAt"] == 7 * 86400, share
    assert world.open_link(answer["url"]).session is None

    r = granary(world, "token", grain, "--role", "viewer", "--label", "cli token")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    world.tokens.append(token)
    assert len(token) == 43 and set(token) <= TOKEN_CHARS, token

    r = granary(world, "share", "list", grain)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    edges = {s["id"]: s for s in world.shares(grain)}
    first = next(s for s in edges.values() if s.get("label") == "from the CLI")
    bob_grant = world.grant_of(grain, first["id"], "bob")
    line = next(x for x in lines if x.startswith(f"#{first['id']} "))
    assert "link" in line and "viewer" in line and '"from the CLI"' in line, line
    assert "expires" in line and "active" in line, line
    child = next(x for x in lines if x.strip().startswith(f"#{bob_grant['id']} "))
    assert child.startswith("  #") and "grant" in child and "bob" in child, (child, lines)
    assert lines.index(child) > lines.index(line)
    assert any("token" in x and "cli token" in x for x in lines), lines
    r = granary(world, "--json", "share", "list", grain)
    assert {s["id"] for s in json.loads(r.stdout)} == set(edges)

    r = granary(world, "share", "revoke", grain, str(first["id"]))
    assert r.returncode == 0, r.stderr
    assert visit.session.echo()[0] == 404
    r = granary(world, "share", "list", grain)
    line = next(x for x in r.stdout.splitlines() if x.startswith(f"#{first['id']} "))
    assert "revoked" in line, line
    child = next(x for x in r.stdout.splitlines() if x.strip().startswith(f"#{bob_grant['id']} "))
    assert "active" not in child, child

    for bad in (["share", grain, "--role", "no-such-role"], ["share", grain, "--expires", "soon"],
                ["share", grain, "--expires", "500ms"], ["share", "revoke", grain, "x"],
                ["share", "0" * 32], ["share", "list", "not-a-grain"],
                ["token", grain, "--role", "admin", "--expires", "0s"]):
        r = granary(world, *bad)
        assert r.returncode != 0 and r.stderr.strip(), (bad, r.stdout)
    for command in (["share"], ["share", "list"], ["share", "revoke"], ["token"]):
        r = granary(world, *command, "--help")
        assert r.returncode == 0 and "Usage: granary" in r.stdout, (command, r.stderr)
    assert "Examples:" in granary(world, "share", "--help").stdout
    # Last, as it needs the api. host: the CLI's token works.
    assert world.api(token).status_code == 200


def test_the_cli_needs_the_daemon(state_root):
    from conftest import add_user
    add_user(state_root / "stopped", "alice", "correct horse battery")  # makes the state
    r = run([program("granary"), "--state", str(state_root / "stopped"), "share", "0" * 32])
    assert r.returncode != 0 and "not running" in r.stderr, r.stderr


# ---- leaks and floods ------------------------------------------------------------------


def test_no_token_in_any_log_or_in_the_database(world):
    """Share and API tokens, and every session's label, enter key and cookie."""
    assert len(world.tokens) > 2000
    logs = world.daemon.log.encode()
    assert b"Grain " in logs or b"listening" in logs  # it did log
    found = leaks(logs, world.tokens)
    assert found == [], found
    for root, dirs, files in os.walk(world.daemon.state):
        dirs[:] = [d for d in dirs if d != "packages"]
        for name in files:
            path = os.path.join(root, name)
            if not os.path.isfile(path) or os.path.getsize(path) > 64 << 20:
                continue
            with open(path, "rb") as f:
                found = leaks(f.read(), world.tokens)
            assert found == [], (path, found)


def test_a_flood_of_bad_tokens_gets_429(world, grain):
    good = world.must_share(grain, "alice", role="viewer")
    flooder = world.client()  # from an address of its own
    statuses = []
    for _ in range(30):
        r = flooder.get(f"/s/{bogus_token()}", allow_redirects=False)
        statuses.append(r.status_code)
        if r.status_code == 429:
            retry = r.headers.get("Retry-After", "")
            assert retry.isdigit() and int(retry) > 0, r.headers
    assert statuses[:20] == [404] * 20, statuses
    assert 429 in statuses[:22], statuses
    first = statuses.index(429)
    assert set(statuses[first:]) == {429}, statuses
    # Bad bearer tokens count as well (from another address).
    api_address = world.addresses.next()
    codes = [world.api(bogus_token(), address=api_address).status_code for _ in range(30)]
    assert codes[:20] == [401] * 20 and 429 in codes[:22], codes
    # Other addresses are not locked out.
    assert world.open_link(f"/s/{bogus_token()}").response.status_code == 404
    assert world.open_link(good["url"]).session
