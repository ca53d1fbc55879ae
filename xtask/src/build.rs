//! `Plan` -> `Built`: every `sw_packages` file, built into the run's staging directory (see
//! `output`) or found intact from the previous build (`state`).
//!
//! All source trees are scanned (and validated: symlinks, FIFOs, hard links) before anything is
//! written. Archives are then built on `jobs` threads, largest first, so one big block does not
//! finish last alone; which thread builds what never changes the bytes. A resource is skipped
//! when its source digest, its settings and its output on disk are those of the previous build;
//! the recorder (`inputs`) spares rehashing files whose stat did not change. A package built again
//! whose bytes equal the file on disk is not replaced (with `--no-cache`, every package is built
//! again and compared so).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveSettings};
use crate::error::{Error, IoContext, Result};
use crate::exclude::Excludes;
use crate::fault;
use crate::hash::{self, to_hex};
use crate::inputs::Inputs;
use crate::model::{Key, Kind};
use crate::plan::{Plan, TREE};
use crate::progress::Progress;
use crate::stat::Stat;
use crate::state::State;
use crate::tree::{self, EntryKind, Tree};

pub const TOOL: &str = concat!("xtask ", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Copy, Debug)]
pub struct BuildOptions {
    pub jobs: usize,
}

/// One file of `sw_packages`, ready to be committed.
#[derive(Clone, Debug)]
pub struct BuiltPackage {
    pub key: Key,
    pub kind: Kind,
    pub file_name: String,
    /// The source digest, for packages built from a directory.
    pub source_digest: Option<String>,
    pub sha256: String,
    pub size: u64,
    /// Where the new bytes wait in the staging directory; `None` when the file on disk is intact.
    pub temp: Option<PathBuf>,
    /// The `lstat` of the file on disk when it is the one the previous build recorded.
    pub kept: Option<Stat>,
    pub settings: String,
}

#[derive(Debug)]
pub struct Built {
    pub packages: Vec<BuiltPackage>,
    pub rebuilt: usize,
    pub skipped: usize,
    pub source_bytes: u64,
    pub tasks: Tasks,
}

/// The units of parallel work, timed: each tree's scan, each archive's own work (reading, framing,
/// hashing, its last segment), each segment it handed to the pool, each slice of tree files.
/// With `--jobs 1` no task waits for another; `bench` derives the speedup bound from them.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    pub count: usize,
    pub total: Duration,
    pub longest: Duration,
    /// The longest task: a package's file name, or a segment of one.
    pub longest_name: String,
}

impl Tasks {
    pub fn add(&mut self, took: Duration, name: impl FnOnce() -> String) {
        self.count += 1;
        self.total += took;
        if took > self.longest {
            self.longest = took;
            self.longest_name = name();
        }
    }

    pub fn append(&mut self, other: Tasks) {
        let Tasks {
            count,
            total,
            longest,
            longest_name,
        } = other;
        self.count += count;
        self.total += total;
        if longest > self.longest {
            self.longest = longest;
            self.longest_name = longest_name;
        }
    }
}

impl Built {
    fn add(&mut self, outcome: Outcome) {
        if outcome.rebuilt {
            self.rebuilt += 1
        } else {
            self.skipped += 1
        }
        self.packages.push(outcome.package);
    }
}

pub fn packages_dir(out_dir: &Path) -> PathBuf {
    out_dir.join(TREE).join("sw_packages")
}

fn pool(options: BuildOptions) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .build()
        .expect("a thread pool of a valid size")
}

/// Scans and validates every tree of `plan.archives`, in order, on `jobs` threads, through
/// the recorder (which reuses the previous build's listings that still hold): done before the
/// output directory is locked or anything is written.
/// Each tree's scan is a task (`tasks`).
pub fn scan(
    plan: &Plan,
    options: BuildOptions,
    inputs: &Inputs,
    tasks: &mut Tasks,
) -> Result<Vec<Tree>> {
    let trees: Vec<(Result<Tree>, Duration)> = pool(options).install(|| {
        use rayon::prelude::*;
        plan.archives
            .par_iter()
            .map(|job| {
                let started = Instant::now();
                let tree = Excludes::for_package(&plan.repo, &job.dir, &job.exclude, inputs)
                    .and_then(|excludes| {
                        tree::scan_recorded(&job.dir, &job.top, &excludes, inputs)
                    });
                (tree, started.elapsed())
            })
            .collect()
    });
    for (job, (_, took)) in plan.archives.iter().zip(&trees) {
        tasks.add(*took, || format!("the scan of {}", job.file_name));
    }
    let mut diagnostics = Vec::new();
    let mut scanned = Vec::with_capacity(trees.len());
    for (result, _) in trees {
        match result {
            Ok(tree) => scanned.push(tree),
            Err(error) => diagnostics.extend(error.diagnostics),
        }
    }
    if !diagnostics.is_empty() {
        return Err(Error::many(diagnostics));
    }
    Ok(scanned)
}

