"""granaryd's config file, flags over it, and TLS (docs/admin.md).

A config file given with --config is honoured; a flag wins over its key; a bad
file is refused with a message naming the file and line before anything
starts. With --tls-cert/--tls-key, a certificate made here with the openssl
CLI is served by libmicrohttpd's GnuTLS: a real handshake with that very
certificate, plain HTTP on the same port gets no answer, and session cookies
become __Host- and Secure.
"""
import os
import socket
import ssl
import subprocess

import pytest
import requests

from conftest import Client, add_user, make_cert, program, run


def write(path, text, mode=0o644):
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def granaryd_fails(*args, cwd=None):
    """Run granaryd that must refuse to start; its exit status and stderr."""
    r = run([program("granaryd"), *args], cwd=cwd, timeout=20)
    assert r.returncode != 0, r.stderr
    return r.stderr


def tls_client(daemon, cert):
    """A Client that trusts cert only (requests lets REQUESTS_CA_BUNDLE in the
    environment win over Session.verify, hence trust_env)."""
    c = Client(daemon)
    c.trust_env = False
    c.verify = cert
    return c


@pytest.fixture
def tls(state_root):
    d = state_root / "tls"
    d.mkdir()
    return make_cert(d, "server")


# ---- the config file --------------------------------------------------------


