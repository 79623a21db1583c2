//! The store conformance suite: every engine must pass these, run against a real database.

use std::sync::Arc;

use certplane_core::error::DomainError;
use certplane_core::store::{Doc, Filter, Kind, PageQuery, Store, Write};

pub(crate) fn doc(key: &str, account: &str, idx1: Option<&str>, body: &str) -> Doc {
    Doc {
        kind: Kind::Thing,
        key: key.into(),
        account: account.into(),
        region: "r".into(),
        idx1: idx1.map(str::to_string),
        idx2: None,
        body: body.into(),
    }
}

pub async fn insert_get_and_duplicates(s: &dyn Store) {
    s.apply(vec![Write::Insert(doc("a", "1", None, "{\"v\":1}"))])
        .await
        .expect("insert");
    let got = s
        .get(Kind::Thing, "a")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.version, 1);
    assert_eq!(got.doc.body, "{\"v\":1}");
    assert!(s.get(Kind::Policy, "a").await.expect("get").is_none());
    let dup = s
        .apply(vec![Write::Insert(doc("a", "1", None, "{}"))])
        .await;
    assert!(
        matches!(dup, Err(DomainError::AlreadyExists { .. })),
        "{dup:?}"
    );
    s.apply(vec![Write::InsertIfAbsent(doc("a", "1", None, "{}"))])
        .await
        .expect("insert-if-absent on an existing key is fine");
    let still = s
        .get(Kind::Thing, "a")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(still.doc.body, "{\"v\":1}");
}

/// The audit trail (a table of its own in both engines) reads and writes like any kind: inserted
/// once per key, read back by key, listed by account in creation order a page at a time,
/// counted, and kept by `reset`.
pub async fn audit_rows_behave_like_documents(s: &dyn Store) {
    let row = |key: &str, account: &str| Doc {
        kind: Kind::AuditEvent,
        key: key.into(),
        account: account.into(),
        region: String::new(),
        idx1: Some("alice".into()),
        idx2: Some("iot:UpdateCertificate".into()),
        body: format!("{{\"k\":\"{key}\"}}"),
    };
    for (k, a) in [
        ("0001/a/0", "1"),
        ("0002/b/0", "2"),
        ("0003/c/0", "1"),
        ("0004/d/0", "1"),
    ] {
        s.apply(vec![Write::Insert(row(k, a))])
            .await
            .expect("insert");
    }
    let dup = s.apply(vec![Write::Insert(row("0002/b/0", "2"))]).await;
    assert!(
        matches!(dup, Err(DomainError::AlreadyExists { .. })),
        "{dup:?}"
    );
    let got = s
        .get(Kind::AuditEvent, "0003/c/0")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (got.doc.kind, got.doc.account.as_str()),
        (Kind::AuditEvent, "1")
    );
    assert!(s.get(Kind::Thing, "0003/c/0").await.expect("get").is_none());
    let mine = Filter {
        account: Some("1".into()),
        ..Filter::default()
    };
    let first = s
        .query(
            Kind::AuditEvent,
            &mine,
            PageQuery {
                after_seq: None,
                limit: 2,
                ascending: true,
            },
        )
        .await
        .expect("page");
    let rest = s
        .query(
            Kind::AuditEvent,
            &mine,
            PageQuery {
                after_seq: first.last().map(|d| d.seq),
                limit: 2,
                ascending: true,
            },
        )
        .await
        .expect("page");
    let keys: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|d| d.doc.key.as_str())
        .collect();
    assert_eq!(keys, ["0001/a/0", "0003/c/0", "0004/d/0"]);
    assert_eq!(
        s.count(Kind::AuditEvent, &Filter::default())
            .await
            .expect("count"),
        4
    );
    let by_action = Filter {
        idx2: Some("iot:UpdateCertificate".into()),
        ..Filter::default()
    };
    assert_eq!(
        s.count(Kind::AuditEvent, &by_action).await.expect("count"),
        4
    );
    s.reset().await.expect("reset");
    assert_eq!(
        s.count(Kind::AuditEvent, &Filter::default())
            .await
            .expect("count"),
        4
    );
}

