#!/usr/bin/env python3
"""Where a probe hit's time goes: the kernel's own accounting of heapspy's BPF handlers
(kernel.bpf_stats_enabled: run_time_ns and run_cnt per program) against the whole cost of a hit
as tools/bench.py measures it (target CPU per operation over an unprobed run, per hit), on the
allocation loop with every allocation sampled. What the handler does not account for is the
uprobe itself: the trap, the kernel's uprobe machinery and the return to the program.

    python3 tools/probestats.py [--reps N] [--ops N] [--program benchalloc] [--tags T] BIN...

Each BIN is a heapspy binary (build/heapspy of two commits, say); they run side by side,
alternating their order from one repetition to the next, and medians are printed. Needs root;
switches kernel.bpf_stats_enabled on for the run and restores it.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the harness: targets, heapspy runs, Go builds)

PROGS = {"mprof_malloc": "alloc", "free_special": "free"}


def handler_stats(pid):
    """{program name: (run_time_ns, run_cnt)} of the BPF programs heapspy process pid holds, from
    its descriptors' fdinfo (the kernel's counters; bpftool names the programs)."""
    names = {p["id"]: p.get("name") for p in json.loads(subprocess.run(
        ["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout)}
    stats = {}
    fdinfo = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                info = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        if "prog_id" not in info or "run_cnt" not in info:  # a link's fdinfo names its prog too
            continue
        name = names.get(int(info["prog_id"]))
        if name in PROGS:
            stats[name] = (int(info.get("run_time_ns", 0)), int(info.get("run_cnt", 0)))
    return stats


def run(binary, heapspy, ops):
    """One window of ops operations at rate 1: target CPU per op, hits per op, and each
    handler's ns per hit. Without heapspy (None), the unprobed baseline."""
    argv = [binary, "-idle", "-signal", "-ops", str(ops), "-windows", "2"]
    t = bench.Target(argv + ([] if heapspy else ["-rate", "1"]))
    hs = None
    try:
        t.ready()
        if heapspy:
            bench.HEAPSPY = heapspy
            hs = bench.Heapspy(["--pid", t.pid, "--rate", "1", "-o",
                                os.path.join(bench.OUT, "probestats.pb.gz")])
            hs.wait_recording()
            before = handler_stats(hs.proc.pid)
        t.start_window()
        r = t.result(last=False)
        r["cpu_per_op"] = r["cpu"] / r["ops"]
        if heapspy:
            after = handler_stats(hs.proc.pid)
            r["hits"] = r["handler_ns"] = 0
            for name, kind in PROGS.items():
                ns = after[name][0] - before[name][0]
                cnt = after[name][1] - before[name][1]
                r[kind + "_hits"] = cnt
                r[kind + "_ns"] = ns / cnt if cnt else float("nan")
                r["hits"] += cnt
                r["handler_ns"] += ns
        return r
    finally:
        t.kill()
        if hs:
            hs.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--program", default="benchalloc")
    ap.add_argument("--tags", help="build tags of the program (benchalloc: withlabels, its "
                    "workers under pprof labels)")
    ap.add_argument("heapspy", nargs="+")
    args = ap.parse_args()
    os.makedirs(bench.OUT, exist_ok=True)
    binary = bench.go_build(args.program, args.tags)
    old = open("/proc/sys/kernel/bpf_stats_enabled").read().strip()
    with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
        f.write("1")
    variants = [None] + args.heapspy
    runs = {v: [] for v in variants}
    try:
        for rep in range(args.reps):
            for v in bench.rotated(variants, rep):
                runs[v].append(run(binary, v, args.ops))
                bench.log("rep %d %s: %s" % (rep + 1, v or "none", json.dumps(runs[v][-1])))
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(old)
    med = bench.median
    base = med([r["cpu_per_op"] for r in runs[None]])
    print("| heapspy | hits/op | cost per hit (target CPU) | alloc handler | free handler | "
          "handlers' share | uprobe (trap and kernel) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v in args.heapspy:
        rs = runs[v]
        per_hit = [(r["cpu_per_op"] - base) * r["ops"] / r["hits"] * 1e6 for r in rs]
        cost = med(per_hit)
        hnd = med([r["handler_ns"] / r["hits"] / 1e3 for r in rs])
        print("| %s | %.2f | %.2f us | %.2f us | %.2f us | %.0f%% | %.2f us |" % (
            v, med([r["hits"] / r["ops"] for r in rs]), cost,
            med([r["alloc_ns"] for r in rs if r["alloc_hits"]]) / 1e3,
            med([r["free_ns"] for r in rs if r["free_hits"]]) / 1e3, 100 * hnd / cost,
            cost - hnd))


if __name__ == "__main__":
    main()
