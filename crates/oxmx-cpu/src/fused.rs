//! Fused elementwise nodes (`Primitive::Fused`) on the CPU: a blocked interpreter. The
//! output is cut into blocks of a few thousand elements; each block runs every step of
//! the program with the same kernels the unfused nodes use (`crate::elementwise_src`),
//! into per-thread registers that stay in the L2 cache, and the last step writes its
//! block of the output directly. Results are therefore the unfused results bit for bit,
//! and the memory traffic is one read of each input and one write of the output. A
//! block costs no allocation: operands are borrowed views (`Src`) of the inputs and of
//! the registers.

use oxmx_core::array::reach;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::ops::fused::{FusedArg, FusedProgram};
use oxmx_core::shape::size_of;
use oxmx_core::{Dtype, Error, Result};
use rayon::prelude::*;

use crate::strided::{layout, Layout, Src, PAR_THRESHOLD};

const OP: &str = "fused";
/// Most elements per block (below `PAR_THRESHOLD`, so each step's kernel runs serially).
const MAX_BLOCK: usize = 16 * 1024;
const MIN_BLOCK: usize = 1024;
/// Bytes of registers per thread the block size aims at (inside a 1 MiB L2).
const REGISTER_BYTES: usize = 512 * 1024;

/// How the collapsed output is cut: segments of one long row, or runs of whole rows
/// (inside one run of the last outer dimension, so a block is a 2-d strided view).
enum Cut {
    Segments { per_row: usize, len: usize },
    Rows { per_block: usize, per_run: usize },
}

/// One block: its first row, row count, and the segment of the rows it covers.
struct Block {
    row: usize,
    rows: usize,
    start: usize,
    len: usize,
}

impl Block {
    fn elems(&self) -> usize {
        self.rows * self.len
    }
}

struct Plan {
    lay: Layout,
    cut: Cut,
    blocks: usize,
    last: usize,
}

impl Plan {
    fn new(shape: &[usize], ins: &[Input], block: usize) -> Plan {
        let strides: Vec<&[isize]> = ins.iter().map(|x| x.data.strides.as_slice()).collect();
        let lay = layout(shape, &strides);
        let outer: usize = lay.outer.iter().product();
        let last = lay.outer.last().copied().unwrap_or(1).max(1);
        let inner = lay.inner.max(1);
        let (cut, blocks) = if inner >= block || lay.outer.is_empty() {
            let per_row = inner.div_ceil(block);
            (
                Cut::Segments {
                    per_row,
                    len: block,
                },
                outer * per_row,
            )
        } else {
            let per_block = (block / inner).clamp(1, last);
            let per_run = last.div_ceil(per_block);
            (Cut::Rows { per_block, per_run }, (outer / last) * per_run)
        };
        Plan {
            lay,
            cut,
            blocks,
            last,
        }
    }

    fn block(&self, b: usize) -> Block {
        let inner = self.lay.inner;
        match self.cut {
            Cut::Segments { per_row, len } => {
                let start = (b % per_row) * len;
                Block {
                    row: b / per_row,
                    rows: 1,
                    start,
                    len: len.min(inner - start.min(inner)),
                }
            }
            Cut::Rows { per_block, per_run } => {
                let first = (b % per_run) * per_block;
                Block {
                    row: (b / per_run) * self.last + first,
                    rows: per_block.min(self.last - first.min(self.last)),
                    start: 0,
                    len: inner,
                }
            }
        }
    }

    /// Input `k`'s part of `blk`: its first element and its (row, inner) strides.
    fn place(&self, x: &Input, k: usize, blk: &Block) -> Result<(usize, [isize; 2])> {
        let outer_strides = self
            .lay
            .outer_strides
            .get(k)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let inner_stride = self.lay.inner_strides.get(k).copied().unwrap_or(0);
        let mut off = x.data.offset as isize;
        let mut r = blk.row;
        for (d, &n) in self.lay.outer.iter().enumerate().rev() {
            if n > 0 {
                off += (r % n) as isize * outer_strides.get(d).copied().unwrap_or(0);
                r /= n;
            }
        }
        off += blk.start as isize * inner_stride;
        let row_stride = outer_strides.last().copied().unwrap_or(0);
        let offset = usize::try_from(off).map_err(|_| Error::overflow(OP))?;
        Ok((offset, [row_stride, inner_stride]))
    }
}

/// Elements per block for a program: registers of all steps within `REGISTER_BYTES`.
fn block_size(p: &FusedProgram) -> usize {
    let per_elem: usize = p.steps.iter().map(|s| s.dtype.size()).sum::<usize>().max(1);
    (REGISTER_BYTES / per_elem).clamp(MIN_BLOCK, MAX_BLOCK)
}

