//! Ops: validate arguments, infer shape and dtype, build graph nodes. Each op's
//! checks live here once; backends only ever see well-formed primitives.

pub mod conv;
pub mod creation;
pub mod decomp;
pub mod elementwise;
pub mod fast;
pub mod fft;
pub mod fused;
pub mod indexing;
pub mod linalg;
pub mod quantized;
pub mod quantized_gather;
pub mod reduce;
pub mod shape_ops;
pub mod sort_scan;
pub mod user_kernel;

pub use creation::*;
pub use elementwise::*;
pub use indexing::*;
pub use linalg::*;
pub use reduce::*;
pub use shape_ops::*;
pub use sort_scan::*;
