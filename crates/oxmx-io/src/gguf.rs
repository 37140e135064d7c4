//! GGUF v2/v3 (little-endian) files: metadata of every value type, F32/F16/BF16/F64 and
//! integer tensors, Q4_0/Q4_1/Q8_0 blocks repacked into MLX's affine-quantized layout, and
//! the other common block types (Q5_0/Q5_1, K-quants, IQ4_NL/IQ4_XS, MXFP4) described here
//! and decoded to float16 by [`crate::gguf_dequant`].
//!
//! Layout: `GGUF`, version u32, tensor count u64, metadata count u64, the metadata
//! (key string, type u32, value), the tensor infos (name, ndim u32, dims u64 × ndim
//! — innermost first —, type u32, offset u64), padding to the alignment
//! (`general.alignment`, default 32), then the data. Strings are a u64 length and bytes.
//!
//! Every count and length is checked against the bytes left in the file and against the
//! caps in [`crate::limits`] *before* a vector is reserved for it (MLX's GGUF loader, and
//! the gguflib it used, trusted these: CVE-2025-62609's wild pointers). Tensor offsets must
//! be aligned, in range and non-overlapping; duplicate keys and names are refused; arrays of
//! arrays are refused (MLX does not load them either), so no value nests.

use crate::dtype::{checked_nbytes, DType};
use crate::error::{fmt_err, invalid, Result};
use crate::limits::{
    GGUF_MAX_ALIGNMENT, GGUF_MAX_ARRAY, GGUF_MAX_KV, GGUF_MAX_NDIM, GGUF_MAX_STRING, MAX_NAME_LEN,
    MAX_TENSORS,
};
use crate::source::{check_range, Source};
use half::f16;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Elements per block of the supported quantized types (MLX's group size).
pub const QK: usize = 32;

/// Scalar metadata types (GGUF value types other than string and array).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    U64,
    I64,
    F64,
}

impl Scalar {
    fn from_code(c: u32) -> Option<Scalar> {
        Some(match c {
            0 => Scalar::U8,
            1 => Scalar::I8,
            2 => Scalar::U16,
            3 => Scalar::I16,
            4 => Scalar::U32,
            5 => Scalar::I32,
            6 => Scalar::F32,
            7 => Scalar::Bool,
            10 => Scalar::U64,
            11 => Scalar::I64,
            12 => Scalar::F64,
            _ => return None,
        })
    }
    fn code(self) -> u32 {
        match self {
            Scalar::U8 => 0,
            Scalar::I8 => 1,
            Scalar::U16 => 2,
            Scalar::I16 => 3,
            Scalar::U32 => 4,
            Scalar::I32 => 5,
            Scalar::F32 => 6,
            Scalar::Bool => 7,
            Scalar::U64 => 10,
            Scalar::I64 => 11,
            Scalar::F64 => 12,
        }
    }
    pub fn dtype(self) -> DType {
        match self {
            Scalar::U8 => DType::U8,
            Scalar::I8 => DType::I8,
            Scalar::U16 => DType::U16,
            Scalar::I16 => DType::I16,
            Scalar::U32 => DType::U32,
            Scalar::I32 => DType::I32,
            Scalar::F32 => DType::F32,
            Scalar::Bool => DType::Bool,
            Scalar::U64 => DType::U64,
            Scalar::I64 => DType::I64,
            Scalar::F64 => DType::F64,
        }
    }
    pub fn from_dtype(d: DType) -> Option<Scalar> {
        Some(match d {
            DType::U8 => Scalar::U8,
            DType::I8 => Scalar::I8,
            DType::U16 => Scalar::U16,
            DType::I16 => Scalar::I16,
            DType::U32 => Scalar::U32,
            DType::I32 => Scalar::I32,
            DType::F32 => Scalar::F32,
            DType::Bool => Scalar::Bool,
            DType::U64 => Scalar::U64,
            DType::I64 => Scalar::I64,
            DType::F64 => Scalar::F64,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        self.dtype().size()
    }
}

/// A metadata value. Numbers keep their little-endian bytes (bools normalized to 0/1).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Scalar, Vec<u8>),
    Str(String),
    Array(Scalar, Vec<u8>),
    StrArray(Vec<String>),
}

/// Tensor types oxmx reads (the plain ones it also writes). Q4_0/Q4_1/Q8_0 load as MLX's
/// affine triplet; the others marked by [`TensorType::to_f16`] are converted to float16 at
/// load (see [`crate::gguf_dequant`]), the dtype MLX gives the K-quants it converts.
#[allow(non_camel_case_types)] // the GGML type names
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ4_NL,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    BF16,
    MXFP4,
}

