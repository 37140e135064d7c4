//! Fusion at evaluation: a chain of pending elementwise nodes that only the chain itself
//! can reach runs as one `Primitive::Fused` node (one kernel on a GPU), as compile's
//! groups do. On a GPU each launch costs microseconds of host time whatever its size, so
//! an eager step of many small elementwise ops is bound by launches; fused, it is bound
//! by building the graph. Results are those of the unfused nodes, bit for bit (the fused
//! kernels evaluate each step as its own node would, `ops/fused.rs`).
//!
//! What fuses: an elementwise node (`is_fusable`) whose inputs have its shape, outside
//! any active transform, joins the group of its consumers when they are all in one group
//! and nothing else holds it (not an output, not held from Python, not an input of a
//! node outside this evaluation), within `MAX_STEPS` steps and `MAX_INPUTS` inputs.
//!
//! Which backends: those whose `fuses_at_eval` says so (the GPU), and a program only
//! once it has been seen `min_seen` times, so that code run once does not wait for a
//! kernel to be compiled for it. `OXMX_EVAL_FUSION=0` turns it off; `=all` fuses on
//! every backend from the first sighting (the CPU test suite runs that way to check
//! that results do not change).

use crate::array::{Array, State};
use crate::device::Device;
use crate::dtype::Dtype;
use crate::ops::fused::{is_fusable, FusedArg, FusedKernel, FusedProgram, FusedStep};
use crate::ops::fused::{MAX_INPUTS, MAX_STEPS};
use crate::primitive::Primitive;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// What the evaluation loop does with a node of its order.
pub(crate) enum Role {
    /// Computed on its own.
    Plain,
    /// Computed inside the group of a later node: skipped.
    Member,
    /// The last node of a group: computed by the fused node.
    Root(Group),
}

/// A fused group, planned for its last node.
pub(crate) struct Group {
    /// `Primitive::Fused` over `inputs`.
    pub prim: Primitive,
    /// The arrays the group reads from outside (each has the output's shape).
    pub inputs: Vec<Array>,
    /// The group's other nodes in order, for computing them one by one if the fused
    /// node fails (a backend without a kernel for one of its steps).
    pub members: Vec<Array>,
    /// Scalar broadcasts skipped because the group reads an equal one: the members read
    /// them if they run one by one.
    pub skipped: Vec<Array>,
}

/// Fusion switched off.
const OFF: u8 = 1;
/// Backends that ask for it (the default).
const ASKED: u8 = 2;
/// Every backend.
const ALL: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(0);
/// Sightings of a program before it is fused (0: not read from the environment yet).
static MIN_SEEN: AtomicU32 = AtomicU32::new(0);
/// Sightings before fusing by default: a program seen once more is likely a loop's.
const DEFAULT_MIN_SEEN: u32 = 2;

fn mode() -> u8 {
    match MODE.load(Ordering::Relaxed) {
        0 => {
            let m = match std::env::var("OXMX_EVAL_FUSION").as_deref() {
                Ok("0") | Ok("off") => OFF,
                Ok("all") => ALL,
                _ => ASKED,
            };
            if m == ALL && MIN_SEEN.load(Ordering::Relaxed) == 0 {
                MIN_SEEN.store(1, Ordering::Relaxed);
            }
            MODE.store(m, Ordering::Relaxed);
            m
        }
        m => m,
    }
}

fn min_seen() -> u32 {
    match MIN_SEEN.load(Ordering::Relaxed) {
        0 => DEFAULT_MIN_SEEN,
        n => n,
    }
}

/// Sets the mode ("off", "gpu": backends that ask, "all") and how many sightings a
/// program needs before it fuses (at least 1). Tests use it.
pub fn set_mode(mode: &str, min_seen: u32) -> crate::Result<()> {
    let m = match mode {
        "off" => OFF,
        "gpu" => ASKED,
        "all" => ALL,
        _ => {
            return Err(crate::Error::value(
                "eval_fusion",
                format!("Unknown mode '{mode}': expected 'off', 'gpu' or 'all'."),
            ))
        }
    };
    MODE.store(m, Ordering::Relaxed);
    MIN_SEEN.store(min_seen.max(1), Ordering::Relaxed);
    Ok(())
}

/// The mode's name and the sightings needed.
pub fn current_mode() -> (&'static str, u32) {
    let name = match mode() {
        OFF => "off",
        ALL => "all",
        _ => "gpu",
    };
    (name, min_seen())
}

/// Programs seen at evaluation, by content: how often, and the shared program once it
/// fuses (one `Arc` per program, so a backend finds its kernel by address). A program
/// whose fused node failed is never fused again.
#[derive(Default)]
struct Seen {
    map: HashMap<ProgramKey, Entry>,
}

