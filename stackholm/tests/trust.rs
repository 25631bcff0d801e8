//! Regression tests for the holes the core had: destructors that use the
//! storage, scope teardown, concurrent branches of one task, guards that
//! miss their stack, and drop paths that panicked. Each failed before the
//! change that closed it.

use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use futures_util::stream::{FuturesUnordered, StreamExt};
use stackholm::{Checkpoint, CheckpointExt, Error, Key, Scope, DEFAULT};

static REQUEST: Key<u32> = Key::new("request");
static OBSERVER: Key<Observer> = Key::new("observer");
static SHADOW: Key<Observer> = Key::new("shadow");
static PRIVATE_OBSERVER: Key<Observer> = Key::new("private_observer").private();
static BRANCH: Key<&'static str> = Key::new("branch");

thread_local! {
    /// What each observer's destructor saw, in the order they ran.
    static SEEN: RefCell<Vec<(&'static str, Option<u32>, usize)>> = const { RefCell::new(Vec::new()) };
}

/// A value whose destructor reads the storage, as a transaction guard that
/// logs the request id as it rolls back would.
struct Observer(&'static str);

impl Drop for Observer {
    fn drop(&mut self) {
        let seen = (self.0, DEFAULT.get(&REQUEST), DEFAULT.depth());
        SEEN.with(|log| log.borrow_mut().push(seen));
    }
}

fn seen() -> Vec<(&'static str, Option<u32>, usize)> {
    SEEN.with(|log| std::mem::take(&mut *log.borrow_mut()))
}

// ----- 1. a value whose destructor reads the storage, on every path

#[test]
fn a_destructor_reads_the_storage_when_its_checkpoint_is_left() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 1)?;
    {
        let _nested = DEFAULT.enter();
        DEFAULT.set(&OBSERVER, Observer("left"))?;
    }
    // The checkpoint being left is already off: the request's root shows.
    assert_eq!(seen(), [("left", Some(1), 1)]);
    Ok(())
}

#[test]
fn a_destructor_reads_the_storage_when_set_replaces_its_value() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 2)?;
    DEFAULT.set(&OBSERVER, Observer("replaced"))?;
    DEFAULT.set(&OBSERVER, Observer("kept"))?;
    assert_eq!(seen(), [("replaced", Some(2), 1)]);
    drop(_request);
    assert_eq!(seen(), [("kept", None, 0)]);
    Ok(())
}

#[test]
fn a_destructor_reads_the_storage_on_remove_and_reset() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 3)?;
    DEFAULT.set(&OBSERVER, Observer("removed"))?;
    assert!(DEFAULT.remove(&OBSERVER)?);
    assert_eq!(seen(), [("removed", Some(3), 1)]);

    DEFAULT.set(&OBSERVER, Observer("reset outer"))?;
    let _nested = DEFAULT.enter();
    DEFAULT.set(&OBSERVER, Observer("reset inner"))?;
    assert_eq!(DEFAULT.reset(&OBSERVER)?, 2);
    let mut after_reset = seen();
    after_reset.sort_unstable();
    assert_eq!(
        after_reset,
        [("reset inner", Some(3), 2), ("reset outer", Some(3), 2)]
    );

    DEFAULT.set(&PRIVATE_OBSERVER, Observer("block removed"))?;
    assert!(DEFAULT.remove(&PRIVATE_OBSERVER)?);
    assert_eq!(seen(), [("block removed", Some(3), 2)]);
    Ok(())
}

#[test]
fn a_destructor_sees_each_checkpoint_off_when_an_outer_guard_is_dropped_first() -> Result<(), Error>
{
    let outer = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 4)?;
    DEFAULT.set(&SHADOW, Observer("outer"))?;
    let inner = DEFAULT.enter();
    DEFAULT.set(&OBSERVER, Observer("inner"))?;
    drop(outer);
    // Innermost first, each after its own checkpoint is off, as in-order
    // drops would have done.
    assert_eq!(seen(), [("inner", Some(4), 1), ("outer", None, 0)]);
    drop(inner);
    assert!(seen().is_empty());
    Ok(())
}

