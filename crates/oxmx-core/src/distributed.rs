//! Collective communication as lazy graph nodes (`oxmx.core.distributed`).
//!
//! A [`Communicator`] is a group of processes reachable through an engine: MPI (loaded
//! at run time by the `oxmx-dist` crate) or NCCL (loaded by the CUDA backend). The ops
//! here build `Primitive::Collective` nodes. The CPU backend runs them through the
//! group's host-memory methods; the CUDA backend runs NCCL groups on device memory and
//! hands other groups to the CPU backend. A group of one without an engine
//! ([`Singleton`]) needs nothing: every op is then the identity, as in MLX.
//!
//! Every process must evaluate the same collectives in the same order. Evaluation walks
//! the graph in a deterministic order, so the same program on every rank agrees; compile
//! never merges or drops collective nodes it would need (`Primitive::is_effectful`).

use crate::array::Array;
use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use std::fmt;
use std::sync::Arc;

/// The reductions of `all_sum`, `all_max`, `all_min` and `sum_scatter`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReduceKind {
    Sum,
    Max,
    Min,
}

/// A group of processes and the engine that moves bytes between them. Buffers are
/// row-contiguous arrays of `dtype`; an implementation checks nothing the op layer has
/// not already checked except what the engine itself reports.
pub trait Communicator: Send + Sync + fmt::Debug {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// The engine's name ("mpi", "nccl").
    fn backend(&self) -> &str;
    /// For backends that run a group's collectives their own way (the CUDA backend
    /// looks for its NCCL communicator here).
    fn as_any(&self) -> &dyn std::any::Any;
    /// A group of one with no engine behind it: collectives are the identity and build
    /// no nodes. (A one-process MPI or NCCL group still runs through its engine.)
    fn is_singleton(&self) -> bool {
        false
    }
    /// `recv` = the elementwise reduction of every rank's `send` (same length).
    fn all_reduce(&self, op: ReduceKind, dtype: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()>;
    /// `recv` = every rank's `send`, in rank order (`recv` is `size` times longer).
    fn all_gather(&self, send: &[u8], recv: &mut [u8]) -> Result<()>;
    /// `recv` = this rank's block of the elementwise sum of every rank's `send`
    /// (`send` is `size` blocks of `recv`'s length).
    fn reduce_scatter(&self, dtype: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()>;
    fn send(&self, buf: &[u8], dst: usize) -> Result<()>;
    fn recv(&self, buf: &mut [u8], src: usize) -> Result<()>;
    /// The subgroup of the ranks that pass the same `color`, ordered by `key` (negative:
    /// by rank in this group).
    fn split(&self, color: i32, key: i32) -> Result<Arc<dyn Communicator>>;
}

/// A shared group, compared by identity (a primitive parameter).
#[derive(Clone)]
pub struct Group(pub Arc<dyn Communicator>);

impl PartialEq for Group {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Group({} rank {} of {})",
            self.0.backend(),
            self.0.rank(),
            self.0.size()
        )
    }
}

/// What a `Collective` node does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CollectiveOp {
    AllReduce(ReduceKind),
    AllGather,
    SumScatter,
    /// Send the input to `dst`; the output is the input (MLX's `send`).
    Send {
        dst: usize,
    },
    /// Receive the output from `src` (no inputs).
    Recv {
        src: usize,
    },
}

impl CollectiveOp {
    pub fn name(self) -> &'static str {
        match self {
            CollectiveOp::AllReduce(ReduceKind::Sum) => "all_sum",
            CollectiveOp::AllReduce(ReduceKind::Max) => "all_max",
            CollectiveOp::AllReduce(ReduceKind::Min) => "all_min",
            CollectiveOp::AllGather => "all_gather",
            CollectiveOp::SumScatter => "sum_scatter",
            CollectiveOp::Send { .. } => "send",
            CollectiveOp::Recv { .. } => "recv",
        }
    }
}

/// A group of one process: every collective is the identity, send and recv refuse.
#[derive(Debug)]
pub struct Singleton;

