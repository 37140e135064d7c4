//! Fused attention forward through cuDNN's graph API: the operation graph of
//! `softmax(scale · Q·Kᵀ [causal]) · V` (matmul, pointwise and reduction operations) that
//! cuDNN's flash-attention runtime fusion engine runs as one kernel. Used for
//! float16/bfloat16 with head size 64 or 128, no mask or the causal mask with as many
//! queries as keys (where MLX's bottom-right causal alignment is cuDNN's top-left), no
//! sinks; anything cuDNN declines runs the project's own kernel (`flash.rs`).
//!
//! The plan of a problem is built once (cuDNN compiles the kernel then) and kept; the
//! scale is a by-value operand, so one plan serves every scale.

use crate::cudnn::{execution_plan_where, Cudnn, Plan};
use crate::cudnn_graph::{self, Attr, Desc, Kind};
use crate::CudaBackend;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use oxmx_core::primitive::SdpaMask;
use oxmx_core::{Dtype, Error, Result};

const OP: &str = "scaled_dot_product_attention";
/// Problems whose plan is kept before the cache starts over.
const MAX_PLANS: usize = 256;
/// The operand alignment promised to cuDNN (the allocator's buffers start on 256 bytes).
const ALIGN: u64 = 16;

/// One attention problem: [b, hq, lq, d] queries against [b, hkv, lk, d] keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SdpaKey {
    pub bf16: bool,
    pub b: usize,
    pub hq: usize,
    pub hkv: usize,
    pub lq: usize,
    pub lk: usize,
    pub d: usize,
    pub causal: bool,
}

impl SdpaKey {
    fn io(&self) -> sys::cudnnDataType_t {
        if self.bf16 {
            sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16
        } else {
            sys::cudnnDataType_t::CUDNN_DATA_HALF
        }
    }
    /// Bytes of q (and the output), of k (and v), and of the float32 row statistics.
    fn bytes(&self) -> Option<[usize; 3]> {
        let rows = self.b.checked_mul(self.hq)?.checked_mul(self.lq)?;
        let kv = self.b.checked_mul(self.hkv)?.checked_mul(self.lk)?;
        Some([
            rows.checked_mul(self.d)?.checked_mul(2)?,
            kv.checked_mul(self.d)?.checked_mul(2)?,
            rows.checked_mul(4)?,
        ])
    }
}

/// Whether cuDNN may take this attention (it can still decline when the plan is built).
pub(crate) fn eligible(
    d: Dtype,
    shapes: (&[usize], &[usize], &[usize]),
    mask: SdpaMask,
    sinks: bool,
) -> bool {
    let (q, k, v) = shapes;
    let (Some(&lq), Some(&lk), Some(&dk), Some(&dv)) = (q.get(2), k.get(2), q.get(3), v.get(3))
    else {
        return false;
    };
    let heads_ok =
        matches!((q.get(1), k.get(1)), (Some(&hq), Some(&hkv)) if hkv > 0 && hq % hkv == 0);
    matches!(d, Dtype::Float16 | Dtype::Bfloat16)
        && dk == dv
        && matches!(dk, 64 | 128)
        && !sinks
        && lq > 0
        && lk > 0
        && heads_ok
        && q.first().is_some_and(|&b| b > 0)
        && match mask {
            SdpaMask::None => true,
            SdpaMask::Causal => lq == lk,
            _ => false,
        }
}

// Variant-pack ids of the operands the caller provides.
const UID_Q: i64 = 1;
const UID_K: i64 = 2;
const UID_V: i64 = 3;
const UID_O: i64 = 4;
const UID_STATS: i64 = 5;
const UID_SCALE: i64 = 6;
const UID_FILL: i64 = 7;

fn i64s(v: &[usize]) -> Result<Vec<i64>> {
    v.iter()
        .map(|&x| i64::try_from(x).map_err(|_| Error::overflow(OP)))
        .collect()
}

/// Row-major strides of `dims`.
fn packed(dims: &[usize]) -> Result<Vec<usize>> {
    let mut out = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1]
            .checked_mul(dims[i + 1])
            .ok_or_else(|| Error::overflow(OP))?;
    }
    Ok(out)
}

/// The operation graph under construction: its tensors (kept alive with it) and
/// operations in dependency order.
struct Builder {
    next_uid: i64,
    tensors: Vec<Desc>,
    ops: Vec<Desc>,
}

