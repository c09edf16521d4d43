//! Before a batch of received requests runs, start loading what their
//! lookups will touch (see `store::prefetch`): under pipelining or many
//! busy connections the index and item misses then overlap instead of
//! being paid one request at a time.

use super::route::owner;
use crate::protocol::{binary, text, Parse, Proto};
use crate::store::foreign::ShardView;
use crate::store::Store;
use std::sync::OnceLock;

/// At most this many keys per batch: enough to cover the fill buffers'
/// worth of parallel misses, small enough that lines prefetched first are
/// still in L1 when their request runs.
pub const PREFETCH_MAX: usize = 32;

/// One key of the batch: its hash (the store's, the same in every
/// shard) and the worker whose shard holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub hash: u64,
    pub owner: usize,
}

/// Where the batch's keys live and who owns them.
pub struct Prefetcher<'a> {
    pub store: &'a Store,
    pub route: &'a ahash::RandomState,
    pub shards: usize,
    pub me: usize,
    pub item_max: usize,
    /// The other shards' views, where reads of their keys are served here
    /// (foreign reads): their lookups are prefetched too. None: only this
    /// shard's keys are.
    pub views: Option<&'a [OnceLock<ShardView>]>,
}

impl Prefetcher<'_> {
    /// Stage one for the whole requests at the start of `data`: prefetches
    /// the index bucket of each key this shard owns, or another shard owns
    /// and lends its view for, recording the key. Stops at the first
    /// incomplete request, or when `hashes` is full.
    pub fn buckets(&self, proto: Proto, data: &[u8], hashes: &mut Vec<Key>) {
        let mut pos = 0;
        while pos < data.len() && hashes.len() < PREFETCH_MAX {
            let buf = &data[pos..];
            let used = match proto {
                Proto::Text => match text::parse(buf, self.item_max) {
                    Parse::Done(req, used) => {
                        text_keys(&req, |k| self.bucket(k, hashes));
                        used
                    }
                    _ => return,
                },
                Proto::Binary => match binary::parse(buf, self.item_max) {
                    Parse::Done(Ok(req), used) if !req.key.is_empty() => {
                        self.bucket(req.key, hashes);
                        used
                    }
                    Parse::Done(_, used) => used,
                    _ => return,
                },
            };
            pos += used;
        }
    }

    fn bucket(&self, key: &[u8], hashes: &mut Vec<Key>) {
        if hashes.len() >= PREFETCH_MAX {
            return;
        }
        let to = match self.shards {
            1 => self.me,
            n => owner(self.route, n, key),
        };
        if to == self.me {
            let hash = self.store.prefetch_bucket(key);
            hashes.push(Key { hash, owner: to });
        } else if let Some(view) = self.view(to) {
            // A write to another shard's key hops or borrows, and its
            // lookup then runs on these same buckets: worth the load too.
            let hash = self.store.hash(key);
            view.prefetch_bucket(hash);
            hashes.push(Key { hash, owner: to });
        }
    }

    fn view(&self, to: usize) -> Option<&ShardView> {
        self.views.and_then(|v| v.get(to)).and_then(OnceLock::get)
    }

    /// Stage two, after every bucket was asked for: the candidate items.
    pub fn items(&self, hashes: &[Key]) {
        for k in hashes {
            if k.owner == self.me {
                self.store.prefetch_items(k.hash);
            } else if let Some(view) = self.view(k.owner) {
                view.prefetch_items(k.hash);
            }
        }
    }
}

