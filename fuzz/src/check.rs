//! Invariants every plan (and every planning error) must satisfy, whatever the input.

use progload::errno::Errno;
use progload::mm::Backing;
use progload::resolve;
use progload::{Error, FileSystem, Plan, Profile, SimAddressSpace};

/// The errnos `execve(2)` can return (its man page), plus EBADF for `execveat`.
pub const EXECVE_ERRNOS: &[Errno] = &[
    Errno::E2BIG,
    Errno::EACCES,
    Errno::EAGAIN,
    Errno::EBADF,
    Errno::EFAULT,
    Errno::EINVAL,
    Errno::EIO,
    Errno::EISDIR,
    Errno::ELIBBAD,
    Errno::ELOOP,
    Errno::ENAMETOOLONG,
    Errno::ENOENT,
    Errno::ENOEXEC,
    Errno::ENOMEM,
    Errno::ENOTDIR,
    Errno::EPERM,
    Errno::ETXTBSY,
];

/// Errnos the kernel meets only after the point of no return (the process gets SIGSEGV; the
/// errno is never returned) may also be `EEXIST` (MAP_FIXED_NOREPLACE collision) or
/// `EOVERFLOW` (a segment's file range past the largest file offset).
pub const FATAL_ONLY_ERRNOS: &[Errno] = &[Errno::EEXIST, Errno::EOVERFLOW];

/// Checks an error: a known errno the kernel can meet.
pub fn check_error(e: &Error) {
    let errno = e.errno();
    let ok = EXECVE_ERRNOS.contains(&errno) || (e.is_fatal() && FATAL_ONLY_ERRNOS.contains(&errno));
    assert!(ok, "error {e:?} has errno {errno:?} execve cannot return");
}

