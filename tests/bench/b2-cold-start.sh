#!/bin/bash
# B2 (../shared/docs/BENCHMARKS.md): cold start. The time from connecting to
# the first byte of the answer to GET / on a stopped grain of grain-test (a
# minimal static app) through Granary: the launcher builds the sandbox,
# grain-init starts the app, the app listens, front forwards. Each run stops
# the grain first (POST /api/grains/ID/stop) and waits until no grain-init is
# left. In the same rounds, the peers, all with the same binary from the
# same unpacked package:
#
#   bwrap             bwrap --unshare-all --cap-drop ALL --ro-bind PKG / /app/grain-test --version
#                     (spawn-to-exit: BENCHMARKS.md's peer)
#   granary-sandbox   granary-sandbox --root PKG -- /app/grain-test --version (spawn-to-exit
#                     through Granary's own sandbox, grain-init and cgroups included)
#   plain process     spawn grain-test on the host, no sandbox, until its first byte
#                     answering GET / (the app's own start and first answer)
#
# Rounds alternate the order; medians, p99 and min-max over all runs.
# Writes docs/benchmarks/b2.md and b2.svg (the distributions).
#
#   make bench T=b2                      (or, as root: bash tests/bench/b2-cold-start.sh)
#   B2_ROUNDS=5 B2_RUNS=10               (defaults: 50 runs of each)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "b2: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granaryd, grains, granary-sandbox)"
for cmd in bwrap hyperfine /usr/bin/python3; do
	command -v "$cmd" >/dev/null || die "$cmd is missing (scripts/deps.sh ensure bench)"
done

/usr/bin/python3 - "$top" <<'EOF'
import json, os, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "bench"))
import benchlib as B
import svgplot

ROUNDS = int(os.environ.get("B2_ROUNDS", 5))
RUNS = int(os.environ.get("B2_RUNS", 10))

work = B.tmpdir("granary-b2-")
spk = B.apps.build_app("grain-test")
root = str(B.apps.unpack(spk, os.path.join(work, "pkg")))
os.chmod(root, 0o755)
SANDBOX = os.path.join(B.BUILD, "granary-sandbox")
bwrap = f"bwrap --unshare-all --cap-drop ALL --ro-bind {root} / /app/grain-test --version"
sandbox = f"{SANDBOX} --root {root} -- /app/grain-test --version"
for cmd in (bwrap, sandbox):
    r = subprocess.run(cmd.split(), capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("grain-test "):
        B.die("b2", f"{cmd} does not run here: {r.stdout} {r.stderr}")


def hyperfine(cmd, runs):
    out = os.path.join(work, "hyperfine.json")
    subprocess.run(["hyperfine", "-N", "--style", "none", "--warmup", "2", "--runs", str(runs),
                    "--export-json", out, cmd], check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return [t * 1000 for t in json.load(f)["results"][0]["times"]]


def plain_process():
    """Spawn grain-test on a free port, then GET / until the first byte."""
    port = B.free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen([B.GRAIN_TEST, str(port)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except ConnectionRefusedError:
                time.sleep(0.0002)
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1)
            return (time.perf_counter() - t0) * 1000
    finally:
        p.kill()
        p.wait()


granary = None
granary_why = ""
times = {"Granary": [], "bwrap": [], "granary-sandbox": [], "plain process": []}
try:
    granary = B.Granary(os.path.join(work, "g"))
    try:
        _, grain, host = granary.require(spk)
    except B.NotAvailable as e:
        granary_why = str(e)
        print(f"b2: Granary not measured: {e}")
        grain = None

    def cold_start():
        granary.stop_grain(grain)
        if not B.conftest.wait_for(lambda: not granary.grain_inits(), timeout=30):
            B.die("b2", "the grain's grain-init was still running 30 s after the stop")
        ms, status = B.first_byte_ms(granary.port, host)
        if not status.startswith("HTTP/1.1 200"):
            B.die("b2", f"GET / on the cold grain answered {status!r}")
        return ms

    if grain:
        try:
            cold_start()  # the stop API answers, and a cold start works
        except B.NotAvailable as e:
            granary_why = str(e)
            print(f"b2: Granary not measured: {e}")
            grain = None
    load_before = B.load()
    for r in range(ROUNDS):
        order = ["Granary", "bwrap", "granary-sandbox", "plain process"]
        if r % 2:
            order.reverse()
        for name in order:
            if name == "Granary" and grain:
                times[name] += [cold_start() for _ in range(RUNS)]
            elif name == "bwrap":
                times[name] += hyperfine(bwrap, RUNS)
            elif name == "granary-sandbox":
                times[name] += hyperfine(sandbox, RUNS)
            elif name == "plain process":
                times[name] += [plain_process() for _ in range(RUNS)]
        print(f"b2: round {r + 1}: " + ", ".join(
            f"{k} {B.med(v)[0]:.2f} ms" for k, v in times.items() if v))
    load_after = B.load()
finally:
    if granary:
        granary.stop()
    B.rmtree(work)

peer = B.med(times["bwrap"])[0]
rows = [
    ("Granary", "first byte of `GET /` to a stopped grain, through granaryd"),
    ("bwrap", "`bwrap --unshare-all --cap-drop ALL --ro-bind PKG / /app/grain-test --version` "
              "(the peer)"),
    ("granary-sandbox", "`granary-sandbox --root PKG -- /app/grain-test --version`"),
    ("plain process", "spawn `grain-test PORT` without a sandbox, to the first byte of `GET /`"),
]
lines = [
    "## B2: cold start",
    "",
    f"Measured {B.machine()} by `tests/bench/b2-cold-start.sh`: {ROUNDS} rounds of {RUNS} runs "
    "of each, the order reversed every other round; median, p99 and min–max over all runs. "
    "The app is `grain-test` (static, 0.9 MB) from its package, unpacked once: the same "
    "binary for every row. Spawn-to-exit rows are timed by `hyperfine -N` (no shell); the "
    "first-byte rows from `connect()` (or the spawn) to the first byte received, in Python. "
    f"Load average {load_before} before, {load_after} after.",
    "",
    "| what | median | p99 | min–max | vs bwrap |",
    "|---|---:|---:|---:|---:|",
]
for name, what in rows:
    xs = times[name]
    if not xs:
        lines.append(f"| {what} | not run yet | | | |")
        continue
    m, lo, hi = B.med(xs)
    bold = "**" if name == "Granary" else ""
    lines.append(f"| {what} | {m:.2f} ms | {B.percentile(xs, 99):.2f} ms | {lo:.2f}–{hi:.2f} ms | "
                 f"{bold}{m / peer:.2f}×{bold} |")
lines += [
    "",
    "![B2: cold start, cumulative distribution](b2.svg)",
    "",
    "Goal: Granary's median ≤ 3× bwrap's, p99 ≤ 50 ms. A Granary cold start does more than "
    "the peer: the launcher's request and answer, the sandbox with grain-init, cgroups and "
    "the seccomp filter (the granary-sandbox row), the app's start until it listens, "
    "grain-init's readiness check, the connection handed to front, and the request "
    "forwarded. " + (f"**Granary: not run yet** ({granary_why})." if not times["Granary"] else ""),
]
B.write_section("b2", lines)
svgplot.cdf_chart(os.path.join(B.DOCS, "b2.svg"), "B2: cold start (cumulative, log scale)",
                  [(name, times[name] or None) for name, _ in rows], "milliseconds", log=True)
EOF
