"""The deploy path against local attackers, each case done as an attacker does it: a hostile dist,
links planted in a home, a home or a dist belonging to a second local user (`nobody`, through
`setpriv`), a pid file naming a stranger, names that read as options. Every case is refused with
nothing written outside the home and the home unchanged. SECURITY.md lists each boundary with the
test here that proves it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from deployer_tree import REPO, Tree, deployer, snapshot

import datablox_engage_adapter.deploy as adapter
from datablox_deployer import DeployError, clusterkey, placement, service
from datablox_deployer.home import Home
from datablox_framework import auth, master
from datablox_framework.caretaker import Caretaker

NOBODY = 65534
SETPRIV = shutil.which("setpriv")


def as_nobody(*command):
    """Runs `command` as uid/gid 65534 with no supplementary groups (the second local user)."""
    return subprocess.run([SETPRIV, "--reuid={}".format(NOBODY), "--regid={}".format(NOBODY), "--clear-groups"]
                          + list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def needs_root(test):
    return unittest.skipUnless(os.geteuid() == 0 and SETPRIV, "needs root and setpriv (CI runs as root)")(test)


class AttackCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="attack-")
        os.chmod(self.tmp, 0o755)  # the second local user reaches what it owns below
        self.home = os.path.join(self.tmp, "home")
        self.tree = Tree(self.tmp)
        self.tree.block("alpha", "1.0")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def deploy(self, *args, expect=0):
        run = deployer(self.home, self.tree, *args)
        self.assertEqual(run.returncode, expect, "stdout:\n{}\nstderr:\n{}".format(run.stdout, run.stderr))
        return run

    def hostile_tree(self):
        """A second extension tree, the attacker's, with a block `evil`."""
        evil = Tree(os.path.join(self.tmp, "attacker"))
        evil.block("evil", "1.0")
        return evil.write()


class OptionInjection(AttackCase):
    """A block name that reads as an option (`--tree=DIR`) must never reach a command line as one."""

    def test_a_load_named_like_an_option_reaches_no_deployer(self):
        self.tree.write()
        self.deploy("alpha@1.0")
        evil = self.hostile_tree()
        before = snapshot(self.home)
        name = "--tree=" + evil.path
        answer = Caretaker(self.home, adapter).handle({"op": "load", "name": name, "version": "1.0"})
        self.assertFalse(answer.get("ok"), answer)
        self.assertIn("starts with `-`", json.dumps(answer))
        with self.assertRaises(ValueError):
            adapter.install_block(self.home, name, "1.0")
        self.assertEqual(snapshot(self.home), before)

    def test_the_adapter_ends_the_options_before_the_resource(self):
        self.tree.write()
        self.deploy("alpha@1.0")
        calls = []

        def runner(argv):
            calls.append(argv)
            os.makedirs(os.path.join(self.home, "blox", "beta__1_0"))
            return 0, ""

        adapter.deploy_block(self.home, "Beta", "1.0", runner=runner)
        self.assertEqual(calls[0][-2:], ["--", "beta@1.0"])
        self.assertEqual(calls[0][2], "--home=" + self.home)

    def test_the_deployer_takes_what_follows_double_dash_as_resources(self):
        self.tree.write()
        self.deploy("alpha@1.0")
        evil = self.hostile_tree()
        before = snapshot(self.home)
        run = self.deploy("--", "--tree={}@1.0".format(evil.path), expect=2)
        self.assertIn("starts with `-`", run.stderr)
        after = snapshot(self.home)
        before.pop("log/deploy.log"), after.pop("log/deploy.log")
        self.assertEqual(after, before)