/// What `from_code` accepts, for error messages.
pub const SUPPORTED_TYPES: &str =
    "F32, F16, BF16, F64, I8-I64, Q4_0, Q4_1, Q8_0 (kept quantized), \
Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS, MXFP4 (converted to float16)";

/// GGML type codes oxmx knows but does not read: the codebook (IQ1/IQ2/IQ3), ternary (TQ)
/// and rarely stored types. Named in errors so a refusal says what the file holds.
fn unsupported_name(c: u32) -> Option<&'static str> {
    Some(match c {
        9 => "Q8_1",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        21 => "IQ3_S",
        22 => "IQ2_S",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        40 => "NVFP4",
        _ => return None,
    })
}

/// The error for a tensor whose type code `from_code` refuses.
pub fn unsupported_type_message(name: &str, code: u32) -> String {
    match unsupported_name(code) {
        Some(t) => format!(
            "tensor {name:?}: unsupported GGUF tensor type {t} (code {code}); oxmx does not convert \
the IQ1/IQ2/IQ3 codebook, ternary TQ, Q8_1 or NVFP4 types. It reads {SUPPORTED_TYPES}"
        ),
        None => format!(
            "tensor {name:?}: unsupported GGUF tensor type {code} (not a known GGML type). \
oxmx reads {SUPPORTED_TYPES}"
        ),
    }
}

