"""Grains end to end: a real app (apps/grain-test, static C) in real
sandboxes behind front's proxy. Start on the first request, concurrent first
requests sharing one start, idle stop, crash and restart with the reason in
the log, restart of granaryd with running grains, the header rules both
ways, sessions that end, and data that survives a restart."""
import concurrent.futures
import hashlib
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import (Client, Packager, add_user, enter_session, grain_cookie, make_cert,
                      set_cookies, wait_for)
from grains import (PASSWORD, Grain, children, front_pid, grain_test_spk, rss_kib,
                    setup_grain)



@pytest.fixture(scope="module")
def packager(tmp_path_factory):
    return Packager(tmp_path_factory.mktemp("grain-packages"))


@pytest.fixture(scope="module")
def app_spk(packager):
    return grain_test_spk(packager)


def grain_pids(grain_id):
    """Host pids of every process in the grain's cgroup (any hierarchy)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if f"grain-{grain_id}" in f.read():
                    pids.append(int(entry))
        except OSError:
            pass
    return pids


def grain_cgroups(grain_id):
    found = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        for d in dirs:
            if d == f"grain-{grain_id}":
                found.append(os.path.join(root, d))
    return found


@pytest.fixture
def grain(start_granaryd, app_spk):
    daemon, client, g = setup_grain(start_granaryd, app_spk)
    return g


def test_first_request_starts_the_grain(grain):
    assert grain.status()["running"] is False
    r = grain.get("/")
    assert r.status_code == 200, r.text
    assert r.text == "hello world\n"
    assert r.headers.get("Connection", "keep-alive").lower() != "close"
    st = grain.status()
    assert st["running"] is True
    assert st["memory"] > 0
    assert grain_pids(grain.id), "no process in the grain's cgroup"


def test_the_app_runs_as_its_own_uid_in_its_sandbox(grain):
    who = grain.get("/whoami").json()
    assert who["uid"] == 1000
    assert who["varWritable"] is True
    assert who["env"].get("GREETING") == "hi"
    host_uids = set()
    for pid in grain_pids(grain.id):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    host_uids.add(int(line.split()[1]))
    assert host_uids and all(u >= 0x40000000 for u in host_uids), host_uids


def test_headers_reach_the_app_by_the_rules(grain):
    r = grain.get("/echo?a=%2Fb&c", headers={
        "X-Granary-User-Id": "forged", "X-Granary-Permissions": "admin",
        "X-Forwarded-For": "6.6.6.6",
        "Cookie": f"granary_session=secret; {grain.http.headers['Cookie']}; app=1",
        "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1", "X-Keep": "yes"})
    assert r.status_code == 200, r.text
    echo = r.json()
    headers = {}
    for name, value in echo["headers"]:
        headers.setdefault(name.lower(), []).append(value)
    assert echo["target"] == "/echo?a=%2Fb&c"
    assert headers["x-granary-user-id"] != ["forged"] and len(headers["x-granary-user-id"]) == 1
    assert len(headers["x-granary-user-id"][0]) == 32
    assert headers["x-granary-username"] == ["alice"]
    assert headers["x-granary-permissions"] == ["read,write"]
    assert len(headers["x-granary-session-id"][0]) == 32
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-host"] == [grain.host]
    assert "6.6.6.6" not in json.dumps(headers.get("x-forwarded-for", []))
    assert headers["cookie"] == ["app=1"]
    assert "x-drop-me" not in headers
    assert headers["x-keep"] == ["yes"]


def test_response_rules(grain):
    r = grain.get("/cookie")
    assert r.status_code == 200
    cookie = r.headers["Set-Cookie"]
    assert "domain" not in cookie.lower(), cookie
    # The app cannot set Granary's cookies (the shell's, a session's).
    assert "grain_test_plain=2" in cookie and "granary_" not in cookie, cookie
    assert f"frame-ancestors http://localhost:{grain.daemon.port}" in r.headers[
        "Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Referrer-Policy" in r.headers


def fresh_enter_url(grain):
    r = grain.client.post(f"/api/grains/{grain.id}/open")
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    parts = urllib.parse.urlsplit(url)
    assert parts.netloc == r.json()["host"] and parts.path == "/.granary/enter", url
    return url


def get_on(grain, url, suffix="", method="GET", **kwargs):
    """A bare request (no cookie) for url, sent to 127.0.0.1 with its Host."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "") + suffix
    return requests.request(method, grain.daemon.url + target, allow_redirects=False,
                            headers={"Host": parts.netloc, **kwargs.pop("headers", {})},
                            timeout=30, **kwargs)


