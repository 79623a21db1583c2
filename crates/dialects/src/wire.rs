//! The framework-neutral request and response every dialect works on, so dialects can be
//! tested without a server and the binary picks the HTTP stack.

use bytes::Bytes;
use http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

/// Largest request body any dialect accepts (AWS IoT's largest field, a PEM, is 64 KiB; a CA
/// registration carries two plus a template of 10 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: String,
    /// The query string exactly as sent, without `?`.
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address (the TCP peer), for `aws:SourceIp`-style policy conditions.
    pub source_ip: Option<std::net::IpAddr>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Path segments, split on `/` first and then percent-decoded (so `%2F` stays inside one).
    pub fn segments(&self) -> Result<Vec<String>, String> {
        self.raw_path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| format!("the path segment {s:?} is not valid UTF-8"))
            })
            .collect()
    }

    /// Query parameters, percent-decoded, in the order sent.
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, String> {
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("the query parameter {s:?} is not valid UTF-8"))
        };
        self.raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Ok((decode(k)?, decode(v)?))
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The cloud's name of the operation the dialect routed the request to (`None`: no route
    /// matched). The binary's metrics label requests with it, so its values are a closed set.
    pub operation: Option<&'static str>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Response {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(value).unwrap_or_default(),
            operation: None,
        }
    }

    /// Names the operation this answers (see [`Response::operation`]).
    pub fn for_operation(mut self, operation: Option<&'static str>) -> Self {
        self.operation = operation;
        self
    }

    /// Logs the answer (at info) inside the request's span, so the line carries its id.
    pub fn logged_in(self, span: &tracing::Span) -> Self {
        span.in_scope(|| {
            tracing::info!(
                status = self.status,
                operation = self.operation.unwrap_or("unknown"),
                "answered"
            )
        });
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// The three components of an HMAC Authorization header (`<SCHEME> Credential=…,
/// SignedHeaders=…, Signature=…`), as AWS SigV4 and Alibaba ACS3 both write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacAuthorization<'a> {
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Splits an Authorization header of the given scheme; the error names what is wrong.
pub fn parse_hmac_authorization<'a>(
    value: &'a str,
    scheme: &str,
) -> Result<HmacAuthorization<'a>, String> {
    let rest = value
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("the Authorization header must start with {scheme}"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else if !part.is_empty() {
            return Err("the Authorization header has an unknown component".into());
        }
    }
    let need = |v: Option<&'a str>, name: &str| {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| format!("the Authorization header needs {name}"))
    };
    Ok(HmacAuthorization {
        credential: need(credential, "Credential")?,
        signed_headers: need(signed, "SignedHeaders")?,
        signature: need(signature, "Signature")?,
    })
}
