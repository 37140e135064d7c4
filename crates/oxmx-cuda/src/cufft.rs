//! FFTs through cuFFT (every `unsafe` call of it lives here). One plan per (kind, length,
//! batch) is made on first use and kept; plans run on the backend's stream.

use cudarc::cufft::{result as fft, sys};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use oxmx_core::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const OP: &str = "fft";
/// Plans kept at most (each may hold a work area); the cache is emptied when full.
const MAX_PLANS: usize = 32;

/// complex -> complex, real -> complex (n/2+1 bins), complex bins -> real.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Kind {
    C2C,
    R2C,
    C2R,
}

struct Plan(sys::cufftHandle);

// SAFETY: a cuFFT plan is an opaque handle owned by this value only; cuFFT allows using
// it from any thread, and the plan map is behind a Mutex (one execution at a time).
unsafe impl Send for Plan {}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: the handle was created by cuFFT for this plan and is destroyed once.
        let _ = unsafe { fft::destroy(self.0) };
    }
}

pub struct CuFft {
    stream: Arc<CudaStream>,
    plans: Mutex<HashMap<(Kind, i32, i32), Plan>>,
}

fn err(e: impl std::fmt::Debug) -> Error {
    Error::runtime(OP, format!("cuFFT: {e:?}"))
}

impl CuFft {
    /// None when libcufft cannot be loaded.
    pub fn new(stream: &Arc<CudaStream>) -> Option<CuFft> {
        // SAFETY: only tries to dlopen the library by name.
        if !unsafe { sys::is_culib_present() } {
            return None;
        }
        Some(CuFft {
            stream: Arc::clone(stream),
            plans: Mutex::new(HashMap::new()),
        })
    }

    fn plan(&self, kind: Kind, n: i32, batch: i32) -> Result<Plan> {
        let t = match kind {
            Kind::C2C => sys::cufftType::CUFFT_C2C,
            Kind::R2C => sys::cufftType::CUFFT_R2C,
            Kind::C2R => sys::cufftType::CUFFT_C2R,
        };
        let mut dims = [n];
        // SAFETY: `dims` holds the one length of a rank-1 plan; null embeds mean packed
        // lanes (stride 1, distance the lane length), as the callers lay them out.
        let h = unsafe {
            fft::plan_many(
                1,
                dims.as_mut_ptr(),
                std::ptr::null_mut(),
                1,
                0,
                std::ptr::null_mut(),
                1,
                0,
                t,
                batch,
            )
        }
        .map_err(err)?;
        let plan = Plan(h);
        // SAFETY: the plan was just made; the stream is the backend's and outlives it.
        unsafe { fft::set_stream(plan.0, self.stream.cu_stream() as sys::cudaStream_t) }
            .map_err(err)?;
        Ok(plan)
    }

    /// `batch` packed lanes of `src` (starting `src_off` bytes in) transformed into
    /// `dst`: lanes of `n` complex (C2C), `n` real into n/2+1 complex (R2C), or n/2+1
    /// complex into `n` real (C2R, which overwrites `src`: pass a scratch copy). Unnormalised.
    #[allow(clippy::too_many_arguments)]
    pub fn exec(
        &self,
        kind: Kind,
        n: usize,
        batch: usize,
        inverse: bool,
        src: &CudaSlice<u8>,
        src_off: usize,
        dst: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let too_big = || Error::runtime(OP, "FFT larger than cuFFT's 32-bit sizes");
        let (ni, bi) = (
            i32::try_from(n).map_err(|_| too_big())?,
            i32::try_from(batch).map_err(|_| too_big())?,
        );
        let bins = n / 2 + 1;
        let (in_bytes, out_bytes) = match kind {
            Kind::C2C => (n * 8, n * 8),
            Kind::R2C => (n * 4, bins * 8),
            Kind::C2R => (bins * 8, n * 4),
        };
        let need_in = in_bytes
            .checked_mul(batch)
            .and_then(|b| b.checked_add(src_off));
        let need_out = out_bytes.checked_mul(batch);
        if need_in.is_none_or(|b| b > src.len()) || need_out.is_none_or(|b| b > dst.len()) {
            return Err(Error::runtime(OP, "FFT operands do not fit their buffers"));
        }
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::runtime(OP, "cuFFT plan cache poisoned"))?;
        let key = (kind, ni, bi);
        if !plans.contains_key(&key) {
            if plans.len() >= MAX_PLANS {
                plans.clear();
            }
            let p = self.plan(kind, ni, bi)?;
            plans.insert(key, p);
        }
        let plan = plans
            .get(&key)
            .ok_or_else(|| Error::runtime(OP, "cuFFT plan missing"))?;
        // cuFFT takes the input as a mutable pointer; only C2R writes through it, and
        // its callers pass a scratch copy they own
        let (ps, _rs) = src.device_ptr(&self.stream);
        let (pd, _rd) = dst.device_ptr_mut(&self.stream);
        let ps = ps + src_off as u64;
        // cufft.h's CUFFT_FORWARD (-1) and CUFFT_INVERSE (1), macros the bindings lack
        let dir: i32 = if inverse { 1 } else { -1 };
        // SAFETY: the plan transforms `batch` packed lanes whose byte sizes were checked
        // against both buffers above; the buffers stay alive until the stream has run the
        // call (the guards record events); the plan runs on that same stream.
        unsafe {
            match kind {
                Kind::C2C => fft::exec_c2c(plan.0, ps as *mut _, pd as *mut _, dir),
                Kind::R2C => fft::exec_r2c(plan.0, ps as *mut _, pd as *mut _),
                Kind::C2R => fft::exec_c2r(plan.0, ps as *mut _, pd as *mut _),
            }
        }
        .map_err(err)
    }
}
