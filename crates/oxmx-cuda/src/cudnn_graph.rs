//! Owned descriptors of cuDNN's backend ("graph") API: create, set typed attributes,
//! finalize, read attributes back, execute. Every `unsafe` call of that API lives here;
//! callers (`cudnn.rs`) build operation graphs from these safe pieces.
//!
//! Why this API: cuDNN 9 serves the legacy `cudnnConvolutionForward` family by building
//! an engine configuration on every call, which costs about 0.15 ms of host time per
//! convolution; an execution plan made once and kept costs only a variant pack per call.

use cudarc::cudnn::sys;
use oxmx_core::{Error, Result};
use std::ffi::c_void;

pub use sys::cudnnBackendAttributeName_t as Attr;
use sys::cudnnBackendAttributeType_t as Ty;
pub use sys::cudnnBackendDescriptorType_t as Kind;

const OP: &str = "conv";

/// A cuDNN status as a result: the 3xxx codes ("not supported": for this shape, layout,
/// engine ...) become `Error::Unsupported`, so that callers can try another way.
pub fn check(what: &str, s: sys::cudnnStatus_t) -> Result<()> {
    match s {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => Ok(()),
        e if (e as u32) / 1000 == 3 => Err(Error::Unsupported {
            op: OP.into(),
            msg: format!("cuDNN does not support this convolution ({what}: {e:?})."),
        }),
        e => Err(Error::runtime(OP, format!("cuDNN {what}: {e:?}"))),
    }
}

/// One backend descriptor, destroyed on drop.
pub struct Desc(sys::cudnnBackendDescriptor_t);

// SAFETY: a descriptor is a host object owned by this value; cuDNN allows using it from
// another thread when calls are not concurrent, and the owners keep it behind a Mutex.
unsafe impl Send for Desc {}

impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnBackendCreateDescriptor in `new`, destroyed once.
        let _ = unsafe { sys::cudnnBackendDestroyDescriptor(self.0) };
    }
}

impl Desc {
    pub fn new(kind: Kind) -> Result<Desc> {
        let mut d = std::ptr::null_mut();
        // SAFETY: writes one fresh descriptor into `d`.
        check("create descriptor", unsafe {
            sys::cudnnBackendCreateDescriptor(kind, &mut d)
        })?;
        if d.is_null() {
            return Err(Error::runtime(OP, "cuDNN returned no descriptor"));
        }
        Ok(Desc(d))
    }

    /// Sets `attr` to the elements of `values`, each of cuDNN type `ty`. Private: the
    /// typed setters below pair each `T` with its `ty`.
    fn set<T>(&self, attr: Attr, ty: Ty, values: &[T]) -> Result<()> {
        let n = i64::try_from(values.len()).map_err(|_| Error::overflow(OP))?;
        // SAFETY: a live descriptor; cuDNN reads `n` elements of `ty` from `values`, whose
        // Rust type has that C type's size and layout (i64 / f32 / f64 / pointers /
        // repr(u32) enums, as each caller below pairs them).
        check("set attribute", unsafe {
            sys::cudnnBackendSetAttribute(self.0, attr, ty, n, values.as_ptr() as *const c_void)
        })
    }

