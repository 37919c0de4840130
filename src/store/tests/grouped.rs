//! Many writes at once, on both stores: on PostgreSQL through the group writer, with its
//! failures, its NUL handling and its life with the runtime and the store.

use std::sync::Arc;

use super::*;

/// What one task of a burst stored, to be read back afterwards.
struct Stored {
    grant: GrantRecord,
    access: Option<AccessTokenRecord>,
    refresh: Option<RefreshTokenRecord>,
}

/// 200 requests at once, storing grants, codes and tokens every way a request does (on
/// PostgreSQL they share transactions): every one succeeds and is there afterwards, each
/// grant kept alive as long as its refresh tokens, the longest of several in the same burst.
async fn many_writes_at_once(store: Arc<dyn Store>) {
    // The real time: rows dated in the past would be swept by another test's server.
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let shared = grant(&c.client_id, 5, now);
    store.create_grant(&shared).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let (store, c, shared) = (store.clone(), c.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let g = grant(&c.client_id, 1000 + i, now);
            let (a, r) = (access(&g, now), refresh(&g, now, 3600 + i));
            match i % 5 {
                // A token exchange, a device or CIBA grant: a new grant with its tokens.
                0 => {
                    store
                        .create_grant_with_tokens(&g, Some(&a), Some(&r))
                        .await
                        .unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: Some(r),
                    }
                }
                // client_credentials.
                1 => {
                    store
                        .create_grant_with_tokens(&g, Some(&a), None)
                        .await
                        .unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: None,
                    }
                }
                // A login: the grant with its code, then the code's tokens.
                2 => {
                    let code = CodeRecord {
                        code_hash: random_bytes::<32>().to_vec(),
                        grant_id: g.id.clone(),
                        redirect_uri: "https://a.example/cb".into(),
                        code_challenge: Some("challenge".into()),
                        expires_at: now + 60,
                    };
                    store.create_grant_with_code(&g, &code).await.unwrap();
                    let redeemed = store
                        .redeem_code(&code.code_hash, &c.client_id, now)
                        .await
                        .unwrap();
                    assert!(matches!(redeemed, RedeemOutcome::Redeemed(_)));
                    store.store_tokens(Some(&a), Some(&r)).await.unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: Some(r),
                    }
                }
                3 => {
                    store.create_grant(&g).await.unwrap();
                    store.store_tokens(Some(&a), None).await.unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: None,
                    }
                }
                // Refresh tokens of one grant, in many requests of the burst, the longest
                // neither first nor last.
                _ => {
                    let r = refresh(&shared, now, 3600 + (i * 37) % 200);
                    store.store_tokens(None, Some(&r)).await.unwrap();
                    Stored {
                        grant: shared,
                        access: None,
                        refresh: Some(r),
                    }
                }
            }
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.unwrap());
    }
    for s in &stored {
        let g = store
            .get_grant(&s.grant.id)
            .await
            .unwrap()
            .expect("a grant");
        assert_eq!(
            (&g.client_id, g.user_id, &g.scope),
            (&s.grant.client_id, s.grant.user_id, &s.grant.scope)
        );
        if let Some(a) = &s.access {
            let found = store.get_access_token(&a.token_hash).await.unwrap();
            let found = found.expect("an access token");
            assert!(!found.revoked);
            assert_eq!(
                (&found.record.grant_id, found.record.expires_at),
                (&a.grant_id, a.expires_at)
            );
        }
        if let Some(r) = &s.refresh {
            let found = store.get_refresh_token(&r.token_hash).await.unwrap();
            let found = found.expect("a refresh token");
            assert!(!found.used);
            assert_eq!(found.grant.id, r.grant_id);
            assert_eq!(found.record.expires_at, r.expires_at);
            assert!(g.expires_at >= r.expires_at, "the grant outlives its token");
        }
    }
    // The grant of many refresh tokens lives as long as the longest.
    let longest = stored
        .iter()
        .filter(|s| s.grant.id == shared.id)
        .filter_map(|s| s.refresh.as_ref().map(|r| r.expires_at))
        .max()
        .unwrap();
    let g = store.get_grant(&shared.id).await.unwrap().unwrap();
    assert_eq!(g.expires_at, longest);
    // A grant is never stored with another grant's token.
    let g = grant(&c.client_id, 7, now);
    let other = access(&shared, now);
    assert!(matches!(
        store.create_grant_with_tokens(&g, Some(&other), None).await,
        Err(StoreError::Internal(_))
    ));
    assert!(store.get_grant(&g.id).await.unwrap().is_none());
}

