"""Deterministic source trees for backup, restore and interop tests.

A tree holds every file type rdiff-backup knows (regular files, empty and multi-block binary
ones included, directories, symlinks including a dangling one, hard-link groups, a FIFO, a unix
socket, and char/block devices when running as root), odd names (newline, backslash, non-UTF-8
bytes, a 255-byte name, ':' and ';', upper case, a leading dash, spaces, a nested
``rdiff-backup-data``), odd modes (setuid, setgid, sticky), chosen mtimes (one before 1970),
foreign uid/gid (as root), ``user.*`` extended attributes and POSIX ACLs (when ``setfacl``
exists).

Usage::

    build_tree(src, seed=1)            # create a fresh tree in src (must not exist)
    before = scan(src)                 # what a backup taken now must record
    changes = mutate_tree(src, seed=2) # modifications, deletions, additions, type and link changes
    after = scan(src)

Everything is a function of the seed: two trees built (and mutated) with the same seeds have the
same names, types, contents, modes, owners, mtimes and link structure. ``scan`` reads the real
file system (``lstat``), so what it returns is the truth whatever the generator did.

Paths are byte strings throughout; an *index* is a tuple of name components, ``()`` for the
root, sorted exactly like rdiff-backup sorts its metadata records.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

Index = tuple[bytes, ...]

IS_ROOT = os.geteuid() == 0
SETFACL = shutil.which("setfacl")

#: mtimes the generator chooses lie in this range (plus one deliberate pre-1970 time).
MTIME_LOW = 1_400_000_000
MTIME_HIGH = 1_690_000_000
PRE_EPOCH_MTIME = -86_400 * 400

#: Foreign ids given to some entries when running as root (no names exist for them).
FOREIGN_UID = 4242
FOREIGN_GID = 4343

#: Names that break naive code. All are valid single components on Linux.
ODD_NAMES: tuple[bytes, ...] = (
    b"new\nline.txt",
    b"back\\slash.txt",
    b"bad\xffname.txt",
    b"caf\xc3\xa9.txt",
    b"co:lon.txt",
    b"semi;colon.txt",
    b"UPPER.TXT",
    b"MiXeD Case",
    b"-leading-dash",
    b" spaced name ",
    b"tab\there",
    b"l" * 255,
    b"U" * 100,
    b"archive.tar.gz",
    b"dots.in.the.name.2023-11-14T22:13:20Z.diff",
)

TYPES = ("reg", "dir", "sym", "fifo", "sock", "dev")


@dataclass(frozen=True)
class Entry:
    """One file as ``lstat`` and friends see it; ``type`` uses rdiff-backup's type names."""

    type: str
    perms: int  # st_mode & 0o7777
    uid: int
    gid: int
    mtime: int  # whole seconds (floor); rdiff-backup records none for sym and dev
    size: int | None = None  # reg only
    sha1: str | None = None  # reg only
    target: bytes | None = None  # sym only
    devnum: tuple[str, int, int] | None = None  # dev only: ("c" | "b", major, minor)
    nlink: int = 1
    inode: tuple[int, int] = (0, 0)  # (st_dev, st_ino): equal for hard links
    xattrs: tuple[tuple[bytes, bytes], ...] = ()  # user.* only, sorted
    acl_access: bytes | None = None  # raw system.posix_acl_access, when present
    acl_default: bytes | None = None  # raw system.posix_acl_default, when present

    @property
    def has_acl(self) -> bool:
        return self.acl_access is not None or self.acl_default is not None


Snapshot = dict[Index, Entry]


@dataclass
class Capabilities:
    """What this machine lets the generator create."""

    root: bool = IS_ROOT
    devices: bool = IS_ROOT
    ownership: bool = IS_ROOT
    xattrs: bool = True
    acls: bool = SETFACL is not None


@dataclass
class TreeOptions:
    """Knobs for :func:`build_tree`; the defaults make the full zoo the machine allows."""

    odd_names: bool = True
    long_names: bool = True
    specials: bool = True  # fifo, socket (and devices when capabilities allow)
    hard_links: bool = True
    pre_epoch_mtime: bool = True
    big_file_size: int = 200_000  # multi-block for librsync (block size 384 at this size)
    capabilities: Capabilities = field(default_factory=Capabilities)


# --------------------------------------------------------------------------------------------
# scanning


