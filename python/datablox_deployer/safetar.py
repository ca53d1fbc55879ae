"""Archives from `sw_packages`, extracted the way pip extracts an sdist: `tarfile` with PEP 706's
`data` filter, here wrapped in a filter of ours that is stricter. The file is read once, front
to back: every byte is hashed as tarfile reads it, each member is checked by the filter before
it is written under a new directory in the home's private staging area, and at the end the
digest of what was read must equal the archive's line in SHA256SUMS. What was extracted is then
the resource's directory (renamed into place by the caller). On any refusal the new directory
is removed: the home is as it was. A file that cannot be written (a full disk) is a failure
naming that file, not a refusal of the archive.

Refused, each with the archive and, where there is one, the member named:
- a digest that differs from SHA256SUMS or that SHA256SUMS lacks (checked on the bytes that were
  extracted, so an archive rewritten while it is read is refused, not installed);
- absolute names, `..`, a member outside the single expected top directory, a top that is not a
  directory, a path given twice, a member under a path that is a symbolic link, a file or a
  hard link in the archive;
- symbolic links whose target is absolute or leaves the top directory, lexically when the member
  is read and through other links once every member is extracted; hard links to anything but a
  regular file earlier in the archive;
- devices, FIFOs, sparse and other special members; a negative size;
- more than `max_members` members, or more than `max_bytes` bytes of tar stream once
  decompressed (headers and content, counted from the headers before a member is written, so at
  most that much is written): by default max(64 MiB, 100 x the compressed size);
- a pax header or GNU long name or link target over 1 MiB (the extended headers of one member
  together), refused as its header is read, before tarfile reads it into memory;
- an archive that is not one gzip member holding a tar stream that ends with a zero block (what
  `cargo xtask dist` writes): tarfile would take a cut or damaged header for the end and install
  what came before it.

What the `data` filter does, it still does (modes: `mode & 0o755`, executable bits cleared
unless the owner's is set, owner read/write on files; directories and links get the umask's
mode; owners ignored; mtimes kept), and what it refuses is refused, named as ours are.

Supported interpreters: those whose tarfile has the `data` filter: CPython 3.12 and newer, and
3.8.17+, 3.9.17+, 3.10.12+, 3.11.4+. Any other is refused before an archive is opened.
"""

import hashlib
import os
import posixpath
import shutil
import sys
import tarfile

from . import DeployError

MAX_MEMBERS = 100000
# The default budget of decompressed bytes: max(MIN_BUDGET, RATIO x the compressed size).
MIN_BUDGET = 64 << 20
RATIO = 100
# The extended headers (pax, GNU long name and link target) of one member, together.
MAX_HEADER = 1 << 20
SUPPORTED = "CPython 3.12 or newer, 3.11.4+, 3.10.12+, 3.9.17+ or 3.8.17+"


class Refused(DeployError):
    def __init__(self, archive, member, why, help_text):
        where = "{}: member `{}`".format(archive, member) if member else archive
        DeployError.__init__(self, "refusing {}: {} (help: {})".format(where, why, help_text))
        self.archive = archive
        self.member = member


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(actual, expected, label):
    if expected is None:
        raise Refused(label, None, "it has no line in SHA256SUMS",
                      "deploy only what `cargo xtask dist` wrote, with its SHA256SUMS")
    if actual != expected:
        raise Refused(label, None, "its SHA-256 is {} but SHA256SUMS says {}".format(actual, expected),
                      "the archive was changed or damaged after `dist`: rebuild or copy the dist again")
    return actual


def verify_digest(path, expected, label):
    """The file's SHA-256, which must equal `expected` (its SHA256SUMS line)."""
    if expected is None:
        return _check_digest(None, None, label)
    return _check_digest(sha256_file(path), expected, label)


