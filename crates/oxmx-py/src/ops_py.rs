//! Module-level functions of `oxmx.core` (thin: convert arguments, call the op).

use crate::convert::{axes_arg, operand, operands, shape_arg, shape_arg_usize, to_array, wrap};
use crate::device_py::on_stream;
use crate::dtype_py::dtype_arg;
use crate::errors::{type_err, value_err, IntoPyResult};
use crate::pyarray::PyArray;
use oxmx::{ops, Array, Dtype, Scalar};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

type S<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

fn arr(a: &Bound<'_, PyAny>) -> PyResult<Array> {
    operand(a, None)
}

macro_rules! unary_py {
    ($($name:ident => $f:path),* $(,)?) => {$(
        #[pyfunction]
        #[pyo3(signature = (a, /, *, stream=None))]
        pub fn $name(a: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<PyArray> {
            let x = arr(a)?;
            on_stream(stream, || $f(&x)).map(wrap)
        }
    )*};
}

unary_py! {
    abs => ops::abs, negative => ops::negative, sign => ops::sign, square => ops::square,
    sqrt => ops::sqrt, rsqrt => ops::rsqrt, reciprocal => ops::reciprocal, exp => ops::exp,
    expm1 => ops::expm1, log => ops::log, log2 => ops::log2, log10 => ops::log10,
    log1p => ops::log1p, sin => ops::sin, cos => ops::cos, tan => ops::tan,
    arcsin => ops::arcsin, arccos => ops::arccos, arctan => ops::arctan, sinh => ops::sinh,
    cosh => ops::cosh, tanh => ops::tanh, arcsinh => ops::arcsinh, arccosh => ops::arccosh,
    arctanh => ops::arctanh, asin => ops::arcsin, acos => ops::arccos, atan => ops::arctan,
    asinh => ops::arcsinh, acosh => ops::arccosh, atanh => ops::arctanh, erf => ops::erf,
    erfinv => ops::erfinv, sigmoid => ops::sigmoid, floor => ops::floor, ceil => ops::ceil,
    trunc => ops::trunc, isnan => ops::isnan, isinf => ops::isinf, isposinf => ops::isposinf,
    isneginf => ops::isneginf, isfinite => ops::isfinite, logical_not => ops::logical_not,
    bitwise_invert => ops::bitwise_invert, conj => ops::conjugate, conjugate => ops::conjugate,
    real => ops::real, imag => ops::imag, positive => ops::positive, degrees => ops::degrees,
    radians => ops::radians, contiguous_ => ops::contiguous,
}

macro_rules! binary_py {
    ($($name:ident => $f:path),* $(,)?) => {$(
        #[pyfunction]
        #[pyo3(signature = (a, b, /, *, stream=None))]
        pub fn $name(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<PyArray> {
            let (x, y) = operands(a, b)?;
            on_stream(stream, || $f(&x, &y)).map(wrap)
        }
    )*};
}

binary_py! {
    add => ops::add, subtract => ops::subtract, multiply => ops::multiply, divide => ops::divide,
    floor_divide => ops::floor_divide, remainder => ops::remainder, power => ops::power,
    pow => ops::power, maximum => ops::maximum, minimum => ops::minimum, equal => ops::equal,
    not_equal => ops::not_equal, less => ops::less, less_equal => ops::less_equal,
    greater => ops::greater, greater_equal => ops::greater_equal, logical_and => ops::logical_and,
    logical_or => ops::logical_or, logical_xor => ops::logical_xor, bitwise_and => ops::bitwise_and,
    bitwise_or => ops::bitwise_or, bitwise_xor => ops::bitwise_xor, left_shift => ops::left_shift,
    right_shift => ops::right_shift, bitwise_left_shift => ops::left_shift,
    bitwise_right_shift => ops::right_shift, arctan2 => ops::arctan2, atan2 => ops::arctan2,
    logaddexp => ops::logaddexp, matmul => ops::matmul, inner => ops::inner, outer => ops::outer,
}

#[pyfunction]
#[pyo3(signature = (a, b, /, *, stream=None))]
fn divmod(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<Vec<PyArray>> {
    // MLX returns a list [quotient, remainder]
    let (x, y) = operands(a, b)?;
    let q = on_stream(stream, || ops::floor_divide(&x, &y))?;
    let r = on_stream(stream, || ops::remainder(&x, &y))?;
    Ok(vec![wrap(q), wrap(r)])
}

#[pyfunction]
#[pyo3(signature = (a, /, decimals=0, *, stream=None))]
fn round(a: &Bound<'_, PyAny>, decimals: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::round(&x, decimals)).map(wrap)
}

#[pyfunction]
#[pyo3(name = "where", signature = (condition, x, y, /, *, stream=None))]
fn where_(
    condition: &Bound<'_, PyAny>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let c = arr(condition)?;
    let (a, b) = operands(x, y)?;
    on_stream(stream, || ops::where_(&c, &a, &b)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, a_min, a_max, *, stream=None))]
fn clip(
    a: &Bound<'_, PyAny>,
    a_min: &Bound<'_, PyAny>,
    a_max: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let lo = if a_min.is_none() {
        None
    } else {
        Some(operand(a_min, Some(x.dtype()))?)
    };
    let hi = if a_max.is_none() {
        None
    } else {
        Some(operand(a_max, Some(x.dtype()))?)
    };
    on_stream(stream, || ops::clip(&x, lo.as_ref(), hi.as_ref())).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, b, /, rtol=1e-5, atol=1e-8, *, equal_nan=false, stream=None))]
