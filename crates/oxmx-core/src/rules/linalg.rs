//! Rules for matmul (inputs `(..., M, K)` and `(..., K, N)` with equal batch shapes).

use super::{add, cast_like};
use crate::array::Array;
use crate::error::Result;
use crate::ops;

fn t(x: &Array) -> Result<Array> {
    ops::swapaxes(x, -1, -2)
}

use super::elementwise::conj_complex;

/// Whether `x` is a pending swap of its last two axes (`w.T` in `x @ w.T`).
fn is_matrix_transpose(x: &Array) -> bool {
    let Some((crate::primitive::Primitive::Transpose { perm }, _)) = x.history() else {
        return false;
    };
    let n = perm.len();
    n >= 2
        && perm.iter().take(n - 2).enumerate().all(|(i, &p)| p == i)
        && perm.get(n - 2) == Some(&(n - 1))
        && perm.get(n - 1) == Some(&(n - 2))
}

/// `da = g b^H`, `db = a^H g`. An operand that is itself a transpose (a linear layer's
/// `w.T`) gets its gradient computed transposed, `(b g^H)^H` / `(g^H a)^H`: the
/// transpose's own rule then undoes the swap and the weight's gradient comes out
/// contiguous in the weight's layout, not as a strided view every consumer (the
/// optimizer's update, a sum with a tied embedding's gradient) must copy or walk.
pub fn vjp_matmul(inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let (a, b) = (&inputs[0], &inputs[1]);
    let da = if is_matrix_transpose(a) {
        t(&ops::matmul(&conj_complex(b)?, &t(g)?)?)?
    } else {
        ops::matmul(g, &t(&conj_complex(b)?)?)?
    };
    let db = if is_matrix_transpose(b) {
        t(&ops::matmul(&t(g)?, &conj_complex(a)?)?)?
    } else {
        ops::matmul(&t(&conj_complex(a)?)?, g)?
    };
    Ok(vec![cast_like(da, a)?, cast_like(db, b)?])
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
