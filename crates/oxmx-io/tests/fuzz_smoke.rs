//! A stable-Rust fuzz smoke run (part of `make test` / CI): mutate valid seed files of
//! every format a few thousand times each — bit flips, byte overwrites with boundary
//! values, truncations, insertions, and 8-byte fields overwritten with huge numbers — and
//! check that every parser returns `Ok` or `Err` without panicking or allocating wildly.
//! The cargo-fuzz targets in `fuzz/` do the same with coverage guidance, for longer.

use oxmx_io::{gguf, npy, npz, safetensors, sign, DType, SliceSource};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const SPECIAL: [u64; 8] = [
    0,
    1,
    0x7F,
    0xFF,
    0xFFFF_FFFF,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = SPECIAL[rng.below(SPECIAL.len())] as u8;
            }
            2 => {
                let n = rng.below(v.len() + 1);
                v.truncate(n);
            }
            3 => {
                let i = rng.below(v.len() + 1);
                let b = rng.next() as u8;
                for _ in 0..1 + rng.below(8) {
                    v.insert(i, b);
                }
            }
            4 if v.len() >= 8 => {
                let i = rng.below(v.len() - 7);
                let x = SPECIAL[rng.below(SPECIAL.len())].wrapping_sub(rng.below(3) as u64);
                v[i..i + 8].copy_from_slice(&x.to_le_bytes());
            }
            _ if v.len() >= 4 => {
                let i = rng.below(v.len() - 3);
                let x = SPECIAL[rng.below(SPECIAL.len())] as u32;
                v[i..i + 4].copy_from_slice(&x.to_le_bytes());
            }
            _ => {}
        }
    }
    v
}

fn run(name: &str, seeds: &[Vec<u8>], iters: usize, f: impl Fn(&[u8])) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    for s in seeds {
        f(s);
    }
    for _ in 0..iters {
        let s = &seeds[rng.below(seeds.len())];
        let m = mutate(&mut rng, s);
        f(&m);
    }
}

fn npy_seed(d: DType, shape: &[usize]) -> Vec<u8> {
    let mut v = npy::header_bytes(d, shape).unwrap();
    let n: usize = shape.iter().product::<usize>() * d.size();
    v.extend((0..n).map(|i| i as u8));
    v
}

#[test]
fn fuzz_npy() {
    let seeds = vec![
        npy_seed(DType::F32, &[2, 3]),
        npy_seed(DType::Bool, &[]),
        npy_seed(DType::C64, &[4]),
        npy_seed(DType::I64, &[0, 5]),
    ];
    run("npy", &seeds, 20000, |b| {
        let _ = npy::load_vec(&SliceSource(b));
    });
}

#[test]
fn fuzz_npz() {
    let mut seeds = Vec::new();
    for compress in [false, true] {
        let mut w = npz::Writer::new(Vec::new(), compress).force_zip64(compress);
        let a = npy_seed(DType::I16, &[3, 2]);
        let b = npy_seed(DType::F64, &[2]);
        w.add("a", &[&a]).unwrap();
        w.add("b", &[&b]).unwrap();
        seeds.push(w.finish().unwrap());
    }
    run("npz", &seeds, 10000, |b| {
        let _ = npz::load_vec(&SliceSource(b));
    });
}

#[test]
fn fuzz_safetensors() {
    let t: Vec<(&str, DType, &[usize])> =
        vec![("w", DType::F32, &[2, 2]), ("b", DType::BF16, &[3])];
    let meta = vec![("format".to_string(), "pt".to_string())];
    let (mut f, _) = safetensors::header_bytes(&t, &meta).unwrap();
    f.extend((0..22).map(|i| i as u8));
    let index = br#"{"metadata":{"total_size":22},"weight_map":{"w":"a.safetensors","b":"b/c.safetensors"}}"#.to_vec();
    run("safetensors", &[f], 20000, |b| {
        let _ = safetensors::load_vec(&SliceSource(b));
    });
    run("index", &[index], 10000, |b| {
        if let Ok(i) = safetensors::parse_index(b) {
            for (_, s) in &i.weight_map {
                let _ = oxmx_io::paths::shard_path(std::path::Path::new("/ckpt"), s);
            }
        }
    });
}

