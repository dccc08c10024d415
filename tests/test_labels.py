"""Heap profiles by pprof label (tests/go/tenants): three tenants through one shared handler under
pprof.Do, each retaining a known amount. heapspy splits the handler's in-use bytes by tenant; the
runtime's own heap profile of the same run has no labels at all."""
import json
import os
import re
import signal
import time

import pprofdec
from harness import (GO_VERSIONS, NEWEST_GO, Program, build, build_variant, check, each, go_build,
                     go_variant, heapspy, needs, pprof_top, tmpdir)

# MiB each tenant retains (tests/go/tenants).
TENANTS = {"alpha": 12, "beta": 6, "gamma": 3}
SHARE_TOLERANCE_PP = 3.0
# 3 MiB of 8 KiB blocks is ~240 samples at this rate: gamma's share's sampling error ~0.5 points.
RATE = "8192"
# gamma's labels: tenant, endpoint and k00..k24. Before Go 1.24 a map that grew as the last went
# in, some of its cells still in the old bucket array.
GAMMA_KEYS = {"tenant", "endpoint"} | {"k%02d" % i for i in range(25)}


def tenant_shares(profile, what):
    """Shares of inuse_space by the tenant label, over the samples that carry one."""
    i, by = profile.index("inuse_space"), {}
    for smp in profile.samples:
        t = smp["labels"].get("tenant")
        if t is not None:
            by[t] = by.get(t, 0) + smp["values"][i]
    total = sum(by.values())
    check(total > 0, "%s: no in-use bytes carry a tenant label" % what)
    return {k: 100.0 * v / total for k, v in by.items()}


def check_tenants(path, stdout, what):
    got = pprofdec.load(path)
    shares = tenant_shares(got, what)
    total = float(sum(TENANTS.values()))
    for name, mib in TENANTS.items():
        want = 100.0 * mib / total
        check(abs(shares.get(name, 0.0) - want) <= SHARE_TOLERANCE_PP,
              "%s: tenant %s has %.1f%% of the labelled in-use bytes, expected %.1f%% "
              "(tolerance %.0f points): %s" % (what, name, shares.get(name, 0.0), want,
                                                SHARE_TOLERANCE_PP, shares))
    gamma = [s["labels"] for s in got.samples
             if s["labels"].get("tenant") == "gamma" and "main.handle" in got.stack(s)]
    check(gamma, "%s: no sample of main.handle for gamma" % what)
    for labels in gamma:
        check(set(labels) - {"bytes"} == GAMMA_KEYS and labels["k24"] == "24",
              "%s: gamma's label set decoded as %s" % (what, sorted(labels)))
    check(re.search(r"^  pprof labels: \d+ distinct label sets", stdout, re.M),
          "%s: the summary does not say how many label sets it read:\n%s" % (what, stdout))
    # --by-label tenant: a block per tenant, the biggest first, the shared handler on top in each.
    blocks = re.findall(r"^  tenant=(\w+): in use ([\d.]+) MiB", stdout, re.M)
    check([b[0] for b in blocks] == ["alpha", "beta", "gamma"],
          "%s: --by-label tenant does not list the tenants biggest first:\n%s" % (what, stdout))
    for name, _ in blocks:
        check(re.search(r"^  tenant=" + name + r": .*\n.*\n +[\d.]+Mi +[\d.]+% +[\d.]+Mi  "
                        r"main\.handle ", stdout, re.M),
              "%s: main.handle is not the top site of tenant %s:\n%s" % (what, name, stdout))
    top = pprof_top(path)
    check("main.handle" in top, "%s: go tool pprof -top does not show main.handle" % what)
    return got


def launched(version):
    out = tmpdir("labels-launch-%s" % version)
    mine = os.path.join(out, "heapspy.pb.gz")
    # gamma's blocks, allocated at the start and kept, are the oldest: frees shared out by age
    # (the runtime's records, which do not split them by label) would take them first.
    _, stdout, _ = heapspy("record", "-o", mine, "--by-label", "tenant", "--",
                           go_build(version, "tenants"), "-duration", "5s", "-still", "gamma",
                           check_rc=0, env={"TENANTS_RATE": RATE})
    check("(the runtime's records)" not in stdout,
          "go%s launched: record took the frees from the runtime's records, which do not "
          "split them by label:\n%s" % (version, stdout))
    check_tenants(mine, stdout, "go%s launched" % version)


def attached(version):
    out = tmpdir("labels-late-%s" % version)
    own = os.path.join(out, "runtime.pb.gz")
    mine = os.path.join(out, "heapspy.pb.gz")
    prog = Program([go_build(version, "tenants"), "-duration", "60s"],
                   env={"TENANTS_RATE": RATE, "TENANTS_PROFILE": own})
    try:
        prog.wait_for("ready")
        time.sleep(1)
        # Attached late: what was allocated before comes from the runtime's records, without
        # labels; every tenant replaces its whole ring each second, under its labels.
        _, stdout, _ = heapspy("record", "--pid", prog.pid, "--duration", "4", "-o", mine,
                               "--by-label", "tenant", check_rc=0)
        prog.signal(signal.SIGUSR1)
        prog.wait_for("profile written")
    finally:
        prog.kill()
    what = "go%s attached late" % version
    check_tenants(mine, stdout, what)
    # The runtime's own profile of the same run: no sample carries a label but its size.
    theirs = pprofdec.load(own)
    labelled = [s["labels"] for s in theirs.samples if set(s["labels"]) - {"bytes"}]
    check(theirs.samples and not labelled,
          "%s: the runtime's own heap profile has labels: %s" % (what, labelled[:3]))
    check(any(s["labels"].get("tenant") for s in pprofdec.load(mine).samples),
          "%s: heapspy's profile has no tenant labels" % what)