struct Entry {
    count: u32,
    failed: bool,
}

/// Programs kept before the table starts over.
const MAX_PROGRAMS: usize = 4096;

/// A program compared and hashed by content.
#[derive(Clone)]
struct ProgramKey(Arc<FusedProgram>);

impl PartialEq for ProgramKey {
    fn eq(&self, o: &Self) -> bool {
        *self.0 == *o.0
    }
}
impl Eq for ProgramKey {}

impl Hash for ProgramKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.inputs.hash(h);
        for s in &self.0.steps {
            match &s.prim {
                Primitive::Unary(op) => (0u8, *op).hash(h),
                Primitive::Binary(op) => (1u8, *op).hash(h),
                Primitive::AsType(d) => (2u8, *d).hash(h),
                p => (3u8, p.name()).hash(h),
            }
            s.args.hash(h);
            s.dtype.hash(h);
        }
    }
}

fn seen() -> &'static Mutex<Seen> {
    static S: std::sync::OnceLock<Mutex<Seen>> = std::sync::OnceLock::new();
    S.get_or_init(|| Mutex::new(Seen::default()))
}

/// Counts a sighting of `prog`; the shared program when it is to be fused now.
fn intern(prog: FusedProgram) -> Option<Arc<FusedProgram>> {
    let need = min_seen();
    let mut s = seen().lock().unwrap_or_else(|p| p.into_inner());
    let key = ProgramKey(Arc::new(prog));
    if let Some((k, e)) = s.map.get_key_value(&key) {
        let fuse = !e.failed && e.count.saturating_add(1) >= need;
        let shared = Arc::clone(&k.0);
        if let Some(e) = s.map.get_mut(&key) {
            e.count = e.count.saturating_add(1);
        }
        return fuse.then_some(shared);
    }
    if s.map.len() >= MAX_PROGRAMS {
        s.map.clear();
    }
    let shared = Arc::clone(&key.0);
    if crate::compile::debug_enabled() {
        eprintln!(
            "[eval fusion] new program, {} steps: {}",
            shared.steps.len(),
            shared.describe()
        );
    }
    s.map.insert(
        key,
        Entry {
            count: 1,
            failed: false,
        },
    );
    (need <= 1).then_some(shared)
}

/// Tests make every fused node of an evaluation fail, to run the fallback.
static FAIL_FOR_TESTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes fused nodes at evaluation fail (tests of the fallback), or not.
pub fn set_fail_for_tests(fail: bool) {
    FAIL_FOR_TESTS.store(fail, Ordering::Relaxed);
}

pub(crate) fn failing_for_tests() -> bool {
    FAIL_FOR_TESTS.load(Ordering::Relaxed)
}

/// Never fuse `prog` again (its fused node failed).
pub(crate) fn mark_failed(prim: &Primitive) {
    let Primitive::Fused(FusedKernel(p)) = prim else {
        return;
    };
    let mut s = seen().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = s.map.get_mut(&ProgramKey(Arc::clone(p))) {
        e.failed = true;
    }
}

/// Whether nodes on `device` may fuse, asking its backend once per evaluation.
fn device_fuses(cache: &mut Vec<(Device, bool)>, device: Device, mode: u8) -> bool {
    if let Some(&(_, ok)) = cache.iter().find(|(d, _)| *d == device) {
        return ok;
    }
    let ok = mode == ALL
        || crate::backend::get(device)
            .map(|b| b.fuses_at_eval())
            .unwrap_or(false);
    cache.push((device, ok));
    ok
}

/// A hasher for node ids (addresses): one multiply, where SipHash costs tens of
/// nanoseconds per lookup and an evaluation looks up every node several times.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Node ids to values.
pub(crate) type IdMap<V> = HashMap<usize, V, std::hash::BuildHasherDefault<IdHasher>>;

/// No node (a position or group that does not exist).
const NONE: usize = usize::MAX;
/// A node whose consumers are not all in one group.
const MIXED: usize = usize::MAX - 1;

/// The value of a scalar held on the host: a one-element array ready in host memory, or
/// a pending broadcast of one (`x * 2.0` makes one per op). A group reads equal values
/// once.
fn scalar_value(a: &Array) -> Option<(Dtype, u64)> {
    let data = match &*a.lock() {
        State::Pending(p) if matches!(p.prim, Primitive::Broadcast) => {
            let src = p.inputs.first()?;
            if src.size() != 1 || src.dtype() != a.dtype() {
                return None;
            }
            src.ready_data()?
        }
        State::Ready(d) if a.size() == 1 => d.clone(),
        _ => return None,
    };
    let size = a.dtype().size();
    if !data.buffer.on_host() || size > 8 {
        return None;
    }
    let start = data.offset.checked_mul(size)?;
    let bytes = data.buffer.bytes().get(start..start.checked_add(size)?)?;
    let mut v = [0u8; 8];
    v.get_mut(..size)?.copy_from_slice(bytes);
    Some((a.dtype(), u64::from_le_bytes(v)))
}

