//! The semantics of checkpoints on an owned `Stack`, including the scenarios
//! of the original's test suite and the cases where it goes wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use stackholm::{Checkpoint, Error, Key, Operation, Stack};

static A: Key<i32> = Key::new("a");
static B: Key<i32> = Key::new("b");
static NAME: Key<String> = Key::new("name");
// Block values are a property of the key: these are visible only in the
// checkpoint that set them.
static PRIVATE_A: Key<i32> = Key::new("private_a").private();
static PRIVATE_B: Key<i32> = Key::new("private_b").private();
static PRIVATE_NAME: Key<String> = Key::new("private_name").private();

/// Every value of this file's keys that a checkpoint holds.
#[derive(Debug, Default, PartialEq)]
struct Held {
    a: Option<i32>,
    b: Option<i32>,
    name: Option<String>,
    private_a: Option<i32>,
    private_b: Option<i32>,
    private_name: Option<String>,
}

/// What `checkpoint` holds, read without entering it.
fn read(checkpoint: &Checkpoint) -> Held {
    Held {
        a: checkpoint.get(&A).copied(),
        b: checkpoint.get(&B).copied(),
        name: checkpoint.get(&NAME).cloned(),
        private_a: checkpoint.get(&PRIVATE_A).copied(),
        private_b: checkpoint.get(&PRIVATE_B).copied(),
        private_name: checkpoint.get(&PRIVATE_NAME).cloned(),
    }
}

/// What `checkpoint` holds, read by entering it alone on a fresh stack
/// (which reading it without entering must agree with), and the checkpoint
/// itself, popped back off with its values.
fn held(checkpoint: Checkpoint) -> (Held, Checkpoint) {
    let unentered = read(&checkpoint);
    let mut alone = Stack::new();
    alone.push(checkpoint);
    let held = Held {
        a: alone.get(&A).copied(),
        b: alone.get(&B).copied(),
        name: alone.get(&NAME).cloned(),
        private_a: alone.get(&PRIVATE_A).copied(),
        private_b: alone.get(&PRIVATE_B).copied(),
        private_name: alone.get(&PRIVATE_NAME).cloned(),
    };
    assert_eq!(unentered, held, "a checkpoint reads as its entered root");
    (held, alone.pop().expect("the checkpoint was just entered"))
}

#[test]
fn a_checkpoint_is_read_and_counted_without_entering_it() -> Result<(), Error> {
    /// Never used anywhere: it has no tag yet.
    static NEVER_USED: Key<i32> = Key::new("never_used");

    let empty = Checkpoint::named("empty");
    assert!(empty.is_empty());
    assert_eq!((empty.len(), empty.get(&A)), (0, None));

    let preloaded = Checkpoint::new()
        .with_value(&A, 1)
        .with_value(&NAME, "alice".to_owned())
        .with_value(&PRIVATE_A, 2)
        .with_value(&A, 3);
    assert_eq!(preloaded.len(), 3, "a key pre-loaded twice is one value");
    assert!(!preloaded.is_empty());
    assert_eq!(
        read(&preloaded),
        Held {
            a: Some(3),
            name: Some("alice".to_owned()),
            private_a: Some(2),
            ..Held::default()
        }
    );
    assert_eq!(preloaded.get(&NEVER_USED), None);

    // A popped checkpoint holds what was set in it, private values too,
    // and nothing of the checkpoints around it.
    let mut stack = Stack::new();
    let mut outer = stack.enter_with(preloaded);
    outer.push(Checkpoint::new());
    outer.set(&B, 4)?;
    outer.set(&PRIVATE_B, 5)?;
    let popped = outer.pop().expect("a checkpoint was pushed");
    assert_eq!(popped.len(), 2);
    assert_eq!(
        read(&popped),
        Held {
            b: Some(4),
            private_b: Some(5),
            ..Held::default()
        }
    );
    Ok(())
}

#[test]
fn the_seed_example_reads_1_1_2_1_then_nothing() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut seen = Vec::new();
    {
        let mut outer = stack.enter();
        outer.set(&A, 1)?;
        seen.push(outer.get(&A).copied());
        {
            let mut inner = outer.enter();
            seen.push(inner.get(&A).copied());
            inner.set(&A, 2)?;
            seen.push(inner.get(&A).copied());
        }
        seen.push(outer.get(&A).copied());
    }
    assert_eq!(seen, [Some(1), Some(1), Some(2), Some(1)]);
    assert_eq!(stack.get(&A), None);
    // "No checkpoint is active" is told apart from "not set" by the depth.
    assert_eq!(stack.depth(), 0);
    Ok(())
}

#[test]
fn removing_the_nearest_setting_uncovers_the_outer_one() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    {
        let mut inner = root.enter();
        inner.set(&A, 2)?;
        assert!(inner.remove(&A));
        assert_eq!(inner.get(&A), Some(&1));
        // The next removal takes the root's setting, from inside.
        assert!(inner.remove(&A));
        assert_eq!(inner.get(&A), None);
        assert!(!inner.remove(&A));
    }
    // It stays removed once the inner checkpoint is left.
    assert_eq!(root.get(&A), None);
    Ok(())
}