/// Checks a successful plan against the invariants of a process image.
pub fn check_plan<F: FileSystem<Node = usize>>(
    p: &Plan<usize>,
    profile: &Profile,
    fs: &F,
    by_fd: bool,
) {
    let page = profile.page_size;
    assert_eq!(p.page_size, page);
    // VMAs: page aligned, non-empty, sorted, non-overlapping, inside the user address space.
    let mut prev_end = 0u64;
    for (i, v) in p.vmas.iter().enumerate() {
        assert!(v.start < v.end, "VMA {i} is empty: {v:?}");
        assert_eq!(v.start % page, 0, "VMA {i} start unaligned: {v:?}");
        assert_eq!(v.end % page, 0, "VMA {i} end unaligned: {v:?}");
        assert!(
            i == 0 || v.start >= prev_end,
            "VMA {i} overlaps or is unsorted: {:?}",
            p.vmas
        );
        assert!(v.end <= profile.task_size, "VMA {i} above TASK_SIZE: {v:?}");
        if let Backing::File { file, offset } = &v.backing {
            assert!(*file < p.files.len(), "VMA {i} names file {file}");
            assert_eq!(offset % page, 0, "VMA {i} file offset unaligned: {v:?}");
        }
        prev_end = v.end;
    }
    // Exactly one [stack], holding the stack pointer; its end is the stack top.
    let stacks: Vec<_> = p
        .vmas
        .iter()
        .filter(|v| v.backing == Backing::Stack)
        .collect();
    assert_eq!(stacks.len(), 1, "not one [stack] VMA: {:?}", p.vmas);
    let st = stacks[0];
    let sp = p.stack.sp;
    assert_eq!(sp % 16, 0, "stack pointer {sp:#x} not 16-byte aligned");
    assert!(
        st.start <= sp && sp < st.end,
        "sp {sp:#x} outside [stack] {st:?}"
    );
    assert_eq!(p.stack.top, st.end, "stack top is not the end of [stack]");
    assert_eq!(
        p.stack.bytes.len() as u64,
        p.stack.top - sp,
        "stack image length"
    );
    assert_eq!(p.registers.sp, sp);
    assert_eq!(p.registers.pc, p.entry);
    assert!(
        p.entry < profile.task_size,
        "entry {:#x} above TASK_SIZE",
        p.entry
    );
    // The initial stack: argc, argv pointers to the strings, NULL, envp, NULL, auxv, AT_NULL.
    let word = |i: usize| {
        let b = &p.stack.bytes[i * 8..i * 8 + 8];
        u64::from_le_bytes(b.try_into().expect("8 bytes"))
    };
    // Whether the NUL-terminated string `want` is at `addr` (slice compares: fast under
    // the fuzzer's instrumentation even for megabytes of arguments).
    let cstr_at = |addr: u64, want: &[u8]| -> bool {
        assert!(
            addr >= sp && addr < p.stack.top,
            "string pointer {addr:#x} off the stack"
        );
        let off = (addr - sp) as usize;
        let end = off + want.len();
        p.stack.bytes.get(off..end) == Some(want) && p.stack.bytes.get(end) == Some(&0)
    };
    assert!(!p.argv.is_empty(), "argc is 0");
    assert_eq!(word(0), p.argv.len() as u64, "argc word");
    for (i, a) in p.argv.iter().enumerate() {
        assert!(cstr_at(word(1 + i), a), "argv[{i}]");
    }
    assert_eq!(word(1 + p.argv.len()), 0, "argv NULL");
    let e0 = 2 + p.argv.len();
    for (i, e) in p.envp.iter().enumerate() {
        assert!(cstr_at(word(e0 + i), e), "envp[{i}]");
    }
    assert_eq!(word(e0 + p.envp.len()), 0, "envp NULL");
    let a0 = e0 + p.envp.len() + 1;
    for (i, &(k, v)) in p.auxv.iter().enumerate() {
        assert_eq!(
            (word(a0 + 2 * i), word(a0 + 2 * i + 1)),
            (k, v),
            "auxv[{i}]"
        );
    }
    assert_eq!(
        p.auxv.last(),
        Some(&(0, 0)),
        "auxv does not end with AT_NULL"
    );
    let execfn = p.auxv.iter().find(|(k, _)| *k == 31).map(|&(_, v)| v);
    if let Some(a) = execfn {
        assert!(cstr_at(a, &p.execfn), "AT_EXECFN string");
    }
    let m = &p.mm;
    assert!(
        sp <= m.arg_start && m.arg_start <= m.arg_end,
        "arg range {m:?}"
    );
    assert!(
        m.arg_end <= m.env_end && m.env_end < p.stack.top,
        "env range {m:?}"
    );
    assert_eq!(m.start_stack, sp);
    assert!(p.comm.len() <= 15, "comm longer than 15 bytes");
    if let (Some(base), Some(img)) = (p.vdso_base, &p.vdso_image) {
        let v = p.vmas.iter().find(|v| v.start <= base && base < v.end);
        assert!(
            v.is_some_and(|v| v.end - base >= img.len() as u64),
            "vDSO image not inside a mapping"
        );
    }
    // Every path the plan shows resolves, inside the root, to the node it maps.
    if !by_fd {
        let creds = progload::profile::Credentials::root();
        let root = resolve::DirPath::root(fs.root());
        for f in &p.files {
            check_resolved_path(&f.path);
            let w = resolve::walk(fs, &creds, &root, &f.path, false)
                .unwrap_or_else(|e| panic!("{:?} does not resolve: {e:?}", f.path));
            assert_eq!(w.node, f.node, "{:?} resolves to another node", f.path);
        }
        if let Some(i) = &p.interpreter {
            check_resolved_path(i);
        }
        check_resolved_path(&p.exe);
    }
    // Replaying the plan into the simulated address space succeeds and gives the same map.
    let mut sim = SimAddressSpace::new();
    sim.load(p)
        .unwrap_or_else(|e| panic!("SimAddressSpace::load failed: {e:?}\n{:?}", p.vmas));
    let merged = |it: &mut dyn Iterator<Item = (u64, u64, progload::Prot)>| {
        let mut out: Vec<(u64, u64, progload::Prot)> = Vec::new();
        for (s, e, prot) in it {
            match out.last_mut() {
                Some(l) if l.1 == s && l.2 == prot => l.1 = e,
                _ => out.push((s, e, prot)),
            }
        }
        out
    };
    let a = merged(&mut p.vmas.iter().map(|v| (v.start, v.end, v.prot)));
    let b = merged(&mut sim.vmas().iter().map(|v| (v.start, v.end, v.prot)));
    assert_eq!(a, b, "the simulated address space differs from the plan");
    let mut sp_bytes = vec![0u8; p.stack.bytes.len().min(4096)];
    sim.read_written(sp, &mut sp_bytes);
    assert_eq!(
        &sp_bytes[..],
        &p.stack.bytes[..sp_bytes.len()],
        "stack bytes"
    );
}

/// A resolved path: absolute, no empty, `.` or `..` component.
fn check_resolved_path(path: &[u8]) {
    assert_eq!(
        path.first(),
        Some(&b'/'),
        "resolved path {path:?} is not absolute"
    );
    if path == b"/" {
        return;
    }
    for c in path[1..].split(|&c| c == b'/') {
        assert!(
            !c.is_empty() && c != b"." && c != b"..",
            "resolved path {:?} is not canonical",
            String::from_utf8_lossy(path)
        );
    }
}
