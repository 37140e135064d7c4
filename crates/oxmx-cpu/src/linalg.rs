//! `LinalgKernel` on the CPU with `faer`: each matrix of the batch is factored on its
//! own (matrices in parallel, faer parallel inside large ones) into row-major parts that
//! are then laid out as the packed output (`LinalgKernel::parts`).

use crate::elem::Elem;
use crate::strided::{map1, View};
use faer::linalg::solvers::DenseSolveCore;
use faer::traits::RealField;
use faer::{c32, Mat, MatRef, Side};
use num_complex::Complex;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::LinalgKernel;
use oxmx_core::shape::size_of;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// A real scalar faer factors (f32, f64).
trait Real: RealField + Elem + num_traits::Float + Copy + Send + Sync {}
impl Real for f32 {}
impl Real for f64 {}

/// One matrix's outputs, row-major, in `parts` order.
type Parts<T> = Vec<Vec<T>>;

/// A contiguous row-major copy of `x`'s elements.
pub(crate) fn contiguous<T: Elem + Default + Copy>(x: &Input) -> Vec<T> {
    let mut v = vec![T::default(); x.size()];
    map1(&x.shape, View::<T>::of(x), &mut v, |e: T| e);
    v
}

fn to_mat<T: Copy + faer::traits::ComplexField>(d: &[T], m: usize, n: usize) -> Mat<T> {
    Mat::from_fn(m, n, |i, j| d[i * n + j])
}

fn rows<T: Copy>(a: MatRef<'_, T>) -> Vec<T> {
    let (m, n) = (a.nrows(), a.ncols());
    let mut v = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            v.push(a[(i, j)]);
        }
    }
    v
}

/// Row-major `a^T` (the conjugate transpose when `conj` maps to the conjugate).
fn rows_t<T: Copy>(a: MatRef<'_, T>, conj: impl Fn(T) -> T) -> Vec<T> {
    let (m, n) = (a.nrows(), a.ncols());
    let mut v = Vec::with_capacity(m * n);
    for j in 0..n {
        for i in 0..m {
            v.push(conj(a[(i, j)]));
        }
    }
    v
}

fn singular(op: &str) -> Error {
    Error::runtime(op, "The matrix is singular: it has no inverse.")
}

/// The triangle of `d` (n x n) as a matrix, the rest zero; refuses a zero on the diagonal.
fn triangle<T: Real>(op: &str, d: &[T], n: usize, upper: bool) -> Result<Mat<T>> {
    let t = Mat::from_fn(n, n, |i, j| {
        if (upper && j >= i) || (!upper && j <= i) {
            d[i * n + j]
        } else {
            T::zero()
        }
    });
    if (0..n).any(|i| t[(i, i)] == T::zero()) {
        return Err(singular(op));
    }
    Ok(t)
}

fn tri_solve<T: Real>(t: &Mat<T>, rhs: &mut Mat<T>, upper: bool) {
    if upper {
        t.solve_upper_triangular_in_place(rhs);
    } else {
        t.solve_lower_triangular_in_place(rhs);
    }
}

/// `P A = L U` with a check that no pivot is exactly zero (LAPACK's "singular" test).
fn lu_nonsingular<T: Real>(op: &str, a: &Mat<T>) -> Result<faer::linalg::solvers::PartialPivLu<T>> {
    let lu = a.partial_piv_lu();
    let u = lu.U();
    if (0..u.nrows().min(u.ncols())).any(|i| u[(i, i)] == T::zero()) {
        return Err(singular(op));
    }
    Ok(lu)
}

