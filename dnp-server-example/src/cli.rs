//! The command line: `dnp-server serve | worker | migrate | demo`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat, Mode};

/// dnp: one Do-Not-Play list, enforced on your music libraries.
#[derive(Debug, Parser)]
#[command(name = "dnp-server", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (with an embedded worker in the SQLite default).
    Serve,
    /// Run background jobs.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Run everything in-process against emulated music services, with a demo account.
    Demo {
        /// Keep the demo's data in this directory (default: a new temporary directory).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
        /// Listen on this address (default 127.0.0.1:8080; port 0 picks a free one).
        #[arg(long)]
        bind: Option<std::net::SocketAddr>,
    },
}

/// Parses the command line, runs the command, and returns the process exit code: 0 on
/// success, 2 for a configuration error (the message names the variable), 1 otherwise.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = match &cli.command {
        Command::Serve => Mode::Serve,
        Command::Worker => Mode::Worker,
        Command::Migrate => Mode::Migrate,
        Command::Demo { .. } => Mode::Demo,
    };
    // The demo makes its own configuration; only the log settings come from the environment.
    let lookup_mode = |name: &str| {
        if mode == Mode::Demo && !matches!(name, "LOG_FORMAT") { None } else { std::env::var(name).ok() }
    };
    let config = match Config::from_lookup(mode, lookup_mode) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dnp-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dnp-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => crate::run::serve(config).await,
            Command::Worker => crate::run::worker(config).await,
            Command::Migrate => crate::run::migrate(config).await,
            Command::Demo { data_dir, bind } => crate::demo::run(config, data_dir, bind).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::run::StartError::Config(e)) => {
            eprintln!("dnp-server: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!(error = %e, "dnp-server stopped");
            eprintln!("dnp-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
