//! The floor of a type-erased context engine in safe Rust: the least a
//! stack of checkpoints can do per operation while keeping what
//! stackholm's thread storage guarantees, to tell what stackholm spends
//! above it.
//!
//! It covers what the workloads go through in stackholm:
//!
//! - values of any `T: Send + 'static`, one slot per key holding that
//!   key's settings, innermost last, downcast with [`Any`]; keys are
//!   statics given a process-wide tag on their first set (tag 0: a key
//!   never set, which reads as absent), found through a small
//!   open-addressed table per stack, not a vector indexed by tag (which
//!   would grow with every key the process used);
//! - reads in O(1) at any depth: the nearest setting is the slot's last;
//! - [private](FloorKey::private) keys, whose value is visible only in the
//!   checkpoint that set it;
//! - a set in a checkpoint that already set the key replaces its value in
//!   place, otherwise pushes a setting;
//! - leaving a checkpoint drops its values; values whose type needs drop
//!   are dropped only once the thread storage's `RefCell` is released
//!   (their destructors may use the storage), the others in place;
//! - guards with frame ids: a guard whose checkpoint is not the innermost
//!   leaves it and every checkpoint inside it; a guard dropped while the
//!   storage is borrowed (from a value's `Clone`, say) defers the leave,
//!   done at the end of the next read;
//! - exit hooks, looked for on every leave;
//! - values owned or shared ([`Value`]), as stackholm shares values for
//!   inheritance into spawned tasks.
//!
//! Two variants: [`FloorOwned`], a stack used through `&mut`, and
//! [`FloorThread`], a `thread_local!` `RefCell` holding one.
//!
//! Instructions per workload (callgrind, `examples/count.rs`, runs of n
//! and 2n, the difference over n), each side through a `Context` adapter
//! marked `#[inline]` as every other implementation's is, against
//! stackholm at the time:
//!
//! | workload        | stackholm owned | floor owned | stackholm thread | floor thread |
//! |-----------------|----------------:|------------:|-----------------:|-------------:|
//! | request_like    |            2056 |        1884 |             2657 |         2236 |
//! | enter_set_leave |             187 |         179 |              257 |          206 |
//! | enter_leave     |              62 |          61 |              120 |           75 |
//! | read_nearest    |              62 |          55 |               77 |           65 |
//!
//! What it leaves out, next to stackholm: task-local scopes (no current
//! stack swapped in, no parked stacks), checkpoints moved on and off the
//! stack, snapshots, `set_root`, `remove`, names, and frame ids unique
//! across stacks (ids are per stack here: there is one stack per thread).

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::{Context, KEYS};

// ------------------------------------------------------------------- keys

/// The last tag handed out; tags start at 1.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

/// The tag of a free place of a table: no key's.
const FREE: u32 = u32::MAX;

/// A typed key, declared as a `static`.
pub struct FloorKey<T: 'static> {
    /// 0 until the key is first set.
    tag: AtomicU32,
    private: bool,
    _value: PhantomData<fn() -> T>,
}

impl<T: 'static> FloorKey<T> {
    /// A key whose values are visible in the checkpoint that set them and
    /// every one nested in it.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            tag: AtomicU32::new(0),
            private: false,
            _value: PhantomData,
        }
    }

    /// A key whose values are visible only in the checkpoint that set them.
    #[must_use]
    pub const fn private() -> Self {
        Self {
            private: true,
            ..Self::new()
        }
    }

    /// The key's tag, given on first use.
    #[inline]
    fn tag(&'static self) -> u32 {
        match self.tag.load(Ordering::Acquire) {
            0 => self.assign_tag(),
            tag => tag,
        }
    }

    /// The key's tag, 0 if it was never set: what a read looks for.
    #[inline]
    fn peek_tag(&self) -> u32 {
        self.tag.load(Ordering::Acquire)
    }

    #[cold]
    #[inline(never)]
    fn assign_tag(&'static self) -> u32 {
        let fresh = NEXT_TAG.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(fresh < FREE, "floor: too many keys");
        match self
            .tag
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(tag) => tag,
        }
    }
}

impl<T: 'static> Default for FloorKey<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> fmt::Debug for FloorKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloorKey")
            .field("tag", &self.peek_tag())
            .field("private", &self.private)
            .finish()
    }
}