def test_entering_a_session_sets_a_cookie_of_its_host_once(grain):
    """SECURITY-TESTS J: the session's cookie is host-only and HttpOnly, set
    through a one-time URL that then leaves no trace (303, no referrer)."""
    url = fresh_enter_url(grain)
    first = enter_session(requests.Session(), grain.daemon, url)
    assert first.headers["Location"] == "/"
    assert first.headers["Referrer-Policy"] == "no-referrer"
    assert first.headers["Cache-Control"] == "no-store"
    cookies = set_cookies(first)
    pair = grain_cookie(first)
    assert pair.startswith("granary_grain=") and len(pair.split("=")[1]) == 32, pair
    for _, attributes in cookies:
        names = {a.split("=")[0].lower() for a in attributes}
        assert {"path", "httponly"} <= names and "Path=/" in attributes, attributes
        assert "domain" not in names and "expires" not in names and "max-age" not in names
    # Every ui-<hex>.localhost is a site of its own, framed by localhost: the
    # cookie comes as SameSite=Lax (for programs, top-level visits), and
    # partitioned for the frame (Secure: *.localhost is a secure context).
    assert [a for _, a in cookies] == [["Path=/", "HttpOnly", "SameSite=Lax"],
                                       ["Path=/", "HttpOnly", "Secure", "SameSite=None",
                                        "Partitioned"]], cookies
    # Once: the same URL again enters nothing, sets nothing.
    again = get_on(grain, url)
    assert again.status_code == 403 and "used already" in again.text, again.text
    assert "Set-Cookie" not in again.headers and "Location" not in again.headers
    # Another session's key does not enter this host.
    other = urllib.parse.urlsplit(fresh_enter_url(grain))
    r = get_on(grain, url.split("?")[0] + "?" + other.query)
    assert r.status_code == 403 and "Set-Cookie" not in r.headers
    # Only GET or HEAD enters; a refused method leaves the key usable.
    url = fresh_enter_url(grain)
    assert get_on(grain, url, method="POST", data=b"x").status_code == 403
    assert get_on(grain, url).status_code == 303
    # Nonsense keys.
    for query in ("", "?k=", "?k=" + "0" * 32, "?k=" + "g" * 32, "?k=" + "0" * 33, "?x=1"):
        r = get_on(grain, url.split("?")[0] + query)
        assert r.status_code == 403 and "Set-Cookie" not in r.headers, query


@pytest.mark.parametrize("path", [
    "//evil.test/", "/\\evil.test/", "%2F%2Fevil.test", "/%2F/evil.test", "%2F%5Cevil.test",
    "/%09/evil.test", "/%0D%0ASet-Cookie:%20x=1", "https://evil.test/", "evil.test",
    "%252F%252Fevil.test", "/%E2%80%A8", "/a\\b"])
def test_entering_never_redirects_elsewhere(grain, path):
    """SECURITY-TESTS J: open redirects through the enter URL's path are
    refused before its key is used."""
    url = fresh_enter_url(grain)
    r = get_on(grain, url, "&path=" + path)
    assert r.status_code == 400, (path, r.status_code, r.headers)
    assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    assert get_on(grain, url).status_code == 303  # the key still works


def test_entering_leads_to_a_path_of_the_grain(grain):
    url = fresh_enter_url(grain)
    r = get_on(grain, url, "&path=" + urllib.parse.quote("/echo?x=%C3%A9&y=1", safe=""))
    assert r.status_code == 303 and r.headers["Location"] == "/echo?x=%C3%A9&y=1", r.headers


