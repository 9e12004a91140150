"""powerfs: a FUSE file system that keeps only what was synced, and can lose power.

    /usr/bin/python3 powerfs.py MOUNTPOINT CONTROL_SOCKET [--model drop|random] [--seed N]

Everything lives in memory. The file system keeps two views: what programs see
now (the page cache, in a real machine) and what would survive a power cut
(the disk). Two models of what a cut keeps (docs/faults.md, "Power loss"):

drop (the default): nothing that was not synced survives, the pessimistic end
of what POSIX allows.
- A file's data and size are durable only as of its last fsync or fdatasync
  (both count the same: fdatasync must make the size durable too). Writes after
  that are lost on a cut.
- A directory's entries (create, mkdir, rename, link, unlink, rmdir) are durable
  only as of the directory's last fsync. Each directory is on its own: a rename
  from a/ to b/ made durable by fsync of b/ alone leaves the name in a/ as well
  (if a/ had it durably) after a cut. An fsync of a file never makes its name
  durable.
- A file that a durable entry names but that was never synced comes back
  empty. Modes, owners and times are not modelled as lost (kept as they are).

random: what was synced survives as in drop; of what was not, a random part
does, as when the kernel wrote some dirty pages and directory blocks back
before the cut (ext4 data=ordered does so every few seconds, without fsync),
chosen with the seed:
- Each file, independently, keeps none of its unsynced writes (as in drop),
  all of them, or a mix: its size is its size at one random instant since its
  last sync, and each 4 KiB block it changed holds its content at its own
  random instant (a block is written back whole, as of one moment; blocks in no
  particular order). So a write may survive whole, not at all, or torn at block
  boundaries, and a later write may survive where an earlier one did not.
  Bytes within the size that no surviving write reached read as zeros.
- Each directory, independently, keeps its entry changes up to a random
  instant since its last fsync (its changes in order, a prefix of them). A
  rename between two directories may thus survive in both, in neither (then
  the file is gone), or in one.
- Unsynced changes are also written back at random while the power is on: a
  file or directory with many unsynced changes (256 and 1,024) has its older
  half made durable, as the kernel's writeback would.

The control socket takes one command per line and answers one line:
  arm N     cut the power after N more operations of any kind ("ok")
  cut       cut the power now
  on        power on again: the live view becomes what survived; "ok"
  state     "live" | "dead"
  readerr on|off   every read() fails with EIO (a failing sector), or no longer
  stats     counters as JSON
While the power is cut every operation fails with EIO and changes nothing, until
`on`. Kernel caches: entries and attributes are never cached (timeouts 0) and
each open drops the file's cached pages, so programs started after `on` read
what survived. The harness (powerloss.py) kills the programs using the file
system and calls syncfs on it before `on`, so no dirty page of the old run
reaches the new one.
"""

import argparse
import errno
import itertools
import json
import os
import random
import stat
import time

import pyfuse3
import trio

from powermodel import settle_directory, settle_file, write_back

ROOT = pyfuse3.ROOT_INODE


class Inode:
    def __init__(self, ino, mode, uid=0, gid=0):
        self.ino, self.mode, self.uid, self.gid = ino, mode, uid, gid
        now = time.time_ns()
        self.atime = self.mtime = self.ctime = now
        if stat.S_ISDIR(mode):
            self.entries = {}          # name (bytes) -> ino, what programs see
            self.durable_entries = {}  # as of the last fsync of this directory
        else:
            self.data = bytearray()
            self.durable = bytearray()  # as of the last fsync/fdatasync
            self.dirty = []             # (start, end) ranges changed since
        self.log = []  # model random: the changes since the last sync, in order (powermodel.py)

    @property
    def is_dir(self):
        return stat.S_ISDIR(self.mode)


