"""Tests of the Engage-side drivers of Datablox, against the Engage stub (Python 2.7 and 3).

The drivers are laid out as `cargo xtask dist` and Engage would lay them out: the hand-written
modules and driver directories of `engage-extension/drivers/` become `engage/drivers/datablox/`
next to the stub's `engage` package, and a block's generated `driver.py` re-exports the generic
driver's Manager.
"""
import atexit
import io
import json
import os
import shutil
import signal
import socket
import stat
import sys
import tarfile
import tempfile
import time
import unittest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
EXTENSION_DIR = os.path.dirname(TESTS_DIR)
SOURCE_DRIVERS_DIR = os.path.join(EXTENSION_DIR, "drivers")
sys.path.insert(0, os.path.join(TESTS_DIR, "engage_stub"))

import engage_testing  # noqa: E402 (needs the stub directory on sys.path)

BLOCK_DRIVER_PY = '''"""Engage driver of the Word-Count 1.0 block: the generic block driver with this block's packages."""
import engage.drivers.utils
from engage.drivers.datablox.generic_blox_driver import Manager

def get_packages_filename():
    return engage.drivers.utils.get_packages_filename(__file__)
'''

BLOCK_PACKAGES = [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "word_count__1_0.tgz"}]

BLOCK_DEFINITION = {
    "key": {"name": "word-count", "version": "1.0"},
    "display_name": "Word-Count block",
    "input_ports": {"datablox_framework": {"BLOXPATH": "path"}},
    "output_ports": {"block_info": {"home": {
        "type": "path", "fixed-value": "${input_ports.datablox_framework.BLOXPATH}/word_count__1_0"}}},
}

FRAMEWORK_DEFINITION = {
    "key": {"name": "datablox-framework", "version": "1.0"},
    "input_ports": {"host": {"genforma_home": "path"}},
    "output_ports": {"datablox_framework": {"BLOXPATH": {
        "type": "path", "fixed-value": "${input_ports.host.genforma_home}/blox"}}},
}

FILE_DEFINITION = {
    "key": {"name": "mime-types-table", "version": "1.0"},
    "input_ports": {"host": {"genforma_home": "path"}},
    "config_port": {"path": {
        "type": "path", "default": "${input_ports.host.genforma_home}/data/mime.types"}},
}

CARETAKER_DEFINITION = {
    "key": {"name": "datablox-caretaker", "version": "1.0"},
    "config_port": {"port": {"type": "int", "default": 5000}},
    "input_ports": {"host": {"genforma_home": "path"}},
}

# A stand-in for the framework's caretaker: it records how it was started, listens on the given
# port of 127.0.0.1 and exits by itself after a while, so a failed test never leaves it behind.
FAKE_CARETAKER = '''import json, os, socket, sys, time
args = sys.argv[1:]
home = args[args.index("--home") + 1]
port = int(args[args.index("--port") + 1])
with open(os.path.join(home, "log", "fake-caretaker.json"), "w") as record:
    json.dump({"args": args, "pythonpath": os.environ.get("PYTHONPATH")}, record)
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(5)
listener.settimeout(0.5)
deadline = time.time() + 60
while time.time() < deadline:
    try:
        listener.accept()[0].close()
    except socket.timeout:
        pass
'''


