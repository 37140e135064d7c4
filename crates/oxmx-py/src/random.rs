//! `oxmx.core.random` (the `random` submodule of `oxmx._oxmx`): MLX's signatures over
//! `oxmx::random`. Python scalars for bounds and parameters become float32 (int32 for
//! ints) arrays as in MLX, except that a float becomes float64 when the requested
//! dtype is float64.

use crate::convert::{as_array_opt, shape_arg, to_array, wrap};
use crate::device_py::on_stream;
use crate::dtype_py::dtype_arg;
use crate::errors::{type_err, IntoPyResult};
use crate::pyarray::PyArray;
use oxmx::{ops, random, Array, Dtype, Scalar};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList};

type S<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

/// A bound, mean, scale or probability: arrays as they are, Python scalars as MLX makes
/// them (see the module doc).
fn param(obj: &Bound<'_, PyAny>, target: Dtype) -> PyResult<Array> {
    if target == Dtype::Float64 && obj.is_instance_of::<PyFloat>() {
        return ops::scalar(Scalar::Float(obj.extract::<f64>()?), Dtype::Float64).py();
    }
    to_array(obj, None)
}

fn opt_param(obj: S<'_, '_>, target: Dtype) -> PyResult<Option<Array>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(param(o, target)?)),
        _ => Ok(None),
    }
}

fn key_arg(obj: S<'_, '_>) -> PyResult<Option<Array>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match as_array_opt(o)? {
            Some(a) => Ok(Some(a)),
            None => Err(type_err("random", "key must be an array.")),
        },
    }
}

fn shape_or(op: &str, obj: S<'_, '_>) -> PyResult<Vec<i64>> {
    match obj {
        Some(o) if !o.is_none() => shape_arg(op, o),
        _ => Ok(vec![]),
    }
}

fn opt_shape(op: &str, obj: S<'_, '_>) -> PyResult<Option<Vec<i64>>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(shape_arg(op, o)?)),
        _ => Ok(None),
    }
}

fn dtype_or(obj: S<'_, '_>, default: Dtype) -> PyResult<Dtype> {
    Ok(dtype_arg(obj)?.unwrap_or(default))
}

fn seed_arg(op: &str, seed: &Bound<'_, PyAny>) -> PyResult<u64> {
    if seed.is_instance_of::<PyBool>() || !seed.is_instance_of::<PyInt>() {
        return Err(type_err(op, "seed must be an int."));
    }
    seed.extract::<u64>()
        .map_err(|_| type_err(op, "seed must be an integer in [0, 2**64)."))
}

/// Get a PRNG key from a seed.
#[pyfunction]
#[pyo3(signature = (seed))]
fn key(seed: &Bound<'_, PyAny>) -> PyResult<PyArray> {
    random::key(seed_arg("key", seed)?).py().map(wrap)
}

/// Seed the global PRNG.
#[pyfunction]
#[pyo3(signature = (seed))]
fn seed(seed: &Bound<'_, PyAny>) -> PyResult<()> {
    random::seed(seed_arg("seed", seed)?);
    Ok(())
}

/// Split a PRNG key into sub keys.
#[pyfunction]
#[pyo3(signature = (key, num=2, stream=None))]
fn split(key: &Bound<'_, PyAny>, num: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let k = key_arg(Some(key))?.ok_or_else(|| type_err("split", "key must be an array."))?;
    on_stream(stream, || random::split(&k, num)).map(wrap)
}

/// Random bits of `shape`, `width` bytes per element.
#[pyfunction]
#[pyo3(signature = (shape=None, width=4, key=None, stream=None))]
fn bits(shape: S<'_, '_>, width: i64, key: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let shp = shape_or("bits", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || random::bits(&shp, width, k.as_ref())).map(wrap)
}

/// Uniform samples in the half-open interval `[low, high)`.
#[pyfunction]
#[pyo3(signature = (low=None, high=None, shape=None, dtype=None, key=None, stream=None))]
fn uniform(
    low: S<'_, '_>,
    high: S<'_, '_>,
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let lo = opt_param(low, d)?
        .map_or_else(|| ops::scalar(Scalar::Float(0.0), Dtype::Float32).py(), Ok)?;
    let hi = opt_param(high, d)?
        .map_or_else(|| ops::scalar(Scalar::Float(1.0), Dtype::Float32).py(), Ok)?;
    let shp = shape_or("uniform", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || random::uniform(&lo, &hi, &shp, d, k.as_ref())).map(wrap)
}

/// Normally distributed samples (mean `loc`, standard deviation `scale`).
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, loc=None, scale=None, key=None, stream=None))]
fn normal(
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    loc: S<'_, '_>,
    scale: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let shp = shape_or("normal", shape)?;
    let l = opt_param(loc, d)?;
    let s = opt_param(scale, d)?;
    let k = key_arg(key)?;
    on_stream(stream, || {
        random::normal(&shp, d, l.as_ref(), s.as_ref(), k.as_ref())
    })
    .map(wrap)
}

/// Jointly normal samples (not available yet).
#[pyfunction]
#[pyo3(signature = (mean, cov, shape=None, dtype=None, key=None, stream=None))]
fn multivariate_normal(
    mean: &Bound<'_, PyAny>,
    cov: &Bound<'_, PyAny>,
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let (m, c) = (to_array(mean, None)?, to_array(cov, None)?);
    let shp = shape_or("multivariate_normal", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || {
        random::multivariate_normal(&m, &c, &shp, d, k.as_ref())
    })
    .map(wrap)
}

