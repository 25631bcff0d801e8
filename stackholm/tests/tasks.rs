//! Task-local scopes, instrumented futures and propagation, on real tokio
//! runtimes.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use stackholm::futures::{InCheckpoint, Scoped};
use stackholm::{
    Checkpoint, CheckpointExt, CheckpointGuard, Error, Key, Operation, Scope, Stack, DEFAULT,
};

static TASK_ID: Key<usize> = Key::new("task_id");
/// `TASK_ID`'s counterpart whose values are private to the checkpoint that
/// set them (what block values were).
static PRIVATE_TASK_ID: Key<usize> = Key::new("private_task_id").private();
static LEVEL: Key<usize> = Key::new("level").inherited();
static COUNTER: Key<u64> = Key::new("counter").inherited();

/// A value that cannot be cloned: propagation must share it, not copy it.
#[derive(Debug, PartialEq)]
struct Unclonable(&'static str);
static SHARED: Key<Unclonable> = Key::new("shared").inherited();

async fn pause(i: usize) {
    if i % 3 == 0 {
        tokio::time::sleep(Duration::from_micros(50)).await;
    } else {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_interleaved_tasks_each_see_only_their_own_values() {
    const TASKS: usize = 1000;
    const INCREMENTS: u64 = 1000;
    let handles: Vec<_> = (0..TASKS)
        .map(|id| {
            let root = Checkpoint::new().with_value(&TASK_ID, id);
            tokio::spawn(DEFAULT.scope(root, async move {
                for level in 0..3 {
                    // A nested checkpoint around an await: the future runs
                    // inside it, rather than a guard held across the await.
                    async {
                        DEFAULT.set(&LEVEL, level)?;
                        pause(id + level).await;
                        assert_eq!(
                            DEFAULT.get(&TASK_ID),
                            Some(id),
                            "task {id} at level {level}"
                        );
                        assert_eq!(DEFAULT.get(&LEVEL), Some(level));
                        assert_eq!(DEFAULT.depth(), 2);
                        Ok::<_, Error>(())
                    }
                    .in_checkpoint(Checkpoint::new())
                    .await?;
                }
                assert_eq!(DEFAULT.get(&LEVEL), None);
                assert_eq!(DEFAULT.depth(), 1);
                // The counter scenario of the original's ContextVarStorage
                // test: shared state there, one count per task here.
                let counted = async {
                    DEFAULT.set(&COUNTER, 0)?;
                    for i in 0..INCREMENTS {
                        let next = DEFAULT.get(&COUNTER).unwrap() + 1;
                        DEFAULT.set(&COUNTER, next)?;
                        if i % 100 == 0 {
                            pause(id).await;
                        }
                    }
                    assert_eq!(DEFAULT.get(&TASK_ID), Some(id));
                    assert_eq!(DEFAULT.depth(), 2);
                    Ok::<_, Error>(DEFAULT.get(&COUNTER))
                }
                .in_checkpoint(Checkpoint::new())
                .await?;
                assert_eq!(DEFAULT.get(&COUNTER), None, "left with its checkpoint");
                Ok::<_, Error>(counted)
            }))
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.await.unwrap().unwrap(), Some(INCREMENTS));
    }
    // Nothing reached the worker threads' own stacks.
    let depths: Vec<usize> = futures_on_every_worker(4, || DEFAULT.depth()).await;
    assert!(depths.iter().all(|&d| d == 0), "{depths:?}");
}

/// Runs `f` outside any scope once on each of the runtime's `workers`
/// worker threads: every task waits until all have started, so no worker
/// can run two of them, and the test checks that each thread was visited.
async fn futures_on_every_worker<T: Send + 'static>(workers: usize, f: fn() -> T) -> Vec<T> {
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let started = Arc::clone(&started);
            tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while started.load(Ordering::SeqCst) < workers {
                    assert!(std::time::Instant::now() < deadline, "a worker never ran");
                    std::thread::yield_now();
                }
                (std::thread::current().id(), f())
            })
        })
        .collect();
    let mut threads = std::collections::HashSet::new();
    let mut out = Vec::new();
    for handle in handles {
        let (thread, value) = handle.await.unwrap();
        threads.insert(thread);
        out.push(value);
    }
    assert_eq!(threads.len(), workers, "every worker ran one task");
    out
}

