//! Random numbers, bit for bit as in MLX.
//!
//! A key is a `uint32` array of shape `(2,)`. [`bits`] hashes counters with
//! Threefry-2x32 (20 rounds, Salmon et al. 2011) under the key; every distribution is
//! composed from graph ops on those bits with the same arithmetic (and the same dtypes
//! at each step) as MLX, so for the same key the outputs are the same bits.
//!
//! Layout of the bits (what the `RandomBits` kernel computes for one key): the output
//! of `n` bytes is made of `w = ceil(n / 4)` little-endian 32-bit words. With
//! `h = ceil(w / 2)`, pair `i` (for `i < h`) hashes the counter `(i, i + h)` (the
//! second half is `0` when `i + h == w`, i.e. for odd `w`) and yields word `i` and
//! word `i + h`; the bytes past `n` are dropped.
//!
//! Without an explicit key, each function draws one key from the global key sequence:
//! the state is split in two, the first half becomes the new state and the second is
//! used (see [`next_key`]). The state starts from [`key`] of the time in milliseconds
//! until [`seed`] is called.

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::ops;
use crate::primitive::Primitive;
use crate::scalar::Scalar;
use crate::shape::{broadcast_shapes, checked_size, fmt_shape, normalize_axis, Shape};
use std::sync::{Mutex, MutexGuard};

// ---------------------------------------------------------------------------------
// Threefry-2x32

const ROTATIONS: [u32; 8] = [13, 15, 26, 6, 17, 29, 16, 24];
const KS_PARITY: u32 = 0x1BD1_1BDA;

/// Threefry-2x32 with 20 rounds: hash the counter `ctr` under `key`.
#[inline]
pub fn threefry2x32(key: [u32; 2], ctr: [u32; 2]) -> [u32; 2] {
    let ks = [key[0], key[1], KS_PARITY ^ key[0] ^ key[1]];
    let mut x0 = ctr[0].wrapping_add(ks[0]);
    let mut x1 = ctr[1].wrapping_add(ks[1]);
    // 5 groups of 4 rounds, each followed by a key injection.
    for s in 1..=5usize {
        let rot = if s % 2 == 1 {
            &ROTATIONS[..4]
        } else {
            &ROTATIONS[4..]
        };
        for &r in rot {
            x0 = x0.wrapping_add(x1);
            x1 = x1.rotate_left(r) ^ x0;
        }
        x0 = x0.wrapping_add(ks[s % 3]);
        x1 = x1.wrapping_add(ks[(s + 1) % 3]).wrapping_add(s as u32);
    }
    [x0, x1]
}

/// The counter pair hashed for pair `i` of an output of `nwords` words whose first
/// half has `half = ceil(nwords / 2)` words.
#[inline]
pub fn counter(i: usize, half: usize, nwords: usize) -> [u32; 2] {
    let j = i + half;
    [i as u32, if j < nwords { j as u32 } else { 0 }]
}

/// Host reference of the bits of one key (sequential): fills `out` with MLX's layout.
pub fn fill_bits(key: [u32; 2], out: &mut [u8]) {
    let nbytes = out.len();
    if nbytes == 0 {
        return;
    }
    let nwords = nbytes.div_ceil(4);
    let half = nwords.div_ceil(2);
    let (lo, hi) = out.split_at_mut((4 * half).min(nbytes));
    let mut hi_words = hi.chunks_mut(4);
    for (i, w) in lo.chunks_mut(4).enumerate() {
        let [a, b] = threefry2x32(key, counter(i, half, nwords));
        put_word(w, a);
        if let Some(w) = hi_words.next() {
            put_word(w, b);
        }
    }
}

/// Write the little-endian bytes of `v` into `dst` (at most 4 bytes).
#[inline]
pub fn put_word(dst: &mut [u8], v: u32) {
    for (d, s) in dst.iter_mut().zip(v.to_le_bytes()) {
        *d = s;
    }
}