impl TensorType {
    pub fn from_code(c: u32) -> Option<TensorType> {
        Some(match c {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::Q4_0,
            3 => TensorType::Q4_1,
            6 => TensorType::Q5_0,
            7 => TensorType::Q5_1,
            8 => TensorType::Q8_0,
            10 => TensorType::Q2_K,
            11 => TensorType::Q3_K,
            12 => TensorType::Q4_K,
            13 => TensorType::Q5_K,
            14 => TensorType::Q6_K,
            15 => TensorType::Q8_K,
            20 => TensorType::IQ4_NL,
            23 => TensorType::IQ4_XS,
            24 => TensorType::I8,
            25 => TensorType::I16,
            26 => TensorType::I32,
            27 => TensorType::I64,
            28 => TensorType::F64,
            30 => TensorType::BF16,
            39 => TensorType::MXFP4,
            _ => return None,
        })
    }
    pub fn code(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Q4_0 => 2,
            TensorType::Q4_1 => 3,
            TensorType::Q5_0 => 6,
            TensorType::Q5_1 => 7,
            TensorType::Q8_0 => 8,
            TensorType::Q2_K => 10,
            TensorType::Q3_K => 11,
            TensorType::Q4_K => 12,
            TensorType::Q5_K => 13,
            TensorType::Q6_K => 14,
            TensorType::Q8_K => 15,
            TensorType::IQ4_NL => 20,
            TensorType::IQ4_XS => 23,
            TensorType::I8 => 24,
            TensorType::I16 => 25,
            TensorType::I32 => 26,
            TensorType::I64 => 27,
            TensorType::F64 => 28,
            TensorType::BF16 => 30,
            TensorType::MXFP4 => 39,
        }
    }
    /// The plain dtype, or `None` for quantized types.
    pub fn dtype(self) -> Option<DType> {
        Some(match self {
            TensorType::F32 => DType::F32,
            TensorType::F16 => DType::F16,
            TensorType::BF16 => DType::BF16,
            TensorType::F64 => DType::F64,
            TensorType::I8 => DType::I8,
            TensorType::I16 => DType::I16,
            TensorType::I32 => DType::I32,
            TensorType::I64 => DType::I64,
            _ => return None,
        })
    }
    pub fn from_dtype(d: DType) -> Option<TensorType> {
        Some(match d {
            DType::F32 => TensorType::F32,
            DType::F16 => TensorType::F16,
            DType::BF16 => TensorType::BF16,
            DType::F64 => TensorType::F64,
            DType::I8 => TensorType::I8,
            DType::I16 => TensorType::I16,
            DType::I32 => TensorType::I32,
            DType::I64 => TensorType::I64,
            _ => return None,
        })
    }
    /// (elements per block, bytes per block)
    pub fn block(self) -> (u64, u64) {
        use crate::gguf_dequant::QK_K;
        let qk = QK as u64;
        let qk_k = QK_K as u64;
        match self {
            TensorType::Q4_0 | TensorType::IQ4_NL => (qk, 18),
            TensorType::Q4_1 => (qk, 20),
            TensorType::Q5_0 => (qk, 22),
            TensorType::Q5_1 => (qk, 24),
            TensorType::Q8_0 => (qk, 34),
            TensorType::MXFP4 => (qk, 17),
            TensorType::Q2_K => (qk_k, 84),
            TensorType::Q3_K => (qk_k, 110),
            TensorType::Q4_K => (qk_k, 144),
            TensorType::Q5_K => (qk_k, 176),
            TensorType::Q6_K => (qk_k, 210),
            TensorType::Q8_K => (qk_k, 292),
            TensorType::IQ4_XS => (qk_k, 136),
            t => (1, t.dtype().map_or(1, |d| d.size() as u64)),
        }
    }
    /// Bits per quantized weight (4 or 8) for the types kept as MLX affine triplets.
    pub fn bits(self) -> Option<usize> {
        match self {
            TensorType::Q4_0 | TensorType::Q4_1 => Some(4),
            TensorType::Q8_0 => Some(8),
            _ => None,
        }
    }
    /// Whether the type is converted to float16 at load ([`crate::gguf_dequant`]).
    pub fn to_f16(self) -> bool {
        self.dtype().is_none() && self.bits().is_none()
    }
    pub fn name(self) -> &'static str {
        match self {
            TensorType::F32 => "F32",
            TensorType::F16 => "F16",
            TensorType::Q4_0 => "Q4_0",
            TensorType::Q4_1 => "Q4_1",
            TensorType::Q5_0 => "Q5_0",
            TensorType::Q5_1 => "Q5_1",
            TensorType::Q8_0 => "Q8_0",
            TensorType::Q2_K => "Q2_K",
            TensorType::Q3_K => "Q3_K",
            TensorType::Q4_K => "Q4_K",
            TensorType::Q5_K => "Q5_K",
            TensorType::Q6_K => "Q6_K",
            TensorType::Q8_K => "Q8_K",
            TensorType::IQ4_NL => "IQ4_NL",
            TensorType::IQ4_XS => "IQ4_XS",
            TensorType::I8 => "I8",
            TensorType::I16 => "I16",
            TensorType::I32 => "I32",
            TensorType::I64 => "I64",
            TensorType::F64 => "F64",
            TensorType::BF16 => "BF16",
            TensorType::MXFP4 => "MXFP4",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub ttype: TensorType,
    /// Row-major shape (GGUF's dims reversed).
    pub shape: Vec<usize>,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    pub nbytes: u64,
    pub nelements: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Header {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_start: u64,
}

/// Buffered sequential reader over a source, with every read range-checked.
struct Reader<'a> {
    src: &'a dyn Source,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CHUNK: u64 = 1 << 16;

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        self.src.len().saturating_sub(self.pos)
    }
    fn fill(&mut self, n: usize) -> Result<()> {
        let have_end = self.buf_start + self.buf.len() as u64;
        if self.pos >= self.buf_start && self.pos + n as u64 <= have_end {
            return Ok(());
        }
        check_range(self.src.len(), self.pos, n as u64, "GGUF header field")?;
        let want = (n as u64).max(CHUNK).min(self.remaining());
        self.buf = self.src.read_vec(self.pos, want, "GGUF header")?;
        self.buf_start = self.pos;
        Ok(())
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        self.fill(n)?;
        let s = (self.pos - self.buf_start) as usize;
        self.pos += n as u64;
        self.buf
            .get(s..s + n)
            .ok_or_else(|| fmt_err("GGUF header is truncated"))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self, cap: u64, what: &str) -> Result<String> {
        let n = self.u64()?;
        if n > cap {
            return Err(fmt_err(format!(
                "{what}: string length {n} exceeds the cap of {cap} bytes"
            )));
        }
        if n > self.remaining() {
            return Err(fmt_err(format!(
                "{what}: string length {n} exceeds the {} bytes left in the file",
                self.remaining()
            )));
        }
        let b = self.bytes(n as usize)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| fmt_err(format!("{what}: string is not valid UTF-8")))
    }
    fn scalar(&mut self, t: Scalar) -> Result<Vec<u8>> {
        let mut v = self.bytes(t.size())?.to_vec();
        if t == Scalar::Bool {
            v[0] = u8::from(v[0] != 0);
        }
        Ok(v)
    }
}

