//! Quantities named in a question: ages, body weights and doses, read from
//! normalised text with the patterns of the rules file (`[offlabel]`
//! quantities), for the off-label judge.

use super::rules;

/// Ages named in normalised text, in years, with their spans.
pub(super) fn question_ages(q: &rules::Quantities, t: &str) -> Vec<(f64, (usize, usize))> {
    let mut out = Vec::new();
    for c in q.age_years.captures_iter(t) {
        let m = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
        if let Some(v) = (1..=5).find_map(|i| c.get(i)).and_then(|g| g.as_str().parse::<f64>().ok()) {
            out.push((v, m));
        }
    }
    for c in q.age_months.captures_iter(t) {
        let m = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
        if let Ok(v) = c[1].parse::<f64>() {
            out.push((v / 12.0, m));
        }
    }
    for c in q.age_under.captures_iter(t) {
        let m = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
        if let Some(v) = c.get(1).or(c.get(2)).and_then(|g| g.as_str().parse::<f64>().ok()) {
            out.push((v - 0.5, m));
        }
    }
    for c in q.age_older.captures_iter(t) {
        let m = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
        if let Ok(v) = c[1].parse::<f64>() {
            if !out.iter().any(|o| o.1 .0 <= m.0 && m.0 < o.1 .1) {
                out.push((v, m));
            }
        }
    }
    out
}

/// Body weights (kg, not mg/kg) named in normalised text.
pub(super) fn weights(q: &rules::Quantities, t: &str) -> Vec<(f64, (usize, usize))> {
    q.weight_kg
        .captures_iter(t)
        .filter_map(|c| {
            let m = c.get(0)?;
            if t[..m.start()].ends_with('/') || t[..m.start()].ends_with("mg/") {
                return None;
            }
            Some((c[1].parse().ok()?, (m.start(), m.end())))
        })
        .collect()
}

/// Doses asked about: `(value, per kg, span)`. Explicit `N mg` and `N mg/kg`,
/// a number right after the product's name ("lipitor 80"), and "bump her to 40".
pub(super) fn question_doses(q: &rules::Quantities, t: &str, product_spans: &[(usize, usize)]) -> Vec<(f64, bool, (usize, usize))> {
    let mut out: Vec<(f64, bool, (usize, usize))> = Vec::new();
    for c in q.dose_mg.captures_iter(t) {
        let m = c.get(0).map(|m| (m.start(), m.end())).unwrap_or_default();
        if t[m.1..].starts_with("/ml") || t[m.1..].starts_with("/m2") {
            continue;
        }
        if let Ok(v) = c[1].parse() {
            out.push((v, c.get(2).is_some(), m));
        }
    }
    let bare = &q.dose_after_product;
    for &(_, b) in product_spans {
        if let Some(c) = bare.captures(&t[b..]) {
            if c.get(2).is_none() {
                if let Ok(v) = c[1].parse() {
                    out.push((v, false, (b + 1, b + c.get(0).map_or(0, |m| m.end()))));
                }
            }
        }
    }
    for c in q.dose_target.captures_iter(t) {
        if c.get(2).is_some() {
            continue;
        }
        let g = c.get(1).map(|m| (m.start(), m.end())).unwrap_or_default();
        if out.iter().any(|o| o.2 .0 <= g.0 && g.0 < o.2 .1) {
            continue;
        }
        if let Ok(v) = c[1].parse() {
            out.push((v, false, g));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Guard;

    #[test]
    fn ages_doses_and_weights_are_read() {
        let t = "a 3-year-old, 13 kg, on 20 mg; kids under 4; bump her to 40";
        let g = Guard::builtin().expect("builtin rules compile");
        let q = &g.rules.quantities;
        let ages: Vec<f64> = question_ages(q, t).into_iter().map(|a| a.0).collect();
        assert_eq!(ages, vec![3.0, 3.5]);
        assert_eq!(weights(q, t).into_iter().map(|w| w.0).collect::<Vec<_>>(), vec![13.0]);
        let doses: Vec<f64> = question_doses(q, t, &[]).into_iter().map(|d| d.0).collect();
        assert_eq!(doses, vec![20.0, 40.0]);
    }
}
