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
import signal
import sys
import tempfile
import time

from . import DeployError, safetar
from .extension import key_text

ENGAGE_PARTS = ("version.txt", "metadata", "drivers", "sw_packages", "bin")
# What `pip install --target` may write beside the importable entries, never moved into python/.
PIP_NOT_IMPORTABLE = frozenset(["bin", "Scripts", "include", "lib", "lib64", "local", "share", "etc"])
DEPLOYER_PACKAGE = "datablox_deployer"


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
        os.kill(os.getpid(), signal.SIGKILL)


def link_or_copy(source, target):
    """A hard link when source and target share a file system, else a copy. Safe for package
    files: `dist` replaces a changed file by renaming a new one over it, never in place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_atomically(path, data):
    """Write bytes to a temporary file beside `path` and os.replace() it into place: a process
    killed at any point leaves the old file or the new one.

    No fsync: a kill is what the deployer guards against; against a power cut, a file replaced
    by rename is flushed with the rename by ext4 (its default `auto_da_alloc`), and an fsync of
    this file alone would not make the resources it records (extracted without fsync, as tar
    and pip extract) durable either. On this VM one fsync cost 50 ms, a third of a deploy."""
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


def tree_digest(root, parts):
    """SHA-256 over the relative paths and contents of the files under `root/<part>`."""
    digest = hashlib.sha256()
    for part in parts:
        top = os.path.join(root, part)
        paths = [top] if os.path.isfile(top) else []
        for directory, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            paths.extend(os.path.join(directory, f) for f in sorted(filenames) if not f.endswith(".pyc"))
        for path in paths:
            if os.path.relpath(path, root) == os.path.join("bin", "deployer"):
                continue  # the home's own copy of bin/deploy
            digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


class Home(object):
    def __init__(self, path):
        self.root = os.path.abspath(path)

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

    def make_layout(self):
        for part in ("engage", "config", "python", "blox", "log"):
            os.makedirs(self.path(part), exist_ok=True)
        marker = self.path("blox", "__init__.py")
        if not os.path.exists(marker):
            write_atomically(marker, b"")

    def log_event(self, text):
        """Appends one line to `<home>/log/deploy.log`: UTC time, pid and the event (`install
        ...`, `refused: ...`, `failed: ...`), its line breaks written as ` | `. One
        os.write() on an O_APPEND descriptor, so lines of concurrent deployers never mix. Only
        in a home that has its `log/` already: a deploy refused before a home exists leaves
        nothing behind, not even a log."""
        directory = self.path("log")
        if not os.path.isdir(directory):
            return
        now = time.time()
        line = "{}.{:03d}Z pid {} {}".format(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                                            int(now * 1000) % 1000, os.getpid(),
                                            " | ".join(text.strip().splitlines()))
        fd = os.open(os.path.join(directory, "deploy.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8", "replace"))
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def locked(self):
        """Holds `<home>/.deploy.lock` (fcntl.flock) for the block: one deployer at a time. The
        lock dies with its process, so a killed deployer never leaves the home locked."""
        os.makedirs(self.root, exist_ok=True)
        handle = open(self.path(".deploy.lock"), "a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def clean_staging(self):
        """Removes what a killed deploy left in `.staging/` (call with the lock held)."""
        if os.path.isdir(self.staging):
            shutil.rmtree(self.staging)

    def new_staging(self, label):
        os.makedirs(self.staging, exist_ok=True)
        return tempfile.mkdtemp(prefix=label + ".", dir=self.staging)

    # -- installed_resources.json ---------------------------------------------------------------

    def installed(self):
        if not os.path.exists(self.installed_file):
            return []
        try:
            with open(self.installed_file, "rb") as handle:
                instances = json.loads(handle.read().decode("utf-8"))
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
        os.makedirs(new)
        for part in ENGAGE_PARTS:
            source = extension.path(part)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(new, part), copy_function=link_or_copy,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif os.path.isfile(source):
                shutil.copyfile(source, os.path.join(new, part))
        launcher = os.path.join(new, "bin", "deploy")
        if os.path.isfile(launcher):
            shutil.copyfile(launcher, os.path.join(new, "bin", "deployer"))
            os.chmod(os.path.join(new, "bin", "deployer"), 0o755)
        with open(os.path.join(new, "SHA256SUMS"), "w") as handle:
            handle.write(extension.home_sums())
        old = os.path.join(staging, "old")
        if os.path.isdir(self.engage):
            os.rename(self.engage, old)
        os.rename(new, self.engage)
        shutil.rmtree(staging)
        return True

    # -- package kinds -------------------------------------------------------------------------------

    def place(self, prepared, target):
        """Rename `prepared` (in staging) to `target`, replacing what is there."""
        crash_point("extracted")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            old = self.new_staging("old")
            os.rename(target, os.path.join(old, "x"))
            os.rename(prepared, target)
            shutil.rmtree(old)
        else:
            os.rename(prepared, target)
        crash_point("placed")

    def prepare_archive(self, extension, location, limits):
        """Verify the archive against SHA256SUMS, then check and extract its members into staging.
        Returns (the extracted top directory, the digest)."""
        archive = extension.path("sw_packages", location)
        label = "sw_packages/" + location
        if not os.path.isfile(archive):
            raise DeployError("{} does not exist (help: rebuild the extension with `cargo xtask dist`)".format(archive))
        expected = extension.sums.get(location)
        top = location[:-len(".tgz")] if location.endswith(".tgz") else location.rsplit(".", 1)[0]
        # The archive's top directory is extracted as a new directory of .staging/ itself (not
        # inside one more directory: removing each emptied one cost 2 ms on this VM's ext4).
        os.makedirs(self.staging, exist_ok=True)
        destination = os.path.join(self.staging, "{}.{}".format(top, os.urandom(8).hex()))
        return safetar.extract(archive, label, top, destination, *limits, expected=expected)

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
                   "--no-input", "--target", target, requirement]
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


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM
    return True