// ---------------------------------------------------------------------------------
// Keys and the global key sequence

/// The key words of a seed: `[seed >> 32, seed & 0xffffffff]`.
pub fn key_words(seed: u64) -> [u32; 2] {
    [(seed >> 32) as u32, seed as u32]
}

fn key_array(k: [u32; 2]) -> Result<Array> {
    ops::from_slice(&k, vec![2], Dtype::Uint32)
}

/// A PRNG key from a seed.
pub fn key(seed: u64) -> Result<Array> {
    key_array(key_words(seed))
}

/// Split key words in two on the host (same result as `split(key, 2)`).
pub fn split_words(k: [u32; 2]) -> ([u32; 2], [u32; 2]) {
    let mut b = [0u8; 16];
    fill_bits(k, &mut b);
    let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    ([w(0), w(1)], [w(2), w(3)])
}

/// The global key: words on the host (the fast, usual case) or a lazy key array (when
/// it was set to one, e.g. inside `compile` with the random state captured).
enum GlobalKey {
    Words([u32; 2]),
    Lazy(Array),
}

static STATE: Mutex<Option<GlobalKey>> = Mutex::new(None);

fn state_lock() -> MutexGuard<'static, Option<GlobalKey>> {
    match STATE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seed the global key sequence: its state becomes `key(seed)`.
pub fn seed(seed: u64) {
    *state_lock() = Some(GlobalKey::Words(key_words(seed)));
}

/// The current state of the global key sequence (the key the next draw splits).
pub fn state() -> Result<Array> {
    let mut g = state_lock();
    match g.get_or_insert_with(|| GlobalKey::Words(key_words(time_seed()))) {
        GlobalKey::Words(k) => key_array(*k),
        GlobalKey::Lazy(a) => Ok(a.clone()),
    }
}

/// Words of an evaluated, untraced key (None for a lazy or traced one).
fn ready_words(key: &Array) -> Option<[u32; 2]> {
    if key.is_traced() || !key.is_evaluated() {
        return None;
    }
    match host_u32("random_state", key).ok()?.as_slice() {
        [a, b] => Some([*a, *b]),
        _ => None,
    }
}

/// Replace the state of the global key sequence (a `uint32` key of shape `(2,)`). A
/// lazy or traced key stays lazy: the sequence then continues as graph ops.
pub fn set_state(key: &Array) -> Result<()> {
    check_key("random_state", key)?;
    if key.shape() != [2] {
        return Err(Error::value(
            "random_state",
            "Expected a key of two uint32 values.",
        ));
    }
    let new = match ready_words(key) {
        Some(w) => GlobalKey::Words(w),
        None => GlobalKey::Lazy(key.clone()),
    };
    *state_lock() = Some(new);
    Ok(())
}

/// The next key of the global sequence: split the state, keep the first half as the
/// new state and return the second half. This is the key every function uses when it
/// is called without one.
pub fn next_key() -> Result<Array> {
    let mut g = state_lock();
    let cur = g
        .take()
        .unwrap_or_else(|| GlobalKey::Words(key_words(time_seed())));
    let cur = match cur {
        GlobalKey::Lazy(a) => match ready_words(&a) {
            Some(w) => GlobalKey::Words(w),
            None => GlobalKey::Lazy(a),
        },
        w => w,
    };
    match cur {
        GlobalKey::Words(k) => {
            let (keep, used) = split_words(k);
            *g = Some(GlobalKey::Words(keep));
            key_array(used)
        }
        GlobalKey::Lazy(a) => match split2(&a) {
            Ok((keep, used)) => {
                *g = Some(GlobalKey::Lazy(keep));
                Ok(used)
            }
            Err(e) => {
                *g = Some(GlobalKey::Lazy(a));
                Err(e)
            }
        },
    }
}

fn resolve_key(key: Option<&Array>) -> Result<Array> {
    match key {
        Some(k) => Ok(k.clone()),
        None => next_key(),
    }
}

