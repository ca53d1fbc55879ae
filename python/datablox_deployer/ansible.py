"""`--ansible DIR`: an Ansible inventory and playbook that deploy placed nodes from their bundles.

DIR holds, after a run:

  inventory.ini     one host per node (group `datablox`), with the variables the playbook reads:
                    datablox_home (the node's deployment home), datablox_bundle (where its bundle
                    is copied), datablox_port and datablox_listen (its caretaker's port and
                    address, 127.0.0.1 unless changed), datablox_python;
                    optional datablox_find_links (wheels on the node, for pip without an index)
  site.yml          per host: copy and unpack its bundle (ansible.builtin.file + unarchive),
                    install it with the bundle's node deployer (ansible.builtin.command,
                    `changed_when` from the deployer's `--json` result), start the caretaker (the
                    deployer's `start`, changed only when it started it), wait for its port
                    (ansible.builtin.wait_for)
  bundles/<node>.tar  each node's bundle (the directory `bundle` writes), as one reproducible tar
  plan.json, topology.json  the placement plan and the placed topology, as `--bundle` writes them
  cluster.key       the cluster key (mode 0600), which the playbook copies to every host's
                    <home>/config/cluster.key (mode 0600, `no_log`), restarting its caretaker when
                    the key changed

The bundle travels as one archive because Ansible's `copy` of a directory runs one module per
file (a stat, then a copy), where `unarchive` is one
module run per host and reports `changed` only when `tar --diff` finds a difference (the node
needs GNU tar, as `unarchive` does). Only modules that ship with ansible-core are used, so
`ansible-playbook -i inventory.ini site.yml` on a machine with ansible-core is all a user runs;
a second run reports `changed=0` for every host. How Ansible reaches a host (ansible_host,
ansible_user, ansible_connection) is left to the user: on the host's line, or in a second
inventory (`-i inventory.ini -i hosts.ini`) that a regenerated DIR does not overwrite.

Writing: the whole directory is made under a temporary sibling name and renamed into place, so
DIR is either the previous output or the new one; the bytes depend only on the nodes, the
options and the bundles (archive members sorted, owner 0, mtime MTIME, modes 0644/0755). A DIR
that exists and is not empty must be one this module wrote (its site.yml starts with HEADER),
else it is refused and left alone: the output-directory rule, `outdir`.
"""

import os
import shutil
import tarfile

from datablox_framework import auth

from . import DeployError, clusterkey, outdir

HEADER = "# Datablox deployment playbook, written by `cargo xtask deploy --ansible`"
DEFAULT_ROOT = "/opt/datablox"
DEFAULT_PORT = 5555
# 1980-01-01, the mtime `dist` gives archive entries: unarchive compares mtimes, so it must not vary.
MTIME = 315532800

INVENTORY = """\
# Datablox nodes, written by `cargo xtask deploy --ansible`; regenerating replaces this file.
# One host per node. Add how Ansible reaches each one (ansible_host=, ansible_user=, ...) on its
# line, or, to keep them across regenerations, in a second inventory:
#   ansible-playbook -i inventory.ini -i hosts.ini site.yml
# datablox_home: the node's deployment home; datablox_bundle: where its bundle is copied;
# datablox_port: its caretaker's TCP port (the master's --nodes NODE=HOST:PORT);
# datablox_listen: the address it listens on: for a master on another machine, an address of
# the node that the master reaches (every connection proves the cluster key, cluster.key).
# Optional: datablox_find_links=DIR, a directory of wheels on the node from which pip packages
# are installed without a package index.
[datablox]
{hosts}

[datablox:vars]
datablox_python=python3
datablox_listen=127.0.0.1
"""

PLAYBOOK = HEADER + """
# Per host: copy its bundle, install it with the node deployer, restart the caretaker if the
# install changed anything, start it, wait for its port.
# Run: ansible-playbook -i inventory.ini site.yml (again: changed=0, nothing to do).
# Only modules that ship with ansible-core.
- name: Deploy the Datablox nodes
  hosts: datablox
  gather_facts: false
  tasks:
    - name: Make the bundle's directory
      ansible.builtin.file:
        path: "{{ datablox_bundle }}"
        state: directory
        mode: "0755"

    - name: Copy and unpack the node's bundle
      ansible.builtin.unarchive:
        src: "{{ playbook_dir }}/bundles/{{ inventory_hostname }}.tar"
        dest: "{{ datablox_bundle }}"
        # The bundle's own modes (0644, 0755 where executable) whatever the remote umask: without
        # this, a user whose umask removes bits (077) gets `Mode differs` from `tar --diff` and
        # the task reports changed on every run.
        mode: "u=rwX,go=rX"

    - name: Install the bundle into the home
      ansible.builtin.command:
        argv: >-
          {{ [datablox_python, datablox_bundle ~ '/bin/deploy', '--home', datablox_home, '--json']
             + (['--find-links', datablox_find_links] if datablox_find_links | default('') else []) }}
      register: datablox_install
      changed_when: datablox_install.rc == 0 and (datablox_install.stdout | from_json).changed

    - name: Copy the cluster key
      ansible.builtin.copy:
        src: "{{ playbook_dir }}/cluster.key"
        dest: "{{ datablox_home }}/config/cluster.key"
        mode: "0600"
      register: datablox_key
      no_log: true

    # A running caretaker keeps the modules it imported and the key it read: after an install
    # that changed the home (a block or the framework replaced) or a new key, it is stopped here
    # and started again below.
    - name: Stop the caretaker when the install or the key changed the home
      ansible.builtin.command:
        argv:
          - "{{ datablox_python }}"
          - "{{ datablox_bundle }}/bin/deploy"
          - --home
          - "{{ datablox_home }}"
          - stop
          - --json
      register: datablox_stopped
      when: datablox_install is changed or datablox_key is changed
      changed_when: datablox_stopped.rc == 0 and (datablox_stopped.stdout | from_json).changed

    - name: Start the caretaker
      ansible.builtin.command:
        argv:
          - "{{ datablox_python }}"
          - "{{ datablox_bundle }}/bin/deploy"
          - --home
          - "{{ datablox_home }}"
          - start
          - --port
          - "{{ datablox_port }}"
          - --listen
          - "{{ datablox_listen }}"
          - --json
      register: datablox_caretaker
      changed_when: datablox_caretaker.rc == 0 and (datablox_caretaker.stdout | from_json).changed

    - name: Wait for the caretaker's port
      ansible.builtin.wait_for:
        host: "{{ datablox_listen }}"
        port: "{{ datablox_port }}"
        timeout: 60
"""


