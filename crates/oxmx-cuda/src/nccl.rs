//! NCCL, loaded at run time (dlopen of libnccl.so.2 or `OXMX_NCCL_LIBRARY`): one
//! communicator per group, its collectives queued on the backend's stream over device
//! memory.
//!
//! The raw NCCL calls are here; what to send is decided by `collective.rs`. Every call
//! checks the buffer extents it is given before handing pointers to NCCL. Like the MPI
//! engine, a collective first agrees on its byte length with every rank (a small
//! all-reduce of `len` and `!len`, read back on the host), so ranks that disagree get
//! the same `ValueError` instead of a hang or a short read; point-to-point messages
//! carry a length header that the receiver checks before it receives the payload.

use crate::device::{Allocator, CudaMem};
use cudarc::driver::{CudaContext, CudaSlice, DevicePtr, DevicePtrMut};
use libloading::{Library, Symbol};
use oxmx_core::distributed::{
    check_lengths, check_versions, recv_length_error, version_tag, Communicator, ReduceKind,
    MESSAGE_CHUNK,
};
use oxmx_core::{Dtype, Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, Mutex, OnceLock};

type Comm = *mut c_void;
type Stream = *mut c_void;
/// ncclDataType_t / ncclRedOp_t / ncclResult_t (C enums: int).
pub(crate) type NcclType = c_int;
type RedOp = c_int;
type Status = c_int;

#[repr(C)]
struct UniqueId {
    internal: [c_char; 128],
}

/// The entry points used, with their C signatures (nccl.h of NCCL 2.18 and later).
struct Api {
    get_version: unsafe extern "C" fn(*mut c_int) -> Status,
    get_unique_id: unsafe extern "C" fn(*mut UniqueId) -> Status,
    comm_init_rank: unsafe extern "C" fn(*mut Comm, c_int, UniqueId, c_int) -> Status,
    comm_destroy: unsafe extern "C" fn(Comm) -> Status,
    comm_split: unsafe extern "C" fn(Comm, c_int, c_int, *mut Comm, *mut c_void) -> Status,
    comm_user_rank: unsafe extern "C" fn(Comm, *mut c_int) -> Status,
    comm_count: unsafe extern "C" fn(Comm, *mut c_int) -> Status,
    all_reduce: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        NcclType,
        RedOp,
        Comm,
        Stream,
    ) -> Status,
    all_gather:
        unsafe extern "C" fn(*const c_void, *mut c_void, usize, NcclType, Comm, Stream) -> Status,
    reduce_scatter: unsafe extern "C" fn(
        *const c_void,
        *mut c_void,
        usize,
        NcclType,
        RedOp,
        Comm,
        Stream,
    ) -> Status,
    send: unsafe extern "C" fn(*const c_void, usize, NcclType, c_int, Comm, Stream) -> Status,
    recv: unsafe extern "C" fn(*mut c_void, usize, NcclType, c_int, Comm, Stream) -> Status,
    error_string: unsafe extern "C" fn(Status) -> *const c_char,
}

// ncclDataType_t
const NCCL_INT8: NcclType = 0;
const NCCL_UINT8: NcclType = 1;
const NCCL_INT32: NcclType = 2;
const NCCL_UINT32: NcclType = 3;
const NCCL_INT64: NcclType = 4;
const NCCL_UINT64: NcclType = 5;
const NCCL_FLOAT16: NcclType = 6;
pub(crate) const NCCL_FLOAT32: NcclType = 7;
const NCCL_FLOAT64: NcclType = 8;
const NCCL_BFLOAT16: NcclType = 9;
// ncclRedOp_t
const NCCL_SUM: RedOp = 0;
const NCCL_MAX: RedOp = 2;
const NCCL_MIN: RedOp = 3;

/// `OXMX_NCCL_LIBRARY` if set, else NCCL's soname and the development link.
fn candidates() -> Vec<std::ffi::OsString> {
    match std::env::var_os("OXMX_NCCL_LIBRARY") {
        Some(p) => vec![p],
        None => vec!["libnccl.so.2".into(), "libnccl.so".into()],
    }
}

fn fnptr<T: Copy>(lib: &'static Library, name: &str) -> std::result::Result<T, String> {
    // SAFETY: `T` is the C signature of `name` in nccl.h (each field of `Api` names its
    // entry point with that signature); the library is a static, so the pointer lives.
    let sym: Symbol<T> = unsafe { lib.get(format!("{name}\0").as_bytes()) }
        .map_err(|e| format!("the NCCL library lacks {name}: {e}"))?;
    Ok(*sym)
}

