"""The cluster key and the attack suite: what an attacker does with plain sockets on 127.0.0.1
against a caretaker process started as a node's service starts it (`deploy --home H start` runs
`python3 -m datablox_framework.caretaker --home H --port N --host 127.0.0.1`), each refused, and
the caretaker still serving a master that holds the key."""

import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from datablox_framework import auth, master, naming, transport
from datablox_framework.block import Log

from helpers import Control, write_home_key
from test_master import BLOCKS, SINK

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(PYTHON_DIR)


def write_file(path, text, mode=0o600):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


class KeyFile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="key-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "cluster.key")

    def test_a_written_key_is_private_and_reads_back(self):
        key = auth.new_key()
        auth.write_key(self.path, key)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        self.assertEqual(auth.read_key(self.path), key)
        self.assertEqual(os.listdir(self.tmp), ["cluster.key"])

    def test_unsafe_or_malformed_key_files_are_refused_naming_the_file(self):
        auth.write_key(self.path, auth.new_key())
        for mode, expected in ((0o640, "mode 0640"), (0o604, "mode 0604"), (0o620, "mode 0620")):
            os.chmod(self.path, mode)
            with self.assertRaises(auth.KeyFileError) as caught:
                auth.read_key(self.path)
            self.assertIn("{}: the cluster key may be read or written by group or others ({})".format(
                self.path, expected), str(caught.exception))
        os.chmod(self.path, 0o600)
        link = os.path.join(self.tmp, "link.key")
        os.symlink(self.path, link)
        with self.assertRaises(auth.KeyFileError) as caught:
            auth.read_key(link)
        self.assertIn("is a symbolic link; refused", str(caught.exception))
        if os.geteuid() == 0:
            os.chown(self.path, 65534, 65534)
            with self.assertRaises(auth.KeyFileError) as caught:
                auth.read_key(self.path)
            self.assertIn("owned by uid 65534, not by this user", str(caught.exception))
            os.chown(self.path, 0, 0)
        write_file(self.path, "not hex\n")
        with self.assertRaises(auth.KeyFileError) as caught:
            auth.read_key(self.path)
        self.assertIn("not a cluster key (64 hex digits", str(caught.exception))
        with self.assertRaises(auth.KeyFileError) as caught:
            auth.read_key(os.path.join(self.tmp, "absent.key"))
        self.assertIn("absent.key: the cluster key is missing (help: `deploy --home HOME` creates", str(caught.exception))

    def test_the_deployer_and_the_framework_agree_on_the_file(self):
        from datablox_deployer import DeployError, clusterkey

        self.assertTrue(clusterkey.install(self.path))
        self.assertFalse(clusterkey.install(self.path))
        self.assertEqual(clusterkey.read(self.path), auth.read_key(self.path))
        other = auth.new_key()
        self.assertTrue(clusterkey.install(self.path, other))
        self.assertEqual(auth.read_key(self.path), other)
        os.chmod(self.path, 0o644)
        with self.assertRaises(DeployError):
            clusterkey.read(self.path)


