//! `RandomBits`: Threefry-2x32 counter hashing with MLX's layout (see
//! `oxmx_core::random`). Each key fills its own contiguous run of output bytes; big
//! runs are split into chunks of counter pairs across threads.

use crate::strided::{offsets_of, PAR_THRESHOLD};
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::random::{counter, put_word, threefry2x32};
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

/// Counter pairs per parallel task.
const PAIRS_PER_TASK: usize = 1 << 13;

/// Hash pairs `start..` for one key: `lo` receives their first words, `hi` their
/// second words (either may end early: the output is truncated there).
fn fill_pairs(
    key: [u32; 2],
    half: usize,
    nwords: usize,
    start: usize,
    lo: &mut [u8],
    hi: &mut [u8],
) {
    let mut hi_words = hi.chunks_mut(4);
    for (j, w) in lo.chunks_mut(4).enumerate() {
        let [a, b] = threefry2x32(key, counter(start + j, half, nwords));
        put_word(w, a);
        if let Some(w) = hi_words.next() {
            put_word(w, b);
        }
    }
}

/// Fill one key's output bytes.
fn fill_key(key: [u32; 2], out: &mut [u8], parallel: bool) {
    let nbytes = out.len();
    if nbytes == 0 {
        return;
    }
    let nwords = nbytes.div_ceil(4);
    let half = nwords.div_ceil(2);
    let (lo, hi) = out.split_at_mut((4 * half).min(nbytes));
    if !parallel || half <= PAIRS_PER_TASK {
        fill_pairs(key, half, nwords, 0, lo, hi);
        return;
    }
    let step = 4 * PAIRS_PER_TASK;
    let n_tasks = lo.len().div_ceil(step);
    let mut hi_chunks: Vec<&mut [u8]> = hi.chunks_mut(step).collect();
    hi_chunks.resize_with(n_tasks, Default::default);
    lo.par_chunks_mut(step)
        .zip(hi_chunks.into_par_iter())
        .enumerate()
        .for_each(|(t, (l, h))| fill_pairs(key, half, nwords, t * PAIRS_PER_TASK, l, h));
}

/// Output `out` (shape `keys.shape[:-1] + shape`, dtype of `width` bytes) from keys of
/// shape `(..., 2)` uint32.
pub fn random_bits(keys: &Input, out: &mut Buffer) -> Result<()> {
    let op = "random_bits";
    if keys.dtype != Dtype::Uint32 || keys.shape.last() != Some(&2) {
        return Err(Error::value(
            op,
            "Keys must be uint32 with a last dimension of 2.",
        ));
    }
    let data = keys.data.buffer.typed::<u32>();
    let words = offsets_of(&keys.shape, &keys.data.strides, keys.data.offset)
        .into_iter()
        .map(|o| {
            data.get(o)
                .copied()
                .ok_or_else(|| Error::runtime(op, "Key offset out of range."))
        })
        .collect::<Result<Vec<u32>>>()?;
    let keys: Vec<[u32; 2]> = words.chunks_exact(2).map(|k| [k[0], k[1]]).collect();
    let bytes = out.bytes_mut();
    if keys.is_empty() || bytes.is_empty() {
        return Ok(());
    }
    if !bytes.len().is_multiple_of(keys.len()) {
        return Err(Error::runtime(
            op,
            "Output size is not a multiple of the number of keys.",
        ));
    }
    let per_key = bytes.len() / keys.len();
    let big = bytes.len() / 4 >= PAR_THRESHOLD;
    if keys.len() == 1 {
        fill_key(keys[0], bytes, big);
    } else if big {
        let inner = per_key / 4 >= PAR_THRESHOLD;
        bytes
            .par_chunks_mut(per_key)
            .zip(keys.par_iter())
            .for_each(|(o, &k)| fill_key(k, o, inner));
    } else {
        bytes
            .chunks_mut(per_key)
            .zip(&keys)
            .for_each(|(o, &k)| fill_key(k, o, false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxmx_core::random::fill_bits;

    #[test]
    fn parallel_fill_matches_sequential() {
        for n in [
            1usize,
            3,
            4,
            5,
            8,
            9,
            4 * PAIRS_PER_TASK * 2 + 7,
            4 * PAIRS_PER_TASK * 6 + 1,
            8 * PAIRS_PER_TASK * 3,
        ] {
            let key = [0x1234_5678, 0x9abc_def0];
            let mut a = vec![0u8; n];
            let mut b = vec![0u8; n];
            fill_bits(key, &mut a);
            fill_key(key, &mut b, true);
            assert_eq!(a, b, "n = {n}");
        }
    }
}
