//! How the torture test reaches the server: plain TCP, or TLS (`-Z`) with a
//! rustls client, so that the same checks run over both. Certificates are
//! made with the openssl command, as tests/py/test_tls.py makes them: a CA
//! and a server certificate for 127.0.0.1 that the client verifies.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Plain TCP, or TLS with a client that trusts the test's CA.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(Arc<ClientConfig>),
}

/// One client connection over either transport.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Transport {
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Tls(_) => "tls",
        }
    }

    /// Makes a CA and a server certificate in `dir`; returns the transport
    /// and the server's flags for them (`-Z` on every listener).
    pub fn tls(dir: &Path) -> (Transport, Vec<String>) {
        openssl(
            dir,
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout ca.key -out ca.pem -days 2 -subj /CN=torture-ca",
        );
        openssl(
            dir,
            "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout server.key -out server.csr -subj /CN=torture",
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
             -out server.pem -days 2 -extfile server.ext",
        );
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let opts = format!(
            "ssl_chain_cert={},ssl_key={}",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        );
        (
            Transport::Tls(Arc::new(config)),
            vec!["-Z".into(), "-o".into(), opts],
        )
    }

    /// Connects to 127.0.0.1:`port`; reads time out after 20 s. Over TLS
    /// the handshake happens on the first write, and the server's
    /// certificate is verified for 127.0.0.1.
    pub fn connect(&self, port: u16) -> BufReader<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let conn = match self {
            Transport::Plain => Conn::Plain(s),
            Transport::Tls(config) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let c = ClientConnection::new(config.clone(), name).unwrap();
                Conn::Tls(Box::new(StreamOwned::new(c, s)))
            }
        };
        BufReader::new(conn)
    }
}

/// Runs openssl with `args` (split at whitespace) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let st = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed (scripts/test.sh installs it)");
    assert!(st.success(), "openssl {args:?}: {st}");
}
