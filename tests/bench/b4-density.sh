#!/bin/bash
# B4 (../shared/docs/BENCHMARKS.md): density. 100, 500 and 1000 running
# grains of grain-test, each started by one GET through Granary's proxy:
# the time to start them all (one after the other), and the memory of front,
# the launcher, each grain-init and each app, what the kernel and the
# grains' cgroups hold, and front's growth per grain. Each size runs on a
# fresh granaryd (grains created with POST /api/grains, sessions opened with
# POST /api/grains/ID/open).
#
# BENCHMARKS.md names no peer (Sandstorm: 50-500 MB per open grain). Measured
# in the same run, as the floor under Granary's figures: the same number of
# sandboxes of the same package started directly with granary-sandbox (no
# daemon: a granary-sandbox parent per grain instead of the launcher), each
# waited for until its port accepts inside its network namespace.
#
# Writes docs/benchmarks/b4.md and b4.svg (memory per grain).
#
#   make bench T=b4                       (or, as root: bash tests/bench/b4-density.sh)
#   B4_SIZES="100 500 1000"               (default)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
die() { echo "b4: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granaryd, grains, granary-sandbox)"

/usr/bin/python3 - "$top" <<'EOF'
import os, signal, subprocess, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "bench"))
import benchlib as B
import svgplot

SIZES = [int(x) for x in os.environ.get("B4_SIZES", "100 500 1000").split()]
SETTLE = 2.0  # seconds of quiet before measuring
work = B.tmpdir("granary-b4-")
spk = B.apps.build_app("grain-test")
root = str(B.apps.unpack(spk, os.path.join(work, "pkg")))
os.chmod(root, 0o755)


