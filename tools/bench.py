#!/usr/bin/env python3
"""heapspy's benchmarks (`make bench`): what recording costs the target, what heapspy itself costs,
what one probe hit costs, how fast events flow and how long attaching takes. Writes BENCHMARKS.md.

    python3 tools/bench.py [--quick] [--reps N] [--only hit,paired,pipeline,attach]
                           [--heapspy BIN] [--output BENCHMARKS.md]

Every comparison runs its variants side by side in one run, alternating their order from one
repetition to the next, and reports medians and ratios. The target overhead is measured in paired
windows (see PAIRED_MODES): a profiled process against an unprofiled twin on the same CPU at the
same moment, and against itself unprofiled. Needs root (heapspy loads BPF programs) and Debian's
Go 1.23 (/usr/lib/go-1.23); builds tests/go/bench* into build/bench/. The full run takes about 20
minutes, --quick about 5.
"""
import argparse
import ctypes
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = os.path.join(ROOT, "build", "heapspy")
PIPEBENCH = os.path.join(ROOT, "build", "pipebench")
OUT = os.path.join(ROOT, "build", "bench")
# The benchmarks run a copy taken at the start, so that a rebuild during the run (make, by
# anyone) does not change what is measured halfway.
HEAPSPY = os.path.join(OUT, "heapspy")
GO_VERSION = "1.23"
GO = "/usr/lib/go-%s/bin/go" % GO_VERSION
GO_ENV = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off",
              CGO_ENABLED="0", GOCACHE=os.path.join(OUT, "gocache"))
DEFAULT_RATE = 512 * 1024

# The three workloads of the overhead comparison, with their extra flags.
PROGRAMS = [
    ("benchalloc", [], "small-object allocation loop: 5 objects (272 B) per op"),
    ("benchjson", [], "encoding/json Marshal + Unmarshal of a small nested document per op"),
    ("benchgc", ["-gcalign"], "32 MiB live heap of pointer-rich 8-node lists (700,000 nodes); "
                              "per op a new list replaces a random old one, and a 32-node "
                              "temporary tree is built and dropped; throughput over whole GC "
                              "cycles (-gcalign)"),
]
# The programs run on one P: the mutator, the GC and any probe handler then share one core, so
# every cost lands in the throughput, and the second core is left to heapspy and the system.
TARGET_ENV = {"GOMAXPROCS": "1"}

# pairs: paired windows per program and mode.
FULL = dict(pairs=8, hit_reps=3, paired_window=2.5, warmup=1.0,
            settle=0.5, hit_ops=20000, pipe_window=2.0, pipe_paces=[1000, 2000, 4000, 8000, 0],
            pipe_reps=2, attach_reps=5, pipebench_secs=3.0, pipebench_reps=2)
QUICK = dict(pairs=3, hit_reps=2, paired_window=1.5, warmup=0.5,
             settle=0.3, hit_ops=8000, pipe_window=1.0, pipe_paces=[2000, 8000, 0], pipe_reps=1,
             attach_reps=3, pipebench_secs=1.0, pipebench_reps=1)


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Target:
    """A benchmark program (tests/go/bench*) running in the background."""

    def __init__(self, argv, env=None, new_session=False, cwd=None, cpus=None):
        self.errf = open(os.path.join(OUT, "target.stderr"), "w+")
        environ = dict(os.environ)
        environ.update(TARGET_ENV)
        environ.update(env or {})
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.errf, text=True,
                                     env=environ, start_new_session=new_session, cwd=cwd,
                                     preexec_fn=pin)
        self.pid = self.proc.pid
        self.argv = argv

    def wait_line(self, prefix, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            line = self.proc.stdout.readline()
            if not line:
                self.errf.seek(0)
                raise BenchError("%s exited before printing %r: %s" % (
                    " ".join(self.argv), prefix, self.errf.read()[-2000:]))
            if line.startswith(prefix):
                return line.strip()
        raise BenchError("%s did not print %r in %ds" % (self.argv[0], prefix, timeout))

    def ready(self):
        self.wait_line("ready")

    def cpu_seconds(self):
        """The process's user+system CPU time so far, from /proc (clock-tick resolution)."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start_window(self):
        os.kill(self.pid, signal.SIGUSR1)

    def result(self, last=True):
        """The next window's result line; after the last window, the program exits."""
        line = self.wait_line("result ")
        r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        if last:
            self.proc.wait(timeout=60)
            self.errf.close()
        return r

    def toggle(self):
        """Switches the program's own sampling (-toggle) on or off; returns the new rate."""
        os.kill(self.pid, signal.SIGUSR2)
        return int(self.wait_line("rate ").split()[1])

    def kill(self, group=False):
        if self.proc.poll() is None:
            if group:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                self.proc.kill()
        self.proc.wait()
        if not self.errf.closed:
            self.errf.close()


class Heapspy:
    """`heapspy record` (or another command) in the background: stamps its output lines, and
    reaps it with wait4 for its own CPU time and peak RSS."""

    def __init__(self, args, cpus=None, cmd="record"):
        self.t0 = time.monotonic()
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen([HEAPSPY, cmd] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=pin)
        self.out, self.err = [], []
        self.recording = threading.Event()
        self.recording_at = None
        self.sched = [float("nan"), float("nan")]
        self.threads = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, f, lines):
        for line in f:
            now = time.monotonic()
            lines.append(line)
            if line.startswith("heapspy: recording pid") and not self.recording.is_set():
                self.recording_at = now
                try:  # on-CPU and runnable-but-waiting time so far, in ns (heapspy has 1 thread)
                    with open("/proc/%d/schedstat" % self.proc.pid) as f:
                        self.sched = [int(x) / 1e9 for x in f.read().split()[:2]]
                except OSError:
                    pass
                self.recording.set()

    def wait_recording(self, timeout=60):
        end = time.monotonic() + timeout
        while not self.recording.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.abort()
                raise BenchError("heapspy did not start recording:\n" + "".join(self.err))
        return self.recording_at - self.t0

    def abort(self):
        """Ends a heapspy that is still running after something went wrong."""
        if self.proc.returncode is None:
            self.proc.kill()
            os.waitpid(self.proc.pid, 0)
            self.proc.returncode = -9
            for t in self.threads:
                t.join()

    def stop(self):
        """Ends the recording as Ctrl-C would; returns what finish() returns."""
        os.kill(self.proc.pid, signal.SIGINT)  # not send_signal: it may reap, and wait4 must
        return self.finish()

    def finish(self):
        """Waits for heapspy to end; returns a dict of what it cost and what it said."""
        _, status, ru = os.wait4(self.proc.pid, 0)
        wall = time.monotonic() - self.t0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        for t in self.threads:
            t.join()
        out, err = "".join(self.out), "".join(self.err)
        if self.proc.returncode != 0:
            raise BenchError("heapspy exited %d:\n%s%s" % (self.proc.returncode, out, err))
        r = dict(wall=wall, utime=ru.ru_utime, stime=ru.ru_stime, cpu=ru.ru_utime + ru.ru_stime,
                 maxrss_kib=ru.ru_maxrss, samples=0, frees=0, alloc_hits=0, free_hits=0, lost=0,
                 repeated=0, secs=0.0)
        # Frees read from the runtime's records (record without --leaks) cost no probe hit;
        # samples read from them too (record --pid) none either.
        m = re.search(r"(\d+) samples, (\d+) frees( \(the runtime's records([^)]*)\))?, (\d+) "
                      r"events lost", out)
        if m:
            r["samples"], r["frees"], r["lost"] = int(m.group(1)), int(m.group(2)), int(m.group(5))
            r["free_hits"] = 0 if m.group(3) else r["frees"]
            r["alloc_hits"] = 0 if m.group(4) and "no probe" in m.group(4) else r["samples"]
        m = re.search(r"heapspy's probes: (\d+) hits, ([\d.]+) us each", out)  # heapspy gc
        if m:
            r["gc_hits"], r["gc_hit_us"] = int(m.group(1)), float(m.group(2))
        m = re.search(r"(\d+) repeated probe hits dropped", out)
        if m:
            r["repeated"] = int(m.group(1))
        m = re.search(r"\), ([\d.]+)s, ended by", out)
        if m:
            r["secs"] = float(m.group(1))
        if self.recording_at is not None:
            r["attach"] = self.recording_at - self.t0
            r["attach_oncpu"], r["attach_runq"] = self.sched
        return r


