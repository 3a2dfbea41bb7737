//! The approved source of a citation, one click away
//! (`/api/v1/documents…`): the cited passage in its document, with the
//! document's MLR number, validity and section heading.
//!
//! - `GET /api/v1/documents/{id}?passage=N` — the passage (the `N` of a
//!   citation's `source_url`), its PDF page, and its section rendered as
//!   HTML on the server (every character of the approved text escaped; the
//!   cited passage inside `<mark>`), for SPL, Markdown and text documents,
//!   and as the fallback for a PDF.
//! - `GET /api/v1/documents/{id}/file` — the approved PDF itself (the copy
//!   `ingest` keeps with the index, see [`crate::index::catalogue::pdf_copy`]),
//!   which the web UI renders with pdf.js at the cited page.
//!
//! A document is shown exactly when retrieval could cite it to the caller
//! today: approved, not expired, already approved, and of an audience the
//! caller's role may see ([`Filter::for_role`], applied by
//! [`crate::index::Index::document`]). Anything else — unknown, withdrawn,
//! expired, or Medical-only for a rep — is the same `404 not_found`, so a
//! rep learns nothing about documents they may not see.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum::extract::State as AxState;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Auth, ANY};
use super::{json, today, ApiError, Query, State, UrlPath};
use crate::corpus::Passage;
use crate::index::{catalogue, Filter};

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/api/v1/documents/{id}", get(show_document))
        .route("/api/v1/documents/{id}/file", get(document_file))
}

/// The query of [`show_document`].
#[derive(Debug, Deserialize)]
pub struct DocumentQuery {
    /// The passage's ordinal in its document (a citation's `source_url`);
    /// the document's first passage when absent.
    passage: Option<u32>,
}

/// The passages of `doc_id` the caller may see today, or the one 404.
/// With the directory of the index version that holds them (its PDF copies).
fn visible(st: &State, auth: &Auth, doc_id: &str) -> Result<(Vec<Passage>, std::path::PathBuf), ApiError> {
    let role = auth.0.role.as_str();
    let filter = Filter::for_role(role, None, today());
    let copilot = st.copilot.read().map_err(|_| ApiError::internal("the copilot lock is poisoned; restart the server"))?;
    let passages = copilot.index().document(doc_id, &filter)?;
    let dir = copilot.index().dir().to_path_buf();
    if passages.is_empty() {
        return Err(ApiError::coded(
            "not_found",
            format!("no approved, current document {doc_id:?} that a {role} may open (unknown, withdrawn, expired, or not for this role)"),
        ));
    }
    Ok((passages, dir))
}

/// The cited passage in its approved document: MLR number, validity, section
/// heading, PDF page, and the section as HTML with the passage marked.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "reps", security(("bearer" = [])),
    params(("id" = String, Path, description = "document id"), ("passage" = Option<u32>, Query, description = "the passage's ordinal (a citation's source_url)")),
    responses((status = 200, description = "{doc_id, product, kind, mlr_number, approved_on, expires_on, section, title, heading, page, passage, pdf_url, html, source_url}"),
        (status = 401, body = super::ErrorBody), (status = 404, description = "no such document visible to the caller today, or no such passage", body = super::ErrorBody)))]
pub async fn show_document(
    AxState(st): AxState<State>,
    auth: Auth,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    auth.require(ANY, "opening an approved document")?;
    let (passages, dir) = visible(&st, &auth, &id)?;
    let cited = match q.passage {
        Some(n) => passages.iter().find(|p| p.ordinal == n).ok_or_else(|| {
            ApiError::coded("not_found", format!("document {id:?} has no passage {n} (it has passages 0 to {})", passages.len().saturating_sub(1)))
        })?,
        None => &passages[0],
    };
    let has_pdf = catalogue::pdf_copy(&dir, &id).is_file();
    let section: Vec<&Passage> = passages.iter().filter(|p| p.section == cited.section).collect();
    Ok(json(json!({
        "doc_id": cited.doc_id,
        "product": cited.product,
        "kind": cited.kind.as_str(),
        "mlr_number": cited.mlr_number,
        "approved_on": cited.approved_on,
        "expires_on": cited.expires_on,
        "section": cited.section,
        "title": cited.title,
        "parent": cited.parent,
        "heading": heading(cited),
        "page": cited.page,
        "passage": {"ordinal": cited.ordinal, "text": cited.text, "page": cited.page},
        "pdf_url": has_pdf.then(|| format!("/api/v1/documents/{}/file", path_segment(&id))),
        "html": section_html(&section, cited.ordinal),
        "source_url": crate::copilot::source_url(&cited.doc_id, cited.ordinal),
    })))
}

/// The approved PDF, as ingested (`application/pdf`).
#[utoipa::path(get, path = "/api/v1/documents/{id}/file", tag = "reps", security(("bearer" = [])),
    params(("id" = String, Path, description = "document id")),
    responses((status = 200, description = "the PDF", content_type = "application/pdf"),
        (status = 401, body = super::ErrorBody), (status = 404, description = "no such PDF document visible to the caller today", body = super::ErrorBody)))]
