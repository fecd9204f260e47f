//! Integrity: which whole-object checksum a store advertises in its reply headers, and the same
//! checksum computed over the bytes as they arrive.
//!
//! CRCs (CRC64NVME, CRC32C, CRC32) are computed per part while the part streams and combined in
//! offset order at the end, so parallel parts cost no extra pass. MD5 and SHA-256 cannot be
//! combined: they are computed over the finished bytes in one ordered pass.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use reqwest::header::HeaderMap;

use crate::error::{Error, ErrorCode, Result};

/// A checksum algorithm objget can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// CRC-64/NVME, S3's default full-object checksum.
    Crc64Nvme,
    /// CRC-32C (Castagnoli): S3, GCS.
    Crc32c,
    /// CRC-32 (ISO-HDLC): S3.
    Crc32,
    /// SHA-256: S3, `Repr-Digest`.
    Sha256,
    /// MD5: the ETag of single-part S3 objects, GCS, Azure Content-MD5.
    Md5,
}

/// Preferred first: combinable and cheap, then the ordered hashes.
const PREFERENCE: [Algorithm; 5] = [
    Algorithm::Crc64Nvme,
    Algorithm::Crc32c,
    Algorithm::Crc32,
    Algorithm::Sha256,
    Algorithm::Md5,
];

impl Algorithm {
    /// The name JavaScript sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc64Nvme => "crc64nvme",
            Self::Crc32c => "crc32c",
            Self::Crc32 => "crc32",
            Self::Sha256 => "sha256",
            Self::Md5 => "md5",
        }
    }

    /// Preference: lower is better.
    pub(crate) fn rank(self) -> usize {
        PREFERENCE
            .iter()
            .position(|a| *a == self)
            .unwrap_or(PREFERENCE.len())
    }

    /// A CRC, computed per part and combined.
    pub(crate) fn is_crc(self) -> bool {
        matches!(self, Self::Crc64Nvme | Self::Crc32c | Self::Crc32)
    }

    fn width(self) -> usize {
        match self {
            Self::Crc64Nvme => 8,
            Self::Crc32c | Self::Crc32 => 4,
            Self::Sha256 => 32,
            Self::Md5 => 16,
        }
    }
}

/// What to do about integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// Verify the best checksum the store offers; none offered is not an error.
    #[default]
    Auto,
    /// Verify, and fail with `ChecksumUnavailable` if the store offers nothing to verify.
    Required,
    /// Verify nothing.
    Off,
}

/// A checksum value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// Raw digest bytes, big-endian for CRCs (as S3 and GCS send them).
    pub value: Vec<u8>,
}

impl Checksum {
    /// Base64, the form S3 and GCS use on the wire.
    pub fn base64(&self) -> String {
        BASE64_STANDARD.encode(&self.value)
    }

    fn from_base64(algorithm: Algorithm, v: &str) -> Option<Self> {
        let value = BASE64_STANDARD.decode(v.trim()).ok()?;
        (value.len() == algorithm.width()).then_some(Self { algorithm, value })
    }

    fn from_crc(algorithm: Algorithm, crc: u64) -> Self {
        let be = crc.to_be_bytes();
        Self {
            algorithm,
            value: be[8 - algorithm.width()..].to_vec(),
        }
    }
}

/// How to read an object's reply headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// S3: a 32-hex-digit ETag of an object not encrypted with KMS or a customer key is its MD5.
    S3,
    /// Anything else: only explicit checksum headers count.
    Other,
}

