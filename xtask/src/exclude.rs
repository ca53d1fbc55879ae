//! Which files of a package's source directory stay out of its archive and its source digest.
//!
//! Three sources of rules, in increasing priority (the last matching rule wins, as in git):
//!
//! 1. built in: `.git/`, `__pycache__/`, `*.pyc` and `*.pyo`, which running a block's tests or a
//!    version-control checkout leave behind;
//! 2. `.gitignore` files: those of the repository root and of every directory down to the package
//!    directory, and those inside it, each relative to its own directory;
//! 3. the manifest's `exclude` list, relative to the package directory.
//!
//! Like `cargo package`, a build output or an ignored file never reaches an archive. Unlike git,
//! the rules apply whether or not a file is tracked and whether or not the checkout is a git
//! repository, and `.git/info/exclude` and the user's global excludes are not read: the archive
//! depends only on the files of the repository. The pattern syntax is gitignore's: `#` comments,
//! `!` negation, a trailing `/` for directories only, a leading or inner `/` anchoring the pattern
//! to its directory, `*`, `?`, `[a-z]`, `[!a-z]`, `**/`, `/**` and `/**/`, and `\` escapes.
//! A directory that is excluded is not entered, so nothing inside it can be re-included.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::error::{Error, Result};
use crate::inputs::Inputs;

/// The rules built into every package.
pub const BUILT_IN: [&str; 4] = [".git/", "__pycache__/", "*.pyc", "*.pyo"];

/// One gitignore-style pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    glob: Vec<u8>,
    negated: bool,
    directory_only: bool,
    /// Matched against the whole path relative to the rule's directory, not only the name.
    anchored: bool,
}

impl Pattern {
    /// Parses one line of a `.gitignore`; `None` for blank lines and comments.
    pub fn parse(line: &[u8]) -> Option<Pattern> {
        let mut text = line.strip_suffix(b"\r").unwrap_or(line);
        // Trailing spaces are ignored unless escaped with a backslash.
        while text.ends_with(b" ") && !text.ends_with(b"\\ ") {
            text = &text[..text.len() - 1];
        }
        if text.is_empty() || text.starts_with(b"#") {
            return None;
        }
        let negated = text.starts_with(b"!");
        if negated {
            text = &text[1..];
        }
        let directory_only = text.ends_with(b"/") && !text.ends_with(b"\\/");
        if directory_only {
            text = &text[..text.len() - 1];
        }
        let anchored = text.contains(&b'/');
        let text = text.strip_prefix(b"/").unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        Some(Pattern {
            glob: text.to_vec(),
            negated,
            directory_only,
            anchored,
        })
    }

    /// Whether the pattern matches `relative` (`/`-separated, relative to the rule's directory).
    fn matches(&self, relative: &[u8], is_dir: bool) -> bool {
        if self.directory_only && !is_dir {
            return false;
        }
        if self.anchored {
            wildmatch(&self.glob, relative, true)
        } else {
            let name = relative
                .rsplit(|&byte| byte == b'/')
                .next()
                .unwrap_or(relative);
            wildmatch(&self.glob, name, true)
        }
    }
}

/// The patterns of one `.gitignore` (or the built-in or manifest list), and where they apply:
/// the directory they are relative to, as a `/`-separated path relative to the package directory
/// (`None` when the directory is the package directory or above it, where `prefix` is the package
/// directory's path relative to the rules' directory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// The package directory's path relative to the directory of the rules (empty when equal).
    prefix: Vec<u8>,
    /// The directory of the rules relative to the package directory, for rules found inside it.
    base: Vec<u8>,
    patterns: Vec<Pattern>,
}

impl RuleSet {
    pub fn from_lines(text: &[u8]) -> RuleSet {
        RuleSet {
            patterns: text
                .split(|&byte| byte == b'\n')
                .filter_map(Pattern::parse)
                .collect(),
            ..RuleSet::default()
        }
    }

    /// `Some(excluded)` when a pattern matches `path` (relative to the package directory).
    fn decide(&self, path: &[u8], is_dir: bool) -> Option<bool> {
        if self.patterns.is_empty() {
            return None;
        }
        let relative: Cow<[u8]> = if self.base.is_empty() {
            if self.prefix.is_empty() {
                Cow::Borrowed(path)
            } else {
                Cow::Owned([self.prefix.as_slice(), b"/", path].concat())
            }
        } else {
            Cow::Borrowed(
                path.strip_prefix(self.base.as_slice())?
                    .strip_prefix(b"/")?,
            )
        };
        self.patterns
            .iter()
            .rev()
            .find(|pattern| pattern.matches(&relative, is_dir))
            .map(|pattern| !pattern.negated)
    }
}

/// Every rule that applies to one package, in increasing priority.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Excludes {
    sets: Vec<RuleSet>,
    /// The manifest's list: applied last, so it wins over `.gitignore` negations.
    manifest: RuleSet,
}

