//! `shoal config`: validate and print the normalized project.

use std::process::ExitCode;

use crate::cli::{ConfigArgs, ConfigFormat, Global};

pub fn run(global: &Global, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = super::load(global)?;
    let p = &loaded.project;
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    if args.services {
        for name in p.services.keys() {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        ConfigFormat::Yaml => print!("{}", shoal_spec::output::to_yaml(p)),
        ConfigFormat::Json => println!("{}", shoal_spec::output::to_json(p)),
    }
    Ok(ExitCode::SUCCESS)
}