fn read_value(r: &mut Reader<'_>, code: u32, key: &str) -> Result<Value> {
    if code == 8 {
        return Ok(Value::Str(r.string(GGUF_MAX_STRING, key)?));
    }
    if code == 9 {
        let et = r.u32()?;
        let n = r.u64()?;
        if n > GGUF_MAX_ARRAY {
            return Err(fmt_err(format!(
                "metadata {key:?}: array of {n} elements exceeds the cap of {GGUF_MAX_ARRAY}"
            )));
        }
        if et == 9 {
            return Err(fmt_err(format!(
                "metadata {key:?}: nested arrays are not supported"
            )));
        }
        if et == 8 {
            // every string takes at least its 8-byte length
            if n.saturating_mul(8) > r.remaining() {
                return Err(fmt_err(format!(
                    "metadata {key:?}: {n} strings cannot fit in the {} bytes left",
                    r.remaining()
                )));
            }
            let mut v = Vec::with_capacity(n as usize);
            for _ in 0..n {
                v.push(r.string(GGUF_MAX_STRING, key)?);
            }
            return Ok(Value::StrArray(v));
        }
        let t = Scalar::from_code(et)
            .ok_or_else(|| fmt_err(format!("metadata {key:?}: unknown array element type {et}")))?;
        let nbytes = n
            .checked_mul(t.size() as u64)
            .filter(|&b| b <= r.remaining())
            .ok_or_else(|| {
                fmt_err(format!(
                    "metadata {key:?}: array of {n} elements exceeds the {} bytes left",
                    r.remaining()
                ))
            })?;
        let mut v = r.bytes(nbytes as usize)?.to_vec();
        if t == Scalar::Bool {
            for b in &mut v {
                *b = u8::from(*b != 0);
            }
        }
        return Ok(Value::Array(t, v));
    }
    let t = Scalar::from_code(code)
        .ok_or_else(|| fmt_err(format!("metadata {key:?}: unknown value type {code}")))?;
    Ok(Value::Scalar(t, r.scalar(t)?))
}