fn load() -> std::result::Result<Api, String> {
    static LIB: OnceLock<Library> = OnceLock::new();
    let lib = match LIB.get() {
        Some(l) => l,
        None => {
            let found = candidates().into_iter().find_map(|c| {
                // SAFETY: loading NCCL runs only its own initializers (as linking would).
                unsafe { Library::new(&c) }.ok()
            });
            let l = found.ok_or_else(|| {
                "NCCL (libnccl.so.2) was not found; install NCCL, put it on the library path, \
                 or set OXMX_NCCL_LIBRARY"
                    .to_string()
            })?;
            LIB.get_or_init(|| l)
        }
    };
    Ok(Api {
        get_version: fnptr(lib, "ncclGetVersion")?,
        get_unique_id: fnptr(lib, "ncclGetUniqueId")?,
        comm_init_rank: fnptr(lib, "ncclCommInitRank")?,
        comm_destroy: fnptr(lib, "ncclCommDestroy")?,
        comm_split: fnptr(lib, "ncclCommSplit")?,
        comm_user_rank: fnptr(lib, "ncclCommUserRank")?,
        comm_count: fnptr(lib, "ncclCommCount")?,
        all_reduce: fnptr(lib, "ncclAllReduce")?,
        all_gather: fnptr(lib, "ncclAllGather")?,
        reduce_scatter: fnptr(lib, "ncclReduceScatter")?,
        send: fnptr(lib, "ncclSend")?,
        recv: fnptr(lib, "ncclRecv")?,
        error_string: fnptr(lib, "ncclGetErrorString")?,
    })
}

fn api(op: &str) -> Result<&'static Api> {
    static API: OnceLock<std::result::Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|e| Error::runtime(op, e.clone()))
}

/// Whether libnccl loads here.
pub fn available() -> bool {
    api("distributed").is_ok()
}

fn check(op: &str, rc: Status) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let msg = match api(op) {
        // SAFETY: ncclGetErrorString returns a static NUL-terminated string for any code.
        Ok(a) => unsafe {
            let p = (a.error_string)(rc);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        },
        Err(_) => String::new(),
    };
    Err(Error::runtime(op, format!("NCCL error {rc}: {msg}")))
}

/// NCCL's version as "2.28.3".
pub fn version() -> Result<String> {
    let a = api("distributed")?;
    let mut v: c_int = 0;
    // SAFETY: writes one int.
    check("distributed", unsafe { (a.get_version)(&mut v) })?;
    Ok(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100))
}

/// A fresh unique id (rank 0 makes it; every rank passes it to `NcclComm::init`).
pub fn unique_id() -> Result<Vec<u8>> {
    let a = api("init")?;
    let mut id = UniqueId { internal: [0; 128] };
    // SAFETY: writes one ncclUniqueId.
    check("init", unsafe { (a.get_unique_id)(&mut id) })?;
    Ok(id.internal.iter().map(|&c| c as u8).collect())
}

/// NCCL's element types (what it reduces natively).
pub(crate) fn nccl_type(d: Dtype) -> Option<NcclType> {
    Some(match d {
        Dtype::Int8 => NCCL_INT8,
        Dtype::Uint8 => NCCL_UINT8,
        Dtype::Int32 => NCCL_INT32,
        Dtype::Uint32 => NCCL_UINT32,
        Dtype::Int64 => NCCL_INT64,
        Dtype::Uint64 => NCCL_UINT64,
        Dtype::Float16 => NCCL_FLOAT16,
        Dtype::Float32 => NCCL_FLOAT32,
        Dtype::Float64 => NCCL_FLOAT64,
        Dtype::Bfloat16 => NCCL_BFLOAT16,
        _ => return None,
    })
}

fn red_op(k: ReduceKind) -> RedOp {
    match k {
        ReduceKind::Sum => NCCL_SUM,
        ReduceKind::Max => NCCL_MAX,
        ReduceKind::Min => NCCL_MIN,
    }
}

/// One NCCL communicator. NCCL communicators are not thread-safe: every call holds
/// `lock`.
pub struct NcclComm {
    api: &'static Api,
    comm: Comm,
    rank: usize,
    size: usize,
    ctx: Arc<CudaContext>,
    alloc: Arc<Allocator>,
    lock: Mutex<()>,
}

