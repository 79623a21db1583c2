//! Alibaba Cloud RPC request signatures: v3 (`ACS3-HMAC-SHA256` in the Authorization header,
//! what the SDKs send by default) and v1 (HMAC-SHA1 in the `Signature` query parameter).
//! Pure functions over the decoded parameters; the caller supplies the secret and "now".

use aws_lc_rs::{digest, hmac};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::wire::{parse_hmac_authorization, HmacAuthorization, Request};

/// Clock skew tolerated on `x-acs-date` / `Timestamp`, in milliseconds.
pub const MAX_SKEW_MS: i64 = 15 * 60 * 1000;

/// RFC 3986: unreserved characters stay, everything else is %XX (space is %20, `*` is %2A).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn rfc3986(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// Signature headers or parameters missing or malformed (IncompleteSignature).
    Incomplete(String),
    /// The timestamp does not parse (InvalidTimeStamp.Format).
    BadTimestamp(String),
    /// The timestamp is outside the window (InvalidTimeStamp.Expired).
    Expired(String),
    /// SignatureDoesNotMatch.
    Mismatch,
}

/// What a signature claims: the key, the time, the nonce, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub access_key_id: String,
    pub time_ms: i64,
    pub nonce: String,
    pub kind: Scheme,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    V3 {
        signed_headers: Vec<String>,
        signature: String,
    },
    V1 {
        signature: String,
    },
}

/// `YYYY-MM-DDThh:mm:ssZ` → milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp() * 1000)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads the signature claim of a request: v3 when an `ACS3-HMAC-SHA256` Authorization header
/// is present, else v1 from the query parameters. `None` when the request carries neither.
pub fn claim(req: &Request, params: &[(String, String)]) -> Option<Result<Claim, SigError>> {
    if let Some(auth) = req.header("authorization") {
        return Some(claim_v3(req, auth));
    }
    if param(params, "Signature").is_some() || param(params, "AccessKeyId").is_some() {
        return Some(claim_v1(params));
    }
    None
}

fn claim_v3(req: &Request, auth: &str) -> Result<Claim, SigError> {
    let bad = |m: &str| SigError::Incomplete(m.to_string());
    let HmacAuthorization {
        credential,
        signed_headers: signed,
        signature,
    } = parse_hmac_authorization(auth, "ACS3-HMAC-SHA256").map_err(SigError::Incomplete)?;
    let signed: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    let signature = Some(signature)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad("Signature must be 64 hexadecimal characters"))?;
    for required in ["host", "x-acs-date", "x-acs-signature-nonce"] {
        if !signed.iter().any(|h| h == required) {
            return Err(bad(&format!("SignedHeaders must include {required}")));
        }
    }
    let date = req
        .header("x-acs-date")
        .ok_or_else(|| bad("the x-acs-date header is missing"))?;
    let time_ms = parse_timestamp(date).ok_or_else(|| {
        SigError::BadTimestamp(format!("x-acs-date {date:?} is not yyyy-MM-ddTHH:mm:ssZ"))
    })?;
    let nonce = req
        .header("x-acs-signature-nonce")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("the x-acs-signature-nonce header is missing"))?;
    Ok(Claim {
        access_key_id: credential.to_string(),
        time_ms,
        nonce: nonce.to_string(),
        kind: Scheme::V3 {
            signed_headers: signed,
            signature: signature.to_ascii_lowercase(),
        },
    })
}

fn claim_v1(params: &[(String, String)]) -> Result<Claim, SigError> {
    let need = |n: &str| {
        param(params, n)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SigError::Incomplete(format!("the {n} parameter is required")))
    };
    let akid = need("AccessKeyId")?;
    let signature = need("Signature")?;
    let method = param(params, "SignatureMethod").unwrap_or("HMAC-SHA1");
    if method != "HMAC-SHA1" {
        return Err(SigError::Incomplete(format!(
            "SignatureMethod {method:?} is not supported; use HMAC-SHA1"
        )));
    }
    let ts = need("Timestamp")?;
    let time_ms = parse_timestamp(ts).ok_or_else(|| {
        SigError::BadTimestamp(format!("Timestamp {ts:?} is not yyyy-MM-ddTHH:mm:ssZ"))
    })?;
    let nonce = need("SignatureNonce")?;
    Ok(Claim {
        access_key_id: akid.to_string(),
        time_ms,
        nonce: nonce.to_string(),
        kind: Scheme::V1 {
            signature: signature.to_string(),
        },
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// v3 canonical request: method, URI, sorted RFC 3986 query, signed headers, payload hash.
pub fn canonical_request_v3(
    req: &Request,
    query: &[(String, String)],
    signed_headers: &[String],
) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    pairs.sort();
    let canonical_query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let value = req
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .collect::<Vec<_>>()
            .join(",");
        headers.push_str(&format!("{name}:{value}\n"));
    }
    let path = if req.raw_path.is_empty() {
        "/"
    } else {
        &req.raw_path
    };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.as_str(),
        path,
        canonical_query,
        headers,
        signed_headers.join(";"),
        sha256_hex(&req.body)
    )
}

/// v1 string to sign over every parameter except `Signature`.
pub fn string_to_sign_v1(method: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    pairs.sort();
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{method}&{}&{}", rfc3986("/"), rfc3986(&joined))
}

/// Checks the claimed signature with `secret`, and the time against `now_ms`.
/// `query` is the decoded query string (v3); `params` every signed parameter (v1).
pub fn verify(
    req: &Request,
    claim: &Claim,
    query: &[(String, String)],
    params: &[(String, String)],
    secret: &str,
    now_ms: i64,
) -> Result<(), SigError> {
    if (claim.time_ms - now_ms).abs() > MAX_SKEW_MS {
        return Err(SigError::Expired(
            "the request time is more than 15 minutes from the server time".into(),
        ));
    }
    match &claim.kind {
        Scheme::V3 {
            signed_headers,
            signature,
        } => {
            let sts = format!(
                "ACS3-HMAC-SHA256\n{}",
                sha256_hex(canonical_request_v3(req, query, signed_headers).as_bytes())
            );
            let provided = hex::decode(signature).map_err(|_| SigError::Mismatch)?;
            hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
                sts.as_bytes(),
                &provided,
            )
            .map_err(|_| SigError::Mismatch)
        }
        Scheme::V1 { signature } => {
            let sts = string_to_sign_v1(req.method.as_str(), params);
            let provided = STANDARD.decode(signature).map_err(|_| SigError::Mismatch)?;
            hmac::verify(
                &hmac::Key::new(
                    hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    format!("{secret}&").as_bytes(),
                ),
                sts.as_bytes(),
                &provided,
            )
            .map_err(|_| SigError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud's RPC (v1) signature documentation.
    #[test]
    fn v1_documented_example() {
        let params: Vec<(String, String)> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sts = string_to_sign_v1("GET", &params);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"testsecret&"),
            sts.as_bytes(),
        );
        assert_eq!(
            STANDARD.encode(tag.as_ref()),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn rfc3986_encoding() {
        assert_eq!(rfc3986("a b*c~d/e+f"), "a%20b%2Ac~d%2Fe%2Bf");
        assert_eq!(rfc3986("中"), "%E4%B8%AD");
    }
}
