//! AWS Signature Version 4, as botocore and the AWS SDKs send it for rest-json services.
//!
//! Pure functions: parse the Authorization header, build the canonical request (the canonical
//! URI is the path as sent, percent-encoded once more, as for every non-S3 service), derive the
//! signing key and compare in constant time. The caller supplies the secret and "now".

use std::sync::Arc;

use aws_lc_rs::{digest, hmac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::wire::{parse_hmac_authorization, HmacAuthorization, Request};

/// Clock skew tolerated between the request's X-Amz-Date and the server, in milliseconds.
pub const MAX_SKEW_MS: i64 = 15 * 60 * 1000;

/// RFC 3986 unreserved characters stay as they are; everything else is %XX (upper hex).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The parts of an `AWS4-HMAC-SHA256` Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    Missing,
    /// The header is there but not a well-formed SigV4 header (AWS: IncompleteSignature).
    Malformed(String),
    Expired(String),
    Mismatch,
}

pub fn parse_authorization(value: &str) -> Result<Authorization, SigError> {
    let bad = |m: &str| SigError::Malformed(m.to_string());
    let HmacAuthorization {
        credential,
        signed_headers: signed,
        signature,
    } = parse_hmac_authorization(value, "AWS4-HMAC-SHA256").map_err(SigError::Malformed)?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = parts.as_slice() else {
        return Err(bad(
            "Credential must be <access key>/<yyyymmdd>/<region>/<service>/aws4_request",
        ));
    };
    if *terminator != "aws4_request"
        || akid.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || region.is_empty()
        || region.len() > 64
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || service.is_empty()
    {
        return Err(bad(
            "Credential must be <access key>/<yyyymmdd>/<region>/<service>/aws4_request",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("Signature must be 64 hexadecimal characters"));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) || !signed_headers.iter().any(|h| h == "host") {
        return Err(bad("SignedHeaders must name the host header"));
    }
    Ok(Authorization {
        access_key_id: akid.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses `yyyymmddTHHMMSSZ` into milliseconds since the epoch (every signed request does,
/// twice: by hand, as the general parser costs more than the rest of the check).
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let (h, m, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let time = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(sec).ok()?,
    )
    .ok()?;
    Some(date.with_time(time).assume_utc().unix_timestamp() * 1000)
}

/// The request's signing time: `X-Amz-Date`, which every AWS SDK sends.
pub fn request_time(req: &Request, auth: &Authorization) -> Result<(String, i64), SigError> {
    let raw = req
        .header("x-amz-date")
        .ok_or_else(|| SigError::Malformed("the X-Amz-Date header is missing".into()))?;
    let ms = parse_amz_date(raw).ok_or_else(|| {
        SigError::Malformed(format!("X-Amz-Date {raw:?} is not yyyymmddTHHMMSSZ"))
    })?;
    if !raw.starts_with(&auth.date) {
        return Err(SigError::Malformed(
            "the Credential date does not match X-Amz-Date".into(),
        ));
    }
    Ok((raw.to_string(), ms))
}

/// SHA-256 of no bytes: the payload hash of every GET and DELETE.
const EMPTY_SHA256_HEX: &[u8; 64] =
    b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lowercase hex of a SHA-256 digest, on the stack.
fn hex32(digest: &[u8]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

fn sha256_hex32(data: &[u8]) -> [u8; 64] {
    if data.is_empty() {
        return *EMPTY_SHA256_HEX;
    }
    hex32(digest::digest(&digest::SHA256, data).as_ref())
}

#[cfg(test)]
fn sha256_hex(data: &[u8]) -> String {
    String::from_utf8_lossy(&sha256_hex32(data)).into_owned()
}

/// The 32 bytes of a signature already checked to be 64 hex digits.
fn unhex32(hex: &str) -> Option<[u8; 32]> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| {
                let decoded: Vec<u8> = percent_decode_str(s).collect();
                percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
            };
            (enc(k), enc(v))
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
fn canonical_uri(raw_path: &str) -> String {
    let mut out = Vec::new();
    push_canonical_uri(&mut out, raw_path);
    String::from_utf8_lossy(&out).into_owned()
}

fn push_canonical_uri(out: &mut Vec<u8>, raw_path: &str) {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    // Nearly every path needs no encoding at all (ids and names of unreserved characters).
    if path
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'/'))
    {
        out.extend_from_slice(path.as_bytes());
        return;
    }
    for chunk in utf8_percent_encode(path, UNRESERVED_AND_SLASH) {
        out.extend_from_slice(chunk.as_bytes());
    }
}

fn header_value<'r>(req: &'r Request, name: &str) -> std::borrow::Cow<'r, str> {
    // Nearly always one value with single spaces: used as it is, no allocation.
    let mut all = req.headers.get_all(name).iter();
    if let (Some(v), None) = (all.next(), all.next()) {
        if let Ok(s) = v.to_str() {
            let b = s.as_bytes();
            let trimmed = b.first().is_none_or(|c| !c.is_ascii_whitespace())
                && b.last().is_none_or(|c| !c.is_ascii_whitespace());
            let single = !b
                .windows(2)
                .any(|w| w[0].is_ascii_whitespace() && w[1].is_ascii_whitespace());
            if trimmed && single && !b.iter().any(|c| matches!(c, b'\t' | b'\n' | b'\r')) {
                return std::borrow::Cow::Borrowed(s);
            }
        }
    }
    let values: Vec<String> = req
        .headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    std::borrow::Cow::Owned(values.join(","))
}

/// The canonical request string of SigV4.
pub fn canonical_request(req: &Request, auth: &Authorization) -> String {
    let mut out = Vec::new();
    push_canonical_request(&mut out, req, auth);
    // Every part is ASCII or a header value that was valid UTF-8 (or joined lossily).
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the canonical request into `out`, one buffer for the whole of it: it is hashed once
/// and never kept.
fn push_canonical_request(out: &mut Vec<u8>, req: &Request, auth: &Authorization) {
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    push_canonical_uri(out, &req.raw_path);
    out.push(b'\n');
    if !req.raw_query.is_empty() {
        out.extend_from_slice(canonical_query(&req.raw_query).as_bytes());
    }
    out.push(b'\n');
    for name in &auth.signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(header_value(req, name).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, name) in auth.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    // The hash of the body received, always: a signed x-amz-content-sha256 header that
    // claims another one makes the signature fail in `verify` rather than vouch for a body
    // the client never signed.
    out.extend_from_slice(&sha256_hex32(&req.body));
}

fn hmac_sign(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// Checks the signature with `secret` and the request time against `now_ms`.
pub fn verify(
    req: &Request,
    auth: &Authorization,
    secret: &str,
    now_ms: i64,
) -> Result<(), SigError> {
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    verify_with_key(req, auth, &hmac::Key::new(hmac::HMAC_SHA256, &key), now_ms)
}

/// The SigV4 signing key of `secret` for one day, region and service (four chained HMACs).
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sign(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sign(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sign(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sign(k_service.as_ref(), b"aws4_request");
    let mut key = [0u8; 32];
    key.copy_from_slice(k_signing.as_ref());
    key
}

/// [`verify`] with the signing key already derived (see [`SigningKeys`]).
pub fn verify_with_key(
    req: &Request,
    auth: &Authorization,
    signing_key: &hmac::Key,
    now_ms: i64,
) -> Result<(), SigError> {
    let (amz_date, at) = request_time(req, auth)?;
    if (at - now_ms).abs() > MAX_SKEW_MS {
        return Err(SigError::Expired(format!(
            "Signature expired: {amz_date} is outside the 15 minute window around the server time"
        )));
    }
    let mut buf = Vec::with_capacity(1024);
    push_canonical_request(&mut buf, req, auth);
    let hashed = hex32(digest::digest(&digest::SHA256, &buf).as_ref());
    // The string to sign, in the same buffer.
    buf.clear();
    for part in [
        "AWS4-HMAC-SHA256\n",
        amz_date.as_str(),
        "\n",
        auth.date.as_str(),
        "/",
        auth.region.as_str(),
        "/",
        auth.service.as_str(),
        "/aws4_request\n",
    ] {
        buf.extend_from_slice(part.as_bytes());
    }
    buf.extend_from_slice(&hashed);
    let Some(provided) = unhex32(&auth.signature) else {
        return Err(SigError::Mismatch);
    };
    hmac::verify(signing_key, &buf, &provided).map_err(|_| SigError::Mismatch)
}

/// Signing keys derived once per access key, day, region and service, as SDKs themselves cache
/// them: a client signs every request of a day with the same one.
#[derive(Default)]
pub struct SigningKeys {
    keys: std::sync::RwLock<std::collections::HashMap<String, DerivedKey>>,
}

struct DerivedKey {
    /// The secret and scope it was derived from: a different one derives again.
    secret: String,
    scope: (String, String, String),
    key: Arc<hmac::Key>,
}

/// Access keys kept at most; past it the map starts over.
const SIGNING_KEYS: usize = 8192;

impl SigningKeys {
    pub fn get(&self, access_key_id: &str, secret: &str, auth: &Authorization) -> Arc<hmac::Key> {
        let same = |d: &DerivedKey| {
            d.secret == secret
                && d.scope.0 == auth.date
                && d.scope.1 == auth.region
                && d.scope.2 == auth.service
        };
        if let Ok(keys) = self.keys.read() {
            if let Some(d) = keys.get(access_key_id).filter(|d| same(d)) {
                return d.key.clone();
            }
        }
        let key = Arc::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            &signing_key(secret, &auth.date, &auth.region, &auth.service),
        ));
        if let Ok(mut keys) = self.keys.write() {
            if keys.len() >= SIGNING_KEYS {
                keys.clear();
            }
            keys.insert(
                access_key_id.to_string(),
                DerivedKey {
                    secret: secret.to_string(),
                    scope: (auth.date.clone(), auth.region.clone(), auth.service.clone()),
                    key: key.clone(),
                },
            );
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue, Method};

    /// AWS's published SigV4 test suite, case "get-vanilla".
    #[test]
    fn aws_test_suite_get_vanilla() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        let req = Request {
            method: Method::GET,
            raw_path: "/".into(),
            raw_query: String::new(),
            headers,
            body: Bytes::new(),
            source_ip: None,
        };
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        )
        .expect("parses");
        let now = parse_amz_date("20150830T123600Z").expect("date");
        assert_eq!(
            verify(&req, &auth, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", now),
            Ok(())
        );
        assert_eq!(verify(&req, &auth, "wrong", now), Err(SigError::Mismatch));
        assert!(matches!(
            verify(
                &req,
                &auth,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                now + 16 * 60_000
            ),
            Err(SigError::Expired(_))
        ));
    }

    #[test]
    fn amz_dates_parse_exactly_and_only_when_valid() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160_000));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199_000));
        for bad in [
            "",
            "20150830T123600",
            "20150830 123600Z",
            "2015083OT123600Z",
            "20150230T000000Z",
            "20151301T000000Z",
            "20150830T240000Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "20230229T000000Z",
            "+0150830T123600Z",
            "20150830T1236001Z",
            "２0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hex_both_ways() {
        let d = digest::digest(&digest::SHA256, b"abc");
        assert_eq!(
            hex32(d.as_ref()).as_slice(),
            hex::encode(d.as_ref()).as_bytes()
        );
        assert_eq!(
            sha256_hex(b""),
            hex::encode(digest::digest(&digest::SHA256, b"").as_ref())
        );
        let sig = hex::encode(d.as_ref());
        assert_eq!(unhex32(&sig).map(|b| b.to_vec()), Some(d.as_ref().to_vec()));
        assert_eq!(
            unhex32(&sig.to_ascii_uppercase()).map(|b| b.to_vec()),
            Some(d.as_ref().to_vec())
        );
        assert_eq!(unhex32(&sig[..62]), None);
        assert_eq!(unhex32(&format!("{}zz", &sig[..62])), None);
    }

    #[test]
    fn canonical_uri_encodes_the_sent_path_again() {
        assert_eq!(
            canonical_uri("/attached-policies/arn%3Aaws%3Aiot%3Acert%2Fab"),
            "/attached-policies/arn%253Aaws%253Aiot%253Acert%252Fab"
        );
        assert_eq!(canonical_query("b=2&a=x%2By&a=1"), "a=1&a=x%2By&b=2");
        assert_eq!(
            canonical_uri("/certificates/ab-c_d.e~f"),
            "/certificates/ab-c_d.e~f"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/things/a b+c"), "/things/a%20b%2Bc");
    }

    #[test]
    fn garbage_headers_are_malformed_not_panics() {
        for h in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b",
            "Bearer xyz",
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/iot/aws4_request, SignedHeaders=host, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=AK/2026010/us-east-1/iot/aws4_request, SignedHeaders=host, Signature=",
        ] {
            assert!(matches!(parse_authorization(h), Err(SigError::Malformed(_))), "{h}");
        }
    }

    /// A signed x-amz-content-sha256 vouches for the body it names only: the same signed
    /// headers with another body fail.
    #[test]
    fn a_signed_payload_hash_binds_the_body() {
        let body_hash = sha256_hex(b"{\"a\":1}");
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_static("iot.us-east-1.amazonaws.com"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&body_hash).expect("header"),
        );
        let mut req = Request {
            method: Method::POST,
            raw_path: "/things/t".into(),
            raw_query: String::new(),
            headers,
            body: Bytes::from_static(b"{\"a\":1}"),
            source_ip: None,
        };
        let mut auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iot/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        )
        .expect("parses");
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iot/aws4_request\n{}",
            sha256_hex(canonical_request(&req, &auth).as_bytes())
        );
        let key = signing_key(secret, "20150830", "us-east-1", "iot");
        auth.signature = hex::encode(hmac_sign(&key, string_to_sign.as_bytes()).as_ref());
        let now = parse_amz_date("20150830T123600Z").expect("date");
        assert_eq!(verify(&req, &auth, secret, now), Ok(()));
        req.body = Bytes::from_static(b"{\"a\":2}");
        assert_eq!(verify(&req, &auth, secret, now), Err(SigError::Mismatch));
    }
}
