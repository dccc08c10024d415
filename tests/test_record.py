"""heapspy record against real Go programs: the runtime's own heap profile and known retained sizes
are the ground truth."""
import functools
import os
import re
import signal
import subprocess
import time

import pprofdec
from harness import (GO_VERSIONS, HEAPSPY, NEWEST_GO, VARIANTS, Failure, Program, build,
                     build_variant, check, check_self_check, each, go_bin, go_build, go_variant,
                     heapspy, needs, pprof_top, tmpdir)

# The three retained sites of tests/go/retain and their sizes in MiB.
SITES = {"main.retainA": 24, "main.retainB": 12, "main.retainC": 6}
SHARE_TOLERANCE_PP = 3.0
# Launched programs sample at this rate: main.retainC's 6 MiB in 512-byte objects is then ~770
# samples, its share's sampling error about 0.5 points (0.7 at 16384, where one of the 40 builds
# the test runs missed the tolerance by chance).
EARLY_RATE = 8192
# Perf-event uprobes are attached and taken down under a global lock in the kernel, a tenth of a
# second each: beside other sessions the test would time their contention, not heapspy.
RUN_ALONE = {"test_perf_event_uprobes"}


def site_of(stack):
    for fn in stack:
        if fn in SITES:
            return fn
    return "other"


def shares(profile):
    by = profile.by_site("inuse_space", site_of)
    total = sum(by.values())
    check(total > 0, "the profile holds no in-use bytes")
    return {k: 100.0 * v / total for k, v in by.items()}


def compare_shares(got, want, what):
    for site in SITES:
        diff = abs(got.get(site, 0.0) - want.get(site, 0.0))
        check(diff <= SHARE_TOLERANCE_PP,
              "%s: %s has %.1f%% of inuse_space, expected %.1f%% (tolerance %.0f points)\n"
              "heapspy: %s\nexpected: %s" % (what, site, got.get(site, 0.0), want[site],
                                              SHARE_TOLERANCE_PP, got, want))


@functools.lru_cache(maxsize=None)
def mem_profile_rate_address(binary):
    """runtime.MemProfileRate's address, from the binary's own symbol table (go tool nm); cached,
    as callers poll the rate by the millisecond."""
    nm = subprocess.run([go_bin(NEWEST_GO), "tool", "nm", binary], capture_output=True, text=True,
                        check=True, env=dict(os.environ, GOTOOLCHAIN="local")).stdout
    return int(re.search(r"^\s*([0-9a-f]+) [BD] runtime\.MemProfileRate$", nm, re.M).group(1), 16)


def mem_profile_rate(binary, pid):
    """Reads runtime.MemProfileRate out of a live process, independently of heapspy."""
    with open("/proc/%d/mem" % pid, "rb") as mem:
        mem.seek(mem_profile_rate_address(binary))
        return int.from_bytes(mem.read(8), "little")


def set_mem_profile_rate(binary, pid, rate):
    """Writes runtime.MemProfileRate into a live process, as a heapspy that left it would."""
    with open("/proc/%d/mem" % pid, "r+b", buffering=0) as mem:
        mem.seek(mem_profile_rate_address(binary))
        mem.write(rate.to_bytes(8, "little"))


def late_attach(version, variant="", hs_env=None):
    binary = go_variant(version, "retain", variant, tags="withpprof")
    out = tmpdir("late-%s%s" % (version, variant))
    own = os.path.join(out, "runtime.pb.gz")
    mine = os.path.join(out, "heapspy.pb.gz")
    prog = Program([binary, "-duration", "60s", "-garbage", "30"], env={"RETAIN_PROFILE": own,
                                                                       "GOGC": "50"})
    try:
        prog.wait_for("ready")
        time.sleep(1.5)  # let a few GC cycles publish the retained objects
        _, stdout, _ = heapspy("record", "--pid", prog.pid, "--duration", "3", "-o", mine,
                               check_rc=0, env=hs_env)
        prog.signal(signal.SIGUSR1)
        prog.wait_for("profile written")
    finally:
        prog.kill()
    got, want = pprofdec.load(mine), pprofdec.load(own)
    check(any("before heapspy attached" in c for c in got.comments),
          "the profile does not say it includes pre-attach records: %s" % got.comments)
    check(got.period == want.period == 512 * 1024, "period %d, runtime's %d" % (got.period,
                                                                                 want.period))
    compare_shares(shares(got), shares(want), "go%s %s attached late" % (version, variant))
    check_self_check(stdout, "go%s %s attached late" % (version, variant), got.comments)
    # Nothing in retain sets pprof labels: no word of them, no sample label but the size.
    check("pprof labels" not in stdout and
          all(set(s["labels"]) == {"bytes"} for s in got.samples),
          "go%s %s: labels where the program sets none:\n%s" % (version, variant, stdout))
    top = pprof_top(mine)
    check("main.retainA" in top, "go tool pprof -top does not show main.retainA:\n" + top)
    return stdout, got, want


