"""heapspy serve against real clients: go tool pprof reads every endpoint over HTTP, and what it reads
is compared with the runtime's own heap profile of the same process."""
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pprofdec
from harness import (GO_VERSIONS, HEAPSPY, NEWEST_GO, BUILD, Failure, Program, build, check,
                     go_bin, go_build, needs, tmpdir)
from test_record import compare_shares, mem_profile_rate, shares

# --all serves every Go process on the machine: beside other tests it would attach to theirs.
RUN_ALONE = {"test_serve_all_go_processes"}


class Serve:
    """heapspy serve in the background on a free loopback port; stderr collected as it comes."""

    def __init__(self, *args, attaching=True):
        self.proc = subprocess.Popen([HEAPSPY, "serve", "--listen", "127.0.0.1:0"] +
                                     [str(a) for a in args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"serving on (https?)://127\.0\.0\.1:(\d+)/", line)
                if m:
                    self.scheme, self.port = m.group(1), int(m.group(2))
                if self.port and (not attaching or "heapspy: serving pid" in line):
                    ready.set()
            ready.set()
        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        ready.wait(30)
        check(self.port, "heapspy serve did not say where it listens:\n" + self.stderr())

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def get(self, path, headers=None, context=None):
        """(status, body) of a GET."""
        req = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60, context=context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stderr(self):
        return "".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise Failure("heapspy serve did not end within 30 s of SIGTERM:\n" + self.stderr())
        self.reader.join(5)
        return rc


def pprof_fetch(url, out, *flags):
    """go tool pprof reads url over HTTP and saves what it read (-proto) in out."""
    p = subprocess.run([go_bin(NEWEST_GO), "tool", "pprof", "-proto", "-output", out] +
                       list(flags) + [url], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, GOTOOLCHAIN="local", PPROF_TMPDIR=BUILD))
    check(p.returncode == 0, "go tool pprof %s failed: %s" % (url, p.stderr))
    return pprofdec.load(out)


def pprof_top(url):
    p = subprocess.run([go_bin(NEWEST_GO), "tool", "pprof", "-top", url], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, GOTOOLCHAIN="local", PPROF_TMPDIR=BUILD))
    check(p.returncode == 0, "go tool pprof -top %s failed: %s" % (url, p.stderr))
    return p.stdout


def total(profile, sample_type):
    i = profile.index(sample_type)
    return sum(s["values"][i] for s in profile.samples)


OLDEST = GO_VERSIONS[0]


@needs(build(OLDEST, "retain", tags="withpprof"), build(NEWEST_GO, "retain", tags="withpprof"),
       build(NEWEST_GO, "retain"))
