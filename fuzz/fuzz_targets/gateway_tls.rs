//! The device gateway's TLS front: bytes a device sends before it is admitted, fed to the
//! listener's own TLS server configuration (its client-certificate verifier, TLS 1.2 and 1.3,
//! no resumption), and the SNI name the handshake carried routed to a tenant the way the
//! listener routes it. Seeded with real ClientHellos (Python's ssl module, OpenSSL) naming an
//! AWS IoT data endpoint, an ApsaraMQ instance and no name.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;

static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();

fn config() -> Arc<rustls::ServerConfig> {
    CONFIG
        .get_or_init(|| {
            let now = 1_767_225_600_000; // 2026-01-01
            let issuer = certplane_pki::IssuingCa::generate("fuzz gateway CA", now)
                .expect("a CA for the fuzz target");
            certplane_gateway::server_config(
                &certplane_gateway::Identity::Issued(vec!["localhost".into()]),
                &issuer,
                now,
            )
            .expect("the gateway's TLS configuration")
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut conn) = rustls::ServerConnection::new(config()) else {
        return;
    };
    let mut input = data;
    // Everything the device sent, record by record, as the listener's TLS stream reads it.
    while !input.is_empty() {
        match conn.read_tls(&mut input) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
            }
        }
    }
    let _ = certplane_gateway::tenants::route_name(conn.server_name(), "localhost");
    if let Ok(name) = std::str::from_utf8(data) {
        let _ = certplane_gateway::tenants::route_name(Some(name), "iot.example.com");
    }
});
