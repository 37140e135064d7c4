//! A graph made arrays again: [`rebuild`] makes each step through the op layer (the
//! checks of a user's call), [`build`] runs a whole graph and compares every step with
//! what was recorded, and rebuilds shapeless traces for new input sizes.

use super::export::{Graph, GraphRef, GraphStep};
use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::*;

const OP: &str = "import_function";

pub(super) fn i64s(v: &[usize]) -> Vec<i64> {
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
        Reshape { .. }
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
        NumberOfElements {
            axes,
            inverted,
            ddof,
        } => {
            one(true)?;
            ops::number_of_elements(&x()?, axes, *inverted, *ddof, dtype)
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
        Reshape { .. } => {
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
        UserKernel(_) | Fused(_) | Collective { .. } => Err(Error::value(
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
        FastKernel::SdpaGrad { scale, causal } => {
            i = 5;
            ops::fast::sdpa_grad(at(0)?, at(1)?, at(2)?, at(3)?, at(4)?, *scale, *causal)?
        }
        FastKernel::CrossEntropy => {
            i = 2;
            ops::fast::cross_entropy(at(0)?, at(1)?)?
        }
        FastKernel::CrossEntropyGrad => {
            i = 3;
            ops::fast::cross_entropy_grad(at(0)?, at(1)?, at(2)?)?
        }
        FastKernel::NormGrad {
            eps,
            rms,
            weight,
            bias,
        } => {
            let w = opt(*weight, &mut i)?;
            i += 1;
            ops::fast::norm_grad(at(0)?, w, at(i - 1)?, *eps, *rms, *bias)?
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
        if changed && !recorded_inputs && matches!(s.prim, Primitive::Reshape { .. }) {
            // a reshape that only drops or inserts axes of size 1 (squeeze, expand_dims,
            // a reduction's keepdims=False) follows its input's new sizes
            let (rin, new_in) = (recorded_shape(graph, &s.inputs[0]), ins[0].shape());
            let target = rin.and_then(|r| {
                unit_axes_map(r, &s.shape, new_in).or_else(|| merged_axes_map(r, &s.shape, new_in))
            });
            if let Some(target) = target {
                vals.push(ops::reshape(&ins[0], &i64s(&target))?);
                continue;
            }
            // MLX's rule for the rest: the axis the caller wrote as -1 is inferred again,
            // the other recorded sizes stay (`x.reshape(2, -1)` splits any even size)
            if let Primitive::Reshape { infer: Some(p) } = s.prim {
                let mut target = i64s(&s.shape);
                if let Some(d) = target.get_mut(p) {
                    *d = -1;
                    vals.push(ops::reshape(&ins[0], &target)?);
                    continue;
                }
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
            // the recorded shapes of what was fed: an elided broadcast's own input
            let fed: Vec<&[usize]> = s
                .inputs
                .iter()
                .filter_map(|r| match r {
                    GraphRef::Step(k) if elide.get(*k) == Some(&true) => graph
                        .steps
                        .get(*k)
                        .and_then(|b| b.inputs.first())
                        .and_then(|r| recorded_shape(graph, r)),
                    _ => recorded_shape(graph, r),
                })
                .collect();
            out = restore_broadcast_axes(out, &s.shape, &fed)?;
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

/// For a reshape that merges runs of neighbouring axes (`flatten`, `reshape(-1)`,
/// `reshape(-1, C)`): the recorded input `rin` split into consecutive groups whose
/// sizes multiply to the recorded output dims, applied to the new input `now`. `None`
/// when the reshape also splits an axis, involves an empty axis, or moves an axis that
/// was traced with size 1 (whose group would be ambiguous).
fn merged_axes_map(rin: &[usize], rout: &[usize], now: &[usize]) -> Option<Vec<usize>> {
    if rin.len() != now.len() || rin.contains(&0) || rout.contains(&0) {
        return None;
    }
    if rin.iter().zip(now).any(|(&r, &n)| r == 1 && n != 1) {
        return None;
    }
    let mut target = Vec::with_capacity(rout.len());
    let mut i = 0;
    for &d in rout {
        let (mut traced, mut size) = (1usize, 1usize);
        while traced < d {
            let (&r, &n) = (rin.get(i)?, now.get(i)?);
            traced = traced.checked_mul(r)?;
            size = size.checked_mul(n)?;
            i += 1;
        }
        if traced != d {
            return None;
        }
        // axes of size 1 (unchanged, checked above) go with the group before them
        while rin.get(i) == Some(&1) {
            i += 1;
        }
        target.push(size);
    }
    (i == rin.len()).then_some(target)
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
                Some(st) if matches!(st.prim, Primitive::Reshape { .. } | Primitive::Broadcast) => {
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
/// the recorded broadcast gave (missing, or 1 where the record is larger, and no operand
/// as fed had that size there when recorded) get their recorded size back. An axis an
/// operand had at the recorded size follows that operand's new size (1 included).
fn restore_broadcast_axes(out: Array, recorded: &[usize], fed: &[&[usize]]) -> Result<Array> {
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
        let followed = fed.iter().any(|s| from_end(s) == rec);
        target.push(if got == 1 && !followed { rec } else { got });
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