fn check_key(op: &str, key: &Array) -> Result<()> {
    if key.shape() != [2] {
        return Err(Error::value(
            op,
            format!(
                "Expected key shape (2,) but received {}.",
                fmt_shape(key.shape())
            ),
        ));
    }
    if key.dtype() != Dtype::Uint32 {
        return Err(Error::value(
            op,
            format!("Expected key type uint32 but received {}.", key.dtype()),
        ));
    }
    Ok(())
}

/// Evaluate a uint32 array and copy its values out (row-major).
fn host_u32(op: &str, a: &Array) -> Result<Vec<u32>> {
    if a.dtype() != Dtype::Uint32 {
        return Err(Error::type_err(op, "Expected a uint32 array."));
    }
    let c = ops::contiguous(a)?;
    let d = c.data()?;
    let n = a.size();
    d.buffer
        .typed::<u32>()
        .get(d.offset..d.offset + n)
        .map(|s| s.to_vec())
        .ok_or_else(|| Error::runtime(op, "Evaluated data is smaller than the array."))
}

/// Validate user dims (MLX's message for negative ones).
fn dims(shape: &[i64]) -> Result<Shape> {
    let op = "bits";
    let mut out = Vec::with_capacity(shape.len());
    for &d in shape {
        if d < 0 {
            return Err(Error::value(op, "Negative dimensions not allowed."));
        }
        out.push(usize::try_from(d).map_err(|_| Error::overflow(op))?);
    }
    checked_size(op, &out)?;
    Ok(out)
}

fn to_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

fn fscalar(v: f64, dtype: Dtype) -> Result<Array> {
    ops::scalar(Scalar::Float(v), dtype)
}

/// The largest value below 1 in a real floating dtype.
fn below_one(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::Float16 => 1.0 - 2f64.powi(-11),
        Dtype::Bfloat16 => 1.0 - 2f64.powi(-8),
        Dtype::Float32 => 1.0 - 2f64.powi(-24),
        _ => 1.0 - 2f64.powi(-53),
    }
}

/// The float32 just above -1 (`nextafter(-1, 0)`), the low end of the uniforms behind
/// `normal` and `laplace`.
const ABOVE_MINUS_ONE_F32: f64 = -(1.0 - 1.0 / 16_777_216.0);

// ---------------------------------------------------------------------------------
// Ops

/// Random bits of `shape`: `width` bytes per element (1, 2 or 4 → uint8, uint16,
/// uint32).
pub fn bits(shape: &[i64], width: i64, key: Option<&Array>) -> Result<Array> {
    let op = "bits";
    let dtype = match width {
        1 => Dtype::Uint8,
        2 => Dtype::Uint16,
        4 => Dtype::Uint32,
        _ => {
            return Err(Error::value(
                op,
                format!("Bit width must be in {{1, 2, 4}} but got {width}."),
            ))
        }
    };
    let shape = dims(shape)?;
    let key = resolve_key(key)?;
    check_key(op, &key)?;
    Ok(Array::pending(
        shape,
        dtype,
        Primitive::RandomBits {
            width: width as usize,
        },
        vec![key],
    ))
}

/// The random-bits node over a stack of keys (uint32, last axis 2) whose output has
/// `shape` (the keys' batch dims, then each key's own dims) and `width` bytes per value
/// (how an imported graph makes one: every part is checked).
pub fn bits_node(keys: &Array, shape: &[usize], width: usize) -> Result<Array> {
    let op = "bits";
    let dtype = match width {
        1 => Dtype::Uint8,
        2 => Dtype::Uint16,
        4 => Dtype::Uint32,
        8 => Dtype::Uint64,
        _ => return Err(Error::value(op, format!("Invalid bit width {width}."))),
    };
    let batch = keys.shape().split_last().map(|(_, b)| b);
    let ok = keys.dtype() == Dtype::Uint32
        && keys.shape().last() == Some(&2)
        && batch.is_some_and(|b| shape.starts_with(b));
    if !ok {
        return Err(Error::value(
            op,
            format!(
                "Keys of shape {} ({}) cannot give random bits of shape {}.",
                fmt_shape(keys.shape()),
                keys.dtype(),
                fmt_shape(shape)
            ),
        ));
    }
    crate::shape::checked_size(op, shape)?;
    Ok(Array::pending(
        shape.to_vec(),
        dtype,
        Primitive::RandomBits { width },
        vec![keys.clone()],
    ))
}

