//! Passwords: what a person types to sign in in a browser and to sign an
//! e-signature (21 CFR 11.200(a): the user id and a secret the person knows).
//!
//! Why it is built this way:
//!
//! - **Hashed like tokens.** argon2id with its own random salt, stored as a
//!   PHC string in `users.password_hash` (migration 11); the password itself
//!   is never stored or logged.
//! - **A length policy, not composition rules** (NIST SP 800-63B 3.1.1.2):
//!   [`MIN_CHARS`]..=[`MAX_CHARS`] characters, counted after Unicode NFKC
//!   normalisation (so the same password typed on two keyboards matches).
//!   The upper bound keeps argon2 and the strength check bounded and is far
//!   above any passphrase people type.
//! - **Refused when it is common or guessable.** [`check_policy`] runs
//!   `zxcvbn` (a maintained port of Dropbox's estimator), whose dictionaries
//!   are built from leaked-password lists, common names and English words,
//!   and refuses anything it scores below [`MIN_SCORE`] — a password from a
//!   breach list, a keyboard walk, a word with digits appended — with its
//!   own words on what is wrong and how to do better. The user's id and name
//!   count as known words too.
//! - **No other rules.** Spaces and any printable Unicode are allowed;
//!   control characters (a pasted newline) are refused, because a password
//!   that cannot be typed again is a lockout.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use unicode_normalization::UnicodeNormalization;

use super::{Error, Result};

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have (longer ones are refused, never cut).
pub const MAX_CHARS: usize = 128;
/// Lowest `zxcvbn` score accepted: 3 means about 10^8 to 10^10 guesses, the
/// estimator's own advice for "safe from online guessing and a fast offline
/// attack on a slow hash" (score 2 and below it calls too weak).
pub const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// The text that is hashed: NFKC-normalised.
fn normalised(password: &str) -> String {
    password.nfkc().collect()
}

/// Refuses a password outside the length policy, with a control character,
/// or that `zxcvbn` finds common or guessable ([`Error::WeakPassword`], whose
/// message says what is wrong and how to fix it). `known` are words the
/// password must not lean on: the user's id and full name.
pub fn check_policy(password: &str, known: &[&str]) -> Result<()> {
    let weak = |reason: String| Err(Error::WeakPassword { reason });
    let p = normalised(password);
    let n = p.chars().count();
    if n < MIN_CHARS {
        return weak(format!(
            "the password has {n} characters; use at least {MIN_CHARS} (a few unrelated words make a long password that is easy to remember)"
        ));
    }
    if n > MAX_CHARS {
        return weak(format!("the password has {n} characters; use at most {MAX_CHARS}"));
    }
    if p.chars().any(char::is_control) {
        return weak("the password contains a control character (a tab or a line break?); use printable characters and spaces only".into());
    }
    let entropy = zxcvbn::zxcvbn(&p, known);
    if entropy.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut why = Vec::new();
    let feedback = entropy.feedback();
    let warning = feedback.and_then(|f| f.warning());
    use zxcvbn::feedback::Warning as W;
    let leaked = matches!(
        warning,
        Some(W::ThisIsATop10Password | W::ThisIsATop100Password | W::ThisIsACommonPassword | W::ThisIsSimilarToACommonlyUsedPassword)
    );
    if leaked {
        why.push("it is on (or close to one on) the lists of passwords leaked in breaches, which attackers try first".to_string());
    }
    if let Some(w) = warning {
        why.push(w.to_string().trim_end_matches('.').to_lowercase());
    }
    let tips: Vec<String> = feedback.map(|f| f.suggestions().iter().map(|s| s.to_string().trim_end_matches('.').to_string()).collect()).unwrap_or_default();
    let what = if why.is_empty() { "it is too easy to guess".to_string() } else { why.join("; ") };
    let how = if tips.is_empty() { "use a few unrelated words".to_string() } else { tips.join("; ") };
    weak(format!(
        "the password is too easy to guess (strength {} of 4, at least {} needed): {what}. How to fix it: {how}",
        entropy.score(),
        MIN_SCORE
    ))
}

/// The argon2id PHC string of `password` (own random salt).
pub fn hash(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(normalised(password).as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// True when `password` matches the PHC string `phc`. A password over
/// [`MAX_CHARS`] is never checked (it cannot have been set), and a malformed
/// stored hash fails like a wrong password.
pub fn verify(password: &str, phc: &str) -> bool {
    let p = normalised(password);
    if p.chars().count() > MAX_CHARS {
        return false;
    }
    Argon2::default().verify_password(p.as_bytes(), phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "violet tram orbits quietly";

    #[test]
    fn the_length_policy_holds_at_both_edges() {
        // 11 and 12 characters, random enough for zxcvbn at 12.
        let e = check_policy("Xk7#qm2!Zp9", &[]).unwrap_err();
        assert_eq!(e.code(), "weak_password");
        assert!(e.to_string().contains("11 characters") && e.to_string().contains("at least 12"), "{e}");
        check_policy("Xk7#qm2!Zp9w", &[]).unwrap();
        // 128 and 129 characters.
        let long: String = GOOD.chars().cycle().take(MAX_CHARS).collect();
        check_policy(&long, &[]).unwrap();
        let e = check_policy(&format!("{long}x"), &[]).unwrap_err();
        assert!(e.to_string().contains("129 characters") && e.to_string().contains("at most 128"), "{e}");
    }

    #[test]
    fn a_breached_or_guessable_password_is_refused_with_what_to_do() {
        for p in ["password1234", "qwertyuiopasdf", "iloveyou2024!", "aaaaaaaaaaaaaaaa", "123456789012"] {
            let e = check_policy(p, &[]).unwrap_err();
            let m = e.to_string();
            assert!(m.contains("too easy to guess") && m.contains("How to fix it"), "{p}: {m}");
        }
        let m = check_policy("password1234", &[]).unwrap_err().to_string();
        assert!(m.contains("leaked"), "{m}");
        // The user's own id and name do not make a password.
        assert!(check_policy("ada.lovelace1815", &["ada.lovelace", "Ada Lovelace"]).is_err());
        check_policy(GOOD, &["ada", "Ada Admin"]).unwrap();
        assert!(check_policy("violet\ntram orbits quietly", &[]).unwrap_err().to_string().contains("control character"));
    }

    #[test]
    fn hashes_are_argon2id_salted_and_verify_after_normalisation() {
        let h1 = hash(GOOD).unwrap();
        let h2 = hash(GOOD).unwrap();
        assert!(h1.starts_with("$argon2id$") && h1 != h2 && !h1.contains(GOOD));
        assert!(verify(GOOD, &h1) && verify(GOOD, &h2));
        assert!(!verify("violet tram orbits quietlY", &h1));
        assert!(!verify(GOOD, "not a hash"));
        // NFKC: a full-width digit and its ASCII form are the same password.
        let h = hash("violet tram orbits ５ times").unwrap();
        assert!(verify("violet tram orbits 5 times", &h));
        assert!(!verify(&"x".repeat(MAX_CHARS + 1), &h));
    }
}