pub async fn document_file(AxState(st): AxState<State>, auth: Auth, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    auth.require(ANY, "opening an approved document")?;
    let (passages, dir) = visible(&st, &auth, &id)?;
    let path = catalogue::pdf_copy(&dir, &id);
    let read = path.clone();
    let bytes: Vec<u8> = match tokio::task::spawn_blocking(move || std::fs::read(read))
        .await
        .map_err(|e| ApiError::internal(format!("reading a PDF: {e}")))?
    {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = if passages.iter().any(|p| p.page.is_some()) {
                "the index holds no copy of this PDF (it was built before copies were kept): re-run `onlabel ingest`"
            } else {
                "it is not a PDF; GET /api/v1/documents/{id} shows its section as HTML"
            };
            return Err(ApiError::coded("not_found", format!("no file for document {id:?}: {why}")));
        }
        Err(e) => return Err(ApiError::internal(format!("reading {}: {e}", path.display()))),
    };
    let name: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, format!("inline; filename=\"{name}.pdf\"")),
            // The approval may end tomorrow: never served from a cache.
            (header::CACHE_CONTROL, "private, no-store".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// The section heading as printed: `5.2 Hepatotoxicity`, or the title alone
/// when the label is the title (unnumbered sections) or the boxed warning.
pub(crate) fn heading(p: &Passage) -> String {
    if p.section == p.title || p.section == "BW" || p.title.is_empty() {
        if p.title.is_empty() { p.section.clone() } else { p.title.clone() }
    } else {
        format!("{} {}", p.section, p.title)
    }
}

/// One section as HTML: its heading, then each passage's paragraphs, the
/// passage `cited` inside `<mark>`. Every piece of document text is escaped
/// ([`escape`]); the only markup is this function's own.
pub(crate) fn section_html(section: &[&Passage], cited: u32) -> String {
    let mut h = String::new();
    let Some(first) = section.first() else { return h };
    h.push_str(&format!("<section class=\"source-section\" data-section=\"{}\">", escape(&first.section)));
    if !first.parent.is_empty() {
        h.push_str(&format!("<p class=\"source-parent\">{}</p>", escape(&first.parent)));
    }
    h.push_str(&format!("<h2>{}</h2>", escape(&heading(first))));
    for p in section {
        for para in p.text.split('\n').map(str::trim).filter(|t| !t.is_empty()) {
            if p.ordinal == cited {
                h.push_str(&format!("<p><mark data-passage=\"{}\">{}</mark></p>", p.ordinal, escape(para)));
            } else {
                h.push_str(&format!("<p>{}</p>", escape(para)));
            }
        }
    }
    h.push_str("</section>");
    h
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A document id as one URL path segment (percent-encoded as in
/// [`crate::copilot::source_url`]).
fn path_segment(id: &str) -> String {
    let url = crate::copilot::source_url(id, 0);
    url.trim_start_matches("/#/source/").trim_end_matches("?passage=0").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ordinal: u32, text: &str) -> Passage {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        Passage {
            doc_id: "x-pi".into(),
            section: "5.2".into(),
            title: "Hepatotoxicity <b>".into(),
            parent: "WARNINGS & PRECAUTIONS".into(),
            product: "x".into(),
            kind: crate::corpus::Kind::Pi,
            audience: crate::corpus::Audience::Promotional,
            mlr_number: "M-1".into(),
            expires_on: d("2099-01-01"),
            approved_on: d("2020-01-01"),
            status: crate::corpus::Status::Approved,
            ordinal,
            text: text.into(),
            page: None,
        }
    }

    #[test]
    fn section_html_escapes_the_text_and_marks_the_cited_passage() {
        let (a, b) = (p(3, "ALT > 5 × ULN & <script>alert(1)</script>\nSecond \"para\"."), p(4, "Stop 'it'."));
        let h = section_html(&[&a, &b], 4);
        assert_eq!(
            h,
            "<section class=\"source-section\" data-section=\"5.2\"><p class=\"source-parent\">WARNINGS &amp; PRECAUTIONS</p>\
             <h2>5.2 Hepatotoxicity &lt;b&gt;</h2><p>ALT &gt; 5 × ULN &amp; &lt;script&gt;alert(1)&lt;/script&gt;</p>\
             <p>Second &quot;para&quot;.</p><p><mark data-passage=\"4\">Stop &#39;it&#39;.</mark></p></section>"
        );
        assert_eq!(section_html(&[], 0), "");
    }

    #[test]
    fn headings_and_path_segments() {
        let mut a = p(0, "x");
        assert_eq!(heading(&a), "5.2 Hepatotoxicity <b>");
        a.section = "BW".into();
        assert_eq!(heading(&a), "Hepatotoxicity <b>");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}
