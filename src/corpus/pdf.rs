//! PDF loading through pdf-extract, guarded against its panics.

use std::path::Path;

use super::{Error, Result};

/// Extracts the text of a PDF, page by page joined with form feeds, and the
/// page count. Encrypted and corrupt files are clear errors; a panic inside
/// pdf-extract (it panics on some malformed files by design,
/// jrmuizel/pdf-extract#47) becomes [`Error::Extract`].
pub fn extract(path: &Path) -> Result<(String, usize)> {
    let pages = extract_pages(path)?;
    Ok((pages.join("\n\u{c}\n"), pages.len()))
}

/// Extracts the text of each page of a PDF (page furniture stripped), in
/// page order: what [`extract`] joins, and what [`PageMap`] maps passages
/// back to. Errors as [`extract`].
pub fn extract_pages(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_owned(), source: e })?;
    check_bytes(path, &bytes)?;
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(&bytes));
    let pages = match result {
        Ok(Ok(pages)) => pages,
        Ok(Err(e)) => {
            let message = e.to_string();
            if message.to_ascii_lowercase().contains("encrypt") {
                return Err(Error::Encrypted { path: path.to_owned() });
            }
            return Err(Error::Extract { path: path.to_owned(), message });
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "pdf-extract panicked".into());
            return Err(Error::Extract { path: path.to_owned(), message: format!("pdf-extract panicked: {message}") });
        }
    };
    Ok(pages.iter().map(|p| strip_furniture(p)).collect())
}

/// Characters of a passage's start looked up in the pages: long enough to
/// be unique in a label (about six words), short enough to stay on the page
/// the passage starts on.
pub const PAGE_KEY_CHARS: usize = 48;

/// Maps passage text back to the PDF page it was extracted from.
///
/// Passages are cut from the text of all pages joined, after normalisation
/// and line joining (`structure::detect`, `chunk`), so their spaces and line
/// breaks differ from the page text; letters and digits do not. Each page is
/// reduced to its lower-case letters and digits, the pages are concatenated
/// with their start offsets kept, and a passage's first [`PAGE_KEY_CHARS`]
/// letters and digits are searched from where the previous passage was found
/// (passages come in reading order; the Highlights page repeats text that the
/// full prescribing information states later), then from the start. The page
/// is the one holding the first character found: a passage that runs onto
/// the next page is cited at the page it starts on.
#[derive(Debug, Clone)]
pub struct PageMap {
    /// All pages' letters and digits, lower-case, concatenated.
    text: Vec<char>,
    /// Offset in `text` where each page starts.
    starts: Vec<usize>,
    /// Where the previous passage was found.
    cursor: usize,
}

impl PageMap {
    /// A map over the text of each page (as [`extract_pages`] returns it).
    pub fn new(pages: &[String]) -> PageMap {
        let mut text = Vec::new();
        let mut starts = Vec::with_capacity(pages.len());
        for p in pages {
            starts.push(text.len());
            text.extend(comparable(&super::normalize(p)));
        }
        PageMap { text, starts, cursor: 0 }
    }

    /// The 1-based page on which `passage` starts, or `None` when its start
    /// is on no page (text the loader rewrote, such as a heading that became
    /// its own statement).
    pub fn page_of(&mut self, passage: &str) -> Option<u32> {
        let key: Vec<char> = comparable(passage).take(PAGE_KEY_CHARS).collect();
        if key.is_empty() {
            return None;
        }
        let at = find(&self.text, &key, self.cursor).or_else(|| find(&self.text, &key, 0))?;
        self.cursor = at + key.len();
        let page = self.starts.partition_point(|&s| s <= at);
        u32::try_from(page).ok().filter(|&p| p >= 1)
    }
}

/// The lower-case letters and digits of a text (NFKC already applied).
fn comparable(s: &str) -> impl Iterator<Item = char> + '_ {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase)
}

fn find(hay: &[char], needle: &[char], from: usize) -> Option<usize> {
    if from >= hay.len() || needle.len() > hay.len() - from {
        return None;
    }
    hay[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

/// Rejects what is certainly not a usable PDF before handing it to the parser.
fn check_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    if !bytes.starts_with(b"%PDF-") {
        let message = if bytes.is_empty() { "the file is empty" } else { "the file does not start with %PDF-" };
        return Err(Error::Corrupt { path: path.to_owned(), format: "PDF", message: message.into() });
    }
    // The trailer of an encrypted PDF names an /Encrypt dictionary.
    let tail_start = bytes.len().saturating_sub(64 * 1024);
    if memfind(&bytes[tail_start..], b"/Encrypt").is_some() || memfind(bytes, b"/Encrypt ").is_some() {
        return Err(Error::Encrypted { path: path.to_owned() });
    }
    if memfind(&bytes[tail_start..], b"%%EOF").is_none() {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            format: "PDF",
            message: "no %%EOF marker: the file is truncated".into(),
        });
    }
    Ok(())
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Removes page furniture: `Reference ID: NNN` lines, page numbers alone on a
/// line at the top or bottom of the page, `Page N of M`.
fn strip_furniture(page: &str) -> String {
    let lines: Vec<&str> = page.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let last = lines.iter().rposition(|l| !l.trim().is_empty()).unwrap_or(0);
    let mut out = String::with_capacity(page.len());
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let is_number = !t.is_empty() && t.len() <= 3 && t.chars().all(|c| c.is_ascii_digit());
        if (is_number && (i == first || i == last))
            || t.starts_with("Reference ID:")
            || (t.starts_with("Page ") && t.contains(" of ") && t.len() < 20)
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn furniture_is_stripped() {
        let s = strip_furniture("12\nText line\n5 Days\nReference ID: 4690158\n");
        assert_eq!(s, "Text line\n5 Days\n");
    }

    #[test]
    fn page_map_finds_the_page_a_passage_starts_on() {
        let pages = vec![
            "Highlights: take with food.\n".to_string(),
            "1 INDICATIONS\nTestra is indicated for adults.\nTake with\n".to_string(),
            "food, once daily.\n".to_string(),
        ];
        let mut m = PageMap::new(&pages);
        assert_eq!(m.page_of("Testra is indicated for adults."), Some(2));
        // After the cursor: the later copy, not the Highlights' one.
        assert_eq!(m.page_of("Take with food, once daily."), Some(2));
        assert_eq!(m.page_of("once daily"), Some(3));
        // Before the cursor, found from the start again.
        assert_eq!(m.page_of("Highlights"), Some(1));
        assert_eq!(m.page_of("nowhere in this label"), None);
        assert_eq!(m.page_of(" - "), None);
    }

    #[test]
    fn not_a_pdf_is_corrupt() {
        let e = check_bytes(Path::new("x.pdf"), b"hello").unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }));
    }

    #[test]
    fn truncated_pdf_is_corrupt() {
        let e = check_bytes(Path::new("x.pdf"), b"%PDF-1.4\n1 0 obj").unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}
