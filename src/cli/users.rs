//! `onlabel users add|list|disable|rotate|unlock`: local operator commands
//! on the users table. A new token is printed once, on stdout, and never again.
//!
//! The first `users add` on an empty store bootstraps an admin without a
//! credential; after that `add`, `disable` and `unlock` need `--as` an admin,
//! and `rotate` needs `--as` the user themself or an admin.

use std::path::Path;

use clap::Subcommand;

use super::signin::{policy, report, sign_in, to_json, SignIn};
use super::{outln, EXIT_OK};
use crate::store::Store;
use crate::users::{Role, User, Users};

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
    /// Lift the lock too many failed sign-ins put on a user (admins; audited).
    Unlock {
        /// The locked user.
        id: String,
        #[command(flatten)]
        who: SignIn,
    },
}

/// Runs one `users` subcommand; returns the exit code.
pub fn run(cmd: &UsersCommand, data_dir: &Path, json: bool) -> anyhow::Result<i32> {
    Ok(execute(cmd, data_dir, json).unwrap_or_else(|e| report(&e, json, data_dir)))
}

fn execute(cmd: &UsersCommand, data_dir: &Path, json: bool) -> crate::Result<i32> {
    let store = Store::open(data_dir)?;
    let users = Users::with_policy(&store, policy()?);
    match cmd {
        UsersCommand::Add { id, name, role, by } => {
            let admin = match by {
                Some(u) => Some(sign_in(&store, &SignIn { user: u.clone() }, "users add")?),
                None => None,
            };
            let (user, token) = users.add(id, name, *role, admin.as_ref())?;
            print_token(&user, &token.0, json);
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

fn print_token(user: &User, token: &str, json: bool) {
    if json {
        outln!("{}", to_json(&serde_json::json!({"user": user, "token": token})));
    } else {
        eprintln!("token for {} ({}, {}) — shown once, store it now:", user.id, user.name, user.role);
        outln!("{token}");
    }
}
