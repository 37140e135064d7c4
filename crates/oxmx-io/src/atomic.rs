//! Atomic saves: write to a temporary file in the target's directory, flush and `fsync`
//! it, then rename it over the target (and `fsync` the directory). A failure at any step
//! removes the temporary file and leaves the old target untouched. A crash (process
//! killed) can leave the temporary file — named `.<target>.oxmx-tmp-<pid>-<n>` — behind
//! but never a partial target; the next save of the same target removes such leftovers
//! of processes that no longer exist.

use crate::error::Result;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn tmp_prefix(target: &Path) -> Option<String> {
    let name = target.file_name()?.to_string_lossy().into_owned();
    Some(format!(".{name}.oxmx-tmp-"))
}

fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // unknown elsewhere: keep the file
    }
}

/// Remove temporary files of dead processes left next to `target` by earlier crashes.
fn clean_stale(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(prefix) {
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !pid_alive(pid) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Reserve `len` bytes of blocks for `f` without changing its size (Linux `fallocate`
/// with `KEEP_SIZE`, as NumPy does before writing an array): the filesystem allocates one
/// extent up front instead of block by block. Best effort: ignored where unsupported.
fn preallocate(f: &File, len: u64) {
    #[cfg(target_os = "linux")]
    if len > 0 {
        let _ = rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, len);
}

/// Write `target` atomically with the bytes `write` produces. `size_hint`: a lower bound
/// of the final size, reserved before writing (never more, so no blocks are left unused).
/// Returns the target path.
pub fn write_atomic(
    target: &Path,
    sync: bool,
    size_hint: u64,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<PathBuf> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = tmp_prefix(target).ok_or_else(|| {
        crate::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a file path", target.display()),
        ))
    })?;
    clean_stale(&dir, &prefix);
    let mut tmp;
    let file = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        tmp = dir.join(format!("{prefix}{}-{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    };
    preallocate(&file, size_hint);
    let result = (|| -> Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        if sync {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, target)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if sync {
        // Make the rename itself durable (best effort: not every platform can open a dir).
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_keeps_old_file_and_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("oxmx-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = dir.join("w.bin");
        write_atomic(&t, true, 3, |w| Ok(w.write_all(b"old")?)).unwrap();
        let r = write_atomic(&t, true, 3, |w| {
            w.write_all(b"partial")?;
            Err(crate::Error::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&t).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // a stale temp file of a dead process is cleaned by the next save
        let stale = dir.join(".w.bin.oxmx-tmp-999999999-0");
        std::fs::write(&stale, b"x").unwrap();
        write_atomic(&t, false, 0, |w| Ok(w.write_all(b"new")?)).unwrap();
        assert!(!stale.exists());
        assert_eq!(std::fs::read(&t).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
