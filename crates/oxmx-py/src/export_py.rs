//! Natives of `export_function` / `import_function` / `exporter` and of shapeless
//! compile: a traced graph (`_Graph`) taken from a compile tape, written to and read
//! from oxmx's function file (`oxmx_io::function`), described for MLX's export
//! callback, and rebuilt into a tape for new inputs. Reading decodes every step's
//! parameters (`oxmx::compile::decode`); the graph's steps are checked again by the op
//! layer when a call rebuilds them (`oxmx::compile::build`).

use crate::dtype_py::PyDtype;
use crate::io_py::{new_array, to_io_dtype, to_oxmx_dtype, to_py, Bytes, E, R};
use crate::pyarray::PyArray;
use crate::transforms_py::Tape;
use oxmx::compile::{self as cc, Graph, GraphRef, GraphStep};
use oxmx::Array;
use oxmx_io::function as ff;
use pyo3::prelude::*;
use std::path::PathBuf;

/// One trace of a function as data.
#[pyclass(module = "oxmx.core", name = "_Graph")]
#[derive(Clone)]
pub struct PyGraph {
    pub(crate) inner: Graph,
}

/// (kind, index) of a reference: kind "input", "constant" or "step".
fn ref_tuple(r: GraphRef) -> (&'static str, usize) {
    match r {
        GraphRef::Input(i) => ("input", i),
        GraphRef::Const(i) => ("constant", i),
        GraphRef::Step(i) => ("step", i),
    }
}

