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
//! Three variants: [`FloorOwned`], a stack used through `&mut`;
//! [`FloorThread`], a `thread_local!` `RefCell` holding one inline; and
//! [`FloorTask`], a `thread_local!` `RefCell<Option<Box<_>>>` holding the
//! current stack, swapped in and out by pointer when a task scope
//! ([`task::scope_run`]) starts and ends, as stackholm's thread and task
//! storages hold theirs, its frame ids [unique across stacks](Unique) as
//! stackholm's are (a guard dropped while another stack is current leaves
//! nothing there). Ids are a knob of the stack ([`Ids`]): [`PerStack`]
//! for the other two.
//!
//! Instructions per workload (callgrind, `examples/count.rs`, runs of n
//! and 2n, the difference over n), each side through a `Context` adapter
//! marked `#[inline]` as every other implementation's is, against
//! stackholm at the time; the task variants run inside a scope
//! (`floor-task` in `task::scope_run`, stackholm's in a `Scope`'s run):
//!
//! | workload        | stackholm owned | floor owned | stackholm thread | floor thread | stackholm task | floor task |
//! |-----------------|----------------:|------------:|-----------------:|-------------:|---------------:|-----------:|
//! | request_like    |            2056 |        1884 |             2657 |         2235 |           2657 |       2336 |
//! | enter_set_leave |             187 |         179 |              257 |          207 |            257 |        217 |
//! | enter_leave     |              62 |          61 |              120 |           76 |            120 |         83 |
//! | read_nearest    |              62 |          55 |               77 |           65 |             77 |         71 |
//!
//! Of the floor task's cost above the floor thread's, measured apart (the
//! thread variant given unique ids, the task variant per-stack ones): the
//! current stack behind a pointer, which every operation loads and tests
//! for none, costs 95, 6, 5 and 6 instructions on the four workloads in
//! the order of the table; unique ids, a test per id for the end of its
//! block, 8, 2, 2 and 0 (about 2 per checkpoint entered).
//!
//! What it leaves out, next to stackholm: checkpoints moved on and off the
//! stack, snapshots, `set_root`, `remove`, names; and of task scopes
//! everything but the swap: a scope's root checkpoint, stacks set aside
//! searched for a guard's checkpoint (a guard entered outside a scope and
//! dropped inside it leaves nothing, and its checkpoint stays), checkpoints
//! still active when a scope's run returns (they go with its stack), spare
//! stacks (each run allocates one), and futures.

#![forbid(unsafe_code)]

use std::any::Any;
use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::LocalKey;

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

/// How a stack hands out the ids of the checkpoints entered on it.
pub trait Ids: Default {
    /// Before the first id.
    const START: Self;
    /// A fresh id.
    fn next(&mut self) -> FrameId;
}

/// Ids unique on their stack only: a counter per stack, which a guard
/// dropped while another stack is current may take for one of that
/// stack's checkpoints.
#[derive(Debug, Default)]
pub struct PerStack(FrameId);

impl Ids for PerStack {
    const START: Self = Self(0);

    #[inline(always)]
    fn next(&mut self) -> FrameId {
        self.0 += 1;
        self.0
    }
}

/// Ids unique across every stack of the process, as stackholm's: handed
/// out from blocks of [`BLOCK`](Unique::BLOCK) ids, taken from a chunk the
/// thread reserved process-wide, so that uniqueness costs one test per id,
/// a thread-local access per block and an atomic operation per chunk. A
/// stack's next id is a block's start only when it needs a new block.
#[derive(Debug, Default)]
pub struct Unique(FrameId);

impl Unique {
    /// Ids in a block, aligned on its size.
    pub const BLOCK: u64 = 1 << 8;
    /// Ids in a chunk, a thread's reservation.
    pub const CHUNK: u64 = 1 << 24;

    /// The start of a fresh block.
    #[cold]
    #[inline(never)]
    fn block() -> FrameId {
        thread_local! {
            static CHUNK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        let block = CHUNK.try_with(|chunk| {
            let (mut next, mut end) = chunk.get();
            if next == end {
                (next, end) = Self::chunk();
            }
            chunk.set((next + Self::BLOCK, end));
            next
        });
        // An exiting thread's chunk is gone: a chunk for this one block.
        block.unwrap_or_else(|_| Self::chunk().0)
    }

    /// A fresh chunk; chunk 0 is never handed out, so no id is 0.
    fn chunk() -> (u64, u64) {
        static NEXT_CHUNK: AtomicU64 = AtomicU64::new(1);
        NEXT_CHUNK
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |chunk| {
                chunk.checked_add(1)
            })
            .ok()
            .and_then(|chunk| chunk.checked_mul(Self::CHUNK))
            .and_then(|start| Some((start, start.checked_add(Self::CHUNK)?)))
            .expect("floor: checkpoint ids are exhausted")
    }
}