/// A burst in which two writes reuse a stored token hash: those two get `Conflict` and store
/// nothing (not even their grant), every other write of the burst succeeds (on PostgreSQL:
/// their group was rolled back and each write ran again alone).
async fn one_conflict_in_a_burst(store: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let first = grant(&c.client_id, 1, now);
    let (taken_access, taken_refresh) = (access(&first, now), refresh(&first, now, 3600));
    store
        .create_grant_with_tokens(&first, Some(&taken_access), Some(&taken_refresh))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        let (c, taken_access, taken_refresh) =
            (c.clone(), taken_access.clone(), taken_refresh.clone());
        tasks.push(tokio::spawn(async move {
            let g = grant(&c.client_id, 100 + i, now);
            let (mut a, mut r) = (access(&g, now), refresh(&g, now, 3600));
            match i {
                40 => a.token_hash = taken_access.token_hash,
                60 => r.token_hash = taken_refresh.token_hash,
                _ => {}
            }
            let outcome = store.create_grant_with_tokens(&g, Some(&a), Some(&r)).await;
            (i, g, a, outcome)
        }));
    }
    for task in tasks {
        let (i, g, a, outcome) = task.await.unwrap();
        if i == 40 || i == 60 {
            assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "{outcome:?}"
            );
            assert!(
                store.get_grant(&g.id).await.unwrap().is_none(),
                "all or nothing"
            );
        } else {
            outcome.unwrap();
            assert!(store.get_grant(&g.id).await.unwrap().is_some());
            let found = store
                .get_access_token(&a.token_hash)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.record.grant_id, g.id);
        }
    }
    // The tokens that were there first are untouched.
    let found = store
        .get_access_token(&taken_access.token_hash)
        .await
        .unwrap();
    assert_eq!(found.unwrap().record.grant_id, first.id);
    let found = store
        .get_refresh_token(&taken_refresh.token_hash)
        .await
        .unwrap();
    assert_eq!(found.unwrap().grant.id, first.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writes_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    many_writes_at_once(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writes_at_once_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    many_writes_at_once(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conflict_in_a_burst_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    one_conflict_in_a_burst(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conflict_in_a_burst_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    one_conflict_in_a_burst(Arc::new(store)).await;
}

/// On PostgreSQL a burst of writes is committed in fewer transactions than it has writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_committed_in_groups_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let before = store.groups_committed();
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, c) = (shared.clone(), c.clone());
            tokio::spawn(async move {
                let g = grant(&c.client_id, i, now);
                let a = access(&g, now);
                store.create_grant_with_tokens(&g, Some(&a), None).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let groups = store.groups_committed() - before;
    eprintln!("200 writes in {groups} transactions");
    assert!((1..200).contains(&groups), "{groups} groups");
}

/// Text with NUL, through the group writer: stored as U+FFFD, as the single-row statements
/// store it, and found again by the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_grouped_writes_is_stored_as_replacement_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let now = crate::clock::system_now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut g = grant(&format!("app\0{i}"), i, now);
                g.id = format!("{}\0", g.id);
                g.scope = "openid\0x".into();
                g.amr = "telegram\0bot".into();
                g.nonce = Some("n\0".into());
                let mut a = access(&g, now);
                a.scope = "s\0".into();
                let r = refresh(&g, now, 3600);
                let code = CodeRecord {
                    code_hash: random_bytes::<32>().to_vec(),
                    grant_id: g.id.clone(),
                    redirect_uri: "https://a.example/\0".into(),
                    code_challenge: Some("c\0".into()),
                    expires_at: now + 60,
                };
                if i % 2 == 0 {
                    store
                        .create_grant_with_tokens(&g, Some(&a), Some(&r))
                        .await
                        .unwrap();
                } else {
                    store.create_grant_with_code(&g, &code).await.unwrap();
                    store.store_tokens(Some(&a), Some(&r)).await.unwrap();
                }
                (g, a, r, code, i % 2 == 1)
            })
        })
        .collect();
    for task in tasks {
        let (g, a, r, code, with_code) = task.await.unwrap();
        let stored = store
            .get_grant(&g.id)
            .await
            .unwrap()
            .expect("found by its id");
        assert!(!stored.id.contains('\0') && stored.id.ends_with('\u{FFFD}'));
        assert_eq!(stored.client_id, g.client_id.replace('\0', "\u{FFFD}"));
        assert_eq!(stored.scope, "openid\u{FFFD}x");
        assert_eq!(stored.amr, "telegram\u{FFFD}bot");
        assert_eq!(stored.nonce.as_deref(), Some("n\u{FFFD}"));
        let found = store
            .get_access_token(&a.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.record.grant_id, stored.id);
        assert_eq!(found.record.client_id, stored.client_id);
        assert_eq!(found.record.scope, "s\u{FFFD}");
        let found = store
            .get_refresh_token(&r.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.grant.id, stored.id);
        if with_code {
            let redeemed = store
                .redeem_code(&code.code_hash, &g.client_id, now)
                .await
                .unwrap();
            let RedeemOutcome::Redeemed(redeemed) = redeemed else {
                panic!("the code is found: {redeemed:?}");
            };
            assert_eq!(redeemed.grant_id, stored.id);
            assert_eq!(redeemed.redirect_uri, "https://a.example/\u{FFFD}");
            assert_eq!(redeemed.code_challenge.as_deref(), Some("c\u{FFFD}"));
        }
    }
}