def test_serve_heap_matches_runtime_profile():
    """One heapspy serve, three processes: go1.19 and the newest sampling already (they link
    runtime/pprof and write their own profile on SIGUSR1), and the newest not sampling. Each
    served heap, read by go tool pprof over HTTP, has the shares of the runtime's own profile
    within 3 points per site; allocs defaults to alloc_space; ?seconds=2 gives the allocations of
    those seconds (within what the cumulative profiles on either side allow) with in-use values
    absolute; 404 and 400 with one line; a process that exits stops being served and the others
    go on; SIGTERM ends the agent and restores MemProfileRate in the process it switched on."""
    out = tmpdir("serve")
    own = {v: os.path.join(out, "runtime-%s.pb.gz" % v) for v in (OLDEST, NEWEST_GO)}
    progs = {v: Program([go_build(v, "retain", tags="withpprof"), "-duration", "60s",
                         "-garbage", "30"], env={"RETAIN_PROFILE": own[v], "GOGC": "50"})
             for v in (OLDEST, NEWEST_GO)}
    plain_bin = go_build(NEWEST_GO, "retain")
    plain = Program([plain_bin, "-duration", "60s", "-garbage", "30"], env={"GOGC": "50"})
    serve = None
    try:
        for p in list(progs.values()) + [plain]:
            p.wait_for("ready")
        time.sleep(1.5)  # a few GC cycles publish the retained objects
        pids = [progs[OLDEST].pid, progs[NEWEST_GO].pid, plain.pid]
        serve = Serve(*[a for pid in pids for a in ("--pid", pid)])
        time.sleep(2)
        for v, prog in progs.items():
            got = pprof_fetch(serve.url("/pid/%d/debug/pprof/heap" % prog.pid),
                              os.path.join(out, "served-%s.pb.gz" % v))
            prog.signal(signal.SIGUSR1)
            prog.wait_for("profile written")
            want = pprofdec.load(own[v])
            check(got.period == want.period == 512 * 1024,
                  "go%s: period %d, the runtime's %d" % (v, got.period, want.period))
            check(got.default_sample_type == "inuse_space", got.default_sample_type)
            compare_shares(shares(got), shares(want), "go%s served" % v)
            check(any("heapspy serve: pid %d" % prog.pid in c for c in got.comments),
                  "comments: %s" % got.comments)
        top = pprof_top(serve.url("/pid/%d/debug/pprof/heap" % progs[OLDEST].pid))
        check("main.retainA" in top, "go tool pprof -top does not show main.retainA:\n" + top)

        # allocs: the same profile, alloc_space by default; then the same over two seconds.
        new = progs[NEWEST_GO].pid
        path = "/pid/%d/debug/pprof/allocs" % new
        before = pprof_fetch(serve.url(path), os.path.join(out, "allocs-0.pb.gz"))
        check(before.default_sample_type == "alloc_space", before.default_sample_type)
        delta = pprof_fetch(serve.url(path), os.path.join(out, "allocs-delta.pb.gz"),
                            "-seconds", "2")
        after = pprof_fetch(serve.url(path), os.path.join(out, "allocs-1.pb.gz"))
        grown = total(after, "alloc_space") - total(before, "alloc_space")
        d = total(delta, "alloc_space")
        # 30 MiB/s of garbage: some 60 MiB in two seconds, published at each GC.
        check(20 << 20 < d <= grown * 1.02,
              "?seconds=2: %.1f MiB allocated, %.1f MiB between the cumulative profiles "
              "on either side" % (d / 1048576, grown / 1048576))
        check(abs(total(delta, "inuse_space") - total(after, "inuse_space")) <
              0.2 * total(after, "inuse_space"),
              "?seconds=2: in use %d, not absolute (%d after)" % (
                  total(delta, "inuse_space"), total(after, "inuse_space")))
        check(delta.duration_nanos >= 2e9, "delta duration %d ns" % delta.duration_nanos)

        gc = json.loads(serve.get("/pid/%d/debug/gc" % new)[1])
        check(len(gc["gc_cycles"]) >= 2, "the gc endpoint has %d cycles" % len(gc["gc_cycles"]))

        # Bad requests: net/http/pprof's answers, one line each.
        for path, status in (("/debug/pprof/heap", 404), ("/pid/1/debug/pprof/heap", 404),
                             ("/pid/%d/debug/pprof/heap?seconds=x" % new, 400),
                             ("/pid/%d/debug/pprof/heap?seconds=0" % new, 400),
                             ("/pid/%d/debug/pprof/nosuch" % new, 404)):
            got, body = serve.get(path)
            check(got == status and body.count(b"\n") == 1 and body.endswith(b"\n"),
                  "%s: %d %r, wanted %d and one line" % (path, got, body, status))

        # Two exit: the last one is served alone, at the root too.
        for prog in progs.values():
            prog.kill()
        deadline = time.time() + 10
        while time.time() < deadline and serve.get("/debug/pprof/heap")[0] != 200:
            time.sleep(0.2)
        status, body = serve.get("/pid/%d/debug/pprof/heap" % new)
        check(status == 404 and (b"not served" in body or b"exited" in body),
              "an exited process: %d %r" % (status, body))
        root = pprof_fetch(serve.url("/debug/pprof/heap"), os.path.join(out, "root.pb.gz"))
        check(any("pid %d" % plain.pid in c for c in root.comments), root.comments)
        check(mem_profile_rate(plain_bin, plain.pid) == 512 * 1024,
              "sampling is not on in the process heapspy serves")
        rc = serve.stop()
        check(rc == 0, "heapspy serve exited %d:\n%s" % (rc, serve.stderr()))
        check(mem_profile_rate(plain_bin, plain.pid) == 0,
              "MemProfileRate not restored after SIGTERM:\n" + serve.stderr())
    finally:
        if serve:
            serve.stop()
        for p in list(progs.values()) + [plain]:
            p.kill()