def layout_drivers(dest):
    """The extension's `drivers/` as the build writes it, from the hand-written sources."""
    os.makedirs(dest)
    open(os.path.join(dest, "__init__.py"), "w").close()
    for name in os.listdir(SOURCE_DRIVERS_DIR):
        source = os.path.join(SOURCE_DRIVERS_DIR, name)
        if name.endswith(".py"):
            shutil.copy(source, dest)
        elif name == "datablox_caretaker":
            caretaker_dir = os.path.join(dest, "datablox_caretaker__1_0")
            os.makedirs(caretaker_dir)
            for module in os.listdir(source):
                if module.endswith(".py"):
                    shutil.copy(os.path.join(source, module), caretaker_dir)
            write(os.path.join(caretaker_dir, "__init__.py"), "")
            write(os.path.join(caretaker_dir, "packages.json"),
                  json.dumps([{"type": "Reference", "package_class": "DummyPackage", "location": ""}]))
            write(os.path.join(caretaker_dir, "resources.json"), json.dumps([CARETAKER_DEFINITION]))
    block_dir = os.path.join(dest, "word_count__1_0")
    os.makedirs(block_dir)
    write(os.path.join(block_dir, "__init__.py"), "")
    write(os.path.join(block_dir, "driver.py"), BLOCK_DRIVER_PY)
    write(os.path.join(block_dir, "packages.json"), json.dumps(BLOCK_PACKAGES))
    write(os.path.join(block_dir, "resources.json"), json.dumps([BLOCK_DEFINITION]))


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def make_tgz(path, files, links=()):
    """A .tgz of `files` ({member name: text}) and `links` ([(name, target, tarfile type)])."""
    with tarfile.open(path, "w:gz") as archive:
        directories = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory and directory not in directories and not directory.startswith(".."):
                    directories.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    archive.addfile(info)
            data = files[name].encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            archive.addfile(info)


def _build_engage_tree():
    tree = tempfile.mkdtemp(prefix="datablox-engage-")
    atexit.register(shutil.rmtree, tree, True)
    staging = os.path.join(tree, "staging", "drivers")
    layout_drivers(staging)
    engage_testing.build_engage_tree(os.path.join(tree, "root"), staging)
    # Another test module may have imported the stub's `engage` from elsewhere; this tree's copy,
    # with the extension inside it, must be the one imported.
    for module in [name for name in sys.modules if name == "engage" or name.startswith("engage.")]:
        del sys.modules[module]
    sys.path.insert(0, os.path.join(tree, "root"))
    return os.path.join(tree, "root")


ENGAGE_ROOT = _build_engage_tree()
DRIVERS_DIR = os.path.join(ENGAGE_ROOT, "engage", "drivers", "datablox")

import engage.drivers.resource_manager as resource_manager  # noqa: E402
import engage.drivers.service_manager as service_manager  # noqa: E402
from engage.utils.user_error import UserError  # noqa: E402


def import_driver(module_name):
    return __import__("engage.drivers.datablox." + module_name, fromlist=["Manager"])