/// What a build reads besides the source trees, and where it writes.
pub struct Build<'a> {
    pub plan: &'a Plan,
    /// The `sw_packages` of a staging directory of `out_dir`: where packages built go.
    pub dir: &'a Path,
    /// The output directory, which the caller has locked, and the state of the build that wrote
    /// it: a package there that `previous` describes intact is kept.
    pub out_dir: &'a Path,
    pub previous: &'a State,
    pub inputs: &'a Inputs,
    pub options: BuildOptions,
    pub progress: &'a dyn Progress,
}

/// Builds every package of `build.plan` (`scanned` are its trees, from `scan`). Each of
/// `alongside` runs as one more task on the same threads.
pub fn build<'a>(
    build: &Build<'a>,
    scanned: Vec<Tree>,
    alongside: Vec<Box<dyn FnOnce() + Send + 'a>>,
) -> Result<Built> {
    let Build {
        plan,
        dir,
        out_dir,
        previous,
        inputs,
        options,
        progress,
    } = *build;
    let pool = pool(options);
    fault::point("scan")?;
    // Outputs on disk are compared only through real directories: a symlink planted in place
    // of `sw_packages` (or of the tree) is never taken for the previous build's output.
    let final_dir = packages_dir(out_dir);
    let real_dir = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let final_dir = (real_dir(&out_dir.join(TREE)) && real_dir(&final_dir)).then_some(final_dir);
    let final_dir = final_dir.as_deref();
    let context = Context {
        plan,
        dir,
        final_dir,
        previous,
        inputs,
    };
    let sizes: Vec<u64> = scanned.iter().map(tree_bytes).collect();
    let source_bytes = sizes.iter().sum::<u64>()
        + plan
            .files
            .iter()
            .filter_map(|f| f.source.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>();
    progress.begin(plan.archives.len() + plan.files.len(), source_bytes);

    // Largest first: the order in which work starts, never the order of results.
    let mut order: Vec<usize> = (0..scanned.len()).collect();
    order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
    let next = AtomicUsize::new(0);
    let tasks = Mutex::new(Tasks::default());
    let results: Vec<Mutex<Option<Result<Outcome>>>> =
        (0..scanned.len()).map(|_| Mutex::new(None)).collect();
    // Each tree is freed once its package is built, while the stat records of the next ones
    // accumulate: the two are never all held at once (memory).
    let scanned: Vec<Mutex<Option<Tree>>> = scanned
        .into_iter()
        .map(|tree| Mutex::new(Some(tree)))
        .collect();
    pool.scope(|scope| {
        for task in alongside {
            let tasks = &tasks;
            scope.spawn(move |_| {
                let started = Instant::now();
                task();
                let took = started.elapsed();
                let mut tasks = tasks.lock().expect("no thread panics holding it");
                tasks.add(took, || "tree files".into());
            });
        }
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|_| {
                loop {
                    let position = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = order.get(position) else {
                        break;
                    };
                    let job = &plan.archives[index];
                    progress.working(&job.file_name);
                    let tree = scanned[index]
                        .lock()
                        .expect("no thread panics holding it")
                        .take()
                        .expect("each tree is built once");
                    let segments_before = archive::segment_time_on_this_thread();
                    let started = Instant::now();
                    let result = build_archive(&context, job, &tree);
                    let own = started
                        .elapsed()
                        .saturating_sub(archive::segment_time_on_this_thread() - segments_before);
                    drop(tree);
                    {
                        let mut tasks = tasks.lock().expect("no thread panics holding it");
                        tasks.add(own, || job.file_name.clone());
                        for &took in result.iter().flat_map(|o| &o.segment_tasks) {
                            tasks.add(took, || format!("a segment of {}", job.file_name));
                        }
                    }
                    progress.advance(sizes[index]);
                    *results[index].lock().expect("no thread panics holding it") = Some(result);
                }
            });
        }
    });

    let mut built = Built {
        packages: Vec::with_capacity(plan.archives.len() + plan.files.len()),
        rebuilt: 0,
        skipped: 0,
        source_bytes,
        tasks: tasks.into_inner().expect("no thread panics holding it"),
    };
    let mut diagnostics = Vec::new();
    for slot in results {
        match slot
            .into_inner()
            .expect("no thread panics holding it")
            .expect("every job ran")
        {
            Ok(outcome) => built.add(outcome),
            Err(error) => diagnostics.extend(error.diagnostics),
        }
    }
    for job in &plan.files {
        match copy_file(&context, job) {
            Ok(outcome) => {
                progress.advance(outcome.package.size);
                built.add(outcome);
            }
            Err(error) => diagnostics.extend(error.diagnostics),
        }
    }
    if !diagnostics.is_empty() {
        return Err(Error::many(diagnostics));
    }
    built.packages.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(built)
}

