"""Several heapspy sessions on one process share its sampling switch: sampling stays on while any
of them records, the last one out restores the original rate, a killed session's share is
reclaimed. MemProfileRate is read out of the process independently of heapspy."""
import os
import re
import signal
import subprocess
import time

from harness import (GO_VERSIONS, HEAPSPY, NEWEST_GO, Failure, build, check, go_build, heapspy,
                     needs, tmpdir)
from test_record import mem_profile_rate, set_mem_profile_rate

VERSIONS = (GO_VERSIONS[0], NEWEST_GO)
RATE = 512 * 1024
# tests/go/retain's default garbage, 20 MiB/s, is 40 samples a second at RATE; the second session
# records ALONE seconds after the first stopped and must see at least half of what that allocates.
ALONE = 3
MIN_SAMPLES = ALONE * 40 // 2


def retain(binary):
    return subprocess.Popen([binary, "-duration", "60s"], stdout=subprocess.PIPE, text=True)


def ready(binary, prog):
    check(prog.stdout.readline().strip() == "ready", "retain did not start")
    check(mem_profile_rate(binary, prog.pid) == 0, "the runtime samples without pprof?")


def record(pid, out, *extra):
    return subprocess.Popen([HEAPSPY, "record", "--pid", str(pid), "-o", out] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rate_becomes(binary, pid, want, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if mem_profile_rate(binary, pid) == want:
            return True
        time.sleep(0.05)
    return False


def wait_line(proc, text, timeout=30):
    """Reads proc's stderr until a line holds text; returns what it read."""
    seen = ""
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stderr.readline()
        check(line, "heapspy ended before printing %r:\n%s" % (text, seen))
        seen += line
        if text in line:
            return seen
    raise Failure("heapspy did not print %r:\n%s" % (text, seen))


def switch_off(binary, pid):
    """What a heapspy without the registry did when it left: MemProfileRate back to 0."""
    set_mem_profile_rate(binary, pid, 0)


def first_session(binary, out, launched):
    """The first session, on a retain it launches or on one running: (session, target pid,
    target process or None)."""
    if launched:
        a = subprocess.Popen([HEAPSPY, "record", "-o", out, "--", binary, "-duration", "20s"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err = wait_line(a, "recording pid")
        return a, int(re.search(r"recording pid (\d+)", err).group(1)), None
    prog = retain(binary)
    ready(binary, prog)
    a = record(prog.pid, out)
    wait_line(a, "recording pid")
    return a, prog.pid, prog


def stop_first(a, launched):
    """Ends the first session's recording; returns its stderr so far (all of it when attached)."""
    if not launched:
        a.send_signal(signal.SIGTERM)
        _, err = a.communicate(timeout=30)
        check(a.returncode == 0, "the first session exited %d:\n%s" % (a.returncode, err))
        return err
    # Launched, Ctrl-C ends the recording, and heapspy waits for the program (which then runs
    # out its 20 s on the old code, where nothing is said here).
    a.send_signal(signal.SIGINT)
    return wait_line(a, "another heapspy session still records")


def two_sessions(version, launched):
    binary = go_build(version, "retain")
    out = tmpdir("share-%s%s" % (version, "-launched" if launched else ""))
    a = b = prog = None
    pid = 0
    try:
        a, pid, prog = first_session(binary, os.path.join(out, "a.pb.gz"), launched)
        check(rate_becomes(binary, pid, RATE, 2), "the first session did not switch on")
        b = record(pid, os.path.join(out, "b.pb.gz"), "--duration", str(ALONE + 1))
        b_err = wait_line(b, "recording pid")
        a_err = stop_first(a, launched)
        rate_after_first = mem_profile_rate(binary, pid)
        # Sampling switched off by someone else (an older heapspy): the session switches it on.
        switch_off(binary, pid)
        recovered = rate_becomes(binary, pid, RATE, 2)
        b_out, b_rest = b.communicate(timeout=60)
        b_err += b_rest
        check(b.returncode == 0, "the second session exited %d:\n%s" % (b.returncode, b_err))
        samples = int(re.search(r"; (\d+) samples", b_out).group(1))
        print("%s%s: the second session saw %d samples" % (
            version, " (the first launched)" if launched else "", samples))
        check(samples >= MIN_SAMPLES, "the second session saw %d samples, expected at least %d "
              "in %ds alone:\n%s" % (samples, MIN_SAMPLES, ALONE, b_out))
        check(rate_after_first == RATE, "the first session to stop switched sampling off under "
              "the second (MemProfileRate %d)" % rate_after_first)
        check(recovered, "sampling switched off under the second session stayed off")
        check("switched it on again at %d" % RATE in b_err,
              "the second session does not say it switched sampling on again:\n" + b_err)
        check(mem_profile_rate(binary, pid) == 0,
              "the last session out did not restore MemProfileRate to 0")
        check("another heapspy session switched MemProfileRate from 0 to %d" % RATE in b_err,
              "the second session does not say sampling was switched on by another:\n" + b_err)
        if launched:
            os.kill(pid, signal.SIGKILL)
            a_err += a.communicate(timeout=30)[1]
        check("another heapspy session still records" in a_err,
              "the first session does not say it leaves the rate to the second:\n" + a_err)
        check(launched or prog.poll() is None, "the target died")
    finally:
        if launched and pid and os.path.exists("/proc/%d" % pid):
            os.kill(pid, signal.SIGKILL)
        for p in (a, b, prog):
            if p and p.poll() is None:
                p.kill()
                p.communicate()


def killed_session(version):
    binary = go_build(version, "retain")
    out = tmpdir("share-killed-%s" % version)
    prog = retain(binary)
    a = None
    try:
        ready(binary, prog)
        a = record(prog.pid, os.path.join(out, "a.pb.gz"))
        wait_line(a, "recording pid")
        a.kill()
        a.communicate()
        check(mem_profile_rate(binary, prog.pid) == RATE, "the killed session's rate is gone")
        _, _, err = heapspy("record", "--pid", prog.pid, "--duration", "1", "-o",
                            os.path.join(out, "b.pb.gz"), check_rc=0)
        check(mem_profile_rate(binary, prog.pid) == 0,
              "the session after a killed one did not restore MemProfileRate to 0:\n" + err)
    finally:
        for p in (a, prog):
            if p and p.poll() is None:
                p.kill()
                p.communicate()


@needs([build(v, "retain") for v in VERSIONS])
def test_two_sessions_share_sampling():
    for v in VERSIONS:
        for launched in (False, True):
            two_sessions(v, launched)


@needs([build(v, "retain") for v in VERSIONS])
def test_killed_session_share_reclaimed():
    for v in VERSIONS:
        killed_session(v)
