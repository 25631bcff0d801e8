//! The frames core: the checkpoints of one stack and the values set in
//! them.
//!
//! Everything here is bookkeeping: no method runs user code. What a method
//! takes off the stack it hands back, to the caller or into a [`Removed`],
//! for the layer above to drop when that is safe: the owned
//! [`Stack`](super::Stack) at once, an ambient storage once its borrow is
//! released. Values whose drop runs no code are dropped in place.

use std::fmt;

use super::checkpoint::Checkpoint;
use super::ids::FrameId;
use super::removed::{Cleared, Removed};
use super::slot::{Entry, Value};
use super::slots::{Setting, Slots};
use crate::exit::Hook;
use crate::Key;

/// A stack of checkpoints: the engine behind every storage.
#[derive(Default)]
pub(crate) struct Frames {
    /// The active checkpoints, outermost first.
    frames: Vec<Frame>,
    /// The settings every frame holds, frame after frame: a frame's are
    /// from its `start` to the next frame's.
    settings: Vec<Setting>,
    /// Exit hooks with the depth of their frame, in the order of the
    /// frames, each frame's in the order registered.
    hooks: Vec<(u32, Hook)>,
    slots: Slots,
}

/// One active checkpoint.
#[derive(Debug)]
struct Frame {
    id: FrameId,
    name: Option<&'static str>,
    /// Where its settings start in [`Frames::settings`].
    start: u32,
}

impl Frames {
    pub(crate) const fn new() -> Self {
        Self {
            frames: Vec::new(),
            settings: Vec::new(),
            hooks: Vec::new(),
            slots: Slots::new(),
        }
    }

    /// How many checkpoints are active.
    #[inline]
    pub(crate) fn depth(&self) -> usize {
        self.frames.len()
    }

    /// The id of the innermost checkpoint, if one is active.
    #[inline]
    pub(crate) fn top_id(&self) -> Option<FrameId> {
        Some(self.frames.last()?.id)
    }

    /// How many keys the stack holds a slot for.
    pub(crate) fn keys(&self) -> usize {
        self.slots.len()
    }

    /// How many frames the stack has room for without allocating.
    pub(crate) fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Enters a checkpoint with nothing in it, as `id`.
    #[inline]
    pub(crate) fn enter(&mut self, id: FrameId) {
        if self.frames.len() == self.frames.capacity() {
            self.grow();
        }
        self.frames.push(Frame {
            id,
            name: None,
            start: self.settings.len() as u32,
        });
    }

