#!/bin/sh
# apps/php-hello/build.sh [OUT.spk]: list what the app needs from the host
# (make-list.sh), then pack it. As for apps/hello, put your own app id in
# spk.json first (docs/packaging.md). SPK overrides the spk tool.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-php-hello.spk}
spk=${SPK:-}
if [ -z "$spk" ]; then
	if [ -x "$top/build/spk" ]; then spk=$top/build/spk; else spk=spk; fi
fi
"$here/make-list.sh"
"$spk" pack "$here" "$out"
