//! Entering and leaving checkpoints on a warm stack does not allocate.
//!
//! The allocator counts allocations per thread, so each test counts its own.

use std::future::Future;

use stackholm::{Checkpoint, CheckpointExt, Key, Scope, Stack, DEFAULT};

include!("support/counting_alloc.rs");

static ROOT_VALUE: Key<u64> = Key::new("root_value");
static SHADOWED: Key<u64> = Key::new("shadowed");
static BLOCK: Key<u64> = Key::new("block").private();

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = allocations();
    f();
    allocations() - before
}

fn nested_workload(stack: &mut Stack) {
    for i in 0..100 {
        let mut a = stack.enter();
        a.set(&SHADOWED, i).unwrap();
        let mut b = a.enter();
        b.set(&BLOCK, i).unwrap();
        let c = b.enter();
        assert_eq!(c.get(&ROOT_VALUE), Some(&1));
        assert_eq!(c.get(&SHADOWED), Some(&i));
    }
}

fn ambient_workload() {
    for i in 0..100 {
        let _a = DEFAULT.enter();
        DEFAULT.set(&SHADOWED, i).unwrap();
        let _b = DEFAULT.enter();
        DEFAULT.set(&BLOCK, i).unwrap();
        let _c = DEFAULT.enter();
        assert_eq!(DEFAULT.get(&ROOT_VALUE), Some(1));
        assert_eq!(DEFAULT.get(&SHADOWED), Some(i));
    }
}

#[test]
fn warm_stacks_enter_set_and_leave_without_allocating() {
    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&ROOT_VALUE, 1).unwrap();
    nested_workload(&mut root);
    assert_eq!(allocations_during(|| nested_workload(&mut root)), 0);

    let _root = DEFAULT.enter();
    DEFAULT.set(&ROOT_VALUE, 1).unwrap();
    ambient_workload();
    assert_eq!(allocations_during(ambient_workload), 0);

    // Inside a task-local scope, the ambient calls reach the task's stack.
    let mut scope = Scope::new(DEFAULT, Checkpoint::new());
    scope.run(|| {
        DEFAULT.set(&ROOT_VALUE, 1).unwrap();
        ambient_workload();
        assert_eq!(allocations_during(ambient_workload), 0);
    });
    // Installing and taking back the scope's stack moves it, no more.
    assert_eq!(allocations_during(|| scope.run(ambient_workload)), 0);
    drop(scope);

    // A scope per request, as the tower layer opens them: once the thread
    // has a spare stack from an ended scope, a new scope reuses it.
    let request = || {
        Scope::new(DEFAULT, Checkpoint::new()).run(|| {
            DEFAULT.set(&ROOT_VALUE, 1).unwrap();
            ambient_workload();
        });
    };
    request();
    assert_eq!(allocations_during(|| (0..100).for_each(|_| request())), 0);

    // The counter does see allocations: a cold stack allocates.
    let cold = allocations_during(|| {
        let mut stack = Stack::new();
        let mut root = stack.enter();
        root.set(&ROOT_VALUE, 1).unwrap();
        nested_workload(&mut root);
    });
    assert!(cold > 0);
}

#[test]
fn exit_hooks_that_capture_nothing_allocate_nothing_once_warm() {
    let hooked = || {
        let _checkpoint = DEFAULT.enter();
        DEFAULT
            .on_exit(|outcome| {
                std::hint::black_box(outcome);
            })
            .unwrap();
        DEFAULT.on_root_exit(|_| ()).unwrap();
    };
    hooked();
    assert_eq!(allocations_during(|| (0..100).for_each(|_| hooked())), 0);

    // Inside a scope per request, as the layer opens them.
    let request = || {
        Scope::new(DEFAULT, Checkpoint::new()).run(|| {
            DEFAULT.on_root_exit(|_| ()).unwrap();
            hooked();
        });
    };
    request();
    assert_eq!(allocations_during(|| (0..100).for_each(|_| request())), 0);
}

static TENANT: Key<u64> = Key::new("tenant").inherited();
static USER: Key<u64> = Key::new("user").inherited();
static REQUEST: Key<u64> = Key::new("request").inherited();

/// A checkpoint off the stack holds each value in one box, in one list:
/// building one, or taking a snapshot (every `inherit`), costs one
/// allocation a value and one for the list (up to four values), and
/// entering and leaving it again (a checkpointed future's every poll)
/// costs none.
#[test]
fn a_checkpoint_boxes_each_value_once_in_one_list() {
    let build = || {
        Checkpoint::new()
            .with_value(&TENANT, 1)
            .with_value(&USER, 2)
            .with_value(&REQUEST, 3)
    };
    drop(build());
    assert_eq!(allocations_during(|| drop(build())), 4);

    // A checkpointed future enters and leaves its checkpoint on every poll.
    struct Polls(u32);
    impl Future for Polls {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            assert_eq!(DEFAULT.get(&USER), Some(2));
            self.0 -= 1;
            if self.0 == 0 {
                return std::task::Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    let mut future = std::pin::pin!(Polls(1000).in_checkpoint(build()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    let polls = || {
        for _ in 0..100 {
            assert!(future.as_mut().poll(&mut cx).is_pending());
        }
    };
    assert_eq!(allocations_during(polls), 0);

    let mut stack = Stack::new();
    let mut root = stack.enter();
    root.set(&TENANT, 1).unwrap();
    root.set(&USER, 2).unwrap();
    root.set(&REQUEST, 3).unwrap();
    // The first snapshot moves each value into a shared allocation.
    drop(root.snapshot());
    assert_eq!(allocations_during(|| drop(root.snapshot())), 4);
}
