//! Parsed manifests -> the checked `Model`, or every problem at once.
//!
//! Validation runs before anything is written. Each diagnostic names the manifest, the line and
//! column of the offending value, what is wrong and what to do; legal but suspicious things come
//! back as warnings. This module owns the order of the passes and the state they share (`Checker`,
//! `Draft`, `DefinedIndex`); each rule lives in one submodule, by concern:
//!
//! - `names` — block names, versions, version specs and constraint text (shared with `new` and
//!   `import`);
//! - `definitions` — `[block]`/`[resource]` tables and `extension.toml` -> resource definitions:
//!   derived block definitions, ports and properties, `inside`/`environment`/`peers`;
//! - `packages` — how a resource is installed: manager module or driver directory, packages;
//! - `paths` — repository paths: inside the repository (also through symbolic links), existing;
//! - `references` — unique keys, constraints that match definitions, port mappings and input
//!   ports fed, `${...}` references and property values as Engage's config engine reads them;
//! - `cycles` — dependency cycles over `inside` and `environment`;
//! - `install_specs` — the install specs of `extension.toml` and the installer's configuration;
//! - `deployments` — config values: what a block's on-demand deployment or an install spec pulls
//!   in must get a value for every config property;
//! - `lints` — warnings: unreachable resources, narrow ranges, unmapped output ports, block
//!   directories without a manifest.

mod cycles;
mod definitions;
mod deployments;
mod install_specs;
mod lints;
mod names;
mod packages;
mod paths;
mod references;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use crate::error::{Diagnostic, Error, Result};
use crate::inputs::Inputs;
use crate::manifest::{self, RawManifests};
use crate::model::{Constraint, External, Model, Ports, Resource};

pub use names::{Problem, block_name_problem, parse_constraint_text};

/// Where hand-written driver modules live, relative to the repository.
pub const DRIVER_SOURCES: &str = "engage-extension/drivers";

/// The model and the warnings found on the way.
#[derive(Debug)]
pub struct Checked {
    pub model: Model,
    pub warnings: Vec<Diagnostic>,
}

/// Properties of the `host` output port of every host platform.
pub const HOST_PROPERTIES: [(&str, &str); 8] = [
    ("genforma_home", "path"),
    ("log_directory", "path"),
    ("hostname", "string"),
    ("os_user_name", "string"),
    ("os_type", "string"),
    ("cpu_arch", "string"),
    ("private_ip", "string"),
    ("sudo_password", "password"),
];

/// Reads and checks every manifest of `repo`.
pub fn load(repo: &Path, inputs: &Inputs) -> Result<Checked> {
    let raw = manifest::read_all(repo, inputs)?;
    check(&raw, repo, inputs)
}

/// A constraint with where it was written.
struct Located {
    constraint: Constraint,
    file: usize,
    span: Range<usize>,
}

enum Group {
    One,
    AllOf,
    OneOf,
}

struct LocatedGroup {
    field: &'static str,
    group: Group,
    constraints: Vec<Located>,
}

/// A resource during checking: the model value and the spans of what later checks look at.
struct Draft {
    resource: Resource,
    file: usize,
    key_span: Range<usize>,
    groups: Vec<LocatedGroup>,
}

/// The state every pass shares: the sources (for spans) and the diagnostics found so far.
struct Checker<'a> {
    repo: &'a Path,
    /// Every file looked at goes through it (`inputs`).
    inputs: &'a Inputs,
    raw: &'a RawManifests,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// The default `inside` constraints as written in `extension.toml`, parsed once.
    default_inside: Vec<Located>,
}

/// File index of the extension manifest in `Checker::source_*` helpers; resources use their index.
const EXTENSION_FILE: usize = usize::MAX;

