"""The node deployer (`datablox_deployer`), run as a program on small extension trees."""

import json
import os
import shutil
import subprocess
import sys
import threading
import unittest

from deployer_tree import PLATFORM, REPO, DeployerCase, constraint, deployer, snapshot, tree_archive, wheel

from datablox_deployer import deploy, extension, resolve


def installed(home):
    with open(os.path.join(home, "config", "installed_resources.json")) as handle:
        return json.load(handle)


def by_name(instances):
    return dict((i["key"]["name"], i) for i in instances)


class LayoutTest(DeployerCase):
    def test_home_layout_and_installed_resources(self):
        block = self.tree.block("alpha", "1.0")
        self.tree.write()
        run = self.deploy("alpha 1.0", "--json")
        report = json.loads(run.stdout)
        self.assertEqual([(s["key"]["name"], s["action"]) for s in report["steps"]], [("fw", "install"), ("alpha", "install")])
        for part in ("engage/metadata/resource_definitions.json", "engage/sw_packages/fw.tgz", "engage/SHA256SUMS",
                     "config/installed_resources.json", "python/fw/__init__.py", "blox/__init__.py",
                     "blox/{}/b_alpha.py".format(block), "log/deploy.log"):
            self.assertTrue(os.path.exists(os.path.join(self.home, part)), part)
        # The home's SHA256SUMS checks with `sha256sum -c` from <home>/engage.
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=os.path.join(self.home, "engage"),
                               stdout=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(check.returncode, 0, check.stdout)
        instances = installed(self.home)
        self.assertEqual([i["id"] for i in instances], ["master-host", "__fw__1_0", "__alpha__1_0"])
        host, fw, alpha = instances
        self.assertEqual(host["key"], {"name": "ubuntu-linux", "version": "14.04"})
        self.assertEqual(host["output_ports"]["host"]["genforma_home"], self.home)
        # Engage's ResourceMD fields, resolved.
        for instance in instances:
            self.assertEqual(sorted(k for k in instance if k != "inside"),
                             ["config_port", "environment", "id", "input_ports", "key", "output_ports", "peers", "properties"])
            self.assertTrue(instance["properties"]["installed"])
        self.assertEqual(alpha["inside"], {"id": "master-host", "key": host["key"], "port_mapping": {"host": "host"}})
        self.assertEqual(alpha["environment"], [{"id": "__fw__1_0", "key": {"name": "fw", "version": "1.0"},
                                                 "port_mapping": {"datablox_framework": "datablox_framework"}}])
        self.assertEqual(alpha["input_ports"]["datablox_framework"]["BLOXPATH"], os.path.join(self.home, "blox"))
        self.assertEqual(alpha["output_ports"]["block_info"]["home"], os.path.join(self.home, "blox", block))
        self.assertEqual(fw["properties"]["datablox_package"]["kind"], "python-archive")
        self.assertEqual(len(alpha["properties"]["datablox_package"]["sha256"]), 64)

    def test_an_install_imports_only_what_it_uses(self):
        # What a caretaker asks for on demand: none of the modules of `place`, `run` or the
        # services, and not `ssl` (the cluster key file is read without it).
        self.tree.block("alpha", "1.0")
        self.tree.write()
        code = ("import json, sys; before = set(sys.modules); from datablox_deployer import cli; "
                "code = cli.main(sys.argv[1:]); print(json.dumps(sorted(set(sys.modules) - before))); sys.exit(code)")
        run = subprocess.run([sys.executable, "-c", code, "--home", self.home, "--tree", self.tree.path] + PLATFORM + ["alpha"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                             env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "python")))
        self.assertEqual(run.returncode, 0, run.stderr)
        loaded = set(json.loads(run.stdout))
        self.assertIn("datablox_deployer.safetar", loaded)
        self.assertEqual(sorted(loaded & {"datablox_deployer." + m for m in (
            "ansible", "bundle", "nodes", "placement", "release", "run", "service")} | loaded & {"ssl"}), [])

    def test_the_callers_working_directory_is_kept_through_an_install_and_a_refusal(self):
        # Archives are extracted from inside .staging/, by relative paths; the deploy returns, or
        # raises, in the directory it was called from.
        self.tree.block("alpha", "1.0")
        self.tree.block("evil", "1.0", archive=b"not a tar archive at all")
        self.tree.write()
        before = os.getcwd()
        options = lambda name: deploy.Options(self.home, self.tree.path, [name], platform=tuple(PLATFORM[1:]))
        deploy.deploy(options("alpha"))
        self.assertEqual(os.getcwd(), before)
        self.assertTrue(os.path.isfile(os.path.join(self.home, "blox", "alpha__1_0", "b_alpha.py")))
        with self.assertRaises(deploy.DeployError) as caught:
            deploy.deploy(options("evil"))
        self.assertIn("not a readable gzipped tar archive", str(caught.exception))
        self.assertEqual(os.getcwd(), before)
        self.assertFalse(os.path.exists(os.path.join(self.home, ".staging")))

    def test_dry_run_writes_nothing_and_says_why(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        steps = self.plan("alpha")
        self.assertEqual([(s["key"]["name"], s["action"], s["reason"]) for s in steps],
                         [("fw", "install", "environment of alpha 1.0"), ("alpha", "install", "requested")])
        self.assertFalse(os.path.exists(self.home))

    def test_a_directory_that_is_neither_empty_nor_a_home_is_refused_before_anything_is_written(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        os.makedirs(self.home)
        with open(os.path.join(self.home, "thesis.txt"), "w") as handle:
            handle.write("my thesis\n")
        for args in (("alpha",), ("alpha", "--dry-run")):
            run = self.deploy(*args, expect=1)
            self.assertIn("{} is neither empty nor a deployment home: it holds thesis.txt".format(self.home), run.stderr)
            self.assertEqual(os.listdir(self.home), ["thesis.txt"])

    def test_a_python_without_tarfiles_data_filter_is_refused_before_the_home_is_touched(self):
        # Python 3.6, 3.7 and the 3.8-3.11 releases before PEP 706's backport lack the filter.
        without_filter = ("import runpy, tarfile; del tarfile.data_filter; "
                          "runpy.run_module('datablox_deployer', run_name='__main__')")

        def deploy_without_filter(*args):
            return subprocess.run([sys.executable, "-c", without_filter, "--home", self.home, "--tree", self.tree.path]
                                  + PLATFORM + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"),
                                                                    PYTHONDONTWRITEBYTECODE="1"))

        self.tree.block("alpha", "1.0")
        self.tree.write()
        expected = ("has no tarfile extraction filters (PEP 706), which the deployer extracts archives with (help: "
                    "run the deployer with CPython 3.12 or newer, 3.11.4+, 3.10.12+, 3.9.17+ or 3.8.17+)")
        run = deploy_without_filter("alpha")
        self.assertEqual(run.returncode, 1)
        self.assertIn("error: this Python ({} ".format(sys.executable), run.stderr)
        self.assertIn(expected, run.stderr)
        self.assertFalse(os.path.lexists(self.home))
        # A home deployed before: not read, locked, logged or changed, whatever the command.
        self.deploy("alpha")
        before = snapshot(self.home)
        for args in (("alpha",), ("--json", "alpha"), ("status",), ("stop",)):
            run = deploy_without_filter(*args)
            self.assertEqual(run.returncode, 1, run.stderr)
            self.assertIn(expected, run.stderr)
            self.assertEqual(snapshot(self.home), before)
        self.assertIn(expected, json.loads(deploy_without_filter("--json", "alpha").stdout)["error"])

    def test_an_unreadable_installed_resources_json_is_refused_before_the_lock_and_the_log(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        os.makedirs(os.path.join(self.home, "config"))
        os.makedirs(os.path.join(self.home, "log"))
        with open(os.path.join(self.home, "config", "installed_resources.json"), "w") as handle:
            handle.write('{"not": "a list"}\n')
        before = snapshot(self.home)
        run = self.deploy("alpha", expect=1)
        self.assertIn("installed_resources.json: expected a JSON list", run.stderr)
        self.assertEqual(snapshot(self.home), before)
        self.assertFalse(os.path.exists(os.path.join(self.home, ".deploy.lock")))

    def test_unknown_resource_is_a_usage_error(self):
        self.tree.write()
        run = self.deploy("nothing", expect=2)
        self.assertIn("unknown resource `nothing`", run.stderr)
        self.assertFalse(os.path.exists(self.home))
        self.tree.block("alpha", "1.0")
        self.tree.write()
        run = self.deploy("alpah", expect=2)
        self.assertIn("unknown resource `alpah` (help: did you mean `alpha`? one of alpha 1.0, fw 1.0)", run.stderr)
        run = self.deploy("alpha@2.0", expect=2)
        self.assertIn("`alpha` has no version 2.0 (help: defined versions: 1.0; e.g. `alpha@1.0`)", run.stderr)
        self.assertFalse(os.path.exists(self.home))
        # With --json, the error is also on stdout, for machines.
        answer = json.loads(self.deploy("nothing", "--json", expect=2).stdout)
        self.assertEqual(answer["exit_code"], 2)
        self.assertIn("unknown resource `nothing`", answer["error"])


BLOCK_SOURCE = b"""
from datablox_framework.block import Block

class alpha(Block):
    def on_load(self, config):
        self.add_input("input", ["value"])
"""


class DeployedModeTest(DeployerCase):
    """The adapter and the loader on a home the node deployer made."""

    def run_python(self, code, **env):
        environment = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"), PYTHONDONTWRITEBYTECODE="1",
                           DATABLOX_HOME=self.home)
        environment.pop("BLOXPATH", None)
        environment.update(env)
        return subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=environment)

    def setUp(self):
        DeployerCase.setUp(self)
        self.tree.block("alpha", "1.0", files={"__init__.py": b"", "b_alpha.py": BLOCK_SOURCE})
        self.tree.write()
        self.deploy("fw")
        self.assertTrue(os.path.isfile(os.path.join(self.home, "engage", "bin", "deployer")))

    def test_loader_deploys_a_missing_block_before_loading_it(self):
        run = self.run_python("from datablox_framework import loader; "
                              "print(loader.load_block_class('alpha', '1.0').__name__)")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout.strip(), "alpha")
        self.assertEqual([i["id"] for i in installed(self.home)], ["master-host", "__fw__1_0", "__alpha__1_0"])

    def test_install_block_reports_already_installed_without_work(self):
        code = ("import json, datablox_engage_adapter as a; "
                "print(json.dumps([a.install_block(a.deployment_home(), 'alpha', '1.0')['status'] for _ in range(2)]))")
        run = self.run_python(code)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout), ["installed", "already installed"])

    def test_standalone_loader_names_the_block_and_bloxpath(self):
        bloxpath = os.path.join(self.tmp, "elsewhere")
        os.makedirs(bloxpath)
        run = self.run_python("from datablox_framework import loader; loader.load_block_class('alpha', '1.0')",
                              BLOXPATH=bloxpath)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("block `alpha 1.0` is not installed: no `alpha__1_0/b_alpha.py` under BLOXPATH ({})".format(bloxpath), run.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "blox", "alpha__1_0")))


