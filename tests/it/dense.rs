//! Dense retrieval: the MiniLM embedder, vectors written at ingest, filters in
//! dense and fused mode, and fusion keeping BM25's lexical winner.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use onlabel::copilot::{Ask, Copilot, Route};
use onlabel::index::dense::{VectorsMeta, VECTORS_BIN, VECTORS_JSON};
use onlabel::index::{Embedder, Filter, Index, RetrievalMode};

use crate::harness::{bin, corpus, entry, root};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// One embedder per test binary.
fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    E.get_or_init(|| Arc::new(Embedder::load(&root().join("models/minilm")).expect("run `bash models/fetch.sh` first")))
        .clone()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const HEP: &[u8] = b"# Test PI\n\n## 1 INDICATIONS AND USAGE\n\nTESTRA is indicated for adults with plaque psoriasis.\n\n## 2 DOSAGE AND ADMINISTRATION\n\nThe recommended dosage is 20 mg orally once daily with or without food.\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.1 Serious Infections\n\nSerious infections have occurred. Screen for tuberculosis before starting.\n\n### 5.2 Hepatotoxicity\n\nTESTRA can cause serious liver injury. Monitor liver enzymes every 4 weeks.\n\n## 16 HOW SUPPLIED\n\nTablets are supplied in bottles of 30. Store at room temperature.\n";

/// Builds an index with vectors from corpus folders.
fn build_dense(corpora: &[PathBuf], dir: &Path) -> (Index, usize) {
    let limits = onlabel::corpus::Limits::default();
    let corpus = onlabel::corpus::Corpus::load(corpora, limits, false).unwrap();
    let passages = corpus.passages(limits);
    let e = embedder();
    let report = Index::build_with(dir, &passages, |_, _| {}, Some(&e)).unwrap();
    assert!(report.embed_seconds.is_some());
    (Index::open(dir).unwrap(), passages.len())
}

#[test]
fn embeddings_are_unit_vectors_and_similar_texts_score_higher() {
    let e = embedder();
    let texts = ["liver enzyme elevation", "transaminase increase", "The tablets are supplied in bottles of thirty."];
    let v = e.embed(&texts).unwrap();
    assert_eq!(v.len(), 3);
    for x in &v {
        assert_eq!(x.len(), 384);
        assert!((dot(x, x) - 1.0).abs() < 1e-4, "norm² {}", dot(x, x));
    }
    let (near, far) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    assert!(near > far + 0.1, "similar {near} vs unrelated {far}");
    // Batching and padding do not change a text's vector.
    let alone = e.embed(&[texts[0]]).unwrap();
    assert!(dot(&alone[0], &v[0]) > 0.9999);
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn a_missing_model_names_the_file_and_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("bash models/fetch.sh"), "{err}");
}

#[test]
fn ingest_writes_one_vector_per_passage() {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &entry("tp", "tp.md", "2030-01-01", "approved"), &[("tp.md", HEP)]);
    let idx = dir.path().join("idx");
    // Through the command line (the embedder's default folder is models/minilm under the working directory).
    let out = std::process::Command::new(bin())
        .current_dir(root())
        .args(["ingest", "--dense", "--json", "--corpus"])
        .arg(&c)
        .arg("--index")
        .arg(&idx)
        .env_remove("ONLABEL_EMBEDDER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = report["passages"].as_u64().unwrap() as usize;
    assert!(n >= 5 && report["embed_seconds"].as_f64().is_some(), "{report}");
    let meta: VectorsMeta = serde_json::from_slice(&std::fs::read(idx.join(VECTORS_JSON)).unwrap()).unwrap();
    assert_eq!((meta.count, meta.dim, meta.keys.len()), (n, 384, n));
    assert_eq!(meta.sha256, embedder().sha256().unwrap());
    assert_eq!(std::fs::metadata(idx.join(VECTORS_BIN)).unwrap().len() as usize, n * 384 * 4);
    assert!(Index::open(&idx).unwrap().has_vectors());
    // --no-dense builds BM25 only, and asking for dense then falls back to BM25 with a note.
    let out = std::process::Command::new(bin())
        .current_dir(root())
        .args(["ingest", "--no-dense", "--corpus"])
        .arg(&c)
        .arg("--index")
        .arg(&idx)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!idx.join(VECTORS_BIN).exists());
    let out = std::process::Command::new(bin())
        .current_dir(root())
        .args(["ask", "--json", "--extractive", "--retrieval", "fused", "--product", "testra", "--index"])
        .arg(&idx)
        .arg("Is it hard on the liver?")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no passage vectors"));
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(a["route"], "answer");
}

