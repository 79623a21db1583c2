//! The `certplane` binary: `serve` and the `admin` commands.

mod access_keys;
mod admin;
mod audit;
mod billing;
mod bootstrap;
mod ca_admin;
mod ca_custody;
mod export;
mod gateway;
mod iam_policies;
mod listener;
mod mqtt_instances;
mod revocation;
mod server;
mod throttling;
mod tls;
mod users;
mod validation;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CERTPLANE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
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
