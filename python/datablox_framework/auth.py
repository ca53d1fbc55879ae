"""The cluster key, and the authentication of every connection between Datablox processes.

The key: 32 random bytes (`secrets`), written as 64 hex digits and a newline in a file of mode
0600 owned by the user who runs the process (a node's is `<home>/config/cluster.key`). As ssh
does with a private key, `read_key` refuses a file that is a symbolic link, is not a regular
file, is owned by another user, or that group or others may read or write (`KeyFileError`).

The handshake, the first bytes of every control connection (master -> caretaker) and every data
connection (caretaker -> caretaker), before anything else is read or served:

  client -> server   MAGIC, a purpose byte (`c` control, `d` data), the client's nonce (32 bytes)
  server -> client   the server's nonce (32 bytes), HMAC(key, "server" purpose nc ns)
  client -> server   HMAC(key, "client" purpose nc ns)

Each side checks the other's proof with `hmac.compare_digest`; a side that fails, or a peer that
stays silent past the deadline, ends the handshake with `AuthError` and the connection is
closed. Both then hold the session key HMAC(key, "session" purpose nc ns), fresh for each
connection because both nonces are. Every later message (a control line, a data frame) carries
HMAC-SHA256(session key, direction, sequence number, payload) (`Session.seal`/`Session.check`):
a message replayed, reordered, cut, altered or spliced from another connection fails its check.

TLS (`TLS`, optional; the handshake above is not): with a certificate, its key and a CA
certificate, every connection is first wrapped in TLS (stdlib `ssl`), each side presenting its
certificate and refusing a peer whose certificate the CA did not sign; the key's handshake then
runs inside it. Peer names are not matched against certificates: which peer holds the cluster
key is what the handshake establishes; TLS adds confidentiality and a second, CA-based check.
"""

import binascii
import hashlib
import hmac
import os
import secrets
import stat
import struct
import time

KEY_BYTES = 32
NONCE_BYTES = 32
TAG_BYTES = 32
MAGIC = b"DBXAUTH1"
PURPOSES = {b"c": "control", b"d": "data"}
# A peer that has not completed the handshake after this many seconds is dropped.
HANDSHAKE_TIMEOUT = 10.0
_SEQUENCE = struct.Struct(">Q")


class KeyFileError(Exception):
    """The cluster key file is missing, unsafe or malformed; the message names the file."""


class AuthError(Exception):
    """A peer failed the handshake, or a message failed its check. Never holds a secret."""


def key_path(home):
    """Where a deployment home keeps its cluster key."""
    return os.path.join(home, "config", "cluster.key")


def new_key():
    return secrets.token_bytes(KEY_BYTES)


