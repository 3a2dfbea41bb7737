//! Command-line options of the remote generator: `--generator-url URL
//! [--generator-model NAME]` and its timeouts, retries and breaker
//! (`[generator]` in the config file), for every query command
//! (`serve` above all; `ask` and `eval` take them too).

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::llm::remote::{BreakerConfig, GrammarField, RemoteConfig};
use crate::llm::RemoteModel;

/// Options of the OpenAI-compatible generator backend.
#[derive(Debug, Args, Clone, Default)]
pub struct GeneratorArgs {
    /// An OpenAI-compatible inference server (llama.cpp's llama-server,
    /// vLLM, TGI) that writes the answers instead of the in-process model,
    /// e.g. http://127.0.0.1:8081. Every sentence it writes is verified and
    /// screened as the local model's are; while it is down, answers are quoted.
    #[arg(long, value_name = "URL", env = "ONLABEL_GENERATOR_URL")]
    pub generator_url: Option<String>,
    /// The model to ask the server for (default: the first one its /v1/models lists).
    #[arg(long, value_name = "NAME", env = "ONLABEL_GENERATOR_MODEL")]
    pub generator_model: Option<String>,
    /// Seconds to wait for a connection to the server [default: 2].
    #[arg(long, value_name = "SECS", env = "ONLABEL_GENERATOR_CONNECT_TIMEOUT", value_parser = positive_secs)]
    pub generator_connect_timeout: Option<f64>,
    /// Seconds a whole call to the server may take, retries and the streamed answer included [default: 30].
    #[arg(long, value_name = "SECS", env = "ONLABEL_GENERATOR_TIMEOUT", value_parser = positive_secs)]
    pub generator_timeout: Option<f64>,
    /// Retries when the server answers 429 or 503 (after its Retry-After) [default: 2].
    #[arg(long, value_name = "N", env = "ONLABEL_GENERATOR_RETRIES")]
    pub generator_retries: Option<u32>,
    /// Failed calls in a row after which the circuit opens and answers are quoted without trying the server [default: 3].
    #[arg(long, value_name = "N", env = "ONLABEL_GENERATOR_BREAKER_FAILURES", value_parser = clap::value_parser!(u32).range(1..))]
    pub generator_breaker_failures: Option<u32>,
    /// Seconds the circuit stays open before one call probes the server again [default: 30].
    #[arg(long, value_name = "SECS", env = "ONLABEL_GENERATOR_COOL_DOWN", value_parser = positive_secs)]
    pub generator_cool_down: Option<f64>,
    /// Which request field carries the copy constraint's grammar: auto
    /// (llama.cpp's `grammar` when the server answers GET /props), llama-cpp,
    /// vllm (`guided_grammar`) or off [default: auto].
    #[arg(long, value_name = "FIELD", env = "ONLABEL_GENERATOR_GRAMMAR", value_parser = ["auto", "llama-cpp", "vllm", "off"])]
    pub generator_grammar: Option<String>,
}

/// The config file's `[generator]` table: the same settings as the flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// `--generator-url`.
    pub url: Option<String>,
    /// `--generator-model`.
    pub model: Option<String>,
    /// `--generator-connect-timeout`, seconds.
    pub connect_timeout: Option<f64>,
    /// `--generator-timeout`, seconds.
    pub timeout: Option<f64>,
    /// `--generator-retries`.
    pub retries: Option<u32>,
    /// `--generator-breaker-failures`.
    pub breaker_failures: Option<u32>,
    /// `--generator-cool-down`, seconds.
    pub cool_down: Option<f64>,
    /// `--generator-grammar`.
    pub grammar: Option<String>,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds between 0 and 3600 (e.g. 2 or 0.5)")),
    }
}

