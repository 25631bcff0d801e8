//! Buffers reused by the requests of a thread: a header value is built in
//! them, then copied once into the exact-size value sent.

use std::cell::Cell;

/// The largest buffer kept for the next request: a full `baggage` header
/// and some.
const KEEP: usize = 16 * 1024;

thread_local! {
    static TEXT: Cell<String> = const { Cell::new(String::new()) };
    static BYTES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffers, emptied. They are taken out of the
/// thread-local for the call, so a nested call (from a codec, say) gets
/// fresh ones instead of a borrow error.
pub(crate) fn with<R>(f: impl FnOnce(&mut String, &mut Vec<u8>) -> R) -> R {
    let mut text = TEXT.try_with(Cell::take).unwrap_or_default();
    let mut bytes = BYTES.try_with(Cell::take).unwrap_or_default();
    text.clear();
    bytes.clear();
    let output = f(&mut text, &mut bytes);
    // A huge value once must not stay with the thread: only buffers of a
    // usual size are kept. On an exiting thread they are simply dropped.
    if text.capacity() <= KEEP {
        let _ = TEXT.try_with(|cell| cell.set(text));
    }
    if bytes.capacity() <= KEEP {
        let _ = BYTES.try_with(|cell| cell.set(bytes));
    }
    output
}
