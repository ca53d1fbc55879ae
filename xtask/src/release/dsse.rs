//! DSSE envelopes (the Dead Simple Signing Envelope, as in-toto attestations use it), signed
//! with ed25519 keys read from PEM files.
//!
//! What is signed is the PAE encoding of the payload, never the payload alone:
//! `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in ASCII decimal. The
//! envelope is one line of JSON: `payloadType`, `payload` (standard base64 with padding) and
//! `signatures`, each `{keyid, sig}` (`sig` base64 of the 64-byte ed25519 signature). A key id
//! is the lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo, which
//! `openssl pkey -pubin -in KEY.pub -outform DER | sha256sum` prints too.

use std::path::Path;

use base64ct::{Base64, Encoding};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Diagnostic, Error, IoContext, Result};

/// The payload type of an in-toto attestation.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DER SubjectPublicKeyInfo of an ed25519 key, before its 32 bytes (RFC 8410).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The bytes a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    bytes.extend_from_slice(payload);
    bytes
}

/// The key id of a public key: hex SHA-256 of its DER SubjectPublicKeyInfo.
pub fn keyid(key: &VerifyingKey) -> String {
    let mut hasher = Sha256::new();
    hasher.update(SPKI_PREFIX);
    hasher.update(key.as_bytes());
    crate::hash::to_hex(&hasher.finalize().into())
}

fn read_pem(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_path("read", path)?;
    String::from_utf8(bytes).map_err(|_| bad_key(path, "not a PEM text file", KEY_HELP))
}

const KEY_HELP: &str = "give an ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), e.g. from `openssl genpkey -algorithm ed25519 -out release-key.pem`";
const PUBLIC_HELP: &str = "give the release's ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`), e.g. from `openssl pkey -in release-key.pem -pubout -out release-key.pub`";

fn bad_key(path: &Path, why: &str, help: &str) -> Error {
    Error::new(
        Diagnostic::error("bad-key", format!("`{}`: {why}", path.display()))
            .file(path)
            .help(help),
    )
}

/// An ed25519 private key from a PKCS#8 PEM file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = read_pem(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|error| {
        bad_key(
            path,
            &format!("not an ed25519 private key in PKCS#8 PEM ({error})"),
            KEY_HELP,
        )
    })
}

/// An ed25519 public key from a PEM file (SubjectPublicKeyInfo).
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let text = read_pem(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|error| {
        bad_key(
            path,
            &format!("not an ed25519 public key in PEM ({error})"),
            PUBLIC_HELP,
        )
    })
}

/// `payload` signed by `key`, as one line of JSON (no line break).
pub fn sign(payload: &[u8], key: &SigningKey) -> String {
    let signature = key.sign(&pae(PAYLOAD_TYPE, payload));
    let envelope = serde_json::json!({
        "payloadType": PAYLOAD_TYPE,
        "payload": Base64::encode_string(payload),
        "signatures": [{
            "keyid": keyid(&key.verifying_key()),
            "sig": Base64::encode_string(&signature.to_bytes()),
        }],
    });
    serde_json::to_string(&envelope).expect("an envelope serializes")
}

/// One envelope, decoded.
#[derive(Debug)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// `(keyid, signature bytes)`.
    pub signatures: Vec<(String, Vec<u8>)>,
}

/// Decodes one line of a `.intoto.jsonl` file; the error says what is wrong with it.
pub fn parse(line: &str) -> std::result::Result<Envelope, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let text = |field: &str| {
        value[field]
            .as_str()
            .ok_or_else(|| format!("no `{field}` string"))
    };
    let payload_type = text("payloadType")?.to_string();
    let payload =
        Base64::decode_vec(text("payload")?).map_err(|_| "`payload` is not base64".to_string())?;
    let mut signatures = Vec::new();
    for signature in value["signatures"]
        .as_array()
        .ok_or("no `signatures` list")?
    {
        let keyid = signature["keyid"].as_str().unwrap_or("").to_string();
        let sig = signature["sig"]
            .as_str()
            .and_then(|sig| Base64::decode_vec(sig).ok())
            .ok_or("a signature without a base64 `sig`")?;
        signatures.push((keyid, sig));
    }
    Ok(Envelope {
        payload_type,
        payload,
        signatures,
    })
}

/// Whether any signature of `envelope` is `key`'s over its PAE bytes.
pub fn verified_by(envelope: &Envelope, key: &VerifyingKey) -> bool {
    let message = pae(&envelope.payload_type, &envelope.payload);
    envelope.signatures.iter().any(|(_, sig)| {
        Signature::from_slice(sig).is_ok_and(|sig| key.verify_strict(&message, &sig).is_ok())
    })
}
