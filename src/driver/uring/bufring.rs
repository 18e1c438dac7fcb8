//! A provided-buffer ring: a pool of receive buffers the kernel picks from when a multishot
//! receive has data, so an idle connection holds no read buffer at all. A buffer belongs to the
//! kernel from the moment it is in the ring until a completion names its id; it goes back in the
//! same loop turn, after the shard has parsed it.
//!
//! Both allocations (the ring of entries and the buffers) are raw memory owned by [`BufRing`],
//! never a Rust reference the kernel writes behind. They are freed only after
//! [`BufRing::unregister`] succeeded; a `BufRing` dropped while still registered leaks them
//! instead, so the kernel can never write into memory that was handed back to the allocator.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id framecast registers.
pub(crate) const GROUP: u16 = 0;

/// The kernel's `struct io_uring_buf`, the layout behind [`BufRingEntry`] (whose field is
/// private): named fields let `push` write one field at a time through a raw pointer.
#[repr(C)]
struct RawEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// Entry 0's is the ring's tail (written only by `publish`).
    resv: u16,
}

const _: () = assert!(
    size_of::<RawEntry>() == size_of::<BufRingEntry>()
        && align_of::<RawEntry>() == align_of::<BufRingEntry>()
        && std::mem::offset_of!(RawEntry, resv) == 14
);

/// The ring of entries (page-aligned, shared with the kernel) and the buffers it points at.
pub(crate) struct BufRing {
    entries: *mut BufRingEntry,
    entries_layout: Layout,
    buffers: *mut u8,
    buffers_layout: Layout,
    count: u16,
    tail: u16,
    size: usize,
    /// The kernel knows the ring (between a successful register and unregister).
    registered: bool,
}

impl BufRing {
    /// Allocates `count` (a power of two) buffers of `size` bytes and registers them with `ring`.
    pub(crate) fn new(ring: &IoUring, count: u16, size: usize) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two(),
            "buffer count must be a power of two"
        );
        assert!(size > 0 && size <= usize::from(u16::MAX), "buffer size");
        let entries_layout =
            Layout::from_size_align(usize::from(count) * size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        let buffers_layout =
            Layout::from_size_align(usize::from(count) * size, 64).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count > 0, size > 0).
        let (entries, buffers) = unsafe {
            (
                alloc::alloc_zeroed(entries_layout).cast::<BufRingEntry>(),
                alloc::alloc_zeroed(buffers_layout),
            )
        };
        // From here on `Drop` frees whichever allocation succeeded (nothing is registered yet).
        let mut bufs = BufRing {
            entries,
            entries_layout,
            buffers,
            buffers_layout,
            count,
            tail: 0,
            size,
            registered: false,
        };
        if entries.is_null() || buffers.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        // SAFETY: `entries` points at `count` zeroed entries in a page-aligned allocation owned
        // by `bufs`, which frees it only after `unregister` succeeded (or leaks it), so the
        // kernel never reads freed memory through the registration.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, GROUP, 0)?
        };
        bufs.registered = true;
        for bid in 0..count {
            bufs.push(bid);
        }
        bufs.publish();
        Ok(bufs)
    }

    /// The first `len` bytes of buffer `bid`, as filled by the kernel. Only for a `bid` a
    /// completion just returned (the kernel writes it no more until it is recycled).
    pub(crate) fn get_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        assert!(bid < self.count, "buffer id from the kernel is in range");
        let start = usize::from(bid) * self.size;
        // SAFETY: `start + len.min(size)` is inside the `count * size` allocation owned by
        // `self`; a completion named `bid`, so the kernel has finished writing it and takes it
        // again only after `recycle`, which needs `&mut self` and so cannot run while the slice
        // lives.
        unsafe { std::slice::from_raw_parts_mut(self.buffers.add(start), len.min(self.size)) }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    /// Tells the kernel to forget the ring (call once no operation can pick a buffer, i.e. with
    /// nothing in flight); afterwards dropping `self` frees the memory.
    pub(crate) fn unregister(&mut self, ring: &IoUring) -> io::Result<()> {
        if self.registered {
            ring.submitter().unregister_buf_ring(GROUP)?;
            self.registered = false;
        }
        Ok(())
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // The address is computed, not borrowed: no Rust reference to the buffer exists while
        // the kernel owns it.
        let addr = self.buffers.wrapping_add(usize::from(bid) * self.size) as u64;
        let entry = self.entries.wrapping_add(index).cast::<RawEntry>();
        // SAFETY: `index` < count, so the entry is inside the `entries` allocation, owned by
        // `self` and freed only after `unregister` (see `new`). The three fields are written
        // through raw pointers, one field each, with no `&mut` to the entry: entry 0's `resv`
        // is the ring's tail, which the kernel reads at any time, so no Rust reference may
        // cover it. Only this thread writes entries, and the kernel reads an entry only after
        // the tail (`publish`) covers it.
        unsafe {
            std::ptr::addr_of_mut!((*entry).addr).write(addr);
            std::ptr::addr_of_mut!((*entry).len).write(self.size as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
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
        if self.registered {
            // The kernel may still read the entries and write the buffers: leak both rather
            // than free memory it points at (only a driver that could not drain gets here).
            return;
        }
        // SAFETY: allocated in `new` with these layouts (null when that allocation failed);
        // the kernel no longer knows the ring (never registered, or unregistered).
        unsafe {
            if !self.entries.is_null() {
                alloc::dealloc(self.entries.cast(), self.entries_layout);
            }
            if !self.buffers.is_null() {
                alloc::dealloc(self.buffers, self.buffers_layout);
            }
        }
    }
}
