//! The JSON contract carries everything `apply()` needs: `plan --json` output alone, with the
//! files it names, rebuilds the memory byte for byte as `SimAddressSpace` holds it after
//! `apply()` of the same plan made in this process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use progload::contract::MapKind;
use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequestBuilder, PlanRecord, SeededRng, SimAddressSpace};
use progload_host::HostFs;
use progload_testkit::progs;

const PAGE: u64 = 4096;
const RANDOM: [u8; 16] = *b"0123456789abcdef";

/// Memory as pages with their permissions.
type Memory = BTreeMap<u64, (String, Vec<u8>)>;

fn map_zero(mem: &mut Memory, start: u64, end: u64, perms: &str) {
    for page in (start..end).step_by(PAGE as usize) {
        mem.insert(page, (perms.to_string(), vec![0; PAGE as usize]));
    }
}

/// Copies `len` bytes of `path` from `offset` to `start`; bytes past the end of the file stay
/// zero.
fn copy_file(mem: &mut Memory, start: u64, len: u64, path: &[u8], offset: u64) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(std::ffi::OsStr::from_bytes(path)).unwrap();
    for i in (0..len).step_by(PAGE as usize) {
        let page = &mut mem.get_mut(&(start + i)).unwrap().1;
        let mut done = 0;
        while done < page.len() {
            let n = file
                .read_at(&mut page[done..], offset + i + done as u64)
                .unwrap();
            if n == 0 {
                break;
            }
            done += n;
        }
    }
}

fn write(mem: &mut Memory, addr: u64, data: &[u8]) {
    for (i, b) in data.iter().enumerate() {
        let a = addr + i as u64;
        mem.get_mut(&(a & !(PAGE - 1))).unwrap().1[(a % PAGE) as usize] = *b;
    }
}

/// The memory an emulator builds from the JSON alone, as the contract says to.
fn from_json(rec: &PlanRecord) -> Memory {
    let mut mem = Memory::new();
    for m in &rec.maps {
        if m.kind == MapKind::Gate {
            continue;
        }
        map_zero(&mut mem, m.start, m.end, &m.perms);
        if m.kind == MapKind::File {
            copy_file(&mut mem, m.start, m.end - m.start, &m.path.0, m.offset);
        }
    }
    for &(addr, len) in &rec.zero {
        write(&mut mem, addr, &vec![0; len as usize]);
    }
    if let Some(v) = &rec.vdso {
        write(&mut mem, v.base, &v.bytes.0);
    }
    write(&mut mem, rec.stack_pointer, &rec.stack.bytes.0);
    mem
}

/// The memory `SimAddressSpace` describes after `apply()`, with its files' bytes read through
/// the filesystem.
fn from_sim(space: &SimAddressSpace<progload_host::HostHandle>, fs: &HostFs) -> Memory {
    let mut mem = Memory::new();
    for v in space.vmas() {
        map_zero(&mut mem, v.start, v.end, &v.perms());
        if let progload::mm::Backing::File { file, offset } = &v.backing {
            let node = &space.files()[*file];
            for i in (0..v.end - v.start).step_by(PAGE as usize) {
                let page = &mut mem.get_mut(&(v.start + i)).unwrap().1;
                progload::fs::read_full(fs, node, offset + i, page).unwrap();
            }
        }
    }
    for &(addr, len) in space.zeroed() {
        write(&mut mem, addr, &vec![0; len as usize]);
    }
    for (addr, data) in space.written() {
        write(&mut mem, addr, data);
    }
    mem
}

fn replay(program: &Path) {
    let path = program.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_progload"))
        .args([
            "plan",
            "--json",
            "--no-randomize",
            "--env-clear",
            "-e",
            "A=1",
        ])
        .args(["--random-bytes", &progload::contract::to_hex(&RANDOM)])
        .args([path, "an argument"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: PlanRecord = serde_json::from_slice(&out.stdout).unwrap();
    let json_mem = from_json(&rec);

    let fs = HostFs::new("/").unwrap();
    let mut profile = progload_host::host_profile_with_compat().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let req = LoadRequestBuilder::new(path)
        .arg("an argument")
        .env("A=1")
        .random_bytes(RANDOM)
        .build(&fs, &profile)
        .unwrap();
    let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
    assert_eq!(
        p.record(),
        rec,
        "{path}: the JSON is not this plan's record"
    );
    let mut space = SimAddressSpace::new();
    space.load(&p).unwrap();
    let sim_mem = from_sim(&space, &fs);

    assert_eq!(
        json_mem.keys().collect::<Vec<_>>(),
        sim_mem.keys().collect::<Vec<_>>(),
        "{path}: pages"
    );
    for (addr, (perms, bytes)) in &json_mem {
        let (sim_perms, sim_bytes) = &sim_mem[addr];
        assert_eq!(perms, sim_perms, "{path}: permissions of page {addr:#x}");
        assert!(bytes == sim_bytes, "{path}: bytes of page {addr:#x} differ");
    }
    // Something was really compared: file bytes, the stack and (where there is one) the vDSO.
    assert!(json_mem.len() > 8, "{path}: {} pages", json_mem.len());
    assert!(rec.maps.iter().any(|m| m.kind == MapKind::File));
    assert!(!rec.stack.bytes.0.is_empty());
    assert!(!rec.zero.is_empty(), "{path}: no padzero range to replay");
}

#[test]
fn json_replays_to_the_simulated_memory() {
    let dir = progs::TempDir::new().unwrap();
    let script = progs::write_sh_script(dir.path(), "s.sh").unwrap();
    for program in [progs::static_exec(), progs::pie(), script] {
        replay(&program);
    }
}
