//! The stack of checkpoints.

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use super::checkpoint::Checkpoint;
use super::doomed::{Doomed, Panics};
use super::slot::{Entry, Kind, Slots};
use super::value::Value;
use crate::error::{Operation, SetError};
use crate::exit::{Hook, Hooks, Outcome};
use crate::{Error, Key};

/// A LIFO stack of checkpoints and the values set in them.
///
/// This is the engine behind every storage, and a storage of its own: a
/// `Stack` you hold yourself and use through `&mut` (the Python
/// `OptimizedListStorage`). For a stack per thread or per task, see
/// [`Storage`](crate::Storage).
///
/// A value set in a checkpoint ([`set`](Self::set), [`get`](Self::get)) is
/// visible in it and in every checkpoint nested in it; a nested checkpoint
/// that sets the same key shadows the outer value until it is left. The
/// values of a [private](Key::private) key are visible in the one checkpoint
/// that set them only.
///
/// Reading the nearest value costs the same at any depth and with any number
/// of keys set: each key keeps its own stack of settings, innermost last.
///
/// ```
/// use stackholm::{Key, Stack};
///
/// static A: Key<i32> = Key::new("a");
///
/// let mut stack = Stack::new();
/// {
///     let mut outer = stack.enter();
///     outer.set(&A, 1)?;
///     {
///         let mut inner = outer.enter();
///         assert_eq!(inner.get(&A), Some(&1));
///         inner.set(&A, 2)?;
///         assert_eq!(inner.get(&A), Some(&2));
///     }
///     assert_eq!(outer.get(&A), Some(&1));
/// }
/// assert_eq!(stack.get(&A), None);
/// assert!(stack.set(&A, 3).is_err(), "no checkpoint is active");
/// # Ok::<(), stackholm::Error>(())
/// ```
#[derive(Default)]
pub struct Stack {
    /// The active frames, then frames already left: those are kept, in
    /// place, for their key lists' capacity, so that entering a checkpoint on
    /// a warm stack neither allocates nor moves a frame.
    frames: Vec<Frame>,
    /// How many frames are active.
    depth: usize,
    slots: Slots,
    ids: FrameIds,
    /// Where this stack's own methods put the values they drop; ambient
    /// storages bring their own, kept outside the borrowed stack.
    doomed: Doomed,
}

/// One checkpoint on the stack: the settings it holds.
#[derive(Debug, Default)]
struct Frame {
    id: FrameId,
    name: Option<&'static str>,
    settings: Vec<Setting>,
    hooks: Hooks,
}

/// The position of a key's slot, whether the key is inherited, and a
/// kind, in one word: a setting a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setting(u32);

impl Setting {
    #[inline]
    fn new(position: u32, inherited: bool, kind: Kind) -> Self {
        Self((position << 2) | (u32::from(inherited) << 1) | kind as u32)
    }

    /// Where the key's slot is in the stack's slots.
    #[inline]
    fn position(self) -> u32 {
        self.0 >> 2
    }

    /// Whether a snapshot may share the setting's value.
    #[inline]
    fn inherited(self) -> bool {
        self.0 & 2 != 0
    }

    #[inline]
    fn kind(self) -> Kind {
        if self.0 & 1 == 0 {
            Kind::Checkpoint
        } else {
            Kind::Block
        }
    }
}

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
struct FrameIds {
    next: u64,
    end: u64,
}

impl FrameIds {
    const BLOCK: u64 = 1 << 8;
    const CHUNK: u64 = 1 << 24;

    const fn new() -> Self {
        Self { next: 0, end: 0 }
    }

    #[inline]
    fn next(&mut self) -> FrameId {
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
        // On an exiting thread, a chunk of its own for this one block.
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

impl Stack {
    /// An empty stack: no checkpoint is active.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: Vec::new(),
            depth: 0,
            slots: Slots::new(),
            ids: FrameIds::new(),
            doomed: Doomed::new(),
        }
    }

