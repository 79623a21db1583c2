//! The `certplane` binary: `serve` and the `admin` commands.

mod access_keys;
mod admin;
mod admin_args;
mod audit;
mod billing;
mod bootstrap;
mod ca_admin;
mod ca_custody;
mod config;
mod crl_state;
mod export;
mod gateway;
mod iam_policies;
mod listener;
mod metrics;
mod mqtt_instances;
mod revocation;
mod revocation_changes;
mod revocation_index;
mod server;
mod throttling;
mod tls;
mod users;
mod validation;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

// glibc malloc showed ~10 % of a node's CPU under load (arena lock handoffs between the async
// workers and the store threads); mimalloc's per-thread heaps avoid that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "certplane",
    version,
    about = "A self-hosted certificate control plane"
)]
struct Cli {
    /// A TOML file of flag values (`max-connections = 100`; keys are the long flag names).
    /// The command line wins over CERTPLANE_* environment variables, which win over the file.
    #[arg(long = config::CONFIG_FLAG, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// `Serve` carries every server flag; the command is parsed once at start, so its size is moot.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(server::ServeArgs),
    /// Applies pending database migrations and exits (`serve` also applies them at start).
    Migrate {
        #[command(flatten)]
        at: bootstrap::Location,
    },
    /// Operator commands on a deployment (they work while the server runs).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
}

fn main() -> ExitCode {
    let command = config::with_env(Cli::command());
    let args = match config::apply(&command, std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("certplane: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match command
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let log_format = match &cli.command {
        Command::Serve(args) => args.log_format(),
        _ => server::LogFormat::Text,
    };
    init_logging(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("certplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => server::serve(&args).await,
            Command::Migrate { at } => bootstrap::open(&at).await.map(|_| {
                println!("certplane: the database schema is up to date");
            }),
            Command::Admin { command } => admin::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certplane: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `CERTPLANE_LOG` is the filter (default `warn`). JSON: one object per
/// line, with the fields of the spans it was logged in (a request's `request_id`).
fn init_logging(format: server::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERTPLANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        server::LogFormat::Text => builder.init(),
        server::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