class TempDirTestCase(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="datablox-test-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.home = os.path.join(self.root, "home")
        self.sw_packages = os.path.join(self.root, "sw_packages")
        os.makedirs(self.home)
        os.makedirs(self.sw_packages)

    def archive_package(self, filename, files, links=()):
        make_tgz(os.path.join(self.sw_packages, filename), files, links)
        return engage_testing.package_from_json(
            {"type": "Archive", "package_class": "GzippedTarArchive", "location": filename}, self.sw_packages)

    def all_paths(self):
        found = []
        for directory, dirnames, filenames in os.walk(self.root):
            for name in dirnames + filenames:
                found.append(os.path.relpath(os.path.join(directory, name), self.root))
        return sorted(found)


class ImportTest(unittest.TestCase):
    def test_every_driver_module_defines_a_manager(self):
        modules = [name[:-3] for name in os.listdir(SOURCE_DRIVERS_DIR) if name.endswith(".py")]
        self.assertIn("generic_blox_driver", modules)
        for module_name in modules:
            module = import_driver(module_name)
            self.assertTrue(issubclass(module.Manager, resource_manager.Manager), module_name)

    def test_block_driver_reexports_generic_manager(self):
        block = import_driver("word_count__1_0.driver")
        generic = import_driver("generic_blox_driver")
        self.assertIs(block.Manager, generic.Manager)
        self.assertEqual(block.get_packages_filename(),
                         os.path.join(DRIVERS_DIR, "word_count__1_0", "packages.json"))

    def test_caretaker_driver_is_a_service_with_packages_beside_it(self):
        caretaker = import_driver("datablox_caretaker__1_0.driver")
        self.assertTrue(issubclass(caretaker.Manager, service_manager.Manager))
        self.assertEqual(caretaker.get_packages_filename(),
                         os.path.join(DRIVERS_DIR, "datablox_caretaker__1_0", "packages.json"))
        with open(caretaker.get_packages_filename()) as packages:
            self.assertEqual(json.load(packages)[0]["package_class"], "DummyPackage")


class StubFollowsEngageTest(TempDirTestCase):
    """The stub refuses what Engage's own code refuses (engage/drivers/action.py, engine/library.py)."""

    def context(self):
        from engage.drivers.action import Context
        from engage.utils.log_setup import setup_engage_logger
        return Context({"id": "r1", "input_ports": {"host": {"genforma_home": self.home}}},
                       setup_engage_logger(__name__), __file__)

    def test_check_installable_to_dir_refuses_an_existing_directory(self):
        from engage.drivers.action import check_installable_to_dir
        ctx = self.context()
        ctx.r(check_installable_to_dir, os.path.join(self.home, "new"))
        with self.assertRaises(UserError) as raised:
            ctx.r(check_installable_to_dir, self.home)
        self.assertIn("Installation directory '%s' already exists" % self.home, str(raised.exception))

    def test_packages_are_engages_classes_without_package_class(self):
        expected = {"GzippedTarArchive": "GzippedTarFilePackage", "FilePackage": "FilePackage",
                    "PipLink": "PipPythonPackage", "EasyInstallLink": "EasyInstallPythonPackage",
                    "DummyPackage": "DummyPackage"}
        kinds = {"GzippedTarArchive": "Archive", "FilePackage": "File"}
        for package_class, class_name in sorted(expected.items()):
            package = engage_testing.package_from_json(
                {"type": kinds.get(package_class, "Reference"), "package_class": package_class, "location": "x"},
                self.sw_packages)
            self.assertEqual(type(package).__name__, class_name)
            self.assertFalse(hasattr(package, "package_class"), package_class)
            self.assertEqual(package.to_json()["package_class"], class_name)

    def test_package_type_must_go_with_its_class(self):
        from engage.engine.library import LibraryParseError
        with self.assertRaises(LibraryParseError):
            engage_testing.package_from_json({"type": "Archive", "package_class": "PipLink", "location": "x"},
                                             self.sw_packages)

    def test_an_action_error_becomes_a_user_error_and_id_is_required(self):
        from engage.drivers.action import Context, make_action

        @make_action
        def fails(self):
            raise ValueError("boom")

        with self.assertRaises(UserError) as raised:
            self.context().r(fails)
        self.assertIn("boom", str(raised.exception))
        with self.assertRaises(UserError):
            Context({"key": {}}, self.context().logger, __file__)

    def test_service_base_class_has_no_pid_file(self):
        metadata = engage_testing.ResourceMetadata({"id": "s", "key": {"name": "s", "version": "1"}})
        self.assertIsNone(service_manager.Manager(metadata, "s 1").get_pid_file_path())


class GenericBlockDriverTest(TempDirTestCase):
    BLOCK_FILES = {"word_count__1_0/__init__.py": "",
                   "word_count__1_0/b_word_count.py": "class word_count(object):\n    pass\n"}

    def manager(self, bloxpath=None, home=None):
        bloxpath = bloxpath or os.path.join(self.home, "blox")
        metadata = engage_testing.make_instance(
            BLOCK_DEFINITION, "word-count", {"datablox_framework": {"BLOXPATH": bloxpath}})
        if home is not None:
            instance = metadata.to_json()
            instance["output_ports"]["block_info"]["home"] = home
            metadata = engage_testing.ResourceMetadata(instance)
        return import_driver("word_count__1_0.driver").Manager(metadata)

    def test_installs_block_archive_as_home(self):
        manager = self.manager()
        package = self.archive_package("word_count__1_0.tgz", self.BLOCK_FILES)
        manager.validate_pre_install()
        self.assertFalse(manager.is_installed())
        manager.install(package)
        self.assertTrue(manager.is_installed())
        manager.validate_post_install()
        blox = os.path.join(self.home, "blox")
        self.assertTrue(os.path.isfile(os.path.join(blox, "__init__.py")))
        self.assertTrue(os.path.isfile(os.path.join(blox, "word_count__1_0", "__init__.py")))
        with open(os.path.join(blox, "word_count__1_0", "b_word_count.py")) as module:
            self.assertIn("class word_count", module.read())
        # Engage asks again before installing: an installed block is reported as such.
        self.assertTrue(self.manager().is_installed())

    def test_refuses_home_outside_bloxpath(self):
        elsewhere = os.path.join(self.home, "elsewhere", "word_count__1_0")
        manager = self.manager(home=elsewhere)
        package = self.archive_package("word_count__1_0.tgz", self.BLOCK_FILES)
        with self.assertRaises(UserError) as raised:
            manager.validate_pre_install()
        self.assertIn("not directly inside BLOXPATH", str(raised.exception))
        with self.assertRaises(UserError):
            manager.install(package)
        self.assertFalse(os.path.exists(os.path.join(self.home, "elsewhere")))
        self.assertFalse(os.path.exists(os.path.join(self.home, "blox")))

    def test_refuses_home_that_is_bloxpath_itself_or_deeper(self):
        blox = os.path.join(self.home, "blox")
        for home in (blox, os.path.join(blox, "a", "word_count__1_0"), blox + "/../word_count__1_0"):
            with self.assertRaises(UserError):
                self.manager(home=home).validate_pre_install()

    def test_missing_port_is_a_user_error(self):
        instance = engage_testing.make_instance(
            BLOCK_DEFINITION, "word-count", {"datablox_framework": {"BLOXPATH": self.home}}).to_json()
        del instance["input_ports"]["datablox_framework"]
        with self.assertRaises(UserError) as raised:
            import_driver("generic_blox_driver").Manager(engage_testing.ResourceMetadata(instance))
        self.assertIn("datablox_framework", str(raised.exception))

    def test_hostile_archives_write_nothing(self):
        hostile = [
            ("parent", {"word_count__1_0/__init__.py": "", "../x": "escaped"}, ()),
            ("absolute", {"word_count__1_0/__init__.py": "", os.path.join(self.root, "abs"): "escaped"}, ()),
            ("symlink", {"word_count__1_0/__init__.py": ""},
             [("word_count__1_0/etc", "/etc", tarfile.SYMTYPE)]),
            ("relative symlink", {"word_count__1_0/__init__.py": ""},
             [("word_count__1_0/up", "../..", tarfile.SYMTYPE)]),
            ("hard link", {"word_count__1_0/__init__.py": ""},
             [("word_count__1_0/passwd", "../../etc/passwd", tarfile.LNKTYPE)]),
            ("two top dirs", {"word_count__1_0/__init__.py": "", "other/x.py": ""}, ()),
        ]
        for label, files, links in hostile:
            before = self.all_paths()
            package = self.archive_package("hostile.tgz", files, links)
            before = self.all_paths()
            # The archive's error is raised in an action, which Engage's Context.r turns into a UserError.
            with self.assertRaises(UserError) as raised:
                self.manager().install(package)
            self.assertIn("hostile.tgz", str(raised.exception), label)
            # BLOXPATH may have been created; nothing else may appear, least of all outside the home.
            after = [path for path in self.all_paths() if path not in before]
            self.assertEqual([p for p in after if p not in ("home/blox", "home/blox/__init__.py")], [], label)
            os.remove(os.path.join(self.sw_packages, "hostile.tgz"))


class PythonPackageDriverTest(TempDirTestCase):
    def manager(self):
        metadata = engage_testing.make_instance(
            FRAMEWORK_DEFINITION, "framework", {"host": {"genforma_home": self.home}})
        return import_driver("python_package_driver").Manager(metadata)

    def test_installs_archive_into_python_dir(self):
        package = self.archive_package("datablox_framework.tgz", {
            "datablox_framework/__init__.py": "", "datablox_framework/caretaker.py": "# caretaker\n"})
        manager = self.manager()
        manager.validate_pre_install()
        self.assertFalse(manager.is_installed())
        manager.install(package)
        self.assertTrue(manager.is_installed())
        manager.validate_post_install()
        self.assertTrue(os.path.isfile(os.path.join(self.home, "python", "datablox_framework", "caretaker.py")))
        # No staging directory is left behind.
        self.assertEqual(os.listdir(os.path.join(self.home, "python")), ["datablox_framework"])

    def test_installs_into_a_home_whose_python_dir_exists(self):
        # Engage's bootstrap makes <home>/python (a virtualenv); the driver must not check it
        # with check_installable_to_dir, which refuses an existing directory.
        os.makedirs(os.path.join(self.home, "python", "lib"))
        package = self.archive_package("datablox_framework.tgz", {"datablox_framework/__init__.py": ""})
        manager = self.manager()
        manager.validate_pre_install()
        manager.install(package)
        manager.validate_post_install()
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "python"))), ["datablox_framework", "lib"])

    def test_refuses_archive_named_differently(self):
        package = self.archive_package("datablox_framework.tgz", {"framework/__init__.py": ""})
        with self.assertRaises(UserError) as raised:
            self.manager().install(package)
        self.assertIn("expected datablox_framework", str(raised.exception))
        self.assertEqual(os.listdir(os.path.join(self.home, "python")), [])


