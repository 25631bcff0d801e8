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
//! yet freed meanwhile, per scope (the `Vec` holding them aside). Prints a
//! Markdown table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

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
    // The scope itself is part of whatever holds it (a future in a task):
    // counted too, so that the last column is all a suspended scope costs.
    let inline = std::mem::size_of::<Scope>() as isize;
    println!(
        "| a suspended scope, root of 2 values, on a thread that ran | heap bytes per scope | the `Scope` itself | all counted |"
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
}