# ---------------------------------------------------------------------------------------------
# Counting uprobes without BPF: perf_event_open on the kernel's "uprobe" PMU. A hit costs the
# trap and the kernel's uprobe machinery, and nothing of heapspy's.


class CountingUprobe:
    def __init__(self, path, offset):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fds = []
        ptype = int(open("/sys/bus/event_source/devices/uprobe/type").read())
        self._path = ctypes.create_string_buffer(path.encode())
        attr = bytearray(128)
        struct.pack_into("IIQ", attr, 0, ptype, len(attr), 0)  # type, size, config (0: entry)
        struct.pack_into("QQ", attr, 56, ctypes.addressof(self._path), offset)  # config1, 2
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        for cpu in range(os.cpu_count()):
            # pid -1, one counter per CPU: counts every process that maps the file.
            fd = self.libc.syscall(298, buf, -1, cpu, -1, 8)  # perf_event_open, FD_CLOEXEC
            if fd < 0:
                self.close()
                e = ctypes.get_errno()
                raise OSError(e, "perf_event_open uprobe %s+%#x: %s" % (path, offset,
                                                                      os.strerror(e)))
            self.fds.append(fd)

    def count(self):
        return sum(struct.unpack("Q", os.read(fd, 8))[0] for fd in self.fds)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def file_offset(binary, vaddr):
    """An executable's file offset of a link-time address, from its ELF program headers."""
    with open(binary, "rb") as f:
        data = f.read(1 << 16)
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise BenchError("%#x is not in a loaded segment of %s" % (vaddr, binary))


def prologue(binary, func):
    """(offset of the function's first instruction, offset of its stack check's conditional
    branch or None, the two instructions) as file offsets. Go's amd64 prologue begins
    CMPQ SP, 0x10(R14); JBE morestack: the kernel emulates a Jcc, but single-steps a CMP."""
    out = subprocess.run([GO, "tool", "objdump", "-s", "^%s$" % re.escape(func), binary],
                         capture_output=True, text=True, env=GO_ENV, check=True).stdout
    insns = re.findall(r"^\s+\S+\s+0x([0-9a-f]+)\s+([0-9a-f]+)\s+(.+?)\s*$", out, re.M)[:3]
    if not insns:
        raise BenchError("go tool objdump found no %s in %s" % (func, binary))
    entry = file_offset(binary, int(insns[0][0], 16))
    jcc = None
    for addr, _, text in insns[1:]:
        if text.startswith("JBE"):
            jcc = file_offset(binary, int(addr, 16))
            break
    return entry, jcc, "; ".join(t for _, _, t in insns[:2])


# ---------------------------------------------------------------------------------------------
# Helpers


def uprobe_multi():
    """Whether heapspy attaches uprobe_multi links here (user/attach/bpfload.c decides the same way)."""
    if os.environ.get("HEAPSPY_PERF_UPROBES", "0") not in ("", "0"):
        return False
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", platform.release()).groups())
    return (major, minor) >= (6, 12)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def go_build(pkg, tags=None):
    out = os.path.join(OUT, "bin", pkg + ("-" + tags.replace(",", "-") if tags else ""))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run([GO, "build", "-o", out] + (["-tags", tags] if tags else []) + ["./" + pkg],
                   cwd=os.path.join(ROOT, "tests", "go"), env=GO_ENV, check=True)
    return out


def cpu_times():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:]))
    # user nice system idle iowait irq softirq steal
    return dict(total=sum(v[:8]), idle=v[3] + v[4], steal=v[7])