/// Each node's inputs, flattened: where they are in the order (or `NONE`), the key a
/// group knows them by, and for inputs outside the order (ready arrays) a handle.
#[derive(Default)]
struct Inputs {
    start: Vec<usize>,
    pos: Vec<usize>,
    key: Vec<usize>,
    outside: Vec<Option<Array>>,
}

impl Inputs {
    fn of(&self, k: usize) -> std::ops::Range<usize> {
        let a = self.start.get(k).copied().unwrap_or(0);
        let b = self.start.get(k + 1).copied().unwrap_or(a);
        a..b
    }
}

/// What each node of `order` (pending nodes, inputs first; `pos` maps their ids to
/// their places) does, or None when nothing fuses.
pub(crate) fn plan(order: &[Array], pos: &IdMap<usize>) -> Option<Vec<Role>> {
    let mode = mode();
    let n = order.len();
    if mode == OFF || n < 2 || (mode == ASKED && !crate::backend::any_fuses_at_eval()) {
        return None;
    }
    // A quick look first (one lock per node, no per-input work): evaluations on a
    // device that does not fuse, or without two elementwise nodes, plan nothing.
    let mut device_cache = Vec::new();
    let elementwise = order
        .iter()
        .filter(|a| match &*a.lock() {
            State::Pending(p) => {
                matches!(
                    p.prim,
                    Primitive::Unary(_)
                        | Primitive::Binary(_)
                        | Primitive::Select
                        | Primitive::AsType(_)
                ) && device_fuses(&mut device_cache, p.stream.device, mode)
            }
            _ => false,
        })
        .take(2)
        .count();
    if elementwise < 2 {
        return None;
    }
    let mut ins = Inputs {
        start: Vec::with_capacity(n + 1),
        ..Inputs::default()
    };
    // slots[k]: input slots of nodes in `order` that hold k
    let mut slots = vec![0usize; n];
    let mut prims: Vec<Option<Primitive>> = vec![None; n];
    let mut devices: Vec<Option<Device>> = vec![None; n];
    let mut by_value: HashMap<(Dtype, u64), usize> = HashMap::new();
    let mut candidates = 0usize;
    for (k, a) in order.iter().enumerate() {
        ins.start.push(ins.pos.len());
        let st = a.lock();
        let State::Pending(p) = &*st else {
            continue;
        };
        let fusable = p.inputs.len() <= 3 && p.inputs.iter().all(|i| i.shape() == a.shape()) && {
            let mut dtypes = [Dtype::Bool; 3];
            for (d, i) in dtypes.iter_mut().zip(&p.inputs) {
                *d = i.dtype();
            }
            is_fusable(&p.prim, a.dtype(), &dtypes[..p.inputs.len()])
                && !a.is_traced()
                && device_fuses(&mut device_cache, p.stream.device, mode)
        };
        for i in &p.inputs {
            let j = pos.get(&i.id()).copied().unwrap_or(NONE);
            if let Some(s) = slots.get_mut(j) {
                *s += 1;
            }
            ins.pos.push(j);
            let key = match fusable.then(|| scalar_value(i)).flatten() {
                Some(v) => *by_value.entry(v).or_insert(i.id()),
                None => i.id(),
            };
            ins.key.push(key);
            ins.outside.push((fusable && j == NONE).then(|| i.clone()));
        }
        if fusable {
            prims[k] = Some(p.prim.clone());
            devices[k] = Some(p.stream.device);
            candidates += 1;
        }
    }
    ins.start.push(ins.pos.len());
    if candidates < 2 {
        return None;
    }
    // Held only by this evaluation's order and its consumers here: nothing else can
    // read the node, so it need never exist on its own.
    let private: Vec<bool> = order
        .iter()
        .zip(&slots)
        .map(|(a, &s)| a.strong_count() == s + 1)
        .collect();
    // group[k]: the last node (root) of k's group; cons[k]: the group all of k's
    // consumers belong to (NONE: no consumer yet, MIXED: not one group); size[r] and
    // ext[r]: a root's nodes and the keys of what its group reads from outside.
    let mut group = vec![NONE; n];
    let mut cons = vec![NONE; n];
    let mut size = vec![0usize; n];
    let mut ext: Vec<Vec<usize>> = vec![Vec::new(); n];
    for k in (0..n).rev() {
        let slots_k = ins.of(k);
        if prims[k].is_some() {
            let own = order[k].id();
            let mut reads: Vec<usize> = Vec::with_capacity(3);
            for s in slots_k.clone() {
                let key = ins.key[s];
                if !reads.contains(&key) {
                    reads.push(key);
                }
            }
            let c = cons[k];
            let joins = private[k] && c < n && devices[c] == devices[k] && size[c] < MAX_STEPS && {
                let base = &ext[c];
                let fresh = reads.iter().filter(|r| !base.contains(r)).count();
                base.len() - usize::from(base.contains(&own)) + fresh <= MAX_INPUTS
            };
            if joins {
                let base = &mut ext[c];
                base.retain(|&x| x != own);
                for r in reads {
                    if !base.contains(&r) {
                        base.push(r);
                    }
                }
                group[k] = c;
                size[c] += 1;
            } else {
                group[k] = k;
                size[k] = 1;
                ext[k] = reads;
            }
        }
        let gk = group[k];
        for s in slots_k {
            if let Some(cj) = ins.pos.get(s).and_then(|&j| cons.get_mut(j)) {
                *cj = match *cj {
                    _ if gk == NONE => MIXED,
                    NONE => gk,
                    g if g == gk => g,
                    _ => MIXED,
                };
            }
        }
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, &r) in group.iter().enumerate() {
        if r < n && size[r] >= 2 {
            members[r].push(k);
        }
    }
    let mut roles: Vec<Role> = (0..n).map(|_| Role::Plain).collect();
    // read[r]: the ids of a fused group's inputs
    let mut read: Vec<Option<Vec<usize>>> = vec![None; n];
    let mut step_of = vec![NONE; n];
    for root in 0..n {
        let m = std::mem::take(&mut members[root]);
        if m.len() < 2 {
            continue;
        }
        let Some((prog, inputs)) = program_of(order, &ins, &prims, &group, &mut step_of, &m) else {
            continue;
        };
        let Some(shared) = intern(prog) else {
            continue;
        };
        let others: Vec<Array> = m[..m.len() - 1].iter().map(|&j| order[j].clone()).collect();
        for &j in &m[..m.len() - 1] {
            roles[j] = Role::Member;
        }
        read[root] = Some(inputs.iter().map(Array::id).collect());
        roles[root] = Role::Root(Group {
            prim: Primitive::Fused(FusedKernel(shared)),
            inputs,
            members: others,
            skipped: Vec::new(),
        });
    }
    if read.iter().all(Option::is_none) {
        return None;
    }
    // A scalar broadcast that only one fused group reads, and that it reads through an
    // equal one, is never needed.
    let mut skipped = Vec::new();
    for j in 0..n {
        let c = cons[j];
        let Some(Some(r)) = read.get(c) else {
            continue;
        };
        if private[j] && matches!(roles[j], Role::Plain) && !r.contains(&order[j].id()) {
            skipped.push((j, c));
        }
    }
    for (j, c) in skipped {
        roles[j] = Role::Member;
        if let Some(Role::Root(g)) = roles.get_mut(c) {
            g.skipped.push(order[j].clone());
        }
    }
    Some(roles)
}

