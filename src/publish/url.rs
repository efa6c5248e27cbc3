// SPDX-License-Identifier: MIT OR Apache-2.0
//! Names and addresses from the element's properties: the default MQTT client id, folders, a
//! URL's host and port.

use std::path::PathBuf;

/// Paths used by the element's defaults.
pub fn default_client_id(name: &str, run: &str) -> String {
    format!("iguard-{name}-{}", &run[..run.len().min(8)])
}

/// The spool folder as a path, `None` when unset or empty.
pub fn dir(path: Option<&str>) -> Option<PathBuf> {
    path.filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Splits a URL's `host[:port]` (an IPv6 address in brackets) into host and port, `default`
/// when none is given; the error says what is wrong, for the caller to name its URL.
pub fn host_port(authority: &str, default: u16) -> Result<(&str, u16), &'static str> {
    let (host, port) = if let Some(r) = authority.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or("unclosed '['")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or("the port is not a number from 1 to 65535")?,
        None => default,
    };
    Ok((host, port))
}
