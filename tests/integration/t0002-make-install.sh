#!/bin/bash
# make install puts the programs where PREFIX and DESTDIR say, and the
# installed binaries run.
set -u
cd "${GRANARY_SOURCE:-.}" || exit 1
build=${GRANARY_BUILD:-$PWD/build}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
echo "1..7"
n=0
check() { local what=$1; shift; n=$((n + 1)); if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; fi; }

out=$(make -s install BUILD="$build" DESTDIR="$dest" PREFIX=/usr 2>&1)
check "make install succeeds" [ $? -eq 0 ]
[ -n "$out" ] && echo "$out" | sed 's/^/# /'
for p in granaryd granary spk granary-sandbox; do
	check "$p installed in \$PREFIX/bin and runs" "$dest/usr/bin/$p" --version
done
check "grain-init installed in \$PREFIX/lib/granary" test -x "$dest/usr/lib/granary/grain-init"
check "nothing installed outside DESTDIR/PREFIX" \
	bash -c "[ -z \"\$(find '$dest' -mindepth 1 -maxdepth 1 ! -name usr)\" ]"
