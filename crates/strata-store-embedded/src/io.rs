//! The seam between the engine and the disk: every file operation the engine performs goes
//! through [`Fs`] and [`FileIo`]. The real filesystem is the default; a simulated disk
//! (the `simulation` feature) stands in for it to test what crashes and disk faults do.
//!
//! It owns only the mapping of these operations onto the platform; it must not decide
//! anything about the log. One dynamic call per system call is the whole cost of the seam.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// An open file.
pub(crate) trait FileIo: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Reads exactly `len` bytes at `offset` into a new vector.
    fn read_vec_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (fsync).
    fn sync_all(&self) -> io::Result<()>;
}

/// A shared open file.
pub(crate) type FileRef = Arc<dyn FileIo>;

/// The directory operations, and opening files.
pub(crate) trait Fs: Send + Sync {
    /// Opens an existing file for reading.
    fn open(&self, path: &Path) -> io::Result<FileRef>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<FileRef>;
    /// Creates a file (emptying it if it exists) for reading and writing.
    fn create(&self, path: &Path) -> io::Result<FileRef>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Whether `dir` is a directory.
    fn is_dir(&self, dir: &Path) -> bool;
}

/// The operating system's filesystem.
pub(crate) struct RealFs;

impl FileIo for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    // NOTE: the bytes are read into the vector's spare capacity. Zeroing a buffer the read
    // then overwrites took 3 % of a read-all's time, as much as half its checksums.
    fn read_vec_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            match rustix::io::pread(self, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ));
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The allocator may have given more capacity than asked for, and the read used it.
        buf.truncate(len);
        Ok(buf)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        self.metadata().map(|m| m.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path) -> io::Result<FileRef> {
        Ok(Arc::new(File::open(path)?))
    }

    fn open_rw(&self, path: &Path) -> io::Result<FileRef> {
        Ok(Arc::new(
            OpenOptions::new().read(true).write(true).open(path)?,
        ))
    }

    fn create(&self, path: &Path) -> io::Result<FileRef> {
        Ok(Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)?,
        ))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }

    fn is_dir(&self, dir: &Path) -> bool {
        dir.is_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_into_a_new_vector_gives_exactly_the_bytes_asked_for_or_an_eof_error() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("f");
        std::fs::write(&path, (0..=255u8).cycle().take(10_000).collect::<Vec<_>>())
            .expect("writes");
        let file = RealFs.open(&path).expect("opens");
        let read = file.read_vec_at(5_000, 4_000).expect("reads");
        assert_eq!(read.len(), 5_000);
        assert!(
            read.iter()
                .enumerate()
                .all(|(i, &b)| b == ((4_000 + i) % 256) as u8)
        );
        assert!(
            file.read_vec_at(0, 10_000)
                .expect("reads nothing")
                .is_empty()
        );
        let past = file.read_vec_at(2, 9_999).expect_err("one byte short");
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
