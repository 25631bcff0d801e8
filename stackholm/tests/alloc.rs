//! Entering and leaving checkpoints on a warm stack does not allocate.
//!
//! The allocator counts allocations per thread, so each test counts its own.

use stackholm::{Checkpoint, Key, Scope, Stack, DEFAULT};

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
