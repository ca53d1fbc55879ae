"""Archives from `sw_packages`: the digest is checked against SHA256SUMS before anything is read,
then every member is checked before anything is extracted, then the archive is extracted with
tarfile's `data` filter (PEP 706) into a staging directory chosen by the caller.

Refused, each with the archive and the member named: a digest that differs from SHA256SUMS or
that SHA256SUMS lacks; absolute names; `..`; a member outside the single expected top directory;
symbolic links whose target leaves that directory (or is absolute); hard links to outside it;
devices, FIFOs and other special members; more than `max_members` members or `max_bytes`
bytes of content (a decompression bomb: counted while reading, before any byte is written).
"""

import hashlib
import os
import posixpath
import tarfile

from . import DeployError

MAX_MEMBERS = 100000
MAX_BYTES = 1 << 30


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


def verify_digest(path, expected, label):
    """The archive's SHA-256, which must equal `expected` (its SHA256SUMS line)."""
    if expected is None:
        raise Refused(label, None, "it has no line in SHA256SUMS",
                      "deploy only what `cargo xtask dist` wrote, with its SHA256SUMS")
    actual = sha256_file(path)
    if actual != expected:
        raise Refused(label, None, "its SHA-256 is {} but SHA256SUMS says {}".format(actual, expected),
                      "the archive was changed or damaged after `dist`: rebuild or copy the dist again")
    return actual


def _inside(top, path):
    return path == top or path.startswith(top + "/")


def check_members(tar, label, top, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """Every member of the open `tar`, checked; raises Refused on the first bad one."""
    members = []
    total = 0
    for member in tar:
        members.append(member)
        name = member.name
        if len(members) > max_members:
            raise Refused(label, name, "more than {} members".format(max_members),
                          "a decompression bomb or a wrong file: an archive of one resource is small")
        total += member.size if member.isreg() else 0
        if total > max_bytes:
            raise Refused(label, name, "more than {} bytes of content".format(max_bytes),
                          "a decompression bomb or a wrong file: an archive of one resource is small")
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            raise Refused(label, name, "an absolute path", "archives hold paths relative to their top directory")
        parts = name.rstrip("/").split("/")
        if ".." in parts:
            raise Refused(label, name, "a `..` component", "archives never hold paths that climb out")
        normal = posixpath.normpath(name)
        if not _inside(top, normal):
            raise Refused(label, name, "outside the archive's expected top directory `{}/`".format(top),
                          "the archive must hold exactly one top directory, named after its file")
        if member.issym():
            target = member.linkname
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normal), target))
            if target.startswith("/") or not _inside(top, resolved):
                raise Refused(label, name, "a symbolic link to `{}`, which leaves `{}/`".format(target, top),
                              "links in a resource must point inside it")
        elif member.islnk():
            target = posixpath.normpath(member.linkname)
            if member.linkname.startswith("/") or ".." in member.linkname.split("/") or not _inside(top, target):
                raise Refused(label, name, "a hard link to `{}`, outside `{}/`".format(member.linkname, top),
                              "links in a resource must point inside it")
        elif member.ischr() or member.isblk():
            raise Refused(label, name, "a device", "a resource holds files, directories and links only")
        elif member.isfifo():
            raise Refused(label, name, "a FIFO", "a resource holds files, directories and links only")
        elif not (member.isreg() or member.isdir()):
            raise Refused(label, name, "a special member (type {!r})".format(member.type),
                          "a resource holds files, directories and links only")
    if not any(posixpath.normpath(m.name) == top or m.name.startswith(top + "/") for m in members):
        raise Refused(label, None, "it is empty", "an archive holds its top directory `{}/`".format(top))
    return members


def extract(path, label, top, staging, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """Extract the checked archive into `staging`; returns `staging/<top>`."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = check_members(tar, label, top, max_members, max_bytes)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members, filter="data")
            else:
                # Python without PEP 706 (before 3.8.17/3.9.17/3.10.12/3.11.4): our checks above
                # are then the only guard, and modes are normalised below.
                tar.extractall(staging, members=members)
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        if isinstance(error, DeployError):
            raise
        raise Refused(label, None, "not a readable gzipped tar archive: {}".format(error),
                      "rebuild the extension with `cargo xtask dist`")
    result = os.path.join(staging, top)
    if not os.path.isdir(result):
        raise Refused(label, None, "its top `{}` is not a directory".format(top),
                      "the archive must hold exactly one top directory")
    return result
