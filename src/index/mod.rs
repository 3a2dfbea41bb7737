//! [`Index`]: the tantivy index of passages, BM25 search with medical-aware
//! analysis, and the filters that keep unapproved material out.
//!
//! Every passage is indexed with its MLR metadata. A search always filters,
//! inside the query itself, on product, on the audiences the role may see,
//! on `status = approved`, on `expires_on >= as_of` and on
//! `approved_on <= as_of` (the query's own date: a document approved for a
//! later day is not yet approved); the stored fields of every hit are checked
//! again before a hit is returned, so a withdrawn, expired or not yet
//! approved document can never come back even if it is still in the index.
//!
//! A damaged index is an error, never a crash: tantivy panics on some
//! corrupt segment files, so opening (with a checksum pass over every segment
//! file and a warm-up query) and every search run under `catch_unwind`
//! ([`contained`]), and a panic becomes [`Error::Damaged`] — the same way
//! `corpus::pdf` contains pdf-extract.

pub mod analysis;
pub mod catalogue;
pub mod dense;
pub mod readonly;
pub mod sections;
pub mod versions;

use std::ops::Bound;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::{DocAddress, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use analysis::{Analyzer, Concept};
pub use dense::{Embedder, RetrievalMode};

use crate::corpus::{Audience, Kind, Passage, Status};

/// What can go wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The index directory does not exist or holds no OnLabel index.
    #[error("no OnLabel index at {path}: run `onlabel ingest --corpus DIR --index {path}` first")]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The index was built by an incompatible version.
    #[error("the index at {path} has an incompatible schema (missing field {field}): rebuild it with `onlabel ingest`")]
    Schema {
        /// The directory.
        path: PathBuf,
        /// The missing field.
        field: &'static str,
    },
    /// tantivy failed.
    #[error("index error at {path}: {source}")]
    Tantivy {
        /// The directory.
        path: PathBuf,
        /// The tantivy error.
        source: tantivy::TantivyError,
    },
    /// A filesystem operation failed.
    #[error("cannot write index at {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The index is damaged: a stored document lacks a field, a segment
    /// file fails its checksum, or tantivy panicked reading it.
    #[error("index at {path} is damaged: {detail}; rebuild it with `onlabel ingest`")]
    Damaged {
        /// The directory.
        path: PathBuf,
        /// What is damaged (a field, a file, the panic's message).
        detail: String,
    },
    /// A versioned index root ([`versions`]) cannot be used as asked: its
    /// `CURRENT` pointer is missing, malformed or names no version, a
    /// publish would overwrite a flat index, or another publish holds the lock.
    #[error("index root {path}: {detail}")]
    Version {
        /// The root (or version directory).
        path: PathBuf,
        /// What is wrong and what to run.
        detail: String,
    },
    /// The embedder or the dense vectors failed.
    #[error(transparent)]
    Dense(#[from] dense::Error),
    /// The document catalogue beside the index ([`catalogue::CATALOGUE`]) is
    /// not the JSON `ingest` writes.
    #[error("the index at {path} is damaged: its {} is unreadable ({source}); rebuild it with `onlabel ingest`", catalogue::CATALOGUE)]
    Catalogue {
        /// The index directory.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Weight of a question concept that appears nowhere in the product's
/// material: as much as a word found in this share of its passages. Small
/// enough that conversational words ("check", "walk me through") do not sink
/// an answerable question; large enough that a question whose main topic is
/// absent ("hair growth") stays below the answer threshold.
pub const ABSENT_AS_SHARE: f32 = 0.08;

impl Error {
    /// The stable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Missing { .. } => "index_missing",
            Error::Schema { .. } | Error::Tantivy { .. } | Error::Damaged { .. } | Error::Catalogue { .. } => "index_damaged",
            Error::Io { .. } => "index_io",
            Error::Version { .. } => "index_version",
            Error::Dense(e) => e.code(),
        }
    }
}

/// Result with the index [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Query-time filters: who asks, about what, on which day.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Only passages of this product (lower-case), or all products.
    pub product: Option<String>,
    /// Audiences the asking role may see.
    pub audiences: Vec<Audience>,
    /// The query's date: documents whose `expires_on` is before it, or whose
    /// `approved_on` is after it, are excluded. [`ANY_DATE`] lists every
    /// document whatever its dates (catalogues, product names).
    pub as_of: NaiveDate,
}

/// The `as_of` of a filter that ignores documents' dates (expiry and
/// approval): listings of what an index holds, never answers.
pub const ANY_DATE: NaiveDate = NaiveDate::MIN;

impl Filter {
    /// The filter for a role on a date. A rep sees promotional material only;
    /// Medical (and MLR, compliance, admin) also see medical-only documents.
    pub fn for_role(role: &str, product: Option<&str>, as_of: NaiveDate) -> Filter {
        let audiences = match role {
            "rep" => vec![Audience::Promotional],
            _ => vec![Audience::Promotional, Audience::Medical],
        };
        Filter { product: product.map(|p| p.trim().to_lowercase()), audiences, as_of }
    }