#[tokio::test]
async fn one_ambient_api_reaches_the_task_inside_a_scope_and_the_thread_outside() {
    fn helper() -> Option<usize> {
        DEFAULT.get(&TASK_ID)
    }
    // Outside any scope the checkpoint is on the thread's stack.
    async {
        DEFAULT.set(&TASK_ID, 1).unwrap();
        assert_eq!(helper(), Some(1));
        assert_eq!(DEFAULT.names(), ["thread"]);
        let inside = DEFAULT
            .scope(Checkpoint::named("task"), async {
                // A scope starts with a fresh stack, its root alone: the
                // thread's is not visible.
                assert_eq!(helper(), None);
                assert_eq!(DEFAULT.depth(), 1);
                assert_eq!(DEFAULT.names(), ["task"]);
                async {
                    DEFAULT.task().set(&TASK_ID, 2).unwrap();
                    tokio::task::yield_now().await;
                    assert_eq!(DEFAULT.task().depth(), 2);
                    assert_eq!(DEFAULT.task().names(), ["task"]);
                    helper()
                }
                .in_checkpoint(Checkpoint::new())
                .await
            })
            .await;
        assert_eq!(inside, Some(2));
        assert_eq!(helper(), Some(1));
        assert_eq!(DEFAULT.names(), ["thread"]);
        assert_eq!(DEFAULT.task().depth(), 0, "no scope here");
        assert!(DEFAULT.task().names().is_empty(), "no scope here");
    }
    .in_checkpoint(Checkpoint::named("thread"))
    .await;
    assert_eq!(helper(), None);
}

#[tokio::test]
async fn scopes_nest_and_restore_the_outer_scope() {
    let outer = Checkpoint::new().with_value(&LEVEL, 1);
    DEFAULT
        .scope(outer, async {
            let inner = Checkpoint::new().with_value(&LEVEL, 2);
            let seen = DEFAULT.scope(inner, async { DEFAULT.get(&LEVEL) }).await;
            assert_eq!(seen, Some(2));
            assert_eq!(DEFAULT.get(&LEVEL), Some(1));
            let seen = DEFAULT.sync_scope(Checkpoint::new(), || DEFAULT.get(&LEVEL));
            assert_eq!(seen, None);
        })
        .await;
}

