#!/bin/bash
# B6 (../shared/docs/BENCHMARKS.md): granaryd's footprint. The memory of all
# its processes (the root parent, the root launcher, the unprivileged front),
# idle, with 0 and with 10,000 grains in the database; and its start-up time,
# from spawning granaryd to the first 200 answer of /healthz. Writes
# docs/benchmarks/b6.md; asserts nothing about speed or size.
#
#   make bench T=b6                 (or, as root: bash tests/bench/b6-footprint.sh)
#   B6_STARTS=20 B6_GRAINS=10000    (defaults)
#
# The peers of BENCHMARKS.md (Sandstorm, Cloudron) cannot run here: their
# published figures are quoted, and the goal is the yardstick.
#
# The database is filled the way the server fills it, without the server:
# creating 10,000 grains through the API one by one would take minutes, so the
# sqlite3 CLI writes what the install and POST /api/grains would (supervisor/db.c: a package and
# its app; per grain the row, its owner capability and its audit event, plus
# STATE/grains/ID/data as the launcher makes it), in one transaction, with
# granaryd stopped. Every INSERT names its columns, so columns added later
# with defaults do not break it. The package is apps/hello, packed here with
# a key made for the run.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${GRANARY_BUILD:-$top/build}
STARTS=${B6_STARTS:-20}
GRAINS=${B6_GRAINS:-10000}
out=$top/docs/benchmarks/b6.md
python=/usr/bin/python3

