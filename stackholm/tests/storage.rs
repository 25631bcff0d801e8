//! The ambient per-thread storages: guards, isolation, panics and misuse.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use stackholm::{Checkpoint, Error, Key, Operation, Scope, DEFAULT};

static A: Key<i32> = Key::new("a");
/// `A`'s counterpart whose values are private to the checkpoint that set
/// them (what block values were).
static PRIVATE_A: Key<i32> = Key::new("private_a").private();
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
            assert_eq!(DEFAULT.remove(&A), Ok(true));
            assert_eq!(DEFAULT.get(&A), Some(1));
        }
        assert_eq!(DEFAULT.get(&A), Some(1));
        DEFAULT.set(&PRIVATE_A, 7)?;
        assert_eq!(DEFAULT.get(&PRIVATE_A), Some(7));
        assert!(DEFAULT.get(&A).is_some());
        assert_eq!(DEFAULT.reset(&A), Ok(1));
        assert!(DEFAULT.get(&A).is_none());
        // Resetting `A` leaves the private value alone.
        assert_eq!(DEFAULT.get(&PRIVATE_A), Some(7));
        assert_eq!(DEFAULT.remove(&PRIVATE_A), Ok(true));
        assert_eq!(DEFAULT.get(&PRIVATE_A), None);
        assert_eq!(
            DEFAULT.remove(&PRIVATE_A),
            Ok(false),
            "nothing left to remove"
        );
        assert_eq!(DEFAULT.remove(&A), Ok(false), "nothing left to remove");
        assert_eq!(DEFAULT.reset(&A), Ok(0));
    }
    // No checkpoint active: reads find nothing, removals remove nothing,
    // writes are refused.
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(DEFAULT.get(&A), None);
    assert_eq!(DEFAULT.get(&PRIVATE_A), None);
    assert_eq!(DEFAULT.remove(&A), Ok(false));
    assert_eq!(DEFAULT.reset(&A), Ok(0));
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

/// Sets `A` when dropped, and keeps what the write was told.
struct SetsOnDrop(Arc<Mutex<Option<Error>>>);

impl Drop for SetsOnDrop {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = DEFAULT.set(&A, 1).err().map(|err| err.error());
    }
}

static SETS_ON_DROP: Key<SetsOnDrop> = Key::new("sets_on_drop");

