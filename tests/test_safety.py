"""heapspy leaves the target exactly as it found it: whatever signal reaches heapspy at whatever
phase of attach, the target is never left stopped and its MemProfileRate is what it was. The
phases are found from outside, by watching the target (its threads stopped, its rate switched,
the launched program stopped in runtime.main), never through a hook in heapspy."""
import os
import signal
import subprocess
import time

from harness import (GO_VERSIONS, HEAPSPY, NEWEST_GO, Program, build, check, go_build, heapspy,
                     needs, tmpdir)
from test_record import mem_profile_rate, mem_profile_rate_address, set_mem_profile_rate

# The oldest and the newest release heapspy attaches to.
SAFETY_VERSIONS = [GO_VERSIONS[0], NEWEST_GO]
SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT]
RATE = 512 * 1024
# They watch for states that last milliseconds and time heapspy's freeze: nothing runs beside.
RUN_ALONE = True

def thread_states(pid):
    states = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return states
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        states.append(stat[stat.rindex(")") + 2])
    return states


def stopped(pid):
    return "T" in thread_states(pid)


def wait_until(cond, timeout, what):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.0005)


def left_stopped(pid, grace=1.0):
    """Whether pid stays stopped (a SIGCONT needs a moment to reach every thread)."""
    end = time.time() + grace
    while stopped(pid):
        if time.time() > end:
            return True
        time.sleep(0.01)
    return False


def opened(pid, path):
    """Whether process pid holds path open (heapspy reading the target's executable)."""
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path:
                return True
        except OSError:
            continue
    return False


def children(pid):
    return children_of_task(pid, pid)


def run_heapspy(args, sig, at, out):
    """Starts heapspy, sends it sig once at() says the phase is reached; returns (rc, stderr).
    stderr goes to a file: a launched program left behind would hold a pipe open."""
    log = os.path.join(out, "stderr")
    with open(log, "w") as f:
        hs = subprocess.Popen([HEAPSPY] + [str(a) for a in args], stdout=subprocess.DEVNULL,
                              stderr=f)
    try:
        at(hs)
        hs.send_signal(sig)
        hs.wait(timeout=30)
    finally:
        if hs.poll() is None:
            hs.kill()
            hs.wait()
    with open(log) as f:
        return hs.returncode, f.read()


def expect(failures, cond, msg):
    """Records a failure and goes on: the test reports every phase and signal that fails."""
    if not cond:
        failures.append(msg)


def attach_phases(version, out, failures):
    """Attached to a running program: while heapspy reads its executable, while it holds a
    sampling program still, and just after it switched a non-sampling program's sampling on."""
    sampling = go_build(version, "retain", tags="withpprof")
    quiet = go_build(version, "retain")
    for binary, phase in ((sampling, "frozen"), (quiet, "switched"), (quiet, "early")):
        prog = Program([binary, "-duration", "120s"])
        try:
            prog.wait_for("ready")
            before = mem_profile_rate(binary, prog.pid)
            check(before == (RATE if binary == sampling else 0), "unexpected rate %d" % before)
            for sig in SIGNALS:
                what = "go%s, %s while %s" % (version, sig.name, phase)
                if phase == "frozen":
                    at = lambda hs: wait_until(lambda: stopped(prog.pid), 10, "the freeze")
                elif phase == "switched":
                    at = lambda hs: wait_until(
                        lambda: mem_profile_rate(binary, prog.pid) == RATE, 10, "the rate switch")
                else:
                    at = lambda hs: wait_until(lambda: opened(hs.pid, binary), 10,
                                               "heapspy to open the executable")
                rc, err = run_heapspy(["record", "--pid", prog.pid, "--duration", "1", "-o",
                                       os.path.join(out, "h.pb.gz")], sig, at, out)
                if left_stopped(prog.pid):
                    failures.append("%s: the target was left stopped" % what)
                    os.kill(prog.pid, signal.SIGCONT)
                check(prog.proc.poll() is None, "%s: the target died" % what)
                now = mem_profile_rate(binary, prog.pid)
                expect(failures, now == before, "%s: MemProfileRate %d, was %d before heapspy"
                       % (what, now, before))
                if now != before:
                    set_mem_profile_rate(binary, prog.pid, before)
                # heapspy ends normally on every signal it reads; SIGPIPE it ignores (a kill
                # -PIPE is no reason to stop) and ends with --duration.
                expect(failures, rc == 0, "%s: heapspy exited %d, wanted 0 %s"
                       % (what, rc, err.strip().splitlines()[-1:]))
        finally:
            prog.kill()


