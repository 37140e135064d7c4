//! Transparent huge pages for large host buffers (`madvise(MADV_HUGEPAGE)`), asked for
//! before a fresh buffer's pages are first touched. Most distributions run THP in
//! "madvise" mode, where only advised memory gets 2 MiB pages; NumPy advises its large
//! arrays the same way. Streaming kernels and MPI's copies then take fewer TLB misses.

/// Advises huge pages for the whole 4 KiB pages inside `[addr, addr + len)`. Failure
/// (an old kernel, THP off) changes nothing and is ignored.
pub fn advise(addr: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = addr.div_ceil(PAGE).saturating_mul(PAGE);
        let end = addr.saturating_add(len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside one live allocation owned by the caller;
            // MADV_HUGEPAGE only changes how the kernel backs those pages, never their
            // contents, and no reference is formed from the address.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len);
}
