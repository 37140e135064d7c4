//! Convolution nodes (`Primitive::Conv`): the cross-correlation of channels-last arrays
//! (MLX's layout) with symmetric zero padding, and its input and weight gradients. `oxmx.core.conv_general`
//! builds every convolution from these (padding, input dilation and flips around them)
//! and gives them their transforms in Python.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::{ConvKind, ConvSpec, Primitive};

const OP: &str = "conv";

impl ConvSpec {
    /// Output length of each spatial axis for inputs of `spatial` and a kernel of
    /// `kernel` (None where the dilated kernel is longer than the padded input).
    pub fn out_sizes(&self, spatial: &[usize], kernel: &[usize]) -> Option<Vec<usize>> {
        spatial
            .iter()
            .zip(kernel)
            .zip(self.strides.iter().zip(&self.dilation))
            .zip(&self.padding)
            .map(|(((&s, &k), (&st, &d)), &p)| {
                let span = k.checked_sub(1)?.checked_mul(d)?.checked_add(1)?;
                let padded = p.checked_mul(2)?.checked_add(s)?;
                Some(padded.checked_sub(span)? / st + 1)
            })
            .collect()
    }

    fn check(&self, nd: usize) -> Result<()> {
        if self.strides.len() != nd || self.dilation.len() != nd || self.padding.len() != nd {
            return Err(Error::value(
                OP,
                format!(
                    "{nd} spatial dimensions need {nd} strides, dilations and paddings, got {:?}, {:?} and {:?}.",
                    self.strides, self.dilation, self.padding
                ),
            ));
        }
        if self.strides.contains(&0) || self.dilation.contains(&0) || self.groups == 0 {
            return Err(Error::value(
                OP,
                "Strides, dilations and groups must be positive.",
            ));
        }
        Ok(())
    }
}

fn check_pair(a: &Array, b: &Array) -> Result<()> {
    if a.ndim() < 3 || a.ndim() != b.ndim() {
        return Err(Error::value(
            OP,
            format!(
                "Both operands need the same rank of at least 3 (batch, spatial..., channels); got {:?} and {:?}.",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let ok = matches!(
        a.dtype(),
        Dtype::Float32 | Dtype::Float64 | Dtype::Float16 | Dtype::Bfloat16
    );
    if !ok || a.dtype() != b.dtype() {
        return Err(Error::value(
            OP,
            format!(
                "Both operands need one real floating dtype; got {} and {}.",
                a.dtype(),
                b.dtype()
            ),
        ));
    }
    Ok(())
}

/// `x` (N, *S, C), zero-padded, correlated with `w` (O, *K, C / groups): (N, *out, O).
pub fn correlate(x: &Array, w: &Array, spec: &ConvSpec) -> Result<Array> {
    check_pair(x, w)?;
    let nd = x.ndim() - 2;
    spec.check(nd)?;
    let (xs, ws) = (x.shape(), w.shape());
    let (c, o, cg) = (xs[nd + 1], ws[0], ws[nd + 1]);
    if cg.checked_mul(spec.groups) != Some(c) || o % spec.groups != 0 {
        return Err(Error::value(
            OP,
            format!(
                "Input {xs:?} and weight {ws:?} do not fit {} groups (channels = groups x weight channels; output channels divisible by groups).",
                spec.groups
            ),
        ));
    }
    let out = spec.out_sizes(&xs[1..=nd], &ws[1..=nd]).ok_or_else(|| {
        Error::value(
            OP,
            format!("The dilated kernel {ws:?} is larger than the input {xs:?}."),
        )
    })?;
    let mut shape = vec![xs[0]];
    shape.extend(out);
    shape.push(o);
    Ok(Array::pending(
        shape,
        x.dtype(),
        Primitive::Conv {
            spec: spec.clone(),
            kind: ConvKind::Forward,
        },
        vec![x.clone(), w.clone()],
    ))
}

/// The gradient of `correlate(x, w)` with respect to `w` (spatial shape `kernel`, `o`
/// output channels) for the cotangent `g` (N, *out, O): (O, *kernel, C / groups).
pub fn correlate_weight_grad(
    x: &Array,
    g: &Array,
    kernel: &[usize],
    spec: &ConvSpec,
) -> Result<Array> {
    check_pair(x, g)?;
    let nd = x.ndim() - 2;
    spec.check(nd)?;
    let (xs, gs) = (x.shape(), g.shape());
    let (c, o) = (xs[nd + 1], gs[nd + 1]);
    let want = spec.out_sizes(&xs[1..=nd], kernel);
    let fits = kernel.len() == nd
        && !kernel.contains(&0)
        && c % spec.groups == 0
        && o % spec.groups == 0
        && gs[0] == xs[0]
        && want.as_deref() == Some(&gs[1..=nd]);
    if !fits {
        return Err(Error::value(
            OP,
            format!(
                "The cotangent {gs:?} is not the output of input {xs:?} with a kernel {kernel:?} in {} groups.",
                spec.groups
            ),
        ));
    }
    let mut shape = vec![o];
    shape.extend_from_slice(kernel);
    shape.push(c / spec.groups);
    Ok(Array::pending(
        shape,
        x.dtype(),
        Primitive::Conv {
            spec: spec.clone(),
            kind: ConvKind::WeightGrad,
        },
        vec![x.clone(), g.clone()],
    ))
}

/// The gradient of `correlate(x, w)` with respect to `x` (spatial shape `spatial`, `c`
/// channels) for the cotangent `g` (N, *out, O): (N, *spatial, C), a transposed
/// correlation that scatters every output's window back.
pub fn correlate_input_grad(
    g: &Array,
    w: &Array,
    spatial: &[usize],
    spec: &ConvSpec,
) -> Result<Array> {
    check_pair(g, w)?;
    let nd = g.ndim() - 2;
    spec.check(nd)?;
    let (gs, ws) = (g.shape(), w.shape());
    let (o, cg) = (ws[0], ws[nd + 1]);
    let want = spec.out_sizes(spatial, &ws[1..=nd]);
    let fits = spatial.len() == nd
        && gs[nd + 1] == o
        && o % spec.groups == 0
        && want.as_deref() == Some(&gs[1..=nd]);
    let c = cg.checked_mul(spec.groups);
    let c = match (fits, c) {
        (true, Some(c)) => c,
        _ => {
            return Err(Error::value(
                OP,
                format!(
                    "The cotangent {gs:?} is not the output of an input of spatial shape {spatial:?} with weight {ws:?} in {} groups.",
                    spec.groups
                ),
            ))
        }
    };
    let mut shape = vec![gs[0]];
    shape.extend_from_slice(spatial);
    shape.push(c);
    Ok(Array::pending(
        shape,
        g.dtype(),
        Primitive::Conv {
            spec: spec.clone(),
            kind: ConvKind::InputGrad,
        },
        vec![g.clone(), w.clone()],
    ))
}
