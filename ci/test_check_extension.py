"""Tests of `check_extension.py` on small hand-made extension trees (Python 3).

The good tree uses the real driver modules of `engage-extension/drivers/`, so its full check also
imports them under Python 3 and 2.7 and installs its block and framework with them.
"""
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

CI_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(CI_DIR)
CHECKER = os.path.join(CI_DIR, "check_extension.py")
SOURCE_DRIVERS = os.path.join(REPO_DIR, "engage-extension", "drivers")

PLATFORMS = {"one-of": [{"key": {"name": "ubuntu-linux", "version": "14.04"}},
                        {"key": {"name": "mac-osx", "version": {"greater-than-or-equal": "10.5"}}}]}
PLATFORMS_WITH_HOST = {"one-of": [dict(c, port_mapping={"host": "host"}) for c in PLATFORMS["one-of"]]}

FRAMEWORK = {
    "key": {"name": "datablox-framework", "version": "1.0"},
    "display_name": "Datablox framework",
    "input_ports": {"host": {"genforma_home": "path"}},
    "output_ports": {"datablox_framework": {"BLOXPATH": {
        "type": "path", "fixed-value": "${input_ports.host.genforma_home}/blox"}}},
    "inside": PLATFORMS_WITH_HOST,
    "environment": {"key": {"name": "python3", "version": "3"}},
}
PYTHON3 = {"key": {"name": "python3", "version": "3"}, "display_name": "Python 3", "inside": PLATFORMS}
BLOCK = {
    "key": {"name": "word-count", "version": "1.0"},
    "display_name": "Word-Count block",
    "input_ports": {"datablox_framework": {"BLOXPATH": "path"}},
    "output_ports": {"block_info": {"home": {
        "type": "path", "fixed-value": "${input_ports.datablox_framework.BLOXPATH}/word_count__1_0"}}},
    "inside": PLATFORMS,
    "environment": {"all-of": [
        {"key": {"name": "datablox-framework", "version": "1.0"},
         "port_mapping": {"datablox_framework": "datablox_framework"}},
        {"key": {"name": "pymongo", "version": {"greater-than-or-equal": "2.1"}}}]},
}
LIBRARY = [
    {"key": FRAMEWORK["key"], "mgr_module_name": "engage.drivers.datablox.python_package_driver",
     "packages": [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "datablox_framework.tgz"}]},
    {"key": PYTHON3["key"], "mgr_module_name": "engage.drivers.datablox.system_python_driver",
     "packages": [{"type": "Reference", "package_class": "DummyPackage", "location": ""}]},
]
INSTALLER = {"application_name": "Datablox", "resource_def_file_name": "resource_definitions.json",
             "software_library_file_name": "resource_library.json",
             "log_level": "INFO",
             "install_spec_options": [{"choice_name": "Datablox framework", "file_name": "install_spec.json"}]}
SPEC = [{"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}},
        {"id": "framework", "key": FRAMEWORK["key"],
         "inside": {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"},
                    "port_mapping": {"host": "host"}}}]
BLOCK_DRIVER = '''"""Engage driver of the Word-Count 1.0 block: the generic block driver with this block's packages."""
import engage.drivers.utils
from engage.drivers.datablox.generic_blox_driver import Manager

def get_packages_filename():
    return engage.drivers.utils.get_packages_filename(__file__)
'''


def make_tgz(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for directory in sorted({name.split("/")[0] for name in files}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))


class Tree:
    """A good extension tree, as plain data, that a test can spoil before writing it out."""

    def __init__(self):
        self.definitions = [copy.deepcopy(FRAMEWORK), copy.deepcopy(PYTHON3)]
        self.block = copy.deepcopy(BLOCK)
        self.library = copy.deepcopy(LIBRARY)
        self.block_files = {"word_count__1_0/__init__.py": "", "word_count__1_0/b_word_count.py": "class word_count: pass\n"}
        self.skip_sw_packages = set()

    def write(self, dist_dir):
        tree = os.path.join(dist_dir, "datablox")
        for directory in ("metadata", "drivers/word_count__1_0", "sw_packages"):
            os.makedirs(os.path.join(tree, directory))

        def put(relative, value):
            with open(os.path.join(tree, relative), "w") as handle:
                handle.write(value if isinstance(value, str) else json.dumps(value, indent=1))

        put("version.txt", "1.0\n")
        put("metadata/resource_definitions.json", self.definitions)
        put("metadata/resource_library.json", self.library)
        put("metadata/installer_config.json", INSTALLER)
        put("metadata/caretaker_install_spec.json", SPEC)
        put("metadata/install_spec.json.tmpl", SPEC)  # Engage appends .tmpl to the file_name
        put("drivers/__init__.py", "")
        for module in ("generic_blox_driver.py", "python_package_driver.py", "system_python_driver.py"):
            shutil.copy(os.path.join(SOURCE_DRIVERS, module), os.path.join(tree, "drivers"))
        put("drivers/word_count__1_0/__init__.py", "")
        put("drivers/word_count__1_0/driver.py", BLOCK_DRIVER)
        put("drivers/word_count__1_0/resources.json", [self.block])
        put("drivers/word_count__1_0/packages.json",
            [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "word_count__1_0.tgz"}])
        archives = {"word_count__1_0.tgz": self.block_files,
                    "datablox_framework.tgz": {"datablox_framework/__init__.py": ""}}
        for name, files in archives.items():
            if name not in self.skip_sw_packages:
                make_tgz(os.path.join(tree, "sw_packages", name), files)


