//! [`Intake`]: the ICH E2D elements of an adverse-event report that the rep's
//! words did not give — reporter, patient, event and onset, suspect product,
//! seriousness, outcome — with the minimum-criteria check ([`valid_case`])
//! and the day-0 clock ([`day0`]).
//!
//! - **Strict.** The JSON has exactly these fields (`deny_unknown_fields` at
//!   every level) and [`Intake::validate`] checks what serde cannot: text
//!   lengths, the age against its unit, partial onset dates (`YYYY`,
//!   `YYYY-MM`, `YYYY-MM-DD`, as ICH E2B allows) that exist and are not in
//!   the future, and seriousness that agrees with itself and the outcome.
//!   Each refusal names the field (`patient.age: …`).
//! - **Partial saves are fine.** Every element is optional: a rep saves what
//!   the HCP told them and [`valid_case`] says what is still missing.
//! - **Pre-filled** ([`prefill`]) from what the guard found in the rep's words
//!   (the HCP, the patient mention, the suspect product, the event).
//! - **Day 0** is when the company first knew: the case's opening. The
//!   regulatory clock is 15 calendar days ([`REGULATORY_DAYS`]); the internal
//!   hand-off is 24 hours ([`INTERNAL_HOURS`]) for a serious case — and for one
//!   whose seriousness is not yet assessed, which PV treats as serious until
//!   someone says otherwise.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Longest name, contact, identifier or product, characters.
pub const MAX_TEXT: usize = 200;
/// Longest event description, characters.
pub const MAX_DESCRIPTION: usize = 2_000;
/// Oldest patient, in years (the limit of each [`AgeUnit`] is this many years).
pub const MAX_AGE_YEARS: u32 = 120;
/// Earliest onset year accepted (anything before is a typo).
pub const MIN_ONSET_YEAR: i32 = 1900;
/// Calendar days from day 0 to the regulatory (expedited) report.
pub const REGULATORY_DAYS: i64 = 15;
/// Hours from day 0 to the internal hand-off of a serious case to the safety database.
pub const INTERNAL_HOURS: i64 = 24;

/// The AE intake of a PV case, as the rep or Medical entered it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Intake {
    /// Who reported the event (the primary source: usually the HCP).
    pub reporter: Reporter,
    /// The patient, identified without a name.
    pub patient: Patient,
    /// What happened and when it began.
    pub event: Event,
    /// The product suspected of causing it.
    pub suspect_product: Option<String>,
    /// Whether it is serious, and by which ICH criteria.
    pub seriousness: Seriousness,
    /// How the patient is now.
    pub outcome: Option<Outcome>,
}

/// The reporter (ICH E2D "identifiable reporter").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Reporter {
    /// Name (or initials) of the reporter.
    pub name: Option<String>,
    /// Their qualification (E2B: physician, pharmacist, other health professional, lawyer, consumer).
    pub role: Option<ReporterRole>,
    /// Phone, e-mail or address for follow-up.
    pub contact: Option<String>,
}

/// The reporter's qualification (ICH E2B(R3) C.2.r.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReporterRole {
    /// A physician.
    Physician,
    /// A pharmacist.
    Pharmacist,
    /// A nurse or another health professional.
    OtherHealthProfessional,
    /// A lawyer.
    Lawyer,
    /// A patient, relative or other non-professional.
    Consumer,
}

/// The patient (ICH E2D "identifiable patient": any one of these is enough).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Patient {
    /// Initials or the practice's patient identifier — never a name.
    pub identifier: Option<String>,
    /// Age at onset, in `age_unit`.
    pub age: Option<u32>,
    /// The unit of `age` (years when not given).
    pub age_unit: Option<AgeUnit>,
    /// Sex.
    pub sex: Option<Sex>,
}

/// The unit of an age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgeUnit {
    /// Years.
    Years,
    /// Months (infants).
    Months,
    /// Weeks.
    Weeks,
    /// Days (neonates).
    Days,
}

impl AgeUnit {
    /// The largest age in this unit ([`MAX_AGE_YEARS`] years).
    pub fn max(self) -> u32 {
        match self {
            AgeUnit::Years => MAX_AGE_YEARS,
            AgeUnit::Months => MAX_AGE_YEARS * 12,
            AgeUnit::Weeks => MAX_AGE_YEARS * 53,
            AgeUnit::Days => MAX_AGE_YEARS * 366,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AgeUnit::Years => "years",
            AgeUnit::Months => "months",
            AgeUnit::Weeks => "weeks",
            AgeUnit::Days => "days",
        }
    }
}

/// Sex (E2B D.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Asked and not known.
    Unknown,
}

