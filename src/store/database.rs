//! [`Database`]: where the state lives — the embedded SQLite file (the
//! default) or a PostgreSQL server shared by several replicas.
//!
//! `--database` (env `ONLABEL_DATABASE`, `database =` in the config file)
//! takes one of
//!
//! - `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?OPTIONS]` (or
//!   `postgresql://…`): a PostgreSQL server, parsed by the `postgres` crate
//!   (libpq's URL form; no TLS: reach the server on loopback or a private
//!   network);
//! - `sqlite:PATH` (or a plain PATH): the SQLite store file — its name must be
//!   `onlabel.sqlite` and its directory is then the data directory, exactly as
//!   `--data DIR` gives it.
//!
//! Anything else (another scheme such as `mysql://`, an empty value, a
//! PostgreSQL URL that does not parse) is [`super::Error::BadDatabase`],
//! naming what was wrong and the two accepted forms.

use std::path::PathBuf;
use std::str::FromStr;

use super::Error;

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite store file (`DATA_DIR/onlabel.sqlite`).
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(PgUrl),
}

/// A PostgreSQL connection URL that parsed, with its password hidden for
/// messages and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// The URL as given (with its password): what the client connects with.
    url: String,
    /// The URL with the password replaced by `***`: what messages show.
    shown: String,
}

impl PgUrl {
    /// The URL with its password, for connecting.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with its password hidden, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The client configuration the URL describes.
    pub fn config(&self) -> Result<postgres::Config, Error> {
        postgres::Config::from_str(&self.url).map_err(|e| Error::BadDatabase { value: self.shown.clone(), reason: super::causes(&e) })
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown) // never the password, not even in a debug dump
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The two accepted forms, for error messages.
const FORMS: &str = "use postgres://USER@HOST:PORT/DBNAME for PostgreSQL, or sqlite:PATH/onlabel.sqlite (or --data DIR) for the embedded store";

impl Database {
    /// Parses a `--database` value (see the module doc).
    pub fn parse(value: &str) -> Result<Database, Error> {
        let v = value.trim();
        let bad = |reason: String| Error::BadDatabase { value: redact(v), reason };
        if v.is_empty() {
            return Err(bad(format!("the value is empty; {FORMS}")));
        }
        let lower = v.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let url = PgUrl { url: v.to_string(), shown: redact(v) };
            let config = url.config()?;
            if config.get_hosts().is_empty() {
                return Err(bad("the URL names no host (postgres://USER@HOST:PORT/DBNAME)".into()));
            }
            return Ok(Database::Postgres(url));
        }
        if let Some(rest) = lower.strip_prefix("sqlite:") {
            let path = &v[v.len() - rest.len()..];
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad(format!("sqlite: names no file; {FORMS}")));
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = v.split_once("://") {
            return Err(bad(format!("{scheme}:// is not a database OnLabel supports; {FORMS}")));
        }
        Ok(Database::Sqlite(PathBuf::from(v)))
    }

    /// For messages: the file, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Database::Sqlite(p) => p.display().to_string(),
            Database::Postgres(u) => u.shown().to_string(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

impl FromStr for Database {
    type Err = Error;

    fn from_str(s: &str) -> Result<Database, Error> {
        Database::parse(s)
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`; also hides a
/// `password=` query option. Values without a password come back unchanged.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(start) = url.find("://").map(|i| i + 3) {
        let authority_end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
        if let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) {
            if let Some(colon) = url[start..at].find(':').map(|i| start + i) {
                out = format!("{}***{}", &url[..colon + 1], &url[at..]);
            }
        }
    }
    if let Some(i) = out.find("password=") {
        let end = out[i..].find('&').map_or(out.len(), |j| i + j);
        out = format!("{}password=***{}", &out[..i], &out[end..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_parse_and_hide_their_password() {
        for u in ["postgres://onlabel:s3cret@127.0.0.1:5433/onlabel", "postgresql://onlabel:s3cret@db.internal/onlabel?connect_timeout=3"] {
            let d = Database::parse(u).unwrap();
            let Database::Postgres(url) = &d else { panic!("{d:?}") };
            assert_eq!(url.url(), u);
            assert!(!url.shown().contains("s3cret") && url.shown().contains("***"), "{url}");
            assert!(!format!("{d:?}").contains("s3cret"));
            assert_eq!(d.backend(), "postgres");
        }
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://u@h/db?password=x&sslmode=disable"), "postgres://u@h/db?password=***&sslmode=disable");
    }

    #[test]
    fn sqlite_forms_are_a_file() {
        assert_eq!(Database::parse("sqlite:/var/lib/onlabel/onlabel.sqlite").unwrap(), Database::Sqlite("/var/lib/onlabel/onlabel.sqlite".into()));
        assert_eq!(Database::parse("sqlite:///srv/onlabel.sqlite").unwrap(), Database::Sqlite("/srv/onlabel.sqlite".into()));
        assert_eq!(Database::parse("data/onlabel.sqlite").unwrap(), Database::Sqlite("data/onlabel.sqlite".into()));
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        for (v, says) in [
            ("", "empty"),
            ("   ", "empty"),
            ("mysql://u:pw@h/db", "mysql:// is not a database OnLabel supports"),
            ("sqlite:", "names no file"),
            ("postgres://u:pw@h:notaport/db", "invalid"),
            ("postgres://u:pw@h/db?frobnicate=1", "unknown"),
        ] {
            let e = Database::parse(v).unwrap_err();
            assert!(matches!(e, Error::BadDatabase { .. }), "{v}: {e:?}");
            let msg = e.to_string();
            assert!(msg.to_lowercase().contains(&says.to_lowercase()), "{v}: {msg}");
            assert!(!msg.contains("pw@"), "password shown: {msg}");
            assert_eq!(e.code(), "store_bad_database");
        }
    }
}
