//! A simulated disk for deterministic crash and fault testing (the `simulation` feature).
//!
//! It keeps every file in memory the way a disk with a page cache does: what was written
//! is readable at once, but only what an fsync covered survives a crash. At a crash
//! ([`SimDisk::restart`]) each file keeps its durable bytes plus some of the writes made
//! since its last sync: none, a prefix of them with the next one torn at any byte or left
//! as zeros, all of them, or any subset (pages written back out of order). Directory
//! entries (created, renamed) survive only if their directory was synced. A write may fail
//! with `ENOSPC` after writing part of its bytes; a sync may fail with `EIO`, leaving what
//! it should have made durable at the crash's mercy.
//!
//! Every random choice comes from the seed and the sequence of operations, so a workload
//! that issues its operations in a deterministic order replays exactly. It must not be
//! used for anything but tests: it never touches the real disk.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use strata_store::StoreError;

use crate::VerifyReport;
use crate::io::{FileIo, FileRef, Fs};

/// How often the simulated disk fails, in failures per thousand operations of a kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultRates {
    /// Writes (and file creations) failing with `ENOSPC`, after writing part of their
    /// bytes.
    pub enospc_per_mille: u32,
    /// fdatasync, fsync and directory syncs failing with `EIO`.
    pub eio_per_mille: u32,
}

/// What the disk has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Operations that change the disk (writes, truncations, syncs, creations, renames).
    pub mutations: u64,
    /// Injected `ENOSPC` failures.
    pub enospc: u64,
    /// Injected `EIO` failures.
    pub eio: u64,
    /// Crashes.
    pub crashes: u64,
}

/// A simulated disk shared by the stores opened on it. Cloning gives another handle to
/// the same disk.
#[derive(Clone)]
pub struct SimDisk {
    inner: Arc<Mutex<Disk>>,
}

/// A change to a file not yet made durable.
#[derive(Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    pending: Vec<Pending>,
}

struct Disk {
    rng: u64,
    rates: FaultRates,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    stats: DiskStats,
    /// The mutation count at which the disk crashes.
    crash_at: Option<u64>,
    crashed: bool,
    /// Print every mutation to standard error (for replaying a failing seed).
    trace: bool,
}

fn err(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("simulated {what}"))
}

