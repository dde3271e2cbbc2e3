#!/bin/bash
# B1 (../shared/docs/BENCHMARKS.md): proxy throughput and latency. wrk with
# one thread and 32 keep-alive connections asks for a 12-byte answer (GET /)
# and a 64 KiB one (GET /64k) of the same app binary, build/apps/grain-test:
#
#   direct            straight to grain-test on 127.0.0.1, unsandboxed
#   nginx             nginx-light, 1 worker, upstream keepalive 32, to that grain-test
#   direct in grain   wrk in the grain's network namespace, straight to the
#                     grain's app (the very process Granary's row reaches)
#   nginx to grain    the same nginx, run in the grain's network namespace,
#                     to the grain's app: BENCHMARKS.md's peer ("nginx reverse
#                     proxy ... to the same app"), the goal's denominator
#   Granary           granaryd's proxy to a grain of grain-test (its package,
#                     installed through the API; a session opened with POST
#                     /api/grains/ID/open, its host sent as Host), every
#                     request capability-checked
#
# The unsandboxed rows against the in-grain ones are what the sandbox costs
# the app (namespaces, seccomp, the grain's cgroups), whoever proxies to it.
# nsenter --net only: wrk and nginx keep the host's cgroups and no seccomp.
#
# Each round runs every target and size once, the order reversed every other
# round; medians and min-max over the rounds. Before measuring, each target
# must answer two requests on one connection without Connection: close (a
# proxy that closes would measure TCP set-up, not proxying). Beside req/s and
# latency, the CPU time per request of the app and of the proxy (all its
# threads), from /proc/PID/task/*/schedstat. Writes docs/benchmarks/b1.md,
# b1.svg (req/s) and b1-p99.svg.
#
#   make bench T=b1                     (or, as root: bash tests/bench/b1-proxy.sh)
#   B1_ROUNDS=3 B1_SECONDS=10 B1_CONNECTIONS=32   (defaults)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "b1: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granaryd, grains)"
for cmd in wrk nginx nsenter /usr/bin/python3; do
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

APP_PORT = B.apps.manifest_of("grain-test")["run"]["httpPort"]
PEER = "nginx to grain"

work = B.tmpdir("granary-b1-")
app = nginx = granary = grain_nginx = None
granary_why = ""
try:
    app = B.GrainTest()
    nginx = B.Nginx(app.port, work)
    # target: (port, Host, network namespace (a pid) or None, app pid, proxy pid or None)
    targets = {"direct": (app.port, f"127.0.0.1:{app.port}", None, app.proc.pid, None),
               "nginx": (nginx.port, f"127.0.0.1:{nginx.port}", None, app.proc.pid,
                         nginx.worker_pids()[0])}
    # No idle stop while the other rows run: the grain's app must stay the same process.
    granary = B.Granary(os.path.join(work, "g"), ["--grain-idle-timeout", "1d"])
    try:
        _, _, host = granary.require(B.apps.build_app("grain-test"))
        if not B.keep_alive_ok(granary.port, host):  # starts the grain
            B.die("b1", "Granary: no keep-alive")
        grain_app = granary.grain_app_pid("grain-test")
        grain_nginx = B.Nginx(APP_PORT, work, netns=grain_app)
        targets["direct in grain"] = (APP_PORT, f"127.0.0.1:{APP_PORT}", grain_app, grain_app,
                                      None)
        targets[PEER] = (grain_nginx.port, f"127.0.0.1:{grain_nginx.port}", grain_app,
                         grain_app, grain_nginx.worker_pids()[0])
        targets["Granary"] = (granary.port, host, None, grain_app, granary.roles()["front"])
    except B.NotAvailable as e:
        granary_why = str(e)
        print(f"b1: Granary not measured: {e}")
    for name, (port, host, netns, _, _) in targets.items():
        for _, path in SIZES:
            if not B.keep_alive_ok(port, host, path, netns):
                B.die("b1", f"{name} {path}: no keep-alive (a second request on the connection "
                      "failed, or Connection: close)")
            B.wrk(port, host, path, 1, CONNS, workdir=work, netns=netns)  # warm-up
    load_before = B.load()
    results = {(t, s): [] for t in targets for s, _ in SIZES}
    for r in range(ROUNDS):
        order = [(t, s, p) for t in targets for s, p in SIZES]
        if r % 2:
            order.reverse()
        for t, s, p in order:
            port, host, netns, app_pid, proxy_pid = targets[t]
            app0, proxy0 = B.cpu_ns(app_pid), B.cpu_ns(proxy_pid) if proxy_pid else 0
            res = B.wrk(port, host, p, SECONDS, CONNS, workdir=work, netns=netns)
            res["app_us"] = (B.cpu_ns(app_pid) - app0) / res["requests"] / 1000
            if proxy_pid:
                res["proxy_us"] = (B.cpu_ns(proxy_pid) - proxy0) / res["requests"] / 1000
            results[(t, s)].append(res)
            print(f"b1: round {r + 1} {t:15} {s:7} {res['rps']:9.0f} req/s  p50 "
                  f"{res['p50_ms']:.3f} ms  p99 {res['p99_ms']:.3f} ms  app "
                  f"{res['app_us']:.2f} us/req  proxy {res.get('proxy_us', 0):.2f} us/req  "
                  f"errors {res['errors']}")
    load_after = B.load()
    if "Granary" in targets and granary.grain_app_pid("grain-test") != targets["Granary"][3]:
        B.die("b1", "the grain's app was restarted during the run: its rows mix two processes")
