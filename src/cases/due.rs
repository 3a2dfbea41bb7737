//! The SLA clock: when a new case is due.
//!
//! - Pharmacovigilance (an adverse-event report): **one business day**. AE
//!   reports reach the safety database well inside the regulatory clock
//!   (15 calendar days for expedited reports) only if the first hand-off is fast.
//! - Medical Information (off-label / unsolicited request): **two business
//!   days**, a common MI response target for a first contact.
//!
//! A business day is Monday to Friday. Counting starts from the moment the
//! case is opened and keeps the time of day: a Friday 10:00 AE report is due
//! Monday 10:00; one received Saturday or Sunday is due Monday at that time.
//! Days are judged in UTC (no time-zone database is bundled) and public
//! holidays are not known; both are documented limitations.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};

use super::CaseKind;

/// Business days allowed for a new case of `kind`.
pub fn business_days(kind: CaseKind) -> u32 {
    match kind {
        CaseKind::Pharmacovigilance => 1,
        CaseKind::MedicalInformation => 2,
    }
}

/// When a case of `kind` opened at `opened` is due.
pub fn due_at(kind: CaseKind, opened: DateTime<Utc>) -> DateTime<Utc> {
    add_business_days(opened, business_days(kind))
}

/// `t` moved forward by `n` weekdays (Saturday and Sunday are skipped), same time of day.
pub fn add_business_days(t: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    let mut t = t;
    for _ in 0..n {
        t += Duration::days(1);
        while matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
            t += Duration::days(1);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ae_on_friday_is_due_monday() {
        // 2026-11-20 is a Friday.
        assert_eq!(due_at(CaseKind::Pharmacovigilance, at("2026-11-20T10:00:00Z")), at("2026-11-23T10:00:00Z"));
    }

    #[test]
    fn ae_midweek_is_due_next_day_and_weekend_reports_due_monday() {
        assert_eq!(due_at(CaseKind::Pharmacovigilance, at("2026-11-18T23:59:00Z")), at("2026-11-19T23:59:00Z"));
        assert_eq!(due_at(CaseKind::Pharmacovigilance, at("2026-11-21T09:00:00Z")), at("2026-11-23T09:00:00Z"));
        assert_eq!(due_at(CaseKind::Pharmacovigilance, at("2026-11-22T09:00:00Z")), at("2026-11-23T09:00:00Z"));
    }

    #[test]
    fn mir_gets_two_business_days() {
        assert_eq!(due_at(CaseKind::MedicalInformation, at("2026-11-19T08:00:00Z")), at("2026-11-23T08:00:00Z"));
        assert_eq!(due_at(CaseKind::MedicalInformation, at("2026-11-20T08:00:00Z")), at("2026-11-24T08:00:00Z"));
        assert_eq!(due_at(CaseKind::MedicalInformation, at("2026-11-16T08:00:00Z")), at("2026-11-18T08:00:00Z"));
    }

    #[test]
    fn never_lands_on_a_weekend() {
        let start = at("2026-11-16T12:00:00Z");
        for h in 0..(24 * 14) {
            let t = start + Duration::hours(h);
            for k in CaseKind::ALL {
                let d = due_at(k, t);
                assert!(!matches!(d.weekday(), Weekday::Sat | Weekday::Sun), "{t} → {d}");
                assert!(d > t);
            }
        }
    }
}
