//! CUDA C sources of the kernels, generated per (op, dtypes, layout) and compiled by
//! NVRTC on first use, then cached in memory for the process and on disk
//! (`disk_cache.rs`) for later processes.

use crate::ffi::MAX_DIMS;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};
use oxmx_core::primitive::{BinaryOp, ReduceOp, UnaryOp};
use oxmx_core::{Dtype, Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The C type stored in memory for a dtype.
pub fn ctype(d: Dtype) -> Option<&'static str> {
    Some(match d {
        Dtype::Bool | Dtype::Uint8 => "unsigned char",
        Dtype::Uint16 => "unsigned short",
        Dtype::Uint32 => "unsigned int",
        Dtype::Uint64 => "unsigned long long",
        Dtype::Int8 => "signed char",
        Dtype::Int16 => "short",
        Dtype::Int32 => "int",
        Dtype::Int64 => "long long",
        Dtype::Float16 => "__half",
        Dtype::Bfloat16 => "__nv_bfloat16",
        Dtype::Float32 => "float",
        Dtype::Float64 => "double",
        Dtype::Complex64 => "cplx",
    })
}

/// The type arithmetic is done in (halves compute in float).
pub fn compute_type(d: Dtype) -> Option<&'static str> {
    match d {
        Dtype::Float16 | Dtype::Bfloat16 => Some("float"),
        Dtype::Bool => Some("int"),
        _ => ctype(d),
    }
}

pub(crate) const PRELUDE: &str = r#"
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define OX_INF __int_as_float(0x7f800000)
struct Meta { long long ndim; long long n; long long shape[8]; long long strides[3][8]; long long offset[3]; };
struct RedMeta { long long outer_ndim, inner_ndim, inner_n, offset; long long outer_shape[8], outer_strides[8], inner_shape[8], inner_strides[8]; };
// float16/bfloat16 <-> float as the CPU backend converts: float16 NaNs keep their sign
// and payload and get the quiet bit; every bfloat16 NaN is stored as +NaN (0x7FC0, as
// MLX); other values round to nearest even.
__device__ __forceinline__ float ld(__half h) {
  unsigned short b = __half_as_ushort(h);
  if ((b & 0x7C00) == 0x7C00 && (b & 0x03FF)) return __uint_as_float(((unsigned)(b & 0x8000) << 16) | 0x7FC00000u | ((unsigned)(b & 0x03FF) << 13));
  return __half2float(h);
}
__device__ __forceinline__ float ld(__nv_bfloat16 h) {
  unsigned b = __bfloat16_as_ushort(h);
  if ((b & 0x7FFF) > 0x7F80) b |= 0x0040;
  return __uint_as_float(b << 16);
}
__device__ __forceinline__ __half st_half(float v) {
  if (isnan(v)) { unsigned x = __float_as_uint(v); return __ushort_as_half((unsigned short)(((x >> 16) & 0x8000) | 0x7C00 | 0x0200 | ((x & 0x7FFFFF) >> 13))); }
  return __float2half_rn(v);
}
__device__ __forceinline__ __nv_bfloat16 st_bf16(float v) {
  if (isnan(v)) return __ushort_as_bfloat16((unsigned short)0x7FC0);
  return __float2bfloat16_rn(v);
}
// ld(st_bf16(v)) in fewer instructions
__device__ __forceinline__ float rt_bf16(float v) {
  return isnan(v) ? __uint_as_float(0x7FC00000u) : __bfloat162float(__float2bfloat16_rn(v));
}
template <typename T> __device__ __forceinline__ T wrap_neg(T x) { return (T)(0 - x); }
// Float powers: squares and cubes by multiplication (the tanh GELU's x**3 and its
// gradient's x**2), pow otherwise. Where x has at most half the compute type's precision
// (a half type in float, a float32 in double) x * x is exact and the cube is rounded
// once: the correctly rounded power, which pow (within an ulp of it) not always gives.
// The general power is a call, not inlined: a fused chain unrolls its body for every
// element a thread holds, and an inlined pow (hundreds of instructions, for an exponent
// that is nearly always 2 or 3) would be copied into each.
template <typename T> __device__ __noinline__ T pow_call(T x, T y) { return pow(x, y); }
template <typename T> __device__ __forceinline__ T fpow(T x, T y) {
  return y == (T)2 ? x * x : (y == (T)3 ? x * x * x : pow_call(x, y));
}
// Integer powers as the CPU: wrapping, the exponent clamped to 2^32 - 1; a negative
// exponent leaves only 1 and -1 (whose sign follows the exponent's parity) nonzero.
template <typename T> __device__ __forceinline__ T ipow(T x, T y) {
  if (y < (T)0) return x == (T)1 ? (T)1 : (x == (T)-1 ? (((long long)y % 2 == 0) ? (T)1 : x) : (T)0);
  unsigned long long b = (unsigned long long)x, r = 1, e = (unsigned long long)y;
  if (e > 0xffffffffull) e = 0xffffffffull;
  while (e) { if (e & 1ull) r *= b; b *= b; e >>= 1; }
  return (T)r;
}
template <typename T> __device__ __forceinline__ T py_fmod(T x, T y) { T r = fmod(x, y); return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r; }
template <typename T> __device__ __forceinline__ T py_irem(T x, T y) { if (y == 0 || y == (T)-1) return (T)0; T r = x % y; return (r != 0 && ((r < 0) != (y < 0))) ? (T)(r + y) : r; }
// log(e^x + e^y). Near a zero result (the larger input in (-1, 0)) the two terms of
// max + log1p(e^-d) cancel; there log1p(expm1(max) + e^min) keeps the digits.
template <typename T> __device__ __forceinline__ T lae(T x, T y) {
  if (isnan(x) || isnan(y)) return x + y;
  T m = x > y ? x : y, n = x > y ? y : x;
  if (isinf(m) || isinf(n)) return m;
  if (m > (T)-1 && m < (T)0) return log1p(expm1(m) + exp(n));
  // n - m and its rounding error (two-sum): e^(d + lo) = e^d (1 + lo)
  // (when n - m overflows to -inf, e is 0 and there is nothing to correct)
  T d = n - m, bp = d - n, lo = (n - (d - bp)) + (-m - bp), e = exp(d);
  return m + log1p(isfinite(lo) ? e + e * lo : e);
}
// 1 / (1 + t): the sum 1 + t as a rounded value plus its exact error (two-sum), then one
// Newton step folds the error in, so that only the division's rounding remains.
template <typename T> __device__ __forceinline__ T sgm(T t) {
  T s = (T)1 + t, bb = s - (T)1, lo = ((T)1 - (s - bb)) + (t - bb);
  T r = (T)1 / s;
  return isinf(t) ? (T)0 : r - r * r * lo;
}
"#;

