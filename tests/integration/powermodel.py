"""What powerfs's model random keeps of the unsynced changes at a power cut.

Pure functions over powerfs.Inode (no FUSE here), so the choices can be read
and checked on their own. A node's `log` holds its changes since its last sync,
in order:
  file:      ("write", offset, bytes, size after) and ("size", new size)
  directory: ("set", name, inode) and ("del", name)
The durable view (`durable`, `durable_entries`) is what was synced.
"""

from collections import defaultdict

BLOCK = 4096             # a page: what writeback writes whole, as of one moment
FILE_WRITE_BACK = 256    # unsynced changes of a file before the kernel writes the older half back
DIRECTORY_WRITE_BACK = 1024


def apply_file_change(data, change):
    """One logged change applied to a bytearray (a file's durable bytes)."""
    if change[0] == "write":
        _, offset, payload, _ = change
        if offset > len(data):
            data.extend(b"\0" * (offset - len(data)))
        data[offset:offset + len(payload)] = payload
    else:
        size = change[1]
        del data[size:]
        data.extend(b"\0" * (size - len(data)))


def apply_entry_change(entries, change):
    if change[0] == "set":
        entries[change[1]] = change[2]
    else:
        entries.pop(change[1], None)


def write_back(node):
    """While the power is on: a node with many unsynced changes gets its older
    half made durable, as the kernel's writeback would. True when it did."""
    limit = FILE_WRITE_BACK if not node.is_dir else DIRECTORY_WRITE_BACK
    if len(node.log) <= limit:
        return False
    half, node.log = node.log[:limit // 2], node.log[limit // 2:]
    for change in half:
        if node.is_dir:
            apply_entry_change(node.durable_entries, change)
        else:
            apply_file_change(node.durable, change)
    return True


def settle_directory(node, rng, stats):
    """The directory's durable entries become those as of a random instant since its
    last fsync: a prefix of its changes, in order."""
    kept = rng.randint(0, len(node.log))
    for change in node.log[:kept]:
        apply_entry_change(node.durable_entries, change)
    stats["entry_changes_kept"] += kept
    stats["entry_changes_dropped"] += len(node.log) - kept
    node.log = []


def blocks_touched(log, sizes):
    """For each block, the indexes of the changes that altered its bytes. A write
    alters the blocks it covers; a shrink zeroes the blocks past the new size (an
    extension alters none: bytes past a file's size already read as zeros here)."""
    touched = defaultdict(list)
    for i, change in enumerate(log):
        if change[0] == "write":
            start, end = change[1], change[1] + len(change[2])
        elif change[1] < sizes[i]:
            start, end = change[1], sizes[i]
        else:
            continue
        for block in range(start // BLOCK, (end - 1) // BLOCK + 1):
            touched[block].append(i)
    return touched


def block_as_of(base, log, block, changes):
    """The block's bytes after `changes` (indexes into log), starting from the durable bytes."""
    lo = block * BLOCK
    content = bytearray(base[lo:lo + BLOCK])
    content.extend(b"\0" * (BLOCK - len(content)))
    for i in changes:
        change = log[i]
        if change[0] == "write":
            offset, payload = change[1], change[2]
            start, end = max(offset, lo), min(offset + len(payload), lo + BLOCK)
            content[start - lo:end - lo] = payload[start - offset:end - offset]
        else:
            start = max(change[1], lo)
            content[start - lo:] = b"\0" * (lo + BLOCK - start)
    return content


def settle_file(node, rng, stats):
    """The file's durable bytes become what a cut leaves of its unsynced changes:
    none (one in three files), all (one in three), or its size as of one random
    instant and each block it changed as of its own random instant."""
    log = node.log
    node.log = []
    if not log:
        return
    sizes = [len(node.durable)]
    for change in log:
        sizes.append(change[3] if change[0] == "write" else change[1])
    writes = [i for i, change in enumerate(log) if change[0] == "write"]
    how = rng.randrange(3)
    if how == 0:
        stats["writes_dropped"] += len(writes)
        return
    if how == 1:
        for change in log:
            apply_file_change(node.durable, change)
        stats["writes_kept"] += len(writes)
        return
    size = sizes[rng.randint(0, len(log))]
    touched = blocks_touched(log, sizes)
    kept_in = {block: rng.randint(0, len(changes)) for block, changes in sorted(touched.items())}
    result = bytearray(node.durable[:size])
    result.extend(b"\0" * (size - len(result)))
    for block, changes in touched.items():
        if block * BLOCK < size:
            content = block_as_of(node.durable, log, block, changes[:kept_in[block]])
            end = min(block * BLOCK + BLOCK, size)
            result[block * BLOCK:end] = content[:end - block * BLOCK]
    for i in writes:
        blocks = [b for b in blocks_touched([log[i]], [0]).keys()]
        kept = sum(1 for b in blocks if i in touched[b][:kept_in[b]])
        stats["writes_kept" if kept == len(blocks) else "writes_dropped" if kept == 0 else "writes_torn"] += 1
    node.durable = result
