//! `mcp-bastion check-config FILE [FLAGS…] [-- COMMAND…]`: reads the file,
//! the flags after it and the environment as a start would, checks that
//! every backend can be built, and prints the effective configuration with
//! the source of each value, secrets masked (and warnings, such as a
//! tests-only option, on stderr). Exits 2 with an error naming
//! the source, the key and what was expected.

use std::{collections::BTreeMap, ffi::OsString, path::PathBuf, process::ExitCode};

use clap::Parser;

use crate::Cli;

/// Runs the subcommand on `argv` (`mcp-bastion check-config FILE …`).
pub(crate) fn run(argv: &[OsString], env: &BTreeMap<String, String>) -> ExitCode {
    let Some(file) = argv.get(2) else {
        eprintln!("usage: mcp-bastion check-config FILE [FLAGS…] [-- COMMAND…]");
        return ExitCode::from(2);
    };
    // the flags of the command line the file is checked with
    let args = argv.iter().take(1).chain(argv.iter().skip(3));
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let loaded = match crate::load_config(&cli, env, Some(PathBuf::from(file))) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("mcp-bastion: {e}");
            return ExitCode::from(2);
        }
    };
    let checked = crate::outbound::OutboundTrust::load(&loaded.config.general)
        .and_then(|trust| crate::backends(&loaded.config, &trust))
        .and_then(|_| crate::outbound::apply_redis_ca(&mut loaded.config.rate_limit.clone()));
    if let Err(e) = checked {
        eprintln!("mcp-bastion: {}: {e}", file.to_string_lossy());
        return ExitCode::from(2);
    }
    for warning in loaded.warnings() {
        eprintln!("mcp-bastion: warning: {warning}");
    }
    print!("{}", loaded.render());
    ExitCode::SUCCESS
}
