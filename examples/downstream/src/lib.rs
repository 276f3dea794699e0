//! A downstream user of progload: an address space in this process's own memory that copies
//! file bytes in the documented way (through the plan's filesystem, with
//! `progload::fs::read_full`).

use std::collections::BTreeMap;

use progload::{AddressSpace, Errno, FileSystem, Prot};

/// Guest memory: one zeroed buffer per mapping, by start address.
pub struct OwnMemory<'a, F: FileSystem> {
    fs: &'a F,
    /// The mappings: start → (permissions, bytes).
    pub regions: BTreeMap<u64, (Prot, Vec<u8>)>,
}

impl<'a, F: FileSystem> OwnMemory<'a, F> {
    /// Empty memory whose file mappings read from `fs`.
    pub fn new(fs: &'a F) -> Self {
        OwnMemory {
            fs,
            regions: BTreeMap::new(),
        }
    }

    /// The bytes at `addr..addr + len`, if one mapping holds them.
    pub fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let (start, (_, bytes)) = self.regions.range(..=addr).next_back()?;
        let from = usize::try_from(addr - start).ok()?;
        bytes.get(from..from.checked_add(len)?)
    }

    fn region(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Errno> {
        let (start, (_, bytes)) = self
            .regions
            .range_mut(..=addr)
            .next_back()
            .ok_or(Errno::EFAULT)?;
        let from = usize::try_from(addr - *start).map_err(|_| Errno::EFAULT)?;
        let to = from.checked_add(len).ok_or(Errno::EFAULT)?;
        bytes.get_mut(from..to).ok_or(Errno::EFAULT)
    }

    fn map(&mut self, addr: u64, len: u64, prot: Prot) -> Result<&mut [u8], Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::ENOMEM)?;
        // A new mapping replaces whatever overlapped it (MAP_FIXED): the plan's VMAs never
        // overlap, so only an identical start can be there.
        self.regions.insert(addr, (prot, vec![0; len]));
        self.region(addr, len)
    }
}

impl<F: FileSystem> AddressSpace for OwnMemory<'_, F> {
    type File = F::Node;
    type Error = Errno;

    fn reset(&mut self) -> Result<(), Errno> {
        self.regions.clear();
        Ok(())
    }

    fn map_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file: &F::Node,
        offset: u64,
    ) -> Result<(), Errno> {
        let fs = self.fs;
        let buf = self.map(addr, len, prot)?;
        // Short reads are retried; past the end of the file the bytes stay zero.
        progload::fs::read_full(fs, file, offset, buf)?;
        Ok(())
    }

    fn map_anon(&mut self, addr: u64, len: u64, prot: Prot, _name: &str) -> Result<(), Errno> {
        self.map(addr, len, prot).map(|_| ())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.region(addr, data.len())?.copy_from_slice(data);
        Ok(())
    }

    fn zero(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::EFAULT)?;
        self.region(addr, len)?.fill(0);
        Ok(())
    }
}
