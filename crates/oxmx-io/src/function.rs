//! oxmx's exported-function file (`export_function` / `import_function`): traced graphs
//! as data. A file holds one or more traces of one function; each trace lists its inputs
//! (shape and dtype, the last ones named as keyword inputs), its constants (raw
//! little-endian bytes), its steps (an operation name with integer and float
//! parameters, input references and the recorded output shape and dtype) and its
//! outputs. There is no code in it: the importer maps each operation name to an oxmx op
//! and rebuilds the graph through the op layer's own checks.
//!
//! Layout (little-endian): the 8-byte magic, a `u32` format version, the body, and a
//! `u32` CRC-32 of everything before it. Strings are a `u32` length and UTF-8 bytes;
//! lists are a `u32` count and their items. Every count is capped ([`limits`] below) and
//! checked against the bytes left before anything is allocated; every reference must
//! point at an input, a constant or an *earlier* step, so a graph can never loop.

use crate::crc32::crc32;
use crate::dtype::{DType, ALL};
use crate::error::{fmt_err, invalid, Result};
use crate::source::Source;

/// First bytes of every file.
pub const MAGIC: [u8; 8] = *b"\x93OXMXFN\n";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

/// Caps on the counts a file may claim.
pub mod limits {
    /// Traces of one function in one file.
    pub const MAX_TRACES: u32 = 4096;
    /// Inputs, constants, outputs or steps of one trace.
    pub const MAX_NODES: u32 = 1 << 22;
    /// Inputs of one step.
    pub const MAX_STEP_INPUTS: u32 = 1 << 16;
    /// Integer or float parameters of one step.
    pub const MAX_PARAMS: u32 = 1 << 16;
    /// Length of an operation or keyword name.
    pub const MAX_NAME: u32 = 4096;
    /// Length of the metadata string (a model configuration, typically).
    pub const MAX_METADATA: u32 = 64 << 20;
    /// Elements of a recorded shape (so sizes fit comfortably in 64 bits).
    pub const MAX_ELEMENTS: u128 = 1 << 48;
}

/// A shape and a dtype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// Where a step's input or a trace's output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    Input(usize),
    Const(usize),
    Step(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub op: String,
    pub ints: Vec<i64>,
    pub floats: Vec<f64>,
    pub inputs: Vec<Ref>,
    pub out: Spec,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub spec: Spec,
    /// Row-major little-endian elements, exactly `size * dtype.size()` bytes.
    pub data: Vec<u8>,
}

/// One traced call signature of the function.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub inputs: Vec<Spec>,
    /// Names of the last `keywords.len()` inputs (keyword arguments, sorted).
    pub keywords: Vec<String>,
    pub constants: Vec<Constant>,
    pub steps: Vec<Step>,
    pub outputs: Vec<Ref>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FunctionFile {
    /// The oxmx version that wrote the file (informative).
    pub writer: String,
    pub metadata: String,
    pub shapeless: bool,
    pub traces: Vec<Trace>,
}

// ---------------------------------------------------------------- writing

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn count(&mut self, n: usize, cap: u32, what: &str) -> Result<()> {
        match u32::try_from(n) {
            Ok(v) if v <= cap => {
                self.u32(v);
                Ok(())
            }
            _ => Err(invalid(format!(
                "{what}: {n} exceeds the format's limit of {cap}"
            ))),
        }
    }
    fn str(&mut self, s: &str, cap: u32, what: &str) -> Result<()> {
        self.count(s.len(), cap, what)?;
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
    fn spec(&mut self, s: &Spec) -> Result<()> {
        self.u8(dtype_code(s.dtype));
        self.count(s.shape.len(), crate::limits::MAX_NDIM as u32, "dimensions")?;
        for &d in &s.shape {
            self.0.extend_from_slice(&(d as u64).to_le_bytes());
        }
        Ok(())
    }
    fn reference(&mut self, r: Ref) -> Result<()> {
        let (kind, i) = match r {
            Ref::Input(i) => (0, i),
            Ref::Const(i) => (1, i),
            Ref::Step(i) => (2, i),
        };
        self.u8(kind);
        self.count(i, limits::MAX_NODES, "reference")
    }
}

fn dtype_code(d: DType) -> u8 {
    ALL.iter().position(|&x| x == d).unwrap_or(0) as u8
}