/// `get_many` answers the documents that exist, each as `get` does, of that kind only.
pub async fn get_many_reads_the_ones_that_exist(s: &dyn Store) {
    s.apply(vec![
        Write::Insert(doc("m1", "1", None, "{\"v\":1}")),
        Write::Insert(doc("m2", "1", None, "{\"v\":2}")),
    ])
    .await
    .expect("insert");
    let keys: Vec<String> = ["m1", "m2", "absent", "m1"].map(String::from).to_vec();
    let mut got = s.get_many(Kind::Thing, &keys).await.expect("get_many");
    got.sort_by(|a, b| a.doc.key.cmp(&b.doc.key));
    got.dedup_by(|a, b| a.doc.key == b.doc.key);
    assert_eq!(
        got.iter()
            .map(|d| (d.doc.key.as_str(), d.doc.body.as_str(), d.version))
            .collect::<Vec<_>>(),
        [("m1", "{\"v\":1}", 1), ("m2", "{\"v\":2}", 1)]
    );
    for d in &got {
        let one = s
            .get(Kind::Thing, &d.doc.key)
            .await
            .expect("get")
            .expect("present");
        assert_eq!((one.seq, one.version), (d.seq, d.version));
    }
    assert!(s
        .get_many(Kind::Policy, &keys)
        .await
        .expect("get_many")
        .is_empty());
    assert!(s
        .get_many(Kind::Thing, &[])
        .await
        .expect("get_many")
        .is_empty());
}

/// Many point reads at once (an engine may send them to the database together): each is
/// answered with its own document, version or absence, of its own kind, a key asked by several
/// at once answered to each, and a read after a write sees it.
pub async fn concurrent_point_reads_answer_each_their_own(s: Arc<dyn Store>) {
    const N: usize = 40;
    let key = |i: usize| format!("point-{i}");
    let inserts = (0..N)
        .map(|i| Write::Insert(doc(&key(i), "1", None, &format!("{{\"v\":{i}}}"))))
        .collect();
    s.apply(inserts).await.expect("insert");
    // The same keys under another kind hold other bodies.
    let policies = (0..N / 2)
        .map(|i| {
            let mut d = doc(&key(i), "1", None, &format!("{{\"p\":{i}}}"));
            d.kind = Kind::Policy;
            Write::Insert(d)
        })
        .collect();
    s.apply(policies).await.expect("insert policies");
    let mut tasks = Vec::new();
    for round in 0..6 {
        for i in 0..N + 10 {
            let s = s.clone();
            let k = key(i);
            tasks.push(tokio::spawn(async move {
                let thing = s.get(Kind::Thing, &k).await.expect("get");
                assert_eq!(
                    thing.as_ref().map(|d| d.doc.body.clone()),
                    (i < N).then(|| format!("{{\"v\":{i}}}")),
                    "{k}"
                );
                let policy = s.get(Kind::Policy, &k).await.expect("get policy");
                assert_eq!(
                    policy.as_ref().map(|d| (d.doc.kind, d.doc.body.clone())),
                    (i < N / 2).then(|| (Kind::Policy, format!("{{\"p\":{i}}}"))),
                    "{k}"
                );
                if round % 2 == 0 {
                    let v = s.version(Kind::Thing, &k).await.expect("version");
                    assert_eq!(v, thing.map(|d| (d.version, d.seq)), "{k}");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("reader");
    }
    // Read your own write, whoever else is reading.
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.get(Kind::Thing, "point-0").await.expect("get") })
        })
        .collect();
    s.apply(vec![Write::Update {
        doc: doc("point-0", "1", None, "{\"v\":\"new\"}"),
        expected_version: 1,
    }])
    .await
    .expect("update");
    let after = s
        .get(Kind::Thing, "point-0")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (after.version, after.doc.body.as_str()),
        (2, "{\"v\":\"new\"}")
    );
    assert_eq!(
        s.version(Kind::Thing, "point-0").await.expect("version"),
        Some((2, after.seq))
    );
    for r in readers {
        let d = r.await.expect("reader").expect("present");
        assert!(d.version == 1 || d.version == 2, "{d:?}");
    }
}

