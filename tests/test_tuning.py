"""heapspy gc's tuning predictions against what the runtime then does: tests/go/gcload is observed
at GOGC=100, then run again with each GOGC heapspy predicted for under GODEBUG=gctrace=1; the
settings (GOGC, GOMEMLIMIT, GOMAXPROCS) and a memory cgroup's limit, read from outside, against
what they were set to."""
import json
import os
import re
import statistics
import subprocess
import xml.etree.ElementTree as ET

from harness import NEWEST_GO, build, check, go_build, heapspy, needs, tmpdir

VERSIONS = ["1.19", NEWEST_GO]
# A steady service-like load: 4 MiB live, 150 MiB/s of garbage, heap-triggered cycles only.
GCLOAD_ARGS = ["-live", "4", "-rate", "150", "-force", "0", "-stw", "0"]
CYCLES_TOLERANCE = 0.30
PEAK_TOLERANCE = 0.20
# gctrace prints heaps in whole MB (truncated): at GOGC=50 the peak is 6 or 7 of them, so the
# measured peak itself is uncertain by one MB beside the model's 20%.
PEAK_QUANTUM_MIB = 1.0
# Cycles of the start (building the live heap) that gctrace's figures leave out.
WARMUP = 3
GCTRACE = re.compile(r"^gc (\d+) @.*? (\d+)->(\d+)->(\d+) MB, (\d+) MB goal")
MIB = 1 << 20


def observe(binary, version, what, env=None, duration="2s"):
    out = tmpdir("tuning-" + os.path.basename(binary))
    js, svg = os.path.join(out, "gc.json"), os.path.join(out, "gc.svg")
    _, stdout, stderr = heapspy("gc", "--json", js, "--svg", svg, "--", binary, "-duration",
                                duration, *GCLOAD_ARGS, check_rc=0,
                                env=dict({"GOGC": "100", "GODEBUG": "gctrace=1"}, **(env or {})))
    tuning = json.load(open(js))["tuning"]
    drawn = [g for g in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}g")
             if g.get("class") == "predicted-goal"]
    check(len(drawn) == sum(o["fits"] for o in tuning["options"]) > 0,
          "%s: the SVG draws %d predicted goals, %d options fit" % (
              what, len(drawn), sum(o["fits"] for o in tuning["options"])))
    check(tuning["advice"], "%s: no prediction: %s\n%s" % (
        what, tuning["not_predicted_because"], stdout[-3000:]))
    check("tuning (the Go GC guide's model" in stdout and "advice: " in stdout,
          "%s: no tuning table in the summary:\n%s" % (what, stdout[-3000:]))
    # From Go 1.20 the runtime's own CPU account, which gctrace prints as a whole percentage
    # since the start (launched: the same span); before, heapspy's estimate from the cycles.
    shares = re.findall(r"^gc \d+ @[\d.]+s (\d+)%", stderr, re.M)
    source = "estimate" if version == "1.19" else "runtime"
    check(tuning["gc_cpu_source"] == source and shares,
          "%s: GC CPU from %s, wanted %s" % (what, tuning["gc_cpu_source"], source))
    if source == "runtime":
        share = 100 * tuning["gc_cpu_fraction"]
        check(int(shares[-1]) - 1 <= share <= int(shares[-1]) + 2,
              "%s: GC CPU %.2f%%, gctrace says %s%%" % (what, share, shares[-1]))
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
    """Each predicted GOGC's cycles per GiB within 30% and peak heap within 20% (and gctrace's
    1 MB rounding) of gctrace."""
    rows = []
    for version in VERSIONS:
        binary = go_build(version, "gcload")
        what = "go%s" % version
        tuning = observe(binary, version, what)
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
                  abs(pp - peak) <= PEAK_TOLERANCE * peak + PEAK_QUANTUM_MIB,
                  "%s GOGC=%d off:\n%s" % (what, o["gogc"], "\n".join(rows)))
    print("\n".join(rows))


def own_memory_cgroup():
    """A new memory cgroup inside this process's own, and the file that limits it: v1's memory
    hierarchy where the machine has one (a hybrid mount keeps the memory controller there), else
    cgroup v2."""
    lines = [l.split(":", 2) for l in open("/proc/self/cgroup").read().splitlines()]
    v1 = [path for _, ctl, path in lines if "memory" in ctl.split(",")]
    name = "heapspy-tune-%d" % os.getpid()
    if v1:
        return os.path.join("/sys/fs/cgroup/memory" + v1[0].rstrip("/"), name), \
            "memory.limit_in_bytes"
    v2 = [path for _, ctl, path in lines if ctl == ""][0]
    return os.path.join("/sys/fs/cgroup" + v2.rstrip("/"), name), "memory.max"


