//! `Primitive::Fft` on the CPU: rustfft (any length: mixed radix, Rader, Bluestein; AVX
//! picked at run time) for complex transforms and realfft for the real ones. Lanes along
//! the last axis run in parallel; plans are made once per length and kept.

use crate::strided::{map1, View};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::{Error, Result};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::{Fft, FftPlanner};
use std::sync::{Arc, Mutex, OnceLock};

/// Elements per rayon task at least (small lanes are grouped).
const MIN_TASK: usize = 1 << 14;

fn complex_plan(n: usize, inverse: bool) -> Arc<dyn Fft<f32>> {
    static P: OnceLock<Mutex<FftPlanner<f32>>> = OnceLock::new();
    let m = P.get_or_init(|| Mutex::new(FftPlanner::new()));
    let mut p = m.lock().unwrap_or_else(|e| e.into_inner());
    if inverse {
        p.plan_fft_inverse(n)
    } else {
        p.plan_fft_forward(n)
    }
}

fn real_planner() -> std::sync::MutexGuard<'static, RealFftPlanner<f32>> {
    static P: OnceLock<Mutex<RealFftPlanner<f32>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(RealFftPlanner::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn load<T: crate::elem::Elem + Default + Copy>(x: &Input) -> Vec<T> {
    let mut v = vec![T::default(); x.size()];
    map1(&x.shape, View::<T>::of(x), &mut v, |e: T| e);
    v
}

/// Lanes per parallel task for lanes of `n` elements.
fn lanes_per_task(n: usize) -> usize {
    MIN_TASK.div_ceil(n.max(1)).max(1)
}

fn fft_err(e: impl std::fmt::Display) -> Error {
    Error::runtime("fft", format!("{e}"))
}

pub fn run(
    inverse: bool,
    real: bool,
    scale: f64,
    ins: &[Input],
    out_shape: &[usize],
    out: &mut Buffer,
) -> Result<()> {
    let x = ins
        .first()
        .ok_or_else(|| Error::runtime("fft", "missing input"))?;
    let n_out = out_shape.last().copied().unwrap_or(0);
    let n_in = x.shape.last().copied().unwrap_or(0);
    if n_out == 0 || n_in == 0 || x.size() == 0 {
        return Ok(());
    }
    let s = scale as f32;
    match (real, inverse) {
        (false, _) => {
            let plan = complex_plan(n_out, inverse);
            let dst = out.typed_mut::<Complex32>();
            let src = load::<Complex32>(x);
            let dst = dst
                .get_mut(..src.len())
                .ok_or_else(|| Error::runtime("fft", "output too small"))?;
            dst.copy_from_slice(&src);
            let per = lanes_per_task(n_out) * n_out;
            dst.par_chunks_mut(per).for_each(|c| {
                let mut scratch = vec![Complex32::default(); plan.get_inplace_scratch_len()];
                plan.process_with_scratch(c, &mut scratch);
                if s != 1.0 {
                    c.iter_mut().for_each(|v| *v *= s);
                }
            });
            Ok(())
        }
        (true, false) => {
            let plan = real_planner().plan_fft_forward(n_in);
            let src = load::<f32>(x);
            let dst = out.typed_mut::<Complex32>();
            let per = lanes_per_task(n_in);
            dst.par_chunks_mut(per * n_out)
                .zip(src.par_chunks(per * n_in))
                .try_for_each(|(o, i)| {
                    let mut lane = vec![0f32; n_in];
                    let mut scratch = plan.make_scratch_vec();
                    for (o, i) in o.chunks_mut(n_out).zip(i.chunks(n_in)) {
                        lane.copy_from_slice(i);
                        plan.process_with_scratch(&mut lane, o, &mut scratch)
                            .map_err(fft_err)?;
                        if s != 1.0 {
                            o.iter_mut().for_each(|v| *v *= s);
                        }
                    }
                    Ok(())
                })
        }
        (true, true) => {
            let plan = real_planner().plan_fft_inverse(n_out);
            let src = load::<Complex32>(x);
            let dst = out.typed_mut::<f32>();
            let per = lanes_per_task(n_out);
            let even = n_out % 2 == 0;
            dst.par_chunks_mut(per * n_out)
                .zip(src.par_chunks(per * n_in))
                .try_for_each(|(o, i)| {
                    let mut lane = vec![Complex32::default(); n_in];
                    let mut scratch = plan.make_scratch_vec();
                    for (o, i) in o.chunks_mut(n_out).zip(i.chunks(n_in)) {
                        lane.copy_from_slice(i);
                        // the DC bin (and the Nyquist bin of an even length) are real
                        // in a Hermitian spectrum: their imaginary parts are ignored
                        if let Some(v) = lane.first_mut() {
                            v.im = 0.0;
                        }
                        if even {
                            if let Some(v) = lane.last_mut() {
                                v.im = 0.0;
                            }
                        }
                        plan.process_with_scratch(&mut lane, o, &mut scratch)
                            .map_err(fft_err)?;
                        if s != 1.0 {
                            o.iter_mut().for_each(|v| *v *= s);
                        }
                    }
                    Ok(())
                })
        }
    }
}
