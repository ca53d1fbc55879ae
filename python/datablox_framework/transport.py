"""The data connections between caretakers: length-prefixed JSON frames over TCP.

One TCP connection carries one topology connection (an output port on one node to an input port
on another), in one direction. Every frame is a 4-byte big-endian length followed by that many
bytes of UTF-8 JSON, an object with a `type`:

  {"type": "hello", "run": RUN, "connection": ID}   first frame: which run and connection this is
  {"type": "log", "log": {"field": [values], ...}}  one batch (a Log's columns)
  {"type": "end"}                                   the end-of-stream mark: the source shut down

A connection that closes before its `end` frame, a frame cut short, a frame longer than
`max_frame` bytes and anything that is not such a JSON object are errors (`FrameError`) naming
the peer; nothing is guessed.

Back-pressure: nothing here buffers beyond the kernel's socket buffers (set small, see
`BUFFER_BYTES`). A receiver reads a frame only when its consumer asks for one, so a consumer that
falls behind stops the reads, the socket buffers fill, and the sender's `send_log` blocks.

No call blocks forever: every socket operation waits at most `poll` seconds at a time, checks a
`stop` event (set when the run is aborted: `Aborted`), and gives up with `TransportTimeout` when
the peer has made no progress for `idle_timeout` seconds. Listeners bind 127.0.0.1 unless told
otherwise.
"""

import json
import socket
import struct
import threading
import time

from .block import Log

HEADER = struct.Struct(">I")
# The largest frame accepted or sent (a batch is far smaller: blocks push batches of ~100 rows).
MAX_FRAME = 64 * 1024 * 1024
# Kernel send and receive buffer of each data connection: what is in flight between two blocks.
BUFFER_BYTES = 256 * 1024
DEFAULT_HOST = "127.0.0.1"
POLL = 0.2
IDLE_TIMEOUT = 120.0


class TransportError(Exception):
    """A data connection failed (refused, reset, timed out, or a protocol error)."""


class FrameError(TransportError):
    """The bytes received are not a well-formed frame (truncated, oversized, or garbage)."""


class TransportTimeout(TransportError):
    """The peer made no progress for `idle_timeout` seconds."""


class Aborted(TransportError):
    """The run was aborted (its `stop` event was set) while this call waited."""


def encode_frame(message, max_frame=MAX_FRAME):
    """The bytes of one frame holding the JSON object `message`."""
    try:
        payload = json.dumps(message, separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TransportError("a value cannot be sent as JSON: {}".format(error))
    if len(payload) > max_frame:
        raise FrameError("frame of {} bytes is over the limit of {} bytes (help: push smaller batches)".format(
            len(payload), max_frame))
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload, peer):
    """The message of a frame's payload; FrameError when it is not a JSON object with a `type`."""
    try:
        message = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FrameError("garbage from {}: a frame of {} bytes is not UTF-8 JSON ({})".format(peer, len(payload), error))
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("garbage from {}: a frame is not a JSON object with a `type`".format(peer))
    return message


def log_from_message(message, peer):
    """The Log carried by a `log` frame, its columns checked to be lists of one length."""
    columns = message.get("log")
    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()) \
            or len(set(len(v) for v in columns.values())) > 1:
        raise FrameError("garbage from {}: a `log` frame needs columns that are lists of equal length".format(peer))
    log = Log()
    log.log = columns
    return log


