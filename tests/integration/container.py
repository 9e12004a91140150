"""A Debian 12 container booted with systemd as PID 1 (systemd-nspawn --boot),
for tests of the Debian package under a real systemd.

The root comes from scripts/debian-root.sh (debootstrap, cached outside the
repository); each Container boots it through an overlay of its own (overlayfs:
the cached root read-only below, a fresh upper directory in a temporary
directory taking every write), with its own network namespace (only a
loopback), is driven from outside with nsenter, and is powered off, unmounted
and deleted by stop(). Needs root.
"""

import contextlib
import ctypes
import glob
import os
import re
import shutil
import subprocess
import tempfile

from relay import REPO, wait_until

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def package():
    """The Debian package the boot and container tests install: UNSUBRELAY_DEB, else build/deb's one .deb."""
    if os.environ.get("UNSUBRELAY_DEB"):
        return os.environ["UNSUBRELAY_DEB"]
    debs = glob.glob(os.path.join(REPO, "build", "deb", "unsubrelay_*_amd64.deb"))
    if len(debs) != 1:
        raise AssertionError(f"expected one build/deb/unsubrelay_*_amd64.deb (./scripts/build-deb.sh), found {debs}")
    return debs[0]


@contextlib.contextmanager
def netns(pid):
    """Sockets this thread opens inside the block live in the network namespace of pid."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into the network of process {pid}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(own)
        os.close(target)


def debian_root():
    """The cached debootstrap root (built on first use, ~3 min)."""
    r = subprocess.run([os.path.join(REPO, "scripts", "debian-root.sh")], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"scripts/debian-root.sh failed: {r.stderr[-3000:]}")
    return r.stdout.strip()


class Container:
    def __init__(self, base):
        self.base = base
        self.dir = tempfile.mkdtemp(prefix="unsubrelay-nspawn-", dir="/var/tmp")
        self.root = os.path.join(self.dir, "root")
        self.nspawn = None
        self.pid = None  # the container's systemd, as seen from here
        self.state = ""
        self.mounted = False

    def mount(self):
        """The container's root: the cached root read-only under a writable layer of its own,
        instead of a copy of all of it (~350 MB) per container."""
        if self.mounted:
            return
        upper, work = os.path.join(self.dir, "upper"), os.path.join(self.dir, "work")
        for d in (self.root, upper, work):
            os.makedirs(d)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.base},upperdir={upper},workdir={work}", self.root],
                       check=True, capture_output=True)
        self.mounted = True

    def boot(self, timeout=90):
        self.mount()
        self.log = open(os.path.join(self.dir, "nspawn.log"), "wb")
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "--boot", "--register=no", "--keep-unit", "--console=pipe",
             "--private-network", f"--machine=unsubrelay-{os.getpid()}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = wait_until(self._init_pid, timeout=30, what="the container's systemd")

        def booted():  # systemctl fails until systemd's own socket is up
            r = self.run("systemctl", "is-system-running", "--wait", timeout=timeout)
            self.state = r.stdout.strip() + r.stderr.strip()
            return self.state in ("running", "degraded")
        wait_until(booted, timeout=timeout, interval=0.5, what=f"the container's boot (state: {self.state!r})")
        return self

    def prepare_package(self, deb):
        """Before boot: puts the .deb in /root and its dependencies in apt's
        cache, so `apt install` in the booted container (which has no network)
        finds them. Downloaded .debs are kept beside the cached root."""
        debs = os.path.join(os.path.dirname(self.base), "apt-archives")
        archives = os.path.join(self.root, "var", "cache", "apt", "archives")
        os.makedirs(debs, exist_ok=True)
        self.mount()
        for f in glob.glob(os.path.join(debs, "*.deb")):
            shutil.copy(f, archives)
        shutil.copy(deb, os.path.join(self.root, "root"))
        r = subprocess.run(["chroot", self.root, "apt-get", "install", "-y", "--download-only",
                            "/root/" + os.path.basename(deb)],
                           capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if r.returncode != 0:
            raise AssertionError(f"fetching the package's dependencies failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
        for f in glob.glob(os.path.join(archives, "*.deb")):
            shutil.copy(f, debs)

    def repack_version(self, deb, version):
        """The same package with another version (an upgrade), in /root; returns its path inside."""
        work = tempfile.mkdtemp(dir=self.dir)
        subprocess.run(["dpkg-deb", "-R", deb, work + "/tree"], check=True)
        control = os.path.join(work, "tree", "DEBIAN", "control")
        with open(control) as f:
            text = f.read()
        with open(control, "w") as f:
            f.write(re.sub(r"^Version: .*$", f"Version: {version}", text, flags=re.M))
        name = f"unsubrelay_{version}_amd64.deb"
        subprocess.run(["dpkg-deb", "-b", work + "/tree", os.path.join(self.root, "root", name)], check=True,
                       capture_output=True)
        shutil.rmtree(work)
        return "/root/" + name

    def _init_pid(self):
        if self.nspawn.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited: {self.read_log()[-2000:]}")
        for child in _children(self.nspawn.pid):
            with open(f"/proc/{child}/comm") as f:
                if f.read().strip() == "systemd":
                    return child
        return None

    def run(self, *argv, check=False, timeout=120, input=None, env=None):
        """Runs a command inside the container (all its namespaces, its root)."""
        wrapped = ["nsenter", "-t", str(self.pid), "-a", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", *(env or []), *argv]
        r = subprocess.run(wrapped, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def host_in_netns(self, *argv, timeout=60):
        """Runs a host program (swaks, python3) in the container's network namespace."""
        return subprocess.run(["nsenter", "-t", str(self.pid), "-n", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def netns(self):
        """Sockets this thread opens inside the block live in the container's network."""
        return netns(self.pid)

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def show(self, unit, prop):
        return self.run("systemctl", "show", unit, "-p", prop, "--value", check=True).stdout.strip()

    def journal(self, unit, since_cursor=None):
        args = ["journalctl", "-u", unit, "-o", "cat", "--no-pager"]
        if since_cursor:
            args += ["--after-cursor", since_cursor]
        return self.run(*args, check=True).stdout

    def journal_cursor(self):
        out = self.run("journalctl", "-n", "0", "--show-cursor", "--no-pager", check=True).stdout
        return out.strip().rsplit("-- cursor: ", 1)[-1]

    def read_log(self):
        with open(os.path.join(self.dir, "nspawn.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        if self.nspawn and self.nspawn.poll() is None:
            self.run("systemctl", "poweroff", "--no-block")
            try:
                self.nspawn.wait(60)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        if self.nspawn:
            self.log.close()
        if self.mounted:
            r = subprocess.run(["umount", self.root], capture_output=True, text=True)
            if r.returncode != 0:  # never delete through a mounted root: the cached one is below
                raise AssertionError(f"umount {self.root}: {r.stderr}; {self.dir} left in place")
            self.mounted = False
        shutil.rmtree(self.dir, ignore_errors=True)


def _children(pid):
    """Every descendant of pid (from /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found

