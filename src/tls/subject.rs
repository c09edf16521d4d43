//! The subject common name (CN) of a client certificate, which may name
//! the connection's user (`-o ssl_user_from_cert`).
//!
//! Only certificates rustls has already verified against `ssl_ca_cert`
//! get here; webpki parses the certificate and hands back its subject,
//! and this reads the subject's RDN sequence (X.501 `Name`, RFC 5280
//! 4.1.2.6) with a minimal DER reader rather than pull in a general X.509
//! parser for one attribute.

use rustls::pki_types::CertificateDer;

/// id-at-commonName, 2.5.4.3, as DER OID content bytes.
const CN_OID: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element at the start of `b`: (tag, contents, what follows).
/// Definite lengths of up to four bytes; None for anything else.
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &d| (a << 8) | d as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The CN of a subject given as the contents of its `Name` SEQUENCE (what
/// webpki's `Cert::subject` returns). None when there is none, when there
/// is more than one (which one names the user would be a guess), or when
/// it is not a UTF8String, PrintableString or IA5String.
pub fn cn_of_name(mut name: &[u8]) -> Option<String> {
    let mut found = None;
    while !name.is_empty() {
        let (tag, mut set, rest) = element(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (tag, atv, rest) = element(set)?;
            set = rest;
            let (oid_tag, oid, value) = element(atv)?;
            if tag != 0x30 || oid_tag != 0x06 || oid != CN_OID {
                continue;
            }
            let (vtag, v, _) = element(value)?;
            if !matches!(vtag, 0x0c | 0x13 | 0x16) || found.is_some() {
                return None;
            }
            found = Some(String::from_utf8(v.to_vec()).ok()?);
        }
    }
    found
}

/// The subject CN of a DER certificate (see `cn_of_name`).
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    cn_of_name(ee.subject())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDN: SET { SEQUENCE { OID, value } }.
    fn rdn(oid: &[u8], tag: u8, v: &[u8]) -> Vec<u8> {
        let mut atv = vec![0x06, oid.len() as u8];
        atv.extend_from_slice(oid);
        atv.extend_from_slice(&[tag, v.len() as u8]);
        atv.extend_from_slice(v);
        let mut seq = vec![0x30, atv.len() as u8];
        seq.extend(atv);
        let mut set = vec![0x31, seq.len() as u8];
        set.extend(seq);
        set
    }

    const O: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn finds_the_one_cn_among_other_attributes() {
        let mut n = rdn(O, 0x0c, b"corecache tests");
        n.extend(rdn(CN_OID, 0x0c, b"alice"));
        assert_eq!(cn_of_name(&n).as_deref(), Some("alice"));
        assert_eq!(
            cn_of_name(&rdn(CN_OID, 0x13, b"bob")).as_deref(),
            Some("bob")
        );
        assert_eq!(cn_of_name(&rdn(O, 0x0c, b"x")), None);
        assert_eq!(cn_of_name(&[]), None);
    }

    #[test]
    fn two_cns_or_odd_encodings_name_nobody() {
        let mut n = rdn(CN_OID, 0x0c, b"alice");
        n.extend(rdn(CN_OID, 0x0c, b"admin"));
        assert_eq!(cn_of_name(&n), None);
        // BMPString, and bytes that are not UTF-8.
        assert_eq!(cn_of_name(&rdn(CN_OID, 0x1e, b"\0a")), None);
        assert_eq!(cn_of_name(&rdn(CN_OID, 0x0c, b"\xff")), None);
    }

    #[test]
    fn truncated_or_malformed_input_is_refused_not_read_past() {
        let n = rdn(CN_OID, 0x0c, b"alice");
        for cut in 0..n.len() {
            assert_eq!(cn_of_name(&n[..cut]), None, "cut at {cut}");
        }
        assert_eq!(cn_of_name(&[0x31, 0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(cn_of_name(&[0x31, 0x80]), None);
    }

    #[test]
    fn long_form_lengths_are_read() {
        let inner = rdn(CN_OID, 0x0c, b"carol");
        // The same RDN with its SET length in long form (0x81 n).
        let mut n = vec![0x31, 0x81, (inner.len() - 2) as u8];
        n.extend_from_slice(&inner[2..]);
        assert_eq!(cn_of_name(&n).as_deref(), Some("carol"));
    }
}