class Sessions(unittest.TestCase):
    def handshake(self, client_key, server_key, client_purpose="control", server_purpose="control"):
        left, right = socket.socketpair()
        results = {}

        def serve():
            try:
                results["server"] = auth.server_handshake(right, server_key, server_purpose, timeout=5)
            except auth.AuthError as error:
                results["server"] = error
                right.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            results["client"] = auth.client_handshake(left, client_key, client_purpose, timeout=5)
        except auth.AuthError as error:
            results["client"] = error
            left.close()
        thread.join()
        left.close()
        right.close()
        return results["client"], results["server"]

    def test_both_sides_prove_the_key_and_every_message_is_checked_in_order(self):
        key = auth.new_key()
        client, server = self.handshake(key, key)
        first, second = client.seal_line(b'{"op": "ping"}'), client.seal_line(b'{"op": "shutdown"}')
        self.assertEqual(server.open_line(first), b'{"op": "ping"}')
        # A replay, a line out of order, an altered line: each fails.
        for bad in (first, first[:-3] + b"x}\n"):
            with self.assertRaises(auth.AuthError):
                server.open_line(bad)
        self.assertEqual(server.open_line(second), b'{"op": "shutdown"}')
        # The answers go the other way, with their own counter: a request cannot pass for one.
        answer = server.seal_line(b'{"ok": true}')
        with self.assertRaises(auth.AuthError):
            server.open_line(answer)
        self.assertEqual(client.open_line(answer), b'{"ok": true}')
        # Another connection with the same key has another session key: no splicing.
        other_client, other_server = self.handshake(key, key)
        with self.assertRaises(auth.AuthError):
            other_server.open_line(client.seal_line(b'{"op": "ping"}'))

    def test_every_tag_is_hmac_sha256_of_direction_sequence_number_and_payload(self):
        # The session computes RFC 2104's HMAC from two SHA-256 states keyed once; it must give
        # the tags of `hmac.new`, for every message of both directions, whatever the payload's
        # length (empty, shorter and longer than SHA-256's block, over hashlib's 2 KiB threshold
        # for releasing the GIL) and type (bytes or a memoryview, as frames are checked).
        session_key = auth.new_key()
        client = auth.Session(session_key, b"c>s", b"s>c")
        server = auth.Session(session_key, b"s>c", b"c>s")
        payloads = [b"", b"x", os.urandom(63), os.urandom(64), os.urandom(65), os.urandom(4121), os.urandom(70000)]
        for number, payload in enumerate(payloads):
            for sender, receiver, direction in ((client, server, b"c>s"), (server, client, b"s>c")):
                expected = hmac.new(session_key, direction + struct.pack(">Q", number) + payload,
                                    hashlib.sha256).digest()
                tag = sender.seal(payload)
                self.assertEqual(tag, expected)
                receiver.check(tag, memoryview(b"tag" + payload)[3:])

    def test_the_masters_requests_are_written_at_once(self):
        # TCP_NODELAY: the first request, written right after the handshake's last message, is
        # not held for the caretaker's delayed ACK.
        key = auth.new_key()
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        self.addCleanup(server.close)

        def serve():
            sock, _ = server.accept()
            auth.server_handshake(sock, key, "control", timeout=5)
            sock.close()

        thread = threading.Thread(target=serve)
        thread.start()
        link = master.Link("a", "127.0.0.1", server.getsockname()[1], key)
        link.connect(5)
        thread.join()
        self.assertTrue(link.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        link.close()

    def test_a_wrong_key_or_purpose_fails_on_both_sides(self):
        client, server = self.handshake(auth.new_key(), auth.new_key())
        self.assertIsInstance(client, auth.AuthError)
        self.assertIn("the server did not prove it holds the cluster key", str(client))
        key = auth.new_key()
        client, server = self.handshake(key, key, "data", "control")
        self.assertIsInstance(server, auth.AuthError)
        self.assertIn("opened a data connection, not a control one", str(server))


def start_caretaker(home, stderr_path, key_file=None, tls=None):
    """The caretaker as a node's service starts it; returns (process, port)."""
    command = [sys.executable, "-m", "datablox_framework.caretaker", "--home", home, "--port", "0",
               "--host", "127.0.0.1", "--idle-timeout", "120"] + (["--key-file", key_file] if key_file else []) + (
        ["--tls-cert", tls[0], "--tls-key", tls[1], "--tls-ca", tls[2]] if tls else [])
    with open(stderr_path, "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, universal_newlines=True,
                                   env=dict(os.environ, PYTHONPATH=PYTHON_DIR, PYTHONDONTWRITEBYTECODE="1"))
    line = process.stdout.readline()
    return process, (int(line.strip().rsplit(":", 1)[1]) if line.startswith("caretaker listening on") else None)


def rss_kib(pid):
    with open("/proc/{}/status".format(pid)) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def closed_without_answer(sock, timeout=15):
    """Whether the peer closes `sock` having sent nothing."""
    sock.settimeout(timeout)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    except ConnectionResetError:
        pass
    return received == b""


class Attacks(unittest.TestCase):
    """One caretaker process with the key KEY; the Sink block is installed."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="attack-")
        cls.key = auth.new_key()
        cls.home = os.path.join(cls.tmp, "home")
        directory = os.path.join(cls.home, "blox", naming.block_dir("Sink", "1.0"))
        os.makedirs(directory)
        open(os.path.join(directory, "__init__.py"), "w").close()
        with open(os.path.join(directory, naming.block_module("Sink") + ".py"), "w") as handle:
            handle.write(SINK)
        write_home_key(cls.home, cls.key)
        cls.log = os.path.join(cls.tmp, "caretaker.log")
        cls.process, cls.port = start_caretaker(cls.home, cls.log)
        assert cls.port, "the caretaker did not start"

    @classmethod
    def tearDownClass(cls):
        if cls.process.poll() is None:
            cls.process.kill()
        cls.process.wait()
        cls.process.stdout.close()
        shutil.rmtree(cls.tmp, True)

    def master(self):
        connection = Control(self.port, self.key)
        self.addCleanup(connection.close)
        return connection

    def assert_still_serving(self):
        self.assertIsNone(self.process.poll())
        answer = self.master().request({"op": "ping"})
        self.assertEqual((answer["ok"], answer["pid"]), (True, self.process.pid))

    def plain(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(sock.close)
        return sock

    def test_without_the_key_nothing_is_served(self):
        target = os.path.join(self.tmp, "victim")
        for request in ({"op": "ping"}, {"op": "load", "name": "Sink", "version": "1.0", "config": {"path": target}},
                        {"op": "run", "topology": {"blocks": [{"id": "s", "name": "Sink", "version": "1.0",
                                                               "args": {"path": target}}]}},
                        {"op": "shutdown"}):
            sock = self.plain()
            sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
            self.assertTrue(closed_without_answer(sock), request["op"])
        self.assertFalse(os.path.exists(target + ".progress"))
        self.assert_still_serving()
        with open(self.log) as handle:
            logged = handle.read()
        self.assertIn("refused a connection from 127.0.0.1:", logged)
        self.assertIn("the peer does not speak the Datablox handshake", logged)
        self.assertNotIn(self.key.hex(), logged)

    def test_a_wrong_key_is_refused_both_ways(self):
        with self.assertRaises(auth.AuthError) as caught:
            Control(self.port, auth.new_key())
        self.assertIn("the server did not prove it holds the cluster key", str(caught.exception))
        # A client that goes on with a made-up proof gets nothing.
        sock = self.plain()
        sock.sendall(auth.MAGIC + b"c" + secrets.token_bytes(32))
        sock.recv(64)
        sock.sendall(secrets.token_bytes(32) + b'0' * 64 + b' {"op": "shutdown"}\n')
        self.assertTrue(closed_without_answer(sock))
        self.assert_still_serving()

    def test_replayed_reordered_and_spliced_lines_close_the_connection(self):
        master = self.master()
        ping = master.session.seal_line(b'{"op": "ping"}')
        master.sock.sendall(ping)
        self.assertTrue(master.receive()["ok"])
        master.sock.sendall(ping)
        self.assertIsNone(master.receive())
        # Out of order: the second line first.
        master = self.master()
        master.session.seal_line(b'{"op": "ping"}')
        master.sock.sendall(master.session.seal_line(b'{"op": "shutdown"}'))
        self.assertIsNone(master.receive())
        # A line sealed for one connection, sent on another.
        first, second = self.master(), self.master()
        line = first.session.seal_line(b'{"op": "ping"}')
        second.sock.sendall(line)
        self.assertIsNone(second.receive())
        first.sock.sendall(line)
        self.assertTrue(first.receive()["ok"])
        self.assert_still_serving()

    def test_an_oversized_line_is_refused_and_memory_stays_bounded(self):
        before = rss_kib(self.process.pid)
        # Unauthenticated: the handshake reads 41 bytes and stops.
        sock = self.plain()
        sender = threading.Thread(target=self.flood, args=(sock, 8))
        sender.start()
        self.assertTrue(closed_without_answer(sock))
        sender.join()
        # Authenticated: 1 MiB is the limit; 4 MiB more without a newline gets an answer, then the end.
        master = self.master()
        sender = threading.Thread(target=self.flood, args=(master.sock, 5))
        sender.start()
        answer = master.receive()
        sender.join()
        self.assertEqual(answer, {"ok": False, "error": "a request line is limited to 1048576 bytes; closing the "
                                                        "connection"})
        self.assertIsNone(master.receive())
        self.assertLess(rss_kib(self.process.pid) - before, 16 * 1024)
        self.assert_still_serving()

    @staticmethod
    def flood(sock, mebibytes):
        try:
            for _ in range(mebibytes):
                sock.sendall(b"x" * (1 << 20))
        except OSError:
            pass

    def test_bad_json_and_absurd_numbers_get_an_answer(self):
        master = self.master()
        answer = master.request(b"{broken")
        self.assertFalse(answer["ok"])
        self.assertIn("invalid JSON", answer["error"])
        self.assertIn("invalid JSON", master.request(b"[1, 2")["error"])
        part = {"blocks": [], "connections": []}
        for timeout in (1e300, -1, 0, float("nan"), float("inf"), True, "10"):
            answer = master.request({"op": "prepare", "run": "r", "node": "n", "timeout": timeout, "part": part})
            self.assertFalse(answer["ok"], timeout)
            self.assertIn("`prepare`: `timeout` must be a number of seconds above 0", answer["error"])
        answer = master.request({"op": "prepare", "run": "r", "node": "n", "timeout": 30, "part": part})
        self.assertTrue(answer["ok"], answer)
        self.assertIn("must be a number of seconds", master.request(
            {"op": "wait", "run": "r", "node": "n", "timeout": float("nan")})["error"])
        answer = master.request({"op": "start", "run": "r", "node": "n", "peers": {}})
        self.assertTrue(answer["ok"], answer)
        self.assertTrue(master.request({"op": "abort", "run": "r"})["ok"])
        self.assert_still_serving()

    def test_many_loads_keep_no_blocks_and_no_files(self):
        master = self.master()
        descriptors = len(os.listdir("/proc/{}/fd".format(self.process.pid)))
        os.makedirs(os.path.join(self.tmp, "loads"))
        for number in range(20):
            answer = master.request({"op": "load", "name": "Sink", "version": "1.0",
                                     "config": {"path": os.path.join(self.tmp, "loads", str(number))}})
            self.assertTrue(answer["ok"], answer)
        # Each load's block lives in its own worker process, which ends after the answer: the
        # caretaker holds none of their files.
        grown = len(os.listdir("/proc/{}/fd".format(self.process.pid))) - descriptors
        self.assertLessEqual(grown, 2)
        # Every Sink was shut down, so it wrote its output.
        self.assertEqual(len([n for n in os.listdir(os.path.join(self.tmp, "loads"))
                              if not n.endswith(".progress")]), 20)
        self.assert_still_serving()

    def test_data_connections_cannot_be_hijacked_and_silent_ones_do_not_fail_the_run(self):
        master = self.master()
        target = os.path.join(self.tmp, "received.json")
        part = {"blocks": [{"id": "sink", "name": "Sink", "version": "1.0", "args": {"path": target}}],
                "connections": [], "outbound": [],
                "inbound": [{"id": "c1", "from": "numbers.output", "to": "sink.input", "node": "a"}]}
        answer = master.request({"op": "prepare", "run": "run-1", "node": "b", "timeout": 60, "part": part})
        self.assertTrue(answer["ok"], answer)
        data_port = answer["data_port"]
        # The run id is known (ping lists it to the key holder); connection ids are guessable.
        # Four silent connections, then one that speaks the frames of a data connection without
        # the handshake, with a `hello` for c1 and its own records.
        silent = [socket.create_connection(("127.0.0.1", data_port)) for _ in range(4)]
        intruder = socket.create_connection(("127.0.0.1", data_port))
        # In one write: the listener may close the connection after the first bytes, and a second
        # write would then fail with a reset instead of the check below.
        intruder.sendall(b"".join(transport.encode_frame(message) for message in (
            {"type": "hello", "run": "run-1", "connection": "c1"},
            {"type": "log", "log": {"value": [666]}}, {"type": "end"})))
        self.assertTrue(master.request({"op": "start", "run": "run-1", "node": "b", "peers": {}})["ok"])
        self.assertTrue(closed_without_answer(intruder))
        # A sender with another key is refused, and learns the listener does not hold its key.
        with self.assertRaises(transport.TransportError) as caught:
            transport.Sender.connect("127.0.0.1", data_port, "run-1", "c1", auth.new_key())
        self.assertIn("the server did not prove it holds the cluster key", str(caught.exception))
        # The real sender is accepted although the silent connections still wait.
        sender = transport.Sender.connect("127.0.0.1", data_port, "run-1", "c1", self.key)
        sender.send_log(Log({"value": [1, 2, 3]}))
        sender.end()
        answer = master.request({"op": "wait", "run": "run-1", "node": "b", "timeout": 30})
        for sock in silent + [intruder]:
            sock.close()
        self.assertEqual(answer["state"], "done", answer)
        with open(target) as handle:
            self.assertEqual(json.load(handle), [1, 2, 3])
        self.assert_still_serving()


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def throwaway_ca(directory, name):
    """A CA and one certificate it signed, made with the `openssl` command: (cert, key, ca) paths."""
    os.makedirs(directory)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=" + name,
            cwd=directory)
    openssl("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=node", cwd=directory)
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "node.pem", "-days", "2", cwd=directory)
    return tuple(os.path.join(directory, f) for f in ("node.pem", "node.key", "ca.pem"))


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class TLSRuns(unittest.TestCase):
    def test_a_run_across_two_nodes_in_tls_and_peers_without_it_refused(self):
        tmp = tempfile.mkdtemp(prefix="tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        files = throwaway_ca(os.path.join(tmp, "ca"), "cluster-ca")
        stranger = throwaway_ca(os.path.join(tmp, "other"), "other-ca")
        key = auth.new_key()
        ports = {}
        for node in ("a", "b"):
            home = os.path.join(tmp, node)
            for name, source in BLOCKS.items():
                directory = os.path.join(home, "blox", naming.block_dir(name, "1.0"))
                os.makedirs(directory)
                open(os.path.join(directory, "__init__.py"), "w").close()
                with open(os.path.join(directory, naming.block_module(name) + ".py"), "w") as handle:
                    handle.write(source)
            write_home_key(home, key)
            process, ports[node] = start_caretaker(home, os.path.join(tmp, node + ".log"), tls=files)
            self.addCleanup(process.wait)
            self.addCleanup(process.stdout.close)
            self.addCleanup(process.kill)
            self.assertIsNotNone(ports[node])
        sink = os.path.join(tmp, "sink.json")
        topology = {"blocks": [{"id": "numbers", "name": "Numbers", "version": "1.0", "args": {"count": 100},
                                "at": "a"},
                               {"id": "sink", "name": "Sink", "version": "1.0", "args": {"path": sink}, "at": "b"}],
                    "connections": [{"from": "numbers.output", "to": "sink.input"}]}
        nodes = [("a", "127.0.0.1", ports["a"]), ("b", "127.0.0.1", ports["b"])]
        result = master.run(topology, nodes, key, timeout=60, tls=auth.TLS(*files))
        self.assertEqual(result["counts"]["sink"]["received"], 100)
        with open(sink) as handle:
            self.assertEqual(json.load(handle), list(range(100)))
        # The right key without TLS, and TLS with a certificate of another CA: refused.
        with self.assertRaises(master.MasterError) as caught:
            master.run(topology, nodes, key, timeout=60)
        self.assertIn("node `a` (127.0.0.1:{}) refused".format(ports["a"]), str(caught.exception))
        with self.assertRaises(master.MasterError) as caught:
            master.run(topology, nodes, key, timeout=60, tls=auth.TLS(*stranger))
        self.assertIn("TLS handshake failed", str(caught.exception))
        with open(os.path.join(tmp, "a.log")) as handle:
            self.assertIn("refused a connection from 127.0.0.1:", handle.read())
        # Only all three files, or none.
        with self.assertRaises(auth.KeyFileError):
            auth.tls_from_options(files[0], None, files[2])


class Startup(unittest.TestCase):
    def test_a_caretaker_refuses_to_start_with_an_unsafe_or_missing_key(self):
        tmp = tempfile.mkdtemp(prefix="startup-")
        self.addCleanup(shutil.rmtree, tmp, True)
        home = os.path.join(tmp, "home")
        log = os.path.join(tmp, "log")
        process, port = start_caretaker(home, log)
        self.assertEqual((process.wait(30), port), (1, None))
        process.stdout.close()
        write_home_key(home, auth.new_key())
        os.chmod(auth.key_path(home), 0o644)
        process, port = start_caretaker(home, log)
        self.assertEqual((process.wait(30), port), (1, None))
        process.stdout.close()
        with open(log) as handle:
            logged = handle.read()
        self.assertIn("error: {}: the cluster key is missing".format(auth.key_path(home)), logged)
        self.assertIn("error: {}: the cluster key may be read or written by group or others (mode 0644)".format(
            auth.key_path(home)), logged)


if __name__ == "__main__":
    unittest.main()
