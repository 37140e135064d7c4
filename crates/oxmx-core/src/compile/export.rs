//! Traces as data, for `export_function` / `import_function`: a [`Graph`] lists a
//! trace's inputs, constants, steps and outputs; each step's primitive is written as an
//! operation name with integer and float parameters ([`encode`]) and read back with
//! every parameter checked ([`decode`]). [`build`] turns a graph into arrays again by
//! calling the op layer for each step ([`rebuild`]), so an imported graph passes the
//! same shape, dtype and bounds checks as user code does and nothing recorded in a file
//! (shapes included) is trusted.
//!
//! What a graph cannot hold: a custom CUDA kernel (refused at export) and the rules of a
//! `custom_function` (its node is replaced by the outputs it computes, so an imported
//! function differentiates its forward graph).

use super::{Program, Ref};
use crate::array::Array;
use crate::dtype::{Dtype, ALL_DTYPES};
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::*;
use std::collections::HashMap;

const OP: &str = "import_function";

/// Where a graph step's input or a graph output comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphRef {
    Input(usize),
    Const(usize),
    Step(usize),
}

#[derive(Clone, Debug)]
pub struct GraphStep {
    pub prim: Primitive,
    pub inputs: Vec<GraphRef>,
    /// The shape and dtype recorded at export (checked against the rebuilt node).
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

/// One trace of a function as plain data.
#[derive(Clone)]
pub struct Graph {
    pub inputs: Vec<(Vec<usize>, Dtype)>,
    pub consts: Vec<Array>,
    pub steps: Vec<GraphStep>,
    pub outputs: Vec<GraphRef>,
}

/// `program` over inputs of `input_specs` as a graph: custom-function nodes replaced by
/// the values they forward (unless `keep_custom`: a shapeless compile keeps their
/// rules), constants numbered once each, unused steps dropped.
pub(super) fn graph_of(
    program: &Program,
    input_specs: Vec<(Vec<usize>, Dtype)>,
    keep_custom: bool,
) -> Result<Graph> {
    let mut g = Graph {
        inputs: input_specs,
        consts: Vec::new(),
        steps: Vec::new(),
        outputs: Vec::new(),
    };
    let mut const_pos: HashMap<usize, GraphRef> = HashMap::new();
    // each tape step becomes a graph reference (a custom node is an alias of its input)
    let mut value: Vec<GraphRef> = Vec::with_capacity(program.steps.len());
    for s in &program.steps {
        let ins = s
            .inputs
            .iter()
            .map(|r| resolve(r, &value, &mut g, &mut const_pos))
            .collect::<Result<Vec<_>>>()?;
        match &s.prim {
            Primitive::Custom(c) if !keep_custom => {
                let fwd = c
                    .n_primals
                    .checked_add(c.index)
                    .and_then(|i| ins.get(i))
                    .ok_or_else(|| Error::runtime("export_function", "Malformed custom node."))?;
                value.push(*fwd);
            }
            Primitive::UserKernel(_) => {
                return Err(Error::value(
                    "export_function",
                    "A custom CUDA kernel (mx.fast.cuda_kernel) cannot be exported: its source is code, and exported files hold data only.",
                ))
            }
            Primitive::Fused(k) => {
                return Err(Error::runtime(
                    "export_function",
                    format!("Unexpected fused node in a plain trace: {}.", k.0.describe()),
                ))
            }
            p => {
                value.push(GraphRef::Step(g.steps.len()));
                g.steps.push(GraphStep {
                    prim: p.clone(),
                    inputs: ins,
                    shape: s.shape.clone(),
                    dtype: s.dtype,
                });
            }
        }
    }
    g.outputs = program
        .outputs
        .iter()
        .map(|r| resolve(r, &value, &mut g, &mut const_pos))
        .collect::<Result<Vec<_>>>()?;
    Ok(prune(g))
}

/// A tape reference in graph terms. A constant that is an unevaluated broadcast (how
/// `x * 2` holds its scalar) stays a broadcast step over the small constant, so files
/// do not store the expanded values and shapeless traces can re-broadcast it.
fn resolve(
    r: &Ref,
    value: &[GraphRef],
    g: &mut Graph,
    const_pos: &mut HashMap<usize, GraphRef>,
) -> Result<GraphRef> {
    Ok(match r {
        Ref::Input(i) => GraphRef::Input(*i),
        Ref::Step(j) => *value
            .get(*j)
            .ok_or_else(|| Error::runtime("export_function", "Broken tape reference."))?,
        Ref::Const(a) => {
            if let Some(&k) = const_pos.get(&a.id()) {
                return Ok(k);
            }
            let view = match broadcast_source(a)? {
                Some(src) => Some((src, Primitive::Broadcast)),
                None => {
                    transpose_source(a)?.map(|(src, perm)| (src, Primitive::Transpose { perm }))
                }
            };
            let k = match view {
                Some((src, prim)) => {
                    let inner = const_ref(&src, g, const_pos);
                    g.steps.push(GraphStep {
                        prim,
                        inputs: vec![inner],
                        shape: a.shape().to_vec(),
                        dtype: a.dtype(),
                    });
                    GraphRef::Step(g.steps.len() - 1)
                }
                _ => const_ref(a, g, const_pos),
            };
            const_pos.insert(a.id(), k);
            k
        }
    })
}

/// The smaller array `a` broadcasts, if it is a broadcast: an unevaluated broadcast
/// node's input, or an evaluated view with stride 0 along some axis longer than 1 (that
/// axis' first slice).
fn broadcast_source(a: &Array) -> Result<Option<Array>> {
    if let Some((Primitive::Broadcast, ins)) = a.history() {
        return Ok(ins.into_iter().next());
    }
    let Some(d) = a.ready_data() else {
        return Ok(None);
    };
    let repeated = |(&st, &n): (&isize, &usize)| st == 0 && n > 1;
    if !d.strides.iter().zip(a.shape()).any(repeated) {
        return Ok(None);
    }
    let stop: Vec<i64> = d
        .strides
        .iter()
        .zip(a.shape())
        .map(|(&st, &n)| if st == 0 { n.min(1) as i64 } else { n as i64 })
        .collect();
    Ok(Some(ops::slice(a, &vec![0; stop.len()], &stop, None)?))
}

/// The array `a` is a transpose of, and the permutation, if it is one: an unevaluated
/// transpose node's input, or an evaluated view whose strides are a permutation of
/// row-major ones (`w.T` of a constant). Kept as a transpose step so that the imported
/// graph hands kernels the same layout (a matmul's summation order follows it).
fn transpose_source(a: &Array) -> Result<Option<(Array, Vec<usize>)>> {
    if let Some((Primitive::Transpose { perm }, ins)) = a.history() {
        return Ok(ins.into_iter().next().map(|i| (i, perm)));
    }
    let Some(d) = a.ready_data() else {
        return Ok(None);
    };
    let (shape, st) = (a.shape(), &d.strides);
    if shape.len() < 2 || st.len() != shape.len() || st.iter().any(|&s| s <= 0) {
        return Ok(None);
    }
    if crate::shape::is_row_contiguous(shape, st) {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..shape.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(st[i]));
    let pshape: Vec<usize> = order.iter().map(|&i| shape[i]).collect();
    let pst: Vec<isize> = order.iter().map(|&i| st[i]).collect();
    if !crate::shape::is_row_contiguous(&pshape, &pst) {
        return Ok(None);
    }
    let inner = ops::transpose(a, Some(&i64s(&order)))?;
    let mut perm = vec![0; order.len()];
    for (j, &i) in order.iter().enumerate() {
        perm[i] = j;
    }
    Ok(Some((inner, perm)))
}

fn const_ref(a: &Array, g: &mut Graph, const_pos: &mut HashMap<usize, GraphRef>) -> GraphRef {
    *const_pos.entry(a.id()).or_insert_with(|| {
        g.consts.push(a.clone());
        GraphRef::Const(g.consts.len() - 1)
    })
}

/// The graph without steps no output depends on (left behind by replaced custom nodes).
fn prune(g: Graph) -> Graph {
    let mut live = vec![false; g.steps.len()];
    for r in &g.outputs {
        if let GraphRef::Step(j) = r {
            if let Some(l) = live.get_mut(*j) {
                *l = true;
            }
        }
    }
    for j in (0..g.steps.len()).rev() {
        if live[j] {
            for r in &g.steps[j].inputs {
                if let GraphRef::Step(k) = r {
                    if let Some(l) = live.get_mut(*k) {
                        *l = true;
                    }
                }
            }
        }
    }
    let mut new_pos = vec![usize::MAX; g.steps.len()];
    let remap = |r: GraphRef, new_pos: &[usize]| match r {
        GraphRef::Step(j) => GraphRef::Step(new_pos[j]),
        r => r,
    };
    let mut steps = Vec::new();
    for (j, s) in g.steps.into_iter().enumerate() {
        if live[j] {
            new_pos[j] = steps.len();
            let inputs = s.inputs.iter().map(|&r| remap(r, &new_pos)).collect();
            steps.push(GraphStep { inputs, ..s });
        }
    }
    let outputs = g.outputs.iter().map(|&r| remap(r, &new_pos)).collect();
    Graph {
        inputs: g.inputs,
        consts: g.consts,
        steps,
        outputs,
    }
}

// ------------------------------------------------------------------ names and codes

const UNARY: [UnaryOp; 42] = {
    use UnaryOp::*;
    [
        Abs,
        Negative,
        Sign,
        Square,
        Sqrt,
        Rsqrt,
        Reciprocal,
        Exp,
        Expm1,
        Log,
        Log2,
        Log10,
        Log1p,
        Sin,
        Cos,
        Tan,
        ArcSin,
        ArcCos,
        ArcTan,
        Sinh,
        Cosh,
        Tanh,
        ArcSinh,
        ArcCosh,
        ArcTanh,
        Erf,
        ErfInv,
        Sigmoid,
        Floor,
        Ceil,
        Round,
        Trunc,
        IsNan,
        IsInf,
        IsPosInf,
        IsNegInf,
        IsFinite,
        LogicalNot,
        BitwiseInvert,
        Conjugate,
        Real,
        Imag,
    ]
};

const BINARY: [BinaryOp; 24] = {
    use BinaryOp::*;
    [
        Add,
        Subtract,
        Multiply,
        Divide,
        FloorDivide,
        Remainder,
        Power,
        Maximum,
        Minimum,
        Equal,
        NotEqual,
        Less,
        LessEqual,
        Greater,
        GreaterEqual,
        LogicalAnd,
        LogicalOr,
        BitwiseAnd,
        BitwiseOr,
        BitwiseXor,
        LeftShift,
        RightShift,
        ArcTan2,
        LogAddExp,
    ]
};

const REDUCE: [ReduceOp; 6] = [
    ReduceOp::Sum,
    ReduceOp::Prod,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::All,
    ReduceOp::Any,
];
const SCAN: [ScanOp; 5] = [
    ScanOp::Sum,
    ScanOp::Prod,
    ScanOp::Max,
    ScanOp::Min,
    ScanOp::LogAddExp,
];
const SCATTER: [ScatterMode; 5] = [
    ScatterMode::Set,
    ScatterMode::Add,
    ScatterMode::Multiply,
    ScatterMode::Maximum,
    ScatterMode::Minimum,
];
const QUANT: [QuantMode; 4] = [
    QuantMode::Affine,
    QuantMode::Mxfp4,
    QuantMode::Mxfp8,
    QuantMode::Nvfp4,
];
const MASKS: [SdpaMask; 4] = [
    SdpaMask::None,
    SdpaMask::Causal,
    SdpaMask::Bool,
    SdpaMask::Additive,
];

fn unary_name(op: UnaryOp) -> String {
    format!("{op:?}").to_lowercase()
}

fn code_of<T: PartialEq>(table: &[T], v: &T) -> i64 {
    table.iter().position(|x| x == v).unwrap_or(0) as i64
}

pub fn dtype_code(d: Dtype) -> i64 {
    code_of(&ALL_DTYPES, &d)
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// A primitive as an operation name with integer and float parameters. Fails for what a
/// file cannot hold (custom CUDA kernels, fused and custom-function nodes).
pub fn encode(p: &Primitive) -> Result<(String, Vec<i64>, Vec<f64>)> {
    use Primitive::*;
    let u = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
    let q = |s: &QuantSpec| vec![code_of(&QUANT, &s.mode), s.group_size as i64, s.bits as i64];
    let (name, ints, floats): (String, Vec<i64>, Vec<f64>) = match p {
        Unary(op) => (format!("unary.{}", unary_name(*op)), vec![], vec![]),
        Binary(op) => (format!("binary.{}", op.name()), vec![], vec![]),
        Select => ("where".into(), vec![], vec![]),
        AsType(d) => ("astype".into(), vec![dtype_code(*d)], vec![]),
        Copy => ("copy".into(), vec![], vec![]),
        Arange { start, step } => ("arange".into(), vec![], vec![*start, *step]),
        Reduce { op, axes } => {
            let mut v = vec![code_of(&REDUCE, op)];
            v.extend(u(axes));
            ("reduce".into(), v, vec![])
        }
        ArgReduce { op, axis } => (
            "arg_reduce".into(),
            vec![flag(*op == ArgReduceOp::ArgMin), *axis as i64],
            vec![],
        ),
        Softmax { precise } => ("softmax".into(), vec![flag(*precise)], vec![]),
        Matmul => ("matmul".into(), vec![], vec![]),
        Concatenate { axis } => ("concatenate".into(), vec![*axis as i64], vec![]),
        SliceUpdate {
            start,
            count,
            strides,
        } => {
            let mut v = start.clone();
            v.extend(count);
            v.extend(strides);
            ("slice_update".into(), v, vec![])
        }
        Gather { axes } => ("gather".into(), u(axes), vec![]),
        GatherAxis { axis } => ("take_along_axis".into(), vec![*axis as i64], vec![]),
        ScatterAxis { axis, mode } => (
            "put_along_axis".into(),
            vec![*axis as i64, code_of(&SCATTER, mode)],
            vec![],
        ),
        Scatter { axes, mode } => {
            let mut v = vec![code_of(&SCATTER, mode)];
            v.extend(u(axes));
            ("scatter".into(), v, vec![])
        }
        RandomBits { width } => ("random_bits".into(), vec![*width as i64], vec![]),
        Scan {
            op,
            reverse,
            inclusive,
        } => (
            "scan".into(),
            vec![code_of(&SCAN, op), flag(*reverse), flag(*inclusive)],
            vec![],
        ),
        Sort { arg } => ("sort".into(), vec![flag(*arg)], vec![]),
        Reshape => ("reshape".into(), vec![], vec![]),
        Transpose { perm } => ("transpose".into(), u(perm), vec![]),
        Broadcast => ("broadcast_to".into(), vec![], vec![]),
        Slice { start, step } => {
            let mut v = u(start);
            v.extend(step);
            ("slice".into(), v, vec![])
        }
        AsStrided { strides, offset } => {
            let mut v = vec![*offset as i64];
            v.extend(strides);
            ("as_strided".into(), v, vec![])
        }
        StopGradient => ("stop_gradient".into(), vec![], vec![]),
        Fast(k) => match k {
            FastKernel::RmsNorm { eps, weight } => {
                ("fast.rms_norm".into(), vec![flag(*weight)], vec![*eps])
            }
            FastKernel::LayerNorm { eps, weight, bias } => (
                "fast.layer_norm".into(),
                vec![flag(*weight), flag(*bias)],
                vec![*eps],
            ),
            FastKernel::Rope {
                dims,
                traditional,
                base,
                scale,
            } => (
                "fast.rope".into(),
                vec![*dims as i64, flag(*traditional), flag(base.is_some())],
                vec![base.unwrap_or(0.0), *scale],
            ),
            FastKernel::Sdpa { scale, mask, sinks } => (
                "fast.sdpa".into(),
                vec![code_of(&MASKS, mask), flag(*sinks)],
                vec![*scale],
            ),
            FastKernel::CrossEntropy => ("fast.cross_entropy".into(), vec![], vec![]),
            FastKernel::AdamStep { c } => ("fast.adam_step".into(), vec![], c.to_vec()),
        },
        Linalg(k) => {
            let ints = match *k {
                LinalgKernel::Inv => vec![0],
                LinalgKernel::TriInv { upper } => vec![1, flag(upper)],
                LinalgKernel::Cholesky { upper } => vec![2, flag(upper)],
                LinalgKernel::Solve => vec![3],
                LinalgKernel::SolveTriangular { upper } => vec![4, flag(upper)],
                LinalgKernel::Qr => vec![5],
                LinalgKernel::Svd { uv } => vec![6, flag(uv)],
                LinalgKernel::Eigh { upper, vectors } => vec![7, flag(upper), flag(vectors)],
                LinalgKernel::Eig { vectors } => vec![8, flag(vectors)],
                LinalgKernel::LuFactor => vec![9],
            };
            ("linalg".into(), ints, vec![])
        }
        Fft {
            inverse,
            real,
            scale,
        } => (
            "fft".into(),
            vec![flag(*inverse), flag(*real)],
            vec![*scale],
        ),
        Conv { spec, kind } => {
            let k = match kind {
                ConvKind::Forward => 0,
                ConvKind::WeightGrad => 1,
                ConvKind::InputGrad => 2,
            };
            let mut v = vec![k, spec.groups as i64];
            v.extend(u(&spec.strides));
            v.extend(u(&spec.dilation));
            v.extend(u(&spec.padding));
            ("conv".into(), v, vec![])
        }
        Dequantize(s) => ("dequantize".into(), q(s), vec![]),
        QuantizedMatmul { spec, transpose } => {
            let mut v = q(spec);
            v.push(flag(*transpose));
            ("quantized_matmul".into(), v, vec![])
        }
        GatherQmm { spec, transpose } => {
            let mut v = q(spec);
            v.push(flag(*transpose));
            ("gather_qmm".into(), v, vec![])
        }
        UserKernel(_) | Custom(_) | Fused(_) => {
            return Err(Error::value(
                "export_function",
                format!("A {} node cannot be exported.", p.name()),
            ))
        }
    };
    Ok((name, ints, floats))
}

// ------------------------------------------------------------------ decoding

/// Parameters of one step being decoded, with errors that name the step.
struct Params<'a> {
    op: &'a str,
    ints: &'a [i64],
    floats: &'a [f64],
}

impl Params<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::value(OP, format!("Operation {:?}: {msg}", self.op))
    }
    fn counts(&self, ints: usize, floats: usize) -> Result<()> {
        if self.ints.len() != ints || self.floats.len() != floats {
            return Err(self.err(format!(
                "expected {ints} integer and {floats} float parameters, got {} and {}",
                self.ints.len(),
                self.floats.len()
            )));
        }
        Ok(())
    }
    fn int(&self, i: usize) -> Result<i64> {
        self.ints
            .get(i)
            .copied()
            .ok_or_else(|| self.err("missing parameter"))
    }
    fn flag(&self, i: usize) -> Result<bool> {
        match self.int(i)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("flag parameter must be 0 or 1, got {v}"))),
        }
    }
    fn index(&self, v: i64) -> Result<usize> {
        usize::try_from(v)
            .ok()
            .filter(|&x| x <= u32::MAX as usize)
            .ok_or_else(|| self.err(format!("parameter {v} is out of range")))
    }
    fn pick<T: Copy>(&self, table: &[T], i: usize) -> Result<T> {
        let v = self.int(i)?;
        usize::try_from(v)
            .ok()
            .and_then(|k| table.get(k).copied())
            .ok_or_else(|| self.err(format!("unknown code {v}")))
    }
    fn indices(&self, from: usize, n: usize) -> Result<Vec<usize>> {
        (from..from + n).map(|i| self.index(self.int(i)?)).collect()
    }
    fn float(&self, i: usize) -> Result<f64> {
        self.floats
            .get(i)
            .copied()
            .ok_or_else(|| self.err("missing parameter"))
    }
    fn quant(&self) -> Result<QuantSpec> {
        let mode = self.pick(&QUANT, 0)?;
        let group = self.index(self.int(1)?)?;
        let bits = self.index(self.int(2)?)?;
        ops::quantized::spec(self.op, mode, Some(group), Some(bits))
    }
}