def launch_phase(version, out, failures):
    """Launched: while the program is held stopped in runtime.main for the rate switch (a few
    tens of milliseconds: a run whose stop the polling misses is run again)."""
    binary = go_build(version, "retain")
    for sig in SIGNALS:
        what = "go%s, %s while the launched program is held" % (version, sig.name)
        for _ in range(3):
            held, kids = [], []

            def at(hs):
                def child_stopped():
                    kids[:] = children(hs.pid) or kids
                    if kids and stopped(kids[0]):
                        held.append(kids[0])
                    return bool(held)
                wait_until(child_stopped, 10, "the launched program to stop")

            try:
                rc, err = run_heapspy(["record", "-o", os.path.join(out, "h.pb.gz"), "--",
                                       binary, "-duration", "1s"], sig, at, out)
            except AssertionError:
                for kid in kids:
                    try:
                        os.kill(kid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            break
        check(held, "%s: never saw the program held in three runs" % what)
        expect(failures, not left_stopped(held[0]), "%s: the program was left stopped" % what)
        try:
            os.kill(held[0], signal.SIGKILL)
        except ProcessLookupError:
            pass
        # Launch mode ends like the program: a SIGTERM is forwarded to it.
        want = 128 + signal.SIGTERM if sig == signal.SIGTERM else 0
        expect(failures, rc == want, "%s: heapspy exited %d, wanted %d %s"
               % (what, rc, want, err.strip().splitlines()[-1:]))


@needs([build(v, "retain", tags=t) for v in SAFETY_VERSIONS for t in (None, "withpprof")])
def test_signals_at_each_phase_of_attach():
    """TERM, INT, HUP, PIPE and QUIT at each phase of attach: heapspy ends normally, the target
    runs on with its old MemProfileRate."""
    failures = []
    for version in SAFETY_VERSIONS:
        out = tmpdir("signals-%s" % version)
        attach_phases(version, out, failures)
        launch_phase(version, out, failures)
    check(not failures, "\n".join(failures))


@needs([build(v, "retain") for v in SAFETY_VERSIONS])
def test_closed_pipe_is_not_fatal():
    """heapspy record --pid P 2>&1 | true: every line it prints goes to a closed pipe."""
    for version in SAFETY_VERSIONS:
        binary = go_build(version, "retain")
        out = os.path.join(tmpdir("pipe-%s" % version), "h.pb.gz")
        prog = Program([binary, "-duration", "60s"])
        try:
            prog.wait_for("ready")
            r, w = os.pipe()
            os.close(r)
            p = subprocess.run([HEAPSPY, "record", "--pid", str(prog.pid), "--duration", "1",
                                "-o", out], stdout=w, stderr=w, timeout=60)
            os.close(w)
            check(p.returncode == 0, "go%s: heapspy exited %d into a closed pipe"
                  % (version, p.returncode))
            check(mem_profile_rate(binary, prog.pid) == 0, "go%s: MemProfileRate not restored"
                  % version)
            check(os.path.getsize(out) > 0, "go%s: no profile written" % version)
        finally:
            prog.kill()


# How long heapspy may hold a process whose threads do not all stop: its limit is one second.
FREEZE_LIMIT_S = 1.0
FREEZE_SLACK_S = 0.4


def stopped_window(pid, until):
    """Seconds during which some thread of pid was stopped, polled every millisecond while
    until() is false."""
    total, since = 0.0, None
    while not until():
        now = time.time()
        if stopped(pid):
            since = since or now
        elif since:
            total, since = total + now - since, None
        time.sleep(0.001)
    return total + (time.time() - since if since else 0.0)


def end_children(pid):
    for task in os.listdir("/proc/%d/task" % pid) if os.path.exists("/proc/%d" % pid) else []:
        for kid in children_of_task(pid, task):
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def children_of_task(pid, task):
    try:
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


@needs([build(v, "stuck") for v in SAFETY_VERSIONS])
def test_thread_in_d_state_freeze_bounded():
    """One thread of eight stuck in the kernel (state D, behind a vfork) never stops: heapspy
    releases the others within its one-second limit, says why in one line, changes nothing."""
    for version in SAFETY_VERSIONS:
        binary = go_build(version, "stuck")
        prog = Program([binary, "-hold", "30s", "-threads", "8"])
        try:
            prog.wait_for("ready")
            wait_until(lambda: "D" in thread_states(prog.pid), 10, "a thread in state D")
            hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(prog.pid), "--duration", "1",
                                   "-o", os.path.join(tmpdir("dstate"), "h.pb.gz")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            held = stopped_window(prog.pid, lambda: hs.poll() is not None)
            err = hs.stderr.read()
            check(held <= FREEZE_LIMIT_S + FREEZE_SLACK_S,
                  "go%s: threads held stopped %.2fs (limit %.1fs)" % (version, held,
                                                                       FREEZE_LIMIT_S))
            # The error is one line (after the warning about a release newer than heapspy's tables).
            check(hs.returncode == 1 and "did not stop within a second" in err.strip()
                  .splitlines()[-1] and not any("did not stop" in l
                                                for l in err.strip().splitlines()[:-1]),
                  "go%s: heapspy exited %d: %s" % (version, hs.returncode, err))
            check(not left_stopped(prog.pid), "go%s: the target was left stopped" % version)
            check(mem_profile_rate(binary, prog.pid) == RATE,
                  "go%s: MemProfileRate changed" % version)
            # The vfork child ends: the stuck thread and the program carry on.
            end_children(prog.pid)
            prog.wait_for("released", timeout=10)
        finally:
            end_children(prog.pid)  # it holds the program's stdout
            prog.kill()


@needs([build(v, "retain", tags="withpprof") for v in SAFETY_VERSIONS])
def test_stopped_target_left_stopped():
    """A process stopped by an operator or a debugger before heapspy attached stays stopped."""
    for version in SAFETY_VERSIONS:
        binary = go_build(version, "retain", tags="withpprof")
        prog = Program([binary, "-duration", "60s"])
        try:
            prog.wait_for("ready")
            os.kill(prog.pid, signal.SIGSTOP)
            wait_until(lambda: set(thread_states(prog.pid)) == {"T"}, 10, "the stop")
            rc, _, err = heapspy("record", "--pid", prog.pid, "--duration", "0.5", "-o",
                                 os.path.join(tmpdir("stopped"), "h.pb.gz"))
            check(rc == 0, "go%s: heapspy exited %d: %s" % (version, rc, err))
            time.sleep(0.2)
            states = set(thread_states(prog.pid))
            check(states == {"T"}, "go%s: the stopped target was resumed (%s)"
                  % (version, "".join(sorted(states))))
        finally:
            prog.kill()


@needs([build(v, p) for v in SAFETY_VERSIONS for p in ("execer", "retain")])
def test_exec_during_attach():
    """The target execs another program right as heapspy first opens its executable: heapspy
    must neither probe the new program at the old one's offsets nor write into it. It says so
    in one line; the new program runs to its normal end with sampling as it was (off)."""
    for version in SAFETY_VERSIONS:
        execer = go_build(version, "execer")
        binary = go_build(version, "retain")
        mem_profile_rate_address(binary)  # go tool nm opens the file: not while execer watches it
        prog = Program([execer, binary, "-duration", "3s"])
        try:
            prog.wait_for("watching")
            rc, _, err = heapspy("record", "--pid", prog.pid, "--duration", "1", "-o",
                                 os.path.join(tmpdir("exec"), "h.pb.gz"))
            last = err.strip().splitlines()[-1:]
            check(rc == 1 and last and "exec'd" in last[0],
                  "go%s: heapspy exited %d after the target exec'd: %s" % (version, rc, err))
            # Read once the new program is up: its runtime clears MemProfileRate at start-up.
            prog.wait_for("ready")
            check(mem_profile_rate(binary, prog.pid) == 0,
                  "go%s: sampling switched on in the program exec'd" % version)
            prc, out, perr = prog.finish(timeout=30)
            check(prc == 0 and "3072 192 12288" in out,
                  "go%s: the program exec'd did not end normally: %d %s %s"
                  % (version, prc, out, perr))
        finally:
            prog.kill()


@needs([build(v, p) for v in SAFETY_VERSIONS for p in ("execer", "retain")])
def test_pid_reused_during_attach():
    """The target exits the moment heapspy opens its executable and another program is given its
    pid (through ns_last_pid): heapspy refuses in one line and leaves the other program alone."""
    for version in SAFETY_VERSIONS:
        execer = go_build(version, "execer")
        binary = go_build(version, "retain")
        mem_profile_rate_address(binary)
        out = tmpdir("reuse")
        for _ in range(5):  # another process on the machine may take the pid first
            first = subprocess.Popen([execer, "exit"], stdout=subprocess.PIPE, text=True)
            check(first.stdout.readline().strip() == "watching", "execer did not start")
            pid = first.pid
            with open(os.path.join(out, "stderr"), "w") as log:
                hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(pid), "--duration", "1",
                                       "-o", os.path.join(out, "h.pb.gz")],
                                      stdout=subprocess.DEVNULL, stderr=log)
            first.wait()  # reaped: the pid is free
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
            second = Program([binary, "-duration", "3s"])
            if second.pid == pid:
                break
            second.kill()
            hs.wait(timeout=60)
        else:
            raise AssertionError("the pid was never reused")
        try:
            rc = hs.wait(timeout=60)
            err = open(os.path.join(out, "stderr")).read()
            last = err.strip().splitlines()[-1:]
            check(rc == 1 and last and ("exited while heapspy attached" in last[0]
                                        or "no process with pid" in last[0]),
                  "go%s: heapspy exited %d with pid %d reused: %s" % (version, rc, pid, err))
            second.wait_for("ready")
            check(mem_profile_rate(binary, pid) == 0,
                  "go%s: sampling switched on in the program that reused the pid" % version)
            prc, sout, serr = second.finish(timeout=30)
            check(prc == 0 and "3072 192 12288" in sout,
                  "go%s: the program that reused the pid did not end normally: %d %s"
                  % (version, prc, serr))
        finally:
            second.kill()
