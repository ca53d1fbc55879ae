//! `cargo xtask new`: the files written and what to do next, on stderr.

use std::path::Path;
use std::process::ExitCode;

use xtask::error::Error;
use xtask::flags::NewFlags;

pub fn run(flags: NewFlags, _cwd: &Path, repo: &Path) -> Result<ExitCode, Error> {
    let options = xtask::scaffold::NewOptions {
        name: flags.name,
        version: flags.version,
        requires: flags.requires,
    };
    let created = xtask::scaffold::new(repo, &options)?;
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