/// The primitive an operation name and its parameters describe; every parameter is
/// checked for kind and range (the node itself is validated by [`rebuild`]).
pub fn decode(op: &str, ints: &[i64], floats: &[f64]) -> Result<Primitive> {
    let p = Params { op, ints, floats };
    let n = ints.len();
    if let Some(u) = op.strip_prefix("unary.") {
        p.counts(0, 0)?;
        return UNARY
            .iter()
            .find(|&&x| unary_name(x) == u)
            .map(|&x| Primitive::Unary(x))
            .ok_or_else(|| p.err("unknown operation"));
    }
    if let Some(b) = op.strip_prefix("binary.") {
        p.counts(0, 0)?;
        return BINARY
            .iter()
            .find(|x| x.name() == b)
            .map(|&x| Primitive::Binary(x))
            .ok_or_else(|| p.err("unknown operation"));
    }
    let none = |prim: Primitive| -> Result<Primitive> {
        p.counts(0, 0)?;
        Ok(prim)
    };
    Ok(match op {
        "where" => none(Primitive::Select)?,
        "copy" => none(Primitive::Copy)?,
        "matmul" => none(Primitive::Matmul)?,
        "reshape" => none(Primitive::Reshape)?,
        "broadcast_to" => none(Primitive::Broadcast)?,
        "stop_gradient" => none(Primitive::StopGradient)?,
        "astype" => {
            p.counts(1, 0)?;
            Primitive::AsType(p.pick(&ALL_DTYPES, 0)?)
        }
        "arange" => {
            p.counts(0, 2)?;
            Primitive::Arange {
                start: p.float(0)?,
                step: p.float(1)?,
            }
        }
        "reduce" => {
            p.counts(n.max(1), 0)?;
            Primitive::Reduce {
                op: p.pick(&REDUCE, 0)?,
                axes: p.indices(1, n - 1)?,
            }
        }
        "arg_reduce" => {
            p.counts(2, 0)?;
            Primitive::ArgReduce {
                op: if p.flag(0)? {
                    ArgReduceOp::ArgMin
                } else {
                    ArgReduceOp::ArgMax
                },
                axis: p.index(p.int(1)?)?,
            }
        }
        "softmax" => {
            p.counts(1, 0)?;
            Primitive::Softmax {
                precise: p.flag(0)?,
            }
        }
        "concatenate" => {
            p.counts(1, 0)?;
            Primitive::Concatenate {
                axis: p.index(p.int(0)?)?,
            }
        }
        "slice_update" => {
            if !n.is_multiple_of(3) {
                return Err(p.err("expected start, count and stride per axis"));
            }
            p.counts(n, 0)?;
            let k = n / 3;
            Primitive::SliceUpdate {
                start: ints[..k].to_vec(),
                count: ints[k..2 * k].to_vec(),
                strides: ints[2 * k..].to_vec(),
            }
        }
        "gather" => {
            p.counts(n, 0)?;
            Primitive::Gather {
                axes: p.indices(0, n)?,
            }
        }
        "take_along_axis" => {
            p.counts(1, 0)?;
            Primitive::GatherAxis {
                axis: p.index(p.int(0)?)?,
            }
        }
        "put_along_axis" => {
            p.counts(2, 0)?;
            Primitive::ScatterAxis {
                axis: p.index(p.int(0)?)?,
                mode: p.pick(&SCATTER, 1)?,
            }
        }
        "scatter" => {
            p.counts(n.max(1), 0)?;
            Primitive::Scatter {
                mode: p.pick(&SCATTER, 0)?,
                axes: p.indices(1, n - 1)?,
            }
        }
        "random_bits" => {
            p.counts(1, 0)?;
            let width = p.index(p.int(0)?)?;
            if ![1, 2, 4, 8].contains(&width) {
                return Err(p.err(format!("bit width must be 1, 2, 4 or 8 bytes, got {width}")));
            }
            Primitive::RandomBits { width }
        }
        "scan" => {
            p.counts(3, 0)?;
            Primitive::Scan {
                op: p.pick(&SCAN, 0)?,
                reverse: p.flag(1)?,
                inclusive: p.flag(2)?,
            }
        }
        "sort" => {
            p.counts(1, 0)?;
            Primitive::Sort { arg: p.flag(0)? }
        }
        "transpose" => {
            p.counts(n, 0)?;
            Primitive::Transpose {
                perm: p.indices(0, n)?,
            }
        }
        "slice" => {
            if !n.is_multiple_of(2) {
                return Err(p.err("expected a start and a step per axis"));
            }
            p.counts(n, 0)?;
            Primitive::Slice {
                start: p.indices(0, n / 2)?,
                step: ints[n / 2..].to_vec(),
            }
        }
        "as_strided" => {
            p.counts(n.max(1), 0)?;
            Primitive::AsStrided {
                offset: p.index(p.int(0)?)?,
                strides: ints[1..].to_vec(),
            }
        }
        "fast.rms_norm" => {
            p.counts(1, 1)?;
            Primitive::Fast(FastKernel::RmsNorm {
                eps: p.float(0)?,
                weight: p.flag(0)?,
            })
        }
        "fast.layer_norm" => {
            p.counts(2, 1)?;
            Primitive::Fast(FastKernel::LayerNorm {
                eps: p.float(0)?,
                weight: p.flag(0)?,
                bias: p.flag(1)?,
            })
        }
        "fast.rope" => {
            p.counts(3, 2)?;
            Primitive::Fast(FastKernel::Rope {
                dims: p.index(p.int(0)?)?,
                traditional: p.flag(1)?,
                base: if p.flag(2)? { Some(p.float(0)?) } else { None },
                scale: p.float(1)?,
            })
        }
        "fast.sdpa" => {
            p.counts(2, 1)?;
            Primitive::Fast(FastKernel::Sdpa {
                scale: p.float(0)?,
                mask: p.pick(&MASKS, 0)?,
                sinks: p.flag(1)?,
            })
        }
        "fast.cross_entropy" => none(Primitive::Fast(FastKernel::CrossEntropy))?,
        "fast.adam_step" => {
            p.counts(0, 5)?;
            let mut c = [0.0; 5];
            c.copy_from_slice(floats);
            Primitive::Fast(FastKernel::AdamStep { c })
        }
        "linalg" => {
            let kind = p.int(0)?;
            let (want, k) = match kind {
                0 => (1, LinalgKernel::Inv),
                1 => (2, LinalgKernel::TriInv { upper: p.flag(1)? }),
                2 => (2, LinalgKernel::Cholesky { upper: p.flag(1)? }),
                3 => (1, LinalgKernel::Solve),
                4 => (2, LinalgKernel::SolveTriangular { upper: p.flag(1)? }),
                5 => (1, LinalgKernel::Qr),
                6 => (2, LinalgKernel::Svd { uv: p.flag(1)? }),
                7 => (
                    3,
                    LinalgKernel::Eigh {
                        upper: p.flag(1)?,
                        vectors: p.flag(2)?,
                    },
                ),
                8 => (
                    2,
                    LinalgKernel::Eig {
                        vectors: p.flag(1)?,
                    },
                ),
                9 => (1, LinalgKernel::LuFactor),
                _ => return Err(p.err(format!("unknown factorization {kind}"))),
            };
            p.counts(want, 0)?;
            Primitive::Linalg(k)
        }
        "fft" => {
            p.counts(2, 1)?;
            Primitive::Fft {
                inverse: p.flag(0)?,
                real: p.flag(1)?,
                scale: p.float(0)?,
            }
        }
        "conv" => {
            if n < 2 || !(n - 2).is_multiple_of(3) {
                return Err(p.err(
                    "expected kind, groups and strides, dilations, paddings per spatial axis",
                ));
            }
            p.counts(n, 0)?;
            let nd = (n - 2) / 3;
            let kind = match p.int(0)? {
                0 => ConvKind::Forward,
                1 => ConvKind::WeightGrad,
                2 => ConvKind::InputGrad,
                k => return Err(p.err(format!("unknown convolution kind {k}"))),
            };
            Primitive::Conv {
                kind,
                spec: ConvSpec {
                    groups: p.index(p.int(1)?)?,
                    strides: p.indices(2, nd)?,
                    dilation: p.indices(2 + nd, nd)?,
                    padding: p.indices(2 + 2 * nd, nd)?,
                },
            }
        }
        "dequantize" => {
            p.counts(3, 0)?;
            Primitive::Dequantize(p.quant()?)
        }
        "quantized_matmul" | "gather_qmm" => {
            p.counts(4, 0)?;
            let spec = p.quant()?;
            let transpose = p.flag(3)?;
            if op == "gather_qmm" {
                Primitive::GatherQmm { spec, transpose }
            } else {
                Primitive::QuantizedMatmul { spec, transpose }
            }
        }
        _ => return Err(p.err("unknown operation")),
    })
}