/// The file's bytes. Fails (`Error::Invalid`) when a count exceeds the format's caps or
/// a constant's data does not match its shape.
pub fn to_bytes(f: &FunctionFile) -> Result<Vec<u8>> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(&MAGIC);
    w.u32(VERSION);
    w.str(&f.writer, limits::MAX_NAME, "writer")?;
    w.str(&f.metadata, limits::MAX_METADATA, "metadata")?;
    w.u8(u8::from(f.shapeless));
    w.count(f.traces.len(), limits::MAX_TRACES, "traces")?;
    for t in &f.traces {
        w.count(t.inputs.len(), limits::MAX_NODES, "inputs")?;
        for s in &t.inputs {
            w.spec(s)?;
        }
        w.count(t.keywords.len(), limits::MAX_NODES, "keywords")?;
        for k in &t.keywords {
            w.str(k, limits::MAX_NAME, "keyword")?;
        }
        w.count(t.constants.len(), limits::MAX_NODES, "constants")?;
        for c in &t.constants {
            let want = byte_size(&c.spec).map_err(|e| invalid(e.to_string()))?;
            if want != c.data.len() as u128 {
                return Err(invalid(format!(
                    "constant data has {} bytes, its shape needs {want}",
                    c.data.len()
                )));
            }
            w.spec(&c.spec)?;
            w.0.extend_from_slice(&(c.data.len() as u64).to_le_bytes());
            w.0.extend_from_slice(&c.data);
        }
        w.count(t.steps.len(), limits::MAX_NODES, "steps")?;
        for s in &t.steps {
            w.str(&s.op, limits::MAX_NAME, "operation name")?;
            w.count(s.ints.len(), limits::MAX_PARAMS, "parameters")?;
            for v in &s.ints {
                w.0.extend_from_slice(&v.to_le_bytes());
            }
            w.count(s.floats.len(), limits::MAX_PARAMS, "parameters")?;
            for v in &s.floats {
                w.0.extend_from_slice(&v.to_le_bytes());
            }
            w.count(s.inputs.len(), limits::MAX_STEP_INPUTS, "step inputs")?;
            for &r in &s.inputs {
                w.reference(r)?;
            }
            w.spec(&s.out)?;
        }
        w.count(t.outputs.len(), limits::MAX_NODES, "outputs")?;
        for &r in &t.outputs {
            w.reference(r)?;
        }
    }
    let crc = crc32(&w.0);
    w.u32(crc);
    Ok(w.0)
}

// ---------------------------------------------------------------- reading

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                fmt_err(format!(
                    "truncated file: {what} needs {n} bytes at {}",
                    self.pos
                ))
            })?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| fmt_err("truncated file"))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(s);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    /// A count no larger than `cap` whose items (at least `min_item` bytes each) fit in
    /// the bytes left, so allocating `count` items is justified by the file's length.
    fn count(&mut self, cap: u32, min_item: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)?;
        if n > cap {
            return Err(fmt_err(format!("{what}: {n} exceeds the limit of {cap}")));
        }
        let n = n as usize;
        let left = self.b.len().saturating_sub(self.pos);
        if n.checked_mul(min_item).is_none_or(|need| need > left) {
            return Err(fmt_err(format!(
                "{what}: {n} items cannot fit in the {left} bytes left"
            )));
        }
        Ok(n)
    }
    fn str(&mut self, cap: u32, what: &str) -> Result<String> {
        let n = self.count(cap, 1, what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| fmt_err(format!("{what} is not UTF-8")))
    }
    fn spec(&mut self, what: &str) -> Result<Spec> {
        let code = self.u8(what)?;
        let dtype = *ALL
            .get(code as usize)
            .ok_or_else(|| fmt_err(format!("{what}: unknown dtype code {code}")))?;
        let ndim = self.count(crate::limits::MAX_NDIM as u32, 8, what)?;
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            let d = self.u64(what)?;
            shape.push(
                usize::try_from(d)
                    .map_err(|_| fmt_err(format!("{what}: dimension {d} is too large")))?,
            );
        }
        let spec = Spec { dtype, shape };
        byte_size(&spec).map_err(|e| fmt_err(format!("{what}: {e}")))?;
        Ok(spec)
    }
    fn reference(
        &mut self,
        n_inputs: usize,
        n_consts: usize,
        n_steps: usize,
        what: &str,
    ) -> Result<Ref> {
        let kind = self.u8(what)?;
        let i = self.u32(what)? as usize;
        let (r, bound, name) = match kind {
            0 => (Ref::Input(i), n_inputs, "input"),
            1 => (Ref::Const(i), n_consts, "constant"),
            2 => (Ref::Step(i), n_steps, "earlier step"),
            k => return Err(fmt_err(format!("{what}: unknown reference kind {k}"))),
        };
        if i >= bound {
            return Err(fmt_err(format!(
                "{what} refers to {name} {i}, but there are only {bound}"
            )));
        }
        Ok(r)
    }
}

