//! Issue 18, point 4: the product's indications are not events. A long visit
//! note about dosing Humira for rheumatoid arthritis, with one real adverse
//! event in it, opens one Pharmacovigilance case whose event flags name that
//! event only — not the indication on every other line, not the same term
//! twice. On the real labels (`../shared/data/pi`), the real guard and a real
//! case store.

use onlabel::cases::{CaseFilter, CaseKind, CaseStore};
use onlabel::copilot::{Ask, Copilot, Requester, Route};
use onlabel::guard::Guard;

use crate::harness;

/// The visit note: paragraphs of dosing discussion about Humira in
/// rheumatoid arthritis (the indication, named again and again, with the
/// times and doses a note gives), and one paragraph with one real event.
const PARAGRAPHS: &[&str] = &[
    "Visit with Dr. Okafor (rheumatology, Riverside Arthritis Center), 40 minutes. We went through the Humira dosing for rheumatoid arthritis in detail. She has about 60 patients with rheumatoid arthritis on biologics and roughly a third of them are on Humira 40 mg every other week, most with methotrexate. She asked me to confirm the adult RA dose: 40 mg subcutaneously every other week, and I pointed her to section 2.1 of the label for the dosing in rheumatoid arthritis.",
    "Dr. Okafor said that in her practice methotrexate is continued in almost every RA patient who starts Humira, and that the few who cannot tolerate methotrexate stay on Humira alone. She wanted to know what the label says about patients with rheumatoid arthritis who are not taking concomitant methotrexate. I read her the label text: some patients with RA not receiving concomitant MTX may derive additional benefit from increasing the frequency to 40 mg every week or 80 mg every other week.",
    "We talked about how she tracks the response to Humira. Her nurse records a DAS28 at every visit for every patient with rheumatoid arthritis, and she reviews the trend before each refill of Humira. In the RA clinic they look at the joint counts, the CRP and the patient global assessment, and she said the scores in her rheumatoid arthritis cohort have been steady since the clinic moved to the every-other-week schedule two years ago.",
    "She asked about switching a patient with long-standing rheumatoid arthritis from the weekly dose back to every other week. I told her the label describes the weekly frequency only for RA patients not on methotrexate and that any question about tapering or stopping goes to Medical Information. She was fine with that and asked me to send the request in writing.",
    "Injection technique came up again. Her nurse, Ms. Bell, teaches every new RA patient on the first visit with the demonstration pen and then watches the first self-injection in the clinic. They rotate sites between the thighs and the abdomen, keep each site at least an inch from the last one, and let the pen sit at room temperature for 15 to 30 minutes before the injection. Ms. Bell said the patients with rheumatoid arthritis who have hand deformities manage the pen better than the syringe.",
    "Storage questions: she wanted the label wording on refrigeration for patients who travel. I read her section 16: store in the refrigerator at 36 to 46 degrees F, do not freeze, keep in the original carton to protect from light, and when needed a pen may be kept at room temperature up to 77 degrees F for up to 14 days. Two of her rheumatoid arthritis patients spend the winter in Arizona and she will give them the travel case.",
    "Screening before the first dose: Dr. Okafor tests every patient for latent tuberculosis and hepatitis B before starting Humira for rheumatoid arthritis, and repeats the TB test once a year. She asked me to confirm the label's advice on live vaccines; I read her that live vaccines should not be given with Humira. She keeps the vaccine schedule of each RA patient up to date before the first injection.",
    "We discussed the dosing of the other adalimumab indications briefly, because her colleague Dr. Mendes sees patients with psoriatic arthritis and ankylosing spondylitis in the same clinic. The dose for psoriatic arthritis and for ankylosing spondylitis is also 40 mg every other week. She said that for her own practice the rheumatoid arthritis dosing is what matters and she did not need the Crohn's disease or psoriasis schedules.",
    "She brought up the patients with rheumatoid arthritis who are older than 75. Her oldest RA patient on Humira is 82 and has done well on 40 mg every other week with methotrexate 15 mg weekly for three years. She asked whether the label says anything about dose changes in the elderly; I read her section 8.5 and said that questions beyond it go to Medical Information.",
    "On the every-other-week schedule, Dr. Okafor said her patients with rheumatoid arthritis often ask what to do when an injection day falls on a trip. I read her the patient information on the dosing schedule and told her that anything beyond it goes to Medical Information. She wants a copy of the Medication Guide in the waiting room of the RA clinic, and I will bring ten with the next delivery of the demonstration pens.",
    "Formulary and access: I did not discuss any pricing. She mentioned that the outpatient pharmacy next to the RA clinic keeps Humira in stock and that most patients pick up their pens there. I referred the access question to the patient-support program, as required.",
    "Dr. Okafor also asked about the rheumatoid arthritis clinical trials in the label, in particular the radiographic data. I showed her section 14.1 and the table of ACR20, ACR50 and ACR70 responses at week 24 and 52 for the rheumatoid arthritis studies with and without methotrexate. She said her RA fellows would like the reprints; I will send the request to Medical Information because reprints are not something a rep hands out.",
    "One safety report, which I am passing on as it was told to me: Dr. Okafor said that one of her patients, a 61-year-old man on Humira 40 mg every other week, developed a fever of 102 two days after his injection last month and was admitted to Riverside General with pneumonia. He was treated with IV antibiotics for five days and is recovering at home; she has held Humira until she sees him again next week.",
    "She asked again about the timing of the next dose for the patients with rheumatoid arthritis whose injection days fall on a holiday, and I repeated the schedule wording from the Medication Guide. Her RA nurse keeps a calendar of every patient's injection days so that the every-other-week schedule holds, and she said the calendars help most in the first three months on Humira.",
    "We ended with the methotrexate combination again: in her rheumatoid arthritis clinic she uses methotrexate 15 to 25 mg weekly with folic acid, and Humira 40 mg every other week on top. She asked me to confirm that the label allows Humira alone or with methotrexate or other non-biologic DMARDs in rheumatoid arthritis, and I read her section 1.1 word for word.",
    "Dr. Mendes joined for the last ten minutes and asked about the RA patients who also have psoriatic arthritis features. I told him the label treats psoriatic arthritis as its own indication with the same 40 mg every-other-week dose, and that questions about overlap of the two diagnoses go to Medical Information. He will send me the question in an email.",
    "Dr. Okafor asked how I would explain the every-other-week interval to a patient with rheumatoid arthritis who wants to inject on the same weekday. I suggested what her nurse already does: pick a weekday, write the dates for the next three months on the calendar, and keep the pens in the refrigerator door so they are not forgotten. She said her RA patients who started Humira since the spring have kept their schedules better with the calendar than with the phone reminders.",
    "She also wanted to be sure of the presentation: the 40 mg/0.8 mL pen and the 40 mg/0.8 mL prefilled syringe, both single-use. Most of her patients with rheumatoid arthritis prefer the pen; a few with good hand function after years of methotrexate use the syringe because they like to see the plunger. She asked for extra sharps containers for the RA clinic, which I will order through the patient-support program.",
    "Dr. Okafor asked whether the label gives a loading dose in rheumatoid arthritis, as it does for Crohn's disease. I read her section 2.1 again: for RA there is no loading dose, the first dose is 40 mg and the schedule is every other week from the start. She said that matches how her RA clinic has started every patient on Humira since 2019.",
    "She then asked about the labs she draws while a patient with rheumatoid arthritis is on Humira and methotrexate: a blood count and liver tests every eight to twelve weeks, as her clinic protocol for methotrexate requires. I told her the label's monitoring advice is in section 5 and offered a copy of the full prescribing information for her RA fellows, which she accepted.",
    "Follow-ups: send the Medication Guides and demonstration pens; send the Medical Information requests (tapering in stable rheumatoid arthritis, reprints of the RA trials, overlap question from Dr. Mendes); bring the travel cases for the two RA patients who winter in Arizona. Next visit in four weeks; Dr. Okafor prefers Tuesday afternoons after the RA clinic.",
];