// ------------------------------------------------------------------ rebuilding

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

fn arity(prim: &Primitive, inputs: &[Array], ok: impl Fn(usize) -> bool) -> Result<()> {
    if ok(inputs.len()) {
        Ok(())
    } else {
        Err(Error::value(
            OP,
            format!(
                "Operation {:?} cannot take {} inputs.",
                prim.name(),
                inputs.len()
            ),
        ))
    }
}

/// Whether a step's result depends on its recorded shape rather than only on its
/// inputs (so a shapeless trace cannot serve new input shapes through it).
fn shape_parameterized(prim: &Primitive) -> bool {
    use Primitive::*;
    matches!(
        prim,
        Reshape
            | Slice { .. }
            | AsStrided { .. }
            | Arange { .. }
            | RandomBits { .. }
            | SliceUpdate { .. }
            | Fft {
                real: true,
                inverse: true,
                ..
            }
            | Conv {
                kind: ConvKind::WeightGrad | ConvKind::InputGrad,
                ..
            }
    )
}

/// The node `prim` computes over `inputs`, made by the op layer (which checks inputs,
/// parameters and bounds as for any user call). `shape` is the recorded output shape,
/// used only by the primitives whose result shape is a parameter (reshape, broadcast,
/// slices, arange, random bits), and checked by the op layer there.
pub fn rebuild(prim: &Primitive, inputs: &[Array], shape: &[usize], dtype: Dtype) -> Result<Array> {
    use Primitive::*;
    let one = |ok: bool| arity(prim, inputs, |n| n == 1 && ok);
    let x = || {
        inputs
            .first()
            .cloned()
            .ok_or_else(|| Error::value(OP, "missing input"))
    };
    match prim {
        Unary(op) => {
            one(true)?;
            ops::unary(*op, &x()?)
        }
        Binary(op) => {
            arity(prim, inputs, |n| n == 2)?;
            ops::binary(*op, &inputs[0], &inputs[1])
        }
        Select => {
            arity(prim, inputs, |n| n == 3)?;
            ops::where_(&inputs[0], &inputs[1], &inputs[2])
        }
        AsType(d) => {
            one(true)?;
            ops::astype(&x()?, *d)
        }
        Copy => {
            one(true)?;
            ops::contiguous(&x()?)
        }
        StopGradient => {
            one(true)?;
            Ok(crate::transforms::stop_gradient(&x()?))
        }
        Arange { start, step } => {
            arity(prim, inputs, |n| n == 0)?;
            let [len] = shape else {
                return Err(Error::value(OP, "arange must be 1-dimensional."));
            };
            ops::arange_node(*start, *step, *len, dtype)
        }
        Reduce { op, axes } => {
            one(true)?;
            ops::reduce(*op, &x()?, Some(&i64s(axes)), true)
        }
        ArgReduce { op, axis } => {
            one(true)?;
            ops::arg_reduce(*op, &x()?, Some(*axis as i64), true)
        }
        Softmax { precise } => {
            one(true)?;
            ops::softmax(&x()?, Some(&[-1]), *precise)
        }
        Matmul => {
            arity(prim, inputs, |n| n == 2)?;
            ops::matmul(&inputs[0], &inputs[1])
        }
        Concatenate { axis } => {
            arity(prim, inputs, |n| n >= 1)?;
            ops::concatenate(inputs, Some(*axis as i64))
        }
        SliceUpdate {
            start,
            count,
            strides,
        } => {
            arity(prim, inputs, |n| n == 2)?;
            let src = &inputs[0];
            let params = window(src.shape(), start, count, strides)?;
            ops::slice_update_params(src, &inputs[1], &params)
        }
        Gather { axes } => {
            arity(prim, inputs, |n| n >= 2)?;
            ops::gather(&inputs[0], &inputs[1..], axes)
        }
        GatherAxis { axis } => {
            arity(prim, inputs, |n| n == 2)?;
            ops::take_along_axis(&inputs[0], &inputs[1], Some(*axis as i64))
        }
        ScatterAxis { axis, mode } => {
            arity(prim, inputs, |n| n == 3)?;
            ops::scatter_along_axis(
                &inputs[0],
                &inputs[1],
                &inputs[2],
                Some(*axis as i64),
                *mode,
            )
        }
        Scatter { axes, mode } => {
            arity(prim, inputs, |n| n >= 3)?;
            ops::scatter(&inputs[0], &inputs[2..], &inputs[1], axes, *mode)
        }
        RandomBits { width } => {
            one(true)?;
            crate::random::bits_node(&x()?, shape, *width)
        }
        Scan {
            op,
            reverse,
            inclusive,
        } => {
            one(true)?;
            ops::scan(*op, &x()?, Some(-1), *reverse, *inclusive)
        }
        Sort { arg } => {
            one(true)?;
            if *arg {
                ops::argsort(&x()?, Some(-1))
            } else {
                ops::sort(&x()?, Some(-1))
            }
        }
        Reshape => {
            one(true)?;
            ops::reshape(&x()?, &i64s(shape))
        }
        Transpose { perm } => {
            one(true)?;
            ops::transpose(&x()?, Some(&i64s(perm)))
        }
        Broadcast => {
            one(true)?;
            ops::broadcast_to(&x()?, shape)
        }
        Slice { start, step } => {
            one(true)?;
            let a = x()?;
            let count: Vec<i64> = i64s(shape);
            let start: Vec<i64> = i64s(start);
            let params = window(a.shape(), &start, &count, step)?;
            ops::slice_view(&a, &params)
        }
        AsStrided { strides, offset } => {
            one(true)?;
            ops::as_strided(&x()?, &i64s(shape), strides, *offset as i64)
        }
        Fast(k) => rebuild_fast(k, inputs),
        Linalg(k) => ops::decomp::linalg_node(*k, inputs),
        Fft {
            inverse,
            real,
            scale,
        } => {
            one(true)?;
            let a = x()?;
            let n = if *real && *inverse {
                shape.last().copied().unwrap_or(0)
            } else {
                a.shape().last().copied().unwrap_or(0)
            };
            ops::fft::fft_axis(&a, -1, *inverse, *real, n, *scale)
        }
        Conv { spec, kind } => {
            arity(prim, inputs, |n| n == 2)?;
            let (a, b) = (&inputs[0], &inputs[1]);
            let spatial = shape.get(1..shape.len().saturating_sub(1)).unwrap_or(&[]);
            match kind {
                ConvKind::Forward => ops::conv::correlate(a, b, spec),
                ConvKind::WeightGrad => ops::conv::correlate_weight_grad(a, b, spatial, spec),
                ConvKind::InputGrad => ops::conv::correlate_input_grad(a, b, spatial, spec),
            }
        }
        Dequantize(s) => {
            arity(prim, inputs, |n| n == 2 || n == 3)?;
            ops::quantized::dequantize(&inputs[0], &inputs[1], inputs.get(2), *s, None)
        }
        QuantizedMatmul { spec, transpose } => {
            arity(prim, inputs, |n| n == 3 || n == 4)?;
            ops::quantized::quantized_matmul(
                &inputs[0],
                &inputs[1],
                &inputs[2],
                inputs.get(3),
                *transpose,
                *spec,
            )
        }
        GatherQmm { spec, transpose } => {
            arity(prim, inputs, |n| n == 5 || n == 6)?;
            let n = inputs.len();
            ops::quantized_gather::gather_qmm(
                &inputs[0],
                &inputs[1],
                &inputs[2],
                if n == 6 { inputs.get(3) } else { None },
                &inputs[n - 2],
                &inputs[n - 1],
                *transpose,
                *spec,
            )
        }
        Custom(c) => {
            // only from a compile trace (a file cannot name one): the node forwards the
            // output `index` among the inputs that follow the primals
            let fwd = c
                .n_primals
                .checked_add(c.index)
                .and_then(|i| inputs.get(i))
                .ok_or_else(|| Error::value(OP, "Malformed custom node."))?;
            Ok(Array::pending(
                fwd.shape().to_vec(),
                fwd.dtype(),
                prim.clone(),
                inputs.to_vec(),
            ))
        }
        UserKernel(_) | Fused(_) => Err(Error::value(
            OP,
            format!("A {} node cannot be imported.", prim.name()),
        )),
    }
}