class CheckExtensionTest(unittest.TestCase):
    def check(self, tree, *flags):
        dist_dir = tempfile.mkdtemp(prefix="dist-")
        self.addCleanup(shutil.rmtree, dist_dir, True)
        tree.write(dist_dir)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        result = subprocess.run([sys.executable, CHECKER] + list(flags) + [dist_dir], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=600)
        return result.returncode, result.stdout

    def assert_problem(self, tree, expected_line_part, *flags):
        code, output = self.check(tree, "--static", *flags)
        self.assertEqual(code, 1, output)
        self.assertIn(expected_line_part, output)

    def test_good_tree_passes_including_drivers(self):
        code, output = self.check(Tree())
        self.assertEqual(code, 0, output)
        self.assertIn("check_extension: ok", output)
        self.assertIn("2 resources installed", output)

    def test_duplicate_key(self):
        tree = Tree()
        tree.definitions.append(copy.deepcopy(BLOCK))
        self.assert_problem(tree, "drivers/word_count__1_0/resources.json: key `word-count 1.0` is defined again")

    def test_unmatched_constraint(self):
        tree = Tree()
        tree.block["environment"]["all-of"].append({"key": {"name": "pymongo", "version": "9.9"}})
        self.assert_problem(tree, "environment constraint `pymongo \"9.9\"` matches no defined resource")

    def test_newer_platform_must_be_defined(self):
        tree = Tree()
        tree.block["inside"] = {"key": {"name": "ubuntu-linux", "version": "22.04"}}
        self.assert_problem(tree, "inside constraint `ubuntu-linux \"22.04\"` matches no defined resource")

    def test_missing_sw_packages_file(self):
        tree = Tree()
        tree.skip_sw_packages.add("datablox_framework.tgz")
        self.assert_problem(tree, "datablox_framework.tgz is not a file of sw_packages")

    def test_unfed_input_port(self):
        tree = Tree()
        tree.block["input_ports"]["mime_types"] = {"path": "path"}
        self.assert_problem(tree, "input port mime_types is not fed by a port_mapping in every alternative")

    def test_port_fed_in_one_alternative_only(self):
        tree = Tree()
        tree.definitions[0]["inside"]["one-of"][1].pop("port_mapping")
        self.assert_problem(tree, "`datablox-framework 1.0`: input port host is not fed")

    def test_mapped_port_lacks_property(self):
        tree = Tree()
        tree.block["input_ports"]["datablox_framework"]["LOGDIR"] = "path"
        self.assert_problem(tree, "input port datablox_framework needs LOGDIR")

    def test_bad_reference_and_misplaced_values(self):
        tree = Tree()
        tree.block["output_ports"]["block_info"]["home"]["fixed-value"] = "${input_ports.framework.BLOXPATH}/x"
        tree.block["input_ports"]["datablox_framework"]["BLOXPATH"] = {"type": "path", "default": "/x"}
        code, output = self.check(tree, "--static")
        self.assertEqual(code, 1, output)
        self.assertIn("refers to ${input_ports.framework.BLOXPATH}", output)
        self.assertIn("has `default`, allowed only on config ports", output)
        self.assertIn("block_info.home is", output)

    def test_inside_all_of(self):
        tree = Tree()
        tree.block["inside"] = {"all-of": PLATFORMS["one-of"]}
        self.assert_problem(tree, "inside cannot be all-of")

    def test_install_finds_block_archive_without_block_module(self):
        tree = Tree()
        del tree.block_files["word_count__1_0/b_word_count.py"]
        code, output = self.check(tree)
        self.assertEqual(code, 1, output)
        self.assertIn("nothing matches <home>/blox/word_count__1_0/b_*.py", output)

    def test_driver_that_does_not_import(self):
        tree = Tree()
        tree.block_files = dict(tree.block_files)
        original = Tree.write

        def write_with_broken_driver(self, dist_dir):
            original(self, dist_dir)
            with open(os.path.join(dist_dir, "datablox", "drivers", "word_count__1_0", "driver.py"), "a") as handle:
                handle.write("print 'python 2 only'\n")

        tree.write = write_with_broken_driver.__get__(tree)
        code, output = self.check(tree)
        self.assertEqual(code, 1, output)
        self.assertIn("drivers/word_count__1_0/driver.py: python3: does not import: SyntaxError", output)

    def test_usage(self):
        result = subprocess.run([sys.executable, CHECKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
