//! SigV4: the Authorization header parser, the request time checks and the canonical request,
//! over arbitrary requests (the dialect runs them before any signature compare).
#![no_main]

use certplane_dialects::aws_iot::sigv4;
use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    let Some(req) = request::from_bytes(data) else {
        return;
    };
    if let Some(value) = req.header("authorization") {
        if let Ok(auth) = sigv4::parse_authorization(value) {
            let _ = sigv4::request_time(&req, &auth);
            let _ = sigv4::canonical_request(&req, &auth);
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = sigv4::parse_authorization(s);
        let _ = sigv4::parse_amz_date(s);
    }
});
