//! GGUF types converted to float16 at load, against the `gguf` package's reference
//! dequantization (vectors from `tests/data/make_gguf_dequant_vectors.py`): bit-exact, and
//! through a whole GGUF file as well as the block decoder.

use oxmx_io::gguf::{self, TensorType};
use oxmx_io::gguf_dequant::dequantize_f16;
use oxmx_io::SliceSource;

const VECTORS: &[u8] = include_bytes!("data/gguf_dequant_vectors.bin");

struct Case {
    tt: TensorType,
    nblocks: usize,
    raw: Vec<u8>,
    expected: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < VECTORS.len() {
        let tt = TensorType::from_code(u32_at(VECTORS, at)).unwrap();
        let nblocks = u32_at(VECTORS, at + 4) as usize;
        let (bl, bb) = tt.block();
        let (nraw, nexp) = (nblocks * bb as usize, nblocks * bl as usize * 2);
        at += 8;
        let raw = VECTORS[at..at + nraw].to_vec();
        let expected = VECTORS[at + nraw..at + nraw + nexp].to_vec();
        at += nraw + nexp;
        out.push(Case {
            tt,
            nblocks,
            raw,
            expected,
        });
    }
    out
}

/// The first differing element, for a readable failure.
fn first_diff(got: &[u8], want: &[u8]) -> Option<(usize, f32, f32)> {
    let h = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    got.chunks_exact(2)
        .zip(want.chunks_exact(2))
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, w))| (i, h(g), h(w)))
}

#[test]
fn blocks_match_the_reference_bit_for_bit() {
    let cases = cases();
    let names: Vec<&str> = cases.iter().map(|c| c.tt.name()).collect();
    assert_eq!(
        names,
        [
            "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "Q8_K",
            "MXFP4"
        ]
    );
    for c in &cases {
        let mut out = vec![0u8; c.expected.len()];
        dequantize_f16(c.tt, &c.raw, &mut out).unwrap();
        assert_eq!(first_diff(&out, &c.expected), None, "{}", c.tt.name());
    }
}

/// A GGUF file holding `tensors` (name, type, row-major shape, raw bytes).
fn gguf_file(tensors: &[(&str, TensorType, Vec<u64>, &[u8])]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    let mut off = 0u64;
    for (name, tt, shape, raw) in tensors {
        f.extend_from_slice(&(name.len() as u64).to_le_bytes());
        f.extend_from_slice(name.as_bytes());
        f.extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            f.extend_from_slice(&d.to_le_bytes());
        }
        f.extend_from_slice(&tt.code().to_le_bytes());
        f.extend_from_slice(&off.to_le_bytes());
        off = (off + raw.len() as u64).next_multiple_of(32);
    }
    let start = f.len().next_multiple_of(32);
    f.resize(start, 0);
    let mut off = 0usize;
    for (_, _, _, raw) in tensors {
        f.resize(start + off, 0);
        f.extend_from_slice(raw);
        off = (off + raw.len()).next_multiple_of(32);
    }
    f
}

#[test]
fn whole_files_load_as_float16_of_the_tensor_shape() {
    for c in cases() {
        let (bl, _) = c.tt.block();
        // the blocks as one row, and the first block's worth of rows as a column of rows
        let row = c.nblocks as u64 * bl;
        let f = gguf_file(&[
            ("a.weight", c.tt, vec![row], &c.raw),
            ("b", c.tt, vec![c.nblocks as u64, 1, bl], &c.raw),
        ]);
        let (h, data) = gguf::load_vec(&SliceSource(&f)).unwrap();
        assert_eq!(h.tensors[0].shape, vec![row as usize]);
        assert_eq!(h.tensors[1].shape, vec![c.nblocks, 1, bl as usize]);
        assert_eq!(data[0], c.expected, "{}", c.tt.name());
        assert_eq!(data[1], c.expected, "{}", c.tt.name());
        // every truncation is an error, never a panic
        for cut in 0..f.len() {
            assert!(gguf::load_vec(&SliceSource(&f[..cut])).is_err());
        }
    }
}

#[test]
fn rows_must_be_whole_blocks() {
    let raw = vec![0u8; 144 * 2];
    // 512 elements as two rows of 256 are fine; as four rows of 128 they are not
    let ok = gguf_file(&[("w", TensorType::Q4_K, vec![2, 256], &raw)]);
    assert!(gguf::load_vec(&SliceSource(&ok)).is_ok());
    let bad = gguf_file(&[("w", TensorType::Q4_K, vec![4, 128], &raw)]);
    let e = gguf::load_vec(&SliceSource(&bad)).unwrap_err().to_string();
    assert!(
        e.contains("\"w\"") && e.contains("256-element block"),
        "{e}"
    );
}

#[test]
fn unsupported_types_and_too_many_dimensions_name_the_tensor() {
    let raw = vec![0u8; 64];
    let mut f = gguf_file(&[("blk.3.attn_q.weight", TensorType::Q4_0, vec![32], &raw)]);
    // the type code sits after the name, ndim and one dimension
    let at = 24 + 8 + "blk.3.attn_q.weight".len() + 4 + 8;
    assert_eq!(&f[at..at + 4], &2u32.to_le_bytes());
    for (code, says) in [
        (16u32, "IQ2_XXS"),
        (34, "TQ1_0"),
        (99, "99"),
        (u32::MAX, "4294967295"),
    ] {
        f[at..at + 4].copy_from_slice(&code.to_le_bytes());
        let e = gguf::read_header(&SliceSource(&f)).unwrap_err().to_string();
        assert!(
            e.contains("\"blk.3.attn_q.weight\"") && e.contains(says),
            "{e}"
        );
        assert!(
            e.contains("Q4_K") && e.contains("unsupported GGUF tensor type"),
            "{e}"
        );
    }
    let ok = gguf_file(&[("t", TensorType::F32, vec![1, 1, 2, 2], &raw)]);
    assert!(gguf::read_header(&SliceSource(&ok)).is_ok());
    let five = gguf_file(&[("t5", TensorType::F32, vec![1, 1, 1, 2, 2], &raw)]);
    let e = gguf::read_header(&SliceSource(&five))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"t5\"") && e.contains("5 dimensions"), "{e}");
    // the writer refuses what the reader would
    let e = gguf::header_bytes(&[], &[("x", oxmx_io::DType::F32, &[1, 1, 1, 1, 2])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"x\"") && e.contains("5 dimensions"), "{e}");
}

#[test]
fn random_block_bytes_never_panic() {
    // any bit pattern (NaN and infinite scales included) decodes to the right length
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for c in cases() {
        let mut raw = c.raw.clone();
        for _ in 0..50 {
            for b in raw.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let mut out = vec![0u8; c.expected.len()];
            dequantize_f16(c.tt, &raw, &mut out).unwrap();
        }
    }
}