def check_interpreter():
    """Refuses an interpreter whose tarfile lacks the `data` extraction filter (PEP 706)."""
    if not hasattr(tarfile, "data_filter"):
        raise DeployError("this Python ({} {}) has no tarfile extraction filters (PEP 706), which the deployer "
                          "extracts archives with (help: run the deployer with {})".format(
                              sys.executable, sys.version.split()[0], SUPPORTED))


class _Stop(Exception):
    """A refusal raised while tarfile reads a header: (member, why, help)."""


class _Header(tarfile.TarInfo):
    """tarfile's header reader, refusing as they are read what it would otherwise read whole into
    memory: extended headers over MAX_HEADER, and sparse members (whose maps are read block by
    block). While a member's extended headers are read, `archive.offset` is where the first of
    them starts. Only a zero block ends the archive: tarfile takes a header cut short (a gzip
    stream that ends early, or a second gzip member, which stream mode does not read) or
    damaged for the end, and would install what came before it."""

    __slots__ = ()

    @classmethod
    def fromtarfile(cls, archive):
        try:
            return super(_Header, cls).fromtarfile(archive)
        except tarfile.EOFHeaderError:
            raise
        except tarfile.HeaderError as error:
            raise _Stop(None, "not a readable gzipped tar archive: {} at byte {} of the tar stream".format(
                error, archive.offset), "rebuild the extension with `cargo xtask dist`")

    def _extended(self, archive, what):
        help_text = "member names and extended headers in a resource are short"
        if not 0 <= self.size <= MAX_HEADER:
            raise _Stop(None, "{} of {} bytes (the limit is {})".format(what, self.size, MAX_HEADER), help_text)
        if self.offset + self._block(self.size) - archive.offset > MAX_HEADER:
            raise _Stop(None, "extended headers of more than {} bytes for one member".format(MAX_HEADER), help_text)

    def _proc_gnulong(self, archive):
        self._extended(archive, "a GNU long name" if self.type == tarfile.GNUTYPE_LONGNAME else "a GNU long link target")
        return tarfile.TarInfo._proc_gnulong(self, archive)

    def _proc_pax(self, archive):
        self._extended(archive, "a pax header")
        return tarfile.TarInfo._proc_pax(self, archive)

    def _proc_sparse(self, archive):
        raise _Stop(self.name, "a sparse member", "a resource holds files, directories and links only")

    def _pax_sparse(self, member, *rest):
        raise _Stop(member.name, "a sparse member", "a resource holds files, directories and links only")

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _pax_sparse


class _Archive(tarfile.TarFile):
    """tarfile's reader, but for owners: the `data` filter clears them, and run as root tarfile
    would still call `chown(path, -1, -1)` on every member."""

    def chown(self, *args, **kwargs):
        pass


class _ReadFailed(Exception):
    """The archive file itself could not be read."""


class _HashingReader(object):
    """The archive file as tarfile reads it, every byte hashed on the way."""

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        try:
            data = self.raw.read(size)
        except OSError as error:
            raise _ReadFailed(error)
        self.digest.update(data)
        return data


def _inside(top, path):
    return path == top or path.startswith(top + "/")


