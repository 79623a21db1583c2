//! State survives a crash (SIGKILL) and restart on the same data dir.

use aws_sdk_iot::types::CertificateStatus;

use crate::harness::{new_cert, ok, openssl_verify, status_of, Server, ACCOUNT_A, ACCOUNT_B};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_survive_a_kill_and_restart() {
    let server = Server::start();
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);

    let active = new_cert(&a, CertificateStatus::Active).await;
    let inactive = new_cert(&a, CertificateStatus::Inactive).await;
    let revoked = new_cert(&a, CertificateStatus::Revoked).await;
    let pending = new_cert(&a, CertificateStatus::Inactive).await;
    ok(
        a.transfer_certificate()
            .certificate_id(&pending)
            .target_aws_account(ACCOUNT_B)
            .send()
            .await,
        "TransferCertificate",
    );
    assert_eq!(
        status_of(&b, &pending).await,
        CertificateStatus::PendingTransfer
    );
    let keys = ok(
        a.create_keys_and_certificate()
            .set_as_active(true)
            .send()
            .await,
        "CreateKeysAndCertificate",
    );
    let issued = keys.certificate_id().expect("id").to_string();
    let before_pem = ok(
        a.describe_certificate()
            .certificate_id(&active)
            .send()
            .await,
        "DescribeCertificate",
    )
    .certificate_description()
    .and_then(|d| d.certificate_pem())
    .expect("pem")
    .to_string();
    let ca_before = std::fs::read_to_string(server.data_dir().join("ca.pem")).expect("ca.pem");

    let dir = server.kill();
    let server = Server::start_in(dir);
    let a = server.client(ACCOUNT_A);
    let b = server.client(ACCOUNT_B);

    for (id, want) in [
        (&active, CertificateStatus::Active),
        (&inactive, CertificateStatus::Inactive),
        (&revoked, CertificateStatus::Revoked),
        (&pending, CertificateStatus::PendingTransfer),
        (&issued, CertificateStatus::Active),
    ] {
        assert_eq!(status_of(&a, id).await, want, "{id} after restart");
    }
    let after_pem = ok(
        a.describe_certificate()
            .certificate_id(&active)
            .send()
            .await,
        "DescribeCertificate after restart",
    )
    .certificate_description()
    .and_then(|d| d.certificate_pem())
    .expect("pem")
    .to_string();
    assert_eq!(after_pem, before_pem);
    let listed = ok(a.list_certificates().send().await, "ListCertificates");
    assert_eq!(
        listed.certificates().len(),
        5,
        "{:?}",
        listed.certificates()
    );

    // Same issuing CA after the restart: old and new certificates both chain to it.
    let ca_path = server.data_dir().join("ca.pem");
    let ca_after = std::fs::read_to_string(&ca_path).expect("ca.pem");
    assert_eq!(
        ca_after, ca_before,
        "the issuing CA changed across a restart"
    );
    let fresh = ok(
        a.create_keys_and_certificate().send().await,
        "CreateKeysAndCertificate after restart",
    );
    for pem in [before_pem.as_str(), fresh.certificate_pem().expect("pem")] {
        let (verified, text) = openssl_verify(&ca_path, pem);
        assert!(verified, "openssl verify failed: {text}");
    }

    // The pending transfer is still pending and can be finished.
    ok(
        b.accept_certificate_transfer()
            .certificate_id(&pending)
            .set_as_active(true)
            .send()
            .await,
        "AcceptCertificateTransfer after restart",
    );
    assert_eq!(status_of(&b, &pending).await, CertificateStatus::Active);
}
