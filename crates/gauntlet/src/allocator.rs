//! glibc malloc settings for long-running servers, and giving memory back after load.
//!
//! By default glibc raises its mmap threshold after large buffers are freed, so later
//! multi-megabyte buffers land in the heap and stay resident; a fixed threshold returns them
//! to the system on free. It also keeps one arena per thread that ever allocated (up to
//! 8 × cores), each holding freed pages: the arenas are capped, and a background thread trims
//! every arena (`malloc_trim`) once a few seconds have passed without a new peak, so a burst
//! of large queries does not leave its memory resident.

/// Buffers from this size up are mmapped and unmapped on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Arenas glibc may create (its default is 8 per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 4;

pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Starts the thread that hands freed heap memory back to the system: every two seconds it
/// trims when the resident size has not grown since the last look (the load has passed) and
/// is above what it was after the last trim.
pub fn start_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(|| {
                let mut last = resident_bytes();
                let mut floor = last;
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(2));
                    let now = resident_bytes();
                    if now <= last && now > floor + (1 << 20) {
                        // SAFETY: malloc_trim only releases free memory of glibc's arenas.
                        unsafe {
                            libc::malloc_trim(0);
                        }
                        floor = resident_bytes();
                        last = floor;
                    } else {
                        last = now;
                    }
                }
            });
    }
}

/// The process's resident set size, from /proc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