/// Runs every pass over the parsed manifests; fails with every error found.
pub fn check(raw: &RawManifests, repo: &Path, inputs: &Inputs) -> Result<Checked> {
    let mut checker = Checker {
        repo,
        inputs,
        raw,
        diagnostics: raw.parse_errors.clone(),
        warnings: Vec::new(),
        default_inside: Vec::new(),
    };
    let complete = raw.parse_errors.is_empty();
    let mut extension = checker.extension();
    let mut drafts = Vec::new();
    for index in 0..raw.resources.len() {
        if let Some(draft) = checker.resource(index, &extension) {
            drafts.push(draft);
        }
    }
    checker.unique_keys(&drafts);
    checker.unique_package_files(&drafts);
    let index = DefinedIndex::new(&drafts, &extension.externals);
    for draft in &drafts {
        if complete {
            checker.references(draft, &index);
            checker.port_feeds(draft, &index);
        }
        checker.property_references(draft);
    }
    if complete {
        checker.cycles(&drafts, &index);
        let instance_spans = checker.install_specs(&mut extension, &index);
        checker.instance_feeds(&drafts, &index, &extension, &instance_spans);
        checker.deployments(&drafts, &index, &extension, &instance_spans);
    }
    checker.unmanifested_blocks(&drafts);
    checker.unreachable_resources(&drafts, &index, &extension);
    checker.narrow_ranges(&drafts, &index);
    checker.unmapped_output_ports(&drafts, &index, &extension);
    if !checker.diagnostics.is_empty() {
        return Err(Error::many(checker.diagnostics));
    }
    let mut resources: Vec<Resource> = drafts.into_iter().map(|draft| draft.resource).collect();
    resources.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Checked {
        model: Model {
            extension,
            resources,
        },
        warnings: checker.warnings,
    })
}

/// Every key defined by a manifest or declared external, with the output ports it provides.
struct DefinedIndex {
    by_name: BTreeMap<String, Vec<(String, Ports)>>,
}

impl DefinedIndex {
    fn new(drafts: &[Draft], externals: &[External]) -> DefinedIndex {
        let mut by_name: BTreeMap<String, Vec<(String, Ports)>> = BTreeMap::new();
        for draft in drafts {
            let key = &draft.resource.key;
            by_name
                .entry(key.name.clone())
                .or_default()
                .push((key.version.clone(), draft.resource.output_ports.clone()));
        }
        for external in externals {
            for version in &external.versions {
                by_name
                    .entry(external.name.clone())
                    .or_default()
                    .push((version.clone(), external.output_ports.clone()));
            }
        }
        DefinedIndex { by_name }
    }

    fn matching<'a>(
        &'a self,
        constraint: &'a Constraint,
    ) -> impl Iterator<Item = &'a (String, Ports)> + 'a {
        self.by_name
            .get(&constraint.name)
            .into_iter()
            .flatten()
            .filter(move |(version, _)| constraint.version.matches(version))
    }

    /// Whether exactly this key is defined.
    fn defines(&self, name: &str, version: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|versions| versions.iter().any(|(v, _)| v == version))
    }
}

impl Checker<'_> {
    fn source_path(&self, file: usize) -> &Path {
        if file == EXTENSION_FILE {
            &self.raw.extension.path
        } else {
            &self.raw.resources[file].path
        }
    }

    fn source_text(&self, file: usize) -> &str {
        if file == EXTENSION_FILE {
            &self.raw.extension.text
        } else {
            &self.raw.resources[file].text
        }
    }

    fn error(
        &mut self,
        file: usize,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: String,
    ) {
        let diagnostic = Diagnostic::error(code, message)
            .file(self.source_path(file))
            .span(self.source_text(file), span)
            .help(help);
        self.diagnostics.push(diagnostic);
    }

    /// Where property `name` of a port is written in `draft`'s manifest (`port` is ignored for
    /// the config port); the key when the property is derived.
    fn property_span(
        &self,
        draft: &Draft,
        kind: definitions::PortKind,
        port: &str,
        name: &str,
    ) -> Range<usize> {
        use definitions::PortKind;
        let value = &self.raw.resources[draft.file].value;
        let found = match (&value.block, &value.resource) {
            (Some(block), _) if kind == PortKind::Config => {
                block.get_ref().config_port.get(name).map(|p| p.span())
            }
            (_, Some(resource)) => {
                let table = resource.get_ref();
                match kind {
                    PortKind::Config => table.config_port.get(name),
                    PortKind::Input => table.input_ports.get(port).and_then(|p| p.get(name)),
                    PortKind::Output => table.output_ports.get(port).and_then(|p| p.get(name)),
                }
                .map(|p| p.span())
            }
            _ => None,
        };
        found.unwrap_or_else(|| draft.key_span.clone())
    }

    /// An error for a `Problem` of `names`.
    fn problem(&mut self, file: usize, span: Range<usize>, problem: names::Problem) {
        self.error(file, problem.code, span, problem.message, problem.help);
    }

    fn warn(
        &mut self,
        file: usize,
        code: &'static str,
        span: Range<usize>,
        message: String,
        help: String,
    ) {
        let diagnostic = Diagnostic::warning(code, message)
            .file(self.source_path(file))
            .span(self.source_text(file), span)
            .help(help);
        self.warnings.push(diagnostic);
    }
}
