#!/bin/bash
# B5: spk pack, verify and unpack throughput on a ~200 MB real tree, against
# tar --zstd and tar --xz (Sandstorm's choice) in the same run.
#
#   make bench T=b5            (or: BUILD=build tests/bench/b5-spk.sh)
#   B5_RUNS=5 B5_XZ_RUNS=3     runs per tool (xz is slow: fewer runs)
#   B5_TREE="/usr/lib/python3 /usr/lib/python3.11 /usr/include"
#
# The tree is copied once into $BUILD/bench-b5 on the disk the build lives
# on; every tool reads and writes there. Rounds alternate the order of the
# tools (A B C, then C B A, ...). Every run writes to a new path and nothing
# is deleted until the end: deleting a tree of 15k files slows the next
# writer on these machines for many seconds, whoever it is. Before each run
# the disk is synced (outside the timing), so no run pays for another's
# writeback. MB/s is of the tree's apparent size (sum of file sizes), 1 MB =
# 10^6 bytes. Writes docs/benchmarks/b5.md; asserts nothing about speed.
# Needs about (runs x 3 + 2) x the tree's size of free disk.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
build=$(cd "$BUILD" && pwd)
spk=$build/spk
runs=${B5_RUNS:-5}
xz_runs=${B5_XZ_RUNS:-3}
tree_sources=${B5_TREE:-/usr/lib/python3 /usr/lib/python3.11 /usr/include}
work=$build/bench-b5
out=docs/benchmarks/b5.md

for tool in tar zstd xz; do
	command -v "$tool" >/dev/null || { echo "b5: $tool is missing" >&2; exit 1; }
