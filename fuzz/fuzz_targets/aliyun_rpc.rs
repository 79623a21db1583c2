//! Alibaba RPC: parameter decoding (query and form body), the signature claim (v1 and ACS3)
//! and the canonicalisers, over arbitrary requests.
#![no_main]

use certplane_dialects::aliyun::{params, signature};
use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = params::form_decode(s);
        let _ = params::decode_pairs(s);
        let _ = signature::rfc3986(s);
        let _ = signature::parse_timestamp(s);
    }
    let Some(req) = request::from_bytes(data) else {
        return;
    };
    if let Ok((query, body)) = params::read(&req) {
        let mut all: Vec<(String, String)> = query.into_iter().chain(body).collect();
        all.sort();
        let _ = signature::string_to_sign_v1(req.method.as_str(), &all);
        let _ = signature::claim(&req, &all);
    }
});
