//! The SQLite change feed between processes. Several processes open one data dir: the server,
//! and the admin commands run while it serves (`admin access-key disable`, `admin policy
//! attach` …). The first process that subscribes to the feed — the server — becomes the data
//! dir's hub: it listens on a Unix socket beside the database. Every other process, after each
//! commit that changed a watched document, tells the hub what changed and waits (up to a
//! second) for its acknowledgement before answering its own caller. So by the time an admin
//! command returns, the server has counted and announced its change, and anything the server
//! caches on the feed is current.
//!
//! A message only makes the hub re-read (it names a document, never its content), so a process
//! that can reach the socket can at worst make the server do extra reads.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use certplane_core::store::Change;

use crate::change_text::{parse, payload};
use crate::feed::Feed;

/// How long a committing process waits for the hub's acknowledgement.
const ACK_WITHIN: Duration = Duration::from_secs(1);
/// A message larger than this is not from a certplane process.
const MAX_MESSAGE: usize = 1 << 20;
/// `sun_path` holds 108 bytes with its terminator; longer paths have no socket (and then the
/// hub is never complete, so nothing is cached on its feed).
const MAX_SOCKET_PATH: usize = 100;

/// The hub's socket for the database at `db`, if its path fits.
pub(super) fn socket_path(db: &Path) -> Option<PathBuf> {
    let mut name = db.as_os_str().to_owned();
    name.push(".feed");
    let path = PathBuf::from(name);
    (path.as_os_str().len() <= MAX_SOCKET_PATH).then_some(path)
}

/// Becomes the hub: listens at `path` (taking over a socket file left by a process that is
/// gone) and publishes what other processes report. Fails when another live process is the
/// hub already.
pub(super) fn serve(path: &Path, feed: Arc<Feed>) -> io::Result<()> {
    let listener = match std::os::unix::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another certplane process serves this data dir's change feed",
                ));
            }
            std::fs::remove_file(path)?;
            std::os::unix::net::UnixListener::bind(path)?
        }
        Err(e) => return Err(e),
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(receive(stream, feed.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sqlite: the feed socket failed to accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

/// One reporting process: length-prefixed messages of change lines, each acknowledged with one
/// byte once published.
async fn receive(mut stream: tokio::net::UnixStream, feed: Arc<Feed>) {
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_MESSAGE {
            return;
        }
        let mut text = vec![0u8; len];
        if stream.read_exact(&mut text).await.is_err() {
            return;
        }
        let text = String::from_utf8_lossy(&text);
        for line in text.split('\n') {
            // What cannot be read is treated as "something changed".
            feed.publish(parse(line).unwrap_or(Change::Missed));
        }
        if stream.write_all(&[1]).await.is_err() {
            return;
        }
    }
}

/// The committing side, used by the writer thread of a process that is not the hub.
pub(super) struct Reporter {
    path: Option<PathBuf>,
    connection: Option<UnixStream>,
}

impl Reporter {
    pub(super) fn new(path: Option<PathBuf>) -> Reporter {
        Reporter {
            path,
            connection: None,
        }
    }

    /// Tells the hub, if one runs, about `changes`; returns once it acknowledged.
    pub(super) fn report(&mut self, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let Some(path) = &self.path else { return };
        let mut text = changes.iter().map(payload).collect::<Vec<_>>().join("\n");
        if text.len() > MAX_MESSAGE {
            text = payload(&Change::Missed);
        }
        // A kept connection may be to a hub that has since restarted: one more try.
        for attempt in 0..2 {
            if self.connection.is_none() {
                match UnixStream::connect(path) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(ACK_WITHIN));
                        let _ = s.set_write_timeout(Some(ACK_WITHIN));
                        self.connection = Some(s);
                    }
                    // No hub: no server runs on this data dir, nobody caches.
                    Err(_) => return,
                }
            }
            let Some(s) = self.connection.as_mut() else {
                return;
            };
            match send(s, text.as_bytes()) {
                Ok(()) => return,
                Err(e) => {
                    self.connection = None;
                    if attempt == 1 {
                        tracing::warn!(error = %e, "sqlite: the server did not acknowledge a change");
                    }
                }
            }
        }
    }
}

fn send(s: &mut UnixStream, text: &[u8]) -> io::Result<()> {
    let len = u32::try_from(text.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    s.write_all(&len.to_le_bytes())?;
    s.write_all(text)?;
    let mut ack = [0u8; 1];
    s.read_exact(&mut ack)
}