#[test]
fn a_refused_write_tells_whether_a_scope_was_running() {
    // On the thread's own stack: a tower service's middleware outside the
    // layer meets this, and is told about the layer.
    let err = DEFAULT.set(&A, 1).unwrap_err().error();
    assert!(
        matches!(
            err,
            Error::NoCheckpoint {
                outside_scope: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("`StackholmLayer`"), "{err}");
    // In a scope whose root has ended (a root value's destructor): a
    // checkpoint is what is missing, not the layer.
    let seen = Arc::new(Mutex::new(None));
    let root = Checkpoint::new().with_value(&SETS_ON_DROP, SetsOnDrop(Arc::clone(&seen)));
    DEFAULT.sync_scope(root, || ());
    let err = seen.lock().unwrap().take().expect("the write was refused");
    assert_eq!(
        err.to_string(),
        "cannot set `a`: no checkpoint is active; enter a checkpoint first"
    );
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
    // The name a storage was declared under shows in its `Debug`.
    let shown = format!("{OTHER:?}");
    assert!(shown.contains("::OTHER\""), "{shown}");
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
        // Entering is refused: `enter` panics, and the stack is unchanged.
        let panic = catch_unwind(|| drop(DEFAULT.enter())).unwrap_err();
        let message = panic_message(&*panic);
        assert!(
            message.contains("cannot enter a checkpoint: the storage is lent to a `with` closure"),
            "{message}"
        );
        assert_eq!(DEFAULT.depth(), 1);
        // Removing is refused too, and says why; nothing is removed.
        assert!(matches!(
            DEFAULT.remove(&A),
            Err(Error::Busy {
                operation: Operation::Remove,
                ..
            })
        ));
        assert!(matches!(
            DEFAULT.reset(&A),
            Err(Error::Busy {
                operation: Operation::Reset,
                ..
            })
        ));
        assert_eq!(DEFAULT.get(&A), Some(1));
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
    DEFAULT.sync_scope(Checkpoint::new(), || {
        let _scoped = DEFAULT.enter();
        drop(inner);
        // The scope's own stack (its root and `_scoped`) is untouched.
        assert_eq!(DEFAULT.depth(), 2);
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
    DEFAULT.set(&PRIVATE_A, 3)?;
    assert!(catch_unwind(AssertUnwindSafe(|| drop(guard))).is_err());

    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(DEFAULT.get(&PRIVATE_A), None);
    assert!(!DEFAULT.with(&BAD, |bad| bad.is_some()));
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");
    // The depth the bad frame had is reused cleanly: none of its values,
    // private ones included, shows through there.
    let _again = DEFAULT.enter();
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(DEFAULT.get(&PRIVATE_A), None);
    assert!(!DEFAULT.with(&BAD, |bad| bad.is_some()));
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
    /// What a destructor saw: `A` and the depth, whether a snapshot could
    /// be taken, and what entering did (the panic message, if it panicked).
    type Saw = (Option<i32>, usize, bool, Result<(), String>);
    static SEEN: Mutex<Vec<Saw>> = Mutex::new(Vec::new());
    struct ReadsOnDrop;
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            // DEFAULT's own thread-local may already be gone; either way
            // these are ordinary reads, and must not panic (a panic escaping
            // a thread-local destructor aborts the process).
            let read = (DEFAULT.get(&A), DEFAULT.depth());
            let snapshot = catch_unwind(|| drop(DEFAULT.snapshot())).is_ok();
            // Entering works if the storage is still there, and panics,
            // saying why, if it is gone.
            let entered = catch_unwind(|| drop(DEFAULT.enter())).map_err(|p| panic_message(&*p));
            SEEN.lock()
                .unwrap()
                .push((read.0, read.1, snapshot, entered));
        }
    }
    thread_local! {
        static READER: ReadsOnDrop = const { ReadsOnDrop };
    }
    // Thread-locals are destroyed in an order of the platform's choosing
    // (commonly the reverse of first use): one thread uses DEFAULT first,
    // the other READER first, so that each order is likely to be seen.
    std::thread::spawn(|| {
        let _guard = DEFAULT.enter();
        READER.with(|_| ());
    })
    .join()
    .unwrap();
    std::thread::spawn(|| {
        READER.with(|_| ());
        let _guard = DEFAULT.enter();
    })
    .join()
    .unwrap();
    let seen = std::mem::take(&mut *SEEN.lock().unwrap());
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (a, depth, snapshot, entered) in seen {
        assert_eq!((a, depth), (None, 0));
        assert!(
            snapshot,
            "a snapshot on an exiting thread is empty, not a panic"
        );
        if let Err(message) = entered {
            assert!(message.contains("the thread is exiting"), "{message}");
        }
    }
}

#[test]
fn debug_shows_the_storage_name() {
    let guard = DEFAULT.enter();
    assert_eq!(
        format!("{DEFAULT:?}"),
        "Storage { name: \"stackholm::DEFAULT\", task_only: false, .. }"
    );
    assert_eq!(
        format!("{:?}", DEFAULT.task()),
        "Storage { name: \"stackholm::DEFAULT\", task_only: true, .. }"
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
    static PRIVATE_HELD: Key<Counted> = Key::new("private_held").private();
    static VALUE: Key<u32> = Key::new("value");
    static NAME: Key<&str> = Key::new("name").private();

    let drops = Arc::new(AtomicUsize::new(0));
    for round in 0..3 {
        let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&VALUE, round));
        scope.run(|| -> Result<(), Error> {
            assert_eq!(DEFAULT.depth(), 1);
            assert_eq!(DEFAULT.get(&VALUE), Some(round));
            assert!(!DEFAULT.with(&HELD, |held| held.is_some()));
            assert!(!DEFAULT.with(&PRIVATE_HELD, |held| held.is_some()));
            assert_eq!(DEFAULT.get(&NAME), None);
            DEFAULT.set(&HELD, Counted(Arc::clone(&drops)))?;
            Ok(())
        })?;
        // Only the root is ever active in a scope between runs (a guard
        // kept past a run is left by the run itself; see
        // `a_guard_kept_past_a_scope_run_is_left_and_reported`): the values
        // of both kinds that the root holds when the scope ends are dropped
        // with it.
        scope.run(|| -> Result<(), Error> {
            assert_eq!(DEFAULT.depth(), 1);
            assert!(
                DEFAULT.with(&HELD, |held| held.is_some()),
                "kept between runs"
            );
            DEFAULT.set(&NAME, "root")?;
            DEFAULT.set(&PRIVATE_HELD, Counted(Arc::clone(&drops)))?;
            Ok(())
        })?;
        assert_eq!(scope.run(|| DEFAULT.depth()), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 2 * round as usize);
        drop(scope);
        assert_eq!(drops.load(Ordering::SeqCst), 2 * round as usize + 2);
    }
    // The spare stacks a thread keeps for its next scopes hold nothing: a
    // new scope has its own root and nothing else.
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    scope.run(|| {
        assert_eq!(DEFAULT.depth(), 1);
        assert_eq!(DEFAULT.get(&VALUE), None);
        assert!(!DEFAULT.with(&HELD, |held| held.is_some()));
        assert!(!DEFAULT.with(&PRIVATE_HELD, |held| held.is_some()));
        assert_eq!(DEFAULT.get(&NAME), None);
    });
    Ok(())
}

#[test]
fn a_scope_whose_value_panics_when_dropped_still_drops_the_rest() -> Result<(), Error> {
    static PRIVATE_GOOD: Key<Arc<()>> = Key::new("private_good").private();
    let good = Arc::new(());

    let mut scope = Scope::new(
        DEFAULT,
        Checkpoint::new().with_value(&GOOD, Arc::clone(&good)),
    );
    // Values dropped before and after the one that panics: the last set is
    // dropped first.
    scope.run(|| -> Result<(), Error> {
        DEFAULT.set(&BAD, PanicsOnDrop)?;
        DEFAULT.set(&PRIVATE_GOOD, Arc::clone(&good))?;
        Ok(())
    })?;
    assert_eq!(scope.run(|| DEFAULT.depth()), 1);
    assert_eq!(Arc::strong_count(&good), 3);
    let panic = catch_unwind(AssertUnwindSafe(|| drop(scope))).unwrap_err();
    assert_eq!(panic_message(&*panic), "value destructor");
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");

    let mut next = Scope::new(DEFAULT, Checkpoint::new());
    assert_eq!(
        next.run(|| (
            DEFAULT.depth(),
            DEFAULT.get(&GOOD),
            DEFAULT.get(&PRIVATE_GOOD)
        )),
        (1, None, None)
    );
    Ok(())
}

#[test]
fn a_destructor_can_run_a_scope_while_a_set_aside_stack_is_left() {
    /// What the destructor saw: the current stack's `A` and depth, and
    /// the same inside the scope it ran.
    type Seen = (Option<i32>, usize, (usize, Option<i32>));
    struct RunsScope(Arc<Mutex<Option<Seen>>>);
    impl Drop for RunsScope {
        fn drop(&mut self) {
            let nested = DEFAULT.sync_scope(Checkpoint::new().with_value(&A, 3), || {
                (DEFAULT.depth(), DEFAULT.get(&A))
            });
            *self.0.lock().unwrap() = Some((DEFAULT.get(&A), DEFAULT.depth(), nested));
        }
    }
    static RUNS_SCOPE: Key<RunsScope> = Key::new("runs_scope");

    // A guard of the thread's stack, dropped inside a scope: its frame is
    // left on the set-aside thread stack, and the value's destructor runs
    // after that, with the storage released, inside the running scope.
    let seen = Arc::new(Mutex::new(None));
    let outside = DEFAULT.enter();
    DEFAULT
        .set(&RUNS_SCOPE, RunsScope(Arc::clone(&seen)))
        .unwrap();
    DEFAULT.set(&A, 1).unwrap();
    let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&A, 2));
    scope.run(|| drop(outside));
    assert_eq!(
        seen.lock().unwrap().take(),
        Some((Some(2), 1, (1, Some(3)))),
        "the destructor ran, saw the running scope, and its own scope ran"
    );

    // Every stack is where it belongs: the thread's is empty, the scope
    // still has its own root.
    assert_eq!(DEFAULT.depth(), 0);
    assert_eq!(DEFAULT.get(&A), None);
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&A))),
        (1, Some(2))
    );
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// What a [`Witness`] saw when dropped: its name, `A`, the depth, and
/// whether a `WITNESS` is visible.
type Sighting = (&'static str, Option<i32>, usize, bool);

/// A value that records, when dropped, what its storage shows at that
/// moment.
struct Witness {
    name: &'static str,
    seen: Arc<Mutex<Vec<Sighting>>>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let seen = (
            self.name,
            DEFAULT.get(&A),
            DEFAULT.depth(),
            DEFAULT.with(&WITNESS, |witness| witness.is_some()),
        );
        self.seen.lock().unwrap().push(seen);
    }
}

