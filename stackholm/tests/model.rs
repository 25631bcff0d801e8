//! The optimized stack against a naive model: a `Vec` of maps, walked from
//! the top on every read. Each frame of the model holds the values of
//! ordinary keys (`KEYS`), visible in nested frames too, and those of
//! private keys (`PRIVATE_KEYS`), visible in their own frame only: the
//! original's block values. Random operation sequences must give identical
//! results at every step, through the owned `Stack` and through an ambient
//! `Storage` with guards, guards dropped out of order, values set in the
//! root under nested checkpoints, exit hooks (on the innermost checkpoint
//! and on the root, run in order while their checkpoint is still there)
//! and values whose destructors read the storage included.

use std::cell::RefCell;
use std::collections::HashMap;

use proptest::prelude::*;
use stackholm::{Checkpoint, CheckpointGuard, Key, SetError, Stack};

const KEY_COUNT: usize = 4;
/// The first `INHERITED` keys are inherited: snapshots carry only those.
const INHERITED: usize = 2;
static KEYS: [Key<u32>; KEY_COUNT] = [
    Key::new("k0").inherited(),
    Key::new("k1").inherited(),
    Key::new("k2"),
    Key::new("k3"),
];
const PRIVATE_KEY_COUNT: usize = 4;
/// Keys whose values only the checkpoint that set them sees: the model's
/// block values, and what the `*Block` operations work on.
static PRIVATE_KEYS: [Key<u32>; PRIVATE_KEY_COUNT] = [
    Key::new("p0").private(),
    Key::new("p1").private(),
    Key::new("p2").private(),
    Key::new("p3").private(),
];

stackholm::storage! {
    static MODEL_STORAGE;
}

#[derive(Debug, Clone)]
enum Op {
    /// Enter a checkpoint pre-loaded with values of `KEYS` and of
    /// `PRIVATE_KEYS`.
    Enter {
        values: Vec<(usize, u32)>,
        block_values: Vec<(usize, u32)>,
    },
    Leave,
    /// Pop the innermost checkpoint, keeping its values to enter it again.
    PopSaved,
    EnterSaved,
    Set(usize, u32),
    /// Set a private key.
    SetBlock(usize, u32),
    Remove(usize),
    /// Remove a private key's value from the innermost checkpoint.
    RemoveBlock(usize),
    Reset(usize),
    /// Reset a private key: every setting, in every checkpoint.
    ResetBlock(usize),
    /// Take a snapshot of the visible values (which shares them).
    Snapshot,
    /// Drop the guard at this position (modulo the number held), leaving
    /// the checkpoints above it too: their guards become stale.
    LeaveAt(usize),
    /// Drop a stale guard, whose checkpoint is already gone.
    DropStale,
    /// Set a value in the outermost checkpoint, under the settings of the
    /// nested ones; of a private key if `private`.
    SetRoot {
        key: usize,
        value: u32,
        private: bool,
    },
    /// Register an exit hook on the innermost checkpoint, or on the
    /// outermost one if `root`.
    OnExit {
        root: bool,
    },
    /// Set a probe, a value whose destructor reads the storage.
    SetProbe,
    RemoveProbe,
    ResetProbe,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEY_COUNT;
    let private_key = 0..PRIVATE_KEY_COUNT;
    let pairs = |count| prop::collection::vec((0..count, any::<u32>()), 0..3);
    prop_oneof![
        3 => (pairs(KEY_COUNT), pairs(PRIVATE_KEY_COUNT))
            .prop_map(|(values, block_values)| Op::Enter { values, block_values }),
        2 => Just(Op::Leave),
        1 => Just(Op::PopSaved),
        1 => Just(Op::EnterSaved),
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (private_key.clone(), any::<u32>()).prop_map(|(k, v)| Op::SetBlock(k, v)),
        2 => key.clone().prop_map(Op::Remove),
        1 => private_key.clone().prop_map(Op::RemoveBlock),
        1 => key.prop_map(Op::Reset),
        1 => private_key.prop_map(Op::ResetBlock),
        1 => Just(Op::Snapshot),
    ]
}

