//! Primitives as data: each is an operation name with integer and float parameters
//! ([`encode`]), read back with every parameter checked against fixed tables and ranges
//! ([`decode`]); the node itself is validated when the op layer rebuilds it.

use crate::dtype::{Dtype, ALL_DTYPES};
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::*;

const OP: &str = "import_function";

// The file format's op tables (an op is stored as its index here).
const UNARY: &[UnaryOp] = UnaryOp::ALL;
const BINARY: &[BinaryOp] = BinaryOp::ALL;

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
        NumberOfElements {
            axes,
            inverted,
            ddof,
        } => {
            let mut v = vec![flag(*inverted), *ddof];
            v.extend(u(axes));
            ("number_of_elements".into(), v, vec![])
        }
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
        Reshape { infer } => (
            "reshape".into(),
            infer.iter().map(|&p| p as i64).collect(),
            vec![],
        ),
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
            FastKernel::SdpaGrad { scale, causal } => {
                ("fast.sdpa_grad".into(), vec![flag(*causal)], vec![*scale])
            }
            FastKernel::CrossEntropy => ("fast.cross_entropy".into(), vec![], vec![]),
            FastKernel::CrossEntropyGrad => ("fast.cross_entropy_grad".into(), vec![], vec![]),
            FastKernel::NormGrad {
                eps,
                rms,
                weight,
                bias,
            } => (
                "fast.norm_grad".into(),
                vec![flag(*rms), flag(*weight), flag(*bias)],
                vec![*eps],
            ),
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
        UserKernel(_) | Custom(_) | Fused(_) | Collective { .. } => {
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
        "reshape" => {
            // older files carry no parameter (no axis to infer)
            let infer = match p.ints.len() {
                0 => None,
                _ => {
                    p.counts(1, 0)?;
                    Some(p.index(p.int(0)?)?)
                }
            };
            p.counts(usize::from(infer.is_some()), 0)?;
            Primitive::Reshape { infer }
        }
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
        "number_of_elements" => {
            p.counts(n.max(2), 0)?;
            Primitive::NumberOfElements {
                inverted: p.flag(0)?,
                ddof: p.int(1)?,
                axes: p.indices(2, n - 2)?,
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
        "fast.sdpa_grad" => {
            p.counts(1, 1)?;
            Primitive::Fast(FastKernel::SdpaGrad {
                scale: p.float(0)?,
                causal: p.flag(0)?,
            })
        }
        "fast.cross_entropy" => none(Primitive::Fast(FastKernel::CrossEntropy))?,
        "fast.cross_entropy_grad" => none(Primitive::Fast(FastKernel::CrossEntropyGrad))?,
        "fast.norm_grad" => {
            p.counts(3, 1)?;
            Primitive::Fast(FastKernel::NormGrad {
                eps: p.float(0)?,
                rms: p.flag(0)?,
                weight: p.flag(1)?,
                bias: p.flag(2)?,
            })
        }
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