def test_config_file_is_honoured(start_granaryd, state_root):
    state = state_root / "from-file"
    conf = write(state_root / "granary.conf", f"""\
# Granary, as an admin would write it
state = {state}
listen = 127.0.0.1:0

base_url = http://granary.test
\twildcard = *.granary.test
log_level = debug
""")
    d = start_granaryd("--config", conf, defaults=False)
    # The shell answers on the base URL's host only.
    ok = requests.get(d.url + "/healthz", headers={"Host": "granary.test"}, timeout=10)
    assert ok.status_code == 200 and ok.text == "ok\n"
    assert (state / "granary.sqlite3").exists()
    assert "debug:" in d.log
    other = requests.get(d.url + "/", headers={"Host": f"localhost:{d.port}"}, timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "unknown_host"


def test_flags_override_the_file(start_granaryd, state_root):
    # The file names a port that is taken and a state directory the flags
    # replace: granaryd starts only if the flags win.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    file_state = state_root / "file-state"
    conf = write(state_root / "granary.conf",
                 f"state = {file_state}\nlisten = 127.0.0.1:{taken.getsockname()[1]}\n"
                 "log_level = error\n")
    try:
        d = start_granaryd("--config", conf, "--log-level", "info")
    finally:
        taken.close()
    assert Client(d).get("/healthz").status_code == 200
    assert (state_root / "state0" / "granary.sqlite3").exists()
    assert not file_state.exists()
    assert "No user yet" in d.log  # a notice: --log-level info beat the file's error


BAD_FILES = [
    ("base-url = http://x\n", ":1: unknown key 'base-url' (did you mean 'base_url'?)"),
    ("listen = 127.0.0.1:0\nsurprise = 1\n", ":2: unknown key 'surprise'; known keys:"),
    ("state = /a\nstate = /b\n", ":2: 'state' is set again (first on line 1)"),
    ("state = relative/dir\n", ":1: state: expected an absolute path"),
    ("listen = localhost\n", ":1: listen: expected ADDR:PORT such as 127.0.0.1:6080"),
    ("base_url = granary.example.org\n", ":1: base_url: expected http://HOST[:PORT]"),
    ("wildcard = granary.example.org\n", ":1: wildcard: expected *.HOST[:PORT]"),
    ("log_level = 7\n", ":1: log_level: expected error, warning, notice, info or debug"),
    ('state = "/var/lib/granary"\n', ":1: state: remove the quotes"),
    ("listen = 127.0.0.1:0 # loopback\n", ":1: listen: a comment must be on a line of its own"),
    ("state\n", ":1: expected 'key = value'"),
    ("[granary]\nstate = /x\n", ":1: expected 'key = value'"),
    ("tls_cert = /etc/ssl/certs/ssl-cert-snakeoil.pem\n",
     "TLS needs both a certificate and its key: tls_cert (--tls-cert) is set but not tls_key"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_config_file_is_refused(state_root, text, message):
    conf = write(state_root / "bad.conf", text)
    state = state_root / "never"
    err = granaryd_fails("--config", conf, "--state", str(state), "--listen", "127.0.0.1:0")
    assert message in err, err
    if ":" in message.split(" ")[0]:
        assert f"{conf}{message.split(' ')[0]}" in err, err  # FILE:LINE:
    assert not state.exists(), "nothing may start on a bad config"


def test_unreadable_config_file(state_root):
    err = granaryd_fails("--config", str(state_root / "missing.conf"))
    assert "missing.conf: cannot read the config file: No such file or directory" in err
    err = granaryd_fails("--config", str(state_root))
    assert "cannot read the config file: it is a directory" in err


def test_bad_flags_are_refused(state_root):
    state = state_root / "never"
    for args, message in [
        (["--wildcard", "granary.test"], "Invalid --wildcard 'granary.test': expected *.HOST"),
        (["--wildcard", "*.x:99999"], "Invalid --wildcard '*.x:99999'"),
        (["--base-url", "http://x/shell"], "Invalid --base-url 'http://x/shell'"),
        (["--listen", "6080"], "Invalid --listen '6080': expected ADDR:PORT"),
        (["--log-level", "chatty"], "Invalid --log-level 'chatty'"),
    ]:
        err = granaryd_fails("--state", str(state), *args)
        assert message in err, (args, err)
    assert not state.exists()


def test_relative_state_directory(start_granaryd, state_root):
    """`make run` passes --state ./var: front and launcher chdir() into the
    state directory, so granaryd must hand them an absolute path."""
    d = start_granaryd("--state", "./relative", "--listen", "127.0.0.1:0", defaults=False,
                       cwd=str(state_root))
    assert Client(d).get("/healthz").status_code == 200
    assert (state_root / "relative" / "granary.sqlite3").exists()
    assert f"state in '{state_root}/relative'" in d.log


def test_help_names_the_new_flags():
    r = run([program("granaryd"), "--help"])
    assert r.returncode == 0
    for flag in ("--config FILE", "/etc/granary/granary.conf", "--tls-cert FILE",
                 "--tls-key FILE", "--wildcard *.HOST[:PORT]", "--log-level LEVEL"):
        assert flag in r.stdout, flag


# ---- TLS ----------------------------------------------------------------------


def test_tls_handshake_with_our_certificate(start_granaryd, tls, state_root):
    cert, key = tls
    st = os.stat(key)
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o600
    conf = write(state_root / "granary.conf", f"tls_cert = {cert}\ntls_key = {key}\n")
    d = start_granaryd("--config", conf)
    assert d.scheme == "https" and f"listening on https://127.0.0.1:{d.port}/" in d.log
    if os.geteuid() == 0:
        # The key is root's only; the front that serves runs as 'granary'.
        assert "granary" in run(["ps", "-o", "user=", "-C", "granaryd"]).stdout

    context = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            served = s.getpeercert(binary_form=True)
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: localhost:{d.port}\r\n"
                      "Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := s.recv(4096):
                answer += chunk
    with open(cert) as f:
        assert served == ssl.PEM_cert_to_DER_cert(f.read())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n"), answer

    c = tls_client(d, cert)
    r = c.get("/healthz")
    assert r.status_code == 200 and r.text == "ok\n"


def test_plain_http_to_the_tls_port_gets_no_answer(start_granaryd, tls):
    cert, key = tls
    d = start_granaryd("--tls-cert", cert, "--tls-key", key)
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: localhost:{d.port}\r\n\r\n".encode())
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
    assert not data.startswith(b"HTTP/"), data
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{d.port}/healthz", timeout=10,
                     headers={"Host": f"localhost:{d.port}"})
    # A client that does not trust the certificate refuses it.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(d.url + "/healthz", timeout=10)
    # And the server is still fine afterwards.
    c = tls_client(d, cert)
    assert c.get("/healthz").status_code == 200


def session_cookie(response):
    header = response.headers["Set-Cookie"]
    assert "granary_session=" in header, header
    return header


def test_tls_cookies_are_host_only_and_secure(start_granaryd, tls):
    cert, key = tls
    d = start_granaryd("--tls-cert", cert, "--tls-key", key)
    c = tls_client(d, cert)
    assert c.get("/healthz").status_code == 200  # front has its database: the CLI may use it
    add_user(d.state, "alice", "correct horse battery", admin=True)
    assert c.origin == f"https://localhost:{d.port}"  # the default base URL under TLS
    header = session_cookie(c.login("alice", "correct horse battery"))
    assert header.startswith("__Host-granary_session=") and "; Secure" in header, header
    assert "Domain=" not in header and "Path=/" in header, header


def test_plain_http_cookies_are_not_secure(start_granaryd):
    d = start_granaryd()
    c = Client(d)
    assert c.get("/healthz").status_code == 200
    add_user(d.state, "alice", "correct horse battery", admin=True)
    header = session_cookie(c.login("alice", "correct horse battery"))
    assert header.startswith("granary_session=") and "Secure" not in header, header


def test_https_base_url_behind_a_proxy(start_granaryd):
    """No TLS here (a proxy in front terminates it), yet the public URL is
    https: cookies are __Host- and Secure all the same."""
    d = start_granaryd("--base-url", "https://granary.test")
    c = Client(d)
    c.headers["Host"] = "granary.test"
    c.headers["Origin"] = "https://granary.test"
    assert c.get("/healthz").status_code == 200
    add_user(d.state, "alice", "correct horse battery", admin=True)
    header = session_cookie(c.login("alice", "correct horse battery"))
    assert header.startswith("__Host-granary_session=") and "; Secure" in header, header


def test_bad_tls_files_are_refused(state_root, tls):
    cert, key = tls
    other_cert, other_key = make_cert(state_root / "tls", "other")
    garbage = write(state_root / "garbage.pem", "not a certificate\n")
    empty = write(state_root / "empty.pem", "")
    state = state_root / "never"
    for args, message in [
        (["--tls-cert", cert, "--tls-key", other_key],
         "The certificate and the given key do not match"),
        (["--tls-cert", garbage, "--tls-key", key], f"The TLS certificate '{garbage}' and key"),
        (["--tls-cert", key, "--tls-key", cert], "were refused (GnuTLS"),
        (["--tls-cert", cert, "--tls-key", empty], f"The TLS key '{empty}' is empty"),
        (["--tls-cert", cert, "--tls-key", str(state_root / "nokey.pem")],
         "Cannot read the TLS key"),
        (["--tls-cert", str(state_root), "--tls-key", key], "it is a directory"),
        (["--tls-cert", cert], "tls_cert (--tls-cert) is set but not tls_key (--tls-key)"),
        (["--tls-key", key], "tls_key (--tls-key) is set but not tls_cert (--tls-cert)"),
        (["--tls-cert", cert, "--tls-key", key, "--base-url", "http://granary.test"],
         "use https://granary.test"),
    ]:
        err = granaryd_fails("--state", str(state), "--listen", "127.0.0.1:0", *args)
        assert message in err, (args, err)
    assert not state.exists(), "nothing may start on bad TLS files"
