//! The PostgreSQL schema is SQLite's (issue 22; PostgreSQL migration 2,
//! src/store/migrations/postgres/0002_state.sql): a fresh SQLite store
//! (`Store::open`) and a fresh PostgreSQL store (`PgStore::open`, on the
//! harness's cluster) are read back from their catalogs and compared table by
//! table — columns (name, position, nullable, type, default), keys, indexes,
//! foreign keys and triggers — and the same SQL text is run on both: every
//! trigger refuses the same change with the same message, every kind of
//! constraint refuses the same row, and text sorts the same even in a
//! database whose default collation is not byte order.

use std::collections::{BTreeMap, BTreeSet};

use onlabel::store::pg::PgStore;
use onlabel::store::{Database, Store};
use rusqlite::types::ValueRef;

use crate::harness::pg_database;
use onlabel::store::pgtest::cluster as pg_cluster;

/// Rows as text (NULL as `None`): what both backends can be compared on.
type Rows = Vec<Vec<Option<String>>>;

/// A fresh SQLite store and a fresh PostgreSQL store, both fully migrated.
struct Both {
    _dir: tempfile::TempDir,
    sqlite: Store,
    pg: PgStore,
}

impl Both {
    /// Opens both; `url` is a fresh PostgreSQL database.
    fn open_url(url: &str) -> Both {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Store::open(dir.path()).unwrap();
        let Database::Postgres(url) = Database::parse(url).unwrap() else { panic!("{url} is not a PostgreSQL URL") };
        let pg = PgStore::open(&url).unwrap();
        Both { _dir: dir, sqlite, pg }
    }

    fn open(name: &str) -> Both {
        Both::open_url(&pg_database(name))
    }

    /// Runs one statement on SQLite: its rows, or SQLite's message.
    fn sqlite(&self, sql: &str) -> Result<Rows, String> {
        self.sqlite.with_conn(|c| Ok(sqlite_run(c, sql))).unwrap()
    }

    /// Runs one statement on PostgreSQL (its own transaction): its rows, or PostgreSQL's message.
    fn pg(&self, sql: &str) -> Result<Rows, String> {
        let mut c = self.pg.conn().unwrap();
        match c.simple_query(sql) {
            Ok(messages) => Ok(messages
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
                    _ => None,
                })
                .collect()),
            Err(e) => Err(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())),
        }
    }

    /// Runs `sql` on both; it must succeed on both with the same rows.
    fn same(&self, sql: &str) -> Rows {
        let (a, b) = (self.sqlite(sql), self.pg(sql));
        assert!(a.is_ok() && b.is_ok(), "{sql}\n  SQLite: {a:?}\n  PostgreSQL: {b:?}");
        assert_eq!(a, b, "{sql}: the rows differ (left SQLite, right PostgreSQL)");
        a.unwrap()
    }

    /// Runs `sql` on both; both must refuse it. Returns (SQLite's, PostgreSQL's) messages.
    fn refused(&self, sql: &str) -> (String, String) {
        match (self.sqlite(sql), self.pg(sql)) {
            (Err(a), Err(b)) => (a, b),
            (a, b) => panic!("{sql} must be refused by both\n  SQLite: {a:?}\n  PostgreSQL: {b:?}"),
        }
    }

    /// Rows of a catalog query on SQLite (must succeed).
    fn sqlite_rows(&self, sql: &str) -> Rows {
        self.sqlite(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Rows of a catalog query on PostgreSQL (must succeed).
    fn pg_rows(&self, sql: &str) -> Rows {
        self.pg(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The tables the comparison covers: SQLite's, minus its internals and `schema_migrations`.
    fn tables(&self) -> Vec<String> {
        let rows = self.sqlite_rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             AND name <> 'schema_migrations' ORDER BY name",
        );
        rows.into_iter().map(|mut r| r.remove(0).unwrap()).collect()
    }
}

fn sqlite_run(c: &rusqlite::Connection, sql: &str) -> Result<Rows, String> {
    let run = || -> rusqlite::Result<Rows> {
        let mut st = c.prepare(sql)?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(v) => Some(v.to_string()),
                    ValueRef::Real(v) => Some(v.to_string()),
                    ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
                });
            }
            out.push(row);
        }
        Ok(out)
    };
    run().map_err(|e| match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m,
        e => e.to_string(),
    })
}

fn text(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or_else(|| panic!("an unexpected NULL in a catalog row"))
}

/// One column as both catalogs can describe it.
#[derive(Debug, PartialEq, Eq)]
struct Column {
    name: String,
    position: i64,
    nullable: bool,
    pg_type: String,
    default: Option<String>,
    identity: bool,
}

