//! Cross-account certificate transfers: accept, reject and cancel, one caller at a time.

use aws_sdk_iot::types::CertificateStatus;
use aws_sdk_iot::Client;

use crate::harness::{err_code, new_cert, ok, status_of, Server, ACCOUNT_A, ACCOUNT_B};

/// Starts a transfer A→B of an INACTIVE certificate of A and checks the pending state.
async fn start_transfer(a: &Client, b: &Client, id: &str, message: &str) {
    let out = ok(
        a.transfer_certificate()
            .certificate_id(id)
            .target_aws_account(ACCOUNT_B)
            .transfer_message(message)
            .send()
            .await,
        "TransferCertificate",
    );
    let arn = out
        .transferred_certificate_arn()
        .expect("transferredCertificateArn");
    assert!(
        arn.starts_with("arn:aws:iot:us-east-1:") && arn.ends_with(&format!(":cert/{id}")),
        "transferredCertificateArn {arn:?}"
    );
    assert_eq!(status_of(a, id).await, CertificateStatus::PendingTransfer);
    // The target sees the pending transfer (that is how it discovers it).
    assert_eq!(status_of(b, id).await, CertificateStatus::PendingTransfer);
    let d = ok(
        a.describe_certificate().certificate_id(id).send().await,
        "DescribeCertificate pending",
    );
    let t = d
        .certificate_description()
        .and_then(|d| d.transfer_data())
        .expect("transferData while pending");
    assert_eq!(t.transfer_message(), Some(message));
    assert!(t.transfer_date().is_some(), "transferDate");
}

async fn outgoing_of(client: &Client) -> Vec<(String, Option<String>)> {
    let out = ok(
        client.list_outgoing_certificates().send().await,
        "ListOutgoingCertificates",
    );
    out.outgoing_certificates()
        .iter()
        .map(|c| {
            (
                c.certificate_id().expect("id").to_string(),
                c.transferred_to().map(str::to_string),
            )
        })
        .collect()
}