def write_key(path, key):
    """Write `key` to `path` (mode 0600) under a temporary name, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, ".{}.{}.tmp".format(os.path.basename(path), secrets.token_hex(4)))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(binascii.hexlify(key).decode("ascii") + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.remove(temporary)
        raise


def read_key(path, what="the cluster key"):
    """The key in `path`, after the checks of the module's documentation. `what` names the file
    in messages (the node deployer reads a `--key-file` with it too)."""
    help_text = "(help: `deploy --home HOME` creates <home>/config/cluster.key; every node of a cluster " \
                "needs the same key, see SECURITY.md)"
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise KeyFileError("{}: {} is missing {}".format(path, what, help_text))
    except OSError as error:
        if os.path.islink(path):
            raise KeyFileError("{}: {} is a symbolic link; refused (help: put the key file itself there, mode "
                               "0600)".format(path, what))
        raise KeyFileError("{}: cannot read {}: {}".format(path, what, error.strerror))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError("{}: {} is not a regular file; refused".format(path, what))
        if info.st_uid != os.geteuid():
            raise KeyFileError("{}: {} is owned by uid {}, not by this user (uid {}); refused (help: the user "
                               "who runs the deployer, caretaker or master must own it)".format(
                                   path, what, info.st_uid, os.geteuid()))
        if info.st_mode & 0o077:
            raise KeyFileError("{}: {} may be read or written by group or others (mode {:04o}); refused (help: "
                               "chmod 600 {})".format(path, what, stat.S_IMODE(info.st_mode), path))
        text = handle.read(4 * KEY_BYTES)
    try:
        key = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise KeyFileError("{}: not a cluster key ({} hex digits and a newline expected) {}".format(
            path, 2 * KEY_BYTES, help_text))
    return key


def ensure_key(path):
    """The key in `path`, created (and its directory) when absent; returns (key, created)."""
    if not os.path.lexists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_key(path, new_key())
        return read_key(path), True
    return read_key(path), False


class TLS(object):
    """The TLS settings of a process: its certificate and key (PEM) and the CA (PEM) that signed
    its peers'. `client(sock)` and `server(sock)` wrap a connected socket, TLS handshake done,
    or raise AuthError."""

    def __init__(self, cert, key, ca):
        import ssl  # here, when TLS is asked for: a deploy reads the key file without it

        self.files = (cert, key, ca)
        try:
            self._server = self._context(ssl.PROTOCOL_TLS_SERVER, cert, key, ca)
            self._client = self._context(ssl.PROTOCOL_TLS_CLIENT, cert, key, ca)
        except (OSError, ssl.SSLError) as error:
            raise KeyFileError("TLS: cannot load --tls-cert {}, --tls-key {}, --tls-ca {}: {}".format(
                cert, key, ca, error))

    @staticmethod
    def _context(protocol, cert, key, ca):
        import ssl

        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        context.load_verify_locations(ca)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _wrap(self, context, sock, server_side, timeout):
        sock.settimeout(timeout)
        try:
            wrapped = context.wrap_socket(sock, server_side=server_side, do_handshake_on_connect=False)
            wrapped.do_handshake()
        except OSError as error:  # ssl.SSLError and socket.timeout are OSErrors
            raise AuthError("TLS handshake failed: {}".format(getattr(error, "reason", None) or error))
        return wrapped

    def client(self, sock, timeout=HANDSHAKE_TIMEOUT):
        return self._wrap(self._client, sock, False, timeout)

    def server(self, sock, timeout=HANDSHAKE_TIMEOUT):
        return self._wrap(self._server, sock, True, timeout)


def tls_from_options(cert, key, ca, option="--tls"):
    """A TLS from the three command-line files, None when none is given; KeyFileError when only
    some are."""
    given = [f for f in (cert, key, ca) if f]
    if not given:
        return None
    if len(given) != 3:
        raise KeyFileError("{0}-cert, {0}-key and {0}-ca go together (help: give all three, or none)".format(option))
    return TLS(cert, key, ca)


def _mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class Session(object):
    """The per-connection key and the two sequence counters of one side of a connection."""

    def __init__(self, session_key, sending, receiving):
        # HMAC-SHA256 (RFC 2104) from two SHA-256 states keyed once, copied for each message
        # (the tags of `hmac.new`, as test_auth checks): 3.2 us per 4.1 KB frame of
        # ci/bench_auth.py, against 3.6 us copying a keyed `hmac.new` and 3.8 us for
        # `hmac.digest` (timeit, the fastest of 50, Python 3.11, OpenSSL 3).
        block = session_key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._sending = sending
        self._receiving = receiving
        self._sent = 0
        self._received = 0

    def _tag(self, direction, number, payload):
        inner = self._inner.copy()
        inner.update(direction + _SEQUENCE.pack(number))
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def seal(self, payload):
        """The tag of the next message sent."""
        tag = self._tag(self._sending, self._sent, payload)
        self._sent += 1
        return tag

    def check(self, tag, payload):
        """AuthError unless `tag` is the tag of the next message expected."""
        expected = self._tag(self._receiving, self._received, payload)
        if not hmac.compare_digest(expected, tag):
            raise AuthError("message #{} failed its authentication check (replayed, reordered, altered, or "
                            "from another connection)".format(self._received + 1))
        self._received += 1

    def seal_line(self, payload):
        """One control line: the tag in hex, a space, `payload` (no newline in it), a newline."""
        return binascii.hexlify(self.seal(payload)) + b" " + payload + b"\n"

    def open_line(self, line):
        """The payload of a control line, checked; AuthError when it fails."""
        tag_hex, space, payload = line.rstrip(b"\r\n").partition(b" ")
        try:
            tag = binascii.unhexlify(tag_hex)
        except (binascii.Error, ValueError):
            tag = b""
        if not space or len(tag) != TAG_BYTES:
            raise AuthError("a line without its authentication tag")
        self.check(tag, payload)
        return payload


def _recv_exact(sock, size, deadline):
    import socket  # loaded by whoever made `sock`; not by a deploy, which only reads the key file

    data = b""
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AuthError("no handshake within {:g} s".format(HANDSHAKE_TIMEOUT))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(size - len(data))
        except socket.timeout:
            raise AuthError("no handshake within the deadline")
        except OSError as error:
            raise AuthError("the connection failed during the handshake: {}".format(error))
        if not chunk:
            raise AuthError("the peer closed the connection during the handshake")
        data += chunk
    return data


def _send(sock, data, deadline):
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        sock.sendall(data)
    except OSError as error:  # a timeout too
        raise AuthError("the connection failed during the handshake: {}".format(error))


def _purpose_byte(purpose):
    for byte, name in PURPOSES.items():
        if name == purpose:
            return byte
    raise ValueError("unknown purpose {!r}".format(purpose))


def client_handshake(sock, key, purpose, timeout=HANDSHAKE_TIMEOUT):
    """Prove `key` to the server on `sock` and check its proof; returns the client's Session."""
    deadline = time.monotonic() + timeout
    kind = _purpose_byte(purpose)
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    _send(sock, MAGIC + kind + client_nonce, deadline)
    answer = _recv_exact(sock, NONCE_BYTES + TAG_BYTES, deadline)
    server_nonce, proof = answer[:NONCE_BYTES], answer[NONCE_BYTES:]
    nonces = kind + client_nonce + server_nonce
    if not hmac.compare_digest(proof, _mac(key, b"server", nonces)):
        raise AuthError("the server did not prove it holds the cluster key (another cluster's key?)")
    _send(sock, _mac(key, b"client", nonces), deadline)
    return Session(_mac(key, b"session", nonces), b"c>s", b"s>c")


