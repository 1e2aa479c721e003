//! Which file a position belongs to.
//!
//! A path names whatever file is there now. After `logrotate` it names
//! another one (rename rotation, or delete and recreate), and after
//! `copytruncate` the same file holds other bytes, possibly already longer
//! than the offset read so far. A checkpoint matched by path and size alone
//! then resumes in the middle of the wrong content — the first lines of the
//! new file are lost without a word. So, like the well-known tailers, a
//! position also records the file's device and inode ([`FileId`]) and a
//! [`Fingerprint`] of its first bytes: the inode says whether the path still
//! names the same file, the fingerprint whether that file still starts with
//! the bytes that were read (an inode is reused after a delete, and a
//! truncated file keeps its inode).

use std::fs::{File, Metadata};
use std::io;

use serde::{Deserialize, Serialize};

/// How many leading bytes a fingerprint covers at most: enough to hold a few
/// log lines (timestamps make them differ between files), little enough to
/// read on every poll.
pub(super) const FINGERPRINT_MAX: usize = 1024;

/// A file's device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file `meta` describes.
    #[cfg(unix)]
    pub(super) fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// Without inodes every file looks the same here, and the fingerprint
    /// alone tells files apart.
    #[cfg(not(unix))]
    pub(super) fn of(_meta: &Metadata) -> Self {
        Self { dev: 0, ino: 0 }
    }
}

/// FNV-1a of a file's first `len` bytes (at most [`FINGERPRINT_MAX`]; fewer
/// while the file is shorter, and it grows with the file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How many leading bytes are covered.
    pub len: u32,
    /// Their hash.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `bytes` (all of them: the caller passes at most
    /// [`FINGERPRINT_MAX`]).
    fn of(bytes: &[u8]) -> Self {
        // FNV-1a: stable across runs and Rust versions (unlike `DefaultHasher`).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        Self {
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            hash,
        }
    }

    /// The fingerprint of what `file` holds now.
    ///
    /// # Errors
    /// Reading the file failed.
    pub(super) fn read(file: &File) -> io::Result<Self> {
        Ok(Self::of(&head(file)?))
    }

    /// `Some(updated)` when `file` still starts with the bytes this
    /// fingerprint was taken of — `updated` then covers as many leading bytes
    /// as the file has now —, `None` when it does not (rewritten or
    /// truncated).
    ///
    /// # Errors
    /// Reading the file failed.
    pub(super) fn check(&self, file: &File) -> io::Result<Option<Self>> {
        let head = head(file)?;
        if self.len == 0 {
            // Nothing was known: anything matches.
            return Ok(Some(Self::of(&head)));
        }
        let len = usize::try_from(self.len).unwrap_or(usize::MAX);
        if head.len() < len || Self::of(&head[..len]) != *self {
            return Ok(None);
        }
        Ok(Some(Self::of(&head)))
    }
}

/// The first [`FINGERPRINT_MAX`] bytes of `file` (fewer if it is shorter),
/// read at offset 0 without moving the file's read position. Small reads of
/// a local file, done in place rather than on a blocking thread, as the
/// metadata calls beside them.
fn head(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FINGERPRINT_MAX];
    let mut filled = 0;
    while filled < buf.len() {
        match read_at(file, &mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_fingerprint_grows_with_its_file_and_catches_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"line one\n").unwrap();
        let f = File::open(&path).unwrap();
        let fp = Fingerprint::read(&f).unwrap();
        assert_eq!(fp.len, 9);
        // Appending keeps it matching, and the updated one covers more.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[b'x'; 2000])
            .unwrap();
        let grown = fp.check(&f).unwrap().expect("same start");
        assert_eq!(grown.len as usize, FINGERPRINT_MAX);
        // Rewritten in place (same inode): another start, even if longer.
        std::fs::write(&path, [b"line 2!!\n".as_slice(), &[b'y'; 3000]].concat()).unwrap();
        assert_eq!(fp.check(&f).unwrap(), None);
        assert_eq!(grown.check(&f).unwrap(), None);
        // Truncated to less than the fingerprint covers.
        std::fs::write(&path, b"line").unwrap();
        assert_eq!(fp.check(&f).unwrap(), None);
        // An empty fingerprint matches anything.
        assert!(Fingerprint::default().check(&f).unwrap().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_renamed_file_keeps_its_id_and_a_new_one_at_the_path_has_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"1\n").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&path, b"2\n").unwrap();
        let renamed = FileId::of(&std::fs::metadata(dir.path().join("a.log.1")).unwrap());
        let new = FileId::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(id, renamed);
        assert_ne!(id, new);
    }
}