# Every Go version in these build shapes; the runs share the CPUs (harness.each).
LATE = [(v, s) for v in GO_VERSIONS for s in ("", "stripped")]
EARLY = [(v, s) for v in GO_VERSIONS for s in VARIANTS]


@needs([build_variant(v, "retain", s, tags="withpprof") for v, s in LATE])
def test_late_attach_matches_runtime_profile():
    """Attached to a program that links runtime/pprof: the same shares as its own profile.
    Stripped binaries too: the runtime's records are then found from the runtime's code."""
    each(LATE, lambda vs: late_attach(*vs))


@needs([build_variant(v, "retain", s) for v, s in EARLY])
def test_early_attach_matches_known_sizes():
    """Launched without runtime/pprof (sampling off): heapspy switches it on; known shares.
    Every Go version, in every production build shape: stripped, PIE, stripped PIE, cgo."""
    total = float(sum(SITES.values()))
    want = {k: 100.0 * v / total for k, v in SITES.items()}
    each(EARLY, lambda vs: early_attach(*vs, want))


@needs(build(NEWEST_GO, "retain"), build(NEWEST_GO, "retain", tags="withpprof"))
def test_perf_event_uprobes():
    """Before Linux 6.12 heapspy attaches perf-event uprobes, not uprobe_multi links
    (forced here with HEAPSPY_PERF_UPROBES=1): the same profiles, attached early and late."""
    total = float(sum(SITES.values()))
    want = {k: 100.0 * v / total for k, v in SITES.items()}
    perf = {"HEAPSPY_PERF_UPROBES": "1"}
    early_attach(NEWEST_GO, "", want, hs_env=perf)
    late_attach(NEWEST_GO, "", hs_env=perf)


def early_attach(version, variant, want, hs_env=None, binary=None):
    """Launches retain (built for version and variant unless binary is given) under heapspy;
    returns heapspy's stderr."""
    binary = binary or go_variant(version, "retain", variant)
    out = os.path.join(tmpdir("early-%s%s" % (version, variant)), "heap.pb.gz")
    _, stdout, stderr = heapspy("record", "--rate", EARLY_RATE, "-o", out, "--", binary,
                                "-duration", "5s", "-garbage", "20", check_rc=0,
                                env=dict({"GOGC": "50"}, **(hs_env or {})))
    check("switched MemProfileRate from 0 to %d" % EARLY_RATE in stderr,
          "heapspy did not say it switched sampling on:\n" + stderr)
    prof = pprofdec.load(out)
    check(prof.period == EARLY_RATE, "period %d, wanted %d" % (prof.period, EARLY_RATE))
    check(any("since heapspy attached" in c for c in prof.comments), str(prof.comments))
    compare_shares(shares(prof), want, "go%s %s launched" % (version, variant))
    check_self_check(stdout, "go%s %s launched" % (version, variant), prof.comments)
    check("main.retainA" in stdout, "the summary does not name main.retainA:\n" + stdout)
    return stderr


