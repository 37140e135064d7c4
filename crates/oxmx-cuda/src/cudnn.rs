//! Convolutions through cuDNN's backend (graph) API (`cudnn_graph.rs` holds its unsafe
//! calls). Tensors are channels-last (MLX's layout; float64 channels-first). A problem's
//! execution plan comes from cuDNN's heuristics once and is kept with its workspace size.

use crate::cudnn_graph::{self, Attr, Desc, Kind};
use crate::device::Allocator;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use oxmx_core::{Error, Result};
use std::collections::HashMap;
use std::sync::Arc;

const OP: &str = "conv";
/// Problems whose algorithm is kept before the cache starts over.
const MAX_PLANS: usize = 512;

/// Element types cuDNN convolves here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    F64,
    F16,
    Bf16,
}

impl Elem {
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
            Elem::F16 | Elem::Bf16 => 2,
        }
    }
    fn data(self) -> sys::cudnnDataType_t {
        use sys::cudnnDataType_t::*;
        match self {
            Elem::F32 => CUDNN_DATA_FLOAT,
            Elem::F64 => CUDNN_DATA_DOUBLE,
            Elem::F16 => CUDNN_DATA_HALF,
            Elem::Bf16 => CUDNN_DATA_BFLOAT16,
        }
    }
    fn compute(self) -> sys::cudnnDataType_t {
        if self == Elem::F64 {
            sys::cudnnDataType_t::CUDNN_DATA_DOUBLE
        } else {
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT
        }
    }
}

/// The forward correlation or one of its gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Forward,
    WeightGrad,
    InputGrad,
}

/// One convolution: x (n, *spatial, c), w (o, *kernel, c / groups), y (n, *out, o);
/// spatial dims are at least two (a 1-d convolution is given with a leading 1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    pub mode: Mode,
    pub elem: Elem,
    pub tf32: bool,
    /// channels-first operands (NCHW / KCRS) instead of channels-last
    pub nchw: bool,
    pub n: usize,
    pub c: usize,
    pub o: usize,
    pub groups: usize,
    pub spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub out: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilation: Vec<usize>,
    pub padding: Vec<usize>,
}

