//! Dependency cycles over `inside` and `environment` (`peers` may be mutual): Engage installs
//! what a resource needs before the resource, which a cycle makes impossible.

use std::collections::{BTreeMap, BTreeSet};

use super::{Checker, DefinedIndex, Draft};
use crate::model::Key;

impl Checker<'_> {
    pub(super) fn cycles(&mut self, drafts: &[Draft], index: &DefinedIndex) {
        let keys: BTreeMap<&Key, usize> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (&d.resource.key, i))
            .collect();
        let edges: Vec<Vec<usize>> = drafts
            .iter()
            .map(|draft| {
                let mut targets = BTreeSet::new();
                for group in draft.groups.iter().filter(|g| g.field != "peers") {
                    for located in &group.constraints {
                        for (version, _) in index.matching(&located.constraint) {
                            let key = Key {
                                name: located.constraint.name.clone(),
                                version: version.clone(),
                            };
                            if let Some(&target) = keys.get(&key) {
                                targets.insert(target);
                            }
                        }
                    }
                }
                targets.into_iter().collect()
            })
            .collect();
        // Iterative depth-first search; each cycle is reported once, at its first resource in key order.
        let mut state = vec![0u8; drafts.len()]; // 0 new, 1 on the stack, 2 done
        let order: Vec<usize> = keys.values().copied().collect();
        for &start in &order {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&target) = edges[node].get(*next) {
                    *next += 1;
                    match state[target] {
                        0 => {
                            state[target] = 1;
                            stack.push((target, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                            let path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| drafts[*n].resource.key.to_string())
                                .chain(std::iter::once(drafts[target].resource.key.to_string()))
                                .collect();
                            let draft = &drafts[target];
                            let message = format!("dependency cycle: {}", path.join(" -> "));
                            self.error(draft.file, "dependency-cycle", draft.key_span.clone(), message, "break the cycle: a resource cannot need itself, directly or through others (`peers` may be mutual)".into());
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    stack.pop();
                }
            }
        }
    }
}