fn isclose(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    on_stream(stream, || ops::isclose(&x, &y, rtol, atol, equal_nan)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, b, /, rtol=1e-5, atol=1e-8, *, equal_nan=false, stream=None))]
fn allclose(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    rtol: f64,
    atol: f64,
    equal_nan: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    on_stream(stream, || {
        ops::all(&ops::isclose(&x, &y, rtol, atol, equal_nan)?, None, false)
    })
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, b, /, equal_nan=false, *, stream=None))]
fn array_equal(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    equal_nan: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    if x.shape() != y.shape() {
        return ops::scalar(Scalar::Bool(false), Dtype::Bool).py().map(wrap);
    }
    on_stream(stream, || {
        let mut eq = ops::equal(&x, &y)?;
        if equal_nan {
            eq = ops::logical_or(&eq, &ops::logical_and(&ops::isnan(&x)?, &ops::isnan(&y)?)?)?;
        }
        ops::all(&eq, None, false)
    })
    .map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, nan=0.0, posinf=None, neginf=None, *, stream=None))]
fn nan_to_num(
    a: &Bound<'_, PyAny>,
    nan: f64,
    posinf: Option<f64>,
    neginf: Option<f64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::nan_to_num(&x, nan, posinf, neginf)).map(wrap)
}

// ---- reductions ----
macro_rules! reduce_py {
    ($($name:ident => $f:path),* $(,)?) => {$(
        #[pyfunction]
        #[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
        pub fn $name(a: &Bound<'_, PyAny>, axis: S<'_, '_>, keepdims: bool, stream: S<'_, '_>) -> PyResult<PyArray> {
            let x = arr(a)?;
            let ax = axes_arg(stringify!($name), axis)?;
            on_stream(stream, || $f(&x, ax.as_deref(), keepdims)).map(wrap)
        }
    )*};
}
reduce_py! {
    sum => ops::sum, prod => ops::prod, max => ops::max, min => ops::min, all => ops::all,
    any => ops::any, mean => ops::mean, logsumexp => ops::logsumexp,
    count_nonzero => ops::count_nonzero,
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, ddof=0, *, stream=None))]
fn var(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    keepdims: bool,
    ddof: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("var", axis)?;
    on_stream(stream, || ops::var(&x, ax.as_deref(), keepdims, ddof)).map(wrap)
}

#[pyfunction]
#[pyo3(name = "std", signature = (a, /, axis=None, keepdims=false, ddof=0, *, stream=None))]
fn std_(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    keepdims: bool,
    ddof: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("std", axis)?;
    on_stream(stream, || ops::std(&x, ax.as_deref(), keepdims, ddof)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, *, precise=false, stream=None))]
fn softmax(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    precise: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("softmax", axis)?;
    on_stream(stream, || ops::softmax(&x, ax.as_deref(), precise)).map(wrap)
}

