//! ApsaraMQ for MQTT (`OnsMqtt`, 2020-04-20): the CA and device certificate operations of a
//! Platinum instance. Parameters in, JSON out; the rules live in core (`mqtt_instances.rs`,
//! `device_certificates.rs`, and the shared registry in `certificates.rs` and
//! `ca_certificates.rs`). Errors use ApsaraMQ's own codes (`onsmqtt_error`).

use certplane_core::ca_certificates::{CaCertificate, CaStatus};
use certplane_core::certificates::{Certificate, CertificateStatus};
use certplane_core::device_certificates::{parse_sn, serial_sn};
use certplane_core::error::DomainError;
use certplane_core::ids::Scope;
use certplane_core::mqtt_instances::{parse_instance_id, InstanceRefusal, MqttInstance};
use certplane_core::Core;
use certplane_pki::parse_certificate_pem;
use serde_json::{json, Value};

use super::error::{onsmqtt_error, ApiError, RpcError};
use super::params::{ParamError, Params};

/// The API version of ApsaraMQ for MQTT's OpenAPI.
pub const ONSMQTT_VERSION: &str = "2020-04-20";

type Res = Result<Value, ApiError>;

super::rpc_actions! {
    /// The OnsMqtt certificate actions certplane serves, named exactly as Alibaba Cloud names them.
    GetRegisterCode,
    RegisterCaCertificate,
    GetCaCertificate,
    ListCaCertificate,
    ActiveCaCertificate,
    InactivateCaCertificate,
    DeleteCaCertificate,
    GetDeviceCertificate,
    ListDeviceCertificate,
    ListDeviceCertificateByCaSn,
    ActiveDeviceCertificate,
    InactivateDeviceCertificate,
    DeleteDeviceCertificate,
}

/// Seed 003 (InactivateDeviceCertificate): "The request frequency for a single user is limited
/// to 500 calls per second". The seeds give no other OnsMqtt figure, so every OnsMqtt action
/// gets this one (COMPATIBILITY.md, "Throttling").
pub const CALLS_PER_SECOND_PER_USER: f64 = 500.0;

impl Action {
    /// The RAM action each operation is authorized as. ApsaraMQ's names differ from the API
    /// names where it documents them (InactivateDeviceCertificate is
    /// `mq:UnregisterDeviceCertificate`, RegisterCaCertificate `mq:RegisterCa`).
    pub fn ram_action(self) -> &'static str {
        use Action as A;
        match self {
            A::GetRegisterCode => "mq:GetRegisterCode",
            A::RegisterCaCertificate => "mq:RegisterCa",
            A::GetCaCertificate => "mq:GetCaCertificate",
            A::ListCaCertificate => "mq:ListCaCertificate",
            A::ActiveCaCertificate => "mq:ActiveCaCertificate",
            A::InactivateCaCertificate => "mq:UnregisterCaCertificate",
            A::DeleteCaCertificate => "mq:DeleteCaCertificate",
            A::GetDeviceCertificate => "mq:GetDeviceCertificate",
            A::ListDeviceCertificate => "mq:ListDeviceCertificate",
            A::ListDeviceCertificateByCaSn => "mq:ListDeviceCertificateByCaSn",
            A::ActiveDeviceCertificate => "mq:ActiveDeviceCertificate",
            A::InactivateDeviceCertificate => "mq:UnregisterDeviceCertificate",
            A::DeleteDeviceCertificate => "mq:DeleteDeviceCertificate",
        }
    }
}

/// The RAM resource of an instance: `acs:mq:{regionId}:{accountId}:{instanceId}`.
pub fn instance_arn(region: &str, uid: &str, instance: &str) -> String {
    format!("acs:mq:{region}:{uid}:{instance}")
}

/// The instance a request names (`MqttInstanceId`), if well formed; authorization needs it
/// before dispatch.
pub fn instance_param(p: &Params) -> Result<String, ApiError> {
    let id = p
        .required("MqttInstanceId")
        .map_err(|e| onsmqtt_error(e.into()))?;
    parse_instance_id(id).map_err(|e| onsmqtt_error(e.into()))
}

pub async fn dispatch(core: &Core, uid: &str, action: Action, p: &Params) -> Res {
    run(core, uid, action, p).await.map_err(onsmqtt_error)
}

