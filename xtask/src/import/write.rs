//! Writing the import: every target is checked first (inside the target project, no symbolic link
//! on the way, what already exists), then written through a temporary name and a rename. Files
//! that exist and differ are refused without `--force`; the first message says what to do.
//! Copies keep what the archives depend on: a symbolic link stays a link, an executable stays one.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{Content, ImportReport};
use crate::error::{Diagnostic, Error, IoContext, Result};

/// What a target will hold.
enum Bytes {
    File { data: Vec<u8>, executable: bool },
    Link(PathBuf),
}

pub fn write(
    target: &Path,
    files: &BTreeMap<PathBuf, Content>,
    force: bool,
    report: &mut ImportReport,
) -> Result<()> {
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for (relative, content) in files {
        // Every target path is built from normal components; anything else is a bug, not input.
        let safe = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe || relative.as_os_str().is_empty() {
            return Err(Error::new(Diagnostic::error(
                "unsafe-target",
                format!(
                    "the import would write `{}`, outside the target",
                    relative.display()
                ),
            )));
        }
        if let Some(link) = linked_ancestor(target, relative) {
            return Err(Error::new(
                Diagnostic::error(
                    "symlink-on-the-way",
                    format!(
                        "`{}` is a symbolic link, so writing `{}` could leave the target",
                        link.display(),
                        relative.display()
                    ),
                )
                .file(&link)
                .help("replace the link by a directory, or import into another directory with `--into`"),
            ));
        }
        let bytes = match content {
            Content::Text(text) => Bytes::File {
                data: text.clone().into_bytes(),
                executable: false,
            },
            Content::Copy(source) => read_source(source)?,
        };
        let path = target.join(relative);
        match existing(&path) {
            Some(current) if same(&current, &bytes) => {
                report.unchanged += 1;
                continue;
            }
            Some(_) if !force => {
                conflicts.push(relative.clone());
                continue;
            }
            Some(_) => report.replaced.push(relative.clone()),
            None => {}
        }
        plan.push((path, relative.clone(), bytes));
    }
    if !conflicts.is_empty() {
        let mut diagnostics = vec![
            Diagnostic::error(
                "would-overwrite",
                format!(
                    "the target project already has {} of the files the import writes, with other content",
                    conflicts.len()
                ),
            )
            .help("import into a new directory with `--into DIR`, or merge into this project with `--force`, which replaces the files listed below (nothing was written)"),
        ];
        for relative in conflicts {
            diagnostics.push(
                Diagnostic::error(
                    "would-overwrite",
                    format!(
                        "`{}` exists and differs from what the import would write",
                        relative.display()
                    ),
                )
                .file(relative),
            );
        }
        return Err(Error::many(diagnostics));
    }
    for (path, relative, bytes) in plan {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_path("create", parent)?;
        }
        let temp = path.with_file_name(format!(
            ".{}.import-{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&temp);
        match &bytes {
            Bytes::File { data, executable } => {
                std::fs::write(&temp, data).with_path("write", &temp)?;
                set_executable(&temp, *executable)?;
            }
            Bytes::Link(to) => make_link(to, &temp)?,
        }
        if path.is_dir() && !path.is_symlink() {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::new(
                Diagnostic::error(
                    "would-overwrite",
                    format!("`{}` is a directory", relative.display()),
                )
                .help("move it away, or import into another directory with `--into DIR`"),
            ));
        }
        std::fs::rename(&temp, &path).with_path("rename", &path)?;
        report.written.push(relative);
    }
    Ok(())
}

/// The first existing directory between `target` and `relative`'s file that is a symbolic link.
fn linked_ancestor(target: &Path, relative: &Path) -> Option<PathBuf> {
    let mut path = target.to_path_buf();
    let mut components: Vec<Component> = relative.components().collect();
    components.pop();
    for component in components {
        path.push(component);
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            return Some(path);
        }
    }
    None
}

fn read_source(source: &Path) -> Result<Bytes> {
    let metadata = source.symlink_metadata().with_path("read", source)?;
    if metadata.file_type().is_symlink() {
        return Ok(Bytes::Link(
            std::fs::read_link(source).with_path("read", source)?,
        ));
    }
    Ok(Bytes::File {
        data: std::fs::read(source).with_path("read", source)?,
        executable: is_executable(&metadata),
    })
}