impl Ids for Unique {
    const START: Self = Self(0);

    #[inline(always)]
    fn next(&mut self) -> FrameId {
        if self.0 % Self::BLOCK == 0 {
            self.0 = Self::block();
        }
        let id = self.0;
        self.0 += 1;
        id
    }
}

/// A stack of checkpoints, its ids handed out by `I`.
#[derive(Default)]
pub struct FloorStack<I = PerStack> {
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
    ids: I,
    /// Values with drop glue taken off, to drop once nothing is borrowed.
    removed: Vec<Box<dyn Any>>,
}

/// A stack of checkpoints used through `&mut`: the owned variant.
pub type FloorOwned = FloorStack<PerStack>;

impl<I: Ids> FloorStack<I> {
    /// An empty stack.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            frames: Vec::new(),
            settings: Vec::new(),
            table: Vec::new(),
            keys: 0,
            hooks: Vec::new(),
            ids: I::START,
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
    pub fn enter(&mut self) -> FloorGuard<'_, I> {
        let id = self.open();
        FloorGuard { stack: self, id }
    }

    /// Enters a checkpoint and returns its id, for [`leave`](Self::leave).
    #[inline(always)]
    pub fn open(&mut self) -> FrameId {
        let id = self.ids.next();
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

impl<I> fmt::Debug for FloorStack<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloorStack")
            .field("depth", &self.frames.len())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// A checkpoint entered on a [`FloorStack`]; dropping it leaves it.
#[must_use = "the checkpoint is left as soon as the guard is dropped"]
#[derive(Debug)]
pub struct FloorGuard<'a, I: Ids = PerStack> {
    stack: &'a mut FloorStack<I>,
    id: FrameId,
}

impl<I: Ids> Deref for FloorGuard<'_, I> {
    type Target = FloorStack<I>;

    fn deref(&self) -> &FloorStack<I> {
        self.stack
    }
}

impl<I: Ids> DerefMut for FloorGuard<'_, I> {
    fn deref_mut(&mut self) -> &mut FloorStack<I> {
        self.stack
    }
}

impl<I: Ids> Drop for FloorGuard<'_, I> {
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

// ------------------------------------------------------- thread and task

/// Where a thread-local storage keeps the stack its operations reach.
trait Current {
    type Ids: Ids;
    /// The stack, if there is one.
    fn stack(&self) -> Option<&FloorStack<Self::Ids>>;
    /// The stack, if there is one, to change.
    fn stack_mut(&mut self) -> Option<&mut FloorStack<Self::Ids>>;
    /// The stack, made where there is none: to enter a checkpoint.
    fn stack_or_new(&mut self) -> &mut FloorStack<Self::Ids>;
}

/// The thread variant's: the stack itself, held inline.
impl<I: Ids> Current for FloorStack<I> {
    type Ids = I;

    #[inline(always)]
    fn stack(&self) -> Option<&Self> {
        Some(self)
    }

    #[inline(always)]
    fn stack_mut(&mut self) -> Option<&mut Self> {
        Some(self)
    }

    #[inline(always)]
    fn stack_or_new(&mut self) -> &mut Self {
        self
    }
}

/// The task variant's: the current stack, swapped in and out by pointer
/// as scopes run; none until a checkpoint is entered outside any scope.
impl<I: Ids> Current for Option<Box<FloorStack<I>>> {
    type Ids = I;

    #[inline(always)]
    fn stack(&self) -> Option<&FloorStack<I>> {
        self.as_deref()
    }

    #[inline(always)]
    fn stack_mut(&mut self) -> Option<&mut FloorStack<I>> {
        self.as_deref_mut()
    }

    #[inline(always)]
    fn stack_or_new(&mut self) -> &mut FloorStack<I> {
        self.get_or_insert_with(new_stack)
    }
}

/// The thread's own stack of the task variant, made on its first enter.
#[cold]
#[inline(never)]
fn new_stack<I: Ids>() -> Box<FloorStack<I>> {
    Box::default()
}

