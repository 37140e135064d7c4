//! Dense factorizations through cuSOLVER (every `unsafe` call of it lives here). Each
//! routine works on one column-major matrix given by device addresses whose extents the
//! wrapper checks against the buffers they came from before the call is queued; the
//! calls run on the backend's stream, with workspaces from its allocator.

use crate::device::{Allocator, CudaMem};
use cudarc::cusolver::{result as sol, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use oxmx_core::{Error, Result};
use std::ffi::c_void;
use std::sync::Arc;

/// Element types of the matrices (cuSOLVER's data and compute type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    R32,
    R64,
    C32,
    C64,
}

impl Ty {
    pub fn size(self) -> usize {
        match self {
            Ty::R32 => 4,
            Ty::R64 | Ty::C32 => 8,
            Ty::C64 => 16,
        }
    }
    fn cuda(self) -> sys::cudaDataType {
        use sys::cudaDataType::*;
        match self {
            Ty::R32 => CUDA_R_32F,
            Ty::R64 => CUDA_R_64F,
            Ty::C32 => CUDA_C_32F,
            Ty::C64 => CUDA_C_64F,
        }
    }
    /// The real type of the same precision (singular values, symmetric eigenvalues).
    pub fn real(self) -> Ty {
        match self {
            Ty::R32 | Ty::C32 => Ty::R32,
            Ty::R64 | Ty::C64 => Ty::R64,
        }
    }
}

/// A device address with the number of bytes that may be used from it.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    ptr: u64,
    bytes: usize,
}

impl Span {
    /// `bytes` bytes of `s` from byte `off` (checked against the buffer).
    pub fn of(s: &CudaSlice<u8>, stream: &CudaStream, off: usize, bytes: usize) -> Result<Span> {
        let end = off.checked_add(bytes).ok_or_else(|| Error::overflow(OP))?;
        if end > s.len() {
            return Err(Error::runtime(OP, "operand outside its buffer"));
        }
        // One stream orders every use of the buffer; the address stays valid while the
        // caller holds the slice (the allocator caches freed buffers on the same stream).
        let (p, _guard) = s.device_ptr(stream);
        Ok(Span {
            ptr: p + off as u64,
            bytes,
        })
    }

    fn holds(self, bytes: usize) -> Result<*mut c_void> {
        if bytes > self.bytes {
            return Err(Error::runtime(OP, "operand smaller than the matrix"));
        }
        Ok(self.ptr as *mut c_void)
    }
}

const OP: &str = "linalg";

/// Bytes a column-major `rows x cols` matrix with leading dimension `ld` reaches.
fn reach(ty: Ty, rows: i64, cols: i64, ld: i64) -> Result<usize> {
    if rows < 0 || cols < 0 || ld < rows.max(1) {
        return Err(Error::runtime(OP, "bad matrix layout"));
    }
    if rows == 0 || cols == 0 {
        return Ok(0);
    }
    let elems = (cols - 1)
        .checked_mul(ld)
        .and_then(|v| v.checked_add(rows))
        .ok_or_else(|| Error::overflow(OP))?;
    usize::try_from(elems)
        .ok()
        .and_then(|e| e.checked_mul(ty.size()))
        .ok_or_else(|| Error::overflow(OP))
}

fn err(e: impl std::fmt::Debug) -> Error {
    Error::runtime(OP, format!("cuSOLVER: {e:?}"))
}

fn fill(upper: bool) -> sys::cublasFillMode_t {
    if upper {
        sys::cublasFillMode_t::CUBLAS_FILL_MODE_UPPER
    } else {
        sys::cublasFillMode_t::CUBLAS_FILL_MODE_LOWER
    }
}

fn mode(vectors: bool) -> sys::cusolverEigMode_t {
    if vectors {
        sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR
    } else {
        sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_NOVECTOR
    }
}

/// Device and host scratch for one call.
struct Work {
    /// Held only to keep the device scratch alive until the call has been queued.
    _dev: Option<CudaMem>,
    host: Vec<u8>,
    dev_ptr: u64,
}