class FilePackageDriverTest(TempDirTestCase):
    def manager(self, path=None):
        metadata = engage_testing.make_instance(
            FILE_DEFINITION, "mime-types", {"host": {"genforma_home": self.home}})
        if path is not None:
            instance = metadata.to_json()
            instance["config_port"]["path"] = path
            metadata = engage_testing.ResourceMetadata(instance)
        return import_driver("file_package_driver").Manager(metadata)

    def test_copies_file_into_data(self):
        write(os.path.join(self.sw_packages, "mime.types"), "text/plain txt\n")
        package = engage_testing.package_from_json(
            {"type": "File", "package_class": "FilePackage", "location": "mime.types"}, self.sw_packages)
        manager = self.manager()
        manager.validate_pre_install()
        self.assertFalse(manager.is_installed())
        manager.install(package)
        self.assertTrue(manager.is_installed())
        manager.validate_post_install()
        with open(os.path.join(self.home, "data", "mime.types")) as installed:
            self.assertEqual(installed.read(), "text/plain txt\n")

    def test_installs_into_a_home_whose_data_dir_exists(self):
        # <home>/data is shared by every file package: another one may have made it.
        os.makedirs(os.path.join(self.home, "data"))
        write(os.path.join(self.home, "data", "other.txt"), "")
        write(os.path.join(self.sw_packages, "mime.types"), "text/plain txt\n")
        package = engage_testing.package_from_json(
            {"type": "File", "package_class": "FilePackage", "location": "mime.types"}, self.sw_packages)
        manager = self.manager()
        manager.validate_pre_install()
        manager.install(package)
        manager.validate_post_install()
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "data"))), ["mime.types", "other.txt"])

    def test_missing_package_file_is_a_user_error(self):
        package = engage_testing.package_from_json(
            {"type": "File", "package_class": "FilePackage", "location": "absent"}, self.sw_packages)
        with self.assertRaises(UserError):
            self.manager().install(package)

    def test_refuses_path_outside_data(self):
        with self.assertRaises(UserError):
            self.manager(path=os.path.join(self.home, "elsewhere", "mime.types")).validate_pre_install()


