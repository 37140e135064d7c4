//! 16-byte alignment for big cuBLASLt products. cuBLASLt's fast kernels move 16-byte
//! vectors: they need each matrix's contiguous extent, leading dimension, batch stride and
//! offset to be multiples of 16 bytes. A matrix with an odd side (GPT-2's 50,257-word
//! vocabulary) otherwise gets the align-1 kernels, about five times slower on an H200.
//! For a product big enough to pay for it, the operands are copied into zero-filled
//! buffers whose contiguous extents are padded to 16 bytes (padding the reduced axis with
//! zeros adds nothing to the sums), and the product is written padded and returned as a
//! strided view of its wanted part: each copy is one pass at memory speed.

use crate::blaslt::Operand;
use crate::{lt_operand, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::{Arc, Mutex, Weak};

const ALIGN: usize = 16;
/// Products below this many flops keep their layout (the copies' launches would dominate).
const MIN_FLOPS: u128 = 1 << 30;
/// Flops per byte copied above which repacking pays: the align-1 kernels lose roughly
/// 5/6 of ~600 TFLOP/s, a copy moves ~2 TB/s.
const MIN_FLOPS_PER_BYTE: u128 = 40;

/// What identifies a padded copy: the source's offset and type, and per axis of the
/// copy (batch axes, then the contiguous axis and the other matrix axis) its length,
/// stride in the source and padded length. A transposed view of the same matrix padded
/// the other way has the same key: backward passes pad `dlogits` and `dlogits.T` into the
/// same bytes.
#[derive(PartialEq, Eq, Debug)]
struct PadKey {
    offset: usize,
    dtype: Dtype,
    axes: Vec<(usize, isize, usize)>,
}

struct PadEntry {
    /// Holding a weak reference keeps the source's bytes unchanged while the entry
    /// lives: buffer donation (`donatable_for`) refuses buffers with weak references.
    source: Weak<Buffer>,
    key: PadKey,
    padded: Arc<Buffer>,
}

/// A buffer of rows `ld` elements apart whose elements `n..ld` of each row are zero (a
/// kernel wrote them so): already the padded copy `lt_padded_copy` would make of its
/// `n`-element rows.
struct ZeroPadded {
    buffer: Weak<Buffer>,
    n: usize,
    ld: usize,
}

/// The last padded copy, kept while its source lives so that a second product over the
/// same operand (a matmul's two backward products read the same cotangent) reuses it;
/// and the live buffers known to be zero-padded (read as their own padded copies).
#[derive(Default)]
pub(crate) struct PadCache {
    last: Mutex<Option<PadEntry>>,
    zero_padded: Mutex<Vec<ZeroPadded>>,
}

impl PadCache {
    /// Drops the copy once its source is gone (called before every op, so the copy's
    /// memory is returned at the next op after its source's last use).
    pub(crate) fn evict_orphaned(&self) {
        if let Ok(mut e) = self.last.try_lock() {
            if e.as_ref().is_some_and(|e| e.source.strong_count() == 0) {
                *e = None;
            }
        }
    }

    fn get(&self, source: &Arc<Buffer>, key: &PadKey) -> Option<Arc<Buffer>> {
        let e = self.last.lock().ok()?;
        let e = e.as_ref()?;
        (e.source.upgrade().is_some_and(|s| Arc::ptr_eq(&s, source)) && e.key == *key)
            .then(|| Arc::clone(&e.padded))
    }

    fn put(&self, source: &Arc<Buffer>, key: PadKey, padded: &Arc<Buffer>) {
        if let Ok(mut e) = self.last.lock() {
            *e = Some(PadEntry {
                source: Arc::downgrade(source),
                key,
                padded: Arc::clone(padded),
            });
        }
    }

    /// Records that `buffer`'s rows are `ld` elements apart with zeros after the first
    /// `n` of each. Holding it weakly also keeps it from being donated (and overwritten).
    pub(crate) fn mark_zero_padded(&self, buffer: &Arc<Buffer>, n: usize, ld: usize) {
        if let Ok(mut v) = self.zero_padded.lock() {
            v.retain(|z| z.buffer.strong_count() > 0);
            v.push(ZeroPadded {
                buffer: Arc::downgrade(buffer),
                n,
                ld,
            });
        }
    }

    /// Whether `buffer` holds rows of `n` elements, `ld` apart, zero-padded.
    fn is_zero_padded(&self, buffer: &Arc<Buffer>, n: usize, ld: usize) -> bool {
        self.zero_padded.lock().is_ok_and(|v| {
            v.iter().any(|z| {
                z.n == n
                    && z.ld == ld
                    && z.buffer.upgrade().is_some_and(|b| Arc::ptr_eq(&b, buffer))
            })
        })
    }
}

/// Elements per 16 bytes, for the types with tensor-core kernels.
fn per_vector(dtype: Dtype) -> Option<usize> {
    matches!(dtype, Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32).then(|| ALIGN / dtype.size())
}

fn aligned(v: i128, es: usize) -> bool {
    (v * es as i128) % ALIGN as i128 == 0
}

fn operand_aligned(o: &Operand, es: usize) -> bool {
    aligned(o.ld as i128, es)
        && aligned(o.batch_stride as i128, es)
        && aligned(o.offset as i128, es)
        && aligned(o.rows as i128, es)
}

/// `v` rounded up to a multiple of `m`.
fn round_up(v: usize, m: usize) -> Option<usize> {
    v.checked_add(m - 1).map(|x| x / m * m)
}

fn batch_broadcast(x: &Input) -> bool {
    let nd = x.shape.len();
    x.shape[..nd - 2]
        .iter()
        .zip(&x.data.strides)
        .any(|(&l, &s)| l > 1 && s == 0)
}

fn col_major(x: &Input) -> bool {
    let nd = x.shape.len();
    x.data.strides[nd - 1] != 1 && x.shape[nd - 1] > 1
}

/// The operands of a row-major product `(.., m, k) @ (.., k, n)`, possibly padded.
pub(crate) struct Padded {
    pub a: (Input, Operand),
    pub b: (Input, Operand),
    /// The padded output's rows and columns (equal to m and n when not padded).
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl CudaBackend {
    /// The operands of `a @ b` (row-major `(.., m, k)` and `(.., k, n)`, with their
    /// cuBLASLt views) padded as the module says when the product is big enough and some
    /// extent or stride is not a multiple of 16 bytes; otherwise as they are.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn lt_pad(
        &self,
        op: &str,
        a: (Input, Operand),
        b: (Input, Operand),
        (m, n, k): (usize, usize, usize),
        batch: usize,
        flops: u128,
    ) -> Result<Padded> {
        let unchanged = |a, b| Padded { a, b, m, n, k };
        let dtype = a.0.dtype;
        let Some(per) = per_vector(dtype) else {
            return Ok(unchanged(a, b));
        };
        let es = dtype.size();
        if flops < MIN_FLOPS
            || m < 2
            || n < 2
            || k < 2
            || batch_broadcast(&a.0)
            || batch_broadcast(&b.0)
        {
            return Ok(unchanged(a, b));
        }
        let up = |v: usize| round_up(v, per).ok_or_else(|| Error::overflow(op));
        // The output's contiguous extent is n; a column-major lhs's is m.
        let (kp, np) = (up(k)?, up(n)?);
        let mp = if col_major(&a.0) { up(m)? } else { m };
        let copy_a = (mp, kp) != (m, k) || !operand_aligned(&a.1, es);
        let copy_b = (kp, np) != (k, n) || !operand_aligned(&b.1, es);
        let out_padded = (mp, np) != (m, n);
        if !copy_a && !copy_b && !out_padded {
            return Ok(unchanged(a, b));
        }
        let area = |r: usize, c: usize| batch as u128 * r as u128 * c as u128;
        let copied = u128::from(copy_a) * area(mp, kp)
            + u128::from(copy_b) * area(kp, np)
            + u128::from(out_padded) * 2 * area(mp, np);
        if flops < MIN_FLOPS_PER_BYTE * 2 * es as u128 * copied {
            return Ok(unchanged(a, b));
        }
        let a = if copy_a {
            self.lt_padded_copy(op, &a.0, mp, kp)?
        } else {
            a
        };
        let b = if copy_b {
            self.lt_padded_copy(op, &b.0, kp, np)?
        } else {
            b
        };
        Ok(Padded {
            a,
            b,
            m: mp,
            n: np,
            k: kp,
        })
    }

    /// `x` (`.., r, c`) copied into a zero-filled `.., rp, cp` matrix of the same orientation
    /// (a transposed view stays column-major, so the copy reads and writes along one axis).
    fn lt_padded_copy(
        &self,
        op: &str,
        x: &Input,
        rp: usize,
        cp: usize,
    ) -> Result<(Input, Operand)> {
        let nd = x.shape.len();
        let mut shape = x.shape.clone();
        shape[nd - 2] = rp;
        shape[nd - 1] = cp;
        let (inner, outer) = if col_major(x) {
            (nd - 2, nd - 1)
        } else {
            (nd - 1, nd - 2)
        };
        let mut strides = vec![0isize; nd];
        strides[inner] = 1;
        let mut total = 1usize;
        let order: Vec<usize> = [inner, outer]
            .into_iter()
            .chain((0..nd - 2).rev())
            .collect();
        for &d in &order {
            strides[d] = isize::try_from(total).map_err(|_| Error::overflow(op))?;
            total = total
                .checked_mul(shape[d])
                .ok_or_else(|| Error::overflow(op))?;
        }
        let key = PadKey {
            offset: x.data.offset,
            dtype: x.dtype,
            axes: order
                .iter()
                .map(|&d| (x.shape[d], x.data.strides[d], shape[d]))
                .collect(),
        };
        let source = &x.data.buffer;
        // rows already padded with zeros in place (a padded cross-entropy gradient): the
        // source is its own padded copy
        let in_place = x.data.offset == 0
            && x.data.strides == strides
            && shape[outer] == x.shape[outer]
            && self
                .pad_cache
                .is_zero_padded(source, x.shape[inner], shape[inner]);
        if in_place {
            let data = ArrayData::new(op, Arc::clone(source), 0, strides, &shape, x.dtype)?;
            let padded = Input {
                shape,
                dtype: x.dtype,
                data,
                donatable: false,
            };
            let o =
                lt_operand(&padded).ok_or_else(|| Error::runtime(op, "matmul operand layout"))?;
            return Ok((padded, o));
        }
        let buffer = match self.pad_cache.get(source, &key) {
            Some(b) => b,
            None => {
                let (mut mem, nbytes) = self.new_output(op, &[total], x.dtype)?;
                self.alloc
                    .stream
                    .memset_zeros(mem.slice_mut()?)
                    .map_err(|e| Error::runtime(op, format!("CUDA error: {e:?}")))?;
                self.copy_into(op, x, mem.slice_mut()?, 0, &strides, total)?;
                let b = Arc::new(Buffer::from_device(Box::new(mem), nbytes));
                self.pad_cache.put(source, key, &b);
                b
            }
        };
        let data = ArrayData::new(op, buffer, 0, strides, &shape, x.dtype)?;
        let padded = Input {
            shape,
            dtype: x.dtype,
            data,
            donatable: true,
        };
        let o = lt_operand(&padded).ok_or_else(|| Error::runtime(op, "matmul operand layout"))?;
        Ok((padded, o))
    }

    /// The row-major `shape` held in `mem` as the top-left part of `.., mp, ld` matrices,
    /// as a strided view of it: no copy (every consumer reads strided arrays; the
    /// padding is a few columns).
    pub(crate) fn lt_unpad(
        &self,
        op: &str,
        mem: crate::device::CudaMem,
        nbytes: usize,
        shape: &[usize],
        dtype: Dtype,
        (mp, ld): (usize, usize),
    ) -> Result<ArrayData> {
        let nd = shape.len();
        let mut strides = vec![1isize; nd];
        let mut step = ld;
        for d in (0..nd - 1).rev() {
            strides[d] = isize::try_from(step).map_err(|_| Error::overflow(op))?;
            let extent = if d == nd - 2 { mp } else { shape[d] };
            step = step
                .checked_mul(extent)
                .ok_or_else(|| Error::overflow(op))?;
        }
        let buffer = Arc::new(Buffer::from_device(Box::new(mem), nbytes));
        ArrayData::new(op, buffer, 0, strides, shape, dtype)
    }
}