/// The keys of the workloads.
pub static FLOOR_KEYS: [FloorKey<u64>; KEYS] = [const { FloorKey::new() }; KEYS];

// ------------------------------------------------------------------ slots

/// A value as a slot holds it: owned, or shared with spawned tasks.
#[derive(Debug)]
pub enum Value<T> {
    /// Set here, owned by the slot.
    Owned(T),
    /// Shared by reference count.
    Shared(Arc<T>),
}

impl<T> Value<T> {
    /// The value.
    #[inline]
    pub fn get(&self) -> &T {
        match self {
            Value::Owned(value) => value,
            Value::Shared(value) => value,
        }
    }
}

/// One setting of a key: its value and the depth of its checkpoint.
struct Entry<T> {
    depth: u32,
    value: Value<T>,
}

/// The settings of one key, innermost last.
struct Slot<T> {
    entries: Vec<Entry<T>>,
}

/// What leaving does to a slot without knowing its type.
trait ErasedSlot: Any {
    /// Drops the innermost setting in place.
    fn drop_top(&mut self);
    /// Takes the innermost value out, to be dropped later.
    fn take_top(&mut self) -> Option<Box<dyn Any>>;
}

impl<T: 'static> ErasedSlot for Slot<T> {
    #[inline]
    fn drop_top(&mut self) {
        // Only a shared value has anything to drop here: no copy of the
        // entry out of the vector for the others.
        if let Some(Entry {
            value: Value::Owned(_),
            ..
        }) = self.entries.last()
        {
            if !std::mem::needs_drop::<T>() {
                let len = self.entries.len();
                self.entries.truncate(len - 1);
                return;
            }
        }
        self.entries.pop();
    }

    fn take_top(&mut self) -> Option<Box<dyn Any>> {
        let entry = self.entries.pop()?;
        Some(Box::new(entry.value))
    }
}

/// The place of an empty table, which no key is found in.
struct NoSlot;

impl ErasedSlot for NoSlot {
    fn drop_top(&mut self) {}

    fn take_top(&mut self) -> Option<Box<dyn Any>> {
        None
    }
}

/// A place of the table: a key's slot under its tag, or a free place
/// (tag [`FREE`], a slot of no key, which allocates nothing).
struct Place {
    tag: u32,
    /// The key's [`PRIVATE`] and [`DROPS`] flags.
    flags: u32,
    slot: Box<dyn ErasedSlot>,
}

impl Place {
    fn free() -> Self {
        Self {
            tag: FREE,
            flags: 0,
            slot: Box::new(NoSlot),
        }
    }
}

/// The flag of a private key.
const PRIVATE: u32 = 2;
/// The flag of a key whose values may run code when dropped.
const DROPS: u32 = 1;

/// A setting a frame holds, in a word: where its key's slot is in the
/// table, and the key's flags.
#[derive(Debug, Clone, Copy)]
struct Setting(u32);

impl Setting {
    #[inline]
    fn new(at: usize, flags: u32) -> Self {
        Self((at as u32) << 2 | flags)
    }

    #[inline]
    fn position(self) -> usize {
        (self.0 >> 2) as usize
    }

    #[inline]
    fn drops(self) -> bool {
        self.0 & DROPS != 0
    }
}

// ------------------------------------------------------------------ stack

/// An exit hook.
pub type Hook = Box<dyn FnOnce()>;

/// Identifies an entered checkpoint.
pub type FrameId = u64;

/// One active checkpoint.
#[derive(Debug)]
struct Frame {
    id: FrameId,
    /// Where its settings start in `settings`.
    start: u32,
}

/// What one step of leaving out of order did.
enum Step {
    /// The checkpoint is not on the stack.
    Missing,
    /// The innermost checkpoint has a hook to run first.
    Hook(Hook),
    /// The innermost checkpoint was left; whether it was the one to leave.
    Left(bool),
}

/// A stack of checkpoints used through `&mut`: the owned variant.
#[derive(Default)]
pub struct FloorOwned {
    frames: Vec<Frame>,
    /// The settings of every frame, frame after frame.
    settings: Vec<Setting>,
    /// The slots of the keys set here, under their tags: a power of two
    /// long, at most half full. Where it grows, the settings are moved.
    table: Vec<Place>,
    /// How many keys have a slot.
    keys: usize,
    /// Hooks with the depth of their frame.
    hooks: Vec<(u32, Hook)>,
    last_id: FrameId,
    /// Values with drop glue taken off, to drop once nothing is borrowed.
    removed: Vec<Box<dyn Any>>,
}

