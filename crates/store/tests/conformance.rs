//! The store conformance suite: every test here runs unchanged against the
//! SQLite backend and against a real etcd (Debian's `etcd-server`, started
//! on a free loopback port for each test and stopped afterwards), so the API
//! server above can rely on one set of semantics.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use capstan_store::{Event, KeyValue, ListOptions, Revision, Store, StoreError, WatchStream};
use futures::StreamExt;

/// Runs each listed test against both backends.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = capstan_store::sqlite::SqliteStore::open(&dir.path().join("state.db"))
                        .await
                        .expect("open sqlite");
                    super::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let server = capstan_store::testing::EtcdServer::start().expect("start etcd");
                    let store = capstan_store::etcd::EtcdStore::connect(&[server.endpoint().to_string()])
                        .await
                        .expect("connect to etcd");
                    super::$test(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

conformance!(
    create_update_delete,
    cas_conflicts_under_contention,
    revisions_only_grow,
    watch_order_under_concurrent_writers,
    watch_resumes_from_a_revision,
    watch_carries_previous_values,
    compaction_and_the_compacted_error,
    automatic_compaction_bounds_history,
    reads_at_past_revisions,
    prefix_isolation,
    values_of_one_mebibyte,
    list_pages_with_start_after,
    listing_100k_keys_in_pages,
    future_revisions_are_refused,
);

type Shared = Arc<dyn Store>;

const WATCH_TIMEOUT: Duration = Duration::from_secs(20);

async fn next_event(watch: &mut WatchStream) -> Event {
    tokio::time::timeout(WATCH_TIMEOUT, watch.next())
        .await
        .expect("watch event within 20 s")
        .expect("watch stream ended")
        .expect("watch event is not an error")
}

async fn collect_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(watch).await);
    }
    events
}

/// The first outcome of a watch: an error from the call or as first item.
async fn watch_error(store: &Shared, prefix: &str, after: Revision) -> Option<StoreError> {
    match store.watch(prefix, after).await {
        Err(err) => Some(err),
        Ok(mut watch) => match tokio::time::timeout(Duration::from_secs(2), watch.next()).await {
            Ok(Some(Err(err))) => Some(err),
            _ => None,
        },
    }
}