/// What every package's build shares.
struct Context<'a> {
    plan: &'a Plan,
    /// The staging directory's `sw_packages`.
    dir: &'a Path,
    /// The output's `sw_packages`, when it is a real directory.
    final_dir: Option<&'a Path>,
    previous: &'a State,
    inputs: &'a Inputs,
}

impl Context<'_> {
    /// The previous build's record of the package `file_name`, when the file on disk is the one
    /// it describes (same `lstat`) and was made with `settings`.
    fn intact(&self, file_name: &str, settings: &str) -> Option<&crate::state::Output> {
        let path = self.final_dir?.join(file_name);
        let metadata = std::fs::symlink_metadata(&path).ok()?;
        let output = self.previous.output(
            &format!("{TREE}/sw_packages/{file_name}"),
            &Stat::from_metadata(&metadata),
        )?;
        (metadata.is_file() && output.package.as_ref()?.settings == settings).then_some(output)
    }
}

fn tree_bytes(tree: &Tree) -> u64 {
    tree.entries
        .iter()
        .map(|entry| match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}

/// What an archive's bytes depend on besides its sources: the reuse key's other half. The archive
/// format version, not the tool's, so that a change to the bytes is never mistaken for no change.
fn settings_text(plan: &Plan, top: &str) -> String {
    format!(
        "archive format {}; {}; level {}; mtime {}; top {top}",
        archive::ARCHIVE_FORMAT,
        archive::DEFLATE_BACKEND,
        plan.settings.level,
        plan.settings.mtime()
    )
}

/// One package: what it is, and whether it was rebuilt.
struct Outcome {
    package: BuiltPackage,
    rebuilt: bool,
    /// The times of the segments the archive handed to the pool.
    segment_tasks: Vec<Duration>,
}

/// Whether the regular file at `path` holds exactly the `size` bytes with this SHA-256: read and
/// hashed, nothing trusted.
fn same_file(path: Option<&Path>, size: u64, sha256: &str) -> Result<bool> {
    let Some(path) = path else {
        return Ok(false);
    };
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() && metadata.len() == size => {
            Ok(to_hex(&hash::hash_file(path)?) == sha256)
        }
        _ => Ok(false),
    }
}

