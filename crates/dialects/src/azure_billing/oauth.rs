//! The Microsoft Entra (v2.0) endpoints MSAL / azure-identity use with
//! `ClientSecretCredential(authority=<certplane>, disable_instance_discovery=True)`:
//! `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token`
//! (client-credentials grant) and the JWKS at `GET /{tenant}/discovery/v2.0/keys`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use certplane_core::oauth::valid_oauth_name;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::token::{TokenKeys, ARM_AUDIENCE, TOKEN_LIFETIME_S};
use super::AzureBilling;
use crate::wire::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OauthRoute {
    OpenIdConfiguration,
    Token,
    Keys,
}

/// `(tenant, route)` when the path is one of the Entra endpoints.
pub fn route(req: &Request) -> Option<(String, OauthRoute)> {
    let segs = req.segments().ok()?;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let r = match s.as_slice() {
        [_, "v2.0", ".well-known", "openid-configuration"] => OauthRoute::OpenIdConfiguration,
        [_, "oauth2", "v2.0", "token"] => OauthRoute::Token,
        [_, "discovery", "v2.0", "keys"] => OauthRoute::Keys,
        _ => return None,
    };
    Some((segs[0].clone(), r))
}

/// Entra's error body (`error`, `error_description`, `error_codes`, ...).
fn oauth_error(status: u16, error: &str, aadsts: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    super::json_response(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{aadsts}: {description} Trace ID: {trace}"),
            "error_codes": [aadsts],
            "trace_id": trace,
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

impl AzureBilling {
    fn authority(&self, req: &Request) -> String {
        let host = req
            .header("host")
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{}://{host}", self.scheme)
    }

    pub async fn handle_oauth(&self, req: Request, tenant: String, r: OauthRoute) -> Response {
        if !valid_oauth_name(&tenant) {
            return oauth_error(400, "invalid_request", 90002, "Tenant not found.");
        }
        let base = format!("{}/{tenant}", self.authority(&req));
        match (r, req.method.as_str()) {
            (OauthRoute::OpenIdConfiguration, "GET") => super::json_response(
                200,
                &json!({
                    "issuer": format!("{base}/v2.0"),
                    "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                    "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                    "jwks_uri": format!("{base}/discovery/v2.0/keys"),
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                    "response_types_supported": ["token"],
                    "grant_types_supported": ["client_credentials"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                    "subject_types_supported": ["pairwise"],
                    "scopes_supported": [format!("{ARM_AUDIENCE}/.default")],
                    "tenant_region_scope": Value::Null,
                }),
            ),
            (OauthRoute::Keys, "GET") => match &self.keys {
                Some(k) => super::json_response(200, &json!({ "keys": [k.jwk()] })),
                None => oauth_error(503, "temporarily_unavailable", 90033, "No signing key."),
            },
            (OauthRoute::Token, "POST") => self.token(&req, &tenant, &base).await,
            _ => oauth_error(
                405,
                "invalid_request",
                900561,
                "The endpoint only accepts GET (discovery) or POST (token) requests.",
            ),
        }
    }

    async fn token(&self, req: &Request, tenant: &str, base: &str) -> Response {
        let Some(keys) = &self.keys else {
            return oauth_error(503, "temporarily_unavailable", 90033, "No signing key.");
        };
        let params = form(&req.body);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some("client_credentials") => {}
            Some(g) => {
                return oauth_error(
                    400,
                    "unsupported_grant_type",
                    70003,
                    &format!("The grant type {g:?} is not supported; use client_credentials."),
                )
            }
            None => {
                return oauth_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'grant_type'.",
                )
            }
        }
        // client_secret_basic or client_secret_post.
        let basic = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(i, p)| (form_decode(i), form_decode(p)))
            });
        let (client_id, secret) = match (&basic, get("client_id"), get("client_secret")) {
            (Some((i, p)), _, _) => (i.clone(), p.clone()),
            (None, Some(i), Some(p)) => (i.to_string(), p.to_string()),
            (None, None, _) => {
                return oauth_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            }
            (None, Some(_), None) => {
                return oauth_error(
                    401,
                    "invalid_client",
                    7000215,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            }
        };
        let scope = get("scope").unwrap_or("");
        let resource = scope
            .split(' ')
            .find_map(|s| s.strip_suffix("/.default"))
            .map(|r| r.trim_end_matches('/'));
        if resource != Some(ARM_AUDIENCE) {
            return oauth_error(
                400,
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope:?} is not valid; certplane issues tokens for {ARM_AUDIENCE}/.default only."
                ),
            );
        }
        let client = match self
            .core
            .authenticate_oauth_client(tenant, &client_id, &secret)
            .await
        {
            // Entra's answer for a disabled application (AADSTS7000112).
            Ok(Some(c)) if c.disabled => {
                return oauth_error(
                    400,
                    "unauthorized_client",
                    7000112,
                    &format!("Application '{}' is disabled.", c.client_id),
                )
            }
            Ok(Some(c)) => c,
            Ok(None) => {
                return oauth_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided, or no such client in this tenant.",
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "token endpoint: client lookup failed");
                return oauth_error(503, "temporarily_unavailable", 90033, "Try again.");
            }
        };
        match keys.issue(
            &format!("{base}/v2.0"),
            tenant,
            &client.client_id,
            &client.email,
            ARM_AUDIENCE,
            self.core.now(),
        ) {
            Ok(token) => super::json_response(
                200,
                &json!({
                    "token_type": "Bearer",
                    "expires_in": TOKEN_LIFETIME_S,
                    "ext_expires_in": TOKEN_LIFETIME_S,
                    "access_token": token,
                }),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "token endpoint: signing failed");
                oauth_error(500, "server_error", 90033, "The token could not be signed.")
            }
        }
    }
}

/// Keys shared by the ARM front end and the token endpoint.
pub type Keys = Option<std::sync::Arc<TokenKeys>>;
