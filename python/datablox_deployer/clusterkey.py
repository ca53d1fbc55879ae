"""The cluster key on the deployer's side: made when a home has none (`deploy --home`), and one
key per topology deploy, `DIR/cluster.key` beside the output of `deploy place` (kept when DIR is
written again), copied into every node's `<home>/config/cluster.key`.

The file is the one `datablox_framework.auth` reads (the caretaker and the master): 32 bytes
from `secrets` as 64 hex digits and a newline, mode 0600, owned by the user. The deployer ships
without the framework, so these few lines are its own; `read` refuses what `auth.read_key`
refuses (a symbolic link, not a regular file, another owner, any group or other permission).
The key itself is never printed, logged, put in `--json` output, a plan or a bundle's
checksummed files.
"""

import binascii
import os
import secrets
import stat

from . import DeployError

KEY_BYTES = 32
NAME = "cluster.key"


def home_key(root):
    return os.path.join(root, "config", NAME)


def new():
    return secrets.token_bytes(KEY_BYTES)


def write(path, key):
    """Write `key` to `path`, mode 0600, under a temporary name renamed into place."""
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)),
                             ".{}.{}.tmp".format(os.path.basename(path), secrets.token_hex(4)))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(binascii.hexlify(key).decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.remove(temporary)
        raise


def read(path, what="the cluster key"):
    """The key in `path`; DeployError naming the file when it is missing, unsafe or malformed."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DeployError("{}: no such file ({})".format(path, what))
    except OSError as error:
        if os.path.islink(path):
            raise DeployError("{}: {} is a symbolic link; refused (help: use the key file itself)".format(path, what))
        raise DeployError("{}: cannot read {}: {}".format(path, what, error.strerror))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise DeployError("{}: {} is not a regular file; refused".format(path, what))
        if info.st_uid != os.geteuid():
            raise DeployError("{}: {} is owned by uid {}, not by this user (uid {}); refused".format(
                path, what, info.st_uid, os.geteuid()))
        if info.st_mode & 0o077:
            raise DeployError("{}: {} may be read or written by group or others (mode {:04o}); refused "
                              "(help: chmod 600 {})".format(path, what, stat.S_IMODE(info.st_mode), path))
        text = handle.read(4 * KEY_BYTES)
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise DeployError("{}: not a cluster key ({} hex digits and a newline expected)".format(path, 2 * KEY_BYTES))
    return key


def install(path, key=None):
    """Make `path` hold the cluster key: `key` when given (replacing another), else the key
    already there, else a new one. Returns whether the file changed."""
    if os.path.lexists(path):
        current = read(path)
        if key is None or key == current:
            return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write(path, key if key is not None else new())
    return True


def for_output(out_dir, key_file=None):
    """The key of a topology deploy into `out_dir`: `--key-file`'s, else the one an earlier run
    left in `out_dir/cluster.key`, else a new one."""
    if key_file:
        return read(key_file, "the --key-file")
    existing = os.path.join(out_dir, NAME)
    if os.path.lexists(existing):
        return read(existing)
    return new()