/// Where a tensor lives: a caller's buffer (by id), an intermediate, or a host scalar.
#[derive(Clone, Copy)]
enum Place {
    Given(i64),
    Virtual,
    Scalar(i64),
}

use sys::cudnnDataType_t as Dt;
use sys::cudnnPointwiseMode_t as Pw;

impl Builder {
    /// A tensor of `dims` (strides given, or packed), returning its index.
    fn tensor(
        &mut self,
        place: Place,
        dims: &[usize],
        strides: Option<&[usize]>,
        dt: Dt,
    ) -> Result<usize> {
        let strides = match strides {
            Some(s) => s.to_vec(),
            None => packed(dims)?,
        };
        let uid = match place {
            Place::Given(u) | Place::Scalar(u) => u,
            Place::Virtual => {
                self.next_uid += 1;
                self.next_uid
            }
        };
        let t = Desc::new(Kind::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
        t.set_data_type(Attr::CUDNN_ATTR_TENSOR_DATA_TYPE, dt)?;
        t.set_i64s(Attr::CUDNN_ATTR_TENSOR_DIMENSIONS, &i64s(dims)?)?;
        t.set_i64s(Attr::CUDNN_ATTR_TENSOR_STRIDES, &i64s(&strides)?)?;
        t.set_i64(Attr::CUDNN_ATTR_TENSOR_UNIQUE_ID, uid)?;
        t.set_i64(Attr::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, ALIGN as i64)?;
        match place {
            Place::Virtual => t.set_bool(Attr::CUDNN_ATTR_TENSOR_IS_VIRTUAL, true)?,
            Place::Scalar(_) => t.set_bool(Attr::CUDNN_ATTR_TENSOR_IS_BY_VALUE, true)?,
            Place::Given(_) => {}
        }
        self.tensors.push(t.finalize()?);
        Ok(self.tensors.len() - 1)
    }

    fn t(&self, i: usize) -> Result<&Desc> {
        self.tensors
            .get(i)
            .ok_or_else(|| Error::runtime(OP, "graph tensor missing"))
    }

    /// `y = mode(x[, b[, t]])` computed in `prec`; `axis` for GEN_INDEX.
    fn pointwise(
        &mut self,
        mode: Pw,
        prec: Dt,
        ins: &[usize],
        y: usize,
        axis: Option<i64>,
    ) -> Result<()> {
        let pw = Desc::new(Kind::CUDNN_BACKEND_POINTWISE_DESCRIPTOR)?;
        pw.set_pointwise_mode(Attr::CUDNN_ATTR_POINTWISE_MODE, mode)?;
        pw.set_data_type(Attr::CUDNN_ATTR_POINTWISE_MATH_PREC, prec)?;
        if let Some(a) = axis {
            pw.set_i64(Attr::CUDNN_ATTR_POINTWISE_AXIS, a)?;
        }
        let pw = pw.finalize()?;
        let op = Desc::new(Kind::CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR)?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, &[&pw])?;
        let ports = [
            Attr::CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
            Attr::CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
            Attr::CUDNN_ATTR_OPERATION_POINTWISE_TDESC,
        ];
        for (&i, port) in ins.iter().zip(ports) {
            op.set_descs(port, &[self.t(i)?])?;
        }
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_POINTWISE_YDESC, &[self.t(y)?])?;
        self.ops.push(op.finalize()?);
        Ok(())
    }

    fn reduce(&mut self, r: sys::cudnnReduceTensorOp_t, x: usize, y: usize) -> Result<()> {
        let rd = Desc::new(Kind::CUDNN_BACKEND_REDUCTION_DESCRIPTOR)?;
        rd.set_reduce_op(Attr::CUDNN_ATTR_REDUCTION_OPERATOR, r)?;
        rd.set_data_type(Attr::CUDNN_ATTR_REDUCTION_COMP_TYPE, Dt::CUDNN_DATA_FLOAT)?;
        let rd = rd.finalize()?;
        let op = Desc::new(Kind::CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR)?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_REDUCTION_DESC, &[&rd])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_REDUCTION_XDESC, &[self.t(x)?])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_REDUCTION_YDESC, &[self.t(y)?])?;
        self.ops.push(op.finalize()?);
        Ok(())
    }

    fn matmul(&mut self, a: usize, b: usize, c: usize) -> Result<()> {
        let md = Desc::new(Kind::CUDNN_BACKEND_MATMUL_DESCRIPTOR)?;
        md.set_data_type(Attr::CUDNN_ATTR_MATMUL_COMP_TYPE, Dt::CUDNN_DATA_FLOAT)?;
        let md = md.finalize()?;
        let op = Desc::new(Kind::CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR)?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_MATMUL_ADESC, &[self.t(a)?])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_MATMUL_BDESC, &[self.t(b)?])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_MATMUL_CDESC, &[self.t(c)?])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_MATMUL_DESC, &[&md])?;
        self.ops.push(op.finalize()?);
        Ok(())
    }
}