/// Normalized `(start, count, step)` per axis of a strided window, checked to lie
/// inside `dims` (recorded slice parameters are not trusted).
fn window(
    dims: &[usize],
    start: &[i64],
    count: &[i64],
    step: &[i64],
) -> Result<Vec<(usize, usize, i64)>> {
    let nd = dims.len();
    if start.len() != nd || count.len() != nd || step.len() != nd {
        return Err(Error::value(
            OP,
            "A slice needs a start, count and step per axis.",
        ));
    }
    let mut out = Vec::with_capacity(nd);
    for i in 0..nd {
        let (d, s, n, st) = (
            dims[i] as i128,
            start[i] as i128,
            count[i] as i128,
            step[i] as i128,
        );
        let last = s + st * (n - 1);
        let inside = |v: i128| (0..d).contains(&v);
        if st == 0 || n < 0 || (n > 0 && !(inside(s) && inside(last))) {
            return Err(Error::value(
                OP,
                format!(
                    "Slice of axis {i} (start {s}, count {n}, step {st}) lies outside its length {d}."
                ),
            ));
        }
        out.push(((if n == 0 { 0 } else { s }) as usize, n as usize, step[i]));
    }
    Ok(out)
}

fn rebuild_fast(k: &FastKernel, inputs: &[Array]) -> Result<Array> {
    let n = inputs.len();
    let bad = || {
        Error::value(
            OP,
            format!("Operation {:?} cannot take {n} inputs.", k.name()),
        )
    };
    let at = |i: usize| inputs.get(i).ok_or_else(bad);
    let opt = |present: bool, i: &mut usize| -> Result<Option<&Array>> {
        if present {
            *i += 1;
            at(*i - 1).map(Some)
        } else {
            Ok(None)
        }
    };
    let mut i = 1;
    let out = match k {
        FastKernel::RmsNorm { eps, weight } => {
            let w = opt(*weight, &mut i)?;
            ops::fast::rms_norm(at(0)?, w, *eps)?
        }
        FastKernel::LayerNorm { eps, weight, bias } => {
            let w = opt(*weight, &mut i)?;
            let b = opt(*bias, &mut i)?;
            ops::fast::layer_norm(at(0)?, w, b, *eps)?
        }
        FastKernel::Rope {
            dims,
            traditional,
            base,
            scale,
        } => {
            i = 2;
            let freqs = opt(base.is_none() && n == 3, &mut i)?;
            ops::fast::rope(at(0)?, *dims, *traditional, *base, *scale, at(1)?, freqs)?
        }
        FastKernel::Sdpa { scale, mask, sinks } => {
            i = 3;
            let m = opt(matches!(mask, SdpaMask::Bool | SdpaMask::Additive), &mut i)?;
            let s = opt(*sinks, &mut i)?;
            let arg = match (mask, m) {
                (SdpaMask::None, _) => ops::fast::MaskArg::None,
                (SdpaMask::Causal, _) => ops::fast::MaskArg::Causal,
                (_, Some(m)) => ops::fast::MaskArg::Array(m),
                (_, None) => return Err(bad()),
            };
            ops::fast::scaled_dot_product_attention(at(0)?, at(1)?, at(2)?, *scale, arg, s)?
        }
        FastKernel::CrossEntropy => {
            i = 2;
            ops::fast::cross_entropy(at(0)?, at(1)?)?
        }
        FastKernel::AdamStep { c } => {
            i = 7;
            ops::fast::adam_step(at(0)?, at(1)?, at(2)?, at(3)?, at(4)?, at(5)?, at(6)?, *c)?
        }
    };
    if i != n {
        return Err(bad());
    }
    // the mask kind the op layer derives from the mask's dtype must be the recorded one
    if let (FastKernel::Sdpa { .. }, Some((Primitive::Fast(got), _))) = (k, out.history()) {
        if &got != k {
            return Err(Error::value(
                OP,
                "scaled_dot_product_attention: the mask disagrees with the recorded mask kind.",
            ));
        }
    }
    Ok(out)
}