static WITNESS: Key<Witness> = Key::new("witness");
static OTHER_WITNESS: Key<Witness> = Key::new("other_witness");

#[test]
fn a_destructor_sees_its_checkpoint_already_left_and_may_use_the_storage() -> Result<(), Error> {
    static IN_DROP: Key<i32> = Key::new("in_drop");
    /// Reads, enters a checkpoint, sets and reads again, from a destructor.
    struct UsesStorage(Arc<Mutex<Vec<String>>>);
    impl Drop for UsesStorage {
        fn drop(&mut self) {
            let mut log = self.0.lock().unwrap();
            log.push(format!("read {:?} at {}", DEFAULT.get(&A), DEFAULT.depth()));
            let own = DEFAULT.enter();
            DEFAULT.set(&IN_DROP, 9).unwrap();
            DEFAULT.set(&A, 8).unwrap();
            log.push(format!(
                "entered {:?} {:?} at {}",
                DEFAULT.get(&IN_DROP),
                DEFAULT.get(&A),
                DEFAULT.depth()
            ));
            drop(own);
            log.push(format!(
                "left {:?} {:?} at {}",
                DEFAULT.get(&IN_DROP),
                DEFAULT.get(&A),
                DEFAULT.depth()
            ));
            // Writing to the enclosing checkpoint works too.
            DEFAULT.set(&IN_DROP, 7).unwrap();
        }
    }
    static USES: Key<UsesStorage> = Key::new("uses_storage");

    let log = Arc::new(Mutex::new(Vec::new()));
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1)?;
    let inner = DEFAULT.enter();
    DEFAULT.set(&A, 2)?;
    DEFAULT.set(&USES, UsesStorage(Arc::clone(&log)))?;
    drop(inner);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "read Some(1) at 1",
            "entered Some(9) Some(8) at 2",
            "left None Some(1) at 1",
        ]
    );
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert_eq!(DEFAULT.get(&IN_DROP), Some(7), "set by the destructor");

    // A value replaced, removed or reset is dropped with the stack already
    // showing the change.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let witness = |name| Witness {
        name,
        seen: Arc::clone(&seen),
    };
    DEFAULT.set(&WITNESS, witness("replaced"))?;
    DEFAULT.set(&A, 3)?;
    DEFAULT.set(&WITNESS, witness("replacement"))?;
    assert_eq!(DEFAULT.remove(&WITNESS), Ok(true));
    DEFAULT.set(&OTHER_WITNESS, witness("reset"))?;
    DEFAULT.set(&A, 4)?;
    assert_eq!(DEFAULT.reset(&OTHER_WITNESS), Ok(1));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("replaced", Some(3), 1, true),
            ("replacement", Some(3), 1, false),
            ("reset", Some(4), 1, false)
        ]
    );
    assert!(!DEFAULT.with(&WITNESS, |witness| witness.is_some()));
    Ok(())
}

