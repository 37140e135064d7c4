//! NumPy indexing for `__getitem__`/`__setitem__`/`.at[]`: ints, slices (any step),
//! `None`, `Ellipsis`, integer arrays (advanced indexing with NumPy's placement rule)
//! and boolean masks (data-dependent: they evaluate the mask).

use crate::convert::{self, as_array_opt};
use crate::errors::{type_err, IntoPyResult};
use oxmx::primitive::ScatterMode;
use oxmx::{ops, Array, Dtype, Scalar};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyEllipsis, PyInt, PyList, PySlice, PyTuple};

enum Item {
    Int(i64),
    Slice(Option<i64>, Option<i64>, i64),
    NewAxis,
    Ellipsis,
    /// Integer index array.
    Arr(Array),
    /// Boolean mask consuming `ndim` axes.
    Mask(Array),
}

fn opt_i64(o: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if o.is_none() {
        return Ok(None);
    }
    if let Some(a) = as_array_opt(o)? {
        let v = convert::array_scalars(&a)?;
        return match v.first() {
            Some(Scalar::Int(i)) if v.len() == 1 => Ok(Some(*i)),
            _ => Err(type_err("slice", "Slice indices must be integers or None.")),
        };
    }
    o.extract::<i64>()
        .map(Some)
        .map_err(|_| type_err("slice", "Slice indices must be integers or None."))
}

fn parse_one(o: &Bound<'_, PyAny>) -> PyResult<Item> {
    if o.is_none() {
        return Ok(Item::NewAxis);
    }
    if o.is_instance_of::<PyEllipsis>() {
        return Ok(Item::Ellipsis);
    }
    if o.is_instance_of::<PyBool>() {
        let a = ops::scalar(Scalar::Bool(o.extract()?), Dtype::Bool).py()?;
        return Ok(Item::Mask(a));
    }
    if o.is_instance_of::<PyInt>() {
        return Ok(Item::Int(o.extract::<i64>().map_err(|_| {
            PyIndexError::new_err("[getitem] Index out of range.")
        })?));
    }
    if let Ok(s) = o.downcast::<PySlice>() {
        let start = opt_i64(&s.getattr("start")?)?;
        let stop = opt_i64(&s.getattr("stop")?)?;
        let step = opt_i64(&s.getattr("step")?)?.unwrap_or(1);
        if step == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "[getitem] Slice step cannot be zero.",
            ));
        }
        return Ok(Item::Slice(start, stop, step));
    }
    let arr = if let Some(a) = as_array_opt(o)? {
        a
    } else if o.is_instance_of::<PyList>() || o.hasattr("__array_interface__").unwrap_or(false) {
        convert::to_array(o, None)?
    } else if let Ok(i) = o.call_method0("__index__") {
        return Ok(Item::Int(i.extract::<i64>()?));
    } else {
        return Err(type_err(
            "getitem",
            format!("Cannot index an array with {}.", o.get_type().name()?),
        ));
    };
    match arr.dtype() {
        Dtype::Bool => Ok(Item::Mask(arr)),
        d if d.is_integer() => Ok(Item::Arr(arr)),
        _ => Err(PyIndexError::new_err(
            "[getitem] Arrays used as indices must be of integer (or boolean) type.",
        )),
    }
}

fn parse(idx: &Bound<'_, PyAny>) -> PyResult<Vec<Item>> {
    if let Ok(t) = idx.downcast::<PyTuple>() {
        return t.iter().map(|o| parse_one(&o)).collect();
    }
    Ok(vec![parse_one(idx)?])
}

/// Integer index arrays for the `True` positions of a mask (evaluates it).
fn mask_to_indices(mask: &Array) -> PyResult<Vec<Array>> {
    let vals = convert::host_bytes(mask)?;
    let shape = mask.shape().to_vec();
    let nd = shape.len().max(1);
    let mut cols: Vec<Vec<i64>> = vec![Vec::new(); nd];
    let strides = oxmx::shape::contiguous_strides(&shape);
    for (flat, &b) in vals.iter().enumerate() {
        if b != 0 {
            let mut r = flat as isize;
            for d in 0..shape.len() {
                let s = strides[d].max(1);
                cols[d].push((r / s) as i64);
                r %= s;
            }
            if shape.is_empty() {
                cols[0].push(0);
            }
        }
    }
    cols.into_iter()
        .map(|c| {
            let n = c.len();
            ops::from_slice(&c, vec![n], Dtype::Int64).py()
        })
        .collect()
}