def inventory_text(nodes, root=DEFAULT_ROOT, port=DEFAULT_PORT):
    """The inventory: one host per node, in the order given, with its home, bundle and port."""
    lines = []
    for node in nodes:
        base = "{}/{}".format(root.rstrip("/") or "", node)
        lines.append("{} datablox_home={}/home datablox_bundle={}/bundle datablox_port={}".format(
            node, base, base, port))
    return INVENTORY.format(hosts="\n".join(lines))


def check_node_name(node):
    """A node is an inventory host name and a directory name: letters, digits, `-`, `_`, `.`."""
    if not node or node.startswith((".", "-")) or not all(c.isalnum() and c.isascii() or c in "-_." for c in node):
        raise DeployError("node name `{}` cannot be an inventory host (help: use letters, digits, `-`, `_` "
                          "and `.`, not first)".format(node), 2)


def has_playbook(out_dir):
    """Whether `out_dir` holds our site.yml (a regular file starting with HEADER)."""
    return (outdir.read_marker(os.path.join(out_dir, "site.yml")) or b"").split(b"\n", 1)[0] == HEADER.encode()


def check_target(out_dir):
    """Refuse a DIR that is not ours to replace (the output-directory rule)."""
    why = outdir.refusal(out_dir, has_playbook)
    if why == outdir.FOREIGN:
        raise DeployError("--ansible {}: exists and was not written by `deploy --ansible` (no site.yml of ours; "
                          "holds {}) (help: name a new or empty directory; nothing was changed)".format(
                              out_dir, ", ".join(sorted(os.listdir(out_dir))[:5])))
    if why:
        raise DeployError("--ansible {}: {} (help: name a new or empty directory)".format(out_dir, why))


def write_file(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.chmod(path, 0o644)


def write(out_dir, nodes, stage_bundles, root=DEFAULT_ROOT, port=DEFAULT_PORT, key=None):
    """Write inventory.ini, site.yml, cluster.key (`key`, a new one when None) and
    bundles/<node>.tar into `out_dir`, replacing an earlier
    output of ours. `stage_bundles(parent)` makes a fresh directory under `parent` holding
    `<node>/` (a bundle with `bin/deploy`) for every node, and optionally plan.json and
    topology.json, which are kept beside the playbook; it is removed after packing.
    Returns a summary for `--json`."""
    for node in nodes:
        check_node_name(node)
    if len(set(nodes)) != len(nodes):
        raise DeployError("a node is named twice in {} (help: name each node once)".format(",".join(nodes)), 2)
    out_dir = os.path.abspath(out_dir)
    check_target(out_dir)
    parent, name = os.path.split(out_dir)
    if not os.path.isdir(parent):
        raise DeployError("--ansible {}: {} does not exist (help: create it first)".format(out_dir, parent))
    staging = outdir.staging(parent, name)
    try:
        # mkdtemp makes the directory private; the output gets the mode mkdir would give it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        write_file(os.path.join(staging, "inventory.ini"), inventory_text(nodes, root, port))
        write_file(os.path.join(staging, "site.yml"), PLAYBOOK)
        auth.write_key(os.path.join(staging, clusterkey.NAME), key if key is not None else auth.new_key())
        unpacked = stage_bundles(staging)
        bundles = os.path.join(staging, "bundles")
        os.mkdir(bundles)
        for node in nodes:
            bundle = os.path.join(unpacked, node)
            if not os.path.isfile(os.path.join(bundle, "bin", "deploy")):
                raise DeployError("the bundle writer wrote no bundle with bin/deploy for node `{}` (a bug)".format(node))
            pack(bundle, os.path.join(bundles, node + ".tar"))
        for kept in ("plan.json", "topology.json"):
            if os.path.isfile(os.path.join(unpacked, kept)):
                os.rename(os.path.join(unpacked, kept), os.path.join(staging, kept))
        shutil.rmtree(unpacked)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    outdir.switch(staging, out_dir, check_target)
    return {"ansible": out_dir, "inventory": os.path.join(out_dir, "inventory.ini"),
            "playbook": os.path.join(out_dir, "site.yml"), "hosts": list(nodes),
            "bundles": [os.path.join(out_dir, "bundles", node + ".tar") for node in nodes]}


def pack(directory, archive):
    """`directory` -> a reproducible tar archive of its contents (no top directory): members
    sorted, owner 0 without names, mtime MTIME, mode 0755 for directories and executables and
    0644 for the rest. Only directories and regular files; anything else is a bug of the writer."""
    members = []
    for top, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(top, name)
            members.append((os.path.relpath(path, directory).replace(os.sep, "/"), path))
    members.sort()
    with open(archive, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in members:
            info = tar.gettarinfo(path, arcname=name)
            if not (info.isdir() or info.isfile()):
                raise DeployError("{}: not a regular file or directory; a bundle holds only those".format(path))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = MTIME
            info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
            if info.isfile():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    os.chmod(archive, 0o644)
