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
use crate::device::CudaMem;
use crate::CudaBackend;
use cudarc::cudnn::sys;
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::SdpaMask;
use oxmx_core::{Dtype, Error, Result};
use std::sync::{Arc, Mutex, Weak};

const OP: &str = "scaled_dot_product_attention";
/// Problems whose plan is kept before the cache starts over.
const MAX_PLANS: usize = 256;
/// Variant packs kept per plan: a loop that keeps its last result while computing the
/// next one cycles through two or three sets of output addresses, and a model's layers
/// of one shape share a plan (GPT-2 small: 12 forward and 12 backward calls a step).
const PACKS_PER_PLAN: usize = 32;
/// By-value scalars of a graph at most (scale, the mask's fill, one).
const MAX_SCALARS: usize = 4;

/// A recent variant pack of a plan: the device addresses it binds (operands, then the
/// workspace) and the boxed scalars it points to.
pub(crate) struct PackEntry {
    addrs: Vec<u64>,
    values: Box<[f32; MAX_SCALARS]>,
    pack: Desc,
    /// Calls that found this pack (the same addresses) again.
    hits: u32,
    /// The plan's work for this pack as a CUDA graph (cuDNN's native graph API), made on
    /// the first hit, and the scalars it was made with (a graph holds them by value).
    graph: Option<(cudnn_graph::NativeGraph, Vec<f32>)>,
}
/// Whether attention plans may replay as native CUDA graphs
/// (`OXMX_CUDA_NO_CUDNN_GRAPHS=1` turns it off).
fn native_graphs_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("OXMX_CUDA_NO_CUDNN_GRAPHS").is_none())
}

/// The operand alignment promised to cuDNN (the allocator's buffers start on 256 bytes).
const ALIGN: u64 = 16;

/// Element strides of the caller's q, k, v, output and output cotangent, each in
/// [b, h, l, d] order (the last always 1; zeros where a pass does not use the tensor).
pub type Strides = [[usize; 4]; 5];
// indices into `Strides`: q, k, v, the output, its cotangent
const SQ: usize = 0;
const SK: usize = 1;
const SV: usize = 2;
const SO: usize = 3;
const SDO: usize = 4;

/// One attention problem: [b, hq, lq, d] queries against [b, hkv, lk, d] keys and values,
/// laid out as `strides` says (cuDNN reads strided operands in place: the heads of a fused
/// q/k/v projection need no copy).
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
    pub strides: Strides,
}

/// Row-major strides of [b, h, l, d] (None on overflow).
pub fn packed4(h: usize, l: usize, d: usize) -> Option<[usize; 4]> {
    let ld = l.checked_mul(d)?;
    Some([h.checked_mul(ld)?, ld, d, 1])
}

/// The strides of a [b, h, l, d] array stored as [b, l, h, d] (heads interleaved per
/// position: what a `(b, l, h·d)` projection viewed as heads is).
pub fn interleaved4(h: usize, l: usize, d: usize) -> Option<[usize; 4]> {
    let hd = h.checked_mul(d)?;
    Some([l.checked_mul(hd)?, d, hd, 1])
}

impl SdpaKey {
    /// A problem whose operands are all packed [b, h, l, d] arrays.
    #[allow(clippy::too_many_arguments)]
    pub fn packed(
        bf16: bool,
        (b, hq, hkv, lq, lk, d): (usize, usize, usize, usize, usize, usize),
        causal: bool,
    ) -> Option<SdpaKey> {
        let (q, kv) = (packed4(hq, lq, d)?, packed4(hkv, lk, d)?);
        Some(SdpaKey {
            bf16,
            b,
            hq,
            hkv,
            lq,
            lk,
            d,
            causal,
            strides: [q, kv, kv, q, q],
        })
    }

    /// The forward problem behind this backward one (its cotangent's layout dropped).
    pub(crate) fn forward_key(&self) -> SdpaKey {
        let mut k = *self;
        k.strides[SDO] = [0; 4];
        k
    }

    /// Bytes an operand of `dims` with `strides` reaches from its first element (2-byte
    /// elements; 0 when empty).
    fn reach(dims: [usize; 4], strides: [usize; 4]) -> Option<usize> {
        if dims.contains(&0) {
            return Some(0);
        }
        let mut last = 0usize;
        for (n, s) in dims.iter().zip(strides) {
            last = last.checked_add((n - 1).checked_mul(s)?)?;
        }
        last.checked_add(1)?.checked_mul(2)
    }

