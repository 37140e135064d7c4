//! Convolutions through cuDNN's convolution API (every `unsafe` call of it lives here).
//! Tensors are channels-last (cuDNN's NHWC format, MLX's layout); the algorithm for a
//! problem comes from cuDNN's heuristics once and is kept with its workspace size.

use crate::device::Allocator;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use oxmx_core::{Error, Result};
use std::collections::HashMap;
use std::ffi::c_void;
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

fn check(op: &str, s: sys::cudnnStatus_t) -> Result<()> {
    match s {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => Ok(()),
        // cuDNN 9's 3xxx codes are all "not supported" (for this shape, layout, ...)
        e if (e as u32) / 1000 == 3 => Err(Error::Unsupported {
            op: OP.into(),
            msg: format!("cuDNN does not support this convolution ({op}: {e:?})."),
        }),
        e => Err(Error::runtime(OP, format!("cuDNN {op}: {e:?}"))),
    }
}

fn ints(v: &[usize]) -> Result<Vec<i32>> {
    v.iter()
        .map(|&d| {
            i32::try_from(d)
                .map_err(|_| Error::runtime(OP, "convolution larger than cuDNN's 32-bit sizes"))
        })
        .collect()
}

struct Tensor(sys::cudnnTensorDescriptor_t);
struct Filter(sys::cudnnFilterDescriptor_t);
struct Conv(sys::cudnnConvolutionDescriptor_t);

impl Drop for Tensor {
    fn drop(&mut self) {
        // SAFETY: created by cuDNN in `descriptors`, destroyed once.
        let _ = unsafe { sys::cudnnDestroyTensorDescriptor(self.0) };
    }
}
impl Drop for Filter {
    fn drop(&mut self) {
        // SAFETY: as for `Tensor`.
        let _ = unsafe { sys::cudnnDestroyFilterDescriptor(self.0) };
    }
}
impl Drop for Conv {
    fn drop(&mut self) {
        // SAFETY: as for `Tensor`.
        let _ = unsafe { sys::cudnnDestroyConvolutionDescriptor(self.0) };
    }
}

/// The descriptors of a problem: x, w, y and the convolution.
fn descriptors(p: &Problem) -> Result<(Tensor, Filter, Tensor, Conv)> {
    let nhwc = if p.nchw {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
    } else {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
    };
    let (xd, wd, yd) = (ints(&p.x_dims())?, ints(&p.w_dims())?, ints(&p.y_dims())?);
    let (st, dil, pad) = (ints(&p.strides)?, ints(&p.dilation)?, ints(&p.padding)?);
    let groups = i32::try_from(p.groups).map_err(|_| Error::overflow(OP))?;
    let math = match (p.elem, p.tf32) {
        (Elem::F16 | Elem::Bf16, _) | (Elem::F32, true) => {
            sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
        }
        // plain float32 products, as oxmx's matmul (no TF32 unless asked for)
        _ => sys::cudnnMathType_t::CUDNN_FMA_MATH,
    };
    let (mut x, mut w, mut y, mut c) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: each create writes one fresh descriptor into its out-pointer; the owners
    // below destroy them. The set calls read exactly `len` ints from the vectors passed
    // (the dims, strides, dilations and paddings of the problem's rank).
    unsafe {
        check("descriptor", sys::cudnnCreateTensorDescriptor(&mut x))?;
        let x = Tensor(x);
        check("descriptor", sys::cudnnCreateFilterDescriptor(&mut w))?;
        let w = Filter(w);
        check("descriptor", sys::cudnnCreateTensorDescriptor(&mut y))?;
        let y = Tensor(y);
        check("descriptor", sys::cudnnCreateConvolutionDescriptor(&mut c))?;
        let c = Conv(c);
        let (dt, nd) = (p.elem.data(), xd.len() as i32);
        check(
            "input",
            sys::cudnnSetTensorNdDescriptorEx(x.0, nhwc, dt, nd, xd.as_ptr()),
        )?;
        check(
            "weight",
            sys::cudnnSetFilterNdDescriptor(w.0, dt, nhwc, nd, wd.as_ptr()),
        )?;
        check(
            "output",
            sys::cudnnSetTensorNdDescriptorEx(y.0, nhwc, dt, nd, yd.as_ptr()),
        )?;
        check(
            "convolution",
            sys::cudnnSetConvolutionNdDescriptor(
                c.0,
                st.len() as i32,
                pad.as_ptr(),
                st.as_ptr(),
                dil.as_ptr(),
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                p.elem.compute(),
            ),
        )?;
        check("groups", sys::cudnnSetConvolutionGroupCount(c.0, groups))?;
        check("math type", sys::cudnnSetConvolutionMathType(c.0, math))?;
        Ok((x, w, y, c))
    }
}