// SAFETY: the communicator handle is only used under `lock`, and NCCL allows a
// communicator to be used from any thread when calls are serialized.
unsafe impl Send for NcclComm {}
// SAFETY: as above; `&NcclComm` gives no unsynchronized access to the handle.
unsafe impl Sync for NcclComm {}

impl std::fmt::Debug for NcclComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NcclComm(rank {} of {})", self.rank, self.size)
    }
}

impl Drop for NcclComm {
    fn drop(&mut self) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.ctx.bind_to_thread().is_ok() {
            // queued work on this communicator must finish before it goes away
            let _ = self.alloc.stream.synchronize();
            // SAFETY: the handle came from ncclCommInitRank/Split and is destroyed once.
            let _ = unsafe { (self.api.comm_destroy)(self.comm) };
        }
    }
}

/// A device buffer handed to NCCL: a slice and the byte range used.
pub(crate) struct Span<'a> {
    pub slice: &'a CudaSlice<u8>,
    pub offset: usize,
    pub len: usize,
}

fn in_bounds(op: &str, slice_len: usize, offset: usize, len: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= slice_len => Ok(()),
        _ => Err(Error::runtime(op, "device buffer smaller than the message")),
    }
}

impl NcclComm {
    /// Joins the group `id` names as `rank` of `size` (every rank calls this with the
    /// same id), on the backend's device and stream; then checks that every rank runs
    /// the same oxmx.
    pub fn init(
        ctx: &Arc<CudaContext>,
        alloc: &Arc<Allocator>,
        rank: usize,
        size: usize,
        id: &[u8],
    ) -> Result<NcclComm> {
        let op = "init";
        let a = api(op)?;
        if size == 0 || rank >= size {
            return Err(Error::value(
                op,
                format!("Invalid rank {rank} for a group of size {size}."),
            ));
        }
        let mut uid = UniqueId { internal: [0; 128] };
        if id.len() != uid.internal.len() {
            return Err(Error::value(
                op,
                format!("An NCCL unique id has 128 bytes, got {}.", id.len()),
            ));
        }
        for (d, &b) in uid.internal.iter_mut().zip(id) {
            *d = b as c_char;
        }
        let n = c_int::try_from(size).map_err(|_| Error::overflow(op))?;
        let r = c_int::try_from(rank).map_err(|_| Error::overflow(op))?;
        ctx.bind_to_thread()
            .map_err(|e| Error::runtime(op, format!("{e:?}")))?;
        let mut comm: Comm = std::ptr::null_mut();
        // SAFETY: `comm` receives one handle; the id is 128 initialized bytes. This
        // blocks until every rank has joined (NCCL's bootstrap).
        check(op, unsafe { (a.comm_init_rank)(&mut comm, n, uid, r) })?;
        let c = NcclComm {
            api: a,
            comm,
            rank,
            size,
            ctx: Arc::clone(ctx),
            alloc: Arc::clone(alloc),
            lock: Mutex::new(()),
        };
        check_versions(c.max_min_u64(op, version_tag())?)?;
        Ok(c)
    }

    fn stream(&self) -> Stream {
        self.alloc.stream.cu_stream() as Stream
    }