#[test]
fn every_sqlite_table_has_the_same_columns_on_postgres() {
    let both = Both::open("pg_schema_columns");
    let tables = both.tables();
    assert!(tables.len() >= 15 && tables.contains(&"audit_log".to_string()), "{tables:?}");

    // The same tables, no more: only the migration record differs.
    let pg_tables: Vec<String> = both
        .pg_rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
             AND table_type = 'BASE TABLE' AND table_name <> 'onlabel_migrations' ORDER BY table_name",
        )
        .into_iter()
        .map(|mut r| r.remove(0).unwrap())
        .collect();
    assert_eq!(tables, pg_tables, "left: SQLite's tables, right: PostgreSQL's");

    for t in &tables {
        let strict = both.sqlite_rows(&format!("SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = '{t}'"));
        let strict = text(&strict[0][0]) == "1";
        let autoincrement = text(&both.sqlite_rows(&format!("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{t}'"))[0][0])
            .to_ascii_uppercase()
            .contains("AUTOINCREMENT");
        let info = both.sqlite_rows(&format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}') ORDER BY cid"));
        let pk_columns = info.iter().filter(|r| text(&r[4]) != "0").count();
        let expected: Vec<Column> = info
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (name, ty, notnull, pk) = (text(&r[0]), text(&r[1]).to_ascii_uppercase(), text(&r[2]) == "1", text(&r[4]) != "0");
                // A primary-key column is NOT NULL in a STRICT table and as the rowid (INTEGER PRIMARY KEY);
                // SQLite's catalog does not say so (`notnull` 0), PostgreSQL's does.
                if pk && !notnull {
                    assert!(strict || (ty == "INTEGER" && pk_columns == 1), "{t}.{name}: a nullable primary key in a non-STRICT table");
                }
                let pg_type = match ty.as_str() {
                    "INTEGER" => "bigint",
                    "TEXT" => "text",
                    "REAL" => "double precision",
                    "BLOB" => "bytea",
                    other => panic!("{t}.{name}: SQLite type {other} has no PostgreSQL rule in 0002_state.sql's header"),
                };
                let identity = autoincrement && pk;
                Column {
                    name: name.to_string(),
                    position: i as i64 + 1,
                    nullable: !(notnull || pk),
                    pg_type: pg_type.to_string(),
                    default: if identity { None } else { r[3].clone() },
                    identity,
                }
            })
            .collect();
        let pg = both.pg_rows(&format!(
            "SELECT column_name, ordinal_position, is_nullable, data_type, column_default, is_identity, collation_name
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{t}'
             ORDER BY ordinal_position"
        ));
        let actual: Vec<Column> = pg
            .iter()
            .map(|r| Column {
                name: text(&r[0]).to_string(),
                position: text(&r[1]).parse().unwrap(),
                nullable: text(&r[2]) == "YES",
                pg_type: text(&r[3]).to_string(),
                default: r[4].as_deref().map(|d| d.trim_end_matches("::text").to_string()),
                identity: text(&r[5]) == "YES",
            })
            .collect();

        // What the brief asks first: (name, position, nullable), identical.
        let key = |c: &Vec<Column>| c.iter().map(|c| (c.name.clone(), c.position, c.nullable)).collect::<Vec<_>>();
        assert_eq!(key(&expected), key(&actual), "{t}: (column, position, nullable), left SQLite, right PostgreSQL");
        // Then the types (an INT4 column would refuse the i64 the application binds), defaults and identities.
        assert_eq!(expected, actual, "{t}: left what SQLite's schema translates to, right PostgreSQL's");
        // Text compares as SQLite's BINARY does: collation "C" (audit_log, migration 1, keeps the default).
        if t != "audit_log" {
            for r in pg.iter().filter(|r| text(&r[3]) == "text") {
                assert_eq!(r[6].as_deref(), Some("C"), "{t}.{}: text without COLLATE \"C\"", text(&r[0]));
            }
        }
    }
}

/// A key or index of one table: unique or not, its columns, its WHERE, and
/// its name when it was made by CREATE INDEX (a key's index has a generated name).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Index {
    unique: bool,
    columns: String,
    predicate: Option<String>,
    name: Option<String>,
}

/// A foreign key: (its columns, the table and columns it references).
type ForeignKey = (String, String, String);

