"""heapspy gc against GODEBUG=gctrace=1 of the same process: the runtime's own account of every
cycle is the ground truth. tests/go/gcload runs hundreds of cycles, some forced with runtime.GC(),
and stops the world for other reasons too."""
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pprofdec
from harness import GO_VERSIONS, NEWEST_GO, build, check, go_build, heapspy, needs, tmpdir

# gc 12 @1.234s 5%: 0.045+2.1+0.012 ms clock, ..., 4->5->2 MB, 5 MB goal, ... (forced)
# From Go 1.26 a cycle that looked for leaked goroutines says so before the colon.
GCTRACE = re.compile(r"^gc (\d+) @[\d.]+s \d+%(?: \(checking for goroutine leaks\))?: "
                     r"([\d.]+)\+([\d.]+)\+([\d.]+) ms clock, .*? (\d+)->(\d+)->(\d+) MB, "
                     r"(\d+) MB goal, .*?( \(forced\))?$")
# The stop-the-world time of a cycle must be this close to gctrace's for this share of cycles.
STW_TOLERANCE = 0.25
STW_TOLERANCE_NS = 30000
STW_SHARE = 0.90
GCLOAD_ARGS = ["-live", "1", "-force", "100ms", "-stw", "250ms"]
# Builds whose GC differs from their release's default: Green Tea GC is an experiment in Go 1.25
# (and moves work's fields), the default from Go 1.26.
GC_EXPERIMENTS = [("1.25", "greenteagc"), ("1.26", "nogreenteagc"), ("1.27", "nogreenteagc")]
ATTACH_BUILDS = [(v, None) for v in GO_VERSIONS] + [
    (v, x) for v, x in GC_EXPERIMENTS if v in GO_VERSIONS]
# Pause times are compared with gctrace's: nothing else may run beside these tests.
RUN_ALONE = True


def ms_bounds(text):
    """gctrace prints milliseconds with two significant digits, truncated (whole milliseconds
    from 10 ms, "0" under a microsecond): the interval in ns the true value lies in."""
    if text == "0":
        return 0.0, 1000.0
    ulp = 10.0 ** -len(text.split(".")[1]) if "." in text else 1.0
    lo = float(text) * 1e6
    return lo, lo + ulp * 1e6


def parse_gctrace(text):
    cycles = {}
    for line in text.splitlines():
        m = GCTRACE.match(line.strip())
        if not m:
            continue
        a, c = ms_bounds(m.group(2)), ms_bounds(m.group(4))
        cycles[int(m.group(1))] = {
            "stw": ((a[0] + a[1]) / 2 + (c[0] + c[1]) / 2),
            "mb": tuple(int(m.group(i)) for i in (5, 6, 7, 8)),
            "forced": bool(m.group(9)),
        }
    return cycles


def compare(version, report, trace, launched, what):
    """heapspy's cycles against gctrace's: numbers, forced flags, heap sizes, pause times."""
    mine = {c["cycle"]: c for c in report["gc_cycles"]}
    numbers = sorted(mine)
    check(len(numbers) >= 50, "%s: only %d cycles seen" % (what, len(numbers)))
    check(numbers == list(range(numbers[0], numbers[-1] + 1)),
          "%s: cycle numbers are not contiguous: %s" % (what, numbers))
    missing = [n for n in numbers if n not in trace]
    check(not missing, "%s: cycles gctrace never printed: %s" % (what, missing[:10]))
    if launched:
        check(numbers[0] == 1 and numbers[-1] == max(trace),
              "%s: heapspy saw cycles %d-%d, gctrace 1-%d" % (what, numbers[0], numbers[-1],
                                                               max(trace)))
    else:
        check(numbers[0] > 1, "%s: attached mid-run, yet the first cycle is 1" % what)

    forced = [n for n in numbers if mine[n]["forced"]]
    traced_forced = [n for n in numbers if trace[n]["forced"]]
    check(forced, "%s: no forced cycle seen" % what)
    if version == "1.19":
        # Go 1.19's gcStart sets work.userForced before it waits for the cycle still ending,
        # whose gctrace line then says "(forced)" for runtime.GC()'s cycle that follows it (or,
        # from a heap trigger, drops a forced cycle's mark). heapspy reads memstats.numforcedgc,
        # which the runtime counts inside the pause; gctrace may only be off in those two ways
        # (the cycle after the last one heapspy saw is not there to tell).
        wrong = [n for n in traced_forced
                 if n not in forced and n + 1 not in forced and n != numbers[-1]]
        check(not wrong, "%s: gctrace forced %s, heapspy %s" % (what, wrong, forced))
    else:
        check(forced == traced_forced, "%s: forced %s, gctrace %s" % (what, forced,
                                                                      traced_forced))

    bad_heap = [n for n in numbers if tuple(
        mine[n][k] >> 20 for k in ("heap_live_before_bytes", "heap_at_mark_termination_bytes",
                                   "heap_live_after_bytes", "heap_goal_bytes")) != trace[n]["mb"]]
    check(not bad_heap, "%s: heap sizes differ from gctrace's in cycles %s" % (what, bad_heap[:10]))

    close = 0
    for n in numbers:
        stw = mine[n]["sweep_termination_pause_ns"] + mine[n]["mark_termination_pause_ns"]
        ref = trace[n]["stw"]
        close += abs(stw - ref) <= max(STW_TOLERANCE * ref, STW_TOLERANCE_NS)
    check(close >= STW_SHARE * len(numbers),
          "%s: stop-the-world time within tolerance of gctrace for %d of %d cycles" % (
              what, close, len(numbers)))
    return close, len(numbers)


