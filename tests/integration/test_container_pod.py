"""The relay's OCI image as a sidecar, under Debian's podman (issue 27).

./scripts/build-image.sh builds the image from the Debian package; the pod of
deploy/kubernetes/unsubrelay-sidecar.yaml is played with `podman kube play`,
as written except where a test must differ (adapt_manifest says what and why):
the application container is a legacy sender (pod_sender.py: smtplib to
localhost:2525), an SMTP sink container (pod_sink.py, requiring the manifest
Secret's credentials) is the upstream, and the links point to the published
HTTP port on 127.0.0.1. All mail stays inside the pod; only the one-click POSTs
and the probes come from this host, as a browser and kubelet would.
Needs root (rootful podman); tests/integration/containers.conf is podman's configuration.
"""

import glob
import os
import re
import shlex
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest
import urllib.request

import yaml

import pod
from relay import REPO, free_port, wait_until

MANIFEST = os.path.join(REPO, "deploy", "kubernetes", "unsubrelay-sidecar.yaml")
COMPOSE = os.path.join(REPO, "deploy", "compose.yaml")
HERE = os.path.dirname(os.path.abspath(__file__))
STATE = "/var/lib/unsubrelay"
SINK_PORT = 2526
CREDENTIALS = {"username": "AKIAPODTEST", "password": "pod-secret-1"}
LINK = re.compile(r"List-Unsubscribe: <(http://127\.0\.0\.1:\d+/u/[A-Za-z0-9_-]+)>")

_images = {}


def setUpModule():
    if os.geteuid() != 0:
        raise AssertionError("rootful podman needs root: run ./scripts/test.sh as root")
    started = time.monotonic()
    _images["relay"] = pod.relay_image()
    _images["tools"] = pod.tools_image()
    print(f"images ready in {time.monotonic() - started:.1f} s: {_images}", flush=True)


def adapt_manifest(docs, tag, image, tools, port, sink_dir):
    """The manifest as this test plays it. Differences from the file, each needed here:
    - the application is the legacy sender (image and command), the sink a third container;
    - the relay's upstream is that sink (plain SMTP on the pod's 127.0.0.1:2526, with the
      Secret's credentials), its links point to the published port, on 127.0.0.1 only;
    - names carry a tag, so runs never share a pod, volume or secret;
    - the Secret is created with `podman secret create` (returned), since podman 4.3
      stores a played `kind: Secret` in a form its own secretKeyRef cannot read (podman #16269);
    - images are never pulled (imagePullPolicy: Never)."""
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Secret", "PersistentVolumeClaim", "Deployment", "Service"}, kinds.keys()
    secret = kinds["Secret"]
    secret_name = f"{secret['metadata']['name']}-{tag}"
    claim = kinds["PersistentVolumeClaim"]
    claim["metadata"]["name"] += f"-{tag}"
    deployment = kinds["Deployment"]
    deployment["metadata"]["name"] += f"-{tag}"
    spec = deployment["spec"]["template"]["spec"]
    app, relay = spec["containers"]
    tools_mount = {"name": "tools", "mountPath": "/tools", "readOnly": True}
    app.update(image=tools, imagePullPolicy="Never", command=["python3", "/tools/pod_sender.py", "idle"])
    app["volumeMounts"] = [tools_mount]
    relay.update(image=image, imagePullPolicy="Never")
    env = {e["name"]: e for e in relay["env"]}
    env["UNSUBRELAY_BASE_URL"]["value"] = f"http://127.0.0.1:{port}"
    env["UNSUBRELAY_UPSTREAM_KIND"]["value"] = "smtp"
    env["UNSUBRELAY_UPSTREAM_HOST"]["value"] = "127.0.0.1"
    relay["env"] += [{"name": "UNSUBRELAY_UPSTREAM_PORT", "value": str(SINK_PORT)},
                     {"name": "UNSUBRELAY_UPSTREAM_TLS", "value": "none"}]
    for e in relay["env"]:
        if "valueFrom" in e:
            e["valueFrom"]["secretKeyRef"]["name"] = secret_name
    relay["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    spec["containers"].append({
        "name": "sink", "image": tools, "imagePullPolicy": "Never", "command": ["python3", "/tools/pod_sink.py"],
        "env": [{"name": "SINK_PORT", "value": str(SINK_PORT)}, {"name": "SINK_DIR", "value": "/sink"},
                {"name": "SINK_USER", "value": CREDENTIALS["username"]},
                {"name": "SINK_PASSWORD", "value": CREDENTIALS["password"]}],
        "volumeMounts": [tools_mount, {"name": "sink", "mountPath": "/sink"}]})
    volumes = {}
    for v in spec["volumes"]:
        if "persistentVolumeClaim" in v:
            v["persistentVolumeClaim"]["claimName"] = claim["metadata"]["name"]
        elif "emptyDir" in v:  # podman 4.3 makes an emptyDir a named volume of that name
            old = v["name"]
            v["name"] = f"unsubrelay-{old}-{tag}"
            for m in relay["volumeMounts"]:
                if m["name"] == old:
                    m["name"] = v["name"]
            volumes["tmp"] = v["name"]
    spec["volumes"] += [{"name": "tools", "hostPath": {"path": HERE, "type": "Directory"}},
                        {"name": "sink", "hostPath": {"path": sink_dir, "type": "Directory"}}]
    played = [claim, deployment, kinds["Service"]]
    return played, secret_name, claim["metadata"]["name"], volumes["tmp"], deployment["metadata"]["name"]