    /// Whether a passage passes this filter (the post-check on stored fields).
    pub fn allows(&self, p: &Passage) -> bool {
        p.status == Status::Approved
            && p.expires_on >= self.as_of
            && (self.as_of == ANY_DATE || p.approved_on <= self.as_of)
            && self.audiences.contains(&p.audience)
            && self.product.as_ref().is_none_or(|pr| *pr == p.product)
    }
}

/// A search hit: the passage, its BM25 score, and how much of the question it covers.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The passage.
    pub passage: Passage,
    /// Retrieval score: BM25 (text and title), cosine in dense mode, or the
    /// reciprocal-rank-fusion score in fused mode (see [`RetrievalMode`]).
    pub score: f32,
    /// IDF-weighted share of the question's concepts found in the passage or its title, 0–1.
    pub coverage: f32,
    /// Which concepts (by index into the query's concepts) the passage matches.
    pub matched: Vec<usize>,
    /// Weighted share of the question named by the section title (longer phrasings count more), 0–1.
    pub title_score: f32,
}

/// The result of a search: the question's concepts with their weights, and the hits.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// Concepts extracted from the question.
    pub concepts: Vec<Concept>,
    /// IDF weight of each concept (rarer in the corpus ⇒ more informative).
    pub weights: Vec<f32>,
    /// Hits, best first, all allowed by the filter.
    pub hits: Vec<Hit>,
}

/// Document frequencies of analysed tokens, per product and overall, so that
/// a concept's weight reflects how informative it is *within the product the
/// rep asks about* (the product's own generic name is in every passage of its
/// label and tells nothing).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Stats {
    /// Per product: passage count and token → passages containing it.
    products: std::collections::HashMap<String, Freqs>,
    /// Over all passages.
    all: Freqs,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Freqs {
    n: u32,
    df: std::collections::HashMap<String, u32>,
}

impl Freqs {
    fn add(&mut self, toks: &std::collections::HashSet<String>) {
        self.n += 1;
        for t in toks {
            *self.df.entry(t.clone()).or_default() += 1;
        }
    }
    /// The IDF of a token found in `share` of the passages.
    fn idf_of_share(&self, share: f32) -> f32 {
        let n = self.n.max(1) as f32;
        let df = share * n;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }
    /// BM25-style IDF; a token absent here weighs as much as one seen once.
    fn idf(&self, tok: &str) -> f32 {
        let n = self.n.max(1) as f32;
        let df = self.df.get(tok).copied().unwrap_or(0).max(1) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }
}

#[derive(Clone, Copy)]
struct Fields {
    doc_id: Field,
    section: Field,
    title: Field,
    title_shown: Field,
    parent: Field,
    product: Field,
    kind: Field,
    audience: Field,
    mlr_number: Field,
    expires_on: Field,
    approved_on: Field,
    status: Field,
    ordinal: Field,
    text: Field,
    quote: Field,
    page: Field,
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_text_field("doc_id", STRING | STORED);
    b.add_text_field("section", STRING | STORED);
    // Searched title (the boxed warning's also says "boxed warning"); shown title below.
    b.add_text_field("title", TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analysis::TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    ));
    b.add_text_field("title_shown", STORED);
    b.add_text_field("parent", STORED);
    b.add_text_field("product", STRING | STORED);
    b.add_text_field("kind", STRING | STORED);
    b.add_text_field("audience", STRING | STORED);
    b.add_text_field("mlr_number", STRING | STORED);
    b.add_u64_field("expires_on", INDEXED | STORED | FAST);
    b.add_u64_field("approved_on", INDEXED | STORED | FAST);
    b.add_text_field("status", STRING | STORED);
    b.add_u64_field("ordinal", STORED);
    // Searched: the passage without cross-references ("[see Warnings and
    // Precautions (5.1)]" would otherwise match every question about warnings).
    let searched = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analysis::TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    b.add_text_field("text", searched);
    // Shown and quoted: the passage verbatim.
    b.add_text_field("quote", STORED);
    // The PDF page the passage starts on (absent for other formats). An index
    // built before it existed lacks the field: `fields` refuses it with
    // `Error::Schema`, which says to re-run `onlabel ingest`.
    b.add_u64_field("page", STORED);
    b.build()
}

fn fields(schema: &Schema, path: &Path) -> Result<Fields> {
    let f = |name: &'static str| schema.get_field(name).map_err(|_| Error::Schema { path: path.to_owned(), field: name });
    Ok(Fields {
        doc_id: f("doc_id")?,
        section: f("section")?,
        title: f("title")?,
        title_shown: f("title_shown")?,
        parent: f("parent")?,
        product: f("product")?,
        kind: f("kind")?,
        audience: f("audience")?,
        mlr_number: f("mlr_number")?,
        expires_on: f("expires_on")?,
        approved_on: f("approved_on")?,
        status: f("status")?,
        ordinal: f("ordinal")?,
        text: f("text")?,
        quote: f("quote")?,
        page: f("page")?,
    })
}

