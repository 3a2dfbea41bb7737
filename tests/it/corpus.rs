//! Corpus loading on the real FDA labels, and every error case of the manifest and loaders.

use onlabel::corpus::{Corpus, Document, Error, Limits};

use crate::harness::{corpus, entry, shared_data};

fn load_shared(manifest: &str) -> Vec<Document> {
    let dir = tempfile::tempdir().unwrap();
    // Point a manifest at the shared files without copying them.
    let text = std::fs::read_to_string(shared_data().join("pi").join(manifest)).unwrap();
    let pi = shared_data().join("pi");
    let text = text.replace("file = \"", &format!("file = \"{}/", pi.display()));
    std::fs::write(dir.path().join("manifest.toml"), text).unwrap();
    Corpus::load(&[dir.path().to_owned()], Limits::default(), false).unwrap().documents
}

fn section<'a>(docs: &'a [Document], id: &str, label: &str) -> &'a onlabel::corpus::Section {
    let d = docs.iter().find(|d| d.meta.id == id).unwrap_or_else(|| panic!("no doc {id}"));
    d.sections.iter().find(|s| s.label == label).unwrap_or_else(|| {
        panic!("{id}: no §{label}; have {:?}", d.sections.iter().map(|s| &s.label).collect::<Vec<_>>())
    })
}

#[test]
fn real_labels_sections_pdf_and_xml() {
    let docs = load_shared("manifest.toml");
    // VEKLURY: the original FDA PDF (two-column Highlights, wrapped titles, "12.3." with a dot).
    assert_eq!(section(&docs, "veklury-pi", "5.2").title, "Increased Risk of Transaminase Elevations");
    assert!(section(&docs, "veklury-pi", "2.2").title.starts_with("Recommended Dosage in Adults and Pediatric Patient"));
    assert_eq!(section(&docs, "veklury-pi", "12.3").title, "Pharmacokinetics");
    assert_eq!(section(&docs, "veklury-pi", "8.7").title, "Hepatic Impairment");
    let vek = docs.iter().find(|d| d.meta.id == "veklury-pi").unwrap();
    assert!(vek.sections.iter().all(|s| s.label != "BW"), "VEKLURY has no boxed warning");
    assert!(vek.pages >= 20);
    // HUMIRA (SPL XML): boxed warning and 5.x.
    assert!(section(&docs, "humira-pi", "BW").title.starts_with("WARNING: SERIOUS INFECTIONS AND MALIGNANCY"));
    assert_eq!(section(&docs, "humira-pi", "5.1").title, "Serious Infections");
    assert_eq!(section(&docs, "humira-pi", "5.4").title, "Hepatitis B Virus Reactivation");
    // LIPITOR (SPL XML).
    assert_eq!(section(&docs, "lipitor-pi", "5.2").title, "Liver Dysfunction");
    assert_eq!(section(&docs, "lipitor-pi", "7.10").title, "Warfarin");
    // ADCETRIS (PDF rendered from SPL): boxed warning and PML.
    assert!(section(&docs, "adcetris-pi", "BW").text.contains("PROGRESSIVE MULTIFOCAL LEUKOENCEPHALOPATHY") || section(&docs, "adcetris-pi", "BW").title.contains("PROGRESSIVE MULTIFOCAL"));
    assert_eq!(section(&docs, "adcetris-pi", "5.1").title, "Peripheral Neuropathy");
    // Haloperidol (old unnumbered label): headings as printed.
    assert!(section(&docs, "haloperidol-pi", "Tardive Dyskinesia").text.contains("tardive dyskinesia"));
    section(&docs, "haloperidol-pi", "Neuroleptic Malignant Syndrome (NMS)");
    section(&docs, "haloperidol-pi", "BW");
    // Carton text and patient leaflets are not cited to HCPs.
    for d in &docs {
        assert!(d.sections.iter().all(|s| !s.title.to_uppercase().starts_with("PRINCIPAL DISPLAY PANEL")), "{}", d.meta.id);
    }
}

#[test]
fn format_parity_pdf_vs_xml() {
    let xml = load_shared("manifest.toml");
    let alt = load_shared("manifest-alt.toml");
    for id in ["humira-pi", "lipitor-pi"] {
        let a: Vec<_> = xml.iter().find(|d| d.meta.id == id).unwrap().sections.iter().map(|s| s.label.clone()).collect();
        let b: Vec<_> = alt.iter().find(|d| d.meta.id == id).unwrap().sections.iter().map(|s| s.label.clone()).collect();
        let numbered = |v: &Vec<String>| v.iter().filter(|l| l.contains('.')).cloned().collect::<Vec<_>>();
        assert_eq!(numbered(&a), numbered(&b), "{id}: subsection labels differ between XML and PDF");
    }
    // The EUA fact sheet writes "2. DOSAGE AND ADMINISTRATION".
    let eua = alt.iter().find(|d| d.meta.id == "veklury-eua").unwrap();
    assert!(eua.sections.iter().any(|s| s.label == "2"), "{:?}", eua.sections.iter().map(|s| &s.label).collect::<Vec<_>>());
}

#[test]
fn passages_never_cross_sections() {
    let docs = load_shared("manifest.toml");
    for d in &docs {
        let ps = onlabel::corpus::chunk::passages(d, 90);
        for p in &ps {
            let s = d.sections.iter().find(|s| s.label == p.section).unwrap();
            for sentence in onlabel::corpus::chunk::sentences(&p.text) {
                assert!(d.sections.iter().filter(|x| x.label == p.section).any(|x| x.text.contains(sentence)), "{}: {sentence:?} not in §{}", d.meta.id, s.label);
            }
        }
    }
}

