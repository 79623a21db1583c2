//! Device certificates: issue, describe, status rules, pagination.

use std::collections::HashSet;

use aws_sdk_iot::types::CertificateStatus;

use crate::harness::{
    csr_pem, err_code, is_cert_id, new_cert, ok, openssl_verify, pem_to_der, sha256_hex, status_of,
    Server, ACCOUNT_A, ACCOUNT_B,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_keys_and_certificate_is_active_hash_named_and_chains_to_the_ca() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);

    let out = ok(
        a.create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await,
        "CreateKeysAndCertificate",
    );
    let id = out.certificate_id().expect("certificateId");
    assert!(
        is_cert_id(id),
        "certificateId {id:?} is not 64 lower-case hex"
    );
    assert_eq!(
        out.certificate_arn(),
        Some(format!("arn:aws:iot:us-east-1:{ACCOUNT_A}:cert/{id}").as_str())
    );
    let pem = out.certificate_pem().expect("certificatePem");
    assert!(pem.contains("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(
        sha256_hex(&pem_to_der(pem)),
        id,
        "certificateId must be the hex SHA-256 of the certificate's DER"
    );
    let keys = out.key_pair().expect("keyPair");
    assert!(keys
        .public_key()
        .is_some_and(|k| k.contains("-----BEGIN PUBLIC KEY-----")));
    assert!(keys
        .private_key()
        .is_some_and(|k| k.contains("-----BEGIN RSA PRIVATE KEY-----")));

    let d = ok(
        a.describe_certificate().certificate_id(id).send().await,
        "DescribeCertificate",
    );
    let d = d.certificate_description().expect("certificateDescription");
    assert_eq!(d.status(), Some(&CertificateStatus::Active));
    assert_eq!(d.certificate_id(), Some(id));
    assert_eq!(d.owned_by(), Some(ACCOUNT_A));
    assert_eq!(d.certificate_pem(), Some(pem));
    assert_eq!(d.previous_owned_by(), None);
    let created = d.creation_date().expect("creationDate");
    assert!(d.last_modified_date().is_some(), "lastModifiedDate");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!(
        (created.secs() - now).abs() < 300,
        "creationDate {created:?} is not now ({now})"
    );
    let validity = d.validity().expect("validity");
    let nb = validity.not_before().expect("notBefore");
    let na = validity.not_after().expect("notAfter");
    assert!(nb.secs() <= now + 60, "notBefore {nb:?} is in the future");
    assert!(
        na.secs() > now + 86_400,
        "notAfter {na:?} is not well after now"
    );
    assert!(d.customer_version().is_some_and(|v| v >= 1));

    let ca = server.data_dir().join("ca.pem");
    assert!(ca.exists(), "{} missing", ca.display());
    let (verified, text) = openssl_verify(&ca, pem);
    assert!(verified, "openssl verify failed: {text}");

    // Another account does not see it.
    let b = server.client(ACCOUNT_B);
    assert_eq!(
        err_code(
            b.describe_certificate().certificate_id(id).send().await,
            "account B must not see A's certificate"
        ),
        "ResourceNotFoundException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_keys_and_certificate_without_set_as_active_is_inactive() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let out = ok(
        a.create_keys_and_certificate().send().await,
        "CreateKeysAndCertificate",
    );
    let id = out.certificate_id().expect("id");
    assert_eq!(status_of(&a, id).await, CertificateStatus::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_certificate_from_csr_inactive_and_distinct_per_call() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let csr = csr_pem("same-csr");

    let first = ok(
        a.create_certificate_from_csr()
            .certificate_signing_request(&csr)
            .set_as_active(false)
            .send()
            .await,
        "CreateCertificateFromCsr #1",
    );
    let second = ok(
        a.create_certificate_from_csr()
            .certificate_signing_request(&csr)
            .set_as_active(false)
            .send()
            .await,
        "CreateCertificateFromCsr #2",
    );
    let id1 = first.certificate_id().expect("id1");
    let id2 = second.certificate_id().expect("id2");
    assert!(is_cert_id(id1) && is_cert_id(id2), "{id1} {id2}");
    assert_ne!(id1, id2, "the same CSR twice must give two certificates");
    for (id, pem) in [
        (id1, first.certificate_pem().expect("pem1")),
        (id2, second.certificate_pem().expect("pem2")),
    ] {
        assert_eq!(sha256_hex(&pem_to_der(pem)), id);
        assert_eq!(status_of(&a, id).await, CertificateStatus::Inactive);
        let (verified, text) = openssl_verify(&server.data_dir().join("ca.pem"), pem);
        assert!(verified, "openssl verify failed: {text}");
    }

    // set_as_active=true gives ACTIVE.
    let active = ok(
        a.create_certificate_from_csr()
            .certificate_signing_request(&csr)
            .set_as_active(true)
            .send()
            .await,
        "CreateCertificateFromCsr active",
    );
    assert_eq!(
        status_of(&a, active.certificate_id().expect("id")).await,
        CertificateStatus::Active
    );

    // Garbage CSR: InvalidRequestException.
    assert_eq!(
        err_code(
            a.create_certificate_from_csr()
                .certificate_signing_request("-----BEGIN CERTIFICATE REQUEST-----\nnope\n")
                .send()
                .await,
            "a garbage CSR must be refused"
        ),
        "InvalidRequestException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_certificate_status_rules() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let id = new_cert(&a, CertificateStatus::Active).await;

    // Internal statuses cannot be set.
    for refused in [
        CertificateStatus::PendingTransfer,
        CertificateStatus::PendingActivation,
    ] {
        assert_eq!(
            err_code(
                a.update_certificate()
                    .certificate_id(&id)
                    .new_status(refused.clone())
                    .send()
                    .await,
                "an internal status must be refused"
            ),
            "InvalidRequestException",
            "{refused:?}"
        );
        assert_eq!(status_of(&a, &id).await, CertificateStatus::Active);
    }

    // Same status twice is fine (idempotent).
    for s in [CertificateStatus::Inactive, CertificateStatus::Inactive] {
        ok(
            a.update_certificate()
                .certificate_id(&id)
                .new_status(s)
                .send()
                .await,
            "UpdateCertificate INACTIVE",
        );
    }
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Inactive);
    ok(
        a.update_certificate()
            .certificate_id(&id)
            .new_status(CertificateStatus::Active)
            .send()
            .await,
        "UpdateCertificate back to ACTIVE",
    );
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Active);

    // REVOKED is one-way.
    for _ in 0..2 {
        ok(
            a.update_certificate()
                .certificate_id(&id)
                .new_status(CertificateStatus::Revoked)
                .send()
                .await,
            "UpdateCertificate REVOKED",
        );
    }
    for back in [CertificateStatus::Active, CertificateStatus::Inactive] {
        assert_eq!(
            err_code(
                a.update_certificate()
                    .certificate_id(&id)
                    .new_status(back.clone())
                    .send()
                    .await,
                "a revoked certificate's status cannot change"
            ),
            "CertificateStateException",
            "REVOKED -> {back:?}"
        );
    }
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Revoked);

    // Unknown certificate: ResourceNotFoundException, also for another account.
    assert_eq!(
        err_code(
            a.update_certificate()
                .certificate_id("ab".repeat(32))
                .new_status(CertificateStatus::Inactive)
                .send()
                .await,
            "unknown certificate"
        ),
        "ResourceNotFoundException"
    );
    let b = server.client(ACCOUNT_B);
    assert_eq!(
        err_code(
            b.update_certificate()
                .certificate_id(&id)
                .new_status(CertificateStatus::Inactive)
                .send()
                .await,
            "another account's certificate"
        ),
        "ResourceNotFoundException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_certificates_pages_and_paginator() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(new_cert(&a, CertificateStatus::Inactive).await);
    }
    let expected: HashSet<String> = created.iter().cloned().collect();
    assert_eq!(expected.len(), 5);

    // Manual paging: 2 / 2 / 1, nextMarker absent on the last page.
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut sizes = Vec::new();
    for page in 0.. {
        assert!(page < 5, "pagination does not end: {sizes:?}");
        let out = ok(
            a.list_certificates()
                .page_size(2)
                .set_marker(marker.clone())
                .send()
                .await,
            "ListCertificates",
        );
        sizes.push(out.certificates().len());
        for c in out.certificates() {
            seen.push(c.certificate_id().expect("id").to_string());
            assert_eq!(c.status(), Some(&CertificateStatus::Inactive));
            assert!(c.creation_date().is_some());
        }
        match out.next_marker() {
            Some(m) => {
                assert!(
                    !m.is_empty()
                        && m.bytes().all(|b| b.is_ascii_alphanumeric()
                            || b == b'+'
                            || b == b'/'
                            || b == b'='),
                    "nextMarker {m:?} does not match [A-Za-z0-9+/]+={{0,2}}"
                );
                assert_ne!(marker.as_deref(), Some(m), "the marker did not advance");
                marker = Some(m.to_string());
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![2, 2, 1], "page sizes");
    let seen_set: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 5, "duplicates across pages: {seen:?}");
    assert_eq!(seen_set, expected);

    // The SDK paginator: every certificate exactly once, three pages.
    let items: Vec<_> = a
        .list_certificates()
        .page_size(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let ids: Vec<String> = items
        .into_iter()
        .map(|r| {
            ok(r, "paginated ListCertificates")
                .certificate_id()
                .expect("id")
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 5, "paginator items: {ids:?}");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), expected);
    let pages: Vec<_> = a
        .list_certificates()
        .page_size(2)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    assert_eq!(pages.len(), 3, "paginator pages");

    // isAscendingOrder flips the order.
    let asc: Vec<String> = ok(
        a.list_certificates().ascending_order(true).send().await,
        "ListCertificates ascending",
    )
    .certificates()
    .iter()
    .map(|c| c.certificate_id().expect("id").to_string())
    .collect();
    let desc: Vec<String> = ok(
        a.list_certificates().ascending_order(false).send().await,
        "ListCertificates descending",
    )
    .certificates()
    .iter()
    .map(|c| c.certificate_id().expect("id").to_string())
    .collect();
    assert_eq!(asc, created, "ascending is creation order");
    let mut rev = desc.clone();
    rev.reverse();
    assert_eq!(rev, asc, "descending is the reverse of ascending");

    // Another account sees none of them.
    let b = server.client(ACCOUNT_B);
    let out = ok(b.list_certificates().send().await, "ListCertificates as B");
    assert!(out.certificates().is_empty(), "{:?}", out.certificates());
    assert_eq!(out.next_marker(), None);
}
