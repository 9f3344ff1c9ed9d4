//! A global allocator that keeps hostile length prefixes from killing the process.
//!
//! The Kafka protocol decoder (`kafka-protocol`) reserves `Vec` capacity straight from element
//! counts read off the wire, before decoding any element. A 20-byte request that claims four billion
//! array elements asks for hundreds of gigabytes at once; Linux's overcommit heuristic refuses that,
//! and Rust aborts the process on allocation failure — one bad packet would stop the broker.
//!
//! `GuardedAlloc` passes every allocation to the system allocator, except very large ones (≥ 1 GiB),
//! which it maps with `mmap(MAP_NORESERVE)`: address space only, no memory committed until touched.
//! Decoding such a request fails after a few elements (the frame, at most
//! `socket.request.max.bytes`, runs out), the vector is dropped and the mapping returned, so the
//! connection is closed with a log line and nothing else happens. Legitimate allocations of that
//! size do not occur in kfdb (requests are capped at 100 MiB); if one did, it would work the same
//! way, with memory committed as it is written.
//!
//! Install it in a binary with `#[global_allocator] static A: GuardedAlloc = GuardedAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

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
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE && page_aligned(&layout) {
            // SAFETY: `ptr` came from the mmap above with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: `ptr` came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let was_large = layout.size() >= LARGE && page_aligned(&layout);
        let is_large = new_size >= LARGE && page_aligned(&layout);
        if !was_large && !is_large {
            // SAFETY: forwarded with the caller's arguments.
            return unsafe { System.realloc(ptr, layout, new_size) };
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

#[cfg(test)]
mod tests {
    use super::*;

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
