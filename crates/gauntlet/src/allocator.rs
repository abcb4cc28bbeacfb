//! glibc malloc settings for long-running servers. By default glibc raises its mmap
//! threshold after large buffers are freed, so later multi-megabyte range reads land in
//! per-thread arenas and stay resident after use; a fixed threshold returns them to the
//! system on free.

/// Buffers from this size up are mmapped and unmapped on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
