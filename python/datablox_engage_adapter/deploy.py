"""Deploy one block into a deployment home, with the deployer the home has:

- a home the Datablox node deployer made (`<home>/engage/bin/deployer` beside its package
  `datablox_deployer/`): `deployer --home HOME name@version`, run with this Python;
- a real Engage home (`engage/bin/deployer` is Engage's): an install spec naming the host
  (`dynamic-host *`: "this machine", resolved by the deployer) and the block inside it, given to
  `deployer -f SPEC`.
Either works out from the block's resource definition what else the block needs (framework,
packages) and installs that first.
"""

import json
import os
import subprocess
import sys
import tempfile

from datablox_framework import naming

HOST_ID = "master-host"
DYNAMIC_HOST_KEY = {"name": "dynamic-host", "version": "*"}


class DeployError(Exception):
    """The block could not be deployed into the home."""


def _installed_resources(home):
    """The instances of `<home>/config/installed_resources.json`, or [] when there is none."""
    path = os.path.join(home, "config", "installed_resources.json")
    if not os.path.exists(path):
        return []
    try:
        with open(path) as handle:
            instances = json.load(handle)
    except (IOError, ValueError) as error:
        raise DeployError("cannot read {}: {}".format(path, error))
    if not isinstance(instances, list):
        raise DeployError("{} must hold a JSON list of resource instances".format(path))
    return [i for i in instances if isinstance(i, dict)]


def install_spec_for_block(name, version, home):
    """The Engage install spec (a list of resource instances) that installs block `name` `version`
    on this host. Instance ids are unique, also against what is already installed in `home`, so
    the deployer does not mistake the new block for an existing instance."""
    key = naming.block_key(name, version)
    taken = set(i.get("id") for i in _installed_resources(home))
    block_id = naming.block_dir(name, version)
    candidate, counter = block_id, 2
    while candidate in taken or candidate == HOST_ID:
        candidate = "{}-{}".format(block_id, counter)
        counter += 1
    host = {"id": HOST_ID, "key": dict(DYNAMIC_HOST_KEY)}
    block = {"id": candidate, "key": key, "inside": {"id": HOST_ID, "key": dict(DYNAMIC_HOST_KEY)}}
    return [host, block]


def is_deployed(home, name, version):
    """Whether the block's directory exists under `<home>/blox`."""
    return os.path.isdir(os.path.join(home, "blox", naming.block_dir(name, version)))


def deployer_path(home):
    return os.path.join(home, "engage", "bin", "deployer")


def is_node_deployer_home(home):
    """Whether `home` was made by the Datablox node deployer (its package is beside the deployer)."""
    return os.path.isdir(os.path.join(home, "engage", "bin", "datablox_deployer"))


def install_block(home, name, version, runner=None):
    """Deploy the block unless it is installed; returns {"status": "already installed" | "installed",
    "directory": ...}. An installed block costs one directory check and runs no deployer."""
    home = os.path.abspath(home)
    if is_deployed(home, name, version):
        return {"status": "already installed", "directory": os.path.join(home, "blox", naming.block_dir(name, version))}
    return {"status": "installed", "directory": deploy_block(home, name, version, runner)}


def run_command(argv):
    """Run `argv` with no input (the deployer must never wait for a prompt); returns (exit code,
    combined output)."""
    with open(os.devnull) as devnull:
        process = subprocess.Popen(argv, stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True)
        output, _ = process.communicate()
    return process.returncode, output


def deployer_argv(home, spec_path):
    """The deployer's command line, as Engage's `engine/deploy_spec.py` `process_args` reads it: the
    spec is the one positional argument (`-f` is `--logfile-name`); `-a` (`--additive-install`)
    when the home already records installed resources (the deployer refuses the home otherwise,
    and refuses `-a` without them); `-g` generates component passwords instead of prompting; `--`
    ends the options (optparse's rule), so no positional argument is ever read as one."""
    argv = [deployer_path(home), "-g"]
    if os.path.exists(os.path.join(home, "config", "installed_resources.json")):
        argv.append("-a")
    return argv + ["--", spec_path]


def deploy_block(home, name, version, runner=None):
    """Deploy block `name` `version` into `home` unless it is there already; returns its directory.

    `runner(argv) -> (exit code, output)` runs the deployer; tests inject their own.
    """
    home = os.path.abspath(home)
    target = os.path.join(home, "blox", naming.block_dir(name, version))
    if is_deployed(home, name, version):
        return target
    deployer = deployer_path(home)
    if os.path.isfile(deployer) and is_node_deployer_home(home):
        key = naming.block_key(name, version)
        # `--` before the resource: whatever the name, it is never read as an option (the name
        # rule refuses a leading `-` too; this holds even if a caller skipped it).
        code, output = (runner or run_command)(
            [sys.executable, deployer, "--home=" + home, "--", "{}@{}".format(key["name"], key["version"])])
        if code != 0:
            tail = "\n".join((output or "").strip().splitlines()[-20:])
            raise DeployError("the node deployer failed with exit code {} for block `{} {}`:\n{}".format(code, name, version, tail))
        if not is_deployed(home, name, version):
            raise DeployError("the deployer succeeded but {} does not exist".format(target))
        return target
    if not os.path.isfile(deployer):
        raise DeployError(
            "cannot deploy block `{} {}`: no Engage deployer at {} (help: this home was not set up by "
            "Engage nor by the node deployer; deploy the caretaker first with `python3 datablox/bin/deploy "
            "--home HOME`, or install the block by hand)".format(name, version, deployer))
    spec = install_spec_for_block(name, version, home)
    config_dir = os.path.join(home, "config")
    if not os.path.isdir(config_dir):
        os.makedirs(config_dir)
    handle, spec_path = tempfile.mkstemp(prefix="install_{}_".format(naming.block_dir(name, version)),
                                         suffix=".json", dir=config_dir)
    with os.fdopen(handle, "w") as spec_file:
        json.dump(spec, spec_file, indent=2, sort_keys=True)
    code, output = (runner or run_command)(deployer_argv(home, spec_path))
    if code != 0:
        tail = "\n".join((output or "").strip().splitlines()[-20:])
        # The spec is kept so that the failing deployment can be replayed by hand.
        raise DeployError("the deployer failed with exit code {} for block `{} {}` (spec kept at {}):\n{}".format(
            code, name, version, spec_path, tail))
    os.remove(spec_path)
    if not is_deployed(home, name, version):
        raise DeployError("the deployer succeeded but {} does not exist".format(target))
    return target
