//! TOML text -> serde structs that mirror the manifest files exactly, with spans.
//!
//! This module only parses: it knows the shape of `manifests/*.toml` (see `docs/manifests.md`) and
//! rejects unknown fields, duplicate keys and syntax errors with the file, line and column. What
//! the values mean (names, versions, references) is checked by `check`, which turns these structs
//! into the `model`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor, value::MapAccessDeserializer};
use toml::Spanned;

use crate::error::{Diagnostic, Error, IoContext, Result};
use crate::inputs::{Inputs, ListedKind};

/// The name of the manifest that describes the extension as a whole.
pub const EXTENSION_MANIFEST: &str = "extension.toml";

/// One manifest file: its path relative to the repository, its text and what it parsed to.
#[derive(Debug)]
pub struct Source<T> {
    pub path: PathBuf,
    pub text: String,
    pub value: T,
}

/// Every manifest of a repository, parsed.
#[derive(Debug)]
pub struct RawManifests {
    pub extension: Source<ExtensionFile>,
    pub resources: Vec<Source<ResourceFile>>,
    /// Resource manifests that did not parse. Their problems are reported with those `check`
    /// finds in the others; checks that need the whole set are skipped, since they would
    /// report references to what the broken files define.
    pub parse_errors: Vec<Diagnostic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtensionFile {
    pub extension: Spanned<ExtensionTable>,
    #[serde(default)]
    pub external: Vec<Spanned<External>>,
    pub installer: Option<Installer>,
    #[serde(default)]
    pub install_spec: Vec<Spanned<InstallSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExtensionTable {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    pub compression_level: Option<Spanned<i64>>,
    #[serde(default)]
    pub inside: Vec<Spanned<RawConstraint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct External {
    pub name: Spanned<String>,
    pub versions: Vec<Spanned<String>>,
    #[serde(default)]
    pub platform: bool,
    #[serde(default)]
    pub output_ports: BTreeMap<String, BTreeMap<String, Spanned<RawProperty>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Installer {
    pub application_name: String,
    /// The installer's `log_level` (Engage stores it; default `INFO`).
    pub log_level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstallSpec {
    pub file: Spanned<String>,
    pub choice: Option<String>,
    #[serde(default)]
    pub instance: Vec<Spanned<Instance>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Instance {
    pub id: Spanned<String>,
    pub key: Spanned<RawConstraint>,
    pub inside: Option<Spanned<InstanceRef>>,
    #[serde(default)]
    pub environment: Vec<Spanned<InstanceRef>>,
    #[serde(default)]
    pub peers: Vec<Spanned<InstanceRef>>,
    #[serde(default)]
    pub config_port: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InstanceRef {
    pub id: Spanned<String>,
    #[serde(default)]
    pub port_mapping: BTreeMap<String, String>,
}

/// A resource manifest: exactly one of `[block]` or `[resource]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    pub block: Option<Spanned<BlockTable>>,
    pub resource: Option<Spanned<ResourceTable>>,
}

pub type RawPorts = BTreeMap<String, BTreeMap<String, Spanned<RawProperty>>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlockTable {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    pub display_name: Option<String>,
    pub comment: Option<String>,
    #[serde(default)]
    pub requires: Vec<Spanned<RawConstraint>>,
    pub inside: Option<Spanned<RawAlternatives>>,
    pub peers: Option<Spanned<RawAlternatives>>,
    #[serde(default)]
    pub config_port: BTreeMap<String, Spanned<RawProperty>>,
    pub source: Option<Spanned<String>>,
    /// Files of the block directory left out of its archive (gitignore patterns).
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ResourceTable {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    pub display_name: Option<String>,
    pub comment: Option<String>,
    pub manager: Option<Spanned<String>>,
    pub driver: Option<Spanned<String>>,
    pub package: Option<Spanned<OneOrMany<RawPackage>>>,
    #[serde(default)]
    pub config_port: BTreeMap<String, Spanned<RawProperty>>,
    #[serde(default)]
    pub input_ports: RawPorts,
    #[serde(default)]
    pub output_ports: RawPorts,
    pub inside: Option<Spanned<RawAlternatives>>,
    pub environment: Option<Spanned<RawAlternatives>>,
    pub peers: Option<Spanned<RawAlternatives>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPackage {
    pub archive: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub pip: Option<Spanned<String>>,
    pub easy_install: Option<Spanned<String>>,
    pub dummy: Option<Spanned<bool>>,
    pub url: Option<Spanned<UrlList>>,
    pub apt_get: Option<Spanned<String>>,
    pub macports: Option<Spanned<String>>,
    /// The Engage package class of a `url` package.
    pub class: Option<Spanned<String>>,
    /// The file name in sw_packages of an `archive` or `file` package, if not the derived one.
    pub name: Option<Spanned<String>>,
    pub filename: Option<String>,
    pub downloader: Option<String>,
    /// For `archive`: files of the directory left out of the archive (gitignore patterns).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// The `location` of a downloaded package: one URL, or mirrors tried in turn.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum UrlList {
    One(String),
    Mirrors(Vec<String>),
}

/// A property of a port: `"type"` or `{ type, default, fixed-value }`.
#[derive(Debug)]
pub struct RawProperty {
    pub ty: String,
    pub default: Option<toml::Value>,
    pub fixed_value: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PropertyTable {
    #[serde(rename = "type")]
    ty: String,
    default: Option<toml::Value>,
    fixed_value: Option<toml::Value>,
}

impl<'de> Deserialize<'de> for RawProperty {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertyVisitor;
        impl<'de> Visitor<'de> for PropertyVisitor {
            type Value = RawProperty;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a property type such as \"path\", or { type = ..., default = ... }")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawProperty, E> {
                Ok(RawProperty {
                    ty: value.to_string(),
                    default: None,
                    fixed_value: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawProperty, A::Error> {
                let table = PropertyTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawProperty {
                    ty: table.ty,
                    default: table.default,
                    fixed_value: table.fixed_value,
                })
            }
        }
        deserializer.deserialize_any(PropertyVisitor)
    }
}

/// A version spec as written: a string (`"1.0"`, `"*"`, `">=2.1, <3"`) or a range table.
#[derive(Debug, Clone)]
pub enum RawVersion {
    Text(String),
    Range(RangeTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RangeTable {
    pub greater_than: Option<String>,
    pub greater_than_or_equal: Option<String>,
    pub less_than: Option<String>,
    pub less_than_or_equal: Option<String>,
}

impl<'de> Deserialize<'de> for RawVersion {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl<'de> Visitor<'de> for VersionVisitor {
            type Value = RawVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a version such as \"1.0\", \"*\" or \">=2.1\", or a range table")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawVersion, E> {
                Ok(RawVersion::Text(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawVersion, A::Error> {
                RangeTable::deserialize(MapAccessDeserializer::new(map)).map(RawVersion::Range)
            }
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

/// A constraint as written: `"NAME SPEC"` or `{ name, version, port-mapping }`.
#[derive(Debug, Clone)]
pub enum RawConstraint {
    Short(String),
    Full(FullConstraint),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FullConstraint {
    pub name: String,
    pub version: RawVersion,
    #[serde(default)]
    pub port_mapping: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawConstraint {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConstraintVisitor;
        impl<'de> Visitor<'de> for ConstraintVisitor {
            type Value = RawConstraint;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a constraint: \"NAME VERSION\" or { name, version, port-mapping }")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawConstraint, E> {
                Ok(RawConstraint::Short(value.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawConstraint, A::Error> {
                FullConstraint::deserialize(MapAccessDeserializer::new(map))
                    .map(RawConstraint::Full)
            }
        }
        deserializer.deserialize_any(ConstraintVisitor)
    }
}

/// `inside`, `environment` or `peers` as written: one constraint, an array (all of them),
/// `{ all-of = [...] }` or `{ one-of = [...] }`.
#[derive(Debug)]
pub enum RawAlternatives {
    One(Spanned<RawConstraint>),
    AllOf(Vec<Spanned<RawConstraint>>),
    OneOf(Vec<Spanned<RawConstraint>>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AlternativesTable {
    one_of: Option<Vec<Spanned<RawConstraint>>>,
    all_of: Option<Vec<Spanned<RawConstraint>>>,
    name: Option<String>,
    version: Option<RawVersion>,
    #[serde(default)]
    port_mapping: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawAlternatives {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AlternativesVisitor;
        impl<'de> Visitor<'de> for AlternativesVisitor {
            type Value = RawAlternatives;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a constraint, an array of constraints, { all-of = [...] } or { one-of = [...] }")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawAlternatives, A::Error> {
                let mut all = Vec::new();
                while let Some(constraint) = seq.next_element()? {
                    all.push(constraint);
                }
                Ok(RawAlternatives::AllOf(all))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawAlternatives, A::Error> {
                let table = AlternativesTable::deserialize(MapAccessDeserializer::new(map))?;
                match (table.one_of, table.all_of, table.name, table.version) {
                    (Some(one_of), None, None, None) => Ok(RawAlternatives::OneOf(one_of)),
                    (None, Some(all_of), None, None) => Ok(RawAlternatives::AllOf(all_of)),
                    (None, None, Some(name), Some(version)) => {
                        // The span of the whole value is attached by the caller's `Spanned`.
                        Ok(RawAlternatives::One(Spanned::new(
                            0..0,
                            RawConstraint::Full(FullConstraint {
                                name,
                                version,
                                port_mapping: table.port_mapping,
                            }),
                        )))
                    }
                    _ => Err(de::Error::custom(
                        "expected `one-of`, `all-of`, or a single constraint with `name` and `version`",
                    )),
                }
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawAlternatives, E> {
                Ok(RawAlternatives::One(Spanned::new(
                    0..0,
                    RawConstraint::Short(value.to_string()),
                )))
            }
        }
        deserializer.deserialize_any(AlternativesVisitor)
    }
}

/// A field that takes one table or an array of them.
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table or an array of tables")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
                let mut all = Vec::new();
                while let Some(item) = seq.next_element()? {
                    all.push(item);
                }
                Ok(OneOrMany(all))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany<T>, A::Error> {
                Ok(OneOrMany(vec![T::deserialize(
                    MapAccessDeserializer::new(map),
                )?]))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

/// Reads `manifests/extension.toml` and every other `manifests/*.toml`, in byte-wise name order.
/// Every file is parsed even when an earlier one fails, so all syntax errors are reported at once.
pub fn read_all(repo: &Path, inputs: &Inputs) -> Result<RawManifests> {
    let dir = repo.join("manifests");
    let mut names = Vec::new();
    let mut diagnostics = Vec::new();
    let entries = inputs
        .read_dir(&dir)
        .with_path("read the manifest directory", &dir)?;
    for (path, file_type) in entries {
        let name = path
            .file_name()
            .expect("a listed entry has a name")
            .to_owned();
        let is_toml = Path::new(&name)
            .extension()
            .is_some_and(|ext| ext == "toml");
        if !is_toml {
            continue;
        }
        let relative = Path::new("manifests").join(&name);
        match manifest_problem(repo, &path, &file_type, inputs) {
            None => names.push(name),
            Some((problem, help)) => diagnostics.push(
                Diagnostic::error(
                    "manifest-not-file",
                    format!("manifest `{}` {problem}", relative.display()),
                )
                .file(&relative)
                .help(help),
            ),
        }
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    diagnostics.sort_by(|a, b| a.file.cmp(&b.file));
    let mut texts = Vec::new();
    for name in names {
        let relative = Path::new("manifests").join(&name);
        match inputs.read_to_string(&dir.join(&name)) {
            Ok(text) => texts.push((relative, text)),
            Err(error) => {
                diagnostics.push(Error::io("read", &relative, error).diagnostics.remove(0))
            }
        }
    }
    parse_all(texts, diagnostics)
}

/// Parses manifest texts (path relative to the repository, text), in the order given; the one
/// named `manifests/extension.toml` is the extension manifest. `diagnostics` are problems found
/// while reading, reported with the parse errors. Touches no disk: the fuzz targets call it.
pub fn parse_all(
    texts: Vec<(PathBuf, String)>,
    mut diagnostics: Vec<Diagnostic>,
) -> Result<RawManifests> {
    let extension_path = Path::new("manifests").join(EXTENSION_MANIFEST);
    let mut extension = None;
    let mut resources = Vec::new();
    for (relative, text) in texts {
        if relative == extension_path {
            match parse::<ExtensionFile>(&relative, &text) {
                Ok(value) => {
                    extension = Some(Source {
                        path: relative,
                        text,
                        value,
                    })
                }
                Err(error) => diagnostics.extend(error.diagnostics),
            }
        } else {
            match parse::<ResourceFile>(&relative, &text) {
                Ok(value) => resources.push(Source {
                    path: relative,
                    text,
                    value,
                }),
                Err(error) => diagnostics.extend(error.diagnostics),
            }
        }
    }
    if extension.is_none()
        && !diagnostics
            .iter()
            .any(|d| d.file.as_deref() == Some(&extension_path))
    {
        diagnostics.push(
            Diagnostic::error("missing-extension-manifest", "no extension manifest")
                .file(&extension_path)
                .help("create manifests/extension.toml with an [extension] table (see docs/manifests.md)"),
        );
    }
    match extension {
        Some(extension) => Ok(RawManifests {
            extension,
            resources,
            parse_errors: diagnostics,
        }),
        None => Err(Error::many(diagnostics)),
    }
}

/// Why a `manifests/*.toml` entry cannot be read as a manifest, with what to do; `None` when it
/// can. A symbolic link is followed when it leads to a regular file inside the repository, like
/// the sources a manifest names; anything but a regular file (a FIFO would block the read
/// forever) is refused rather than skipped, so no manifest is silently dropped.
fn manifest_problem(
    repo: &Path,
    path: &Path,
    file_type: &ListedKind,
    inputs: &Inputs,
) -> Option<(String, &'static str)> {
    if path.file_name().and_then(|name| name.to_str()).is_none() {
        return Some((
            "has a name that is not UTF-8".into(),
            "rename it: diagnostics and `--json` name manifests by their UTF-8 names",
        ));
    }
    if *file_type == ListedKind::File {
        return None;
    }
    if !matches!(file_type, ListedKind::Symlink) {
        return Some((
            "is not a regular file".into(),
            "replace it by a TOML file, or remove it",
        ));
    }
    let (Ok(real), Ok(real_repo)) = (inputs.canonicalize(path), inputs.canonicalize(repo)) else {
        return Some((
            "is a symbolic link to nothing".into(),
            "fix the symbolic link, or remove it",
        ));
    };
    if !real.starts_with(&real_repo) {
        return Some((
            format!(
                "is a symbolic link to `{}`, outside the repository",
                real.display()
            ),
            "keep manifests inside the repository; replace the symbolic link by the file",
        ));
    }
    if !inputs.is_file(&real) {
        return Some((
            format!(
                "is a symbolic link to `{}`, which is not a regular file",
                real.display()
            ),
            "point the link at a TOML file, or remove it",
        ));
    }
    None
}

/// Parses one TOML file, turning a syntax or schema error into a diagnostic with a line and column.
pub fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|error| {
        let mut message = match error.message().trim_end_matches('\n') {
            "" => "invalid TOML".to_string(),
            message => message.replace('\n', ": "),
        };
        // The parser names no key; its span is the key.
        if message == "duplicate key"
            && let Some(key) = error.span().and_then(|span| text.get(span))
        {
            message = format!("duplicate key `{key}`");
        }
        let (code, help) = describe_toml_error(&message);
        let mut diagnostic = Diagnostic::error(code, message).file(path).help(help);
        if let Some(span) = error.span() {
            diagnostic = diagnostic.span(text, span);
        }
        Error::new(diagnostic)
    })
}

fn describe_toml_error(message: &str) -> (&'static str, &'static str) {
    if message.starts_with("unknown field") {
        (
            "unknown-field",
            "remove the field or fix its spelling; docs/manifests.md lists the fields",
        )
    } else if message.contains("duplicate key") {
        ("duplicate-key", "define each key once")
    } else if message.starts_with("missing field") {
        (
            "missing-field",
            "add the field; docs/manifests.md lists the required fields",
        )
    } else if message.starts_with("invalid type") || message.starts_with("expected") {
        (
            "invalid-type",
            "see docs/manifests.md for the form this field takes",
        )
    } else {
        ("toml-syntax", "fix the TOML syntax at this position")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_points_at_its_line() {
        let text = "[block]\nname = \"A\"\nversion = \"1.0\"\nrequire = []\n";
        let diagnostic = parse::<ResourceFile>(Path::new("manifests/a.toml"), text)
            .unwrap_err()
            .diagnostics
            .remove(0);
        assert_eq!(diagnostic.code, "unknown-field");
        assert!(
            diagnostic.message.starts_with("unknown field `require`"),
            "{}",
            diagnostic.message
        );
        assert_eq!(diagnostic.location.unwrap().line, 4);
    }

    #[test]
    fn alternatives_take_every_form() {
        let text = r#"
[resource]
name = "r"
version = "1"
manager = "m"
inside = { one-of = ["a 1", { name = "b", version = ">=2", port-mapping = { host = "host" } }] }
environment = ["c 1", "d *"]
peers = { name = "e", version = { greater-than = "1" } }
"#;
        let file = parse::<ResourceFile>(Path::new("r.toml"), text).unwrap();
        let resource = file.resource.unwrap().into_inner();
        assert!(
            matches!(resource.inside.unwrap().into_inner(), RawAlternatives::OneOf(v) if v.len() == 2)
        );
        assert!(
            matches!(resource.environment.unwrap().into_inner(), RawAlternatives::AllOf(v) if v.len() == 2)
        );
        assert!(matches!(
            resource.peers.unwrap().into_inner(),
            RawAlternatives::One(_)
        ));
    }

    #[test]
    fn duplicate_key_is_an_error() {
        let text = "[block]\nname = \"A\"\nname = \"B\"\nversion = \"1.0\"\n";
        let diagnostic = parse::<ResourceFile>(Path::new("a.toml"), text)
            .unwrap_err()
            .diagnostics
            .remove(0);
        assert_eq!(diagnostic.code, "duplicate-key", "{diagnostic}");
        assert_eq!(diagnostic.location.unwrap().line, 3);
    }
}
