//! oxmx-io: the model-file formats of oxmx — `.npy`, `.npz`, `.safetensors` (with sharded
//! `*.index.json` checkpoints) and GGUF, exported functions (`function`) — plus atomic
//! saves and Ed25519 signatures.
//!
//! Every parser here reads **untrusted bytes**. The rules they follow:
//! - Input comes through a [`Source`] that knows its real length; every count, length,
//!   offset, shape and dtype read from a file is checked (with checked arithmetic) against
//!   that length and against the caps in [`limits`] **before** anything is allocated.
//! - No `unwrap`/`expect`/unchecked indexing on file-derived data, no recursion whose depth
//!   the file controls, no `unsafe` (`#![forbid(unsafe_code)]`).
//! - A malformed file is an [`Error::Format`] naming what is wrong; the Python bindings
//!   turn it into `FormatError` with the file name.
//! - Names read from files are data. The only place a name becomes a path is a sharded
//!   checkpoint's shard list, which [`paths::shard_path`] confines to the index's directory.
//!
//! The crate has no dependency on the rest of oxmx (its own [`DType`]), so its tests and
//! fuzz targets build in seconds.
#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("oxmx-io assumes a little-endian host (all supported formats are little-endian).");

pub mod atomic;
pub mod crc32;
pub mod dtype;
pub mod error;
pub mod function;
pub mod gguf;
pub mod gguf_dequant;
pub mod json;
pub mod limits;
pub mod npy;
pub mod npz;
pub mod paths;
pub mod safetensors;
pub mod sign;
pub mod source;

pub use dtype::DType;
pub use error::{Error, Result};
pub use source::{FileSource, RangeSource, SliceSource, Source};