die() { echo "b6: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granaryd drops its front to the user 'granary' only as root)"
for cmd in sqlite3 gcc "$python"; do
	command -v "$cmd" >/dev/null || die "$cmd is missing (scripts/deps.sh ensure test bench)"
done
for prog in granaryd granary spk; do
	[ -x "$BUILD/$prog" ] || die "no $BUILD/$prog; run make"
done
# As the integration tests do (tests/integration/conftest.py).
if ! id -u granary >/dev/null 2>&1; then
	echo "b6: creating the system user 'granary' that granaryd's front runs as"
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin granary
fi

# A 0711 parent: the unprivileged front must reach the state directories.
tmp=$(mktemp -d /tmp/granary-b6-XXXXXX)
chmod 711 "$tmp"
trap 'rm -rf "$tmp"' EXIT

# The app: apps/hello, built and packed with a key of our own.
mkdir "$tmp/app"
cp "$top/apps/hello/spk.json" "$top/apps/hello/hello.c" "$tmp/app/"
gcc -static -O2 -I"$top" -o "$tmp/app/hello" "$tmp/app/hello.c"
app_id=$(GRANARY_KEYRING=$tmp/keyring "$BUILD/spk" keygen 2>/dev/null)
"$python" - "$tmp/app/spk.json" "$app_id" <<'EOF'
import json, sys
path, app_id = sys.argv[1:3]
d = json.load(open(path))
d["app"]["id"] = app_id
json.dump(d, open(path, "w"), indent=2)
EOF
GRANARY_KEYRING=$tmp/keyring "$BUILD/spk" pack --quiet "$tmp/app" "$tmp/hello.spk"
"$BUILD/spk" info --json "$tmp/hello.spk" >"$tmp/hello.json"

cut -d' ' -f1-3 /proc/loadavg >"$tmp/load-before"
"$python" - "$BUILD" "$tmp" "$GRAINS" "$STARTS" "$out" <<'EOF'
import atexit, http.client, json, os, platform, signal, socket, statistics, subprocess, sys, time

build, tmp, n_grains, n_starts, out = sys.argv[1:6]
n_grains, n_starts = int(n_grains), int(n_starts)
granaryd, granary = f"{build}/granaryd", f"{build}/granary"
PASSWORD = "b6 benchmark password, long enough"

def die(msg):
    sys.exit(f"b6: {msg}")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

PORT = free_port()
HOST = f"localhost:{PORT}"

def healthz():
    """True once /healthz answers 200 (the parent binds the socket before the
    front exists: a connection may be accepted and answered only later)."""
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as s:
            s.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except (ConnectionRefusedError, ConnectionResetError):
        return False

def log_tail():
    with open(f"{tmp}/granaryd.log", errors="replace") as f:
        return "".join(f.readlines()[-20:])

running = set()

@atexit.register
def stop_all():
    """No daemon outlives the script, whatever stopped it."""
    for proc in running:
        proc.kill()
        proc.wait()

class Daemon:
    def __init__(self, state):
        self.log = open(f"{tmp}/granaryd.log", "ab")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [granaryd, "--state", state, "--listen", f"127.0.0.1:{PORT}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        running.add(self.proc)
        deadline = self.t0 + 20
        while not healthz():
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                die("granaryd did not answer /healthz; the end of its log:\n" + log_tail())
            time.sleep(0.0005)
        self.startup = time.perf_counter() - self.t0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(30)
        running.discard(self.proc)
        self.log.close()
        if rc != 0:
            die(f"granaryd exited with {rc}; the end of its log:\n" + log_tail())

def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, **kw)
    if r.returncode != 0:
        die(f"{' '.join(cmd)} failed:\n{r.stderr.decode(errors='replace')}")
    return r.stdout

# ---- the two states ----------------------------------------------------------
info = json.load(open(f"{tmp}/hello.json"))
manifest = json.dumps(info["manifest"], separators=(",", ":"), sort_keys=True)
with open(f"{tmp}/manifest.json", "w") as f:
    f.write(manifest)

def q(s):
    return "'" + str(s).replace("'", "''") + "'"

def prepare(state, grains):
    # The first start makes the database (migrations) and STATE/grains.
    Daemon(state).stop()
    run([granary, "--state", state, "user", "add", "alice", "--admin"],
        input=(PASSWORD + "\n").encode())
    now = int(time.time())
    app, pkg = info["appId"], info["packageId"]
    sql = f"""
PRAGMA foreign_keys = ON;
BEGIN;
INSERT INTO packages (id, app_id, version, title, manifest, size, installed_at)
  VALUES ({q(pkg)}, {q(app)}, {info['manifest']['app']['version']},
          {q(info['manifest']['app']['title'])}, CAST(readfile({q(tmp + '/manifest.json')}) AS TEXT),
          {info['fileSize']}, {now - 400 * 86400});
INSERT INTO apps (id, package_id, installed_at, installed_by)
  SELECT {q(app)}, {q(pkg)}, {now - 400 * 86400}, id FROM users WHERE name = 'alice';
INSERT INTO grains (id, app_id, package_id, owner_id, title, created_at, last_used_at, trashed_at)
  WITH RECURSIVE n(i) AS (SELECT 1 WHERE {grains} > 0 UNION ALL SELECT i + 1 FROM n WHERE i < {grains})
  SELECT lower(hex(randomblob(16))), {q(app)}, {q(pkg)}, u.id, 'Hello no. ' || i,
         {now} - ({grains} - i) * 3000 - 86400,
         CASE WHEN i % 3 = 0 THEN {now} - i * 60 END,
         CASE WHEN i % 100 = 0 THEN {now} - i END
  FROM n, users u WHERE u.name = 'alice';
-- db_grain_add: the owner's capability, the manifest's permissions.
INSERT INTO capabilities (grain_id, kind, holder_id, created_by, permissions, created_at)
  SELECT g.id, 'owner', g.owner_id, g.owner_id,
         COALESCE(json_extract(p.manifest, '$.permissions'), '[]'), g.created_at
  FROM grains g JOIN packages p ON p.id = g.package_id;
-- handle_grain_create: the audit event.
INSERT INTO audit (at, grain_id, user_id, action, detail)
  SELECT created_at, id, owner_id, 'grain.created', NULL FROM grains;
COMMIT;
SELECT count(*) FROM grains;
PRAGMA foreign_key_check;
"""
    got = run(["sqlite3", "-bail", f"{state}/granary.sqlite3"], input=sql.encode()).decode().split()
    if got != [str(grains)]:
        die(f"filling {state}: expected {grains} grains and no foreign key errors, got {got}")
    ids = run(["sqlite3", f"{state}/granary.sqlite3", "SELECT id FROM grains"]).decode().split()
    # The launcher's grain_storage_create(): STATE/grains/ID 0711, ID/data 0700, root's.
    for gid in ids:
        os.mkdir(f"{state}/grains/{gid}", 0o711)
        os.mkdir(f"{state}/grains/{gid}/data", 0o700)
    return ids

def db_size(state):
    return sum(os.path.getsize(f"{state}/{f}") for f in os.listdir(state)
               if f.startswith("granary.sqlite3"))

# ---- memory ------------------------------------------------------------------
def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []

def fields(path, keys):
    d = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                d[k] = int(v.split()[0])
    return d

# Where the PSS goes: each mapping of /proc/PID/smaps, by what it is.
GROUPS = [
    ("granaryd's own code and data", ("/granaryd",)),
    ("libc, libm, ld.so", ("/libc.so", "/libm.so", "/ld-linux")),
    ("SQLite, libmicrohttpd, libsodium, jansson, libseccomp, libcap-ng",
     ("/libsqlite3", "/libmicrohttpd", "/libsodium", "/libjansson", "/libseccomp", "/libcap-ng")),
    ("GnuTLS and the 8 libraries it loads (libmicrohttpd's HTTPS, unused)",
     ("/libgnutls", "/libp11-kit", "/libnettle", "/libhogweed", "/libgmp", "/libunistring",
      "/libidn2", "/libtasn1", "/libffi")),
    ("heap of the main thread ([heap]: SQLite's page cache, start-up)", ("[heap]",)),
    ("other anonymous memory (the HTTP thread's malloc arena, stacks)", ("",)),
]

def pss_groups(pid):
    sums = [0] * (len(GROUPS) + 1)
    group = len(GROUPS)
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(maxsplit=6)
            if "-" in first[0] and ":" not in first[0]:
                name = first[5].strip() if len(first) > 5 else ""
                group = next((i for i, (_, keys) in enumerate(GROUPS)
                              if any(k in name if k else not name for k in keys)),
                             len(GROUPS))
            elif first[0] == "Pss:":
                sums[group] += int(first[1])
    return sums

def footprint(d):
    """Every process of granaryd (the parent and its descendants): KiB."""
    procs, todo = [], [d.proc.pid]
    while todo:
        pid = todo.pop(0)
        todo += children(pid)
        m = fields(f"/proc/{pid}/smaps_rollup", {"Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"})
        m.update(fields(f"/proc/{pid}/status", {"VmHWM", "Threads", "Uid"}))
        role = "parent" if pid == d.proc.pid else ("front" if m["Uid"] != 0 else "launcher")
        m["groups"] = pss_groups(pid)
        procs.append((role, m))
    if sorted(r for r, _ in procs) != ["front", "launcher", "parent"]:
        die(f"expected a parent, a launcher and a front, found {[r for r, _ in procs]}")
    return dict(procs)

# ---- the API calls that warm the front up ------------------------------------
def api(method, path, body=None, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    headers = {"Host": HOST, "Origin": f"http://{HOST}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if cookie:
        headers["Cookie"] = cookie
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        die(f"{method} {path}: {r.status} {data[:300]!r}")
    return r, data

def warm_up(ids):
    r, _ = api("POST", "/api/login", {"name": "alice", "password": PASSWORD})
    cookie = r.getheader("Set-Cookie").split(";")[0]
    api("GET", "/api/me", cookie=cookie)
    api("GET", "/api/apps", cookie=cookie)
    t = time.perf_counter()
    _, data = api("GET", "/api/grains", cookie=cookie)
    took = time.perf_counter() - t
    listed = len(json.loads(data)["grains"])
    if listed != len(ids):
        die(f"GET /api/grains listed {listed} grains, expected {len(ids)}")
    for gid in ids[:3] + ids[-3:]:
        api("GET", f"/api/grains/{gid}", cookie=cookie)
    api("GET", "/api/grains", cookie=cookie)
    return took, len(data)

IDLE = 2.0  # seconds of quiet before a measurement

state0, state_n = f"{tmp}/state-0", f"{tmp}/state-{n_grains}"

# A fresh install: no user, the setup link printed.
d = Daemon(state0)
time.sleep(IDLE)
fresh = footprint(d)
d.stop()

ids0 = prepare(state0, 0)
ids_n = prepare(state_n, n_grains)
print(f"b6: states ready: {len(ids0)} and {len(ids_n)} grains")

mem, api_time = {}, {}
for label, state, ids in (("0", state0, ids0), ("n", state_n, ids_n)):
    d = Daemon(state)
    time.sleep(IDLE)
    mem[label + "-started"] = footprint(d)
    api_time[label] = warm_up(ids)
    time.sleep(IDLE)
    mem[label + "-warm"] = footprint(d)
    d.stop()

# ---- start-up: the two states alternate -----------------------------------------
startup = {"0": [], "n": []}
load_before = open(f"{tmp}/load-before").read().strip()
for i in range(n_starts):
    order = (("0", state0), ("n", state_n)) if i % 2 == 0 else (("n", state_n), ("0", state0))
    for label, state in order:
        d = Daemon(state)
        startup[label].append(d.startup * 1000)
        d.stop()
print(f"b6: start-up in ms, 0 grains {[round(x) for x in startup['0']]}, "
      f"{n_grains} grains {[round(x) for x in startup['n']]}")

# ---- granary grain list --json, for orientation --------------------------------
# and the integrity check granaryd runs on every start, alone, in the sqlite3 CLI.
cli, check = {"0": [], "n": []}, {"0": [], "n": []}
for i in range(10):
    for label, state in (("0", state0), ("n", state_n)) if i % 2 == 0 else (("n", state_n), ("0", state0)):
        t = time.perf_counter()
        out_json = run([granary, "--state", state, "--json", "grain", "list"])
        cli[label].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        if run(["sqlite3", f"{state}/granary.sqlite3", "PRAGMA integrity_check"]).strip() != b"ok":
            die(f"{state}/granary.sqlite3 fails its integrity check")
        check[label].append((time.perf_counter() - t) * 1000)
if len(json.loads(out_json)) not in (0, n_grains):
    die("granary grain list --json listed an unexpected number of grains")

load_after = " ".join(open("/proc/loadavg").read().split()[:3])

# ---- the report ----------------------------------------------------------------
def p90(xs):
    s = sorted(xs)
    return s[max(0, -(-9 * len(s) // 10) - 1)]

def timing(xs):
    return f"{statistics.median(xs):.1f} ms | {p90(xs):.1f} ms | {min(xs):.1f}–{max(xs):.1f} ms"

MIB = 1024
def total(m, key):
    return sum(p[key] for p in m.values())

def row(name, m):
    per = " | ".join(f"{m[r]['Rss']} / {m[r]['Pss']}" for r in ("parent", "launcher", "front"))
    return (f"| {name} | {per} | **{total(m, 'Rss') / MIB:.1f} MiB** | "
            f"{total(m, 'Pss') / MIB:.1f} MiB | {m['front']['Pss_Anon']} KiB | "
            f"{m['front']['VmHWM'] / MIB:.1f} MiB |")

goal_mem = 16 * MIB
states = [("the fresh install", fresh), ("0 grains just started", mem["0-started"]),
          ("0 grains warm", mem["0-warm"]), (f"{n_grains:,} grains just started", mem["n-started"]),
          (f"{n_grains:,} grains warm", mem["n-warm"])]
worst_rss = max(total(m, "Rss") for _, m in states)
mem_met = worst_rss <= goal_mem
start_med = {k: statistics.median(v) for k, v in startup.items()}
start_met = max(start_med.values()) <= 100
cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
sqlite_version = run(["sqlite3", "--version"]).decode().split()[0]
ng = f"{n_grains:,}"

lines = [
    "## B6: footprint and start-up",
    "",
    f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {os.cpu_count()} cores ({cpu}), "
    f"Linux {platform.release()}, SQLite {sqlite_version}, by `make bench T=b6` "
    f"(tests/bench/b6-footprint.sh), granaryd started as root on 127.0.0.1. The machine is "
    f"shared: load average {load_before} before, {load_after} after (1, 5, 15 min).",
    "",
    f"The databases: user `alice` (admin), the app apps/hello installed, and 0 or {ng} "
    f"grains owned by alice, each with its owner capability, its audit event and its "
    f"`STATE/grains/ID/data`; database files {db_size(state0) / 1e6:.2f} MB and "
    f"{db_size(state_n) / 1e6:.2f} MB. They are written with the sqlite3 CLI as the "
    "server's own statements would write them (10,000 grains through the API would take "
    "minutes).",
    "",
    "### Idle memory",
    "",
    f"RSS / PSS in KiB of each process, {IDLE:.0f} s after the last request; *warm* is after "
    f"`POST /api/login`, `GET /api/me`, `/api/apps`, `/api/grains` (twice; {ng} grains are "
    f"{api_time['n'][1] / 1e6:.1f} MB of JSON, answered in {api_time['n'][0] * 1000:.0f} ms) "
    "and six `GET /api/grains/ID`.",
    "",
    "| state | parent | launcher | front | RSS, all | PSS, all | front anon PSS | front peak RSS |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
    row("fresh install, no user", fresh),
    row("0 grains, just started", mem["0-started"]),
    row("0 grains, warm", mem["0-warm"]),
    row(f"{ng} grains, just started", mem["n-started"]),
    row(f"{ng} grains, warm", mem["n-warm"]),
    "",
    "Where the PSS goes, in KiB, all three processes together:",
    "",
    f"| | fresh install | 0 grains, warm | {ng} grains, just started | {ng} grains, warm |",
    "|---|---:|---:|---:|---:|",
    *[f"| {name} | " + " | ".join(str(sum(p["groups"][i] for p in m.values()))
                              for m in (fresh, mem["0-warm"], mem["n-started"], mem["n-warm"])) + " |"
      for i, name in enumerate([g[0] for g in GROUPS] + ["everything else ([stack], vdso, shm)"])],
    "",
    "What the figures include: the three processes of granaryd, found as the parent and its "
    "children (the launcher, root, and the front, uid `granary`; no grain runs). *RSS* "
    "counts every resident page each process maps, so the shared libraries (libc, SQLite, "
    "libmicrohttpd with GnuTLS, libsodium, jansson, libseccomp, libcap-ng) count once per "
    "process; *PSS* (from `/proc/PID/smaps_rollup`) divides each shared page among the "
    "processes that map it, here and in the rest of the system, and is the fairer sum. The "
    "front's figures hold SQLite's page cache (heap, up to its 2 MB default), "
    "libmicrohttpd's thread and buffers, the session state, and the heap left over from "
    "building the JSON answers; the seccomp filter itself lives in the kernel and is not in "
    "any RSS, only libseccomp's pages are. *Front peak RSS* is its VmHWM: logging in "
    "verifies an argon2id hash (libsodium's interactive limit, 64 MiB), which is mapped "
    "for the verification and given back after it. The PSS of a shared library also "
    "falls when other programs on the machine map it (other granaryd instances, here), so "
    "the library rows move between runs; the anonymous rows do not.",
    "",
    "The warm 10,000-grain state answered `GET /api/grains` with 2.8 MB of JSON twice: "
    "front hands the text to libmicrohttpd without a copy and calls `malloc_trim(0)` after "
    "answers over 256 KiB, so glibc gives that memory back instead of keeping it in the "
    "HTTP thread's arena (before that change, the warm state held 14 MB more).",
    "",
    f"Goal ≤ 16 MiB idle (the sum of RSS, the strict reading; the PSS sum is lower): "
    + (f"**met** in every state (largest {worst_rss / MIB:.1f} MiB)." if mem_met else
       "**not met** in " + ", ".join(f"{k} ({total(m, 'Rss') / MIB:.1f} MiB)" for k, m in states
                                    if total(m, "Rss") > goal_mem)
       + "; met in " + ", ".join(f"{k} ({total(m, 'Rss') / MIB:.1f} MiB)" for k, m in states
                                  if total(m, "Rss") <= goal_mem) + "."),
    "",
    "### Start-up",
    "",
    f"From spawning `granaryd --state DIR --listen 127.0.0.1:PORT` to the first 200 answer of "
    f"`GET /healthz` (polled every 0.5 ms over raw sockets), {n_starts} starts of each, the two "
    "states alternating; each stopped with SIGTERM before the next. The answer needs the "
    "parent (state lock, socket), the launcher and the front (dropping to `granary`, seccomp, "
    "opening the database with its integrity check and migrations, starting libmicrohttpd).",
    "",
    "| state | median | p90 | min–max |",
    "|---|---:|---:|---:|",
    f"| 0 grains | {timing(startup['0'])} |",
    f"| {ng} grains | {timing(startup['n'])} |",
    "",
    f"For orientation, `granary --json grain list` (opening the database and printing every "
    f"grain), 10 runs each: 0 grains {statistics.median(cli['0']):.1f} ms, {ng} grains "
    f"{statistics.median(cli['n']):.1f} ms; `sqlite3 DB 'PRAGMA integrity_check'`, which "
    f"granaryd's front and the CLI run on every open of the database: 0 grains "
    f"{statistics.median(check['0']):.1f} ms, {ng} grains {statistics.median(check['n']):.1f} ms "
    "(medians, process start included).",
    "",
    f"Goal start ≤ 100 ms: **{'met' if start_met else 'not met'} at the median** "
    f"({start_med['0']:.1f} ms with 0 grains, {start_med['n']:.1f} ms with {ng}); at the p90 "
    + ("met too." if max(p90(v) for v in startup.values()) <= 100 else
       "not with " + " and ".join(f"{'0' if k == '0' else ng} grains ({p90(v):.1f} ms)"
                                  for k, v in startup.items() if p90(v) > 100) + "."),
    "",
    "### Peers",
    "",
    "BENCHMARKS.md's peers cannot run on this machine, so there is no ratio; their "
    "published requirements, as BENCHMARKS.md gives them, are the comparison: Sandstorm "
    "needs 1–2 GB of RAM, Cloudron about 1 GB. Those figures size a whole server with the "
    "platform's own database and services, not an idle daemon measured as here, so they "
    "are orientation only: granaryd's largest idle figure above, "
    f"{worst_rss / MIB:.1f} MiB RSS, is 1/{1e9 / (worst_rss * 1024):.0f} of "
    "1 GB. The goals above are the yardstick.",
]
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "b6: wrote $out"