pub fn run(
    p: &FusedProgram,
    ins: &[Input],
    out_shape: &[usize],
    out_dtype: Dtype,
    out: &mut Buffer,
) -> Result<()> {
    p.check_inputs(ins, out_shape, out_dtype)?;
    let total = size_of(out_shape);
    if total == 0 {
        return Ok(());
    }
    let block = block_size(p);
    let plan = Plan::new(out_shape, ins, block);
    let size = out_dtype.size();
    // Blocks are consecutive runs of the (row-contiguous) output, in order: whole rows,
    // or a segment of one row. Tasks take consecutive blocks.
    let threads = if total < PAR_THRESHOLD {
        1
    } else {
        rayon::current_num_threads().max(1)
    };
    let n_tasks = if threads == 1 {
        1
    } else {
        plan.blocks.min(threads * 4)
    };
    let per_task = plan.blocks.div_ceil(n_tasks.max(1));
    let mut tasks: Vec<(usize, usize, &mut [u8])> = Vec::with_capacity(n_tasks);
    let mut rest: &mut [u8] = out.bytes_mut();
    let mut b = 0;
    while b < plan.blocks {
        let end = (b + per_task).min(plan.blocks);
        let bytes = (b..end)
            .map(|k| plan.block(k).elems() * size)
            .sum::<usize>();
        if bytes > rest.len() {
            return Err(Error::runtime(OP, "Blocks do not tile the output."));
        }
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(bytes);
        tasks.push((b, end, head));
        rest = tail;
        b = end;
    }
    let task = |(first, end, dst): (usize, usize, &mut [u8])| -> Result<()> {
        // Registers of the steps before the last, as u128 words (16-byte aligned).
        let mut regs: Vec<Vec<u128>> = p
            .steps
            .iter()
            .take(p.steps.len() - 1)
            .map(|s| vec![0u128; (block * s.dtype.size()).div_ceil(16)])
            .collect();
        let mut at = 0usize;
        for b in first..end {
            let blk = plan.block(b);
            let bytes = blk.elems() * size;
            let piece = dst
                .get_mut(at..at + bytes)
                .ok_or_else(|| Error::runtime(OP, "A block lies outside the output."))?;
            run_block(p, &plan, ins, &mut regs, &blk, piece)?;
            at += bytes;
        }
        Ok(())
    };
    if tasks.len() == 1 {
        tasks.into_iter().try_for_each(task)
    } else {
        tasks.into_par_iter().try_for_each(task)
    }
}

/// Runs every step of `p` on one block; the last step writes `dst` (the block's part of
/// the output), the others write their registers.
fn run_block(
    p: &FusedProgram,
    plan: &Plan,
    ins: &[Input],
    regs: &mut [Vec<u128>],
    blk: &Block,
    dst: &mut [u8],
) -> Result<()> {
    let n = blk.elems();
    let dims = [blk.rows, blk.len];
    let two = blk.rows > 1;
    let shape: &[usize] = if two { &dims } else { &dims[1..] };
    let reg_strides_2 = [blk.len as isize, 1];
    let reg_strides: &[isize] = if two {
        &reg_strides_2
    } else {
        &reg_strides_2[1..]
    };
    // Each input's place in this block, checked against its buffer once.
    let mut places: Vec<(usize, [isize; 2])> = Vec::with_capacity(ins.len());
    for (k, x) in ins.iter().enumerate() {
        let (offset, st) = plan.place(x, k, blk)?;
        let strides: &[isize] = if two { &st } else { &st[1..] };
        let (lo, hi) = reach(shape, strides, offset).ok_or_else(|| Error::overflow(OP))?;
        let elems = x.data.buffer.nbytes() / x.dtype.size().max(1);
        if lo < 0 || hi >= elems as i128 {
            return Err(Error::runtime(OP, "A block reaches outside its input."));
        }
        places.push((offset, st));
    }
    let last = p.steps.len() - 1;
    for (k, s) in p.steps.iter().enumerate() {
        let (done, rest) = regs.split_at_mut(k.min(regs.len()));
        let mut args: [Option<Src>; 3] = [None, None, None];
        for (slot, a) in args.iter_mut().zip(&s.args) {
            *slot = Some(match *a {
                FusedArg::Input(i) => {
                    let (x, (offset, st)) = ins
                        .get(i)
                        .zip(places.get(i))
                        .ok_or_else(|| Error::runtime(OP, "A fused step reads a missing input."))?;
                    Src {
                        shape,
                        dtype: x.dtype,
                        bytes: x.data.buffer.bytes(),
                        offset: *offset,
                        strides: if two { st } else { &st[1..] },
                    }
                }
                FusedArg::Step(j) => {
                    let d = p.steps.get(j).map(|t| t.dtype).unwrap_or(s.dtype);
                    let words = done
                        .get(j)
                        .ok_or_else(|| Error::runtime(OP, "A fused step reads a missing value."))?;
                    let bytes: &[u8] = bytemuck::cast_slice(words);
                    Src {
                        shape,
                        dtype: d,
                        bytes: bytes.get(..n * d.size()).unwrap_or(&[]),
                        offset: 0,
                        strides: reg_strides,
                    }
                }
            });
        }
        let args: Vec<Src> = args.into_iter().flatten().collect();
        let out: &mut [u8] = if k == last {
            if !(dst.as_ptr() as usize).is_multiple_of(s.dtype.size().max(1)) {
                return Err(Error::runtime(OP, "A misaligned output block."));
            }
            &mut *dst
        } else {
            let words = rest
                .first_mut()
                .ok_or_else(|| Error::runtime(OP, "A missing register."))?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(words.as_mut_slice());
            bytes
                .get_mut(..n * s.dtype.size())
                .ok_or_else(|| Error::runtime(OP, "A register is too small."))?
        };
        crate::elementwise_src(&s.prim, &args, s.dtype, out)?;
    }
    Ok(())
}