fn axis_int(op: &str, axis: S<'_, '_>) -> PyResult<Option<i64>> {
    match axis {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => {
            if o.is_instance_of::<pyo3::types::PyBool>() {
                return Err(type_err(op, "axis must be an integer."));
            }
            Ok(Some(
                o.extract::<i64>()
                    .map_err(|_| type_err(op, "axis must be an integer."))?,
            ))
        }
    }
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
fn argmax(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    keepdims: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axis_int("argmax", axis)?;
    on_stream(stream, || ops::argmax(&x, ax, keepdims)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
fn argmin(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    keepdims: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axis_int("argmin", axis)?;
    on_stream(stream, || ops::argmin(&x, ax, keepdims)).map(wrap)
}

// ---- scans and sorting ----
macro_rules! scan_py {
    ($($name:ident => $op:ident),* $(,)?) => {$(
        #[pyfunction]
        #[pyo3(signature = (a, /, axis=None, *, reverse=false, inclusive=true, stream=None))]
        pub fn $name(a: &Bound<'_, PyAny>, axis: S<'_, '_>, reverse: bool, inclusive: bool, stream: S<'_, '_>) -> PyResult<PyArray> {
            let x = arr(a)?;
            let ax = axis_int(stringify!($name), axis)?;
            on_stream(stream, || ops::scan(oxmx::primitive::ScanOp::$op, &x, ax, reverse, inclusive)).map(wrap)
        }
    )*};
}
scan_py! { cumsum => Sum, cumprod => Prod, cummax => Max, cummin => Min, logcumsumexp => LogAddExp }

#[pyfunction]
#[pyo3(signature = (a, /, axis=Some(-1), *, stream=None))]
fn sort(a: &Bound<'_, PyAny>, axis: Option<i64>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::sort(&x, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=Some(-1), *, stream=None))]
fn argsort(a: &Bound<'_, PyAny>, axis: Option<i64>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::argsort(&x, axis)).map(wrap)
}

/// A full sort is a valid partition (every element before `kth` is not greater).
#[pyfunction]
#[pyo3(signature = (a, /, kth, axis=Some(-1), *, stream=None))]
fn partition(
    a: &Bound<'_, PyAny>,
    kth: i64,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    check_kth("partition", &x, kth, axis)?;
    on_stream(stream, || ops::sort(&x, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, kth, axis=Some(-1), *, stream=None))]
fn argpartition(
    a: &Bound<'_, PyAny>,
    kth: i64,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    check_kth("argpartition", &x, kth, axis)?;
    on_stream(stream, || ops::argsort(&x, axis)).map(wrap)
}

fn check_kth(op: &str, x: &Array, kth: i64, axis: Option<i64>) -> PyResult<()> {
    let n = match axis {
        None => x.size() as i64,
        Some(a) => x.shape()[oxmx::shape::normalize_axis(op, a, x.ndim()).py()?] as i64,
    };
    if kth < -n || kth >= n {
        return Err(value_err(
            op,
            format!("kth {kth} is out of range for an axis of size {n}."),
        ));
    }
    Ok(())
}

#[pyfunction]
#[pyo3(signature = (a, /, k, axis=Some(-1), *, stream=None))]
fn topk(a: &Bound<'_, PyAny>, k: i64, axis: Option<i64>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::topk(&x, k, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, keepdims=false, *, stream=None))]
fn median(
    a: &Bound<'_, PyAny>,
    axis: S<'_, '_>,
    keepdims: bool,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("median", axis)?;
    on_stream(stream, || ops::median(&x, ax.as_deref(), keepdims)).map(wrap)
}

// ---- matmul family ----
#[pyfunction]
#[pyo3(signature = (c, a, b, /, alpha=1.0, beta=1.0, *, stream=None))]
fn addmm(
    c: &Bound<'_, PyAny>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    alpha: f64,
    beta: f64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    let z = arr(c)?;
    on_stream(stream, || ops::addmm(&z, &x, &y, alpha, beta)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, b, /, axes=None, *, stream=None))]
fn tensordot(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    axes: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    match axes {
        None => on_stream(stream, || ops::tensordot(&x, &y, 2)).map(wrap),
        Some(o) if o.is_none() => on_stream(stream, || ops::tensordot(&x, &y, 2)).map(wrap),
        Some(o) => {
            if let Ok(n) = o.extract::<i64>() {
                return on_stream(stream, || ops::tensordot(&x, &y, n)).map(wrap);
            }
            let items: Vec<Bound<'_, PyAny>> = o
                .try_iter()
                .and_then(|it| it.collect::<PyResult<Vec<_>>>())
                .map_err(|_| {
                    type_err("tensordot", "axes must be an int or a pair of axis lists.")
                })?;
            if items.len() != 2 {
                return Err(type_err(
                    "tensordot",
                    "axes must be an int or a pair of axis lists.",
                ));
            }
            let xa = shape_arg("tensordot", &items[0])?;
            let xb = shape_arg("tensordot", &items[1])?;
            on_stream(stream, || ops::tensordot_axes(&x, &y, &xa, &xb)).map(wrap)
        }
    }
}

#[pyfunction]
#[pyo3(signature = (a, b, /, axis=-1, *, stream=None))]
fn vecdot(
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    axis: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    on_stream(stream, || ops::vecdot(&x, &y, axis)).map(wrap)
}

// ---- creation ----
fn dtype_or(obj: S<'_, '_>, d: Dtype) -> PyResult<Dtype> {
    Ok(dtype_arg(obj)?.unwrap_or(d))
}

/// MLX's `asarray(a, dtype=None, *, copy=None)`. On the CPU every conversion copies
/// (as MLX's), so `copy=False` is refused with ValueError, like MLX does.
#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, copy=None))]
fn asarray(a: &Bound<'_, PyAny>, dtype: S<'_, '_>, copy: S<'_, '_>) -> PyResult<PyArray> {
    let op = "asarray";
    if a.is_none() {
        return Err(type_err(op, "Cannot create an array from None."));
    }
    let copy = match copy {
        None => None,
        Some(c) if c.is_instance_of::<pyo3::types::PyBool>() => Some(c.extract::<bool>()?),
        Some(c) => {
            return Err(type_err(
                op,
                format!("copy must be a bool or None, got {}.", c.get_type().name()?),
            ));
        }
    };
    let x = to_array(a, dtype_arg(dtype)?)?;
    if copy == Some(false) {
        return Err(value_err(
            op,
            "Unable to avoid copy while creating an array as requested.",
        ));
    }
    Ok(wrap(x))
}

#[pyfunction]
#[pyo3(signature = (shape, dtype=None, *, stream=None))]
fn zeros(shape: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let s = shape_arg_usize("zeros", shape)?;
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::zeros(s, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (shape, dtype=None, *, stream=None))]
fn ones(shape: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let s = shape_arg_usize("ones", shape)?;
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::ones(s, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (shape, dtype=None, *, stream=None))]
fn empty(shape: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    zeros(shape, dtype, stream)
}

#[pyfunction]
#[pyo3(signature = (shape, vals, dtype=None, *, stream=None))]
fn full(
    shape: &Bound<'_, PyAny>,
    vals: &Bound<'_, PyAny>,
    dtype: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let s = shape_arg_usize("full", shape)?;
    let d = dtype_arg(dtype)?;
    if let (Some(d), Some(sc)) = (d, crate::convert::scalar_of(vals)?) {
        // MLX: a Python int that does not fit the requested integer dtype is an error
        crate::convert::check_int_fits(sc, d)?;
    }
    let v = to_array(vals, None)?;
    on_stream(stream, || ops::full(s, &v, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, stream=None))]
fn zeros_like(a: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let d = dtype_or(dtype, x.dtype())?;
    on_stream(stream, || ops::zeros(x.shape().to_vec(), d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, stream=None))]
fn ones_like(a: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let d = dtype_or(dtype, x.dtype())?;
    on_stream(stream, || ops::ones(x.shape().to_vec(), d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, dtype=None, *, stream=None))]
fn empty_like(a: &Bound<'_, PyAny>, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    zeros_like(a, dtype, stream)
}

#[pyfunction]
#[pyo3(signature = (a, /, fill_value, dtype=None, *, stream=None))]
fn full_like(
    a: &Bound<'_, PyAny>,
    fill_value: &Bound<'_, PyAny>,
    dtype: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let d = dtype_or(dtype, x.dtype())?;
    let v = operand(fill_value, Some(d))?;
    on_stream(stream, || ops::full(x.shape().to_vec(), &v, Some(d))).map(wrap)
}

fn num(op: &str, o: &Bound<'_, PyAny>) -> PyResult<(f64, bool)> {
    if o.is_instance_of::<pyo3::types::PyBool>() {
        return Ok((o.extract::<bool>()? as u8 as f64, true));
    }
    if o.is_instance_of::<pyo3::types::PyInt>() {
        return Ok((
            o.extract::<i64>()
                .map_err(|_| value_err(op, "integer out of range"))? as f64,
            true,
        ));
    }
    if let Ok(f) = o.extract::<f64>() {
        return Ok((f, false));
    }
    Err(type_err(
        op,
        format!("Expected a number, got {}.", o.get_type().name()?),
    ))
}

#[pyfunction]
#[pyo3(signature = (start=None, stop=None, step=None, dtype=None, *, stream=None))]
fn arange(
    start: S<'_, '_>,
    stop: S<'_, '_>,
    step: S<'_, '_>,
    dtype: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let op = "arange";
    let start_or_stop = match (start, stop) {
        (Some(s), _) if !s.is_none() => s,
        (_, Some(s)) if !s.is_none() => {
            // only `stop` given
            return arange(Some(s), None, step, dtype, stream);
        }
        _ => return Err(type_err(op, "arange requires at least a stop value.")),
    };
    let (a, ai) = num(op, start_or_stop)?;
    let (start, stop_v, mut all_int) = match stop {
        Some(s) if !s.is_none() => {
            let (b, bi) = num(op, s)?;
            (a, b, ai && bi)
        }
        _ => (0.0, a, ai),
    };
    let step_v = match step {
        Some(s) if !s.is_none() => {
            let (c, ci) = num(op, s)?;
            all_int &= ci;
            c
        }
        _ => 1.0,
    };
    let d = dtype_or(
        dtype,
        if all_int {
            Dtype::Int32
        } else {
            Dtype::Float32
        },
    )?;
    on_stream(stream, || ops::arange(start, stop_v, step_v, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (start, stop, num=None, endpoint=None, dtype=None, *, stream=None))]
fn linspace(
    start: f64,
    stop: f64,
    num: S<'_, '_>,
    endpoint: S<'_, '_>,
    dtype: S<'_, '_>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let op = "linspace";
    // MLX takes `num` as a 32-bit int (default 50) and `endpoint` as a strict bool.
    let num: i64 = match num {
        None => 50,
        Some(v) if v.is_none() || v.is_instance_of::<pyo3::types::PyFloat>() => {
            return Err(type_err(
                op,
                format!("num must be an int, got {}.", v.get_type().name()?),
            ));
        }
        Some(v) => v
            .call_method0("__index__")
            .and_then(|i| i.extract::<i32>())
            .map_err(|_| type_err(op, "num must be an int in the 32-bit range."))?
            .into(),
    };
    let endpoint = match endpoint {
        None => true,
        Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => v.extract::<bool>()?,
        Some(v) => {
            return Err(type_err(
                op,
                format!("endpoint must be a bool, got {}.", v.get_type().name()?),
            ));
        }
    };
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::linspace(start, stop, num, endpoint, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (n, m=None, k=0, dtype=None, *, stream=None))]
fn eye(n: i64, m: Option<i64>, k: i64, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::eye(n, m, k, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (n, dtype=None, *, stream=None))]
fn identity(n: i64, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::eye(n, None, 0, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (n, m=None, k=0, dtype=None, *, stream=None))]
fn tri(n: i64, m: Option<i64>, k: i64, dtype: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let d = dtype_or(dtype, Dtype::Float32)?;
    on_stream(stream, || ops::tri(n, m, k, d)).map(wrap)
}

fn tri_mask(x: &Array, k: i64, upper: bool) -> oxmx::Result<Array> {
    let nd = x.ndim();
    if nd < 2 {
        return Err(oxmx::Error::value(
            if upper { "triu" } else { "tril" },
            "Arrays must have at least 2 dimensions.",
        ));
    }
    let (n, m) = (x.shape()[nd - 2] as i64, x.shape()[nd - 1] as i64);
    let mask = if upper {
        ops::logical_not(&ops::tri(n, Some(m), k - 1, Dtype::Bool)?)?
    } else {
        ops::tri(n, Some(m), k, Dtype::Bool)?
    };
    ops::where_(&mask, x, &ops::zeros(vec![], x.dtype())?)
}

#[pyfunction]
#[pyo3(signature = (x, k=0, *, stream=None))]
fn tril(x: &Bound<'_, PyAny>, k: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let a = arr(x)?;
    on_stream(stream, || tri_mask(&a, k, false)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (x, k=0, *, stream=None))]
fn triu(x: &Bound<'_, PyAny>, k: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let a = arr(x)?;
    on_stream(stream, || tri_mask(&a, k, true)).map(wrap)
}

// ---- shape ops ----
#[pyfunction]
#[pyo3(signature = (a, /, shape, *, stream=None))]
fn reshape(a: &Bound<'_, PyAny>, shape: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let s = shape_arg("reshape", shape)?;
    on_stream(stream, || ops::reshape(&x, &s)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axes=None, *, stream=None))]
fn transpose(a: &Bound<'_, PyAny>, axes: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("transpose", axes)?;
    on_stream(stream, || ops::transpose(&x, ax.as_deref())).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axes=None, *, stream=None))]
fn permute_dims(a: &Bound<'_, PyAny>, axes: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    transpose(a, axes, stream)
}

#[pyfunction]
#[pyo3(signature = (a, /, shape, *, stream=None))]
fn broadcast_to(
    a: &Bound<'_, PyAny>,
    shape: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let s = shape_arg_usize("broadcast_to", shape)?;
    on_stream(stream, || ops::broadcast_to(&x, &s)).map(wrap)
}

fn arrays_arg(op: &str, seq: &Bound<'_, PyAny>) -> PyResult<Vec<Array>> {
    let mut out = Vec::new();
    let it = seq
        .try_iter()
        .map_err(|_| type_err(op, "Expected a sequence of arrays."))?;
    for x in it {
        out.push(arr(&x?)?);
    }
    Ok(out)
}

#[pyfunction]
#[pyo3(signature = (*arrays, stream=None))]
fn broadcast_arrays(arrays: &Bound<'_, PyTuple>, stream: S<'_, '_>) -> PyResult<Vec<PyArray>> {
    let xs = if arrays.len() == 1 && !arrays.get_item(0)?.is_instance_of::<PyArray>() {
        arrays_arg("broadcast_arrays", &arrays.get_item(0)?)?
    } else {
        arrays_arg("broadcast_arrays", arrays.as_any())?
    };
    Ok(on_stream(stream, || ops::broadcast_arrays(&xs))?
        .into_iter()
        .map(wrap)
        .collect())
}

#[pyfunction]
#[pyo3(signature = (*shapes))]
fn broadcast_shapes<'py>(shapes: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyTuple>> {
    if shapes.is_empty() {
        return Err(value_err("broadcast_shapes", "No input shapes provided."));
    }
    let mut out: Vec<usize> = Vec::new();
    for s in shapes.iter() {
        let s = shape_arg_usize("broadcast_shapes", &s)?;
        out = oxmx::shape::broadcast_shapes("broadcast_shapes", &out, &s).py()?;
    }
    PyTuple::new(shapes.py(), out)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis, *, stream=None))]
