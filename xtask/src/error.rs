//! The error type: every problem is a `Diagnostic` that names a file (and a line and column when
//! it comes from TOML), says what is wrong and, in `help`, what to do.
//!
//! An `Error` carries one or more diagnostics, so validation can report every problem at once.
//! Rendering follows cargo's manifest errors: message, `--> file:line:col`, the line, a caret, `help:`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in a text file a diagnostic points: 1-based line and column, the line's text and the
/// width of the caret underline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub line_text: String,
    pub width: usize,
}

impl Location {
    /// Turns a byte span of `source` into a line, a column (in characters) and the line's text.
    pub fn from_span(source: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line_text = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(source, span.end.clamp(start, line_end));
        let width = source[start..end].chars().count().max(1);
        Location {
            line,
            column,
            line_text,
            width,
        }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while index > 0 && !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// One problem, reported to a person (rendered) or to a machine (`--json`); the warnings of a
/// build are kept in its state (serde), to be printed again by a run that finds nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A short stable identifier such as `unknown-dependency`, for `--json` consumers.
    #[serde(deserialize_with = "leaked")]
    pub code: Code,
    pub message: String,
    pub file: Option<PathBuf>,
    pub location: Option<Location>,
    pub help: Option<String>,
}

/// Named, so that serde does not take the field for one borrowed from what it reads.
pub type Code = &'static str;

/// A code read back from a state: the few a build warns with live until the process exits.
fn leaked<'de, D: serde::Deserializer<'de>>(
    code: D,
) -> std::result::Result<&'static str, D::Error> {
    String::deserialize(code).map(|code| &*Box::leak(code.into_boxed_str()))
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            file: None,
            location: None,
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn file(mut self, path: impl Into<PathBuf>) -> Diagnostic {
        self.file = Some(path.into());
        self
    }

    /// Points at `span` of `source`, the text of the file set with `file`.
    pub fn span(mut self, source: &str, span: Range<usize>) -> Diagnostic {
        self.location = Some(Location::from_span(source, span));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// The machine-readable form printed by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file.as_ref().map(|path| path.to_string_lossy().into_owned()),
            "line": self.location.as_ref().map(|location| location.line),
            "column": self.location.as_ref().map(|location| location.column),
            "help": self.help,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        match (&self.file, &self.location) {
            (Some(file), Some(location)) => {
                let number = location.line.to_string();
                let pad = " ".repeat(number.len());
                writeln!(
                    f,
                    "{pad}--> {}:{}:{}",
                    file.display(),
                    location.line,
                    location.column
                )?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{number} | {}", location.line_text)?;
                let indent: String = location
                    .line_text
                    .chars()
                    .take(location.column - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, "{pad} | {indent}{}", "^".repeat(location.width))?;
            }
            (Some(file), None) => writeln!(f, "  --> {}", file.display())?,
            _ => {}
        }
        if let Some(help) = &self.help {
            writeln!(f, "help: {help}")?;
        }
        Ok(())
    }
}

/// What the library returns when it cannot go on: one or more diagnostics.
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub diagnostics: Vec<Diagnostic>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(diagnostic: Diagnostic) -> Error {
        Error {
            diagnostics: vec![diagnostic],
        }
    }

    pub fn many(diagnostics: Vec<Diagnostic>) -> Error {
        Error { diagnostics }
    }

    /// A file-system error, always with the path it concerns.
    pub fn io(action: &str, path: &Path, error: std::io::Error) -> Error {
        let help = match error.kind() {
            std::io::ErrorKind::InvalidData => "save the file as UTF-8 text",
            std::io::ErrorKind::NotFound => "check that the path exists",
            std::io::ErrorKind::PermissionDenied => "check the permissions of the path",
            std::io::ErrorKind::InvalidFilename => {
                "shorten the path: a name has at most 255 bytes on most file systems"
            }
            _ => "check the path and the file system, then run the command again",
        };
        Error::new(
            Diagnostic::error(
                "io",
                format!("cannot {action} `{}`: {error}", path.display()),
            )
            .file(path)
            .help(help),
        )
    }
}

impl From<Diagnostic> for Error {
    fn from(diagnostic: Diagnostic) -> Error {
        Error::new(diagnostic)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Attaches a path to an `io::Result`, so that no bare "No such file or directory" reaches a user.
pub trait IoContext<T> {
    fn with_path(self, action: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, action: &str, path: &Path) -> Result<T> {
        self.map_err(|error| Error::io(action, path, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_becomes_line_column_and_caret() {
        let source = "[block]\nname = \"a_b\"\n";
        let start = source.find("\"a_b\"").unwrap();
        let diagnostic = Diagnostic::error("bad-name", "bad name")
            .file("manifests/a.toml")
            .span(source, start..start + 5)
            .help("rename it");
        let location = diagnostic.location.clone().unwrap();
        assert_eq!((location.line, location.column, location.width), (2, 8, 5));
        assert_eq!(
            diagnostic.to_string(),
            "error: bad name\n --> manifests/a.toml:2:8\n  |\n2 | name = \"a_b\"\n  |        ^^^^^\nhelp: rename it\n"
        );
    }
}