impl Excludes {
    /// The built-in rules only.
    pub fn built_in() -> Excludes {
        Excludes {
            sets: vec![RuleSet::from_lines(BUILT_IN.join("\n").as_bytes())],
            manifest: RuleSet::default(),
        }
    }

    /// The built-in rules, the `.gitignore` files from `repo` down to `dir` (the package
    /// directory, inside `repo`) and the manifest's `exclude` patterns. The `.gitignore` files
    /// inside `dir` are added by `tree::scan` as it finds them.
    pub fn for_package(
        repo: &Path,
        dir: &Path,
        exclude: &[String],
        inputs: &Inputs,
    ) -> Result<Excludes> {
        let mut excludes = Excludes::built_in();
        let relative = dir.strip_prefix(repo).unwrap_or(Path::new(""));
        let components: Vec<&OsStr> = relative
            .components()
            .filter_map(|component| match component {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        let mut above = repo.to_path_buf();
        for (depth, component) in components.iter().enumerate() {
            if let Some(mut set) = read_gitignore(&above, inputs)? {
                let below: Vec<&[u8]> = components[depth..].iter().map(|c| c.as_bytes()).collect();
                set.prefix = below.join(&b'/');
                excludes.sets.push(set);
            }
            above.push(component);
        }
        if let Some(set) = read_gitignore(dir, inputs)? {
            excludes.sets.push(set);
        }
        excludes.manifest = RuleSet::from_lines(exclude.join("\n").as_bytes());
        Ok(excludes)
    }

    /// Adds the rules of a `.gitignore` found in the package's subdirectory `base`.
    pub fn push_nested(&mut self, base: &[u8], mut set: RuleSet) {
        set.base = base.to_vec();
        self.sets.push(set);
    }

    /// Whether `path`, relative to the package directory (`/`-separated, no leading `/`), stays
    /// out of the archive.
    pub fn is_excluded(&self, path: &[u8], is_dir: bool) -> bool {
        if let Some(decision) = self.manifest.decide(path, is_dir) {
            return decision;
        }
        self.sets
            .iter()
            .rev()
            .find_map(|set| set.decide(path, is_dir))
            .unwrap_or(false)
    }
}

/// The rules of `dir/.gitignore`, if there is one (read, or found missing, through `inputs`).
pub fn read_gitignore(dir: &Path, inputs: &Inputs) -> Result<Option<RuleSet>> {
    let path = dir.join(".gitignore");
    match inputs.read(&path) {
        Ok(text) => Ok(Some(RuleSet::from_lines(&text))),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(error) => Err(Error::io("read", &path, error)),
    }
}

/// Gitignore's glob matching: `*` and `?` never match `/`, `**` between slashes (or at either end)
/// matches any number of directories, `[...]` is a class, `\` escapes the next byte.
/// `segment_start` says whether `pattern` begins a path component.
fn wildmatch(pattern: &[u8], text: &[u8], segment_start: bool) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return text.is_empty();
    };
    match first {
        b'*' if rest.first() == Some(&b'*')
            && segment_start
            && (rest.len() == 1 || rest[1] == b'/') =>
        {
            if rest.len() == 1 {
                return true; // a trailing `**` matches everything below
            }
            let after = &rest[2..]; // `**/rest`: zero or more directories, then rest
            if wildmatch(after, text, true) {
                return true;
            }
            text.iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'/')
                .any(|(index, _)| wildmatch(after, &text[index + 1..], true))
        }
        b'*' => {
            let rest = {
                let mut rest = rest;
                while rest.first() == Some(&b'*') {
                    rest = &rest[1..];
                }
                rest
            };
            // `*.pyc` and the like, matched against every file name: a suffix, without a `/`.
            if !rest.iter().any(|byte| b"*?[\\/".contains(byte)) {
                return text.ends_with(rest) && !text[..text.len() - rest.len()].contains(&b'/');
            }
            for index in 0..=text.len() {
                if wildmatch(rest, &text[index..], false) {
                    return true;
                }
                if index < text.len() && text[index] == b'/' {
                    return false;
                }
            }
            false
        }
        b'?' => match text.split_first() {
            Some((&byte, text_rest)) if byte != b'/' => wildmatch(rest, text_rest, false),
            _ => false,
        },
        b'[' => {
            let Some((&byte, text_rest)) = text.split_first() else {
                return false;
            };
            match match_class(rest, byte) {
                Some((matched, after)) => {
                    byte != b'/' && matched && wildmatch(after, text_rest, false)
                }
                // No closing `]`: the `[` is literal.
                None => byte == b'[' && wildmatch(rest, text_rest, false),
            }
        }
        b'\\' if !rest.is_empty() => match text.split_first() {
            Some((&byte, text_rest)) if byte == rest[0] => wildmatch(&rest[1..], text_rest, false),
            _ => false,
        },
        literal => match text.split_first() {
            Some((&byte, text_rest)) if byte == literal => {
                wildmatch(rest, text_rest, literal == b'/')
            }
            _ => false,
        },
    }
}