/// The event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Event {
    /// What happened, in the reporter's words.
    pub description: Option<String>,
    /// When it began: `YYYY-MM-DD`, or `YYYY-MM` / `YYYY` when only that is known.
    pub onset_date: Option<String>,
}

/// Seriousness: `serious` unset means not yet assessed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Seriousness {
    /// Serious (true), not serious (false), or not yet assessed (absent).
    pub serious: Option<bool>,
    /// The ICH criteria met (a serious case names at least one).
    pub criteria: Vec<Criterion>,
}

/// The ICH E2A seriousness criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Results in death.
    Death,
    /// Is life-threatening.
    LifeThreatening,
    /// Requires or prolongs inpatient hospitalisation.
    Hospitalisation,
    /// Results in persistent or significant disability or incapacity.
    Disability,
    /// Is a congenital anomaly or birth defect.
    CongenitalAnomaly,
    /// Is another medically important event.
    OtherMedicallyImportant,
}

/// The outcome at the time of the report (E2B E.i.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Recovered or resolved.
    Recovered,
    /// Recovering or resolving.
    Recovering,
    /// Not recovered or not resolved.
    NotRecovered,
    /// Recovered with sequelae.
    RecoveredWithSequelae,
    /// Fatal.
    Fatal,
    /// Unknown.
    Unknown,
}

/// Why an intake is refused: the field (`patient.age`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field, as a JSON path.
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid { field, reason: reason.into() }
}

/// Trims `v`; an empty text is no text; longer than `max` is refused.
fn text(field: &'static str, v: &mut Option<String>, max: usize) -> Result<(), Invalid> {
    if let Some(s) = v.take() {
        let t = s.trim();
        let n = t.chars().count();
        if n > max {
            return Err(invalid(field, format!("{n} characters; at most {max}")));
        }
        if !t.is_empty() {
            *v = Some(t.to_string());
        }
    }
    Ok(())
}

impl Intake {
    /// Parses the JSON of a `PUT …/intake` body (strictly) and validates it
    /// against `today` (the onset may not be later).
    pub fn parse(body: &[u8], today: NaiveDate) -> Result<Intake, Invalid> {
        let intake: Intake = serde_json::from_slice(body).map_err(|e| invalid("intake", format!("{e}")))?;
        intake.validate(today)
    }

    /// Checks and normalises (trims texts, drops empty ones, sorts the
    /// criteria, fills `age_unit` and `serious` where they follow).
    pub fn validate(mut self, today: NaiveDate) -> Result<Intake, Invalid> {
        text("reporter.name", &mut self.reporter.name, MAX_TEXT)?;
        text("reporter.contact", &mut self.reporter.contact, MAX_TEXT)?;
        text("patient.identifier", &mut self.patient.identifier, MAX_TEXT)?;
        text("event.description", &mut self.event.description, MAX_DESCRIPTION)?;
        text("suspect_product", &mut self.suspect_product, MAX_TEXT)?;
        text("event.onset_date", &mut self.event.onset_date, 10)?;
        match (self.patient.age, self.patient.age_unit) {
            (None, Some(_)) => return Err(invalid("patient.age_unit", "given without patient.age")),
            (Some(age), unit) => {
                let unit = unit.unwrap_or(AgeUnit::Years);
                if age > unit.max() {
                    return Err(invalid(
                        "patient.age",
                        format!("{age} {} is out of range: 0 to {} {} ({MAX_AGE_YEARS} years)", unit.as_str(), unit.max(), unit.as_str()),
                    ));
                }
                self.patient.age_unit = Some(unit);
            }
            (None, None) => {}
        }
        if let Some(d) = &self.event.onset_date {
            let day = partial_date(d).ok_or_else(|| {
                invalid("event.onset_date", format!("{d:?} is not a date: use YYYY-MM-DD, or YYYY-MM or YYYY when only that is known"))
            })?;
            if day.year() < MIN_ONSET_YEAR {
                return Err(invalid("event.onset_date", format!("{d:?} is before {MIN_ONSET_YEAR}")));
            }
            if day > today {
                return Err(invalid("event.onset_date", format!("{d:?} is in the future (today is {today})")));
            }
        }
        let s = &mut self.seriousness;
        s.criteria.sort();
        s.criteria.dedup();
        match (s.serious, s.criteria.is_empty()) {
            (Some(false), false) => {
                return Err(invalid("seriousness.criteria", "criteria are given but serious is false: clear them or set serious to true"))
            }
            (Some(true), true) => {
                return Err(invalid(
                    "seriousness.criteria",
                    "a serious case names at least one criterion: death, life_threatening, hospitalisation, disability, congenital_anomaly, other_medically_important",
                ))
            }
            (None, false) => s.serious = Some(true),
            _ => {}
        }
        if self.outcome == Some(Outcome::Fatal) && !s.criteria.contains(&Criterion::Death) {
            return Err(invalid("outcome", "fatal: the seriousness criteria must include death"));
        }
        Ok(self)
    }

