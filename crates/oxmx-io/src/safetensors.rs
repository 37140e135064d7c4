//! `.safetensors` files and sharded `model.safetensors.index.json` checkpoints.
//!
//! Layout: u64 little-endian header length N, N bytes of JSON
//! `{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3],
//! "data_offsets": [begin, end]}, ...}`, then the data; offsets are relative to the end of
//! the header. Validation (before any tensor is allocated):
//! - N is capped ([`SAFETENSORS_MAX_HEADER`]) and must fit in the file;
//! - the JSON is parsed strictly (no duplicate names, metadata values must be strings,
//!   shapes at most [`MAX_NDIM`] long, at most [`MAX_TENSORS`] tensors);
//! - each tensor's byte count is computed with checked arithmetic and must equal
//!   `end - begin`; every region must lie inside the data section and no two regions may
//!   overlap (the class of the MLX safetensors out-of-bounds reads).
//!
//! fp8 tensors (`F8_E4M3`, `F8_E5M2`, `F8_E8M0`) load as `uint8` holding the raw bits, as
//! MLX does since it stopped converting them on load; `mx.from_fp8` style decoding is the
//! caller's.

use crate::dtype::{checked_nbytes, DType};
use crate::error::{fmt_err, invalid, Result};
use crate::json::{write_string, Json};
use crate::limits::{MAX_NDIM, MAX_TENSORS, SAFETENSORS_MAX_HEADER};
use crate::source::Source;

/// One tensor of a safetensors file, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    /// The dtype string in the file (`F8_E4M3` loads as `U8`).
    pub file_dtype: String,
    pub shape: Vec<usize>,
    /// Absolute offset of the data in the file.
    pub offset: u64,
    pub nbytes: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Header {
    pub tensors: Vec<TensorInfo>,
    pub metadata: Vec<(String, String)>,
    /// Where the data section starts (8 + N).
    pub data_start: u64,
}

pub fn dtype_from_str(s: &str) -> Option<DType> {
    Some(match s {
        "BOOL" => DType::Bool,
        "U8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => DType::U8,
        "I8" => DType::I8,
        "U16" => DType::U16,
        "I16" => DType::I16,
        "U32" => DType::U32,
        "I32" => DType::I32,
        "U64" => DType::U64,
        "I64" => DType::I64,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F32" => DType::F32,
        "F64" => DType::F64,
        "C64" => DType::C64,
        _ => return None,
    })
}

pub fn dtype_str(d: DType) -> &'static str {
    match d {
        DType::Bool => "BOOL",
        DType::U8 => "U8",
        DType::I8 => "I8",
        DType::U16 => "U16",
        DType::I16 => "I16",
        DType::U32 => "U32",
        DType::I32 => "I32",
        DType::U64 => "U64",
        DType::I64 => "I64",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F32 => "F32",
        DType::F64 => "F64",
        DType::C64 => "C64",
    }
}

