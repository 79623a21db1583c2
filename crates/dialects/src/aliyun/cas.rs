//! Alibaba Cloud SSL Certificates Service (`cas`, 2020-04-07): the order, quota and
//! user-certificate operations. Parameters in, JSON out; the rules live in core
//! (`orders.rs`, `packages.rs`, `user_certificates.rs`).

use aws_lc_rs::digest;
use certplane_core::held_cas::CaSet;
use certplane_core::orders::{
    Contact, NewOrder, Order, OrderState, ValidateType, EXPIRING_WITHIN_MS,
};
use certplane_core::packages::{plan_facts, DEFAULT_PRODUCT_CODE};
use certplane_core::user_certificates::{UserCertificate, UserCertificateSource};
use certplane_core::Core;
use certplane_pki::{parse_certificate_pem, ParsedCertificate};
use serde_json::{json, Map, Value};

use super::error::{ApiError, RpcError};
use super::params::{ParamError, Params};

type Res = Result<Value, ApiError>;

super::rpc_actions! {
    /// The CAS actions certplane serves, named exactly as Alibaba Cloud names them.
    CreateCertificateForPackageRequest,
    CreateCertificateRequest,
    CreateCertificateWithCsrRequest,
    DescribeCertificateState,
    DescribePackageState,
    ListUserCertificateOrder,
    CancelOrderRequest,
    CancelCertificateForPackageRequest,
    DeleteCertificateRequest,
    RenewCertificateOrderForPackageRequest,
    UploadUserCertificate,
    GetUserCertificateDetail,
    DeleteUserCertificate,
}

/// The SSL Certificates Service API reference gives its 2020-04-07 operations a per-user limit
/// of 10 calls per second (e.g. GetCertWarehouseQuota: "10 calls per second for each user";
/// DescribeCACertificateCount: "up to 10 times per second per account"); certplane applies it
/// to every CAS action (COMPATIBILITY.md, "Throttling").
pub const CALLS_PER_SECOND_PER_USER: f64 = 10.0;

impl Action {
    /// The RAM action this operation is authorized as.
    pub fn ram_action(self) -> String {
        format!("yundun-cert:{}", self.name())
    }
}

pub async fn dispatch(core: &Core, uid: &str, action: Action, p: &Params) -> Res {
    use Action as A;
    match action {
        A::CreateCertificateForPackageRequest => create_order(core, uid, p, Need::Optional).await,
        A::CreateCertificateRequest => create_order(core, uid, p, Need::Domain).await,
        A::CreateCertificateWithCsrRequest => create_order(core, uid, p, Need::Csr).await,
        A::DescribeCertificateState => describe_certificate_state(core, uid, p).await,
        A::DescribePackageState => describe_package_state(core, uid, p).await,
        A::ListUserCertificateOrder => list_user_certificate_order(core, uid, p).await,
        A::CancelOrderRequest => {
            core.cancel_order(uid, p.required_long("OrderId")?).await?;
            Ok(json!({}))
        }
        A::CancelCertificateForPackageRequest => {
            core.cancel_certificate_for_package(uid, p.required_long("OrderId")?)
                .await?;
            Ok(json!({}))
        }
        A::DeleteCertificateRequest => {
            core.delete_order(uid, p.required_long("OrderId")?).await?;
            Ok(json!({}))
        }
        A::RenewCertificateOrderForPackageRequest => {
            let id = p.required_long("OrderId")?;
            let csr = p.get("Csr")?.map(str::to_string);
            let order = core.renew_order(uid, id, csr, p.tags()).await?;
            Ok(json!({ "OrderId": order.id }))
        }
        A::UploadUserCertificate => upload_user_certificate(core, uid, p).await,
        A::GetUserCertificateDetail => get_user_certificate_detail(core, uid, p).await,
        A::DeleteUserCertificate => {
            core.delete_user_certificate(uid, p.required_long("CertId")?, client_token(p)?)
                .await?;
            Ok(json!({}))
        }
    }
}

/// Which of Domain / Csr an order action requires.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Optional,
    Domain,
    Csr,
}

/// ValidateType is required by CreateCertificateRequest and CreateCertificateWithCsrRequest;
/// the SDK marks it optional for CreateCertificateForPackageRequest, where DNS is assumed.
fn validate_type(p: &Params, need: Need) -> Result<ValidateType, ApiError> {
    let v = match need {
        Need::Optional => match p.get("ValidateType")? {
            Some(v) => v,
            None => return Ok(ValidateType::Dns),
        },
        Need::Domain | Need::Csr => p.required("ValidateType")?,
    };
    ValidateType::parse(v).ok_or_else(|| {
        ParamError::Invalid(
            "ValidateType".into(),
            format!("ValidateType must be DNS or FILE, got {v:?}"),
        )
        .into()
    })
}

