//! Byte sources that know their real length. Parsers read through these, so every offset
//! they compute can be checked against the actual size of the file.

use crate::error::{fmt_err, Error, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

/// Random-access bytes of a known length.
pub trait Source: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Fill `buf` from `offset`. Fails (never panics) when the range is outside the source.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read `len` bytes at `offset` into a new vector, after checking that the range lies
    /// inside the source (so a lying length cannot cause a large allocation).
    fn read_vec(&self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        check_range(self.len(), offset, len, what)?;
        let n = usize::try_from(len).map_err(|_| fmt_err(format!("{what} is too large")))?;
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| fmt_err(format!("cannot allocate {n} bytes for {what}")))?;
        v.resize(n, 0);
        self.read_at(offset, &mut v)?;
        Ok(v)
    }
}

/// `offset..offset+len` must lie inside `total`.
pub fn check_range(total: u64, offset: u64, len: u64, what: &str) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= total => Ok(()),
        _ => Err(fmt_err(format!(
            "{what} (bytes {offset}..{}) lies outside the file ({total} bytes)",
            offset as u128 + len as u128
        ))),
    }
}

/// Bytes in memory.
pub struct SliceSource<'a>(pub &'a [u8]);

impl Source for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.len(), offset, buf.len() as u64, "read")?;
        let start = usize::try_from(offset).map_err(|_| fmt_err("offset too large"))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or_else(|| fmt_err("read outside the data"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// A file opened for reading; its length is taken once at open time. If the file shrinks
/// afterwards, reads fail with a format error rather than returning short data.
pub struct FileSource {
    file: Mutex<File>,
    len: u64,
}

impl FileSource {
    pub fn open(path: &std::path::Path) -> Result<FileSource> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            )));
        }
        Ok(FileSource {
            len: meta.len(),
            file: Mutex::new(file),
        })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64, "read")?;
        let mut f = match self.file.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                fmt_err("the file became shorter while it was being read")
            } else {
                Error::Io(e)
            }
        })
    }
}

/// A window `start..start+len` of another source (a stored `.npz` member, a GGUF tensor).
pub struct RangeSource<'a> {
    inner: &'a dyn Source,
    start: u64,
    len: u64,
}

impl<'a> RangeSource<'a> {
    pub fn new(inner: &'a dyn Source, start: u64, len: u64) -> Result<RangeSource<'a>> {
        check_range(inner.len(), start, len, "range")?;
        Ok(RangeSource { inner, start, len })
    }
    /// Offset of this window in the underlying source.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl Source for RangeSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(self.len, offset, buf.len() as u64, "read")?;
        let off = self
            .start
            .checked_add(offset)
            .ok_or_else(|| fmt_err("offset overflow"))?;
        self.inner.read_at(off, buf)
    }
}

/// A little-endian cursor over a byte slice (headers already read into memory).
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor { buf, pos: 0, what }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(fmt_err(format!(
                "{} is truncated: needed {n} bytes at offset {}, {} left",
                self.what,
                self.pos,
                self.remaining()
            ))),
        }
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.bytes(n).map(|_| ())
    }
}