@needs(build(GO_VERSIONS[0], "retain"), build(NEWEST_GO, "retain"))
def test_self_check_catches_wrong_layout():
    """A deliberately wrong _KindSpecialProfile (HEAPSPY_TEST_PROFILE_KIND, which exists for this
    test only) makes the free probe drop every free, so short-lived garbage would look in use:
    with --leaks (which follows each object to its free) the self-check must say so plainly in
    the summary, on stderr and in the profile's comments. Without it record attaches no free
    probe (one hit per sample, frees from the runtime's records): the same wrong kind changes
    nothing, and the known shares hold. Oldest and newest release; kind 1 is never the profile
    kind."""
    total = float(sum(SITES.values()))
    want = {k: 100.0 * v / total for k, v in SITES.items()}
    for version in (GO_VERSIONS[0], NEWEST_GO):
        binary = go_build(version, "retain")
        out = os.path.join(tmpdir("wrong-kind-%s" % version), "heap.pb.gz")
        _, stdout, _ = heapspy("record", "--rate", "16384", "-o", out, "--", binary,
                               "-duration", "4s", "-garbage", "20", check_rc=0,
                               env={"GOGC": "50", "HEAPSPY_TEST_PROFILE_KIND": "1"})
        prof = pprofdec.load(out)
        check_self_check(stdout, "go%s one hit per sample" % version, prof.comments)
        compare_shares(shares(prof), want, "go%s one hit per sample" % version)
        _, stdout, stderr = heapspy("record", "--leaks", "--rate", "16384", "-o", out, "--",
                                    binary, "-duration", "4s", "-garbage", "20", check_rc=0,
                                    env={"GOGC": "50", "HEAPSPY_TEST_PROFILE_KIND": "1"})
        check("self-check FAILED" in stdout and "do not trust this profile" in stdout,
              "go%s: the summary does not say the self-check failed:\n%s" % (version, stdout))
        check("heapspy: warning: self-check FAILED" in stderr,
              "go%s: no warning on stderr:\n%s" % (version, stderr))
        comments = pprofdec.load(out).comments
        check(any("self-check FAILED" in c for c in comments),
              "go%s: the profile's comments do not say it: %s" % (version, comments))


@needs(build(NEWEST_GO, "retain"))
def test_profile_format():
    """Sample types, period, default type, mapping with build ID, functions with file and line."""
    binary = go_build(NEWEST_GO, "retain")
    out = os.path.join(tmpdir("format"), "heap.pb.gz")
    heapspy("record", "-o", out, "--", binary, "-duration", "3s", check_rc=0, env={"GOGC": "50"})
    p = pprofdec.load(out)
    check(p.sample_types == [("alloc_objects", "count"), ("alloc_space", "bytes"),
                             ("inuse_objects", "count"), ("inuse_space", "bytes")],
          "sample types %s" % p.sample_types)
    check(p.period_type == ("space", "bytes") and p.period == 512 * 1024,
          "period %s %d" % (p.period_type, p.period))
    check(p.default_sample_type == "inuse_space", "default %r" % p.default_sample_type)
    check(p.time_nanos > 0 and p.duration_nanos > 0, "time/duration not set")
    check(len(p.mappings) == 1, "mappings: %s" % p.mappings)
    m = list(p.mappings.values())[0]
    check(m["build_id"] and m["file"].endswith(os.path.basename(binary)), "mapping %s" % m)
    lines = [l for loc in p.locations.values() for l in loc["lines"]]
    check(any(fn == "main.retainA" and f.endswith("retain/main.go") and ln > 0
              for fn, f, ln in lines), "no main.retainA with file and line")
    # runtime/pprof hides the allocator's own frames: no sample may start in runtime.*.
    for s in p.samples:
        stack = p.stack(s)
        if any(not fn.startswith("runtime.") for fn in stack):
            check(not stack[0].startswith("runtime."), "untrimmed stack %s" % stack)
        check(s["labels"].get("bytes", 0) > 0, "sample without a bytes label")


@needs(build(NEWEST_GO, "retain"))
def test_launch_mode_target_runs_on():
    """--duration shorter than the program: heapspy detaches, the program finishes normally."""
    binary = go_build(NEWEST_GO, "retain")
    out = os.path.join(tmpdir("launch"), "heap.pb.gz")
    t0 = time.time()
    rc, stdout, stderr = heapspy("record", "--duration", "1", "-o", out, "--", binary,
                                 "-duration", "4s")
    check(rc == 0, "heapspy exited %d (the program's status should be 0):\n%s" % (rc, stderr))
    check(time.time() - t0 >= 3.5, "heapspy did not wait for the program")
    check("3072 192 12288" in stdout, "the program did not finish normally:\n" + stdout)
    check_self_check(stdout, "launched for 1s", published=False)
    check(os.path.exists(out), "no profile written")
    pprof_top(out)


