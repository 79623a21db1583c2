//! Opening a data dir: the store, the held CAs (the first made at first start, see
//! `ca_custody`) and `ca.pem`.

use std::path::Path;
use std::sync::Arc;

use certplane_core::clock::{Clock, OffsetClock};
use certplane_core::held_cas::{CaSet, HeldCas};
use certplane_core::store::Store;
use certplane_core::Core;

use crate::ca_custody::{Custody, KeyArgs, KeySource};

/// Everything a command needs from a data dir.
pub struct Opened {
    pub core: Core,
    pub clock: Arc<OffsetClock>,
    /// The CA records and keys, for reloading the held CAs when an operator changes them.
    pub custody: Arc<Custody>,
    /// Where the master key came from (`None`: no software key needs one).
    pub key_source: Option<KeySource>,
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
    #[command(flatten)]
    pub keys: KeyArgs,
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
    let custody = Arc::new(Custody::new(
        store.clone(),
        data_dir,
        at.database_url.is_some(),
        &at.keys,
        public_url,
    ));
    let key_source = custody.prepare(clock.now()).await?;
    let set = custody.load(None).await?;
    write_ca_bundle(data_dir, &set)?;
    let mut core = Core::with_cas(store, clock.clone(), Arc::new(HeldCas::new(set)));
    // The master key also seals the access-key secrets (a deployment whose CAs are all in a
    // PKCS#11 token may have none: its secrets stay as they are).
    if let Ok(master) = custody.current_master_key().await {
        core = core.with_master_key(Arc::new(master));
        core.seal_plain_access_keys()
            .await
            .map_err(|e| format!("sealing the access-key secrets: {e}"))?;
    }
    Ok(Opened {
        core,
        clock,
        custody,
        key_source,
    })
}

/// `ca.pem` in the data dir: the certificates of every held CA, the active one first, so a
/// client that trusts the file trusts every certificate certplane signed.
pub fn write_ca_bundle(data_dir: &Path, set: &CaSet) -> Result<(), String> {
    let bundle: String = set.all().iter().map(|c| c.cert_pem().to_string()).collect();
    let ca_path = data_dir.join("ca.pem");
    if std::fs::read_to_string(&ca_path).ok().as_deref() != Some(bundle.as_str()) {
        std::fs::write(&ca_path, bundle)
            .map_err(|e| format!("writing {}: {e}", ca_path.display()))?;
    }
    Ok(())
}
