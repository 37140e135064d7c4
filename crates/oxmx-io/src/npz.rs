//! `.npz` archives: a zip file of `.npy` members, stored or DEFLATE-compressed.
//!
//! A minimal zip reader and writer written for this purpose over `miniz_oxide` (raw
//! DEFLATE), instead of a general zip crate: the reader supports exactly what `.npz` needs
//! (stored and deflated members, zip64 sizes and offsets, data descriptors through the
//! central directory) and validates everything before allocating:
//! - the end-of-central-directory record is searched within the last 64 KiB + 22 bytes,
//!   and its comment must end exactly at the end of the file;
//! - the central directory lies inside the file and its entry count fits in it;
//! - each member's local header is read at its offset and must agree with the central
//!   directory (name, method); member data must lie before the central directory and no
//!   two members may overlap (the overlapping-file zip bomb);
//! - encrypted members, other compression methods, duplicate names and members that are
//!   not `.npy` are refused;
//! - a deflated member's uncompressed size is capped at `ZIP_MAX_RATIO` times its
//!   compressed size, decompression stops at the declared size, and the CRC-32 is checked.
//!
//! Member names are dictionary keys only: they are never used as paths.

use crate::crc32::{crc32, Crc32};
use crate::error::{fmt_err, invalid, Result};
use crate::limits::{MAX_NAME_LEN, MAX_TENSORS, ZIP_EOCD_SEARCH, ZIP_MAX_RATIO};
use crate::source::{Cursor, Source};
use std::io::Write;

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_EOCD: u32 = 0x0605_4b50;
const SIG_EOCD64: u32 = 0x0606_4b50;
const SIG_LOC64: u32 = 0x0706_4b50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Stored,
    Deflated,
}

/// One member of an archive, validated.
#[derive(Clone, Debug)]
pub struct Member {
    /// The name with the `.npy` suffix removed (the dictionary key).
    pub key: String,
    pub method: Method,
    pub crc32: u32,
    /// Start of the member's (possibly compressed) data in the file.
    pub data_offset: u64,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
}

/// The member list of an archive.
#[derive(Debug)]
pub struct Archive {
    pub members: Vec<Member>,
}

fn find_eocd(src: &dyn Source) -> Result<(u64, Vec<u8>)> {
    let len = src.len();
    if len < 22 {
        return Err(fmt_err(format!(
            "not a zip archive: {len} bytes is shorter than the end-of-directory record"
        )));
    }
    let tail_len = len.min(ZIP_EOCD_SEARCH);
    let tail_start = len - tail_len;
    let tail = src.read_vec(tail_start, tail_len, "zip end of central directory")?;
    let mut i = tail.len().saturating_sub(22);
    loop {
        if tail.get(i..i + 4) == Some(&SIG_EOCD.to_le_bytes()[..]) {
            let clen = tail
                .get(i + 20..i + 22)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                .unwrap_or(usize::MAX);
            if i + 22 + clen == tail.len() {
                let rec = tail.get(i..i + 22).unwrap_or(&[]).to_vec();
                return Ok((tail_start + i as u64, rec));
            }
        }
        if i == 0 {
            break;
        }
        i -= 1;
    }
    Err(fmt_err(
        "not a zip archive: no end-of-central-directory record",
    ))
}

/// Fill 0xFFFFFFFF fields from a zip64 extra field (id 1).
fn zip64_extra(extra: &[u8], usize_: &mut u64, csize: &mut u64, offset: &mut u64) -> Result<()> {
    let mut c = Cursor::new(extra, "zip extra field");
    while c.remaining() >= 4 {
        let id = c.u16()?;
        let n = c.u16()? as usize;
        let body = c.bytes(n)?;
        if id == 1 {
            let mut b = Cursor::new(body, "zip64 extra field");
            if *usize_ == 0xFFFF_FFFF {
                *usize_ = b.u64()?;
            }
            if *csize == 0xFFFF_FFFF {
                *csize = b.u64()?;
            }
            if *offset == 0xFFFF_FFFF {
                *offset = b.u64()?;
            }
        }
    }
    Ok(())
}