pub async fn compare_and_set(s: &dyn Store) {
    s.apply(vec![Write::Insert(doc("cas", "1", None, "0"))])
        .await
        .expect("insert");
    let first = s.apply(vec![Write::Update {
        doc: doc("cas", "1", None, "1"),
        expected_version: 1,
    }]);
    let first = first.await;
    let second = s
        .apply(vec![Write::Update {
            doc: doc("cas", "1", None, "2"),
            expected_version: 1,
        }])
        .await;
    assert_eq!(first, Ok(()));
    assert_eq!(second, Err(DomainError::Stale));
    let got = s
        .get(Kind::Thing, "cas")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((got.version, got.doc.body.as_str()), (2, "1"));
    let stale_delete = s
        .apply(vec![Write::Delete {
            kind: Kind::Thing,
            key: "cas".into(),
            expected_version: 1,
        }])
        .await;
    assert_eq!(stale_delete, Err(DomainError::Stale));
    s.apply(vec![Write::Delete {
        kind: Kind::Thing,
        key: "cas".into(),
        expected_version: 2,
    }])
    .await
    .expect("delete");
    assert!(s.get(Kind::Thing, "cas").await.expect("get").is_none());
}

/// A batch with one failing write leaves nothing behind.
pub async fn batches_are_atomic(s: &dyn Store) {
    let r = s
        .apply(vec![
            Write::Insert(doc("atomic-1", "1", None, "{}")),
            Write::Update {
                doc: doc("missing", "1", None, "{}"),
                expected_version: 1,
            },
        ])
        .await;
    assert_eq!(r, Err(DomainError::Stale));
    assert!(s.get(Kind::Thing, "atomic-1").await.expect("get").is_none());

    // A duplicate insert after a successful compare-and-set undoes the update too.
    s.apply(vec![Write::Insert(doc("atomic-2", "1", None, "old"))])
        .await
        .expect("insert");
    let r = s
        .apply(vec![
            Write::Update {
                doc: doc("atomic-2", "1", None, "new"),
                expected_version: 1,
            },
            Write::Insert(doc("atomic-2", "1", None, "dup")),
        ])
        .await;
    assert!(matches!(r, Err(DomainError::AlreadyExists { .. })), "{r:?}");
    let kept = s
        .get(Kind::Thing, "atomic-2")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((kept.version, kept.doc.body.as_str()), (1, "old"));

    // Three writes that all hold commit together.
    s.apply(vec![
        Write::Update {
            doc: doc("atomic-2", "1", None, "newer"),
            expected_version: 1,
        },
        Write::Insert(doc("atomic-3", "1", None, "{}")),
        Write::InsertIfAbsent(doc("atomic-1", "1", None, "{}")),
    ])
    .await
    .expect("batch");
    assert_eq!(
        s.get(Kind::Thing, "atomic-2")
            .await
            .expect("get")
            .expect("present")
            .version,
        2
    );
    assert!(s.get(Kind::Thing, "atomic-3").await.expect("get").is_some());
    assert!(s.get(Kind::Thing, "atomic-1").await.expect("get").is_some());
}

