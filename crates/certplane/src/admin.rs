//! `certplane admin ...`: the operator's commands, run against the same data dir as the server.

use certplane_core::accounts::CloudKind;
use certplane_core::certificates::Certificate;
use certplane_core::clock::rfc3339;
use certplane_core::ids::parse_aws_account;
use certplane_core::CertificateId;
use clap::Subcommand;
use serde_json::json;

use crate::bootstrap::{self, Location};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// The certificate registry.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Writes the whole deployment to stdout as JSON lines.
    Export {
        #[command(flatten)]
        dir: Location,
    },
    /// Loads an export (FILE, or `-` for stdin) into an empty database.
    Import {
        file: String,
        #[command(flatten)]
        dir: Location,
    },
    /// Access keys for signed requests (outside --dev).
    AccessKey {
        #[command(subcommand)]
        command: AccessKeyCommand,
    },
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// Every certificate, whichever API made it.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// One certificate by registry id (hex SHA-256 of its DER).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
}

#[derive(Subcommand)]
pub enum AccountCommand {
    Create {
        #[arg(long)]
        aws_account_id: String,
        #[command(flatten)]
        dir: Location,
    },
}

#[derive(Subcommand)]
pub enum AccessKeyCommand {
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
}

fn cert_json(c: &Certificate) -> serde_json::Value {
    json!({
        "id": c.id.as_str(),
        "status": c.status.as_str(),
        "owner": c.owner,
        "region": c.region,
        "origin": c.origin,
        "caCertificateId": c.ca_certificate_id,
        "pendingTransferTo": c.pending_transfer_to,
        "notBefore": rfc3339(c.not_before),
        "notAfter": rfc3339(c.not_after),
        "createdAt": rfc3339(c.created_at),
        "lastModified": rfc3339(c.last_modified),
    })
}

fn cert_line(c: &Certificate) -> String {
    format!(
        "{}  {:<18}  {:<16}  {:<12}  {}  {}",
        c.id,
        c.status.as_str(),
        c.owner,
        c.region,
        rfc3339(c.not_before),
        rfc3339(c.not_after)
    )
}

fn print_json(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| format!("encoding output: {e}"))?
    );
    Ok(())
}

pub async fn run(cmd: AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::Export { dir } => crate::export::export(&dir).await,
        AdminCommand::Import { file, dir } => crate::export::import(&dir, &file).await,
        AdminCommand::Cert {
            command: CertCommand::List { json, dir },
        } => {
            let core = bootstrap::open(&dir).await?.core;
            let certs = core.registry_list().await.map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::Value::Array(
                    certs.iter().map(cert_json).collect(),
                ))
            } else {
                println!(
                    "{:<64}  {:<18}  {:<16}  {:<12}  NOT BEFORE / NOT AFTER",
                    "ID", "STATUS", "OWNER", "REGION"
                );
                for c in &certs {
                    println!("{}", cert_line(c));
                }
                Ok(())
            }
        }
        AdminCommand::Cert {
            command: CertCommand::Show { id, json, dir },
        } => {
            let id = CertificateId::parse(&id).map_err(|e| e.to_string())?;
            let core = bootstrap::open(&dir).await?.core;
            let c = core.registry_show(&id).await.map_err(|e| e.to_string())?;
            if json {
                print_json(&cert_json(&c))
            } else {
                println!("{}", cert_line(&c));
                print!("{}", c.pem);
                Ok(())
            }
        }
        AdminCommand::Account {
            command:
                AccountCommand::Create {
                    aws_account_id,
                    dir,
                },
        } => {
            let id = parse_aws_account(&aws_account_id).map_err(|e| e.to_string())?;
            let core = bootstrap::open(&dir).await?.core;
            core.create_account(&id, CloudKind::Aws)
                .await
                .map_err(|e| e.to_string())?;
            println!("created AWS account {id}");
            Ok(())
        }
        AdminCommand::AccessKey {
            command: AccessKeyCommand::Create { account, json, dir },
        } => {
            let core = bootstrap::open(&dir).await?.core;
            let key = core
                .create_access_key(&account)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&json!({
                    "AccessKeyId": key.id,
                    "SecretAccessKey": key.secret,
                    "Account": key.account,
                }))
            } else {
                println!("AccessKeyId:     {}", key.id);
                println!("SecretAccessKey: {}", key.secret);
                Ok(())
            }
        }
    }
}
