//! Revocation for relying parties: the CA certificate, the CRL and the OCSP responder over HTTP
//! (`/ca/{caId}.crt|.pem`, `/crl/{caId}.crl|.pem`, the delta CRL `/crl/{caId}-delta.crl|.pem`,
//! `POST /ocsp`, `GET /ocsp/{base64}`).
//!
//! An in-memory index (serial → registry id and revocation state) of the certificates the held
//! CA signed is loaded once at start and kept current from the store's change feed, so a
//! revocation costs the revoking call nothing: it never reads or writes the CRL. A task
//! rebuilds the CRL from the index shortly after changes (debounced), and before it expires;
//! the delta CRL is signed with it, from the index's changes since the delta base
//! ([`crate::crl_state`]).
//! OCSP answers read the certificate's status straight from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Body;
use certplane_core::certificates::Certificate;
use certplane_core::clock::Millis;
use certplane_core::revocation::revocation_state;
use certplane_core::store::{self, Change, Kind, Stored};
use certplane_core::{Core, DomainError};
use certplane_pki::{
    ocsp_error_response, parse_ocsp_request, CertStatus, CrlLinks, IssuingCa, OcspError,
    SingleAnswer,
};
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::{broadcast, Notify};

use crate::crl_state::{self, DeltaBase};
use crate::revocation_index::{cert_status, Index, Presigned};

/// Flags of `serve` for the CRL, OCSP and the URLs issued certificates carry.
#[derive(clap::Args, Clone, Debug)]
pub struct RevocationArgs {
    /// The base URL relying parties reach this server at; issued certificates name
    /// `{URL}/ocsp`, `{URL}/ca/{caId}.crt` and `{URL}/crl/{caId}.crl`. Default:
    /// `http://<listen address>` (https with --tls).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// List certificates that are neither ACTIVE nor REVOKED (AWS INACTIVE, OnsMqtt status
    /// "0", ...) on the CRL as certificateHold, and answer them revoked (certificateHold) over
    /// OCSP; `false` treats them as good.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub crl_hold: bool,
    /// Seconds from a CRL's thisUpdate to its nextUpdate (also an OCSP answer's nextUpdate).
    /// The CRL is re-signed when half of that has passed.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub crl_validity: i64,
    /// Seconds a delta CRL base lasts. The delta CRL (`/crl/{caId}-delta.crl`, named by the
    /// complete CRL's freshestCRL) lists the changes since the complete CRL signed when the
    /// base was taken; a new base is taken this often. 0: no delta CRLs.
    #[arg(long, default_value_t = 86400, value_name = "SECONDS")]
    pub crl_delta_base: i64,
}

impl RevocationArgs {
    /// The public base URL: `--public-url` or the listen address.
    pub fn public_url(&self, listen: std::net::SocketAddr, tls: bool) -> Result<String, String> {
        match &self.public_url {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Ok(u.trim_end_matches('/').to_string())
            }
            Some(u) => Err(format!(
                "--public-url {u:?} must start with http:// or https://"
            )),
            None => Ok(format!("{}://{listen}", if tls { "https" } else { "http" })),
        }
    }
}

/// How long after a change the CRL is rebuilt: changes within this window share one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The current CRL as served, with the delta CRL signed with it.
struct CrlCache {
    number: u64,
    this_update: Millis,
    next_update: Millis,
    der: bytes::Bytes,
    pem: bytes::Bytes,
    /// The revision of the index's entries it lists.
    revision: u64,
    /// Same number and times as the complete CRL (RFC 5280 §5.2.3: issued together, they
    /// share the number and say the same).
    delta: Option<DeltaCrl>,
}

struct DeltaCrl {
    base: DeltaBase,
    der: bytes::Bytes,
    pem: bytes::Bytes,
}

pub struct Revocation {
    core: Core,
    list_holds: bool,
    validity_ms: Millis,
    /// `--crl-delta-base` in ms; `None`: no delta CRLs.
    delta_period_ms: Option<Millis>,
    index: RwLock<Index>,
    /// The current CRL of each held CA.
    crl: Mutex<HashMap<String, Arc<CrlCache>>>,
    dirty: Notify,
}