/// `num` sub keys of `key`, shape `(num, 2)`.
pub fn split(key: &Array, num: i64) -> Result<Array> {
    bits(&[num, 2], 4, Some(key))
}

/// Split `key` in two.
pub fn split2(key: &Array) -> Result<(Array, Array)> {
    let s = split(key, 2)?;
    let a = ops::slice(&s, &[0, 0], &[1, 2], None)?;
    let b = ops::slice(&s, &[1, 0], &[2, 2], None)?;
    Ok((ops::reshape(&a, &[2])?, ops::reshape(&b, &[2])?))
}

/// Uniform samples in `[low, high)` of `shape` and real floating `dtype`; `low` and
/// `high` broadcast to `shape`.
pub fn uniform(
    low: &Array,
    high: &Array,
    shape: &[i64],
    dtype: Dtype,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "uniform";
    if !dtype.is_float() {
        return Err(Error::value(
            op,
            "Can only generate uniform numbers with real floating point type.",
        ));
    }
    if dtype == Dtype::Float64 {
        // As MLX: no float64 uniform (its `normal` and `laplace` still allow float64).
        return Err(Error::runtime(op, "Unsupported type."));
    }
    let shp = dims(shape)?;
    let lh = broadcast_shapes("broadcast_shapes", low.shape(), high.shape())?;
    let out = broadcast_shapes("broadcast_shapes", &shp, &lh)?;
    if out != shp {
        return Err(Error::value(
            op,
            format!(
                "Cannot generate random values of shape {} from broadcasted shape {}.",
                fmt_shape(&shp),
                fmt_shape(&out)
            ),
        ));
    }
    let lo = ops::astype(low, dtype)?;
    let range = ops::subtract(&ops::astype(high, dtype)?, &lo)?;
    let b = bits(shape, 4, key)?;
    // bits / 4294967295 in float32 (the divisor rounds to 2^32), then to `dtype`,
    // kept below 1 in `dtype`.
    let u = ops::divide(
        &ops::astype(&b, Dtype::Float32)?,
        &fscalar(u32::MAX as f64, Dtype::Float32)?,
    )?;
    let u = ops::minimum(&ops::astype(&u, dtype)?, &fscalar(below_one(dtype), dtype)?)?;
    ops::add(&ops::multiply(&u, &range)?, &lo)
}

/// Standard samples `sqrt(2) * erfinv(u)` in float32 for `u` uniform in
/// `(-1, 1)`, then cast to `dtype` (float64 too, as MLX: the erfinv stays float32).
fn erfinv_samples(shape: &[i64], dtype: Dtype, key: Option<&Array>) -> Result<Array> {
    let lo = fscalar(ABOVE_MINUS_ONE_F32, Dtype::Float32)?;
    let hi = fscalar(1.0, Dtype::Float32)?;
    let u = uniform(&lo, &hi, shape, Dtype::Float32, key)?;
    ops::astype(&ops::erfinv(&u)?, dtype)
}