    /// How many checkpoints are active.
    #[inline]
    #[must_use]
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether no active checkpoint holds an exit hook or a value whose
    /// drop runs code: leaving them all runs no code then.
    pub(crate) fn is_bare(&self) -> bool {
        self.frames[..self.depth].iter().all(|frame| {
            frame.hooks.is_empty()
                && frame
                    .settings
                    .iter()
                    .all(|setting| !self.slots.at(setting.position()).has_drop_glue())
        })
    }

    /// Leaves every checkpoint of a [bare](Self::is_bare) stack: its values
    /// are dropped here, but that runs no code, so nothing needs the stack
    /// installed.
    pub(crate) fn clear_bare(&mut self) {
        debug_assert!(self.is_bare(), "values and hooks are seen to by leaving");
        let mut doomed = Doomed::new();
        while self.depth > 0 {
            self.pop_discard(Some(&mut doomed));
        }
        debug_assert!(doomed.is_empty(), "bare values are dropped in place");
    }

    /// The id of the innermost checkpoint, if one is active.
    #[inline]
    pub(crate) fn top_id(&self) -> Option<FrameId> {
        Some(self.frames[..self.depth].last()?.id)
    }

    /// How many frames the stack has room for without allocating.
    pub(crate) fn frame_capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Enters a new, empty checkpoint; it is left when the guard is dropped.
    ///
    /// The guard dereferences to the stack, so everything is done through it
    /// while it lives, nested checkpoints included.
    #[inline]
    pub fn enter(&mut self) -> StackGuard<'_> {
        let id = self.push_empty();
        StackGuard { stack: self, id }
    }

    /// Enters `checkpoint` with the values pre-loaded into it; they are
    /// visible until the guard is dropped.
    pub fn enter_with(&mut self, mut checkpoint: Checkpoint) -> StackGuard<'_> {
        let id = self.push_from(&mut checkpoint);
        StackGuard { stack: self, id }
    }

    /// Enters `checkpoint` without a guard; [`pop`](Self::pop) leaves it.
    ///
    /// This is the manual form of [`enter_with`](Self::enter_with), for
    /// checkpoints whose lifetime is not a lexical scope.
    pub fn push(&mut self, mut checkpoint: Checkpoint) {
        self.push_from(&mut checkpoint);
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

    /// Sets a value in the innermost checkpoint, replacing the value that
    /// checkpoint already held for `key` and shadowing any outer one until
    /// the checkpoint is left.
    ///
    /// # Errors
    ///
    /// [`Error::NoCheckpoint`] if no checkpoint is active; the error hands
    /// the value back.
    #[inline]
    pub fn set<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<(), SetError<T>> {
        self.replace(key, value, Operation::Set).map(drop)
    }

    /// The nearest value of `key`: the one set by the innermost checkpoint
    /// that set it (for a [private](Key::private) key, by the innermost
    /// checkpoint itself). `None` if none did, or if no checkpoint is
    /// active at all.
    // Always inlined: the read is a few instructions, and a call around it
    // measured a quarter more (read_nearest in `benches/instructions.sh`).
    #[inline(always)]
    #[must_use]
    pub fn get<T: Send + 'static>(&self, key: &'static Key<T>) -> Option<&T> {
        let slot = self.slots.typed(key)?;
        match key.kind() {
            Kind::Checkpoint => Some(slot.top(Kind::Checkpoint)?.value.get()),
            Kind::Block => {
                let top = slot.top(Kind::Block)?;
                (top.depth as usize + 1 == self.depth).then(|| top.value.get())
            }
        }
    }

    /// Removes the nearest setting of `key` (the Python
    /// `pop_checkpoint_value`): the next outer setting, if any, becomes
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

    /// Removes every setting of `key` in every active checkpoint (the Python
    /// `reset_checkpoint_value`) and returns how many there were.
    pub fn reset<T: Send + 'static>(&mut self, key: &'static Key<T>) -> usize {
        self.take_all(key).len()
    }

    /// Takes every setting of `key` off the stack, for the caller to drop.
    pub(crate) fn take_all<T: Send + 'static>(&mut self, key: &'static Key<T>) -> Vec<Entry<T>> {
        let Some(slot) = self.slots.typed_mut(key) else {
            return Vec::new();
        };
        let kind = key.kind();
        let removed = slot.take_all(kind);
        if let Some(position) = self.slots.position_of(key) {
            for entry in &removed {
                forget_key(&mut self.frames[entry.depth as usize], kind, key, position);
            }
        }
        removed
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
        let mut carriers = Vec::new();
        for (depth, frame) in self.frames[..self.depth].iter().enumerate() {
            for setting in &frame.settings {
                if !setting.inherited() || setting.kind() != Kind::Checkpoint {
                    continue;
                }
                let slot = self.slots.at_mut(setting.position());
                // Only the nearest setting of a key is visible here.
                if slot.top_depth(Kind::Checkpoint) == Some(depth as u32) {
                    carriers.extend(slot.share_top_checkpoint_value());
                }
            }
        }
        Checkpoint {
            carriers,
            ..Checkpoint::new()
        }
    }

    /// Enters a checkpoint, moving the checkpoint's values into the stack.
    /// The checkpoint keeps its (now empty) carriers for when it is popped.
    pub(crate) fn push_from(&mut self, checkpoint: &mut Checkpoint) -> FrameId {
        let id = self.push_empty();
        self.attach_all(checkpoint);
        id
    }

    /// Moves the checkpoint's values, name and hooks into the innermost
    /// frame.
    fn attach_all(&mut self, checkpoint: &mut Checkpoint) {
        let depth = self.depth - 1;
        let frame = &mut self.frames[depth];
        frame.name = checkpoint.name;
        frame.hooks.append(&mut checkpoint.hooks);
        for carrier in &mut checkpoint.carriers {
            if let Some(position) = carrier.attach(&mut self.slots, depth as u32) {
                frame
                    .settings
                    .push(Setting::new(position, carrier.inherited(), carrier.kind()));
            }
        }
    }

    /// Enters a checkpoint with nothing in it: the hot path of every guard.
    #[inline]
    pub(crate) fn push_empty(&mut self) -> FrameId {
        let id = self.ids.next();
        self.push_frame(id);
        id
    }

    #[inline]
    fn push_frame(&mut self, id: FrameId) {
        if self.depth == self.frames.len() {
            self.frames.push(Frame::default());
        }
        let frame = &mut self.frames[self.depth];
        frame.id = id;
        frame.name = None;
        self.depth += 1;
    }

    /// Leaves the innermost checkpoint, moving its values into `checkpoint`.
    /// Returns the id it had, or `None` if no checkpoint is active.
    pub(crate) fn pop_into(&mut self, checkpoint: &mut Checkpoint) -> Option<FrameId> {
        self.depth = self.depth.checked_sub(1)?;
        let frame = &mut self.frames[self.depth];
        checkpoint.name = frame.name;
        checkpoint.hooks.append(&mut frame.hooks);
        for setting in frame.settings.drain(..) {
            let kind = setting.kind();
            let slot = self.slots.at_mut(setting.position());
            match checkpoint.carrier_mut(slot.key_index(), kind) {
                Some(carrier) => carrier.detach(&mut self.slots),
                None => checkpoint.carriers.extend(slot.detach_top(kind)),
            }
        }
        Some(frame.id)
    }

    /// Takes the checkpoint `id` off the stack into `checkpoint`, keeping
    /// its values, if it is the innermost one; returns whether it was.
    pub(crate) fn suspend(&mut self, id: FrameId, checkpoint: &mut Checkpoint) -> bool {
        self.top_id() == Some(id) && self.pop_into(checkpoint).is_some()
    }

    /// Leaves the checkpoint `id` if it is the innermost one, moving its
    /// values into `doomed` (the stack's own if `None`): the common case of
    /// [`step`](Self::step), kept small enough to inline.
    #[inline]
    pub(crate) fn leave_top(&mut self, id: FrameId, doomed: Option<&mut Doomed>) -> bool {
        let top = self.depth.checked_sub(1);
        if top.is_some_and(|top| self.frames[top].id == id && self.frames[top].hooks.is_empty()) {
            self.pop_discard(doomed);
            true
        } else {
            false
        }
    }

    /// Takes one frame off the stack on the way to `until`, moving its
    /// values into `doomed`, or into the stack's own place for them if
    /// `None`.
    ///
    /// A frame with exit hooks is not taken off at once: its hooks are moved
    /// into `hooks` first, for the caller to run while the frame's values
    /// are still visible.
    pub(crate) fn step(
        &mut self,
        until: Until,
        doomed: Option<&mut Doomed>,
        hooks: &mut Hooks,
    ) -> Step {
        let top = self.top_id();
        let target = match until {
            Until::Left(id) if top == Some(id) => {
                if self.take_top_hooks(hooks) {
                    return Step::Hooks;
                }
                self.pop_discard(doomed);
                return Step::Left;
            }
            Until::Left(id) => Some(id),
            Until::Top(target) if top == target => return Step::Reached,
            Until::Top(target) => target,
        };
        match target {
            Some(id) if self.position_of(id).is_none() => Step::Missing,
            _ if self.take_top_hooks(hooks) => Step::Hooks,
            _ => {
                self.pop_discard(doomed);
                Step::More
            }
        }
    }

    /// Moves the innermost frame's exit hooks into `hooks`; returns whether
    /// it had any. Otherwise `hooks`, emptied by running them, gives its
    /// buffer back to the frame, which keeps it for the next checkpoint
    /// entered there: registering hooks allocates no list once warm.
    fn take_top_hooks(&mut self, hooks: &mut Hooks) -> bool {
        let Some(top) = self.depth.checked_sub(1) else {
            return false;
        };
        let frame_hooks = &mut self.frames[top].hooks;
        let taken = !frame_hooks.is_empty();
        if taken || hooks.is_empty() {
            std::mem::swap(frame_hooks, hooks);
        }
        taken
    }

    /// Registers an exit hook on the innermost checkpoint, or on the
    /// outermost one if `root`.
    pub(crate) fn on_exit(&mut self, hook: Hook, root: bool) -> Result<(), Hook> {
        let depth = match (self.depth, root) {
            (0, _) => return Err(hook),
            (_, true) => 0,
            (depth, false) => depth - 1,
        };
        self.frames[depth].hooks.push(hook);
        Ok(())
    }

    /// The names of the active checkpoints that have one, outermost first;
    /// see [`Checkpoint::named`].
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.names_iter().collect()
    }

    /// [`names`](Self::names), without collecting them.
    pub(crate) fn names_iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.frames[..self.depth]
            .iter()
            .filter_map(|frame| frame.name)
    }

    /// Leaves checkpoints, innermost first, until `until`, dropping each
    /// checkpoint's values once it is off the stack. Returns how many
    /// checkpoints were left.
    ///
    /// A destructor that panics does not stop the others, nor the leaving;
    /// its panic is resumed afterwards (see [`Panics::resume`]).
    #[inline]
    pub(crate) fn leave_until(&mut self, until: Until, outcome: Outcome) -> usize {
        if let Until::Left(id) = until {
            if self.leave_top(id, None) {
                let mut panics = Panics::default();
                self.doomed.drop_values(&mut panics);
                panics.resume();
                return 1;
            }
        }
        let left = leave_by_steps(outcome, |panics, hooks| {
            let step = self.step(until, None, hooks);
            self.doomed.drop_values(panics);
            Ok::<_, Error>(step)
        });
        left.unwrap_or_default()
    }

    fn position_of(&self, id: FrameId) -> Option<usize> {
        self.frames[..self.depth]
            .iter()
            .rposition(|frame| frame.id == id)
    }

    /// Leaves the innermost checkpoint, moving its values into `doomed` (the
    /// stack's own if `None`).
    #[inline]
    fn pop_discard(&mut self, doomed: Option<&mut Doomed>) {
        if let Some(depth) = self.depth.checked_sub(1) {
            self.depth = depth;
            let frame = &mut self.frames[depth];
            let doomed = match doomed {
                Some(doomed) => doomed,
                None => &mut self.doomed,
            };
            // Last set, first in: `doomed` drops the first kept first.
            while let Some(setting) = frame.settings.pop() {
                self.slots
                    .at_mut(setting.position())
                    .doom_top(setting.kind(), doomed);
            }
        }
    }

    /// Sets a value in the innermost checkpoint; returns the value it
    /// replaces there, for the caller to drop.
    #[inline]
    pub(crate) fn replace<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
        operation: Operation,
    ) -> Result<Option<Value<T>>, SetError<T>> {
        let kind = key.kind();
        let depth = match self.current_depth(key, operation) {
            Ok(depth) => depth,
            Err(err) => return Err(SetError::new(value, err)),
        };
        let (position, slot) = self.slots.typed_or_insert(key);
        let replaced = slot.set(kind, depth, Value::Owned(value));
        if replaced.is_none() {
            self.frames[depth as usize].settings.push(Setting::new(
                position,
                key.sharing().is_some(),
                kind,
            ));
        }
        Ok(replaced)
    }

    /// Sets a checkpoint value in the outermost checkpoint, under any
    /// setting nested checkpoints made; returns the value it replaces there,
    /// for the caller to drop.
    pub(crate) fn replace_root<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
        value: T,
    ) -> Result<Option<Value<T>>, SetError<T>> {
        if let Err(err) = self.current_depth(key, Operation::SetRoot) {
            return Err(SetError::new(value, err));
        }
        let kind = key.kind();
        let (position, slot) = self.slots.typed_or_insert(key);
        let replaced = slot.set_root(kind, Value::Owned(value));
        if replaced.is_none() {
            self.frames[0]
                .settings
                .push(Setting::new(position, key.sharing().is_some(), kind));
        }
        Ok(replaced)
    }

    /// Takes the nearest setting of `key` off the stack (for a private key,
    /// only if the innermost checkpoint holds it), for the caller to drop.
    pub(crate) fn take_nearest<T: Send + 'static>(
        &mut self,
        key: &'static Key<T>,
    ) -> Option<Value<T>> {
        let current = self.depth.checked_sub(1)? as u32;
        let kind = key.kind();
        // Found before anything is taken: an early return afterwards would
        // drop the value here, under the caller's borrow.
        let position = self.slots.position_of(key)?;
        let slot = self.slots.typed_mut(key)?;
        match slot.top(kind) {
            Some(top) if kind == Kind::Checkpoint || top.depth == current => {}
            _ => return None,
        }
        let entry = slot.pop(kind)?;
        forget_key(&mut self.frames[entry.depth as usize], kind, key, position);
        Some(entry.value)
    }

    #[inline]
    fn current_depth<T>(&self, key: &'static Key<T>, operation: Operation) -> Result<u32, Error> {
        match self.depth {
            0 => Err(no_checkpoint(operation, key.name())),
            depth => Ok(depth as u32 - 1),
        }
    }
}

