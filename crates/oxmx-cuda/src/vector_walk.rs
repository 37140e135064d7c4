//! The contiguous walk of elementwise kernels (eager and fused): four elements per
//! 16-byte vector, and several vectors per thread when the operands are few.
//!
//! A thread that loads one vector and then computes has only that vector in flight. With
//! a single float32 operand that is 16 bytes per thread: a full H200 (132 SMs × 2,048
//! threads) then keeps about 4.3 MB in flight, just what its DRAM needs at full speed,
//! so any lost occupancy shows as lost bandwidth. Loading all of a thread's vectors
//! before computing on any multiplies what is in flight without more threads. Measured
//! on an H200 (2^28 float32, `benchmarks/run_compile_gpu.py`): a fused 10-op chain at
//! 1, 2 and 4 vectors per thread ran at 3722, 3878 and 3780 GB/s, and `exp(sin(x))*2+1`
//! lost 15% at 4, so a thread loads 32 bytes per round.

use std::sync::OnceLock;

/// Bytes a thread should have in flight per round of loads.
const BYTES_IN_FLIGHT: usize = 32;
/// At most this many vectors per thread (registers).
const MAX_VECTORS: usize = 4;

/// Vectors per thread for a walk whose vector-loaded operands have `elem_sizes` bytes per
/// element: enough rounds of 16-byte loads to reach `BYTES_IN_FLIGHT`, between 1 and
/// `MAX_VECTORS`. `OXMX_CUDA_VECTORS` (1-8) overrides it, for measurements.
pub fn vectors_per_thread(elem_sizes: impl Iterator<Item = usize>) -> u8 {
    static FORCED: OnceLock<Option<u8>> = OnceLock::new();
    let forced = FORCED.get_or_init(|| {
        std::env::var("OXMX_CUDA_VECTORS")
            .ok()
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|v| (1..=8).contains(v))
    });
    if let Some(v) = *forced {
        return v;
    }
    let per_round: usize = elem_sizes.map(|s| 4 * s).sum();
    (BYTES_IN_FLIGHT / per_round.max(1)).clamp(1, MAX_VECTORS) as u8
}

/// Threads a vector walk over `n` elements needs with `per_thread` vectors each.
pub fn threads(n: usize, per_thread: u8) -> usize {
    n.div_ceil(4 * usize::from(per_thread.max(1)))
}

/// The loop over `m.n` elements (`m.n / 4` whole vectors, then a scalar tail). `vectors`
/// lists each vector-loaded operand as (variable name, element type, base pointer
/// expression); within `compute` (which runs once per vector and must assign `o.v[e]`
/// for `e` in 0..4) each name is a `V4` of the operand's four elements. `tail` is the
/// body of the scalar loop over the last `m.n % 4` elements at index `i`. The launch
/// needs `threads(n, per_thread)` threads.
pub fn vector4_loop(
    vectors: &[(String, String, String)],
    out_type: &str,
    compute: &str,
    tail: &str,
    per_thread: u8,
) -> String {
    let u = per_thread.max(1);
    let mut loads = String::new();
    let mut picks = String::new();
    for (name, t, _) in vectors {
        loads.push_str(&format!("    V4<{t}> {name}_u[{u}];\n"));
        picks.push_str(&format!("        const V4<{t}> {name} = {name}_u[ox_u];\n"));
    }
    let mut fill = String::new();
    for (name, t, base) in vectors {
        fill.push_str(&format!(
            "      if (ox_v < ox_nv) {name}_u[ox_u] = reinterpret_cast<const V4<{t}>*>({base})[ox_v];\n"
        ));
    }
    format!(
        "  long long ox_nv = m.n / 4;\n  for (long long ox_v0 = tid; ox_v0 < ox_nv; ox_v0 += stride * {u}) {{\n{loads}    #pragma unroll\n    for (int ox_u = 0; ox_u < {u}; ++ox_u) {{\n      long long ox_v = ox_v0 + ox_u * stride;\n{fill}    }}\n    #pragma unroll\n    for (int ox_u = 0; ox_u < {u}; ++ox_u) {{\n      long long ox_v = ox_v0 + ox_u * stride;\n      if (ox_v < ox_nv) {{\n{picks}        V4<{out_type}> o;\n        #pragma unroll\n        for (int e = 0; e < 4; ++e) {{\n{compute}        }}\n        reinterpret_cast<V4<{out_type}>*>(out)[ox_v] = o;\n      }}\n    }}\n  }}\n  for (long long i = ox_nv * 4 + tid; i < m.n; i += stride) {{\n{tail}  }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_operands_get_more_vectors_per_thread() {
        if std::env::var_os("OXMX_CUDA_VECTORS").is_some() {
            return;
        }
        assert_eq!(vectors_per_thread([4].into_iter()), 2);
        assert_eq!(vectors_per_thread([2].into_iter()), 4);
        assert_eq!(vectors_per_thread([1].into_iter()), 4);
        assert_eq!(vectors_per_thread([2, 2].into_iter()), 2);
        assert_eq!(vectors_per_thread([4, 4].into_iter()), 1);
        assert_eq!(vectors_per_thread([8].into_iter()), 1);
        assert_eq!(vectors_per_thread(std::iter::empty()), 4);
        assert_eq!(threads(17, 2), 3);
        assert_eq!(threads(16, 4), 1);
        assert_eq!(threads(0, 4), 0);
    }

    #[test]
    fn every_vector_is_loaded_before_any_is_computed() {
        let s = vector4_loop(
            &[("a0".into(), "float".into(), "in0 + m.offset[0]".into())],
            "float",
            "o.v[e] = a0.v[e];\n",
            "out[i] = in0[i];\n",
            3,
        );
        let load = s.find("a0_u[ox_u] = ").unwrap_or(usize::MAX);
        let compute = s.find("o.v[e] = a0.v[e]").unwrap_or(0);
        assert!(load < compute, "{s}");
        assert!(s.contains("V4<float> a0_u[3];"));
        assert!(s.contains("ox_v0 += stride * 3"));
        assert!(s.contains("for (long long i = ox_nv * 4 + tid; i < m.n; i += stride)"));
    }
}
