//! `certplane admin ca …`: the CAs whose keys certplane holds. Every command works while the
//! server runs; servers pick the change up within seconds (see `server::watch_cas`).

use clap::Subcommand;
use zeroize::Zeroizing;

use crate::bootstrap::{self, Location};
use crate::ca_custody::{CaSummary, NewCa};
use certplane_core::clock::rfc3339;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Every held CA: the active one (signs new certificates) first.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// One held CA, with its certificate.
    Show {
        ca_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Makes a new CA (a fresh ECDSA P-256 key, sealed under the master key, or generated in
    /// the PKCS#11 token with --pkcs11) and holds it; --activate makes it sign from now on.
    Create {
        /// The subject CN (default: "certplane issuing CA" and the time it is made, so CAs
        /// of successive rotations are told apart by name too).
        #[arg(long)]
        common_name: Option<String>,
        /// Generate the key inside the configured PKCS#11 token; it never leaves it.
        #[arg(long)]
        pkcs11: bool,
        #[arg(long)]
        activate: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Holds an existing CA: its certificate (PEM; the first of a chain) and its private key
    /// (PKCS#8 PEM). --activate makes it sign from now on.
    Import {
        #[arg(long, value_name = "FILE")]
        cert: std::path::PathBuf,
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        #[arg(long)]
        activate: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Starts a new issuing CA (or, with --to, makes a held one active). The CA that signed
    /// until now is retired: it keeps answering CRL and OCSP for what it signed.
    Rotate {
        /// A held CA to make active instead of creating a new one.
        #[arg(long, value_name = "CA_ID")]
        to: Option<String>,
        #[arg(long)]
        common_name: Option<String>,
        #[arg(long)]
        pkcs11: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Re-seals every software CA key under a new master key (64 hex digits in FILE). With the
    /// data dir's generated key, the file there is replaced; with --master-key-file, start the
    /// servers with the new file afterwards (running ones keep working with the keys they hold).
    RotateMasterKey {
        #[arg(long, value_name = "FILE")]
        new_master_key_file: std::path::PathBuf,
        #[command(flatten)]
        dir: Location,
    },
}

fn default_name(now: certplane_core::clock::Millis) -> String {
    let mut at = rfc3339(now);
    // Whole seconds: `2026-12-02T18:46:58Z`.
    if let Some(dot) = at.find('.') {
        at.truncate(dot);
        at.push('Z');
    }
    format!("certplane issuing CA {at}")
}

fn line(s: &CaSummary) -> String {
    format!(
        "{}  {:<8}  {:<8}  {:<11}  {}  {}",
        s.ca_id,
        s.status,
        s.custody,
        s.origin,
        rfc3339(s.not_after),
        s.common_name
    )
}

fn summary_json(s: &CaSummary) -> serde_json::Value {
    serde_json::json!({
        "caId": s.ca_id,
        "commonName": s.common_name,
        "status": s.status,
        "custody": s.custody,
        "origin": s.origin,
        "createdAt": rfc3339(s.created_at),
        "retiredAt": s.retired_at.map(rfc3339),
        "notAfter": rfc3339(s.not_after),
        "certificatePem": s.certificate_pem,
    })
}

fn print(s: &CaSummary, json: bool) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary_json(s))
                .map_err(|e| format!("encoding output: {e}"))?
        );
    } else {
        println!("{}", line(s));
    }
    Ok(())
}

fn read(path: &std::path::Path, what: &str) -> Result<Zeroizing<String>, String> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("reading the {what} {}: {e}", path.display()))
}

pub async fn run(cmd: CaCommand) -> Result<(), String> {
    match cmd {
        CaCommand::List { json, dir } => {
            let opened = bootstrap::open(&dir).await?;
            let all = opened.custody.list().await?;
            if json {
                let v: Vec<_> = all.iter().map(summary_json).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v)
                        .map_err(|e| format!("encoding output: {e}"))?
                );
            } else {
                for s in &all {
                    println!("{}", line(s));
                }
            }
            Ok(())
        }
        CaCommand::Show { ca_id, json, dir } => {
            let opened = bootstrap::open(&dir).await?;
            let s = opened
                .custody
                .list()
                .await?
                .into_iter()
                .find(|s| s.ca_id == ca_id)
                .ok_or_else(|| format!("no held CA has the id {ca_id:?}"))?;
            if json {
                print(&s, true)
            } else {
                println!("{}", line(&s));
                print!("{}", s.certificate_pem);
                Ok(())
            }
        }
        CaCommand::Create {
            common_name,
            pkcs11,
            activate,
            json,
            dir,
        } => {
            let opened = bootstrap::open(&dir).await?;
            let now = opened.core.now();
            let s = opened
                .custody
                .add(
                    NewCa::Generate {
                        common_name: common_name.unwrap_or_else(|| default_name(now)),
                        in_token: pkcs11,
                    },
                    activate,
                    now,
                )
                .await?;
            print(&s, json)
        }
        CaCommand::Import {
            cert,
            key,
            activate,
            json,
            dir,
        } => {
            let cert_pem = read(&cert, "CA certificate")?.to_string();
            let key_pem = read(&key, "CA private key")?;
            let opened = bootstrap::open(&dir).await?;
            let now = opened.core.now();
            let s = opened
                .custody
                .add(NewCa::Import { cert_pem, key_pem }, activate, now)
                .await?;
            print(&s, json)
        }
        CaCommand::Rotate {
            to,
            common_name,
            pkcs11,
            json,
            dir,
        } => {
            let opened = bootstrap::open(&dir).await?;
            let now = opened.core.now();
            let s = match to {
                Some(id) => opened.custody.activate(&id, now).await?,
                None => {
                    opened
                        .custody
                        .add(
                            NewCa::Generate {
                                common_name: common_name.unwrap_or_else(|| default_name(now)),
                                in_token: pkcs11,
                            },
                            true,
                            now,
                        )
                        .await?
                }
            };
            print(&s, json)
        }
        CaCommand::RotateMasterKey {
            new_master_key_file,
            dir,
        } => {
            let text = read(&new_master_key_file, "new master key file")?;
            let new = certplane_pki::MasterKey::from_text(&text)
                .map_err(|e| format!("{}: {e}", new_master_key_file.display()))?;
            let opened = bootstrap::open(&dir).await?;
            let (old, new) = opened.custody.rotate_master_key(&new).await?;
            println!("re-sealed the CA keys: master key {old} -> {new}");
            Ok(())
        }
    }
}
