"""Accounts and sessions through the JSON API: setup link, login, logout,
password change, throttling, cookies, CSRF and Host checks, bad input."""
import re
import sqlite3

import pytest

from conftest import Client, add_user, program, run, wait_for

PASSWORD = "correct horse battery"


@pytest.fixture
def admin(granaryd):
    add_user(granaryd.state, "alice", PASSWORD, admin=True)
    c = Client(granaryd)
    c.login("alice", PASSWORD)
    return c


def user_count(daemon):
    db = sqlite3.connect(daemon.state + "/granary.sqlite3")
    try:
        return db.execute("SELECT count(*) FROM users").fetchone()[0]
    finally:
        db.close()


def setup_token(daemon):
    # The front prints it once it has opened the database, just after start.
    assert wait_for(lambda: re.search(r"/setup/([A-Za-z0-9_-]{43})", daemon.log)), daemon.log
    m = re.search(r"/setup/([A-Za-z0-9_-]{43})", daemon.log)
    return m.group(1)


def test_setup_link_creates_first_admin_once(granaryd):
    token = setup_token(granaryd)
    c = Client(granaryd)
    page = c.get("/setup/" + token)
    assert page.status_code == 200 and "first admin" in page.text
    assert c.get("/setup/" + "A" * 43).status_code == 404
    r = c.post("/api/setup", json={"token": token, "name": "root", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["user"] == {**r.json()["user"], "name": "root", "admin": True}
    assert c.get("/api/me").json()["user"]["name"] == "root"
    again = Client(granaryd).post("/api/setup", json={"token": token, "name": "x2", "password": PASSWORD})
    assert again.status_code == 403
    assert user_count(granaryd) == 1
    assert Client(granaryd).get("/setup/" + token).status_code == 404


def test_setup_link_dies_when_a_user_exists(granaryd):
    token = setup_token(granaryd)
    add_user(granaryd.state, "alice", PASSWORD, admin=True)
    r = Client(granaryd).post("/api/setup", json={"token": token, "name": "mallory", "password": PASSWORD})
    assert r.status_code == 403
    assert user_count(granaryd) == 1


def test_login_cookie_and_me(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    assert c.get("/api/me").status_code == 401
    r = c.login("bob", PASSWORD)
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("granary_session=")
    for attribute in ("Path=/", "HttpOnly", "SameSite=Lax"):
        assert attribute in cookie
    assert "Domain" not in cookie and "Secure" not in cookie
    me = c.get("/api/me").json()["user"]
    assert me["name"] == "bob" and me["admin"] is False


def test_session_token_is_not_stored(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    c.login("bob", PASSWORD)
    token = c.cookies["granary_session"]
    assert len(token) == 43
    for name in ("granary.sqlite3", "granary.sqlite3-wal"):
        with open(f"{granaryd.state}/{name}", "rb") as f:
            assert token.encode() not in f.read()


def test_wrong_password_and_unknown_user_look_the_same(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    wrong = c.post("/api/login", json={"name": "bob", "password": "wrong password"})
    unknown = c.post("/api/login", json={"name": "nobody", "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "Set-Cookie" not in wrong.headers


def test_failed_logins_are_throttled(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    for _ in range(10):
        assert c.post("/api/login", json={"name": "bob", "password": "guess guess"}).status_code == 401
    r = c.post("/api/login", json={"name": "bob", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0


def test_logout_ends_the_session_on_the_server(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    c.login("bob", PASSWORD)
    stolen = c.cookies["granary_session"]
    r = c.post("/api/logout")
    assert r.status_code == 204
    assert "Max-Age=0" in r.headers["Set-Cookie"]
    other = Client(granaryd)
    other.cookies.set("granary_session", stolen)
    assert other.get("/api/me").status_code == 401


def test_garbage_cookies_are_just_signed_out(granaryd):
    for value in ["", "x", "A" * 43, "A" * 44, "%00", "a" * 4000]:
        c = Client(granaryd)
        c.cookies.set("granary_session", value)
        assert c.get("/api/me").status_code == 401, value


def test_password_change_signs_out_other_sessions(granaryd):
    add_user(granaryd.state, "bob", PASSWORD)
    laptop, phone = Client(granaryd), Client(granaryd)
    laptop.login("bob", PASSWORD)
    phone.login("bob", PASSWORD)
    assert laptop.post("/api/me/password", json={"old": "not it!!", "new": "new password 1"}).status_code == 403
    assert laptop.post("/api/me/password", json={"old": PASSWORD, "new": "short"}).status_code == 400
    r = laptop.post("/api/me/password", json={"old": PASSWORD, "new": "new password 1"})
    assert r.status_code == 204
    assert laptop.get("/api/me").status_code == 200
    assert phone.get("/api/me").status_code == 401
    assert Client(granaryd).post("/api/login", json={"name": "bob", "password": PASSWORD}).status_code == 401
    Client(granaryd).login("bob", "new password 1")


@pytest.mark.parametrize("headers", [
    {},                                            # no Origin at all
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://ui-0123456789abcdef0123456789abcdef.localhost:{port}"},  # a grain: same-site, not same-origin
    {"Origin": "http://localhost:{port}.evil"},
    {"Origin": "https://localhost:{port}"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_unsafe_api_requests_need_the_shell_origin(granaryd, headers):
    add_user(granaryd.state, "bob", PASSWORD)
    c = Client(granaryd)
    c.login("bob", PASSWORD)
    bad = Client(granaryd, origin="Sec-Fetch-Site" in headers)
    bad.cookies.update(c.cookies)
    for k, v in headers.items():
        bad.headers[k] = v.replace("{port}", str(granaryd.port))
    for method, path, body in [("POST", "/api/login", {"name": "bob", "password": PASSWORD}),
                               ("POST", "/api/logout", None),
                               ("POST", "/api/me/password", {"old": PASSWORD, "new": "hijacked pass"})]:
        r = bad.request(method, path, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "bad_origin"
    # Nothing happened: the session still works, the password is unchanged.
    assert c.get("/api/me").status_code == 200
    Client(granaryd).login("bob", PASSWORD)


def test_unknown_host_is_404(granaryd):
    c = Client(granaryd)
    c.headers["Host"] = "evil.example"
    assert c.get("/api/me").status_code == 404
    c.headers["Host"] = f"127.0.0.1:{granaryd.port}"
    assert c.get("/").status_code == 404
    # Health checks ask by address: /healthz answers whatever the Host.
    assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("body,status,code", [
    (b"{", 400, "bad_json"),
    (b"", 400, "bad_json"),
    (b'{"name":"x","password":"y","extra":1}', 400, "bad_request"),
    (b'{"name":5,"password":"y"}', 400, "bad_request"),
    (b'{"name":"x"}', 400, "bad_request"),
    (b'{"name":"x","name":"y","password":"z"}', 400, "bad_json"),
    (b'["name"]', 400, "bad_request"),
    (b'{"name":"x","password":"' + b"p" * 70000 + b'"}', 413, "body_too_large"),
])
def test_bad_bodies_get_4xx_and_change_nothing(admin, granaryd, body, status, code):
    before = user_count(granaryd)
    r = admin.post("/api/users", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert user_count(granaryd) == before


def test_json_body_needs_json_content_type(admin):
    r = admin.post("/api/users", data='{"name":"x","password":"yyyyyyyy"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_users_are_admin_only(admin, granaryd):
    r = admin.post("/api/users", json={"name": "carol", "password": PASSWORD})
    assert r.status_code == 201 and r.json()["user"]["admin"] is False
    assert admin.post("/api/users", json={"name": "carol", "password": PASSWORD}).status_code == 409
    assert admin.post("/api/users", json={"name": "Carol!", "password": PASSWORD}).status_code == 400
    assert admin.post("/api/users", json={"name": "dan", "password": "short"}).status_code == 400
    names = [u["name"] for u in admin.get("/api/users").json()["users"]]
    assert names == ["alice", "carol"]
    carol = Client(granaryd)
    carol.login("carol", PASSWORD)
    assert carol.get("/api/users").status_code == 403
    assert carol.post("/api/users", json={"name": "eve", "password": PASSWORD}).status_code == 403


def test_grains_api_without_apps(admin):
    assert admin.get("/api/grains").json() == {"grains": []}
    assert admin.get("/api/apps").json() == {"apps": []}
    r = admin.post("/api/grains", json={"app": "nosuchapp"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_such_app"
    for method in ("GET", "DELETE"):
        assert admin.request(method, "/api/grains/" + "0" * 32).status_code == 404
    assert admin.patch("/api/grains/" + "0" * 32, json={"title": "x"}).status_code == 404
    assert admin.get("/api/grains/a.b").status_code == 404
    assert admin.get("/api/grains/" + "a" * 200).status_code == 404
    assert admin.put("/api/grains").status_code == 405


def test_metrics_count_requests(admin):
    r = admin.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    values = dict(line.split() for line in r.text.splitlines() if not line.startswith("#"))
    assert int(values["granary_http_requests_total"]) >= 2
    assert int(values["granary_logins_total"]) == 1
    assert values["granary_users"] == "1"


def test_cli_works_beside_a_running_daemon(granaryd):
    add_user(granaryd.state, "alice", PASSWORD, admin=True)
    r = run([program("granary"), "--state", granaryd.state, "--json", "status"])
    assert r.returncode == 0, r.stderr
    assert '"users": 1' in r.stdout
    r = run([program("granary"), "--state", granaryd.state, "user", "list"])
    assert "alice" in r.stdout and "admin" in r.stdout
    Client(granaryd).login("alice", PASSWORD)