impl Revocation {
    /// Loads the index, signs the first CRL and starts the tasks that keep both current.
    pub async fn start(
        core: &Core,
        args: &RevocationArgs,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), String> {
        if args.crl_validity < 60 {
            return Err("--crl-validity must be at least 60 seconds".into());
        }
        // A base is taken with a new complete CRL: more often than a minute would re-sign the
        // CRLs for nothing.
        if args.crl_delta_base != 0 && args.crl_delta_base < 60 {
            return Err("--crl-delta-base must be 0 (no delta CRLs) or at least 60 seconds".into());
        }
        let delta_period_ms =
            (args.crl_delta_base > 0).then(|| args.crl_delta_base.saturating_mul(1000));
        let mut index = Index::new(args.crl_hold, delta_period_ms.is_some());
        if delta_period_ms.is_some() {
            // The index keeps no older changes than the stored bases ask for, so the first
            // read of a large CA does not hold its revoked entries twice.
            for ca in core.cas.snapshot().all() {
                let base = crl_state::stored_base(core, ca.ca_id())
                    .await
                    .map_err(|e| format!("reading the delta CRL base: {e}"))?;
                if let Some(base) = base {
                    index.forget_changes_before(ca.ca_id(), base.changes_since());
                }
            }
        }
        let this = Arc::new(Revocation {
            core: core.clone(),
            list_holds: args.crl_hold,
            validity_ms: args.crl_validity.saturating_mul(1000),
            delta_period_ms,
            index: RwLock::new(index),
            crl: Mutex::new(HashMap::new()),
            dirty: Notify::new(),
        });
        // Subscribe before the first scan, so no change between the two is lost.
        let feed = core.store().changes();
        this.rescan()
            .await
            .map_err(|e| format!("loading the certificates for the CRL: {e}"))?;
        this.rebuild(true)
            .await
            .map_err(|e| format!("signing the first CRL: {e}"))?;
        let task = tokio::spawn(run(this.clone(), feed));
        Ok((this, task))
    }

    async fn rescan(&self) -> Result<(), DomainError> {
        let all = self.core.registry_list().await?;
        let cas = self.core.cas.snapshot();
        let mut fresh = match self.index.read() {
            Ok(old) => old.fresh(),
            Err(_) => Index::new(self.list_holds, self.delta_period_ms.is_some()),
        };
        for c in &all {
            fresh.put(c, &cas);
        }
        if let Ok(mut idx) = self.index.write() {
            fresh.settle(&idx);
            *idx = fresh;
        }
        Ok(())
    }

    /// Reads the changed certificates back, all in one read (a committed group of changes
    /// arrives as one burst of notices), and moves each in the index.
    async fn refresh(&self, mut keys: Vec<String>) -> Result<(), DomainError> {
        keys.sort_unstable();
        keys.dedup();
        let docs = self.core.store().get_many(Kind::Certificate, &keys).await?;
        let mut found = HashMap::with_capacity(docs.len());
        for d in docs {
            let key = d.doc.key.clone();
            found.insert(key, Stored::<Certificate>::decode(d)?.value);
        }
        let cas = self.core.cas.snapshot();
        if let Ok(mut idx) = self.index.write() {
            for key in &keys {
                match found.get(key) {
                    Some(c) => idx.put(c, &cas),
                    None => idx.remove(key),
                }
            }
        }
        Ok(())
    }

    /// The held CAs changed (an operator created, imported or activated one): place the
    /// certificates again and sign the new CAs' first CRLs.
    pub async fn cas_changed(&self) {
        if let Err(e) = self.rescan().await {
            tracing::warn!("re-reading the certificates after a CA change: {e}");
        }
        self.dirty.notify_one();
    }

    fn current(&self, ca_id: &str) -> Option<Arc<CrlCache>> {
        self.crl.lock().ok().and_then(|c| c.get(ca_id).cloned())
    }