/// complex64 as two floats, with the arithmetic and functions of the CPU backend
/// (num_complex's formulas: naive division, ln = (ln|z|, arg z), the inverse functions
/// through ln and sqrt), included in kernels that touch complex data.
const COMPLEX: &str = r#"
struct __align__(8) cplx {
  float re, im;
  cplx() = default;
  __device__ __forceinline__ cplx(float r, float i) : re(r), im(i) {}
  template <typename U> __device__ __forceinline__ cplx(U r) : re((float)r), im(0.f) {}
};
__device__ __forceinline__ cplx operator+(cplx a, cplx b) { return cplx(a.re + b.re, a.im + b.im); }
__device__ __forceinline__ cplx operator-(cplx a, cplx b) { return cplx(a.re - b.re, a.im - b.im); }
__device__ __forceinline__ cplx operator-(cplx a) { return cplx(-a.re, -a.im); }
__device__ __forceinline__ cplx operator*(cplx a, cplx b) { return cplx(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re); }
__device__ __forceinline__ cplx operator/(cplx a, cplx b) { float d = b.re * b.re + b.im * b.im; return cplx((a.re * b.re + a.im * b.im) / d, (a.im * b.re - a.re * b.im) / d); }
__device__ __forceinline__ cplx operator/(cplx a, float s) { return cplx(a.re / s, a.im / s); }
__device__ __forceinline__ bool operator==(cplx a, cplx b) { return a.re == b.re && a.im == b.im; }
__device__ __forceinline__ bool operator!=(cplx a, cplx b) { return !(a == b); }
__device__ __forceinline__ bool operator<(cplx a, cplx b) { return a.re < b.re || (a.re == b.re && a.im < b.im); }
__device__ __forceinline__ bool operator>(cplx a, cplx b) { return b < a; }
__device__ __forceinline__ bool operator<=(cplx a, cplx b) { return a < b || a == b; }
__device__ __forceinline__ bool operator>=(cplx a, cplx b) { return b < a || a == b; }
__device__ __forceinline__ float abs(cplx a) { return hypotf(a.re, a.im); }
__device__ __forceinline__ cplx conj(cplx a) { return cplx(a.re, -a.im); }
__device__ __forceinline__ cplx exp(cplx a) { float e = expf(a.re); return cplx(e * cosf(a.im), e * sinf(a.im)); }
__device__ __forceinline__ cplx log(cplx a) { return cplx(logf(abs(a)), atan2f(a.im, a.re)); }
// log(1 + z) as the CPU computes it: near 0 the real part is log1p(|1 + z|^2 - 1) / 2
__device__ __forceinline__ cplx clog1p(cplx z) { float re = hypotf(z.re, z.im) < 0.5f ? 0.5f * log1pf(z.re * (2.f + z.re) + z.im * z.im) : logf(hypotf(z.re + 1.f, z.im)); return cplx(re, atan2f(z.im, z.re + 1.f)); }
__device__ __forceinline__ cplx sqrt(cplx a) {
  if (a.re == 0.f && a.im == 0.f) return cplx(0.f, a.im);
  float t = sqrtf((abs(a) + fabsf(a.re)) * 0.5f);
  return a.re >= 0.f ? cplx(t, a.im / (2.f * t)) : cplx(fabsf(a.im) / (2.f * t), copysignf(t, a.im));
}
__device__ __forceinline__ cplx sin(cplx a) { return cplx(sinf(a.re) * coshf(a.im), cosf(a.re) * sinhf(a.im)); }
__device__ __forceinline__ cplx cos(cplx a) { return cplx(cosf(a.re) * coshf(a.im), -sinf(a.re) * sinhf(a.im)); }
__device__ __forceinline__ cplx tan(cplx a) { float r = 2.f * a.re, i = 2.f * a.im; return cplx(sinf(r), sinhf(i)) / (cosf(r) + coshf(i)); }
__device__ __forceinline__ cplx sinh(cplx a) { return cplx(sinhf(a.re) * cosf(a.im), coshf(a.re) * sinf(a.im)); }
__device__ __forceinline__ cplx cosh(cplx a) { return cplx(coshf(a.re) * cosf(a.im), sinhf(a.re) * sinf(a.im)); }
__device__ __forceinline__ cplx tanh(cplx a) { float r = 2.f * a.re, i = 2.f * a.im; return cplx(sinhf(r), sinf(i)) / (coshf(r) + cosf(i)); }
__device__ __forceinline__ cplx asin(cplx z) { cplx i(0.f, 1.f); return -i * log(sqrt(cplx(1.f) - z * z) + i * z); }
__device__ __forceinline__ cplx acos(cplx z) { cplx i(0.f, 1.f); return -i * log(i * sqrt(cplx(1.f) - z * z) + z); }
__device__ __forceinline__ cplx atan(cplx z) {
  cplx i(0.f, 1.f);
  if (z == i) return cplx(0.f, OX_INF);
  if (z == -i) return cplx(0.f, -OX_INF);
  return (log(cplx(1.f) + i * z) - log(cplx(1.f) - i * z)) / cplx(0.f, 2.f);
}
__device__ __forceinline__ cplx asinh(cplx z) { return log(z + sqrt(cplx(1.f) + z * z)); }
__device__ __forceinline__ cplx acosh(cplx z) { return cplx(2.f) * log(sqrt((z + cplx(1.f)) / cplx(2.f)) + sqrt((z - cplx(1.f)) / cplx(2.f))); }
__device__ __forceinline__ cplx atanh(cplx z) {
  if (z == cplx(1.f)) return cplx(OX_INF, 0.f);
  if (z == cplx(-1.f)) return cplx(-OX_INF, 0.f);
  return (log(cplx(1.f) + z) - log(cplx(1.f) - z)) / cplx(2.f);
}
__device__ __forceinline__ cplx cpow(cplx x, cplx y) { if (y.re == 0.f && y.im == 0.f) return cplx(1.f); return exp(log(x) * y); }
// max/min as the CPU: lexicographic, a NaN (in either part) first operand wins
__device__ __forceinline__ bool cnan(cplx z) { return isnan(z.re) || isnan(z.im); }
__device__ __forceinline__ cplx cmaximum(cplx x, cplx y) { return (cnan(x) || y < x) ? x : y; }
__device__ __forceinline__ cplx cminimum(cplx x, cplx y) { return (cnan(x) || x < y) ? x : y; }
// log(e^x + e^y) = max + log1p(e^(min - max)); -inf and +inf (zero imaginary part) short-circuit
__device__ __forceinline__ cplx clae(cplx x, cplx y) {
  cplx hi = cmaximum(x, y), lo = cminimum(x, y);
  if (lo == cplx(-OX_INF, 0.f) || hi == cplx(OX_INF, 0.f)) return hi;
  return hi + clog1p(exp(lo - hi));
}
"#;

/// The kernel prelude, with the complex type when a dtype involved is complex64.
fn prelude(dtypes: &[Dtype]) -> String {
    if dtypes.contains(&Dtype::Complex64) {
        format!("{PRELUDE}{COMPLEX}")
    } else {
        PRELUDE.to_string()
    }
}

/// `prelude` for other modules' generated kernels.
pub(crate) fn prelude_for(dtypes: &[Dtype]) -> String {
    prelude(dtypes)
}

/// Unary ops on complex64 (the CPU backend's set; others fail there).
fn complex_unary(op: UnaryOp) -> Option<String> {
    use UnaryOp::*;
    let s = match op {
        Abs => "abs(x)",
        Negative => "-x",
        Sign => "(abs(x) == 0.f ? (CT)0 : x / abs(x))",
        Square => "x * x",
        Sqrt => "sqrt(x)",
        Rsqrt => "(CT)1 / sqrt(x)",
        Reciprocal => "(CT)1 / x",
        Exp => "exp(x)",
        Expm1 => "exp(x) - (CT)1",
        Log => "log(x)",
        Log2 => "log(x) / 0.693147180559945309f",
        Log10 => "log(x) / 2.302585092994045684f",
        Log1p => "clog1p(x)",
        Sin => "sin(x)",
        Cos => "cos(x)",
        Tan => "tan(x)",
        ArcSin => "asin(x)",
        ArcCos => "acos(x)",
        ArcTan => "atan(x)",
        Sinh => "sinh(x)",
        Cosh => "cosh(x)",
        Tanh => "tanh(x)",
        ArcSinh => "asinh(x)",
        ArcCosh => "acosh(x)",
        ArcTanh => "atanh(x)",
        Sigmoid => "(CT)1 / ((CT)1 + exp(-x))",
        Conjugate => "conj(x)",
        Real => "x.re",
        Imag => "x.im",
        IsNan => "(isnan(x.re) || isnan(x.im))",
        IsFinite => "(isfinite(x.re) && isfinite(x.im))",
        IsInf => "(isinf(x.re) || isinf(x.im))",
        IsPosInf => "((isinf(x.re) && x.re > 0) || (isinf(x.im) && x.im > 0))",
        IsNegInf => "((isinf(x.re) && x.re < 0) || (isinf(x.im) && x.im < 0))",
        _ => return None,
    };
    Some(s.to_string())
}

