//! Builds and signs one CRL of N revoked entries as the server's rebuild does (collect the
//! revoked entries of an in-memory index, sort them by serial, sign with the CA key) and prints
//! one JSON line: the time of that rebuild, the CRL's sizes and the process's memory.
//!
//!   cargo run --release -p certplane-pki --example crl_build -- 1000000
//!
//! `bench/crl.sh` runs it beside `openssl ca -gencrl` over an index of the same size.

use std::collections::HashMap;
use std::time::Instant;

use certplane_pki::{IssuingCa, Millis, RevocationReason, RevokedEntry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("entry count {a:?}: {e}"))?,
        None => 100_000,
    };
    let now: Millis = 1_790_000_000_000;
    let ca = IssuingCa::generate("crl bench CA", now)?;
    // The server's index: serial (16 random bytes, as certplane issues them) -> revocation.
    let mut index: HashMap<Vec<u8>, (Millis, Option<RevocationReason>)> =
        HashMap::with_capacity(n);
    let mut seed = [0u8; 16];
    for i in 0..n {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &(i as u64).to_be_bytes());
        seed.copy_from_slice(&d.as_ref()[..16]);
        seed[0] &= 0x7f;
        seed[0] |= 0x01;
        let reason = (i % 3 == 0).then_some(RevocationReason::CertificateHold);
        index.insert(seed.to_vec(), (now - (i as Millis) * 1000, reason));
    }
    let rss_index_kb = vm_kb("VmRSS:");

    let t0 = Instant::now();
    let mut entries: Vec<RevokedEntry> = index
        .iter()
        .map(|(serial, (at, reason))| RevokedEntry {
            serial: serial.clone(),
            revoked_at: *at,
            reason: *reason,
        })
        .collect();
    entries.sort_by(|a, b| a.serial.cmp(&b.serial));
    let collected = t0.elapsed();
    let crl = ca.sign_crl(1, now, now + 3_600_000, &entries)?;
    let total = t0.elapsed();
    println!(
        "{}",
        json_line(&[
            ("entries", n.to_string()),
            ("collect_sort_s", format!("{:.3}", collected.as_secs_f64())),
            ("build_sign_s", format!("{:.3}", total.as_secs_f64())),
            ("der_bytes", crl.der.len().to_string()),
            ("pem_bytes", crl.pem.len().to_string()),
            ("rss_index_kb", rss_index_kb.to_string()),
            ("peak_rss_kb", vm_kb("VmHWM:").to_string()),
        ])
    );
    Ok(())
}

/// A line of `/proc/self/status` in kB (0 where there is none).
fn vm_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `{"k": v, ...}` with numeric values (no JSON crate needed for numbers).
fn json_line(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}