/// Only for the storage: an owned stack has no guards to drop out of
/// order, and its values' destructors cannot reach it.
fn storage_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => op().prop_filter("no pop-with-save on storages", |op| {
            !matches!(op, Op::PopSaved | Op::EnterSaved)
        }),
        1 => (0..8_usize).prop_map(Op::LeaveAt),
        1 => Just(Op::DropStale),
        2 => (0..KEY_COUNT, any::<u32>(), any::<bool>())
            .prop_map(|(key, value, private)| Op::SetRoot { key, value, private }),
        2 => any::<bool>().prop_map(|root| Op::OnExit { root }),
        2 => Just(Op::SetProbe),
        1 => Just(Op::RemoveProbe),
        1 => Just(Op::ResetProbe),
    ]
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Frame {
    values: HashMap<usize, u32>,
    block_values: HashMap<usize, u32>,
    probe: Option<u64>,
    /// Exit hooks, in the order registered.
    hooks: Vec<u64>,
}

/// What a probe's destructor saw: its id, the depth, every key's value,
/// every private key's value and the nearest probe.
type Seen = (
    u64,
    usize,
    [Option<u32>; KEY_COUNT],
    [Option<u32>; PRIVATE_KEY_COUNT],
    Option<u64>,
);

thread_local! {
    static PROBES_SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
    /// The exit hooks that ran, in order, each with the depth it saw.
    static HOOKS_RUN: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
}

fn hooks_run() -> Vec<(u64, usize)> {
    HOOKS_RUN.with(|log| std::mem::take(&mut *log.borrow_mut()))
}

/// A value whose destructor reads the storage it is dropped from.
#[derive(Debug)]
struct Probe(u64);

impl Drop for Probe {
    fn drop(&mut self) {
        let s = &MODEL_STORAGE;
        let seen = (
            self.0,
            s.depth(),
            std::array::from_fn(|k| s.get(&KEYS[k])),
            std::array::from_fn(|k| s.get(&PRIVATE_KEYS[k])),
            s.with(&PROBE, |probe| probe.map(|p| p.0)),
        );
        PROBES_SEEN.with(|log| log.borrow_mut().push(seen));
    }
}

static PROBE: Key<Probe> = Key::new("probe");

fn probes_seen() -> Vec<Seen> {
    let mut seen = PROBES_SEEN.with(|log| std::mem::take(&mut *log.borrow_mut()));
    seen.sort_unstable();
    seen
}

/// The documented semantics, written the obvious way.
#[derive(Debug, Default)]
struct Model {
    frames: Vec<Frame>,
    saved: Vec<Frame>,
    /// The id the next probe gets.
    next_probe: u64,
    /// The id the next hook gets.
    next_hook: u64,
    /// The hooks the last operation must have run, in order, each with the
    /// depth it saw: its own checkpoint still on the stack.
    hooks_run: Vec<(u64, usize)>,
    /// What the probes dropped by the last operation must have seen.
    seen: Vec<Seen>,
}

impl Model {
    /// What a probe dropped now would see.
    fn seen_by(&self, probe: u64) -> Seen {
        (
            probe,
            self.frames.len(),
            std::array::from_fn(|k| self.get(k)),
            std::array::from_fn(|k| self.get_block(k)),
            self.frames.iter().rev().find_map(|f| f.probe),
        )
    }

    /// Leaves frames, innermost first, down to `depth`; each probe sees the
    /// stack with its own frame already gone.
    fn truncate(&mut self, depth: usize) {
        while self.frames.len() > depth {
            let hooks = std::mem::take(&mut self.frames.last_mut().expect("above depth").hooks);
            let seen = self.frames.len();
            self.hooks_run
                .extend(hooks.iter().rev().map(|&hook| (hook, seen)));
            let frame = self.frames.pop().expect("above depth");
            if let Some(probe) = frame.probe {
                self.seen.push(self.seen_by(probe));
            }
        }
    }

    fn get(&self, k: usize) -> Option<u32> {
        self.frames
            .iter()
            .rev()
            .find_map(|f| f.values.get(&k).copied())
    }

    fn get_block(&self, k: usize) -> Option<u32> {
        self.frames.last()?.block_values.get(&k).copied()
    }