    /// Fields that differ from `before` (JSON paths), for the history note.
    pub fn changed_from(&self, before: &Intake) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut diff = |name: &'static str, same: bool| {
            if !same {
                out.push(name);
            }
        };
        diff("reporter.name", self.reporter.name == before.reporter.name);
        diff("reporter.role", self.reporter.role == before.reporter.role);
        diff("reporter.contact", self.reporter.contact == before.reporter.contact);
        diff("patient.identifier", self.patient.identifier == before.patient.identifier);
        diff("patient.age", self.patient.age == before.patient.age && self.patient.age_unit == before.patient.age_unit);
        diff("patient.sex", self.patient.sex == before.patient.sex);
        diff("event.description", self.event.description == before.event.description);
        diff("event.onset_date", self.event.onset_date == before.event.onset_date);
        diff("suspect_product", self.suspect_product == before.suspect_product);
        diff("seriousness", self.seriousness == before.seriousness);
        diff("outcome", self.outcome == before.outcome);
        out
    }
}

/// The first day a partial date can mean (`2026` → 2026-01-01), if it is one.
fn partial_date(s: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = s.split('-').collect();
    let num = |p: &str, len: usize| (p.len() == len && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse::<u32>().ok()).flatten();
    match parts.as_slice() {
        [y] => NaiveDate::from_ymd_opt(num(y, 4)? as i32, 1, 1),
        [y, m] => NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, 1),
        [y, m, d] => NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(d, 2)?),
        _ => None,
    }
}

/// One of the four minimum criteria of a valid ICSR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `reporter`, `patient`, `suspect_product` or `event`.
    pub id: &'static str,
    /// What it is called on the page.
    pub label: &'static str,
    /// Met by the intake.
    pub met: bool,
    /// What would meet it, when it is not met.
    pub missing: Option<&'static str>,
}

/// The minimum-criteria check (ICH E2D 5.1.1): a valid case has an
/// identifiable reporter, an identifiable patient, a suspect product and an
/// adverse event. Until all four are met the case is not yet reportable —
/// but it is still followed up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidCase {
    /// All four are met.
    pub valid: bool,
    /// Each criterion, in order.
    pub criteria: Vec<Check>,
}

fn has(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// Checks `intake` against the four minimum criteria.
pub fn valid_case(intake: &Intake) -> ValidCase {
    let check = |id, label, met, missing| Check { id, label, met, missing: (!met).then_some(missing) };
    let criteria = vec![
        check(
            "reporter",
            "Identifiable reporter",
            has(&intake.reporter.name) || has(&intake.reporter.contact),
            "the reporter's name or initials, or a contact for follow-up",
        ),
        check(
            "patient",
            "Identifiable patient",
            has(&intake.patient.identifier) || intake.patient.age.is_some() || matches!(intake.patient.sex, Some(Sex::Female | Sex::Male)),
            "the patient's initials or identifier, age, or sex",
        ),
        check("suspect_product", "Suspect product", has(&intake.suspect_product), "the product suspected"),
        check("event", "Adverse event", has(&intake.event.description), "what happened to the patient"),
    ];
    ValidCase { valid: criteria.iter().all(|c| c.met), criteria }
}

/// The day-0 clock of a PV case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day0 {
    /// When the company first knew (the case's opening).
    pub day0: DateTime<Utc>,
    /// Day 0 + [`REGULATORY_DAYS`] calendar days.
    pub regulatory_due: DateTime<Utc>,
    /// Seconds left to `regulatory_due` at the time of the answer (negative: late).
    pub regulatory_remaining_secs: i64,
    /// Day 0 + [`INTERNAL_HOURS`] when the case is serious or not yet assessed; `None` for a non-serious one.
    pub internal_due: Option<DateTime<Utc>>,
    /// Seconds left to `internal_due` (negative: late).
    pub internal_remaining_secs: Option<i64>,
    /// `serious`, `not_serious` or `not_assessed` (which runs the 24-hour clock).
    pub seriousness: &'static str,
    /// When the clock was read.
    pub now: DateTime<Utc>,
}

