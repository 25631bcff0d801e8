//! The semantics of checkpoints on an owned `Stack`, including the scenarios
//! of the original's test suite and the cases where it goes wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use stackholm::{Checkpoint, Error, Key, Operation, Stack};

static A: Key<i32> = Key::new("a");
static B: Key<i32> = Key::new("b");
static NAME: Key<String> = Key::new("name");

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
    let err = stack.try_get(&A).unwrap_err();
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
        assert!(inner.remove(&A)?);
        assert_eq!(inner.get(&A), Some(&1));
        // The next removal takes the root's setting, from inside.
        assert!(inner.remove(&A)?);
        assert_eq!(inner.get(&A), None);
        assert!(!inner.remove(&A)?);
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
        inner.remove(&A)?;
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
    assert!(root.remove(&A)?);
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
        .with_block_value(&B, 2)
        .with_value(&NAME, "n".to_owned());
    assert_eq!(checkpoint.len(), 3);
    assert_eq!(checkpoint.get(&A), Some(10), "a later pre-load replaces");
    let mut stack = Stack::new();
    {
        let mut guard = stack.enter_with(checkpoint);
        assert_eq!(guard.get(&A), Some(&10));
        assert_eq!(guard.get_block(&B), Some(&2));
        assert_eq!(
            guard.get(&B),
            None,
            "a block value is not a checkpoint value"
        );
        assert_eq!(guard.get(&NAME).map(String::as_str), Some("n"));
        let nested = guard.enter();
        assert_eq!(nested.get(&A), Some(&10));
        assert_eq!(nested.get_block(&B), None);
    }
    assert_eq!(stack.depth(), 0);
    assert_eq!(stack.get(&A), None);
    Ok(())
}

#[test]
fn block_values_are_not_inherited() -> Result<(), Error> {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set_block(&A, 1)?;
    assert_eq!(root.get_block(&A), Some(&1));
    assert_eq!(root.get(&A), None);
    {
        let mut inner = root.enter();
        assert_eq!(inner.get_block(&A), None);
        assert!(
            !inner.remove_block(&A)?,
            "the outer block value is not removable here"
        );
        inner.set_block(&A, 2)?;
        assert_eq!(inner.get_block(&A), Some(&2));
    }
    assert_eq!(root.get_block(&A), Some(&1));
    assert!(root.remove_block(&A)?);
    assert_eq!(root.get_block(&A), None);
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
    let err = stack.set_block(&A, 2).unwrap_err();
    assert_eq!(err.error().operation(), Some(Operation::SetBlock));
    assert_eq!(err.into_value(), 2);
    assert_eq!(
        stack.remove(&A).unwrap_err().operation(),
        Some(Operation::Remove)
    );
    assert_eq!(
        stack.remove_block(&A).unwrap_err().operation(),
        Some(Operation::RemoveBlock)
    );
    assert_eq!(stack.reset(&A), 0);
    let err = stack.pop().unwrap_err();
    assert_eq!(err.operation(), Some(Operation::Pop));
    assert_eq!(
        err.to_string(),
        "cannot pop a checkpoint: no checkpoint is active; enter a checkpoint first"
    );
    assert_eq!(stack.depth(), 0);
}

#[test]
fn a_popped_checkpoint_carries_its_values_back_in() -> Result<(), Error> {
    let mut stack = Stack::new();
    stack.push(Checkpoint::new());
    stack.set(&A, 1)?;
    stack.push(Checkpoint::new().with_value(&B, 2));
    stack.set(&A, 3)?;
    stack.set_block(&NAME, "block".to_owned())?;
    let saved = stack.pop()?;
    assert_eq!(saved.get(&A), Some(3));
    assert_eq!(saved.get(&B), Some(2));
    assert_eq!(saved.get_block(&NAME).as_deref(), Some("block"));
    assert_eq!(stack.get(&A), Some(&1));
    assert_eq!(stack.get(&B), None);

    // Entered again, at another depth, it brings the same values.
    stack.push(Checkpoint::new());
    stack.push(saved);
    assert_eq!(stack.depth(), 3);
    assert_eq!(stack.get(&A), Some(&3));
    assert_eq!(stack.get(&B), Some(&2));
    assert_eq!(stack.get_block(&NAME).map(String::as_str), Some("block"));
    // A value removed while it was active stays out of the saved checkpoint.
    stack.remove(&B)?;
    let saved = stack.pop()?;
    assert_eq!(saved.get(&B), None);
    assert_eq!(saved.len(), 2);
    Ok(())
}

#[test]
fn values_are_dropped_when_their_checkpoint_is_left() -> Result<(), Error> {
    static SHARED: Key<Arc<()>> = Key::new("shared");
    let value = Arc::new(());
    let mut stack = Stack::new();
    {
        let mut guard = stack.enter();
        guard.set(&SHARED, Arc::clone(&value))?;
        guard.set_block(&SHARED, Arc::clone(&value))?;
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
        let _ = guard.pop()?;
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
    guard.set_block(&B, 2)?;
    let shown = format!("{guard:?}");
    assert!(shown.contains("depth: 1"), "{shown}");
    assert!(shown.contains("keys: [\"a\"]"), "{shown}");
    assert!(shown.contains("block_keys: [\"b\"]"), "{shown}");
    let checkpoint = Checkpoint::new().with_value(&NAME, String::new());
    assert_eq!(
        format!("{checkpoint:?}"),
        "Checkpoint { name: None, values: [\"name\"], block_values: [] }"
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
