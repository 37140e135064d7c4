//! The `array` Python class: properties, methods and operators.

use crate::convert::{self, operands, tolist, wrap};
use crate::device_py::on_stream;
use crate::dtype_py::{dtype_of, PyDtype};
use crate::errors::{type_err, value_err, IntoPyResult};
use oxmx::{ops, Array, Dtype, Scalar};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

#[pyclass(name = "array", module = "oxmx.core", weakref, subclass)]
pub struct PyArray {
    pub inner: Array,
}

type BinFn = fn(&Array, &Array) -> oxmx::Result<Array>;

fn bin(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, f: BinFn) -> PyResult<PyArray> {
    let (x, y) = operands(a, b)?;
    f(&x, &y).py().map(wrap)
}

/// Reflected/forward binary operator; returns NotImplemented for foreign types.
fn op(py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, f: BinFn) -> PyResult<PyObject> {
    if convert::as_array_opt(b)?.is_none() && convert::scalar_of(b)?.is_none() && !is_array_like(b)
    {
        return Ok(py.NotImplemented());
    }
    Ok(bin(a, b, f)?.into_pyobject(py)?.into_any().unbind())
}

fn is_array_like(o: &Bound<'_, PyAny>) -> bool {
    o.is_instance_of::<pyo3::types::PyList>()
        || o.is_instance_of::<pyo3::types::PyTuple>()
        || o.hasattr("__array_interface__").unwrap_or(false)
}

fn eval_item(a: &Array) -> PyResult<Scalar> {
    if a.size() != 1 {
        return Err(value_err(
            "item",
            "Can only convert an array with one element to a Python scalar.",
        ));
    }
    let v = convert::array_scalars(a)?;
    v.first().copied().ok_or_else(|| value_err("item", "empty"))
}

#[pymethods]
impl PyArray {
    #[new]
    #[pyo3(signature = (val, dtype=None))]
    fn new(val: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let d = crate::dtype_py::dtype_arg(dtype)?;
        Ok(wrap(convert::to_array(val, d)?))
    }

