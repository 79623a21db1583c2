//! `certplane-bench`: a load generator for the AWS IoT certificate API.
//!
//! Runs the describe, update and transfer workloads one after another against one server
//! (certplane `--dev` or moto) and prints, per workload, a human line and a JSON line.

mod azure;
mod cpu;
mod http;
mod orders;
mod sigv4;
mod workloads;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use crate::http::Target;
use crate::workloads::{Kind, Outcome, Settings};

#[derive(Parser)]
#[command(
    name = "certplane-bench",
    version,
    about = "Load generator for the AWS IoT certificate API (certplane --dev or moto)"
)]
struct Cli {
    /// Base URL of the server, e.g. http://127.0.0.1:8080; several comma-separated URLs (nodes
    /// of one service) share the connections round-robin.
    #[arg(long)]
    target: String,
    /// Name of the target in the output (e.g. certplane, moto).
    #[arg(long)]
    label: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per workload (timed loop; setup is not timed).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Send `x-moto-account-id: <account>` (moto picks the account from it).
    #[arg(long)]
    account_header: bool,
    /// Comma-separated workloads to run, in order.
    #[arg(long, default_value = "describe,update,transfer")]
    workloads: String,
    /// A PEM CSR the order workloads send (their certificates certify its key).
    #[arg(long)]
    csr_file: Option<std::path::PathBuf>,
    /// Load-generator threads (1 = a single-threaded runtime, leaving the other cores to the
    /// server when both run on one machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Report the CPU time of a process group during each timed loop: `NAME=PID[,PID...]` or
    /// `NAME=comm:PROCESS_NAME` (e.g. `postgres=comm:postgres`). Repeatable; the load
    /// generator's own CPU is always reported as `client`.
    #[arg(long = "cpu", value_name = "NAME=PIDS")]
    cpu: Vec<String>,
    /// Sign every AWS request with this access key (`ID:SECRET`), for a server outside
    /// `--dev`: the verified-mode workloads of the identity benchmark.
    #[arg(long, value_name = "ID:SECRET")]
    sign_with: Option<String>,
    /// A shell command run right before each timed loop (after its setup), e.g.
    /// `callgrind_control -z PID` to count the server's instructions of the loop alone.
    #[arg(long, value_name = "COMMAND")]
    before_loop: Option<String>,
    /// A shell command run right after each timed loop, e.g. `callgrind_control -d PID`.
    #[arg(long, value_name = "COMMAND")]
    after_loop: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(spec) = &cli.sign_with {
        if let Err(e) = sigv4::configure(spec) {
            eprintln!("certplane-bench: {e}");
            return ExitCode::from(2);
        }
    }
    let targets: Result<Vec<Target>, String> = cli
        .target
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| Target::parse(t.trim()))
        .collect();
    let targets = match targets {
        Ok(t) if !t.is_empty() => t,
        Ok(_) => {
            eprintln!("certplane-bench: --target is empty");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("certplane-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let kinds: Result<Vec<Kind>, String> = cli
        .workloads
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Kind::parse)
        .collect();
    let kinds = match kinds {
        Ok(k) if !k.is_empty() => k,
        Ok(_) => {
            eprintln!("certplane-bench: --workloads is empty");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("certplane-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if !(cli.duration.is_finite() && cli.duration > 0.0) {
        eprintln!("certplane-bench: --duration must be a positive number of seconds");
        return ExitCode::from(2);
    }
    if cli.concurrency == 0 {
        eprintln!("certplane-bench: --concurrency must be at least 1");
        return ExitCode::from(2);
    }
    let csr = match &cli.csr_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(pem) => Some(form_encode(&pem)),
            Err(e) => {
                eprintln!("certplane-bench: reading {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let mut cpu_watches = vec![cpu::Watch::this_process()];
    for spec in &cli.cpu {
        match cpu::Watch::parse(spec) {
            Ok(w) => cpu_watches.push(w),
            Err(e) => {
                eprintln!("certplane-bench: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let settings = Settings {
        cpu: cpu_watches,
        csr,
        targets,
        label: cli.label,
        concurrency: cli.concurrency,
        duration: Duration::from_secs_f64(cli.duration),
        account_header: cli.account_header,
        before_loop: cli.before_loop,
        after_loop: cli.after_loop,
    };

    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("certplane-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let any_failed = runtime.block_on(async {
        let mut any_failed = false;
        for kind in kinds {
            let outcome = workloads::run(&settings, kind).await;
            any_failed |= matches!(outcome, Outcome::Failed(_));
            report(&settings, kind, &outcome);
        }
        any_failed
    });
    if any_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn report(s: &Settings, kind: Kind, outcome: &Outcome) {
    let label = &s.label;
    let name = kind.name();
    let line = match outcome {
        Outcome::Measured(m) => {
            let (rps, p50, p99) = (m.rps(), m.percentile_ms(0.5), m.percentile_ms(0.99));
            let secs = m.elapsed.as_secs_f64().max(f64::EPSILON);
            // Per group: CPU microseconds per successful operation, and cores kept busy.
            let cpu: Vec<(String, f64, f64)> = m
                .cpu
                .iter()
                .map(|(name, spent)| {
                    let s = spent.as_secs_f64();
                    (name.clone(), s * 1e6 / (m.ok.max(1) as f64), s / secs)
                })
                .collect();
            let cpu_text: String = cpu
                .iter()
                .map(|(n, us, cores)| format!("  {n} {us:.0} µs/op {cores:.2} cores"))
                .collect();
            println!(
                "{label:<10} {name:<9} {rps:>10.1} {unit:<13}  p50 {p50:>8.3} ms  p99 {p99:>8.3} ms  errors {errors}  ({ok} ok in {secs:.2} s, {conc} connections)",
                unit = kind.unit(),
                errors = m.errors,
                ok = m.ok,
                secs = m.elapsed.as_secs_f64(),
                conc = s.concurrency,
            );
            if !cpu_text.is_empty() {
                println!("{label:<10} {name:<9} cpu:{cpu_text}");
            }
            json!({
                "label": label,
                "workload": name,
                "status": "ok",
                "rps": round3(rps),
                "p50_ms": round3(p50),
                "p99_ms": round3(p99),
                "errors": m.errors,
                "ok": m.ok,
                "elapsed_s": round3(m.elapsed.as_secs_f64()),
                "concurrency": s.concurrency,
                "cpu": cpu
                    .iter()
                    .map(|(n, us, cores)| (n.clone(), json!({"us_per_op": round3(*us), "cores": round3(*cores)})))
                    .collect::<serde_json::Map<_, _>>(),
            })
        }
        Outcome::Unsupported(why) => {
            println!("{label:<10} {name:<9} unsupported: {why}");
            json!({
                "label": label,
                "workload": name,
                "status": "unsupported",
                "rps": null,
                "p50_ms": null,
                "p99_ms": null,
                "errors": null,
                "reason": why,
                "concurrency": s.concurrency,
            })
        }
        Outcome::Failed(why) => {
            println!("{label:<10} {name:<9} FAILED: {why}");
            json!({
                "label": label,
                "workload": name,
                "status": "failed",
                "rps": null,
                "p50_ms": null,
                "p99_ms": null,
                "errors": null,
                "reason": why,
                "concurrency": s.concurrency,
            })
        }
    };
    println!("{line}");
}

/// `application/x-www-form-urlencoded` text: unreserved characters as they are, space as `+`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