impl FloorOwned {
    /// An empty stack.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: Vec::new(),
            settings: Vec::new(),
            table: Vec::new(),
            keys: 0,
            hooks: Vec::new(),
            last_id: 0,
            removed: Vec::new(),
        }
    }

    /// How many checkpoints are active.
    #[inline]
    #[must_use]
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Enters a checkpoint, left when the guard is dropped.
    #[inline(always)]
    pub fn enter(&mut self) -> FloorGuard<'_> {
        let id = self.open();
        FloorGuard { stack: self, id }
    }

    /// Enters a checkpoint and returns its id, for [`leave`](Self::leave).
    #[inline(always)]
    pub fn open(&mut self) -> FrameId {
        self.last_id += 1;
        let id = self.last_id;
        let start = self.settings.len() as u32;
        self.frames.push(Frame { id, start });
        id
    }

    /// Leaves the checkpoint `id` and every one inside it, if it is on the
    /// stack.
    #[inline(always)]
    pub fn leave(&mut self, id: FrameId) {
        if self.leave_top(id) {
            if !self.removed.is_empty() {
                self.removed.clear();
            }
        } else {
            self.leave_slow(id);
        }
    }

    #[cold]
    #[inline(never)]
    fn leave_slow(&mut self, id: FrameId) {
        loop {
            match self.step(id) {
                Step::Missing => return,
                Step::Hook(hook) => hook(),
                Step::Left(done) => {
                    self.removed.clear();
                    if done {
                        return;
                    }
                }
            }
        }
    }

    /// Sets `value` in the innermost checkpoint; gives it back if there is
    /// none.
    ///
    /// # Errors
    ///
    /// The value, if no checkpoint is active.
    #[inline(always)]
    pub fn set<T: Send + 'static>(&mut self, key: &'static FloorKey<T>, value: T) -> Result<(), T> {
        self.replace(key, value).map(drop)
    }

    /// The nearest value of `key`.
    #[inline(always)]
    #[must_use]
    pub fn get<T: Send + 'static>(&self, key: &'static FloorKey<T>) -> Option<&T> {
        let place = &self.table[self.find(key.peek_tag())?];
        let slot: &dyn Any = &*place.slot;
        let top = slot.downcast_ref::<Slot<T>>()?.entries.last()?;
        if place.flags & PRIVATE != 0 && top.depth as usize + 1 != self.frames.len() {
            return None;
        }
        Some(top.value.get())
    }

    /// Registers `hook` to run when the innermost checkpoint is left.
    ///
    /// # Errors
    ///
    /// The hook, if no checkpoint is active.
    pub fn on_exit(&mut self, hook: Hook) -> Result<(), Hook> {
        match self.frames.len().checked_sub(1) {
            Some(depth) => {
                self.hooks.push((depth as u32, hook));
                Ok(())
            }
            None => Err(hook),
        }
    }

    /// Where the slot under `tag` is in the table.
    #[inline(always)]
    fn find(&self, tag: u32) -> Option<usize> {
        // An empty table's mask starts out of bounds: one check for both.
        let mask = self.table.len().wrapping_sub(1);
        let mut at = tag as usize & mask;
        loop {
            let stored = self.table.get(at)?.tag;
            if stored == tag {
                return Some(at);
            }
            if stored == FREE {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    /// Adds a slot for the key `tag` and returns where: once per key and
    /// stack.
    #[cold]
    #[inline(never)]
    fn insert<T: Send + 'static>(&mut self, tag: u32, private: bool) -> usize {
        self.keys += 1;
        if self.table.len() < 2 * self.keys {
            self.grow();
        }
        let at = self.free_place(tag);
        let flags = if private { PRIVATE } else { 0 }
            | if std::mem::needs_drop::<T>() {
                DROPS
            } else {
                0
            };
        self.table[at] = Place {
            tag,
            flags,
            slot: Box::new(Slot::<T> {
                entries: Vec::new(),
            }),
        };
        at
    }

    /// Doubles the table, moving the slots and the settings naming them.
    fn grow(&mut self) {
        let len = (2 * self.keys).next_power_of_two().max(8);
        assert!(len < 1 << 30, "floor: too many keys on one stack");
        let old = std::mem::replace(&mut self.table, (0..len).map(|_| Place::free()).collect());
        let mut moved = vec![0; old.len()];
        for (from, place) in old.into_iter().enumerate() {
            if place.tag != FREE {
                let to = self.free_place(place.tag);
                moved[from] = to;
                self.table[to] = place;
            }
        }
        for setting in &mut self.settings {
            *setting = Setting::new(moved[setting.position()], setting.0 & 3);
        }
    }

    /// Where a new slot for `tag` goes.
    fn free_place(&self, tag: u32) -> usize {
        let mask = self.table.len() - 1;
        let mut at = tag as usize & mask;
        while self.table[at].tag != FREE {
            at = (at + 1) & mask;
        }
        at
    }

    /// Sets `value` in the innermost checkpoint and returns the value it
    /// replaced there if dropping it may run code (others are dropped
    /// here); gives `value` back if no checkpoint is active.
    #[inline(always)]
    fn replace<T: Send + 'static>(
        &mut self,
        key: &'static FloorKey<T>,
        value: T,
    ) -> Result<Option<Value<T>>, T> {
        let Some(depth) = self.frames.len().checked_sub(1) else {
            return Err(value);
        };
        let tag = key.tag();
        let at = match self.find(tag) {
            Some(at) => at,
            None => self.insert::<T>(tag, key.private),
        };
        let place = &mut self.table[at];
        let setting = Setting::new(at, place.flags);
        let slot: &mut dyn Any = &mut *place.slot;
        let slot: &mut Slot<T> = slot.downcast_mut().expect("a slot of the key's type");
        let depth = depth as u32;
        match slot.entries.last_mut() {
            Some(top) if top.depth == depth => {
                let replaced = std::mem::replace(&mut top.value, Value::Owned(value));
                Ok(Some(replaced).filter(|_| std::mem::needs_drop::<T>()))
            }
            _ => {
                slot.entries.push(Entry {
                    depth,
                    value: Value::Owned(value),
                });
                self.settings.push(setting);
                Ok(None)
            }
        }
    }

    /// Whether the innermost checkpoint has hooks.
    #[inline(always)]
    fn top_has_hooks(&self) -> bool {
        let depth = self.frames.len() as u32;
        self.hooks.last().is_some_and(|&(at, _)| at + 1 == depth)
    }

    /// Leaves the checkpoint `id` if it is the innermost one and has no
    /// hooks; values with drop glue go to `removed`. Whether it did.
    #[inline(always)]
    fn leave_top(&mut self, id: FrameId) -> bool {
        let on_top = self.frames.last().is_some_and(|top| top.id == id);
        if on_top && !self.top_has_hooks() {
            self.pop_top();
            true
        } else {
            false
        }
    }

    #[inline(always)]
    fn pop_top(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let start = frame.start as usize;
        for &setting in self.settings[start..].iter().rev() {
            let slot = &mut self.table[setting.position()].slot;
            if setting.drops() {
                self.removed.extend(slot.take_top());
            } else {
                slot.drop_top();
            }
        }
        self.settings.truncate(start);
    }

    /// One step of leaving `id` and what is inside it.
    fn step(&mut self, id: FrameId) -> Step {
        let Some(at) = self.frames.iter().rposition(|frame| frame.id == id) else {
            return Step::Missing;
        };
        if self.top_has_hooks() {
            let (_, hook) = self.hooks.pop().expect("a hook");
            return Step::Hook(hook);
        }
        self.pop_top();
        Step::Left(self.frames.len() == at)
    }

    /// The values taken off, to drop, if there are any.
    #[inline(always)]
    fn take_removed(&mut self) -> Option<Vec<Box<dyn Any>>> {
        if self.removed.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.removed))
        }
    }
}

