//! oxmx's distributed engines (`oxmx.core.distributed`). MPI is loaded at run time
//! (`mpi.rs`): OpenMPI's and MPICH's binary interfaces are both supported, and a build
//! without either still runs (as a group of one).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod mpi;

pub use mpi::{finalize, init_mpi, mpi_library};
