//! Connection steering: a new connection goes to the worker of the CPU
//! its packets arrive on, while that worker holds no more than its share.
//!
//! Every worker has its own listener in the port's SO_REUSEPORT group
//! (listener.rs). Given nothing else, the kernel picks one by a hash of
//! the connection's addresses, so the connections of one client thread
//! spread over every worker, and each request that thread sends may wake
//! a worker on another CPU. With `SO_INCOMING_CPU` set on each listener
//! (worker *i*: the *i*-th CPU the process may use), the kernel hands a
//! connection to the listener of the CPU that processed its SYN (Linux
//! 6.2, "soreuseport: Fix socket selection for SO_INCOMING_CPU"; before
//! that the option is ignored and the hash decides). That CPU is where
//! the NIC queue's interrupt runs (RSS), or, over loopback, where the
//! client thread runs. A client thread's connections then share one
//! worker, which the scheduler keeps near it.
//!
//! Measured on this 2-CPU host, `-t 2` capped at half a core, one memtier
//! thread, 50 connections: 5.05-5.13 µs of server CPU a request against
//! 5.83-5.95 spread by hash, and the same as `-t 1` (4.84-5.17);
//! docs/PERFORMANCE.md "Connections steered to the client's CPU".
//!
//! The risk is balance: a NIC with a single queue, and no RPS, processes
//! every SYN on one CPU and would give one worker every connection. So a
//! worker steers only while it holds at most [`SURPLUS`] connections more
//! than the mean; past that it clears its listeners' CPU and new
//! connections go by the hash again, until it is back under half that
//! surplus. The check runs at each accept and close, and once a second
//! (the other workers' closes move the mean). It counts connections
//! accepted: a burst the kernel has queued on a listener before its worker
//! looks (up to `-b` of them) lands there whole.

use std::os::fd::RawFd;

/// Connections a worker may hold above the mean of all workers and still
/// take every connection arriving on its CPU. Enough for a benchmark's
/// or a few application servers' connections to stay together; small
/// against the thousands a large fleet opens, which the hash then spreads.
pub const SURPLUS: u64 = 64;

/// One worker's steering: the CPU its listeners name, and whether they
/// name it now.
pub struct Steer {
    /// The CPU (as `sched_getaffinity` numbers them) this worker's
    /// listeners carry in `SO_INCOMING_CPU` while steering.
    cpu: i32,
    /// This worker's listeners in SO_REUSEPORT groups (not its own port's,
    /// not the UNIX socket's).
    listeners: Vec<RawFd>,
    /// The listeners carry `cpu` now.
    on: bool,
}

/// `SO_INCOMING_CPU` of `fd` set to `cpu` (-1: none).
fn set_incoming_cpu(fd: RawFd, cpu: i32) -> std::io::Result<()> {
    // SAFETY: setsockopt on a socket this worker owns, with a live i32
    // of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            (&cpu as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Steer {
    /// Steering for `listeners` to `cpu`, set on at once.
    ///
    /// # Errors
    /// `setsockopt` failed (a kernel without `SO_INCOMING_CPU`, before
    /// 3.19): the caller goes on without steering.
    pub fn new(cpu: usize, listeners: Vec<RawFd>) -> std::io::Result<Steer> {
        let mut s = Steer {
            cpu: cpu as i32,
            listeners,
            on: false,
        };
        s.set(true)?;
        Ok(s)
    }

    fn set(&mut self, on: bool) -> std::io::Result<()> {
        let cpu = if on { self.cpu } else { -1 };
        for &fd in &self.listeners {
            set_incoming_cpu(fd, cpu)?;
        }
        self.on = on;
        Ok(())
    }

    /// Whether the listeners carry the CPU now.
    pub fn on(&self) -> bool {
        self.on
    }

    /// Steering on or off for a worker holding `mine` of `total`
    /// connections over `workers` workers (see the module notes). Returns
    /// whether it changed.
    pub fn balance(&mut self, mine: u64, total: u64, workers: usize) -> bool {
        let want = want_steering(self.on, mine, total, workers);
        // A failed setsockopt leaves the state as it was: the next check
        // tries again.
        want != self.on && self.set(want).is_ok()
    }
}

/// Whether a worker holding `mine` of `total` connections over `workers`
/// workers should steer, given that it does now (`on`): off above
/// [`SURPLUS`] over the mean, on again at or below half of it.
pub fn want_steering(on: bool, mine: u64, total: u64, workers: usize) -> bool {
    let mean = total / workers.max(1) as u64;
    let surplus = mine.saturating_sub(mean);
    if on {
        surplus <= SURPLUS
    } else {
        surplus <= SURPLUS / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_stops_past_the_surplus_and_resumes_below_half() {
        // Two workers, every connection on this one.
        assert!(want_steering(true, 50, 50, 2));
        assert!(want_steering(true, 128, 128, 2)); // 64 over a mean of 64
        assert!(!want_steering(true, 130, 130, 2));
        // Off: back on only at half the surplus.
        assert!(!want_steering(false, 110, 150, 2)); // 35 over 75: stays off
        assert!(want_steering(false, 100, 170, 2)); // 15 over 85
                                                    // A worker under the mean always steers.
        assert!(want_steering(false, 10, 1000, 16));
        assert!(want_steering(true, 0, 0, 4));
    }
}
