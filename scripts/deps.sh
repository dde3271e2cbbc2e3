#!/bin/bash
# The one list of what Granary needs from Debian, and the step that installs it.
#
#   scripts/deps.sh check [GROUP…]    exit 0 when everything is there, 1 and a list otherwise
#   scripts/deps.sh ensure [GROUP…]   install what is missing (as root), or print the command
#   scripts/deps.sh list [GROUP…]     print the Debian package names
#
# Groups: build (compile Granary), test (make test, make check-asan), bench
# (make bench). `make`, `make run` and `make test` call `ensure` for the groups
# they need, so a newcomer never runs this by hand. Each line is
# "debian-package  how-we-know-it-is-there" where the probe is pkg:<pkg-config
# module>, cmd:<program>, py:<module for /usr/bin/python3>, file:<path> or
# dpkg (ask dpkg).
set -euo pipefail

build_deps='
pkg-config          cmd:pkg-config
make                cmd:make
gcc                 cmd:gcc
libc6-dev           file:/usr/lib/x86_64-linux-gnu/libc.a
libmicrohttpd-dev   pkg:libmicrohttpd
libseccomp-dev      pkg:libseccomp
libcap-ng-dev       pkg:libcap-ng
libsqlite3-dev      pkg:sqlite3
libsodium-dev       pkg:libsodium
libarchive-dev      pkg:libarchive
libzstd-dev         pkg:libzstd
libjansson-dev      pkg:jansson
'

test_deps='
curl                cmd:curl
openssl             cmd:openssl
python3             file:/usr/bin/python3
python3-pytest      py:pytest
python3-requests    py:requests
python3-websocket   py:websocket
clang               cmd:clang
clang-format        cmd:clang-format
libclang-rt-14-dev  dpkg
sqlite3             cmd:sqlite3
iproute2            cmd:ip
procps              cmd:ps
php-cli             cmd:php
php-sqlite3         dpkg
nodejs              cmd:node
valgrind            file:/usr/include/valgrind/memcheck.h
'

bench_deps='
wrk                 cmd:wrk
hyperfine           cmd:hyperfine
bubblewrap          cmd:bwrap
nginx-light         file:/usr/sbin/nginx
gnuplot-nox         cmd:gnuplot
'

die() { printf 'deps: %s\n' "$*" >&2; exit 1; }

lines_for() {
	local group
	for group in "$@"; do
		case "$group" in
		build) printf '%s\n' "$build_deps" ;;
		test) printf '%s\n' "$test_deps" ;;
		bench) printf '%s\n' "$bench_deps" ;;
		*) die "unknown group '$group' (build, test, bench)" ;;
		esac
	done | awk 'NF == 2'
}

present() {
	local pkg=$1 probe=$2
	case "$probe" in
	pkg:*) command -v pkg-config >/dev/null && pkg-config --exists "${probe#pkg:}" ;;
	cmd:*) command -v "${probe#cmd:}" >/dev/null ;;
	py:*) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ${probe#py:}" 2>/dev/null ;;
	file:*) [ -e "${probe#file:}" ] ;;
	dpkg) dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ;;
	*) die "bad probe '$probe' for $pkg" ;;
	esac
}

missing() {
	local pkg probe
	lines_for "$@" | while read -r pkg probe; do
		present "$pkg" "$probe" || printf '%s\n' "$pkg"
	done
}

apt_lists_empty() {
	! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}

install() {
	export DEBIAN_FRONTEND=noninteractive
	if apt_lists_empty; then
		apt-get update -q || die "apt-get update failed"
	fi
	if ! apt-get install -y -q --no-install-recommends "$@"; then
		# Stale lists name versions the mirror no longer has: refresh once.
		apt-get update -q || die "apt-get update failed"
		apt-get install -y -q --no-install-recommends "$@" ||
			die "apt-get install failed for: $*"
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- build
case "$cmd" in
list)
	lines_for "$@" | awk '{ print $1 }'
	;;
check)
	need=$(missing "$@")
	[ -z "$need" ] && exit 0
	# shellcheck disable=SC2086
	printf 'deps: missing Debian packages: %s\n' "$(echo $need)" >&2
	exit 1
	;;
ensure)
	need=$(missing "$@")
	[ -z "$need" ] && exit 0
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	if [ "$(id -u)" -ne 0 ]; then
		printf 'deps: Granary needs these Debian packages:\n  %s\n' "$(echo $need)" >&2
		printf 'deps: install them as root, then run make again:\n' >&2
		printf '  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n' "$(echo $need)" >&2
		exit 1
	fi
	printf 'deps: installing %s\n' "$(echo $need)" >&2
	# shellcheck disable=SC2086
	install $need
	need=$(missing "$@")
	[ -z "$need" ] || die "still missing after install: $(echo $need)"
	;;
*)
	die "usage: scripts/deps.sh check|ensure|list [build] [test] [bench]"
	;;
esac