/// Kept out of line so that the hot paths which may fail stay small.
#[cold]
fn no_checkpoint(operation: Operation, key: &'static str) -> Error {
    Error::NoCheckpoint {
        operation,
        key: Some(key),
    }
}

/// Drops a key, whose slot is at `position`, from the list of keys its
/// frame holds a setting of.
fn forget_key<T>(frame: &mut Frame, kind: Kind, key: &'static Key<T>, position: u32) {
    let setting = Setting::new(position, key.sharing().is_some(), kind);
    let settings = &mut frame.settings;
    if let Some(position) = settings.iter().rposition(|&s| s == setting) {
        settings.swap_remove(position);
    }
}

/// Where [`Stack::step`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Once the checkpoint has been left.
    Left(FrameId),
    /// Once the checkpoint is the innermost one (`None`: once none is left).
    Top(Option<FrameId>),
}

/// What one [`Stack::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Took a frame off; there are more to go.
    More,
    /// Took the innermost frame's exit hooks, to run before it is taken
    /// off.
    Hooks,
    /// Took the target's frame off: done.
    Left,
    /// The target is the innermost checkpoint: done, nothing taken off.
    Reached,
    /// The target checkpoint is not on this stack: nothing changed.
    Missing,
}

/// Runs `step` until it is done and returns how many frames the steps took
/// off. Each step drops the values it took off before the next, with no
/// stack borrowed; a destructor that panics does not stop the steps, and
/// the first such panic is resumed once they are over.
///
/// Exit hooks a step hands out run, with `outcome`, before the next step,
/// with no stack borrowed either; a panicking hook does not stop the rest.
#[inline]
pub(crate) fn leave_by_steps<E>(
    outcome: Outcome,
    mut step: impl FnMut(&mut Panics, &mut Hooks) -> Result<Step, E>,
) -> Result<usize, E> {
    let mut panics = Panics::default();
    let mut hooks = Hooks::new();
    let mut left = 0;
    let result = loop {
        match step(&mut panics, &mut hooks) {
            Ok(Step::Hooks) => hooks.run(Outcome::now(outcome), &mut panics),
            Ok(Step::More) => left += 1,
            Ok(Step::Left) => break Ok(left + 1),
            Ok(Step::Reached | Step::Missing) => break Ok(left),
            Err(err) => break Err(err),
        }
    };
    panics.resume();
    result
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let visible = |kind| {
            self.slots
                .iter()
                .filter(move |slot| slot.len(kind) > 0)
                .map(|slot| slot.key_name())
                .collect::<Vec<_>>()
        };
        f.debug_struct("Stack")
            .field("depth", &self.depth())
            .field("keys", &visible(Kind::Checkpoint))
            .field("private_keys", &visible(Kind::Block))
            .finish()
    }
}

