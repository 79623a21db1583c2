//! Deciding one device: the index first, the registry (`Core::admit_device`) on a miss, and
//! the rows the registry decided on cached for the next handshake.

use certplane_core::ca_certificates::CaCertificate;
use certplane_core::device_certificates::{Refusal, Tenant};
use certplane_core::error::DomainResult;
use certplane_core::mqtt_instances::MqttInstance;
use certplane_core::store;
use certplane_core::{CertificateId, Core};

use crate::index::{ca_key, feed_generation, Index, Lookup};
use crate::tenants::{route_name, NameRoute, TenantRef};

/// The decision on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Admit { ca_key: String },
    Refuse(Refusal),
}

/// Decides whether `der` (whose registry id is `cert_id`) may connect to `tenant` now.
pub async fn decide(
    core: &Core,
    index: &Index,
    tenant: &Tenant,
    cert_id: &str,
    der: &[u8],
) -> DomainResult<Verdict> {
    let scope = tenant.scope();
    if index.is_current(feed_generation(core.store())) {
        match index.lookup(&scope, cert_id, core.now()) {
            Lookup::Admit { ca_key } => return Ok(Verdict::Admit { ca_key }),
            Lookup::Refuse(r) => return Ok(Verdict::Refuse(r)),
            Lookup::Unknown => {}
        }
    }
    let epoch = index.epoch();
    let admission = core.admit_device(tenant, der).await?;
    // The rows admission read, read once more to cache them (a miss costs a few reads; the
    // handshakes after it cost none).
    let cert = match CertificateId::parse(cert_id) {
        Ok(id) => core.find_registration(&scope, &id).await?.document(),
        Err(_) => None,
    };
    let ca = match &admission.ca_id {
        Some(id) => store::get::<CaCertificate>(core.store(), &ca_key(&scope, id))
            .await?
            .map(|s| s.value),
        None => None,
    };
    let cert = cert.map(|s| s.value);
    let refusal = admission.verdict.as_ref().err();
    index.fill(epoch, cert_id, &scope, cert.as_ref(), ca.as_ref(), refusal);
    Ok(match (admission.verdict, admission.ca_id) {
        (Ok(()), Some(id)) => Verdict::Admit {
            ca_key: ca_key(&scope, &id),
        },
        // Admission never admits without a CA; refuse rather than file a session nowhere.
        (Ok(()), None) => Verdict::Refuse(Refusal::UnknownCa),
        (Err(r), _) => Verdict::Refuse(r),
    })
}

async fn instance(core: &Core, index: &Index, id: &str) -> DomainResult<Option<MqttInstance>> {
    if index.is_current(feed_generation(core.store())) {
        if let Some(cached) = index.instance(id) {
            return Ok(cached);
        }
    }
    let epoch = index.epoch();
    let found = core.mqtt_instance(id).await?;
    index.fill_instance(epoch, id, found.as_ref());
    Ok(found)
}

async fn resolve(core: &Core, index: &Index, r: &TenantRef) -> DomainResult<Option<Tenant>> {
    Ok(match r {
        TenantRef::Aws(scope) => Some(Tenant::Aws(scope.clone())),
        TenantRef::Mqtt(id) => instance(core, index, id).await?.map(Tenant::Mqtt),
    })
}

/// The tenant a connection with this server name is checked against, if any.
pub async fn tenant_for(
    core: &Core,
    index: &Index,
    server_name: Option<&str>,
    domain: &str,
    default: Option<&TenantRef>,
) -> DomainResult<Option<Tenant>> {
    match route_name(server_name, domain) {
        NameRoute::Aws(scope) => return Ok(Some(Tenant::Aws(scope))),
        NameRoute::MaybeInstance(id) => {
            if let Some(i) = instance(core, index, &id).await? {
                return Ok(Some(Tenant::Mqtt(i)));
            }
        }
        NameRoute::Default => {}
    }
    match default {
        Some(r) => resolve(core, index, r).await,
        None => Ok(None),
    }
}