def check_report(report, offsets, what):
    s = report["summary"]
    check(s["runtime_offsets"] == offsets, "%s: offsets from %s, wanted %s" % (
        what, s["runtime_offsets"], offsets))
    check(s["probe_hit_ns"] and s["probe_hit_ns"] > 0, "%s: probe cost not measured" % what)
    check(s["cycles"] == len(report["gc_cycles"]) and s["gc_pause_ns"]["max"] > 0,
          "%s: summary %s" % (what, s))
    check(s["lost_events"] == 0 and s["missed_cycles"] == 0 and s["read_errors"] == 0,
          "%s: lost events: %s" % (what, s))
    # gcload reads MemStats, dumps all stacks ("stack trace" before Go 1.21), changes GOMAXPROCS.
    reasons = {o["reason"] for o in report["other_stw"]}
    check({"read mem stats", "GOMAXPROCS"} <= reasons and
          reasons & {"stack trace", "all goroutines stack trace"},
          "%s: non-GC stops %s" % (what, sorted(reasons)))


def check_svg(path, report, what):
    root = ET.parse(path).getroot()
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
              if g.get("class", "").startswith("gc-cycle")]
    check(len(groups) == len(report["gc_cycles"]),
          "%s: the SVG shows %d cycles, the JSON %d" % (what, len(groups),
                                                        len(report["gc_cycles"])))
    forced = [g for g in groups if "forced" in g.get("class").split()]
    check(len(forced) == sum(1 for c in report["gc_cycles"] if c["forced"]),
          "%s: forced cycles in the SVG differ from the JSON" % what)
    check(all(g.find("{http://www.w3.org/2000/svg}title") is not None for g in groups),
          "%s: cycles without a title" % what)


@needs([build(v, "gcload") for v in GO_VERSIONS])
def test_launch_matches_gctrace():
    """Launched with GODEBUG=gctrace=1: every cycle from 1, as the runtime prints it."""
    for version in GO_VERSIONS:
        binary = go_build(version, "gcload")
        out = tmpdir("gc-launch-%s" % version)
        js, svg = os.path.join(out, "gc.json"), os.path.join(out, "gc.svg")
        _, stdout, stderr = heapspy("gc", "--json", js, "--svg", svg, "--", binary,
                                    "-duration", "3s", *GCLOAD_ARGS, check_rc=0,
                                    env={"GODEBUG": "gctrace=1"})
        what = "go%s launched" % version
        report = json.load(open(js))
        trace = parse_gctrace(stderr)
        compare(version, report, trace, True, what)
        check_report(report, "DWARF", what)
        done = re.search(r"done gcs=(\d+) forced=(\d+)", stdout)
        check(done and int(done.group(1)) == len(report["gc_cycles"]) and
              int(done.group(2)) == report["summary"]["forced_cycles"],
              "%s: the program counted %s, heapspy %d cycles, %d forced" % (
                  what, done and done.group(0), len(report["gc_cycles"]),
                  report["summary"]["forced_cycles"]))
        check("GC pauses" in stdout and "of wall time" in stdout and "(not GC)" in stdout,
              "%s: no summary:\n%s" % (what, stdout[-2000:]))
        check_svg(svg, report, what)


