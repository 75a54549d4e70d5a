//! A test-only global allocator that records the largest single allocation
//! made by the current thread, so tests can show that hostile length
//! prefixes are rejected without a large allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = PEAK.try_with(|p| {
        if size > p.get() {
            p.set(size);
        }
    });
}

/// Forwards to the system allocator, noting each request's size.
#[derive(Debug)]
pub struct Tracking;

// SAFETY: every method forwards to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Forgets this thread's peak.
pub fn reset() {
    PEAK.with(|p| p.set(0));
}

/// The largest single allocation this thread made since [`reset`].
pub fn peak() -> usize {
    PEAK.with(Cell::get)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_is_measured() {
        super::reset();
        let v = std::hint::black_box(vec![0u8; 10 << 20]);
        assert!(super::peak() >= 10 << 20);
        drop(v);
        super::reset();
        assert!(super::peak() < 10 << 20);
    }
}
