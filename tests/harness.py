"""Shared machinery of heapspy's integration tests: building Go programs with each of Debian's Go
toolchains, running heapspy against them, and reading what it wrote."""
import collections
import errno
import functools
import hashlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import traceback

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

# How many programs the tests run at once (builds, test binaries, tests that may share the CPUs):
# as many as the machine has CPUs. A test that runs alone holds every slot.
JOBS = int(os.environ.get("HEAPSPY_TEST_JOBS") or os.cpu_count() or 2)
SLOTS = threading.BoundedSemaphore(JOBS)

# One Go program build: what go_build takes. Tests declare theirs with @needs so that the runner
# builds them all up front, JOBS at a time.
Build = collections.namedtuple("Build", "version pkg tags ldflags buildmode variant experiment")


def build(version, pkg, tags=None, ldflags=None, buildmode=None, variant="", experiment=None):
    """tests/go/<pkg> built by Go <version> (with GOEXPERIMENT=<experiment>)."""
    return Build(version, pkg, tags, ldflags, buildmode, variant, experiment)


def build_variant(version, pkg, variant, tags=None):
    """pkg in one of VARIANTS, adding tags."""
    vtags, ldflags, buildmode = VARIANTS[variant]
    all_tags = ",".join(t for t in (tags, vtags) if t) or None
    return build(version, pkg, tags=all_tags, ldflags=ldflags, buildmode=buildmode,
                 variant="-" + variant if variant else "")


def needs(*builds):
    """Declares the Go programs a test builds (Builds, or lists of them)."""
    def mark(test):
        test.builds = [b for x in builds for b in ([x] if isinstance(x, Build) else x)]
        return test
    return mark


def go_build(*args, **kwargs):
    """Builds tests/go/<pkg> with Go <version> (build's arguments); returns the binary's path."""
    return built(build(*args, **kwargs))


def go_variant(*args, **kwargs):
    """Builds pkg in one of VARIANTS (build_variant's arguments); returns the binary's path."""
    return built(build_variant(*args, **kwargs))


def gocache():
    return os.environ.get("HEAPSPY_GOCACHE") or os.path.join(BUILD, "gocache")


_lock = threading.Lock()
_toolchains = {}
_building = {}   # binary path -> its lock, so that two threads never build it at once
_failed = {}     # binary path -> why its build failed in this run
requested = set()  # every Build the tests asked for, to tell the ones not declared


def toolchain(version):
    """The toolchain's exact release (go1.23.5): binaries are rebuilt when it changes."""
    with _lock:
        if version not in _toolchains:
            try:
                with open("/usr/lib/go-%s/VERSION" % version) as f:
                    _toolchains[version] = f.readline().strip()
            except OSError:
                _toolchains[version] = subprocess.run(
                    [go_bin(version), "env", "GOVERSION"], capture_output=True, text=True,
                    env=dict(os.environ, GOTOOLCHAIN="local")).stdout.strip() or "go" + version
        return _toolchains[version]


LOCAL_IMPORT = re.compile(r'"heapspy\.test/programs/([\w/]+)"')


@functools.lru_cache(maxsize=None)
def sources_hash(b):
    """Hashes what the binary is made of: the toolchain's release, the build's options, go.mod
    and every file of the package and of the tests/go packages it imports."""
    h = hashlib.sha256(repr((toolchain(b.version), b.tags, b.ldflags, b.buildmode,
                             b.experiment)).encode())
    go = os.path.join(ROOT, "tests", "go")
    pkgs, seen = [b.pkg], set()
    for name in ("go.mod", "go.sum"):
        if os.path.exists(os.path.join(go, name)):
            h.update(name.encode() + b"\0" + open(os.path.join(go, name), "rb").read())
    while pkgs:
        pkg = pkgs.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for name in sorted(os.listdir(os.path.join(go, pkg))):
            path = os.path.join(go, pkg, name)
            if not os.path.isfile(path):
                continue
            data = open(path, "rb").read()
            h.update(("%s/%s" % (pkg, name)).encode() + b"\0" + data)
            if name.endswith(".go"):
                pkgs.extend(LOCAL_IMPORT.findall(data.decode(errors="replace")))
    return h.hexdigest()[:12]


def binary(b):
    """Where Build b's binary is: its name says the program, release and shape, and ends with a
    hash of what it is made of. Returns (that path, the pattern of its older builds)."""
    stem = "%s-%s%s%s%s" % (b.pkg, toolchain(b.version),
                            "-" + b.tags.replace(",", "-") if b.tags else "",
                            "-x-" + b.experiment.replace(",", "-") if b.experiment else "",
                            b.variant)
    return (os.path.join(BUILD, "bin", "%s-%s" % (stem, sources_hash(b))),
            re.compile(re.escape(stem) + r"-[0-9a-f]{12}$"))


