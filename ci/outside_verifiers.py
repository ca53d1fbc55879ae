#!/usr/bin/env python3
"""Checks a release's signed statement with code we did not write, for the release test
(xtask/tests/release.rs); runs under the virtual environment `ci/tools.py release` installs.

Usage: outside_verifiers.py dsse ENVELOPE.intoto.jsonl PUBLIC_KEY.pem
       outside_verifiers.py statement STATEMENT.intoto.json

  dsse       securesystemslib's DSSE verification of every envelope of the file with the ed25519
             key (the key id taken from the envelope's signature, so only the key decides)
  statement  the in-toto-attestation package's models: the Statement v1 (parsed strictly, then
             validated) and its predicate as a SLSA provenance v1 (parsed strictly: an unknown
             or misspelled field is an error), with builder id, build type and every resolved
             dependency validated

Prints what it accepted; exits 1 with the verifier's reason when it rejects.
"""
import json
import sys


def check_dsse(envelope_path, key_path):
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    with open(key_path, "rb") as handle:
        public = load_pem_public_key(handle.read()).public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with open(envelope_path) as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if not lines:
        raise ValueError("no envelope in {}".format(envelope_path))
    for line in lines:
        envelope = Envelope.from_dict(json.loads(line))
        keyids = list(envelope.signatures)
        keys = [SSlibKey(keyid, "ed25519", "ed25519", {"public": public}) for keyid in keyids]
        accepted = envelope.verify(keys, 1)
        sys.stdout.write("securesystemslib: envelope verified by key {}\n".format(", ".join(accepted)))


def check_statement(statement_path):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    with open(statement_path) as handle:
        text = handle.read()
    statement = Statement.copy_from_pb(json_format.Parse(text, statement_pb2.Statement()))
    statement.validate()
    if statement.pb.predicate_type != "https://slsa.dev/provenance/v1":
        raise ValueError("predicateType is {!r}, not SLSA provenance v1".format(statement.pb.predicate_type))
    provenance = json_format.ParseDict(json.loads(text)["predicate"], provenance_pb2.Provenance())
    if not provenance.build_definition.build_type:
        raise ValueError("buildDefinition.buildType required")
    if not provenance.run_details.builder.id:
        raise ValueError("runDetails.builder.id required")
    for dependency in provenance.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    sys.stdout.write("in-toto-attestation: Statement v1 with {} subjects, SLSA provenance v1 of build type {}\n".format(
        len(statement.pb.subject), provenance.build_definition.build_type))


def main(argv):
    try:
        if len(argv) == 3 and argv[0] == "dsse":
            check_dsse(argv[1], argv[2])
        elif len(argv) == 2 and argv[0] == "statement":
            check_statement(argv[1])
        else:
            sys.stderr.write(__doc__)
            return 2
    except Exception as error:  # every verifier's own exception type: the reason is the point
        sys.stderr.write("rejected: {}: {}\n".format(type(error).__name__, error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