    /// `Err(())` where the real stack must report "no checkpoint".
    fn apply(&mut self, op: &Op) -> Result<Option<usize>, ()> {
        match op {
            Op::Enter {
                values,
                block_values,
            } => {
                self.frames.push(Frame {
                    values: values.iter().copied().collect(),
                    block_values: block_values.iter().copied().collect(),
                    probe: None,
                    hooks: Vec::new(),
                });
                Ok(None)
            }
            Op::Leave => {
                let depth = self.frames.len().checked_sub(1).ok_or(())?;
                self.truncate(depth);
                Ok(None)
            }
            Op::LeaveAt(at) => {
                if self.frames.is_empty() {
                    return Err(());
                }
                self.truncate(at % self.frames.len());
                Ok(None)
            }
            Op::DropStale => Ok(None),
            Op::SetRoot {
                key,
                value,
                private,
            } => {
                let root = self.frames.first_mut().ok_or(())?;
                let values = if *private {
                    &mut root.block_values
                } else {
                    &mut root.values
                };
                values.insert(*key, *value);
                Ok(None)
            }
            Op::OnExit { root } => {
                let hook = self.next_hook;
                self.next_hook += 1;
                let frame = if *root {
                    self.frames.first_mut()
                } else {
                    self.frames.last_mut()
                };
                frame.ok_or(())?.hooks.push(hook);
                Ok(None)
            }
            Op::SetProbe => {
                let probe = self.next_probe;
                self.next_probe += 1;
                if self.frames.is_empty() {
                    // Refused and handed back, then dropped by the caller.
                    self.seen.push(self.seen_by(probe));
                    return Err(());
                }
                let old = self.frames.last_mut().ok_or(())?.probe.replace(probe);
                if let Some(old) = old {
                    self.seen.push(self.seen_by(old));
                }
                Ok(None)
            }
            // With no checkpoint there is nothing to remove.
            Op::RemoveProbe => {
                let nearest = self.frames.iter_mut().rev().find_map(|f| f.probe.take());
                if let Some(probe) = nearest {
                    self.seen.push(self.seen_by(probe));
                }
                Ok(Some(usize::from(nearest.is_some())))
            }
            Op::ResetProbe => {
                let removed: Vec<u64> = self
                    .frames
                    .iter_mut()
                    .filter_map(|f| f.probe.take())
                    .collect();
                for &probe in &removed {
                    self.seen.push(self.seen_by(probe));
                }
                Ok(Some(removed.len()))
            }
            Op::PopSaved => {
                let frame = self.frames.pop().ok_or(())?;
                debug_assert!(frame.probe.is_none(), "probes are for storages");
                self.saved.push(frame);
                Ok(None)
            }
            Op::EnterSaved => {
                if let Some(frame) = self.saved.pop() {
                    self.frames.push(frame);
                }
                Ok(None)
            }
            Op::Set(k, v) => {
                self.frames.last_mut().ok_or(())?.values.insert(*k, *v);
                Ok(None)
            }
            Op::SetBlock(k, v) => {
                self.frames
                    .last_mut()
                    .ok_or(())?
                    .block_values
                    .insert(*k, *v);
                Ok(None)
            }
            Op::Remove(k) => {
                let nearest = self
                    .frames
                    .iter_mut()
                    .rev()
                    .find(|f| f.values.contains_key(k));
                Ok(Some(usize::from(
                    nearest.is_some_and(|f| f.values.remove(k).is_some()),
                )))
            }
            Op::RemoveBlock(k) => Ok(Some(usize::from(
                self.frames
                    .last_mut()
                    .is_some_and(|top| top.block_values.remove(k).is_some()),
            ))),
            Op::Reset(k) => Ok(Some(
                self.frames
                    .iter_mut()
                    .filter_map(|f| f.values.remove(k))
                    .count(),
            )),
            Op::ResetBlock(k) => Ok(Some(
                self.frames
                    .iter_mut()
                    .filter_map(|f| f.block_values.remove(k))
                    .count(),
            )),
            // Private keys and probes are not inherited.
            Op::Snapshot => Ok(Some(
                (0..INHERITED).filter(|&k| self.get(k).is_some()).count(),
            )),
        }
    }
}

