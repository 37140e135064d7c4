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
use std::collections::{HashMap, HashSet};
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

/// What each node of `order` (pending nodes, inputs first) does, or None when nothing
/// fuses.
pub(crate) fn plan(order: &[Array]) -> Option<Vec<Role>> {
    let mode = mode();
    let n = order.len();
    if mode == OFF || n < 2 {
        return None;
    }
    let pos: HashMap<usize, usize> = order.iter().enumerate().map(|(k, a)| (a.id(), k)).collect();
    // slots[k]: input slots of nodes in `order` that hold k; consumers[k]: those nodes
    let mut slots = vec![0usize; n];
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut fusable = vec![false; n];
    let mut devices: Vec<Option<Device>> = vec![None; n];
    let mut device_cache = Vec::new();
    let mut candidates = 0usize;
    for (k, a) in order.iter().enumerate() {
        let st = a.lock();
        let State::Pending(p) = &*st else {
            continue;
        };
        for i in &p.inputs {
            if let Some(&j) = pos.get(&i.id()) {
                slots[j] += 1;
                if !consumers[j].contains(&k) {
                    consumers[j].push(k);
                }
            }
        }
        if p.inputs.len() > 3 || p.inputs.iter().any(|i| i.shape() != a.shape()) {
            continue;
        }
        let mut dtypes = [Dtype::Bool; 3];
        for (d, i) in dtypes.iter_mut().zip(&p.inputs) {
            *d = i.dtype();
        }
        let ok = is_fusable(&p.prim, a.dtype(), &dtypes[..p.inputs.len()])
            && !a.is_traced()
            && device_fuses(&mut device_cache, p.stream.device, mode);
        if ok {
            fusable[k] = true;
            devices[k] = Some(p.stream.device);
            candidates += 1;
        }
    }
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
    let mut inputs_of = Canon::default();
    // group[k]: the last node (root) of k's group; members[root]: the group's nodes;
    // external[root]: what the group reads from outside (canonical ids).
    let mut group: Vec<Option<usize>> = vec![None; n];
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut external: HashMap<usize, HashSet<usize>> = HashMap::new();
    for k in (0..n).rev() {
        if !fusable[k] {
            continue;
        }
        let ins = match &*order[k].lock() {
            State::Pending(p) => p.inputs.clone(),
            _ => continue,
        };
        let reads: HashSet<usize> = ins.iter().map(|i| inputs_of.id(i)).collect();
        let joined = consumers[k]
            .first()
            .and_then(|&c| group[c])
            .filter(|&g| {
                private[k]
                    && devices[g] == devices[k]
                    && consumers[k].iter().all(|&c| group[c] == Some(g))
                    && members.get(&g).is_some_and(|m| m.len() < MAX_STEPS)
            })
            .and_then(|g| {
                let mut ext = external.get(&g)?.clone();
                ext.remove(&order[k].id());
                ext.extend(reads.iter().copied());
                (ext.len() <= MAX_INPUTS).then_some((g, ext))
            });
        let (g, ext) = joined.unwrap_or((k, reads));
        if ext.len() > MAX_INPUTS {
            continue;
        }
        group[k] = Some(g);
        members.entry(g).or_default().push(k);
        external.insert(g, ext);
    }
    let mut roles: Vec<Role> = (0..n).map(|_| Role::Plain).collect();
    // fused_in[k]: the root of the fused group k belongs to; read[root]: its inputs' ids
    let mut fused_in: Vec<Option<usize>> = vec![None; n];
    let mut read: HashMap<usize, HashSet<usize>> = HashMap::new();
    for (root, mut m) in members {
        if m.len() < 2 {
            continue;
        }
        m.sort_unstable();
        let Some((prog, inputs)) = program_of(order, &m, &mut inputs_of) else {
            continue;
        };
        let Some(shared) = intern(prog) else {
            continue;
        };
        let others: Vec<Array> = m[..m.len() - 1].iter().map(|&j| order[j].clone()).collect();
        for &j in &m {
            fused_in[j] = Some(root);
        }
        for &j in &m[..m.len() - 1] {
            roles[j] = Role::Member;
        }
        read.insert(root, inputs.iter().map(Array::id).collect());
        roles[root] = Role::Root(Group {
            prim: Primitive::Fused(FusedKernel(shared)),
            inputs,
            members: others,
        });
    }
    if read.is_empty() {
        return None;
    }
    // A scalar broadcast that only fused nodes read, and that they read through an
    // equal one, is never needed.
    for j in 0..n {
        let Some(&first) = consumers[j].first() else {
            continue;
        };
        let Some(root) = fused_in[first] else {
            continue;
        };
        let unread = private[j]
            && fused_in[j].is_none()
            && consumers[j].iter().all(|&c| fused_in[c] == Some(root))
            && read.get(&root).is_some_and(|r| !r.contains(&order[j].id()));
        if unread {
            roles[j] = Role::Member;
        }
    }
    Some(roles)
}

/// The id a group knows an input by: its own, except that scalars held on the host and
/// broadcast (`x * 2.0` creates one per op) are known by their value, so that a chain
/// reading the same constant many times takes it as one input.
#[derive(Default)]
struct Canon {
    ids: HashMap<usize, usize>,
    by_value: HashMap<(Dtype, Vec<usize>, Vec<u8>), usize>,
}

impl Canon {
    fn id(&mut self, a: &Array) -> usize {
        if let Some(&c) = self.ids.get(&a.id()) {
            return c;
        }
        let c = match crate::compile::passes::scalar_bytes(a) {
            Some(bytes) => *self
                .by_value
                .entry((a.dtype(), a.shape().to_vec(), bytes))
                .or_insert(a.id()),
            None => a.id(),
        };
        self.ids.insert(a.id(), c);
        c
    }
}

/// The program of the nodes `m` of `order` (sorted, the root last) and the arrays it
/// reads from outside.
fn program_of(
    order: &[Array],
    m: &[usize],
    canon: &mut Canon,
) -> Option<(FusedProgram, Vec<Array>)> {
    let step_of: HashMap<usize, usize> = m
        .iter()
        .enumerate()
        .map(|(s, &k)| (order[k].id(), s))
        .collect();
    let mut inputs: Vec<Array> = Vec::new();
    let mut input_of: HashMap<usize, usize> = HashMap::new();
    let mut steps = Vec::with_capacity(m.len());
    for &k in m {
        let node = &order[k];
        let st = node.lock();
        let State::Pending(p) = &*st else {
            return None;
        };
        let args = p
            .inputs
            .iter()
            .map(|i| match step_of.get(&i.id()) {
                Some(&s) => FusedArg::Step(s),
                None => FusedArg::Input(*input_of.entry(canon.id(i)).or_insert_with(|| {
                    inputs.push(i.clone());
                    inputs.len() - 1
                })),
            })
            .collect();
        steps.push(FusedStep {
            prim: p.prim.clone(),
            args,
            dtype: node.dtype(),
        });
    }
    let prog = FusedProgram {
        inputs: inputs.iter().map(Array::dtype).collect(),
        steps,
    };
    Some((prog, inputs))
}
