//! A minimal HTTP/1.1 keep-alive client over a tokio `TcpStream`.
//!
//! Every request carries what botocore sends for `iot` (spec §6–7): `X-Amz-Date` and a
//! well-formed SigV4 `Authorization` header whose access key id is the account and whose
//! signature is 64 zeros (certplane `--dev` and moto do not check signatures). With
//! `account_header`, `x-moto-account-id: <account>` is added too (moto's account selector).
//!
//! Responses are read with Content-Length, chunked encoding or read-to-close; a connection the
//! server closes (`Connection: close`, HTTP/1.0) is reopened for the next request, and a request
//! that fails on a reused connection before any response byte arrived is retried once on a
//! fresh connection (the server may have closed the idle connection).

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where to connect and what to put in `Host`.
#[derive(Debug, Clone)]
pub struct Target {
    pub connect: String,
    pub host: String,
}

impl Target {
    /// Parse `http://host[:port][/...]`.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--target must be an http:// URL, got {url:?}"))?;
        let host = rest.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() {
            return Err(format!("--target has no host: {url:?}"));
        }
        let has_port = if host.starts_with('[') {
            host.contains("]:")
        } else {
            host.contains(':')
        };
        let connect = if has_port {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Target {
            connect,
            host: host.to_string(),
        })
    }
}

/// One HTTP response, fully read.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn is_json(&self) -> bool {
        self.content_type.to_ascii_lowercase().contains("json")
    }

    /// The body as text, cut to `max` characters, for error messages.
    pub fn body_snippet(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > max {
            let cut: String = text.chars().take(max).collect();
            format!("{cut}…")
        } else {
            text.to_string()
        }
    }
}

/// Why an exchange failed: before any response byte (safe to retry on a fresh connection) or
/// later.
enum Failure {
    BeforeResponse(String),
    Fatal(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::BeforeResponse(m) | Failure::Fatal(m) => m,
        }
    }
}

/// `X-Amz-Date` and the credential-scope date, recomputed when the second changes.
struct DateCache {
    second: u64,
    amz_date: String,
    /// `yyyy-MM-ddTHH:mm:ssZ` for Alibaba's x-acs-date.
    acs_date: String,
    day: String,
}

impl DateCache {
    fn new() -> DateCache {
        let mut d = DateCache {
            second: u64::MAX,
            amz_date: String::new(),
            acs_date: String::new(),
            day: String::new(),
        };
        d.refresh();
        d
    }

    fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now == self.second {
            return;
        }
        self.second = now;
        let days = (now / 86_400) as i64;
        let secs_of_day = now % 86_400;
        let (y, m, d) = civil_from_days(days);
        self.day = format!("{y:04}{m:02}{d:02}");
        self.amz_date = format!(
            "{}T{:02}{:02}{:02}Z",
            self.day,
            secs_of_day / 3600,
            (secs_of_day / 60) % 60,
            secs_of_day % 60
        );
        self.acs_date = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs_of_day / 3600,
            (secs_of_day / 60) % 60,
            secs_of_day % 60
        );
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One keep-alive connection (opened lazily, reopened when the server closes it).
pub struct Conn {
    target: Target,
    account_header: bool,
    stream: Option<BufReader<TcpStream>>,
    request: Vec<u8>,
    line: Vec<u8>,
    date: DateCache,
    nonce: u64,
}

