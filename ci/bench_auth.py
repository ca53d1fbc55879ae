#!/usr/bin/env python3
"""The authentication bench that `cargo xtask bench` runs: prints one JSON object on stdout.

Usage: PYTHONPATH=python python3 ci/bench_auth.py [--rounds N] [--records N] [--batch N]
                                                  [--connections N] [--repeat N]

- handshake: `--connections` connections to a listener on 127.0.0.1, each connected, then
  either only accepted (plain) or taken through the handshake of `datablox_framework.auth` on
  both ends (the server's side in a thread, as a caretaker greets a connection); the cost per
  connection is the difference of the medians.
- throughput: one data connection over 127.0.0.1 carrying `--records` records (three fields,
  like Dir-Source and Word-Count rows) in batches of `--batch` rows (Dir-Source's default 100),
  both ends run as a caretaker runs its part of a run (`runtime.Dataflow`): on the sending node
  a source block pushes the batches and the flow sends each over the connection, then the end
  mark; on the receiving node, in another process, the flow reads and decodes every frame
  (`transport.Receiver.logs`) and hands each batch to a sink block through its inbox.
  `authenticated` connects with `transport.Sender.connect` / `Listener` (the handshake, then a
  tag on every frame, sealed and checked); `plain` is the same flows over the same sockets
  (`transport._tune`) with the same frames, untagged (`FrameSocket` without a session). The
  time runs from the sending flow's start to the receiving flow's end. Within a round the two
  alternate `--repeat` times, the first of them alternating between rounds, and each keeps its
  fastest (what the machine's other work did not slow down); the ratio is the median over
  rounds of authenticated/plain. The same for the CPU seconds of both ends together.
- tag: the CPU time of sealing and checking the tags of every frame of one transfer, in one
  thread (the fastest of 20): the authentication's own cost.
"""

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time

from datablox_framework import auth, runtime, transport
from datablox_framework.block import Block, Log

FIELDS = ["lines", "path", "words"]
# The connection between the two nodes' blocks, as the topology names it.
CONNECTION = runtime.Connection("source", "output", "sink", "input")


def rows(count):
    return [{"path": "/srv/data/dir-{:02d}/file-{:05d}.txt".format(n % 50, n), "words": n * 7 % 1000,
             "lines": n % 97} for n in range(count)]


def batches(records, batch):
    return [Log.from_rows(records[i:i + batch]) for i in range(0, len(records), batch)]


class Source(Block):
    """Pushes the bench's batches (set before the flow starts)."""
    logs = []

    def on_load(self, config):
        self.add_output("output", FIELDS)

    def on_start(self):
        for log in self.logs:
            self.push("output", log)


class Sink(Block):
    """Counts the records it receives."""

    def on_load(self, config):
        self.add_input("input", FIELDS)
        self.records = 0

    def recv_push(self, port, log):
        self.records += len(log)


def handshakes(connections, authenticated, key):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    port = server.getsockname()[1]
    failures = []

    def serve():
        for _ in range(connections):
            sock, _ = server.accept()
            try:
                if authenticated:
                    auth.server_handshake(sock, key, "data")
                else:
                    sock.sendall(b"x")
            except auth.AuthError as error:
                failures.append(str(error))
            sock.close()

    thread = threading.Thread(target=serve)
    thread.start()
    started = time.perf_counter()
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        if authenticated:
            auth.client_handshake(sock, key, "data")
        else:
            sock.recv(1)
        sock.close()
    elapsed = time.perf_counter() - started
    thread.join()
    server.close()
    if failures:
        raise SystemExit("handshake failed: {}".format(failures[0]))
    return elapsed / connections


def tag_seconds(logs, key):
    """CPU seconds of sealing, then checking, the tag of every frame of one transfer."""
    payloads = [transport.encode_payload({"type": "log", "log": log.log}) for log in logs]
    best = float("inf")
    for _ in range(20):
        sending, receiving = auth.Session(key, b"c>s", b"s>c"), auth.Session(key, b"s>c", b"c>s")
        started = time.process_time()
        for payload in payloads:
            receiving.check(sending.seal(payload), payload)
        best = min(best, time.process_time() - started)
    return best


