//! `mx.load` / `mx.save*` natives and the `oxmx.security` natives, over `oxmx-io`.
//!
//! The Python layer (`python/oxmx/core/_io.py`) resolves MLX's arguments (format from the
//! extension, file objects, `*args`/`**kwargs` names); this module opens files, verifies
//! signatures, parses with `oxmx-io` and reads tensor data straight into oxmx's pool
//! buffers with the GIL released (one copy, from the file into the array). Malformed files
//! raise `FormatError` naming the file; signature failures `IntegrityError`.

use crate::convert::wrap;
use crate::errors;
use crate::pyarray::PyArray;
use oxmx::{ops, Array, ArrayData, Dtype};
use oxmx_io::{
    gguf, gguf_dequant, npy, npz, safetensors, sign, DType, FileSource, RangeSource, SliceSource,
    Source,
};
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::path::{Path, PathBuf};

/// An error on the way, turned into a Python exception under the GIL.
pub(crate) enum E {
    Io(oxmx_io::Error),
    Core(oxmx::Error),
}

impl From<oxmx_io::Error> for E {
    fn from(e: oxmx_io::Error) -> E {
        E::Io(e)
    }
}
impl From<oxmx::Error> for E {
    fn from(e: oxmx::Error) -> E {
        E::Core(e)
    }
}

pub(crate) type R<T> = std::result::Result<T, E>;

fn fmt(msg: impl Into<String>) -> E {
    E::Io(oxmx_io::Error::Format(msg.into()))
}

fn py_class_err(py: Python<'_>, name: &str, msg: String) -> PyErr {
    match py.import("oxmx._errors").and_then(|m| m.getattr(name)) {
        Ok(c) => match c.call1((msg.clone(),)) {
            Ok(v) => PyErr::from_value(v),
            Err(e) => e,
        },
        Err(_) => PyValueError::new_err(msg),
    }
}

pub(crate) fn to_py(py: Python<'_>, op: &str, file: &str, e: E) -> PyErr {
    match e {
        E::Core(e) => errors::to_py(e),
        E::Io(oxmx_io::Error::Format(m)) => {
            py_class_err(py, "FormatError", format!("[{op}] {file}: {m}"))
        }
        E::Io(oxmx_io::Error::Integrity(m)) => {
            py_class_err(py, "IntegrityError", format!("[{op}] {file}: {m}"))
        }
        E::Io(oxmx_io::Error::Invalid(m)) => PyValueError::new_err(format!("[{op}] {m}")),
        E::Io(oxmx_io::Error::Io(e)) => {
            let msg = format!("[{op}] {file}: {e}");
            match e.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                std::io::ErrorKind::IsADirectory => PyIsADirectoryError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        }
    }
}

pub(crate) fn to_oxmx_dtype(d: DType) -> Dtype {
    match d {
        DType::Bool => Dtype::Bool,
        DType::U8 => Dtype::Uint8,
        DType::U16 => Dtype::Uint16,
        DType::U32 => Dtype::Uint32,
        DType::U64 => Dtype::Uint64,
        DType::I8 => Dtype::Int8,
        DType::I16 => Dtype::Int16,
        DType::I32 => Dtype::Int32,
        DType::I64 => Dtype::Int64,
        DType::F16 => Dtype::Float16,
        DType::BF16 => Dtype::Bfloat16,
        DType::F32 => Dtype::Float32,
        DType::F64 => Dtype::Float64,
        DType::C64 => Dtype::Complex64,
    }
}

pub(crate) fn to_io_dtype(d: Dtype) -> DType {
    match d {
        Dtype::Bool => DType::Bool,
        Dtype::Uint8 => DType::U8,
        Dtype::Uint16 => DType::U16,
        Dtype::Uint32 => DType::U32,
        Dtype::Uint64 => DType::U64,
        Dtype::Int8 => DType::I8,
        Dtype::Int16 => DType::I16,
        Dtype::Int32 => DType::I32,
        Dtype::Int64 => DType::I64,
        Dtype::Float16 => DType::F16,
        Dtype::Bfloat16 => DType::BF16,
        Dtype::Float32 => DType::F32,
        Dtype::Float64 => DType::F64,
        Dtype::Complex64 => DType::C64,
    }
}

