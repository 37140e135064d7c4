//! Binding of the factorization nodes (`oxmx.core.linalg` adds MLX's argument handling
//! and the transforms in Python).

use crate::convert::wrap;
use crate::pyarray::PyArray;
use oxmx::ops::decomp::linalg;
use oxmx::primitive::LinalgKernel;
use pyo3::prelude::*;

/// The outputs of factorization `kind` over `inputs`, as views into one packed node.
#[pyfunction]
#[pyo3(signature = (kind, inputs, upper=false, flag=true, stream=None))]
fn _linalg(
    kind: &str,
    inputs: Vec<PyRef<'_, PyArray>>,
    upper: bool,
    flag: bool,
    stream: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<PyArray>> {
    let k = match kind {
        "inv" => LinalgKernel::Inv,
        "tri_inv" => LinalgKernel::TriInv { upper },
        "cholesky" => LinalgKernel::Cholesky { upper },
        "solve" => LinalgKernel::Solve,
        "solve_triangular" => LinalgKernel::SolveTriangular { upper },
        "qr" => LinalgKernel::Qr,
        "svd" => LinalgKernel::Svd { uv: flag },
        "eigh" => LinalgKernel::Eigh {
            upper,
            vectors: flag,
        },
        "eig" => LinalgKernel::Eig { vectors: flag },
        "lu_factor" => LinalgKernel::LuFactor,
        other => {
            return Err(crate::errors::value_err(
                "linalg",
                format!("Unknown factorization {other}."),
            ))
        }
    };
    let ins: Vec<oxmx::Array> = inputs.iter().map(|a| a.inner.clone()).collect();
    let outs = crate::device_py::on_stream(stream, || linalg(k, &ins))?;
    Ok(outs.into_iter().map(wrap).collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_linalg, m)?)?;
    Ok(())
}
