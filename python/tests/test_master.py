"""The master and the caretakers' parts of a run across nodes: three caretaker processes, each with
its own home, on their own ports of 127.0.0.1. (xtask/tests/nodes.rs runs the real blocks across
three deployed homes.)"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from datablox_framework import auth, master, naming

from helpers import DOUBLER_SOURCE, Control, write_home_key

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUMBERS = '''
from datablox_framework.block import Block
class numbers(Block):
    def on_load(self, config):
        self.count = config.get("count", 10)
        self.add_output("output", ["value"])
    def on_start(self):
        self.push_rows("output", ({"value": i} for i in range(self.count)), 7)
'''

# Pushes a batch every 20 ms for up to a minute, so that a node can die while it runs.
TRICKLE = '''
import time
from datablox_framework.block import Block, Log
class trickle(Block):
    def on_load(self, config):
        self.add_output("output", ["value"])
    def on_start(self):
        for value in range(3000):
            self.push("output", Log({"value": [value]}))
            time.sleep(0.02)
'''

SINK = '''
import json
import os
from datablox_framework.block import Block
class sink(Block):
    """Writes what it received, and flushes each batch's first value to `path`.progress."""
    def on_load(self, config):
        self.path = config["path"]
        self.add_input("input", ["value"])
        self.fail = config.get("fail", False)
        self.values = []
        self.progress = open(self.path + ".progress", "w")
    def recv_push(self, port, log):
        if self.fail == "exit":
            os._exit(3)
        if self.fail:
            raise ValueError("told to fail")
        self.values.extend(log["value"])
        self.progress.write("{}\\n".format(log["value"][0]))
        self.progress.flush()
    def on_shutdown(self):
        self.progress.close()
        with open(self.path, "w") as handle:
            json.dump(sorted(self.values), handle)
'''

GREETER = '''
from datablox_framework.block import Block
class greeter(Block):
    def on_load(self, config):
        self.add_input("input", ["name"])
