"""Production conditions: containers, faults, repeated attaches, overflow, planted symlinks,
releases heapspy does not know."""
import glob
import json
import os
import re
import signal
import subprocess
import time

import pprofdec
from harness import (HEAPSPY, NEWEST_GO, Program, build, build_variant, check, check_self_check,
                     go_build, go_variant, heapspy, needs, pprof_top, tmpdir)
from test_record import SITES, early_attach, mem_profile_rate, one_line_error

# These count heapspy's programs in the kernel: no other test's heapspy may run beside them.
RUN_ALONE = {"test_sigkill_leaves_target_running", "test_attach_detach_50_times"}


def held_program_ids():
    """The ids of the BPF programs some live process holds a file descriptor of."""
    ids = set()
    for fdinfo in glob.glob("/proc/[0-9]*/fdinfo/*"):
        try:
            with open(fdinfo) as f:
                m = re.search(r"^prog_id:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    return ids


def loaded_heap_programs(settle=5.0):
    """How many of heapspy's heap programs the kernel holds that no live process does (another
    heapspy on the machine holds its own): 0 once every heapspy here has detached. The kernel
    frees a closed program after an RCU grace period, so allow it a moment."""
    end = time.time() + settle
    while True:
        progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "list"], capture_output=True,
                                          text=True).stdout or "[]")
        held = held_program_ids()
        n = sum(1 for p in progs if p.get("name") in ("mprof_malloc", "free_special") and
                p["id"] not in held)
        if n == 0 or time.time() > end:
            return n
        time.sleep(0.2)


@needs(build(NEWEST_GO, "retain", tags="withpprof"))
def test_container_namespaces():
    """A process in its own mount and pid namespaces, running a binary the host cannot see at
    that path, attached by its host pid. It links runtime/pprof, so what it retained before
    heapspy attached is in the profile."""
    binary = go_build(NEWEST_GO, "retain", tags="withpprof")
    out = tmpdir("container")
    mnt = os.path.join(out, "mnt")
    os.makedirs(mnt, exist_ok=True)
    script = ("mount -t tmpfs none {m} && cp {b} {m}/service && exec {m}/service -duration 30s"
              .format(m=mnt, b=binary))
    box = subprocess.Popen(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c",
                            script], stdout=subprocess.PIPE, text=True)
    try:
        check(box.stdout.readline().strip() == "ready", "the contained program did not start")
        # unshare forks the namespace's first process, which execs into the service.
        pids = subprocess.run(["pgrep", "-P", str(box.pid)], capture_output=True,
                              text=True).stdout.split()
        check(len(pids) == 1, "cannot find the contained process: %s" % pids)
        check(not os.path.exists(os.path.join(mnt, "service")),
              "the host sees the namespace's file: the test proves nothing")
        prof = os.path.join(out, "heap.pb.gz")
        _, stdout, _ = heapspy("record", "--pid", pids[0], "--duration", "3", "-o", prof,
                               check_rc=0)
        check("main.retainA" in pprof_top(prof), "no main.retainA in the profile")
    finally:
        box.kill()
        box.wait()


@needs(build(NEWEST_GO, "retain"))
def test_sigkill_leaves_target_running():
    binary = go_build(NEWEST_GO, "retain")
    prog = Program([binary, "-duration", "6s"])
    try:
        prog.wait_for("ready")
        hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(prog.pid), "-o",
                               os.path.join(tmpdir("sigkill"), "heap.pb.gz")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        hs.kill()
        hs.wait()
        # What the README says stays behind: the sampling rate heapspy switched on.
        check(mem_profile_rate(binary, prog.pid) == 512 * 1024, "unexpected MemProfileRate")
        rc, out, err = prog.finish(timeout=30)
        check(rc == 0 and "3072 192 12288" in out, "the target did not finish normally: %d %s"
              % (rc, err))
        check(loaded_heap_programs() == 0, "the kernel still holds heapspy's programs")
    finally:
        prog.kill()


