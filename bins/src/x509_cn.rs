//! The Subject common name of an X.509 certificate, read straight from its DER: what nsqd sends
//! the auth server as `common_name`. A certificate is `SEQUENCE { tbsCertificate, ... }` and the
//! subject is the sixth field of `tbsCertificate` (after an optional `[0] version`): a sequence
//! of sets of `{ OID, value }`, of which the one with OID 2.5.4.3 is the CN.

/// DER of the OID 2.5.4.3 (commonName).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The first CN in `cert`'s subject, or `None` when the DER cannot be walked or has none.
pub fn subject_common_name(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = tlv(cert)?;
    let (_, tbs, _) = tlv(certificate)?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serialNumber, signature, issuer, validity; then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (_, mut subject, _) = tlv(rest)?;
    while !subject.is_empty() {
        let (_, set, after) = tlv(subject)?;
        subject = after;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (_, attr, after) = tlv(attrs)?;
            attrs = after;
            let (tag, oid, value) = tlv(attr)?;
            if tag == 0x06 && oid == OID_COMMON_NAME {
                let (_, text, _) = tlv(value)?;
                return Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    None
}

/// One DER tag-length-value: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cn_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Squall");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client-7");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_common_name(cert.der()).as_deref(), Some("client-7"));
    }

    #[test]
    fn garbage_has_no_cn() {
        assert_eq!(subject_common_name(b""), None);
        assert_eq!(subject_common_name(b"\x30\x82\xff\xff"), None);
        assert_eq!(subject_common_name(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
