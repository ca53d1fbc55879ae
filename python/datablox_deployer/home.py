"""A deployment home and what changes it: its layout, its lock, `installed_resources.json`, its
copy of the extension, and installing each package kind.

  <home>/engage/        the extension's metadata, drivers, sw_packages, SHA256SUMS, bin/deployer
  <home>/config/        installed_resources.json (Engage's format), deployer.json (settings)
  <home>/python/        Python packages (framework, adapter, pip packages): PYTHONPATH
  <home>/blox/          BLOXPATH: one <module>__<version>/ per block
  <home>/log/           deploy.log, service pid files and logs
  <home>/.staging/      work in progress; whatever is there when no deployer holds the lock is
                        the leftover of a killed deploy and is removed

Every resource is prepared in `.staging/` and renamed into place, then recorded:
installed_resources.json is written to a temporary file and os.replace()d once at the end of a
deploy (and at most every few tenths of a second meanwhile), so a deploy killed at any point
leaves whole resources or none, and the next run installs again what is placed but unrecorded.
"""

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import sys
import tempfile
import time

from . import DeployError, safetar
from .extension import key_text

ENGAGE_PARTS = ("version.txt", "metadata", "drivers", "sw_packages", "bin")
# What `pip install --target` may write beside the importable entries, never moved into python/.
PIP_NOT_IMPORTABLE = frozenset(["bin", "Scripts", "include", "lib", "lib64", "local", "share", "etc"])
DEPLOYER_PACKAGE = "datablox_deployer"
# The directories of a home the deployer writes into (besides the home itself), checked by
# `Home.check` before anything is written.
WRITTEN_DIRS = ("engage", "config", "python", "blox", "log", "data", ".staging")

# What a home holds: a directory holding only these is a home (maybe one a killed deploy began).
HOME_ENTRIES = frozenset(["engage", "config", "python", "blox", "log", "data", ".staging", ".deploy.lock"])


class NotAHome(DeployError):
    """The path given as a home is something else; refused before anything is written there."""


_crash_counts = {}