done
[ -x "$spk" ] || { echo "b5: no $spk; run make" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/tree" "$work/def"
echo "b5: copying $tree_sources into $work/tree"
for s in $tree_sources; do
	[ -e "$s" ] && cp -a "$s" "$work/tree/"
done
bytes=$(find "$work/tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
entries=$(find "$work/tree" | wc -l)
echo "b5: $entries entries, $bytes bytes"

export GRANARY_KEYRING=$work/keyring
app_id=$("$spk" keygen 2>/dev/null)
cat >"$work/def/spk.json" <<EOF
{ "app": { "id": "$app_id", "title": "B5", "version": 1 },
  "run": { "command": ["/bin/true"], "httpPort": 8000 },
  "files": { "sources": [ { "from": "$work/tree", "to": "tree" } ] } }
EOF

# name → space-separated durations in seconds
declare -A times

settle() {
	sync
	sleep "${B5_SETTLE:-1}"
}

# timed NAME COMMAND...: run once, record its wall time.
timed() {
	local name=$1 start end
	shift
	start=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || { echo "b5: '$*' failed" >&2; "$@" >&2 || true; exit 1; }
	end=$(date +%s.%N)
	times[$name]+="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') "
}

# The tools, one function per operation, each writing to a new path ($2: the run).
pack_spk() { timed pack_spk "$spk" pack --quiet "$work/def" "$work/out-$1.spk"; }
pack_zstd() { timed pack_zstd tar --zstd -cf "$work/out-$1.tar.zst" -C "$work" tree; }
pack_xz() { timed pack_xz tar --xz -cf "$work/out-$1.tar.xz" -C "$work" tree; }
verify_spk() { timed verify_spk "$spk" verify --quiet "$work/out-0.spk"; }
verify_zstd() { timed verify_zstd tar --zstd -tf "$work/out-0.tar.zst"; }
verify_xz() { timed verify_xz tar --xz -tf "$work/out-0.tar.xz"; }
unpack_spk() { timed unpack_spk "$spk" unpack --quiet "$work/out-0.spk" "$work/x-spk-$1"; }
unpack_zstd() {
	mkdir "$work/x-zstd-$1" && timed unpack_zstd tar --zstd -xf "$work/out-0.tar.zst" -C "$work/x-zstd-$1"
}
unpack_xz() {
	mkdir "$work/x-xz-$1" && timed unpack_xz tar --xz -xf "$work/out-0.tar.xz" -C "$work/x-xz-$1"
}

# round OP I: run I of each tool for OP, in alternating order (xz only while
# it still has runs to do).
round() {
	local op=$1 i=$2 tool
	local order="spk zstd xz"
	[ $((i % 2)) -eq 1 ] && order="xz zstd spk"
	for tool in $order; do
		[ "$tool" = xz ] && [ "$i" -ge "$xz_runs" ] && continue
		settle
		"${op}_$tool" "$i"
	done
}

for op in pack verify unpack; do
	for ((i = 0; i < runs; i++)); do
		echo "b5: $op round $((i + 1))/$runs"
		round "$op" "$i"
	done
done

# stats NAME → "median min max" in MB/s
stats() {
	printf '%s\n' ${times[$1]} | awk -v bytes="$bytes" '{ print bytes / $1 / 1e6 }' | sort -g |
		awk '
		{ v[NR] = $1 }
		END {
			n = NR
			median = n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			printf "%s %s %s", f(median), f(v[1]), f(v[n])
		}
		function f(x) { return sprintf(x < 10 ? "%.1f" : "%.0f", x) }'
}

cell() {
	local m lo hi
	read -r m lo hi <<<"$(stats "$1")"
	printf '%s (%s–%s)' "$m" "$lo" "$hi"
}

ratio() {
	local a b
	a=$(stats "$1" | cut -d' ' -f1)
	b=$(stats "$2" | cut -d' ' -f1)
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
}

size_mb() { awk -v n="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", n / 1e6 }'; }

unpack_ratio=$(ratio unpack_spk unpack_zstd)
goal=$(awk -v r="$unpack_ratio" 'BEGIN { print (r >= 0.9) }')
mkdir -p docs/benchmarks
{
	echo "## B5: spk pack, verify, unpack"
	echo
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores"
	echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
	echo "Linux $(uname -r), $(df -T "$work" | awk 'NR == 2 { print $2 }') file system,"
	echo "spk $("$spk" --version | cut -d' ' -f2), $(tar --version | head -n1), $(zstd --version | sed 's/\*//g; s/^ *//; s/,.*//'),"
	echo "$(xz --version | head -n1). Command: \`make bench T=b5\` (tests/bench/b5-spk.sh)."
	echo
	echo "Tree: $(echo $tree_sources | sed 's/ /, /g'): $entries entries, $(awk -v n="$bytes" 'BEGIN { printf "%.1f", n / 1e6 }') MB"
	echo "of file content. MB/s of that content, median (min–max) of $runs runs ($xz_runs for xz),"
	echo "tools alternating, each run writing to a new path with the disk synced before it;"
	echo "nothing is deleted until the end."
	echo
	echo "| operation | spk | tar --zstd | tar --xz | spk / tar --zstd |"
	echo "|---|---:|---:|---:|---:|"
	echo "| pack | $(cell pack_spk) | $(cell pack_zstd) | $(cell pack_xz) | $(ratio pack_spk pack_zstd)× |"
	echo "| verify | $(cell verify_spk) | $(cell verify_zstd) | $(cell verify_xz) | $(ratio verify_spk verify_zstd)× |"
	echo "| unpack | $(cell unpack_spk) | $(cell unpack_zstd) | $(cell unpack_xz) | $(ratio unpack_spk unpack_zstd)× |"
	echo
	echo "Sizes: spk $(size_mb "$work/out-0.spk") MB, tar.zst $(size_mb "$work/out-0.tar.zst") MB, tar.xz $(size_mb "$work/out-0.tar.xz") MB."
	echo
	echo "Goal unpack ≥ 0.9× tar --zstd: **$([ "$goal" = 1 ] && echo met || echo "not met") ($unpack_ratio×)**."
	echo
	echo "What each does. *pack*: spk reads the files, checks every name, sorts, writes"
	echo "pax through libarchive into libzstd (level 3, a worker thread per core) and"
	echo "signs; tar --zstd pipes to a separate zstd process (level 3). *verify*:"
	echo "\`spk verify\` hashes the file, checks the signature, then decompresses and checks"
	echo "every entry as an install would; \`tar -t\` decompresses and lists. *unpack*: spk"
	echo "verifies first (one more read of the file), re-hashes while it decompresses,"
	echo "checks every entry and writes through libarchive into a temporary directory"
	echo "renamed at the end; tar writes in place and also restores owners and times."
} >"$out"
cat "$out"
rm -rf "$work"
