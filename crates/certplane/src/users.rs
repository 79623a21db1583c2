//! `certplane admin user create|list|delete`: users inside an account. Each has its own access
//! keys (`admin access-key create --user`) and IAM-style policies (`admin policy attach`).

use certplane_core::clock::rfc3339;
use certplane_core::users::User;
use clap::Subcommand;
use serde_json::json;

use crate::admin_args::{print_json, print_listing, AccountListing, AccountNamed};
use crate::bootstrap::{self, Location};

#[derive(Subcommand)]
pub enum UserCommand {
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    List(AccountListing),
    /// Deletes the user and its access keys.
    Delete(AccountNamed),
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "account": u.account,
        "name": u.name,
        "email": u.email,
        "policies": u.policies,
        "createdAt": rfc3339(u.created_at),
    })
}

pub async fn run(cmd: UserCommand) -> Result<(), String> {
    match cmd {
        UserCommand::Create {
            account,
            name,
            email,
            json,
            dir,
        } => {
            let core = bootstrap::open(&dir).await?.core;
            let u = core
                .create_user(&account, &name, email.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&user_json(&u))
            } else {
                println!("created user {} in account {}", u.name, u.account);
                Ok(())
            }
        }
        UserCommand::List(AccountListing { account, json, dir }) => {
            let core = bootstrap::open(&dir).await?.core;
            let users = core.list_users(&account).await.map_err(|e| e.to_string())?;
            print_listing(json, &users, user_json, |users| {
                println!("{:<32}  {:<32}  POLICIES", "NAME", "EMAIL");
                for u in users {
                    println!(
                        "{:<32}  {:<32}  {}",
                        u.name,
                        u.email.as_deref().unwrap_or("-"),
                        u.policies.join(",")
                    );
                }
            })
        }
        UserCommand::Delete(AccountNamed { account, name, dir }) => {
            let core = bootstrap::open(&dir).await?.core;
            core.delete_user(&account, &name)
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted user {name} and its access keys");
            Ok(())
        }
    }
}
