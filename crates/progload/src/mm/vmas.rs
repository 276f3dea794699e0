//! The VMA model of the new mm: fixed and top-down/bottom-up placement (`vm_unmapped_area()`,
//! `thp_get_unmapped_area()`), splitting (`do_vmi_munmap()`), merging (`vma_merge()`), and the
//! permission column /proc/PID/maps prints.

use alloc::string::String;
use alloc::vec::Vec;

use crate::prot::Prot;

/// `PMD_SIZE`, the transparent huge page size the THP file alignment uses.
pub const HUGE_SIZE: u64 = 2 << 20;

/// What backs a VMA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A private mapping of file number `file` of the plan, at byte `offset`.
    File {
        /// Index into the plan's files.
        file: usize,
        /// File offset of the VMA's first byte (page aligned).
        offset: u64,
    },
    /// Anonymous zero pages (bss, brk-style).
    Anon,
    /// The stack (grows down).
    Stack,
    /// A special mapping, named as /proc/PID/maps names it (`[vdso]`, `[vvar]`, ...).
    Special(String),
}

/// One VMA: `[start, end)`, page aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Its protection.
    pub prot: Prot,
    /// The backing.
    pub backing: Backing,
}

impl Vma {
    /// The permission column of /proc/PID/maps, e.g. `r-xp`.
    pub fn perms(&self) -> String {
        alloc::format!("{}p", self.prot)
    }

    fn mergeable_after(&self, next: &Vma) -> bool {
        if self.end != next.start || self.prot != next.prot {
            return false;
        }
        match (&self.backing, &next.backing) {
            (Backing::Anon, Backing::Anon) => true,
            (
                Backing::File {
                    file: a,
                    offset: oa,
                },
                Backing::File {
                    file: b,
                    offset: ob,
                },
            ) => a == b && oa.checked_add(self.end.saturating_sub(self.start)) == Some(*ob),
            _ => false,
        }
    }
}

/// The VMAs of an address space, sorted and non-overlapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vmas {
    list: Vec<Vma>,
    /// `stack_guard_gap`: free space a grows-down VMA keeps below itself.
    pub guard_gap: u64,
}

/// How to search for a free range.
#[derive(Clone, Copy, Debug)]
pub struct Search {
    /// Lowest usable address.
    pub low: u64,
    /// One past the highest usable address (`mmap_base` for top-down).
    pub high: u64,
    /// Top-down (highest fit) or bottom-up (first fit from `low`).
    pub top_down: bool,
    /// `TASK_SIZE`, for hint validity.
    pub task_size: u64,
}

impl Vmas {
    /// An empty address space.
    pub fn new(guard_gap: u64) -> Self {
        Vmas {
            list: Vec::new(),
            guard_gap,
        }
    }

