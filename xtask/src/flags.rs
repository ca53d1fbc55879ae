//! Every subcommand and flag, in one place. Each doc comment is the command's `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Datablox's build tasks. Run `cargo xtask <command> --help` for one command's options.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    disable_help_subcommand = true
)]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the Engage extension: reproducible sw_packages archives, metadata, drivers,
    /// SHA256SUMS and dist-manifest.json (default output: target/dist/)
    Dist(DistFlags),
    /// Validate every manifest without building anything
    Check(CheckFlags),
    /// Deploy into a deployment home with the node deployer: builds the dist when needed, then
    /// runs `python3 <dist>/datablox/bin/deploy --home DIR` (Python 3 only, no Engage); with
    /// --topology and --nodes, places the blocks on nodes and writes per-node homes or bundles.
    /// `deploy --home DIR start|stop|status [--port N] [--listen ADDRESS]` controls the home's
    /// caretaker (start without --port: the port and address of its last start)
    Deploy(Box<DeployFlags>),
    /// Run a topology on this machine: builds the dist when needed, deploys a home per node under
    /// target/run/<node>/, starts the caretakers it needs, runs the topology with the master (its
    /// per-block table), and stops what it started, also on failure or Ctrl-C. Exit code: the
    /// master's (0 done, 1 failed, 2 bad usage)
    Run(RunFlags),
    /// Time `dist` against the shell pipelines on a generated corpus (see BENCHMARKS.md); runs a
    /// release build of xtask, which it builds first when run from a debug build
    Bench(BenchFlags),
    /// Scaffold a block: blox/<module>__<version>/ with a block class, a test that passes, and
    /// manifests/<module>.toml (with --version, another version of an existing block, copied from
    /// its latest); the documented resource graph is brought up to date
    New(NewFlags),
    /// Migrate a legacy Engage extension (drivers/*/resources.json, metadata/*.json, install specs)
    /// and its blox/ directory into TOML manifests
    Import(ImportFlags),
    /// Print the graph of the resources and what they need (platforms in one note) as Mermaid or
    /// Graphviz DOT text on stdout
    Graph(GraphFlags),
    /// Check a built output against itself and the sources: every archive's SHA-256 against
    /// SHA256SUMS and dist-manifest.json, every source digest against the current sources, the
    /// extension tree against what dist would write; exit 1 with the list of differences
    Verify(VerifyFlags),
    /// Make a release from the clean work tree: a --no-cache dist, then
    /// datablox-extension-<version>.tar.gz, SHA256SUMS and an in-toto provenance statement
    /// (signed into a DSSE envelope with --sign-key) in --out (see docs/release.md)
    Release(ReleaseFlags),
    /// Check a release directory: every digest, the statement's subjects against the files, the
    /// signature with --key, and with --rebuild the archive rebuilt from the recorded commit
    VerifyRelease(VerifyReleaseFlags),
}

#[derive(Debug, clap::Args)]
pub struct ReleaseFlags {
    /// Output directory, replaced whole (default: target/release-dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Sign the statement with this ed25519 private key (PKCS#8 PEM) into
    /// datablox-extension-<version>.intoto.jsonl
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
    /// Release from a work tree with uncommitted changes (the statement records it)
    #[arg(long)]
    pub allow_dirty: bool,
    /// The release tag, which must be v<version> (default: the tag of a GitHub Actions tag run,
    /// else the v* tags of HEAD, else none)
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyReleaseFlags {
    /// The release directory (SHA256SUMS, the archive, the statement, the envelope)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Also verify the DSSE signature with this ed25519 public key (PEM)
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Also rebuild the recorded commit (from the repository around the current directory) and
    /// compare the archives byte for byte
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Debug, clap::Args)]
pub struct DistFlags {
    /// Output directory (default: target/dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Archives built at once, 1 to 1024 (default: all cores); the output does not depend on it
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_JOBS))]
    pub jobs: Option<u32>,
    /// Print the summary as JSON on stdout, with the seconds taken and the peak RSS in KiB
    #[arg(long)]
    pub json: bool,
    /// Print how long each stage took, on stderr
    #[arg(long)]
    pub timings: bool,
    /// Hash every source file again instead of trusting the stat cache (for CI checkouts whose
    /// mtimes are new); the output is the same
    #[arg(long)]
    pub no_cache: bool,
    /// Fail at once (exit code 3) instead of waiting when another dist is writing the output
    /// directory
    #[arg(long)]
    pub no_wait: bool,
}

/// The most `--jobs`: more threads than this only cost memory.
pub const MAX_JOBS: i64 = 1024;