pub struct Solver {
    handle: sys::cusolverDnHandle_t,
    params: sys::cusolverDnParams_t,
    stream: Arc<CudaStream>,
    alloc: Arc<Allocator>,
    /// Scratch of queued calls, kept until `settle` (after the stream has synchronised).
    parked: Vec<Work>,
}

// SAFETY: the handle and params are owned by this value; cuSOLVER allows a handle on any
// thread as long as calls on it are not concurrent, and the backend keeps the solver
// behind a Mutex.
unsafe impl Send for Solver {}

impl Drop for Solver {
    fn drop(&mut self) {
        // SAFETY: both were created in `new` and are destroyed once, here.
        unsafe {
            let _ = sol::dn_destroy_params(self.params);
            let _ = sol::dn_destroy(self.handle);
        }
    }
}

impl Solver {
    /// None when libcusolver cannot be loaded or initialised.
    pub fn new(alloc: &Arc<Allocator>) -> Option<Solver> {
        // SAFETY: only tries to dlopen the library by name.
        if !unsafe { sys::is_culib_present() } {
            return None;
        }
        let handle = sol::dn_create().ok()?;
        let params = match sol::dn_create_params() {
            Ok(p) => p,
            Err(_) => {
                // SAFETY: the handle was just created and is not used again.
                let _ = unsafe { sol::dn_destroy(handle) };
                return None;
            }
        };
        let s = Solver {
            handle,
            params,
            stream: Arc::clone(&alloc.stream),
            alloc: Arc::clone(alloc),
            parked: Vec::new(),
        };
        // SAFETY: the handle is live; the stream is the backend's and outlives the solver.
        unsafe { sol::dn_set_stream(s.handle, s.stream.cu_stream() as sys::cudaStream_t) }.ok()?;
        Some(s)
    }

    /// Frees the scratch of the calls queued so far: call after synchronising.
    pub fn settle(&mut self) {
        self.parked.clear();
    }

    fn work(&self, dev: usize, host: usize) -> Result<Work> {
        let (mem, ptr) = if dev > 0 {
            let m = self.alloc.alloc(OP, dev)?;
            let p = Span::of(m.slice()?, &self.stream, 0, dev)?.ptr;
            (Some(m), p)
        } else {
            (None, 0)
        };
        Ok(Work {
            _dev: mem,
            host: vec![0u8; host.max(1)],
            dev_ptr: ptr,
        })
    }

    /// One routine that takes device and host workspaces: `query` writes their sizes,
    /// `call` runs with them (device address and bytes, host address and bytes). The
    /// workspaces are parked until `settle`, so they outlive the queued call.
    fn with_workspace(
        &mut self,
        query: impl FnOnce(&mut usize, &mut usize) -> sys::cusolverStatus_t,
        call: impl FnOnce(*mut c_void, usize, *mut c_void, usize) -> sys::cusolverStatus_t,
    ) -> Result<()> {
        let (mut dw, mut hw) = (0usize, 0usize);
        query(&mut dw, &mut hw).result().map_err(err)?;
        let mut w = self.work(dw, hw)?;
        let (dev, host) = (w.dev_ptr as *mut c_void, w.host.as_mut_ptr() as *mut c_void);
        let r = call(dev, dw, host, hw).result().map_err(err);
        self.parked.push(w);
        r
    }

    fn info_ptr(info: Span) -> Result<*mut i32> {
        Ok(info.holds(4)? as *mut i32)
    }

