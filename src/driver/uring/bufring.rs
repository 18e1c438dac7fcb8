//! A provided-buffer ring: a pool of receive buffers the kernel picks from when a multishot
//! receive has data, so an idle connection holds no read buffer at all. A buffer belongs to the
//! kernel from the moment it is in the ring until a completion names its id; it goes back in the
//! same loop turn, after the shard has parsed it.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id framecast registers.
pub const GROUP: u16 = 0;

/// The ring of entries (page-aligned, shared with the kernel) and the buffers it points at.
pub struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    count: u16,
    tail: u16,
    size: usize,
    buffers: Box<[u8]>,
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` bytes and registers them with `ring`.
    pub fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "buffer count must be a power of two"
        );
        let layout = Layout::from_size_align(usize::from(count) * size_of::<BufRingEntry>(), 4096)
            .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size (count > 0).
        let entries = unsafe { alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let mut ring_bufs = BufRing {
            entries,
            layout,
            count,
            tail: 0,
            size,
            buffers: vec![0u8; usize::from(count) * size].into_boxed_slice(),
        };
        // SAFETY: `entries` points at `count` zeroed entries in a page-aligned allocation that
        // lives until `self` is dropped, which happens after the ring is dropped (field order in
        // UringDriver), so the kernel never sees freed memory.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, GROUP, 0)?
        };
        for bid in 0..count {
            ring_bufs.push(bid);
        }
        ring_bufs.publish();
        Ok(ring_bufs)
    }

    /// The first `len` bytes of buffer `bid`, as filled by the kernel.
    pub fn get_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = usize::from(bid) * self.size;
        &mut self.buffers[start..start + len.min(self.size)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers[usize::from(bid) * self.size..].as_ptr() as u64;
        // SAFETY: `index` < count, so the entry is inside the allocation; only this thread
        // writes entries, and the kernel reads an entry only after the tail covers it.
        let entry = unsafe { &mut *self.entries.add(index) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays entry 0's reserved field (the kernel's ring layout);
        // the allocation is valid and suitably aligned for u16, and the kernel only reads it.
        let tail = unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.entries).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it is already gone.
        unsafe { alloc::dealloc(self.entries.cast(), self.layout) };
    }
}
