//! Shapes and strides with checked arithmetic.

use crate::error::{Error, Result};

pub type Shape = Vec<usize>;
pub type Strides = Vec<isize>;

/// Largest total element count or byte size we accept (keeps every offset in `isize`).
pub const MAX_SIZE: usize = isize::MAX as usize / 16;

/// Number of elements, checked.
pub fn checked_size(op: &str, shape: &[usize]) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        n = n.checked_mul(d).ok_or_else(|| Error::overflow(op))?;
    }
    if n > MAX_SIZE {
        return Err(Error::overflow(op));
    }
    Ok(n)
}

/// Total elements of a shape already known valid (all shapes in arrays are validated).
pub fn size_of(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

/// Row-major strides of a valid shape.
pub fn contiguous_strides(shape: &[usize]) -> Strides {
    let mut strides = vec![0isize; shape.len()];
    let mut acc: isize = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc = acc.saturating_mul(shape[i].max(1) as isize);
    }
    strides
}

/// Strides that give `new_shape` as a view of an array of `shape` and `strides` with the
/// same elements in the same row-major order, when such a view exists (NumPy's rule for a
/// reshape without a copy): each group of old axes that merges into or splits into new
/// axes must itself step evenly. None when the data would have to be copied (or a
/// stride would overflow). Sizes must already agree.
pub fn reshaped_strides(
    shape: &[usize],
    strides: &[isize],
    new_shape: &[usize],
) -> Option<Strides> {
    if shape.contains(&0) || new_shape.contains(&0) {
        return Some(contiguous_strides(new_shape));
    }
    // axes of length 1 carry no stride information
    let old: Vec<(usize, isize)> = shape
        .iter()
        .zip(strides)
        .filter(|(&d, _)| d != 1)
        .map(|(&d, &s)| (d, s))
        .collect();
    let mut out = vec![0isize; new_shape.len()];
    let (mut oi, mut ni) = (0usize, 0usize);
    while oi < old.len() && ni < new_shape.len() {
        // the smallest run of old axes [oi, oj) and new axes [ni, nj) of equal size
        let (mut oj, mut nj) = (oi + 1, ni + 1);
        let mut op = old.get(oi)?.0;
        let mut np = *new_shape.get(ni)?;
        while op != np {
            if np < op {
                np = np.checked_mul(*new_shape.get(nj)?)?;
                nj += 1;
            } else {
                op = op.checked_mul(old.get(oj)?.0)?;
                oj += 1;
            }
        }
        // the old run must step evenly (each axis's stride = the next's times its length)
        for k in oi..oj - 1 {
            let (_, s) = *old.get(k)?;
            let (d1, s1) = *old.get(k + 1)?;
            if s != s1.checked_mul(isize::try_from(d1).ok()?)? {
                return None;
            }
        }
        // the new run steps as the old run's last axis does, row-major above it
        let mut st = old.get(oj - 1)?.1;
        for k in (ni..nj).rev() {
            *out.get_mut(k)? = st;
            st = st.checked_mul(isize::try_from(*new_shape.get(k)?).ok()?)?;
        }
        oi = oj;
        ni = nj;
    }
    // trailing new axes (of length 1) take any stride: the last one's, as NumPy
    let last = if ni > 0 { *out.get(ni - 1)? } else { 1 };
    for s in out.iter_mut().skip(ni) {
        *s = last;
    }
    Some(out)
}

/// Normalize a possibly negative axis against `ndim`.
pub fn normalize_axis(op: &str, axis: i64, ndim: usize) -> Result<usize> {
    let n = ndim as i64;
    let a = if axis < 0 { axis + n } else { axis };
    if a < 0 || a >= n {
        return Err(Error::axis(
            op,
            format!("Axis {axis} is out of bounds for array with {ndim} dimensions."),
        ));
    }
    Ok(a as usize)
}

/// Normalize a list of axes; rejects duplicates.
pub fn normalize_axes(op: &str, axes: &[i64], ndim: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = normalize_axis(op, a, ndim)?;
        if out.contains(&n) {
            return Err(Error::value(op, format!("Received duplicate axis {a}.")));
        }
        out.push(n);
    }
    Ok(out)
}

