//! The rayon pool used by every kernel, sized by `OXMX_NUM_THREADS` when set, and the
//! host memory's huge-page advice.

/// Configure the global pool once (idempotent; a pool built elsewhere is kept), and
/// advise huge pages for large host buffers.
pub fn init_threads() {
    oxmx_core::memory::set_fresh_large_buffer_hook(crate::hugepages::advise);
    if let Some(n) = std::env::var("OXMX_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        if n > 0 {
            let _ = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global();
        }
    }
}

pub fn num_threads() -> usize {
    rayon::current_num_threads()
}