/// The clock of a case opened at `opened`, at `now`.
pub fn day0(opened: DateTime<Utc>, serious: Option<bool>, now: DateTime<Utc>) -> Day0 {
    let regulatory_due = opened + Duration::days(REGULATORY_DAYS);
    let internal_due = (serious != Some(false)).then(|| opened + Duration::hours(INTERNAL_HOURS));
    Day0 {
        day0: opened,
        regulatory_due,
        regulatory_remaining_secs: (regulatory_due - now).num_seconds(),
        internal_due,
        internal_remaining_secs: internal_due.map(|d| (d - now).num_seconds()),
        seriousness: match serious {
            Some(true) => "serious",
            Some(false) => "not_serious",
            None => "not_assessed",
        },
        now,
    }
}

/// An intake filled from what the case already holds: the HCP as reporter,
/// the patient mention's age and sex, the suspect product, the event.
pub fn prefill(case: &super::Case) -> Intake {
    let mut i = Intake::default();
    if let Some(hcp) = case.hcp.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        i.reporter.name = Some(hcp.chars().take(MAX_TEXT).collect());
        let lower = hcp.to_ascii_lowercase();
        if lower.starts_with("dr ") || lower.starts_with("dr.") || lower.starts_with("doctor ") {
            i.reporter.role = Some(ReporterRole::Physician);
        }
    }
    if let Some(p) = case.patient.as_deref() {
        let (age, sex) = age_and_sex(p);
        i.patient.age = age;
        i.patient.age_unit = age.map(|_| AgeUnit::Years);
        i.patient.sex = sex;
    }
    i.suspect_product = case.suspect_product.clone().or_else(|| case.product.clone()).map(|s| s.chars().take(MAX_TEXT).collect());
    i.event.description = case.event.clone().map(|s| s.chars().take(MAX_DESCRIPTION).collect());
    i
}

