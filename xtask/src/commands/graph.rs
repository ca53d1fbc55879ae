//! `cargo xtask graph`: the Mermaid or DOT text on stdout.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::{GraphFlags, GraphFormat};

pub fn run(flags: GraphFlags, _cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let checked = xtask::check::load(repo, &xtask::inputs::Inputs::new())?;
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