#[test]
fn a_destructor_panicking_while_the_thread_unwinds_does_not_abort() {
    let good = Arc::new(());
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1).unwrap();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _inner = DEFAULT.enter();
        DEFAULT.set(&GOOD, Arc::clone(&good)).unwrap();
        DEFAULT.set(&BAD, PanicsOnDrop).unwrap();
        DEFAULT.set(&A, 2).unwrap();
        panic!("first");
    }));
    // The process is still here: the destructor's panic, raised while the
    // first one unwound, was swallowed, and the first one went on.
    let panic = result.unwrap_err();
    assert_eq!(panic_message(&*panic), "first");
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(1));
    assert!(!DEFAULT.with(&BAD, |bad| bad.is_some()));
}

#[test]
fn the_first_of_several_destructor_panics_is_resumed_after_all_values_are_dropped() {
    struct PanicsWith(&'static str);
    impl Drop for PanicsWith {
        fn drop(&mut self) {
            panic!("{}", self.0);
        }
    }
    static FIRST: Key<PanicsWith> = Key::new("first");
    static SECOND: Key<PanicsWith> = Key::new("second");
    let good = Arc::new(());
    let guard = DEFAULT.enter();
    DEFAULT.set(&GOOD, Arc::clone(&good)).unwrap();
    DEFAULT.set(&FIRST, PanicsWith("set first")).unwrap();
    DEFAULT.set(&SECOND, PanicsWith("set second")).unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| drop(guard))).unwrap_err();
    // The last value set is dropped first.
    assert_eq!(panic_message(&*panic), "set second");
    assert_eq!(Arc::strong_count(&good), 1, "every other value was dropped");
    assert_eq!(DEFAULT.depth(), 0);
}