    /// When the earliest CRL is half-way to its nextUpdate or its delta base is due (now
    /// when some CA has none).
    fn next_refresh(&self) -> Millis {
        let cas = self.core.cas.snapshot();
        let mut due = Millis::MAX;
        for ca in cas.all() {
            match self.current(ca.ca_id()) {
                Some(c) => {
                    due = due.min(c.this_update + self.validity_ms / 2);
                    if let (Some(period), Some(d)) = (self.delta_period_ms, &c.delta) {
                        due = due.min(d.base.this_update.saturating_add(period));
                    }
                }
                None => return self.core.now(),
            }
        }
        due
    }

    /// Signs a new CRL for each held CA whose entries changed or whose current CRL is half-way
    /// to its nextUpdate (`force`: always).
    async fn rebuild(&self, force: bool) -> Result<(), DomainError> {
        let cas = self.core.cas.snapshot();
        for ca in cas.all() {
            self.rebuild_one(ca, force).await?;
        }
        if let Ok(mut slot) = self.crl.lock() {
            // CAs no longer held lose their CRL.
            slot.retain(|id, _| cas.by_id(id).is_some());
        }
        Ok(())
    }

    async fn rebuild_one(&self, ca: &IssuingCa, force: bool) -> Result<(), DomainError> {
        let poisoned = || DomainError::internal("the revocation index is poisoned");
        let id = ca.ca_id();
        let now = self.core.now();
        if let Some(cur) = self.current(id) {
            // A thisUpdate in the future (the dev clock was moved back) is not fresh either.
            let fresh = cur.this_update <= now && now < cur.this_update + self.validity_ms / 2;
            let base_due = match (self.delta_period_ms, &cur.delta) {
                (Some(period), Some(d)) => d.base.due(now, period),
                (Some(_), None) => true,
                (None, _) => false,
            };
            let revision = self.index.read().map_err(|_| poisoned())?.crl_revision(id);
            if !force && fresh && !base_due && cur.revision == revision {
                return Ok(());
            }
        }
        // Whole seconds: CRL times carry no fractions, and the ETag/Last-Modified follow them.
        let this_update = now - now.rem_euclid(1000);
        let next_update = this_update + self.validity_ms;
        // The number (and the delta base) before the entries are read: the entries are then
        // at least as recent as the thisUpdate the base records.
        let numbered =
            crl_state::next_number(&self.core, id, this_update, self.delta_period_ms).await?;
        if let Some(base) = numbered.delta_base {
            let since = base.changes_since();
            let complete = self
                .index
                .write()
                .map_err(|_| poisoned())?
                .forget_changes_before(id, since);
            if !complete {
                // The base moved back (a restored store, a clock moved back): the index
                // forgot changes this delta lists, so read every certificate again.
                self.index
                    .write()
                    .map_err(|_| poisoned())?
                    .keep_all_changes(id);
                self.rescan().await?;
                self.index
                    .write()
                    .map_err(|_| poisoned())?
                    .forget_changes_before(id, since);
            }
        }
        // One read of the index for both, so the delta says what the complete CRL says.
        let (entries, revision, delta_entries) = {
            let idx = self.index.read().map_err(|_| poisoned())?;
            let (entries, revision) = idx.crl_entries(id);
            let delta = numbered
                .delta_base
                .map(|b| (b, idx.delta_entries(id, b.changes_since())));
            (entries, revision, delta)
        };
        let number = numbered.number;
        let links = CrlLinks {
            freshest_crl: delta_entries
                .as_ref()
                .and(ca.distribution())
                .map(|d| d.delta_crl_url.as_str()),
            delta_base: None,
        };
        let signed = ca
            .sign_crl_der_linked(number, this_update, next_update, links, &entries)
            .map_err(|e| DomainError::internal(format!("signing the CRL: {e}")))?;
        drop(entries);
        let delta = match delta_entries {
            Some((base, der)) => {
                let links = CrlLinks {
                    freshest_crl: None,
                    delta_base: Some(base.number),
                };
                let d = ca
                    .sign_crl_der_linked(number, this_update, next_update, links, &der)
                    .map_err(|e| DomainError::internal(format!("signing the delta CRL: {e}")))?;
                Some(DeltaCrl {
                    base,
                    der: d.der.into(),
                    pem: d.pem.into(),
                })
            }
            None => None,
        };
        let cache = Arc::new(CrlCache {
            number,
            this_update,
            next_update,
            der: signed.der.into(),
            pem: signed.pem.into(),
            revision,
            delta,
        });
        if let Ok(mut slot) = self.crl.lock() {
            slot.insert(ca.ca_id().to_string(), cache);
        }
        Ok(())
    }

