"""PostgreSQL servers for the fleet fault tests: a primary with a streaming
replica, failover, and PgBouncer. Debian's postgresql (15) and pgbouncer
packages; servers run as the postgres account when the tests run as root.

    with Cluster(directory, synchronous=True) as c:   # primary + replica, both running
        c.url("fleet")        # postgresql://unsubrelay@127.0.0.1:P1,127.0.0.1:P2/fleet?target_session_attrs=read-write
        c.failover()          # promote the replica, then stop the old primary (immediate)
        c.rebuild_standby()   # the old primary's port gets a new replica of the new primary
"""

import glob
import os
import shutil
import subprocess
import time

from relay import free_port, wait_until

PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1] if glob.glob("/usr/lib/postgresql/*/bin") else None
USER = "unsubrelay"


def as_postgres(argv, **kw):
    """PostgreSQL refuses to run as root: use the account Debian's package made."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--"] + argv
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def check(result, what):
    if result.returncode != 0:
        raise AssertionError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


def let_postgres_in(directory):
    """The postgres account must be able to reach its directories under a 0700 mkdtemp one."""
    os.chmod(directory, os.stat(directory).st_mode | 0o011)


def need_postgres():
    if not PGBIN:
        raise AssertionError("these tests need Debian's postgresql package (scripts/install-deps.sh installs it)")


def psql(port, sql, database="postgres"):
    return check(subprocess.run(["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-U", USER,
                                 "-d", database, "-c", sql], capture_output=True, text=True, timeout=60),
                 f"psql {sql!r}").strip()


class Server:
    def __init__(self, directory, name):
        self.dir = os.path.join(directory, name)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.log = os.path.join(self.dir, "server.log")

    def start(self):
        check(as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"]),
              f"start PostgreSQL on port {self.port}")

    def stop(self, mode="fast"):
        as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "stop"])

    def running(self):
        return as_postgres([f"{PGBIN}/pg_ctl", "-D", self.data, "status"]).returncode == 0


class Cluster:
    """A primary and a streaming replica on two loopback ports."""

    def __init__(self, directory, synchronous=True):
        need_postgres()
        let_postgres_in(directory)
        self.root = os.path.join(directory, "pg")
        os.makedirs(self.root)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self.synchronous = synchronous
        self.primary = Server(self.root, "a")
        self.standby = Server(self.root, "b")
        self.generation = 0

    def __enter__(self):
        p = self.primary
        os.makedirs(p.dir)
        self._own(p.dir)
        check(as_postgres([f"{PGBIN}/initdb", "-D", p.data, "-A", "trust", "-U", USER]), "initdb")
        with open(os.path.join(p.data, "postgresql.conf"), "a") as f:
            f.write(self._settings())
        p.start()
        self.make_standby(self.standby)
        return self

    def __exit__(self, *exc):
        for s in (self.primary, self.standby):
            s.stop("immediate")

    def _own(self, path):
        if os.geteuid() == 0:
            shutil.chown(path, "postgres")

    def _settings(self):
        # Synchronous replication: a COMMIT returns only once the replica has the
        # WAL, so a promoted replica has every transaction a client was told of.
        sync = "synchronous_standby_names = '*'\n" if self.synchronous else ""
        return ("wal_level = replica\nmax_wal_senders = 10\nwal_keep_size = 64MB\nfsync = off\n"
                "full_page_writes = off\n" + sync)

    def make_standby(self, server):
        """A fresh replica of the current primary, streaming, on server's port."""
        if os.path.exists(server.dir):
            shutil.rmtree(server.dir)
        os.makedirs(server.dir)
        self._own(server.dir)
        check(as_postgres([f"{PGBIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", USER,
                           "-D", server.data, "-R", "-X", "stream", "-c", "fast"]), "pg_basebackup")
        server.start()
        wait_until(lambda: psql(self.primary.port, "SELECT count(*) FROM pg_stat_replication WHERE state = "
                                "'streaming'") == "1", timeout=60, what="the replica to stream")

    def url(self, database):
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://{USER}@{hosts}/{database}?target_session_attrs=read-write&connect_timeout=3"

    def create_database(self, name):
        psql(self.primary.port, f"CREATE DATABASE {name}")

    def failover(self, stop_mode="immediate"):
        """Promote the replica, then stop the old primary: returns seconds taken.

        With synchronous replication the new primary would wait for a synchronous
        replica it does not have, and every COMMIT would hang: as an operator (or
        Patroni) does, it runs without one until a new replica streams."""
        start = time.monotonic()
        check(as_postgres([f"{PGBIN}/pg_ctl", "-D", self.standby.data, "-w", "promote"]), "pg_ctl promote")
        self.primary.stop(stop_mode)
        self.primary, self.standby = self.standby, self.primary
        if self.synchronous:
            self.set_synchronous("")
        self.generation += 1
        return time.monotonic() - start

    def set_synchronous(self, names):
        psql(self.primary.port, f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
        psql(self.primary.port, "SELECT pg_reload_conf()")

    def rebuild_standby(self):
        """The old primary's place gets a new replica of the new primary (what an operator
        does with pg_basebackup, or pg_rewind, after a failover); synchronous again."""
        self.make_standby(self.standby)
        if self.synchronous:
            self.set_synchronous("*")
            wait_until(lambda: psql(self.primary.port, "SELECT sync_state FROM pg_stat_replication") == "sync",
                       timeout=60, what="the new replica to be synchronous")


class PgBouncer:
    """PgBouncer 1.18 in front of one server, in transaction pooling mode."""

    def __init__(self, directory, server_port, pool_size=2):
        let_postgres_in(directory)
        self.dir = os.path.join(directory, "pgbouncer")
        os.makedirs(self.dir)
        self._own = os.geteuid() == 0
        self.port = free_port()
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write(f'"{USER}" ""\n')
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 200
admin_users = {USER}
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        if self._own:
            for name in os.listdir(self.dir):
                shutil.chown(os.path.join(self.dir, name), "postgres")
            shutil.chown(self.dir, "postgres")
        self.proc = None

    def __enter__(self):
        argv = ["pgbouncer", self.ini]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._ready(), timeout=30, what="pgbouncer to listen")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"pgbouncer exited: {self.read_log()}")
        return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", "pgbouncer",
                               "-c", "SHOW VERSION"], capture_output=True).returncode == 0

    def show(self, what):
        return psql(self.port, f"SHOW {what}", database="pgbouncer")

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
