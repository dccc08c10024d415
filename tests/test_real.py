"""heapspy on a real service built by its own project rather than by the tests: Debian's
prometheus-node-exporter, as bookworm (go1.19) and trixie (go1.24) ship it, stripped, with
net/http/pprof linked, ~120 allocation sites, inlined make-and-copy in its netlink decoding and
runtime.CallersFrames inlined into log/slog. tools/install-deps downloads both packages into
build/real (apt-get download; they are unpacked, never installed)."""
import os
import signal
import subprocess
import threading
import time
import urllib.request

import pprofdec
from harness import HEAPSPY, ROOT, check, check_self_check, tmpdir
from test_serve import free_port

# Alone: the load and the comparison at one moment are what is measured.
RUN_ALONE = True

RELEASES = (("bookworm", "go1.19"), ("trixie", "go1.24"))


def node_exporter(suite):
    return os.path.join(ROOT, "build", "real", suite, "usr", "bin", "prometheus-node-exporter")


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def inuse_by_stack(profile, sample_type):
    return profile.by_site(sample_type, tuple)


def compare(mine, own, what):
    for sample_type in ("inuse_space", "inuse_objects", "alloc_space"):
        got, want = inuse_by_stack(mine, sample_type), inuse_by_stack(own, sample_type)
        tg, tw = sum(got.values()), sum(want.values())
        check(tw > 0, "%s: the service's own profile has no %s" % (what, sample_type))
        check(abs(tg - tw) <= 0.01 * tw,
              "%s: %s in total %d, the service's own profile %d (%+.1f%%)"
              % (what, sample_type, tg, tw, 100.0 * (tg - tw) / tw))
        worst = max((abs(100.0 * got.get(k, 0) / max(tg, 1) - 100.0 * want.get(k, 0) / tw), k)
                    for k in set(got) | set(want))
        check(worst[0] <= 3, "%s: %s share %.1f points off the service's own profile at %s"
              % (what, sample_type, worst[0], " <- ".join(worst[1][:6])))


def test_node_exporter_matches_its_own_profile():
    """Attached late to the running service while Prometheus-like scrapes load it, default
    record (the runtime's own records, read at each GC cycle; no probe): in-use and allocated
    bytes and objects within 1% of the service's own /debug/pprof/heap?gc=1 taken at the same
    moment, every stack's share within 3 points (measured: equal to the byte), and the
    self-check agrees."""
    for suite, release in RELEASES:
        exe = node_exporter(suite)
        check(os.access(exe, os.X_OK), "%s is missing: tools/install-deps downloads it" % exe)
        out = tmpdir("real-node-exporter-" + suite)
        mine, port = os.path.join(out, "heapspy.pb.gz"), free_port()
        base = "http://127.0.0.1:%d" % port
        # Its log goes nowhere: a collector that fails logs at every scrape.
        prog = subprocess.Popen([exe, "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop, hs = threading.Event(), None

        def load():
            while not stop.is_set():
                try:
                    fetch(base + "/metrics")
                except OSError:
                    time.sleep(0.05)

        loader = threading.Thread(target=load)
        try:
            for _ in range(100):
                try:
                    fetch(base + "/metrics")
                    break
                except OSError:
                    time.sleep(0.1)
            loader.start()
            time.sleep(2)
            hs = subprocess.Popen([HEAPSPY, "record", "--pid", str(prog.pid), "-o", mine],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(5)
            stop.set()
            loader.join()
            time.sleep(0.5)
            own = os.path.join(out, "own.pb.gz")
            with open(own, "wb") as f:
                f.write(fetch(base + "/debug/pprof/heap?gc=1"))
            time.sleep(0.5)
            hs.send_signal(signal.SIGINT)
            stdout, stderr = hs.communicate(timeout=60)
        finally:
            stop.set()
            if loader.is_alive():
                loader.join()
            if hs and hs.poll() is None:
                hs.kill()
                hs.communicate()
            prog.kill()
            prog.wait()
        what = "%s's node exporter" % suite
        check(hs.returncode == 0, "%s: heapspy exited %d: %s" % (what, hs.returncode, stderr))
        check(release in stderr, "%s: not recorded as %s: %s" % (what, release, stderr))
        check_self_check(stdout, what)
        compare(pprofdec.load(mine), pprofdec.load(own), what)