/// Binary ops on complex64 (comparisons are lexicographic, as on the CPU).
fn complex_binary(op: BinaryOp) -> Option<String> {
    use BinaryOp::*;
    let s = match op {
        Add => "x + y",
        Subtract => "x - y",
        Multiply => "x * y",
        Divide => "x / y",
        Power => "cpow(x, y)",
        Maximum => "cmaximum(x, y)",
        Minimum => "cminimum(x, y)",
        LogAddExp => "clae(x, y)",
        Equal => "x == y",
        NotEqual => "x != y",
        Less => "x < y",
        LessEqual => "x <= y",
        Greater => "x > y",
        GreaterEqual => "x >= y",
        _ => return None,
    };
    Some(s.to_string())
}

fn float_like(d: Dtype) -> bool {
    d.is_float()
}

/// The expression of a unary op over `x` (of the compute type `CT`), or None.
pub fn unary_expr(op: UnaryOp, d: Dtype) -> Option<String> {
    use UnaryOp::*;
    if d == Dtype::Complex64 {
        return complex_unary(op);
    }
    let f = float_like(d);
    let s = match op {
        Abs if f => "fabs(x)",
        Abs if d.is_unsigned() || d == Dtype::Bool => "x",
        Abs => "(x < 0 ? wrap_neg(x) : x)",
        Negative if f => "-x",
        Negative => "wrap_neg(x)",
        Sign if f => "(isnan(x) ? x : (CT)((x > (CT)0) - (x < (CT)0)))",
        Sign => "(CT)((x > (CT)0) - (x < (CT)0))",
        Square => "x * x",
        LogicalNot => "!x",
        BitwiseInvert if d == Dtype::Bool => "!x",
        BitwiseInvert if d.is_integer() => "~x",
        Conjugate | Real => "x",
        Imag => "(CT)0",
        IsNan if f => "isnan(x)",
        IsInf if f => "isinf(x)",
        IsPosInf if f => "(isinf(x) && x > 0)",
        IsNegInf if f => "(isinf(x) && x < 0)",
        IsFinite if f => "isfinite(x)",
        IsNan | IsInf | IsPosInf | IsNegInf => "false",
        IsFinite => "true",
        Floor | Ceil | Round | Trunc if !f => "x",
        _ if !f => return None,
        Sqrt => "sqrt(x)",
        Rsqrt => "rsqrt(x)",
        Reciprocal => "(CT)1 / x",
        Exp => "exp(x)",
        Expm1 => "expm1(x)",
        Log => "log(x)",
        Log2 => "log2(x)",
        Log10 => "log10(x)",
        Log1p => "log1p(x)",
        Sin => "sin(x)",
        Cos => "cos(x)",
        Tan => "tan(x)",
        ArcSin => "asin(x)",
        ArcCos => "acos(x)",
        ArcTan => "atan(x)",
        Sinh => "sinh(x)",
        Cosh => "cosh(x)",
        Tanh => "tanh(x)",
        ArcSinh => "asinh(x)",
        ArcCosh => "acosh(x)",
        ArcTanh => "atanh(x)",
        Erf => "erf(x)",
        ErfInv => "erfinv(x)",
        // e^x / (1 + e^x) below 0: 1 / (1 + e^-x) would overflow e^-x to inf and lose
        // the subnormal results
        // Below -80, e^x (1 + e^x rounds to 1; e^-x would overflow a float);
        // otherwise 1 / (1 + e^-x) with the sum's rounding error corrected.
        Sigmoid => "(x < (CT)-80 ? exp(x) : sgm(exp(-x)))",
        Floor => "floor(x)",
        Ceil => "ceil(x)",
        Round => "rint(x)",
        Trunc => "trunc(x)",
        _ => return None,
    };
    if d == Dtype::Float32 && via_double(op) {
        let s = s
            .replace("(CT)", "(double)")
            .replace("(x)", "((double)x)")
            .replace("(-x)", "(-(double)x)");
        return Some(format!("(float)({s})"));
    }
    Some(s.to_string())
}

/// float32 transcendentals computed in double and rounded once: CUDA's float versions
/// are documented at up to 2-4 ulp, the double ones stay far inside one float32 ulp (the
/// bound issue #18 sets for every backend). `logf`, `log2f` and `log1pf` are left out:
/// documented at 1 ulp and measured at 0.85/0.92/0.87 on the ulp test's inputs
/// (scripts/probe_gpu_float_math.py on an H200), they meet the bound at float speed.
fn via_double(op: UnaryOp) -> bool {
    use UnaryOp::*;
    op.is_transcendental() && !matches!(op, Log | Log2 | Log1p)
}

/// The expression of a binary op over `x`, `y` (compute type `CT`), or None.
pub fn binary_expr(op: BinaryOp, d: Dtype) -> Option<String> {
    use BinaryOp::*;
    if d == Dtype::Complex64 {
        return complex_binary(op);
    }
    let f = float_like(d);
    let bits = d.size() * 8;
    let s = match op {
        Add => "x + y".to_string(),
        Subtract => "x - y".to_string(),
        Multiply => "x * y".to_string(),
        Divide if f => "x / y".to_string(),
        FloorDivide if f => "floor(x / y)".to_string(),
        FloorDivide if d.is_unsigned() || d == Dtype::Bool => "(y == 0 ? (CT)0 : (CT)(x / y))".to_string(),
        FloorDivide => "(y == 0 ? (CT)0 : (y == (CT)-1 ? wrap_neg(x) : (CT)(x / y - (((x % y) != 0) && ((x < 0) != (y < 0))))))".to_string(),
        Remainder if f => "py_fmod(x, y)".to_string(),
        Remainder if d.is_unsigned() || d == Dtype::Bool => "(y == 0 ? (CT)0 : (CT)(x % y))".to_string(),
        Remainder => "py_irem(x, y)".to_string(),
        // float32: in double, as the unary transcendentals (see `via_double`)
        ArcTan2 | Power | LogAddExp if d == Dtype::Float32 => {
            let name = match op {
                ArcTan2 => "atan2",
                Power => "fpow",
                _ => "lae",
            };
            format!("(float){name}((double)x, (double)y)")
        }
        // half types compute in float: their cubes are exact there
        Power if matches!(d, Dtype::Float16 | Dtype::Bfloat16) => "fpow(x, y)".to_string(),
        Power if f => "pow(x, y)".to_string(),
        Power if d != Dtype::Bool => "ipow(x, y)".to_string(),
        Maximum if f => "((isnan(x) || x > y) ? x : y)".to_string(),
        Minimum if f => "((isnan(x) || x < y) ? x : y)".to_string(),
        Maximum => "(x > y ? x : y)".to_string(),
        Minimum => "(x < y ? x : y)".to_string(),
        Equal => "x == y".to_string(),
        NotEqual => "x != y".to_string(),
        Less => "x < y".to_string(),
        LessEqual => "x <= y".to_string(),
        Greater => "x > y".to_string(),
        GreaterEqual => "x >= y".to_string(),
        LogicalAnd => "(x != 0) && (y != 0)".to_string(),
        LogicalOr => "(x != 0) || (y != 0)".to_string(),
        BitwiseAnd if !f => "x & y".to_string(),
        BitwiseOr if !f => "x | y".to_string(),
        BitwiseXor if !f => "x ^ y".to_string(),
        LeftShift if !f => format!("((y < 0 || y >= {bits}) ? (CT)0 : (CT)(x << y))"),
        RightShift if d.is_unsigned() => format!("((y >= {bits}) ? (CT)0 : (CT)(x >> y))"),
        RightShift if !f => format!("((y < 0 || y >= {bits}) ? (x < 0 ? (CT)-1 : (CT)0) : (CT)(x >> y))"),
        ArcTan2 if f => "atan2(x, y)".to_string(),
        LogAddExp if f => "lae(x, y)".to_string(),
        _ => return None,
    };
    Some(s)
}

