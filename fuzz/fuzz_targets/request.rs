//! A `wire::Request` from fuzz bytes: NUL-separated method, path, query, header lines
//! (`name: value`, newline-separated) and body. Shared by the request-shaped targets.

use certplane_dialects::wire::Request;

pub fn from_bytes(data: &[u8]) -> Option<Request> {
    let mut parts = data.splitn(5, |b| *b == 0);
    let method = std::str::from_utf8(parts.next()?).ok()?;
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let header_lines = parts.next().unwrap_or_default();
    let body = bytes::Bytes::copy_from_slice(parts.next().unwrap_or_default());
    let mut headers = http::HeaderMap::new();
    for line in header_lines.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some(Request {
        method: http::Method::from_bytes(method.as_bytes()).ok()?,
        raw_path: path,
        raw_query: query,
        headers,
        body,
        source_ip: None,
    })
}