    /// The VMAs in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.list.iter()
    }

    /// The VMAs in address order, as a slice.
    pub fn as_slice(&self) -> &[Vma] {
        &self.list
    }

    /// Whether any VMA intersects `[start, end)`.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.list.iter().any(|v| v.start < end && start < v.end)
    }

    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.list.iter().find(|v| v.start <= addr && addr < v.end)
    }

    /// Removes `[start, end)`, splitting VMAs at the edges (`do_vmi_munmap`).
    pub fn unmap(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut out = Vec::with_capacity(self.list.len().saturating_add(1));
        for v in self.list.drain(..) {
            if v.end <= start || v.start >= end {
                out.push(v);
                continue;
            }
            if v.start < start {
                out.push(Vma {
                    end: start,
                    ..v.clone()
                });
            }
            if v.end > end {
                let mut tail = v.clone();
                if let Backing::File { offset, .. } = &mut tail.backing {
                    *offset = offset.wrapping_add(end.saturating_sub(v.start));
                }
                tail.start = end;
                out.push(tail);
            }
        }
        self.list = out;
    }

    /// Maps `vma` over whatever was there (MAP_FIXED), merging with compatible neighbours as
    /// `vma_merge` does.
    pub fn map_fixed(&mut self, vma: Vma) {
        if vma.start >= vma.end {
            return;
        }
        self.unmap(vma.start, vma.end);
        let pos = self.list.partition_point(|v| v.start < vma.start);
        self.list.insert(pos, vma);
        // Merge with the next, then with the previous.
        self.merge_at(pos);
        if let Some(prev) = pos.checked_sub(1) {
            self.merge_at(prev);
        }
    }

    /// `vm_brk_flags()` of `vma` (anonymous): over whatever was there, extending the VMA that
    /// ends where it starts when compatible, and joining the one after it only when
    /// `merge_next` (before 6.1, `vma_merge()`).
    pub fn map_brk(&mut self, vma: Vma, merge_next: bool) {
        if vma.start >= vma.end {
            return;
        }
        self.unmap(vma.start, vma.end);
        let pos = self.list.partition_point(|v| v.start < vma.start);
        self.list.insert(pos, vma);
        if merge_next {
            self.merge_at(pos);
        }
        if let Some(prev) = pos.checked_sub(1) {
            self.merge_at(prev);
        }
    }

    /// Merges VMA `i` with VMA `i + 1` when `vma_merge` would.
    fn merge_at(&mut self, i: usize) {
        let next = i.saturating_add(1);
        let mergeable = match (self.list.get(i), self.list.get(next)) {
            (Some(a), Some(b)) => a.mergeable_after(b),
            _ => false,
        };
        if mergeable {
            let b = self.list.remove(next);
            if let Some(a) = self.list.get_mut(i) {
                a.end = b.end;
            }
        }
    }

    /// Replaces a VMA's bounds in place (stack growth), keeping it unmerged.
    pub fn set_bounds(&mut self, old_start: u64, start: u64, end: u64) {
        if let Some(v) = self.list.iter_mut().find(|v| v.start == old_start) {
            v.start = start;
            v.end = end;
        }
        self.list.sort_by_key(|v| v.start);
    }

    fn start_gap(&self, v: &Vma) -> u64 {
        if v.backing == Backing::Stack {
            v.start.saturating_sub(self.guard_gap)
        } else {
            v.start
        }
    }

    /// Whether `[addr, addr + len)` is free, counting the guard gap below a stack.
    pub fn is_free(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        self.list
            .iter()
            .all(|v| v.end <= addr || self.start_gap(v) >= end)
    }

    /// `vm_unmapped_area`: a free, page-aligned range of `len` bytes within the search bounds.
    pub fn find_free(&self, len: u64, s: &Search) -> Option<u64> {
        if len == 0 || s.high.checked_sub(s.low).is_none_or(|room| room < len) {
            return None;
        }
        // Gaps between VMAs, clipped to [low, high).
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        let mut prev_end = 0u64;
        for v in &self.list {
            let gap_end = self.start_gap(v);
            if gap_end > prev_end {
                gaps.push((prev_end, gap_end));
            }
            prev_end = prev_end.max(v.end);
        }
        gaps.push((prev_end, u64::MAX));
        let clipped = gaps.into_iter().filter_map(|(a, b)| {
            let a = a.max(s.low);
            let b = b.min(s.high);
            (b > a && b.saturating_sub(a) >= len).then_some((a, b))
        });
        if s.top_down {
            clipped.map(|(_, b)| b.saturating_sub(len)).max()
        } else {
            clipped.map(|(a, _)| a).min()
        }
    }

    /// `get_unmapped_area` for a non-fixed mapping: a valid free hint is taken as is, then a
    /// top-down search with a bottom-up fallback (or bottom-up when the layout is legacy).
    pub fn get_unmapped_area(
        &self,
        hint: u64,
        len: u64,
        s: &Search,
        legacy_base: u64,
    ) -> Option<u64> {
        if hint != 0 {
            let hint = hint & !0xfff;
            let valid = s.task_size.checked_sub(len).is_some_and(|max| hint <= max);
            if valid && self.is_free(hint, len) {
                return Some(hint);
            }
        }
        if s.top_down {
            self.find_free(len, s).or_else(|| {
                let up = Search {
                    low: legacy_base,
                    high: s.task_size,
                    top_down: false,
                    ..*s
                };
                self.find_free(len, &up)
            })
        } else {
            self.find_free(len, s)
        }
    }

    /// `thp_get_unmapped_area` for a file mapping of `[off, off + len)`: when the range holds a
    /// whole 2 MiB-aligned 2 MiB block, search `len + 2 MiB` and place the mapping so that
    /// `addr ≡ off (mod 2 MiB)`. With `skip_aligned` (6.8 on), a top-down search that returns
    /// an aligned address places the mapping 2 MiB higher.
    pub fn get_unmapped_area_thp(
        &self,
        hint: u64,
        len: u64,
        off: u64,
        s: &Search,
        legacy_base: u64,
        skip_aligned: bool,
    ) -> Option<u64> {
        let plain = || self.get_unmapped_area(hint, len, s, legacy_base);
        let Some(off_end) = off.checked_add(len) else {
            return plain();
        };
        let Some(off_align) = off.checked_next_multiple_of(HUGE_SIZE) else {
            return plain();
        };
        if off_end
            .checked_sub(off_align)
            .is_none_or(|whole| whole < HUGE_SIZE)
        {
            return plain();
        }
        let Some(len_pad) = len.checked_add(HUGE_SIZE) else {
            return plain();
        };
        if off.checked_add(len_pad).is_none() {
            return plain();
        }
        let Some(ret) = self.get_unmapped_area(hint, len_pad, s, legacy_base) else {
            return plain();
        };
        if hint != 0 && ret == (hint & !0xfff) {
            return Some(ret);
        }
        let off_sub = off.wrapping_sub(ret) & HUGE_SIZE.wrapping_sub(1);
        if skip_aligned && s.top_down && off_sub == 0 {
            return ret.checked_add(HUGE_SIZE);
        }
        ret.checked_add(off_sub)
    }
}
