"""Builds small extension trees for the node deployer's tests, in the formats `cargo xtask dist`
writes (definitions, driver directories, library entries, `sw_packages`, SHA256SUMS beside the
tree), with resources shaped to exercise one rule each. Also hostile archives (bombs made
cheaply), a local wheel, helpers to run the deployer and snapshot a home, and `DeployerCase`,
the tests' base: a temporary home and tree, and the deployer run on them."""

import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import unittest
import zipfile
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLATFORM = ["--platform", "ubuntu-linux", "14.04"]
INSIDE = {"one-of": [
    {"key": {"name": "ubuntu-linux", "version": "14.04"}, "port_mapping": {"host": "host"}},
    {"key": {"name": "mac-osx", "version": {"greater-than-or-equal": "10.5"}}, "port_mapping": {"host": "host"}},
]}
# The packages `dist` ships beside bin/deploy, whole (plan::DEPLOYER_PACKAGES).
SHIPPED_PACKAGES = ("datablox_deployer", "datablox_framework")
FRAMEWORK = {"key": {"name": "fw", "version": "1.0"}, "port_mapping": {"datablox_framework": "datablox_framework"}}


def mangle(text):
    return text.lower().replace("-", "_").replace(".", "_").replace(" ", "")


def tgz(members):
    """A gzipped tar of `members`: (TarInfo fields dict, bytes or None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for fields, data in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for field, value in fields.items():
                setattr(info, field, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def gzip_pieces(pieces):
    """One gzip member holding the concatenation of `pieces`, (bytes, count) each, every piece
    compressed once: a full flush empties deflate's window, so each copy compresses alike and
    a GiB of repeated bytes costs a second and a MiB on disk."""
    compress = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
    crc = size = 0
    for data, count in pieces:
        out.append((compress.compress(data) + compress.flush(zlib.Z_FULL_FLUSH)) * count)
        for _ in range(count):
            crc = zlib.crc32(data, crc)
        size += len(data) * count
    out.append(compress.flush())
    out.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)


def header(name, size=0, kind=tarfile.REGTYPE, tar_format=tarfile.USTAR_FORMAT):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info.tobuf(tar_format, "utf-8", "surrogateescape")


def padding(size):
    return bytes(-size % 512)


def huge_header_archive(top, kind, size):
    """`top/` and `top/f`, whose name comes from a GNU long name (`kind` "gnu") or which has a pax
    header with a comment (`kind` "pax"), of `size` bytes (a few KiB of it on disk)."""
    chunk = 1 << 20
    if kind == "pax":
        block = header("././@PaxHeader", size, tarfile.XHDTYPE)
        start, end, filler = b"%d comment=" % size, b"\n", b"x"
    else:
        block = header("././@LongLink", size, tarfile.GNUTYPE_LONGNAME, tarfile.GNU_FORMAT)
        start, end, filler = (top + "/").encode(), b"\0", b"n"
    fill = size - len(start) - len(end)
    return gzip_pieces([(header(top, kind=tarfile.DIRTYPE) + block + start, 1), (filler * chunk, fill // chunk),
                        (filler * (fill % chunk) + end + padding(size) + header(top + "/f", 1) + b"x" + bytes(511 + 1024), 1)])


def zeros_archive(top, sizes):
    """`top/` and a file of zeros `top/z<i>` of each of `sizes` (multiples of 1 MiB)."""
    chunk = bytes(1 << 20)
    pieces = [(header(top, kind=tarfile.DIRTYPE), 1)]
    for index, size in enumerate(sizes):
        pieces += [(header("{}/z{}".format(top, index), size), 1), (chunk, size // len(chunk))]
    return gzip_pieces(pieces + [(bytes(1024), 1)])


def tree_archive(top, files):
    """A well-formed archive: `top/` and `top/<path>` for each file."""
    members = [({"name": top, "type": tarfile.DIRTYPE, "mode": 0o755}, None)]
    for path, data in sorted(files.items()):
        members.append(({"name": top + "/" + path, "mode": 0o644}, data))
    return tgz(members)


class Tree(object):
    """An extension tree under `<root>/dist/datablox`, written by `write()`."""

    def __init__(self, root):
        self.dist = os.path.join(root, "dist")
        self.path = os.path.join(self.dist, "datablox")
        self.definitions = []
        self.library = []
        self.driver_dirs = {}
        self.sw = {}
        self.sums_override = {}
        self.resource("fw", "1.0", {"type": "Archive", "package_class": "GzippedTarArchive", "location": "fw.tgz"},
                      input_ports={"host": {"genforma_home": "path"}},
                      output_ports={"datablox_framework": {"BLOXPATH": {
                          "type": "path", "fixed-value": "${input_ports.host.genforma_home}/blox"}}})
        self.sw["fw.tgz"] = tree_archive("fw", {"__init__.py": b"VERSION = 1\n"})

    def resource(self, name, version, package, environment=None, peers=None, config_port=None,
                 input_ports=None, output_ports=None, mgr="engage.drivers.datablox.python_package_driver"):
        definition = {"key": {"name": name, "version": version}, "display_name": name, "inside": INSIDE}
        for field, value in (("environment", environment), ("peers", peers), ("config_port", config_port),
                             ("input_ports", input_ports), ("output_ports", output_ports)):
            if value is not None:
                definition[field] = value
        self.definitions.append(definition)
        self.library.append({"key": {"name": name, "version": version}, "mgr_module_name": mgr,
                             "packages": [package] if package else []})
        return definition

    def block(self, name, version, needs=(), peers=None, files=None, archive=None):
        """A block with a driver directory, like the generated ones; `needs` adds environment
        constraints (dicts) after the framework."""
        directory = mangle(name) + "__" + mangle(version)
        definition = {
            "key": {"name": name, "version": version}, "display_name": name + " block",
            "input_ports": {"datablox_framework": {"BLOXPATH": "path"}},
            "output_ports": {"block_info": {"home": {
                "type": "path", "fixed-value": "${input_ports.datablox_framework.BLOXPATH}/" + directory}}},
            "inside": INSIDE,
            "environment": {"all-of": [FRAMEWORK] + list(needs)},
        }
        if peers:
            definition["peers"] = peers
        self.driver_dirs[directory] = (definition, [
            {"type": "Archive", "package_class": "GzippedTarArchive", "location": directory + ".tgz"}])
        self.sw[directory + ".tgz"] = archive if archive is not None else tree_archive(
            directory, files or {"__init__.py": b"", "b_{}.py".format(mangle(name)): b"# block\n"})
        return directory

    def write(self):
        os.makedirs(os.path.join(self.path, "metadata"), exist_ok=True)
        os.makedirs(os.path.join(self.path, "sw_packages"), exist_ok=True)
        with open(os.path.join(self.path, "version.txt"), "w") as handle:
            handle.write("1.0\n")
        write_json(os.path.join(self.path, "metadata", "resource_definitions.json"), self.definitions)
        write_json(os.path.join(self.path, "metadata", "resource_library.json"), self.library)
        for directory, (definition, packages) in self.driver_dirs.items():
            os.makedirs(os.path.join(self.path, "drivers", directory), exist_ok=True)
            write_json(os.path.join(self.path, "drivers", directory, "resources.json"), [definition])
            write_json(os.path.join(self.path, "drivers", directory, "packages.json"), packages)
        lines = []
        for name, data in sorted(self.sw.items()):
            with open(os.path.join(self.path, "sw_packages", name), "wb") as handle:
                handle.write(data)
            digest = self.sums_override.get(name, hashlib.sha256(data).hexdigest())
            lines.append("{}  datablox/sw_packages/{}\n".format(digest, name))
        with open(os.path.join(self.dist, "SHA256SUMS"), "w") as handle:
            handle.write("".join(lines))
        # The deployer ships in the tree as `dist` ships it (plan::DEPLOYER_PACKAGES): bin/deploy,
        # and every `.py` file of each package directory in bin/<package>/.
        for package in SHIPPED_PACKAGES:
            source = os.path.join(REPO, "python", package)
            target = os.path.join(self.path, "bin", package)
            os.makedirs(target, exist_ok=True)
            for name in sorted(os.listdir(source)):
                if name.endswith(".py"):
                    shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
        shutil.copyfile(os.path.join(REPO, "engage-extension", "bin", "deploy"), os.path.join(self.path, "bin", "deploy"))
        return self


def write_json(path, value):
    with open(path, "w") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)


def constraint(name, version, mapping=None):
    found = {"key": {"name": name, "version": version}}
    if mapping:
        found["port_mapping"] = mapping
    return found


def deployer(home, tree, *args, env=None, wrapper=()):
    """Runs the deployer from the repository's package on `tree` (through the command `wrapper`
    when given); returns the CompletedProcess."""
    environment = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"), PYTHONDONTWRITEBYTECODE="1")
    environment.pop("DATABLOX_DEPLOY_CRASH", None)
    environment.update(env or {})
    command = list(wrapper) + [sys.executable, "-m", "datablox_deployer", "--home", home, "--tree", tree.path] + PLATFORM + list(args)
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=environment)


def snapshot(root):
    """{relative path: (kind, content or link target, mode)} of everything under `root`."""
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            relative = os.path.relpath(path, root)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path), None)
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir", None, stat.S_IMODE(info.st_mode))
            else:
                with open(path, "rb") as handle:
                    found[relative] = ("file", handle.read(), stat.S_IMODE(info.st_mode))
    return found


def wheel(directory, name, version, module_source, scripts=None):
    """A minimal pure-Python wheel `name-version-py3-none-any.whl` in `directory`, with
    `scripts` ({name: bytes}) in its `.data/scripts/` (pip puts them into `<target>/bin/`)."""
    dist_info = "{}-{}.dist-info".format(name, version)
    files = {
        name + "/__init__.py": module_source.encode("utf-8"),
        dist_info + "/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(name, version).encode(),
        dist_info + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    for script, data in (scripts or {}).items():
        files["{}-{}.data/scripts/{}".format(name, version, script)] = data
    record = "".join("{},,\n".format(path) for path in files) + dist_info + "/RECORD,,\n"
    files[dist_info + "/RECORD"] = record.encode()
    path = os.path.join(directory, "{}-{}-py3-none-any.whl".format(name, version))
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in sorted(files.items()):
            archive.writestr(member, data)
    return path


class DeployerCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="deployer-")
        self.home = os.path.join(self.tmp, "home")
        self.tree = Tree(self.tmp)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def deploy(self, *args, **kwargs):
        expect = kwargs.pop("expect", 0)
        run = deployer(self.home, self.tree, *args, **kwargs)
        self.assertEqual(run.returncode, expect, "stdout:\n{}\nstderr:\n{}".format(run.stdout, run.stderr))
        return run

    def plan(self, *args):
        return json.loads(self.deploy("--dry-run", "--json", *args).stdout)["steps"]

    def assert_unchanged_but_logged(self, before, *expected):
        """The home is byte-for-byte `before`, but for one line appended to log/deploy.log that
        holds every text of `expected`."""
        after = snapshot(self.home)
        log_before, log_after = before.pop("log/deploy.log")[1], after.pop("log/deploy.log")[1]
        self.assertEqual(after, before)
        self.assertTrue(log_after.startswith(log_before), log_after)
        added = log_after[len(log_before):].decode("utf-8")
        self.assertEqual(added.count("\n"), 1, added)
        for text in expected:
            self.assertIn(text, added)
        return added
