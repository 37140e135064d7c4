#![no_main]
//! Any bytes as an exported-function file: parse, never panic, never allocate more than
//! the input justifies. (The graph a parsed file describes is checked again by the op
//! layer when it is imported: tests/test_export.py covers that part.)
use libfuzzer_sys::fuzz_target;
use oxmx_io::{function, SliceSource};

fuzz_target!(|data: &[u8]| {
    let _ = function::read(&SliceSource(data));
});
