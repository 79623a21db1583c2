//! Transfer request bodies and response shapes for api-versions 2024-04-01 (TransferDetails,
//! PartnerTransferDetails, RecipientTransferDetails) and 2019-10-01-preview (the reference's
//! TransferDetails, with `creationTime`, `billingAccountId`, ... and
//! `errorDetails{errorCode,errorMessage}`).

use certplane_core::billing::valid_account_name;
use certplane_core::billing::valid_section_name;
use certplane_core::billing::{
    check_email, valid_transfer_name, BillingScope, ProductType, SectionKind,
};
use certplane_core::billing_transfers::{
    BillingTransfer, ProductRef, ProductValidation, TransferPage,
};
use certplane_core::clock::rfc3339;
use certplane_core::Core;
use serde_json::{json, Map, Value};

use super::error::{from_domain, ArmError};
use super::{json_response, ApiVersion, Op};
use crate::wire::Response;

const TYPE: &str = "Microsoft.Billing/transfers";

fn invalid_body(m: impl Into<String>) -> ArmError {
    ArmError::bad_request("InvalidRequestContent", m)
}

/// The body as a JSON object (`{}` when empty and `empty_ok`).
fn body_object(body: &[u8], what: &str) -> Result<Map<String, Value>, ArmError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_body(format!(
            "The request body is required: {what}."
        )));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(invalid_body("The request body must be a JSON object.")),
        Err(e) => Err(invalid_body(format!(
            "The request body is not valid JSON: {e}."
        ))),
    }
}

fn properties<'a>(
    o: &'a Map<String, Value>,
    what: &str,
) -> Result<&'a Map<String, Value>, ArmError> {
    match o.get("properties") {
        Some(Value::Object(p)) => Ok(p),
        Some(_) => Err(invalid_body("'properties' must be an object.")),
        None => Err(invalid_body(format!(
            "The request body must have 'properties' with {what}."
        ))),
    }
}

fn check_scope(scope: &BillingScope) -> Result<(), ArmError> {
    if !valid_account_name(&scope.account) {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!(
                "The billing account name '{}' is invalid: digits, PCN.<alphanumerics>, or GUID[:GUID_YYYY-MM-DD].",
                scope.account
            ),
        ));
    }
    for v in [&scope.profile, &scope.section] {
        if !valid_section_name(v) {
            return Err(ArmError::bad_request(
                "InvalidResourceName",
                format!("The name '{v}' is invalid: 1 to 128 letters, digits, '-' or '_'."),
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ArmError> {
    if valid_transfer_name(name) {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "InvalidTransferName",
            format!("The transfer name '{name}' is invalid: it must be 1 to 128 lower-case letters or digits (^[a-z0-9]*$)."),
        ))
    }
}

/// recipientEmailId and resellerId of an initiate request.
fn initiate_body(body: &[u8]) -> Result<(String, Option<String>), ArmError> {
    let o = body_object(body, "properties.recipientEmailId")?;
    let p = properties(&o, "recipientEmailId")?;
    let recipient = match p.get("recipientEmailId") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(invalid_body(
                "'properties.recipientEmailId' must be a string.",
            ))
        }
        None => {
            return Err(ArmError::bad_request(
                "InvalidRecipientEmail",
                "'properties.recipientEmailId' is required.",
            ))
        }
    };
    if check_email("recipientEmailId", &recipient).is_err() {
        return Err(ArmError::bad_request(
            "InvalidRecipientEmail",
            format!("'{recipient}' is not a valid email address."),
        ));
    }
    let reseller = match p.get("resellerId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid_body("'properties.resellerId' must be a string.")),
    };
    Ok((recipient, reseller))
}