#[test]
fn a_removed_outer_setting_can_be_set_again_in_the_inner_checkpoint() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    {
        let mut inner = root.enter();
        assert!(inner.remove(&A));
        inner.set(&A, 5)?;
        assert_eq!(inner.get(&A), Some(&5));
    }
    assert_eq!(root.get(&A), None);
    root.set(&A, 3)?;
    assert_eq!(root.get(&A), Some(&3));
    Ok(())
}

#[test]
fn setting_twice_in_one_checkpoint_still_restores_the_parent() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    {
        let mut inner = root.enter();
        inner.set(&A, 2)?;
        inner.set(&A, 3)?;
        assert_eq!(inner.get(&A), Some(&3));
    }
    assert_eq!(root.get(&A), Some(&1));
    assert!(root.remove(&A));
    assert_eq!(root.get(&A), None);
    Ok(())
}

#[test]
fn setting_a_preloaded_key_still_restores_the_parent() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    {
        let mut inner = root.enter_with(Checkpoint::new().with_value(&A, 2));
        assert_eq!(inner.get(&A), Some(&2));
        inner.set(&A, 3)?;
        assert_eq!(inner.get(&A), Some(&3));
    }
    assert_eq!(root.get(&A), Some(&1));
    Ok(())
}

#[test]
fn preloaded_values_appear_on_enter_and_vanish_on_exit() -> Result<(), Error> {
    let checkpoint = Checkpoint::new()
        .with_value(&A, 1)
        .with_value(&A, 10)
        .with_value(&PRIVATE_B, 2)
        .with_value(&NAME, "n".to_owned());
    let (contents, checkpoint) = held(checkpoint);
    assert_eq!(
        contents,
        Held {
            a: Some(10),
            private_b: Some(2),
            name: Some("n".to_owned()),
            ..Held::default()
        },
        "three values: a later pre-load replaces"
    );
    let mut stack = Stack::new();
    {
        let mut guard = stack.enter_with(checkpoint);
        assert_eq!(guard.get(&A), Some(&10));
        assert_eq!(guard.get(&PRIVATE_B), Some(&2));
        assert_eq!(guard.get(&NAME).map(String::as_str), Some("n"));
        let nested = guard.enter();
        assert_eq!(nested.get(&A), Some(&10));
        assert_eq!(nested.get(&PRIVATE_B), None);
    }
    assert_eq!(stack.depth(), 0);
    assert_eq!(stack.get(&A), None);
    Ok(())
}

#[test]
fn block_values_are_not_inherited() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&PRIVATE_A, 1)?;
    assert_eq!(root.get(&PRIVATE_A), Some(&1));
    {
        let mut inner = root.enter();
        assert_eq!(inner.get(&PRIVATE_A), None);
        assert!(
            !inner.remove(&PRIVATE_A),
            "the outer block value is not removable here"
        );
        inner.set(&PRIVATE_A, 2)?;
        assert_eq!(inner.get(&PRIVATE_A), Some(&2));
    }
    assert_eq!(root.get(&PRIVATE_A), Some(&1));
    assert!(root.remove(&PRIVATE_A));
    assert_eq!(root.get(&PRIVATE_A), None);
    Ok(())
}

#[test]
fn reset_removes_every_setting() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    root.set(&B, 9)?;
    let mut middle = root.enter();
    let mut inner = middle.enter();
    inner.set(&A, 3)?;
    assert_eq!(inner.reset(&A), 2);
    assert_eq!(inner.get(&A), None);
    assert_eq!(inner.get(&B), Some(&9));
    drop(inner);
    assert_eq!(middle.get(&A), None);
    assert_eq!(middle.reset(&A), 0);
    Ok(())
}

#[test]
fn a_counter_incremented_1000_times_reads_1000() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 0)?;
    for _ in 0..1000 {
        let next = root.get(&A).copied().unwrap_or_default() + 1;
        root.set(&A, next)?;
    }
    assert_eq!(root.get(&A), Some(&1000));
    // The same through nested checkpoints, each passing its count upward
    // through a value shared with the root.
    let counter = Arc::new(AtomicUsize::new(0));
    static COUNTER: Key<Arc<AtomicUsize>> = Key::new("counter");
    root.set(&COUNTER, Arc::clone(&counter))?;
    for _ in 0..1000 {
        let nested = root.enter();
        nested
            .get(&COUNTER)
            .unwrap()
            .fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(counter.load(Ordering::Relaxed), 1000);
    Ok(())
}

