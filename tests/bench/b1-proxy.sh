#!/bin/bash
# B1 (../shared/docs/BENCHMARKS.md): proxy throughput and latency. wrk with
# one thread and 32 keep-alive connections asks for a 12-byte answer (GET /)
# and a 64 KiB one (GET /64k) of the same app binary, build/apps/grain-test:
#
#   direct    straight to grain-test on 127.0.0.1
#   nginx     nginx-light, 1 worker, upstream keepalive 32, to that grain-test
#   Granary   granaryd's proxy to a grain of grain-test (its package, installed
#             through the API; a session opened with POST /api/grains/ID/open,
#             its host sent as Host), every request capability-checked
#
# Each round runs every target and size once, the order reversed every other
# round; medians and min-max over the rounds. Before measuring, each target
# must answer two requests on one connection without Connection: close (a
# proxy that closes would measure TCP set-up, not proxying). Writes
# docs/benchmarks/b1.md, b1.svg (req/s) and b1-p99.svg.
#
#   make bench T=b1                     (or, as root: bash tests/bench/b1-proxy.sh)
#   B1_ROUNDS=3 B1_SECONDS=10 B1_CONNECTIONS=32   (defaults)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "b1: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granaryd, grains)"
for cmd in wrk nginx /usr/bin/python3; do
	command -v "$cmd" >/dev/null || die "$cmd is missing (scripts/deps.sh ensure bench)"
done

/usr/bin/python3 - "$top" <<'EOF'
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "bench"))
import benchlib as B
import svgplot

ROUNDS = int(os.environ.get("B1_ROUNDS", 3))
SECONDS = int(os.environ.get("B1_SECONDS", 10))
CONNS = int(os.environ.get("B1_CONNECTIONS", 32))
SIZES = [("12 B", "/"), ("64 KiB", "/64k")]

work = B.tmpdir("granary-b1-")
app = nginx = granary = None
granary_why = ""
try:
    app = B.GrainTest()
    nginx = B.Nginx(app.port, work)
    targets = {"direct": (app.port, f"127.0.0.1:{app.port}"),
               "nginx": (nginx.port, f"127.0.0.1:{nginx.port}")}
    granary = B.Granary(os.path.join(work, "g"))
    try:
        _, _, host = granary.require(B.apps.build_app("grain-test"))
        targets["Granary"] = (granary.port, host)
    except B.NotAvailable as e:
        granary_why = str(e)
        print(f"b1: Granary not measured: {e}")
    for name, (port, host) in targets.items():
        for _, path in SIZES:
            if not B.keep_alive_ok(port, host, path):
                B.die("b1", f"{name} {path}: no keep-alive (a second request on the connection "
                      "failed, or Connection: close)")
            B.wrk(port, host, path, 1, CONNS, workdir=work)  # warm-up
    load_before = B.load()
    results = {(t, s): [] for t in targets for s, _ in SIZES}
    for r in range(ROUNDS):
        order = [(t, s, p) for t in targets for s, p in SIZES]
        if r % 2:
            order.reverse()
        for t, s, p in order:
            port, host = targets[t]
            res = B.wrk(port, host, p, SECONDS, CONNS, workdir=work)
            results[(t, s)].append(res)
            print(f"b1: round {r + 1} {t:8} {s:7} {res['rps']:9.0f} req/s  p50 "
                  f"{res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms  errors {res['errors']}")
    load_after = B.load()
finally:
    for p in (granary, nginx, app):
        if p:
            p.stop()
    B.rmtree(work)

names = ["direct", "nginx", "Granary"]

def figure(t, s, key):
    xs = [x[key] for x in results.get((t, s), [])]
    return B.med(xs) if xs else None

lines = [
    "## B1: proxy throughput and latency",
    "",
    f"Measured {B.machine()} by `tests/bench/b1-proxy.sh`: `wrk -t1 -c{CONNS} -d{SECONDS}s` "
    f"against the same binary, `build/apps/grain-test`, {ROUNDS} rounds (the order of targets "
    "and sizes reversed every other round); medians over the rounds, min–max in brackets. "
    "Every target kept its connections alive (checked before measuring: two requests on one "
    "connection, no `Connection: close`). nginx: nginx-light, 1 worker, `upstream { keepalive "
    f"32; }}`, HTTP/1.1 upstream, answers buffered in memory (8 × 64 KiB buffers). Load average {load_before} before, {load_after} "
    "after (1, 5, 15 min): wrk, the proxy and the app share the 2 cores.",
    "",
    "| target | answer | req/s | p50 | p99 | req/s vs nginx | p99 vs nginx |",
    "|---|---|---:|---:|---:|---:|---:|",
]
for s, _ in SIZES:
    ng_rps, ng_p99 = figure("nginx", s, "rps"), figure("nginx", s, "p99_ms")
    for t in names:
        rps = figure(t, s, "rps")
        if rps is None:
            lines.append(f"| {t} | {s} | not run yet | | | | |")
            continue
        p50, p99 = figure(t, s, "p50_ms"), figure(t, s, "p99_ms")
        errors = sum(x["errors"] for x in results[(t, s)])
        lines.append(
            f"| {t} | {s} | {rps[0]:,.0f} ({rps[1]:,.0f}–{rps[2]:,.0f}) | {p50[0]:.3f} ms | "
            f"{p99[0]:.3f} ms ({p99[1]:.3f}–{p99[2]:.3f}) | "
            f"{'**' if t == 'Granary' else ''}{rps[0] / ng_rps[0]:.2f}×{'**' if t == 'Granary' else ''} | "
            f"{p99[0] / ng_p99[0]:.2f}× |" + (f" ({errors} socket errors)" if errors else ""))
lines += [
    "",
    "![B1: requests per second](b1.svg)",
    "",
    "![B1: p99 latency](b1-p99.svg)",
    "",
    "Goal: Granary ≥ 1.0× nginx's req/s (stretch 1.2×) with p99 ≤ nginx's, every request "
    "capability-checked. " + (f"**Granary: not run yet** ({granary_why}); the direct and nginx "
                              "rows are the peers it will be measured against."
                              if "Granary" not in targets else ""),
]
B.write_section("b1", lines)
svgplot.bar_chart(os.path.join(B.DOCS, "b1.svg"), f"B1: req/s, wrk -t1 -c{CONNS}, keep-alive",
                  [s for s, _ in SIZES],
                  [(t, [figure(t, s, "rps")[0] if figure(t, s, "rps") else None for s, _ in SIZES],
                    [figure(t, s, "rps")[1:] if figure(t, s, "rps") else None for s, _ in SIZES])
                   for t in names], "requests per second")
svgplot.bar_chart(os.path.join(B.DOCS, "b1-p99.svg"), "B1: p99 latency (lower is better)",
                  [s for s, _ in SIZES],
                  [(t, [figure(t, s, "p99_ms")[0] if figure(t, s, "p99_ms") else None
                        for s, _ in SIZES],
                    [figure(t, s, "p99_ms")[1:] if figure(t, s, "p99_ms") else None
                     for s, _ in SIZES]) for t in names], "milliseconds")
EOF