#[test]
fn keys_indexes_and_foreign_keys_are_the_same_on_postgres() {
    let both = Both::open("pg_schema_keys");
    for t in both.tables() {
        // SQLite: every index (CREATE INDEX, UNIQUE, PRIMARY KEY), plus the
        // rowid's primary key, which has no index of its own.
        let list = both.sqlite_rows(&format!("SELECT name, \"unique\", origin, partial FROM pragma_index_list('{t}')"));
        let mut expected: BTreeSet<Index> = BTreeSet::new();
        for r in &list {
            let name = text(&r[0]);
            let columns = both.sqlite_rows(&format!("SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"));
            let predicate = (text(&r[3]) == "1").then(|| {
                let sql = both.sqlite_rows(&format!("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = '{name}'"));
                let sql = text(&sql[0][0]);
                let at = sql.to_ascii_uppercase().rfind(" WHERE ").unwrap();
                sql[at + 7..].trim().to_string()
            });
            expected.insert(Index {
                unique: text(&r[1]) == "1",
                columns: columns.iter().map(|c| text(&c[0])).collect::<Vec<_>>().join(","),
                predicate,
                name: (text(&r[2]) == "c").then(|| name.to_string()),
            });
        }
        if !list.iter().any(|r| text(&r[2]) == "pk") {
            let pk = both.sqlite_rows(&format!("SELECT name FROM pragma_table_info('{t}') WHERE pk > 0 ORDER BY pk"));
            if !pk.is_empty() {
                let columns = pk.iter().map(|c| text(&c[0])).collect::<Vec<_>>().join(",");
                expected.insert(Index { unique: true, columns, predicate: None, name: None });
            }
        }
        if t == "audit_log" {
            // PostgreSQL migration 1 made seq (SQLite: the plain index audit_log_by_seq)
            // and prev_hash UNIQUE, so that two writers cannot fork the chain.
            let by_seq = Index { unique: false, columns: "seq".into(), predicate: None, name: Some("audit_log_by_seq".into()) };
            assert!(expected.remove(&by_seq), "{expected:?}");
            for c in ["seq", "prev_hash"] {
                expected.insert(Index { unique: true, columns: c.into(), predicate: None, name: None });
            }
        }
        let pg = both.pg_rows(&format!(
            "SELECT i.relname, ix.indisunique, pg_get_expr(ix.indpred, ix.indrelid),
                    (SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.n),
                    EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = ix.indexrelid)
             FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
             WHERE t.relname = '{t}' AND t.relnamespace = current_schema()::regnamespace"
        ));
        let actual: BTreeSet<Index> = pg
            .iter()
            .map(|r| Index {
                unique: text(&r[1]) == "t",
                columns: text(&r[3]).to_string(),
                // `(state = 'approved'::text)` is SQLite's `state = 'approved'`.
                predicate: r[2].as_deref().map(|p| {
                    let p = p.replace("::text", "");
                    p.strip_prefix('(').and_then(|p| p.strip_suffix(')')).unwrap_or(&p).to_string()
                }),
                name: (text(&r[4]) == "f").then(|| text(&r[0]).to_string()),
            })
            .collect();
        assert_eq!(expected, actual, "{t}: keys and indexes, left SQLite (translated), right PostgreSQL");

        let fks = both.sqlite_rows(&format!("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('{t}') ORDER BY id, seq"));
        let mut grouped: BTreeMap<String, (String, Vec<String>, Vec<String>)> = BTreeMap::new();
        for r in &fks {
            let e = grouped.entry(text(&r[0]).to_string()).or_insert_with(|| (text(&r[1]).to_string(), vec![], vec![]));
            e.1.push(text(&r[2]).to_string());
            e.2.push(r[3].clone().unwrap_or_else(|| panic!("{t}: a foreign key to {} must name its columns", e.0)));
        }
        let expected: BTreeSet<ForeignKey> = grouped.into_values().map(|(table, from, to)| (from.join(","), table, to.join(","))).collect();
        let actual: BTreeSet<ForeignKey> = both
            .pg_rows(&format!(
                "SELECT (SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
                        c.confrelid::regclass::text,
                        (SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n)
                 FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = '{t}'::regclass"
            ))
            .iter()
            .map(|r| (text(&r[0]).to_string(), text(&r[1]).to_string(), text(&r[2]).to_string()))
            .collect();
        assert_eq!(expected, actual, "{t}: foreign keys (columns, table, columns), left SQLite, right PostgreSQL");
    }
}

