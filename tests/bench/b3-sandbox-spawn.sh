#!/bin/bash
# B3 (../shared/docs/BENCHMARKS.md): sandbox spawn-to-exit of a static no-op
# through granary-sandbox, against bwrap in the same run; and the memory an
# idle sandbox costs. Writes docs/benchmarks/b3.md.
#
#   make bench T=b3                      (or: bash tests/bench/b3-sandbox-spawn.sh)
#   B3_ROUNDS=10 B3_RUNS=30 B3_IDLE=20   (defaults)
#
# Spawn-to-exit: hyperfine -N (no shell in between) runs each command B3_RUNS
# times per round; the order of the commands alternates every round, and the
# medians and min-max are over every run of every round. Root is needed
# (granary-sandbox maps the grain to a host uid and makes cgroups).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${GRANARY_BUILD:-$top/build}
ROUNDS=${B3_ROUNDS:-10}
RUNS=${B3_RUNS:-30}
IDLE=${B3_IDLE:-20}
out=$top/docs/benchmarks/b3.md

die() { echo "b3: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (granary-sandbox needs it for uid maps and cgroups)"
for cmd in hyperfine bwrap gcc /usr/bin/python3; do
	command -v "$cmd" >/dev/null || die "$cmd is missing (scripts/deps.sh ensure bench)"
done
[ -x "$BUILD/granary-sandbox" ] || die "no $BUILD/granary-sandbox; run make"

tmp=$(mktemp -d /tmp/granary-b3-XXXXXX)
chmod 755 "$tmp"
idle_pids=()
cleanup() {
	for p in "${idle_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/pkg"
printf 'int main(void) { return 0; }\n' | gcc -static -O2 -x c - -o "$tmp/pkg/noop"
printf '#include <unistd.h>\nint main(void) { pause(); return 0; }\n' |
	gcc -static -O2 -x c - -o "$tmp/pkg/idle"

grain="$BUILD/granary-sandbox --root $tmp/pkg -- /noop"
peer="bwrap --unshare-all --cap-drop ALL --ro-bind $tmp/pkg / /noop"
nolimits="$BUILD/granary-sandbox --allow-no-limits --cgroup-root $tmp/no-cgroups --root $tmp/pkg -- /noop"
alike="bwrap --unshare-all --cap-drop ALL --die-with-parent --new-session --tmpfs / --ro-bind $tmp/pkg/noop /noop --dev /dev --proc /proc --tmpfs /tmp --tmpfs /var --remount-ro / /noop"

$grain || die "granary-sandbox cannot run the no-op here"
$peer || die "bwrap cannot run the no-op here"
$alike || die "bwrap (grain-like) cannot run the no-op here"
mkdir "$tmp/no-cgroups"
$nolimits 2>/dev/null || die "granary-sandbox --allow-no-limits cannot run the no-op here"

echo "b3: $ROUNDS rounds of $RUNS runs per command"
cut -d' ' -f1-3 /proc/loadavg >"$tmp/load-before"
for round in $(seq 1 "$ROUNDS"); do
	if [ $((round % 2)) -eq 1 ]; then
		order=("$grain" "$peer" "$alike" "$nolimits")
	else
		order=("$nolimits" "$alike" "$peer" "$grain")
	fi
	hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-json "$tmp/round-$round.json" \
		"${order[@]}" >/dev/null
done

cut -d' ' -f1-3 /proc/loadavg >"$tmp/load-after"

# Idle sandboxes: memory of grain-init and the app, the grain's cgroup, and
# what the kernel holds for each (namespaces, mounts, page tables), from
# /proc/meminfo before and after starting them (noisy: an estimate).
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
cp /proc/meminfo "$tmp/meminfo-before"
for i in $(seq 1 "$IDLE"); do
	"$BUILD/granary-sandbox" --root "$tmp/pkg" -- /idle &
	idle_pids+=($!)
done
for p in "${idle_pids[@]}"; do
	for _ in $(seq 1 500); do
		c=$(cat "/proc/$p/task/$p/children" 2>/dev/null || true)
		[ -n "$c" ] && [ -n "$(cat "/proc/${c% }/task/${c% }/children" 2>/dev/null)" ] && break
		sleep 0.01
	done
done
sleep 0.5
cp /proc/meminfo "$tmp/meminfo-after"
printf '%s\n' "${idle_pids[@]}" >"$tmp/idle-pids"

/usr/bin/python3 - "$tmp" "$ROUNDS" "$RUNS" "$IDLE" "$out" "$grain" "$peer" "$alike" "$nolimits" "$top" <<'EOF'
import json, os, statistics, sys

tmp, rounds, runs, idle, out, grain, peer, alike, nolimits, top = sys.argv[1:11]
sys.path.insert(0, os.path.join(top, "tests", "bench"))
import benchlib as B
rounds, runs, idle = int(rounds), int(runs), int(idle)
times = {grain: [], peer: [], alike: [], nolimits: []}
for r in range(1, rounds + 1):
    with open(f"{tmp}/round-{r}.json") as f:
        for res in json.load(f)["results"]:
            times[res["command"]] += res["times"]

def fmt(cmd):
    t = sorted(x * 1000 for x in times[cmd])
    return statistics.median(t), t[0], t[-1], len(t)

def meminfo(path):
    d = {}
    with open(path) as f:
        for line in f:
            k, v = line.split(":")
            d[k] = int(v.split()[0])
    return d

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []

def kib(pid, key, path="status"):
    with open(f"/proc/{pid}/{path}") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

before, after = meminfo(f"{tmp}/meminfo-before"), meminfo(f"{tmp}/meminfo-after")
clis = [int(x) for x in open(f"{tmp}/idle-pids").read().split()]
inits, apps, cgroups, clirss = [], [], [], []
for cli in clis:
    init = children(cli)[0]
    app = children(init)[0]
    inits.append((kib(init, "VmRSS"), kib(init, "Pss", "smaps_rollup")))
    apps.append((kib(app, "VmRSS"), kib(app, "Pss", "smaps_rollup")))
    clirss.append(kib(cli, "VmRSS"))
    with open(f"/proc/{init}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.strip().split(":", 2)
            if "memory" in ctrls.split(","):
                usage = f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes"
                if os.path.exists(usage):
                    cgroups.append(int(open(usage).read()) // 1024)
used = lambda m: m["MemTotal"] - m["MemAvailable"]
per_grain = (used(after) - used(before)) / idle
kernel = sum(after[k] - before[k] for k in ("Slab", "KernelStack", "PageTables")) / idle

g, p, a, n = fmt(grain), fmt(peer), fmt(alike), fmt(nolimits)
avg = lambda xs: sum(xs) / len(xs) if xs else 0
lines = [
    "## B3: sandbox spawn-to-exit",
    "",
    f"Measured {B.machine()}, cgroups v1 (hybrid host), by "
    f"`tests/bench/b3-sandbox-spawn.sh`: {rounds} rounds of {runs} runs of each command "
    "with `hyperfine -N` (no shell), the order of the commands alternating every round; "
    f"median and min–max over all {g[3]} runs of each. A static no-op, its package "
    "a directory holding only it. The machine is shared: load average "
    f"{open(tmp + '/load-before').read().strip()} before, "
    f"{open(tmp + '/load-after').read().strip()} after (1, 5, 15 min); the ratios, "
    "measured in the same rounds, are the figures to read.",
    "",
    "| command | median | min–max | vs bwrap |",
    "|---|---|---|---|",
    f"| `granary-sandbox --root PKG -- /noop` | {g[0]:.2f} ms | {g[1]:.2f}–{g[2]:.2f} ms | "
    f"**{g[0] / p[0]:.2f}×** |",
    f"| `bwrap --unshare-all --cap-drop ALL --ro-bind PKG / /noop` (the peer) | {p[0]:.2f} ms "
    f"| {p[1]:.2f}–{p[2]:.2f} ms | 1.00× |",
    f"| `bwrap --unshare-all --cap-drop ALL --die-with-parent --new-session --tmpfs / "
    f"--ro-bind PKG/noop /noop --dev /dev --proc /proc --tmpfs /tmp --tmpfs /var "
    f"--remount-ro / /noop` (a grain's layout) | {a[0]:.2f} ms | {a[1]:.2f}–{a[2]:.2f} ms | "
    f"{a[0] / p[0]:.2f}× |",
    f"| `granary-sandbox --allow-no-limits` on a host without cgroups (to show their cost) "
    f"| {n[0]:.2f} ms | {n[1]:.2f}–{n[2]:.2f} ms | {n[0] / p[0]:.2f}× |",
    "",
    "Goal: ≤ 1.0× bwrap. What the granary-sandbox run does that the peer does not: "
    "grain-init as pid 1 from a sealed memfd (an extra exec and fork), a cgroup per "
    "sandbox in three v1 hierarchies (memory, pids, cpu: made, limited, joined, removed), "
    "a host uid taken from a range and locked, the host self-check (sysctls, kernel, "
    "cgroups), the seccomp filter, securebits and capability sets verified, /dev with "
    "five device binds and a /dev/shm tmpfs, /proc, /tmp and /var tmpfs, lo brought up. "
    "The third row gives bwrap the same mounts, still without cgroups, filter or init.",
    "",
    "### Idle sandbox memory",
    "",
    f"{idle} sandboxes running a static `pause()` (grain-init + the app), measured together:",
    "",
    "| what | per sandbox |",
    "|---|---|",
    f"| grain-init RSS / PSS | {avg([x[0] for x in inits]):.0f} / {avg([x[1] for x in inits]):.0f} KiB |",
    f"| the idle app RSS / PSS | {avg([x[0] for x in apps]):.0f} / {avg([x[1] for x in apps]):.0f} KiB |",
    f"| the grain's memory cgroup (usage_in_bytes) | {avg(cgroups):.0f} KiB |",
    f"| kernel: Slab + KernelStack + PageTables (/proc/meminfo delta / {idle}) | {kernel:.0f} KiB |",
    f"| everything: MemTotal − MemAvailable delta / {idle} | {per_grain:.0f} KiB |",
    f"| (the granary-sandbox parent process, RSS; the launcher replaces it) | {avg(clirss):.0f} KiB |",
    "",
    "The /proc/meminfo deltas include everything else the machine did meanwhile: an "
    "estimate, not a measurement of the sandbox alone.",
]
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "b3: wrote $out"