#[test]
fn dropping_a_scope_leaves_its_checkpoints_inside_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let witness = |name| Witness {
        name,
        seen: Arc::clone(&seen),
    };
    let _thread = DEFAULT.enter();
    DEFAULT.set(&A, 100).unwrap();
    DEFAULT.set(&WITNESS, witness("thread")).unwrap();
    let mut scope = Scope::new(
        DEFAULT,
        Checkpoint::new()
            .with_value(&A, 1)
            .with_value(&WITNESS, witness("root")),
    );
    scope
        .run(|| DEFAULT.set(&OTHER_WITNESS, witness("set in a run")))
        .unwrap();
    drop(scope);
    // Each destructor saw the scope's stack, its checkpoint already left;
    // never the thread's. (The last value set is dropped first.)
    assert_eq!(
        *seen.lock().unwrap(),
        [("set in a run", None, 0, false), ("root", None, 0, false)]
    );
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(100));
    assert!(DEFAULT.with(&WITNESS, |witness| witness.is_some()));
}

#[test]
fn a_guard_kept_past_a_scope_run_is_left_and_reported() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let _thread = DEFAULT.enter();
    DEFAULT.set(&A, 100).unwrap();
    let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&A, 1));
    let panic = catch_unwind(AssertUnwindSafe(|| {
        scope.run(|| {
            let kept = DEFAULT.enter();
            DEFAULT.set(&A, 2).unwrap();
            DEFAULT
                .set(
                    &WITNESS,
                    Witness {
                        name: "kept",
                        seen: Arc::clone(&seen),
                    },
                )
                .unwrap();
            std::mem::forget(kept);
        })
    }))
    .unwrap_err();
    let message = panic_message(&*panic);
    assert!(message.contains("held across"), "{message}");
    assert!(message.contains("stackholm::DEFAULT"), "{message}");
    // The checkpoint was left inside the scope, its values dropped there.
    assert_eq!(*seen.lock().unwrap(), [("kept", Some(1), 1, false)]);
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&A))),
        (1, Some(1))
    );
    assert_eq!(DEFAULT.depth(), 1);
    assert_eq!(DEFAULT.get(&A), Some(100));

    // `try_run` leaves it the same way, without a panic.
    let kept = scope.try_run(|| {
        std::mem::forget(DEFAULT.enter());
        DEFAULT.set(&A, 3).unwrap();
        DEFAULT.depth()
    });
    assert_eq!(kept, Ok(2));
    assert_eq!(
        scope.run(|| (DEFAULT.depth(), DEFAULT.get(&A))),
        (1, Some(1))
    );
    // A checkpoint entered during the run and left in it is no stray.
    assert_eq!(
        scope.run(|| {
            let _inner = DEFAULT.enter();
            DEFAULT.depth()
        }),
        2
    );
}

