//! Paths of the repository that manifests name: they stay inside the repository (also through
//! symbolic links) and exist; a block's directory is named as the block driver installs it and
//! holds its block module.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use super::Checker;
use crate::model::mangle;

/// A repository-relative path as the model keeps it: without `.` components, so that `./blox/x`,
/// `blox/./x/` and `blox/x` are one path.
pub(super) fn normalise(text: &str) -> PathBuf {
    Path::new(text)
        .components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect()
}

impl Checker<'_> {
    /// Resolves a repository-relative path: it must stay inside the repository, also through
    /// symbolic links, and exist.
    pub(super) fn repo_path(
        &mut self,
        file: usize,
        text: &str,
        span: Range<usize>,
        what: &str,
    ) -> Option<PathBuf> {
        let relative = Path::new(text);
        let lexically_inside = !text.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !lexically_inside {
            self.error(
                file,
                "path-outside-repo",
                span,
                format!("{what} `{text}` lies outside the repository"),
                "use a path relative to the repository root, without `..`".into(),
            );
            return None;
        }
        if normalise(text).as_os_str().is_empty() {
            self.error(
                file,
                "path-is-repo",
                span,
                format!("{what} `{text}` is the repository itself"),
                "name a directory or file below the repository root".into(),
            );
            return None;
        }
        let full = self.repo.join(relative);
        // Only a symbolic link on the way can lead out of the repository, so the path is
        // resolved (one system call per component of the whole path) only when one is found;
        // a plain path costs one `lstat` per component below the repository.
        let mut prefix = self.repo.to_path_buf();
        let mut through_link = false;
        for component in relative.components() {
            prefix.push(component);
            match self.inputs.lstat(&prefix) {
                Ok(metadata) => through_link |= metadata.file_type().is_symlink(),
                Err(_) => {
                    self.error(
                        file,
                        "path-missing",
                        span,
                        format!("{what} `{text}` does not exist"),
                        format!("create `{text}`, or fix the path"),
                    );
                    return None;
                }
            }
        }
        if through_link {
            let real = self.inputs.canonicalize(&full);
            let repo = self.inputs.canonicalize(self.repo);
            let (Ok(real), Ok(repo)) = (real, repo) else {
                self.error(
                    file,
                    "path-missing",
                    span,
                    format!("{what} `{text}` is a symbolic link to nothing"),
                    format!("fix the link `{text}`"),
                );
                return None;
            };
            if !real.starts_with(&repo) {
                self.error(
                    file,
                    "path-outside-repo",
                    span,
                    format!(
                        "{what} `{text}` resolves to `{}`, outside the repository",
                        real.display()
                    ),
                    "keep sources inside the repository; replace the symbolic link by the files"
                        .into(),
                );
                return None;
            }
        }
        Some(full)
    }

    /// Whether a source directory stays clear of `target/`, where builds write (`dist`'s default
    /// output is `target/dist`): a source holding it would pack its own output, growing on every
    /// run, and a source inside it is build output. Reports the problem when it does not.
    pub(super) fn outside_build_output(
        &mut self,
        file: usize,
        text: &str,
        span: Range<usize>,
        what: &str,
    ) -> bool {
        let relative = normalise(text);
        let target = Path::new("target");
        if !relative.starts_with(target) && !target.starts_with(&relative) {
            return true;
        }
        let relation = if relative == target {
            "is"
        } else if relative.starts_with(target) {
            "lies inside"
        } else {
            "contains"
        };
        self.error(
            file,
            "source-in-build-output",
            span,
            format!(
                "{what} `{text}` {relation} `target/`, where `cargo xtask dist` writes its output"
            ),
            "keep sources out of `target/`; name a directory of the sources instead".into(),
        );
        false
    }

    /// A block's source directory: it exists inside the repository, holds `__init__.py` and the
    /// block module, and is named `<module>__<version>`, the directory the block driver installs.
    pub(super) fn block_sources(
        &mut self,
        file: usize,
        source_text: &str,
        source_span: Range<usize>,
        display: &str,
        module: &str,
    ) {
        let dir_name = normalise(source_text)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(dir) = self.repo_path(file, source_text, source_span.clone(), "block directory")
            && self.outside_build_output(file, source_text, source_span.clone(), "block directory")
        {
            let block_module = format!("b_{}.py", mangle(display));
            for required in ["__init__.py", block_module.as_str()] {
                if !self.inputs.is_file(&dir.join(required)) {
                    self.error(
                        file,
                        "block-module",
                        source_span.clone(),
                        format!("block directory `{source_text}` has no `{required}`"),
                        format!("create `{source_text}/{required}`; the block class `{}` lives in `{block_module}`", mangle(display)),
                    );
                }
            }
        }
        if dir_name.as_deref() != Some(module) {
            self.error(
                file,
                "block-directory",
                source_span,
                format!("block directory `{source_text}` must be named `{module}`, the name the block driver installs"),
                format!("rename the directory to `{module}`"),
            );
        }
    }
}
