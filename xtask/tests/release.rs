//! `cargo xtask release`, `verify-release` and deploying from a release, on git repositories
//! made from the fixture (and, for the deploy, from this repository's extension sources). The
//! outside verifiers (securesystemslib, in-toto-attestation, check-jsonschema, zizmor), pinned
//! by hash in `ci/requirements-release.txt`, are installed once into `target/tools/release/` by
//! `ci/tools.py release`; `openssl` must be on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Run, TempRepo, copy_tree, repo_root, snapshot, xtask_command};

const ARCHIVE: &str = "datablox-extension-1.0.tar.gz";
const STATEMENT: &str = "datablox-extension-1.0.intoto.json";
const ENVELOPE: &str = "datablox-extension-1.0.intoto.jsonl";

/// What CI sets and `release` reads: cleared, so that a test run on GitHub Actions makes the
/// same release as anywhere.
const CI_VARIABLES: [&str; 8] = [
    "GITHUB_ACTIONS",
    "GITHUB_REF_TYPE",
    "GITHUB_REF_NAME",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
];

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Release Test",
            "-c",
            "user.email=release@example.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A git repository in `dir` with everything in it committed once; `target/` (the releases) and
/// `keys/` are ignored.
fn commit_all(dir: &Path) {
    let ignore = dir.join(".gitignore");
    let mut text = std::fs::read_to_string(&ignore).unwrap_or_default();
    text.push_str("/target/\n/keys/\n");
    std::fs::write(&ignore, text).unwrap();
    git(dir, &["init", "--quiet"]);
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", "release test"]);
}

/// The fixture, committed.
fn fixture_repo() -> TempRepo {
    let repo = TempRepo::fixture();
    commit_all(repo.path());
    repo
}

fn xtask(dir: &Path, args: &[&str]) -> Run {
    let mut command = xtask_command(dir, args);
    for name in CI_VARIABLES {
        command.env_remove(name);
    }
    Run::new(command.output().unwrap())
}

/// An ed25519 key pair made by openssl: (private PKCS#8 PEM, public PEM).
fn key_pair(repo: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = repo.join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        private.to_str().unwrap(),
    ])
    .expect_success();
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ])
    .expect_success();
    (private, public)
}

fn openssl(args: &[&str]) -> Run {
    Run::new(
        Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl on PATH"),
    )
}

/// A signed release of `repo` into `out`.
fn signed_release(repo: &Path, out: &Path, key: &Path) -> Run {
    xtask(
        repo,
        &[
            "release",
            "--out",
            out.to_str().unwrap(),
            "--sign-key",
            key.to_str().unwrap(),
        ],
    )
    .expect_success()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap() + "\n").unwrap();
}

/// `ci/tools.py release`: the directory of the outside verifiers' executables.
fn tools() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("tools/release");
    let run = Run::new(
        Command::new("python3")
            .arg(repo_root().join("ci/tools.py"))
            .args(["release", "--dir"])
            .arg(&dir)
            .output()
            .unwrap(),
    );
    assert!(
        run.status.success(),
        "ci/tools.py release failed ({}):\n{}",
        run.status,
        run.stderr
    );
    PathBuf::from(run.stdout.trim())
}