/// How an elementwise kernel walks its operands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Walk {
    /// Any strides over `ndim` (up to 8) collapsed dims, unrolled
    /// (`strided_walk::locate_unrolled`); `narrow`: at most `u32::MAX` elements.
    Strided { ndim: usize, narrow: bool },
    /// Four outputs per thread along rows (`strided_walk::rows4_mask`): operands whose
    /// bit is set in `unit` are read with one vector load, the others once.
    Rows4 { ndim: usize, narrow: bool, unit: u8 },
    /// Contiguous operands.
    Contiguous,
    /// Contiguous with offsets divisible by 4: four elements per vector through one
    /// aligned load per operand (16 bytes for 4-byte types), `per_thread` vectors per
    /// thread (`vector_walk`).
    Vector4 { per_thread: u8 },
    /// One collapsed dimension with any strides (a contiguous operand and a broadcast
    /// scalar, `x * 2`): element i of operand k at `offset[k] + i * strides[k][0]`.
    Linear,
}

pub fn elementwise_src(
    ins: &[Dtype],
    scalars: &[bool],
    out: Dtype,
    ct: &str,
    expr: &str,
    walk: Walk,
) -> Option<String> {
    let ot = ctype(out)?;
    let names = ["x", "y", "z"];
    let mut params = String::new();
    // `load(k, element)`: the expression reading operand k's element into its local type.
    let mut decls = Vec::new();
    for (k, d) in ins.iter().enumerate() {
        let t = ctype(*d)?;
        if scalars.get(k).copied().unwrap_or(false) {
            // a single host value passed by value: its bytes in a 64-bit parameter
            params.push_str(&format!("unsigned long long in{k}, "));
        } else {
            params.push_str(&format!("const {t}* __restrict__ in{k}, "));
        }
        let lt = if k == 0 && ins.len() == 3 { "bool" } else { ct };
        decls.push((t, lt, *d == Dtype::Bool, *names.get(k)?));
    }
    let is_scalar = |k: usize| scalars.get(k).copied().unwrap_or(false);
    let loads = |elem: &dyn Fn(usize) -> String| -> String {
        decls
            .iter()
            .enumerate()
            .map(|(k, (t, lt, is_bool, nm))| {
                let e = if is_scalar(k) {
                    format!("(*reinterpret_cast<const {t}*>(&in{k}))")
                } else {
                    elem(k)
                };
                let v = if *is_bool {
                    format!("({e} != 0)")
                } else if matches!(*t, "__half" | "__nv_bfloat16") {
                    format!("ld({e})")
                } else {
                    e
                };
                format!("      {lt} {nm} = ({lt})({v});\n")
            })
            .collect()
    };
    let store = match out {
        Dtype::Bool => "(unsigned char)((r) ? 1 : 0)".to_string(),
        Dtype::Float16 => "st_half((float)(r))".to_string(),
        Dtype::Bfloat16 => "st_bf16((float)(r))".to_string(),
        _ => format!("({ot})(r)"),
    };
    let grid = "long long stride = (long long)gridDim.x * blockDim.x; long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;";
    let body = match walk {
        Walk::Strided { ndim, narrow } => {
            let ops: Vec<usize> = (0..ins.len()).filter(|&k| !is_scalar(k)).collect();
            let at = crate::strided_walk::locate_unrolled(ndim, &ops, narrow);
            let l = loads(&|k| format!("in{k}[j{k}]"));
            format!("  for (long long i = tid; i < m.n; i += stride) {{\n{at}{l}      auto r = ({expr});\n      out[i] = {store};\n  }}\n")
        }
        Walk::Rows4 { ndim, narrow, unit } => {
            let ops: Vec<usize> = (0..ins.len()).filter(|&k| !is_scalar(k)).collect();
            let at = crate::strided_walk::locate_unrolled(ndim, &ops, narrow);
            let is_unit = |k: usize| unit & (1 << k) != 0;
            let row_loads: String = decls
                .iter()
                .enumerate()
                .filter(|(k, _)| !is_scalar(*k))
                .map(|(k, (t, _, _, _))| {
                    if is_unit(k) {
                        format!("      V4<{t}> a{k} = *reinterpret_cast<const V4<{t}>*>(in{k} + j{k});\n")
                    } else {
                        format!("      {t} a{k} = in{k}[j{k}];\n")
                    }
                })
                .collect();
            let lv = loads(&|k| {
                if is_unit(k) {
                    format!("a{k}.v[e]")
                } else {
                    format!("a{k}")
                }
            });
            format!(
                "  for (long long i = tid * 4; i < m.n; i += stride * 4) {{\n{at}{row_loads}    V4<{ot}> o;\n    #pragma unroll\n    for (int e = 0; e < 4; ++e) {{\n{lv}      auto r = ({expr});\n      o.v[e] = {store};\n    }}\n    *reinterpret_cast<V4<{ot}>*>(out + i) = o;\n  }}\n"
            )
        }
        Walk::Linear => {
            let l = loads(&|k| format!("in{k}[m.offset[{k}] + i * m.strides[{k}][0]]"));
            format!("  for (long long i = tid; i < m.n; i += stride) {{\n{l}      auto r = ({expr});\n      out[i] = {store};\n  }}\n")
        }
        Walk::Contiguous => {
            let l = loads(&|k| format!("in{k}[m.offset[{k}] + i]"));
            format!("  for (long long i = tid; i < m.n; i += stride) {{\n{l}      auto r = ({expr});\n      out[i] = {store};\n  }}\n")
        }
        Walk::Vector4 { per_thread } => {
            let vectors: Vec<(String, String, String)> = decls
                .iter()
                .enumerate()
                .filter(|(k, _)| !is_scalar(*k))
                .map(|(k, (t, _, _, _))| {
                    (
                        format!("a{k}"),
                        t.to_string(),
                        format!("in{k} + m.offset[{k}]"),
                    )
                })
                .collect();
            let lv = loads(&|k| format!("a{k}.v[e]"));
            let ls = loads(&|k| format!("in{k}[m.offset[{k}] + i]"));
            crate::vector_walk::vector4_loop(
                &vectors,
                ot,
                &format!("{lv}      auto r = ({expr});\n      o.v[e] = {store};\n"),
                &format!("{ls}      auto r = ({expr});\n      out[i] = {store};\n"),
                per_thread,
            )
        }
    };
    let mut all = ins.to_vec();
    all.push(out);
    let pre = prelude(&all);
    Some(format!(
        "{pre}\ntemplate <typename T> struct alignas(4 * sizeof(T)) V4 {{ T v[4]; }};\ntypedef {ct} CT;\nextern \"C\" __global__ void k({params}{ot}* __restrict__ out, Meta m) {{\n  {grid}\n{body}}}\n"
    ))
}

/// Identity element (as C) of a reduction in the accumulator type.
fn red_init(op: ReduceOp, acc: &str, out: Dtype) -> String {
    let lim = |max: bool| -> String {
        match out {
            Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32 | Dtype::Float64 => {
                if max {
                    format!("(({acc})(-OX_INF))")
                } else {
                    format!("(({acc})OX_INF)")
                }
            }
            Dtype::Bool => {
                if max {
                    "0".into()
                } else {
                    "1".into()
                }
            }
            d if d.is_unsigned() => {
                if max {
                    "0".into()
                } else {
                    format!("(({acc})~0ull)")
                }
            }
            Dtype::Int8 => {
                if max {
                    "-128".into()
                } else {
                    "127".into()
                }
            }
            Dtype::Int16 => {
                if max {
                    "-32768".into()
                } else {
                    "32767".into()
                }
            }
            Dtype::Int32 => {
                if max {
                    "(-2147483647-1)".into()
                } else {
                    "2147483647".into()
                }
            }
            _ => {
                if max {
                    "(-9223372036854775807LL-1)".into()
                } else {
                    "9223372036854775807LL".into()
                }
            }
        }
    };
    match op {
        ReduceOp::Sum | ReduceOp::Any => format!("(({acc})0)"),
        ReduceOp::Prod | ReduceOp::All => format!("(({acc})1)"),
        ReduceOp::Max => lim(true),
        ReduceOp::Min => lim(false),
    }
}

