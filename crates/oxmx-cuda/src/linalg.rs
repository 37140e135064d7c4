//! `Primitive::Linalg` on the GPU: cuSOLVER factors each matrix of the batch in column-major
//! scratch; small kernels move matrices between the row-major arrays and that scratch
//! (transposing, masking a triangle, widening to complex) and lay the factors out as the
//! packed output of `LinalgKernel::parts`, the layout the CPU backend writes.
//!
//! A row-major n x n matrix read column-major is its transpose, which several routines
//! use to skip a transposition: inv(A^T) = inv(A)^T, the Cholesky factor and eigenvalues
//! of a symmetric A come from the other triangle of A^T, and the SVD of A^T (m < n)
//! yields A's factors swapped.

use crate::cusolver::{Solver, Span, Ty};
use crate::device::CudaMem;
use crate::kernels::PRELUDE;
use crate::{ffi, on_device, CudaBackend};
use cudarc::driver::CudaSlice;
use oxmx_core::backend::Input;
use oxmx_core::primitive::LinalgKernel;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::Mutex;

const OP: &str = "linalg";

fn cname(t: Ty) -> &'static str {
    match t {
        Ty::R32 => "float",
        Ty::R64 => "double",
        Ty::C32 => "float2",
        Ty::C64 => "double2",
    }
}

/// The CUDA expression converting `v` of `from` to `to` (the widenings and the complex
/// narrowing the routines need).
fn convert(from: Ty, to: Ty) -> Result<&'static str> {
    Ok(match (from, to) {
        (a, b) if a == b => "v",
        (Ty::R32, Ty::C32) => "make_float2(v, 0.0f)",
        (Ty::R64, Ty::C64) => "make_double2(v, 0.0)",
        (Ty::C64, Ty::C32) => "make_float2((float)v.x, (float)v.y)",
        _ => return Err(Error::runtime(OP, "unsupported conversion")),
    })
}

fn nan_of(t: Ty) -> &'static str {
    match t {
        Ty::R32 => "__int_as_float(0x7fc00000)",
        Ty::R64 => "__longlong_as_double(0x7ff8000000000000LL)",
        Ty::C32 => "make_float2(__int_as_float(0x7fc00000), __int_as_float(0x7fc00000))",
        Ty::C64 => "make_double2(__longlong_as_double(0x7ff8000000000000LL), __longlong_as_double(0x7ff8000000000000LL))",
    }
}

fn ty_of(d: Dtype) -> Result<Ty> {
    match d {
        Dtype::Float32 => Ok(Ty::R32),
        Dtype::Float64 => Ok(Ty::R64),
        Dtype::Complex64 => Ok(Ty::C32),
        _ => Err(Error::unsupported(OP, format!("{d} matrices"))),
    }
}

/// Which elements of a matrix a copy keeps (the others become zero).
#[derive(Clone, Copy)]
enum Keep {
    All,
    Upper,
    Lower,
}

/// A batch of `rows x cols` matrices inside a buffer: element offset, batch stride and
/// row/column strides (elements, all non-negative).
#[derive(Clone, Copy)]
struct Layout {
    off: usize,
    batch: usize,
    row: usize,
    col: usize,
}

impl Layout {
    fn row_major(off: usize, rows: usize, cols: usize) -> Layout {
        Layout {
            off,
            batch: rows * cols,
            row: cols,
            col: 1,
        }
    }
    fn col_major(off: usize, ld: usize, batch: usize) -> Layout {
        Layout {
            off,
            batch,
            row: 1,
            col: ld,
        }
    }
    /// One past the last element the batch reaches.
    fn end(&self, nb: usize, rows: usize, cols: usize) -> Option<usize> {
        if nb == 0 || rows == 0 || cols == 0 {
            return Some(self.off);
        }
        let last = (nb - 1)
            .checked_mul(self.batch)?
            .checked_add((rows - 1).checked_mul(self.row)?)?
            .checked_add((cols - 1).checked_mul(self.col)?)?;
        self.off.checked_add(last)?.checked_add(1)
    }
}