fn build_archive(context: &Context, job: &crate::plan::ArchiveJob, tree: &Tree) -> Result<Outcome> {
    let plan = context.plan;
    let settings = settings_text(plan, &job.top);
    let final_path = context.final_dir.map(|dir| dir.join(&job.file_name));
    let previous = context.intact(&job.file_name, &settings);
    let package = |digest: String, sha256: String, size: u64, temp: Option<PathBuf>| BuiltPackage {
        key: job.key.clone(),
        kind: job.kind,
        file_name: job.file_name.clone(),
        source_digest: Some(digest),
        sha256,
        size,
        temp,
        kept: None,
        settings: settings.clone(),
    };

    // With a previous output to compare against, find the digest by hashing only what the
    // previous build's records do not know; without one, the build below hashes while it
    // compresses.
    if let Some(previous) = previous
        && let Some(recorded) = &previous.package
    {
        let mut hashes = Vec::with_capacity(tree.entries.len());
        // One path buffer for the tree's files (thousands of paths, from the malloc arena that
        // the build's threads share).
        let mut source = PathBuf::new();
        for entry in &tree.entries {
            let hash = match entry.kind {
                EntryKind::File { .. } => {
                    tree.source_into(entry, &mut source);
                    let hash = context.inputs.hash_file(&source, &entry.stat, || {
                        let hash = hash::hash_file(&source)?;
                        fault::point("hash")?;
                        Ok::<_, Error>(hash)
                    })?;
                    Some(hash)
                }
                _ => None,
            };
            hashes.push(hash);
        }
        let digest = to_hex(&hash::tree_digest(tree, &hashes));
        if digest == recorded.source_digest {
            return Ok(Outcome {
                package: BuiltPackage {
                    kept: Some(previous.stat),
                    ..package(digest, previous.sha256.clone(), previous.stat.size, None)
                },
                rebuilt: false,
                segment_tasks: Vec::new(),
            });
        }
    }

    let temp = context.dir.join(&job.file_name);
    let file = File::create_new(&temp).with_path("create", &temp)?;
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(256 * 1024, file),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let report = archive::write_tgz(
        tree,
        &ArchiveSettings {
            mtime: plan.settings.mtime(),
            level: plan.settings.level,
        },
        &mut writer,
    )?;
    writer.inner.flush().with_path("write", &temp)?;
    // No fsync (see `output`): the state's output records catch a short file.
    drop(
        writer
            .inner
            .into_inner()
            .map_err(|e| Error::io("write", &temp, e.into_error()))?,
    );
    for (entry, hash) in tree.entries.iter().zip(&report.file_hashes) {
        if let Some(hash) = hash {
            context
                .inputs
                .saw_file(&tree.source(entry), &entry.stat, hash);
        }
    }
    let sha256 = to_hex(&writer.hasher.finalize().into());
    fault::point("archive")?;
    // Built again but the same bytes (no state, or one that did not describe the file):
    // the file on disk stays, so nothing is rewritten.
    let unchanged = same_file(final_path.as_deref(), writer.bytes, &sha256)?;
    if unchanged {
        std::fs::remove_file(&temp).with_path("remove", &temp)?;
    }
    Ok(Outcome {
        package: package(
            to_hex(&report.digest),
            sha256,
            writer.bytes,
            (!unchanged).then(|| temp.clone()),
        ),
        rebuilt: !unchanged,
        segment_tasks: report.segment_tasks,
    })
}

fn copy_file(context: &Context, job: &crate::plan::FileJob) -> Result<Outcome> {
    let settings = "copy".to_string();
    let final_path = context.final_dir.map(|dir| dir.join(&job.file_name));
    let metadata = std::fs::metadata(&job.source).with_path("read", &job.source)?;
    let stat = Stat::from_metadata(&metadata);
    let hash = context
        .inputs
        .hash_file(&job.source, &stat, || hash::hash_file(&job.source))?;
    let digest = to_hex(&hash);
    let package = |temp, kept| BuiltPackage {
        key: job.key.clone(),
        kind: Kind::Resource,
        file_name: job.file_name.clone(),
        source_digest: None,
        sha256: digest.clone(),
        size: stat.size,
        temp,
        kept,
        settings: settings.clone(),
    };
    let intact = context
        .intact(&job.file_name, &settings)
        .filter(|previous| previous.sha256 == digest)
        .map(|previous| previous.stat);
    if intact.is_some() || same_file(final_path.as_deref(), stat.size, &digest)? {
        return Ok(Outcome {
            package: package(None, intact),
            rebuilt: false,
            segment_tasks: Vec::new(),
        });
    }
    let temp = context.dir.join(&job.file_name);
    let mut source = File::open(&job.source).with_path("read", &job.source)?;
    let mut target = File::create_new(&temp).with_path("create", &temp)?;
    std::io::copy(&mut source, &mut target).with_path("copy", &job.source)?;
    drop(target);
    fault::point("copy")?;
    // The copy keeps the source's permission bits; the package must not depend on them.
    set_mode(&temp)?;
    if hash::hash_file(&temp)? != hash {
        return Err(Error::io(
            "copy",
            &job.source,
            std::io::Error::other("the file changed while it was copied; run again"),
        ));
    }
    Ok(Outcome {
        package: package(Some(temp), None),
        rebuilt: true,
        segment_tasks: Vec::new(),
    })
}

#[cfg(unix)]
fn set_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_path("set permissions of", path)
}

#[cfg(not(unix))]
fn set_mode(_path: &Path) -> Result<()> {
    Ok(())
}

/// Hashes and counts what goes through it, so an archive is never read back to be checksummed.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        fault::point("compress").map_err(|_| std::io::Error::other("failure injected"))?;
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