fn crashed() -> io::Error {
    err(
        io::ErrorKind::Other,
        "crash: the disk is gone until restart",
    )
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

impl Disk {
    fn next(&mut self) -> u64 {
        // splitmix64: good enough and fully determined by the seed.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// Counts a mutation; `Err` when the disk is crashed or crashes now.
    fn mutation(&mut self) -> Result<(), ()> {
        if self.crashed {
            return Err(());
        }
        self.stats.mutations += 1;
        if self.crash_at.is_some_and(|at| self.stats.mutations >= at) {
            self.crashed = true;
            self.crash_at = None;
            self.stats.crashes += 1;
            return Err(());
        }
        Ok(())
    }

    /// Whether this mutation fails with an injected fault (one draw per mutation, so the
    /// sequence of draws does not depend on the rates).
    fn fault(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    fn log(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("disk #{}: {what}", self.stats.mutations);
        }
    }

    fn name_of(&self, id: u64) -> String {
        self.names
            .iter()
            .find(|(_, i)| **i == id)
            .map_or_else(|| format!("inode {id}"), |(p, _)| p.display().to_string())
    }

    fn inode(&mut self, id: u64) -> &mut Inode {
        self.inodes.entry(id).or_default()
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        if self.crashed {
            return Err(crashed());
        }
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| err(io::ErrorKind::NotFound, "missing file"))
    }

    fn write(&mut self, id: u64, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut len = buf.len();
        let mut result = Ok(());
        if self.mutation().is_err() {
            // The write was under way when the power went: part of it may be in the cache.
            len = self.below(buf.len() as u64 + 1) as usize;
            result = Err(crashed());
        } else if self.fault(self.rates.enospc_per_mille) {
            len = self.below(buf.len() as u64) as usize;
            self.stats.enospc += 1;
            result = Err(enospc());
        }
        self.log(format_args!(
            "write {} at {offset}: {len} of {} bytes{}",
            self.name_of(id),
            buf.len(),
            if result.is_err() { " (failed)" } else { "" }
        ));
        if len > 0 {
            let inode = self.inode(id);
            apply(
                &mut inode.data,
                &Pending::Write(offset, buf[..len].to_vec()),
            );
            inode
                .pending
                .push(Pending::Write(offset, buf[..len].to_vec()));
        }
        result
    }

    fn set_len(&mut self, id: u64, len: u64) -> io::Result<()> {
        self.mutation().map_err(|()| crashed())?;
        self.log(format_args!("set_len {} to {len}", self.name_of(id)));
        let inode = self.inode(id);
        apply(&mut inode.data, &Pending::SetLen(len));
        inode.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync(&mut self, id: u64) -> io::Result<()> {
        self.mutation().map_err(|()| crashed())?;
        if self.fault(self.rates.eio_per_mille) {
            self.stats.eio += 1;
            self.log(format_args!("sync {}: EIO", self.name_of(id)));
            return Err(eio());
        }
        self.log(format_args!("sync {}", self.name_of(id)));
        let inode = self.inode(id);
        inode.durable = inode.data.clone();
        inode.pending.clear();
        Ok(())
    }

    /// What a file holds after a crash: its durable bytes and some of its pending changes.
    fn survivor(&mut self, durable: &[u8], pending: &[Pending]) -> Vec<u8> {
        let mut data = durable.to_vec();
        match self.below(4) {
            // Nothing or a prefix, the next write torn or zeroed.
            0 => {
                let kept = self.below(pending.len() as u64 + 1) as usize;
                for change in &pending[..kept] {
                    apply(&mut data, change);
                }
                if let Some(Pending::Write(offset, bytes)) = pending.get(kept) {
                    let cut = self.below(bytes.len() as u64 + 1) as usize;
                    if self.below(2) == 0 {
                        apply(&mut data, &Pending::Write(*offset, bytes[..cut].to_vec()));
                    } else {
                        apply(&mut data, &Pending::Write(*offset, vec![0; cut]));
                    }
                }
            }
            // Everything.
            1 => {
                for change in pending {
                    apply(&mut data, change);
                }
            }
            // Any subset, in order.
            2 => {
                for change in pending {
                    if self.below(2) == 0 {
                        apply(&mut data, change);
                    }
                }
            }
            // Nothing.
            _ => {}
        }
        data
    }
}

/// Applies one change to a file's bytes.
fn apply(data: &mut Vec<u8>, change: &Pending) {
    match change {
        Pending::Write(offset, bytes) => {
            let offset = *offset as usize;
            let end = offset + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset..end].copy_from_slice(bytes);
        }
        Pending::SetLen(len) => data.resize(*len as usize, 0),
    }
}

impl SimDisk {
    /// An empty disk whose every random choice derives from `seed`.
    pub fn new(seed: u64, rates: FaultRates) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Disk {
                rng: seed ^ 0x5EED_D15C,
                rates,
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                inodes: HashMap::new(),
                next_inode: 1,
                stats: DiskStats::default(),
                crash_at: None,
                crashed: false,
                trace: false,
            })),
        }
    }

    /// Prints every mutation and crash to standard error from now on.
    pub fn trace(&self) {
        self.inner.lock().trace = true;
    }

    /// Changes the fault rates.
    pub fn set_rates(&self, rates: FaultRates) {
        self.inner.lock().rates = rates;
    }

    /// Makes the disk crash at the `n`-th mutation from now (1: the next one). The
    /// operation that crashes and every later one fail until [`SimDisk::restart`].
    pub fn crash_after(&self, n: u64) {
        let mut disk = self.inner.lock();
        disk.crash_at = Some(disk.stats.mutations + n.max(1));
    }

    /// Crashes the disk now: every operation fails until [`SimDisk::restart`].
    pub fn crash_now(&self) {
        let mut disk = self.inner.lock();
        if !disk.crashed {
            disk.crashed = true;
            disk.crash_at = None;
            disk.stats.crashes += 1;
        }
    }

    /// Whether the disk has crashed and awaits a restart.
    pub fn is_crashed(&self) -> bool {
        self.inner.lock().crashed
    }

    /// What the disk has done so far.
    pub fn stats(&self) -> DiskStats {
        self.inner.lock().stats
    }

    /// Brings a crashed disk back as the power coming back would find it: directory
    /// entries as last synced, and each file's durable bytes plus what the crash kept of
    /// its later writes. Must be called with no store open on the disk.
    pub fn restart(&self) {
        let mut disk = self.inner.lock();
        let mut ids: Vec<u64> = disk.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let (durable, pending) = match disk.inodes.get_mut(&id) {
                Some(inode) => (
                    std::mem::take(&mut inode.durable),
                    std::mem::take(&mut inode.pending),
                ),
                None => continue,
            };
            let data = disk.survivor(&durable, &pending);
            let name = disk.name_of(id);
            disk.log(format_args!(
                "restart: {name} keeps {} bytes (durable {}, {} pending changes)",
                data.len(),
                durable.len(),
                pending.len()
            ));
            let inode = disk.inode(id);
            inode.durable = data.clone();
            inode.data = data;
        }
        disk.names = disk.durable_names.clone();
        disk.crashed = false;
        disk.crash_at = None;
    }

    /// The bytes of a file as reads see them (for tests that damage or inspect files).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.inner.lock();
        let id = *disk.names.get(path)?;
        disk.inodes.get(&id).map(|inode| inode.data.clone())
    }

    pub(crate) fn fs(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }
}

