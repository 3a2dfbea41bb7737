//! DailyMed SPL XML (namespace `urn:hl7-org:v3`).
//!
//! Sections are `structuredBody/component/section`, nested as
//! `component/section`, each with a LOINC `<code>` and a `<title>` that already
//! carries the label's number (`5.2 Hepatotoxicity`). The number is taken from
//! the title, never from the code (codes are often "unclassified" and
//! sometimes wrong). Highlights (`<excerpt>`) repeat the full text and are
//! skipped, as are patient leaflets and carton text, which are not cited to
//! HCPs. An untitled subsection belongs to its titled parent.

use std::path::Path;

use quick_xml::events::Event;

use super::{markdown::split_number, normalize, Error, Result, Section};

/// LOINC code of the boxed warning section.
pub const LOINC_BOXED_WARNING: &str = "34066-1";

/// Top-level LOINC codes not cited to HCPs: recent major changes, patient
/// package insert, medication guide, package label, product data, SPL
/// unclassified leaflets.
pub const SKIPPED_LOINC: &[&str] = &["43683-2", "42230-3", "42231-1", "51945-4", "48780-1", "38056-8", "59845-8"];

/// A minimal element tree: enough to walk SPL sections.
#[derive(Debug, Default)]
struct Node {
    name: String,
    code: Option<String>,
    children: Vec<Child>,
}

#[derive(Debug)]
enum Child {
    Node(Node),
    Text(String),
}

fn parse_tree(path: &Path, xml: &str) -> Result<Node> {
    let corrupt = |message: String| Error::Corrupt { path: path.to_owned(), format: "SPL XML", message };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<Node> = vec![Node { name: "#root".into(), ..Node::default() }];
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| corrupt(format!("{e} at byte {}", reader.buffer_position())))?;
        match ev {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_string();
                let code = code_attr(&name, &e);
                stack.push(Node { name, code, children: Vec::new() });
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                let code = code_attr(&name, &e);
                let node = Node { name, code, children: Vec::new() };
                if let Some(top) = stack.last_mut() {
                    top.children.push(Child::Node(node));
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| corrupt("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Child::Node(node)),
                    None => return Err(corrupt("unbalanced end tag".into())),
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content().into_owned();
                if let Some(top) = stack.last_mut() {
                    top.children.push(Child::Text(s));
                }
            }
            Event::CData(t) => {
                let s = t.xml10_content().into_owned();
                if let Some(top) = stack.last_mut() {
                    top.children.push(Child::Text(s));
                }
            }
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = r.xml10_content();
                        quick_xml::escape::resolve_predefined_entity(&name).unwrap_or(" ").to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.children.push(Child::Text(s));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(corrupt(format!("unexpected end of file inside <{}>", stack.last().map(|n| n.name.as_str()).unwrap_or(""))));
    }
    stack.pop().ok_or_else(|| corrupt("empty document".into()))
}

fn code_attr(name: &str, e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    if name != "code" {
        return None;
    }
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == "code")
        .map(|a| a.value.to_string())
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.nodes().find(|n| n.name == name)
    }
    fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.children.iter().filter_map(|c| match c {
            Child::Node(n) => Some(n),
            Child::Text(_) => None,
        })
    }
    fn find(&self, name: &str) -> Option<&Node> {
        if self.name == name {
            return Some(self);
        }
        self.nodes().find_map(|n| n.find(name))
    }
    /// Inner text, markup dropped, spaces collapsed.
    fn inner_text(&self) -> String {
        let mut s = String::new();
        self.collect_inline(&mut s);
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    fn collect_inline(&self, out: &mut String) {
        for c in &self.children {
            match c {
                Child::Text(t) => out.push_str(t),
                Child::Node(n) if n.name == "br" => out.push(' '),
                Child::Node(n) => n.collect_inline(out),
            }
        }
    }
    /// Renders section text: paragraphs and list items on their own lines,
    /// table rows as `cell | cell`.
    fn render(&self, out: &mut String) {
        for c in &self.children {
            match c {
                Child::Text(t) => out.push_str(t),
                Child::Node(n) => match n.name.as_str() {
                    "paragraph" | "caption" | "title" => {
                        out.push('\n');
                        n.render(out);
                        out.push('\n');
                    }
                    "item" => {
                        out.push_str("\n• ");
                        n.render(out);
                        out.push('\n');
                    }
                    "tr" => {
                        out.push('\n');
                        let cells: Vec<String> = n
                            .nodes()
                            .filter(|c| c.name == "td" || c.name == "th")
                            .map(|c| {
                                let mut s = String::new();
                                c.render(&mut s);
                                s.split_whitespace().collect::<Vec<_>>().join(" ")
                            })
                            .collect();
                        out.push_str(&cells.join(" | "));
                        out.push('\n');
                    }
                    "br" => out.push('\n'),
                    "sup" => {
                        // Footnote letters and symbols stick to words ("Reactiona"); drop them.
                        let t = n.inner_text();
                        if !(t.chars().count() == 1 && (t.chars().all(char::is_alphabetic) || "*†‡§¶".contains(t.as_str()))) {
                            out.push_str(&t);
                        }
                    }
                    "renderMultiMedia" | "observationMedia" | "excerpt" => {}
                    _ => n.render(out),
                },
            }
        }
    }
}