fn checkpoint_of(values: &[(usize, u32)], block_values: &[(usize, u32)]) -> Checkpoint {
    let checkpoint = values
        .iter()
        .fold(Checkpoint::new(), |c, &(k, v)| c.with_value(&KEYS[k], v));
    block_values
        .iter()
        .fold(checkpoint, |c, &(k, v)| c.with_value(&PRIVATE_KEYS[k], v))
}

/// The values `keys` have in `stack`, as the model's map of them.
fn values_of(stack: &Stack, keys: &'static [Key<u32>]) -> HashMap<usize, u32> {
    keys.iter()
        .enumerate()
        .filter_map(|(k, key)| stack.get(key).map(|&v| (k, v)))
        .collect()
}

/// What a checkpoint holds, read without entering it (`Checkpoint::get`),
/// its `len` checked against it.
fn frame_in(checkpoint: &Checkpoint) -> Frame {
    let read = |keys: &'static [Key<u32>]| -> HashMap<usize, u32> {
        keys.iter()
            .enumerate()
            .filter_map(|(k, key)| checkpoint.get(key).map(|&v| (k, v)))
            .collect()
    };
    let frame = Frame {
        values: read(&KEYS),
        block_values: read(&PRIVATE_KEYS),
        probe: None,
        hooks: Vec::new(),
    };
    let len = frame.values.len() + frame.block_values.len();
    assert_eq!(
        checkpoint.len(),
        len,
        "a checkpoint's len counts its values"
    );
    assert_eq!(checkpoint.is_empty(), len == 0);
    frame
}

/// What a checkpoint holds, read by entering it alone on a fresh stack
/// (and read without entering it, which must agree), and the checkpoint,
/// popped back off with its values.
fn frame_of(checkpoint: Checkpoint) -> (Frame, Checkpoint) {
    let unentered = frame_in(&checkpoint);
    let mut alone = Stack::new();
    alone.push(checkpoint);
    let frame = Frame {
        values: values_of(&alone, &KEYS),
        block_values: values_of(&alone, &PRIVATE_KEYS),
        probe: None,
        hooks: Vec::new(),
    };
    assert_eq!(
        unentered, frame,
        "a checkpoint read as its entered root reads"
    );
    (frame, alone.pop().expect("the checkpoint was just entered"))
}