def attached(version, binary, what):
    """heapspy gc attached for 2 s to gcload running with gctrace, compared with it: the report,
    and (cycles within tolerance of gctrace's pause, cycles)."""
    out = tmpdir("gc-attach-" + os.path.basename(binary))
    js, trace_file = os.path.join(out, "gc.json"), os.path.join(out, "gctrace.txt")
    with open(trace_file, "w") as err:
        prog = subprocess.Popen([binary, "-duration", "5s"] + GCLOAD_ARGS,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env=dict(os.environ, GODEBUG="gctrace=1"))
    try:
        check(prog.stdout.readline().strip() == "ready", "gcload did not start")
        time.sleep(1)
        heapspy("gc", "--pid", prog.pid, "--duration", "2", "--json", js, check_rc=0)
        prog.communicate(timeout=60)
    finally:
        if prog.poll() is None:
            prog.kill()
            prog.communicate()
    report = json.load(open(js))
    return report, compare(version, report, parse_gctrace(open(trace_file).read()), False, what)


def launched(version, binary, what):
    """heapspy gc launching gcload with gctrace for 3 s, compared with it: as attached()."""
    js = os.path.join(tmpdir("gc-launch-" + os.path.basename(binary)), "gc.json")
    _, _, stderr = heapspy("gc", "--json", js, "--", binary, "-duration", "3s", *GCLOAD_ARGS,
                           check_rc=0, env={"GODEBUG": "gctrace=1"})
    report = json.load(open(js))
    return report, compare(version, report, parse_gctrace(stderr), True, what)


def claiming(binary, out, release=None):
    """A copy of binary that says it is another release wherever it names its own (build info,
    runtime.buildVersion): release replaces as much of its own ("go1.18" makes go1.19.8
    go1.18.8); by default the next patch release of its line, one no table names (go1.27.4 ->
    go1.27.5)."""
    data = open(binary, "rb").read()
    version = re.search(rb"go1\.\d+\.\d+", data).group(0)
    if not release:
        release = "%s%d" % (version[:-1].decode(), (int(chr(version[-1])) + 1) % 10)
    release = release.encode() + version[len(release):]
    check(len(release) == len(version), "cannot claim %s in a %s binary" % (release, version))
    patched = os.path.join(out, "%s-%s" % (os.path.basename(binary), release.decode()))
    open(patched, "wb").write(data.replace(version, release))
    os.chmod(patched, 0o755)
    return patched


@needs([build(v, "gcload", ldflags="-w", variant="-nodwarf", experiment=x)
        for v, x in ATTACH_BUILDS])
def test_attach_midrun_matches_gctrace():
    """Attached to a running program built without DWARF: offset tables for the exact release
    and experiments."""
    for version, experiment in ATTACH_BUILDS:
        binary = go_build(version, "gcload", ldflags="-w", variant="-nodwarf",
                          experiment=experiment)
        what = "go%s%s attached" % (version, " GOEXPERIMENT=" + experiment if experiment else "")
        check_report(attached(version, binary, what)[0], "table", what)


@needs([build(v, "gcload", ldflags="-s -w", variant="-stripped") for v in GO_VERSIONS])
def test_stripped_binary():
    """No symbols, no DWARF (-s -w): the GC's variables found in the runtime's code."""
    for version in GO_VERSIONS:
        binary = go_build(version, "gcload", ldflags="-s -w", variant="-stripped")
        what = "go%s stripped" % version
        check_report(launched(version, binary, what)[0], "table", what)


@needs(build(NEWEST_GO, "gcload", ldflags="-s -w", variant="-stripped"),
       build(GO_VERSIONS[0], "gcload", ldflags="-w", variant="-nodwarf"))
def test_unknown_patch_release():
    """A patch release no table names (the binary's release string changed to one): the GC's
    words from the code that prints them, stripped and launched, or attached without DWARF."""
    out = tmpdir("gc-unknown")
    for version, ldflags, run in ((NEWEST_GO, "-s -w", launched), (GO_VERSIONS[0], "-w", attached)):
        binary = go_build(version, "gcload", ldflags=ldflags,
                          variant="-stripped" if "-s" in ldflags else "-nodwarf")
        patched = claiming(binary, out)
        what = "go%s claiming another patch release" % version
        check_report(run(version, patched, what)[0], "code", what)