const COPY: &str = r#"
extern "C" __global__ void k(const TI* __restrict__ src, TO* __restrict__ dst, long long nb, long long R, long long C,
    long long sb, long long sr, long long sc, long long db, long long dr, long long dc, int keep) {
  long long per = R * C, total = nb * per;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long b = i / per, r = (i % per) / C, c = i % C;
    TO out = TO();
    if (keep == 0 || (keep == 1 && c >= r) || (keep == 2 && c <= r)) { TI v = src[b * sb + r * sr + c * sc]; out = CONV; }
    dst[b * db + r * dr + c * dc] = out;
  }
}
"#;

const EYE: &str = r#"
extern "C" __global__ void k(T* __restrict__ dst, long long nb, long long n) {
  long long total = nb * n * n;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long j = i % (n * n);
    dst[i] = (j / n == j % n) ? (T)1 : (T)0;
  }
}
"#;

const FILL_NAN: &str = r#"
extern "C" __global__ void k(T* __restrict__ dst, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) dst[i] = NANV;
}
"#;

/// LAPACK's 1-based pivots as 0-based values of the output type.
const PIVOTS: &str = r#"
extern "C" __global__ void k(const long long* __restrict__ src, T* __restrict__ dst, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) dst[i] = (T)(src[i] - 1);
}
"#;

/// Pivots 1..n for every matrix (no row interchanges).
const IOTA: &str = r#"
extern "C" __global__ void k(long long* __restrict__ dst, long long nb, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < nb * n; i += (long long)gridDim.x * blockDim.x) dst[i] = i % n + 1;
}
"#;

/// flag[b] = 1 when matrix b (n x n, contiguous) has a zero on its diagonal.
const ZERO_DIAG: &str = r#"
extern "C" __global__ void k(const T* __restrict__ a, int* __restrict__ flag, long long nb, long long n) {
  for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < nb; b += (long long)gridDim.x * blockDim.x) {
    int z = 0;
    for (long long i = 0; i < n; i++) z |= (a[b * n * n + i * (n + 1)] == (T)0);
    flag[b] = z;
  }
}
"#;

/// Device scratch with its span.
struct Scratch {
    mem: CudaMem,
    bytes: usize,
}

impl CudaBackend {
    fn solver(&self) -> Result<&Mutex<Solver>> {
        self.cusolver
            .get_or_init(|| Solver::new(&self.alloc).map(Mutex::new))
            .as_ref()
            .ok_or_else(|| Error::unsupported(OP, "A GPU factorization without libcusolver"))
    }

    fn scratch(&self, elems: usize, ty_size: usize) -> Result<Scratch> {
        let bytes = elems
            .checked_mul(ty_size)
            .ok_or_else(|| Error::overflow(OP))?;
        Ok(Scratch {
            mem: self.alloc.alloc(OP, bytes)?,
            bytes,
        })
    }

    /// Span of `len` elements of size `es` from element `at` of `s`.
    fn span(&self, s: &CudaSlice<u8>, at: usize, len: usize, es: usize) -> Result<Span> {
        let (off, bytes) = at
            .checked_mul(es)
            .zip(len.checked_mul(es))
            .ok_or_else(|| Error::overflow(OP))?;
        Span::of(s, &self.alloc.stream, off, bytes)
    }

    /// Copies a batch of `rows x cols` matrices from `src` (laid out as `sl`, type `ti`)
    /// to `dst` (as `dl`, type `to`), keeping `keep` and zeroing the rest.
    #[allow(clippy::too_many_arguments)]
    fn copy_matrices(
        &self,
        (ti, src, sl): (Ty, &CudaSlice<u8>, Layout),
        (to, dst, dl): (Ty, &mut CudaSlice<u8>, Layout),
        nb: usize,
        rows: usize,
        cols: usize,
        keep: Keep,
    ) -> Result<()> {
        let fits = |l: &Layout, len: usize, es: usize| {
            l.end(nb, rows, cols)
                .and_then(|e| e.checked_mul(es))
                .is_some_and(|b| b <= len)
        };
        if !fits(&sl, src.len(), ti.size()) || !fits(&dl, dst.len(), to.size()) {
            return Err(Error::runtime(OP, "matrix copy outside its buffers"));
        }
        let total = nb * rows * cols;
        if total == 0 {
            return Ok(());
        }
        let code = format!(
            "{PRELUDE}\ntypedef {} TI;\ntypedef {} TO;\n#define CONV ({})\n{COPY}",
            cname(ti),
            cname(to),
            convert(ti, to)?
        );
        let f = self.compiler.get(OP, code)?;
        let s = src.slice(sl.off * ti.size()..);
        let mut d = dst.slice_mut(dl.off * to.size()..);
        let v = |x: usize| x as i64;
        let (nb_, r, c) = (v(nb), v(rows), v(cols));
        let (sb, sr, sc) = (v(sl.batch), v(sl.row), v(sl.col));
        let (db, dr, dc) = (v(dl.batch), v(dl.row), v(dl.col));
        let k: i32 = match keep {
            Keep::All => 0,
            Keep::Upper => 1,
            Keep::Lower => 2,
        };
        ffi::launch(OP, &self.alloc.stream, &f, self.grid(total), |a| {
            ffi::arg(a, &s);
            ffi::arg(a, &mut d);
            ffi::arg(a, &nb_);
            ffi::arg(a, &r);
            ffi::arg(a, &c);
            ffi::arg(a, &sb);
            ffi::arg(a, &sr);
            ffi::arg(a, &sc);
            ffi::arg(a, &db);
            ffi::arg(a, &dr);
            ffi::arg(a, &dc);
            ffi::arg(a, &k);
        })
    }

