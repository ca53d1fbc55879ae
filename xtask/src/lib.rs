//! Datablox's build pipeline: manifests -> checked model -> plan -> archives and Engage extension.
//!
//! `main.rs` is a thin shell around the entry points defined here; the stages live in their own
//! modules, listed in reading order: parse, validate, plan, build, write.

pub mod archive;
pub mod bench;
pub mod build;
pub mod check;
pub mod deploy;
pub mod error;
pub mod exclude;
pub mod extension;
pub mod fault;
pub mod flags;
pub mod graph;
pub mod hash;
pub mod import;
pub mod inputs;
pub mod manifest;
pub mod model;
pub mod output;
pub mod plan;
pub mod progress;
pub mod release;
pub mod run;
pub mod scaffold;
pub mod sched;
pub mod stat;
pub mod state;
pub mod tree;
pub mod verify;

/// Raw deflate pieces, the incompressibility test and gunzip: the `xtask-deflate` crate.
pub use xtask_deflate as deflate;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use error::{Diagnostic, Error, Result};

/// Options of `cargo xtask dist`, gathered from the flags and the environment by `main`.
#[derive(Clone, Debug)]
pub struct DistOptions {
    /// Where the extension tree, `SHA256SUMS` and `dist-manifest.json` go (default `target/dist`).
    pub out_dir: Option<PathBuf>,
    pub jobs: usize,
    /// Read the build cache. Off (`--no-cache`), nothing from it is trusted: every source is
    /// hashed, every package built, and what is written is hashed.
    pub use_cache: bool,
    pub source_date_epoch: Option<u64>,
    /// What to do when another run holds the output directory.
    pub wait: output::Wait,
}