/// The group writer runs on the runtime of the first write; when that runtime is gone (and the
/// writer with it), a later write on another runtime is answered, never left waiting: stored
/// by a writer started again, or refused as unavailable when the pool's connections went with
/// the old runtime.
#[test]
fn a_write_after_the_writers_runtime_ended_is_answered_on_postgres() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let Some(store) = first.block_on(postgres()) else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    first.block_on(async {
        store.create_client(&c).await.unwrap();
        store
            .create_grant(&grant(&c.client_id, 1, now))
            .await
            .unwrap();
    });
    drop(first);
    let second = runtime();
    let g = grant(&c.client_id, 2, now);
    let outcome = second.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(20), store.create_grant(&g)).await
    });
    match outcome.expect("answered, not left waiting") {
        Ok(()) => {
            // Read through a store of the second runtime: the first store's other pool may
            // have gone with the first runtime.
            let stored = second.block_on(async {
                let fresh = postgres().await.expect("PostgreSQL is there");
                fresh.get_grant(&g.id).await.unwrap()
            });
            assert!(stored.is_some(), "answered Ok, so stored");
        }
        Err(e) => assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}"),
    }
}

/// The group writer is one task, shared by the store's copies, that ends when the last copy
/// is dropped.
#[tokio::test]
async fn the_group_writer_ends_with_its_store_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let copy = store.clone();
    store
        .create_grant(&grant(&c.client_id, 1, now))
        .await
        .unwrap();
    copy.create_grant(&grant(&c.client_id, 2, now))
        .await
        .unwrap();
    let probe = store.writer_probe();
    drop(store);
    copy.create_grant(&grant(&c.client_id, 3, now))
        .await
        .unwrap();
    assert!(probe.strong_count() > 0, "a copy keeps the writer");
    drop(copy);
    for _ in 0..100 {
        if probe.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the writer outlived its store");
}

