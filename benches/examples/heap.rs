//! The heap a suspended task-local scope holds: a request's scope between
//! two polls (a server-sent events stream, a websocket), with a root of two
//! `u64` values, which hold no heap of their own.
//!
//! ```sh
//! cargo run --release -p stackholm-benches --example heap
//! ```
//!
//! Each case runs on a thread of its own, after the work named, makes 1,000
//! such scopes, runs each once, and keeps them: the bytes allocated and not
//! yet freed meanwhile, per scope (the `Vec` holding them aside). Then what
//! a user pays for such a scope around a future the way a spawned task
//! does, its future boxed: 1,000 boxed futures, each polled once and
//! pending, and the bytes allocated and not yet freed per future (the box,
//! which holds the future itself, and everything it points to), against
//! the same future boxed without a scope. Prints Markdown tables.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::task::{Context, Waker};

use stackholm::{Checkpoint, Key, Scope, DEFAULT};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn add(bytes: usize, sign: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(sign * bytes as isize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(layout.size(), -1);
        add(new_size, 1);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Scopes held at once, as a worker holds its open connections: more than
/// a thread keeps spare stacks for, so most are made fresh.
const OPEN: usize = 1000;

/// Heap held per suspended scope with a two-value root, made on a thread
/// after `before` ran there. The root's keys are first used after it, as a
/// request's keys may be in a process that used many before.
fn suspended_scope_after(before: fn()) -> isize {
    std::thread::spawn(move || {
        before();
        let request_id: &'static Key<u64> = Box::leak(Box::new(Key::new("request_id").inherited()));
        let user: &'static Key<u64> = Box::leak(Box::new(Key::new("user").inherited()));
        let mut scopes = Vec::with_capacity(OPEN);
        COUNTING.store(true, Ordering::Relaxed);
        let start = LIVE.load(Ordering::Relaxed);
        for n in 0..OPEN as u64 {
            let root = Checkpoint::new()
                .with_value(request_id, n)
                .with_value(user, 42);
            let mut scope = Scope::new(DEFAULT, root);
            scope.run(|| assert_eq!(DEFAULT.get(user), Some(42)));
            scopes.push(scope);
        }
        let held = (LIVE.load(Ordering::Relaxed) - start) / OPEN as isize;
        COUNTING.store(false, Ordering::Relaxed);
        drop(scopes);
        held
    })
    .join()
    .expect("the measuring thread does not panic")
}

fn nothing() {}

/// Bytes held per future made by `make`, boxed and polled once (pending),
/// on a fresh thread: the box and all it points to, as a task that has
/// started and waits.
fn boxed_pending<F: Future<Output = ()> + 'static>(make: fn(u64) -> F) -> isize {
    std::thread::spawn(move || {
        let mut futures: Vec<Pin<Box<F>>> = Vec::with_capacity(OPEN);
        let mut cx = Context::from_waker(Waker::noop());
        COUNTING.store(true, Ordering::Relaxed);
        let start = LIVE.load(Ordering::Relaxed);
        for n in 0..OPEN as u64 {
            let mut future = Box::pin(make(n));
            assert!(future.as_mut().poll(&mut cx).is_pending());
            futures.push(future);
        }
        let held = (LIVE.load(Ordering::Relaxed) - start) / OPEN as isize;
        COUNTING.store(false, Ordering::Relaxed);
        drop(futures);
        held
    })
    .join()
    .expect("the measuring thread does not panic")
}

static REQUEST_ID: Key<u64> = Key::new("request_id").inherited();
static USER: Key<u64> = Key::new("user").inherited();

/// A request's scope, its root holding two values, around a future that
/// waits.
fn scoped_pending(n: u64) -> impl Future<Output = ()> {
    let root = Checkpoint::new()
        .with_value(&REQUEST_ID, n)
        .with_value(&USER, 42);
    DEFAULT.scope(root, std::future::pending::<()>())
}

fn bare_pending(_: u64) -> std::future::Pending<()> {
    std::future::pending()
}

/// Requests that set twenty keys of their own, one after another.
fn twenty_key_requests() {
    let keys = stackholm_benches::leaked_keys(20);
    for _ in 0..10 {
        DEFAULT.sync_scope(Checkpoint::new(), || {
            for key in &keys {
                DEFAULT.set(key, 1).expect("inside the scope's root");
            }
        });
    }
}

/// 10,000 keys used once each, in scopes.
fn ten_thousand_keys() {
    for key in stackholm_benches::leaked_keys(10_000) {
        DEFAULT.sync_scope(Checkpoint::new(), || {
            DEFAULT.set(key, 1).expect("inside the scope's root");
        });
    }
}

fn main() {
    // The scope itself is part of whatever holds it (a middleware's future,
    // a body): counted too, so that the last column is all a `Scope` held
    // between runs costs. A scope around a future, boxed as a task's, is
    // the second table.
    let inline = std::mem::size_of::<Scope>() as isize;
    println!(
        "| a `Scope` between runs, root of 2 values, on a thread that ran | heap bytes per scope | the `Scope` itself | both |"
    );
    println!("|---|---:|---:|---:|");
    for (name, before) in [
        ("nothing", nothing as fn()),
        ("requests of 20 keys each", twenty_key_requests),
        ("10,000 keys once each", ten_thousand_keys),
    ] {
        let heap = suspended_scope_after(before);
        println!("| {name} | {heap} | {inline} | {} |", heap + inline);
    }
    println!();
    println!("| a future, boxed as a spawned task's, polled once and pending | bytes held per future | of which the box (the future itself) |");
    println!("|---|---:|---:|");
    let rows = [
        (
            "`std::future::pending::<()>()`",
            boxed_pending(bare_pending),
            size_of_return(bare_pending),
        ),
        (
            "`DEFAULT.scope(root of 2 values, pending::<()>())`",
            boxed_pending(scoped_pending),
            size_of_return(scoped_pending),
        ),
    ];
    for (name, held, boxed) in rows {
        println!("| {name} | {held} | {boxed} |");
    }
}

/// The size of what `make` returns: what its box holds.
fn size_of_return<F>(_: fn(u64) -> F) -> usize {
    std::mem::size_of::<F>()
}
