//! Where an address is, roughly: a city and a country from a MaxMind DB file (GeoLite2-City,
//! GeoIP2-City, or any database with the same `city` and `country` names), when the admin
//! configured one (`account.geoip_database`). Without one, no place is ever shown.
//!
//! The place is for the user's own eyes (their list of sessions, a login alert): never a
//! reason to refuse anything.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{Reader, geoip2};

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoIp {
    /// Reads the whole database file (a GeoLite2-City file is some 60 MB).
    pub fn open(path: &Path) -> Result<GeoIp, String> {
        let reader = Reader::open_readfile(path)
            .map_err(|e| format!("cannot read the GeoIP database {}: {e}", path.display()))?;
        Ok(GeoIp { reader })
    }

    /// "City, Country", or only the country when the city is unknown, in English; `None` for
    /// an address the database does not place (loopback, private ranges, unknown).
    pub fn place(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let city: geoip2::City<'_> = found.decode().ok()??;
        let country = city.country.names.english.filter(|s| !s.is_empty());
        let town = city.city.names.english.filter(|s| !s.is_empty());
        let place = match (town, country) {
            (Some(town), Some(country)) => format!("{town}, {country}"),
            (Some(one), None) | (None, Some(one)) => one.to_owned(),
            (None, None) => return None,
        };
        // Text from a file: kept to one short line of printable characters.
        let place: String = place.chars().filter(|c| !c.is_control()).take(80).collect();
        Some(place)
    }
}
