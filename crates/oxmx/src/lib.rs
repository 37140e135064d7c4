//! oxmx: MLX's array model in Rust — lazy arrays, NumPy-like ops, a multithreaded CPU
//! backend. This facade registers the backends and re-exports the engine.
//!
//! ```
//! use oxmx::{ops, Dtype};
//! oxmx::init();
//! let a = ops::arange(0.0, 6.0, 1.0, Dtype::Float32).unwrap();
//! let a = ops::reshape(&a, &[2, 3]).unwrap();
//! let b = ops::multiply(&a, &a).unwrap();        // lazy: nothing computed yet
//! let s = ops::sum(&b, None, false).unwrap();
//! let v: Vec<f32> = oxmx::to_vec(&s).unwrap();   // evaluates
//! assert_eq!(v, vec![55.0]);
//! ```
#![forbid(unsafe_code)]

pub use oxmx_core::*;
use std::sync::{Arc, Once};

/// Register the available backends (idempotent). Called by every entry point.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        oxmx_cpu::init_threads();
        backend::register(Arc::new(oxmx_cpu::CpuBackend));
        #[cfg(feature = "cuda")]
        if let Some(gpu) = oxmx_cuda::CudaBackend::detect() {
            let _ = CUDA.set(Arc::clone(&gpu));
            backend::register(gpu);
        }
    });
}

#[cfg(feature = "cuda")]
pub use oxmx_cuda;

#[cfg(feature = "cuda")]
static CUDA: std::sync::OnceLock<Arc<oxmx_cuda::CudaBackend>> = std::sync::OnceLock::new();

/// The CUDA backend, when a GPU was found (for what needs it by type: NCCL groups).
#[cfg(feature = "cuda")]
pub fn cuda_backend() -> Option<Arc<oxmx_cuda::CudaBackend>> {
    init();
    CUDA.get().cloned()
}

/// Evaluate `a` and copy its elements out in row-major order.
pub fn to_vec<T: bytemuck::Pod>(a: &Array) -> Result<Vec<T>> {
    init();
    if std::mem::size_of::<T>() != a.dtype().size() {
        return Err(Error::type_err(
            "to_vec",
            "Element type does not match dtype.",
        ));
    }
    let c = ops::contiguous(a)?;
    let d = c.data()?;
    let n = a.size();
    let all = d.buffer.typed::<T>();
    Ok(all[d.offset..d.offset + n].to_vec())
}

/// Threads used by CPU kernels (`OXMX_NUM_THREADS` or the machine's cores).
pub fn num_threads() -> usize {
    oxmx_cpu::num_threads()
}