class FakePython3TestCase(TempDirTestCase):
    """Puts a fake `python3` first on PATH, so no test reaches the network or the real pip."""

    def use_fake_python3(self, script):
        bin_dir = os.path.join(self.root, "bin")
        os.makedirs(bin_dir)
        fake = os.path.join(bin_dir, "python3")
        write(fake, "#!/bin/sh\n" + script)
        os.chmod(fake, stat.S_IRWXU)
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = bin_dir
        self.addCleanup(os.environ.__setitem__, "PATH", old_path)
        return bin_dir


class PipPackageDriverTest(FakePython3TestCase):
    DEFINITION = {"key": {"name": "pymongo", "version": "3.12"}, "input_ports": {"host": {"genforma_home": "path"}}}

    def manager(self):
        metadata = engage_testing.make_instance(self.DEFINITION, "pymongo", {"host": {"genforma_home": self.home}})
        return import_driver("pip_package_driver").Manager(metadata)

    def package(self, package_class="PipLink"):
        return engage_testing.package_from_json(
            {"type": "Reference", "package_class": package_class, "location": "pymongo==3.12"}, self.sw_packages)

    def test_installs_with_pip_target_and_records_marker(self):
        record = os.path.join(self.root, "pip-args")
        self.use_fake_python3('echo "$@" >> "%s"\n' % record)
        manager = self.manager()
        manager.validate_pre_install()
        self.assertFalse(manager.is_installed())
        manager.install(self.package())
        self.assertTrue(manager.is_installed())
        manager.validate_post_install()
        with open(record) as handle:
            calls = handle.read().splitlines()
        self.assertEqual(calls[0], "-m pip --version")
        self.assertTrue(calls[1].startswith("-m pip install "), calls[1])
        # pip writes into a staging directory inside <home>/python, never into <home>/python itself.
        self.assertIn("--target %s" % os.path.join(self.home, "python", ".pip-"), calls[1])
        self.assertTrue(calls[1].endswith(" pymongo==3.12"), calls[1])
        self.assertNotIn("--upgrade", calls[1])

    def test_installs_engages_pip_package_into_existing_python_dir(self):
        # What Engage hands over: a PipPythonPackage (no `package_class` attribute) and a home
        # whose <home>/python exists already.
        record = os.path.join(self.root, "pip-args")
        self.use_fake_python3('echo "$@" >> "%s"\n' % record)
        os.makedirs(os.path.join(self.home, "python", "lib"))
        package = self.package()
        self.assertEqual(type(package).__name__, "PipPythonPackage")
        self.assertFalse(hasattr(package, "package_class"))
        manager = self.manager()
        manager.validate_pre_install()
        manager.install(package)
        manager.validate_post_install()
        with open(record) as handle:
            self.assertIn("pymongo==3.12", handle.read())

    def test_leaves_the_homes_virtualenv_alone(self):
        # <home>/python is also the virtualenv Engage's bootstrap made. pip --target writes a
        # package's scripts to <target>/bin and, with --upgrade, replaces what is there.
        write(os.path.join(self.root, "fake_pip.py"), FAKE_PIP)
        bin_dir = os.path.join(self.root, "bin")
        os.makedirs(bin_dir)
        fake = os.path.join(bin_dir, "python3")
        write(fake, "#!/bin/sh\nexec '%s' '%s' \"$@\"\n" % (sys.executable, os.path.join(self.root, "fake_pip.py")))
        os.chmod(fake, stat.S_IRWXU)
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = bin_dir
        self.addCleanup(os.environ.__setitem__, "PATH", old_path)
        python_dir = os.path.join(self.home, "python")
        os.makedirs(os.path.join(python_dir, "bin"))
        write(os.path.join(python_dir, "bin", "python"), "the virtualenv's python")
        os.makedirs(os.path.join(python_dir, "pymongo"))
        write(os.path.join(python_dir, "pymongo", "old.py"), "")
        manager = self.manager()
        manager.validate_pre_install()
        manager.install(self.package())
        manager.validate_post_install()
        self.assertEqual(os.listdir(os.path.join(python_dir, "bin")), ["python"])
        self.assertEqual(os.listdir(os.path.join(python_dir, "pymongo")), ["__init__.py"])
        self.assertTrue(os.path.isdir(os.path.join(python_dir, "pymongo-3.12.dist-info")))
        self.assertEqual(sorted(name for name in os.listdir(python_dir) if name.startswith(".")),
                         [".datablox-installed"])

    def test_refuses_easy_install_packages(self):
        # Engage installs an EasyInstallLink with its easy_install driver, not with pip.
        self.use_fake_python3("exit 0\n")
        with self.assertRaises(UserError) as raised:
            self.manager().install(self.package("EasyInstallLink"))
        self.assertIn("EasyInstallPythonPackage", str(raised.exception))

    def test_pip_failure_is_a_user_error_with_its_output(self):
        self.use_fake_python3('echo "No matching distribution found"; exit 1\n')
        manager = self.manager()
        with self.assertRaises(UserError) as raised:
            manager.install(self.package())
        self.assertIn("No matching distribution found", str(raised.exception))
        self.assertFalse(manager.is_installed())

    def test_refuses_other_package_classes(self):
        self.use_fake_python3("exit 0\n")
        with self.assertRaises(UserError):
            self.manager().install(self.package("AptGet"))

    def test_missing_python3_is_a_user_error(self):
        self.use_fake_python3("exit 0\n")
        os.environ["PATH"] = os.path.join(self.root, "empty")
        with self.assertRaises(UserError):
            self.manager().validate_pre_install()