fn existing(path: &Path) -> Option<Bytes> {
    let metadata = path.symlink_metadata().ok()?;
    if metadata.file_type().is_symlink() {
        return std::fs::read_link(path).ok().map(Bytes::Link);
    }
    if metadata.is_dir() {
        // Never equal to a file: reported as a conflict.
        return Some(Bytes::Link(PathBuf::new()));
    }
    Some(Bytes::File {
        data: std::fs::read(path).ok()?,
        executable: is_executable(&metadata),
    })
}

fn same(a: &Bytes, b: &Bytes) -> bool {
    match (a, b) {
        (
            Bytes::File { data, executable },
            Bytes::File {
                data: other,
                executable: other_executable,
            },
        ) => data == other && executable == other_executable,
        (Bytes::Link(a), Bytes::Link(b)) => a == b && !a.as_os_str().is_empty(),
        _ => false,
    }
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).with_path("read", path)?;
    let mode = metadata.permissions().mode();
    // The executable bits follow the read bits the umask left, as `cp` does.
    let mode = if executable {
        mode | ((mode & 0o444) >> 2)
    } else {
        mode & !0o111
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_path("chmod", path)
}

#[cfg(not(unix))]
fn set_executable(_: &Path, _: bool) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_link(to: &Path, at: &Path) -> Result<()> {
    std::os::unix::fs::symlink(to, at).with_path("create", at)
}

#[cfg(not(unix))]
fn make_link(to: &Path, at: &Path) -> Result<()> {
    let data =
        std::fs::read(at.parent().unwrap_or(Path::new(".")).join(to)).with_path("read", to)?;
    std::fs::write(at, data).with_path("write", at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, Content> {
        entries
            .iter()
            .map(|(path, text)| (PathBuf::from(path), Content::Text(text.to_string())))
            .collect()
    }

    #[test]
    fn a_target_outside_the_project_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("project");
        std::fs::create_dir(&target).unwrap();
        let plan = files(&[
            ("manifests/a.toml", "a"),
            ("engage-extension/files/../../../escape.txt", "x"),
        ]);
        let error = write(&target, &plan, true, &mut ImportReport::default()).unwrap_err();
        assert_eq!(error.diagnostics[0].code, "unsafe-target");
        assert!(!dir.path().join("escape.txt").exists());
        assert!(!target.join("manifests").exists(), "nothing written");
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_on_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("project");
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), target.join("blox")).unwrap();
        let plan = files(&[("blox/a__1_0/b_a.py", "")]);
        let error = write(&target, &plan, true, &mut ImportReport::default()).unwrap_err();
        assert_eq!(error.diagnostics[0].code, "symlink-on-the-way");
        assert!(
            std::fs::read_dir(dir.path().join("elsewhere"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[cfg(unix)]
    #[test]
    fn copies_keep_links_and_executable_bits_and_refusals_list_each_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            source.join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", source.join("link")).unwrap();
        let target = dir.path().join("project");
        let mut plan = BTreeMap::new();
        plan.insert(
            PathBuf::from("x/run.sh"),
            Content::Copy(source.join("run.sh")),
        );
        plan.insert(PathBuf::from("x/link"), Content::Copy(source.join("link")));
        let mut report = ImportReport::default();
        write(&target, &plan, false, &mut report).unwrap();
        let mode = std::fs::metadata(target.join("x/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0);
        assert_eq!(
            std::fs::read_link(target.join("x/link")).unwrap(),
            PathBuf::from("run.sh")
        );
        assert_eq!(report.written.len(), 2);

        // Same content again: unchanged. Other content without --force: refused, file by file.
        let mut again = ImportReport::default();
        write(&target, &plan, false, &mut again).unwrap();
        assert_eq!((again.written.len(), again.unchanged), (0, 2));
        std::fs::write(target.join("x/run.sh"), "changed").unwrap();
        let error = write(&target, &plan, false, &mut ImportReport::default()).unwrap_err();
        assert_eq!(error.diagnostics.len(), 2);
        assert!(
            error.diagnostics[0]
                .help
                .as_ref()
                .unwrap()
                .contains("--into")
        );
        let mut forced = ImportReport::default();
        write(&target, &plan, true, &mut forced).unwrap();
        assert_eq!(forced.replaced, [PathBuf::from("x/run.sh")]);
    }
}
