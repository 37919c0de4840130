//! A tiny MaxMind DB file (format 2.0, IPv4, 24-bit records), written here so the tests can
//! configure a GeoIP database without shipping one: every address of the given networks is
//! placed in one city and country.

use std::net::Ipv4Addr;

enum Record {
    Node(usize),
    Empty,
    Data,
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    assert!(size < 29, "sizes past 28 need the longer encoding");
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        // An extended type: type 0 in the control byte, then the type less 7.
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    control(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    control(out, kind, bytes.len() - first);
    out.extend_from_slice(&bytes[first..]);
}

fn names(out: &mut Vec<u8>, english: &str) {
    control(out, 7, 1);
    string(out, "names");
    control(out, 7, 1);
    string(out, "en");
    string(out, english);
}

/// The database's bytes: `networks` (address, prefix length) at `city, country`.
pub fn database(networks: &[(Ipv4Addr, u8)], city: &str, country: &str) -> Vec<u8> {
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty, Record::Empty]];
    for (address, prefix) in networks {
        let bits = u32::from(*address);
        let mut node = 0;
        for i in 0..*prefix {
            let bit = ((bits >> (31 - i)) & 1) as usize;
            if i + 1 == *prefix {
                nodes[node][bit] = Record::Data;
            } else {
                node = match nodes[node][bit] {
                    Record::Node(next) => next,
                    _ => {
                        nodes.push([Record::Empty, Record::Empty]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Record::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for record in node {
            let value = match record {
                Record::Node(n) => *n,
                Record::Empty => count,
                // The data record at offset 0 of the data section.
                Record::Data => count + 16,
            } as u32;
            out.extend_from_slice(&value.to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0; 16]);
    // The one data record: {"city": {"names": {"en": city}}, "country": {"names": {"en": country}}}.
    control(&mut out, 7, 2);
    string(&mut out, "city");
    names(&mut out, city);
    string(&mut out, "country");
    names(&mut out, country);
    // The metadata.
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    control(&mut out, 7, 9);
    string(&mut out, "node_count");
    uint(&mut out, 6, count as u64);
    string(&mut out, "record_size");
    uint(&mut out, 5, 24);
    string(&mut out, "ip_version");
    uint(&mut out, 5, 4);
    string(&mut out, "database_type");
    string(&mut out, "Test-City");
    string(&mut out, "languages");
    control(&mut out, 11, 1);
    string(&mut out, "en");
    string(&mut out, "binary_format_major_version");
    uint(&mut out, 5, 2);
    string(&mut out, "binary_format_minor_version");
    uint(&mut out, 5, 0);
    string(&mut out, "build_epoch");
    uint(&mut out, 9, 1_700_000_000);
    string(&mut out, "description");
    control(&mut out, 7, 1);
    string(&mut out, "en");
    string(&mut out, "test places");
    out
}

#[test]
fn the_written_database_places_its_networks_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.mmdb");
    std::fs::write(
        &path,
        database(&[(Ipv4Addr::new(127, 0, 0, 0), 8)], "Testville", "Testland"),
    )
    .unwrap();
    let geoip = telegram_oidc::geoip::GeoIp::open(&path).unwrap();
    assert_eq!(
        geoip.place("127.0.0.1".parse().unwrap()).as_deref(),
        Some("Testville, Testland")
    );
    assert_eq!(geoip.place("10.0.0.1".parse().unwrap()), None);
    assert_eq!(geoip.place("::1".parse().unwrap()), None);
    assert!(telegram_oidc::geoip::GeoIp::open(&dir.path().join("missing.mmdb")).is_err());
}