def test_a_session_host_admits_only_its_own_cookie(grain):
    """SECURITY-TESTS J: the host alone admits nobody; one session's cookie
    on another session's host gets 403; tossed cookies of the same name do
    not lock the owner out."""
    websocket = pytest.importorskip("websocket")
    cookie = grain.http.headers["Cookie"]
    other = Grain(grain.daemon, grain.client, grain.id)  # the same grain and person
    for sent in (None, other.http.headers["Cookie"], "granary_grain=", "granary_grain",
                 "granary_grain=" + "0" * 32, cookie.upper().replace("GRANARY_GRAIN", "granary_grain"),
                 cookie + "0", cookie.replace("granary_grain", "granary_session"),
                 cookie.replace("granary_grain", "Granary_grain")):
        r = requests.get(grain.daemon.url + "/echo", timeout=30, allow_redirects=False,
                         headers={"Host": grain.host, **({"Cookie": sent} if sent else {})})
        assert r.status_code == 403, (sent, r.status_code)
        assert "Open this grain from Granary" in r.text
    # (Chromium sends both copies of a top-level session: partitioned and not.)
    for sent in (f"granary_grain={'0' * 32}; {cookie}", f"{cookie}; granary_grain=x",
                 f"{cookie}; {cookie}"):
        r = requests.get(grain.daemon.url + "/echo", headers={"Host": grain.host, "Cookie": sent},
                         timeout=30)
        assert r.status_code == 200, sent
        assert "granary_grain" not in json.dumps(r.json()["headers"])  # never forwarded
    # A second Cookie field counts as well (HTTP/1.1 allows it).
    with socket.create_connection(("127.0.0.1", grain.daemon.port), timeout=30) as s:
        s.sendall(f"GET / HTTP/1.1\r\nHost: {grain.host}\r\nCookie: a=1\r\n"
                  f"Cookie: {cookie}\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(12) == b"HTTP/1.1 200"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{grain.daemon.port}/ws", host=grain.host,
                                    origin=grain.origin, timeout=30,
                                    cookie=other.http.headers["Cookie"])
    assert refused.value.status_code == 403
    assert grain.get("/").status_code == 200 and other.get("/").status_code == 200


def test_session_hosts_under_the_shells_domain_get_lax_cookies(start_granaryd, app_spk):
    """Session hosts same-site with the shell (*.granary.test under
    granary.test): SameSite=Lax, and no Secure over plain HTTP, where
    browsers would refuse it."""
    daemon = start_granaryd("--base-url", "http://granary.test", "--wildcard", "*.granary.test")
    add_user(daemon.state, "alice", PASSWORD, admin=True)
    client = Client(daemon)
    client.headers["Host"], client.headers["Origin"] = "granary.test", "http://granary.test"
    client.login("alice", PASSWORD)
    with open(app_spk, "rb") as f:
        app = client.post("/api/apps", data=f,
                          headers={"Content-Type": "application/octet-stream"}).json()["app"]
    grain = client.post("/api/grains", json={"app": app["id"]}).json()["grain"]
    url = client.post(f"/api/grains/{grain['id']}/open").json()["url"]
    assert re.fullmatch(r"http://ui-[0-9a-f]{32}\.granary\.test/\.granary/enter\?k=[0-9a-f]{32}",
                        url), url
    http = requests.Session()
    first = enter_session(http, daemon, url)
    assert [a for _, a in set_cookies(first)] == [["Path=/", "HttpOnly", "SameSite=Lax"]]
    r = http.get(daemon.url + "/", headers={"Host": urllib.parse.urlsplit(url).netloc},
                 timeout=60)
    assert r.status_code == 200 and r.text == "hello world\n"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_sessions_under_tls(start_granaryd, app_spk, tmp_path):
    """Under TLS libmicrohttpd serves session hosts (not the event loop): the
    same gate, and a __Host- cookie that is Secure."""
    cert, key = make_cert(tmp_path, "server")
    daemon = start_granaryd("--tls-cert", cert, "--tls-key", key)
    add_user(daemon.state, "alice", PASSWORD, admin=True)
    client = Client(daemon)
    client.trust_env, client.verify = False, False  # REQUESTS_CA_BUNDLE would win otherwise
    client.login("alice", PASSWORD)
    with open(app_spk, "rb") as f:
        app = client.post("/api/apps", data=f,
                          headers={"Content-Type": "application/octet-stream"}).json()["app"]
    grain = client.post("/api/grains", json={"app": app["id"]}).json()["grain"]
    sessions = []
    for _ in range(2):
        url = client.post(f"/api/grains/{grain['id']}/open").json()["url"]
        assert url.startswith("https://ui-"), url
        http = requests.Session()
        http.trust_env, http.verify = False, False
        first = enter_session(http, daemon, url)
        assert grain_cookie(first).startswith("__Host-granary_grain=")
        for _, attributes in set_cookies(first):
            assert {"Secure", "HttpOnly", "Path=/"} <= set(attributes), attributes
        assert first.headers["Referrer-Policy"] == "no-referrer"
        sessions.append((urllib.parse.urlsplit(url).netloc, http.headers["Cookie"], url))
    (host, cookie, url), (_, other_cookie, _) = sessions

    def get(target, cookie=None):
        return requests.get(daemon.url + target, verify=False, timeout=60, allow_redirects=False,
                            headers={"Host": host, **({"Cookie": cookie} if cookie else {})})

    parts = urllib.parse.urlsplit(url)
    assert get(f"{parts.path}?{parts.query}").status_code == 403  # used already
    for sent in (other_cookie, None, cookie.replace("__Host-", "")):
        assert get("/echo", sent).status_code == 403, sent
    r = get("/echo", cookie)
    assert r.status_code == 200, r.text
    assert "granary_grain" not in json.dumps(r.json()["headers"])


