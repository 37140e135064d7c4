#![no_main]
//! Any bytes as an .npz archive: directory, local headers, inflate, CRC, npy members.
use libfuzzer_sys::fuzz_target;
use oxmx_io::{npz, SliceSource};

fuzz_target!(|data: &[u8]| {
    let _ = npz::load_vec(&SliceSource(data));
});