/// A new evaluated array whose bytes `fill` writes (straight into the pool buffer).
pub(crate) fn new_array(
    shape: Vec<usize>,
    dtype: DType,
    fill: impl FnOnce(&mut [u8]) -> R<()>,
) -> R<Array> {
    let n = oxmx::shape::checked_size("load", &shape)?;
    let nbytes = n
        .checked_mul(dtype.size())
        .ok_or_else(|| oxmx::Error::overflow("load"))?;
    let mut buf = oxmx::memory::alloc("load", nbytes)?;
    let bytes = buf.bytes_mut();
    if bytes.len() != nbytes {
        return Err(E::Core(oxmx::Error::runtime(
            "load",
            "buffer size mismatch",
        )));
    }
    fill(bytes)?;
    // bool arrays must hold 0/1 only (NumPy and safetensors may store any non-zero byte)
    if dtype == DType::Bool {
        for b in bytes.iter_mut() {
            *b = u8::from(*b != 0);
        }
    }
    let data = ArrayData::contiguous(buf, &shape);
    Ok(Array::from_data(shape, to_oxmx_dtype(dtype), data))
}

/// Values of GGUF metadata, before conversion to Python objects.
enum MetaVal {
    Str(String),
    Strs(Vec<String>),
    Arr(Array),
}

/// Named arrays in load order, and metadata.
type Named = Vec<(String, Array)>;
type Meta = Vec<(String, MetaVal)>;

enum Loaded {
    One(Array),
    Dict(Named, Meta),
}

fn npy_array(src: &dyn Source) -> R<Array> {
    let h = npy::read_header(src)?;
    npy_data(src, &h, |_| Ok(()))
}

/// The array of an npy payload; `check` sees the data bytes as stored in the file (before
/// any byte swap), e.g. for a zip member's CRC, without a second read.
fn npy_data(src: &dyn Source, h: &npy::Header, check: impl FnOnce(&[u8]) -> R<()>) -> R<Array> {
    let shape = if h.fortran_order {
        h.shape.iter().rev().copied().collect()
    } else {
        h.shape.clone()
    };
    let a = new_array(shape, h.dtype, |dst| {
        src.read_at(h.data_offset, dst)?;
        check(dst)?;
        if h.big_endian {
            npy::byteswap(dst, h.dtype.swap_unit());
        }
        Ok(())
    })?;
    if h.fortran_order && h.shape.len() > 1 {
        Ok(ops::transpose(&a, None)?)
    } else {
        Ok(a)
    }
}

fn load_npz(src: &dyn Source) -> R<Vec<(String, Array)>> {
    let arch = npz::Archive::open(src)?;
    let mut out = Vec::with_capacity(arch.members.len());
    for m in &arch.members {
        let a = match m.method {
            npz::Method::Stored => {
                let r = RangeSource::new(src, m.data_offset, m.compressed_size)?;
                let h = npy::read_header(&r)?;
                // CRC over the member as stored: header bytes, then the data as read
                let head = r.read_vec(0, h.data_offset, "npy header")?;
                npy_data(&r, &h, |raw| Ok(npz::check_stored_crc(m, &[&head, raw])?))?
            }
            npz::Method::Deflated => {
                let raw = npz::inflate_member(src, m)?;
                let s = SliceSource(&raw);
                let h = npy::read_header(&s)?;
                npy_data(&s, &h, |_| Ok(()))?
            }
        };
        out.push((m.key.clone(), a));
    }
    Ok(out)
}

