import socket
import struct
import threading
import time
import unittest

from datablox_framework import auth, transport
from datablox_framework.block import Block, Log
from datablox_framework.runtime import Connection, Dataflow, Graph
from datablox_framework.transport import (FrameError, FrameSocket, Listener, Receiver, Sender, TransportError,
                                          TransportTimeout)


KEY = auth.new_key()


def pair(**options):
    left, right = socket.socketpair()
    return FrameSocket(left, "left", **options), FrameSocket(right, "right", **options)


def connected(run="run-1", connection="c1", **sender_options):
    """A listener, a sender connected to it, and the receiver it accepted."""
    listener = Listener(KEY)
    host, port = listener.address
    sender = Sender.connect(host, port, run, connection, KEY, peer="node `b`", **sender_options)
    accepted = list(listener.accept(run, {connection}, threading.Event(), time.time() + 10, {connection: "node `a`"}))
    listener.close()
    return sender, accepted[0][1]


class Frames(unittest.TestCase):
    def test_logs_arrive_in_order_then_the_end_mark(self):
        sender, receiver = connected()
        try:
            self.assertEqual(receiver.frames.peer, "node `a`")
            sender.send_log(Log({"value": [1, 2], "name": ["a", "b"]}))
            sender.send_log(Log({"value": [3], "name": ["c"]}))
            sender.end()
            logs = list(receiver.logs())
        finally:
            receiver.close()
        self.assertEqual([log.log for log in logs], [{"value": [1, 2], "name": ["a", "b"]}, {"value": [3], "name": ["c"]}])
        with self.assertRaises(TransportError):
            sender.send_log(Log({"value": [4]}))

    def test_both_ends_write_each_frame_at_once(self):
        # TCP_NODELAY: the `hello` written right after the handshake's last message is not held
        # for the listener's delayed ACK, nor frames for one another's.
        sender, receiver = connected()
        try:
            for frames in (sender.frames, receiver.frames):
                self.assertTrue(frames.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            sender.close()
            receiver.close()

    def test_listener_binds_loopback_by_default(self):
        listener = Listener(KEY)
        try:
            self.assertEqual(listener.address[0], "127.0.0.1")
        finally:
            listener.close()

    def test_a_connection_closed_before_the_end_mark_is_an_error(self):
        sender, receiver = connected()
        sender.send_log(Log({"value": [1]}))
        sender.close()
        logs = receiver.logs()
        self.assertEqual(next(logs).log, {"value": [1]})
        with self.assertRaises(FrameError) as caught:
            next(logs)
        receiver.close()
        self.assertIn("node `a` closed the connection before its end-of-stream mark", str(caught.exception))

    def test_truncated_frame(self):
        left, right = pair()
        left.sock.sendall(struct.pack(">I", 100) + b'{"type": "lo')
        left.close()
        with self.assertRaises(FrameError) as caught:
            right.recv_frame()
        right.close()
        self.assertIn("truncated frame from right: the connection closed after 12 of 100 bytes", str(caught.exception))

    def test_truncated_header(self):
        left, right = pair()
        left.sock.sendall(b"\x00\x00")
        left.close()
        with self.assertRaises(FrameError) as caught:
            right.recv_frame()
        right.close()
        self.assertIn("after 2 of 4 bytes", str(caught.exception))

    def test_oversized_frame_is_refused_before_it_is_read(self):
        left, right = pair(max_frame=1000)
        # What an HTTP client would send: "GET " read as a length is over a gigabyte.
        left.sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        with self.assertRaises(FrameError) as caught:
            right.recv_frame()
        left.close()
        right.close()
        self.assertIn("oversized frame from right: 1195725856 bytes announced, the limit is 1000", str(caught.exception))
        with self.assertRaises(FrameError) as caught:
            transport.encode_frame({"type": "log", "log": {"v": ["x" * 2000]}}, max_frame=1000)
        self.assertIn("over the limit of 1000 bytes", str(caught.exception))

    def test_garbage_frames(self):
        cases = [(b"\xff\xfe", "not UTF-8 JSON"), (b"{not json", "not UTF-8 JSON"), (b"[1, 2]", "not a JSON object"),
                 (b'{"kind": "log"}', "not a JSON object with a `type`"),
                 (b'{"type": "log", "log": {"a": [1], "b": []}}', "lists of equal length"),
                 (b'{"type": "hello", "run": "x"}', "unexpected `hello` frame")]
        for payload, expected in cases:
            left, right = pair()
            left.sock.sendall(struct.pack(">I", len(payload)) + payload)
            with self.assertRaises(FrameError) as caught:
                list(Receiver(right).logs())
            left.close()
            right.close()
            self.assertIn(expected, str(caught.exception))
            self.assertIn("garbage from right", str(caught.exception))
        left, right = pair()
        left.sock.sendall(struct.pack(">I", 0))
        with self.assertRaises(FrameError) as caught:
            right.recv_frame()
        left.close()
        right.close()
        self.assertIn("an empty frame", str(caught.exception))

    def test_values_json_cannot_carry_are_an_error(self):
        left, right = pair()
        with self.assertRaises(TransportError) as caught:
            Sender(left).send_log(Log({"value": [object()]}))
        left.close()
        right.close()
        self.assertIn("cannot be sent as JSON", str(caught.exception))

    def test_a_stray_connection_is_ignored_and_a_missing_one_times_out(self):
        listener = Listener(KEY)
        host, port = listener.address
        stray = socket.create_connection((host, port))
        stray.sendall(b"garbage that is no frame")
        wrong_run = Sender.connect(host, port, "other-run", "c1", KEY)
        with self.assertRaises(TransportTimeout) as caught:
            list(listener.accept("run-1", {"c1"}, threading.Event(), time.time() + 1, {"c1": "node `w2`"}))
        for endpoint in (stray, wrong_run, listener):
            endpoint.close()
        self.assertIn("c1 (from node `w2`) did not arrive in time", str(caught.exception))

    def test_a_fast_sender_blocks_instead_of_buffering_without_bound(self):
        # The receiver reads nothing: the sender must stop, blocked, after what the kernel's
        # small socket buffers hold, far short of the 64 MiB it tries to send.
        sender, receiver = connected(idle_timeout=0.5)
        batch = Log({"value": ["x" * 65536]})
        sent = 0
        with self.assertRaises(TransportTimeout) as caught:
            for _ in range(1024):
                sender.send_log(batch)
                sent += 1
        self.assertIn("node `b` made no progress for 0.5 s while sending to", str(caught.exception))
        self.assertLess(sent, 64)
        self.assertLess(sender.frames.sent_bytes, 4 * 1024 * 1024)
        sender.close()
        receiver.close()


class Numbers(Block):
    def on_load(self, config):
        self.add_output("output", ["value"])

    def on_start(self):
        for value in range(200):
            self.push("output", Log({"value": [value] * 1000}))


class Slow(Block):
    def on_load(self, config):
        self.add_input("input", ["value"])
        self.first = []

    def recv_push(self, port, log):
        time.sleep(0.001)
        self.first.append(log["value"][0])


class Flows(unittest.TestCase):
    def test_a_data_connection_into_a_slow_block_stays_bounded(self):
        # Node "a": Numbers -> (data connection c1) -> node "b": Slow, with an inbox of 4.
        listener = Listener(KEY)
        host, port = listener.address
        receiving = Graph()
        receiving.add_block("slow", Slow)
        inbound = Connection("numbers", "output", "slow", "input")
        flow_b = Dataflow(receiving, inbound=[("c1", inbound)], inbox_size=4)
        flow_b.start()
        sending = Graph()
        sending.add_block("numbers", Numbers)
        sender = Sender.connect(host, port, "run", "c1", KEY)
        flow_a = Dataflow(sending, outbound=[(Connection("numbers", "output", "slow", "input"), sender)])
        flow_a.start()
        for connection_id, receiver in listener.accept("run", {"c1"}, threading.Event(), time.time() + 10):
            flow_b.attach(connection_id, receiver)
        listener.close()
        flow_a.wait(time.time() + 60)
        flow_b.wait(time.time() + 60)
        self.assertEqual(receiving.blocks["slow"].first, list(range(200)))
        self.assertEqual(flow_b.counts["slow"]["received"], 200000)
        self.assertEqual(flow_b.delivered, 200)
        self.assertLessEqual(flow_b.max_queued, 4)

    def test_a_failing_block_stops_the_flow_and_names_itself(self):
        class Broken(Block):
            def on_load(self, config):
                self.add_input("input", ["value"])

            def recv_push(self, port, log):
                raise ValueError("cannot take {}".format(log["value"][0]))

        graph = Graph()
        graph.add_block("numbers", Numbers)
        graph.add_block("broken", Broken)
        graph.connect("numbers", "output", "broken", "input")
        flow = Dataflow(graph, inbox_size=2)
        with self.assertRaises(Exception) as caught:
            flow.run(time.time() + 30)
        self.assertEqual(str(caught.exception), "block `broken`: ValueError: cannot take 0")


if __name__ == "__main__":
    unittest.main()