@needs(build(NEWEST_GO, "retain"))
def test_sigterm_writes_profile_and_restores_rate():
    binary = go_build(NEWEST_GO, "retain")
    out = os.path.join(tmpdir("sigterm"), "heap.pb.gz")
    prog = Program([binary, "-duration", "60s"])
    try:
        prog.wait_for("ready")
        check(mem_profile_rate(binary, prog.pid) == 0, "the runtime samples without pprof?")
        hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(prog.pid), "-o", out],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        check(mem_profile_rate(binary, prog.pid) == 512 * 1024, "sampling not switched on")
        hs.send_signal(signal.SIGTERM)
        stdout, stderr = hs.communicate(timeout=30)
        check(hs.returncode == 0, "heapspy exited %d on SIGTERM:\n%s" % (hs.returncode, stderr))
        check("SIGTERM" in stdout, "the summary does not say why it ended:\n" + stdout)
        check_self_check(stdout, "ended by SIGTERM", published=False)
        check(mem_profile_rate(binary, prog.pid) == 0, "MemProfileRate not restored to 0")
        check(prog.proc.poll() is None, "the target died")
    finally:
        prog.kill()
    pprof_top(out)


@needs(build(NEWEST_GO, "retain"))
def test_target_exit_writes_profile():
    binary = go_build(NEWEST_GO, "retain")
    out = os.path.join(tmpdir("exit"), "heap.pb.gz")
    prog = Program([binary, "-duration", "3s"])
    try:
        prog.wait_for("ready")
        _, stdout, _ = heapspy("record", "--pid", prog.pid, "-o", out, check_rc=0)
    finally:
        prog.kill()
    check("target exited" in stdout, stdout)
    check_self_check(stdout, "ended by the target's exit", published=False)
    pprof_top(out)


def one_line_error(rc, stderr, needle):
    check(rc != 0, "heapspy succeeded")
    lines = stderr.strip().splitlines()
    check(len(lines) == 1, "wanted a one-line error, got:\n" + stderr)
    check(needle in lines[0], "the error %r does not mention %r" % (lines[0], needle))


@needs(build(NEWEST_GO, "retain"))
def test_bad_inputs():
    out = os.path.join(tmpdir("bad"), "heap.pb.gz")
    rc, _, err = heapspy("record", "--pid", "4000000", "-o", out)
    one_line_error(rc, err, "no process with pid 4000000")

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        rc, _, err = heapspy("record", "--pid", sleeper.pid, "-o", out)
        one_line_error(rc, err, "is not a Go program")
    finally:
        sleeper.kill()
        sleeper.wait()

    binary = go_build(NEWEST_GO, "retain")
    prog = Program([binary, "-duration", "30s"])
    try:
        prog.wait_for("ready")
        rc, _, err = heapspy("record", "--pid", prog.pid, "-o", "/nonexistent/dir/heap.pb.gz")
        one_line_error(rc, err, "cannot write /nonexistent/dir/heap.pb.gz")
        rc, _, err = heapspy("record", "--pid", prog.pid, "--btf", "/nonexistent.btf", "-o", out)
        one_line_error(rc, err, "no kernel BTF")
        rc, _, err = heapspy("record", "--pid", prog.pid, "-o", "/tmp/x.pb.gz",
                             preexec_fn=lambda: (os.setgroups([]), os.setgid(65534),
                                                 os.setuid(65534)))
        one_line_error(rc, err, "CAP_BPF")
        check(mem_profile_rate(binary, prog.pid) == 0, "a failed run touched the target")
        check(prog.proc.poll() is None, "the target died")
    finally:
        prog.kill()

    rc, out_, err = heapspy("record", "--bogus")
    check(rc == 2 and "unrecognized option '--bogus'" in err and "--help" in err,
          "unknown flag: rc %d\n%s" % (rc, err))
    rc, _, err = heapspy("record")
    check(rc == 2, "no target: rc %d" % rc)


# The oldest and newest releases: the corners of the runtime's accounting are tested on both.
CORNER_VERSIONS = (GO_VERSIONS[0], NEWEST_GO)
TOTAL_TOLERANCE = 0.02


def inuse_by_site(profile):
    """(leaf function, object size) -> [inuse_objects, inuse_space]: the runtime's bucket key."""
    objs, space, out = profile.index("inuse_objects"), profile.index("inuse_space"), {}
    for smp in profile.samples:
        stack = profile.stack(smp)
        key = (stack[0] if stack else "?", smp["labels"].get("bytes", 0))
        got = out.setdefault(key, [0, 0])
        got[0] += smp["values"][objs]
        got[1] += smp["values"][space]
    return {k: v for k, v in out.items() if v[0] or v[1]}