/// The outputs of `graph` over `inputs`, each step rebuilt through the op layer. With
/// `exact`, the inputs must have the recorded shapes and dtypes and every step must
/// give its recorded shape and dtype. Otherwise (a shapeless trace) inputs keep their
/// recorded ranks and dtypes but may change sizes: every step then derives its shape
/// from its inputs, a broadcast feeding only elementwise ops is left to their own
/// broadcasting, and a step whose shape is a recorded parameter (reshape, slices…)
/// must see its recorded input shapes, or the call is refused.
pub fn build(graph: &Graph, inputs: &[Array], exact: bool) -> Result<Vec<Array>> {
    if inputs.len() != graph.inputs.len() {
        return Err(Error::value(
            OP,
            format!(
                "Expected {} inputs, got {}.",
                graph.inputs.len(),
                inputs.len()
            ),
        ));
    }
    let mut changed = false;
    for (i, (a, (shape, dtype))) in inputs.iter().zip(&graph.inputs).enumerate() {
        let same_shape = a.shape() == shape.as_slice();
        if a.dtype() != *dtype || (exact && !same_shape) || a.ndim() != shape.len() {
            return Err(Error::value(
                OP,
                format!(
                    "Input {i} must be {:?} {dtype}, got {:?} {}.",
                    shape,
                    a.shape(),
                    a.dtype()
                ),
            ));
        }
        changed |= !same_shape;
    }
    let elide = if changed {
        elidable_broadcasts(graph)
    } else {
        vec![false; graph.steps.len()]
    };
    let mut vals: Vec<Array> = Vec::with_capacity(graph.steps.len());
    let get = |r: &GraphRef, vals: &[Array]| -> Result<Array> {
        match r {
            GraphRef::Input(i) => inputs.get(*i),
            GraphRef::Const(i) => graph.consts.get(*i),
            GraphRef::Step(i) => vals.get(*i),
        }
        .cloned()
        .ok_or_else(|| Error::value(OP, "A step refers to a value that does not exist."))
    };
    for (j, s) in graph.steps.iter().enumerate() {
        let ins = s
            .inputs
            .iter()
            .map(|r| get(r, &vals))
            .collect::<Result<Vec<_>>>()?;
        if elide[j] {
            vals.push(
                ins.into_iter()
                    .next()
                    .ok_or_else(|| Error::value(OP, "missing input"))?,
            );
            continue;
        }
        let recorded_inputs = ins
            .iter()
            .zip(&s.inputs)
            .all(|(a, r)| recorded_shape(graph, r).is_some_and(|sh| sh == a.shape()));
        let parameterized = shape_parameterized(&s.prim) || matches!(s.prim, Primitive::Broadcast);
        if changed && !recorded_inputs && matches!(s.prim, Primitive::Reshape) {
            // a reshape that only drops or inserts axes of size 1 (squeeze, expand_dims,
            // a reduction's keepdims=False) follows its input's new sizes
            let (rin, new_in) = (recorded_shape(graph, &s.inputs[0]), ins[0].shape());
            if let Some(target) = rin.and_then(|r| unit_axes_map(r, &s.shape, new_in)) {
                vals.push(ops::reshape(&ins[0], &i64s(&target))?);
                continue;
            }
        }
        if changed && scales_a_sum_by_constant(graph, s) {
            return Err(Error::value(
                "compile",
                format!(
                    "Step {j} ({}) scales a sum by a constant, as mean and var divide by the traced element count, so this shapeless function cannot take inputs of new shapes (compile or export it without shapeless=True).",
                    s.prim.name()
                ),
            ));
        }
        if changed && parameterized && !recorded_inputs {
            return Err(Error::value(
                "compile",
                format!(
                    "Step {j} ({}) depends on the input shapes, so this shapeless function cannot take inputs of new shapes (export or compile it without shapeless=True).",
                    s.prim.name()
                ),
            ));
        }
        let mut out = rebuild(&s.prim, &ins, &s.shape, s.dtype)?;
        let fed_by_elided = s
            .inputs
            .iter()
            .any(|r| matches!(r, GraphRef::Step(k) if elide.get(*k) == Some(&true)));
        if fed_by_elided {
            out = restore_broadcast_axes(out, &s.shape)?;
        }
        let shape_ok = !exact || out.shape() == s.shape.as_slice();
        if out.dtype() != s.dtype || !shape_ok {
            return Err(Error::value(
                OP,
                format!(
                    "Step {j} ({}) gives {:?} {}, but the file records {:?} {}.",
                    s.prim.name(),
                    out.shape(),
                    out.dtype(),
                    s.shape,
                    s.dtype
                ),
            ));
        }
        vals.push(out);
    }
    graph.outputs.iter().map(|r| get(r, &vals)).collect()
}

