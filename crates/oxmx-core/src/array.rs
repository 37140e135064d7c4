//! The lazy array: an immutable handle to a graph node. A node is either pending (a
//! primitive and its inputs) or ready (data). Evaluation turns pending nodes ready and
//! drops their inputs, so the graph is freed as it is computed.

use crate::device::Stream;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::memory::Buffer;
use crate::primitive::Primitive;
use crate::shape::{contiguous_strides, is_row_contiguous, size_of, Shape, Strides};
use std::sync::{Arc, Mutex, MutexGuard};

/// Evaluated storage of an array: a shared buffer plus an element offset and element
/// strides. Invariant (checked by [`ArrayData::new`]): every element the shape and
/// strides reach lies inside the buffer.
#[derive(Clone, Debug)]
pub struct ArrayData {
    pub buffer: Arc<Buffer>,
    pub offset: usize,
    pub strides: Strides,
}

impl ArrayData {
    /// A contiguous array covering the whole buffer from offset 0.
    pub fn contiguous(buffer: Buffer, shape: &[usize]) -> ArrayData {
        ArrayData {
            buffer: Arc::new(buffer),
            offset: 0,
            strides: contiguous_strides(shape),
        }
    }

    /// Validated view construction.
    pub fn new(
        op: &str,
        buffer: Arc<Buffer>,
        offset: usize,
        strides: Strides,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let (lo, hi) = reach(shape, &strides, offset).ok_or_else(|| Error::overflow(op))?;
        let n_elems = buffer.nbytes() / dtype.size();
        if size_of(shape) > 0 && (lo < 0 || hi >= n_elems as i128) {
            return Err(Error::value(op, "View reaches outside its buffer."));
        }
        Ok(ArrayData {
            buffer,
            offset,
            strides,
        })
    }

    pub fn is_contiguous(&self, shape: &[usize]) -> bool {
        is_row_contiguous(shape, &self.strides)
    }
}

/// Lowest and highest element offset reached by (shape, strides, offset).
pub fn reach(shape: &[usize], strides: &[isize], offset: usize) -> Option<(i128, i128)> {
    let mut lo = offset as i128;
    let mut hi = offset as i128;
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 0 {
            return Some((0, 0));
        }
        let span = (d as i128 - 1).checked_mul(s as i128)?;
        if span < 0 {
            lo = lo.checked_add(span)?;
        } else {
            hi = hi.checked_add(span)?;
        }
    }
    Some((lo, hi))
}

pub struct Pending {
    pub prim: Primitive,
    pub inputs: Vec<Array>,
    pub stream: Stream,
}

pub enum State {
    Pending(Pending),
    Ready(ArrayData),
    /// The data was handed to the one consumer that could still reach this array, to be
    /// overwritten in place (buffer donation). Nothing else can observe this state.
    Donated,
    /// Evaluated while a function transform that it depends on was running: the data,
    /// plus the primitive and inputs that transform still needs to walk the graph.
    Traced(ArrayData, Pending),
    /// Computed by an evaluation that then failed: a backend reported an error of work it
    /// had queued (an out-of-bounds index found on the GPU) after this array's data was
    /// made from that work, so the data is dropped. Reading it, or computing from it,
    /// raises that error again (as recomputing a node that failed at once would).
    Failed(Error),
}

/// A running function transform (grad, jvp, vmap, compile). Arrays computed from its
/// inputs keep their history when evaluated until the transform ends.
#[derive(Debug, Default)]
pub struct Trace {
    active: std::sync::atomic::AtomicBool,
    /// Evaluating arrays of this trace is an error (vmap and compile trace with
    /// placeholder values, as in MLX).
    pub no_eval: bool,
    /// A shapeless compile or export traces: ops whose result depends on an input's
    /// sizes (mean, var) record that dependence as a node instead of a constant.
    pub shapeless: bool,
}

impl Trace {
    pub fn new() -> Arc<Trace> {
        Self::with_eval(true)
    }
    pub fn with_eval(allowed: bool) -> Arc<Trace> {
        Arc::new(Trace {
            active: std::sync::atomic::AtomicBool::new(true),
            no_eval: !allowed,
            shapeless: false,
        })
    }
    /// A trace that forbids evaluation and records shape-dependent values as nodes.
    pub fn shapeless() -> Arc<Trace> {
        Arc::new(Trace {
            active: std::sync::atomic::AtomicBool::new(true),
            no_eval: true,
            shapeless: true,
        })
    }
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Acquire)
    }
    pub fn end(&self) {
        self.active
            .store(false, std::sync::atomic::Ordering::Release)
    }
}

pub struct Node {
    pub shape: Shape,
    pub dtype: Dtype,
    state: Mutex<State>,
    /// The active transforms this array depends on (empty outside transforms).
    traces: Vec<Arc<Trace>>,
}

/// The active traces among `inputs` (each once).
fn active_traces(inputs: &[Array]) -> Vec<Arc<Trace>> {
    let mut out: Vec<Arc<Trace>> = Vec::new();
    for i in inputs {
        for t in &i.0.traces {
            if t.is_active() && !out.iter().any(|o| Arc::ptr_eq(o, t)) {
                out.push(Arc::clone(t));
            }
        }
    }
    out
}

