//! Servers as a client lists them.

use std::fmt;
use std::str::FromStr;

use crate::auth::Credentials;

/// The port libmemcached and twemproxy leave out of a server's ketama
/// point names (`MEMCACHED_DEFAULT_PORT`, `CONF_DEFAULT_KETAMA_PORT`).
pub const DEFAULT_PORT: u16 = 11211;

/// One server of a ring: an address, a weight, and optionally several
/// per-worker ports.
///
/// A node with `worker_ports(n)` stands for `n` ring members, ports
/// `port .. port + n - 1`, each with the node's weight: what a
/// libmemcached, pylibmc or twemproxy ring lists when a server runs one
/// listener per worker thread, so that every key goes straight to the
/// worker that owns it. corecache's `-o worker_ports[=BASE]` has worker
/// *i* listen on `BASE + i`, `BASE` defaulting to the main port + 1: give
/// the first worker port here, not the main one. A list that would pass
/// port 65535 ends there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    host: String,
    port: u16,
    weight: u32,
    worker_ports: u16,
    name: Option<String>,
    credentials: Option<Credentials>,
}

impl Node {
    /// A node at `host:port` with weight 1 and one port.
    pub fn new(host: impl Into<String>, port: u16) -> Node {
        Node {
            host: host.into(),
            port,
            weight: 1,
            worker_ports: 1,
            name: None,
            credentials: None,
        }
    }

    /// Sets the weight (1 or more; a weighted ketama ring gives a node
    /// points in proportion to it). A weight of 0 is taken as 1.
    pub fn weight(mut self, weight: u32) -> Node {
        self.weight = weight.max(1);
        self
    }

    /// Lists `n` per-worker ports starting at this node's port, each as its
    /// own ring member (see the type's docs). `n` of 0 is taken as 1.
    pub fn worker_ports(mut self, n: u16) -> Node {
        self.worker_ports = n.max(1);
        self
    }

    /// Hashes the node under `name` instead of its address, as twemproxy's
    /// `host:port:weight name` server lines do. With several worker ports,
    /// member `i` is named `name-w<i>` (a convention of this crate).
    pub fn name(mut self, name: impl Into<String>) -> Node {
        self.name = Some(name.into());
        self
    }

    /// Logs this node's connections in with `credentials` (memcached's
    /// ASCII authentication, `-Y`), instead of the client-wide ones of
    /// [`ClientBuilder::credentials`](crate::ClientBuilder::credentials).
    pub fn credentials(mut self, credentials: Credentials) -> Node {
        self.credentials = Some(credentials);
        self
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The (first) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The weight.
    pub fn get_weight(&self) -> u32 {
        self.weight
    }

    /// The ring members this node stands for.
    pub(crate) fn members(&self) -> Vec<Member> {
        // Ports past 65535 do not exist: the list ends there (it used to
        // wrap round to port 0).
        (0..self.worker_ports)
            .map_while(|i| self.port.checked_add(i).map(|port| (i, port)))
            .map(|(i, port)| {
                let ring_name = match (&self.name, self.worker_ports) {
                    (Some(n), 1) => n.clone(),
                    (Some(n), _) => format!("{n}-w{i}"),
                    // libmemcached hosts.cc update_continuum; twemproxy
                    // conf_add_server does the same for compatibility.
                    (None, _) if port == DEFAULT_PORT => self.host.clone(),
                    (None, _) => format!("{}:{port}", self.host),
                };
                Member {
                    addr: format!("{}:{port}", self.host),
                    host: self.host.clone(),
                    ring_name,
                    weight: self.weight,
                    credentials: self.credentials.clone(),
                }
            })
            .collect()
    }
}

/// One ring member: one address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// `host:port` to connect to.
    pub addr: String,
    /// The host alone (the TLS server name by default).
    pub host: String,
    /// The name its ketama points are hashed from.
    pub ring_name: String,
    /// Its weight.
    pub weight: u32,
    /// Its node's own credentials, if any.
    pub credentials: Option<Credentials>,
}

/// Why a node string did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNodeError(String);

impl fmt::Display for ParseNodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad node {:?}: expected host[:port[:weight]] or \"host:port weight\"",
            self.0
        )
    }
}

impl std::error::Error for ParseNodeError {}

impl FromStr for Node {
    type Err = ParseNodeError;

    /// Parses `host`, `host:port`, `host:port:weight` (twemproxy) or
    /// `host:port weight` (libmemcached's `memcached_servers_parse`); the
    /// port defaults to 11211.
    fn from_str(s: &str) -> Result<Node, ParseNodeError> {
        let err = || ParseNodeError(s.to_string());
        let s = s.trim();
        let (addr, weight) = match s.split_once(char::is_whitespace) {
            Some((a, w)) => (a, Some(w.trim())),
            None => (s, None),
        };
        let mut parts = addr.split(':');
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(err)?;
        let port = match parts.next() {
            Some(p) => p.parse().map_err(|_| err())?,
            None => DEFAULT_PORT,
        };
        let weight = match (parts.next(), weight) {
            (Some(_), Some(_)) => return Err(err()),
            (Some(w), None) | (None, Some(w)) => w.parse().map_err(|_| err())?,
            (None, None) => 1,
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Node::new(host, port).weight(weight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        let n: Node = "10.0.1.1:11211 600".parse().unwrap();
        assert_eq!(
            (n.host(), n.port(), n.get_weight()),
            ("10.0.1.1", 11211, 600)
        );
        let n: Node = "cache-a:11300:3".parse().unwrap();
        assert_eq!((n.host(), n.port(), n.get_weight()), ("cache-a", 11300, 3));
        let n: Node = "cache-b".parse().unwrap();
        assert_eq!((n.port(), n.get_weight()), (11211, 1));
        for bad in ["", ":1", "a:b", "a:1:2 3", "a:1:2:3", "a:1 x"] {
            assert!(bad.parse::<Node>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ring_names_leave_out_the_default_port() {
        let m = Node::new("h", 11211).members();
        assert_eq!(m[0].ring_name, "h");
        let m = Node::new("h", 11300).members();
        assert_eq!(m[0].ring_name, "h:11300");
        let m = Node::new("h", 11300).name("alpha").members();
        assert_eq!(
            (m[0].ring_name.as_str(), m[0].addr.as_str()),
            ("alpha", "h:11300")
        );
    }

    #[test]
    fn worker_ports_stop_at_65535() {
        let m = Node::new("h", 65535).worker_ports(2).members();
        let addrs: Vec<_> = m.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(addrs, ["h:65535"]);
    }

    #[test]
    fn worker_ports_expand_to_members() {
        let m = Node::new("h", 11210).weight(2).worker_ports(3).members();
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.addr.as_str(), m.ring_name.as_str(), m.weight))
            .collect();
        assert_eq!(
            got,
            [
                ("h:11210", "h:11210", 2),
                ("h:11211", "h", 2),
                ("h:11212", "h:11212", 2)
            ]
        );
    }
}
