//! The approved source of a citation (issue 20, point 3), below the browser
//! (`browser_source.rs` drives it in Chromium): each PDF passage's page on a
//! real FDA label, the copy of the PDF `ingest` keeps with the index, the
//! citations' `page` and `source_url`, and `GET /api/v1/documents…`
//! in-process — what each role may open (withdrawn, expired and Medical-only
//! documents refused as retrieval refuses them), the PDF bytes, and the
//! section HTML escaped with the passage marked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use axum::Router;
use serde_json::{json, Value};

use onlabel::copilot::Copilot;
use onlabel::server::{router, AppState, Config, Limits};
use onlabel::users::{Role, Users};

use crate::harness::{onlabel, scratch_repo, shared_data};
use crate::router::{get, post};

/// The VEKLURY label as FDA typeset it (two-column Highlights, 30 pages).
pub(crate) fn veklury_pdf() -> PathBuf {
    shared_data().join("pi/pdf/veklury_remdesivir_2020-10_fda.pdf")
}

/// The HUMIRA label as DailyMed SPL XML.
pub(crate) fn humira_xml() -> PathBuf {
    shared_data().join("pi/xml/humira_adalimumab_2013-09.xml")
}

fn doc(id: &str, file: &Path, product: &str, audience: &str, expires_on: &str, status: &str) -> String {
    format!(
        "[[document]]\nid = \"{id}\"\nfile = \"{}\"\nproduct = \"{product}\"\nkind = \"pi\"\naudience = \"{audience}\"\nmlr_number = \"MLR-{id}\"\napproved_on = \"2020-01-01\"\nexpires_on = \"{expires_on}\"\nstatus = \"{status}\"\n\n",
        file.display()
    )
}

/// A text label whose words need escaping in HTML.
const TRICKY: &str = "1 INDICATIONS AND USAGE\nTESTRA <b>is</b> indicated & \"approved\" for adults <script>alert('x')</script> with mild disease.\n";

/// A corpus in `dir` reading the real labels where they are (never copied
/// into the repository): the PDF and the SPL for reps, a Medical-only copy,
/// a withdrawn PDF, an expired label, and the tricky text label.
pub(crate) fn source_corpus(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("testra.txt"), TRICKY).unwrap();
    let far = "2099-12-31";
    let manifest = [
        doc("veklury-pi", &veklury_pdf(), "veklury", "promotional", far, "approved"),
        doc("humira-pi", &humira_xml(), "humira", "promotional", far, "approved"),
        doc("veklury-medical", &veklury_pdf(), "veklury", "medical", far, "approved"),
        doc("veklury-old", &veklury_pdf(), "veklury", "promotional", far, "withdrawn"),
        doc("humira-2019", &humira_xml(), "humira", "promotional", "2021-01-01", "approved"),
        doc("testra-pi", &dir.join("testra.txt"), "testra", "promotional", far, "approved"),
    ]
    .concat();
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    dir.to_owned()
}

/// `onlabel ingest` (the real command) of [`source_corpus`] into `index`.
pub(crate) fn ingest(data: &Path, corpus: &Path, index: &Path) {
    let (code, out, err) = onlabel(data, None, &["ingest", "--corpus", corpus.to_str().unwrap(), "--index", index.to_str().unwrap()]);
    assert_eq!(code, 0, "ingest: {out}{err}");
}

struct World {
    dir: PathBuf,
    app: Router,
    tokens: Vec<(&'static str, String)>,
}

impl World {
    fn token(&self, role: &str) -> &str {
        self.tokens.iter().find(|(r, _)| *r == role).map(|(_, t)| t.as_str()).unwrap()
    }
    fn index(&self) -> PathBuf {
        self.dir.join("idx")
    }
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::Builder::new().prefix("onlabel-documents-").tempdir().unwrap().keep();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let index = dir.join("idx");
        ingest(&data, &source_corpus(&dir.join("corpus")), &index);
        let repo = scratch_repo(&dir);
        let store = onlabel::store::Store::open(&data).unwrap();
        let users = Users::new(&store);
        let (admin, admin_token) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
        let mut tokens = vec![("admin", admin_token.0)];
        for (id, role) in [("rex", Role::Rep), ("mia", Role::Medical)] {
            tokens.push((role.as_str(), users.add(id, id, role, Some(&admin)).unwrap().1 .0));
        }
        let copilot = Copilot::new(onlabel::index::Index::open(&index).unwrap())
            .with_guard(Arc::new(onlabel::guard::Guard::builtin().unwrap()), chrono::Local::now().date_naive())
            .unwrap()
            .with_cases(onlabel::cases::CaseStore::open(&data).unwrap());
        let products = json!({"products": copilot.products().into_iter().map(|p| json!({"name": p})).collect::<Vec<_>>()});
        let config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            data: data.clone(),
            root: repo.clone(),
            index: index.clone(),
            thresholds: repo.join("evals/thresholds.toml"),
            products,
            limits: Limits::default(),
            eval: Box::new(|_| Err("no evals here".to_string())),
            reload_prompt: None,
        };
        let app = router(Arc::new(AppState::new(copilot, config).unwrap()));
        World { dir, app, tokens }
    })
}

