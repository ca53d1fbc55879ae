import json
import os
import shutil
import stat
import sys
import tempfile
import textwrap
import unittest

import datablox_engage_adapter
from datablox_engage_adapter import deploy


class InstallSpecTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="home-")

    def tearDown(self):
        shutil.rmtree(self.home, ignore_errors=True)

    def test_spec_has_host_and_block_inside_it(self):
        spec = deploy.install_spec_for_block("Word-Count", "1.0", self.home)
        self.assertEqual(spec[0], {"id": "master-host", "key": {"name": "dynamic-host", "version": "*"}})
        self.assertEqual(spec[1]["key"], {"name": "word-count", "version": "1.0"})
        self.assertEqual(spec[1]["inside"]["id"], "master-host")
        self.assertEqual(len(set(instance["id"] for instance in spec)), 2)

    def test_ids_stay_unique_against_installed_resources(self):
        os.makedirs(os.path.join(self.home, "config"))
        with open(os.path.join(self.home, "config", "installed_resources.json"), "w") as handle:
            json.dump([{"id": "word_count__1_0"}, {"id": "word_count__1_0-2"}], handle)
        spec = deploy.install_spec_for_block("Word-Count", "1.0", self.home)
        self.assertEqual(spec[1]["id"], "word_count__1_0-3")

    def test_bad_installed_resources_is_reported(self):
        os.makedirs(os.path.join(self.home, "config"))
        with open(os.path.join(self.home, "config", "installed_resources.json"), "w") as handle:
            handle.write("{not json")
        with self.assertRaises(deploy.DeployError) as caught:
            deploy.install_spec_for_block("Dump", "1.0", self.home)
        self.assertIn("installed_resources.json", str(caught.exception))

    def test_rejects_bad_block_name(self):
        with self.assertRaises(ValueError):
            deploy.install_spec_for_block("word_count", "1.0", self.home)

    def test_bloxpath_and_home(self):
        self.assertEqual(datablox_engage_adapter.bloxpath("/h"), os.path.join("/h", "blox"))
        saved = os.environ.pop("DATABLOX_HOME", None)
        try:
            # Installed as <home>/python/datablox_engage_adapter, the home is two levels up.
            expected = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(datablox_engage_adapter.__file__))))
            self.assertEqual(datablox_engage_adapter.deployment_home(), expected)
        finally:
            if saved is not None:
                os.environ["DATABLOX_HOME"] = saved


# A stand-in for Engage's deployer: reads the spec and creates the block directory.
FAKE_DEPLOYER = '''\
#!{python}
import json, os, sys
# As Engage's deployer (engine/deploy_spec.py process_args, optparse): one positional argument,
# the spec; `--` ends the options.
argv = sys.argv[1:]
end = argv.index("--") if "--" in argv else len(argv)
options = [arg for arg in argv[:end] if arg.startswith("-")]
arguments = [arg for arg in argv[:end] if not arg.startswith("-")] + argv[end + 1:]
if len(arguments) != 1 or set(options) - set(["-a", "-g"]):
    print("deployer: error: Incorrect number of arguments - expecting install spec name")
    sys.exit(2)
spec_path = arguments[0]
home = os.path.dirname(os.path.dirname(os.path.abspath(spec_path)))
with open(spec_path) as handle:
    spec = json.load(handle)
for instance in spec:
    if instance["key"]["name"] == "fail-me":
        print("deployment of fail-me failed")
        sys.exit(3)
    if instance["key"]["name"] != "dynamic-host":
        directory = os.path.join(home, "blox", instance["id"])
        os.makedirs(directory)
        open(os.path.join(directory, "__init__.py"), "w").close()
'''


class DeployBlockTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="home-")

    def tearDown(self):
        shutil.rmtree(self.home, ignore_errors=True)

    def install_fake_deployer(self):
        bin_dir = os.path.join(self.home, "engage", "bin")
        os.makedirs(bin_dir)
        path = os.path.join(bin_dir, "deployer")
        with open(path, "w") as handle:
            handle.write(FAKE_DEPLOYER.format(python=sys.executable))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def test_missing_deployer_is_a_clear_error(self):
        with self.assertRaises(deploy.DeployError) as caught:
            deploy.deploy_block(self.home, "Dump", "1.0")
        self.assertIn("no Engage deployer", str(caught.exception))

    def test_runs_deployer_on_a_spec_file(self):
        self.install_fake_deployer()
        self.assertFalse(deploy.is_deployed(self.home, "Dump", "1.0"))
        target = deploy.deploy_block(self.home, "Dump", "1.0")
        self.assertEqual(target, os.path.join(self.home, "blox", "dump__1_0"))
        self.assertTrue(deploy.is_deployed(self.home, "Dump", "1.0"))
        # The spec file is removed after a successful deployment.
        self.assertEqual(os.listdir(os.path.join(self.home, "config")), [])

    def test_already_deployed_runs_nothing(self):
        os.makedirs(os.path.join(self.home, "blox", "dump__1_0"))
        calls = []
        deploy.deploy_block(self.home, "Dump", "1.0", runner=lambda argv: calls.append(argv) or (0, ""))
        self.assertEqual(calls, [])

    def test_injected_runner_sees_the_spec(self):
        self.install_fake_deployer()
        seen = []

        def runner(argv):
            with open(argv[-1]) as handle:
                seen.append(json.load(handle))
            os.makedirs(os.path.join(self.home, "blox", "null__1_0"))
            return 0, "ok"

        deploy.deploy_block(self.home, "Null", "1.0", runner=runner)
        self.assertEqual(seen[0][1]["key"], {"name": "null", "version": "1.0"})

    def test_deployer_command_line_follows_engage(self):
        # The spec is positional (`-f` would be Engage's --logfile-name); `-a` only once the home
        # records installed resources, as Engage's deployer requires.
        self.install_fake_deployer()
        calls = []

        def runner(argv):
            calls.append(argv)
            os.makedirs(os.path.join(self.home, "blox", "null__1_0"))
            return 0, ""

        deploy.deploy_block(self.home, "Null", "1.0", runner=runner)
        deployer = deploy.deployer_path(self.home)
        self.assertEqual(calls[0][:2], [deployer, "-g"])
        self.assertNotIn("-f", calls[0])
        self.assertNotIn("-a", calls[0])
        with open(os.path.join(self.home, "config", "installed_resources.json"), "w") as handle:
            handle.write("[]")
        spec_path = os.path.join(self.home, "config", "spec.json")
        self.assertEqual(deploy.deployer_argv(self.home, spec_path), [deployer, "-g", "-a", "--", spec_path])

    def test_deployer_failure_keeps_spec_and_reports_output(self):
        self.install_fake_deployer()
        with self.assertRaises(deploy.DeployError) as caught:
            deploy.deploy_block(self.home, "Fail-Me", "1.0")
        message = str(caught.exception)
        self.assertIn("exit code 3", message)
        self.assertIn("deployment of fail-me failed", message)
        self.assertEqual(len(os.listdir(os.path.join(self.home, "config"))), 1)

    def test_success_without_block_dir_is_an_error(self):
        self.install_fake_deployer()
        with self.assertRaises(deploy.DeployError):
            deploy.deploy_block(self.home, "Dump", "1.0", runner=lambda argv: (0, ""))


if __name__ == "__main__":
    unittest.main()
