//! Following the store's change feed: each change to a certificate, a CA certificate or an
//! MQTT instance is read back (one read per change, never a scan), applied to the index, and
//! the live sessions it concerns are decided again; those no longer admitted are closed.

use std::sync::Arc;

use certplane_core::ca_certificates::CaCertificate;
use certplane_core::certificates::{certificate_id_of_key, Certificate};
use certplane_core::error::DomainResult;
use certplane_core::mqtt_instances::MqttInstance;
use certplane_core::store::{self, Change, Kind};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;

use crate::admission::{decide, Verdict};
use crate::index::{feed_generation, Lookup};
use crate::sessions::Session;
use crate::Shared;

/// Runs until the store's feed closes (the store went away).
pub(crate) async fn follow(shared: Arc<Shared>, mut rx: Receiver<Change>) {
    loop {
        let mut change = match next(rx.recv().await) {
            Some(c) => c,
            None => return,
        };
        // Every change the store has counted by now was sent on the feed before it was
        // counted, so once the events waiting now are applied, the index is current up to
        // this generation.
        let seen = feed_generation(shared.core.store());
        loop {
            if let Err(e) = apply(&shared, &change).await {
                // The state after the change is unknown: forget what is cached, so handshakes
                // read the registry, and decide the live sessions again from it.
                tracing::warn!(error = %e, ?change, "gateway: cannot read a changed document");
                missed(&shared);
            }
            change = match rx.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(n)) => lagged(n),
                Err(TryRecvError::Closed) => return,
            };
        }
        shared.index.caught_up(seen);
    }
}

fn lagged(n: u64) -> Change {
    tracing::warn!(
        missed = n,
        "gateway: fell behind the change feed; re-reading"
    );
    Change::Missed
}

/// The next change; `None` once the feed is closed (the store went away).
fn next(r: Result<Change, RecvError>) -> Option<Change> {
    match r {
        Ok(c) => Some(c),
        Err(RecvError::Lagged(n)) => Some(lagged(n)),
        Err(RecvError::Closed) => None,
    }
}

async fn apply(shared: &Arc<Shared>, change: &Change) -> DomainResult<()> {
    let (kind, key) = match change {
        Change::Missed => {
            missed(shared);
            return Ok(());
        }
        Change::Changed { kind, key } => (*kind, key.as_str()),
    };
    let store = shared.core.store();
    match kind {
        Kind::Certificate => {
            let now = store::get::<Certificate>(store, key)
                .await?
                .map(|s| s.value);
            shared.index.set_certificate(key, now.as_ref());
            // Sessions are filed by certificate id; the key of another scope's registration of
            // a shared certificate carries the id first.
            let cert_id = certificate_id_of_key(key);
            let sessions = shared.sessions.of_certificate(cert_id);
            if now.is_none() && cert_id == key {
                // The first registration deleted (no other exists, or the oldest other one
                // would have replaced it): its sessions end (a reconnect is a new first sight).
                close(&sessions);
            } else {
                recheck(shared, sessions);
            }
        }
        Kind::CaCertificate => {
            let now = store::get::<CaCertificate>(store, key)
                .await?
                .map(|s| s.value);
            shared.index.set_ca(key, now.as_ref());
            let sessions = shared.sessions.of_ca(key);
            if now.is_none() {
                close(&sessions);
            } else {
                recheck(shared, sessions);
            }
        }
        Kind::MqttInstance => {
            let now = store::get::<MqttInstance>(store, key)
                .await?
                .map(|s| s.value);
            shared.index.set_instance(key, now.as_ref());
        }
        _ => {}
    }
    Ok(())
}

fn close(sessions: &[Session]) {
    for s in sessions {
        s.kill.notify_one();
    }
}

/// Decides `sessions` again from the index (updated just before); those it cannot decide are
/// decided by the registry in the background, so the feed keeps flowing.
fn recheck(shared: &Arc<Shared>, sessions: Vec<Session>) {
    let now = shared.core.now();
    let mut unknown = Vec::new();
    for s in sessions {
        match shared.index.lookup(&s.tenant.scope(), &s.cert_id, now) {
            Lookup::Admit { .. } => {}
            Lookup::Refuse(r) => {
                tracing::info!(certificate = %s.cert_id, reason = %r, "gateway: closing a session");
                s.kill.notify_one();
            }
            Lookup::Unknown => unknown.push(s),
        }
    }
    if !unknown.is_empty() {
        tokio::spawn(decide_again(shared.clone(), unknown));
    }
}

async fn decide_again(shared: Arc<Shared>, sessions: Vec<Session>) {
    for s in sessions {
        match decide(&shared.core, &shared.index, &s.tenant, &s.cert_id, &s.der).await {
            Ok(Verdict::Admit { .. }) => {}
            Ok(Verdict::Refuse(r)) => {
                tracing::info!(certificate = %s.cert_id, reason = %r, "gateway: closing a session");
                s.kill.notify_one();
            }
            // The registry is unreachable: keep the session rather than drop every device
            // when the database blinks; the next feed event decides it again.
            Err(e) => tracing::warn!(error = %e, "gateway: cannot decide a live session again"),
        }
    }
}

fn missed(shared: &Arc<Shared>) {
    shared.index.flush();
    let all = shared.sessions.all();
    if !all.is_empty() {
        tokio::spawn(decide_again(shared.clone(), all));
    }
}
