//! Every node kind a backend must execute. Backends match this enum exhaustively, so
//! the compiler lists what a backend lacks. View primitives are executed by the core
//! (`view.rs`) for every backend.

use crate::dtype::Dtype;

/// Declares an op enum with `ALL`, its variants in declaration order (the export
/// format stores ops by name and reads them back through this list).
macro_rules! op_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $v:ident),* $(,)? }) => {
        $(#[$m])* $vis enum $name { $($(#[$vm])* $v),* }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
        }
    };
}

op_enum! {
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UnaryOp {
    Abs,
    Negative,
    Sign,
    Square,
    Sqrt,
    Rsqrt,
    Reciprocal,
    Exp,
    Expm1,
    Log,
    Log2,
    Log10,
    Log1p,
    Sin,
    Cos,
    Tan,
    ArcSin,
    ArcCos,
    ArcTan,
    Sinh,
    Cosh,
    Tanh,
    ArcSinh,
    ArcCosh,
    ArcTanh,
    Erf,
    ErfInv,
    Sigmoid,
    Floor,
    Ceil,
    /// round half to even
    Round,
    Trunc,
    IsNan,
    IsInf,
    IsPosInf,
    IsNegInf,
    IsFinite,
    LogicalNot,
    BitwiseInvert,
    Conjugate,
    Real,
    Imag,
}
}

impl UnaryOp {
    /// The transcendental functions whose accuracy `tests/test_math_ulp.py` specifies
    /// (every backend evaluates them with a bounded ulp error; `erfinv` is not among
    /// them: it keeps MLX's exact float32 bits instead).
    pub fn is_transcendental(self) -> bool {
        use UnaryOp::*;
        matches!(
            self,
            Exp | Expm1
                | Log
                | Log2
                | Log10
                | Log1p
                | Sin
                | Cos
                | Tan
                | ArcSin
                | ArcCos
                | ArcTan
                | Sinh
                | Cosh
                | Tanh
                | ArcSinh
                | ArcCosh
                | ArcTanh
                | Erf
                | Sigmoid
        )
    }
}