async fn create_update_delete(store: Shared) {
    let key = "/registry/configmaps/default/a";
    let r1 = store.create(key, b"one".to_vec()).await.unwrap();
    let (kv, at) = store.get(key, None).await.unwrap();
    let kv = kv.expect("created key is readable");
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"one"[..], r1, r1)
    );
    assert!(at >= r1);

    let err = store.create(key, b"again".to_vec()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");

    let r2 = store.update(key, b"two".to_vec(), r1).await.unwrap();
    assert!(r2 > r1);
    let kv = store.get(key, None).await.unwrap().0.unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"two"[..], r1, r2)
    );

    let err = store.delete(key, Some(r1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let (r3, prev) = store.delete(key, Some(r2)).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(prev.value, b"two");
    assert_eq!(store.get(key, None).await.unwrap().0, None);

    let err = store.update(key, b"x".to_vec(), r2).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store.delete(key, None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    // Unconditional delete of a present key.
    store.create(key, b"three".to_vec()).await.unwrap();
    let (_, prev) = store.delete(key, None).await.unwrap();
    assert_eq!(prev.value, b"three");
}

/// 16 tasks increment one counter by read-modify-CAS; every lost race must
/// be reported as a conflict carrying the current value, so no increment
/// is lost and the final count is exact.
async fn cas_conflicts_under_contention(store: Shared) {
    const TASKS: usize = 16;
    const INCREMENTS: usize = 25;
    let key = "/registry/counters/c";
    store.create(key, b"0".to_vec()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            let mut current = store.get(key, None).await.unwrap().0.unwrap();
            for _ in 0..INCREMENTS {
                loop {
                    let n: u64 = std::str::from_utf8(&current.value).unwrap().parse().unwrap();
                    let next = (n + 1).to_string().into_bytes();
                    match store.update(key, next.clone(), current.mod_revision).await {
                        Ok(rev) => {
                            current = KeyValue {
                                value: next,
                                mod_revision: rev,
                                ..current
                            };
                            break;
                        }
                        Err(StoreError::Conflict {
                            current: latest,
                            expected,
                            ..
                        }) => {
                            assert_eq!(expected, current.mod_revision);
                            assert!(latest.mod_revision > current.mod_revision);
                            current = *latest;
                            conflicts += 1;
                        }
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let value = store.get(key, None).await.unwrap().0.unwrap().value;
    assert_eq!(String::from_utf8(value).unwrap(), (TASKS * INCREMENTS).to_string());
    // 16 racing writers on one key cannot all win every round.
    assert!(conflicts > 0, "no CAS conflict was ever reported");
}

async fn revisions_only_grow(store: Shared) {
    let mut last = store.current_revision().await.unwrap();
    for i in 0..20 {
        let key = format!("/registry/pods/default/p{i}");
        let rev = store.create(&key, vec![1]).await.unwrap();
        assert!(rev > last, "revision {rev} after {last}");
        last = rev;
        // A failed write does not consume a revision.
        store.create(&key, vec![2]).await.unwrap_err();
        assert_eq!(store.current_revision().await.unwrap(), rev);
    }
}

async fn watch_order_under_concurrent_writers(store: Shared) {
    const WRITERS: usize = 16;
    const WRITES: usize = 40;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/registry/pods/", start).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..WRITES {
                let key = format!("/registry/pods/w{w}/{i}");
                revs.push((store.create(&key, i.to_string().into_bytes()).await.unwrap(), key));
            }
            revs
        }));
    }
    let mut written = BTreeMap::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    let events = collect_events(&mut watch, WRITERS * WRITES).await;
    let seen: BTreeMap<Revision, String> = events.iter().map(|e| (e.revision(), e.key().to_string())).collect();
    assert_eq!(seen, written, "the watch saw exactly the acknowledged writes");
    let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "events in revision order");
}

async fn watch_resumes_from_a_revision(store: Shared) {
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(store.create(&format!("/registry/leases/l{i}"), vec![i]).await.unwrap());
    }
    // Resume after the fifth write: exactly the last five, then live ones.
    let mut watch = store.watch("/registry/leases/", revs[4]).await.unwrap();
    let replayed = collect_events(&mut watch, 5).await;
    assert_eq!(replayed.iter().map(Event::revision).collect::<Vec<_>>(), revs[5..]);
    let live = store.create("/registry/leases/live", vec![42]).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), live);

    // A watch from the current revision sees only what comes next.
    let mut tail = store.watch("/registry/leases/", live).await.unwrap();
    let next = store.create("/registry/leases/next", vec![7]).await.unwrap();
    assert_eq!(next_event(&mut tail).await.revision(), next);
}

async fn watch_carries_previous_values(store: Shared) {
    let key = "/registry/services/default/web";
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/registry/services/", start).await.unwrap();
    let r1 = store.create(key, b"v1".to_vec()).await.unwrap();
    let r2 = store.update(key, b"v2".to_vec(), r1).await.unwrap();
    let (r3, _) = store.delete(key, None).await.unwrap();
    match collect_events(&mut watch, 3).await.as_slice() {
        [
            Event::Put {
                kv: created,
                prev: None,
            },
            Event::Put {
                kv: updated,
                prev: Some(before),
            },
            Event::Delete {
                revision,
                prev: deleted,
            },
        ] => {
            assert_eq!((created.value.as_slice(), created.mod_revision), (&b"v1"[..], r1));
            assert_eq!((updated.value.as_slice(), updated.create_revision), (&b"v2"[..], r1));
            assert_eq!((before.value.as_slice(), before.mod_revision), (&b"v1"[..], r1));
            assert_eq!(*revision, r3);
            assert_eq!(
                (deleted.key.as_str(), deleted.value.as_slice(), deleted.mod_revision),
                (key, &b"v2"[..], r2)
            );
        }
        other => panic!("unexpected events {other:?}"),
    }
}