    /// Bytes reached by q, k, v, the output and its cotangent in their layouts.
    fn reaches(&self) -> Option<[usize; 5]> {
        let qd = [self.b, self.hq, self.lq, self.d];
        let kd = [self.b, self.hkv, self.lk, self.d];
        let st = &self.strides;
        Some([
            Self::reach(qd, st[SQ])?,
            Self::reach(kd, st[SK])?,
            Self::reach(kd, st[SV])?,
            Self::reach(qd, st[SO])?,
            Self::reach(qd, st[SDO])?,
        ])
    }

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

/// Whether cuDNN's backward may take `key` (float16/bfloat16, head size 64/128, lengths
/// in whole 128-row tiles: cuDNN 9.14's backward needs a padding mask otherwise).
pub fn grad_eligible(d: Dtype, key: &SdpaKey) -> bool {
    matches!(d, Dtype::Float16 | Dtype::Bfloat16)
        && key.bf16 == (d == Dtype::Bfloat16)
        && matches!(key.d, 64 | 128)
        && key.b > 0
        && key.hq > 0
        && key.hkv > 0
        && key.hq.is_multiple_of(key.hkv)
        && key.lq > 0
        && key.lq.is_multiple_of(128)
        && key.lk.is_multiple_of(128)
        && (!key.causal || key.lq == key.lk)
}

// Variant-pack ids of the operands the caller provides.
const UID_Q: i64 = 1;
const UID_K: i64 = 2;
const UID_V: i64 = 3;
const UID_O: i64 = 4;
const UID_STATS: i64 = 5;
const UID_SCALE: i64 = 6;
const UID_FILL: i64 = 7;
const UID_DO: i64 = 8;
const UID_DQ: i64 = 9;
const UID_DK: i64 = 10;
const UID_DV: i64 = 11;
const UID_SOFTMAX_SUM: i64 = 12;
const UID_DQ_ACCUM: i64 = 13;
const UID_ONE: i64 = 14;

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

    /// `s` with the scores of keys after their query (column > row) set to -inf.
    fn causal_mask(&mut self, s: usize, scores: &[usize]) -> Result<usize> {
        let (f32, i32t) = (Dt::CUDNN_DATA_FLOAT, Dt::CUDNN_DATA_INT32);
        let one = [1usize; 4];
        let row = self.tensor(Place::Virtual, scores, None, i32t)?;
        self.pointwise(Pw::CUDNN_POINTWISE_GEN_INDEX, f32, &[s], row, Some(2))?;
        let col = self.tensor(Place::Virtual, scores, None, i32t)?;
        self.pointwise(Pw::CUDNN_POINTWISE_GEN_INDEX, f32, &[s], col, Some(3))?;
        let keep = self.tensor(Place::Virtual, scores, None, Dt::CUDNN_DATA_BOOLEAN)?;
        self.pointwise(
            Pw::CUDNN_POINTWISE_CMP_GE,
            Dt::CUDNN_DATA_BOOLEAN,
            &[row, col],
            keep,
            None,
        )?;
        let fill = self.tensor(Place::Scalar(UID_FILL), &one, Some(&one), f32)?;
        let masked = self.tensor(Place::Virtual, scores, None, f32)?;
        self.pointwise(
            Pw::CUDNN_POINTWISE_BINARY_SELECT,
            f32,
            &[s, fill, keep],
            masked,
            None,
        )?;
        Ok(masked)
    }

    /// `a·b` into the caller's [b, hkv, lk, d] tensor `uid`: directly, or with fewer
    /// key/value heads than query heads as the sum over each group of the [b, hq, lk, d]
    /// product.
    fn grouped_matmul(
        &mut self,
        (a, b): (usize, usize),
        uid: i64,
        [bs, hq, hkv, lk, d]: [usize; 5],
        io: Dt,
    ) -> Result<()> {
        let out = self.tensor(Place::Given(uid), &[bs, hkv, lk, d], None, io)?;
        if hq == hkv {
            return self.matmul(a, b, out);
        }
        let full = self.tensor(Place::Virtual, &[bs, hq, lk, d], None, io)?;
        self.matmul(a, b, full)?;
        self.reduce(
            sys::cudnnReduceTensorOp_t::CUDNN_REDUCE_TENSOR_ADD,
            full,
            out,
        )
    }

