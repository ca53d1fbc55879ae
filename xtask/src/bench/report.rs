//! The numbers: medians and min–max per mode, paired ratios (each round's pair ran back to back),
//! the targets with met / not met, and the report as a Markdown table or JSON.

use serde::Serialize;

use super::run::Mode;
use super::{BenchOptions, Corpus};

/// One run of one mode.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// `rebuilt` and `skipped` of `dist --json`.
    pub rebuilt: Option<u64>,
    pub skipped: Option<u64>,
    /// `tasks` and `seconds` of `dist --json`.
    pub tasks: Option<TaskTimes>,
}

/// The tasks `dist --json` timed (see `build::Tasks`), and its own wall time.
#[derive(Clone, Debug, Serialize)]
pub struct TaskTimes {
    pub run_s: f64,
    pub tasks_s: f64,
    pub longest_s: f64,
    pub longest: String,
}

/// How far the cold build could scale, from the tasks of its `--jobs 1` run (the round of median
/// wall time): on N cores it takes at least the longest task, and at least the part outside the
/// tasks (run alone) plus the tasks' time divided by N.
#[derive(Clone, Debug, Serialize)]
pub struct SpeedupBound {
    /// The whole `--jobs 1` run, its tasks, and the rest.
    pub work_s: f64,
    pub tasks_s: f64,
    pub serial_s: f64,
    pub longest_task_s: f64,
    pub longest_task: String,
    /// (cores, work ÷ max(longest task, serial + tasks ÷ cores)).
    pub bounds: Vec<(usize, f64)>,
}

impl SpeedupBound {
    pub fn from_one_job(samples: &[Sample]) -> Option<SpeedupBound> {
        let mut runs: Vec<&TaskTimes> = samples.iter().filter_map(|s| s.tasks.as_ref()).collect();
        runs.sort_by(|a, b| a.run_s.total_cmp(&b.run_s));
        let run = runs.get(runs.len() / 2)?;
        let serial_s = (run.run_s - run.tasks_s).max(0.0);
        let bounds = [2, 4, 8, 16, 64]
            .iter()
            .map(|&cores| {
                let floor = run.longest_s.max(serial_s + run.tasks_s / cores as f64);
                (cores, run.run_s / floor)
            })
            .collect();
        Some(SpeedupBound {
            work_s: run.run_s,
            tasks_s: run.tasks_s,
            serial_s,
            longest_task_s: run.longest_s,
            longest_task: run.longest.clone(),
            bounds,
        })
    }

