//! Real SigV4 signatures for the AWS IoT requests, when `--sign-with ID:SECRET` is given: a
//! server outside `--dev` checks them (and the key's user and policies), which is the verified
//! mode the identity benchmark measures. Without it requests carry a zero signature, which
//! `--dev` and moto accept.

use std::sync::OnceLock;

use aws_lc_rs::{digest, hmac};

pub struct Credentials {
    pub id: String,
    secret: String,
}

static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

/// Sets the key every AWS request is signed with (`ID:SECRET`).
pub fn configure(spec: &str) -> Result<(), String> {
    let (id, secret) = spec
        .split_once(':')
        .ok_or("--sign-with wants ACCESS_KEY_ID:SECRET")?;
    CREDENTIALS
        .set(Credentials {
            id: id.to_string(),
            secret: secret.to_string(),
        })
        .map_err(|_| "--sign-with given twice".to_string())
}

pub fn credentials() -> Option<&'static Credentials> {
    CREDENTIALS.get()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// One request as it is signed: the signed headers are those `build` sends.
pub struct Signed<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub host: &'a str,
    pub amz_date: &'a str,
    pub day: &'a str,
    /// The JSON body (then `content-type: application/json` is signed too).
    pub body: Option<&'a [u8]>,
}

impl Credentials {
    /// The `Signature=` value (SigV4, region us-east-1, service iot), as botocore computes it.
    pub fn signature(&self, r: &Signed<'_>) -> String {
        let (path, query) = r
            .path_and_query
            .split_once('?')
            .unwrap_or((r.path_and_query, ""));
        let mut pairs: Vec<(&str, &str)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        pairs.sort_unstable();
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let payload = hex(digest::digest(&digest::SHA256, r.body.unwrap_or(b"")).as_ref());
        let (headers, signed) = match r.body {
            Some(_) => (
                format!(
                    "content-type:application/json\nhost:{}\nx-amz-date:{}\n",
                    r.host, r.amz_date
                ),
                "content-type;host;x-amz-date",
            ),
            None => (
                format!("host:{}\nx-amz-date:{}\n", r.host, r.amz_date),
                "host;x-amz-date",
            ),
        };
        let canonical = format!(
            "{}\n{path}\n{}\n{headers}\n{signed}\n{payload}",
            r.method,
            query.join("&")
        );
        let scope = format!("{}/us-east-1/iot/aws4_request", r.day);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            r.amz_date,
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let k_date = mac(format!("AWS4{}", self.secret).as_bytes(), r.day.as_bytes());
        let k_region = mac(&k_date, b"us-east-1");
        let k_service = mac(&k_region, b"iot");
        let k_signing = mac(&k_service, b"aws4_request");
        hex(&mac(&k_signing, to_sign.as_bytes()))
    }
}