class PowerFS(pyfuse3.Operations):
    def __init__(self, model="drop", seed=0):
        super().__init__()
        self.next_ino = itertools.count(ROOT + 1)
        self.inodes = {ROOT: Inode(ROOT, stat.S_IFDIR | 0o755)}
        self.live = True
        self.armed = None  # operations left before the power cut
        self.read_errors = False
        self.model, self.seed = model, seed
        self.rng = random.Random(seed)
        self.stats = {"ops": 0, "fsync": 0, "fsyncdir": 0, "cuts": 0, "dropped_write_ranges": 0,
                      "dropped_entry_changes": 0, "files": 0,
                      # model random: unsynced writes kept whole, dropped, torn; entry changes kept, dropped
                      "writes_kept": 0, "writes_dropped": 0, "writes_torn": 0, "entry_changes_kept": 0,
                      "entry_changes_dropped": 0, "written_back": 0}

    # ---- power ----------------------------------------------------------

    def op(self, ino=None):
        """Every operation starts here: fails while the power is cut, counts down an armed cut.
        The root directory can still be opened while dead, for the harness's syncfs."""
        if not self.live:
            if ino == ROOT:
                return
            raise pyfuse3.FUSEError(errno.EIO)
        self.stats["ops"] += 1
        if self.armed is not None:
            self.armed -= 1
            if self.armed <= 0:
                self.cut()
                raise pyfuse3.FUSEError(errno.EIO)

    def cut(self):
        self.live = False
        self.armed = None
        self.stats["cuts"] += 1

    def power_on(self):
        """The live view becomes what survived: every directory's durable entries from
        the root down, every file as of its last sync (and, in model random, a random
        part of what came after)."""
        if self.model == "random":
            for ino in sorted(self.inodes):
                node = self.inodes[ino]
                (settle_directory if node.is_dir else settle_file)(node, self.rng, self.stats)
        survived, todo = {ROOT}, [ROOT]
        while todo:
            node = self.inodes[todo.pop()]
            if node.is_dir:
                if node.entries != node.durable_entries:
                    self.stats["dropped_entry_changes"] += 1
                node.entries = dict(node.durable_entries)
                for child in node.entries.values():
                    if child not in survived:
                        survived.add(child)
                        todo.append(child)
            else:
                if node.dirty or len(node.data) != len(node.durable):
                    self.stats["dropped_write_ranges"] += len(node.dirty) or 1
                node.data = bytearray(node.durable)
                node.dirty = []
            node.log = []
        self.inodes = {ino: n for ino, n in self.inodes.items() if ino in survived}
        self.live = True

    # ---- helpers ---------------------------------------------------------

    def node(self, ino):
        try:
            return self.inodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def attrs(self, node):
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = 0
        a.attr_timeout = 0
        a.st_mode = node.mode
        a.st_nlink = 2 if node.is_dir else 1  # hard links are allowed but not counted
        a.st_uid, a.st_gid = node.uid, node.gid
        a.st_rdev = 0
        a.st_size = 4096 if node.is_dir else len(node.data)
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = node.atime, node.mtime, node.ctime
        return a

    def directory(self, ino):
        node = self.node(ino)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def child(self, parent, name):
        try:
            return self.node(self.directory(parent).entries[name])
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def new_node(self, parent, name, mode, ctx):
        d = self.directory(parent)
        if name in d.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = Inode(next(self.next_ino), mode, ctx.uid, ctx.gid)
        self.inodes[node.ino] = node
        self.enter(d, name, node.ino)
        d.mtime = d.ctime = time.time_ns()
        self.stats["files"] += 1
        return node

    def changed(self, node, change):
        """Model random: the change joins the node's unsynced ones (powermodel.py)."""
        if self.model == "random":
            node.log.append(change)
            if write_back(node):
                self.stats["written_back"] += 1

    def resize(self, node, size):
        old = len(node.data)
        if size < old:
            del node.data[size:]
        else:
            node.data.extend(b"\0" * (size - old))
        if size != old:
            node.dirty.append((min(size, old), max(size, old)))
            self.changed(node, ("size", size))

    def enter(self, d, name, ino):
        d.entries[name] = ino
        self.changed(d, ("set", name, ino))

    def leave(self, d, name):
        del d.entries[name]
        self.changed(d, ("del", name))

    # ---- operations -------------------------------------------------------

    async def lookup(self, parent, name, ctx=None):
        self.op()
        if name == b".":
            return self.attrs(self.directory(parent))
        if name == b"..":
            return self.attrs(self.node(ROOT))
        return self.attrs(self.child(parent, name))

    async def getattr(self, ino, ctx=None):
        self.op(ino)
        return self.attrs(self.node(ino))

    async def setattr(self, ino, attr, fields, fh, ctx):
        self.op()
        node = self.node(ino)
        if fields.update_size:
            if node.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            self.resize(node, attr.st_size)
        if fields.update_mode:
            node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime = attr.st_mtime_ns
        node.ctime = time.time_ns()
        return self.attrs(node)

    async def forget(self, inode_list):
        pass  # inodes are kept while any live or durable entry names them

    async def mkdir(self, parent, name, mode, ctx):
        self.op()
        return self.attrs(self.new_node(parent, name, stat.S_IFDIR | (mode & 0o7777), ctx))

    async def create(self, parent, name, mode, flags, ctx):
        self.op()
        node = self.new_node(parent, name, stat.S_IFREG | (mode & 0o7777), ctx)
        return pyfuse3.FileInfo(fh=node.ino), self.attrs(node)

    async def mknod(self, parent, name, mode, rdev, ctx):
        self.op()
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)
        return self.attrs(self.new_node(parent, name, mode, ctx))

    async def open(self, ino, flags, ctx):
        self.op()
        node = self.node(ino)
        if flags & os.O_TRUNC:
            self.resize(node, 0)
        return pyfuse3.FileInfo(fh=ino, keep_cache=False)

    async def read(self, fh, off, size):
        self.op()
        if self.read_errors:
            raise pyfuse3.FUSEError(errno.EIO)
        return bytes(self.node(fh).data[off:off + size])

    async def write(self, fh, off, buf):
        self.op()
        node = self.node(fh)
        if off > len(node.data):
            self.resize(node, off)
        node.data[off:off + len(buf)] = buf
        node.dirty.append((off, off + len(buf)))
        if buf:
            self.changed(node, ("write", off, bytes(buf), len(node.data)))
        node.mtime = node.ctime = time.time_ns()
        return len(buf)

    async def fsync(self, fh, datasync):
        self.op()
        node = self.node(fh)
        size = len(node.data)
        del node.durable[size:]
        node.durable.extend(b"\0" * (size - len(node.durable)))
        for start, end in node.dirty:
            end = min(end, size)
            if start < end:
                node.durable[start:end] = node.data[start:end]
        node.dirty = []
        node.log = []
        self.stats["fsync"] += 1

    async def flush(self, fh):
        self.op()

    async def release(self, fh):
        pass  # a close after a cut must not fail

    async def opendir(self, ino, ctx):
        self.op(ino)
        self.directory(ino)
        return ino

    async def readdir(self, fh, start_id, token):
        self.op()
        entries = sorted(self.directory(fh).entries.items())
        for i, (name, ino) in enumerate(entries[start_id:], start_id + 1):
            if ino in self.inodes and not pyfuse3.readdir_reply(token, name, self.attrs(self.inodes[ino]), i):
                break

    async def releasedir(self, fh):
        pass

    async def fsyncdir(self, fh, datasync):
        self.op()
        d = self.directory(fh)
        d.durable_entries = dict(d.entries)
        d.log = []
        self.stats["fsyncdir"] += 1

    async def unlink(self, parent, name, ctx):
        self.op()
        node = self.child(parent, name)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        self.leave(self.directory(parent), name)

    async def rmdir(self, parent, name, ctx):
        self.op()
        node = self.child(parent, name)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if node.entries:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        self.leave(self.directory(parent), name)

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        self.op()
        node = self.child(parent_old, name_old)
        src, dst = self.directory(parent_old), self.directory(parent_new)
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        if name_new in dst.entries:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise pyfuse3.FUSEError(errno.EEXIST)
            target = self.node(dst.entries[name_new])
            if target.is_dir and (not node.is_dir or target.entries):
                raise pyfuse3.FUSEError(errno.ENOTEMPTY if node.is_dir else errno.EISDIR)
        self.leave(src, name_old)
        self.enter(dst, name_new, node.ino)

    async def link(self, ino, new_parent, new_name, ctx):
        self.op()
        node = self.node(ino)
        d = self.directory(new_parent)
        if new_name in d.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        self.enter(d, new_name, ino)
        return self.attrs(node)

    async def statfs(self, ctx):
        self.op()
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 1 << 20
        s.f_files = s.f_ffree = s.f_favail = 1 << 20
        s.f_namemax = 255
        return s