    /// One of the small kernels above for element type `ty`.
    fn typed_kernel(&self, body: &str, ty: Ty) -> Result<cudarc::driver::CudaFunction> {
        let code = format!(
            "{PRELUDE}\ntypedef {} T;\n#define NANV ({})\n{body}",
            cname(ty),
            nan_of(ty)
        );
        self.compiler.get(OP, code)
    }

    fn fill_nan(&self, ty: Ty, dst: &mut CudaSlice<u8>, at: usize, len: usize) -> Result<()> {
        let end = at.checked_add(len).and_then(|e| e.checked_mul(ty.size()));
        if end.is_none_or(|e| e > dst.len()) {
            return Err(Error::runtime(OP, "fill outside its buffer"));
        }
        if len == 0 {
            return Ok(());
        }
        let mut d = dst.slice_mut(at * ty.size()..);
        let n = len as i64;
        let f = self.typed_kernel(FILL_NAN, ty)?;
        ffi::launch(OP, &self.alloc.stream, &f, self.grid(len), |a| {
            ffi::arg(a, &mut d);
            ffi::arg(a, &n);
        })
    }

    /// The `info` words of `nb` calls (downloads them; synchronises the stream).
    fn infos(&self, info: &CudaSlice<u8>, nb: usize) -> Result<Vec<i32>> {
        let mut host = vec![0u8; nb * 4];
        if nb > 0 {
            let stream = &self.alloc.stream;
            let e = |e| Error::runtime(OP, format!("device to host copy: {e:?}"));
            stream
                .memcpy_dtoh(&info.slice(..nb * 4), &mut host[..])
                .map_err(e)?;
            stream.synchronize().map_err(e)?;
        }
        Ok(host
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub(crate) fn linalg(
        &self,
        k: LinalgKernel,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = k.name();
        let mut it = ins.into_iter();
        let a = it
            .next()
            .ok_or_else(|| Error::runtime(op, "missing input"))?;
        let a = self.contiguous_input(op, a)?;
        let b = it
            .next()
            .map(|x| self.contiguous_input(op, x))
            .transpose()?;
        let nd = a.shape.len();
        if nd < 2 {
            return Err(Error::runtime(op, "not a matrix stack"));
        }
        let (m, n) = (a.shape[nd - 2], a.shape[nd - 1]);
        let nb = size_of(&a.shape[..nd - 2]);
        let cols = b
            .as_ref()
            .and_then(|x| x.shape.last().copied())
            .unwrap_or(0);
        let ty = ty_of(a.dtype)?;
        if ty == Ty::C32 && !matches!(k, LinalgKernel::Svd { .. } | LinalgKernel::Eig { .. }) {
            // the transposition tricks below assume real matrices (A^T, not A^H)
            return Err(Error::unsupported(
                op,
                "A complex factorization other than svd/eig",
            ));
        }
        if nb == 0 || m == 0 || n == 0 || (b.is_some() && cols == 0) {
            // nothing to factor: the CPU backend's answer for empty matrices (identity
            // factors, empty parts) is tiny and exact
            let cpu = oxmx_core::backend::get(oxmx_core::Device::CPU)?;
            let keep: Vec<Input> = std::iter::once(a).chain(b).collect();
            return cpu.run(
                &oxmx_core::primitive::Primitive::Linalg(k),
                keep,
                shape,
                out_dtype,
            );
        }
        let src = self.device_of(op, &a)?;
        let bsrc = match &b {
            Some(x) => Some(self.device_of(op, x)?),
            None => None,
        };
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        let mut solver = self
            .solver()?
            .lock()
            .map_err(|_| Error::runtime(op, "cuSOLVER handle poisoned"))?;
        let mut info = self.scratch(nb, 4)?;
        self.alloc
            .stream
            .memset_zeros(info.mem.slice_mut()?)
            .map_err(|e| Error::runtime(op, format!("{e:?}")))?;
        let job = Job {
            be: self,
            ty,
            nb,
            m,
            n,
            cols,
        };
        let r = job.run(
            k,
            &mut solver,
            src,
            bsrc,
            out.slice_mut()?,
            info.mem.slice_mut()?,
        );
        let infos = self.infos(info.mem.slice()?, nb);
        solver.settle();
        let failed = r?;
        let infos = infos?;
        job.finish(k, out.slice_mut()?, &infos, failed)?;
        Ok(on_device(out, nbytes, shape))
    }
}

/// What to do with matrices whose routine reported `info > 0`.
enum OnFail {
    Singular,
    NotConverged,
    Nan,
    Ignore,
}

/// One batched factorization: the element type and the dims of the first input.
struct Job<'a> {
    be: &'a CudaBackend,
    ty: Ty,
    nb: usize,
    m: usize,
    n: usize,
    cols: usize,
}

impl Job<'_> {
    fn span(&self, s: &CudaSlice<u8>, at: usize, len: usize, t: Ty) -> Result<Span> {
        self.be.span(s, at, len, t.size())
    }