async fn compaction_and_the_compacted_error(store: Shared) {
    let key = "/registry/leases/node-1";
    let mut revs = vec![store.create(key, b"0".to_vec()).await.unwrap()];
    for i in 1..10u8 {
        let rev = store.update(key, vec![b'0' + i], *revs.last().unwrap()).await.unwrap();
        revs.push(rev);
    }
    let target = revs[5];
    store.compact(target).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), target);

    // At the compacted revision: still readable, with the value of then.
    let (kv, at) = store.get(key, Some(target)).await.unwrap();
    assert_eq!((kv.unwrap().value, at), (b"5".to_vec(), target));
    let err = store.get(key, Some(target - 1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { requested, compacted } if requested == target - 1 && compacted == target),
        "{err:?}"
    );
    let old = ListOptions {
        revision: Some(revs[1]),
        ..Default::default()
    };
    let err = store.list("/registry/leases/", &old).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");

    // Watches needing a compacted revision fail; from the compacted one on, they work.
    for before in [revs[1], target - 1] {
        let err = watch_error(&store, "/registry/leases/", before).await;
        assert!(
            matches!(err, Some(StoreError::Compacted { .. })),
            "after {before}: {err:?}"
        );
    }
    let mut watch = store.watch("/registry/leases/", target).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), revs[6]);

    // Compacting again to an older revision is harmless; to the future, refused.
    store.compact(revs[2]).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), target);
    let current = store.current_revision().await.unwrap();
    let err = store.compact(current + 100).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    // Data survives compaction.
    assert_eq!(store.get(key, None).await.unwrap().0.unwrap().value, b"9");
}

/// The compaction loop the server runs: with a 1 s window it must compact
/// a busy store within a few seconds.
async fn automatic_compaction_bounds_history(store: Shared) {
    let policy = capstan_store::CompactionPolicy {
        window: Duration::from_secs(1),
        interval: Duration::from_millis(200),
        min_retained: 10,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let compactor = tokio::spawn(capstan_store::compaction::run(store.clone(), policy, stopped));
    let key = "/registry/leases/churn";
    let mut rev = store.create(key, vec![0]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while store.compacted_revision().await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing compacted within 15 s");
        for _ in 0..20 {
            rev = store.update(key, vec![1], rev).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let compacted = store.compacted_revision().await.unwrap();
    assert!(compacted <= rev - 10, "kept the newest 10 revisions");
    stop.send(true).unwrap();
    compactor.await.unwrap();
}

async fn reads_at_past_revisions(store: Shared) {
    let a = "/registry/secrets/default/a";
    let b = "/registry/secrets/default/b";
    let ra1 = store.create(a, b"a1".to_vec()).await.unwrap();
    let rb1 = store.create(b, b"b1".to_vec()).await.unwrap();
    let ra2 = store.update(a, b"a2".to_vec(), ra1).await.unwrap();
    let (rb_del, _) = store.delete(b, Some(rb1)).await.unwrap();
    let c = "/registry/secrets/default/c";
    store.create(c, b"c1".to_vec()).await.unwrap();

    let value_at = |key: &'static str, rev: Revision| {
        let store = store.clone();
        async move { store.get(key, Some(rev)).await.unwrap().0.map(|kv| kv.value) }
    };
    assert_eq!(value_at(a, ra1).await, Some(b"a1".to_vec()));
    assert_eq!(value_at(a, ra2).await, Some(b"a2".to_vec()));
    assert_eq!(value_at(b, rb1).await, Some(b"b1".to_vec()));
    assert_eq!(value_at(b, rb_del).await, None);
    assert_eq!(value_at(c, rb_del).await, None);

    let listed = store
        .list(
            "/registry/secrets/",
            &ListOptions {
                revision: Some(rb1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.revision, rb1);
    let kvs: Vec<(&str, &[u8], Revision)> = listed
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_slice(), kv.mod_revision))
        .collect();
    assert_eq!(kvs, vec![(a, &b"a1"[..], ra1), (b, &b"b1"[..], rb1)]);

    let now = store.list("/registry/secrets/", &ListOptions::default()).await.unwrap();
    let keys: Vec<&str> = now.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec![a, c]);
}

async fn prefix_isolation(store: Shared) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/registry/pods/a/", start).await.unwrap();
    store.create("/registry/pods/ab/x", vec![1]).await.unwrap();
    store.create("/registry/pods/a", vec![1]).await.unwrap();
    let inside = store.create("/registry/pods/a/y", vec![2]).await.unwrap();
    store.create("/registry/pods/a0", vec![3]).await.unwrap();

    let listed = store.list("/registry/pods/a/", &ListOptions::default()).await.unwrap();
    let keys: Vec<&str> = listed.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["/registry/pods/a/y"]);
    assert_eq!(next_event(&mut watch).await.revision(), inside);
    let last = store.create("/registry/pods/a/z", vec![4]).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await.revision(),
        last,
        "no event from outside the prefix"
    );
}

