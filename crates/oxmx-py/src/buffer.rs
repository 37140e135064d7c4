//! The buffer protocol (read-only, zero-copy): `memoryview(x)`, `np.asarray(x)` via
//! `np.frombuffer`, and through those DLPack export. This is the binding crate's only
//! unsafe code: it fills a `Py_buffer` for CPython.
#![allow(unsafe_code)]

use crate::pyarray::PyArray;
use oxmx::memory::Buffer;
use oxmx::{ops, Dtype};
use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::{c_int, CStr};
use std::sync::Arc;

/// What a `Py_buffer` points into; freed by `release`.
struct Export {
    _buffer: Arc<Buffer>,
    shape: Vec<ffi::Py_ssize_t>,
    strides: Vec<ffi::Py_ssize_t>,
    format: &'static CStr,
}

fn format_of(d: Dtype) -> Option<&'static CStr> {
    Some(match d {
        Dtype::Bool => c"?",
        Dtype::Uint8 => c"B",
        Dtype::Uint16 => c"H",
        Dtype::Uint32 => c"I",
        Dtype::Uint64 => c"Q",
        Dtype::Int8 => c"b",
        Dtype::Int16 => c"h",
        Dtype::Int32 => c"i",
        Dtype::Int64 => c"q",
        Dtype::Float16 => c"e",
        Dtype::Float32 => c"f",
        Dtype::Float64 => c"d",
        Dtype::Complex64 => c"Zf",
        Dtype::Bfloat16 => return None,
    })
}

/// Fill `view` for `slf`.
///
/// # Safety
/// `view` must be a valid, writable `Py_buffer` pointer provided by CPython.
pub unsafe fn get_buffer(
    slf: &Bound<'_, PyArray>,
    view: *mut ffi::Py_buffer,
    flags: c_int,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err("[buffer] View is null."));
    }
    if (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
        return Err(PyBufferError::new_err(
            "[buffer] oxmx arrays are immutable; the buffer is read-only.",
        ));
    }
    let a = slf.borrow().inner.clone();
    let fmt = format_of(a.dtype()).ok_or_else(|| {
        PyTypeError::new_err("[buffer] bfloat16 has no buffer format; cast first.")
    })?;
    let item = a.dtype().size();
    let contiguous = slf.py().allow_threads(|| {
        let c = if a.ready_data().is_some_and(|d| d.is_contiguous(a.shape())) {
            a.clone()
        } else {
            ops::contiguous(&a)?
        };
        c.data()
    });
    let data = contiguous.map_err(crate::errors::to_py)?;
    let nbytes = a.nbytes();
    // an empty view may carry an offset past its (possibly empty) buffer: export from 0
    let start = if nbytes == 0 {
        0
    } else {
        data.offset
            .checked_mul(item)
            .ok_or_else(|| PyBufferError::new_err("[buffer] offset overflow"))?
    };
    if start
        .checked_add(nbytes)
        .is_none_or(|end| end > data.buffer.nbytes())
    {
        return Err(PyBufferError::new_err("[buffer] Buffer too small."));
    }
    let shape: Vec<ffi::Py_ssize_t> = a.shape().iter().map(|&d| d as ffi::Py_ssize_t).collect();
    let strides: Vec<ffi::Py_ssize_t> = oxmx::shape::contiguous_strides(a.shape())
        .iter()
        .map(|&s| (s * item as isize) as ffi::Py_ssize_t)
        .collect();
    let base_ptr = data.buffer.bytes().as_ptr();
    let mut export = Box::new(Export {
        _buffer: data.buffer.clone(),
        shape,
        strides,
        format: fmt,
    });
    // SAFETY: `view` is non-null and owned by the caller for this call. Every pointer we
    // store points into `export` (leaked into `internal` below and freed in
    // `release_buffer`) or into the buffer kept alive by `export._buffer`; `start +
    // nbytes` was checked to lie inside that buffer.
    unsafe {
        (*view).buf = base_ptr.add(start) as *mut std::ffi::c_void;
        (*view).obj = slf.clone().into_any().into_ptr();
        (*view).len = nbytes as ffi::Py_ssize_t;
        (*view).readonly = 1;
        (*view).itemsize = item as ffi::Py_ssize_t;
        (*view).format = if (flags & ffi::PyBUF_FORMAT) == ffi::PyBUF_FORMAT {
            export.format.as_ptr() as *mut _
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = export.shape.len() as c_int;
        (*view).shape = if (flags & ffi::PyBUF_ND) == ffi::PyBUF_ND {
            export.shape.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if (flags & ffi::PyBUF_STRIDES) == ffi::PyBUF_STRIDES {
            export.strides.as_mut_ptr()
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = Box::into_raw(export) as *mut std::ffi::c_void;
    }
    Ok(())
}

/// Free what `get_buffer` stored.
///
/// # Safety
/// `view` must be a view previously filled by `get_buffer`.
pub unsafe fn release_buffer(view: *mut ffi::Py_buffer) {
    if view.is_null() {
        return;
    }
    // SAFETY: `internal` was produced by `Box::into_raw` in `get_buffer` and is released
    // exactly once here (CPython calls releasebuffer once per successful getbuffer).
    unsafe {
        let p = (*view).internal as *mut Export;
        if !p.is_null() {
            drop(Box::from_raw(p));
            (*view).internal = std::ptr::null_mut();
        }
    }
}
