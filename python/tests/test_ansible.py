"""`--ansible DIR` (`datablox_deployer.ansible`): what it writes, that it writes it reproducibly and
all at once, and what it refuses. The playbook itself runs under the real ansible-playbook in
xtask/tests/ansible.rs."""

import io
import os
import shutil
import tarfile
import tempfile
import unittest

from datablox_deployer import DeployError, ansible

NODES = ["master", "w1", "w2"]


def stage_bundles(nodes, extra=b""):
    """A stand-in for the bundle writer: `<node>/bin/deploy` and a package per node."""

    def stage(parent):
        staging = tempfile.mkdtemp(prefix=".bundles.tmp-", dir=parent)
        for node in nodes:
            os.makedirs(os.path.join(staging, node, "bin"))
            os.makedirs(os.path.join(staging, node, "sw_packages"))
            with open(os.path.join(staging, node, "bin", "deploy"), "wb") as handle:
                handle.write(b"#!/usr/bin/env python3\n")
            os.chmod(os.path.join(staging, node, "bin", "deploy"), 0o700)
            with open(os.path.join(staging, node, "sw_packages", "b.tgz"), "wb") as handle:
                handle.write(node.encode() + extra)
            with open(os.path.join(staging, node, "SHA256SUMS"), "wb") as handle:
                handle.write(b"sums\n")
        with open(os.path.join(staging, "plan.json"), "w") as handle:
            handle.write('{"nodes": []}\n')
        return staging

    return stage


def tree(root):
    found = {}
    for top, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(top, name)
            relative = os.path.relpath(path, root)
            if os.path.isdir(path):
                found[relative + "/"] = oct(os.stat(path).st_mode & 0o777)
            else:
                with open(path, "rb") as handle:
                    found[relative] = (oct(os.stat(path).st_mode & 0o777), handle.read())
    return found


class AnsibleTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ansible-")
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_writes_inventory_playbook_and_one_archive_per_node(self):
        summary = ansible.write(self.out, NODES, stage_bundles(NODES))
        self.assertEqual(summary["hosts"], NODES)
        self.assertEqual(sorted(os.listdir(self.out)), ["bundles", "cluster.key", "inventory.ini", "plan.json",
                                                        "site.yml"])
        self.assertEqual(os.stat(os.path.join(self.out, "cluster.key")).st_mode & 0o777, 0o600)
        self.assertEqual(sorted(os.listdir(os.path.join(self.out, "bundles"))), ["master.tar", "w1.tar", "w2.tar"])
        with open(os.path.join(self.out, "inventory.ini")) as handle:
            inventory = handle.read()
        hosts = [line for line in inventory.splitlines() if line and not line.startswith(("#", "["))]
        self.assertEqual(hosts, [
            "master datablox_home=/opt/datablox/master/home datablox_bundle=/opt/datablox/master/bundle datablox_port=5555",
            "w1 datablox_home=/opt/datablox/w1/home datablox_bundle=/opt/datablox/w1/bundle datablox_port=5555",
            "w2 datablox_home=/opt/datablox/w2/home datablox_bundle=/opt/datablox/w2/bundle datablox_port=5555",
            "datablox_python=python3",
            "datablox_listen=127.0.0.1",
        ])
        self.assertNotIn("ansible_connection=", inventory.replace("# ", ""))
        with open(os.path.join(self.out, "site.yml")) as handle:
            playbook = handle.read()
        self.assertTrue(playbook.startswith(ansible.HEADER + "\n"))
        modules = sorted(set(line.strip().rstrip(":") for line in playbook.splitlines()
                             if line.strip().startswith("ansible.")))
        self.assertEqual(modules, ["ansible.builtin.command", "ansible.builtin.copy", "ansible.builtin.file",
                                   "ansible.builtin.unarchive", "ansible.builtin.wait_for"])
        # The key is copied private and never shown in Ansible's output.
        copy = playbook[playbook.index("- name: Copy the cluster key"):]
        copy = copy[:copy.index("\n\n")]
        self.assertIn('mode: "0600"', copy)
        self.assertIn("no_log: true", copy)
        self.assertIn("gather_facts: false", playbook)
        self.assertEqual(playbook.count("changed_when:"), 3)
        # No leftovers beside DIR.
        self.assertEqual(os.listdir(self.tmp), ["out"])

    def test_archives_hold_the_bundle_with_fixed_owner_mtime_and_modes(self):
        ansible.write(self.out, NODES, stage_bundles(NODES))
        with tarfile.open(os.path.join(self.out, "bundles", "w1.tar")) as tar:
            members = tar.getmembers()
            self.assertEqual([m.name for m in members],
                             ["SHA256SUMS", "bin", "bin/deploy", "sw_packages", "sw_packages/b.tgz"])
            for member in members:
                self.assertEqual((member.uid, member.gid, member.uname, member.gname, member.mtime),
                                 (0, 0, "", "", ansible.MTIME), member.name)
            self.assertEqual({m.name: oct(m.mode) for m in members}, {
                "SHA256SUMS": "0o644", "bin": "0o755", "bin/deploy": "0o755", "sw_packages": "0o755",
                "sw_packages/b.tgz": "0o644"})
            self.assertEqual(tar.extractfile("sw_packages/b.tgz").read(), b"w1")

    def test_same_input_gives_the_same_bytes_whatever_the_umask_and_path(self):
        ansible.write(self.out, NODES, stage_bundles(NODES))
        first = tree(self.out)
        other = os.path.join(self.tmp, "elsewhere", "out2")
        os.makedirs(os.path.dirname(other))
        old = os.umask(0o077)
        try:
            ansible.write(other, NODES, stage_bundles(NODES))
        finally:
            os.umask(old)
        second = tree(other)
        # Each output has its own cluster key; everything else is the same bytes.
        self.assertNotEqual(first.pop("cluster.key"), second.pop("cluster.key"))
        self.assertEqual({k: v[1] for k, v in first.items() if isinstance(v, tuple)},
                         {k: v[1] for k, v in second.items() if isinstance(v, tuple)})

    def test_rewrites_its_own_output_and_keeps_it_when_the_writer_fails(self):
        ansible.write(self.out, NODES, stage_bundles(NODES))
        ansible.write(self.out, NODES, stage_bundles(NODES, b"-v2"))
        with tarfile.open(os.path.join(self.out, "bundles", "master.tar")) as tar:
            self.assertEqual(tar.extractfile("sw_packages/b.tgz").read(), b"master-v2")
        before = tree(self.out)

        def broken(parent):
            stage_bundles(NODES)(parent)
            raise DeployError("the dist is broken")

        with self.assertRaises(DeployError):
            ansible.write(self.out, NODES, broken)
        self.assertEqual(tree(self.out), before)
        self.assertEqual(os.listdir(self.tmp), ["out"])

    def test_a_missing_bundle_is_refused(self):
        with self.assertRaisesRegex(DeployError, "node `w2`"):
            ansible.write(self.out, NODES, stage_bundles(NODES[:2]))
        self.assertFalse(os.path.exists(self.out))
        self.assertEqual(os.listdir(self.tmp), [])

    def test_a_directory_not_ours_is_refused_and_left_alone(self):
        os.makedirs(self.out)
        with open(os.path.join(self.out, "notes.txt"), "w") as handle:
            handle.write("mine\n")
        with self.assertRaisesRegex(DeployError, "was not written by `deploy --ansible`.*notes.txt") as caught:
            ansible.write(self.out, NODES, stage_bundles(NODES))
        self.assertEqual(caught.exception.code, 1)
        self.assertEqual(os.listdir(self.out), ["notes.txt"])
        with open(os.path.join(self.out, "site.yml"), "w") as handle:
            handle.write("- hosts: all\n")
        with self.assertRaises(DeployError):
            ansible.write(self.out, NODES, stage_bundles(NODES))
        self.assertEqual(sorted(os.listdir(self.out)), ["notes.txt", "site.yml"])
        self.assertEqual(sorted(os.listdir(self.tmp)), ["out"])

    def test_a_file_or_a_symbolic_link_is_refused(self):
        with open(self.out, "w") as handle:
            handle.write("x")
        with self.assertRaisesRegex(DeployError, "not a directory"):
            ansible.write(self.out, NODES, stage_bundles(NODES))
        os.remove(self.out)
        os.makedirs(os.path.join(self.tmp, "real"))
        os.symlink(os.path.join(self.tmp, "real"), self.out)
        with self.assertRaisesRegex(DeployError, "symbolic link"):
            ansible.write(self.out, NODES, stage_bundles(NODES))
        self.assertEqual(os.listdir(os.path.join(self.tmp, "real")), [])

    def test_an_empty_directory_is_used(self):
        os.makedirs(self.out)
        ansible.write(self.out, NODES, stage_bundles(NODES))
        self.assertTrue(os.path.isfile(os.path.join(self.out, "site.yml")))

    def test_node_names_must_be_inventory_hosts(self):
        for bad in (["a b"], ["-x"], [".hidden"], ["a/b"], [""], ["w1", "w1"]):
            with self.assertRaises(DeployError) as caught:
                ansible.write(self.out, bad, stage_bundles(bad))
            self.assertEqual(caught.exception.code, 2, bad)
        self.assertFalse(os.path.exists(self.out))


if __name__ == "__main__":
    unittest.main()
