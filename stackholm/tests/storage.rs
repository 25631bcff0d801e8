//! The ambient per-thread storages: guards, isolation, panics and misuse.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use stackholm::{Checkpoint, Error, Key, Operation, Scope, DEFAULT};

static A: Key<i32> = Key::new("a");
static COUNTER: Key<u64> = Key::new("counter");

/// A value whose destructor panics, and keys for it and a well-behaved one.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("value destructor");
    }
}

static BAD: Key<PanicsOnDrop> = Key::new("bad");
static GOOD: Key<Arc<()>> = Key::new("good");

stackholm::storage! {
    /// A storage of the tests' own, independent of DEFAULT.
    static OTHER;
}

#[test]
fn guards_enter_and_leave_nested_checkpoints() -> Result<(), Error> {
    assert_eq!(DEFAULT.depth(), 0);
    {
        let _outer = DEFAULT.enter();
        DEFAULT.set(&A, 1)?;
        {
            let _inner = DEFAULT.enter_with(Checkpoint::new().with_value(&A, 2));
            assert_eq!(DEFAULT.depth(), 2);
            assert_eq!(DEFAULT.get(&A), Some(2));
            assert!(DEFAULT.remove(&A)?);
            assert_eq!(DEFAULT.get(&A), Some(1));
        }
        assert_eq!(DEFAULT.get(&A), Some(1));
        DEFAULT.set_block(&A, 7)?;
        assert_eq!(DEFAULT.get_block(&A), Some(7));
        assert!(DEFAULT.contains(&A));
        assert_eq!(DEFAULT.reset(&A)?, 1);
        assert!(!DEFAULT.contains(&A));
        assert!(DEFAULT.remove_block(&A)?);
    }
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(DEFAULT.get(&A), None);
    let err = DEFAULT.try_get(&A).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoCheckpoint {
                operation: Operation::Read,
                key: Some("a"),
                ..
            }
        ),
        "{err:?}"
    );
    let err = DEFAULT.set(&A, 1).unwrap_err();
    assert!(
        matches!(
            err.error(),
            Error::NoCheckpoint {
                operation: Operation::Set,
                key: Some("a"),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.into_value(), 1);
    Ok(())
}

#[test]
fn declared_storages_are_independent() -> Result<(), Error> {
    let _app = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    assert_eq!(OTHER.get(&A), None);
    assert!(
        OTHER.set(&A, 2).is_err(),
        "OTHER has no checkpoint of its own"
    );
    let _own = OTHER.enter();
    OTHER.set(&A, 2)?;
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(OTHER.get(&A), Some(2));
    assert!(OTHER.name().ends_with("::OTHER"), "{}", OTHER.name());
    Ok(())
}

#[test]
fn reads_nest_inside_a_read_but_writes_are_refused() -> Result<(), Error> {
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    DEFAULT.with(&A, |outer| {
        assert_eq!(outer, Some(&1));
        assert_eq!(DEFAULT.get(&A), Some(1));
        assert_eq!(DEFAULT.depth(), 1);
        let err = DEFAULT.set(&A, 2).unwrap_err();
        assert!(
            matches!(
                err.error(),
                Error::Busy {
                    operation: Operation::Set,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.into_value(), 2, "the refused value is handed back");
        assert!(matches!(
            DEFAULT.try_enter(),
            Err(Error::Busy {
                operation: Operation::Enter,
                ..
            })
        ));
        // Another storage is a different stack, free to change.
        let _other = OTHER.enter();
        OTHER.set(&A, 3).unwrap();
    });
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(DEFAULT.depth(), 1);
    Ok(())
}

#[test]
fn entering_inside_a_read_panics_with_a_clear_message() {
    let _root = DEFAULT.enter();
    let panic = catch_unwind(|| DEFAULT.with(&A, |_| drop(DEFAULT.enter()))).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("cannot enter"), "{message}");
    assert!(message.contains("stackholm::DEFAULT"), "{message}");
    assert_eq!(DEFAULT.depth(), 1);
}

#[test]
fn a_panic_unwinds_nested_checkpoints_to_the_prior_depth() -> Result<(), Error> {
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    let result = catch_unwind(|| {
        let _a = DEFAULT.enter();
        DEFAULT.set(&A, 2).unwrap();
        let _b = DEFAULT.enter_with(Checkpoint::new().with_value(&A, 3));
        let _c = DEFAULT.enter();
        panic!("boom");
    });
    assert!(result.is_err());
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    Ok(())
}

#[test]
fn an_owned_stack_unwinds_the_same_way() -> Result<(), Error> {
    let mut stack = stackholm::Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut inner = root.enter();
        inner.set(&A, 2).unwrap();
        let _deeper = inner.enter();
        panic!("boom");
    }));
    assert!(result.is_err());
    assert_eq!(root.depth(), 1);
    assert_eq!(root.get(&A), Some(&1));
    Ok(())
}