/// Index resolved against a shape: the source (with `None` axes inserted), per-axis
/// basic params, and the advanced index arrays with their axes.
struct Plan {
    src: Array,
    params: Vec<(usize, usize, i64)>,
    /// axes indexed by an integer (dropped from the result) in basic indexing
    int_axes: Vec<usize>,
    adv: Vec<(usize, Array)>,
    /// whether the advanced indices are adjacent in the index expression
    adv_adjacent: bool,
}

fn plan(a: &Array, idx: &Bound<'_, PyAny>) -> PyResult<Plan> {
    let mut items = parse(idx)?;
    // boolean masks → integer arrays; a 0-d mask acts like a new axis of size 0/1
    let mut expanded: Vec<Item> = Vec::with_capacity(items.len());
    let n_items = items.len();
    for it in items.drain(..) {
        match it {
            Item::Mask(m) if m.ndim() == 0 => {
                if n_items != 1 {
                    return Err(PyIndexError::new_err(
                        "[getitem] A scalar boolean index must be the only index.",
                    ));
                }
                let keep = convert::array_scalars(&m)?
                    .first()
                    .map(|s| matches!(s, Scalar::Bool(true)))
                    .unwrap_or(false);
                return plan_mask0(a, keep);
            }
            Item::Mask(m) => {
                let pos = expanded
                    .iter()
                    .filter(|i| !matches!(i, Item::NewAxis))
                    .count();
                let no_ellipsis = !expanded.iter().any(|i| matches!(i, Item::Ellipsis));
                let dims = a.shape().get(pos..pos + m.ndim());
                if no_ellipsis && dims != Some(m.shape()) {
                    return Err(PyIndexError::new_err(format!(
                        "[getitem] Boolean index of shape {:?} does not match the indexed dimensions {:?}.",
                        m.shape(),
                        dims.unwrap_or(&[])
                    )));
                }
                for ix in mask_to_indices(&m)? {
                    expanded.push(Item::Arr(ix));
                }
                // mark the extra axes the mask consumed (one per mask dim)
            }
            other => expanded.push(other),
        }
    }
    let items = expanded;
    let n_ell = items.iter().filter(|i| matches!(i, Item::Ellipsis)).count();
    if n_ell > 1 {
        return Err(PyIndexError::new_err(
            "[getitem] An index can only have a single ellipsis ('...').",
        ));
    }
    let consumed = items
        .iter()
        .filter(|i| !matches!(i, Item::NewAxis | Item::Ellipsis))
        .count();
    if consumed > a.ndim() {
        return Err(PyIndexError::new_err(format!(
            "[getitem] Too many indices for array: array is {}-dimensional, but {} were indexed.",
            a.ndim(),
            consumed
        )));
    }
    // Full list: replace the ellipsis (or append) with full slices.
    let mut full: Vec<Item> = Vec::with_capacity(a.ndim() + items.len());
    let fill = a.ndim() - consumed;
    let mut seen_ell = false;
    for it in items {
        if matches!(it, Item::Ellipsis) {
            for _ in 0..fill {
                full.push(Item::Slice(None, None, 1));
            }
            seen_ell = true;
        } else {
            full.push(it);
        }
    }
    if !seen_ell {
        for _ in 0..fill {
            full.push(Item::Slice(None, None, 1));
        }
    }
    // Insert None axes into the source so every item consumes exactly one axis.
    let mut src_shape: Vec<i64> = Vec::new();
    let mut d = 0usize;
    for it in &full {
        if matches!(it, Item::NewAxis) {
            src_shape.push(1);
        } else {
            src_shape.push(a.shape()[d] as i64);
            d += 1;
        }
    }
    let src = ops::reshape(a, &src_shape).py()?;
    let has_adv = full.iter().any(|i| matches!(i, Item::Arr(_)));
    let mut params = Vec::with_capacity(full.len());
    let mut int_axes = Vec::new();
    let mut adv = Vec::new();
    let mut adv_positions = Vec::new();
    for (ax, it) in full.into_iter().enumerate() {
        let dim = src.shape()[ax];
        match it {
            Item::Int(i) => {
                let n = dim as i64;
                let j = if i < 0 { i + n } else { i };
                if j < 0 || j >= n {
                    return Err(PyIndexError::new_err(format!(
                        "[getitem] Index {i} is out of bounds for axis {ax} with size {dim}."
                    )));
                }
                if has_adv {
                    params.push((0, dim, 1));
                    adv.push((ax, ops::scalar(Scalar::Int(j), Dtype::Int64).py()?));
                    adv_positions.push(ax);
                } else {
                    params.push((j as usize, 1, 1));
                    int_axes.push(ax);
                }
            }
            Item::Slice(s, e, st) => params.push(ops::slice_params(dim, s, e, st).py()?),
            Item::NewAxis => params.push((0, 1, 1)),
            Item::Arr(x) => {
                params.push((0, dim, 1));
                adv.push((ax, x));
                adv_positions.push(ax);
            }
            Item::Ellipsis | Item::Mask(_) => params.push((0, dim, 1)),
        }
    }
    let adv_adjacent = adv_positions.windows(2).all(|w| w[1] == w[0] + 1);
    Ok(Plan {
        src,
        params,
        int_axes,
        adv,
        adv_adjacent,
    })
}

