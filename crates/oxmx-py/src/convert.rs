//! Python values → arrays (scalars, nested sequences, NumPy arrays, buffers) and arrays
//! → Python values. Nested sequences are walked with an explicit stack (no recursion
//! on user-controlled depth) and checked for raggedness.

use crate::errors::{type_err, value_err, IntoPyResult};
use crate::pyarray::PyArray;
use oxmx::dtype::{promote_weak, ScalarKind};
use oxmx::shape::Shape;
use oxmx::{ops, Array, Dtype, Scalar};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyComplex, PyFloat, PyInt, PyList, PyTuple};

/// Deepest nesting accepted (NumPy's limit on dimensions).
pub const MAX_NDIM: usize = 64;

pub fn as_array_opt(obj: &Bound<'_, PyAny>) -> PyResult<Option<Array>> {
    if let Ok(a) = obj.downcast::<PyArray>() {
        return Ok(Some(a.borrow().inner.clone()));
    }
    Ok(None)
}

/// A Python scalar (bool/int/float/complex, including NumPy scalars of those kinds
/// only when `numpy_ok`).
pub fn scalar_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Scalar>> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(Some(Scalar::Bool(obj.extract::<bool>()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Some(Scalar::Int(v)));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(Some(Scalar::UInt(v)));
        }
        return Err(pyo3::exceptions::PyOverflowError::new_err(
            "[array] Python int too large to convert to an integer type.",
        ));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Some(Scalar::Float(obj.extract::<f64>()?)));
    }
    if obj.is_instance_of::<PyComplex>() {
        let c = obj.downcast::<PyComplex>()?;
        return Ok(Some(Scalar::Complex(c.real(), c.imag())));
    }
    Ok(None)
}

/// A NumPy scalar (np.int32(3), np.float16(0.5), np.bool_(True), ...) as its Python value.
pub fn numpy_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Scalar>> {
    let t = obj.get_type();
    let from_numpy = t.module().map(|m| m == "numpy").unwrap_or(false);
    if !from_numpy || t.name().map(|n| n == "ndarray").unwrap_or(true) {
        return Ok(None);
    }
    if obj.getattr("ndim").and_then(|n| n.extract::<usize>()).ok() != Some(0) {
        return Ok(None);
    }
    match obj.call_method0("item") {
        Ok(item) => scalar_of(&item),
        Err(_) => Ok(None),
    }
}

fn kind_rank(k: ScalarKind) -> u8 {
    match k {
        ScalarKind::Bool => 0,
        ScalarKind::Int => 1,
        ScalarKind::Float => 2,
        ScalarKind::Complex => 3,
    }
}

fn is_seq(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>()
}

fn seq_items<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = obj.downcast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = obj.downcast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    Ok(vec![])
}

fn is_numpy_like(obj: &Bound<'_, PyAny>) -> bool {
    obj.hasattr("__array_interface__").unwrap_or(false) || obj.hasattr("__array__").unwrap_or(false)
}