def server_handshake(sock, key, purpose, timeout=HANDSHAKE_TIMEOUT):
    """Check the client's proof of `key` on `sock` (proving it in turn); returns the server's
    Session. AuthError when the client does not speak the handshake, or fails it."""
    deadline = time.monotonic() + timeout
    kind = _purpose_byte(purpose)
    # The magic first, so that a peer speaking something else is dropped at once.
    if _recv_exact(sock, len(MAGIC), deadline) != MAGIC:
        raise AuthError("the peer does not speak the Datablox handshake")
    hello = MAGIC + _recv_exact(sock, 1 + NONCE_BYTES, deadline)
    if hello[len(MAGIC):len(MAGIC) + 1] != kind:
        raise AuthError("the peer opened a {} connection, not a {} one".format(
            PURPOSES.get(hello[len(MAGIC):len(MAGIC) + 1], "unknown"), purpose))
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    nonces = kind + hello[len(MAGIC) + 1:] + server_nonce
    _send(sock, server_nonce + _mac(key, b"server", nonces), deadline)
    proof = _recv_exact(sock, TAG_BYTES, deadline)
    if not hmac.compare_digest(proof, _mac(key, b"client", nonces)):
        raise AuthError("the peer did not prove it holds the cluster key")
    return Session(_mac(key, b"session", nonces), b"s>c", b"c>s")