class ResolutionTest(DeployerCase):
    def test_ranges_pick_the_newest_satisfying_version(self):
        for version in ("1.0", "2.0", "3.0"):
            self.tree.resource("lib", version, {"type": "Reference", "package_class": "DummyPackage", "location": ""})
        self.tree.block("user", "1.0", needs=[constraint("lib", {"greater-than-or-equal": "1.5", "less-than": "3.0"})])
        self.tree.write()
        steps = self.plan("user")
        self.assertIn(("lib", "2.0"), [(s["key"]["name"], s["key"]["version"]) for s in steps])

    def test_one_of_takes_the_first_satisfiable_alternative(self):
        # `missing` is not defined, so the first alternative fails; `b` resolves; `c` is never tried.
        for name in ("b", "c"):
            self.tree.resource(name, "1.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""})
        self.tree.resource("user", "1.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""},
                           environment={"one-of": [constraint("missing", "1.0"), constraint("b", "1.0"), constraint("c", "1.0")]})
        self.tree.write()
        names = [s["key"]["name"] for s in self.plan("user")]
        self.assertEqual(names, ["b", "user"])

    def test_peers_are_installed_after_and_dependencies_once(self):
        self.tree.block("dump", "1.0")
        self.tree.block("join", "1.0", peers=constraint("dump", "1.0"))
        self.tree.write()
        self.deploy("join")
        instances = installed(self.home)
        self.assertEqual([i["key"]["name"] for i in instances], ["ubuntu-linux", "fw", "join", "dump"])
        self.assertEqual(by_name(instances)["join"]["peers"][0]["id"], "__dump__1_0")

    def test_one_block_reads_only_the_driver_directories_it_reaches_and_plans_as_a_full_read(self):
        for name in ("aa", "ab", "b-x", "c", "d", "e"):
            self.tree.block(name, "1.0")
        self.tree.block("join", "1.0", needs=[constraint("b-x", "1.0")], peers=constraint("aa", "1.0"))
        self.tree.write()
        lazy = extension.Extension(self.tree.path)
        full = extension.Extension(self.tree.path)
        full.definitions  # reads every driver directory
        plans = []
        for tree in (lazy, full):
            options = deploy.Options(self.home, self.tree.path, ["join"], platform=("ubuntu-linux", "14.04"))
            plans.append([s.to_json(options.home) for s in deploy.plan(options, tree, [])[1]])
        self.assertEqual(plans[0], plans[1])
        self.assertEqual([s["key"]["name"] for s in plans[0]], ["fw", "b-x", "join", "aa"])
        # join's own directory and those of the names it reaches; not ab, c, d, e.
        self.assertEqual(sorted(lazy._loaded_dirs), ["aa__1_0", "b_x__1_0", "join__1_0"])
        self.assertEqual(lazy.find("b-x"), full.find("b-x"))
        self.assertEqual(lazy.order, full.order)

    def test_unsatisfiable_names_the_chain(self):
        self.tree.resource("mid", "1.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""},
                           environment=constraint("leaf", {"greater-than": "2.0"}))
        self.tree.resource("leaf", "1.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""})
        self.tree.block("top", "1.0", needs=[constraint("mid", "1.0")])
        self.tree.write()
        run = self.deploy("top", expect=1)
        self.assertIn("top 1.0 (requested) -> environment mid 1.0 -> environment leaf >2.0", run.stderr)
        self.assertIn("no version of `leaf` satisfies >2.0 (defined: 1.0)", run.stderr)
        self.assertFalse(os.path.exists(self.home))

    def test_platform_the_host_is_not_is_refused(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        run = self.deploy("alpha", "--platform", "ubuntu-linux", "22.04", expect=1)
        self.assertIn("inside: the host `ubuntu-linux 22.04` is none of ubuntu-linux 14.04, mac-osx >=10.5", run.stderr)

    def test_config_port_without_a_value_is_refused_and_can_be_given(self):
        self.tree.resource("needs-config", "1.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""},
                           config_port={"directory": "path", "batch": {"type": "int", "default": 100}},
                           output_ports={"out": {"where": {"type": "path", "fixed-value": "${config_port.directory}/x"}}})
        self.tree.write()
        run = self.deploy("needs-config", expect=1)
        self.assertIn("no initial value given for config port property `directory`", run.stderr)
        self.deploy("needs-config", "--config", "__needs_config__1_0.directory=/data")
        instance = by_name(installed(self.home))["needs-config"]
        self.assertEqual(instance["config_port"], {"directory": "/data", "batch": 100})
        self.assertEqual(instance["output_ports"]["out"]["where"], "/data/x")

    def test_version_comparison(self):
        # As Engage's config engine: bounds compare as strings, `*` and `any` are plain versions.
        self.assertTrue(resolve.satisfies("10.6", {"greater-than-or-equal": "10.5"}))
        self.assertFalse(resolve.satisfies("10.4", {"greater-than-or-equal": "10.5"}))
        self.assertFalse(resolve.satisfies("10.10", {"greater-than-or-equal": "10.5"}))
        self.assertFalse(resolve.satisfies("2.0", "*"))
        self.assertTrue(resolve.satisfies("*", "*"))
        self.assertTrue(resolve.satisfies("any", "any"))
        self.assertFalse(resolve.satisfies("2.0", "2.0.1"))


class PackageKindsTest(DeployerCase):
    def test_file_package_goes_to_its_configured_path(self):
        self.tree.resource("table", "1.0", {"type": "File", "package_class": "FilePackage", "location": "table.json"},
                           input_ports={"host": {"genforma_home": "path"}},
                           config_port={"path": {"type": "path", "default": "${input_ports.host.genforma_home}/data/table.json"}},
                           mgr="engage.drivers.datablox.file_package_driver")
        self.tree.sw["table.json"] = b'{"txt": "text"}\n'
        self.tree.write()
        self.deploy("table")
        with open(os.path.join(self.home, "data", "table.json"), "rb") as handle:
            self.assertEqual(handle.read(), b'{"txt": "text"}\n')

    def test_pip_from_a_local_wheel_directory(self):
        wheels = os.path.join(self.tmp, "wheels")
        os.makedirs(wheels)
        wheel(wheels, "dbxtestpkg", "0.3", "ANSWER = 42\n", scripts={"dbxtool": b"#!python\nprint(1)\n"})
        self.tree.resource("dbxtestpkg", "0.3", {"type": "Reference", "package_class": "PipLink", "location": "dbxtestpkg==0.3"},
                           mgr="engage.drivers.datablox.pip_package_driver")
        self.tree.write()
        self.deploy("dbxtestpkg", "--find-links", wheels)
        # What Python imports moves into python/; pip's bin/ (the wheel's script) does not.
        self.assertEqual(sorted(os.listdir(os.path.join(self.home, "python"))), ["dbxtestpkg", "dbxtestpkg-0.3.dist-info"])
        check = subprocess.run([sys.executable, "-c", "import dbxtestpkg; print(dbxtestpkg.ANSWER)"],
                               env=dict(os.environ, PYTHONPATH=os.path.join(self.home, "python")),
                               stdout=subprocess.PIPE, universal_newlines=True)
        self.assertEqual(check.stdout.strip(), "42")
        record = by_name(installed(self.home))["dbxtestpkg"]["properties"]["datablox_package"]
        self.assertEqual(record["how"], "pip install --target")
        # The home remembers the wheel directory for later, on-demand deploys.
        with open(os.path.join(self.home, "config", "deployer.json")) as handle:
            self.assertEqual(json.load(handle)["find_links"], wheels)

    def test_pip_killed_between_its_entries_is_installed_again_whole(self):
        wheels = os.path.join(self.tmp, "wheels")
        os.makedirs(wheels)
        wheel(wheels, "dbxtestpkg", "0.3", "ANSWER = 42\n")
        self.tree.resource("dbxtestpkg", "0.3", {"type": "Reference", "package_class": "PipLink", "location": "dbxtestpkg==0.3"},
                           mgr="engage.drivers.datablox.pip_package_driver")
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        # Killed once pip has installed into .staging/, before anything is placed: python/ as it was
        # (only the setting remembering --find-links is new).
        run = deployer(self.home, self.tree, "dbxtestpkg", "--find-links", wheels, env={"DATABLOX_DEPLOY_CRASH": "extracted@1"})
        self.assertEqual(run.returncode, -9, run.stderr)
        after = snapshot(self.home)
        self.assertTrue(any(p.startswith(".staging/") and p.endswith("dbxtestpkg/__init__.py") for p in after), sorted(after))
        # (`deploy fw` recorded in config/deployer.json that fw was deployed by name.)
        self.assertEqual(sorted(p for p in after if not p.startswith(".staging")), sorted(set(before) | {"config/deployer.json"}))
        # Killed after the package was renamed into python/, before its dist-info and the record.
        run = deployer(self.home, self.tree, "dbxtestpkg", "--find-links", wheels, env={"DATABLOX_DEPLOY_CRASH": "placed@1"})
        self.assertEqual(run.returncode, -9, run.stderr)
        self.assertTrue(os.path.isdir(os.path.join(self.home, "python", "dbxtestpkg")))
        self.assertFalse(os.path.exists(os.path.join(self.home, "python", "dbxtestpkg-0.3.dist-info")))
        self.assertNotIn("dbxtestpkg", by_name(installed(self.home)))
        steps = json.loads(self.deploy("dbxtestpkg", "--json").stdout)["steps"]
        self.assertEqual([(s["key"]["name"], s["action"]) for s in steps if s["action"] != "keep"], [("dbxtestpkg", "install")])
        self.assertEqual(by_name(installed(self.home))["dbxtestpkg"]["properties"]["datablox_package"]["how"], "pip install --target")
        self.assertTrue(os.path.isfile(os.path.join(self.home, "python", "dbxtestpkg-0.3.dist-info", "METADATA")))
        self.assertFalse(os.path.exists(os.path.join(self.home, ".staging")))

    def test_pip_package_already_importable_is_accepted(self):
        self.tree.resource("json", "2.0", {"type": "Reference", "package_class": "EasyInstallLink", "location": "json==2.0"},
                           mgr="engage.drivers.datablox.pip_package_driver")
        self.tree.write()
        self.deploy("json")
        self.assertEqual(by_name(installed(self.home))["json"]["properties"]["datablox_package"]["how"], "already importable")

    def test_pip_failure_leaves_the_home_as_it_was(self):
        self.tree.resource("nosuchpkg", "1.0", {"type": "Reference", "package_class": "PipLink", "location": "nosuchpkg==1.0"})
        self.tree.write()
        self.deploy("fw")
        before = snapshot(self.home)
        empty = os.path.join(self.tmp, "empty")
        os.makedirs(empty)
        run = self.deploy("nosuchpkg", "--find-links", empty, expect=1)
        self.assertIn("pip could not install `nosuchpkg==1.0`", run.stderr)
        self.assert_unchanged_but_logged(before, " failed: pip could not install `nosuchpkg==1.0`")

    def test_dummy_and_system_python_are_recorded(self):
        self.tree.resource("python3", "3.8", {"type": "Reference", "package_class": "DummyPackage", "location": ""},
                           mgr="engage.drivers.datablox.system_python_driver")
        self.tree.resource("too-new-python", "99.0", {"type": "Reference", "package_class": "DummyPackage", "location": ""},
                           mgr="engage.drivers.datablox.system_python_driver")
        self.tree.write()
        self.deploy("python3")
        self.assertEqual(by_name(installed(self.home))["python3"]["properties"]["datablox_package"]["kind"], "system-python")
        run = self.deploy("too-new-python", expect=1)
        self.assertIn("needs Python 99.0 or newer", run.stderr)


class IdempotenceTest(DeployerCase):
    def test_second_run_installs_nothing_and_a_changed_archive_is_replaced(self):
        block = self.tree.block("alpha", "1.0")
        self.tree.write()
        self.deploy("alpha")
        first = snapshot(self.home)
        steps = json.loads(self.deploy("alpha", "--json").stdout)["steps"]
        self.assertEqual([(s["key"]["name"], s["action"]) for s in steps], [("fw", "keep"), ("alpha", "keep")])
        self.assertEqual(snapshot(self.home), first)
        self.tree.block("alpha", "1.0", files={"__init__.py": b"", "b_alpha.py": b"# version two\n"})
        self.tree.write()
        steps = json.loads(self.deploy("alpha", "--json").stdout)["steps"]
        self.assertEqual([(s["key"]["name"], s["action"]) for s in steps], [("fw", "keep"), ("alpha", "replace")])
        with open(os.path.join(self.home, "blox", block, "b_alpha.py")) as handle:
            self.assertEqual(handle.read(), "# version two\n")
        self.assertEqual([i["id"] for i in installed(self.home)], ["master-host", "__fw__1_0", "__alpha__1_0"])

    def test_a_changed_dependency_of_an_installed_block_is_replaced(self):
        # The block is installed and unchanged; the framework it was installed with changed in
        # the extension: the framework is replaced, not kept because the block is.
        self.tree.block("alpha", "1.0")
        self.tree.write()
        self.deploy("alpha")
        self.tree.sw["fw.tgz"] = tree_archive("fw", {"__init__.py": b"VERSION = 2\n"})
        self.tree.write()
        steps = json.loads(self.deploy("alpha", "--json").stdout)["steps"]
        self.assertEqual([(s["key"]["name"], s["action"]) for s in steps], [("fw", "replace"), ("alpha", "keep")])
        with open(os.path.join(self.home, "python", "fw", "__init__.py")) as handle:
            self.assertEqual(handle.read(), "VERSION = 2\n")

    def test_any_deploy_replaces_a_changed_installed_resource_and_says_which(self):
        # `alpha` was installed by an earlier deploy (as a caretaker installs a block on demand);
        # a deploy that does not name it still replaces it when its archive changed.
        block = self.tree.block("alpha", "1.0")
        self.tree.block("beta", "1.0")
        self.tree.write()
        self.deploy("alpha")
        self.tree.block("alpha", "1.0", files={"__init__.py": b"", "b_alpha.py": b"# version two\n"})
        self.tree.write()
        run = self.deploy("beta")
        self.assertIn("replace    alpha 1.0", run.stderr)
        self.assertIn("Deployed 2 resource(s) (replaced: alpha 1.0), 1 already installed", run.stderr)
        with open(os.path.join(self.home, "blox", block, "b_alpha.py")) as handle:
            self.assertEqual(handle.read(), "# version two\n")
        steps = json.loads(self.deploy("beta", "--json").stdout)["steps"]
        self.assertEqual(sorted(s["action"] for s in steps), ["keep", "keep", "keep"])

    def test_installed_resources_are_kept_from_their_records_only_when_nothing_they_depend_on_changed(self):
        # A deploy plans every installed resource. One whose record shows it unchanged (SHA256SUMS
        # gives its archive the recorded digest, its directory is there, what it was installed
        # with is installed) is kept without its driver directory being read; every other one is
        # planned from its definition: a changed archive, a removed directory, a forgotten peer.
        for name in ("alpha", "beta", "gamma", "dump"):
            self.tree.block(name, "1.0")
        self.tree.block("join", "1.0", peers=constraint("dump", "1.0"))
        self.tree.write()
        self.deploy("alpha", "beta", "gamma", "join")
        shutil.rmtree(os.path.join(self.home, "blox", "beta__1_0"))
        self.tree.block("gamma", "1.0", files={"__init__.py": b"", "b_gamma.py": b"# version two\n"})
        self.tree.block("delta", "1.0")
        self.tree.write()
        shutil.rmtree(os.path.join(self.home, "blox", "dump__1_0"))
        instances = [i for i in installed(self.home) if i["key"]["name"] != "dump"]
        tree = extension.Extension(self.tree.path)
        options = deploy.Options(self.home, self.tree.path, ["delta"], platform=("ubuntu-linux", "14.04"))
        steps = [s.to_json(options.home) for s in deploy.plan(options, tree, instances)[1]]
        self.assertEqual([(s["key"]["name"], s["action"], s["reason"]) for s in steps], [
            ("fw", "keep", "environment of delta 1.0"), ("delta", "install", "requested"),
            ("alpha", "keep", "installed"), ("beta", "reinstall", "installed"), ("gamma", "replace", "installed"),
            ("dump", "install", "peers of join 1.0"), ("join", "keep", "installed")])
        self.assertEqual(steps[2]["target"], os.path.join("blox", "alpha__1_0"))
        self.assertEqual(sorted(tree._loaded_dirs), ["beta__1_0", "delta__1_0", "dump__1_0", "gamma__1_0", "join__1_0"])
        run = self.deploy("delta")
        self.assertIn("Deployed 4 resource(s) (replaced: gamma 1.0), 3 already installed", run.stderr)
        for name in ("alpha", "beta", "gamma", "delta", "dump"):
            self.assertTrue(os.path.isfile(os.path.join(self.home, "blox", name + "__1_0", "b_{}.py".format(name))))

    def test_json_says_whether_the_home_changed(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        self.assertFalse(json.loads(self.deploy("alpha", "--dry-run", "--json").stdout)["changed"])
        self.assertTrue(json.loads(self.deploy("alpha", "--json").stdout)["changed"])
        self.assertFalse(json.loads(self.deploy("alpha", "--json").stdout)["changed"])

    def test_a_removed_directory_is_reinstalled(self):
        block = self.tree.block("alpha", "1.0")
        self.tree.write()
        self.deploy("alpha")
        shutil.rmtree(os.path.join(self.home, "blox", block))
        steps = json.loads(self.deploy("alpha", "--json").stdout)["steps"]
        self.assertEqual([s["action"] for s in steps], ["keep", "reinstall"])
        self.assertTrue(os.path.isfile(os.path.join(self.home, "blox", block, "b_alpha.py")))


class LockTest(DeployerCase):
    def test_two_concurrent_deployers_install_each_resource_once(self):
        self.tree.block("alpha", "1.0")
        self.tree.write()
        results = []

        def run():
            results.append(deployer(self.home, self.tree, "alpha", "--json"))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual([r.returncode for r in results], [0, 0], [r.stderr for r in results])
        actions = sorted(tuple(s["action"] for s in json.loads(r.stdout)["steps"]) for r in results)
        # One installs framework and block; the other, waiting on the lock, finds them installed.
        self.assertEqual(actions, [("install", "install"), ("keep", "keep")])
        self.assertEqual([i["id"] for i in installed(self.home)], ["master-host", "__fw__1_0", "__alpha__1_0"])


class CrashTest(DeployerCase):
    def test_killed_at_each_point_then_completed(self):
        self.tree.block("alpha", "1.0")
        self.tree.block("beta", "1.0")
        self.tree.write()
        clean_home = self.home
        self.home = os.path.join(self.tmp, "clean")
        self.deploy("alpha", "beta")
        expected = snapshot(self.home)
        self.home = clean_home
        for point in ("extracted@1", "extracted@3", "placed@2", "recorded@1", "recorded@3"):
            shutil.rmtree(self.home, ignore_errors=True)
            # Every resource recorded as soon as it is placed, so each point is reached.
            run = deployer(self.home, self.tree, "alpha", "beta",
                           env={"DATABLOX_DEPLOY_CRASH": point, "DATABLOX_DEPLOY_RECORD_EVERY": "0"})
            self.assertEqual(run.returncode, -9, "{}: {}".format(point, run.stderr))
            # Whole resources or none: every recorded resource is in place.
            for instance in installed(self.home) if os.path.exists(os.path.join(self.home, "config", "installed_resources.json")) else []:
                path = instance["properties"].get("datablox_package", {}).get("path")
                if path:
                    self.assertTrue(os.path.isdir(path), "{}: {} recorded but missing".format(point, path))
            self.deploy("alpha", "beta")
            after = snapshot(self.home)
            self.assertEqual(sorted(after), sorted(expected), point)
            for path, (kind, content, mode) in expected.items():
                if kind == "file" and not path.startswith(("config/", "log/")):
                    self.assertEqual(after[path], (kind, content, mode), "{}: {}".format(point, path))
            self.assertEqual([i["id"] for i in installed(self.home)],
                             ["master-host", "__fw__1_0", "__alpha__1_0", "__beta__1_0"], point)


if __name__ == "__main__":
    unittest.main()
