//! Opaque, URL-safe-enough page tokens that always advance. A token is the base64 of
//! `v1:<kind>:<seq>`, so it matches AWS's Marker pattern `[A-Za-z0-9+/]+={0,2}` and a token from
//! one list cannot silently page another.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::DomainError;
use crate::store::PageQuery;

pub fn encode_token(list: &str, seq: i64) -> String {
    STANDARD.encode(format!("v1:{list}:{seq}"))
}

pub fn decode_token(list: &str, token: &str) -> Result<i64, DomainError> {
    let bad = || DomainError::invalid(format!("the pagination token {token:?} is not valid"));
    if token.len() > 1024 {
        return Err(bad());
    }
    let raw = STANDARD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let rest = text
        .strip_prefix("v1:")
        .and_then(|r| r.strip_prefix(list))
        .and_then(|r| r.strip_prefix(':'))
        .ok_or_else(bad)?;
    rest.parse().map_err(|_| bad())
}

/// A parsed page request plus the list name its tokens carry.
#[derive(Debug, Clone)]
pub struct Page {
    pub list: &'static str,
    pub query: PageQuery,
    pub size: usize,
}

impl Page {
    /// `size` is the client's page size (already range-checked by the dialect).
    pub fn new(
        list: &'static str,
        token: Option<&str>,
        size: usize,
        ascending: bool,
    ) -> Result<Self, DomainError> {
        let after_seq = match token {
            Some(t) if !t.is_empty() => Some(decode_token(list, t)?),
            _ => None,
        };
        Ok(Page {
            list,
            size,
            // One extra row tells whether another page exists.
            query: PageQuery {
                after_seq,
                limit: size.saturating_add(1),
                ascending,
            },
        })
    }

    /// Cuts the fetched rows to the page and makes the next token when more remain.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        seq_of: impl Fn(&T) -> i64,
    ) -> (Vec<T>, Option<String>) {
        if rows.len() > self.size {
            rows.truncate(self.size);
            let next = rows.last().map(|r| encode_token(self.list, seq_of(r)));
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_match_the_marker_pattern() {
        for seq in [0, 1, 42, 1_000_000_007, i64::MAX] {
            let t = encode_token("certificates", seq);
            assert!(t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='));
            assert_eq!(decode_token("certificates", &t), Ok(seq));
            assert!(decode_token("policies", &t).is_err());
        }
        assert!(decode_token("certificates", "!!").is_err());
        assert!(decode_token("certificates", "abc=").is_err());
    }
}