class _Checks(object):
    """Our filter: checks each member as tarfile hands it over, before it is written, then
    renames it from `top/<path>` to `<path>` (extracted into the destination itself) and passes
    it through tarfile's `data` filter."""

    def __init__(self, label, top, destination, max_members, budget):
        self.label, self.top, self.destination = label, top, destination
        self.max_members, self.budget = max_members, budget
        self.count = 0
        self.kinds = {}  # normalized name -> "dir", "file", "link" (symbolic) or "hard"
        self.made = set()  # directories (normalized names), given or implied by a member's path
        self.links = []  # (normalized name, target, name) of each symbolic link
        self.current = None  # the member being extracted

    def refuse(self, name, why, help_text):
        raise Refused(self.label, name, why, help_text)

    def __call__(self, member, path):
        name = member.name
        self.current = name
        self.count += 1
        if self.count > self.max_members:
            self.refuse(name, "more than {} members".format(self.max_members),
                        "a decompression bomb or a wrong file: an archive of one resource is small")
        if member.size < 0:
            # Read as "to the end", a negative size would pull the rest of the stream in.
            self.refuse(name, "a negative size ({})".format(member.size),
                        "the archive is damaged or forged: rebuild the extension with `cargo xtask dist`")
        if member.offset_data + (member.size if member.isreg() else 0) > self.budget:
            self.refuse(name, "more than {} bytes once decompressed".format(self.budget),
                        "a decompression bomb or a wrong file: an archive of one resource is small")
        normal = self.check_name(member)
        if normal == self.top and not member.isdir():
            self.refuse(name, "the top `{}` is not a directory".format(self.top),
                        "the archive must hold exactly one top directory")
        rename = normal[len(self.top) + 1:] or "."
        if member.isreg():
            kind = "file"
        elif member.isdir():
            kind = "dir"
            self.made.add(normal)
        elif member.issym():
            kind = "link"
            target = member.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normal), target))
            if target.startswith("/") or not _inside(self.top, resolved):
                self.refuse(name, "a symbolic link to `{}`, which leaves `{}/`".format(target, self.top),
                            "links in a resource must point inside it")
            self.links.append((normal, target, name))
        elif member.islnk():
            kind = "hard"
            target = member.linkname
            normal_target = posixpath.normpath(target)
            if target.startswith("/") or ".." in target.split("/") or not _inside(self.top, normal_target):
                self.refuse(name, "a hard link to `{}`, outside `{}/`".format(target, self.top),
                            "links in a resource must point inside it")
            if self.kinds.get(normal_target) != "file":
                self.refuse(name, "a hard link to `{}`, which is not a regular file earlier in the archive".format(target),
                            "hard links in a resource must name one of its files")
            member.linkname = normal_target[len(self.top) + 1:]
        elif member.ischr() or member.isblk():
            self.refuse(name, "a device", "a resource holds files, directories and links only")
        elif member.isfifo():
            self.refuse(name, "a FIFO", "a resource holds files, directories and links only")
        else:
            self.refuse(name, "a special member (type {!r})".format(member.type),
                        "a resource holds files, directories and links only")
        self.kinds[normal] = kind
        parent = posixpath.dirname(normal)
        while parent and parent not in self.made:
            self.made.add(parent)
            parent = posixpath.dirname(parent)
        # Renamed in place: the member is ours alone (`_extract` drops tarfile's list of them).
        member.name = rename
        try:
            return tarfile.data_filter(member, path)
        except tarfile.LinkOutsideDestinationError:
            self.refuse(name, "a symbolic link to `{}`, which leaves `{}/` through other links".format(
                member.linkname, self.top), "links in a resource must point inside it")
        except tarfile.FilterError as error:
            self.refuse(name, "refused by tarfile's `data` filter: {}".format(error),
                        "a resource holds files, directories and links inside its top directory")

    def check_name(self, member):
        name = member.name
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            self.refuse(name, "an absolute path", "archives hold paths relative to their top directory")
        if ".." in name.rstrip("/").split("/"):
            self.refuse(name, "a `..` component", "archives never hold paths that climb out")
        normal = posixpath.normpath(name)
        if not _inside(self.top, normal):
            self.refuse(name, "outside the archive's expected top directory `{}/`".format(self.top),
                        "the archive must hold exactly one top directory, named after its file")
        # Every directory above the member must be a directory here: not a file, a link or a
        # hard link of the archive (nothing is written through a link or under a file).
        probe = posixpath.dirname(normal)
        while probe and probe not in self.made:
            kind = self.kinds.get(probe)
            if kind is not None:
                self.refuse(name, "it lies under `{}`, which is {} in the archive".format(
                    probe, {"link": "a symbolic link", "file": "a file", "hard": "a hard link"}[kind]),
                    "members may not be written through a link or under a file")
            probe = posixpath.dirname(probe)
        previous = self.kinds.get(normal)
        if previous is not None and not (previous == "dir" and member.isdir()):
            self.refuse(name, "the path is given twice in the archive", "each path of a resource is one member")
        if normal in self.made and not member.isdir():
            self.refuse(name, "the path is also a directory in the archive", "each path of a resource is one member")
        return normal

    def finish(self):
        if self.top not in self.made:
            self.refuse(None, "it is empty", "an archive holds its top directory `{}/`".format(self.top))
        # With every link in place, each link's real path must still lie inside the top directory
        # (a link checked before the links it goes through existed).
        root = os.path.realpath(self.destination)
        for normal, target, name in self.links:
            real = os.path.realpath(os.path.join(self.destination, normal[len(self.top) + 1:]))
            if not _inside(root, real):
                self.refuse(name, "a symbolic link to `{}`, which leaves `{}/` through other links".format(target, self.top),
                            "links in a resource must point inside it")


