//! Host-side time of the CUDA backend, by phase (`OXMX_CUDA_PROFILE=1`): where a small
//! op's microseconds go (kernel lookup, uploads, allocation, the launch call). Off by
//! default; when off a phase costs one relaxed load.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy)]
pub enum Phase {
    /// `Backend::run` as a whole
    Run,
    /// generating kernel source and finding its compiled function
    Lookup,
    /// host data copied to the device (`device_of`)
    Upload,
    /// output buffers from the allocator
    Alloc,
    /// the driver's launch call
    Launch,
    /// waiting for the device inside an op (an error word read back after a gather,
    /// scatter or cross-entropy): the queue drains and the device then idles
    Sync,
}

const NAMES: [&str; 6] = ["run", "lookup", "upload", "alloc", "launch", "sync"];
static NS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static COUNT: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("OXMX_CUDA_PROFILE").is_ok_and(|v| v == "1"))
}

/// Adds the time until it is dropped to `phase`.
pub struct Span(Option<(Phase, Instant)>);

pub fn span(p: Phase) -> Span {
    Span(enabled().then(|| (p, Instant::now())))
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((p, t)) = self.0 {
            let i = p as usize;
            NS[i].fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
            COUNT[i].fetch_add(1, Relaxed);
        }
    }
}

/// (phase, total nanoseconds, count) since the start (or the last `reset`).
pub fn report(reset: bool) -> Vec<(&'static str, u64, u64)> {
    (0..NAMES.len())
        .map(|i| {
            let (ns, n) = if reset {
                (NS[i].swap(0, Relaxed), COUNT[i].swap(0, Relaxed))
            } else {
                (NS[i].load(Relaxed), COUNT[i].load(Relaxed))
            };
            (NAMES[i], ns, n)
        })
        .collect()
}
