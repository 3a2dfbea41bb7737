//! [`Sql`]: the one way store code talks to its database, whichever backend
//! holds the state — the embedded SQLite file or PostgreSQL.
//!
//! Why one interface rather than two implementations of every store: the
//! cases, users, registry and audit code is mostly *rules* (who may move a
//! case, how a chain is appended, when a session ends) wrapped around a few
//! statements. Written twice, the rules would drift apart; written once
//! against [`Sql`], the same code runs on both, and the whole state test
//! suite checks both with the same assertions.
//!
//! The portable dialect the stores write in:
//!
//! - **Placeholders** are SQLite's `?1`, `?2`, … (reusable) or bare `?`
//!   (numbered in order). On PostgreSQL [`pg_placeholders`] rewrites them to
//!   `$1`, `$2`, … outside string literals, quoted identifiers and comments.
//! - **Values** are [`Value`]s: integers are always `i64` (PostgreSQL
//!   columns are `BIGINT`), booleans are `0`/`1`, times are RFC 3339 text,
//!   JSON is text. Each parameter is sent to PostgreSQL with the type of its
//!   value, so `?1 IS NULL` or `SELECT ?1` need no cast; a `NULL` keeps
//!   the type of the Rust value it stands for (`None::<i64>` is a `BIGINT`
//!   NULL, `None::<String>` a `TEXT` one).
//! - **Statements** use what both engines share: `INSERT … ON CONFLICT …
//!   DO UPDATE/NOTHING`, `RETURNING`, `coalesce`, `CAST(x AS BIGINT)`
//!   around an aggregate whose type differs (PostgreSQL's `sum` of
//!   `BIGINT` is `NUMERIC`), `lower(x) LIKE lower(?)` (SQLite's `LIKE` is
//!   case-insensitive, PostgreSQL's is not). Never `rowid`,
//!   `last_insert_rowid()`, `INSERT OR …`, `datetime()` or PRAGMAs.
//!
//! Transactions ([`super::Store::transaction`]) have the same meaning on
//! both: SQLite's `BEGIN IMMEDIATE` takes the file's one write lock; on
//! PostgreSQL a write transaction takes the store's advisory lock
//! ([`super::pg::WRITE_LOCK`]) for its length, so read-then-write rules
//! (allocate the next id, check a state before changing it) cannot race
//! another replica either.

use std::path::Path;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{IsNull, ToSql, Type};

use super::{Error, Result};

/// One SQL value, as the stores bind and read them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL` of a type (the Rust type the `None` was).
    Null(Ty),
    /// An integer (`BIGINT`); booleans are `0`/`1`.
    Int(i64),
    /// A floating-point number (`DOUBLE PRECISION`).
    Real(f64),
    /// Text (times as RFC 3339, JSON as its text).
    Text(String),
    /// Bytes (`BYTEA`).
    Blob(Vec<u8>),
}

/// The SQL type of a value or of a NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `BIGINT` (SQLite `INTEGER`); booleans too.
    Int,
    /// `DOUBLE PRECISION` (SQLite `REAL`).
    Real,
    /// `TEXT`.
    Text,
    /// `BYTEA` (SQLite `BLOB`).
    Blob,
}

/// A Rust type that binds as one SQL type: what its `None` is a NULL of.
pub trait Typed {
    /// The SQL type.
    const TY: Ty;
}

macro_rules! typed {
    ($ty:expr => $($t:ty),*) => {$(
        impl Typed for $t {
            const TY: Ty = $ty;
        }
    )*};
}
typed!(Ty::Int => i64, i32, u32, i16, u16, u8, usize, u64, bool);
typed!(Ty::Real => f64);
typed!(Ty::Text => String, &str, &String);
typed!(Ty::Blob => Vec<u8>);

impl Value {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null(_) => "NULL",
            Value::Int(_) => "an integer",
            Value::Real(_) => "a number",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

macro_rules! value_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
value_from_int!(i64, i32, u32, i16, u16, u8);

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl<T: Into<Value> + Typed> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null(T::TY), Into::into)
    }
}

impl<T: Clone + Into<Value>> From<&T> for Value
where
    T: NotStr,
{
    fn from(v: &T) -> Value {
        v.clone().into()
    }
}

/// Types bound by reference through the blanket `From<&T>` (everything but
/// `str` and `String`, which have their own impls).
pub trait NotStr {}
impl NotStr for i64 {}
impl NotStr for i32 {}
impl NotStr for u32 {}
impl NotStr for usize {}
impl NotStr for bool {}
impl NotStr for f64 {}
impl NotStr for Value {}
impl<T> NotStr for Option<T> {}

/// The parameters of a statement: `vals![a, b, c]` is
/// `&[Value::from(a), Value::from(b), Value::from(c)]`.
#[macro_export]
macro_rules! vals {
    () => { &[] as &[$crate::store::sql::Value] };
    ($($v:expr),+ $(,)?) => { &[$($crate::store::sql::Value::from($v)),+] as &[$crate::store::sql::Value] };
}

