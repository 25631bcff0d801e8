//! Exit hooks, told how their checkpoint ended, and named checkpoints.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use stackholm::{Checkpoint, CheckpointExt, Error, Key, Outcome, Scope, DEFAULT};

static TX: Key<&'static str> = Key::new("transaction");

type Log = Arc<Mutex<Vec<String>>>;

/// A hook that logs its name, the outcome, and the transaction it sees.
fn logging(log: &Log, name: &'static str) -> impl FnOnce(Outcome) + Send + 'static {
    let log = Arc::clone(log);
    move |outcome| {
        let tx = DEFAULT.get(&TX).unwrap_or("-");
        log.lock()
            .unwrap()
            .push(format!("{name}: {outcome} ({tx})"));
    }
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[test]
fn hooks_run_when_their_checkpoint_is_left_last_registered_first() -> Result<(), Error> {
    let log = Log::default();
    let _outer = DEFAULT.enter();
    DEFAULT.set(&TX, "outer")?;
    {
        let _inner = DEFAULT.enter();
        DEFAULT.set(&TX, "inner")?;
        DEFAULT.on_exit(logging(&log, "first"))?;
        DEFAULT.on_exit(logging(&log, "second"))?;
        assert!(taken(&log).is_empty());
    }
    // Run before the values went: each saw its own checkpoint's.
    assert_eq!(taken(&log), ["second: left (inner)", "first: left (inner)"]);
    assert_eq!(DEFAULT.get(&TX), Some("outer"));
    Ok(())
}

#[test]
fn a_hook_needs_a_checkpoint_and_is_dropped_unrun_without_one() {
    let log = Log::default();
    let err = DEFAULT.on_exit(logging(&log, "never")).unwrap_err();
    assert!(matches!(err, Error::NoCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("register an exit hook"), "{err}");
    assert!(taken(&log).is_empty());
}

#[test]
fn a_hook_sees_a_panic_unwinding_through_its_checkpoint() {
    let log = Log::default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _work = DEFAULT.enter();
        DEFAULT.set(&TX, "doomed").unwrap();
        DEFAULT.on_exit(logging(&log, "rollback")).unwrap();
        panic!("the work failed");
    }));
    assert!(outcome.is_err());
    assert_eq!(taken(&log), ["rollback: unwound by a panic (doomed)"]);
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn a_panicking_hook_does_not_stop_the_others_and_is_resumed_after_them() {
    let log = Log::default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _work = DEFAULT.enter();
        DEFAULT.on_exit(logging(&log, "registered first")).unwrap();
        DEFAULT.on_exit(|_| panic!("the hook failed")).unwrap();
        DEFAULT.on_exit(logging(&log, "registered last")).unwrap();
    }));
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the hook failed"));
    assert_eq!(
        taken(&log),
        ["registered last: left (-)", "registered first: left (-)"]
    );
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn a_panicking_hook_while_a_panic_unwinds_does_not_abort() {
    let log = Log::default();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let _work = DEFAULT.enter();
        DEFAULT.on_exit(logging(&log, "after")).unwrap();
        DEFAULT.on_exit(|_| panic!("the hook failed too")).unwrap();
        panic!("the work failed");
    }));
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the work failed"));
    assert_eq!(taken(&log), ["after: unwound by a panic (-)"]);
}

#[test]
fn a_hook_may_use_the_storage_and_register_more_hooks() -> Result<(), Error> {
    let log = Log::default();
    {
        let _work = DEFAULT.enter();
        let chained = logging(&log, "chained");
        DEFAULT.on_exit(move |_| {
            let _audit = DEFAULT.enter();
            DEFAULT.set(&TX, "audit").unwrap();
            drop(_audit);
            DEFAULT.on_exit(chained).unwrap();
        })?;
    }
    assert_eq!(taken(&log), ["chained: left (-)"]);
    assert_eq!(DEFAULT.depth(), 0);
    Ok(())
}

/// Hooks are taken off one at a time: one registered by another hook of
/// the same checkpoint is the last registered, so it runs next; and a
/// checkpoint a hook entered and kept is left before the next hook runs,
/// which sees its own checkpoint innermost again.
#[test]
fn a_hook_registered_by_a_hook_runs_next_and_a_hook_kept_checkpoint_is_left_first(
) -> Result<(), Error> {
    let log = Log::default();
    {
        let _work = DEFAULT.enter();
        DEFAULT.set(&TX, "work")?;
        DEFAULT.on_exit(logging(&log, "first"))?;
        let registered = logging(&log, "registered by the second");
        let second = logging(&log, "second");
        DEFAULT.on_exit(move |outcome| {
            second(outcome);
            DEFAULT.on_exit(registered).unwrap();
        })?;
        DEFAULT.on_exit(|_| {
            let kept = DEFAULT.enter();
            DEFAULT.set(&TX, "kept by a hook").unwrap();
            std::mem::forget(kept);
        })?;
    }
    assert_eq!(
        taken(&log),
        [
            "second: left (work)",
            "registered by the second: left (work)",
            "first: left (work)",
        ]
    );
    assert_eq!(DEFAULT.depth(), 0);
    Ok(())
}

#[test]
fn root_hooks_run_when_the_outermost_checkpoint_ends() -> Result<(), Error> {
    let log = Log::default();
    {
        let _root = DEFAULT.enter();
        DEFAULT.set(&TX, "root")?;
        {
            let _nested = DEFAULT.enter();
            DEFAULT.on_root_exit(logging(&log, "root hook"))?;
            DEFAULT.on_exit(logging(&log, "nested hook"))?;
        }
        assert_eq!(
            taken(&log),
            ["nested hook: left (-)"].map(|s| s.replace("(-)", "(root)"))
        );
    }
    assert_eq!(taken(&log), ["root hook: left (root)"]);
    Ok(())
}

