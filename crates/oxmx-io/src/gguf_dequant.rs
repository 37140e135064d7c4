//! GGUF block types that MLX's affine layout cannot hold exactly, decoded to float16 at
//! load: Q5_0, Q5_1, the K-quants Q2_K…Q8_K, IQ4_NL, IQ4_XS and MXFP4. (MLX converts only
//! Q2_K, Q4_K and Q6_K, also to float16, and refuses the rest.)
//!
//! Each block is decoded in f32 from its fields and rounded once to float16
//! (round-to-nearest-even). Products are taken in the order of the format's reference
//! dequantization (`(d·scale)·q − dmin·min`), so the f32 values match it bit for bit.
//! Blocks are read through `chunks_exact` and fixed-size arrays: indices come from loop
//! counters bounded by the block's own size, never from the file, so no data can make a
//! read go out of bounds.

use crate::error::{invalid, Result};
use crate::gguf::TensorType;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Elements per super-block of the K-quants and IQ4_XS.
pub const QK_K: usize = 256;
/// Elements per block of the 32-element types.
const QK: usize = 32;

/// The 16 non-uniform levels of IQ4_NL and IQ4_XS.
const IQ4_LEVELS: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// MXFP4's E2M1 values, doubled (so the E8M0 block scale is halved to match: 2^(e−128)).
const MXFP4_LEVELS: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

fn f16_at(lo: u8, hi: u8) -> f32 {
    f16::from_le_bytes([lo, hi]).to_f32()
}

/// Decode the raw blocks of `tt` (a type with [`TensorType::to_f16`]) into little-endian
/// float16 values in `out`, which must hold exactly one value per element.
pub fn dequantize_f16(tt: TensorType, raw: &[u8], out: &mut [u8]) -> Result<()> {
    match tt {
        TensorType::Q5_0 => decode_blocks::<22, QK>(tt, raw, out, q5_0),
        TensorType::Q5_1 => decode_blocks::<24, QK>(tt, raw, out, q5_1),
        TensorType::IQ4_NL => decode_blocks::<18, QK>(tt, raw, out, iq4_nl),
        TensorType::MXFP4 => decode_blocks::<17, QK>(tt, raw, out, mxfp4),
        TensorType::Q2_K => decode_blocks::<84, QK_K>(tt, raw, out, q2_k),
        TensorType::Q3_K => decode_blocks::<110, QK_K>(tt, raw, out, q3_k),
        TensorType::Q4_K => decode_blocks::<144, QK_K>(tt, raw, out, q4_k),
        TensorType::Q5_K => decode_blocks::<176, QK_K>(tt, raw, out, q5_k),
        TensorType::Q6_K => decode_blocks::<210, QK_K>(tt, raw, out, q6_k),
        TensorType::Q8_K => decode_blocks::<292, QK_K>(tt, raw, out, q8_k),
        TensorType::IQ4_XS => decode_blocks::<136, QK_K>(tt, raw, out, iq4_xs),
        _ => Err(invalid(format!(
            "{} is not a type converted to float16",
            tt.name()
        ))),
    }
}

/// Run `decode` on every `BB`-byte block of `raw`, writing `BL` float16 values per block.
fn decode_blocks<const BB: usize, const BL: usize>(
    tt: TensorType,
    raw: &[u8],
    out: &mut [u8],
    decode: fn(&[u8; BB], &mut [f32; BL]),
) -> Result<()> {
    // the parser sized the data from `block()`; both tables must agree
    if tt.block() != (BL as u64, BB as u64) {
        return Err(invalid(format!("{}: block size table mismatch", tt.name())));
    }
    if !raw.len().is_multiple_of(BB) {
        return Err(invalid(format!(
            "{} data is not a whole number of {BB}-byte blocks",
            tt.name()
        )));
    }
    if (raw.len() / BB).checked_mul(BL * 2) != Some(out.len()) {
        return Err(invalid("output buffer does not match the block count"));
    }
    let mut y = [0f32; BL];
    let mut h = [f16::ZERO; BL];
    for (blk, o) in raw.chunks_exact(BB).zip(out.chunks_exact_mut(BL * 2)) {
        let blk: &[u8; BB] = blk
            .try_into()
            .map_err(|_| invalid("block of the wrong size"))?;
        decode(blk, &mut y);
        // a whole block at once: half uses F16C when the CPU has it
        h.convert_from_f32_slice(&y);
        // `[u8; 2]` stores (2-byte `copy_from_slice` calls were ~8x slower)
        for (pair, v) in o.as_chunks_mut::<2>().0.iter_mut().zip(h.iter()) {
            *pair = v.to_le_bytes();
        }
    }
    Ok(())
}