impl fmt::Debug for FloorOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloorOwned")
            .field("depth", &self.frames.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A checkpoint entered on a [`FloorOwned`]; dropping it leaves it.
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
#[derive(Debug)]
pub struct FloorGuard<'a> {
    stack: &'a mut FloorOwned,
    id: FrameId,
}

impl Deref for FloorGuard<'_> {
    type Target = FloorOwned;

    fn deref(&self) -> &FloorOwned {
        self.stack
    }
}

impl DerefMut for FloorGuard<'_> {
    fn deref_mut(&mut self) -> &mut FloorOwned {
        self.stack
    }
}

impl Drop for FloorGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.stack.leave(self.id);
    }
}

impl Context for FloorOwned {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let mut guard = self.enter();
        f(&mut guard)
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        FloorOwned::set(self, &FLOOR_KEYS[key], value).expect("inside a checkpoint");
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        FloorOwned::get(self, &FLOOR_KEYS[key]).copied()
    }
}

// ----------------------------------------------------------------- thread

/// The thread variant's state.
struct Local {
    stack: RefCell<FloorOwned>,
    /// Checkpoints whose guards were dropped while the stack was borrowed;
    /// `deferring` says whether there are any without a borrow.
    deferred: RefCell<Vec<FrameId>>,
    deferring: Cell<bool>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            stack: RefCell::new(FloorOwned::new()),
            deferred: RefCell::new(Vec::new()),
            deferring: Cell::new(false),
        }
    };
}