/// The age in years and the sex a patient mention gives ("a 62-year-old
/// woman", "male, 45 years"), when it gives them.
fn age_and_sex(text: &str) -> (Option<u32>, Option<Sex>) {
    static AGE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    static SEX: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let age_re = AGE.get_or_init(|| regex::Regex::new(r"(?i)\b(\d{1,3})[\s-]*(?:years?|yrs?|y/?o)\b").ok());
    let sex_re = SEX.get_or_init(|| regex::Regex::new(r"(?i)\b(woman|women|female|girl|lady|she|her|man|men|male|boy|gentleman|he|his)\b").ok());
    let age = age_re
        .as_ref()
        .and_then(|r| r.captures(text))
        .and_then(|c| c.get(1))
        .and_then(|m| m.as_str().parse::<u32>().ok())
        .filter(|a| *a <= MAX_AGE_YEARS);
    let sex = sex_re.as_ref().and_then(|r| r.captures(text)).and_then(|c| c.get(1)).map(|m| {
        match m.as_str().to_ascii_lowercase().as_str() {
            "woman" | "women" | "female" | "girl" | "lady" | "she" | "her" => Sex::Female,
            _ => Sex::Male,
        }
    });
    (age, sex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
    }

    fn parse(j: serde_json::Value) -> Result<Intake, Invalid> {
        Intake::parse(j.to_string().as_bytes(), today())
    }

    #[test]
    fn a_full_intake_parses_and_normalises() {
        let i = parse(serde_json::json!({
            "reporter": {"name": "  Dr. Lee ", "role": "physician", "contact": "555-0101"},
            "patient": {"identifier": "J.D.", "age": 62, "sex": "female"},
            "event": {"description": "ALT 6x ULN", "onset_date": "2026-11"},
            "suspect_product": "Zentravia",
            "seriousness": {"criteria": ["other_medically_important", "hospitalisation", "hospitalisation"]},
            "outcome": "recovering"
        }))
        .unwrap();
        assert_eq!(i.reporter.name.as_deref(), Some("Dr. Lee"));
        assert_eq!(i.patient.age_unit, Some(AgeUnit::Years));
        assert_eq!(i.seriousness.serious, Some(true), "criteria imply serious");
        assert_eq!(i.seriousness.criteria, [Criterion::Hospitalisation, Criterion::OtherMedicallyImportant]);
        assert!(valid_case(&i).valid);
        // An empty object is a valid (empty) intake.
        assert_eq!(parse(serde_json::json!({})).unwrap(), Intake::default());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (serde_json::json!({"patient": {"age": 121}}), "patient.age: 121 years is out of range: 0 to 120 years (120 years)"),
            (serde_json::json!({"patient": {"age": 1441, "age_unit": "months"}}), "patient.age: 1441 months is out of range"),
            (serde_json::json!({"patient": {"age_unit": "days"}}), "patient.age_unit: given without patient.age"),
            (serde_json::json!({"event": {"onset_date": "2026-13-01"}}), "event.onset_date: \"2026-13-01\" is not a date"),
            (serde_json::json!({"event": {"onset_date": "2026-02-30"}}), "is not a date"),
            (serde_json::json!({"event": {"onset_date": "03/11/2026"}}), "is not a date"),
            (serde_json::json!({"event": {"onset_date": "2027-01-01"}}), "is in the future (today is 2026-12-03)"),
            (serde_json::json!({"event": {"onset_date": "1850"}}), "is before 1900"),
            (serde_json::json!({"seriousness": {"serious": false, "criteria": ["death"]}}), "seriousness.criteria: criteria are given but serious is false"),
            (serde_json::json!({"seriousness": {"serious": true}}), "a serious case names at least one criterion"),
            (serde_json::json!({"outcome": "fatal", "seriousness": {"criteria": ["hospitalisation"]}}), "outcome: fatal"),
            (serde_json::json!({"reporter": {"name": "x".repeat(201)}}), "reporter.name: 201 characters; at most 200"),
            (serde_json::json!({"patient": {"sex": "f"}}), "unknown variant `f`, expected one of `female`, `male`, `unknown`"),
            (serde_json::json!({"patient": {"height": 170}}), "unknown field `height`"),
            (serde_json::json!({"seriousness": {"criteria": ["hospitalization"]}}), "unknown variant `hospitalization`"),
            (serde_json::json!({"patient": {"age": -1}}), "invalid value: integer `-1`"),
        ];
        for (body, want) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
        // Partial dates that exist are accepted.
        for d in ["2026", "2026-02", "2024-02-29", "2026-12-03"] {
            parse(serde_json::json!({"event": {"onset_date": d}})).unwrap();
        }
    }

    #[test]
    fn the_minimum_criteria_each_say_what_is_missing() {
        let mut i = Intake::default();
        let v = valid_case(&i);
        assert!(!v.valid);
        assert_eq!(v.criteria.iter().map(|c| (c.id, c.met)).collect::<Vec<_>>(), [("reporter", false), ("patient", false), ("suspect_product", false), ("event", false)]);
        assert!(v.criteria.iter().all(|c| c.missing.is_some()));
        i.reporter.contact = Some("555".into());
        i.patient.sex = Some(Sex::Unknown); // asked and not known: not identifying
        i.suspect_product = Some("Zentravia".into());
        i.event.description = Some("rash".into());
        let v = valid_case(&i);
        assert_eq!(v.criteria.iter().filter(|c| !c.met).map(|c| c.id).collect::<Vec<_>>(), ["patient"]);
        i.patient.age = Some(0); // a newborn has an age
        assert!(valid_case(&i).valid);
    }

    #[test]
    fn day0_deadlines() {
        let opened = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().with_timezone(&Utc);
        let now = opened + Duration::hours(30);
        let d = day0(opened, Some(true), now);
        assert_eq!(d.regulatory_due.to_rfc3339(), "2026-12-16T09:00:00+00:00");
        assert_eq!(d.regulatory_remaining_secs, (15 * 24 - 30) * 3600);
        assert_eq!(d.internal_due.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-02T09:00:00+00:00"));
        assert_eq!(d.internal_remaining_secs, Some(-6 * 3600), "six hours late");
        assert_eq!(day0(opened, None, now).seriousness, "not_assessed");
        assert!(day0(opened, None, now).internal_due.is_some(), "not assessed runs the 24-hour clock");
        let ns = day0(opened, Some(false), now);
        assert_eq!((ns.internal_due, ns.internal_remaining_secs, ns.seriousness), (None, None, "not_serious"));
    }

    #[test]
    fn age_and_sex_from_a_patient_mention() {
        assert_eq!(age_and_sex("a 62-year-old woman"), (Some(62), Some(Sex::Female)));
        assert_eq!(age_and_sex("male patient, 45 yrs"), (Some(45), Some(Sex::Male)));
        assert_eq!(age_and_sex("My patient"), (None, None));
        assert_eq!(age_and_sex("a 300-year-old"), (None, None));
        assert_eq!(age_and_sex("Dr. Lee's patient; her ALT"), (None, Some(Sex::Female)));
    }

    #[test]
    fn changed_fields_are_named() {
        let a = Intake::default();
        let mut b = a.clone();
        b.patient.age = Some(3);
        b.outcome = Some(Outcome::Recovered);
        assert_eq!(b.changed_from(&a), ["patient.age", "outcome"]);
        assert!(a.changed_from(&a).is_empty());
    }
}
