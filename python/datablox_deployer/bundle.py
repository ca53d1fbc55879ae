"""Per-node bundles: for each node of a placement plan, the part of the extension that node needs,
with the node deployer, ready to carry to the node and install there with Python 3 only.

  DIR/
    plan.json           the placement plan (`deploy place --json`), with `"bundle_format": 1`
    cluster.key         the cluster key (mode 0600; see `clusterkey`), beside the bundles and in
                        none of them, so they stay byte-reproducible
    topology.json       the placed topology: every block with its `at`
    <node>/             one bundle per node, an extension tree of its own:
      bundle.json       {"node", "spec", "bundle_format"}: `bin/deploy` installs `spec` by default
      version.txt
      bin/deploy, bin/datablox_deployer/*.py, bin/datablox_framework/*.py    the node deployer
      metadata/         resource_definitions.json and resource_library.json cut down to the node's
                        closure, caretaker_install_spec.json, node_install_spec.json (the
                        caretaker and the node's blocks)
      drivers/          the shared driver modules, and the driver directory of each resource of
                        the closure that has one
      sw_packages/      the closure's archives and files, nothing else
      topology.json     the placed topology
      SHA256SUMS        every other file of the bundle (`cd DIR/<node> && sha256sum -c SHA256SUMS`)

On the node: `python3 <bundle>/bin/deploy --home H` (then `<home>/engage/bin/deployer --home H
start`). The bytes depend only on the dist, the topology and the nodes: JSON sorted, modes 0644
(0755 for directories and `bin/deploy`), mtimes 1980-01-01. `write()` builds everything in a
temporary sibling of DIR and renames it into place; it replaces only a DIR it wrote before (or an
empty one): the output-directory rule, `outdir`.
"""

import errno
import json
import os
import shutil
import stat

from datablox_framework import auth

from . import DeployError, clusterkey, outdir
from .extension import DEFINITIONS, DEFAULT_SPEC, LIBRARY, NODE_SPEC, key_tuple, read_json
from .home import ENGAGE_PARTS, extension_files
from .safetar import sha256_file

BUNDLE_FORMAT = 1
MTIME = 315532800  # 1980-01-01T00:00:00Z, as `dist` stamps archive members without SOURCE_DATE_EPOCH
SKIP = ("__pycache__",)


def json_bytes(value):
    return (json.dumps(value, sort_keys=True, indent=2) + "\n").encode("utf-8")


class Writer(object):
    """Writes files under `root` with fixed modes and mtimes."""

    def __init__(self, root):
        self.root = root

    def _dirs(self, path):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory)

    def data(self, relative, data, mode=0o644):
        path = os.path.join(self.root, relative)
        self._dirs(path)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)

    def copy(self, source, relative, mode=0o644):
        """Copies the regular file `source` (of the dist); a link there is refused, never followed."""
        path = os.path.join(self.root, relative)
        self._dirs(path)
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as error:
            raise DeployError("{}: {} (help: a bundle ships the dist's regular files only; rebuild the dist with "
                              "`cargo xtask dist`)".format(
                                  source, "is a symbolic link" if error.errno == errno.ELOOP else error.strerror))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DeployError("{}: is not a regular file (help: a bundle ships the dist's regular files only)".format(source))
            with open(path, "wb") as out:
                shutil.copyfileobj(handle, out)
        os.chmod(path, mode)

    def finish(self):
        """Normalize every directory's mode and every mtime under root."""
        for directory, dirnames, filenames in os.walk(self.root):
            for name in filenames:
                os.utime(os.path.join(directory, name), (MTIME, MTIME))
            for name in dirnames:
                os.chmod(os.path.join(directory, name), 0o755)
        os.chmod(self.root, 0o755)
        for directory, dirnames, _ in os.walk(self.root, topdown=False):
            for name in dirnames:
                os.utime(os.path.join(directory, name), (MTIME, MTIME))
        os.utime(self.root, (MTIME, MTIME))


def driver_dirs(extension):
    """{key: driver directory name} for the keys defined in `drivers/<dir>/resources.json`."""
    out = {}
    drivers = extension.path("drivers")
    for name in sorted(os.listdir(drivers)) if os.path.isdir(drivers) else []:
        resources = os.path.join(drivers, name, "resources.json")
        if os.path.isfile(resources):
            for definition in read_json(resources):
                out[key_tuple(definition["key"])] = name
    return out