/// Convert a NumPy array (or anything np.asarray accepts: buffers, NumPy scalars).
fn from_numpy(obj: &Bound<'_, PyAny>) -> PyResult<Array> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let mut arr = np.call_method1("asarray", (obj,))?;
    let dt = arr.getattr("dtype")?;
    let kind: String = dt.getattr("kind")?.extract()?;
    let itemsize: usize = dt.getattr("itemsize")?.extract()?;
    let name: String = dt.getattr("name")?.extract()?;
    let dtype = match (kind.as_str(), itemsize) {
        ("b", 1) => Dtype::Bool,
        ("u", 1) => Dtype::Uint8,
        ("u", 2) => Dtype::Uint16,
        ("u", 4) => Dtype::Uint32,
        ("u", 8) => Dtype::Uint64,
        ("i", 1) => Dtype::Int8,
        ("i", 2) => Dtype::Int16,
        ("i", 4) => Dtype::Int32,
        ("i", 8) => Dtype::Int64,
        ("f", 2) => Dtype::Float16,
        ("f", 4) => Dtype::Float32,
        ("f", 8) => Dtype::Float64,
        ("c", 8) => Dtype::Complex64,
        ("c", 16) => {
            arr = arr.call_method1("astype", ("complex64",))?;
            Dtype::Complex64
        }
        ("V", 2) if name == "bfloat16" => Dtype::Bfloat16,
        _ if name == "bfloat16" => Dtype::Bfloat16,
        _ => {
            return Err(type_err(
                "array",
                format!("Cannot convert NumPy dtype {name} to an oxmx dtype."),
            ))
        }
    };
    // native little-endian, C-contiguous
    let byteorder: String = arr.getattr("dtype")?.getattr("byteorder")?.extract()?;
    if byteorder == ">" {
        let native = arr.getattr("dtype")?.call_method1("newbyteorder", ("<",))?;
        arr = arr.call_method1("astype", (native,))?;
    }
    // (ascontiguousarray would turn a 0-d array into 1-d: keep the shape first)
    let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
    let arr = np.call_method1("ascontiguousarray", (arr,))?;
    let bytes = arr.call_method0("tobytes")?;
    let b: &[u8] = bytes.downcast::<pyo3::types::PyBytes>()?.as_bytes();
    ops::from_bytes("array", b, shape, dtype).py()
}