@needs(build(NEWEST_GO, "forker"))
def test_fork_and_exec():
    """The target starts children all along and finally execs itself: heapspy keeps recording,
    the children run normally, and the profile is written when the process ends."""
    binary = go_build(NEWEST_GO, "forker")
    out = os.path.join(tmpdir("fork"), "heap.pb.gz")
    prog = Program([binary, "-duration", "3s"])
    try:
        prog.wait_for("ready")
        rc, stdout, stderr = heapspy("record", "--pid", prog.pid, "-o", out, timeout=60)
        prc, pout, perr = prog.finish(timeout=30)
    finally:
        prog.kill()
    check(rc == 0, "heapspy failed: %s" % stderr)
    check(prc == 0 and "exec'd image done" in pout, "the target failed: %s %s" % (pout, perr))
    check(re.search(r"forks \d+", pout), "no children were started: " + pout)
    check("main.work" in pprof_top(out), "no main.work in the profile")


@needs(build(NEWEST_GO, "retain"))
def test_attach_detach_50_times():
    binary = go_build(NEWEST_GO, "retain")
    # A twin that heapspy never touches: the Go heap's own growth is the baseline.
    prog = Program([binary, "-duration", "120s"])
    twin = Program([binary, "-duration", "120s"])
    try:
        prog.wait_for("ready")
        twin.wait_for("ready")
        for _ in range(50):
            heapspy("record", "--pid", prog.pid, "--duration", "0.2", "-o",
                    os.path.join(tmpdir("cycles"), "heap.pb.gz"), check_rc=0)
        check(prog.proc.poll() is None, "the target died")
        check(mem_profile_rate(binary, prog.pid) == 0, "MemProfileRate not restored")
        check(loaded_heap_programs() == 0, "heapspy's BPF programs leaked in the kernel")
        rss = [rss_kib(p.pid) for p in (prog, twin)]
        check(rss[0] < rss[1] * 1.3, "after 50 attaches the target has %d KiB resident, its "
              "untouched twin %d KiB" % tuple(rss))
    finally:
        prog.kill()
        twin.kill()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@needs(build(NEWEST_GO, "retain"))
def test_ring_buffer_overflow_counted():
    """Every allocation sampled into a 16 KiB ring buffer: the loss is counted and reported."""
    binary = go_build(NEWEST_GO, "retain")
    out = os.path.join(tmpdir("overflow"), "heap.pb.gz")
    _, stdout, _ = heapspy("record", "--rate", "1", "--ringbuf", "16", "-o", out, "--", binary,
                           "-duration", "2s", "-garbage", "50", check_rc=0)
    lost = int(re.search(r"(\d+) events lost", stdout).group(1))
    check(lost > 0, "no loss reported with a 16 KiB ring buffer at rate 1:\n" + stdout)
    prof = pprofdec.load(out)
    check(any("events lost" in c for c in prof.comments), "the profile does not say: %s"
          % prof.comments)


@needs(build(NEWEST_GO, "retain"))
def test_output_symlink_not_followed():
    """A symlink planted at the output path in a shared directory is replaced, not followed."""
    binary = go_build(NEWEST_GO, "retain")
    d = tmpdir("symlink")
    victim = os.path.join(d, "victim")
    with open(victim, "w") as f:
        f.write("precious")
    link = os.path.join(d, "heap.pb.gz")
    os.symlink(victim, link)
    heapspy("record", "-o", link, "--", binary, "-duration", "1s", check_rc=0)
    check(open(victim).read() == "precious", "heapspy wrote through the symlink")
    check(not os.path.islink(link) and os.path.isfile(link), "the output is not a plain file")
    pprof_top(link)


def claim_release(out, release, variant="", go=NEWEST_GO):
    """A copy of a real binary of Go `go` (the newest by default) whose build info and
    runtime.buildVersion claim another release."""
    data = open(go_variant(go, "retain", variant), "rb").read()
    version = re.search(rb"go" + re.escape(go.encode()) + rb"\.\d+", data).group(0)
    patched = os.path.join(out, "retain-" + release.decode() + variant)
    with open(patched, "wb") as f:
        f.write(data.replace(version, release + version[len(release):]))
    os.chmod(patched, 0o755)
    return patched