    pub fn at(&self, cores: usize) -> Option<f64> {
        self.bounds
            .iter()
            .find(|(n, _)| *n == cores)
            .map(|(_, bound)| *bound)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub mode: String,
    pub median_wall_s: f64,
    pub min_wall_s: f64,
    pub max_wall_s: f64,
    pub median_cpu_s: Option<f64>,
    /// The largest peak RSS over the runs: `dist`'s own, as its `--json` reports it (none for a
    /// pipeline).
    pub peak_rss_mib: Option<f64>,
    /// Total bytes of the archives written, for the modes that write them all.
    pub output_bytes: Option<u64>,
    /// Paired ratios: the median over rounds of this run's wall time over the other's.
    pub vs_legacy: Option<f64>,
    pub vs_best_shell: Option<f64>,
    pub vs_cold_dist: Option<f64>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub value: f64,
    /// `<=` or `>=`: how `value` must compare with `limit`.
    pub comparison: &'static str,
    pub limit: f64,
    pub met: bool,
    /// False when what it needs did not run (a missing peer, too few cores): never met then.
    pub measured: bool,
}

/// One line of the scaling table: a cold `dist` with this many jobs.
#[derive(Clone, Debug, Serialize)]
pub struct Scaling {
    pub jobs: usize,
    pub median_wall_s: f64,
    pub median_cpu_s: Option<f64>,
    /// Paired: the median over rounds of the `--jobs 1` wall time over this one's.
    pub speedup: f64,
}

/// What the rounds measured besides the samples.
pub(super) struct Measured {
    /// Every cold build wrote the same `SHA256SUMS`, whatever its `--jobs`.
    pub identical_across_jobs: bool,
    pub cold_compile_s: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: String,
    pub cores: usize,
    pub jobs: usize,
    pub runs: usize,
    pub corpus: Corpus,
    pub best_shell: String,
    /// `gzip -6` reference: the bytes of `tar | gzip -n -6`, per block, over the same files.
    pub gzip6_bytes: Option<u64>,
    pub dist_vs_gzip6_size: Option<f64>,
    pub rows: Vec<Row>,
    /// Cold `dist` with 1, 2, 4, … jobs up to the cores.
    pub scaling: Vec<Scaling>,
    pub speedup_bound: Option<SpeedupBound>,
    /// CPU seconds over wall seconds of the cold build (the median over rounds).
    pub cores_busy: Option<f64>,
    /// Every cold build wrote the same archives, whatever its `--jobs`.
    pub identical_across_jobs: bool,
    /// A cold dev-profile compile of xtask, when `--cold-compile` asked for it.
    pub cold_compile_s: Option<f64>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

pub(super) fn summarize(
    options: &BenchOptions,
    corpus: Corpus,
    modes: Vec<Mode>,
    samples: Vec<Vec<Sample>>,
    output_bytes: Vec<Option<u64>>,
    measured: Measured,
    mut notes: Vec<String>,
) -> Report {
    let walls = |mode: Mode| -> Option<Vec<f64>> {
        modes
            .iter()
            .position(|m| *m == mode)
            .map(|i| samples[i].iter().map(|s| s.wall_s).collect())
    };
    let best_shell = modes
        .iter()
        .copied()
        .filter(|m| m.is_shell())
        .min_by(|a, b| {
            median(&walls(*a).unwrap_or_default())
                .total_cmp(&median(&walls(*b).unwrap_or_default()))
        })
        .unwrap_or(Mode::Legacy);
    let legacy = walls(Mode::Legacy);
    let best = walls(best_shell);
    let cold = walls(Mode::DistCold);
    let rows: Vec<Row> = modes
        .iter()
        .zip(&samples)
        .zip(&output_bytes)
        .map(|((&mode, samples), &bytes)| {
            let wall: Vec<f64> = samples.iter().map(|s| s.wall_s).collect();
            let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_s).collect();
            let rss = samples.iter().filter_map(|s| s.peak_rss_kib).max();
            let incremental = mode.is_incremental();
            Row {
                mode: mode.name(),
                median_wall_s: median(&wall),
                min_wall_s: wall.iter().copied().fold(f64::INFINITY, f64::min),
                max_wall_s: wall.iter().copied().fold(0.0, f64::max),
                median_cpu_s: (!cpu.is_empty()).then(|| median(&cpu)),
                peak_rss_mib: rss.map(|kib| kib as f64 / 1024.0),
                output_bytes: bytes,
                vs_legacy: legacy
                    .as_ref()
                    .filter(|_| !incremental)
                    .map(|l| paired(&wall, l)),
                vs_best_shell: best
                    .as_ref()
                    .filter(|_| !incremental)
                    .map(|b| paired(&wall, b)),
                vs_cold_dist: cold
                    .as_ref()
                    .filter(|_| incremental)
                    .map(|c| paired(&wall, c)),
                samples: samples.clone(),
            }
        })
        .collect();