impl Communicator for Singleton {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn backend(&self) -> &str {
        "singleton"
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn is_singleton(&self) -> bool {
        true
    }
    fn all_reduce(&self, _: ReduceKind, _: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()> {
        copy_same("all_reduce", send, recv)
    }
    fn all_gather(&self, send: &[u8], recv: &mut [u8]) -> Result<()> {
        copy_same("all_gather", send, recv)
    }
    fn reduce_scatter(&self, _: Dtype, send: &[u8], recv: &mut [u8]) -> Result<()> {
        copy_same("sum_scatter", send, recv)
    }
    fn send(&self, _: &[u8], _: usize) -> Result<()> {
        Err(Error::value("send", "Cannot send to a singleton group."))
    }
    fn recv(&self, _: &mut [u8], _: usize) -> Result<()> {
        Err(Error::value("recv", "Cannot recv from a singleton group."))
    }
    fn split(&self, _: i32, _: i32) -> Result<Arc<dyn Communicator>> {
        Err(Error::runtime(
            "split",
            "Cannot split the distributed group further.",
        ))
    }
}

/// The tag every rank compares at `init`: ranks must run the same oxmx (same wire
/// format and semantics).
pub fn version_tag() -> u64 {
    // FNV-1a of the version string
    concat!("oxmx ", env!("CARGO_PKG_VERSION"))
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// `init`'s check of the (largest, smallest) version tag over the group.
pub fn check_versions(hi_lo: (u64, u64)) -> Result<()> {
    let t = version_tag();
    if hi_lo != (t, t) {
        return Err(Error::runtime(
            "init",
            "The ranks run different oxmx versions; every rank must run the same build.",
        ));
    }
    Ok(())
}

/// A collective's check of the (largest, smallest) byte length over the group: every
/// rank fails alike unless all passed `len`.
pub fn check_lengths(op: &str, (hi, lo): (u64, u64), len: usize) -> Result<()> {
    if hi != lo {
        return Err(Error::value(
            op,
            format!(
                "The ranks passed arrays of different sizes ({lo} to {hi} bytes; this rank {len})."
            ),
        ));
    }
    Ok(())
}

/// `recv`'s error for a message whose announced length is not the array's.
pub fn recv_length_error(src: usize, announced: u64, len: usize) -> Error {
    Error::value(
        "recv",
        format!("Rank {src} sent {announced} bytes, but the receiving array holds {len}."),
    )
}

/// The byte count of the pieces `send` and `recv` split long messages into (a mismatched
/// message is drained through a buffer of this size).
pub const MESSAGE_CHUNK: usize = 64 << 20;

fn copy_same(op: &str, send: &[u8], recv: &mut [u8]) -> Result<()> {
    if send.len() != recv.len() {
        return Err(Error::runtime(op, "buffer lengths differ"));
    }
    recv.copy_from_slice(send);
    Ok(())
}

fn node(
    group: &Group,
    op: CollectiveOp,
    shape: Vec<usize>,
    dtype: Dtype,
    inputs: Vec<Array>,
) -> Array {
    Array::pending(
        shape,
        dtype,
        Primitive::Collective {
            op,
            group: group.clone(),
        },
        inputs,
    )
}

/// `all_sum`, `all_max`, `all_min`: the elementwise reduction of `x` over the group.
pub fn all_reduce(x: &Array, kind: ReduceKind, group: &Group) -> Result<Array> {
    let op = CollectiveOp::AllReduce(kind);
    if kind != ReduceKind::Sum && x.dtype().is_complex() {
        return Err(Error::value(
            op.name(),
            "complex64 arrays have no order to reduce by.",
        ));
    }
    if group.0.is_singleton() {
        return Ok(x.clone());
    }
    Ok(node(
        group,
        op,
        x.shape().to_vec(),
        x.dtype(),
        vec![x.clone()],
    ))
}

/// `x` of every rank concatenated along the first axis (a 0-d `x` gives a vector).
pub fn all_gather(x: &Array, group: &Group) -> Result<Array> {
    let n = group.0.size();
    if group.0.is_singleton() {
        return Ok(x.clone());
    }
    let mut shape = x.shape().to_vec();
    match shape.first_mut() {
        Some(d) => {
            *d = d
                .checked_mul(n)
                .ok_or_else(|| Error::value("all_gather", "The gathered array's size overflows."))?
        }
        // a group of one gathers a 0-d array into itself, as MLX's identity does
        None if n > 1 => shape.push(n),
        None => {}
    }
    crate::shape::checked_size("all_gather", &shape)?;
    Ok(node(
        group,
        CollectiveOp::AllGather,
        shape,
        x.dtype(),
        vec![x.clone()],
    ))
}

/// This rank's block (along the first axis) of the sum of `x` over the group.
pub fn sum_scatter(x: &Array, group: &Group) -> Result<Array> {
    let op = "sum_scatter";
    let n = group.0.size();
    let Some(&first) = x.shape().first() else {
        return Err(Error::value(
            op,
            "The input must have at least one dimension.",
        ));
    };
    if first % n != 0 {
        return Err(Error::value(
            op,
            format!("The first axis ({first}) must be divisible by the group size ({n})."),
        ));
    }
    if group.0.is_singleton() {
        return Ok(x.clone());
    }
    let mut shape = x.shape().to_vec();
    shape[0] = first / n;
    Ok(node(
        group,
        CollectiveOp::SumScatter,
        shape,
        x.dtype(),
        vec![x.clone()],
    ))
}

fn check_peer(op: &str, peer: i64, group: &Group) -> Result<usize> {
    let n = group.0.size();
    if n == 1 {
        let what = if op == "send" { "send to" } else { "recv from" };
        return Err(Error::value(
            op,
            format!("Cannot {what} a singleton group."),
        ));
    }
    usize::try_from(peer)
        .ok()
        .filter(|&p| p < n)
        .ok_or_else(|| Error::value(op, format!("Invalid rank {peer} for a group of size {n}.")))
}

/// An array equal to `x` whose evaluation sends `x` to rank `dst`.
pub fn send(x: &Array, dst: i64, group: &Group) -> Result<Array> {
    let dst = check_peer("send", dst, group)?;
    Ok(node(
        group,
        CollectiveOp::Send { dst },
        x.shape().to_vec(),
        x.dtype(),
        vec![x.clone()],
    ))
}

/// An array of `shape` and `dtype` received from rank `src` when evaluated.
pub fn recv(shape: Vec<usize>, dtype: Dtype, src: i64, group: &Group) -> Result<Array> {
    let src = check_peer("recv", src, group)?;
    crate::shape::checked_size("recv", &shape)?;
    Ok(node(
        group,
        CollectiveOp::Recv { src },
        shape,
        dtype,
        vec![],
    ))
}