@needs([build_variant(NEWEST_GO, "retain", v) for v in ("", "stripped")])
def test_newer_go_release():
    """A release newer than heapspy knows: it says so, takes every layout from the binary (its
    DWARF, or its code once stripped: no table), checks itself against the runtime's own records,
    and the target is unharmed (here a real binary of the newest Go whose build info claims
    go1.99)."""
    out = tmpdir("version")
    for variant in ("", "stripped"):
        patched = claim_release(out, b"go1.99", variant)
        prof = os.path.join(out, "h%s.pb.gz" % variant)
        rc, stdout, stderr = heapspy("record", "-v", "--rate", "16384", "-o", prof, "--", patched,
                                     "-duration", "4s", "-garbage", "20", env={"GOGC": "50"})
        check(rc == 0, "heapspy failed on a newer release: %s" % stderr)
        check(re.search(r"go1\.99\.\d+ is newer than the go1\.18-go1\.\d+ runtimes heapspy "
                        r"knows", stderr), stderr)
        # The heap-profiling layouts; goroutine labels are not read here (nothing sets them).
        layouts = [l for l in stderr.splitlines() if l.startswith("heapspy: layout: ") and
                   not re.match(r"heapspy: layout: (g\.labels|g\.m|m\.curg|goroutine labels)", l)]
        want = "(from DWARF)" if not variant else "(from code)"
        check(len(layouts) == 6 and all(want in l for l in layouts),
              "%s: layouts not from the binary:\n%s" % (variant or "default", "\n".join(layouts)))
        check("3072 192 12288" in stdout, "the target did not finish normally")
        check_self_check(stdout, "go1.99 %s" % variant, pprofdec.load(prof).comments)
        pprof_top(prof)


@needs([build_variant(v, "retain", "stripped") for v in ("1.19", NEWEST_GO)])
def test_patch_release_without_table():
    """A stripped binary of a patch release that no table names (go1.19.9, go1.NN.9: the
    release strings changed): every layout from the code, or, for mProf_Malloc's parameters
    before Go 1.23, from its release line; the profile as the runtime's own records say."""
    out = tmpdir("patchrelease")
    for go in ("1.19", NEWEST_GO):
        claim = ("go%s.9" % go).encode()
        patched = claim_release(out, claim, "stripped", go=go)
        prof = os.path.join(out, "h%s.pb.gz" % go)
        rc, stdout, stderr = heapspy("record", "--rate", "16384", "-o", prof, "--", patched,
                                     "-duration", "3s", "-garbage", "20", env={"GOGC": "50"})
        check(rc == 0, "heapspy failed on %s: %s" % (claim.decode(), stderr))
        check("3072 192 12288" in stdout, "the target did not finish normally")
        check_self_check(stdout, claim.decode(), pprofdec.load(prof).comments)


@needs(build(NEWEST_GO, "retain"))
def test_older_go_release_refused():
    out = tmpdir("oldversion")
    patched = claim_release(out, b"go1.17")
    prog = Program([patched, "-duration", "30s"])
    try:
        prog.wait_for("ready")
        rc, _, err = heapspy("record", "--pid", prog.pid, "-o", os.path.join(out, "h.pb.gz"))
        one_line_error(rc, err, "go1.17")
        check(prog.proc.poll() is None, "the target died")
    finally:
        prog.kill()


@needs([build_variant(v, "retain", s) for v in ("1.19", "1.26") for s in ("", "stripped")])
def test_release_without_build_info():
    """Some projects strip .go.buildinfo: heapspy then reads the release from
    runtime.buildVersion (by its symbol, or through the runtime's code when stripped), names it
    and records as usual. The oldest release and 1.26 (the first without textStart in the
    pclntab), with and without symbols."""
    total = float(sum(SITES.values()))
    want = {k: 100.0 * v / total for k, v in SITES.items()}
    for version in ("1.19", "1.26"):
        for variant in ("", "stripped"):
            built = go_variant(version, "retain", variant)
            bare = os.path.join(tmpdir("nobuildinfo-%s%s" % (version, variant)), "retain")
            subprocess.run(["objcopy", "--remove-section", ".go.buildinfo", built, bare],
                           check=True)
            check(b"Go buildinf:" not in open(bare, "rb").read(), "the build info is still there")
            stderr = early_attach(version, variant, want, binary=bare)
            check(re.search(r"recording pid \d+ \(%s, go%s\.\d+\)" % (
                re.escape(bare), re.escape(version)), stderr),
                  "heapspy did not name go%s:\n%s" % (version, stderr))
            source = "runtime.schedinit" if variant else "runtime.buildVersion"
            _, _, stderr = heapspy("record", "-v", "-o", os.path.join(os.path.dirname(bare),
                                                                      "v.pb.gz"),
                                   "--", bare, "-duration", "1s", check_rc=0)
            check("go%s." % version in stderr and "(from %s)" % source in stderr,
                  "-v does not say the release came from %s:\n%s" % (source, stderr))
