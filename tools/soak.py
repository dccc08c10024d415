#!/usr/bin/env python3
"""Soak benchmark of `heapspy serve`: many targets sampled at a high rate for a long time, and
heapspy's own memory over it, which must stay flat. Not a test: run it on a machine of its own.

    python3 tools/soak.py [--targets 20] [--minutes 10] [--rate 4096] [--every 10]
                          [--heapspy BIN] [--output FILE]

Starts --targets copies of tests/go/gcload (4 MiB live, 2 MiB/s of garbage each, no sampling of
their own), serves them all with `heapspy serve --match` at --rate (one sample per RATE bytes),
and every --every seconds reads heapspy's /metrics (its RSS and CPU, the samples taken), fetches
one target's heap profile, allocs delta and GC cycles in turn (as scrapers would), and once a
minute kills one target and starts another (heapspy drops one recording and makes another).
Prints RSS over time and the verdict: the growth of RSS over the second half of the run.
Needs root and Debian's Go 1.27 (/usr/lib/go-1.27); builds into build/soak/.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "soak")
GO = "/usr/lib/go-1.27/bin/go"
GO_ENV = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOPROXY="off",
              CGO_ENABLED="0", GOCACHE=os.environ.get("HEAPSPY_GOCACHE") or
              os.path.join(OUT, "gocache"))
GCLOAD = ["-live", "4", "-rate", "2", "-force", "0", "-stw", "0"]


def log(msg):
    print(msg, flush=True)


def build():
    os.makedirs(OUT, exist_ok=True)
    # A name of its own, so that --match serves these programs and nothing else on the host.
    binary = os.path.join(OUT, "hssoak%d-gcload" % os.getpid())
    subprocess.run([GO, "build", "-o", binary, "./gcload"], cwd=os.path.join(ROOT, "tests", "go"),
                   env=GO_ENV, check=True)
    return binary


def metric(text, name):
    m = re.search(r"^%s(?:\{[^}]*\})? ([0-9.e+-]+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else 0.0


def metric_sum(text, name):
    return sum(float(v) for v in re.findall(r"^%s\{[^}]*\} ([0-9.e+-]+)$" % re.escape(name),
                                            text, re.M))


def get(url, timeout=60):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=int, default=4096)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--heapspy", default=os.path.join(ROOT, "build", "heapspy"))
    ap.add_argument("--output", help="also write the table here (Markdown)")
    a = ap.parse_args()

    binary = build()
    progs = []
    secs = int(a.minutes * 60) + 120

    def start_target():
        p = subprocess.Popen([binary, "-duration", "%ds" % secs] + GCLOAD,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        progs.append(p)
        return p

    for _ in range(a.targets):
        start_target()
    serve = subprocess.Popen([a.heapspy, "serve", "--match", os.path.basename(binary),
                              "--rate", str(a.rate), "--rescan", "2", "--listen", "127.0.0.1:0"],
                             stderr=subprocess.PIPE, text=True)
    port = None
    for line in serve.stderr:
        m = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    if not port:
        sys.exit("heapspy serve did not start")
    threading.Thread(target=lambda: [None for _ in serve.stderr], daemon=True).start()
    base = "http://127.0.0.1:%d" % port
    rows, start, last_churn, turn = [], time.time(), time.time(), 0
    try:
        while time.time() - start < a.minutes * 60:
            time.sleep(a.every)
            text = get(base + "/metrics").decode()
            pids = sorted(set(int(p) for p in re.findall(r'heapspy_heap_samples_total\{pid="(\d+)"',
                                                         text)))
            if pids:
                pid = pids[turn % len(pids)]
                turn += 1
                get(base + "/pid/%d/debug/pprof/heap" % pid)
                get(base + "/pid/%d/debug/pprof/allocs?seconds=1" % pid)
                get(base + "/pid/%d/debug/gc" % pid)
            row = {
                "t": time.time() - start,
                "rss": metric(text, "process_resident_memory_bytes") / 1048576,
                "cpu": metric(text, "process_cpu_seconds_total"),
                "targets": metric(text, "heapspy_targets"),
                "samples": metric_sum(text, "heapspy_heap_samples_total"),
                "cycles": metric_sum(text, "heapspy_go_gc_cycles_total"),
                "lost": metric_sum(text, "heapspy_heap_events_lost_total"),
            }
            rows.append(row)
            log("%6.0fs  RSS %6.1f MiB  CPU %7.1fs  %3.0f targets  %9.0f samples  %7.0f cycles"
                "  %5.0f lost" % (row["t"], row["rss"], row["cpu"], row["targets"],
                                  row["samples"], row["cycles"], row["lost"]))
            if time.time() - last_churn >= 60:
                last_churn = time.time()
                old = progs.pop(0)
                old.kill()
                old.wait()
                start_target()
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        for p in progs:
            p.kill()
            p.wait()
    half = [r["rss"] for r in rows[len(rows) // 2:]]
    if len(rows) < 2 or not half:
        sys.exit("too short a run to judge")
    wall = rows[-1]["t"] - rows[0]["t"]
    cpu = (rows[-1]["cpu"] - rows[0]["cpu"]) / wall if wall > 0 else 0
    growth = (half[-1] - half[0]) / half[0] * 100
    verdict = ("%d targets at one sample per %d bytes for %.1f min: RSS %.1f MiB after the first "
               "reading, %.1f to %.1f MiB over the second half (%+.1f%%), peak %.1f MiB; heapspy "
               "%.1f%% of one CPU; %.0f samples, %.0f lost" % (
                   a.targets, a.rate, rows[-1]["t"] / 60, rows[0]["rss"], half[0], half[-1],
                   growth, max(r["rss"] for r in rows), 100 * cpu, rows[-1]["samples"],
                   rows[-1]["lost"]))
    log(verdict)
    if a.output:
        with open(a.output, "w") as f:
            f.write("| s | RSS MiB | CPU s | targets | samples | GC cycles | lost |\n")
            f.write("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
            for r in rows:
                f.write("| %.0f | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f |\n" % (
                    r["t"], r["rss"], r["cpu"], r["targets"], r["samples"], r["cycles"],
                    r["lost"]))
            f.write("\n%s\n" % verdict)


if __name__ == "__main__":
    main()