impl Local {
    /// Leaves `id` and what is inside it, or defers that while the stack is
    /// borrowed; values are dropped after the borrow is released.
    #[inline(always)]
    fn leave(&self, id: FrameId) {
        let Ok(mut stack) = self.stack.try_borrow_mut() else {
            return self.defer(id);
        };
        if !stack.leave_top(id) {
            drop(stack);
            self.leave_slow(id);
        } else if !stack.removed.is_empty() {
            drop_removed(stack);
        }
    }

    /// Leaves `id` step by step: hooks run and values are dropped with
    /// nothing borrowed.
    #[cold]
    #[inline(never)]
    fn leave_slow(&self, id: FrameId) {
        loop {
            let Ok(mut stack) = self.stack.try_borrow_mut() else {
                return self.defer(id);
            };
            match stack.step(id) {
                Step::Missing => return,
                Step::Hook(hook) => {
                    drop(stack);
                    hook();
                }
                Step::Left(done) => {
                    let removed = stack.take_removed();
                    drop(stack);
                    drop(removed);
                    if done {
                        return;
                    }
                }
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn defer(&self, id: FrameId) {
        if let Ok(mut deferred) = self.deferred.try_borrow_mut() {
            deferred.push(id);
            self.deferring.set(true);
        }
    }

    /// Leaves the checkpoints whose leaving was deferred, at a read's end.
    #[cold]
    #[inline(never)]
    fn leave_deferred(&self) {
        if self.stack.try_borrow_mut().is_err() {
            // Still borrowed by an outer read: its end does it.
            return;
        }
        loop {
            let id = match self.deferred.try_borrow_mut() {
                Ok(mut deferred) => deferred.pop(),
                Err(_) => return,
            };
            let Some(id) = id else { break };
            self.leave(id);
        }
        self.deferring.set(false);
    }
}

/// Drops the values a leave took off, once the stack is released.
#[cold]
#[inline(never)]
fn drop_removed(mut stack: std::cell::RefMut<'_, FloorOwned>) {
    let removed = std::mem::take(&mut stack.removed);
    drop(stack);
    drop(removed);
}

/// Why the thread storage cannot be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorError {
    /// No checkpoint is active.
    NoCheckpoint,
    /// The stack is borrowed (a read's `Clone`, a destructor's own write).
    Busy,
    /// The thread is exiting.
    Destroyed,
}

/// The thread storage's operations.
pub mod thread {
    use super::{FloorError, FloorKey, FrameId, Hook, LOCAL};
    use std::marker::PhantomData;

    /// A checkpoint entered on the thread's stack; dropping it leaves it and
    /// any checkpoint still active inside it.
    #[must_use = "the checkpoint is left as soon as the guard is dropped"]
    #[derive(Debug)]
    pub struct Guard {
        id: FrameId,
        _not_send: PhantomData<*const ()>,
    }

    impl Drop for Guard {
        #[inline(always)]
        fn drop(&mut self) {
            let _ = LOCAL.try_with(|local| local.leave(self.id));
        }
    }

    /// Enters a checkpoint on the thread's stack.
    ///
    /// # Panics
    ///
    /// If the stack is borrowed, or the thread is exiting.
    #[inline(always)]
    pub fn enter() -> Guard {
        let id = LOCAL.with(|local| local.stack.try_borrow_mut().map(|mut stack| stack.open()));
        match id {
            Ok(id) => Guard {
                id,
                _not_send: PhantomData,
            },
            Err(_) => busy(),
        }
    }

    #[cold]
    #[inline(never)]
    fn busy() -> ! {
        panic!("floor: the thread's stack is borrowed");
    }

    /// Sets `value` in the innermost checkpoint; the value it replaces is
    /// dropped after the stack is released.
    ///
    /// # Errors
    ///
    /// Why not, with the value.
    #[inline(always)]
    pub fn set<T: Send + 'static>(
        key: &'static FloorKey<T>,
        value: T,
    ) -> Result<(), (FloorError, T)> {
        // Taken once the stack is borrowed, handed back on any error.
        let mut value = Some(value);
        let put = LOCAL.try_with(|local| {
            let Ok(mut stack) = local.stack.try_borrow_mut() else {
                return Err(FloorError::Busy);
            };
            match stack.replace(key, value.take().expect("taken once")) {
                Ok(replaced) => {
                    drop(stack);
                    drop(replaced);
                    Ok(())
                }
                Err(back) => {
                    value = Some(back);
                    Err(FloorError::NoCheckpoint)
                }
            }
        });
        match put {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err((err, value.take().expect("handed back"))),
            Err(_) => Err((FloorError::Destroyed, value.take().expect("not taken"))),
        }
    }

    /// A clone of the nearest value of `key`; `None` where there is none or
    /// the stack is being changed. Checkpoints whose guards were dropped
    /// meanwhile (by the `Clone`) are left at its end.
    #[inline(always)]
    pub fn get<T: Clone + Send + 'static>(key: &'static FloorKey<T>) -> Option<T> {
        LOCAL
            .try_with(|local| {
                struct AfterRead<'a>(&'a super::Local);
                impl Drop for AfterRead<'_> {
                    #[inline(always)]
                    fn drop(&mut self) {
                        if self.0.deferring.get() {
                            self.0.leave_deferred();
                        }
                    }
                }
                let _after = AfterRead(local);
                let read = local.stack.try_borrow().ok()?.get(key).cloned();
                read
            })
            .ok()
            .flatten()
    }

    /// Registers `hook` to run when the innermost checkpoint is left.
    ///
    /// # Errors
    ///
    /// Why not.
    pub fn on_exit(hook: impl FnOnce() + 'static) -> Result<(), FloorError> {
        let hook: Hook = Box::new(hook);
        let registered = LOCAL.try_with(|local| {
            let mut stack = local.stack.try_borrow_mut().map_err(|_| FloorError::Busy)?;
            stack.on_exit(hook).map_err(|_| FloorError::NoCheckpoint)
        });
        registered.unwrap_or(Err(FloorError::Destroyed))
    }

    /// How many checkpoints are active on the thread's stack.
    #[must_use]
    pub fn depth() -> usize {
        LOCAL
            .try_with(|local| local.stack.try_borrow().map_or(0, |stack| stack.depth()))
            .unwrap_or(0)
    }
}

