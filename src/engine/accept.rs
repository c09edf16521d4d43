//! Accepting connections: the connection limit (`-c`), and the connection
//! table whose slots and generations make a `ConnId`.
use super::conn::Conn;
use super::user_data::GEN_MASK;
use super::worker::Worker;
use io_uring::cqueue;
use std::sync::atomic::Ordering::SeqCst;

impl Worker {
    pub(super) fn on_accept(&mut self, li: u32, res: i32, flags: u32) {
        if !cqueue::more(flags) && !self.stopping {
            let fd = self.listeners[li as usize];
            self.arm_accept(li, fd);
        }
        if res < 0 {
            if res == -libc::EMFILE || res == -libc::ENFILE {
                self.shard.c.listen_disabled_num += 1;
            }
            return;
        }
        let fd = res;
        if self.stopping {
            // SAFETY: closing a socket we were just handed.
            unsafe { libc::close(fd) };
            return;
        }
        let total = self.shared.conns.fetch_add(1, SeqCst);
        if total >= self.shared.settings.max_conns {
            self.shared.conns.fetch_sub(1, SeqCst);
            self.shard.c.rejected_connections += 1;
            let msg = b"ERROR Too many open connections\r\n";
            // SAFETY: best-effort write and close of a socket we own.
            unsafe {
                libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len());
                libc::close(fd);
            }
            return;
        }
        self.shard.c.curr_connections += 1;
        self.shard.c.total_connections += 1;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.gens.push(0);
                (self.conns.len() - 1) as u32
            }
        };
        self.gens[idx as usize] = self.gens[idx as usize].wrapping_add(1) & GEN_MASK;
        let mut conn = Conn::new(fd, self.gens[idx as usize]);
        conn.last_active = self.last_sec;
        self.conns[idx as usize] = Some(conn);
        self.arm_recv(idx);
    }

    pub(super) fn conn_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(idx as usize)?
            .as_mut()
            .filter(|c| c.gen & GEN_MASK == gen)
    }

    pub(super) fn conn(&mut self, idx: u32) -> &mut Conn {
        self.conns[idx as usize].as_mut().expect("live connection")
    }
}
