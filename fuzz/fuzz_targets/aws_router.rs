//! The AWS IoT router: path segments (percent-decoding) and the route table, over arbitrary
//! methods and paths.
#![no_main]

use certplane_dialects::aws_iot::router;
use libfuzzer_sys::fuzz_target;

#[path = "request.rs"]
mod request;

fuzz_target!(|data: &[u8]| {
    let Some(req) = request::from_bytes(data) else {
        return;
    };
    let _ = req.query_pairs();
    if let Ok(segs) = req.segments() {
        let _ = router::route(req.method.as_str(), &segs);
        let _ = router::other_operation(req.method.as_str(), &segs);
    }
});