#[test]
fn the_task_only_handle_reports_a_missing_scope() {
    let task = DEFAULT.task();
    // Reads find nothing.
    assert_eq!(task.get(&LEVEL), None);
    assert!(!task.with(&LEVEL, |level| level.is_some()));
    assert_eq!(task.depth(), 0);
    assert!(task.names().is_empty());
    // Writes are refused, saying why.
    let err = task.set(&LEVEL, 1).unwrap_err();
    assert!(
        matches!(
            err.error(),
            Error::NoScope {
                operation: Operation::Set,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no task-local scope is active"),
        "{err}"
    );
    assert_eq!(err.into_value(), 1, "the value is handed back");
    let err = task.set_root(&LEVEL, 1).unwrap_err();
    assert!(
        matches!(
            err.error(),
            Error::NoScope {
                operation: Operation::SetRoot,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.into_value(), 1, "the value is handed back");
    let hook_ran = Arc::new(AtomicUsize::new(0));
    for root in [false, true] {
        let counted = Arc::clone(&hook_ran);
        let hook = move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        };
        let err = if root {
            task.on_root_exit(hook)
        } else {
            task.on_exit(hook)
        }
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoScope {
                    operation: Operation::OnExit,
                    ..
                }
            ),
            "{err:?} (root: {root})"
        );
    }
    assert_eq!(Arc::strong_count(&hook_ran), 1, "refused hooks are dropped");
    // Removals are refused too.
    assert!(matches!(
        task.remove(&LEVEL),
        Err(Error::NoScope {
            operation: Operation::Remove,
            ..
        })
    ));
    assert!(matches!(
        task.reset(&LEVEL),
        Err(Error::NoScope {
            operation: Operation::Reset,
            ..
        })
    ));
    // Entering panics, saying why.
    let panic = catch_unwind(|| drop(task.enter())).unwrap_err();
    let message = panic_message(&*panic);
    assert!(
        message.contains("cannot enter a checkpoint: no task-local scope is active"),
        "{message}"
    );
    let panic = catch_unwind(|| drop(task.enter_with(Checkpoint::new()))).unwrap_err();
    let message = panic_message(&*panic);
    assert!(
        message.contains("cannot enter a checkpoint: no task-local scope is active"),
        "{message}"
    );
    // The thread's stack is untouched and still reachable ambiently; the
    // task handle neither sees nor changes it.
    assert_eq!(DEFAULT.depth(), 0);
    let _thread = DEFAULT.enter();
    DEFAULT.set(&LEVEL, 5).unwrap();
    assert_eq!(task.get(&LEVEL), None);
    assert_eq!(task.depth(), 0);
    assert!(task.remove(&LEVEL).is_err());
    assert!(task.reset(&LEVEL).is_err());
    assert!(task.set(&LEVEL, 6).is_err());
    assert!(task.set_root(&LEVEL, 6).is_err());
    assert!(task.on_exit(|_| ()).is_err());
    assert!(catch_unwind(|| drop(task.enter())).is_err());
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&LEVEL), Some(5));
    assert_eq!(hook_ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_task_guard_outliving_its_scope_run_is_reported_and_does_nothing_when_dropped() {
    let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&LEVEL, 1));
    let _thread = DEFAULT.enter();
    DEFAULT.set(&LEVEL, 100).unwrap();
    // Returned out of the run, the guard outlives it: the run leaves its
    // checkpoint and panics.
    let panic = catch_unwind(AssertUnwindSafe(|| {
        scope.run(|| {
            let guard = DEFAULT.task().enter();
            DEFAULT.set(&LEVEL, 2).unwrap();
            guard
        })
    }))
    .unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("held across"), "{message}");
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&LEVEL))),
        (1, Some(1))
    );
    assert_eq!(DEFAULT.depth(), 1, "the thread's stack is not touched");
    assert_eq!(DEFAULT.get(&LEVEL), Some(100));

    // `try_run` hands such a guard out, its checkpoint already left.
    let guard = scope.try_run(|| DEFAULT.task().enter()).unwrap();
    assert_eq!(scope.run(|| DEFAULT.depth()), 1);
    // Dropped outside its scope, it does nothing.
    drop(guard);
    assert_eq!(DEFAULT.depth(), 1, "the thread's stack is not touched");
    assert_eq!(DEFAULT.get(&LEVEL), Some(100));
    assert_eq!(scope.run(|| DEFAULT.depth()), 1);
    // Dropped back inside its scope, it does not take another checkpoint
    // for its own.
    let guard = scope.try_run(|| DEFAULT.task().enter()).unwrap();
    let depth = scope.run(|| {
        let _fresh = DEFAULT.task().enter();
        drop(guard);
        DEFAULT.depth()
    });
    assert_eq!(depth, 2);
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&LEVEL))),
        (1, Some(1))
    );
    assert_eq!(DEFAULT.depth(), 1);
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrumented_futures_keep_their_values_between_polls_and_hide_them_between() {
    async fn worker(name: &'static str) -> Result<(), Error> {
        DEFAULT.set(&SHARED, Unclonable(name))?;
        for i in 0..20 {
            pause(i).await;
            DEFAULT.with(&SHARED, |v| assert_eq!(v, Some(&Unclonable(name))));
            // A checkpoint entered inside and held across an await.
            let _inner = DEFAULT.enter_with(Checkpoint::new().with_value(&LEVEL, i));
            assert_eq!(DEFAULT.get(&LEVEL), Some(i));
        }
        Ok(())
    }
    // Joined on one task, without any scope: each poll of one future must
    // not see the other's checkpoint, on whichever thread it runs.
    let a = worker("a").in_checkpoint(Checkpoint::new());
    let b = worker("b").in_checkpoint(Checkpoint::new());
    let (a, b) = tokio::join!(a, b);
    a.unwrap();
    b.unwrap();
    assert_eq!(DEFAULT.depth(), 0);
}

