//! Gathers and scatters on the GPU. Every index is wrapped NumPy-style (i < 0 → i + dim)
//! and checked on the device before it is used: a thread that meets an index outside
//! [0, dim) records it in an error word and touches nothing; the word is read back after
//! the launch and the op fails with the CPU backend's IndexError. Scatters with `Set`
//! let the last update of a duplicated index win, as on the CPU: a first pass claims each
//! destination for its highest update position, a second writes the winners.

use crate::ffi::{self, IdxMeta, IDX_OPS, MAX_DIMS, MAX_INDEX_ARRAYS};
use crate::kernels::{ctype, prelude_for, PRELUDE};
use crate::{on_device, unsupported, CudaBackend};
use cudarc::driver::CudaSlice;
use oxmx_core::backend::Input;
use oxmx_core::primitive::ScatterMode;
use oxmx_core::shape::{collapse_dims, contiguous_strides, size_of};
use oxmx_core::{ArrayData, Dtype, Error, Result};

/// An operand of a walk: its strides over the walk's shape and its element offset.
struct Operand {
    strides: Vec<isize>,
    offset: usize,
}

/// An indexed axis: its number, length and stride in the source or destination.
type Axis = (usize, usize, isize);

const IDX_PRELUDE: &str = r#"
struct IdxMeta { long long ndim, n; long long shape[8]; long long strides[10][8]; long long offset[10]; long long ax_dim[8], ax_stride[8], ax[8]; };
template <int NOPS> __device__ __forceinline__ void locate_idx(const IdxMeta& m, long long i, long long* o) {
  #pragma unroll
  for (int k = 0; k < NOPS; ++k) o[k] = m.offset[k];
  long long r = i;
  for (int d = (int)m.ndim - 1; d >= 0; --d) {
    long long c = r % m.shape[d]; r /= m.shape[d];
    #pragma unroll
    for (int k = 0; k < NOPS; ++k) o[k] += c * m.strides[k][d];
  }
}
// Adds the wrapped index's offset to *pos, or records the first bad index and fails.
__device__ __forceinline__ bool wrap_index(long long v, int a, const IdxMeta& m, long long* err, long long* pos) {
  long long d = m.ax_dim[a]; long long w = v < 0 ? v + d : v;
  if (w < 0 || w >= d) {
    if (atomicCAS((unsigned long long*)err, 0ull, 1ull) == 0ull) { err[1] = v; err[2] = m.ax[a]; err[3] = d; }
    return false;
  }
  *pos += w * m.ax_stride[a];
  return true;
}
"#;

/// Unsigned storage type of an element size (gathers only move bytes).
fn storage(size: usize) -> Option<&'static str> {
    Some(match size {
        1 => "unsigned char",
        2 => "unsigned short",
        4 => "unsigned int",
        8 => "unsigned long long",
        _ => return None,
    })
}

/// Kernel parameters for the index arrays and the code that applies them to `pos`
/// (operands `first..` of the walk); `ok` ends false if any index is out of range.
fn index_code(idx: &[Dtype], first: usize) -> Option<(String, String)> {
    let mut params = String::new();
    let mut apply = String::from("    bool ok = true;\n");
    for (k, d) in idx.iter().enumerate() {
        if !d.is_integer() {
            return None;
        }
        params.push_str(&format!("const {}* __restrict__ i{k}, ", ctype(*d)?));
        apply.push_str(&format!(
            "    ok = ok && wrap_index((long long)i{k}[o[{}]], {k}, m, err, &pos);\n",
            first + k
        ));
    }
    Some((params, apply))
}

fn gather_src(elem: usize, idx: &[Dtype]) -> Option<String> {
    let t = storage(elem)?;
    let nops = idx.len() + 1;
    let (params, apply) = index_code(idx, 1)?;
    Some(format!(
        "{PRELUDE}{IDX_PRELUDE}\nextern \"C\" __global__ void k(const {t}* __restrict__ src, {params}{t}* __restrict__ out, IdxMeta m, long long* err) {{\n\
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m.n; i += (long long)gridDim.x * blockDim.x) {{\n\
    long long o[{nops}]; locate_idx<{nops}>(m, i, o); long long pos = o[0];\n{apply}\
    out[i] = ok ? src[pos] : ({t})0;\n  }}\n}}\n"
    ))
}

