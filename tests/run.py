#!/usr/bin/env python3
"""heapspy's test runner: the unit tests (built with ASan and UBSan), a short run of every fuzz
target, and the integration tests (tests/test_*.py: real BPF programs in the real kernel, attached
to real Go programs built here). Ends with the line "N passed, N failed".

    python3 tests/run.py [-k SUBSTRING] [--no-unit] [--no-fuzz] [--fuzz-seconds N]
"""
import argparse
import glob
import importlib
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, Failure  # noqa: E402

results = []


def report(name, ok, detail="", secs=0.0):
    results.append((name, ok))
    print("%s %s (%.1fs)" % ("PASS" if ok else "FAIL", name, secs), flush=True)
    if not ok and detail:
        print("    " + detail.strip().replace("\n", "\n    "), flush=True)


def binaries(kind, prefix):
    """The test programs make built (beside them, the compiler's dependency files)."""
    return [b for b in sorted(glob.glob(os.path.join(ROOT, "build", kind, prefix + "*")))
            if os.access(b, os.X_OK)]


def run_unit(pattern):
    for binary in binaries("unit", "test_"):
        name = os.path.basename(binary)
        if pattern and pattern not in name:
            continue
        t0 = time.time()
        p = subprocess.run([binary], capture_output=True, text=True, cwd=ROOT, timeout=900)
        secs = time.time() - t0
        cases = [l.split(None, 1) for l in p.stdout.splitlines() if l.startswith(("PASS ", "FAIL "))]
        for verdict, case in cases:
            report("%s.%s" % (name, case), verdict == "PASS",
                   p.stderr if verdict == "FAIL" else "", secs / max(len(cases), 1))
        if p.returncode != 0 and not any(v == "FAIL" for v, _ in cases):
            report(name, False, "exit %d\n%s" % (p.returncode, p.stderr[-3000:]), secs)


def run_fuzz(pattern, seconds):
    for binary in binaries("fuzz", "fuzz_"):
        name = os.path.basename(binary)
        if pattern and pattern not in name:
            continue
        corpus = os.path.join(BUILD, "corpus", name)
        os.makedirs(corpus, exist_ok=True)
        t0 = time.time()
        seeds = os.path.join(ROOT, "tests", "fuzz", "seeds.sh")
        if os.path.exists(seeds) and not os.listdir(corpus):
            subprocess.run(["sh", seeds, corpus], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
        p = subprocess.run([binary, "-max_total_time=%d" % seconds, "-rss_limit_mb=4096",
                            corpus], capture_output=True, text=True, cwd=ROOT)
        report("fuzz." + name, p.returncode == 0, p.stderr[-3000:], time.time() - t0)


def run_integration(pattern):
    if os.geteuid() != 0:
        report("integration", False, "the integration tests load BPF programs: run as root")
        return
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "test_*.py"))):
        module = importlib.import_module(os.path.basename(path)[:-3])
        for name in [n for n in dir(module) if n.startswith("test_")]:
            full = "%s.%s" % (module.__name__, name)
            if pattern and pattern not in full:
                continue
            t0 = time.time()
            try:
                getattr(module, name)()
                report(full, True, secs=time.time() - t0)
            except Failure as e:
                report(full, False, str(e), time.time() - t0)
            except Exception:  # a broken test is a failed test, never a crashed runner
                report(full, False, traceback.format_exc(), time.time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-k", dest="pattern", default="", help="run only tests whose name has this")
    ap.add_argument("--no-unit", action="store_true")
    ap.add_argument("--no-fuzz", action="store_true")
    ap.add_argument("--no-integration", action="store_true")
    ap.add_argument("--fuzz-seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", 20)))
    args = ap.parse_args()
    os.makedirs(BUILD, exist_ok=True)
    if not args.no_unit:
        run_unit(args.pattern)
    if not args.no_fuzz:
        run_fuzz(args.pattern, args.fuzz_seconds)
    if not args.no_integration:
        run_integration(args.pattern)
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    for name, ok in results:
        if not ok:
            print("failed: " + name)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not results else 0)


if __name__ == "__main__":
    main()