#[test]
fn a_destructor_may_enter_and_set_too() -> Result<(), Error> {
    struct Writer;
    impl Drop for Writer {
        fn drop(&mut self) {
            let _audit = DEFAULT.enter();
            DEFAULT.set(&REQUEST, 99).unwrap();
            assert_eq!(DEFAULT.get(&REQUEST), Some(99));
        }
    }
    static WRITER: Key<Writer> = Key::new("writer");

    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 5)?;
    {
        let _nested = DEFAULT.enter();
        DEFAULT.set(&WRITER, Writer)?;
    }
    assert_eq!((DEFAULT.depth(), DEFAULT.get(&REQUEST)), (1, Some(5)));
    Ok(())
}

#[test]
fn a_destructor_reading_the_storage_while_a_panic_unwinds_does_not_abort() {
    let outcome = catch_unwind(|| {
        let _request = DEFAULT.enter();
        DEFAULT.set(&REQUEST, 6).unwrap();
        let _nested = DEFAULT.enter();
        DEFAULT.set(&OBSERVER, Observer("unwound")).unwrap();
        panic!("the handler failed");
    });
    assert!(outcome.is_err(), "the handler's panic comes through");
    assert_eq!(seen(), [("unwound", Some(6), 1)]);
    assert_eq!(DEFAULT.depth(), 0);
}

/// A value whose destructor panics.
struct Explodes;

impl Drop for Explodes {
    fn drop(&mut self) {
        panic!("a destructor failed");
    }
}

static EXPLODES: Key<Explodes> = Key::new("explodes");

#[test]
fn a_panicking_destructor_while_a_panic_unwinds_does_not_abort() {
    let outcome = catch_unwind(|| {
        let _request = DEFAULT.enter();
        DEFAULT.set(&REQUEST, 7).unwrap();
        DEFAULT.set(&EXPLODES, Explodes).unwrap();
        DEFAULT
            .set(&OBSERVER, Observer("beside the explosion"))
            .unwrap();
        panic!("the handler failed");
    });
    // Before, the destructor's panic during unwinding aborted the process
    // and this line was never reached.
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the handler failed"));
    assert_eq!(seen(), [("beside the explosion", None, 0)]);
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn a_panicking_destructor_drops_the_others_then_resumes_its_panic() {
    let outcome = catch_unwind(|| {
        let _request = DEFAULT.enter();
        DEFAULT.set(&EXPLODES, Explodes).unwrap();
        DEFAULT.set(&OBSERVER, Observer("dropped anyway")).unwrap();
    });
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a destructor failed"));
    assert_eq!(seen(), [("dropped anyway", None, 0)]);
    assert_eq!(DEFAULT.depth(), 0);
}

// ----- 2. scope teardown inside the scope

#[test]
fn a_scope_is_torn_down_inside_the_scope() -> Result<(), Error> {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 999)?;

    let mut scope = Scope::new(
        DEFAULT,
        Checkpoint::new()
            .with_value(&REQUEST, 1)
            .with_value(&SHADOW, Observer("root value")),
    );
    // A value set in the scope's root by code run in it.
    scope.run(|| DEFAULT.set(&OBSERVER, Observer("set in a run")))?;
    assert!(seen().is_empty());
    drop(scope);
    // Before, both saw the thread's 999 at depth 1.
    let mut torn_down = seen();
    torn_down.sort_unstable();
    assert_eq!(
        torn_down,
        [("root value", None, 0), ("set in a run", None, 0)]
    );
    assert_eq!(DEFAULT.get(&REQUEST), Some(999));
    Ok(())
}

#[tokio::test]
async fn a_cancelled_scoped_future_drops_its_values_inside_its_scope() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 999).unwrap();
    let mut scoped = Box::pin(
        DEFAULT.scope(
            Checkpoint::new().with_value(&REQUEST, 8),
            async {
                let _held = Observer("future local");
                std::future::pending::<()>().await;
            }
            .in_checkpoint(Checkpoint::new().with_value(&OBSERVER, Observer("in checkpoint"))),
        ),
    );
    assert!(futures_util::poll!(scoped.as_mut()).is_pending());
    drop(scoped);
    assert_eq!(
        seen(),
        [("future local", Some(8), 2), ("in checkpoint", Some(8), 1)]
    );
}