/// Loads an SPL XML label into sections.
pub fn load(path: &Path, xml: &str) -> Result<Vec<Section>> {
    let root = parse_tree(path, xml)?;
    let body = root.find("structuredBody").ok_or_else(|| Error::Corrupt {
        path: path.to_owned(),
        format: "SPL XML",
        message: "no <structuredBody>: is this a DailyMed SPL document?".into(),
    })?;
    let mut out = Vec::new();
    for comp in body.nodes().filter(|n| n.name == "component") {
        for sec in comp.nodes().filter(|n| n.name == "section") {
            walk(sec, true, None, &mut out);
        }
    }
    for s in &mut out {
        s.text = normalize(&s.text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
    }
    Ok(out)
}

/// What a section heading becomes.
pub(crate) enum Heading {
    /// A section of its own: (label, title).
    Own(String, String),
    /// Text that belongs to the parent section.
    MergeIntoParent,
    /// Not cited to HCPs.
    Skip,
}

/// Decides a section's label from its title, LOINC code and depth.
pub(crate) fn classify(title: &str, code: Option<&str>, top_level: bool) -> Heading {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    if top_level && code.is_some_and(|c| SKIPPED_LOINC.contains(&c)) {
        return Heading::Skip;
    }
    if top_level && code == Some(LOINC_BOXED_WARNING) {
        let t = if title.is_empty() { "BOXED WARNING".to_string() } else { title };
        return Heading::Own("BW".into(), t);
    }
    if title.is_empty() {
        return if top_level { Heading::Skip } else { Heading::MergeIntoParent };
    }
    let upper = title.to_uppercase();
    if top_level && (upper.starts_with("PATIENT INFORMATION") || upper.starts_with("PRINCIPAL DISPLAY PANEL") || upper.starts_with("PACKAGE LABEL")) {
        return Heading::Skip;
    }
    match split_number(&title) {
        Some((num, rest)) => Heading::Own(num, rest),
        None => Heading::Own(title.clone(), title),
    }
}

fn walk(sec: &Node, top_level: bool, parent: Option<usize>, out: &mut Vec<Section>) {
    let title = sec.child("title").map(Node::inner_text).unwrap_or_default();
    let code = sec.child("code").and_then(|c| c.code.as_deref());
    let mut text = String::new();
    for n in sec.nodes() {
        if n.name == "text" {
            n.render(&mut text);
        }
    }
    let me = match classify(&title, code, top_level) {
        Heading::Skip => return,
        Heading::MergeIntoParent => {
            if let Some(p) = parent {
                out[p].text.push('\n');
                out[p].text.push_str(&text);
            }
            parent
        }
        Heading::Own(label, title) => {
            let parent = parent.map(|p| out[p].title.clone()).unwrap_or_default();
            out.push(Section { label, title, text, parent });
            Some(out.len() - 1)
        }
    };
    for comp in sec.nodes().filter(|n| n.name == "component") {
        for child in comp.nodes().filter(|n| n.name == "section") {
            walk(child, false, me, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?><document xmlns="urn:hl7-org:v3"><component><structuredBody>
<component><section><code code="34066-1"/><title>WARNING: RISK</title><text><paragraph>Serious &amp; fatal.</paragraph></text></section></component>
<component><section><code code="43685-7"/><title>5 WARNINGS AND PRECAUTIONS</title>
 <excerpt><highlight><text>Summary only.</text></highlight></excerpt>
 <component><section><code code="42229-5"/><title>5.2 <content>Hepato</content>toxicity</title><text><paragraph>Monitor ALT<sup>a</sup>.</paragraph></text>
   <component><section><code code="42229-5"/><title/><text><table><tr><td>ALT</td><td>3x</td></tr></table></text></section></component>
 </section></component>
</section></component>
<component><section><code code="51945-4"/><title>PRINCIPAL DISPLAY PANEL</title><text>90 Tablets</text></section></component>
</structuredBody></component></document>"#;

    #[test]
    fn sections_from_spl() {
        let s = load(Path::new("x.xml"), XML).unwrap();
        let labels: Vec<_> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["BW", "5", "5.2"]);
        assert_eq!(s[0].text, "Serious & fatal.");
        assert_eq!(s[2].title, "Hepatotoxicity");
        assert_eq!(s[2].text, "Monitor ALT.\nALT | 3x");
        assert!(!s[1].text.contains("Summary"));
    }

    #[test]
    fn truncated_xml_is_corrupt() {
        let e = load(Path::new("x.xml"), &XML[..300]).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }
}