    fn reshape(&mut self, x: usize, y: usize) -> Result<()> {
        let op = Desc::new(Kind::CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR)?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_RESHAPE_XDESC, &[self.t(x)?])?;
        op.set_descs(Attr::CUDNN_ATTR_OPERATION_RESHAPE_YDESC, &[self.t(y)?])?;
        self.ops.push(op.finalize()?);
        Ok(())
    }

    fn finish(self, h: sys::cudnnHandle_t) -> Result<Desc> {
        let graph = Desc::new(Kind::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
        let ops: Vec<&Desc> = self.ops.iter().collect();
        graph.set_descs(Attr::CUDNN_ATTR_OPERATIONGRAPH_OPS, &ops)?;
        graph.set_handle(Attr::CUDNN_ATTR_OPERATIONGRAPH_HANDLE, h)?;
        graph.finalize()
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
    let st = &k.strides;
    let q = g.tensor(Place::Given(UID_Q), &[b, hq, lq, d], Some(&st[SQ]), k.io())?;
    // Kᵀ: K read with its last two axes swapped
    let kt = g.tensor(
        Place::Given(UID_K),
        &[b, hkv, d, lk],
        Some(&transposed(st[SK])),
        k.io(),
    )?;
    let v = g.tensor(Place::Given(UID_V), &[b, hkv, lk, d], Some(&st[SV]), k.io())?;
    let scale = g.tensor(Place::Scalar(UID_SCALE), &one, Some(&one), f32)?;
    let s0 = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.matmul(q, kt, s0)?;
    let mut s = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[s0, scale], s, None)?;
    if k.causal {
        s = g.causal_mask(s, &scores)?;
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
    let o = g.tensor(Place::Given(UID_O), &[b, hq, lq, d], Some(&st[SO]), k.io())?;
    g.matmul(p, v, o)?;
    g.finish(h)
}

/// Strides of a [b, h, l, d] operand read as [b, h, d, l].
fn transposed(s: [usize; 4]) -> [usize; 4] {
    [s[0], s[1], s[3], s[2]]
}

/// Strides that read a packed [b, h, l, d] buffer as [b, h, d, l] (the last two axes
/// swapped).
fn swapped(h: usize, l: usize, d: usize) -> Result<[usize; 4]> {
    let per = l.checked_mul(d).ok_or_else(|| Error::overflow(OP))?;
    Ok([
        h.checked_mul(per).ok_or_else(|| Error::overflow(OP))?,
        per,
        1,
        d,
    ])
}

/// The backward graph (FlashAttention-2's, as cuDNN's engine takes it): with the
/// forward's row statistics `stats`, P = exp(scale Q·Kᵀ - stats) [causal], dV = Pᵀ·dO,
/// dS = P ∘ (dO·Vᵀ - rowsum(dO ∘ O)) · scale, dK = dSᵀ·Q, dQ = dS·K (accumulated in
/// float32, then rounded). With fewer key/value heads, the group's gradients are summed.
fn backward_graph(h: sys::cudnnHandle_t, k: &SdpaKey) -> Result<Desc> {
    let mut g = Builder {
        next_uid: 100,
        tensors: Vec::new(),
        ops: Vec::new(),
    };
    let (b, hq, hkv, lq, lk, d) = (k.b, k.hq, k.hkv, k.lq, k.lk, k.d);
    let (f32, io) = (Dt::CUDNN_DATA_FLOAT, k.io());
    let scores = [b, hq, lq, lk];
    let rows = [b, hq, lq, 1];
    let qshape = [b, hq, lq, d];
    let one = [1usize; 4];
    let st = &k.strides;
    let q = g.tensor(Place::Given(UID_Q), &qshape, Some(&st[SQ]), io)?;
    let kt = g.tensor(
        Place::Given(UID_K),
        &[b, hkv, d, lk],
        Some(&transposed(st[SK])),
        io,
    )?;
    let vt = g.tensor(
        Place::Given(UID_V),
        &[b, hkv, d, lk],
        Some(&transposed(st[SV])),
        io,
    )?;
    let o = g.tensor(Place::Given(UID_O), &qshape, Some(&st[SO]), io)?;
    let dout = g.tensor(Place::Given(UID_DO), &qshape, Some(&st[SDO]), io)?;
    let stats = g.tensor(Place::Given(UID_STATS), &rows, None, f32)?;
    let scale = g.tensor(Place::Scalar(UID_SCALE), &one, Some(&one), f32)?;
    let unit = g.tensor(Place::Scalar(UID_ONE), &one, Some(&one), f32)?;
    // softmax_sum = rowsum(dO ∘ O)
    let prod = g.tensor(Place::Virtual, &qshape, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[dout, o], prod, None)?;
    let rsum = g.tensor(Place::Virtual, &rows, None, f32)?;
    g.reduce(
        sys::cudnnReduceTensorOp_t::CUDNN_REDUCE_TENSOR_ADD,
        prod,
        rsum,
    )?;
    let softmax_sum = g.tensor(Place::Given(UID_SOFTMAX_SUM), &rows, None, f32)?;
    g.pointwise(
        Pw::CUDNN_POINTWISE_MUL,
        f32,
        &[rsum, unit],
        softmax_sum,
        None,
    )?;
    // P = exp(scale Q·Kᵀ - stats), masked
    let s0 = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.matmul(q, kt, s0)?;
    let s1 = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[s0, scale], s1, None)?;
    let mut s2 = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_SUB, f32, &[s1, stats], s2, None)?;
    if k.causal {
        s2 = g.causal_mask(s2, &scores)?;
    }
    let p = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_EXP, f32, &[s2], p, None)?;
    // the [b, hq, lk, lq] view of a [b, hq, lq, lk] score tensor
    let t_dims = [b, hq, lk, lq];
    let t_strides = swapped(hq, lq, lk)?;
    let pt = g.tensor(Place::Virtual, &t_dims, Some(&t_strides), io)?;
    g.reshape(p, pt)?;
    let kv_shape = [b, hkv, lk, d];
    // dV = Pᵀ·dO (summed over the group's heads)
    g.grouped_matmul((pt, dout), UID_DV, [b, hq, hkv, lk, d], io)?;
    // dS = P ∘ (dO·Vᵀ - softmax_sum) · scale
    let dp = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.matmul(dout, vt, dp)?;
    let centered = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(
        Pw::CUDNN_POINTWISE_SUB,
        f32,
        &[dp, softmax_sum],
        centered,
        None,
    )?;
    let weighted = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[centered, p], weighted, None)?;
    let ds = g.tensor(Place::Virtual, &scores, None, f32)?;
    g.pointwise(Pw::CUDNN_POINTWISE_MUL, f32, &[weighted, scale], ds, None)?;
    // dK = dSᵀ·Q (summed over the group's heads)
    let dst = g.tensor(Place::Virtual, &t_dims, Some(&t_strides), io)?;
    g.reshape(ds, dst)?;
    g.grouped_matmul((dst, q), UID_DK, [b, hq, hkv, lk, d], io)?;
    // dQ = dS·K in float32, then rounded
    let kview = g.tensor(Place::Virtual, &kv_shape, None, f32)?;
    g.reshape(kt, kview)?;
    let dq_acc = g.tensor(Place::Given(UID_DQ_ACCUM), &qshape, None, f32)?;
    g.matmul(ds, kview, dq_acc)?;
    let dq = g.tensor(Place::Given(UID_DQ), &qshape, None, io)?;
    g.pointwise(Pw::CUDNN_POINTWISE_IDENTITY, f32, &[dq_acc], dq, None)?;
    g.finish(h)
}