/// Checks that `snapshot` carries the visible values of the inherited keys
/// (`visible` reads the stack it was taken from) and nothing else, by
/// entering it alone on a fresh stack; returns how many values it carries.
fn check_snapshot(
    snapshot: Checkpoint,
    visible: impl Fn(&'static Key<u32>) -> Option<u32>,
) -> usize {
    let unentered = frame_in(&snapshot);
    let mut alone = Stack::new();
    let entered = alone.enter_with(snapshot);
    assert_eq!(unentered.values, values_of(&entered, &KEYS));
    assert!(unentered.block_values.is_empty());
    for (k, key) in KEYS.iter().enumerate() {
        let carried = if k < INHERITED { visible(key) } else { None };
        assert_eq!(entered.get(key).copied(), carried, "snapshot of k{k}");
    }
    for (k, key) in PRIVATE_KEYS.iter().enumerate() {
        assert_eq!(entered.get(key), None, "snapshot of p{k}");
    }
    assert!(entered.get(&PROBE).is_none(), "a probe is not inherited");
    values_of(&entered, &KEYS).len()
}

fn apply_to_stack(
    stack: &mut Stack,
    saved: &mut Vec<Checkpoint>,
    op: &Op,
) -> Result<Option<usize>, ()> {
    let done = |r: Result<(), SetError<u32>>, v: u32| match r {
        Ok(()) => Ok(None),
        // A refused value is handed back, not lost.
        Err(err) => {
            assert_eq!(err.into_value(), v, "the refused value is handed back");
            Err(())
        }
    };
    let count = |removed: bool| Ok(Some(usize::from(removed)));
    match op {
        Op::Enter {
            values,
            block_values,
        } => {
            let checkpoint = checkpoint_of(values, block_values);
            // Pre-loading a key twice keeps the last value, as the model's
            // map does.
            let expected = Frame {
                values: values.iter().copied().collect(),
                block_values: block_values.iter().copied().collect(),
                probe: None,
                hooks: Vec::new(),
            };
            assert_eq!(frame_in(&checkpoint), expected, "a pre-loaded checkpoint");
            stack.push(checkpoint);
            Ok(None)
        }
        // What a popped checkpoint holds reads the same entered or not.
        Op::Leave => {
            let popped = stack.pop().ok_or(())?;
            drop(frame_of(popped));
            Ok(None)
        }
        Op::PopSaved => {
            saved.push(stack.pop().ok_or(())?);
            Ok(None)
        }
        Op::EnterSaved => {
            if let Some(checkpoint) = saved.pop() {
                stack.push(checkpoint);
            }
            Ok(None)
        }
        Op::Set(k, v) => done(stack.set(&KEYS[*k], *v), *v),
        Op::SetBlock(k, v) => done(stack.set(&PRIVATE_KEYS[*k], *v), *v),
        Op::Remove(k) => count(stack.remove(&KEYS[*k])),
        Op::RemoveBlock(k) => count(stack.remove(&PRIVATE_KEYS[*k])),
        Op::Reset(k) => Ok(Some(stack.reset(&KEYS[*k]))),
        Op::ResetBlock(k) => Ok(Some(stack.reset(&PRIVATE_KEYS[*k]))),
        Op::LeaveAt(_)
        | Op::DropStale
        | Op::SetRoot { .. }
        | Op::OnExit { .. }
        | Op::SetProbe
        | Op::RemoveProbe
        | Op::ResetProbe => {
            unreachable!("only generated for storages")
        }
        Op::Snapshot => {
            let snapshot = stack.snapshot();
            Ok(Some(check_snapshot(snapshot, |key| {
                stack.get(key).copied()
            })))
        }
    }
}

/// The guards a storage test holds: live ones, innermost last, and stale
/// ones, whose checkpoints an outer guard took along.
#[derive(Default)]
struct Guards {
    live: Vec<CheckpointGuard>,
    stale: Vec<CheckpointGuard>,
    next_probe: u64,
    next_hook: u64,
}

/// The ambient storage has no pop-with-save: its guards drop what they
/// held, so `PopSaved`/`EnterSaved` are not generated for it.
fn apply_to_storage(guards: &mut Guards, op: &Op) -> Result<Option<usize>, ()> {
    let s = &MODEL_STORAGE;
    let done = |r: Result<(), SetError<u32>>, v: u32| match r {
        Ok(()) => Ok(None),
        // A refused value is handed back, not lost.
        Err(err) => {
            assert_eq!(err.into_value(), v, "the refused value is handed back");
            Err(())
        }
    };
    let count = |removed: bool| Ok(Some(usize::from(removed)));
    match op {
        Op::Enter {
            values,
            block_values,
        } => {
            guards
                .live
                .push(s.enter_with(checkpoint_of(values, block_values)));
            Ok(None)
        }
        Op::Leave => guards.live.pop().map(|_| None).ok_or(()),
        Op::LeaveAt(at) => {
            if guards.live.is_empty() {
                return Err(());
            }
            let at = at % guards.live.len();
            // Dropped while the guards entered after it still live.
            let above = guards.live.split_off(at + 1);
            drop(guards.live.pop());
            guards.stale.extend(above);
            Ok(None)
        }
        Op::DropStale => {
            drop(guards.stale.pop());
            Ok(None)
        }
        Op::SetRoot {
            key,
            value,
            private,
        } => {
            let key = if *private {
                &PRIVATE_KEYS[*key]
            } else {
                &KEYS[*key]
            };
            done(s.set_root(key, *value), *value)
        }
        Op::OnExit { root } => {
            let id = guards.next_hook;
            guards.next_hook += 1;
            let hook = move |_| HOOKS_RUN.with(|log| log.borrow_mut().push((id, s.depth())));
            let registered = if *root {
                s.on_root_exit(hook)
            } else {
                s.on_exit(hook)
            };
            registered.map(|()| None).map_err(|_| ())
        }
        Op::SetProbe => {
            let probe = guards.next_probe;
            guards.next_probe += 1;
            s.set(&PROBE, Probe(probe)).map(|()| None).map_err(|_| ())
        }
        Op::RemoveProbe => count(s.remove(&PROBE).expect("a storage is never busy here")),
        Op::ResetProbe => Ok(Some(s.reset(&PROBE).expect("a storage is never busy here"))),
        Op::PopSaved | Op::EnterSaved => unreachable!("not generated for storages"),
        Op::Snapshot => Ok(Some(check_snapshot(s.snapshot(), |key| s.get(key)))),
        Op::Set(k, v) => done(s.set(&KEYS[*k], *v), *v),
        Op::SetBlock(k, v) => done(s.set(&PRIVATE_KEYS[*k], *v), *v),
        Op::Remove(k) => count(s.remove(&KEYS[*k]).expect("a storage is never busy here")),
        Op::RemoveBlock(k) => count(
            s.remove(&PRIVATE_KEYS[*k])
                .expect("a storage is never busy here"),
        ),
        Op::Reset(k) => Ok(Some(
            s.reset(&KEYS[*k]).expect("a storage is never busy here"),
        )),
        Op::ResetBlock(k) => Ok(Some(
            s.reset(&PRIVATE_KEYS[*k])
                .expect("a storage is never busy here"),
        )),
    }
}

fn assert_reads_agree(model: &Model, stack: &Stack, step: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(stack.depth(), model.frames.len(), "depth at step {}", step);
    for (k, key) in KEYS.iter().enumerate() {
        prop_assert_eq!(
            stack.get(key).copied(),
            model.get(k),
            "get k{} at step {}",
            k,
            step
        );
    }
    for (k, key) in PRIVATE_KEYS.iter().enumerate() {
        prop_assert_eq!(
            stack.get(key).copied(),
            model.get_block(k),
            "get p{} at step {}",
            k,
            step
        );
    }
    Ok(())
}

fn assert_storage_agrees(model: &Model, step: usize) -> Result<(), TestCaseError> {
    let s = &MODEL_STORAGE;
    prop_assert_eq!(s.depth(), model.frames.len(), "depth at step {}", step);
    for (k, key) in KEYS.iter().enumerate() {
        prop_assert_eq!(s.get(key), model.get(k), "get k{} at step {}", k, step);
    }
    for (k, key) in PRIVATE_KEYS.iter().enumerate() {
        prop_assert_eq!(
            s.get(key),
            model.get_block(k),
            "get p{} at step {}",
            k,
            step
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn stack_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut model = Model::default();
        let mut stack = Stack::new();
        let mut saved = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let actual = apply_to_stack(&mut stack, &mut saved, op);
            prop_assert_eq!(actual, expected, "result of {:?} at step {}", op, step);
            assert_reads_agree(&model, &stack, step)?;
            if let (Op::PopSaved, Some(checkpoint)) = (op, saved.last_mut()) {
                let (frame, popped) = frame_of(std::mem::take(checkpoint));
                *checkpoint = popped;
                prop_assert_eq!(&frame, model.saved.last().unwrap());
            }
        }
    }

    #[test]
    fn storage_matches_model(ops in prop::collection::vec(storage_op(), 1..60)) {
        // A failed case drops its guards on the way out, after its checks.
        probes_seen();
        hooks_run();
        let mut model = Model::default();
        let mut guards = Guards::default();
        for (step, op) in ops.iter().enumerate() {
            let expected = model.apply(op);
            let actual = apply_to_storage(&mut guards, op);
            prop_assert_eq!(actual, expected, "result of {:?} at step {}", op, step);
            assert_storage_agrees(&model, step)?;
            let mut expected_seen = std::mem::take(&mut model.seen);
            expected_seen.sort_unstable();
            prop_assert_eq!(
                probes_seen(),
                expected_seen,
                "what destructors saw during {:?} at step {}",
                op,
                step
            );
            prop_assert_eq!(
                hooks_run(),
                std::mem::take(&mut model.hooks_run),
                "the hooks run, in order, during {:?} at step {}",
                op,
                step
            );
        }
        while guards.live.pop().is_some() {}
        guards.stale.clear();
        probes_seen();
        hooks_run();
        prop_assert_eq!(MODEL_STORAGE.depth(), 0);
    }
}
