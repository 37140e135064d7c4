//! `oxmx._oxmx.transforms`: the engine's function transforms for the Python layer
//! (`oxmx/core/_transforms.py` builds `grad`, `vjp`, `jvp`, `vmap`, ... on these).
//!
//! A Python transform opens a `Trace`, wraps its inputs with `Trace.leaf`, calls the
//! user's function, then asks the engine to walk the resulting graph.

use crate::convert::wrap;
use crate::errors::IntoPyResult;
use crate::pyarray::PyArray;
use oxmx::array::Trace as CoreTrace;
use oxmx::primitive::Batched;
use oxmx::{transforms, Array};
use pyo3::prelude::*;
use std::sync::Arc;

fn arrays(xs: Vec<PyRef<'_, PyArray>>) -> Vec<Array> {
    xs.iter().map(|x| x.inner.clone()).collect()
}

fn wrap_all(xs: Vec<Array>) -> Vec<PyArray> {
    xs.into_iter().map(wrap).collect()
}

/// A running transform; `end()` (or garbage collection) finishes it.
#[pyclass(module = "oxmx.core", name = "_Trace")]
pub struct Trace {
    inner: Arc<CoreTrace>,
}

#[pymethods]
impl Trace {
    /// `shapeless` (which implies no evaluation): a shapeless compile or export, whose
    /// mean and var divide by a count node that follows new input sizes.
    #[new]
    #[pyo3(signature = (allow_eval = true, shapeless = false))]
    fn new(allow_eval: bool, shapeless: bool) -> Self {
        Trace {
            inner: if shapeless {
                CoreTrace::shapeless()
            } else {
                CoreTrace::with_eval(allow_eval)
            },
        }
    }
    /// An identity node over `x` that belongs to this trace.
    fn leaf(&self, x: PyRef<'_, PyArray>) -> PyArray {
        wrap(transforms::leaf(&x.inner, &self.inner))
    }
    fn end(&self) {
        self.inner.end();
    }
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    fn __exit__(&self, _a: &Bound<'_, PyAny>, _b: &Bound<'_, PyAny>, _c: &Bound<'_, PyAny>) {
        self.inner.end();
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.inner.end();
    }
}

#[pyfunction]
fn vjp(
    py: Python<'_>,
    leaves: Vec<PyRef<'_, PyArray>>,
    outputs: Vec<PyRef<'_, PyArray>>,
    cotangents: Vec<PyRef<'_, PyArray>>,
) -> PyResult<Vec<PyArray>> {
    let (l, o, c) = (arrays(leaves), arrays(outputs), arrays(cotangents));
    let r = py.allow_threads(|| transforms::vjp(&l, &o, &c)).py()?;
    Ok(wrap_all(r))
}

#[pyfunction]
fn jvp(
    py: Python<'_>,
    leaves: Vec<PyRef<'_, PyArray>>,
    tangents: Vec<PyRef<'_, PyArray>>,
    outputs: Vec<PyRef<'_, PyArray>>,
) -> PyResult<Vec<PyArray>> {
    let (l, t, o) = (arrays(leaves), arrays(tangents), arrays(outputs));
    let r = py.allow_threads(|| transforms::jvp(&l, &t, &o)).py()?;
    Ok(wrap_all(r))
}

#[pyfunction]
fn vmap(
    py: Python<'_>,
    leaves: Vec<PyRef<'_, PyArray>>,
    batched: Vec<PyRef<'_, PyArray>>,
    in_axes: Vec<usize>,
    batch: usize,
    outputs: Vec<PyRef<'_, PyArray>>,
) -> PyResult<Vec<(PyArray, Option<usize>)>> {
    let (l, b, o) = (arrays(leaves), arrays(batched), arrays(outputs));
    let r = py
        .allow_threads(|| transforms::vmap(&l, &b, &in_axes, batch, &o))
        .py()?;
    Ok(r.into_iter().map(|(a, ax)| (wrap(a), ax)).collect())
}

/// `custom_function` rules implemented by a Python object with methods `vjp(primals,
/// outputs, cotangents)`, `jvp(primals, tangents)` and `vmap(primals, axes)`, each
/// returning None when there is no override.
struct PyRules {
    obj: Py<PyAny>,
}

fn py_err(e: PyErr) -> oxmx::Error {
    Python::with_gil(|py| {
        let msg = e.value(py).to_string();
        if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
            oxmx::Error::Type {
                op: "custom_function".into(),
                msg,
            }
        } else {
            oxmx::Error::value("custom_function", msg)
        }
    })
}

fn to_py(py: Python<'_>, xs: &[Array]) -> PyResult<Vec<Py<PyArray>>> {
    xs.iter().map(|a| Py::new(py, wrap(a.clone()))).collect()
}