@needs(build(NEWEST_GO, "retain"))
def test_serve_every_target_exits():
    """The one process served exits: heapspy serve says so and ends by itself, status 0."""
    prog = Program([go_build(NEWEST_GO, "retain"), "-duration", "3s", "-garbage", "10"])
    prog.wait_for("ready")
    serve = Serve("--pid", prog.pid)
    try:
        rc = serve.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise Failure("heapspy serve still runs after its only process exited:\n" +
                      serve.stderr())
    finally:
        serve.stop()
        prog.kill()
    check(rc == 0 and "every process served has exited" in serve.stderr(),
          "exit %d:\n%s" % (rc, serve.stderr()))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromServer:
    """Debian's Prometheus server, scraping every second what config names, on a free port with
    its storage in a fresh directory."""

    def __init__(self, name, scrape_configs):
        out = tmpdir(name)
        cfg = os.path.join(out, "prometheus.yml")
        with open(cfg, "w") as f:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "scrape_configs": scrape_configs}, f)  # JSON is YAML
        self.port = free_port()
        self.log = open(os.path.join(out, "prometheus.log"), "w")
        self.proc = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                                      "--storage.tsdb.path=" + os.path.join(out, "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.api("/-/ready"), timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise Failure("prometheus did not get ready within 30 s")

    def api(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, **params):
        url = self.api(path) + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=10) as r:
            reply = json.load(r)
        check(reply["status"] == "success", "prometheus %s: %s" % (path, reply))
        return reply["data"]

    def query(self, q):
        """{labels' pid: value} of an instant query."""
        return {int(r["metric"].get("pid", 0)): float(r["value"][1])
                for r in self.get("/api/v1/query", query=q)["result"]}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


GCTRACE = re.compile(r"^gc (\d+) @.*?( \(forced\))?$")
# gcload: 1 MiB live, 20 MiB/s of garbage and runtime.GC() every 100 ms, some 15 cycles a second.
GCLOAD = ["-live", "1", "-rate", "20", "-force", "100ms", "-stw", "0"]