def built(b):
    """The binary of Build b, built once per toolchain release and sources, and kept in
    build/tests/bin across runs (older builds of the same program removed)."""
    out, older = binary(b)
    with _lock:
        requested.add(b)
        lock = _building.setdefault(out, threading.Lock())
    with lock:
        if out in _failed:
            raise Failure(_failed[out])
        if os.path.exists(out):
            return out
        bindir = os.path.dirname(out)
        os.makedirs(bindir, exist_ok=True)
        tmp = "%s.tmp%d" % (out, threading.get_ident())
        cmd = [go_bin(b.version), "build", "-o", tmp]
        if b.tags:
            cmd += ["-tags", b.tags]
        if b.ldflags:
            cmd += ["-ldflags", b.ldflags]
        if b.buildmode:
            cmd += ["-buildmode", b.buildmode]
        cmd.append("./" + b.pkg)
        env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off",
                   GOCACHE=gocache(), CGO_ENABLED="1" if b.tags and "withcgo" in b.tags else "0",
                   GOEXPERIMENT=b.experiment or "")
        p = subprocess.run(cmd, cwd=os.path.join(ROOT, "tests", "go"), env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            _failed[out] = "%s failed:\n%s" % (" ".join(cmd), p.stderr[-3000:])
            raise Failure(_failed[out])
        os.replace(tmp, out)
        for name in os.listdir(bindir):
            if older.match(name) and name != os.path.basename(out):
                os.remove(os.path.join(bindir, name))
        return out


def build_all(builds):
    """Builds the Builds not built yet, as many at a time as there are free SLOTS; returns how
    many it built. Builds that share a compiled standard library (same release, build mode and
    experiment) are spread apart: two at once would both compile it."""
    groups = collections.defaultdict(list)
    for b in dict.fromkeys(builds):
        if not os.path.exists(binary(b)[0]):
            groups[(b.version, b.buildmode, b.experiment)].append(b)
    todo = [b for row in itertools.zip_longest(*groups.values()) for b in row if b]
    each(todo, built)
    return len(todo)


def each(items, fn):
    """Calls fn(item) for every item: on this thread, which holds one of SLOTS, and on one more
    thread for every slot free (now or as items finish). For loops whose runs may share the CPUs:
    none measures time. Every item runs; failures are raised together, each named by its item."""
    items, errors, helpers, lock = list(items), [], [], threading.Lock()

    def take():
        with lock:
            return (True, items.pop(0)) if items else (False, None)

    def run(item):
        try:
            fn(item)
        except Failure as e:
            errors.append((item, str(e)))
        except Exception:  # a bug in a test is a failure too, with its traceback
            errors.append((item, traceback.format_exc()))

    def helper():
        try:
            while True:
                more, item = take()
                if not more:
                    return
                run(item)
        finally:
            SLOTS.release()

    while True:
        while len(items) > 1 and SLOTS.acquire(blocking=False):
            helpers.append(threading.Thread(target=helper))
            helpers[-1].start()
        more, item = take()
        if not more:
            break
        run(item)
    for t in helpers:
        t.join()
    if len(errors) == 1:
        raise Failure(errors[0][1])
    if errors:
        raise Failure("\n".join("%s: %s" % (item, e) for item, e in errors))


_tmpdirs = collections.Counter()


def tmpdir(name):
    """A fresh directory for a test's files. Tests run side by side: a name asked for again in
    the same run gets a numbered twin, never the other test's directory."""
    with _lock:
        _tmpdirs[name] += 1
        n = _tmpdirs[name]
    d = os.path.join(BUILD, "out", name if n == 1 else "%s-%d" % (name, n))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


class Program:
    """A Go test program running in the background, with its stdout read line by line."""

    def __init__(self, argv, env=None):
        # A binary a test has just written can be busy for a moment: a child another test thread
        # forked meanwhile holds the writer's descriptor until it execs (ETXTBSY).
        for attempt in range(50):
            try:
                self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE,
                                             env=dict(os.environ, **(env or {})), text=True)
                break
            except OSError as e:
                if e.errno != errno.ETXTBSY or attempt == 49:
                    raise
                time.sleep(0.1)
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
    heapspy's in-use objects per site within 5% of the runtime's own records (heapspy's own
    tolerance). Where the runtime may have published no heap-profile cycle while heapspy ran, or
    be gone at the end (published=False), a line saying why no check was made will do."""
    m = SELF_CHECK.search(stdout)
    if not published and not m:
        check("  self-check: not made: " in stdout,
              "%s: no self-check line in the summary:\n%s" % (what, stdout))
        return
    check(m and float(m.group(2)) <= 5.0, "%s: no agreeing self-check in the summary:\n%s" % (
        what, stdout))
    if comments is not None:
        check(any(SELF_CHECK.search(c) for c in comments),
              "%s: no self-check in the profile's comments: %s" % (what, comments))
