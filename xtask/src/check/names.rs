//! Names, versions and constraint text: the rules shared by `check`, `new` and `import`.
//!
//! Each rule lives here once. The checker attaches spans to the problems; `scaffold` and
//! `import` call the same functions on flag values and legacy names.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Checker;
use crate::manifest::RawVersion;
use crate::model::{Constraint, RangeOp, VersionReq, mangle};

/// What is wrong with a name or a constraint, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The diagnostic code (`block-name`, `bad-constraint`, `bad-version-spec`).
    pub code: &'static str,
    pub message: String,
    pub help: String,
}

/// Whether a resource name (or a version) follows the rule every name of a key follows, here,
/// in the framework (`datablox_framework/naming.py`) and in the node deployer
/// (`datablox_deployer/extension.py`): not empty, no leading `-` (a name is passed on command
/// lines, where it would read as an option), no `/` (names become directory names), no `=`
/// (`--flag=value`), no white space and no control character (NUL included). The table
/// `python/tests/name_rule.json` is run by the Rust and the Python tests, so the three agree.
pub fn name_problem(what: &str, name: &str) -> Option<Problem> {
    let bad = name
        .chars()
        .find(|&c| c == '/' || c == '=' || c.is_whitespace() || c.is_control());
    let message = if name.is_empty() {
        format!("the {what} is empty")
    } else if name.starts_with('-') {
        format!("{what} `{}` starts with `-`", name.escape_debug())
    } else if let Some(bad) = bad {
        format!(
            "{what} `{}` contains `{}`",
            name.escape_debug(),
            bad.escape_debug()
        )
    } else {
        return None;
    };
    Some(Problem {
        code: "resource-name",
        message,
        help: format!(
            "a {what} is not empty and has no leading `-`, no `/`, `=`, white space or control characters"
        ),
    })
}

/// Whether a block display name follows the rules: the name rule (`name_problem`), no `_` or
/// `.` (they are reserved by the name mangling of the block directory and driver directory), and
/// a Python module once mangled.
pub fn block_name_problem(display: &str) -> Option<Problem> {
    if let Some(problem) = name_problem("block name", display) {
        Some(Problem {
            code: "block-name",
            ..problem
        })
    } else if display.contains(['_', '.']) {
        Some(Problem {
            code: "block-name",
            message: format!(
                "block name `{display}` contains `_` or `.`, which are reserved by the name mangling"
            ),
            help: format!(
                "use `-` between words, e.g. `{}`",
                display.replace(['_', '.'], "-")
            ),
        })
    } else if !is_identifier(&mangle(display)) {
        Some(Problem {
            code: "block-name",
            message: format!(
                "block name `{display}` does not give a Python module name (`{}`)",
                mangle(display)
            ),
            help: "use letters, digits and `-`, starting with a letter".into(),
        })
    } else {
        None
    }
}

/// A Python identifier in the ASCII subset the generated module names use.
pub(super) fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses the string form of a constraint, `"NAME SPEC"`, as `requires` entries are written.
pub fn parse_constraint_text(text: &str) -> Result<Constraint, Problem> {
    let Some((name, spec)) = text.trim().split_once(char::is_whitespace) else {
        let name = text.trim();
        return Err(Problem {
            code: "bad-constraint",
            message: format!("constraint `{text}` has no version"),
            help: format!("write \"{name} 1.0\" or \"{name} >=1.0\""),
        });
    };
    let version = parse_version_spec(&RawVersion::Text(spec.trim().to_string()))?;
    Ok(Constraint {
        name: name.to_string(),
        version,
        port_mapping: BTreeMap::new(),
    })
}

/// `parse_version_req` with the problem's code and help.
pub(super) fn parse_version_spec(raw: &RawVersion) -> Result<VersionReq, Problem> {
    parse_version_req(raw).map_err(|message| Problem {
        code: "bad-version-spec",
        message,
        help: "write an exact version (\"1.0\") or a range such as \">=2.1, <3\"".into(),
    })
}