async def control(fs, path):
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(8)
    async with trio.open_nursery() as nursery:
        while True:
            conn, _ = await sock.accept()
            nursery.start_soon(serve_client, fs, trio.SocketStream(conn))


async def serve_client(fs, stream):
    buf = b""
    async with stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                await stream.send_all((command(fs, line.decode().split()) + "\n").encode())


def command(fs, words):
    if words[:1] == ["arm"] and len(words) == 2:
        fs.armed = int(words[1])
        return "ok"
    if words[:1] == ["readerr"] and words[1:] in (["on"], ["off"]):
        fs.read_errors = words[1] == "on"
        return "ok"
    if words == ["cut"]:
        fs.cut()
        return "ok"
    if words == ["on"]:
        fs.power_on()
        return "ok"
    if words == ["state"]:
        return "live" if fs.live else "dead"
    if words == ["stats"]:
        return json.dumps({**fs.stats, "live": fs.live, "inodes": len(fs.inodes), "model": fs.model,
                           "seed": fs.seed})
    return "error: unknown command"


def main():
    parser = argparse.ArgumentParser(description="a FUSE file system that can lose power")
    parser.add_argument("mountpoint")
    parser.add_argument("control_socket")
    parser.add_argument("--model", choices=("drop", "random"), default="drop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mountpoint, control_path = args.mountpoint, args.control_socket
    fs = PowerFS(args.model, args.seed)
    options = set(pyfuse3.default_options)
    options.add("fsname=powerfs")
    pyfuse3.init(fs, mountpoint, options)

    async def run():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(control, fs, control_path)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    try:
        trio.run(run)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == "__main__":
    main()