/// LAPACK's row interchanges (ipiv, from 0) for the row order `fwd` (row i of `P A` is
/// row fwd[i] of `A`): swapping row i with row ipiv[i] for i = 0, 1, .. yields it.
fn swaps_of(fwd: &[usize], k: usize) -> Vec<usize> {
    let m = fwd.len();
    let mut cur: Vec<usize> = (0..m).collect(); // original row at each position
    let mut pos: Vec<usize> = (0..m).collect(); // position of each original row
    let mut ipiv = Vec::with_capacity(k);
    for (i, &want) in fwd.iter().enumerate().take(k) {
        let p = pos[want];
        ipiv.push(p);
        let (ri, rp) = (cur[i], cur[p]);
        cur.swap(i, p);
        pos[ri] = p;
        pos[rp] = i;
    }
    ipiv
}

fn one_real<T: Real>(
    op: &str,
    k: LinalgKernel,
    a: &[T],
    b: Option<&[T]>,
    m: usize,
    n: usize,
    cols: usize,
) -> Result<Parts<T>> {
    let nan = || T::nan();
    let am = to_mat(a, m, n);
    Ok(match k {
        LinalgKernel::Inv => vec![rows(lu_nonsingular(op, &am)?.inverse().as_ref())],
        LinalgKernel::TriInv { upper } => {
            let t = triangle(op, a, n, upper)?;
            let mut e = Mat::<T>::identity(n, n);
            tri_solve(&t, &mut e, upper);
            vec![rows(e.as_ref())]
        }
        LinalgKernel::Cholesky { upper } => {
            let side = if upper { Side::Upper } else { Side::Lower };
            match am.llt(side) {
                // A = L L^T; the upper factor is L^T
                Ok(f) if upper => vec![rows_t(f.L(), |v| v)],
                Ok(f) => vec![rows(f.L())],
                // not positive definite: NaN (MLX returns a partial, wrong factor)
                Err(_) => vec![vec![nan(); n * n]],
            }
        }
        LinalgKernel::Solve => {
            let lu = lu_nonsingular(op, &am)?;
            let rhs = to_mat(b.unwrap_or(&[]), n, cols);
            use faer::linalg::solvers::Solve;
            vec![rows(lu.solve(&rhs).as_ref())]
        }
        LinalgKernel::SolveTriangular { upper } => {
            let t = triangle(op, a, n, upper)?;
            let mut rhs = to_mat(b.unwrap_or(&[]), n, cols);
            tri_solve(&t, &mut rhs, upper);
            vec![rows(rhs.as_ref())]
        }
        LinalgKernel::Qr => {
            let qr = am.qr();
            vec![rows(qr.compute_thin_Q().as_ref()), rows(qr.thin_R())]
        }
        LinalgKernel::Svd { uv: true } => {
            let s = am
                .svd()
                .map_err(|_| Error::runtime(op, "SVD did not converge."))?;
            let d: Vec<T> = s.S().column_vector().iter().copied().collect();
            vec![rows(s.U()), d, rows_t(s.V(), |v| v)]
        }
        LinalgKernel::Svd { uv: false } => {
            vec![am
                .singular_values()
                .map_err(|_| Error::runtime(op, "SVD did not converge."))?]
        }
        LinalgKernel::Eigh { upper, vectors } => {
            let side = if upper { Side::Upper } else { Side::Lower };
            if vectors {
                match am.self_adjoint_eigen(side) {
                    Ok(e) => vec![e.S().column_vector().iter().copied().collect(), rows(e.U())],
                    Err(_) => vec![vec![nan(); n], vec![nan(); n * n]],
                }
            } else {
                vec![am
                    .self_adjoint_eigenvalues(side)
                    .unwrap_or_else(|_| vec![nan(); n])]
            }
        }
        LinalgKernel::LuFactor => {
            let lu = am.partial_piv_lu();
            let r = m.min(n);
            let (l, u) = (lu.L(), lu.U());
            if (0..r).any(|i| u[(i, i)] == T::zero()) {
                // faer divides by a zero pivot (NaN below it); LAPACK skips that column
                return Ok(lu_lapack(a, m, n));
            }
            let mut packed = Vec::with_capacity(m * n);
            for i in 0..m {
                for j in 0..n {
                    packed.push(if i > j { l[(i, j)] } else { u[(i, j)] });
                }
            }
            let fwd = lu.P().arrays().0;
            let ipiv = swaps_of(fwd, r)
                .into_iter()
                .map(|p| T::from_f64(p as f64))
                .collect();
            vec![packed, ipiv]
        }
        LinalgKernel::Eig { .. } => return Err(Error::runtime(op, "complex output")),
    })
}

