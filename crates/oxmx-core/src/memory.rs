//! Host memory: 16-byte aligned buffers with accounting, a size-bucketed cache, a memory
//! limit (exceeding it is a `MemoryError`, never an abort) and a cache limit.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// One word of storage: u128 gives 16-byte alignment for every dtype we cast to.
type Word = u128;
const WORD: usize = std::mem::size_of::<Word>();

pub struct Pool {
    active: AtomicUsize,
    peak: AtomicUsize,
    cached: AtomicUsize,
    limit: AtomicUsize,
    cache_limit: AtomicUsize,
    free: Mutex<HashMap<usize, Vec<Vec<Word>>>>,
}

fn physical_memory() -> usize {
    if let Ok(s) = std::fs::read_to_string("/proc/meminfo") {
        for line in s.lines() {
            if let Some(rest) = line.strip_prefix("MemTotal:") {
                let kb: usize = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                if kb > 0 {
                    return kb.saturating_mul(1024);
                }
            }
        }
    }
    16usize << 30
}

pub fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let phys = physical_memory();
        Pool {
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            limit: AtomicUsize::new(phys),
            cache_limit: AtomicUsize::new(phys),
            free: Mutex::new(HashMap::new()),
        }
    })
}

/// Buffers from this size on are offered to the fresh-buffer hook.
const LARGE_BUFFER: usize = 4 << 20;
static FRESH_LARGE_BUFFER: OnceLock<fn(usize, usize)> = OnceLock::new();

/// Registers `f(address, bytes)`, called on every freshly reserved buffer of at least
/// 4 MiB before its pages are first written (the CPU backend asks the kernel for
/// transparent huge pages there, as NumPy does: fewer TLB misses when streaming large
/// arrays). The first registration wins.
pub fn set_fresh_large_buffer_hook(f: fn(usize, usize)) {
    let _ = FRESH_LARGE_BUFFER.set(f);
}

/// Round a word count up to its cache bucket.
fn bucket_words(words: usize) -> usize {
    if words <= 4096 {
        words.next_power_of_two().max(4)
    } else {
        // 64 KiB granularity for larger buffers
        words.div_ceil(4096).saturating_mul(4096)
    }
}