fn date_key(d: NaiveDate) -> u64 {
    (d.year().max(0) as u64) * 10_000 + d.month() as u64 * 100 + d.day() as u64
}

fn key_date(k: u64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt((k / 10_000) as i32, ((k / 100) % 100) as u32, (k % 100) as u32)
}

/// An open index, ready to search.
pub struct Index {
    /// The directory the index files are in (a version's, for a versioned root).
    path: PathBuf,
    /// The version id, when opened through a versioned root ([`versions`]).
    version: Option<String>,
    reader: IndexReader,
    f: Fields,
    analyzer: &'static Analyzer,
    stats: Stats,
    /// Passage vectors, when the index was built with an embedder.
    dense: Option<dense::DenseIndex>,
}

/// Which stage of [`Index::build_with`] a progress report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStage {
    /// Embedding passages (count done so far).
    Embedding,
    /// Writing passages to tantivy (count done so far).
    Indexing,
}

/// What [`Index::build_with`] did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Passages indexed.
    pub passages: usize,
    /// Seconds spent embedding, when an embedder was given.
    pub embed_seconds: Option<f64>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).field("version", &self.version).finish()
    }
}

impl Index {
    /// Builds a fresh index at `dir` from passages (replacing an older OnLabel
    /// index there). `progress` is called after each passage.
    pub fn build(dir: &Path, passages: &[Passage], mut progress: impl FnMut(usize)) -> Result<()> {
        Index::build_with(dir, passages, |_, i| progress(i), None).map(|_| ())
    }

