//! oxmx-core: the engine behind oxmx — arrays, dtypes, the lazy graph, op definitions,
//! evaluation, memory accounting and random numbers. Backends implement
//! [`backend::Backend`] and are registered by the `oxmx` facade crate.
#![forbid(unsafe_code)]

pub mod array;
pub mod backend;
pub mod compile;
pub mod device;
pub mod distributed;
pub mod dtype;
pub mod error;
pub mod eval;
pub mod eval_fusion;
pub mod memory;
pub mod ops;
pub mod primitive;
pub mod random;
pub mod rules;
pub mod scalar;
pub mod shape;
pub mod transforms;
pub mod view;

pub use array::{Array, ArrayData};
pub use device::{Device, DeviceType, Stream};
pub use dtype::Dtype;
pub use error::{Error, Result};
pub use scalar::Scalar;