def budget(compressed_bytes):
    """The default budget of decompressed bytes for an archive of `compressed_bytes`."""
    return max(MIN_BUDGET, RATIO * compressed_bytes)


def extract(path, label, top, destination, max_members=MAX_MEMBERS, max_bytes=None, expected=None):
    """Extract the archive's top directory `top/` as `destination` (a path that does not exist
    yet, in a directory only this deployer writes to; absolute, or relative to a working
    directory that stays the same meanwhile), checking each member before it is
    written, and the digest of the bytes read against `expected` (its SHA256SUMS line) at the
    end; returns (`destination`, digest). Nothing is left at `destination` when it raises.
    `max_bytes` (decompressed; default: `budget` of the file's size) and `max_members` bound
    what a bomb costs."""
    check_interpreter()
    if expected is None:
        _check_digest(None, None, label)
    with open(path, "rb") as raw:
        limit = budget(os.fstat(raw.fileno()).st_size) if max_bytes is None else max_bytes
        reader = _HashingReader(raw)
        checks = _Checks(label, top, destination, max_members, limit)
        try:
            os.mkdir(destination)
        except OSError as error:
            raise _write_failure(label, destination, error)
        try:
            try:
                _extract(reader, checks, label)
            finally:
                # The digest covers every byte of the file, whether tarfile read it or not; a
                # mismatch is the error reported, whatever else went wrong.
                try:
                    for _ in iter(lambda: reader.read(1 << 20), b""):
                        pass
                except _ReadFailed as failed:
                    raise _read_failure(label, failed)
                digest = _check_digest(reader.digest.hexdigest(), expected, label)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise
    return destination, digest


def _write_failure(label, where, error):
    # The home's disk, not the archive: a failure, not a refusal. `where` may be relative to the
    # working directory (`Home.working_in_staging`): named in full.
    return DeployError("{}: cannot write {}: {} (help: check the free space and the permissions of the "
                       "home)".format(label, os.path.abspath(where), error.strerror or error))


def _read_failure(label, failed):
    return DeployError("{}: cannot read it: {} (help: check the dist's disk, or copy it again)".format(
        label, failed.args[0]))


def _extract(reader, checks, label):
    unreadable = (tarfile.TarError, EOFError, ValueError, RecursionError)
    try:
        with _Archive.open(fileobj=reader, mode="r|gz", tarinfo=_Header) as tar:
            def members():
                # tarfile keeps every member it reads; what the checks need, they keep.
                for member in iter(tar.next, None):
                    del tar.members[:]
                    yield member
            tar.extractall(checks.destination, members=members(), filter=checks)
        checks.finish()
    except _Stop as stop:
        member, why, help_text = stop.args
        raise Refused(label, member, why, help_text)
    except _ReadFailed as failed:
        raise _read_failure(label, failed)
    except OSError as error:
        where = error.filename if isinstance(error.filename, str) else os.path.join(
            checks.destination, (checks.current or "").partition("/")[2])
        raise _write_failure(label, where, error)
    except unreadable as error:
        raise Refused(label, None, "not a readable gzipped tar archive: {}".format(error),
                      "rebuild the extension with `cargo xtask dist`")
