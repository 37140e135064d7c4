//! oxmx-cuda: the CUDA backend. The CUDA libraries are loaded at run time, so the same
//! binary works where there is no GPU: `CudaBackend::detect` then returns `None` and never
//! panics. Kernels are CUDA C generated per op and dtype, compiled by NVRTC on first use
//! (`kernels.rs`); matmul goes through cuBLAS. Arrays move between host and device by
//! themselves: inputs that live on the host are uploaded once (the copy is kept on the
//! buffer), outputs stay on the device until something reads them on the host.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod blaslt;
mod collective;
mod conv;
mod copy;
#[allow(unsafe_code)]
mod cudnn;
#[allow(unsafe_code)]
mod cudnn_graph;
#[allow(unsafe_code)]
pub mod cudnn_sdpa;
#[allow(unsafe_code)]
mod cufft;
#[allow(unsafe_code)]
mod cusolver;
pub mod device;
mod disk_cache;
mod erfinv;
mod fast;
#[allow(unsafe_code)]
pub mod ffi;
mod fft;
mod flash;
mod fused;
mod gather;
pub mod kernels;
mod linalg;
mod lt_align;
#[allow(unsafe_code)]
pub mod nccl;
#[cfg(test)]
mod nvrtc_check;
pub mod prof;
mod quantized;
mod quantized_gather;
mod scan_sort;
mod sdpa_strided;
mod strided_walk;
mod user_kernel;
mod vector_walk;

use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, LaunchConfig};
use device::{Allocator, CudaMem};
use ffi::{Meta, RedMeta, MAX_DIMS};
use oxmx_core::backend::{Backend, Input};
use oxmx_core::device::DeviceType;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::Primitive;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::Arc;

pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    pub alloc: Arc<Allocator>,
    compiler: kernels::Compiler,
    blas: std::sync::OnceLock<std::result::Result<blaslt::BlasLt, String>>,
    /// cuFFT, loaded on the first FFT (None: the library is missing).
    cufft: std::sync::OnceLock<Option<cufft::CuFft>>,
    /// cuSOLVER, loaded on the first factorization (None: the library is missing).
    cusolver: std::sync::OnceLock<Option<std::sync::Mutex<cusolver::Solver>>>,
    /// cuDNN, loaded on the first convolution (None: the library is missing).
    cudnn: std::sync::OnceLock<Option<std::sync::Mutex<cudnn::Cudnn>>>,
    /// Where the C library's `logf` differs from `log` rounded to float (erfinv.rs),
    /// built on the first erfinv.
    logf_table: std::sync::OnceLock<std::result::Result<erfinv::LogfTable, String>>,
    /// (multiprocessors, opt-in shared memory per block), read once from the driver.
    limits: std::sync::OnceLock<(usize, usize)>,
    /// The last operand padded for cuBLASLt, while its source lives (lt_align.rs).
    pad_cache: lt_align::PadCache,
    /// Row statistics of cuDNN attention forwards, for their backward (cudnn_sdpa.rs).
    sdpa_stats: cudnn_sdpa::SdpaStats,
    /// Compiled fused kernels by program and layout (fused.rs).
    fused_fns: fused::FusedFunctions,
    /// Error words of index-checking launches not yet read (gather.rs `defer_check`).
    deferred: std::sync::Mutex<Vec<gather::DeferredCheck>>,
    /// TF32 tensor cores for float32 matmul: opt-in (OXMX_CUDA_ALLOW_TF32=1).
    tf32: bool,
    /// No host fallback: unsupported ops fail (OXMX_CUDA_STRICT=1, for tests).
    strict: bool,
    name: String,
}

fn quietly<T>(f: impl FnOnce() -> Option<T> + std::panic::UnwindSafe) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(f).ok().flatten();
    std::panic::set_hook(hook);
    r
}

/// The dims of a reduction input as (reduced?, length, stride), kept dims first, with
/// neighbouring dims of the same kind merged where their strides allow.
fn split_collapsed(
    shape: &[usize],
    strides: &[isize],
    axes: &[usize],
) -> Vec<(bool, usize, isize)> {
    let mut out = Vec::new();
    for inner in [false, true] {
        let (s, st): (Vec<usize>, Vec<isize>) = shape
            .iter()
            .zip(strides)
            .enumerate()
            .filter(|(d, _)| axes.contains(d) == inner)
            .map(|(_, (&l, &s))| (l, s))
            .unzip();
        let (cs, cst) = collapse_dims(&s, &[&st]);
        let cst0 = cst.into_iter().next().unwrap_or_default();
        out.extend(cs.into_iter().zip(cst0).map(|(l, s)| (inner, l, s)));
    }
    out
}

/// The reduction layout of `x` over `axes` (kept dims outer, reduced dims inner, each
/// collapsed) and the number of reduced elements per output.
fn red_meta(op: &str, x: &Input, axes: &[usize]) -> Result<(RedMeta, usize)> {
    let mut m = RedMeta {
        offset: x.data.offset as i64,
        ..Default::default()
    };
    let (mut no, mut ni, mut inner_n) = (0usize, 0usize, 1usize);
    for (is_inner, len, st) in split_collapsed(&x.shape, &x.data.strides, axes) {
        let (count, shapes, strides) = if is_inner {
            inner_n *= len;
            (&mut ni, &mut m.inner_shape, &mut m.inner_strides)
        } else {
            (&mut no, &mut m.outer_shape, &mut m.outer_strides)
        };
        if *count >= MAX_DIMS {
            return Err(unsupported(
                op,
                "A reduction over more than 8 non-contiguous dimensions",
            ));
        }
        shapes[*count] = len as i64;
        strides[*count] = st as i64;
        *count += 1;
    }
    m.outer_ndim = no as i64;
    m.inner_ndim = ni as i64;
    m.inner_n = inner_n as i64;
    Ok((m, inner_n))
}

/// Rows of at most this many contiguous elements are reduced by groups of lanes
/// (`reduce_groups`), longer ones by a block each.
const SHORT_ROW: usize = 256;

/// The walk of a reduction kernel (`reduce_passes`): along contiguous or strided rows
/// (`vec`: 4-element loads), or down columns.
#[derive(Clone, Copy, Debug)]
enum RedKernel {
    Rows { vec: bool },
    Columns,
}