#[test]
fn releases_from_two_clones_are_byte_identical() {
    let origin = fixture_repo();
    let key = key_pair(origin.path(), "key").0;
    let scratch = TempRepo::empty();
    let a = scratch.path().join("a");
    let b = scratch.path().join("some/much/longer/path/b");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    let origin_path = origin.path().to_str().unwrap();
    git(
        scratch.path(),
        &["clone", "--quiet", origin_path, a.to_str().unwrap()],
    );
    git(
        scratch.path(),
        &["clone", "--quiet", origin_path, b.to_str().unwrap()],
    );
    let mut outs = Vec::new();
    for (clone, umask, tz) in [(&a, "022", "UTC"), (&b, "077", "Asia/Kolkata")] {
        let script = format!("umask {umask}; exec \"$0\" \"$@\"");
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                &script,
                env!("CARGO_BIN_EXE_xtask"),
                "release",
                "--sign-key",
            ])
            .arg(&key)
            .current_dir(clone)
            .env("TZ", tz)
            .env_remove("SOURCE_DATE_EPOCH");
        for name in CI_VARIABLES {
            command.env_remove(name);
        }
        Run::new(command.output().unwrap()).expect_success();
        outs.push(snapshot(&clone.join("target/release-dist")));
    }
    assert_eq!(
        outs[0].keys().map(String::as_str).collect::<Vec<_>>(),
        ["SHA256SUMS", STATEMENT, ENVELOPE, ARCHIVE]
    );
    for (name, bytes) in &outs[0] {
        assert!(
            outs[1][name] == *bytes,
            "{name} differs between the two clones"
        );
    }
    // The archive: one top directory with the extension tree, its SHA256SUMS and manifest, every
    // mtime the last commit's time.
    let listing = crate::support::list_archive(&outs[0][ARCHIVE]);
    let first: Vec<&str> = listing.lines().take(2).collect();
    assert!(first[0].ends_with("datablox-extension-1.0/"), "{listing}");
    for member in [
        "datablox-extension-1.0/SHA256SUMS",
        "datablox-extension-1.0/dist-manifest.json",
    ] {
        assert!(listing.contains(member), "{listing}");
    }
    let sums = String::from_utf8(outs[0]["SHA256SUMS"].clone()).unwrap();
    let statement: Value = serde_json::from_slice(&outs[0][STATEMENT]).unwrap();
    let archive_sha256 = sums.split_whitespace().next().unwrap();
    assert_eq!(sums, format!("{archive_sha256}  {ARCHIVE}\n"));
    assert_eq!(statement["subject"][0]["name"], ARCHIVE);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], archive_sha256);
    let external = &statement["predicate"]["buildDefinition"]["externalParameters"];
    // The commit's time (`GIT_COMMITTER_DATE` above) is SOURCE_DATE_EPOCH.
    assert_eq!(external["sourceDateEpoch"], 1_767_323_045);
    assert!(
        listing.lines().all(|line| line.contains(" 1767323045 ")),
        "{listing}"
    );
    assert_eq!(
        external.get("repository"),
        None,
        "a clone's origin path is not recorded"
    );
}