/// Parse the JSON header text. `data_len` is the length of the data section.
pub fn parse_header_json(text: &[u8], data_start: u64, data_len: u64) -> Result<Header> {
    let mut j = Json::new(text);
    let mut h = Header {
        data_start,
        ..Header::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut have_meta = false;
    j.object(|j, key| {
        if key == "__metadata__" {
            if have_meta {
                return Err(fmt_err("duplicate __metadata__"));
            }
            have_meta = true;
            if j.next_is(b'n') {
                // `"__metadata__": null` is accepted as no metadata
                return j.skip_value();
            }
            let mut keys = std::collections::HashSet::new();
            return j.object(|j, k| {
                if !j.next_is(b'"') {
                    return Err(fmt_err(format!(
                        "metadata value for {k:?} is not a string (safetensors metadata is str -> str)"
                    )));
                }
                let v = j.string_max(SAFETENSORS_MAX_HEADER)?;
                if !keys.insert(k.clone()) {
                    return Err(fmt_err(format!("duplicate metadata key {k:?}")));
                }
                h.metadata.push((k, v));
                Ok(())
            });
        }
        if !seen.insert(key.clone()) {
            return Err(fmt_err(format!("duplicate tensor name {key:?}")));
        }
        if h.tensors.len() as u64 >= MAX_TENSORS {
            return Err(fmt_err(format!("more than {MAX_TENSORS} tensors")));
        }
        let mut dtype: Option<String> = None;
        let mut shape: Option<Vec<u64>> = None;
        let mut offs: Option<(u64, u64)> = None;
        j.object(|j, field| {
            match field.as_str() {
                "dtype" if dtype.is_none() => dtype = Some(j.string()?),
                "shape" if shape.is_none() => {
                    let mut s = Vec::new();
                    j.array(MAX_NDIM, |j| {
                        s.push(j.u64()?);
                        Ok(())
                    })?;
                    shape = Some(s);
                }
                "data_offsets" if offs.is_none() => {
                    let mut o = Vec::new();
                    j.array(2, |j| {
                        o.push(j.u64()?);
                        Ok(())
                    })?;
                    match o[..] {
                        [b, e] => offs = Some((b, e)),
                        _ => return Err(fmt_err("data_offsets must be [begin, end]")),
                    }
                }
                "dtype" | "shape" | "data_offsets" => {
                    return Err(fmt_err(format!("tensor {key:?}: duplicate field {field:?}")))
                }
                _ => j.skip_value()?,
            }
            Ok(())
        })?;
        let ds = dtype.ok_or_else(|| fmt_err(format!("tensor {key:?} has no dtype")))?;
        let shape = shape.ok_or_else(|| fmt_err(format!("tensor {key:?} has no shape")))?;
        let (b, e) = offs.ok_or_else(|| fmt_err(format!("tensor {key:?} has no data_offsets")))?;
        let dt = dtype_from_str(&ds).ok_or_else(|| {
            fmt_err(format!("tensor {key:?}: unsupported dtype {ds:?}"))
        })?;
        let (_, nbytes) = checked_nbytes(&shape, dt.size() as u64)
            .ok_or_else(|| fmt_err(format!("tensor {key:?}: shape {shape:?} overflows")))?;
        if e < b {
            return Err(fmt_err(format!(
                "tensor {key:?}: data_offsets [{b}, {e}] end before they begin"
            )));
        }
        if e - b != nbytes {
            return Err(fmt_err(format!(
                "tensor {key:?}: data_offsets [{b}, {e}] span {} bytes, shape {shape:?} of {ds} needs {nbytes}",
                e - b
            )));
        }
        if e > data_len {
            return Err(fmt_err(format!(
                "tensor {key:?}: data_offsets [{b}, {e}] run past the end of the data ({data_len} bytes)"
            )));
        }
        let shape = shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| fmt_err("dimension too large for this platform"))?;
        h.tensors.push(TensorInfo {
            name: key,
            dtype: dt,
            file_dtype: ds,
            shape,
            offset: data_start + b,
            nbytes,
        });
        Ok(())
    })?;
    j.end()?;
    crate::limits::check_disjoint(
        h.tensors
            .iter()
            .map(|t| (t.offset, t.offset + t.nbytes, t.name.as_str())),
    )?;
    Ok(h)
}

