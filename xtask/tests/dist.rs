//! `dist` on the fixture repository: every generated file against golden files, the archives'
//! headers, SHA256SUMS against `sha256sum -c`, and the summary.

use crate::support::{TempRepo, golden, list_archive, snapshot};

/// The whole output as one text: text files in full, archives as a header listing and a hash.
fn render(out: &std::path::Path) -> String {
    let mut text = String::new();
    for (path, bytes) in snapshot(out) {
        text.push_str(&format!("=== {path}\n"));
        if path.ends_with(".tgz") {
            text.push_str(&list_archive(&bytes));
        } else {
            text.push_str(&String::from_utf8(bytes).expect("generated text is UTF-8"));
        }
    }
    text
}

#[test]
fn fixture_dist_matches_golden_files() {
    let repo = TempRepo::fixture();
    let run = repo.xtask(&["dist"]).expect_success();
    assert!(
        run.stdout.is_empty(),
        "human output goes to stderr: {}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("6 resources, 4 packages (4 built, 0 unchanged)"),
        "{}",
        run.stderr
    );
    golden(
        "fixture_dist.txt",
        &render(&repo.path().join("target/dist")),
    );
}

#[test]
fn sha256sums_is_read_by_sha256sum() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist", "--out", "out"]).expect_success();
    let check = std::process::Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(repo.path().join("out"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let listed = String::from_utf8_lossy(&check.stdout)
        .lines()
        .filter(|l| l.ends_with(": OK"))
        .count();
    assert_eq!(listed, 4, "every file of sw_packages is listed");
}

#[test]
fn json_summary_goes_to_stdout() {
    let repo = TempRepo::fixture();
    let run = repo
        .xtask(&["dist", "--json", "--out", "out"])
        .expect_success();
    let summary: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    assert_eq!(summary["resources"], 6);
    assert_eq!(summary["packages"], 4);
    assert_eq!(summary["rebuilt"], 4);
    assert!(summary["seconds"].is_number());
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no progress bar off a terminal: {:?}",
        run.stderr
    );
}

#[test]
fn archives_have_normalised_headers_in_sorted_order() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist", "--out", "out"]).expect_success();
    let packages = repo.path().join("out/datablox/sw_packages");
    for name in [
        "hello__1_0.tgz",
        "deep_tree__2_1.tgz",
        "datablox_framework.tgz",
    ] {
        let bytes = std::fs::read(packages.join(name)).unwrap();
        // gzip: magic, deflate, no FNAME (or other) flag, mtime 0.
        assert_eq!(
            &bytes[..4],
            &[0x1f, 0x8b, 8, 0],
            "{name}: gzip header flags"
        );
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0], "{name}: gzip mtime");
        let tar_bytes = xtask::deflate::gunzip(&bytes).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        let top = name.trim_end_matches(".tgz");
        let mut previous: Option<Vec<u8>> = None;
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            let path = entry.path_bytes().into_owned();
            assert!(
                path.starts_with(top.as_bytes()),
                "{name}: one top directory, got {}",
                String::from_utf8_lossy(&path)
            );
            assert!(!path.starts_with(b"./") && !path.starts_with(b"/"));
            assert_eq!(header.mtime().unwrap(), 315_532_800);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.username_bytes().unwrap_or_default(), b"");
            assert_eq!(header.groupname_bytes().unwrap_or_default(), b"");
            let mode = header.mode().unwrap();
            match header.entry_type() {
                tar::EntryType::Directory => assert_eq!(mode, 0o755),
                tar::EntryType::Regular => assert!(mode == 0o644 || mode == 0o755, "{mode:o}"),
                tar::EntryType::Symlink => {}
                other => panic!("{name}: unexpected {other:?}"),
            }
            let trimmed = path.strip_suffix(b"/").unwrap_or(&path).to_vec();
            if let Some(previous) = previous {
                assert!(previous < trimmed, "{name}: entries are sorted byte-wise");
            }
            previous = Some(trimmed);
        }
    }
}