/// The forward graph with its row statistics (max + log of the sum, natural log):
/// S = Q·Kᵀ · scale, causal rows keep the keys at or before them, P = softmax(S) in the
/// input type, O = P·V.
fn forward_graph(h: sys::cudnnHandle_t, k: &SdpaKey) -> Result<Desc> {
    let mut g = Builder {
        next_uid: 100,
        tensors: Vec::new(),
        ops: Vec::new(),
    };
    let (b, hq, hkv, lq, lk, d) = (k.b, k.hq, k.hkv, k.lq, k.lk, k.d);
    let f32 = Dt::CUDNN_DATA_FLOAT;
    let scores = [b, hq, lq, lk];
    let rows = [b, hq, lq, 1];
    let one = [1usize; 4];
    let q = g.tensor(Place::Given(UID_Q), &[b, hq, lq, d], None, k.io())?;
    // Kᵀ: K's buffer read with the last two axes swapped
    let kv_stride = lk.checked_mul(d).ok_or_else(|| Error::overflow(OP))?;
    let kt_strides = [
        hkv.checked_mul(kv_stride)
            .ok_or_else(|| Error::overflow(OP))?,
        kv_stride,
        1,
        d,
    ];
    let kt = g.tensor(
        Place::Given(UID_K),
        &[b, hkv, d, lk],
        Some(&kt_strides),
        k.io(),
    )?;
    let v = g.tensor(Place::Given(UID_V), &[b, hkv, lk, d], None, k.io())?;
    let scale = g.tensor(Place::Scalar(UID_SCALE), &one, Some(&one), f32)?;
    let s0 = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.matmul(q, kt, s0)?;
    let mut s = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[s0, scale], s, None)?;
    if k.causal {
        let i32t = Dt::CUDNN_DATA_INT32;
        let row = g.tensor(Place::Virtual, &scores, None, i32t)?;
        g.pointwise(Pw::CUDNN_POINTWISE_GEN_INDEX, f32, &[s], row, Some(2))?;
        let col = g.tensor(Place::Virtual, &scores, None, i32t)?;
        g.pointwise(Pw::CUDNN_POINTWISE_GEN_INDEX, f32, &[s], col, Some(3))?;
        let keep = g.tensor(Place::Virtual, &scores, None, Dt::CUDNN_DATA_BOOLEAN)?;
        g.pointwise(
            Pw::CUDNN_POINTWISE_CMP_GE,
            Dt::CUDNN_DATA_BOOLEAN,
            &[row, col],
            keep,
            None,
        )?;
        let fill = g.tensor(Place::Scalar(UID_FILL), &one, Some(&one), f32)?;
        let masked = g.tensor(Place::Virtual, &scores, None, f32)?;
        g.pointwise(
            Pw::CUDNN_POINTWISE_BINARY_SELECT,
            f32,
            &[s, fill, keep],
            masked,
            None,
        )?;
        s = masked;
    }
    let max = g.tensor(Place::Virtual, &rows, None, f32)?;
    g.reduce(sys::cudnnReduceTensorOp_t::CUDNN_REDUCE_TENSOR_MAX, s, max)?;
    let centered = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_SUB, f32, &[s, max], centered, None)?;
    let e = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_EXP, f32, &[centered], e, None)?;
    let sum = g.tensor(Place::Virtual, &rows, None, f32)?;
    g.reduce(sys::cudnnReduceTensorOp_t::CUDNN_REDUCE_TENSOR_ADD, e, sum)?;
    let log_sum = g.tensor(Place::Virtual, &rows, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_LOG, f32, &[sum], log_sum, None)?;
    let stats = g.tensor(Place::Given(UID_STATS), &rows, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_ADD, f32, &[max, log_sum], stats, None)?;
    let p = g.tensor(Place::Virtual, &scores, None, k.io())?;
    g.pointwise(Pw::CUDNN_POINTWISE_DIV, f32, &[e, sum], p, None)?;
    let o = g.tensor(Place::Given(UID_O), &[b, hq, lq, d], None, k.io())?;
    g.matmul(p, v, o)?;
    let graph = Desc::new(Kind::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
    let ops: Vec<&Desc> = g.ops.iter().collect();
    graph.set_descs(Attr::CUDNN_ATTR_OPERATIONGRAPH_OPS, &ops)?;
    graph.set_handle(Attr::CUDNN_ATTR_OPERATIONGRAPH_HANDLE, h)?;
    graph.finalize()
}