/// Read and validate everything before the tensor data.
pub fn read_header(src: &dyn Source) -> Result<Header> {
    let len = src.len();
    let mut r = Reader {
        src,
        pos: 0,
        buf: Vec::new(),
        buf_start: 0,
    };
    if len < 24 {
        return Err(fmt_err(format!(
            "not a GGUF file: {len} bytes is shorter than the 24-byte header"
        )));
    }
    if r.bytes(4)? != MAGIC {
        return Err(fmt_err("not a GGUF file: bad magic (expected \"GGUF\")"));
    }
    let version = r.u32()?;
    if version != 2 && version != 3 {
        if matches!(version.swap_bytes(), 2 | 3) {
            return Err(fmt_err("big-endian GGUF files are not supported"));
        }
        return Err(fmt_err(format!(
            "unsupported GGUF version {version} (oxmx reads versions 2 and 3)"
        )));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    // Every key/value takes at least 8 (key length) + 4 (type) + 1 bytes, every tensor info
    // at least 8 + 4 + 4 + 8.
    if n_kv > GGUF_MAX_KV || n_kv.saturating_mul(13) > r.remaining() {
        return Err(fmt_err(format!(
            "GGUF metadata count {n_kv} is impossible for the file size or above the cap of {GGUF_MAX_KV}"
        )));
    }
    if n_tensors > MAX_TENSORS || n_tensors.saturating_mul(24) > r.remaining() {
        return Err(fmt_err(format!(
            "GGUF tensor count {n_tensors} is impossible for the file size or above the cap of {MAX_TENSORS}"
        )));
    }
    let mut h = Header {
        version,
        alignment: DEFAULT_ALIGNMENT,
        ..Header::default()
    };
    let mut keys = std::collections::HashSet::new();
    for _ in 0..n_kv {
        let key = r.string(MAX_NAME_LEN, "metadata key")?;
        let code = r.u32()?;
        let v = read_value(&mut r, code, &key)?;
        if !keys.insert(key.clone()) {
            return Err(fmt_err(format!("duplicate metadata key {key:?}")));
        }
        if key == "general.alignment" {
            match &v {
                Value::Scalar(Scalar::U32, b) => {
                    let a = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    if a == 0 || !a.is_power_of_two() || a > GGUF_MAX_ALIGNMENT {
                        return Err(fmt_err(format!(
                            "general.alignment {a} is not a power of two up to {GGUF_MAX_ALIGNMENT}"
                        )));
                    }
                    h.alignment = a;
                }
                _ => return Err(fmt_err("general.alignment must be a uint32")),
            }
        }
        h.metadata.push((key, v));
    }
    let mut names = std::collections::HashSet::new();
    let mut infos: Vec<(String, TensorType, Vec<u64>, u64)> =
        Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = r.string(MAX_NAME_LEN, "tensor name")?;
        let nd = u64::from(r.u32()?);
        if nd > GGUF_MAX_NDIM as u64 {
            return Err(fmt_err(format!(
                "tensor {name:?}: {nd} dimensions (GGUF allows at most {GGUF_MAX_NDIM})"
            )));
        }
        let mut ne = Vec::with_capacity(nd as usize);
        for _ in 0..nd {
            let d = r.u64()?;
            if d > i64::MAX as u64 {
                return Err(fmt_err(format!("tensor {name:?}: negative dimension")));
            }
            ne.push(d);
        }
        let code = r.u32()?;
        let tt = TensorType::from_code(code)
            .ok_or_else(|| fmt_err(unsupported_type_message(&name, code)))?;
        let off = r.u64()?;
        if !names.insert(name.clone()) {
            return Err(fmt_err(format!("duplicate tensor name {name:?}")));
        }
        infos.push((name, tt, ne, off));
    }
    let data_start = r
        .pos
        .checked_next_multiple_of(h.alignment)
        .ok_or_else(|| fmt_err("GGUF data offset overflows"))?;
    h.data_start = data_start;
    let data_len = len.saturating_sub(data_start);
    for (name, tt, ne, off) in infos {
        let (nel, _) = checked_nbytes(&ne, 1)
            .ok_or_else(|| fmt_err(format!("tensor {name:?}: shape {ne:?} overflows")))?;
        let (bl, bb) = tt.block();
        if bl > 1 && ne.first().is_some_and(|&d| d % bl != 0) {
            return Err(fmt_err(format!(
                "tensor {name:?}: {} rows of {} elements are not a multiple of the {bl}-element block",
                tt.name(),
                ne.first().copied().unwrap_or(0)
            )));
        }
        if bl > 1 && ne.is_empty() {
            return Err(fmt_err(format!("tensor {name:?}: a quantized scalar")));
        }
        let nbytes = (nel / bl)
            .checked_mul(bb)
            .ok_or_else(|| fmt_err(format!("tensor {name:?}: size overflows")))?;
        if off % h.alignment != 0 {
            return Err(fmt_err(format!(
                "tensor {name:?}: offset {off} is not a multiple of the alignment {}",
                h.alignment
            )));
        }
        match off.checked_add(nbytes) {
            Some(end) if end <= data_len => {}
            _ => {
                return Err(fmt_err(format!(
                    "tensor {name:?}: data (offset {off}, {nbytes} bytes) runs past the end of the file ({data_len} data bytes)"
                )))
            }
        }
        let shape = ne
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| fmt_err("dimension too large for this platform"))?;
        h.tensors.push(TensorInfo {
            name,
            ttype: tt,
            shape,
            offset: data_start + off,
            nbytes,
            nelements: nel,
        });
    }
    crate::limits::check_disjoint(
        h.tensors
            .iter()
            .map(|t| (t.offset, t.offset + t.nbytes, t.name.as_str())),
    )?;
    Ok(h)
}

