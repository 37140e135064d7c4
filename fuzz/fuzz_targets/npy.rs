#![no_main]
//! Any bytes as an .npy file: parse, read the data, never panic.
use libfuzzer_sys::fuzz_target;
use oxmx_io::{npy, SliceSource};

fuzz_target!(|data: &[u8]| {
    let _ = npy::load_vec(&SliceSource(data));
});
