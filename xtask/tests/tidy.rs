//! Checks of the repository itself, so reviewers need not remember them: every block directory
//! has a manifest, every module is in ARCHITECTURE.md, every `.rs` file starts with `//!`, no
//! generated file is tracked, no line ends in whitespace, the code is formatted, the `ci/` shell
//! scripts parse, the top-level documents stay within their sizes, every page of `docs/` is linked
//! from the README, and no document or comment names an issue number or a date.

use std::process::Command;

use crate::support::repo_root;

fn tracked_files() -> Vec<String> {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\0')
        .filter(|name| !name.is_empty() && repo_root().join(name).exists())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_block_directory_has_a_manifest() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("blox")).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_type().unwrap().is_dir() || entry.file_name() == "__pycache__" {
            continue;
        }
        let dir = entry.file_name().to_string_lossy().into_owned();
        let module = dir.split("__").next().unwrap();
        if !repo_root()
            .join(format!("manifests/{module}.toml"))
            .is_file()
        {
            missing.push(format!("blox/{dir}: add manifests/{module}.toml"));
        }
    }
    assert!(
        missing.is_empty(),
        "block directories without a manifest:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_module_is_in_the_codemap_and_documented() {
    let architecture = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    // Top-level modules by file name (`check.rs`) or directory (`check/`), the files of a module
    // directory by their path below `xtask/src` (`check/paths.rs`).
    let src = repo_root().join("xtask/src");
    for entry in walkdir::WalkDir::new(&src).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let relative = entry.path().strip_prefix(&src).unwrap();
        let mut name = relative.to_string_lossy().replace('\\', "/");
        if entry.file_type().is_dir() {
            name.push('/');
        } else if !name.ends_with(".rs") {
            continue;
        }
        if !architecture.contains(&format!("`{name}`")) {
            problems.push(format!(
                "xtask/src/{name}: describe it in ARCHITECTURE.md's codemap"
            ));
        }
    }
    for name in tracked_files().iter().filter(|name| name.ends_with(".rs")) {
        let text = std::fs::read_to_string(repo_root().join(name)).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{name}:1: start the file with a `//!` line saying what it owns"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_generated_file_is_tracked_and_no_line_ends_in_whitespace() {
    let mut problems = Vec::new();
    for name in tracked_files() {
        let generated = name.starts_with("target/")
            || name.contains("__pycache__")
            || name.ends_with(".pyc")
            || name.ends_with(".tgz");
        if generated {
            problems.push(format!("{name}: generated, remove it from git"));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(repo_root().join(&name)) else {
            continue;
        };
        if name.starts_with("xtask/tests/golden/") || name.ends_with("/expected.stderr") {
            continue; // Golden files hold output exactly as produced.
        }
        for (index, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                problems.push(format!("{name}:{}: trailing whitespace", index + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn code_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let available = Command::new(&cargo)
        .args(["fmt", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        // FIXME: rustfmt is not installed here; CI's toolchain has it.
        eprintln!("rustfmt not installed: formatting not checked");
        return;
    }
    let output = Command::new(&cargo)
        .args(["fmt", "--all", "--", "--check"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "run `cargo fmt`:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_repository_manifests_have_no_warnings() {
    let output = crate::support::xtask_command(&repo_root(), &["check", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim().is_empty(),
        "`cargo xtask check` reports:\n{stdout}"
    );
}

#[test]
fn ci_shell_scripts_parse_and_engage_real_refuses_a_missing_argument() {
    // `bash -n` on every shell script under ci/ (they are run by hand, never
    // by `cargo test`, so a syntax error would otherwise go unseen).
    let scripts: Vec<String> = tracked_files()
        .into_iter()
        .filter(|name| name.starts_with("ci/") && name.ends_with(".sh"))
        .collect();
    assert!(
        scripts.iter().any(|s| s == "ci/engage-real.sh"),
        "{scripts:?}"
    );
    for script in &scripts {
        let output = Command::new("bash")
            .args(["-n", script])
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Usage errors exit 2 before any set-up work; --help exits 0.
    let script = repo_root().join("ci/engage-real.sh");
    let output = Command::new("bash").arg(&script).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Usage: ci/engage-real.sh"));
    let output = Command::new("bash")
        .arg(&script)
        .arg("/nonexistent-engage-checkout")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not an Engage source checkout"));
    let output = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ENGAGE_SRC"));
}

/// The top-level documents stay short enough for their readers; topics go to `docs/`.
#[test]
fn top_level_documents_fit_their_limits() {
    let mut problems = Vec::new();
    for (name, limit) in [
        ("README.md", 150),
        ("ARCHITECTURE.md", 200),
        ("BENCHMARKS.md", 200),
    ] {
        let lines = std::fs::read_to_string(repo_root().join(name))
            .unwrap()
            .lines()
            .count();
        if lines > limit {
            problems.push(format!(
                "{name}: {lines} lines, more than {limit}: move a topic to docs/<topic>.md \
                 (BENCHMARKS.md: keep the current results; history stays in git)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every page of `docs/` is reachable from the README.
#[test]
fn every_docs_page_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let missing: Vec<String> = tracked_files()
        .into_iter()
        .filter(|name| name.starts_with("docs/") && name.ends_with(".md"))
        .filter(|name| !readme.contains(&format!("({name})")))
        .map(|name| format!("{name}: link it from README.md's Documentation list"))
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// What a line of `name` says in prose: the whole line of a Markdown file, the comment of a line of
/// code (after `//` in Rust; after a `#` that starts the line or follows a space in Python and
/// shell), or nothing.
fn prose<'a>(name: &str, line: &'a str) -> Option<&'a str> {
    if name.ends_with(".md") {
        return Some(line);
    }
    if name.ends_with(".rs") {
        return line.find("//").map(|at| &line[at..]);
    }
    if line.trim_start().starts_with('#') {
        return Some(line.trim_start());
    }
    line.find(" # ").map(|at| &line[at..])
}

/// `issue N`, `Issue #N`, `issues N`, `IssueN`: an issue named by number.
fn names_an_issue(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("issue").any(|(at, _)| {
        // A word of its own, or a part of a CamelCase name.
        let word_start = !lower[..at].ends_with(|c: char| c.is_ascii_alphabetic())
            || text.as_bytes()[at] == b'I';
        let rest = lower[at + "issue".len()..].trim_start_matches('s');
        let rest = rest.trim_start_matches([' ', '#']);
        word_start && rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// `#N` standing alone (after the start, a space or a bracket), as an issue or pull request is
/// named; colours (`fill:#111827`) and anchors (`page.md#N`) are not.
fn names_a_number_sign(text: &str) -> bool {
    text.match_indices('#').any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let standalone = matches!(before, None | Some(' ' | '(' | '['));
        let digits: String = text[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        standalone && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
    })
}

/// A calendar date, `YYYY-MM-DD` with a year from 2000.
fn names_a_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(9)).any(|at| {
        let digit = |i: usize| bytes[at + i].is_ascii_digit();
        bytes[at..].starts_with(b"20")
            && (at == 0 || !bytes[at - 1].is_ascii_digit())
            && (2..4).all(digit)
            && bytes[at + 4] == b'-'
            && (5..7).all(digit)
            && bytes[at + 7] == b'-'
            && (8..10).all(digit)
    })
}

/// Documents and comments speak of the project as it is: no issue numbers (anywhere in a `.md`,
/// `.rs`, `.py` or `.sh` file), and no `#N` references or dates in prose (a test's data may hold
/// a date). Golden files and test fixtures are data, and are not read.
#[test]
fn no_document_or_comment_names_an_issue_or_a_date() {
    let mut problems = Vec::new();
    for name in tracked_files() {
        let prose_file = [".md", ".rs", ".py", ".sh"]
            .iter()
            .any(|ext| name.ends_with(ext));
        let data = name.starts_with("xtask/tests/golden/")
            || name.starts_with("xtask/tests/bad_inputs/")
            || name.starts_with("xtask/tests/fixtures/");
        if !prose_file || data {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(repo_root().join(&name)) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            let problem = if names_an_issue(line) {
                Some("names an issue by number")
            } else {
                match prose(&name, line) {
                    Some(p) if names_a_number_sign(p) => Some("names an issue as `#N`"),
                    Some(p) if names_a_date(p) => Some("names a date"),
                    _ => None,
                }
            };
            if let Some(problem) = problem {
                problems.push(format!(
                    "{name}:{}: {problem}: say what the code does today (history belongs in git)",
                    index + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_prose_checks_find_what_they_look_for() {
    let number = 12;
    assert!(names_an_issue(&format!("see Issue #{number}")));
    assert!(names_an_issue(&format!("(issues {number})")));
    assert!(!names_an_issue("an issue 'x' of the tracker"));
    assert!(!names_an_issue(&format!("reissue {number} times")));
    assert!(names_an_issue(&format!("DefectsOfIssue{number}Test")));
    assert!(names_a_number_sign(&format!("fixed in #{number}.")));
    assert!(names_a_number_sign(&format!("(#{number})")));
    assert!(!names_a_number_sign("classDef a fill:#111827"));
    assert!(!names_a_number_sign("#abc123 and #1f2"));
    assert!(names_a_date(&format!("measured 20{}-12-01", number + 14)));
    assert!(!names_a_date("version 1.2026-12"));
    assert_eq!(prose("a.rs", "let x = 1; // note"), Some("// note"));
    assert_eq!(prose("a.py", "x = \"connection #1\""), None);
    assert_eq!(prose("a.py", "x = 1  # note"), Some(" # note"));
    assert_eq!(prose("a.sh", "  # note"), Some("# note"));
}
