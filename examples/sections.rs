//! Prints the sections OnLabel detects in a corpus: `cargo run --example sections -- CORPUS_DIR`.
//! Useful when adding a new label format or checking a new PDF.

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpora/demo".into());
    let corpus = onlabel::corpus::Corpus::load(&[dir.into()], Default::default(), true)?;
    for e in &corpus.failures {
        println!("FAILED: {e}");
    }
    for d in &corpus.documents {
        println!("== {} ({} sections, {} pages)", d.meta.id, d.sections.len(), d.pages);
        for s in &d.sections {
            let preview: String = s.text.chars().take(70).collect();
            println!("  §{:<12} {:<50} | {}", s.label, s.title.chars().take(50).collect::<String>(), preview.replace('\n', " / "));
        }
    }
    Ok(())
}
