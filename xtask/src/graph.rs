//! `Model` -> the graph of blocks and what they need, as Graphviz DOT or Mermaid text.
//!
//! Nodes are the resources of the manifests and the `[[external]]` keys they rely on, shaped and
//! coloured by kind; edges are the `inside`, `environment` and `peers` constraints, labelled with
//! the version they ask for. Constraints on platforms (externals with a `host` port, which every
//! resource has) are not drawn as edges: they are folded into one note that groups the resources
//! by the platforms they accept. The text depends only on the model (resources sorted by key,
//! constraints in manifest order), so `docs/graph.md`'s picture can be compared with a fresh one
//! (`embed` puts it between that file's markers).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::error::{Diagnostic, Error, Result};
use crate::model::{Alternatives, Driver, Key, Kind, Model, PackageSource, Resource};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Dot,
    Mermaid,
}

#[derive(Clone, Debug)]
pub struct GraphOptions {
    pub format: Format,
    /// Keep only this resource (`NAME VERSION`, or `NAME` when one version is defined) and what it
    /// needs, transitively.
    pub focus: Option<String>,
}

/// What a node is, which decides its shape and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Block,
    /// A resource with a hand-written driver directory: a service such as the caretaker.
    Service,
    Archive,
    File,
    Pip,
    Dummy,
    /// Installed by a manager module, from something other than the kinds above.
    Package,
    External,
}

impl NodeKind {
    fn class(self) -> &'static str {
        match self {
            NodeKind::Block => "block",
            NodeKind::Service => "service",
            NodeKind::Archive => "archive",
            NodeKind::File => "file",
            NodeKind::Pip => "pip",
            NodeKind::Dummy => "dummy",
            NodeKind::Package => "package",
            NodeKind::External => "external",
        }
    }

    /// Fill and stroke colours, shared by both formats.
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            NodeKind::Block => ("#dbeafe", "#1d4ed8"),
            NodeKind::Service => ("#fde68a", "#b45309"),
            NodeKind::Archive => ("#dcfce7", "#15803d"),
            NodeKind::File => ("#f3e8ff", "#7e22ce"),
            NodeKind::Pip => ("#ffe4e6", "#be123c"),
            NodeKind::Dummy => ("#f1f5f9", "#475569"),
            NodeKind::Package => ("#ecfeff", "#0e7490"),
            NodeKind::External => ("#ffffff", "#6b7280"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    id: String,
    label: String,
    kind: NodeKind,
    /// For a resource: the platforms it accepts (`ubuntu-linux 14.04 or mac-osx >=10.5`), shown in
    /// the note instead of as edges, and the names of those platforms.
    platforms: Option<(String, BTreeSet<String>)>,
}

/// The platform note's colours, shared by both formats.
const NOTE_COLOURS: (&str, &str) = ("#e5e7eb", "#111827");

#[derive(Clone, Debug, PartialEq, Eq)]
struct Edge {
    from: usize,
    to: usize,
    field: &'static str,
    label: String,
}

struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    /// Every platform by name, with the versions Engage defines (`mac-osx 10.5 | 10.6`).
    platforms: BTreeMap<String, String>,
}

/// Renders the graph of `model` in the chosen format.
pub fn render(model: &Model, options: &GraphOptions) -> Result<String> {
    let mut graph = build(model);
    if let Some(focus) = &options.focus {
        graph = focused(graph, model, focus)?;
    }
    Ok(match options.format {
        Format::Dot => dot(&graph),
        Format::Mermaid => mermaid(&graph),
    })
}

fn kind_of(resource: &Resource) -> NodeKind {
    if resource.kind == Kind::Block {
        return NodeKind::Block;
    }
    if matches!(resource.driver, Driver::Directory(_)) {
        return NodeKind::Service;
    }
    match resource.packages.first().map(|p| &p.source) {
        Some(PackageSource::Archive { .. }) => NodeKind::Archive,
        Some(PackageSource::File { .. }) => NodeKind::File,
        Some(PackageSource::Pip(_) | PackageSource::EasyInstall(_)) => NodeKind::Pip,
        Some(PackageSource::Dummy) => NodeKind::Dummy,
        Some(PackageSource::Url { class, .. }) if class == "FilePackage" => NodeKind::File,
        Some(PackageSource::Url { .. }) => NodeKind::Archive,
        Some(PackageSource::AptGet(_) | PackageSource::MacPorts(_)) => NodeKind::Package,
        None => NodeKind::Package,
    }
}

