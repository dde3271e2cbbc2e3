#!/bin/sh
# apps/hello/build.sh [OUT.spk]: compile the app statically, then pack it.
#
# The app id in spk.json is its author's; to pack it yourself, make a key
# with `spk keygen` and put the app id it prints into spk.json's app.id
# (docs/packaging.md). SPK overrides the spk tool (default: build/spk of
# this tree, else spk on PATH).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=${GRANARY_SOURCE:-$(cd "$here/../.." && pwd)}
out=${1:-hello.spk}
spk=${SPK:-}
if [ -z "$spk" ]; then
	if [ -x "$top/build/spk" ]; then spk=$top/build/spk; else spk=spk; fi
fi
# hello.c includes Granary's common/banned.h (every C file in the tree does);
# built outside the tree, an empty one stands in.
include=$top
if [ ! -f "$top/common/banned.h" ]; then
	include=$(mktemp -d)
	trap 'rm -rf "$include"' EXIT
	mkdir "$include/common"
	: >"$include/common/banned.h"
fi
cc -static -O2 -Wall -I"$include" -o "$here/hello" "$here/hello.c"
"$spk" pack "$here" "$out"
