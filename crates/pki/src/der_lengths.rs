//! A walk over untrusted DER that checks every tag-length-value fits inside its parent before
//! the ASN.1 reader sees it. yasna 0.6 adds a declared length to its position without checking
//! for overflow, so a length near `usize::MAX` panics (or, without overflow checks, wraps);
//! the fuzzer found it in the OCSP request decoder. Bounded lengths make that impossible.

/// Nesting deeper than this is refused (no real OCSP request comes close; it bounds recursion).
const MAX_DEPTH: usize = 32;

/// Whether `der` is a sequence of well-formed DER TLVs, constructed ones checked recursively.
pub fn well_formed(der: &[u8]) -> bool {
    walk(der, 0)
}

fn walk(mut buf: &[u8], depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    while !buf.is_empty() {
        let Some((constructed, content, rest)) = tlv(buf) else {
            return false;
        };
        if constructed && !walk(content, depth + 1) {
            return false;
        }
        buf = rest;
    }
    true
}

/// One TLV: (constructed?, contents, what follows), or None when it does not fit.
fn tlv(buf: &[u8]) -> Option<(bool, &[u8], &[u8])> {
    let (&first, mut rest) = buf.split_first()?;
    if first & 0x1f == 0x1f {
        // High tag number: base-128 bytes, the last without bit 8; at most 4 of them.
        let mut n = 0;
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
            if n >= 4 {
                return None;
            }
        }
    }
    let (&len0, r) = rest.split_first()?;
    rest = r;
    let len = match len0 {
        0x00..=0x7f => usize::from(len0),
        // 0x80 is BER's indefinite length, not DER; more than 4 length bytes is never sane here.
        0x81..=0x84 => {
            let n = usize::from(len0 & 0x7f);
            if rest.len() < n {
                return None;
            }
            let (bytes, r) = rest.split_at(n);
            rest = r;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        }
        _ => return None,
    };
    if len > rest.len() {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((first & 0x20 != 0, content, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nested_der_and_refuses_lengths_past_the_end() {
        // SEQUENCE { INTEGER 5, SEQUENCE { OCTET STRING "ab" } }
        let ok = [
            0x30, 0x09, 0x02, 0x01, 0x05, 0x30, 0x04, 0x04, 0x02, b'a', b'b',
        ];
        assert!(well_formed(&ok));
        let mut short = ok;
        short[6] = 0x05; // the inner sequence claims one byte more than its parent holds
        assert!(!well_formed(&short));
        // A length of 2^32 - 1 inside a small buffer, as the fuzzer's input had.
        assert!(!well_formed(&[
            0x30, 0x06, 0xa1, 0x84, 0xff, 0xff, 0xff, 0xff
        ]));
        assert!(!well_formed(&[0x30, 0x80, 0x00, 0x00])); // indefinite length
        assert!(!well_formed(&[0x30])); // no length at all
    }

    #[test]
    fn refuses_absurd_nesting() {
        let nest = |depth: usize| {
            let mut der = vec![0x05, 0x00];
            for _ in 0..depth {
                let len = der.len();
                let mut outer = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
                outer.extend_from_slice(&der);
                der = outer;
            }
            der
        };
        assert!(well_formed(&nest(MAX_DEPTH)));
        assert!(!well_formed(&nest(MAX_DEPTH + 2)));
    }

    #[test]
    fn the_fuzzers_ocsp_finding_is_malformed_not_a_panic() {
        let input =
            include_bytes!("../../../fuzz/corpus/ocsp_request/regression-yasna-length-overflow");
        assert!(!well_formed(input));
        assert!(crate::parse_ocsp_request(input).is_err());
    }
}
