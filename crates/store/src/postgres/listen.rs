//! The PostgreSQL change feed: writers `pg_notify` inside their transaction, and each node keeps
//! one dedicated connection in `LISTEN certplane_changes` that turns notifications into
//! [`Change`]s. When that connection drops, notifications sent meanwhile are lost for good, so
//! each time LISTEN takes effect (the first time too) the feed says [`Change::Missed`] and
//! subscribers re-read what they cache.

use std::time::Duration;

use std::sync::Arc;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

use certplane_core::store::Change;

use crate::change_text::parse;
use crate::feed::Feed;

const CHANNEL: &str = "certplane_changes";
pub(super) const NOTIFY_SQL: &str = "SELECT pg_notify('certplane_changes', $1)";
/// How often the LISTEN connection is checked with a query: a connection that died without a
/// FIN (a network partition) is noticed within this plus the statement timeout.
const PING_EVERY: Duration = Duration::from_secs(10);
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Listens for as long as anyone may subscribe (the store lives as long as the process).
pub(super) async fn run(config: tokio_postgres::Config, feed: Arc<Feed>) {
    loop {
        let ended = listen_once(&config, &feed).await;
        // Changes made while no LISTEN connection is up are never seen: nothing may be
        // cached on this node's generations until it is back.
        feed.set_complete(false);
        match ended {
            Ok(()) => tracing::warn!("postgres: the LISTEN connection closed; reconnecting"),
            Err(e) => tracing::warn!(error = %e, "postgres: the LISTEN connection failed"),
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// One LISTEN session, until its connection fails. `Ok` when the server closed it.
async fn listen_once(config: &tokio_postgres::Config, feed: &Arc<Feed>) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let forward = feed.clone();
    // The connection must be polled for the client to work; notifications come out of it.
    let mut driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    match parse(n.payload()) {
                        Some(c) => forward.publish_heard(c),
                        None => tracing::warn!(payload = n.payload(), "postgres: odd notice"),
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(format!("the connection failed: {e}")),
            }
        }
        Ok(())
    });
    let listening = tokio::time::timeout(
        super::DB_TIMEOUT,
        client.batch_execute(&format!("LISTEN {CHANNEL}")),
    )
    .await;
    match listening {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            driver.abort();
            return Err(format!("LISTEN: {e}"));
        }
        Err(_) => {
            driver.abort();
            return Err("LISTEN timed out".into());
        }
    }
    // Anything committed before LISTEN took effect (the first start, or while the previous
    // connection was down) is unknown to this node: subscribers re-read what they cached.
    feed.publish_heard(Change::Missed);
    feed.set_complete(true);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            ended = &mut driver => {
                return match ended {
                    Ok(r) => r,
                    Err(e) => Err(format!("the connection task stopped: {e}")),
                };
            }
            _ = ping.tick() => {
                let alive = tokio::time::timeout(super::DB_TIMEOUT, client.batch_execute("SELECT 1")).await;
                if !matches!(alive, Ok(Ok(()))) {
                    driver.abort();
                    return Err("the LISTEN connection stopped answering".into());
                }
            }
        }
    }
}