fn red_cfg(blocks: u32, chunks: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks, chunks, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// An array over a fresh device output buffer of `nbytes`.
/// The collapsed `cshape` and each input's strides (`cstrides[k + 1]`; entry 0 is the
/// output's) and offset, written into a kernel meta's arrays.
pub(crate) fn fill_layout(
    cshape: &[usize],
    cstrides: &[Vec<isize>],
    ins: &[Input],
    shape: &mut [i64],
    strides: &mut [[i64; MAX_DIMS]],
    offset: &mut [i64],
) {
    for (d, &v) in shape.iter_mut().zip(cshape) {
        *d = v as i64;
    }
    for (k, x) in ins.iter().enumerate() {
        if let (Some(o), Some(st), Some(cs)) =
            (offset.get_mut(k), strides.get_mut(k), cstrides.get(k + 1))
        {
            *o = x.data.offset as i64;
            for (d, &v) in st.iter_mut().zip(cs) {
                *d = v as i64;
            }
        }
    }
}

/// The walk of an elementwise kernel over a layout of several collapsed dimensions
/// (`cstrides[0]` is the output's): four outputs per thread along rows where the
/// operands allow it, else the unrolled strided walk.
fn strided_walk_for(
    cshape: &[usize],
    cstrides: &[Vec<isize>],
    ins: &[Input],
    scalars: &[bool],
    n: usize,
) -> kernels::Walk {
    let (ndim, narrow) = (cshape.len(), u32::try_from(n).is_ok());
    let operands: Vec<Option<(&[isize], i64)>> = ins
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let by_value = scalars.get(k).copied().unwrap_or(false);
            let st = cstrides.get(k + 1).filter(|_| !by_value)?;
            Some((st.as_slice(), x.data.offset as i64))
        })
        .collect();
    match strided_walk::rows4_mask(cshape, &operands) {
        Some(unit) => kernels::Walk::Rows4 { ndim, narrow, unit },
        None => kernels::Walk::Strided { ndim, narrow },
    }
}

