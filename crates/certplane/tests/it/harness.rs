//! The test harness: the real `certplane` binary on a temporary data dir, `aws-sdk-iot` clients
//! for two accounts, a tiny raw HTTP/1.1 client, and PEM/CSR helpers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_iot::config::retry::RetryConfig;
use aws_sdk_iot::config::timeout::TimeoutConfig;
use aws_sdk_iot::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_iot::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iot::types::CertificateStatus;
use aws_sdk_iot::Client;
use base64::Engine;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Account A: in `--dev` mode a 12-digit access key id is the account.
pub const ACCOUNT_A: &str = "111111111111";
/// Account B.
pub const ACCOUNT_B: &str = "222222222222";
pub const REGION: &str = "us-east-1";

/// A running `certplane serve --dev`; killed (SIGKILL) and reaped on drop.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Shared so a test can restart a server on the same data dir.
    pub dir: Arc<TempDir>,
}

impl Server {
    /// A server on a fresh data dir.
    pub fn start() -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Server::start_in(dir)
    }

    /// A server on an existing data dir.
    pub fn start_in(dir: Arc<TempDir>) -> Server {
        Server::start_with(dir, &[])
    }

    /// A server on `dir` with extra `serve` arguments (e.g. `--database-url`).
    pub fn start_with(dir: Arc<TempDir>, extra: &[String]) -> Server {
        let log_path = dir.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_certplane"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--dev")
            .args(extra)
            .env_remove("CERTPLANE_DATA_DIR")
            .env_remove("CERTPLANE_DATABASE_URL")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn certplane");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Reads the banner, then keeps draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.strip_prefix("certplane listening on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                server.addr = addr.parse().expect("listen address in the banner");
                server
            }
            Err(_) => {
                let status = server
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                drop(server);
                panic!(
                    "certplane did not print its listening line (exit: {status:?}); log:\n{log}"
                );
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An SDK client signing as `account` (the access key id) with retries disabled.
    pub fn client(&self, account: &str) -> Client {
        let conf = aws_sdk_iot::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                account,
                "not-checked-in-dev-mode",
                None,
                None,
                "certplane-it",
            ))
            .endpoint_url(self.endpoint())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        Client::from_conf(conf)
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) -> Arc<TempDir> {
        self.stop();
        self.dir.clone()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // A failing test shows what the server logged (the temp dir goes away with it).
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            if !tail.is_empty() {
                eprintln!("--- certplane server log (last {} lines) ---", tail.len());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// The error code the SDK parsed, plus the full error for assertion messages.
pub fn describe_err<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!(
        "code={:?} message={:?} ({})",
        e.code(),
        e.message(),
        DisplayErrorContext(e)
    )
}

/// Unwraps an SDK result with a readable message.
pub fn ok<T, E, R>(r: Result<T, SdkError<E, R>>, what: &str) -> T
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {}", describe_err(&e)),
    }
}

/// The error code (the modeled exception name, e.g. "InvalidRequestException") of an SDK call
/// that must fail. Panics with `what` if it succeeded or failed without a service error code;
/// the full error goes to stderr, shown when the test fails.
pub fn err_code<T, E, R>(r: Result<T, SdkError<E, R>>, what: &str) -> String
where
    T: std::fmt::Debug,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let e = match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(e) => e,
    };
    eprintln!("{what}: {}", describe_err(&e));
    match e.code() {
        Some(code) => code.to_string(),
        None => panic!("{what}: no service error code: {}", describe_err(&e)),
    }
}

/// A PEM certificate's DER (first block).
pub fn pem_to_der(pem: &str) -> Vec<u8> {
    let mut inside = false;
    let mut b64 = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            inside = true;
        } else if line.starts_with("-----END ") {
            break;
        } else if inside {
            b64.push_str(line);
        }
    }
    assert!(!b64.is_empty(), "no PEM block in {pem:?}");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("PEM body is base64")
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

pub fn is_cert_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh ECDSA P-256 CSR with CN `cn`.
pub fn csr_pem(cn: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("csr pem")
}

/// A certificate from a CSR in `status` (via UpdateCertificate when not INACTIVE). Fast: no
/// RSA key generation.
pub async fn new_cert(client: &Client, status: CertificateStatus) -> String {
    let out = ok(
        client
            .create_certificate_from_csr()
            .certificate_signing_request(csr_pem("it-device"))
            .set_as_active(status == CertificateStatus::Active)
            .send()
            .await,
        "CreateCertificateFromCsr",
    );
    let id = out.certificate_id().expect("certificateId").to_string();
    if status != CertificateStatus::Active && status != CertificateStatus::Inactive {
        ok(
            client
                .update_certificate()
                .certificate_id(&id)
                .new_status(status)
                .send()
                .await,
            "UpdateCertificate",
        );
    }
    id
}

/// The status `account`'s DescribeCertificate reports.
pub async fn status_of(client: &Client, id: &str) -> CertificateStatus {
    let out = ok(
        client
            .describe_certificate()
            .certificate_id(id)
            .send()
            .await,
        "DescribeCertificate",
    );
    out.certificate_description()
        .and_then(|d| d.status())
        .cloned()
        .expect("status")
}

/// Writes `cert_pem` to a fresh temp dir and runs `openssl verify -CAfile <ca>` on it.
pub fn openssl_verify(ca: &Path, cert_pem: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("cert.pem");
    std::fs::write(&path, cert_pem).expect("write cert");
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(&path)
        .output()
        .expect("run openssl (is it installed?)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `X-Amz-Date` for now, and its date part for the credential scope.
pub fn amz_now() -> (String, String) {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let now = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .expect("format X-Amz-Date");
    let day = now[..8].to_string();
    (now, day)
}

/// A well-formed (in dev mode unchecked) SigV4 Authorization header and its X-Amz-Date.
pub fn sigv4_headers(account: &str) -> Vec<(String, String)> {
    let (now, day) = amz_now();
    vec![
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={account}/{day}/{REGION}/iot/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                "0".repeat(64)
            ),
        ),
        ("X-Amz-Date".into(), now),
    ]
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`). The body is written while
/// the response is read, so a server that answers early (413) and closes is still heard.
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to certplane");
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        // The server may stop reading and close early; a failed write is not a test failure.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            for chunk in body.chunks(16 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
            let _ = wr.flush().await;
        }
        // Keep the write half open until the response is read: dropping it sends a FIN, and a
        // half-closed request is not what HTTP clients send.
        std::future::pending::<()>().await;
        drop(wr);
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if response_complete(&buf) {
                        break;
                    }
                }
            }
        }
    })
    .await;
    writer.abort();
    assert!(read.is_ok(), "no complete response within 20 s: {buf:?}");
    parse_response(&buf)
}

fn split_head(buf: &[u8]) -> Option<(usize, &[u8])> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p + 4, &buf[..p]))
}

fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

fn response_complete(buf: &[u8]) -> bool {
    match split_head(buf) {
        Some((start, head)) => match content_length(head) {
            Some(n) => buf.len() >= start + n,
            None => false,
        },
        None => false,
    }
}

fn parse_response(buf: &[u8]) -> RawResponse {
    let (start, head) = split_head(buf).unwrap_or_else(|| {
        panic!(
            "incomplete HTTP response: {:?}",
            String::from_utf8_lossy(buf)
        )
    });
    let head = String::from_utf8_lossy(head).to_string();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = buf[start..].to_vec();
    if let Some(n) = content_length(head.as_bytes()) {
        body.truncate(n);
    }
    RawResponse {
        status,
        headers,
        body,
    }
}
