//! TLS (feature `tls`) against the real corecache binary started with
//! `-Z` (and Debian's memcached `-Z` for the round trip and an untrusted
//! server): certificates made here with rcgen (a CA, another CA, server
//! certificates, a client certificate), every pooled connection over TLS,
//! refusals typed, mutual TLS, and TLS with ASCII authentication.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Kind, Probe, Server};
use corecache_client::{Client, Credentials, Error, FailurePolicy, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

const MIN: Duration = Duration::from_secs(60);

/// A CA: its certificate (PEM, also written to `ca.pem`) and what signs
/// with it.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pem_path: PathBuf,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    let pem_path = common::temp_file("ca.pem", cert.pem().as_bytes());
    Ca {
        cert,
        key,
        pem_path,
    }
}

/// A certificate signed by `ca` for `sans` with `usage`; returns the
/// paths of its PEM chain and key.
fn leaf(ca: &Ca, cn: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let chain = common::temp_file("cert.pem", cert.pem().as_bytes());
    let key = common::temp_file("key.pem", key.serialize_pem().as_bytes());
    (chain, key)
}

fn server_cert(ca: &Ca, sans: &[&str]) -> (PathBuf, PathBuf) {
    leaf(
        ca,
        "corecache test server",
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
    )
}

/// corecache with `-Z` on its port (a plaintext `notls:` listener beside
/// it for the harness) and `extra` flags.
fn tls_server(cert: &(PathBuf, PathBuf), ssl_opts: &str, extra: &[&str], login: Vec<u8>) -> Server {
    tls_server_of(Kind::Corecache, cert, ssl_opts, extra, login)
}

/// A server of `kind` (Debian's memcached is built with TLS too) with `-Z`.
fn tls_server_of(
    kind: Kind,
    cert: &(PathBuf, PathBuf),
    ssl_opts: &str,
    extra: &[&str],
    login: Vec<u8>,
) -> Server {
    let mut opts = format!(
        "ssl_chain_cert={},ssl_key={}",
        cert.0.display(),
        cert.1.display()
    );
    if !ssl_opts.is_empty() {
        opts = format!("{opts},{ssl_opts}");
    }
    let mut args = vec!["-Z", "-o", &opts];
    args.extend_from_slice(extra);
    Server::start_probed(kind, &args, Probe { login, tls: true })
}

fn trusting(ca: &Ca) -> TlsConfig {
    TlsConfig::builder()
        .ca_file(&ca.pem_path)
        .unwrap()
        .build()
        .unwrap()
}

fn stat(srv: &Server, name: &str) -> u64 {
    let stats = String::from_utf8(srv.raw(b"stats\r\n", b"END\r\n")).unwrap();
    common::stat(&stats, name)
}