/// The new output shape of a reshape from `rin` to `rout` (recorded) for an input now
/// of shape `now`, when the reshape only drops or inserts axes of size 1 and the input's
/// size-1 axes are still 1.
fn unit_axes_map(rin: &[usize], rout: &[usize], now: &[usize]) -> Option<Vec<usize>> {
    let kept = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    if kept(rin) != kept(rout) || rin.len() != now.len() {
        return None;
    }
    let mut sizes = Vec::new();
    for (&r, &n) in rin.iter().zip(now) {
        match r {
            1 if n != 1 => return None,
            1 => {}
            _ => sizes.push(n),
        }
    }
    let mut it = sizes.into_iter();
    rout.iter()
        .map(|&d| if d == 1 { Some(1) } else { it.next() })
        .collect()
}

/// A multiply or divide of a sum reduction by a constant: how `mean`, `var` and
/// friends apply the traced element count, which new input shapes would make wrong.
fn scales_a_sum_by_constant(g: &Graph, s: &GraphStep) -> bool {
    use crate::primitive::{BinaryOp, ReduceOp};
    if !matches!(
        s.prim,
        Primitive::Binary(BinaryOp::Multiply | BinaryOp::Divide)
    ) {
        return false;
    }
    let step = |r: &GraphRef| match r {
        GraphRef::Step(k) => g.steps.get(*k),
        _ => None,
    };
    let constant = |r: &GraphRef| match r {
        GraphRef::Const(_) => true,
        GraphRef::Step(_) => step(r).is_some_and(|b| {
            matches!(b.prim, Primitive::Broadcast)
                && matches!(b.inputs.first(), Some(GraphRef::Const(_)))
        }),
        GraphRef::Input(_) => false,
    };
    let sum = |r: &GraphRef| {
        let mut cur = step(r);
        // through a broadcast or reshape (keepdims=False) of the reduction
        for _ in 0..3 {
            match cur {
                Some(st)
                    if matches!(
                        st.prim,
                        Primitive::Reduce {
                            op: ReduceOp::Sum,
                            ..
                        }
                    ) =>
                {
                    return true
                }
                Some(st) if matches!(st.prim, Primitive::Reshape | Primitive::Broadcast) => {
                    cur = st.inputs.first().and_then(step);
                }
                _ => return false,
            }
        }
        false
    };
    match s.inputs.as_slice() {
        [a, b] => (sum(a) && constant(b)) || (constant(a) && sum(b)),
        _ => false,
    }
}

