//! Pipelined multi-key calls: one request per member, every command quiet
//! (`q`) and tagged with an opaque (`O<index>`), ended by `mn`, so a member
//! answers only hits (mget) or failures (mset) and then `MN`. Members are
//! asked concurrently.

use std::time::Duration;

use futures_util::future::join_all;

use crate::client::Client;
use crate::conn::Expect;
use crate::error::Result;
use crate::expiry::exptime;
use crate::key::WireKey;
use crate::proto::request::{noop, Cmd};
use crate::proto::response::{Reply, Status};

/// Keys per request: bounds one request's size and lets other callers'
/// requests interleave on a shared connection.
const BATCH: usize = 512;

/// One request to one member: the input indexes of its keys and its bytes.
struct Batch {
    member: usize,
    idx: Vec<usize>,
    bytes: Vec<u8>,
}

impl Client {
    /// The values under `keys`, in the same order, None for a miss (a
    /// placeholder too, and a win handed out is given back, as for
    /// [`get`](Client::get)). One pipelined request per member
    /// (`mg <key> v c q O<i>` ... `mn`).
    pub async fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let batches = self.batches(
            keys.len(),
            |i| keys[i].as_ref(),
            |buf, i, k| {
                Cmd::new(buf, "mg", k)
                    .flag(b'v')
                    .flag(b'c')
                    .flag(b'q')
                    .num(b'O', i as u64)
                    .end();
            },
        )?;
        let mut out = vec![None; keys.len()];
        let mut settle = Vec::new();
        for (b, replies) in self.send_all(batches).await? {
            for r in replies {
                self.check(b.member, &r)?;
                let i = self.opaque_of(&b, &r)?;
                match r.status {
                    Status::Value => {
                        if r.meta.won || r.meta.win_taken {
                            settle.push((i, r));
                        } else {
                            out[i] = r.value;
                        }
                    }
                    Status::Miss => {}
                    other => {
                        return Err(
                            self.protocol(b.member, &format!("unexpected reply to mg: {other:?}"))
                        )
                    }
                }
            }
        }
        // Rare: tokens to give back or placeholders to hide.
        for (i, r) in settle {
            let v = r.value.unwrap_or_default();
            if self.settle(keys[i].as_ref(), v.len(), &r.meta).await {
                out[i] = Some(v);
            }
        }
        Ok(out)
    }

    /// Stores every `(key, value)` pair with the same `ttl`, one pipelined
    /// request per member (`ms <key> <len> T<ttl> O<i>` ... `mn`). On an
    /// error some pairs may be stored and others not; the error is the
    /// first failure met.
    ///
    /// Not quiet (`q`): memcached silences under `q` a store it refuses
    /// while reading its value (`SERVER_ERROR Out of memory during read`,
    /// values over 512 KiB when memory runs out), so only an `HD` for
    /// every key proves the stores (a breaker's quiet `mset` of 1 MB
    /// values returned Ok while 29 of 30 keys kept their old values).
    pub async fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: &[(K, V)],
        ttl: Duration,
    ) -> Result<()> {
        let t = exptime(ttl);
        let batches = self.batches(
            pairs.len(),
            |i| pairs[i].0.as_ref(),
            |buf, i, k| {
                let v = pairs[i].1.as_ref();
                Cmd::set(buf, k, v.len())
                    .num(b'T', t)
                    .num(b'O', i as u64)
                    .end_with(v);
            },
        )?;
        for (b, replies) in self.send_all(batches).await? {
            // An error line carries no opaque, so it fails the whole call.
            for r in &replies {
                self.check(b.member, r)?;
                self.opaque_of(&b, r)?;
                self.store_status(b.member, &r.status)?;
            }
            if replies.len() != b.idx.len() {
                return Err(self.protocol(b.member, "ms not answered for every key"));
            }
        }
        Ok(())
    }

    /// Routes every key and writes its command into its member's batch.
    fn batches<'k>(
        &self,
        n: usize,
        key: impl Fn(usize) -> &'k [u8],
        write: impl Fn(&mut Vec<u8>, usize, &WireKey),
    ) -> Result<Vec<Batch>> {
        let mut open: Vec<Option<Batch>> = (0..self.inner.pools.len()).map(|_| None).collect();
        let mut done = Vec::new();
        for i in 0..n {
            let k = key(i);
            let wk = WireKey::new(k)?;
            let m = self.route(k)?;
            let b = open[m].get_or_insert_with(|| Batch {
                member: m,
                idx: Vec::new(),
                bytes: Vec::new(),
            });
            write(&mut b.bytes, i, &wk);
            b.idx.push(i);
            if b.idx.len() == BATCH {
                done.push(open[m].take().unwrap());
            }
        }
        done.extend(open.into_iter().flatten());
        for b in &mut done {
            noop(&mut b.bytes);
        }
        Ok(done)
    }

    async fn send_all(&self, batches: Vec<Batch>) -> Result<Vec<(Batch, Vec<Reply>)>> {
        let calls = batches.into_iter().map(|mut b| async move {
            let bytes = std::mem::take(&mut b.bytes);
            let expect = Expect::UntilNoop(b.idx.len());
            let r = self.call(b.member, bytes, expect).await;
            r.map(|replies| (b, replies))
        });
        join_all(calls).await.into_iter().collect()
    }

    /// The input index a reply's opaque names, checked against its batch.
    fn opaque_of(&self, b: &Batch, r: &Reply) -> Result<usize> {
        r.meta
            .opaque
            .map(|o| o as usize)
            .filter(|o| b.idx.binary_search(o).is_ok())
            .ok_or_else(|| {
                self.protocol(
                    b.member,
                    &format!("reply without a known opaque: {:?}", r.status),
                )
            })
    }
}
