//! Checking what was read against the store's checksum: CRCs combined from the parts, other
//! hashes by one ordered pass over the bytes.

use crate::checksum::{check, combine, Checksum, Ordered};
use crate::error::Result;

use super::sink::{DonePart, TempFile};

/// Verify bytes in memory: CRCs from their parts, other hashes by one pass.
pub(crate) fn verify_memory(
    expected: Option<&Checksum>,
    done: &mut [DonePart],
    bytes: &[u8],
    url: &str,
) -> Result<Option<Checksum>> {
    Ok(match expected {
        None => None,
        Some(e) if e.algorithm.is_crc() => Some(verify(e, combine(e.algorithm, done), url)?),
        Some(e) => {
            let mut h = Ordered::new(e.algorithm);
            h.update(bytes);
            Some(verify(e, h.finish(), url)?)
        }
    })
}

fn verify(expected: &Checksum, actual: Checksum, url: &str) -> Result<Checksum> {
    check(expected, &actual, url)?;
    Ok(actual)
}

/// Verify a finished temporary file: CRCs from its parts, other hashes from the single read
/// that computed them in stream (`hashed`) or by one ordered pass over the file.
pub(crate) async fn verify_file(
    temp: &TempFile,
    expected: Option<&Checksum>,
    done: &mut [DonePart],
    hashed: Option<Checksum>,
    url: &str,
) -> Result<Option<Checksum>> {
    Ok(match (expected, hashed) {
        (None, _) => None,
        (Some(e), _) if e.algorithm.is_crc() => Some(verify(e, combine(e.algorithm, done), url)?),
        (Some(e), Some(h)) => Some(verify(e, h, url)?),
        (Some(e), None) => Some(verify(e, temp.hash(Ordered::new(e.algorithm)).await?, url)?),
    })
}