    /// As [`Index::build`]; with an embedder, also embeds every passage
    /// (title + ": " + text without cross-references) and writes
    /// `vectors.bin` / `vectors.json` beside the index (see [`dense`]).
    pub fn build_with(
        dir: &Path,
        passages: &[Passage],
        mut progress: impl FnMut(BuildStage, usize),
        embedder: Option<&Embedder>,
    ) -> Result<BuildReport> {
        let mut report = BuildReport { passages: passages.len(), embed_seconds: None };
        let vectors = match embedder {
            Some(e) => {
                let t = std::time::Instant::now();
                let v = dense::Vectors::embed(passages, e, &mut |i| progress(BuildStage::Embedding, i))?;
                report.embed_seconds = Some(t.elapsed().as_secs_f64());
                Some(v)
            }
            None => None,
        };
        let tv = |source| Error::Tantivy { path: dir.to_owned(), source };
        let io = |source| Error::Io { path: dir.to_owned(), source };
        // Build into a sibling temp dir and swap, so a failed build never
        // leaves a half-written index where a good one was.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io)?;
        let tmp = tempdir_in(parent, dir).map_err(io)?;
        {
            let schema = schema();
            let index = tantivy::Index::create_in_dir(&tmp, schema.clone()).map_err(tv)?;
            index.tokenizers().register(analysis::TOKENIZER, analysis::text_analyzer());
            let f = fields(&schema, dir)?;
            let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000).map_err(tv)?;
            for (i, p) in passages.iter().enumerate() {
                let mut d = TantivyDocument::default();
                d.add_text(f.doc_id, &p.doc_id);
                d.add_text(f.section, &p.section);
                // The boxed warning's own title rarely says "boxed warning"; reps do.
                if p.section == "BW" {
                    d.add_text(f.title, format!("Boxed Warning {}", p.title));
                } else {
                    d.add_text(f.title, &p.title);
                }
                let _ = &p.parent;
                d.add_text(f.title_shown, &p.title);
                if !p.parent.is_empty() {
                    d.add_text(f.title, &p.parent);
                    d.add_text(f.parent, &p.parent);
                }
                d.add_text(f.product, &p.product);
                d.add_text(f.kind, p.kind.as_str());
                d.add_text(f.audience, p.audience.as_str());
                d.add_text(f.mlr_number, &p.mlr_number);
                d.add_u64(f.expires_on, date_key(p.expires_on));
                d.add_u64(f.approved_on, date_key(p.approved_on));
                d.add_text(f.status, p.status.as_str());
                d.add_u64(f.ordinal, p.ordinal as u64);
                d.add_text(f.text, analysis::strip_cross_references(&p.text));
                d.add_text(f.quote, &p.text);
                if let Some(page) = p.page {
                    d.add_u64(f.page, page as u64);
                }
                writer.add_document(d).map_err(tv)?;
                progress(BuildStage::Indexing, i + 1);
            }
            writer.commit().map_err(tv)?;
            writer.wait_merging_threads().map_err(tv)?;
        }
        let analyzer = Analyzer::shared();
        let mut stats = Stats::default();
        for p in passages {
            let toks: std::collections::HashSet<String> =
                analyzer.tokens(&analysis::strip_cross_references(&p.text)).into_iter().chain(analyzer.tokens(&p.title)).collect();
            stats.all.add(&toks);
            stats.products.entry(p.product.clone()).or_default().add(&toks);
        }
        let stats_json = serde_json::to_vec(&stats).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(tmp.join("onlabel-stats.json"), stats_json).map_err(io)?;
        if let Some(v) = &vectors {
            v.write(&tmp).map_err(io)?;
        }
        std::fs::write(tmp.join("onlabel-index.json"), format!("{{\"passages\": {}, \"format\": {FORMAT}}}\n", passages.len()))
            .map_err(io)?;
        if dir.exists() {
            if !dir.join("onlabel-index.json").exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::Io {
                    path: dir.to_owned(),
                    source: std::io::Error::other("directory exists, is not empty and is not an OnLabel index; refusing to overwrite"),
                });
            }
            std::fs::remove_dir_all(dir).map_err(io)?;
        }
        std::fs::rename(&tmp, dir).map_err(io)?;
        Ok(report)
    }

    /// Opens an index built by [`Index::build`] — or, given a versioned
    /// index root ([`versions`]), its live version — read-only
    /// ([`readonly::ReadOnly`]: nothing is written into the directory), and
    /// checks it: every segment file's checksum, then a warm-up query that
    /// reads stored passages. A damaged index is [`Error::Damaged`] (or
    /// [`Error::Tantivy`]), never a panic.
    pub fn open(path: &Path) -> Result<Index> {
        let (dir, version) = versions::resolve(path)?;
        let dir = dir.as_path();
        if !dir.join("onlabel-index.json").exists() {
            return Err(Error::Missing { path: dir.to_owned() });
        }
        let mut index = contained(dir, "opening", || Index::open_unchecked(dir))?;
        contained(dir, "checking", || index.warm_up())?;
        index.version = version;
        Ok(index)
    }

    /// The directory holding this index's files (for a versioned root, the
    /// live version's directory when it was opened).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The version id when opened through a versioned root, e.g.
    /// `000002-81d0e6a4c2f9`; `None` for a flat index directory.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    fn open_unchecked(dir: &Path) -> Result<Index> {
        let tv = |source| Error::Tantivy { path: dir.to_owned(), source };
        let index = tantivy::Index::open(readonly::ReadOnly::open(dir).map_err(tv)?).map_err(tv)?;
        let damaged = index.validate_checksum().map_err(tv)?;
        if !damaged.is_empty() {
            let mut files: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
            files.sort();
            return Err(Error::Damaged { path: dir.to_owned(), detail: format!("{} failed its checksum", files.join(", ")) });
        }
        index.tokenizers().register(analysis::TOKENIZER, analysis::text_analyzer());
        let f = fields(&index.schema(), dir)?;
        // A served index never changes (a new one is a new directory): no watcher.
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(tv)?;
        let stats_path = dir.join("onlabel-stats.json");
        let stats: Stats = std::fs::read(&stats_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Error::Damaged { path: dir.to_owned(), detail: "onlabel-stats.json is missing or unreadable".into() })?;
        let mut index = Index { path: dir.to_owned(), version: None, reader, f, analyzer: Analyzer::shared(), stats, dense: None };
        // Vectors that cannot be used leave BM25 working (with a warning).
        match dense::Vectors::read(dir).map_err(Error::from).and_then(|v| match v {
            Some(v) => dense::DenseIndex::attach(&index, v).map(Some),
            None => Ok(None),
        }) {
            Ok(d) => index.dense = d,
            Err(e) => tracing::warn!(error = %e, "ignoring the dense vectors; BM25 only"),
        }
        Ok(index)
    }

    /// The warm-up query: a search through the filter and the stored fields
    /// of up to [`WARM_UP_DOCS`] passages, read as a search would read them.
    fn warm_up(&self) -> Result<()> {
        let searcher = self.reader.searcher();
        let all = Filter { product: None, audiences: vec![Audience::Promotional, Audience::Medical], as_of: ANY_DATE };
        let top = searcher
            .search(&self.filter_query(&all), &TopDocs::with_limit(WARM_UP_DOCS).order_by_score())
            .map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
        for (_, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
            self.passage(&d)?;
        }
        Ok(())
    }

    /// The analyzer (tokens, synonyms, stop words) this index queries with.
    pub fn analyzer(&self) -> &Analyzer {
        self.analyzer
    }

    /// Number of passages in the index (all statuses).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index holds no passage.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every passage in the index that `filter` allows, in document order
    /// (for listing a product's sections, e.g. its boxed warning).
    pub fn passages(&self, filter: &Filter) -> Result<Vec<Passage>> {
        contained(&self.path, "listing passages", || self.passages_unchecked(filter))
    }

    fn passages_unchecked(&self, filter: &Filter) -> Result<Vec<Passage>> {
        let searcher = self.reader.searcher();
        let q = self.filter_query(filter);
        let n = (searcher.num_docs() as usize).max(1);
        let top = searcher
            .search(&q, &TopDocs::with_limit(n).order_by_score())
            .map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
        let mut out = Vec::new();
        for (_, addr) in top {
            let d: TantivyDocument =
                searcher.doc(addr).map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
            let p = self.passage(&d)?;
            if filter.allows(&p) {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.doc_id.cmp(&b.doc_id).then(a.ordinal.cmp(&b.ordinal)));
        Ok(out)
    }

    /// The passages of one document that `filter` allows, in document order:
    /// what the source view shows (empty when the document is unknown, or
    /// withdrawn, expired, not yet approved or not for this audience —
    /// exactly what retrieval would not cite).
    pub fn document(&self, doc_id: &str, filter: &Filter) -> Result<Vec<Passage>> {
        contained(&self.path, "reading a document", || {
            let searcher = self.reader.searcher();
            let q = BooleanQuery::new(vec![
                (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(self.f.doc_id, doc_id), IndexRecordOption::Basic)) as Box<dyn Query>),
                (Occur::Must, Box::new(self.filter_query(filter))),
            ]);
            let n = (searcher.num_docs() as usize).max(1);
            let top = searcher
                .search(&q, &TopDocs::with_limit(n).order_by_score())
                .map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
            let mut out = Vec::new();
            for (_, addr) in top {
                let d: TantivyDocument = searcher.doc(addr).map_err(|source| Error::Tantivy { path: self.path.clone(), source })?;
                let p = self.passage(&d)?;
                if p.doc_id == doc_id && filter.allows(&p) {
                    out.push(p);
                }
            }
            out.sort_by_key(|p| p.ordinal);
            Ok(out)
        })
    }

    fn filter_query(&self, filter: &Filter) -> BooleanQuery {
        let term = |f: Field, v: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(f, v), IndexRecordOption::Basic))
        };
        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, term(self.f.status, Status::Approved.as_str())),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(self.f.expires_on, date_key(filter.as_of))),
                    Bound::Unbounded,
                )),
            ),
        ];
        if filter.as_of != ANY_DATE {
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Included(Term::from_field_u64(self.f.approved_on, date_key(filter.as_of))),
                )),
            ));
        }
        if let Some(p) = &filter.product {
            must.push((Occur::Must, term(self.f.product, p)));
        }
        let aud: Vec<(Occur, Box<dyn Query>)> =
            filter.audiences.iter().map(|a| (Occur::Should, term(self.f.audience, a.as_str()))).collect();
        must.push((Occur::Must, Box::new(BooleanQuery::new(aud))));
        BooleanQuery::new(must)
    }

    /// Searches for a question: BM25 over passage text and section titles,
    /// with synonym expansion, inside the filter. Returns up to `limit` hits,
    /// reranked coverage-first (see [`rerank`]). Dense and fused retrieval:
    /// [`Index::search_with`].
    pub fn search(&self, question: &str, filter: &Filter, limit: usize) -> Result<SearchResult> {
        contained(&self.path, "searching", || self.search_unchecked(question, filter, limit))
    }

    fn search_unchecked(&self, question: &str, filter: &Filter, limit: usize) -> Result<SearchResult> {
        let (concepts, weights, q) = self.bm25_query(question, filter);
        let Some(q) = q else {
            return Ok(SearchResult { concepts, weights, hits: Vec::new() });
        };
        let top = self.bm25_top(&q, limit)?;
        let mut hits = self.annotate_all(top, filter, &concepts, &weights)?;
        rerank(&mut hits);
        Ok(SearchResult { concepts, weights, hits })
    }

    /// The question's concepts, their weights, and the BM25 query inside the
    /// filter (`None` when the question has no searchable concept).
    fn bm25_query(&self, question: &str, filter: &Filter) -> (Vec<Concept>, Vec<f32>, Option<BooleanQuery>) {
        let ignore: Vec<String> = filter.product.as_deref().map(|p| self.analyzer.tokens(p)).unwrap_or_default();
        let mut concepts = self.analyzer.concepts(question, &ignore);
        // What kind of PI section the question asks for ("who shouldn't get
        // this" → CONTRAINDICATIONS), as one more concept: its headings.
        concepts.extend(sections::SectionIntents::shared().concepts(question, &self.analyzer));
        let freqs = filter.product.as_ref().and_then(|p| self.stats.products.get(p)).unwrap_or(&self.stats.all);
        let mut weights = Vec::with_capacity(concepts.len());
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for c in &concepts {
            // A concept weighs as much as the question's own phrasing within the
            // product's material (a phrase as much as its rarest word); when
            // the rep's word is not in the material but a synonym is, as much
            // as the commonest synonym present; absent altogether, as much as a
            // word seen once (what is not in the material cannot be answered).
            let own: Vec<String> = c.surface.split(' ').map(str::to_string).collect();
            let phr_idf = |alt: &Vec<String>| alt.iter().map(|t| freqs.idf(t)).fold(0.0f32, f32::max);
            let present: Vec<f32> = c
                .alternatives
                .iter()
                .filter(|a| a.iter().all(|t| freqs.df.contains_key(t)))
                .map(phr_idf)
                .collect();
            let own_present = own.iter().all(|t| freqs.df.contains_key(t));
            let w = if !own_present && present.is_empty() {
                freqs.idf_of_share(ABSENT_AS_SHARE)
            } else if own_present {
                phr_idf(&own)
            } else {
                present.iter().cloned().fold(f32::MAX, f32::min)
            };
            // An intent concept weighs as much as an average concept of the
            // question (as a single word of middling rarity when it is alone):
            // it steers toward the section without outweighing the content.
            weights.push(if c.section_intent().is_some() { f32::NAN } else { w.max(0.05) });
            for alt in &c.alternatives {
                // The question's own phrasing counts fully; synonyms slightly less.
                let boost = if *alt == own { 1.0 } else { 0.7 };
                for (field, fb) in [(self.f.text, 1.0f32), (self.f.title, 1.5f32)] {
                    let q: Box<dyn Query> = if alt.len() == 1 {
                        Box::new(TermQuery::new(Term::from_field_text(field, &alt[0]), IndexRecordOption::WithFreqs))
                    } else {
                        Box::new(PhraseQuery::new(alt.iter().map(|t| Term::from_field_text(field, t)).collect()))
                    };
                    should.push((Occur::Should, Box::new(BoostQuery::new(q, boost * fb))));
                }
            }
        }
        let content: Vec<f32> = weights.iter().copied().filter(|w| !w.is_nan()).collect();
        let intent_w = if content.is_empty() { freqs.idf_of_share(0.05) } else { content.iter().sum::<f32>() / content.len() as f32 };
        let n_intents = weights.iter().filter(|w| w.is_nan()).count().max(1) as f32;
        for w in weights.iter_mut().filter(|w| w.is_nan()) {
            // Several kinds asked at once share one concept's weight.
            *w = (intent_w / n_intents).max(0.05);
        }
        if should.is_empty() {
            return (concepts, weights, None);
        }
        let q = BooleanQuery::new(vec![
            (Occur::Must, Box::new(BooleanQuery::new(should)) as Box<dyn Query>),
            (Occur::Must, Box::new(self.filter_query(filter))),
        ]);
        (concepts, weights, Some(q))
    }

    /// BM25's top `limit` documents for a query from [`Index::bm25_query`].
    fn bm25_top(&self, q: &BooleanQuery, limit: usize) -> Result<Vec<(f32, DocAddress)>> {
        self.reader
            .searcher()
            .search(q, &TopDocs::with_limit(limit).order_by_score())
            .map_err(|source| Error::Tantivy { path: self.path.clone(), source })
    }

    /// A hit for a passage that passed the filter: which of the question's
    /// concepts it (text or title) matches, the IDF-weighted coverage, and how
    /// well its section title names the question. The same for every
    /// retrieval mode, because the generators' relevance gate depends on it.
    fn annotate(&self, passage: Passage, score: f32, concepts: &[Concept], weights: &[f32]) -> Hit {
        let total_w: f32 = weights.iter().sum();
        let mut toks = self.analyzer.tokens(&analysis::strip_cross_references(&passage.text));
        toks.push(String::new());
        toks.extend(self.analyzer.tokens(&passage.title));
        toks.push(String::new());
        toks.extend(self.analyzer.tokens(&passage.parent));
        if passage.section == "BW" {
            toks.extend(self.analyzer.tokens("boxed warning"));
        }
        let matched: Vec<usize> = concepts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.alternatives.iter().any(|a| analysis::contains_phrase(&toks, a)))
            .map(|(i, _)| i)
            .collect();
        let coverage = if total_w > 0.0 { matched.iter().map(|i| weights[*i]).sum::<f32>() / total_w } else { 0.0 };
        // Section titles that name what was asked, in the asker's longer phrasing, rank first.
        let mut title_toks = self.analyzer.tokens(&passage.title);
        if passage.section == "BW" {
            title_toks.extend(self.analyzer.tokens("boxed warning"));
        }
        let title_score = concepts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let len = c.alternatives.iter().filter(|a| analysis::contains_phrase(&title_toks, a)).map(Vec::len).max()?;
                Some(weights[i] * len.min(3) as f32 / 3.0)
            })
            .sum::<f32>()
            / total_w.max(1e-6);
        Hit { passage, score, coverage, matched, title_score }
    }

    fn passage(&self, d: &TantivyDocument) -> Result<Passage> {
        let damaged = |field: &str| Error::Damaged { path: self.path.clone(), detail: format!("a passage lacks its {field} field") };
        let s = |f: Field, name: &'static str| -> Result<String> {
            d.get_first(f).and_then(|v| v.as_str()).map(str::to_string).ok_or_else(|| damaged(name))
        };
        let u = |f: Field, name: &'static str| -> Result<u64> {
            d.get_first(f).and_then(|v| v.as_u64()).ok_or_else(|| damaged(name))
        };
        let kind = match s(self.f.kind, "kind")?.as_str() {
            "pi" => Kind::Pi,
            "faq" => Kind::Faq,
            "isi" => Kind::Isi,
            "medical-response" => Kind::MedicalResponse,
            _ => return Err(damaged("kind")),
        };
        let audience = match s(self.f.audience, "audience")?.as_str() {
            "promotional" => Audience::Promotional,
            "medical" => Audience::Medical,
            _ => return Err(damaged("audience")),
        };
        let status = match s(self.f.status, "status")?.as_str() {
            "approved" => Status::Approved,
            _ => Status::Withdrawn,
        };
        Ok(Passage {
            doc_id: s(self.f.doc_id, "doc_id")?,
            section: s(self.f.section, "section")?,
            title: s(self.f.title_shown, "title_shown")?,
            parent: d.get_first(self.f.parent).and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            product: s(self.f.product, "product")?,
            kind,
            audience,
            mlr_number: s(self.f.mlr_number, "mlr_number")?,
            expires_on: key_date(u(self.f.expires_on, "expires_on")?).ok_or_else(|| damaged("expires_on"))?,
            approved_on: key_date(u(self.f.approved_on, "approved_on")?).ok_or_else(|| damaged("approved_on"))?,
            status,
            ordinal: u(self.f.ordinal, "ordinal")? as u32,
            text: s(self.f.quote, "quote")?,
            page: d.get_first(self.f.page).and_then(|v| v.as_u64()).and_then(|p| u32::try_from(p).ok()),
        })
    }
}

