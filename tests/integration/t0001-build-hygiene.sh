#!/bin/bash
# Build hygiene: every program answers --help and --version, grain-init is
# static, every C file includes common/banned.h last, no banned call slips
# past it (e.g. through a macro), and the tree is formatted.
set -u
cd "${GRANARY_SOURCE:-.}" || exit 1
build=${GRANARY_BUILD:-build}
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

programs="granaryd granary spk granary-sandbox grain-init"
echo "1..$((4 * 5 + 4))"

for p in $programs; do
	out=$("$build/$p" --help 2>&1); rc=$?
	check "$p --help exits 0" [ "$rc" -eq 0 ]
	check "$p --help shows usage" grep -q "^Usage: $p" <<<"$out"
	out=$("$build/$p" --version 2>&1); rc=$?
	check "$p --version prints '$p VERSION'" grep -qE "^$p [0-9]+\.[0-9]+\.[0-9]+$" <<<"$out"
	out=$("$build/$p" --no-such-option 2>&1); rc=$?
	check "$p refuses an unknown option" [ "$rc" -ne 0 ]
done

check "grain-init is statically linked" \
	bash -c "file '$build/grain-init' | grep -q 'statically linked'"

# Every C source includes banned.h, and as its last include.
bad=""
for f in $(git ls-files '*.c'); do
	last=$(grep -E '^#include' "$f" | tail -n 1)
	[ "$last" = '#include "common/banned.h"' ] || bad="$bad $f"
done
check "every .c file includes common/banned.h last${bad:+ (not:$bad)}" [ -z "$bad" ]

# Belt and braces: a banned name used where banned.h cannot see it.
hits=$(git grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|gets|atoi|atol|atoll)[[:space:]]*\(' \
	-- '*.c' '*.h' ':!common/banned.h' | grep -vE '^\S+:[0-9]+:\s*(/\*|\*)' || true)
check "no banned function is called${hits:+: $hits}" [ -z "$hits" ]

if command -v clang-format >/dev/null; then
	out=$(make -s style 2>&1); rc=$?
	check "make style: the tree is formatted${rc:+}" [ "$rc" -eq 0 ]
	[ "$rc" -eq 0 ] || echo "$out" | head -20 | sed 's/^/# /'
else
	echo "ok $((n + 1)) - make style # SKIP clang-format is not installed"
	n=$((n + 1))
fi