fn red_combine(op: ReduceOp, float: bool) -> &'static str {
    match op {
        ReduceOp::Sum => "a + b",
        ReduceOp::Prod => "a * b",
        ReduceOp::Max if float => "((isnan(a) || a > b) ? a : b)",
        ReduceOp::Min if float => "((isnan(a) || a < b) ? a : b)",
        ReduceOp::Max => "(a > b ? a : b)",
        ReduceOp::Min => "(a < b ? a : b)",
        ReduceOp::All => "(a && b)",
        ReduceOp::Any => "(a || b)",
    }
}

/// The dtype partial results of a two-pass reduction are kept in (the accumulator's).
pub fn partial_dtype(op: ReduceOp, out: Dtype) -> Dtype {
    match op {
        ReduceOp::All | ReduceOp::Any => Dtype::Int32,
        _ => match out {
            Dtype::Float16 | Dtype::Bfloat16 => Dtype::Float32,
            Dtype::Bool => Dtype::Int32,
            d => d,
        },
    }
}

/// One block (256 threads) per output element and chunk (`blockIdx.y`); threads stride over the reduced
/// elements, then a shared-memory tree combines them.
pub fn reduce_src(op: ReduceOp, inp: Dtype, out: Dtype, vec: bool) -> Option<String> {
    reduce_walk_src(
        op,
        inp,
        out,
        if vec {
            RedWalk::Vector
        } else {
            RedWalk::Strided
        },
    )
}

/// Column reductions (one kept axis of stride 1, one reduced axis of another stride): one
/// thread per output element and chunk of reduced elements (`blockIdx.y`), so a warp
/// reads 32 neighbouring elements of a row at a time instead of 32 rows.
pub fn reduce_cols_src(op: ReduceOp, inp: Dtype, out: Dtype) -> Option<String> {
    reduce_walk_src(op, inp, out, RedWalk::Columns)
}

#[derive(PartialEq)]
enum RedWalk {
    Vector,
    Strided,
    Columns,
    /// Short contiguous rows: `lanes` threads of a warp per row (a power of two up to
    /// 32), combined by shuffles; the launch passes the row count as `chunk`.
    Groups {
        lanes: u32,
    },
}

/// Short contiguous rows (`inner_n` elements with 4-aligned starts, e.g. the 64 values
/// of one attention head): `lanes` threads per row instead of a 256-thread block per row,
/// which left most threads idle. None where a shuffle cannot move the accumulator.
pub fn reduce_groups_src(op: ReduceOp, inp: Dtype, out: Dtype, lanes: u32) -> Option<String> {
    let acc = match op {
        ReduceOp::All | ReduceOp::Any => "int",
        _ => compute_type(out)?,
    };
    let shuffles = [
        "float",
        "double",
        "int",
        "unsigned int",
        "long long",
        "unsigned long long",
    ];
    if !shuffles.contains(&acc) || !lanes.is_power_of_two() || lanes > 32 {
        return None;
    }
    reduce_walk_src(op, inp, out, RedWalk::Groups { lanes })
}

/// Lanes per row for a short-row reduction of `inner_n` elements: one 4-wide load per
/// lane covers the row (at most 32 lanes).
pub fn reduce_group_lanes(inner_n: usize) -> u32 {
    inner_n.div_ceil(4).next_power_of_two().clamp(1, 32) as u32
}

fn reduce_walk_src(op: ReduceOp, inp: Dtype, out: Dtype, walk: RedWalk) -> Option<String> {
    let vec = matches!(walk, RedWalk::Vector | RedWalk::Groups { .. });
    // the threads of one reduction: the block, or a group of lanes
    let (tid, nthreads) = match walk {
        RedWalk::Groups { .. } => ("lane", "G"),
        _ => ("threadIdx.x", "blockDim.x"),
    };
    let complex = inp == Dtype::Complex64 || out == Dtype::Complex64;
    let ordered = matches!(op, ReduceOp::Max | ReduceOp::Min);
    if complex && !((ordered || matches!(op, ReduceOp::Sum | ReduceOp::Prod)) && inp == out) {
        return None;
    }
    let it = ctype(inp)?;
    let ot = ctype(out)?;
    let (acc, float) = match op {
        ReduceOp::All | ReduceOp::Any => ("int", false),
        _ => (compute_type(out)?, out.is_float()),
    };
    let load = match op {
        ReduceOp::All | ReduceOp::Any => "((int)(in[j] != 0))".to_string(),
        _ if inp == Dtype::Bool => format!("(({acc})(in[j] != 0))"),
        _ => format!("(({acc})(in[j]))"),
    };
    let (init, comb) = match op {
        // the CPU's complex max/min: lexicographic, and a NaN (in either part) sticks
        ReduceOp::Max if complex => (
            "cplx(-OX_INF, -OX_INF)".to_string(),
            "(cnan(a) ? a : ((cnan(b) || a < b) ? b : a))",
        ),
        ReduceOp::Min if complex => (
            "cplx(OX_INF, OX_INF)".to_string(),
            "(cnan(a) ? a : ((cnan(b) || b < a) ? b : a))",
        ),
        _ => (red_init(op, acc, out), red_combine(op, float)),
    };
    // Contiguous inner elements with 4-aligned starts: 4-wide loads and four
    // independent accumulators; otherwise a strided walk.
    let body = if vec {
        let lv = load.replace("in[j]", "q.v[e]");
        format!(
            "  {{ ACC acc4[4] = {{ {init}, {init}, {init}, {init} }};\n\
  const V4<{it}>* p = reinterpret_cast<const V4<{it}>*>(in + base + t0); long long nv = (t1 - t0) / 4;\n\
  for (long long v = {tid}; v < nv; v += {nthreads}) {{ V4<{it}> q = p[v];\n\
    #pragma unroll\n    for (int e = 0; e < 4; ++e) acc4[e] = comb(acc4[e], {lv}); }}\n\
  for (long long t = t0 + nv * 4 + {tid}; t < t1; t += {nthreads}) {{ long long j = base + t; a = comb(a, {load}); }}\n\
  a = comb(a, comb(comb(acc4[0], acc4[1]), comb(acc4[2], acc4[3]))); }}\n"
        )
    } else {
        format!(
            "  #pragma unroll 4\n\
  for (long long t = t0 + threadIdx.x; t < t1; t += blockDim.x) {{\n\
    long long j = base;\n\
    if (m.inner_ndim == 1) {{ j += t * m.inner_strides[0]; }}\n\
    else if (m.inner_n <= 0xFFFFFFFFLL) {{ unsigned q = (unsigned)t;  // 32-bit division is several times cheaper\n\
      for (int d = (int)m.inner_ndim - 1; d >= 0; --d) {{ unsigned l = (unsigned)m.inner_shape[d], p = q / l; j += (long long)(q - p * l) * m.inner_strides[d]; q = p; }} }}\n\
    else {{ long long q = t;\n\
    for (int d = (int)m.inner_ndim - 1; d >= 0; --d) {{ long long c = q % m.inner_shape[d]; q /= m.inner_shape[d]; j += c * m.inner_strides[d]; }} }}\n\
    ACC b = {load}; a = comb(a, b);\n\
  }}\n"
        )
    };
    let store = if out == Dtype::Bool {
        "(unsigned char)(a != 0)".to_string()
    } else {
        format!("({ot})(a)")
    };
    let pre = prelude(&[inp, out]);
    if let RedWalk::Groups { lanes } = walk {
        return Some(format!(
            "{pre}\ntemplate <typename T> struct alignas(4 * sizeof(T)) V4 {{ T v[4]; }};\ntypedef {acc} ACC;\n__device__ __forceinline__ ACC comb(ACC a, ACC b) {{ return {comb}; }}\n\
extern \"C\" __global__ void k(const {it}* __restrict__ in, {ot}* __restrict__ outp, RedMeta m, long long rows) {{\n\
  const int G = {lanes};\n\
  long long o = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / G; int lane = threadIdx.x % G;\n\
  ACC a = {init};\n\
  if (o < rows) {{\n\
  long long base = m.offset, r = o, t0 = 0, t1 = m.inner_n;\n\
  for (int d = (int)m.outer_ndim - 1; d >= 0; --d) {{ long long c = r % m.outer_shape[d]; r /= m.outer_shape[d]; base += c * m.outer_strides[d]; }}\n\
{body}\
  }}\n\
  for (int s = G / 2; s > 0; s >>= 1) {{ ACC b = __shfl_xor_sync(0xffffffffu, a, s); a = comb(a, b); }}\n\
  if (o < rows && lane == 0) outp[o] = {store};\n\
}}\n"
        ));
    }
    if walk == RedWalk::Columns {
        return Some(format!(
            "{pre}\ntypedef {acc} ACC;\n__device__ __forceinline__ ACC comb(ACC a, ACC b) {{ return {comb}; }}\n\
extern \"C\" __global__ void k(const {it}* __restrict__ in, {ot}* __restrict__ outp, RedMeta m, long long chunk) {{\n\
  long long o = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n\
  if (o >= m.outer_shape[0]) return;\n\
  long long t0 = (long long)blockIdx.y * chunk; long long t1 = t0 + chunk < m.inner_n ? t0 + chunk : m.inner_n;\n\
  long long s = m.inner_strides[0]; long long j = m.offset + o + t0 * s;\n\
  ACC a = {init};\n\
  for (long long t = t0; t < t1; ++t, j += s) {{ a = comb(a, {load}); }}\n\
  outp[o * gridDim.y + blockIdx.y] = {store};\n\
}}\n"
        ));
    }
    Some(format!(
        "{pre}\ntemplate <typename T> struct alignas(4 * sizeof(T)) V4 {{ T v[4]; }};\ntypedef {acc} ACC;\n__device__ __forceinline__ ACC comb(ACC a, ACC b) {{ return {comb}; }}\n\
extern \"C\" __global__ void k(const {it}* __restrict__ in, {ot}* __restrict__ outp, RedMeta m, long long chunk) {{\n\
  __shared__ ACC sh[256];\n\
  long long o = blockIdx.x; long long base = m.offset; long long r = o;\n\
  long long t0 = (long long)blockIdx.y * chunk; long long t1 = t0 + chunk < m.inner_n ? t0 + chunk : m.inner_n;\n\
  for (int d = (int)m.outer_ndim - 1; d >= 0; --d) {{ long long c = r % m.outer_shape[d]; r /= m.outer_shape[d]; base += c * m.outer_strides[d]; }}\n\
  ACC a = {init};\n\
{body}\
  sh[threadIdx.x] = a; __syncthreads();\n\
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {{ if (threadIdx.x < s) {{ ACC b = sh[threadIdx.x + s]; sh[threadIdx.x] = comb(sh[threadIdx.x], b); }} __syncthreads(); }}\n\
  if (threadIdx.x == 0) {{ a = sh[0]; outp[o * gridDim.y + blockIdx.y] = {store}; }}\n\
}}\n"
    ))
}