@needs(build(NEWEST_GO, "gcload"))
def test_serve_metrics_scraped_by_prometheus():
    """/metrics passes promtool check metrics; Debian's Prometheus server scrapes it every second
    while gcload runs with GODEBUG=gctrace=1, which is then stopped (SIGSTOP): a query through
    Prometheus' API counts every cycle gctrace printed from the first heapspy saw to the last
    number Prometheus has, the same forced ones, and two pauses per cycle in the histogram."""
    out = tmpdir("serve-metrics")
    trace_file = os.path.join(out, "gctrace.txt")
    with open(trace_file, "w") as err:
        prog = subprocess.Popen([go_build(NEWEST_GO, "gcload"), "-duration", "60s"] + GCLOAD,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                env=dict(os.environ, GODEBUG="gctrace=1"))
    serve = prom = None
    try:
        check(prog.stdout.readline().strip() == "ready", "gcload did not start")
        serve = Serve("--pid", prog.pid)
        status, body = serve.get("/metrics")
        check(status == 200, "/metrics: %d %r" % (status, body))
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
        check(p.returncode == 0, "promtool check metrics:\n%s%s\n%s" % (
            p.stdout.decode(), p.stderr.decode(), body.decode()))
        prom = PromServer("serve-prometheus", [{
            "job_name": "heapspy",
            "static_configs": [{"targets": ["127.0.0.1:%d" % serve.port]}]}])
        time.sleep(3)
        os.kill(prog.pid, signal.SIGSTOP)
        time.sleep(3)  # scrapes after the last cycle
        q = lambda name: prom.query(name).get(prog.pid)
        cycles, forced = q("heapspy_go_gc_cycles_total"), q("heapspy_go_gc_forced_cycles_total")
        last, pauses = q("heapspy_go_gc_last_cycle"), q("heapspy_go_gc_pause_seconds_count")
        check(None not in (cycles, forced, last, pauses),
              "prometheus has no heapspy series for pid %d: %s" % (
                  prog.pid, prom.get("/api/v1/query", query="{job='heapspy'}")))
        first = json.loads(serve.get("/pid/%d/debug/gc" % prog.pid)[1])["gc_cycles"][0]["cycle"]
        # The stop may have come between the cycle's end and gctrace's line: let it print.
        os.kill(prog.pid, signal.SIGCONT)
        time.sleep(0.5)
        prog.kill()
        prog.communicate()
        trace = {}
        for line in open(trace_file):
            m = GCTRACE.match(line.strip())
            if m:
                trace[int(m.group(1))] = bool(m.group(2))
        seen = [n for n in trace if first <= n <= last]
        check(cycles == len(seen) == last - first + 1 and cycles >= 20,
              "prometheus: %d cycles up to gc %d; gctrace printed %d from gc %d (the first "
              "heapspy saw) to gc %d" % (cycles, last, len(seen), first, last))
        check(forced == sum(trace[n] for n in seen) and forced >= 5,
              "prometheus: %d forced cycles, gctrace %d" % (forced, sum(trace[n] for n in seen)))
        check(pauses == 2 * cycles, "%d pauses in the histogram for %d cycles" % (pauses, cycles))
        rss = prom.query("process_resident_memory_bytes").get(0)
        check(rss and 1 << 20 < rss < 1 << 30, "heapspy's RSS %s" % rss)
    finally:
        if prom:
            prom.stop()
        if prog.poll() is None:
            prog.kill()
            prog.communicate()
        if serve:
            serve.stop()


