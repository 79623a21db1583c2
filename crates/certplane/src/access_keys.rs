//! `certplane admin access-key create|list|disable|enable|delete`: the key pairs that sign
//! AWS SigV4 and Alibaba requests outside `--dev`. A secret is printed once, at create, and
//! never again (list shows ids only).

use certplane_core::accounts::{AccessKey, CloudKind};
use certplane_core::clock::rfc3339;
use certplane_core::error::DomainError;
use certplane_core::Core;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::admin_args::{print_json, print_listing, AccountListing};
use crate::bootstrap::{self, Location};

#[derive(Subcommand)]
pub enum AccessKeyCommand {
    /// Makes a key of a user, or of the account's root user without --user.
    Create {
        #[arg(long)]
        account: String,
        /// The user the key belongs to (see `admin user create`).
        #[arg(long)]
        user: Option<String>,
        /// Which cloud's key: it must match the account's (the default).
        #[arg(long, value_enum)]
        kind: Option<KeyKind>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// The keys of an account (ids, users and states; never secrets).
    List(AccountListing),
    /// Refuses every request signed with the key until it is enabled again.
    Disable(KeyRef),
    Enable(KeyRef),
    Delete(KeyRef),
}

/// `--id KEYID`: an access key (or an Azure OAuth client id).
#[derive(Args)]
pub struct KeyRef {
    #[arg(long)]
    id: String,
    #[command(flatten)]
    dir: Location,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Aws,
    Aliyun,
}

fn key_json(k: &AccessKey) -> serde_json::Value {
    json!({
        "AccessKeyId": k.id,
        "Account": k.account,
        "User": k.user,
        "Status": if k.disabled { "Inactive" } else { "Active" },
        "CreateDate": rfc3339(k.created_at),
    })
}

pub async fn run(cmd: AccessKeyCommand) -> Result<(), String> {
    match cmd {
        AccessKeyCommand::Create {
            account,
            user,
            kind,
            json,
            dir,
        } => {
            let core = bootstrap::open(&dir).await?.core;
            if let Some(kind) = kind {
                let acct = core
                    .get_account(&account)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no account {account}; create it first"))?;
                let want = match kind {
                    KeyKind::Aws => CloudKind::Aws,
                    KeyKind::Aliyun => CloudKind::Aliyun,
                };
                if acct.kind != want {
                    return Err(format!("account {account} is not a {kind:?} account"));
                }
            }
            let key = core
                .create_user_access_key(&account, user.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&json!({
                    "AccessKeyId": key.id,
                    "SecretAccessKey": key.secret,
                    "Account": key.account,
                    "User": key.user,
                }))
            } else {
                println!("AccessKeyId:     {}", key.id);
                println!("SecretAccessKey: {}", key.secret);
                Ok(())
            }
        }
        AccessKeyCommand::List(AccountListing { account, json, dir }) => {
            let core = bootstrap::open(&dir).await?.core;
            let keys = core
                .list_access_keys(&account)
                .await
                .map_err(|e| e.to_string())?;
            print_listing(json, &keys, key_json, |keys| {
                println!("{:<24}  {:<8}  {:<20}  CREATED", "ID", "STATUS", "USER");
                for k in keys {
                    println!(
                        "{:<24}  {:<8}  {:<20}  {}",
                        k.id,
                        if k.disabled { "Inactive" } else { "Active" },
                        k.user.as_deref().unwrap_or("(root)"),
                        rfc3339(k.created_at)
                    );
                }
            })
        }
        AccessKeyCommand::Disable(KeyRef { id, dir }) => set_disabled(&id, &dir, true).await,
        AccessKeyCommand::Enable(KeyRef { id, dir }) => set_disabled(&id, &dir, false).await,
        AccessKeyCommand::Delete(KeyRef { id, dir }) => {
            let core = bootstrap::open(&dir).await?.core;
            match core.delete_access_key(&id).await {
                Err(DomainError::NotFound { .. }) => oauth_fallback(&core, &id, None).await?,
                other => other.map_err(|e| e.to_string())?,
            }
            println!("deleted access key {id}");
            Ok(())
        }
    }
}

async fn set_disabled(id: &str, dir: &Location, disabled: bool) -> Result<(), String> {
    let core = bootstrap::open(dir).await?.core;
    match core.set_access_key_disabled(id, disabled).await {
        Err(DomainError::NotFound { .. }) => oauth_fallback(&core, id, Some(disabled)).await?,
        other => other.map_err(|e| e.to_string())?,
    }
    println!(
        "access key {id} is {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

/// Azure's credentials are OAuth clients: `--id` may name a client id instead of a key.
async fn oauth_fallback(core: &Core, id: &str, disabled: Option<bool>) -> Result<(), String> {
    match core.set_oauth_client_state(id, disabled).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("no access key or OAuth client {id}")),
        Err(e) => Err(e.to_string()),
    }
}
