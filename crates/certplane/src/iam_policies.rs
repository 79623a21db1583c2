//! `certplane admin policy create|attach|detach|list|show`: IAM-style policy documents of an
//! account and which users they are attached to. (AWS IoT's own `CreatePolicy` documents, for
//! devices, are a different thing served by the AWS dialect.)

use certplane_core::clock::rfc3339;
use certplane_core::users::IamPolicy;
use clap::Subcommand;
use serde_json::json;

use crate::bootstrap::{self, Location};
use crate::users::print_json;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Stores a policy document (validated; the error says what is wrong).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// The JSON document (a file, or `-` for stdin).
        #[arg(long)]
        document: String,
        #[command(flatten)]
        dir: Location,
    },
    Attach {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        user: String,
        #[command(flatten)]
        dir: Location,
    },
    Detach {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        user: String,
        #[command(flatten)]
        dir: Location,
    },
    List {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Prints the document as stored.
    Show {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        dir: Location,
    },
}

fn policy_json(p: &IamPolicy) -> serde_json::Value {
    json!({
        "account": p.account,
        "name": p.name,
        "createdAt": rfc3339(p.created_at),
    })
}

fn read_document(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| format!("reading the document from stdin: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))
    }
}

pub async fn run(cmd: PolicyCommand) -> Result<(), String> {
    match cmd {
        PolicyCommand::Create {
            account,
            name,
            document,
            dir,
        } => {
            let text = read_document(&document)?;
            let core = bootstrap::open(&dir).await?.core;
            core.create_iam_policy(&account, &name, &text)
                .await
                .map_err(|e| e.to_string())?;
            println!("created policy {name} in account {account}");
            Ok(())
        }
        PolicyCommand::Attach {
            account,
            name,
            user,
            dir,
        } => {
            let core = bootstrap::open(&dir).await?.core;
            core.set_iam_policy_attached(&account, &name, &user, true)
                .await
                .map_err(|e| e.to_string())?;
            println!("attached policy {name} to user {user}");
            Ok(())
        }
        PolicyCommand::Detach {
            account,
            name,
            user,
            dir,
        } => {
            let core = bootstrap::open(&dir).await?.core;
            core.set_iam_policy_attached(&account, &name, &user, false)
                .await
                .map_err(|e| e.to_string())?;
            println!("detached policy {name} from user {user}");
            Ok(())
        }
        PolicyCommand::List { account, json, dir } => {
            let core = bootstrap::open(&dir).await?.core;
            let policies = core
                .list_iam_policies(&account)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::Value::Array(
                    policies.iter().map(policy_json).collect(),
                ))
            } else {
                for p in &policies {
                    println!("{:<40}  {}", p.name, rfc3339(p.created_at));
                }
                Ok(())
            }
        }
        PolicyCommand::Show { account, name, dir } => {
            let core = bootstrap::open(&dir).await?.core;
            let p = core
                .get_iam_policy(&account, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", p.document);
            Ok(())
        }
    }
}