/// The first algorithm cuDNN's heuristics rate usable: `$perf` is the result struct,
/// `$placeholder` any valid algorithm (the unused slots), `$query(count, results)` asks
/// for up to 8 results.
macro_rules! heuristic_best {
    ($perf:ident, $placeholder:expr, $query:expr) => {{
        let mut results = [sys::$perf {
            algo: $placeholder,
            status: sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS,
            time: 0.0,
            memory: 0,
            determinism: sys::cudnnDeterminism_t::CUDNN_NON_DETERMINISTIC,
            mathType: sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            reserved: [0; 3],
        }; 8];
        let mut count = 0i32;
        check("heuristics", $query(&mut count, results.as_mut_ptr()))?;
        results
            .iter()
            .take(count.clamp(0, 8) as usize)
            .find(|r| r.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS)
            .ok_or_else(|| Error::unsupported(OP, "A convolution cuDNN has no algorithm for"))?
            .algo
    }};
}

struct Plan {
    descs: (Tensor, Filter, Tensor, Conv),
    algo: Algo,
    ws: usize,
}

#[derive(Clone, Copy)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    WeightGrad(sys::cudnnConvolutionBwdFilterAlgo_t),
    InputGrad(sys::cudnnConvolutionBwdDataAlgo_t),
}

pub struct Cudnn {
    handle: sys::cudnnHandle_t,
    stream: Arc<CudaStream>,
    alloc: Arc<Allocator>,
    /// descriptors, algorithm and workspace bytes per problem (creating descriptors
    /// and asking the heuristics cost more than a small convolution)
    plans: HashMap<Problem, Plan>,
}

// SAFETY: the handle is owned by this value; cuDNN handles may move between threads
// when calls on them are not concurrent, and the backend keeps this behind a Mutex.
unsafe impl Send for Cudnn {}

