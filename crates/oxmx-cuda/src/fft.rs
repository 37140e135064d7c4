//! `Primitive::Fft` on the GPU: cuFFT over the packed lanes of the last axis, with two
//! small kernels around it (the complex-to-real input copy with its DC/Nyquist imaginary
//! parts cleared, which cuFFT would otherwise read; the normalisation).

use crate::cufft::{CuFft, Kind};
use crate::kernels::PRELUDE;
use crate::{ffi, on_device, unsupported, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};

const OP: &str = "fft";

const PREP_C2R: &str = r#"
extern "C" __global__ void k(const float2* __restrict__ in, float2* __restrict__ out, long long lanes, long long bins, int even) {
  long long total = lanes * bins;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
    long long j = i % bins;
    float2 v = in[i];
    if (j == 0 || (even && j == bins - 1)) v.y = 0.0f;
    out[i] = v;
  }
}
"#;

const SCALE: &str = r#"
extern "C" __global__ void k(float* __restrict__ x, long long n, float s) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) x[i] *= s;
}
"#;

impl CudaBackend {
    fn cufft(&self) -> Result<&CuFft> {
        self.cufft
            .get_or_init(|| CuFft::new(&self.alloc.stream))
            .as_ref()
            .ok_or_else(|| unsupported(OP, "An FFT without libcufft"))
    }

    pub(crate) fn fft(
        &self,
        inverse: bool,
        real: bool,
        scale: f64,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let plan = self.cufft()?;
        let x = ins
            .into_iter()
            .next()
            .ok_or_else(|| Error::runtime(OP, "missing input"))?;
        let x = if x.is_contiguous() {
            x
        } else {
            self.contiguous_input(OP, x)?
        };
        let (mut out, nbytes) = self.new_output(OP, shape, out_dtype)?;
        let n_out = shape.last().copied().unwrap_or(0);
        let n_in = x.shape.last().copied().unwrap_or(0);
        let total_out = size_of(shape);
        if total_out == 0 || n_in == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let lanes = total_out / n_out;
        let stream = &self.alloc.stream;
        let (kind, n) = match (real, inverse) {
            (false, _) => (Kind::C2C, n_out),
            (true, false) => (Kind::R2C, n_in),
            (true, true) => (Kind::C2R, n_out),
        };
        // cuFFT reads the input in place; c2r also overwrites it, so it gets a copy
        let mut tmp;
        let (src, src_off) = if kind == Kind::C2R {
            let (t, _) = self.new_output(OP, &x.shape, Dtype::Complex64)?;
            tmp = t;
            let f = self.compiler.get(OP, format!("{PRELUDE}\n{PREP_C2R}"))?;
            let xs = self.device_of(OP, &x)?;
            let xoff = x.data.offset as u64 * 8;
            let dst = tmp.slice_mut()?;
            let (l, b) = (lanes as i64, n_in as i64);
            let even = (n_out % 2 == 0) as i32;
            let view = xs.slice(xoff as usize..);
            ffi::launch(OP, stream, &f, self.grid(lanes * n_in), |a| {
                ffi::arg(a, &view);
                ffi::arg(a, &*dst);
                ffi::arg(a, &l);
                ffi::arg(a, &b);
                ffi::arg(a, &even);
            })?;
            (tmp.slice()?, 0usize)
        } else {
            // c2c and r2c out of place leave the input untouched
            (self.device_of(OP, &x)?, x.data.offset * x.dtype.size())
        };
        plan.exec(kind, n, lanes, inverse, src, src_off, out.slice_mut()?)?;
        if scale != 1.0 {
            let f = self.compiler.get(OP, format!("{PRELUDE}\n{SCALE}"))?;
            let floats = total_out * if out_dtype == Dtype::Complex64 { 2 } else { 1 };
            let nn = floats as i64;
            let s = scale as f32;
            let dst = out.slice_mut()?;
            ffi::launch(OP, stream, &f, self.grid(floats), |a| {
                ffi::arg(a, &*dst);
                ffi::arg(a, &nn);
                ffi::arg(a, &s);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }
}
