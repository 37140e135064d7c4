//! argmax / argmin along one axis → uint32, the axis kept with size 1. The first
//! occurrence wins on ties; NaN beats everything for both (NumPy: the first NaN).

use crate::reduce::{par_units, rel_offsets};
use crate::strided::{layout, Rows, PAR_THRESHOLD};
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::ArgReduceOp;
use oxmx_core::shape::size_of;
use oxmx_core::Result;

/// `x` strictly better than `best` (NaN-aware).
pub trait ArgCmp: Copy + Send + Sync {
    fn gt(self, best: Self) -> bool;
    fn lt(self, best: Self) -> bool;
}
macro_rules! arg_int {
    ($($t:ty),*) => {$(
        impl ArgCmp for $t {
            #[inline(always)] fn gt(self, b: Self) -> bool { self > b }
            #[inline(always)] fn lt(self, b: Self) -> bool { self < b }
        }
    )*};
}
arg_int!(u8, u16, u32, u64, i8, i16, i32, i64);
macro_rules! arg_float {
    ($($t:ty),*) => {$(
        impl ArgCmp for $t {
            #[inline(always)] fn gt(self, b: Self) -> bool { self > b || (self.is_nan() && !b.is_nan()) }
            #[inline(always)] fn lt(self, b: Self) -> bool { self < b || (self.is_nan() && !b.is_nan()) }
        }
    )*};
}
arg_float!(f16, bf16, f32, f64);
impl ArgCmp for Complex32 {
    fn gt(self, b: Self) -> bool {
        let (sn, bn) = (
            self.re.is_nan() || self.im.is_nan(),
            b.re.is_nan() || b.im.is_nan(),
        );
        if sn || bn {
            return sn && !bn;
        }
        self.re > b.re || (self.re == b.re && self.im > b.im)
    }
    fn lt(self, b: Self) -> bool {
        let (sn, bn) = (
            self.re.is_nan() || self.im.is_nan(),
            b.re.is_nan() || b.im.is_nan(),
        );
        if sn || bn {
            return sn && !bn;
        }
        self.re < b.re || (self.re == b.re && self.im < b.im)
    }
}

#[inline(always)]
fn better<T: ArgCmp>(max: bool, x: T, best: T) -> bool {
    if max {
        x.gt(best)
    } else {
        x.lt(best)
    }
}

const COLS: usize = 1024;

fn go<T: ArgCmp + bytemuck::Pod>(max: bool, x: &Input, axis: usize, out: &mut [u32]) {
    let data: &[T] = x.data.buffer.typed::<T>();
    let shape = &x.shape;
    let strides = &x.data.strides;
    let base = x.data.offset as isize;
    let (Some(&n), Some(&s)) = (shape.get(axis), strides.get(axis)) else {
        out.iter_mut().for_each(|o| *o = 0);
        return;
    };
    let mut ks = shape.clone();
    ks.remove(axis);
    let mut kst = strides.clone();
    kst.remove(axis);
    let n_out = size_of(&ks).min(out.len());
    let out = &mut out[..n_out];
    if n_out == 0 {
        return;
    }
    if n == 0 {
        // rejected by the op layer; stay defined
        out.iter_mut().for_each(|o| *o = 0);
        return;
    }
    let kl = layout(&ks, &[&kst]);
    let par = n_out.saturating_mul(n) >= PAR_THRESHOLD;
    let (kin, kin_s) = (kl.inner, kl.inner_strides[0]);

    if s != 1 && kin_s == 1 && kin >= 16 {
        // Row scan: the kept inner run is contiguous; compare whole rows at once.
        let rows = rel_offsets(&kl.outer, &kl.outer_strides[0]);
        let unit = |r: usize, c0: usize, o: &mut [u32]| {
            let len = o.len();
            let start = base + rows[r] + c0 as isize;
            let b0 = start as usize;
            let mut best: Vec<T> = data[b0..b0 + len].to_vec();
            o.iter_mut().for_each(|v| *v = 0);
            for j in 1..n {
                let b = (start + j as isize * s) as usize;
                for ((bv, bi), &v) in best.iter_mut().zip(o.iter_mut()).zip(&data[b..b + len]) {
                    if better(max, v, *bv) {
                        *bv = v;
                        *bi = j as u32;
                    }
                }
            }
        };
        if par {
            let ncb = kin.div_ceil(COLS);
            let units: Vec<&mut [u32]> = out
                .chunks_mut(kin)
                .flat_map(|r| r.chunks_mut(COLS))
                .collect();
            par_units(units, &|i, o| unit(i / ncb, (i % ncb) * COLS, o));
        } else {
            for (r, orow) in out.chunks_mut(kin).enumerate() {
                for (c, o) in orow.chunks_mut(COLS).enumerate() {
                    unit(r, c * COLS, o);
                }
            }
        }
        return;
    }

    let scan = |start: isize| -> u32 {
        let b0 = start as usize;
        let mut bi = 0usize;
        if s == 1 {
            let row = &data[b0..b0 + n];
            let mut bv = row[0];
            for (j, &v) in row.iter().enumerate().skip(1) {
                if better(max, v, bv) {
                    bv = v;
                    bi = j;
                }
            }
        } else {
            let mut bv = data[b0];
            for j in 1..n {
                let v = data[(start + j as isize * s) as usize];
                if better(max, v, bv) {
                    bv = v;
                    bi = j;
                }
            }
        }
        bi as u32
    };
    let walk = |first: usize, o: &mut [u32]| {
        let inner = kin.max(1);
        let mut rows = Rows::new(&kl.outer, kl.outer_strides.clone(), &[base], first / inner);
        let mut j = first % inner;
        for v in o.iter_mut() {
            *v = scan(rows.offs[0] + j as isize * kin_s);
            j += 1;
            if j == inner {
                j = 0;
                rows.step();
            }
        }
    };
    if par && n_out > 1 {
        let chunk = n_out
            .div_ceil(rayon::current_num_threads().max(1) * 8)
            .max(PAR_THRESHOLD.div_ceil(n).min(n_out))
            .max(1);
        par_units(out.chunks_mut(chunk).collect(), &|c, o| walk(c * chunk, o));
    } else {
        walk(0, out);
    }
}

pub fn run(op: ArgReduceOp, x: &Input, axis: usize, out: &mut Buffer) -> Result<()> {
    let max = op == ArgReduceOp::ArgMax;
    let o = out.typed_mut::<u32>();
    crate::with_dtype!(x.dtype, T, go::<T>(max, x, axis, o));
    Ok(())
}