/// Every whole-object checksum the reply headers advertise, best first. `partial` is true for
/// a 206 reply, whose Content-MD5 (if any) covers the range only.
pub(crate) fn advertised(h: &HeaderMap, partial: bool, dialect: Dialect) -> Vec<Checksum> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let mut found = Vec::new();
    // S3 (and S3-compatible stores) with x-amz-checksum-mode: ENABLED. A value ending in "-N"
    // is a checksum of part checksums, which depends on the upload's part boundaries.
    if !text("x-amz-checksum-type").is_some_and(|t| t.eq_ignore_ascii_case("COMPOSITE")) {
        for (name, alg) in [
            ("x-amz-checksum-crc64nvme", Algorithm::Crc64Nvme),
            ("x-amz-checksum-crc32c", Algorithm::Crc32c),
            ("x-amz-checksum-crc32", Algorithm::Crc32),
            ("x-amz-checksum-sha256", Algorithm::Sha256),
        ] {
            if let Some(c) = text(name)
                .filter(|v| !v.contains('-'))
                .and_then(|v| Checksum::from_base64(alg, v))
            {
                found.push(c);
            }
        }
    }
    // GCS: hashes of the stored bytes, which differ from the served ones when GCS gunzips.
    let transcoded =
        text("x-goog-stored-content-encoding").is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
    if !transcoded {
        for v in h
            .get_all("x-goog-hash")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for item in v.split(',') {
                let (k, v) = item.split_once('=').unwrap_or(("", ""));
                let alg = match k.trim() {
                    "crc32c" => Algorithm::Crc32c,
                    "md5" => Algorithm::Md5,
                    _ => continue,
                };
                found.extend(Checksum::from_base64(alg, v));
            }
        }
    }
    // Azure: the blob's MD5 on every read; Content-MD5 is the whole body's only on a 200.
    found.extend(
        text("x-ms-blob-content-md5").and_then(|v| Checksum::from_base64(Algorithm::Md5, v)),
    );
    if !partial {
        found.extend(text("content-md5").and_then(|v| Checksum::from_base64(Algorithm::Md5, v)));
    }
    // RFC 9530: `Repr-Digest: sha-256=:<base64>:`, of the whole representation even on a 206.
    if let Some(v) = text("repr-digest") {
        for item in v.split(',') {
            let (k, v) = item.split_once('=').unwrap_or(("", ""));
            let alg = match k.trim().to_ascii_lowercase().as_str() {
                "sha-256" => Algorithm::Sha256,
                "md5" => Algorithm::Md5,
                _ => continue,
            };
            found.extend(Checksum::from_base64(alg, v.trim().trim_matches(':')));
        }
    }
    if dialect == Dialect::S3 {
        let kms = text("x-amz-server-side-encryption").is_some_and(|e| e.starts_with("aws:kms"))
            || h.contains_key("x-amz-server-side-encryption-customer-algorithm");
        let etag = text("etag").map(|e| e.trim_matches('"')).unwrap_or("");
        if !kms && etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            let value = (0..16)
                .map(|i| u8::from_str_radix(&etag[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect();
            found.push(Checksum {
                algorithm: Algorithm::Md5,
                value,
            });
        }
    }
    found.sort_by_key(|c| c.algorithm.rank());
    found.dedup_by_key(|c| c.algorithm);
    found
}

/// The checksum to verify, chosen from what the store advertised, under `mode`.
pub(crate) fn choose(
    mode: ChecksumMode,
    offered: &[Checksum],
    url: &str,
) -> Result<Option<Checksum>> {
    match (mode, offered.first()) {
        (ChecksumMode::Off, _) => Ok(None),
        (_, Some(c)) => Ok(Some(c.clone())),
        (ChecksumMode::Auto, None) => Ok(None),
        (ChecksumMode::Required, None) => Err(Error::new(
            ErrorCode::ChecksumUnavailable,
            "checksum 'required', but the store offers no whole-object checksum for this object",
        )
        .with_url(url)),
    }
}

/// A CRC over one part's bytes; or, for an object read in one stream, any hash in order.
pub(crate) enum PartCrc {
    Crc64(crc64fast_nvme::Digest),
    Crc32c(u32),
    Crc32(crc32fast::Hasher),
    Whole(Box<Ordered>),
    None,
}

impl PartCrc {
    pub(crate) fn new(expected: Option<&Checksum>) -> Self {
        expected.map_or(Self::None, |c| Self::of(c.algorithm))
    }

    /// A CRC of `alg` (none for a hash that is not a CRC).
    pub(crate) fn of(alg: Algorithm) -> Self {
        match alg {
            Algorithm::Crc64Nvme => Self::Crc64(crc64fast_nvme::Digest::new()),
            Algorithm::Crc32c => Self::Crc32c(0),
            Algorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            _ => Self::None,
        }
    }

    /// For a single read of the whole object: MD5 and SHA-256 are computed as the bytes stream,
    /// with no second pass.
    pub(crate) fn whole(expected: Option<&Checksum>) -> Self {
        match expected {
            Some(c) if !c.algorithm.is_crc() => Self::Whole(Box::new(Ordered::new(c.algorithm))),
            other => Self::new(other),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Whole(h) => h.update(bytes),
            Self::Crc64(d) => d.write(bytes),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
            Self::Crc32(h) => h.update(bytes),
            Self::None => {}
        }
    }

    /// The part's CRC (0 if none), and the whole object's hash for [`PartCrc::whole`].
    pub(crate) fn finish(self) -> (u64, Option<Checksum>) {
        match self {
            Self::Crc64(d) => (d.sum64(), None),
            Self::Crc32c(c) => (u64::from(c), None),
            Self::Crc32(h) => (u64::from(h.finalize()), None),
            Self::Whole(h) => (0, Some(h.finish())),
            Self::None => (0, None),
        }
    }
}

/// The CRC of a whole object from its parts' CRCs: `(offset, length, crc)` in any order,
/// covering the object exactly.
pub(crate) fn combine(alg: Algorithm, parts: &mut [(u64, u64, u64)]) -> Checksum {
    parts.sort_by_key(|p| p.0);
    let poly = crc_poly(alg);
    let crc = parts.iter().fold(None, |acc: Option<u64>, &(_, len, crc)| {
        Some(match acc {
            None => crc,
            Some(acc) => crc_combine(poly, acc, crc, len),
        })
    });
    let empty = match alg {
        Algorithm::Crc64Nvme => crc64fast_nvme::Digest::new().sum64(),
        _ => 0,
    };
    Checksum::from_crc(alg, crc.unwrap_or(empty))
}

/// A whole-object hash computed in byte order (MD5, SHA-256), or a CRC over contiguous bytes.
pub(crate) enum Ordered {
    Md5(md5::Md5),
    Sha256(ring::digest::Context),
    Crc(Algorithm, PartCrc),
}

impl Ordered {
    pub(crate) fn new(alg: Algorithm) -> Self {
        use md5::Digest as _;
        match alg {
            Algorithm::Md5 => Self::Md5(md5::Md5::new()),
            Algorithm::Sha256 => Self::Sha256(ring::digest::Context::new(&ring::digest::SHA256)),
            crc => Self::Crc(crc, PartCrc::of(crc)),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        use md5::Digest as _;
        match self {
            Self::Md5(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
            Self::Crc(_, c) => c.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Checksum {
        use md5::Digest as _;
        match self {
            Self::Md5(h) => Checksum {
                algorithm: Algorithm::Md5,
                value: h.finalize().to_vec(),
            },
            Self::Sha256(h) => Checksum {
                algorithm: Algorithm::Sha256,
                value: h.finish().as_ref().to_vec(),
            },
            Self::Crc(alg, c) => Checksum::from_crc(alg, c.finish().0),
        }
    }
}

/// Compare, failing with `ChecksumMismatch`.
pub(crate) fn check(expected: &Checksum, actual: &Checksum, url: &str) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::ChecksumMismatch,
        format!(
            "{} mismatch: the store says {}, the bytes received give {}",
            expected.algorithm.as_str(),
            expected.base64(),
            actual.base64()
        ),
    )
    .with_url(url))
}

/// Reflected polynomials of the CRCs, for combining.
fn crc_poly(alg: Algorithm) -> (u64, u32) {
    match alg {
        Algorithm::Crc64Nvme => (0x9a6c_9329_ac4b_c9b5, 64),
        Algorithm::Crc32c => (0x82f6_3b78, 32),
        _ => (0xedb8_8320, 32),
    }
}

/// a·b modulo the polynomial, both reflected (zlib's multmodp, for any width ≤ 64).
fn multmodp((poly, width): (u64, u32), a: u64, mut b: u64) -> u64 {
    let mut m = 1u64 << (width - 1);
    let mut p = 0u64;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                break;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ poly } else { b >> 1 };
    }
    p
}