def wait_until(what, cond, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise Failure("%s within %d s" % (what, timeout))


@needs(build(NEWEST_GO, "retain"), build(NEWEST_GO, "execer"))
def test_serve_discovers_processes():
    """--match: processes are served as they start (checked every second), dropped when they
    exit, picked up again when restarted or when they exec (execer execs into retain the moment
    heapspy opens its executable); /targets is Prometheus' HTTP service discovery, and Debian's
    Prometheus server finds each process through it and scrapes its /pid/PID/metrics."""
    out = tmpdir("serve-discover")
    token = "hsdisco%d" % os.getpid()
    retain = os.path.join(out, token + "-retain")
    execer = os.path.join(out, token + "-execer")
    shutil.copy(go_build(NEWEST_GO, "retain"), retain)
    shutil.copy(go_build(NEWEST_GO, "execer"), execer)
    serve = Serve("--match", token, "--rescan", "1", attaching=False)
    prom, progs = None, []

    def targets():
        return {int(g["labels"]["pid"]): g for g in json.loads(serve.get("/targets")[1])}

    def start(*argv, line="ready"):
        p = Program(list(argv))
        progs.append(p)
        p.wait_for(line)
        return p
    try:
        prom = PromServer("serve-discover-prometheus", [{
            "job_name": "heapspy-sd",
            "http_sd_configs": [{"url": serve.url("/targets"), "refresh_interval": "1s"}]}])
        a = start(retain, "-duration", "60s", "-garbage", "10")
        g = wait_until("pid %d is not served" % a.pid, lambda: targets().get(a.pid))
        check(g["labels"]["exe"] == retain and g["labels"]["__metrics_path__"] ==
              "/pid/%d/metrics" % a.pid and g["targets"] == ["127.0.0.1:%d" % serve.port],
              "target group %s" % g)
        b = start(execer, retain, "-duration", "60s", "-garbage", "10", line="watching")
        b.wait_for("ready")  # heapspy opened execer's file, and it exec'd into retain
        wait_until("pid %d, exec'd into retain, is not served as retain" % b.pid,
                   lambda: targets().get(b.pid, {}).get("labels", {}).get("exe") == retain)
        for p in (a, b):
            try:
                wait_until("prometheus has not scraped pid %d through /targets" % p.pid,
                           lambda: prom.query("heapspy_heap_samples_total{pid='%d'}" % p.pid))
            except Failure as e:
                raise Failure("%s: %s" % (e, prom.get("/api/v1/targets")["activeTargets"]))
        up = prom.query("up{job='heapspy-sd'}")
        check(up.get(a.pid) == 1 and up.get(b.pid) == 1, "up: %s" % up)
        a.kill()
        wait_until("pid %d exited but is still served" % a.pid, lambda: a.pid not in targets())
        c = start(retain, "-duration", "60s", "-garbage", "10")
        wait_until("the restarted pid %d is not served" % c.pid, lambda: c.pid in targets())
        check(serve.proc.poll() is None, "heapspy serve ended:\n" + serve.stderr())
        check(serve.stop() == 0, "heapspy serve:\n" + serve.stderr())
    finally:
        if prom:
            prom.stop()
        for p in progs:
            p.kill()
        serve.stop()


@needs(build(NEWEST_GO, "retain"))
def test_serve_token_and_tls():
    """--token-file and --tls-cert/--tls-key: over HTTPS only, a request without the bearer token
    or with another gets 401 (one line, WWW-Authenticate); Debian's Prometheus server scraping
    over HTTPS with the token's file (its credentials_file) is up and stores the series, and
    with another token is down."""
    out = tmpdir("serve-tls")
    cert, key = os.path.join(out, "cert.pem"), os.path.join(out, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    token, wrong = os.path.join(out, "token"), os.path.join(out, "wrong")
    with open(token, "w") as f:
        f.write("  s3cret-%d\n" % os.getpid())  # the blanks and newline around it are not it
    with open(wrong, "w") as f:
        f.write("not-it\n")
    prog = Program([go_build(NEWEST_GO, "retain"), "-duration", "60s", "-garbage", "10"])
    serve = prom = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid, "--token-file", token, "--tls-cert", cert,
                      "--tls-key", key)
        check(serve.scheme == "https", "not HTTPS:\n" + serve.stderr())
        ctx = ssl.create_default_context(cafile=cert)
        for headers in ({}, {"Authorization": "Bearer not-it"},
                        {"Authorization": "Basic czNjcmV0"}):
            status, body = serve.get("/metrics", headers, ctx)
            check(status == 401 and body.count(b"\n") == 1,
                  "%s: %d %r, wanted 401 and one line" % (headers, status, body))
        status, body = serve.get("/metrics", {"Authorization": "Bearer s3cret-%d" % os.getpid()},
                                 ctx)
        check(status == 200 and b"heapspy_go_gc_cycles_total" in body, "with the token: %d" % status)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % serve.port, timeout=10)
            raise Failure("plain HTTP was answered")
        except (urllib.error.URLError, ConnectionError):
            pass
        tls = {"ca_file": cert}
        prom = PromServer("serve-tls-prometheus", [
            {"job_name": name, "scheme": "https", "tls_config": tls,
             "authorization": {"credentials_file": cred},
             "static_configs": [{"targets": ["127.0.0.1:%d" % serve.port]}]}
            for name, cred in (("right", token), ("wrong", wrong))])
        wait_until("prometheus did not scrape with the token",
                   lambda: prom.query("heapspy_go_gc_cycles_total{job='right'}"))
        up = lambda: {r["metric"]["job"]: r["value"][1]
                      for r in prom.get("/api/v1/query", query="up")["result"]}
        wait_until("prometheus did not try the wrong token", lambda: "wrong" in up())
        check(up() == {"right": "1", "wrong": "0"}, "up: %s" % up())
    finally:
        if prom:
            prom.stop()
        prog.kill()
        if serve:
            serve.stop()


