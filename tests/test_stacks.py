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


def cumulative_shares(profile, functions):
    """Each function's cumulative share of inuse_space, in percent: the samples whose stack
    holds it, as `go tool pprof -top -cum` shows them."""
    i = profile.index("inuse_space")
    total = sum(smp["values"][i] for smp in profile.samples)
    return {fn: 100.0 * sum(smp["values"][i] for smp in profile.samples
                            if fn in profile.stack(smp)) / max(total, 1)
            for fn in functions}


@needs([build(v, "deepstack", tags="withpprof") for v in ("1.19", NEWEST_GO)])
def test_deep_stacks_as_runtime_keeps():
    """Attached late to deepstack, which allocates 100 frames deep under main.callerA and
    main.callerB (2:1) and replaces everything it retains within a second: the profile's
    cumulative shares of main.main and both callers are the runtime's own, within 3 points, on
    the oldest release (its records keep 32 frames: all three are cut) and the newest (128 by
    default: none is; GODEBUG=profstackdepth=40: all are), and the stacks are exactly the
    runtime's, cut where it cuts them."""
    callers = ("main.main", "main.callerA", "main.callerB")
    for version, godebug in (("1.19", ""), (NEWEST_GO, ""), (NEWEST_GO, "profstackdepth=40")):
        binary = go_build(version, "deepstack", tags="withpprof")
        out = tmpdir("deepstack-%s%s" % (version, godebug and "-" + godebug))
        own, mine = os.path.join(out, "runtime.pb.gz"), os.path.join(out, "heapspy.pb.gz")
        prog = Program([binary, "-duration", "60s"],
                       env={"DEEPSTACK_PROFILE": own, "GODEBUG": godebug})
        try:
            prog.wait_for("ready")
            heapspy("record", "--pid", prog.pid, "--duration", "4", "-o", mine, check_rc=0)
            prog.signal(signal.SIGUSR1)
            prog.wait_for("profile written")
        finally:
            prog.kill()
        got, want = pprofdec.load(mine), pprofdec.load(own)
        ours, theirs = cumulative_shares(got, callers), cumulative_shares(want, callers)
        what = "go%s %s: " % (version, godebug)
        if version == NEWEST_GO and not godebug:
            # 2:1 in bytes, as sampled: about 770 objects in use at the rate of 32 KiB.
            check(theirs["main.main"] > 95 and 50 < theirs["main.callerA"] < 80 and
                  theirs["main.callerB"] > 20,
                  what + "the runtime's own profile does not keep the whole stack: %s" % theirs)
        for fn in callers:
            check(abs(ours[fn] - theirs[fn]) <= 3,
                  what + "%s: %.1f%% cumulative in heapspy's profile, %.1f%% in the runtime's"
                  % (fn, ours[fn], theirs[fn]))
        mine_sites, own_sites = program_sites(samples(got)), program_sites(samples(want))
        missing, extra = own_sites - mine_sites, mine_sites - own_sites
        check(not missing and not extra,
              what + "stacks differ from the runtime's own profile\nonly the runtime's:\n%s\n"
              "only heapspy's:\n%s" % ("\n".join(map(show, sorted(missing))),
                                       "\n".join(map(show, sorted(extra)))))
