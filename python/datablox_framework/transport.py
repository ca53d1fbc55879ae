"""The data connections between caretakers: length-prefixed JSON frames over TCP.

One TCP connection carries one topology connection (an output port on one node to an input port
on another), in one direction. Every frame is a 4-byte big-endian length followed by that many
bytes: the frame's authentication tag (`auth.Session`, 32 bytes), then UTF-8 JSON, an object
with a `type`:

  {"type": "hello", "run": RUN, "connection": ID}   first frame: which run and connection this is
  {"type": "log", "log": {"field": [values], ...}}  one batch (a Log's columns)
  {"type": "end"}                                   the end-of-stream mark: the source shut down

Before any frame, both ends prove they hold the cluster key (`auth`: the sender is the client,
the listener the server). A frame whose tag fails its check (replayed, reordered, altered, from
another connection) is an `auth.AuthError`, which ends the connection. A connection that closes
before its `end` frame, a frame cut short, a frame longer than `max_frame` bytes and anything
that is not such a JSON object are errors (`FrameError`) naming the peer; nothing is guessed.

Back-pressure: nothing here buffers beyond the kernel's socket buffers (set small, see
`BUFFER_BYTES`). A receiver reads a frame only when its consumer asks for one, so a consumer that
falls behind stops the reads, the socket buffers fill, and the sender's `send_log` blocks.

No call blocks forever: every socket operation waits at most `poll` seconds at a time, checks a
`stop` event (set when the run is aborted: `Aborted`), and gives up with `TransportTimeout` when
the peer has made no progress for `idle_timeout` seconds. Listeners bind 127.0.0.1 unless told
otherwise. A listener completes each connection's handshake and `hello` in a thread of its own,
within `HELLO_TIMEOUT` seconds, so silent or slow peers never delay the others.
"""

import json
import logging
import queue
import socket
import struct
import threading
import time

from . import auth
from .block import Log

HEADER = struct.Struct(">I")
# The largest frame accepted or sent (a batch is far smaller: blocks push batches of ~100 rows).
MAX_FRAME = 64 * 1024 * 1024
# Kernel send and receive buffer of each data connection: what is in flight between two blocks.
BUFFER_BYTES = 256 * 1024
DEFAULT_HOST = "127.0.0.1"
POLL = 0.2
IDLE_TIMEOUT = 120.0
# A data connection must complete its handshake and `hello` within this many seconds.
HELLO_TIMEOUT = 10.0
# At most this many connections of one listener may be in their handshake at once; more are closed.
MAX_GREETING = 32

LOG = logging.getLogger("datablox")


class TransportError(Exception):
    """A data connection failed (refused, reset, timed out, or a protocol error)."""


class FrameError(TransportError):
    """The bytes received are not a well-formed frame (truncated, oversized, or garbage)."""


class TransportTimeout(TransportError):
    """The peer made no progress for `idle_timeout` seconds."""


class AuthFailed(TransportError):
    """A frame failed its authentication check (see `auth`)."""


class Aborted(TransportError):
    """The run was aborted (its `stop` event was set) while this call waited."""


def encode_frame(message, max_frame=MAX_FRAME):
    """The bytes of one untagged frame holding the JSON object `message`."""
    payload = encode_payload(message, max_frame)
    return HEADER.pack(len(payload)) + payload