/// The bytes (zero-extended to 64 bits) of an input that is one value held on the host
/// and seen at every position (a 0-d or broadcast scalar), if it is one.
pub(crate) fn host_scalar(x: &Input) -> Option<u64> {
    let buf = &x.data.buffer;
    let es = x.dtype.size();
    // a buffer with a host copy never changes (memory.rs), even once uploaded: a
    // constant used again keeps being passed by value
    if !buf.on_host() || es > 8 {
        return None;
    }
    let single = x
        .shape
        .iter()
        .zip(&x.data.strides)
        .all(|(&len, &st)| len <= 1 || st == 0);
    if !single {
        return None;
    }
    let start = x.data.offset.checked_mul(es)?;
    let bytes = buf.bytes().get(start..start.checked_add(es)?)?;
    let mut v = [0u8; 8];
    v[..es].copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

/// Whether the elementwise output may be written over input `x`: the engine donated it,
/// this is the only reference to its buffer, it lives on the device only (a host copy
/// would go stale), and it is a contiguous array of the output's dtype and size.
fn donatable_for(x: &Input, shape: &[usize], dtype: Dtype) -> bool {
    x.donatable
        && x.dtype == dtype
        && x.shape == shape
        && x.data.offset == 0
        && oxmx_core::shape::is_row_contiguous(&x.shape, &x.data.strides)
        && size_of(shape).checked_mul(dtype.size()) == Some(x.data.buffer.nbytes())
        && Arc::strong_count(&x.data.buffer) == 1
        && Arc::weak_count(&x.data.buffer) == 0
        && !x.data.buffer.on_host()
        && x.data
            .buffer
            .device()
            .is_some_and(|d| d.as_any().is::<CudaMem>())
}

fn on_device(out: device::CudaMem, nbytes: usize, shape: &[usize]) -> ArrayData {
    ArrayData::contiguous(Buffer::from_device(Box::new(out), nbytes), shape)
}

fn unsupported(op: &str, what: impl std::fmt::Display) -> Error {
    Error::Unsupported {
        op: op.to_string(),
        msg: format!("{what} is not implemented on the GPU yet."),
    }
}

impl CudaBackend {
    /// The first GPU, if the driver, NVRTC and a device are present (never panics).
    pub fn detect() -> Option<Arc<CudaBackend>> {
        if std::env::var_os("OXMX_DISABLE_GPU").is_some() {
            return None;
        }
        quietly(|| {
            #[allow(unsafe_code)]
            // SAFETY: these only try to open the shared libraries (dlopen) by name.
            let present = unsafe {
                cudarc::driver::sys::is_culib_present() && cudarc::nvrtc::sys::is_culib_present()
            };
            if !present {
                return None;
            }
            if CudaContext::device_count().ok()? < 1 {
                return None;
            }
            let ctx = CudaContext::new(0).ok()?;
            let alloc = Allocator::new(&ctx).ok()?;
            let name = ctx.name().unwrap_or_else(|_| "CUDA GPU".into());
            Some(Arc::new(CudaBackend {
                compiler: kernels::Compiler::new(Arc::clone(&ctx)),
                ctx,
                alloc,
                blas: std::sync::OnceLock::new(),
                cufft: std::sync::OnceLock::new(),
                cusolver: std::sync::OnceLock::new(),
                cudnn: std::sync::OnceLock::new(),
                logf_table: std::sync::OnceLock::new(),
                limits: std::sync::OnceLock::new(),
                pad_cache: lt_align::PadCache::default(),
                sdpa_stats: cudnn_sdpa::SdpaStats::default(),
                fused_fns: fused::FusedFunctions::default(),
                deferred: std::sync::Mutex::new(Vec::new()),
                tf32: std::env::var("OXMX_CUDA_ALLOW_TF32").is_ok_and(|v| v == "1"),
                strict: std::env::var("OXMX_CUDA_STRICT").is_ok_and(|v| v == "1"),
                name,
            }))
        })
    }

    /// Joins an NCCL group as `rank` of `size` (`id`: the 128-byte unique id rank 0
    /// made with `nccl::unique_id`), on this GPU and its stream.
    pub fn nccl_group(
        &self,
        rank: usize,
        size: usize,
        id: &[u8],
    ) -> Result<Arc<dyn oxmx_core::distributed::Communicator>> {
        let c = nccl::NcclComm::init(&self.ctx, &self.alloc, rank, size, id)?;
        Ok(Arc::new(c))
    }

    pub fn total_memory(&self) -> usize {
        self.ctx.total_mem().unwrap_or(0)
    }

    /// The GPU's compute capability (major, minor), where the driver reports it.
    pub fn compute_capability(&self) -> Option<(i32, i32)> {
        self.ctx.compute_capability().ok()
    }

    /// The device's multiprocessor count and opt-in shared memory per block (bytes),
    /// asked once: the launch planners need them on every call.
    pub(crate) fn limits(&self) -> (usize, usize) {
        *self.limits.get_or_init(|| {
            use cudarc::driver::sys::CUdevice_attribute as A;
            let attr = |a| {
                self.ctx
                    .attribute(a)
                    .ok()
                    .and_then(|v| usize::try_from(v).ok())
                    .unwrap_or(0)
            };
            (
                attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
                attr(A::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
            )
        })
    }

    /// The device copy of an input (uploading host data once and keeping it).
    fn device_of<'a>(&self, op: &str, x: &'a Input) -> Result<&'a CudaSlice<u8>> {
        let buf = &x.data.buffer;
        if buf.device().is_none() {
            let _span = prof::span(prof::Phase::Upload);
            buf.ensure_host(op)?;
            let mut mem = self.alloc.alloc(op, buf.nbytes())?;
            let bytes = buf.bytes();
            if !bytes.is_empty() {
                let dst = mem.slice_mut()?;
                let mut view = dst.slice_mut(..bytes.len());
                self.alloc
                    .stream
                    .memcpy_htod(bytes, &mut view)
                    .map_err(|e| Error::runtime(op, format!("host to device copy: {e:?}")))?;
            }
            buf.set_device(Box::new(mem));
        }
        let dev = buf
            .device()
            .ok_or_else(|| Error::runtime(op, "missing device copy"))?;
        let mem = dev
            .as_any()
            .downcast_ref::<CudaMem>()
            .ok_or_else(|| Error::runtime(op, "The array lives on another device."))?;
        mem.slice()
    }

    fn grid(&self, n: usize) -> LaunchConfig {
        let threads = 256u32;
        let blocks = n.div_ceil(threads as usize).clamp(1, 65_535 * 8) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Elementwise `expr` over strided inputs into a new contiguous output.
    fn elementwise(
        &self,
        op: &str,
        ins: &[Input],
        shape: &[usize],
        out_dtype: Dtype,
        ct: &str,
        expr: &str,
    ) -> Result<ArrayData> {
        // Buffer donation: an input no one else holds, laid out as the output, takes the
        // output in place (each thread reads its elements before writing the same ones).
        if let Some(i) = ins.iter().position(|x| donatable_for(x, shape, out_dtype)) {
            let dst = self.device_of(op, &ins[i])?;
            self.elementwise_into(op, ins, shape, out_dtype, ct, expr, dst)?;
            return Ok(ArrayData {
                buffer: Arc::clone(&ins[i].data.buffer),
                offset: 0,
                strides: contiguous_strides(shape),
            });
        }
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        self.elementwise_into(op, ins, shape, out_dtype, ct, expr, out.slice_mut()?)?;
        Ok(on_device(out, nbytes, shape))
    }

    /// `elementwise` into a given contiguous device buffer of the output's size.
    #[allow(clippy::too_many_arguments)]
    fn elementwise_into(
        &self,
        op: &str,
        ins: &[Input],
        shape: &[usize],
        out_dtype: Dtype,
        ct: &str,
        expr: &str,
        dst: &CudaSlice<u8>,
    ) -> Result<()> {
        let n = size_of(shape);
        if n.checked_mul(out_dtype.size())
            .is_none_or(|b| b > dst.len())
        {
            return Err(Error::runtime(op, "output buffer too small"));
        }
        if n > 0 {
            // a single host value (a Python scalar) is passed by value, never uploaded
            let values: Vec<Option<u64>> = ins.iter().map(host_scalar).collect();
            let scalars: Vec<bool> = values.iter().map(Option::is_some).collect();
            let out_strides = contiguous_strides(shape);
            let mut all: Vec<&[isize]> = vec![&out_strides];
            for x in ins {
                all.push(&x.data.strides);
            }
            let (cshape, cstrides) = collapse_dims(shape, &all);
            if cshape.len() > MAX_DIMS || ins.len() > 3 {
                return Err(unsupported(
                    op,
                    "An operand with more than 8 non-contiguous dimensions",
                ));
            }
            let contiguous = cshape.len() <= 1
                && cstrides
                    .iter()
                    .skip(1)
                    .zip(&scalars)
                    .all(|(s, &sc)| sc || s.first().is_none_or(|&v| v == 1));
            let walk = if !contiguous && cshape.len() <= 1 {
                kernels::Walk::Linear
            } else if !contiguous {
                strided_walk_for(&cshape, &cstrides, ins, &scalars, n)
            } else if ins
                .iter()
                .zip(&scalars)
                .all(|(x, &sc)| sc || x.data.offset % 4 == 0)
                && n >= 4
            {
                kernels::Walk::Vector4 {
                    per_thread: vector_walk::vectors_per_thread(
                        ins.iter()
                            .zip(&scalars)
                            .filter(|(_, &sc)| !sc)
                            .map(|(x, _)| x.dtype.size()),
                    ),
                }
            } else {
                kernels::Walk::Contiguous
            };
            let mut m = Meta {
                ndim: cshape.len() as i64,
                n: n as i64,
                ..Default::default()
            };
            fill_layout(
                &cshape,
                &cstrides,
                ins,
                &mut m.shape,
                &mut m.strides,
                &mut m.offset,
            );
            let dtypes: Vec<Dtype> = ins.iter().map(|x| x.dtype).collect();
            let f = {
                let _span = prof::span(prof::Phase::Lookup);
                let key = format!("ew {dtypes:?} {scalars:?} {out_dtype:?} {ct} {walk:?} {expr}");
                self.compiler.memo(key, || {
                    let src =
                        kernels::elementwise_src(&dtypes, &scalars, out_dtype, ct, expr, walk)
                            .ok_or_else(|| unsupported(op, format!("The dtype {out_dtype}")))?;
                    self.compiler.get_exact(op, src)
                })?
            };
            let slices: Vec<Option<&CudaSlice<u8>>> = ins
                .iter()
                .zip(&scalars)
                .map(|(x, &sc)| {
                    if sc {
                        Ok(None)
                    } else {
                        self.device_of(op, x).map(Some)
                    }
                })
                .collect::<Result<_>>()?;
            let threads = match walk {
                kernels::Walk::Vector4 { per_thread } => vector_walk::threads(n, per_thread),
                kernels::Walk::Rows4 { .. } => n.div_ceil(4),
                _ => n,
            };
            ffi::launch(op, &self.alloc.stream, &f, self.grid(threads), |b| {
                for (s, v) in slices.iter().zip(&values) {
                    match (s, v) {
                        (Some(s), _) => ffi::arg(b, *s),
                        (None, Some(v)) => ffi::arg(b, v),
                        (None, None) => {}
                    }
                }
                ffi::arg(b, &*dst);
                ffi::arg(b, &m);
            })?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &self,
        op: &str,
        r: oxmx_core::primitive::ReduceOp,
        axes: &[usize],
        x: &Input,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let n_out = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        if n_out > 0 {
            let (m, inner_n) = red_meta(op, x, axes)?;
            let blocks =
                u32::try_from(n_out).map_err(|_| unsupported(op, "More than 2^32 outputs"))?;
            if m.outer_ndim == 1
                && m.outer_strides[0] == 1
                && m.inner_ndim == 1
                && m.inner_strides[0] != 1
                && n_out >= 32
                && inner_n >= 2
            {
                self.reduce_columns(op, r, &m, inner_n, x, &mut out, n_out, out_dtype)?;
                return Ok(on_device(out, nbytes, shape));
            }
            let vec = m.inner_ndim == 1
                && m.inner_strides[0] == 1
                && m.offset % 4 == 0
                && m.outer_strides[..m.outer_ndim as usize]
                    .iter()
                    .all(|s| s % 4 == 0)
                && x.dtype != Dtype::Bool;
            if vec && inner_n <= SHORT_ROW {
                let lanes = kernels::reduce_group_lanes(inner_n);
                let name = format!("{op}_groups");
                let key = format!("{name} {r:?} {:?} {out_dtype:?} {lanes}", x.dtype);
                let got = self.compiler.get_keyed(&name, key, || {
                    kernels::reduce_groups_src(r, x.dtype, out_dtype, lanes)
                        .ok_or_else(|| unsupported(op, "short rows"))
                });
                match got {
                    Ok(f) => {
                        self.reduce_groups(op, &f, &m, x, &mut out, n_out, lanes)?;
                        return Ok(on_device(out, nbytes, shape));
                    }
                    // no short-row kernel for this reduction: the general walk below
                    Err(Error::Unsupported { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            // Few outputs over many elements: split each reduction into chunks (one
            // block each) and combine the partial results in a second pass.
            let chunks = if n_out < 1024 && inner_n >= 1 << 16 {
                (2048 / n_out).clamp(1, inner_n / 4096).clamp(1, 65_535)
            } else {
                1
            };
            // Chunks start on multiples of 4 so the vector walk stays aligned.
            let chunk_len = (inner_n.div_ceil(chunks).div_ceil(4) * 4) as i64;
            let chunks = (inner_n as i64).div_euclid(chunk_len.max(1)) as usize
                + usize::from((inner_n as i64) % chunk_len.max(1) != 0);
            let chunks = chunks.max(1);
            let grid = (blocks, chunks, chunk_len);
            let walk = RedKernel::Rows { vec };
            self.reduce_passes(op, r, x, &m, (&mut out, n_out, out_dtype), grid, walk)?;
        }
        Ok(on_device(out, nbytes, shape))
    }

    /// Short contiguous rows (`kernels::reduce_groups_src`): `lanes` threads per row.
    #[allow(clippy::too_many_arguments)]
    fn reduce_groups(
        &self,
        op: &str,
        f: &CudaFunction,
        m: &RedMeta,
        x: &Input,
        out: &mut CudaMem,
        n_out: usize,
        lanes: u32,
    ) -> Result<()> {
        let threads = n_out
            .checked_mul(lanes as usize)
            .ok_or_else(|| Error::overflow(op))?;
        let blocks = u32::try_from(threads.div_ceil(256))
            .map_err(|_| unsupported(op, "More than 2^32 outputs"))?;
        let rows = i64::try_from(n_out).map_err(|_| Error::overflow(op))?;
        let input = self.device_of(op, x)?;
        let dst = out.slice_mut()?;
        ffi::launch(op, &self.alloc.stream, f, red_cfg(blocks, 1), |b| {
            ffi::arg(b, input);
            ffi::arg(b, &*dst);
            ffi::arg(b, m);
            ffi::arg(b, &rows);
        })
    }

    /// The second pass of a chunked reduction: `part` holds `chunks` partial results of
    /// dtype `partial_dtype(r, out_dtype)` per output element, output-major.
    #[allow(clippy::too_many_arguments)]
    fn combine_partials(
        &self,
        op: &str,
        r: oxmx_core::primitive::ReduceOp,
        part: &CudaMem,
        chunks: usize,
        n_out: usize,
        out: &mut CudaMem,
        out_dtype: Dtype,
    ) -> Result<()> {
        let pd = kernels::partial_dtype(r, out_dtype);
        let blocks = u32::try_from(n_out).map_err(|_| unsupported(op, "More than 2^32 outputs"))?;
        let mut m2 = RedMeta {
            outer_ndim: 1,
            inner_ndim: 1,
            inner_n: chunks as i64,
            ..Default::default()
        };
        m2.outer_shape[0] = n_out as i64;
        m2.outer_strides[0] = chunks as i64;
        m2.inner_shape[0] = chunks as i64;
        m2.inner_strides[0] = 1;
        let all = chunks as i64;
        let key = format!("{op} combine {r:?} {pd:?} {out_dtype:?}");
        let f2 = self.compiler.get_keyed(op, key, || {
            kernels::reduce_src(r, pd, out_dtype, false)
                .ok_or_else(|| unsupported(op, format!("The dtype {out_dtype}")))
        })?;
        let psrc = part.slice()?;
        let dst = out.slice_mut()?;
        ffi::launch(op, &self.alloc.stream, &f2, red_cfg(blocks, 1), |b| {
            ffi::arg(b, psrc);
            ffi::arg(b, &*dst);
            ffi::arg(b, &m2);
            ffi::arg(b, &all);
        })
    }

    /// A reduction over one strided axis into contiguous outputs (`reduce_cols_src`): a
    /// thread per output and chunk of rows, chunks combined by `combine_partials`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_columns(
        &self,
        op: &str,
        r: oxmx_core::primitive::ReduceOp,
        m: &RedMeta,
        inner_n: usize,
        x: &Input,
        out: &mut CudaMem,
        n_out: usize,
        out_dtype: Dtype,
    ) -> Result<()> {
        let col_blocks = u32::try_from(n_out.div_ceil(256))
            .map_err(|_| unsupported(op, "More than 2^32 outputs"))?;
        // About 1024 blocks in all, at least 32 rows per thread.
        let chunks = (1024 / col_blocks as usize).clamp(1, (inner_n / 32).clamp(1, 65_535));
        let chunk_len = inner_n.div_ceil(chunks);
        let chunks = inner_n.div_ceil(chunk_len);
        let chunk = chunk_len as i64;
        let grid = (col_blocks, chunks, chunk);
        self.reduce_passes(
            op,
            r,
            x,
            m,
            (out, n_out, out_dtype),
            grid,
            RedKernel::Columns,
        )
    }

    /// Runs a reduction kernel made by `src(output dtype)` (its source and walk name) over `grid` = (blocks,
    /// chunks, chunk length): with one chunk straight into `out`, otherwise into
    /// partial results that `combine_partials` reduces.
    #[allow(clippy::too_many_arguments)]
    fn reduce_passes(
        &self,
        op: &str,
        r: oxmx_core::primitive::ReduceOp,
        x: &Input,
        m: &RedMeta,
        (out, n_out, out_dtype): (&mut CudaMem, usize, Dtype),
        (blocks, chunks, chunk): (u32, usize, i64),
        walk: RedKernel,
    ) -> Result<()> {
        let input = self.device_of(op, x)?;
        let unsupported_dtype = || unsupported(op, format!("The dtype {}", x.dtype));
        let chunk_dtype = if chunks == 1 {
            out_dtype
        } else {
            kernels::partial_dtype(r, out_dtype)
        };
        // named by walk in profiles: reduce_rows, reduce_columns
        let name = match walk {
            RedKernel::Rows { .. } => format!("{op}_rows"),
            RedKernel::Columns => format!("{op}_columns"),
        };
        let key = format!("{name} {r:?} {:?} {chunk_dtype:?} {walk:?}", x.dtype);
        let f = self.compiler.get_keyed(&name, key, || {
            match walk {
                RedKernel::Rows { vec } => kernels::reduce_src(r, x.dtype, chunk_dtype, vec),
                RedKernel::Columns => kernels::reduce_cols_src(r, x.dtype, chunk_dtype),
            }
            .ok_or_else(unsupported_dtype)
        })?;
        let launch = |dst: &mut CudaSlice<u8>| {
            ffi::launch(
                op,
                &self.alloc.stream,
                &f,
                red_cfg(blocks, chunks as u32),
                |b| {
                    ffi::arg(b, input);
                    ffi::arg(b, &*dst);
                    ffi::arg(b, m);
                    ffi::arg(b, &chunk);
                },
            )
        };
        if chunks == 1 {
            return launch(out.slice_mut()?);
        }
        let pbytes = n_out
            .checked_mul(chunks)
            .and_then(|v| v.checked_mul(chunk_dtype.size()))
            .ok_or_else(|| Error::overflow(op))?;
        let mut part = self.alloc.alloc(op, pbytes)?;
        launch(part.slice_mut()?)?;
        self.combine_partials(op, r, &part, chunks, n_out, out, out_dtype)
    }

    /// A row-contiguous copy of `x`, bit for bit.
    fn copy_contiguous(&self, op: &str, x: &Input) -> Result<ArrayData> {
        let n = size_of(&x.shape);
        let (mut out, nbytes) = self.new_output(op, &x.shape, x.dtype)?;
        let strides = contiguous_strides(&x.shape);
        self.copy_into(op, x, out.slice_mut()?, 0, &strides, n)?;
        Ok(on_device(out, nbytes, &x.shape))
    }

    fn contiguous_input(&self, op: &str, x: Input) -> Result<Input> {
        if x.is_contiguous() && x.data.offset == 0 {
            return Ok(x);
        }
        let (shape, dtype) = (x.shape.clone(), x.dtype);
        let data = self.copy_contiguous(op, &x)?;
        Ok(Input {
            shape,
            dtype,
            data,
            donatable: true,
        })
    }

    fn matmul(
        &self,
        op: &str,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let mut it = ins.into_iter();
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            return Err(Error::runtime(op, "missing input"));
        };
        if !matches!(
            out_dtype,
            Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float64 | Dtype::Complex64
        ) {
            return Err(unsupported(op, format!("matmul in {out_dtype}")));
        }
        let nd = shape.len();
        if nd < 2 || a.shape.len() != nd || b.shape.len() != nd {
            return Err(Error::runtime(op, "matmul operands must have equal ranks"));
        }
        let (m, n) = (shape[nd - 2], shape[nd - 1]);
        let k = a.shape[nd - 1];
        let batch = size_of(&shape[..nd - 2]);
        if size_of(shape) == 0 || k == 0 {
            let ct = kernels::compute_type(out_dtype).unwrap_or("float");
            return self.elementwise(op, &[], shape, out_dtype, ct, "(CT)0");
        }
        let lt = self.blas_lt(op)?;
        let flops = 2 * m as u128 * n as u128 * k as u128 * batch as u128;
        let (a, b) = (self.lt_ready(op, a)?, self.lt_ready(op, b)?);
        let padded = self.lt_pad(op, a, b, (m, n, k), batch, flops)?;
        let ((a, oa), (b, ob)) = (padded.a, padded.b);
        let (mp, np, kp) = (padded.m, padded.n, padded.k);
        let long = |v: usize| u64::try_from(v).map_err(|_| Error::overflow(op));
        let p = blaslt::Problem {
            dtype: out_dtype,
            tf32: self.tf32,
            m: long(np)?,
            n: long(mp)?,
            k: long(kp)?,
            d_ld: long(np)?,
            batch: i32::try_from(batch)
                .map_err(|_| Error::value(op, "Too many matrices in one batch."))?,
            // cuBLASLt is column-major: C^T = B^T A^T, so our B is its A.
            a: ob,
            b: oa,
        };
        let mut padded_shape = shape.to_vec();
        padded_shape[nd - 2] = mp;
        padded_shape[nd - 1] = np;
        let (mut out, nbytes) = self.new_output(op, &padded_shape, out_dtype)?;
        let (da, db) = (self.device_of(op, &a)?, self.device_of(op, &b)?);
        lt.matmul(&p, db, da, out.slice_mut()?)?;
        if (mp, np) != (m, n) {
            return self.lt_unpad(op, out, nbytes, shape, out_dtype, (mp, np));
        }
        Ok(on_device(out, nbytes, shape))
    }

    /// A matmul operand with its cuBLASLt view. Matrices that are row- or column-major
    /// with one batch stride are read in place (transposes and broadcast batches
    /// included); others are copied to row-major first.
    fn lt_ready(&self, op: &str, x: Input) -> Result<(Input, blaslt::Operand)> {
        if let Some(o) = lt_operand(&x) {
            return Ok((x, o));
        }
        let x = self.contiguous_input(op, x)?;
        let o = lt_operand(&x).ok_or_else(|| Error::runtime(op, "matmul operand layout"))?;
        Ok((x, o))
    }

    fn blas_lt(&self, op: &str) -> Result<&blaslt::BlasLt> {
        let lt = self
            .blas
            .get_or_init(|| match blaslt::BlasLt::new(&self.alloc.stream) {
                Ok(Some(l)) => Ok(l),
                Ok(None) => Err("libcublasLt could not be loaded".to_string()),
                Err(e) => Err(e.to_string()),
            });
        lt.as_ref()
            .map_err(|e| unsupported(op, format!("matmul without cuBLASLt ({e})")))
    }
}

/// The cuBLASLt (column-major) view of a row-major batched matrix operand, or None when
/// its layout needs a copy first.
fn lt_operand(x: &Input) -> Option<blaslt::Operand> {
    let nd = x.shape.len();
    let (r, c) = (x.shape[nd - 2], x.shape[nd - 1]);
    let (sr, sc) = (x.data.strides[nd - 2], x.data.strides[nd - 1]);
    // Our row-major r × c matrix is cuBLASLt's c × r (no transpose) when rows are
    // contiguous, or its r × c transposed when columns are.
    let (trans, rows, cols, ld) = if sc == 1 || c == 1 {
        let ld = if r == 1 { c as isize } else { sr };
        (false, c, r, ld)
    } else if sr == 1 || r == 1 {
        let ld = if c == 1 { r as isize } else { sc };
        (true, r, c, ld)
    } else {
        return None;
    };
    if ld < rows.max(1) as isize {
        return None;
    }
    let (bs, bst) = collapse_dims(&x.shape[..nd - 2], &[&x.data.strides[..nd - 2]]);
    let bst = bst.into_iter().next().unwrap_or_default();
    let dims: Vec<(usize, isize)> = bs.into_iter().zip(bst).filter(|&(l, _)| l != 1).collect();
    let batch_stride = match dims.as_slice() {
        [] => 0,
        [(_, s)] if *s >= 0 => *s,
        _ => return None,
    };
    Some(blaslt::Operand {
        trans,
        rows: rows as u64,
        cols: cols as u64,
        ld: ld as i64,
        batch_stride: batch_stride as i64,
        offset: x.data.offset,
    })
}

impl Backend for CudaBackend {
    fn device_type(&self) -> DeviceType {
        DeviceType::Gpu
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    /// Every launch costs the host microseconds: chains of small elementwise ops run as
    /// one kernel.
    fn fuses_at_eval(&self) -> bool {
        true
    }

    fn run(
        &self,
        prim: &Primitive,
        ins: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        // Primitives (or dtypes) without a GPU kernel yet run on the CPU backend over the
        // host copies; their results move to the GPU when a GPU kernel reads them.
        // OXMX_CUDA_STRICT=1 turns the fallback into an error (tests use it to prove that
        // an op has a GPU kernel).
        // Collectives over NCCL run here; over MPI they move host buffers by design
        // (the engine is the CPU's): not a fallback, so strict mode allows them.
        let _span = prof::span(prof::Phase::Run);
        let _op = prof::op_span(prim.name());
        self.pad_cache.evict_orphaned();
        if let Primitive::Collective { op, group } = prim {
            return self.collective(prim, *op, group, ins, out_shape, out_dtype);
        }
        let keep = ins.clone();
        match self.run_native(prim, ins, out_shape, out_dtype) {
            Err(Error::Unsupported { .. }) if !self.strict => {
                self.host_fallback(prim, keep, out_shape, out_dtype)
            }
            r => r,
        }
    }

    fn kernel_launches(&self) -> Option<u64> {
        Some(ffi::LAUNCHES.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn memory_size(&self) -> Option<usize> {
        Some(self.total_memory())
    }

    fn memory_counters(&self) -> Option<(usize, usize, usize)> {
        use std::sync::atomic::Ordering::Relaxed;
        let a = &self.alloc;
        Some((
            a.active.load(Relaxed),
            a.peak.load(Relaxed),
            a.cached.load(Relaxed),
        ))
    }

    fn set_memory_limit(&self, limit: usize) {
        let cap = self.total_memory() / 100 * 95;
        self.alloc
            .limit
            .store(limit.min(cap), std::sync::atomic::Ordering::Relaxed);
    }

    fn clear_cache(&self) {
        self.alloc.clear_cache();
    }

    fn set_cache_limit(&self, limit: usize) {
        self.alloc
            .cache_limit
            .store(limit, std::sync::atomic::Ordering::Relaxed);
        if limit == 0 {
            self.alloc.clear_cache();
        }
    }

    fn reset_peak_memory(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.alloc
            .peak
            .store(self.alloc.active.load(Relaxed), Relaxed);
    }

    fn finish(&self) -> Result<()> {
        self.finish_checks()
    }

    fn checks_queued(&self) -> u64 {
        self.checks_queued_here()
    }

    fn synchronize(&self) -> Result<()> {
        self.alloc
            .stream
            .synchronize()
            .map_err(|e| Error::runtime("synchronize", format!("{e:?}")))
    }
}

impl CudaBackend {
    fn softmax(&self, op: &str, x: Input, shape: &[usize], dtype: Dtype) -> Result<ArrayData> {
        let x = self.contiguous_input(op, x)?;
        let n = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        let row = shape.last().copied().unwrap_or(1);
        if n > 0 && row > 0 {
            let rows =
                u32::try_from(n / row).map_err(|_| unsupported(op, "More than 2^32 rows"))?;
            // Rows that fit in registers are read once; longer ones take two reads.
            let nv = row / 4;
            let vpt = nv.div_ceil(256);
            let regs = row % 4 == 0 && vpt <= kernels::SOFTMAX_MAX_VPT;
            let cfg = if regs {
                let threads = (nv.div_ceil(vpt).div_ceil(32) * 32).clamp(32, 256) as u32;
                LaunchConfig {
                    grid_dim: (rows, 1, 1),
                    block_dim: (threads, 1, 1),
                    shared_mem_bytes: 0,
                }
            } else {
                red_cfg(rows, 1)
            };
            let key = format!("{op} {dtype:?} {regs} {vpt}");
            let f = self.compiler.get_keyed(op, key, || {
                if regs {
                    kernels::softmax_regs_src(dtype, vpt)
                } else {
                    kernels::softmax_src(dtype)
                }
                .ok_or_else(|| unsupported(op, format!("softmax in {dtype}")))
            })?;
            let input = self.device_of(op, &x)?;
            let dst = out.slice_mut()?;
            let len = row as i64;
            ffi::launch(op, &self.alloc.stream, &f, cfg, |b| {
                ffi::arg(b, input);
                ffi::arg(b, &*dst);
                ffi::arg(b, &len);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }

    fn arg_reduce(
        &self,
        op: &str,
        max: bool,
        axis: usize,
        x: &Input,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let n_out = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, Dtype::Uint32)?;
        let len = *x
            .shape
            .get(axis)
            .ok_or_else(|| Error::runtime(op, "axis"))?;
        if n_out > 0 && len > 0 {
            let (m, _) = red_meta(op, x, &[axis])?;
            let src = kernels::arg_reduce_src(max, x.dtype)
                .ok_or_else(|| unsupported(op, format!("The dtype {}", x.dtype)))?;
            let f = self.compiler.get(op, src)?;
            let input = self.device_of(op, x)?;
            let dst = out.slice_mut()?;
            let blocks =
                u32::try_from(n_out).map_err(|_| unsupported(op, "More than 2^32 outputs"))?;
            ffi::launch(op, &self.alloc.stream, &f, red_cfg(blocks, 1), |b| {
                ffi::arg(b, input);
                ffi::arg(b, &*dst);
                ffi::arg(b, &m);
            })?;
        } else if n_out > 0 {
            return Err(unsupported(op, "An arg-reduction over an empty axis"));
        }
        Ok(on_device(out, nbytes, shape))
    }

    fn random_bits(
        &self,
        op: &str,
        keys: Input,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        if keys.dtype != Dtype::Uint32 || keys.shape.last() != Some(&2) {
            return Err(Error::value(
                op,
                "Keys must be uint32 with a last dimension of 2.",
            ));
        }
        let keys = self.contiguous_input(op, keys)?;
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        let nkeys = size_of(&keys.shape) / 2;
        if nkeys > 0 && nbytes > 0 {
            if nbytes % nkeys != 0 {
                return Err(Error::runtime(
                    op,
                    "Output size is not a multiple of the number of keys.",
                ));
            }
            let per_key = nbytes / nkeys;
            let pairs = nkeys
                .checked_mul(per_key.div_ceil(4).div_ceil(2))
                .ok_or_else(|| Error::overflow(op))?;
            let f = self
                .compiler
                .get(op, kernels::random_bits_src(per_key.is_multiple_of(4)))?;
            let k = self.device_of(op, &keys)?;
            let dst = out.slice_mut()?;
            let (nk, pk) = (nkeys as i64, per_key as i64);
            ffi::launch(op, &self.alloc.stream, &f, self.grid(pairs), |b| {
                ffi::arg(b, k);
                ffi::arg(b, &*dst);
                ffi::arg(b, &nk);
                ffi::arg(b, &pk);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }

    fn host_fallback(
        &self,
        prim: &Primitive,
        ins: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let cpu = oxmx_core::backend::get(oxmx_core::Device::CPU)?;
        cpu.run(prim, ins, out_shape, out_dtype)
    }

    fn run_native(
        &self,
        prim: &Primitive,
        ins: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = prim.name();
        let in_dtype = ins.first().map(|x| x.dtype).unwrap_or(out_dtype);
        let ct_of = |d: Dtype| {
            kernels::compute_type(d).ok_or_else(|| unsupported(op, format!("The dtype {d}")))
        };
        match prim {
            // MLX's float32 erfinv (what `random.normal` uses) is reproduced bit for bit
            // by the CPU kernel; erfinv.rs repeats it, C library logarithm included.
            Primitive::Unary(oxmx_core::primitive::UnaryOp::ErfInv) => {
                self.erfinv(op, ins, out_shape, out_dtype)
            }
            Primitive::Fused(k) => self.fused(&k.0, ins, out_shape, out_dtype),
            Primitive::Unary(u) => {
                let expr = kernels::unary_expr(*u, in_dtype)
                    .ok_or_else(|| unsupported(op, format!("{u:?} on {in_dtype}")))?;
                self.elementwise(op, &ins, out_shape, out_dtype, ct_of(in_dtype)?, &expr)
            }
            Primitive::Binary(bop) => {
                let expr = kernels::binary_expr(*bop, in_dtype)
                    .ok_or_else(|| unsupported(op, format!("{} on {in_dtype}", bop.name())))?;
                self.elementwise(op, &ins, out_shape, out_dtype, ct_of(in_dtype)?, &expr)
            }
            Primitive::Select => {
                let d = ins.get(1).map(|x| x.dtype).unwrap_or(out_dtype);
                self.elementwise(op, &ins, out_shape, out_dtype, ct_of(d)?, "x ? y : z")
            }
            // Copies move bits (NaN payloads included), like the CPU's.
            Primitive::AsType(_) | Primitive::Copy if in_dtype == out_dtype => {
                let x = ins
                    .first()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.copy_contiguous(op, x)
            }
            Primitive::AsType(_) | Primitive::Copy => {
                // complex64 to a real dtype keeps the real part; to bool, "nonzero".
                let expr = match (in_dtype.is_complex(), out_dtype) {
                    (true, Dtype::Bool) => "(x.re != 0.f || x.im != 0.f)",
                    (true, d) if !d.is_complex() => "x.re",
                    _ => "x",
                };
                self.elementwise(op, &ins, out_shape, out_dtype, ct_of(in_dtype)?, expr)
            }
            Primitive::NumberOfElements {
                axes,
                inverted,
                ddof,
            } => {
                let x = ins
                    .first()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                let v = oxmx_core::primitive::number_of_elements_value(
                    &x.shape, axes, *inverted, *ddof,
                );
                let arange = Primitive::Arange {
                    start: v,
                    step: 0.0,
                };
                self.run_native(&arange, vec![], out_shape, out_dtype)
            }
            Primitive::Arange { start, step } => {
                let n = size_of(out_shape);
                let (mut out, nbytes) = self.new_output(op, out_shape, out_dtype)?;
                if n > 0 {
                    let src = kernels::arange_src(out_dtype)
                        .ok_or_else(|| unsupported(op, format!("The dtype {out_dtype}")))?;
                    let f = self.compiler.get(op, src)?;
                    let dst = out.slice_mut()?;
                    let (s, st, nn) = (*start, *step, n as i64);
                    ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
                        ffi::arg(b, &*dst);
                        ffi::arg(b, &s);
                        ffi::arg(b, &st);
                        ffi::arg(b, &nn);
                    })?;
                }
                Ok(on_device(out, nbytes, out_shape))
            }
            Primitive::Reduce { op: r, axes } => {
                let x = ins
                    .first()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.reduce(op, *r, axes, x, out_shape, out_dtype)
            }
            Primitive::Matmul => self.matmul(op, ins, out_shape, out_dtype),
            Primitive::Softmax { .. } => {
                let x = ins
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.softmax(op, x, out_shape, out_dtype)
            }
            Primitive::ArgReduce { op: r, axis } => {
                let x = ins
                    .first()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                let max = matches!(r, oxmx_core::primitive::ArgReduceOp::ArgMax);
                self.arg_reduce(op, max, *axis, x, out_shape)
            }
            Primitive::RandomBits { .. } => {
                let keys = ins
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.random_bits(op, keys, out_shape, out_dtype)
            }
            Primitive::Concatenate { axis } => {
                self.concatenate(op, &ins, *axis, out_shape, out_dtype)
            }
            Primitive::SliceUpdate { start, strides, .. } => {
                self.slice_update(op, &ins, start, strides, out_shape, out_dtype)
            }
            Primitive::Scan {
                op: sop,
                reverse,
                inclusive,
            } => {
                let x = ins
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.scan(op, x, (*sop, *reverse, *inclusive), out_shape, out_dtype)
            }
            Primitive::Sort { arg } => {
                let x = ins
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::runtime(op, "missing input"))?;
                self.sort(op, x, *arg, out_shape, out_dtype)
            }
            Primitive::Gather { axes } => self.gather(op, &ins, axes, out_shape),
            Primitive::GatherAxis { axis } => self.gather_axis(op, &ins, *axis, out_shape),
            Primitive::Scatter { axes, mode } => self.scatter(op, &ins, axes, *mode, out_shape),
            Primitive::ScatterAxis { axis, mode } => {
                self.scatter_axis(op, &ins, *axis, *mode, out_shape)
            }
            Primitive::Fast(k) => self.fast(k, ins, out_shape, out_dtype),
            // cuSOLVER kernels are issue #12's next step; until then the CPU's faer runs
            Primitive::Linalg(k) => self.linalg(*k, ins, out_shape, out_dtype),
            Primitive::Fft {
                inverse,
                real,
                scale,
            } => self.fft(*inverse, *real, *scale, ins, out_shape, out_dtype),
            Primitive::Conv { spec, kind } => self.conv(spec, *kind, ins, out_shape, out_dtype),
            Primitive::UserKernel(k) => self.user_kernel(&k.0, ins, out_shape),
            Primitive::Collective { .. } => Err(unsupported(op, "A collective")),
            Primitive::Dequantize(s) => self.dequantize(s, ins, out_shape, out_dtype, true),
            Primitive::QuantizedMatmul { spec, transpose } => {
                self.quantized_matmul(spec, *transpose, ins, out_shape, out_dtype)
            }
            Primitive::GatherQmm { spec, transpose } => {
                self.gather_qmm(spec, *transpose, ins, out_shape, out_dtype)
            }
            Primitive::Reshape { .. }
            | Primitive::Transpose { .. }
            | Primitive::Broadcast
            | Primitive::Slice { .. }
            | Primitive::AsStrided { .. }
            | Primitive::StopGradient
            | Primitive::Custom(_) => Err(Error::runtime(
                op,
                "View primitives are executed by the core.",
            )),
        }
    }
}
