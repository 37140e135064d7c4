//! Names read from files are data; the one place a name becomes a path is a shard of a
//! sharded checkpoint. This module confines such names to the checkpoint's directory.

use crate::error::{fmt_err, Result};
use std::path::{Component, Path, PathBuf};

/// Resolve the shard file `name` (from an index file) under `dir` (the index's
/// directory). The name must be a relative path of normal components: no absolute paths,
/// no `..` or `.`, no drive prefixes, no empty components, no backslashes, no NUL and no
/// control characters. The check is lexical (by component) and so cannot be fooled by
/// encodings; symbolic links that the user placed inside the checkpoint directory are
/// followed like any file the user points oxmx at (the directory is trusted, its files'
/// contents are not).
pub fn shard_path(dir: &Path, name: &str) -> Result<PathBuf> {
    let bad = |why: &str| fmt_err(format!("shard name {name:?} {why}"));
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > 4096 {
        return Err(bad("is too long"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad("contains control characters"));
    }
    if name.contains('\\') {
        return Err(bad("contains a backslash"));
    }
    if name.starts_with('/') {
        return Err(bad("is an absolute path"));
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad(
            "has an empty, '.' or '..' component (it must stay inside the checkpoint directory)",
        ));
    }
    let rel = Path::new(name);
    for c in rel.components() {
        match c {
            Component::Normal(_) => {}
            _ => return Err(bad("is not a plain relative path")),
        }
    }
    Ok(dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment() {
        let d = Path::new("/ckpt");
        assert_eq!(
            shard_path(d, "model-00001-of-00002.safetensors").unwrap(),
            Path::new("/ckpt/model-00001-of-00002.safetensors")
        );
        assert_eq!(
            shard_path(d, "sub/m.safetensors").unwrap(),
            Path::new("/ckpt/sub/m.safetensors")
        );
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "..",
            "a\\..\\b",
            "a\0b",
            "C:\\x",
            "x\n",
        ] {
            assert!(shard_path(d, bad).is_err(), "{bad:?}");
        }
    }
}
