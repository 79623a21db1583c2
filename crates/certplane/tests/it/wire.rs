//! Raw HTTP: validation, authentication and size errors come back as modeled 4xx errors with
//! `x-amzn-ErrorType`, never a 500.

use aws_sdk_iot::types::CertificateStatus;

use crate::harness::{err_code, new_cert, raw_request, sigv4_headers, Server, ACCOUNT_A, REGION};

fn with_json(mut h: Vec<(String, String)>) -> Vec<(String, String)> {
    h.push(("Content-Type".into(), "application/json".into()));
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_id_missing_auth_and_oversized_body_are_clean_4xx() {
    let server = Server::start();
    let addr = server.addr;
    let a = server.client(ACCOUNT_A);
    let id = new_cert(&a, CertificateStatus::Inactive).await;

    // A well-formed request works: the raw client and headers are right.
    let r = raw_request(
        addr,
        "GET",
        &format!("/certificates/{id}"),
        &sigv4_headers(ACCOUNT_A),
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body_json()["certificateDescription"]["certificateId"],
        serde_json::Value::String(id.clone())
    );
    assert_eq!(
        r.body_json()["certificateDescription"]["certificateArn"],
        serde_json::Value::String(format!("arn:aws:iot:{REGION}:{ACCOUNT_A}:cert/{id}"))
    );

    // A 70-character certificateId: 400 InvalidRequestException.
    let long_id = "0123456789abcdef".repeat(5)[..70].to_string();
    for (method, path) in [
        ("GET", format!("/certificates/{long_id}")),
        ("PUT", format!("/certificates/{long_id}?newStatus=INACTIVE")),
        (
            "PATCH",
            format!("/accept-certificate-transfer/{long_id}?setAsActive=true"),
        ),
    ] {
        let r = raw_request(addr, method, &path, &sigv4_headers(ACCOUNT_A), Vec::new()).await;
        assert_eq!(r.status, 400, "{method} {path}: {r:?}");
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InvalidRequestException"),
            "{method} {path}: {r:?}"
        );
        assert!(
            r.body_json()["message"].is_string(),
            "{method} {path}: body has no message: {r:?}"
        );
    }
    // The SDK sends the 70-char id too (it checks no maximum) and gets the typed error.
    assert_eq!(
        err_code(
            a.describe_certificate()
                .certificate_id(&long_id)
                .send()
                .await,
            "a 70-character id must be refused"
        ),
        "InvalidRequestException"
    );

    // An unknown, well-formed id: 404 ResourceNotFoundException.
    let r = raw_request(
        addr,
        "GET",
        &format!("/certificates/{}", "ab".repeat(32)),
        &sigv4_headers(ACCOUNT_A),
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("ResourceNotFoundException")
    );

    // No Authorization header: 403 MissingAuthenticationTokenException.
    let r = raw_request(addr, "GET", &format!("/certificates/{id}"), &[], Vec::new()).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException"),
        "{r:?}"
    );

    // A body that is not JSON: 400 InvalidRequestException.
    let r = raw_request(
        addr,
        "POST",
        "/certificates?setAsActive=false",
        &with_json(sigv4_headers(ACCOUNT_A)),
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidRequestException"),
        "{r:?}"
    );

    // A body over 256 KiB: 413, never a 500.
    let mut big = b"{\"certificateSigningRequest\":\"".to_vec();
    big.resize(300 * 1024, b'A');
    big.extend_from_slice(b"\"}");
    let r = raw_request(
        addr,
        "POST",
        "/certificates?setAsActive=false",
        &with_json(sigv4_headers(ACCOUNT_A)),
        big,
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.header("x-amzn-ErrorType").is_some(), "{r:?}");

    // A CSR member over its 4096-character maximum (body within limits): 400.
    let csr = "A".repeat(5000);
    let r = raw_request(
        addr,
        "POST",
        "/certificates",
        &with_json(sigv4_headers(ACCOUNT_A)),
        serde_json::to_vec(&serde_json::json!({ "certificateSigningRequest": csr })).expect("json"),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidRequestException"),
        "{r:?}"
    );

    // The server is still healthy after all that.
    let r = raw_request(addr, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
}
