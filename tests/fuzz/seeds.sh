#!/bin/sh
# Makes seed corpora for the fuzzers from a small Go program built by the installed toolchains:
#   OUTDIR/elf      whole binaries (plain and stripped) and truncated copies, for fuzz_elf
#   OUTDIR/pclntab  "u32 length, .gopclntab, go:func.*" records and truncated ones, for fuzz_pclntab
# Usage: tests/fuzz/seeds.sh OUTDIR, then e.g. build/fuzz/fuzz_elf OUTDIR/elf
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
mkdir -p "$out/elf" "$out/pclntab"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/seed.go" <<'GO'
package main

var sink int

func add(n int) { sink += n }

func twice(n int) { add(n); add(n) }

func main() {
	twice(len("seed"))
	println(sink)
}
GO

export GOTOOLCHAIN=local GO111MODULE=off GOFLAGS= GOPROXY=off
[ -n "${HOME:-}" ] || export GOCACHE="$work/.gocache"

for goroot in /usr/lib/go-1.19 /usr/lib/go-1.23 /usr/lib/go-1.27; do
	[ -x "$goroot/bin/go" ] || continue
	v=${goroot##*/go-}
	"$goroot/bin/go" build -o "$out/elf/go$v" "$work/seed.go"
	"$goroot/bin/go" build -ldflags='-s -w' -o "$out/elf/go$v-stripped" "$work/seed.go"
done

# Truncated binaries: each cut ends inside a different part of the file.
for bin in "$out"/elf/go*; do
	case $bin in *-cut*) continue ;; esac
	size=$(wc -c <"$bin")
	for frac in 1 4 16 64; do
		head -c $((size * frac / 100)) "$bin" >"$bin-cut$frac"
	done
done

# The pclntab records need the table and the go:func.* bytes: read both from the unstripped
# binaries' section headers and symbol table.
python3 - "$out" <<'PY'
import os, struct, sys

out = sys.argv[1]

def sections(d):
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3a)
    raw = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
    names = raw[shstrndx]
    def name(s):
        start = names[4] + s[0]
        return d[start:d.index(b"\0", start)].decode()
    return {name(s): s for s in raw}, raw

def symbol(d, secs, raw, want):
    symtab = secs[".symtab"]
    strtab = raw[symtab[6]]
    for off in range(symtab[4], symtab[4] + symtab[5], 24):
        st_name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", d, off)
        start = strtab[4] + st_name
        if d[start:d.index(b"\0", start)].decode() in want:
            return value
    raise SystemExit("no go:func.* symbol")

# A hand-made one-function table (as in tests/unit/test_gosym.c): small inputs fuzz fastest.
t = bytearray(164)
t[0:8] = b"\xf1\xff\xff\xff\x00\x00\x01\x08"
struct.pack_into("<8Q", t, 8, 1, 1, 0x1000, 72, 80, 84, 96, 108)
t[72:79] = b"main.f\0"
t[84:94] = b"/src/f.go\0"
t[96:105] = bytes([0, 0x02, 0x10, 0x00, 0x16, 0x08, 0x04, 0x08, 0x00])
struct.pack_into("<3I", t, 108, 0, 12, 0x10)
struct.pack_into("<11I", t, 120, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0)
with open(os.path.join(out, "pclntab", "synthetic"), "wb") as o:
    o.write(struct.pack("<I", len(t)) + t)

for v in ("1.19", "1.23", "1.27"):
    path = os.path.join(out, "elf", "go" + v)
    if not os.path.exists(path):
        continue
    d = open(path, "rb").read()
    secs, raw = sections(d)
    pcln = secs[".gopclntab"]
    tab = d[pcln[4]:pcln[4] + pcln[5]]
    gofunc = symbol(d, secs, raw, ("go:func.*", "go.func.*"))
    ro = next(s for s in raw if s[3] <= gofunc < s[3] + s[5])
    funcdata = d[ro[4] + gofunc - ro[3]:ro[4] + ro[5]]
    for name, t, f in (("", tab, funcdata), ("-nofuncdata", tab, b""),
                       ("-cut50", tab[:len(tab) // 2], funcdata[:len(funcdata) // 2]),
                       ("-cut5", tab[:len(tab) // 20], b""), ("-header", tab[:72], b"")):
        with open(os.path.join(out, "pclntab", "go" + v + name), "wb") as o:
            o.write(struct.pack("<I", len(t)) + t + f)
PY