async fn run(core: &Core, uid: &str, action: Action, p: &Params) -> Res {
    use Action as A;
    let instance = instance(core, uid, p).await?;
    let scope = instance.registry_scope();
    match action {
        A::GetRegisterCode => {
            let code = core.get_registration_code(&scope).await?;
            Ok(json!({ "RegisterCode": code }))
        }
        A::RegisterCaCertificate => {
            let name = p.required("CaName")?;
            if name.chars().count() > 128 {
                return Err(ParamError::Invalid(
                    "CaName".into(),
                    "CaName is longer than 128 characters".into(),
                )
                .into());
            }
            let ca_pem = p.required("CaContent")?;
            let verification = p.required("VerificationContent")?;
            let ca = core
                .register_mqtt_ca(&instance, name, ca_pem, verification)
                .await?;
            Ok(json!({ "Sn": ca_sn(&ca)? }))
        }
        A::GetCaCertificate => {
            let sn = sn_param(p, "Sn")?;
            let ca = core.ca_by_sn(&scope, &sn).await?;
            Ok(json!({ "Data": ca_vo(&ca.value)? }))
        }
        A::ListCaCertificate => {
            let (page_no, page_size) = paging(p)?;
            let all = core.instance_cas(&scope).await?;
            let total = all.len();
            let skip = (page_no - 1).saturating_mul(page_size);
            let vos = all
                .iter()
                .skip(skip)
                .take(page_size)
                .map(|c| ca_vo(&c.value))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ "Data": {
                "CaCertificateVOS": vos,
                "PageNo": page_no,
                "PageSize": page_size,
                "Total": total,
            }}))
        }
        A::ActiveCaCertificate | A::InactivateCaCertificate => {
            let sn = sn_param(p, "Sn")?;
            let status = if action == A::ActiveCaCertificate {
                CaStatus::Active
            } else {
                CaStatus::Inactive
            };
            core.set_ca_status_by_sn(&scope, &sn, status).await?;
            Ok(json!({ "Sn": sn }))
        }
        A::DeleteCaCertificate => {
            let sn = sn_param(p, "Sn")?;
            core.delete_ca_with_devices(&scope, &sn).await?;
            Ok(json!({ "Sn": sn }))
        }
        A::GetDeviceCertificate => {
            let (ca_sn, device_sn) = device_params(p)?;
            let d = core.device_by_sn(&scope, &ca_sn, &device_sn).await?;
            Ok(json!({ "Data": device_vo(&d.value, &ca_sn)? }))
        }
        A::ListDeviceCertificate => list_devices(core, &scope, p, None).await,
        A::ListDeviceCertificateByCaSn => {
            let ca_sn = sn_param(p, "CaSn")?;
            list_devices(core, &scope, p, Some(&ca_sn)).await
        }
        A::ActiveDeviceCertificate | A::InactivateDeviceCertificate => {
            let (ca_sn, device_sn) = device_params(p)?;
            let status = if action == A::ActiveDeviceCertificate {
                CertificateStatus::Active
            } else {
                CertificateStatus::Inactive
            };
            core.set_device_status_by_sn(&scope, &ca_sn, &device_sn, status)
                .await?;
            Ok(json!({ "DeviceSn": device_sn }))
        }
        A::DeleteDeviceCertificate => {
            let (ca_sn, device_sn) = device_params(p)?;
            core.delete_device_by_sn(&scope, &ca_sn, &device_sn).await?;
            Ok(json!({ "DeviceSn": device_sn }))
        }
    }
}

/// The caller's Platinum instance named by `MqttInstanceId`, or the documented refusal.
async fn instance(core: &Core, uid: &str, p: &Params) -> Result<MqttInstance, ApiError> {
    let id = instance_param(p)?;
    match core.certificate_instance(uid, &id).await? {
        Ok(i) => Ok(i),
        Err(InstanceRefusal::NotFound) => Err(RpcError::new(
            400,
            "MqttInstanceNotFound",
            format!("Specified instance is not found. ({id})"),
        )
        .into()),
        Err(InstanceRefusal::NotOwner) => Err(RpcError::new(
            403,
            "MqttOwnerCheckError",
            "Failed to validate the instance permission.",
        )
        .into()),
        Err(InstanceRefusal::NotPlatinum(e)) => Err(RpcError::new(
            400,
            "InstancePermissionCheckFailed",
            format!(
                "An error occurred while validating the permissions of the instance. Only \
                 Platinum Edition instances support certificate operations; {id} is a {} \
                 instance.",
                e.as_str()
            ),
        )
        .into()),
    }
}