/// Many changes at once, some failing: an engine that commits them in groups must still answer
/// each exactly as if it ran alone, and keep nothing of a failed one.
pub async fn concurrent_changes_answer_alone(s: Arc<dyn Store>) {
    const N: usize = 48;
    let key = |i: usize| format!("group-{i}");
    let inserts = (0..N)
        .map(|i| Write::Insert(watched(Kind::Certificate, &key(i), "0")))
        .collect();
    s.apply(inserts).await.expect("insert");
    let mut rx = s.changes();
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Expect {
        Ok,
        Stale,
        Exists,
        /// One of the two updates of the same version wins.
        Race,
    }
    let mut tasks = Vec::new();
    let mut spawn = |expect: Expect, writes: Vec<Write>| {
        let s = s.clone();
        tasks.push((expect, tokio::spawn(async move { s.apply(writes).await })));
    };
    let update = |i: usize, body: &str, expected_version| Write::Update {
        doc: watched(Kind::Certificate, &key(i), body),
        expected_version,
    };
    for i in 0..N {
        match i % 4 {
            0 => spawn(Expect::Ok, vec![update(i, "1", 1)]),
            1 => {
                spawn(Expect::Race, vec![update(i, "a", 1)]);
                spawn(Expect::Race, vec![update(i, "b", 1)]);
            }
            2 => {
                spawn(Expect::Ok, vec![update(i, "1", 1)]);
                spawn(
                    Expect::Exists,
                    vec![Write::Insert(watched(Kind::Certificate, &key(i), "dup"))],
                );
                // A two-write change whose second write fails keeps nothing of the first.
                spawn(
                    Expect::Stale,
                    vec![
                        Write::Insert(doc(&format!("orphan-{i}"), "1", None, "{}")),
                        update(i, "never", 7),
                    ],
                );
            }
            _ => {
                spawn(Expect::Stale, vec![update(i, "never", 9)]);
                spawn(
                    Expect::Ok,
                    vec![
                        Write::Insert(doc(&format!("pair-{i}"), "1", None, "{}")),
                        Write::InsertIfAbsent(watched(Kind::Certificate, &key(i), "kept")),
                    ],
                );
            }
        }
    }
    let mut race_wins = 0;
    for (n, (expect, t)) in tasks.into_iter().enumerate() {
        let got = t.await.expect("join");
        match (expect, &got) {
            (Expect::Ok, Ok(())) | (Expect::Stale, Err(DomainError::Stale)) => {}
            (Expect::Exists, Err(DomainError::AlreadyExists { .. })) => {}
            (Expect::Race, Ok(())) => race_wins += 1,
            (Expect::Race, Err(DomainError::Stale)) => {}
            _ => panic!("change {n}: expected {expect:?}, got {got:?}"),
        }
    }
    assert_eq!(race_wins, N / 4, "one winner per race");
    let mut announced = 0;
    for i in 0..N {
        let got = s
            .get(Kind::Certificate, &key(i))
            .await
            .expect("get")
            .expect("present");
        let want = match i % 4 {
            0 | 2 => (2, "1"),
            1 => (2, if got.doc.body == "a" { "a" } else { "b" }),
            _ => (1, "0"),
        };
        assert_eq!((got.version, got.doc.body.as_str()), want, "{}", key(i));
        if got.version == 2 {
            announced += 1;
        }
        let orphan = s.get(Kind::Thing, &format!("orphan-{i}")).await;
        assert!(orphan.expect("get").is_none(), "orphan-{i} was kept");
        let pair = s.get(Kind::Thing, &format!("pair-{i}")).await.expect("get");
        assert_eq!(pair.is_some(), i % 4 == 3, "pair-{i}");
    }
    // Every committed update is announced (a "missed" notice of an earlier reset may come
    // first on an engine whose feed is asynchronous).
    let mut seen = 0;
    while seen < announced {
        match next_change(&mut rx).await {
            certplane_core::store::Change::Missed => {}
            certplane_core::store::Change::Changed { kind, .. } => {
                assert_eq!(kind, Kind::Certificate);
                seen += 1;
            }
        }
    }
}

/// Racing compare-and-sets on one record from many tasks: exactly one wins.
pub async fn racing_updates_have_one_winner(s: Arc<dyn Store>) {
    s.apply(vec![Write::Insert(doc("race", "1", None, "0"))])
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.apply(vec![Write::Update {
                doc: doc("race", "1", None, &i.to_string()),
                expected_version: 1,
            }])
            .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(()) => wins += 1,
            Err(DomainError::Stale) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

pub async fn queries_filter_and_page_in_creation_order(s: &dyn Store) {
    for i in 0..5 {
        s.apply(vec![Write::Insert(doc(
            &format!("q{i}"),
            if i % 2 == 0 { "even" } else { "odd" },
            Some("x"),
            "{}",
        ))])
        .await
        .expect("insert");
    }
    let even = Filter {
        account: Some("even".into()),
        ..Filter::default()
    };
    let asc = s
        .query(Kind::Thing, &even, PageQuery::all())
        .await
        .expect("q");
    let keys: Vec<_> = asc.iter().map(|d| d.doc.key.as_str()).collect();
    assert_eq!(keys, ["q0", "q2", "q4"]);
    let desc = s
        .query(
            Kind::Thing,
            &even,
            PageQuery {
                after_seq: None,
                limit: 2,
                ascending: false,
            },
        )
        .await
        .expect("q");
    let keys: Vec<_> = desc.iter().map(|d| d.doc.key.as_str()).collect();
    assert_eq!(keys, ["q4", "q2"]);
    let next = s
        .query(
            Kind::Thing,
            &even,
            PageQuery {
                after_seq: Some(desc[1].seq),
                limit: 2,
                ascending: false,
            },
        )
        .await
        .expect("q");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].doc.key, "q0");
    let by_idx = Filter {
        idx1: Some("x".into()),
        ..Filter::default()
    };
    assert_eq!(s.count(Kind::Thing, &by_idx).await.expect("count"), 5);
    let either = Filter {
        account_or_idx2: Some("odd".into()),
        ..Filter::default()
    };
    assert_eq!(s.count(Kind::Thing, &either).await.expect("count"), 2);
}