    fn copy(
        &self,
        from: (Ty, &CudaSlice<u8>, Layout),
        to: (Ty, &mut CudaSlice<u8>, Layout),
        rows: usize,
        cols: usize,
        keep: Keep,
    ) -> Result<()> {
        self.be.copy_matrices(from, to, self.nb, rows, cols, keep)
    }

    /// Element offsets of the packed output's parts (in `LinalgKernel::parts` order).
    fn part_offsets(&self, k: LinalgKernel) -> Vec<usize> {
        let mut at = 0;
        k.parts(self.m, self.n, self.cols)
            .iter()
            .map(|p| {
                let here = at;
                at += size_of(p) * self.nb;
                here
            })
            .collect()
    }

    /// Queues the factorization of every matrix; returns how failures are treated.
    fn run(
        &self,
        k: LinalgKernel,
        sol: &mut Solver,
        src: &CudaSlice<u8>,
        bsrc: Option<&CudaSlice<u8>>,
        out: &mut CudaSlice<u8>,
        info: &mut CudaSlice<u8>,
    ) -> Result<OnFail> {
        let (ty, nb, m, n) = (self.ty, self.nb, self.m, self.n);
        let be = self.be;
        let es = ty.size();
        let parts = self.part_offsets(k);
        let part = |i: usize| parts.get(i).copied().unwrap_or(0);
        let infos = (0..nb)
            .map(|b| Span::of(info, &be.alloc.stream, b * 4, 4))
            .collect::<Result<Vec<_>>>()?;
        let inf = |b: usize| {
            infos
                .get(b)
                .copied()
                .ok_or_else(|| Error::runtime(OP, "missing info word"))
        };
        let rm = |off| Layout::row_major(off, m, n);
        match k {
            LinalgKernel::Inv => {
                // inv(A^T) = inv(A)^T: factor the raw (column-major: transposed) copy and
                // solve against I written straight into the output
                let mut lu = be.scratch(nb * n * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, lu.mem.slice_mut()?, rm(0)),
                    n,
                    n,
                    Keep::All,
                )?;
                let piv = be.scratch(nb * n, 8)?;
                if nb * n * n * es > out.len() {
                    return Err(Error::runtime(OP, "inverse outside its buffer"));
                }
                let f = be.typed_kernel(EYE, ty)?;
                let (nb_, n_) = (nb as i64, n as i64);
                ffi::launch(OP, &be.alloc.stream, &f, be.grid(nb * n * n), |a| {
                    ffi::arg(a, &mut *out);
                    ffi::arg(a, &nb_);
                    ffi::arg(a, &n_);
                })?;
                let mut spare = be.scratch(1, 4)?;
                let spare_i = Span::of(spare.mem.slice_mut()?, &be.alloc.stream, 0, 4)?;
                for bi in 0..nb {
                    let a_b = self.span(lu.mem.slice()?, bi * n * n, n * n, ty)?;
                    let p_b = be.span(piv.mem.slice()?, bi * n, n, 8)?;
                    sol.getrf(ty, n as i64, n as i64, a_b, p_b, inf(bi)?)?;
                    let x_b = self.span(out, part(0) + bi * n * n, n * n, ty)?;
                    sol.getrs(ty, false, n as i64, n as i64, a_b, p_b, x_b, spare_i)?;
                }
                Ok(OnFail::Singular)
            }
            LinalgKernel::Solve => {
                let k_ = self.cols;
                let b = bsrc.ok_or_else(|| Error::runtime(OP, "missing right-hand side"))?;
                // A X = B: factor A^T (the raw copy) and solve with its transpose
                let mut lu = be.scratch(nb * n * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, lu.mem.slice_mut()?, rm(0)),
                    n,
                    n,
                    Keep::All,
                )?;
                let piv = be.scratch(nb * n, 8)?;
                let mut x = be.scratch(nb * n * k_, es)?;
                let bl = Layout::row_major(0, n, k_);
                let cl = Layout::col_major(0, n, n * k_);
                self.copy((ty, b, bl), (ty, x.mem.slice_mut()?, cl), n, k_, Keep::All)?;
                let mut spare = be.scratch(1, 4)?;
                let spare_i = Span::of(spare.mem.slice_mut()?, &be.alloc.stream, 0, 4)?;
                for bi in 0..nb {
                    let a_b = self.span(lu.mem.slice()?, bi * n * n, n * n, ty)?;
                    let p_b = be.span(piv.mem.slice()?, bi * n, n, 8)?;
                    sol.getrf(ty, n as i64, n as i64, a_b, p_b, inf(bi)?)?;
                    let x_b = self.span(x.mem.slice()?, bi * n * k_, n * k_, ty)?;
                    sol.getrs(ty, true, n as i64, k_ as i64, a_b, p_b, x_b, spare_i)?;
                }
                let ol = Layout::row_major(part(0), n, k_);
                self.copy((ty, x.mem.slice()?, cl), (ty, out, ol), n, k_, Keep::All)?;
                Ok(OnFail::Singular)
            }
            LinalgKernel::Cholesky { upper } => {
                // A's `upper` triangle is the other triangle of the raw (transposed) copy,
                // and the factor found there, read back row-major, is the one asked for
                let mut f = be.scratch(nb * n * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, f.mem.slice_mut()?, rm(0)),
                    n,
                    n,
                    Keep::All,
                )?;
                for bi in 0..nb {
                    let a_b = self.span(f.mem.slice()?, bi * n * n, n * n, ty)?;
                    sol.potrf(ty, !upper, n as i64, a_b, inf(bi)?)?;
                }
                let keep = if upper { Keep::Upper } else { Keep::Lower };
                self.copy(
                    (ty, f.mem.slice()?, rm(0)),
                    (ty, out, rm(part(0))),
                    n,
                    n,
                    keep,
                )?;
                Ok(OnFail::Nan)
            }
            LinalgKernel::TriInv { upper } => {
                let keep = if upper { Keep::Upper } else { Keep::Lower };
                self.copy((ty, src, rm(0)), (ty, out, rm(part(0))), n, n, keep)?;
                for bi in 0..nb {
                    let a_b = self.span(out, part(0) + bi * n * n, n * n, ty)?;
                    sol.trtri(ty, !upper, n as i64, a_b, inf(bi)?)?;
                }
                Ok(OnFail::Singular)
            }
            LinalgKernel::SolveTriangular { upper } => {
                let k_ = self.cols;
                let b = bsrc.ok_or_else(|| Error::runtime(OP, "missing right-hand side"))?;
                // getrs with no interchanges and a zero strict lower part solves with the
                // upper triangle alone: T itself (column-major) when T is upper, the raw
                // copy T^T with the transposed solve when T is lower
                let mut t = be.scratch(nb * n * n, es)?;
                let (dl, keep) = if upper {
                    (Layout::col_major(0, n, n * n), Keep::Upper)
                } else {
                    (rm(0), Keep::Lower)
                };
                self.copy((ty, src, rm(0)), (ty, t.mem.slice_mut()?, dl), n, n, keep)?;
                // the triangle and the flags were sized for nb matrices of n x n above
                let (nb_, n_) = (nb as i64, n as i64);
                let ts = t.mem.slice()?;
                let f = be.typed_kernel(ZERO_DIAG, ty)?;
                ffi::launch(OP, &be.alloc.stream, &f, be.grid(nb), |a| {
                    ffi::arg(a, ts);
                    ffi::arg(a, &mut *info);
                    ffi::arg(a, &nb_);
                    ffi::arg(a, &n_);
                })?;
                let mut piv = be.scratch(nb * n, 8)?;
                let pv = piv.mem.slice_mut()?;
                let f = be.typed_kernel(IOTA, ty)?;
                ffi::launch(OP, &be.alloc.stream, &f, be.grid(nb * n), |a| {
                    ffi::arg(a, &mut *pv);
                    ffi::arg(a, &nb_);
                    ffi::arg(a, &n_);
                })?;
                let mut x = be.scratch(nb * n * k_, es)?;
                let bl = Layout::row_major(0, n, k_);
                let cl = Layout::col_major(0, n, n * k_);
                self.copy((ty, b, bl), (ty, x.mem.slice_mut()?, cl), n, k_, Keep::All)?;
                let mut spare = be.scratch(1, 4)?;
                let spare_i = Span::of(spare.mem.slice_mut()?, &be.alloc.stream, 0, 4)?;
                for bi in 0..nb {
                    let a_b = self.span(t.mem.slice()?, bi * n * n, n * n, ty)?;
                    let p_b = be.span(piv.mem.slice()?, bi * n, n, 8)?;
                    let x_b = self.span(x.mem.slice()?, bi * n * k_, n * k_, ty)?;
                    sol.getrs(ty, !upper, n as i64, k_ as i64, a_b, p_b, x_b, spare_i)?;
                }
                let ol = Layout::row_major(part(0), n, k_);
                self.copy((ty, x.mem.slice()?, cl), (ty, out, ol), n, k_, Keep::All)?;
                Ok(OnFail::Singular)
            }
            LinalgKernel::Qr => {
                let r = m.min(n);
                let cl = Layout::col_major(0, m, m * n);
                let mut c = be.scratch(nb * m * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, c.mem.slice_mut()?, cl),
                    m,
                    n,
                    Keep::All,
                )?;
                let tau = be.scratch(nb * r, es)?;
                let cs = c.mem.slice()?;
                for bi in 0..nb {
                    let a_b = self.span(cs, bi * m * n, m * n, ty)?;
                    let t_b = self.span(tau.mem.slice()?, bi * r, r, ty)?;
                    sol.geqrf(ty, m as i64, n as i64, a_b, t_b, inf(bi)?)?;
                }
                // R: the upper part of the first r rows
                let rl = Layout::row_major(part(1), r, n);
                self.copy((ty, cs, cl), (ty, out, rl), r, n, Keep::Upper)?;
                for bi in 0..nb {
                    let a_b = self.span(cs, bi * m * n, m * r, ty)?;
                    let t_b = self.span(tau.mem.slice()?, bi * r, r, ty)?;
                    sol.orgqr(ty, m as i64, r as i64, a_b, t_b, inf(bi)?)?;
                }
                let ql = Layout::row_major(part(0), m, r);
                self.copy((ty, cs, cl), (ty, out, ql), m, r, Keep::All)?;
                Ok(OnFail::Ignore)
            }
            LinalgKernel::Svd { uv } => self.svd(sol, uv, src, out, info, &parts),
            LinalgKernel::Eigh { upper, vectors } => {
                let mut v = be.scratch(nb * n * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, v.mem.slice_mut()?, rm(0)),
                    n,
                    n,
                    Keep::All,
                )?;
                for bi in 0..nb {
                    let a_b = self.span(v.mem.slice()?, bi * n * n, n * n, ty)?;
                    let w_b = self.span(out, part(0) + bi * n, n, ty.real())?;
                    sol.syevd(ty, !upper, vectors, n as i64, a_b, w_b, inf(bi)?)?;
                }
                if vectors {
                    let cl = Layout::col_major(0, n, n * n);
                    let vl = rm(part(1));
                    self.copy((ty, v.mem.slice()?, cl), (ty, out, vl), n, n, Keep::All)?;
                }
                Ok(OnFail::Nan)
            }
            LinalgKernel::Eig { vectors } => {
                // cuSOLVER's complex geev (LAPACK's normalisation) on A widened to complex
                let ct = if ty == Ty::R64 { Ty::C64 } else { Ty::C32 };
                let cl = Layout::col_major(0, n, n * n);
                let mut c = be.scratch(nb * n * n, ct.size())?;
                self.copy(
                    (ty, src, rm(0)),
                    (ct, c.mem.slice_mut()?, cl),
                    n,
                    n,
                    Keep::All,
                )?;
                let w = be.scratch(nb * n, ct.size())?;
                let vr = be.scratch(if vectors { nb * n * n } else { 1 }, ct.size())?;
                for bi in 0..nb {
                    let a_b = self.span(c.mem.slice()?, bi * n * n, n * n, ct)?;
                    let w_b = self.span(w.mem.slice()?, bi * n, n, ct)?;
                    let v_b = if vectors {
                        Some(self.span(vr.mem.slice()?, bi * n * n, n * n, ct)?)
                    } else {
                        None
                    };
                    sol.geev(ct, n as i64, a_b, w_b, v_b, inf(bi)?)?;
                }
                let wl = Layout::row_major(0, 1, n);
                let wo = Layout::row_major(part(0), 1, n);
                self.copy(
                    (ct, w.mem.slice()?, wl),
                    (Ty::C32, out, wo),
                    1,
                    n,
                    Keep::All,
                )?;
                if vectors {
                    let vo = rm(part(1));
                    self.copy(
                        (ct, vr.mem.slice()?, cl),
                        (Ty::C32, out, vo),
                        n,
                        n,
                        Keep::All,
                    )?;
                }
                Ok(OnFail::NotConverged)
            }
            LinalgKernel::LuFactor => {
                let r = m.min(n);
                let cl = Layout::col_major(0, m, m * n);
                let mut c = be.scratch(nb * m * n, es)?;
                self.copy(
                    (ty, src, rm(0)),
                    (ty, c.mem.slice_mut()?, cl),
                    m,
                    n,
                    Keep::All,
                )?;
                let piv = be.scratch(nb * r, 8)?;
                for bi in 0..nb {
                    let a_b = self.span(c.mem.slice()?, bi * m * n, m * n, ty)?;
                    let p_b = be.span(piv.mem.slice()?, bi * r, r, 8)?;
                    sol.getrf(ty, m as i64, n as i64, a_b, p_b, inf(bi)?)?;
                }
                self.copy(
                    (ty, c.mem.slice()?, cl),
                    (ty, out, rm(part(0))),
                    m,
                    n,
                    Keep::All,
                )?;
                let total = nb * r;
                let end = (part(1) + total) * es;
                if end > out.len() || total * 8 > piv.bytes {
                    return Err(Error::runtime(OP, "pivots outside their buffers"));
                }
                let mut po = out.slice_mut(part(1) * es..);
                let ps = piv.mem.slice()?;
                let tot = total as i64;
                let f = be.typed_kernel(PIVOTS, ty)?;
                ffi::launch(OP, &be.alloc.stream, &f, be.grid(total), |a| {
                    ffi::arg(a, ps);
                    ffi::arg(a, &mut po);
                    ffi::arg(a, &tot);
                })?;
                // a zero pivot is reported but the factorization completes, as LAPACK's
                Ok(OnFail::Ignore)
            }
        }
    }

    /// SVD: the orientation with rows >= columns is factored (A itself column-major when
    /// m >= n; the raw copy A^T otherwise, whose U and V^H are A's V^H and U, read back
    /// without a transposition).
    fn svd(
        &self,
        sol: &mut Solver,
        uv: bool,
        src: &CudaSlice<u8>,
        out: &mut CudaSlice<u8>,
        info: &mut CudaSlice<u8>,
        parts: &[usize],
    ) -> Result<OnFail> {
        let (ty, nb, m, n) = (self.ty, self.nb, self.m, self.n);
        let be = self.be;
        let es = ty.size();
        let r = m.min(n);
        let tall = m >= n;
        let (rows, cols) = if tall { (m, n) } else { (n, m) };
        let rm = Layout::row_major(0, m, n);
        let cl = Layout::col_major(0, rows, m * n);
        let mut c = be.scratch(nb * m * n, es)?;
        let dl = if tall { cl } else { rm };
        self.copy((ty, src, rm), (ty, c.mem.slice_mut()?, dl), m, n, Keep::All)?;
        let s_part = if uv { parts.get(1) } else { parts.first() }
            .copied()
            .unwrap_or(0);
        // real singular values go straight to the output; complex64 input has a complex
        // output (zero imaginary parts), written from real scratch
        let s_tmp = be.scratch(nb * r, ty.real().size())?;
        let real_out = ty.real() == ty;
        let u = if uv && tall {
            Some(be.scratch(nb * m * m, es)?)
        } else {
            None
        };
        let v = if uv && tall {
            Some(be.scratch(nb * n * n, es)?)
        } else {
            None
        };
        let (up, vp) = (
            parts.first().copied().unwrap_or(0),
            parts.get(2).copied().unwrap_or(0),
        );
        for bi in 0..nb {
            let a_b = self.span(c.mem.slice()?, bi * m * n, m * n, ty)?;
            let s_b = if real_out {
                self.span(out, s_part + bi * r, r, ty)?
            } else {
                self.span(s_tmp.mem.slice()?, bi * r, r, ty.real())?
            };
            let vecs = match (uv, &u, &v) {
                (false, _, _) => None,
                (true, Some(u), Some(v)) => Some((
                    self.span(u.mem.slice()?, bi * m * m, m * m, ty)?,
                    self.span(v.mem.slice()?, bi * n * n, n * n, ty)?,
                )),
                // wide: U of A^T (n x n) is A's V^H read row-major, V^H of A^T is A's U
                _ => Some((
                    self.span(out, vp + bi * n * n, n * n, ty)?,
                    self.span(out, up + bi * m * m, m * m, ty)?,
                )),
            };
            let i_b = Span::of(info, &be.alloc.stream, bi * 4, 4)?;
            sol.gesvd(ty, rows as i64, cols as i64, a_b, s_b, vecs, i_b)?;
        }
        if !real_out {
            let l = Layout::row_major(0, 1, r);
            let o = Layout::row_major(s_part, 1, r);
            self.copy(
                (ty.real(), s_tmp.mem.slice()?, l),
                (ty, out, o),
                1,
                r,
                Keep::All,
            )?;
        }
        if let (Some(u), Some(v)) = (u, v) {
            let ul = Layout::col_major(0, m, m * m);
            let vl = Layout::col_major(0, n, n * n);
            let uo = Layout::row_major(up, m, m);
            let vo = Layout::row_major(vp, n, n);
            self.copy((ty, u.mem.slice()?, ul), (ty, out, uo), m, m, Keep::All)?;
            self.copy((ty, v.mem.slice()?, vl), (ty, out, vo), n, n, Keep::All)?;
        }
        Ok(OnFail::NotConverged)
    }

    /// Acts on the `info` words once the stream has run the calls.
    fn finish(
        &self,
        k: LinalgKernel,
        out: &mut CudaSlice<u8>,
        infos: &[i32],
        on_fail: OnFail,
    ) -> Result<()> {
        let op = k.name();
        if let Some(&bad) = infos.iter().find(|&&i| i < 0) {
            return Err(Error::runtime(
                op,
                format!("cuSOLVER rejected argument {}", -bad),
            ));
        }
        let failed: Vec<usize> = (0..infos.len()).filter(|&b| infos[b] > 0).collect();
        if failed.is_empty() {
            return Ok(());
        }
        match on_fail {
            OnFail::Ignore => Ok(()),
            OnFail::Singular => Err(Error::runtime(
                op,
                "The matrix is singular: it has no inverse.",
            )),
            OnFail::NotConverged if matches!(k, LinalgKernel::Svd { .. }) => {
                Err(Error::runtime(op, "SVD did not converge."))
            }
            OnFail::NotConverged => Err(Error::runtime(
                op,
                "The eigendecomposition did not converge.",
            )),
            OnFail::Nan => {
                // every part of a failed matrix becomes NaN (as on the CPU)
                let mut at = 0;
                for p in k.parts(self.m, self.n, self.cols) {
                    let sz = size_of(&p);
                    for &b in &failed {
                        self.be.fill_nan(self.ty, out, at + b * sz, sz)?;
                    }
                    at += sz * self.nb;
                }
                Ok(())
            }
        }
    }
}
