//! The CRL state each held CA keeps in the store (Kind::CrlState, one record per CA, shared by
//! every node of a database and kept across restarts): the last CRL number taken, and the base
//! of the delta CRLs. Complete and delta CRLs share the one number sequence (RFC 5280 §5.2.3);
//! a complete CRL and the delta signed with it take one number together.
//!
//! The delta base rolls in the same compare-and-set that takes a number, so every node agrees on
//! it: the first number taken once the base is `--crl-delta-base` seconds old becomes the new
//! base, and its complete CRL (signed with that number, like every complete CRL) is the base CRL.

use certplane_core::clock::Millis;
use certplane_core::store::{Doc, Kind, Write};
use certplane_core::{Core, DomainError};
use serde::{Deserialize, Serialize};

/// A delta CRL lists the changes from this long before its base CRL's thisUpdate on: a change
/// is stamped before its write commits and reaches each node's index through the change feed
/// a moment later, so the base CRL may not list a change stamped shortly before it. Listing a
/// change the base already has again is harmless (a delta entry states the current state).
pub const DELTA_SLACK_MS: Millis = 300_000;

/// The base of the current delta CRLs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaBase {
    /// BaseCRLNumber: the number of the complete CRL signed when this base was taken.
    pub number: u64,
    /// That CRL's thisUpdate: the deltas list the changes from then on (less
    /// [`DELTA_SLACK_MS`]).
    pub this_update: Millis,
}

impl DeltaBase {
    /// The earliest change a delta on this base lists.
    pub fn changes_since(&self) -> Millis {
        self.this_update.saturating_sub(DELTA_SLACK_MS)
    }

    /// Whether the next CRL at `now` takes a new base: this one is `period_ms` old, or from
    /// the future (the clock was moved back).
    pub fn due(&self, now: Millis, period_ms: Millis) -> bool {
        now >= self.this_update.saturating_add(period_ms) || now < self.this_update
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct CrlState {
    number: u64,
    /// Absent in records written before delta CRLs, and until deltas are first turned on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delta_base: Option<DeltaBase>,
}

/// A CRL number taken, with the base of the delta signed with it (`None`: no delta CRLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered {
    pub number: u64,
    pub delta_base: Option<DeltaBase>,
}

/// The state after taking the next number for a CRL with this thisUpdate. `period_ms`: the
/// delta base period, `None` when this node signs no deltas (the stored base is left as it
/// is, for the nodes that do).
fn advance(cur: Option<&CrlState>, this_update: Millis, period_ms: Option<Millis>) -> CrlState {
    let number = cur.map_or(1, |c| c.number.saturating_add(1));
    let stored = cur.and_then(|c| c.delta_base);
    let delta_base = match (period_ms, stored) {
        (None, stored) => stored,
        (Some(period), Some(base)) if !base.due(this_update, period) => Some(base),
        (Some(_), _) => Some(DeltaBase {
            number,
            this_update,
        }),
    };
    CrlState { number, delta_base }
}

/// Takes the next CRL number of `ca_id` from the store (compare-and-set, retried), rolling
/// the delta base when it is due.
pub async fn next_number(
    core: &Core,
    ca_id: &str,
    this_update: Millis,
    period_ms: Option<Millis>,
) -> Result<Numbered, DomainError> {
    let key = ca_id.to_string();
    core.with_retry(|| {
        let key = key.clone();
        async move {
            let cur = core.store().get(Kind::CrlState, &key).await?;
            let (next, write) = match cur {
                Some(d) => {
                    let state: CrlState = serde_json::from_str(&d.doc.body)
                        .map_err(|e| DomainError::internal(format!("CRL state: {e}")))?;
                    let next = advance(Some(&state), this_update, period_ms);
                    let write = Write::Update {
                        doc: state_doc(&key, &next)?,
                        expected_version: d.version,
                    };
                    (next, write)
                }
                None => {
                    let next = advance(None, this_update, period_ms);
                    let write = Write::Insert(state_doc(&key, &next)?);
                    (next, write)
                }
            };
            match core.store().apply(vec![write]).await {
                // Another node inserted the first number meanwhile: re-read.
                Err(DomainError::AlreadyExists { .. }) => Err(DomainError::Stale),
                Err(e) => Err(e),
                Ok(()) => Ok(Numbered {
                    number: next.number,
                    delta_base: period_ms.and(next.delta_base),
                }),
            }
        }
    })
    .await
}

/// The stored delta base of `ca_id`, if any (read at start, so the index keeps no older
/// changes than the deltas will ask for).
pub async fn stored_base(core: &Core, ca_id: &str) -> Result<Option<DeltaBase>, DomainError> {
    let Some(d) = core.store().get(Kind::CrlState, ca_id).await? else {
        return Ok(None);
    };
    let state: CrlState = serde_json::from_str(&d.doc.body)
        .map_err(|e| DomainError::internal(format!("CRL state: {e}")))?;
    Ok(state.delta_base)
}

fn state_doc(key: &str, state: &CrlState) -> Result<Doc, DomainError> {
    Ok(Doc {
        kind: Kind::CrlState,
        key: key.to_string(),
        account: String::new(),
        region: String::new(),
        idx1: None,
        idx2: None,
        body: serde_json::to_string(state)
            .map_err(|e| DomainError::internal(format!("CRL state: {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    #[test]
    fn the_base_rolls_once_per_period_on_the_shared_sequence() {
        let first = advance(None, 1_000, Some(DAY));
        assert_eq!(first.number, 1);
        let base = DeltaBase {
            number: 1,
            this_update: 1_000,
        };
        assert_eq!(first.delta_base, Some(base));
        // Within the period: same base, next number.
        let second = advance(Some(&first), 1_000 + DAY - 1, Some(DAY));
        assert_eq!((second.number, second.delta_base), (2, Some(base)));
        // Due: the number taken now is the new base.
        let third = advance(Some(&second), 1_000 + DAY, Some(DAY));
        assert_eq!(third.number, 3);
        assert_eq!(
            third.delta_base,
            Some(DeltaBase {
                number: 3,
                this_update: 1_000 + DAY
            })
        );
        // The clock moved back before the base: a new base.
        let back = advance(Some(&third), 500, Some(DAY));
        assert_eq!(back.delta_base.map(|b| b.number), Some(4));
    }

    #[test]
    fn a_node_without_deltas_keeps_the_stored_base() {
        let first = advance(None, 1_000, Some(DAY));
        let off = advance(Some(&first), 2 * DAY, None);
        assert_eq!(off.number, 2);
        assert_eq!(off.delta_base, first.delta_base);
    }

    #[test]
    fn records_before_deltas_still_read() -> Result<(), serde_json::Error> {
        let old: CrlState = serde_json::from_str(r#"{"number":41}"#)?;
        assert_eq!(
            old,
            CrlState {
                number: 41,
                delta_base: None
            }
        );
        let next = advance(Some(&old), 5_000, Some(DAY));
        assert_eq!(next.number, 42);
        assert_eq!(next.delta_base.map(|b| b.number), Some(42));
        assert_eq!(
            serde_json::to_string(&advance(Some(&old), 5_000, None))?,
            r#"{"number":42}"#
        );
        Ok(())
    }

    #[test]
    fn deltas_list_changes_from_a_margin_before_the_base() {
        let base = DeltaBase {
            number: 7,
            this_update: 1_000_000,
        };
        assert_eq!(base.changes_since(), 1_000_000 - DELTA_SLACK_MS);
        assert!(!base.due(1_000_000 + DAY - 1, DAY));
        assert!(base.due(1_000_000 + DAY, DAY));
    }
}