@needs([build(v, "gcload") for v in VERSIONS])
def test_settings_and_memory_limit():
    """GOGC, GOMEMLIMIT and a cgroup's memory limit read from outside as they were set; no
    advice over the smaller limit less its headroom, and GOGC=off with the GOMEMLIMIT predicted
    peaks where gctrace then shows."""
    group, limit_file = own_memory_cgroup()
    os.mkdir(group)
    try:
        for version in VERSIONS:
            limits(go_build(version, "gcload"), group, limit_file, "go%s" % version)
    finally:
        os.rmdir(group)


def limits(binary, group, limit_file, what):
    cgroup_limit, gomemlimit = 96 * MIB, 40 * MIB
    with open(os.path.join(group, limit_file), "w") as f:
        f.write(str(cgroup_limit))
    js = os.path.join(tmpdir("tuning-limit-" + os.path.basename(binary)), "gc.json")

    def enter():
        with open(os.path.join(group, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    prog = subprocess.Popen([binary, "-duration", "4s"] + GCLOAD_ARGS, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, preexec_fn=enter,
                            env=dict(os.environ, GOGC="150", GOMEMLIMIT="40MiB"))
    try:
        check(prog.stdout.readline().strip() == "ready", "%s: gcload did not start" % what)
        _, stdout, _ = heapspy("gc", "--pid", prog.pid, "--duration", "2", "--json", js,
                               check_rc=0)
        prog.communicate(timeout=60)
    finally:
        if prog.poll() is None:
            prog.kill()
            prog.communicate()
    t = json.load(open(js))["tuning"]
    check(t["gogc"] == 150 and t["gomemlimit_bytes"] == gomemlimit and
          t["memory_limit_bytes"] == cgroup_limit,
          "%s: read GOGC %s, GOMEMLIMIT %s, cgroup limit %s; set 150, %d, %d" % (
              what, t["gogc"], t["gomemlimit_bytes"], t["memory_limit_bytes"], gomemlimit,
              cgroup_limit))
    check("cgroup memory limit 96.0 MiB" in stdout and "GOMEMLIMIT 40.0 MiB" in stdout,
          "%s: the summary does not name the limits:\n%s" % (what, stdout[-3000:]))
    check(t["advice"], "%s: no prediction: %s" % (what, t["not_predicted_because"]))
    room = gomemlimit * 0.9
    offs = [o for o in t["options"] if o["gogc"] is None]
    check(len(offs) == 1 and offs[0]["gomemlimit_bytes"] == int(room),
          "%s: no GOGC=off option with GOMEMLIMIT at 90%% of the smaller limit: %s" % (
              what, t["options"]))
    for o in t["options"]:
        if o["gogc"] is not None:
            check(o["fits"] == (o["peak_heap_bytes"] * (1 + o["peak_uncertainty"]) <= room),
                  "%s: GOGC=%s fits=%s, peak %.1f MiB +-%.0f%% against %.1f MiB" % (
                      what, o["gogc"], o["fits"], o["peak_heap_bytes"] / MIB,
                      100 * o["peak_uncertainty"], room / MIB))
    check(not all(o["fits"] for o in t["options"]),
          "%s: every option fits: the limit is not put to the test" % what)
    advised = t["options"][t["advised_option"]]
    check(advised["fits"] and advised["peak_heap_bytes"] <= room,
          "%s: advice %r names a peak of %.1f MiB, over %.1f MiB" % (
              what, t["advice"], advised["peak_heap_bytes"] / MIB, room / MIB))
    # The GOGC=off row against the runtime running that way.
    p = subprocess.run([binary, "-duration", "2s"] + GCLOAD_ARGS, capture_output=True,
                       text=True, timeout=60,
                       env=dict(os.environ, GOGC="off", GOMEMLIMIT=str(offs[0]["gomemlimit_bytes"]),
                                GODEBUG="gctrace=1"))
    cycles = [tuple(map(int, m.groups())) for m in
              (GCTRACE.match(line) for line in p.stderr.splitlines()) if m]
    check(len(cycles) >= WARMUP + 3, "%s GOGC=off: only %d cycles" % (what, len(cycles)))
    peak = statistics.median(c[2] for c in cycles[WARMUP:])
    predicted = offs[0]["peak_heap_bytes"] / MIB
    print("%s GOGC=off GOMEMLIMIT=%.1fMiB: peak %.1f predicted, %.1f MiB measured" % (
        what, offs[0]["gomemlimit_bytes"] / MIB, predicted, peak))
    check(abs(predicted / peak - 1) <= PEAK_TOLERANCE,
          "%s GOGC=off: peak %.1f MiB predicted, %.1f measured" % (what, predicted, peak))