/// `out[i] = start + i * step` in the output dtype.
pub fn arange_src(out: Dtype) -> Option<String> {
    if out.is_complex() {
        return None;
    }
    let ot = ctype(out)?;
    Some(format!(
        "{PRELUDE}\nextern \"C\" __global__ void k({ot}* out, double start, double step, long long n) {{\n  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) out[i] = ({ot})(start + (double)i * step);\n}}\n"
    ))
}

/// NVRTC compilation with an in-memory cache keyed by source.
pub struct Compiler {
    ctx: Arc<CudaContext>,
    arch: String,
    cache: Mutex<HashMap<String, CudaFunction>>,
    /// Functions by a short description of what generates their source (the hot
    /// elementwise path): finding one then neither builds nor hashes the source.
    memo: Mutex<HashMap<String, CudaFunction>>,
    /// Users' kernels (`mx.fast.cuda_kernel`) by name: (source, function) pairs.
    user_cache: Mutex<HashMap<String, Vec<(String, CudaFunction)>>>,
}

pub(crate) fn include_paths() -> Vec<String> {
    let mut v = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(p) = std::env::var(var) {
            v.push(format!("{p}/include"));
        }
    }
    v.push("/usr/local/cuda/include".into());
    v.push("/usr/local/cuda-13.0/include".into());
    // CUDA 13 keeps libcu++ (`cuda/std/...`, needed by cooperative_groups) under cccl/
    let cccl: Vec<String> = v.iter().map(|p| format!("{p}/cccl")).collect();
    v.extend(cccl);
    v.retain(|p| std::path::Path::new(p).exists());
    v
}

/// The generated sources name their entry `k`; it is renamed `ox_<op>` (op's letters,
/// digits and underscores) so that profilers tell the kernels apart. Returns the source
/// and the entry's name.
fn name_entry(op: &str, src: String) -> (String, String) {
    let stem: String = op
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    let entry = format!("ox_{stem}");
    let at = src
        .find("__global__")
        .and_then(|g| src[g..].find(" k(").map(|i| g + i));
    match at {
        Some(i) => {
            let mut out = String::with_capacity(src.len() + entry.len());
            out.push_str(&src[..i + 1]);
            out.push_str(&entry);
            out.push_str(&src[i + 2..]);
            (out, entry)
        }
        None => (src, "k".to_string()),
    }
}

impl Compiler {
    pub fn new(ctx: Arc<CudaContext>) -> Compiler {
        let arch = match ctx.compute_capability() {
            Ok((ma, mi)) => format!("--gpu-architecture=sm_{ma}{mi}"),
            Err(_) => "--gpu-architecture=sm_90".into(),
        };
        Compiler {
            ctx,
            arch,
            cache: Mutex::new(HashMap::new()),
            memo: Mutex::new(HashMap::new()),
            user_cache: Mutex::new(HashMap::new()),
        }
    }

    /// The function memoized under `key`, or `make()`'s (then memoized).
    pub fn memo(
        &self,
        key: String,
        make: impl FnOnce() -> Result<CudaFunction>,
    ) -> Result<CudaFunction> {
        if let Some(f) = self.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(f);
        }
        let f = make()?;
        if let Ok(mut m) = self.memo.lock() {
            m.insert(key, f.clone());
        }
        Ok(f)
    }

    pub fn get(&self, op: &str, src: String) -> Result<CudaFunction> {
        self.get_with(op, src, false)
    }

    /// `get(op, src()?)` memoized under `key` (which must name everything `src` depends
    /// on, `op` included): a launch then skips generating and hashing its source.
    pub fn get_keyed(
        &self,
        op: &str,
        key: String,
        src: impl FnOnce() -> Result<String>,
    ) -> Result<CudaFunction> {
        self.memo(key, || self.get(op, src()?))
    }

    /// `get` with NVRTC's `--fmad=false`: a multiply and an add stay two roundings, as
    /// the CPU computes them. The elementwise kernels (eager and fused) use it, so that
    /// a fused `x * y + z` rounds as the two eager kernels do.
    pub fn get_exact(&self, op: &str, src: String) -> Result<CudaFunction> {
        self.get_with(op, src, true)
    }

    fn get_with(&self, op: &str, src: String, exact: bool) -> Result<CudaFunction> {
        let _span = crate::prof::span(crate::prof::Phase::Source);
        let (src, entry) = name_entry(op, src);
        let src = if exact {
            format!("// fmad=false\n{src}")
        } else {
            src
        };
        if let Ok(c) = self.cache.lock() {
            if let Some(f) = c.get(&src) {
                return Ok(f.clone());
            }
        }
        let mut options = vec![self.arch.clone(), "--std=c++17".into()];
        if exact {
            options.push("--fmad=false".into());
        }
        let key = format!("{}\n{src}", options.join(" "));
        let load = |ptx: Ptx| -> Result<CudaFunction> {
            let module = self
                .ctx
                .load_module(ptx)
                .map_err(|e| Error::runtime(op, format!("Loading a kernel failed: {e:?}")))?;
            module
                .load_function(&entry)
                .map_err(|e| Error::runtime(op, format!("Loading a kernel failed: {e:?}")))
        };
        // A cached PTX that no longer loads (e.g. an older driver) is compiled again.
        let cached = crate::disk_cache::load(&key).and_then(|p| load(Ptx::from_src(p)).ok());
        let f = match cached {
            Some(f) => f,
            None => {
                let opts = CompileOptions {
                    include_paths: include_paths(),
                    options,
                    ..Default::default()
                };
                let ptx = compile_ptx_with_opts(&src, opts).map_err(|e| {
                    Error::runtime(op, format!("NVRTC failed to compile a kernel: {e:?}"))
                })?;
                let text = ptx
                    .as_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(|t| t.trim_end_matches('\0').to_string());
                if let Some(t) = &text {
                    crate::disk_cache::store(&key, t);
                }
                load(ptx)?
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            c.insert(src, f.clone());
        }
        Ok(f)
    }
}