/// Bytes of an array of `spec`, refusing shapes beyond [`limits::MAX_ELEMENTS`].
fn byte_size(spec: &Spec) -> std::result::Result<u128, String> {
    let mut n: u128 = 1;
    for &d in &spec.shape {
        n = n.saturating_mul(d as u128);
        if n > limits::MAX_ELEMENTS {
            return Err(format!("shape {:?} has too many elements", spec.shape));
        }
    }
    Ok(n * spec.dtype.size() as u128)
}

/// Parse a whole function file. Every count, reference and constant size is checked
/// (see the module documentation); a damaged or hostile file is an `Error::Format`.
pub fn read(src: &dyn Source) -> Result<FunctionFile> {
    let bytes = src.read_vec(0, src.len(), "function file")?;
    from_bytes(&bytes)
}

/// [`read`] over bytes in memory.
pub fn from_bytes(bytes: &[u8]) -> Result<FunctionFile> {
    if bytes.len() < MAGIC.len() + 8 || bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(fmt_err("not an oxmx function file (bad magic)"));
    }
    let body_end = bytes.len() - 4;
    let mut stored = [0u8; 4];
    stored.copy_from_slice(bytes.get(body_end..).unwrap_or(&[0; 4]));
    let body = bytes.get(..body_end).unwrap_or(&[]);
    if crc32(body) != u32::from_le_bytes(stored) {
        return Err(fmt_err(
            "checksum mismatch: the file is damaged or was modified",
        ));
    }
    let mut r = Reader {
        b: body,
        pos: MAGIC.len(),
    };
    let version = r.u32("version")?;
    if version != VERSION {
        return Err(fmt_err(format!(
            "format version {version} is not supported (this oxmx reads version {VERSION})"
        )));
    }
    let writer = r.str(limits::MAX_NAME, "writer")?;
    let metadata = r.str(limits::MAX_METADATA, "metadata")?;
    let shapeless = match r.u8("shapeless flag")? {
        0 => false,
        1 => true,
        v => return Err(fmt_err(format!("shapeless flag must be 0 or 1, got {v}"))),
    };
    // the smallest trace: five empty lists
    let n_traces = r.count(limits::MAX_TRACES, 20, "traces")?;
    let mut traces = Vec::with_capacity(n_traces);
    for t in 0..n_traces {
        traces.push(read_trace(&mut r, t)?);
    }
    if r.pos != body.len() {
        return Err(fmt_err(format!(
            "{} unexpected bytes after the last trace",
            body.len() - r.pos
        )));
    }
    Ok(FunctionFile {
        writer,
        metadata,
        shapeless,
        traces,
    })
}