/// NumPy broadcasting of two shapes.
pub fn broadcast_shapes(op: &str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let n = a.len().max(b.len());
    let mut out = vec![0usize; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return Err(Error::value(
                op,
                format!(
                    "Shapes {} and {} cannot be broadcast.",
                    fmt_shape(a),
                    fmt_shape(b)
                ),
            ));
        };
    }
    Ok(out)
}

pub fn broadcast_many(op: &str, shapes: &[&[usize]]) -> Result<Shape> {
    let mut out: Shape = Vec::new();
    for s in shapes {
        out = broadcast_shapes(op, &out, s)?;
    }
    Ok(out)
}

/// `(1, 2, 3)` style.
pub fn fmt_shape(s: &[usize]) -> String {
    if s.len() == 1 {
        return format!("({},)", s[0]);
    }
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("({})", parts.join(", "))
}

/// Validate dims coming from a user (signed) into a shape.
pub fn shape_from_i64(op: &str, dims: &[i64]) -> Result<Shape> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        if d < 0 {
            return Err(Error::value(
                op,
                format!("Negative dimensions are not allowed: {d}."),
            ));
        }
        out.push(usize::try_from(d).map_err(|_| Error::overflow(op))?);
    }
    checked_size(op, &out)?;
    Ok(out)
}

/// Whether (shape, strides) is row-major contiguous (size-1 dims ignored).
pub fn is_row_contiguous(shape: &[usize], strides: &[isize]) -> bool {
    let mut expected: isize = 1;
    for i in (0..shape.len()).rev() {
        if shape[i] == 1 {
            continue;
        }
        if strides[i] != expected {
            return false;
        }
        expected = expected.saturating_mul(shape[i] as isize);
    }
    true
}

/// Merge adjacent dims that are contiguous with each other in every stride set, drop
/// size-1 dims. Returns the collapsed shape and one strides vector per input.
pub fn collapse_dims(shape: &[usize], strides: &[&[isize]]) -> (Shape, Vec<Strides>) {
    let mut out_shape: Shape = Vec::new();
    let mut out_strides: Vec<Strides> = vec![Vec::new(); strides.len()];
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let Some(&last) = out_shape.last() {
            let k = out_shape.len() - 1;
            let mergeable = strides
                .iter()
                .zip(out_strides.iter())
                .all(|(s, os)| os[k] == s[i].saturating_mul(shape[i] as isize));
            if mergeable {
                out_shape[k] = last * shape[i];
                for (s, os) in strides.iter().zip(out_strides.iter_mut()) {
                    os[k] = s[i];
                }
                continue;
            }
        }
        out_shape.push(shape[i]);
        for (s, os) in strides.iter().zip(out_strides.iter_mut()) {
            os.push(s[i]);
        }
    }
    (out_shape, out_strides)
}

#[cfg(test)]
mod reshape_tests {
    use super::{contiguous_strides, reshaped_strides};

    #[test]
    fn views_where_numpy_makes_them() {
        // padded rows: leading axes merge, the row stays
        assert_eq!(
            reshaped_strides(&[8, 4, 5], &[32, 8, 1], &[32, 5]),
            Some(vec![8, 1])
        );
        assert_eq!(
            reshaped_strides(&[32, 5], &[8, 1], &[4, 8, 5]),
            Some(vec![64, 8, 1])
        );
        // a padded row cannot merge with the next
        assert_eq!(reshaped_strides(&[4, 5], &[8, 1], &[20]), None);
        // a transposed matrix splits along an axis, never flattens
        assert_eq!(
            reshaped_strides(&[3, 4], &[1, 3], &[3, 2, 2]),
            Some(vec![1, 6, 3])
        );
        assert_eq!(reshaped_strides(&[3, 4], &[1, 3], &[12]), None);
        // axes of length 1 anywhere, broadcasts, empty arrays
        assert_eq!(
            reshaped_strides(&[1, 6, 1], &[99, 2, 7], &[2, 1, 3]),
            Some(vec![6, 6, 2])
        );
        assert_eq!(
            reshaped_strides(&[4, 5], &[0, 1], &[2, 2, 5]),
            Some(vec![0, 0, 1])
        );
        assert_eq!(reshaped_strides(&[4, 5], &[0, 1], &[20]), None);
        assert_eq!(
            reshaped_strides(&[0, 3], &[5, 1], &[3, 0]),
            Some(contiguous_strides(&[3, 0]))
        );
        assert_eq!(reshaped_strides(&[1, 1], &[3, 9], &[1]), Some(vec![1]));
    }
}