def cgroup_kib(pid):
    """The memory cgroup usage of pid's cgroup (v1 or v2), KiB; None if unknown."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            p = f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"
        elif ctrls == "":
            p = f"/sys/fs/cgroup{path}/memory.current"
        else:
            continue
        if os.path.exists(p):
            with open(p) as f:
                return int(f.read()) // 1024
    return None


def grains_memory(inits):
    """Per grain: grain-init and app RSS/PSS, cgroup usage (KiB)."""
    out = {"init_rss": [], "init_pss": [], "app_rss": [], "app_pss": [], "cgroup": []}
    for pid in inits:
        m = B.kib(pid, "VmRSS", "Pss")
        out["init_rss"].append(m.get("VmRSS", 0))
        out["init_pss"].append(m.get("Pss", 0))
        for app in B.children(pid):
            m = B.kib(app, "VmRSS", "Pss")
            out["app_rss"].append(m.get("VmRSS", 0))
            out["app_pss"].append(m.get("Pss", 0))
        c = cgroup_kib(pid)
        if c is not None:
            out["cgroup"].append(c)
    return out


def avg(xs):
    return sum(xs) / len(xs) if xs else 0


results = {"Granary": {}, "sandboxes": {}}
granary_why = ""
load_before = B.load()

# ---- Granary ---------------------------------------------------------------------
for n in SIZES:
    g = None
    try:
        g = B.Granary(os.path.join(work, f"g{n}"))
        app_id = g.install(spk)
        time.sleep(SETTLE)
        front_fresh = B.kib(g.roles()["front"], "VmRSS")["VmRSS"]
        grains = [g.new_grain(app_id, f"b4 {i}") for i in range(n)]
        hosts = [g.open(gid)[1] for gid in grains]
        time.sleep(SETTLE)
        roles = g.roles()
        front0 = B.kib(roles["front"], "VmRSS", "Pss")
        used0 = B.meminfo_used()
        t0 = time.perf_counter()
        for host in hosts:
            _, status = B.first_byte_ms(g.port, host)
            if not status.startswith("HTTP/1.1 200"):
                B.die("b4", f"GET / on a grain answered {status!r}")
        took = time.perf_counter() - t0
        time.sleep(SETTLE)
        inits = g.grain_inits()
        if len(inits) != n:
            B.die("b4", f"{n} grains started, {len(inits)} grain-init processes found")
        front = B.kib(roles["front"], "VmRSS", "Pss", "VmHWM")
        results["Granary"][n] = {
            "took": took, "used": (B.meminfo_used() - used0) / n,
            "front_fresh": front_fresh, "front0": front0, "front": front,
            "launcher": B.kib(roles["launcher"], "VmRSS", "Pss"),
            **grains_memory(inits)}
        print(f"b4: Granary, {n} grains started in {took:.2f} s")
    except B.NotAvailable as e:
        granary_why = str(e)
        print(f"b4: Granary not measured: {e}")
        break
    finally:
        if g:
            g.stop()
    if B.conftest.wait_for(lambda: not any(B.argv0(p) == "grain-init"
                                           for p in B.descendants(1)), timeout=60) is False:
        print("b4: grain-init processes outlived granaryd")

# ---- sandboxes alone ------------------------------------------------------------------
SANDBOX = os.path.join(B.BUILD, "granary-sandbox")
for n in SIZES:
    procs = []
    try:
        time.sleep(SETTLE)
        used0 = B.meminfo_used()
        t0 = time.perf_counter()
        for i in range(n):
            p = subprocess.Popen([SANDBOX, "--root", root, "--", "/app/grain-test", "8000"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            procs.append(p)

            def up():
                if p.poll() is not None:
                    B.die("b4", f"granary-sandbox exited with {p.returncode}")
                kids = B.children(p.pid)
                if not kids:
                    return False
                B.apps.connect_in_netns(kids[0], 8000, 5).close()
                return True

            if not B.conftest.wait_for(up, timeout=30, interval=0.0005):
                B.die("b4", f"sandbox {i} did not listen")
        took = time.perf_counter() - t0
        time.sleep(SETTLE)
        inits = [B.children(p.pid)[0] for p in procs]
        results["sandboxes"][n] = {
            "took": took, "used": (B.meminfo_used() - used0) / n,
            "parent_rss": avg([B.kib(p.pid, "VmRSS").get("VmRSS", 0) for p in procs]),
            "parent_pss": avg([B.kib(p.pid, "Pss").get("Pss", 0) for p in procs]),
            **grains_memory(inits)}
        print(f"b4: sandboxes alone, {n} started in {took:.2f} s")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
load_after = B.load()
B.rmtree(work)


def mem_row(label, n, r, extra):
    return (f"| {label} | {n} | {r['took']:.2f} s ({r['took'] / n * 1000:.1f} ms each) | "
            f"{avg(r['init_rss']):.0f} / {max(r['init_rss']):.0f} / {avg(r['init_pss']):.0f} | "
            f"{avg(r['app_rss']):.0f} / {max(r['app_rss']):.0f} / {avg(r['app_pss']):.0f} | "
            f"{avg(r['cgroup']):.0f} | **{r['used']:.0f}** | {extra} |")


lines = [
    "## B4: density",
    "",
    f"Measured {B.machine()} by `tests/bench/b4-density.sh`, cgroups v1 (hybrid host): "
    f"{', '.join(map(str, SIZES))} running grains of `grain-test`, started one after the "
    f"other; measured {SETTLE:.0f} s after the last start. Load average {load_before} before, "
    f"{load_after} after. Memory in KiB; RSS counts shared pages in every process, PSS divides "
    "them (grain-init and the app are static: little is shared); *cgroup* is the grain's "
    "memory cgroup (`memory.usage_in_bytes`: the processes, their page tables and the kernel "
    "memory charged to them); *total* is MemTotal − MemAvailable after minus before, per grain "
    "(everything, kernel included, and whatever else the machine did meanwhile: an estimate).",
    "",
    "### Through Granary",
    "",
]
if results["Granary"]:
    lines += [
        "| | grains | time to start all | grain-init RSS avg / max / PSS avg | "
        "app RSS avg / max / PSS avg | cgroup avg | total per grain | front, launcher |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for n, r in results["Granary"].items():
        per = (r["front"]["VmRSS"] - r["front0"]["VmRSS"]) * 1024 / n
        per_all = (r["front"]["VmRSS"] - r["front_fresh"]) * 1024 / n
        lines.append(mem_row("Granary", n, r,
                             f"front RSS {r['front_fresh']} fresh, {r['front0']['VmRSS']} with "
                             f"the grains made and opened, {r['front']['VmRSS']} with them "
                             f"running: **{per:.0f} bytes per running grain** ({per_all:.0f} "
                             f"from fresh), PSS {r['front']['Pss']}; launcher RSS "
                             f"{r['launcher']['VmRSS']}, PSS {r['launcher']['Pss']}"))
    lines += ["", "Goals: 1000 grains on 24 GiB; grain-init RSS ≤ 1 MiB; front ≤ 32 KiB per grain."]
else:
    lines += [f"**Not run yet** ({granary_why}). Goals: 1000 grains on 24 GiB; grain-init RSS "
              "≤ 1 MiB; front ≤ 32 KiB per grain."]
lines += [
    "",
    "### The same grains' sandboxes alone (no daemon)",
    "",
    "`granary-sandbox --root PKG -- /app/grain-test 8000`, one per grain, each waited for "
    "until its port accepts. Each sandbox also has a `granary-sandbox` parent (the last "
    "column), which a daemon's grains do not have: the launcher starts them all.",
    "",
    "| | grains | time to start all | grain-init RSS avg / max / PSS avg | "
    "app RSS avg / max / PSS avg | cgroup avg | total per grain | granary-sandbox parent |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
]
for n, r in results["sandboxes"].items():
    lines.append(mem_row("sandboxes", n, r, f"RSS {r['parent_rss']:.0f}, PSS {r['parent_pss']:.0f}"))
lines += ["", "![B4: memory per grain](b4.svg)"]
B.write_section("b4", lines)

series = []
for label, key in (("Granary: total per grain", "Granary"), ("sandboxes alone: total", "sandboxes")):
    series.append((label, [results[key][n]["used"] if n in results[key] else None for n in SIZES],
                   None))
series.append(("grain-init PSS", [avg(results["sandboxes"][n]["init_pss"])
                                  if n in results["sandboxes"] else None for n in SIZES], None))
series.append(("app PSS", [avg(results["sandboxes"][n]["app_pss"])
                           if n in results["sandboxes"] else None for n in SIZES], None))
svgplot.bar_chart(os.path.join(B.DOCS, "b4.svg"), "B4: memory per running grain",
                  [f"{n} grains" for n in SIZES], series, "KiB per grain")
EOF