/// Fill the 32 values of a block whose 16 bytes `qs` hold element `j` in the low nibble
/// of byte `j` and element `j + 16` in the high nibble (Q4_0's layout), as `f(j, nibble)`.
fn split_nibbles(qs: &[u8], y: &mut [f32], f: impl Fn(usize, u8) -> f32) {
    let (lo, hi) = y.split_at_mut(16);
    for (j, ((a, b), &q)) in lo.iter_mut().zip(hi.iter_mut()).zip(qs).enumerate() {
        *a = f(j, q & 0x0F);
        *b = f(j + 16, q >> 4);
    }
}

/// Q5_0 — d f16, qh u32 (bit j: 5th bit of element j), qs[16]; value d·(q − 16).
fn q5_0(b: &[u8; 22], y: &mut [f32; QK]) {
    let d = f16_at(b[0], b[1]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    split_nibbles(&b[6..], y, |j, lo| {
        let q = i32::from(lo) | (((qh >> j) & 1) as i32) << 4;
        d * (q - 16) as f32
    });
}

/// Q5_1 — d f16, m f16, qh u32, qs[16]; value d·q + m.
fn q5_1(b: &[u8; 24], y: &mut [f32; QK]) {
    let d = f16_at(b[0], b[1]);
    let m = f16_at(b[2], b[3]);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    split_nibbles(&b[8..], y, |j, lo| {
        let q = u32::from(lo) | ((qh >> j) & 1) << 4;
        d * q as f32 + m
    });
}

/// IQ4_NL — d f16, qs[16] (nibbles as Q4_0); value d·LEVELS[q].
fn iq4_nl(b: &[u8; 18], y: &mut [f32; QK]) {
    let d = f16_at(b[0], b[1]);
    split_nibbles(&b[2..], y, |_, q| d * f32::from(IQ4_LEVELS[usize::from(q)]));
}

/// MXFP4 — e u8 (E8M0 exponent), qs[16] (nibbles as Q4_0); value LEVELS[q]·2^(e−128).
fn mxfp4(b: &[u8; 17], y: &mut [f32; QK]) {
    let e = u32::from(b[0]);
    // 2^(e−128) as f32 bits: subnormal for e < 2, normal above
    let d = f32::from_bits(if e < 2 {
        0x0020_0000 << e
    } else {
        (e - 1) << 23
    });
    split_nibbles(&b[1..], y, |_, q| {
        f32::from(MXFP4_LEVELS[usize::from(q)]) * d
    });
}

/// Q2_K — scales[16] (low nibble scale, high nibble min, one pair per 16 elements),
/// qs[64] (2 bits each), d f16, dmin f16. Group g of 16 elements (g = 8n + 2j + h) is
/// bits 2j of qs[32n + 16h ..][..16]; value (d·sc)·q − dmin·m.
fn q2_k(b: &[u8; 84], y: &mut [f32; QK_K]) {
    let d = f16_at(b[80], b[81]);
    let dmin = f16_at(b[82], b[83]);
    for (g, ys) in y.chunks_exact_mut(16).enumerate() {
        let (n, j, h) = (g / 8, g % 8 / 2, g % 2);
        let sc = b[g];
        let dl = d * f32::from(sc & 0x0F);
        let ml = dmin * f32::from(sc >> 4);
        let qs = &b[16 + 32 * n + 16 * h..][..16];
        for (v, &q) in ys.iter_mut().zip(qs) {
            *v = dl * f32::from((q >> (2 * j)) & 3) - ml;
        }
    }
}

/// Q3_K's 16 six-bit scales (stored +32) from its 12 scale bytes: scale i has its low
/// nibble in byte i (i < 8, low half) or i − 8 (high half), and its top 2 bits in byte
/// 8 + i % 4 at bit 2·(i / 4).
fn q3_k_scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 { s[i] & 0x0F } else { s[i - 8] >> 4 };
        let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = i32::from(low | high << 4) - 32;
    }
    out
}

