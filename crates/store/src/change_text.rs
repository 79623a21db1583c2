//! The text form of a [`Change`], shared by the engines' feeds between processes: PostgreSQL's
//! NOTIFY payloads and SQLite's feed socket.

use certplane_core::store::{Change, Kind};

/// The text of [`Change::Missed`] (never a kind name).
const MISSED: &str = "*";

/// `kind<TAB>key`; a key holding a tab or a line break (none does today) travels as "missed",
/// which makes the receiver re-read everything: never wrong, only slower.
pub(crate) fn payload(c: &Change) -> String {
    match c {
        Change::Changed { kind, key } if !key.contains(['\t', '\n']) => {
            format!("{}\t{key}", kind.as_str())
        }
        _ => MISSED.to_string(),
    }
}

pub(crate) fn parse(payload: &str) -> Option<Change> {
    if payload == MISSED {
        return Some(Change::Missed);
    }
    let (kind, key) = payload.split_once('\t')?;
    Some(Change::Changed {
        kind: Kind::parse(kind)?,
        key: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for c in [
            Change::Missed,
            Change::Changed {
                kind: Kind::CaCertificate,
                key: "1234:mqtt:post-cn-x:ab".into(),
            },
        ] {
            assert_eq!(parse(&payload(&c)), Some(c));
        }
        let odd = Change::Changed {
            kind: Kind::User,
            key: "a\nb".into(),
        };
        assert_eq!(parse(&payload(&odd)), Some(Change::Missed));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse("nokind\tkey"), None);
    }
}
