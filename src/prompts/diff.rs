//! A line diff (longest common subsequence) for `onlabel prompts diff`: the
//! artefacts are small text files, so the quadratic table is fine; over
//! [`MAX_CELLS`] it falls back to showing both sides whole.

/// Largest LCS table built (lines × lines).
pub const MAX_CELLS: usize = 4_000_000;

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// In both.
    Same(&'a str),
    /// Only in the old text.
    Removed(&'a str),
    /// Only in the new text.
    Added(&'a str),
}

/// The line diff of `old` → `new`.
pub fn lines<'a>(old: &'a str, new: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        return a.iter().map(|l| Line::Removed(l)).chain(b.iter().map(|l| Line::Added(l))).collect();
    }
    // lcs[i][j] = LCS length of a[i..] and b[j..]
    let w = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * w + j] =
                if a[i] == b[j] { lcs[(i + 1) * w + j + 1] + 1 } else { lcs[(i + 1) * w + j].max(lcs[i * w + j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| Line::Removed(l)));
    out.extend(b[j..].iter().map(|l| Line::Added(l)));
    out
}

/// A unified-style rendering with `context` unchanged lines around each change.
pub fn unified(old_label: &str, new_label: &str, old: &str, new: &str, context: usize) -> String {
    let d = lines(old, new);
    let mut s = format!("--- {old_label}\n+++ {new_label}\n");
    let changed: Vec<bool> = d.iter().map(|l| !matches!(l, Line::Same(_))).collect();
    if !changed.iter().any(|c| *c) {
        s.push_str("(no change in content)\n");
        return s;
    }
    let near = |k: usize| {
        let lo = k.saturating_sub(context);
        let hi = (k + context + 1).min(d.len());
        changed[lo..hi].iter().any(|c| *c)
    };
    let mut skipped = false;
    for (k, l) in d.iter().enumerate() {
        if !near(k) {
            if !skipped {
                s.push_str("@@ … @@\n");
                skipped = true;
            }
            continue;
        }
        skipped = false;
        match l {
            Line::Same(t) => s.push_str(&format!(" {t}\n")),
            Line::Removed(t) => s.push_str(&format!("-{t}\n")),
            Line::Added(t) => s.push_str(&format!("+{t}\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_line_diff() {
        let d = lines("a\nb\nc\n", "a\nx\nc\nd\n");
        assert_eq!(d, vec![Line::Same("a"), Line::Removed("b"), Line::Added("x"), Line::Same("c"), Line::Added("d")]);
        let u = unified("v1", "v2", "a\nb\nc\n", "a\nx\nc\n", 0);
        assert!(u.contains("-b\n+x\n") && !u.contains(" a\n"), "{u}");
    }
}

/// The metrics a comparison shows, in order.
pub const SHOWN: &[&str] = &[
    "route_accuracy",
    "citation_recall",
    "citation_precision",
    "supported_sentence_rate",
    "ae_f1",
    "mention_f1",
    "latency_ms_p50",
    "latency_ms_p95",
];

/// One metric of one suite, before and after.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricRow {
    /// The suite path.
    pub suite: String,
    /// The metric.
    pub metric: String,
    /// Its value for the version compared against.
    pub against: Option<f64>,
    /// Its value for the new version.
    pub new: Option<f64>,
    /// Whether the new version's run passed its thresholds.
    pub passed: bool,
}

/// A version against another (by default the approved one, else the one
/// before): the text diff and the metric deltas of their newest eval runs.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The version shown.
    pub new: super::Version,
    /// The version it is compared against, if any.
    pub old: Option<super::Version>,
    /// Unified diff, old → new.
    pub text: String,
    /// The newest eval run per suite of `new`.
    pub new_runs: Vec<super::EvalRun>,
    /// The same for `old`.
    pub old_runs: Vec<super::EvalRun>,
    /// Metric rows, suite by suite.
    pub rows: Vec<MetricRow>,
}

impl Comparison {
    /// The JSON of `prompts diff --json` and of `GET /api/v1/prompts/{id}/diff`.
    pub fn to_json(&self) -> serde_json::Value {
        let metrics: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({"suite": r.suite, "metric": r.metric, "against": r.against, "new": r.new,
                    "delta": match (r.against, r.new) { (Some(o), Some(n)) => Some(n - o), _ => None }})
            })
            .collect();
        serde_json::json!({"id": self.new.id(), "against": self.old.as_ref().map(|o| o.id()), "diff": self.text,
            "eval_runs": self.new_runs, "against_eval_runs": self.old_runs, "metrics": metrics})
    }
}

/// Compares `id` with `against` (default: the approved version, else the one before).
pub fn compare(reg: &super::Registry<'_>, id: &super::VersionId, against: Option<&super::VersionId>) -> super::Result<Comparison> {
    use super::{EvalRun, State, Version, VersionId};
    let new = reg.get(id)?;
    let old = match against {
        Some(a) => Some(reg.get(a)?),
        None => {
            let all = reg.versions(Some(&id.name))?;
            all.iter()
                .find(|v| v.state == State::Approved && v.version != new.version)
                .or_else(|| all.iter().rev().find(|v| v.version < new.version))
                .cloned()
        }
    };
    let (old_label, old_text) = match &old {
        Some(o) => (format!("{} ({})", o.id(), o.state), o.content.clone()),
        None => ("(nothing)".to_string(), String::new()),
    };
    let text = unified(&old_label, &format!("{} ({})", new.id(), new.state), &old_text, &new.content, 3);
    let latest = |v: &Version| -> super::Result<Vec<EvalRun>> {
        let runs = reg.eval_runs(&VersionId { name: v.name.clone(), version: v.version })?;
        // The newest run per suite.
        let mut by_suite: Vec<EvalRun> = Vec::new();
        for r in runs.into_iter().rev() {
            if !by_suite.iter().any(|b| b.suite_sha256 == r.suite_sha256) {
                by_suite.push(r);
            }
        }
        Ok(by_suite)
    };
    let new_runs = latest(&new)?;
    let old_runs = match &old {
        Some(o) => latest(o)?,
        None => Vec::new(),
    };
    let mut rows = Vec::new();
    for r in &new_runs {
        let base = old_runs.iter().find(|o| o.suite_sha256 == r.suite_sha256);
        for k in SHOWN {
            let n = r.metrics.get(*k).and_then(|v| v.as_f64());
            let o = base.and_then(|b| b.metrics.get(*k)).and_then(|v| v.as_f64());
            if n.is_some() || o.is_some() {
                rows.push(MetricRow { suite: r.suite_path.clone(), metric: k.to_string(), against: o, new: n, passed: r.passed });
            }
        }
    }
    Ok(Comparison { new, old, text, new_runs, old_runs, rows })
}