/// The applicant's contact details: required by CreateCertificateRequest and
/// CreateCertificateWithCsrRequest, optional for the quota-package call (SDK models).
fn contact(p: &Params, name: &str, need: Need) -> Result<Option<String>, ApiError> {
    Ok(match need {
        Need::Optional => p.get(name)?.map(str::to_string),
        Need::Domain | Need::Csr => Some(p.required(name)?.to_string()),
    })
}

async fn create_order(core: &Core, uid: &str, p: &Params, need: Need) -> Res {
    let domain = match need {
        Need::Domain => Some(p.required("Domain")?.to_string()),
        _ => p.get("Domain")?.map(str::to_string),
    };
    let csr = match need {
        Need::Csr => Some(p.required("Csr")?.to_string()),
        _ => p.get("Csr")?.map(str::to_string),
    };
    if need == Need::Optional && domain.is_none() && csr.is_none() {
        return Err(ParamError::Missing("Domain".into()).into());
    }
    let order = core
        .create_order(
            uid,
            NewOrder {
                product_code: p
                    .get("ProductCode")?
                    .unwrap_or(DEFAULT_PRODUCT_CODE)
                    .to_string(),
                domain,
                csr,
                validate_type: validate_type(p, need)?,
                contact: Contact {
                    username: contact(p, "Username", need)?,
                    phone: contact(p, "Phone", need)?,
                    email: contact(p, "Email", need)?,
                    company_name: p.get("CompanyName")?.map(str::to_string),
                },
                tags: p.tags(),
            },
        )
        .await?;
    Ok(json!({ "OrderId": order.id }))
}

/// DescribeCertificateState's `Type`: the documented values; a revoked order reads `unknow`.
fn state_type(s: OrderState) -> &'static str {
    match s {
        OrderState::Payed => "payed",
        OrderState::DomainVerify => "domain_verify",
        OrderState::VerifyFail => "verify_fail",
        OrderState::Certificate => "certificate",
        OrderState::Revoked => "unknow",
    }
}

async fn describe_certificate_state(core: &Core, uid: &str, p: &Params) -> Res {
    let order = core
        .describe_order(uid, p.required_long("OrderId")?)
        .await?;
    let mut m = Map::new();
    m.insert("Type".into(), json!(state_type(order.state)));
    m.insert("Domain".into(), json!(order.domain));
    m.insert("ValidateType".into(), json!(order.validate_type.as_str()));
    if order.state == OrderState::DomainVerify {
        let pr = &order.proof;
        for (k, v) in [
            ("RecordDomain", &pr.record_domain),
            ("RecordType", &pr.record_type),
            ("RecordValue", &pr.record_value),
            ("Uri", &pr.uri),
            ("Content", &pr.content),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
    }
    if order.state == OrderState::Certificate {
        if let Some(cert) = core.order_certificate(&order).await? {
            m.insert("Certificate".into(), json!(cert.pem));
        }
        m.insert(
            "PrivateKey".into(),
            json!(order.private_key.clone().unwrap_or_default()),
        );
        if let Some(id) = order.cert_id {
            m.insert("CertId".into(), json!(id.to_string()));
        }
    }
    Ok(Value::Object(m))
}

async fn describe_package_state(core: &Core, uid: &str, p: &Params) -> Res {
    let code = p.get("ProductCode")?.unwrap_or(DEFAULT_PRODUCT_CODE);
    let pkg = core.package_state(uid, code).await?;
    Ok(json!({
        "ProductCode": pkg.product_code,
        "TotalCount": pkg.total_count,
        "UsedCount": pkg.used_count,
        "IssuedCount": pkg.issued_count,
    }))
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn day(ms: i64) -> String {
    certplane_core::clock::rfc3339(ms)
        .get(..10)
        .unwrap_or_default()
        .to_string()
}

/// Facts of a certificate the list and detail shapes share.
fn cert_facts(pem: &str, now: i64) -> Option<(ParsedCertificate, Map<String, Value>)> {
    let c = parse_certificate_pem(pem).ok()?;
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &c.der);
    let sha2 = digest::digest(&digest::SHA256, &c.der);
    let mut m = Map::new();
    m.insert(
        "CommonName".into(),
        json!(c.subject_cn.clone().unwrap_or_default()),
    );
    m.insert("Sans".into(), json!(c.dns_names.join(",")));
    m.insert(
        "Issuer".into(),
        json!(c.issuer_cn.clone().unwrap_or_default()),
    );
    m.insert("SerialNo".into(), json!(c.serial_hex));
    m.insert("Fingerprint".into(), json!(upper_hex(sha1.as_ref())));
    m.insert("Sha2".into(), json!(upper_hex(sha2.as_ref())));
    m.insert("Algorithm".into(), json!(c.key_algorithm));
    m.insert("StartDate".into(), json!(day(c.not_before)));
    m.insert("EndDate".into(), json!(day(c.not_after)));
    m.insert("CertStartTime".into(), json!(c.not_before));
    m.insert("CertEndTime".into(), json!(c.not_after));
    m.insert("Expired".into(), json!(c.not_after < now));
    Some((c, m))
}

/// ListUserCertificateOrder `Status` of an order.
fn order_status(o: &Order, not_after: Option<i64>, now: i64) -> &'static str {
    match o.state {
        OrderState::Payed => "PAYED",
        OrderState::DomainVerify => "CHECKING",
        OrderState::VerifyFail => "CHECKED_FAIL",
        OrderState::Revoked => "REVOKED",
        OrderState::Certificate => match not_after {
            Some(end) if end < now => "EXPIRED",
            Some(end) if end - now < EXPIRING_WITHIN_MS => "WILLEXPIRED",
            _ => "ISSUED",
        },
    }
}