#[test]
fn fuzz_gguf() {
    let meta = vec![
        (
            "general.name".to_string(),
            gguf::WriteValue::Str("x".into()),
        ),
        (
            "toks".to_string(),
            gguf::WriteValue::StrArray(vec!["a".into(), "bc".into()]),
        ),
        (
            "n".to_string(),
            gguf::WriteValue::Scalar(DType::U32, 3u32.to_le_bytes().to_vec()),
        ),
        (
            "v".to_string(),
            gguf::WriteValue::Array(DType::I16, vec![1, 0, 2, 0]),
        ),
    ];
    let t: Vec<(&str, DType, &[usize])> = vec![("w", DType::F16, &[2, 3]), ("b", DType::F32, &[2])];
    let (mut f, offs) = gguf::header_bytes(&meta, &t).unwrap();
    let start = f.len();
    f.resize(start + offs[1] as usize, 7);
    f.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    // a Q4_0 and a Q8_0 tensor, hand-built
    let mut q = gguf::header_bytes(&[], &[]).unwrap().0;
    q.truncate(24);
    q[16..24].copy_from_slice(&0u64.to_le_bytes());
    q[8..16].copy_from_slice(&2u64.to_le_bytes());
    for (name, code, off) in [("q4", 2u32, 0u64), ("q8", 8u32, 32)] {
        q.extend_from_slice(&(name.len() as u64).to_le_bytes());
        q.extend_from_slice(name.as_bytes());
        q.extend_from_slice(&1u32.to_le_bytes());
        q.extend_from_slice(&32u64.to_le_bytes());
        q.extend_from_slice(&code.to_le_bytes());
        q.extend_from_slice(&off.to_le_bytes());
    }
    while !q.len().is_multiple_of(32) {
        q.push(0);
    }
    q.extend((0..18).map(|i| i as u8));
    q.resize(q.len() + 14, 0);
    q.extend((0..34).map(|i| i as u8));
    assert!(gguf::load_vec(&SliceSource(&q)).is_ok());
    assert!(gguf::load_vec(&SliceSource(&f)).is_ok());
    // types decoded to float16: a Q4_K, a Q6_K and an IQ4_XS super-block, an MXFP4 block
    let mut k = gguf::header_bytes(&[], &[]).unwrap().0;
    k.truncate(24);
    k[16..24].copy_from_slice(&0u64.to_le_bytes());
    k[8..16].copy_from_slice(&4u64.to_le_bytes());
    let ks = [
        ("q4k", 12u32, 256u64, 144usize),
        ("q6k", 14, 256, 210),
        ("iq4", 23, 256, 136),
        ("fp4", 39, 32, 17),
    ];
    let mut off = 0u64;
    for (name, code, n, bytes) in ks {
        k.extend_from_slice(&(name.len() as u64).to_le_bytes());
        k.extend_from_slice(name.as_bytes());
        k.extend_from_slice(&1u32.to_le_bytes());
        k.extend_from_slice(&n.to_le_bytes());
        k.extend_from_slice(&code.to_le_bytes());
        k.extend_from_slice(&off.to_le_bytes());
        off = (off + bytes as u64).next_multiple_of(32);
    }
    let start = k.len().next_multiple_of(32);
    let mut off = 0usize;
    for (_, _, _, bytes) in ks {
        k.resize(start + off, 0);
        k.extend((0..bytes).map(|i| (i * 37 % 251) as u8));
        off = (off + bytes).next_multiple_of(32);
    }
    assert!(gguf::load_vec(&SliceSource(&k)).is_ok());
    run("gguf", &[f, q, k], 20000, |b| {
        let _ = gguf::load_vec(&SliceSource(b));
    });
}

#[test]
fn fuzz_signature_files() {
    let s = sign::sign(&[3; 32], &[4; 32], 10).to_text().into_bytes();
    run("sig", &[s], 10000, |b| {
        let _ = sign::SignatureFile::parse(b);
        let _ = sign::parse_public_key(&String::from_utf8_lossy(b));
    });
}

#[test]
fn function_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/function");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    seeds.sort();
    assert!(
        seeds.len() >= 2,
        "function seeds missing in {}",
        dir.display()
    );
    for s in &seeds {
        assert!(oxmx_io::function::from_bytes(s).is_ok());
    }
    // mutations mostly fail the checksum: also re-sign each one so that the structural
    // checks behind it are exercised
    run("function", &seeds, 10000, |b| {
        let _ = oxmx_io::function::from_bytes(b);
        if b.len() >= 4 {
            let mut v = b[..b.len() - 4].to_vec();
            let c = oxmx_io::crc32::crc32(&v);
            v.extend_from_slice(&c.to_le_bytes());
            let _ = oxmx_io::function::from_bytes(&v);
        }
    });
}
