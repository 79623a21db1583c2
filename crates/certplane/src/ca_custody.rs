//! Custody of the CAs certplane holds: their records in the store (`Kind::Issuer`), the master
//! key that seals software CA keys (AES-256-GCM), PKCS#11 tokens, the first CA made at first
//! start, migration of the older layout (one plain key), and the operator's changes (create,
//! import, activate, rotate the master key).
//!
//! Records (all `Kind::Issuer`): `ca:{caId}` per held CA; `active` names the CA that signs
//! (a pointer, so making another CA active is one compare-and-set and two racing rotations
//! cannot both win); `master-key` only with PostgreSQL and no `--master-key-file`; `default`
//! is the older layout's CA with its key in plain text, migrated at first open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use certplane_core::clock::Millis;
use certplane_core::held_cas::CaSet;
use certplane_core::store::{Doc, Filter, Kind, PageQuery, Store, StoredDoc, Write};
use certplane_core::DomainError;
use certplane_pki::{CaKey, IssuingCa, MasterKey, Sealed, Token, TokenConfig, SEALING_ALGORITHM};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How CA keys are kept: flags of `serve` and of every `admin` command (they open the CAs too).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KeyArgs {
    /// A file holding the master key (64 hex digits, e.g. from `openssl rand -hex 32`) that
    /// seals the CA private keys at rest. Without it a key is generated beside the data (the
    /// data dir's `master.key`; with PostgreSQL, in the database) and `serve` warns at start.
    #[arg(long, env = "CERTPLANE_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The PKCS#11 module for CA keys kept in a token (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, env = "CERTPLANE_PKCS11_MODULE", value_name = "PATH")]
    pub pkcs11_module: Option<PathBuf>,
    /// The label of the PKCS#11 token holding CA keys.
    #[arg(long, env = "CERTPLANE_PKCS11_TOKEN_LABEL", value_name = "LABEL")]
    pub pkcs11_token_label: Option<String>,
    /// A file holding the token's user PIN (or put the PIN in CERTPLANE_PKCS11_PIN; never on
    /// the command line, where every user sees it).
    #[arg(long, env = "CERTPLANE_PKCS11_PIN_FILE", value_name = "FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
}

const ACTIVE_KEY: &str = "active";
const MASTER_KEY_DOC: &str = "master-key";
const LEGACY_KEY: &str = "default";
const MASTER_KEY_FILE: &str = "master.key";
/// A new master key written by `rotate-master-key` before the commit, renamed after it: at
/// start, whichever of the two opens the keys is the right one.
const MASTER_KEY_NEW_FILE: &str = "master.key.new";

