//! Opening a data dir: the store, the issuing CA (created at first start) and `ca.pem`.

use std::path::Path;
use std::sync::Arc;

use certplane_core::clock::{Clock, OffsetClock};
use certplane_core::store::{Doc, Kind, Store, Write};
use certplane_core::Core;
use certplane_pki::IssuingCa;
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

/// Where a deployment's state lives: the data dir (always: `ca.pem` is written there), and the
/// PostgreSQL database when one is configured (else SQLite inside the data dir).
#[derive(clap::Args, Clone, Debug)]
pub struct Location {
    /// The data dir of the deployment.
    #[arg(long, default_value = "./certplane-data", env = "CERTPLANE_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
    /// A PostgreSQL URL (postgres://user@host:port/db) to keep state in instead of SQLite;
    /// every node of a multi-node deployment points at the same database.
    #[arg(long, env = "CERTPLANE_DATABASE_URL")]
    pub database_url: Option<String>,
}

pub async fn open(at: &Location) -> Result<Opened, String> {
    open_with(at, None).await
}

/// Opens the data dir; with `public_url`, the CA names that server's OCSP, CRL and CA URLs in
/// the certificates it issues.
pub async fn open_with(at: &Location, public_url: Option<&str>) -> Result<Opened, String> {
    let data_dir: &Path = &at.data_dir;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("creating the data dir {}: {e}", data_dir.display()))?;
    let store: Arc<dyn Store> = certplane_store::open(data_dir, at.database_url.as_deref()).await?;
    let clock = Arc::new(OffsetClock::new());
    let issuer = load_or_create_issuer(store.as_ref(), clock.as_ref()).await?;
    let ca_path = data_dir.join("ca.pem");
    if std::fs::read_to_string(&ca_path).ok().as_deref() != Some(issuer.cert_pem()) {
        std::fs::write(&ca_path, issuer.cert_pem())
            .map_err(|e| format!("writing {}: {e}", ca_path.display()))?;
    }
    let issuer = match public_url {
        Some(url) => issuer.with_public_url(url),
        None => issuer,
    };
    let core = Core::new(store, clock.clone(), Arc::new(issuer));
    Ok(Opened { core, clock })
}