/// Q3_K — hmask[32] (3rd bit), qs[64] (low 2 bits), scales[12], d f16. Group g of 16
/// elements (g = 8n + 2j + h): low bits 2j of qs[32n + 16h ..][..16], high bit 4n + j of
/// hmask[16h ..][..16] (clear means −4); value (d·sc)·q.
fn q3_k(b: &[u8; 110], y: &mut [f32; QK_K]) {
    let d = f16_at(b[108], b[109]);
    let scales = q3_k_scales(&b[96..108]);
    for ((g, ys), &sc) in y.chunks_exact_mut(16).enumerate().zip(&scales) {
        let (n, j, h) = (g / 8, g % 8 / 2, g % 2);
        let dl = d * sc as f32;
        let qs = &b[32 + 32 * n + 16 * h..][..16];
        let hm = &b[16 * h..][..16];
        for ((v, &q), &m) in ys.iter_mut().zip(qs).zip(hm) {
            let low = i32::from((q >> (2 * j)) & 3);
            let high_set = m & (1 << (4 * n + j)) != 0;
            *v = dl * (low - if high_set { 0 } else { 4 }) as f32;
        }
    }
}

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K: six bits
/// each; for j ≥ 4 the low four bits sit in byte j + 4 and the top two in the spare top
/// bits of bytes j − 4 (scale) and j (min).
fn k4_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | (s[j - 4] >> 6) << 4,
            (s[j + 4] >> 4) | (s[j] >> 6) << 4,
        )
    }
}

/// Q4_K — d f16, dmin f16, scales[12], qs[128]. Sub-block s = 2c + h (32 elements) is
/// nibble h of qs[32c ..][..32]; value (d·sc)·q − dmin·m.
fn q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let d = f16_at(b[0], b[1]);
    let dmin = f16_at(b[2], b[3]);
    for (s, ys) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k4_scale_min(&b[4..16], s);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let shift = 4 * (s % 2);
        let qs = &b[16 + 32 * (s / 2)..][..32];
        for (v, &q) in ys.iter_mut().zip(qs) {
            *v = d1 * f32::from((q >> shift) & 0x0F) - m1;
        }
    }
}

/// Q5_K — Q4_K plus qh[32] after the scales: bit s of qh[l] adds 16 to element l of
/// sub-block s.
fn q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let d = f16_at(b[0], b[1]);
    let dmin = f16_at(b[2], b[3]);
    let qh = &b[16..48];
    for (s, ys) in y.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k4_scale_min(&b[4..16], s);
        let (d1, m1) = (d * f32::from(sc), dmin * f32::from(m));
        let shift = 4 * (s % 2);
        let qs = &b[48 + 32 * (s / 2)..][..32];
        for ((v, &q), &h) in ys.iter_mut().zip(qs).zip(qh) {
            let q = ((q >> shift) & 0x0F) | ((h >> s) & 1) << 4;
            *v = d1 * f32::from(q) - m1;
        }
    }
}

/// Q6_K — ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (i8), d f16. Group g of
/// 16 elements (g = 8n + 2k + h): nibble k/2 of ql[64n + 32(k%2) + 16h ..][..16], bits 2k
/// of qh[32n + 16h ..][..16]; value (d·sc)·(q − 32).
fn q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = f16_at(b[208], b[209]);
    for (g, ys) in y.chunks_exact_mut(16).enumerate() {
        let (n, k, h) = (g / 8, g % 8 / 2, g % 2);
        let dl = d * f32::from(b[192 + g] as i8);
        let ql = &b[64 * n + 32 * (k % 2) + 16 * h..][..16];
        let qh = &b[128 + 32 * n + 16 * h..][..16];
        let shift = 4 * (k / 2);
        for ((v, &lo), &hi) in ys.iter_mut().zip(ql).zip(qh) {
            let q = ((lo >> shift) & 0x0F) | ((hi >> (2 * k)) & 3) << 4;
            *v = dl * (i32::from(q) - 32) as f32;
        }
    }
}

