//! `mycel`, the command-line program: a Mainline DHT node, one-shot DHT queries and an
//! in-process demo network.
//!
//! Exit codes: 0 success, 1 the work failed (no answer, nothing found, I/O error), 2 bad usage
//! (with a one-line message on stderr).

// The binary owns the process: it reads the clock, the environment and OS randomness.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod cli;
mod demo;
mod demo_files;
mod demo_items;
mod dht_cmd;
mod item_cmd;
mod output;
mod sample_cmd;
mod torrent_cmd;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// A usage error found after parsing (e.g. a lookup without `--bootstrap`): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    if let Err(e) = init_logging(cli.log.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // A DHT node is one task around one socket: a single-threaded runtime keeps it on one
    // core and spares the cross-thread wake-ups that cost more than the work under load.
    // Everything else (the demo's many nodes, transfers) uses every core.
    let single = matches!(&cli.command, Command::Dht(crate::cli::DhtCommand::Node(_)));
    let builder = if single {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let runtime = match builder {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dht(command) => dht_cmd::run(command).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Create(args) => torrent_cmd::create(args).await,
            Command::Share(args) => torrent_cmd::share(args).await,
            Command::Fetch(args) => torrent_cmd::fetch(args).await,
            Command::Keygen(args) => item_cmd::keygen(args),
            Command::Sim(args) => mycel_sim::cli::run(&args).map(|()| ExitCode::SUCCESS).map_err(|e| {
                // A parameter out of range is bad command-line input, like clap's own errors.
                match e.downcast_ref::<mycel_sim::SimError>() {
                    Some(mycel_sim::SimError::Invalid { .. }) => UsageError(e.to_string()).into(),
                    _ => e,
                }
            }),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Prints help and version as clap does; folds any other clap error into one line on stderr
/// and exits with status 2.
fn clap_exit(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    eprintln!("{}", one_line(&e.render().to_string()));
    ExitCode::from(2)
}

/// Folds clap's multi-line error into one line: the message and its details, with tips in
/// parentheses, without the usage and "for more information" lines.
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    let lines = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty());
    for line in lines {
        if !out.is_empty() {
            out.push(' ');
        }
        match line.strip_prefix("tip: ") {
            Some(tip) => out.push_str(&format!("(tip: {tip})")),
            None => out.push_str(line),
        }
    }
    out
}

/// Logs go to stderr; `--log` wins over `RUST_LOG`; the default is `warn`.
fn init_logging(flag: Option<&str>) -> Result<(), String> {
    let filter = match flag {
        Some(directives) => {
            EnvFilter::try_new(directives).map_err(|e| format!("invalid value '{directives}' for '--log': {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    Ok(())
}