class IngestReceiver:
    """A small stand-in for Pyroscope's ingest API: takes POST /ingest?...&format=pprof with the
    profile as the multipart field "profile", as Pyroscope does, and keeps what it got."""

    def __init__(self, port, got):
        import email.parser
        import email.policy
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                url = urllib.parse.urlparse(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" +
                    body)
                parts = [p.get_payload(decode=True) for p in msg.iter_parts()
                         if p.get_param("name", header="content-disposition") == "profile"]
                ok = url.path == "/ingest" and len(parts) == 1
                if ok:
                    got.append((urllib.parse.parse_qs(url.query), parts[0]))
                self.send_response(200 if ok else 400)
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@needs(build(NEWEST_GO, "retain"))
def test_serve_pushes_to_pyroscope_ingest():
    """--push every second to a local receiver of Pyroscope's ingest API: each push names the
    process (name{pid=..,service_name=..}, format=pprof) and covers the second after the one
    before; the receiver is killed for 3 s and started again: heapspy keeps answering, counts
    the failures, and delivers what was queued; then the program is stopped (SIGSTOP) and
    go tool pprof merges every profile received: the deltas add up to the cumulative allocs
    profile served over HTTP, and the last push's in-use values are its in-use values."""
    out = tmpdir("serve-push")
    port, got = free_port(), []
    recv = IngestReceiver(port, got)
    binary = go_build(NEWEST_GO, "retain")
    prog = Program([binary, "-duration", "60s", "-garbage", "20"])
    serve = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid, "--push", "http://127.0.0.1:%d" % port,
                      "--interval", "1")
        wait_until("fewer than 3 pushes", lambda: len(got) >= 3)
        recv.stop()
        time.sleep(3)
        t0 = time.time()
        status, body = serve.get("/metrics")
        check(status == 200 and time.time() - t0 < 1, "/metrics while the server is down")
        failed = re.search(rb"^heapspy_push_failed_total (\d+)", body, re.M)
        check(failed and int(failed.group(1)) > 0, "no failed push counted:\n%s" % body)
        before = len(got)
        recv = IngestReceiver(port, got)
        wait_until("what was queued is not delivered", lambda: len(got) >= before + 3)
        os.kill(prog.pid, signal.SIGSTOP)
        time.sleep(0.5)
        stopped = len(got)
        wait_until("no push after the program stopped", lambda: len(got) >= stopped + 2,
                   timeout=20)
        cumulative = pprof_fetch(serve.url("/debug/pprof/allocs"),
                                 os.path.join(out, "cumulative.pb.gz"))
        status, body = serve.get("/metrics")
        check(b"\nheapspy_push_dropped_total 0\n" in body, "pushes dropped:\n%s" % body)
        recv.stop()
        recv = None

        name = os.path.basename(binary)
        spans = sorted((int(q["from"][0]), int(q["until"][0])) for q, _ in got)
        for q, _ in got:
            check(q["name"] == ["%s{pid=%d,service_name=%s}" % (name, prog.pid, name)] and
                  q["format"] == ["pprof"], "push query %s" % q)
        check(all(a[1] == b[0] for a, b in zip(spans, spans[1:])),
              "the pushes' spans are not contiguous: %s" % spans)
        files = []
        for i, (q, data) in enumerate(sorted(got, key=lambda g: int(g[0]["from"][0]))):
            files.append(os.path.join(out, "push-%03d.pb.gz" % i))
            with open(files[-1], "wb") as f:
                f.write(data)
        merged = pprof_fetch(files[0], os.path.join(out, "merged.pb.gz"), *files[1:])
        last = pprof_fetch(files[-1], os.path.join(out, "last.pb.gz"))
        for st in ("alloc_space", "alloc_objects"):
            a, b = total(merged, st), total(cumulative, st)
            check(b > 0 and abs(a - b) <= 0.005 * b,
                  "%s: the %d pushes add up to %d, the cumulative profile %d" % (
                      st, len(files), a, b))
        a, b = total(last, "inuse_space"), total(cumulative, "inuse_space")
        check(abs(a - b) <= 0.01 * b, "in use: last push %d, served %d" % (a, b))
    finally:
        if recv:
            recv.stop()
        prog.kill()
        if serve:
            serve.stop()


