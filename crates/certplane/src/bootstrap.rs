//! Opening a data dir: the store, the issuing CA (created at first start) and `ca.pem`.

use std::path::Path;
use std::sync::Arc;

use certplane_core::clock::{Clock, OffsetClock};
use certplane_core::store::{Doc, Kind, Store, Write};
use certplane_core::Core;
use certplane_pki::IssuingCa;
use certplane_store::SqliteStore;
use serde::{Deserialize, Serialize};

/// The issuing CA as stored (one document, so every node on a shared database signs with the
/// same CA).
#[derive(Serialize, Deserialize)]
struct StoredIssuer {
    cert_pem: String,
    key_pem: String,
}

const ISSUER_KEY: &str = "default";

async fn load_or_create_issuer(store: &dyn Store, clock: &dyn Clock) -> Result<IssuingCa, String> {
    if store
        .get(Kind::Issuer, ISSUER_KEY)
        .await
        .map_err(|e| format!("reading the issuing CA: {e}"))?
        .is_none()
    {
        let ca = IssuingCa::generate("certplane issuing CA", clock.now())
            .map_err(|e| format!("creating the issuing CA: {e}"))?;
        let body = serde_json::to_string(&StoredIssuer {
            cert_pem: ca.cert_pem().to_string(),
            key_pem: ca.key_pem().to_string(),
        })
        .map_err(|e| format!("encoding the issuing CA: {e}"))?;
        // Two processes starting at once: one insert wins, both load the winner below.
        store
            .apply(vec![Write::InsertIfAbsent(Doc {
                kind: Kind::Issuer,
                key: ISSUER_KEY.into(),
                account: String::new(),
                region: String::new(),
                idx1: None,
                idx2: None,
                body,
            })])
            .await
            .map_err(|e| format!("saving the issuing CA: {e}"))?;
    }
    let doc = store
        .get(Kind::Issuer, ISSUER_KEY)
        .await
        .map_err(|e| format!("reading the issuing CA: {e}"))?
        .ok_or("the issuing CA vanished after it was saved")?;
    let stored: StoredIssuer =
        serde_json::from_str(&doc.doc.body).map_err(|e| format!("decoding the issuing CA: {e}"))?;
    IssuingCa::from_pem(&stored.cert_pem, &stored.key_pem)
        .map_err(|e| format!("loading the issuing CA: {e}"))
}

/// Everything a command needs from a data dir.
pub struct Opened {
    pub core: Core,
    pub clock: Arc<OffsetClock>,
}

pub async fn open(data_dir: &Path) -> Result<Opened, String> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data_dir)?);
    let clock = Arc::new(OffsetClock::new());
    let issuer = load_or_create_issuer(store.as_ref(), clock.as_ref()).await?;
    let ca_path = data_dir.join("ca.pem");
    if std::fs::read_to_string(&ca_path).ok().as_deref() != Some(issuer.cert_pem()) {
        std::fs::write(&ca_path, issuer.cert_pem())
            .map_err(|e| format!("writing {}: {e}", ca_path.display()))?;
    }
    let core = Core::new(store, clock.clone(), Arc::new(issuer));
    Ok(Opened { core, clock })
}