def _filetype(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "reg"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "sym"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "sock"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "dev"
    raise ValueError(f"unknown file type {mode:o}")


def _read_xattrs(path: bytes) -> tuple[tuple[tuple[bytes, bytes], ...], bytes | None, bytes | None]:
    user: list[tuple[bytes, bytes]] = []
    access = default = None
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return (), None, None
    for name in sorted(names):
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        if name.startswith("user."):
            user.append((name.encode(), value))
        elif name == "system.posix_acl_access":
            access = value
        elif name == "system.posix_acl_default":
            default = value
    return tuple(user), access, default


def stat_entry(path: bytes | str | os.PathLike[str]) -> Entry:
    """Describe one file (not following symlinks)."""
    p = os.fsencode(path)
    st = os.lstat(p)
    kind = _filetype(st.st_mode)
    size = sha1 = target = devnum = None
    if kind == "reg":
        size = st.st_size
        digest = hashlib.sha1()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        sha1 = digest.hexdigest()
    elif kind == "sym":
        target = os.readlink(p)
    elif kind == "dev":
        devnum = (
            "c" if stat.S_ISCHR(st.st_mode) else "b",
            os.major(st.st_rdev),
            os.minor(st.st_rdev),
        )
    xattrs, acl_access, acl_default = _read_xattrs(p)
    return Entry(
        type=kind,
        perms=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime=st.st_mtime_ns // 1_000_000_000,
        size=size,
        sha1=sha1,
        target=target,
        devnum=devnum,
        nlink=st.st_nlink,
        inode=(st.st_dev, st.st_ino),
        xattrs=xattrs,
        acl_access=acl_access,
        acl_default=acl_default,
    )


def walk(root: bytes | str | os.PathLike[str]) -> Iterator[Index]:
    """Every index under root (root included), in rdiff-backup's metadata order."""
    base = os.fsencode(root)

    def rec(index: Index) -> Iterator[Index]:
        yield index
        path = os.path.join(base, *index) if index else base
        if stat.S_ISDIR(os.lstat(path).st_mode):
            for name in sorted(os.listdir(path)):
                yield from rec((*index, name))

    yield from rec(())


def scan(
    root: bytes | str | os.PathLike[str], *, exclude_top: Index = (b"rdiff-backup-data",)
) -> Snapshot:
    """Snapshot a tree: index -> Entry, in metadata order (dicts keep insertion order).

    A top-level ``rdiff-backup-data`` is left out, as rdiff-backup always excludes it.
    """
    base = os.fsencode(root)
    out: Snapshot = {}
    for index in walk(base):
        if index[:1] == exclude_top:
            continue
        out[index] = stat_entry(os.path.join(base, *index) if index else base)
    return out


def hardlink_groups(snapshot: Snapshot) -> list[tuple[Index, ...]]:
    """Groups (sorted, size >= 2) of indexes that are the same inode within the snapshot."""
    by_inode: dict[tuple[int, int], list[Index]] = {}
    for index, entry in snapshot.items():
        if entry.type == "reg" and entry.nlink > 1:
            by_inode.setdefault(entry.inode, []).append(index)
    return sorted(tuple(sorted(g)) for g in by_inode.values() if len(g) > 1)


_ACL_TAGS = {0x01: "user", 0x02: "user", 0x04: "group", 0x08: "group", 0x10: "mask", 0x20: "other"}
_ACL_NAMED = (0x02, 0x08)


def acl_entries(
    raw: bytes | None, *, default: bool = False
) -> list[tuple[str, int | None, str, bool]]:
    """Decode a ``system.posix_acl_*`` xattr value: (tag, id or None, "rwx"-style, default).

    The Linux format: a little-endian u32 version (2), then (u16 tag, u16 perm, u32 id) entries.
    """
    if raw is None:
        return []
    if len(raw) < 4 or int.from_bytes(raw[:4], "little") != 2 or (len(raw) - 4) % 8:
        raise ValueError(f"not a POSIX ACL xattr: {raw!r}")
    out = []
    for at in range(4, len(raw), 8):
        tag = int.from_bytes(raw[at : at + 2], "little")
        perm = int.from_bytes(raw[at + 2 : at + 4], "little")
        ident = int.from_bytes(raw[at + 4 : at + 8], "little")
        text = "".join(c if perm & bit else "-" for c, bit in (("r", 4), ("w", 2), ("x", 1)))
        out.append((_ACL_TAGS[tag], ident if tag in _ACL_NAMED else None, text, default))
    return out


def acl_of(entry: Entry) -> list[tuple[str, int | None, str, bool]]:
    """The file's full ACL (the access part from the mode bits when only a default ACL exists);
    empty when the ACL is trivial (what rdiff-backup does not record)."""
    if not entry.has_acl:
        return []
    access = acl_entries(entry.acl_access)
    if not access:
        bits = [(entry.perms >> shift) & 7 for shift in (6, 3, 0)]
        texts = [
            "".join(c if b & m else "-" for c, m in (("r", 4), ("w", 2), ("x", 1))) for b in bits
        ]
        access = [("user", None, texts[0], False), ("group", None, texts[1], False)]
        access.append(("other", None, texts[2], False))
    return access + acl_entries(entry.acl_default, default=True)


def render(index: Index) -> bytes:
    """The index as a path, ``.`` for the root (how rdiff-backup names the root)."""
    return b"/".join(index) if index else b"."


# --------------------------------------------------------------------------------------------
# building blocks


class _Maker:
    """Creates entries with deterministic content and attributes from one random stream."""

    def __init__(self, root: Path, rng: random.Random, caps: Capabilities):
        self.root = os.fsencode(root)
        self.rng = rng
        self.caps = caps
        self.log: list[str] = []

    def path(self, index: Index) -> bytes:
        return os.path.join(self.root, *index) if index else self.root

    def mtime(self) -> int:
        return self.rng.randrange(MTIME_LOW, MTIME_HIGH)

    def content(self, kind: str | None = None) -> bytes:
        kind = kind or self.rng.choice(["text", "text", "empty", "binary", "lines"])
        if kind == "empty":
            return b""
        if kind == "binary":
            return self.rng.randbytes(self.rng.randrange(1, 5000))
        if kind == "lines":
            n = self.rng.randrange(1, 400)
            return b"".join(b"line %d of %d\n" % (i, self.rng.randrange(10**6)) for i in range(n))
        return b"text %d\n" % self.rng.randrange(10**9)

    def set_owner(self, p: bytes) -> None:
        if self.caps.ownership and self.rng.random() < 0.3:
            uid = self.rng.choice([0, FOREIGN_UID, 65534])
            gid = self.rng.choice([0, FOREIGN_GID, 65534])
            os.chown(p, uid, gid, follow_symlinks=False)

    def set_xattrs(self, p: bytes) -> None:
        if not self.caps.xattrs or self.rng.random() > 0.3:
            return
        for i in range(self.rng.randrange(1, 3)):
            value = self.rng.choice([b"", b"plain", self.rng.randbytes(20), b"with\nnewline=eq"])
            try:
                os.setxattr(p, f"user.k{i}.{self.rng.randrange(100)}", value)
            except OSError as e:  # file system without user xattrs
                if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    self.caps.xattrs = False
                    return
                raise

    def set_acl(self, p: bytes, *, directory: bool) -> None:
        if not self.caps.acls or self.rng.random() > 0.2:
            return
        spec = f"u:{FOREIGN_UID}:r--,g:{FOREIGN_GID}:rw-"
        args = [SETFACL or "setfacl", "-m", spec, os.fsdecode(p)]
        if directory and self.rng.random() < 0.5:
            args = [SETFACL or "setfacl", "-d", "-m", f"u:{FOREIGN_UID}:r-x", os.fsdecode(p)]
        if subprocess.run(args, capture_output=True, check=False).returncode != 0:
            self.caps.acls = False

    def file(self, index: Index, data: bytes | None = None, *, perms: int | None = None) -> None:
        p = self.path(index)
        with open(p, "wb") as f:
            f.write(self.content() if data is None else data)
        self.set_owner(p)
        os.chmod(p, perms if perms is not None else self.rng.choice([0o644, 0o600, 0o755, 0o444]))
        self.set_xattrs(p)
        self.set_acl(p, directory=False)
        os.utime(p, (0, self.mtime()))

    def directory(self, index: Index, *, perms: int | None = None) -> None:
        p = self.path(index)
        os.mkdir(p)
        self.set_owner(p)
        os.chmod(p, perms if perms is not None else self.rng.choice([0o755, 0o750, 0o700]))
        self.set_xattrs(p)
        self.set_acl(p, directory=True)

    def symlink(self, index: Index, target: bytes) -> None:
        p = self.path(index)
        os.symlink(target, p)
        if self.caps.ownership and self.rng.random() < 0.3:
            os.chown(p, FOREIGN_UID, FOREIGN_GID, follow_symlinks=False)
        os.utime(p, (0, self.mtime()), follow_symlinks=False)

    def special(self, index: Index, kind: str) -> bool:
        """Make a fifo, sock or dev; False when the machine cannot."""
        p = self.path(index)
        perms = self.rng.choice([0o644, 0o600, 0o666])
        if kind == "fifo":
            os.mkfifo(p, perms)
        elif kind == "sock":
            os.mknod(p, stat.S_IFSOCK | perms)
        elif kind == "dev":
            if not self.caps.devices:
                return False
            char = self.rng.random() < 0.5
            dev = os.makedev(1, self.rng.choice([3, 5, 7])) if char else os.makedev(7, 200)
            try:
                os.mknod(p, (stat.S_IFCHR if char else stat.S_IFBLK) | perms, dev)
            except PermissionError:  # root without CAP_MKNOD (some containers)
                self.caps.devices = False
                return False
        else:
            raise ValueError(kind)
        self.set_owner(p)
        os.chmod(p, perms)
        os.utime(p, (0, self.mtime()))
        return True

    def remove(self, index: Index) -> None:
        p = self.path(index)
        if stat.S_ISDIR(os.lstat(p).st_mode):
            for dirpath, dirnames, _ in os.walk(p):  # undo 0o500-like modes before rmtree
                for d in dirnames:
                    os.chmod(os.path.join(dirpath, d), 0o700)
            os.chmod(p, 0o700)
            shutil.rmtree(p)
        else:
            os.unlink(p)

    def fix_directory_mtimes(self) -> None:
        """Give every directory a chosen mtime, deepest first (creating entries changed them)."""
        dirs = [
            i
            for i in walk(self.root)
            if os.path.isdir(self.path(i)) and not os.path.islink(self.path(i))
        ]
        for index in sorted(dirs, key=len, reverse=True):
            os.utime(self.path(index), (0, self.mtime()))


def _read(p: bytes) -> bytes:
    with open(p, "rb") as f:
        return f.read()


def _fresh_name(rng: random.Random, existing: set[bytes], prefix: bytes) -> bytes:
    while True:
        name = prefix + b"%04d" % rng.randrange(10_000)
        if name not in existing:
            return name


# --------------------------------------------------------------------------------------------
# the tree


def build_tree(root: Path | str, seed: int, options: TreeOptions | None = None) -> list[str]:
    """Create a fresh source tree at root (which must not exist). Returns a description log."""
    opts = options or TreeOptions()
    caps = opts.capabilities
    rng = random.Random(f"build:{seed}")
    m = _Maker(Path(root), rng, caps)
    os.mkdir(m.root)
    os.chmod(m.root, 0o755)

    # plain and nested directories
    m.directory((b"dir",), perms=0o755)
    m.directory((b"dir", b"sub"), perms=0o755)
    m.directory((b"dir", b"sub", b"deeper"), perms=0o755)
    m.directory((b"empty-dir",), perms=0o755)
    m.directory((b"sticky",), perms=0o1777)
    m.directory((b"setgid-dir",), perms=0o2750)
    m.directory((b"a",), perms=0o755)
    deep: Index = (b"deep",)
    m.directory(deep, perms=0o755)
    for level in range(5):
        deep = (*deep, b"d%d" % level)
        m.directory(deep, perms=0o755)
    m.file((*deep, b"bottom.txt"))

    # regular files of every sort
    m.file((b"empty",), b"", perms=0o644)
    m.file((b"small.txt",), b"hello\n", perms=0o644)
    m.file((b"big.bin",), rng.randbytes(opts.big_file_size), perms=0o644)
    m.file((b"setuid",), b"#!/bin/sh\n", perms=0o4755)
    m.file((b"setgid",), b"#!/bin/sh\n", perms=0o2755)
    m.file((b"no-perms",), b"secret\n", perms=0o000 if caps.root else 0o400)
    m.file((b"a", b"b"), b"sorts after a, before a.b\n")
    m.file((b"a.b",), b"dotted\n")
    m.file((b"dir", b"rdiff-backup-data"), b"not the real one\n")
    homes: list[Index] = [(), (b"dir",), (b"dir", b"sub"), (b"dir", b"sub", b"deeper")]
    for i in range(12):
        m.file((*rng.choice(homes), b"f%02d" % i))
    if opts.pre_epoch_mtime:
        m.file((b"old-file",), b"from 1968\n", perms=0o644)
        os.utime(m.path((b"old-file",)), (0, PRE_EPOCH_MTIME))

    # odd names, at the top and one level down
    if opts.odd_names:
        for name in ODD_NAMES:
            if not opts.long_names and len(name) > 64:
                continue
            m.file((name,))
            if rng.random() < 0.5:
                m.file((b"dir", name))
        m.directory((b"Odd Dir:\xfe",), perms=0o755)
        m.file((b"Odd Dir:\xfe", b"inside\nnewline"))

    # links
    m.symlink((b"link-to-small",), b"small.txt")
    m.symlink((b"dangling",), b"does/not/exist")
    m.symlink((b"dir", b"up-link"), b"../big.bin")
    m.symlink((b"abs-link",), b"/etc/hostname")
    m.symlink((b"link-to-dir",), b"dir/sub")
    if opts.odd_names:
        m.symlink((b"odd-target",), b"back\\slash\nand\xff")
    if opts.hard_links:
        m.file((b"hard1",), b"shared content\n", perms=0o644)
        os.link(m.path((b"hard1",)), m.path((b"hard2",)))
        os.link(m.path((b"hard1",)), m.path((b"dir", b"hard3")))
        m.file((b"pair-a",), b"pair\n", perms=0o640)
        os.link(m.path((b"pair-a",)), m.path((b"pair-b",)))

    # specials
    if opts.specials:
        m.special((b"fifo",), "fifo")
        m.special((b"dir", b"fifo2"), "fifo")
        m.special((b"socket",), "sock")
        m.special((b"chardev",), "dev")
        m.special((b"blockdev",), "dev")

    # the entry whose type cycles through file -> dir -> symlink -> fifo -> file ...
    m.file((b"morph",), b"I am a file\n")

    m.fix_directory_mtimes()
    os.utime(m.root, (0, m.mtime()))
    return m.log


def _entries(m: _Maker) -> dict[str, list[Index]]:
    """Current non-root entries by type, excluding the morph entry and its contents."""
    out: dict[str, list[Index]] = {t: [] for t in TYPES}
    for index in walk(m.root):
        if not index or index[0] == b"morph":
            continue
        out[_filetype(os.lstat(m.path(index)).st_mode)].append(index)
    return out


def mutate_tree(root: Path | str, seed: int) -> list[str]:
    """Apply a seeded set of changes for the next session. Returns a log of what changed.

    Every call makes, where the tree allows it: content changes (same size, bigger, and a small
    edit inside the multi-block ``big.bin``), attribute-only changes (chmod, mtime, owner as
    root, an xattr), deletions (files, some specials, a directory subtree), type changes (the
    ``morph`` entry cycles file -> dir -> symlink -> fifo -> file; plus a random file -> dir,
    dir -> symlink and symlink -> file), additions (files with odd names, a directory tree, a
    symlink, a special file) and hard-link changes (a new link into a group, a member unlinked
    or broken into a copy, a new pair). Every content change also changes the mtime, as
    rdiff-backup (like rsync) decides what changed from size and mtime.
    """
    rng = random.Random(f"mutate:{seed}")
    m = _Maker(Path(root), rng, Capabilities())
    log = m.log
    ents = _entries(m)
    for pool in ents.values():
        rng.shuffle(pool)
    taken: set[Index] = set()  # entries already changed (or inside a changed directory)

    def free_to_take(index: Index) -> bool:
        return all(index[:k] not in taken for k in range(1, len(index) + 1))

    def pick(pool: list[Index], *, exclude: tuple[Index, ...] = ()) -> Index | None:
        for index in pool:
            if index not in exclude and free_to_take(index) and os.path.lexists(m.path(index)):
                taken.add(index)
                return index
        return None

    def new_mtime(p: bytes) -> int:
        old = os.lstat(p).st_mtime_ns // 1_000_000_000
        while (t := m.mtime()) == old:
            pass
        return t

    def rewrite(p: bytes, data: bytes) -> None:
        st = os.lstat(p)
        t = new_mtime(p)
        os.chmod(p, 0o600)
        with open(p, "r+b") as f:
            f.write(data)
            f.truncate()
        if m.caps.ownership:
            os.chown(p, st.st_uid, st.st_gid)
        os.chmod(p, stat.S_IMODE(st.st_mode))
        os.utime(p, (0, t))

    regs = ents["reg"]
    singles = [i for i in regs if os.lstat(m.path(i)).st_nlink == 1]

    # content changes
    big = (b"big.bin",)
    if big in regs:
        taken.add(big)
        data = bytearray(_read(m.path(big)))
        at = rng.randrange(max(len(data) - 7, 1))
        data[at : at + 7] = rng.randbytes(7)
        data += rng.randbytes(rng.randrange(1, 3000))
        rewrite(m.path(big), bytes(data))
        log.append("modified big.bin (small edit, appended)")
    for same_size in (True, False, False):
        if (index := pick(regs)) is None:
            break
        old = _read(m.path(index))
        new = bytes(b ^ 0x55 for b in old) if same_size and old else old + m.content("text")
        rewrite(m.path(index), new)
        log.append(f"modified {render(index)!r}")

    # attribute-only changes
    if (index := pick(singles)) is not None:
        p = m.path(index)
        os.chmod(p, stat.S_IMODE(os.lstat(p).st_mode) ^ 0o044)
        log.append(f"chmod {render(index)!r}")
    if (index := pick(singles)) is not None:
        p = m.path(index)
        os.utime(p, (0, new_mtime(p)))
        log.append(f"touched {render(index)!r}")
    if m.caps.ownership and (index := pick(singles)) is not None:
        p = m.path(index)
        st = os.lstat(p)
        uid = rng.choice([u for u in (0, FOREIGN_UID, 65534) if u != st.st_uid])
        os.chown(p, uid, st.st_gid)
        os.chmod(p, stat.S_IMODE(st.st_mode))  # chown clears setuid/setgid
        log.append(f"chowned {render(index)!r}")
    if m.caps.xattrs and (index := pick(singles)) is not None:
        with contextlib.suppress(OSError):
            os.setxattr(m.path(index), "user.mutated", b"%d" % seed)
            log.append(f"xattr on {render(index)!r}")

    # deletions
    for _ in range(2):
        if (index := pick(regs)) is not None:
            m.remove(index)
            log.append(f"deleted {render(index)!r}")
    for kind in ("sym", "fifo", "sock", "dev"):
        if rng.random() < 0.5 and (index := pick(ents[kind])) is not None:
            m.remove(index)
            log.append(f"deleted {kind} {render(index)!r}")
    full = [i for i in ents["dir"] if os.listdir(m.path(i))]
    if (index := pick(full, exclude=((b"dir",),))) is not None:
        m.remove(index)
        log.append(f"deleted tree {render(index)!r}")

    # type changes
    morph = (b"morph",)
    if os.path.lexists(m.path(morph)):
        kind = _filetype(os.lstat(m.path(morph)).st_mode)
        m.remove(morph)
        nxt = {"reg": "dir", "dir": "sym", "sym": "fifo"}.get(kind, "reg")
        if nxt == "dir":
            m.directory(morph, perms=0o755)
            m.file((*morph, b"was-a-file"))
        elif nxt == "sym":
            m.symlink(morph, b"was-a-dir")
        elif nxt == "fifo":
            m.special(morph, "fifo")
        else:
            m.file(morph)
        log.append(f"morph {kind} -> {nxt}")
    taken.add(morph)
    if (index := pick(singles)) is not None:
        m.remove(index)
        m.directory(index, perms=0o755)
        m.file((*index, b"now-a-dir"))
        log.append(f"file -> dir {render(index)!r}")
    if (index := pick(ents["dir"], exclude=((b"dir",),))) is not None:
        m.remove(index)
        m.symlink(index, b"dir")
        log.append(f"dir -> symlink {render(index)!r}")
    if (index := pick(ents["sym"])) is not None:
        m.remove(index)
        m.file(index)
        log.append(f"symlink -> file {render(index)!r}")

    # additions, into directories that still exist and were not replaced
    parents = [
        i
        for i in [(), *sorted(ents["dir"])]
        if free_to_take(i)
        and os.path.lexists(m.path(i))
        and stat.S_ISDIR(os.lstat(m.path(i)).st_mode)
    ]

    def fresh(prefix: bytes) -> Index:
        parent = rng.choice(parents)
        index = (*parent, _fresh_name(rng, set(os.listdir(m.path(parent))), prefix))
        taken.add(index)
        return index

    for _ in range(3):
        index = fresh(rng.choice([b"new-", b"New:", b"n\n", b"n\xfe", b"N;"]))
        m.file(index)
        log.append(f"added {render(index)!r}")
    index = fresh(b"newdir-")
    m.directory(index, perms=0o755)
    m.file((*index, b"child"))
    m.directory((*index, b"grandchild-dir"), perms=0o755)
    log.append(f"added tree {render(index)!r}")
    index = fresh(b"newlink-")
    m.symlink(index, rng.choice([b"small.txt", b"../nowhere", b"/"]))
    log.append(f"added symlink {render(index)!r}")
    index = fresh(b"newspecial-")
    kind = rng.choice(["fifo", "sock", "dev"] if m.caps.devices else ["fifo", "sock"])
    if m.special(index, kind):
        log.append(f"added {kind} {render(index)!r}")

    # hard-link changes
    groups: dict[tuple[int, int], list[Index]] = {}
    for index in sorted(regs):
        if free_to_take(index) and os.path.lexists(m.path(index)):
            st = os.lstat(m.path(index))
            if st.st_nlink > 1:
                groups.setdefault((st.st_dev, st.st_ino), []).append(index)
    group_list = sorted(groups.values())
    if group_list:
        group = rng.choice(group_list)
        index = fresh(b"newhard-")
        os.link(m.path(group[0]), m.path(index))
        log.append(f"hard link {render(index)!r} to {render(group[0])!r}")
        group = rng.choice(group_list)
        victim = group[-1]
        taken.add(victim)
        p = m.path(victim)
        if rng.random() < 0.5:
            os.unlink(p)
            log.append(f"unlinked hard link {render(victim)!r}")
        else:
            content, st = _read(p), os.lstat(p)
            os.unlink(p)
            with open(p, "wb") as f:
                f.write(content)
            if m.caps.ownership:
                os.chown(p, st.st_uid, st.st_gid)
            os.chmod(p, stat.S_IMODE(st.st_mode))
            os.utime(p, (0, st.st_mtime_ns // 1_000_000_000))
            log.append(f"broke hard link {render(victim)!r} into a copy")
    # (not long names: rdiff-backup 2.2.7 crashes with ENAMETOOLONG in Hardlink.link_rp when a
    # hard link's quoted name needs AlternateMirrorName, e.g. b"U" * 100 under --chars-to-quote A-Z)
    if (index := pick([i for i in singles if len(i[-1]) <= 64])) is not None:
        other = fresh(b"linked-")
        os.link(m.path(index), m.path(other))
        log.append(f"new hard-link pair {render(index)!r} {render(other)!r}")

    m.fix_directory_mtimes()
    os.utime(m.root, (0, m.mtime()))
    return log


def build_bulk_tree(root: Path | str, seed: int, files: int, size: int = 4096) -> None:
    """A flat-ish tree of many regular files (for timing-sensitive tests such as kill-mid-run)."""
    rng = random.Random(f"bulk:{seed}")
    base = os.fsencode(root)
    os.makedirs(base, exist_ok=True)
    for i in range(files):
        d = os.path.join(base, b"d%02d" % (i % 20))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, b"f%05d" % i), "wb") as f:
            f.write(rng.randbytes(size))


def touch_all(root: Path | str, seed: int) -> None:
    """Change every regular file under root (content and mtime): a session with much to do."""
    rng = random.Random(f"touch:{seed}")
    for index in list(walk(root)):
        p = os.path.join(os.fsencode(root), *index) if index else os.fsencode(root)
        if os.path.isfile(p) and not os.path.islink(p):
            with open(p, "r+b") as f:
                f.write(rng.randbytes(16))
            os.utime(p, (0, rng.randrange(MTIME_LOW, MTIME_HIGH)))
