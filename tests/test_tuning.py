"""heapspy gc's tuning predictions against what the runtime then does: tests/go/gcload is observed
at GOGC=100, then run again with each GOGC heapspy predicted for under GODEBUG=gctrace=1; the
settings (GOGC, GOMEMLIMIT, GOMAXPROCS) and a memory cgroup's limit, read from outside, against
what they were set to."""
import json
import os
import re
import statistics
import subprocess

from harness import NEWEST_GO, build, check, go_build, heapspy, needs, tmpdir

VERSIONS = ["1.19", NEWEST_GO]
# A steady service-like load: 4 MiB live, 150 MiB/s of garbage, heap-triggered cycles only.
GCLOAD_ARGS = ["-live", "4", "-rate", "150", "-force", "0", "-stw", "0"]
CYCLES_TOLERANCE = 0.30
PEAK_TOLERANCE = 0.20
# Cycles of the start (building the live heap) that gctrace's figures leave out.
WARMUP = 3
GCTRACE = re.compile(r"^gc (\d+) @.*? (\d+)->(\d+)->(\d+) MB, (\d+) MB goal")
MIB = 1 << 20


def observe(binary, what, env=None, duration="2s"):
    js = os.path.join(tmpdir("tuning-" + os.path.basename(binary)), "gc.json")
    _, stdout, _ = heapspy("gc", "--json", js, "--", binary, "-duration", duration,
                           *GCLOAD_ARGS, check_rc=0, env=dict({"GOGC": "100"}, **(env or {})))
    tuning = json.load(open(js))["tuning"]
    check(tuning["advice"], "%s: no prediction: %s\n%s" % (
        what, tuning["not_predicted_because"], stdout[-3000:]))
    check("tuning (the Go GC guide's model" in stdout and "advice: " in stdout,
          "%s: no tuning table in the summary:\n%s" % (what, stdout[-3000:]))
    return tuning


def measured(binary, gogc):
    """Cycles per GiB allocated and the median peak heap (at mark termination) in MiB that
    gctrace shows for gcload run with GOGC=gogc."""
    # Long enough for a dozen cycles however far apart the setting puts them.
    duration = "%ds" % max(2, gogc // 200)
    p = subprocess.run([binary, "-duration", duration] + GCLOAD_ARGS, capture_output=True,
                       text=True, timeout=60,
                       env=dict(os.environ, GOGC=str(gogc), GODEBUG="gctrace=1"))
    cycles = [tuple(map(int, m.groups())) for m in
              (GCTRACE.match(line) for line in p.stderr.splitlines()) if m]
    check(len(cycles) >= WARMUP + 4, "GOGC=%d: only %d cycles" % (gogc, len(cycles)))
    steady = cycles[WARMUP:]
    # Allocated between one cycle's end and the next one's mark termination: the heap then,
    # less what the cycle before left live.
    alloc = [c[2] - prev[3] for prev, c in zip(cycles[WARMUP - 1:], steady)]
    # gctrace truncates to whole MB: a sum over cycles, not a median, keeps the fraction.
    return 1024.0 * len(alloc) / sum(alloc), statistics.median(c[2] for c in steady)


@needs([build(v, "gcload") for v in VERSIONS])
def test_predictions_match_gctrace():
    """Each predicted GOGC's cycles per GiB within 30% and peak heap within 20% of gctrace."""
    rows = []
    for version in VERSIONS:
        binary = go_build(version, "gcload")
        what = "go%s" % version
        tuning = observe(binary, what)
        check(tuning["gogc"] == 100 and tuning["gomemlimit_bytes"] is None,
              "%s: read GOGC %s, GOMEMLIMIT %s; set 100 and none" % (
                  what, tuning["gogc"], tuning["gomemlimit_bytes"]))
        check(tuning["gomaxprocs"] == len(os.sched_getaffinity(0)),
              "%s: GOMAXPROCS read as %s, %d CPUs" % (what, tuning["gomaxprocs"],
                                                      len(os.sched_getaffinity(0))))
        gogcs = [o["gogc"] for o in tuning["options"] if o["gogc"] is not None]
        check(gogcs == [50, 100, 200, 400, 800], "%s: options %s" % (what, gogcs))
        for o in tuning["options"]:
            if o["gogc"] is None:
                continue
            cycles, peak = measured(binary, o["gogc"])
            pc, pp = o["cycles_per_gib_allocated"], o["peak_heap_bytes"] / MIB
            rows.append("%s GOGC=%d: cycles/GiB %.1f predicted, %.1f measured; peak %.1f "
                        "predicted, %.1f MiB measured" % (what, o["gogc"], pc, cycles, pp, peak))
            check(abs(pc / cycles - 1) <= CYCLES_TOLERANCE and
                  abs(pp / peak - 1) <= PEAK_TOLERANCE,
                  "%s GOGC=%d off:\n%s" % (what, o["gogc"], "\n".join(rows)))
    print("\n".join(rows))