/// The floor's thread storage, as a [`Context`].
#[derive(Debug, Default)]
pub struct FloorThread;

impl Context for FloorThread {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let _guard = thread::enter();
        f(self)
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        thread::set(&FLOOR_KEYS[key], value).expect("inside a checkpoint");
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        thread::get(&FLOOR_KEYS[key])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{at_depth, request_like, NaiveStack, REQUEST_LIKE_SUM};

    #[test]
    fn request_like_sums_as_everyone_else() {
        assert_eq!(request_like(&mut FloorOwned::new()), REQUEST_LIKE_SUM);
        assert_eq!(request_like(&mut FloorThread), REQUEST_LIKE_SUM);
        assert_eq!(thread::depth(), 0);
        let (owned, on_thread) = (
            at_depth(&mut FloorOwned::new(), 100, 50, |cx| {
                (cx.get(0), cx.get(50))
            }),
            at_depth(&mut FloorThread, 100, 50, |cx| (cx.get(0), cx.get(50))),
        );
        assert_eq!(owned, (Some(7), Some(50)));
        assert_eq!(on_thread, owned);
    }

    #[test]
    fn an_unused_key_reads_as_absent() {
        static NEVER: FloorKey<u64> = FloorKey::new();
        let mut stack = FloorOwned::new();
        assert_eq!(stack.get(&NEVER), None);
        let guard = stack.enter();
        assert_eq!(guard.get(&NEVER), None);
        assert_eq!(thread::get(&NEVER), None);
    }