/// Normal samples of `shape` (broadcast with `loc` and `scale`) and floating or
/// complex64 `dtype`. For complex64 the real and imaginary parts are independent with
/// variance 1/2 each.
pub fn normal(
    shape: &[i64],
    dtype: Dtype,
    loc: Option<&Array>,
    scale: Option<&Array>,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "normal";
    let mut out = if dtype == Dtype::Complex64 {
        let shp = dims(shape)?;
        let mut pairs = shape.to_vec();
        pairs.push(2);
        // erfinv(u) itself: the parts are normal with variance 1/2 (no sqrt(2)).
        let e = erfinv_samples(&pairs, Dtype::Float32, key)?;
        let z = ops::view_dtype(&e, Dtype::Complex64)?;
        let z = ops::reshape(&z, &to_i64(&shp))?;
        match scale {
            Some(s) => ops::multiply(&z, &ops::astype(s, dtype)?)?,
            None => z,
        }
    } else if dtype.is_float() {
        let e = erfinv_samples(shape, dtype, key)?;
        let mut m = fscalar(std::f64::consts::SQRT_2, dtype)?;
        if let Some(s) = scale {
            m = ops::multiply(&m, &ops::astype(s, dtype)?)?;
        }
        ops::multiply(&e, &m)?
    } else {
        return Err(Error::value(
            op,
            "Only floating point and complex64 types are supported.",
        ));
    };
    if let Some(l) = loc {
        out = ops::add(&out, &ops::astype(l, dtype)?)?;
    }
    Ok(out)
}

/// Random integers in `[low, high)` of `shape` and integer (or bool) `dtype`. As MLX:
/// a float32 uniform between the bounds is floored, converted to `dtype` and clamped
/// there to `[low, high - 1]` (bounds converted to `dtype`, so out-of-range bounds
/// wrap as in MLX).
pub fn randint(
    low: &Array,
    high: &Array,
    shape: &[i64],
    dtype: Dtype,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "randint";
    if !(dtype.is_integer() || dtype.is_bool()) {
        return Err(Error::value(
            op,
            "randint only accepts integer dtypes and bool.",
        ));
    }
    let u = uniform(low, high, shape, Dtype::Float32, key)?;
    let hd = if high.dtype().is_bool() {
        Dtype::Int32
    } else {
        high.dtype()
    };
    let high_m1 = ops::subtract(&ops::astype(high, hd)?, &ops::scalar(Scalar::Int(1), hd)?)?;
    let r = to_int(&ops::floor(&u)?, dtype)?;
    ops::maximum(
        &ops::minimum(&r, &to_int(&high_m1, dtype)?)?,
        &to_int(low, dtype)?,
    )
}

/// Cast to an integer (or bool) dtype; floats go through int64 so that values outside
/// the target range wrap as MLX's conversions do (instead of saturating).
fn to_int(x: &Array, dtype: Dtype) -> Result<Array> {
    if x.dtype().is_float() && dtype.is_integer() {
        ops::astype(&ops::astype(x, Dtype::Int64)?, dtype)
    } else {
        ops::astype(x, dtype)
    }
}

/// Booleans that are true with probability `p` (float, broadcast to `shape`; the
/// shape defaults to `p`'s).
pub fn bernoulli(p: &Array, shape: Option<&[i64]>, key: Option<&Array>) -> Result<Array> {
    let op = "bernoulli";
    if !p.dtype().is_float() {
        return Err(Error::value(
            op,
            "bernoulli probability `p` must be a float type.",
        ));
    }
    let shp = match shape {
        Some(s) => {
            let s = dims(s)?;
            if broadcast_shapes("broadcast_shapes", &s, p.shape())? != s {
                return Err(Error::value(
                    op,
                    "shape of `p` is incompatible with argument `shape`.",
                ));
            }
            s
        }
        None => p.shape().to_vec(),
    };
    let zero = fscalar(0.0, Dtype::Float32)?;
    let one = fscalar(1.0, Dtype::Float32)?;
    let u = uniform(&zero, &one, &to_i64(&shp), Dtype::Float32, key)?;
    ops::less(&u, p)
}