/// An immutable, cheaply clonable handle to a lazy array.
#[derive(Clone)]
pub struct Array(pub(crate) Arc<Node>);

impl Array {
    pub fn from_data(shape: Shape, dtype: Dtype, data: ArrayData) -> Array {
        Array(Arc::new(Node {
            shape,
            dtype,
            state: Mutex::new(State::Ready(data)),
            traces: Vec::new(),
        }))
    }

    /// A pending node. `shape` must already be validated by the op.
    pub fn pending(shape: Shape, dtype: Dtype, prim: Primitive, inputs: Vec<Array>) -> Array {
        let traces = active_traces(&inputs);
        Self::pending_traced(shape, dtype, prim, inputs, traces)
    }

    /// A pending node that belongs to `traces` (a transform's input leaf).
    pub fn pending_traced(
        shape: Shape,
        dtype: Dtype,
        prim: Primitive,
        inputs: Vec<Array>,
        traces: Vec<Arc<Trace>>,
    ) -> Array {
        let stream = crate::device::current_stream();
        Array(Arc::new(Node {
            shape,
            dtype,
            state: Mutex::new(State::Pending(Pending {
                prim,
                inputs,
                stream,
            })),
            traces,
        }))
    }

    /// The active traces of this array.
    pub fn traces(&self) -> Vec<Arc<Trace>> {
        self.0
            .traces
            .iter()
            .filter(|t| t.is_active())
            .cloned()
            .collect()
    }

    /// Whether an active shapeless trace depends on this array.
    pub fn in_shapeless_trace(&self) -> bool {
        self.0.traces.iter().any(|t| t.shapeless && t.is_active())
    }

    /// Whether an active transform that forbids evaluation depends on this array.
    pub fn eval_forbidden(&self) -> bool {
        self.0.traces.iter().any(|t| t.no_eval && t.is_active())
    }

    /// Whether an active transform depends on this array.
    pub fn is_traced(&self) -> bool {
        self.0.traces.iter().any(|t| t.is_active())
    }

    /// The primitive and inputs that produced this array, while they are known
    /// (pending, or evaluated under an active transform).
    pub fn history(&self) -> Option<(Primitive, Vec<Array>)> {
        match &*self.lock() {
            State::Pending(p) | State::Traced(_, p) => Some((p.prim.clone(), p.inputs.clone())),
            _ => None,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }
    pub fn dtype(&self) -> Dtype {
        self.0.dtype
    }
    pub fn size(&self) -> usize {
        size_of(&self.0.shape)
    }
    pub fn nbytes(&self) -> usize {
        self.size().saturating_mul(self.dtype().size())
    }
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
    pub fn same(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.0.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn is_evaluated(&self) -> bool {
        matches!(&*self.lock(), State::Ready(_) | State::Traced(..))
    }

    /// The primitive and inputs of a pending array (None once evaluated).
    pub fn pending_parts(&self) -> Option<(Primitive, Vec<Array>)> {
        match &*self.lock() {
            State::Pending(p) => Some((p.prim.clone(), p.inputs.clone())),
            _ => None,
        }
    }

    /// Evaluated data, evaluating first if needed.
    pub fn data(&self) -> Result<ArrayData> {
        crate::eval::eval(std::slice::from_ref(self))?;
        let d = match &*self.lock() {
            State::Ready(d) | State::Traced(d, _) => d.clone(),
            State::Failed(e) => return Err(e.clone()),
            _ => return Err(Error::runtime("eval", "Array could not be evaluated.")),
        };
        // Host readers get host bytes (computed on a device: downloaded once).
        d.buffer.ensure_host("eval")?;
        Ok(d)
    }

    /// Ready data if evaluated (no evaluation).
    pub fn ready_data(&self) -> Option<ArrayData> {
        match &*self.lock() {
            State::Ready(d) | State::Traced(d, _) => Some(d.clone()),
            _ => None,
        }
    }

    pub(crate) fn strong_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// Bytes of the buffer backing this array, if evaluated.
    pub fn buffer_size(&self) -> Option<usize> {
        self.ready_data().map(|d| d.buffer.nbytes())
    }
}

impl State {
    pub(crate) fn take_inputs(&mut self) -> Vec<Array> {
        match self {
            State::Pending(p) | State::Traced(_, p) => std::mem::take(&mut p.inputs),
            _ => Vec::new(),
        }
    }
}

/// Dropping a long chain must not recurse: unlink inputs into a work list first.
impl Drop for Node {
    fn drop(&mut self) {
        let state = match self.state.get_mut() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut stack = state.take_inputs();
        while let Some(a) = stack.pop() {
            if let Some(mut node) = Arc::into_inner(a.0) {
                let st = match node.state.get_mut() {
                    Ok(s) => s,
                    Err(p) => p.into_inner(),
                };
                stack.extend(st.take_inputs());
            }
        }
    }
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array(shape={:?}, dtype={})", self.shape(), self.dtype())
    }
}
