//! The checked model: what the manifests mean once `check` has accepted them.
//!
//! Every value here is valid: names follow the block rules, versions parse, every constraint
//! matches a resource, paths lie inside the repository. Later stages (`plan`, `extension`) can rely
//! on that and never report manifest problems themselves.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Identifies a resource: `{"name": ..., "version": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RangeOp {
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
}

impl RangeOp {
    pub fn json_name(self) -> &'static str {
        match self {
            RangeOp::GreaterThan => "greater-than",
            RangeOp::GreaterThanOrEqual => "greater-than-or-equal",
            RangeOp::LessThan => "less-than",
            RangeOp::LessThanOrEqual => "less-than-or-equal",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            RangeOp::GreaterThan => ">",
            RangeOp::GreaterThanOrEqual => ">=",
            RangeOp::LessThan => "<",
            RangeOp::LessThanOrEqual => "<=",
        }
    }
}

/// A version constraint: exact, `*`/`any` (kept as written; to Engage these are versions like
/// any other, which some definitions have, e.g. `pip any`), or a range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionReq {
    Exact(String),
    Any(String),
    Range(Vec<(RangeOp, String)>),
}

impl VersionReq {
    /// Whether a defined `version` satisfies the constraint, as Engage's config engine decides
    /// (`config_src/config/generate.ml`, `matches`; `resources.ml`, `scalar_gt` and its
    /// siblings): an exact version, `*` and `any` alike, equals the defined version as a string,
    /// and bounds compare strings byte by byte (`"2.10" < "2.9"`), not as dotted numbers.
    pub fn matches(&self, version: &str) -> bool {
        match self {
            VersionReq::Exact(exact) | VersionReq::Any(exact) => exact == version,
            VersionReq::Range(bounds) => bounds.iter().all(|(op, bound)| {
                let order = version.as_bytes().cmp(bound.as_bytes());
                match op {
                    RangeOp::GreaterThan => order == Ordering::Greater,
                    RangeOp::GreaterThanOrEqual => order != Ordering::Less,
                    RangeOp::LessThan => order == Ordering::Less,
                    RangeOp::LessThanOrEqual => order != Ordering::Greater,
                }
            }),
        }
    }
}