def write_node(extension, plan, node, writer):
    """One node's bundle into `writer.root`."""
    closure = set(plan.closures[node])
    if os.path.isfile(extension.path("version.txt")):
        writer.copy(extension.path("version.txt"), "version.txt")
    # The node deployer, as `dist` ships it.
    writer.copy(extension.path("bin", "deploy"), os.path.join("bin", "deploy"), 0o755)
    for package in ("datablox_deployer", "datablox_framework"):
        directory = extension.path("bin", package)
        for name in sorted(os.listdir(directory)):
            if name.endswith(".py"):
                writer.copy(os.path.join(directory, name), os.path.join("bin", package, name))
    # Metadata cut down to the closure.
    definitions = read_json(extension.path(DEFINITIONS))
    if isinstance(definitions, dict):
        definitions = definitions.get("resource_definitions", [])
    writer.data(DEFINITIONS, json_bytes([d for d in definitions if key_tuple(d["key"]) in closure]))
    library = read_json(extension.path(LIBRARY)) if os.path.isfile(extension.path(LIBRARY)) else []
    writer.data(LIBRARY, json_bytes([e for e in library if key_tuple(e["key"]) in closure]))
    writer.data(os.path.join("metadata", DEFAULT_SPEC), json_bytes(extension.spec(DEFAULT_SPEC)))
    writer.data(os.path.join("metadata", NODE_SPEC), json_bytes(plan.spec(node)))
    # Drivers: the shared modules at the top, and the directories of the closure's resources.
    drivers = extension.path("drivers")
    for name in sorted(os.listdir(drivers)) if os.path.isdir(drivers) else []:
        if os.path.isfile(os.path.join(drivers, name)) and not name.endswith(".pyc"):
            writer.copy(os.path.join(drivers, name), os.path.join("drivers", name))
    dirs = driver_dirs(extension)
    for key in sorted(closure):
        name = dirs.get(key)
        if name is None:
            continue
        for directory, dirnames, filenames in os.walk(os.path.join(drivers, name)):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP)
            for file_name in sorted(filenames):
                if file_name.endswith(".pyc"):
                    continue
                source = os.path.join(directory, file_name)
                writer.copy(source, os.path.relpath(source, extension.root))
    # The closure's package files, checked against the dist's SHA256SUMS on the way.
    for key in sorted(closure):
        location = plan.files.get(key)
        if location is None:
            continue
        source = extension.path("sw_packages", location)
        expected = extension.sums.get(location)
        if expected is None or sha256_file(source) != expected:
            raise DeployError("{}: its SHA-256 is not the one SHA256SUMS lists (help: rebuild the dist with "
                              "`cargo xtask dist`)".format(source))
        writer.copy(source, os.path.join("sw_packages", location))
    writer.data("topology.json", json_bytes(plan.placed_topology()))
    writer.data("bundle.json", json_bytes({"bundle_format": BUNDLE_FORMAT, "node": node, "spec": NODE_SPEC}))
    writer.data("SHA256SUMS", sums_text(writer.root).encode("utf-8"))


def sums_text(root):
    """`<sha256>  <path>` for every file under root but SHA256SUMS, paths sorted byte-wise."""
    paths = []
    for directory, dirnames, filenames in os.walk(root):
        for name in filenames:
            relative = os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
            if relative != "SHA256SUMS":
                paths.append(relative)
    paths.sort(key=lambda p: p.encode("utf-8"))
    return "".join("{}  {}\n".format(sha256_file(os.path.join(root, p)), p) for p in paths)


def is_bundle_dir(path):
    """Whether the directory `path` holds the plan.json (a regular file) that `write()` makes."""
    try:
        return json.loads((outdir.read_marker(os.path.join(path, "plan.json")) or b"").decode("utf-8")).get(
            "bundle_format") == BUNDLE_FORMAT
    except (ValueError, AttributeError):
        return False


def check_target(out):
    """Refuse an `out` that is not ours to replace (the output-directory rule; nothing is written)."""
    if outdir.refusal(out, is_bundle_dir):
        raise DeployError("{} exists and is not a bundle directory (help: pass a new or empty directory, or one "
                          "`--bundle` wrote before; nothing was written)".format(out))


def stage(extension, plan, parent, label="bundles"):
    """Every bundle of `plan`, plan.json and topology.json in a fresh directory
    `<parent>/.<label>.tmp-<host>-<pid>-XXXXXX`; returns its path."""
    # A link anywhere in what bundles are cut from is refused before anything is written: the
    # dist has none (`dist` writes regular files), and a bundle ships no followed link.
    for _ in extension_files(extension.root, ENGAGE_PARTS):
        pass
    staging = outdir.staging(parent, label)
    try:
        top = Writer(staging)
        document = dict(plan.to_json(), bundle_format=BUNDLE_FORMAT)
        top.data("plan.json", json_bytes(document))
        top.data("topology.json", json_bytes(plan.placed_topology()))
        for node in plan.nodes:
            write_node(extension, plan, node, Writer(os.path.join(staging, node)))
        top.finish()
        return staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write(extension, plan, out, key):
    """Write the bundles of `plan` and the cluster `key` to `out`, all or nothing (see the
    module's documentation)."""
    out = os.path.abspath(out)
    check_target(out)
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        raise DeployError("{} does not exist (help: create it first)".format(parent))
    staging = stage(extension, plan, parent, os.path.basename(out))
    try:
        auth.write_key(os.path.join(staging, clusterkey.NAME), key)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    outdir.switch(staging, out, check_target)
    return out
