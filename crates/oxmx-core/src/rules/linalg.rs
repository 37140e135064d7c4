//! Rules for matmul (inputs `(..., M, K)` and `(..., K, N)` with equal batch shapes).

use super::{add, cast_like};
use crate::array::Array;
use crate::error::Result;
use crate::ops;

fn t(x: &Array) -> Result<Array> {
    ops::swapaxes(x, -1, -2)
}

use super::elementwise::conj_complex;

pub fn vjp_matmul(inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let (a, b) = (&inputs[0], &inputs[1]);
    Ok(vec![
        cast_like(ops::matmul(g, &t(&conj_complex(b)?)?)?, a)?,
        cast_like(ops::matmul(&t(&conj_complex(a)?)?, g)?, b)?,
    ])
}

pub fn jvp_matmul(inputs: &[Array], tan: &[Option<Array>]) -> Result<Option<Array>> {
    let (a, b) = (&inputs[0], &inputs[1]);
    let ta = match tan.first().and_then(Option::as_ref) {
        Some(ta) => Some(ops::matmul(ta, b)?),
        None => None,
    };
    let tb = match tan.get(1).and_then(Option::as_ref) {
        Some(tb) => Some(ops::matmul(a, tb)?),
        None => None,
    };
    Ok(match (ta, tb) {
        (Some(x), Some(y)) => Some(add(&x, &y)?),
        (x, y) => x.or(y),
    })
}