/// Normal samples truncated to `(lower, upper)`; the shape defaults to the broadcast
/// of the bounds.
pub fn truncated_normal(
    lower: &Array,
    upper: &Array,
    shape: Option<&[i64]>,
    dtype: Dtype,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "trunc_normal";
    if !dtype.is_float() {
        return Err(Error::value(
            op,
            "trunc_normal only accepts floating point dtypes.",
        ));
    }
    let shp = match shape {
        Some(s) => s.to_vec(),
        None => to_i64(&broadcast_shapes(
            "broadcast_shapes",
            lower.shape(),
            upper.shape(),
        )?),
    };
    let lo = ops::astype(lower, dtype)?;
    let hi = ops::astype(upper, dtype)?;
    let sqrt2 = fscalar(std::f64::consts::SQRT_2, dtype)?;
    let a = ops::erf(&ops::divide(&lo, &sqrt2)?)?;
    let b = ops::erf(&ops::divide(&hi, &sqrt2)?)?;
    let u = uniform(&a, &b, &shp, dtype, key)?;
    let out = ops::multiply(&sqrt2, &ops::erfinv(&u)?)?;
    ops::maximum(&ops::minimum(&out, &hi)?, &lo)
}

/// Standard Gumbel samples `-log(-log(u))` for `u` uniform in `[0, 1)` (a zero draw
/// gives `-inf`, as in MLX).
pub fn gumbel(shape: &[i64], dtype: Dtype, key: Option<&Array>) -> Result<Array> {
    let lo = fscalar(0.0, Dtype::Float32)?;
    let hi = fscalar(1.0, Dtype::Float32)?;
    let u = uniform(&lo, &hi, shape, dtype, key)?;
    ops::negative(&ops::log(&ops::negative(&ops::log(&u)?)?)?)
}

/// Samples from the categorical distributions whose unnormalized log probabilities run
/// along `axis` of `logits` (uint32 indices): the argmax of `logits` plus Gumbel
/// noise. With `shape`, the output has that shape (broadcast compatible with the
/// logits' shape without `axis`); with `num_samples`, that many samples per
/// distribution in a new last axis; with neither, the logits' shape without `axis`.
pub fn categorical(
    logits: &Array,
    axis: i64,
    shape: Option<&[i64]>,
    num_samples: Option<i64>,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "categorical";
    let nd = logits.ndim();
    let n = nd as i64;
    let ax = if axis < 0 { axis + n } else { axis };
    if ax < 0 || ax >= n {
        return Err(Error::axis(
            op,
            format!("Invalid axis {axis} for logits with {nd} dimensions."),
        ));
    }
    let ax = ax as usize;
    match (shape, num_samples) {
        (Some(_), Some(_)) => Err(Error::value(
            op,
            "At most one of shape or num_samples can be specified.",
        )),
        (Some(s), None) => {
            let s = dims(s)?;
            let reduced: Shape = logits
                .shape()
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != ax)
                .map(|(_, &d)| d)
                .collect();
            if broadcast_shapes("broadcast_shapes", &s, &reduced)? != s {
                return Err(Error::value(
                    op,
                    format!(
                        "Requested shape {} is not broadcast compatible with reduced logits shape {}.",
                        fmt_shape(&s),
                        fmt_shape(&reduced)
                    ),
                ));
            }
            // The distribution axis goes where it lands when the logits are aligned
            // to the right of `shape`.
            let pos = s.len() + 1 + ax - nd;
            let mut gs = s.clone();
            gs.insert(pos, logits.shape()[ax]);
            let g = gumbel(&to_i64(&gs), Dtype::Float32, key)?;
            ops::argmax(&ops::add(logits, &g)?, Some(pos as i64), false)
        }
        (None, Some(k)) => {
            let mut gs = to_i64(logits.shape());
            gs.push(k);
            let g = gumbel(&gs, Dtype::Float32, key)?;
            let l = ops::expand_dims(logits, &[-1])?;
            ops::argmax(&ops::add(&l, &g)?, Some(ax as i64), false)
        }
        (None, None) => {
            let g = gumbel(&to_i64(logits.shape()), Dtype::Float32, key)?;
            ops::argmax(&ops::add(logits, &g)?, Some(ax as i64), false)
        }
    }
}