/// Asserts `r` failed with TransferAlreadyCompletedException.
macro_rules! assert_tac {
    ($r:expr, $what:expr) => {{
        assert_eq!(
            err_code($r, $what),
            "TransferAlreadyCompletedException",
            "{}",
            $what
        );
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_accepted_moves_the_certificate_to_b() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);
    let id = new_cert(&a, CertificateStatus::Active).await;

    // ACTIVE cannot be transferred.
    assert_eq!(
        err_code(
            a.transfer_certificate()
                .certificate_id(&id)
                .target_aws_account(ACCOUNT_B)
                .send()
                .await,
            "an ACTIVE certificate cannot be transferred"
        ),
        "CertificateStateException"
    );
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Active);
    assert!(outgoing_of(&a).await.is_empty());

    ok(
        a.update_certificate()
            .certificate_id(&id)
            .new_status(CertificateStatus::Inactive)
            .send()
            .await,
        "UpdateCertificate INACTIVE",
    );
    start_transfer(&a, &b, &id, "here you go").await;
    assert_eq!(
        outgoing_of(&a).await,
        vec![(id.clone(), Some(ACCOUNT_B.to_string()))]
    );
    assert!(outgoing_of(&b).await.is_empty(), "B has nothing outgoing");

    ok(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .set_as_active(true)
            .send()
            .await,
        "AcceptCertificateTransfer",
    );

    let d = ok(
        b.describe_certificate().certificate_id(&id).send().await,
        "DescribeCertificate as B",
    );
    let d = d.certificate_description().expect("description");
    assert_eq!(d.status(), Some(&CertificateStatus::Active));
    assert_eq!(d.owned_by(), Some(ACCOUNT_B));
    assert_eq!(d.previous_owned_by(), Some(ACCOUNT_A));
    assert_eq!(
        d.certificate_arn(),
        Some(format!("arn:aws:iot:us-east-1:{ACCOUNT_B}:cert/{id}").as_str())
    );
    assert!(
        d.transfer_data().and_then(|t| t.accept_date()).is_some(),
        "acceptDate: {:?}",
        d.transfer_data()
    );

    assert_eq!(
        err_code(
            a.describe_certificate().certificate_id(&id).send().await,
            "A no longer owns the certificate"
        ),
        "ResourceNotFoundException"
    );
    assert!(
        outgoing_of(&a).await.is_empty(),
        "nothing outgoing after accept"
    );

    assert_tac!(
        a.cancel_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "cancel after accept"
    );
    assert_tac!(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "second accept"
    );
    assert_tac!(
        b.reject_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "reject after accept"
    );
    // Still B's and ACTIVE.
    assert_eq!(status_of(&b, &id).await, CertificateStatus::Active);

    // B now owns it: B can list it, and A cannot.
    let listed = ok(b.list_certificates().send().await, "ListCertificates as B");
    assert!(listed
        .certificates()
        .iter()
        .any(|c| c.certificate_id() == Some(id.as_str())));
    let listed = ok(a.list_certificates().send().await, "ListCertificates as A");
    assert!(!listed
        .certificates()
        .iter()
        .any(|c| c.certificate_id() == Some(id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_accepted_without_set_as_active_is_inactive() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);
    let id = new_cert(&a, CertificateStatus::Inactive).await;
    start_transfer(&a, &b, &id, "").await;
    ok(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "AcceptCertificateTransfer",
    );
    assert_eq!(status_of(&b, &id).await, CertificateStatus::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_rejected_returns_to_a_inactive() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);
    let id = new_cert(&a, CertificateStatus::Inactive).await;
    start_transfer(&a, &b, &id, "take it").await;

    ok(
        b.reject_certificate_transfer()
            .certificate_id(&id)
            .reject_reason("no thanks")
            .send()
            .await,
        "RejectCertificateTransfer",
    );
    let d = ok(
        a.describe_certificate().certificate_id(&id).send().await,
        "DescribeCertificate after reject",
    );
    let d = d.certificate_description().expect("description");
    assert_eq!(d.status(), Some(&CertificateStatus::Inactive));
    assert_eq!(d.owned_by(), Some(ACCOUNT_A));
    let t = d.transfer_data().expect("transferData");
    assert_eq!(t.reject_reason(), Some("no thanks"));
    assert!(t.reject_date().is_some(), "rejectDate: {t:?}");
    assert!(
        outgoing_of(&a).await.is_empty(),
        "nothing outgoing after reject"
    );

    assert_eq!(
        err_code(
            b.describe_certificate().certificate_id(&id).send().await,
            "B does not see a rejected certificate"
        ),
        "ResourceNotFoundException"
    );

    assert_tac!(
        a.cancel_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "cancel after reject"
    );
    assert_tac!(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "accept after reject"
    );
    assert_tac!(
        b.reject_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "second reject"
    );
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Inactive);

    // The certificate is usable by A again: it can be activated.
    ok(
        a.update_certificate()
            .certificate_id(&id)
            .new_status(CertificateStatus::Active)
            .send()
            .await,
        "UpdateCertificate ACTIVE after reject",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_cancelled_returns_to_a_inactive() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);
    let id = new_cert(&a, CertificateStatus::Inactive).await;
    start_transfer(&a, &b, &id, "oops").await;

    // Wrong parties are refused and change nothing.
    let code = err_code(
        b.cancel_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "the target cannot cancel",
    );
    assert!(
        matches!(
            code.as_str(),
            "InvalidRequestException" | "ResourceNotFoundException"
        ),
        "{code}"
    );
    let code = err_code(
        a.accept_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "the source cannot accept",
    );
    assert!(
        matches!(
            code.as_str(),
            "InvalidRequestException" | "ResourceNotFoundException"
        ),
        "{code}"
    );
    // A PENDING_TRANSFER certificate cannot change status directly.
    assert_eq!(
        err_code(
            a.update_certificate()
                .certificate_id(&id)
                .new_status(CertificateStatus::Active)
                .send()
                .await,
            "PENDING_TRANSFER cannot be activated"
        ),
        "CertificateStateException"
    );
    assert_eq!(status_of(&a, &id).await, CertificateStatus::PendingTransfer);

    ok(
        a.cancel_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "CancelCertificateTransfer",
    );
    let d = ok(
        a.describe_certificate().certificate_id(&id).send().await,
        "DescribeCertificate after cancel",
    );
    let d = d.certificate_description().expect("description");
    assert_eq!(d.status(), Some(&CertificateStatus::Inactive));
    assert_eq!(d.owned_by(), Some(ACCOUNT_A));
    assert!(
        outgoing_of(&a).await.is_empty(),
        "nothing outgoing after cancel"
    );

    assert_tac!(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .set_as_active(true)
            .send()
            .await,
        "accept after cancel"
    );
    assert_tac!(
        b.reject_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "reject after cancel"
    );
    assert_tac!(
        a.cancel_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "second cancel"
    );
    assert_eq!(status_of(&a, &id).await, CertificateStatus::Inactive);

    // Transferring again after a cancel works, and that new transfer can be accepted.
    start_transfer(&a, &b, &id, "second try").await;
    ok(
        b.accept_certificate_transfer()
            .certificate_id(&id)
            .send()
            .await,
        "AcceptCertificateTransfer of the second transfer",
    );
    assert_eq!(status_of(&b, &id).await, CertificateStatus::Inactive);
}