class SystemPythonDriverTest(FakePython3TestCase):
    DEFINITION = {"key": {"name": "python3", "version": "3"}}

    def manager(self):
        metadata = engage_testing.make_instance(self.DEFINITION, "python3", {})
        return import_driver("system_python_driver").Manager(metadata)

    def test_installed_when_python3_on_path(self):
        bin_dir = self.use_fake_python3("exit 0\n")
        manager = self.manager()
        self.assertTrue(manager.is_installed())
        manager.validate_pre_install()
        manager.install(engage_testing.package_from_json(
            {"type": "Reference", "package_class": "DummyPackage", "location": ""}, self.sw_packages))
        manager.validate_post_install()
        os.environ["PATH"] = os.path.join(bin_dir, "absent")
        self.assertFalse(manager.is_installed())
        with self.assertRaises(UserError) as raised:
            manager.validate_pre_install()
        self.assertIn("python3", str(raised.exception))

    def test_a_python3_without_tarfiles_data_filter_is_refused_naming_the_supported_versions(self):
        # The fake fails exactly the check the driver runs, as 3.6, 3.7 or 3.11.3 would.
        bin_dir = self.use_fake_python3('test "$1 $2" = "-c import tarfile; tarfile.data_filter" && exit 1\nexit 0\n')
        manager = self.manager()
        self.assertFalse(manager.is_installed())
        for step in (manager.validate_pre_install, lambda: manager.install(engage_testing.package_from_json(
                {"type": "Reference", "package_class": "DummyPackage", "location": ""}, self.sw_packages))):
            with self.assertRaises(UserError) as raised:
                step()
            self.assertIn("resource python3: `python3` ({}) has no tarfile extraction filters (PEP 706)".format(
                os.path.join(bin_dir, "python3")), str(raised.exception))
            self.assertIn("install CPython 3.12 or newer, 3.11.4+, 3.10.12+, 3.9.17+ or 3.8.17+ as `python3`",
                          str(raised.exception))