def crash_point(name):
    """Test hook: with DATABLOX_DEPLOY_CRASH=<name>[@N], the process SIGKILLs itself the N-th time
    (default first) it reaches point `name`: `extracted` (a resource is ready in staging),
    `placed` (renamed into place, not yet recorded), `recorded` (installed_resources.json
    written). Used by the crash tests; unset, it does nothing."""
    wanted = os.environ.get("DATABLOX_DEPLOY_CRASH")
    if not wanted:
        return
    point, _, count = wanted.partition("@")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(count or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def write_atomically(path, data):
    """Write bytes to a temporary file beside `path` and os.replace() it into place: a process
    killed at any point leaves the old file or the new one.

    No fsync: a kill is what the deployer guards against; against a power cut, a file replaced
    by rename is flushed with the rename by ext4 (its default `auto_da_alloc`), and an fsync of
    this file alone would not make the resources it records (extracted without fsync, as tar
    and pip extract) durable either."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.remove(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the tree must not wait for a writer; fstat then refuses it.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _not_regular(path, what):
    return DeployError("{}: {}; the extension is copied into a home as regular files and directories only, "
                       "and links are never followed (help: rebuild the extension with `cargo xtask dist`, "
                       "which writes none)".format(path, what))


def _open_nofollow(name, flags, dir_fd, label):
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_regular(label, "is a symbolic link" if error.errno == errno.ELOOP else "is not a directory")
        raise DeployError("cannot open {}: {}".format(label, error.strerror or error))


def extension_files(root, parts):
    """Walks `root/<part>` for each part and yields (relative path, fd): fd None for a directory
    (yielded before what it holds), else a descriptor open for reading a regular file (closed when
    the walk goes on). Every name is opened relative to its directory's descriptor with
    O_NOFOLLOW, so a symbolic link anywhere, also one swapped in during the walk, is refused
    (DeployError), as are FIFOs, sockets and devices. `__pycache__/` and `*.pyc` are skipped."""
    # The root as named (a link to it is the caller's choice); nothing below it is followed.
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise DeployError("cannot open {}: {}".format(root, error.strerror or error))
    try:
        for part in parts:
            try:
                info = os.stat(part, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield from _walk_entry(root_fd, part, part, info, root)
    finally:
        os.close(root_fd)


def _walk_entry(parent_fd, name, relative, info, root):
    label = os.path.join(root, relative)
    if stat.S_ISLNK(info.st_mode):
        raise _not_regular(label, "is a symbolic link")
    if stat.S_ISDIR(info.st_mode):
        fd = _open_nofollow(name, DIR_FLAGS, parent_fd, label)
        try:
            yield relative, None
            # listdir and stat on the descriptor (os.scandir takes one only from Python 3.7).
            for entry in sorted(os.listdir(fd)):
                if entry == "__pycache__" or entry.endswith(".pyc"):
                    continue
                yield from _walk_entry(fd, entry, os.path.join(relative, entry),
                                       os.stat(entry, dir_fd=fd, follow_symlinks=False), root)
        finally:
            os.close(fd)
    elif stat.S_ISREG(info.st_mode):
        fd = _open_nofollow(name, READ_FLAGS, parent_fd, label)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _not_regular(label, "is not a regular file")
            yield relative, fd
        finally:
            os.close(fd)
    else:
        raise _not_regular(label, "is not a regular file")


def copy_extension(root, parts, destination):
    """Copies `root/<part>` for each part into `destination` (created, and empty: a fresh staging
    directory) through `extension_files`: every file a new regular file of the deploying user
    (mode 0755 when the source is executable, else 0644), every directory a new one (0755);
    nothing is linked, and nothing is followed on either side (new names are created with
    O_EXCL | O_NOFOLLOW relative to a directory descriptor this copy made)."""
    os.mkdir(destination, 0o755)
    # The directories made on the way to the current entry, as (relative path, fd): the walk is
    # depth first, so a directory is done once an entry outside it comes (its fd is then closed).
    made = [("", os.open(destination, DIR_FLAGS))]
    try:
        for relative, source_fd in extension_files(root, parts):
            parent, name = os.path.split(relative)
            while made[-1][0] != parent:
                os.close(made.pop()[1])
            if source_fd is None:
                os.mkdir(name, 0o755, dir_fd=made[-1][1])
                made.append((relative, os.open(name, DIR_FLAGS, dir_fd=made[-1][1])))
            else:
                mode = 0o755 if os.fstat(source_fd).st_mode & 0o111 else 0o644
                _write_new(made[-1][1], name, mode, lambda out: _pump(source_fd, out))
    finally:
        for _, fd in made:
            os.close(fd)


def _pump(source_fd, out_fd):
    """Copies the regular file open as `source_fd` to `out_fd` in the kernel (sendfile: the
    archives of a dist are most of what is copied)."""
    offset = 0
    while True:
        sent = os.sendfile(out_fd, source_fd, offset, 1 << 30)
        if not sent:
            return
        offset += sent


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_new(dir_fd, name, mode, fill):
    """A new file `name` in `dir_fd` (or a path, with None) (O_EXCL: never an existing file or link), filled by
    `fill(fd)`, with `mode` whatever the umask."""
    fd = os.open(name, CREATE_FLAGS, mode, dir_fd=dir_fd)
    try:
        fill(fd)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def tree_digest(root, parts):
    """SHA-256 over the relative paths and contents of the files under `root/<part>`, read
    through `extension_files` (a link refuses the tree)."""
    digest = hashlib.sha256()
    for relative, fd in extension_files(root, parts):
        if fd is None or relative == os.path.join("bin", "deployer"):
            continue  # a directory, or the home's own copy of bin/deploy
        content = hashlib.sha256()
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            content.update(chunk)
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update(content.digest())
    return digest.hexdigest()


class Home(object):
    def __init__(self, path):
        self.root = os.path.abspath(path)
        self._parsed = (None, None)  # see `installed`
        self._in_staging = False  # see `working_in_staging`

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def engage(self):
        return self.path("engage")

    @property
    def installed_file(self):
        return self.path("config", "installed_resources.json")

    @property
    def settings_file(self):
        return self.path("config", "deployer.json")

    @property
    def staging(self):
        return self.path(".staging")

    def exists(self):
        return os.path.isfile(self.installed_file)

    # -- whose home it is ---------------------------------------------------------------------------

    def dir_problem(self, path):
        """Why `path` may not be written by this deployer, or None (also when it does not exist):
        as OpenSSH's StrictModes, a directory the deployer writes into must be a real directory
        (not a symbolic link), owned by the deploying user, and not writable by its group or by
        others, so that no other local user can redirect or change what is installed."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return ("{} is a symbolic link (to {})".format(path, os.readlink(path)),
                    "remove the link; the deployer makes its own directories")
        if not stat.S_ISDIR(info.st_mode):
            return "{} is not a directory".format(path), "remove it, or deploy into another home"
        if info.st_uid != os.geteuid():
            return ("{} is owned by uid {}, not by the deploying user (uid {})".format(path, info.st_uid, os.geteuid()),
                    "deploy as its owner, or have its owner remove it, or deploy into another home")
        if info.st_mode & 0o022:
            return ("{} is writable by {} (mode {:o})".format(
                path, "its group and others" if info.st_mode & 0o022 == 0o022 else
                "its group" if info.st_mode & 0o020 else "others", stat.S_IMODE(info.st_mode)),
                "`chmod go-w {}` if you trust whoever could write it, else deploy into another home".format(path))
        return None

    def check(self):
        """Refuses (DeployError) a home or a directory of it the deployer writes into that another
        user could change (`dir_problem`), before anything is written."""
        for path in [self.root] + [self.path(part) for part in WRITTEN_DIRS]:
            problem = self.dir_problem(path)
            if problem:
                raise DeployError("refusing the home {}: {} (help: {}; nothing was written)".format(
                    self.root, problem[0], problem[1]))

    def ensure_dir(self, path):
        """Every directory from the home down to `path`: checked (`dir_problem`) where it exists,
        else made with mode 0755."""
        relative = os.path.relpath(path, self.root)
        if relative == os.pardir or relative.startswith(os.pardir + os.sep):
            raise DeployError("{} is outside the home {} (a bug)".format(path, self.root))
        current = self.root
        for part in [] if relative == os.curdir else relative.split(os.sep):
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                problem = self.dir_problem(current)
                if problem:
                    raise DeployError("refusing the home {}: {} (help: {})".format(self.root, problem[0], problem[1]))

    def check_usable(self):
        """Refuses, before anything is written (not even the lock or the log), a path that is not
        a home and not empty: a file, a directory holding other things (a home holds only its
        layout), or a home whose installed_resources.json cannot be read or was written by
        Engage itself. A missing path is fine: the deploy creates it."""
        if not os.path.lexists(self.root):
            return
        if not os.path.isdir(self.root):
            raise NotAHome("{} exists and is not a directory (help: pass a directory for the home; "
                           "nothing was written)".format(self.root))
        if is_real_engage_home(self.root):
            raise NotAHome("{} is a home Engage itself deployed (help: deploy into another directory; "
                           "nothing was written)".format(self.root))
        if self.exists():
            try:
                self.installed()
            except DeployError as error:
                raise NotAHome(str(error))
            return
        foreign = sorted(set(os.listdir(self.root)) - HOME_ENTRIES)
        if foreign:
            raise NotAHome("{} is neither empty nor a deployment home: it holds {} (help: deploy into an "
                           "empty or new directory, e.g. {}; nothing was written)".format(
                               self.root, ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else ""),
                               os.path.join(self.root, "datablox-home")))

    def make_layout(self):
        for part in ("engage", "config", "python", "blox", "log"):
            self.ensure_dir(self.path(part))
        marker = self.path("blox", "__init__.py")
        if not os.path.exists(marker):
            write_atomically(marker, b"")

    def log_event(self, text):
        """Appends one line to `<home>/log/deploy.log`: UTC time, pid and the event (`install
        ...`, `refused: ...`, `failed: ...`), its line breaks written as ` | `. One
        os.write() on an O_APPEND descriptor, so lines of concurrent deployers never mix. Only
        in a home that has its `log/` already, and only when the home and `log/` pass `check`: a
        deploy refused before a home exists leaves nothing behind, not even a log, and a refused
        home is not written."""
        directory = self.path("log")
        if not os.path.isdir(directory) or self.dir_problem(self.root) or self.dir_problem(directory):
            return
        now = time.time()
        line = "{}.{:03d}Z pid {} {}".format(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                                            int(now * 1000) % 1000, os.getpid(),
                                            " | ".join(text.strip().splitlines()))
        fd = os.open(os.path.join(directory, "deploy.log"),
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8", "replace"))
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self):
        """Holds `<home>/.deploy.lock` (fcntl.flock) for the block: one deployer at a time. The
        lock dies with its process, so a killed deployer never leaves the home locked. The home
        is checked first (`check`)."""
        os.makedirs(os.path.dirname(self.root), exist_ok=True)
        try:
            os.mkdir(self.root, 0o755)
        except FileExistsError:
            pass
        self.check()
        fd = os.open(self.path(".deploy.lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clean_staging(self):
        """Removes what a killed deploy left in `.staging/` (call with the lock held)."""
        if os.path.isdir(self.staging) and not os.path.islink(self.staging):
            shutil.rmtree(self.staging)

    @contextlib.contextmanager
    def working_in_staging(self):
        """`.staging/` as the process's working directory for the block, the one before restored
        after (call with the lock held): archives are then extracted by paths relative to it
        (`prepare_archive`), which the `data` filter resolves an lstat per component, twice per
        member, and each file operation walks, from there rather than from `/`. Threads started
        inside share it. A working directory that cannot be opened (to return to) is kept, and
        archives are extracted by absolute paths."""
        self.ensure_dir(self.staging)
        try:
            before = os.open(os.curdir, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            yield
            return
        try:
            os.chdir(self.staging)
            self._in_staging = True
            yield
        finally:
            self._in_staging = False
            os.fchdir(before)
            os.close(before)

    def new_staging(self, label):
        self.ensure_dir(self.staging)
        return tempfile.mkdtemp(prefix=label + ".", dir=self.staging)

    # -- installed_resources.json ---------------------------------------------------------------

    def installed(self):
        """The instances in installed_resources.json ([] without one). A parse serves twice at
        most: the next call that reads the same bytes takes it (`check_usable` reads the file
        before the lock, the deploy again under it)."""
        if not os.path.exists(self.installed_file):
            return []
        try:
            with open(self.installed_file, "rb") as handle:
                data = handle.read()
            if self._parsed[0] == data:
                instances, self._parsed = self._parsed[1], (None, None)
            else:
                instances = json.loads(data.decode("utf-8"))
                self._parsed = (data, instances)
        except (OSError, ValueError) as error:
            raise DeployError("cannot read {}: {} (help: restore it, or deploy into a new home)".format(self.installed_file, error))
        if not isinstance(instances, list):
            raise DeployError("{}: expected a JSON list of resource instances".format(self.installed_file))
        return instances

    def write_installed(self, instances):
        """One instance per line: json's C encoder (an indented dump goes through its Python
        encoder, ten times slower), and still a file a person can read and diff."""
        lines = ",\n".join(json.dumps(instance, sort_keys=True) for instance in instances)
        write_atomically(self.installed_file, ("[\n" + lines + "\n]\n" if lines else "[]\n").encode("utf-8"))
        crash_point("recorded")

    def generation(self):
        """The installed generation: the first 12 hex digits of installed_resources.json's
        SHA-256 (None when absent), which the caretaker's answers about runs name too (its
        `generation()`): each run uses what is installed when it starts."""
        try:
            with open(self.installed_file, "rb") as handle:
                return hashlib.sha256(handle.read()).hexdigest()[:12]
        except OSError:
            return None

    def settings(self):
        if not os.path.exists(self.settings_file):
            return {}
        with open(self.settings_file) as handle:
            return json.load(handle)

    def save_settings(self, settings):
        write_atomically(self.settings_file, (json.dumps(settings, sort_keys=True, indent=2) + "\n").encode("utf-8"))

    # -- the home's copy of the extension ----------------------------------------------------------

    def engage_is_current(self, extension):
        if os.path.abspath(extension.root) == self.engage:
            return True
        if not os.path.isfile(os.path.join(self.engage, "SHA256SUMS")):
            return False
        with open(os.path.join(self.engage, "SHA256SUMS")) as handle:
            if handle.read() != extension.home_sums():
                return False
        return tree_digest(self.engage, ENGAGE_PARTS) == tree_digest(extension.root, ENGAGE_PARTS)

    def sync_engage(self, extension):
        """Make `<home>/engage` a copy of the extension (with SHA256SUMS and `bin/deployer`),
        staged and renamed into place. Returns whether it changed."""
        if self.engage_is_current(extension):
            return False
        staging = self.new_staging("engage")
        new = os.path.join(staging, "engage")
        copy_extension(extension.root, ENGAGE_PARTS, new)
        launcher = os.path.join(new, "bin", "deploy")
        if os.path.isfile(launcher):
            # The home's deployer: its own copy of the launcher (in this run's fresh staging).
            with open(launcher, "rb") as handle:
                data = handle.read()
            _write_new(None, os.path.join(new, "bin", "deployer"), 0o755, lambda out: _write_all(out, data))
        sums = extension.home_sums().encode("utf-8")
        _write_new(None, os.path.join(new, "SHA256SUMS"), 0o644, lambda out: _write_all(out, sums))
        old = os.path.join(staging, "old")
        if os.path.isdir(self.engage):
            os.rename(self.engage, old)
        os.rename(new, self.engage)
        shutil.rmtree(staging)
        return True

    # -- package kinds -------------------------------------------------------------------------------

    def remove(self, target):
        """Move `target` into staging, then delete it: a kill leaves it in place or gone."""
        old = self.new_staging("old")
        os.rename(target, os.path.join(old, "x"))
        shutil.rmtree(old)

    def place(self, prepared, target):
        """Rename `prepared` (in staging) to `target`, replacing what is there."""
        crash_point("extracted")
        self.ensure_dir(os.path.dirname(target))
        if os.path.lexists(target):
            old = self.new_staging("old")
            os.rename(target, os.path.join(old, "x"))
            os.rename(prepared, target)
            shutil.rmtree(old)
        else:
            os.rename(prepared, target)
        crash_point("placed")

    def prepare_archive(self, extension, location, limits):
        """Extract the archive into staging, each member checked before it is written and the
        bytes read checked against SHA256SUMS (`safetar.extract`). Returns (the extracted top
        directory, the digest)."""
        archive = extension.path("sw_packages", location)
        label = "sw_packages/" + location
        if not os.path.isfile(archive):
            raise DeployError("{} does not exist (help: rebuild the extension with `cargo xtask dist`)".format(archive))
        expected = extension.sums.get(location)
        top = location[:-len(".tgz")] if location.endswith(".tgz") else location.rsplit(".", 1)[0]
        # The archive's top directory is extracted as a new directory of .staging/ itself (not
        # inside one more directory, which would cost one more rmdir per archive).
        self.ensure_dir(self.staging)
        name = "{}.{}".format(top, os.urandom(8).hex())
        destination = os.path.join(self.staging, name)
        digest = safetar.extract(archive, label, top, name if self._in_staging else destination, *limits,
                                 expected=expected)[1]
        return destination, digest

    def prepare_file(self, extension, location):
        source = extension.path("sw_packages", location)
        label = "sw_packages/" + location
        if not os.path.isfile(source):
            raise DeployError("{} does not exist (help: rebuild the extension with `cargo xtask dist`)".format(source))
        digest = safetar.verify_digest(source, extension.sums.get(location), label)
        prepared = os.path.join(self.new_staging("file"), location)
        shutil.copyfile(source, prepared)
        if safetar.sha256_file(prepared) != digest:
            raise DeployError("{} changed while it was copied (help: run the deploy again)".format(source))
        return prepared, digest

    def importable(self, module):
        """Whether this Python imports `module` without the home: `<home>/python` does not count,
        so a pip resource placed there but not recorded (a deploy killed between its entries) is
        installed again whole, not taken for installed."""
        saved = list(sys.path)
        own = self.path("python")
        sys.path[:] = [p for p in saved if os.path.abspath(p or os.curdir) != own]
        try:
            importlib.invalidate_caches()
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False
        finally:
            sys.path[:] = saved

    def prepare_pip(self, requirement, find_links):
        """`pip install --target` into staging; returns the target directory, whose top-level
        importable entries (packages, modules, `*.dist-info`; not `bin/` and the like, as the
        Engage driver leaves them) are then renamed into `<home>/python` one by one, each
        replacing an older copy of itself, and the resource recorded last. A pip that fails or is
        killed leaves the home as it was; a deploy killed between two renames leaves the
        resource unrecorded, and the next run installs it again whole. With `find_links`, from
        that directory only (`--no-index`), so no network is needed. Also returns pip's output,
        for the log."""
        import subprocess

        target = os.path.join(self.new_staging("pip"), "target")
        command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--target", target, "--", requirement]  # `--`: never an option
        if find_links:
            command[4:4] = ["--no-index", "--find-links", find_links]
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True)
        if process.returncode != 0:
            tail = "\n".join(process.stdout.strip().splitlines()[-10:])
            raise DeployError("pip could not install `{}` (exit code {}):\n{}\n(help: {})".format(
                requirement, process.returncode, tail,
                "check that {} holds a wheel of it".format(find_links) if find_links
                else "check the network, or pass --find-links DIR with its wheel"))
        return target, "pip: " + " ".join(command) + "\n" + process.stdout.strip()


def is_real_engage_home(path):
    """A home Engage's bootstrap made: `engage/bin/deployer` without our deployer package."""
    return os.path.isfile(os.path.join(path, "engage", "bin", "deployer")) and not os.path.isdir(
        os.path.join(path, "engage", "bin", DEPLOYER_PACKAGE))


def describe_key(key):
    return key_text(key)