fn expand_dims(
    a: &Bound<'_, PyAny>,
    axis: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = shape_arg("expand_dims", axis)?;
    on_stream(stream, || ops::expand_dims(&x, &ax)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=None, *, stream=None))]
fn squeeze(a: &Bound<'_, PyAny>, axis: S<'_, '_>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let ax = axes_arg("squeeze", axis)?;
    on_stream(stream, || ops::squeeze(&x, ax.as_deref())).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, start_axis=0, end_axis=-1, *, stream=None))]
fn flatten(
    a: &Bound<'_, PyAny>,
    start_axis: i64,
    end_axis: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::flatten(&x, start_axis, end_axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis, shape, *, stream=None))]
fn unflatten(
    a: &Bound<'_, PyAny>,
    axis: i64,
    shape: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let s = shape_arg("unflatten", shape)?;
    on_stream(stream, || ops::unflatten(&x, axis, &s)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, source, destination, *, stream=None))]
fn moveaxis(
    a: &Bound<'_, PyAny>,
    source: i64,
    destination: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::moveaxis(&x, source, destination)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, axis1, axis2, *, stream=None))]
fn swapaxes(a: &Bound<'_, PyAny>, axis1: i64, axis2: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    on_stream(stream, || ops::swapaxes(&x, axis1, axis2)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (arrays, axis=Some(0), *, stream=None))]
fn concatenate(
    arrays: &Bound<'_, PyAny>,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let xs = arrays_arg("concatenate", arrays)?;
    on_stream(stream, || ops::concatenate(&xs, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (arrays, axis=Some(0), *, stream=None))]
fn concat(arrays: &Bound<'_, PyAny>, axis: Option<i64>, stream: S<'_, '_>) -> PyResult<PyArray> {
    concatenate(arrays, axis, stream)
}

#[pyfunction]
#[pyo3(signature = (arrays, axis=0, *, stream=None))]
fn stack(arrays: &Bound<'_, PyAny>, axis: i64, stream: S<'_, '_>) -> PyResult<PyArray> {
    let xs = arrays_arg("stack", arrays)?;
    on_stream(stream, || ops::stack(&xs, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, indices_or_sections, axis=0, *, stream=None))]
fn split(
    a: &Bound<'_, PyAny>,
    indices_or_sections: &Bound<'_, PyAny>,
    axis: i64,
    stream: S<'_, '_>,
) -> PyResult<Vec<PyArray>> {
    let x = arr(a)?;
    let parts = if let Ok(n) = indices_or_sections.extract::<i64>() {
        on_stream(stream, || ops::split_sections(&x, n, axis))?
    } else {
        let idx = shape_arg("split", indices_or_sections)?;
        on_stream(stream, || ops::split_at(&x, &idx, axis))?
    };
    Ok(parts.into_iter().map(wrap).collect())
}

#[pyfunction]
#[pyo3(signature = (a, /, axis=0, *, stream=None))]
fn unstack<'py>(
    a: &Bound<'py, PyAny>,
    axis: i64,
    stream: S<'_, '_>,
) -> PyResult<Bound<'py, PyTuple>> {
    let x = arr(a)?;
    let parts: Vec<PyArray> = on_stream(stream, || ops::unstack(&x, axis))?
        .into_iter()
        .map(wrap)
        .collect();
    PyTuple::new(a.py(), parts)
}