/// Read and validate the header of a safetensors file.
pub fn read_header(src: &dyn Source) -> Result<Header> {
    let len = src.len();
    if len < 8 {
        return Err(fmt_err(format!(
            "not a safetensors file: {len} bytes is shorter than the 8-byte header length"
        )));
    }
    let mut n = [0u8; 8];
    src.read_at(0, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > SAFETENSORS_MAX_HEADER {
        return Err(fmt_err(format!(
            "safetensors header length {n} exceeds the cap of {SAFETENSORS_MAX_HEADER} bytes"
        )));
    }
    if n > len - 8 {
        return Err(fmt_err(format!(
            "safetensors header length {n} exceeds the file ({} bytes after the length field)",
            len - 8
        )));
    }
    let text = src.read_vec(8, n, "safetensors header")?;
    if text.first() != Some(&b'{') {
        return Err(fmt_err("safetensors header does not start with '{'"));
    }
    parse_header_json(&text, 8 + n, len - 8 - n)
}

/// The bytes of a safetensors header (length + JSON padded with spaces to a multiple of 8)
/// for `tensors` given as (name, dtype, shape), laid out in the order given, and the
/// offsets of each tensor relative to the start of the data.
pub fn header_bytes(
    tensors: &[(&str, DType, &[usize])],
    metadata: &[(String, String)],
) -> Result<(Vec<u8>, Vec<u64>)> {
    let mut names = std::collections::HashSet::new();
    let mut json = String::from("{");
    let mut first = true;
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            write_string(&mut json, k);
            json.push(':');
            write_string(&mut json, v);
        }
        json.push('}');
        first = false;
    }
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut pos: u64 = 0;
    for (name, dtype, shape) in tensors {
        if *name == "__metadata__" {
            return Err(invalid(
                "\"__metadata__\" is reserved and cannot name an array",
            ));
        }
        if !names.insert(*name) {
            return Err(invalid(format!("duplicate array name {name:?}")));
        }
        if shape.len() > MAX_NDIM {
            return Err(invalid(format!("more than {MAX_NDIM} dimensions")));
        }
        let s64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let (_, nbytes) =
            checked_nbytes(&s64, dtype.size() as u64).ok_or_else(|| invalid("shape overflows"))?;
        if !first {
            json.push(',');
        }
        first = false;
        write_string(&mut json, name);
        json.push_str(":{\"dtype\":\"");
        json.push_str(dtype_str(*dtype));
        json.push_str("\",\"shape\":[");
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&dims.join(","));
        let end = pos
            .checked_add(nbytes)
            .ok_or_else(|| invalid("file too large"))?;
        json.push_str(&format!("],\"data_offsets\":[{pos},{end}]}}"));
        offsets.push(pos);
        pos = end;
    }
    json.push('}');
    let mut body = json.into_bytes();
    while body.len() % 8 != 0 {
        body.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok((out, offsets))
}

/// Order in which the writer lays tensors out: larger element sizes first (so every
/// tensor stays aligned to its element size), then by name — the order the `safetensors`
/// package uses.
pub fn layout_order(tensors: &[(&str, DType, &[usize])]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..tensors.len()).collect();
    idx.sort_by(|&a, &b| {
        let (na, da, _) = tensors[a];
        let (nb, db, _) = tensors[b];
        db.size().cmp(&da.size()).then_with(|| na.cmp(nb))
    });
    idx
}

/// A sharded checkpoint index: which shard file holds each tensor.
#[derive(Clone, Debug, Default)]
pub struct Index {
    /// (tensor name, shard file name) in file order.
    pub weight_map: Vec<(String, String)>,
}

impl Index {
    /// Distinct shard names in first-seen order.
    pub fn shards(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.weight_map
            .iter()
            .filter(|(_, s)| seen.insert(s.as_str()))
            .map(|(_, s)| s.as_str())
            .collect()
    }
}