#[test]
fn dropping_an_outer_guard_first_leaves_the_inner_checkpoints_too() -> Result<(), Error> {
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    let outer = DEFAULT.enter();
    DEFAULT.set(&A, 2)?;
    let inner = DEFAULT.enter();
    DEFAULT.set(&A, 3)?;
    drop(outer);
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    // The inner guard's checkpoint is gone: dropping it must not leave the
    // root, nor a checkpoint entered since.
    let replacement = DEFAULT.enter();
    DEFAULT.set(&A, 4)?;
    drop(inner);
    assert_eq!(DEFAULT.depth(), 2);
    assert_eq!(DEFAULT.get(&A), Some(4));
    drop(replacement);
    assert_eq!(DEFAULT.get(&A), Some(1));
    Ok(())
}

#[test]
fn a_guard_dropped_inside_a_scope_leaves_its_checkpoint_outside_it() -> Result<(), Error> {
    let _outer = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    let inner = DEFAULT.enter();
    DEFAULT.set(&A, 2)?;
    DEFAULT.sync_scope(|| {
        let _scoped = DEFAULT.enter();
        drop(inner);
        // The scope's own stack is untouched.
        assert_eq!(DEFAULT.depth(), 1);
    });
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    Ok(())
}

#[test]
fn a_forgotten_guard_is_left_by_its_outer_guard() {
    let outer = DEFAULT.enter();
    std::mem::forget(DEFAULT.enter());
    assert_eq!(DEFAULT.depth(), 2);
    drop(outer);
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn a_value_whose_destructor_panics_does_not_corrupt_the_stack() -> Result<(), Error> {
    let good = Arc::new(());

    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    let guard = DEFAULT.enter();
    DEFAULT.set(&GOOD, Arc::clone(&good))?;
    DEFAULT.set(&BAD, PanicsOnDrop)?;
    DEFAULT.set(&A, 2)?;
    DEFAULT.set_block(&A, 3)?;
    assert!(catch_unwind(AssertUnwindSafe(|| drop(guard))).is_err());

    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(DEFAULT.get_block(&A), None);
    assert!(!DEFAULT.contains(&BAD));
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");
    // The depth the bad frame had is reused cleanly.
    let _again = DEFAULT.enter();
    assert_eq!(DEFAULT.get(&A), Some(1));
    DEFAULT.set(&A, 5)?;
    assert_eq!(DEFAULT.get(&A), Some(5));
    Ok(())
}

#[test]
fn every_thread_has_its_own_stack() -> Result<(), Error> {
    const THREADS: usize = 16;
    const INCREMENTS: u64 = 1000;
    let _main = DEFAULT.enter();
    DEFAULT.set(&COUNTER, 7)?;
    let finished = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (finished, barrier) = (Arc::clone(&finished), Arc::clone(&barrier));
            std::thread::spawn(move || -> Result<u64, Error> {
                assert_eq!(DEFAULT.get(&COUNTER), None, "a new thread starts empty");
                let _checkpoint = DEFAULT.enter();
                DEFAULT.set(&COUNTER, 0)?;
                barrier.wait();
                for _ in 0..INCREMENTS {
                    let next = DEFAULT.get(&COUNTER).unwrap() + 1;
                    DEFAULT.set(&COUNTER, next)?;
                    std::thread::yield_now();
                }
                finished.fetch_add(1, Ordering::Relaxed);
                Ok(DEFAULT.get(&COUNTER).unwrap())
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap()?, INCREMENTS);
    }
    assert_eq!(finished.load(Ordering::Relaxed), THREADS);
    assert_eq!(DEFAULT.get(&COUNTER), Some(7));
    Ok(())
}

#[test]
fn reading_from_another_thread_local_destructor_does_not_panic() {
    struct ReadsOnDrop;
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            // DEFAULT's own thread-local may already be gone; either way
            // this is an ordinary read.
            let _ = DEFAULT.get(&A);
            let _ = DEFAULT.depth();
            let _ = DEFAULT.try_enter();
        }
    }
    thread_local! {
        static READER: ReadsOnDrop = const { ReadsOnDrop };
    }
    std::thread::spawn(|| {
        let _guard = DEFAULT.enter();
        READER.with(|_| ());
    })
    .join()
    .unwrap();
}