/// Host integers from an int, sequence or array argument.
fn ints_arg(op: &str, o: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Some(a) = crate::convert::as_array_opt(o)? {
        let vals = crate::convert::array_scalars(&a)?;
        return vals
            .into_iter()
            .map(|v| match v {
                Scalar::Int(i) => Ok(i),
                Scalar::UInt(u) => i64::try_from(u).map_err(|_| value_err(op, "index too large")),
                Scalar::Bool(b) => Ok(b as i64),
                _ => Err(type_err(op, "Indices must be integers.")),
            })
            .collect();
    }
    shape_arg(op, o)
}

/// `mx.slice(a, start_indices, axes, slice_size)`.
#[pyfunction]
#[pyo3(signature = (a, start_indices, axes, slice_size, *, stream=None))]
fn slice(
    a: &Bound<'_, PyAny>,
    start_indices: &Bound<'_, PyAny>,
    axes: &Bound<'_, PyAny>,
    slice_size: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let op = "slice";
    let x = arr(a)?;
    let starts = ints_arg(op, start_indices)?;
    let ax = shape_arg(op, axes)?;
    let sizes = shape_arg(op, slice_size)?;
    if starts.len() != ax.len() || sizes.len() != x.ndim() {
        return Err(value_err(
            op,
            "start_indices must match axes, and slice_size must have one entry per dimension.",
        ));
    }
    let nd = x.ndim();
    let mut start = vec![0i64; nd];
    for (&s, &a) in starts.iter().zip(&ax) {
        let a = oxmx::shape::normalize_axis(op, a, nd).py()?;
        start[a] = s;
    }
    let mut params = Vec::with_capacity(nd);
    for i in 0..nd {
        let dim = x.shape()[i] as i64;
        if sizes[i] < 0 || sizes[i] > dim {
            return Err(value_err(op, "Invalid slice size."));
        }
        let s = if start[i] < 0 {
            start[i] + dim
        } else {
            start[i]
        }
        .clamp(0, dim - sizes[i]);
        params.push((s as usize, sizes[i] as usize, 1i64));
    }
    on_stream(stream, || ops::slice_view(&x, &params)).map(wrap)
}