#[derive(Debug, clap::Args)]
pub struct VerifyFlags {
    /// The output directory to check (default: target/dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the result as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["home", "topology"])))]
#[command(group(clap::ArgGroup::new("nodes_out").args(["homes_dir", "bundle", "ansible"])))]
pub struct DeployFlags {
    /// The deployment home (created when missing)
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// The dist directory to build and deploy from (default: target/dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// Deploy from this release archive (datablox-extension-<version>.tar.gz, checked against
    /// the SHA256SUMS beside it) instead of building a dist; the repository's node deployer runs
    #[arg(long, value_name = "ARCHIVE", requires = "home", conflicts_with_all = ["dist", "topology"])]
    pub release: Option<PathBuf>,
    /// With --release: the release's ed25519 public key (PEM); the archive must be a subject of
    /// the statement it signed (needs `openssl`)
    #[arg(long, value_name = "PUB", requires = "release")]
    pub key: Option<PathBuf>,
    /// What to deploy: `NAME VERSION`, `NAME@VERSION` or `NAME` (default: what
    /// caretaker_install_spec.json installs: the caretaker, the framework and the adapter); or
    /// `start`, `stop`, `status`: the home's caretaker service
    #[arg(value_name = "RESOURCE", conflicts_with = "topology")]
    pub resources: Vec<String>,
    /// With `start`: the caretaker's TCP port (default: the one of its last start, else 5555;
    /// 0: any free port)
    #[arg(long, value_name = "N", requires = "home")]
    pub port: Option<u16>,
    /// With `start`: the address the caretaker listens on (default: the one of its last start,
    /// else 127.0.0.1)
    #[arg(long, value_name = "ADDRESS", requires = "home")]
    pub listen: Option<String>,
    /// Several nodes: place the blocks of this topology (the caretaker's JSON, e.g.
    /// topologies/word-count.json) on --nodes, print the plan, then (unless --dry-run) write
    /// --homes-dir, --bundle or --ansible
    #[arg(long, value_name = "FILE", requires = "nodes")]
    pub topology: Option<PathBuf>,
    /// The nodes, comma-separated (`master,w1,w2`): plain names, each once
    #[arg(long, value_name = "A,B,...", requires = "topology")]
    pub nodes: Option<String>,
    /// With --topology: one deployment home per node on this machine, DIR/<node>/, each with
    /// exactly its node's closure; DIR/plan.json and DIR/topology.json (the placed topology)
    #[arg(long, value_name = "DIR", requires = "topology")]
    pub homes_dir: Option<PathBuf>,
    /// With --topology: one bundle per node, DIR/<node>/ (node deployer, the node's part of the
    /// extension, install spec, SHA256SUMS, placed topology); install on the node with
    /// `python3 DIR/<node>/bin/deploy --home H`. Byte-reproducible
    #[arg(long, value_name = "DIR", requires = "topology")]
    pub bundle: Option<PathBuf>,
    /// With --topology: an Ansible inventory (one host per node: home, bundle path, caretaker
    /// port) and playbook that copy each node's bundle, install it and start its caretaker:
    /// DIR/inventory.ini, DIR/site.yml, DIR/bundles/<node>.tar. Then
    /// `ansible-playbook -i DIR/inventory.ini DIR/site.yml`; run again, it changes nothing
    #[arg(long, value_name = "DIR", requires = "topology")]
    pub ansible: Option<PathBuf>,
    /// Install pip packages from the wheels in DIR only (no package index); the home remembers it.
    /// With --topology, --homes-dir only: bundles install on their nodes (pass it to the node's
    /// `deploy --home`), and Ansible hosts take `datablox_find_links=` in inventory.ini
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bundle", "ansible"])]
    pub find_links: Option<PathBuf>,
    /// The cluster key file (mode 0600): with --home, installed as <home>/config/cluster.key
    /// (default: keep the home's, or make one); with --topology, delivered to every node (default:
    /// DIR/cluster.key of an earlier run, or a new one, written there)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The nodes' platform key, e.g. `ubuntu-linux 14.04` (default: this machine's). Resolution
    /// depends on it, so bundles built for the same nodes on different machines need the same one
    #[arg(long, num_args = 2, value_names = ["NAME", "VERSION"])]
    pub platform: Option<Vec<String>>,
    /// Keep what a home no longer needs: by default a deploy of a node's placement (--homes-dir,
    /// a bundle) removes what the home's last placement installed and this one does not need
    /// (never what was deployed by name)
    #[arg(long, conflicts_with_all = ["bundle", "ansible"])]
    pub keep: bool,
    /// Print the plan (what, in which order, why; with --topology, which node runs each block)
    /// and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the deployer's result (with --topology, the placement plan) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunFlags {
    /// The topology (the caretaker's JSON, e.g. topologies/word-count.json)
    #[arg(value_name = "TOPOLOGY")]
    pub topology: PathBuf,
    /// The nodes, comma-separated (`master,w1,w2`): one home and caretaker each, blocks placed as
    /// `deploy --topology` places them. Default: one node, `local`, running every block whatever
    /// its `at`
    #[arg(long, value_name = "A,B,...")]
    pub nodes: Option<String>,
    /// The dist directory to build and deploy from (default: target/dist under the repository)
    #[arg(long, value_name = "DIR")]
    pub dist: Option<PathBuf>,
    /// Where the homes go, DIR/<node>/ (default: target/run under the repository)
    #[arg(long, value_name = "DIR")]
    pub homes_dir: Option<PathBuf>,
    /// Fail the run after this many seconds (default: the master's, 600)
    #[arg(long, value_name = "S")]
    pub timeout: Option<f64>,
    /// Print the master's result as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CheckFlags {
    /// Print one JSON object per diagnostic on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BenchFlags {
    /// Corpus size, as gen_corpus.py defines it
    #[arg(long, default_value = "small", value_parser = ["small", "medium", "large"])]
    pub profile: String,
    /// Rounds; every mode runs once per round and the table shows medians
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Corpus seed
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run only the deploy modes (the node deployer against a `tar xzf` loop), not `dist`'s
    #[arg(long, conflicts_with = "no_deploy")]
    pub deploy_only: bool,
    /// Run only `dist`'s modes, not the deploy modes
    #[arg(long)]
    pub no_deploy: bool,
    /// Run only the authentication rows (handshake cost, data connection with and without
    /// per-frame authentication), not `dist`'s or the deploy modes
    #[arg(long, conflicts_with_all = ["deploy_only", "no_deploy", "cold_compile"])]
    pub auth_only: bool,
    /// Also write the results as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Directory of gen_corpus.py and pack.sh (default: $DATABLOX_BENCH_TOOLS, else ../shared/bench
    /// beside the repository)
    #[arg(long, value_name = "DIR")]
    pub corpus_tools: Option<PathBuf>,
    /// Also time a cold compile of xtask (dev profile, empty target directory), once
    #[arg(long)]
    pub cold_compile: bool,
}

#[derive(Debug, clap::Args)]
pub struct NewFlags {
    /// The block's display name, e.g. `File-Crawler` (letters, digits and `-`; no `_` or `.`)
    #[arg(value_name = "BLOCK_NAME")]
    pub name: String,
    /// The block's version (default: 1.0). For a block that exists: the new version, a copy of
    /// its latest version (directory and manifest)
    #[arg(long)]
    pub version: Option<String>,
    /// Resources the block needs, as `"NAME VERSION"` (e.g. `"chardet 5.2"`); checked against the
    /// manifests
    #[arg(long, value_name = "KEY", num_args = 1..)]
    pub requires: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ImportFlags {
    /// The legacy extension directory (the `datablox/` tree with drivers/ and metadata/, e.g.
    /// `legacy/engage/datablox`)
    #[arg(value_name = "LEGACY_EXTENSION_DIR")]
    pub legacy: PathBuf,
    /// The legacy blox/ directory (default: where the legacy Makefile takes the blocks from, else
    /// `blox/` beside the extension directory or one level up)
    #[arg(long, value_name = "DIR")]
    pub blox: Option<PathBuf>,
    /// The project to import into (default: the repository around the current directory, else
    /// the current directory); a new directory gives a project of its own
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// The source of a package, when the legacy Makefile does not say it: `NAME=DIR`, e.g.
    /// `datablox_framework.tgz=../legacy/datablox_framework` (repeatable)
    #[arg(long, value_name = "NAME=DIR", value_parser = parse_source)]
    pub sources: Vec<(String, PathBuf)>,
    /// Merge into a project that has files of the same names: replace them (they are listed)
    #[arg(long)]
    pub force: bool,
}

fn parse_source(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !name.contains('/') && !dir.is_empty() => {
            Ok((name.to_string(), PathBuf::from(dir)))
        }
        _ => Err(format!(
            "`{text}` is not NAME=DIR (a package file name of sw_packages, then its source)"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub struct GraphFlags {
    /// Output format
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Keep only this resource (`"NAME VERSION"`, or `NAME`) and what it needs, transitively
    #[arg(long, value_name = "KEY")]
    pub focus: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}
