"""Stacks as the runtime's own heap profile shows them: heapspy's frames, inlined calls included,
must be exactly runtime/pprof's, whether a site comes from the runtime's records (read at attach)
or from the probes, and each site must be one sample."""
import collections
import os
import signal
import time

import pprofdec
from harness import NEWEST_GO, Program, build, check, go_build, heapspy, needs, tmpdir


def samples(profile):
    """(locations as their address and (function, file, line) lines, object size) -> number of
    samples. The runtime writes buckets with nothing published yet (all values 0) too: those
    are left out, as heapspy writes none."""
    out = collections.Counter()
    for smp in profile.samples:
        if not any(smp["values"]):
            continue
        locs = tuple((profile.locations[lid]["address"], tuple(profile.locations[lid]["lines"]))
                     for lid in smp["locations"])
        out[(locs, smp["labels"].get("bytes"))] += 1
    return out


def show(key):
    locs, size = key
    return "%s bytes: %s" % (size, " <- ".join(
        "%#x %s" % (addr, "+".join("%s:%d" % (fn, ln) for fn, _, ln in lines))
        for addr, lines in locs))


def program_sites(counter):
    return {k for k in counter
            if any(fn.startswith("main.") for _, lines in k[0] for fn, _, _ in lines)}


@needs([build(v, "retain", tags="withpprof") for v in ("1.19", NEWEST_GO)])
def test_stacks_match_runtime_profile():
    """Attached late to retain, which links runtime/pprof: its sites were allocated before attach
    (heapspy reads them from the runtime's records, where an inlined call adds a PC), one of them
    (main.block) inlined into its caller; main.garbage keeps allocating after attach (the probes
    see it too). Every stack equals the runtime's own profile's, located the same way, with
    runtime frames hidden and runtime.goexit dropped as runtime/pprof of that release does."""
    for version in ("1.19", NEWEST_GO):
        binary = go_build(version, "retain", tags="withpprof")
        out = tmpdir("stacks-%s" % version)
        own, mine = os.path.join(out, "runtime.pb.gz"), os.path.join(out, "heapspy.pb.gz")
        prog = Program([binary, "-duration", "60s", "-garbage", "30"],
                       env={"RETAIN_PROFILE": own, "GOGC": "50"})
        try:
            prog.wait_for("ready")
            time.sleep(1.5)
            heapspy("record", "--pid", prog.pid, "--duration", "3", "-o", mine, check_rc=0)
            prog.signal(signal.SIGUSR1)
            prog.wait_for("profile written")
        finally:
            prog.kill()
        got, want = samples(pprofdec.load(mine)), samples(pprofdec.load(own))
        what = "go%s: " % version
        dup = [show(k) for k, n in got.items() if n > 1]
        check(not dup, what + "sites split over several samples:\n" + "\n".join(dup))
        ours, theirs = program_sites(got), program_sites(want)
        check(any("main.block" in show(k) for k in theirs),
              what + "the runtime's profile has no inlined main.block: the test proves nothing")
        missing, extra = theirs - ours, ours - theirs
        check(not missing and not extra,
              what + "stacks differ from the runtime's own profile\nonly the runtime's:\n%s\n"
              "only heapspy's:\n%s" % ("\n".join(map(show, sorted(missing))),
                                       "\n".join(map(show, sorted(extra)))))