/// A checkpoint entered on a [`Stack`]; dropping the guard leaves it.
///
/// The guard dereferences to the stack, so nested checkpoints are entered
/// through it, and the borrow checker keeps them in LIFO order.
///
/// Dropping the guard leaves its checkpoint together with any checkpoint
/// still active inside it (one pushed through the guard with
/// [`Stack::push`]); if its checkpoint was already popped with
/// [`Stack::pop`], dropping it changes nothing.
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
pub struct StackGuard<'a> {
    stack: &'a mut Stack,
    id: FrameId,
}

impl Deref for StackGuard<'_> {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        self.stack
    }
}

impl DerefMut for StackGuard<'_> {
    fn deref_mut(&mut self) -> &mut Stack {
        self.stack
    }
}

impl Drop for StackGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.stack
            .leave_until(Until::Left(self.id), Outcome::now(Outcome::Left));
    }
}

impl fmt::Debug for StackGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackGuard")
            .field("stack", &self.stack)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh stacks (a scope per spawned task) must not use up the id space
    /// faster than checkpoints are entered: each takes a small block.
    #[test]
    fn fresh_stacks_take_small_blocks_of_ids() {
        let ids: Vec<u64> = (0..1000).map(|_| Stack::new().push_empty().0).collect();
        let spread = ids.iter().max().unwrap() - ids.iter().min().unwrap();
        // 256 ids a stack at most, and one thread's chunk of blocks.
        assert!(
            spread < 1000 * FrameIds::BLOCK + FrameIds::CHUNK,
            "1000 fresh stacks spread over {spread} ids"
        );
    }
}
