"""The Datablox node deployer: deploys resources of the Datablox Engage extension into a
deployment home with nothing but Python 3's standard library (no Engage, no Rust).

It ships inside the extension as `datablox/bin/deploy` plus this package and the framework's
(`datablox_framework`: the topology rules, the cluster key file, the name rule, which it imports),
and a home it made holds its own copy as `<home>/engage/bin/deployer`. Parts, in the order a
deploy uses them:

  extension  the extension tree: definitions, library entries, packages, SHA256SUMS, install specs
  resolve    requested keys -> resource instances as Engage resolves them (inside, environment,
             peers, version ranges, one-of, port mappings, `${...}` values), dependencies first
  safetar    archive checks (digest, members, links, bombs) and extraction into a staging dir
  home       the home's layout, its lock, installed_resources.json and installing each package kind
  clusterkey which cluster key: a home's, else a new one; one per topology deploy, for every node
  service    start/stop/status of service resources (the caretaker), pid files and logs in log/
  run        a topology run on homes of this machine: start caretakers, run the master, stop them
  ansible    `--ansible DIR`: an inventory, a playbook and per-node bundle archives for Ansible
  cli        the command line (`deploy --help`)
  placement  several nodes: which node runs each block of a topology, each node's closure
  bundle     one bundle per node (`deploy place --bundle DIR`), byte-reproducible
  nodes      the `deploy place` command (plan, then bundles or one home per node)
"""

class DeployError(Exception):
    """A deploy cannot go on; the message names what (file, archive, member, resource) and what to do.

    `code` is the exit code: 1 for bad input or a failed install, 2 for bad usage."""

    def __init__(self, message, code=1):
        Exception.__init__(self, message)
        self.code = code


__all__ = ["DeployError"]