/// A caller's operand: its buffer and the byte offset of its first element.
pub(crate) type Operand<'a> = (&'a CudaSlice<u8>, usize);

/// q, k, v, the forward's output and its cotangent.
pub(crate) type GradInputs<'a> = (
    Operand<'a>,
    Operand<'a>,
    Operand<'a>,
    Operand<'a>,
    Operand<'a>,
);

/// The device address of `x`'s first element after checking that `need` bytes from it
/// lie inside its buffer, with the guard that orders the buffer's use on `stream`.
fn operand_ptr<'a>(
    (buf, off): Operand<'a>,
    need: usize,
    stream: &'a Arc<cudarc::driver::CudaStream>,
) -> Result<(u64, impl Drop + 'a)> {
    if off.checked_add(need).is_none_or(|end| end > buf.len()) {
        return Err(Error::runtime(OP, "attention operand outside its buffer"));
    }
    let (p, guard) = buf.device_ptr(stream);
    Ok((p + off as u64, guard))
}

/// Which graph of a problem.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Pass {
    Forward,
    Backward,
}

impl Cudnn {
    /// The plan of `key`'s `pass`, built on first use; None when cuDNN declines it
    /// (remembered, so the caller's own kernel runs without asking again).
    fn sdpa_plan(&mut self, key: &SdpaKey, pass: Pass) -> Option<&Plan> {
        let map = match pass {
            Pass::Forward => &mut self.sdpa,
            Pass::Backward => &mut self.sdpa_bwd,
        };
        if !map.contains_key(key) {
            let graph = match pass {
                Pass::Forward => forward_graph(self.handle, key),
                Pass::Backward => backward_graph(self.handle, key),
            };
            let built = graph.and_then(|g| execution_plan_where(self.handle, &g, &|_| true));
            let plan = match built {
                Ok((plan, ws)) => Some(Plan { plan, ws }),
                Err(e) => {
                    if std::env::var_os("OXMX_CUDNN_DEBUG").is_some() {
                        eprintln!("[oxmx] cuDNN declines attention {pass:?} {key:?}: {e}");
                    }
                    None
                }
            };
            if map.len() >= MAX_PLANS {
                map.clear();
            }
            map.insert(*key, plan);
        }
        map.get(key).and_then(Option::as_ref)
    }