fn err_of(manifest: &str, files: &[(&str, &[u8])]) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), manifest, files);
    Corpus::load(&[c], Limits::default(), false).unwrap_err()
}

#[test]
fn unknown_manifest_field_is_named() {
    let m = entry("a", "a.md", "2030-01-01", "approved").replace("status =", "colour = \"red\"\nstatus =");
    let e = err_of(&m, &[("a.md", b"## 1 INDICATIONS AND USAGE\n\nText here.\n")]);
    assert!(matches!(e, Error::ManifestParse { .. }), "{e}");
    assert!(e.to_string().contains("colour") && e.to_string().contains("manifest.toml"), "{e}");
}

#[test]
fn missing_file_is_named() {
    let e = err_of(&entry("a", "nope.pdf", "2030-01-01", "approved"), &[]);
    assert!(matches!(e, Error::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("nope.pdf"), "{e}");
}

#[test]
fn bad_date_is_named() {
    let e = err_of(&entry("a", "a.md", "2030-02-30", "approved"), &[("a.md", b"## 1 X\n\nText.\n")]);
    assert!(matches!(e, Error::BadDate { field: "expires_on", .. }), "{e}");
    assert!(e.to_string().contains("2030-02-30"), "{e}");
}

#[test]
fn duplicate_id_is_an_error() {
    let m = format!("{}{}", entry("a", "a.md", "2030-01-01", "approved"), entry("a", "b.md", "2030-01-01", "approved"));
    let e = err_of(&m, &[("a.md", b"## 1 X\n\nText.\n"), ("b.md", b"## 1 X\n\nText.\n")]);
    assert!(matches!(e, Error::DuplicateId { .. }), "{e}");
}

#[test]
fn duplicate_id_across_corpora_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = corpus(&dir.path().join("a"), &entry("x", "a.md", "2030-01-01", "approved"), &[("a.md", b"## 1 X\n\nText.\n")]);
    let b = corpus(&dir.path().join("b"), &entry("x", "a.md", "2030-01-01", "approved"), &[("a.md", b"## 1 X\n\nText.\n")]);
    let e = Corpus::load(&[a, b], Limits::default(), false).unwrap_err();
    assert!(matches!(e, Error::DuplicateId { .. }), "{e}");
}

const ENCRYPTED_PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n";
const CORRUPT_PDF: &[u8] = b"%PDF-1.7\n\x00\x01garbage that is not a pdf body\nstartxref\n999999\n%%EOF\n";

#[test]
fn encrypted_pdf_is_named() {
    let e = err_of(&entry("a", "locked.pdf", "2030-01-01", "approved"), &[("locked.pdf", ENCRYPTED_PDF)]);
    assert!(matches!(e, Error::Encrypted { .. }), "{e}");
    assert!(e.to_string().contains("locked.pdf") && e.to_string().contains("decrypt"), "{e}");
}

#[test]
fn corrupt_pdf_is_an_error_not_a_panic() {
    for bytes in [CORRUPT_PDF, b"not a pdf at all".as_slice(), b"%PDF-1.4\n1 0 obj".as_slice()] {
        let e = err_of(&entry("a", "bad.pdf", "2030-01-01", "approved"), &[("bad.pdf", bytes)]);
        assert!(matches!(e, Error::Corrupt { .. } | Error::Extract { .. }), "{e}");
        assert!(e.to_string().contains("bad.pdf"), "{e}");
    }
}

#[test]
fn keep_going_loads_the_good_documents() {
    let m = format!(
        "{}{}{}",
        entry("good", "good.md", "2030-01-01", "approved"),
        entry("locked", "locked.pdf", "2030-01-01", "approved"),
        entry("gone", "gone.txt", "2030-01-01", "approved")
    );
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &m, &[("good.md", b"## 5.2 Hepatotoxicity\n\nMonitor liver enzymes.\n"), ("locked.pdf", ENCRYPTED_PDF)]);
    assert!(Corpus::load(&[c.clone()], Limits::default(), false).is_err());
    let corpus = Corpus::load(&[c], Limits::default(), true).unwrap();
    assert_eq!(corpus.documents.len(), 1);
    assert_eq!(corpus.failures.len(), 2);
    assert_eq!(corpus.documents[0].sections[0].label, "5.2");
}

#[test]
fn oversized_document_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = corpus(&dir.path().join("c"), &entry("a", "a.md", "2030-01-01", "approved"), &[("a.md", &[b'x'; 2048])]);
    let e = Corpus::load(&[c], Limits { max_doc_bytes: 1024, ..Limits::default() }, false).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

#[test]
fn demo_corpus_loads_with_boxed_warning_and_faq() {
    let c = Corpus::load(&[crate::harness::root().join("corpora/demo")], Limits::default(), false).unwrap();
    let pi = c.documents.iter().find(|d| d.meta.id == "zentravia-pi").unwrap();
    assert_eq!(pi.sections[0].label, "BW");
    assert!(pi.sections.iter().any(|s| s.label == "5.1" && s.title == "Hepatotoxicity"));
    let faq = c.documents.iter().find(|d| d.meta.id == "zentravia-faq").unwrap();
    assert!(faq.sections.iter().all(|s| s.label.starts_with('Q')));
    assert!(faq.sections.len() >= 12);
}