class EngageCopy(AttackCase):
    """Copying the extension into <home>/engage follows no link, creates none, hard-links nothing."""

    def test_a_deployer_link_in_the_dist_is_refused_and_its_target_untouched(self):
        self.tree.write()
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as handle:
            handle.write("precious\n")
        os.chmod(victim, 0o600)
        launcher = os.path.join(self.tree.path, "bin", "deploy")
        os.remove(launcher)
        os.symlink(victim, launcher)
        run = self.deploy("alpha@1.0", expect=1)
        self.assertIn("bin/deploy: is a symbolic link", run.stderr)
        with open(victim) as handle:
            self.assertEqual(handle.read(), "precious\n")
        self.assertEqual(os.stat(victim).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(os.path.join(self.home, "engage")))

    def test_a_link_anywhere_in_the_dist_is_refused(self):
        self.tree.write()
        outside = os.path.join(self.tmp, "outside")
        os.mkdir(outside)
        os.symlink(outside, os.path.join(self.tree.path, "drivers", "escape"))
        run = self.deploy("alpha@1.0", expect=1)
        self.assertIn("drivers/escape: is a symbolic link", run.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "engage")))

    def test_the_copy_holds_few_descriptors_whatever_the_number_of_directories(self):
        for index in range(60):
            self.tree.block("b{}".format(index), "1.0")
        self.tree.write()
        script = ("import resource, sys\nresource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))\n"
                  "from datablox_deployer.home import copy_extension, ENGAGE_PARTS\n"
                  "copy_extension(sys.argv[1], ENGAGE_PARTS, sys.argv[2])\n")
        copy = os.path.join(self.tmp, "copy")
        run = subprocess.run([sys.executable, "-c", script, self.tree.path, copy], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True,
                             env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "python")))
        self.assertEqual(run.returncode, 0, run.stdout)
        self.assertEqual(len(os.listdir(os.path.join(copy, "drivers"))), 61)

    @needs_root
    def test_the_dist_owner_cannot_change_the_homes_deployer(self):
        self.tree.write()
        for directory, dirnames, filenames in os.walk(self.tree.dist):
            for name in dirnames + filenames + [""]:
                os.chown(os.path.join(directory, name), NOBODY, NOBODY)
        self.deploy("alpha@1.0")
        home_cli = os.path.join(self.home, "engage", "bin", "datablox_deployer", "cli.py")
        with open(home_cli, "rb") as handle:
            before = handle.read()
        dist_cli = os.path.join(self.tree.path, "bin", "datablox_deployer", "cli.py")
        # In place (`1<>`: read-write, not truncated), as an editor that keeps the inode does.
        edit = as_nobody("sh", "-c", 'printf "raise SystemExit(7)#" 1<> "$1"', "sh", dist_cli)
        self.assertEqual(edit.returncode, 0, edit.stdout)
        with open(home_cli, "rb") as handle:
            self.assertEqual(handle.read(), before)
        dist_inodes = set()
        for directory, _, filenames in os.walk(self.tree.path):
            dist_inodes.update(os.stat(os.path.join(directory, name)).st_ino for name in filenames)
        for directory, _, filenames in os.walk(os.path.join(self.home, "engage")):
            for name in filenames:
                info = os.lstat(os.path.join(directory, name))
                self.assertEqual((info.st_nlink, info.st_uid), (1, os.geteuid()), os.path.join(directory, name))
                self.assertNotIn(info.st_ino, dist_inodes)


class HomeOwnership(AttackCase):
    """A home, or a directory of it the deployer writes into, that another user could change is
    refused before anything is written (OpenSSH's StrictModes)."""

    def refused(self, *texts):
        before = snapshot(self.home)
        run = self.deploy("alpha@1.0", expect=1)
        self.assertIn("refusing the home", run.stderr)
        for text in texts:
            self.assertIn(text, run.stderr)
        self.assertEqual(snapshot(self.home), before)
        return run

    def test_links_planted_in_a_home_are_refused(self):
        self.tree.write()
        for part in ("blox", "python", "log", ".staging"):
            os.makedirs(self.home, exist_ok=True)
            elsewhere = os.path.join(self.tmp, "elsewhere-" + part.strip("."))
            os.mkdir(elsewhere)
            os.symlink(elsewhere, os.path.join(self.home, part))
            self.refused(os.path.join(self.home, part), "is a symbolic link")
            self.assertEqual(os.listdir(elsewhere), [])
            os.remove(os.path.join(self.home, part))

    @needs_root
    def test_a_home_owned_by_another_user_is_refused(self):
        self.tree.write()
        os.mkdir(self.home, 0o755)
        os.chown(self.home, NOBODY, NOBODY)
        self.refused("owned by uid {}".format(NOBODY))
        # and one of its directories
        os.chown(self.home, 0, 0)
        os.mkdir(os.path.join(self.home, "blox"), 0o755)
        os.chown(os.path.join(self.home, "blox"), NOBODY, NOBODY)
        self.refused(os.path.join(self.home, "blox"), "owned by uid {}".format(NOBODY))

    def test_a_group_writable_home_is_refused(self):
        self.tree.write()
        os.mkdir(self.home)
        os.chmod(self.home, 0o775)
        self.refused("is writable by its group", "chmod go-w")
        os.chmod(self.home, 0o755)
        os.mkdir(os.path.join(self.home, "config"))
        os.chmod(os.path.join(self.home, "config"), 0o757)
        self.refused("config is writable by others")

    def test_a_home_made_under_a_loose_umask_is_not_refused_by_its_own_deployer(self):
        self.tree.write()
        saved = os.umask(0o002)
        try:
            self.deploy("alpha@1.0")
            self.deploy("alpha@1.0")
        finally:
            os.umask(saved)
        self.assertEqual(os.stat(os.path.join(self.home, "blox")).st_mode & 0o777, 0o755)