/// A thread-local storage's state.
struct Local<H> {
    stack: RefCell<H>,
    /// Checkpoints whose guards were dropped while the stack was borrowed;
    /// `deferring` says whether there are any without a borrow.
    deferred: RefCell<Vec<FrameId>>,
    deferring: Cell<bool>,
}

impl<H> Local<H> {
    const fn new(stack: H) -> Self {
        Self {
            stack: RefCell::new(stack),
            deferred: RefCell::new(Vec::new()),
            deferring: Cell::new(false),
        }
    }
}

/// The thread variant's storage and the task variant's.
type Storage<H> = &'static LocalKey<Local<H>>;

/// The task variant's current stack.
type TaskStack = Option<Box<FloorStack<Unique>>>;

thread_local! {
    static THREAD: Local<FloorOwned> = const { Local::new(FloorOwned::new()) };
    static TASK: Local<TaskStack> = const { Local::new(None) };
}

impl<H: Current> Local<H> {
    /// Leaves `id` and what is inside it, or defers that while the stack is
    /// borrowed; values are dropped after the borrow is released. Nothing
    /// if `id` is not on the current stack.
    #[inline(always)]
    fn leave(&self, id: FrameId) {
        let Ok(mut current) = self.stack.try_borrow_mut() else {
            return self.defer(id);
        };
        let Some(stack) = current.stack_mut() else {
            return;
        };
        if !stack.leave_top(id) {
            drop(current);
            self.leave_slow(id);
        } else if !stack.removed.is_empty() {
            drop_removed(current);
        }
    }