/// Flatten a nested sequence into scalars with a shape, iteratively.
fn from_nested(obj: &Bound<'_, PyAny>) -> PyResult<(Shape, Vec<Scalar>, ScalarKind)> {
    // shape from the first element at each level
    let mut shape: Shape = Vec::new();
    let mut cur = obj.clone();
    let mut leaf_shape: Shape = Vec::new();
    loop {
        if is_seq(&cur) {
            if shape.len() >= MAX_NDIM {
                return Err(value_err(
                    "array",
                    format!("Nested sequences deeper than {MAX_NDIM} levels are not supported."),
                ));
            }
            let n = cur.len()?;
            shape.push(n);
            if n == 0 {
                break;
            }
            cur = cur.get_item(0)?;
        } else {
            if let Some(a) = as_array_opt(&cur)? {
                leaf_shape = a.shape().to_vec();
            }
            break;
        }
    }
    let list_depth = shape.len();
    shape.extend_from_slice(&leaf_shape);
    let mut values: Vec<Scalar> = Vec::new();
    let mut kind = ScalarKind::Bool;
    let mut stack: Vec<(Bound<'_, PyAny>, usize)> = vec![(obj.clone(), 0)];
    let ragged = || {
        value_err(
            "array",
            "Initialization encountered non-uniform length (the nested sequence is ragged).",
        )
    };
    while let Some((o, depth)) = stack.pop() {
        if depth < list_depth {
            if !is_seq(&o) {
                return Err(ragged());
            }
            let items = seq_items(&o)?;
            if items.len() != shape[depth] {
                return Err(ragged());
            }
            for it in items.into_iter().rev() {
                stack.push((it, depth + 1));
            }
            continue;
        }
        if let Some(a) = as_array_opt(&o)? {
            if a.shape() != leaf_shape.as_slice() {
                return Err(ragged());
            }
            let k = match a.dtype() {
                Dtype::Bool => ScalarKind::Bool,
                d if d.is_integer() => ScalarKind::Int,
                Dtype::Complex64 => ScalarKind::Complex,
                _ => ScalarKind::Float,
            };
            if kind_rank(k) > kind_rank(kind) {
                kind = k;
            }
            values.extend(array_scalars(&a)?);
            continue;
        }
        if is_seq(&o) || !leaf_shape.is_empty() {
            return Err(ragged());
        }
        match scalar_of(&o)? {
            Some(s) => {
                if kind_rank(s.kind()) > kind_rank(kind) {
                    kind = s.kind();
                }
                values.push(s);
            }
            None => {
                // NumPy scalars and other numbers
                if let Ok(f) = o.extract::<f64>() {
                    kind = if kind_rank(kind) < 2 {
                        ScalarKind::Float
                    } else {
                        kind
                    };
                    values.push(Scalar::Float(f));
                } else {
                    return Err(value_err(
                        "array",
                        format!(
                            "Invalid type {} received in array initialization.",
                            o.get_type().name()?
                        ),
                    ));
                }
            }
        }
    }
    Ok((shape, values, kind))
}

/// Every element of an array as host scalars (evaluates).
pub fn array_scalars(a: &Array) -> PyResult<Vec<Scalar>> {
    let bytes = host_bytes(a)?;
    let sz = a.dtype().size();
    let mut out = Vec::with_capacity(a.size());
    for ch in bytes.chunks_exact(sz) {
        out.push(
            Scalar::from_bytes(a.dtype(), ch).ok_or_else(|| value_err("array", "bad element"))?,
        );
    }
    Ok(out)
}

/// Row-major bytes of an array (evaluates; releases the GIL while computing).
pub fn host_bytes(a: &Array) -> PyResult<Vec<u8>> {
    let a2 = a.clone();
    let data = Python::with_gil(|py| {
        py.allow_threads(move || {
            let c = if a2.ready_data().is_some_and(|d| d.is_contiguous(a2.shape())) {
                a2.clone()
            } else {
                ops::contiguous(&a2)?
            };
            c.data()
        })
    })
    .py()?;
    let n = a.nbytes();
    if n == 0 {
        // an empty view may carry an offset past its (possibly empty) buffer
        return Ok(Vec::new());
    }
    let start = data
        .offset
        .checked_mul(a.dtype().size())
        .ok_or_else(|| value_err("array", "offset overflow"))?;
    let b = data.buffer.bytes();
    start
        .checked_add(n)
        .and_then(|end| b.get(start..end))
        .map(|s| s.to_vec())
        .ok_or_else(|| value_err("array", "buffer too small"))
}

fn scalars_to_array(shape: Shape, values: &[Scalar], dtype: Dtype) -> PyResult<Array> {
    let mut bytes = Vec::with_capacity(values.len() * dtype.size());
    for v in values {
        bytes.extend_from_slice(&v.to_bytes(dtype));
    }
    ops::from_bytes("array", &bytes, shape, dtype).py()
}

fn default_for(kind: ScalarKind, values: &[Scalar]) -> Dtype {
    match kind {
        ScalarKind::Bool if values.is_empty() => Dtype::Float32,
        ScalarKind::Bool => Dtype::Bool,
        ScalarKind::Int => {
            let fits = values.iter().all(|v| match *v {
                Scalar::Int(i) => i32::try_from(i).is_ok(),
                Scalar::UInt(_) => false,
                _ => true,
            });
            if fits {
                Dtype::Int32
            } else {
                Dtype::Int64
            }
        }
        ScalarKind::Float => Dtype::Float32,
        ScalarKind::Complex => Dtype::Complex64,
    }
}

/// `mx.array(obj, dtype)` semantics.
pub fn to_array(obj: &Bound<'_, PyAny>, dtype: Option<Dtype>) -> PyResult<Array> {
    if let Some(a) = as_array_opt(obj)? {
        return match dtype {
            Some(d) => ops::astype(&a, d).py(),
            None => Ok(a),
        };
    }
    if let Some(s) = scalar_of(obj)? {
        let d = dtype.unwrap_or_else(|| default_for(s.kind(), &[s]));
        return ops::scalar(s, d).py();
    }
    if is_seq(obj) {
        let (shape, values, kind) = from_nested(obj)?;
        let d = dtype.unwrap_or_else(|| default_for(kind, &values));
        return scalars_to_array(shape, &values, d);
    }
    if is_numpy_like(obj)
        || obj.hasattr("__buffer__").unwrap_or(false)
        || obj.is_instance_of::<pyo3::types::PyMemoryView>()
    {
        let a = from_numpy(obj)?;
        return match dtype {
            Some(d) => ops::astype(&a, d).py(),
            // MLX turns NumPy float64 data into float32 unless a dtype is asked for.
            None if a.dtype() == Dtype::Float64 => ops::astype(&a, Dtype::Float32).py(),
            None => Ok(a),
        };
    }
    if obj.hasattr("__dlpack__").unwrap_or(false) {
        let a = from_numpy(obj)?;
        return match dtype {
            Some(d) => ops::astype(&a, d).py(),
            None => Ok(a),
        };
    }
    Err(value_err(
        "array",
        format!(
            "Invalid type {} received in array initialization.",
            obj.get_type().name()?
        ),
    ))
}

/// Operand of an op: arrays pass through; Python scalars become weakly typed arrays
/// matching `partner` (MLX's promotion with Python scalars).
pub fn operand(obj: &Bound<'_, PyAny>, partner: Option<Dtype>) -> PyResult<Array> {
    if let Some(a) = as_array_opt(obj)? {
        return Ok(a);
    }
    if let Some(s) = numpy_scalar(obj)? {
        // MLX treats NumPy scalars like Python scalars (weakly typed), and wraps
        // out-of-range NumPy integers instead of raising
        let d = match partner {
            Some(p) => promote_weak(p, s.kind()),
            None => default_for(s.kind(), &[s]),
        };
        return ops::scalar(s, d).py();
    }
    if let Some(s) = scalar_of(obj)? {
        let d = match partner {
            Some(p) => promote_weak(p, s.kind()),
            None => default_for(s.kind(), &[s]),
        };
        check_int_fits(s, d)?;
        return ops::scalar(s, d).py();
    }
    to_array(obj, None)
}

/// A Python int combined with an integer array must fit the array's dtype (MLX:
/// "Converting -1 to uint8 would result in overflow.").
pub fn check_int_fits(s: Scalar, d: Dtype) -> PyResult<()> {
    let v: i128 = match s {
        Scalar::Int(i) => i128::from(i),
        Scalar::UInt(u) => i128::from(u),
        _ => return Ok(()),
    };
    let (lo, hi): (i128, i128) = match d {
        Dtype::Uint8 => (0, u8::MAX.into()),
        Dtype::Uint16 => (0, u16::MAX.into()),
        Dtype::Uint32 => (0, u32::MAX.into()),
        // MLX wraps negative Python ints into uint64 (two's complement) without an error
        Dtype::Uint64 => (i64::MIN.into(), u64::MAX.into()),
        Dtype::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Dtype::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Dtype::Int32 => (i32::MIN.into(), i32::MAX.into()),
        Dtype::Int64 => (i64::MIN.into(), i64::MAX.into()),
        _ => return Ok(()),
    };
    if v < lo || v > hi {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "Converting {v} to {} would result in overflow.",
            d.name()
        )));
    }
    Ok(())
}

