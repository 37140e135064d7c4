//! The GPU context, its stream, and a caching allocator of device buffers.

use crate::ffi;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use oxmx_core::memory::DeviceMemory;
use oxmx_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Round a request up to its cache bucket (powers of two up to 1 MiB, then MiB steps).
fn bucket(nbytes: usize) -> usize {
    let n = nbytes.max(256);
    if n <= 1 << 20 {
        n.next_power_of_two()
    } else {
        n.div_ceil(1 << 20).saturating_mul(1 << 20)
    }
}

/// Device memory accounting and a size-bucketed cache of freed buffers.
pub struct Allocator {
    pub stream: Arc<CudaStream>,
    free: Mutex<HashMap<usize, Vec<CudaSlice<u8>>>>,
    pub active: AtomicUsize,
    pub peak: AtomicUsize,
    pub cached: AtomicUsize,
    pub limit: AtomicUsize,
    pub cache_limit: AtomicUsize,
}

impl Allocator {
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Arc<Allocator>> {
        let stream = ctx.default_stream();
        let total = ctx
            .total_mem()
            .map_err(|e| Error::runtime("gpu", format!("{e:?}")))?;
        Ok(Arc::new(Allocator {
            stream,
            free: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            limit: AtomicUsize::new(total / 100 * 95),
            cache_limit: AtomicUsize::new(usize::MAX),
        }))
    }

    fn take_cached(&self, b: usize) -> Option<CudaSlice<u8>> {
        let mut f = self.free.lock().ok()?;
        let s = f.get_mut(&b)?.pop()?;
        self.cached.fetch_sub(b, Ordering::Relaxed);
        Some(s)
    }

    /// Drop every cached buffer (gives the memory back to the driver).
    pub fn clear_cache(&self) {
        if let Ok(mut f) = self.free.lock() {
            f.clear();
        }
        self.cached.store(0, Ordering::Relaxed);
    }

    /// A device buffer of at least `nbytes`.
    pub fn alloc(self: &Arc<Self>, op: &str, nbytes: usize) -> Result<CudaMem> {
        let b = bucket(nbytes);
        let now = self
            .active
            .fetch_add(b, Ordering::Relaxed)
            .saturating_add(b);
        if now > self.limit.load(Ordering::Relaxed) {
            self.active.fetch_sub(b, Ordering::Relaxed);
            return Err(Error::memory(
                op,
                format!("Allocating {nbytes} bytes on the GPU would exceed the memory limit."),
            ));
        }
        self.peak.fetch_max(now, Ordering::Relaxed);
        let slice = match self.take_cached(b) {
            Some(s) => s,
            None => match ffi::alloc_bytes(&self.stream, b) {
                Ok(s) => s,
                Err(_) => {
                    self.clear_cache();
                    ffi::alloc_bytes(&self.stream, b).map_err(|_| {
                        self.active.fetch_sub(b, Ordering::Relaxed);
                        Error::memory(op, format!("Unable to allocate {nbytes} bytes on the GPU."))
                    })?
                }
            },
        };
        Ok(CudaMem {
            slice: Some(slice),
            nbytes,
            alloc: Arc::clone(self),
        })
    }

    fn release(&self, s: CudaSlice<u8>) {
        let b = s.len();
        self.active.fetch_sub(b, Ordering::Relaxed);
        let cached = self.cached.load(Ordering::Relaxed);
        if cached.saturating_add(b) > self.cache_limit.load(Ordering::Relaxed) {
            return; // dropping the slice frees it
        }
        if let Ok(mut f) = self.free.lock() {
            self.cached.fetch_add(b, Ordering::Relaxed);
            f.entry(b).or_default().push(s);
        }
    }
}

/// A device buffer; returns to the allocator's cache when dropped.
pub struct CudaMem {
    slice: Option<CudaSlice<u8>>,
    pub nbytes: usize,
    alloc: Arc<Allocator>,
}

impl CudaMem {
    pub fn slice(&self) -> Result<&CudaSlice<u8>> {
        self.slice
            .as_ref()
            .ok_or_else(|| Error::runtime("gpu", "released buffer"))
    }
    pub fn slice_mut(&mut self) -> Result<&mut CudaSlice<u8>> {
        self.slice
            .as_mut()
            .ok_or_else(|| Error::runtime("gpu", "released buffer"))
    }
}

impl Drop for CudaMem {
    fn drop(&mut self) {
        if let Some(s) = self.slice.take() {
            self.alloc.release(s);
        }
    }
}

impl DeviceMemory for CudaMem {
    fn download(&self, dst: &mut [u8]) -> Result<()> {
        let s = self.slice()?;
        let n = dst.len().min(self.nbytes);
        let stream = &self.alloc.stream;
        let err = |e: cudarc::driver::DriverError| {
            Error::runtime("gpu", format!("device to host copy: {e:?}"))
        };
        stream
            .memcpy_dtoh(&s.slice(..n), &mut dst[..n])
            .map_err(err)?;
        stream.synchronize().map_err(err)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
