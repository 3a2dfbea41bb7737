//! PDF loading through pdf-extract, guarded against its panics.

use std::path::Path;

use super::{Error, Result};

/// Extracts the text of a PDF, page by page joined with form feeds, and the
/// page count. Encrypted and corrupt files are clear errors; a panic inside
/// pdf-extract (it panics on some malformed files by design,
/// jrmuizel/pdf-extract#47) becomes [`Error::Extract`].
pub fn extract(path: &Path) -> Result<(String, usize)> {
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
    let n = pages.len();
    let text = pages.iter().map(|p| strip_furniture(p)).collect::<Vec<_>>().join("\n\u{c}\n");
    Ok((text, n))
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