    let row = |mode: Mode| rows.iter().find(|r| r.mode == mode.name());
    let gzip6_bytes = row(Mode::Gzip).and_then(|r| r.output_bytes);
    let dist_bytes = row(Mode::DistCold).and_then(|r| r.output_bytes);
    let dist_vs_gzip6_size = dist_bytes
        .zip(gzip6_bytes)
        .map(|(d, g)| d as f64 / g as f64);
    // The scaling table: `--jobs 1, 2, 4, …` (`DistJobs`) and the cores (`DistCold`).
    let mut scaling_modes: Vec<(usize, Mode)> = modes
        .iter()
        .filter_map(|&mode| match mode {
            Mode::DistJobs(jobs) => Some((jobs, mode)),
            _ => None,
        })
        .collect();
    scaling_modes.push((options.jobs, Mode::DistCold));
    let one_job = walls(scaling_modes[0].1).unwrap_or_default();
    let scaling: Vec<Scaling> = scaling_modes
        .iter()
        .filter_map(|&(jobs, mode)| {
            let row = row(mode)?;
            Some(Scaling {
                jobs,
                median_wall_s: row.median_wall_s,
                median_cpu_s: row.median_cpu_s,
                speedup: paired(&one_job, &walls(mode).unwrap_or_default()),
            })
        })
        .collect();

    let speedup_bound = SpeedupBound::from_one_job(
        modes
            .iter()
            .position(|m| *m == scaling_modes[0].1)
            .map_or(&[][..], |i| &samples[i]),
    );
    let cores_busy = modes
        .iter()
        .position(|m| *m == Mode::DistCold)
        .map(|i| {
            samples[i]
                .iter()
                .filter_map(|s| s.cpu_s.map(|cpu| cpu / s.wall_s))
                .collect::<Vec<f64>>()
        })
        .filter(|busy| !busy.is_empty())
        .map(|busy| median(&busy));

    let mut targets = Vec::new();
    let mut target = |name: &str, value: Option<f64>, comparison: &'static str, limit: f64| {
        targets.push(Target {
            target: name.into(),
            value: value.unwrap_or(f64::NAN),
            comparison,
            limit,
            met: value.is_some_and(|value| {
                if comparison == ">=" {
                    value >= limit
                } else {
                    value <= limit
                }
            }),
            measured: value.is_some(),
        });
    };
    // The shell targets compare with pigz: without it the best pipeline is a slower one.
    let pigz = modes.contains(&Mode::Pigz);
    if !pigz {
        notes.push(
            "`pigz` is missing (`apt-get install -y pigz`): the targets against the best shell pipeline are not measured".into(),
        );
    }
    let cold_row = row(Mode::DistCold);
    target(
        "cold dist / legacy loop",
        cold_row.and_then(|r| r.vs_legacy),
        "<=",
        0.30,
    );
    target(
        "cold dist / best shell pipeline",
        cold_row.and_then(|r| r.vs_best_shell).filter(|_| pigz),
        "<=",
        0.65,
    );
    target(
        "no-op dist / cold dist",
        row(Mode::DistNoop).and_then(|r| r.vs_cold_dist),
        "<=",
        0.01,
    );
    target(
        "touched dist / cold dist",
        row(Mode::DistTouch).and_then(|r| r.vs_cold_dist),
        "<=",
        0.25,
    );
    target(
        "one-file dist / cold dist",
        row(Mode::DistOneFile).and_then(|r| r.vs_cold_dist),
        "<=",
        0.05,
    );
    let peak = |incremental: bool| {
        modes
            .iter()
            .zip(&rows)
            .filter(|(mode, row)| {
                row.mode.starts_with("dist") && mode.is_incremental() == incremental
            })
            .filter_map(|(_, row)| row.peak_rss_mib)
            .fold(None, |max: Option<f64>, v| {
                Some(max.map_or(v, |m| m.max(v)))
            })
    };
    target("cold dist peak RSS, MiB", peak(false), "<=", 64.0);
    target("incremental dist peak RSS, MiB", peak(true), "<=", 64.0);
    target("dist bytes / gzip -6 bytes", dist_vs_gzip6_size, "<=", 1.0);
    // Cold builds that scale.
    if options.jobs <= 2 {
        target(
            "cold dist / best shell pipeline, 2 cores",
            cold_row.and_then(|r| r.vs_best_shell).filter(|_| pigz),
            "<=",
            0.45,
        );
    }
    if options.jobs >= 2 {
        target(
            &format!("cold dist cores busy (cpu s / wall s), of {}", options.jobs),
            cores_busy,
            ">=",
            0.95 * options.jobs as f64,
        );
    }
    target(
        "speedup bound at 16 cores, from the --jobs 1 tasks",
        speedup_bound.as_ref().and_then(|bound| bound.at(16)),
        ">=",
        12.0,
    );
    let slowest_step = scaling_modes
        .windows(2)
        .map(|pair| {
            paired(
                &walls(pair[1].1).unwrap_or_default(),
                &walls(pair[0].1).unwrap_or_default(),
            )
        })
        .fold(None, |max: Option<f64>, v| {
            Some(max.map_or(v, |m| m.max(v)))
        });
    target(
        "more jobs never slower: worst wall(2N jobs) / wall(N) (5 % for noise)",
        slowest_step,
        "<=",
        1.05,
    );
    target(
        "archives identical for every --jobs (1 = yes)",
        Some(if measured.identical_across_jobs {
            1.0
        } else {
            0.0
        }),
        ">=",
        1.0,
    );
    let sixteen = scaling.iter().find(|s| s.jobs == 16);
    target(
        "cold dist speedup at 16 jobs over 1",
        sixteen.map(|s| s.speedup),
        ">=",
        8.0,
    );
    if sixteen.is_none() {
        notes.push(format!(
            "the speedup target at 16 jobs needs a machine with 16 cores; this one has {}",
            options.jobs
        ));
    }
    match measured.cold_compile_s {
        Some(seconds) => target(
            "cold compile of xtask (dev profile), s",
            Some(seconds),
            "<=",
            60.0,
        ),
        None => notes.push("the compile-time target is measured with `--cold-compile`".into()),
    }

