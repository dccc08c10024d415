#!/usr/bin/env python3
"""heapspy's test runner: the unit tests (built with ASan and UBSan), a short run of every fuzz
target, and the integration tests (tests/test_*.py: real BPF programs in the real kernel, attached
to real Go programs built here). Ends with the line "N passed, N failed".

    python3 tests/run.py [-k SUBSTRING] [--no-unit] [--no-fuzz] [--no-integration]
                         [--fuzz-seconds N] [-j JOBS]

The Go programs the selected integration tests declare (harness.needs) are built first, JOBS at a
time. Unit test binaries, fuzz targets and integration tests then run JOBS at a time, except the
tests a module lists in RUN_ALONE (True for all of its tests): those measure time or see the whole
machine, and run last, one by one, with nothing beside them.
"""
import argparse
import glob
import importlib
import json
import os
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BUILD, ROOT, Failure, each  # noqa: E402

results = []
output = threading.RLock()  # one test's lines stay together
DURATIONS = os.path.join(BUILD, "durations.json")


class TestOutput:
    """stdout that holds what a running test prints (its measured figures) until its result
    line, so that tests side by side do not interleave."""

    def __init__(self, real):
        self.real, self.local = real, threading.local()

    def write(self, text):
        held = getattr(self.local, "held", None)
        (held.append if held is not None else self.real.write)(text)

    def flush(self):
        self.real.flush()

    def hold(self):
        self.local.held = []

    def release(self):
        held, self.local.held = getattr(self.local, "held", None) or [], None
        return "".join(held)


stdout = sys.stdout = TestOutput(sys.stdout)


def report(name, ok, detail="", secs=0.0, printed=""):
    with output:
        results.append((name, ok))
        stdout.real.write("%s %s (%.1fs)\n%s" % ("PASS" if ok else "FAIL", name, secs, printed))
        if not ok and detail:
            stdout.real.write("    " + detail.strip().replace("\n", "\n    ") + "\n")
        stdout.real.flush()


class Phases:
    """Wall and CPU time (this process and every child it waited for) of each phase."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn, *args):
        t0, c0 = time.time(), os.times()
        note = fn(*args)
        c1 = os.times()
        cpu = sum(c1[:4]) - sum(c0[:4])
        self.rows.append((name, time.time() - t0, cpu, note))

    def print(self):
        for name, wall, cpu, note in self.rows:
            print("time: %-26s %7.1fs wall %7.1fs CPU%s" % (name, wall, cpu,
                                                             "  " + note if note else ""))
        print("time: %-26s %7.1fs wall %7.1fs CPU" % ("total", sum(r[1] for r in self.rows),
                                                      sum(r[2] for r in self.rows)))


def binaries(kind, prefix, pattern):
    """The test programs make built (beside them, the compiler's dependency files)."""
    return [b for b in sorted(glob.glob(os.path.join(ROOT, "build", kind, prefix + "*")))
            if os.access(b, os.X_OK) and pattern in os.path.basename(b)]


def run_unit(pattern):
    # Fixtures built by the unit tests share the Go build cache of the integration tests' programs.
    env = dict(os.environ, GOCACHE=harness.gocache())

    def one(binary):
        name = os.path.basename(binary)
        t0 = time.time()
        p = subprocess.run([binary], capture_output=True, text=True, cwd=ROOT, timeout=900,
                           env=env)
        secs = time.time() - t0
        cases = [l.split(None, 1) for l in p.stdout.splitlines()
                 if l.startswith(("PASS ", "FAIL "))]
        with output:
            for verdict, case in cases:
                report("%s.%s" % (name, case), verdict == "PASS",
                       p.stderr if verdict == "FAIL" else "", secs / max(len(cases), 1))
            if p.returncode != 0 and not any(v == "FAIL" for v, _ in cases):
                report(name, False, "exit %d\n%s" % (p.returncode, p.stderr[-3000:]), secs)

    each(binaries("unit", "test_", pattern), one)


def run_fuzz(pattern, seconds):
    seeds = os.path.join(ROOT, "tests", "fuzz", "seeds.sh")

    def one(binary):
        name = os.path.basename(binary)
        corpus = os.path.join(BUILD, "corpus", name)
        os.makedirs(corpus, exist_ok=True)
        t0 = time.time()
        if os.path.exists(seeds) and not os.listdir(corpus):
            subprocess.run(["sh", seeds, corpus], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
        p = subprocess.run([binary, "-max_total_time=%d" % seconds, "-rss_limit_mb=4096",
                            corpus], capture_output=True, text=True, cwd=ROOT)
        report("fuzz." + name, p.returncode == 0, p.stderr[-3000:], time.time() - t0)

    each(binaries("fuzz", "fuzz_", pattern), one)


def integration_tests(pattern):
    """[(full name, function, runs alone)] of the selected tests, in file order."""
    tests = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "test_*.py"))):
        module = importlib.import_module(os.path.basename(path)[:-3])
        alone = getattr(module, "RUN_ALONE", ())
        for name in [n for n in dir(module) if n.startswith("test_")]:
            full = "%s.%s" % (module.__name__, name)
            if not pattern or pattern in full:
                tests.append((full, getattr(module, name), alone is True or name in alone))
    return tests


