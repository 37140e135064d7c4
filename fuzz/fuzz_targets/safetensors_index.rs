#![no_main]
//! Any bytes as a model.safetensors.index.json, and every shard name it yields through
//! the containment check.
use libfuzzer_sys::fuzz_target;
use oxmx_io::{paths, safetensors};

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = safetensors::parse_index(data) {
        let dir = std::path::Path::new("/ckpt");
        for (_, shard) in &idx.weight_map {
            if let Ok(p) = paths::shard_path(dir, shard) {
                assert!(p.starts_with(dir));
                assert!(!p.components().any(|c| c == std::path::Component::ParentDir));
            }
        }
    }
});