    Report {
        command: format!(
            "cargo xtask bench --profile {} --runs {}",
            options.profile, options.runs
        ),
        machine: machine(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        jobs: options.jobs,
        runs: options.runs,
        corpus,
        best_shell: best_shell.name(),
        gzip6_bytes,
        dist_vs_gzip6_size,
        rows,
        scaling,
        speedup_bound,
        cores_busy,
        identical_across_jobs: measured.identical_across_jobs,
        cold_compile_s: measured.cold_compile_s,
        targets,
        notes,
    }
}

impl Report {
    /// The report as a Markdown table, with the targets and notes below it.
    pub fn table(&self) -> String {
        let mut text = format!(
            "{} ({} runs, {}); corpus: {} blocks, {} files, {:.1} MB\n\n",
            self.command,
            self.runs,
            self.machine,
            self.corpus.blocks,
            self.corpus.files,
            self.corpus.bytes as f64 / 1e6
        );
        text.push_str("| mode | wall s (median) | min–max | cpu s | peak RSS MiB | output bytes | vs legacy | vs best shell | vs cold dist |\n");
        text.push_str("|---|---|---|---|---|---|---|---|---|\n");
        let number = |value: Option<f64>, digits: usize| {
            value.map_or("".to_string(), |v| format!("{v:.digits$}"))
        };
        // The other `--jobs` have their own table below.
        for row in self.rows.iter().filter(|row| !row.mode.contains("--jobs")) {
            let counts = match row.samples.last() {
                Some(Sample {
                    rebuilt: Some(rebuilt),
                    skipped: Some(skipped),
                    ..
                }) => {
                    format!(" ({rebuilt} built, {skipped} skipped)")
                }
                _ => String::new(),
            };
            text.push_str(&format!(
                "| {}{} | {:.3} | {:.3}–{:.3} | {} | {} | {} | {} | {} | {} |\n",
                // A `|` in a mode name would end the Markdown cell.
                row.mode.replace('|', "\\|"),
                counts,
                row.median_wall_s,
                row.min_wall_s,
                row.max_wall_s,
                number(row.median_cpu_s, 2),
                number(row.peak_rss_mib, 1),
                row.output_bytes.map_or(String::new(), thousands),
                number(row.vs_legacy, 3),
                number(row.vs_best_shell, 3),
                number(row.vs_cold_dist, 4),
            ));
        }
        text.push_str(&format!("\nbest shell pipeline: {}\n", self.best_shell));
        if let (Some(gzip), Some(ratio)) = (self.gzip6_bytes, self.dist_vs_gzip6_size) {
            text.push_str(&format!(
                "dist bytes vs gzip -6 ({}): {ratio:.4}\n",
                thousands(gzip)
            ));
        }
        text.push_str(
            "\n| jobs | wall s (median) | cpu s | speedup vs --jobs 1 |\n|---|---|---|---|\n",
        );
        for line in &self.scaling {
            text.push_str(&format!(
                "| {} | {:.3} | {} | {:.2} |\n",
                line.jobs,
                line.median_wall_s,
                number(line.median_cpu_s, 2),
                line.speedup
            ));
        }
        if let Some(busy) = self.cores_busy {
            text.push_str(&format!(
                "cores busy in the cold build (cpu s / wall s, median): {busy:.2} of {}\n",
                self.jobs
            ));
        }
        if let Some(bound) = &self.speedup_bound {
            text.push_str(&format!(
                "\nspeedup bound from the --jobs 1 run: {:.3} s in all, {:.3} s of tasks, {:.3} s outside them (run alone); longest task {:.3} s ({})\n\n| cores |",
                bound.work_s, bound.tasks_s, bound.serial_s, bound.longest_task_s, bound.longest_task
            ));
            for (cores, _) in &bound.bounds {
                text.push_str(&format!(" {cores} |"));
            }
            text.push_str(&format!(
                "\n|---|{}\n| bound |",
                "---|".repeat(bound.bounds.len())
            ));
            for (_, value) in &bound.bounds {
                text.push_str(&format!(" {value:.2} |"));
            }
            text.push_str("\n| measured |");
            for (cores, _) in &bound.bounds {
                let measured = self.scaling.iter().find(|s| s.jobs == *cores);
                text.push_str(&format!(
                    " {} |",
                    measured.map_or("".to_string(), |s| format!("{:.2}", s.speedup))
                ));
            }
            text.push_str("\n\n");
        }
        text.push_str(&format!(
            "archives identical for every --jobs: {}\n",
            if self.identical_across_jobs {
                "yes"
            } else {
                "NO"
            }
        ));
        if let Some(seconds) = self.cold_compile_s {
            text.push_str(&format!(
                "cold compile of xtask (dev profile): {seconds:.1} s\n"
            ));
        }
        text.push_str("\n| target | value | limit | met |\n|---|---|---|---|\n");
        for target in &self.targets {
            text.push_str(&format!(
                "| {} | {} | {} {} | {} |\n",
                target.target,
                if target.measured {
                    format!("{:.4}", target.value)
                } else {
                    String::new()
                },
                if target.comparison == ">=" {
                    "≥"
                } else {
                    "≤"
                },
                target.limit,
                match (target.measured, target.met) {
                    (false, _) => "not measured",
                    (true, true) => "yes",
                    (true, false) => "no",
                }
            ));
        }
        text.push('\n');
        for note in &self.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text
    }
}

fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The median over rounds of `a[i] / b[i]`: each round's pair ran back to back, under the same load.
pub fn paired(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect();
    median(&ratios)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores, {cpu}{memory}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_paired_ratio() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(paired(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0]), 1.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(133_387_651), "133,387,651");
    }

    fn sample(wall_s: f64, peak_rss_kib: u64) -> Sample {
        Sample {
            wall_s,
            cpu_s: Some(wall_s),
            peak_rss_kib: Some(peak_rss_kib),
            rebuilt: None,
            skipped: None,
            tasks: None,
        }
    }

    fn one_job(wall_s: f64, tasks_s: f64, longest_s: f64) -> Sample {
        Sample {
            tasks: Some(TaskTimes {
                run_s: wall_s,
                tasks_s,
                longest_s,
                longest: format!("longest of {wall_s}"),
            }),
            ..sample(wall_s, 20_000)
        }
    }

    /// Four cores: `--jobs 1, 2` and the cores (`DistCold`) make the scaling table; speedups are
    /// paired by round, and the targets say met or not.
    #[test]
    fn scaling_table_and_targets() {
        let options = BenchOptions {
            profile: "small".into(),
            seed: 1,
            runs: 2,
            tools: None,
            xtask: "xtask".into(),
            jobs: 4,
            cold_compile: false,
        };
        let corpus = Corpus {
            profile: "small".into(),
            seed: 1,
            blocks: 1,
            files: 1,
            bytes: 1,
            added_module_files: 0,
            repo: "repo".into(),
            changed_file: "blox/a/b_a.py".into(),
        };
        let modes = vec![
            Mode::DistCold,
            Mode::Legacy,
            Mode::DistNoop,
            Mode::DistJobs(1),
            Mode::DistJobs(2),
        ];
        let samples = vec![
            vec![sample(1.0, 30_000), sample(1.2, 30_000)],
            vec![sample(8.0, 3_000), sample(8.0, 3_000)],
            vec![sample(0.02, 80_000), sample(0.02, 80_000)],
            vec![one_job(4.0, 3.8, 0.1), one_job(4.8, 4.6, 0.3)],
            vec![sample(2.0, 25_000), sample(2.4, 25_000)],
        ];
        let report = summarize(
            &options,
            corpus,
            modes,
            samples,
            vec![None; 5],
            Measured {
                identical_across_jobs: true,
                cold_compile_s: Some(70.0),
            },
            Vec::new(),
        );
        let jobs: Vec<usize> = report.scaling.iter().map(|line| line.jobs).collect();
        assert_eq!(jobs, [1, 2, 4]);
        let speedups: Vec<f64> = report.scaling.iter().map(|line| line.speedup).collect();
        assert_eq!(speedups, [1.0, 2.0, 4.0]);
        let met = |name: &str| {
            report
                .targets
                .iter()
                .find(|target| target.target.starts_with(name))
                .unwrap_or_else(|| panic!("no target {name}"))
                .met
        };
        assert!(met("more jobs never slower"));
        assert!(met("archives identical"));
        assert!(!met("no-op dist / cold dist"), "0.02 / 1.0 > 0.01");
        assert!(!met("incremental dist peak RSS"), "80,000 KiB > 64 MiB");
        assert!(met("cold dist peak RSS"));
        assert!(!met("cold compile"), "70 s > 60 s");
        assert!(report.notes.iter().any(|note| note.contains("16 cores")));
        // No pigz: the targets against the best shell pipeline say "not measured", never "met".
        let target = |name: &str| {
            report
                .targets
                .iter()
                .find(|target| target.target == name)
                .unwrap_or_else(|| panic!("no target {name}"))
        };
        for name in [
            "cold dist / best shell pipeline",
            "cold dist speedup at 16 jobs over 1",
        ] {
            assert!(!target(name).measured && !target(name).met, "{name}");
        }
        // The bound comes from the round of median wall time (4.8 s: 4.6 s of tasks, 0.2 s
        // outside them, the longest 0.3 s): the serial part limits 16 cores, the longest task 64.
        let bound = report.speedup_bound.as_ref().unwrap();
        assert_eq!(bound.longest_task, "longest of 4.8");
        assert!((bound.at(16).unwrap() - 4.8 / (0.2 + 4.6 / 16.0)).abs() < 1e-9);
        assert_eq!(bound.at(64), Some(16.0));
        assert!(!met("speedup bound at 16 cores"));
        // cpu / wall of the cold build is 1.0 here: one of the 4 cores busy.
        assert_eq!(report.cores_busy, Some(1.0));
        assert!(!met("cold dist cores busy"));
        let table = report.table();
        assert!(table.contains("| 4 | 1.100 | 1.10 | 4.00 |"), "{table}");
        assert!(!table.contains("| dist, cold, --jobs 1"), "its own table");
        assert!(
            table.contains("| cold dist / best shell pipeline |  | ≤ 0.65 | not measured |"),
            "{table}"
        );
        assert!(
            table.contains("| bound | 1.92 | 3.56 | 6.19 | 9.85 | 16.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| measured | 2.00 | 4.00 |  |  |  |"),
            "{table}"
        );
    }
}
