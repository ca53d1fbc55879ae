"""`deploy --home H --release ARCHIVE [--key PUB]`: a release archive `cargo xtask release` wrote
(`datablox-extension-<version>.tar.gz`), checked, then unpacked into a scratch directory whose
`datablox/` tree is deployed as a dist's is.

Checks, in order, each refusing with the file named and the home untouched:
- the archive's SHA-256 against its line in the release's `SHA256SUMS` (beside the archive);
- with `--key`: the DSSE envelope `datablox-extension-<version>.intoto.jsonl` beside it must
  hold a signature by that ed25519 key over the envelope's PAE bytes, verified with the
  `openssl pkeyutl -verify -rawin` command (OpenSSL 3.0 or newer), and its in-toto statement
  must name the archive as a subject with that SHA-256 (a statement of another archive is
  refused);
- then the archive is extracted with `safetar` (digest checked again on the bytes it reads,
  members checked as for any package archive).
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile

from . import DeployError, safetar
from .safetar import Refused

ARCHIVE = re.compile(r"^(datablox-extension-[^/]+)\.tar\.gz$")
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def read_sums(path, label):
    sums = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise Refused(label, None, "cannot read {}: {}".format(path, error.strerror or error),
                      "keep the release's SHA256SUMS beside its archive, as `cargo xtask release` writes them")
    for line in lines:
        digest, sep, name = line.partition("  ")
        if sep and len(digest) == 64:
            sums[name] = digest.lower()
    return sums


def pae(payload_type, payload):
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def openssl_verifies(key, message, signature, scratch):
    """Whether `openssl pkeyutl -verify -rawin` accepts `signature` of `message` by `key`."""
    message_path = os.path.join(scratch, "pae")
    signature_path = os.path.join(scratch, "sig")
    with open(message_path, "wb") as handle:
        handle.write(message)
    with open(signature_path, "wb") as handle:
        handle.write(signature)
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", key, "-rawin", "-in", message_path,
               "-sigfile", signature_path]
    try:
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:
        raise DeployError("--key needs the `openssl` command to verify the signature, and it cannot run: {} "
                                  "(help: install OpenSSL 3.0 or newer, e.g. `apt-get install openssl`, "
                                  "or deploy without --key)".format(error.strerror or error))
    if process.returncode != 0 and b"Signature Verification Failure" not in process.stdout:
        output = process.stdout.decode("utf-8", "replace").strip()
        if "Could not read" in output or "unable to load" in output.lower():
            raise DeployError("--key {}: openssl cannot read it as a public key: {} (help: give the release's "
                                      "ed25519 public key in PEM, `-----BEGIN PUBLIC KEY-----`)".format(key, output))
        if "-rawin" in output:
            raise DeployError("--key needs `openssl pkeyutl -rawin` (OpenSSL 3.0 or newer): {} (help: install "
                                      "a newer openssl, or deploy without --key)".format(output))
    return process.returncode == 0


def check_signed(archive, top, digest, key, scratch):
    """The envelope beside `archive` is signed by `key` and its statement names `archive` with `digest`."""
    label = os.path.basename(archive)
    path = os.path.join(os.path.dirname(archive), top + ".intoto.jsonl")
    if not os.path.isfile(key):
        raise DeployError("--key {}: no such file (help: give the release's ed25519 public key in PEM)".format(key))
    try:
        with open(path) as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
    except OSError as error:
        raise Refused(label, None, "--key given but the signed statement {} cannot be read: {}".format(
            path, error.strerror or error), "keep the release's .intoto.jsonl beside its archive, or deploy without --key")
    for line in lines:
        try:
            envelope = json.loads(line)
            payload = base64.b64decode(envelope["payload"], validate=True)
            message = pae(envelope["payloadType"], payload)
            signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
        except (ValueError, KeyError, TypeError) as error:
            raise Refused(label, None, "{} is not a DSSE envelope: {}".format(path, error),
                          "download the release's .intoto.jsonl again")
        if envelope["payloadType"] != PAYLOAD_TYPE:
            continue
        if not any(openssl_verifies(key, message, signature, scratch) for signature in signatures):
            continue
        try:
            statement = json.loads(payload.decode("utf-8"))
            subjects = statement["subject"] if statement.get("_type") == STATEMENT_TYPE else []
        except (ValueError, KeyError, AttributeError):
            subjects = []
        for subject in subjects:
            if isinstance(subject, dict) and subject.get("name") == label and \
                    (subject.get("digest") or {}).get("sha256") == digest:
                return
        raise Refused(label, None, "the statement signed in {} does not name this archive with SHA-256 {} (it is "
                      "another archive's)".format(path, digest), "deploy the archive the statement was made for")
    raise Refused(label, None, "no signature in {} verifies with the key {}".format(path, key),
                  "a wrong key, or the envelope was changed: use the release's public key and its own files")


def unpack(archive, key, scratch, max_members, max_bytes):
    """Checks `archive` (and with `key`, its signed statement), extracts it under `scratch`,
    and returns the extension tree (`.../datablox`) to deploy from."""
    archive = os.path.abspath(archive)
    label = os.path.basename(archive)
    match = ARCHIVE.match(label)
    if not match:
        raise DeployError("--release {}: not a release archive `datablox-extension-<version>.tar.gz` "
                                  "(help: give the archive `cargo xtask release` wrote, under its own name)".format(archive), 2)
    top = match.group(1)
    sums = read_sums(os.path.join(os.path.dirname(archive), "SHA256SUMS"), label)
    expected = sums.get(label)
    if key is not None:
        digest = safetar.verify_digest(archive, expected, label)
        check_signed(archive, top, digest, os.path.abspath(key), scratch)
    destination, _ = safetar.extract(archive, label, top, os.path.join(scratch, top), max_members, max_bytes, expected)
    return os.path.join(destination, "datablox")


class Unpacked(object):
    """`with Unpacked(archive, key, ...) as tree:` the tree, in a scratch directory removed after."""

    def __init__(self, archive, key, max_members, max_bytes):
        self.args = (archive, key, max_members, max_bytes)
        self.scratch = None

    def __enter__(self):
        self.scratch = tempfile.mkdtemp(prefix="datablox-release-")
        try:
            archive, key, max_members, max_bytes = self.args
            return unpack(archive, key, self.scratch, max_members, max_bytes)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        shutil.rmtree(self.scratch, ignore_errors=True)
        return False
