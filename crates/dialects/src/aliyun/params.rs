//! Reading RPC parameters: form-decoded query (and form body) pairs, with Alibaba's gateway
//! errors for missing and malformed values.

use percent_encoding::percent_decode_str;

use crate::wire::Request;

/// `application/x-www-form-urlencoded` decoding: `+` is a space, then percent-decoding.
pub fn form_decode(s: &str) -> Result<String, String> {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("the parameter {s:?} is not valid UTF-8"))
}

pub fn decode_pairs(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

/// Decoded `name=value` pairs in the order sent.
pub type Pairs = Vec<(String, String)>;

/// The query pairs, and the query plus a form body (what v1 signs and actions read).
pub fn read(req: &Request) -> Result<(Pairs, Pairs), String> {
    let query = decode_pairs(&req.raw_query)?;
    let mut all = query.clone();
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form && !req.body.is_empty() {
        let body =
            std::str::from_utf8(&req.body).map_err(|_| "the form body is not UTF-8".to_string())?;
        all.extend(decode_pairs(body)?);
    }
    Ok((query, all))
}

/// A parameter-level error the dialect reports with the gateway's codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    Missing(String),
    Invalid(String, String),
}

pub struct Params {
    pairs: Vec<(String, String)>,
}

/// Longest value any parameter may have (a PEM chain plus key fits easily).
pub const MAX_PARAM_CHARS: usize = 65_536;

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Params { pairs }
    }

    pub fn get(&self, name: &str) -> Result<Option<&str>, ParamError> {
        match self
            .pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
        {
            Some(v) if v.chars().count() > MAX_PARAM_CHARS => Err(ParamError::Invalid(
                name.into(),
                format!("{name} is longer than {MAX_PARAM_CHARS} characters"),
            )),
            Some("") | None => Ok(None),
            Some(v) => Ok(Some(v)),
        }
    }

    pub fn required(&self, name: &str) -> Result<&str, ParamError> {
        self.get(name)?
            .ok_or_else(|| ParamError::Missing(name.into()))
    }

    pub fn long(&self, name: &str) -> Result<Option<i64>, ParamError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ParamError::Invalid(name.into(), format!("{name} must be an integer, got {v:?}"))
            }),
        }
    }

    pub fn required_long(&self, name: &str) -> Result<i64, ParamError> {
        self.long(name)?
            .ok_or_else(|| ParamError::Missing(name.into()))
    }

    /// Booleans as the SDKs send them: `true`/`false` in any case (Python sends `True`).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ParamError> {
        match self.get(name)? {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ParamError::Invalid(
                name.into(),
                format!("{name} must be true or false, got {v:?}"),
            )),
        }
    }

    /// `Tags.N.Key` / `Tags.N.Value`, in N order.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut tags: Vec<(u32, String, String)> = Vec::new();
        for (k, v) in &self.pairs {
            let Some(rest) = k.strip_prefix("Tags.") else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            let idx = match tags.iter().position(|t| t.0 == n) {
                Some(i) => i,
                None => {
                    tags.push((n, String::new(), String::new()));
                    tags.len() - 1
                }
            };
            match field {
                "Key" => tags[idx].1 = v.clone(),
                "Value" => tags[idx].2 = v.clone(),
                _ => {}
            }
        }
        tags.sort_by_key(|t| t.0);
        tags.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}