/// A node id both formats accept: letters, digits and `_`.
fn node_id(prefix: &str, text: &str) -> String {
    let body: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{prefix}{body}")
}

fn build(model: &Model) -> Graph {
    // External keys are drawn once per name: the edge label says which versions a constraint
    // admits. Platforms are not drawn; the note lists them.
    let mut externals: Vec<_> = model.extension.externals.iter().collect();
    externals.sort_by(|a, b| a.name.cmp(&b.name));
    let mut platforms: BTreeMap<String, String> = BTreeMap::new();
    for external in &externals {
        if external.output_ports.contains_key("host") {
            platforms
                .entry(external.name.clone())
                .or_insert_with(|| format!("{} {}", external.name, external.versions.join(" | ")));
        }
    }

    let mut nodes = Vec::new();
    let mut by_key: BTreeMap<&Key, usize> = BTreeMap::new();
    for resource in &model.resources {
        by_key.insert(&resource.key, nodes.len());
        nodes.push(Node {
            id: node_id(
                "r_",
                &format!("{}__{}", resource.key.name, resource.key.version),
            ),
            label: resource.key.to_string(),
            kind: kind_of(resource),
            platforms: platforms_of(resource, &platforms),
        });
    }
    let mut by_external: BTreeMap<&str, usize> = BTreeMap::new();
    for external in externals {
        if by_external.contains_key(external.name.as_str())
            || platforms.contains_key(&external.name)
        {
            continue;
        }
        by_external.insert(&external.name, nodes.len());
        nodes.push(Node {
            id: node_id("x_", &external.name),
            label: format!("{} {}", external.name, external.versions.join(" | ")),
            kind: NodeKind::External,
            platforms: None,
        });
    }

    let mut edges = Vec::new();
    for resource in &model.resources {
        let from = by_key[&resource.key];
        for (field, alternatives) in [
            ("inside", &resource.inside),
            ("environment", &resource.environment),
            ("peers", &resource.peers),
        ] {
            let Some(alternatives) = alternatives else {
                continue;
            };
            let one_of = matches!(alternatives, Alternatives::OneOf(_));
            for constraint in alternatives.constraints() {
                if platforms.contains_key(&constraint.name) {
                    continue;
                }
                let label = if one_of {
                    format!("{field} one-of {}", constraint.version)
                } else {
                    format!("{field} {}", constraint.version)
                };
                let mut targets: BTreeSet<usize> = model
                    .resources
                    .iter()
                    .filter(|r| {
                        r.key.name == constraint.name && constraint.version.matches(&r.key.version)
                    })
                    .map(|r| by_key[&r.key])
                    .collect();
                if let Some(&external) = by_external.get(constraint.name.as_str()) {
                    targets.insert(external);
                }
                for to in targets {
                    edges.push(Edge {
                        from,
                        to,
                        field,
                        label: label.clone(),
                    });
                }
            }
        }
    }
    Graph {
        nodes,
        edges,
        platforms,
    }
}

/// The platforms `resource` accepts, as the note says it (`ubuntu-linux 14.04 or mac-osx >=10.5`),
/// and their names; `None` when it names no platform.
fn platforms_of(
    resource: &Resource,
    platforms: &BTreeMap<String, String>,
) -> Option<(String, BTreeSet<String>)> {
    let mut parts = Vec::new();
    let mut names = BTreeSet::new();
    for alternatives in [&resource.inside, &resource.environment, &resource.peers]
        .into_iter()
        .flatten()
    {
        let joiner = match alternatives {
            Alternatives::AllOf(_) => " and ",
            _ => " or ",
        };
        let accepted: Vec<String> = alternatives
            .constraints()
            .iter()
            .filter(|c| platforms.contains_key(&c.name))
            .map(|c| {
                names.insert(c.name.clone());
                format!("{} {}", c.name, c.version)
            })
            .collect();
        if !accepted.is_empty() {
            parts.push(accepted.join(joiner));
        }
    }
    (!parts.is_empty()).then(|| (parts.join("; "), names))
}