// ----- 3. concurrent branches of one task

async fn branch_with_a_held_guard(name: &'static str) -> Option<&'static str> {
    let _guard = DEFAULT.task().enter();
    DEFAULT.set(&BRANCH, name).unwrap();
    tokio::task::yield_now().await;
    DEFAULT.get(&BRANCH)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `future` to the end on a current-thread runtime; the message of its
/// panic, if it panics.
fn panic_of<F: std::future::Future>(future: F) -> Option<String> {
    let runtime = current_thread();
    catch_unwind(AssertUnwindSafe(|| runtime.block_on(future)))
        .err()
        .map(|payload| panic_message(&*payload))
}

#[test]
fn join_branches_holding_guards_across_awaits_fail_loudly() {
    // Before, branch a read "b" and branch b read nothing.
    let reads = Mutex::new(Vec::new());
    let message = panic_of(DEFAULT.scope(Checkpoint::new(), async {
        let (a, b) = tokio::join!(branch_with_a_held_guard("a"), branch_with_a_held_guard("b"));
        reads.lock().unwrap().extend([a, b]);
    }));
    let message = message.expect("the interleaving is reported");
    assert!(message.contains("held across"), "{message}");
    assert!(
        reads.lock().unwrap().is_empty(),
        "no branch read a value at all"
    );
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn a_guard_held_across_an_await_inside_in_checkpoint_fails_loudly() {
    // Outside any scope, on the thread's stack: the future's own checkpoint
    // is what notices.
    async fn held(name: &'static str) -> Option<&'static str> {
        let _guard = DEFAULT.enter();
        DEFAULT.set(&BRANCH, name).unwrap();
        tokio::task::yield_now().await;
        DEFAULT.get(&BRANCH)
    }
    let message = panic_of(async {
        tokio::join!(
            held("a").in_checkpoint(Checkpoint::new()),
            held("b").in_checkpoint(Checkpoint::new()),
        )
    })
    .expect("a guard held across an await is reported");
    assert!(message.contains("held across"), "{message}");
    assert_eq!(DEFAULT.depth(), 0, "the stack is as it was");
}

async fn branch_in_its_own_checkpoint(name: &'static str) -> Option<&'static str> {
    async {
        DEFAULT.set(&BRANCH, name).unwrap();
        tokio::task::yield_now().await;
        DEFAULT.get(&BRANCH)
    }
    .in_checkpoint(Checkpoint::new())
    .await
}

#[tokio::test]
async fn the_recommended_pattern_keeps_join_branches_apart() {
    let (a, b) = DEFAULT
        .scope(Checkpoint::new(), async {
            tokio::join!(
                branch_in_its_own_checkpoint("a"),
                branch_in_its_own_checkpoint("b")
            )
        })
        .await;
    assert_eq!((a, b), (Some("a"), Some("b")));
}

#[tokio::test]
async fn the_recommended_pattern_keeps_select_and_futures_unordered_apart() {
    DEFAULT
        .scope(Checkpoint::new(), async {
            let slow = async {
                DEFAULT.set(&BRANCH, "slow").unwrap();
                std::future::pending::<()>().await;
            }
            .in_checkpoint(Checkpoint::new());
            let fast = branch_in_its_own_checkpoint("fast");
            tokio::select! {
                () = slow => unreachable!("never completes"),
                seen = fast => assert_eq!(seen, Some("fast")),
            }

            let names = ["a", "b", "c", "d"];
            let mut unordered: FuturesUnordered<_> = names
                .iter()
                .map(|&name| async move { (name, branch_in_its_own_checkpoint(name).await) })
                .collect();
            while let Some((name, seen)) = unordered.next().await {
                assert_eq!(seen, Some(name));
            }
            assert_eq!(DEFAULT.get(&BRANCH), None, "nothing leaked into the root");
        })
        .await;
}

// ----- 4. a guard that misses its stack

#[test]
fn a_guard_moved_to_another_task_is_caught_where_it_escapes() {
    let runtime = current_thread();
    let local = tokio::task::LocalSet::new();
    let (send, receive) = std::sync::mpsc::channel();
    let escaped = local.spawn_local(DEFAULT.scope(
        Checkpoint::new().with_value(&REQUEST, 1),
        async move {
            let guard = DEFAULT.enter();
            DEFAULT.set(&REQUEST, 2).unwrap();
            send.send(guard).unwrap();
            tokio::task::yield_now().await;
            // Before, the value set under the moved guard stayed visible.
            DEFAULT.get(&REQUEST)
        },
    ));
    let dropper = local.spawn_local(async move {
        tokio::task::yield_now().await;
        drop(receive.recv().unwrap());
        DEFAULT.depth()
    });
    let (escaped, dropper) = local.block_on(&runtime, async { (escaped.await, dropper.await) });
    let message = panic_message(&*escaped.unwrap_err().into_panic());
    assert!(message.contains("held across"), "{message}");
    assert_eq!(dropper.unwrap(), 0, "dropping it elsewhere changes nothing");
}

// ----- 5. drop paths that panicked

#[test]
fn a_guard_dropped_inside_a_read_does_not_panic() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 10)?;
    let guard = DEFAULT.enter();
    DEFAULT.with(&REQUEST, move |_| {
        drop(guard);
        // The stack is lent to this closure: it cannot be left yet.
        assert_eq!(DEFAULT.depth(), 2);
    });
    // Left as soon as the read is over, not when an outer one is.
    assert_eq!(DEFAULT.depth(), 1);
    Ok(())
}

#[test]
fn a_guard_dropped_inside_nested_reads_is_left_when_the_outermost_ends() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 13)?;
    let guard = DEFAULT.enter();
    DEFAULT.set(&OBSERVER, Observer("deferred"))?;
    DEFAULT.with(&REQUEST, move |_| {
        DEFAULT.with(&REQUEST, move |_| drop(guard));
        assert_eq!(DEFAULT.depth(), 2);
        assert_eq!(seen(), []);
    });
    assert_eq!(DEFAULT.depth(), 1);
    // Its value was dropped once nothing was borrowed.
    assert_eq!(seen(), [("deferred", Some(13), 1)]);
    Ok(())
}

#[test]
fn a_guard_dropped_inside_a_read_that_panics_is_left_all_the_same() -> Result<(), Error> {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 14)?;
    let guard = DEFAULT.enter();
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        DEFAULT.with(&REQUEST, move |_| {
            drop(guard);
            panic!("in the read");
        })
    }));
    assert!(unwound.is_err());
    assert_eq!(DEFAULT.depth(), 1);
    Ok(())
}

