import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

from datablox_framework import auth, caretaker
from datablox_framework.caretaker import Caretaker, CaretakerError, CaretakerServer

from helpers import DOUBLER_SOURCE, Control, TempBloxpath, write_home_key

KEY = auth.new_key()

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Writes the values it received to `path` (JSON) at shutdown.
COLLECT = """
import json
from datablox_framework.block import Block

class collect(Block):
    def on_load(self, config):
        self.path = config["path"]
        self.values = []
        self.add_input("input", ["value"])
    def recv_push(self, port, log):
        self.values.extend(log["value"])
    def on_shutdown(self):
        with open(self.path, "w") as handle:
            json.dump(self.values, handle)
"""


class FakeAdapter(object):
    """Deploys a block by writing a doubler block into the home's BLOXPATH."""

    def __init__(self, bloxpath, fail=False):
        self.bloxpath = bloxpath
        self.fail = fail
        self.calls = []

    def deploy_block(self, home, name, version):
        self.calls.append((home, name, version))
        if self.fail:
            raise RuntimeError("deployer exploded")
        self.bloxpath.write_block(name, version)


class CaretakerTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="home-")
        # The home's blox directory is a TempBloxpath so the imported modules are cleaned up.
        self.blox = TempBloxpath()
        shutil.rmtree(self.blox.root)
        self.blox.root = os.path.join(self.home, "blox")
        os.makedirs(self.blox.root)

    def tearDown(self):
        self.blox.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def test_installed_block_is_only_loaded(self):
        self.blox.write_block("Care-Installed", "1.0")
        adapter = FakeAdapter(self.blox)
        summary = Caretaker(self.home, adapter).load_block("Care-Installed", "1.0")
        self.assertEqual(adapter.calls, [])
        self.assertFalse(summary["deployed"])
        self.assertEqual(summary["ports"], ["input", "output"])
        self.assertEqual(summary["directory"], os.path.join(self.home, "blox", "care_installed__1_0"))

    def test_run_topology_deploys_once_and_counts_per_block(self):
        source = """
from datablox_framework.block import Block, Log

class {cls}(Block):
    def on_load(self, config):
        self.count = config["count"]
        self.add_output("output", ["value"])
    def on_start(self):
        self.push("output", Log({{"value": list(range(self.count))}}))
"""
        self.blox.write_block("Numbers", "1.0", source.format(cls="numbers"))
        adapter = FakeAdapter(self.blox)
        care = Caretaker(self.home, adapter)
        topology = {"blocks": [{"id": "n", "name": "Numbers", "version": "1.0", "args": {"count": 3}},
                               {"id": "d", "name": "Care-Doubler", "version": "1.0", "args": {"factor": 10}}],
                    "connections": [{"from": "n.output", "to": "d.input"}]}
        answer = care.handle({"op": "run", "topology": topology})
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["deployed"], ["Care-Doubler 1.0"])
        self.assertEqual(answer["counts"], {"n": {"emitted": 3, "received": 0}, "d": {"emitted": 3, "received": 3}})
        self.assertEqual(answer["result"], {"blocks": 2, "delivered": 1, "order": ["n", "d"]})
        # Another run with other args: its own instances, nothing deployed.
        topology["blocks"][0]["args"] = {"count": 5}
        answer = care.handle({"op": "run", "topology": topology})
        self.assertEqual((answer["deployed"], answer["counts"]["d"]["received"]), ([], 5))
        self.assertEqual(len(adapter.calls), 1)

    def test_run_topology_errors_name_the_block_or_connection(self):
        care = Caretaker(self.home, None)
        # The topology is checked by the rules the master and placement apply (`topology`).
        self.assertIn("topology: block `x` needs a string `name`",
                      care.handle({"op": "run", "topology": {"blocks": [{"id": "x"}]}})["error"])
        answer = care.handle({"op": "run", "topology": {"blocks": [{"id": "x", "name": "Absent", "version": "1.0"}]}})
        self.assertIn("block `Absent 1.0` is not installed", answer["error"])
        self.blox.write_block("Care-One", "1.0")
        answer = care.handle({"op": "run", "topology": {
            "blocks": [{"id": "a", "name": "Care-One", "version": "1.0"}],
            "connections": [{"from": "a.output", "to": "b.input"}]}})
        self.assertIn("topology: connection #1: no block `b` in the topology", answer["error"])

    def test_missing_block_is_deployed_by_the_adapter(self):
        adapter = FakeAdapter(self.blox)
        care = Caretaker(self.home, adapter)
        with self.assertLogs("datablox", "INFO") as logged:
            summary = care.load_block("Care-Deployed", "1.0", {"factor": 4})
        self.assertRegex(logged.output[0], r"INFO:datablox:deployed block `Care-Deployed 1.0` in \d+\.\d\d s")
        self.assertEqual(adapter.calls, [(os.path.abspath(self.home), "Care-Deployed", "1.0")])
        self.assertTrue(summary["deployed"])
        self.assertEqual(summary["ports"], ["input", "output"])
        # Loaded again: installed now, so only imported (in a new worker).
        self.assertFalse(care.load_block("Care-Deployed", "1.0", {"factor": 5})["deployed"])
        self.assertEqual(len(adapter.calls), 1)
        # A block that fails in its worker is answered with the worker's error.
        self.blox.write_block("Care-Broken", "1.0", "raise ImportError('a missing dependency')\n")
        with self.assertRaises(CaretakerError) as caught:
            care.load_block("Care-Broken", "1.0")
        self.assertIn("block `Care-Broken 1.0` is installed but cannot be loaded: ", str(caught.exception))
        self.assertIn("a missing dependency", str(caught.exception))
        self.assertEqual(care.workers, set())

    def test_a_changed_block_reaches_the_next_run_without_a_restart(self):
        source = """
from datablox_framework.block import Block, Log

class {cls}(Block):
    def on_load(self, config):
        self.add_output("output", ["value"])
    def on_start(self):
        self.push("output", Log({{"value": [{value}]}}))
"""
        directory = self.blox.write_block("Emits", "1.0", source.format(cls="emits", value=1))
        self.blox.write_block("Collect", "1.0", COLLECT)
        out = os.path.join(self.home, "out.json")
        topology = {"blocks": [{"id": "e", "name": "Emits", "version": "1.0"},
                               {"id": "c", "name": "Collect", "version": "1.0", "args": {"path": out}}],
                    "connections": [{"from": "e.output", "to": "c.input"}]}
        care = Caretaker(self.home, None)
        installed = os.path.join(self.home, "config", "installed_resources.json")
        os.makedirs(os.path.dirname(installed))
        with open(installed, "w") as handle:
            handle.write("[]\n")
        first = care.handle({"op": "run", "topology": topology})
        self.assertTrue(first["ok"], first)
        with open(out) as handle:
            self.assertEqual(json.load(handle), [1])
        # A deploy replaces the block's directory and rewrites installed_resources.json.
        shutil.rmtree(directory)
        self.blox.write_block("Emits", "1.0", source.format(cls="emits", value=2))
        with open(installed, "w") as handle:
            handle.write('[{"id": "emits"}]\n')
        second = care.handle({"op": "run", "topology": topology})
        self.assertTrue(second["ok"], second)
        with open(out) as handle:
            self.assertEqual(json.load(handle), [2])
        self.assertNotEqual(first["generation"], second["generation"])
        self.assertEqual(care.handle({"op": "ping"})["generation"], second["generation"])
        self.assertEqual(len(second["generation"]), 12)

    def test_a_crashing_block_fails_its_run_and_the_caretaker_serves_on(self):
        crash = """
import os, signal
from datablox_framework.block import Block, Log

class {cls}(Block):
    def on_load(self, config):
        self.how = config["how"]
        if self.how == "import":
            raise ImportError("no module named `missing_dependency`")
        self.add_output("output", ["value"])
    def on_start(self):
        if self.how == "exit":
            os._exit(3)
        if self.how == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        self.push("output", Log({{"value": [1]}}))
"""
        self.blox.write_block("Crash", "1.0", crash.format(cls="crash"))
        server = CaretakerServer(Caretaker(self.home, None, key=KEY), port=0, client_timeout=5)
        thread = threading.Thread(target=server.serve_until_stopped, kwargs={"idle_timeout": 30})
        thread.start()
        try:
            run = lambda how: {"op": "run", "topology": {"blocks": [
                {"id": "x", "name": "Crash", "version": "1.0", "args": {"how": how}}]}}
            answers = exchange(server.port, [run("exit"), {"op": "ping"}, run("segfault"), run("import"),
                                             run("fine"), {"op": "shutdown"}])
        finally:
            thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual((answers[0]["ok"], answers[0]["cause"]), (False, "block"))
        self.assertEqual(answers[0]["error"], "the worker process of the run exited with code 3")
        self.assertEqual(answers[1]["pid"], os.getpid())
        self.assertEqual(answers[2]["error"], "the worker process of the run was killed by SIGSEGV (signal 11)")
        self.assertEqual((answers[3]["ok"], answers[3]["cause"]), (False, "block"))
        self.assertIn("topology block `x` (Crash 1.0): no module named `missing_dependency`", answers[3]["error"])
        self.assertTrue(answers[4]["ok"], answers[4])
        self.assertEqual(answers[4]["counts"], {"x": {"emitted": 1, "received": 0}})

    def test_without_adapter_a_missing_block_fails_clearly(self):
        with self.assertRaises(CaretakerError) as caught:
            Caretaker(self.home, adapter=None).load_block("Care-Missing", "1.0")
        self.assertIn("no deployment adapter", str(caught.exception))

    def test_adapter_failure_is_reported(self):
        with self.assertRaises(CaretakerError) as caught, self.assertLogs("datablox", "INFO") as logged:
            Caretaker(self.home, FakeAdapter(self.blox, fail=True)).load_block("Care-Fail", "1.0")
        self.assertIn("deployer exploded", str(caught.exception))
        self.assertRegex(logged.output[0], r"WARNING:datablox:deploy of block `Care-Fail 1.0` failed after "
                                           r"\d+\.\d\d s: deployer exploded")

    def test_bad_name_is_an_error_answer(self):
        answer = Caretaker(self.home, None).handle({"op": "load", "name": "bad_name", "version": "1.0"})
        self.assertFalse(answer["ok"])
        self.assertIn("reserved", answer["error"])
        self.assertFalse(Caretaker(self.home, None).handle({"op": "dance"})["ok"])
        self.assertFalse(Caretaker(self.home, None).handle([1])["ok"])