@needs(build(NEWEST_GO, "gcload"))
def test_serve_keeps_recent_gc_records():
    """Weeks of GC cycles in days' memory: a target keeps its newest 2048 cycles for
    /debug/gc, counts the ones it let go, and /metrics still counts every cycle. gcload with
    nothing live collects hundreds of times a second."""
    prog = Program([go_build(NEWEST_GO, "gcload"), "-duration", "60s", "-live", "1",
                    "-force", "0", "-stw", "0"])
    serve = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid)

        def metric(name):
            m = re.search(rb"^%s\{[^}]*\} (\d+)" % name.encode(), serve.get("/metrics")[1], re.M)
            return int(m.group(1)) if m else 0
        wait_until("no GC record dropped", lambda: metric("heapspy_gc_records_dropped_total") > 0,
                   timeout=30)
        kept = json.loads(serve.get("/debug/gc")[1])["gc_cycles"]
        cycles = metric("heapspy_go_gc_cycles_total")
        check(len(kept) <= 2048 and cycles > len(kept),
              "/debug/gc has %d cycles, /metrics counts %d" % (len(kept), cycles))
        numbers = [c["cycle"] for c in kept]
        check(numbers == list(range(numbers[0], numbers[0] + len(numbers))),
              "the cycles kept are not the newest in a row")
    finally:
        prog.kill()
        if serve:
            serve.stop()


@needs(build(NEWEST_GO, "leaky", tags="withpprof"))
def test_serve_leak_candidates():
    """/pid/PID/debug/leaks with --leaks: heapspy leaks' JSON as of the moment asked.
    tests/go/leaky (a 4 MiB/s leak beside two bounded caches and garbage), served for 12 s:
    main.leak is the first candidate and neither cache nor the garbage is one. Without --leaks,
    404 and a line saying so."""
    from test_leaks import LEAK_CACHE_GARBAGE, NOT_LEAKS, has
    prog = Program([go_build(NEWEST_GO, "leaky", tags="withpprof"), "-duration", "60s"] +
                   LEAK_CACHE_GARBAGE)
    serve = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid, "--leaks")
        time.sleep(12)
        status, body = serve.get("/pid/%d/debug/leaks" % prog.pid)
        check(status == 200, "/debug/leaks: %d %r" % (status, body))
        report = json.loads(body)
        cands = report["candidates"]
        check(report["pid"] == prog.pid and cands and has(cands[0]["stack"], "main.leak"),
              "main.leak is not the first candidate: %s" % report["verdict"])
        for fn in NOT_LEAKS:
            check(not any(has(c["stack"], fn) for c in cands), "%s is a candidate" % fn)
        serve.stop()
        serve = Serve("--pid", prog.pid)
        wait_until("pid %d is not served" % prog.pid, lambda: b'"pid":"%d"' % prog.pid in
                   serve.get("/targets")[1])
        status, body = serve.get("/debug/leaks")
        check(status == 404 and b"--leaks" in body, "without --leaks: %d %r" % (status, body))
    finally:
        prog.kill()
        if serve:
            serve.stop()


