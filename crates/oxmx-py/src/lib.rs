//! `oxmx._oxmx`: the Python extension. Thin bindings: convert and validate Python
//! values, call the engine, release the GIL while kernels run. The Python package
//! `oxmx.core` re-exports this module and adds pure-Python helpers.
#![deny(unsafe_code)]

mod buffer;
mod conv_py;
mod convert;
mod device_py;
mod distributed_py;
mod dtype_py;
mod errors;
mod export_py;
mod fast_py;
mod fft_py;
mod indexing;
mod io_py;
mod linalg_py;
mod memory_py;
mod ops_py;
mod pyarray;
mod quant_py;
mod random;
mod transforms_py;

use pyo3::prelude::*;

#[pyfunction]
fn _array_from_state(data: &[u8], shape: Vec<usize>, dtype: &str) -> PyResult<pyarray::PyArray> {
    let d = oxmx::Dtype::from_name(dtype)
        .ok_or_else(|| errors::value_err("array", format!("Unknown dtype {dtype}.")))?;
    let a = oxmx::ops::from_bytes("array", data, shape, d).map_err(errors::to_py)?;
    Ok(convert::wrap(a))
}

#[pymodule]
fn _oxmx(m: &Bound<'_, PyModule>) -> PyResult<()> {
    oxmx::init();
    m.add_class::<pyarray::PyArray>()?;
    dtype_py::register(m)?;
    device_py::register(m)?;
    memory_py::register(m)?;
    ops_py::register(m)?;
    random::register(m)?;
    transforms_py::register(m)?;
    io_py::register(m)?;
    fast_py::register(m)?;
    quant_py::register(m)?;
    linalg_py::register(m)?;
    conv_py::register(m)?;
    fft_py::register(m)?;
    distributed_py::register(m)?;
    m.add_function(wrap_pyfunction!(indexing::_at_update, m)?)?;
    m.add_function(wrap_pyfunction!(indexing::nonzero, m)?)?;
    m.add_function(wrap_pyfunction!(_array_from_state, m)?)?;
    Ok(())
}