impl GeneratorArgs {
    /// Fills what neither a flag nor the environment gave from the config file.
    pub fn fill(&mut self, c: Option<&GeneratorConfig>) {
        let Some(c) = c else { return };
        fn take<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(v);
            }
        }
        take(&mut self.generator_url, &c.url);
        take(&mut self.generator_model, &c.model);
        take(&mut self.generator_connect_timeout, &c.connect_timeout);
        take(&mut self.generator_timeout, &c.timeout);
        take(&mut self.generator_retries, &c.retries);
        take(&mut self.generator_breaker_failures, &c.breaker_failures);
        take(&mut self.generator_cool_down, &c.cool_down);
        take(&mut self.generator_grammar, &c.grammar);
    }

    /// The client settings, when a URL is given.
    pub fn config(&self) -> Result<Option<RemoteConfig>, crate::cli::error::Error> {
        let Some(url) = &self.generator_url else { return Ok(None) };
        let mut c = RemoteConfig::new(url.clone());
        c.model = self.generator_model.clone();
        // The config file's values are not checked by clap: check them here.
        let secs = |field: &'static str, v: Option<f64>, default: Duration| -> Result<Duration, crate::cli::error::Error> {
            match v {
                None => Ok(default),
                Some(v) => positive_secs(&v.to_string()).map(Duration::from_secs_f64).map_err(|reason| crate::cli::error::Error::BadInput { field, reason }),
            }
        };
        c.connect_timeout = secs("--generator-connect-timeout", self.generator_connect_timeout, c.connect_timeout)?;
        c.timeout = secs("--generator-timeout", self.generator_timeout, c.timeout)?;
        c.retries = self.generator_retries.unwrap_or(c.retries);
        let failures = self.generator_breaker_failures.unwrap_or(BreakerConfig::default().failures);
        if failures == 0 {
            return Err(crate::cli::error::Error::BadInput { field: "--generator-breaker-failures", reason: "must be at least 1".into() });
        }
        c.breaker = BreakerConfig { failures, cool_down: secs("--generator-cool-down", self.generator_cool_down, BreakerConfig::default().cool_down)? };
        if let Some(g) = &self.generator_grammar {
            c.grammar = g.parse::<GrammarField>().map_err(|reason| crate::cli::error::Error::BadInput { field: "--generator-grammar", reason })?;
        }
        Ok(Some(c))
    }

    /// The client, when a URL is given (an unusable URL is `bad_generator_url`).
    pub fn remote(&self) -> anyhow::Result<Option<RemoteModel>> {
        let Some(c) = self.config()? else { return Ok(None) };
        let r = RemoteModel::new(c).map_err(|e| crate::Error::from(crate::llm::Error::from(e)))?;
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_no_server_and_defaults_otherwise() {
        assert!(GeneratorArgs::default().config().unwrap().is_none());
        let a = GeneratorArgs { generator_url: Some("http://127.0.0.1:8081".into()), ..Default::default() };
        let c = a.config().unwrap().unwrap();
        assert_eq!((c.connect_timeout, c.timeout, c.retries, c.breaker, c.grammar), (Duration::from_secs(2), Duration::from_secs(30), 2, BreakerConfig::default(), GrammarField::Auto));
    }

    #[test]
    fn bad_values_from_the_config_file_name_their_option() {
        let url = Some("http://127.0.0.1:8081".to_string());
        let e = GeneratorArgs { generator_url: url.clone(), generator_cool_down: Some(-1.0), ..Default::default() }.config().unwrap_err().to_string();
        assert!(e.contains("--generator-cool-down") && e.contains("seconds"), "{e}");
        let e = GeneratorArgs { generator_url: url.clone(), generator_breaker_failures: Some(0), ..Default::default() }.config().unwrap_err().to_string();
        assert!(e.contains("--generator-breaker-failures"), "{e}");
        let e = GeneratorArgs { generator_url: url, generator_grammar: Some("gbnf".into()), ..Default::default() }.config().unwrap_err().to_string();
        assert!(e.contains("--generator-grammar") && e.contains("llama-cpp"), "{e}");
        let e = GeneratorArgs { generator_url: Some("127.0.0.1:8081".into()), ..Default::default() }.remote().unwrap_err();
        assert_eq!(e.downcast_ref::<crate::Error>().map(crate::error::Coded::code), Some("bad_generator_url"), "{e:#}");
    }
}