@needs(build(NEWEST_GO, "retain"))
def test_serve_no_delta_before_a_gc():
    """A delta (?seconds=) needs a published cycle at both ends: before the first GC since
    heapspy switched sampling on (retain, idle, collects nothing), 503 with one line saying so,
    never a delta of two incomparable profiles; the profile itself is served."""
    prog = Program([go_build(NEWEST_GO, "retain"), "-duration", "60s", "-garbage", "0"])
    serve = None
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid)
        status, body = serve.get("/debug/pprof/allocs?seconds=1")
        check(status == 503 and body.count(b"\n") == 1 and b"no GC" in body,
              "?seconds=1 before a GC: %d %r" % (status, body))
        check(serve.get("/debug/pprof/heap")[0] == 200, "no profile before a GC")
    finally:
        prog.kill()
        if serve:
            serve.stop()


@needs(build(NEWEST_GO, "retain"))
def test_serve_slow_clients_stall_no_one():
    """Clients that stall cannot stall the agent or each other: 40 connections that send half a
    request and wait, and one that asks for a profile and never reads it, while a scraper
    fetches /metrics and the heap profile: every fetch answered, each within 5 s."""
    prog = Program([go_build(NEWEST_GO, "retain"), "-duration", "60s", "-garbage", "20"])
    serve, stalled = None, []
    try:
        prog.wait_for("ready")
        serve = Serve("--pid", prog.pid)
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", serve.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            stalled.append(s)
        reader = socket.create_connection(("127.0.0.1", serve.port))
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.sendall(b"GET /debug/pprof/heap?debug=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(reader)
        for path in ("/metrics", "/debug/pprof/heap", "/metrics", "/targets"):
            t0 = time.time()
            status, body = serve.get(path)
            took = time.time() - t0
            check(status == 200 and body and took < 5,
                  "%s beside stalled clients: status %d, %d bytes in %.1f s"
                  % (path, status, len(body), took))
    finally:
        for s in stalled:
            s.close()
        prog.kill()
        if serve:
            serve.stop()


@needs(build(NEWEST_GO, "retain"), build("1.19", "retain"))
def test_serve_all_go_processes():
    """--all (with --no-write, so that whatever other Go process this machine runs is served as
    found and never written to): Go programs of the oldest and newest release are served as they
    start and dropped as they exit; a process that is not Go (sleep) is not served; every
    target /targets lists is a live Go process, named with its release."""
    serve = Serve("--all", "--no-write", "--rescan", "1", attaching=False)
    sleeper = subprocess.Popen(["sleep", "60"])
    progs = [sleeper]

    def targets():
        return {int(g["labels"]["pid"]): g for g in json.loads(serve.get("/targets")[1])}
    try:
        for version in ("1.19", NEWEST_GO):
            p = Program([go_build(version, "retain"), "-duration", "60s", "-garbage", "5"])
            progs.append(p)
            p.wait_for("ready")
        for p in progs[1:]:
            wait_until("pid %d is not served" % p.pid, lambda: p.pid in targets())
        got = targets()
        check(got[progs[1].pid]["labels"]["go_version"].startswith("go1.19") and
              got[progs[2].pid]["labels"]["go_version"].startswith("go" + NEWEST_GO),
              "releases: %s" % got)
        check(sleeper.pid not in got, "sleep, not a Go program, is served: %s" % got)
        for pid, g in got.items():
            check(os.path.exists("/proc/%d" % pid) and g["labels"]["go_version"].startswith("go"),
                  "served pid %d: %s" % (pid, g))
        progs[1].kill()
        wait_until("pid %d exited but is still served" % progs[1].pid,
                   lambda: progs[1].pid not in targets())
        check(progs[2].pid in targets(), "the other program was dropped too")
    finally:
        for p in progs:
            p.kill()
        sleeper.wait()
        serve.stop()