/// `mx.slice_update(a, update, start_indices, axes)`.
#[pyfunction]
#[pyo3(signature = (a, update, start_indices, axes, *, stream=None))]
fn slice_update(
    a: &Bound<'_, PyAny>,
    update: &Bound<'_, PyAny>,
    start_indices: &Bound<'_, PyAny>,
    axes: &Bound<'_, PyAny>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let op = "slice_update";
    let x = arr(a)?;
    let u = operand(update, Some(x.dtype()))?;
    let starts = ints_arg(op, start_indices)?;
    let ax = shape_arg(op, axes)?;
    let nd = x.ndim();
    if starts.len() != ax.len() || u.ndim() != nd {
        return Err(value_err(
            op,
            "start_indices must match axes and update must have the array's rank.",
        ));
    }
    let mut start = vec![0i64; nd];
    for (&s, &a) in starts.iter().zip(&ax) {
        let a = oxmx::shape::normalize_axis(op, a, nd).py()?;
        start[a] = s;
    }
    let mut stop = vec![0i64; nd];
    for i in 0..nd {
        let dim = x.shape()[i] as i64;
        let len = u.shape()[i] as i64;
        if len > dim {
            return Err(value_err(op, "Update is larger than the array."));
        }
        let s = if start[i] < 0 {
            start[i] + dim
        } else {
            start[i]
        }
        .clamp(0, dim - len);
        start[i] = s;
        stop[i] = s + len;
    }
    on_stream(stream, || ops::slice_update(&x, &u, &start, &stop, None)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, dtype, *, stream=None))]
