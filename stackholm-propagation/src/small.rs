//! A list kept on the stack while short: the per-request bookkeeping of
//! baggage members, which a hostile header may make 64 long but which is
//! usually a handful, costs no allocation and no large zeroing.

/// Up to `N` items inline, the rest on the heap.
pub(crate) struct Small<T, const N: usize> {
    inline: [T; N],
    len: usize,
    heap: Vec<T>,
}

impl<T: Copy + Default, const N: usize> Default for Small<T, N> {
    fn default() -> Self {
        Self {
            inline: [T::default(); N],
            len: 0,
            heap: Vec::new(),
        }
    }
}

impl<T: Copy + Default, const N: usize> Small<T, N> {
    /// A list of `len` default items.
    pub(crate) fn filled(len: usize) -> Self {
        let mut list = Self::default();
        if len <= N {
            list.len = len;
        } else {
            list.heap = vec![T::default(); len];
        }
        list
    }

    #[inline]
    pub(crate) fn push(&mut self, item: T) {
        if self.heap.is_empty() && self.len < N {
            self.inline[self.len] = item;
            self.len += 1;
        } else {
            self.spill(item);
        }
    }

    /// Pushes onto the heap, moving the inline items there first: past `N`
    /// items, which hostile input reaches and usual input does not.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, item: T) {
        if self.heap.is_empty() {
            self.heap.extend_from_slice(&self.inline[..self.len]);
        }
        self.heap.push(item);
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        if self.heap.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.heap
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        if self.heap.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.heap
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Small;

    #[test]
    fn spills_to_the_heap_keeping_order() {
        let mut list = Small::<u32, 2>::default();
        for n in 0..5 {
            list.push(n);
            assert_eq!(list.as_slice(), (0..=n).collect::<Vec<_>>());
        }
        assert_eq!(Small::<u8, 2>::filled(2).as_slice(), [0, 0]);
        let mut long = Small::<u8, 2>::filled(3);
        long.as_mut_slice()[2] = 7;
        assert_eq!(long.as_slice(), [0, 0, 7]);
    }
}
