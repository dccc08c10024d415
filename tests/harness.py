"""Shared machinery of heapspy's integration tests: building Go programs with each of Debian's Go
toolchains, running heapspy against them, and reading what it wrote."""
import os
import re
import shutil
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "tests")
HEAPSPY = os.path.join(ROOT, "build", "heapspy")
GO_VERSIONS = ["1.19", "1.21", "1.22", "1.23", "1.24", "1.25", "1.26", "1.27"]
NEWEST_GO = GO_VERSIONS[-1]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def go_bin(version):
    return "/usr/lib/go-%s/bin/go" % version


# Production build shapes: name -> (extra tags, ldflags, buildmode).
VARIANTS = {
    "": (None, None, None),
    "stripped": (None, "-s -w", None),
    "pie": (None, None, "pie"),
    "stripped-pie": (None, "-s -w", "pie"),
    "cgo": ("withcgo", "-linkmode=external", None),
}


def go_variant(version, pkg, variant, tags=None):
    """Builds pkg in one of VARIANTS, adding tags."""
    vtags, ldflags, buildmode = VARIANTS[variant]
    all_tags = ",".join(t for t in (tags, vtags) if t) or None
    return go_build(version, pkg, tags=all_tags, ldflags=ldflags, buildmode=buildmode,
                    variant="-" + variant if variant else "")


def go_build(version, pkg, tags=None, ldflags=None, buildmode=None, variant="", experiment=None):
    """Builds tests/go/<pkg> with Go <version> (and GOEXPERIMENT=<experiment>), once per run;
    returns the binary's path."""
    name = "%s-go%s%s%s%s" % (pkg, version, "-" + tags.replace(",", "-") if tags else "",
                              "-x-" + experiment.replace(",", "-") if experiment else "", variant)
    out = os.path.join(BUILD, "bin", name)
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [go_bin(version), "build", "-o", out]
    if tags:
        cmd += ["-tags", tags]
    if ldflags:
        cmd += ["-ldflags", ldflags]
    if buildmode:
        cmd += ["-buildmode", buildmode]
    cmd.append("./" + pkg)
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off",
               GOCACHE=os.environ.get("HEAPSPY_GOCACHE") or os.path.join(BUILD, "gocache"),
               CGO_ENABLED="1" if tags and "withcgo" in tags else "0",
               GOEXPERIMENT=experiment or "")
    subprocess.run(cmd, cwd=os.path.join(ROOT, "tests", "go"), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return out


def tmpdir(name):
    d = os.path.join(BUILD, "out", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Program:
    """A Go test program running in the background, with its stdout read line by line."""

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})), text=True)
        self.pid = self.proc.pid

    def wait_for(self, line, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            got = self.proc.stdout.readline()
            if not got:
                raise Failure("program exited before printing %r" % line)
            if got.strip() == line:
                return
        raise Failure("program did not print %r within %ds" % (line, timeout))

    def signal(self, sig=signal.SIGUSR1):
        self.proc.send_signal(sig)

    def finish(self, timeout=60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def heapspy(*args, timeout=120, check_rc=None, env=None, preexec_fn=None):
    """Runs heapspy to completion; returns (returncode, stdout, stderr)."""
    p = subprocess.run([HEAPSPY] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, **(env or {})),
                       preexec_fn=preexec_fn)
    if check_rc is not None and p.returncode != check_rc:
        raise Failure("heapspy %s exited %d, wanted %d\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, args)), p.returncode, check_rc, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


def pprof_top(path, sample_index=None):
    """go tool pprof -top: the proof that the tool users already have reads the file."""
    cmd = [go_bin(NEWEST_GO), "tool", "pprof", "-top"]
    if sample_index:
        cmd.append("-sample_index=" + sample_index)
    p = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, GOTOOLCHAIN="local", PPROF_TMPDIR=BUILD))
    check(p.returncode == 0, "go tool pprof -top %s failed: %s" % (path, p.stderr))
    return p.stdout


SELF_CHECK = re.compile(r"self-check: (\d+) sites, in-use objects within ([\d.]+)% of the "
                        r"runtime's own records at cycle (\d+)")


def check_self_check(stdout, what, comments=None, published=True):
    """The summary (and the profile's comments, when given) report a self-check that agreed:
    heapspy's in-use objects per site within 2% of the runtime's own records. Where the runtime
    published no heap-profile cycle while heapspy ran (published=False), the line must say so."""
    m = SELF_CHECK.search(stdout)
    if not published and not m:
        check("self-check: not made: the runtime published no heap-profile cycle" in stdout,
              "%s: no self-check line in the summary:\n%s" % (what, stdout))
        return
    check(m and float(m.group(2)) <= 2.0, "%s: no agreeing self-check in the summary:\n%s" % (
        what, stdout))
    if comments is not None:
        check(any(SELF_CHECK.search(c) for c in comments),
              "%s: no self-check in the profile's comments: %s" % (what, comments))