    /// Leaves `id` step by step: hooks run and values are dropped with
    /// nothing borrowed.
    #[cold]
    #[inline(never)]
    fn leave_slow(&self, id: FrameId) {
        loop {
            let Ok(mut current) = self.stack.try_borrow_mut() else {
                return self.defer(id);
            };
            let Some(stack) = current.stack_mut() else {
                return;
            };
            match stack.step(id) {
                Step::Missing => return,
                Step::Hook(hook) => {
                    drop(current);
                    hook();
                }
                Step::Left(done) => {
                    let removed = stack.take_removed();
                    drop(current);
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
fn drop_removed<H: Current>(mut current: RefMut<'_, H>) {
    let removed = current
        .stack_mut()
        .map(|stack| std::mem::take(&mut stack.removed));
    drop(current);
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

#[cold]
#[inline(never)]
fn busy() -> ! {
    panic!("floor: the thread's stack is borrowed");
}

/// Enters a checkpoint on the current stack of `storage`.
///
/// `try_with`, every failure on the cold path: `with`'s own panic path put
/// the task variant's `enter` over LLVM's inlining threshold, and its
/// thread-local then behind an indirect call (about 30 instructions).
#[inline(always)]
fn enter<H: Current>(storage: Storage<H>) -> FrameId {
    let id = storage.try_with(|local| {
        let mut current = local.stack.try_borrow_mut().ok()?;
        current.stack_mut().map(FloorStack::open)
    });
    match id {
        Ok(Some(id)) => id,
        _ => enter_slow(storage),
    }
}

/// Enters a checkpoint where there is no current stack yet, or panics.
#[cold]
#[inline(never)]
fn enter_slow<H: Current>(storage: Storage<H>) -> FrameId {
    let id = storage.with(|local| {
        let mut current = local.stack.try_borrow_mut().ok()?;
        Some(current.stack_or_new().open())
    });
    id.unwrap_or_else(|| busy())
}

/// What a guard's drop does.
#[inline(always)]
fn leave<H: Current>(storage: Storage<H>, id: FrameId) {
    let _ = storage.try_with(|local| local.leave(id));
}

#[inline(always)]
fn set<H: Current, T: Send + 'static>(
    storage: Storage<H>,
    key: &'static FloorKey<T>,
    value: T,
) -> Result<(), (FloorError, T)> {
    // Taken once the stack is borrowed, handed back on any error.
    let mut value = Some(value);
    let put = storage.try_with(|local| {
        let Ok(mut current) = local.stack.try_borrow_mut() else {
            return Err(FloorError::Busy);
        };
        let Some(stack) = current.stack_mut() else {
            return Err(FloorError::NoCheckpoint);
        };
        match stack.replace(key, value.take().expect("taken once")) {
            Ok(replaced) => {
                drop(current);
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

/// At a read's end, leaves the checkpoints whose guards its `Clone` dropped.
struct AfterRead<'a, H: Current>(&'a Local<H>);

impl<H: Current> Drop for AfterRead<'_, H> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.deferring.get() {
            self.0.leave_deferred();
        }
    }
}

#[inline(always)]
fn get<H: Current, T: Clone + Send + 'static>(
    storage: Storage<H>,
    key: &'static FloorKey<T>,
) -> Option<T> {
    storage
        .try_with(|local| {
            let _after = AfterRead(local);
            let read = local.stack.try_borrow().ok()?.stack()?.get(key).cloned();
            read
        })
        .ok()
        .flatten()
}

fn on_exit<H: Current>(storage: Storage<H>, hook: Hook) -> Result<(), FloorError> {
    let registered = storage.try_with(|local| {
        let mut current = local.stack.try_borrow_mut().map_err(|_| FloorError::Busy)?;
        let stack = current.stack_mut().ok_or(FloorError::NoCheckpoint)?;
        stack.on_exit(hook).map_err(|_| FloorError::NoCheckpoint)
    });
    registered.unwrap_or(Err(FloorError::Destroyed))
}

fn depth<H: Current>(storage: Storage<H>) -> usize {
    storage
        .try_with(|local| {
            let current = local.stack.try_borrow();
            current.map_or(0, |current| {
                current.stack().map_or(0, |stack| stack.depth())
            })
        })
        .unwrap_or(0)
}

/// The operations of a thread-local storage, on `$storage`'s current stack.
macro_rules! operations {
    ($storage:ident) => {
        use super::{$storage, FloorError, FloorKey, FrameId};
        use std::marker::PhantomData;

        /// A checkpoint entered on the current stack; dropping it leaves it
        /// and any checkpoint still active inside it, if it is on the stack
        /// current then.
        #[must_use = "the checkpoint is left as soon as the guard is dropped"]
        #[derive(Debug)]
        pub struct Guard {
            id: FrameId,
            _not_send: PhantomData<*const ()>,
        }

        impl Drop for Guard {
            #[inline(always)]
            fn drop(&mut self) {
                super::leave(&$storage, self.id);
            }
        }

        /// Enters a checkpoint on the current stack.
        ///
        /// # Panics
        ///
        /// If the stack is borrowed, or the thread is exiting.
        #[inline(always)]
        pub fn enter() -> Guard {
            Guard {
                id: super::enter(&$storage),
                _not_send: PhantomData,
            }
        }

        /// Sets `value` in the innermost checkpoint; the value it replaces
        /// is dropped after the stack is released.
        ///
        /// # Errors
        ///
        /// Why not, with the value.
        #[inline(always)]
        pub fn set<T: Send + 'static>(
            key: &'static FloorKey<T>,
            value: T,
        ) -> Result<(), (FloorError, T)> {
            super::set(&$storage, key, value)
        }

        /// A clone of the nearest value of `key`; `None` where there is
        /// none or the stack is being changed. Checkpoints whose guards
        /// were dropped meanwhile (by the `Clone`) are left at its end.
        #[inline(always)]
        pub fn get<T: Clone + Send + 'static>(key: &'static FloorKey<T>) -> Option<T> {
            super::get(&$storage, key)
        }

        /// Registers `hook` to run when the innermost checkpoint is left.
        ///
        /// # Errors
        ///
        /// Why not.
        pub fn on_exit(hook: impl FnOnce() + 'static) -> Result<(), FloorError> {
            super::on_exit(&$storage, Box::new(hook))
        }

        /// How many checkpoints are active on the current stack.
        #[must_use]
        pub fn depth() -> usize {
            super::depth(&$storage)
        }
    };
}

/// The thread storage's operations: one stack a thread, held inline.
pub mod thread {
    operations!(THREAD);
}

/// The task storage's operations: the current stack is the innermost
/// running [`scope_run`](task::scope_run)'s, or the thread's own outside
/// any, and frame ids are [unique](Unique) across stacks.
pub mod task {
    operations!(TASK);

    use super::{busy, FloorStack};

    /// Runs `f` with a fresh stack as the current one, swapped in by
    /// pointer; the stack it replaces is set aside until `f` returns (or
    /// panics), then swapped back, and the scope's stack dropped with
    /// nothing borrowed.
    ///
    /// # Panics
    ///
    /// If the current stack is borrowed, or the thread is exiting.
    #[inline]
    pub fn scope_run<R>(f: impl FnOnce() -> R) -> R {
        /// The stack set aside, swapped back when dropped.
        struct TakeBack(super::TaskStack);

        impl Drop for TakeBack {
            fn drop(&mut self) {
                let _ = TASK.try_with(|local| {
                    if let Ok(mut current) = local.stack.try_borrow_mut() {
                        std::mem::swap(&mut *current, &mut self.0);
                    }
                });
                // The scope's stack, now in `self.0`, drops after this.
            }
        }

        let mut stack = Some(Box::<FloorStack<_>>::default());
        TASK.with(|local| match local.stack.try_borrow_mut() {
            Ok(mut current) => std::mem::swap(&mut *current, &mut stack),
            Err(_) => busy(),
        });
        let _back = TakeBack(stack);
        f()
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

/// The floor's task storage, as a [`Context`]: to be used inside
/// [`task::scope_run`].
#[derive(Debug, Default)]
pub struct FloorTask;

impl Context for FloorTask {
    #[inline]
    fn scope<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let _guard = task::enter();
        f(self)
    }

    #[inline]
    fn set(&mut self, key: usize, value: u64) {
        task::set(&FLOOR_KEYS[key], value).expect("inside a checkpoint");
    }

    #[inline]
    fn get(&mut self, key: usize) -> Option<u64> {
        task::get(&FLOOR_KEYS[key])
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
        assert_eq!(
            task::scope_run(|| request_like(&mut FloorTask)),
            REQUEST_LIKE_SUM
        );
        assert_eq!(task::depth(), 0);
        let (owned, on_thread, in_task) = (
            at_depth(&mut FloorOwned::new(), 100, 50, |cx| {
                (cx.get(0), cx.get(50))
            }),
            at_depth(&mut FloorThread, 100, 50, |cx| (cx.get(0), cx.get(50))),
            task::scope_run(|| at_depth(&mut FloorTask, 100, 50, |cx| (cx.get(0), cx.get(50)))),
        );
        assert_eq!(owned, (Some(7), Some(50)));
        assert_eq!(on_thread, owned);
        assert_eq!(in_task, owned);
    }

    /// A guard entered on one stack and dropped while another is current
    /// finds its id on no checkpoint there: ids are unique across stacks.
    /// On a thread of its own, as the checkpoint it leaves behind stays on
    /// the thread's stack (stacks set aside are not searched).
    #[test]
    fn a_guard_dropped_while_another_stack_is_current_leaves_nothing_there() {
        static K: FloorKey<u64> = FloorKey::new();
        std::thread::spawn(|| {
            // No stack yet: nothing to read, nowhere to set.
            assert_eq!(task::get(&K), None);
            assert_eq!(task::set(&K, 0), Err((FloorError::NoCheckpoint, 0)));
            let outer = task::enter();
            task::set(&K, 1).unwrap();
            task::scope_run(|| {
                assert_eq!((task::depth(), task::get(&K)), (0, None));
                let _inner = task::enter();
                task::set(&K, 2).unwrap();
                drop(outer);
                assert_eq!((task::depth(), task::get(&K)), (1, Some(2)));
            });
            assert_eq!((task::depth(), task::get(&K)), (1, Some(1)));

            // And the other way round: a scope's guard dropped outside it.
            let stray = task::scope_run(|| {
                let stray = task::enter();
                task::set(&K, 3).unwrap();
                stray
            });
            let _next = task::enter();
            drop(stray);
            assert_eq!((task::depth(), task::get(&K)), (2, Some(1)));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn fresh_stacks_have_ids_apart() {
        let ids: std::collections::HashSet<FrameId> = (0..1000)
            .flat_map(|_| {
                let mut stack = FloorStack::<Unique>::new();
                [stack.open(), stack.open()]
            })
            .collect();
        assert_eq!(ids.len(), 2000);
        assert!(!ids.contains(&0));
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
            let in_task = run(&mut |rng, reads| {
                task::scope_run(|| FloorTask.scope(|cx| program(cx, rng, 0, reads)));
            });
            assert_eq!(owned, naive, "seed {seed}");
            assert_eq!(on_thread, naive, "seed {seed}");
            assert_eq!(in_task, naive, "seed {seed}");
        }
        assert_eq!(thread::depth(), 0);
        assert_eq!(task::depth(), 0);
    }
}