impl Problem {
    fn elems(dims: &[usize]) -> Option<usize> {
        dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
    fn x_dims(&self) -> Vec<usize> {
        [self.n, self.c]
            .iter()
            .chain(&self.spatial)
            .copied()
            .collect()
    }
    fn w_dims(&self) -> Vec<usize> {
        [self.o, self.c / self.groups.max(1)]
            .iter()
            .chain(&self.kernel)
            .copied()
            .collect()
    }
    fn y_dims(&self) -> Vec<usize> {
        [self.n, self.o].iter().chain(&self.out).copied().collect()
    }
    /// Bytes of x, w and y.
    pub fn bytes(&self) -> Option<[usize; 3]> {
        let es = self.elem.size();
        Some([
            Self::elems(&self.x_dims())?.checked_mul(es)?,
            Self::elems(&self.w_dims())?.checked_mul(es)?,
            Self::elems(&self.y_dims())?.checked_mul(es)?,
        ])
    }
}

/// Strides of a tensor whose logical dims are `dims` = (N, C, *S): packed in that order
/// (channels-first), or in the order (N, *S, C) (channels-last).
fn strides(dims: &[usize], channels_first: bool) -> Result<Vec<i64>> {
    let nd = dims.len();
    // the axes from the fastest-varying one on
    let order: Vec<usize> = if channels_first || nd < 3 {
        (0..nd).rev().collect()
    } else {
        std::iter::once(1)
            .chain((2..nd).rev())
            .chain(std::iter::once(0))
            .collect()
    };
    let mut out = vec![0i64; nd];
    let mut step = 1usize;
    for &ax in &order {
        out[ax] = i64::try_from(step).map_err(|_| Error::overflow(OP))?;
        step = step
            .checked_mul(dims[ax])
            .ok_or_else(|| Error::overflow(OP))?;
    }
    Ok(out)
}

fn i64s(v: &[usize]) -> Result<Vec<i64>> {
    v.iter()
        .map(|&d| i64::try_from(d).map_err(|_| Error::overflow(OP)))
        .collect()
}

/// The variant-pack ids of x, w and y.
const UID_X: i64 = 1;
const UID_W: i64 = 2;
const UID_Y: i64 = 3;
/// The operand alignment promised to cuDNN (checked on every call; the allocator's
/// buffers start on 256-byte boundaries).
const ALIGN: u64 = 16;
/// How many engine configurations of each heuristics mode are tried.
const MAX_CONFIGS: usize = 24;

fn tensor(p: &Problem, uid: i64, dims: &[usize]) -> Result<Desc> {
    let d = Desc::new(Kind::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
    d.set_data_type(Attr::CUDNN_ATTR_TENSOR_DATA_TYPE, p.elem.data())?;
    d.set_i64s(Attr::CUDNN_ATTR_TENSOR_DIMENSIONS, &i64s(dims)?)?;
    d.set_i64s(Attr::CUDNN_ATTR_TENSOR_STRIDES, &strides(dims, p.nchw)?)?;
    d.set_i64(Attr::CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)?;
    d.set_i64(Attr::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, ALIGN as i64)?;
    d.finalize()
}

/// The one-operation graph of `p`. (Groups are implied by the filter's channel count.)
fn operation_graph(h: sys::cudnnHandle_t, p: &Problem) -> Result<Desc> {
    let x = tensor(p, UID_X, &p.x_dims())?;
    let w = tensor(p, UID_W, &p.w_dims())?;
    let y = tensor(p, UID_Y, &p.y_dims())?;
    let conv = Desc::new(Kind::CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR)?;
    conv.set_data_type(Attr::CUDNN_ATTR_CONVOLUTION_COMP_TYPE, p.elem.compute())?;
    conv.set_conv_mode(
        Attr::CUDNN_ATTR_CONVOLUTION_CONV_MODE,
        sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
    )?;
    conv.set_i64(
        Attr::CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS,
        i64::try_from(p.spatial.len()).map_err(|_| Error::overflow(OP))?,
    )?;
    conv.set_i64s(Attr::CUDNN_ATTR_CONVOLUTION_DILATIONS, &i64s(&p.dilation)?)?;
    conv.set_i64s(
        Attr::CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
        &i64s(&p.strides)?,
    )?;
    conv.set_i64s(
        Attr::CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS,
        &i64s(&p.padding)?,
    )?;
    conv.set_i64s(
        Attr::CUDNN_ATTR_CONVOLUTION_POST_PADDINGS,
        &i64s(&p.padding)?,
    )?;
    let conv = conv.finalize()?;
    // (kind, alpha, beta, conv, then the three operands' attributes in x, w, y order)
    let (kind, attrs) = match p.mode {
        Mode::Forward => (
            Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
            [
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
            ],
        ),
        Mode::WeightGrad => (
            Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
            [
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
            ],
        ),
        Mode::InputGrad => (
            Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
            [
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
            ],
        ),
    };
    let [alpha, beta, conv_attr, x_attr, w_attr, y_attr] = attrs;
    let op = Desc::new(kind)?;
    if p.elem == Elem::F64 {
        op.set_f64(alpha, 1.0)?;
        op.set_f64(beta, 0.0)?;
    } else {
        op.set_f32(alpha, 1.0)?;
        op.set_f32(beta, 0.0)?;
    }
    op.set_descs(conv_attr, &[&conv])?;
    op.set_descs(x_attr, &[&x])?;
    op.set_descs(w_attr, &[&w])?;
    op.set_descs(y_attr, &[&y])?;
    let op = op.finalize()?;
    let graph = Desc::new(Kind::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
    graph.set_descs(Attr::CUDNN_ATTR_OPERATIONGRAPH_OPS, &[&op])?;
    graph.set_handle(Attr::CUDNN_ATTR_OPERATIONGRAPH_HANDLE, h)?;
    graph.finalize()
}

/// Whether an engine's numerical notes fit `p`: float32 without TF32 takes only plain
/// FMA engines (no tensor cores, as oxmx's matmul), float32/float64 never down-converted
/// inputs; the half types take anything.
fn notes_allowed(p: &Problem, notes: &[u32]) -> bool {
    use sys::cudnnBackendNumericalNote_t as N;
    let has = |n: N| notes.contains(&(n as u32));
    match p.elem {
        Elem::F16 | Elem::Bf16 => true,
        Elem::F32 if !p.tf32 => {
            !has(N::CUDNN_NUMERICAL_NOTE_TENSOR_CORE)
                && !has(N::CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS)
        }
        _ => !has(N::CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS),
    }
}

/// A finalized execution plan for `graph` and its workspace bytes: the first engine
/// configuration of cuDNN's heuristics (instant mode, then its fallback list) that suits
/// `p` and finalizes.
fn execution_plan(h: sys::cudnnHandle_t, p: &Problem, graph: &Desc) -> Result<(Desc, usize)> {
    execution_plan_where(h, graph, &|notes| notes_allowed(p, notes))
        .map_err(|_| Error::unsupported(OP, "A convolution cuDNN has no engine for"))
}

/// A finalized execution plan for `graph` and its workspace bytes: the first engine
/// configuration of cuDNN's heuristics (instant mode, then its fallback list) whose
/// numerical notes `allowed` accepts and that finalizes.
pub(crate) fn execution_plan_where(
    h: sys::cudnnHandle_t,
    graph: &Desc,
    allowed: &dyn Fn(&[u32]) -> bool,
) -> Result<(Desc, usize)> {
    for mode in [
        sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_INSTANT,
        sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_FALLBACK,
    ] {
        let heur = Desc::new(Kind::CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)?;
        heur.set_descs(Attr::CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, &[graph])?;
        heur.set_heur_mode(Attr::CUDNN_ATTR_ENGINEHEUR_MODE, mode)?;
        let Ok(heur) = heur.finalize() else { continue };
        let n = heur
            .count(
                Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS,
                sys::cudnnBackendAttributeType_t::CUDNN_TYPE_BACKEND_DESCRIPTOR,
            )?
            .min(MAX_CONFIGS);
        let configs = heur.get_descs(
            Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS,
            Kind::CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
            n,
        )?;
        for cfg in &configs {
            let engines = cfg.get_descs(
                Attr::CUDNN_ATTR_ENGINECFG_ENGINE,
                Kind::CUDNN_BACKEND_ENGINE_DESCRIPTOR,
                1,
            )?;
            let Some(engine) = engines.first() else {
                continue;
            };
            if !allowed(&cudnn_graph::numerical_notes(engine)?) {
                continue;
            }
            let plan = Desc::new(Kind::CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)?;
            plan.set_handle(Attr::CUDNN_ATTR_EXECUTION_PLAN_HANDLE, h)?;
            plan.set_descs(Attr::CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, &[cfg])?;
            // an engine that cannot run this problem fails here: try the next one
            let Ok(plan) = plan.finalize() else { continue };
            let ws = plan.get_i64(Attr::CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)?;
            let ws = usize::try_from(ws).map_err(|_| Error::runtime(OP, "negative workspace"))?;
            return Ok((plan, ws));
        }
    }
    Err(Error::unsupported(OP, "No cuDNN engine for this graph"))
}

pub(crate) struct Plan {
    pub(crate) plan: Desc,
    pub(crate) ws: usize,
}

pub struct Cudnn {
    pub(crate) handle: sys::cudnnHandle_t,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) alloc: Arc<Allocator>,
    /// fused attention plans, forward and backward (`cudnn_sdpa.rs`); None: cuDNN has no
    /// engine for that problem
    pub(crate) sdpa: HashMap<crate::cudnn_sdpa::SdpaKey, Option<Plan>>,
    pub(crate) sdpa_bwd: HashMap<crate::cudnn_sdpa::SdpaKey, Option<Plan>>,
    /// each attention plan's recent variant packs (reused for the same addresses)
    pub(crate) packs: HashMap<
        (crate::cudnn_sdpa::Pass, crate::cudnn_sdpa::SdpaKey),
        Vec<crate::cudnn_sdpa::PackEntry>,
    >,
    /// attention plans whose engine has no native CUDA graph (run by execute)
    pub(crate) sdpa_no_graph:
        std::collections::HashSet<(crate::cudnn_sdpa::Pass, crate::cudnn_sdpa::SdpaKey)>,
    /// execution plan and workspace bytes per problem (building a plan costs far more
    /// than a small convolution)
    plans: HashMap<Problem, Plan>,
}

// SAFETY: the handle is owned by this value; cuDNN handles may move between threads
// when calls on them are not concurrent, and the backend keeps this behind a Mutex.
unsafe impl Send for Cudnn {}

impl Drop for Cudnn {
    fn drop(&mut self) {
        // the plans refer to the handle: destroy them first
        self.plans.clear();
        self.packs.clear();
        self.sdpa.clear();
        self.sdpa_bwd.clear();
        // SAFETY: created in `new`, destroyed once.
        let _ = unsafe { sys::cudnnDestroy(self.handle) };
    }
}

impl Cudnn {
    /// None when libcudnn cannot be loaded or initialised.
    pub fn new(alloc: &Arc<Allocator>) -> Option<Cudnn> {
        // SAFETY: only tries to dlopen the library by name.
        if !unsafe { sys::is_culib_present() } {
            return None;
        }
        // The bindings' status and attribute enums are cuDNN 9's: another major version
        // could return values outside them. (cudnnGetVersion returns a plain integer.)
        // SAFETY: takes no arguments, reads nothing of ours.
        let version = unsafe { sys::cudnnGetVersion() };
        if !(90000..100000).contains(&version) {
            return None;
        }
        let mut h = std::ptr::null_mut();
        // SAFETY: writes a fresh handle into `h`.
        if unsafe { sys::cudnnCreate(&mut h) } != sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
            return None;
        }
        let c = Cudnn {
            handle: h,
            stream: Arc::clone(&alloc.stream),
            alloc: Arc::clone(alloc),
            plans: HashMap::new(),
            sdpa: HashMap::new(),
            sdpa_bwd: HashMap::new(),
            packs: HashMap::new(),
            sdpa_no_graph: std::collections::HashSet::new(),
        };
        // SAFETY: a live handle and the backend's stream, which outlives it.
        let s = unsafe { sys::cudnnSetStream(c.handle, c.stream.cu_stream() as sys::cudaStream_t) };
        (s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(c)
    }

    fn plan(&mut self, p: &Problem) -> Result<&Plan> {
        if !self.plans.contains_key(p) {
            let graph = operation_graph(self.handle, p)?;
            let (plan, ws) = execution_plan(self.handle, p, &graph)?;
            if self.plans.len() >= MAX_PLANS {
                self.plans.clear();
            }
            self.plans.insert(p.clone(), Plan { plan, ws });
        }
        self.plans
            .get(p)
            .ok_or_else(|| Error::runtime(OP, "plan missing"))
    }

    /// Forward: (x, w) -> y. WeightGrad: (x, dy) -> dw. InputGrad: (dy, w) -> dx. All
    /// three contiguous from their buffer's start.
    pub fn run(
        &mut self,
        p: &Problem,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        out: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let [xb, wb, yb] = p.bytes().ok_or_else(|| Error::overflow(OP))?;
        let (ab, bb, ob) = match p.mode {
            Mode::Forward => (xb, wb, yb),
            Mode::WeightGrad => (xb, yb, wb),
            Mode::InputGrad => (yb, wb, xb),
        };
        if a.len() < ab || b.len() < bb || out.len() < ob {
            return Err(Error::runtime(
                OP,
                "convolution operands smaller than their shapes",
            ));
        }
        let alloc = Arc::clone(&self.alloc);
        let stream = Arc::clone(&self.stream);
        let handle = self.handle;
        let plan = self.plan(p)?;
        let ws = alloc.alloc(OP, plan.ws.max(1))?;
        let stream = &stream;
        let (pa, _ga) = a.device_ptr(stream);
        let (pb, _gb) = b.device_ptr(stream);
        let (po, _go) = out.device_ptr_mut(stream);
        let (pw, _gw) = ws.slice()?.device_ptr(stream);
        let (px, pwt, py) = match p.mode {
            Mode::Forward => (pa, pb, po),
            Mode::WeightGrad => (pa, po, pb),
            Mode::InputGrad => (po, pb, pa),
        };
        if [px, pwt, py, pw].iter().any(|&ptr| ptr % ALIGN != 0) {
            return Err(Error::runtime(OP, "misaligned convolution operand"));
        }
        let pack = Desc::new(Kind::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set_i64s(
            Attr::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
            &[UID_X, UID_W, UID_Y],
        )?;
        pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, &[px, pwt, py])?;
        pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_WORKSPACE, &[pw])?;
        let pack = pack.finalize()?;
        // SAFETY: the plan's graph describes exactly these operands (the plan is keyed
        // by the whole problem), whose byte sizes were checked against their buffers
        // above; the workspace has the plan's size. The buffers stay alive until the
        // stream has run the call (the guards record events; the workspace returns to a
        // cache ordered by the same stream).
        unsafe { cudnn_graph::execute(handle, &plan.plan, &pack) }
    }
}