/// Rate limit hits from two nodes at once, many requests per node counted by one statement:
/// every request sees the count it would have seen alone (on a shared window, each count from
/// 1 to the total exactly once), a request's own windows count apart, and the totals hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_hits_at_once_are_each_counted_once_on_postgres() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    // Ending in the future: no sweep of another test takes these rows meanwhile.
    let now = crate::clock::system_now();
    let window = move |key: [u8; 32]| RateWindow {
        key_hash: key,
        window_start: now,
        expires_at: now + 600,
    };
    let (shared, half) = (random_bytes::<32>(), random_bytes::<32>());
    let before = one.counted_and_looked_up().0 + two.counted_and_looked_up().0;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let own = random_bytes::<32>();
            tokio::spawn(async move {
                // Half of the requests also count against a second shared window, listed
                // first; every one against a window of its own.
                let mut windows = vec![window(shared), window(own)];
                if i % 3 == 0 {
                    windows.insert(0, window(half));
                }
                let counts = store.add_rate_hits(&windows).await.unwrap();
                assert_eq!(counts.len(), windows.len());
                (i % 3 == 0, counts)
            })
        })
        .collect();
    let (mut on_shared, mut on_half) = (Vec::new(), Vec::new());
    for task in tasks {
        let (with_half, counts) = task.await.unwrap();
        let mut counts = counts.into_iter();
        if with_half {
            on_half.push(counts.next().unwrap());
        }
        on_shared.push(counts.next().unwrap());
        assert_eq!(counts.next(), Some(1), "a window of its own starts at 1");
    }
    on_shared.sort_unstable();
    on_half.sort_unstable();
    assert_eq!(on_shared, (1..=300).collect::<Vec<u32>>());
    assert_eq!(on_half, (1..=100).collect::<Vec<u32>>());
    assert_eq!(one.read_rate_hits(&window(shared)).await.unwrap(), 300);
    assert_eq!(two.read_rate_hits(&window(half)).await.unwrap(), 100);
    let statements = one.counted_and_looked_up().0 + two.counted_and_looked_up().0 - before;
    eprintln!("300 requests counted by {statements} statements");
    assert!((2..300).contains(&statements), "{statements} statements");
}