fn from_py_opt(v: &Bound<'_, PyAny>) -> PyResult<Option<Array>> {
    if v.is_none() {
        return Ok(None);
    }
    Ok(Some(v.extract::<PyRef<'_, PyArray>>()?.inner.clone()))
}

impl oxmx::primitive::CustomRules for PyRules {
    fn vjp(
        &self,
        primals: &[Array],
        outputs: &[Array],
        cotangents: &[Array],
    ) -> oxmx::Result<Option<Vec<Option<Array>>>> {
        Python::with_gil(|py| -> PyResult<Option<Vec<Option<Array>>>> {
            let r = self.obj.bind(py).call_method1(
                "vjp",
                (
                    to_py(py, primals)?,
                    to_py(py, outputs)?,
                    to_py(py, cotangents)?,
                ),
            )?;
            if r.is_none() {
                return Ok(None);
            }
            let mut out = Vec::new();
            for v in r.try_iter()? {
                out.push(from_py_opt(&v?)?);
            }
            Ok(Some(out))
        })
        .map_err(py_err)
    }

    fn jvp(
        &self,
        primals: &[Array],
        tangents: &[Option<Array>],
    ) -> oxmx::Result<Option<Vec<Array>>> {
        Python::with_gil(|py| -> PyResult<Option<Vec<Array>>> {
            let ts = tangents
                .iter()
                .map(|t| t.as_ref().map(|a| Py::new(py, wrap(a.clone()))).transpose())
                .collect::<PyResult<Vec<_>>>()?;
            let r = self
                .obj
                .bind(py)
                .call_method1("jvp", (to_py(py, primals)?, ts))?;
            if r.is_none() {
                return Ok(None);
            }
            let mut out = Vec::new();
            for v in r.try_iter()? {
                out.push(v?.extract::<PyRef<'_, PyArray>>()?.inner.clone());
            }
            Ok(Some(out))
        })
        .map_err(py_err)
    }

    fn vmap(&self, primals: &[Array], axes: &[Option<usize>]) -> oxmx::Result<Option<Batched>> {
        Python::with_gil(|py| -> PyResult<Option<Batched>> {
            let r = self
                .obj
                .bind(py)
                .call_method1("vmap", (to_py(py, primals)?, axes.to_vec()))?;
            if r.is_none() {
                return Ok(None);
            }
            let (outs, oax): (Vec<PyRef<'_, PyArray>>, Vec<Option<usize>>) = r.extract()?;
            Ok(Some((outs.iter().map(|a| a.inner.clone()).collect(), oax)))
        })
        .map_err(py_err)
    }
}

/// The outputs of a `custom_function` call, wrapped so transforms use `rules`.
#[pyfunction]
fn custom(
    rules: Py<PyAny>,
    primals: Vec<PyRef<'_, PyArray>>,
    outputs: Vec<PyRef<'_, PyArray>>,
) -> Vec<PyArray> {
    let r: Arc<dyn oxmx::primitive::CustomRules> = Arc::new(PyRules { obj: rules });
    wrap_all(transforms::custom(r, &arrays(primals), &arrays(outputs)))
}

/// Whether any of `xs` belongs to a running transform (vjp, jvp, vmap, compile): arrays
/// outside every trace can skip a custom function's rules, no transform will see them.
#[pyfunction]
fn any_traced(xs: Vec<PyRef<'_, PyArray>>) -> bool {
    xs.iter().any(|x| x.inner.is_traced())
}

#[pyfunction]
fn stop_gradient(x: PyRef<'_, PyArray>) -> PyArray {
    wrap(transforms::stop_gradient(&x.inner))
}

pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let m = PyModule::new(parent.py(), "transforms")?;
    m.add_class::<Trace>()?;
    m.add_function(wrap_pyfunction!(vjp, &m)?)?;
    m.add_function(wrap_pyfunction!(jvp, &m)?)?;
    m.add_function(wrap_pyfunction!(vmap, &m)?)?;
    m.add_function(wrap_pyfunction!(stop_gradient, &m)?)?;
    m.add_function(wrap_pyfunction!(custom, &m)?)?;
    m.add_function(wrap_pyfunction!(any_traced, &m)?)?;
    register_tape(&m)?;
    parent.add_submodule(&m)?;
    Ok(())
}

/// A captured graph (`compile`).
#[pyclass(module = "oxmx.core", name = "_Tape")]
pub struct Tape {
    inner: oxmx::compile::Tape,
}

#[pymethods]
impl Tape {
    fn replay(&self, inputs: Vec<PyRef<'_, PyArray>>) -> PyResult<Vec<PyArray>> {
        Ok(wrap_all(self.inner.replay(&arrays(inputs)).py()?))
    }
    fn __len__(&self) -> usize {
        self.inner.len()
    }
    /// Nodes a replay builds outside transforms (a fused group counts once).
    fn fused_len(&self) -> usize {
        self.inner.fused_len()
    }
    /// Each node's operation and dtype, of the replayed (`fused`) or the plain program.
    fn op_names(&self, fused: bool) -> Vec<String> {
        self.inner.op_names(fused)
    }
    /// One line per fused group.
    fn groups(&self) -> Vec<String> {
        self.inner.groups().to_vec()
    }
    /// The trace as data (`keep_custom`: custom-function nodes stay, with their rules,
    /// for a shapeless compile; an export replaces them by what they forward).
    fn graph(&self, keep_custom: bool) -> PyResult<crate::export_py::PyGraph> {
        Ok(crate::export_py::PyGraph {
            inner: self.inner.graph(keep_custom).py()?,
        })
    }
}

impl Tape {
    pub(crate) fn wrap(inner: oxmx::compile::Tape) -> Tape {
        Tape { inner }
    }
}

#[pyfunction]
#[pyo3(signature = (leaves, outputs, fuse = true))]
fn capture(leaves: Vec<PyRef<'_, PyArray>>, outputs: Vec<PyRef<'_, PyArray>>, fuse: bool) -> Tape {
    Tape {
        inner: oxmx::compile::Tape::capture_with(&arrays(leaves), &arrays(outputs), fuse),
    }
}

/// The graph behind `outputs` as Graphviz DOT text (`export_to_dot`).
#[pyfunction]
fn dot(outputs: Vec<PyRef<'_, PyArray>>, names: Vec<(String, PyRef<'_, PyArray>)>) -> String {
    let names: Vec<(String, Array)> = names
        .into_iter()
        .map(|(n, a)| (n, a.inner.clone()))
        .collect();
    oxmx::compile::dot(&arrays(outputs), &names)
}

pub fn register_tape(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Tape>()?;
    crate::export_py::register(m)?;
    m.add_function(wrap_pyfunction!(dot, m)?)?;
    m.add_function(wrap_pyfunction!(capture, m)?)?;
    Ok(())
}