def test_foreign_origin_is_refused_before_the_app(grain):
    r = grain.request("POST", "/upload", data=b"x" * 10, headers={"Origin": "http://evil.test"})
    assert r.status_code == 403
    r = grain.request("POST", "/upload", data=b"x" * 10,
                      headers={"Origin": grain.origin})
    assert r.status_code == 200, r.text
    assert r.json()["bytes"] == 10


def test_concurrent_first_requests_share_one_start(grain):
    def fetch(_):
        return grain.get("/whoami").json()["pid"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        pids = list(pool.map(fetch, range(32)))
    assert len(set(pids)) == 1
    assert grain.daemon.log.count(f"Grain {grain.id} started") == 1, grain.daemon.log


def test_idle_grains_stop(start_granaryd, app_spk):
    daemon, client, g = setup_grain(start_granaryd, app_spk, "--grain-idle-timeout", "2s")
    assert g.get("/").status_code == 200
    assert grain_pids(g.id)
    assert wait_for(lambda: not g.status()["running"], timeout=30)
    assert wait_for(lambda: not grain_pids(g.id) and not grain_cgroups(g.id), timeout=15)
    # And the next request starts it again.
    assert g.get("/").status_code == 200


def test_open_websocket_keeps_a_grain_running(start_granaryd, app_spk):
    websocket = pytest.importorskip("websocket")
    daemon, client, g = setup_grain(start_granaryd, app_spk, "--grain-idle-timeout", "1s")
    ws = websocket.create_connection(f"ws://127.0.0.1:{daemon.port}/ws", host=g.host,
                                     origin=f"http://{g.host}", timeout=30,
                                     cookie=g.http.headers["Cookie"])
    try:
        ws.send("ping one")
        assert ws.recv() == "ping one"
        time.sleep(4)
        assert g.status()["running"] is True
        ws.send_binary(b"\x00\x01binary")
        assert ws.recv() == b"\x00\x01binary"
    finally:
        ws.close()
    assert wait_for(lambda: not g.status()["running"], timeout=30)


def test_crash_restarts_on_the_next_request_and_says_why(grain):
    assert grain.get("/").status_code == 200
    try:
        r = grain.get("/crash")
        assert r.status_code >= 500
    except requests.ConnectionError:
        pass
    assert wait_for(lambda: grain.status()["crashes"] == 1, timeout=15)
    assert "status 3" in grain.status()["lastError"]
    # Once: the request that killed the app is not replayed on a fresh start.
    assert grain.log().count("crashing on request") == 1, grain.log()
    # The first crash is retried at once.
    r = grain.get("/")
    assert r.status_code == 200, r.text


def test_repeated_crashes_back_off_with_a_page_that_says_so(grain):
    for _ in range(2):
        assert wait_for(lambda: grain.get("/").status_code == 200, timeout=15)
        try:
            grain.get("/crash")
        except requests.ConnectionError:
            pass
        assert wait_for(lambda: not grain.status()["running"], timeout=15)
    r = grain.get("/")
    assert r.status_code == 503, r.text
    assert "try again" in r.text
    assert "crashing on request" in r.text  # the owner sees the log tail


def test_an_app_that_cannot_start_gets_a_page_with_its_log(start_granaryd, packager):
    spk = grain_test_spk(packager, command=["/app/missing"], title="Broken")
    daemon, client, g = setup_grain(start_granaryd, spk)
    r = g.get("/")
    assert r.status_code in (502, 503), r.text
    assert "start" in r.text.lower()
    st = g.status()
    assert st["running"] is False and st["lastError"]


def test_data_survives_stop_and_granaryd_restart(start_granaryd, app_spk, state_root):
    daemon, client, g = setup_grain(start_granaryd, app_spk)
    assert g.get("/file?write=note&data=kept").status_code == 200
    r = client.post(f"/api/grains/{g.id}/stop")
    assert r.status_code == 200 and r.json()["grain"]["running"] is False
    assert g.get("/file?read=note").text == "kept"
    daemon.stop()
    assert wait_for(lambda: not grain_pids(g.id) and not grain_cgroups(g.id), timeout=15)
    daemon2 = start_granaryd(state=daemon.state)
    client2 = Client(daemon2)
    client2.login("alice", PASSWORD)
    g2 = Grain(daemon2, client2, g.id)
    assert g2.get("/file?read=note").text == "kept"


def test_kill_9_of_granaryd_leaves_no_grain_behind(start_granaryd, app_spk):
    daemon, client, g = setup_grain(start_granaryd, app_spk)
    assert g.get("/").status_code == 200
    assert grain_pids(g.id)
    # Every granaryd process at once, as a power cut would (the grains are left).
    family = [daemon.proc.pid] + children(daemon.proc.pid)
    for pid in family:
        os.kill(pid, signal.SIGKILL)
    daemon.stop(check=False)
    daemon2 = start_granaryd(state=daemon.state)
    assert wait_for(lambda: not grain_pids(g.id) and not grain_cgroups(g.id), timeout=20), \
        daemon2.log
    client2 = Client(daemon2)
    client2.login("alice", PASSWORD)
    assert Grain(daemon2, client2, g.id).get("/").status_code == 200


def test_only_admitted_requests_keep_a_session_alive(grain):
    """Someone who has the host name but not the cookie cannot keep a session
    from expiring: its expiry moves only for requests its cookie admits."""
    import sqlite3
    url = fresh_enter_url(grain)
    label = urllib.parse.urlsplit(url).hostname[3:35]
    key = hashlib.blake2b(label.encode(), digest_size=32).digest()
    db = sqlite3.connect(os.path.join(grain.daemon.state, "granary.sqlite3"), timeout=30)

    def expiry():
        return db.execute("SELECT expires_at FROM grain_sessions WHERE host_hash = ?",
                          (key,)).fetchone()[0]

    soon = int(time.time()) + 120
    with db:
        db.execute("UPDATE grain_sessions SET expires_at = ? WHERE host_hash = ?", (soon, key))
    for _ in range(3):  # a miss, then the cache
        assert get_on(grain, url.split("?")[0].replace("/.granary/enter", "/")).status_code == 403
    assert expiry() == soon
    http = requests.Session()
    enter_session(http, grain.daemon, url)
    r = get_on(grain, url.split("?")[0].replace("/.granary/enter", "/echo"),
               headers={"Cookie": http.headers["Cookie"]})
    assert r.status_code == 200
    assert expiry() >= soon + 23 * 3600  # a day from now
    db.close()


def test_sessions_end(grain):
    bogus = "ui-" + "0" * 32 + f".localhost:{grain.daemon.port}"
    r = requests.get(grain.daemon.url + "/", headers={"Host": bogus}, timeout=30)
    assert r.status_code == 404
    assert "session" in r.text.lower()
    assert grain.get("/").status_code == 200
    r = grain.client.delete(f"/api/grains/{grain.id}")
    assert r.status_code == 204
    r = grain.get("/")
    assert r.status_code == 410 and "deleted" in r.text.lower()
    assert wait_for(lambda: not grain_pids(grain.id), timeout=15)
    r = grain.client.delete(f"/api/grains/{grain.id}")
    assert r.status_code == 204
    assert grain.get("/").status_code == 404


def test_someone_elses_grain_cannot_be_opened(grain):
    add_user(grain.daemon.state, "bob", PASSWORD)
    bob = Client(grain.daemon)
    bob.login("bob", PASSWORD)
    for verb, path in (("POST", "open"), ("POST", "start"), ("POST", "stop"), ("GET", "log")):
        r = bob.request(verb, f"/api/grains/{grain.id}/{path}")
        assert r.status_code == 404, (path, r.text)


def test_large_transfers_stream_through_front(grain):
    """1 GiB up and down through front, which must not grow by more than a
    few MiB meanwhile (its VmRSS sampled every 10 ms)."""
    size = 1 << 30
    front = front_pid(grain.daemon)
    before = rss_kib(front)
    peak, done = [before], threading.Event()

    def sample():
        while not done.wait(0.01):
            peak[0] = max(peak[0], rss_kib(front))
    sampler = threading.Thread(target=sample)
    sampler.start()

    def body():
        chunk = bytes(range(256)) * 4096
        for _ in range(size // len(chunk)):
            yield chunk

    try:
        r = grain.request("POST", "/upload", data=body(),
                          headers={"Origin": grain.origin}, timeout=600)
        assert r.status_code == 200, r.text
        assert r.json()["bytes"] == size
        r = grain.get(f"/download?bytes={size}", stream=True, timeout=600)
        assert int(r.headers["Content-Length"]) == size
        got = 0
        for chunk in r.iter_content(1 << 20):
            got += len(chunk)
        assert got == size
    finally:
        done.set()
        sampler.join()
    growth = peak[0] - before
    print(f"# front: {before} KiB before, {peak[0]} KiB at most")
    assert growth < 8 * 1024, f"front grew by {growth} KiB"


def test_python_app_serves_through_the_proxy(start_granaryd):
    from apps import build_app
    daemon, client, g = setup_grain(start_granaryd, build_app("python-hello"))
    r = g.get("/")
    assert r.status_code == 200, r.text
    assert "Hello, alice!" in r.text and "permissions: read,write" in r.text
    r = g.request("PUT", "/", data="a note from the test",
                  headers={"Origin": g.origin})
    assert r.status_code == 204, r.text
    assert "a note from the test" in g.get("/").text


def test_php_app_serves_through_the_proxy(start_granaryd):
    from apps import build_app
    daemon, client, g = setup_grain(start_granaryd, build_app("php-hello"))
    first = g.get("/?format=json")
    assert first.status_code == 200, first.text
    info = first.json()
    assert info["user"]["name"] == "alice"
    assert info["user"]["permissions"] == ["read", "write"]
    second = g.get("/?format=json").json()
    assert second["visits"] == info["visits"] + 1


def test_cli_opens_starts_and_stops_grains(grain, tmp_path):
    from conftest import program, run
    granary = [program("granary"), "--state", grain.daemon.state]
    r = run(granary + ["grain", "open", grain.id])
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    host = url.split("/")[2]
    assert host.startswith("ui-") and host != grain.host
    # As docs/api.md shows it: curl enters with a cookie jar (it resolves *.localhost itself).
    jar = str(tmp_path / "jar")
    r = run(["curl", "-sS", "--fail", "-c", jar, "-b", jar, "-L", url])
    assert r.returncode == 0 and r.stdout == "hello world\n", r.stderr
    r = run(["curl", "-sS", "-b", jar, url.split("/.granary/")[0] + "/echo"])
    assert r.returncode == 0 and json.loads(r.stdout)["target"] == "/echo", r.stdout
    assert run(["curl", "-sS", "--fail", "-L", url]).returncode != 0  # used up
    r = run(granary + ["grain", "stop", grain.id])
    assert r.returncode == 0 and r.stdout.strip() == f"{grain.id} stopped", r.stderr
    assert grain.status()["running"] is False
    r = run(granary + ["grain", "start", grain.id])
    assert r.returncode == 0 and r.stdout.strip() == f"{grain.id} running", r.stderr
    r = run(granary + ["grain", "list"])
    assert "(running)" in r.stdout
    r = run(granary + ["grain", "start", "0" * 32])
    assert r.returncode != 0 and "No such grain" in r.stderr
    # Opened by root, as the owner: recorded.
    import sqlite3
    db = sqlite3.connect(os.path.join(grain.daemon.state, "granary.sqlite3"))
    try:
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'grain.opened_by_root'"
                          ).fetchone()[0] == 1
    finally:
        db.close()


def test_granaryd_stops_promptly_with_a_slow_request_in_flight(grain):
    import threading
    assert grain.get("/").status_code == 200
    outcome = []

    def slow():
        try:
            outcome.append(grain.get("/slow?ms=100000", timeout=120).status_code)
        except requests.RequestException as e:
            outcome.append(type(e).__name__)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    # The app gets SIGTERM and its connection ends: no 100 s wait for its answer.
    grain.daemon.stop(timeout=30)
    t.join(30)
    assert outcome, "the slow request never ended"
    assert wait_for(lambda: not grain_pids(grain.id), timeout=15)


def test_web_isolation_origins(grain):
    """SECURITY-TESTS J: Origin null and cross-site fetches never reach the app,
    and a grain page's origin cannot use the shell's API (same-site is not
    same-origin)."""
    for headers in ({"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://localhost:{grain.daemon.port}"}):
        r = grain.request("POST", "/upload", data=b"x", headers=headers)
        assert r.status_code == 403, (headers, r.text)
    # The shell's API, called with the shell's cookie from a grain page's origin.
    shell = grain.client
    r = shell.post("/api/grains", json={"app": "x"},
                   headers={"Origin": grain.origin})
    assert r.status_code == 403 and r.json()["error"]["code"] == "bad_origin", r.text