fn astype(a: &Bound<'_, PyAny>, dtype: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let d = crate::dtype_py::dtype_of(dtype)?;
    on_stream(stream, || ops::astype(&x, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, dtype, *, stream=None))]
fn view(a: &Bound<'_, PyAny>, dtype: &Bound<'_, PyAny>, stream: S<'_, '_>) -> PyResult<PyArray> {
    let x = arr(a)?;
    let d = crate::dtype_py::dtype_of(dtype)?;
    on_stream(stream, || ops::view_dtype(&x, d)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, allow_col_major=false, *, stream=None))]
fn contiguous(a: &Bound<'_, PyAny>, allow_col_major: bool, stream: S<'_, '_>) -> PyResult<PyArray> {
    let _ = allow_col_major;
    let x = arr(a)?;
    on_stream(stream, || ops::contiguous(&x)).map(wrap)
}

fn atleast(arrays: &Bound<'_, PyTuple>, n: usize, stream: S<'_, '_>) -> PyResult<PyObject> {
    let py = arrays.py();
    let mut out = Vec::new();
    for a in arrays.iter() {
        let x = arr(&a)?;
        out.push(wrap(on_stream(stream, || ops::atleast_nd(&x, n))?));
    }
    if out.len() == 1 {
        return Ok(out.pop().into_pyobject(py)?.into_any().unbind());
    }
    Ok(PyList::new(py, out)?.into_any().unbind())
}

#[pyfunction]
#[pyo3(signature = (*arys, stream=None))]
fn atleast_1d(arys: &Bound<'_, PyTuple>, stream: S<'_, '_>) -> PyResult<PyObject> {
    atleast(arys, 1, stream)
}
#[pyfunction]
#[pyo3(signature = (*arys, stream=None))]
fn atleast_2d(arys: &Bound<'_, PyTuple>, stream: S<'_, '_>) -> PyResult<PyObject> {
    atleast(arys, 2, stream)
}
#[pyfunction]
#[pyo3(signature = (*arys, stream=None))]
fn atleast_3d(arys: &Bound<'_, PyTuple>, stream: S<'_, '_>) -> PyResult<PyObject> {
    atleast(arys, 3, stream)
}

#[pyfunction]
#[pyo3(signature = (a, /, shape=None, strides=None, offset=0, *, stream=None))]
fn as_strided(
    a: &Bound<'_, PyAny>,
    shape: S<'_, '_>,
    strides: S<'_, '_>,
    offset: i64,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let s: Vec<i64> = match shape {
        Some(o) if !o.is_none() => shape_arg("as_strided", o)?,
        _ => x.shape().iter().map(|&d| d as i64).collect(),
    };
    let st: Vec<i64> = match strides {
        Some(o) if !o.is_none() => shape_arg("as_strided", o)?,
        _ => {
            let su: Vec<usize> = s.iter().map(|&d| d.max(0) as usize).collect();
            oxmx::shape::contiguous_strides(&su)
                .into_iter()
                .map(|v| v as i64)
                .collect()
        }
    };
    on_stream(stream, || ops::as_strided(&x, &s, &st, offset)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, indices, axis=None, *, stream=None))]
fn take(
    a: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let i = arr(indices)?;
    on_stream(stream, || ops::take(&x, &i, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, indices, axis=None, *, stream=None))]
fn take_along_axis(
    a: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let i = arr(indices)?;
    on_stream(stream, || ops::take_along_axis(&x, &i, axis)).map(wrap)
}