    /// LU with partial pivoting of `a` (m x n, in place); pivots (1-based i64) into `ipiv`.
    pub fn getrf(&mut self, ty: Ty, m: i64, n: i64, a: Span, ipiv: Span, info: Span) -> Result<()> {
        let pa = a.holds(reach(ty, m, n, m.max(1))?)?;
        let pp = ipiv.holds(8 * m.min(n).max(0) as usize)? as *mut i64;
        let pi = Self::info_ptr(info)?;
        let (t, lda) = (ty.cuda(), m.max(1));
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle; it reads only the scalars.
            |dw, hw| unsafe { sys::cusolverDnXgetrf_bufferSize(h, p, m, n, t, pa, lda, t, dw, hw) },
            // SAFETY: `a` holds the m x n matrix (lda = m), `ipiv` min(m, n) i64s and `info`
            // one int, all checked above; the workspaces have the sizes cuSOLVER asked for
            // and live until the call has been queued (device scratch is returned to a cache
            // ordered by the same stream).
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXgetrf(h, p, m, n, t, pa, lda, pp, t, d, dn, hst, hn, pi)
            },
        )
    }

    /// Solves `op(A) X = B` with `getrf`'s factors; `b` (n x nrhs) is overwritten by X.
    #[allow(clippy::too_many_arguments)]
    pub fn getrs(
        &mut self,
        ty: Ty,
        transpose: bool,
        n: i64,
        nrhs: i64,
        a: Span,
        ipiv: Span,
        b: Span,
        info: Span,
    ) -> Result<()> {
        let pa = a.holds(reach(ty, n, n, n.max(1))?)?;
        let pp = ipiv.holds(8 * n.max(0) as usize)? as *const i64;
        let pb = b.holds(reach(ty, n, nrhs, n.max(1))?)?;
        let pi = Self::info_ptr(info)?;
        let op = if transpose {
            sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            sys::cublasOperation_t::CUBLAS_OP_N
        };
        let t = ty.cuda();
        // SAFETY: extents of `a` (n x n), `ipiv` (n) and `b` (n x nrhs) checked above.
        unsafe {
            sys::cusolverDnXgetrs(
                self.handle,
                self.params,
                op,
                n,
                nrhs,
                t,
                pa,
                n.max(1),
                pp,
                t,
                pb,
                n.max(1),
                pi,
            )
        }
        .result()
        .map_err(err)
    }

    /// Cholesky factor of the `upper`/lower triangle of `a` (n x n, in place).
    pub fn potrf(&mut self, ty: Ty, upper: bool, n: i64, a: Span, info: Span) -> Result<()> {
        let pa = a.holds(reach(ty, n, n, n.max(1))?)?;
        let pi = Self::info_ptr(info)?;
        let (t, u) = (ty.cuda(), fill(upper));
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXpotrf_bufferSize(h, p, u, n, t, pa, n.max(1), t, dw, hw)
            },
            // SAFETY: `a` holds n x n elements and `info` one int (checked); workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXpotrf(h, p, u, n, t, pa, n.max(1), t, d, dn, hst, hn, pi)
            },
        )
    }

    /// Inverse of the non-unit `upper`/lower triangle of `a` (n x n, in place).
    pub fn trtri(&mut self, ty: Ty, upper: bool, n: i64, a: Span, info: Span) -> Result<()> {
        let pa = a.holds(reach(ty, n, n, n.max(1))?)?;
        let pi = Self::info_ptr(info)?;
        let (t, u) = (ty.cuda(), fill(upper));
        let diag = sys::cublasDiagType_t::CUBLAS_DIAG_NON_UNIT;
        let h = self.handle;
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXtrtri_bufferSize(h, u, diag, n, t, pa, n.max(1), dw, hw)
            },
            // SAFETY: `a` holds n x n elements and `info` one int (checked); workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXtrtri(h, u, diag, n, t, pa, n.max(1), d, dn, hst, hn, pi)
            },
        )
    }

    /// Householder QR of `a` (m x n, in place: R on and above the diagonal, the
    /// reflectors below it) with their scalars in `tau` (min(m, n)).
    #[allow(clippy::too_many_arguments)]
    pub fn geqrf(&mut self, ty: Ty, m: i64, n: i64, a: Span, tau: Span, info: Span) -> Result<()> {
        let k = m.min(n);
        let pa = a.holds(reach(ty, m, n, m.max(1))?)?;
        let pt = tau.holds(ty.size() * k.max(0) as usize)?;
        let pi = Self::info_ptr(info)?;
        let t = ty.cuda();
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXgeqrf_bufferSize(h, p, m, n, t, pa, m.max(1), t, pt, t, dw, hw)
            },
            // SAFETY: `a` (m x n), `tau` (k) and `info` checked above; workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXgeqrf(h, p, m, n, t, pa, m.max(1), t, pt, t, d, dn, hst, hn, pi)
            },
        )
    }

    /// The first `k` columns of Q (over `a`, m x k, lda = m) from `geqrf`'s reflectors
    /// and `tau` (k).
    #[allow(clippy::too_many_arguments)]
    pub fn orgqr(&mut self, ty: Ty, m: i64, k: i64, a: Span, tau: Span, info: Span) -> Result<()> {
        let pa = a.holds(reach(ty, m, k, m.max(1))?)?;
        let pt = tau.holds(ty.size() * k.max(0) as usize)?;
        let pi = Self::info_ptr(info)?;
        let too_big = || Error::runtime(OP, "QR larger than cuSOLVER's 32-bit sizes");
        let (mi, ki) = (
            i32::try_from(m).map_err(|_| too_big())?,
            i32::try_from(k).map_err(|_| too_big())?,
        );
        let lda = mi.max(1);
        let mut lwork = 0i32;
        // SAFETY: `a` (m x k), `tau` (k) and `info` were checked above; size queries read
        // only scalars.
        match ty {
            Ty::R32 => unsafe {
                sys::cusolverDnSorgqr_bufferSize(
                    self.handle,
                    mi,
                    ki,
                    ki,
                    pa as *const f32,
                    lda,
                    pt as *const f32,
                    &mut lwork,
                )
            },
            Ty::R64 => unsafe {
                sys::cusolverDnDorgqr_bufferSize(
                    self.handle,
                    mi,
                    ki,
                    ki,
                    pa as *const f64,
                    lda,
                    pt as *const f64,
                    &mut lwork,
                )
            },
            _ => return Err(Error::unsupported(OP, "complex QR")),
        }
        .result()
        .map_err(err)?;
        let bytes = (lwork.max(1) as usize)
            .checked_mul(ty.size())
            .ok_or_else(|| Error::overflow(OP))?;
        let w = self.work(bytes, 0)?;
        // SAFETY: as above; the work array holds `lwork` elements as cuSOLVER asked.
        let r = match ty {
            Ty::R32 => unsafe {
                sys::cusolverDnSorgqr(
                    self.handle,
                    mi,
                    ki,
                    ki,
                    pa as *mut f32,
                    lda,
                    pt as *const f32,
                    w.dev_ptr as *mut f32,
                    lwork,
                    pi,
                )
            },
            _ => unsafe {
                sys::cusolverDnDorgqr(
                    self.handle,
                    mi,
                    ki,
                    ki,
                    pa as *mut f64,
                    lda,
                    pt as *const f64,
                    w.dev_ptr as *mut f64,
                    lwork,
                    pi,
                )
            },
        }
        .result()
        .map_err(err);
        self.parked.push(w);
        r
    }

    /// SVD of `a` (m x n with m >= n, destroyed): singular values into `s` (real type),
    /// and with `uv` all of U (m x m) and V^H (n x n).
    #[allow(clippy::too_many_arguments)]
    pub fn gesvd(
        &mut self,
        ty: Ty,
        m: i64,
        n: i64,
        a: Span,
        s: Span,
        uv: Option<(Span, Span)>,
        info: Span,
    ) -> Result<()> {
        if m < n {
            return Err(Error::runtime(OP, "gesvd needs rows >= columns"));
        }
        let pa = a.holds(reach(ty, m, n, m.max(1))?)?;
        let ps = s.holds(ty.real().size() * n.max(0) as usize)?;
        let pi = Self::info_ptr(info)?;
        let (job, pu, pv) = match uv {
            Some((u, v)) => (
                b'A' as i8,
                u.holds(reach(ty, m, m, m.max(1))?)?,
                v.holds(reach(ty, n, n, n.max(1))?)?,
            ),
            None => (b'N' as i8, std::ptr::null_mut(), std::ptr::null_mut()),
        };
        let (t, tr) = (ty.cuda(), ty.real().cuda());
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXgesvd_bufferSize(
                    h,
                    p,
                    job,
                    job,
                    m,
                    n,
                    t,
                    pa,
                    m.max(1),
                    tr,
                    ps,
                    t,
                    pu,
                    m.max(1),
                    t,
                    pv,
                    n.max(1),
                    t,
                    dw,
                    hw,
                )
            },
            // SAFETY: `a` (m x n), `s` (n reals), U (m x m) and V^H (n x n) when asked for,
            // and `info` were checked above; workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXgesvd(
                    h,
                    p,
                    job,
                    job,
                    m,
                    n,
                    t,
                    pa,
                    m.max(1),
                    tr,
                    ps,
                    t,
                    pu,
                    m.max(1),
                    t,
                    pv,
                    n.max(1),
                    t,
                    d,
                    dn,
                    hst,
                    hn,
                    pi,
                )
            },
        )
    }

    /// Eigenvalues (ascending, into `w`) of the symmetric matrix whose `upper`/lower
    /// triangle `a` (n x n) holds; with `vectors` the eigenvectors replace `a` (columns).
    #[allow(clippy::too_many_arguments)]
    pub fn syevd(
        &mut self,
        ty: Ty,
        upper: bool,
        vectors: bool,
        n: i64,
        a: Span,
        w: Span,
        info: Span,
    ) -> Result<()> {
        let pa = a.holds(reach(ty, n, n, n.max(1))?)?;
        let pw = w.holds(ty.real().size() * n.max(0) as usize)?;
        let pi = Self::info_ptr(info)?;
        let (t, tr, u, j) = (ty.cuda(), ty.real().cuda(), fill(upper), mode(vectors));
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXsyevd_bufferSize(h, p, j, u, n, t, pa, n.max(1), tr, pw, t, dw, hw)
            },
            // SAFETY: `a` (n x n), `w` (n reals) and `info` checked above; workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXsyevd(
                    h,
                    p,
                    j,
                    u,
                    n,
                    t,
                    pa,
                    n.max(1),
                    tr,
                    pw,
                    t,
                    d,
                    dn,
                    hst,
                    hn,
                    pi,
                )
            },
        )
    }

    /// Eigenvalues (into `w`) and, with `vr`, right eigenvectors (columns, n x n) of the
    /// complex matrix `a` (n x n, destroyed).
    pub fn geev(
        &mut self,
        ty: Ty,
        n: i64,
        a: Span,
        w: Span,
        vr: Option<Span>,
        info: Span,
    ) -> Result<()> {
        if !matches!(ty, Ty::C32 | Ty::C64) {
            return Err(Error::runtime(OP, "geev takes complex matrices here"));
        }
        let pa = a.holds(reach(ty, n, n, n.max(1))?)?;
        let pw = w.holds(ty.size() * n.max(0) as usize)?;
        let pi = Self::info_ptr(info)?;
        let pv = match vr {
            Some(v) => v.holds(reach(ty, n, n, n.max(1))?)?,
            None => std::ptr::null_mut(),
        };
        let (t, jl, jr) = (ty.cuda(), mode(false), mode(vr.is_some()));
        let ld = n.max(1);
        let (h, p) = (self.handle, self.params);
        self.with_workspace(
            // SAFETY: a size query on a live handle.
            |dw, hw| unsafe {
                sys::cusolverDnXgeev_bufferSize(
                    h,
                    p,
                    jl,
                    jr,
                    n,
                    t,
                    pa,
                    ld,
                    t,
                    pw,
                    t,
                    std::ptr::null(),
                    1,
                    t,
                    pv,
                    ld,
                    t,
                    dw,
                    hw,
                )
            },
            // SAFETY: `a` (n x n), `w` (n), VR (n x n) when asked for and `info` checked
            // above; no left vectors are asked for (null, ld 1); workspaces as asked.
            |d, dn, hst, hn| unsafe {
                sys::cusolverDnXgeev(
                    h,
                    p,
                    jl,
                    jr,
                    n,
                    t,
                    pa,
                    ld,
                    t,
                    pw,
                    t,
                    std::ptr::null_mut(),
                    1,
                    t,
                    pv,
                    ld,
                    t,
                    d,
                    dn,
                    hst,
                    hn,
                    pi,
                )
            },
        )
    }
}
