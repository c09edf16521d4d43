//! Text multi-key gets (`get`/`gets`/`gat`/`gats` with many keys), run
//! key by key and resumable, so one request costs O(keys) and at most the
//! connection's memory cap at a time.
//!
//! Keys this worker owns run at once into the connection's replies; the
//! others are batched per owning worker (`GET_BATCH` keys a message), each
//! key holding its reply's slot (`conn.rs`). The run stops, keeping a
//! `GetCursor` at the next key, when the connection reaches its cap or
//! after `TURN_KEYS` keys in one loop turn (so other connections of this
//! worker are served meanwhile); the request stays at the front of the
//! connection's input until its last key has run and `END` is written.
//!
//! memcached runs the keys of a get in order and answers them in order;
//! so does this, whichever worker owns each key.

use super::conn::GetCursor;
use super::hop::{Job, Msg};
use super::user_data::ConnId;
use super::worker::Worker;
use crate::exec;

/// Keys per message to one owning worker.
pub const GET_BATCH: usize = 64;
/// Keys one multi-get runs per loop turn before letting others go first.
pub const TURN_KEYS: usize = 4096;

/// Keys of a multi-get bound for one worker, not yet sent.
#[derive(Default)]
pub struct GetBatch {
    /// The keys, space separated.
    pub keys: Vec<u8>,
    /// Each key's reply slot.
    pub seqs: Vec<u64>,
}

/// How far a multi-get run went.
pub enum GetRun {
    /// Every key ran and `END` is written.
    Done,
    /// Stopped before a key; go on from the cursor.
    Suspended(GetCursor),
}

impl Worker {
    /// Runs the keys of the multi-get `req` (its bytes from its first) from
    /// `cur.next` on, for connection `idx`, until they are done or the
    /// connection must wait.
    pub(super) fn run_get(&mut self, idx: u32, req: &[u8], mut cur: GetCursor) -> GetRun {
        let pinned = self.conns[idx as usize].as_ref().is_some_and(|c| c.pinned);
        let cap = self.conn_cap();
        let mut budget = TURN_KEYS;
        let end = cur.end.min(req.len());
        let mut pos = cur.next;
        loop {
            while pos < end && req[pos] == b' ' {
                pos += 1;
            }
            if pos >= end {
                break;
            }
            let Some(c) = self.conns[idx as usize].as_ref() else {
                return GetRun::Done;
            };
            if budget == 0 || c.over_cap(cap) || c.closing {
                self.send_batches(idx, cur);
                cur.next = pos;
                if budget == 0 {
                    self.yielded.push(idx);
                }
                return GetRun::Suspended(cur);
            }
            budget -= 1;
            let start = pos;
            while pos < end && req[pos] != b' ' {
                pos += 1;
            }
            let key = &req[start..pos];
            let to = self.owner_for(pinned, key);
            let (cas, touch) = (cur.cas, cur.touch);
            if to == self.id {
                self.exec_with(idx, |sh, out| exec::text::get_key(sh, key, cas, touch, out));
            } else if touch.is_none()
                && self.foreign_get(idx, to, key, super::foreign_read::Reply::Text { cas })
            {
                // Answered from the owner's memory, in order.
            } else {
                let seq = self.conn(idx).wait_slot();
                let b = &mut self.batches[to];
                b.keys.extend_from_slice(key);
                b.keys.push(b' ');
                b.seqs.push(seq);
                if b.seqs.len() >= GET_BATCH {
                    self.send_batch(idx, to, cur);
                }
            }
        }
        self.send_batches(idx, cur);
        self.conn(idx).reply_buf().extend_from_slice(b"END\r\n");
        GetRun::Done
    }

    fn send_batches(&mut self, idx: u32, cur: GetCursor) {
        for to in 0..self.batches.len() {
            if !self.batches[to].seqs.is_empty() {
                self.send_batch(idx, to, cur);
            }
        }
    }

    fn send_batch(&mut self, idx: u32, to: usize, cur: GetCursor) {
        let b = std::mem::take(&mut self.batches[to]);
        let conn = ConnId {
            idx,
            gen: self.conn(idx).gen,
        }
        .token();
        self.shard.c.cross_shard_sent += 1;
        let job = Job::GetKeys {
            keys: b.keys,
            seqs: b.seqs,
            cas: cur.cas,
            touch: cur.touch,
        };
        let m = Msg::Job {
            from: self.id,
            conn,
            seq: 0,
            cfd: self.conn(idx).fd,
            job,
        };
        self.send_msg(to, m);
    }
}
