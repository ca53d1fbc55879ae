"""Tests of `check_extension.py`: a good hand-made tree passes; each defect Engage's own code refuses,
injected into a copy of it, is reported (Python 3).

The good tree uses the real driver modules of `engage-extension/drivers/`, so its full check also
imports them under Python 3 and 2.7 and installs every resource with them. The six defects real
Engage refused in a generated tree (`DefectsEngageRefusedTest`) are injected the way they were
found there.
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
FRAMEWORK_KEY = {"name": "datablox-framework", "version": "1.0"}

FRAMEWORK = {
    "key": FRAMEWORK_KEY,
    "display_name": "Datablox framework",
    "input_ports": {"host": {"genforma_home": "path"}},
    "output_ports": {"datablox_framework": {
        "BLOXPATH": {"type": "path", "fixed-value": "${input_ports.host.genforma_home}/blox"},
        "PYTHONPATH": {"type": "path", "fixed-value": "${input_ports.host.genforma_home}/python"}}},
    "inside": PLATFORMS_WITH_HOST,
    "environment": {"key": {"name": "python3", "version": "3.6"}},
}
PYTHON3 = {"key": {"name": "python3", "version": "3.6"}, "display_name": "Python 3", "inside": PLATFORMS}
CHARDET = {"key": {"name": "chardet", "version": "5.2"}, "display_name": "chardet",
           "input_ports": {"host": {"genforma_home": "path"}}, "inside": PLATFORMS_WITH_HOST,
           "environment": {"key": {"name": "python3", "version": "3.6"}}}
MIME = {"key": {"name": "mime-types-table", "version": "1.0"}, "display_name": "MIME types table",
        "input_ports": {"host": {"genforma_home": "path"}}, "inside": PLATFORMS_WITH_HOST,
        "config_port": {"path": {"type": "path", "default": "${input_ports.host.genforma_home}/data/mime.types"}}}
BLOCK = {
    "key": {"name": "word-count", "version": "1.0"},
    "display_name": "Word-Count block",
    "config_port": {"batch_size": {"type": "int", "default": 100}},
    "input_ports": {"datablox_framework": {"BLOXPATH": "path"}},
    "output_ports": {"block_info": {"home": {
        "type": "path", "fixed-value": "${input_ports.datablox_framework.BLOXPATH}/word_count__1_0"}}},
    "inside": PLATFORMS,
    "environment": {"all-of": [
        {"key": FRAMEWORK_KEY, "port_mapping": {"datablox_framework": "datablox_framework"}},
        {"key": {"name": "pymongo", "version": {"greater-than-or-equal": "2.1"}}}]},
}
CARETAKER = {
    "key": {"name": "datablox-caretaker", "version": "1.0"},
    "display_name": "Datablox caretaker",
    "config_port": {"port": {"type": "int", "default": 5555}},
    "input_ports": {"host": {"genforma_home": "path"}},
    "inside": PLATFORMS_WITH_HOST,
    "environment": {"all-of": [{"key": FRAMEWORK_KEY}]},
}
LIBRARY = [
    {"key": FRAMEWORK_KEY, "mgr_module_name": "engage.drivers.datablox.python_package_driver",
     "packages": [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "datablox_framework.tgz"}]},
    {"key": PYTHON3["key"], "mgr_module_name": "engage.drivers.datablox.system_python_driver",
     "packages": [{"type": "Reference", "package_class": "DummyPackage", "location": ""}]},
    {"key": CHARDET["key"], "mgr_module_name": "engage.drivers.datablox.pip_package_driver",
     "packages": [{"type": "Reference", "package_class": "PipLink", "location": "chardet==5.2.0"}]},
    {"key": MIME["key"], "mgr_module_name": "engage.drivers.datablox.file_package_driver",
     "packages": [{"type": "File", "package_class": "FilePackage", "location": "mime.types"}]},
]
INSTALLER = {"application_name": "Datablox", "log_level": "INFO",
             "resource_def_file_name": "resource_definitions.json",
             "software_library_file_name": "resource_library.json",
             "install_spec_options": [{"choice_name": "Datablox master node", "file_name": "install_spec.json"}]}
HOST = {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}}
SPEC = [HOST, {"id": "caretaker", "key": CARETAKER["key"],
               "inside": {"id": "master-host", "key": HOST["key"], "port_mapping": {"host": "host"}}}]
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
        self.definitions = [copy.deepcopy(d) for d in (FRAMEWORK, PYTHON3, CHARDET, MIME)]
        self.block = copy.deepcopy(BLOCK)
        self.caretaker = copy.deepcopy(CARETAKER)
        self.library = copy.deepcopy(LIBRARY)
        self.installer = copy.deepcopy(INSTALLER)
        self.templates = {"install_spec.json.tmpl": copy.deepcopy(SPEC)}
        self.block_files = {"word_count__1_0/__init__.py": "",
                            "word_count__1_0/b_word_count.py": "class word_count: pass\n"}
        self.skip_sw_packages = set()
        self.driver_edits = []  # (file in drivers/, old text, new text)

    def edit_driver(self, relative, old, new):
        self.driver_edits.append((relative, old, new))

    def write(self, dist_dir):
        tree = os.path.join(dist_dir, "datablox")
        for directory in ("metadata", "drivers/word_count__1_0", "drivers/datablox_caretaker__1_0", "sw_packages"):
            os.makedirs(os.path.join(tree, directory))

        def put(relative, value):
            with open(os.path.join(tree, relative), "w") as handle:
                handle.write(value if isinstance(value, str) else json.dumps(value, indent=1))

        put("version.txt", "1.0\n")
        put("metadata/resource_definitions.json", self.definitions)
        put("metadata/resource_library.json", self.library)
        put("metadata/installer_config.json", self.installer)
        put("metadata/caretaker_install_spec.json", SPEC)
        for name, spec in self.templates.items():
            put("metadata/" + name, spec)
        put("drivers/__init__.py", "")
        for module in ("generic_blox_driver.py", "python_package_driver.py", "system_python_driver.py",
                       "pip_package_driver.py", "file_package_driver.py"):
            shutil.copy(os.path.join(SOURCE_DRIVERS, module), os.path.join(tree, "drivers"))
        put("drivers/word_count__1_0/__init__.py", "")
        put("drivers/word_count__1_0/driver.py", BLOCK_DRIVER)
        put("drivers/word_count__1_0/resources.json", [self.block])
        put("drivers/word_count__1_0/packages.json",
            [{"type": "Archive", "package_class": "GzippedTarArchive", "location": "word_count__1_0.tgz"}])
        put("drivers/datablox_caretaker__1_0/__init__.py", "")
        shutil.copy(os.path.join(SOURCE_DRIVERS, "datablox_caretaker", "driver.py"),
                    os.path.join(tree, "drivers", "datablox_caretaker__1_0"))
        put("drivers/datablox_caretaker__1_0/resources.json", [self.caretaker])
        put("drivers/datablox_caretaker__1_0/packages.json",
            [{"type": "Reference", "package_class": "DummyPackage", "location": ""}])
        for relative, old, new in self.driver_edits:
            path = os.path.join(tree, "drivers", relative)
            with open(path) as handle:
                text = handle.read()
            assert old in text, "the driver %s no longer has %r: update the test" % (relative, old)
            put("drivers/" + relative, text.replace(old, new))
        archives = {"word_count__1_0.tgz": self.block_files,
                    "datablox_framework.tgz": {"datablox_framework/__init__.py": ""}}
        for name, files in archives.items():
            if name not in self.skip_sw_packages:
                make_tgz(os.path.join(tree, "sw_packages", name), files)
        put("sw_packages/mime.types", "text/plain txt\n")


class CheckerTestCase(unittest.TestCase):
    def check(self, tree, *flags):
        dist_dir = tempfile.mkdtemp(prefix="dist-")
        self.addCleanup(shutil.rmtree, dist_dir, True)
        tree.write(dist_dir)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        result = subprocess.run([sys.executable, CHECKER] + list(flags) + [dist_dir], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, env=env, timeout=600)
        return result.returncode, result.stdout

    def assert_problem(self, tree, *expected_parts, static=True):
        code, output = self.check(tree, *(["--static"] if static else []))
        self.assertEqual(code, 1, output)
        for part in expected_parts:
            self.assertIn(part, output)
        return output


class DefectsEngageRefusedTest(CheckerTestCase):
    """Each defect Engage's own code refused in the generated tree, put back into a good tree."""

    def test_1_definition_without_display_name(self):
        tree = Tree()
        del tree.definitions[2]["display_name"]
        self.assert_problem(tree, "metadata/resource_definitions.json: `chardet 5.2`: required property display_name "
                            "not found", "parse_rdef.ml parse_rdef")

    def test_2_driver_checks_the_shared_python_directory(self):
        tree = Tree()
        tree.edit_driver("python_package_driver.py", "check_installable_to_dir, self.package_dir)",
                         "check_installable_to_dir, self.python_dir)")
        output = self.assert_problem(tree, "drivers/python_package_driver.py: install: datablox_framework__1_0",
                                     "/home/python' already exists", static=False)
        self.assertIn("install_sequencer.py run_install", output)

    def test_2_driver_checks_the_shared_data_directory(self):
        tree = Tree()
        tree.edit_driver("file_package_driver.py", "check_installable_to_dir, self.path)",
                         "check_installable_to_dir, self.data_dir)")
        self.assert_problem(tree, "drivers/file_package_driver.py: install: mime_types_table__1_0",
                            "/home/data' already exists", static=False)

    def test_3_pip_driver_reads_package_class_attribute(self):
        tree = Tree()
        tree.edit_driver("pip_package_driver.py", "package_class = package_class_name(package)",
                         "package_class = package.package_class")
        self.assert_problem(tree, "drivers/pip_package_driver.py: install: chardet__5_2",
                            "AttributeError", "package_class", static=False)

    def test_pip_driver_replaces_the_virtualenvs_bin(self):
        # Found by real Engage after the six: pip --target <home>/python --upgrade replaced the
        # virtualenv's bin/ with the package's scripts.
        tree = Tree()
        tree.edit_driver("pip_package_driver.py", '"--target", staging, "--", requirement]',
                         '"--upgrade", "--target", target_dir, "--", requirement]')
        self.assert_problem(tree, "drivers/pip_package_driver.py: install: chardet__5_2: installing it removed "
                            "<home>/python/bin/python", "genforma/python.py", static=False)

    def test_3_easy_install_package_given_to_the_pip_driver(self):
        tree = Tree()
        tree.library[2]["packages"][0]["package_class"] = "EasyInstallLink"
        self.assert_problem(tree, "(chardet 5.2): pip_package_driver receives the package class EasyInstallLink",
                            "easy_install driver")

    def test_4_installer_config_without_log_level(self):
        tree = Tree()
        del tree.installer["log_level"]
        self.assert_problem(tree, "metadata/installer_config.json: missing required property log_level",
                            "installer_config.py parse_installer_config")

    def test_4_installer_option_file_name_with_tmpl(self):
        tree = Tree()
        tree.installer["install_spec_options"][0]["file_name"] = "install_spec.json.tmpl"
        self.assert_problem(tree, "file_name install_spec.json.tmpl ends in .tmpl", "install_spec.json.tmpl.tmpl",
                            "engage_file_layout.py get_install_spec_template_file")

    def test_4_installer_option_without_its_template(self):
        tree = Tree()
        tree.templates = {}
        self.assert_problem(tree, "Engage looks for the template metadata/install_spec.json.tmpl, which does not exist")

    def test_5_block_config_port_without_value(self):
        tree = Tree()
        tree.block["config_port"]["directory"] = "path"
        self.assert_problem(tree, "drivers/word_count__1_0/resources.json: `word-count 1.0`: config port property "
                            "`directory` has no default", "generate.ml fill_in_config_ports")

    def test_6_service_without_pid_file_path(self):
        tree = Tree()
        tree.edit_driver("datablox_caretaker__1_0/driver.py", "    def get_pid_file_path(self):",
                         "    def _no_pid_file_path(self):")
        self.assert_problem(tree, "drivers/datablox_caretaker__1_0/driver.py: python3: the service's Manager does not "
                            "override get_pid_file_path()", "service_manager.py", static=False)