fn load_safetensors(src: &dyn Source) -> R<(Named, Meta)> {
    let h = safetensors::read_header(src)?;
    let mut out = Vec::with_capacity(h.tensors.len());
    for t in &h.tensors {
        let a = new_array(t.shape.clone(), t.dtype, |dst| {
            Ok(src.read_at(t.offset, dst)?)
        })?;
        out.push((t.name.clone(), a));
    }
    let meta = h
        .metadata
        .into_iter()
        .map(|(k, v)| (k, MetaVal::Str(v)))
        .collect();
    Ok((out, meta))
}

fn scalar_array(dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> R<Array> {
    new_array(shape, dtype, |dst| {
        if dst.len() != bytes.len() {
            return Err(fmt("metadata array size mismatch"));
        }
        dst.copy_from_slice(bytes);
        Ok(())
    })
}

fn load_gguf(src: &dyn Source) -> R<(Named, Meta)> {
    let h = gguf::read_header(src)?;
    let mut out: Vec<(String, Array)> = Vec::with_capacity(h.tensors.len());
    let mut names = std::collections::HashSet::new();
    let mut push = |out: &mut Vec<(String, Array)>, k: String, a: Array| -> R<()> {
        if !names.insert(k.clone()) {
            return Err(fmt(format!("two tensors would both load as {k:?}")));
        }
        out.push((k, a));
        Ok(())
    };
    for t in &h.tensors {
        match (t.ttype.dtype(), t.ttype.bits()) {
            (Some(d), _) => {
                let a = new_array(t.shape.clone(), d, |dst| Ok(src.read_at(t.offset, dst)?))?;
                push(&mut out, t.name.clone(), a)?;
            }
            (None, Some(bits)) => {
                let raw = src.read_vec(t.offset, t.nbytes, "tensor data")?;
                let (ws, ss) = gguf::quant_shapes(&t.shape, bits)
                    .ok_or_else(|| fmt(format!("tensor {:?}: bad quantized shape", t.name)))?;
                let nblocks = oxmx::shape::checked_size("load", &ss)?;
                // the three outputs are filled together from the raw blocks
                let mut sbuf = vec![0u8; nblocks * 2];
                let mut bbuf = vec![0u8; nblocks * 2];
                let w = new_array(ws, DType::U32, |dst| {
                    Ok(gguf::repack_quantized(
                        t.ttype, &raw, dst, &mut sbuf, &mut bbuf,
                    )?)
                })?;
                let s = scalar_array(DType::F16, ss.clone(), &sbuf)?;
                let b = scalar_array(DType::F16, ss, &bbuf)?;
                let prefix = t.name.strip_suffix(".weight").unwrap_or(&t.name);
                push(&mut out, format!("{prefix}.scales"), s)?;
                push(&mut out, format!("{prefix}.biases"), b)?;
                push(&mut out, t.name.clone(), w)?;
            }
            // the other block types: float16 of the tensor's shape, as MLX loads them
            (None, None) => {
                let raw = src.read_vec(t.offset, t.nbytes, "tensor data")?;
                let a = new_array(t.shape.clone(), DType::F16, |dst| {
                    Ok(gguf_dequant::dequantize_f16(t.ttype, &raw, dst)?)
                })?;
                push(&mut out, t.name.clone(), a)?;
            }
        }
    }
    let mut meta = Vec::with_capacity(h.metadata.len());
    for (k, v) in h.metadata {
        let mv = match v {
            gguf::Value::Str(s) => MetaVal::Str(s),
            gguf::Value::StrArray(a) => MetaVal::Strs(a),
            gguf::Value::Scalar(t, b) => MetaVal::Arr(scalar_array(t.dtype(), vec![], &b)?),
            gguf::Value::Array(t, b) => {
                let n = b.len() / t.size();
                MetaVal::Arr(scalar_array(t.dtype(), vec![n], &b)?)
            }
        };
        meta.push((k, mv));
    }
    Ok((out, meta))
}

/// Open `path` (or use `data`) as a source; with a key, read everything first and verify
/// the detached signature over exactly the bytes that will be parsed (no check-then-reopen
/// race).
fn with_source<T>(
    path: Option<&Path>,
    data: Option<&[u8]>,
    verify: Option<&([u8; 32], Vec<u8>)>,
    f: impl FnOnce(&dyn Source) -> R<T>,
) -> R<T> {
    match (path, data, verify) {
        (_, Some(d), Some((key, sig))) => {
            verify_bytes(key, sig, d)?;
            f(&SliceSource(d))
        }
        (_, Some(d), None) => f(&SliceSource(d)),
        (Some(p), None, Some((key, sig))) => {
            let d = std::fs::read(p).map_err(oxmx_io::Error::Io)?;
            verify_bytes(key, sig, &d)?;
            f(&SliceSource(&d))
        }
        (Some(p), None, None) => f(&FileSource::open(p)?),
        (None, None, _) => Err(E::Io(oxmx_io::Error::Invalid("no file given".into()))),
    }
}

fn verify_bytes(key: &[u8; 32], sig: &[u8], data: &[u8]) -> R<()> {
    let s = sign::SignatureFile::parse(sig)?;
    let d = sign::digest_bytes(data);
    sign::verify(key, &s, &d, data.len() as u64)?;
    Ok(())
}

fn read_sig(path: &Path) -> R<Vec<u8>> {
    let sp = sig_path(path);
    let m = std::fs::metadata(&sp).map_err(|e| {
        E::Io(oxmx_io::Error::Integrity(format!(
            "cannot read the signature file {}: {e}",
            sp.display()
        )))
    })?;
    if m.len() > oxmx_io::limits::SIGNATURE_MAX_BYTES {
        return Err(E::Io(oxmx_io::Error::Integrity(
            "signature file is too large".into(),
        )));
    }
    std::fs::read(&sp).map_err(|e| E::Io(oxmx_io::Error::Io(e)))
}

fn sig_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn load_index(index: &Path, key: Option<&[u8; 32]>) -> R<(Named, Meta)> {
    let verify = match key {
        Some(k) => Some((*k, read_sig(index)?)),
        None => None,
    };
    let text = with_source(Some(index), None, verify.as_ref(), |src| {
        if src.len() > oxmx_io::limits::INDEX_MAX_BYTES {
            return Err(fmt(format!(
                "index file larger than {} bytes",
                oxmx_io::limits::INDEX_MAX_BYTES
            )));
        }
        Ok(src.read_vec(0, src.len(), "index")?)
    })?;
    let idx = safetensors::parse_index(&text)?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut out = Vec::with_capacity(idx.weight_map.len());
    let mut meta: Vec<(String, MetaVal)> = Vec::new();
    let mut meta_keys = std::collections::HashSet::new();
    for shard in idx.shards() {
        let p = oxmx_io::paths::shard_path(dir, shard)?;
        let verify = match key {
            Some(k) => Some((*k, read_sig(&p)?)),
            None => None,
        };
        let (tensors, m) = with_source(Some(&p), None, verify.as_ref(), load_safetensors).map_err(
            |e| match e {
                E::Io(oxmx_io::Error::Format(m)) => fmt(format!("shard {shard:?}: {m}")),
                E::Io(oxmx_io::Error::Integrity(m)) => {
                    E::Io(oxmx_io::Error::Integrity(format!("shard {shard:?}: {m}")))
                }
                e => e,
            },
        )?;
        let mut by_name: std::collections::HashMap<String, Array> = tensors.into_iter().collect();
        for (t, s) in &idx.weight_map {
            if s == shard {
                let a = by_name.remove(t).ok_or_else(|| {
                    fmt(format!(
                        "tensor {t:?} is listed in shard {shard:?} but not found there"
                    ))
                })?;
                out.push((t.clone(), a));
            }
        }
        for (k, v) in m {
            if meta_keys.insert(k.clone()) {
                meta.push((k, v));
            }
        }
    }
    Ok((out, meta))
}

fn meta_to_py(py: Python<'_>, meta: Vec<(String, MetaVal)>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in meta {
        match v {
            MetaVal::Str(s) => d.set_item(k, s)?,
            MetaVal::Strs(a) => d.set_item(k, PyList::new(py, a)?)?,
            MetaVal::Arr(a) => d.set_item(k, Py::new(py, wrap(a))?)?,
        }
    }
    Ok(d)
}