#[tokio::test]
async fn a_task_guard_held_across_an_await_in_an_instrumented_future_panics_and_is_left() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polls);
    DEFAULT
        .scope(Checkpoint::new().with_value(&LEVEL, 0), async move {
            let inner = async move {
                let _held = DEFAULT.task().enter();
                DEFAULT.set(&LEVEL, 2).unwrap();
                assert_eq!(DEFAULT.depth(), 3);
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                unreachable!("the poll that held the guard across the await panicked");
            };
            let mut inner = Box::pin(inner.in_checkpoint(Checkpoint::new().with_value(&LEVEL, 1)));
            let mut cx = Context::from_waker(Waker::noop());
            let panic =
                catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(&mut cx))).unwrap_err();
            let message = panic_message(&*panic);
            assert!(message.contains("held across"), "{message}");
            assert!(message.contains("stackholm::DEFAULT"), "{message}");
            // Both checkpoints are off the stack: what other futures of the
            // task see is the scope as it was.
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&LEVEL), Some(0));
            tokio::task::yield_now().await;
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&LEVEL), Some(0));
            // Dropping the future (inside its own checkpoint) changes nothing
            // either: the held guard's checkpoint is already gone.
            drop(inner);
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&LEVEL), Some(0));
        })
        .await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        1,
        "the inner future was polled"
    );
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn an_ambient_guard_held_across_an_await_in_an_instrumented_future_panics_outside_any_scope() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&LEVEL, 0).unwrap();
    let mut future = pin!(async {
        let _held = DEFAULT.enter();
        DEFAULT.set(&LEVEL, 2).unwrap();
        std::future::pending::<()>().await;
    }
    .in_checkpoint(Checkpoint::new().with_value(&LEVEL, 1)));
    let mut cx = Context::from_waker(Waker::noop());
    let panic = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))).unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("held across"), "{message}");
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&LEVEL), Some(0));
}

#[test]
fn a_guard_held_across_an_await_in_a_scoped_future_panics_and_is_left() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&LEVEL, 100).unwrap();
    let mut scoped = pin!(
        DEFAULT.scope(Checkpoint::new().with_value(&LEVEL, 0), async {
            {
                let _held = DEFAULT.task().enter();
                DEFAULT.set(&LEVEL, 2).unwrap();
                futures_util::pending!();
                // Its checkpoint is gone: dropped here, at the next poll,
                // the guard does nothing.
            }
            // What the scope's stack is at the next poll.
            (DEFAULT.depth(), DEFAULT.get(&LEVEL))
        })
    );
    let mut cx = Context::from_waker(Waker::noop());
    let panic = catch_unwind(AssertUnwindSafe(|| scoped.as_mut().poll(&mut cx))).unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("held across"), "{message}");
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&LEVEL), Some(100));
    // The scope's stack is back to its root; the thread's is untouched.
    assert_eq!(scoped.as_mut().poll(&mut cx), Poll::Ready((1, Some(0))));
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&LEVEL), Some(100));
}

