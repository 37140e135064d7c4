//! `Dtype` and `DtypeCategory` Python classes and dtype utilities.

use crate::errors::type_err;
use oxmx::dtype::{can_cast_safe, promote, DtypeCategory, ALL_DTYPES};
use oxmx::Dtype;
use pyo3::prelude::*;

#[pyclass(name = "Dtype", module = "oxmx.core", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDtype(pub Dtype);

#[pymethods]
impl PyDtype {
    #[getter]
    fn size(&self) -> usize {
        self.0.size()
    }
    fn __repr__(&self) -> String {
        format!("oxmx.core.{}", self.0.name())
    }
    fn __str__(&self) -> String {
        self.__repr__()
    }
    /// Name as used by NumPy.
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(PyObject, (String,))> {
        let f = py.import("oxmx.core")?.getattr("_dtype_from_name")?;
        Ok((f.unbind(), (self.0.name().to_string(),)))
    }
}

#[pyclass(name = "DtypeCategory", module = "oxmx.core", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDtypeCategory(pub DtypeCategory);

#[pymethods]
impl PyDtypeCategory {
    fn __repr__(&self) -> String {
        format!("DtypeCategory.{}", self.0.name())
    }
    #[getter]
    fn name(&self) -> &'static str {
        self.0.name()
    }
}

/// One Python object per dtype, shared by the module's names (`float32` …) and every
/// array's `.dtype`: reading `.dtype` allocates nothing, and `a.dtype is mx.float32`
/// holds, as in MLX.
static INTERNED: pyo3::sync::GILOnceCell<Vec<Py<PyDtype>>> = pyo3::sync::GILOnceCell::new();

/// The shared Python object of `d`.
pub fn interned(py: Python<'_>, d: Dtype) -> PyResult<Py<PyDtype>> {
    let all = INTERNED.get_or_try_init(py, || {
        ALL_DTYPES
            .iter()
            .map(|&d| Py::new(py, PyDtype(d)))
            .collect::<PyResult<Vec<_>>>()
    })?;
    match ALL_DTYPES
        .iter()
        .position(|&x| x == d)
        .and_then(|i| all.get(i))
    {
        Some(o) => Ok(o.clone_ref(py)),
        None => Py::new(py, PyDtype(d)),
    }
}

/// A dtype given as `Dtype`, or None.
pub fn dtype_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Dtype>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => Ok(Some(dtype_of(o)?)),
    }
}

pub fn dtype_of(o: &Bound<'_, PyAny>) -> PyResult<Dtype> {
    if let Ok(d) = o.extract::<PyDtype>() {
        return Ok(d.0);
    }
    // Python builtins as NumPy does: float → float32 (MLX default), int → int32, bool.
    let py = o.py();
    if o.is(py.get_type::<pyo3::types::PyFloat>()) {
        return Ok(Dtype::Float32);
    }
    if o.is(py.get_type::<pyo3::types::PyInt>()) {
        return Ok(Dtype::Int32);
    }
    if o.is(py.get_type::<pyo3::types::PyBool>()) {
        return Ok(Dtype::Bool);
    }
    if o.is(py.get_type::<pyo3::types::PyComplex>()) {
        return Ok(Dtype::Complex64);
    }
    if let Ok(s) = o.extract::<String>() {
        if let Some(d) = Dtype::from_name(&s) {
            return Ok(d);
        }
    }
    // NumPy dtypes / scalar types
    if let Ok(name) = o.getattr("__name__").and_then(|n| n.extract::<String>()) {
        if let Some(d) = Dtype::from_name(&name) {
            return Ok(d);
        }
    }
    if let Ok(name) = o.getattr("name").and_then(|n| n.extract::<String>()) {
        if let Some(d) = Dtype::from_name(&name) {
            return Ok(d);
        }
    }
    Err(type_err(
        "dtype",
        format!(
            "Cannot interpret {} as a dtype.",
            o.repr().map(|r| r.to_string()).unwrap_or_default()
        ),
    ))
}

enum DtypeOrCat {
    D(Dtype),
    C(DtypeCategory),
}

fn dtype_or_cat(o: &Bound<'_, PyAny>) -> PyResult<DtypeOrCat> {
    if let Ok(c) = o.extract::<PyDtypeCategory>() {
        return Ok(DtypeOrCat::C(c.0));
    }
    Ok(DtypeOrCat::D(dtype_of(o)?))
}

#[pyfunction]
pub fn issubdtype(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(match (dtype_or_cat(a)?, dtype_or_cat(b)?) {
        (DtypeOrCat::D(x), DtypeOrCat::D(y)) => x == y,
        (DtypeOrCat::D(x), DtypeOrCat::C(c)) => x.is_in(c),
        (DtypeOrCat::C(_), DtypeOrCat::D(_)) => false,
        (DtypeOrCat::C(x), DtypeOrCat::C(y)) => x.is_sub(y),
    })
}

#[pyfunction]
pub fn can_cast(from_: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>) -> PyResult<bool> {
    let f = match crate::convert::as_array_opt(from_)? {
        Some(a) => a.dtype(),
        None => dtype_of(from_)?,
    };
    // MLX: a cast is allowed when promoting `from` with `to` gives `to`
    let t = dtype_of(to)?;
    Ok(can_cast_safe(f, t) || oxmx::dtype::promote(f, t) == t)
}

/// `isdtype(dtype, kind)`: kind is a dtype, a category, a string kind name (Array API)
/// or a tuple of those.
#[pyfunction]
pub fn isdtype(dtype: &Bound<'_, PyAny>, kind: &Bound<'_, PyAny>) -> PyResult<bool> {
    let d = dtype_of(dtype)?;
    if let Ok(t) = kind.downcast::<pyo3::types::PyTuple>() {
        for k in t.iter() {
            if isdtype(dtype, &k)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Ok(s) = kind.extract::<String>() {
        return Ok(match s.as_str() {
            "bool" => d == Dtype::Bool,
            "signed integer" => d.is_signed_int(),
            "unsigned integer" => d.is_unsigned(),
            "integral" => d.is_integer(),
            "real floating" => d.is_float(),
            "complex floating" => d.is_complex(),
            "numeric" => d != Dtype::Bool,
            _ => {
                if let Some(x) = Dtype::from_name(&s) {
                    x == d
                } else {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "[isdtype] Unknown kind '{s}'."
                    )));
                }
            }
        });
    }
    issubdtype(dtype, kind)
}

/// Register dtype objects and categories on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDtype>()?;
    m.add_class::<PyDtypeCategory>()?;
    let py = m.py();
    for d in ALL_DTYPES {
        m.add(d.name(), interned(py, d)?)?;
    }
    m.add("bool_", interned(py, Dtype::Bool)?)?;
    use DtypeCategory::*;
    for c in [
        Generic,
        Number,
        Integer,
        SignedInteger,
        UnsignedInteger,
        Inexact,
        Floating,
        ComplexFloating,
    ] {
        m.add(c.name(), PyDtypeCategory(c))?;
    }
    m.add_function(wrap_pyfunction!(issubdtype, m)?)?;
    m.add_function(wrap_pyfunction!(can_cast, m)?)?;
    m.add_function(wrap_pyfunction!(isdtype, m)?)?;
    let _ = promote;
    Ok(())
}