/// `a[True]` / `a[False]`: a new leading axis of size 1 or 0.
fn plan_mask0(a: &Array, keep: bool) -> PyResult<Plan> {
    let mut shape: Vec<i64> = vec![1];
    shape.extend(a.shape().iter().map(|&d| d as i64));
    let src = ops::reshape(a, &shape).py()?;
    let mut params = vec![(0usize, keep as usize, 1i64)];
    params.extend(a.shape().iter().map(|&d| (0usize, d, 1i64)));
    Ok(Plan {
        src,
        params,
        int_axes: vec![],
        adv: vec![],
        adv_adjacent: true,
    })
}

fn apply(p: &Plan) -> PyResult<Array> {
    let v = ops::slice_view(&p.src, &p.params).py()?;
    if p.adv.is_empty() {
        let out: Vec<i64> = v
            .shape()
            .iter()
            .enumerate()
            .filter(|(i, _)| !p.int_axes.contains(i))
            .map(|(_, &d)| d as i64)
            .collect();
        return ops::reshape(&v, &out).py();
    }
    let axes: Vec<usize> = p.adv.iter().map(|(a, _)| *a).collect();
    let idx: Vec<Array> = p.adv.iter().map(|(_, x)| x.clone()).collect();
    let g = ops::gather(&v, &idx, &axes).py()?;
    // gather puts the broadcast index dims first; NumPy keeps them in place when the
    // advanced indices are adjacent.
    let first = axes[0];
    if !p.adv_adjacent || first == 0 {
        return Ok(g);
    }
    let k = g.ndim() - (v.ndim() - axes.len());
    let mut perm: Vec<i64> = Vec::with_capacity(g.ndim());
    perm.extend((k..k + first).map(|x| x as i64));
    perm.extend((0..k).map(|x| x as i64));
    perm.extend((k + first..g.ndim()).map(|x| x as i64));
    ops::transpose(&g, Some(&perm)).py()
}

pub fn getitem(a: &Array, idx: &Bound<'_, PyAny>) -> PyResult<Array> {
    let p = plan(a, idx)?;
    apply(&p)
}

