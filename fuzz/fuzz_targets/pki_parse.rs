//! PEM/DER certificates and CSRs: every parser certplane runs on what clients upload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = certplane_pki::parse_certificate_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = certplane_pki::parse_certificate_pem(s);
        let _ = certplane_pki::parse_csr(s);
    }
});