impl Archive {
    /// Read and validate the central directory and every local header.
    pub fn open(src: &dyn Source) -> Result<Archive> {
        let len = src.len();
        let (eocd_pos, rec) = find_eocd(src)?;
        let mut c = Cursor::new(&rec, "zip end of central directory");
        c.skip(4)?;
        let disk = c.u16()?;
        let cd_disk = c.u16()?;
        let n_disk = c.u16()?;
        let mut n_total = u64::from(c.u16()?);
        let mut cd_size = u64::from(c.u32()?);
        let mut cd_offset = u64::from(c.u32()?);
        if disk != 0 || cd_disk != 0 || u64::from(n_disk) != n_total && n_total != 0xFFFF {
            return Err(fmt_err("multi-disk zip archives are not supported"));
        }
        let mut cd_end_limit = eocd_pos;
        if n_total == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
            // zip64: a locator just before the EOCD points at the zip64 EOCD record.
            let loc_pos = eocd_pos
                .checked_sub(20)
                .ok_or_else(|| fmt_err("zip64 locator missing"))?;
            let loc = src.read_vec(loc_pos, 20, "zip64 locator")?;
            let mut l = Cursor::new(&loc, "zip64 locator");
            if l.u32()? != SIG_LOC64 {
                return Err(fmt_err("zip64 locator missing"));
            }
            l.skip(4)?;
            let rec64_pos = l.u64()?;
            if rec64_pos >= loc_pos {
                return Err(fmt_err("zip64 end record lies after its locator"));
            }
            let r = src.read_vec(rec64_pos, 56, "zip64 end of central directory")?;
            let mut r = Cursor::new(&r, "zip64 end of central directory");
            if r.u32()? != SIG_EOCD64 {
                return Err(fmt_err("bad zip64 end-of-central-directory signature"));
            }
            r.skip(8 + 2 + 2 + 4 + 4 + 8)?;
            n_total = r.u64()?;
            cd_size = r.u64()?;
            cd_offset = r.u64()?;
            cd_end_limit = rec64_pos;
        }
        let cd_end = cd_offset
            .checked_add(cd_size)
            .filter(|&e| e <= cd_end_limit)
            .ok_or_else(|| {
                fmt_err(format!(
                    "zip central directory (offset {cd_offset}, {cd_size} bytes) lies outside the file ({len} bytes)"
                ))
            })?;
        let _ = cd_end;
        if n_total > MAX_TENSORS || n_total.saturating_mul(46) > cd_size {
            return Err(fmt_err(format!(
                "zip archive claims {n_total} members, more than its {cd_size}-byte directory can hold (cap {MAX_TENSORS})"
            )));
        }
        let cd = src.read_vec(cd_offset, cd_size, "zip central directory")?;
        let mut c = Cursor::new(&cd, "zip central directory");
        let mut members: Vec<Member> = Vec::with_capacity(n_total as usize);
        let mut names = std::collections::HashSet::new();
        for _ in 0..n_total {
            if c.u32()? != SIG_CENTRAL {
                return Err(fmt_err("bad zip central directory entry signature"));
            }
            c.skip(4)?; // versions
            let flags = c.u16()?;
            let method = c.u16()?;
            c.skip(4)?; // time, date
            let crc = c.u32()?;
            let mut csize = u64::from(c.u32()?);
            let mut usize_ = u64::from(c.u32()?);
            let nlen = c.u16()? as usize;
            let elen = c.u16()? as usize;
            let clen = c.u16()? as usize;
            c.skip(8)?; // disk, internal attrs, external attrs
            let mut offset = u64::from(c.u32()?);
            let name = c.bytes(nlen)?;
            let extra = c.bytes(elen)?;
            c.skip(clen)?;
            zip64_extra(extra, &mut usize_, &mut csize, &mut offset)?;
            let name = std::str::from_utf8(name)
                .map_err(|_| fmt_err("zip member name is not valid UTF-8"))?;
            if flags & 1 != 0 {
                return Err(fmt_err(format!("zip member {name:?} is encrypted")));
            }
            let method = match method {
                0 => Method::Stored,
                8 => Method::Deflated,
                m => {
                    return Err(fmt_err(format!(
                        "zip member {name:?} uses compression method {m} (only stored and deflate are supported)"
                    )))
                }
            };
            let key = name
                .strip_suffix(".npy")
                .ok_or_else(|| fmt_err(format!("zip member {name:?} is not an .npy file")))?;
            if key.len() as u64 > MAX_NAME_LEN {
                return Err(fmt_err("zip member name too long"));
            }
            if !names.insert(key.to_string()) {
                return Err(fmt_err(format!("duplicate zip member {name:?}")));
            }
            if method == Method::Stored && csize != usize_ {
                return Err(fmt_err(format!(
                    "stored zip member {name:?} has different compressed ({csize}) and uncompressed ({usize_}) sizes"
                )));
            }
            if method == Method::Deflated
                && usize_ > csize.saturating_mul(ZIP_MAX_RATIO).saturating_add(1024)
            {
                return Err(fmt_err(format!(
                    "zip member {name:?} claims {usize_} bytes from {csize} compressed bytes (ratio cap {ZIP_MAX_RATIO}:1)"
                )));
            }
            // Local header: must agree with the directory.
            let lh = src.read_vec(offset, 30, "zip local header")?;
            let mut l = Cursor::new(&lh, "zip local header");
            if l.u32()? != SIG_LOCAL {
                return Err(fmt_err(format!(
                    "zip member {name:?}: bad local header signature"
                )));
            }
            l.skip(4)?;
            let lmethod = l.u16()?;
            l.skip(16)?;
            let lnlen = u64::from(l.u16()?);
            let lelen = u64::from(l.u16()?);
            let lname = src.read_vec(offset + 30, lnlen, "zip local header name")?;
            if lname != name.as_bytes() || (lmethod == 0) != (method == Method::Stored) {
                return Err(fmt_err(format!(
                    "zip member {name:?}: local header disagrees with the central directory"
                )));
            }
            let data_offset = offset + 30 + lnlen + lelen;
            match data_offset.checked_add(csize) {
                Some(end) if end <= cd_offset => {}
                _ => {
                    return Err(fmt_err(format!(
                        "zip member {name:?}: data (offset {data_offset}, {csize} bytes) runs past the central directory"
                    )))
                }
            }
            members.push(Member {
                key: key.to_string(),
                method,
                crc32: crc,
                data_offset,
                compressed_size: csize,
                uncompressed_size: usize_,
            });
        }
        // No two members' data may overlap.
        let mut spans: Vec<(u64, u64)> = members
            .iter()
            .map(|m| (m.data_offset, m.data_offset + m.compressed_size))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(fmt_err("zip members overlap"));
            }
        }
        Ok(Archive { members })
    }
}

