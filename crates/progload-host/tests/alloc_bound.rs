//! Bounded allocation: whatever the file says, a plan allocates no more than the kernel's own
//! limits allow (program header table ≤ 64 KiB, PT_INTERP ≤ 4 KiB, header buffer 256 bytes,
//! note ≤ 1 KiB) plus what the request itself holds. (It lives in the host crate because a
//! counting allocator needs `unsafe`, which the core crate forbids even in its tests.) A counting global allocator measures the
//! peak during each plan of crafted and mutated files.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use progload::profile::ADDR_NO_RANDOMIZE;
use progload::{plan, LoadRequest, MemFs, Profile, SeededRng};
use progload_testkit::elfbuild::{ElfBuilder, ProgramHeader, PT_INTERP};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
/// The counters are process-wide: the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are only
// bookkeeping. (Tests may use unsafe; the core crate cannot.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        TOTAL.fetch_add(layout.size(), Ordering::Relaxed);
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The bound: two full program header tables (program and interpreter), a PT_INTERP path,
/// a note, the stack image of this small request, and bookkeeping.
const BOUND: usize = 2 * 65_536 + 4096 + 1024 + 64 * 1024;

fn peak_of(fs: &MemFs, profile: &Profile, path: &str) -> usize {
    let req = LoadRequest::new(path, vec![path.as_bytes().to_vec()], vec![b"A=1".to_vec()]);
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = plan(fs, profile, &req, &mut SeededRng::new(0));
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    drop(r);
    peak
}

#[test]
fn plan_allocation_is_bounded_for_any_file() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut profile = Profile::linux_6_18_x86_64();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let mut fs = MemFs::new();
    // Files whose fields claim huge sizes.
    let mut huge_phnum = ElfBuilder::minimal_x86_64_exec();
    huge_phnum.header.e_phnum = Some(0xffff);
    fs.add_file(b"/huge_phnum", 0o755, huge_phnum.build());
    let mut max_table = ElfBuilder::minimal_x86_64_exec();
    max_table.header.e_phnum = Some(1170);
    max_table.min_len = 1170 * 56 + 64;
    fs.add_file(b"/max_table", 0o755, max_table.build());
    let mut huge_interp = ElfBuilder::minimal_x86_64_exec();
    huge_interp
        .phdrs
        .push(ProgramHeader::interp(0x80, 0, u64::MAX));
    fs.add_file(b"/huge_interp", 0o755, huge_interp.build());
    let mut big_interp = ElfBuilder::minimal_x86_64_exec();
    let mut ph = ProgramHeader::interp(0x100, 0, 4096);
    ph.p_type = PT_INTERP;
    big_interp.phdrs.push(ph);
    big_interp.min_len = 0x1100;
    fs.add_file(b"/big_interp", 0o755, big_interp.build());
    let mut huge_segment = ElfBuilder::minimal_x86_64_exec();
    huge_segment.phdrs[0].p_memsz = 1 << 46;
    huge_segment.phdrs[0].p_filesz = 1 << 40;
    fs.add_file(b"/huge_segment", 0o755, huge_segment.build());
    fs.add_file(b"/true", 0o755, std::fs::read("/usr/bin/true").unwrap());
    fs.add_file(
        b"/lib64/ld-linux-x86-64.so.2",
        0o755,
        std::fs::read("/lib64/ld-linux-x86-64.so.2").unwrap(),
    );
    let mut worst = (0, "");
    for path in [
        "/huge_phnum",
        "/max_table",
        "/huge_interp",
        "/big_interp",
        "/huge_segment",
        "/true",
    ] {
        let peak = peak_of(&fs, &profile, path);
        eprintln!("{path}: peak {peak} bytes");
        if peak > worst.0 {
            worst = (peak, path);
        }
    }
    // Random mutations of a real binary.
    let orig = std::fs::read("/usr/bin/true").unwrap();
    let mut rng = SeededRng::new(42);
    for _ in 0..300 {
        let mut bytes = orig.clone();
        for _ in 0..6 {
            let at = (rand_core::Rng::next_u64(&mut rng) as usize) % 512;
            bytes[at] = rand_core::Rng::next_u32(&mut rng) as u8;
        }
        fs.add_file(b"/mutant", 0o755, bytes);
        let peak = peak_of(&fs, &profile, "/mutant");
        if peak > worst.0 {
            worst = (peak, "/mutant");
        }
    }
    eprintln!("worst peak {} bytes ({}), bound {BOUND}", worst.0, worst.1);
    assert!(worst.0 <= BOUND, "{worst:?}");
}

/// From a warm profile, a plan allocates what it keeps plus a bounded amount of scratch (the
/// program header tables, the PT_INTERP path, the string copies): nothing in proportion to
/// the files, and nothing for the profile (the vDSO image is shared, not copied).
#[test]
fn warm_plan_allocates_what_the_plan_holds() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut profile = progload_host::host_profile().unwrap();
    profile.personality |= ADDR_NO_RANDOMIZE;
    let fs = progload_host::HostFs::new("/").unwrap();
    let req = LoadRequest::new(
        "/usr/bin/ls",
        vec![b"ls".to_vec(), b"-la".to_vec()],
        vec![b"A=1".to_vec()],
    );
    // Warm: the first plan opens the files' read descriptors once.
    drop(plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap());
    let total_before = TOTAL.load(Ordering::Relaxed);
    let live_before = CURRENT.load(Ordering::Relaxed);
    let p = plan(&fs, &profile, &req, &mut SeededRng::new(0)).unwrap();
    let allocated = TOTAL.load(Ordering::Relaxed) - total_before;
    let held = CURRENT.load(Ordering::Relaxed).saturating_sub(live_before);
    let scratch = allocated - held;
    eprintln!(
        "plan of /usr/bin/ls: {allocated} bytes allocated, {held} held by the plan ({} stack bytes, {} VMAs), {scratch} scratch",
        p.stack.bytes.len(),
        p.vmas.len()
    );
    assert!(scratch <= 16 * 1024, "{scratch} bytes of scratch");
    assert!(held < 16 * 1024, "{held}");
}