    #[test]
    fn private_keys_are_seen_in_their_checkpoint_only() {
        static SECRET: FloorKey<u32> = FloorKey::private();
        let mut stack = FloorOwned::new();
        {
            let mut outer = stack.enter();
            outer.set(&SECRET, 1).unwrap();
            assert_eq!(outer.get(&SECRET), Some(&1));
            {
                let mut inner = outer.enter();
                assert_eq!(inner.get(&SECRET), None, "not shown through");
                inner.set(&SECRET, 2).unwrap();
                assert_eq!(inner.get(&SECRET), Some(&2));
                let inmost = inner.enter();
                assert_eq!(inmost.get(&SECRET), None);
            }
            assert_eq!(outer.get(&SECRET), Some(&1));
        }

        let _outer = thread::enter();
        thread::set(&SECRET, 1).unwrap();
        {
            let _inner = thread::enter();
            assert_eq!(thread::get(&SECRET), None);
        }
        assert_eq!(thread::get(&SECRET), Some(1));
    }

    #[test]
    fn a_set_in_the_same_checkpoint_replaces() {
        static K: FloorKey<String> = FloorKey::new();
        let mut stack = FloorOwned::new();
        let mut outer = stack.enter();
        outer.set(&K, "a".into()).unwrap();
        {
            let mut inner = outer.enter();
            inner.set(&K, "b".into()).unwrap();
            inner.set(&K, "c".into()).unwrap();
            assert_eq!(inner.settings.len(), 2, "one setting a checkpoint");
            assert_eq!(inner.get(&K).map(String::as_str), Some("c"));
        }
        assert_eq!(outer.get(&K).map(String::as_str), Some("a"));
        drop(outer);
        assert_eq!(stack.set(&K, "none".into()), Err("none".into()));
    }

    #[test]
    fn guards_dropped_out_of_order_leave_what_is_inside() {
        static K: FloorKey<u64> = FloorKey::new();
        let outer = thread::enter();
        thread::set(&K, 1).unwrap();
        let inner = thread::enter();
        thread::set(&K, 2).unwrap();
        assert_eq!(thread::depth(), 2);
        drop(outer);
        assert_eq!(thread::depth(), 0);
        assert_eq!(thread::get(&K), None);
        drop(inner);
        assert_eq!(thread::depth(), 0);

        let mut stack = FloorOwned::new();
        let outer = stack.open();
        stack.set(&K, 1).unwrap();
        let inner = stack.open();
        stack.set(&K, 2).unwrap();
        stack.leave(outer);
        assert_eq!((stack.depth(), stack.get(&K)), (0, None));
        stack.leave(inner);
        assert_eq!(stack.depth(), 0);
    }

    thread_local! {
        /// What each `Reads` saw when dropped: the key 63 and the depth.
        static SEEN: RefCell<Vec<(Option<u64>, usize)>> = const { RefCell::new(Vec::new()) };
    }

    /// A value whose destructor reads and writes the thread storage.
    #[derive(Debug)]
    struct Reads;

    impl Drop for Reads {
        fn drop(&mut self) {
            static OTHER: FloorKey<u64> = FloorKey::new();
            let seen = thread::get(&FLOOR_KEYS[63]);
            let _nested = thread::enter();
            thread::set(&OTHER, 1).unwrap();
            SEEN.with(|log| log.borrow_mut().push((seen, thread::depth())));
        }
    }

    #[test]
    fn destructors_use_the_storage_once_their_checkpoint_is_left() {
        static VALUE: FloorKey<Reads> = FloorKey::new();
        let _outer = thread::enter();
        thread::set(&FLOOR_KEYS[63], 1).unwrap();
        {
            let _inner = thread::enter();
            thread::set(&FLOOR_KEYS[63], 2).unwrap();
            thread::set(&VALUE, Reads).unwrap();
            // Replaced: dropped after the set, in the inner checkpoint.
            thread::set(&VALUE, Reads).unwrap();
        }
        // Left: dropped with the outer checkpoint's value visible.
        let seen = SEEN.with(|log| log.take());
        assert_eq!(seen, [(Some(2), 3), (Some(1), 2)]);
        assert_eq!(thread::depth(), 1);
    }