type StepView = (
    String,
    Vec<i64>,
    Vec<f64>,
    Vec<(&'static str, usize)>,
    Vec<usize>,
    PyDtype,
);

#[pymethods]
impl PyGraph {
    /// A tape over `inputs` (the graph rebuilt through the op layer; the recorded
    /// shapes exactly unless `exact` is false).
    fn tape(&self, py: Python<'_>, inputs: Vec<PyRef<'_, PyArray>>, exact: bool) -> PyResult<Tape> {
        let ins: Vec<Array> = inputs.iter().map(|a| a.inner.clone()).collect();
        let _ = py;
        let t = cc::Tape::from_graph(&self.inner, &ins, exact).map_err(crate::errors::to_py)?;
        Ok(Tape::wrap(t))
    }
    /// Shape and dtype of each input.
    fn input_specs(&self) -> Vec<(Vec<usize>, PyDtype)> {
        self.inner
            .inputs
            .iter()
            .map(|(s, d)| (s.clone(), PyDtype(*d)))
            .collect()
    }
    /// (constants, steps, outputs): each step as (operation, integer parameters, float
    /// parameters, input references, shape, dtype), references as (kind, index).
    #[allow(clippy::type_complexity)]
    fn describe(&self) -> PyResult<(Vec<PyArray>, Vec<StepView>, Vec<(&'static str, usize)>)> {
        let g = &self.inner;
        let consts = g.consts.iter().cloned().map(crate::convert::wrap).collect();
        let steps = g
            .steps
            .iter()
            .map(|s| {
                let (op, ints, floats) = cc::encode(&s.prim).map_err(crate::errors::to_py)?;
                Ok((
                    op,
                    ints,
                    floats,
                    s.inputs.iter().map(|&r| ref_tuple(r)).collect(),
                    s.shape.clone(),
                    PyDtype(s.dtype),
                ))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let outs = g.outputs.iter().map(|&r| ref_tuple(r)).collect();
        Ok((consts, steps, outs))
    }
    fn __len__(&self) -> usize {
        self.inner.steps.len()
    }
}

fn io_ref(r: GraphRef) -> ff::Ref {
    match r {
        GraphRef::Input(i) => ff::Ref::Input(i),
        GraphRef::Const(i) => ff::Ref::Const(i),
        GraphRef::Step(i) => ff::Ref::Step(i),
    }
}

fn core_ref(r: ff::Ref) -> GraphRef {
    match r {
        ff::Ref::Input(i) => GraphRef::Input(i),
        ff::Ref::Const(i) => GraphRef::Const(i),
        ff::Ref::Step(i) => GraphRef::Step(i),
    }
}

fn spec(shape: &[usize], d: oxmx::Dtype) -> ff::Spec {
    ff::Spec {
        dtype: to_io_dtype(d),
        shape: shape.to_vec(),
    }
}

/// A graph as a file trace (constants evaluated to their bytes).
fn to_trace(g: &Graph, keywords: Vec<String>) -> R<ff::Trace> {
    let constants = g
        .consts
        .iter()
        .map(|a| {
            Ok(ff::Constant {
                spec: spec(a.shape(), a.dtype()),
                data: Bytes::of(a)?.slice().to_vec(),
            })
        })
        .collect::<R<Vec<_>>>()?;
    let steps = g
        .steps
        .iter()
        .map(|s| {
            let (op, ints, floats) = cc::encode(&s.prim)?;
            Ok(ff::Step {
                op,
                ints,
                floats,
                inputs: s.inputs.iter().map(|&r| io_ref(r)).collect(),
                out: spec(&s.shape, s.dtype),
            })
        })
        .collect::<R<Vec<_>>>()?;
    Ok(ff::Trace {
        inputs: g.inputs.iter().map(|(s, d)| spec(s, *d)).collect(),
        keywords,
        constants,
        steps,
        outputs: g.outputs.iter().map(|&r| io_ref(r)).collect(),
    })
}

/// A file trace as a graph: constants become arrays, every step's parameters are
/// decoded and checked (the steps themselves are checked when a call rebuilds them).
fn from_trace(t: ff::Trace) -> R<(Graph, Vec<String>)> {
    let consts = t
        .constants
        .into_iter()
        .map(|c| {
            new_array(c.spec.shape, c.spec.dtype, |dst| {
                dst.copy_from_slice(&c.data);
                Ok(())
            })
        })
        .collect::<R<Vec<_>>>()?;
    let steps = t
        .steps
        .into_iter()
        .enumerate()
        .map(|(j, s)| {
            let prim = cc::decode(&s.op, &s.ints, &s.floats)
                .map_err(|e| E::Io(oxmx_io::Error::Format(format!("step {j}: {e}"))))?;
            Ok(GraphStep {
                prim,
                inputs: s.inputs.into_iter().map(core_ref).collect(),
                shape: s.out.shape,
                dtype: to_oxmx_dtype(s.out.dtype),
            })
        })
        .collect::<R<Vec<_>>>()?;
    let g = Graph {
        inputs: t
            .inputs
            .into_iter()
            .map(|s| (s.shape, to_oxmx_dtype(s.dtype)))
            .collect(),
        consts,
        steps,
        outputs: t.outputs.into_iter().map(core_ref).collect(),
    };
    Ok((g, t.keywords))
}

/// Write `traces` (graph, keyword names) to `path` atomically.
#[pyfunction]
fn _write_function_file(
    py: Python<'_>,
    path: PathBuf,
    writer: String,
    metadata: String,
    shapeless: bool,
    traces: Vec<(PyGraph, Vec<String>)>,
) -> PyResult<()> {
    let file = path.display().to_string();
    let r: R<()> = py.allow_threads(|| {
        let traces = traces
            .iter()
            .map(|(g, k)| to_trace(&g.inner, k.clone()))
            .collect::<R<Vec<_>>>()?;
        let bytes = ff::to_bytes(&ff::FunctionFile {
            writer,
            metadata,
            shapeless,
            traces,
        })?;
        oxmx_io::atomic::write_atomic(&path, true, bytes.len() as u64, |w| {
            std::io::Write::write_all(w, &bytes).map_err(oxmx_io::Error::Io)
        })?;
        Ok(())
    });
    r.map_err(|e| to_py(py, "export_function", &file, e))
}

/// The file's writer, metadata, shapeless flag and traces (graph, keyword names).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn _read_function_file(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(String, String, bool, Vec<(PyGraph, Vec<String>)>)> {
    let file = path.display().to_string();
    let r: R<_> = py.allow_threads(|| {
        let src = oxmx_io::FileSource::open(&path)?;
        let f = ff::read(&src)?;
        let traces = f
            .traces
            .into_iter()
            .map(|t| from_trace(t).map(|(g, k)| (PyGraph { inner: g }, k)))
            .collect::<R<Vec<_>>>()?;
        Ok((f.writer, f.metadata, f.shapeless, traces))
    });
    r.map_err(|e| to_py(py, "import_function", &file, e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGraph>()?;
    m.add_function(wrap_pyfunction!(_write_function_file, m)?)?;
    m.add_function(wrap_pyfunction!(_read_function_file, m)?)?;
    Ok(())
}