def build_programs(tests):
    builds = [b for _, fn, _ in tests for b in getattr(fn, "builds", ())]
    try:
        built = harness.build_all(builds)
    except Failure as e:  # the tests that need a program that did not build fail with why
        print("go build failed:\n    " + str(e).replace("\n", "\n    "), flush=True)
        built = "some"
    return "%s of %d programs built" % (built, len(set(builds)))


def run_test(test, durations):
    full, fn, _ = test
    t0 = time.time()
    stdout.hold()
    try:
        fn()
        report(full, True, secs=time.time() - t0, printed=stdout.release())
    except Failure as e:
        report(full, False, str(e), time.time() - t0, stdout.release())
    except Exception:  # a broken test is a failed test, never a crashed runner
        report(full, False, traceback.format_exc(), time.time() - t0, stdout.release())
    durations[full] = round(time.time() - t0, 1)


def run_shared(tests, durations, jobs):
    # Longest first (as long as they took last time), so that the last to finish are short.
    order = sorted(tests, key=lambda t: -durations.get(t[0], float("inf")))
    cpu_slots, harness.SLOTS = harness.SLOTS, threading.BoundedSemaphore(jobs)
    harness.SLOTS.acquire()
    try:
        each(order, lambda t: run_test(t, durations))
    finally:
        harness.SLOTS = cpu_slots


def run_alone(tests, durations):
    for _ in range(harness.JOBS - 1):  # this thread holds the last slot: nothing runs beside
        harness.SLOTS.acquire()
    try:
        for test in tests:
            run_test(test, durations)
    finally:
        for _ in range(harness.JOBS - 1):
            harness.SLOTS.release()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="pattern", default="", help="run only tests whose name has this")
    ap.add_argument("--no-unit", action="store_true")
    ap.add_argument("--no-fuzz", action="store_true")
    ap.add_argument("--no-integration", action="store_true")
    ap.add_argument("--fuzz-seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 20)))
    ap.add_argument("-j", dest="jobs", type=int, default=harness.JOBS,
                    help="how many builds, unit tests and fuzz targets run at once (default: one "
                    "per CPU); integration tests that may share the machine run twice as many")
    args = ap.parse_args()
    harness.JOBS, harness.SLOTS = args.jobs, threading.BoundedSemaphore(args.jobs)
    harness.SLOTS.acquire()  # the runner's own thread is one of the jobs
    os.makedirs(BUILD, exist_ok=True)
    phases = Phases()
    tests = []
    if not args.no_integration:
        if os.geteuid() != 0:
            report("integration", False, "the integration tests load BPF programs: run as root")
        else:
            tests = integration_tests(args.pattern)
            phases.run("Go programs", build_programs, tests)
    if not args.no_unit:
        phases.run("unit tests", run_unit, args.pattern)
    if not args.no_fuzz:
        phases.run("fuzz targets (%ds each)" % args.fuzz_seconds, run_fuzz, args.pattern,
                   args.fuzz_seconds)
    if tests:
        try:
            with open(DURATIONS) as f:
                durations = json.load(f)
        except (OSError, ValueError):
            durations = {}
        # Integration tests mostly wait for programs that run for a set time (two at a time they
        # keep a tenth of a CPU busy): twice as many as CPUs share the machine.
        phases.run("integration, %d at a time" % (2 * args.jobs), run_shared,
                   [t for t in tests if not t[2]], durations, 2 * args.jobs)
        phases.run("integration, alone", run_alone, [t for t in tests if t[2]], durations)
        with open(DURATIONS, "w") as f:
            json.dump(durations, f, indent=0, sort_keys=True)
        declared = {b for _, fn, _ in tests for b in getattr(fn, "builds", ())}
        late = sorted(os.path.basename(harness.binary(b)[0]) for b in harness.requested - declared)
        if late:
            print("note: built during the tests, not declared with harness.needs: " +
                  ", ".join(late))
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    for name, ok in results:
        if not ok:
            print("failed: " + name)
    phases.print()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
