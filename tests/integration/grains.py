"""Helpers of the grain tests (t0430, tests/soak): the grain-test app as a
signed package, a granaryd with an admin who owns one grain of it, and that
grain opened in a session (requests to 127.0.0.1 with the session's Host).

    daemon, client, grain = setup_grain(start_granaryd, grain_test_spk(packager))
    grain.get("/echo")
"""
import os

import requests

from conftest import Client, add_user, enter_session

PASSWORD = "correct horse battery"
GRAIN_TEST = os.path.join(os.environ.get("GRANARY_BUILD", "build"), "apps", "grain-test")


def grain_test_spk(packager, command=None, title="Grain test", version=1):
    with open(GRAIN_TEST, "rb") as f:
        binary = f.read()
    return packager.build(
        version=version, title=title,
        files={"app/grain-test": (binary, 0o755)},
        run_section={"command": command or ["/app/grain-test", "8000"], "httpPort": 8000,
             "env": {"GREETING": "hi"}})


class Grain:
    """A grain opened by its owner: requests go to 127.0.0.1 with the
    session's Host (glibc does not resolve *.localhost)."""

    def __init__(self, daemon, client, grain_id):
        self.daemon, self.client, self.id = daemon, client, grain_id
        self.open()

    def open(self):
        r = self.client.post(f"/api/grains/{self.id}/open")
        assert r.status_code == 201, r.text
        self.url, self.host = r.json()["url"], r.json()["host"]
        self.http = requests.Session()
        enter_session(self.http, self.daemon, self.url)
        self.http.headers["Host"] = self.host
        self.origin = f"http://{self.host}"

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", 60)
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.daemon.url + path, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def status(self):
        r = self.client.get(f"/api/grains/{self.id}")
        assert r.status_code == 200, r.text
        return r.json()["grain"]

    def log(self):
        r = self.client.get(f"/api/grains/{self.id}/log")
        assert r.status_code == 200, r.text
        return r.text


def setup_grain(start_granaryd, spk, *args):
    daemon = start_granaryd(*args)
    add_user(daemon.state, "alice", PASSWORD, admin=True)
    client = Client(daemon)
    client.login("alice", PASSWORD)
    with open(spk, "rb") as f:
        r = client.post("/api/apps", data=f, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code in (200, 201), r.text
    app_id = r.json()["app"]["id"]
    r = client.post("/api/grains", json={"app": app_id, "title": "Test grain"})
    assert r.status_code == 201, r.text
    return daemon, client, Grain(daemon, client, r.json()["grain"]["id"])


def children(ppid):
    found = []
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/status") as f:
                if f"PPid:\t{ppid}\n" in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def front_pid(daemon):
    """front is the child of granaryd's parent that does not run as root."""
    for pid in children(daemon.proc.pid):
        with open(f"/proc/{pid}/status") as f:
            uid = next(line for line in f if line.startswith("Uid:")).split()[1]
        if uid != "0":
            return pid
    raise AssertionError("no front process")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
