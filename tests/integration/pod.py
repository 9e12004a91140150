"""podman for the container tests (test_container_pod.py): the images and a few helpers.

Nothing is pulled from a registry. The relay's image is what
./scripts/build-image.sh makes from the Debian package; the test tools image
(python3 and aiosmtpd, for the legacy sender and the SMTP sink) is the Debian
12 root of scripts/debian-root.sh with python3-aiosmtpd added in an overlay,
imported with `podman import` and kept, tagged by what it was made from, so a
later run finds it at once. `./scripts/test.sh` makes it in the background
while the sources build (`python3 pod.py tools-image`). Needs root.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from container import netns, package  # noqa: E402,F401 (netns: for the tests)
from relay import REPO  # noqa: E402

CONTAINERS_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "containers.conf")
# Healthchecks run from systemd timers, and there may be no systemd to ask: the
# tests probe /healthz themselves, as kubelet would (from outside the container).
ENV = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF, "DISABLE_HC_SYSTEMD": "true"}
TOOLS_PACKAGES = ["python3-aiosmtpd"]
TOOLS_REPOSITORY = "localhost/unsubrelay-test-tools"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def podman(*args, check=True, timeout=300, input=None):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, env=ENV, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def run(argv, what, timeout=900):
    r = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{what} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout.strip()


def relay_image():
    """./scripts/build-image.sh on the package: the image's name (cached layers make a rebuild ~5 s)."""
    return run([os.path.join(REPO, "scripts", "build-image.sh"), package()], "scripts/build-image.sh")


def debian_root():
    return run([os.path.join(REPO, "scripts", "debian-root.sh")], "scripts/debian-root.sh")


def tools_image():
    """The sender's and the sink's image, made once per root and package list."""
    root = debian_root()
    with open(__file__, "rb") as f:
        key = hashlib.sha256("\n".join([os.path.basename(root), *TOOLS_PACKAGES]).encode() + f.read()).hexdigest()
    name = f"{TOOLS_REPOSITORY}:{key[:12]}"
    if podman("image", "exists", name, check=False).returncode == 0:
        return name
    cache = os.path.dirname(root)
    with open(os.path.join(cache, ".tools-image-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second caller finds it made
        if podman("image", "exists", name, check=False).returncode != 0:
            _make_tools_image(root, cache, name)
    return name


def _make_tools_image(root, cache, name):
    work = tempfile.mkdtemp(prefix="unsubrelay-tools-", dir="/var/tmp")
    merged, archives = os.path.join(work, "root"), os.path.join(cache, "apt-archives")
    mounted = []
    try:
        for d in ("upper", "ovl", "root"):
            os.makedirs(os.path.join(work, d))
        os.makedirs(archives, exist_ok=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={root},upperdir={work}/upper,workdir={work}/ovl", merged], "mounting the overlay")
        mounted.append(merged)
        # Downloaded packages are kept beside the root (as scripts/build-image.sh does).
        run(["mount", "--bind", archives, merged + "/var/cache/apt/archives"], "binding apt's archives")
        mounted.append(merged + "/var/cache/apt/archives")
        run(["chroot", merged, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
             "--no-install-recommends", *TOOLS_PACKAGES], "apt-get install in the tools root")
        run(["umount", mounted.pop()], "unmounting apt's archives")
        for junk in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
            shutil.rmtree(os.path.join(merged, junk), ignore_errors=True)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", merged, "-cf", "-", "."], stdout=subprocess.PIPE)
        r = subprocess.run(["podman", "import", "--change", f"ENV PATH={PATH}", "-", name], stdin=tar.stdout,
                           capture_output=True, text=True, env=ENV)
        tar.stdout.close()
        if tar.wait() != 0 or r.returncode != 0:
            raise AssertionError(f"podman import of the tools root failed: {r.stderr[-2000:]}")
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", m], check=True)  # never delete through a mount: the cached root is below
        shutil.rmtree(work, ignore_errors=True)
    # Older tools images (another root or package list) are of no more use.
    for line in podman("images", "--format", "{{.Repository}}:{{.Tag}}", TOOLS_REPOSITORY).stdout.split():
        if line != name:
            podman("rmi", line, check=False)


def inspect(name, template):
    return podman("inspect", name, "--format", template).stdout.strip()


def volume_path(name):
    return podman("volume", "inspect", name, "--format", "{{.Mountpoint}}").stdout.strip()


def log_streams(container):
    """(stream, line) of each line the container wrote, from podman's k8s-file log."""
    path = inspect(container, "{{.HostConfig.LogConfig.Path}}")
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 3)  # TIME STREAM F|P TEXT
            if len(parts) == 4:
                out.append((parts[1], parts[3]))
    return out


def k8s_secret_json(data):
    """A Secret's data as podman 4.3's kube play reads it for secretKeyRef (JSON of
    base64 values; a `kind: Secret` document played by it is stored otherwise, podman #16269)."""
    import base64
    return json.dumps({k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


if __name__ == "__main__":
    if sys.argv[1:] != ["tools-image"]:
        sys.exit("usage: pod.py tools-image")
    print(tools_image())
