//! How elementwise kernels (eager and fused) find their operands' elements when the
//! collapsed layout has more than one dimension (a broadcast bias, a transposed view).
//!
//! The dimension count is baked into the source and the walk is unrolled, so every
//! `m.shape[d]`/`m.strides[k][d]` has a constant index: a loop over a runtime `ndim`
//! indexes the parameter struct dynamically, which makes the compiler copy it to local
//! memory in every thread. Coordinates are divided in 32 bits when the element count
//! allows (64-bit division is a long software routine on the GPU), and each operand's
//! index is accumulated separately from one shared set of coordinates.

/// Source that declares `long long j{k}` for every operand `k` in `ops`: its element
/// index at the flat output position `i` (a `long long` in scope) of a walk over
/// `ndim` collapsed dimensions of the metadata `m` (fields `shape`, `strides`,
/// `offset`). `narrow`: the output has at most `u32::MAX` elements.
pub fn locate_unrolled(ndim: usize, ops: &[usize], narrow: bool) -> String {
    let it = if narrow {
        "unsigned"
    } else {
        "unsigned long long"
    };
    let mut s = String::new();
    for &k in ops {
        s.push_str(&format!("      long long j{k} = m.offset[{k}];\n"));
    }
    if ndim == 0 {
        return s;
    }
    s.push_str(&format!("      {it} ox_r = ({it})i;\n"));
    for d in (0..ndim).rev() {
        if d == 0 {
            // the outermost coordinate is what is left: no division
            s.push_str("      { long long ox_c = (long long)ox_r;");
        } else {
            s.push_str(&format!(
                "      {{ {it} ox_q = ox_r / ({it})m.shape[{d}]; long long ox_c = (long long)(ox_r - ox_q * ({it})m.shape[{d}]); ox_r = ox_q;"
            ));
        }
        for &k in ops {
            s.push_str(&format!(" j{k} += ox_c * m.strides[{k}][{d}];"));
        }
        s.push_str(" }\n");
    }
    s
}

/// Whether a walk of four outputs per thread over rows fits the layout: a collapsed
/// shape of at least two dimensions whose innermost length is a multiple of 4, where
/// each operand (`strides[k]`, `offsets[k]`; `None` for a value passed by value) steps
/// the innermost axis by 1 or 0. An operand of stride 1 is read with one aligned
/// vector load, so its offset and other strides must be multiples of 4; one of
/// stride 0 is read once per four outputs. Returns the bit mask of the stride-1
/// operands.
pub fn rows4_mask(shape: &[usize], operands: &[Option<(&[isize], i64)>]) -> Option<u8> {
    let inner = shape.len().checked_sub(1)?;
    if shape.len() < 2 || shape.get(inner)? % 4 != 0 || operands.len() > 8 {
        return None;
    }
    let mut mask = 0u8;
    for (k, op) in operands.iter().enumerate() {
        let Some((strides, offset)) = op else {
            continue;
        };
        match strides.get(inner)? {
            0 => {}
            1 => {
                let aligned =
                    offset % 4 == 0 && strides.get(..inner)?.iter().all(|s| s.rem_euclid(4) == 0);
                if !aligned {
                    return None;
                }
                mask |= 1 << k;
            }
            _ => return None,
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_divides_every_axis_but_the_outermost() {
        let s = locate_unrolled(3, &[0, 2], true);
        assert!(s.contains("ox_r / (unsigned)m.shape[2]"));
        assert!(s.contains("ox_r / (unsigned)m.shape[1]"));
        assert!(!s.contains("m.shape[0]"));
        assert!(s.contains("j2 += ox_c * m.strides[2][0];"));
        assert!(!s.contains("j1"));
        assert!(locate_unrolled(2, &[0], false).contains("unsigned long long ox_r"));
        assert_eq!(
            locate_unrolled(0, &[1], true),
            "      long long j1 = m.offset[1];\n"
        );
    }

    #[test]
    fn rows4_takes_unit_and_broadcast_rows_only() {
        let x: &[isize] = &[768, 1];
        let bias: &[isize] = &[0, 1];
        let col: &[isize] = &[1, 0];
        assert_eq!(
            rows4_mask(&[8, 768], &[Some((x, 0)), Some((bias, 4)), None]),
            Some(0b011)
        );
        assert_eq!(rows4_mask(&[8, 768], &[Some((col, 0))]), Some(0));
        // misaligned offset, odd row stride, transposed operand, short row, one axis
        assert_eq!(rows4_mask(&[8, 768], &[Some((x, 2))]), None);
        assert_eq!(rows4_mask(&[8, 768], &[Some((&[770, 1][..], 0))]), None);
        assert_eq!(rows4_mask(&[8, 768], &[Some((&[1, 8][..], 0))]), None);
        assert_eq!(rows4_mask(&[8, 6], &[Some((x, 0))]), None);
        assert_eq!(rows4_mask(&[768], &[Some((&[1][..], 0))]), None);
    }
}