/// What `dist` did, and the warnings validation found.
#[derive(Debug)]
pub struct DistReport {
    pub summary: state::Summary,
    pub warnings: Vec<Diagnostic>,
    /// How long each stage took, in order, for `--timings`.
    pub timings: Vec<(&'static str, std::time::Duration)>,
    /// Whether the run took the no-op fast path: nothing changed, nothing written.
    pub fresh: bool,
    /// The build's tasks, timed (none on the fast path).
    pub tasks: build::Tasks,
}

/// Tree files staged per task (see `dist`): enough tasks to share among the threads, each long
/// enough to be worth one.
const TREE_SLICE: usize = 32;

/// parse -> validate -> plan -> build -> write, every input read through one recorder
/// (`inputs`), and the previous build's state (`state`) deciding what is reused.
pub fn dist(
    repo: &Path,
    options: &DistOptions,
    progress: &dyn progress::Progress,
) -> Result<DistReport> {
    // Taken before any input is looked at: inputs modified after it are racy next time.
    let started_ns = inputs::now_ns();
    let mut timings = Timings::start();
    let out_dir = out_dir(repo, options.out_dir.as_deref());
    let identity = state::Identity::current(repo, &out_dir, options.source_date_epoch);
    // Read before the lock: a state is replaced by a rename, so this is the state of some
    // complete run, and each of its records is checked against the disk before it is used.
    if options.use_cache
        && !output::in_progress(&out_dir)
        && let Some((summary, warnings)) = state::fresh(&out_dir, &identity, options.jobs)
    {
        timings.lap("fresh: inputs unchanged");
        return Ok(DistReport {
            summary,
            warnings,
            timings: timings.laps,
            fresh: true,
            tasks: build::Tasks::default(),
        });
    }
    timings.lap("read the state: changed, or none");
    // The previous state is decoded while the manifests are checked and the plan is made (on a
    // thread of its own when `--jobs` is above 1): they reuse nothing from it, the scan and the
    // build do.
    let read_state = || {
        if options.use_cache {
            state::State::read(&out_dir)
        } else {
            Default::default()
        }
    };
    let mut inputs = inputs::Inputs::with_previous(repo, Default::default(), 0);
    let (checked, plan, (mut previous, damaged)) = std::thread::scope(|scope| {
        let read = (options.jobs > 1).then(|| scope.spawn(read_state));
        let checked = check::load(repo, &inputs)?;
        timings.lap("parse and check manifests");
        output::check_out_dir(&out_dir)?;
        let plan = plan::make(&checked.model, repo, options.source_date_epoch, &inputs)?;
        plan::check_out_dir(&plan, &out_dir)?;
        let read = read.map_or_else(read_state, |read| {
            read.join().expect("decoding does not panic")
        });
        timings.lap("plan and generate the extension tree");
        Ok::<_, Error>((checked, plan, read))
    })?;
    inputs.reuse(std::mem::take(&mut previous.inputs), previous.started_ns);
    // The manifests' warnings, which a fresh run repeats; then the one about the state.
    let mut warnings = checked.warnings;
    let repeated = warnings.len();
    warnings.extend(damaged);
    let build_options = build::BuildOptions { jobs: options.jobs };
    // Every tree is scanned and validated before the output directory is created or locked.
    let mut scan_tasks = build::Tasks::default();
    let scanned = build::scan(&plan, build_options, &inputs, &mut scan_tasks)?;
    timings.lap("scan the sources");
    // Held until the end of the run (or until the process dies).
    let _lock = output::lock(&out_dir, options.wait, true)?;
    output::prepare(&out_dir)?;
    let staging = output::Staging::create(&out_dir)?;
    timings.lap("lock the output directory");
    // The tree files depend on the plan only: they are staged, `TREE_SLICE` at a time, as more
    // tasks of the build's pool, beside the packages.
    let slices: Vec<_> = plan.tree.chunks(TREE_SLICE).collect();
    let staged_slices: Vec<OnceLock<Result<output::StagedTree>>> =
        slices.iter().map(|_| OnceLock::new()).collect();
    let alongside = slices
        .iter()
        .zip(&staged_slices)
        .enumerate()
        .map(|(slice, (files, slot))| {
            let (staging, out_dir, previous, inputs) = (&staging, &out_dir, &previous, &inputs);
            Box::new(move || {
                let _ = slot.set(output::stage_tree(
                    files,
                    slice * TREE_SLICE,
                    staging,
                    out_dir,
                    previous,
                    inputs,
                ));
            }) as Box<dyn FnOnce() + Send>
        })
        .collect();
    let built = build::build(
        &build::Build {
            plan: &plan,
            dir: &staging.packages_dir(),
            out_dir: &out_dir,
            previous: &previous,
            inputs: &inputs,
            options: build_options,
            progress,
        },
        scanned,
        alongside,
    );
    progress.end();
    let mut built = built?;
    let mut tree = output::StagedTree::default();
    for slot in staged_slices {
        tree.append(slot.into_inner().expect("the build ran every task")?);
    }
    let mut tasks = std::mem::take(&mut built.tasks);
    tasks.append(scan_tasks);
    timings.lap("hash and build packages, stage the tree");
    // Nothing is recorded any more: the records are sorted while the output is switched in.
    let (records, outputs) = std::thread::scope(|scope| {
        let records = scope.spawn(|| inputs.finish());
        let staged = output::stage(
            &checked.model,
            &plan,
            &built,
            tree,
            &staging,
            &out_dir,
            &previous,
        )?;
        // The state last, of the output as it now is: the next run may stop at it.
        let outputs = output::recorded(&out_dir, output::commit(staged, &out_dir)?)?;
        Ok::<_, Error>((records.join().expect("sorting does not panic"), outputs))
    })?;
    let summary = state::Summary {
        resources: checked.model.resources.len(),
        packages: built.packages.len(),
        rebuilt: built.rebuilt,
        skipped: built.skipped,
        bytes: built.packages.iter().map(|p| p.size).sum(),
        source_bytes: built.source_bytes,
        out_dir: out_dir.clone(),
    };
    let next = state::State::new(
        identity,
        started_ns,
        records,
        outputs,
        summary.clone(),
        &warnings[..repeated],
    );
    next.write(&previous, &out_dir, staging.path())?;
    fault::point("cleanup")?;
    staging.close()?;
    timings.lap("write the output");
    Ok(DistReport {
        summary,
        warnings,
        timings: timings.laps,
        fresh: false,
        tasks,
    })
}

/// The output directory: `--out`, else `target/dist` in the repository.
pub fn out_dir(repo: &Path, out: Option<&Path>) -> PathBuf {
    out.map_or_else(|| repo.join("target").join("dist"), Path::to_path_buf)
}

/// Stage durations of one run: measured, never printed here.
struct Timings {
    last: std::time::Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Timings {
    fn start() -> Timings {
        Timings {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, stage: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((stage, now - self.last));
        self.last = now;
    }
}

/// The repository root: the nearest directory, from `start` up, that has `manifests/extension.toml`.
pub fn find_repo(start: &Path) -> Result<PathBuf> {
    start
        .ancestors()
        .find(|dir| {
            dir.join("manifests")
                .join(manifest::EXTENSION_MANIFEST)
                .is_file()
        })
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::new(
                Diagnostic::error(
                    "no-repository",
                    format!(
                        "no `manifests/extension.toml` in `{}` or above",
                        start.display()
                    ),
                )
                .file(start.join("manifests").join(manifest::EXTENSION_MANIFEST))
                .help("run the command inside a Datablox repository (its root has `manifests/extension.toml`)"),
            )
        })
}

/// The largest mtime a tar header's 12-byte octal field holds: 8^11 - 1 seconds (year 2242).
pub const MAX_SOURCE_DATE_EPOCH: u64 = 0o77_777_777_777;

/// `SOURCE_DATE_EPOCH` as the reproducible-builds specification defines it: ASCII decimal digits
/// only (no sign, no spaces), and at most what a tar header holds. Empty counts as unset.
pub fn parse_source_date_epoch(value: Option<&str>) -> Result<Option<u64>> {
    let text = match value {
        None | Some("") => return Ok(None),
        Some(text) => text,
    };
    let invalid = |why: &str| {
        Error::new(
            Diagnostic::error(
                "source-date-epoch",
                format!("SOURCE_DATE_EPOCH is `{}`, {why}", text.escape_debug()),
            )
            .help(format!(
                "set it to a whole number of seconds since 1970 between 0 and {MAX_SOURCE_DATE_EPOCH}, in digits only, e.g. `git log -1 --format=%ct`, or unset it"
            )),
        )
    };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "not a number of seconds (only the digits 0-9 are allowed)",
        ));
    }
    match text.parse::<u64>() {
        Ok(seconds) if seconds <= MAX_SOURCE_DATE_EPOCH => Ok(Some(seconds)),
        _ => Err(invalid("beyond the largest time a tar header holds")),
    }
}