    fn bind(&self, op: &str) -> Result<std::sync::MutexGuard<'_, ()>> {
        let g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.ctx
            .bind_to_thread()
            .map_err(|e| Error::runtime(op, format!("{e:?}")))?;
        Ok(g)
    }

    fn alloc(&self, op: &str, nbytes: usize) -> Result<CudaMem> {
        self.alloc.alloc(op, nbytes.max(8))
    }

    fn upload(&self, op: &str, bytes: &[u8]) -> Result<CudaMem> {
        let mut m = self.alloc(op, bytes.len())?;
        if !bytes.is_empty() {
            let mut view = m.slice_mut()?.slice_mut(..bytes.len());
            self.alloc
                .stream
                .memcpy_htod(bytes, &mut view)
                .map_err(|e| Error::runtime(op, format!("host to device copy: {e:?}")))?;
        }
        Ok(m)
    }

    fn download(&self, op: &str, m: &CudaMem, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let s = m.slice()?;
        let stream = &self.alloc.stream;
        let err = |e: cudarc::driver::DriverError| {
            Error::runtime(op, format!("device to host copy: {e:?}"))
        };
        let src = s
            .try_slice(..dst.len())
            .ok_or_else(|| Error::runtime(op, "device buffer smaller than the message"))?;
        stream.memcpy_dtoh(&src, dst).map_err(err)?;
        stream.synchronize().map_err(err)
    }

    /// The largest and smallest `v` over the group (read back on the host).
    fn max_min_u64(&self, op: &str, v: u64) -> Result<(u64, u64)> {
        let mut pair = [0u8; 16];
        pair[..8].copy_from_slice(&v.to_le_bytes());
        pair[8..].copy_from_slice(&(!v).to_le_bytes());
        let mut m = self.upload(op, &pair)?;
        {
            let _g = self.bind(op)?;
            let stream = &self.alloc.stream;
            let (p, _guard) = m.slice_mut()?.device_ptr_mut(stream);
            // SAFETY: the buffer holds 2 uint64 values (in place, which NCCL allows).
            check(op, unsafe {
                (self.api.all_reduce)(
                    p as *const c_void,
                    p as *mut c_void,
                    2,
                    NCCL_UINT64,
                    NCCL_MAX,
                    self.comm,
                    self.stream(),
                )
            })?;
        }
        let mut out = [0u8; 16];
        self.download(op, &m, &mut out)?;
        // the maxima of v and of !v: the largest v and the complement of the smallest
        let hi = u64::from_le_bytes(out[..8].try_into().unwrap_or_default());
        let not_lo = u64::from_le_bytes(out[8..].try_into().unwrap_or_default());
        Ok((hi, !not_lo))
    }

    fn agree(&self, op: &str, len: usize) -> Result<()> {
        check_lengths(op, self.max_min_u64(op, len as u64)?, len)
    }

    fn peer(&self, op: &str, p: usize) -> Result<c_int> {
        if p >= self.size {
            return Err(Error::value(
                op,
                format!("Invalid rank {p} for a group of size {}.", self.size),
            ));
        }
        c_int::try_from(p).map_err(|_| Error::overflow(op))
    }

    /// `recv` = the reduction of every rank's `send` (`count` elements of `t`, `es`
    /// bytes each).
    pub(crate) fn all_reduce_dev(
        &self,
        kind: ReduceKind,
        t: NcclType,
        es: usize,
        send: Span<'_>,
        recv: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let op = "all_reduce";
        in_bounds(op, send.slice.len(), send.offset, send.len)?;
        in_bounds(op, recv.len(), 0, send.len)?;
        self.agree(op, send.len)?;
        if send.len == 0 {
            return Ok(());
        }
        let _g = self.bind(op)?;
        let stream = &self.alloc.stream;
        let (ps, _gs) = send.slice.device_ptr(stream);
        let (pr, _gr) = recv.device_ptr_mut(stream);
        // SAFETY: both ranges were checked above; every rank passes the same length.
        check(op, unsafe {
            (self.api.all_reduce)(
                (ps + send.offset as u64) as *const c_void,
                pr as *mut c_void,
                send.len / es.max(1),
                t,
                red_op(kind),
                self.comm,
                self.stream(),
            )
        })
    }

    /// `recv` = every rank's `send` bytes in rank order.
    pub(crate) fn all_gather_dev(&self, send: Span<'_>, recv: &mut CudaSlice<u8>) -> Result<()> {
        let op = "all_gather";
        in_bounds(op, send.slice.len(), send.offset, send.len)?;
        let total = send
            .len
            .checked_mul(self.size)
            .ok_or_else(|| Error::overflow(op))?;
        in_bounds(op, recv.len(), 0, total)?;
        self.agree(op, send.len)?;
        if send.len == 0 {
            return Ok(());
        }
        let _g = self.bind(op)?;
        let stream = &self.alloc.stream;
        let (ps, _gs) = send.slice.device_ptr(stream);
        let (pr, _gr) = recv.device_ptr_mut(stream);
        // SAFETY: `send` holds `len` and `recv` `size * len` bytes (checked above).
        check(op, unsafe {
            (self.api.all_gather)(
                (ps + send.offset as u64) as *const c_void,
                pr as *mut c_void,
                send.len,
                NCCL_UINT8,
                self.comm,
                self.stream(),
            )
        })
    }

    /// `recv` = this rank's block of the reduction of every rank's `send` (`size`
    /// blocks of `recv`'s length).
    pub(crate) fn reduce_scatter_dev(
        &self,
        kind: ReduceKind,
        t: NcclType,
        es: usize,
        send: Span<'_>,
        recv: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let op = "sum_scatter";
        in_bounds(op, send.slice.len(), send.offset, send.len)?;
        if !send.len.is_multiple_of(self.size) {
            return Err(Error::runtime(op, "buffer lengths differ"));
        }
        let block = send.len / self.size;
        in_bounds(op, recv.len(), 0, block)?;
        self.agree(op, send.len)?;
        if block == 0 {
            return Ok(());
        }
        let _g = self.bind(op)?;
        let stream = &self.alloc.stream;
        let (ps, _gs) = send.slice.device_ptr(stream);
        let (pr, _gr) = recv.device_ptr_mut(stream);
        // SAFETY: `send` holds `size` blocks and `recv` one block (checked above).
        check(op, unsafe {
            (self.api.reduce_scatter)(
                (ps + send.offset as u64) as *const c_void,
                pr as *mut c_void,
                block / es.max(1),
                t,
                red_op(kind),
                self.comm,
                self.stream(),
            )
        })
    }

    fn send_raw(&self, op: &str, p: u64, len: usize, peer: c_int) -> Result<()> {
        let _g = self.bind(op)?;
        // SAFETY: callers pass a device address with `len` readable bytes.
        check(op, unsafe {
            (self.api.send)(
                p as *const c_void,
                len,
                NCCL_UINT8,
                peer,
                self.comm,
                self.stream(),
            )
        })
    }

    fn recv_raw(&self, op: &str, p: u64, len: usize, peer: c_int) -> Result<()> {
        let _g = self.bind(op)?;
        // SAFETY: callers pass a device address with room for `len` bytes.
        check(op, unsafe {
            (self.api.recv)(
                p as *mut c_void,
                len,
                NCCL_UINT8,
                peer,
                self.comm,
                self.stream(),
            )
        })
    }

    /// Sends a length header, then `buf` in pieces of `MESSAGE_CHUNK` bytes.
    pub(crate) fn send_dev(&self, buf: Span<'_>, dst: usize) -> Result<()> {
        let op = "send";
        let peer = self.peer(op, dst)?;
        in_bounds(op, buf.slice.len(), buf.offset, buf.len)?;
        let header = self.upload(op, &(buf.len as u64).to_le_bytes())?;
        let stream = &self.alloc.stream;
        let (ph, _gh) = header.slice()?.device_ptr(stream);
        self.send_raw(op, ph, 8, peer)?;
        let (p, _g) = buf.slice.device_ptr(stream);
        let mut at = 0;
        while at < buf.len {
            let n = (buf.len - at).min(MESSAGE_CHUNK);
            self.send_raw(op, p + (buf.offset + at) as u64, n, peer)?;
            at += n;
        }
        // No wait here: the header buffer may go back to the allocator at once, since
        // whatever reuses it is queued on this stream after the send.
        Ok(())
    }

    /// Receives a message of exactly `len` bytes into `buf`. A message of another
    /// length is received into scratch memory and dropped (so later messages stay in
    /// step), and is a `ValueError`.
    pub(crate) fn recv_dev(&self, buf: &mut CudaSlice<u8>, len: usize, src: usize) -> Result<()> {
        let op = "recv";
        let peer = self.peer(op, src)?;
        in_bounds(op, buf.len(), 0, len)?;
        let header = self.alloc(op, 8)?;
        let stream = &self.alloc.stream;
        {
            let (ph, _gh) = header.slice()?.device_ptr(stream);
            self.recv_raw(op, ph, 8, peer)?;
        }
        let mut h = [0u8; 8];
        self.download(op, &header, &mut h)?;
        let announced = u64::from_le_bytes(h);
        if announced != len as u64 {
            let mut left = announced;
            let scratch = self.alloc(
                op,
                usize::try_from(announced)
                    .unwrap_or(MESSAGE_CHUNK)
                    .min(MESSAGE_CHUNK),
            )?;
            let (ps, _gs) = scratch.slice()?.device_ptr(stream);
            while left > 0 {
                let n = usize::try_from(left)
                    .unwrap_or(MESSAGE_CHUNK)
                    .min(MESSAGE_CHUNK);
                self.recv_raw(op, ps, n, peer)?;
                left -= n as u64;
            }
            stream
                .synchronize()
                .map_err(|e| Error::runtime(op, format!("{e:?}")))?;
            return Err(recv_length_error(src, announced, len));
        }
        let (p, _g) = buf.device_ptr_mut(stream);
        let mut at = 0;
        while at < len {
            let n = (len - at).min(MESSAGE_CHUNK);
            self.recv_raw(op, p + at as u64, n, peer)?;
            at += n;
        }
        Ok(())
    }

    /// Runs `f` over device copies of `send` and a device buffer of `recv`'s length,
    /// then copies the result to `recv` (collectives on host arrays).
    fn staged(
        &self,
        op: &str,
        send: &[u8],
        recv: &mut [u8],
        f: impl FnOnce(Span<'_>, &mut CudaSlice<u8>) -> Result<()>,
    ) -> Result<()> {
        let s = self.upload(op, send)?;
        let mut r = self.alloc(op, recv.len())?;
        f(
            Span {
                slice: s.slice()?,
                offset: 0,
                len: send.len(),
            },
            r.slice_mut()?,
        )?;
        self.download(op, &r, recv)
    }

    fn host_type(op: &str, dtype: Dtype, kind: ReduceKind) -> Result<(NcclType, usize)> {
        match dtype {
            // complex sums are sums of their float32 parts
            Dtype::Complex64 if kind == ReduceKind::Sum => Ok((NCCL_FLOAT32, 4)),
            d => nccl_type(d)
                .map(|t| (t, d.size()))
                .ok_or_else(|| Error::value(op, format!("NCCL cannot reduce {d} arrays."))),
        }
    }
}

impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> &str {
        "nccl"
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn all_reduce(
        &self,
        kind: ReduceKind,
        dtype: Dtype,
        send: &[u8],
        recv: &mut [u8],
    ) -> Result<()> {
        let (t, es) = Self::host_type("all_reduce", dtype, kind)?;
        if send.len() != recv.len() {
            return Err(Error::runtime("all_reduce", "buffer lengths differ"));
        }
        self.staged("all_reduce", send, recv, |s, r| {
            self.all_reduce_dev(kind, t, es, s, r)
        })
    }

    fn all_gather(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        if send.len().checked_mul(self.size) != Some(recv.len()) {
            return Err(Error::runtime("all_gather", "buffer lengths differ"));
        }
        self.staged("all_gather", send, recv, |s, r| self.all_gather_dev(s, r))
    }

    fn reduce_scatter(&self, dtype: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let (t, es) = Self::host_type("sum_scatter", dtype, ReduceKind::Sum)?;
        if recv.len().checked_mul(self.size) != Some(send.len()) {
            return Err(Error::runtime("sum_scatter", "buffer lengths differ"));
        }
        self.staged("sum_scatter", send, recv, |s, r| {
            self.reduce_scatter_dev(ReduceKind::Sum, t, es, s, r)
        })
    }

    fn send(&self, buf: &[u8], dst: usize) -> Result<()> {
        let m = self.upload("send", buf)?;
        self.send_dev(
            Span {
                slice: m.slice()?,
                offset: 0,
                len: buf.len(),
            },
            dst,
        )
    }

    fn recv(&self, buf: &mut [u8], src: usize) -> Result<()> {
        let mut m = self.alloc("recv", buf.len())?;
        self.recv_dev(m.slice_mut()?, buf.len(), src)?;
        self.download("recv", &m, buf)
    }

    fn split(&self, color: i32, key: i32) -> Result<Arc<dyn Communicator>> {
        let op = "split";
        if color < 0 {
            return Err(Error::value(op, "The color must be non-negative."));
        }
        let key = if key < 0 {
            c_int::try_from(self.rank).map_err(|_| Error::overflow(op))?
        } else {
            key
        };
        let mut out: Comm = std::ptr::null_mut();
        {
            let _g = self.bind(op)?;
            // SAFETY: writes one handle into `out`; a null config takes the parent's.
            check(op, unsafe {
                (self.api.comm_split)(self.comm, color, key, &mut out, std::ptr::null_mut())
            })?;
        }
        let (mut r, mut n): (c_int, c_int) = (0, 0);
        // SAFETY: `out` is a live communicator; each call writes one int.
        unsafe {
            check(op, (self.api.comm_user_rank)(out, &mut r))?;
            check(op, (self.api.comm_count)(out, &mut n))?;
        }
        Ok(Arc::new(NcclComm {
            api: self.api,
            comm: out,
            rank: usize::try_from(r).map_err(|_| Error::runtime(op, "negative rank"))?,
            size: usize::try_from(n).map_err(|_| Error::runtime(op, "bad group size"))?,
            ctx: Arc::clone(&self.ctx),
            alloc: Arc::clone(&self.alloc),
            lock: Mutex::new(()),
        }))
    }
}