class CheckExtensionTest(CheckerTestCase):
    def test_good_tree_passes_including_drivers(self):
        code, output = self.check(Tree())
        self.assertEqual(code, 0, output)
        self.assertIn("check_extension: ok", output)
        # framework, python3, chardet (pip, recorded), mime table, block, caretaker
        self.assertIn("6 resources installed", output)

    def test_duplicate_key(self):
        tree = Tree()
        tree.definitions.append(copy.deepcopy(BLOCK))
        self.assert_problem(tree, "drivers/word_count__1_0/resources.json: key `word-count 1.0` is defined again")

    def test_unmatched_constraint(self):
        tree = Tree()
        tree.block["environment"]["all-of"].append({"key": {"name": "pymongo", "version": "9.9"}})
        self.assert_problem(tree, "environment constraint `pymongo \"9.9\"` matches no defined resource")

    def test_star_is_not_a_wildcard(self):
        # generate.ml matches: a string version is compared for equality.
        tree = Tree()
        tree.block["environment"]["all-of"][0]["key"] = {"name": "datablox-framework", "version": "*"}
        self.assert_problem(tree, "constraint `datablox-framework \"*\"` matches no defined resource")

    def test_ranges_compare_as_strings(self):
        # resources.ml scalar_lt: "10.5" < "10.10" is false (byte by byte), so nothing matches.
        tree = Tree()
        tree.block["inside"] = {"key": {"name": "mac-osx", "version": {"less-than": "10.10"}}}
        self.assert_problem(tree, "inside constraint `mac-osx {\"less-than\": \"10.10\"}` matches no")

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
        self.assert_problem(tree, "input port mime_types is not fed by a port_mapping in any constraint")

    def test_port_fed_in_one_alternative_only(self):
        tree = Tree()
        tree.definitions[0]["inside"]["one-of"][1].pop("port_mapping")
        self.assert_problem(tree, "`datablox-framework 1.0`: input port host is not fed by a port_mapping in every "
                            "alternative")

    def test_mapped_port_lacks_property(self):
        tree = Tree()
        tree.block["input_ports"]["datablox_framework"]["LOGDIR"] = "path"
        self.assert_problem(tree, "input port datablox_framework needs LOGDIR")

    def test_bad_reference_and_misplaced_values(self):
        tree = Tree()
        tree.block["output_ports"]["block_info"]["home"]["fixed-value"] = "${input_ports.framework.BLOXPATH}/x"
        tree.block["input_ports"]["datablox_framework"]["BLOXPATH"] = {"type": "path", "default": "/x"}
        self.assert_problem(tree, "refers to ${input_ports.framework.BLOXPATH}: no property BLOXPATH in input port "
                            "framework", "has `default`, only valid for config_port")

    def test_unterminated_reference(self):
        tree = Tree()
        tree.block["output_ports"]["block_info"]["home"]["fixed-value"] = \
            "${input_ports.datablox_framework.BLOXPATH/word_count__1_0"
        self.assert_problem(tree, "block_info.home fixed-value has `${` at offset 0 with no valid closing `}`",
                            "templates.ml parse_string")

    def test_output_port_reference_is_not_resolved(self):
        tree = Tree()
        tree.block["output_ports"]["block_info"]["copy"] = {
            "type": "path", "fixed-value": "${output_ports.block_info.home}"}
        self.assert_problem(tree, "refers to ${output_ports.block_info.home}: the config engine resolves only",
                            "port_reference_of_string")

    def test_inside_all_of(self):
        tree = Tree()
        tree.block["inside"] = {"all-of": PLATFORMS["one-of"]}
        self.assert_problem(tree, "inside cannot be all-of")

    def test_library_object_form_crashes_engage(self):
        tree = Tree()
        tree.library = {"entries": tree.library}
        self.assert_problem(tree, "metadata/resource_library.json: must be a JSON list of library entries",
                            "preprocess_library_file")

    def test_package_type_must_go_with_its_class(self):
        tree = Tree()
        tree.library[0]["packages"][0]["type"] = "File"
        self.assert_problem(tree, "wrong package type 'File' for GzippedTarArchive, expecting 'Archive'")

    def test_spec_instance_inside_nothing_must_be_the_machine(self):
        tree = Tree()
        tree.templates["install_spec.json.tmpl"][1] = {"id": "caretaker", "key": CARETAKER["key"]}
        self.assert_problem(tree, "instance caretaker is inside nothing, so Engage takes it for a host")

    def test_spec_reference_needs_a_key(self):
        tree = Tree()
        del tree.templates["install_spec.json.tmpl"][1]["inside"]["key"]
        self.assert_problem(tree, "instance caretaker: inside reference needs `id` and `key`")

    def test_install_finds_block_archive_without_block_module(self):
        tree = Tree()
        del tree.block_files["word_count__1_0/b_word_count.py"]
        code, output = self.check(tree)
        self.assertEqual(code, 1, output)
        self.assertIn("drivers/word_count__1_0/driver.py: install: word_count__1_0: after install, nothing matches "
                      "<home>/blox/word_count__1_0/b_*.py", output)

    def test_driver_that_does_not_import(self):
        tree = Tree()
        tree.edit_driver("generic_blox_driver.py", '"""The shared Engage driver', 'print "python 2 only"\n"""The')
        code, output = self.check(tree)
        self.assertEqual(code, 1, output)
        self.assertIn("drivers/generic_blox_driver.py: python3: does not import: SyntaxError", output)

    def test_json_report(self):
        tree = Tree()
        del tree.installer["log_level"]
        code, output = self.check(tree, "--static", "--json")
        self.assertEqual(code, 1, output)
        report = json.loads(output)
        self.assertFalse(report["ok"])
        self.assertIn({"file": "metadata/installer_config.json",
                       "message": "missing required property log_level (Engage: python_pkg/engage/engine/"
                                  "installer_config.py parse_installer_config)"}, report["problems"])

    def test_usage(self):
        result = subprocess.run([sys.executable, CHECKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
