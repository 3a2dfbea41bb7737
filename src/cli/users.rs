//! `onlabel users add|list|disable|rotate|unlock|set-password`: local
//! operator commands on the users table. A new token is printed once, on
//! stdout, and never again.
//!
//! A password (for the web UI's sign-in and e-signatures) is given with
//! `users add --password-stdin` or `users set-password`: read from standard
//! input (its first line), or — on a terminal — typed twice without echo.
//! It is checked against the password policy before anything is stored
//! ([`crate::users::password`]) and is never printed.
//!
//! The first `users add` on an empty store bootstraps an admin without a
//! credential; after that `add`, `disable` and `unlock` need `--as` an admin,
//! and `rotate` needs `--as` the user themself or an admin.


use clap::Subcommand;

use super::signin::{policy, report, sign_in, to_json, SignIn};
use super::{outln, EXIT_OK};
use crate::store::Store;
use crate::users::{password, Role, User, Users};

/// The `users` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user and print their token once.
    Add {
        /// The login id (letters, digits, . _ - @).
        #[arg(long)]
        id: String,
        /// Full name, as printed on e-signatures.
        #[arg(long)]
        name: String,
        /// rep, mlr_reviewer, compliance, medical or admin.
        #[arg(long, value_enum)]
        role: Role,
        /// The admin adding the user (not needed for the very first user, who must be an admin).
        #[arg(long = "as", value_name = "USER")]
        by: Option<String>,
        /// Also set the user's password (for the web UI and e-signatures): its
        /// first line on standard input, or typed twice without echo on a terminal.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (no tokens or hashes are shown).
    List,
    /// Disable a user: they can no longer sign in; the id is never reused.
    Disable {
        /// The user to disable.
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Give a user a new token (printed once); the old one stops working.
    Rotate {
        /// The user whose token is replaced (yourself, or anyone if you are an admin).
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Set a user's password (yourself, or anyone if you are an admin): read
    /// from standard input, or typed twice without echo on a terminal. The
    /// user's open browser sessions end.
    SetPassword {
        /// The user whose password is set.
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
    /// Lift the lock too many failed sign-ins put on a user (admins; audited).
    Unlock {
        /// The locked user.
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
}

/// Runs one `users` subcommand; returns the exit code.
pub fn run(cmd: &UsersCommand, db: &crate::store::Database, json: bool) -> anyhow::Result<i32> {
    Ok(execute(cmd, db, json).unwrap_or_else(|e| report(&e, json, db)))
}

fn execute(cmd: &UsersCommand, db: &crate::store::Database, json: bool) -> crate::Result<i32> {
    let store = Store::connect(db)?;
    let users = Users::with_policy(&store, policy()?);
    match cmd {
        UsersCommand::Add { id, name, role, by, password_stdin } => {
            let admin = match by {
                Some(u) => Some(sign_in(&store, &SignIn { user: u.clone() }, "users add")?),
                None => None,
            };
            // Checked before the user exists: a refused password adds nobody.
            let pw = if *password_stdin {
                let pw = read_password(id)?;
                password::check_policy(&pw, &[id, name.trim()])?;
                Some(pw)
            } else {
                None
            };
            let (user, token) = users.add(id, name, *role, admin.as_ref())?;
            if let Some(pw) = pw {
                // The new user sets their own first password (the admin's
                // right to is checked by `add`).
                users.set_password(&user.id, &pw, &user)?;
                eprintln!("password set for {}", user.id);
            }
            print_token(&user, &token.0, json);
        }
        UsersCommand::SetPassword { id, who } => {
            let by = sign_in(&store, who, "users set-password")?;
            if by.id != *id {
                by.require(&[crate::users::Role::Admin], "users set-password (another user's password)")?;
            }
            let pw = read_password(id)?;
            let u = users.set_password(id, &pw, &by)?;
            if json {
                outln!("{}", to_json(&serde_json::json!({"user": u, "password_set": true})));
            } else {
                outln!("password set for {} (their browser sessions were ended)", u.id);
            }
        }
        UsersCommand::List => {
            let list = users.list()?;
            if json {
                outln!("{}", to_json(&list));
            } else {
                outln!("{:<16} {:<13} {:<28} {:<9} CREATED (UTC)", "ID", "ROLE", "NAME", "STATUS");
                for u in &list {
                    outln!(
                        "{:<16} {:<13} {:<28} {:<9} {}",
                        u.id,
                        u.role.as_str(),
                        u.name,
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else if u.locked_at.is_some() {
                            "locked"
                        } else {
                            "active"
                        },
                        u.created_at.format("%Y-%m-%d %H:%M")
                    );
                }
            }
        }
        UsersCommand::Disable { id, who } => {
            let by = sign_in(&store, who, "users disable")?;
            let u = users.disable(id, &by)?;
            if json {
                outln!("{}", to_json(&u));
            } else {
                outln!("{} disabled", u.id);
            }
        }
        UsersCommand::Unlock { id, who } => {
            let by = sign_in(&store, who, "users unlock")?;
            let u = users.unlock(id, &by)?;
            if json {
                outln!("{}", to_json(&u));
            } else {
                outln!("{} unlocked", u.id);
            }
        }
        UsersCommand::Rotate { id, who } => {
            let by = sign_in(&store, who, "users rotate")?;
            let token = users.rotate(id, &by)?;
            let user = users.get(id)?.ok_or_else(|| crate::users::Error::NotFound { id: id.clone() })?;
            print_token(&user, &token.0, json);
        }
    }
    Ok(EXIT_OK)
}

/// Longest line read as a password from standard input, bytes (four bytes
/// per character of the longest password the policy allows).
const MAX_PASSWORD_LINE: u64 = (password::MAX_CHARS * 4 + 2) as u64;

/// The new password for `id`: typed twice without echo on a terminal, else
/// the first line of standard input (without its line ending).
fn read_password(id: &str) -> Result<String, crate::users::Error> {
    use std::io::{BufRead, IsTerminal, Read};
    let bad = |reason: String| crate::users::Error::BadInput { field: "password", reason };
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {id} (not echoed, at least {} characters): ", password::MIN_CHARS))
            .map_err(|e| bad(e.to_string()))?;
        let again = rpassword::prompt_password("again: ").map_err(|e| bad(e.to_string()))?;
        if first != again {
            return Err(bad("the two entries differ; nothing was changed".into()));
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_PASSWORD_LINE)
        .read_line(&mut line)
        .map_err(|e| bad(format!("cannot read standard input: {e}")))?;
    let pw = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line).to_string();
    if pw.is_empty() {
        return Err(bad("no password on standard input: pipe it in (`printf '%s\\n' \"$PW\" | onlabel users …`) or run on a terminal to be asked".into()));
    }
    Ok(pw)
}

fn print_token(user: &User, token: &str, json: bool) {
    if json {
        outln!("{}", to_json(&serde_json::json!({"user": user, "token": token})));
    } else {
        eprintln!("token for {} ({}, {}) — shown once, store it now:", user.id, user.name, user.role);
        outln!("{token}");
    }
}