/// How a scatter combines into one destination element atomically: a native atomic
/// where CUDA has one, otherwise a compare-and-swap loop on the element's bits (for 1- and
/// 2-byte dtypes, on the aligned 32-bit word that holds it). The combining rules are the
/// CPU backend's (`Combine` in oxmx-cpu's gather.rs): integers wrap, float16/bfloat16
/// compute in float and round once, a NaN already in place wins max/min, complex64
/// compares lexicographically, bool adds and maximums are `or`, products and minimums `and`.
fn atomic_apply(d: Dtype, mode: ScatterMode) -> Option<String> {
    let t = ctype(d)?;
    if mode == ScatterMode::Add && d != Dtype::Bool {
        let call = match d {
            Dtype::Float32
            | Dtype::Float64
            | Dtype::Int32
            | Dtype::Uint32
            | Dtype::Uint64
            | Dtype::Float16
            | Dtype::Bfloat16 => Some("atomicAdd(p, v);"),
            Dtype::Int64 => Some("atomicAdd((unsigned long long*)p, (unsigned long long)v);"),
            Dtype::Complex64 => Some("atomicAdd(&p->re, v.re); atomicAdd(&p->im, v.im);"),
            _ => None,
        };
        if let Some(call) = call {
            return Some(format!(
                "__device__ __forceinline__ void apply({t}* p, {t} v) {{ {call} }}\n"
            ));
        }
    }
    // `cur` and `v` are the stored values; c and x the same in the compute type.
    let (ld, st) = match d {
        Dtype::Float16 => ("ld", "st_half"),
        Dtype::Bfloat16 => ("ld", "st_bf16"),
        _ => ("", ""),
    };
    let float = d.is_float();
    let wide = if d.size() <= 4 {
        "unsigned int"
    } else {
        "unsigned long long"
    };
    let comb = match (mode, d) {
        (ScatterMode::Add | ScatterMode::Maximum, Dtype::Bool) => "(unsigned char)(cur | v)".into(),
        (ScatterMode::Multiply | ScatterMode::Minimum, Dtype::Bool) => {
            "(unsigned char)(cur & v)".into()
        }
        (ScatterMode::Add, _) => format!("({t})(({wide})cur + ({wide})v)"),
        (ScatterMode::Multiply, Dtype::Complex64) => "cur * v".into(),
        (ScatterMode::Multiply, _) if float => format!("{st}({ld}(cur) * {ld}(v))"),
        (ScatterMode::Multiply, _) => format!("({t})(({wide})cur * ({wide})v)"),
        (ScatterMode::Maximum, Dtype::Complex64) => "(v < cur ? cur : v)".into(),
        (ScatterMode::Minimum, Dtype::Complex64) => "(cur < v ? cur : v)".into(),
        // MLX's (and the CPU's) rule: a NaN update wins, a NaN already there is replaced
        (ScatterMode::Maximum, _) if float => format!("({ld}(cur) > {ld}(v) ? cur : v)"),
        (ScatterMode::Minimum, _) if float => format!("({ld}(cur) < {ld}(v) ? cur : v)"),
        (ScatterMode::Maximum, _) => "(v > cur ? v : cur)".into(),
        (ScatterMode::Minimum, _) => "(v < cur ? v : cur)".into(),
        (ScatterMode::Set, _) => return None,
    };
    let body = match d.size() {
        // the 32-bit word holding the element; its other bytes are written back unchanged
        1 | 2 => {
            let (s, mask) = if d.size() == 1 {
                ("unsigned char", "0xffu")
            } else {
                ("unsigned short", "0xffffu")
            };
            format!(
                "  unsigned* a = (unsigned*)((unsigned long long)p & ~3ull); unsigned sh = (unsigned)((unsigned long long)p & 3ull) * 8u;\n\
  unsigned old = *a, seen;\n\
  do {{ seen = old; {s} cb = ({s})(seen >> sh); {t} cur; memcpy(&cur, &cb, sizeof(cur)); {t} nv = {comb}; {s} nb; memcpy(&nb, &nv, sizeof(nb));\n\
    old = atomicCAS(a, seen, (seen & ~({mask} << sh)) | ((unsigned)nb << sh)); }} while (seen != old);\n"
            )
        }
        4 | 8 => format!(
            "  {wide}* a = ({wide}*)p; {wide} old = *a, seen;\n\
  do {{ seen = old; {t} cur; memcpy(&cur, &seen, sizeof(cur)); {t} nv = {comb}; {wide} bits; memcpy(&bits, &nv, sizeof(bits)); old = atomicCAS(a, seen, bits); }} while (seen != old);\n"
        ),
        _ => return None,
    };
    Some(format!(
        "__device__ __forceinline__ void apply({t}* p, {t} v) {{\n{body}}}\n"
    ))
}

