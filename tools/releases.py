#!/usr/bin/env python3
"""The figures behind README's "Go releases" table, per release, as the tests measure them:

- record, attached late to tests/go/retain (which links runtime/pprof) for 3 s, against the
  runtime's own heap profile written by the same process: the worst site's in-use share
  difference, in-use bytes and objects against the runtime's, and the self-check's agreement;
- gc, attached for 2 s to tests/go/gcload running with GODEBUG=gctrace=1: cycles seen, forced
  ones, and how many cycles' stop-the-world time is within the tests' tolerance of gctrace's.

It runs the tests' own procedures (tests/test_record.py late_attach, tests/test_gc.py attached),
one release at a time, with the machine otherwise idle. Usage: python3 tools/releases.py [1.24 ...]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import harness  # noqa: E402
import test_gc  # noqa: E402
import test_record  # noqa: E402


def totals(profile, sample_type):
    return sum(profile.by_site(sample_type, lambda _: 0).values())


def record_figures(version):
    stdout, got, want = test_record.late_attach(version)
    a, b = test_record.shares(got), test_record.shares(want)
    worst = max(abs(a.get(s, 0.0) - b.get(s, 0.0)) for s in test_record.SITES)
    diff = {t: 100.0 * (totals(got, t) - totals(want, t)) / max(totals(want, t), 1)
            for t in ("inuse_space", "inuse_objects")}
    check = harness.SELF_CHECK.search(stdout)
    return "worst site %.1f points; in-use bytes %+.2f%%, objects %+.2f%%; self-check %s%%" % (
        worst, diff["inuse_space"], diff["inuse_objects"], check.group(2) if check else "none")


def gc_figures(version):
    binary = harness.go_build(version, "gcload")
    report, (close, total) = test_gc.attached(version, binary, "go%s attached" % version)
    forced = sum(1 for c in report["gc_cycles"] if c["forced"])
    return "%d cycles, %d forced, as gctrace; stop-the-world within tolerance in %d of %d" % (
        total, forced, close, total)


def main():
    versions = sys.argv[1:] or harness.GO_VERSIONS
    harness.build_all([harness.build(v, p, tags="withpprof" if p == "retain" else None)
                       for v in versions for p in ("retain", "gcload")])
    for v in versions:
        print("go%s (%s)" % (v, harness.toolchain(v)), flush=True)
        print("  record: " + record_figures(v), flush=True)
        print("  gc:     " + gc_figures(v), flush=True)


if __name__ == "__main__":
    main()