/// The index format `ingest` writes into `onlabel-index.json`: 2 added each
/// passage's PDF `page` (and the copies of approved PDFs, see
/// [`catalogue::DOCUMENTS`]).
pub const FORMAT: u32 = 2;

/// Passages read by the warm-up query of [`Index::open`].
pub const WARM_UP_DOCS: usize = 64;

thread_local! {
    /// Depth of [`contained`] calls on this thread: while above zero, the
    /// panic hook stays quiet (the panic is reported as an error instead).
    static CONTAINING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Installs, once, a panic hook that is silent on threads inside
/// [`contained`] and otherwise calls the hook that was installed before.
fn quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINING.with(|c| c.get()) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs a step that reads index files under `catch_unwind`: tantivy panics
/// on some corrupt segments (an out-of-range offset, a bad bitpacked block),
/// and a damaged index must be an error with its directory, not a crash with
/// a backtrace. The panic's message becomes [`Error::Damaged`]'s detail.
pub fn contained<T>(path: &Path, what: &str, step: impl FnOnce() -> Result<T>) -> Result<T> {
    quiet_hook();
    CONTAINING.with(|c| c.set(c.get() + 1));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(step));
    CONTAINING.with(|c| c.set(c.get().saturating_sub(1)));
    out.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "tantivy panicked".into());
        tracing::error!(path = %path.display(), what, panic = %message, "the index is damaged");
        Err(Error::Damaged { path: path.to_owned(), detail: format!("reading it failed while {what} ({message})") })
    })
}