/// A value whose destructor panics.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the inner future's destructor panics");
    }
}

#[test]
fn a_checkpointed_future_whose_destructor_panics_still_leaves_its_checkpoint() {
    let future = async {
        let _held = PanicsOnDrop;
        std::future::pending::<()>().await;
    }
    .in_checkpoint(Checkpoint::new().with_value(&REQUEST, 15));
    let mut future = Box::pin(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert_eq!(DEFAULT.depth(), 0);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(future)));
    assert!(dropped.is_err(), "the destructor's panic goes on");
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(DEFAULT.get(&REQUEST), None);
}

#[test]
fn a_scoped_future_dropped_inside_a_read_drops_its_future_without_panicking() {
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 11).unwrap();
    let scoped = DEFAULT.scope(Checkpoint::new(), async {
        let _held = Observer("future local");
        std::future::pending::<()>().await;
    });
    let mut scoped = Box::pin(scoped);
    let runtime = current_thread();
    runtime.block_on(async {
        assert!(futures_util::poll!(scoped.as_mut()).is_pending());
    });
    DEFAULT.with(&REQUEST, move |_| drop(scoped));
    let seen = seen();
    assert_eq!(seen.len(), 1, "the future was dropped: {seen:?}");
}

#[test]
fn scope_try_run_reports_instead_of_panicking() {
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    let _request = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 12).unwrap();
    let refused = DEFAULT.with(&REQUEST, |_| scope.try_run(|| ()));
    assert!(matches!(refused, Err(Error::Busy { .. })), "{refused:?}");
    // Run, it reaches its own stack: its root only.
    assert_eq!(scope.try_run(|| DEFAULT.depth()), Ok(1));
}