impl Compiler {
    /// A user's kernel (`mx.fast.cuda_kernel`): `src` compiled by NVRTC and the function
    /// `name` loaded, cached in memory by (name, source). A compile error carries the
    /// NVRTC log as text.
    pub fn get_user(&self, op: &str, src: &str, name: &str) -> Result<CudaFunction> {
        // by name, then the whole source compared (no hash of a long source per launch)
        if let Ok(c) = self.user_cache.lock() {
            let hit = c.get(name).and_then(|v| v.iter().find(|(s, _)| s == src));
            if let Some((_, f)) = hit {
                return Ok(f.clone());
            }
        }
        let opts = CompileOptions {
            include_paths: include_paths(),
            options: vec![self.arch.clone(), "--std=c++17".into()],
            ..Default::default()
        };
        let ptx = compile_ptx_with_opts(src, opts).map_err(|e| {
            let log = match &e {
                cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                    log.to_string_lossy().into_owned()
                }
                other => format!("{other:?}"),
            };
            Error::value(op, format!("The kernel '{name}' failed to compile:\n{log}"))
        })?;
        let f = self.load_named(op, ptx, name)?;
        if let Ok(mut c) = self.user_cache.lock() {
            let v = c.entry(name.to_string()).or_default();
            // a kernel regenerated with new source each call must not grow without bound
            if v.len() >= 64 {
                v.clear();
            }
            v.push((src.to_string(), f.clone()));
        }
        Ok(f)
    }

    /// The function `name` of a PTX text or cubin image.
    pub fn load_named(&self, op: &str, code: Ptx, name: &str) -> Result<CudaFunction> {
        let module = self
            .ctx
            .load_module(code)
            .map_err(|e| Error::value(op, format!("Loading the kernel module failed: {e:?}")))?;
        module
            .load_function(name)
            .map_err(|e| Error::value(op, format!("The module has no kernel '{name}': {e:?}")))
    }
}

#[allow(dead_code)]
const _: () = assert!(MAX_DIMS == 8);

/// Softmax along contiguous rows of length `n`: one block per row, three passes.
pub fn softmax_src(d: Dtype) -> Option<String> {
    let t = ctype(d)?;
    let acc = if d == Dtype::Float64 {
        "double"
    } else {
        "float"
    };
    if !d.is_float() {
        return None;
    }
    // One read computes the running max and the sum of exponentials rescaled to it
    // (online softmax); a second read writes the result.
    Some(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n\
__device__ __forceinline__ void merge(ACC& m, ACC& s, ACC m2, ACC s2) {{\n\
  if (isnan(m) || isnan(m2)) {{ m = m + m2; s = m; return; }}\n\
  if (m == OX_INF || m2 == OX_INF) {{ m = OX_INF; s = m - m; return; }}\n\
  if (m2 > m) {{ s = s * exp(m - m2) + s2; m = m2; }} else if (m2 == -OX_INF) {{ }} else {{ s = s + s2 * exp(m2 - m); }}\n\
}}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, {t}* __restrict__ out, long long n) {{\n\
  __shared__ ACC sm[256]; __shared__ ACC ss[256];\n\
  const {t}* x = in + (long long)blockIdx.x * n; {t}* y = out + (long long)blockIdx.x * n;\n\
  ACC m = (ACC)(-OX_INF), s = 0;\n\
  for (long long j = threadIdx.x; j < n; j += blockDim.x) {{ ACC v = (ACC)x[j]; merge(m, s, v, (ACC)1); }}\n\
  sm[threadIdx.x] = m; ss[threadIdx.x] = s; __syncthreads();\n\
  for (int k2 = blockDim.x / 2; k2 > 0; k2 >>= 1) {{ if (threadIdx.x < k2) {{ ACC a = sm[threadIdx.x], b = ss[threadIdx.x]; merge(a, b, sm[threadIdx.x + k2], ss[threadIdx.x + k2]); sm[threadIdx.x] = a; ss[threadIdx.x] = b; }} __syncthreads(); }}\n\
  m = sm[0]; ACC inv = (ACC)1 / ss[0];\n\
  for (long long j = threadIdx.x; j < n; j += blockDim.x) y[j] = ({t})(exp((ACC)x[j] - m) * inv);\n\
}}\n"
    ))
}

/// Index (uint32) of the max/min along one axis; ties and NaNs go to the first index.
pub fn arg_reduce_src(max: bool, d: Dtype) -> Option<String> {
    let t = ctype(d)?;
    let acc = compute_type(d)?;
    let better = if max { "b > a" } else { "b < a" };
    // NaN beats every number; among NaNs (as among equal values) the first position wins,
    // whichever order the tree meets them in
    let nan_check = match d {
        Dtype::Complex64 => {
            "bool an = cnan(a), bn = cnan(b); if (an || bn) return (an && bn) ? ib < ia : bn;"
        }
        _ if d.is_float() => {
            "bool an = isnan(a), bn = isnan(b); if (an || bn) return (an && bn) ? ib < ia : bn;"
        }
        _ => "",
    };
    Some(format!(
        "{pre}\ntypedef {acc} ACC;\n\
__device__ __forceinline__ bool better(ACC a, long long ia, ACC b, long long ib) {{ if (ib < 0) return false; if (ia < 0) return true; {nan_check} if ({better}) return true; if (b == a) return ib < ia; return false; }}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, unsigned int* __restrict__ outp, RedMeta m) {{\n\
  __shared__ ACC sv[256]; __shared__ long long si[256];\n\
  long long o = blockIdx.x; long long base = m.offset; long long r = o;\n\
  for (int d = (int)m.outer_ndim - 1; d >= 0; --d) {{ long long c = r % m.outer_shape[d]; r /= m.outer_shape[d]; base += c * m.outer_strides[d]; }}\n\
  ACC a = (ACC)0; long long ia = -1;\n\
  for (long long t = threadIdx.x; t < m.inner_n; t += blockDim.x) {{\n\
    ACC b = (ACC)in[base + t * m.inner_strides[0]];\n\
    if (better(a, ia, b, t)) {{ a = b; ia = t; }}\n\
  }}\n\
  sv[threadIdx.x] = a; si[threadIdx.x] = ia; __syncthreads();\n\
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {{ if (threadIdx.x < s) {{ if (better(sv[threadIdx.x], si[threadIdx.x], sv[threadIdx.x + s], si[threadIdx.x + s])) {{ sv[threadIdx.x] = sv[threadIdx.x + s]; si[threadIdx.x] = si[threadIdx.x + s]; }} }} __syncthreads(); }}\n\
  if (threadIdx.x == 0) outp[o] = (unsigned int)(si[0] < 0 ? 0 : si[0]);\n\
}}\n",
        pre = prelude(&[d]),
    ))
}

