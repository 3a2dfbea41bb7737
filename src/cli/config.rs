//! [`Config`]: the optional TOML config file, and where each setting came from.
//!
//! Precedence is file < environment < flags: clap reads the flag or its
//! `ONLABEL_…` variable; a setting given by neither is taken from the config
//! file; a setting in none of them gets its built-in default. The data
//! directory's default is the platform's per-user data directory (XDG on
//! Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on Windows),
//! never the current folder: an adverse event asked from another folder must
//! land in the same case queue as every other.
//!
//! The file is `--config FILE` (`ONLABEL_CONFIG`), or else `config.toml` in
//! the platform's per-user config directory when it exists. Relative paths
//! in the file are relative to the file's own folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What can go wrong finding or reading the config file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file named by `--config` / `ONLABEL_CONFIG` cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a field OnLabel does not know.
    #[error("invalid config file {path}: {message}\n  hint: the config file accepts data, database, index, model, embedder, rules, a [generator] and an [oidc] table")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the field and line).
        message: String,
    },
    /// No per-user data directory could be determined (no home directory).
    #[error("cannot find a per-user data directory (is HOME set?): pass --data DIR or set ONLABEL_DATA")]
    NoDataDir,
}

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "config_unreadable",
            Error::Parse { .. } => "config_invalid",
            Error::NoDataDir => "no_data_dir",
        }
    }
}

/// The settings a config file may hold (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The data directory holding `onlabel.sqlite` (cases, registry, audit log, users).
    pub data: Option<PathBuf>,
    /// Where the state lives, as `--database` takes it (`postgres://…` or
    /// `sqlite:PATH`); see [`crate::store::Database`].
    pub database: Option<String>,
    /// The index `ask`, `email`, `summarize`, `eval` and `ingest` use when `--index` is not given.
    pub index: Option<PathBuf>,
    /// The GGUF model of the generated path.
    pub model: Option<PathBuf>,
    /// The embedding model folder (dense retrieval).
    pub embedder: Option<PathBuf>,
    /// A folder with `rules/` and `lexicon/` that replaces the guard's built-in rules.
    pub rules: Option<PathBuf>,
    /// The OpenAI-compatible inference server that writes answers
    /// (`--generator-url` and its settings; see the README, Configuration).
    pub generator: Option<super::generator::GeneratorConfig>,
    /// Single sign-on: the OpenID Connect provider, OnLabel's client there
    /// and the mapping of its groups to roles (`onlabel serve` only; see
    /// [`crate::users::oidc::OidcConfig`] and docs/configuration.md).
    pub oidc: Option<crate::users::oidc::OidcConfig>,
}

/// Where a setting's value came from (printed by `onlabel info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An `ONLABEL_…` environment variable.
    Env,
    /// The config file.
    ConfigFile,
    /// The built-in default.
    Default,
}

impl Source {
    /// How `info` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::ConfigFile => "config file",
            Source::Default => "default",
        }
    }
}

/// The config file in use, if any, and its settings (paths already made absolute).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The file read, if one was.
    pub path: Option<PathBuf>,
    /// Where the file would be looked for by default (shown by `info`).
    pub default_path: Option<PathBuf>,
    /// Its settings.
    pub config: Config,
}

/// The platform's directories for OnLabel (`None` without a home directory).
fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "onlabel")
}

/// The default data directory: the platform's per-user data directory for OnLabel.
pub fn default_data_dir() -> Result<PathBuf, Error> {
    project_dirs().map(|d| d.data_dir().to_owned()).ok_or(Error::NoDataDir)
}

/// The default config file: `config.toml` in the per-user config directory.
pub fn default_config_file() -> Option<PathBuf> {
    project_dirs().map(|d| d.config_dir().join("config.toml"))
}

/// Reads `explicit` (an error if it cannot be read), or the default config
/// file when it exists, or nothing.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, Error> {
    let default_path = default_config_file();
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => match &default_path {
            Some(p) if p.is_file() => p.clone(),
            _ => return Ok(Loaded { path: None, default_path, config: Config::default() }),
        },
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    let mut config = parse(&path, &text)?;
    let base = path.parent().map(Path::to_owned).unwrap_or_default();
    for p in [&mut config.data, &mut config.index, &mut config.model, &mut config.embedder, &mut config.rules]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(Loaded { path: Some(path), default_path, config })
}

/// Parses config text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
    toml::from_str(text).map_err(|e| Error::Parse { path: path.to_owned(), message: e.to_string() })
}

/// Whether `flag` (e.g. `--data`) was typed on the command line, as opposed
/// to coming from its environment variable.
pub fn on_command_line(flag: &str) -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('='))
    })
}

/// Resolves one path setting: the flag or env value clap found, else the
/// config file's, else `default`.
pub fn pick(cli: Option<&PathBuf>, flag: &str, file: Option<&PathBuf>, default: Option<PathBuf>) -> Option<(PathBuf, Source)> {
    match (cli, file) {
        (Some(v), _) => Some((v.clone(), if on_command_line(flag) { Source::Flag } else { Source::Env })),
        (None, Some(v)) => Some((v.clone(), Source::ConfigFile)),
        (None, None) => default.map(|d| (d, Source::Default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named_with_its_line() {
        let e = parse(Path::new("c.toml"), "data = \"/x\"\ndtaa = \"/y\"\n").unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("dtaa") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn the_generator_table_is_read_and_checked() {
        let c = parse(Path::new("c.toml"), "[generator]\nurl = \"http://10.0.0.7:8081\"\nmodel = \"m\"\ncool_down = 5\n").unwrap();
        let g = c.generator.unwrap();
        assert_eq!((g.url.as_deref(), g.model.as_deref(), g.cool_down), (Some("http://10.0.0.7:8081"), Some("m"), Some(5.0)));
        let e = parse(Path::new("c.toml"), "[generator]\nurll = \"http://x\"\n").unwrap_err().to_string();
        assert!(e.contains("urll") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "data = \"store\"\nindex = \"/abs/idx\"\n").unwrap();
        let l = load(Some(&f)).unwrap();
        assert_eq!(l.config.data, Some(dir.path().join("store")));
        assert_eq!(l.config.index, Some(PathBuf::from("/abs/idx")));
    }

    #[test]
    fn flag_or_env_beats_file_beats_default() {
        let (f, d) = (PathBuf::from("/file"), PathBuf::from("/default"));
        assert_eq!(pick(None, "--data", Some(&f), Some(d.clone())), Some((f.clone(), Source::ConfigFile)));
        assert_eq!(pick(None, "--data", None, Some(d.clone())), Some((d, Source::Default)));
        let c = PathBuf::from("/cli");
        assert_eq!(pick(Some(&c), "--no-such-flag", Some(&f), None).map(|p| p.0), Some(c));
    }
}


crate::coded!(Error);