/// Letters and digits, lower-case: how the page map compares text.
fn comparable(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

#[test]
fn pdf_passages_carry_the_page_their_text_starts_on() {
    let dir = tempfile::tempdir().unwrap();
    let limits = onlabel::corpus::Limits::default();
    let corpus = onlabel::corpus::Corpus::load(&[source_corpus(dir.path())], limits, false).unwrap();
    let vek = corpus.documents.iter().find(|d| d.meta.id == "veklury-pi").unwrap();
    assert_eq!(vek.pages, 30);
    let passages = onlabel::corpus::chunk::passages(vek, limits.passage_words);
    let paged: Vec<_> = passages.iter().filter(|p| p.page.is_some()).collect();
    assert!(paged.len() * 100 >= passages.len() * 95, "{} of {} passages have a page", paged.len(), passages.len());
    // Each page holds its passage's start (pages as pdf-extract reads them).
    let pages = onlabel::corpus::pdf::extract_pages(&veklury_pdf()).unwrap();
    for p in &paged {
        let page = comparable(&onlabel::corpus::normalize(&pages[p.page.unwrap() as usize - 1]));
        let start: String = comparable(&p.text).chars().take(24).collect();
        assert!(page.contains(&start), "passage {} (§{}) is not on page {:?}: {start}", p.ordinal, p.section, p.page);
    }
    // Pages checked against pdf.js (scripts/ui-deps.sh's build) on the same
    // file, where all 109 passages' starts agree: the full prescribing
    // information starts on page 2, after the Highlights on page 1, which
    // repeat words of §4 and §5 verbatim — the body's passages are on the
    // body's pages, not on page 1.
    let page_of = |section: &str| passages.iter().find(|p| p.section == section).and_then(|p| p.page);
    assert_eq!(page_of("1"), Some(2), "§1 Indications");
    assert_eq!(page_of("4"), Some(7), "§4 Contraindications (also in the Highlights, page 1)");
    assert_eq!(page_of("5.2"), Some(8), "§5.2 Transaminase elevations (also in the Highlights, page 1)");
    assert_eq!(page_of("16"), Some(22), "§16 How supplied");
    let mut last = 0;
    let backwards = paged.iter().filter(|p| {
        let back = p.page.unwrap() < last;
        last = p.page.unwrap();
        back
    });
    assert_eq!(backwards.count(), 0, "passages in reading order are on non-decreasing pages");
    // Formats without pages have none.
    let hum = corpus.documents.iter().find(|d| d.meta.id == "humira-pi").unwrap();
    assert!(onlabel::corpus::chunk::passages(hum, limits.passage_words).iter().all(|p| p.page.is_none()));
}

#[tokio::test]
async fn citations_carry_the_page_and_the_source_url() {
    let w = world();
    let r = post(&w.app, Some(w.token("rep")), "/api/v1/ask", &json!({"question": "What is VEKLURY indicated for?", "product": "veklury"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let cites = r.json()["citations"].as_array().cloned().unwrap_or_default();
    assert!(!cites.is_empty(), "{}", r.text);
    for c in &cites {
        assert_eq!(c["doc_id"], "veklury-pi", "a rep is cited the promotional PDF only: {c}");
        let page = c["page"].as_u64().unwrap_or(0);
        assert!((1..=30).contains(&page), "{c}");
        let url = c["source_url"].as_str().unwrap();
        assert!(url.starts_with("/#/source/veklury-pi?passage="), "{url}");
        // The URL opens that very passage, on that page.
        let n = url.rsplit('=').next().unwrap();
        let d = get(&w.app, Some(w.token("rep")), &format!("/api/v1/documents/veklury-pi?passage={n}")).await.json();
        assert_eq!(d["passage"]["text"], c["quote"], "{d}");
        assert_eq!(d["page"], c["page"]);
    }
}

#[tokio::test]
async fn a_document_opens_for_the_roles_retrieval_would_cite_it_to() {
    let w = world();
    let (rep, med, admin) = (w.token("rep"), w.token("medical"), w.token("admin"));
    let d = get(&w.app, Some(rep), "/api/v1/documents/veklury-pi?passage=3").await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    let d = d.json();
    assert_eq!(d["mlr_number"], "MLR-veklury-pi");
    assert_eq!(d["expires_on"], "2099-12-31");
    assert_eq!(d["pdf_url"], "/api/v1/documents/veklury-pi/file");
    assert!(d["heading"].as_str().is_some_and(|h| !h.is_empty()) && d["page"].as_u64().is_some(), "{d}");
    assert_eq!(d["passage"]["ordinal"], 3);
    // Medical-only: refused to a rep (as retrieval never cites it to them), shown to Medical.
    let r = get(&w.app, Some(rep), "/api/v1/documents/veklury-medical").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found".into()), "{}", r.text);
    assert_eq!(get(&w.app, Some(med), "/api/v1/documents/veklury-medical").await.status, StatusCode::OK);
    assert_eq!(get(&w.app, Some(rep), "/api/v1/documents/veklury-medical/file").await.status, StatusCode::NOT_FOUND);
    // Withdrawn and expired: refused to every role, the admin included.
    for id in ["veklury-old", "humira-2019", "nowhere"] {
        for t in [rep, med, admin] {
            let r = get(&w.app, Some(t), &format!("/api/v1/documents/{id}")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.text);
        }
    }
    let r = get(&w.app, Some(admin), "/api/v1/documents/veklury-old/file").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a withdrawn PDF is not served: {}", r.text);
    // No token, no document; a passage the document does not have is a 404.
    assert_eq!(get(&w.app, None, "/api/v1/documents/veklury-pi").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&w.app, None, "/api/v1/documents/veklury-pi/file").await.status, StatusCode::UNAUTHORIZED);
    let r = get(&w.app, Some(rep), "/api/v1/documents/veklury-pi?passage=99999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(r.text.contains("no passage 99999"), "{}", r.text);
    assert_eq!(get(&w.app, Some(rep), "/api/v1/documents/veklury-pi?passage=x").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_pdf_is_served_as_ingested_and_an_spl_has_no_file() {
    let w = world();
    let r = crate::router::send(&w.app, crate::router::request(axum::http::Method::GET, "/api/v1/documents/veklury-pi/file", Some(w.token("rep")), None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/pdf");
    assert_eq!(r.headers["cache-control"], "private, no-store");
    let copy = onlabel::index::catalogue::pdf_copy(&w.index(), "veklury-pi");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(veklury_pdf()).unwrap(), "the index keeps the PDF byte for byte");
    assert!(r.text.starts_with("%PDF-"));
    let r = get(&w.app, Some(w.token("rep")), "/api/v1/documents/humira-pi/file").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("not a PDF"), "{}", r.text);
    // The SPL's citation opens its section as HTML, the passage marked.
    let d = get(&w.app, Some(w.token("rep")), "/api/v1/documents/humira-pi?passage=5").await.json();
    assert!(d["pdf_url"].is_null() && d["page"].is_null(), "{d}");
    let html = d["html"].as_str().unwrap();
    assert!(html.starts_with("<section class=\"source-section\"") && html.contains("<mark data-passage=\"5\">"), "{html}");
}

#[tokio::test]
async fn section_html_escapes_the_approved_text() {
    let w = world();
    let d = get(&w.app, Some(w.token("rep")), "/api/v1/documents/testra-pi").await.json();
    let html = d["html"].as_str().unwrap();
    assert!(html.contains("TESTRA &lt;b&gt;is&lt;/b&gt; indicated &amp; &quot;approved&quot; for adults &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{html}");
    assert!(!html.contains("<script") && !html.contains("<b>"), "{html}");
    assert!(html.contains("<h2>1 INDICATIONS AND USAGE</h2>"), "{html}");
    let mark = html.find("<mark data-passage=\"0\">").expect("the passage is marked");
    assert!(html[mark..].contains("TESTRA &lt;b&gt;"), "{html}");
    // The passage text itself stays verbatim in the JSON (escaped by the UI's text nodes).
    assert!(d["passage"]["text"].as_str().unwrap().contains("<script>alert('x')</script>"), "{d}");
}

#[tokio::test]
async fn an_index_without_its_pdf_copies_says_to_re_ingest() {
    let w = world();
    // A second server over a copy of the index without `documents/`.
    let old = w.dir.join("idx-without-copies");
    let _ = std::fs::remove_dir_all(&old);
    copy_dir(&w.index(), &old);
    std::fs::remove_dir_all(old.join(onlabel::index::catalogue::DOCUMENTS)).unwrap();
    let data = w.dir.join("data");
    let copilot = Copilot::new(onlabel::index::Index::open(&old).unwrap());
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        data: data.clone(),
        root: w.dir.join("repo"),
        index: old.clone(),
        thresholds: w.dir.join("repo/evals/thresholds.toml"),
        products: json!({"products": []}),
        limits: Limits::default(),
        eval: Box::new(|_| Err("no evals here".to_string())),
        reload_prompt: None,
    };
    let app = router(Arc::new(AppState::new(copilot, config).unwrap()));
    let r = get(&app, Some(w.token("rep")), "/api/v1/documents/veklury-pi/file").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("re-run `onlabel ingest`"), "{}", r.text);
    let d: Value = get(&app, Some(w.token("rep")), "/api/v1/documents/veklury-pi").await.json();
    assert!(d["pdf_url"].is_null() && d["page"].as_u64().is_some(), "the section still shows, without the PDF: {d}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
