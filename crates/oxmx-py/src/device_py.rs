//! `Device`, `DeviceType`, `Stream` and the device/stream functions.

use crate::errors::{type_err, IntoPyResult};
use oxmx::device::{self, Device, DeviceType, Stream};
use pyo3::prelude::*;

#[allow(non_camel_case_types)]
#[pyclass(name = "DeviceType", module = "oxmx.core", frozen, eq, eq_int, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyDeviceType {
    cpu,
    gpu,
}

#[pyclass(name = "Device", module = "oxmx.core", frozen)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDevice(pub Device);

/// A device given as `Device` or as a `DeviceType` (`mx.cpu`, `mx.gpu`).
pub fn device_of(o: &Bound<'_, PyAny>) -> PyResult<Device> {
    if let Ok(d) = o.extract::<PyDevice>() {
        return Ok(d.0);
    }
    if let Ok(t) = o.extract::<PyDeviceType>() {
        return Ok(PyDevice::new(t, 0).0);
    }
    Err(type_err("device", "Expected a Device or a DeviceType."))
}

#[pymethods]
impl PyDevice {
    /// Equal to another Device with the same type and index, or to its DeviceType.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        if let Ok(d) = other.extract::<PyDevice>() {
            return d.0 == self.0;
        }
        if let Ok(t) = other.extract::<PyDeviceType>() {
            return self.r#type() == t && self.0.index == 0;
        }
        false
    }
    fn __hash__(&self) -> u64 {
        (self.0.index as u64) * 2 + matches!(self.0.kind, DeviceType::Gpu) as u64
    }
    #[new]
    #[pyo3(signature = (r#type, index=0))]
    fn new(r#type: PyDeviceType, index: usize) -> Self {
        let kind = match r#type {
            PyDeviceType::cpu => DeviceType::Cpu,
            PyDeviceType::gpu => DeviceType::Gpu,
        };
        PyDevice(Device { kind, index })
    }
    #[getter]
    fn r#type(&self) -> PyDeviceType {
        match self.0.kind {
            DeviceType::Cpu => PyDeviceType::cpu,
            DeviceType::Gpu => PyDeviceType::gpu,
        }
    }
    #[getter]
    fn index(&self) -> usize {
        self.0.index
    }
    fn __repr__(&self) -> String {
        self.0.to_string()
    }
}

#[pyclass(name = "Stream", module = "oxmx.core", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyStream(pub Stream);

#[pymethods]
impl PyStream {
    #[getter]
    fn device(&self) -> PyDevice {
        PyDevice(self.0.device)
    }
    #[getter]
    fn index(&self) -> usize {
        self.0.index
    }
    fn __repr__(&self) -> String {
        self.0.to_string()
    }
}

/// Resolve a `stream=` argument (Stream, Device or None).
pub fn stream_of(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Stream>> {
    let Some(o) = obj else { return Ok(None) };
    if o.is_none() {
        return Ok(None);
    }
    if let Ok(s) = o.extract::<PyStream>() {
        return Ok(Some(s.0));
    }
    let d = device_of(o).map_err(|_| type_err("stream", "Expected a Stream or a Device."))?;
    if !oxmx::backend::is_available(d) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "[stream] {d} is not available."
        )));
    }
    Ok(Some(device::default_stream(d)))
}

/// Run `f` on the stream given by `stream=` (or the current one), releasing the GIL
/// is up to the caller.
pub fn on_stream<R>(
    stream: Option<&Bound<'_, PyAny>>,
    f: impl FnOnce() -> oxmx::Result<R>,
) -> PyResult<R> {
    match stream_of(stream)? {
        Some(s) => device::with_stream(s, f).py(),
        None => f().py(),
    }
}

#[pyfunction]
fn default_device() -> PyDevice {
    PyDevice(device::default_device())
}

#[pyfunction]
fn set_default_device(device: &Bound<'_, PyAny>) -> PyResult<()> {
    device::set_default_device(device_of(device)?).py()
}

#[pyfunction]
#[pyo3(signature = (device))]
fn default_stream(device: &Bound<'_, PyAny>) -> PyResult<PyStream> {
    Ok(PyStream(device::default_stream(device_of(device)?)))
}

#[pyfunction]
fn set_default_stream(stream: PyStream) -> PyResult<()> {
    device::set_default_stream(stream.0).py()
}

#[pyfunction]
fn new_stream(device: &Bound<'_, PyAny>) -> PyResult<PyStream> {
    device::new_stream(device_of(device)?).map(PyStream).py()
}

#[pyfunction]
fn new_thread_local_stream(device: &Bound<'_, PyAny>) -> PyResult<PyStream> {
    device::new_stream(device_of(device)?).map(PyStream).py()
}

#[pyfunction]
fn new_thread_unsafe_stream(device: &Bound<'_, PyAny>) -> PyResult<PyStream> {
    device::new_stream(device_of(device)?).map(PyStream).py()
}

/// Push/pop the current stream (used by the `mx.stream` context manager in Python).
#[pyfunction]
fn _push_stream(s: &Bound<'_, PyAny>) -> PyResult<()> {
    let st =
        stream_of(Some(s))?.ok_or_else(|| type_err("stream", "Expected a Stream or a Device."))?;
    device::push_stream(st);
    Ok(())
}

#[pyfunction]
fn _pop_stream() {
    device::pop_stream();
}

/// The device of the stream ops created now run on (the innermost `mx.stream` block's,
/// else the default device): where a node made by a native call without `stream=` runs.
#[pyfunction]
fn _current_device() -> PyDevice {
    PyDevice(device::current_stream().device)
}

