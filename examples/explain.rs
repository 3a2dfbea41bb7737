//! Explains retrieval for one question: its concepts, their weights and the
//! top passages with their coverage.
//! `cargo run --example explain -- INDEX PRODUCT "QUESTION"`

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(a.len() == 4, "usage: explain INDEX PRODUCT QUESTION");
    let index = onlabel::index::Index::open(a[1].as_ref())?;
    let filter = onlabel::index::Filter::for_role("rep", Some(&a[2]), chrono::Local::now().date_naive());
    let r = index.search(&a[3], &filter, 8)?;
    for (c, w) in r.concepts.iter().zip(&r.weights) {
        println!("concept {:<24} w={:.2} alts={}", c.surface, w, c.alternatives.len());
    }
    for h in &r.hits {
        println!("{:6.2} cov={:.2} {} {:?}", h.score, h.coverage, h.passage.citation(), h.matched);
    }
    Ok(())
}