/// Shapes of the MLX-layout triplet for a quantized tensor of row-major `shape`:
/// (packed uint32 weights, scales/biases). Last dimension `n` becomes `n * bits / 32` and
/// `n / 32`.
pub fn quant_shapes(shape: &[usize], bits: usize) -> Option<(Vec<usize>, Vec<usize>)> {
    let (&last, lead) = shape.split_last()?;
    let mut w = lead.to_vec();
    w.push(last.checked_mul(bits)? / 32);
    let mut s = lead.to_vec();
    s.push(last / QK);
    Some((w, s))
}

/// Repack raw GGUF blocks of `tt` into MLX's affine layout (group size 32):
/// `w` gets the packed weights (4-bit: element i of a group at bits 4*(i%8) of its uint32
/// word; 8-bit: one byte each, unsigned), `scales` and `biases` one float16 each per
/// group, so that `value = scale * q + bias`:
/// Q4_0 (`d * (q - 8)`): scale d, bias -8d. Q4_1 (`d * q + m`): scale d, bias m.
/// Q8_0 (`d * q`, q signed): q + 128 stored unsigned, scale d, bias -128d.
pub fn repack_quantized(
    tt: TensorType,
    raw: &[u8],
    w: &mut [u8],
    scales: &mut [u8],
    biases: &mut [u8],
) -> Result<()> {
    let (_, bb) = tt.block();
    let bb = bb as usize;
    if !raw.len().is_multiple_of(bb) {
        return Err(invalid("quantized data is not a whole number of blocks"));
    }
    let nblocks = raw.len() / bb;
    let wpb = match tt {
        TensorType::Q4_0 | TensorType::Q4_1 => QK / 2,
        TensorType::Q8_0 => QK,
        _ => return Err(invalid("not a quantized type")),
    };
    if w.len() != nblocks * wpb || scales.len() != nblocks * 2 || biases.len() != nblocks * 2 {
        return Err(invalid("output buffers do not match the block count"));
    }
    let blocks = raw.chunks_exact(bb);
    let outs = w.chunks_exact_mut(wpb);
    let ss = scales.chunks_exact_mut(2);
    let bs = biases.chunks_exact_mut(2);
    for (((blk, o), s), b) in blocks.zip(outs).zip(ss).zip(bs) {
        let d = f16::from_le_bytes([blk[0], blk[1]]);
        let (scale, bias, qs) = match tt {
            TensorType::Q4_0 => (d, f16::from_f32(-8.0 * d.to_f32()), &blk[2..18]),
            TensorType::Q4_1 => (d, f16::from_le_bytes([blk[2], blk[3]]), &blk[4..20]),
            _ => (d, f16::from_f32(-128.0 * d.to_f32()), &blk[2..34]),
        };
        s.copy_from_slice(&scale.to_le_bytes());
        b.copy_from_slice(&bias.to_le_bytes());
        if tt == TensorType::Q8_0 {
            for (dst, &q) in o.iter_mut().zip(qs) {
                *dst = q ^ 0x80; // signed -> unsigned offset by 128
            }
        } else {
            // GGUF: byte j holds element j (low nibble) and j+16 (high nibble).
            let nib = |e: usize| -> u8 {
                if e < 16 {
                    qs[e] & 0x0F
                } else {
                    qs[e - 16] >> 4
                }
            };
            for (k, dst) in o.iter_mut().enumerate() {
                *dst = nib(2 * k) | (nib(2 * k + 1) << 4);
            }
        }
    }
    Ok(())
}

