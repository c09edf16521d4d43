//! Connection steering (`-o steer_connections`, off by default): a new
//! connection goes to the worker of the CPU its packets arrive on, while
//! that worker holds no more than its share.
//!
//! Every worker has its own listener in the port's SO_REUSEPORT group
//! (listener.rs). Given nothing else, the kernel picks one by a hash of
//! the connection's addresses, so the connections of one client thread
//! spread over every worker, and each request that thread sends may wake
//! a worker on another CPU. With `SO_INCOMING_CPU` set on each listener
//! (worker *i*: the *i*-th CPU the process may use), the kernel hands a
//! connection to the listener of the CPU that processed its SYN (Linux
//! 6.2 and the stable series it was backported to, "soreuseport: Fix
//! socket selection for SO_INCOMING_CPU"; before that, and for a SYN on a
//! CPU no listener names, the hash decides). That CPU is where the NIC
//! queue's interrupt runs (RSS), or, over loopback, where the client
//! thread runs: over loopback, a client thread's connections share one
//! worker.
//!
//! Measured on this 2-CPU host, `-t 2` capped at half a core, one memtier
//! thread, 50 connections: 1.20x memcached's requests a second against
//! 1.03x by the hash, 4.9 µs of server CPU a request against 5.8
//! (docs/PERFORMANCE.md "Connections steered to the CPU they arrive on").
//!
//! Why off by default: the gain is concentration, and the server cannot
//! see where SYNs are processed. A NIC with fewer queues than workers (a
//! single-queue virtio NIC, say) processes every SYN on few CPUs, and a
//! pool opened by one thread and used by many lands on one worker: either
//! caps that load at one worker's CPU where the hash would spread it.
//! Dragonfly's `conn_use_incoming_cpu` is off by default for the same
//! reason. Turn it on where each worker's CPU gets its share of flows
//! (RSS over as many queues as workers, with interrupts spread), or where
//! local clients run one thread per CPU.
//!
//! The balance guard: a worker steers only while it holds at most
//! [`SURPLUS`] connections more than the mean; past that it clears its
//! listeners' CPU and new connections go by the hash again, until it is
//! back under half that surplus. The check runs at each accept and close,
//! and once a second (the other workers' closes move the mean). It counts
//! connections accepted: a burst the kernel has queued on a listener
//! before its worker looks (up to `-b` of them) lands there whole.

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
    /// The kernel refused the option once: steering is over.
    refused: bool,
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
    /// Steering for `listeners` to `cpu`, off until the first
    /// [`Steer::balance`]. The listeners must stay open as long as this
    /// lives (the worker closes them when it is dropped, with this).
    pub fn new(cpu: usize, listeners: Vec<RawFd>) -> Steer {
        Steer {
            cpu: cpu as i32,
            listeners,
            on: false,
            refused: false,
        }
    }

    /// Every listener naming the CPU (`on`) or none. On a failure (a
    /// kernel before 4.4 refuses the option; a sandbox may) every listener
    /// is cleared again, so none steers without the guard watching it.
    fn set(&mut self, on: bool) -> std::io::Result<()> {
        let cpu = if on { self.cpu } else { -1 };
        for &fd in &self.listeners {
            if let Err(e) = set_incoming_cpu(fd, cpu) {
                for &fd in &self.listeners {
                    let _ = set_incoming_cpu(fd, -1);
                }
                self.on = false;
                return Err(e);
            }
        }
        self.on = on;
        Ok(())
    }

    /// Steering on or off for a worker holding `mine` of `total`
    /// connections over `workers` workers (see the module notes). Returns
    /// whether it changed.
    pub fn balance(&mut self, mine: u64, total: u64, workers: usize) -> bool {
        if self.refused {
            return false;
        }
        let want = want_steering(self.on, mine, total, workers);
        if want == self.on {
            return false;
        }
        match self.set(want) {
            Ok(()) => true,
            Err(e) => {
                // Every listener is cleared (`set`): the hash decides from
                // here on, as with the option off.
                tracing::warn!("connections no longer steered to CPU {}: {e}", self.cpu);
                self.refused = true;
                false
            }
        }
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
        // 35 over 75: stays off.
        assert!(!want_steering(false, 110, 150, 2));
        // The edges: 32 over resumes, 33 does not.
        assert!(want_steering(false, 82, 100, 2));
        assert!(!want_steering(false, 83, 100, 2));
        // 15 over 85.
        assert!(want_steering(false, 100, 170, 2));
        // A worker under the mean always steers.
        assert!(want_steering(false, 10, 1000, 16));
        assert!(want_steering(true, 0, 0, 4));
    }
}