/// productDetails of an accept or validate request (2019-10-01-preview's accept example puts
/// them under `properties.value`; both are read).
fn product_refs(body: &[u8], v: ApiVersion) -> Result<Vec<ProductRef>, ArmError> {
    let bad = |m: String| ArmError::bad_request("InvalidProductDetails", m);
    let o = body_object(body, "properties.productDetails")?;
    let p = properties(&o, "productDetails")?;
    let list = match (p.get("productDetails"), p.get("value"), v) {
        (Some(Value::Array(a)), _, _) => a,
        (None, Some(Value::Array(a)), ApiVersion::V2019Preview) => a,
        (Some(_), _, _) => return Err(bad("'properties.productDetails' must be an array.".into())),
        _ => return Err(bad("'properties.productDetails' is required.".into())),
    };
    if list.is_empty() {
        return Err(bad(
            "'properties.productDetails' must name at least one product.".into(),
        ));
    }
    list.iter()
        .map(|item| {
            let t = item.get("productType").and_then(Value::as_str);
            let id = item.get("productId").and_then(Value::as_str);
            match (t, id) {
                (Some(t), Some(id)) => match ProductType::parse(t) {
                    Some(product_type) => Ok(ProductRef {
                        product_type,
                        product_id: id.to_string(),
                    }),
                    None => Err(ArmError::bad_request(
                        "InvalidProductType",
                        format!(
                            "The product type '{t}' is not supported: AzureSubscription, AzureReservation, Department, SavingsPlan or SAAS."
                        ),
                    )),
                },
                _ => Err(bad(
                    "Every productDetails entry needs a productType and a productId string."
                        .into(),
                )),
            }
        })
        .collect()
}

fn scoped_id(scope: &BillingScope, name: &str) -> String {
    format!("{}/transfers/{name}", scope.path())
}

fn detailed(t: &BillingTransfer, v: ApiVersion) -> Value {
    Value::Array(
        t.products
            .iter()
            .map(|p| {
                let mut d = json!({
                    "productType": p.product_type.as_str(),
                    "productId": p.product_id,
                    "transferStatus": p.status.as_str(),
                });
                if v == ApiVersion::V2024 {
                    d["productName"] = json!(p.product_id);
                }
                if let Some(e) = &p.error {
                    d["errorDetails"] = match v {
                        ApiVersion::V2024 => json!({ "code": e.code, "message": e.message }),
                        ApiVersion::V2019Preview => {
                            json!({ "errorCode": e.code, "errorMessage": e.message })
                        }
                    };
                }
                d
            })
            .collect(),
    )
}

/// Which model a body is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Initiator,
    Recipient,
}

fn render(t: &BillingTransfer, v: ApiVersion, view: View) -> Value {
    let partner = t.scope.kind == SectionKind::Customer;
    let mut p = Map::new();
    let mut put = |k: &str, val: Value| {
        p.insert(k.to_string(), val);
    };
    if v == ApiVersion::V2019Preview {
        put("creationTime", json!(rfc3339(t.created_at)));
    }
    put("expirationTime", json!(rfc3339(t.expires_at)));
    if v == ApiVersion::V2019Preview {
        put("billingAccountId", json!(t.scope.account_path()));
        put("billingProfileId", json!(t.scope.profile_path()));
        put("invoiceSectionId", json!(t.scope.path()));
    }
    put("transferStatus", json!(t.status.as_str()));
    put("recipientEmailId", json!(t.recipient));
    put("initiatorEmailId", json!(t.initiator));
    if let Some(c) = &t.canceled_by {
        put("canceledBy", json!(c));
    }
    if v == ApiVersion::V2019Preview {
        put("lastModifiedTime", json!(rfc3339(t.last_modified)));
    }
    put("detailedTransferStatus", detailed(t, v));
    if partner {
        put("initiatorCustomerType", json!("Partner"));
        if let Some(r) = &t.reseller_id {
            put("resellerId", json!(r));
        }
    }
    if view == View::Recipient && v == ApiVersion::V2024 {
        put(
            "allowedProductType",
            json!([
                "AzureReservation",
                "DevTestAzureSubscription",
                "StandardAzureSubscription"
            ]),
        );
        put(
            "supportedAccounts",
            json!([if partner { "Partner" } else { "Enterprise" }]),
        );
    }
    let id = match view {
        View::Initiator => scoped_id(&t.scope, &t.name),
        View::Recipient => format!("/providers/Microsoft.Billing/transfers/{}", t.name),
    };
    let mut out = json!({ "id": id, "name": t.name, "type": TYPE, "properties": Value::Object(p) });
    if v == ApiVersion::V2024 {
        out["systemData"] = json!({
            "createdBy": t.initiator, "createdByType": "User", "createdAt": rfc3339(t.created_at),
            "lastModifiedAt": rfc3339(t.last_modified),
        });
    }
    out
}

fn page((items, next): TransferPage, v: ApiVersion, view: View, path: &str) -> Value {
    let value: Vec<Value> = items.iter().map(|t| render(t, v, view)).collect();
    let mut out = json!({ "value": value });
    if let Some(tok) = next {
        // Relative, our own path only; the token is URL-safe base64 (no '+', no '=').
        out["nextLink"] = json!(format!(
            "{path}?api-version={}&$skiptoken={tok}",
            v.as_str()
        ));
    }
    out
}