op_enum! {
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    FloorDivide,
    Remainder,
    Power,
    Maximum,
    Minimum,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    LogicalAnd,
    LogicalOr,
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    LeftShift,
    RightShift,
    ArcTan2,
    LogAddExp,
}
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        use BinaryOp::*;
        matches!(
            self,
            Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual
        )
    }
    pub fn name(self) -> &'static str {
        use BinaryOp::*;
        match self {
            Add => "add",
            Subtract => "subtract",
            Multiply => "multiply",
            Divide => "divide",
            FloorDivide => "floor_divide",
            Remainder => "remainder",
            Power => "power",
            Maximum => "maximum",
            Minimum => "minimum",
            Equal => "equal",
            NotEqual => "not_equal",
            Less => "less",
            LessEqual => "less_equal",
            Greater => "greater",
            GreaterEqual => "greater_equal",
            LogicalAnd => "logical_and",
            LogicalOr => "logical_or",
            BitwiseAnd => "bitwise_and",
            BitwiseOr => "bitwise_or",
            BitwiseXor => "bitwise_xor",
            LeftShift => "left_shift",
            RightShift => "right_shift",
            ArcTan2 => "arctan2",
            LogAddExp => "logaddexp",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReduceOp {
    Sum,
    Prod,
    Max,
    Min,
    All,
    Any,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ArgReduceOp {
    ArgMax,
    ArgMin,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ScanOp {
    Sum,
    Prod,
    Max,
    Min,
    LogAddExp,
}

/// How a scatter combines updates with existing values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ScatterMode {
    Set,
    Add,
    Multiply,
    Maximum,
    Minimum,
}

#[derive(Clone, PartialEq, Debug)]
pub enum Primitive {
    // ---- computed by backends ----
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// inputs: condition (bool), x, y — all already broadcast and same dtype for x/y.
    Select,
    AsType(Dtype),
    /// Materialize the input row-contiguous.
    Copy,
    /// `start + i * step` in the output dtype.
    Arange {
        start: f64,
        step: f64,
    },
    /// The input's number of elements over `axes` (sorted), less `ddof` and at least 0,
    /// or its reciprocal if `inverted`, as a 0-d array: how mean and var divide in a
    /// shapeless trace, where the count must follow new input sizes.
    NumberOfElements {
        axes: Vec<usize>,
        inverted: bool,
        ddof: i64,
    },
    /// Reduce over `axes` (sorted); the output keeps those dims with size 1.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// Index of max/min along `axis`; output keeps the axis with size 1, dtype uint32.
    ArgReduce {
        op: ArgReduceOp,
        axis: usize,
    },
    /// Softmax along the last axis.
    Softmax {
        precise: bool,
    },
    /// Batched matmul: inputs (..., M, K) and (..., K, N) with equal batch shapes.
    Matmul,
    /// inputs: arrays with equal shapes except along `axis`.
    Concatenate {
        axis: usize,
    },
    /// inputs: src, update (shape = `count`); writes update into the strided window
    /// starting at `start` with `count` elements and step `strides` per axis.
    SliceUpdate {
        start: Vec<i64>,
        count: Vec<i64>,
        strides: Vec<i64>,
    },
    /// inputs: src, idx_0..idx_k (integer, same shape S). Output shape:
    /// S ++ [src dims not in `axes`]. Out-of-range indices are an `IndexError`.
    Gather {
        axes: Vec<usize>,
    },
    /// inputs: src, indices (same ndim as src, broadcast in all dims but `axis`).
    GatherAxis {
        axis: usize,
    },
    /// inputs: src, indices, values (indices and values have the same shape).
    ScatterAxis {
        axis: usize,
        mode: ScatterMode,
    },
    /// inputs: src, updates, idx_0..idx_k; updates shape = S ++ [src dims not in axes].
    Scatter {
        axes: Vec<usize>,
        mode: ScatterMode,
    },
    /// inputs: keys (..., 2) uint32. Output: shape `keys.shape[:-1] + shape`, dtype
    /// uint8/uint16/uint32/uint64 for `width` 1/2/4/8; each key fills its own run of
    /// bytes with Threefry-2x32 in MLX's counter layout (see `crate::random`).
    RandomBits {
        width: usize,
    },

    /// Cumulative `op` along the last axis.
    Scan {
        op: ScanOp,
        reverse: bool,
        inclusive: bool,
    },
    /// Sort along the last axis (NaN last); `arg` returns uint32 indices (stable).
    Sort {
        arg: bool,
    },

    // ---- views, executed by the core for every backend ----
    /// `infer`: the axis the caller wrote as -1, kept so that a shapeless trace can
    /// infer it again for new input sizes (MLX's rule for reshapes that split an axis).
    Reshape {
        infer: Option<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Broadcast,
    /// Basic slicing: per-axis start and step (step may be negative; size is the
    /// output shape).
    Slice {
        start: Vec<usize>,
        step: Vec<i64>,
    },
    AsStrided {
        strides: Vec<i64>,
        offset: usize,
    },
    /// Identity whose gradient is zero (`stop_gradient`).
    StopGradient,
    /// A fused model kernel of `oxmx.core.fast` (`ops/fast.rs` documents the inputs).
    Fast(FastKernel),
    /// A matrix factorization or solve over the last two axes (`ops/decomp.rs`); the
    /// value packs every output (`LinalgKernel::parts`) one after another.
    Linalg(LinalgKernel),
    /// A discrete Fourier transform along the last axis (`ops/fft.rs`), unnormalised and
    /// then multiplied by `scale`: complex64 -> complex64 (`real` false), float32 ->
    /// complex64 of n/2+1 bins (`real`, forward) or complex64 n/2+1 bins -> float32 of
    /// the output's length (`real`, `inverse`; the bins' imaginary parts at 0 and n/2
    /// are ignored).
    Fft {
        inverse: bool,
        real: bool,
        scale: f64,
    },
    /// A valid cross-correlation of channels-last arrays or its weight gradient
    /// (`ops/conv.rs`). Forward: x (N, *S, C), w (O, *K, C/G) -> (N, *out, O).
    /// WeightGrad: x (N, *S, C), g (N, *out, O) -> (O, *K, C/G), K from the output.
    Conv {
        spec: ConvSpec,
        kind: ConvKind,
    },
    /// A user's CUDA kernel (`ops/user_kernel.rs`); runs only on the GPU.
    UserKernel(UserKernelRef),
    /// A collective over a process group (`distributed.rs`); the CPU backend calls the
    /// group's engine. inputs: x (none for `Recv`).
    Collective {
        op: crate::distributed::CollectiveOp,
        group: crate::distributed::Group,
    },
    /// A packed quantized matrix expanded to floats (`ops/quantized.rs`). inputs: w
    /// (uint32, (.., R, C*bits/32)), scales (.., R, C/group) [, biases, affine only];
    /// output (.., R, C).
    Dequantize(QuantSpec),
    /// `x @ dequantize(w).T` (`transpose`) or `x @ dequantize(w)`. inputs: x (.., M, K),
    /// w, scales [, biases] with w's batch dims equal to x's (`ops/quantized.rs`).
    QuantizedMatmul {
        spec: QuantSpec,
        transpose: bool,
    },
    /// `QuantizedMatmul` with matrix-level gather (`ops/quantized_gather.rs`). inputs: x
    /// (Bx, M, K), w (E, R, packed), scales [, biases], lhs and rhs (int64, (Nb,));
    /// output (Nb, M, N), product i from x[lhs[i]] and w[rhs[i]].
    GatherQmm {
        spec: QuantSpec,
        transpose: bool,
    },
    /// Output `index` of a function with user-defined transforms (`custom_function`):
    /// inputs are the primals followed by the function's real outputs; the value is
    /// the real output, the rules come from `Custom::rules`.
    Custom(Custom),
    /// Elementwise nodes of one shape run as one kernel (`ops/fused.rs`; made by
    /// `compile`): inputs already broadcast to the output's shape.
    Fused(crate::ops::fused::FusedKernel),
}

/// MLX's quantization formats. `Affine`: `w = scale * q + bias` per group of unsigned
/// `bits`-bit values packed little-end first into uint32 words; the `mx`/`nv` formats
/// store E2M1 (fp4) or E4M3 (fp8) values with an E8M0 (`Mx*`) or E4M3 (`Nvfp4`) scale per
/// group and no bias.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum QuantMode {
    Affine,
    Mxfp4,
    Mxfp8,
    Nvfp4,
}

impl QuantMode {
    pub fn name(self) -> &'static str {
        match self {
            QuantMode::Affine => "affine",
            QuantMode::Mxfp4 => "mxfp4",
            QuantMode::Mxfp8 => "mxfp8",
            QuantMode::Nvfp4 => "nvfp4",
        }
    }
}

/// A validated quantization format (`ops::quantized::spec`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct QuantSpec {
    pub mode: QuantMode,
    pub group_size: usize,
    pub bits: usize,
}

