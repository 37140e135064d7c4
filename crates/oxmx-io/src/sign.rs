//! SHA-256 digests and Ed25519 signatures of weight files.
//!
//! **Keys.** A secret key is a 32-byte Ed25519 seed, a public key the 32-byte Ed25519 point.
//! Files (text, so they survive copy-paste):
//! ```text
//! oxmx-ed25519-secret-key-v1 <64 hex digits>
//! oxmx-ed25519-public-key-v1 <64 hex digits>
//! ```
//! **Detached signature** (`<file>.sig`, at most 4 KiB, ASCII, one field per line, in this
//! order, nothing else):
//! ```text
//! oxmx-signature-v1
//! digest: sha256:<64 hex digits, SHA-256 of the whole file>
//! size: <file length in bytes, decimal>
//! key: <64 hex digits, the signer's public key>
//! signature: <128 hex digits, Ed25519 over the message below>
//! ```
//! The signed message is `b"oxmx-signature-v1\0" || sha256 (32 bytes) || size (u64 LE)`:
//! domain-separated, so a signature cannot be replayed as anything but an oxmx file
//! signature. Verification recomputes digest and size from the bytes being loaded, checks
//! they match the signature file, that the key is the expected one, and the signature with
//! `verify_strict` (no malleable or small-order keys). Any mismatch is an
//! [`Error::Integrity`]; a one-bit change anywhere in the file changes the digest.

use crate::error::{Error, Result};
use crate::limits::SIGNATURE_MAX_BYTES;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Read;

const DOMAIN: &[u8] = b"oxmx-signature-v1\0";
const SIG_HEADER: &str = "oxmx-signature-v1";
const SECRET_HEADER: &str = "oxmx-ed25519-secret-key-v1";
const PUBLIC_HEADER: &str = "oxmx-ed25519-public-key-v1";

fn integrity(msg: impl Into<String>) -> Error {
    Error::Integrity(msg.into())
}

pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// SHA-256 and length of everything `r` yields.
pub fn digest_reader(mut r: impl Read) -> Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n: u64 = 0;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((h.finalize().into(), n))
}

pub fn digest_bytes(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn message(digest: &[u8; 32], size: u64) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(digest);
    m.extend_from_slice(&size.to_le_bytes());
    m
}

/// The public key of a secret seed.
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

/// A parsed signature file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureFile {
    pub digest: [u8; 32],
    pub size: u64,
    pub key: [u8; 32],
    pub signature: [u8; 64],
}

impl SignatureFile {
    pub fn to_text(&self) -> String {
        format!(
            "{SIG_HEADER}\ndigest: sha256:{}\nsize: {}\nkey: {}\nsignature: {}\n",
            hex(&self.digest),
            self.size,
            hex(&self.key),
            hex(&self.signature)
        )
    }

    /// Strict parse (the signature file is untrusted input too).
    pub fn parse(text: &[u8]) -> Result<SignatureFile> {
        if text.len() as u64 > SIGNATURE_MAX_BYTES {
            return Err(integrity("signature file is too large"));
        }
        let s = std::str::from_utf8(text)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or_else(|| integrity("signature file is not ASCII text"))?;
        let mut lines = s.strip_suffix('\n').unwrap_or(s).split('\n');
        let mut field = |name: &str| -> Result<&str> {
            let l = lines
                .next()
                .ok_or_else(|| integrity(format!("signature file has no {name:?} line")))?;
            l.strip_prefix(name)
                .ok_or_else(|| integrity(format!("signature file: expected {name:?}")))
        };
        if !field(SIG_HEADER)?.is_empty() {
            return Err(integrity("not an oxmx-signature-v1 file"));
        }
        let digest = unhex::<32>(field("digest: sha256:")?)
            .ok_or_else(|| integrity("signature file: bad digest"))?;
        let size_s = field("size: ")?;
        if size_s.is_empty() || !size_s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(integrity("signature file: bad size"));
        }
        let size: u64 = size_s
            .parse()
            .map_err(|_| integrity("signature file: bad size"))?;
        let key =
            unhex::<32>(field("key: ")?).ok_or_else(|| integrity("signature file: bad key"))?;
        let signature = unhex::<64>(field("signature: ")?)
            .ok_or_else(|| integrity("signature file: bad signature"))?;
        if lines.next().is_some() {
            return Err(integrity("signature file has extra lines"));
        }
        Ok(SignatureFile {
            digest,
            size,
            key,
            signature,
        })
    }
}

