"""What heapspy ships as: the static binary (make static), run where nothing else is installed."""
import json
import os
import re
import subprocess
import time

import pprofdec
from harness import GO_VERSIONS, NEWEST_GO, ROOT, Program, build, check, go_build, needs, tmpdir

STATIC = os.path.join(ROOT, "build", "heapspy-static")
# apt and dpkg change the whole machine: nothing else runs beside them.
RUN_ALONE = {"test_deb_installs_runs_and_purges"}
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=120"]

# A private mount namespace whose root is a tmpfs holding only the binary, /proc, /sys (BTF,
# the BPF file system) and /tmp (the test's output directory): no libraries, no loader, no /etc,
# no /usr. The target runs outside it: the uprobes take its executable from /proc/PID/exe.
BARE = r"""
set -e
root=$(mktemp -d)
mount -t tmpfs bare "$root"
cp "$1" "$root/heapspy"
mkdir "$root/proc" "$root/sys" "$root/tmp"
mount --rbind /proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --bind "$2" "$root/tmp"
shift 2
exec chroot "$root" /heapspy "$@"
"""


def bare(out, *args):
    """Runs the static heapspy with args in the bare root, out as its /tmp; returns the
    CompletedProcess."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", BARE,
                           "bare", STATIC, out] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=120)


def check_ran(p, what):
    check(p.returncode == 0, "%s in the bare root exited %d\nstdout: %s\nstderr: %s" % (
        what, p.returncode, p.stdout, p.stderr))


@needs(build(NEWEST_GO, "retain", tags="withpprof"))
def test_static_binary_runs_alone():
    """build/heapspy-static has no interpreter and no shared libraries, and in a root holding
    nothing else it records a profile whose top site is the program's biggest (main.retainA,
    24 of 42 MiB), and runs gc and leaks."""
    check(os.path.exists(STATIC), "%s is missing: run make static" % STATIC)
    phdrs = subprocess.run(["readelf", "-lW", STATIC], capture_output=True, text=True,
                           check=True).stdout
    check("INTERP" not in phdrs and "DYNAMIC" not in phdrs,
          "%s is not fully static:\n%s" % (STATIC, phdrs))
    binary = go_build(NEWEST_GO, "retain", tags="withpprof")
    out = tmpdir("ship-static")
    prog = Program([binary, "-duration", "60s", "-garbage", "30"], env={"GOGC": "50"})
    try:
        prog.wait_for("ready")
        time.sleep(1)  # let a GC cycle publish the retained objects
        p = bare(out, "record", "--pid", prog.pid, "--duration", 2, "-o", "/tmp/heap.pb.gz")
        check_ran(p, "record")
        by = pprofdec.load(os.path.join(out, "heap.pb.gz")).by_site(
            "inuse_space", lambda stack: stack[0] if stack else "?")
        top = max(by, key=by.get)
        check(top == "main.retainA", "the top in-use site is %s, not main.retainA: %s" % (top, by))
        p = bare(out, "gc", "--pid", prog.pid, "--duration", 2, "--json", "/tmp/gc.json")
        check_ran(p, "gc")
        with open(os.path.join(out, "gc.json")) as f:
            gc = json.load(f)
        check(gc["summary"]["cycles"] > 0, "gc in the bare root saw no GC cycle: %s" % p.stdout)
        p = bare(out, "leaks", "--pid", prog.pid, "--duration", 2, "--json", "/tmp/leaks.json")
        check_ran(p, "leaks")
        with open(os.path.join(out, "leaks.json")) as f:
            check("candidates" in json.load(f), "leaks wrote no candidates list")
    finally:
        prog.kill()


def test_make_install_lays_out_under_destdir():
    """make install DESTDIR=... PREFIX=/usr: the binary, a manual that man renders without a
    warning and that has every command's options, and a bash completion that completes them."""
    dest = tmpdir("ship-install")
    p = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest, "PREFIX=/usr"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "make install failed:\n%s%s" % (p.stdout, p.stderr))
    usr = os.path.join(dest, "usr")
    files = sorted(os.path.relpath(os.path.join(d, f), usr)
                   for d, _, fs in os.walk(usr) for f in fs)
    want = ["bin/heapspy", "share/bash-completion/completions/heapspy",
            "share/man/man1/heapspy.1"]
    check(files == want, "make install laid out %s, wanted %s" % (files, want))
    heapspy = os.path.join(usr, "bin", "heapspy")
    check(os.access(heapspy, os.X_OK), "%s is not executable" % heapspy)
    man = subprocess.run(["man", "-l", os.path.join(usr, "share/man/man1/heapspy.1")],
                         capture_output=True, text=True, env=dict(os.environ, MANWIDTH="100"))
    check(man.returncode == 0 and not man.stderr, "man -l: %d %s" % (man.returncode, man.stderr))
    for section in ("HEAPSPY RECORD", "HEAPSPY GC", "HEAPSPY LEAKS"):
        check(section in man.stdout, "the manual has no section %s:\n%s" % (section, man.stdout))
    check("--duration=SECS" in man.stdout,
          "the manual's options are not plain ASCII:\n" + man.stdout)
    completions = {}
    for words in ("r", "leaks --j"):
        script = ('source "$1"; COMP_WORDS=(heapspy %s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_heapspy "$2"; echo "${COMPREPLY[@]}"' % words)
        c = subprocess.run(["bash", "-c", script, "bash",
                            os.path.join(usr, "share/bash-completion/completions/heapspy"),
                            heapspy], capture_output=True, text=True)
        completions[words] = c.stdout.split()
    check(completions == {"r": ["record"], "leaks --j": ["--json"]},
          "bash completion: %s" % completions)


