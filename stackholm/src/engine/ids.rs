//! Frame ids: which checkpoint a guard entered.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one entered checkpoint, so a guard leaves its own checkpoint
/// and no other. Unique across all stacks of the process.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameId(u64);

/// Hands out frame ids from small blocks, taken from a chunk the thread
/// reserved process-wide: uniqueness costs one atomic operation per chunk
/// and one thread-local access per block, not one per checkpoint.
///
/// A fresh stack (a scope per spawned task, say) sets aside at most one
/// block, and a thread at most one chunk: a process creating a million
/// fresh stacks a second runs out of the 2^64 ids after 2^64 / (2^8 * 10^6)
/// seconds, over two thousand years, and one starting ten thousand threads
/// a second after 2^40 / 10^4 seconds, over three thousand. Running out
/// panics rather than hands out an id twice.
#[derive(Debug, Default)]
pub(crate) struct FrameIds {
    next: u64,
    end: u64,
}

impl FrameIds {
    const BLOCK: u64 = 1 << 8;
    const CHUNK: u64 = 1 << 24;

    pub(crate) const fn new() -> Self {
        Self { next: 0, end: 0 }
    }

    #[inline]
    pub(crate) fn next(&mut self) -> FrameId {
        if self.next == self.end {
            self.reserve();
        }
        let id = self.next;
        self.next += 1;
        FrameId(id)
    }

    #[cold]
    fn reserve(&mut self) {
        thread_local! {
            static CHUNK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let block = CHUNK.try_with(|chunk| {
            let (mut next, mut end) = chunk.get();
            if next == end {
                (next, end) = Self::reserve_chunk();
            }
            chunk.set((next + Self::BLOCK, end));
            (next, next + Self::BLOCK)
        });
        // On an exiting thread the chunk is gone: a chunk of its own, for
        // this one block, keeps ids unique at the price of the rest of it.
        (self.next, self.end) = block.unwrap_or_else(|_| {
            let (next, _) = Self::reserve_chunk();
            (next, next + Self::BLOCK)
        });
    }

    fn reserve_chunk() -> (u64, u64) {
        // Chunk 0 is never handed out: id 0 means "no id yet".
        static NEXT_CHUNK: AtomicU64 = AtomicU64::new(1);
        let chunk = NEXT_CHUNK
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |chunk| {
                chunk.checked_add(1)
            })
            .ok()
            .and_then(|chunk| chunk.checked_mul(Self::CHUNK))
            .and_then(|start| Some((start, start.checked_add(Self::CHUNK)?)));
        chunk.unwrap_or_else(|| panic!("stackholm: checkpoint ids are exhausted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh stacks (a scope per spawned task) must not use up the id space
    /// faster than checkpoints are entered: each takes a small block.
    #[test]
    fn fresh_stacks_take_small_blocks_of_ids() {
        let ids: Vec<u64> = (0..1000).map(|_| FrameIds::new().next().0).collect();
        let spread = ids.iter().max().unwrap() - ids.iter().min().unwrap();
        // 256 ids a stack at most, and one thread's chunk of blocks.
        assert!(
            spread < 1000 * FrameIds::BLOCK + FrameIds::CHUNK,
            "1000 fresh stacks spread over {spread} ids"
        );
    }
}