    /// The response for a revocation route, or `None` when the path is not one.
    pub fn recognises(method: &Method, path: &str) -> bool {
        (method == Method::GET
            && (path.starts_with("/ca/")
                || path.starts_with("/crl/")
                || path.starts_with("/ocsp/")))
            || (method == Method::POST && (path == "/ocsp" || path == "/ocsp/"))
    }

    pub async fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> http::Response<Body> {
        if method == Method::POST {
            return self.ocsp(body).await;
        }
        if let Some(encoded) = path.strip_prefix("/ocsp/") {
            return match decode_get_request(encoded) {
                Some(der) => self.ocsp(&der).await,
                None => ocsp_failure(OcspError::MalformedRequest),
            };
        }
        let cas = self.core.cas.snapshot();
        if let Some(file) = path.strip_prefix("/ca/") {
            let Some((id, ext)) = file.rsplit_once('.') else {
                return not_found();
            };
            let Some(ca) = cas.by_id(id) else {
                return not_found();
            };
            return match ext {
                "crt" | "der" => plain(200, "application/pkix-cert", ca.cert_der().to_vec().into()),
                "pem" => plain(
                    200,
                    "application/x-pem-file",
                    ca.cert_pem().to_string().into(),
                ),
                _ => not_found(),
            };
        }
        if let Some(file) = path.strip_prefix("/crl/") {
            let Some((name, ext)) = file.rsplit_once('.') else {
                return not_found();
            };
            let pem = match ext {
                "crl" => false,
                "pem" => true,
                _ => return not_found(),
            };
            // `{caId}` is the complete CRL, `{caId}-delta` its delta (CA ids are hex, so no
            // CA id ends in `-delta`); with delta CRLs off, the delta is as unknown as a CA.
            let (id, delta) = match name.strip_suffix("-delta") {
                Some(id) if self.delta_period_ms.is_some() => (id, true),
                Some(_) => return not_found(),
                None => (name, false),
            };
            let Some(ca) = cas.by_id(id) else {
                return not_found();
            };
            // A CA held a moment ago (created or imported while the server runs) may not have
            // its first CRL from the background rebuild yet: sign it now rather than answer
            // that there is none.
            if self.current(id).is_none() {
                if let Err(e) = self.rebuild_one(ca, false).await {
                    tracing::warn!("signing the first CRL of {id}: {e}");
                }
            }
            let Some(crl) = self.current(id).filter(|c| !delta || c.delta.is_some()) else {
                return plain(503, "text/plain", "the CRL is not signed yet\n".into());
            };
            return crl_response(&crl, id, delta, pem, headers, self.core.now());
        }
        not_found()
    }