/// A value read back into a Rust type.
pub trait FromValue: Sized {
    /// Converts `v`, or says what it was instead.
    fn from_value(v: &Value) -> std::result::Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> std::result::Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}

macro_rules! from_value_int {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> std::result::Result<$t, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
from_value_int!(i32, u32, u64, usize, u16, u8);

impl FromValue for bool {
    fn from_value(v: &Value) -> std::result::Result<bool, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> std::result::Result<f64, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> std::result::Result<String, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> std::result::Result<Vec<u8>, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.clone().into_bytes()),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> std::result::Result<Option<T>, String> {
        match v {
            Value::Null(_) => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromValue for Value {
    fn from_value(v: &Value) -> std::result::Result<Value, String> {
        Ok(v.clone())
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The values, in the SELECT's column order.
    values: Vec<Value>,
}

impl Row {
    /// Column `i` (from 0) as `T`: an error names the column and what it held.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.values.get(i).ok_or_else(|| Error::Decode { column: i, reason: format!("the row has {} columns", self.values.len()) })?;
        T::from_value(v).map_err(|reason| Error::Decode { column: i, reason })
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The raw values.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// Which engine a [`Sql`] connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection or transaction of either backend (see the module doc for the
/// dialect its SQL is written in).
pub trait Sql {
    /// The engine.
    fn backend(&self) -> Backend;
    /// Runs one statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs one query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;
    /// Runs several statements without parameters (schema, setup).
    fn batch(&mut self, sql: &str) -> Result<()>;

    /// The first row, or `None` when the query returns none.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The only row; no row is [`Error::NoRow`].
    fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?.ok_or_else(|| Error::NoRow { sql: short(sql) })
    }

    /// The first column of the only row, as `T`.
    fn value<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<T>
    where
        Self: Sized,
    {
        self.query_one(sql, params)?.get(0)
    }
}

impl dyn Sql + '_ {
    /// The first column of the only row, as `T` (for `&mut dyn Sql`).
    pub fn one<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<T> {
        self.query_one(sql, params)?.get(0)
    }

    /// The first column of the first row, if any, as `T`.
    pub fn opt<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<Option<T>> {
        self.query_opt(sql, params)?.map(|r| r.get(0)).transpose()
    }
}

/// The start of a statement, for messages.
fn short(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// An SQLite connection (or transaction: it derefs to one) as [`Sql`].
pub struct SqliteSql<'a> {
    conn: &'a rusqlite::Connection,
    path: &'a Path,
}

impl<'a> SqliteSql<'a> {
    /// Wraps `conn`; `path` names the file in error messages.
    pub fn new(conn: &'a rusqlite::Connection, path: &'a Path) -> SqliteSql<'a> {
        SqliteSql { conn, path }
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::sqlite(self.path, e)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null(_) => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null(Ty::Text),
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Sql for SqliteSql<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let n = st.execute(rusqlite::params_from_iter(params.iter())).map_err(|e| self.err(e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let n = st.column_count();
        let mut rows = st.query(rusqlite::params_from_iter(params.iter())).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let values = (0..n).map(|i| r.get_ref(i).map(sqlite_value)).collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))?;
            out.push(Row { values });
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(|e| self.err(e))
    }
}

/// A PostgreSQL transaction as [`Sql`].
pub struct PgSql<'a, 't> {
    tx: &'a mut postgres::Transaction<'t>,
    url: &'a str,
}

impl<'a, 't> PgSql<'a, 't> {
    /// Wraps `tx`; `url` (password hidden) names the database in messages.
    pub fn new(tx: &'a mut postgres::Transaction<'t>, url: &'a str) -> PgSql<'a, 't> {
        PgSql { tx, url }
    }

    fn err(&self, source: postgres::Error) -> Error {
        Error::Postgres { url: self.url.to_string(), source }
    }

    fn run(&mut self, sql: &str, params: &[Value]) -> Result<(Vec<Row>, u64)> {
        let text = pg_placeholders(sql);
        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params.iter().map(|v| (v as &(dyn ToSql + Sync), pg_type(v))).collect();
        let mut it = self.tx.query_typed_raw(&text, typed).map_err(|e| Error::Postgres { url: self.url.to_string(), source: e })?;
        let mut out = Vec::new();
        loop {
            match it.next() {
                Ok(Some(r)) => out.push(pg_row(&r).map_err(|e| Error::Postgres { url: self.url.to_string(), source: e })?),
                Ok(None) => break,
                Err(e) => return Err(Error::Postgres { url: self.url.to_string(), source: e }),
            }
        }
        let n = it.rows_affected().unwrap_or(out.len() as u64);
        Ok((out, n))
    }
}

impl Sql for PgSql<'_, '_> {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(self.run(sql, params)?.1)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        Ok(self.run(sql, params)?.0)
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.tx.batch_execute(sql).map_err(|e| self.err(e))
    }
}

/// The type a value is sent with: its own (a NULL's is the Rust type's).
fn pg_type(v: &Value) -> Type {
    let ty = match v {
        Value::Null(t) => *t,
        Value::Int(_) => Ty::Int,
        Value::Real(_) => Ty::Real,
        Value::Text(_) => Ty::Text,
        Value::Blob(_) => Ty::Blob,
    };
    match ty {
        Ty::Int => Type::INT8,
        Ty::Real => Type::FLOAT8,
        Ty::Text => Type::TEXT,
        Ty::Blob => Type::BYTEA,
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut postgres::types::private::BytesMut) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null(_) => Ok(IsNull::Yes),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true // the type sent is the value's own (pg_type)
    }

    postgres::types::to_sql_checked!();
}