    pub fn set_i64s(&self, attr: Attr, v: &[i64]) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_INT64, v)
    }
    pub fn set_i64(&self, attr: Attr, v: i64) -> Result<()> {
        self.set_i64s(attr, &[v])
    }
    pub fn set_f32(&self, attr: Attr, v: f32) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_FLOAT, &[v])
    }
    pub fn set_f64(&self, attr: Attr, v: f64) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_DOUBLE, &[v])
    }
    pub fn set_data_type(&self, attr: Attr, v: sys::cudnnDataType_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_DATA_TYPE, &[v])
    }
    pub fn set_conv_mode(&self, attr: Attr, v: sys::cudnnConvolutionMode_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_CONVOLUTION_MODE, &[v])
    }
    pub fn set_heur_mode(&self, attr: Attr, v: sys::cudnnBackendHeurMode_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_HEUR_MODE, &[v])
    }
    pub fn set_bool(&self, attr: Attr, v: bool) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_BOOLEAN, &[v])
    }
    pub fn set_pointwise_mode(&self, attr: Attr, v: sys::cudnnPointwiseMode_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_POINTWISE_MODE, &[v])
    }
    pub fn set_reduce_op(&self, attr: Attr, v: sys::cudnnReduceTensorOp_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &[v])
    }
    pub fn set_handle(&self, attr: Attr, h: sys::cudnnHandle_t) -> Result<()> {
        self.set(attr, Ty::CUDNN_TYPE_HANDLE, &[h])
    }
    pub fn set_descs(&self, attr: Attr, v: &[&Desc]) -> Result<()> {
        let raw: Vec<sys::cudnnBackendDescriptor_t> = v.iter().map(|d| d.0).collect();
        self.set(attr, Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw)
    }
    /// Device addresses (a variant pack's data pointers and workspace).
    pub fn set_ptrs(&self, attr: Attr, v: &[u64]) -> Result<()> {
        let raw: Vec<*mut c_void> = v.iter().map(|&p| p as *mut c_void).collect();
        self.set(attr, Ty::CUDNN_TYPE_VOID_PTR, &raw)
    }

    pub fn finalize(self) -> Result<Desc> {
        // SAFETY: a live descriptor whose required attributes the caller has set (cuDNN
        // checks them and reports a status otherwise).
        check("finalize", unsafe { sys::cudnnBackendFinalize(self.0) })?;
        Ok(self)
    }

    /// The number of elements of attribute `attr`.
    pub fn count(&self, attr: Attr, ty: Ty) -> Result<usize> {
        let mut n = 0i64;
        // SAFETY: asks for zero elements: cuDNN writes only the count.
        check("attribute count", unsafe {
            sys::cudnnBackendGetAttribute(self.0, attr, ty, 0, &mut n, std::ptr::null_mut())
        })?;
        usize::try_from(n).map_err(|_| Error::runtime(OP, "negative attribute count"))
    }

    /// Reads up to `buf.len()` elements of `attr` (cuDNN type `ty`) into `buf`; returns
    /// how many cuDNN wrote. Private: the typed getters below pair each `T` with its `ty`.
    fn get<T>(&self, attr: Attr, ty: Ty, buf: &mut [T]) -> Result<usize> {
        let want = i64::try_from(buf.len()).map_err(|_| Error::overflow(OP))?;
        let mut n = 0i64;
        // SAFETY: a live descriptor; `buf` has room for `want` elements of `ty` (each
        // caller's `T` has that C type's size and layout: i64, descriptor handles that
        // cuDNN fills, 4-byte enum values), and cuDNN writes at most `want`.
        check("get attribute", unsafe {
            sys::cudnnBackendGetAttribute(
                self.0,
                attr,
                ty,
                want,
                &mut n,
                buf.as_mut_ptr() as *mut c_void,
            )
        })?;
        Ok(usize::try_from(n).unwrap_or(0).min(buf.len()))
    }

    pub fn get_i64(&self, attr: Attr) -> Result<i64> {
        let mut v = [0i64];
        self.get(attr, Ty::CUDNN_TYPE_INT64, &mut v)?;
        Ok(v[0])
    }

    /// Up to `max` descriptor-valued elements of `attr`, each of kind `kind` (cuDNN fills
    /// descriptors the caller has created).
    pub fn get_descs(&self, attr: Attr, kind: Kind, max: usize) -> Result<Vec<Desc>> {
        let mut out = (0..max)
            .map(|_| Desc::new(kind))
            .collect::<Result<Vec<_>>>()?;
        let mut raw: Vec<sys::cudnnBackendDescriptor_t> = out.iter().map(|d| d.0).collect();
        let n = self.get(attr, Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR, &mut raw)?;
        out.truncate(n);
        Ok(out)
    }

    /// Up to `max` enum-valued elements of `attr` (of cuDNN type `ty`) as their integer
    /// values: read as u32, never as a Rust enum that a newer cuDNN could overflow.
    pub fn get_enum_values(&self, attr: Attr, ty: Ty, max: usize) -> Result<Vec<u32>> {
        let mut out = vec![0u32; max];
        let n = self.get(attr, ty, &mut out)?;
        out.truncate(n);
        Ok(out)
    }
}

/// The numerical notes of an engine, as integer values.
pub fn numerical_notes(engine: &Desc) -> Result<Vec<u32>> {
    engine.get_enum_values(
        Attr::CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
        Ty::CUDNN_TYPE_NUMERICAL_NOTE,
        16,
    )
}

