//! `certplane admin policy create|attach|detach|list|show`: IAM-style policy documents of an
//! account and which users they are attached to. (AWS IoT's own `CreatePolicy` documents, for
//! devices, are a different thing served by the AWS dialect.)

use certplane_core::clock::rfc3339;
use certplane_core::users::IamPolicy;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin_args::{print_listing, AccountListing, AccountNamed};
use crate::bootstrap::{self, Location};

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
    Attach(Attachment),
    Detach(Attachment),
    List(AccountListing),
    /// Prints the document as stored.
    Show(AccountNamed),
}

/// `--account ID --name POLICY --user NAME`.
#[derive(Args)]
pub struct Attachment {
    #[arg(long)]
    account: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    user: String,
    #[command(flatten)]
    dir: Location,
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
        PolicyCommand::Attach(a) => attach(a, true).await,
        PolicyCommand::Detach(a) => attach(a, false).await,
        PolicyCommand::List(AccountListing { account, json, dir }) => {
            let core = bootstrap::open(&dir).await?.core;
            let policies = core
                .list_iam_policies(&account)
                .await
                .map_err(|e| e.to_string())?;
            print_listing(json, &policies, policy_json, |policies| {
                for p in policies {
                    println!("{:<40}  {}", p.name, rfc3339(p.created_at));
                }
            })
        }
        PolicyCommand::Show(AccountNamed { account, name, dir }) => {
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

async fn attach(a: Attachment, attached: bool) -> Result<(), String> {
    let core = bootstrap::open(&a.dir).await?.core;
    core.set_iam_policy_attached(&a.account, &a.name, &a.user, attached)
        .await
        .map_err(|e| e.to_string())?;
    if attached {
        println!("attached policy {} to user {}", a.name, a.user);
    } else {
        println!("detached policy {} from user {}", a.name, a.user);
    }
    Ok(())
}