    // ---- properties ----
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.shape())
    }
    #[getter]
    fn dtype(&self, py: Python<'_>) -> PyResult<Py<PyDtype>> {
        crate::dtype_py::interned(py, self.inner.dtype())
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.ndim()
    }
    #[getter]
    fn size(&self) -> usize {
        self.inner.size()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.dtype().size()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }
    #[getter(T)]
    fn t(&self) -> PyResult<PyArray> {
        ops::transpose(&self.inner, None).py().map(wrap)
    }
    #[getter(mT)]
    fn mt(&self) -> PyResult<PyArray> {
        if self.inner.ndim() < 2 {
            return Err(value_err("mT", "Array must have at least 2 dimensions."));
        }
        ops::swapaxes(&self.inner, -1, -2).py().map(wrap)
    }
    #[getter]
    fn real(&self) -> PyResult<PyArray> {
        ops::real(&self.inner).py().map(wrap)
    }
    #[getter]
    fn imag(&self) -> PyResult<PyArray> {
        ops::imag(&self.inner).py().map(wrap)
    }
    #[getter]
    fn at(slf: Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        let cls = py.import("oxmx.core._indexing")?.getattr("_AtIndexer")?;
        Ok(cls.call1((slf,))?.unbind())
    }

    // ---- conversion ----
    fn item(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(convert::scalar_to_py(py, eval_item(&self.inner)?))
    }
    fn tolist(&self, py: Python<'_>) -> PyResult<PyObject> {
        tolist(py, &self.inner)
    }
    /// NumPy's array protocol (NumPy 2 adds `copy`): `copy=True` (or None) gives a fresh,
    /// writeable array; `copy=False` a zero-copy, read-only view, or ValueError when the
    /// requested dtype needs a conversion.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__(
        slf: &Bound<'_, Self>,
        dtype: Option<&Bound<'_, PyAny>>,
        copy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let py = slf.py();
        let a = slf.borrow().inner.clone();
        let np = py.import("numpy")?;
        let np_dtype = match a.dtype() {
            Dtype::Bfloat16 => return Err(pyo3::exceptions::PyTypeError::new_err(
                "[__array__] bfloat16 arrays cannot be converted to NumPy; cast to float32 first.",
            )),
            d => d.name(),
        };
        let never_copy = match copy {
            Some(c) if !c.is_none() => !c.is_truthy()?,
            _ => false,
        };
        if never_copy {
            let wanted = match dtype {
                Some(d) if !d.is_none() => Some(np.getattr("dtype")?.call1((d,))?),
                _ => None,
            };
            if let Some(w) = wanted {
                if !w.eq(np.getattr("dtype")?.call1((np_dtype,))?)? {
                    return Err(value_err(
                        "__array__",
                        "Unable to avoid copy while creating an array as requested (the dtype differs).",
                    ));
                }
            }
            let mv = pyo3::types::PyMemoryView::from(slf.as_any())?;
            return Ok(np.call_method1("asarray", (mv,))?.unbind());
        }
        let a = &a;
        let bytes = convert::host_bytes(a)?;
        let buf = pyo3::types::PyByteArray::new(py, &bytes);
        let shape = PyTuple::new(py, a.shape())?;
        let arr = np
            .call_method1("frombuffer", (buf, np_dtype))?
            .call_method1("reshape", (shape,))?;
        let arr = match dtype {
            Some(d) if !d.is_none() => arr.call_method1("astype", (d,))?,
            _ => arr,
        };
        Ok(arr.unbind())
    }
    /// Read-only, zero-copy buffer protocol.
    // SAFETY: CPython passes a valid `Py_buffer`; see `buffer::get_buffer`.
    #[allow(unsafe_code)]
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        // SAFETY: forwarded unchanged from CPython.
        unsafe { crate::buffer::get_buffer(&slf, view, flags) }
    }
    #[allow(unsafe_code)]
    unsafe fn __releasebuffer__(&self, view: *mut pyo3::ffi::Py_buffer) {
        // SAFETY: `view` was filled by `__getbuffer__`.
        unsafe { crate::buffer::release_buffer(view) }
    }
    /// DLPack export through NumPy over the zero-copy buffer.
    #[pyo3(signature = (*args, **kwargs))]
    fn __dlpack__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<PyObject> {
        let py = slf.py();
        let np = py.import("numpy")?;
        let mv = pyo3::types::PyMemoryView::from(slf.as_any())?;
        let arr = np.call_method1("asarray", (mv,))?;
        Ok(arr.call_method("__dlpack__", args, kwargs)?.unbind())
    }
    fn __dlpack_device__(&self) -> (i32, i32) {
        (1, 0)
    }
    #[pyo3(signature = (*, api_version=None))]
    fn __array_namespace__(
        &self,
        py: Python<'_>,
        api_version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        let _ = api_version;
        Ok(py.import("oxmx.core")?.into_any().unbind())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        py.import("oxmx.core._printing")?
            .getattr("array_repr")?
            .call1((slf,))?
            .extract()
    }
    fn __str__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        py.import("oxmx.core._printing")?
            .getattr("array_str")?
            .call1((slf,))?
            .extract()
    }

    fn __len__(&self) -> PyResult<usize> {
        match self.inner.shape().first() {
            Some(&n) => Ok(n),
            None => Err(type_err("len", "len() of unsized object")),
        }
    }
    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        let a = slf.borrow().inner.clone();
        if a.ndim() == 0 {
            return Err(type_err("iter", "iteration over a 0-d array"));
        }
        let parts = ops::unstack(&a, 0).py()?;
        let items: Vec<PyArray> = parts.into_iter().map(wrap).collect();
        let list = pyo3::types::PyList::new(py, items)?;
        Ok(list.call_method0("__iter__")?.unbind())
    }
    fn __bool__(&self) -> PyResult<bool> {
        if self.inner.size() != 1 {
            return Err(value_err(
                "bool",
                "The truth value of an array with more than one element is ambiguous.",
            ));
        }
        Ok(match eval_item(&self.inner)? {
            Scalar::Bool(b) => b,
            Scalar::Int(i) => i != 0,
            Scalar::UInt(u) => u != 0,
            Scalar::Float(f) => f != 0.0,
            Scalar::Complex(r, i) => r != 0.0 || i != 0.0,
        })
    }
    /// Python's `int()` of the element: exact for big floats and uint64; an infinity is an
    /// OverflowError and NaN a ValueError, as Python and MLX raise.
    fn __int__(&self, py: Python<'_>) -> PyResult<PyObject> {
        let item = eval_item(&self.inner)?;
        match item {
            Scalar::Complex(..) => {
                return Err(type_err("int", "Cannot convert a complex array to int."))
            }
            Scalar::Float(f) if f.is_nan() => {
                return Err(value_err("int", "Cannot convert float NaN to integer."))
            }
            Scalar::Float(f) if f.is_infinite() => {
                return Err(pyo3::exceptions::PyOverflowError::new_err(
                    "[int] Cannot convert float infinity to integer.",
                ))
            }
            _ => {}
        }
        let value = convert::scalar_to_py(py, item);
        Ok(py
            .get_type::<pyo3::types::PyInt>()
            .call1((value,))?
            .unbind())
    }
    fn __index__(&self, py: Python<'_>) -> PyResult<PyObject> {
        // MLX: only 0-d integer (not bool) arrays are indices
        if self.inner.ndim() != 0 || !self.inner.dtype().is_integer() {
            return Err(type_err(
                "index",
                "Only 0-dimensional integer arrays can be converted to an index.",
            ));
        }
        self.__int__(py)
    }
    fn __float__(&self) -> PyResult<f64> {
        Ok(match eval_item(&self.inner)? {
            Scalar::Complex(..) => {
                return Err(type_err(
                    "float",
                    "Cannot convert a complex array to float.",
                ))
            }
            s => s.as_f64(),
        })
    }
    fn __complex__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyComplex>> {
        let (r, i) = match eval_item(&self.inner)? {
            Scalar::Complex(r, i) => (r, i),
            s => (s.as_f64(), 0.0),
        };
        Ok(pyo3::types::PyComplex::from_doubles(py, r, i))
    }
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    // ---- pickling and copies ----
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(PyObject, PyObject)> {
        let f = py.import("oxmx.core")?.getattr("_array_from_state")?;
        let bytes = pyo3::types::PyBytes::new(py, &convert::host_bytes(&self.inner)?);
        let shape = PyTuple::new(py, self.inner.shape())?;
        let args = PyTuple::new(
            py,
            [
                bytes.into_any(),
                shape.into_any(),
                self.inner.dtype().name().into_pyobject(py)?.into_any(),
            ],
        )?;
        Ok((f.unbind(), args.into_any().unbind()))
    }
    fn __copy__(&self) -> PyArray {
        wrap(self.inner.clone())
    }
    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        ops::contiguous(&self.inner).py().map(wrap)
    }

    // ---- operators ----
    fn __add__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::add)
    }
    fn __radd__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::add)
    }
    fn __sub__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::subtract)
    }
    fn __rsub__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::subtract)
    }
    fn __mul__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::multiply)
    }
    fn __rmul__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::multiply)
    }
    fn __truediv__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::divide)
    }
    fn __rtruediv__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::divide)
    }
    fn __floordiv__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::floor_divide)
    }
    fn __rfloordiv__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::floor_divide)
    }
    fn __mod__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::remainder)
    }
    fn __rmod__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::remainder)
    }
    fn __divmod__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<(PyArray, PyArray)> {
        Ok((
            bin(slf.as_any(), o, ops::floor_divide)?,
            bin(slf.as_any(), o, ops::remainder)?,
        ))
    }
    fn __pow__(
        slf: &Bound<'_, Self>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::power)
    }
    fn __rpow__(
        slf: &Bound<'_, Self>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::power)
    }
    fn __matmul__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::matmul)
    }
    fn __rmatmul__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        bin(o, slf.as_any(), ops::matmul)
    }
    fn __and__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        no_float_operands(slf.as_any(), o, "bitwise and")?;
        op(slf.py(), slf.as_any(), o, ops::bitwise_and)
    }
    fn __rand__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        no_float_operands(slf.as_any(), o, "bitwise and")?;
        bin(o, slf.as_any(), ops::bitwise_and)
    }
    fn __or__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        no_float_operands(slf.as_any(), o, "bitwise or")?;
        op(slf.py(), slf.as_any(), o, ops::bitwise_or)
    }
    fn __ror__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        no_float_operands(slf.as_any(), o, "bitwise or")?;
        bin(o, slf.as_any(), ops::bitwise_or)
    }
    fn __xor__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        no_float_operands(slf.as_any(), o, "bitwise xor")?;
        op(slf.py(), slf.as_any(), o, ops::bitwise_xor)
    }
    fn __rxor__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        no_float_operands(slf.as_any(), o, "bitwise xor")?;
        bin(o, slf.as_any(), ops::bitwise_xor)
    }
    fn __lshift__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        no_float_operands(slf.as_any(), o, "left shift")?;
        op(slf.py(), slf.as_any(), o, ops::left_shift)
    }
    fn __rlshift__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        no_float_operands(slf.as_any(), o, "left shift")?;
        bin(o, slf.as_any(), ops::left_shift)
    }
    fn __rshift__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        no_float_operands(slf.as_any(), o, "right shift")?;
        op(slf.py(), slf.as_any(), o, ops::right_shift)
    }
    fn __rrshift__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        no_float_operands(slf.as_any(), o, "right shift")?;
        bin(o, slf.as_any(), ops::right_shift)
    }
    fn __iadd__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::add)?;
        slf.inner = r;
        Ok(())
    }
    fn __isub__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::subtract)?;
        slf.inner = r;
        Ok(())
    }
    fn __imul__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::multiply)?;
        slf.inner = r;
        Ok(())
    }
    fn __itruediv__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::divide)?;
        slf.inner = r;
        Ok(())
    }
    fn __ifloordiv__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::floor_divide)?;
        slf.inner = r;
        Ok(())
    }
    fn __imod__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::remainder)?;
        slf.inner = r;
        Ok(())
    }
    fn __ipow__(
        mut slf: PyRefMut<'_, Self>,
        o: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::power)?;
        slf.inner = r;
        Ok(())
    }
    fn __imatmul__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::matmul)?;
        slf.inner = r;
        Ok(())
    }
    fn __iand__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::bitwise_and)?;
        slf.inner = r;
        Ok(())
    }
    fn __ior__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::bitwise_or)?;
        slf.inner = r;
        Ok(())
    }
    fn __ixor__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::bitwise_xor)?;
        slf.inner = r;
        Ok(())
    }
    fn __ilshift__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::left_shift)?;
        slf.inner = r;
        Ok(())
    }
    fn __irshift__(mut slf: PyRefMut<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = bin_self(&slf.inner, o, ops::right_shift)?;
        slf.inner = r;
        Ok(())
    }
    fn __eq__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::equal)
    }
    fn __ne__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::not_equal)
    }
    fn __lt__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::less)
    }
    fn __le__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::less_equal)
    }
    fn __gt__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::greater)
    }
    fn __ge__(slf: &Bound<'_, Self>, o: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        op(slf.py(), slf.as_any(), o, ops::greater_equal)
    }
    fn __neg__(&self) -> PyResult<PyArray> {
        ops::negative(&self.inner).py().map(wrap)
    }
    fn __pos__(&self) -> PyArray {
        wrap(self.inner.clone())
    }
    fn __abs__(&self) -> PyResult<PyArray> {
        ops::abs(&self.inner).py().map(wrap)
    }
    fn __invert__(&self) -> PyResult<PyArray> {
        if self.inner.dtype().is_float() || self.inner.dtype().is_complex() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "Floating point types not allowed with bitwise inversion.",
            ));
        }
        if self.inner.dtype() == Dtype::Bool {
            return ops::logical_not(&self.inner).py().map(wrap);
        }
        ops::bitwise_invert(&self.inner).py().map(wrap)
    }

    fn __getitem__(&self, idx: &Bound<'_, PyAny>) -> PyResult<PyArray> {
        crate::indexing::getitem(&self.inner, idx).map(wrap)
    }
    fn __setitem__(&mut self, idx: &Bound<'_, PyAny>, val: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = convert::operand(val, Some(self.inner.dtype()))?;
        self.inner =
            crate::indexing::setitem(&self.inner, idx, &v, oxmx::primitive::ScatterMode::Set)?;
        Ok(())
    }

    // ---- methods (keyword forms mirror the module functions) ----
    #[pyo3(signature = (dtype, stream=None))]
    fn astype(
        &self,
        dtype: &Bound<'_, PyAny>,
        stream: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArray> {
        let d = dtype_of(dtype)?;
        on_stream(stream, || ops::astype(&self.inner, d)).map(wrap)
    }
    #[pyo3(signature = (*shape, stream=None))]
    fn reshape(
        &self,
        shape: &Bound<'_, PyTuple>,
        stream: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArray> {
        let s = shape_from_varargs("reshape", shape)?;
        on_stream(stream, || ops::reshape(&self.inner, &s)).map(wrap)
    }
    #[pyo3(signature = (*axes, stream=None))]
    fn transpose(
        &self,
        axes: &Bound<'_, PyTuple>,
        stream: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArray> {
        let ax = if axes.is_empty() {
            None
        } else {
            Some(shape_from_varargs("transpose", axes)?)
        };
        on_stream(stream, || ops::transpose(&self.inner, ax.as_deref())).map(wrap)
    }
    #[pyo3(signature = (dtype, stream=None))]
    fn view(
        &self,
        dtype: &Bound<'_, PyAny>,
        stream: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArray> {
        let d = dtype_of(dtype)?;
        on_stream(stream, || ops::view_dtype(&self.inner, d)).map(wrap)
    }
    fn __getattr__(slf: &Bound<'_, Self>, name: &str) -> PyResult<PyObject> {
        // Methods that mirror module functions (`x.sum(axis=0)` → `mx.sum(x, axis=0)`).
        let py = slf.py();
        let methods = py.import("oxmx.core._methods")?;
        match methods.getattr(name) {
            Ok(f) => {
                let functools = py.import("functools")?;
                Ok(functools.getattr("partial")?.call1((f, slf))?.unbind())
            }
            Err(_) => Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                "'array' object has no attribute '{name}'"
            ))),
        }
    }
}

fn bin_self(a: &Array, o: &Bound<'_, PyAny>, f: BinFn) -> PyResult<Array> {
    let b = convert::operand(o, Some(a.dtype()))?;
    f(a, &b).py()
}

/// `x.reshape(2, 3)` and `x.reshape((2, 3))` both work.
fn shape_from_varargs(op: &str, args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        let first = args.get_item(0)?;
        return convert::shape_arg(op, &first);
    }
    convert::shape_arg(op, args.as_any())
}

/// The bitwise operators check their operands before promotion, as MLX's do: a float
/// array or a Python float on either side is a ValueError (the functions raise later,
/// on the promoted type).
fn no_float_operands(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, what: &str) -> PyResult<()> {
    for x in [a, b] {
        let inexact = match crate::convert::as_array_opt(x)? {
            Some(arr) => arr.dtype().is_float() || arr.dtype().is_complex(),
            None => {
                x.is_instance_of::<pyo3::types::PyFloat>()
                    || x.is_instance_of::<pyo3::types::PyComplex>()
            }
        };
        if inexact {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "Floating point types not allowed with {what}."
            )));
        }
    }
    Ok(())
}