impl Cudnn {
    /// Runs the attention `key` into `out`; Ok(false) when cuDNN has no engine for it
    /// (remembered: the caller then runs its own kernel, now and for later calls).
    fn sdpa_forward(
        &mut self,
        key: &SdpaKey,
        scale: f32,
        (q, k, v): (&CudaSlice<u8>, &CudaSlice<u8>, &CudaSlice<u8>),
        out: &mut CudaSlice<u8>,
    ) -> Result<bool> {
        let [qb, kb, sb] = key.bytes().ok_or_else(|| Error::overflow(OP))?;
        if q.len() < qb || k.len() < kb || v.len() < kb || out.len() < qb {
            return Err(Error::runtime(
                OP,
                "attention operands smaller than their shapes",
            ));
        }
        if !self.sdpa.contains_key(key) {
            let built = forward_graph(self.handle, key)
                .and_then(|graph| execution_plan_where(self.handle, &graph, &|_| true));
            let plan = match built {
                Ok((plan, ws)) => Some(Plan { plan, ws }),
                Err(e) => {
                    if std::env::var_os("OXMX_CUDNN_DEBUG").is_some() {
                        eprintln!("[oxmx] cuDNN declines attention {key:?}: {e}");
                    }
                    None
                }
            };
            if self.sdpa.len() >= MAX_PLANS {
                self.sdpa.clear();
            }
            self.sdpa.insert(*key, plan);
        }
        let Some(Some(plan)) = self.sdpa.get(key) else {
            return Ok(false);
        };
        let stream = &self.stream;
        let stats = self.alloc.alloc(OP, sb)?;
        let ws = self.alloc.alloc(OP, plan.ws.max(1))?;
        let (pq, _gq) = q.device_ptr(stream);
        let (pk, _gk) = k.device_ptr(stream);
        let (pv, _gv) = v.device_ptr(stream);
        let (po, _go) = out.device_ptr_mut(stream);
        let (ps, _gs) = stats.slice()?.device_ptr(stream);
        let (pw, _gw) = ws.slice()?.device_ptr(stream);
        if [pq, pk, pv, po, ps, pw].iter().any(|&p| p % ALIGN != 0) {
            return Err(Error::runtime(OP, "misaligned attention operand"));
        }
        // by-value operands are read from host memory during the execute call
        let fill = f32::NEG_INFINITY;
        let mut uids = vec![UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE];
        let mut ptrs = vec![pq, pk, pv, po, ps, &scale as *const f32 as u64];
        if key.causal {
            uids.push(UID_FILL);
            ptrs.push(&fill as *const f32 as u64);
        }
        let pack = Desc::new(Kind::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set_i64s(Attr::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, &uids)?;
        pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, &ptrs)?;
        pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_WORKSPACE, &[pw])?;
        let pack = pack.finalize()?;
        // SAFETY: the plan's graph describes exactly these operands (the plan is keyed by
        // the whole problem) and their byte sizes were checked against the buffers above;
        // the workspace and statistics have the plan's sizes; the two by-value scalars
        // are live locals read during this call. The buffers stay alive until the
        // stream has run it (the allocator's cache is ordered by the same stream).
        unsafe { cudnn_graph::execute(self.handle, &plan.plan, &pack) }?;
        Ok(true)
    }
}

impl CudaBackend {
    /// The attention through cuDNN when it has an engine for it: Ok(false) otherwise
    /// (no libcudnn, or declined), and the caller runs `flash_sdpa`.
    pub(crate) fn cudnn_sdpa(
        &self,
        key: &SdpaKey,
        scale: f64,
        qkv: (&CudaSlice<u8>, &CudaSlice<u8>, &CudaSlice<u8>),
        out: &mut CudaSlice<u8>,
    ) -> Result<bool> {
        let Ok(cudnn) = self.cudnn() else {
            return Ok(false);
        };
        let mut c = cudnn
            .lock()
            .map_err(|_| Error::runtime(OP, "cuDNN lock poisoned"))?;
        c.sdpa_forward(key, scale as f32, qkv, out)
    }
}