#[pyfunction]
#[pyo3(signature = (stream=None))]
fn synchronize(py: Python<'_>, stream: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let s = stream_of(stream)?.unwrap_or_else(device::current_stream);
    py.allow_threads(|| oxmx::backend::get(s.device)?.synchronize())
        .py()
}

#[pyfunction]
fn clear_streams() {}

#[pyfunction]
#[pyo3(signature = (device))]
fn is_available(device: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(oxmx::backend::is_available(device_of(device)?))
}

#[pyfunction]
#[pyo3(signature = (device))]
fn device_count(device: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(is_available(device)? as usize)
}

#[pyfunction]
#[pyo3(signature = (device=None))]
fn device_info<'py>(
    py: Python<'py>,
    device: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = match device {
        Some(o) if !o.is_none() => device_of(o)?,
        _ => device::default_device(),
    };
    let info = pyo3::types::PyDict::new(py);
    let b = oxmx::backend::get(d).py()?;
    info.set_item("device_name", b.name())?;
    info.set_item("architecture", std::env::consts::ARCH)?;
    info.set_item(
        "memory_size",
        b.memory_size().unwrap_or(oxmx::memory::pool().limit()),
    )?;
    info.set_item("num_threads", oxmx::num_threads())?;
    Ok(info)
}

/// Kernels the device's backend has launched (None where it does not count them):
/// tests use it to show that a fused group is one launch.
#[pyfunction]
#[pyo3(signature = (device))]
fn _kernel_launches(device: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    Ok(oxmx::backend::get(device_of(device)?)
        .py()?
        .kernel_launches())
}

/// The CUDA backend's host time by phase, as (phase, nanoseconds, count), when
/// OXMX_CUDA_PROFILE=1 (zeros otherwise); `reset` starts the counts over.
#[pyfunction]
#[pyo3(signature = (reset = false))]
fn _cuda_profile(reset: bool) -> Vec<(&'static str, u64, u64)> {
    oxmx::oxmx_cuda::prof::report(reset)
}

/// The CUDA backend's host time in `run` by primitive, as (name, nanoseconds, count),
/// largest first, when OXMX_CUDA_PROFILE=1; `reset` starts the counts over.
#[pyfunction]
#[pyo3(signature = (reset = false))]
fn _cuda_profile_ops(reset: bool) -> Vec<(&'static str, u64, u64)> {
    oxmx::oxmx_cuda::prof::report_ops(reset)
}

/// The CUDA GPU's compute capability (major, minor), or None without one: kernels
/// written in Python (`_flash_bwd.py`) check it before using sm_80 instructions.
#[pyfunction]
fn _cuda_compute_capability() -> Option<(i32, i32)> {
    oxmx::cuda_backend().and_then(|b| b.compute_capability())
}

/// Nodes any backend has run (views excluded).
#[pyfunction]
fn _nodes_run() -> u64 {
    oxmx::eval::nodes_run()
}

/// Fusion at evaluation (`eval_fusion.rs`): sets the mode ("off", "gpu", "all") and the
/// sightings a program needs before it fuses, when given; returns the current ones.
/// `fail_fused` makes fused nodes fail, so that tests see the fallback run.
#[pyfunction]
#[pyo3(signature = (mode = None, min_seen = 2, fail_fused = false))]
fn _eval_fusion(
    mode: Option<&str>,
    min_seen: u32,
    fail_fused: bool,
) -> PyResult<(&'static str, u32)> {
    if let Some(m) = mode {
        oxmx::eval_fusion::set_mode(m, min_seen).map_err(crate::errors::to_py)?;
    }
    oxmx::eval_fusion::set_fail_for_tests(fail_fused);
    Ok(oxmx::eval_fusion::current_mode())
}

#[allow(clippy::unsafe_removed_from_name)]
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_kernel_launches, m)?)?;
    m.add_function(wrap_pyfunction!(_cuda_compute_capability, m)?)?;
    m.add_function(wrap_pyfunction!(_cuda_profile, m)?)?;
    m.add_function(wrap_pyfunction!(_cuda_profile_ops, m)?)?;
    m.add_function(wrap_pyfunction!(_nodes_run, m)?)?;
    m.add_function(wrap_pyfunction!(_eval_fusion, m)?)?;
    m.add_class::<PyDeviceType>()?;
    m.add_class::<PyDevice>()?;
    m.add_class::<PyStream>()?;
    m.add("cpu", PyDeviceType::cpu)?;
    m.add("gpu", PyDeviceType::gpu)?;
    m.add_function(wrap_pyfunction!(default_device, m)?)?;
    m.add_function(wrap_pyfunction!(_current_device, m)?)?;
    m.add_function(wrap_pyfunction!(set_default_device, m)?)?;
    m.add_function(wrap_pyfunction!(default_stream, m)?)?;
    m.add_function(wrap_pyfunction!(set_default_stream, m)?)?;
    m.add_function(wrap_pyfunction!(new_stream, m)?)?;
    m.add_function(wrap_pyfunction!(new_thread_local_stream, m)?)?;
    m.add_function(wrap_pyfunction!(new_thread_unsafe_stream, m)?)?;
    m.add_function(wrap_pyfunction!(_push_stream, m)?)?;
    m.add_function(wrap_pyfunction!(_pop_stream, m)?)?;
    m.add_function(wrap_pyfunction!(synchronize, m)?)?;
    m.add_function(wrap_pyfunction!(clear_streams, m)?)?;
    m.add_function(wrap_pyfunction!(is_available, m)?)?;
    m.add_function(wrap_pyfunction!(device_count, m)?)?;
    m.add_function(wrap_pyfunction!(device_info, m)?)?;
    Ok(())
}