# A stand-in for `python3 -m pip` that behaves as pip's --target does: the package, its dist-info
# and its scripts (in <target>/bin) are written into the target; an entry that exists is replaced
# with --upgrade and left alone without it.
FAKE_PIP = '''import os, shutil, sys
args = sys.argv[1:]
if args[:3] == ["-m", "pip", "--version"]:
    sys.exit(0)
target = args[args.index("--target") + 1]
entries = {"pymongo": ("__init__.py", ""), "pymongo-3.12.dist-info": ("METADATA", ""), "bin": ("pymongo-cli", "")}
for name, (file_name, text) in sorted(entries.items()):
    path = os.path.join(target, name)
    if os.path.exists(path):
        if "--upgrade" not in args:
            continue
        shutil.rmtree(path)
    os.makedirs(path)
    with open(os.path.join(path, file_name), "w") as handle:
        handle.write(text)
'''


def free_port():
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class CaretakerDriverTest(TempDirTestCase):
    def setUp(self):
        TempDirTestCase.setUp(self)
        framework = os.path.join(self.home, "python", "datablox_framework")
        os.makedirs(framework)
        write(os.path.join(framework, "__init__.py"), "")
        write(os.path.join(framework, "caretaker.py"), FAKE_CARETAKER)
        self.port = free_port()
        self.addCleanup(self.kill_leftover)

    def kill_leftover(self):
        # Only if a test failed half-way: end the fake caretaker this test started, by its pid.
        pid = engage_testing_pid(os.path.join(self.home, "log", "caretaker.pid"))
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass

    def manager(self):
        metadata = engage_testing.make_instance(
            CARETAKER_DEFINITION, "caretaker", {"host": {"genforma_home": self.home}}, {"port": self.port})
        return import_driver("datablox_caretaker__1_0.driver").Manager(metadata)

    def test_install_start_stop(self):
        manager = self.manager()
        manager.validate_pre_install()
        manager.install(engage_testing.package_from_json(
            {"type": "Reference", "package_class": "DummyPackage", "location": ""}, self.sw_packages))
        self.assertTrue(manager.is_installed())
        manager.validate_post_install()
        self.assertFalse(manager.is_running())
        manager.start()
        self.assertTrue(manager.is_running())
        pid_file = os.path.join(self.home, "log", "caretaker.pid")
        self.assertTrue(os.path.isfile(pid_file))
        with open(os.path.join(self.home, "log", "fake-caretaker.json")) as record_file:
            record = json.load(record_file)
        self.assertEqual(record["args"], ["--home", self.home, "--port", str(self.port)])
        self.assertEqual(record["pythonpath"], os.path.join(self.home, "python"))
        # The home got a cluster key, private to its user.
        key_file = os.path.join(self.home, "config", "cluster.key")
        with open(key_file) as handle:
            self.assertEqual(len(handle.read().strip()), 64)
        self.assertEqual(os.stat(key_file).st_mode & 0o777, 0o600)
        manager.start()  # already running: nothing happens
        self.assertEqual(engage_testing_pid(pid_file), engage_testing_pid(pid_file))
        manager.stop()
        self.assertFalse(manager.is_running())
        self.assertFalse(os.path.exists(pid_file))
        manager.stop()  # stopping a stopped caretaker is fine

    def test_pid_file_is_told_to_engages_process_monitor(self):
        manager = self.manager()
        pid_file = os.path.join(self.home, "log", "caretaker.pid")
        self.assertEqual(manager.get_pid_file_path(), pid_file)
        manager.install(None)
        manager.start()
        self.assertEqual(engage_testing_pid(manager.get_pid_file_path()), engage_testing_pid(pid_file))
        self.assertIsNotNone(engage_testing_pid(pid_file))
        manager.stop()

    def test_installs_into_an_existing_home(self):
        # The home and <home>/python exist (Engage made them); only log/ is the driver's to make.
        manager = self.manager()
        self.assertFalse(manager.is_installed())
        manager.validate_pre_install()
        manager.install(None)
        self.assertTrue(manager.is_installed())

    def test_start_failure_reports_log(self):
        write(os.path.join(self.home, "python", "datablox_framework", "caretaker.py"),
              "import sys\nsys.stderr.write('cannot bind\\n')\nsys.exit(3)\n")
        manager = self.manager()
        manager.install(None)
        started = time.time()
        with self.assertRaises(UserError) as raised:
            manager.start()
        self.assertLess(time.time() - started, 20)
        self.assertIn("exited with code 3", str(raised.exception))
        self.assertIn("cannot bind", str(raised.exception))
        self.assertFalse(manager.is_running())

    def test_bad_port_is_a_user_error(self):
        self.port = "not-a-port"
        with self.assertRaises(UserError):
            self.manager().validate_pre_install()

    def test_start_without_framework_is_a_user_error(self):
        shutil.rmtree(os.path.join(self.home, "python", "datablox_framework"))
        with self.assertRaises(UserError) as raised:
            self.manager().start()
        self.assertIn("datablox-framework", str(raised.exception))


def engage_testing_pid(pid_file):
    try:
        with open(pid_file) as handle:
            return int(handle.read())
    except (IOError, OSError, ValueError):
        return None


if __name__ == "__main__":
    unittest.main()