/// ListUserCertificateOrder's Status values (SDK model).
const ORDER_STATUSES: &[&str] = &[
    "PAYED",
    "CHECKING",
    "CHECKED_FAIL",
    "ISSUED",
    "WILLEXPIRED",
    "EXPIRED",
    "NOTACTIVATED",
    "REVOKED",
];

async fn list_user_certificate_order(core: &Core, uid: &str, p: &Params) -> Res {
    let page = p.long("CurrentPage")?.unwrap_or(1);
    let size = p.long("ShowSize")?.unwrap_or(50);
    if page < 1 {
        return Err(ParamError::Invalid(
            "CurrentPage".into(),
            "CurrentPage must be at least 1".into(),
        )
        .into());
    }
    if !(1..=500).contains(&size) {
        return Err(ParamError::Invalid(
            "ShowSize".into(),
            "ShowSize must be from 1 to 500".into(),
        )
        .into());
    }
    let keyword = p.get("Keyword")?;
    let status = p.get("Status")?;
    let order_type = p.get("OrderType")?.unwrap_or("CPACK");
    if let Some(s) = status {
        if !ORDER_STATUSES.contains(&s) {
            return Err(ParamError::Invalid(
                "Status".into(),
                format!(
                    "Status must be one of {}, got {s:?}",
                    ORDER_STATUSES.join(", ")
                ),
            )
            .into());
        }
    }
    let now = core.now();
    let mut items: Vec<Value> = Vec::new();
    match order_type {
        // Every order here comes from a quota package (a "resource virtual order"); there are
        // no purchase orders, so BUY lists none.
        "BUY" => {}
        "CPACK" => {
            for o in core.list_orders(uid).await? {
                let cert = core.order_certificate(&o).await?;
                let facts = cert.as_ref().and_then(|c| cert_facts(&c.pem, now));
                let st = order_status(&o, facts.as_ref().map(|f| f.0.not_after), now);
                if status.is_some_and(|s| s != st) {
                    continue;
                }
                let instance_id = format!("cas-ivauto-{}", o.id);
                // Keyword: "the domain name or the corresponding resource ID".
                if keyword.is_some_and(|k| {
                    !(o.domain.contains(k) || o.id.to_string() == k || instance_id == k)
                }) {
                    continue;
                }
                let mut m = facts.map(|f| f.1).unwrap_or_default();
                m.insert("OrderId".into(), json!(o.id));
                m.insert("InstanceId".into(), json!(instance_id));
                if let Some(cid) = o.cert_id {
                    m.insert("CertificateId".into(), json!(cid));
                }
                m.insert("ProductCode".into(), json!(o.product_code));
                m.insert("ProductName".into(), json!(o.product_code));
                m.insert("Domain".into(), json!(o.domain));
                m.entry("CommonName").or_insert(json!(o.domain));
                m.insert("Status".into(), json!(st));
                m.insert("BuyDate".into(), json!(o.created_at));
                m.insert("Upload".into(), json!(false));
                m.insert("SourceType".into(), json!("cpack"));
                let plan = plan_facts(&o.product_code);
                m.insert("CertType".into(), json!(plan.cert_type));
                m.insert("RootBrand".into(), json!(plan.brand));
                m.insert(
                    "DomainType".into(),
                    json!(if plan.wildcard { "WILDCARD" } else { "ONE" }),
                );
                m.insert("DomainCount".into(), json!(1));
                m.insert("WildDomainCount".into(), json!(i32::from(plan.wildcard)));
                m.insert("TrusteeStatus".into(), json!("unTrustee"));
                items.push(Value::Object(m));
            }
        }
        "CERT" | "UPLOAD" => {
            for c in core.list_user_certificates(uid).await? {
                if order_type == "UPLOAD" && c.source != UserCertificateSource::Upload {
                    continue;
                }
                let Some((parsed, mut m)) = cert_facts(&c.cert_pem, now) else {
                    continue;
                };
                let registry = core.registry_show(&c.certificate_id).await.ok();
                let revoked = registry.is_some_and(|r| {
                    r.status == certplane_core::certificates::CertificateStatus::Revoked
                });
                let st = if revoked {
                    "REVOKED"
                } else if parsed.not_after < now {
                    "EXPIRED"
                } else if parsed.not_after - now < EXPIRING_WITHIN_MS {
                    "WILLEXPIRED"
                } else {
                    "ISSUED"
                };
                // No Status: the valid certificates only (issued or about to expire).
                let wanted = match status {
                    Some(s) => s == st,
                    None => st == "ISSUED" || st == "WILLEXPIRED",
                };
                if !wanted {
                    continue;
                }
                let names = format!("{} {}", c.name, m["Sans"].as_str().unwrap_or_default());
                if keyword.is_some_and(|k| !(names.contains(k) || c.id.to_string() == k)) {
                    continue;
                }
                m.insert("CertificateId".into(), json!(c.id));
                m.insert("Name".into(), json!(c.name));
                m.insert("Status".into(), json!(st));
                m.insert(
                    "Upload".into(),
                    json!(c.source == UserCertificateSource::Upload),
                );
                m.insert(
                    "SourceType".into(),
                    json!(match c.source {
                        UserCertificateSource::Upload => "upload",
                        UserCertificateSource::Buy => "buy",
                    }),
                );
                if let Some(o) = c.order_id {
                    m.insert("OrderId".into(), json!(o));
                }
                items.push(Value::Object(m));
            }
        }
        other => {
            return Err(ParamError::Invalid(
                "OrderType".into(),
                format!("OrderType must be CPACK, BUY, UPLOAD or CERT, got {other:?}"),
            )
            .into())
        }
    }
    let total = items.len();
    let start = usize::try_from((page - 1) * size).unwrap_or(usize::MAX);
    let page_items: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(usize::try_from(size).unwrap_or(50))
        .collect();
    Ok(json!({
        "CertificateOrderList": page_items,
        "TotalCount": total,
        "CurrentPage": page,
        "ShowSize": size,
    }))
}