def installed(package):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                       text=True)
    return "install ok installed" in p.stdout


@needs(build(NEWEST_GO, "retain"))
def test_deb_installs_runs_and_purges():
    """make deb: apt installs the package alone (its Depends are on the machine already: the
    libraries the build links), the installed heapspy records a launched program, and a purge
    leaves nothing behind."""
    check(not installed("heapspy"), "heapspy is installed already: this test would remove it")
    p = subprocess.run(["make", "-s", "deb"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    check(p.returncode == 0, "make deb failed:\n%s%s" % (p.stdout, p.stderr))
    deb = os.path.join(ROOT, "build", "heapspy.deb")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        p = subprocess.run(APT + ["install", deb], capture_output=True, text=True, env=env,
                           timeout=300)
        check(p.returncode == 0, "apt-get install %s failed:\n%s%s" % (deb, p.stdout, p.stderr))
        check(re.search(r"^0 upgraded, 1 newly installed, 0 to remove", p.stdout, re.M),
              "apt-get installed more than heapspy:\n" + p.stdout)
        p = subprocess.run(["/usr/bin/heapspy", "--help"], capture_output=True, text=True)
        check(p.returncode == 0 and "record" in p.stdout, "heapspy --help: %s" % p.stderr)
        out = os.path.join(tmpdir("ship-deb"), "heap.pb.gz")
        p = subprocess.run(["/usr/bin/heapspy", "record", "-o", out, "--",
                            go_build(NEWEST_GO, "retain"), "-duration", "2s"],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "the installed heapspy record exited %d: %s" % (p.returncode,
                                                                                 p.stderr))
        by = pprofdec.load(out).by_site("inuse_space", lambda stack: stack[0] if stack else "?")
        check(max(by, key=by.get) == "main.retainA", "top in-use sites: %s" % by)
    finally:
        p = subprocess.run(APT + ["purge", "heapspy"], capture_output=True, text=True, env=env,
                           timeout=300)
    check(p.returncode == 0, "apt-get purge heapspy failed:\n%s%s" % (p.stdout, p.stderr))
    check(not installed("heapspy") and not os.path.exists("/usr/bin/heapspy")
          and not os.path.exists("/usr/share/man/man1/heapspy.1.gz"),
          "the purge left heapspy behind")


def test_make_dist_tarball():
    """make dist: heapspy-VERSION-linux-x86_64.tar.gz holds the static binary (the one the bare
    root ran), the manual, the README and a SHA256SUMS that checks."""
    p = subprocess.run(["make", "-s", "dist"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    check(p.returncode == 0, "make dist failed:\n%s%s" % (p.stdout, p.stderr))
    version = subprocess.run([STATIC, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    name = "heapspy-%s-linux-x86_64" % version
    out = tmpdir("ship-dist")
    subprocess.run(["tar", "-C", out, "-xzf", os.path.join(ROOT, "build", name + ".tar.gz")],
                   check=True)
    files = sorted(os.listdir(os.path.join(out, name)))
    want = ["README.md", "SHA256SUMS", "heapspy", "heapspy.1"]
    check(files == want, "the tarball holds %s, wanted %s" % (files, want))
    p = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=os.path.join(out, name),
                       capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.count(": OK") == 3, "SHA256SUMS: %s%s" % (p.stdout,
                                                                                p.stderr))
    with open(STATIC, "rb") as a, open(os.path.join(out, name, "heapspy"), "rb") as b:
        check(a.read() == b.read(), "the tarball's heapspy is not build/heapspy-static")


# tools/install-deps in a private mount namespace, where it sees a fake /etc/os-release, an empty
# dpkg database (so every package is missing), a fresh /etc/apt and an apt-get that only logs what
# it is asked: nothing it does reaches the machine.
FAKE_SYSTEM = r"""
set -e
fake=$1
shift
mount --bind "$fake/os-release" /etc/os-release
mount --bind "$fake/status" /var/lib/dpkg/status
mount --bind "$fake/apt" /etc/apt
PATH="$fake/bin:$PATH" exec "$@"
"""
OS_RELEASE = {
    "debian12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n',
    "debian11": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\nID=debian\n',
    "ubuntu": 'PRETTY_NAME="Ubuntu 24.04 LTS"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
}


def tree(top):
    """{path: contents} of every file under top."""
    out = {}
    for d, _, files in os.walk(top):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), top)] = fh.read()
    return out


def install_deps(system, *args):
    """Runs tools/install-deps args on a fake system; returns (its CompletedProcess, the files
    /etc/apt held before, after, and apt-get's calls)."""
    fake = tmpdir("ship-deps-%s%s" % (system, "".join(args)))
    os.makedirs(os.path.join(fake, "apt", "sources.list.d"))
    os.makedirs(os.path.join(fake, "apt", "preferences.d"))
    os.makedirs(os.path.join(fake, "bin"))
    files = {"os-release": OS_RELEASE[system], "status": "",
             "apt/sources.list.d/debian.sources":
             "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
             "Components: main\n",
             "bin/apt-get": '#!/bin/sh\necho "$*" >> "%s/apt-get.log"\n' % fake}
    for name, text in files.items():
        with open(os.path.join(fake, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(fake, "bin", "apt-get"), 0o755)
    before = tree(os.path.join(fake, "apt"))
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        FAKE_SYSTEM, "fake", fake, os.path.join(ROOT, "tools", "install-deps")]
                       + list(args), capture_output=True, text=True, timeout=60)
    log = os.path.join(fake, "apt-get.log")
    calls = open(log).read().splitlines() if os.path.exists(log) else []
    return p, before, tree(os.path.join(fake, "apt")), calls


def test_install_deps_leaves_other_systems_untouched():
    """On Ubuntu or Debian 11, install-deps lists the missing packages (by name, every Go
    toolchain for make test, only the newest for --demo) and stops: exit 1, no apt source or pin
    written, apt-get never run."""
    for system, args, gos in (("ubuntu", (), GO_VERSIONS), ("debian11", ("--demo",), [NEWEST_GO])):
        p, before, after, calls = install_deps(system, *args)
        what = "install-deps %s on %s" % (" ".join(args), system)
        check(p.returncode == 1 and "this is not Debian 12" in p.stderr,
              "%s: exit %d\n%s" % (what, p.returncode, p.stderr))
        listed = p.stderr.split()
        check("libbpf-dev" in listed and "libzstd-dev" in listed,
              "%s does not list the libraries:\n%s" % (what, p.stderr))
        got = [w[len("golang-"):-len("-go")] for w in listed if w.startswith("golang-")]
        check(got == gos, "%s lists Go %s, wanted %s" % (what, got, gos))
        check(after == before and not calls, "%s changed /etc/apt (%s) or ran apt-get %s" % (
            what, sorted(set(after) ^ set(before)), calls))


def test_install_deps_on_debian12_adds_only_what_it_must():
    """On Debian 12 with nothing installed, install-deps --demo adds the trixie suites (pinned at
    50) for Go 1.27 and not bookworm-backports, says so, and asks apt-get for the newest Go only."""
    p, before, after, calls = install_deps("debian12", "--demo")
    check(p.returncode == 0, "install-deps --demo on Debian 12: exit %d\n%s" % (p.returncode,
                                                                                 p.stderr))
    added = sorted(set(after) - set(before))
    check(added == ["preferences.d/heapspy-trixie",
                    "sources.list.d/heapspy-trixie-backports.sources",
                    "sources.list.d/heapspy-trixie.sources"], "it added %s" % added)
    check(b"Pin-Priority: 50" in after["preferences.d/heapspy-trixie"], "no pin at 50")
    check("adding apt source trixie-backports" in p.stderr and "pinning" in p.stderr,
          "it did not say what it adds:\n" + p.stderr)
    check(len(calls) == 2 and calls[0].startswith("update"), "apt-get calls: %s" % calls)
    gos = [w for w in calls[1].split() if w.startswith("golang-")]
    check(gos == ["golang-%s-go/trixie-backports" % NEWEST_GO],
          "apt-get install asked for %s" % gos)