@needs([build(v, "gcload", ldflags="-s -w", variant="-stripped") for v in ("1.19", NEWEST_GO)])
def test_probe_timing_without_records():
    """Stripped binaries of releases heapspy has no layout for (a go1.19 runtime that says it is
    go1.18, the newest that says it is go1.99): the pauses timed by heapspy's own probes, the
    GC's told apart by their reason (by their caller on Go 1.19)."""
    for version, claim in (("1.19", "go1.18"), (NEWEST_GO, "go1.99")):
        binary = go_build(version, "gcload", ldflags="-s -w", variant="-stripped")
        out = tmpdir("gc-timing-%s" % version)
        patched, js = claiming(binary, out, claim), os.path.join(out, "gc.json")
        _, stdout, stderr = heapspy("gc", "--json", js, "--", patched, "-duration", "3s",
                                    *GCLOAD_ARGS, check_rc=0, env={"GODEBUG": "gctrace=1"})
        what = "go%s claiming %s" % (version, claim)
        report = json.load(open(js))
        trace = parse_gctrace(stderr)
        mine = report["gc_cycles"]
        check(report["summary"]["runtime_offsets"] == "none", "%s: %s" % (what, report["summary"]))
        check("heap sizes unknown" in stdout, stdout[-2000:])
        check(len(mine) == len(trace) and [c["cycle"] for c in mine] == sorted(trace),
              "%s: %d cycles, gctrace %d" % (what, len(mine), len(trace)))
        check(all(c["heap_live_after_bytes"] is None for c in mine), "heap sizes from nowhere")
        check(report["other_stw"], "%s: no other stops seen" % what)
        # gctrace's pauses include heapspy's probes here: compare before taking them out. A
        # pause's end is the runtime's own timestamp (startTheWorldWithSema's result); its start
        # is half a trap after the runtime's: about one more hit.
        slack = STW_TOLERANCE_NS + report["summary"]["probe_hit_ns"]
        close = forced = 0
        for c in mine:
            t = trace[c["cycle"]]
            forced += c["forced"] == t["forced"]
            stw = (c["sweep_termination_pause_ns"] + c["mark_termination_pause_ns"] +
                   c["probe_ns_removed"])
            close += abs(stw - t["stw"]) <= max(STW_TOLERANCE * t["stw"], slack)
        check(forced >= 0.9 * len(mine), "%s: forced flags agree for %d of %d cycles" % (
            what, forced, len(mine)))
        check(close >= STW_SHARE * len(mine), "%s: pauses agree for %d of %d cycles" % (
            what, close, len(mine)))


@needs(build(NEWEST_GO, "gcload"))
def test_record_carries_gc_summary():
    binary = go_build(NEWEST_GO, "gcload")
    out = tmpdir("gc-record")
    prof = os.path.join(out, "heap.pb.gz")
    _, stdout, _ = heapspy("record", "-o", prof, "--", binary, "-duration", "2s", *GCLOAD_ARGS,
                           check_rc=0)
    check("GC cycles in" in stdout and "GC pauses" in stdout, stdout[-2000:])
    side = prof + ".gc.json"
    report = json.load(open(side))
    check(len(report["gc_cycles"]) >= 50, "%d cycles in %s" % (len(report["gc_cycles"]), side))
    comments = pprofdec.load(prof).comments
    check(any(c.startswith("gc: ") and "GC cycles" in c for c in comments),
          "no GC summary among the profile's comments: %s" % comments)


def test_bad_inputs():
    rc, _, err = heapspy("gc", "--json", "/nonexistent/dir/gc.json", "--pid", os.getpid())
    check(rc != 0 and len(err.strip().splitlines()) == 1 and "/nonexistent/dir" in err,
          "unwritable --json: rc %d\n%s" % (rc, err))
    rc, _, err = heapspy("gc", "--pid", "4000000")
    check(rc != 0 and "no process with pid 4000000" in err, err)
    rc, _, err = heapspy("gc", "--bogus")
    check(rc == 2 and "--help" in err, "unknown flag: rc %d\n%s" % (rc, err))
