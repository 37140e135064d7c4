#![no_main]
//! Any bytes as a detached signature file or key text.
use libfuzzer_sys::fuzz_target;
use oxmx_io::sign;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = sign::SignatureFile::parse(data) {
        let _ = sign::verify(&s.key, &s, &s.digest, s.size);
        assert_eq!(sign::SignatureFile::parse(s.to_text().as_bytes()).ok(), Some(s));
    }
    let text = String::from_utf8_lossy(data);
    let _ = sign::parse_public_key(&text);
    let _ = sign::parse_secret_key(&text);
});