    async fn ocsp(&self, der: &[u8]) -> http::Response<Body> {
        let Ok(req) = parse_ocsp_request(der) else {
            return ocsp_failure(OcspError::MalformedRequest);
        };
        // RFC 6960 §2.3: a responder that serves none of the asked-for issuers is unauthorized.
        // One response has one signer: the CA of the first certificate a held CA issued;
        // certificates of other issuers in the same request are answered "unknown".
        let cas = self.core.cas.snapshot();
        let Some(ca) = req
            .certs
            .iter()
            .find_map(|c| cas.all().iter().find(|ca| ca.issued(c)))
        else {
            return ocsp_failure(OcspError::Unauthorized);
        };
        let now = self.core.now();
        // One certificate and no nonce (what TLS stacks and browsers send): the pre-signed
        // answer, so signing does not sit on every request. A nonce asks for a fresh one.
        let single = match req.certs.as_slice() {
            [only] if req.nonce_extension.is_none() && ca.issued(only) => Some(only),
            _ => None,
        };
        if let Some(id) = single {
            let hit = match self.index.read() {
                Ok(idx) => idx.presigned(ca.ca_id(), id, now, self.validity_ms / 2),
                Err(_) => None,
            };
            if let Some(body) = hit {
                return ocsp_ok(body);
            }
        }
        let this_update = now - now.rem_euclid(1000);
        let mut answers = Vec::with_capacity(req.certs.len());
        for c in &req.certs {
            let status = if !ca.issued(c) {
                CertStatus::Unknown
            } else {
                match self.status_of(ca.ca_id(), &c.serial).await {
                    Ok(s) => s,
                    Err(_) => return ocsp_failure(OcspError::TryLater),
                }
            };
            answers.push(SingleAnswer {
                cert_id: c,
                status,
                this_update,
                next_update: Some(this_update + self.validity_ms),
            });
        }
        let body: bytes::Bytes =
            match ca.sign_ocsp_response(&answers, req.nonce_extension.as_deref(), this_update) {
                Ok(body) => body.into(),
                Err(_) => return ocsp_failure(OcspError::InternalError),
            };
        if let (Some(id), [answer]) = (single, answers.as_slice()) {
            if let Ok(mut idx) = self.index.write() {
                idx.keep_presigned(
                    ca.ca_id(),
                    &id.serial,
                    answer.status,
                    Presigned {
                        cert_id_der: id.der.clone(),
                        this_update,
                        body: body.clone(),
                    },
                );
            }
        }
        ocsp_ok(body)
    }

    /// The status of the certificate with this serial, read from the store.
    async fn status_of(&self, ca_id: &str, serial: &[u8]) -> Result<CertStatus, DomainError> {
        let key = match self.index.read() {
            Ok(idx) => idx.lookup(ca_id, serial),
            Err(_) => None,
        };
        let Some(key) = key else {
            return Ok(CertStatus::Unknown);
        };
        let Some(cert) = store::get::<Certificate>(self.core.store(), &key).await? else {
            return Ok(CertStatus::Unknown);
        };
        let cert: Stored<Certificate> = cert;
        Ok(cert_status(revocation_state(&cert.value), self.list_holds))
    }
}

fn ocsp_ok(body: bytes::Bytes) -> http::Response<Body> {
    let mut resp = plain(200, "application/ocsp-response", body);
    // Statuses change at any moment: HTTP caches must not keep an answer.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    resp
}

