//! An emulator-style backend: a filesystem of its own and a flat guest memory.
//!
//! An emulator keeps the guest's files in its own store and the guest's memory in host
//! buffers. This example implements both of progload's traits for such a setup:
//!
//! - `GuestFs`: a map from absolute path to file bytes, with directories implied by the paths
//!   (progload walks the paths; this only answers one entry at a time);
//! - `GuestMemory`: pages in a `BTreeMap`, filled from the files when mapped (an emulator
//!   without a host mmap copies them in), with each page's permissions.
//!
//! It plans a small static program (built in memory), applies the plan, and prints the initial
//! registers, the first instruction bytes at the entry and the argv the guest will see.
//!
//! Run: `cargo run -p progload --example emulator`

use std::collections::BTreeMap;
use std::sync::Arc;

use progload::fs::{FileKind, FileSystem, Metadata};
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{apply, plan, AddressSpace, Errno, LoadRequest, Profile, Prot, SeededRng};

/// Files by absolute path; every prefix of a path is a directory.
struct GuestFs {
    files: BTreeMap<Vec<u8>, Arc<[u8]>>,
}

/// A node is the absolute path of the object.
impl FileSystem for GuestFs {
    type Node = Vec<u8>;

    fn root(&self) -> Vec<u8> {
        Vec::new()
    }

    fn lookup(&self, dir: &Vec<u8>, name: &[u8]) -> Result<Vec<u8>, Errno> {
        let mut path = dir.clone();
        path.push(b'/');
        path.extend_from_slice(name);
        let is_dir = self
            .files
            .keys()
            .any(|k| k.starts_with(&path) && k.get(path.len()) == Some(&b'/'));
        if self.files.contains_key(&path) || is_dir {
            Ok(path)
        } else {
            Err(Errno::ENOENT)
        }
    }

    fn metadata(&self, node: &Vec<u8>) -> Result<Metadata, Errno> {
        let (kind, size) = match self.files.get(node) {
            Some(data) => (FileKind::Regular, data.len() as u64),
            None => (FileKind::Directory, 0),
        };
        Ok(Metadata {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size,
            dev: (0, 1),
            inode: node.len() as u64 + 1,
            noexec: false,
            nosuid: false,
            thp_aligned: false,
            write_busy: false,
        })
    }

    fn readlink(&self, _: &Vec<u8>) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }

    fn read_at(&self, node: &Vec<u8>, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let data = self.files.get(node).ok_or(Errno::EISDIR)?;
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

/// Guest memory: 4 KiB pages with their r/w/x bits.
struct GuestMemory<'a> {
    fs: &'a GuestFs,
    pages: BTreeMap<u64, (Box<[u8; 4096]>, Prot)>,
}

impl GuestMemory<'_> {
    fn page(&mut self, addr: u64) -> Result<&mut [u8; 4096], Errno> {
        self.pages
            .get_mut(&(addr & !0xfff))
            .map(|(p, _)| &mut **p)
            .ok_or(Errno::EFAULT)
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let a = addr + i;
                self.pages
                    .get(&(a & !0xfff))
                    .map_or(0, |(p, _)| p[(a & 0xfff) as usize])
            })
            .collect()
    }
}

impl AddressSpace for GuestMemory<'_> {
    type File = Vec<u8>;
    type Error = Errno;

    fn reset(&mut self) -> Result<(), Errno> {
        self.pages.clear();
        Ok(())
    }

    fn map_file(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file: &Vec<u8>,
        offset: u64,
    ) -> Result<(), Errno> {
        for i in (0..len).step_by(4096) {
            let mut page = Box::new([0u8; 4096]);
            // read_full() loops over short reads; bytes past the end of the file stay zero,
            // as in a private file mapping.
            progload::fs::read_full(self.fs, file, offset + i, &mut page[..])?;
            self.pages.insert(addr + i, (page, prot));
        }
        Ok(())
    }

    fn map_anon(&mut self, addr: u64, len: u64, prot: Prot, _name: &str) -> Result<(), Errno> {
        for i in (0..len).step_by(4096) {
            self.pages.insert(addr + i, (Box::new([0u8; 4096]), prot));
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        for (i, b) in data.iter().enumerate() {
            let a = addr + i as u64;
            self.page(a)?[(a & 0xfff) as usize] = *b;
        }
        Ok(())
    }

    fn zero(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        self.write(addr, &vec![0u8; len as usize])
    }
}

fn main() {
    let mut files = BTreeMap::new();
    files.insert(
        b"/bin/hello".to_vec(),
        Arc::from(progload_testkit::tiny_static_elf()),
    );
    let fs = GuestFs { files };
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequest::new(
        "/bin/hello",
        vec![b"hello".to_vec(), b"world".to_vec()],
        vec![b"TERM=dumb".to_vec()],
    );
    let plan = match plan(&fs, &profile, &req, &mut SeededRng::new(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("exec failed: {} ({e})", e.errno());
            std::process::exit(1);
        }
    };
    let mut mem = GuestMemory {
        fs: &fs,
        pages: BTreeMap::new(),
    };
    apply(&plan, &mut mem).expect("the guest memory accepts the plan");

    println!("guest pages mapped: {}", mem.pages.len());
    for (name, value) in plan.registers.named().into_iter().filter(|&(_, v)| v != 0) {
        println!("{name:<8} {value:#x}");
    }
    let code = mem.read(plan.entry, 9);
    println!(
        "first instruction bytes at {:#x}: {:02x?}",
        plan.entry, code
    );
    assert_eq!(
        code,
        [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05],
        "mov eax, 60; xor edi, edi; syscall"
    );
    // The guest's view of its stack: argc, then argv pointers.
    let word = |a: u64| u64::from_le_bytes(mem.read(a, 8).try_into().unwrap());
    let argc = word(plan.stack.sp);
    for i in 0..argc {
        let ptr = word(plan.stack.sp + 8 + 8 * i);
        let s: Vec<u8> = mem
            .read(ptr, 64)
            .into_iter()
            .take_while(|&c| c != 0)
            .collect();
        println!("argv[{i}] = {:?}", String::from_utf8_lossy(&s));
    }
}