class FrameSocket(object):
    """A connected socket that reads and writes whole frames, under the rules of the module doc."""

    def __init__(self, sock, peer, stop=None, idle_timeout=IDLE_TIMEOUT, poll=POLL, max_frame=MAX_FRAME):
        self.sock = sock
        self.peer = peer
        self.stop = stop if stop is not None else threading.Event()
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.max_frame = max_frame
        self.sent_bytes = 0
        sock.settimeout(poll)

    def _waited(self, since, doing):
        if self.stop.is_set():
            raise Aborted("aborted while {} {}".format(doing, self.peer))
        if time.time() - since > self.idle_timeout:
            raise TransportTimeout("{} made no progress for {:g} s while {}".format(
                self.peer, self.idle_timeout, doing))

    def send_frame(self, message):
        data = memoryview(encode_frame(message, self.max_frame))
        offset, since = 0, time.time()
        while offset < len(data):
            if self.stop.is_set():
                raise Aborted("aborted while sending to {}".format(self.peer))
            try:
                sent = self.sock.send(data[offset:offset + 65536])
            except socket.timeout:
                self._waited(since, "sending to")
                continue
            except OSError as error:
                raise TransportError("sending to {} failed: {}".format(self.peer, error))
            offset += sent
            self.sent_bytes += sent
            since = time.time()

    def _recv_exact(self, size, at_boundary):
        chunks, received, since = [], 0, time.time()
        while received < size:
            if self.stop.is_set():
                raise Aborted("aborted while receiving from {}".format(self.peer))
            try:
                chunk = self.sock.recv(min(size - received, 1 << 20))
            except socket.timeout:
                self._waited(since, "receiving from")
                continue
            except OSError as error:
                raise TransportError("receiving from {} failed: {}".format(self.peer, error))
            if not chunk:
                if at_boundary and received == 0:
                    return None
                raise FrameError("truncated frame from {}: the connection closed after {} of {} bytes".format(
                    self.peer, received, size))
            chunks.append(chunk)
            received += len(chunk)
            since = time.time()
        return b"".join(chunks)

    def recv_frame(self):
        """The next message, or None when the peer closed the connection between frames."""
        header = self._recv_exact(HEADER.size, at_boundary=True)
        if header is None:
            return None
        (size,) = HEADER.unpack(header)
        if size > self.max_frame:
            raise FrameError("oversized frame from {}: {} bytes announced, the limit is {} "
                             "(help: is this a Datablox data connection?)".format(self.peer, size, self.max_frame))
        if size == 0:
            raise FrameError("garbage from {}: an empty frame".format(self.peer))
        return decode_payload(self._recv_exact(size, at_boundary=False), self.peer)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def address_family(host):
    """AF_INET6 for an IPv6 address (it holds a `:`), else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def address_text(host, port):
    """`host:port`, an IPv6 host in brackets."""
    return "[{}]:{}".format(host, port) if ":" in host else "{}:{}".format(host, port)


def _tune(sock, buffer_bytes):
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)


class Sender(object):
    """The sending end of one data connection: `connect`, then `send_log` per batch, then `end`."""

    def __init__(self, frames):
        self.frames = frames
        self.ended = False

    @classmethod
    def connect(cls, host, port, run, connection, peer=None, stop=None, connect_timeout=10.0,
                idle_timeout=IDLE_TIMEOUT, poll=POLL, buffer_bytes=BUFFER_BYTES, max_frame=MAX_FRAME):
        peer = peer or address_text(host, port)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as error:
            raise TransportError("cannot connect to {}: {}".format(peer, error))
        _tune(sock, buffer_bytes)
        frames = FrameSocket(sock, peer, stop, idle_timeout, poll, max_frame)
        frames.send_frame({"type": "hello", "run": run, "connection": connection})
        return cls(frames)

    def send_log(self, log):
        if self.ended:
            raise TransportError("sending to {} after the end-of-stream mark".format(self.frames.peer))
        self.frames.send_frame({"type": "log", "log": log.log})

    def end(self):
        """Send the end-of-stream mark and close the connection."""
        if not self.ended:
            self.ended = True
            self.frames.send_frame({"type": "end"})
            self.close()

    def close(self):
        self.frames.close()


class Receiver(object):
    """The receiving end of one data connection, after its `hello`: `logs()` yields each batch and
    returns at the end-of-stream mark."""

    def __init__(self, frames):
        self.frames = frames

    def logs(self):
        peer = self.frames.peer
        while True:
            message = self.frames.recv_frame()
            if message is None:
                raise FrameError("{} closed the connection before its end-of-stream mark".format(peer))
            kind = message["type"]
            if kind == "log":
                yield log_from_message(message, peer)
            elif kind == "end":
                return
            else:
                raise FrameError("garbage from {}: unexpected `{}` frame".format(peer, kind))

    def close(self):
        self.frames.close()


class Listener(object):
    """Accepts the data connections of one run on `host` (127.0.0.1 by default), any free port."""

    def __init__(self, host=DEFAULT_HOST, port=0, buffer_bytes=BUFFER_BYTES):
        self.sock = socket.socket(address_family(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Set before listen so that accepted sockets inherit the small buffers.
        _tune(self.sock, buffer_bytes)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(POLL)

    @property
    def address(self):
        return self.sock.getsockname()[:2]

    def accept(self, run, expected, stop, deadline, peers=None, idle_timeout=IDLE_TIMEOUT, poll=POLL,
               max_frame=MAX_FRAME):
        """Yield (connection id, Receiver) as the connections `expected` (a set of ids) arrive, each
        identified by its `hello`; a stray or mistaken connection is closed and ignored. Raises
        TransportTimeout naming the missing ones when `deadline` (time.time()) passes first."""
        peers = peers or {}
        waiting = set(expected)
        while waiting:
            if stop.is_set():
                raise Aborted("aborted while waiting for data connections")
            if time.time() > deadline:
                raise TransportTimeout("data connection(s) {} did not arrive in time".format(
                    ", ".join("{} (from {})".format(c, peers.get(c, "?")) for c in sorted(waiting))))
            try:
                sock, address = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as error:
                if stop.is_set():
                    raise Aborted("aborted while waiting for data connections")
                raise TransportError("accepting data connections failed: {}".format(error))
            frames = FrameSocket(sock, "{}:{}".format(*address[:2]), stop, min(idle_timeout, 10.0), poll, max_frame)
            try:
                hello = frames.recv_frame()
            except TransportError:
                frames.close()
                continue
            connection = hello.get("connection") if hello else None
            if not hello or hello.get("type") != "hello" or hello.get("run") != run or connection not in waiting:
                frames.close()
                continue
            waiting.discard(connection)
            frames.peer = peers.get(connection, frames.peer)
            frames.idle_timeout = idle_timeout
            yield connection, Receiver(frames)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