/// 64 hex characters (the CHECKs on sha256 and binding).
const H64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Rows every trigger and constraint test starts from, inserted with the same SQL on both.
fn fixture(both: &Both) {
    for sql in [
        "INSERT INTO users (id, name, role, token_hash, created_at, created_by) VALUES ('u1', 'Una One', 'admin', '!x', 't0', 'bootstrap')".to_string(),
        "INSERT INTO users (id, name, role, token_hash, created_at, created_by, oidc_issuer, oidc_subject)
         VALUES ('u2', 'Two', 'rep', '!oidc', 't0', 'u1', 'https://idp', 'sub-2')"
            .into(),
        "INSERT INTO cases (id, kind, year, seq, state, question, reporter, flags_json, created_at, updated_at, due_at)
         VALUES ('PV-2026-000001', 'pharmacovigilance', 2026, 1, 'new', 'q', 'u2', '[]', 't0', 't0', 't1')"
            .into(),
        "INSERT INTO case_history (case_id, at, actor, action, to_state) VALUES ('PV-2026-000001', 't0', 'u2', 'opened', 'new')".into(),
        "INSERT INTO case_intake (case_id, version, at, actor, intake_json) VALUES ('PV-2026-000001', 1, 't0', 'u2', '{\"onset\": null}')".into(),
        format!(
            "INSERT INTO prompt_versions (name, version, kind, source_path, content, sha256, params_json, author, created_at, state, state_changed_at)
             VALUES ('objection', 1, 'prompt', 'p', 'c', '{H64}', '{{}}', 'u1', 't0', 'draft', 't0')"
        ),
        "INSERT INTO eval_runs (name, version, sha256, suite_path, suite_sha256, versions_json, metrics_json, thresholds_json,
                                thresholds_sha256, passed, recorded_by, recorded_at)
         VALUES ('objection', 1, 's', 'e', 's', '[]', '{}', '{}', 's', 1, 'u1', 't0')"
            .into(),
        // eval_run_id 1: an identity starts at 1, as AUTOINCREMENT does.
        format!(
            "INSERT INTO prompt_signatures (name, version, sha256, signer_id, signer_name, signer_role, meaning, reason, signed_at, eval_run_id, binding)
             VALUES ('objection', 1, 's', 'u1', 'Una One', 'admin', 'approved for use', 'ok', 't0', 1, '{H64}')"
        ),
        "INSERT INTO conversations (id, owner, created_at, updated_at) VALUES ('cv-1', 'u2', 't0', 't0')".into(),
        "INSERT INTO conversation_turns (conversation_id, n, at, question, resolved_question, topic, route, answer)
         VALUES ('cv-1', 1, 't0', 'q', 'q', 't', 'answer', 'a')"
            .into(),
        "INSERT INTO medical_requests (id, owner, conversation_id, turn, question, typed_question, summary, flags_json, state, created_at)
         VALUES ('mr-1', 'u2', 'cv-1', 1, 'q', 'q', 's', '[]', 'pending', 't0')"
            .into(),
        "INSERT INTO audit_log (pos, seq, at, actor, role, action, passages_json, flags_json, timings_json, detail_json, prev_hash, hash)
         VALUES (1, 1, 't0', 'u1', 'admin', 'ask', '[]', '[]', '{}', '{}', 'p', 'h')"
            .into(),
    ] {
        both.same(&sql);
    }
}