fn note() -> String {
    // The note repeats its dosing discussion the way a long day's notes do
    // (a second visit with the same questions), to reach a visit note's size.
    let one = PARAGRAPHS.join("\n\n");
    let second: Vec<&str> = PARAGRAPHS.iter().copied().filter(|p| !p.starts_with("One safety report")).collect();
    format!("{one}\n\nSecond visit, same clinic, two days later (Dr. Okafor's partner Dr. Shah):\n\n{}", second.join("\n\n"))
}

#[test]
fn a_dosing_note_for_rheumatoid_arthritis_opens_one_case_naming_only_the_real_event() {
    let text = note();
    assert!((16_000..=20_000).contains(&text.len()), "the note is {} bytes", text.len());
    assert!(text.matches("rheumatoid arthritis").count() >= 20);
    let dir = tempfile::tempdir().unwrap();
    let index = harness::build_index(&[harness::shared_data().join("pi")], &dir.path().join("idx"));
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let copilot = Copilot::new(index)
        .with_guard(std::sync::Arc::new(Guard::builtin().unwrap()), as_of)
        .unwrap()
        .with_cases(CaseStore::open(&data).unwrap());
    let ask = Ask { question: String::new(), product: Some("humira".into()), role: "rep".into(), as_of };
    let who = Requester { user: "rep-7".into(), hcp: Some("Dr. Okafor".into()), defer_medical: false };
    let sum = copilot.summarize(&text, &ask, &who).unwrap();
    assert_eq!(sum.route, Route::Pharmacovigilance, "{:?}", sum.flags);

    let cases = CaseStore::open(&data).unwrap().list(&CaseFilter::default()).unwrap();
    let pv: Vec<_> = cases.iter().filter(|c| c.kind == CaseKind::Pharmacovigilance).collect();
    assert_eq!(pv.len(), 1, "{cases:?}");
    let flags = pv[0].flags.as_array().expect("flags are a list");
    let events: Vec<String> = flags
        .iter()
        .filter(|f| matches!(f["kind"].as_str(), Some("adverse_event" | "special_situation")))
        .map(|f| f["evidence"].as_str().unwrap_or("").to_lowercase())
        .collect();
    assert!(!events.is_empty(), "{flags:?}");
    for e in &events {
        assert!(e.contains("fever") || e.contains("pneumonia"), "an event flag that is not the event: {e:?} in {events:?}");
        assert!(!e.contains("arthritis") && !e.split(|c: char| !c.is_alphanumeric()).any(|w| w == "ra"), "{e:?}");
    }
    // No term twice.
    assert!(events.iter().filter(|e| e.contains("fever")).count() <= 1, "{events:?}");
    assert!(events.iter().filter(|e| e.contains("pneumonia") && !e.contains("fever")).count() <= 1, "{events:?}");
    let event = pv[0].event.clone().unwrap_or_default().to_lowercase();
    assert!(event.contains("fever") || event.contains("pneumonia"), "case event: {event:?}");
}

#[test]
fn the_same_note_without_its_event_is_not_a_report() {
    let text: String = PARAGRAPHS.iter().copied().filter(|p| !p.starts_with("One safety report")).collect::<Vec<_>>().join("\n\n");
    let dir = tempfile::tempdir().unwrap();
    let index = harness::build_index(&[harness::shared_data().join("pi")], &dir.path().join("idx"));
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let guard = std::sync::Arc::new(Guard::builtin().unwrap());
    let copilot = Copilot::new(index).with_guard(guard, as_of).unwrap();
    let ask = Ask { question: String::new(), product: Some("humira".into()), role: "rep".into(), as_of };
    let sum = copilot.summarize(&text, &ask, &Requester::default()).unwrap();
    assert_ne!(sum.route, Route::Pharmacovigilance, "{:?}", sum.flags);
}
