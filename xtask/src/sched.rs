//! Where the threads of a short parallel task run.
//!
//! Linux may put a new thread on the CPU of the thread that created it, when the other CPUs look
//! busier (a parent process that just ran there leaves its load behind it for a while), and move
//! one of the two only at its next balance, milliseconds later. For the no-op fast path that is a
//! large part of its run: `dist` run twice on the medium profile, each thread logging
//! `sched_getcpu` per chunk, showed its second thread starting 2–4 ms late, beside the first.
//! `make_room` moves the calling thread off its CPU at once, so that the threads it has just
//! started run there.

/// Moves the calling thread to another CPU it may run on, if there is one, then lets it run on
/// every one of them again: the threads it has just started get its CPU.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn make_room() {
    let size = size_of::<libc::cpu_set_t>();
    // SAFETY: a zeroed `cpu_set_t` is an empty set; each call reads or writes only `set`, of
    // `size` bytes.
    unsafe {
        let (cpu, mut set) = (libc::sched_getcpu(), std::mem::zeroed::<libc::cpu_set_t>());
        if cpu < 0 || libc::sched_getaffinity(0, size, &mut set) != 0 {
            return;
        }
        let all = set;
        libc::CPU_CLR(cpu as usize, &mut set);
        if libc::CPU_COUNT(&set) > 0 && libc::sched_setaffinity(0, size, &set) == 0 {
            libc::sched_setaffinity(0, size, &all);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn make_room() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// The thread ends where it may run on every CPU it could before, and no thread is lost.
    #[test]
    fn the_caller_may_run_anywhere_after() {
        let mask = || {
            // SAFETY: as in `make_room`.
            unsafe {
                let mut set = std::mem::zeroed::<libc::cpu_set_t>();
                let size = size_of::<libc::cpu_set_t>();
                assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
                set
            }
        };
        let before = mask();
        let worker = std::thread::spawn(|| 2 + 2);
        make_room();
        // SAFETY: two valid sets.
        assert!(unsafe { libc::CPU_EQUAL(&mask(), &before) });
        assert_eq!(worker.join().unwrap(), 4);
    }
}