#[test]
fn a_scope_refuses_to_run_inside_a_read_of_its_storage() {
    let _root = DEFAULT.enter();
    DEFAULT.set(&A, 1).unwrap();
    let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&A, 2));
    DEFAULT.with(&A, |value| {
        assert_eq!(value, Some(&1));
        let refused = scope.try_run(|| unreachable!("not called when refused"));
        assert!(
            matches!(
                refused,
                Err(Error::Busy {
                    operation: Operation::RunScope,
                    ..
                })
            ),
            "{refused:?}"
        );
    });
    assert_eq!(scope.run(|| DEFAULT.get(&A)), Some(2));
    assert_eq!(DEFAULT.get(&A), Some(1));
}

/// Handles are equal when they reach the same stacks: a storage and its
/// task-only handle, never two storages. (Across crates too, where each
/// may hold its own copy of the handle: `stackholm-tower`'s `RequestEnd`
/// tests compare the layer's `DEFAULT` with the test crate's.)
#[test]
fn storages_are_equal_when_they_reach_the_same_stacks() {
    assert_eq!(DEFAULT, DEFAULT);
    assert_eq!(DEFAULT, DEFAULT.task());
    assert_ne!(DEFAULT, OTHER);
    assert_ne!(OTHER.task(), DEFAULT);
}

/// A checkpoint kept past a scope's run is left when the run returns; if
/// leaving it panics (its value's destructor, say), the scope's stack is
/// still taken back from the thread: nothing of the scope is seen outside
/// it afterwards, and the thread's own stack stays the thread's.
#[test]
fn a_panic_leaving_a_checkpoint_kept_past_a_run_still_takes_the_scope_back() {
    std::thread::spawn(|| {
        let mut scope = Scope::new(DEFAULT, Checkpoint::new().with_value(&A, 1));
        let run = catch_unwind(AssertUnwindSafe(|| {
            scope.run(|| {
                std::mem::forget(DEFAULT.enter());
                DEFAULT.set(&BAD, PanicsOnDrop).unwrap();
            })
        }));
        assert!(run.is_err(), "the destructor's panic goes on");
        assert_eq!(DEFAULT.get(&A), None, "the scope's root stays in the scope");
        assert_eq!(DEFAULT.depth(), 0);
        assert!(DEFAULT.task().set(&A, 2).is_err(), "no scope is running");
        assert_eq!(
            scope.run(|| (DEFAULT.get(&A), DEFAULT.depth())),
            (Some(1), 1)
        );
        drop(scope);
        assert_eq!(DEFAULT.depth(), 0);
        let _thread = DEFAULT.enter();
        DEFAULT.set(&A, 3).unwrap();
        assert_eq!(
            Scope::new(DEFAULT, Checkpoint::new()).run(|| DEFAULT.get(&A)),
            None
        );
    })
    .join()
    .unwrap();
}

/// What MIGRATING.md says of 0.1's `scope(fut)` rewritten as
/// `scope(Checkpoint::new(), fut)`: the empty root is a checkpoint, so the
/// depth inside is 1, writes and hooks that needed a checkpoint succeed,
/// and `on_root_exit` and `set_root` reach that root, not the first
/// checkpoint the code enters.
#[test]
fn a_scope_with_an_empty_root_starts_at_depth_one() {
    let ended = Arc::new(Mutex::new(Vec::new()));
    let log = |name: &'static str| {
        let ended = Arc::clone(&ended);
        move |_| ended.lock().unwrap().push(name)
    };
    DEFAULT.sync_scope(Checkpoint::new(), || {
        assert_eq!(DEFAULT.depth(), 1);
        DEFAULT.set(&A, 1).unwrap();
        {
            let _own = DEFAULT.enter();
            DEFAULT.on_root_exit(log("root hook")).unwrap();
            DEFAULT.set_root(&COUNTER, 7).unwrap();
        }
        // The code's own checkpoint is left; the hook and the value are
        // the scope's root's.
        assert!(ended.lock().unwrap().is_empty());
        assert_eq!((DEFAULT.get(&A), DEFAULT.get(&COUNTER)), (Some(1), Some(7)));
    });
    assert_eq!(*ended.lock().unwrap(), ["root hook"]);
    assert_eq!(DEFAULT.get(&A), None);
}