impl Pool {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    pub fn reset_peak(&self) {
        self.peak.store(self.active(), Ordering::Relaxed);
    }
    pub fn cache(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
    /// Returns the previous limit.
    pub fn set_limit(&self, v: usize) -> usize {
        self.limit.swap(v, Ordering::Relaxed)
    }
    pub fn set_cache_limit(&self, v: usize) -> usize {
        let old = self.cache_limit.swap(v, Ordering::Relaxed);
        self.trim_cache(v);
        old
    }
    pub fn clear_cache(&self) {
        self.trim_cache(0);
    }

    fn trim_cache(&self, target: usize) {
        let mut free = match self.free.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        if self.cache() <= target {
            return;
        }
        let mut keys: Vec<usize> = free.keys().copied().collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        for k in keys {
            if let Some(list) = free.get_mut(&k) {
                while self.cache() > target {
                    match list.pop() {
                        Some(v) => {
                            self.cached
                                .fetch_sub(v.capacity() * WORD, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
            }
        }
        free.retain(|_, v| !v.is_empty());
    }

    fn take_cached(&self, bucket: usize) -> Option<Vec<Word>> {
        let mut free = self.free.lock().ok()?;
        let v = free.get_mut(&bucket)?.pop()?;
        self.cached
            .fetch_sub(v.capacity() * WORD, Ordering::Relaxed);
        Some(v)
    }

    fn reserve(&self, op: &str, bytes: usize) -> Result<()> {
        let limit = self.limit();
        let mut cur = self.active.load(Ordering::Relaxed);
        loop {
            let next = cur.checked_add(bytes).ok_or_else(|| Error::overflow(op))?;
            if next > limit {
                // Cached buffers count against the machine, release them and retry once.
                if self.cache() > 0 {
                    self.clear_cache();
                }
                return Err(Error::memory(
                    op,
                    format!(
                        "Attempting to allocate {bytes} bytes which is greater than the memory limit ({limit} bytes, {cur} in use)."
                    ),
                ));
            }
            match self
                .active
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(c) => cur = c,
            }
        }
    }

    /// Allocate a buffer of at least `nbytes`. Contents are unspecified (fresh memory is
    /// zeroed; reused memory keeps old values): kernels write every output element.
    pub fn alloc(&'static self, op: &str, nbytes: usize) -> Result<Buffer> {
        let words = nbytes.div_ceil(WORD).max(1);
        let bucket = bucket_words(words);
        let bytes = bucket
            .checked_mul(WORD)
            .ok_or_else(|| Error::overflow(op))?;
        self.reserve(op, bytes)?;
        if let Some(v) = self.take_cached(bucket) {
            return Ok(Buffer::host(v, nbytes, self));
        }
        let mut v: Vec<Word> = Vec::new();
        if v.try_reserve_exact(bucket).is_err() {
            self.clear_cache();
            if v.try_reserve_exact(bucket).is_err() {
                self.active.fetch_sub(bytes, Ordering::Relaxed);
                return Err(Error::memory(
                    op,
                    format!("Unable to allocate {nbytes} bytes."),
                ));
            }
        }
        if bytes >= LARGE_BUFFER {
            if let Some(advise) = FRESH_LARGE_BUFFER.get() {
                advise(v.as_ptr() as usize, bytes);
            }
        }
        v.resize(bucket, 0);
        Ok(Buffer::host(v, nbytes, self))
    }

    fn release(&self, v: Vec<Word>) {
        let bytes = v.capacity() * WORD;
        self.active.fetch_sub(bytes, Ordering::Relaxed);
        if self.cache().saturating_add(bytes) <= self.cache_limit.load(Ordering::Relaxed) {
            if let Ok(mut free) = self.free.lock() {
                self.cached.fetch_add(bytes, Ordering::Relaxed);
                free.entry(v.capacity()).or_default().push(v);
            }
        }
    }
}

/// Memory of a device backend (a GPU) holding a buffer's bytes.
pub trait DeviceMemory: Send + Sync {
    /// Copy the bytes to the host (waits for pending work that writes them).
    fn download(&self, dst: &mut [u8]) -> Result<()>;
    /// For the owning backend to recover its own type.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// An owned buffer of `nbytes`: aligned host words, a device copy, or both.
///
/// The contents never change once the buffer is shared, so the two copies cannot
/// disagree: a buffer computed on a device gets its host copy on first host read
/// (`ensure_host`), and a host buffer used by a device gets a device copy once
/// (`set_device`). Writing through `&mut` (a fresh output, or a donated input) drops
/// the device copy. Host words are returned to the pool's cache on drop.
pub struct Buffer {
    host: OnceLock<Vec<Word>>,
    device: OnceLock<Box<dyn DeviceMemory>>,
    nbytes: usize,
    pool: &'static Pool,
}

impl Buffer {
    fn host(words: Vec<Word>, nbytes: usize, pool: &'static Pool) -> Buffer {
        Buffer {
            host: OnceLock::from(words),
            device: OnceLock::new(),
            nbytes,
            pool,
        }
    }

    /// A buffer whose bytes live in device memory only (until read on the host).
    pub fn from_device(mem: Box<dyn DeviceMemory>, nbytes: usize) -> Buffer {
        Buffer {
            host: OnceLock::new(),
            device: OnceLock::from(mem),
            nbytes,
            pool: pool(),
        }
    }

    pub fn nbytes(&self) -> usize {
        self.nbytes
    }

    /// Whether the bytes are on the host (host reads need `ensure_host` otherwise).
    pub fn on_host(&self) -> bool {
        self.host.get().is_some()
    }

    /// The device copy, if any.
    pub fn device(&self) -> Option<&dyn DeviceMemory> {
        self.device.get().map(|b| b.as_ref())
    }

    /// Attach a device copy of the (host) contents; ignored if one exists.
    pub fn set_device(&self, mem: Box<dyn DeviceMemory>) {
        let _ = self.device.set(mem);
    }

    /// Make the host copy exist (downloading from the device copy).
    pub fn ensure_host(&self, op: &str) -> Result<()> {
        if self.host.get().is_some() {
            return Ok(());
        }
        let dev = self
            .device
            .get()
            .ok_or_else(|| Error::runtime(op, "A buffer has neither host nor device data."))?;
        let mut b = self.pool.alloc(op, self.nbytes)?;
        dev.download(b.bytes_mut())?;
        if let Some(words) = b.host.take() {
            // Another thread may have won the race: its copy is identical.
            if let Err(words) = self.host.set(words) {
                self.pool.release(words);
            }
        }
        Ok(())
    }

    fn words(&self) -> &[Word] {
        self.host.get().map(Vec::as_slice).unwrap_or(&[])
    }

    /// The bytes on the host (empty unless `on_host`; backends call `ensure_host`).
    pub fn bytes(&self) -> &[u8] {
        let all: &[u8] = bytemuck::cast_slice(self.words());
        all.get(..self.nbytes).unwrap_or(&[])
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.nbytes;
        self.device.take();
        let words = match self.host.get_mut() {
            Some(w) => w.as_mut_slice(),
            None => &mut [],
        };
        let all: &mut [u8] = bytemuck::cast_slice_mut(words);
        let len = all.len();
        &mut all[..n.min(len)]
    }
    /// Typed view; the buffer's alignment (16) suits every element type.
    pub fn typed<T: bytemuck::Pod>(&self) -> &[T] {
        let n = self.nbytes / std::mem::size_of::<T>().max(1);
        let all: &[T] = bytemuck::cast_slice(self.words());
        all.get(..n).unwrap_or(&[])
    }
    pub fn typed_mut<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        let n = self.nbytes / std::mem::size_of::<T>().max(1);
        self.device.take();
        let words = match self.host.get_mut() {
            Some(w) => w.as_mut_slice(),
            None => &mut [],
        };
        let all: &mut [T] = bytemuck::cast_slice_mut(words);
        let m = all.len();
        &mut all[..n.min(m)]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(v) = self.host.take() {
            if v.capacity() > 0 {
                self.pool.release(v);
            }
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} bytes)", self.nbytes)
    }
}

pub fn alloc(op: &str, nbytes: usize) -> Result<Buffer> {
    pool().alloc(op, nbytes)
}