fn record_key(ca_id: &str) -> String {
    format!("ca:{ca_id}")
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct CaRecord {
    ca_id: String,
    cert_pem: String,
    key: StoredKey,
    /// How it came to be held: `first-start`, `created`, `imported`, `migrated`.
    origin: String,
    created_at: Millis,
    /// When it last stopped being the active CA (rotation); `None` if it never signed or
    /// still signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired_at: Option<Millis>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(tag = "type", rename_all = "camelCase")]
enum StoredKey {
    #[serde(rename_all = "camelCase")]
    Sealed {
        algorithm: String,
        master_key_id: String,
        nonce: String,
        ciphertext: String,
    },
    #[serde(rename_all = "camelCase")]
    Pkcs11 { token_label: String, key_id: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivePointer {
    ca_id: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMasterKey {
    key_hex: String,
}

/// The older layout: one CA, its PKCS#8 key in plain text.
#[derive(Deserialize)]
struct LegacyIssuer {
    cert_pem: String,
    key_pem: String,
}

/// Where the master key came from, for the start-up warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    /// Generated into the data dir: it lies beside the data it protects.
    DataDir(PathBuf),
    /// Generated into the PostgreSQL database: it lies beside the data it protects.
    Database,
}

impl KeySource {
    /// The warning `serve` prints at every start when the key lies beside the data.
    pub fn warning(&self) -> Option<String> {
        match self {
            KeySource::File(_) => None,
            KeySource::DataDir(p) => Some(format!(
                "the master key that seals the CA keys lies beside the data ({}); anyone who \
                 copies the data dir has the CA keys: keep the key elsewhere and start with \
                 --master-key-file",
                p.display()
            )),
            KeySource::Database => Some(
                "the master key that seals the CA keys is stored in the PostgreSQL database \
                 beside the data; anyone who reads the database has the CA keys: keep the key \
                 elsewhere and start every node with --master-key-file"
                    .to_string(),
            ),
        }
    }
}

/// One held CA as `admin ca list|show` print it.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CaSummary {
    pub ca_id: String,
    pub common_name: String,
    /// `ACTIVE` (signs new certificates), `RETIRED` (signed before a rotation) or `STANDBY`
    /// (held, never active).
    pub status: &'static str,
    /// `software` (sealed under the master key) or `pkcs11`.
    pub custody: &'static str,
    pub origin: String,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
    pub not_after: Millis,
    pub certificate_pem: String,
}

fn store_err(what: &str) -> impl Fn(DomainError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("the stored CA record's {what} is not base64: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn issuer_doc(key: &str, body: String) -> Doc {
    Doc {
        kind: Kind::Issuer,
        key: key.to_string(),
        account: String::new(),
        region: String::new(),
        idx1: None,
        idx2: None,
        body,
    }
}

fn json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("encoding a CA record: {e}"))
}

/// The stored records of a deployment, read in one go (a handful of documents).
struct Records {
    cas: Vec<(CaRecord, i64)>,
    active: Option<(String, i64)>,
    master: Option<(String, i64)>,
    legacy: Option<(LegacyIssuer, i64)>,
    /// (key, version) of every record: equal fingerprints mean nothing changed.
    fingerprint: Vec<(String, i64)>,
}

impl Records {
    fn sealed_under(&self) -> Option<&str> {
        self.cas.iter().find_map(|(r, _)| match &r.key {
            StoredKey::Sealed { master_key_id, .. } => Some(master_key_id.as_str()),
            StoredKey::Pkcs11 { .. } => None,
        })
    }

    fn record(&self, ca_id: &str) -> Option<&(CaRecord, i64)> {
        self.cas.iter().find(|(r, _)| r.ca_id == ca_id)
    }
}

pub struct Custody {
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    postgres: bool,
    args: KeyArgs,
    public_url: Option<String>,
    /// The token, opened the first time a CA needs it and kept (its sessions are logged in).
    token: Mutex<Option<Arc<Token>>>,
    /// The fingerprint of the records the current set was built from.
    loaded: Mutex<Vec<(String, i64)>>,
}

impl Custody {
    pub fn new(
        store: Arc<dyn Store>,
        data_dir: &Path,
        postgres: bool,
        args: &KeyArgs,
        public_url: Option<&str>,
    ) -> Self {
        Custody {
            store,
            data_dir: data_dir.to_path_buf(),
            postgres,
            args: args.clone(),
            public_url: public_url.map(str::to_string),
            token: Mutex::new(None),
            loaded: Mutex::new(Vec::new()),
        }
    }

    async fn records(&self) -> Result<Records, String> {
        let docs: Vec<StoredDoc> = self
            .store
            .query(Kind::Issuer, &Filter::default(), PageQuery::all())
            .await
            .map_err(store_err("reading the CA records"))?;
        let mut out = Records {
            cas: Vec::new(),
            active: None,
            master: None,
            legacy: None,
            fingerprint: Vec::new(),
        };
        for d in docs {
            out.fingerprint.push((d.doc.key.clone(), d.version));
            let body = &d.doc.body;
            let bad =
                |e: serde_json::Error| format!("the CA record {:?} is damaged: {e}", d.doc.key);
            match d.doc.key.as_str() {
                ACTIVE_KEY => {
                    let p: ActivePointer = serde_json::from_str(body).map_err(bad)?;
                    out.active = Some((p.ca_id, d.version));
                }
                MASTER_KEY_DOC => {
                    let m: StoredMasterKey = serde_json::from_str(body).map_err(bad)?;
                    out.master = Some((m.key_hex, d.version));
                }
                LEGACY_KEY => {
                    let l: LegacyIssuer = serde_json::from_str(body).map_err(bad)?;
                    out.legacy = Some((l, d.version));
                }
                k if k.starts_with("ca:") => {
                    let r: CaRecord = serde_json::from_str(body).map_err(bad)?;
                    out.cas.push((r, d.version));
                }
                // Unknown records (a newer release's) are left alone.
                _ => {}
            }
        }
        out.fingerprint.sort();
        Ok(out)
    }

    /// The master key, resolved as configured; `create` allows generating one (only when no
    /// stored key is sealed yet, so a missing key never silently starts a new CA).
    async fn master_key(
        &self,
        recs: &Records,
        create: bool,
    ) -> Result<(MasterKey, KeySource), String> {
        if let Some(path) = &self.args.master_key_file {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "reading the master key file {}: {e} (make one with `openssl rand -hex 32 > {}`)",
                    path.display(),
                    path.display()
                )
            })?);
            let key = MasterKey::from_text(&text)
                .map_err(|e| format!("the master key file {}: {e}", path.display()))?;
            return Ok((key, KeySource::File(path.clone())));
        }
        if self.postgres {
            if let Some((hex_text, _)) = &recs.master {
                let key = MasterKey::from_text(hex_text)
                    .map_err(|e| format!("the master key stored in the database: {e}"))?;
                return Ok((key, KeySource::Database));
            }
            if let Some(id) = recs.sealed_under() {
                return Err(format!(
                    "the CA keys are sealed under master key {id}, which is not in the database: \
                     start with --master-key-file naming the file that holds it"
                ));
            }
            if !create {
                return Err("no master key: the CAs are not set up yet".into());
            }
            let key = MasterKey::generate().map_err(|e| e.to_string())?;
            let doc = issuer_doc(
                MASTER_KEY_DOC,
                json(&StoredMasterKey {
                    key_hex: key.to_text().trim().to_string(),
                })?,
            );
            // Nodes starting together: one insert wins and everyone uses the winner's key.
            self.store
                .apply(vec![Write::InsertIfAbsent(doc)])
                .await
                .map_err(store_err("saving the master key"))?;
            let recs = self.records().await?;
            let Some((hex_text, _)) = &recs.master else {
                return Err("the master key vanished after it was saved".into());
            };
            let key = MasterKey::from_text(hex_text).map_err(|e| e.to_string())?;
            return Ok((key, KeySource::Database));
        }
        let path = self.data_dir.join(MASTER_KEY_FILE);
        let pending = self.data_dir.join(MASTER_KEY_NEW_FILE);
        if pending.exists() {
            // A rotation was interrupted: use whichever key the stored records are sealed under.
            let new = read_key_file(&pending)?;
            if recs.sealed_under() == Some(new.id()) {
                std::fs::rename(&pending, &path).map_err(|e| {
                    format!(
                        "finishing the master key rotation ({}): {e}",
                        path.display()
                    )
                })?;
                return Ok((new, KeySource::DataDir(path)));
            }
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let key = MasterKey::from_text(&text)
                    .map_err(|e| format!("the master key file {}: {e}", path.display()))?;
                Ok((key, KeySource::DataDir(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(id) = recs.sealed_under() {
                    return Err(format!(
                        "the CA keys of this deployment are sealed under master key {id}, but {} \
                         does not exist: start with --master-key-file naming the file that holds \
                         that key (certplane never makes a new CA in place of a locked one)",
                        path.display()
                    ));
                }
                if !create {
                    return Err(format!("no master key at {}", path.display()));
                }
                let key = MasterKey::generate().map_err(|e| e.to_string())?;
                if !create_secret_file(&path, &key.to_text())? {
                    // Another process on this data dir made one first: use that one.
                    return Ok((read_key_file(&path)?, KeySource::DataDir(path)));
                }
                Ok((key, KeySource::DataDir(path)))
            }
            Err(e) => Err(format!(
                "reading the master key file {}: {e}",
                path.display()
            )),
        }
    }

    fn token(&self) -> Result<Arc<Token>, String> {
        let mut slot = self
            .token
            .lock()
            .map_err(|_| "the PKCS#11 token lock is poisoned".to_string())?;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let (Some(module), Some(label)) = (&self.args.pkcs11_module, &self.args.pkcs11_token_label)
        else {
            return Err(
                "a CA key is in a PKCS#11 token: give --pkcs11-module and --pkcs11-token-label \
                 (or CERTPLANE_PKCS11_MODULE and CERTPLANE_PKCS11_TOKEN_LABEL) and the PIN"
                    .into(),
            );
        };
        let pin = match (
            &self.args.pkcs11_pin_file,
            std::env::var("CERTPLANE_PKCS11_PIN"),
        ) {
            (Some(p), _) => Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("reading the PKCS#11 PIN file {}: {e}", p.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, Ok(pin)) => Zeroizing::new(pin),
            (None, Err(_)) => return Err(
                "the PKCS#11 PIN is missing: give --pkcs11-pin-file or set CERTPLANE_PKCS11_PIN"
                    .into(),
            ),
        };
        let token = Arc::new(
            Token::open(&TokenConfig {
                module: module.clone(),
                token_label: label.clone(),
                pin,
            })
            .map_err(|e| e.to_string())?,
        );
        *slot = Some(token.clone());
        Ok(token)
    }

    fn seal(&self, master: &MasterKey, ca: &IssuingCa) -> Result<StoredKey, String> {
        let Some(pkcs8) = ca.key_pkcs8() else {
            return Err("this CA's key is in a token and cannot be sealed".into());
        };
        let Sealed {
            key_id,
            nonce,
            ciphertext,
        } = master
            .seal(&pkcs8, ca.ca_id().as_bytes())
            .map_err(|e| format!("sealing the CA key: {e}"))?;
        Ok(StoredKey::Sealed {
            algorithm: SEALING_ALGORITHM.into(),
            master_key_id: key_id,
            nonce: b64(&nonce),
            ciphertext: b64(&ciphertext),
        })
    }

    fn open_record(&self, r: &CaRecord, master: Option<&MasterKey>) -> Result<IssuingCa, String> {
        let key = match &r.key {
            StoredKey::Sealed {
                algorithm,
                master_key_id,
                nonce,
                ciphertext,
            } => {
                if algorithm != SEALING_ALGORITHM {
                    return Err(format!(
                        "the CA {} is sealed with {algorithm:?}, which this release cannot open",
                        r.ca_id
                    ));
                }
                let Some(master) = master else {
                    return Err(format!("the CA {} needs the master key", r.ca_id));
                };
                let sealed = Sealed {
                    key_id: master_key_id.clone(),
                    nonce: unb64(nonce, "nonce")?,
                    ciphertext: unb64(ciphertext, "ciphertext")?,
                };
                let pkcs8 = master.open(&sealed, r.ca_id.as_bytes()).map_err(|e| {
                    format!(
                        "the master key does not open the key of CA {} ({e}); start with the \
                         --master-key-file it was sealed with (certplane never makes a new CA \
                         in place of a locked one)",
                        r.ca_id
                    )
                })?;
                CaKey::software_from_pkcs8(&pkcs8).map_err(|e| e.to_string())?
            }
            StoredKey::Pkcs11 {
                token_label,
                key_id,
            } => {
                let token = self.token()?;
                if token.label() != token_label {
                    return Err(format!(
                        "the CA {}'s key is in the token {token_label:?}, but the configured \
                         token is {:?}",
                        r.ca_id,
                        token.label()
                    ));
                }
                let id = unhex(key_id)
                    .ok_or_else(|| format!("the CA {}'s token key id is not hex", r.ca_id))?;
                CaKey::Token(token.find_key(&id).map_err(|e| e.to_string())?)
            }
        };
        let ca = IssuingCa::from_parts(&r.cert_pem, key)
            .map_err(|e| format!("loading the CA {}: {e}", r.ca_id))?;
        if ca.ca_id() != r.ca_id {
            return Err(format!(
                "the CA record {} holds another CA's certificate",
                r.ca_id
            ));
        }
        Ok(match &self.public_url {
            Some(url) => ca.with_public_url(url),
            None => ca,
        })
    }

    /// Makes the store hold at least one CA and a current layout: migrates the older layout
    /// (sealing its plain key) or makes the first CA. Returns where the master key came from.
    pub async fn prepare(&self, now: Millis) -> Result<Option<KeySource>, String> {
        for _ in 0..5 {
            let recs = self.records().await?;
            if let Some((legacy, version)) = &recs.legacy {
                let (master, source) = self.master_key(&recs, true).await?;
                let ca = IssuingCa::from_pem(&legacy.cert_pem, &legacy.key_pem)
                    .map_err(|e| format!("loading the CA of the older layout: {e}"))?;
                let record = CaRecord {
                    ca_id: ca.ca_id().to_string(),
                    cert_pem: ca.cert_pem().to_string(),
                    key: self.seal(&master, &ca)?,
                    origin: "migrated".into(),
                    created_at: now,
                    retired_at: None,
                };
                let mut writes = vec![Write::Delete {
                    kind: Kind::Issuer,
                    key: LEGACY_KEY.into(),
                    expected_version: *version,
                }];
                writes.push(Write::InsertIfAbsent(issuer_doc(
                    &record_key(&record.ca_id),
                    json(&record)?,
                )));
                if recs.active.is_none() {
                    writes.push(Write::Insert(issuer_doc(
                        ACTIVE_KEY,
                        json(&ActivePointer {
                            ca_id: record.ca_id.clone(),
                        })?,
                    )));
                }
                match self.store.apply(writes).await {
                    Ok(()) => {
                        tracing::info!(ca = %record.ca_id, "sealed the CA key of the older layout under the master key");
                        return Ok(Some(source));
                    }
                    // Another node migrated it first: look again.
                    Err(DomainError::Stale | DomainError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(format!("migrating the CA record: {e}")),
                }
            }
            if recs.active.is_some() {
                let needs_master = recs.sealed_under().is_some();
                return if needs_master {
                    Ok(Some(self.master_key(&recs, false).await?.1))
                } else {
                    Ok(None)
                };
            }
            let (master, source) = self.master_key(&recs, true).await?;
            let ca = IssuingCa::generate("certplane issuing CA", now)
                .map_err(|e| format!("creating the issuing CA: {e}"))?;
            let record = CaRecord {
                ca_id: ca.ca_id().to_string(),
                cert_pem: ca.cert_pem().to_string(),
                key: self.seal(&master, &ca)?,
                origin: "first-start".into(),
                created_at: now,
                retired_at: None,
            };
            let writes = vec![
                Write::Insert(issuer_doc(&record_key(&record.ca_id), json(&record)?)),
                Write::Insert(issuer_doc(
                    ACTIVE_KEY,
                    json(&ActivePointer {
                        ca_id: record.ca_id.clone(),
                    })?,
                )),
            ];
            match self.store.apply(writes).await {
                Ok(()) => return Ok(Some(source)),
                // Two processes starting at once: one first CA wins, the other loads it.
                Err(DomainError::AlreadyExists { .. } | DomainError::Stale) => continue,
                Err(e) => return Err(format!("saving the issuing CA: {e}")),
            }
        }
        Err("the CA records kept changing while this process started; try again".into())
    }

    /// Builds the set of held CAs from the store, reusing the already opened CAs of
    /// `previous` (no second unsealing or token lookup for them).
    pub async fn load(&self, previous: Option<&CaSet>) -> Result<CaSet, String> {
        let recs = self.records().await?;
        let active_id = recs
            .active
            .as_ref()
            .map(|(id, _)| id.clone())
            .ok_or("no active CA is recorded: the CAs are not set up")?;
        let mut reuse: HashMap<String, Arc<IssuingCa>> = HashMap::new();
        if let Some(prev) = previous {
            for ca in prev.all() {
                reuse.insert(ca.ca_id().to_string(), ca.clone());
            }
        }
        let needs_master = recs.cas.iter().any(|(r, _)| {
            matches!(r.key, StoredKey::Sealed { .. }) && !reuse.contains_key(&r.ca_id)
        });
        let master = if needs_master {
            Some(self.master_key(&recs, false).await?.0)
        } else {
            None
        };
        let mut active = None;
        let mut others = Vec::new();
        for (r, _) in &recs.cas {
            let ca = match reuse.get(&r.ca_id) {
                Some(ca) => ca.clone(),
                None => Arc::new(self.open_record(r, master.as_ref())?),
            };
            if r.ca_id == active_id {
                active = Some(ca);
            } else {
                others.push(ca);
            }
        }
        let active = active
            .ok_or_else(|| format!("the active CA {active_id} has no record in the store"))?;
        if let Ok(mut l) = self.loaded.lock() {
            *l = recs.fingerprint.clone();
        }
        Ok(CaSet::new(active, others))
    }

    /// The master key as configured now (after a rotation: the new one).
    pub async fn current_master_key(&self) -> Result<MasterKey, String> {
        let recs = self.records().await?;
        Ok(self.master_key(&recs, false).await?.0)
    }

    /// Whether the stored records differ from those the last [`Custody::load`] read.
    pub async fn changed(&self) -> Result<bool, String> {
        let recs = self.records().await?;
        Ok(match self.loaded.lock() {
            Ok(l) => *l != recs.fingerprint,
            Err(_) => true,
        })
    }

    pub async fn list(&self) -> Result<Vec<CaSummary>, String> {
        let recs = self.records().await?;
        let active = recs.active.as_ref().map(|(id, _)| id.as_str());
        let mut out = Vec::new();
        for (r, _) in &recs.cas {
            let parsed = certplane_pki::parse_certificate_pem(&r.cert_pem)
                .map_err(|e| format!("the CA {}'s certificate: {e}", r.ca_id))?;
            out.push(CaSummary {
                ca_id: r.ca_id.clone(),
                common_name: parsed.subject_cn.clone().unwrap_or_default(),
                status: if Some(r.ca_id.as_str()) == active {
                    "ACTIVE"
                } else if r.retired_at.is_some() {
                    "RETIRED"
                } else {
                    "STANDBY"
                },
                custody: match r.key {
                    StoredKey::Sealed { .. } => "software",
                    StoredKey::Pkcs11 { .. } => "pkcs11",
                },
                origin: r.origin.clone(),
                created_at: r.created_at,
                retired_at: r.retired_at,
                not_after: parsed.not_after,
                certificate_pem: r.cert_pem.clone(),
            });
        }
        // The active CA first, then by age.
        out.sort_by_key(|s| (s.status != "ACTIVE", s.created_at));
        Ok(out)
    }

    /// Adds a CA to the held set (new: software or in the token; or imported), and makes it
    /// the active one when `activate`.
    pub async fn add(&self, new: NewCa, activate: bool, now: Millis) -> Result<CaSummary, String> {
        let recs = self.records().await?;
        let (ca, key, origin) = match new {
            NewCa::Generate {
                common_name,
                in_token,
            } => {
                if in_token {
                    let token = self.token()?;
                    let label = format!("certplane CA {now}");
                    let key = token.generate_key(&label).map_err(|e| e.to_string())?;
                    let stored = StoredKey::Pkcs11 {
                        token_label: token.label().to_string(),
                        key_id: hex(key.id()),
                    };
                    let ca = IssuingCa::self_signed(&common_name, CaKey::Token(key), now)
                        .map_err(|e| format!("signing the CA certificate in the token: {e}"))?;
                    (ca, Some(stored), "created")
                } else {
                    let ca = IssuingCa::generate(&common_name, now)
                        .map_err(|e| format!("creating the CA: {e}"))?;
                    (ca, None, "created")
                }
            }
            NewCa::Import { cert_pem, key_pem } => {
                let ca = IssuingCa::from_pem(&cert_pem, &key_pem)
                    .map_err(|e| format!("importing the CA: {e}"))?;
                (ca, None, "imported")
            }
        };
        let key = match key {
            Some(k) => k,
            None => {
                let (master, _) = self.master_key(&recs, false).await?;
                self.seal(&master, &ca)?
            }
        };
        let record = CaRecord {
            ca_id: ca.ca_id().to_string(),
            cert_pem: ca.cert_pem().to_string(),
            key,
            origin: origin.into(),
            created_at: now,
            retired_at: None,
        };
        if recs.record(&record.ca_id).is_some() {
            return Err(format!("the CA {} is already held", record.ca_id));
        }
        let mut writes = vec![Write::Insert(issuer_doc(
            &record_key(&record.ca_id),
            json(&record)?,
        ))];
        if activate {
            writes.extend(activation_writes(&recs, &record.ca_id, now)?);
        }
        self.store.apply(writes).await.map_err(|e| match e {
            DomainError::AlreadyExists { .. } => format!("the CA {} is already held", record.ca_id),
            DomainError::Stale => {
                "another operator changed the CAs at the same time; try again".into()
            }
            e => format!("saving the CA: {e}"),
        })?;
        self.summary(&record.ca_id).await
    }

    /// Makes a held CA the active one (the previous one is retired but keeps answering CRL and
    /// OCSP for what it signed).
    pub async fn activate(&self, ca_id: &str, now: Millis) -> Result<CaSummary, String> {
        let recs = self.records().await?;
        if recs.record(ca_id).is_none() {
            return Err(format!("no held CA has the id {ca_id:?}"));
        }
        if recs.active.as_ref().map(|(a, _)| a.as_str()) == Some(ca_id) {
            return Err(format!("the CA {ca_id} is already the active CA"));
        }
        let writes = activation_writes(&recs, ca_id, now)?;
        self.store.apply(writes).await.map_err(|e| match e {
            DomainError::Stale => {
                "another operator changed the CAs at the same time; try again".into()
            }
            e => format!("activating the CA: {e}"),
        })?;
        self.summary(ca_id).await
    }

    async fn summary(&self, ca_id: &str) -> Result<CaSummary, String> {
        self.list()
            .await?
            .into_iter()
            .find(|s| s.ca_id == ca_id)
            .ok_or_else(|| format!("no held CA has the id {ca_id:?}"))
    }

    /// Re-seals every software CA key under `new` in one transaction. With the data dir's
    /// key file, the new key is written beside it first and renamed after the commit, so a
    /// crash at any point leaves a key that opens the stored records.
    pub async fn rotate_master_key(&self, new: &MasterKey) -> Result<(String, String), String> {
        let recs = self.records().await?;
        let (old, source) = self.master_key(&recs, false).await?;
        if old.id() == new.id() {
            return Err("the new master key is the current one".into());
        }
        // The access-key secrets are sealed under the same key: re-sealed in the same
        // transaction, so no key is ever sealed under a master key the records do not name.
        let mut writes = certplane_core::secrets::reseal_writes(&*self.store, &old, new)
            .await
            .map_err(|e| format!("re-sealing the access-key secrets: {e}"))?;
        for (r, version) in &recs.cas {
            if !matches!(r.key, StoredKey::Sealed { .. }) {
                continue;
            }
            let ca = self.open_record(r, Some(&old))?;
            let mut resealed = r.clone();
            resealed.key = self.seal(new, &ca)?;
            writes.push(Write::Update {
                doc: issuer_doc(&record_key(&r.ca_id), json(&resealed)?),
                expected_version: *version,
            });
        }
        match &source {
            KeySource::Database => {
                if let Some((_, version)) = &recs.master {
                    writes.push(Write::Update {
                        doc: issuer_doc(
                            MASTER_KEY_DOC,
                            json(&StoredMasterKey {
                                key_hex: new.to_text().trim().to_string(),
                            })?,
                        ),
                        expected_version: *version,
                    });
                }
            }
            KeySource::DataDir(_) => {
                write_secret_file(&self.data_dir.join(MASTER_KEY_NEW_FILE), &new.to_text())?;
            }
            KeySource::File(_) => {}
        }
        self.store.apply(writes).await.map_err(|e| match e {
            DomainError::Stale => {
                "another operator changed the CAs at the same time; try again".into()
            }
            e => format!("saving the re-sealed CA keys: {e}"),
        })?;
        if let KeySource::DataDir(path) = &source {
            std::fs::rename(self.data_dir.join(MASTER_KEY_NEW_FILE), path)
                .map_err(|e| format!("replacing {}: {e}", path.display()))?;
        }
        Ok((old.id().to_string(), new.id().to_string()))
    }
}

/// What `add` makes held.
pub enum NewCa {
    Generate {
        common_name: String,
        in_token: bool,
    },
    Import {
        cert_pem: String,
        key_pem: Zeroizing<String>,
    },
}

/// Points `active` at `ca_id` (compare-and-set on the pointer) and marks the CA that was
/// active as retired.
fn activation_writes(recs: &Records, ca_id: &str, now: Millis) -> Result<Vec<Write>, String> {
    let pointer = issuer_doc(
        ACTIVE_KEY,
        json(&ActivePointer {
            ca_id: ca_id.to_string(),
        })?,
    );
    let mut writes = Vec::new();
    match &recs.active {
        Some((old_id, version)) => {
            writes.push(Write::Update {
                doc: pointer,
                expected_version: *version,
            });
            if let Some((old, old_version)) = recs.record(old_id) {
                let mut retired = old.clone();
                retired.retired_at = Some(now);
                writes.push(Write::Update {
                    doc: issuer_doc(&record_key(old_id), json(&retired)?),
                    expected_version: *old_version,
                });
            }
        }
        None => writes.push(Write::Insert(pointer)),
    }
    Ok(writes)
}

fn read_key_file(path: &Path) -> Result<MasterKey, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    MasterKey::from_text(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a secret file readable by its owner only, durably (fsync) before returning.
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    write_with(opts, path, text).map(|_| ())
}

/// Like [`write_secret_file`], but only if no such file exists: `Ok(false)` when one does.
fn create_secret_file(path: &Path, text: &str) -> Result<bool, String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    write_with(opts, path, text)
}

fn write_with(mut opts: std::fs::OpenOptions, path: &Path, text: &str) -> Result<bool, String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("writing {}: {e}", path.display())),
    };
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(true)
}