/// Parses a version spec: `"1.0"`, `"*"`, `"any"`, `">=2.1, <3"`, or a range table.
pub(super) fn parse_version_req(raw: &RawVersion) -> Result<VersionReq, String> {
    let bounds = match raw {
        RawVersion::Text(text) => {
            let text = text.trim();
            if text == "*" || text == "any" {
                return Ok(VersionReq::Any(text.to_string()));
            }
            if text.is_empty() {
                return Err("the version is empty".into());
            }
            if !text.starts_with(['<', '>', '=']) {
                if text.contains([',', ' ', '<', '>']) {
                    return Err(format!("`{text}` is not a version"));
                }
                return Ok(VersionReq::Exact(text.to_string()));
            }
            let mut bounds = Vec::new();
            for part in text.split(',') {
                let part = part.trim();
                let (op, rest) = if let Some(rest) = part.strip_prefix(">=") {
                    (RangeOp::GreaterThanOrEqual, rest)
                } else if let Some(rest) = part.strip_prefix("<=") {
                    (RangeOp::LessThanOrEqual, rest)
                } else if let Some(rest) = part.strip_prefix('>') {
                    (RangeOp::GreaterThan, rest)
                } else if let Some(rest) = part.strip_prefix('<') {
                    (RangeOp::LessThan, rest)
                } else if let Some(rest) = part.strip_prefix('=') {
                    if text.contains(',') {
                        return Err(format!("`{text}` mixes an exact version with a range"));
                    }
                    return Ok(VersionReq::Exact(rest.trim().to_string()));
                } else {
                    return Err(format!(
                        "`{part}` in `{text}` is neither a version nor a bound (>=, >, <, <=)"
                    ));
                };
                let rest = rest.trim();
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err(format!("`{part}` has no version after `{}`", op.symbol()));
                }
                bounds.push((op, rest.to_string()));
            }
            bounds
        }
        RawVersion::Range(table) => {
            let bounds: Vec<(RangeOp, String)> = [
                (RangeOp::GreaterThan, &table.greater_than),
                (RangeOp::GreaterThanOrEqual, &table.greater_than_or_equal),
                (RangeOp::LessThan, &table.less_than),
                (RangeOp::LessThanOrEqual, &table.less_than_or_equal),
            ]
            .into_iter()
            .filter_map(|(op, bound)| bound.clone().map(|b| (op, b)))
            .collect();
            if bounds.is_empty() {
                return Err("the range table has no bound".into());
            }
            bounds
        }
    };
    Ok(VersionReq::Range(bounds))
}

impl Checker<'_> {
    /// A version of a key: the name rule (`name_problem`), as a version is part of directory
    /// names and command lines too.
    pub(super) fn version_text(&mut self, file: usize, version: &Spanned<String>) {
        let text = version.get_ref();
        if name_problem("version", text).is_some() {
            self.error(
                file,
                "bad-version",
                version.span(),
                format!("`{text}` is not a version"),
                "write a version such as \"1.0\"".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specs_parse() {
        let parse = |text: &str| parse_version_req(&RawVersion::Text(text.into()));
        assert_eq!(parse("1.0"), Ok(VersionReq::Exact("1.0".into())));
        assert_eq!(parse("any"), Ok(VersionReq::Any("any".into())));
        assert_eq!(
            parse(">=2.1, <3"),
            Ok(VersionReq::Range(vec![
                (RangeOp::GreaterThanOrEqual, "2.1".into()),
                (RangeOp::LessThan, "3".into())
            ]))
        );
        assert!(parse(">= ").is_err());
        assert!(parse("1.0 2.0").is_err());
    }

    #[test]
    fn constraint_text_and_block_names() {
        let constraint = parse_constraint_text("chardet >=5").unwrap();
        assert_eq!(constraint.name, "chardet");
        assert_eq!(
            parse_constraint_text("chardet").unwrap_err().code,
            "bad-constraint"
        );
        assert_eq!(
            parse_constraint_text("chardet >=").unwrap_err().code,
            "bad-version-spec"
        );
        assert_eq!(block_name_problem("Word-Count"), None);
        assert_eq!(
            block_name_problem("--tree=/some/dir").unwrap().message,
            "block name `--tree=/some/dir` starts with `-`"
        );
        assert!(block_name_problem("Word_Count").is_some());
        assert!(block_name_problem("9-Lives").is_some());
    }

    /// The table the Python tests run too (`python/tests/test_naming.py`): the framework, the
    /// node deployer and `check` accept and refuse the same names.
    #[test]
    fn the_shared_name_table() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../../python/tests/name_rule.json")).unwrap();
        let rows = table["names"].as_array().unwrap();
        assert!(rows.len() > 20);
        for row in rows {
            let name = row["name"].as_str().unwrap();
            assert_eq!(
                name_problem("resource name", name).is_none(),
                row["resource"].as_bool().unwrap(),
                "resource name {name:?}"
            );
            assert_eq!(
                block_name_problem(name).is_none(),
                row["block"].as_bool().unwrap(),
                "block name {name:?}"
            );
        }
    }
}
