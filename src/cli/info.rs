//! `onlabel info`: where OnLabel keeps things, and where each setting came
//! from (flag, environment, config file or default), so that a user never
//! has to guess which `onlabel.sqlite` holds their cases.

use std::path::{Path, PathBuf};

use super::config::{self, Source};
use super::{outln, Ctx, EXIT_OK};

/// One line of `info`: a setting, its value, where the value came from, and a note.
#[derive(Debug, serde::Serialize)]
struct Item {
    /// What the setting is.
    name: &'static str,
    /// Its value (an absolute path where possible), or none.
    path: Option<PathBuf>,
    /// Where the value came from.
    source: Source,
    /// Whether the path exists.
    exists: bool,
    /// What it means for the user.
    note: String,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

/// A path setting that only environment and config file can give to `info`.
fn setting(env: &str, file: Option<&PathBuf>, default: Option<PathBuf>) -> Option<(PathBuf, Source)> {
    match std::env::var_os(env).filter(|v| !v.is_empty()) {
        Some(v) => Some((PathBuf::from(v), Source::Env)),
        None => config::pick(None, "", file, default),
    }
}

fn item(name: &'static str, v: Option<(PathBuf, Source)>, note: impl Fn(bool) -> String) -> Item {
    match v {
        Some((p, source)) => {
            let p = absolute(&p);
            let exists = p.exists();
            Item { name, note: note(exists), path: Some(p), source, exists }
        }
        None => Item { name, path: None, source: Source::Default, exists: false, note: note(false) },
    }
}

/// Runs `onlabel info`.
pub fn run(ctx: &Ctx) -> anyhow::Result<i32> {
    let c = &ctx.config.config;
    let store = ctx.data.join(crate::store::FILE_NAME);
    let mut items = vec![
        Item {
            name: "config",
            path: ctx.config.path.clone().or_else(|| ctx.config.default_path.clone()),
            source: if ctx.config.path.is_some() && config::on_command_line("--config") {
                Source::Flag
            } else if ctx.config.path.is_some() && std::env::var_os("ONLABEL_CONFIG").is_some() {
                Source::Env
            } else {
                Source::Default
            },
            exists: ctx.config.path.is_some(),
            note: if ctx.config.path.is_some() {
                "read".into()
            } else {
                "not present (optional; TOML with data, index, model, embedder, rules)".into()
            },
        },
        item("store", Some((store, ctx.data_source)), |e| {
            if e {
                "cases, prompt registry, audit log and users".into()
            } else {
                "not created yet; created by the first escalation, `users add` or `prompts propose`".into()
            }
        }),
        item("index", setting("ONLABEL_INDEX", c.index.as_ref(), None), |e| {
            if e {
                "default --index".into()
            } else {
                "no default index: pass --index DIR, set ONLABEL_INDEX or `index =` in the config file".into()
            }
        }),
        item("model", setting("ONLABEL_MODEL", c.model.as_ref(), Some(PathBuf::from(super::DEFAULT_MODEL))), |e| {
            if e { "generator (GGUF)".into() } else { "missing: answers are extractive (run `bash models/fetch.sh`)".into() }
        }),
        item(
            "embedder",
            setting("ONLABEL_EMBEDDER", c.embedder.as_ref(), Some(PathBuf::from(crate::index::dense::DEFAULT_DIR))),
            |e| if e { "for `ingest --dense` and dense/fused retrieval".into() } else { "missing: BM25 retrieval only".into() },
        ),
    ];
    if let crate::store::Database::Postgres(url) = &ctx.database {
        items.insert(
            2,
            Item {
                name: "database",
                path: Some(PathBuf::from(url.shown())),
                source: ctx.database_source,
                exists: true,
                note: "PostgreSQL: all the state (users, cases, visits, the prompt registry, eval jobs, the audit log); the data directory keeps eval reports only".into(),
            },
        );
    }
    let rules = setting("ONLABEL_RULES", c.rules.as_ref(), None);
    items.push(match rules {
        Some(r) => item("rules", Some(r), |e| if e { "guard rules loaded from this folder".into() } else { "missing folder".into() }),
        None => {
            let v = crate::guard::Guard::builtin().map(|g| g.rules_version().to_string()).unwrap_or_else(|e| format!("unloadable: {e}"));
            Item { name: "rules", path: None, source: Source::Default, exists: true, note: format!("built into the binary ({v})") }
        }
    });
    if ctx.json {
        outln!("{}", super::signin::to_json(&serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "settings": items})));
        return Ok(EXIT_OK);
    }
    outln!("onlabel {}", env!("CARGO_PKG_VERSION"));
    for i in &items {
        let p = i.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "-".into());
        outln!("{:<9} {p}", format!("{}:", i.name));
        outln!("{:<9} ({}) {}", "", i.source.as_str(), i.note);
    }
    Ok(EXIT_OK)
}