    thread_local! {
        static STASHED: RefCell<Option<thread::Guard>> = const { RefCell::new(None) };
    }

    /// A value whose `Clone`, run by a read, drops a stashed guard.
    #[derive(Debug)]
    struct DropsGuard;

    impl Clone for DropsGuard {
        fn clone(&self) -> Self {
            drop(STASHED.with(|stashed| stashed.borrow_mut().take()));
            DropsGuard
        }
    }

    #[test]
    fn a_guard_dropped_inside_a_read_is_left_at_its_end() {
        static K: FloorKey<DropsGuard> = FloorKey::new();
        let _outer = thread::enter();
        thread::set(&K, DropsGuard).unwrap();
        let inner = thread::enter();
        let _inmost = thread::enter();
        STASHED.with(|stashed| *stashed.borrow_mut() = Some(inner));
        assert!(thread::get(&K).is_some());
        assert_eq!(
            thread::depth(),
            1,
            "the inner checkpoint and the one inside it"
        );
        // Dropping `_inmost` later finds its checkpoint gone.
    }

    #[test]
    fn exit_hooks_run_before_the_values_go() {
        static K: FloorKey<u64> = FloorKey::new();
        let ran = std::rc::Rc::new(Cell::new(None));
        {
            let _g = thread::enter();
            thread::set(&K, 5).unwrap();
            let ran = std::rc::Rc::clone(&ran);
            thread::on_exit(move || ran.set(Some(thread::get(&K)))).unwrap();
        }
        assert_eq!(ran.get(), Some(Some(5)));
        assert_eq!(thread::depth(), 0);
    }

    #[test]
    fn the_table_grows_under_the_settings_of_outer_checkpoints() {
        let keys: Vec<&'static FloorKey<usize>> = (0..300)
            .map(|_| &*Box::leak(Box::new(FloorKey::new())))
            .collect();
        let mut stack = FloorOwned::new();
        let ids: Vec<FrameId> = keys
            .iter()
            .enumerate()
            .map(|(n, key)| {
                let id = stack.open();
                stack.set(key, n).unwrap();
                stack.set(keys[0], n).unwrap();
                id
            })
            .collect();
        for (n, key) in keys.iter().enumerate().skip(1) {
            assert_eq!(stack.get(key), Some(&n));
        }
        for (n, id) in ids.iter().enumerate().rev() {
            assert_eq!(stack.get(keys[0]), Some(&n));
            stack.leave(*id);
            assert_eq!(stack.get(keys[n]), None);
            assert_eq!(stack.get(keys[0]), n.checked_sub(1).as_ref());
        }
    }

    /// A tiny xorshift: the same program for every implementation.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random sets, reads and nested scopes; every read recorded.
    fn program<C: Context>(cx: &mut C, rng: &mut Rng, depth: u32, reads: &mut Vec<Option<u64>>) {
        loop {
            match rng.below(8) {
                0..=2 => cx.set(rng.below(6) as usize, rng.below(100)),
                3..=5 => reads.push(cx.get(rng.below(6) as usize)),
                6 if depth < 8 => cx.scope(|cx| program(cx, rng, depth + 1, reads)),
                _ => return,
            }
        }
    }

    /// Not proptest (not a dependency of the benches): seeded programs run
    /// on the floor and on the naive stack read the same.
    #[test]
    fn random_programs_read_as_on_the_naive_stack() {
        for seed in 1..500 {
            let run = |cx: &mut dyn FnMut(&mut Rng, &mut Vec<Option<u64>>)| {
                let mut reads = Vec::new();
                cx(&mut Rng(seed * 0x9E37_79B9), &mut reads);
                reads
            };
            let naive =
                run(&mut |rng, reads| NaiveStack::default().scope(|cx| program(cx, rng, 0, reads)));
            let owned =
                run(&mut |rng, reads| FloorOwned::new().scope(|cx| program(cx, rng, 0, reads)));
            let on_thread =
                run(&mut |rng, reads| FloorThread.scope(|cx| program(cx, rng, 0, reads)));
            assert_eq!(owned, naive, "seed {seed}");
            assert_eq!(on_thread, naive, "seed {seed}");
        }
        assert_eq!(thread::depth(), 0);
    }
}