/// Strides, kernel dilations and zero padding (the same before and after) per spatial
/// axis, and the channel groups, of a convolution node.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct ConvSpec {
    pub strides: Vec<usize>,
    pub dilation: Vec<usize>,
    pub padding: Vec<usize>,
    pub groups: usize,
}

/// What a convolution node computes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ConvKind {
    Forward,
    WeightGrad,
    InputGrad,
}

/// A shared user kernel, compared by identity.
#[derive(Clone, Debug)]
pub struct UserKernelRef(pub std::sync::Arc<crate::ops::user_kernel::UserKernel>);

impl PartialEq for UserKernelRef {
    fn eq(&self, o: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &o.0)
    }
}

/// The dense factorizations and solves of `oxmx.core.linalg`. Inputs are float32 or
/// float64 (also complex64 for `Svd` and `Eig`) matrices in their last two axes, batched over the rest.
/// Multi-output kernels pack their outputs into one flat buffer, each output whole
/// (batch dims first) and in the order `parts` lists them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinalgKernel {
    Inv,
    TriInv {
        upper: bool,
    },
    Cholesky {
        upper: bool,
    },
    /// inputs: a (.., n, n), b (.., n, k) of one batch shape.
    Solve,
    SolveTriangular {
        upper: bool,
    },
    /// Q (.., m, k), R (.., k, n), k = min(m, n).
    Qr,
    /// U (.., m, m), S (.., k), Vt (.., n, n); S alone without `uv`.
    Svd {
        uv: bool,
    },
    /// w (.., n) ascending, V (.., n, n); w alone without `vectors`.
    Eigh {
        upper: bool,
        vectors: bool,
    },
    /// complex64 w (.., n), V (.., n, n); w alone without `vectors`.
    Eig {
        vectors: bool,
    },
    /// LU (.., m, n) (unit-lower L and U in one), pivots (.., k) as values of the dtype:
    /// row i was swapped with row pivots[i] (LAPACK's ipiv, from 0).
    LuFactor,
}

/// How `scaled_dot_product_attention` masks its scores.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SdpaMask {
    None,
    /// Query i sees keys j <= i + (T_kv - T_q) (bottom-right aligned).
    Causal,
    /// A bool input (4-d, broadcast over [B, N_q, T_q, T_kv]): true keeps the score.
    Bool,
    /// A float input (4-d, broadcast likewise) added to the scores.
    Additive,
}