#[test]
fn debug_shows_the_storage_name() {
    let guard = DEFAULT.enter();
    assert_eq!(
        format!("{DEFAULT:?}"),
        "Storage { name: \"stackholm::DEFAULT\", .. }"
    );
    assert!(format!("{guard:?}").contains("stackholm::DEFAULT"));
}

#[test]
fn a_scope_drops_its_values_when_it_ends_and_the_next_scope_starts_empty() -> Result<(), Error> {
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    static HELD: Key<Counted> = Key::new("held");
    static VALUE: Key<u32> = Key::new("value");
    static NAME: Key<&str> = Key::new("name");

    let drops = Arc::new(AtomicUsize::new(0));
    for round in 0..3 {
        let mut scope = Scope::with_root(DEFAULT, Checkpoint::new().with_value(&VALUE, round));
        scope.run(|| -> Result<(), Error> {
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&VALUE), Some(round));
            assert!(!DEFAULT.with(&HELD, |held| held.is_some()));
            assert_eq!(DEFAULT.get_block(&NAME), None);
            DEFAULT.set(&HELD, Counted(Arc::clone(&drops)))?;
            let inner = DEFAULT.enter();
            DEFAULT.set_block(&NAME, "inner")?;
            DEFAULT.set(&HELD, Counted(Arc::clone(&drops)))?;
            // Left open on purpose: ending the scope leaves it.
            std::mem::forget(inner);
            Ok(())
        })?;
        assert_eq!(drops.load(Ordering::SeqCst), 2 * round as usize);
        drop(scope);
        assert_eq!(drops.load(Ordering::SeqCst), 2 * round as usize + 2);
    }
    // The spare stacks a thread keeps for its next scopes hold nothing.
    let mut scope = Scope::new(DEFAULT);
    assert_eq!(scope.stack().depth(), 0);
    assert_eq!(
        scope.run(|| DEFAULT.try_get(&VALUE)),
        Err(Error::NoCheckpoint {
            operation: "get",
            key: Some("value")
        })
    );
    Ok(())
}

#[test]
fn a_scope_whose_value_panics_when_dropped_still_drops_the_rest() -> Result<(), Error> {
    let good = Arc::new(());

    let mut scope = Scope::with_root(DEFAULT, Checkpoint::new());
    scope.run(|| -> Result<(), Error> {
        DEFAULT.set(&GOOD, Arc::clone(&good))?;
        std::mem::forget(DEFAULT.enter());
        DEFAULT.set(&BAD, PanicsOnDrop)?;
        DEFAULT.set(&GOOD, Arc::clone(&good))
    })?;
    assert!(catch_unwind(AssertUnwindSafe(|| drop(scope))).is_err());
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");

    let mut next = Scope::new(DEFAULT);
    assert_eq!(
        next.run(|| (DEFAULT.depth(), DEFAULT.get(&GOOD))),
        (0, None)
    );
    Ok(())
}

#[test]
fn a_destructor_that_runs_a_scope_while_a_set_aside_stack_is_left_is_refused_cleanly() {
    struct RunsScope;
    impl Drop for RunsScope {
        fn drop(&mut self) {
            DEFAULT.sync_scope(|| ());
        }
    }
    static RUNS_SCOPE: Key<RunsScope> = Key::new("runs_scope");

    // A guard of the thread's stack, dropped inside a scope: its frame is
    // left on the set-aside thread stack, where the value's destructor runs.
    let outside = DEFAULT.enter();
    DEFAULT.set(&RUNS_SCOPE, RunsScope).unwrap();
    DEFAULT.set(&A, 1).unwrap();
    let mut scope = Scope::with_root(DEFAULT, Checkpoint::new().with_value(&A, 2));
    let refused = catch_unwind(AssertUnwindSafe(|| scope.run(|| drop(outside))));
    let message = refused.expect_err("the nested scope is refused");
    let message = message
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| message.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        message.contains("cannot run a scope from a destructor"),
        "{message}"
    );

    // Every stack is where it belongs: the thread's is empty, the scope
    // still has its own root.
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&A))),
        (1, Some(2))
    );
}
