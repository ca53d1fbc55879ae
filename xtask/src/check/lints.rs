//! Warnings: legal but suspicious things. A resource nothing installs, a version range that only
//! one defined version satisfies, an output port no mapping reads, a block directory without a
//! manifest. Lints never fail the check.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use super::{Checker, DefinedIndex, Draft, EXTENSION_FILE};
use crate::error::Diagnostic;
use crate::inputs::ListedKind;
use crate::model::{Constraint, Extension, Key, Kind, PackageSource, VersionReq};

impl Checker<'_> {
    /// A resource that nothing installs is legal but suspicious. Blocks are the roots (the
    /// caretaker deploys them on demand), and so are the keys of the install specs; everything
    /// else must be reached from them through `inside`, `environment` or `peers`.
    pub(super) fn unreachable_resources(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
    ) {
        let position: BTreeMap<&Key, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.resource.key, i))
            .collect();
        let mut reached = vec![false; drafts.len()];
        let mut stack: Vec<usize> = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if draft.resource.kind == Kind::Block {
                stack.push(i);
            }
        }
        for instance in extension
            .install_specs
            .iter()
            .flat_map(|spec| &spec.instances)
        {
            stack.extend(position.get(&instance.key).copied());
        }
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut reached[node], true) {
                continue;
            }
            for located in drafts[node].groups.iter().flat_map(|g| &g.constraints) {
                for (version, _) in index.matching(&located.constraint) {
                    let key = Key {
                        name: located.constraint.name.clone(),
                        version: version.clone(),
                    };
                    stack.extend(
                        position
                            .get(&key)
                            .copied()
                            .filter(|&target| !reached[target]),
                    );
                }
            }
        }
        for (draft, reached) in drafts.iter().zip(reached) {
            if !reached {
                let key = &draft.resource.key;
                let message = format!(
                    "no block, install spec or other resource needs `{key}`, so it is never installed"
                );
                let help = format!(
                    "require it from a block (`requires = [\"{} {}\"]`), add it to an install spec, or remove the manifest",
                    key.name, key.version
                );
                self.warn(
                    draft.file,
                    "unreachable-resource",
                    draft.key_span.clone(),
                    message,
                    help,
                );
            }
        }
    }

    /// A range that only one defined version satisfies reads as "any of these", but pins one.
    pub(super) fn narrow_ranges(&mut self, drafts: &[Draft], index: &DefinedIndex) {
        let mut written: Vec<(usize, Constraint, Range<usize>)> = Vec::new();
        for draft in drafts {
            for located in draft.groups.iter().flat_map(|g| &g.constraints) {
                // Constraints derived from extension.toml or the block rules point at the name; they
                // are checked once, where they are written.
                if located.span != draft.key_span {
                    written.push((
                        located.file,
                        located.constraint.clone(),
                        located.span.clone(),
                    ));
                }
            }
        }
        for located in &self.default_inside {
            written.push((
                EXTENSION_FILE,
                located.constraint.clone(),
                located.span.clone(),
            ));
        }
        for (file, constraint, span) in written {
            if !matches!(constraint.version, VersionReq::Range(_)) {
                continue;
            }
            let versions: BTreeSet<&str> = index
                .matching(&constraint)
                .map(|(version, _)| version.as_str())
                .collect();
            if let [only] = versions.into_iter().collect::<Vec<_>>().as_slice() {
                let message = format!(
                    "version range `{}` of `{}` admits only one defined version, `{only}`",
                    constraint.version, constraint.name
                );
                let help = format!(
                    "write the exact version `{only}`, or define the other versions the range is meant to admit"
                );
                self.warn(file, "narrow-range", span, message, help);
            }
        }
    }

    /// An output port that no port mapping reads is dead weight, or a mapping was forgotten.
    /// The block port `block_info` is read by the generic block driver, not through a mapping.
    pub(super) fn unmapped_output_ports(
        &mut self,
        drafts: &[Draft],
        index: &DefinedIndex,
        extension: &Extension,
    ) {
        let mut mapped: BTreeSet<(Key, String)> = BTreeSet::new();
        for located in drafts
            .iter()
            .flat_map(|d| &d.groups)
            .flat_map(|g| &g.constraints)
        {
            for (version, _) in index.matching(&located.constraint) {
                for theirs in located.constraint.port_mapping.values() {
                    let key = Key {
                        name: located.constraint.name.clone(),
                        version: version.clone(),
                    };
                    mapped.insert((key, theirs.clone()));
                }
            }
        }
        for instance in extension
            .install_specs
            .iter()
            .flat_map(|spec| &spec.instances)
        {
            let references = instance
                .inside
                .iter()
                .chain(&instance.environment)
                .chain(&instance.peers);
            for reference in references {
                for theirs in reference.port_mapping.values() {
                    mapped.insert((reference.key.clone(), theirs.clone()));
                }
            }
        }
        for draft in drafts.iter().filter(|d| d.resource.kind != Kind::Block) {
            for port in draft.resource.output_ports.keys() {
                if !mapped.contains(&(draft.resource.key.clone(), port.clone())) {
                    let span = self
                        .output_port_span(draft.file, port)
                        .unwrap_or_else(|| draft.key_span.clone());
                    let message = format!(
                        "output port `{port}` of `{}` is mapped by no other resource",
                        draft.resource.key
                    );
                    let help = format!(
                        "map it where it is needed (`port-mapping = {{ <input port> = \"{port}\" }}`), or remove the port"
                    );
                    self.warn(draft.file, "unmapped-port", span, message, help);
                }
            }
        }
    }

    /// The span of `[resource.output-ports.<port>]` (or of the first property of the port).
    pub(super) fn output_port_span(&self, file: usize, port: &str) -> Option<Range<usize>> {
        let table = self.raw.resources[file].value.resource.as_ref()?.get_ref();
        let first = table.output_ports.get(port)?.values().next()?;
        let text = self.source_text(file);
        let header = format!("[resource.output-ports.{port}]");
        Some(
            text.find(&header)
                .map_or(first.span(), |start| start..start + header.len()),
        )
    }

    /// A directory under `blox/` that no block manifest packages is legal but suspicious.
    pub(super) fn unmanifested_blocks(&mut self, drafts: &[Draft]) {
        let blox = self.repo.join("blox");
        let Ok(entries) = self.inputs.read_dir(&blox) else {
            return;
        };
        let used: BTreeSet<PathBuf> = drafts
            .iter()
            .flat_map(|d| d.resource.packages.iter())
            .filter_map(|p| match &p.source {
                PackageSource::Archive { dir, .. } => Some(dir.clone()),
                _ => None,
            })
            .collect();
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|(_, kind)| *kind == ListedKind::Dir)
            .filter_map(|(path, _)| Some(path.file_name()?.to_string_lossy().into_owned()))
            .filter(|name| !name.starts_with('.') && name != "__pycache__")
            .collect();
        names.sort();
        for name in names {
            if !used.contains(&PathBuf::from(format!("blox/{name}"))) {
                self.warnings.push(
                    Diagnostic::warning("block-without-manifest", format!("block directory `blox/{name}` has no manifest"))
                        .file(format!("blox/{name}"))
                        .help("add a manifest under manifests/ (`cargo xtask new` writes one), or remove the directory"),
                );
            }
        }
    }
}