#[test]
fn writing_with_no_checkpoint_is_an_error_that_changes_nothing() {
    let mut stack = Stack::new();
    let err = stack.set(&A, 1).unwrap_err();
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
    assert_eq!(err.error().operation(), Some(Operation::Set));
    assert_eq!(
        err.to_string(),
        "cannot set `a`: no checkpoint is active; enter a checkpoint first"
    );
    // The value that could not be set is handed back.
    assert_eq!(err.into_value(), 1);
    let err = stack.set(&PRIVATE_A, 2).unwrap_err();
    assert!(
        matches!(
            err.error(),
            Error::NoCheckpoint {
                operation: Operation::Set,
                key: Some("private_a"),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.into_value(), 2);
    // Removing, resetting and popping find nothing to take.
    assert!(!stack.remove(&A));
    assert!(!stack.remove(&PRIVATE_A));
    assert_eq!(stack.reset(&A), 0);
    assert_eq!(stack.reset(&PRIVATE_A), 0);
    assert!(stack.pop().is_none());
    assert_eq!(stack.depth(), 0);
    // Nothing was set by the refused writes.
    let guard = stack.enter();
    assert_eq!((guard.get(&A), guard.get(&PRIVATE_A)), (None, None));
}

#[test]
fn a_popped_checkpoint_carries_its_values_back_in() -> Result<(), Error> {
    let mut stack = Stack::new();
    stack.push(Checkpoint::new());
    stack.set(&A, 1)?;
    stack.push(Checkpoint::new().with_value(&B, 2));
    stack.set(&A, 3)?;
    stack.set(&PRIVATE_NAME, "block".to_owned())?;
    let saved = stack.pop().expect("a checkpoint is active");
    let (contents, saved) = held(saved);
    assert_eq!(
        contents,
        Held {
            a: Some(3),
            b: Some(2),
            private_name: Some("block".to_owned()),
            ..Held::default()
        }
    );
    assert_eq!(stack.get(&A), Some(&1));
    assert_eq!(stack.get(&B), None);

    // Entered again, at another depth, it brings the same values.
    stack.push(Checkpoint::new());
    stack.push(saved);
    assert_eq!(stack.depth(), 3);
    assert_eq!(stack.get(&A), Some(&3));
    assert_eq!(stack.get(&B), Some(&2));
    assert_eq!(stack.get(&PRIVATE_NAME).map(String::as_str), Some("block"));
    // A value removed while it was active stays out of the saved checkpoint.
    assert!(stack.remove(&B));
    let saved = stack.pop().expect("a checkpoint is active");
    let (contents, _) = held(saved);
    assert_eq!(
        contents,
        Held {
            a: Some(3),
            private_name: Some("block".to_owned()),
            ..Held::default()
        },
        "two values are left"
    );
    Ok(())
}

#[test]
fn values_are_dropped_when_their_checkpoint_is_left() -> Result<(), Error> {
    static SHARED: Key<Arc<()>> = Key::new("shared");
    static PRIVATE_SHARED: Key<Arc<()>> = Key::new("private_shared").private();
    let value = Arc::new(());
    let mut stack = Stack::new();
    {
        let mut guard = stack.enter();
        guard.set(&SHARED, Arc::clone(&value))?;
        guard.set(&PRIVATE_SHARED, Arc::clone(&value))?;
        assert_eq!(Arc::strong_count(&value), 3);
    }
    assert_eq!(Arc::strong_count(&value), 1);
    Ok(())
}

#[test]
fn a_guard_leaves_checkpoints_pushed_through_it() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&A, 1)?;
    {
        let mut guard = root.enter();
        guard.push(Checkpoint::new().with_value(&A, 2));
        guard.push(Checkpoint::new());
        assert_eq!(guard.depth(), 4);
    }
    assert_eq!(root.depth(), 1);
    assert_eq!(root.get(&A), Some(&1));
    {
        let mut guard = root.enter();
        // Popping the guard's own checkpoint by hand leaves the guard with
        // nothing to do.
        assert!(guard.pop().is_some());
        assert_eq!(guard.depth(), 1);
    }
    assert_eq!(root.depth(), 1);
    assert_eq!(root.get(&A), Some(&1));
    Ok(())
}

#[test]
fn debug_output_names_the_keys() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut guard = stack.enter();
    guard.set(&A, 1)?;
    guard.set(&PRIVATE_B, 2)?;
    let shown = format!("{guard:?}");
    assert!(shown.contains("depth: 1"), "{shown}");
    assert!(shown.contains(" keys: [\"a\"]"), "{shown}");
    assert!(shown.contains("private_keys: [\"private_b\"]"), "{shown}");
    let checkpoint = Checkpoint::new().with_value(&NAME, String::new());
    assert_eq!(
        format!("{checkpoint:?}"),
        "Checkpoint { name: None, values: [\"name\"], private_values: [] }"
    );
    let checkpoint = Checkpoint::named("n").with_value(&PRIVATE_B, 1);
    assert_eq!(
        format!("{checkpoint:?}"),
        "Checkpoint { name: Some(\"n\"), values: [], private_values: [\"private_b\"] }"
    );
    Ok(())
}

#[test]
fn stack_and_checkpoint_are_send_keys_and_errors_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    // Not `Sync`: they may hold values of keys that are not inherited, which
    // need only be `Send`.
    assert_send::<Stack>();
    assert_send::<Checkpoint>();
    assert_send_sync::<Key<String>>();
    assert_send_sync::<Key<std::cell::RefCell<String>>>();
    assert_send_sync::<Error>();
}
