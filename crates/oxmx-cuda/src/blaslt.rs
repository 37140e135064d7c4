//! Matmul through cuBLASLt (every `unsafe` call of it lives here). A plan (descriptors,
//! layouts and the heuristic's algorithm) is made once per problem shape and reused, so
//! repeated matmuls of one shape pay only for the launch.

use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use oxmx_core::{Dtype, Error, Result};
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

const OP: &str = "matmul";

/// One operand in cuBLASLt's column-major terms: a `rows × cols` matrix (before the
/// optional transpose) with leading dimension `ld`, `batch_stride` elements between
/// batches (0 broadcasts), starting `offset` elements into its buffer.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Operand {
    pub trans: bool,
    pub rows: u64,
    pub cols: u64,
    pub ld: i64,
    pub batch_stride: i64,
    pub offset: usize,
}

/// `D (m × n, col-major, ld d_ld ≥ m, batches d_ld·n apart) = op(A) · op(B)` over
/// `batch` matrices.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Problem {
    pub dtype: Dtype,
    pub tf32: bool,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub d_ld: u64,
    pub batch: i32,
    pub a: Operand,
    pub b: Operand,
}

#[derive(Hash, PartialEq, Eq)]
struct Key {
    p: Problem,
    align: [u32; 3],
}

struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    layouts: [sys::cublasLtMatrixLayout_t; 3],
    algo: sys::cublasLtMatmulAlgo_t,
}

// SAFETY: the plan's handles are opaque descriptors owned by this value only; cuBLASLt
// allows using them from any thread, and the plan map is behind a Mutex.
unsafe impl Send for Plan {}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: each handle was created by cuBLASLt for this plan and is destroyed once.
        unsafe {
            let _ = lt::destroy_matmul_desc(self.desc);
            for l in self.layouts {
                let _ = lt::destroy_matrix_layout(l);
            }
        }
    }
}

/// A cuBLASLt handle with its workspace and plan cache.
pub struct BlasLt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    stream: Arc<CudaStream>,
    plans: Mutex<HashMap<Key, Plan>>,
}

// SAFETY: the handle is used only under the `plans` lock or for launches on one stream;
// cuBLASLt handles are thread-safe for concurrent matmul calls.
unsafe impl Send for BlasLt {}
// SAFETY: as above.
unsafe impl Sync for BlasLt {}

