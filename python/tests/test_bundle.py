"""`deploy place`: the plan, per-node bundles (`--bundle`) and homes (`--homes-dir`), run as a
program on a small extension tree; bundles must be byte-reproducible and deploy with Python 3 only."""

import hashlib
import json
import os
import subprocess
import sys
import unittest

from deployer_tree import REPO, wheel, write_json
from test_placement import PlacementCase, topology


def run(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"), PYTHONDONTWRITEBYTECODE="1")
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "datablox_deployer"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, env=env, **kwargs)


def listing(root):
    """{relative path: (mode, sha256 or None)} of everything under root."""
    out = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode & 0o7777
            digest = None
            if name in filenames:
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            out[os.path.relpath(path, root)] = (mode, digest)
    return out


class Place(PlacementCase):
    def setUp(self):
        PlacementCase.setUp(self)
        self.topology = os.path.join(self.tmp, "topology.json")
        write_json(self.topology, topology(("s", "Small"), ("h", "Heavy", "m"), ("l", "Large")))

    def place(self, *args, **kwargs):
        expect = kwargs.pop("expect", 0)
        result = run("place", "--tree", self.tree.path, "--platform", "ubuntu-linux", "14.04",
                     "--topology", self.topology, *args, **kwargs)
        self.assertEqual(result.returncode, expect, "stdout:\n{}\nstderr:\n{}".format(result.stdout, result.stderr))
        return result

    def test_dry_run_prints_the_plan_and_writes_nothing(self):
        out = os.path.join(self.tmp, "bundles")
        result = self.place("--nodes", "m,w", "--bundle", out, "--dry-run", "--json")
        plan = json.loads(result.stdout)
        self.assertEqual([(b["id"], b["node"], b["pinned"]) for b in plan["blocks"]],
                         [("s", "w", False), ("h", "m", True), ("l", "w", False)])
        self.assertEqual([n["name"] for n in plan["nodes"]], ["m", "w"])
        self.assertEqual(plan["output"], {"kind": "bundle", "dir": out})
        self.assertFalse(os.path.exists(out))
        human = self.place("--nodes", "m,w", "--dry-run").stderr
        self.assertIn("h  Heavy 1.0  -> m  at", human)
        self.assertIn("node w  2 block(s), 4 resource(s)", human)
        self.assertIn("Plan only: nothing written.", human)

    def test_bundles_hold_the_closure_and_are_reproducible(self):
        first = os.path.join(self.tmp, "one", "bundles")
        second = os.path.join(self.tmp, "two", "bundles")
        os.makedirs(os.path.dirname(first))
        os.makedirs(os.path.dirname(second))
        self.place("--nodes", "m,w", "--bundle", first)
        # Another umask, time zone, locale and working directory: the same bytes and modes.
        self.place("--nodes", "m,w", "--bundle", second, cwd=os.path.dirname(second),
                   env={"TZ": "Pacific/Chatham", "LC_ALL": "C", "LANG": "C"},
                   preexec_fn=lambda: os.umask(0o077))
        # The cluster key beside the bundles is each run's own (mode 0600); the bundles are the same.
        first_key, second_key = (listing(d).pop("cluster.key") for d in (first, second))
        self.assertEqual((first_key[0], second_key[0]), (0o600, 0o600))
        self.assertNotEqual(first_key[1], second_key[1])
        files = listing(first)
        del files["cluster.key"]
        self.assertEqual(files, dict((p, v) for p, v in listing(second).items() if p != "cluster.key"))
        self.assertEqual(sorted(p for p in files if p.startswith("m/sw_packages/")),
                         ["m/sw_packages/care.tgz", "m/sw_packages/fw.tgz", "m/sw_packages/heavy__1_0.tgz",
                          "m/sw_packages/table.json"])
        self.assertEqual(sorted(p for p in files if p.startswith("w/sw_packages/")),
                         ["w/sw_packages/care.tgz", "w/sw_packages/fw.tgz", "w/sw_packages/large__1_0.tgz",
                          "w/sw_packages/small__1_0.tgz"])
        self.assertEqual(sorted(p for p in files if p.startswith("w/drivers/") and p.count("/") == 2),
                         ["w/drivers/large__1_0", "w/drivers/small__1_0"])
        self.assertEqual(files["w/bin/deploy"][0], 0o755)
        self.assertEqual(files["w/topology.json"][0], 0o644)
        self.assertEqual(os.stat(os.path.join(first, "w", "topology.json")).st_mtime, 315532800)
        with open(os.path.join(first, "topology.json")) as handle:
            self.assertEqual([b["at"] for b in json.load(handle)["blocks"]], ["w", "m", "w"])
        with open(os.path.join(first, "w", "metadata", "resource_definitions.json")) as handle:
            self.assertEqual(sorted(d["key"]["name"] for d in json.load(handle)), ["care", "fw"])
        check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=os.path.join(first, "m"),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        self.assertEqual(check.returncode, 0, check.stdout)
        with open(os.path.join(first, "m", "SHA256SUMS")) as handle:
            listed = [line.split("  ", 1)[1] for line in handle.read().splitlines()]
        self.assertEqual(listed, sorted(p[2:] for p, (mode, digest) in files.items()
                                        if p.startswith("m/") and digest and p != "m/SHA256SUMS"))

    def test_a_bundle_deploys_its_node_into_a_fresh_home(self):
        out = os.path.join(self.tmp, "bundles")
        self.place("--nodes", "m,w", "--bundle", out)
        home = os.path.join(self.tmp, "home-w")
        deployed = subprocess.run([sys.executable, os.path.join(out, "w", "bin", "deploy"), "--home", home,
                                   "--platform", "ubuntu-linux", "14.04"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                  env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"})
        self.assertEqual(deployed.returncode, 0, deployed.stderr)
        with open(os.path.join(home, "config", "installed_resources.json")) as handle:
            ids = [i["id"] for i in json.load(handle)]
        self.assertEqual(ids, ["master-host", "__fw__1_0", "caretaker", "__large__1_0", "__small__1_0"])
        self.assertEqual(sorted(os.listdir(os.path.join(home, "blox"))), ["__init__.py", "large__1_0", "small__1_0"])
        # The home knows which node it is, and its caretaker will say so.
        with open(os.path.join(home, "config", "deployer.json")) as handle:
            self.assertEqual(json.load(handle)["node"], "w")

    def test_homes_dir_deploys_each_node_with_exactly_its_closure(self):
        homes = os.path.join(self.tmp, "homes")
        wheels = os.path.join(self.tmp, "wheels")
        os.makedirs(wheels)
        wheel(wheels, "pipdep", "1.0", "VALUE = 1\n")
        result = self.place("--nodes", "m,w,idle", "--homes-dir", homes, "--find-links", wheels, "--json")
        plan = json.loads(result.stdout)
        for node in plan["nodes"]:
            with open(os.path.join(homes, node["name"], "config", "installed_resources.json")) as handle:
                installed = [(i["key"]["name"], i["key"]["version"]) for i in json.load(handle) if i["id"] != "master-host"]
            self.assertEqual(installed, [(c["key"]["name"], c["key"]["version"]) for c in node["closure"]], node["name"])
        self.assertEqual(sorted(os.listdir(homes)), ["cluster.key", "idle", "m", "plan.json", "topology.json", "w"])
        # One cluster key, in every home (mode 0600), never in the plan or the output.
        with open(os.path.join(homes, "cluster.key")) as handle:
            key = handle.read()
        for node in ("idle", "m", "w"):
            path = os.path.join(homes, node, "config", "cluster.key")
            with open(path) as handle:
                self.assertEqual(handle.read(), key)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertNotIn(key.strip(), result.stdout + result.stderr)
        self.assertEqual([n["name"] for n in plan["nodes"] if not n["blocks"]], [])
        for node in ("idle", "m", "w"):
            with open(os.path.join(homes, node, "config", "deployer.json")) as handle:
                self.assertEqual(json.load(handle)["node"], node)
        self.assertTrue(os.path.isfile(os.path.join(homes, "m", "python", "pipdep", "__init__.py")))
        self.assertEqual(sorted(os.listdir(os.path.join(homes, "w", "engage", "sw_packages"))),
                         ["care.tgz", "fw.tgz", "large__1_0.tgz"])
        # Each home's deploy.log records what was installed there, as a single-home deploy's does.
        for node in plan["nodes"]:
            with open(os.path.join(homes, node["name"], "log", "deploy.log")) as handle:
                logged = handle.read()
            for entry in node["closure"]:
                self.assertIn("install {} {} (".format(entry["key"]["name"], entry["key"]["version"]), logged)
        # Again: nothing to do.
        again = self.place("--nodes", "m,w,idle", "--homes-dir", homes, "--find-links", wheels)
        self.assertIn("Deployed 0 resource(s) into {}".format(os.path.join(homes, "m")), again.stderr)

    def test_a_new_placement_moves_no_other_block_and_removes_what_a_node_no_longer_needs(self):
        homes = os.path.join(self.tmp, "homes")
        wheels = os.path.join(self.tmp, "wheels")
        os.makedirs(wheels)
        wheel(wheels, "pipdep", "1.0", "VALUE = 1\n")

        def place(large_at, *extra):
            write_json(self.topology, topology(("s", "Small"), ("h", "Heavy", "m"), ("l", "Large", large_at)))
            plan = json.loads(self.place("--nodes", "m,w", "--homes-dir", homes, "--json", *extra).stdout)
            return dict((b["id"], b["node"]) for b in plan["blocks"])

        def has_large(node):
            with open(os.path.join(homes, node, "config", "installed_resources.json")) as handle:
                recorded = any(i["key"]["name"] == "large" for i in json.load(handle))
            self.assertEqual(os.path.isdir(os.path.join(homes, node, "blox", "large__1_0")), recorded)
            return recorded

        write_json(self.topology, topology(("s", "Small"), ("h", "Heavy", "m"), ("l", "Large")))
        first = json.loads(self.place("--nodes", "m,w", "--homes-dir", homes, "--find-links", wheels, "--json").stdout)
        first = dict((b["id"], b["node"]) for b in first["blocks"])
        self.assertEqual(first["l"], "w")
        self.assertTrue(has_large("w"))
        # Pinning `l` on m: no other block moves (without the last plan, `s` would), and w, which
        # no longer runs it, no longer holds it.
        second = place("m")
        self.assertEqual([b for b in first if b != "l" and first[b] != second[b]], [])
        self.assertEqual(second["l"], "m")
        self.assertTrue(has_large("m"))
        self.assertFalse(has_large("w"))
        # What was deployed by name stays: `large` is asked for by name on m, then placed on w.
        named = run("--home", os.path.join(homes, "m"), "--tree", os.path.join(homes, "m", "engage"), "large")
        self.assertEqual(named.returncode, 0, named.stderr)
        place("w")
        self.assertTrue(has_large("m"))
        self.assertTrue(has_large("w"))
        # --keep keeps what the placement no longer needs.
        write_json(self.topology, topology(("s", "Small"), ("h", "Heavy", "m")))
        place_kept = json.loads(self.place("--nodes", "m,w", "--homes-dir", homes, "--json", "--keep").stdout)
        self.assertEqual(len(place_kept["blocks"]), 2)
        self.assertTrue(has_large("w"))

    def test_refusals_write_nothing(self):
        foreign = os.path.join(self.tmp, "foreign")
        os.makedirs(foreign)
        with open(os.path.join(foreign, "notes.txt"), "w") as handle:
            handle.write("mine\n")
        result = self.place("--nodes", "m,w", "--bundle", foreign, expect=1)
        self.assertIn("exists and is not a bundle directory", result.stderr)
        self.assertEqual(os.listdir(foreign), ["notes.txt"])
        homes = os.path.join(self.tmp, "homes")
        os.makedirs(os.path.join(homes, "w"))
        with open(os.path.join(homes, "w", "x"), "w") as handle:
            handle.write("x")
        result = self.place("--nodes", "m,w", "--homes-dir", homes, expect=1)
        self.assertIn("{} exists and is not a deployment home".format(os.path.join(homes, "w")), result.stderr)
        self.assertEqual(sorted(os.listdir(homes)), ["w"])
        # A node whose deploy fails (its pip package has no wheel) is named.
        result = self.place("--nodes", "m,w", "--homes-dir", os.path.join(self.tmp, "homes2"),
                            "--find-links", self.tmp, expect=1)
        self.assertIn("error: node `m` ({}): pip could not install `pipdep==1.0`".format(
            os.path.join(self.tmp, "homes2", "m")), result.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "homes2", "m")))
        # --find-links names a directory on this machine: only --homes-dir deploys here.
        for flag in ("--bundle", "--ansible"):
            out = os.path.join(self.tmp, "never")
            result = self.place("--nodes", "m,w", flag, out, "--find-links", self.tmp, expect=2)
            self.assertIn("--find-links applies to --homes-dir only", result.stderr)
            self.assertFalse(os.path.exists(out))
        for nodes, message in (("m,w,m", "node `m` is given twice"), ("m,w/x", "node name `w/x` is not a plain name"),
                               ("w", "block `h` is placed `at` node `m`, which is not one of the nodes w")):
            out = os.path.join(self.tmp, "never")
            result = self.place("--nodes", nodes, "--bundle", out, "--json", expect=1)
            self.assertIn(message, json.loads(result.stdout)["error"])
            self.assertFalse(os.path.exists(out))
        with open(self.topology, "w") as handle:
            handle.write('{"blocks": [}\n')
        result = self.place("--nodes", "m", "--bundle", os.path.join(self.tmp, "never"), expect=1)
        self.assertIn("{}:1:13: not valid JSON".format(self.topology), result.stderr)
        self.assertEqual(run("place", "--nodes", "m").returncode, 2)

    def test_a_damaged_dist_fails_and_leaves_the_previous_bundles(self):
        out = os.path.join(self.tmp, "bundles")
        self.place("--nodes", "m,w", "--bundle", out)
        before = listing(out)
        with open(os.path.join(self.tree.path, "sw_packages", "large__1_0.tgz"), "ab") as handle:
            handle.write(b"tampered")
        result = self.place("--nodes", "m,w,x", "--bundle", out, expect=1)
        self.assertIn("large__1_0.tgz: its SHA-256 is not the one SHA256SUMS lists", result.stderr)
        self.assertEqual(listing(out), before)
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".")], [])

    def test_a_second_bundle_run_replaces_its_own_output(self):
        out = os.path.join(self.tmp, "bundles")
        self.place("--nodes", "m,w", "--bundle", out)
        key = listing(out)["cluster.key"]
        self.place("--nodes", "m,w,x", "--bundle", out)
        self.assertEqual(sorted(os.listdir(out)), ["cluster.key", "m", "plan.json", "topology.json", "w", "x"])
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".")], [])
        # The cluster key of the earlier run is kept; --key-file delivers another.
        self.assertEqual(listing(out)["cluster.key"], key)
        other = os.path.join(self.tmp, "other.key")
        with open(os.open(other, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            handle.write("ab" * 32 + "\n")
        self.place("--nodes", "m,w", "--bundle", out, "--key-file", other)
        with open(os.path.join(out, "cluster.key")) as handle:
            self.assertEqual(handle.read(), "ab" * 32 + "\n")
        # A key file others may read is refused, and nothing is written.
        os.chmod(other, 0o644)
        before = listing(out)
        result = self.place("--nodes", "m,w", "--bundle", out, "--key-file", other, expect=1)
        self.assertIn("{}: the --key-file may be read or written by group or others (mode 0644); refused".format(
            other), result.stderr)
        self.assertEqual(listing(out), before)

    def test_what_a_killed_run_left_is_removed_by_the_next(self):
        out = os.path.join(self.tmp, "bundles")
        host = os.uname().nodename
        finished = subprocess.Popen([sys.executable, "-c", "pass"])
        finished.wait()
        running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.addCleanup(running.wait)
        self.addCleanup(running.kill)
        left = [".bundles.tmp-{}-{}-k1ll3d".format(host, finished.pid),
                ".bundles.old-{}-{}-k1ll3d".format(host, finished.pid)]
        kept = [".bundles.tmp-{}-{}-writing".format(host, running.pid),   # a run still writing
                ".bundles.tmp-otherhost-{}-x".format(finished.pid),        # another host's
                ".bundles.tmp-hand-made", ".other.tmp-{}-{}-x".format(host, finished.pid)]
        for name in left + kept:
            os.makedirs(os.path.join(self.tmp, name, "m"))
        self.place("--nodes", "m,w", "--bundle", out)
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(".")), sorted(kept))
        self.assertEqual(sorted(os.listdir(out)), ["cluster.key", "m", "plan.json", "topology.json", "w"])


    def test_a_link_in_the_dist_is_refused_and_nothing_is_shipped(self):
        """A hostile dist: a driver file and the archive of a block are links to a secret outside
        it. Neither `--bundle` nor `--ansible` follows them: refused, nothing written."""
        secret = os.path.join(self.tmp, "secret")
        with open(secret, "w") as handle:
            handle.write("the secret\n")
        for link in (os.path.join("drivers", "small__1_0", "notes.txt"), os.path.join("sw_packages", "small__1_0.tgz")):
            path = os.path.join(self.tree.path, link)
            if os.path.exists(path):
                os.remove(path)
            os.symlink(secret, path)
            for flag in ("--bundle", "--ansible"):
                out = os.path.join(self.tmp, "out" + flag)
                result = self.place("--nodes", "m,w", flag, out, expect=1)
                self.assertIn("{}: is a symbolic link".format(os.path.join(self.tree.path, link)), result.stderr)
                self.assertFalse(os.path.exists(out))
                self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".out")], [])
            os.remove(path)

if __name__ == "__main__":
    unittest.main()
