//! The OCSP request decoder (RFC 6960) that `/ocsp` runs on every POST body and GET path.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certplane_pki::parse_ocsp_request(data);
});
