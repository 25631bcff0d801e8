//! The single-threaded example of the original stackholm, in Rust.
//!
//! Run with `cargo run --example basic`. Prints 1, 1, 2, 1, then what a read
//! outside any checkpoint gives.

use stackholm::{Error, Key, Stack};

static A: Key<i32> = Key::new("a");

fn main() -> Result<(), Error> {
    // An owned stack: the `OptimizedListStorage` of the original.
    let mut stack = Stack::new();

    // Create a checkpoint.
    {
        let mut outer = stack.enter();
        // Set a checkpoint value.
        outer.set(&A, 1)?;
        // Prints: 1
        println!("{}", outer.get(&A).unwrap());

        // Create another checkpoint.
        {
            let mut inner = outer.enter();
            // Prints: 1
            println!("{}", inner.get(&A).unwrap());
            // Shadows the value of `a`, only in the current checkpoint.
            inner.set(&A, 2)?;
            // Prints: 2
            println!("{}", inner.get(&A).unwrap());
        }

        // Again, prints: 1
        println!("{}", outer.get(&A).unwrap());
    }

    // Outside any checkpoint, a plain read finds nothing...
    println!("outside any checkpoint, get gives {:?}", stack.get(&A));
    // ...and the depth says why (the original raised NoContextIsActive).
    println!("checkpoints active: {}", stack.depth());
    // Writing needs a checkpoint too.
    if let Err(err) = stack.set(&A, 3) {
        println!("outside any checkpoint, set fails: {err}");
    }
    Ok(())
}