async fn round_trip_over_tls(kind: Kind) {
    let ca = make_ca("corecache client test CA");
    let cert = server_cert(&ca, &["localhost", "127.0.0.1"]);
    let srv = tls_server_of(kind, &cert, "", &[], vec![]);
    let before = (kind == Kind::Corecache).then(|| stat(&srv, "ssl_new_sessions"));
    let c = srv.builder().tls(trusting(&ca)).pool_size(3).build();
    c.ping().await.unwrap();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v".to_vec()));
    // A value larger than a TLS record (16 KiB) and than one read.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    c.set("big", &big, MIN).await.unwrap();
    assert_eq!(c.get("big").await.unwrap().as_deref(), Some(&big[..]));
    let pairs: Vec<(String, String)> = (0..300)
        .map(|i| (format!("m{i}"), format!("v{i}")))
        .collect();
    c.mset(&pairs, MIN).await.unwrap();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let got = c.mget(&keys).await.unwrap();
    for ((_, v), g) in pairs.iter().zip(&got) {
        assert_eq!(g.as_deref(), Some(v.as_bytes()));
    }
    c.set("n", "5", MIN).await.unwrap();
    assert_eq!(c.incr("n", 10).await.unwrap(), 15);
    assert_eq!(c.decr("n", 3).await.unwrap(), 12);
    c.expire("n", Duration::from_secs(100)).await.unwrap();
    let ttl = c.ttl("n").await.unwrap().expect("a TTL");
    assert!(
        ttl <= Duration::from_secs(100) && ttl >= Duration::from_secs(90),
        "{ttl:?}"
    );
    assert!(c.delete("k").await.unwrap());
    assert_eq!(c.get("k").await.unwrap(), None);
    let loads = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let loads = loads.clone();
        let v = c
            .get_or_load("loaded", MIN, || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(b"from source".to_vec())
            })
            .await
            .unwrap();
        assert_eq!(v, b"from source");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // Every pooled connection did a handshake: calls go round the pool.
    // (memcached counts sessions only with its session cache on.)
    if let Some(before) = before {
        let sessions = stat(&srv, "ssl_new_sessions") - before;
        assert_eq!(sessions, 3, "TLS sessions of a pool of 3");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_tls_corecache() {
    round_trip_over_tls(Kind::Corecache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_tls_memcached() {
    round_trip_over_tls(Kind::Memcached).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_is_refused_corecache() {
    untrusted_server_is_refused(Kind::Corecache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_is_refused_memcached() {
    untrusted_server_is_refused(Kind::Memcached).await
}

async fn untrusted_server_is_refused(kind: Kind) {
    let ca_real = make_ca("the server's CA");
    let other = make_ca("another CA");
    let cert = server_cert(&ca_real, &["127.0.0.1"]);
    let srv = tls_server_of(kind, &cert, "", &[], vec![]);
    let c = srv
        .builder()
        .tls(trusting(&other))
        .failure_policy(FailurePolicy::FailFast)
        .failure_limit(1)
        .build();
    for _ in 0..3 {
        match c.set("k", "v", MIN).await {
            Err(e @ Error::Tls { .. }) => {
                assert!(!e.is_transport());
                assert!(e.to_string().contains("UnknownIssuer"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Nothing reached the store.
    let good = srv.builder().tls(trusting(&ca_real)).build();
    assert_eq!(good.get("k").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_name_is_checked() {
    let ca = make_ca("corecache client test CA");
    // A certificate for a DNS name only; the node is listed by IP.
    let srv = tls_server(&server_cert(&ca, &["cache.test"]), "", &[], vec![]);
    let by_ip = srv.builder().tls(trusting(&ca)).build();
    match by_ip.get("k").await {
        Err(e @ Error::Tls { .. }) => assert!(e.to_string().contains("not valid for name"), "{e}"),
        other => panic!("{other:?}"),
    }
    let wrong = srv
        .builder()
        .tls(trusting(&ca).server_name("other.test").unwrap())
        .build();
    assert!(matches!(wrong.get("k").await, Err(Error::Tls { .. })));
    let named = srv
        .builder()
        .tls(trusting(&ca).server_name("cache.test").unwrap())
        .build();
    named.set("k", "v", MIN).await.unwrap();
    assert_eq!(named.get("k").await.unwrap(), Some(b"v".to_vec()));
}

/// A plaintext client on a TLS port, and a TLS client on a plaintext one,
/// fail with errors instead of hanging or reading garbage as replies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_ends_fail() {
    let ca = make_ca("corecache client test CA");
    let srv = tls_server(&server_cert(&ca, &["127.0.0.1"]), "", &[], vec![]);
    let plain = srv.client();
    let r = plain.get("k").await;
    assert!(matches!(r, Err(Error::Connection { .. })), "{r:?}");

    let plain_srv = Server::start(Kind::Corecache);
    let tls = plain_srv.builder().tls(trusting(&ca)).build();
    let r = tls.get("k").await;
    assert!(matches!(r, Err(Error::Tls { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let ca = make_ca("corecache client test CA");
    let other = make_ca("another CA");
    let client_cert = leaf(&ca, "alice", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = leaf(&other, "alice", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let opts = format!("ssl_ca_cert={},ssl_verify_mode=2", ca.pem_path.display());
    let srv = tls_server(&server_cert(&ca, &["127.0.0.1"]), &opts, &[], vec![]);

    let with_cert = |cert: &(PathBuf, PathBuf)| {
        TlsConfig::builder()
            .ca_file(&ca.pem_path)
            .unwrap()
            .client_cert_files(&cert.0, &cert.1)
            .unwrap()
            .build()
            .unwrap()
    };
    let c = srv.builder().tls(with_cert(&client_cert)).build();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(c.get("k").await.unwrap(), Some(b"v".to_vec()));

    // Refused client certificates: none, or one from another CA. With TLS
    // 1.3 the server's refusal arrives as an alert after the client's side
    // of the handshake is done: before or after the first request is
    // queued, a race that each round runs again (it reported a broken pipe
    // once in a CI run when the alert won).
    for round in 0..20 {
        for (what, tls) in [
            ("no certificate", trusting(&ca)),
            ("another CA's", with_cert(&stranger)),
        ] {
            let c = srv.builder().tls(tls).build();
            let r = c.get("k").await;
            assert!(
                matches!(r, Err(Error::Tls { .. })),
                "round {round}, {what}: {r:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_ascii_auth() {
    let ca = make_ca("corecache client test CA");
    let users = common::temp_file("users", b"alice:s3cret\n");
    let srv = tls_server(
        &server_cert(&ca, &["127.0.0.1"]),
        "",
        &["-Y", users.to_str().unwrap()],
        common::login("alice", "s3cret"),
    );
    let c = srv
        .builder()
        .tls(trusting(&ca))
        .credentials(Credentials::new("alice", "s3cret").unwrap())
        .build();
    c.set("k", "v", MIN).await.unwrap();
    assert_eq!(
        c.mget(&["k", "x"]).await.unwrap(),
        [Some(b"v".to_vec()), None]
    );
    let wrong = srv
        .builder()
        .tls(trusting(&ca))
        .credentials(Credentials::new("alice", "nope").unwrap())
        .build();
    assert!(matches!(wrong.get("k").await, Err(Error::Auth { .. })));
    let none = srv.builder().tls(trusting(&ca)).build();
    assert!(matches!(none.get("k").await, Err(Error::Auth { .. })));
}

#[test]
fn config_errors_are_typed() {
    fn bad<T>(r: corecache_client::Result<T>) -> bool {
        matches!(r, Err(Error::Config(_)))
    }
    assert!(bad(TlsConfig::builder().build()));
    assert!(bad(TlsConfig::builder().ca_pem(b"not a pem")));
    assert!(bad(TlsConfig::builder().ca_file("/nonexistent/ca.pem")));
    let ca = make_ca("corecache client test CA");
    let pem = std::fs::read(&ca.pem_path).unwrap();
    assert!(bad(TlsConfig::builder()
        .ca_pem(&pem)
        .unwrap()
        .client_cert_pem(&pem, b"no key")));
    assert!(bad(trusting(&ca).server_name("not a name")));
    // Debug shows no key material.
    let cert = leaf(&ca, "alice", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let key = std::fs::read_to_string(&cert.1).unwrap();
    let cfg = TlsConfig::builder()
        .ca_pem(&pem)
        .unwrap()
        .client_cert_files(&cert.0, &cert.1)
        .unwrap();
    let body: String = key.lines().nth(1).unwrap().to_string();
    assert!(!format!("{cfg:?}").contains(&body));
    let built = cfg.build().unwrap();
    let builder = Client::builder().tls(built.clone());
    for text in [format!("{built:?}"), format!("{builder:?}")] {
        assert!(!text.contains(&body), "{text}");
    }
}