/// `_io_load(format, path=None, data=None, name, return_metadata, key=None, signature=None)`
#[pyfunction]
#[pyo3(signature = (format, name, path=None, data=None, return_metadata=false, key=None, signature=None))]
#[allow(clippy::too_many_arguments)]
fn _io_load(
    py: Python<'_>,
    format: &str,
    name: &str,
    path: Option<PathBuf>,
    data: Option<&[u8]>,
    return_metadata: bool,
    key: Option<&[u8]>,
    signature: Option<&[u8]>,
) -> PyResult<PyObject> {
    let key: Option<[u8; 32]> = match key {
        Some(k) => Some(
            <[u8; 32]>::try_from(k)
                .map_err(|_| PyValueError::new_err("[load] a public key is 32 bytes"))?,
        ),
        None => None,
    };
    let fmt_name = format.to_string();
    let result: R<Loaded> = py.allow_threads(|| {
        if fmt_name == "safetensors_index" {
            let p = path.as_deref().ok_or_else(|| {
                E::Io(oxmx_io::Error::Invalid(
                    "an index file must be given by path".into(),
                ))
            })?;
            let (t, m) = load_index(p, key.as_ref())?;
            return Ok(Loaded::Dict(t, m));
        }
        let verify = match (&key, signature, &path) {
            (Some(k), Some(s), _) => Some((*k, s.to_vec())),
            (Some(k), None, Some(p)) => Some((*k, read_sig(p)?)),
            (Some(_), None, None) => {
                return Err(E::Io(oxmx_io::Error::Integrity(
                    "verification of a file object needs signature=".into(),
                )))
            }
            (None, _, _) => None,
        };
        with_source(
            path.as_deref(),
            data,
            verify.as_ref(),
            |src| match fmt_name.as_str() {
                "npy" => Ok(Loaded::One(npy_array(src)?)),
                "npz" => Ok(Loaded::Dict(load_npz(src)?, vec![])),
                "safetensors" => {
                    let (t, m) = load_safetensors(src)?;
                    Ok(Loaded::Dict(t, m))
                }
                "gguf" => {
                    let (t, m) = load_gguf(src)?;
                    Ok(Loaded::Dict(t, m))
                }
                other => Err(E::Io(oxmx_io::Error::Invalid(format!(
                    "Unknown format {other:?}"
                )))),
            },
        )
    });
    let loaded = result.map_err(|e| to_py(py, "load", name, e))?;
    match loaded {
        Loaded::One(a) => Ok(Py::new(py, wrap(a))?.into_any()),
        Loaded::Dict(t, m) => {
            let d = PyDict::new(py);
            for (k, a) in t {
                if d.contains(&k)? {
                    return Err(py_class_err(
                        py,
                        "FormatError",
                        format!("[load] {name}: duplicate array name {k:?}"),
                    ));
                }
                d.set_item(k, Py::new(py, wrap(a))?)?;
            }
            if return_metadata {
                let md = meta_to_py(py, m)?;
                Ok(PyTuple::new(py, [d.into_any(), md.into_any()])?
                    .into_any()
                    .unbind())
            } else {
                Ok(d.into_any().unbind())
            }
        }
    }
}