impl Drop for Cudnn {
    fn drop(&mut self) {
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
        // The bindings' status and algorithm enums are cuDNN 9's: another major version
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
        };
        // SAFETY: a live handle and the backend's stream, which outlives it.
        let s = unsafe { sys::cudnnSetStream(c.handle, c.stream.cu_stream() as sys::cudaStream_t) };
        (s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).then_some(c)
    }

    fn plan(&mut self, p: &Problem) -> Result<&Plan> {
        if self.plans.contains_key(p) {
            return self
                .plans
                .get(p)
                .ok_or_else(|| Error::runtime(OP, "plan missing"));
        }
        let d = descriptors(p)?;
        let (x, w, y, c) = &d;
        let h = self.handle;
        let mut ws = 0usize;
        // SAFETY (the heuristics calls below): live descriptors; cuDNN writes at most 8
        // results and their count. (The workspace queries): live descriptors and an
        // algorithm cuDNN listed for them.
        let algo = match p.mode {
            Mode::Forward => {
                let best = heuristic_best!(
                    cudnnConvolutionFwdAlgoPerf_t,
                    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                    |n, r| unsafe {
                        sys::cudnnGetConvolutionForwardAlgorithm_v7(h, x.0, w.0, c.0, y.0, 8, n, r)
                    }
                );
                check("workspace", unsafe {
                    sys::cudnnGetConvolutionForwardWorkspaceSize(
                        h, x.0, w.0, c.0, y.0, best, &mut ws,
                    )
                })?;
                Algo::Forward(best)
            }
            Mode::WeightGrad => {
                let best = heuristic_best!(
                    cudnnConvolutionBwdFilterAlgoPerf_t,
                    sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0,
                    |n, r| unsafe {
                        sys::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                            h, x.0, y.0, c.0, w.0, 8, n, r,
                        )
                    }
                );
                check("workspace", unsafe {
                    sys::cudnnGetConvolutionBackwardFilterWorkspaceSize(
                        h, x.0, y.0, c.0, w.0, best, &mut ws,
                    )
                })?;
                Algo::WeightGrad(best)
            }
            Mode::InputGrad => {
                let best = heuristic_best!(
                    cudnnConvolutionBwdDataAlgoPerf_t,
                    sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                    |n, r| unsafe {
                        sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                            h, w.0, y.0, c.0, x.0, 8, n, r,
                        )
                    }
                );
                check("workspace", unsafe {
                    sys::cudnnGetConvolutionBackwardDataWorkspaceSize(
                        h, w.0, y.0, c.0, x.0, best, &mut ws,
                    )
                })?;
                Algo::InputGrad(best)
            }
        };
        if self.plans.len() >= MAX_PLANS {
            self.plans.clear();
        }
        let plan = Plan { descs: d, algo, ws };
        Ok(self.plans.entry(p.clone()).or_insert(plan))
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
        let (algo, ws_bytes) = (plan.algo, plan.ws);
        let ws = alloc.alloc(OP, ws_bytes.max(1))?;
        let (x, w, y, c) = &plan.descs;
        let stream = &stream;
        let (pa, _ga) = a.device_ptr(stream);
        let (pb, _gb) = b.device_ptr(stream);
        let (po, _go) = out.device_ptr_mut(stream);
        let (pw, _gw) = ws.slice()?.device_ptr(stream);
        let (one32, zero32, one64, zero64) = (1f32, 0f32, 1f64, 0f64);
        let (alpha, beta) = if p.elem == Elem::F64 {
            (
                (&one64) as *const f64 as *const c_void,
                (&zero64) as *const f64 as *const c_void,
            )
        } else {
            (
                (&one32) as *const f32 as *const c_void,
                (&zero32) as *const f32 as *const c_void,
            )
        };
        // SAFETY: the descriptors describe exactly the operands, whose byte sizes were
        // checked against their buffers above; `algo` is the one cuDNN chose for these
        // descriptors (the plan is keyed by the whole problem) and the workspace has the
        // size cuDNN asked for it. The buffers stay alive until the stream has run the
        // call (the guards record events; the workspace returns to a cache ordered by
        // the same stream). alpha/beta point at scalars of the compute type.
        let s = unsafe {
            match algo {
                Algo::Forward(algo) => sys::cudnnConvolutionForward(
                    handle,
                    alpha,
                    x.0,
                    pa as *const c_void,
                    w.0,
                    pb as *const c_void,
                    c.0,
                    algo,
                    pw as *mut c_void,
                    ws_bytes,
                    beta,
                    y.0,
                    po as *mut c_void,
                ),
                Algo::WeightGrad(algo) => sys::cudnnConvolutionBackwardFilter(
                    handle,
                    alpha,
                    x.0,
                    pa as *const c_void,
                    y.0,
                    pb as *const c_void,
                    c.0,
                    algo,
                    pw as *mut c_void,
                    ws_bytes,
                    beta,
                    w.0,
                    po as *mut c_void,
                ),
                Algo::InputGrad(algo) => sys::cudnnConvolutionBackwardData(
                    handle,
                    alpha,
                    w.0,
                    pb as *const c_void,
                    y.0,
                    pa as *const c_void,
                    c.0,
                    algo,
                    pw as *mut c_void,
                    ws_bytes,
                    beta,
                    x.0,
                    po as *mut c_void,
                ),
            }
        };
        check("convolution", s)
    }
}
