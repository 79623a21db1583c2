//! A CRL of N revoked entries, built as the server keeps and rebuilds it: each entry is encoded
//! once when its certificate changes (kept per CA in a map ordered by serial, as
//! crates/certplane/src/revocation_index.rs does), and a rebuild concatenates the encoded
//! entries and signs (`IssuingCa::sign_crl_der`, with the PEM). Prints one JSON line: the time
//! to encode all N entries (spread over N changes in the server), the rebuild time, the CRL's
//! sizes and the process's memory before and at the peak of the rebuild.
//!
//!   cargo run --release -p certplane-pki --example crl_build -- 1000000
//!
//! `bench/crl.sh` runs it beside `openssl ca -gencrl` over an index of the same size.

use std::collections::BTreeMap;
use std::time::Instant;

use certplane_pki::{IssuingCa, Millis, RevocationReason, RevokedEntry};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("entry count {a:?}: {e}"))?,
        None => 100_000,
    };
    let now: Millis = 1_790_000_000_000;
    let ca = IssuingCa::generate("crl bench CA", now)?;
    // serial (16 random bytes, as certplane issues them) -> the encoded CRL entry.
    let mut kept: BTreeMap<Box<[u8]>, Box<[u8]>> = BTreeMap::new();
    let mut bytes = 0usize;
    // The last 10,000 are timed on their own below.
    let more = n.min(10_000);
    let t0 = Instant::now();
    for i in 0..n - more {
        bytes += revoke(&mut kept, i, now)?;
    }
    let encode_all = t0.elapsed();
    let rss_before_kb = vm_kb("VmRSS:");
    // What one more revocation costs with about N entries already listed (the index's work
    // per change: encode the entry, put it in the ordered map); the last 10,000, averaged.
    let t_more = Instant::now();
    for i in n - more..n {
        bytes += revoke(&mut kept, i, now)?;
    }
    let per_revocation_ns = t_more.elapsed().as_nanos() / (more.max(1) as u128);

    let t1 = Instant::now();
    let mut entries = Vec::with_capacity(bytes);
    for der in kept.values() {
        entries.extend_from_slice(der);
    }
    let crl = ca.sign_crl_der(1, now, now + 3_600_000, &entries)?;
    drop(entries);
    let rebuild = t1.elapsed();
    println!(
        "{}",
        json_line(&[
            ("entries", n.to_string()),
            ("encode_all_s", format!("{:.3}", encode_all.as_secs_f64())),
            ("one_more_revocation_ns", per_revocation_ns.to_string()),
            ("rebuild_s", format!("{:.3}", rebuild.as_secs_f64())),
            ("der_bytes", crl.der.len().to_string()),
            ("pem_bytes", crl.pem.len().to_string()),
            ("rss_before_rebuild_kb", rss_before_kb.to_string()),
            ("peak_rss_kb", vm_kb("VmHWM:").to_string()),
        ])
    );
    Ok(())
}

/// Revokes the i-th certificate: its entry encoded and put in the ordered map, as the index
/// does on a change. Returns the entry's size.
fn revoke(
    kept: &mut BTreeMap<Box<[u8]>, Box<[u8]>>,
    i: usize,
    now: Millis,
) -> Result<usize, certplane_pki::PkiError> {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &(i as u64).to_be_bytes());
    let mut serial = d.as_ref()[..16].to_vec();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let mut der = Vec::with_capacity(48);
    RevokedEntry {
        serial: serial.clone(),
        revoked_at: now - (i as Millis) * 1000,
        reason: i
            .is_multiple_of(3)
            .then_some(RevocationReason::CertificateHold),
    }
    .encode_der(&mut der)?;
    let len = der.len();
    kept.insert(serial.into_boxed_slice(), der.into_boxed_slice());
    Ok(len)
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
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}
