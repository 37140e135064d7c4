#![no_main]
//! Any bytes as a .safetensors file: header length, JSON header, offsets, data.
use libfuzzer_sys::fuzz_target;
use oxmx_io::{safetensors, SliceSource};

fuzz_target!(|data: &[u8]| {
    let _ = safetensors::load_vec(&SliceSource(data));
});
