//! `oxmx.core.distributed`'s engine side: process groups (`_Group`) and the collective
//! ops as lazy nodes (`oxmx/core/distributed.py` gives them MLX's signatures).

use crate::convert::wrap;
use crate::dtype_py::dtype_of;
use crate::errors::{value_err, IntoPyResult};
use crate::pyarray::PyArray;
use oxmx::distributed::{self as dist, Group, ReduceKind, Singleton};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// A group of processes (MLX's `mx.distributed.Group`).
#[pyclass(module = "oxmx.core.distributed", name = "Group", frozen)]
pub struct PyGroup {
    pub inner: Group,
}

#[pymethods]
impl PyGroup {
    /// The rank of this process in the group.
    fn rank(&self) -> usize {
        self.inner.0.rank()
    }
    /// The number of processes in the group.
    fn size(&self) -> usize {
        self.inner.0.size()
    }
    /// The subgroup of the processes that pass the same ``color``; ``key`` orders the
    /// new ranks (negative: by rank in this group).
    #[pyo3(signature = (color, key = -1))]
    fn split(&self, py: Python<'_>, color: i32, key: i32) -> PyResult<PyGroup> {
        let g = self.inner.0.clone();
        let inner = py.allow_threads(|| g.split(color, key)).py()?;
        Ok(PyGroup {
            inner: Group(inner),
        })
    }
    /// The engine behind the group ("mpi", "nccl", or "singleton" for a group of one).
    #[getter]
    fn backend(&self) -> String {
        self.inner.0.backend().to_string()
    }
    fn __repr__(&self) -> String {
        format!(
            "Group(backend={}, rank={}, size={})",
            self.inner.0.backend(),
            self.inner.0.rank(),
            self.inner.0.size()
        )
    }
}

fn dirs(d: Vec<String>) -> Vec<PathBuf> {
    d.into_iter().map(PathBuf::from).collect()
}

#[pyfunction]
fn _dist_singleton() -> PyGroup {
    PyGroup {
        inner: Group(Arc::new(Singleton)),
    }
}

/// MPI's world group (initializing MPI); `lib_dirs` are searched for libmpi first.
#[pyfunction]
fn _dist_init_mpi(py: Python<'_>, lib_dirs: Vec<String>) -> PyResult<PyGroup> {
    let d = dirs(lib_dirs);
    let g = py.allow_threads(|| oxmx_dist::init_mpi(&d)).py()?;
    Ok(PyGroup { inner: Group(g) })
}

/// (path, version) of the MPI library `_dist_init_mpi` would load.
#[pyfunction]
fn _dist_mpi_library(lib_dirs: Vec<String>) -> PyResult<(String, String)> {
    oxmx_dist::mpi_library(&dirs(lib_dirs)).py()
}

/// Whether libnccl loads and a GPU is present.
#[pyfunction]
fn _dist_nccl_available() -> bool {
    oxmx::oxmx_cuda::nccl::available() && oxmx::cuda_backend().is_some()
}

/// NCCL's version ("2.28.3").
#[pyfunction]
fn _dist_nccl_version() -> PyResult<String> {
    oxmx::oxmx_cuda::nccl::version().py()
}

/// A fresh NCCL unique id (rank 0 makes it and hands it to the others).
#[pyfunction]
fn _dist_nccl_unique_id(py: Python<'_>) -> PyResult<Vec<u8>> {
    py.allow_threads(oxmx::oxmx_cuda::nccl::unique_id).py()
}

/// Joins the NCCL group `id` names as `rank` of `size` (blocks until all have joined).
#[pyfunction]
fn _dist_init_nccl(py: Python<'_>, rank: usize, size: usize, id: Vec<u8>) -> PyResult<PyGroup> {
    let gpu = oxmx::cuda_backend().ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("[init] NCCL needs a GPU, and none was found.")
    })?;
    let g = py.allow_threads(|| gpu.nccl_group(rank, size, &id)).py()?;
    Ok(PyGroup { inner: Group(g) })
}

#[pyfunction]
fn _dist_finalize(py: Python<'_>) {
    py.allow_threads(oxmx_dist::finalize);
}

#[pyfunction]
fn _dist_all_reduce(x: PyRef<'_, PyArray>, kind: &str, group: &PyGroup) -> PyResult<PyArray> {
    let k = match kind {
        "sum" => ReduceKind::Sum,
        "max" => ReduceKind::Max,
        "min" => ReduceKind::Min,
        _ => {
            return Err(value_err(
                "all_reduce",
                format!("Unknown reduction {kind:?}."),
            ))
        }
    };
    dist::all_reduce(&x.inner, k, &group.inner).py().map(wrap)
}

#[pyfunction]
fn _dist_all_gather(x: PyRef<'_, PyArray>, group: &PyGroup) -> PyResult<PyArray> {
    dist::all_gather(&x.inner, &group.inner).py().map(wrap)
}

#[pyfunction]
fn _dist_sum_scatter(x: PyRef<'_, PyArray>, group: &PyGroup) -> PyResult<PyArray> {
    dist::sum_scatter(&x.inner, &group.inner).py().map(wrap)
}

#[pyfunction]
fn _dist_send(x: PyRef<'_, PyArray>, dst: i64, group: &PyGroup) -> PyResult<PyArray> {
    dist::send(&x.inner, dst, &group.inner).py().map(wrap)
}

#[pyfunction]
fn _dist_recv(
    shape: Vec<i64>,
    dtype: &Bound<'_, PyAny>,
    src: i64,
    group: &PyGroup,
) -> PyResult<PyArray> {
    let d = dtype_of(dtype)?;
    let shape = oxmx::shape::shape_from_i64("recv", &shape).py()?;
    dist::recv(shape, d, src, &group.inner).py().map(wrap)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // as `_Group`: `oxmx.core` re-exports the extension's public names, and MLX has
    // `Group` only in `mx.distributed`
    m.add("_Group", m.py().get_type::<PyGroup>())?;
    m.add_function(wrap_pyfunction!(_dist_singleton, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_init_mpi, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_mpi_library, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_finalize, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_nccl_available, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_nccl_version, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_nccl_unique_id, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_init_nccl, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_all_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_all_gather, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_sum_scatter, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_send, m)?)?;
    m.add_function(wrap_pyfunction!(_dist_recv, m)?)?;
    Ok(())
}
