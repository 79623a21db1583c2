//! Throttling with the `aws-sdk-iot` crate: `--dev --throttle on` throttles dev callers by
//! access key, and the SDK (retries off) sees the excess call as its modeled
//! ThrottlingException, which its retry classifier would treat as a throttle.

use std::sync::Arc;

use aws_sdk_iot::error::ProvideErrorMetadata;
use aws_sdk_iot::types::CertificateStatus;

use crate::harness::{new_cert, Server, ACCOUNT_A, ACCOUNT_B};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_calls_are_throttling_exception_and_change_nothing() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = Server::start_with(
        dir,
        &[
            "--throttle".into(),
            "on".into(),
            "--throttle-rate".into(),
            "iot:UpdateCertificate=0.5:2".into(),
        ],
    );
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);
    let id = new_cert(&a, CertificateStatus::Inactive).await;
    for status in [CertificateStatus::Active, CertificateStatus::Inactive] {
        a.update_certificate()
            .certificate_id(&id)
            .new_status(status)
            .send()
            .await
            .expect("within the burst");
    }
    let err = a
        .update_certificate()
        .certificate_id(&id)
        .new_status(CertificateStatus::Revoked)
        .send()
        .await
        .expect_err("over the burst");
    let service = err.as_service_error().expect("a modeled service error");
    assert!(service.is_throttling_exception(), "{service:?}");
    assert_eq!(service.code(), Some("ThrottlingException"));
    assert_eq!(service.message(), Some("Rate exceeded"));
    // Nothing changed.
    let desc = a
        .describe_certificate()
        .certificate_id(&id)
        .send()
        .await
        .expect("describe has its own bucket");
    assert_eq!(
        desc.certificate_description().and_then(|d| d.status()),
        Some(&CertificateStatus::Inactive)
    );
    // Another caller's bucket is full.
    let other = new_cert(&b, CertificateStatus::Inactive).await;
    for status in [CertificateStatus::Active, CertificateStatus::Inactive] {
        b.update_certificate()
            .certificate_id(&other)
            .new_status(status)
            .send()
            .await
            .expect("another caller");
    }
}