impl Drop for BlasLt {
    fn drop(&mut self) {
        if let Ok(mut p) = self.plans.lock() {
            p.clear();
        }
        // SAFETY: the handle was created in `new` and is destroyed once.
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

fn err(e: impl std::fmt::Debug) -> Error {
    Error::runtime(OP, format!("cuBLASLt: {e:?}"))
}

/// (matrix type, compute type, scale type) of a dtype.
fn types(d: Dtype, tf32: bool) -> Option<(sys::cudaDataType, sys::cublasComputeType_t)> {
    use sys::cublasComputeType_t as C;
    use sys::cudaDataType_t as T;
    Some(match d {
        Dtype::Float32 if tf32 => (T::CUDA_R_32F, C::CUBLAS_COMPUTE_32F_FAST_TF32),
        Dtype::Float32 => (T::CUDA_R_32F, C::CUBLAS_COMPUTE_32F),
        Dtype::Float16 => (T::CUDA_R_16F, C::CUBLAS_COMPUTE_32F),
        Dtype::Bfloat16 => (T::CUDA_R_16BF, C::CUBLAS_COMPUTE_32F),
        Dtype::Float64 => (T::CUDA_R_64F, C::CUBLAS_COMPUTE_64F),
        Dtype::Complex64 => (T::CUDA_C_32F, C::CUBLAS_COMPUTE_32F),
        _ => return None,
    })
}

/// Elements an operand reaches past its buffer start (checked), for the bounds check.
fn reach(o: &Operand, batch: i32) -> Option<u64> {
    let (r, c) = (o.rows, o.cols);
    if r == 0 || c == 0 || o.ld < 0 || (o.ld as u64) < r || o.batch_stride < 0 || batch < 1 {
        return None;
    }
    let last_batch = (batch as u64 - 1).checked_mul(o.batch_stride as u64)?;
    let in_matrix = (c - 1).checked_mul(o.ld as u64)?.checked_add(r)?;
    (o.offset as u64)
        .checked_add(last_batch)?
        .checked_add(in_matrix)
}

fn alignment(ptr: u64) -> u32 {
    1u32 << ptr.trailing_zeros().min(8)
}

impl BlasLt {
    /// None when libcublasLt cannot be loaded.
    pub fn new(stream: &Arc<CudaStream>) -> Result<Option<BlasLt>> {
        // SAFETY: only tries to dlopen the library by name.
        if !unsafe { sys::is_culib_present() } {
            return Ok(None);
        }
        let handle = lt::create_handle().map_err(err)?;
        let workspace = match crate::ffi::alloc_bytes(stream, WORKSPACE) {
            Ok(w) => w,
            Err(e) => {
                // SAFETY: created just above, destroyed once.
                let _ = unsafe { lt::destroy_handle(handle) };
                return Err(err(e));
            }
        };
        Ok(Some(BlasLt {
            handle,
            workspace,
            stream: Arc::clone(stream),
            plans: Mutex::new(HashMap::new()),
        }))
    }

    fn plan(&self, p: &Problem, align: [u32; 3]) -> Result<Plan> {
        let (mt, ct) = types(p.dtype, p.tf32).ok_or_else(|| err(format!("dtype {}", p.dtype)))?;
        let st = match p.dtype {
            Dtype::Float64 => sys::cudaDataType_t::CUDA_R_64F,
            Dtype::Complex64 => sys::cudaDataType_t::CUDA_C_32F,
            _ => sys::cudaDataType_t::CUDA_R_32F,
        };
        let desc = lt::create_matmul_desc(ct, st).map_err(err)?;
        let mut plan = Plan {
            desc,
            layouts: [std::ptr::null_mut(); 3],
            algo: sys::cublasLtMatmulAlgo_t { data: [0; 8] },
        };
        let c = Operand {
            trans: false,
            rows: p.m,
            cols: p.n,
            ld: p.d_ld as i64,
            batch_stride: (p.d_ld * p.n) as i64,
            offset: 0,
        };
        for (i, o) in [p.a, p.b, c].iter().enumerate() {
            let l = lt::create_matrix_layout(mt, o.rows, o.cols, o.ld).map_err(err)?;
            plan.layouts[i] = l;
            if p.batch > 1 {
                // SAFETY: `l` is a live layout; the attribute values are an i32 and an i64
                // passed by pointer with their sizes, as cuBLASLt documents.
                unsafe {
                    use sys::cublasLtMatrixLayoutAttribute_t as A;
                    lt::set_matrix_layout_attribute(
                        l,
                        A::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                        (&p.batch) as *const i32 as *const c_void,
                        std::mem::size_of::<i32>(),
                    )
                    .map_err(err)?;
                    lt::set_matrix_layout_attribute(
                        l,
                        A::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        (&o.batch_stride) as *const i64 as *const c_void,
                        std::mem::size_of::<i64>(),
                    )
                    .map_err(err)?;
                }
            }
        }
        let pref = lt::create_matmul_pref().map_err(err)?;
        // SAFETY: live descriptors; each attribute value is passed by pointer with its
        // exact size (i32 transpose flags, u64 workspace size, u32 alignments).
        let heuristic = unsafe {
            use sys::cublasLtMatmulDescAttributes_t as D;
            use sys::cublasLtMatmulPreferenceAttributes_t as P;
            let r = (|| {
                for (attr, t) in [
                    (D::CUBLASLT_MATMUL_DESC_TRANSA, p.a.trans),
                    (D::CUBLASLT_MATMUL_DESC_TRANSB, p.b.trans),
                ] {
                    // cublasOperation_t is a C enum: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
                    let v: i32 = i32::from(t);
                    lt::set_matmul_desc_attribute(
                        plan.desc,
                        attr,
                        (&v) as *const i32 as *const c_void,
                        std::mem::size_of::<i32>(),
                    )?;
                }
                let ws = WORKSPACE as u64;
                lt::set_matmul_pref_attribute(
                    pref,
                    P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    (&ws) as *const u64 as *const c_void,
                    std::mem::size_of::<u64>(),
                )?;
                let attrs = [
                    P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                    P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                    P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                ];
                for (attr, al) in attrs
                    .into_iter()
                    .zip([align[0], align[1], align[2], align[2]])
                {
                    lt::set_matmul_pref_attribute(
                        pref,
                        attr,
                        (&al) as *const u32 as *const c_void,
                        std::mem::size_of::<u32>(),
                    )?;
                }
                lt::get_matmul_algo_heuristic(
                    self.handle,
                    plan.desc,
                    plan.layouts[0],
                    plan.layouts[1],
                    plan.layouts[2],
                    plan.layouts[2],
                    pref,
                )
            })();
            let _ = lt::destroy_matmul_pref(pref);
            r.map_err(err)?
        };
        plan.algo = heuristic.algo;
        Ok(plan)
    }

    /// Runs `p` reading `a`/`b` and writing `d` (batches of n columns, `d_ld` apart).
    pub fn matmul(
        &self,
        p: &Problem,
        a: &CudaSlice<u8>,
        b: &CudaSlice<u8>,
        d: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let _span = crate::prof::span(crate::prof::Phase::Blas);
        let es = p.dtype.size() as u64;
        let fits = |o: &Operand, len: usize| {
            reach(o, p.batch).is_some_and(|r| r.saturating_mul(es) <= len as u64)
        };
        let d_elems = p
            .d_ld
            .checked_mul(p.n)
            .and_then(|v| v.checked_mul(p.batch as u64))
            .ok_or_else(|| Error::overflow(OP))?;
        let a_rows = if p.a.trans { p.a.cols } else { p.a.rows };
        let b_cols = if p.b.trans { p.b.rows } else { p.b.cols };
        if !fits(&p.a, a.len())
            || !fits(&p.b, b.len())
            || d_elems.saturating_mul(es) > d.len() as u64
            || a_rows != p.m
            || p.d_ld < p.m
            || i64::try_from(p.d_ld.saturating_mul(p.n)).is_err()
            || b_cols != p.n
        {
            return Err(Error::runtime(
                OP,
                "matmul operands do not fit their buffers",
            ));
        }
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = b.device_ptr(&self.stream);
        let (pd, _rd) = d.device_ptr_mut(&self.stream);
        let pa = pa + p.a.offset as u64 * es;
        let pb = pb + p.b.offset as u64 * es;
        // Offsets matter only through the pointers' alignment, which is in the key.
        let mut shape_only = *p;
        shape_only.a.offset = 0;
        shape_only.b.offset = 0;
        let key = Key {
            p: shape_only,
            align: [alignment(pa), alignment(pb), alignment(pd)],
        };
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::runtime(OP, "cuBLASLt plan cache poisoned"))?;
        if !plans.contains_key(&key) {
            if plans.len() >= MAX_PLANS {
                plans.clear();
            }
            let plan = self.plan(p, key.align)?;
            plans.insert(
                Key {
                    p: shape_only,
                    align: key.align,
                },
                plan,
            );
        }
        let plan = plans
            .get(&key)
            .ok_or_else(|| Error::runtime(OP, "cuBLASLt plan missing"))?;
        // alpha = 1, beta = 0 in the scale type (complex: real part 1, imaginary 0)
        let (one32, zero32, one64, zero64) = ([1f32, 0.0], [0f32; 2], 1f64, 0f64);
        let (alpha, beta) = if p.dtype == Dtype::Float64 {
            (
                (&one64) as *const f64 as *const c_void,
                (&zero64) as *const f64 as *const c_void,
            )
        } else {
            (
                one32.as_ptr() as *const c_void,
                zero32.as_ptr() as *const c_void,
            )
        };
        let (pw, _rw) = self.workspace.device_ptr(&self.stream);
        // SAFETY: the plan describes exactly the operands checked above: every element
        // A and B reach lies inside their buffers (`reach`), D holds batch·m·n elements,
        // the alignments the plan was chosen for are the pointers' own, and all buffers
        // stay alive until the stream has run the call (the guards record events).
        unsafe {
            lt::matmul(
                self.handle,
                plan.desc,
                alpha,
                beta,
                pa as *const c_void,
                plan.layouts[0],
                pb as *const c_void,
                plan.layouts[1],
                pd as *const c_void,
                plan.layouts[2],
                pd as *mut c_void,
                plan.layouts[2],
                &plan.algo,
                pw as *mut c_void,
                WORKSPACE,
                self.stream.cu_stream() as sys::cudaStream_t,
            )
        }
        .map_err(err)
    }
}

/// cuBLASLt workspace (NVIDIA recommends 32 MiB on Hopper).
const WORKSPACE: usize = 32 << 20;
/// Plans kept before the cache starts over (many distinct shapes, e.g. varying lengths).
const MAX_PLANS: usize = 1024;