#[test]
fn expired_and_withdrawn_passages_never_come_back_in_dense_or_fused_mode() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = entry("tp", "tp.md", "2026-11-24", "approved") + &entry("old", "old.md", "2030-01-01", "withdrawn");
    let c = corpus(&dir.path().join("c"), &manifest, &[("tp.md", HEP), ("old.md", HEP)]);
    let (index, _) = build_dense(&[c], &dir.path().join("idx"));
    let q = "Is it hard on the liver?";
    let qv = embedder().embed(&[q]).unwrap().remove(0);
    for mode in [RetrievalMode::Dense, RetrievalMode::Fused] {
        for (day, alive) in [("2026-11-23", true), ("2026-11-24", true), ("2026-11-25", false)] {
            let f = Filter::for_role("medical", Some("testra"), d(day));
            let hits = index.search_with(q, Some(&qv), &f, 10, mode).unwrap().hits;
            assert!(hits.iter().all(|h| h.passage.doc_id == "tp"), "{mode} {day}: a withdrawn passage came back");
            assert_eq!(!hits.is_empty(), alive, "{mode} as of {day}");
            if alive {
                assert!(hits.iter().any(|h| h.passage.section == "5.2"), "{mode} {day}");
            }
        }
    }
    let copilot = Copilot::new(index).with_embedder(embedder(), RetrievalMode::Fused);
    assert_eq!(copilot.retrieval(), RetrievalMode::Fused);
    let ask = |day: &str| Ask { question: q.into(), product: Some("testra".into()), role: "rep".into(), as_of: d(day) };
    let before = copilot.ask(&ask("2026-11-24")).unwrap();
    assert_eq!(before.route, Route::Answer);
    assert!(before.citations.iter().all(|c| c.doc_id == "tp"));
    let after = copilot.ask(&ask("2026-11-25")).unwrap();
    assert_eq!(after.route, Route::Medical);
    assert!(after.citations.is_empty());
}

#[test]
fn fused_search_keeps_bm25s_top_hit_in_its_top_three() {
    let dir = tempfile::tempdir().unwrap();
    let (index, n) = build_dense(&[root().join("corpora/demo")], &dir.path().join("idx"));
    assert_eq!(index.vectors_meta().unwrap().count, n);
    let f = Filter::for_role("rep", Some("zentravia"), d("2026-11-23"));
    let e = embedder();
    for q in ["hepatotoxicity liver enzyme monitoring", "recommended dosage", "boxed warning", "storage temperature"] {
        let bm25 = index.search(q, &f, 20).unwrap().hits;
        let Some(top) = bm25.first() else { panic!("{q}: BM25 found nothing") };
        let qv = e.embed(&[q]).unwrap().remove(0);
        let fused = index.search_with(q, Some(&qv), &f, 20, RetrievalMode::Fused).unwrap().hits;
        let key = |h: &onlabel::index::Hit| (h.passage.doc_id.clone(), h.passage.ordinal);
        assert!(
            fused.iter().take(3).any(|h| key(h) == key(top)),
            "{q}: BM25's top {} not in fused top 3 {:?}",
            top.passage.citation(),
            fused.iter().take(3).map(|h| h.passage.citation()).collect::<Vec<_>>()
        );
        // Fused hits carry the same relevance annotations as BM25's.
        let same = fused.iter().find(|h| key(h) == key(top)).unwrap();
        assert_eq!((same.coverage, &same.matched, same.title_score), (top.coverage, &top.matched, top.title_score));
        // Without a question vector, search_with is plain BM25.
        let plain = index.search_with(q, None, &f, 20, RetrievalMode::Fused).unwrap().hits;
        assert_eq!(plain.iter().map(key).collect::<Vec<_>>(), bm25.iter().map(key).collect::<Vec<_>>());
    }
}