def compare_with_own(got, want, what, total_tolerance):
    """Shares per site within 3 points; in-use totals within total_tolerance."""
    compare_shares(shares(got), shares(want), what)
    mine = sum(v[1] for v in inuse_by_site(got).values())
    theirs = sum(v[1] for v in inuse_by_site(want).values())
    check(abs(mine - theirs) <= total_tolerance * theirs,
          "%s: in use %.2f MiB, the runtime's own profile %.2f MiB (tolerance %.0f%%)" % (
              what, mine / 1048576.0, theirs / 1048576.0, 100 * total_tolerance))
    return mine, theirs


# go1.24: a release where the runtime's records start past internal/bytealg.MakeNoZero.
BUILDER_VERSIONS = ("1.19", "1.24", NEWEST_GO)


@needs([build(v, "strbuild") for v in BUILDER_VERSIONS])
def test_builder_strings_self_check():
    """Strings kept from strings.Builder: the runtime's records of them start one frame further
    from the allocator than heapspy's probes see (the runtime skips internal/bytealg.MakeNoZero),
    and the self-check must still pair the sites (it said FAILED, 199.7% apart, on go1.24)."""
    for version in BUILDER_VERSIONS:
        out = os.path.join(tmpdir("builder-%s" % version), "heap.pb.gz")
        _, stdout, _ = heapspy("record", "--rate", "4096", "-o", out, "--",
                               go_build(version, "strbuild"), check_rc=0)
        check_self_check(stdout, "go%s strings.Builder" % version, pprofdec.load(out).comments)


@needs([build(v, "retain", tags="withpprof") for v in CORNER_VERSIONS])
def test_rate_set_in_init():
    """A program that sets MemProfileRate in init, launched: heapspy read the rate before init
    ran, and must follow the one the runtime samples at. Its own profile is the ground truth."""
    for version in CORNER_VERSIONS:
        binary = go_build(version, "retain", tags="withpprof")
        out = tmpdir("rate-init-%s" % version)
        own, mine = os.path.join(out, "runtime.pb.gz"), os.path.join(out, "heapspy.pb.gz")
        _, stdout, _ = heapspy("record", "-o", mine, "--", binary, "-duration", "3s",
                               "-garbage", "10", "-profile-at-end", check_rc=0,
                               env={"RETAIN_RATE": "4096", "RETAIN_PROFILE": own, "GOGC": "50"})
        got, want = pprofdec.load(mine), pprofdec.load(own)
        check(want.period == 4096, "the program's own period is %d" % want.period)
        check(got.period == 4096, "go%s: period %d, the runtime sampled at 4096" % (
            version, got.period))
        check("sampling every 4096 bytes" in stdout, "the summary does not say 4096:\n" + stdout)
        check_self_check(stdout, "go%s rate set in init" % version, got.comments)
        mine_b, theirs_b = compare_with_own(got, want, "go%s rate set in init" % version, 0.10)
        print("    go%s rate in init: in use %.2f MiB, runtime %.2f MiB" % (
            version, mine_b / 1048576.0, theirs_b / 1048576.0))


@needs([build(v, "retain", tags="withpprof") for v in CORNER_VERSIONS])
def test_rate_changed_mid_recording():
    """The program switches from 512 KiB to 4096 while heapspy records: each sample counts at
    the rate it was taken at. Shares match the runtime's own profile (not the known sizes: before
    Go 1.24 each P first waits out the gap it drew at the old rate, so the runtime under-samples
    what comes right after a change); the summary and the profile say when the rate changed."""
    for version in CORNER_VERSIONS:
        binary = go_build(version, "retain", tags="withpprof")
        out = tmpdir("rate-change-%s" % version)
        own, mine = os.path.join(out, "runtime.pb.gz"), os.path.join(out, "heapspy.pb.gz")
        # GOGC=20: a few GC cycles publish what was retained after the change.
        _, stdout, _ = heapspy("record", "-o", mine, "--", binary, "-delay", "1s", "-rate",
                               "4096", "-duration", "3s", "-garbage", "20", "-profile-at-end",
                               check_rc=0, env={"RETAIN_PROFILE": own, "GOGC": "20"})
        got, want = pprofdec.load(mine), pprofdec.load(own)
        check(got.period == want.period == 4096, "period %d, runtime's %d" % (got.period,
                                                                               want.period))
        check(re.search(r"sampling every 4096 bytes \(the program changed it: 524288 at the "
                        r"start, 4096 from [0-9.]+s", stdout),
              "the summary does not say the rate changed:\n" + stdout)
        check(any("4096 from" in c for c in got.comments), "no comment on the rate: %s" %
              got.comments)
        check_self_check(stdout, "go%s rate changed" % version, got.comments)
        mine_b, theirs_b = compare_with_own(got, want, "go%s rate changed" % version, 0.10)
        print("    go%s rate changed: in use %.2f MiB, runtime %.2f MiB" % (
            version, mine_b / 1048576.0, theirs_b / 1048576.0))