#[test]
fn no_subcommand_lists_the_commands() {
    let repo = TempRepo::fixture();
    let run = repo.xtask(&[]).expect_success();
    for command in ["dist", "check"] {
        assert!(run.stdout.contains(command), "{}", run.stdout);
    }
    let help = repo.xtask(&["dist", "--help"]).expect_success();
    for flag in ["--out", "--jobs", "--json", "--no-cache"] {
        assert!(help.stdout.contains(flag), "{}", help.stdout);
    }
    repo.xtask(&["dist", "--jobs", "0"]).expect_failure(2);
    repo.xtask(&["no-such-command"]).expect_failure(2);
}

#[test]
fn bad_source_date_epoch_is_an_error() {
    let repo = TempRepo::fixture();
    let output = crate::support::xtask_command(repo.path(), &["dist"])
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    let run = crate::support::Run::new(output).expect_failure(1);
    assert!(
        run.stderr.contains("SOURCE_DATE_EPOCH is `yesterday`"),
        "{}",
        run.stderr
    );
    assert!(!repo.path().join("target").exists(), "nothing written");
}

#[test]
fn source_date_epoch_sets_every_mtime() {
    let repo = TempRepo::fixture();
    let output = crate::support::xtask_command(repo.path(), &["dist", "--out", "out"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    crate::support::Run::new(output).expect_success();
    let bytes = std::fs::read(repo.path().join("out/datablox/sw_packages/hello__1_0.tgz")).unwrap();
    let listing = list_archive(&bytes);
    assert!(
        listing.lines().all(|line| line.contains(" 1700000000 ")),
        "{listing}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("out/dist-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["source_date_epoch"], 1_700_000_000);
}

#[test]
fn refuses_an_output_directory_holding_a_foreign_tree() {
    let repo =
        TempRepo::fixture().file("legacy/datablox/metadata/resource_definitions.json", "[]\n");
    let run = repo.xtask(&["dist", "--out", "legacy"]).expect_failure(1);
    assert!(run.stderr.contains("did not write"), "{}", run.stderr);
    assert!(
        repo.path()
            .join("legacy/datablox/metadata/resource_definitions.json")
            .exists(),
        "the foreign file is kept"
    );
    assert!(
        !repo.path().join("legacy/datablox/sw_packages").exists(),
        "nothing written"
    );
}

#[test]
fn stale_files_are_removed_and_files_beside_the_tree_kept() {
    let repo = TempRepo::fixture();
    repo.xtask(&["dist", "--out", "out"]).expect_success();
    let out = repo.path().join("out");
    std::fs::write(
        out.join("datablox/sw_packages/.hello__1_0.tgz.tmp999"),
        "partial",
    )
    .unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let repo = repo.remove("manifests/deep-tree.toml");
    repo.xtask(&["dist", "--out", "out"]).expect_success();
    let files: Vec<String> = crate::support::snapshot(&out).into_keys().collect();
    assert!(
        !files
            .iter()
            .any(|f| f.contains(".tmp999") || f.contains("deep_tree")),
        "{files:#?}"
    );
    assert!(
        !out.join("datablox/drivers/deep_tree__2_1").exists(),
        "empty directories go too"
    );
    assert!(
        out.join("notes.txt").is_file(),
        "a file beside the tree is not ours"
    );
}

/// Peak RSS in KiB of `dist` on a repository whose one block holds a file of `megabytes`, as
/// `dist --json` reports it.
fn peak_rss_kib(megabytes: usize) -> u64 {
    let repo = TempRepo::fixture();
    // Half compressible text, half pseudo-random bytes, as block data tends to be.
    let mut data = Vec::with_capacity(megabytes << 20);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while data.len() < megabytes << 20 {
        if data.len() % (2 << 20) < (1 << 20) {
            data.extend_from_slice(b"timestamp,host,bytes\n2023-11-14,example.org,1234\n");
        } else {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
    }
    std::fs::write(repo.path().join("blox/hello__1_0/data/big.bin"), &data).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--json", "--out", "out"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rss = report["peak_rss_kib"].as_u64();
    rss.unwrap_or_else(|| panic!("`dist --json` reports its peak RSS: {report}"))
}

#[test]
fn memory_does_not_grow_with_file_size() {
    // 32 MiB already fills every buffer the archive keeps (a segment being filled, those in
    // flight, the spare ones): past that, a larger file must not need more memory.
    let (small, large) = (peak_rss_kib(32), peak_rss_kib(96));
    assert!(
        large < small + 8 * 1024,
        "peak RSS {small} KiB with a 32 MiB file, {large} KiB with a 96 MiB file"
    );
}