/// Matches `byte` against the class whose text follows `[`; returns whether it matched and the
/// pattern after the closing `]`, or `None` when there is no closing `]`.
fn match_class(class: &[u8], byte: u8) -> Option<(bool, &[u8])> {
    let (negated, mut index) = match class.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let &current = class.get(index)?;
        if current == b']' && !first {
            return Some((matched != negated, &class[index + 1..]));
        }
        first = false;
        let (low, next) = if current == b'\\' {
            (*class.get(index + 1)?, index + 2)
        } else {
            (current, index + 1)
        };
        if class.get(next) == Some(&b'-') && class.get(next + 1).is_some_and(|&c| c != b']') {
            let high = class[next + 1];
            matched |= low <= byte && byte <= high;
            index = next + 2;
        } else {
            matched |= low == byte;
            index = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(rules: &str, path: &str, is_dir: bool) -> bool {
        let excludes = Excludes {
            sets: vec![RuleSet::from_lines(rules.as_bytes())],
            manifest: RuleSet::default(),
        };
        excludes.is_excluded(path.as_bytes(), is_dir)
    }

    #[test]
    fn names_match_at_any_depth_and_anchored_patterns_only_from_the_base() {
        assert!(excluded("*.log", "a.log", false));
        assert!(excluded("*.log", "x/y/a.log", false));
        assert!(!excluded("*.log", "a.log.txt", false));
        assert!(excluded("/build", "build", true));
        assert!(!excluded("/build", "x/build", true));
        assert!(excluded("doc/*.txt", "doc/a.txt", false));
        assert!(!excluded("doc/*.txt", "doc/sub/a.txt", false));
        assert!(!excluded("doc/*.txt", "x/doc/a.txt", false));
    }

    #[test]
    fn directory_only_negation_comments_and_escapes() {
        assert!(excluded("out/", "out", true));
        assert!(!excluded("out/", "out", false));
        assert!(!excluded("*.log\n!keep.log", "keep.log", false));
        assert!(excluded("!keep.log\n*.log", "keep.log", false));
        assert!(!excluded("# a.txt\n\n", "# a.txt", false));
        assert!(excluded("\\#a.txt", "#a.txt", false));
        assert!(excluded("a.txt   ", "a.txt", false));
        assert!(excluded("\\!x", "!x", false));
    }

    #[test]
    fn double_stars_and_classes() {
        assert!(excluded("**/cache", "cache", true));
        assert!(excluded("**/cache", "a/b/cache", true));
        assert!(excluded("logs/**", "logs/a/b", false));
        assert!(!excluded("logs/**", "logs", true));
        assert!(excluded("a/**/b", "a/b", false));
        assert!(excluded("a/**/b", "a/x/y/b", false));
        assert!(!excluded("a/**/b", "a/x/yb", false));
        assert!(excluded("file[0-9].txt", "file7.txt", false));
        assert!(!excluded("file[!0-9].txt", "file7.txt", false));
        assert!(excluded("file[!0-9].txt", "filex.txt", false));
        assert!(excluded("?.py", "a.py", false));
        assert!(!excluded("?.py", "ab.py", false));
        assert!(excluded("[ab", "[ab", false));
        assert!(!excluded("a*b", "a/b", false));
        assert!(excluded("a*", "a", false));
        assert!(excluded("doc/*", "doc/a", false));
        assert!(!excluded("doc/*", "doc/a/b", false));
        assert!(excluded("doc/*.t", "doc/.t", false));
    }

    #[test]
    fn built_ins_exclude_bytecode_and_git() {
        let excludes = Excludes::built_in();
        assert!(excludes.is_excluded(b"__pycache__", true));
        assert!(excludes.is_excluded(b"sub/__pycache__", true));
        assert!(excludes.is_excluded(b"x.pyc", false));
        assert!(excludes.is_excluded(b".git", true));
        assert!(!excludes.is_excluded(b"x.py", false));
        assert!(!excludes.is_excluded(b".gitignore", false));
    }

    #[test]
    fn rules_from_above_see_the_package_path_and_the_manifest_wins() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("blox/a__1_0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            root.path().join(".gitignore"),
            "/blox/a__1_0/data/\n*.tmp\n",
        )
        .unwrap();
        std::fs::write(root.path().join("blox/.gitignore"), "!keep.tmp\n").unwrap();
        std::fs::write(dir.join(".gitignore"), "/local.txt\n").unwrap();
        let excludes = Excludes::for_package(
            root.path(),
            &dir,
            &["*.keep".into(), "keep.tmp".into()],
            &Inputs::new(),
        )
        .unwrap();
        assert!(excludes.is_excluded(b"data", true));
        assert!(!excludes.is_excluded(b"sub/data", true));
        assert!(excludes.is_excluded(b"x.tmp", false));
        assert!(excludes.is_excluded(b"local.txt", false));
        assert!(!excludes.is_excluded(b"sub/local.txt", false));
        assert!(excludes.is_excluded(b"a.keep", false));
        // `!keep.tmp` of blox/.gitignore re-includes it, but the manifest's list wins.
        assert!(excludes.is_excluded(b"keep.tmp", false));
    }
}
