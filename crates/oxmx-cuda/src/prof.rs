//! Host-side time of the CUDA backend, by phase (`OXMX_CUDA_PROFILE=1`): where a small
//! op's microseconds go (kernel lookup, uploads, allocation, the launch call). Off by
//! default; when off a phase costs one relaxed load.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
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
    /// waiting for the device: the deferred error words read at the end of an
    /// evaluation (`finish_checks`), after which the device idles until the next launch
    Sync,
    /// finding a generated kernel's compiled function (`Compiler::get*`: naming its entry
    /// and hashing its source for the in-memory cache; compiling on a miss)
    Source,
    /// cuBLASLt matmul calls (plan lookup and the library's own host work)
    Blas,
    /// cuDNN's execute calls (convolutions, attention)
    Dnn,
}

const NAMES: [&str; 9] = [
    "run", "lookup", "upload", "alloc", "launch", "sync", "source", "blas", "dnn",
];
static NS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
static COUNT: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];
/// `Backend::run`'s time by primitive name (nanoseconds, calls).
static OPS: Mutex<Vec<(&'static str, u64, u64)>> = Mutex::new(Vec::new());

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

/// Adds the time until it is dropped to the primitive `name`'s entry.
pub struct OpSpan(Option<(&'static str, Instant)>);

pub fn op_span(name: &'static str) -> OpSpan {
    OpSpan(enabled().then(|| (name, Instant::now())))
}

impl Drop for OpSpan {
    fn drop(&mut self) {
        if let Some((name, t)) = self.0 {
            let ns = t.elapsed().as_nanos() as u64;
            let mut ops = match OPS.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            match ops.iter_mut().find(|e| e.0 == name) {
                Some(e) => {
                    e.1 += ns;
                    e.2 += 1;
                }
                None => ops.push((name, ns, 1)),
            }
        }
    }
}

/// (primitive, total nanoseconds in `run`, count), largest first.
pub fn report_ops(reset: bool) -> Vec<(&'static str, u64, u64)> {
    let mut ops = match OPS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut out = if reset {
        std::mem::take(&mut *ops)
    } else {
        ops.clone()
    };
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}
