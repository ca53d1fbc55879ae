"""The output-directory rule the deployer's outputs share (`datablox_deployer.outdir`): what is
ours to write, and the switch that puts a staged output into place."""

import json
import os
import shutil
import tempfile
import unittest

from datablox_deployer import DeployError, ansible, bundle, nodes, outdir


class OutdirTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def write(self, relative, data=b"x"):
        path = self.path(relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        return path

    def test_refusal(self):
        marked = lambda path: os.path.isfile(os.path.join(path, "mark"))  # noqa: E731
        self.assertIsNone(outdir.refusal(self.path("missing"), marked))
        os.mkdir(self.path("empty"))
        self.assertIsNone(outdir.refusal(self.path("empty"), marked))
        self.write("ours/mark")
        self.assertIsNone(outdir.refusal(self.path("ours"), marked))
        self.write("foreign/notes.txt")
        self.assertEqual(outdir.refusal(self.path("foreign"), marked), outdir.FOREIGN)
        self.write("file")
        self.assertEqual(outdir.refusal(self.path("file"), marked), "is not a directory")
        os.symlink(self.path("ours"), self.path("link"))
        self.assertEqual(outdir.refusal(self.path("link"), marked), "is a symbolic link")

    def test_a_marker_through_a_link_is_not_ours(self):
        # Each output's marker: a regular file, never one reached through a symbolic link.
        plan = self.write("elsewhere/plan.json", json.dumps({"bundle_format": bundle.BUNDLE_FORMAT}).encode())
        self.write("bundles/n1/bin/deploy")
        os.symlink(plan, self.path("bundles", "plan.json"))
        with self.assertRaisesRegex(DeployError, "is not a bundle directory"):
            bundle.check_target(self.path("bundles"))
        os.remove(self.path("bundles", "plan.json"))
        shutil.copy(plan, self.path("bundles", "plan.json"))
        bundle.check_target(self.path("bundles"))

        site = self.write("elsewhere/site.yml", (ansible.HEADER + "\n").encode())
        self.write("ansible/inventory.ini")
        os.symlink(site, self.path("ansible", "site.yml"))
        with self.assertRaisesRegex(DeployError, "was not written by `deploy --ansible`"):
            ansible.check_target(self.path("ansible"))

        installed = self.write("elsewhere/installed_resources.json", b"[]")
        os.makedirs(self.path("homes", "w1", "config"))
        os.symlink(installed, self.path("homes", "w1", "config", "installed_resources.json"))
        with self.assertRaisesRegex(DeployError, "is not a deployment home"):
            nodes.check_homes_dir(self.path("homes"), ["w1"])

    def test_switch_replaces_an_output_of_ours_and_nothing_else(self):
        out = self.path("out")
        self.write("out/old.txt")
        staged = outdir.staging(self.dir, "out")
        self.write(os.path.join(os.path.basename(staged), "new.txt"))
        outdir.switch(staged, out, lambda path: None)
        self.assertEqual(os.listdir(out), ["new.txt"])
        self.assertEqual(sorted(os.listdir(self.dir)), ["out"])  # no scratch directory is left

        def refuse(path):
            raise DeployError("not ours")
        staged = outdir.staging(self.dir, "out")
        with self.assertRaisesRegex(DeployError, "not ours"):
            outdir.switch(staged, out, refuse)
        self.assertEqual(os.listdir(out), ["new.txt"])
        self.assertEqual(sorted(os.listdir(self.dir)), ["out"])

    def test_leftovers_of_a_killed_run_are_removed(self):
        dead = self.path(".out.tmp-{}-999999999-abc".format(os.uname().nodename))
        alive = self.path(".out.tmp-{}-{}-abc".format(os.uname().nodename, os.getpid()))
        other = self.path(".out.tmp-elsewhere-999999999-abc")
        for path in (dead, alive, other):
            os.mkdir(path)
        outdir.remove_leftovers(self.dir, "out")
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(os.path.basename(p) for p in (alive, other)))


if __name__ == "__main__":
    unittest.main()