    /// Runs `key`'s `pass` plan with the device operands `uids[..n]` at `ptrs` (n =
    /// `ptrs.len()`) and the by-value scalars `uids[n..]` = `scalars`. The variant pack
    /// of a recent call (one of `PACKS_PER_PLAN`) is reused when the device addresses (workspace included) are
    /// the same: its scalars live in the cache entry and are rewritten before each call.
    ///
    /// # Safety
    /// Each pointer must address a live buffer at least as large as the tensor its id
    /// names in the plan's graph, alive until the stream has run the call.
    unsafe fn sdpa_execute(
        &mut self,
        key: &SdpaKey,
        pass: Pass,
        uids: &[i64],
        ptrs: &[u64],
        scalars: &[f32],
    ) -> Result<bool> {
        if uids.len() != ptrs.len() + scalars.len() || scalars.len() > MAX_SCALARS {
            return Err(Error::runtime(OP, "attention operand list"));
        }
        let (handle, alloc, stream) = (self.handle, self.alloc.clone(), self.stream.clone());
        let Some(ws_bytes) = self.sdpa_plan(key, pass).map(|p| p.ws) else {
            return Ok(false);
        };
        let ws = alloc.alloc(OP, ws_bytes.max(1))?;
        let (pw, _gw) = ws.slice()?.device_ptr(&stream);
        if pw % ALIGN != 0 {
            return Err(Error::runtime(OP, "misaligned attention workspace"));
        }
        let mut addrs = ptrs.to_vec();
        addrs.push(pw);
        let found = self
            .packs
            .get(&(pass, *key))
            .and_then(|es| es.iter().position(|e| e.addrs == addrs));
        let hit = found.is_some();
        if !hit {
            let values = Box::new([0f32; MAX_SCALARS]);
            let mut all = ptrs.to_vec();
            all.extend(
                values
                    .iter()
                    .take(scalars.len())
                    .map(|v| v as *const f32 as u64),
            );
            let pack = Desc::new(Kind::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
            pack.set_i64s(Attr::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, uids)?;
            pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, &all)?;
            pack.set_ptrs(Attr::CUDNN_ATTR_VARIANT_PACK_WORKSPACE, &[pw])?;
            let pack = pack.finalize()?;
            if self.packs.len() >= MAX_PLANS {
                self.packs.clear();
            }
            let entries = self.packs.entry((pass, *key)).or_default();
            if entries.len() >= PACKS_PER_PLAN {
                entries.remove(0);
            }
            entries.push(PackEntry {
                addrs,
                values,
                pack,
                hits: 0,
                graph: None,
            });
        }
        let entry = self
            .packs
            .get_mut(&(pass, *key))
            .and_then(|es| match found {
                Some(i) => es.get_mut(i),
                None => es.last_mut(),
            })
            .ok_or_else(|| Error::runtime(OP, "variant pack missing"))?;
        entry.values[..scalars.len()].copy_from_slice(scalars);
        let plan = match pass {
            Pass::Forward => self.sdpa.get(key),
            Pass::Backward => self.sdpa_bwd.get(key),
        }
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::runtime(OP, "attention plan missing"))?;
        if hit {
            entry.hits = entry.hits.saturating_add(1);
        }
        // The same addresses again (a loop's buffers): replay the plan as a CUDA graph,
        // made on the first repeat, while the scalars are those it holds.
        let graphs = !self.sdpa_no_graph.contains(&(pass, *key)) && native_graphs_enabled();
        if hit && graphs && entry.graph.is_none() {
            // SAFETY: the pack's addresses are this call's (the caller's contract) and
            // any later launch happens only for the same addresses (`addrs` compared).
            match unsafe { cudnn_graph::NativeGraph::populate(handle, &plan.plan, &entry.pack) } {
                Ok(g) => entry.graph = Some((g, scalars.to_vec())),
                Err(e) => {
                    if std::env::var_os("OXMX_CUDNN_DEBUG").is_some() {
                        eprintln!("[cudnn] no native CUDA graph for {pass:?} {key:?}: {e}");
                    }
                    self.sdpa_no_graph.insert((pass, *key));
                }
            }
        }
        if let Some((g, _)) = entry
            .graph
            .as_ref()
            .filter(|(_, v)| v.as_slice() == scalars)
        {
            // SAFETY: the graph was made for exactly these addresses (compared above),
            // which the caller's contract covers for this call; the workspace `ws` is
            // returned to a cache ordered by this stream.
            unsafe { g.launch(stream.cu_stream()) }?;
            return Ok(true);
        }
        // SAFETY: the plan's graph describes `key` exactly (plans are keyed by the whole
        // problem); the pack holds the caller's device addresses (the caller's contract
        // covers them), the workspace of the plan's size (returned to a cache ordered by
        // the same stream), and the addresses of the entry's boxed scalars, which stay
        // put and hold this call's values while cuDNN reads them during the call.
        unsafe { cudnn_graph::execute(handle, &plan.plan, &entry.pack) }?;
        Ok(true)
    }

    /// The forward into `out` (laid out as the key's output strides), its row
    /// statistics into `stats` (float32, one per query row); Ok(false) when cuDNN has no
    /// engine for it.
    fn sdpa_forward(
        &mut self,
        key: &SdpaKey,
        scale: f32,
        (q, k, v): (Operand<'_>, Operand<'_>, Operand<'_>),
        out: &mut CudaSlice<u8>,
        stats: &mut CudaSlice<u8>,
    ) -> Result<bool> {
        let [_, _, sb] = key.bytes().ok_or_else(|| Error::overflow(OP))?;
        let r = key.reaches().ok_or_else(|| Error::overflow(OP))?;
        if out.len() < r[SO] || stats.len() < sb {
            return Err(Error::runtime(
                OP,
                "attention operands smaller than their shapes",
            ));
        }
        let stream = self.stream.clone();
        let (pq, _gq) = operand_ptr(q, r[SQ], &stream)?;
        let (pk, _gk) = operand_ptr(k, r[SK], &stream)?;
        let (pv, _gv) = operand_ptr(v, r[SV], &stream)?;
        let (po, _go) = out.device_ptr_mut(&stream);
        let (ps, _gs) = stats.device_ptr_mut(&stream);
        if [pq, pk, pv, po, ps].iter().any(|&p| p % ALIGN != 0) {
            return Err(Error::runtime(OP, "misaligned attention operand"));
        }
        // by-value operands follow the device ones
        let mut uids = vec![UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE];
        let mut scalars = vec![scale];
        if key.causal {
            uids.push(UID_FILL);
            scalars.push(f32::NEG_INFINITY);
        }
        // SAFETY: every operand's reach in the key's layout was checked above against
        // its buffer; the scalars live through the call; the guards keep the buffers'
        // stream order.
        unsafe { self.sdpa_execute(key, Pass::Forward, &uids, &[pq, pk, pv, po, ps], &scalars) }
    }

    /// Whether cuDNN has engines for both passes of `key`.
    fn sdpa_backward_ready(&mut self, key: &SdpaKey) -> bool {
        self.sdpa_plan(&key.forward_key(), Pass::Forward).is_some()
            && self.sdpa_plan(key, Pass::Backward).is_some()
    }

    /// dq, dk, dv one after another into `out` (the input dtype), for the forward's
    /// output `o` and its cotangent `g`; the row statistics are `kept` from that forward,
    /// or come from running the forward again. Ok(false) when cuDNN has no engine for
    /// either pass.
    fn sdpa_backward(
        &mut self,
        key: &SdpaKey,
        scale: f32,
        (q, k, v, o, g): GradInputs<'_>,
        kept: Option<CudaMem>,
        out: &mut CudaSlice<u8>,
    ) -> Result<bool> {
        if !self.sdpa_backward_ready(key) {
            return Ok(false);
        }
        let [qb, kb, sb] = key.bytes().ok_or_else(|| Error::overflow(OP))?;
        let r = key.reaches().ok_or_else(|| Error::overflow(OP))?;
        let total = kb
            .checked_mul(2)
            .and_then(|x| x.checked_add(qb))
            .ok_or_else(|| Error::overflow(OP))?;
        if out.len() < total {
            return Err(Error::runtime(
                OP,
                "attention gradients smaller than their shapes",
            ));
        }
        let alloc = self.alloc.clone();
        let stats = match kept {
            Some(s) if s.nbytes >= sb => s,
            _ => {
                let mut o_again = alloc.alloc(OP, r[SO].max(1))?;
                let mut stats = alloc.alloc(OP, sb)?;
                let (os, ss) = (o_again.slice_mut()?, stats.slice_mut()?);
                if !self.sdpa_forward(&key.forward_key(), scale, (q, k, v), os, ss)? {
                    return Ok(false);
                }
                stats
            }
        };
        let rows = sb / 4;
        let softmax_sum = alloc.alloc(OP, sb)?;
        let dq_acc_bytes = rows
            .checked_mul(key.d)
            .and_then(|x| x.checked_mul(4))
            .ok_or_else(|| Error::overflow(OP))?;
        let dq_acc = alloc.alloc(OP, dq_acc_bytes)?;
        let stream = self.stream.clone();
        let (pq, _gq) = operand_ptr(q, r[SQ], &stream)?;
        let (pk, _gk) = operand_ptr(k, r[SK], &stream)?;
        let (pv, _gv) = operand_ptr(v, r[SV], &stream)?;
        let (po, _go) = operand_ptr(o, r[SO], &stream)?;
        let (pg, _gg) = operand_ptr(g, r[SDO], &stream)?;
        let (ps, _gs) = stats.slice()?.device_ptr(&stream);
        let (pm, _gm) = softmax_sum.slice()?.device_ptr(&stream);
        let (pa, _ga) = dq_acc.slice()?.device_ptr(&stream);
        let (pout, _gout) = out.device_ptr_mut(&stream);
        let (pdq, pdk, pdv) = (pout, pout + qb as u64, pout + (qb + kb) as u64);
        if [pq, pk, pv, po, pg, ps, pm, pa, pdq, pdk, pdv]
            .iter()
            .any(|&p| p % ALIGN != 0)
        {
            return Err(Error::runtime(OP, "misaligned attention operand"));
        }
        // by-value operands follow the device ones
        let mut uids = vec![
            UID_Q,
            UID_K,
            UID_V,
            UID_O,
            UID_DO,
            UID_STATS,
            UID_SOFTMAX_SUM,
            UID_DQ_ACCUM,
            UID_DQ,
            UID_DK,
            UID_DV,
            UID_SCALE,
            UID_ONE,
        ];
        let ptrs = [pq, pk, pv, po, pg, ps, pm, pa, pdq, pdk, pdv];
        let mut scalars = vec![scale, 1.0];
        if key.causal {
            uids.push(UID_FILL);
            scalars.push(f32::NEG_INFINITY);
        }
        // SAFETY: every operand's reach in the key's layout was checked above against its
        // buffer (the gradients lie packed inside `out` at offsets 0, |q| and |q| + |k|
        // bytes); the temporaries have the graph's sizes; the scalars live through the
        // call.
        unsafe { self.sdpa_execute(key, Pass::Backward, &uids, &ptrs, &scalars) }
    }
}