/// An evaluated, contiguous view of an array's bytes, kept alive for writing.
pub(crate) struct Bytes {
    data: ArrayData,
    start: usize,
    len: usize,
}

impl Bytes {
    pub(crate) fn of(a: &Array) -> R<Bytes> {
        let c = if a.ready_data().is_some_and(|d| d.is_contiguous(a.shape())) {
            a.clone()
        } else {
            ops::contiguous(a)?
        };
        let data = c.data()?;
        let len = a.nbytes();
        // an empty view may carry an offset past its (possibly empty) buffer
        let start = if len == 0 {
            0
        } else {
            data.offset
                .checked_mul(a.dtype().size())
                .ok_or_else(|| oxmx::Error::overflow("save"))?
        };
        if start
            .checked_add(len)
            .is_none_or(|e| e > data.buffer.bytes().len())
        {
            return Err(E::Core(oxmx::Error::runtime("save", "buffer too small")));
        }
        Ok(Bytes { data, start, len })
    }
    pub(crate) fn slice(&self) -> &[u8] {
        self.data
            .buffer
            .bytes()
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }
}

enum MetaIn {
    Str(String),
    Strs(Vec<String>),
    Arr(Array),
}

fn write_all<W: std::io::Write>(
    w: &mut W,
    format: &str,
    compress: bool,
    items: &[(String, Array)],
    meta: &[(String, MetaIn)],
) -> R<()> {
    let bytes: Vec<Bytes> = items.iter().map(|(_, a)| Bytes::of(a)).collect::<R<_>>()?;
    let shapes: Vec<Vec<usize>> = items.iter().map(|(_, a)| a.shape().to_vec()).collect();
    let dtypes: Vec<DType> = items.iter().map(|(_, a)| to_io_dtype(a.dtype())).collect();
    match format {
        "npy" => {
            let (Some(b), Some(s), Some(d)) = (bytes.first(), shapes.first(), dtypes.first())
            else {
                return Err(E::Io(oxmx_io::Error::Invalid("nothing to save".into())));
            };
            w.write_all(&npy::header_bytes(*d, s)?)
                .map_err(oxmx_io::Error::Io)?;
            w.write_all(b.slice()).map_err(oxmx_io::Error::Io)?;
        }
        "npz" => {
            let mut z = npz::Writer::new(w, compress);
            for (i, (name, _)) in items.iter().enumerate() {
                let h = npy::header_bytes(dtypes[i], &shapes[i])?;
                z.add(name, &[&h, bytes[i].slice()])?;
            }
            z.finish()?;
        }
        "safetensors" => {
            let t: Vec<(&str, DType, &[usize])> = items
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), dtypes[i], shapes[i].as_slice()))
                .collect();
            let order = safetensors::layout_order(&t);
            let ordered: Vec<_> = order.iter().map(|&i| t[i]).collect();
            let m: Vec<(String, String)> = meta
                .iter()
                .map(|(k, v)| match v {
                    MetaIn::Str(s) => Ok((k.clone(), s.clone())),
                    _ => Err(E::Io(oxmx_io::Error::Invalid(format!(
                        "safetensors metadata values must be str (key {k:?})"
                    )))),
                })
                .collect::<R<_>>()?;
            let (head, _) = safetensors::header_bytes(&ordered, &m)?;
            w.write_all(&head).map_err(oxmx_io::Error::Io)?;
            for &i in &order {
                w.write_all(bytes[i].slice()).map_err(oxmx_io::Error::Io)?;
            }
        }
        "gguf" => {
            let t: Vec<(&str, DType, &[usize])> = items
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), dtypes[i], shapes[i].as_slice()))
                .collect();
            let mut wm = Vec::with_capacity(meta.len());
            for (k, v) in meta {
                let val = match v {
                    MetaIn::Str(s) => gguf::WriteValue::Str(s.clone()),
                    MetaIn::Strs(a) => gguf::WriteValue::StrArray(a.clone()),
                    MetaIn::Arr(a) => {
                        let b = Bytes::of(a)?.slice().to_vec();
                        let d = to_io_dtype(a.dtype());
                        match a.ndim() {
                            0 => gguf::WriteValue::Scalar(d, b),
                            1 => gguf::WriteValue::Array(d, b),
                            n => {
                                return Err(E::Io(oxmx_io::Error::Invalid(format!(
                                    "GGUF metadata {k:?}: arrays must be 0-d or 1-d, got {n}-d"
                                ))))
                            }
                        }
                    }
                };
                wm.push((k.clone(), val));
            }
            let (head, offs) = gguf::header_bytes(&wm, &t)?;
            w.write_all(&head).map_err(oxmx_io::Error::Io)?;
            let mut pos: u64 = 0;
            for (b, off) in bytes.iter().zip(offs) {
                let pad = off.saturating_sub(pos) as usize;
                w.write_all(&vec![0u8; pad]).map_err(oxmx_io::Error::Io)?;
                w.write_all(b.slice()).map_err(oxmx_io::Error::Io)?;
                pos = off + b.len as u64;
            }
        }
        other => {
            return Err(E::Io(oxmx_io::Error::Invalid(format!(
                "Unknown format {other:?}"
            ))))
        }
    }
    Ok(())
}