class PidFile(unittest.TestCase):
    """`log/caretaker.pid` is a claim: a stranger's pid there is not the caretaker."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="pidfile-")
        self.home = Home(os.path.join(self.tmp, "home"))
        for part in ("config", "log", "python"):
            os.makedirs(self.home.path(part))
        for package in ("datablox_framework", "datablox_engage_adapter"):
            shutil.copytree(os.path.join(REPO, "python", package), self.home.path("python", package),
                            ignore=shutil.ignore_patterns("__pycache__"))
        with open(self.home.installed_file, "w") as handle:
            json.dump([{"id": "caretaker", "key": {"name": "datablox-caretaker", "version": "1.0"}}], handle)
        clusterkey.install(auth.key_path(self.home.root))
        self.stranger = subprocess.Popen(["sleep", "300"])

    def tearDown(self):
        try:
            service.stop(self.home)
        except DeployError:
            pass
        self.stranger.kill()
        self.stranger.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_strangers_pid_is_not_the_caretaker(self):
        with open(self.home.path("log", "caretaker.pid"), "w") as handle:
            handle.write("{}\n".format(self.stranger.pid))
        self.assertFalse(service.status(self.home)["running"])
        stopped = service.stop(self.home)
        self.assertEqual(stopped["changed"], False)
        self.assertIsNone(self.stranger.poll(), "stop signalled the stranger")
        # The same with a forged record of the stranger (a wrong start time or command line).
        with open(self.home.path("log", "caretaker.pid"), "w") as handle:
            handle.write("{}\n".format(self.stranger.pid))
        found = service.process_identity(self.stranger.pid)
        with open(service.identity_file(self.home, "caretaker"), "w") as handle:
            json.dump({"pid": self.stranger.pid, "start_time": found[0] + 1, "command": found[1]}, handle)
        self.assertFalse(service.status(self.home)["running"])
        started = service.start(self.home, port=0)
        self.assertTrue(started["changed"])
        self.assertNotEqual(started["pid"], self.stranger.pid)
        self.assertEqual(service.status(self.home)["pid"], started["pid"])
        service.stop(self.home)
        self.assertIsNone(self.stranger.poll(), "stop signalled the stranger")
        self.assertFalse(service.status(self.home)["running"])

    def test_a_reused_pid_is_not_the_caretaker(self):
        started = service.start(self.home, port=0)
        self.assertEqual(service.status(self.home)["pid"], started["pid"])
        # The caretaker dies; its pid goes to a stranger (here: the pid file is pointed at one).
        os.kill(started["pid"], signal.SIGKILL)
        os.waitpid(started["pid"], 0)
        with open(self.home.path("log", "caretaker.pid"), "w") as handle:
            handle.write("{}\n".format(self.stranger.pid))
        self.assertFalse(service.status(self.home)["running"])
        service.stop(self.home)
        time.sleep(0.1)
        self.assertIsNone(self.stranger.poll(), "stop signalled the stranger")


class NamesAndIds(unittest.TestCase):
    def test_node_names_are_compared_without_case(self):
        with self.assertRaises(placement.PlacementError) as caught:
            placement.parse_nodes("w1,W1")
        self.assertIn("node `W1` is given twice", str(caught.exception))
        with self.assertRaises(master.UsageError):
            master.parse_nodes("w1=127.0.0.1:5555,W1=127.0.0.1:5556")

    def test_a_trailing_newline_is_not_part_of_a_valid_id(self):
        with self.assertRaises(placement.PlacementError):
            placement.parse_nodes(["w1\n"])
        with self.assertRaises(master.UsageError):
            master.parse_nodes("w1\n=127.0.0.1:5555")
        path = os.path.join(tempfile.mkdtemp(prefix="topology-"), "t.json")
        try:
            with open(path, "w") as handle:
                json.dump({"blocks": [{"id": "a\n", "name": "Dump", "version": "1.0"}]}, handle)
            with self.assertRaises(placement.PlacementError) as caught:
                placement.read_topology(path)
            self.assertIn("needs an `id` of letters", str(caught.exception))
        finally:
            shutil.rmtree(os.path.dirname(path))


if __name__ == "__main__":
    unittest.main()