/// A checkpointed future whose poll leaves a stray checkpoint, whose exit
/// hook panics while it is left: the panic goes on, and the future's own
/// checkpoint is taken off the stack all the same, not left on the thread's
/// stack with its values visible.
#[test]
fn a_stray_checkpoints_panicking_hook_leaves_no_checkpoint_of_the_future_behind() {
    let future = async {
        let stray = DEFAULT.enter();
        DEFAULT
            .on_exit(|_| panic!("the stray checkpoint's hook fails"))
            .unwrap();
        std::mem::forget(stray);
        std::future::pending::<()>().await;
    };
    let mut future =
        std::pin::pin!(future.in_checkpoint(Checkpoint::new().with_value(&REQUEST, 7)));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
    assert!(polled.is_err(), "the hook's panic goes on");
    assert_eq!(
        DEFAULT.depth(),
        0,
        "no checkpoint of the future is left behind"
    );
    assert_eq!(DEFAULT.get(&REQUEST), None);
}

// A value's destructor run at a scope's end may drop the guard of a
// checkpoint on the stack the scope set aside (the thread's, or an outer
// scope's): the guard leaves it there and then, as it would anywhere else.

thread_local! {
    static HELD: RefCell<Option<stackholm::CheckpointGuard>> = const { RefCell::new(None) };
}

struct DropsHeldGuard;

impl Drop for DropsHeldGuard {
    fn drop(&mut self) {
        drop(HELD.with(|held| held.borrow_mut().take()));
    }
}

static DROPS_GUARD: Key<DropsHeldGuard> = Key::new("drops_guard");

fn hold_a_guard() {
    HELD.with(|held| *held.borrow_mut() = Some(DEFAULT.enter()));
}

fn end_a_scope_whose_value_drops_the_guard() {
    drop(Scope::new(
        DEFAULT,
        Checkpoint::new().with_value(&DROPS_GUARD, DropsHeldGuard),
    ));
}

#[test]
fn a_guard_dropped_by_a_destructor_at_a_scopes_end_leaves_its_checkpoint() {
    hold_a_guard();
    end_a_scope_whose_value_drops_the_guard();
    assert_eq!(DEFAULT.depth(), 0, "the guard's checkpoint is left");
    assert!(
        DEFAULT.set(&REQUEST, 1).is_err(),
        "no checkpoint is left to set in"
    );
    // A checkpoint entered next lives as long as its own guard.
    let _live = DEFAULT.enter();
    DEFAULT.set(&REQUEST, 1).unwrap();
    assert_eq!(DEFAULT.get(&REQUEST), Some(1));
    assert_eq!(DEFAULT.get(&REQUEST), Some(1), "and stays after a read");
}

#[test]
fn a_guard_dropped_by_a_destructor_at_a_scopes_end_drops_its_values_outside_any_request() {
    struct Reads(std::sync::Arc<Mutex<Vec<Option<u32>>>>);
    impl Drop for Reads {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(DEFAULT.get(&REQUEST));
        }
    }
    static READS: Key<Reads> = Key::new("reads");
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    hold_a_guard();
    DEFAULT.set(&READS, Reads(seen.clone())).unwrap();
    end_a_scope_whose_value_drops_the_guard();
    let read = DEFAULT.sync_scope(Checkpoint::new().with_value(&REQUEST, 7), || {
        DEFAULT.get(&REQUEST)
    });
    assert_eq!(read, Some(7));
    assert_eq!(
        *seen.lock().unwrap(),
        [None],
        "the thread's value went with its guard, seeing no request's values"
    );
}

#[test]
fn a_guard_of_an_outer_scope_dropped_by_an_inner_scopes_destructor_leaves_its_checkpoint() {
    let mut outer = Scope::new(DEFAULT, Checkpoint::new());
    outer.run(|| {
        hold_a_guard();
        assert_eq!(DEFAULT.depth(), 2);
        end_a_scope_whose_value_drops_the_guard();
        assert_eq!(DEFAULT.depth(), 1, "the outer scope's root only");
    });
}