fn arrays_arg(items: &Bound<'_, PyList>) -> PyResult<Vec<(String, Array)>> {
    let mut out = Vec::with_capacity(items.len());
    for it in items.iter() {
        let (k, v): (String, Bound<'_, PyAny>) = it.extract()?;
        let a = v
            .downcast::<PyArray>()
            .map_err(|_| PyTypeError::new_err(format!("[save] {k:?} is not an array")))?;
        out.push((k, a.borrow().inner.clone()));
    }
    Ok(out)
}

fn meta_arg(meta: Option<&Bound<'_, PyList>>) -> PyResult<Vec<(String, MetaIn)>> {
    let mut out = Vec::new();
    let Some(meta) = meta else {
        return Ok(out);
    };
    for it in meta.iter() {
        let (k, v): (String, Bound<'_, PyAny>) = it.extract()?;
        let m = if let Ok(s) = v.downcast::<PyString>() {
            MetaIn::Str(s.to_str()?.to_owned())
        } else if let Ok(a) = v.downcast::<PyArray>() {
            MetaIn::Arr(a.borrow().inner.clone())
        } else if let Ok(l) = v.extract::<Vec<String>>() {
            if v.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err("unreachable"));
            }
            MetaIn::Strs(l)
        } else {
            return Err(PyTypeError::new_err(format!(
                "[save] metadata {k:?}: values must be str, a list of str or an array"
            )));
        };
        out.push((k, m));
    }
    Ok(out)
}