/// A value to write.
#[derive(Clone, Debug)]
pub enum WriteValue {
    Str(String),
    StrArray(Vec<String>),
    Scalar(DType, Vec<u8>),
    Array(DType, Vec<u8>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Header bytes (through the padding before the data) of a GGUF v3 file and each tensor's
/// offset relative to the data start (aligned to 32; the caller pads between tensors).
pub fn header_bytes(
    metadata: &[(String, WriteValue)],
    tensors: &[(&str, DType, &[usize])],
) -> Result<(Vec<u8>, Vec<u64>)> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    let mut keys = std::collections::HashSet::new();
    for (k, v) in metadata {
        if !keys.insert(k.as_str()) {
            return Err(invalid(format!("duplicate metadata key {k:?}")));
        }
        if k == "general.alignment" {
            return Err(invalid("general.alignment is set by the writer"));
        }
        put_str(&mut out, k);
        match v {
            WriteValue::Str(s) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut out, s);
            }
            WriteValue::StrArray(a) => {
                out.extend_from_slice(&9u32.to_le_bytes());
                out.extend_from_slice(&8u32.to_le_bytes());
                out.extend_from_slice(&(a.len() as u64).to_le_bytes());
                for s in a {
                    put_str(&mut out, s);
                }
            }
            WriteValue::Scalar(d, b) | WriteValue::Array(d, b) => {
                let t = Scalar::from_dtype(*d).ok_or_else(|| {
                    invalid(format!(
                        "metadata {k:?}: dtype {} cannot be stored in GGUF",
                        d.name()
                    ))
                })?;
                if let WriteValue::Scalar(..) = v {
                    if b.len() != t.size() {
                        return Err(invalid(format!(
                            "metadata {k:?}: a scalar needs {} bytes",
                            t.size()
                        )));
                    }
                    out.extend_from_slice(&t.code().to_le_bytes());
                } else {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&t.code().to_le_bytes());
                    out.extend_from_slice(&((b.len() / t.size()) as u64).to_le_bytes());
                }
                out.extend_from_slice(b);
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut pos: u64 = 0;
    for (name, d, shape) in tensors {
        if !names.insert(*name) {
            return Err(invalid(format!("duplicate array name {name:?}")));
        }
        let tt = TensorType::from_dtype(*d).ok_or_else(|| {
            invalid(format!(
                "array {name:?}: dtype {} cannot be stored in GGUF (float32, float16, bfloat16, float64, int8-int64)",
                d.name()
            ))
        })?;
        if shape.len() > GGUF_MAX_NDIM {
            return Err(invalid(format!(
                "array {name:?}: {} dimensions (GGUF allows at most {GGUF_MAX_NDIM})",
                shape.len()
            )));
        }
        put_str(&mut out, name);
        out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for &dim in shape.iter().rev() {
            out.extend_from_slice(&(dim as u64).to_le_bytes());
        }
        out.extend_from_slice(&tt.code().to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
        offsets.push(pos);
        let s64: Vec<u64> = shape.iter().map(|&x| x as u64).collect();
        let (_, nb) =
            checked_nbytes(&s64, d.size() as u64).ok_or_else(|| invalid("shape overflows"))?;
        pos = pos
            .checked_add(nb)
            .and_then(|p| p.checked_next_multiple_of(DEFAULT_ALIGNMENT))
            .ok_or_else(|| invalid("file too large"))?;
    }
    while !(out.len() as u64).is_multiple_of(DEFAULT_ALIGNMENT) {
        out.push(0);
    }
    Ok((out, offsets))
}

/// Convenience for tests and fuzzing: the header and each tensor's raw bytes.
pub fn load_vec(src: &dyn Source) -> Result<(Header, Vec<Vec<u8>>)> {
    let h = read_header(src)?;
    let mut out = Vec::new();
    for t in &h.tensors {
        let raw = src.read_vec(t.offset, t.nbytes, "tensor data")?;
        if let Some(bits) = t.ttype.bits() {
            let n = usize::try_from(t.nelements).map_err(|_| fmt_err("too large"))?;
            let mut w = vec![0u8; n * bits / 8];
            let mut s = vec![0u8; n / QK * 2];
            let mut b = vec![0u8; n / QK * 2];
            repack_quantized(t.ttype, &raw, &mut w, &mut s, &mut b)?;
            out.push(w);
        } else if t.ttype.to_f16() {
            let n = usize::try_from(t.nelements).map_err(|_| fmt_err("too large"))?;
            let mut h16 = vec![0u8; n.checked_mul(2).ok_or_else(|| fmt_err("too large"))?];
            crate::gguf_dequant::dequantize_f16(t.ttype, &raw, &mut h16)?;
            out.push(h16);
        } else {
            out.push(raw);
        }
    }
    Ok((h, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SliceSource;

    fn write(
        meta: &[(String, WriteValue)],
        tensors: &[(&str, DType, &[usize], Vec<u8>)],
    ) -> Vec<u8> {
        let t: Vec<(&str, DType, &[usize])> =
            tensors.iter().map(|(n, d, s, _)| (*n, *d, *s)).collect();
        let (mut out, offs) = header_bytes(meta, &t).unwrap();
        let start = out.len() as u64;
        for ((_, _, _, data), off) in tensors.iter().zip(offs) {
            out.resize((start + off) as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn round_trip() {
        let meta = vec![
            ("general.name".to_string(), WriteValue::Str("tiny".into())),
            (
                "toks".to_string(),
                WriteValue::StrArray(vec!["a".into(), "é".into()]),
            ),
            (
                "n".to_string(),
                WriteValue::Scalar(DType::U32, 7u32.to_le_bytes().to_vec()),
            ),
            (
                "v".to_string(),
                WriteValue::Array(
                    DType::F32,
                    [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
            ),
        ];
        let a: Vec<u8> = (0..24).map(|i| i as u8).collect();
        let f = write(
            &meta,
            &[
                ("w", DType::F32, &[2, 3], a.clone()),
                ("b", DType::I8, &[5], vec![1, 2, 3, 4, 5]),
            ],
        );
        let (h, d) = load_vec(&SliceSource(&f)).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.metadata.len(), 4);
        assert_eq!(
            h.metadata[1].1,
            Value::StrArray(vec!["a".into(), "é".into()])
        );
        assert_eq!(h.tensors[0].shape, vec![2, 3]);
        assert_eq!(d[0], a);
        assert_eq!(d[1], vec![1, 2, 3, 4, 5]);
        for cut in 0..f.len() {
            assert!(load_vec(&SliceSource(&f[..cut])).is_err());
        }
    }

    #[test]
    fn q4_0_repack_matches_reference_formula() {
        // one block: d = 0.5, nibbles q_j = j % 16 for element j
        let mut blk = f16::from_f32(0.5).to_le_bytes().to_vec();
        let vals: Vec<u8> = (0..32).map(|j| (j * 7 % 16) as u8).collect();
        for j in 0..16 {
            blk.push(vals[j] | (vals[j + 16] << 4));
        }
        let (mut w, mut s, mut b) = (vec![0u8; 16], vec![0u8; 2], vec![0u8; 2]);
        repack_quantized(TensorType::Q4_0, &blk, &mut w, &mut s, &mut b).unwrap();
        let scale = f16::from_le_bytes([s[0], s[1]]).to_f32();
        let bias = f16::from_le_bytes([b[0], b[1]]).to_f32();
        for (i, &v) in vals.iter().enumerate() {
            let word = u32::from_le_bytes([
                w[i / 8 * 4],
                w[i / 8 * 4 + 1],
                w[i / 8 * 4 + 2],
                w[i / 8 * 4 + 3],
            ]);
            let q = (word >> (4 * (i % 8))) & 0xF;
            assert_eq!(scale * q as f32 + bias, 0.5 * (v as f32 - 8.0));
        }
    }

    #[test]
    fn absurd_counts_are_refused_before_allocating() {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&u64::MAX.to_le_bytes());
        f.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(read_header(&SliceSource(&f)).is_err());
        // a string claiming 2^63 bytes
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&(1u64 << 63).to_le_bytes());
        f.extend_from_slice(&[0u8; 16]);
        assert!(read_header(&SliceSource(&f)).is_err());
        // an array of 2^40 u64s
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut f, "k");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&10u32.to_le_bytes());
        f.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(read_header(&SliceSource(&f)).is_err());
        // nested arrays
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        put_str(&mut f, "k");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&[0u8; 32]);
        assert!(read_header(&SliceSource(&f)).is_err());
    }
}