/// Unblocked LU with partial pivoting as LAPACK's getf2 does it, for matrices with a zero
/// pivot: a column whose pivot is 0 is left unscaled (no 0/0). Row-major `a` (m x n).
fn lu_lapack<T: Real>(a: &[T], m: usize, n: usize) -> Parts<T> {
    let mut lu = a.to_vec();
    let r = m.min(n);
    let mut ipiv = Vec::with_capacity(r);
    for k in 0..r {
        // first row of largest magnitude in column k at or below the diagonal
        let mut p = k;
        for i in k + 1..m {
            if lu[i * n + k].abs() > lu[p * n + k].abs() {
                p = i;
            }
        }
        ipiv.push(T::from_f64(p as f64));
        let pivot = lu[p * n + k];
        if pivot == T::zero() {
            continue;
        }
        if p != k {
            for j in 0..n {
                lu.swap(k * n + j, p * n + j);
            }
        }
        for i in k + 1..m {
            let f = lu[i * n + k] / pivot;
            lu[i * n + k] = f;
            for j in k + 1..n {
                let v = lu[k * n + j];
                lu[i * n + j] -= f * v;
            }
        }
    }
    vec![lu, ipiv]
}

/// Eigen-decomposition of a real matrix into complex64 parts.
fn one_eig<T: Real>(op: &str, a: &[T], n: usize, vectors: bool) -> Result<Parts<c32>> {
    let am = to_mat(a, n, n);
    let c = |z: Complex<T>| c32::new(z.re.to_f64() as f32, z.im.to_f64() as f32);
    let fail = |_| Error::runtime(op, "The eigendecomposition did not converge.");
    if vectors {
        let e = am.eigen().map_err(fail)?;
        let w = e.S().column_vector().iter().map(|&z| c(z)).collect();
        let u = e.U();
        let v = (0..n * n).map(|i| c(u[(i / n, i % n)])).collect();
        Ok(vec![w, v])
    } else {
        Ok(vec![am
            .eigenvalues()
            .map_err(fail)?
            .into_iter()
            .map(c)
            .collect()])
    }
}

fn one_eig_complex(op: &str, a: &[c32], n: usize, vectors: bool) -> Result<Parts<c32>> {
    let am = to_mat(a, n, n);
    let fail = |_| Error::runtime(op, "The eigendecomposition did not converge.");
    if vectors {
        let e = am.eigen().map_err(fail)?;
        let w = e.S().column_vector().iter().copied().collect();
        let u = e.U();
        Ok(vec![w, (0..n * n).map(|i| u[(i / n, i % n)]).collect()])
    } else {
        Ok(vec![am.eigenvalues().map_err(fail)?])
    }
}

fn one_svd_complex(op: &str, a: &[c32], m: usize, n: usize, uv: bool) -> Result<Parts<c32>> {
    let am = to_mat(a, m, n);
    let fail = |_| Error::runtime(op, "SVD did not converge.");
    if !uv {
        return Ok(vec![am
            .singular_values()
            .map_err(fail)?
            .into_iter()
            .map(|s| c32::new(s, 0.0))
            .collect()]);
    }
    let s = am.svd().map_err(fail)?;
    let d = s.S().column_vector().iter().copied().collect();
    Ok(vec![rows(s.U()), d, rows_t(s.V(), |v: c32| v.conj())])
}

