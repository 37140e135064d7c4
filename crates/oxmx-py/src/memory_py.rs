//! The memory API (`get_active_memory` …) over the host pool plus the GPU's memory when
//! there is one (counters add up; limits and cache clearing apply to both).

use oxmx::memory::pool;
use pyo3::prelude::*;

fn gpu() -> Option<std::sync::Arc<dyn oxmx::backend::Backend>> {
    oxmx::backend::get(oxmx::Device::GPU).ok()
}

fn gpu_counters() -> (usize, usize, usize) {
    gpu().and_then(|g| g.memory_counters()).unwrap_or((0, 0, 0))
}

#[pyfunction]
fn get_active_memory() -> usize {
    pool().active().saturating_add(gpu_counters().0)
}
#[pyfunction]
fn get_peak_memory() -> usize {
    pool().peak().saturating_add(gpu_counters().1)
}
#[pyfunction]
fn reset_peak_memory() {
    pool().reset_peak();
    if let Some(g) = gpu() {
        g.reset_peak_memory();
    }
}
#[pyfunction]
fn get_cache_memory() -> usize {
    pool().cache().saturating_add(gpu_counters().2)
}
#[pyfunction]
fn clear_cache() {
    pool().clear_cache();
    if let Some(g) = gpu() {
        g.clear_cache();
    }
}
#[pyfunction]
fn set_memory_limit(limit: usize) -> usize {
    if let Some(g) = gpu() {
        g.set_memory_limit(limit);
    }
    pool().set_limit(limit)
}
#[pyfunction]
fn get_memory_limit() -> usize {
    pool().limit()
}
#[pyfunction]
fn set_cache_limit(limit: usize) -> usize {
    if let Some(g) = gpu() {
        g.set_cache_limit(limit);
    }
    pool().set_cache_limit(limit)
}
/// Wired memory is a Metal concept; accepted and ignored (returns the previous value 0).
#[pyfunction]
fn set_wired_limit(limit: usize) -> usize {
    let _ = limit;
    0
}
/// Bytes of the unique buffers behind the arrays of the given trees (MLX's semantics:
/// views of one buffer count once; every array must already be evaluated).
#[pyfunction]
#[pyo3(signature = (*args))]
fn get_array_buffer_size(args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<usize> {
    let arrays = crate::ops_py::tree_arrays(args.as_any())?;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for a in arrays {
        let Some(d) = a.ready_data() else {
            return Err(crate::errors::value_err(
                "get_array_buffer_size",
                "Arrays must be evaluated before querying buffer size.",
            ));
        };
        if seen.insert(std::sync::Arc::as_ptr(&d.buffer) as usize) {
            total = total.saturating_add(d.buffer.nbytes());
        }
    }
    Ok(total)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(get_active_memory, m)?)?;
    m.add_function(wrap_pyfunction!(get_peak_memory, m)?)?;
    m.add_function(wrap_pyfunction!(reset_peak_memory, m)?)?;
    m.add_function(wrap_pyfunction!(get_cache_memory, m)?)?;
    m.add_function(wrap_pyfunction!(clear_cache, m)?)?;
    m.add_function(wrap_pyfunction!(set_memory_limit, m)?)?;
    m.add_function(wrap_pyfunction!(get_memory_limit, m)?)?;
    m.add_function(wrap_pyfunction!(set_cache_limit, m)?)?;
    m.add_function(wrap_pyfunction!(set_wired_limit, m)?)?;
    m.add_function(wrap_pyfunction!(get_array_buffer_size, m)?)?;
    Ok(())
}