#[test]
fn verify_release_passes_a_good_release_and_names_each_cause() {
    let repo = fixture_repo();
    let (key, public) = key_pair(repo.path(), "key");
    let other = key_pair(repo.path(), "other").1;
    let good = repo.path().join("target/good");
    signed_release(repo.path(), &good, &key);
    let public_text = public.to_str().unwrap();
    let run = xtask(
        repo.path(),
        &[
            "verify-release",
            good.to_str().unwrap(),
            "--key",
            public_text,
        ],
    )
    .expect_success();
    assert!(run.stderr.contains("signature verified"), "{}", run.stderr);

    // Each case: a copy of the good release, changed; verify-release must fail naming the cause.
    let case = |name: &str, change: &dyn Fn(&Path), key: &Path, expected: &str| {
        let dir = repo.path().join("target").join(name);
        copy_tree(&good, &dir);
        change(&dir);
        let run = xtask(
            repo.path(),
            &[
                "verify-release",
                dir.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        )
        .expect_failure(1);
        assert!(
            run.stderr.contains(expected),
            "{name}: expected `{expected}` in:\n{}",
            run.stderr
        );
    };
    case(
        "archive-byte",
        &|dir| {
            let path = dir.join(ARCHIVE);
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        },
        &public,
        &format!("`{ARCHIVE}`: its SHA-256 is"),
    );
    case(
        "statement",
        &|dir| {
            let mut statement = read_json(&dir.join(STATEMENT));
            statement["predicate"]["buildDefinition"]["externalParameters"]["commit"] =
                "0".repeat(40).into();
            write_json(&dir.join(STATEMENT), &statement);
        },
        &public,
        &format!("the signed payload is not `{STATEMENT}` as it is in the release"),
    );
    case("wrong-key", &|_| {}, &other, "no signature verifies with");
    let package = "datablox-extension-1.0/datablox/sw_packages/hello__1_0.tgz";
    case(
        "missing-subject",
        &|dir| {
            let mut statement = read_json(&dir.join(STATEMENT));
            statement["subject"]
                .as_array_mut()
                .unwrap()
                .retain(|s| s["name"] != package);
            write_json(&dir.join(STATEMENT), &statement);
            std::fs::remove_file(dir.join(ENVELOPE)).unwrap();
        },
        &public,
        &format!("the statement has no subject `{package}`"),
    );
    // Without --key the statement alone is checked: a tag that names another version.
    let dir = repo.path().join("target/tag");
    copy_tree(&good, &dir);
    let mut statement = read_json(&dir.join(STATEMENT));
    statement["predicate"]["buildDefinition"]["externalParameters"]["tag"] = "v2.0".into();
    write_json(&dir.join(STATEMENT), &statement);
    std::fs::remove_file(dir.join(ENVELOPE)).unwrap();
    let run = xtask(repo.path(), &["verify-release", dir.to_str().unwrap()]).expect_failure(1);
    assert!(
        run.stderr
            .contains("the statement's tag \"v2.0\" does not name the release's version 1.0"),
        "{}",
        run.stderr
    );

    // And `release` itself refuses such a tag, given or found on HEAD.
    let run = xtask(
        repo.path(),
        &["release", "--out", "target/r", "--tag", "v2.0"],
    )
    .expect_failure(1);
    assert!(
        run.stderr
            .contains("the tag `v2.0` does not name the extension's version 1.0"),
        "{}",
        run.stderr
    );
    git(repo.path(), &["tag", "v1.1"]);
    let run = xtask(repo.path(), &["release", "--out", "target/r"]).expect_failure(1);
    assert!(run.stderr.contains("the tag `v1.1`"), "{}", run.stderr);
    assert!(!repo.path().join("target/r").exists());
}

#[test]
fn rebuild_compares_with_the_recorded_commit_and_a_dirty_tree_is_refused() {
    let repo = fixture_repo();
    let run = xtask(repo.path(), &["release", "--out", "target/clean"]).expect_success();
    assert!(
        run.stderr
            .contains("Released datablox-extension-1.0 (5 subjects)"),
        "{}",
        run.stderr
    );
    let run = xtask(
        repo.path(),
        &["verify-release", "target/clean", "--rebuild"],
    )
    .expect_success();
    assert!(
        run.stderr.contains("rebuilt byte for byte"),
        "{}",
        run.stderr
    );

    let block = repo.path().join("blox/hello__1_0/b_hello.py");
    let mut text = std::fs::read_to_string(&block).unwrap();
    text.push_str("# changed\n");
    std::fs::write(&block, text).unwrap();
    let run = xtask(repo.path(), &["release", "--out", "target/dirty"]).expect_failure(1);
    assert!(
        run.stderr.contains("not committed") && run.stderr.contains("--allow-dirty"),
        "{}",
        run.stderr
    );
    xtask(
        repo.path(),
        &["release", "--out", "target/dirty", "--allow-dirty"],
    )
    .expect_success();
    let statement = read_json(&repo.path().join("target/dirty").join(STATEMENT));
    assert_eq!(
        statement["predicate"]["buildDefinition"]["internalParameters"]["dirtyWorkTree"],
        true
    );
    let run = xtask(
        repo.path(),
        &["verify-release", "target/dirty", "--rebuild"],
    )
    .expect_failure(1);
    assert!(
        run.stderr.contains(
            "differs: first at member `datablox-extension-1.0/datablox/sw_packages/hello__1_0.tgz`, at its member `hello__1_0/b_hello.py`"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn outside_verifiers_accept_our_signature_and_reject_a_tampered_one() {
    let bin = tools();
    let repo = fixture_repo();
    let (key, public) = key_pair(repo.path(), "key");
    let other = key_pair(repo.path(), "other").1;
    let out = repo.path().join("target/release");
    signed_release(repo.path(), &out, &key);
    let envelope_path = out.join(ENVELOPE);
    let line = std::fs::read_to_string(&envelope_path).unwrap();
    let envelope = xtask::release::dsse::parse(line.trim_end()).unwrap();
    assert_eq!(
        envelope.payload,
        std::fs::read(out.join(STATEMENT)).unwrap()
    );

    // openssl over the PAE bytes, written here from the DSSE specification.
    let mut pae = format!(
        "DSSEv1 {} {} {} ",
        envelope.payload_type.len(),
        envelope.payload_type,
        envelope.payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(&envelope.payload);
    let scratch = repo.path().join("target/openssl");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("pae"), &pae).unwrap();
    std::fs::write(scratch.join("sig"), &envelope.signatures[0].1).unwrap();
    let mut tampered = pae.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(scratch.join("tampered"), &tampered).unwrap();
    let verify = |key: &Path, message: &str| {
        openssl(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            key.to_str().unwrap(),
            "-rawin",
            "-in",
            scratch.join(message).to_str().unwrap(),
            "-sigfile",
            scratch.join("sig").to_str().unwrap(),
        ])
    };
    let run = verify(&public, "pae").expect_success();
    assert!(
        run.stdout.contains("Signature Verified Successfully"),
        "{}",
        run.stdout
    );
    assert!(!verify(&public, "tampered").status.success());
    assert!(!verify(&other, "pae").status.success());
    // The key id is openssl's DER SubjectPublicKeyInfo, hashed.
    let der = Command::new("openssl")
        .args([
            "pkey",
            "-pubin",
            "-in",
            public.to_str().unwrap(),
            "-outform",
            "DER",
        ])
        .output()
        .unwrap()
        .stdout;
    let keyid: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&der))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    assert_eq!(envelope.signatures[0].0, keyid);

    // securesystemslib's DSSE verification, and in-toto-attestation's models.
    let python = bin.join("python");
    let outside = |args: &[&Path]| {
        Run::new(
            Command::new(&python)
                .arg(repo_root().join("ci/outside_verifiers.py"))
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let dsse = Path::new("dsse");
    let statement = Path::new("statement");
    let run = outside(&[dsse, &envelope_path, &public]).expect_success();
    assert!(
        run.stdout.contains(&format!(
            "securesystemslib: envelope verified by key {keyid}"
        )),
        "{}",
        run.stdout
    );
    let run = outside(&[statement, &out.join(STATEMENT)]).expect_success();
    assert!(
        run.stdout
            .contains("Statement v1 with 5 subjects, SLSA provenance v1"),
        "{}",
        run.stdout
    );
    let run = outside(&[dsse, &envelope_path, &other]).expect_failure(1);
    assert!(
        run.stderr.contains("rejected: VerificationError"),
        "{}",
        run.stderr
    );
    let mut changed: Value = serde_json::from_str(&line).unwrap();
    let changed_payload = String::from_utf8(envelope.payload.clone())
        .unwrap()
        .replace("hello__1_0", "hello__1_1");
    changed["payload"] = base64_encode(changed_payload.as_bytes()).into();
    let changed_path = scratch.join("changed.intoto.jsonl");
    std::fs::write(
        &changed_path,
        serde_json::to_string(&changed).unwrap() + "\n",
    )
    .unwrap();
    let run = outside(&[dsse, &changed_path, &public]).expect_failure(1);
    assert!(
        run.stderr.contains("rejected: VerificationError"),
        "{}",
        run.stderr
    );
    // Our own verifier agrees.
    copy_tree(&out, &scratch.join("release"));
    std::fs::copy(&changed_path, scratch.join("release").join(ENVELOPE)).unwrap();
    let run = xtask(
        repo.path(),
        &[
            "verify-release",
            scratch.join("release").to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ],
    )
    .expect_failure(1);
    assert!(
        run.stderr.contains("no signature verifies with"),
        "{}",
        run.stderr
    );
    let mut bad = read_json(&out.join(STATEMENT));
    bad["subject"][1].as_object_mut().unwrap().remove("digest");
    let bad_path = scratch.join("bad.intoto.json");
    write_json(&bad_path, &bad);
    let run = outside(&[statement, &bad_path]).expect_failure(1);
    assert!(
        run.stderr
            .contains("At least one digest required (subject 1)"),
        "{}",
        run.stderr
    );
    let mut bad = read_json(&out.join(STATEMENT));
    bad["predicate"]["runDetails"]["builderId"] = "x".into();
    write_json(&bad_path, &bad);
    let run = outside(&[statement, &bad_path]).expect_failure(1);
    assert!(
        run.stderr.contains("has no field named \"builderId\""),
        "{}",
        run.stderr
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[test]
fn workflows_pass_check_jsonschema_and_zizmor() {
    let bin = tools();
    let workflows = repo_root().join(".github/workflows");
    let files = [workflows.join("ci.yml"), workflows.join("release.yml")];
    let run = Run::new(
        Command::new(bin.join("check-jsonschema"))
            .args(["--builtin-schema", "vendor.github-workflows"])
            .args(&files)
            .output()
            .unwrap(),
    )
    .expect_success();
    assert!(
        run.stdout.contains("ok -- validation done"),
        "{}",
        run.stdout
    );
    let zizmor = |path: &Path| {
        Run::new(
            Command::new(bin.join("zizmor"))
                .args(["--offline", "--no-progress", "--persona", "pedantic"])
                .arg(path)
                .env_remove("GH_TOKEN")
                .env_remove("GITHUB_TOKEN")
                .output()
                .unwrap(),
        )
    };
    let run = zizmor(&workflows).expect_success();
    assert!(
        run.stdout.contains("No findings to report"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    // The same audit finds what it is for: a workflow with an action pinned by tag.
    let scratch = TempRepo::empty();
    let unpinned = scratch.path().join("unpinned.yml");
    let text = std::fs::read_to_string(workflows.join("ci.yml")).unwrap();
    let (before, after) = text.split_once("@").unwrap();
    let after = after.split_once('\n').unwrap().1;
    std::fs::write(&unpinned, format!("{before}@v7\n{after}")).unwrap();
    let run = zizmor(&unpinned);
    assert!(!run.status.success());
    assert!(run.stdout.contains("unpinned-uses"), "{}", run.stdout);
}

/// This repository's extension sources, committed in a temporary repository.
fn extension_repo() -> TempRepo {
    let repo = TempRepo::empty();
    for dir in ["manifests", "blox", "python", "engage-extension"] {
        copy_tree(&repo_root().join(dir), &repo.path().join(dir));
    }
    std::fs::copy(
        repo_root().join(".gitignore"),
        repo.path().join(".gitignore"),
    )
    .unwrap();
    commit_all(repo.path());
    repo
}

/// The repository's node deployer, from its sources: `deploy ARGS...`.
fn deploy(args: &[&str], path: Option<&str>) -> Run {
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg("import sys; sys.path.insert(0, sys.argv.pop(1)); from datablox_deployer.cli import main; sys.exit(main())")
        .arg(repo_root().join("python"))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(path) = path {
        command.env("PATH", path);
    }
    Run::new(command.output().unwrap())
}

#[test]
fn a_node_deploys_from_a_signed_release_and_refuses_a_tampered_one() {
    let repo = extension_repo();
    let (key, public) = key_pair(repo.path(), "key");
    let other = key_pair(repo.path(), "other").1;
    let good = repo.path().join("target/good");
    signed_release(repo.path(), &good, &key);
    let archive = good.join(ARCHIVE);
    let (archive_text, public_text) = (archive.to_str().unwrap(), public.to_str().unwrap());

    let home = repo.path().join("homes/good");
    let home_text = home.to_str().unwrap();
    let run = deploy(
        &[
            "--home",
            home_text,
            "--release",
            archive_text,
            "--key",
            public_text,
        ],
        None,
    )
    .expect_success();
    assert!(
        run.stderr.contains("Deployed 4 resource(s)"),
        "{}",
        run.stderr
    );
    assert!(home.join("engage/bin/deployer").is_file());
    assert!(
        home.join("python/datablox_framework/caretaker.py")
            .is_file()
    );
    // `cargo xtask deploy --release` runs the same deployer.
    let run = xtask(
        repo.path(),
        &[
            "deploy",
            "--home",
            home_text,
            "--release",
            archive_text,
            "--key",
            public_text,
        ],
    )
    .expect_success();
    assert!(
        run.stderr
            .contains("Deployed 0 resource(s), 4 already installed"),
        "{}",
        run.stderr
    );

    // Refused: each leaves the home as it was (a new home is not even created).
    let before = snapshot_without_log(&home);
    let refused = |name: &str, dir: &Path, key: &Path, expected: &str, path: Option<&str>| {
        let archive = dir.join(ARCHIVE);
        for target in [&home, &repo.path().join("homes").join(name)] {
            let run = deploy(
                &[
                    "--home",
                    target.to_str().unwrap(),
                    "--release",
                    archive.to_str().unwrap(),
                    "--key",
                    key.to_str().unwrap(),
                ],
                path,
            )
            .expect_failure(1);
            assert!(
                run.stderr.contains(expected),
                "{name}: expected `{expected}` in:\n{}",
                run.stderr
            );
        }
        assert_eq!(
            snapshot_without_log(&home),
            before,
            "{name}: the home changed"
        );
        assert!(
            !repo.path().join("homes").join(name).exists(),
            "{name}: a new home was made"
        );
    };
    let tampered = repo.path().join("target/tampered");
    copy_tree(&good, &tampered);
    let mut bytes = std::fs::read(tampered.join(ARCHIVE)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(tampered.join(ARCHIVE), &bytes).unwrap();
    refused("tampered", &tampered, &public, "its SHA-256 is", None);
    refused("wrong-key", &good, &other, "no signature in", None);
    // The archive and SHA256SUMS of another release beside this release's signed statement.
    let changed = repo.path().join("python/datablox_deployer/__init__.py");
    let mut text = std::fs::read_to_string(&changed).unwrap();
    text.push_str("# another release\n");
    std::fs::write(&changed, text).unwrap();
    let second = repo.path().join("target/second");
    xtask(
        repo.path(),
        &[
            "release",
            "--out",
            second.to_str().unwrap(),
            "--allow-dirty",
        ],
    )
    .expect_success();
    let mixed = repo.path().join("target/mixed");
    copy_tree(&good, &mixed);
    for name in [ARCHIVE, "SHA256SUMS"] {
        std::fs::copy(second.join(name), mixed.join(name)).unwrap();
    }
    assert_ne!(
        std::fs::read(mixed.join(ARCHIVE)).unwrap(),
        std::fs::read(&archive).unwrap()
    );
    refused(
        "another",
        &mixed,
        &public,
        "does not name this archive",
        None,
    );
    // No openssl: a clear error, nothing deployed.
    let bin = repo.path().join("python-only");
    std::fs::create_dir_all(&bin).unwrap();
    // The interpreter itself, not a shim (pyenv's is a bash script).
    let python = String::from_utf8(
        Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(python.trim(), bin.join("python3")).unwrap();
    refused(
        "no-openssl",
        &good,
        &public,
        "--key needs the `openssl` command",
        Some(bin.to_str().unwrap()),
    );
}

fn snapshot_without_log(home: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = snapshot(home);
    files.retain(|name, _| !name.starts_with("log/"));
    files
}