/// Scatter kernels over the updates: `claim` (Set, pass 1), `write` (Set, pass 2) or
/// `combine` (the other modes).
fn scatter_src(d: Dtype, mode: ScatterMode, idx: &[Dtype], pass: u8) -> Option<String> {
    let t = match mode {
        ScatterMode::Set => storage(d.size())?,
        _ => ctype(d)?,
    };
    let nops = idx.len() + 2;
    let (params, apply) = index_code(idx, 2)?;
    let head = format!("  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < m.n; i += (long long)gridDim.x * blockDim.x) {{\n\
    long long o[{nops}]; locate_idx<{nops}>(m, i, o); long long pos = o[0];\n{apply}");
    let body = match (mode, pass) {
        (ScatterMode::Set, 1) => format!(
            "extern \"C\" __global__ void k({params}unsigned long long* win, IdxMeta m, long long* err) {{\n{head}\
    if (ok) atomicMax(&win[pos], (unsigned long long)(i + 1));\n  }}\n}}\n"
        ),
        (ScatterMode::Set, _) => format!(
            "extern \"C\" __global__ void k(const {t}* __restrict__ upd, {params}{t}* out, const unsigned long long* win, IdxMeta m, long long* err) {{\n{head}\
    if (ok && win[pos] == (unsigned long long)(i + 1)) out[pos] = upd[o[1]];\n  }}\n}}\n"
        ),
        _ => format!(
            "{}extern \"C\" __global__ void k(const {t}* __restrict__ upd, {params}{t}* out, IdxMeta m, long long* err) {{\n{head}\
    if (ok) apply(&out[pos], upd[o[1]]);\n  }}\n}}\n",
            atomic_apply(d, mode)?
        ),
    };
    Some(format!("{}{IDX_PRELUDE}\n{body}", prelude_for(&[d])))
}

/// The walk's metadata over `shape`, with every operand's strides collapsed jointly.
fn idx_meta(op: &str, shape: &[usize], ops: &[Operand], axes: &[Axis]) -> Result<IdxMeta> {
    let all: Vec<&[isize]> = ops.iter().map(|o| &o.strides[..]).collect();
    let (cs, cst) = collapse_dims(shape, &all);
    if cs.len() > MAX_DIMS || ops.len() > IDX_OPS || axes.len() > MAX_INDEX_ARRAYS {
        return Err(unsupported(
            op,
            "An indexing layout with more than 8 dimensions or index arrays",
        ));
    }
    let mut m = IdxMeta {
        ndim: cs.len() as i64,
        n: size_of(shape) as i64,
        ..Default::default()
    };
    for (d, &l) in cs.iter().enumerate() {
        m.shape[d] = l as i64;
    }
    for (k, (o, st)) in ops.iter().zip(&cst).enumerate() {
        m.offset[k] = o.offset as i64;
        for (d, &s) in st.iter().enumerate() {
            m.strides[k][d] = s as i64;
        }
    }
    for (a, &(ax, dim, st)) in axes.iter().enumerate() {
        m.ax[a] = ax as i64;
        m.ax_dim[a] = dim as i64;
        m.ax_stride[a] = st as i64;
    }
    Ok(m)
}

/// `strides` padded with zeros for `before` leading and `after` trailing walk dims.
fn padded(strides: &[isize], before: usize, after: usize) -> Vec<isize> {
    let mut v = vec![0; before];
    v.extend_from_slice(strides);
    v.resize(before + strides.len() + after, 0);
    v
}

fn input<'a>(op: &str, ins: &'a [Input], i: usize) -> Result<&'a Input> {
    ins.get(i)
        .ok_or_else(|| Error::runtime(op, "missing input"))
}

impl CudaBackend {
    /// A zeroed error word for one launch's index checks.
    pub(crate) fn error_word(&self, op: &str) -> Result<crate::device::CudaMem> {
        let mut w = self.alloc.alloc(op, 32)?;
        self.alloc
            .stream
            .memset_zeros(w.slice_mut()?)
            .map_err(|e| Error::runtime(op, format!("CUDA error: {e:?}")))?;
        Ok(w)
    }