fn validation(results: &[ProductValidation]) -> Value {
    json!({
        "value": results.iter().map(|r| json!({
            "properties": {
                "status": r.status(),
                "productId": r.product_id,
                "results": r.findings.iter().map(|f| json!({
                    "level": match f.level {
                        certplane_core::billing_transfers::Level::Error => "Error",
                        certplane_core::billing_transfers::Level::Warning => "Warning",
                    },
                    "code": f.code,
                    "message": f.message,
                })).collect::<Vec<_>>(),
            }
        })).collect::<Vec<_>>()
    })
}

/// A fresh server-chosen transfer name (2019-10-01-preview initiateTransfer).
fn new_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) async fn dispatch(
    core: &Core,
    caller: &str,
    op: Op,
    v: ApiVersion,
    body: &[u8],
    skiptoken: Option<&str>,
    request_id: Option<&str>,
) -> Result<Response, ArmError> {
    let side = op.side();
    let d = |e| from_domain(e, side);
    let ok = |t: &BillingTransfer, view: View| Ok(json_response(200, &render(t, v, view)));
    match op {
        Op::ListScoped(scope) => {
            check_scope(&scope)?;
            let p = core
                .list_scoped_billing_transfers(caller, &scope, skiptoken)
                .await
                .map_err(d)?;
            let path = format!("{}/transfers", scope.path());
            Ok(json_response(200, &page(p, v, View::Initiator, &path)))
        }
        Op::Initiate(scope, name) => {
            check_scope(&scope)?;
            check_name(&name)?;
            let (recipient, reseller) = initiate_body(body)?;
            if reseller.is_some() && scope.kind == SectionKind::InvoiceSection {
                return Err(invalid_body(
                    "'properties.resellerId' applies to partner (customer) transfers only.",
                ));
            }
            let (t, created) = core
                .initiate_billing_transfer(caller, &scope, &name, &recipient, reseller.as_deref())
                .await
                .map_err(d)?;
            Ok(json_response(
                if created { 201 } else { 200 },
                &render(&t, v, View::Initiator),
            ))
        }
        Op::InitiateNamed(scope) => {
            check_scope(&scope)?;
            let (recipient, reseller) = initiate_body(body)?;
            let (t, _) = core
                .initiate_billing_transfer(
                    caller,
                    &scope,
                    &new_name(),
                    &recipient,
                    reseller.as_deref(),
                )
                .await
                .map_err(d)?;
            ok(&t, View::Initiator)
        }
        Op::GetScoped(scope, name) => {
            check_scope(&scope)?;
            check_name(&name)?;
            let t = core
                .scoped_billing_transfer(caller, &scope, &name)
                .await
                .map_err(d)?;
            ok(&t, View::Initiator)
        }
        Op::Cancel(scope, name) => {
            check_scope(&scope)?;
            check_name(&name)?;
            let t = core
                .cancel_billing_transfer(caller, &scope, &name, request_id)
                .await
                .map_err(d)?;
            ok(&t, View::Initiator)
        }
        Op::ListRecipient => {
            let p = core
                .list_recipient_billing_transfers(caller, skiptoken)
                .await
                .map_err(d)?;
            Ok(json_response(
                200,
                &page(
                    p,
                    v,
                    View::Recipient,
                    "/providers/Microsoft.Billing/transfers",
                ),
            ))
        }
        Op::GetRecipient(name) => {
            check_name(&name)?;
            let t = core
                .recipient_billing_transfer(caller, &name)
                .await
                .map_err(d)?;
            ok(&t, View::Recipient)
        }
        Op::Accept(name) => {
            check_name(&name)?;
            let refs = product_refs(body, v)?;
            let t = core
                .accept_billing_transfer(caller, &name, &refs, request_id)
                .await
                .map_err(d)?;
            ok(&t, View::Recipient)
        }
        Op::Validate(name) => {
            check_name(&name)?;
            let refs = product_refs(body, v)?;
            let r = core
                .validate_billing_transfer(caller, &name, &refs)
                .await
                .map_err(d)?;
            Ok(json_response(200, &validation(&r)))
        }
        Op::Decline(name) => {
            check_name(&name)?;
            let t = core
                .decline_billing_transfer(caller, &name, request_id)
                .await
                .map_err(d)?;
            ok(&t, View::Recipient)
        }
    }
}