@needs(build(NEWEST_GO, "retain", tags="withpprof"))
def test_self_check_catches_wrong_record_layout():
    """Attached to a running program, record reads the runtime's records and probes nothing:
    with a deliberately wrong memRecordCycle (HEAPSPY_TEST_RECORD_WORDS=4 where Go 1.27 has 2
    words, tests only) each record's bytes are not its counts times its size, and the summary,
    stderr and the profile say the self-check failed instead of presenting the numbers; with
    the right layout the same recording agrees."""
    binary = go_build(NEWEST_GO, "retain", tags="withpprof")
    out = tmpdir("wrong-record-words")
    prog = Program([binary, "-duration", "60s", "-garbage", "30"], env={"GOGC": "50"})
    try:
        prog.wait_for("ready")
        for words, fails in (("", False), ("4", True)):
            mine = os.path.join(out, "heap%s.pb.gz" % words)
            _, stdout, stderr = heapspy("record", "--pid", prog.pid, "--duration", "2", "-o",
                                        mine, check_rc=0,
                                        env={"HEAPSPY_TEST_RECORD_WORDS": words})
            check("(the runtime's records, read at each GC: no probe)" in stdout,
                  "record --pid did not read the records alone:\n" + stdout)
            comments = pprofdec.load(mine).comments
            if not fails:
                check_self_check(stdout, "the right record layout", comments)
                continue
            check("self-check FAILED" in stdout and "do not trust this profile" in stdout,
                  "a wrong record layout: the summary does not say so:\n" + stdout)
            check("heapspy: warning: self-check FAILED" in stderr,
                  "a wrong record layout: no warning on stderr:\n" + stderr)
            check(any("self-check FAILED" in c for c in comments),
                  "a wrong record layout: the profile's comments do not say so: %s" % comments)
    finally:
        prog.kill()


@needs(build(CORNER_VERSIONS[-1], "retain"))
def test_rate_changed_by_program_not_restored():
    """heapspy switched sampling on; the program then chose its own rate: heapspy leaves it and
    says so."""
    binary = go_build(CORNER_VERSIONS[-1], "retain")
    out = os.path.join(tmpdir("rate-kept"), "heap.pb.gz")
    # The program changes the rate 3 s in: heapspy is attached by then even on a loaded machine
    # (at 1 s, a CI run once attached after it).
    prog = Program([binary, "-delay", "3s", "-rate", "8192", "-duration", "60s"])
    try:
        time.sleep(0.3)  # the runtime is up
        _, _, stderr = heapspy("record", "--pid", prog.pid, "--duration", "4", "-o", out,
                               check_rc=0)
        check("switched MemProfileRate from 0 to 524288" in stderr, stderr)
        check("not restoring MemProfileRate to 0: the program set it to 8192" in stderr,
              "heapspy did not say why it left the rate:\n" + stderr)
        check(mem_profile_rate(binary, prog.pid) == 8192, "the program's rate was overwritten")
    finally:
        prog.kill()


@needs(build(CORNER_VERSIONS[-1], "retain"))
def test_rate_switched_on_by_program_during_attach():
    """The program switches sampling on while heapspy attaches (heapspy found it off, then on):
    heapspy reads the runtime's records as its baseline then, and its self-check agrees. Before,
    the self-check failed (17 objects against 0) on most attaches that met the switch."""
    binary = go_build(CORNER_VERSIONS[-1], "retain")
    out = os.path.join(tmpdir("rate-race"), "heap.pb.gz")
    met = 0
    for ahead in (0.3, 0.22, 0.16, 0.1):
        prog = Program([binary, "-delay", "1s", "-rate", "8192", "-duration", "60s"])
        try:
            time.sleep(1 - ahead)
            _, stdout, stderr = heapspy("record", "--pid", prog.pid, "--duration", "2", "-o",
                                        out, check_rc=0)
        finally:
            prog.kill()
        met += "switched heap sampling on (MemProfileRate 8192) while heapspy attached" in stderr
        check("self-check FAILED" not in stdout + stderr, "attached %.2f s before the program "
              "switched sampling on:\n%s%s" % (ahead, stderr, stdout))
    print("    the switch met the attach in %d of 4 runs" % met)