impl VersionReq {
    /// A version as Engage's JSON writes it: a string (exact, or `*`/`any`), or a range object.
    pub fn from_json(value: &serde_json::Value) -> Option<VersionReq> {
        match value {
            serde_json::Value::String(text) if text == "*" || text == "any" => {
                Some(VersionReq::Any(text.clone()))
            }
            serde_json::Value::String(text) => Some(VersionReq::Exact(text.clone())),
            serde_json::Value::Object(bounds) if !bounds.is_empty() => {
                let mut range = Vec::new();
                for (name, bound) in bounds {
                    let op = [
                        RangeOp::GreaterThan,
                        RangeOp::GreaterThanOrEqual,
                        RangeOp::LessThan,
                        RangeOp::LessThanOrEqual,
                    ]
                    .into_iter()
                    .find(|op| op.json_name() == name)?;
                    range.push((op, bound.as_str()?.to_string()));
                }
                Some(VersionReq::Range(range))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for VersionReq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionReq::Exact(version) | VersionReq::Any(version) => f.write_str(version),
            VersionReq::Range(bounds) => {
                let parts: Vec<String> = bounds
                    .iter()
                    .map(|(op, bound)| format!("{}{bound}", op.symbol()))
                    .collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

/// Compares versions as dotted numbers (`2.10` > `2.9`); a part that is not a number compares as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// A reference from one resource to others that must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub name: String,
    pub version: VersionReq,
    /// my input port -> their output port
    pub port_mapping: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alternatives {
    One(Constraint),
    AllOf(Vec<Constraint>),
    OneOf(Vec<Constraint>),
}

impl Alternatives {
    pub fn constraints(&self) -> &[Constraint] {
        match self {
            Alternatives::One(constraint) => std::slice::from_ref(constraint),
            Alternatives::AllOf(all) | Alternatives::OneOf(all) => all,
        }
    }
}

/// A property of a port. `default` only on config ports, `fixed_value` only on output ports.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub ty: String,
    pub default: Option<serde_json::Value>,
    pub fixed_value: Option<serde_json::Value>,
}

/// port name -> property name -> property
pub type Ports = BTreeMap<String, BTreeMap<String, Property>>;

/// Where the software of a resource comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageSource {
    /// A reproducible `<file_name>` built from the directory `dir`.
    Archive {
        dir: PathBuf,
        file_name: String,
        /// Patterns (gitignore syntax, relative to `dir`) of files left out of the archive.
        exclude: Vec<String>,
    },
    /// A file copied into `sw_packages` as `file_name`.
    File {
        path: PathBuf,
        file_name: String,
    },
    Pip(String),
    EasyInstall(String),
    Dummy,
    /// Downloaded by Engage's `downloader` from `location` (one URL or mirrors); `class` is the
    /// Engage package class (`GzippedTarArchive`, `ZipArchive`, `FilePackage`).
    Url {
        location: crate::manifest::UrlList,
        class: String,
    },
    /// A system package, installed by apt-get (Linux) or MacPorts (macOS).
    AptGet(String),
    MacPorts(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub source: PackageSource,
    pub filename: Option<String>,
    pub downloader: Option<String>,
}

/// Which code installs a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Driver {
    /// The generic block driver, through a generated driver directory.
    Block,
    /// A hand-written driver directory, copied next to the generated JSON.
    Directory(PathBuf),
    /// A library entry naming a manager module.
    Library { module: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Block,
    Resource,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub key: Key,
    pub kind: Kind,
    /// The manifest it comes from, relative to the repository.
    pub manifest: PathBuf,
    /// Engage's `display_name`, required on every definition (`parse_rdef.ml`, `parse_rdef`):
    /// from the manifest, else derived.
    pub display_name: String,
    pub comment: Option<String>,
    pub config_port: BTreeMap<String, Property>,
    pub input_ports: Ports,
    pub output_ports: Ports,
    pub inside: Option<Alternatives>,
    pub environment: Option<Alternatives>,
    pub peers: Option<Alternatives>,
    pub packages: Vec<Package>,
    pub driver: Driver,
}

impl Resource {
    /// The driver-directory name Engage derives from a key (case kept).
    pub fn driver_dir(&self) -> String {
        driver_dir_name(&self.key)
    }
}

pub fn driver_dir_name(key: &Key) -> String {
    format!("{}__{}", key.name, key.version)
        .replace(' ', "")
        .replace(['.', '-'], "_")
}

/// mangle(s): lower-case, `-` and `.` become `_`, spaces removed.
pub fn mangle(text: &str) -> String {
    text.to_lowercase()
        .replace(' ', "")
        .replace(['-', '.'], "_")
}

/// A key Engage defines itself and the manifests rely on.
#[derive(Clone, Debug, PartialEq)]
pub struct External {
    pub name: String,
    pub versions: Vec<String>,
    pub output_ports: Ports,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRef {
    pub id: String,
    pub key: Key,
    pub port_mapping: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub id: String,
    pub key: Key,
    pub inside: Option<InstanceRef>,
    pub environment: Vec<InstanceRef>,
    pub peers: Vec<InstanceRef>,
    pub config_port: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstallSpec {
    pub file: String,
    pub choice: Option<String>,
    pub instances: Vec<Instance>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Extension {
    pub name: String,
    pub version: String,
    pub compression_level: u32,
    pub default_inside: Vec<Constraint>,
    pub externals: Vec<External>,
    pub application_name: Option<String>,
    pub log_level: Option<String>,
    pub install_specs: Vec<InstallSpec>,
}

/// Everything the manifests say, checked. Resources are sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub extension: Extension,
    pub resources: Vec<Resource>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_dotted_numbers() {
        assert_eq!(compare_versions("2.10", "2.9"), Ordering::Greater);
        assert_eq!(compare_versions("10.5", "10.5"), Ordering::Equal);
        assert_eq!(compare_versions("1", "1.0"), Ordering::Less);
        let range = VersionReq::Range(vec![
            (RangeOp::GreaterThanOrEqual, "2.1".into()),
            (RangeOp::LessThan, "3".into()),
        ]);
        assert!(range.matches("2.1") && range.matches("2.12") && !range.matches("3.0"));
        assert_eq!(range.to_string(), ">=2.1, <3");
        // Engage compares version strings byte by byte, and `*`/`any` are versions, not
        // wildcards: check must not accept a match Engage's solver would not find.
        let from_2_9 = VersionReq::Range(vec![(RangeOp::GreaterThanOrEqual, "2.9".into())]);
        assert!(!from_2_9.matches("2.10") && from_2_9.matches("2.9.1"));
        assert!(!VersionReq::Any("*".into()).matches("1.0"));
        assert!(VersionReq::Any("any".into()).matches("any"));
    }

    #[test]
    fn names_are_mangled_as_engage_does() {
        assert_eq!(mangle("File-Crawler"), "file_crawler");
        assert_eq!(
            driver_dir_name(&Key {
                name: "file-crawler".into(),
                version: "1.0".into()
            }),
            "file_crawler__1_0"
        );
        assert_eq!(
            driver_dir_name(&Key {
                name: "Data Blox".into(),
                version: "1.0".into()
            }),
            "DataBlox__1_0"
        );
    }
}