impl CudaBackend {
    fn with_cudnn<T>(&self, f: impl FnOnce(&mut Cudnn) -> Result<T>, none: T) -> Result<T> {
        let Ok(cudnn) = self.cudnn() else {
            return Ok(none);
        };
        let mut c = cudnn
            .lock()
            .map_err(|_| Error::runtime(OP, "cuDNN lock poisoned"))?;
        f(&mut c)
    }

    /// The attention through cuDNN when it has an engine for it, returning its row
    /// statistics (kept in `SdpaStats` for the backward): None otherwise (no libcudnn,
    /// or declined), and the caller runs `flash_sdpa`.
    pub(crate) fn cudnn_sdpa(
        &self,
        key: &SdpaKey,
        scale: f64,
        qkv: (Operand<'_>, Operand<'_>, Operand<'_>),
        out: &mut CudaSlice<u8>,
    ) -> Result<Option<CudaMem>> {
        let [_, _, sb] = key.bytes().ok_or_else(|| Error::overflow(OP))?;
        let mut stats = self.alloc.alloc(OP, sb)?;
        let ran = self.with_cudnn(
            |c| c.sdpa_forward(key, scale as f32, qkv, out, stats.slice_mut()?),
            false,
        )?;
        Ok(ran.then_some(stats))
    }

    /// Whether the attention gradient of `key` runs in cuDNN (`FastKernel::SdpaGrad`
    /// is used only then; builds both plans on first use).
    pub fn cudnn_sdpa_grad_ready(&self, key: &SdpaKey) -> bool {
        self.with_cudnn(|c| Ok(c.sdpa_backward_ready(key)), false)
            .unwrap_or(false)
    }

    /// The attention gradients through cuDNN (see `Cudnn::sdpa_backward`).
    pub(crate) fn cudnn_sdpa_grad(
        &self,
        key: &SdpaKey,
        scale: f64,
        ins: GradInputs<'_>,
        kept: Option<CudaMem>,
        out: &mut CudaSlice<u8>,
    ) -> Result<bool> {
        self.with_cudnn(
            |c| c.sdpa_backward(key, scale as f32, ins, kept, out),
            false,
        )
    }
}

/// The row statistics of recent cuDNN forwards, kept while their output lives, so the
/// backward of the same attention (same output, q, k and v buffers, scale and sizes:
/// buffers never change once written) need not run the forward again. Each is used
/// once; at most `MAX_STATS` are kept, dead ones dropped first.
#[derive(Default)]
pub(crate) struct SdpaStats(Mutex<Vec<StatsEntry>>);

struct StatsEntry {
    key: SdpaKey,
    scale: u64,
    /// output, q, k, v, and their element offsets (q, k and v may be views of one buffer)
    bufs: [Weak<Buffer>; 4],
    offs: [usize; 4],
    stats: CudaMem,
}

const MAX_STATS: usize = 64;

impl SdpaStats {
    pub(crate) fn put(
        &self,
        key: SdpaKey,
        scale: f64,
        (bufs, offs): ([&Arc<Buffer>; 4], [usize; 4]),
        stats: CudaMem,
    ) {
        if let Ok(mut v) = self.0.lock() {
            v.retain(|e| e.bufs[0].strong_count() > 0);
            if v.len() >= MAX_STATS {
                v.remove(0);
            }
            v.push(StatsEntry {
                key,
                scale: scale.to_bits(),
                bufs: bufs.map(Arc::downgrade),
                offs,
                stats,
            });
        }
    }

    pub(crate) fn take(
        &self,
        key: &SdpaKey,
        scale: f64,
        (bufs, offs): ([&Arc<Buffer>; 4], [usize; 4]),
    ) -> Option<CudaMem> {
        let mut v = self.0.lock().ok()?;
        let at = v.iter().position(|e| {
            e.key == *key
                && e.scale == scale.to_bits()
                && e.offs == offs
                && e.bufs[0].strong_count() > 0
                && e.bufs
                    .iter()
                    .zip(bufs)
                    .all(|(w, b)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(b)))
        })?;
        Some(v.swap_remove(at).stats)
    }
}