#[tokio::test]
async fn a_future_dropped_inside_nested_checkpoints_leaves_the_stack_as_it_was() {
    let dropped_inside = Arc::new(AtomicUsize::new(0));
    struct SeesLevelOnDrop(Arc<AtomicUsize>);
    impl Drop for SeesLevelOnDrop {
        fn drop(&mut self) {
            self.0
                .store(DEFAULT.get(&LEVEL).unwrap_or(99), Ordering::SeqCst);
        }
    }
    let dropped_deep = Arc::new(AtomicUsize::new(0));
    DEFAULT
        .scope(Checkpoint::new().with_value(&LEVEL, 0), async {
            let witness = SeesLevelOnDrop(Arc::clone(&dropped_inside));
            let deep_witness = SeesLevelOnDrop(Arc::clone(&dropped_deep));
            let stuck = async move {
                let _witness = witness;
                // Two nested checkpoints, the first setting a value, each
                // scoping the rest of the future.
                async move {
                    DEFAULT.set(&LEVEL, 2).unwrap();
                    async move {
                        let _deep_witness = deep_witness;
                        assert_eq!(DEFAULT.depth(), 4);
                        std::future::pending::<()>().await;
                    }
                    .in_checkpoint(Checkpoint::new())
                    .await;
                }
                .in_checkpoint(Checkpoint::new())
                .await;
            }
            .in_checkpoint(Checkpoint::new().with_value(&LEVEL, 1));
            let timed_out = tokio::time::timeout(Duration::from_millis(5), stuck).await;
            assert!(timed_out.is_err());
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&LEVEL), Some(0));
        })
        .await;
    // The inner futures were dropped inside their own checkpoints: the
    // witness, dropped after the nested futures below it, saw the outer
    // checkpoint's value (not the scope root's 0, nor nothing, nor the
    // nested 2), and the deep witness saw the nested checkpoints' value.
    assert_eq!(dropped_inside.load(Ordering::SeqCst), 1);
    assert_eq!(dropped_deep.load(Ordering::SeqCst), 2);

    // A whole scoped future dropped mid-flight takes its stack with it, and
    // drops the values of its checkpoints inside its scope.
    struct RecordsLevelOnDrop(&'static str, Arc<Mutex<Vec<String>>>);
    impl Drop for RecordsLevelOnDrop {
        fn drop(&mut self) {
            let seen = format!("{} saw {:?}", self.0, DEFAULT.get(&LEVEL));
            self.1.lock().unwrap().push(seen);
        }
    }
    static RECORDS: Key<RecordsLevelOnDrop> = Key::new("records");
    let log = Arc::new(Mutex::new(Vec::new()));
    let root = Checkpoint::new()
        .with_value(&LEVEL, 7)
        .with_value(&RECORDS, RecordsLevelOnDrop("root", Arc::clone(&log)));
    let in_flight = RecordsLevelOnDrop("in flight", Arc::clone(&log));
    // What the scope's stack shows right after each poll of the in-flight
    // future, to a future joined with it.
    let between = Arc::new(Mutex::new(Vec::new()));
    let watched = Arc::clone(&between);
    let mut scoped = Box::pin(DEFAULT.scope(root, async move {
        let in_flight = async move {
            DEFAULT.set(&RECORDS, in_flight).unwrap();
            DEFAULT.set(&LEVEL, 8).unwrap();
            std::future::pending::<()>().await;
        }
        .in_checkpoint(Checkpoint::new());
        let watcher = async move {
            loop {
                let seen = (DEFAULT.depth(), DEFAULT.get(&LEVEL));
                watched.lock().unwrap().push(seen);
                futures_util::pending!();
            }
        };
        futures_util::join!(in_flight, watcher);
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(scoped.as_mut().poll(&mut cx).is_pending());
    assert!(scoped.as_mut().poll(&mut cx).is_pending());
    // Between its polls the future's own checkpoint is off the scope's
    // stack, and the scope's stack off the thread's.
    assert_eq!(*between.lock().unwrap(), [(1, Some(7)), (1, Some(7))]);
    assert_eq!(DEFAULT.depth(), 0);
    drop(scoped);
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(
        *log.lock().unwrap(),
        ["in flight saw Some(7)", "root saw None"]
    );
}

#[test]
fn a_panicking_poll_leaves_the_stack_as_it_was() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&LEVEL, 0).unwrap();
    let mut future = pin!(async {
        let _a = DEFAULT.enter();
        DEFAULT.set(&LEVEL, 2).unwrap();
        panic!("inside nested checkpoints");
    }
    .in_checkpoint(Checkpoint::new().with_value(&LEVEL, 1)));
    let mut cx = Context::from_waker(Waker::noop());
    let result = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
    assert!(result.is_err());
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&LEVEL), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_scoped_task_affects_no_other_task() {
    let panicking = tokio::spawn(
        DEFAULT.scope(Checkpoint::new().with_value(&LEVEL, 1), async {
            async {
                tokio::task::yield_now().await;
                let _b = DEFAULT.task().enter();
                panic!("handler failed");
            }
            .in_checkpoint(Checkpoint::new())
            .await;
        }),
    );
    let panic = panicking.await.unwrap_err().into_panic();
    assert_eq!(panic_message(&*panic), "handler failed");
    let healthy = tokio::spawn(DEFAULT.scope(Checkpoint::new(), async {
        let before = (DEFAULT.depth(), DEFAULT.get(&LEVEL));
        tokio::task::yield_now().await;
        before
    }));
    // Its own root, and nothing the failed task left.
    assert_eq!(healthy.await.unwrap(), (1, None));
    let depths = futures_on_every_worker(2, || DEFAULT.depth()).await;
    assert!(depths.iter().all(|&d| d == 0), "{depths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_the_visible_values_and_nothing_leaks_back() {
    DEFAULT
        .scope(Checkpoint::new(), async {
            DEFAULT.set(&SHARED, Unclonable("parent")).unwrap();
            DEFAULT.set(&LEVEL, 1).unwrap();
            async {
                DEFAULT.set(&LEVEL, 2).unwrap();
                DEFAULT.set(&PRIVATE_TASK_ID, 5).unwrap();
                DEFAULT.set(&TASK_ID, 6).unwrap();
                assert_eq!(DEFAULT.depth(), 2);

                let child = tokio::spawn(DEFAULT.inherit(async {
                    let seen = (
                        DEFAULT.with(&SHARED, |v| v.map(|v| v.0)),
                        DEFAULT.get(&LEVEL),
                        DEFAULT.get(&PRIVATE_TASK_ID),
                        DEFAULT.get(&TASK_ID),
                        DEFAULT.depth(),
                    );
                    DEFAULT.set(&LEVEL, 100).unwrap();
                    DEFAULT.set(&SHARED, Unclonable("child")).unwrap();
                    tokio::task::yield_now().await;
                    seen
                }));
                // The parent goes on changing its own values meanwhile.
                DEFAULT.set(&LEVEL, 3).unwrap();
                let seen = child.await.unwrap();
                // A private value, or one of a key not inherited, set where
                // the child was spawned is not carried.
                assert_eq!(seen, (Some("parent"), Some(2), None, None, 1));
                assert_eq!(DEFAULT.get(&LEVEL), Some(3));
                assert_eq!(DEFAULT.get(&PRIVATE_TASK_ID), Some(5));
                assert_eq!(DEFAULT.get(&TASK_ID), Some(6));
                DEFAULT.with(&SHARED, |v| assert_eq!(v, Some(&Unclonable("parent"))));
            }
            .in_checkpoint(Checkpoint::new())
            .await;
            assert_eq!(DEFAULT.get(&LEVEL), Some(1));
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_carries_the_visible_values() {
    // The checkpoint is on the test thread's stack, entered on every poll.
    async {
        DEFAULT.set(&SHARED, Unclonable("caller")).unwrap();
        let seen = tokio::task::spawn_blocking(DEFAULT.inherit_fn(|| {
            let seen = DEFAULT.with(&SHARED, |v| v.map(|v| v.0));
            DEFAULT.set(&SHARED, Unclonable("blocking")).unwrap();
            seen
        }))
        .await
        .unwrap();
        assert_eq!(seen, Some("caller"));
        DEFAULT.with(&SHARED, |v| assert_eq!(v, Some(&Unclonable("caller"))));
    }
    .in_checkpoint(Checkpoint::new())
    .await;
    // The blocking pool thread's own stack was not touched.
    let depth = tokio::task::spawn_blocking(|| DEFAULT.depth())
        .await
        .unwrap();
    assert_eq!(depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherit_runs_a_future_in_a_scope_rooted_at_the_visible_values() {
    DEFAULT
        .scope(Checkpoint::new().with_value(&LEVEL, 1), async {
            async {
                DEFAULT.set(&SHARED, Unclonable("parent")).unwrap();
                let mut jobs = tokio::task::JoinSet::new();
                for i in 0..4 {
                    jobs.spawn(DEFAULT.inherit(async move {
                        let seen = (
                            DEFAULT.get(&LEVEL),
                            DEFAULT.with(&SHARED, |v| v.map(|v| v.0)),
                            DEFAULT.depth(),
                        );
                        DEFAULT.set(&LEVEL, 10 + i).unwrap();
                        tokio::task::yield_now().await;
                        assert_eq!(DEFAULT.get(&LEVEL), Some(10 + i));
                        seen
                    }));
                }
                // What the jobs set stays in them.
                DEFAULT.set(&LEVEL, 2).unwrap();
                let mut joined = 0;
                while let Some(seen) = jobs.join_next().await {
                    assert_eq!(seen.unwrap(), (Some(1), Some("parent"), 1));
                    joined += 1;
                }
                assert_eq!(joined, 4);
                assert_eq!(DEFAULT.get(&LEVEL), Some(2));
            }
            .in_checkpoint(Checkpoint::new())
            .await;
            assert_eq!(DEFAULT.get(&LEVEL), Some(1));
        })
        .await;
}

#[test]
fn spawn_thread_carries_the_visible_values() {
    let _thread = DEFAULT.enter();
    DEFAULT.set(&SHARED, Unclonable("caller")).unwrap();
    DEFAULT.set(&COUNTER, 1).unwrap();
    let seen = std::thread::spawn(DEFAULT.inherit_fn(|| {
        let seen = (
            DEFAULT.with(&SHARED, |v| v.map(|v| v.0)),
            DEFAULT.get(&COUNTER),
        );
        DEFAULT.set(&COUNTER, 2).unwrap();
        assert_eq!(DEFAULT.remove(&SHARED), Ok(true));
        seen
    }))
    .join()
    .unwrap();
    assert_eq!(seen, (Some("caller"), Some(1)));
    assert_eq!(DEFAULT.get(&COUNTER), Some(1));
    assert!(DEFAULT.with(&SHARED, |v| v.is_some()));
}

#[test]
fn a_snapshot_outside_any_checkpoint_is_empty() {
    /// What entering `snapshot` on a stack of its own shows of every
    /// inherited key of these tests.
    fn contents(snapshot: Checkpoint) -> (Option<usize>, Option<u64>, Option<&'static str>) {
        let mut stack = Stack::new();
        let entered = stack.enter_with(snapshot);
        (
            entered.get(&LEVEL).copied(),
            entered.get(&COUNTER).copied(),
            entered.get(&SHARED).map(|v| v.0),
        )
    }
    assert_eq!(contents(DEFAULT.snapshot()), (None, None, None));
    {
        // Nor does a snapshot taken after the checkpoints are left hold
        // what they held.
        let _left = DEFAULT.enter();
        DEFAULT.set(&COUNTER, 1).unwrap();
        DEFAULT.set(&SHARED, Unclonable("left")).unwrap();
    }
    assert_eq!(contents(DEFAULT.snapshot()), (None, None, None));
    let _root = DEFAULT.enter();
    DEFAULT.set(&COUNTER, 3).unwrap();
    DEFAULT.with(&COUNTER, |_| {
        // Inside a read, taking a snapshot is refused.
        let panic = catch_unwind(|| drop(DEFAULT.snapshot())).unwrap_err();
        let message = panic_message(&*panic);
        assert!(
            message.contains("cannot take a snapshot: the storage is lent to a `with` closure"),
            "{message}"
        );
    });
    assert_eq!(contents(DEFAULT.snapshot()), (None, Some(3), None));
    assert_eq!(
        DEFAULT.get(&COUNTER),
        Some(3),
        "the snapshot shares, not takes"
    );
}

/// Implemented twice for `Send` types, so that naming it on one is
/// ambiguous and does not compile: `static_assertions`' trick for a
/// negative bound.
trait AmbiguousIfSend<A> {
    fn not_send() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
#[allow(dead_code)]
struct IfSend;
impl<T: ?Sized + Send> AmbiguousIfSend<IfSend> for T {}

/// A future that would hold a task guard across an await. (A named
/// function, so that its type's auto traits are known where it is used.)
async fn holds_a_task_guard_across_an_await() {
    let _g = DEFAULT.task().enter();
    tokio::task::yield_now().await;
}

/// Compiles only for a value whose type is not `Send`.
fn assert_not_send<T: AmbiguousIfSend<A>, A>(_: &T) {}

#[test]
fn futures_are_send_and_guards_are_not() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_type<T: Send>() {}
    let scoped: Scoped<_> = DEFAULT.scope(Checkpoint::new(), async {});
    assert_send(&scoped);
    let instrumented: InCheckpoint<_> = async {}.in_checkpoint(Checkpoint::new());
    assert_send(&instrumented);
    assert_send_type::<Scope>();
    // Instrumented futures that set values can be spawned.
    let sets = async {
        DEFAULT.set(&LEVEL, 1).unwrap();
        tokio::task::yield_now().await;
    }
    .in_checkpoint(Checkpoint::new());
    assert_send(&sets);
    // Guards are `!Send`, task guards included (a task handle's guard is a
    // `CheckpointGuard` too; this line would not compile if it were
    // `Send`), so a future holding one across an await cannot be spawned.
    let _ = <CheckpointGuard as AmbiguousIfSend<_>>::not_send;
    assert_not_send(&holds_a_task_guard_across_an_await());
}

#[test]
fn a_scope_a_future_completed_in_keeps_what_it_left() {
    // What `Scoped::take_scope` was for (running more, a response body say,
    // in the stack a completed future left) is done by owning the `Scope`
    // and polling the future inside its runs.
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    let mut future = pin!(async {
        DEFAULT.set(&LEVEL, 9).unwrap();
        futures_util::pending!();
        DEFAULT.set(&COUNTER, 10).unwrap();
    });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(scope.run(|| future.as_mut().poll(&mut cx)).is_pending());
    assert!(scope.run(|| future.as_mut().poll(&mut cx)).is_ready());
    assert_eq!(
        scope.run(|| (DEFAULT.get(&LEVEL), DEFAULT.get(&COUNTER))),
        (Some(9), Some(10))
    );
    assert_eq!(DEFAULT.get(&LEVEL), None);
}

#[test]
fn into_inner_takes_the_future_out_of_its_checkpoint() {
    let instrumented =
        async { DEFAULT.get(&LEVEL) }.in_checkpoint(Checkpoint::new().with_value(&LEVEL, 4));
    assert!(format!("{instrumented:?}").contains("stackholm::DEFAULT"));
    let inner = instrumented.into_inner();
    let mut inner = pin!(inner);
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(inner.as_mut().poll(&mut cx), Poll::Ready(None));
}