/// The fused kernels of `oxmx.core.fast`. All inputs of one kernel share the output's
/// float dtype except index inputs (int64); half types compute in f32.
#[derive(Clone, PartialEq, Debug)]
pub enum FastKernel {
    /// inputs: x, [weight (last dim)].
    RmsNorm { eps: f64, weight: bool },
    /// inputs: x, [weight], [bias].
    LayerNorm { eps: f64, weight: bool, bias: bool },
    /// inputs: x (.., T, D), offset (int64, shape () or (B,)), [freqs (dims/2)].
    /// Angle of pair i at position t: (offset + t) * scale / freq_i, with
    /// freq_i = base^(2i/dims) unless `freqs` is given.
    Rope {
        dims: usize,
        traditional: bool,
        base: Option<f64>,
        scale: f64,
    },
    /// inputs: q (B, N_q, T_q, D), k, v (B, N_kv, T_kv, D), [mask (4-d)], [sinks (N_q)].
    Sdpa {
        scale: f64,
        mask: SdpaMask,
        sinks: bool,
    },
    /// The gradients of `Sdpa` without a mask (`causal` false) or with the causal mask,
    /// no sinks. inputs: q (B, N_q, T_q, D), k, v (B, N_kv, T_kv, D), the forward's
    /// output o and its cotangent g (both shaped as q) -> dq, dk, dv flattened one after
    /// another into one 1-d output of q's dtype (the caller slices them out).
    SdpaGrad { scale: f64, causal: bool },
    /// inputs: logits (.., C), targets (int64, ..) -> float32 loss; a target outside
    /// [0, C) is an IndexError (as a gather would raise).
    CrossEntropy,
    /// The gradient of `CrossEntropy` with respect to the logits. inputs: logits (.., C),
    /// targets (int64, ..), cotangent (the loss's shape, in the compute type: float64
    /// for float64 logits, else float32) -> shaped and typed as the logits:
    /// `exp(x - lse) * g + (j == target ? -g : 0) + (lse - lse)`, so a row whose
    /// logsumexp is infinite or NaN is NaN (MLX's convention). A target outside [0, C)
    /// only gets no `-g` (the forward already raised for it).
    CrossEntropyGrad,
    /// The gradients of `RmsNorm` (`rms`) or `LayerNorm` at x for the cotangent g.
    /// inputs: x (.., n), [weight (n)], g (x's shape), all of x's float dtype -> one 1-d
    /// output of that dtype holding dx (x's size), then dw (n) with a weight and db (n)
    /// with `bias`. With r = 1 / sqrt(var + eps) (rms: mean of squares), x_hat the
    /// normalised row and gw = g * weight:
    /// dx = r * (gw - mean(gw) - x_hat * mean(gw * x_hat)) (rms: no `mean(gw)` term),
    /// dw = sum over rows of g * x_hat, db = sum over rows of g.
    NormGrad {
        eps: f64,
        rms: bool,
        weight: bool,
        bias: bool,
    },
    /// One Adam/AdamW step, used by `oxmx.optimizers`. inputs: p, g, m, v (one shape),
    /// s1, s2, decay (0-d), all of one float dtype (f32 or f64). Computes, with each
    /// operation rounded in that dtype exactly as the composite formula rounds it
    /// (`c` = [b1, 1 - b1, b2, 1 - b2, eps]):
    /// m' = b1 m + (1-b1) g; v' = b2 v + (1-b2) g^2;
    /// p' = p decay - (s1 m') / (sqrt(v') s2 + eps).
    /// The output stacks p', m', v' on a new first axis.
    AdamStep { c: [f64; 5] },
}

impl FastKernel {
    pub fn name(&self) -> &'static str {
        match self {
            FastKernel::RmsNorm { .. } => "rms_norm",
            FastKernel::LayerNorm { .. } => "layer_norm",
            FastKernel::Rope { .. } => "rope",
            FastKernel::Sdpa { .. } => "scaled_dot_product_attention",
            FastKernel::SdpaGrad { .. } => "scaled_dot_product_attention_grad",
            FastKernel::CrossEntropy => "cross_entropy",
            FastKernel::CrossEntropyGrad => "cross_entropy_grad",
            FastKernel::NormGrad { rms: true, .. } => "rms_norm_grad",
            FastKernel::NormGrad { rms: false, .. } => "layer_norm_grad",
            FastKernel::AdamStep { .. } => "adam_step",
        }
    }
}