/// Laplace samples with location `loc` and scale `scale` (both taken as float32, as
/// MLX) of a real floating `dtype`.
pub fn laplace(
    shape: &[i64],
    dtype: Dtype,
    loc: f64,
    scale: f64,
    key: Option<&Array>,
) -> Result<Array> {
    let op = "laplace";
    if !dtype.is_float() {
        return Err(Error::value(
            op,
            "Only real floating point types are supported.",
        ));
    }
    let lo = fscalar(ABOVE_MINUS_ONE_F32, Dtype::Float32)?;
    let hi = fscalar(1.0, Dtype::Float32)?;
    let u = uniform(&lo, &hi, shape, Dtype::Float32, key)?;
    // sign(u) * log1p(-|u|) in float32, or float64 for a float64 result.
    let u = if dtype == Dtype::Float64 {
        ops::astype(&u, dtype)?
    } else {
        u
    };
    let x = ops::multiply(
        &ops::sign(&u)?,
        &ops::log1p(&ops::negative(&ops::abs(&u)?)?)?,
    )?;
    let x = ops::astype(&x, dtype)?;
    let l = fscalar(loc as f32 as f64, dtype)?;
    let s = fscalar(scale as f32 as f64, dtype)?;
    ops::add(&l, &ops::multiply(&s, &x)?)
}

/// A random permutation of `0..n` (uint32): the stable argsort of `n` random words.
pub fn permutation_n(n: i64, key: Option<&Array>) -> Result<Array> {
    let b = bits(&[n], 4, key)?;
    ops::argsort(&b, Some(0))
}

/// `x` with its entries along `axis` randomly permuted.
pub fn permutation(x: &Array, axis: i64, key: Option<&Array>) -> Result<Array> {
    let op = "permutation";
    let ax = normalize_axis(op, axis, x.ndim())?;
    let perm = permutation_n(x.shape()[ax] as i64, key)?;
    ops::take(x, &perm, Some(ax as i64))
}

/// Jointly normal samples: not available yet (needs an SVD, which the engine lacks).
pub fn multivariate_normal(
    mean: &Array,
    cov: &Array,
    shape: &[i64],
    dtype: Dtype,
    key: Option<&Array>,
) -> Result<Array> {
    let _ = (mean, cov, shape, dtype, key);
    Err(Error::unsupported(
        "multivariate_normal",
        "Requires linalg.svd, which oxmx does not have yet.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threefry_random123_known_answers() {
        // Known-answer vectors of Threefry-2x32-20 from the Random123 distribution.
        assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b20_0159, 0x99ba_4efe]);
        assert_eq!(
            threefry2x32([u32::MAX; 2], [u32::MAX; 2]),
            [0x1cb9_96fc, 0xbb00_2be7]
        );
        assert_eq!(
            threefry2x32([0x1319_8a2e, 0x0370_7344], [0x243f_6a88, 0x85a3_08d3]),
            [0xc492_3a9c, 0x483d_f7a0]
        );
    }

    #[test]
    fn key_and_split_words() {
        assert_eq!(key_words(0), [0, 0]);
        assert_eq!(key_words((1 << 32) + 5), [1, 5]);
        // mlx.core.random.split(mlx.core.random.key(0)) with MLX 0.32.4
        assert_eq!(
            split_words([0, 0]),
            ([4146024105, 967050713], [2718843009, 1272950319])
        );
    }

    #[test]
    fn odd_layouts() {
        // 3 words: pairs (0, 2) and (1, 0); words [p0.0, p1.0, p0.1].
        let mut b = [0u8; 12];
        fill_bits([0, 0], &mut b);
        let w: Vec<u32> = b
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(w, vec![0xf71f4ea9, 0x508efb2c, 0xa20e4081]);
        // 1 byte: counter (0, 0), low byte of its first word.
        let mut b = [0u8; 1];
        fill_bits([0, 0], &mut b);
        assert_eq!(b, [0x59]);
    }
}
