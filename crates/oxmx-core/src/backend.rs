//! The interface every backend implements, and the registry the facade fills in.

use crate::array::ArrayData;
use crate::device::{Device, DeviceType};
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::Shape;
use std::sync::{Arc, OnceLock, RwLock};

/// One evaluated input of a primitive.
#[derive(Clone)]
pub struct Input {
    pub shape: Shape,
    pub dtype: Dtype,
    pub data: ArrayData,
    /// The input array is unreachable after this primitive runs and has handed its
    /// data over: the buffer may be reused for the output when no view shares it
    /// (`Arc::get_mut` on `data.buffer` succeeds).
    pub donatable: bool,
}

impl Input {
    pub fn size(&self) -> usize {
        crate::shape::size_of(&self.shape)
    }
    pub fn is_contiguous(&self) -> bool {
        self.data.is_contiguous(&self.shape)
    }
}

pub trait Backend: Send + Sync {
    fn device_type(&self) -> DeviceType;
    /// Human-readable name (for errors and `device_info`).
    fn name(&self) -> String;
    /// Execute a non-view primitive, producing the output data.
    fn run(
        &self,
        prim: &Primitive,
        inputs: Vec<Input>,
        out_shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData>;
    /// Kernels launched so far, where the backend counts them (a GPU).
    fn kernel_launches(&self) -> Option<u64> {
        None
    }
    /// The device's memory in bytes, where it has its own (a GPU).
    fn memory_size(&self) -> Option<usize> {
        None
    }
    /// Counters of the device's own memory (a GPU): active, peak and cached bytes.
    fn memory_counters(&self) -> Option<(usize, usize, usize)> {
        None
    }
    /// Apply the memory API to the device's own memory (no-op for the CPU, whose
    /// memory is the host pool).
    fn set_memory_limit(&self, _limit: usize) {}
    fn set_cache_limit(&self, _limit: usize) {}
    fn clear_cache(&self) {}
    fn reset_peak_memory(&self) {}
    /// Report the first error found in work this thread queued since its last call (checks
    /// a backend defers rather than wait for the device after each op), then forget them.
    /// Called at the end of every outermost evaluation (`backend::finish_all`).
    fn finish(&self) -> Result<()> {
        Ok(())
    }
    /// How many checks this thread has deferred so far (only ever grows): `eval` compares
    /// it around each node to know which arrays `finish` would invalidate.
    fn checks_queued(&self) -> u64 {
        0
    }
    /// Whether evaluation should run private chains of elementwise nodes as one fused
    /// node (`eval_fusion.rs`): worth it where each launch costs host time (a GPU).
    fn fuses_at_eval(&self) -> bool {
        false
    }
    /// Wait for all queued work (no-op for synchronous backends).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

fn registry() -> &'static RwLock<Vec<Arc<dyn Backend>>> {
    static R: OnceLock<RwLock<Vec<Arc<dyn Backend>>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Vec::new()))
}

/// `Backend::finish` on every registered backend: the first error, after all were asked
/// (each forgets this thread's queued checks).
pub fn finish_all() -> Result<()> {
    let all: Vec<Arc<dyn Backend>> = match registry().read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let mut first = Ok(());
    for b in all {
        if let Err(e) = b.finish() {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// Register a backend for its device type (the facade does this once).
pub fn register(b: Arc<dyn Backend>) {
    let mut r = match registry().write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    r.retain(|x| x.device_type() != b.device_type());
    r.push(b);
}

pub fn get(d: Device) -> Result<Arc<dyn Backend>> {
    let r = match registry().read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    r.iter()
        .find(|b| b.device_type() == d.kind && d.index == 0)
        .cloned()
        .ok_or_else(|| Error::value("eval", format!("{d} is not available.")))
}

/// Whether any registered backend fuses at evaluation (none: evaluation skips planning).
pub fn any_fuses_at_eval() -> bool {
    let r = match registry().read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    r.iter().any(|b| b.fuses_at_eval())
}

pub fn is_available(d: Device) -> bool {
    get(d).is_ok()
}
