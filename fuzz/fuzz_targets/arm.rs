//! The Azure Billing front: the ARM path router (both api-versions), the Entra routes, and the
//! bearer-token decoder (JWT split, base64url, JSON claims, ES256 check), over arbitrary input.
#![no_main]

use std::sync::OnceLock;

use certplane_dialects::azure_billing::token::TokenKeys;
use certplane_dialects::azure_billing::{oauth, route, ApiVersion};
use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

static KEYS: OnceLock<Option<TokenKeys>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if let Some(keys) = KEYS.get_or_init(|| TokenKeys::ephemeral().ok()) {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = keys.verify(text, 1_790_000_000_000, false);
            let _ = keys.verify(text, 1_790_000_000_000, true);
        }
    }
    let Some(req) = request::from_bytes(data) else {
        return;
    };
    let _ = oauth::route(&req);
    if let Ok(segs) = req.segments() {
        for v in [ApiVersion::V2024, ApiVersion::V2019Preview] {
            let _ = route(req.method.as_str(), &segs, v);
        }
    }
});
