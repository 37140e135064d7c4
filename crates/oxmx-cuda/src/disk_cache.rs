//! The on-disk cache of compiled kernels (PTX), so a new process skips NVRTC for kernels
//! an earlier one compiled. Each file stores the full key (architecture, options and
//! CUDA source) in front of the PTX and is used only when the key matches exactly, so
//! a hash collision or a stale file costs a recompile, never a wrong kernel. Files are
//! written to a temporary name and renamed into place; the directory is private to the
//! user (0700). `OXMX_KERNEL_CACHE=off` disables the cache; `OXMX_KERNEL_CACHE=<dir>`
//! moves it (default `$XDG_CACHE_HOME/oxmx/kernels` or `~/.cache/oxmx/kernels`).

use std::io::Write;
use std::path::PathBuf;

const MAGIC: &[u8] = b"OXMX-PTX 1\n";

fn dir() -> Option<PathBuf> {
    match std::env::var_os("OXMX_KERNEL_CACHE") {
        Some(v) if v == "off" || v == "0" || v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("oxmx").join("kernels"))
        }
    }
}

/// 64-bit FNV-1a from a given basis (two bases give a 128-bit file name).
fn fnv(basis: u64, data: &[u8]) -> u64 {
    data.iter().fold(basis, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn path(key: &str) -> Option<PathBuf> {
    let k = key.as_bytes();
    let name = format!(
        "{:016x}{:016x}.ptx",
        fnv(0xcbf2_9ce4_8422_2325, k),
        fnv(0x6c62_272e_07bb_0142, k)
    );
    Some(dir()?.join(name))
}

/// The cached PTX for `key`, if a file with exactly this key exists.
pub fn load(key: &str) -> Option<String> {
    let bytes = std::fs::read(path(key)?).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    if rest.get(..len)? != key.as_bytes() {
        return None;
    }
    String::from_utf8(rest.get(len..)?.to_vec()).ok()
}

/// Stores `ptx` under `key` (best effort: a cache that cannot be written is skipped).
pub fn store(key: &str, ptx: &str) {
    let (Some(dir), Some(target)) = (dir(), path(key)) else {
        return;
    };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    if b.create(&dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(key.len() as u64).to_le_bytes())?;
        f.write_all(key.as_bytes())?;
        f.write_all(ptx.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_key_mismatch() {
        let d = std::env::temp_dir().join(format!("oxmx-kc-{}", std::process::id()));
        std::env::set_var("OXMX_KERNEL_CACHE", &d);
        store("sm_90\nkernel A", "PTX A");
        assert_eq!(load("sm_90\nkernel A").as_deref(), Some("PTX A"));
        assert_eq!(load("sm_90\nkernel B"), None);
        // A file whose stored key differs (as after a collision) is not used.
        let p = path("sm_90\nkernel A").unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let at = MAGIC.len() + 8;
        bytes[at] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(load("sm_90\nkernel A"), None);
        // Truncated files are ignored.
        std::fs::write(&p, &bytes[..MAGIC.len() + 3]).unwrap();
        assert_eq!(load("sm_90\nkernel A"), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
