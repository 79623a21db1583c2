//! `certplane admin mqtt-instance create|list|delete`: the ApsaraMQ for MQTT instances whose
//! certificate APIs (OnsMqtt 2020-04-20) and device gateway certplane serves.

use certplane_core::clock::rfc3339;
use certplane_core::device_certificates::{serial_sn, Tenant};
use certplane_core::mqtt_instances::{Edition, MqttInstance};
use clap::Subcommand;
use serde_json::json;

use crate::bootstrap::{self, Location};

#[derive(Subcommand)]
pub enum MqttInstanceCommand {
    /// Makes an instance owned by an Alibaba Cloud uid.
    Create {
        /// The owning Alibaba Cloud account (16-digit uid).
        #[arg(long)]
        account: String,
        /// The instance id (e.g. post-cn-7mz2d1x2a0b).
        #[arg(long)]
        instance_id: String,
        #[arg(long, default_value = "cn-hangzhou")]
        region: String,
        /// Certificate APIs work on Platinum instances only.
        #[arg(long, value_enum, default_value_t = EditionArg::Platinum)]
        edition: EditionArg,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Every instance.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Registers a device certificate ahead of its first connection, exactly as that connection
    /// through the gateway would (it must chain to an active CA registered in the instance).
    RegisterDevice {
        #[arg(long)]
        instance_id: String,
        /// The device certificate (PEM).
        #[arg(long)]
        cert: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: Location,
    },
    /// Deletes an instance that has no CA certificates left.
    Delete {
        #[arg(long)]
        instance_id: String,
        #[command(flatten)]
        dir: Location,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditionArg {
    Platinum,
    Professional,
    Basic,
}

impl From<EditionArg> for Edition {
    fn from(e: EditionArg) -> Self {
        match e {
            EditionArg::Platinum => Edition::Platinum,
            EditionArg::Professional => Edition::Professional,
            EditionArg::Basic => Edition::Basic,
        }
    }
}

fn instance_json(i: &MqttInstance) -> serde_json::Value {
    json!({
        "instanceId": i.id,
        "account": i.account,
        "region": i.region,
        "edition": i.edition.as_str(),
        "createdAt": rfc3339(i.created_at),
    })
}

fn print(v: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| format!("encoding output: {e}"))?
    );
    Ok(())
}

pub async fn run(cmd: MqttInstanceCommand) -> Result<(), String> {
    match cmd {
        MqttInstanceCommand::Create {
            account,
            instance_id,
            region,
            edition,
            json,
            dir,
        } => {
            if account.len() != 16 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "an Alibaba Cloud uid is 16 digits, got {account:?}"
                ));
            }
            let core = bootstrap::open(&dir).await?.core;
            let i = core
                .create_mqtt_instance(&instance_id, &account, &region, edition.into())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print(&instance_json(&i))
            } else {
                println!(
                    "created MQTT instance {} ({}, {}) for {}",
                    i.id,
                    i.edition.as_str(),
                    i.region,
                    i.account
                );
                Ok(())
            }
        }
        MqttInstanceCommand::List { json, dir } => {
            let core = bootstrap::open(&dir).await?.core;
            let all = core
                .list_mqtt_instances()
                .await
                .map_err(|e| e.to_string())?;
            if json {
                print(&serde_json::Value::Array(
                    all.iter().map(instance_json).collect(),
                ))
            } else {
                println!(
                    "{:<32}  {:<16}  {:<14}  EDITION",
                    "INSTANCE", "ACCOUNT", "REGION"
                );
                for i in &all {
                    println!(
                        "{:<32}  {:<16}  {:<14}  {}",
                        i.id,
                        i.account,
                        i.region,
                        i.edition.as_str()
                    );
                }
                Ok(())
            }
        }
        MqttInstanceCommand::RegisterDevice {
            instance_id,
            cert,
            json,
            dir,
        } => {
            let pem = std::fs::read_to_string(&cert)
                .map_err(|e| format!("reading {}: {e}", cert.display()))?;
            let parsed = certplane_pki::parse_certificate_pem(&pem).map_err(|e| e.to_string())?;
            let core = bootstrap::open(&dir).await?.core;
            let instance = core
                .mqtt_instance(&instance_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no MQTT instance {instance_id}"))?;
            let a = core
                .admit_device(&Tenant::Mqtt(instance), &parsed.der)
                .await
                .map_err(|e| e.to_string())?;
            let sn = serial_sn(&parsed.serial_hex);
            if let Err(r) = &a.verdict {
                return Err(format!("device certificate {sn} refused: {r}"));
            }
            if json {
                print(&json!({
                    "certificateId": a.certificate_id.as_str(),
                    "deviceSn": sn,
                    "registered": a.registered_now,
                }))
            } else {
                println!(
                    "device certificate {sn} {} (registry id {})",
                    if a.registered_now {
                        "registered, active"
                    } else {
                        "already registered, active"
                    },
                    a.certificate_id
                );
                Ok(())
            }
        }
        MqttInstanceCommand::Delete { instance_id, dir } => {
            let core = bootstrap::open(&dir).await?.core;
            core.delete_mqtt_instance(&instance_id)
                .await
                .map_err(|e| e.to_string())?;
            println!("deleted MQTT instance {instance_id}");
            Ok(())
        }
    }
}