/// Random integers in the half-open interval `[low, high)`.
#[pyfunction]
#[pyo3(signature = (low, high, shape=None, dtype=None, key=None, stream=None))]
fn randint(
    low: &Bound<'_, PyAny>,
    high: &Bound<'_, PyAny>,
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Int32)?;
    let (lo, hi) = (param(low, d)?, param(high, d)?);
    let shp = shape_or("randint", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || random::randint(&lo, &hi, &shp, d, k.as_ref())).map(wrap)
}

/// Bernoulli samples with probability `p`.
#[pyfunction]
#[pyo3(signature = (p=None, shape=None, key=None, stream=None))]
fn bernoulli(
    p: S<'_, '_>,
    shape: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let pa = opt_param(p, Dtype::Float32)?
        .map_or_else(|| ops::scalar(Scalar::Float(0.5), Dtype::Float32).py(), Ok)?;
    let shp = opt_shape("bernoulli", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || {
        random::bernoulli(&pa, shp.as_deref(), k.as_ref())
    })
    .map(wrap)
}

/// Samples from the normal distribution truncated to `(lower, upper)`.
#[pyfunction]
#[pyo3(signature = (lower, upper, shape=None, dtype=None, key=None, stream=None))]
fn truncated_normal(
    lower: &Bound<'_, PyAny>,
    upper: &Bound<'_, PyAny>,
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let (lo, hi) = (param(lower, d)?, param(upper, d)?);
    let shp = opt_shape("truncated_normal", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || {
        random::truncated_normal(&lo, &hi, shp.as_deref(), d, k.as_ref())
    })
    .map(wrap)
}

/// Samples from the standard Gumbel distribution.
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, key=None, stream=None))]
fn gumbel(
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let shp = shape_or("gumbel", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || random::gumbel(&shp, d, k.as_ref())).map(wrap)
}

/// Samples from the categorical distributions given by unnormalized `logits`.
#[pyfunction]
#[pyo3(signature = (logits, axis=-1, shape=None, num_samples=None, key=None, stream=None))]
fn categorical(
    logits: &Bound<'_, PyAny>,
    axis: i64,
    shape: S<'_, '_>,
    num_samples: Option<i64>,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let l = to_array(logits, None)?;
    let shp = opt_shape("categorical", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || {
        random::categorical(&l, axis, shp.as_deref(), num_samples, k.as_ref())
    })
    .map(wrap)
}

/// Samples from a Laplace distribution.
#[pyfunction]
#[pyo3(signature = (shape=None, dtype=None, loc=0.0, scale=1.0, key=None, stream=None))]
fn laplace(
    shape: S<'_, '_>,
    dtype: S<'_, '_>,
    loc: f64,
    scale: f64,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    let shp = shape_or("laplace", shape)?;
    let k = key_arg(key)?;
    on_stream(stream, || random::laplace(&shp, d, loc, scale, k.as_ref())).map(wrap)
}

/// A random permutation of `arange(x)`, or `x` permuted along `axis`.
#[pyfunction]
#[pyo3(signature = (x, axis=0, key=None, stream=None))]
fn permutation(
    x: &Bound<'_, PyAny>,
    axis: i64,
    key: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let k = key_arg(key)?;
    if x.is_instance_of::<PyInt>() && !x.is_instance_of::<PyBool>() {
        let n = x.extract::<i64>()?;
        return on_stream(stream, || random::permutation_n(n, k.as_ref())).map(wrap);
    }
    let a = to_array(x, None)?;
    on_stream(stream, || random::permutation(&a, axis, k.as_ref())).map(wrap)
}

/// `mx.random.state`: a list-like view holding the current key of the global PRNG.
#[pyclass(name = "_RandomState", module = "oxmx.core.random")]
struct RandomState;

#[pymethods]
impl RandomState {
    fn __len__(&self) -> usize {
        1
    }

    fn __getitem__(&self, i: isize) -> PyResult<PyArray> {
        if i == 0 || i == -1 {
            random::state().py().map(wrap)
        } else {
            Err(PyIndexError::new_err("random state index out of range"))
        }
    }

    fn __setitem__(&self, i: isize, key: PyRef<'_, PyArray>) -> PyResult<()> {
        if i == 0 || i == -1 {
            random::set_state(&key.inner).py()
        } else {
            Err(PyIndexError::new_err("random state index out of range"))
        }
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let k = Py::new(py, wrap(random::state().py()?))?;
        Ok(PyList::new(py, [k])?
            .as_any()
            .try_iter()?
            .into_any()
            .unbind())
    }
}

pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "random")?;
    m.add_function(wrap_pyfunction!(key, &m)?)?;
    m.add_function(wrap_pyfunction!(seed, &m)?)?;
    m.add_function(wrap_pyfunction!(split, &m)?)?;
    m.add_function(wrap_pyfunction!(bits, &m)?)?;
    m.add_function(wrap_pyfunction!(uniform, &m)?)?;
    m.add_function(wrap_pyfunction!(normal, &m)?)?;
    m.add_function(wrap_pyfunction!(multivariate_normal, &m)?)?;
    m.add_function(wrap_pyfunction!(randint, &m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, &m)?)?;
    m.add_function(wrap_pyfunction!(truncated_normal, &m)?)?;
    m.add_function(wrap_pyfunction!(gumbel, &m)?)?;
    m.add_function(wrap_pyfunction!(categorical, &m)?)?;
    m.add_function(wrap_pyfunction!(laplace, &m)?)?;
    m.add_function(wrap_pyfunction!(permutation, &m)?)?;
    m.add_class::<RandomState>()?;
    m.add("state", Py::new(py, RandomState)?)?;
    parent.add_submodule(&m)?;
    Ok(())
}