#[test]
fn every_trigger_refuses_the_same_change_with_the_same_message() {
    let both = Both::open("pg_schema_triggers");
    fixture(&both);

    // What the triggers let through.
    for sql in [
        "UPDATE cases SET state = 'triaged', owner = 'u1', updated_at = 't2' WHERE id = 'PV-2026-000001'",
        "UPDATE prompt_versions SET state = 'in_review', state_changed_at = 't2' WHERE name = 'objection' AND version = 1",
        "UPDATE users SET disabled_at = 't2', disabled_by = 'u1' WHERE id = 'u2'",
        // Binding a user with no identity yet, then the same values again.
        "UPDATE users SET oidc_issuer = 'https://idp', oidc_subject = 'sub-1' WHERE id = 'u1'",
        "UPDATE users SET oidc_issuer = 'https://idp', oidc_subject = 'sub-1' WHERE id = 'u1'",
        "UPDATE medical_requests SET state = 'dismissed', decided_at = 't2', dismiss_reason = 'asked twice' WHERE id = 'mr-1'",
        "UPDATE conversations SET hcp = 'Dr A', updated_at = 't2' WHERE id = 'cv-1'",
    ] {
        both.same(sql);
    }

    // (trigger, a change it refuses, its message) — the message of the SQLite trigger, word for word.
    let refusals: &[(&str, &str, &str)] = &[
        ("cases_never_deleted", "DELETE FROM cases WHERE id = 'PV-2026-000001'", "cases are never deleted"),
        ("case_history_no_update", "UPDATE case_history SET note = 'edited'", "case history is append-only"),
        ("case_history_no_delete", "DELETE FROM case_history", "case history is append-only"),
        ("case_intake_no_update", "UPDATE case_intake SET intake_json = '{}'", "case intake versions are append-only"),
        ("case_intake_no_delete", "DELETE FROM case_intake WHERE version = 1", "case intake versions are append-only"),
        ("users_never_deleted", "DELETE FROM users WHERE id = 'u2'", "users are never deleted; disable them"),
        (
            "users_oidc_pair_on_insert",
            "INSERT INTO users (id, name, role, token_hash, created_at, created_by, oidc_issuer) VALUES ('u3', 'Three', 'rep', '!oidc', 't0', 'u1', 'https://idp')",
            "oidc_issuer and oidc_subject are set together",
        ),
        (
            "users_oidc_identity_fixed",
            "UPDATE users SET oidc_subject = 'sub-someone-else' WHERE id = 'u2'",
            "a user's single sign-on identity never changes once set",
        ),
        (
            "users_oidc_identity_fixed",
            "UPDATE users SET oidc_issuer = NULL, oidc_subject = NULL WHERE id = 'u2'",
            "a user's single sign-on identity never changes once set",
        ),
        ("prompt_versions_never_deleted", "DELETE FROM prompt_versions", "prompt versions are never deleted"),
        (
            "prompt_versions_content_frozen",
            "UPDATE prompt_versions SET content = 'c2' WHERE name = 'objection'",
            "a prompt version is immutable; propose a new version",
        ),
        (
            "prompt_versions_content_frozen",
            // UPDATE OF fires on a listed column that is SET, even to its own value, on both.
            "UPDATE prompt_versions SET author = author, state = 'draft' WHERE name = 'objection'",
            "a prompt version is immutable; propose a new version",
        ),
        ("eval_runs_no_update", "UPDATE eval_runs SET passed = 0", "eval runs are append-only"),
        ("eval_runs_no_delete", "DELETE FROM eval_runs", "eval runs are append-only"),
        ("prompt_signatures_no_update", "UPDATE prompt_signatures SET reason = 'other'", "signatures are append-only"),
        ("prompt_signatures_no_delete", "DELETE FROM prompt_signatures", "signatures are append-only"),
        ("conversations_never_deleted", "DELETE FROM conversations", "conversations are never deleted"),
        ("conversation_turns_no_update", "UPDATE conversation_turns SET answer = 'b'", "conversation turns are append-only"),
        ("conversation_turns_no_delete", "DELETE FROM conversation_turns", "conversation turns are append-only"),
        ("medical_requests_never_deleted", "DELETE FROM medical_requests WHERE id = 'mr-1'", "medical requests are never deleted"),
        ("audit_log_no_update", "UPDATE audit_log SET output = 'x'", "the audit log is append-only"),
        ("audit_log_no_delete", "DELETE FROM audit_log", "the audit log is append-only"),
    ];
    for (trigger, sql, message) in refusals {
        let (a, b) = both.refused(sql);
        assert_eq!((a.as_str(), b.as_str()), (*message, *message), "{trigger}: {sql}");
    }
    // Nothing was changed by a refused statement.
    both.same("SELECT count(*) FROM case_history");
    assert_eq!(both.same("SELECT oidc_issuer, oidc_subject FROM users WHERE id = 'u2'"), vec![vec![Some("https://idp".into()), Some("sub-2".into())]]);
    assert_eq!(both.same("SELECT content FROM prompt_versions WHERE name = 'objection'"), vec![vec![Some("c".into())]]);

    // Every SQLite trigger is tried above and exists on PostgreSQL on the same table.
    let sqlite_triggers: BTreeSet<(String, String)> = both
        .sqlite_rows("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        .iter()
        .map(|r| (text(&r[0]).to_string(), text(&r[1]).to_string()))
        .collect();
    let tried: BTreeSet<&str> = refusals.iter().map(|r| r.0).collect();
    for (name, _) in &sqlite_triggers {
        assert!(tried.contains(name.as_str()), "the SQLite trigger {name} has no case in this test");
    }
    let pg_triggers: BTreeSet<(String, String)> = both
        .pg_rows("SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal")
        .iter()
        .map(|r| (text(&r[0]).to_string(), text(&r[1]).to_string()))
        .collect();
    let extra: BTreeSet<_> = pg_triggers.difference(&sqlite_triggers).cloned().collect();
    assert!(sqlite_triggers.is_subset(&pg_triggers), "missing on PostgreSQL: {:?}", sqlite_triggers.difference(&pg_triggers));

    // PostgreSQL only: TRUNCATE fires no DELETE trigger, so every table that
    // refuses DELETE also refuses TRUNCATE, with the same message (CASCADE, so
    // that a referencing table does not refuse it first for another reason).
    let mut truncates = BTreeSet::new();
    for (trigger, sql, message) in refusals.iter().filter(|r| r.1.starts_with("DELETE")) {
        let table = sql.split_whitespace().nth(2).unwrap();
        let e = both.pg(&format!("TRUNCATE {table} CASCADE")).expect_err(trigger);
        assert_eq!(e, *message, "TRUNCATE {table}");
        truncates.insert((format!("{table}_no_truncate"), table.to_string()));
    }
    assert_eq!(extra, truncates, "PostgreSQL's triggers beyond SQLite's are the TRUNCATE guards");
    assert_eq!(both.pg_rows("SELECT count(*) FROM case_history"), vec![vec![Some("1".to_string())]]);
}

#[test]
fn every_kind_of_constraint_refuses_the_same_rows_on_both() {
    let both = Both::open("pg_schema_constraints");
    fixture(&both);
    // A user row; `columns` and `values` add to the required ones (each starting with ", ").
    let user = |id: &str, role: &str, columns: &str, values: &str| {
        format!(
            "INSERT INTO users (id, name, role, token_hash, created_at, created_by{columns})
             VALUES ('{id}', 'N', '{role}', 'h', 't0', 'u1'{values})"
        )
    };
    let refused = [
        // CHECK (json_valid(…)), json_valid being a function of migration 2 on PostgreSQL.
        "INSERT INTO cases (id, kind, year, seq, state, question, reporter, flags_json, created_at, updated_at, due_at)
         VALUES ('PV-2026-000002', 'pharmacovigilance', 2026, 2, 'new', 'q', 'u2', '{not json', 't0', 't0', 't1')"
            .to_string(),
        "INSERT INTO case_intake (case_id, version, at, actor, intake_json) VALUES ('PV-2026-000001', 2, 't0', 'u2', '')".into(),
        // CHECK … IN (…), on text and on a 0/1 integer.
        "INSERT INTO case_history (case_id, at, actor, action, to_state) VALUES ('PV-2026-000001', 't0', 'u2', 'deleted', 'new')".into(),
        "UPDATE medical_requests SET consent = 2 WHERE id = 'mr-1'".into(),
        user("u9", "superuser", "", ""),
        // CHECK (length(…) = 64) and CHECK (length(trim(reason)) > 0).
        "INSERT INTO prompt_versions (name, version, kind, source_path, content, sha256, params_json, author, created_at, state, state_changed_at)
         VALUES ('objection', 2, 'prompt', 'p', 'c', 'abc', '{}', 'u1', 't0', 'draft', 't0')"
            .into(),
        format!(
            "INSERT INTO prompt_signatures (name, version, sha256, signer_id, signer_name, signer_role, meaning, reason, signed_at, binding)
             VALUES ('objection', 1, 's', 'u1', 'Una One', 'admin', 'rejected', '   ', 't0', '{H64}')"
        ),
        // CHECK ((a IS NULL) = (b IS NULL)).
        "INSERT INTO sessions (id, user_id, method, csrf, created_at, last_seen_at, auth_time, ended_at)
         VALUES ('s1', 'u1', 'password', 'c', 't0', 't0', 't0', 't1')"
            .into(),
        "INSERT INTO oidc_flows (state_hash, browser_hash, nonce, pkce_verifier, return_to, step_up_user, created_at)
         VALUES ('st', 'b', 'n', 'v', '/', 'u1', 't0')"
            .into(),
        // CHECK (version >= 1).
        "INSERT INTO case_intake (case_id, version, at, actor, intake_json) VALUES ('PV-2026-000001', 0, 't0', 'u2', '{}')".into(),
        // NOT NULL, and a primary key (NULL, then a duplicate).
        "INSERT INTO conversations (id, owner, created_at, updated_at) VALUES ('cv-2', NULL, 't0', 't0')".into(),
        "INSERT INTO conversations (id, owner, created_at, updated_at) VALUES (NULL, 'u2', 't0', 't0')".into(),
        "INSERT INTO conversations (id, owner, created_at, updated_at) VALUES ('cv-1', 'u2', 't0', 't0')".into(),
        // UNIQUE (case_id, version).
        "INSERT INTO case_intake (case_id, version, at, actor, intake_json) VALUES ('PV-2026-000001', 1, 't0', 'u2', '{}')".into(),
        // FOREIGN KEY, single and composite.
        "INSERT INTO case_history (case_id, at, actor, action, to_state) VALUES ('PV-2026-999999', 't0', 'u2', 'opened', 'new')".into(),
        "INSERT INTO eval_runs (name, version, sha256, suite_path, suite_sha256, versions_json, metrics_json, thresholds_json,
                                thresholds_sha256, passed, recorded_by, recorded_at)
         VALUES ('objection', 7, 's', 'e', 's', '[]', '{}', '{}', 's', 1, 'u1', 't0')"
            .into(),
        // A text where an integer goes (SQLite: STRICT).
        "INSERT INTO case_sequences (kind, year, last) VALUES ('pharmacovigilance', 'this year', 1)".into(),
    ];
    for sql in &refused {
        both.refused(sql);
    }

    // Partial unique indexes: one approved version per name; a token lookup key once.
    both.same(&format!(
        "INSERT INTO prompt_versions (name, version, kind, source_path, content, sha256, params_json, author, created_at, state, state_changed_at)
         VALUES ('objection', 2, 'prompt', 'p', 'c2', '{H64}', '{{\"temperature\": 0}}', 'u1', 't0', 'draft', 't0')"
    ));
    both.same("UPDATE prompt_versions SET state = 'approved' WHERE name = 'objection' AND version = 1");
    both.refused("UPDATE prompt_versions SET state = 'approved' WHERE name = 'objection' AND version = 2");
    both.same("UPDATE prompt_versions SET state = 'retired' WHERE name = 'objection' AND version = 1");
    both.same("UPDATE prompt_versions SET state = 'approved' WHERE name = 'objection' AND version = 2");
    both.same(&user("u4", "rep", ", token_lookup", ", 'k4'"));
    both.same(&user("u5", "rep", "", "")); // NULL lookups do not collide
    both.same(&user("u6", "rep", "", ""));
    both.refused(&user("u7", "rep", ", token_lookup", ", 'k4'"));
    both.refused(&user("u8", "rep", ", oidc_issuer, oidc_subject", ", 'https://idp', 'sub-2'"));

    // Defaults and identities: the same values come back.
    both.same("INSERT INTO eval_jobs (suite, state, by_user, started_at, report_dir) VALUES ('evals/a.toml', 'queued', 'u1', 't0', 'r')");
    both.same("INSERT INTO eval_jobs (suite, state, by_user, started_at, report_dir) VALUES ('evals/b.toml', 'queued', 'u1', 't0', 'r')");
    assert_eq!(
        both.same("SELECT id, done, total, version FROM eval_jobs ORDER BY id"),
        vec![vec![Some("1".into()), Some("0".into()), Some("0".into()), None], vec![Some("2".into()), Some("0".into()), Some("0".into()), None]]
    );
    // INSERT … RETURNING id is how both backends hand out an id (there is no
    // last_insert_rowid() here). One difference: a refused insert still takes
    // a value of PostgreSQL's identity sequence (sequences are not rolled
    // back), so ids can have gaps there — the two case_history inserts refused
    // above took 2 and 3. SQLite's AUTOINCREMENT gives 2.
    let reopened = "INSERT INTO case_history (case_id, at, actor, action, to_state)
                    VALUES ('PV-2026-000001', 't3', 'u1', 'reopened', 'new') RETURNING id";
    assert_eq!(both.sqlite(reopened), Ok(vec![vec![Some("2".into())]]));
    assert_eq!(both.pg(reopened), Ok(vec![vec![Some("4".into())]]));
    both.same("SELECT action FROM case_history ORDER BY id");
    // The upserts of the store, written for both: PostgreSQL needs the table
    // named on the right of SET (`last` alone is ambiguous with EXCLUDED there).
    let next = "INSERT INTO case_sequences (kind, year, last) VALUES ('medical_information', 2026, 1)
                ON CONFLICT (kind, year) DO UPDATE SET last = case_sequences.last + 1 RETURNING last";
    assert_eq!(both.same(next), vec![vec![Some("1".into())]]);
    assert_eq!(both.same(next), vec![vec![Some("2".into())]]);
    let e = both.pg(&next.replace("case_sequences.last + 1", "last + 1")).unwrap_err();
    assert!(e.contains("ambiguous"), "{e}");
    let fail = |at: &str| {
        format!(
            "INSERT INTO sign_in_failures (addr, user_id, window_start, reason, count, first_at, last_at)
             VALUES ('cli:ops', 'u1', 'w0', 'wrong token', 1, '{at}', '{at}')
             ON CONFLICT (addr, user_id, window_start, reason) DO UPDATE SET count = sign_in_failures.count + 1, last_at = excluded.last_at
             RETURNING count, last_at"
        )
    };
    both.same(&fail("t1"));
    assert_eq!(both.same(&fail("t2")), vec![vec![Some("2".into()), Some("t2".into())]]);
}

