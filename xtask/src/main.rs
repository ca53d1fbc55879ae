//! `cargo xtask`: reads the flags, calls the library, reports errors, chooses the exit code
//! (0 success, 1 bad input or a failed `verify`, 2 bad usage, 3 output directory locked by
//! another run with `--no-wait`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser};
use xtask::error::{Error, Severity};
use xtask::flags::{Command, GraphFormat, Xtask};
use xtask::progress::{Bar, Progress, Silent};

fn main() -> ExitCode {
    tune_malloc();
    let flags = match Xtask::try_parse() {
        Ok(flags) => flags,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(command) = flags.command else {
        let _ = Xtask::command().print_help();
        return ExitCode::SUCCESS;
    };
    match run(command) {
        Ok(code) => code,
        Err(error) => {
            eprint!("{error}");
            let locked = error.diagnostics.iter().any(|d| d.code == "output-locked");
            ExitCode::from(if locked { 3 } else { 1 })
        }
    }
}

/// Said once, on stderr, when a run has to wait for another (as cargo says it).
fn say_waiting(out_dir: &std::path::Path) {
    eprintln!(
        "    Blocking waiting for another `cargo xtask dist` to finish with `{}`",
        out_dir.display()
    );
}

fn run(command: Command) -> Result<ExitCode, Error> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::io("read", std::path::Path::new("."), e))?;
    match command {
        Command::Import(flags) => return import(&cwd, flags),
        Command::Release(flags) => return xtask::release::cli::release(&cwd, flags),
        Command::VerifyRelease(flags) => return xtask::release::cli::verify_release(&cwd, flags),
        _ => {}
    }
    let repo = xtask::find_repo(&cwd)?;
    match command {
        Command::Dist(flags) => {
            let started = Instant::now();
            let options = xtask::DistOptions {
                out_dir: flags.out.map(|out| cwd.join(out)),
                jobs: flags.jobs.map_or_else(
                    || std::thread::available_parallelism().map_or(1, |n| n.get()),
                    |n| n as usize,
                ),
                use_cache: !flags.no_cache,
                source_date_epoch: xtask::parse_source_date_epoch(
                    std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
                )?,
                wait: if flags.no_wait {
                    xtask::output::Wait::Refuse
                } else {
                    xtask::output::Wait::Block(say_waiting)
                },
            };
            let interactive = !flags.json && std::io::stderr().is_terminal();
            let progress: Box<dyn Progress> = if interactive {
                Box::new(Bar::new())
            } else {
                Box::new(Silent)
            };
            let report = xtask::dist(&repo, &options, progress.as_ref())?;
            for warning in &report.warnings {
                eprint!("{warning}");
            }
            if flags.timings {
                for (stage, duration) in &report.timings {
                    eprintln!("{:>10.1} ms  {stage}", duration.as_secs_f64() * 1000.0);
                }
            }
            let summary = &report.summary;
            let seconds = started.elapsed().as_secs_f64();
            if flags.json {
                let mut value = serde_json::to_value(summary).expect("the summary serializes");
                value["seconds"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
                value["fresh"] = serde_json::json!(report.fresh);
                println!("{value}");
            } else {
                eprintln!(
                    "    Finished {} resources, {} packages ({} built, {} unchanged), {} in {:.2}s -> {}",
                    summary.resources,
                    summary.packages,
                    summary.rebuilt,
                    summary.skipped,
                    human_bytes(summary.bytes),
                    seconds,
                    summary
                        .out_dir
                        .strip_prefix(&cwd)
                        .unwrap_or(&summary.out_dir)
                        .display(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy(flags) => {
            let options = xtask::deploy::DeployOptions {
                dist: xtask::DistOptions {
                    out_dir: flags.dist.map(|out| cwd.join(out)),
                    jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
                    use_cache: true,
                    source_date_epoch: xtask::parse_source_date_epoch(
                        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
                    )?,
                    wait: xtask::output::Wait::Block(say_waiting),
                },
                target: match (flags.home, flags.topology) {
                    (Some(home), _) => xtask::deploy::Target::Home {
                        home: cwd.join(home),
                        resources: flags.resources,
                    },
                    (None, Some(topology)) => xtask::deploy::Target::Nodes {
                        topology: cwd.join(topology),
                        nodes: flags.nodes.unwrap_or_default(),
                        out: match (flags.homes_dir, flags.bundle, flags.ansible) {
                            (Some(dir), _, _) => {
                                Some(xtask::deploy::NodesOut::HomesDir(cwd.join(dir)))
                            }
                            (None, Some(dir), _) => {
                                Some(xtask::deploy::NodesOut::Bundle(cwd.join(dir)))
                            }
                            (None, None, Some(dir)) => {
                                Some(xtask::deploy::NodesOut::Ansible(cwd.join(dir)))
                            }
                            (None, None, None) if flags.dry_run => None,
                            (None, None, None) => {
                                return Ok(usage_error(
                                    "deploy --topology needs --homes-dir DIR, --bundle DIR or --ansible DIR (or --dry-run for the plan only)",
                                ));
                            }
                        },
                    },
                    (None, None) => unreachable!("clap requires --home or --topology"),
                },
                release: flags
                    .release
                    .map(|archive| (cwd.join(archive), flags.key.map(|key| cwd.join(key)))),
                find_links: flags.find_links.map(|dir| cwd.join(dir)),
                platform: flags.platform,
                port: flags.port,
                listen: flags.listen,
                keep: flags.keep,
                dry_run: flags.dry_run,
                json: flags.json,
            };
            let deployed = xtask::deploy::deploy(&repo, &options, &Silent)?;
            if let Some(dist) = &deployed.dist {
                for warning in &dist.warnings {
                    eprint!("{warning}");
                }
                let summary = &dist.summary;
                eprintln!(
                    "       Built {} packages ({} rebuilt, {} unchanged) -> {}",
                    summary.packages,
                    summary.rebuilt,
                    summary.skipped,
                    summary.out_dir.display()
                );
            }
            use std::io::Write;
            let _ = std::io::stdout().write_all(&deployed.stdout);
            let _ = std::io::stderr().write_all(&deployed.stderr);
            // The deployer's own exit code: 0 done, 1 refused or failed, 2 bad usage.
            Ok(ExitCode::from(
                u8::try_from(deployed.exit_code).unwrap_or(1),
            ))
        }
        Command::Run(flags) => {
            let options = xtask::run::RunOptions {
                dist: xtask::DistOptions {
                    out_dir: flags.dist.map(|out| cwd.join(out)),
                    jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
                    use_cache: true,
                    source_date_epoch: xtask::parse_source_date_epoch(
                        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
                    )?,
                    wait: xtask::output::Wait::Block(say_waiting),
                },
                topology: cwd.join(flags.topology),
                nodes: flags.nodes,
                homes_dir: flags
                    .homes_dir
                    .map_or_else(|| repo.join("target").join("run"), |dir| cwd.join(dir)),
                timeout: flags.timeout,
                json: flags.json,
            };
            let (report, mut command) = xtask::run::prepare(&repo, &options, &Silent)?;
            for warning in &report.warnings {
                eprint!("{warning}");
            }
            let summary = &report.summary;
            eprintln!(
                "       Built {} packages ({} rebuilt, {} unchanged) -> {}",
                summary.packages,
                summary.rebuilt,
                summary.skipped,
                summary.out_dir.display()
            );
            // The deployer takes this process over: Ctrl-C reaches it alone, and it stops the
            // caretakers it started before it exits with the master's code.
            use std::os::unix::process::CommandExt;
            let error = command.exec();
            Err(Error::new(
                xtask::error::Diagnostic::error(
                    "python3",
                    format!("cannot run the node deployer: {error}"),
                )
                .help("the deployer needs `python3` (3.6 or newer) on PATH"),
            ))
        }
        Command::Check(flags) => {
            let diagnostics = match xtask::check::load(&repo, &xtask::inputs::Inputs::new()) {
                Ok(checked) => checked.warnings,
                Err(error) => error.diagnostics,
            };
            let errors = diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            if flags.json {
                for diagnostic in &diagnostics {
                    println!("{}", diagnostic.to_json());
                }
            } else {
                for diagnostic in &diagnostics {
                    eprint!("{diagnostic}");
                }
                let warnings = diagnostics.len() - errors;
                eprintln!("    Checked manifests: {errors} errors, {warnings} warnings");
            }
            Ok(if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Bench(flags) => {
            let mut log = |line: &str| eprintln!("{line}");
            let options = xtask::bench::BenchOptions {
                profile: flags.profile,
                seed: flags.seed,
                runs: flags.runs as usize,
                tools: flags.corpus_tools.map(|dir| cwd.join(dir)),
                // The deploy modes time the Python deployer; `dist` only prepares their input.
                xtask: if flags.deploy_only {
                    std::env::current_exe().map_err(|e| Error::io("find", &cwd, e))?
                } else {
                    xtask::bench::xtask_binary(&repo, &mut log)?
                },
                jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
                cold_compile: flags.cold_compile,
            };
            let mut json = serde_json::json!({});
            if !flags.deploy_only {
                let report = xtask::bench::run(&repo, &options, &mut log)?;
                println!("{}", report.table());
                json = serde_json::to_value(&report).expect("the report serializes");
            }
            if !flags.no_deploy {
                let deploy = xtask::bench::deploy::run(&repo, &options, &mut log)?;
                println!("{}", deploy.table());
                json["deploy"] = serde_json::to_value(&deploy).expect("the report serializes");
            }
            if let Some(path) = flags.json {
                let path = cwd.join(path);
                let json = serde_json::to_string_pretty(&json).expect("the report serializes");
                std::fs::write(&path, json + "\n").map_err(|e| Error::io("write", &path, e))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::New(flags) => {
            let options = xtask::scaffold::NewOptions {
                name: flags.name,
                version: flags.version,
                requires: flags.requires,
            };
            let created = xtask::scaffold::new(&repo, &options)?;
            for warning in &created.warnings {
                eprint!("{warning}");
            }
            match &created.copied_from {
                Some(from) => eprintln!(
                    "     Created block `{}`, a copy of version {from}",
                    created.key
                ),
                None => eprintln!("     Created block `{}`", created.key),
            }
            for file in &created.files {
                eprintln!("             {}", file.display());
            }
            for document in &created.graphs_updated {
                eprintln!("     Updated the resource graph in {}", document.display());
            }
            let block_module = created
                .files
                .iter()
                .find(|f| {
                    f.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("b_"))
                })
                .unwrap_or(&created.files[0])
                .display();
            eprintln!(
                "Next: fill in {block_module} (its docstring says how), make {} say what the block does, then run",
                created.test_file.display()
            );
            eprintln!(
                "      PYTHONPATH=python:blox python3 -m unittest discover -s blox -t blox -p 'test_*.py'"
            );
            eprintln!("      cargo xtask dist");
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(flags) => {
            let out_dir = xtask::out_dir(&repo, flags.out.map(|out| cwd.join(out)).as_deref());
            let report =
                xtask::verify::verify(&repo, &out_dir, xtask::output::Wait::Block(say_waiting))?;
            if flags.json {
                let mut value = serde_json::to_value(&report).expect("the report serializes");
                value["ok"] = serde_json::json!(report.differences.is_empty());
                println!("{value}");
            } else {
                for difference in &report.differences {
                    eprintln!("error: {}: {}", difference.path, difference.problem);
                }
                let shown = report
                    .out_dir
                    .strip_prefix(&cwd)
                    .unwrap_or(&report.out_dir)
                    .display();
                if report.differences.is_empty() {
                    eprintln!(
                        "    Verified {} packages and {} files of the extension tree in {shown}",
                        report.packages, report.tree_files
                    );
                } else {
                    eprintln!(
                        "    Verify found {} differences in {shown}; `cargo xtask dist` rebuilds what differs (`--no-cache` if a package was damaged in place)",
                        report.differences.len()
                    );
                }
            }
            Ok(if report.differences.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Import(_) | Command::Release(_) | Command::VerifyRelease(_) => {
            unreachable!("handled above: they find the repository themselves, if they need one")
        }
        Command::Graph(flags) => {
            let checked = xtask::check::load(&repo, &xtask::inputs::Inputs::new())?;
            let format = match flags.format {
                GraphFormat::Mermaid => xtask::graph::Format::Mermaid,
                GraphFormat::Dot => xtask::graph::Format::Dot,
            };
            let options = xtask::graph::GraphOptions {
                format,
                focus: flags.focus,
            };
            print!("{}", xtask::graph::render(&checked.model, &options)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Bad usage found after parsing: the message on stderr as clap writes its own, exit code 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `import` may create the repository, so it does not look for one first.
fn import(cwd: &std::path::Path, flags: xtask::flags::ImportFlags) -> Result<ExitCode, Error> {
    let into_text = flags.into.as_ref().map(|into| into.display().to_string());
    let target = match flags.into {
        Some(into) => cwd.join(into),
        None => xtask::find_repo(cwd).unwrap_or_else(|_| cwd.to_path_buf()),
    };
    let options = xtask::import::ImportOptions {
        legacy: cwd.join(flags.legacy),
        blox: flags.blox.map(|b| cwd.join(b)),
        target,
        sources: flags
            .sources
            .into_iter()
            .map(|(name, dir)| (name, cwd.join(dir)))
            .collect(),
        force: flags.force,
    };
    let report = xtask::import::import(&options)?;
    for warning in &report.warnings {
        eprint!("{warning}");
    }
    for file in &report.written {
        let verb = if report.replaced.contains(file) {
            "Replaced"
        } else {
            "Wrote"
        };
        eprintln!("{verb:>12} {}", file.display());
    }
    eprintln!(
        "    Imported {} of {} resources, skipped {}, {} warnings ({} files written, {} replaced, {} unchanged)",
        report.imported.len(),
        report.keys_read,
        report.skipped.len(),
        report.warnings.len(),
        report.written.len(),
        report.replaced.len(),
        report.unchanged
    );
    if !report.skipped.is_empty() {
        let skipped: Vec<String> = report.skipped.iter().map(|k| format!("`{k}`")).collect();
        eprintln!("     Skipped {}", skipped.join(", "));
    }
    match into_text {
        Some(into) => eprintln!("Next: cd {into}, then cargo xtask check and cargo xtask dist"),
        None => eprintln!("Next: cargo xtask check, then cargo xtask dist"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Two glibc malloc tunables, for peak memory (`cargo test memory_does_not_grow_with_file_size`
/// fails without the first: 9 MiB of peak RSS with a 1 MiB file, 21 MiB with a 96 MiB one).
///
/// glibc raises its mmap threshold each time a large block is freed, after which every archive's
/// buffers and compressor state come from the heap and fragment it: peak RSS then grows with the
/// size and number of archives. A fixed threshold keeps large buffers in their own mappings,
/// returned on free. And one arena for every thread: what the scan's threads free can then serve
/// the main thread when it writes the output.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only changes a malloc tunable; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
