//! Reading discipline: a plan reads the 256-byte header, the program header table, PT_INTERP
//! and the interpreter's headers — never segment contents. A counting filesystem wrapper
//! proves the bytes read do not depend on segment sizes.

use std::cell::Cell;
use std::path::Path;

use progload::fs::{FileSystem, Metadata};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, Errno, LoadRequest, SeededRng};
use progload_host::{host_profile, HostFs, HostHandle};
use progload_testkit::progs;

struct Counting {
    inner: HostFs,
    bytes: Cell<u64>,
    calls: Cell<u64>,
}

impl FileSystem for Counting {
    type Node = HostHandle;
    fn root(&self) -> HostHandle {
        self.inner.root()
    }
    fn lookup(&self, dir: &HostHandle, name: &[u8]) -> Result<HostHandle, Errno> {
        self.inner.lookup(dir, name)
    }
    fn metadata(&self, node: &HostHandle) -> Result<Metadata, Errno> {
        self.inner.metadata(node)
    }
    fn readlink(&self, node: &HostHandle) -> Result<Vec<u8>, Errno> {
        self.inner.readlink(node)
    }
    fn read_at(&self, node: &HostHandle, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let n = self.inner.read_at(node, offset, buf)?;
        self.bytes.set(self.bytes.get() + n as u64);
        self.calls.set(self.calls.get() + 1);
        Ok(n)
    }
}

fn sized_elf(dir: &Path, name: &str, data: u64) -> Vec<u8> {
    let path = progs::write_sized_elf(dir, name, data).unwrap();
    path.as_os_str().as_encoded_bytes().to_vec()
}

fn bytes_read(path: &[u8]) -> (u64, u64) {
    let fs = Counting {
        inner: HostFs::new("/").unwrap(),
        bytes: Cell::new(0),
        calls: Cell::new(0),
    };
    let mut profile = host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new(path.to_vec(), vec![path.to_vec()], vec![]);
    plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
    (fs.bytes.get(), fs.calls.get())
}

#[test]
fn bytes_read_do_not_depend_on_segment_sizes() {
    let dir = progs::TempDir::new().unwrap();
    let sizes = [0x1000u64, 1 << 20, 1 << 30];
    let reads: Vec<_> = sizes
        .iter()
        .map(|&s| bytes_read(&sized_elf(dir.path(), &format!("e{s}"), s)))
        .collect();
    eprintln!("bytes and read calls per plan for data segments of {sizes:?}: {reads:?}");
    assert!(reads.windows(2).all(|w| w[0] == w[1]), "{reads:?}");
    // The header buffer plus three program headers.
    assert_eq!(reads[0].0, 256 + 3 * 56);
}

#[test]
fn dynamic_program_reads_only_headers() {
    // Header buffer + phdr table + PT_INTERP of the program, ELF header + phdr table of ld.so.
    let (bytes, calls) = bytes_read(b"/usr/bin/ls");
    eprintln!("/usr/bin/ls: {bytes} bytes in {calls} reads");
    assert!(bytes < 4096, "{bytes}");
}
