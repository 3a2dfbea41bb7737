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