#[test]
fn text_sorts_as_on_sqlite_in_a_database_whose_default_collation_is_not_byte_order() {
    // A database whose default is ICU's en-US (as many servers' en_US.UTF-8):
    // it sorts 'a' < 'B', SQLite's BINARY sorts 'B' < 'a'. The columns say COLLATE "C".
    let cluster = pg_cluster();
    let admin = format!("postgres://onlabel@127.0.0.1:{}/postgres", cluster.port);
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
    c.batch_execute("DROP DATABASE IF EXISTS pg_schema_icu").unwrap();
    c.batch_execute("CREATE DATABASE pg_schema_icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'").unwrap();
    let both = Both::open_url(&format!("postgres://onlabel@127.0.0.1:{}/pg_schema_icu", cluster.port));
    let values = "SELECT 'b' AS x UNION ALL SELECT 'B' UNION ALL SELECT 'a' UNION ALL SELECT 'A' UNION ALL SELECT '_z' ORDER BY x";
    let (plain, byte_order) = (both.pg_rows(values), both.sqlite_rows(values));
    assert_ne!(plain, byte_order, "the database's default collation must differ from byte order for this test to mean anything");
    for id in ["b", "B", "a", "A", "_z", "é", "z"] {
        both.same(&format!("INSERT INTO users (id, name, role, token_hash, created_at, created_by) VALUES ('{id}', '{id}', 'rep', 'h', 't0', 'x')"));
    }
    let ids = both.same("SELECT id FROM users ORDER BY id");
    assert_eq!(ids.iter().map(|r| text(&r[0])).collect::<Vec<_>>(), ["A", "B", "_z", "a", "b", "z", "é"]);
    both.same("SELECT id FROM users WHERE id > 'Z' ORDER BY id DESC");
    // Not the schema's to fix, the queries': SQLite's LIKE ignores ASCII
    // case, PostgreSQL's does not; lower() of a column folds ASCII only on both
    // (SQLite's lower(), PostgreSQL's under "C"), but lower() of a bound value
    // or literal follows the database's default collation on PostgreSQL. So:
    // `lower(column) LIKE ?` with the pattern folded (ASCII) by the caller.
    let like = "SELECT name FROM users WHERE name LIKE 'b%' ORDER BY name";
    assert_eq!((both.sqlite_rows(like).len(), both.pg_rows(like).len()), (2, 1));
    assert_eq!(both.same("SELECT name FROM users WHERE lower(name) LIKE 'b%' ORDER BY name").len(), 2);
    both.same("INSERT INTO users (id, name, role, token_hash, created_at, created_by) VALUES ('É', 'É', 'rep', 'h', 't0', 'x')");
    assert_eq!(both.same("SELECT lower(name) FROM users WHERE id = 'É'"), vec![vec![Some("É".to_string())]]);
    assert_eq!((both.sqlite_rows("SELECT lower('É')"), both.pg_rows("SELECT lower('É')")), (vec![vec![Some("É".into())]], vec![vec![Some("é".into())]]));
}