#[pyfunction]
#[pyo3(signature = (a, /, indices, values, axis=None, *, stream=None))]
fn put_along_axis(
    a: &Bound<'_, PyAny>,
    indices: &Bound<'_, PyAny>,
    values: &Bound<'_, PyAny>,
    axis: Option<i64>,
    stream: S<'_, '_>,
) -> PyResult<PyArray> {
    let x = arr(a)?;
    let i = arr(indices)?;
    let mut v = operand(values, Some(x.dtype()))?;
    // MLX accepts values with extra leading length-1 axes
    while v.ndim() > i.ndim().max(1) && v.shape().first() == Some(&1) {
        v = ops::squeeze(&v, Some(&[0])).py()?;
    }
    on_stream(stream, || ops::put_along_axis(&x, &i, &v, axis)).map(wrap)
}

// ---- evaluation ----
/// Arrays in a pytree (lists, tuples, dicts; other leaves ignored), iteratively.
pub fn tree_arrays(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Array>> {
    let mut out = Vec::new();
    let mut stack = vec![obj.clone()];
    while let Some(o) = stack.pop() {
        if let Ok(a) = o.downcast::<PyArray>() {
            out.push(a.borrow().inner.clone());
        } else if let Ok(l) = o.downcast::<PyList>() {
            stack.extend(l.iter());
        } else if let Ok(t) = o.downcast::<PyTuple>() {
            stack.extend(t.iter());
        } else if let Ok(d) = o.downcast::<PyDict>() {
            stack.extend(d.values().iter());
        }
    }
    Ok(out)
}

#[pyfunction]
#[pyo3(signature = (*args))]
fn eval(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let arrays = tree_arrays(args.as_any())?;
    py.allow_threads(|| oxmx::eval::eval(&arrays)).py()
}

#[pyfunction]
#[pyo3(signature = (*args))]
fn async_eval(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let arrays = tree_arrays(args.as_any())?;
    // Evaluation proceeds on a worker thread; readers block on each node until ready.
    ::std::thread::Builder::new()
        .name("oxmx-async-eval".into())
        .spawn(move || {
            let _ = oxmx::eval::eval(&arrays);
        })
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("[async_eval] {e}")))?;
    Ok(())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => {$( m.add_function(wrap_pyfunction!($f, m)?)?; )*};
    }
    add!(
        abs,
        negative,
        sign,
        square,
        sqrt,
        rsqrt,
        reciprocal,
        exp,
        expm1,
        log,
        log2,
        log10,
        log1p,
        sin,
        cos,
        tan,
        arcsin,
        arccos,
        arctan,
        sinh,
        cosh,
        tanh,
        arcsinh,
        arccosh,
        arctanh,
        asin,
        acos,
        atan,
        asinh,
        acosh,
        atanh,
        erf,
        erfinv,
        sigmoid,
        floor,
        ceil,
        trunc,
        isnan,
        isinf,
        isposinf,
        isneginf,
        isfinite,
        logical_not,
        bitwise_invert,
        conj,
        conjugate,
        real,
        imag,
        positive,
        degrees,
        radians,
        add,
        subtract,
        multiply,
        divide,
        floor_divide,
        remainder,
        power,
        pow,
        maximum,
        minimum,
        equal,
        not_equal,
        less,
        less_equal,
        greater,
        greater_equal,
        logical_and,
        logical_or,
        logical_xor,
        bitwise_and,
        bitwise_or,
        bitwise_xor,
        left_shift,
        right_shift,
        bitwise_left_shift,
        bitwise_right_shift,
        arctan2,
        atan2,
        logaddexp,
        matmul,
        inner,
        outer,
        divmod,
        round,
        where_,
        clip,
        isclose,
        allclose,
        array_equal,
        nan_to_num,
        sum,
        prod,
        max,
        min,
        all,
        any,
        mean,
        logsumexp,
        count_nonzero,
        var,
        std_,
        softmax,
        argmax,
        argmin,
        addmm,
        tensordot,
        vecdot,
        cumsum,
        cumprod,
        cummax,
        cummin,
        logcumsumexp,
        sort,
        argsort,
        partition,
        argpartition,
        topk,
        median,
        asarray,
        zeros,
        ones,
        empty,
        full,
        zeros_like,
        ones_like,
        empty_like,
        full_like,
        arange,
        linspace,
        eye,
        identity,
        tri,
        tril,
        triu,
        reshape,
        transpose,
        permute_dims,
        broadcast_to,
        broadcast_arrays,
        broadcast_shapes,
        expand_dims,
        squeeze,
        flatten,
        unflatten,
        moveaxis,
        swapaxes,
        concatenate,
        concat,
        stack,
        split,
        unstack,
        slice,
        slice_update,
        astype,
        view,
        contiguous,
        atleast_1d,
        atleast_2d,
        atleast_3d,
        as_strided,
        take,
        take_along_axis,
        put_along_axis,
        eval,
        async_eval,
    );
    let _ = contiguous_;
    Ok(())
}