/// `_io_save(format, items, path=None, metadata=None, compress=False, sync=True)`: with a
/// path, an atomic write; without, the bytes (for file objects).
#[pyfunction]
#[pyo3(signature = (format, items, path=None, metadata=None, compress=false, sync=true))]
fn _io_save(
    py: Python<'_>,
    format: &str,
    items: &Bound<'_, PyList>,
    path: Option<PathBuf>,
    metadata: Option<&Bound<'_, PyList>>,
    compress: bool,
    sync: bool,
) -> PyResult<Option<Py<PyBytes>>> {
    let items = arrays_arg(items)?;
    let meta = meta_arg(metadata)?;
    let fmt_name = format.to_string();
    let name = path
        .as_ref()
        .map_or_else(|| "<file object>".to_string(), |p| p.display().to_string());
    let r: R<Option<Vec<u8>>> = py.allow_threads(|| match &path {
        Some(p) => {
            // Arrays are evaluated inside the write: an evaluation error removes the
            // temporary file like any other failure.
            let mut core_err = None;
            // the arrays' bytes are a lower bound of the file size (compressed npz: unknown)
            let hint = if compress {
                0
            } else {
                items.iter().map(|(_, a)| a.nbytes() as u64).sum()
            };
            let res = oxmx_io::atomic::write_atomic(p, sync, hint, |w| {
                write_all(w, &fmt_name, compress, &items, &meta).map_err(|e| match e {
                    E::Io(e) => e,
                    E::Core(e) => {
                        core_err = Some(e);
                        oxmx_io::Error::Invalid(String::new())
                    }
                })
            });
            match (res, core_err) {
                (_, Some(e)) => Err(E::Core(e)),
                (Err(e), None) => Err(E::Io(e)),
                (Ok(_), None) => Ok(None),
            }
        }
        None => {
            let mut v = Vec::new();
            write_all(&mut v, &fmt_name, compress, &items, &meta)?;
            Ok(Some(v))
        }
    });
    match r {
        Ok(Some(v)) => Ok(Some(PyBytes::new(py, &v).unbind())),
        Ok(None) => Ok(None),
        Err(e) => Err(to_py(py, "save", &name, e)),
    }
}

