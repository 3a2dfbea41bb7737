//! Explains one question end to end: the guard's verdict on input (route,
//! flags with rule ids and evidence), retrieval (concepts, weights, the top
//! passages with their coverage) and the copilot's route.
//! `cargo run --release --example explain -- INDEX PRODUCT "QUESTION"`

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(a.len() == 4, "usage: explain INDEX PRODUCT QUESTION");
    let index = onlabel::index::Index::open(a[1].as_ref())?;
    let today = chrono::Local::now().date_naive();
    let filter = onlabel::index::Filter::for_role("rep", Some(&a[2]), today);
    let r = index.search(&a[3], &filter, 8)?;
    for (c, w) in r.concepts.iter().zip(&r.weights) {
        println!("concept {:<24} w={:.2} alts={}", c.surface, w, c.alternatives.len());
    }
    for h in &r.hits {
        println!("{:6.2} cov={:.2} {} {:?}", h.score, h.coverage, h.passage.citation(), h.matched);
    }
    let guard = std::sync::Arc::new(onlabel::guard::Guard::builtin()?);
    let norm = onlabel::guard::text::Norm::new(&a[3]);
    for f in guard.elements().find(&norm.text, (0, norm.text.len())) {
        println!("element {:?} {} {:?}", f.class, f.id, &norm.text[f.span.0..f.span.1]);
    }
    let copilot = onlabel::copilot::Copilot::new(index).with_guard(guard, today)?;
    let ask = onlabel::copilot::Ask { question: a[3].clone(), product: Some(a[2].clone()), role: "rep".into(), as_of: today };
    let answer = copilot.ask(&ask)?;
    println!("route {}", answer.route.as_str());
    for f in &answer.flags {
        println!("  flag {} {} {:?}", f.kind, f.rule_id, f.evidence);
    }
    println!("  {}", answer.answer.chars().take(300).collect::<String>());
    Ok(())
}