/// The keys a text request looks up (meta requests are left out: their
/// keys may need decoding first).
fn text_keys(req: &text::Request, mut f: impl FnMut(&[u8])) {
    match *req {
        text::Request::Get { keys, .. } => text::tokens(keys).for_each(f),
        text::Request::Store(ref s) => f(s.key),
        text::Request::Delete { key, .. }
        | text::Request::Delta { key, .. }
        | text::Request::Touch { key, .. } => f(key),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::binary::{op, REQ_MAGIC};

    fn store() -> Store {
        crate::store::test_store(8 << 20, 1_700_000_000)
    }

    /// Worker `me` of `shards`, over the store `s`.
    fn prefetcher<'a>(
        s: &'a Store,
        route: &'a ahash::RandomState,
        shards: usize,
        me: usize,
    ) -> Prefetcher<'a> {
        Prefetcher {
            store: s,
            route,
            shards,
            me,
            item_max: 1 << 20,
            views: None,
        }
    }

    /// The keys `keys`, all owned by `owner`.
    fn hashes_of(store: &Store, keys: &[&str], owner: usize) -> Vec<Key> {
        keys.iter()
            .map(|k| Key {
                hash: store.hash(k.as_bytes()),
                owner,
            })
            .collect()
    }

    #[test]
    fn text_batch_yields_every_key_of_whole_requests_only() {
        let s = store();
        let route = crate::engine::route::route_hasher();
        let p = prefetcher(&s, &route, 1, 0);
        let mut got = Vec::new();
        let input = b"get a\r\nset b 0 0 1\r\nx\r\ngets c d\r\nversion\r\nincr e 1\r\nget f";
        p.buckets(Proto::Text, input, &mut got);
        assert_eq!(got, hashes_of(&s, &["a", "b", "c", "d", "e"], 0));
    }

    #[test]
    fn keys_of_other_shards_are_left_out_and_the_batch_is_bounded() {
        let s = store();
        let route = crate::engine::route::route_hasher();
        let p = prefetcher(&s, &route, 2, 1);
        let keys: Vec<String> = (0..100).map(|i| format!("key{i}")).collect();
        let input: String = keys.iter().map(|k| format!("get {k}\r\n")).collect();
        let mut got = Vec::new();
        p.buckets(Proto::Text, input.as_bytes(), &mut got);
        let mine: Vec<&str> = keys
            .iter()
            .map(|k| k.as_str())
            .filter(|k| owner(&route, 2, k.as_bytes()) == 1)
            .take(PREFETCH_MAX)
            .collect();
        assert_eq!(mine.len(), PREFETCH_MAX, "enough keys to fill the batch");
        assert_eq!(got, hashes_of(&s, &mine, 1));
    }

    #[test]
    fn keys_of_shards_whose_views_are_shared_are_kept_with_their_owner() {
        let mut stores = [store(), store()];
        let foreign = crate::engine::ForeignViews::new(2);
        for (id, s) in stores.iter_mut().enumerate() {
            foreign.share(id, s);
        }
        let route = crate::engine::route::route_hasher();
        let keys: Vec<String> = (0..16).map(|i| format!("key{i}")).collect();
        for k in &keys {
            let o = owner(&route, 2, k.as_bytes());
            let a = crate::store::ops::SetArgs::new(
                crate::store::ops::SetMode::Set,
                k.as_bytes(),
                b"v",
                0,
                0,
            );
            stores[o].set(&a);
        }
        let mut p = prefetcher(&stores[1], &route, 2, 1);
        p.views = Some(&foreign.views);
        let input: String = keys.iter().map(|k| format!("get {k}\r\n")).collect();
        let mut got = Vec::new();
        p.buckets(Proto::Text, input.as_bytes(), &mut got);
        let want: Vec<Key> = keys
            .iter()
            .map(|k| Key {
                hash: stores[1].hash(k.as_bytes()),
                owner: owner(&route, 2, k.as_bytes()),
            })
            .collect();
        assert_eq!(got, want);
        assert!(want.iter().any(|k| k.owner == 0) && want.iter().any(|k| k.owner == 1));
        // Stage two reads the other shard's slots; it must find its way
        // there without touching what a lookup sees.
        p.items(&got);
        for k in &keys {
            let o = owner(&route, 2, k.as_bytes());
            assert!(stores[o].get(k.as_bytes()).is_some(), "{k} still there");
        }
    }

    #[test]
    fn binary_batch_yields_keys() {
        let s = store();
        let route = crate::engine::route::route_hasher();
        let p = prefetcher(&s, &route, 1, 0);
        let mut input = Vec::new();
        for (opcode, key) in [(op::GET, "k1"), (op::NOOP, ""), (op::GETK, "k2")] {
            input.extend_from_slice(&[REQ_MAGIC, opcode]);
            input.extend_from_slice(&(key.len() as u16).to_be_bytes());
            input.extend_from_slice(&[0; 4]);
            input.extend_from_slice(&(key.len() as u32).to_be_bytes());
            input.extend_from_slice(&[0; 12]);
            input.extend_from_slice(key.as_bytes());
        }
        let mut got = Vec::new();
        p.buckets(Proto::Binary, &input, &mut got);
        assert_eq!(got, hashes_of(&s, &["k1", "k2"], 0));
    }
}