fn sn_param(p: &Params, name: &str) -> Result<String, ApiError> {
    Ok(parse_sn(name, p.required(name)?)?)
}

fn device_params(p: &Params) -> Result<(String, String), ApiError> {
    Ok((sn_param(p, "CaSn")?, sn_param(p, "DeviceSn")?))
}

/// Largest PageSize the documentation allows.
const MAX_PAGE_SIZE: usize = 100;

/// `PageNo` (from 1) and `PageSize` (1 to 100), both required as documented.
fn paging(p: &Params) -> Result<(usize, usize), ApiError> {
    let read = |name: &str, max: usize| -> Result<usize, ApiError> {
        let v = p.required(name)?;
        match v.parse::<usize>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(ParamError::Invalid(
                name.into(),
                format!("{name} must be an integer from 1 to {max}, got {v:?}"),
            )
            .into()),
        }
    };
    Ok((
        read("PageNo", i32::MAX as usize)?,
        read("PageSize", MAX_PAGE_SIZE)?,
    ))
}

async fn list_devices(core: &Core, scope: &Scope, p: &Params, by_ca: Option<&str>) -> Res {
    let (page_no, page_size) = paging(p)?;
    let ca = match by_ca {
        Some(sn) => Some(core.ca_by_sn(scope, sn).await?.value),
        None => None,
    };
    let (devices, total) = core
        .list_devices(scope, ca.as_ref().map(|c| &c.id), page_no, page_size)
        .await?;
    // Each device shows its CA's serial; one read of the instance's CAs serves the page.
    let cas = if ca.is_some() {
        Vec::new()
    } else {
        core.instance_cas(scope).await?
    };
    let mut vos = Vec::with_capacity(devices.len());
    for d in &devices {
        let sn = match &ca {
            Some(c) => ca_sn(c)?,
            None => match cas
                .iter()
                .find(|c| Some(&c.value.id) == d.ca_certificate_id.as_ref())
            {
                Some(c) => ca_sn(&c.value)?,
                None => String::new(),
            },
        };
        vos.push(device_vo(d, &sn)?);
    }
    Ok(json!({ "Data": {
        "DeviceCertificateVOS": vos,
        "PageNo": page_no,
        "PageSize": page_size,
        "Total": total,
    }}))
}

fn parsed(pem: &str) -> Result<certplane_pki::ParsedCertificate, ApiError> {
    parse_certificate_pem(pem).map_err(|e| {
        DomainError::internal(format!("a stored certificate does not parse: {e}")).into()
    })
}

fn ca_sn(ca: &CaCertificate) -> Result<String, ApiError> {
    Ok(serial_sn(&parsed(&ca.pem)?.serial_hex))
}

/// `"1"` active, `"0"` inactive (every status but ACTIVE reads inactive).
fn status_flag(active: bool) -> &'static str {
    if active {
        "1"
    } else {
        "0"
    }
}

fn ca_vo(ca: &CaCertificate) -> Result<Value, ApiError> {
    Ok(json!({
        "CaContent": ca.pem,
        "CaName": ca.name.clone().unwrap_or_default(),
        "RegistrationCode": ca.registration_code.clone().unwrap_or_default(),
        "Sn": ca_sn(ca)?,
        "Status": status_flag(ca.status == CaStatus::Active),
        "ValidBegin": ca.not_before.to_string(),
        "ValidEnd": ca.not_after.to_string(),
        "VerificationContent": ca.verification_pem.clone().unwrap_or_default(),
    }))
}

fn device_vo(d: &Certificate, ca_sn: &str) -> Result<Value, ApiError> {
    let p = parsed(&d.pem)?;
    let sn = serial_sn(&p.serial_hex);
    Ok(json!({
        "CaSn": ca_sn,
        "DeviceContent": d.pem,
        // The device's name is its certificate's common name (its serial when it has none).
        "DeviceName": p.subject_cn.unwrap_or_else(|| sn.clone()),
        "DeviceSn": sn,
        "Status": status_flag(d.status == CertificateStatus::Active),
        "ValidBegin": d.not_before.to_string(),
        "ValidEnd": d.not_after.to_string(),
    }))
}

pub fn unknown_action(name: &str) -> ApiError {
    ApiError::Rpc(RpcError::new(
        404,
        "InvalidApi.NotFound",
        format!(
            "Specified api is not found, please check your url and method: OnsMqtt \
             {ONSMQTT_VERSION} has no action {name:?} in certplane."
        ),
    ))
}