@needs([build(v, "retain", tags="withpprof") for v in CORNER_VERSIONS])
def test_forced_gc_publication():
    """runtime.GC() in a loop: the runtime publishes its profile right after each (its
    mProf_PostSweep), a cycle earlier than after a GC of its own; the program retains 4 MiB more
    right before the last. heapspy's in-use totals are the runtime's within 2% and its objects per
    site the same."""
    for version in CORNER_VERSIONS:
        binary = go_build(version, "retain", tags="withpprof")
        out = tmpdir("forced-gc-%s" % version)
        own, mine = os.path.join(out, "runtime.pb.gz"), os.path.join(out, "heapspy.pb.gz")
        prog = Program([binary, "-gc", "-duration", "60s", "-garbage", "10"],
                       env={"RETAIN_PROFILE": own})
        try:
            prog.wait_for("ready")
            hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(prog.pid), "-o", mine],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2.5)
            prog.signal(signal.SIGUSR1)
            prog.wait_for("profile written")
            hs.send_signal(signal.SIGINT)
            stdout, stderr = hs.communicate(timeout=30)
            check(hs.returncode == 0, "heapspy exited %d:\n%s" % (hs.returncode, stderr))
        finally:
            prog.kill()
        # Cycles go by a hundred times a second: the runtime's records still agree.
        check_self_check(stdout, "go%s forced GC" % version)
        got, want = inuse_by_site(pprofdec.load(mine)), inuse_by_site(pprofdec.load(own))
        mine_b, theirs_b = sum(v[1] for v in got.values()), sum(v[1] for v in want.values())
        print("    go%s forced GC: in use %.2f MiB / %d objects, runtime %.2f MiB / %d" % (
            version, mine_b / 1048576.0, sum(v[0] for v in got.values()),
            theirs_b / 1048576.0, sum(v[0] for v in want.values())))
        check(abs(mine_b - theirs_b) <= TOTAL_TOLERANCE * theirs_b,
              "go%s: in use %.2f MiB after runtime.GC(), the runtime's own %.2f MiB" % (
                  version, mine_b / 1048576.0, theirs_b / 1048576.0))
        for key in ("main.retainA", "main.retainB", "main.retainC", "main.batch"):
            m = sum(v[0] for k, v in got.items() if k[0] == key)
            t = sum(v[0] for k, v in want.items() if k[0] == key)
            check(m == t, "go%s: %s has %d objects in use, the runtime's own profile %d" % (
                version, key, m, t))


@needs([build(v, "retain") for v in (GO_VERSIONS[0], NEWEST_GO)])
def test_alloc_probe_on_the_jump():
    """The allocation probe sits on the jump of mProf_Malloc's stack-bound check, which the
    kernel emulates, never on an instruction it must step out of line (about 10 us more a sample).
    go1.19-1.22's mProf_Malloc has a frame above StackSmall, whose check starts LEAQ -N(SP), R12:
    it was probed at its first instruction (+6.6% on the allocation loop, against +2% on go1.27)."""
    for version in (GO_VERSIONS[0], NEWEST_GO):
        binary = go_build(version, "retain")
        dump = subprocess.run([go_bin(version), "tool", "objdump", "-s", r"^runtime\.mProf_Malloc$",
                               binary], capture_output=True, text=True, check=True,
                              env=dict(os.environ, GOTOOLCHAIN="local")).stdout
        insns = re.findall(r"^\s+\S+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(\S+)", dump, re.M)
        jump = next(int(a, 16) for a, op in insns[:4] if op in ("JBE", "JLS"))
        out = os.path.join(tmpdir("probe-jump-%s" % version), "heap.pb.gz")
        _, _, stderr = heapspy("record", "-v", "--duration", "0.5", "-o", out, "--", binary,
                               "-duration", "1s", check_rc=0)
        m = re.search(r"probe runtime\.mProf_Malloc at 0x([0-9a-f]+)", stderr)
        check(m and int(m.group(1), 16) == jump,
              "go%s: mProf_Malloc probed at %s, its stack check's jump is at %#x" % (
                  version, m and "0x" + m.group(1), jump))
