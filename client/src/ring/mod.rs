//! Key placement over many servers: ketama (consistent hashing) as
//! libmemcached and twemproxy compute it, or modula.
//!
//! The continuum follows libmemcached's `update_continuum` (hosts.cc) and
//! `dispatch_host` (hash.cc), which twemproxy's `ketama_update` and
//! `ketama_dispatch` copy: the same server names and weights give the same
//! key placement in a Rust service, a PHP one (php-memcached), a Python
//! one (pylibmc) and behind twemproxy.

mod hash;
#[cfg(test)]
mod vectors;

pub use hash::KeyHash;

use crate::node::{Member, Node};

/// How keys are spread over the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Distribution {
    /// Weighted ketama: 160 points per member scaled by its share of the
    /// total weight, four per MD5 of `name-i`. libmemcached's
    /// `KETAMA_WEIGHTED` (pylibmc `"ketama_weighted": True`, php-memcached
    /// `OPT_LIBKETAMA_COMPATIBLE`) and twemproxy's `distribution: ketama`.
    Ketama,
    /// libmemcached's plain `KETAMA` behaviour, as pylibmc's
    /// `"ketama": True` sets it after adding the servers: 100 points per
    /// member whatever its weight, each the key hash of `name-i`.
    /// (libmemcached turns a ring weighted when a server with weight above
    /// 1 is added after the behaviour; use [`Distribution::Ketama`] for
    /// that.)
    KetamaUnweighted,
    /// `hash % members`, libmemcached's default (`MODULA`).
    Modula,
}

const POINTS_PER_SERVER: u32 = 100;
const POINTS_PER_SERVER_KETAMA: u32 = 160;

/// A ring: the members in order, and the continuum built over those that
/// are live.
#[derive(Debug, Clone)]
pub struct Ring {
    members: Vec<Member>,
    dist: Distribution,
    hash: KeyHash,
    weighted: bool,
    /// (point, member index), sorted by point then index.
    continuum: Vec<(u32, u32)>,
    live: Vec<bool>,
}

impl Ring {
    /// A ring over `nodes` (each expanded into its per-worker ports) with
    /// every member live.
    pub fn new(nodes: &[Node], dist: Distribution, hash: KeyHash) -> Ring {
        let members: Vec<Member> = nodes.iter().flat_map(Node::members).collect();
        let weighted = match dist {
            Distribution::Ketama => true,
            Distribution::KetamaUnweighted | Distribution::Modula => false,
        };
        let live = vec![true; members.len()];
        let mut ring = Ring {
            members,
            dist,
            hash,
            weighted,
            continuum: Vec::new(),
            live,
        };
        ring.rebuild();
        ring
    }

    /// The number of members (per-worker ports counted one by one).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True if the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The `host:port` of member `i`.
    pub fn addr(&self, i: usize) -> &str {
        &self.members[i].addr
    }

    /// Member `i`.
    pub(crate) fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// The member that owns `key` among the live ones, or None if none is
    /// live. Same answer as libmemcached's `memcached_generate_hash` for
    /// the same server list.
    pub fn member_for(&self, key: &[u8]) -> Option<usize> {
        let live_count = self.live.iter().filter(|&&l| l).count();
        if live_count == 0 {
            return None;
        }
        // libmemcached skips hashing when there is one server.
        if self.members.len() == 1 {
            return Some(0);
        }
        let h = self.hash.hash(key);
        match self.dist {
            Distribution::Modula => {
                // libmemcached's modula knows no ejection; a down member's
                // keys go to the next live one.
                let n = self.members.len();
                let start = (h as usize) % n;
                (0..n).map(|d| (start + d) % n).find(|&i| self.live[i])
            }
            _ => {
                let i = self.continuum.partition_point(|&(v, _)| v < h);
                let (_, m) = self.continuum.get(i).or(self.continuum.first())?;
                Some(*m as usize)
            }
        }
    }

    /// Marks member `i` live or not and rebuilds the continuum over the
    /// live ones, as libmemcached and twemproxy do when they eject a host.
    /// Returns true if that changed anything.
    pub fn set_live(&mut self, i: usize, live: bool) -> bool {
        if self.live[i] == live {
            return false;
        }
        self.live[i] = live;
        self.rebuild();
        true
    }

    /// True if member `i` is live.
    pub fn is_live(&self, i: usize) -> bool {
        self.live[i]
    }

