//! The explicit caps every parser enforces, in one place. A file that exceeds one is
//! refused with a `FormatError` naming the cap, before anything is allocated. Besides these
//! caps, every size is checked against the real length of the file.

/// Most dimensions of an array in any format (NumPy's own limit).
pub const MAX_NDIM: usize = 64;

/// Largest `.npy` header (NumPy refuses headers above 10 000 bytes by default; a 64-dim
/// shape of 20-digit numbers needs under 2 KiB).
pub const NPY_MAX_HEADER: usize = 64 * 1024;

/// Largest safetensors JSON header (the `safetensors` package's own cap).
pub const SAFETENSORS_MAX_HEADER: u64 = 100_000_000;

/// Most tensors in one safetensors file, one GGUF file or one `.npz` archive.
pub const MAX_TENSORS: u64 = 1 << 20;

/// Longest tensor name or metadata key, in bytes.
pub const MAX_NAME_LEN: u64 = 64 * 1024;

/// Deepest JSON nesting accepted anywhere (headers and index files are shallow; values
/// oxmx does not need are skipped with an explicit stack bounded by this).
pub const JSON_MAX_DEPTH: usize = 64;

/// Largest `model.safetensors.index.json`.
pub const INDEX_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Most metadata key/value pairs in a GGUF file.
pub const GGUF_MAX_KV: u64 = 1 << 20;

/// Longest GGUF string value (chat templates are tens of KiB).
pub const GGUF_MAX_STRING: u64 = 16 * 1024 * 1024;

/// Most elements in one GGUF metadata array (tokenizer vocabularies are ~10^5–10^6).
pub const GGUF_MAX_ARRAY: u64 = 1 << 24;

/// Most dimensions of a GGUF tensor: the format's (and llama.cpp's) limit. MLX's gguflib
/// allows 8; a file with more than 4 is refused by name on read and never written.
pub const GGUF_MAX_NDIM: usize = 4;

/// Largest GGUF data alignment (`general.alignment`, a power of two).
pub const GGUF_MAX_ALIGNMENT: u64 = 1 << 16;

/// Largest uncompressed/compressed ratio accepted for a deflated `.npz` member. DEFLATE
/// cannot exceed about 1032:1, so anything above is a lie about the size (a zip bomb).
pub const ZIP_MAX_RATIO: u64 = 1100;

/// Most bytes searched backwards for the zip end-of-central-directory record
/// (22-byte record + 65535-byte comment).
pub const ZIP_EOCD_SEARCH: u64 = 22 + 65535;

/// Largest detached signature file.
pub const SIGNATURE_MAX_BYTES: u64 = 4096;

/// Fails when two non-empty byte ranges `[start, end)` of the data section overlap
/// (each tensor must own its bytes), naming both tensors.
pub(crate) fn check_disjoint<'a>(
    ranges: impl Iterator<Item = (u64, u64, &'a str)>,
) -> crate::error::Result<()> {
    let mut spans: Vec<(u64, u64, &str)> = ranges.filter(|r| r.1 > r.0).collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        if let [a, b] = w {
            if b.0 < a.1 {
                return Err(crate::error::fmt_err(format!(
                    "tensors {:?} and {:?} overlap in the data section",
                    a.2, b.2
                )));
            }
        }
    }
    Ok(())
}