/// Sign a file's digest and size.
pub fn sign(secret: &[u8; 32], digest: &[u8; 32], size: u64) -> SignatureFile {
    let sk = SigningKey::from_bytes(secret);
    let sig = sk.sign(&message(digest, size));
    SignatureFile {
        digest: *digest,
        size,
        key: sk.verifying_key().to_bytes(),
        signature: sig.to_bytes(),
    }
}

/// Check a signature file against the digest and size of the bytes actually read and the
/// public key the caller trusts.
pub fn verify(public: &[u8; 32], sig: &SignatureFile, digest: &[u8; 32], size: u64) -> Result<()> {
    if sig.key != *public {
        return Err(integrity(format!(
            "signed by key {}, not by the expected key {}",
            hex(&sig.key),
            hex(public)
        )));
    }
    if sig.size != size {
        return Err(integrity(format!(
            "size mismatch: the signature is for {} bytes, the file has {size}",
            sig.size
        )));
    }
    if sig.digest != *digest {
        return Err(integrity(format!(
            "SHA-256 mismatch: the signature is for {}, the file is {}",
            hex(&sig.digest),
            hex(digest)
        )));
    }
    let vk = VerifyingKey::from_bytes(public).map_err(|_| integrity("invalid public key"))?;
    let s = Signature::from_bytes(&sig.signature);
    vk.verify_strict(&message(digest, size), &s)
        .map_err(|_| integrity("Ed25519 signature is invalid"))
}

pub fn secret_key_text(secret: &[u8; 32]) -> String {
    format!("{SECRET_HEADER} {}\n", hex(secret))
}

pub fn public_key_text(public: &[u8; 32]) -> String {
    format!("{PUBLIC_HEADER} {}\n", hex(public))
}

fn parse_key(text: &str, header: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    let rest = t.strip_prefix(header)?.strip_prefix(' ')?;
    unhex::<32>(rest.trim())
}

pub fn parse_secret_key(text: &str) -> Result<[u8; 32]> {
    parse_key(text, SECRET_HEADER)
        .ok_or_else(|| Error::Invalid("not an oxmx secret key file".into()))
}

pub fn parse_public_key(text: &str) -> Result<[u8; 32]> {
    parse_key(text, PUBLIC_HEADER)
        .or_else(|| unhex::<32>(text.trim()))
        .ok_or_else(|| Error::Invalid("not an oxmx public key (file text or 64 hex digits)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_one_bit_changes() {
        let seed = [7u8; 32];
        let pk = public_key(&seed);
        let data = b"some weights".to_vec();
        let d = digest_bytes(&data);
        let sig = sign(&seed, &d, data.len() as u64);
        let parsed = SignatureFile::parse(sig.to_text().as_bytes()).unwrap();
        assert_eq!(parsed, sig);
        verify(&pk, &parsed, &d, data.len() as u64).unwrap();
        // one bit in the file
        for i in 0..data.len() * 8 {
            let mut x = data.clone();
            x[i / 8] ^= 1 << (i % 8);
            assert!(verify(&pk, &parsed, &digest_bytes(&x), x.len() as u64).is_err());
        }
        // one bit in the signature
        for i in 0..512 {
            let mut s = parsed.clone();
            s.signature[i / 8] ^= 1 << (i % 8);
            assert!(verify(&pk, &s, &d, data.len() as u64).is_err());
        }
        // another key
        let other = public_key(&[8u8; 32]);
        assert!(verify(&other, &parsed, &d, data.len() as u64).is_err());
        // a forged signature file under the wrong key that claims the right key
        let mut forged = sign(&[9u8; 32], &d, data.len() as u64);
        forged.key = pk;
        assert!(verify(&pk, &forged, &d, data.len() as u64).is_err());
    }

    #[test]
    fn key_and_signature_text() {
        let seed = [1u8; 32];
        assert_eq!(parse_secret_key(&secret_key_text(&seed)).unwrap(), seed);
        let pk = public_key(&seed);
        assert_eq!(parse_public_key(&public_key_text(&pk)).unwrap(), pk);
        assert_eq!(parse_public_key(&hex(&pk)).unwrap(), pk);
        assert!(parse_public_key("oxmx-ed25519-public-key-v1 zz").is_err());
        let t = sign(&seed, &[0; 32], 0).to_text();
        assert!(SignatureFile::parse(format!("{t}x\n").as_bytes()).is_err());
        assert!(SignatureFile::parse(t.replace("size: 0", "size: -1").as_bytes()).is_err());
        assert!(SignatureFile::parse(&t.as_bytes()[..t.len() - 10]).is_err());
    }
}
