//! The one clock every time rule reads. Times are milliseconds since the Unix epoch (UTC).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub type Millis = i64;

pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

fn system_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Real time, optionally moved forward by an offset (the `--dev` settable clock). The offset only
/// ever grows, so "now" never runs backwards for a running server.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves "now" forward; returns the new now.
    pub fn advance(&self, seconds: i64) -> Millis {
        self.offset_ms
            .fetch_add(seconds.saturating_mul(1000), Ordering::SeqCst);
        self.now()
    }
    pub fn reset(&self) {
        self.offset_ms.store(0, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Millis {
        system_millis().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// A fixed clock for unit tests of time rules.
#[derive(Debug)]
pub struct FixedClock(pub AtomicI64);

impl FixedClock {
    pub fn at(ms: Millis) -> Self {
        FixedClock(AtomicI64::new(ms))
    }
    pub fn set(&self, ms: Millis) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 with millisecond precision, e.g. `2026-11-24T18:00:00.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}