// ---- oxmx.security natives ----

fn key32(k: &[u8], what: &str) -> PyResult<[u8; 32]> {
    <[u8; 32]>::try_from(k)
        .map_err(|_| PyValueError::new_err(format!("[security] {what} must be 32 bytes")))
}

/// Public key of a 32-byte secret seed.
#[pyfunction]
fn _sec_public_key(secret: &[u8]) -> PyResult<Py<PyBytes>> {
    let s = key32(secret, "a secret key")?;
    Python::with_gil(|py| Ok(PyBytes::new(py, &sign::public_key(&s)).unbind()))
}

/// Text forms of keys, and parsing them back.
#[pyfunction]
fn _sec_key_text(key: &[u8], secret: bool) -> PyResult<String> {
    let k = key32(key, "a key")?;
    Ok(if secret {
        sign::secret_key_text(&k)
    } else {
        sign::public_key_text(&k)
    })
}

#[pyfunction]
fn _sec_parse_key(py: Python<'_>, text: &str, secret: bool) -> PyResult<Py<PyBytes>> {
    let k = if secret {
        sign::parse_secret_key(text)
    } else {
        sign::parse_public_key(text)
    }
    .map_err(|e| PyValueError::new_err(format!("[security] {e}")))?;
    Ok(PyBytes::new(py, &k).unbind())
}

/// SHA-256 (hex) and size of a file, streamed.
#[pyfunction]
fn _sec_digest(py: Python<'_>, path: PathBuf) -> PyResult<(String, u64)> {
    let name = path.display().to_string();
    let r = py.allow_threads(|| -> R<([u8; 32], u64)> {
        let f = std::fs::File::open(&path).map_err(oxmx_io::Error::Io)?;
        Ok(sign::digest_reader(std::io::BufReader::new(f))?)
    });
    let (d, n) = r.map_err(|e| to_py(py, "security", &name, e))?;
    Ok((sign::hex(&d), n))
}

/// The signature file text for `path` signed with `secret`.
#[pyfunction]
fn _sec_sign(py: Python<'_>, path: PathBuf, secret: &[u8]) -> PyResult<String> {
    let s = key32(secret, "a secret key")?;
    let name = path.display().to_string();
    let r = py.allow_threads(|| -> R<String> {
        let f = std::fs::File::open(&path).map_err(oxmx_io::Error::Io)?;
        let (d, n) = sign::digest_reader(std::io::BufReader::new(f))?;
        Ok(sign::sign(&s, &d, n).to_text())
    });
    r.map_err(|e| to_py(py, "sign", &name, e))
}

/// Verify `path` against signature text and a public key; raises IntegrityError.
#[pyfunction]
fn _sec_verify(py: Python<'_>, path: PathBuf, public: &[u8], signature: &[u8]) -> PyResult<()> {
    let k = key32(public, "a public key")?;
    let name = path.display().to_string();
    let sig = signature.to_vec();
    let r = py.allow_threads(|| -> R<()> {
        let s = sign::SignatureFile::parse(&sig)?;
        let f = std::fs::File::open(&path).map_err(oxmx_io::Error::Io)?;
        let (d, n) = sign::digest_reader(std::io::BufReader::new(f))?;
        Ok(sign::verify(&k, &s, &d, n)?)
    });
    r.map_err(|e| to_py(py, "verify", &name, e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_io_load, m)?)?;
    m.add_function(wrap_pyfunction!(_io_save, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_key_text, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_parse_key, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_digest, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_sign, m)?)?;
    m.add_function(wrap_pyfunction!(_sec_verify, m)?)?;
    Ok(())
}