/// Q8_K — d f32, qs[256] (i8), bsums[16] (i16, only for dot products); value d·q.
fn q8_k(b: &[u8; 292], y: &mut [f32; QK_K]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (v, &q) in y.iter_mut().zip(&b[4..260]) {
        *v = d * f32::from(q as i8);
    }
}

/// IQ4_XS — d f16, scales_h u16, scales_l[4], qs[128]. Sub-block i (32 elements, nibbles
/// as IQ4_NL in qs[16i ..][..16]) has the six-bit scale: nibble i%2 of scales_l[i/2] and
/// bits 2i of scales_h on top, stored +32; value (d·(ls − 32))·LEVELS[q].
fn iq4_xs(b: &[u8; 136], y: &mut [f32; QK_K]) {
    let d = f16_at(b[0], b[1]);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    for (i, ys) in y.chunks_exact_mut(32).enumerate() {
        let low = (b[4 + i / 2] >> (4 * (i % 2))) & 0x0F;
        let high = ((scales_h >> (2 * i)) & 3) as u8;
        let dl = d * (i32::from(low | high << 4) - 32) as f32;
        split_nibbles(&b[8 + 16 * i..][..16], ys, |_, q| {
            dl * f32::from(IQ4_LEVELS[usize::from(q)])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [TensorType; 11] = [
        TensorType::Q5_0,
        TensorType::Q5_1,
        TensorType::IQ4_NL,
        TensorType::MXFP4,
        TensorType::Q2_K,
        TensorType::Q3_K,
        TensorType::Q4_K,
        TensorType::Q5_K,
        TensorType::Q6_K,
        TensorType::Q8_K,
        TensorType::IQ4_XS,
    ];

    #[test]
    fn every_f16_type_decodes_and_no_other_does() {
        for code in 0..64 {
            let Some(tt) = TensorType::from_code(code) else {
                continue;
            };
            let (bl, bb) = tt.block();
            let raw = vec![0x5Au8; 2 * bb as usize];
            let mut out = vec![0u8; 2 * bl as usize * 2];
            let r = dequantize_f16(tt, &raw, &mut out);
            assert_eq!(r.is_ok(), tt.to_f16(), "{}", tt.name());
            assert_eq!(ALL.contains(&tt), tt.to_f16(), "{}", tt.name());
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        for tt in ALL {
            let (bl, bb) = tt.block();
            let (bl, bb) = (bl as usize, bb as usize);
            let mut out = vec![0u8; bl * 2];
            assert!(dequantize_f16(tt, &vec![0; bb - 1], &mut out).is_err());
            assert!(dequantize_f16(tt, &vec![0; bb + 1], &mut out).is_err());
            assert!(dequantize_f16(tt, &vec![0; bb], &mut out[1..]).is_err());
            assert!(dequantize_f16(tt, &vec![0; 2 * bb], &mut out).is_err());
            assert!(dequantize_f16(tt, &[], &mut []).is_ok());
        }
    }

    #[test]
    fn q8_k_is_d_times_q() {
        let mut blk = vec![0u8; 292];
        blk[..4].copy_from_slice(&0.25f32.to_le_bytes());
        for i in 0..256 {
            blk[4 + i] = (i as i32 - 128) as i8 as u8;
        }
        let mut out = vec![0u8; 512];
        dequantize_f16(TensorType::Q8_K, &blk, &mut out).unwrap();
        for (i, h) in out.chunks_exact(2).enumerate() {
            let got = f16::from_le_bytes([h[0], h[1]]).to_f32();
            assert_eq!(got, 0.25 * (i as f32 - 128.0));
        }
    }
}