/// Two operands with weak scalar promotion against each other.
pub fn operands(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<(Array, Array)> {
    let aa = as_array_opt(a)?;
    let ba = as_array_opt(b)?;
    match (aa, ba) {
        (Some(x), Some(y)) => Ok((x, y)),
        (Some(x), None) => {
            let y = operand(b, Some(x.dtype()))?;
            Ok((x, y))
        }
        (None, Some(y)) => {
            let x = operand(a, Some(y.dtype()))?;
            Ok((x, y))
        }
        (None, None) => {
            // both non-arrays: a scalar is weak against a converted sequence
            let sa = scalar_of(a)?;
            let sb = scalar_of(b)?;
            match (sa, sb) {
                (Some(_), None) => {
                    let y = to_array(b, None)?;
                    Ok((operand(a, Some(y.dtype()))?, y))
                }
                (None, Some(_)) => {
                    let x = to_array(a, None)?;
                    let y = operand(b, Some(x.dtype()))?;
                    Ok((x, y))
                }
                _ => Ok((to_array(a, None)?, to_array(b, None)?)),
            }
        }
    }
}

pub fn scalar_to_py(py: Python<'_>, s: Scalar) -> PyObject {
    match s {
        Scalar::Bool(b) => PyBool::new(py, b).to_owned().into_any().unbind(),
        Scalar::Int(i) => i
            .into_pyobject(py)
            .map(|x| x.into_any().unbind())
            .unwrap_or_else(|_| py.None()),
        Scalar::UInt(u) => u
            .into_pyobject(py)
            .map(|x| x.into_any().unbind())
            .unwrap_or_else(|_| py.None()),
        Scalar::Float(f) => PyFloat::new(py, f).into_any().unbind(),
        Scalar::Complex(r, i) => PyComplex::from_doubles(py, r, i).into_any().unbind(),
    }
}

/// Nested Python lists from an array, built iteratively.
pub fn tolist(py: Python<'_>, a: &Array) -> PyResult<PyObject> {
    let vals = array_scalars(a)?;
    let shape = a.shape().to_vec();
    if shape.is_empty() {
        let v = vals
            .first()
            .copied()
            .ok_or_else(|| value_err("tolist", "empty"))?;
        return Ok(scalar_to_py(py, v));
    }
    // Build from the innermost dimension outwards.
    let mut level: Vec<PyObject> = vals.into_iter().map(|v| scalar_to_py(py, v)).collect();
    for d in (0..shape.len()).rev() {
        let n = shape[d];
        let count = level.len().checked_div(n).unwrap_or(0);
        let groups = if d == 0 {
            1
        } else {
            oxmx::shape::size_of(&shape[..d])
        };
        let mut next = Vec::with_capacity(groups);
        if n == 0 {
            for _ in 0..groups {
                next.push(PyList::empty(py).into_any().unbind());
            }
        } else {
            let mut it = level.into_iter();
            for _ in 0..count {
                let items: Vec<PyObject> = it.by_ref().take(n).collect();
                next.push(PyList::new(py, items)?.into_any().unbind());
            }
        }
        level = next;
    }
    level
        .into_iter()
        .next()
        .ok_or_else(|| value_err("tolist", "empty"))
}

/// A shape argument: int or sequence of ints.
pub fn shape_arg(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if obj.is_instance_of::<PyBool>() {
        return Err(type_err(op, "Shape must be an int or a sequence of ints."));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(vec![i]),
            Err(_) => Err(value_err(op, "Dimension is too large (integer overflow).")),
        };
    }
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(vec![i]);
    }
    if is_seq(obj) {
        let mut out = Vec::new();
        for it in seq_items(obj)? {
            if it.is_instance_of::<PyBool>() || it.is_instance_of::<PyFloat>() {
                return Err(type_err(op, "Shape entries must be integers."));
            }
            if it.is_instance_of::<PyInt>() {
                out.push(
                    it.extract::<i64>()
                        .map_err(|_| value_err(op, "Dimension is too large (integer overflow)."))?,
                );
                continue;
            }
            out.push(
                it.extract::<i64>()
                    .map_err(|_| type_err(op, "Shape entries must be integers."))?,
            );
        }
        return Ok(out);
    }
    Err(type_err(op, "Shape must be an int or a sequence of ints."))
}

pub fn shape_arg_usize(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Shape> {
    let s = shape_arg(op, obj)?;
    oxmx::shape::shape_from_i64(op, &s).py()
}

/// Axis argument: None, int, or sequence of ints.
pub fn axes_arg(op: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<i64>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => Ok(Some(shape_arg(op, o).map_err(|_| {
            type_err(op, "axis must be an int or a sequence of ints.")
        })?)),
    }
}

pub fn wrap(a: Array) -> PyArray {
    PyArray { inner: a }
}
