"""A topology run on this machine, from start to finish: `deployer --home H run TOPOLOGY` (one home,
every block on it) and `deploy place --topology FILE --nodes A,B --homes-dir DIR --run` (one home
per node). Starts each home's caretaker unless it is running, runs the master with the topology
(its per-block table on stderr, or `--json` on stdout), and stops the caretakers it started,
also when the run fails or is interrupted (Ctrl-C). The exit code is the master's: 0 the run
finished, 1 it failed, 2 bad usage; 130 when interrupted.

`cargo xtask run` builds the dist, then hands over to one of these two.
"""

import json
import os
import subprocess
import sys
import tempfile

from . import DeployError, service

# The node a one-home run names: every block runs there, whatever its `at`.
LOCAL_NODE = "local"


def local_topology(topology, node):
    """`topology` (checked) with every block's `at` set to `node`, in a temporary file (its path)."""
    topology = json.loads(json.dumps(topology))
    for block in topology["blocks"]:
        block["at"] = node
    handle, path = tempfile.mkstemp(prefix="datablox-run-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(topology, out)
    return path


def address(host, port):
    return "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)


def run_homes(homes, topology_path, timeout=None, json_output=False):
    """Runs the (placed) topology on the caretakers of `homes`, [(node, Home)]; returns the
    master's exit code. Caretakers not running are started on a free port of 127.0.0.1 (their
    remembered port is left as it was) and stopped at the end."""
    started = []
    try:
        nodes = []
        for node, home in homes:
            if not service.status(home)["running"]:
                # Counted before the start returns, so that a Ctrl-C during it still stops it.
                started.append(home)
            result = service.start(home, None, 0, None, remember_address=False)
            nodes.append("{}={}".format(node, address(result["listen"], result["port"])))
        command = [sys.executable, "-m", "datablox_framework.master", "--topology", topology_path,
                   "--nodes", ",".join(nodes), "--home", homes[0][1].root]
        if timeout is not None:
            command += ["--timeout", str(timeout)]
        if json_output:
            command.append("--json")
        env = dict(os.environ, PYTHONPATH=homes[0][1].path("python"))
        return subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: stopping the caretakers this run started\n")
        return 130
    finally:
        for home in started:
            try:
                service.stop(home)
            except (DeployError, OSError) as error:
                sys.stderr.write("warning: could not stop the caretaker of {}: {}\n".format(home.root, error))


def run_home(home, topology, timeout=None, json_output=False):
    """`deployer --home H run TOPOLOGY`: every block of `topology` (read and checked by
    `placement`) on this home's caretaker, which deploys the blocks the home lacks (and replaces,
    like every deploy, those whose archive changed)."""
    # A home deployed for a node of a placement answers to that node's name (the master checks it).
    node = home.settings().get("node") or LOCAL_NODE
    path = local_topology(topology, node)
    try:
        return run_homes([(node, home)], path, timeout, json_output)
    finally:
        os.remove(path)