const ZERO_SIGNATURE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Conn {
    pub fn new(target: Target, account_header: bool) -> Conn {
        Conn {
            target,
            account_header,
            stream: None,
            request: Vec::with_capacity(1024),
            line: Vec::with_capacity(256),
            date: DateCache::new(),
            nonce: 0,
        }
    }

    /// Send one request and read the whole response. `json_body` adds
    /// `Content-Type: application/json`; a non-GET request without a body sends
    /// `Content-Length: 0` (as botocore does).
    pub async fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        account: &str,
        json_body: Option<&[u8]>,
    ) -> Result<Response, String> {
        self.build(method, path_and_query, account, json_body);
        self.send_built().await
    }

    /// An Alibaba Cloud RPC call (v3 headers with a well-formed, unchecked signature: for
    /// certplane `--dev`). `query` is already form-encoded.
    pub async fn rpc(
        &mut self,
        action: &str,
        version: &str,
        uid: &str,
        query: &str,
    ) -> Result<Response, String> {
        self.date.refresh();
        self.nonce = self.nonce.wrapping_add(1);
        let nonce = format!("{:016x}{:016x}", self.nonce, std::process::id());
        let r = &mut self.request;
        r.clear();
        let mut put = |s: &str| r.extend_from_slice(s.as_bytes());
        put("POST /?");
        put(query);
        put(" HTTP/1.1\r\nHost: ");
        put(&self.target.host);
        put("\r\nx-acs-action: ");
        put(action);
        put("\r\nx-acs-version: ");
        put(version);
        put("\r\nx-acs-date: ");
        put(&self.date.acs_date);
        put("\r\nx-acs-signature-nonce: ");
        put(&nonce);
        put("\r\nAuthorization: ACS3-HMAC-SHA256 Credential=");
        put(uid);
        put(",SignedHeaders=host;x-acs-date;x-acs-signature-nonce,Signature=");
        put(ZERO_SIGNATURE);
        put("\r\nContent-Length: 0\r\n\r\n");
        self.send_built().await
    }

    /// A request with the given extra headers (e.g. `Authorization: Bearer …`) and an optional
    /// body of `content_type`, without the SigV4 headers.
    pub async fn plain(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, String> {
        let r = &mut self.request;
        r.clear();
        let mut put = |s: &str| r.extend_from_slice(s.as_bytes());
        put(method);
        put(" ");
        put(path_and_query);
        put(" HTTP/1.1\r\nHost: ");
        put(&self.target.host);
        put("\r\nAccept-Encoding: identity\r\nUser-Agent: certplane-bench/0.1\r\n");
        for (k, v) in headers {
            put(k);
            put(": ");
            put(v);
            put("\r\n");
        }
        match body {
            Some((ct, b)) => {
                put("Content-Type: ");
                put(ct);
                put("\r\nContent-Length: ");
                put(&b.len().to_string());
                put("\r\n\r\n");
                r.extend_from_slice(b);
            }
            None if method != "GET" => put("Content-Length: 0\r\n\r\n"),
            None => put("\r\n"),
        }
        self.send_built().await
    }

    async fn send_built(&mut self) -> Result<Response, String> {
        let reused = self.stream.is_some();
        match self.exchange().await {
            Ok(r) => Ok(r),
            Err(Failure::BeforeResponse(_)) if reused => {
                self.stream = None;
                self.exchange().await.map_err(|f| {
                    self.stream = None;
                    f.into_message()
                })
            }
            Err(f) => {
                self.stream = None;
                Err(f.into_message())
            }
        }
    }

    fn build(&mut self, method: &str, path_and_query: &str, account: &str, body: Option<&[u8]>) {
        self.date.refresh();
        let r = &mut self.request;
        r.clear();
        let mut put = |s: &str| r.extend_from_slice(s.as_bytes());
        put(method);
        put(" ");
        put(path_and_query);
        put(" HTTP/1.1\r\nHost: ");
        put(&self.target.host);
        put("\r\nAccept-Encoding: identity\r\nUser-Agent: certplane-bench/0.1\r\nX-Amz-Date: ");
        put(&self.date.amz_date);
        put("\r\nAuthorization: AWS4-HMAC-SHA256 Credential=");
        // With --sign-with: the key's id and a real signature (a verified server checks it).
        let signing = crate::sigv4::credentials();
        put(signing.map_or(account, |c| c.id.as_str()));
        put("/");
        put(&self.date.day);
        put("/us-east-1/iot/aws4_request, SignedHeaders=");
        put(if body.is_some() {
            "content-type;host;x-amz-date"
        } else {
            "host;x-amz-date"
        });
        put(", Signature=");
        match signing {
            Some(c) => put(&c.signature(&crate::sigv4::Signed {
                method,
                path_and_query,
                host: &self.target.host,
                amz_date: &self.date.amz_date,
                day: &self.date.day,
                body,
            })),
            None => put(ZERO_SIGNATURE),
        }
        put("\r\n");
        if self.account_header {
            put("x-moto-account-id: ");
            put(account);
            put("\r\n");
        }
        match body {
            Some(b) => {
                put("Content-Type: application/json\r\nContent-Length: ");
                put(&b.len().to_string());
                put("\r\n\r\n");
                r.extend_from_slice(b);
            }
            None if method != "GET" => put("Content-Length: 0\r\n\r\n"),
            None => put("\r\n"),
        }
    }

    async fn exchange(&mut self) -> Result<Response, Failure> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.target.connect)
                .await
                .map_err(|e| Failure::Fatal(format!("connect {}: {e}", self.target.connect)))?;
            s.set_nodelay(true)
                .map_err(|e| Failure::Fatal(format!("TCP_NODELAY: {e}")))?;
            self.stream = Some(BufReader::with_capacity(16 * 1024, s));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::Fatal("no connection".into()));
        };
        stream
            .get_mut()
            .write_all(&self.request)
            .await
            .map_err(|e| Failure::BeforeResponse(format!("write: {e}")))?;

        // Status line.
        let line = &mut self.line;
        line.clear();
        let n = stream
            .read_until(b'\n', line)
            .await
            .map_err(|e| Failure::BeforeResponse(format!("read: {e}")))?;
        if n == 0 {
            return Err(Failure::BeforeResponse(
                "connection closed before the response".into(),
            ));
        }
        let status_line = String::from_utf8_lossy(line).trim().to_string();
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Fatal(format!("bad status line {status_line:?}")))?;

        // Headers.
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        let mut content_type = String::new();
        loop {
            line.clear();
            let n = stream
                .read_until(b'\n', line)
                .await
                .map_err(|e| Failure::Fatal(format!("read headers: {e}")))?;
            if n == 0 {
                return Err(Failure::Fatal("connection closed in the headers".into()));
            }
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let name = name.trim();
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .parse()
                        .map_err(|_| Failure::Fatal(format!("bad Content-Length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                conn_close = v.contains("close");
                conn_keep_alive = v.contains("keep-alive");
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = value.to_string();
            }
        }
        let mut keep_alive = if version == "HTTP/1.0" {
            conn_keep_alive
        } else {
            !conn_close
        };

        // Body.
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                stream
                    .read_until(b'\n', line)
                    .await
                    .map_err(|e| Failure::Fatal(format!("read chunk size: {e}")))?;
                let text = String::from_utf8_lossy(line);
                let size_text = text.trim().split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| Failure::Fatal(format!("bad chunk size {size_text:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        line.clear();
                        let n = stream
                            .read_until(b'\n', line)
                            .await
                            .map_err(|e| Failure::Fatal(format!("read trailer: {e}")))?;
                        if n == 0 || line.as_slice() == b"\r\n" || line.as_slice() == b"\n" {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                stream
                    .read_exact(&mut body[start..])
                    .await
                    .map_err(|e| Failure::Fatal(format!("read chunk: {e}")))?;
                line.clear();
                stream
                    .read_until(b'\n', line)
                    .await
                    .map_err(|e| Failure::Fatal(format!("read chunk end: {e}")))?;
            }
        } else if let Some(len) = content_length {
            body.resize(len, 0);
            stream
                .read_exact(&mut body)
                .await
                .map_err(|e| Failure::Fatal(format!("read body: {e}")))?;
        } else if !(status < 200 || status == 204 || status == 304) {
            stream
                .read_to_end(&mut body)
                .await
                .map_err(|e| Failure::Fatal(format!("read body to close: {e}")))?;
            keep_alive = false;
        }
        if !keep_alive {
            self.stream = None;
        }
        Ok(Response {
            status,
            content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-02-29 is day 11_016; 2026-11-23 is day 20_780.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(t.connect, "127.0.0.1:8080");
        assert_eq!(t.host, "127.0.0.1:8080");
        let t = Target::parse("http://localhost").unwrap();
        assert_eq!(t.connect, "localhost:80");
        assert!(Target::parse("https://x").is_err());
    }

    #[test]
    fn request_bytes() {
        let mut c = Conn::new(Target::parse("http://127.0.0.1:9").unwrap(), true);
        c.build(
            "PATCH",
            "/reject-certificate-transfer/ab",
            "222222222222",
            Some(b"{}"),
        );
        let text = String::from_utf8(c.request.clone()).unwrap();
        assert!(text.starts_with("PATCH /reject-certificate-transfer/ab HTTP/1.1\r\n"));
        assert!(text.contains("Credential=222222222222/"));
        assert!(text.contains("SignedHeaders=content-type;host;x-amz-date, Signature=0000"));
        assert!(text.contains("x-moto-account-id: 222222222222\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"));
        c.build("GET", "/certificates/ab", "123456789012", None);
        let text = String::from_utf8(c.request.clone()).unwrap();
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
