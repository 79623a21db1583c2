//! ApsaraMQ for MQTT instances: which Alibaba Cloud account owns an instance, its region and its
//! edition. An instance is also a registry scope of its own: its CA and device certificates live
//! in the one certificate registry under `Scope { account: uid, region: "mqtt:<instance id>" }`,
//! so they share the registry's revocation path and clock with the AWS and CAS certificates.

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::error::{DomainError, DomainResult, Resource};
use crate::ids::Scope;
use crate::service::Core;
use crate::store::{self, Document, Filter, Kind, PageQuery};

/// The region prefix of an instance's registry scope (never an AWS or Alibaba region name).
pub const MQTT_SCOPE_PREFIX: &str = "mqtt:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    Platinum,
    Professional,
    Basic,
}

impl Edition {
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Platinum => "platinum",
            Edition::Professional => "professional",
            Edition::Basic => "basic",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "platinum" => Some(Edition::Platinum),
            "professional" => Some(Edition::Professional),
            "basic" => Some(Edition::Basic),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttInstance {
    pub id: String,
    /// The Alibaba Cloud uid that owns the instance.
    pub account: String,
    pub region: String,
    pub edition: Edition,
    pub created_at: Millis,
}

impl MqttInstance {
    /// Where this instance's CA and device certificates live in the registry.
    pub fn registry_scope(&self) -> Scope {
        Scope::new(&self.account, format!("{MQTT_SCOPE_PREFIX}{}", self.id))
    }
}

impl Document for MqttInstance {
    const KIND: Kind = Kind::MqttInstance;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn account(&self) -> String {
        self.account.clone()
    }
    fn region(&self) -> String {
        self.region.clone()
    }
}

/// Instance ids as the console makes them (`post-cn-7mz2d1x2a0b`, `mqtt-cn-…`): lower-case
/// letters, digits and `-`, so an id is also a valid DNS label (the gateway selects an instance
/// by the first label of the TLS server name).
pub fn parse_instance_id(s: &str) -> DomainResult<String> {
    let ok = (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(DomainError::invalid(format!(
            "an MQTT instance id is 3 to 63 lower-case letters, digits and '-' (like \
             post-cn-7mz2d1x2a0b), got {s:?}"
        )))
    }
}

/// Why an instance refuses a certificate call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceRefusal {
    /// No such instance.
    NotFound,
    /// The instance belongs to another account.
    NotOwner,
    /// Certificate APIs need a Platinum instance.
    NotPlatinum(Edition),
}

impl Core {
    pub async fn create_mqtt_instance(
        &self,
        id: &str,
        account: &str,
        region: &str,
        edition: Edition,
    ) -> DomainResult<MqttInstance> {
        let instance = MqttInstance {
            id: parse_instance_id(id)?,
            account: account.to_string(),
            region: region.to_string(),
            edition,
            created_at: self.now(),
        };
        self.store()
            .apply(vec![store::insert(&instance)?])
            .await
            .map_err(|e| match e {
                DomainError::AlreadyExists { .. } => DomainError::AlreadyExists {
                    resource: Resource::MqttInstance,
                    id: id.to_string(),
                },
                other => other,
            })?;
        Ok(instance)
    }

    pub async fn mqtt_instance(&self, id: &str) -> DomainResult<Option<MqttInstance>> {
        Ok(store::get::<MqttInstance>(self.store(), id)
            .await?
            .map(|s| s.value))
    }

    pub async fn list_mqtt_instances(&self) -> DomainResult<Vec<MqttInstance>> {
        Ok(
            store::query::<MqttInstance>(self.store(), &Filter::default(), PageQuery::all())
                .await?
                .into_iter()
                .map(|s| s.value)
                .collect(),
        )
    }

    /// The instance a certificate call of `account` names, or why it cannot be used.
    pub async fn certificate_instance(
        &self,
        account: &str,
        id: &str,
    ) -> DomainResult<Result<MqttInstance, InstanceRefusal>> {
        Ok(match self.mqtt_instance(id).await? {
            None => Err(InstanceRefusal::NotFound),
            Some(i) if i.account != account => Err(InstanceRefusal::NotOwner),
            Some(i) if i.edition != Edition::Platinum => {
                Err(InstanceRefusal::NotPlatinum(i.edition))
            }
            Some(i) => Ok(i),
        })
    }

    /// Deletes an instance, refused while CA certificates are registered in it (their device
    /// certificates would be orphaned).
    pub async fn delete_mqtt_instance(&self, id: &str) -> DomainResult<()> {
        self.with_retry(|| async {
            let cur = store::get::<MqttInstance>(self.store(), id)
                .await?
                .ok_or_else(|| DomainError::not_found(Resource::MqttInstance, id))?;
            let scope = cur.value.registry_scope();
            let cas = self
                .store()
                .count(
                    Kind::CaCertificate,
                    &Filter {
                        account: Some(scope.account.clone()),
                        region: Some(scope.region.clone()),
                        ..Filter::default()
                    },
                )
                .await?;
            if cas > 0 {
                return Err(DomainError::StillAttached(format!(
                    "the MQTT instance {id} still has {cas} CA certificate(s); delete them first"
                )));
            }
            self.store().apply(vec![cur.delete()]).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_dns_labels() {
        assert!(parse_instance_id("post-cn-7mz2d1x2a0b").is_ok());
        assert!(parse_instance_id("mqtt-cn-0pp1").is_ok());
        for bad in [
            "",
            "ab",
            "Post-cn-1",
            "post_cn",
            "-post",
            "post-",
            "post.cn",
            &"a".repeat(64),
        ] {
            assert!(parse_instance_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_instance_is_its_own_registry_scope() {
        let i = MqttInstance {
            id: "post-cn-1".into(),
            account: "1234567890123456".into(),
            region: "cn-hangzhou".into(),
            edition: Edition::Platinum,
            created_at: 0,
        };
        assert_eq!(
            i.registry_scope(),
            Scope::new("1234567890123456", "mqtt:post-cn-1")
        );
        assert_eq!(Edition::parse("Platinum"), Some(Edition::Platinum));
        assert_eq!(Edition::parse("gold"), None);
    }
}