/// The program of the nodes `m` of `order` (sorted, the root last) and the arrays it
/// reads from outside (one per key).
fn program_of(
    order: &[Array],
    ins: &Inputs,
    prims: &[Option<Primitive>],
    group: &[usize],
    step_of: &mut [usize],
    m: &[usize],
) -> Option<(FusedProgram, Vec<Array>)> {
    let root = *m.last()?;
    let mut inputs: Vec<Array> = Vec::new();
    let mut keys: Vec<usize> = Vec::new();
    let mut steps = Vec::with_capacity(m.len());
    for (idx, &k) in m.iter().enumerate() {
        *step_of.get_mut(k)? = idx;
        let mut args = Vec::with_capacity(3);
        for s in ins.of(k) {
            let j = *ins.pos.get(s)?;
            if j < group.len() && group[j] == root {
                args.push(FusedArg::Step(*step_of.get(j)?));
                continue;
            }
            let key = *ins.key.get(s)?;
            let i = match keys.iter().position(|&x| x == key) {
                Some(i) => i,
                None => {
                    let a = match ins.outside.get(s)? {
                        Some(a) => a.clone(),
                        None => order.get(j)?.clone(),
                    };
                    keys.push(key);
                    inputs.push(a);
                    inputs.len() - 1
                }
            };
            args.push(FusedArg::Input(i));
        }
        steps.push(FusedStep {
            prim: prims.get(k)?.clone()?,
            args,
            dtype: order[k].dtype(),
        });
    }
    let prog = FusedProgram {
        inputs: inputs.iter().map(Array::dtype).collect(),
        steps,
    };
    Some((prog, inputs))
}
