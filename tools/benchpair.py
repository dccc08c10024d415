#!/usr/bin/env python3
"""Paired-window overhead of one or more heapspy binaries, side by side, on chosen programs, one
mode and one Go release, with tools/bench.py's own paired_run (its Method applies unchanged): for
before/after comparisons without running `make bench` as a whole. One JSON line per binary and
program: the per-pair costs, their median, mean and two standard errors.

    python3 tools/benchpair.py VERSION MODE PROG[,PROG...] NAME=HEAPSPY [NAME=HEAPSPY...]
    e.g. python3 tools/benchpair.py 1.27 marginal benchalloc before=old/heapspy after=build/heapspy

VERSION picks /usr/lib/go-VERSION (programs built into build/bench-VERSION); MODE is a key of
bench.PAIRED_MODES (record, marginal, gc ...); PAIRS=N in the environment sets the pairs (8).
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    ver, mode, progs = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    binaries = [a.split("=", 1) for a in sys.argv[4:]]
    bench.OUT = os.path.join(bench.ROOT, "build", "bench-%s" % ver)
    bench.GO = "/usr/lib/go-%s/bin/go" % ver
    bench.GO_ENV = dict(bench.GO_ENV, GOCACHE=os.path.join(bench.OUT, "gocache"))
    os.makedirs(bench.OUT, exist_ok=True)
    cfg = dict(bench.FULL, pairs=int(os.environ.get("PAIRS", "8")))
    m = [x for x in bench.PAIRED_MODES if x[0] == mode][0]
    extra = {p: e for p, e, _ in bench.PROGRAMS}
    for prog in progs:
        binary = bench.go_build(prog)
        for name, heapspy in binaries:
            bench.HEAPSPY = heapspy  # bench.Heapspy runs whatever this names
            t0 = time.time()
            pairs = bench.paired_run(binary, extra[prog], m, cfg)
            cpo = [bench.rel_cpo(p["on"]) / bench.rel_cpo(p["off"]) for p in pairs]
            hs = [p["on"].get("hs", {}) for p in pairs]
            print(json.dumps(dict(
                go=ver, mode=mode, program=prog, heapspy=name, median=statistics.median(cpo),
                mean=statistics.fmean(cpo), two_se=2 * statistics.stdev(cpo) / len(cpo) ** 0.5,
                cpo=cpo, samples=[h.get("samples") for h in hs],
                probe_hits=[h.get("alloc_hits", 0) + h.get("free_hits", 0) for h in hs],
                secs=time.time() - t0)), flush=True)


if __name__ == "__main__":
    main()