async fn values_of_one_mebibyte(store: Shared) {
    let value: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/registry/configmaps/", start).await.unwrap();
    for i in 0..3 {
        store
            .create(&format!("/registry/configmaps/big/{i}"), value.clone())
            .await
            .unwrap();
    }
    let got = store.get("/registry/configmaps/big/1", None).await.unwrap().0.unwrap();
    assert!(got.value == value, "1 MiB value read back intact");
    let listed = store
        .list("/registry/configmaps/big/", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.kvs.len(), 3);
    assert!(listed.kvs.iter().all(|kv| kv.value == value));
    for event in collect_events(&mut watch, 3).await {
        let Event::Put { kv, .. } = event else {
            panic!("expected a put")
        };
        assert!(kv.value == value, "1 MiB value delivered intact");
    }
}

async fn list_pages_with_start_after(store: Shared) {
    for i in 0..10 {
        store.create(&format!("/registry/nodes/n{i}"), vec![i]).await.unwrap();
    }
    let first = store
        .list(
            "/registry/nodes/",
            &ListOptions {
                limit: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 4);
    assert!(first.more);
    let last_key = first.kvs.last().unwrap().key.clone();
    assert_eq!(last_key, "/registry/nodes/n3");
    let rest = store
        .list(
            "/registry/nodes/",
            &ListOptions {
                limit: Some(6),
                start_after: Some(last_key),
                revision: Some(first.revision),
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = rest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        (4..10).map(|i| format!("/registry/nodes/n{i}")).collect::<Vec<_>>()
    );
    assert!(!rest.more, "exactly the limit left: nothing more");
}

/// 100,000 keys, paged 1,000 at a time from one snapshot while writes go on.
async fn listing_100k_keys_in_pages(store: Shared) {
    const KEYS: usize = 100_000;
    const WRITERS: usize = 64;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..KEYS).step_by(WRITERS) {
                store
                    .create(&format!("/registry/events/default/e{i:06}"), vec![b'x'; 64])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut options = ListOptions {
        limit: Some(1000),
        ..Default::default()
    };
    let mut keys = Vec::with_capacity(KEYS);
    let mut pages = 0;
    loop {
        let page = store.list("/registry/events/default/", &options).await.unwrap();
        pages += 1;
        if pages == 1 {
            // Writes after the snapshot must not show up in later pages.
            store.create("/registry/events/default/e999999", vec![1]).await.unwrap();
            store.delete("/registry/events/default/e050000", None).await.unwrap();
        }
        keys.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        if !page.more {
            break;
        }
        options.revision = Some(page.revision);
        options.start_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    assert_eq!(pages, 100);
    let expected: Vec<String> = (0..KEYS).map(|i| format!("/registry/events/default/e{i:06}")).collect();
    assert!(keys == expected, "all 100,000 keys, in order, from one snapshot");
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), KEYS);
}

async fn future_revisions_are_refused(store: Shared) {
    let current = store.create("/registry/pods/f", vec![1]).await.unwrap();
    let err = store.get("/registry/pods/f", Some(current + 10)).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    let err = store
        .list(
            "/registry/pods/",
            &ListOptions {
                revision: Some(current + 10),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
}