/// ClientToken: at most 64 ASCII characters (SDK model).
fn client_token(p: &Params) -> Result<Option<&str>, ApiError> {
    match p.get("ClientToken")? {
        Some(t) if t.len() > 64 || !t.is_ascii() => Err(ParamError::Invalid(
            "ClientToken".into(),
            "ClientToken must be at most 64 ASCII characters".into(),
        )
        .into()),
        Some("") | None => Ok(None),
        Some(t) => Ok(Some(t)),
    }
}

async fn upload_user_certificate(core: &Core, uid: &str, p: &Params) -> Res {
    let name = p.required("Name")?;
    if name.chars().count() > 64 {
        return Err(ParamError::Invalid(
            "Name".into(),
            "Name must be at most 64 characters".into(),
        )
        .into());
    }
    let cert = match p.get("Cert")? {
        Some(c) => c,
        None => {
            if p.get("EncryptCert")?.is_some() || p.get("SignCert")?.is_some() {
                return Err(RpcError::new(
                    400,
                    "NotSupported",
                    "certplane does not store SM2 (EncryptCert/SignCert) certificates",
                )
                .into());
            }
            return Err(ParamError::Missing("Cert".into()).into());
        }
    };
    let uc = core
        .upload_user_certificate(uid, name, cert, p.get("Key")?, client_token(p)?)
        .await?;
    Ok(json!({
        "CertId": uc.id,
        "ResourceId": format!("acs:cas:{}:{}:certificate/{}", certplane_core::orders::CAS_REGION, uid, uc.id),
    }))
}