/// Factor every matrix of the batch with `one` and lay the parts out in `out`.
fn batched<T: Copy + Send + Sync + bytemuck::Pod>(
    op: &str,
    k: LinalgKernel,
    nb: usize,
    dims: (usize, usize, usize),
    out: &mut Buffer,
    one: impl Fn(usize) -> Result<Parts<T>> + Sync,
) -> Result<()> {
    let (m, n, cols) = dims;
    let sizes: Vec<usize> = k.parts(m, n, cols).iter().map(|p| size_of(p)).collect();
    let results = (0..nb)
        .into_par_iter()
        .map(&one)
        .collect::<Result<Vec<_>>>()?;
    let dst = out.typed_mut::<T>();
    let mut base = 0usize;
    for (p, &sz) in sizes.iter().enumerate() {
        for (b, parts) in results.iter().enumerate() {
            let src = parts
                .get(p)
                .filter(|s| s.len() == sz)
                .ok_or_else(|| Error::runtime(op, "factor of unexpected size"))?;
            let at = base + b * sz;
            dst.get_mut(at..at + sz)
                .ok_or_else(|| Error::runtime(op, "output too small"))?
                .copy_from_slice(src);
        }
        base += sz * nb;
    }
    Ok(())
}

fn run_real<T: Real + Default + bytemuck::Pod>(
    k: LinalgKernel,
    ins: &[Input],
    out: &mut Buffer,
) -> Result<()> {
    let op = k.name();
    let a_in = ins
        .first()
        .ok_or_else(|| Error::runtime(op, "missing input"))?;
    let (batch, m, n) = dims_of(a_in);
    let nb = size_of(&batch);
    let a = contiguous::<T>(a_in);
    let (b, cols) = match ins.get(1) {
        Some(x) => (contiguous::<T>(x), x.shape.last().copied().unwrap_or(0)),
        None => (Vec::new(), 0),
    };
    let (sa, sb) = (m * n, n * cols);
    if let LinalgKernel::Eig { vectors } = k {
        return batched::<c32>(op, k, nb, (m, n, cols), out, |i| {
            one_eig(op, chunk(op, &a, i, sa)?, n, vectors)
        });
    }
    batched::<T>(op, k, nb, (m, n, cols), out, |i| {
        let bi = if ins.len() > 1 {
            Some(chunk(op, &b, i, sb)?)
        } else {
            None
        };
        one_real(op, k, chunk(op, &a, i, sa)?, bi, m, n, cols)
    })
}

/// Matrix `i` of a contiguous stack of `s`-element matrices.
fn chunk<'a, T>(op: &str, v: &'a [T], i: usize, s: usize) -> Result<&'a [T]> {
    v.get(i * s..(i + 1) * s)
        .ok_or_else(|| Error::runtime(op, "input smaller than its shape"))
}

fn dims_of(x: &Input) -> (Vec<usize>, usize, usize) {
    let nd = x.shape.len();
    if nd < 2 {
        return (Vec::new(), 0, 0);
    }
    (x.shape[..nd - 2].to_vec(), x.shape[nd - 2], x.shape[nd - 1])
}

pub fn run(k: LinalgKernel, ins: &[Input], out: &mut Buffer) -> Result<()> {
    let d = ins.first().map(|x| x.dtype);
    match d {
        Some(Dtype::Float32) => run_real::<f32>(k, ins, out),
        Some(Dtype::Float64) => run_real::<f64>(k, ins, out),
        Some(Dtype::Complex64) => {
            let op = k.name();
            let x = ins
                .first()
                .ok_or_else(|| Error::runtime(op, "missing input"))?;
            let (batch, m, n) = dims_of(x);
            let a = contiguous::<c32>(x);
            let sa = m * n;
            batched::<c32>(op, k, size_of(&batch), (m, n, 0), out, |i| {
                let ai = chunk(op, &a, i, sa)?;
                match k {
                    LinalgKernel::Svd { uv } => one_svd_complex(op, ai, m, n, uv),
                    LinalgKernel::Eig { vectors } => one_eig_complex(op, ai, n, vectors),
                    _ => Err(Error::unsupported(op, "complex64 input")),
                }
            })
        }
        _ => Err(Error::unsupported(k.name(), "this dtype")),
    }
}
