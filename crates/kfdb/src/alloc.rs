//! A global allocator that keeps hostile length prefixes from killing the process.
//!
//! The Kafka protocol decoder (`kafka-protocol`) reserves `Vec` capacity straight from element
//! counts read off the wire, before decoding any element. A 20-byte request that claims four billion
//! array elements asks for hundreds of gigabytes at once; Linux's overcommit heuristic refuses that,
//! and Rust aborts the process on allocation failure — one bad packet would stop the broker.
//!
//! `GuardedAlloc` passes every allocation to mimalloc, except very large ones (≥ 1 GiB),
//! which it maps with `mmap(MAP_NORESERVE)`: address space only, no memory committed until touched.
//! Decoding such a request fails after a few elements (the frame, at most
//! `socket.request.max.bytes`, runs out), the vector is dropped and the mapping returned, so the
//! connection is closed with a log line and nothing else happens. Legitimate allocations of that
//! size do not occur in kfdb (requests are capped at 100 MiB); if one did, it would work the same
//! way, with memory committed as it is written.
//!
//! The `kfdb` binary installs it as its global allocator (`main.rs`); libraries do not choose the
//! process's allocator.
//!
//! Why mimalloc underneath rather than glibc's malloc: creating topics by the thousand spent ~38 %
//! of kfdb's CPU in glibc's malloc and free (bin consolidation), and glibc kept freed memory in
//! its arenas, so RSS after a burst stayed high (docs/benchmarks.md has both measurements).

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};

/// Allocations at or above this size are mapped lazily instead of allocated.
const LARGE: usize = 1 << 30;

/// See the module documentation.
pub struct GuardedAlloc;

fn page_aligned(layout: &Layout) -> bool {
    // mmap returns page-aligned memory; larger alignments go to the system allocator.
    layout.align() <= 4096
}

unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && page_aligned(&layout) {
            // SAFETY: an anonymous private mapping with no address hint has no preconditions.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            return if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            };
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE && page_aligned(&layout) {
            // SAFETY: an anonymous mapping is zero-filled by the kernel, page by page as touched;
            // writing zeros here would commit the whole mapping.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE && page_aligned(&layout) {
            // SAFETY: `ptr` came from the mmap above with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from MiMalloc.alloc with this layout.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let was_large = layout.size() >= LARGE && page_aligned(&layout);
        let is_large = new_size >= LARGE && page_aligned(&layout);
        if !was_large && !is_large {
            // SAFETY: forwarded with the caller's arguments.
            return unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `layout.align()` and `new_size` form a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: allocate, copy the overlapping prefix, free the old block.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

/// mimalloc's `mi_option_purge_delay`, read from the header mimalloc was built with (`build.rs`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    parse_option(env!("KFDB_MI_OPTION_PURGE_DELAY"));

/// A small decimal number at compile time.
const fn parse_option(s: &str) -> libmimalloc_sys::mi_option_t {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as libmimalloc_sys::mi_option_t;
        i += 1;
    }
    n
}

/// How long mimalloc keeps freed memory for reuse before purging it (its v3 default is 1 s).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Give memory freed by a burst back to the OS once things are quiet. mimalloc purges freed
/// memory only after a delay, and only on later allocator activity, so a broker that went idle
/// after a burst (a million CreateTopics, say) kept the burst's peak as its RSS: 158 MB instead
/// of 109 MB 7 s after creating 200k topics (kfdb-bench topics). Two measures: a 100 ms purge
/// delay (unless `MIMALLOC_PURGE_DELAY` is set) — the one that made the difference measured —
/// and a thread that asks mimalloc to purge every `every`, for a broker with no activity at all
/// to carry delayed purges out. A shorter delay costs the tailing consumer throughput: each Fetch builds
/// megabytes of response, and with purging at once (delay 0) those pages were faulted in afresh
/// every time (a third of the tail's throughput lost).
pub fn spawn_memory_purger(every: std::time::Duration) -> std::io::Result<()> {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    std::thread::Builder::new()
        .name("kfdb-mem-purge".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                // SAFETY: mi_collect has no preconditions; `force` purges what is kept for reuse.
                unsafe { libmimalloc_sys::mi_collect(true) };
            }
        })
        .map(|_| ())
}

/// Turn transparent huge pages off for this process (unless `MIMALLOC_ALLOW_THP` says otherwise).
/// mimalloc asks for huge pages on its arena (`madvise`), and every first touch of a fresh 2 MiB
/// region then has the kernel zero all of it at once: in the produce benchmark that page zeroing
/// was 11 % of kfdb's samples, and with huge pages off kfdb produced 362 and 365 MB/s (medians of
/// five; ranges 331–388) against 280 and 270 (217–334) with them on, runs alternating; RSS after
/// creating a million topics was lower too (docs/benchmarks.md). The kernel checks this flag at
/// each fault, so it also covers the arena mimalloc reserved before `main` ran.
pub fn disable_transparent_huge_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and sets a flag of this process.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if r != 0 {
            eprintln!(
                "kfdb: could not turn transparent huge pages off: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_mimallocs() {
        // Index 15 in mimalloc 2.x and 3.x; read from the header at build time.
        assert_eq!(MI_OPTION_PURGE_DELAY, 15);
    }

    #[test]
    fn huge_allocations_are_lazy_and_usable() {
        let a = GuardedAlloc;
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: layout is valid; the block is written within bounds and freed with its layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null(), "64 GiB of address space");
            *p = 7;
            *p.add((64 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }
}
