//! Checkpoints moved on and off a [`Stack`] whole, and the writes that
//! reach past the innermost checkpoint: what requests and tasks do once,
//! where reads and sets happen all the time.

use std::fmt;

use super::{Frame, Stack};
use crate::engine::checkpoint::Checkpoint;
use crate::engine::ids::FrameId;
use crate::engine::slots::{Entry, Setting, Value};
use crate::exit::Hook;
use crate::Key;

impl Stack {
    /// Enters `checkpoint` with the values pre-loaded into it; they are
    /// visible until the guard is dropped.
    pub fn enter_with(&mut self, mut checkpoint: Checkpoint) -> super::StackGuard<'_> {
        let id = self.open_with(&mut checkpoint);
        super::StackGuard { stack: self, id }
    }

    /// Enters `checkpoint` without a guard; [`pop`](Self::pop) leaves it.
    ///
    /// This is the manual form of [`enter_with`](Self::enter_with), for
    /// checkpoints whose lifetime is not a lexical scope.
    pub fn push(&mut self, mut checkpoint: Checkpoint) {
        self.open_with(&mut checkpoint);
    }

    /// Leaves the innermost checkpoint and returns it, holding every value
    /// that was set in it; entering it again brings them back. `None` if no
    /// checkpoint is active.
    ///
    /// ```
    /// # use stackholm::{Checkpoint, Key, Stack};
    /// static A: Key<u8> = Key::new("a");
    ///
    /// let mut stack = Stack::new();
    /// stack.push(Checkpoint::new());
    /// stack.set(&A, 7)?;
    /// let saved = stack.pop().expect("a checkpoint is active");
    /// assert_eq!(stack.get(&A), None);
    ///
    /// stack.push(saved);
    /// assert_eq!(stack.get(&A), Some(&7));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    pub fn pop(&mut self) -> Option<Checkpoint> {
        let mut checkpoint = Checkpoint::new();
        self.pop_into(&mut checkpoint)?;
        Some(checkpoint)
    }

    /// Removes the nearest setting of `key`: the next outer setting, if any, becomes
    /// visible again. Returns whether there was a setting to remove: none
    /// where no checkpoint is active.
    ///
    /// The setting removed may belong to an outer checkpoint; it stays
    /// removed when the inner checkpoints are left. A
    /// [private](Key::private) key's setting is removed only from the
    /// innermost checkpoint, the only one where it is visible.
    pub fn remove<T: Send + 'static>(&mut self, key: &'static Key<T>) -> bool {
        self.take_nearest(key).is_some()
    }

    /// Removes every setting of `key` in every active checkpoint and returns
    /// how many there were.
    pub fn reset<T: Send + 'static>(&mut self, key: &'static Key<T>) -> usize {
        self.take_all(key).len()
    }

    /// A checkpoint pre-loaded with the checkpoint values visible here of
    /// every [inherited](Key::inherited) key: the nearest setting of each,
    /// shared rather than copied. Values of other keys stay here.
    ///
    /// Entering it on another stack (a spawned task's, another thread's)
    /// gives code there the values visible here; what it sets there stays
    /// there. Taking a snapshot costs a look at each value on the stack and
    /// one reference count per inherited value it carries, however many
    /// keys the thread has used; the first snapshot of a value moves it
    /// into a shared allocation.
    ///
    /// ```
    /// # use stackholm::{Key, Stack};
    /// static USER: Key<String> = Key::new("user").inherited();
    ///
    /// let mut parent = Stack::new();
    /// let mut root = parent.enter();
    /// root.set(&USER, "alice".to_owned())?;
    /// let snapshot = root.snapshot();
    ///
    /// let mut child = Stack::new();
    /// let mut inherited = child.enter_with(snapshot);
    /// assert_eq!(inherited.get(&USER).map(String::as_str), Some("alice"));
    /// inherited.set(&USER, "bob".to_owned())?;
    /// assert_eq!(root.get(&USER).map(String::as_str), Some("alice"));
    /// # Ok::<(), stackholm::Error>(())
    /// ```
    #[must_use]
    pub fn snapshot(&mut self) -> Checkpoint {
        // The active frames' settings, not every slot: the cost follows the
        // values on the stack, not the keys this stack has ever seen.
        let mut snapshot = Checkpoint::new();
        for depth in 0..self.frames.len() {
            let (start, end) = (self.frames[depth].start as usize, self.end(depth));
            for &setting in &self.settings[start..end] {
                if !setting.inherited() {
                    continue;
                }
                let slot = self.slots.at_mut(setting);
                // A key shadowed by a deeper frame is shared from there, the
                // setting visible here, not from this one.
                if slot.top_depth() == Some(depth as u32) {
                    if let Some(shared) = slot.share_top() {
                        snapshot.values.push((shared.tag(), shared));
                    }
                }
            }
        }
        snapshot
    }

    /// The names of the active checkpoints that have one, outermost first;
    /// see [`Checkpoint::named`].
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.frames.iter().filter_map(|frame| frame.name).collect()
    }

    /// Moves the values, name and hooks of `checkpoint` into the innermost
    /// checkpoint, just entered. It keeps its (now empty) places for when
    /// it is taken off again.
    pub(super) fn move_in(&mut self, checkpoint: &mut Checkpoint) {
        let top = self.frames.len() - 1;
        let depth = top as u32;
        self.frames[top].name = checkpoint.name;
        self.hooks
            .extend(checkpoint.hooks.drain(..).map(|hook| (depth, hook)));
        for (tag, carried) in &mut checkpoint.values {
            if carried.len() == 0 {
                continue;
            }
            let (setting, slot) = self.slots.erased_or_insert(*tag, || carried.slot());
            if carried.move_top(slot, depth) {
                self.settings.push(setting);
            }
        }
    }

    /// Takes the innermost checkpoint off into `checkpoint`, with its
    /// values, name and hooks; returns the id it had, or `None` if no
    /// checkpoint is active.
    fn pop_into(&mut self, checkpoint: &mut Checkpoint) -> Option<FrameId> {
        let frame = self.frames.pop()?;
        let depth = self.frames.len() as u32;
        checkpoint.name = frame.name;
        let first = self.hooks.partition_point(|&(at, _)| at < depth);
        checkpoint
            .hooks
            .extend(self.hooks.drain(first..).map(|(_, hook)| hook));
        for setting in self.settings.drain(frame.start as usize..) {
            let slot = self.slots.at_mut(setting);
            let carried = checkpoint.place(slot.tag(), || slot.carrier());
            slot.move_top(carried, 0);
        }
        Some(frame.id)
    }

    /// Takes the checkpoint `id` off into `checkpoint`, keeping its values,
    /// if it is the innermost one; returns whether it was.
    pub(crate) fn suspend(&mut self, id: FrameId, checkpoint: &mut Checkpoint) -> bool {
        self.top_id() == Some(id) && self.pop_into(checkpoint).is_some()
    }

    /// Sets a value in the outermost checkpoint, under the settings of the
    /// checkpoints nested in it; returns the value it replaces.
    pub(super) fn replace_under<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Option<Value<T>> {
        let (setting, slot) = self.slots.typed_or_insert(key);
        let replaced = slot.set_root(value);
        if replaced.is_none() {
            // Under the nested frames' settings, which move up one: a cost
            // in the number of settings, for a write made once per request.
            let end = self.end(0);
            self.settings.insert(end, setting);
            for frame in &mut self.frames[1..] {
                frame.start += 1;
            }
        }
        replaced
    }

    /// Takes the nearest setting of `key` off the stack (for a private key,
    /// only if the innermost checkpoint holds it); see
    /// [`remove`](Self::remove).
    pub(crate) fn take_nearest<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<Value<T>> {
        let current = self.frames.len().checked_sub(1)? as u32;
        let (setting, slot) = self.slots.typed_mut(key)?;
        match slot.top() {
            Some(top) if !setting.private() || top.depth == current => {}
            _ => return None,
        }
        let entry = slot.pop()?;
        self.forget(entry.depth, setting);
        Some(entry.value)
    }

    /// Takes every setting of `key` off the stack; see
    /// [`reset`](Self::reset).
    pub(crate) fn take_all<T: Send + 'static>(&mut self, key: &'static Key<T>) -> Vec<Entry<T>> {
        let Some((setting, slot)) = self.slots.typed_mut(key) else {
            return Vec::new();
        };
        let removed = slot.take_all();
        for entry in &removed {
            self.forget(entry.depth, setting);
        }
        removed
    }

    /// Where the settings of the frame at `depth` end.
    fn end(&self, depth: usize) -> usize {
        self.frames
            .get(depth + 1)
            .map_or(self.settings.len(), |next: &Frame| next.start as usize)
    }

    /// Drops `setting` from the settings of the frame at `depth`.
    fn forget(&mut self, depth: u32, setting: Setting) {
        let depth = depth as usize;
        let (start, end) = (self.frames[depth].start as usize, self.end(depth));
        if let Some(at) = self.settings[start..end]
            .iter()
            .rposition(|&s| s == setting)
        {
            self.settings.remove(start + at);
            for frame in &mut self.frames[depth + 1..] {
                frame.start -= 1;
            }
        }
    }

    /// Registers an exit hook on the innermost checkpoint, or on the
    /// outermost one if `root`; gives it back if no checkpoint is active.
    pub(crate) fn register(&mut self, hook: Hook, root: bool) -> Result<(), Hook> {
        match (self.frames.len(), root) {
            (0, _) => return Err(hook),
            (_, true) => {
                // After the root's own, before any nested checkpoint's.
                let at = self.hooks.partition_point(|&(depth, _)| depth == 0);
                self.hooks.insert(at, (0, hook));
            }
            (depth, false) => self.hooks.push((depth as u32 - 1, hook)),
        }
        Ok(())
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = |private| {
            self.slots
                .iter()
                .filter(move |slot| slot.len() > 0 && slot.private() == private)
                .map(|slot| slot.key_name())
                .collect::<Vec<_>>()
        };
        f.debug_struct("Stack")
            .field("depth", &self.depth())
            .field("keys", &keys(false))
            .field("private_keys", &keys(true))
            .finish()
    }
}