/// CRC(A‖B) from CRC(A), CRC(B) and |B| (zlib's crc32_combine: multiply CRC(A) by x^(8·|B|)).
fn crc_combine(pw: (u64, u32), crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    let (_, width) = pw;
    // x^(2^k) mod p for k = 0.. by repeated squaring, starting from x^1.
    let mut square = 1u64 << (width - 2);
    let mut xn = 1u64 << (width - 1); // x^0
    let mut n = len_b.saturating_mul(8);
    while n != 0 {
        if n & 1 != 0 {
            xn = multmodp(pw, square, xn);
        }
        square = multmodp(pw, square, square);
        n >>= 1;
    }
    multmodp(pw, xn, crc_a) ^ crc_b
}

/// The CRC64NVME of `bytes`, as a number.
pub(crate) fn crc64(bytes: &[u8]) -> u64 {
    let mut c = PartCrc::new(Some(&Checksum {
        algorithm: Algorithm::Crc64Nvme,
        value: Vec::new(),
    }));
    c.update(bytes);
    c.finish().0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc_of(alg: Algorithm, data: &[u8]) -> u64 {
        let mut c = PartCrc::new(Some(&Checksum {
            algorithm: alg,
            value: vec![],
        }));
        c.update(data);
        c.finish().0
    }

    #[test]
    fn known_check_values() {
        // The catalogue's check value: the CRC of "123456789".
        assert_eq!(crc_of(Algorithm::Crc32, b"123456789"), 0xcbf4_3926);
        assert_eq!(crc_of(Algorithm::Crc32c, b"123456789"), 0xe306_9283);
        assert_eq!(
            crc_of(Algorithm::Crc64Nvme, b"123456789"),
            0xae8b_1486_0a79_9888
        );
    }

    #[test]
    fn combined_parts_equal_the_whole() {
        let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 253) as u8).collect();
        for alg in [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Crc32] {
            for cuts in [
                vec![0usize],
                vec![0, 1],
                vec![0, 4096, 4097, 65536],
                vec![0, 99_999],
            ] {
                let mut parts = Vec::new();
                for (i, &start) in cuts.iter().enumerate() {
                    let end = cuts.get(i + 1).copied().unwrap_or(data.len());
                    parts.push((
                        start as u64,
                        (end - start) as u64,
                        crc_of(alg, &data[start..end]),
                    ));
                }
                parts.reverse();
                assert_eq!(
                    combine(alg, &mut parts),
                    Checksum::from_crc(alg, crc_of(alg, &data)),
                    "{alg:?} {cuts:?}"
                );
            }
            assert_eq!(
                combine(alg, &mut []),
                Checksum::from_crc(alg, crc_of(alg, b""))
            );
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_every_dialect_best_first() {
        let md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="; // MD5 of ""
        let h = headers(&[
            ("x-goog-hash", &format!("crc32c=AAAAAA==,md5={md5}")),
            ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
        ]);
        let got: Vec<_> = advertised(&h, true, Dialect::Other)
            .iter()
            .map(|c| c.algorithm)
            .collect();
        assert_eq!(
            got,
            vec![Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Md5]
        );
        // Composite S3 checksums and transcoded GCS objects are not whole-object checksums.
        let h = headers(&[
            ("x-amz-checksum-crc32c", "AAAAAA==-3"),
            ("x-goog-hash", "crc32c=AAAAAA=="),
            ("x-goog-stored-content-encoding", "gzip"),
        ]);
        assert!(advertised(&h, false, Dialect::Other).is_empty());
        // Content-MD5 on a 206 covers the range; the blob's MD5 covers the blob.
        let h = headers(&[("content-md5", md5)]);
        assert!(advertised(&h, true, Dialect::Other).is_empty());
        assert_eq!(advertised(&h, false, Dialect::Other).len(), 1);
        let h = headers(&[(
            "repr-digest",
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
        )]);
        assert_eq!(
            advertised(&h, true, Dialect::Other)[0].algorithm,
            Algorithm::Sha256
        );
        // S3 ETags: MD5 unless KMS, customer keys, or a multipart "-N" ETag.
        let etag = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        assert_eq!(
            advertised(&headers(&[("etag", etag)]), true, Dialect::S3).len(),
            1
        );
        assert!(advertised(&headers(&[("etag", etag)]), true, Dialect::Other).is_empty());
        let kms = headers(&[("etag", etag), ("x-amz-server-side-encryption", "aws:kms")]);
        assert!(advertised(&kms, true, Dialect::S3).is_empty());
        let multi = headers(&[("etag", "\"d41d8cd98f00b204e9800998ecf8427e-2\"")]);
        assert!(advertised(&multi, true, Dialect::S3).is_empty());
    }

    #[test]
    fn a_crc_is_preferred_over_md5_and_sha256() {
        // CRCs first (cheapest, computed per part), then SHA-256, MD5 only when it is all.
        let order: Vec<_> = PREFERENCE.iter().map(|a| a.rank()).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        for crc in [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Crc32] {
            assert!(crc.is_crc());
            assert!(crc.rank() < Algorithm::Sha256.rank());
            assert!(crc.rank() < Algorithm::Md5.rank());
        }
        // A single-part S3 object as a GET with checksum mode returns it: its MD5 ETag, a
        // full-object CRC32 and a SHA-256. The CRC verifies.
        let etag = "\"d41d8cd98f00b204e9800998ecf8427e\"";
        let sha = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let h = headers(&[
            ("etag", etag),
            ("x-amz-checksum-sha256", sha),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-type", "FULL_OBJECT"),
        ]);
        let offered = advertised(&h, false, Dialect::S3);
        let algs: Vec<_> = offered.iter().map(|c| c.algorithm).collect();
        assert_eq!(
            algs,
            vec![Algorithm::Crc32, Algorithm::Sha256, Algorithm::Md5]
        );
        for mode in [ChecksumMode::Auto, ChecksumMode::Required] {
            let chosen = choose(mode, &offered, "s3://b/k").unwrap().unwrap();
            assert_eq!(chosen.algorithm, Algorithm::Crc32);
        }
        assert_eq!(
            choose(ChecksumMode::Off, &offered, "s3://b/k").unwrap(),
            None
        );
        // What `auto` verifies for a GET reply with these headers beside the MD5 ETag.
        let best = |pairs: &[(&'static str, &str)]| {
            let h = headers(&[&[("etag", etag)], pairs].concat());
            let offered = advertised(&h, false, Dialect::S3);
            choose(ChecksumMode::Auto, &offered, "u")
                .unwrap()
                .unwrap()
                .algorithm
        };
        // Every CRC S3 can store beats MD5, and CRC64NVME beats the 32-bit ones.
        let both = [
            ("x-amz-checksum-crc32c", "AAAAAA=="),
            ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
        ];
        assert_eq!(best(&both), Algorithm::Crc64Nvme);
        assert_eq!(best(&both[..1]), Algorithm::Crc32c);
        // A composite CRC (of part CRCs) cannot verify the whole bytes: the MD5 ETag does.
        let composite = [
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-type", "COMPOSITE"),
        ];
        assert_eq!(best(&composite), Algorithm::Md5);
        // MD5 when it is all there is.
        assert_eq!(best(&[]), Algorithm::Md5);
    }

    #[test]
    fn ordered_hashes_match_references() {
        let mut h = Ordered::new(Algorithm::Md5);
        h.update(b"");
        assert_eq!(h.finish().base64(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        let mut h = Ordered::new(Algorithm::Sha256);
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish().base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
