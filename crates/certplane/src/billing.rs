//! Azure Billing in the binary: the `serve` options, the background sweep that moves accepted
//! transfers along, and the `admin billing` / `admin oauth-client` commands.

use std::time::Duration;

use certplane_core::billing::BillingImport;
use certplane_core::Core;
use clap::Subcommand;
use serde_json::json;

use crate::admin_args::print_json;
use crate::bootstrap::{self, Location};

#[derive(clap::Args, Clone, Debug)]
pub struct BillingArgs {
    /// Seconds a billing transfer stays Pending before it expires (server time).
    #[arg(long, default_value_t = 15 * 24 * 3600)]
    pub billing_transfer_ttl: i64,
}

/// How often the sweep advances accepted transfers (one step per transfer per tick:
/// NotStarted → InProgress → Completed/Failed).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Transfers the sweep advances at once.
const SWEEP_PARALLELISM: usize = 32;

impl BillingArgs {
    pub fn apply(&self, core: Core) -> Result<Core, String> {
        if self.billing_transfer_ttl <= 0 {
            return Err("--billing-transfer-ttl must be a positive number of seconds".into());
        }
        Ok(core.with_billing_transfer_ttl(self.billing_transfer_ttl.saturating_mul(1000)))
    }
}

/// Advances every accepted transfer one step a second, for the life of the server. Each step
/// is a compare-and-set in core, so sweeps of several nodes (or a restart mid-way) never apply
/// a step twice.
pub fn spawn_sweep(core: Core) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let names = match core.billing_transfers_in_progress().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "billing sweep: cannot list transfers");
                    continue;
                }
            };
            // A few transfers at a time, so a long work list does not wait on one commit each.
            for chunk in names.chunks(SWEEP_PARALLELISM) {
                let mut set = tokio::task::JoinSet::new();
                for name in chunk {
                    let (core, name) = (core.clone(), name.clone());
                    set.spawn(async move {
                        if let Err(e) = core.advance_billing_transfer(&name).await {
                            tracing::warn!(transfer = %name, error = %e, "billing sweep: not advanced");
                        }
                    });
                }
                while set.join_next().await.is_some() {}
            }
        }
    })
}

#[derive(Subcommand)]
pub enum BillingCommand {
    /// Loads billing accounts, products and OAuth clients from a JSON file (`-` for stdin);
    /// idempotent, and safe while the server runs.
    Import {
        file: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Every product: id, type, status, holder and the scope that bills it.
    Products {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
}

#[derive(Subcommand)]
pub enum OauthClientCommand {
    /// A client-credentials OAuth client of TENANT acting as EMAIL; the secret is shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// The tenant's user the client acts for (`admin account create --azure-tenant`,
        /// `admin user create`); without it, the tenant's root identity.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
}

pub async fn run_billing(cmd: BillingCommand) -> Result<(), String> {
    match cmd {
        BillingCommand::Import { file, json, dir } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("reading stdin: {e}"))?
            } else {
                std::fs::read_to_string(&file).map_err(|e| format!("reading {file}: {e}"))?
            };
            let import: BillingImport =
                serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
            let core = bootstrap::open(&dir).await?.core;
            let r = core
                .billing_import(&import)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::to_value(&r).map_err(|e| e.to_string())?)
            } else {
                println!(
                    "billing accounts: {} created, {} updated; products: {} created, {} updated; OAuth clients: {} created, {} updated; {} unchanged",
                    r.billing_accounts_created,
                    r.billing_accounts_updated,
                    r.products_created,
                    r.products_updated,
                    r.oauth_clients_created,
                    r.oauth_clients_updated,
                    r.unchanged
                );
                Ok(())
            }
        }
        BillingCommand::Products { json, dir } => {
            let core = bootstrap::open(&dir).await?.core;
            let products = core.billing_products().await.map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::Value::Array(
                    products
                        .iter()
                        .map(|p| {
                            json!({
                                "id": p.id,
                                "productType": p.product_type.as_str(),
                                "status": p.status.as_str(),
                                "owner": p.owner,
                                "scope": p.scope,
                                "transferFailure": p.transfer_failure,
                                "inTransfer": p.in_transfer,
                            })
                        })
                        .collect(),
                ))
            } else {
                println!(
                    "{:<40}  {:<18}  {:<8}  {:<30}  SCOPE",
                    "ID", "TYPE", "STATUS", "OWNER"
                );
                for p in &products {
                    println!(
                        "{:<40}  {:<18}  {:<8}  {:<30}  {}",
                        p.id,
                        p.product_type.as_str(),
                        p.status.as_str(),
                        p.owner,
                        p.scope.as_deref().unwrap_or("-")
                    );
                }
                Ok(())
            }
        }
    }
}

pub async fn run_oauth_client(cmd: OauthClientCommand) -> Result<(), String> {
    match cmd {
        OauthClientCommand::Create {
            tenant,
            email,
            user,
            json,
            dir,
        } => {
            let core = bootstrap::open(&dir).await?.core;
            let c = core
                .create_user_oauth_client(&tenant, &email, user.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&json!({
                    "tenant": c.tenant,
                    "clientId": c.client_id,
                    "clientSecret": c.client_secret,
                    "email": c.email,
                }))
            } else {
                println!("tenant:        {}", c.tenant);
                println!("client id:     {}", c.client_id);
                println!("client secret: {} (shown once)", c.client_secret);
                println!("email:         {}", c.email);
                Ok(())
            }
        }
    }
}