    /// Queues the check of an error word (`error_word`) written by the launches just
    /// made: `finish` reads every queued word at the end of the evaluation, so the host
    /// does not wait for the GPU after each checked op.
    pub(crate) fn defer_check(&self, op: &str, w: crate::device::CudaMem) {
        let check = DeferredCheck {
            thread: std::thread::current().id(),
            op: op.to_string(),
            word: w,
        };
        match self.deferred.lock() {
            Ok(mut q) => q.push(check),
            Err(p) => p.into_inner().push(check),
        }
        CHECKS_QUEUED.with(|c| c.set(c.get().wrapping_add(1)));
    }

    /// Checks this thread has queued so far (`Backend::checks_queued`).
    pub(crate) fn checks_queued_here(&self) -> u64 {
        CHECKS_QUEUED.with(|c| c.get())
    }

    /// Reads this thread's queued error words (one wait for the GPU) and turns the first
    /// recorded bad index into the CPU's IndexError.
    pub(crate) fn finish_checks(&self) -> Result<()> {
        let me = std::thread::current().id();
        let mine: Vec<DeferredCheck> = {
            let mut q = match self.deferred.lock() {
                Ok(q) => q,
                Err(p) => p.into_inner(),
            };
            if !q.iter().any(|c| c.thread == me) {
                return Ok(());
            }
            let (mine, others) = std::mem::take(&mut *q)
                .into_iter()
                .partition(|c| c.thread == me);
            *q = others;
            mine
        };
        let stream = &self.alloc.stream;
        let mut words = vec![[0u8; 32]; mine.len()];
        {
            let _span = crate::prof::span(crate::prof::Phase::Sync);
            for (c, b) in mine.iter().zip(words.iter_mut()) {
                let e = |e: cudarc::driver::DriverError| {
                    Error::runtime(&c.op, format!("CUDA error: {e:?}"))
                };
                let s = c.word.slice()?;
                stream.memcpy_dtoh(&s.slice(..32), &mut b[..]).map_err(e)?;
            }
            stream
                .synchronize()
                .map_err(|e| Error::runtime("eval", format!("CUDA error: {e:?}")))?;
        }
        for (c, b) in mine.iter().zip(&words) {
            let word = |i: usize| {
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[i * 8..i * 8 + 8]);
                i64::from_le_bytes(x)
            };
            if word(0) != 0 {
                return Err(Error::index(
                    &c.op,
                    format!(
                        "Index {} is out of bounds for axis {} with size {}.",
                        word(1),
                        word(2),
                        word(3)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs a gather walk (`src` then the index arrays) into a new output.
    fn gather_walk(
        &self,
        op: &str,
        src: &Input,
        idx: &[&Input],
        shape: &[usize],
        m: &IdxMeta,
    ) -> Result<ArrayData> {
        let n = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, src.dtype)?;
        if n > 0 {
            let dts: Vec<Dtype> = idx.iter().map(|x| x.dtype).collect();
            let code = gather_src(src.dtype.size(), &dts)
                .ok_or_else(|| unsupported(op, "This index dtype"))?;
            let f = self.compiler.get(op, code)?;
            let s = self.device_of(op, src)?;
            let ix: Vec<&CudaSlice<u8>> = idx
                .iter()
                .map(|x| self.device_of(op, x))
                .collect::<Result<_>>()?;
            let mut err = self.error_word(op)?;
            {
                let dst = out.slice_mut()?;
                let ew = err.slice_mut()?;
                ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
                    ffi::arg(b, s);
                    for x in &ix {
                        ffi::arg(b, *x);
                    }
                    ffi::arg(b, &*dst);
                    ffi::arg(b, m);
                    ffi::arg(b, &*ew);
                })?;
            }
            self.defer_check(op, err);
        }
        Ok(on_device(out, nbytes, shape))
    }

    /// `Gather { axes }`: output S ++ (source dims not in `axes`).
    pub(crate) fn gather(
        &self,
        op: &str,
        ins: &[Input],
        axes: &[usize],
        shape: &[usize],
    ) -> Result<ArrayData> {
        let src = input(op, ins, 0)?;
        let idx: Vec<&Input> = ins.iter().skip(1).collect();
        if idx.len() != axes.len() || idx.len() > MAX_INDEX_ARRAYS {
            return Err(unsupported(op, "This many index arrays"));
        }
        let s_shape = idx.first().map(|x| x.shape.clone()).unwrap_or_default();
        let s_n = size_of(&s_shape);
        let (mut rest_strides, mut ax) = (Vec::new(), Vec::new());
        for (d, (&l, &st)) in src.shape.iter().zip(&src.data.strides).enumerate() {
            if let Some(k) = axes.iter().position(|&a| a == d) {
                ax.push((k, (d, l, st)));
            } else {
                rest_strides.push(st);
            }
        }
        ax.sort_by_key(|(k, _)| *k);
        let ax: Vec<Axis> = ax.into_iter().map(|(_, a)| a).collect();
        if size_of(shape) == 0 && s_n > 0 {
            // Nothing to copy, but the indices must still be checked: the CPU backend
            // checks them (the output is empty, so nothing moves between devices).
            let cpu = oxmx_core::backend::get(oxmx_core::Device::CPU)?;
            let prim = oxmx_core::primitive::Primitive::Gather {
                axes: axes.to_vec(),
            };
            return cpu.run(&prim, ins.to_vec(), shape, src.dtype);
        }
        let s_nd = s_shape.len();
        let mut ops = vec![Operand {
            strides: padded(&rest_strides, s_nd, 0),
            offset: src.data.offset,
        }];
        for x in &idx {
            ops.push(Operand {
                strides: padded(&x.data.strides, 0, rest_strides.len()),
                offset: x.data.offset,
            });
        }
        let m = idx_meta(op, shape, &ops, &ax)?;
        self.gather_walk(op, src, &idx, shape, &m)
    }

    /// `GatherAxis { axis }` (take_along_axis): the output has the indices' shape.
    pub(crate) fn gather_axis(
        &self,
        op: &str,
        ins: &[Input],
        axis: usize,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let (src, ix) = (input(op, ins, 0)?, input(op, ins, 1)?);
        let (Some(&dim), Some(&st)) = (src.shape.get(axis), src.data.strides.get(axis)) else {
            return Err(Error::runtime(op, "Bad axis."));
        };
        let mut s0 = src.data.strides.clone();
        s0[axis] = 0;
        let ops = [
            Operand {
                strides: s0,
                offset: src.data.offset,
            },
            Operand {
                strides: ix.data.strides.clone(),
                offset: ix.data.offset,
            },
        ];
        let m = idx_meta(op, shape, &ops, &[(axis, dim, st)])?;
        self.gather_walk(op, src, &[ix], shape, &m)
    }

    /// A scatter walk over the updates into a copy of `src`.
    #[allow(clippy::too_many_arguments)]
    fn scatter_walk(
        &self,
        op: &str,
        src: &Input,
        upd: &Input,
        idx: &[&Input],
        mode: ScatterMode,
        m: &IdxMeta,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let d = src.dtype;
        if upd.dtype != d {
            return Err(unsupported(op, "Updates of another dtype"));
        }
        let dts: Vec<Dtype> = idx.iter().map(|x| x.dtype).collect();
        let srcs: Vec<String> = match mode {
            ScatterMode::Set => [1, 2]
                .iter()
                .map(|&p| scatter_src(d, mode, &dts, p))
                .collect::<Option<_>>(),
            _ => scatter_src(d, mode, &dts, 0).map(|s| vec![s]),
        }
        .ok_or_else(|| unsupported(op, format!("This scatter on {d}")))?;
        let (mut out, nbytes) = self.new_output(op, shape, d)?;
        let dst = out.slice_mut()?;
        self.copy_into(op, src, dst, 0, &contiguous_strides(shape), size_of(shape))?;
        let n = m.n as usize;
        if n == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let fs = srcs
            .into_iter()
            .map(|s| self.compiler.get(op, s))
            .collect::<Result<Vec<_>>>()?;
        let u = self.device_of(op, upd)?;
        let ix: Vec<&CudaSlice<u8>> = idx
            .iter()
            .map(|x| self.device_of(op, x))
            .collect::<Result<_>>()?;
        let mut err = self.error_word(op)?;
        let stream = &self.alloc.stream;
        if let [claim, write] = fs.as_slice() {
            let wbytes = size_of(shape)
                .checked_mul(8)
                .ok_or_else(|| Error::overflow(op))?;
            let mut win = self.alloc.alloc(op, wbytes)?;
            let ws = win.slice_mut()?;
            stream
                .memset_zeros(ws)
                .map_err(|e| Error::runtime(op, format!("CUDA error: {e:?}")))?;
            let ew = err.slice_mut()?;
            ffi::launch(op, stream, claim, self.grid(n), |b| {
                for x in &ix {
                    ffi::arg(b, *x);
                }
                ffi::arg(b, &*ws);
                ffi::arg(b, m);
                ffi::arg(b, &*ew);
            })?;
            ffi::launch(op, stream, write, self.grid(n), |b| {
                ffi::arg(b, u);
                for x in &ix {
                    ffi::arg(b, *x);
                }
                ffi::arg(b, &*dst);
                ffi::arg(b, &*ws);
                ffi::arg(b, m);
                ffi::arg(b, &*ew);
            })?;
        } else if let [combine] = fs.as_slice() {
            let ew = err.slice_mut()?;
            ffi::launch(op, stream, combine, self.grid(n), |b| {
                ffi::arg(b, u);
                for x in &ix {
                    ffi::arg(b, *x);
                }
                ffi::arg(b, &*dst);
                ffi::arg(b, m);
                ffi::arg(b, &*ew);
            })?;
        }
        self.defer_check(op, err);
        Ok(on_device(out, nbytes, shape))
    }

    /// `ScatterAxis { axis, mode }` (put_along_axis): inputs src, indices, values.
    pub(crate) fn scatter_axis(
        &self,
        op: &str,
        ins: &[Input],
        axis: usize,
        mode: ScatterMode,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let (src, ix, vals) = (input(op, ins, 0)?, input(op, ins, 1)?, input(op, ins, 2)?);
        let dim = *shape
            .get(axis)
            .ok_or_else(|| Error::runtime(op, "Bad axis."))?;
        let cs = contiguous_strides(shape);
        let mut d0 = cs.clone();
        d0[axis] = 0;
        let ops = [
            Operand {
                strides: d0,
                offset: 0,
            },
            Operand {
                strides: vals.data.strides.clone(),
                offset: vals.data.offset,
            },
            Operand {
                strides: ix.data.strides.clone(),
                offset: ix.data.offset,
            },
        ];
        let m = idx_meta(op, &ix.shape, &ops, &[(axis, dim, cs[axis])])?;
        self.scatter_walk(op, src, vals, &[ix], mode, &m, shape)
    }

    /// `Scatter { axes, mode }`: inputs src, updates (S ++ rest), idx_0..idx_k (S).
    pub(crate) fn scatter(
        &self,
        op: &str,
        ins: &[Input],
        axes: &[usize],
        mode: ScatterMode,
        shape: &[usize],
    ) -> Result<ArrayData> {
        let (src, upd) = (input(op, ins, 0)?, input(op, ins, 1)?);
        let idx: Vec<&Input> = ins.iter().skip(2).collect();
        if idx.len() != axes.len() || idx.len() > MAX_INDEX_ARRAYS {
            return Err(unsupported(op, "This many index arrays"));
        }
        let s_shape = idx.first().map(|x| x.shape.clone()).unwrap_or_default();
        if size_of(&upd.shape) == 0 && size_of(&s_shape) > 0 {
            return Err(unsupported(op, "An empty scatter"));
        }
        let cs = contiguous_strides(shape);
        let (mut rest, mut ax) = (Vec::new(), Vec::new());
        for (d, (&l, &st)) in shape.iter().zip(&cs).enumerate() {
            if let Some(k) = axes.iter().position(|&a| a == d) {
                ax.push((k, (d, l, st)));
            } else {
                rest.push(st);
            }
        }
        ax.sort_by_key(|(k, _)| *k);
        let ax: Vec<Axis> = ax.into_iter().map(|(_, a)| a).collect();
        let s_nd = s_shape.len();
        if upd.shape.len() != s_nd + rest.len() {
            return Err(Error::runtime(op, "Update shape mismatch."));
        }
        let mut ops = vec![
            Operand {
                strides: padded(&rest, s_nd, 0),
                offset: 0,
            },
            Operand {
                strides: upd.data.strides.clone(),
                offset: upd.data.offset,
            },
        ];
        for x in &idx {
            ops.push(Operand {
                strides: padded(&x.data.strides, 0, rest.len()),
                offset: x.data.offset,
            });
        }
        let m = idx_meta(op, &upd.shape, &ops, &ax)?;
        self.scatter_walk(op, src, upd, &idx, mode, &m, shape)
    }
}

thread_local! {
    static CHECKS_QUEUED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// An error word queued by `defer_check`, read by `finish_checks` on the thread whose
/// evaluation queued it.
pub(crate) struct DeferredCheck {
    thread: std::thread::ThreadId,
    op: String,
    word: crate::device::CudaMem,
}