/// Runs `plan` with the operands and workspace of `variant_pack` on the handle's stream.
///
/// # Safety
/// The variant pack's pointers must address device buffers at least as large as the
/// tensors the plan's operation graph describes, and a workspace of the plan's size,
/// all alive until the stream has run the call.
pub unsafe fn execute(h: sys::cudnnHandle_t, plan: &Desc, variant_pack: &Desc) -> Result<()> {
    let _span = crate::prof::span(crate::prof::Phase::Dnn);
    // SAFETY: the caller's contract; both descriptors are live and finalized.
    check("execute", unsafe {
        sys::cudnnBackendExecute(h, plan.0, variant_pack.0)
    })
}

/// A CUDA graph that cuDNN filled with an execution plan's kernels for one variant pack
/// (its native CUDA-graph API), instantiated: launching it replays the plan's work for
/// those addresses in about the cost of one kernel launch, where `cudnnBackendExecute`
/// costs tens of microseconds of host time.
pub struct NativeGraph {
    graph: cudarc::driver::sys::CUgraph,
    exec: cudarc::driver::sys::CUgraphExec,
}

// SAFETY: the graph and its instance are host objects owned by this value; the driver
// allows using them from any thread when calls are not concurrent, and the owner keeps
// them behind the cuDNN Mutex.
unsafe impl Send for NativeGraph {}

impl Drop for NativeGraph {
    fn drop(&mut self) {
        use cudarc::driver::sys as d;
        // SAFETY: both were created in `populate` and are destroyed once. Destroying an
        // instance whose launch is still queued is allowed: the driver finishes it first.
        unsafe {
            if !self.exec.is_null() {
                let _ = d::cuGraphExecDestroy(self.exec);
            }
            if !self.graph.is_null() {
                let _ = d::cuGraphDestroy(self.graph);
            }
        }
    }
}

impl NativeGraph {
    /// The plan's work for `variant_pack` as an instantiated CUDA graph; an error when
    /// the plan's engine does not support the native graph API.
    ///
    /// # Safety
    /// As `execute` for every later `launch`: the pack's addresses must stay valid
    /// (alive, large enough) whenever the graph is launched.
    pub unsafe fn populate(
        h: sys::cudnnHandle_t,
        plan: &Desc,
        variant_pack: &Desc,
    ) -> Result<NativeGraph> {
        use cudarc::driver::sys as d;
        let mut g = NativeGraph {
            graph: std::ptr::null_mut(),
            exec: std::ptr::null_mut(),
        };
        let drv = |what: &str, r: d::CUresult| {
            if r == d::CUresult::CUDA_SUCCESS {
                Ok(())
            } else {
                Err(Error::runtime(OP, format!("{what}: {r:?}")))
            }
        };
        // SAFETY: an out-pointer to a null handle, flags 0.
        drv("cuGraphCreate", unsafe {
            d::cuGraphCreate(&mut g.graph, 0)
        })?;
        // SAFETY: live, finalized descriptors and an empty graph; the driver's CUgraph
        // and the runtime's cudaGraph_t are the same handle.
        check("populate graph", unsafe {
            sys::cudnnBackendPopulateCudaGraph(
                h,
                plan.0,
                variant_pack.0,
                g.graph as sys::cudaGraph_t,
            )
        })?;
        // SAFETY: a complete graph; the instance handle is written once.
        drv("cuGraphInstantiate", unsafe {
            d::cuGraphInstantiateWithFlags(&mut g.exec, g.graph, 0)
        })?;
        Ok(g)
    }

    /// Queues the graph's work on `stream`.
    ///
    /// # Safety
    /// `populate`'s contract: the addresses the graph was made for are valid now and
    /// until the stream has run it.
    pub unsafe fn launch(&self, stream: cudarc::driver::sys::CUstream) -> Result<()> {
        let _span = crate::prof::span(crate::prof::Phase::Dnn);
        // SAFETY: an instantiated graph; the caller's contract covers its operands.
        let r = unsafe { cudarc::driver::sys::cuGraphLaunch(self.exec, stream) };
        if r == cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            Ok(())
        } else {
            Err(Error::runtime(OP, format!("cuGraphLaunch: {r:?}")))
        }
    }
}
