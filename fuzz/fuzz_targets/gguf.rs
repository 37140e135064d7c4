#![no_main]
//! Any bytes as a GGUF file: header, metadata of every type, tensor infos, quantized
//! block repacking.
use libfuzzer_sys::fuzz_target;
use oxmx_io::{gguf, SliceSource};

fuzz_target!(|data: &[u8]| {
    let _ = gguf::load_vec(&SliceSource(data));
});