    /// Doubles the room for frames, starting from one: a suspended scope
    /// holds its root only, and should not hold room for four.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        self.frames.reserve_exact(self.frames.capacity().max(1));
    }

    /// Enters `checkpoint` as `id`, moving its values, name and hooks in.
    /// It keeps its (now empty) slots for when it is taken off again.
    pub(crate) fn enter_with(&mut self, id: FrameId, checkpoint: &mut Checkpoint) {
        self.enter(id);
        if checkpoint.is_empty() {
            return;
        }
        let depth = self.frames.len() as u32 - 1;
        let top = self.frames.len() - 1;
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

    /// The nearest value of `key`; see [`Stack::get`](super::Stack::get).
    #[inline(always)]
    pub(crate) fn get<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        let top = self.slots.typed(key)?.top()?;
        if key.is_private() && top.depth as usize + 1 != self.frames.len() {
            return None;
        }
        Some(top.value.get())
    }

    /// Sets a value in the innermost checkpoint; returns the value it
    /// replaces there, or gives `value` back if no checkpoint is active.
    // Always inlined, like the read: the caller then drops what is replaced
    // without a result passed through memory.
    #[inline(always)]
    pub(crate) fn set<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<Option<Value<T>>, T> {
        let Some(depth) = self.frames.len().checked_sub(1) else {
            return Err(value);
        };
        let (setting, slot) = self.slots.typed_or_insert(key);
        let replaced = slot.set(depth as u32, value);
        if replaced.is_none() {
            self.settings.push(setting);
        }
        Ok(replaced)
    }

    /// Sets a value in the outermost checkpoint, under any setting nested
    /// checkpoints made; as [`set`](Self::set) otherwise.
    pub(crate) fn set_root<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<Option<Value<T>>, T> {
        match self.frames.len() {
            0 => return Err(value),
            // The root is the innermost checkpoint: a plain set (a seed's).
            1 => return self.set(key, value),
            _ => {}
        }
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
        Ok(replaced)
    }

    /// Takes the nearest setting of `key` off the stack (for a private key,
    /// only if the innermost checkpoint holds it).
    pub(crate) fn take_nearest<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<Value<T>> {
        let current = self.frames.len().checked_sub(1)? as u32;
        // Found before anything is taken: an early return afterwards would
        // drop the value here, under the caller's borrow.
        let setting = self.slots.find(key.tag())?;
        let slot = self.slots.typed_mut(key)?;
        match slot.top() {
            Some(top) if !key.is_private() || top.depth == current => {}
            _ => return None,
        }
        let entry = slot.pop()?;
        self.forget(entry.depth, setting);
        Some(entry.value)
    }

    /// Takes every setting of `key` off the stack.
    pub(crate) fn take_all<T: Send + 'static>(&mut self, key: &'static Key<T>) -> Vec<Entry<T>> {
        let Some(setting) = self.slots.find(key.tag()) else {
            return Vec::new();
        };
        let removed = self.slots.typed_mut(key).map(|slot| slot.take_all());
        let removed = removed.unwrap_or_default();
        for entry in &removed {
            self.forget(entry.depth, setting);
        }
        removed
    }

    /// Where the settings of the frame at `depth` end.
    fn end(&self, depth: usize) -> usize {
        self.frames
            .get(depth + 1)
            .map_or(self.settings.len(), |next| next.start as usize)
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

    /// A checkpoint sharing the nearest value of every inherited key; see
    /// [`Stack::snapshot`](super::Stack::snapshot).
    pub(crate) fn snapshot(&mut self) -> Checkpoint {
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

    /// Registers an exit hook on the innermost checkpoint, or on the
    /// outermost one if `root`; gives it back if no checkpoint is active.
    pub(crate) fn on_exit(&mut self, hook: Hook, root: bool) -> Result<(), Hook> {
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

    /// The names of the active checkpoints that have one, outermost first.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.frames.iter().filter_map(|frame| frame.name).collect()
    }

    /// Leaves every checkpoint at once, if none has an exit hook: what ends
    /// a scope whose checkpoints have no hooks, with none of the step by
    /// step machinery of leaving. Values whose drop runs no code are
    /// dropped in place; the others are handed back still in their slots,
    /// which the stack goes on without until [`restore`](Self::restore)
    /// puts them back.
    pub(crate) fn clear(&mut self) -> Clearing {
        if !self.hooks.is_empty() {
            return Clearing::Hooks;
        }
        self.frames.clear();
        if self.settings.iter().any(|setting| setting.drops()) {
            return Clearing::Values(Cleared {
                slots: std::mem::take(&mut self.slots),
                settings: std::mem::take(&mut self.settings),
            });
        }
        for setting in self.settings.drain(..) {
            self.slots.at_mut(setting).drop_top();
        }
        Clearing::Done
    }

    /// Gives the emptied slots of `cleared` back, so that the stack, kept
    /// for another scope, sets the same keys without allocating. Where the
    /// destructors left checkpoints on it meanwhile, their slots stay and
    /// these go.
    pub(crate) fn restore(&mut self, cleared: Cleared) {
        debug_assert!(cleared.settings.is_empty(), "values are dropped first");
        if self.frames.is_empty() {
            self.slots = cleared.slots;
            self.settings = cleared.settings;
        }
    }

    /// Takes the innermost checkpoint off into `checkpoint`, with its
    /// values, name and hooks; returns the id it had, or `None` if no
    /// checkpoint is active.
    pub(crate) fn pop_into(&mut self, checkpoint: &mut Checkpoint) -> Option<FrameId> {
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

    /// Leaves the checkpoint `id` if it is the innermost one and has no
    /// exit hooks, handing its values to `removed`: the common case of
    /// leaving, kept small enough to inline.
    #[inline]
    pub(crate) fn leave_top(&mut self, id: FrameId, removed: &mut Removed) -> bool {
        let on_top = self.frames.last().is_some_and(|top| top.id == id);
        if on_top && !self.top_has_hooks() {
            self.pop_top(removed);
            true
        } else {
            false
        }
    }

    /// Whether the innermost checkpoint has exit hooks.
    #[inline]
    fn top_has_hooks(&self) -> bool {
        let depth = self.frames.len() as u32;
        self.hooks.last().is_some_and(|&(at, _)| at + 1 == depth)
    }

    /// The innermost checkpoint's last registered exit hook, taken off it.
    pub(crate) fn take_top_hook(&mut self) -> Option<Hook> {
        if self.top_has_hooks() {
            self.hooks.pop().map(|(_, hook)| hook)
        } else {
            None
        }
    }

    /// Whether the checkpoint `id` is active.
    pub(crate) fn contains(&self, id: FrameId) -> bool {
        self.frames.iter().rev().any(|frame| frame.id == id)
    }

    /// Leaves the innermost checkpoint, whose hooks have run, handing its
    /// values to `removed`, the last set first.
    #[inline]
    pub(crate) fn pop_top(&mut self, removed: &mut Removed) {
        debug_assert!(
            !self.top_has_hooks(),
            "hooks run before their frame is left"
        );
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let start = frame.start as usize;
        for &setting in self.settings[start..].iter().rev() {
            let slot = self.slots.at_mut(setting);
            if setting.drops() {
                removed.keep(slot);
            } else {
                slot.drop_top();
            }
        }
        // Nothing above can fail halfway: no user code runs, and the
        // settings are cut once their values are off.
        self.settings.truncate(start);
    }
}

/// What [`Frames::clear`] did.
pub(crate) enum Clearing {
    /// Nothing: a checkpoint has exit hooks, so they are left one by one.
    Hooks,
    /// Left them all; no value's drop ran code.
    Done,
    /// Left them all; their values wait to be dropped.
    Values(Cleared),
}

/// Where leaving stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Once the checkpoint has been left.
    Left(FrameId),
    /// Once the checkpoint is the innermost one (`None`: once none is left).
    Top(Option<FrameId>),
}

/// What one [`Frames::step`] did.
pub(crate) enum Step {
    /// Took a frame off; there are more to go.
    More,
    /// Took an exit hook off the innermost frame, to run before the next
    /// step.
    Hook(Hook),
    /// Took the target's frame off: done.
    Left,
    /// The target is the innermost checkpoint: done, nothing taken off.
    Reached,
    /// The target checkpoint is not on this stack: nothing changed.
    Missing,
}

impl Frames {
    /// Takes one exit hook or one frame off the stack on the way to
    /// `until`, handing the frame's values to `removed`.
    pub(crate) fn step(&mut self, until: Until, removed: &mut Removed) -> Step {
        let top = self.top_id();
        let (target, last) = match until {
            Until::Left(id) => (Some(id), top == Some(id)),
            Until::Top(target) if top == target => return Step::Reached,
            Until::Top(target) => (target, false),
        };
        if !last && target.is_some_and(|id| !self.contains(id)) {
            return Step::Missing;
        }
        if let Some(hook) = self.take_top_hook() {
            return Step::Hook(hook);
        }
        self.pop_top(removed);
        if last {
            Step::Left
        } else {
            Step::More
        }
    }
}

impl fmt::Debug for Frames {
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
