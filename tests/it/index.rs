//! Index filters: expiry as of the query's date, withdrawn documents, audience, product.

use chrono::NaiveDate;
use onlabel::copilot::{Ask, Copilot, Route};
use onlabel::index::Filter;

use crate::harness::{build_index, corpus, entry, root};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

const HEP: &[u8] = b"# Test PI\n\n## 1 INDICATIONS AND USAGE\n\nTESTRA is indicated for adults with plaque psoriasis.\n\n## 2 DOSAGE AND ADMINISTRATION\n\nThe recommended dosage is 20 mg orally once daily with or without food.\n\n## 5 WARNINGS AND PRECAUTIONS\n\n### 5.1 Serious Infections\n\nSerious infections have occurred. Screen for tuberculosis before starting.\n\n### 5.2 Hepatotoxicity\n\nTESTRA can cause serious liver injury. Monitor liver enzymes every 4 weeks.\n\n## 16 HOW SUPPLIED\n\nTablets are supplied in bottles of 30. Store at room temperature.\n";

#[test]
fn a_document_expiring_tomorrow_is_gone_the_day_after() {
    let dir = tempfile::tempdir().unwrap();
    // Today is 2026-11-23 in this test's clock; the document expires "tomorrow".
    let c = corpus(&dir.path().join("c"), &entry("tp", "tp.md", "2026-11-24", "approved"), &[("tp.md", HEP)]);
    let index = build_index(&[c], &dir.path().join("idx"));
    let q = "Is it hard on the liver?";
    for (day, expect) in [("2026-11-23", 1), ("2026-11-24", 1), ("2026-11-25", 0)] {
        let f = Filter::for_role("rep", Some("testra"), d(day));
        let hits = index.search(q, &f, 10).unwrap().hits;
        assert_eq!(hits.len(), expect, "as of {day}");
    }
    let copilot = Copilot::new(index);
    let ask = |day: &str| Ask { question: q.into(), product: Some("testra".into()), role: "rep".into(), as_of: d(day) };
    assert_eq!(copilot.ask(&ask("2026-11-24")).unwrap().route, Route::Answer);
    let after = copilot.ask(&ask("2026-11-25")).unwrap();
    assert_eq!(after.route, Route::Medical, "an expired passage is never cited; the question becomes a Medical Information request");
    assert!(after.citations.is_empty());
}

#[test]
fn withdrawn_documents_are_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &entry("old", "tp.md", "2030-01-01", "withdrawn"), &[("tp.md", HEP)]);
    let index = build_index(&[c], &dir.path().join("idx"));
    let f = Filter::for_role("medical", None, d("2026-01-01"));
    assert!(index.search("liver injury", &f, 10).unwrap().hits.is_empty());
    assert!(index.passages(&f).unwrap().is_empty());
}

#[test]
fn demo_withdrawn_label_and_medical_letter_stay_out_of_rep_answers() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(&[root().join("corpora/demo")], &dir.path().join("idx"));
    let rep = Filter::for_role("rep", Some("zentravia"), d("2026-11-23"));
    let all = index.passages(&rep).unwrap();
    assert!(!all.is_empty());
    assert!(all.iter().all(|p| p.doc_id != "zentravia-pi-2024" && p.doc_id != "zentravia-medical-letter"));
    let medical = Filter::for_role("medical", Some("zentravia"), d("2026-11-23"));
    assert!(index.passages(&medical).unwrap().iter().any(|p| p.doc_id == "zentravia-medical-letter"));
    // Another product's filter sees nothing of ZENTRAVIA.
    let other = Filter::for_role("rep", Some("humira"), d("2026-11-23"));
    assert!(index.search("liver", &other, 10).unwrap().hits.is_empty());
}

#[test]
fn synonyms_find_the_label_wording() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(&[root().join("corpora/demo")], &dir.path().join("idx"));
    let f = Filter::for_role("rep", Some("zentravia"), d("2026-11-23"));
    let hits = index.search("what are the LFT rules", &f, 5).unwrap().hits;
    assert!(hits.iter().take(3).any(|h| h.passage.text.to_lowercase().contains("alt") || h.passage.text.contains("liver")));
    let bw = index.search("what's in the BBW", &f, 5).unwrap().hits;
    assert_eq!(bw[0].passage.section, "BW");
}

#[test]
fn unrelated_questions_go_to_medical_not_answered_with_noise() {
    let dir = tempfile::tempdir().unwrap();
    let index = build_index(&[root().join("corpora/demo")], &dir.path().join("idx"));
    let copilot = Copilot::new(index);
    for q in ["Does it come in a chewable gummy flavor?", "Which football team does the medical director support?"] {
        let a = copilot
            .ask(&Ask { question: q.into(), product: Some("zentravia".into()), role: "rep".into(), as_of: d("2026-11-23") })
            .unwrap();
        assert_eq!(a.route, Route::Medical, "{q}: {}", a.answer);
        assert!(a.citations.is_empty());
    }
}