/// The note's lines: the platforms the drawn resources name, with the versions Engage defines,
/// then the resources grouped by what they accept, the largest group last as "every (other)
/// resource" when every resource drawn names a platform. Empty when none does.
fn note_lines(graph: &Graph) -> Vec<String> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut named = BTreeSet::new();
    let mut resources = 0;
    for node in &graph.nodes {
        if node.kind == NodeKind::External {
            continue;
        }
        resources += 1;
        if let Some((text, names)) = &node.platforms {
            groups.entry(text).or_default().push(&node.label);
            named.extend(names.iter().cloned());
        }
    }
    if groups.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "platforms: {}",
        named
            .iter()
            .map(|name| graph.platforms[name].as_str())
            .collect::<Vec<_>>()
            .join("; ")
    )];
    let mut groups: Vec<(&str, Vec<&str>)> = groups.into_iter().collect();
    // The largest group last (ties: the first text), so it can read "every other resource".
    let largest = (0..groups.len())
        .rev()
        .max_by_key(|&i| groups[i].1.len())
        .unwrap();
    let last = groups.remove(largest);
    let everyone = groups.iter().map(|(_, r)| r.len()).sum::<usize>() + last.1.len() == resources;
    for (text, members) in &groups {
        lines.push(format!("{}: inside {text}", members.join(", ")));
    }
    let who = match (everyone, groups.is_empty()) {
        (true, true) => "every resource".to_string(),
        (true, false) => "every other resource".to_string(),
        (false, _) => last.1.join(", "),
    };
    lines.push(format!("{who}: inside {}", last.0));
    lines
}

/// Keeps the node named by `focus` and every node it reaches.
fn focused(graph: Graph, model: &Model, focus: &str) -> Result<Graph> {
    let wanted = focus.trim();
    let start = graph
        .nodes
        .iter()
        .position(|node| node.label == wanted)
        .or_else(|| {
            let named: Vec<usize> = model
                .resources
                .iter()
                .enumerate()
                .filter(|(_, resource)| resource.key.name == wanted)
                .map(|(index, _)| index)
                .collect();
            match named.as_slice() {
                [only] => Some(*only),
                _ => None,
            }
        });
    let Some(start) = start else {
        let known: Vec<String> = model
            .resources
            .iter()
            .map(|r| format!("`{}`", r.key))
            .collect();
        return Err(Error::new(
            Diagnostic::error(
                "unknown-focus",
                format!("no resource `{wanted}` to focus on"),
            )
            .help(format!(
                "name a resource as `NAME VERSION`: {}",
                known.join(", ")
            )),
        ));
    };
    let mut kept = vec![false; graph.nodes.len()];
    let mut stack = vec![start];
    while let Some(node) = stack.pop() {
        if std::mem::replace(&mut kept[node], true) {
            continue;
        }
        stack.extend(
            graph
                .edges
                .iter()
                .filter(|e| e.from == node && !kept[e.to])
                .map(|e| e.to),
        );
    }
    let mut renumber = vec![usize::MAX; graph.nodes.len()];
    let mut nodes = Vec::new();
    for (index, node) in graph.nodes.into_iter().enumerate() {
        if kept[index] {
            renumber[index] = nodes.len();
            nodes.push(node);
        }
    }
    let edges = graph
        .edges
        .into_iter()
        .filter(|e| kept[e.from] && kept[e.to])
        .map(|e| Edge {
            from: renumber[e.from],
            to: renumber[e.to],
            ..e
        })
        .collect();
    Ok(Graph {
        nodes,
        edges,
        platforms: graph.platforms,
    })
}

fn used_kinds(graph: &Graph) -> BTreeSet<NodeKind> {
    graph.nodes.iter().map(|n| n.kind).collect()
}