/// Reads a PostgreSQL row into [`Value`]s by each column's type.
fn pg_row(r: &postgres::Row) -> std::result::Result<Row, postgres::Error> {
    let mut values = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let t = c.type_();
        let v = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map_or(Value::Null(Ty::Int), Value::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map_or(Value::Null(Ty::Int), |v| Value::Int(v.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map_or(Value::Null(Ty::Int), |v| Value::Int(v.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map_or(Value::Null(Ty::Int), |v| Value::Int(v.into()))
        } else if *t == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map_or(Value::Null(Ty::Real), Value::Real)
        } else if *t == Type::FLOAT4 {
            r.try_get::<_, Option<f32>>(i)?.map_or(Value::Null(Ty::Real), |v| Value::Real(v.into()))
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Value::Null(Ty::Blob), Value::Blob)
        } else {
            // TEXT, VARCHAR, NAME, BPCHAR, and anything else the server can
            // send as text; a type it cannot (NUMERIC) fails here with the
            // client's message naming the column — cast it in the query.
            r.try_get::<_, Option<String>>(i)?.map_or(Value::Null(Ty::Text), Value::Text)
        };
        values.push(v);
    }
    Ok(Row { values })
}

/// Rewrites SQLite placeholders (`?1`, `?`) to PostgreSQL's (`$1`), leaving
/// string literals, quoted identifiers and comments alone. A bare `?` takes
/// the number after the highest one seen so far, as in SQLite.
pub fn pg_placeholders(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut highest = 0usize;
    let mut start = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if i + 1 < b.len() && b[i + 1] == q {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                out.push_str(&sql[start..i]);
                let digits_end = b[i + 1..].iter().position(|c| !c.is_ascii_digit()).map_or(b.len(), |p| i + 1 + p);
                let n = if digits_end > i + 1 {
                    sql[i + 1..digits_end].parse::<usize>().unwrap_or(0)
                } else {
                    highest + 1
                };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
                i = digits_end;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[start.min(sql.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_literals_and_comments() {
        assert_eq!(pg_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"), "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1");
        assert_eq!(pg_placeholders("UPDATE t SET a = ?, b = ? WHERE c = ?"), "UPDATE t SET a = $1, b = $2 WHERE c = $3");
        assert_eq!(pg_placeholders("SELECT '?1', \"a?\" -- ?3\n FROM t WHERE x = ?2 /* ? */ AND y = ?"), "SELECT '?1', \"a?\" -- ?3\n FROM t WHERE x = $2 /* ? */ AND y = $3");
        assert_eq!(pg_placeholders("SELECT 'it''s ?' WHERE a LIKE ?1 ESCAPE '\\'"), "SELECT 'it''s ?' WHERE a LIKE $1 ESCAPE '\\'");
        assert_eq!(pg_placeholders("no params"), "no params");
        assert_eq!(pg_placeholders("ends with ?"), "ends with $1");
    }

    #[test]
    fn values_convert_both_ways_and_say_what_was_wrong() {
        let row = Row { values: vec![Value::Int(3), Value::Null(Ty::Text), Value::Text("x".into()), Value::Real(0.5)] };
        assert_eq!(row.get::<i64>(0).unwrap(), 3);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert_eq!(row.get::<f64>(3).unwrap(), 0.5);
        let e = row.get::<i64>(2).unwrap_err().to_string();
        assert!(e.contains("column 2") && e.contains("expected an integer, found text"), "{e}");
        assert!(row.get::<i64>(9).unwrap_err().to_string().contains("4 columns"));
        assert!(row.get::<u32>(0).is_ok());
        let neg = Row { values: vec![Value::Int(-1)] };
        assert!(neg.get::<u32>(0).unwrap_err().to_string().contains("out of range"));
        let v: &[Value] = crate::vals![1i64, "a", Some("b"), None::<String>, true, 2.5f64];
        assert_eq!(v, &[Value::Int(1), Value::Text("a".into()), Value::Text("b".into()), Value::Null(Ty::Text), Value::Int(1), Value::Real(2.5)]);
        assert_eq!(crate::vals![None::<i64>], &[Value::Null(Ty::Int)]);
    }

    /// The same statements, values and errors on both backends.
    #[test]
    fn both_backends_run_the_portable_dialect() {
        for t in crate::store::testing::each_backend("sql_dialect") {
            let who = t.name();
            t.store
                .transaction(|db| -> Result<()> {
                    db.batch("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION, note TEXT, data BYTEA)")
                        .or_else(|_| db.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, note TEXT, data BLOB)"))?;
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{who}: {e}"));
            t.store
                .transaction(|db| -> Result<()> {
                    assert_eq!(db.execute("INSERT INTO t (id, name, score, note, data) VALUES (?1, ?2, ?3, ?4, ?5)", crate::vals![1i64, "a", 0.5f64, None::<String>, vec![0u8, 255]])?, 1, "{who}");
                    let id: i64 = db.one("INSERT INTO t (id, name) VALUES (?, ?) RETURNING id", crate::vals![2i64, "B"])?;
                    assert_eq!(id, 2, "{who}");
                    // Untyped contexts take the value's own type; NULL takes the context's.
                    assert_eq!(db.one::<String>("SELECT ?1", crate::vals!["x"])?, "x", "{who}");
                    assert_eq!(db.one::<i64>("SELECT count(*) FROM t WHERE ?1 IS NULL OR name = ?1", crate::vals![None::<String>])?, 2, "{who}");
                    assert_eq!(db.execute("UPDATE t SET note = ?1 WHERE id >= ?2", crate::vals![None::<String>, 1i64])?, 2, "{who}");
                    assert_eq!(db.one::<i64>("SELECT CAST(coalesce(sum(id), 0) AS BIGINT) FROM t", &[])?, 3, "{who}");
                    assert_eq!(db.one::<i64>("SELECT count(*) FROM t WHERE lower(name) LIKE lower(?1) ESCAPE '\\'", crate::vals!["b%"])?, 1, "{who}");
                    db.execute("INSERT INTO t (id, name) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET name = excluded.name", crate::vals![2i64, "b"])?;
                    let rows = db.query("SELECT id, name, score, note, data FROM t ORDER BY id", &[])?;
                    assert_eq!(rows.len(), 2, "{who}");
                    assert_eq!(rows[0].get::<f64>(2)?, 0.5, "{who}");
                    assert_eq!(rows[0].get::<Vec<u8>>(4)?, vec![0u8, 255], "{who}");
                    assert_eq!(rows[1].get::<String>(1)?, "b", "{who}");
                    assert_eq!(rows[1].get::<Option<f64>>(2)?, None, "{who}");
                    assert_eq!(db.opt::<String>("SELECT name FROM t WHERE id = ?1", crate::vals![9i64])?, None, "{who}");
                    assert!(matches!(db.query_one("SELECT name FROM t WHERE id = 9", &[]), Err(Error::NoRow { .. })), "{who}");
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{who}: {e}"));
            // An error inside the closure rolls the whole transaction back.
            let r = t.store.transaction(|db| -> Result<()> {
                db.execute("INSERT INTO t (id, name) VALUES (3, 'c')", &[])?;
                db.execute("INSERT INTO t (id, name) VALUES (1, 'duplicate')", &[])?;
                Ok(())
            });
            assert!(r.is_err(), "{who}: a duplicate key must fail");
            assert_eq!(t.store.read(|db| db.one::<i64>("SELECT count(*) FROM t", &[])).unwrap(), 2, "{who}: rolled back");
        }
    }

    #[test]
    fn sqlite_runs_the_portable_dialect() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        let mut db = SqliteSql::new(&conn, path);
        let db: &mut dyn Sql = &mut db;
        db.batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, note TEXT)").unwrap();
        assert_eq!(db.execute("INSERT INTO t (id, name, score, note) VALUES (?1, ?2, ?3, ?4)", crate::vals![1i64, "a", 0.5f64, None::<String>]).unwrap(), 1);
        let id: i64 = db.one("INSERT INTO t (id, name) VALUES (?, ?) RETURNING id", crate::vals![2i64, "b"]).unwrap();
        assert_eq!(id, 2);
        let rows = db.query("SELECT id, name, score, note FROM t ORDER BY id", &[]).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<Option<String>>(3).unwrap(), None);
        assert_eq!(db.opt::<String>("SELECT name FROM t WHERE id = ?1", crate::vals![9i64]).unwrap(), None);
        let e = db.query_one("SELECT name FROM t WHERE id = 9", &[]).unwrap_err();
        assert!(matches!(e, Error::NoRow { .. }), "{e:?}");
    }
}
