//! `certplane admin ...`: the operator's commands, run against the same data dir as the server.

use certplane_core::accounts::CloudKind;
use certplane_core::certificates::Certificate;
use certplane_core::clock::rfc3339;
use certplane_core::ids::parse_aws_account;
use certplane_core::CertificateId;
use clap::Subcommand;
use serde_json::json;

use crate::admin_args::print_json;
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
    /// Alibaba Cloud SSL Certificates Service: quota packages.
    Cas {
        #[command(subcommand)]
        command: CasCommand,
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
        command: crate::access_keys::AccessKeyCommand,
    },
    /// Users inside an account (IAM-style identities with their own keys and policies).
    User {
        #[command(subcommand)]
        command: crate::users::UserCommand,
    },
    /// IAM-style policies of an account, attached to users.
    Policy {
        #[command(subcommand)]
        command: crate::iam_policies::PolicyCommand,
    },
    /// The audit trail: API changes, denials and failed changes, oldest first.
    Audit(crate::audit::AuditArgs),
    /// ApsaraMQ for MQTT instances (OnsMqtt certificate APIs and the device gateway).
    MqttInstance {
        #[command(subcommand)]
        command: crate::mqtt_instances::MqttInstanceCommand,
    },
    /// Azure Billing: billing accounts, products and OAuth clients.
    Billing {
        #[command(subcommand)]
        command: crate::billing::BillingCommand,
    },
    /// OAuth2 clients of the Azure (Entra) token endpoint.
    OauthClient {
        #[command(subcommand)]
        command: crate::billing::OauthClientCommand,
    },
    /// The CAs whose keys certplane holds: list, create, import, rotate, master key.
    Ca {
        #[command(subcommand)]
        command: crate::ca_admin::CaCommand,
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
    /// Makes an account: an AWS account (12 digits), an Alibaba Cloud uid (16 digits) or an
    /// Entra tenant (whose users hold OAuth clients).
    Create {
        #[arg(
            long,
            required_unless_present_any = ["aliyun_uid", "azure_tenant"],
            conflicts_with_all = ["aliyun_uid", "azure_tenant"]
        )]
        aws_account_id: Option<String>,
        #[arg(long, conflicts_with = "azure_tenant")]
        aliyun_uid: Option<String>,
        #[arg(long)]
        azure_tenant: Option<String>,
        #[command(flatten)]
        dir: Location,
    },
}

#[derive(Subcommand)]
pub enum CasCommand {
    Package {
        #[command(subcommand)]
        command: PackageCommand,
    },
}

#[derive(Subcommand)]
pub enum PackageCommand {
    /// Adds COUNT certificate applications of a resource plan to an account.
    Add {
        #[arg(long)]
        account: String,
        #[arg(long)]
        product_code: String,
        #[arg(long)]
        count: i64,
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

pub async fn run(cmd: AdminCommand) -> Result<(), String> {
    match cmd {
        AdminCommand::Export { dir } => crate::export::export(&dir).await,
        AdminCommand::Import { file, dir } => crate::export::import(&dir, &file).await,
        AdminCommand::MqttInstance { command } => crate::mqtt_instances::run(command).await,
        AdminCommand::Billing { command } => crate::billing::run_billing(command).await,
        AdminCommand::OauthClient { command } => crate::billing::run_oauth_client(command).await,
        AdminCommand::Ca { command } => crate::ca_admin::run(command).await,
        AdminCommand::AccessKey { command } => crate::access_keys::run(command).await,
        AdminCommand::User { command } => crate::users::run(command).await,
        AdminCommand::Policy { command } => crate::iam_policies::run(command).await,
        AdminCommand::Audit(args) => crate::audit::run(args).await,
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
                    aliyun_uid,
                    azure_tenant,
                    dir,
                },
        } => {
            let (id, kind) = match (aws_account_id, aliyun_uid, azure_tenant) {
                (Some(a), None, None) => (
                    parse_aws_account(&a).map_err(|e| e.to_string())?,
                    CloudKind::Aws,
                ),
                (None, Some(u), None) if u.len() == 16 && u.bytes().all(|b| b.is_ascii_digit()) => {
                    (u, CloudKind::Aliyun)
                }
                (None, Some(u), None) => {
                    return Err(format!("an Alibaba Cloud uid is 16 digits, got {u:?}"))
                }
                (None, None, Some(t)) if certplane_core::oauth::valid_oauth_name(&t) => {
                    (t, CloudKind::Azure)
                }
                (None, None, Some(t)) => return Err(format!("{t:?} is not a tenant name")),
                _ => {
                    return Err(
                        "give exactly one of --aws-account-id, --aliyun-uid and --azure-tenant"
                            .into(),
                    )
                }
            };
            let core = bootstrap::open(&dir).await?.core;
            core.create_account(&id, kind)
                .await
                .map_err(|e| e.to_string())?;
            println!("created account {id}");
            Ok(())
        }
        AdminCommand::Cas {
            command:
                CasCommand::Package {
                    command:
                        PackageCommand::Add {
                            account,
                            product_code,
                            count,
                            dir,
                        },
                },
        } => {
            let core = bootstrap::open(&dir).await?.core;
            let p = core
                .add_package(&account, &product_code, count)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{} {}: total {}, used {}, issued {}",
                p.account, p.product_code, p.total_count, p.used_count, p.issued_count
            );
            Ok(())
        }
    }
}
