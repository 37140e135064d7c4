//! `oxmx.core.linalg`'s factorizations and solves as graph nodes: argument checks with
//! MLX's messages, the layout of the packed outputs, and the views that cut them out.
//! Their transforms live in Python (`python/oxmx/core/linalg.py`).

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops::{reshape, slice};
use crate::primitive::{LinalgKernel, Primitive};
use crate::shape::size_of;

impl LinalgKernel {
    pub fn name(&self) -> &'static str {
        match self {
            LinalgKernel::Inv => "linalg::inv",
            LinalgKernel::TriInv { .. } => "linalg::tri_inv",
            LinalgKernel::Cholesky { .. } => "linalg::cholesky",
            LinalgKernel::Solve => "linalg::solve",
            LinalgKernel::SolveTriangular { .. } => "linalg::solve_triangular",
            LinalgKernel::Qr => "linalg::qr",
            LinalgKernel::Svd { .. } => "linalg::svd",
            LinalgKernel::Eigh { .. } => "linalg::eigh",
            LinalgKernel::Eig { .. } => "linalg::eig",
            LinalgKernel::LuFactor => "linalg::lu_factor",
        }
    }

    /// Shapes (without the batch dims) of the outputs for an `m x n` first input whose
    /// second input (solves) has `k` columns.
    pub fn parts(&self, m: usize, n: usize, k: usize) -> Vec<Vec<usize>> {
        let r = m.min(n);
        match *self {
            LinalgKernel::Inv | LinalgKernel::TriInv { .. } | LinalgKernel::Cholesky { .. } => {
                vec![vec![n, n]]
            }
            LinalgKernel::Solve | LinalgKernel::SolveTriangular { .. } => vec![vec![n, k]],
            LinalgKernel::Qr => vec![vec![m, r], vec![r, n]],
            LinalgKernel::Svd { uv: true } => vec![vec![m, m], vec![r], vec![n, n]],
            LinalgKernel::Svd { uv: false } => vec![vec![r]],
            LinalgKernel::Eigh { vectors: true, .. } | LinalgKernel::Eig { vectors: true } => {
                vec![vec![n], vec![n, n]]
            }
            LinalgKernel::Eigh { vectors: false, .. } | LinalgKernel::Eig { vectors: false } => {
                vec![vec![n]]
            }
            LinalgKernel::LuFactor => vec![vec![m, n], vec![r]],
        }
    }

    fn square(&self) -> bool {
        !matches!(
            self,
            LinalgKernel::Qr | LinalgKernel::Svd { .. } | LinalgKernel::LuFactor
        )
    }
}

/// The batch dims, rows and columns of a matrix stack.
pub fn matrix_dims(a: &Array) -> (&[usize], usize, usize) {
    let nd = a.ndim();
    if nd < 2 {
        return (&[], 0, 0);
    }
    (&a.shape()[..nd - 2], a.shape()[nd - 2], a.shape()[nd - 1])
}

fn check_dtype(op: &str, k: LinalgKernel, d: Dtype) -> Result<()> {
    let ok = matches!(d, Dtype::Float32 | Dtype::Float64)
        || (d == Dtype::Complex64
            && matches!(k, LinalgKernel::Svd { .. } | LinalgKernel::Eig { .. }));
    if ok {
        return Ok(());
    }
    Err(Error::value(
        op,
        format!("Arrays must have type float32 or float64. Received array with type {d}."),
    ))
}

/// The outputs of `k` over `inputs` (one matrix stack; two for the solves, with equal
/// batch dims), each a view into the node's packed value.
pub fn linalg(k: LinalgKernel, inputs: &[Array]) -> Result<Vec<Array>> {
    let (packed, batch, parts, spans) = packed_node(k, inputs)?;
    parts
        .iter()
        .zip(spans)
        .map(|(p, (start, len))| {
            let end = start + len;
            let part = slice(&packed, &[start as i64], &[end as i64], None)?;
            let shape: Vec<i64> = batch.iter().chain(p).map(|&d| d as i64).collect();
            reshape(&part, &shape)
        })
        .collect()
}

/// The node holding every output of `k` packed (what an imported graph records).
pub fn linalg_node(k: LinalgKernel, inputs: &[Array]) -> Result<Array> {
    Ok(packed_node(k, inputs)?.0)
}

type Packed = (Array, Vec<usize>, Vec<Vec<usize>>, Vec<(usize, usize)>);

/// The checked packed node, the batch dims, each output's matrix dims and its span.
fn packed_node(k: LinalgKernel, inputs: &[Array]) -> Result<Packed> {
    let op = k.name();
    let two = matches!(
        k,
        LinalgKernel::Solve | LinalgKernel::SolveTriangular { .. }
    );
    if inputs.len() != 1 + two as usize {
        return Err(Error::value(op, "wrong number of inputs"));
    }
    let a = &inputs[0];
    if a.ndim() < 2 {
        return Err(Error::value(
            op,
            format!(
                "Arrays must have >= 2 dimensions. Received array with {} dimensions.",
                a.ndim()
            ),
        ));
    }
    check_dtype(op, k, a.dtype())?;
    let (batch, m, n) = matrix_dims(a);
    if k.square() && m != n {
        return Err(Error::value(
            op,
            format!(
                "Only defined for square matrices, got shape {:?}.",
                a.shape()
            ),
        ));
    }
    let mut cols = 0;
    if two {
        let b = &inputs[1];
        let (bb, bm, bk) = matrix_dims(b);
        if b.ndim() != a.ndim() || bb != batch || bm != n || b.dtype() != a.dtype() {
            return Err(Error::value(
                op,
                format!(
                    "a {:?} ({}) and b {:?} ({}) must be matrix stacks of one batch shape and dtype with b's rows matching a.",
                    a.shape(),
                    a.dtype(),
                    b.shape(),
                    b.dtype()
                ),
            ));
        }
        cols = bk;
    }
    let out_dtype = if matches!(k, LinalgKernel::Eig { .. }) {
        Dtype::Complex64
    } else {
        a.dtype()
    };
    let nb = size_of(batch);
    let parts = k.parts(m, n, cols);
    let mut total = 0usize;
    let mut spans = Vec::with_capacity(parts.len());
    for p in &parts {
        let len = size_of(p)
            .checked_mul(nb)
            .ok_or_else(|| Error::overflow(op))?;
        spans.push((total, len));
        total = total.checked_add(len).ok_or_else(|| Error::overflow(op))?;
    }
    let packed = Array::pending(
        vec![total],
        out_dtype,
        Primitive::Linalg(k),
        inputs.to_vec(),
    );
    Ok((packed, batch.to_vec(), parts, spans))
}