/// Counting by a body member: strings are grouped, other kinds and other members ignored.
pub async fn counts_by_body_field(s: &dyn Store) {
    let bodies = [
        ("c1", r#"{"status":"ACTIVE"}"#),
        ("c2", r#"{"status":"ACTIVE","x":1}"#),
        ("c3", r#"{"status":"REVOKED"}"#),
        ("c4", r#"{"status":7}"#),
        ("c5", r#"{"other":"ACTIVE"}"#),
    ];
    for (key, body) in bodies {
        let mut d = doc(key, "1", None, body);
        d.kind = Kind::Policy;
        s.apply(vec![Write::Insert(d)]).await.expect("insert");
    }
    let mut got = s
        .count_by_field(Kind::Policy, "status")
        .await
        .expect("count by field");
    got.sort();
    assert_eq!(got, [("ACTIVE".to_string(), 2), ("REVOKED".to_string(), 1)]);
    assert!(s
        .count_by_field(Kind::Certificate, "status")
        .await
        .expect("empty kind")
        .is_empty());
    assert!(matches!(
        s.count_by_field(Kind::Policy, "a') OR 1=1 --").await,
        Err(DomainError::InvalidInput(_))
    ));
}

pub async fn reset_keeps_credentials(s: &dyn Store) {
    let mut key = doc("k", "1", None, "{}");
    key.kind = Kind::AccessKey;
    s.apply(vec![
        Write::Insert(key),
        Write::Insert(doc("gone", "1", None, "{}")),
    ])
    .await
    .expect("insert");
    s.reset().await.expect("reset");
    assert!(s.get(Kind::AccessKey, "k").await.expect("get").is_some());
    assert!(s.get(Kind::Thing, "gone").await.expect("get").is_none());
}

/// The CRL counter (one document per held CA): a compare-and-set counter that survives a dev
/// reset, since CRL numbers must never go back.
pub async fn crl_counter_survives_reset(s: &dyn Store) {
    let mut counter = doc("ca-1", "", None, "{\"number\":1}");
    counter.kind = Kind::CrlState;
    s.apply(vec![Write::Insert(counter.clone())])
        .await
        .expect("insert");
    counter.body = "{\"number\":2}".into();
    s.apply(vec![Write::Update {
        doc: counter.clone(),
        expected_version: 1,
    }])
    .await
    .expect("update");
    let stale = s
        .apply(vec![Write::Update {
            doc: counter,
            expected_version: 1,
        }])
        .await;
    assert!(matches!(stale, Err(DomainError::Stale)), "{stale:?}");
    s.reset().await.expect("reset");
    let kept = s
        .get(Kind::CrlState, "ca-1")
        .await
        .expect("get")
        .expect("kept across reset");
    assert_eq!(kept.doc.body, "{\"number\":2}");
    assert_eq!(kept.version, 2);
}

/// Single-use keys: the first claim wins until the key expires; expired keys can be claimed
/// again; racing claims of one key have one winner.
pub async fn single_use_keys(s: Arc<dyn Store>) {
    assert!(s.claim_once("n1", 1_000, 2_000).await.expect("claim"));
    assert!(!s.claim_once("n1", 1_500, 2_500).await.expect("replay"));
    assert!(s.claim_once("n2", 1_500, 2_500).await.expect("other key"));
    // Expired (at or after its expiry): claimable again, and then live until the new expiry.
    assert!(s.claim_once("n1", 2_000, 3_000).await.expect("expired"));
    assert!(!s.claim_once("n1", 2_999, 4_000).await.expect("live again"));
    // A purge (a minute later) removes expired keys without touching live ones.
    assert!(s.claim_once("n3", 200_000, 900_000).await.expect("purges"));
    assert!(!s
        .claim_once("n3", 200_001, 900_001)
        .await
        .expect("still live"));

    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_once("raced", 10_000, 20_000).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join").expect("claim") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub(crate) fn watched(kind: Kind, key: &str, body: &str) -> Doc {
    Doc {
        kind,
        key: key.into(),
        account: "1".into(),
        region: "r".into(),
        idx1: None,
        idx2: None,
        body: body.into(),
    }
}

pub(crate) async fn next_change(
    rx: &mut tokio::sync::broadcast::Receiver<certplane_core::store::Change>,
) -> certplane_core::store::Change {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a change within 10 s")
        .expect("the feed is open")
}

/// Inserts a watched document and expects exactly its change next on `rx`.
pub async fn expect_change_after_insert(
    s: &dyn Store,
    rx: &mut tokio::sync::broadcast::Receiver<certplane_core::store::Change>,
    key: &str,
) {
    use certplane_core::store::Change;
    s.apply(vec![Write::Insert(watched(Kind::Certificate, key, "{}"))])
        .await
        .expect("insert");
    assert_eq!(
        next_change(rx).await,
        Change::Changed {
            kind: Kind::Certificate,
            key: key.into()
        }
    );
}

/// Committed changes to watched kinds are announced, in commit order, after the commit;
/// unwatched kinds and rolled-back batches announce nothing.
pub async fn change_feed(s: &dyn Store) {
    use certplane_core::store::Change;
    let mut rx = s.changes();
    let changed = |kind, key: &str| Change::Changed {
        kind,
        key: key.into(),
    };
    // Not watched: no event (the next one seen is the certificate below).
    s.apply(vec![Write::Insert(doc("feed-thing", "1", None, "{}"))])
        .await
        .expect("insert thing");
    // Rolled back: no event.
    let r = s
        .apply(vec![
            Write::Insert(watched(Kind::Certificate, "feed-rolled-back", "{}")),
            Write::Update {
                doc: doc("feed-missing", "1", None, "{}"),
                expected_version: 1,
            },
        ])
        .await;
    assert_eq!(r, Err(DomainError::Stale));
    expect_change_after_insert(s, &mut rx, "feed-cert").await;
    // One batch touching two watched documents: both, and the store shows the new state when
    // the event arrives.
    s.apply(vec![
        Write::Update {
            doc: watched(Kind::Certificate, "feed-cert", "{\"v\":2}"),
            expected_version: 1,
        },
        Write::Insert(watched(Kind::CaCertificate, "1:r:feed-ca", "{}")),
    ])
    .await
    .expect("batch");
    assert_eq!(
        next_change(&mut rx).await,
        changed(Kind::Certificate, "feed-cert")
    );
    assert_eq!(
        next_change(&mut rx).await,
        changed(Kind::CaCertificate, "1:r:feed-ca")
    );
    let now = s
        .get(Kind::Certificate, "feed-cert")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(now.doc.body, "{\"v\":2}");
    s.apply(vec![Write::Delete {
        kind: Kind::Certificate,
        key: "feed-cert".into(),
        expected_version: 2,
    }])
    .await
    .expect("delete");
    assert_eq!(
        next_change(&mut rx).await,
        changed(Kind::Certificate, "feed-cert")
    );
    // A reset drops everything a subscriber cached.
    s.reset().await.expect("reset");
    assert_eq!(next_change(&mut rx).await, Change::Missed);
}

/// A store that sees every change counts a change of a watched kind before `apply` returns, so
/// a cache checked right after never serves what the caller just changed.
pub async fn generations_move_before_apply_returns(s: &dyn Store) {
    let g = |k| s.generation(k).expect("this store sees every change");
    let (user, policy) = (g(Kind::User), g(Kind::IamPolicy));
    s.apply(vec![Write::Insert(watched(Kind::User, "gen-user", "{}"))])
        .await
        .expect("insert");
    assert_ne!(g(Kind::User), user);
    s.apply(vec![Write::Update {
        doc: watched(Kind::User, "gen-user", "{\"v\":2}"),
        expected_version: 1,
    }])
    .await
    .expect("update");
    s.apply(vec![Write::Insert(watched(
        Kind::IamPolicy,
        "gen-policy",
        "{}",
    ))])
    .await
    .expect("insert");
    assert_ne!(g(Kind::IamPolicy), policy);
}