STRIPPED = [GO_VERSIONS[0], "1.24", NEWEST_GO]


def stripped(version):
    out = tmpdir("labels-stripped-%s" % version)
    mine = os.path.join(out, "heapspy.pb.gz")
    _, stdout, stderr = heapspy("record", "-v", "-o", mine, "--by-label", "tenant", "--",
                                go_variant(version, "tenants", "stripped"), "-duration", "5s",
                                check_rc=0, env={"TENANTS_RATE": RATE})
    what = "go%s stripped" % version
    for fact in ("g.labels", "g.m", "m.curg"):
        check(re.search(r"layout: %s at offset [1-9]\d* \(0: unknown\) \(from code\)" % fact,
                        stderr), "%s: %s not from the code:\n%s" % (what, fact, stderr))
    check_tenants(mine, stdout, what)


@needs([build_variant(v, "tenants", "stripped") for v in STRIPPED])
def test_labels_stripped():
    """Stripped (no DWARF): where g keeps the labels read from the runtime's code
    (runtime_setProfLabel's store, semacquire1's `gp != gp.m.curg`); the same split."""
    each(STRIPPED, stripped)


@needs([build(v, "tenants") for v in GO_VERSIONS])
def test_labels_launched():
    """Launched: the shared handler's in-use bytes split by tenant as retained, every release
    (the label set a map before Go 1.24, a slice since); a goroutine started inside pprof.Do
    allocates under its labels; --by-label groups the summary."""
    each(GO_VERSIONS, launched)


@needs([build(v, "tenants") for v in GO_VERSIONS])
def test_labels_attached_late():
    """Attached late: the same split; the runtime's own profile of the run has no labels."""
    each(GO_VERSIONS, attached)


def leaking(version):
    out = tmpdir("labels-leaks-%s" % version)
    js = os.path.join(out, "leaks.json")
    _, stdout, _ = heapspy("leaks", "--duration", "12", "--json", js, "--",
                           go_build(version, "tenants"), "-duration", "20s", "-leak", "beta",
                           check_rc=0, timeout=90, env={"TENANTS_RATE": RATE})
    with open(js) as f:
        cands = json.load(f)["candidates"]
    what = "go%s leaks, beta leaking" % version
    got = [(c["stack"][0], c["labels"].get("tenant")) for c in cands]
    check(got and got[0] == ("main.handle", "beta"),
          "%s: the first candidate is not main.handle of tenant beta: %s\n%s" % (
              what, got, stdout))
    check(not any(t in ("alpha", "gamma") for _, t in got),
          "%s: a tenant that does not leak is a candidate: %s\n%s" % (what, got, stdout))
    check(re.search(r"^#1 main\.handle \(main\.go:\d+\) \{endpoint=/store, tenant=beta\}",
                    stdout, re.M),
          "%s: the text report does not name beta's labels:\n%s" % (what, stdout))


@needs([build(v, "tenants") for v in (GO_VERSIONS[0], NEWEST_GO)])
def test_labels_leaks():
    """One tenant leaks through the handler all three share: heapspy leaks ranks candidates per
    label set, and only that tenant's is one (oldest and newest release: map and slice)."""
    each([GO_VERSIONS[0], NEWEST_GO], leaking)


def served(version):
    from test_serve import Serve, pprof_fetch  # the server harness
    out = tmpdir("labels-serve-%s" % version)
    prog = Program([go_build(version, "tenants"), "-duration", "60s"], env={"TENANTS_RATE": RATE})
    serve = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid)
        time.sleep(4)  # every tenant's ring allocated again under its labels
        got = pprof_fetch(serve.url("/pid/%d/debug/pprof/heap" % prog.pid),
                          os.path.join(out, "heap.pb.gz"))
        what = "go%s served" % version
        shares = tenant_shares(got, what)
        total = float(sum(TENANTS.values()))
        for name, mib in TENANTS.items():
            check(abs(shares.get(name, 0.0) - 100.0 * mib / total) <= SHARE_TOLERANCE_PP,
                  "%s: tenant shares %s, retained %s" % (what, shares, TENANTS))
        status, body = serve.get("/metrics")
        check(status == 200 and b'tenant="' not in body and b"alpha" not in body,
              "%s: /metrics has something per label (or failed, %d)" % (what, status))
    finally:
        if serve:
            serve.stop()
        prog.kill()


@needs(build(NEWEST_GO, "tenants"))
def test_labels_served():
    """heapspy serve's heap profile carries the labels as well; /metrics nothing per label."""
    served(NEWEST_GO)