/// The `-----BEGIN CERTIFICATE-----` blocks of a PEM text, in order.
fn pem_blocks(pem: &str) -> impl Iterator<Item = &str> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = pem;
    std::iter::from_fn(move || {
        let start = rest.find(BEGIN)?;
        let len = rest[start..].find(END)? + END.len();
        let block = &rest[start..start + len];
        rest = &rest[start + len..];
        Some(block)
    })
}

/// One CertChain entry of GetUserCertificateDetail.
fn chain_entry(c: &ParsedCertificate, now: i64) -> Value {
    json!({
        "CommonName": c.subject_cn.clone().unwrap_or_default(),
        "IssuerCommonName": c.issuer_cn.clone().unwrap_or_default(),
        "NotBefore": c.not_before,
        "NotAfter": c.not_after,
        "RemainDay": (c.not_after - now).max(0) / 86_400_000,
    })
}

fn detail(uc: &UserCertificate, with_content: bool, cas: &CaSet, now: i64) -> Value {
    // An issued certificate's chain ends with the held CA that signed it (a retired one
    // after a rotation); the active CA when the PEM does not parse.
    let signer = parse_certificate_pem(&uc.cert_pem)
        .ok()
        .and_then(|c| cas.signer_of(&c).cloned())
        .unwrap_or_else(|| cas.active().clone());
    let issuer_pem = signer.cert_pem();
    let mut m = Map::new();
    m.insert("Id".into(), json!(uc.id));
    m.insert("Name".into(), json!(uc.name));
    if let Some((c, facts)) = cert_facts(&uc.cert_pem, now) {
        m.insert("Common".into(), facts["CommonName"].clone());
        for k in [
            "Sans",
            "Issuer",
            "SerialNo",
            "Sha2",
            "Fingerprint",
            "StartDate",
            "EndDate",
            "Expired",
            "Algorithm",
        ] {
            m.insert(k.into(), facts[k].clone());
        }
        m.insert("NotBefore".into(), json!(c.not_before));
        m.insert("NotAfter".into(), json!(c.not_after));
        // Every certificate of the PEM as stored (an upload may carry its chain after the
        // leaf), then, for an issued one, certplane's issuing CA.
        let mut chain = vec![chain_entry(&c, now)];
        chain.extend(
            pem_blocks(&uc.cert_pem)
                .skip(1)
                .filter_map(|b| parse_certificate_pem(b).ok())
                .map(|ca| chain_entry(&ca, now)),
        );
        if uc.source == UserCertificateSource::Buy {
            if let Ok(ca) = parse_certificate_pem(issuer_pem) {
                chain.push(chain_entry(&ca, now));
            }
        }
        m.insert("CertChain".into(), Value::Array(chain));
    }
    if with_content {
        let mut cert = uc.cert_pem.clone();
        if uc.source == UserCertificateSource::Buy {
            cert.push_str(issuer_pem);
        }
        m.insert("Cert".into(), json!(cert));
        m.insert("Key".into(), json!(uc.key_pem.clone().unwrap_or_default()));
    }
    if let Some(o) = uc.order_id {
        m.insert("OrderId".into(), json!(o));
    }
    m.insert(
        "BuyInAliyun".into(),
        json!(uc.source == UserCertificateSource::Buy),
    );
    m.insert("Tags".into(), json!([]));
    Value::Object(m)
}

async fn get_user_certificate_detail(core: &Core, uid: &str, p: &Params) -> Res {
    let id = p.required_long("CertId")?;
    // CertFilter=true asks for the description only, without the certificate and key.
    let filter = p.bool("CertFilter")?.unwrap_or(false);
    let uc = core.get_user_certificate(uid, id).await?;
    Ok(detail(&uc, !filter, &core.cas.snapshot(), core.now()))
}

/// Unknown actions for this version.
pub fn unknown_action(name: &str) -> ApiError {
    ApiError::Rpc(RpcError::new(
        404,
        "InvalidApi.NotFound",
        format!("Specified api is not found, please check your url and method: cas 2020-04-07 has no action {name:?} in certplane."),
    ))
}