/// The array after `a[idx] (op)= val`.
pub fn setitem(
    a: &Array,
    idx: &Bound<'_, PyAny>,
    val: &Array,
    mode: ScatterMode,
) -> PyResult<Array> {
    let p = plan(a, idx)?;
    if p.adv.is_empty() && mode == ScatterMode::Set {
        // basic indexing: write the window directly
        let win: Vec<usize> = p.params.iter().map(|q| q.1).collect();
        let result_shape: Vec<usize> = win
            .iter()
            .enumerate()
            .filter(|(i, _)| !p.int_axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        let v = ops::broadcast_to(&ops::astype(val, a.dtype()).py()?, &result_shape).py()?;
        let v = ops::reshape(&v, &win.iter().map(|&d| d as i64).collect::<Vec<_>>()).py()?;
        let upd = ops::slice_update_params(&p.src, &v, &p.params).py()?;
        return ops::reshape(
            &upd,
            &a.shape().iter().map(|&d| d as i64).collect::<Vec<_>>(),
        )
        .py();
    }
    // General case: index a grid of flat positions the same way, then scatter.
    let n = a.size();
    let pos = ops::arange(0.0, n as f64, 1.0, Dtype::Int64).py()?;
    let pos = ops::reshape(
        &pos,
        &p.src.shape().iter().map(|&d| d as i64).collect::<Vec<_>>(),
    )
    .py()?;
    let pp = Plan {
        src: pos,
        params: p.params.clone(),
        int_axes: p.int_axes.clone(),
        adv: p.adv.iter().map(|(a, x)| (*a, x.clone())).collect(),
        adv_adjacent: p.adv_adjacent,
    };
    let positions = apply(&pp)?;
    let v = ops::broadcast_to(&ops::astype(val, a.dtype()).py()?, positions.shape()).py()?;
    let flat = ops::reshape(a, &[n as i64]).py()?;
    let pf = ops::reshape(&positions, &[positions.size() as i64]).py()?;
    let vf = ops::reshape(&v, &[v.size() as i64]).py()?;
    let r = ops::scatter(&flat, &[pf], &vf, &[0], mode).py()?;
    ops::reshape(&r, &a.shape().iter().map(|&d| d as i64).collect::<Vec<_>>()).py()
}

/// `x.at[idx].add(v)` and friends (called from Python's `_AtIndexer`).
#[pyfunction]
pub fn _at_update(
    a: &Bound<'_, PyAny>,
    idx: &Bound<'_, PyAny>,
    val: &Bound<'_, PyAny>,
    mode: &str,
) -> PyResult<crate::pyarray::PyArray> {
    let x = convert::operand(a, None)?;
    let v = convert::operand(val, Some(x.dtype()))?;
    let m = match mode {
        "set" => ScatterMode::Set,
        "add" => ScatterMode::Add,
        "multiply" => ScatterMode::Multiply,
        "maximum" => ScatterMode::Maximum,
        "minimum" => ScatterMode::Minimum,
        _ => return Err(type_err("at", format!("Unknown update mode {mode}."))),
    };
    // Through the scatter path so duplicate indices accumulate.
    let p = plan(&x, idx)?;
    let n = x.size();
    let pos = ops::arange(0.0, n as f64, 1.0, Dtype::Int64).py()?;
    let pos = ops::reshape(
        &pos,
        &p.src.shape().iter().map(|&d| d as i64).collect::<Vec<_>>(),
    )
    .py()?;
    let pp = Plan {
        src: pos,
        params: p.params,
        int_axes: p.int_axes,
        adv: p.adv,
        adv_adjacent: p.adv_adjacent,
    };
    let positions = apply(&pp)?;
    let vv = ops::broadcast_to(&ops::astype(&v, x.dtype()).py()?, positions.shape()).py()?;
    let flat = ops::reshape(&x, &[n as i64]).py()?;
    let pf = ops::reshape(&positions, &[positions.size() as i64]).py()?;
    let vf = ops::reshape(&vv, &[vv.size() as i64]).py()?;
    let r = ops::scatter(&flat, &[pf], &vf, &[0], m).py()?;
    Ok(convert::wrap(
        ops::reshape(&r, &x.shape().iter().map(|&d| d as i64).collect::<Vec<_>>()).py()?,
    ))
}

/// Indices of the non-zero elements, one int64 array per dimension (evaluates).
#[pyfunction]
pub fn nonzero(a: &Bound<'_, PyAny>) -> PyResult<Vec<crate::pyarray::PyArray>> {
    let x = convert::operand(a, None)?;
    let m = ops::astype(&x, Dtype::Bool).py()?;
    if m.ndim() == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "[nonzero] Calling nonzero on 0-d arrays is not allowed.",
        ));
    }
    Ok(mask_to_indices(&m)?
        .into_iter()
        .map(convert::wrap)
        .collect())
}