fn read_trace(r: &mut Reader<'_>, t: usize) -> Result<Trace> {
    let n_in = r.count(limits::MAX_NODES, 5, "inputs")?;
    let mut inputs = Vec::with_capacity(n_in);
    for i in 0..n_in {
        inputs.push(r.spec(&format!("trace {t} input {i}"))?);
    }
    let n_kw = r.count(limits::MAX_NODES, 4, "keywords")?;
    if n_kw > n_in {
        return Err(fmt_err(format!(
            "trace {t} names {n_kw} keyword inputs but has {n_in} inputs"
        )));
    }
    let mut keywords: Vec<String> = Vec::with_capacity(n_kw);
    for _ in 0..n_kw {
        let k = r.str(limits::MAX_NAME, "keyword")?;
        if keywords.contains(&k) {
            return Err(fmt_err(format!("trace {t}: keyword {k:?} appears twice")));
        }
        keywords.push(k);
    }
    let n_const = r.count(limits::MAX_NODES, 13, "constants")?;
    let mut constants = Vec::with_capacity(n_const);
    for c in 0..n_const {
        let what = format!("trace {t} constant {c}");
        let spec = r.spec(&what)?;
        let nbytes = r.u64(&what)?;
        let want = byte_size(&spec).map_err(fmt_err)?;
        if nbytes as u128 != want {
            return Err(fmt_err(format!(
                "{what} stores {nbytes} bytes, its shape {:?} {} needs {want}",
                spec.shape,
                spec.dtype.name()
            )));
        }
        let n = usize::try_from(nbytes).map_err(|_| fmt_err(format!("{what} is too large")))?;
        let data = r.take(n, &what)?.to_vec();
        constants.push(Constant { spec, data });
    }
    let n_steps = r.count(limits::MAX_NODES, 21, "steps")?;
    let mut steps = Vec::with_capacity(n_steps);
    for s in 0..n_steps {
        let what = format!("trace {t} step {s}");
        let op = r.str(limits::MAX_NAME, &what)?;
        let n_ints = r.count(limits::MAX_PARAMS, 8, &what)?;
        let mut ints = Vec::with_capacity(n_ints);
        for _ in 0..n_ints {
            ints.push(r.u64(&what)? as i64);
        }
        let n_floats = r.count(limits::MAX_PARAMS, 8, &what)?;
        let mut floats = Vec::with_capacity(n_floats);
        for _ in 0..n_floats {
            floats.push(f64::from_bits(r.u64(&what)?));
        }
        let n_si = r.count(limits::MAX_STEP_INPUTS, 5, &what)?;
        let mut ins = Vec::with_capacity(n_si);
        for _ in 0..n_si {
            ins.push(r.reference(n_in, n_const, s, &what)?);
        }
        let out = r.spec(&what)?;
        steps.push(Step {
            op,
            ints,
            floats,
            inputs: ins,
            out,
        });
    }
    let n_out = r.count(limits::MAX_NODES, 5, "outputs")?;
    let mut outputs = Vec::with_capacity(n_out);
    for o in 0..n_out {
        outputs.push(r.reference(n_in, n_const, n_steps, &format!("trace {t} output {o}"))?);
    }
    Ok(Trace {
        inputs,
        keywords,
        constants,
        steps,
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FunctionFile {
        let f32s = |shape: Vec<usize>| Spec {
            dtype: DType::F32,
            shape,
        };
        FunctionFile {
            writer: "oxmx test".into(),
            metadata: "{\"a\": 1}".into(),
            shapeless: false,
            traces: vec![Trace {
                inputs: vec![f32s(vec![2, 3]), f32s(vec![3])],
                keywords: vec!["y".into()],
                constants: vec![Constant {
                    spec: f32s(vec![]),
                    data: 2f32.to_le_bytes().to_vec(),
                }],
                steps: vec![
                    Step {
                        op: "broadcast_to".into(),
                        ints: vec![],
                        floats: vec![],
                        inputs: vec![Ref::Const(0)],
                        out: f32s(vec![2, 3]),
                    },
                    Step {
                        op: "multiply".into(),
                        ints: vec![-1, 7],
                        floats: vec![0.5, f64::NAN],
                        inputs: vec![Ref::Input(0), Ref::Step(0)],
                        out: f32s(vec![2, 3]),
                    },
                ],
                outputs: vec![Ref::Step(1), Ref::Input(1)],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let b = to_bytes(&f).unwrap();
        let g = from_bytes(&b).unwrap();
        assert_eq!(g.traces[0].steps[1].floats[0], 0.5);
        assert!(g.traces[0].steps[1].floats[1].is_nan());
        assert_eq!(g.traces[0].steps[1].ints, vec![-1, 7]);
        assert_eq!(g.traces[0].inputs, f.traces[0].inputs);
        assert_eq!(g.traces[0].outputs, f.traces[0].outputs);
        assert_eq!(g.traces[0].constants, f.traces[0].constants);
        assert_eq!(g.metadata, f.metadata);
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        let b = to_bytes(&sample()).unwrap();
        for n in 0..b.len() {
            assert!(from_bytes(&b[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(from_bytes(&c).is_err(), "flip at {i}");
        }
    }

    /// Re-sign a body so the checksum passes and the structural checks are reached.
    fn resign(mut body: Vec<u8>) -> Vec<u8> {
        body.truncate(body.len() - 4);
        let c = crc32(&body);
        body.extend_from_slice(&c.to_le_bytes());
        body
    }

    #[test]
    fn forward_references_and_huge_counts_are_refused() {
        let mut f = sample();
        f.traces[0].steps[0].inputs = vec![Ref::Step(0)];
        // the writer does not check references; the reader must
        let b = to_bytes(&f).unwrap();
        let e = from_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("earlier step"), "{e}");
        // a count field claiming 2^31 steps with a valid checksum
        let b = to_bytes(&sample()).unwrap();
        let pos = b.windows(4).position(|w| w == 2u32.to_le_bytes()).unwrap();
        let mut c = b.clone();
        c[pos..pos + 4].copy_from_slice(&(1u32 << 31).to_le_bytes());
        assert!(from_bytes(&resign(c)).is_err());
    }

    #[test]
    fn lying_constant_size_is_refused() {
        let mut f = sample();
        f.traces[0].constants[0].data.push(0);
        assert!(to_bytes(&f).is_err());
    }
}