def http(method, url, body=None, timeout=10):
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class SidecarPodTest(unittest.TestCase):
    """The steps share one pod and run in this order."""

    @classmethod
    def setUpClass(cls):
        cls.tag = f"t{os.getpid()}"
        cls.dir = tempfile.mkdtemp(prefix="unsubrelay-pod-", dir="/var/tmp")
        cls.sink_dir = os.path.join(cls.dir, "sink")
        os.makedirs(cls.sink_dir)
        cls.port = free_port()
        with open(MANIFEST) as f:
            text = f.read()
        cls.manifest = list(yaml.safe_load_all(text))
        played, cls.secret, cls.volume, cls.tmp_volume, name = adapt_manifest(
            list(yaml.safe_load_all(text)), cls.tag, _images["relay"], _images["tools"],
            cls.port, cls.sink_dir)
        cls.pod = f"{name}-pod-0"
        cls.relay, cls.app, cls.sink = (f"{cls.pod}-{c}" for c in ("unsubrelay", "app", "sink"))
        path = os.path.join(cls.dir, "pod.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(played, f)
        secret = next(d for d in cls.manifest if d["kind"] == "Secret")
        assert set(secret["stringData"]) == set(CREDENTIALS)
        try:
            pod.podman("secret", "create", cls.secret, "-", input=pod.k8s_secret_json(CREDENTIALS))
            started = time.monotonic()
            pod.podman("kube", "play", path)
            cls.wait_ready()
            cls.ready_seconds = time.monotonic() - started
            print(f"pod ready {cls.ready_seconds:.1f} s after `podman kube play`", flush=True)
        except BaseException:
            cls.tearDownClass()  # tearDownClass does not run after a failed setUpClass
            raise

    @classmethod
    def tearDownClass(cls):
        pod.podman("pod", "rm", "-f", "-t", "0", cls.pod, check=False)
        for v in (cls.volume, cls.tmp_volume):
            pod.podman("volume", "rm", "-f", v, check=False)
        pod.podman("secret", "rm", cls.secret, check=False)
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def wait_ready(cls):
        wait_until(lambda: os.path.exists(os.path.join(cls.sink_dir, "ready")), timeout=60, what="the sink")
        wait_until(lambda: cls.healthz()[0] == 200, timeout=60, interval=0.1, what="the relay's /healthz")

    @classmethod
    def healthz(cls):
        try:
            return http("GET", f"http://127.0.0.1:{cls.port}/healthz", timeout=2)
        except OSError as e:
            return 0, str(e)

    def log(self):
        return pod.podman("logs", self.relay).stdout

    def state(self, path=""):
        return os.path.join(pod.volume_path(self.volume), path)

    def send(self, campaign, *recipients):
        r = pod.podman("exec", self.app, "python3", "/tools/pod_sender.py", "send", campaign, *recipients,
                       check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout.strip()

    def received(self):
        """{recipient: [copy, ...]} of everything the sink accepted."""
        out = {}
        for path in sorted(glob.glob(os.path.join(self.sink_dir, "*.eml"))):
            with open(path, errors="replace") as f:
                text = f.read()
            rcpt = re.match(r"X-Sink-Rcpt: (\S+)", text).group(1)
            out.setdefault(rcpt, []).append(text)
        return out

    def copies_of(self, campaign):
        return {r: c for r, copies in self.received().items() for c in copies if f"Subject: {campaign}" in c}

    def verify(self, link):
        return pod.podman("exec", self.relay, "unsubrelay", "token", "verify", "-c", "/tmp/unsubrelay.yaml", link,
                          check=False)

    def test_1_image_and_start(self):
        config = pod.podman("image", "inspect", _images["relay"], "--format",
                            "{{.Config.User}} {{len .RootFS.Layers}} {{.Config.Entrypoint}} {{.Config.Volumes}}").stdout
        self.assertEqual(config.split()[:3], ["10001:10001", "2", "[/usr/lib/unsubrelay/entrypoint]"], config)
        self.assertIn(STATE, config)
        # Nothing but the relay, dash (the entrypoint's shell) and their libraries: no package manager, no docs.
        mount = pod.podman("image", "mount", _images["relay"]).stdout.strip()
        try:
            self.assertEqual(sorted(os.listdir(os.path.join(mount, "usr/bin"))), ["dash", "sh", "unsubrelay"])
            for absent in ("usr/bin/apt", "usr/bin/perl", "var/lib/apt", "usr/share/man", "var/cache/apt"):
                self.assertFalse(os.path.lexists(os.path.join(mount, absent)), absent)
            self.assertTrue(os.path.exists(os.path.join(mount, "etc/ssl/certs/ca-certificates.crt")))
        finally:
            pod.podman("image", "unmount", _images["relay"])
        # The relay runs as 10001 and made its key set in the volume on first start.
        pid = pod.inspect(self.relay, "{{.State.Pid}}")
        with open(f"/proc/{pid}/status") as f:
            self.assertRegex(f.read(), r"\nUid:\t10001\t10001\t10001\t10001\n")
        keys = os.stat(self.state("keys.yaml"))
        self.assertEqual((oct(keys.st_mode & 0o777), keys.st_uid), ("0o600", 10001))
        self.assertIn(f"made a new key set in {STATE}/keys.yaml", self.log())
        # Its log is on standard output, nothing on standard error.
        streams = pod.log_streams(self.relay)
        self.assertTrue(any("unsubrelay ready" in line for _, line in streams), streams)
        self.assertEqual({s for s, _ in streams}, {"stdout"}, streams)

    def test_2_probes_answer_as_kubelet_asks(self):
        relay = next(c for d in self.manifest if d["kind"] == "Deployment"
                     for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "unsubrelay")
        ip = pod.inspect(self.infra(), "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
        for probe in ("readinessProbe", "livenessProbe"):
            get = relay[probe]["httpGet"]
            self.assertEqual(get["port"], relay["ports"][0]["containerPort"])
            code, body = http("GET", f"http://{ip}:{get['port']}{get['path']}")
            self.assertEqual((code, body), (200, '{"spool":true,"status":"ok","store":true}'))

    def infra(self):
        return pod.podman("pod", "inspect", self.pod, "--format", "{{.InfraContainerID}}").stdout.strip()

    def test_3_each_recipient_gets_its_own_link(self):
        recipients = ["ann@example.org", "bob@example.org", "cy@example.org"]
        self.send("spring", *recipients)
        copies = wait_until(lambda: len(self.copies_of("spring")) == 3 and self.copies_of("spring"),
                            timeout=30, what="three copies at the sink")
        self.assertEqual(sorted(copies), recipients)
        links = {}
        for rcpt, text in copies.items():
            link = LINK.search(text).group(1)
            self.assertTrue(link.startswith(f"http://127.0.0.1:{self.port}/u/"), link)
            self.assertIn(f"Leave: {link}", text)  # the body's placeholder is that same link
            v = self.verify(link)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
            self.assertIn("spring", v.stdout)
            links[rcpt] = link
        self.assertEqual(len(set(links.values())), 3)
        type(self).links = links

    def test_4_one_click_through_the_published_port_suppresses(self):
        code, _ = http("POST", self.links["ann@example.org"], b"List-Unsubscribe=One-Click")
        self.assertEqual(code, 200)
        queue_id = self.send("summer", "ann@example.org", "bob@example.org", "cy@example.org")
        wait_until(lambda: re.search(rf"{queue_id}: to=<ann@example\.org>.*status=suppressed", self.log()),
                   timeout=30, what="ann suppressed")
        wait_until(lambda: len(self.copies_of("summer")) == 2, timeout=30, what="two copies of summer")
        self.assertEqual(sorted(self.copies_of("summer")), ["bob@example.org", "cy@example.org"])
        wait_until(lambda: f"{queue_id}: removed" in self.log(), what="the message done")

    def queued(self, queue_id):
        """The running relay's queue (`unsubrelay queue list` in its container): queue files and segments."""
        listing = pod.podman("exec", self.relay, "unsubrelay", "queue", "list", "-c", "/tmp/unsubrelay.yaml")
        self.assertEqual(listing.returncode, 0, listing.stderr)
        return queue_id in listing.stdout

    def on_disk(self, queue_id):
        """A stopped relay's message in the volume: a queue file, or a record in a segment (the default)."""
        if os.path.exists(self.state(f"spool/messages/{queue_id}")):
            return True
        d = self.state("spool/segments")
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                if queue_id.encode() in f.read():
                    return True
        return False

    def test_5_restarting_the_relay_keeps_spool_and_store(self):
        stuck = self.send("autumn", "late@defer.example")
        wait_until(lambda: re.search(rf"{stuck}: to=<late@defer\.example>.*status=deferred", self.log()),
                   timeout=30, what="the deferral")
        self.assertTrue(self.queued(stuck))
        with open(self.state("keys.yaml")) as f:
            keys = f.read()
        r = pod.podman("restart", "-t", "45", self.relay)
        wait_until(lambda: self.healthz()[0] == 200, timeout=60, interval=0.1, what="the restarted relay")
        log = self.log()
        self.assertRegex(log, r"signal 15: draining")
        self.assertEqual(log.count("unsubrelay ready"), 2, r.stdout)
        self.assertNotIn("made a new key set", log.rsplit("signal 15: draining", 1)[1])
        with open(self.state("keys.yaml")) as f:
            self.assertEqual(f.read(), keys)
        listing = pod.podman("exec", self.relay, "unsubrelay", "queue", "list", "-c", "/tmp/unsubrelay.yaml").stdout
        self.assertIn(stuck, listing)
        self.assertIn("late@defer.example", listing)
        # The store: ann stays suppressed; a link signed before the restart still works.
        queue_id = self.send("winter", "ann@example.org")
        wait_until(lambda: re.search(rf"{queue_id}: to=<ann@example\.org>.*status=suppressed", self.log()),
                   timeout=30, what="ann still suppressed")
        code, _ = http("POST", self.links["bob@example.org"], b"List-Unsubscribe=One-Click")
        self.assertEqual(code, 200)

    def test_6_sigterm_to_the_pod_drains_and_the_volume_delivers_after_restart(self):
        with pod.netns(pod.inspect(self.infra(), "{{.State.Pid}}")):
            s = smtplib.SMTP("127.0.0.1", 2525, timeout=60)
        s.ehlo("drain.test")
        s.mail("news@example.com")
        s.rcpt("dee@example.org")
        self.assertEqual(s.docmd("DATA")[0], 354)
        s.send(b"Subject: in flight\r\nX-Campaign-Id: drain\r\n\r\nfirst half\r\n")
        stop = subprocess.Popen(["podman", "pod", "stop", "-t", "60", self.pod], env=pod.ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The relay drains for our message; the upstream is gone meanwhile (the sink exits on SIGTERM).
            wait_until(lambda: "signal 15: draining (1 connection(s) open)" in self.log(), timeout=30,
                       what="the relay draining")
            wait_until(lambda: pod.inspect(self.sink, "{{.State.Status}}") == "exited", timeout=30,
                       what="the sink gone")
            self.assertEqual(pod.inspect(self.relay, "{{.State.Status}}"), "stopping")  # signalled, still at work
            s.send(b"second half\r\n.\r\n")
            code, text = s.getreply()
            self.assertEqual(code, 250, text)
            queue_id = text.decode().rsplit(" ", 1)[-1]
            s.close()
        finally:
            out, err = stop.communicate(timeout=120)
        self.assertEqual(stop.returncode, 0, out + err)
        self.assertEqual(pod.inspect(self.relay, "{{.State.ExitCode}}"), "0")
        log = self.log()
        self.assertRegex(log, rf"{queue_id}: to=<dee@example\.org>.*status=deferred")
        self.assertRegex(log, r"stopped: \d+ message\(s\) received")
        self.assertTrue(self.on_disk(queue_id))  # the relay is stopped: its bytes in the volume
        # The upstream first, then the pod: the relay recovers the message from the volume and delivers it.
        os.remove(os.path.join(self.sink_dir, "ready"))
        pod.podman("start", self.sink)
        wait_until(lambda: os.path.exists(os.path.join(self.sink_dir, "ready")), timeout=60, what="the sink back")
        pod.podman("pod", "start", self.pod)
        copy = wait_until(lambda: self.copies_of("in flight").get("dee@example.org"), timeout=60,
                          what="the drained message delivered after the restart")
        self.assertIn("first half\r\nsecond half", copy.replace("\n", "\r\n").replace("\r\r", "\r"))
        wait_until(lambda: re.search(rf"{queue_id}: to=<dee@example\.org>.*status=sent", self.log()), timeout=30,
                   what="the delivery in the log")
        wait_until(lambda: not self.queued(queue_id), what="the message gone from the queue")


class EntrypointTest(unittest.TestCase):
    """The image's entrypoint alone: bad settings stop it with 78 (EX_CONFIG) and a line
    naming the variable; a mounted file is the configuration."""

    def test_bad_settings_are_refused_by_name(self):
        cases = [
            ({"UNSUBRELAY_BASE_URL": "http://x y"}, "UNSUBRELAY_BASE_URL may hold only"),
            ({"UNSUBRELAY_UPSTREAM_HOST": 'a"b'}, "UNSUBRELAY_UPSTREAM_HOST may hold only"),
            ({"UNSUBRELAY_UPSTREAM_KIND": "ses"}, "UNSUBRELAY_UPSTREAM_KIND=ses needs UNSUBRELAY_UPSTREAM_HOST"),
            ({"UNSUBRELAY_UPSTREAM_KIND": "carrier-pigeon"}, "UNSUBRELAY_UPSTREAM_KIND is smtp, ses or directory"),
            ({"UNSUBRELAY_UPSTREAM_HOST": "h", "UNSUBRELAY_UPSTREAM_PASSWORD": "x",
              "UNSUBRELAY_UPSTREAM_PASSWORD_FILE": "/y"}, "set UNSUBRELAY_UPSTREAM_PASSWORD or"),
            ({"UNSUBRELAY_CONFIG": "/nope.yaml"}, "UNSUBRELAY_CONFIG=/nope.yaml: no such file"),
            # The relay's own check: a username without a password.
            ({"UNSUBRELAY_UPSTREAM_HOST": "h", "UNSUBRELAY_UPSTREAM_USERNAME": "u"},
             "upstream.password_file: is required with username"),
        ]
        # One container runs the entrypoint once per case (a container start costs seconds on a busy machine).
        script = "".join(
            f"{' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())} /usr/lib/unsubrelay/entrypoint; "
            f"echo \"@@ $?\"; " for env, _ in cases)
        r = pod.podman("run", "--rm", "--entrypoint", "/bin/sh", _images["relay"], "-c", script, timeout=60)
        outputs = re.split(r"^@@ (\d+)\n", r.stdout, flags=re.M)
        self.assertEqual(len(outputs), 2 * len(cases) + 1, r.stdout + r.stderr)
        for (env, message), text, status in zip(cases, outputs[0::2], outputs[1::2]):
            self.assertEqual(status, "78", (env, text))
            self.assertIn(message, text, env)

    def test_a_mounted_file_is_the_configuration(self):
        with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
            conf = os.path.join(d, "unsubrelay.yaml")
            with open(conf, "w") as f:
                f.write(f"upstream: {{ kind: directory, directory: {STATE}/mounted-outbox }}\n"
                        f"unsubscribe: {{ keys_file: {STATE}/keys.yaml }}\n"
                        f"spool: {{ path: {STATE}/spool }}\nstore: {{ path: {STATE}/unsubrelay.db }}\n")
            os.chmod(conf, 0o644)
            mount = ["-v", f"{conf}:/etc/unsubrelay/unsubrelay.yaml:ro"]
            r = pod.podman("run", "--rm", *mount, "-e", "UNSUBRELAY_BASE_URL=https://x.example", _images["relay"],
                           check=False, timeout=60)
            self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
            self.assertIn("UNSUBRELAY_BASE_URL is set, but the mounted /etc/unsubrelay/unsubrelay.yaml", r.stdout)
            name = f"unsubrelay-mounted-{os.getpid()}"
            pod.podman("run", "-d", "--name", name, *mount, _images["relay"])
            try:
                def ready():
                    if pod.inspect(name, "{{.State.Status}}") == "exited":
                        raise AssertionError(pod.podman("logs", name).stdout)
                    return "unsubrelay ready" in pod.podman("logs", name).stdout
                wait_until(ready, timeout=30, what="the relay on the mounted file")
                log = pod.podman("logs", name).stdout
                self.assertIn(f"upstream directory {STATE}/mounted-outbox", log)
                pod.podman("stop", "-t", "45", name)
                self.assertEqual(pod.inspect(name, "{{.State.ExitCode}}"), "0")
            finally:
                pod.podman("rm", "-f", "-v", name, check=False)


def adapt_compose(compose, image, tools, port, sink_dir):
    """deploy/compose.yaml as the test runs it: the same changes as adapt_manifest
    (the sender as the app, a sink sharing the relay's network, links to the
    published port on 127.0.0.1); the credentials still come from .env."""
    services = compose["services"]
    assert set(services) == {"unsubrelay", "app"}, services.keys()
    relay, app = services["unsubrelay"], services["app"]
    assert relay["environment"]["UNSUBRELAY_UPSTREAM_PASSWORD"] == "${SES_SMTP_PASSWORD}"
    assert app["network_mode"] == "service:unsubrelay"
    relay.update(image=image, ports=[f"127.0.0.1:{port}:8080"])
    relay["environment"].update(UNSUBRELAY_BASE_URL=f"http://127.0.0.1:{port}", UNSUBRELAY_UPSTREAM_KIND="smtp",
                                UNSUBRELAY_UPSTREAM_HOST="127.0.0.1", UNSUBRELAY_UPSTREAM_PORT=str(SINK_PORT),
                                UNSUBRELAY_UPSTREAM_TLS="none")
    tools_volume = f"{HERE}:/tools:ro"
    app.update(image=tools, command=["python3", "/tools/pod_sender.py", "idle"], volumes=[tools_volume])
    services["sink"] = {
        "image": tools, "network_mode": "service:unsubrelay", "depends_on": ["unsubrelay"],
        "command": ["python3", "/tools/pod_sink.py"], "volumes": [tools_volume, f"{sink_dir}:/sink"],
        "environment": {"SINK_PORT": str(SINK_PORT), "SINK_DIR": "/sink", "SINK_USER": CREDENTIALS["username"],
                        "SINK_PASSWORD": CREDENTIALS["password"]}}
    return compose


class ComposeTest(unittest.TestCase):
    """deploy/compose.yaml, run by docker-compose (Debian's 1.29) against podman's Docker API
    (`podman system service`); Debian 12's podman-compose cannot join a service's network."""

    @classmethod
    def setUpClass(cls):
        cls.project = f"unsubrelay{os.getpid()}"
        cls.dir = tempfile.mkdtemp(prefix="unsubrelay-compose-", dir="/var/tmp")
        cls.sink_dir = os.path.join(cls.dir, "sink")
        os.makedirs(cls.sink_dir)
        cls.port = free_port()
        with open(COMPOSE) as f:
            compose = adapt_compose(yaml.safe_load(f), _images["relay"], _images["tools"], cls.port, cls.sink_dir)
        with open(os.path.join(cls.dir, "compose.yaml"), "w") as f:
            yaml.safe_dump(compose, f)
        with open(os.path.join(cls.dir, ".env"), "w") as f:
            f.write(f"SES_SMTP_USERNAME={CREDENTIALS['username']}\nSES_SMTP_PASSWORD={CREDENTIALS['password']}\n")
        socket_path = os.path.join(cls.dir, "podman.sock")
        cls.service_log = open(os.path.join(cls.dir, "service.log"), "w")
        cls.service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
                                       env=pod.ENV, stdout=cls.service_log, stderr=subprocess.STDOUT)
        cls.env = {**pod.ENV, "DOCKER_HOST": f"unix://{socket_path}"}
        try:
            wait_until(lambda: os.path.exists(socket_path), timeout=30, what="podman's API socket")
            cls.compose("up", "-d")
            wait_until(lambda: os.path.exists(os.path.join(cls.sink_dir, "ready")), timeout=60, what="the sink")
            wait_until(lambda: cls.healthz() == 200, timeout=60, interval=0.1, what="the relay's /healthz")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def compose(cls, *args, check=True):
        r = subprocess.run(["docker-compose", "-p", cls.project, "-f", "compose.yaml", *args], cwd=cls.dir,
                           env=cls.env, capture_output=True, text=True, timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r

    @classmethod
    def healthz(cls):
        try:
            return http("GET", f"http://127.0.0.1:{cls.port}/healthz", timeout=2)[0]
        except OSError:
            return 0

    @classmethod
    def tearDownClass(cls):
        cls.compose("down", "-v", check=False)
        # down removes in parallel, and podman refuses to remove the relay while the app still joins its network.
        names = pod.podman("ps", "-a", "--filter", f"label=com.docker.compose.project={cls.project}",
                           "--format", "{{.Names}}", check=False).stdout.split()
        if names:
            pod.podman("rm", "-f", "-t", "0", *names, check=False)
        pod.podman("volume", "rm", "-f", f"{cls.project}_unsubrelay-state", check=False)
        pod.podman("network", "rm", "-f", f"{cls.project}_default", check=False)
        cls.service.terminate()
        cls.service.wait(30)
        cls.service_log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_campaign_one_click_and_a_drained_stop(self):
        relay, app = f"{self.project}_unsubrelay_1", f"{self.project}_app_1"
        r = pod.podman("exec", app, "python3", "/tools/pod_sender.py", "send", "spring", "ann@example.org",
                       check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        path = wait_until(lambda: glob.glob(os.path.join(self.sink_dir, "*.eml")), timeout=30, what="the copy")[0]
        with open(path) as f:
            link = LINK.search(f.read()).group(1)
        self.assertTrue(link.startswith(f"http://127.0.0.1:{self.port}/u/"), link)
        self.assertEqual(http("POST", link, b"List-Unsubscribe=One-Click")[0], 200)
        self.assertEqual(pod.inspect(relay, "{{.HostConfig.ReadonlyRootfs}}"), "true")
        self.compose("stop")
        self.assertEqual(pod.inspect(relay, "{{.State.ExitCode}}"), "0")
        log = pod.podman("logs", relay).stdout
        self.assertIn("signal 15: draining", log)
        self.assertRegex(log, r"stopped: 1 message\(s\) received, 1 delivered")


if __name__ == "__main__":
    unittest.main()