/// An open simulated file.
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: u64,
}

impl FileIo for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let disk = self.disk.lock();
        if disk.crashed {
            return Err(crashed());
        }
        let data = disk.inodes.get(&self.inode).map_or(&[][..], |i| &i.data);
        let start = offset as usize;
        let end = start + buf.len();
        if end > data.len() {
            return Err(err(io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        buf.copy_from_slice(&data[start..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.disk.lock().write(self.inode, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        let disk = self.disk.lock();
        if disk.crashed {
            return Err(crashed());
        }
        Ok(disk
            .inodes
            .get(&self.inode)
            .map_or(0, |i| i.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.lock().set_len(self.inode, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.disk.lock().sync(self.inode)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.disk.lock().sync(self.inode)
    }
}

impl SimDisk {
    fn file(&self, inode: u64) -> FileRef {
        Arc::new(SimFile {
            disk: self.inner.clone(),
            inode,
        })
    }
}

impl Fs for SimDisk {
    fn open(&self, path: &Path) -> io::Result<FileRef> {
        let inode = self.inner.lock().lookup(path)?;
        Ok(self.file(inode))
    }

    fn open_rw(&self, path: &Path) -> io::Result<FileRef> {
        self.open(path)
    }

    fn create(&self, path: &Path) -> io::Result<FileRef> {
        let inode = {
            let mut disk = self.inner.lock();
            disk.mutation().map_err(|()| crashed())?;
            let rate = disk.rates.enospc_per_mille;
            if disk.fault(rate) {
                disk.stats.enospc += 1;
                return Err(enospc());
            }
            disk.log(format_args!("create {}", path.display()));
            match disk.names.get(path).copied() {
                Some(inode) => {
                    let file = disk.inode(inode);
                    file.data.clear();
                    file.pending.push(Pending::SetLen(0));
                    inode
                }
                None => {
                    let inode = disk.next_inode;
                    disk.next_inode += 1;
                    disk.inodes.insert(inode, Inode::default());
                    disk.names.insert(path.to_owned(), inode);
                    inode
                }
            }
        };
        Ok(self.file(inode))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.inner.lock();
        let inode = disk.lookup(path)?;
        Ok(disk
            .inodes
            .get(&inode)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.inner.lock();
        let inode = disk.lookup(from)?;
        disk.mutation().map_err(|()| crashed())?;
        disk.log(format_args!(
            "rename {} to {}",
            from.display(),
            to.display()
        ));
        disk.names.remove(from);
        disk.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.inner.lock();
        disk.mutation().map_err(|()| crashed())?;
        let rate = disk.rates.eio_per_mille;
        if disk.fault(rate) {
            disk.stats.eio += 1;
            return Err(eio());
        }
        disk.log(format_args!("sync directory {}", dir.display()));
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        disk.durable_names.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, u64)> = disk
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        disk.durable_names.extend(entries);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let disk = self.inner.lock();
        if disk.crashed {
            return Err(crashed());
        }
        Ok(disk
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_owned()))
            .collect())
    }

    fn is_dir(&self, _dir: &Path) -> bool {
        true
    }
}

/// [`crate::verify`] of the store in `dir` of a simulated disk.
pub fn verify(disk: &SimDisk, dir: impl AsRef<Path>) -> Result<VerifyReport, StoreError> {
    crate::verify::verify_with(disk, dir.as_ref())
}
