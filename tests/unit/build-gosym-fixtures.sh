#!/bin/sh
# Builds tests/unit/gosym_fixture.go with every installed Debian Go toolchain, in the layouts the
# symbolizer must handle: default, stripped, PIE, stripped PIE, and PIEs linked by the system
# linker, where up to Go 1.25 .gopclntab is merged into .data.rel.ro (found through the
# runtime.pclntab symbol, or by a scan once stripped); and two builds with GOEXPERIMENT set.
# Binaries are named gosym-<version>-<variant> in OUTDIR. Needs no network: the fixture uses only
# the standard library.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
src=$(cd "$(dirname "$0")" && pwd)/gosym_fixture.go
mkdir -p "$out"

export GOTOOLCHAIN=local GO111MODULE=off GOFLAGS= GOPROXY=off
# Without a home directory, the go command needs a cache location.
[ -n "${HOME:-}" ] || export GOCACHE="${GOCACHE:-$out/.gocache}"

built=0
for goroot in /usr/lib/go-1.19 /usr/lib/go-1.21 /usr/lib/go-1.22 /usr/lib/go-1.23 /usr/lib/go-1.24 /usr/lib/go-1.25 \
	/usr/lib/go-1.26 /usr/lib/go-1.27; do
	go="$goroot/bin/go"
	[ -x "$go" ] || continue
	v=${goroot##*/go-}
	"$go" build -o "$out/gosym-$v-default" "$src"
	"$go" build -ldflags='-s -w' -o "$out/gosym-$v-stripped" "$src"
	"$go" build -buildmode=pie -o "$out/gosym-$v-pie" "$src"
	"$go" build -buildmode=pie -ldflags='-s -w' -o "$out/gosym-$v-stripped-pie" "$src"
	if command -v gcc >/dev/null 2>&1; then
		"$go" build -buildmode=pie -ldflags='-linkmode=external' -o "$out/gosym-$v-extld-pie" "$src"
		"$go" build -buildmode=pie -ldflags='-s -w -linkmode=external' \
			-o "$out/gosym-$v-extld-stripped-pie" "$src"
	fi
	built=$((built + 1))
done

# Builds with experiments: the version lists them after "X:" (" X:" to Go 1.25, "-X:" from 1.26)
# and the build info has the GOEXPERIMENT setting. Named gosym-<version>-[stripped-]x-<experiment>.
experiment() {
	goroot=$1 variant=$2 exp=$3
	shift 3
	[ -x "$goroot/bin/go" ] || return 0
	GOEXPERIMENT=$exp "$goroot/bin/go" build "$@" -o "$out/gosym-${goroot##*/go-}-$variant-x-$exp" "$src"
}
experiment /usr/lib/go-1.25 default greenteagc
experiment /usr/lib/go-1.26 stripped nogreenteagc -ldflags='-s -w'

if [ "$built" -eq 0 ]; then
	echo "$0: no Go toolchain found under /usr/lib/go-1.*" >&2
	exit 1
fi