#[test]
fn a_database_at_version_1_is_migrated_to_the_latest_keeping_its_audit_log() {
    // A database as an OnLabel with only PostgreSQL migration 1 left it, with one record.
    let url = pg_database("pg_schema_upgrade");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let first = &onlabel::store::PG_MIGRATIONS[0];
    assert_eq!((first.version, first.name), (1, "audit_log"));
    c.batch_execute(first.sql).unwrap();
    c.batch_execute(
        "CREATE TABLE onlabel_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
         INSERT INTO onlabel_migrations VALUES (1, 'audit_log', '2026-12-01T00:00:00.000Z');
         INSERT INTO audit_log (pos, seq, at, actor, role, action, passages_json, flags_json, timings_json, detail_json, prev_hash, hash)
         VALUES (1, 1, 't0', 'u1', 'admin', 'ask', '[]', '[]', '{}', '{}', 'p', 'h')",
    )
    .unwrap();
    let Database::Postgres(pg_url) = Database::parse(&url).unwrap() else { unreachable!() };
    let store = PgStore::open(&pg_url).unwrap();
    assert_eq!(store.schema_version().unwrap(), onlabel::store::migrations::latest_pg());
    let rows = c.query("SELECT version, name FROM onlabel_migrations ORDER BY version", &[]).unwrap();
    let want: Vec<(i64, String)> = onlabel::store::PG_MIGRATIONS.iter().map(|m| (m.version, m.name.to_string())).collect();
    assert_eq!(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1))).collect::<Vec<_>>(), want);
    let n: i64 = c.query_one("SELECT count(*) FROM audit_log", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    let n: i64 = c.query_one("SELECT count(*) FROM users", &[]).unwrap().get(0);
    assert_eq!(n, 0);
    drop(store);
    // Opening again finds nothing to do.
    let store = PgStore::open(&pg_url).unwrap();
    assert_eq!(store.schema_version().unwrap(), onlabel::store::migrations::latest_pg());
}
