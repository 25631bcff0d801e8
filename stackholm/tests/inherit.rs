//! Per-key inheritance: a value crosses into spawned work only if its key
//! is declared inherited, and a value that never crosses need not be `Sync`.

use std::cell::RefCell;

use stackholm::{Checkpoint, CheckpointExt, Key, Stack, DEFAULT};

static REQUEST_ID: Key<u64> = Key::new("request_id").inherited();
static TENANT: Key<&'static str> = Key::new("tenant").inherited();
/// A live transaction: must never be used from two tasks.
static TRANSACTION: Key<String> = Key::new("transaction");
/// A per-request buffer touched by one task: a `RefCell`, not a `Mutex`.
static BUFFER: Key<RefCell<Vec<&'static str>>> = Key::new("buffer");

/// What a child sees: the inherited ids, and whether the others came along.
type Seen = (Option<u64>, Option<&'static str>, bool, bool);

fn seen_here() -> Seen {
    (
        DEFAULT.get(&REQUEST_ID),
        DEFAULT.get(&TENANT),
        DEFAULT.with(&TRANSACTION, |transaction| transaction.is_some()),
        DEFAULT.with(&BUFFER, |buffer| buffer.is_some()),
    )
}

/// Sets every key in the current checkpoint.
fn set_all() {
    DEFAULT.set(&REQUEST_ID, 7).unwrap();
    DEFAULT.set(&TENANT, "acme").unwrap();
    DEFAULT.set(&TRANSACTION, "tx-1".to_owned()).unwrap();
    DEFAULT.set(&BUFFER, RefCell::new(vec!["opened"])).unwrap();
}

/// Shadows the inherited values in the child, which must not reach the
/// parent.
fn shadow_in_child() -> Seen {
    let seen = seen_here();
    DEFAULT.set(&REQUEST_ID, 99).unwrap();
    DEFAULT.set(&TENANT, "other").unwrap();
    seen
}

const EXPECTED: Seen = (Some(7), Some("acme"), false, false);

fn parent_unchanged() {
    assert_eq!(seen_here(), (Some(7), Some("acme"), true, true));
    DEFAULT.with(&BUFFER, |buffer| {
        assert_eq!(*buffer.unwrap().borrow(), ["opened"]);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_inherited_keys_only() {
    DEFAULT
        .scope(Checkpoint::new(), async {
            set_all();
            let seen = tokio::spawn(DEFAULT.inherit(async { shadow_in_child() }))
                .await
                .unwrap();
            assert_eq!(seen, EXPECTED);
            parent_unchanged();
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_carries_inherited_keys_only() {
    DEFAULT
        .scope(Checkpoint::new(), async {
            set_all();
            let snapshot = DEFAULT.snapshot();
            let seen =
                tokio::task::spawn_blocking(move || DEFAULT.sync_scope(snapshot, shadow_in_child))
                    .await
                    .unwrap();
            assert_eq!(seen, EXPECTED);
            parent_unchanged();
        })
        .await;
}

#[test]
fn spawn_thread_carries_inherited_keys_only() {
    let _request = DEFAULT.enter();
    set_all();
    let snapshot = DEFAULT.snapshot();
    let seen = std::thread::spawn(move || DEFAULT.sync_scope(snapshot, shadow_in_child))
        .join()
        .unwrap();
    assert_eq!(seen, EXPECTED);
    parent_unchanged();
}

#[tokio::test]
async fn inherit_carries_inherited_keys_only() {
    DEFAULT
        .scope(Checkpoint::new(), async {
            set_all();
            let mut jobs = tokio::task::JoinSet::new();
            jobs.spawn(DEFAULT.inherit(async { shadow_in_child() }));
            let seen = jobs.join_next().await.unwrap().unwrap();
            assert_eq!(seen, EXPECTED);
            parent_unchanged();
        })
        .await;
}

#[test]
fn a_snapshot_holds_inherited_keys_only() {
    let _request = DEFAULT.enter();
    set_all();
    let snapshot = DEFAULT.snapshot();
    // What it holds, read by entering it alone on a stack of its own: the
    // two inherited values, and nothing else.
    let mut alone = Stack::new();
    let entered = alone.enter_with(snapshot);
    assert_eq!(entered.get(&REQUEST_ID), Some(&7));
    assert_eq!(entered.get(&TENANT), Some(&"acme"));
    assert_eq!(entered.get(&TRANSACTION), None);
    assert!(entered.get(&BUFFER).is_none());
    drop(entered);
    assert!(format!("{REQUEST_ID:?}").contains("inherited: true"));
    assert!(format!("{TENANT:?}").contains("inherited: true"));
    assert!(format!("{TRANSACTION:?}").contains("inherited: false"));
    assert!(format!("{BUFFER:?}").contains("inherited: false"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_that_stays_in_its_task_needs_no_mutex() {
    // The scoped future holds a `RefCell` across awaits and is still `Send`:
    // nothing else can reach the buffer, as no snapshot carries it.
    let task = tokio::spawn(DEFAULT.scope(Checkpoint::new(), async {
        DEFAULT.set(&BUFFER, RefCell::new(Vec::new())).unwrap();
        for step in ["parse", "validate", "store"] {
            async {
                tokio::task::yield_now().await;
                DEFAULT.with(&BUFFER, |buffer| buffer.unwrap().borrow_mut().push(step));
            }
            .in_checkpoint(Checkpoint::new())
            .await;
        }
        DEFAULT.with(&BUFFER, |buffer| buffer.unwrap().borrow().clone())
    }));
    assert_eq!(task.await.unwrap(), ["parse", "validate", "store"]);
}
