//! Per-key inheritance: a value crosses into spawned work only if its key
//! is declared inherited, and a value that never crosses need not be `Sync`.

use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use stackholm::{Checkpoint, CheckpointExt, Key, Outcome, Stack, DEFAULT};

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
            let seen = tokio::task::spawn_blocking(DEFAULT.inherit_fn(shadow_in_child))
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
    let seen = std::thread::spawn(DEFAULT.inherit_fn(shadow_in_child))
        .join()
        .unwrap();
    assert_eq!(seen, EXPECTED);
    parent_unchanged();
    assert_eq!(DEFAULT.depth(), 1, "the caller's stack keeps its depth");
}

#[test]
fn a_scoped_thread_borrows_and_inherits() {
    let _request = DEFAULT.enter();
    set_all();
    let word = String::from("ab");
    let seen = std::thread::scope(|threads| {
        threads
            .spawn(DEFAULT.inherit_fn(|| (word.len(), shadow_in_child())))
            .join()
            .unwrap()
    });
    assert_eq!(seen, (2, EXPECTED));
    parent_unchanged();
}

#[test]
fn inherit_fn_takes_its_snapshot_when_called_not_when_run() {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST_ID, 1).unwrap();
    let job = DEFAULT.inherit_fn(|| DEFAULT.get(&REQUEST_ID));
    DEFAULT.set(&REQUEST_ID, 2).unwrap();
    assert_eq!(std::thread::spawn(job).join().unwrap(), Some(1));
    // Run where it is made, its scope replaces the caller's stack.
    let job = DEFAULT.inherit_fn(|| (DEFAULT.get(&REQUEST_ID), DEFAULT.depth()));
    DEFAULT.set(&REQUEST_ID, 3).unwrap();
    assert_eq!(job(), (Some(2), 1));
    assert_eq!(DEFAULT.get(&REQUEST_ID), Some(3));
}

#[test]
fn inherit_fn_refuses_a_snapshot_inside_a_read() {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST_ID, 1).unwrap();
    DEFAULT.with(&REQUEST_ID, |_| {
        let refused =
            std::panic::catch_unwind(|| drop(DEFAULT.inherit_fn(|| ()))).expect_err("a panic");
        let message = refused
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(message.contains("cannot take a snapshot"), "{message}");
    });
    assert_eq!(DEFAULT.get(&REQUEST_ID), Some(1));
}

/// What an exit hook saw: the outcome, the depth and the inherited value
/// still visible.
type Ended = (&'static str, Outcome, usize, Option<u64>);

/// A closure for spawned work: registers an exit hook on the scope's root
/// and one on a checkpoint it enters, each recording what it saw into
/// `ended`, then sets a value and panics if `fail`.
fn hooked_job(ended: &Arc<Mutex<Vec<Ended>>>, fail: bool) -> impl FnOnce() -> u64 + Send {
    let record = |name: &'static str| {
        let ended = Arc::clone(ended);
        move |outcome| {
            let seen = (name, outcome, DEFAULT.depth(), DEFAULT.get(&REQUEST_ID));
            ended.lock().unwrap().push(seen);
        }
    };
    let (root, inner) = (record("root"), record("inner"));
    DEFAULT.inherit_fn(move || {
        DEFAULT.on_root_exit(root).unwrap();
        let _inner = DEFAULT.enter();
        DEFAULT.on_exit(inner).unwrap();
        DEFAULT.set(&REQUEST_ID, 8).unwrap();
        assert!(!fail, "the job fails");
        DEFAULT.get(&REQUEST_ID).unwrap()
    })
}

fn ended_as(outcome: Outcome) -> Vec<Ended> {
    vec![
        ("inner", outcome, 2, Some(8)),
        ("root", outcome, 1, Some(7)),
    ]
}

#[test]
fn a_thread_s_scope_runs_its_exit_hooks_at_its_end() {
    let _request = DEFAULT.enter();
    set_all();
    let ended = Arc::default();
    let job = hooked_job(&ended, false);
    assert_eq!(std::thread::spawn(job).join().unwrap(), 8);
    assert_eq!(*ended.lock().unwrap(), ended_as(Outcome::Left));
    parent_unchanged();
}

#[test]
fn a_panic_in_a_thread_is_the_thread_s_and_corrupts_no_stack() {
    let _request = DEFAULT.enter();
    set_all();
    let ended = Arc::default();
    let job = hooked_job(&ended, true);
    let thread = std::thread::spawn(move || {
        // The thread's own stack, before and after the job's panic.
        let _thread = DEFAULT.enter();
        DEFAULT.set(&TENANT, "thread").unwrap();
        let panic = catch_unwind(AssertUnwindSafe(job)).expect_err("the job panics");
        let after = (
            DEFAULT.depth(),
            DEFAULT.get(&TENANT),
            DEFAULT.get(&REQUEST_ID),
        );
        assert_eq!(after, (1, Some("thread"), None));
        resume_unwind(panic);
    });
    let panic = thread.join().expect_err("the panic is the thread's");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"the job fails"));
    assert_eq!(*ended.lock().unwrap(), ended_as(Outcome::Unwound));
    parent_unchanged();
    assert_eq!(DEFAULT.depth(), 1);
}

#[test]
fn a_panic_in_a_blocking_job_is_the_job_s_and_corrupts_no_stack() {
    // One blocking thread, so that the next job runs where the panic was.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();
    runtime.block_on(DEFAULT.scope(Checkpoint::new(), async {
        set_all();
        let ended = Arc::default();
        let failed = tokio::task::spawn_blocking(hooked_job(&ended, true))
            .await
            .expect_err("the job panics");
        let panic = failed.into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the job fails"));
        assert_eq!(*ended.lock().unwrap(), ended_as(Outcome::Unwound));
        parent_unchanged();
        assert_eq!(DEFAULT.depth(), 1);
        // The blocking thread's own stack was not touched, and the next
        // job's scope starts clean.
        let next = tokio::task::spawn_blocking(|| (DEFAULT.depth(), DEFAULT.get(&REQUEST_ID)))
            .await
            .unwrap();
        assert_eq!(next, (0, None));
        let ended = Arc::default();
        let done = tokio::task::spawn_blocking(hooked_job(&ended, false))
            .await
            .unwrap();
        assert_eq!(done, 8);
        assert_eq!(*ended.lock().unwrap(), ended_as(Outcome::Left));
    }));
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
