//! Windows over a long input: [`super::Guard::screen_long`] screens visit
//! notes or a pasted email of any length in overlapping windows of at most
//! [`WINDOW_CHARS`] characters, cut at sentence ends where possible.

/// Largest window [`super::Guard::screen_long`] screens at once, in characters (the
/// question limit of the copilot: what one screening is tuned and timed for).
pub const WINDOW_CHARS: usize = 2_000;
/// Overlap between consecutive windows, in characters: longer than a long
/// sentence, so no sentence is only ever seen cut in two.
pub const WINDOW_OVERLAP_CHARS: usize = 400;

/// Byte ranges of overlapping windows over `text` of at most `max` chars,
/// overlapping by `overlap` chars, ending at a sentence end (". ", "? ", "! "
/// or a line break) in the window's last third where there is one.
pub(super) fn windows(text: &str, max: usize, overlap: usize) -> Vec<(usize, usize)> {
    let idx: Vec<usize> = text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len())).collect();
    let n = idx.len() - 1;
    if n <= max {
        return vec![(0, text.len())];
    }
    let mut out = Vec::new();
    let mut start = 0usize; // in chars
    loop {
        let hard_end = (start + max).min(n);
        let mut end = hard_end;
        if hard_end < n {
            let lo = start + max * 2 / 3;
            if let Some(cut) = (lo..hard_end).rev().find(|&c| {
                let b = idx[c];
                matches!(text.as_bytes().get(b), Some(b'\n')) || (matches!(text.as_bytes().get(b), Some(b' ')) && b > 0 && matches!(text.as_bytes()[b - 1], b'.' | b'?' | b'!'))
            }) {
                end = cut + 1;
            }
        }
        out.push((idx[start], idx[end]));
        if end >= n {
            break;
        }
        start = end.saturating_sub(overlap).max(start + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_character_and_overlap() {
        let text: String = (0..400).map(|i| format!("Sentence number {i} is here. ")).collect();
        let w = windows(&text, 2_000, 400);
        assert!(w.len() > 5);
        assert_eq!(w[0].0, 0);
        assert_eq!(w.last().unwrap().1, text.len());
        for p in w.windows(2) {
            assert!(p[1].0 < p[0].1, "windows overlap: {p:?}");
            assert!(p[0].1 - p[1].0 >= 300, "overlap is long enough: {p:?}");
        }
        for &(a, b) in &w {
            assert!(text[a..b].chars().count() <= 2_000);
        }
        assert_eq!(windows("short", 2_000, 400), vec![(0, 5)]);
    }
}
