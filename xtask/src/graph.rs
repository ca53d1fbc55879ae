//! `Model` -> the resource dependency graph as Graphviz DOT or Mermaid text.
//!
//! Nodes are the resources of the manifests and the `[[external]]` keys they rely on, shaped and
//! coloured by kind; edges are the `inside`, `environment` and `peers` constraints, labelled with
//! the version they ask for. The text depends only on the model (resources sorted by key,
//! constraints in manifest order), so the README's picture can be compared with a fresh one.

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
    Platform,
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
            NodeKind::Platform => "platform",
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
            NodeKind::Platform => ("#e5e7eb", "#111827"),
            NodeKind::External => ("#ffffff", "#6b7280"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    id: String,
    label: String,
    kind: NodeKind,
}

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
        });
    }
    // External keys are drawn once per name: the edge label says which versions a constraint admits.
    let mut externals: Vec<_> = model.extension.externals.iter().collect();
    externals.sort_by(|a, b| a.name.cmp(&b.name));
    let mut by_external: BTreeMap<&str, usize> = BTreeMap::new();
    for external in externals {
        if by_external.contains_key(external.name.as_str()) {
            continue;
        }
        by_external.insert(&external.name, nodes.len());
        let kind = if external.output_ports.contains_key("host") {
            NodeKind::Platform
        } else {
            NodeKind::External
        };
        nodes.push(Node {
            id: node_id("x_", &external.name),
            label: format!("{} {}", external.name, external.versions.join(" | ")),
            kind,
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
    Graph { nodes, edges }
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
    Ok(Graph { nodes, edges })
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
            NodeKind::Platform => format!("[/\"{label}\"\\]"),
            NodeKind::External => format!("[(\"{label}\")]"),
            _ => format!("[\"{label}\"]"),
        };
        writeln!(out, "    {}{shape}:::{}", node.id, node.kind.class()).unwrap();
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
            NodeKind::Platform => "trapezium",
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
