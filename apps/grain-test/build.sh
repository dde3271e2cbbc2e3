#!/bin/sh
# apps/grain-test/build.sh [OUT.spk]: compile the test app statically, then
# pack it. `make` builds the same program as build/apps/grain-test; this
# script is for packing it alone (tests/integration/apps.py packs it with a
# key of each test's own). As for apps/hello, put your own app id in
# spk.json first (docs/packaging.md). SPK overrides the spk tool.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=${GRANARY_SOURCE:-$(cd "$here/../.." && pwd)}
out=${1:-grain-test.spk}
spk=${SPK:-}
if [ -z "$spk" ]; then
	if [ -x "$top/build/spk" ]; then spk=$top/build/spk; else spk=spk; fi
fi
# grain-test.c includes Granary's common/banned.h (every C file in the tree
# does); built outside the tree, an empty one stands in.
include=$top
if [ ! -f "$top/common/banned.h" ]; then
	include=$(mktemp -d)
	trap 'rm -rf "$include"' EXIT
	mkdir "$include/common"
	: >"$include/common/banned.h"
fi
cc -std=gnu17 -static -O2 -Wall -I"$include" -o "$here/grain-test" "$here/grain-test.c"
"$spk" pack "$here" "$out"
