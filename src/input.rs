//! [`read_limited`]: a file a person names — visit notes, an eval suite, a
//! registry artefact — is read with its size limit, never whole first.
//!
//! `Read::take(limit + 1)` stops at the limit whatever the path is: a
//! regular file, `/dev/zero`, a FIFO, a file still growing. Checking the size
//! from `metadata` first is not enough (a character device reports 0 bytes
//! and then never ends). The errors are `std::io::Error`s, so every module's
//! own `Io { path, source }` variant carries them with the file's name.

use std::io::{ErrorKind, Read};
use std::path::Path;

/// Reads at most `limit` bytes of `path`; a longer file is an
/// [`ErrorKind::FileTooLarge`] error that names the limit.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(ErrorKind::FileTooLarge, format!("over the {limit}-byte limit")));
    }
    Ok(bytes)
}

/// [`read_limited`], as UTF-8 text ([`ErrorKind::InvalidData`] otherwise).
pub fn read_text_limited(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, limit)?).map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_row11_dev_zero_fails_fast_at_the_limit() {
        let t = std::time::Instant::now();
        let e = read_limited(Path::new("/dev/zero"), 64 * 1024).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("65536-byte limit"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_file_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "abcd").unwrap();
        assert_eq!(read_text_limited(&f, 4).unwrap(), "abcd");
        assert_eq!(read_limited(&f, 3).unwrap_err().kind(), ErrorKind::FileTooLarge);
        std::fs::write(&f, [0xff]).unwrap();
        assert_eq!(read_text_limited(&f, 4).unwrap_err().kind(), ErrorKind::InvalidData);
    }
}