def machine(built):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576.0)
    gov = subprocess.run([GO, "version"], capture_output=True, text=True, env=GO_ENV).stdout
    git = lambda *a: subprocess.run(["git"] + list(a), cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "user", "bpf", "include", "Makefile")
    what = "build/heapspy from commit %s%s" % (commit, " plus %d uncommitted files in user/, "
                                              "bpf/, include/" % len(dirty.splitlines())
                                              if dirty else "")
    if os.path.realpath(built) != os.path.realpath(BUILT):
        what = built
    with open(HEAPSPY, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return dict(nproc=os.cpu_count(), kernel=platform.release(), cpu=model, mem=mem,
                go=gov.strip().replace("go version ", ""),
                heapspy=subprocess.run([HEAPSPY, "--version"], capture_output=True,
                                       text=True).stdout.strip(),
                what=what, sha256=digest)


# ---------------------------------------------------------------------------------------------
# Sections 1 and 2: target overhead at the default rate, and heapspy's own cost while recording


# Paired windows. Two processes of one program measure window after window at the same time,
# sharing one CPU: a control, never profiled, and a subject with the profiler attached (or its
# own sampling on) in every other window. The subject's cost per operation relative to the
# control's, window by window, cancels what the machine does to both at that moment (on this VM,
# load on the other CPU slows this one by up to a third: shared caches, memory, host); the subject's
# "on" window relative to its own "off" window cancels what sets two processes of one program
# apart (where the heap and its huge pages land). The order alternates within pairs (off-on,
# on-off) so a slow drift cancels too.
PAIRED_MODES = [
    # key, label, subject's flags, heapspy command (None: the program switches its own sampling)
    ("record", "`heapspy record` attached; it switches sampling on at 512 KiB", [], "record"),
    ("inproc", "no heapspy; the program switches its own sampling on at 512 KiB",
     ["-toggle", str(DEFAULT_RATE)], None),
    ("inproc2m", "no heapspy; the program switches its own sampling on at 2 MiB, a quarter of "
     "the samples", ["-toggle", str(4 * DEFAULT_RATE)], None),
    ("marginal", "`heapspy record` attached to a program that already samples at 512 KiB",
     ["-rate", str(DEFAULT_RATE)], "record"),
    ("bare", "bare perf-event uprobes (no BPF, counting only) on the JBEs heapspy probes, in a "
     "program that already samples at 512 KiB: the traps alone",
     ["-rate", str(DEFAULT_RATE)], "bare"),
    ("gc", "`heapspy gc` attached", [], "gc"),
]


def private_copy(binary, tag):
    """A copy of binary: a uprobe belongs to a file, so a probe on the copy fires in the
    processes running the copy only."""
    path = "%s-%s" % (binary, tag)
    with open(binary, "rb") as src, open(path + ".tmp", "wb") as dst:
        dst.write(src.read())
    os.chmod(path + ".tmp", 0o755)
    os.rename(path + ".tmp", path)
    return path


def paired_run(binary, extra, mode, cfg):
    """cfg["pairs"] pairs of windows (off, on); returns [{off: {a, b}, on: {a, b}}] where a is
    the control's result and b the subject's."""
    key, _, flags, cmd = mode
    argv = [binary, "-signal", "-warmup", "%gs" % cfg["warmup"], "-window",
            "%gs" % cfg["paired_window"], "-windows", str(2 * cfg["pairs"])] + extra
    mine = {os.cpu_count() - 1}
    others = set(range(os.cpu_count())) - mine or None
    ts, probes = {}, []
    hs = None
    pairs = []
    try:
        ts["a"] = Target(argv, cpus=mine)
        subject = private_copy(binary, "paired") if cmd == "bare" else binary
        ts["b"] = Target([subject] + argv[1:] + flags, cpus=mine)
        for t in ts.values():
            t.ready()
        for k in range(cfg["pairs"]):
            pair = {}
            for i, state in enumerate(rotated(["off", "on"], k)):
                if state == "on":
                    if cmd == "bare":
                        probes = [CountingUprobe(subject, prologue(subject, f)[1])
                                  for f in HIT_FUNCS]
                    elif cmd:
                        hs = Heapspy(["--pid", ts["b"].pid] + (
                            ["-o", os.path.join(OUT, "paired.pb.gz")] if cmd == "record"
                            else []), cpus=others, cmd=cmd)
                        hs.wait_recording()
                        cpu_at_attach = ts["b"].cpu_seconds()
                    else:
                        ts["b"].toggle()
                time.sleep(cfg["settle"])
                for v in rotated(["a", "b"], k):
                    ts[v].start_window()
                last = k == cfg["pairs"] - 1 and i == 1
                r = {v: ts[v].result(last=last) for v in ("a", "b")}
                if state == "on":
                    if cmd == "bare":
                        r["bare_hits"] = sum(p.count() for p in probes)
                        for p in probes:
                            p.close()
                        probes = []
                    elif cmd:
                        r["hs"] = hs.stop()
                        r["hs"]["target_cpu"] = r["b"]["cpuend"] - cpu_at_attach
                        hs = None
                    elif not last:
                        ts["b"].toggle()
                pair[state] = r
            pairs.append(pair)
            log("  paired %s %s pair %d: subject/control CPU/op on %.4f off %.4f: %.4f" % (
                os.path.basename(binary), key, k + 1, rel_cpo(pair["on"]), rel_cpo(pair["off"]),
                rel_cpo(pair["on"]) / rel_cpo(pair["off"])))
        return pairs
    finally:
        for p in probes:
            p.close()
        for t in ts.values():
            t.kill()
        if hs:
            hs.abort()


def rel_cpo(r):
    """The subject's CPU per operation relative to the control's, in one window."""
    return cpu_per_op(r["b"]) / cpu_per_op(r["a"])


def cpu_per_op(r):
    return r["cpu"] / r["ops"]


def bench_paired(bins, cfg):
    res = {}
    for name, extra, _ in PROGRAMS:
        res[name] = {m[0]: paired_run(bins[name], extra, m, cfg) for m in PAIRED_MODES}
    return res


def summarize_paired(res, per_hit):
    """Per program and mode: the median over pairs of on/off CPU per op (the cost per operation,
    which is the throughput lost while the program has its core) and of on/off throughput."""
    rows = []
    for name, modes in res.items():
        per_hit_us = per_hit.get(name, per_hit.get("benchalloc"))
        row = dict(program=name)
        for key, pairs in modes.items():
            cpo = [rel_cpo(p["on"]) / rel_cpo(p["off"]) for p in pairs]
            tput = [(p["on"]["b"]["opsps"] / p["on"]["a"]["opsps"]) /
                    (p["off"]["b"]["opsps"] / p["off"]["a"]["opsps"]) for p in pairs]
            row[key] = dict(cpo=median(cpo), cpo_all=cpo, tput=median(tput), tput_all=tput,
                            mean=statistics.fmean(cpo),
                            sem=statistics.stdev(cpo) / len(cpo) ** 0.5 if len(cpo) > 1 else 0)
            hs = [p["on"]["hs"] for p in pairs if "hs" in p["on"]]
            row[key]["control"] = median([cpu_per_op(p["off"]["b"]) / cpu_per_op(p["off"]["a"])
                                          for p in pairs])
            if hs:
                row[key]["hs"] = hs_stats(hs)
                shares = [probe_share(h, per_hit_us) for h in hs]
                shares = [x for x in shares if x is not None]
                row[key]["probe_share"] = median(shares) if shares else None
                if key == "gc":
                    row[key]["probe_share"] = median([
                        h.get("gc_hits", 0) * h.get("gc_hit_us", 0) / 1e6 / h["target_cpu"]
                        for h in hs if h["target_cpu"] > 0])
        rows.append(row)
    return rows


def probe_hits(hs):
    """The probe hits of one recording: each taken, lost or delivered twice."""
    return hs["alloc_hits"] + hs["free_hits"] + hs["lost"] + hs["repeated"]


def probe_share(hs, per_hit_us):
    """The share of the target's CPU time spent in probe hits: hits per target CPU-second over
    the recording, times the cost of one hit."""
    hits = probe_hits(hs)
    if not per_hit_us or hs.get("target_cpu", 0) <= 0:
        return None
    return hits / hs["target_cpu"] * per_hit_us / 1e6


def hs_stats(hs):
    """heapspy's own cost over a set of recordings."""
    return dict(
        hits_per_s=median([probe_hits(h) / h["secs"] for h in hs if h["secs"] > 0]),
        hs_cpu=median([h["cpu"] for h in hs]), hs_utime=median([h["utime"] for h in hs]),
        hs_stime=median([h["stime"] for h in hs]), hs_secs=median([h["secs"] for h in hs]),
        hs_wall=median([h["wall"] for h in hs]),
        hs_rss_mib=max(h["maxrss_kib"] for h in hs) / 1024.0,
        samples=median([h["samples"] for h in hs]), frees=median([h["frees"] for h in hs]),
        lost=max(h["lost"] for h in hs), attach=median([h.get("attach", 0) for h in hs]))


# ---------------------------------------------------------------------------------------------
# Section 3: the cost of one probe hit


def hit_run(binary, variant, ops, offsets):
    """A program idle until SIGUSR1, then a fixed number of operations with every allocation
    sampled (rate 1): every mallocgc calls mProf_Malloc, every sweep of one calls freeSpecial."""
    argv = [binary, "-idle", "-signal", "-ops", str(ops)]
    if variant != "heapspy":
        argv += ["-rate", "1"]
    probes = []
    t = Target(argv)
    hs = None
    try:
        t.ready()
        if variant == "heapspy":
            hs = Heapspy(["--pid", t.pid, "--rate", "1", "-o", os.path.join(OUT, "hit.pb.gz")])
            hs.wait_recording()
        elif variant in ("entry", "jcc"):
            probes = [CountingUprobe(binary, offsets[f][variant]) for f in offsets]
        t.start_window()
        r = t.result()
        if hs:
            h = r["hs"] = hs.finish()
            r["hits"] = probe_hits(h)
        else:
            r["hits"] = sum(p.count() for p in probes)
        return r
    finally:
        for p in probes:
            p.close()
        t.kill()
        if hs:
            hs.abort()


HIT_FUNCS = ["runtime.mProf_Malloc", "runtime.freeSpecial"]
# Programs of the per-hit measurement, with their share of hit_ops: benchalloc's stacks are
# shallow (7 frames), benchjson's deep (reflection), which is what heapspy's BPF stack walk reads.
HIT_PROGRAMS = [("benchalloc", 1.0), ("benchjson", 1.0 / 30)]


def heapspy_probe_offsets(binary):
    """Where heapspy puts its probes in binary: {function: file offset}, from `record -v`."""
    t = Target([binary, "-idle", "-signal"])
    try:
        t.ready()
        hs = Heapspy(["-v", "--pid", t.pid, "--duration", "0.1", "-o",
                      os.path.join(OUT, "where.pb.gz")])
        hs.finish()
    finally:
        t.kill()
    found = re.findall(r"probe (\S+) at 0x[0-9a-f]+ \(file offset (0x[0-9a-f]+)\)",
                       "".join(hs.err))
    return {f: int(off, 16) for f, off in found}


def placement(offsets, where):
    """'entry', 'jcc', or a description, for heapspy's probe offsets of HIT_FUNCS."""
    for kind in ("entry", "jcc"):
        if all(where.get(f) == offsets[f][kind] for f in HIT_FUNCS):
            return kind
    return "elsewhere (%s)" % ", ".join(
        "%s+%s" % (f, "%d" % (where[f] - offsets[f]["entry"]) if f in where else "?")
        for f in HIT_FUNCS)


def bench_hit(name, binary, cfg, scale):
    ops = max(int(cfg["hit_ops"] * scale), 64)
    offsets, insns = {}, {}
    for f in HIT_FUNCS:
        entry, jcc, text = prologue(binary, f)
        offsets[f] = {"entry": entry, "jcc": jcc}
        insns[f] = text
    where = placement(offsets, heapspy_probe_offsets(binary))
    variants = ["none", "entry", "heapspy"]
    if all(o["jcc"] is not None for o in offsets.values()):
        variants.insert(2, "jcc")
    runs = {v: [] for v in variants}
    for rep in range(cfg["hit_reps"]):
        for v in rotated(variants, rep):
            r = hit_run(binary, v, ops, offsets)
            runs[v].append(r)
            log("  per-hit %s rep %d (%s): %.3fs cpu, %.3fs wall, %d hits" % (
                name, rep + 1, v, r["cpu"], r["secs"], r["hits"]))
    base_cpu = median([r["cpu"] / r["ops"] for r in runs["none"]])
    base_wall = median([r["secs"] / r["ops"] for r in runs["none"]])
    rows = []
    for v in variants:
        rs = runs[v]
        ops = median([r["ops"] for r in rs])
        hits_per_op = median([r["hits"] / r["ops"] for r in rs])
        cpu_op, wall_op = median([r["cpu"] / r["ops"] for r in rs]), median(
            [r["secs"] / r["ops"] for r in rs])
        row = dict(variant=v, ops=ops, hits_per_op=hits_per_op, cpu=median([r["cpu"] for r in rs]),
                   wall=median([r["secs"] for r in rs]), cpu_us_per_op=cpu_op * 1e6)
        if v != "none" and hits_per_op > 0:
            row["us_per_hit_cpu"] = (cpu_op - base_cpu) / hits_per_op * 1e6
            row["us_per_hit_wall"] = (wall_op - base_wall) / hits_per_op * 1e6
        if v == "heapspy":
            row["lost"] = max(r["hs"]["lost"] for r in rs)
        rows.append(row)
    return dict(rows=rows, insns=insns, offsets=offsets, ops=ops, heapspy_at=where)


# ---------------------------------------------------------------------------------------------
# Section 4: the event pipeline at --rate 1


def pipeline_capacity(rows):
    """Least-squares fit of heapspy's CPU time against the events it handled: the slope is the
    consumer's cost per event, the intercept its fixed cost."""
    xs = [r["events"] for r in rows]
    ys = [r["hs_cpu"] for r in rows]
    if len(rows) < 2 or max(xs) == min(xs):
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if slope <= 0:
        return None
    return dict(us_per_event=slope * 1e6, per_core=1 / slope, fixed_ms=(my - slope * mx) * 1e3)


def bench_pipeline(binary, cfg):
    rows = []
    for rep in range(cfg["pipe_reps"]):
        for pace in rotated(cfg["pipe_paces"], rep):
            argv = [binary, "-idle", "-signal", "-workers", "2", "-window",
                    "%gs" % cfg["pipe_window"], "-pace", str(pace)]
            t = Target(argv, env={"GOMAXPROCS": "2"})
            hs = None
            try:
                t.ready()
                hs = Heapspy(["--pid", t.pid, "--rate", "1", "-o",
                              os.path.join(OUT, "pipeline.pb.gz")])
                hs.wait_recording()
                t.start_window()
                r = t.result()
                h = hs.finish()
            finally:
                t.kill()
                if hs:
                    hs.abort()
            events = h["samples"] + h["free_hits"]
            row = dict(pace=pace, ops_per_s=r["opsps"], events=events, lost=h["lost"],
                       events_per_s=events / r["secs"], hs_cpu=h["cpu"], hs_utime=h["utime"],
                       hs_stime=h["stime"], hs_rss_mib=h["maxrss_kib"] / 1024.0,
                       events_per_hs_cpu_s=events / h["cpu"] if h["cpu"] > 0 else float("inf"),
                       target_cpu=r["cpu"], secs=r["secs"])
            rows.append(row)
            log("  pipeline pace %s: %.0f events/s, %d lost, heapspy %.3fs cpu" % (
                pace or "max", row["events_per_s"], row["lost"], row["hs_cpu"]))
    # One row per pace: the repetition that delivered most (other load can only slow the
    # producer down), with the most events lost in any repetition.
    out = []
    for pace in cfg["pipe_paces"]:
        rs = sorted((r for r in rows if r["pace"] == pace), key=lambda r: r["events_per_s"])
        m = dict(rs[-1])
        m["lost"] = max(r["lost"] for r in rs)
        out.append(m)
    return out


PIPEBENCH_RATES = [250000, 500000, 1000000, 1500000, 2000000, 3000000, 0]


def bench_pipebench(cfg):
    """heapspy's consumer (evloop + heapagg, the same code) fed by tools/pipebench.bpf.c, a BPF
    program that replays heapspy's event stream from the other CPU faster than any Go target on
    this machine can: the consumer's capacity, measured rather than extrapolated."""
    if not os.access(PIPEBENCH, os.X_OK):
        raise BenchError("no %s: run make build/pipebench (make bench does)" % PIPEBENCH)
    runs = []
    for rep in range(cfg["pipebench_reps"]):
        out = subprocess.run([PIPEBENCH, "-d", str(cfg["pipebench_secs"]), "-R",
                              ",".join(map(str, PIPEBENCH_RATES))],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise BenchError("pipebench failed:\n" + out.stderr)
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        clean = [r["consumed_per_s"] for r in rows if r["lost"] == 0 and
                 r["consumed"] == r["produced"]]
        runs.append(dict(rows=rows, capacity=max(clean) if clean else 0))
        log("  pipebench rep %d: capacity %.0f events/s" % (rep + 1, runs[-1]["capacity"]))
    return runs


# ---------------------------------------------------------------------------------------------
# Section 5: attach time


ATTACH_TARGETS = [
    # name, argv (after the binaries are known), started through `go run`
    ("go (the go command, %.1f MB, idle)" % (os.path.getsize(GO) / 1e6),
     lambda bins: [GO, "run", "./benchalloc", "-idle", "-signal"], True),
    ("benchalloc (busy, sampling off)",
     lambda bins: [bins["benchalloc"], "-warmup", "1000h"], False),
    ("benchgc (busy, 32 MiB live, sampling off)",
     lambda bins: [bins["benchgc"], "-warmup", "1000h"], False),
    ("benchgc (busy, sampling on: freeze + baseline read)",
     lambda bins: [bins["benchgc"], "-warmup", "1000h", "-rate", str(DEFAULT_RATE)], False),
]


def attach_once(argv, gorun):
    """Starts one target alone, attaches once, stops it: the target's own core is busy (or
    idle), heapspy has the other to itself but for the machine's other load."""
    if gorun:
        t = Target(argv, env=GO_ENV, new_session=True, cwd=os.path.join(ROOT, "tests", "go"))
    else:
        t = Target(argv)
    try:
        if gorun:
            t.ready()  # go has built the program (cached) and runs it
        time.sleep(1.0)  # busy targets: past their setup, into their loop
        if t.proc.poll() is not None:
            raise BenchError("attach target %s exited" % argv)
        hs = Heapspy(["--pid", t.pid, "--duration", "0.1", "-o",
                      os.path.join(OUT, "attach.pb.gz")])
        hs.wait_recording()
        return hs.finish()
    finally:
        t.kill(group=gorun)


def bench_attach(bins, cfg):
    res = {name: [] for name, _, _ in ATTACH_TARGETS}
    for rep in range(cfg["attach_reps"]):
        for name, argv, gorun in rotated(ATTACH_TARGETS, rep):
            h = attach_once(argv(bins), gorun)
            res[name].append(h)
            log("  attach %s: %.0f ms" % (name, h["attach"] * 1e3))
    rows = []
    for name, _, _ in ATTACH_TARGETS:
        hs = res[name]
        at = [h["attach"] * 1e3 for h in hs]
        rows.append(dict(target=name, median_ms=median(at), min_ms=min(at), max_ms=max(at),
                         total_ms=median([h["wall"] * 1e3 for h in hs]),
                         cpu_ms=median([h["cpu"] * 1e3 for h in hs]),
                         oncpu_ms=median([h["attach_oncpu"] * 1e3 for h in hs]),
                         runq_ms=median([h["attach_runq"] * 1e3 for h in hs]),
                         rss_mib=max(h["maxrss_kib"] for h in hs) / 1024.0))
    return rows


# ---------------------------------------------------------------------------------------------
# Report


def fmt_pct(ratio):
    return "%+.1f%%" % ((ratio - 1.0) * 100.0)


def judge(paired, key, limit):
    """A goal on extra cost is missed where a program's whole interval (mean ± two standard
    errors) lies above the limit, met where every program's lies below it, and otherwise not
    resolved by this machine's noise."""
    lo = [r[key]["mean"] - 1 - 2 * r[key]["sem"] for r in paired]
    hi = [r[key]["mean"] - 1 + 2 * r[key]["sem"] for r in paired]
    if any(x > limit for x in lo):
        return False
    if all(x <= limit for x in hi):
        return True
    return "not resolved: %s's interval spans the limit" % ", ".join(
        r["program"] for r, a, b in zip(paired, lo, hi) if a <= limit < b)


def write_report(path, quick, when, cfg, mach, load, paired, hit, pipe, pb, attach, elapsed):
    S = []  # results sections
    w = S.append
    goals = []
    share = lambda x: "%.2f%%" % (100 * x) if x is not None else "n/a"
    cost = lambda m: "%+.1f%%" % ((m["cpo"] - 1) * 100)
    ci = lambda m: "%+.1f%% ± %.1f" % ((m["mean"] - 1) * 100, 200 * m["sem"])

    if paired:
        modes = [m for m in PAIRED_MODES if m[0] in paired[0]]
        w("## 1. Target overhead at the default rate (512 KiB)\n")
        w("Extra CPU time per operation of the profiled program (positive: costs more; while "
          "the program has its core, the throughput it loses). Median over %d pairs of windows "
          "of %gs; in brackets the mean ± two standard errors. Each mode runs one subject and "
          "one unprofiled control of the same program on the same CPU; see Method.\n" % (
              cfg["pairs"], cfg["paired_window"]))
        w("| program | " + " | ".join("**%s**" % k if k == "record" else k
                                     for k, _, _, _ in modes) + " |")
        w("|---|" + "---:|" * len(modes))
        for r in paired:
            w("| %s | " % r["program"] + " | ".join(
                ("**%s** (%s)" if k == "record" else "%s (%s)") % (cost(r[k]), ci(r[k]))
                for k, _, _, _ in modes) + " |")
        w("")
        for k, label, _, _ in modes:
            w("- **%s**: %s." % (k, label))
        if "record" in paired[0] and "inproc" in paired[0]:
            w("\n*inproc* is what the runtime's sampling costs by itself, whoever switches it "
              "on; *marginal* is what heapspy adds to a program that samples already; *bare* "
              "is a perf-event uprobe's trap "
              "alone on the same two functions, without BPF (heapspy's own probes are "
              "uprobe_multi links, Linux 6.12+). Compare *inproc* with *inproc2m*: what the "
              "runtime's sampling costs barely depends on how often it samples, because once "
              "MemProfileRate is not 0, mallocgc counts every allocation down to the next "
              "sample.")
        w("\nheapspy's probe hits, modelled (hits per CPU-second of the target times the "
          "per-hit cost of section 3): %s.\n" % "; ".join(
              "%s: record %s, gc %s" % (r["program"], share(r.get("record", {}).get(
                  "probe_share")), share(r.get("gc", {}).get("probe_share")))
              for r in paired))
        if "record" in paired[0]:
            w("## 2. heapspy's own cost while recording\n")
            w("The *record* mode's heapspy runs: from exec to exit (attach, %gs of recording, "
              "writing the profile after Ctrl-C), from wait4; heapspy had the other CPU.\n" % (
                  cfg["settle"] + cfg["paired_window"]))
            w("| program | heapspy CPU (user+sys) | of which sys | heapspy wall | share of one "
              "core | peak RSS | probe hits/s | samples | frees | lost |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in paired:
                h = r["record"]["hs"]
                w("| %s | %.0f ms | %.0f ms | %.1f s | %.2f%% | %.1f MiB | %.0f | %.0f | %.0f "
                  "| %d |" % (r["program"], h["hs_cpu"] * 1e3, h["hs_stime"] * 1e3,
                              h["hs_wall"], 100 * h["hs_cpu"] / h["hs_wall"], h["hs_rss_mib"],
                              h["hits_per_s"], h["samples"], h["frees"], h["lost"]))
            w("")
            goals.append(("default recording costs <= 2% on all three programs",
                          "record, mean ± two standard errors: %s (the runtime's own sampling "
                          "alone, inproc: %s; heapspy "
                          "on top, marginal: %s)" % tuple(", ".join(
                              "%s %s" % (r["program"], ci(r[k])) for r in paired
                              if k in r) for k in ("record", "inproc", "marginal")),
                          judge(paired, "record", 0.02)))
        if "gc" in paired[0]:
            goals.append(("GC tracing costs <= 0.5%", "gc, mean ± two standard errors: %s; "
                          "modelled from probe hits: %s" % (
                ", ".join("%s %s" % (r["program"], ci(r["gc"])) for r in paired),
                ", ".join("%s %s" % (r["program"], share(r["gc"].get("probe_share")))
                          for r in paired)), judge(paired, "gc", 0.005)))

    if hit:
        w("## 3. Cost of one probe hit\n")
        w("Every allocation sampled (rate 1), a fixed number of operations, one P; cost per hit "
          "= (CPU/op - CPU/op of *none*) / hits per op. Prologues: %s.\n" % "; ".join(
              "%s `%s`" % (f, t) for f, t in next(iter(hit.values()))["insns"].items()))
        w("| program | variant | hits/op | target CPU | CPU/op | cost per hit (CPU) | "
          "cost per hit (wall) |")
        w("|---|---|---:|---:|---:|---:|---:|")
        names = {"none": "none (in-process rate 1, no probes)",
                 "entry": "bare uprobes, first instruction",
                 "jcc": "bare uprobes, JBE", "heapspy": "heapspy record --rate 1 (%s)" % (
                     "uprobe_multi links" if uprobe_multi() else "perf-event uprobes")}
        for prog, h in hit.items():
            for r in h["rows"]:
                w("| %s (%d ops) | %s | %.2f | %.2f s | %.2f us | %s | %s |" % (
                    prog, h["ops"], names.get(r["variant"], r["variant"]), r["hits_per_op"],
                    r["cpu"], r["cpu_us_per_op"],
                    "%.2f us" % r["us_per_hit_cpu"] if "us_per_hit_cpu" in r else "-",
                    "%.2f us" % r["us_per_hit_wall"] if "us_per_hit_wall" in r else "-"))
        for prog, h in hit.items():
            byv = {r["variant"]: r for r in h["rows"]}
            if not all(v in byv for v in ("entry", "jcc", "heapspy")):
                continue
            e, j, hs = (byv[v]["us_per_hit_cpu"] for v in ("entry", "jcc", "heapspy"))
            where = {"jcc": "the prologue's JBE, which the kernel emulates",
                     "entry": "the first instruction, a CMP the kernel single-steps out of line"}
            w("\n%s: heapspy probes %s, %.1f us a hit with its BPF programs and ring buffer. "
              "Bare perf-event uprobes, no BPF: %.1f us on the JBE, %.1f us on the first "
              "instruction (a trap, the CMP stepped out of line, a second trap)." % (
                  prog, where.get(h["heapspy_at"], h["heapspy_at"]), hs, j, e))
        w("")

    if pipe:
        w("## 4. Event pipeline\n")
        w("### From a real Go target (--rate 1, benchalloc, 2 workers on 2 Ps)\n")
        w("| pace (ops/s) | achieved ops/s | events/s delivered | lost | heapspy CPU (user/sys) "
          "| events per heapspy CPU-second | target CPU |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for r in pipe:
            w("| %s | %.0f | %.0f | %d | %.0f ms (%.0f/%.0f) | %.0f | %.2f s in %.1f s |" % (
                r["pace"] or "unpaced", r["ops_per_s"], r["events_per_s"], r["lost"],
                r["hs_cpu"] * 1e3, r["hs_utime"] * 1e3, r["hs_stime"] * 1e3,
                r["events_per_hs_cpu_s"], r["target_cpu"], r["secs"]))
        clean = [r for r in pipe if r["lost"] == 0]
        best = max(clean, key=lambda r: r["events_per_s"]) if clean else None
        cap = pipeline_capacity(pipe)
        w("\nMost events/s without loss: %s. The producer is the limit: every event is a probe "
          "hit in the target (section 3), and the target's two cores deliver only what their "
          "probe hits allow. heapspy's consumer: %s (slope of heapspy's CPU time over the "
          "events it handled, least squares across the paces; the intercept, %.0f ms, is "
          "attach and writing the profile).\n" % (
              "%.0f" % best["events_per_s"] if best else "none (every run lost events)",
              "%.2f us of CPU per event, so one core would handle %.2fM events/s" % (
                  cap["us_per_event"], cap["per_core"] / 1e6) if cap else "n/a",
              cap["fixed_ms"] if cap else float("nan")))
        lossless = all(r["lost"] == 0 for r in pipe)
        direct = max(r["capacity"] for r in pb) if pb else 0
        if pb:
            best_pb = max(pb, key=lambda r: r["capacity"])
            w("### heapspy's consumer fed faster than a Go target can (tools/pipebench)\n")
            w("`build/pipebench` runs heapspy's own consumer (the event loop and heapagg, the "
              "code `heapspy record` runs) on CPU 0, pinned, and feeds it from CPU 1 with a BPF "
              "program (BPF_PROG_TEST_RUN, tools/pipebench.bpf.c) that replays heapspy's event "
              "stream: its record layouts, ring buffer (8 MiB) and wake-up policy, 128 stacks of "
              "10-40 frames, about 131,000 live objects, frees of random live ones, a new "
              "heap-profile cycle every 65,536 allocations. Each rate runs %gs; %d repetition(s), "
              "capacities %s; the table is the repetition with the highest.\n" % (
                  cfg["pipebench_secs"], len(pb),
                  ", ".join("%.2fM" % (r["capacity"] / 1e6) for r in pb)))
            w("| offered (events/s) | produced | consumed | lost | consumed/s | consumer CPU | "
              "busy | CPU per event | live objects |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for r in best_pb["rows"]:
                w("| %s | %d | %d | %d | %.0f | %.0f ms | %.0f%% | %.3f us | %d |" % (
                    "{:,}".format(r["target_per_s"]) if r["target_per_s"] else "unpaced",
                    r["produced"], r["consumed"], r["lost"], r["consumed_per_s"],
                    r["consumer_cpu_ms"], r["consumer_cpu_ms"] / 10 / r["seconds"],
                    r["cpu_us_per_event"], r["live_objects"]))
            w("\nMost events/s consumed with no loss: %.0f, on one core.\n" % direct)
        if direct >= 1e6 and lossless:
            verdict = "met"
        elif best and best["events_per_s"] >= 1e6:
            verdict = "met"
        elif lossless and cap and cap["per_core"] >= 1e6:
            verdict = "met by extrapolation"
        else:
            verdict = False
        goals.append(("pipeline >= 1M events/s on one core, no loss",
                      "%sfrom a real target end to end %s events/s with no loss (the most its "
                      "probe hits produce on this machine)" % (
                          "heapspy's consumer fed by a BPF producer: %.2fM events/s with no "
                          "loss on one core; " % (direct / 1e6) if pb else "",
                          "%.0f" % best["events_per_s"] if best else "0"), verdict))

    if attach:
        w("## 5. Attach time (`--pid`, exec to the `recording pid` line)\n")
        w("| target | median | min | max | on CPU until then | runnable, waiting for a CPU | "
          "whole run (--duration 0.1) | heapspy CPU, whole run | peak RSS |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in attach:
            w("| %s | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | "
              "%.1f MiB |" % (r["target"], r["median_ms"], r["min_ms"], r["max_ms"],
                              r["oncpu_ms"], r["runq_ms"], r["total_ms"], r["cpu_ms"],
                              r["rss_mib"]))
        w("\nOn CPU and waiting: heapspy's /proc/PID/schedstat when the line appears (medians); "
          "the rest of the wall time heapspy slept in the kernel.\n")
        g = attach[0]
        goals.append(("attach < 300 ms on the go binary", "%.0f ms median (max %.0f)" % (
            g["median_ms"], g["max_ms"]), g["median_ms"] < 300))

    rss = [r["record"]["hs"]["hs_rss_mib"] for r in paired or [] if "record" in r] + [
        r["hs_rss_mib"] for r in pipe or []] + [
        r["rss_mib"] for r in attach or []]
    if rss:
        goals.append(("heapspy RSS < 50 MiB", "peak %.1f MiB" % max(rss), max(rss) < 50))

    L = []
    w = L.append
    w("# heapspy benchmarks\n")
    w("Written by `python3 tools/bench.py%s` (`make bench`) on %s in %.0f s; rerun it to "
      "refresh this file. Raw numbers: `build/bench/results.json`.\n" % (
          " --quick" if quick else "", when,
          elapsed))
    if goals:
        w("## Goals\n")
        w("| goal | measured | |")
        w("|---|---|---|")
        for goal, got, ok in goals:
            w("| %s | %s | %s |" % (goal, got, ok if isinstance(ok, str) else
                                    "met" if ok else "**missed**"))
        w("")
    w("## Machine\n")
    w("- %d CPUs: %s; %s RAM; Linux %s" % (mach["nproc"], mach["cpu"], mach["mem"],
                                           mach["kernel"]))
    w("- %s: %s (sha256 %s), copied at the start; targets built with %s" % (
        mach["heapspy"], mach["what"], mach["sha256"], mach["go"]))
    w("- during the run: CPUs %.0f%% busy, %.1f%% stolen by the hypervisor; load average %s at "
      "the start, %s at the end (the benchmark itself included). Absolute numbers vary with "
      "other load; the ratios are measured side by side.\n" % (
          load["busy"] * 100, load["steal"] * 100, load["load0"], load["load1"]))
    L.extend(S)
    w("## Method\n")
    w("- **Programs** (tests/go/bench*, sharing tests/go/benchlib): %s. Each runs its workload "
      "from the start, prints `ready` after a %gs warm-up, then measures windows of %gs, each "
      "started by SIGUSR1, printing for each its throughput and its own CPU time (user+sys, all "
      "threads; a uprobe handler's time is charged to the thread that hit the probe). They do "
      "not link runtime/pprof, so the runtime runs with sampling off (MemProfileRate=0), like "
      "production. GOMAXPROCS=1: mutator, GC and probe handlers share one core, so every cost "
      "shows, and heapspy and the system have the other." % (
          "; ".join("**%s**: %s" % (n, d) for n, _, d in PROGRAMS), cfg["warmup"],
          cfg["paired_window"]))
    w("- **Paired windows**: per program and mode, two processes of the program share one CPU "
      "for 2 x %d windows: a control, never profiled, and a subject, profiled in every other "
      "window (off-on, then on-off, alternating). A pair's cost is (subject/control CPU per "
      "operation, profiled window) / (the same, unprofiled window): the control cancels what "
      "the machine does at that moment (on this VM, load on the other CPU slows this one by up "
      "to a third: shared caches, memory, host), the subject's own unprofiled window cancels "
      "what sets two "
      "processes of one program apart (a few percent, persistent: where their heaps land). "
      "heapspy attaches with `--pid` %gs before a window (the realistic case: a program "
      "already running) and is stopped with SIGINT after it; in *inproc* the program switches "
      "MemProfileRate itself on SIGUSR2; in *bare*, the subject runs from a private copy of "
      "the binary so that the counting uprobes (perf_event_open on the kernel's uprobe PMU, "
      "no BPF) fire in it alone." % (cfg["pairs"], cfg["settle"]))
    w("- **heapspy's cost**: user+system CPU and peak RSS (ru_maxrss) of the heapspy process, "
      "from wait4.")
    w("- **Per probe hit**: the program idles until SIGUSR1, then runs a fixed number of "
      "operations with MemProfileRate=1, so every allocation calls runtime.mProf_Malloc and "
      "every sweep of one calls runtime.freeSpecial. The runtime's own sampling work is the "
      "same in every variant; only the probes differ. Bare uprobes are perf_event_open "
      "counters on the kernel's uprobe PMU (no BPF). Hits: the counters, or heapspy's samples "
      "+ frees + lost + repeated. %d repetitions, variants rotating." % cfg["hit_reps"])
    w("- **Pipeline**: benchalloc with 2 workers on 2 Ps, idle until SIGUSR1, then allocating "
      "at a fixed pace (5 allocations per op) for %gs, recorded with `--rate 1` (every "
      "allocation is an event, every free of one too); events/s = (samples + frees) / window, "
      "lost = heapspy's `N events lost`; %d repetition(s) per pace: the table shows the one "
      "that delivered most, and the most events any of them lost." % (
          cfg["pipe_window"], cfg["pipe_reps"]))
    w("- **Attach**: wall time from starting `heapspy record --pid P --duration 0.1` to its "
      "`heapspy: recording pid` line (probes attached, sampling switched on), %d times per "
      "target, alternating targets; each target runs alone, started afresh for each attach. "
      "The go command is attached while `go run` waits for its child; the others are busy "
      "(running their workload on one core).\n" % cfg["attach_reps"])
    kept = carried_sections(path)
    with open(path, "w") as f:
        f.write("\n".join(L) + kept)


# Sections of BENCHMARKS.md that other tools write (tools/probestats.py, tools/benchpair.py): a
# rerun keeps them.
CARRIED = ("## Where a probe hit's time goes",
           "## No probe hit on a running program (issue 12, records)",
           "## One probe hit per sample (issue 12)")


def carried_sections(path):
    try:
        text = open(path).read()
    except OSError:
        return ""
    out = ""
    for heading in CARRIED:
        at = text.find("\n" + heading + "\n")
        if at >= 0:
            end = text.find("\n## ", at + 1)
            out += text[at:end if end >= 0 else len(text)].rstrip("\n") + "\n"
    return out


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter runs (about 2 minutes)")
    ap.add_argument("--reps", type=int, help="repetitions of each comparison")
    ap.add_argument("--only", default="hit,paired,pipeline,attach",
                    help="comma-separated subset of hit,paired,pipeline,attach")
    ap.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from build/bench/results.json, running nothing")
    ap.add_argument("--heapspy", default=BUILT, help="the heapspy binary to measure "
                    "(default build/heapspy)")
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["pairs"] = cfg["hit_reps"] = args.reps
    only = set(args.only.split(","))
    if args.report_only:
        with open(os.path.join(OUT, "results.json")) as f:
            r = json.load(f)
        write_report(args.output, r["quick"], r["when"], r["cfg"], r["machine"], r["load"],
                     r["paired"],
                     r["hit"], r["pipeline"], r["raw"].get("pipebench"), r["attach"],
                     r["elapsed"])
        return
    if os.geteuid() != 0:
        sys.exit("bench: heapspy loads BPF programs: run as root")
    if not os.access(args.heapspy, os.X_OK):
        sys.exit("bench: no %s: run make first" % args.heapspy)
    os.makedirs(OUT, exist_ok=True)
    shutil.copy2(args.heapspy, HEAPSPY + ".tmp")
    os.rename(HEAPSPY + ".tmp", HEAPSPY)
    t_start = time.time()
    log("bench: building the programs with Go %s" % GO_VERSION)
    bins = {name: go_build(name) for name, _, _ in PROGRAMS}
    mach = machine(args.heapspy)
    load0, c0 = open("/proc/loadavg").read().split()[0], cpu_times()

    paired = hit = pipe = attach = None
    raw = {}
    per_hit = {}
    if "hit" in only:
        log("bench: cost of one probe hit")
        hit = {name: bench_hit(name, bins[name], cfg, scale) for name, scale in HIT_PROGRAMS}
        for name, h in hit.items():
            per_hit[name] = {r["variant"]: r.get("us_per_hit_cpu")
                             for r in h["rows"]}.get("heapspy")
    if "paired" in only:
        log("bench: target overhead, paired windows")
        raw["paired"] = bench_paired(bins, cfg)
        paired = summarize_paired(raw["paired"], per_hit)
    if "pipeline" in only:
        log("bench: event pipeline at --rate 1")
        pipe = bench_pipeline(bins["benchalloc"], cfg)
        log("bench: event pipeline, heapspy's consumer fed by a BPF producer")
        raw["pipebench"] = bench_pipebench(cfg)
    if "attach" in only:
        log("bench: attach time")
        attach = bench_attach(bins, cfg)

    c1, load1 = cpu_times(), open("/proc/loadavg").read().split()[0]
    dt = max(c1["total"] - c0["total"], 1)
    load = dict(busy=1 - (c1["idle"] - c0["idle"]) / dt, steal=(c1["steal"] - c0["steal"]) / dt,
                load0=load0, load1=load1)
    elapsed = time.time() - t_start
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(dict(quick=args.quick, when=when, elapsed=elapsed, cfg=cfg, machine=mach,
                       load=load, paired=paired, hit=hit, pipeline=pipe, attach=attach,
                       raw=raw), f, indent=1, default=str)
    write_report(args.output, args.quick, when, cfg, mach, load, paired, hit, pipe,
                 raw.get("pipebench"), attach, elapsed)
    log("bench: wrote %s in %.0f s" % (args.output, elapsed))


if __name__ == "__main__":
    main()