/// Batched outputs with their batch axes (what a custom vmap rule returns).
pub type Batched = (Vec<crate::Array>, Vec<Option<usize>>);

/// User-defined rules of a `custom_function`. Each returns `None` when the user gave no
/// override, so the function's own graph is differentiated or batched instead.
pub trait CustomRules: Send + Sync {
    /// Cotangents of the primals given the cotangents of all outputs.
    fn vjp(
        &self,
        primals: &[crate::Array],
        outputs: &[crate::Array],
        cotangents: &[crate::Array],
    ) -> crate::Result<Option<Vec<Option<crate::Array>>>>;
    /// Tangents of all outputs given the primals' tangents (None where a primal has no
    /// tangent: it is held fixed).
    fn jvp(
        &self,
        primals: &[crate::Array],
        tangents: &[Option<crate::Array>],
    ) -> crate::Result<Option<Vec<crate::Array>>>;
    /// Batched outputs and their batch axes given batched primals.
    fn vmap(
        &self,
        primals: &[crate::Array],
        axes: &[Option<usize>],
    ) -> crate::Result<Option<Batched>>;
}

#[derive(Clone)]
pub struct Custom {
    pub rules: std::sync::Arc<dyn CustomRules>,
    pub n_primals: usize,
    pub index: usize,
}

impl PartialEq for Custom {
    fn eq(&self, o: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.rules, &o.rules)
            && self.n_primals == o.n_primals
            && self.index == o.index
    }
}

impl std::fmt::Debug for Custom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Custom(output {} of {} primals)",
            self.index, self.n_primals
        )
    }
}

/// The value of `Primitive::NumberOfElements` for an input of `shape` (axes already
/// checked against it by the op layer; an axis past the end counts as 1).
pub fn number_of_elements_value(shape: &[usize], axes: &[usize], inverted: bool, ddof: i64) -> f64 {
    let n: f64 = axes
        .iter()
        .map(|&a| shape.get(a).copied().unwrap_or(1) as f64)
        .product();
    let n = (n - ddof as f64).max(0.0);
    if inverted {
        1.0 / n
    } else {
        n
    }
}

impl Primitive {
    pub fn name(&self) -> &'static str {
        use Primitive::*;
        match self {
            Unary(_) => "unary",
            Binary(b) => b.name(),
            Select => "where",
            AsType(_) => "astype",
            Copy => "copy",
            Arange { .. } => "arange",
            NumberOfElements { .. } => "number_of_elements",
            Reduce { .. } => "reduce",
            ArgReduce { .. } => "arg_reduce",
            Softmax { .. } => "softmax",
            Matmul => "matmul",
            Concatenate { .. } => "concatenate",
            SliceUpdate { .. } => "slice_update",
            Gather { .. } => "gather",
            GatherAxis { .. } => "take_along_axis",
            ScatterAxis { .. } => "put_along_axis",
            Scatter { .. } => "scatter",
            RandomBits { .. } => "random_bits",
            Scan { .. } => "scan",
            Sort { arg: false } => "sort",
            Sort { arg: true } => "argsort",
            Reshape { .. } => "reshape",
            Transpose { .. } => "transpose",
            Broadcast => "broadcast_to",
            Slice { .. } => "slice",
            AsStrided { .. } => "as_strided",
            StopGradient => "stop_gradient",
            Fast(k) => k.name(),
            Linalg(k) => k.name(),
            Fft { .. } => "fft",
            Conv {
                kind: ConvKind::Forward,
                ..
            } => "conv",
            Conv {
                kind: ConvKind::WeightGrad,
                ..
            } => "conv_weight_grad",
            Conv { .. } => "conv_input_grad",
            UserKernel(_) => "cuda_kernel",
            Collective { op, .. } => op.name(),
            Dequantize(_) => "dequantize",
            QuantizedMatmul { .. } => "quantized_matmul",
            GatherQmm { .. } => "gather_qmm",
            Custom(_) => "custom_function",
            Fused(_) => "fused",
        }
    }

    /// Whether a backend may write this primitive's output into a donated input buffer
    /// (the engine hands such inputs over instead of sharing them).
    pub fn may_donate(&self) -> bool {
        matches!(self, Primitive::Unary(_) | Primitive::Binary(_))
    }

    pub fn is_view(&self) -> bool {
        use Primitive::*;
        matches!(
            self,
            Reshape { .. }
                | Transpose { .. }
                | Broadcast
                | Slice { .. }
                | AsStrided { .. }
                | StopGradient
                | Custom(_)
        )
    }
}