def exchange(port, requests):
    """Send line-delimited JSON requests on one authenticated connection; return the answers."""
    connection = Control(port, KEY)
    try:
        return [connection.request(request) for request in requests]
    finally:
        connection.close()


class ServerTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="home-")
        self.blox = TempBloxpath()
        shutil.rmtree(self.blox.root)
        self.blox.root = os.path.join(self.home, "blox")
        os.makedirs(self.blox.root)

    def tearDown(self):
        self.blox.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def test_protocol_in_a_thread(self):
        adapter = FakeAdapter(self.blox)
        server = CaretakerServer(Caretaker(self.home, adapter, key=KEY), port=0, client_timeout=5)
        thread = threading.Thread(target=server.serve_until_stopped, kwargs={"idle_timeout": 20})
        thread.start()
        try:
            answers = exchange(server.port, [
                {"op": "ping"},
                b"{broken",
                {"op": "load", "name": "Served-Block", "version": "1.0"},
                {"op": "load", "name": "Served-Block", "version": "1.0"},
                {"op": "shutdown"},
            ])
        finally:
            thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertEqual(answers[0]["pid"], os.getpid())
        self.assertFalse(answers[1]["ok"])
        self.assertIn("invalid JSON", answers[1]["error"])
        self.assertTrue(answers[2]["block"]["deployed"])
        self.assertFalse(answers[3]["block"]["deployed"])
        self.assertEqual(answers[4], {"ok": True})

    def test_idle_server_stops_by_itself(self):
        server = CaretakerServer(Caretaker(self.home, None, key=KEY), port=0)
        thread = threading.Thread(target=server.serve_until_stopped, kwargs={"idle_timeout": 0.5})
        thread.start()
        thread.join(10)
        self.assertFalse(thread.is_alive())

    def test_main_as_a_process_writes_and_removes_pid_file(self):
        self.blox.write_block("Process-Block", "1.0")
        write_home_key(self.home, KEY)
        environment = dict(os.environ)
        environment["PYTHONPATH"] = PYTHON_DIR
        process = subprocess.Popen(
            [sys.executable, "-m", "datablox_framework.caretaker", "--home", self.home, "--port", "0",
             "--idle-timeout", "20"],
            stdout=subprocess.PIPE, env=environment, universal_newlines=True)
        try:
            line = process.stdout.readline()
            self.assertTrue(line.startswith("caretaker listening on 127.0.0.1:"), line)
            port = int(line.strip().rsplit(":", 1)[1])
            pid_path = caretaker.pid_file(self.home)
            with open(pid_path) as handle:
                self.assertEqual(int(handle.read()), process.pid)
            answers = exchange(port, [
                {"op": "load", "name": "Process-Block", "version": "1.0"},
                {"op": "load", "name": "Absent-Block", "version": "1.0"},
                {"op": "shutdown"},
            ])
            self.assertEqual(process.wait(30), 0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        self.assertTrue(answers[0]["ok"])
        self.assertFalse(answers[0]["block"]["deployed"])
        # The process runs with python/ on its path, so the real adapter is found; this home has
        # no Engage deployer, which the answer says.
        self.assertFalse(answers[1]["ok"])
        self.assertIn("no Engage deployer", answers[1]["error"])
        self.assertEqual(answers[2], {"ok": True})
        self.assertFalse(os.path.exists(pid_path))


if __name__ == "__main__":
    unittest.main()
