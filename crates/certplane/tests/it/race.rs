//! Many callers racing on one pending transfer: exactly one wins, the others get
//! TransferAlreadyCompletedException, and the certificate ends as the winner left it.

use std::sync::Arc;

use aws_sdk_iot::types::CertificateStatus;
use aws_sdk_iot::Client;
use tokio::sync::Barrier;

use crate::harness::{describe_err, err_code, new_cert, ok, Server, ACCOUNT_A, ACCOUNT_B};

const CLIENTS_PER_ACCOUNT: usize = 16;
const ROUNDS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Cancel,
    Accept { set_as_active: bool },
    Reject,
}

#[derive(Debug)]
enum Outcome {
    Won(Action),
    AlreadyCompleted,
    Other(String),
}

async fn act(client: &Client, id: &str, action: Action) -> Outcome {
    macro_rules! judge {
        ($r:expr) => {
            match $r {
                Ok(_) => Outcome::Won(action),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_transfer_already_completed_exception()) =>
                {
                    Outcome::AlreadyCompleted
                }
                Err(e) => Outcome::Other(describe_err(&e)),
            }
        };
    }
    match action {
        Action::Cancel => judge!(
            client
                .cancel_certificate_transfer()
                .certificate_id(id)
                .send()
                .await
        ),
        Action::Accept { set_as_active } => judge!(
            client
                .accept_certificate_transfer()
                .certificate_id(id)
                .set_as_active(set_as_active)
                .send()
                .await
        ),
        Action::Reject => judge!(
            client
                .reject_certificate_transfer()
                .certificate_id(id)
                .reject_reason("race")
                .send()
                .await
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accept_reject_cancel_exactly_one_wins() {
    let server = Server::start();
    race(&[&server], ROUNDS).await;
}

/// `rounds` rounds of 2 × 16 racers on one pending transfer. Racers are spread over `nodes`
/// (servers sharing one database, or just one server): each racer has its own SDK client.
pub async fn race(nodes: &[&Server], rounds: usize) {
    let a = nodes[0].client(ACCOUNT_A);
    let b = nodes[nodes.len() - 1].client(ACCOUNT_B);
    let a_clients: Vec<Client> = (0..CLIENTS_PER_ACCOUNT)
        .map(|i| nodes[i % nodes.len()].client(ACCOUNT_A))
        .collect();
    let b_clients: Vec<Client> = (0..CLIENTS_PER_ACCOUNT)
        .map(|i| nodes[(i + 1) % nodes.len()].client(ACCOUNT_B))
        .collect();

    let mut wins = Vec::new();
    let mut id = new_cert(&a, CertificateStatus::Inactive).await;
    for round in 0..rounds {
        ok(
            a.transfer_certificate()
                .certificate_id(&id)
                .target_aws_account(ACCOUNT_B)
                .transfer_message(format!("round {round}"))
                .send()
                .await,
            "TransferCertificate",
        );
        let set_as_active = round % 2 == 1;
        let barrier = Arc::new(Barrier::new(2 * CLIENTS_PER_ACCOUNT));
        let mut tasks = Vec::new();
        for (i, client) in a_clients.iter().chain(b_clients.iter()).enumerate() {
            let action = if i < CLIENTS_PER_ACCOUNT {
                Action::Cancel
            } else if (i + round) % 2 == 0 {
                Action::Accept { set_as_active }
            } else {
                Action::Reject
            };
            let (client, id, barrier) = (client.clone(), id.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                act(&client, &id, action).await
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("racer task"));
        }

        let winners: Vec<Action> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Won(a) => Some(*a),
                _ => None,
            })
            .collect();
        let others: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Other(e) => Some(e),
                _ => None,
            })
            .collect();
        assert!(
            others.is_empty(),
            "round {round}: errors other than TransferAlreadyCompletedException: {others:#?}"
        );
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one caller must win, got {winners:?}"
        );
        let completed = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::AlreadyCompleted))
            .count();
        assert_eq!(completed, 2 * CLIENTS_PER_ACCOUNT - 1, "round {round}");

        let winner = winners[0];
        wins.push(winner);
        match winner {
            Action::Cancel | Action::Reject => {
                let d = ok(
                    a.describe_certificate().certificate_id(&id).send().await,
                    "DescribeCertificate as A",
                );
                let d = d.certificate_description().expect("description");
                assert_eq!(
                    d.status(),
                    Some(&CertificateStatus::Inactive),
                    "round {round}, winner {winner:?}"
                );
                assert_eq!(d.owned_by(), Some(ACCOUNT_A), "round {round}");
                if winner == Action::Reject {
                    assert_eq!(
                        d.transfer_data().and_then(|t| t.reject_reason()),
                        Some("race"),
                        "round {round}"
                    );
                }
                assert_eq!(
                    err_code(
                        b.describe_certificate().certificate_id(&id).send().await,
                        "B must not see a cancelled/rejected transfer"
                    ),
                    "ResourceNotFoundException",
                    "round {round}"
                );
                // The same certificate goes round again.
            }
            Action::Accept { set_as_active } => {
                let d = ok(
                    b.describe_certificate().certificate_id(&id).send().await,
                    "DescribeCertificate as B",
                );
                let d = d.certificate_description().expect("description");
                let want = if set_as_active {
                    CertificateStatus::Active
                } else {
                    CertificateStatus::Inactive
                };
                assert_eq!(d.status(), Some(&want), "round {round}");
                assert_eq!(d.owned_by(), Some(ACCOUNT_B), "round {round}");
                assert_eq!(d.previous_owned_by(), Some(ACCOUNT_A), "round {round}");
                assert_eq!(
                    err_code(
                        a.describe_certificate().certificate_id(&id).send().await,
                        "A no longer owns an accepted certificate"
                    ),
                    "ResourceNotFoundException",
                    "round {round}"
                );
                id = new_cert(&a, CertificateStatus::Inactive).await;
            }
        }
        let outgoing = ok(
            a.list_outgoing_certificates().send().await,
            "ListOutgoingCertificates",
        );
        assert!(
            outgoing.outgoing_certificates().is_empty(),
            "round {round}: {:?}",
            outgoing.outgoing_certificates()
        );
    }
    let count = |f: fn(&Action) -> bool| wins.iter().filter(|w| f(w)).count();
    eprintln!(
        "race over {} node(s), {rounds} rounds: cancel {}, accept {}, reject {}",
        nodes.len(),
        count(|w| *w == Action::Cancel),
        count(|w| matches!(w, Action::Accept { .. })),
        count(|w| *w == Action::Reject),
    );
}
