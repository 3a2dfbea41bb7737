//! [`CaseState`] and its state machine; [`CaseKind`] and the id it gives.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Who a case goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// An adverse-event (or special-situation) report for Pharmacovigilance; ids `PV-YYYY-NNNNNN`.
    Pharmacovigilance,
    /// An off-label or unsolicited medical question for Medical Information; ids `MIR-YYYY-NNNNNN`.
    MedicalInformation,
}

impl CaseKind {
    /// Both kinds.
    pub const ALL: [CaseKind; 2] = [CaseKind::Pharmacovigilance, CaseKind::MedicalInformation];

    /// The id prefix: `PV` or `MIR`.
    pub fn prefix(self) -> &'static str {
        match self {
            CaseKind::Pharmacovigilance => "PV",
            CaseKind::MedicalInformation => "MIR",
        }
    }

    /// The stored and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Pharmacovigilance => "pharmacovigilance",
            CaseKind::MedicalInformation => "medical_information",
        }
    }

    /// The case id for a year and a sequence number: `PV-2026-000001`.
    pub fn case_id(self, year: i32, seq: i64) -> String {
        format!("{}-{year:04}-{seq:06}", self.prefix())
    }
}

impl fmt::Display for CaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseKind {
    type Err = String;
    /// Accepts `pv`, `pharmacovigilance`, `mir`, `medical`, `medical_information` (any case).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "pv" | "pharmacovigilance" => Ok(CaseKind::Pharmacovigilance),
            "mir" | "mi" | "medical" | "medical_information" => Ok(CaseKind::MedicalInformation),
            _ => Err(format!("{s:?} is not a case kind (pv or mir)")),
        }
    }
}

/// Where a case is in its life.
///
/// ```text
/// new ──triage──► triaged ──start──► in_progress ──resolve──► closed
///                                        ▲                      │
///                                        └──reopen (a reason)───┘
/// ```
///
/// Forward one step at a time: a case is looked at (triaged) before anyone
/// works it, and worked by an owner before it is closed. The one way back is
/// [`CaseState::reopened`]: a closed case goes back to `in_progress` with a
/// reason (follow-up information arrived, the close was premature), which
/// the history and the audit log keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Opened by the pipeline; nobody has looked at it.
    New,
    /// Seen and classified by PV / Medical (seriousness, completeness).
    Triaged,
    /// Being worked by its owner.
    InProgress,
    /// Done, with a resolution.
    Closed,
}

impl CaseState {
    /// Every state, in order.
    pub const ALL: [CaseState; 4] = [CaseState::New, CaseState::Triaged, CaseState::InProgress, CaseState::Closed];

    /// The stored and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::New => "new",
            CaseState::Triaged => "triaged",
            CaseState::InProgress => "in_progress",
            CaseState::Closed => "closed",
        }
    }

    /// The one state a case may move to from this one (`None` once closed).
    pub fn next(self) -> Option<CaseState> {
        match self {
            CaseState::New => Some(CaseState::Triaged),
            CaseState::Triaged => Some(CaseState::InProgress),
            CaseState::InProgress => Some(CaseState::Closed),
            CaseState::Closed => None,
        }
    }

    /// Whether `self → to` is allowed as a forward step.
    pub fn can_go_to(self, to: CaseState) -> bool {
        self.next() == Some(to)
    }

    /// The state a reopened case goes to: `in_progress` from `closed`
    /// (`None` from any other state: only a closed case is reopened).
    pub fn reopened(self) -> Option<CaseState> {
        (self == CaseState::Closed).then_some(CaseState::InProgress)
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseState {
    type Err = String;
    /// Accepts the stored spelling, with `-` or `_`, any case.
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        CaseState::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| format!("{s:?} is not a case state (new, triaged, in_progress, closed)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_next_step_is_allowed() {
        use CaseState::*;
        let allowed = [(New, Triaged), (Triaged, InProgress), (InProgress, Closed)];
        for from in CaseState::ALL {
            for to in CaseState::ALL {
                assert_eq!(from.can_go_to(to), allowed.contains(&(from, to)), "{from} → {to}");
            }
        }
    }

    #[test]
    fn only_a_closed_case_is_reopened_and_it_goes_back_to_work() {
        for s in CaseState::ALL {
            assert_eq!(s.reopened(), (s == CaseState::Closed).then_some(CaseState::InProgress), "{s}");
        }
        assert!(!CaseState::Closed.can_go_to(CaseState::InProgress), "reopening is not a forward step");
    }

    #[test]
    fn spellings_round_trip() {
        for s in CaseState::ALL {
            assert_eq!(s.as_str().parse::<CaseState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!("in-progress".parse::<CaseState>().unwrap(), CaseState::InProgress);
        for k in CaseKind::ALL {
            assert_eq!(k.as_str().parse::<CaseKind>().unwrap(), k);
            assert_eq!(k.prefix().parse::<CaseKind>().unwrap(), k);
        }
        assert_eq!(CaseKind::Pharmacovigilance.case_id(2026, 1), "PV-2026-000001");
        assert_eq!(CaseKind::MedicalInformation.case_id(2026, 42), "MIR-2026-000042");
    }
}