def receive(authenticated, key, control):
    """The receiving node, in a process of its own: listens, accepts one data connection, starts
    its flow, says `ready`, and answers (records, CPU seconds) when the flow has ended."""
    if authenticated:
        listener = transport.Listener(key)
        control.send(listener.address)
        ((_, receiver),) = list(listener.accept("bench", {"c1"}, threading.Event(), time.time() + 30))
        listener.close()
    else:
        # The same sockets as transport's: their options set before listen.
        server = socket.socket()
        transport._tune(server, transport.BUFFER_BYTES)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        control.send(server.getsockname())
        accepted, _ = server.accept()
        server.close()
        receiver = transport.Receiver(transport.FrameSocket(accepted, "sender"))
        if receiver.frames.recv_frame().get("type") != "hello":
            raise SystemExit("no hello")
    graph = runtime.Graph()
    sink = graph.add_block("sink", Sink)
    flow = runtime.Dataflow(graph, inbound=[("c1", CONNECTION)])
    cpu = time.process_time()
    flow.attach("c1", receiver)
    flow.start()
    control.send("ready")
    flow.wait(time.time() + 60)
    control.send((sink.records, time.process_time() - cpu))


def transfer(logs, authenticated, key):
    """Seconds (wall, CPU of both ends) from the sending flow's start to the receiving flow's end,
    and the records received; the receiver runs in another process, as the node at the other end
    of a data connection does."""
    control, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=receive, args=(authenticated, key, child_end))
    child.start()
    host, port = control.recv()
    if authenticated:
        sending = transport.Sender.connect(host, port, "bench", "c1", key)
    else:
        client = socket.create_connection((host, port))
        transport._tune(client, transport.BUFFER_BYTES)
        sending = transport.Sender(transport.FrameSocket(client, "receiver"))
        sending.frames.send_frame({"type": "hello", "run": "bench", "connection": "c1"})
    Source.logs = logs
    graph = runtime.Graph()
    graph.add_block("source", Source)
    flow = runtime.Dataflow(graph, outbound=[(CONNECTION, sending)])
    if control.recv() != "ready":
        raise SystemExit("the receiver did not get ready")
    started, cpu = time.perf_counter(), time.process_time()
    flow.run(time.time() + 60)
    count, receiver_cpu = control.recv()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    child.join()
    return elapsed, cpu + receiver_cpu, count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    key = auth.new_key()
    logs = batches(rows(options.records), options.batch)
    plain_s, auth_s, ratios, cpu_ratios, plain_connect, auth_connect = [], [], [], [], [], []
    for authenticated in (False, True):
        transfer(logs, authenticated, key)  # warm up: imports, first connections
    for round_number in range(options.rounds):
        plain_connect.append(handshakes(options.connections, False, key))
        auth_connect.append(handshakes(options.connections, True, key))
        best = {False: (float("inf"), float("inf")), True: (float("inf"), float("inf"))}
        order = (False, True) if round_number % 2 == 0 else (True, False)
        for _ in range(options.repeat):
            for authenticated in order:
                wall, cpu, count = transfer(logs, authenticated, key)
                if count != options.records:
                    raise SystemExit("records lost: {} of {}".format(count, options.records))
                best[authenticated] = (min(best[authenticated][0], wall), min(best[authenticated][1], cpu))
        plain_s.append(best[False][0])
        auth_s.append(best[True][0])
        ratios.append(best[True][0] / best[False][0])
        cpu_ratios.append(best[True][1] / best[False][1])
    result = {
        "rounds": options.rounds, "records": options.records, "batch": options.batch,
        "frames": len(logs), "connections": options.connections,
        "connect_plain_ms": statistics.median(plain_connect) * 1000,
        "connect_authenticated_ms": statistics.median(auth_connect) * 1000,
        "handshake_ms": (statistics.median(auth_connect) - statistics.median(plain_connect)) * 1000,
        "plain_s": statistics.median(plain_s), "authenticated_s": statistics.median(auth_s),
        "plain_records_per_s": options.records / statistics.median(plain_s),
        "authenticated_records_per_s": options.records / statistics.median(auth_s),
        "ratio": statistics.median(ratios), "cpu_ratio": statistics.median(cpu_ratios),
        "tag_ms": tag_seconds(logs, key) * 1000, "python": sys.version.split()[0], "cpus": os.cpu_count(),
    }
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