/// Broadcast steps whose every consumer broadcasts its operands itself (binary ops and
/// `where`) and which are not outputs.
fn elidable_broadcasts(g: &Graph) -> Vec<bool> {
    let mut ok: Vec<bool> = g
        .steps
        .iter()
        .map(|s| matches!(s.prim, Primitive::Broadcast))
        .collect();
    let mut mark = |r: &GraphRef| {
        if let GraphRef::Step(k) = r {
            if let Some(v) = ok.get_mut(*k) {
                *v = false;
            }
        }
    };
    for r in &g.outputs {
        mark(r);
    }
    for s in &g.steps {
        if !matches!(s.prim, Primitive::Binary(_) | Primitive::Select) {
            s.inputs.iter().for_each(&mut mark);
        }
    }
    ok
}

/// An elementwise result some of whose operands were left unbroadcast: axes that only
/// the recorded broadcast gave (missing, or 1 where the record is larger) get their
/// recorded size back.
fn restore_broadcast_axes(out: Array, recorded: &[usize]) -> Result<Array> {
    let nd = recorded.len().max(out.ndim());
    let mut target = Vec::with_capacity(nd);
    for i in 0..nd {
        let from_end = |s: &[usize]| {
            (i + s.len())
                .checked_sub(nd)
                .and_then(|k| s.get(k).copied())
                .unwrap_or(1)
        };
        let (got, rec) = (from_end(out.shape()), from_end(recorded));
        target.push(if got == 1 { rec } else { got });
    }
    if target.as_slice() == out.shape() {
        Ok(out)
    } else {
        ops::broadcast_to(&out, &target)
    }
}

/// The shape a reference had when the graph was recorded.
fn recorded_shape<'g>(g: &'g Graph, r: &GraphRef) -> Option<&'g [usize]> {
    match r {
        GraphRef::Input(i) => g.inputs.get(*i).map(|s| s.0.as_slice()),
        GraphRef::Const(i) => g.consts.get(*i).map(|a| a.shape()),
        GraphRef::Step(i) => g.steps.get(*i).map(|s| s.shape.as_slice()),
    }
}