    fn rebuild(&mut self) {
        self.continuum.clear();
        if self.dist == Distribution::Modula {
            return;
        }
        let live: Vec<usize> = (0..self.members.len()).filter(|&i| self.live[i]).collect();
        let total: u64 = live
            .iter()
            .map(|&i| u64::from(self.members[i].weight))
            .sum();
        for &i in &live {
            let m = &self.members[i];
            let (per_server, per_hash) = if self.weighted {
                // libmemcached computes this in float, step by step.
                let pct = m.weight as f32 / total as f32;
                let v = pct * POINTS_PER_SERVER_KETAMA as f32 / 4.0 * live.len() as f32
                    + 0.000_000_000_1_f32;
                ((v.floor() * 4.0) as u32, 4)
            } else {
                (POINTS_PER_SERVER, 1)
            };
            for p in 0..per_server / per_hash {
                let name = format!("{}-{p}", m.ring_name);
                if self.weighted {
                    for x in 0..4 {
                        self.continuum
                            .push((hash::md5_word(name.as_bytes(), x), i as u32));
                    }
                } else {
                    self.continuum
                        .push((self.hash.hash(name.as_bytes()), i as u32));
                }
            }
        }
        self.continuum.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::vectors::*;
    use super::*;

    #[test]
    fn hashes_match_libhashkit_vectors() {
        for (h, outs) in HASH_OUTPUTS {
            for (inp, want) in HASH_INPUTS.iter().zip(outs) {
                assert_eq!(h.hash(inp.as_bytes()), want, "{h:?} {inp:?}");
            }
        }
    }

    fn vector_ring(dist: Distribution) -> Ring {
        let nodes: Vec<Node> = "10.0.1.1:11211 600,10.0.1.2:11211 300,10.0.1.3:11211 200,10.0.1.4:11211 350,10.0.1.5:11211 1000,10.0.1.6:11211 800,10.0.1.7:11211 950,10.0.1.8:11211 100"
            .split(',')
            .map(|s| s.parse().unwrap())
            .collect();
        Ring::new(&nodes, dist, KeyHash::Md5)
    }

    #[test]
    fn ketama_places_keys_as_libmemcached_vectors() {
        {
            let ring = vector_ring(Distribution::Ketama);
            for (key, h1, h2, server) in KETAMA_CASES {
                assert_eq!(KeyHash::Md5.hash(key.as_bytes()), h1);
                let i = ring.member_for(key.as_bytes()).unwrap();
                assert_eq!(ring.addr(i), format!("{server}:11211"), "{key:?}");
                let p = ring.continuum.partition_point(|&(v, _)| v < h1);
                assert_eq!(ring.continuum[p].0, h2, "{key:?}");
            }
            // libmemcached's test: this key hashes past the last point and
            // wraps to the first.
            let wrap = ring.member_for(b"VDEAAAAA").unwrap();
            assert_eq!(wrap as u32, ring.continuum[0].1);
            assert!(KeyHash::Md5.hash(b"VDEAAAAA") > ring.continuum.last().unwrap().0);
        }
    }

    #[test]
    fn ejected_member_gets_no_keys_and_returns() {
        let mut ring = vector_ring(Distribution::Ketama);
        let before: Vec<_> = KETAMA_CASES
            .iter()
            .map(|c| ring.member_for(c.0.as_bytes()).unwrap())
            .collect();
        assert!(ring.set_live(2, false));
        for c in KETAMA_CASES {
            assert_ne!(ring.member_for(c.0.as_bytes()).unwrap(), 2);
        }
        assert!(ring.set_live(2, true));
        for (c, b) in KETAMA_CASES.iter().zip(&before) {
            assert_eq!(ring.member_for(c.0.as_bytes()).unwrap(), *b);
        }
        for i in 0..ring.len() {
            ring.set_live(i, false);
        }
        assert_eq!(ring.member_for(b"k"), None);
    }

    #[test]
    fn modula_and_single_member() {
        let nodes = [Node::new("a", 1), Node::new("b", 2), Node::new("c", 3)];
        let mut ring = Ring::new(&nodes, Distribution::Modula, KeyHash::OneAtATime);
        let h = KeyHash::OneAtATime.hash(b"apple") as usize;
        assert_eq!(ring.member_for(b"apple"), Some(h % 3));
        ring.set_live(h % 3, false);
        assert_eq!(ring.member_for(b"apple"), Some((h + 1) % 3));
        let one = Ring::new(&nodes[..1], Distribution::Ketama, KeyHash::Md5);
        assert_eq!(one.member_for(b"anything"), Some(0));
    }
}