/// Block-wide reductions through warp shuffles (blockDim.x a multiple of 32, ≤ 1024).
pub(crate) const BLOCK_REDUCE: &str = r#"
__device__ __forceinline__ ACC nanmax(ACC a, ACC b) { return (isnan(a) || a > b) ? a : b; }
__device__ __forceinline__ ACC block_max(ACC v, ACC* sh) {
  for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads(); if (l == 0) sh[w] = v; __syncthreads();
  v = l < nw ? sh[l] : (ACC)(-OX_INF);
  for (int o = 16; o > 0; o >>= 1) v = nanmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ ACC block_sum(ACC v, ACC* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  __syncthreads(); if (l == 0) sh[w] = v; __syncthreads();
  v = l < nw ? sh[l] : (ACC)0;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
"#;

/// Largest number of 4-element vectors one thread keeps in registers in the one-read
/// softmax (rows up to 256 threads × 16 × 4 = 16384 elements).
pub const SOFTMAX_MAX_VPT: usize = 16;

/// Softmax over contiguous rows (offset 0, length a multiple of 4) kept in registers:
/// one block per row, `vpt` aligned 4-wide loads per thread, one read and one write.
pub fn softmax_regs_src(d: Dtype, vpt: usize) -> Option<String> {
    let t = ctype(d)?;
    if !d.is_float() || vpt == 0 || vpt > SOFTMAX_MAX_VPT {
        return None;
    }
    let acc = if d == Dtype::Float64 {
        "double"
    } else {
        "float"
    };
    Some(format!(
        "{PRELUDE}\ntemplate <typename T> struct alignas(4 * sizeof(T)) V4 {{ T v[4]; }};\ntypedef {acc} ACC;\n{BLOCK_REDUCE}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, {t}* __restrict__ out, long long n) {{\n\
  __shared__ ACC sh[32];\n\
  const long long nv = n / 4;\n\
  const V4<{t}>* x = reinterpret_cast<const V4<{t}>*>(in + (long long)blockIdx.x * n);\n\
  V4<{t}>* y = reinterpret_cast<V4<{t}>*>(out + (long long)blockIdx.x * n);\n\
  ACC v[{vpt} * 4]; ACC m = (ACC)(-OX_INF);\n\
  #pragma unroll\n\
  for (int i = 0; i < {vpt}; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
    if (j < nv) {{ V4<{t}> q = x[j];\n\
      #pragma unroll\n      for (int e = 0; e < 4; ++e) {{ v[i * 4 + e] = (ACC)q.v[e]; m = nanmax(v[i * 4 + e], m); }} }} }}\n\
  m = block_max(m, sh);\n\
  ACC s = 0;\n\
  #pragma unroll\n\
  for (int i = 0; i < {vpt}; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
    if (j < nv) {{\n\
      #pragma unroll\n      for (int e = 0; e < 4; ++e) {{ v[i * 4 + e] = exp(v[i * 4 + e] - m); s += v[i * 4 + e]; }} }} }}\n\
  ACC inv = (ACC)1 / block_sum(s, sh);\n\
  #pragma unroll\n\
  for (int i = 0; i < {vpt}; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
    if (j < nv) {{ V4<{t}> q;\n\
      #pragma unroll\n      for (int e = 0; e < 4; ++e) q.v[e] = ({t})(v[i * 4 + e] * inv);\n\
      y[j] = q; }} }}\n\
}}\n"
    ))
}

/// `RandomBits`: Threefry-2x32 (20 rounds) in MLX's counter layout, the same bits as
/// `oxmx_core::random::fill_bits`. One thread per (key, counter pair); `aligned` when
/// each key's run of bytes is a whole number of words.
pub fn random_bits_src(aligned: bool) -> String {
    let store = if aligned {
        "  unsigned int* o = reinterpret_cast<unsigned int*>(out) + k * (per_key / 4);\n  o[i] = a; if (i + half < nwords) o[i + half] = b;\n"
    } else {
        "  unsigned char* o = out + k * per_key;\n  for (int e = 0; e < 4; ++e) { long long p = 4 * i + e; if (p < per_key) o[p] = (unsigned char)(a >> (8 * e)); }\n  for (int e = 0; e < 4; ++e) { long long p = 4 * (i + half) + e; if (p < per_key) o[p] = (unsigned char)(b >> (8 * e)); }\n"
    };
    format!(
        "__device__ __forceinline__ unsigned int rotl(unsigned int x, int r) {{ return (x << r) | (x >> (32 - r)); }}\n\
extern \"C\" __global__ void k(const unsigned int* __restrict__ keys, unsigned char* __restrict__ out, long long nkeys, long long per_key) {{\n\
  long long nwords = (per_key + 3) / 4, half = (nwords + 1) / 2;\n\
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < nkeys * half; g += (long long)gridDim.x * blockDim.x) {{\n\
  long long k = g / half, i = g - k * half;\n\
  unsigned int ks[3] = {{ keys[2 * k], keys[2 * k + 1], 0x1BD11BDAu ^ keys[2 * k] ^ keys[2 * k + 1] }};\n\
  const int rot[8] = {{ 13, 15, 26, 6, 17, 29, 16, 24 }};\n\
  unsigned int a = (unsigned int)i + ks[0];\n\
  unsigned int b = (i + half < nwords ? (unsigned int)(i + half) : 0u) + ks[1];\n\
  #pragma unroll\n\
  for (int s = 1; s <= 5; ++s) {{\n\
    #pragma unroll\n\
    for (int r = 0; r < 4; ++r) {{ a += b; b = rotl(b, rot[(s % 2 == 1 ? 0 : 4) + r]) ^ a; }}\n\
    a += ks[s % 3]; b += ks[(s + 1) % 3] + (unsigned int)s;\n\
  }}\n\
{store}  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvrtc_check::check;
    use oxmx_core::primitive::{BinaryOp, UnaryOp};

    /// Every unary and binary expression the elementwise kernels take, per dtype, as
    /// device functions of one translation unit (see `nvrtc_check`).
    #[test]
    fn every_elementwise_expression_compiles() {
        // erfinv has its own kernel (erfinv.rs)
        let unary = UnaryOp::ALL.iter().filter(|&&u| u != UnaryOp::ErfInv);
        let binary = BinaryOp::ALL;
        let dtypes = [
            Dtype::Float32,
            Dtype::Float64,
            Dtype::Float16,
            Dtype::Bfloat16,
            Dtype::Int32,
            Dtype::Int64,
            Dtype::Uint8,
            Dtype::Uint64,
            Dtype::Bool,
            Dtype::Complex64,
        ];
        for d in dtypes {
            let Some(ct) = compute_type(d) else { continue };
            let mut src = format!("{}\ntypedef {ct} CT;\n", prelude(&[d]));
            for (i, op) in unary.clone().enumerate() {
                if let Some(e) = unary_expr(*op, d) {
                    src.push_str(&format!("__device__ auto u{i}(CT x) {{ return {e}; }}\n"));
                }
            }
            for (i, op) in binary.iter().enumerate() {
                if let Some(e) = binary_expr(*op, d) {
                    src.push_str(&format!(
                        "__device__ auto b{i}(CT x, CT y) {{ return {e}; }}\n"
                    ));
                }
            }
            if !check(&format!("elementwise {d}"), Some(src)) {
                return;
            }
        }
    }

    #[test]
    fn entries_are_named_after_their_op() {
        let (src, entry) = name_entry(
            "scatter_add",
            "extern \"C\" __global__ void k(int n) { int k = n; }".into(),
        );
        assert_eq!(entry, "ox_scatter_add");
        assert_eq!(
            src,
            "extern \"C\" __global__ void ox_scatter_add(int n) { int k = n; }"
        );
        let (src, entry) = name_entry(
            "sdpa",
            "__global__ void __launch_bounds__(128) k(int n)".into(),
        );
        assert_eq!(
            (src.as_str(), entry.as_str()),
            (
                "__global__ void __launch_bounds__(128) ox_sdpa(int n)",
                "ox_sdpa"
            )
        );
        let (_, entry) = name_entry("x", "__device__ void k(int n)".into());
        assert_eq!(entry, "k");
    }
}
