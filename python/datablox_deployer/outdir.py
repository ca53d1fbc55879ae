"""The output-directory rule, the one place it is written down. It holds for what the deployer
writes (`place --bundle DIR` and `--ansible DIR`, written whole and switched into place;
`--homes-dir DIR`'s homes, deployed into) and for `cargo xtask dist --out` (`xtask/src/output.rs`):

- A path is ours to write when it does not exist, is an empty directory, or is a directory (not
  a symbolic link) holding our marker, a regular file: a bundle directory's plan.json with its
  `bundle_format`, an Ansible directory's site.yml with its header line, a home's
  config/installed_resources.json; for `dist`, its cache or dist-manifest.json. Anything else is
  refused before anything is written, and left alone.
- A whole output is made in a fresh sibling `.<name>.tmp-<host>-<pid>-XXXXXX` and renamed into
  place; an earlier output, checked as ours again, is first moved into a fresh sibling
  `.<name>.old-<host>-<pid>-XXXXXX`, moved back if the rename fails, and removed after. The host
  and pid in those names let a later run tell what a killed run left (removed) from what a
  running one is still writing (left alone).
"""

import errno
import os
import shutil
import stat
import tempfile

FOREIGN = "holds files this tool did not write"


def refusal(path, marked):
    """Why `path` may not be written as an output, or None when it may: it does not exist, it is
    an empty directory, or a directory (not a symbolic link) for which `marked(path)` is true."""
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        return "is a symbolic link"
    if not os.path.isdir(path):
        return "is not a directory"
    if not os.listdir(path) or marked(path):
        return None
    return FOREIGN


def read_marker(path):
    """The bytes of the marker file `path`, or None when it is missing, a symbolic link or not a
    regular file (a marker is never followed through a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return handle.read()


def scratch_dir(parent, label, kind):
    """A fresh private directory `<parent>/.<label>.<kind>-<host>-<pid>-XXXXXX` (`tmp` for a
    staged output, `old` for the one it replaces)."""
    return tempfile.mkdtemp(prefix=".{}.{}-{}-{}-".format(label, kind, os.uname().nodename, os.getpid()), dir=parent)


def remove_leftovers(parent, label):
    """Remove the scratch directories of `label` under `parent` that a run on this host left when it
    was killed: those whose pid no longer runs. A running writer's, another host's (a shared file
    system) and anything not named by `scratch_dir` are left alone."""
    host = os.uname().nodename
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        for kind in ("tmp", "old"):
            prefix = ".{}.{}-{}-".format(label, kind, host)
            if not name.startswith(prefix):
                continue
            pid = name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not process_runs(int(pid)):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def process_runs(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno != errno.ESRCH  # EPERM: it runs, as another user
    return True


def staging(parent, label):
    """A fresh staging directory for the output `<parent>/<label>`, once the leftovers of killed
    runs are removed."""
    remove_leftovers(parent, label)
    return scratch_dir(parent, label, "tmp")


def switch(staged, out, check):
    """Rename `staged` to `out`. An existing `out` is checked again (`check(out)` raises unless it
    is ours), moved aside, and removed once `staged` is in place; put back if that fails."""
    parent, label = os.path.split(out)
    old = None
    try:
        if os.path.lexists(out):
            check(out)
            old = scratch_dir(parent, label, "old")
            os.rename(out, os.path.join(old, "x"))
        os.rename(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        if old and os.path.isdir(os.path.join(old, "x")) and not os.path.lexists(out):
            os.rename(os.path.join(old, "x"), out)
        raise
    finally:
        if old:
            shutil.rmtree(old, ignore_errors=True)