/// Lookups at once, some for the same key, some for keys that do not exist, are answered
/// each with its own row, by fewer statements than lookups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_at_once_each_find_their_own_row_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let base = i64::from(u32::from_le_bytes(random_bytes::<4>())) << 16;
    let mut tokens = Vec::new();
    for i in 0..20 {
        let user = UserRecord {
            telegram_id: base + i,
            first_name: format!("User {i}"),
            last_name: None,
            username: Some(format!("user_{i}")),
            photo_url: None,
            language_code: None,
            is_premium: false,
            phone_number: None,
            created_at: now,
            updated_at: now,
            groups: None,
        };
        store.upsert_user(&user).await.unwrap();
        let g = grant(&c.client_id, base + i, now);
        let a = access(&g, now);
        store
            .create_grant_with_tokens(&g, Some(&a), None)
            .await
            .unwrap();
        if i == 3 {
            store.revoke_grant(&g.id, now).await.unwrap();
        }
        tokens.push(a);
    }
    let before = store.counted_and_looked_up().1;
    let tasks: Vec<_> = (0..200_usize)
        .map(|i| {
            let (store, tokens) = (store.clone(), tokens.clone());
            tokio::spawn(async move {
                let n = i % 25;
                match tokens.get(n) {
                    Some(a) => {
                        let found = store.get_access_token(&a.token_hash).await.unwrap();
                        let found = found.expect("an existing token is found");
                        assert_eq!(found.record.token_hash, a.token_hash);
                        assert_eq!(found.record.grant_id, a.grant_id);
                        assert_eq!(found.revoked, n == 3, "token {n}");
                        let user = store.get_user(a.user_id.unwrap()).await.unwrap();
                        assert_eq!(user.unwrap().first_name, format!("User {n}"));
                    }
                    None => {
                        let missing = random_bytes::<32>();
                        assert!(store.get_access_token(&missing).await.unwrap().is_none());
                        assert!(store.get_user(-(n as i64)).await.unwrap().is_none());
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let statements = store.counted_and_looked_up().1 - before;
    eprintln!("400 lookups by {statements} statements");
    assert!((2..400).contains(&statements), "{statements} statements");
}

/// Codes and proofs used at once, many of them several times and by two nodes: each is taken
/// by exactly one request; a code by another client than its grant's is not taken; the other
/// requests hear that it was used.
async fn single_use_at_once(one: Arc<dyn Store>, two: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let c = client(now);
    one.create_client(&c).await.unwrap();
    let mut codes = Vec::new();
    for i in 0..20 {
        let g = grant(&c.client_id, i, now);
        let code = CodeRecord {
            code_hash: random_bytes::<32>().to_vec(),
            grant_id: g.id.clone(),
            redirect_uri: "https://a.example/cb".into(),
            code_challenge: None,
            expires_at: now + 60,
        };
        one.create_grant_with_code(&g, &code).await.unwrap();
        codes.push(code);
    }
    let proofs: Vec<Vec<u8>> = (0..20).map(|_| random_bytes::<32>().to_vec()).collect();
    let tasks: Vec<_> = (0..200_usize)
        .map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let (code, proof) = (codes[i % 20].clone(), proofs[i % 20].clone());
            let client_id = if i % 7 == 0 {
                "another-client".to_owned()
            } else {
                c.client_id.clone()
            };
            tokio::spawn(async move {
                let redeemed = store.redeem_code(&code.code_hash, &client_id, now).await;
                let consumed = store.consume_proof(&proof, now + 60).await.unwrap();
                (i % 20, client_id, redeemed.unwrap(), consumed)
            })
        })
        .collect();
    let (mut redeemed, mut consumed) = (vec![0; 20], vec![0; 20]);
    for task in tasks {
        let (n, client_id, outcome, new) = task.await.unwrap();
        match outcome {
            RedeemOutcome::Redeemed(code) => {
                assert_eq!(client_id, c.client_id, "taken only by its grant's client");
                assert_eq!(code.code_hash, codes[n].code_hash);
                assert_eq!(code.grant_id, codes[n].grant_id);
                redeemed[n] += 1;
            }
            RedeemOutcome::AlreadyUsed { grant_id } => {
                assert_eq!(grant_id, codes[n].grant_id);
                assert_eq!(client_id, c.client_id);
            }
            RedeemOutcome::NotFound => assert_ne!(client_id, c.client_id),
        }
        consumed[n] += usize::from(new);
    }
    assert_eq!(redeemed, vec![1; 20], "each code taken once");
    assert_eq!(consumed, vec![1; 20], "each proof consumed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    single_use_at_once(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_at_once_on_postgres() {
    let (Some(one), Some(two)) = (postgres().await, postgres().await) else {
        return;
    };
    single_use_at_once(Arc::new(one), Arc::new(two)).await;
}

/// Users saved and pending authorizations updated at once, several requests for the same row
/// in a burst: each request hears what it would have heard alone (when its user was blocked;
/// whether its pending authorization was there), and every row holds one of the values sent.
async fn saves_at_once(store: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let base = i64::from(u32::from_le_bytes(random_bytes::<4>())) << 16;
    let user = |id: i64, name: String| UserRecord {
        telegram_id: id,
        first_name: name,
        last_name: None,
        username: None,
        photo_url: None,
        language_code: None,
        is_premium: false,
        phone_number: None,
        created_at: now,
        updated_at: now,
        groups: None,
    };
    // Users 0 to 4 exist, and 0 and 1 are blocked.
    for i in 0..5 {
        store
            .upsert_user(&user(base + i, "Before".into()))
            .await
            .unwrap();
    }
    for i in 0..2 {
        assert!(store.block_user(base + i, now).await.unwrap());
    }
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let mut pendings = Vec::new();
    for _ in 0..5 {
        let p = PendingAuthorization {
            id_hash: random_bytes::<32>().to_vec(),
            client_id: c.client_id.clone(),
            request: "{}".into(),
            created_at: now,
            expires_at: now + 600,
        };
        store.create_pending(&p).await.unwrap();
        pendings.push(p);
    }
    let tasks: Vec<_> = (0..100_i64)
        .map(|i| {
            let (store, pendings) = (store.clone(), pendings.clone());
            let saved = user(base + i % 10, format!("Name {i}"));
            tokio::spawn(async move {
                let blocked = store.upsert_user(&saved).await.unwrap();
                assert_eq!(blocked.is_some(), i % 10 < 2, "user {}", i % 10);
                let n = usize::try_from(i % 8).unwrap();
                let id_hash = match pendings.get(n) {
                    Some(p) => p.id_hash.clone(),
                    None => random_bytes::<32>().to_vec(),
                };
                let found = store
                    .update_pending(&id_hash, &format!("{{\"n\":{i}}}"))
                    .await
                    .unwrap();
                assert_eq!(found, n < 5, "pending {n}");
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for i in 0..10 {
        let saved = store.get_user(base + i).await.unwrap().expect("saved");
        let n: i64 = saved.first_name["Name ".len()..].parse().unwrap();
        assert_eq!(n % 10, i, "user {i} holds one of its own names");
    }
    for (n, p) in pendings.iter().enumerate() {
        let found = store.get_pending(&p.id_hash, now).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&found.request).unwrap();
        assert_eq!(v["n"].as_i64().unwrap() % 8, n as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    saves_at_once(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_at_once_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    saves_at_once(Arc::new(store)).await;
}