finally:
    for p in (granary, grain_nginx, nginx, app):
        if p:
            p.stop()
    B.rmtree(work)

names = ["direct", "nginx", "direct in grain", PEER, "Granary"]

def figure(t, s, key):
    xs = [x[key] for x in results.get((t, s), [])]
    return B.med(xs) if xs else None

def ratio(t, s, key, peer=PEER):
    a, b = figure(t, s, key), figure(peer, s, key)
    return a[0] / b[0] if a and b else None


def cpu(t, s, key):
    v = figure(t, s, key) if all(key in x for x in results.get((t, s), [])) else None
    return f"{v[0]:.1f} µs" if v else "–"


lines = [
    "## B1: proxy throughput and latency",
    "",
    f"Measured {B.machine()} by `tests/bench/b1-proxy.sh`: `wrk -t1 -c{CONNS} -d{SECONDS}s` "
    f"against the same binary, `build/apps/grain-test`, {ROUNDS} round{'s' if ROUNDS > 1 else ''} (the order of targets "
    "and sizes reversed every other round); medians over the rounds, min–max in brackets. "
    "Every target kept its connections alive (checked before measuring: two requests on one "
    "connection, no `Connection: close`). nginx: nginx-light, 1 worker, `upstream { keepalive "
    "32; }`, HTTP/1.1 upstream, answers buffered in memory (8 × 64 KiB buffers). "
    f"Load average {load_before} before, {load_after} after (1, 5, 15 min): wrk, the proxy and "
    "the app share the 2 cores.",
    "",
    "Targets: *direct* and *nginx* reach grain-test run unsandboxed on the host; *direct in "
    "grain*, *nginx to grain* and *Granary* reach one and the same process, the app of a "
    "running grain (all its namespaces, seccomp filter and cgroups), wrk and nginx joining the "
    "grain's network namespace with `nsenter --net` (they keep the host's cgroups, no "
    "seccomp). *nginx to grain* is BENCHMARKS.md's peer, an nginx reverse proxy to the same "
    "app, and the goal's ratios are against it; the unsandboxed rows show what the sandbox "
    "costs the app whoever proxies to it. CPU per request: CPU time of the app and of the "
    "proxy (every thread; for Granary the front process) over the run, divided by the "
    "requests answered.",
    "",
    f"| target | answer | req/s | p50 | p99 | app CPU/req | proxy CPU/req | req/s vs {PEER} | "
    f"p99 vs {PEER} |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
]
for s, _ in SIZES:
    for t in names:
        rps = figure(t, s, "rps")
        if rps is None:
            lines.append(f"| {t} | {s} | not run yet | | | | | | |")
            continue
        p50, p99 = figure(t, s, "p50_ms"), figure(t, s, "p99_ms")
        errors = sum(x["errors"] for x in results[(t, s)])
        bold = "**" if t == "Granary" else ""
        vs_rps, vs_p99 = ratio(t, s, "rps"), ratio(t, s, "p99_ms")
        lines.append(
            f"| {t} | {s} | {rps[0]:,.0f} ({rps[1]:,.0f}–{rps[2]:,.0f}) | {p50[0]:.3f} ms | "
            f"{p99[0]:.3f} ms ({p99[1]:.3f}–{p99[2]:.3f}) | {cpu(t, s, 'app_us')} | "
            f"{cpu(t, s, 'proxy_us')} | "
            + (f"{bold}{vs_rps:.2f}×{bold} | {bold}{vs_p99:.2f}×{bold} |" if vs_rps else "– | – |")
            + (f" ({errors} socket errors)" if errors else ""))
if "Granary" in targets:
    sandbox = [f"{s}: direct in grain {ratio('direct in grain', s, 'rps', 'direct'):.2f}× "
               f"direct, nginx to grain {ratio(PEER, s, 'rps', 'nginx'):.2f}× nginx"
               for s, _ in SIZES]
    unsandboxed = [f"{ratio('Granary', s, 'rps', 'nginx'):.2f}× ({s})" for s, _ in SIZES]
    lines += ["", "The sandbox's cost in req/s (in-grain rows against their unsandboxed "
              "twins): " + "; ".join(sandbox) + ". Granary against nginx to the unsandboxed "
              "app (the ratio reported before the in-grain rows existed): "
              + ", ".join(unsandboxed) + "."]
lines += [
    "",
    "![B1: requests per second](b1.svg)",
    "",
    "![B1: p99 latency](b1-p99.svg)",
    "",
    f"Goal: Granary ≥ 1.0× {PEER}'s req/s (stretch 1.2×) with p99 ≤ its p99, every request "
    "capability-checked. Where the sandbox's cost goes, and why the grain keeps its cpu "
    "cgroup: docs/admin.md, Grains. "
    + (f"**Granary: not run yet** ({granary_why}); the direct and nginx rows are the peers it "
       "will be measured against." if "Granary" not in targets else ""),
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