def encode_payload(message, max_frame=MAX_FRAME):
    """The UTF-8 JSON of `message`, checked against `max_frame`."""
    try:
        payload = json.dumps(message, separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TransportError("a value cannot be sent as JSON: {}".format(error))
    if len(payload) > max_frame:
        raise FrameError("frame of {} bytes is over the limit of {} bytes (help: push smaller batches)".format(
            len(payload), max_frame))
    return payload


def decode_payload(payload, peer):
    """The message of a frame's payload; FrameError when it is not a JSON object with a `type`."""
    try:
        message = json.loads(str(payload, "utf-8"))
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
    """A connected socket that reads and writes whole frames, under the rules of the module doc.
    `session` (an `auth.Session`) tags and checks every frame; only the bench's baseline runs
    without one."""

    def __init__(self, sock, peer, stop=None, idle_timeout=IDLE_TIMEOUT, poll=POLL, max_frame=MAX_FRAME,
                 session=None):
        self.sock = sock
        self.session = session
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
        payload = encode_payload(message, self.max_frame)
        if self.session is not None:
            data = memoryview(b"".join((HEADER.pack(auth.TAG_BYTES + len(payload)), self.session.seal(payload),
                                        payload)))
        else:
            data = memoryview(HEADER.pack(len(payload)) + payload)
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
        overhead = auth.TAG_BYTES if self.session is not None else 0
        if size > self.max_frame + overhead:
            raise FrameError("oversized frame from {}: {} bytes announced, the limit is {} "
                             "(help: is this a Datablox data connection?)".format(self.peer, size, self.max_frame))
        if size <= overhead:
            raise FrameError("garbage from {}: an empty frame".format(self.peer))
        payload = self._recv_exact(size, at_boundary=False)
        if self.session is not None:
            view = memoryview(payload)
            try:
                self.session.check(view[:overhead], view[overhead:])
            except auth.AuthError as error:
                raise AuthFailed("{}: {}".format(self.peer, error))
            payload = view[overhead:]
        return decode_payload(payload, self.peer)

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
    """The options of every data connection (set on a listening socket, its connections inherit
    them): small kernel buffers (back-pressure), and TCP_NODELAY: a frame goes out when written.
    Without it, Nagle's algorithm holds a write while an earlier one is unacknowledged: the
    `hello`, written right after the handshake's last message, would wait for the listener's
    delayed ACK (40 ms on Linux)."""
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Sender(object):
    """The sending end of one data connection: `connect`, then `send_log` per batch, then `end`."""

    def __init__(self, frames):
        self.frames = frames
        self.ended = False

    @classmethod
    def connect(cls, host, port, run, connection, key, peer=None, stop=None, connect_timeout=10.0,
                idle_timeout=IDLE_TIMEOUT, poll=POLL, buffer_bytes=BUFFER_BYTES, max_frame=MAX_FRAME, tls=None):
        """Connect (in TLS when `tls`, an `auth.TLS`, is given), prove the cluster `key` both ways
        (`auth`), send the `hello`."""
        peer = peer or address_text(host, port)
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except (OSError, OverflowError) as error:
            raise TransportError("cannot connect to {}: {}".format(peer, error))
        _tune(sock, buffer_bytes)
        try:
            if tls is not None:
                sock = tls.client(sock, connect_timeout)
            session = auth.client_handshake(sock, key, "data", timeout=connect_timeout)
        except auth.AuthError as error:
            sock.close()
            raise TransportError("{} refused: {}".format(peer, error))
        frames = FrameSocket(sock, peer, stop, idle_timeout, poll, max_frame, session)
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
    """Accepts the data connections of one run on `host` (127.0.0.1 by default), any free port,
    from peers that prove they hold the cluster `key`. From its creation until `close`, a thread
    accepts connections and greets each (handshake, then `hello`) in a thread of its own, within
    `hello_timeout` seconds, so that a silent or slow peer costs the others nothing; `accept`
    takes the greeted ones."""

    def __init__(self, key, host=DEFAULT_HOST, port=0, buffer_bytes=BUFFER_BYTES, hello_timeout=HELLO_TIMEOUT,
                 max_frame=MAX_FRAME, tls=None):
        self.key = key
        self.tls = tls
        self.hello_timeout = hello_timeout
        self.max_frame = max_frame
        self.sock = socket.socket(address_family(host), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Set before listen so that accepted sockets inherit the small buffers.
        _tune(self.sock, buffer_bytes)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(POLL)
        self.closed = threading.Event()
        self.greeted = queue.Queue()
        self.error = None
        thread = threading.Thread(target=self._serve, name="datablox-listen {}".format(address_text(*self.address)))
        thread.daemon = True
        thread.start()

    @property
    def address(self):
        return self.sock.getsockname()[:2]

    def _serve(self):
        greeting = []
        while not self.closed.is_set():
            try:
                sock, address = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as error:
                if not self.closed.is_set():
                    self.error = error
                return
            greeting = [t for t in greeting if t.is_alive()]
            if len(greeting) >= MAX_GREETING:
                LOG.warning("refused a data connection from %s: %d connections are already in their handshake",
                            address_text(*address[:2]), len(greeting))
                sock.close()
                continue
            thread = threading.Thread(target=self._greet, args=(sock, address),
                                      name="datablox-greet {}".format(address_text(*address[:2])))
            thread.daemon = True
            thread.start()
            greeting.append(thread)

    def _greet(self, sock, address):
        """Handshake and `hello` of one accepted connection; queues (hello, FrameSocket), or logs
        the refusal and closes the connection."""
        peer = address_text(*address[:2])
        try:
            if self.tls is not None:
                sock = self.tls.server(sock, self.hello_timeout)
            session = auth.server_handshake(sock, self.key, "data", timeout=self.hello_timeout)
            frames = FrameSocket(sock, peer, self.closed, self.hello_timeout, POLL, self.max_frame, session)
            hello = frames.recv_frame()
        except (auth.AuthError, TransportError) as error:
            LOG.warning("refused a data connection from %s: %s", peer, error)
            try:
                sock.close()
            except OSError:
                pass
            return
        self.greeted.put((hello, frames))
        if self.closed.is_set():
            self._drop_greeted()

    def _drop_greeted(self):
        while True:
            try:
                self.greeted.get_nowait()[1].close()
            except queue.Empty:
                return

    def accept(self, run, expected, stop, deadline, peers=None, idle_timeout=IDLE_TIMEOUT, poll=POLL):
        """Yield (connection id, Receiver) as the connections `expected` (a set of ids) arrive,
        each authenticated and identified by its `hello`; a stray or mistaken connection is
        closed and ignored. Raises TransportTimeout naming the missing ones when `deadline`
        (time.time()) passes first."""
        peers = peers or {}
        waiting = set(expected)
        while waiting:
            if stop.is_set():
                raise Aborted("aborted while waiting for data connections")
            if self.error is not None:
                raise TransportError("accepting data connections failed: {}".format(self.error))
            if time.time() > deadline:
                raise TransportTimeout("data connection(s) {} did not arrive in time".format(
                    ", ".join("{} (from {})".format(c, peers.get(c, "?")) for c in sorted(waiting))))
            try:
                hello, frames = self.greeted.get(timeout=poll)
            except queue.Empty:
                continue
            connection = hello.get("connection") if hello else None
            if not hello or hello.get("type") != "hello" or hello.get("run") != run or connection not in waiting:
                LOG.warning("refused a data connection from %s: not one this run waits for", frames.peer)
                frames.close()
                continue
            waiting.discard(connection)
            frames.peer = peers.get(connection, frames.peer)
            frames.idle_timeout = idle_timeout
            frames.stop = stop
            yield connection, Receiver(frames)

    def close(self):
        self.closed.set()
        try:
            self.sock.close()
        except OSError:
            pass
        self._drop_greeted()