fn mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n");
    for node in &graph.nodes {
        let label = node.label.replace('"', "#quot;");
        let shape = match node.kind {
            NodeKind::Block => format!("([\"{label}\"])"),
            NodeKind::Service => format!("{{{{\"{label}\"}}}}"),
            NodeKind::External => format!("[(\"{label}\")]"),
            _ => format!("[\"{label}\"]"),
        };
        writeln!(out, "    {}{shape}:::{}", node.id, node.kind.class()).unwrap();
    }
    let note = note_lines(graph);
    if !note.is_empty() {
        let text = note.join("<br/>").replace('"', "#quot;");
        writeln!(out, "    platforms>\"{text}\"]:::note").unwrap();
    }
    for edge in &graph.edges {
        let arrow = match edge.field {
            "inside" => "-.->",
            "peers" => "<==>",
            _ => "-->",
        };
        let label = edge.label.replace('"', "#quot;");
        writeln!(
            out,
            "    {} {arrow}|\"{label}\"| {}",
            graph.nodes[edge.from].id, graph.nodes[edge.to].id
        )
        .unwrap();
    }
    for kind in used_kinds(graph) {
        let (fill, stroke) = kind.colours();
        writeln!(
            out,
            "    classDef {} fill:{fill},stroke:{stroke},color:#111827",
            kind.class()
        )
        .unwrap();
    }
    if !note.is_empty() {
        let (fill, stroke) = NOTE_COLOURS;
        writeln!(
            out,
            "    classDef note fill:{fill},stroke:{stroke},color:#111827"
        )
        .unwrap();
    }
    out
}

fn dot(graph: &Graph) -> String {
    let mut out = String::from(
        "digraph datablox {\n    rankdir=LR;\n    node [fontname=\"Helvetica\", style=filled];\n    edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    for node in &graph.nodes {
        let (fill, stroke) = node.kind.colours();
        let shape = match node.kind {
            NodeKind::Block => "box, style=\"rounded,filled\"",
            NodeKind::Service => "hexagon",
            NodeKind::External => "cylinder",
            NodeKind::Dummy => "box, style=\"dashed,filled\"",
            _ => "box",
        };
        writeln!(
            out,
            "    {} [label={}, shape={shape}, fillcolor=\"{fill}\", color=\"{stroke}\", class=\"{}\"];",
            node.id,
            quote(&node.label),
            node.kind.class()
        )
        .unwrap();
    }
    let note = note_lines(graph);
    if !note.is_empty() {
        let (fill, stroke) = NOTE_COLOURS;
        // One left-justified line (`\l`) per line of the note.
        let lines: Vec<String> = note.iter().map(|line| quote(line)).collect();
        let text = lines
            .iter()
            .map(|line| format!("{}\\l", &line[1..line.len() - 1]))
            .collect::<String>();
        writeln!(
            out,
            "    platforms [label=\"{text}\", shape=note, fillcolor=\"{fill}\", color=\"{stroke}\", class=\"note\"];"
        )
        .unwrap();
    }
    for edge in &graph.edges {
        let style = match edge.field {
            "inside" => ", style=dashed",
            "peers" => ", style=bold, dir=both",
            _ => "",
        };
        writeln!(
            out,
            "    {} -> {} [label={}{style}];",
            graph.nodes[edge.from].id,
            graph.nodes[edge.to].id,
            quote(&edge.label)
        )
        .unwrap();
    }
    out.push_str("}\n");
    out
}

/// The document, relative to the repository root, that shows the repository's own graph.
pub const DOC_PATH: &str = "docs/graph.md";
const DOC_START: &str = "<!-- graph:start -->";
const DOC_END: &str = "<!-- graph:end -->";

/// `doc` with the Mermaid text `mermaid` (as `render` returns it) put between its
/// `<!-- graph:start -->` and `<!-- graph:end -->` markers, in a fenced block; `None` when `doc`
/// lacks the markers.
pub fn embed(doc: &str, mermaid: &str) -> Option<String> {
    let start = doc.find(DOC_START)?;
    let end = doc[start..].find(DOC_END)? + start + DOC_END.len();
    Some(format!(
        "{}{DOC_START}\n```mermaid\n{mermaid}```\n{DOC_END}{}",
        &doc[..start],
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::embed;

    #[test]
    fn embed_replaces_only_what_lies_between_the_markers() {
        let doc = "# Graph\n\n<!-- graph:start -->\nold\n<!-- graph:end -->\n\nafter\n";
        assert_eq!(
            embed(doc, "flowchart LR\n").unwrap(),
            "# Graph\n\n<!-- graph:start -->\n```mermaid\nflowchart LR\n```\n<!-- graph:end -->\n\nafter\n"
        );
        assert_eq!(embed("no markers\n", "flowchart LR\n"), None);
    }
}
