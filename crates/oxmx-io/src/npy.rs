//! NumPy `.npy` files, versions 1.0, 2.0 and 3.0.
//!
//! Layout: `\x93NUMPY`, major, minor, header length (u16 for v1, u32 for v2/v3), then a
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`
//! (latin-1 for v1/v2, UTF-8 for v3), then the raw data. The header is parsed by a strict
//! reader of exactly that grammar — never by evaluating Python — so no pickle and no
//! object arrays. The header length is capped ([`NPY_MAX_HEADER`]) and read only after
//! checking it against the file length (the MLX npy header over-read, CVE-2025-62608, was
//! a missing check of this kind). The file must hold exactly the bytes the shape and dtype
//! require.

use crate::dtype::{checked_nbytes, DType};
use crate::error::{fmt_err, invalid, Result};
use crate::limits::{MAX_NDIM, NPY_MAX_HEADER};
use crate::source::Source;

pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Column-major data: the shape read back must be reversed and transposed.
    pub fortran_order: bool,
    /// Big-endian data: every `dtype.swap_unit()` bytes must be reversed.
    pub big_endian: bool,
    /// Where the data starts.
    pub data_offset: u64,
    /// Data length in bytes (`size(shape) * dtype.size()`).
    pub nbytes: u64,
}

/// Parse a `descr` string: byte order, kind, item size.
pub fn parse_descr(descr: &str) -> Result<(DType, bool)> {
    let bytes = descr.as_bytes();
    let (order, rest) = match bytes.first() {
        Some(c @ (b'<' | b'>' | b'|' | b'=')) => (*c, descr.get(1..).unwrap_or("")),
        _ => (b'=', descr),
    };
    let dtype = match rest {
        "b1" | "?" => DType::Bool,
        "u1" | "B" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "i1" | "b" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f2" | "e" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "c8" => DType::C64,
        // ml_dtypes' bfloat16 (and oxmx's) is written as a 2-byte void.
        "V2" => DType::BF16,
        _ => {
            return Err(fmt_err(format!(
                "unsupported dtype descr {descr:?} (oxmx reads bool, u1-u8, i1-i8, f2, f4, f8, c8 and V2 as bfloat16; \
                 object and structured arrays are never loaded)"
            )))
        }
    };
    let big = match order {
        b'>' => dtype.size() > 1,
        b'|' if dtype.size() > 1 && dtype != DType::BF16 => {
            return Err(fmt_err(format!(
                "dtype descr {descr:?}: '|' (no byte order) is only valid for 1-byte types"
            )))
        }
        _ => false,
    };
    Ok((dtype, big))
}

/// The descr oxmx writes for a dtype (little-endian).
pub fn descr_of(d: DType) -> &'static str {
    match d {
        DType::Bool => "|b1",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::F16 => "<f2",
        DType::BF16 => "<V2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::C64 => "<c8",
    }
}

/// Strict reader of the header dict literal.
struct Lit<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lit<'_> {
    fn err(&self, what: &str) -> crate::Error {
        fmt_err(format!(
            "malformed npy header at character {}: {what}",
            self.pos
        ))
    }
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }
    fn string(&mut self) -> Result<String> {
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.err("expected a quoted string")),
        };
        self.pos += 1;
        let start = self.pos;
        while let Some(&c) = self.s.get(self.pos) {
            if c == q {
                let v = self.s.get(start..self.pos).unwrap_or(&[]);
                self.pos += 1;
                if v.contains(&b'\\') {
                    return Err(self.err("escapes are not allowed in header strings"));
                }
                return std::str::from_utf8(v)
                    .map(str::to_owned)
                    .map_err(|_| self.err("string is not valid text"));
            }
            self.pos += 1;
        }
        Err(self.err("unterminated string"))
    }
    fn word(&mut self) -> Result<&str> {
        self.ws();
        let start = self.pos;
        while let Some(c) = self.s.get(self.pos) {
            if c.is_ascii_alphanumeric() || *c == b'_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        std::str::from_utf8(self.s.get(start..self.pos).unwrap_or(&[]))
            .map_err(|_| self.err("bad token"))
    }
    fn bool(&mut self) -> Result<bool> {
        match self.word()? {
            "True" => Ok(true),
            "False" => Ok(false),
            _ => Err(self.err("fortran_order must be True or False")),
        }
    }
    fn shape(&mut self) -> Result<Vec<u64>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                break;
            }
            let w = self.word()?;
            let w = w.strip_suffix('L').unwrap_or(w);
            if w.is_empty() || !w.bytes().all(|c| c.is_ascii_digit()) {
                return Err(self.err("shape entries must be non-negative integers"));
            }
            let d: u64 = w
                .parse()
                .map_err(|_| self.err("shape entry does not fit in 64 bits"))?;
            if dims.len() >= MAX_NDIM {
                return Err(self.err(&format!("more than {MAX_NDIM} dimensions")));
            }
            dims.push(d);
            if self.eat(b')') {
                // `(3)` is an int in Python, not a tuple.
                if dims.len() == 1 {
                    return Err(self.err("a one-element shape needs a trailing comma"));
                }
                break;
            }
            self.expect(b',')?;
        }
        Ok(dims)
    }
}

/// Parse the header text (between the length field and the data).
pub fn parse_header_text(text: &[u8]) -> Result<(DType, bool, bool, Vec<u64>)> {
    let mut p = Lit { s: text, pos: 0 };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" if descr.is_none() => {
                if p.peek() == Some(b'[') {
                    return Err(p.err("structured dtypes (a descr list) are not supported"));
                }
                descr = Some(p.string()?);
            }
            "fortran_order" if fortran.is_none() => fortran = Some(p.bool()?),
            "shape" if shape.is_none() => shape = Some(p.shape()?),
            "descr" | "fortran_order" | "shape" => {
                return Err(p.err(&format!("duplicate key '{key}'")))
            }
            _ => return Err(p.err(&format!("unexpected key '{key}'"))),
        }
        if p.eat(b'}') {
            break;
        }
        p.expect(b',')?;
    }
    p.ws();
    if p.pos != text.len() {
        return Err(p.err("trailing characters after the header dict"));
    }
    let descr = descr.ok_or_else(|| fmt_err("npy header has no 'descr'"))?;
    let fortran = fortran.ok_or_else(|| fmt_err("npy header has no 'fortran_order'"))?;
    let shape = shape.ok_or_else(|| fmt_err("npy header has no 'shape'"))?;
    let (dtype, big) = parse_descr(&descr)?;
    Ok((dtype, big, fortran, shape))
}

/// Read and validate the header of the `.npy` data in `src` (a whole file, or a member of
/// an archive). Checks: magic, version, header length against the cap and the file, the
/// dict grammar, the dtype, ndim, and that the file holds exactly the data the shape needs.
pub fn read_header(src: &dyn Source) -> Result<Header> {
    let len = src.len();
    if len < 10 {
        return Err(fmt_err(format!(
            "not an npy file: {len} bytes is shorter than the 10-byte preamble"
        )));
    }
    let mut pre = [0u8; 12];
    let n_pre = if len >= 12 { 12 } else { 10 };
    src.read_at(0, &mut pre[..n_pre])?;
    if &pre[..6] != MAGIC {
        return Err(fmt_err("not an npy file: bad magic (expected \\x93NUMPY)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, hstart) = match (major, minor) {
        (1, 0) => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        (2, 0) | (3, 0) => {
            if n_pre < 12 {
                return Err(fmt_err("npy v2/v3 preamble is truncated"));
            }
            (
                u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
                12u64,
            )
        }
        _ => return Err(fmt_err(format!("unsupported npy version {major}.{minor}"))),
    };
    if hlen > NPY_MAX_HEADER as u64 {
        return Err(fmt_err(format!(
            "npy header length {hlen} exceeds the cap of {NPY_MAX_HEADER} bytes"
        )));
    }
    let text = src.read_vec(hstart, hlen, "npy header")?;
    if major < 3 && !text.is_ascii() {
        // latin-1 headers with non-ASCII bytes cannot be a valid header anyway
        return Err(fmt_err("npy v1/v2 header contains non-ASCII bytes"));
    }
    let (dtype, big, fortran, shape64) = parse_header_text(&text)?;
    let (_, nbytes) = checked_nbytes(&shape64, dtype.size() as u64)
        .ok_or_else(|| fmt_err(format!("npy shape {shape64:?} overflows")))?;
    let data_offset = hstart + hlen;
    let expected = data_offset
        .checked_add(nbytes)
        .ok_or_else(|| fmt_err("npy data size overflows"))?;
    if expected != len {
        return Err(fmt_err(format!(
            "npy data size mismatch: shape {shape64:?} of {} needs {nbytes} bytes after the {data_offset}-byte header, \
             the file has {}",
            dtype.name(),
            len.saturating_sub(data_offset)
        )));
    }
    let shape = shape64
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| fmt_err("npy dimension too large for this platform"))?;
    Ok(Header {
        dtype,
        shape,
        fortran_order: fortran,
        big_endian: big,
        data_offset,
        nbytes,
    })
}

/// Reverse every `unit` bytes (big-endian data to native).
pub fn byteswap(data: &mut [u8], unit: usize) {
    if unit > 1 {
        for ch in data.chunks_exact_mut(unit) {
            ch.reverse();
        }
    }
}

/// Read the data described by `h` into `dst` (which must be `h.nbytes` long), converting
/// big-endian data to native order. Fortran order is left to the caller (reverse the shape
/// and transpose).
pub fn read_data(src: &dyn Source, h: &Header, dst: &mut [u8]) -> Result<()> {
    if dst.len() as u64 != h.nbytes {
        return Err(invalid(format!(
            "destination holds {} bytes, the npy data is {}",
            dst.len(),
            h.nbytes
        )));
    }
    src.read_at(h.data_offset, dst)?;
    if h.big_endian {
        byteswap(dst, h.dtype.swap_unit());
    }
    Ok(())
}

/// The header bytes (preamble + dict + padding) oxmx writes for a C-ordered little-endian
/// array: version 1.0 when the header fits in 65535 bytes, else 2.0; total length a
/// multiple of 64 as NumPy does.
pub fn header_bytes(dtype: DType, shape: &[usize]) -> Result<Vec<u8>> {
    if shape.len() > MAX_NDIM {
        return Err(invalid(format!("more than {MAX_NDIM} dimensions")));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        descr_of(dtype),
        shape_txt
    );
    let mut out = Vec::new();
    for (major, pre) in [(1u8, 10usize), (2u8, 12usize)] {
        let unpadded = pre + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let hlen = total - pre;
        if major == 1 && hlen > usize::from(u16::MAX) {
            continue;
        }
        out.extend_from_slice(MAGIC);
        out.push(major);
        out.push(0);
        if major == 1 {
            out.extend_from_slice(&(hlen as u16).to_le_bytes());
        } else {
            let h = u32::try_from(hlen).map_err(|_| invalid("npy header too large"))?;
            out.extend_from_slice(&h.to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        return Ok(out);
    }
    Err(invalid("npy header too large"))
}

/// Convenience for tests and fuzzing: parse a whole `.npy` image and return its header
/// and native-order data.
pub fn load_vec(src: &dyn Source) -> Result<(Header, Vec<u8>)> {
    let h = read_header(src)?;
    let mut data = src.read_vec(h.data_offset, h.nbytes, "npy data")?;
    if h.big_endian {
        byteswap(&mut data, h.dtype.swap_unit());
    }
    Ok((h, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SliceSource;

    fn image(dtype: DType, shape: &[usize], data: &[u8]) -> Vec<u8> {
        let mut v = header_bytes(dtype, shape).unwrap();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip_headers() {
        for (shape, n) in [
            (vec![], 1usize),
            (vec![3], 3),
            (vec![2, 0, 4], 0),
            (vec![2, 3], 6),
        ] {
            let data: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
            let img = image(DType::F32, &shape, &data);
            assert_eq!(img.iter().position(|&b| b == b'\n').unwrap() % 64, 63);
            let (h, d) = load_vec(&SliceSource(&img)).unwrap();
            assert_eq!(h.shape, shape);
            assert_eq!(h.dtype, DType::F32);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn parses_numpy_variants() {
        let t = b"{'descr': '>i2', 'fortran_order': True, 'shape': (2L, 3), }   \n";
        let (d, big, f, s) = parse_header_text(t).unwrap();
        assert_eq!((d, big, f, s), (DType::I16, true, true, vec![2, 3]));
        assert!(
            parse_header_text(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3)}").is_err()
        );
        assert!(
            parse_header_text(b"{'descr': '|O', 'fortran_order': False, 'shape': ()}").is_err()
        );
        assert!(parse_header_text(
            b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}"
        )
        .is_err());
        assert!(parse_header_text(
            b"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}"
        )
        .is_err());
        assert!(
            parse_header_text(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}").is_err()
        );
        assert!(parse_header_text(b"{'descr': '<f4', 'fortran_order': 0, 'shape': ()}").is_err());
        assert!(parse_header_text(b"__import__('os')").is_err());
    }

    #[test]
    fn rejects_lies() {
        let mut img = image(DType::F64, &[4], &[0u8; 32]);
        // truncated data
        assert!(load_vec(&SliceSource(&img[..img.len() - 1])).is_err());
        // header length beyond the file (the CVE-2025-62608 shape)
        img[8] = 0xFF;
        img[9] = 0xFF;
        assert!(load_vec(&SliceSource(&img)).is_err());
        // huge shape
        let h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }";
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h);
        assert!(load_vec(&SliceSource(&v)).is_err());
    }

    #[test]
    fn big_endian_and_complex_swap() {
        let t = b"{'descr': '>c8', 'fortran_order': False, 'shape': (1,), }";
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(t.len() as u16).to_le_bytes());
        v.extend_from_slice(t);
        v.extend_from_slice(&1.5f32.to_be_bytes());
        v.extend_from_slice(&(-2.0f32).to_be_bytes());
        let (h, d) = load_vec(&SliceSource(&v)).unwrap();
        assert_eq!(h.dtype, DType::C64);
        assert_eq!(&d[..4], &1.5f32.to_le_bytes());
        assert_eq!(&d[4..], &(-2.0f32).to_le_bytes());
    }
}