/// Parse `model.safetensors.index.json`: `{"metadata": {...}, "weight_map": {"tensor":
/// "shard file"}}`. Other keys are skipped. Shard names are validated by
/// [`crate::paths::shard_path`] when they are resolved, not here.
pub fn parse_index(text: &[u8]) -> Result<Index> {
    if text.len() as u64 > crate::limits::INDEX_MAX_BYTES {
        return Err(fmt_err(format!(
            "index file larger than {} bytes",
            crate::limits::INDEX_MAX_BYTES
        )));
    }
    let mut j = Json::new(text);
    let mut idx = Index::default();
    let mut have_map = false;
    j.object(|j, key| {
        if key == "weight_map" {
            if have_map {
                return Err(fmt_err("duplicate weight_map"));
            }
            have_map = true;
            let mut names = std::collections::HashSet::new();
            j.object(|j, tensor| {
                if !j.next_is(b'"') {
                    return Err(fmt_err(format!(
                        "weight_map entry {tensor:?} is not a file name string"
                    )));
                }
                let shard = j.string()?;
                if !names.insert(tensor.clone()) {
                    return Err(fmt_err(format!(
                        "duplicate tensor {tensor:?} in weight_map"
                    )));
                }
                if idx.weight_map.len() as u64 >= MAX_TENSORS {
                    return Err(fmt_err(format!("more than {MAX_TENSORS} tensors")));
                }
                idx.weight_map.push((tensor, shard));
                Ok(())
            })
        } else {
            j.skip_value()
        }
    })?;
    j.end()?;
    if !have_map {
        return Err(fmt_err("index file has no \"weight_map\""));
    }
    Ok(idx)
}

/// Convenience for tests and fuzzing: every tensor with its bytes.
pub fn load_vec(src: &dyn Source) -> Result<(Header, Vec<Vec<u8>>)> {
    let h = read_header(src)?;
    let mut out = Vec::with_capacity(h.tensors.len());
    for t in &h.tensors {
        out.push(src.read_vec(t.offset, t.nbytes, "tensor data")?);
    }
    Ok((h, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SliceSource;

    fn file(json: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip() {
        let t: Vec<(&str, DType, &[usize])> = vec![
            ("b", DType::U8, &[3]),
            ("a", DType::F32, &[2]),
            ("e", DType::I64, &[0, 4]),
        ];
        let order = layout_order(&t);
        let ordered: Vec<_> = order.iter().map(|&i| t[i]).collect();
        let meta = vec![("format".to_string(), "mlx \"x\"".to_string())];
        let (mut bytes, offs) = header_bytes(&ordered, &meta).unwrap();
        assert_eq!((bytes.len() - 8) % 8, 0);
        assert_eq!(offs, vec![0, 0, 8]);
        bytes.extend_from_slice(&[0, 0, 128, 63, 0, 0, 0, 64, 1, 2, 3]);
        let (h, d) = load_vec(&SliceSource(&bytes)).unwrap();
        assert_eq!(h.metadata, meta);
        assert_eq!(
            h.tensors
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["e", "a", "b"]
        );
        assert_eq!(d[1], vec![0, 0, 128, 63, 0, 0, 0, 64]);
        assert_eq!(d[2], vec![1, 2, 3]);
    }

    #[test]
    fn hostile_headers() {
        let ok = r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        assert!(load_vec(&SliceSource(&file(ok, &[0; 8]))).is_ok());
        let bad = [
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#,
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#,
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}}"#,
            r#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#,
            r#"{"x":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            r#"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            r#"{"__metadata__":{"a":1}}"#,
            r#"{"x":{"dtype":"F32","shape":[2]}}"#,
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#,
        ];
        for b in bad {
            assert!(load_vec(&SliceSource(&file(b, &[0; 8]))).is_err(), "{b}");
        }
        // header length larger than the file
        let mut f = file(ok, &[0; 8]);
        f[..8].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        assert!(load_vec(&SliceSource(&f)).is_err());
    }

    #[test]
    fn index_files() {
        let i = parse_index(br#"{"metadata":{"total_size":16,"x":[1,{"y":null}]},"weight_map":{"a":"m-1.safetensors","b":"m-2.safetensors","c":"m-1.safetensors"}}"#).unwrap();
        assert_eq!(i.shards(), ["m-1.safetensors", "m-2.safetensors"]);
        assert!(parse_index(br#"{"weight_map":{"a":"x","a":"y"}}"#).is_err());
        assert!(parse_index(br#"{"weight_map":{"a":1}}"#).is_err());
        assert!(parse_index(br#"{"metadata":{}}"#).is_err());
    }
}