/// The coverage-first rerank: what a passage covers of the question first,
/// its retrieval score (normalised by the best) second, its title third.
fn rerank(hits: &mut [Hit]) {
    let max_score = hits.iter().map(|h| h.score).fold(f32::MIN_POSITIVE, f32::max);
    let key = |h: &Hit| h.coverage + 0.3 * h.score / max_score + 0.3 * h.title_score;
    hits.sort_by(|a, b| key(b).total_cmp(&key(a)));
}

fn tempdir_in(parent: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("index");
    let tmp = parent.join(format!(".{name}.building-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn passage(doc: &str, approved_on: &str, expires_on: &str, text: &str) -> Passage {
        Passage {
            doc_id: doc.into(),
            section: "5.2".into(),
            title: "Hepatotoxicity".into(),
            parent: String::new(),
            product: "testra".into(),
            kind: Kind::Pi,
            audience: Audience::Promotional,
            mlr_number: format!("T-{doc}"),
            expires_on: d(expires_on),
            approved_on: d(approved_on),
            status: Status::Approved,
            ordinal: 0,
            text: text.into(),
            page: None,
        }
    }

    fn build(dir: &Path) -> Index {
        let ps = vec![
            passage("current", "2025-01-01", "2027-12-31", "TESTRA can cause serious liver injury. Monitor liver enzymes."),
            passage("future", "2027-03-01", "2029-12-31", "TESTRA liver enzymes must be checked every week from 2027."),
            passage("expired", "2019-01-01", "2021-01-01", "TESTRA liver enzymes were checked monthly in the old label."),
        ];
        Index::build(dir, &ps, |_| {}).unwrap();
        Index::open(dir).unwrap()
    }

    fn cited(index: &Index, as_of: &str) -> Vec<String> {
        let f = Filter::for_role("rep", Some("testra"), d(as_of));
        let mut ids: Vec<String> = index.search("liver enzymes", &f, 10).unwrap().hits.into_iter().map(|h| h.passage.doc_id).collect();
        ids.extend(index.passages(&f).unwrap().into_iter().map(|p| format!("listed:{}", p.doc_id)));
        ids.sort();
        ids
    }

    #[test]
    fn probe_row6_a_document_approved_in_the_future_is_never_cited() {
        let dir = tempfile::tempdir().unwrap();
        let index = build(&dir.path().join("idx"));
        assert_eq!(cited(&index, "2026-12-03"), ["current", "listed:current"]);
        // The day before its approval it is not yet approved; on the day it is.
        assert_eq!(cited(&index, "2027-02-28"), ["current", "listed:current"]);
        assert_eq!(cited(&index, "2027-03-01"), ["current", "future", "listed:current", "listed:future"]);
        // In the past the expired one comes back only as of a day it was valid.
        assert_eq!(cited(&index, "2020-06-01"), ["expired", "listed:expired"]);
        // Listings of what the index holds ignore dates.
        let all = Filter { product: None, audiences: vec![Audience::Promotional], as_of: ANY_DATE };
        assert_eq!(index.passages(&all).unwrap().len(), 3);
        let p = passage("future", "2027-03-01", "2029-12-31", "x");
        assert!(!Filter::for_role("rep", None, d("2026-12-03")).allows(&p), "the post-check refuses it too");
    }

    /// Flips 16 bytes in the middle of the largest segment file.
    fn damage(dir: &Path) -> PathBuf {
        let seg = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| ["store", "idx", "term", "pos", "fast", "fieldnorm"].contains(&e.to_str().unwrap())))
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 16] {
            *b ^= 0xA5;
        }
        std::fs::write(&seg, bytes).unwrap();
        seg
    }

    #[test]
    fn probe_row9_a_damaged_segment_is_index_damaged_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("idx");
        drop(build(&idx));
        let seg = damage(&idx);
        let e = Index::open(&idx).unwrap_err();
        assert!(matches!(&e, Error::Damaged { path, detail } if path == &idx && detail.contains("checksum")), "{e}");
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(e.to_string().contains(name), "{e}");
    }

    #[test]
    fn probe_row9_a_panic_reading_the_index_becomes_damaged() {
        let p = Path::new("idx");
        let e = contained::<()>(p, "searching", || panic!("index out of bounds: the len is 3 but the index is 7")).unwrap_err();
        assert!(matches!(&e, Error::Damaged { detail, .. } if detail.contains("while searching") && detail.contains("out of bounds")), "{e}");
        // Nested and repeated calls leave the thread's hook state balanced.
        assert_eq!(contained(p, "a", || contained(p, "b", || Ok(7))).unwrap(), 7);
        assert_eq!(CONTAINING.with(|c| c.get()), 0);
    }

    #[test]
    fn pages_are_stored_and_a_document_lists_only_what_retrieval_may_cite() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("idx");
        let mut first = passage("current", "2025-01-01", "2027-12-31", "TESTRA can cause serious liver injury.");
        first.page = Some(7);
        let mut second = passage("current", "2025-01-01", "2027-12-31", "Monitor liver enzymes.");
        second.ordinal = 1;
        let ps = vec![second, first, passage("expired", "2019-01-01", "2021-01-01", "Old text.")];
        Index::build(&idx, &ps, |_| {}).unwrap();
        let index = Index::open(&idx).unwrap();
        let f = Filter::for_role("rep", None, d("2026-12-03"));
        let doc = index.document("current", &f).unwrap();
        assert_eq!(doc.iter().map(|p| (p.ordinal, p.page)).collect::<Vec<_>>(), [(0, Some(7)), (1, None)]);
        assert!(index.document("expired", &f).unwrap().is_empty(), "an expired document is not shown");
        assert!(index.document("nowhere", &f).unwrap().is_empty());
        let meta = std::fs::read_to_string(idx.join("onlabel-index.json")).unwrap();
        assert!(meta.contains(&format!("\"format\": {FORMAT}")), "{meta}");
    }

    #[test]
    fn an_index_built_before_pages_says_to_re_ingest() {
        // The schema of format 1: every field but `page`.
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("idx");
        drop(build(&idx));
        let mut b = Schema::builder();
        for entry in schema().fields().map(|(_, e)| e.clone()).filter(|e| e.name() != "page") {
            b.add_field(entry);
        }
        let old = dir.path().join("old");
        std::fs::create_dir_all(&old).unwrap();
        tantivy::Index::create_in_dir(&old, b.build()).unwrap();
        for f in ["onlabel-index.json", "onlabel-stats.json"] {
            std::fs::copy(idx.join(f), old.join(f)).unwrap();
        }
        let e = Index::open(&old).unwrap_err();
        assert!(matches!(&e, Error::Schema { field: "page", .. }), "{e}");
        assert!(e.to_string().contains("rebuild it with `onlabel ingest`"), "{e}");
        assert_eq!(e.code(), "index_damaged");
    }
}