/// Follows the change feed into the index and rebuilds the CRL after changes (debounced) and
/// before it expires.
async fn run(this: Arc<Revocation>, mut feed: broadcast::Receiver<Change>) {
    let changes = {
        let this = this.clone();
        tokio::spawn(async move {
            loop {
                let ok = match feed.recv().await {
                    Ok(Change::Changed {
                        kind: Kind::Certificate,
                        key,
                    }) => match waiting_certificates(&mut feed, key) {
                        Some(keys) => this.refresh(keys).await.is_ok(),
                        None => this.rescan().await.is_ok(),
                    },
                    Ok(Change::Changed { .. }) => continue,
                    Ok(Change::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        this.rescan().await.is_ok()
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if !ok {
                    // The store is unreachable: re-read everything once it answers again.
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if this.rescan().await.is_ok() {
                            break;
                        }
                    }
                }
                this.dirty.notify_one();
            }
        })
    };
    let _abort_on_drop = AbortOnDrop(changes);
    loop {
        let due = this.next_refresh();
        let refresh_in =
            Duration::from_millis(u64::try_from(due.saturating_sub(this.core.now())).unwrap_or(0));
        tokio::select! {
            _ = this.dirty.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(refresh_in) => {}
        }
        if let Err(e) = this.rebuild(false).await {
            tracing::warn!("rebuilding the CRL: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Certificates read back in one go at most.
const REFRESH_BATCH: usize = 256;

/// `first` and the certificate changes already waiting behind it on the feed, or `None` when
/// the feed says changes were missed (then everything is read again).
fn waiting_certificates(
    feed: &mut broadcast::Receiver<Change>,
    first: String,
) -> Option<Vec<String>> {
    use broadcast::error::TryRecvError;
    let mut keys = vec![first];
    while keys.len() < REFRESH_BATCH {
        match feed.try_recv() {
            Ok(Change::Changed {
                kind: Kind::Certificate,
                key,
            }) => keys.push(key),
            Ok(Change::Changed { .. }) => {}
            Ok(Change::Missed) | Err(TryRecvError::Lagged(_)) => return None,
            // Closed: the next `recv` says so.
            Err(TryRecvError::Empty | TryRecvError::Closed) => break,
        }
    }
    Some(keys)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET /ocsp/{base64 of the DER request}` (RFC 6960 appendix A.1): URL-encoded base64,
/// standard or URL-safe alphabet.
fn decode_get_request(encoded: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .ok()?;
    let text = text.trim();
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(text).ok())
}

fn plain(status: u16, content_type: &str, body: bytes::Bytes) -> http::Response<Body> {
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

fn not_found() -> http::Response<Body> {
    plain(404, "text/plain", "no such CA, CRL or file\n".into())
}

/// An unsuccessful OCSPResponse: HTTP 200, as RFC 6960 has it, whatever the OCSP status.
fn ocsp_failure(status: OcspError) -> http::Response<Body> {
    plain(
        200,
        "application/ocsp-response",
        ocsp_error_response(status).into(),
    )
}

/// The complete CRL, or its delta (`delta`), DER or PEM, with the cache headers.
fn crl_response(
    crl: &CrlCache,
    ca_id: &str,
    delta: bool,
    pem: bool,
    req: &HeaderMap,
    now: Millis,
) -> http::Response<Body> {
    let (der_body, pem_body) = match (&crl.delta, delta) {
        (Some(d), true) => (&d.der, &d.pem),
        _ => (&crl.der, &crl.pem),
    };
    let etag = format!(
        "\"{ca_id}-{}{}{}\"",
        crl.number,
        if delta { "-delta" } else { "" },
        if pem { "-pem" } else { "" }
    );
    let not_modified = req
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut resp = if not_modified {
        plain(304, "", bytes::Bytes::new())
    } else if pem {
        plain(200, "application/x-pem-file", pem_body.clone())
    } else {
        plain(200, "application/pkix-crl", der_body.clone())
    };
    let h = resp.headers_mut();
    if not_modified {
        h.remove(http::header::CONTENT_TYPE);
    }
    let max_age = (crl.next_update - now).max(0) / 1000;
    let pairs = [
        (http::header::ETAG, etag),
        (http::header::LAST_MODIFIED, http_date(crl.this_update)),
        (http::header::EXPIRES, http_date(crl.next_update)),
        (
            http::header::CACHE_CONTROL,
            format!("public, max-age={max_age}, no-transform"),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// An HTTP date (RFC 9110 IMF-fixdate).
fn http_date(ms: Millis) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) else {
        return String::new();
    };
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[usize::from(t.weekday().number_days_from_monday())],
        t.day(),
        MONTHS[usize::from(u8::from(t.month()) - 1)],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(
            http_date(1_700_000_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
    }

    #[test]
    fn get_requests_decode_in_either_alphabet() {
        assert_eq!(
            decode_get_request("MAMKAQE%3D"),
            Some(vec![0x30, 3, 10, 1, 1])
        );
        assert_eq!(decode_get_request("MAMKAQE"), Some(vec![0x30, 3, 10, 1, 1]));
        assert_eq!(decode_get_request("%%%"), None);
    }
}