/// Decompress a deflated member into a vector of exactly its declared size, checking
/// the CRC.
pub fn inflate_member(src: &dyn Source, m: &Member) -> Result<Vec<u8>> {
    let comp = src.read_vec(m.data_offset, m.compressed_size, "zip member data")?;
    let cap = usize::try_from(m.uncompressed_size).map_err(|_| fmt_err("zip member too large"))?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(&comp, cap).map_err(|e| {
        fmt_err(format!(
            "zip member {:?}: DEFLATE data is corrupt or larger than declared ({:?})",
            m.key, e.status
        ))
    })?;
    if out.len() as u64 != m.uncompressed_size {
        return Err(fmt_err(format!(
            "zip member {:?}: decompressed to {} bytes, declared {}",
            m.key,
            out.len(),
            m.uncompressed_size
        )));
    }
    if crc32(&out) != m.crc32 {
        return Err(fmt_err(format!("zip member {:?}: CRC-32 mismatch", m.key)));
    }
    Ok(out)
}

/// Check a stored member's CRC over bytes already read (header, then data).
pub fn check_stored_crc(m: &Member, parts: &[&[u8]]) -> Result<()> {
    let mut c = Crc32::new();
    for p in parts {
        c.update(p);
    }
    if c.finish() != m.crc32 {
        return Err(fmt_err(format!("zip member {:?}: CRC-32 mismatch", m.key)));
    }
    Ok(())
}

/// Writes a zip archive of `.npy` members to `w`, streaming stored members and
/// compressing deflated ones in memory first (so every size is known up front and no
/// data descriptors are needed). Zip64 records are added only when a size or offset needs
/// them (or when `force_zip64` is set, for tests).
pub struct Writer<W: Write> {
    w: W,
    pos: u64,
    central: Vec<u8>,
    count: u64,
    names: std::collections::HashSet<String>,
    compress: bool,
    force_zip64: bool,
}

/// 1980-01-01 in MS-DOS date format (year-1980 << 9 | month << 5 | day), zip's epoch.
const DOS_DATE: u16 = (1 << 5) | 1;