#[tokio::test]
async fn a_checkpointed_future_keeps_its_hooks_between_polls() {
    let log = Log::default();
    let work = async {
        DEFAULT.set(&TX, "future").unwrap();
        DEFAULT.on_exit(logging(&log, "completed")).unwrap();
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
    }
    .in_checkpoint(Checkpoint::new());
    work.await;
    assert_eq!(taken(&log), ["completed: left (future)"]);
}

#[tokio::test]
async fn a_checkpointed_future_dropped_unfinished_reports_cancelled() {
    let log = Log::default();
    let mut work = Box::pin(
        async {
            DEFAULT.set(&TX, "abandoned").unwrap();
            DEFAULT.on_exit(logging(&log, "hook")).unwrap();
            std::future::pending::<()>().await;
        }
        .in_checkpoint(Checkpoint::new()),
    );
    assert!(futures_util::poll!(work.as_mut()).is_pending());
    assert!(taken(&log).is_empty());
    drop(work);
    assert_eq!(taken(&log), ["hook: cancelled (abandoned)"]);
}

#[tokio::test]
async fn a_scoped_task_reports_how_its_root_ended() {
    let log = Log::default();
    let root = || Checkpoint::new().with_value(&TX, "task");

    let register = || {
        let hook = logging(&log, "root");
        async move {
            DEFAULT.on_root_exit(hook).unwrap();
            tokio::task::yield_now().await;
        }
    };
    DEFAULT.scope(root(), register()).await;
    assert_eq!(taken(&log), ["root: left (task)"]);

    let mut abandoned = Box::pin(DEFAULT.scope(root(), async {
        register().await;
        std::future::pending::<()>().await;
    }));
    assert!(futures_util::poll!(abandoned.as_mut()).is_pending());
    drop(abandoned);
    assert_eq!(taken(&log), ["root: cancelled (task)"]);
}

#[test]
fn a_cancelled_scope_reports_cancelled() {
    let log = Log::default();
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    scope.run(|| DEFAULT.on_root_exit(logging(&log, "root")).unwrap());
    scope.cancel();
    drop(scope);
    assert_eq!(taken(&log), ["root: cancelled (-)"]);
}

#[test]
fn named_checkpoints_give_their_chain_outermost_first() {
    assert!(DEFAULT.names().is_empty());
    let _request = DEFAULT.enter_with(Checkpoint::named("request"));
    let _unnamed = DEFAULT.enter();
    let _tx = DEFAULT.enter_with(Checkpoint::named("transaction").with_value(&TX, "tx"));
    assert_eq!(DEFAULT.names(), ["request", "transaction"]);
    drop(_tx);
    assert_eq!(DEFAULT.names(), ["request"]);
    // A frame reused for an unnamed checkpoint has no name left over.
    let _again = DEFAULT.enter();
    assert_eq!(DEFAULT.names(), ["request"]);
}

#[tokio::test]
async fn a_checkpointed_future_keeps_its_name_between_polls() {
    let names = async {
        tokio::task::yield_now().await;
        DEFAULT.names()
    }
    .in_checkpoint(Checkpoint::named("step"))
    .await;
    assert_eq!(names, ["step"]);
    assert!(DEFAULT.names().is_empty());
}

#[tokio::test]
async fn a_checkpointed_future_whose_poll_panicked_reports_unwound_when_dropped() {
    use futures_util::FutureExt;

    let log = Log::default();
    let mut work = Box::pin(
        async {
            DEFAULT.on_exit(logging(&log, "hook")).unwrap();
            tokio::task::yield_now().await;
            panic!("the work failed");
        }
        .in_checkpoint(Checkpoint::new()),
    );
    assert!(futures_util::poll!(work.as_mut()).is_pending());
    let polled = AssertUnwindSafe(work.as_mut()).catch_unwind().await;
    assert!(polled.is_err());
    // Caught, then dropped: not cancelled, but ended by the panic.
    drop(work);
    assert_eq!(taken(&log), ["hook: unwound by a panic (-)"]);
}

#[test]
fn into_inner_after_a_poll_runs_the_checkpoints_exit_hooks() {
    static STEP: Key<&'static str> = Key::new("step");
    let log = Log::default();
    let hook_log = Arc::clone(&log);
    let future = Box::pin(async move {
        DEFAULT
            .on_exit(move |outcome| {
                let step = DEFAULT.get(&STEP);
                hook_log
                    .lock()
                    .unwrap()
                    .push(format!("{outcome:?} {step:?}"));
            })
            .unwrap();
        std::future::pending::<()>().await;
    })
    .in_checkpoint(Checkpoint::new().with_value(&STEP, "charge"));
    // `into_inner` takes it by value: the inner future must be `Unpin`.
    let mut future = future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::future::Future::poll(std::pin::Pin::new(&mut future), &mut cx).is_pending());
    assert!(log.lock().unwrap().is_empty());
    let inner = future.into_inner();
    // The checkpoint ended there, seen by its hook with its values.
    assert_eq!(*log.lock().unwrap(), ["Cancelled Some(\"charge\")"]);
    assert_eq!(DEFAULT.depth(), 0);
    drop(inner);
}