'''

BLOCKS = {"Numbers": NUMBERS, "Greeter": GREETER, "Trickle": TRICKLE, "Sink": SINK,
          "Doubler": DOUBLER_SOURCE.format(cls="doubler")}


def free_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# The cluster key of every caretaker of these tests.
KEY = auth.new_key()


def run_master(topology, nodes, **options):
    return master.run(topology, nodes, KEY, **options)


def ping(port):
    connection = Control(port, KEY)
    try:
        return connection.request({"op": "ping"})
    finally:
        connection.close()


class Nodes(unittest.TestCase):
    """Three nodes a, b, c: a home each (every test block installed), a caretaker process each."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="nodes-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.environment = dict(os.environ, PYTHONPATH=PYTHON_DIR, PYTHONDONTWRITEBYTECODE="1")
        self.processes = {}
        self.ports = {}
        for node in ("a", "b", "c"):
            home = os.path.join(self.tmp, node)
            for name, source in BLOCKS.items():
                directory = os.path.join(home, "blox", naming.block_dir(name, "1.0"))
                os.makedirs(directory)
                open(os.path.join(directory, "__init__.py"), "w").close()
                with open(os.path.join(directory, naming.block_module(name) + ".py"), "w") as handle:
                    handle.write(source)
            write_home_key(home, KEY)
            # Its log where `deployer start` puts it.
            os.makedirs(os.path.join(home, "log"))
            with open(os.path.join(home, "log", "caretaker.log"), "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "datablox_framework.caretaker", "--home", home, "--port", "0",
                     "--idle-timeout", "120"], stdout=subprocess.PIPE, stderr=log, env=self.environment,
                    universal_newlines=True)
            # Registered at once, so a failing test leaves no caretaker behind.
            self.addCleanup(self._stop, process)
            line = process.stdout.readline()
            self.assertTrue(line.startswith("caretaker listening on 127.0.0.1:"), line)
            self.processes[node] = process
            self.ports[node] = int(line.strip().rsplit(":", 1)[1])

    @staticmethod
    def _stop(process):
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()

    def nodes(self, *names):
        return [(name, "127.0.0.1", self.ports[name]) for name in names]

    def nodes_arg(self, *names):
        return ",".join("{}=127.0.0.1:{}".format(name, self.ports[name]) for name in names)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def topology(self, at, count=1000):
        """numbers -> double -> {sink, sink2}, and numbers -> sink3: with the `at`s given (a dict),
        data crosses a->b, b->c, b->a and a->c."""
        blocks = [{"id": "numbers", "name": "Numbers", "version": "1.0", "args": {"count": count}},
                  {"id": "double", "name": "Doubler", "version": "1.0", "args": {"factor": 3}},
                  {"id": "sink", "name": "Sink", "version": "1.0", "args": {"path": self.path("sink.json")}},
                  {"id": "sink2", "name": "Sink", "version": "1.0", "args": {"path": self.path("sink2.json")}},
                  {"id": "sink3", "name": "Sink", "version": "1.0", "args": {"path": self.path("sink3.json")}}]
        for block in blocks:
            if block["id"] in at:
                block["at"] = at[block["id"]]
        return {"blocks": blocks, "connections": [
            {"from": "numbers.output", "to": "double.input"}, {"from": "double.output", "to": "sink.input"},
            {"from": "double.output", "to": "sink2.input"}, {"from": "numbers.output", "to": "sink3.input"}]}

    def outputs(self):
        found = {}
        for name in ("sink", "sink2", "sink3"):
            with open(self.path(name + ".json")) as handle:
                found[name] = json.load(handle)
            os.remove(self.path(name + ".json"))
        return found

    def master_process(self, topology, nodes, *extra):
        path = self.path("topology.json")
        with open(path, "w") as handle:
            json.dump(topology, handle)
        process = subprocess.Popen([sys.executable, "-m", "datablox_framework.master", "--topology", path,
                                    "--nodes", nodes, "--key-file", auth.key_path(self.path("a"))] + list(extra),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.environment,
                                   universal_newlines=True)
        self.addCleanup(self._stop_master, process)
        return process

    @staticmethod
    def _stop_master(process):
        if process.poll() is None:
            process.kill()
            process.communicate()

    def test_one_node_and_three_nodes_give_the_same_results(self):
        one = run_master(self.topology({}), self.nodes("a"), timeout=60)
        one_outputs = self.outputs()
        spread = {"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "c"}
        three = run_master(self.topology(spread), self.nodes("a", "b", "c"), timeout=60)
        self.assertEqual(self.outputs(), one_outputs)
        self.assertEqual(one_outputs["sink"], [3 * v for v in range(1000)])
        self.assertEqual(one_outputs["sink3"], list(range(1000)))
        strip = lambda counts: dict((b, (c["emitted"], c["received"])) for b, c in counts.items())
        self.assertEqual(strip(three["counts"]), strip(one["counts"]))
        self.assertEqual(strip(one["counts"]), {"numbers": (1000, 0), "double": (1000, 1000), "sink": (0, 1000),
                                                "sink2": (0, 1000), "sink3": (0, 1000)})
        self.assertEqual((one["delivered"], three["delivered"]), (4 * 143, 4 * 143))
        self.assertEqual(set(c["node"] for c in one["counts"].values()), {"a"})
        self.assertEqual(dict((b, c["node"]) for b, c in three["counts"].items()), spread)

        # The command line: the table, then --json; the caretakers served every run.
        run = self.master_process(self.topology(spread), self.nodes_arg("a", "b", "c"))
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual((run.returncode, stdout), (0, ""), stderr)
        self.assertEqual(stderr.splitlines()[:3], ["block    node  emitted  received",
                                                   "numbers  a        1000         0",
                                                   "double   b        1000      1000"])
        self.assertIn("ok: 5 block(s) on 3 node(s), 572 batch(es) delivered in", stderr)
        self.assertEqual(self.outputs(), one_outputs)
        run = self.master_process(self.topology(spread), self.nodes_arg("a", "b", "c"), "--json")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 0, stderr)
        self.assertEqual(strip(json.loads(stdout)["counts"]), strip(one["counts"]))

    def test_nodes_on_ipv6(self):
        # A fourth caretaker on ::1 (both its requests and its data), with a and b on 127.0.0.1.
        home = os.path.join(self.tmp, "v6")
        shutil.copytree(os.path.join(self.tmp, "a", "blox"), os.path.join(home, "blox"))
        write_home_key(home, KEY)
        process = subprocess.Popen(
            [sys.executable, "-m", "datablox_framework.caretaker", "--home", home, "--port", "0", "--host", "::1",
             "--idle-timeout", "120"], stdout=subprocess.PIPE, env=self.environment, universal_newlines=True)
        self.addCleanup(self._stop, process)
        line = process.stdout.readline()
        self.assertTrue(line.startswith("caretaker listening on ::1:"), line)
        nodes = self.nodes_arg("a", "b") + ",c=[::1]:{}".format(line.strip().rsplit(":", 1)[1])
        spread = {"numbers": "a", "double": "c", "sink": "b", "sink2": "c", "sink3": "c"}
        run = self.master_process(self.topology(spread, count=50), nodes, "--json")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 0, stderr)
        self.assertEqual(json.loads(stdout)["nodes"]["c"], "[::1]:{}".format(line.strip().rsplit(":", 1)[1]))
        self.assertEqual(self.outputs()["sink"], [3 * v for v in range(50)])

    def test_two_nodes_may_share_a_caretaker(self):
        # Nodes a and z are the same caretaker: each keeps its own part, data crosses between them.
        spread = {"numbers": "a", "double": "z", "sink": "a", "sink2": "z", "sink3": "b"}
        nodes = self.nodes("a", "b") + [("z", "127.0.0.1", self.ports["a"])]
        result = run_master(self.topology(spread, count=50), nodes, timeout=60)
        self.assertEqual(dict((b, c["node"]) for b, c in result["counts"].items()), spread)
        self.assertEqual(self.outputs()["sink"], [3 * v for v in range(50)])
        self.assert_nothing_runs()

    def test_a_node_that_cannot_be_reached_fails_the_run_naming_it(self):
        port = free_port()
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "c"})
        run = self.master_process(topology, "a={},b=127.0.0.1:{},c={}".format(
            "127.0.0.1:{}".format(self.ports["a"]), port, "127.0.0.1:{}".format(self.ports["c"])), "--json")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("error: node `b` (127.0.0.1:{}) cannot be reached".format(port), stderr)
        self.assertIn("help: start its caretaker", stderr)
        self.assertEqual((json.loads(stdout)["ok"], json.loads(stdout)["node"]), (False, "b"))
        self.assertEqual(ping(self.ports["a"])["ok"], True)

    def test_a_node_that_dies_during_the_run_fails_it_and_the_others_stay_usable(self):
        # trickle (a) -> double (b) -> sink (c): b's caretaker is killed while data flows.
        run = self.master_process(self.trickle(), self.nodes_arg("a", "b", "c"), "--timeout", "60")
        try:
            self.wait_for_data()
            self.processes["b"].send_signal(signal.SIGKILL)
            stdout, stderr = run.communicate(timeout=30)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        self.assertEqual(run.returncode, 1, stderr)
        self.assertIn("error: node `b` (127.0.0.1:{}) stopped answering".format(self.ports["b"]), stderr)
        self.assertFalse(os.path.exists(self.path("sink.json")))
        # a and c aborted their parts and serve the next run.
        self.assert_nothing_runs()
        result = run_master(self.topology({"numbers": "a", "double": "c", "sink": "a", "sink2": "c", "sink3": "a"},
                                          count=10), self.nodes("a", "c"), timeout=60)
        self.assertEqual(result["counts"]["sink"]["received"], 10)
        self.assertEqual(self.outputs()["sink"], [3 * v for v in range(10)])

    def trickle(self):
        """trickle (a) -> double (b) -> sink (c), for about a minute unless stopped."""
        return {"blocks": [
            {"id": "trickle", "name": "Trickle", "version": "1.0", "at": "a"},
            {"id": "double", "name": "Doubler", "version": "1.0", "at": "b"},
            {"id": "sink", "name": "Sink", "version": "1.0", "args": {"path": self.path("sink.json")}, "at": "c"}],
            "connections": [{"from": "trickle.output", "to": "double.input"},
                            {"from": "double.output", "to": "sink.input"}]}

    def wait_for_data(self):
        progress = self.path("sink.json.progress")
        deadline = time.time() + 30
        while not (os.path.exists(progress) and os.path.getsize(progress) > 0) and time.time() < deadline:
            time.sleep(0.05)
        self.assertTrue(os.path.getsize(progress) > 0, "no data reached node c")

    def assert_nothing_runs(self):
        """Every caretaker still alive answers, with no part of a run left running."""
        deadline = time.time() + 30
        for node, process in sorted(self.processes.items()):
            if process.poll() is not None:
                continue
            while ping(self.ports[node])["running"] and time.time() < deadline:
                time.sleep(0.05)
            self.assertEqual(ping(self.ports[node])["running"], [], node)

    def test_a_node_that_hangs_during_the_run_fails_it(self):
        # b's caretaker is stopped (SIGSTOP), as a frozen machine: no connection closes, so only
        # the master's request timeout (1 s here) can tell.
        def freeze_b():
            self.wait_for_data()
            self.processes["b"].send_signal(signal.SIGSTOP)

        freezer = threading.Thread(target=freeze_b)
        freezer.start()
        original = master.REQUEST_TIMEOUT
        master.REQUEST_TIMEOUT = 1.0
        try:
            with self.assertRaises(master.MasterError) as caught:
                run_master(self.trickle(), self.nodes("a", "b", "c"), timeout=60)
        finally:
            master.REQUEST_TIMEOUT = original
            freezer.join()
            self.processes["b"].kill()
        self.assertEqual(caught.exception.node, "b")
        self.assertIn("node `b` (127.0.0.1:{}) did not answer `wait` within 1 s".format(self.ports["b"]),
                      str(caught.exception))
        self.processes["b"].wait()
        self.assert_nothing_runs()

    def test_the_run_times_out_and_every_part_stops(self):
        run = self.master_process(self.trickle(), self.nodes_arg("a", "b", "c"), "--timeout", "1")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1, stderr)
        self.assertIn("error: the run did not finish within 1 s (still running on: node `a`", stderr)
        self.assert_nothing_runs()

    def test_a_master_that_dies_leaves_nothing_running(self):
        run = self.master_process(self.trickle(), self.nodes_arg("a", "b", "c"))
        try:
            self.wait_for_data()
            self.assertEqual(len(ping(self.ports["b"])["running"]), 1)
        finally:
            run.kill()
            run.communicate()
        self.assert_nothing_runs()

    def test_a_failing_block_fails_the_run_naming_node_and_block(self):
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "a"})
        topology["blocks"][2]["args"]["fail"] = True
        with self.assertRaises(master.MasterError) as caught:
            run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertIn("node `c` (127.0.0.1:{}): block `sink` (Sink 1.0): ValueError: told to fail".format(
            self.ports["c"]), str(caught.exception))
        self.assertEqual(caught.exception.node, "c")
        for node in ("a", "b", "c"):
            self.assertEqual(ping(self.ports[node])["ok"], True)

    def log(self, node):
        with open(os.path.join(self.path(node), "log", "caretaker.log")) as handle:
            return handle.read()

    def test_a_run_leaves_a_line_per_request_run_and_failure_in_each_caretakers_log(self):
        spread = {"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "c"}
        result = run_master(self.topology(spread), self.nodes("a", "b", "c"), timeout=60)
        run = result["run"]
        for node in ("a", "b", "c"):
            log = self.log(node)
            for request in ("ping", "prepare run {} node {}".format(run, node), "start run {} node {}".format(run, node),
                            "wait run {} node {}".format(run, node), "abort run {} node {}".format(run, node)):
                self.assertRegex(log, r"INFO 127\.0\.0\.1:\d+: {}\n".format(request), node)
            # The master polls `wait`: only the answer with the part's end is logged.
            self.assertEqual(log.count(": wait run"), 1, log)
        self.assertRegex(self.log("a"), r"INFO run {} node a: done, 2 block\(s\), 1000 record\(s\) emitted, "
                                        r"generation None, \d+\.\d\d s\n".format(run))
        self.assertIn("run {} node c: done, 2 block(s), 0 record(s) emitted".format(run), self.log("c"))
        # A failure says why, on the node where it happened.
        topology = self.topology(spread)
        topology["blocks"][2]["args"]["fail"] = True
        with self.assertRaises(master.MasterError):
            run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertRegex(self.log("c"), r"WARNING run \w+ node c: failed \(block\): block `sink` \(Sink 1\.0\): "
                                        r"ValueError: told to fail")
        for node in ("a", "b", "c"):
            self.assertNotIn(KEY.hex(), self.log(node))

    def test_a_part_runs_in_a_worker_process_that_never_sees_the_key_on_its_command_line(self):
        control = Control(self.ports["b"], KEY)
        self.addCleanup(control.close)
        part = {"blocks": [{"id": "sink", "name": "Sink", "version": "1.0", "args": {"path": self.path("s.json")}}],
                "connections": [], "outbound": [],
                "inbound": [{"id": "c1", "from": "numbers.output", "to": "sink.input", "node": "a"}]}
        answer = control.request({"op": "prepare", "run": "r1", "node": "b", "timeout": 60, "part": part})
        self.assertTrue(answer["ok"], answer)
        caretaker_pid = self.processes["b"].pid
        children = []
        for name in os.listdir("/proc"):
            try:
                with open("/proc/{}/stat".format(name), "rb") as handle:
                    parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
                with open("/proc/{}/cmdline".format(name), "rb") as handle:
                    command = handle.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if parent == caretaker_pid:
                children.append((int(name), command))
        self.assertEqual(len(children), 1, children)
        worker_pid, command = children[0]
        self.assertEqual(command[1:4], [b"-m", b"datablox_framework.worker", b"--channel"])
        self.assertNotIn(KEY.hex().encode(), b" ".join(command))
        # The part's block was loaded there (Sink opens its progress file), not in the caretaker.
        opened = lambda pid: [os.readlink("/proc/{}/fd/{}".format(pid, fd)) for fd in os.listdir("/proc/{}/fd".format(pid))]
        self.assertIn(self.path("s.json.progress"), opened(worker_pid))
        self.assertNotIn(self.path("s.json.progress"), opened(caretaker_pid))
        self.assertTrue(control.request({"op": "abort", "run": "r1"})["known"])

    def test_a_block_that_ends_its_process_fails_the_run_and_its_caretaker_serves_on(self):
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "a"})
        topology["blocks"][2]["args"]["fail"] = "exit"
        with self.assertRaises(master.MasterError) as caught:
            run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertIn("node `c` (127.0.0.1:{}): the worker process of run `".format(self.ports["c"]),
                      str(caught.exception))
        self.assertIn("(node `c`) exited with code 3", str(caught.exception))
        self.assertEqual(caught.exception.node, "c")
        self.assertIsNone(self.processes["c"].poll())
        self.assert_nothing_runs()
        # The next run on the same caretakers works.
        topology["blocks"][2]["args"]["fail"] = False
        run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertEqual(self.outputs()["sink"], [3 * v for v in range(1000)])

    def test_a_caretaker_given_another_nodes_name_fails_the_run_before_anything_is_prepared(self):
        # Homes b and c were deployed as nodes b and c (a placement's deploy records the name).
        for node in ("b", "c"):
            with open(os.path.join(self.path(node), "config", "deployer.json"), "w") as handle:
                json.dump({"node": node}, handle)
        self.assertEqual(ping(self.ports["b"])["home_node"], "b")
        self.assertIsNone(ping(self.ports["a"])["home_node"])
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "a"})
        swapped = [("a", "127.0.0.1", self.ports["a"]), ("b", "127.0.0.1", self.ports["c"]),
                   ("c", "127.0.0.1", self.ports["b"])]
        with self.assertRaises(master.MasterError) as caught:
            run_master(topology, swapped, timeout=60)
        self.assertEqual(str(caught.exception), "`b` answered as `c`: check --nodes (127.0.0.1:{} is the caretaker "
                         "of node `c`)".format(self.ports["c"]))
        self.assertEqual(caught.exception.node, "b")
        # Nothing was prepared (so nothing was deployed or run) anywhere.
        self.assertFalse(os.path.exists(self.path("sink.json.progress")))
        self.assert_nothing_runs()
        # With the right addresses, the run goes.
        run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertEqual(self.outputs()["sink"], [3 * v for v in range(1000)])

    def test_ports_across_nodes_are_checked_before_the_run(self):
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "a"})
        topology["connections"][1]["to"] = "sink.nope"
        with self.assertRaises(master.MasterError) as caught:
            run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertEqual(str(caught.exception), "node `c` (127.0.0.1:{}) cannot run its part: part inbound "
                         "connection #1 (c2): block `sink` has no port `nope` (its ports: input)".format(self.ports["c"]))
        # Fields are checked by the master, which sees both ends.
        topology = self.topology({"numbers": "a", "double": "b", "sink": "c", "sink2": "a", "sink3": "a"})
        topology["blocks"].append({"id": "greet", "name": "Greeter", "version": "1.0", "at": "b"})
        topology["connections"].append({"from": "numbers.output", "to": "greet.input"})
        with self.assertRaises(master.MasterError) as caught:
            run_master(topology, self.nodes("a", "b", "c"), timeout=60)
        self.assertEqual(str(caught.exception), "connection numbers.output -> greet.input: the output lacks field(s) name")
        self.assertFalse(os.path.exists(self.path("sink2.json")))

    def test_a_master_without_the_cluster_key_is_refused_naming_the_node(self):
        other = self.path("other.key")
        auth.write_key(other, auth.new_key())
        run = self.master_process(self.topology({}), self.nodes_arg("a"), "--key-file", other, "--json")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1, stderr)
        self.assertIn("error: node `a` (127.0.0.1:{}) refused: the server did not prove it holds the cluster "
                      "key".format(self.ports["a"]), stderr)
        self.assertIn("help: the master and every caretaker need the same cluster key", stderr)
        self.assertEqual(json.loads(stdout)["node"], "a")
        os.chmod(other, 0o640)
        run = self.master_process(self.topology({}), self.nodes_arg("a"), "--key-file", other)
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1, stderr)
        self.assertIn("error: {}: the cluster key may be read or written by group or others".format(other), stderr)
        self.assertEqual(ping(self.ports["a"])["running"], [])

    def test_bad_usage_and_bad_topologies(self):
        run = self.master_process(self.topology({}), "a=127.0.0.1")
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 2)
        self.assertIn("error: --nodes: `a=127.0.0.1` is not `node=host:port`", stderr)
        topology = self.topology({"numbers": "z"})
        run = self.master_process(topology, self.nodes_arg("a", "b"))
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("block `numbers` is placed `at` node `z`, which is not in --nodes (a, b)", stderr)
        topology = self.topology({})
        topology["connections"].append({"from": "double.output", "to": "numbers.input"})
        run = self.master_process(topology, self.nodes_arg("a"))
        stdout, stderr = run.communicate(timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertIn("the connections have a cycle through block(s) double, numbers", stderr)
        with self.assertRaises(master.MasterError) as caught:
            run_master({"blocks": [{"id": "x", "name": "Absent", "version": "1.0"}]}, self.nodes("a"), timeout=60)
        self.assertIn("node `a` (127.0.0.1:{}) cannot run its part".format(self.ports["a"]), str(caught.exception))
        self.assertIn("deploying block `Absent 1.0` failed", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