impl<W: Write> Writer<W> {
    pub fn new(w: W, compress: bool) -> Writer<W> {
        Writer {
            w,
            pos: 0,
            central: Vec::new(),
            count: 0,
            names: Default::default(),
            compress,
            force_zip64: false,
        }
    }

    pub fn force_zip64(mut self, v: bool) -> Self {
        self.force_zip64 = v;
        self
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// Add member `key + ".npy"` whose content is the concatenation of `parts`.
    pub fn add(&mut self, key: &str, parts: &[&[u8]]) -> Result<()> {
        let name = format!("{key}.npy");
        if name.len() > usize::from(u16::MAX) {
            return Err(invalid("array name too long for a zip archive"));
        }
        if !self.names.insert(name.clone()) {
            return Err(invalid(format!("duplicate array name {key:?}")));
        }
        let mut crc = Crc32::new();
        let mut usize_: u64 = 0;
        for p in parts {
            crc.update(p);
            usize_ += p.len() as u64;
        }
        let crc = crc.finish();
        let compressed: Option<Vec<u8>> = if self.compress {
            let mut all = Vec::with_capacity(usize::try_from(usize_).unwrap_or(0));
            for p in parts {
                all.extend_from_slice(p);
            }
            Some(miniz_oxide::deflate::compress_to_vec(&all, 6))
        } else {
            None
        };
        let csize = compressed.as_ref().map_or(usize_, |c| c.len() as u64);
        let method: u16 = if self.compress { 8 } else { 0 };
        let offset = self.pos;
        let big = self.force_zip64 || usize_ >= 0xFFFF_FFFF || csize >= 0xFFFF_FFFF;
        let big_off = self.force_zip64 || offset >= 0xFFFF_FFFF;
        let version: u16 = if big || big_off { 45 } else { 20 };
        let flags: u16 = 1 << 11; // UTF-8 names
                                  // Local header (zip64 extra carries both sizes when needed).
        let mut lh = Vec::with_capacity(30 + name.len() + 20);
        lh.extend_from_slice(&SIG_LOCAL.to_le_bytes());
        lh.extend_from_slice(&version.to_le_bytes());
        lh.extend_from_slice(&flags.to_le_bytes());
        lh.extend_from_slice(&method.to_le_bytes());
        lh.extend_from_slice(&0u16.to_le_bytes());
        lh.extend_from_slice(&DOS_DATE.to_le_bytes());
        lh.extend_from_slice(&crc.to_le_bytes());
        let (c32, u32_) = if big {
            (0xFFFF_FFFFu32, 0xFFFF_FFFFu32)
        } else {
            (csize as u32, usize_ as u32)
        };
        lh.extend_from_slice(&c32.to_le_bytes());
        lh.extend_from_slice(&u32_.to_le_bytes());
        lh.extend_from_slice(&(name.len() as u16).to_le_bytes());
        lh.extend_from_slice(&(if big { 20u16 } else { 0 }).to_le_bytes());
        lh.extend_from_slice(name.as_bytes());
        if big {
            lh.extend_from_slice(&1u16.to_le_bytes());
            lh.extend_from_slice(&16u16.to_le_bytes());
            lh.extend_from_slice(&usize_.to_le_bytes());
            lh.extend_from_slice(&csize.to_le_bytes());
        }
        self.put(&lh)?;
        match &compressed {
            Some(c) => self.put(c)?,
            None => {
                for p in parts {
                    self.put(p)?;
                }
            }
        }
        // Central directory entry.
        let mut extra = Vec::new();
        if big || big_off {
            let mut body = Vec::new();
            if big {
                body.extend_from_slice(&usize_.to_le_bytes());
                body.extend_from_slice(&csize.to_le_bytes());
            }
            if big_off {
                body.extend_from_slice(&offset.to_le_bytes());
            }
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&(body.len() as u16).to_le_bytes());
            extra.extend_from_slice(&body);
        }
        let cd = &mut self.central;
        cd.extend_from_slice(&SIG_CENTRAL.to_le_bytes());
        cd.extend_from_slice(&version.to_le_bytes());
        cd.extend_from_slice(&version.to_le_bytes());
        cd.extend_from_slice(&flags.to_le_bytes());
        cd.extend_from_slice(&method.to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&DOS_DATE.to_le_bytes());
        cd.extend_from_slice(&crc.to_le_bytes());
        cd.extend_from_slice(&c32.to_le_bytes());
        cd.extend_from_slice(&u32_.to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        cd.extend_from_slice(&0u16.to_le_bytes()); // comment
        cd.extend_from_slice(&0u16.to_le_bytes()); // disk
        cd.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
        cd.extend_from_slice(&(0o100644u32 << 16).to_le_bytes()); // regular file, rw-r--r--
        let off32 = if big_off {
            0xFFFF_FFFFu32
        } else {
            offset as u32
        };
        cd.extend_from_slice(&off32.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
        cd.extend_from_slice(&extra);
        self.count += 1;
        Ok(())
    }

    /// Write the central directory and end records; returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        let cd_offset = self.pos;
        let central = std::mem::take(&mut self.central);
        self.put(&central)?;
        let cd_size = central.len() as u64;
        let need64 = self.force_zip64
            || self.count >= 0xFFFF
            || cd_offset >= 0xFFFF_FFFF
            || cd_size >= 0xFFFF_FFFF;
        if need64 {
            let rec64 = self.pos;
            let mut r = Vec::with_capacity(76);
            r.extend_from_slice(&SIG_EOCD64.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&self.count.to_le_bytes());
            r.extend_from_slice(&self.count.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_offset.to_le_bytes());
            r.extend_from_slice(&SIG_LOC64.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&rec64.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.put(&r)?;
        }
        let mut e = Vec::with_capacity(22);
        e.extend_from_slice(&SIG_EOCD.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        let n16 = if need64 { 0xFFFF } else { self.count as u16 };
        e.extend_from_slice(&n16.to_le_bytes());
        e.extend_from_slice(&n16.to_le_bytes());
        let s32 = if need64 { 0xFFFF_FFFF } else { cd_size as u32 };
        let o32 = if need64 {
            0xFFFF_FFFF
        } else {
            cd_offset as u32
        };
        e.extend_from_slice(&s32.to_le_bytes());
        e.extend_from_slice(&o32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.put(&e)?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Convenience for tests and fuzzing: every member as (key, npy header, native data).
pub fn load_vec(src: &dyn Source) -> Result<Vec<(String, crate::npy::Header, Vec<u8>)>> {
    let a = Archive::open(src)?;
    let mut out = Vec::new();
    for m in &a.members {
        let (h, d) = match m.method {
            Method::Deflated => {
                let raw = inflate_member(src, m)?;
                crate::npy::load_vec(&crate::source::SliceSource(&raw))?
            }
            Method::Stored => {
                let r = crate::source::RangeSource::new(src, m.data_offset, m.compressed_size)?;
                let (h, d) = crate::npy::load_vec(&r)?;
                let head = r.read_vec(0, h.data_offset, "npy header")?;
                let raw_data = r.read_vec(h.data_offset, h.nbytes, "npy data")?;
                check_stored_crc(m, &[&head, &raw_data])?;
                (h, d)
            }
        };
        out.push((m.key.clone(), h, d));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::npy::header_bytes;
    use crate::source::SliceSource;

    fn archive(compress: bool, zip64: bool) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), compress).force_zip64(zip64);
        let h = header_bytes(DType::I32, &[3]).unwrap();
        let d: Vec<u8> = [1i32, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        w.add("a", &[&h, &d]).unwrap();
        let h2 = header_bytes(DType::U8, &[0]).unwrap();
        w.add("b/c", &[&h2]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trip() {
        for compress in [false, true] {
            for z64 in [false, true] {
                let z = archive(compress, z64);
                let m = load_vec(&SliceSource(&z)).unwrap();
                assert_eq!(m.len(), 2);
                assert_eq!(m[0].0, "a");
                assert_eq!(
                    m[0].2,
                    [1i32, 2, 3]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<_>>()
                );
                assert_eq!(m[1].0, "b/c");
                assert!(m[1].2.is_empty());
            }
        }
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let z = archive(true, false);
        for cut in [0, 10, z.len() / 2, z.len() - 1] {
            assert!(load_vec(&SliceSource(&z[..cut])).is_err());
        }
        let mut dup = Writer::new(Vec::new(), false);
        dup.add("x", &[b"1"]).unwrap();
        assert!(dup.add("x", &[b"2"]).is_err());
        // Flip each byte of a compressed archive: never a panic.
        for i in 0..z.len() {
            let mut y = z.clone();
            y[i] ^= 0x5A;
            let _ = load_vec(&SliceSource(&y));
        }
    }
}
