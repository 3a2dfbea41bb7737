//! [`Sso`]: single sign-on through the organisation's OpenID Connect
//! provider — the authorization-code flow with PKCE, the mapping of the
//! provider's groups to OnLabel roles, and the users it creates or updates.
//!
//! The HTTP side (`GET /auth/oidc/login`, `/auth/oidc/callback`) is
//! `server::oidc`; this module holds what does not depend on HTTP, so that it
//! can be tested on its own: the `[oidc]` config table ([`OidcConfig`] →
//! [`Settings`]), the sign-ins in progress ([`Flows`], table `oidc_flows`,
//! migration 12), the protocol ([`Sso::begin`], [`Sso::finish`] with the
//! `openidconnect` crate) and the users table ([`sign_in`]).
//!
//! Why it is built this way:
//!
//! - **The provider's subject is the identity.** A user is bound to the ID
//!   token's `(iss, sub)` (migration 12, unique together, never rebound); a
//!   name or an e-mail address can change hands, so neither ever links an
//!   identity to an existing row. A new identity gets a new user whose id is
//!   made from its `preferred_username` or e-mail, with `-2`, `-3`… when that
//!   id is taken: an IdP account called `root` never becomes the local admin.
//! - **No group, no entry.** The role comes from the first `[[oidc.roles]]`
//!   entry (file order) whose group the person has; a person with no mapped
//!   group is refused ([`Error::NoRole`]) — never given a default role. The
//!   role is re-read at every sign-in (and step-up): a group change at the
//!   provider changes the role here, audited as `user_role_changed`.
//! - **Everything the callback receives is checked.** `state` must name a
//!   flow started in *this* browser (a cookie, only its SHA-256 is stored)
//!   within [`Settings::flow_ttl`], and is consumed before the code is
//!   redeemed; the code is redeemed with the PKCE verifier; the ID token's
//!   signature (the provider's published keys), issuer, audience, expiry and
//!   nonce are verified by `openidconnect`.
//! - **Step-up for e-signatures.** A step-up flow sends `prompt=login` and
//!   `max_age=0`; its callback accepts only an ID token whose `auth_time` is
//!   at most [`Settings::step_up_max_age`] old and whose identity is the
//!   signed-in user's own (21 CFR 11.200(a)(1): the signer proves who they
//!   are at the signing).
//! - **Audited, bounded.** Sign-ins (`login`), new users (`user_added`),
//!   role and name changes and step-ups are audit records; failures go
//!   through the sign-in throttle ([`super::throttle`]), which coalesces
//!   them (one `login_failed` per address, reason and window) and throttles
//!   an address that keeps failing. Pending flows are capped
//!   ([`Settings::max_pending_flows`]) and expire.
//! - **Our own HTTP client.** `openidconnect` talks to the provider through
//!   [`HttpClient`] (ureq with rustls, redirects never followed, a time
//!   limit and a size limit on every answer) rather than its default
//!   reqwest, which OnLabel does not otherwise use.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    Scope, StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};

use super::{throttle, Attempt, Role, SignInPolicy, User, Users};
use crate::store::{self, Sql, Store};
use crate::vals;

/// Longest `return` path kept for after the sign-in, characters.
pub const MAX_RETURN_CHARS: usize = 512;
/// Largest answer read from the identity provider (discovery, keys, token), bytes.
pub const MAX_PROVIDER_ANSWER_BYTES: u64 = 1024 * 1024;
/// Longest a call to the identity provider may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest user name kept from the `name` claim, characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most groups of one person read from the groups claim (the rest are ignored).
pub const MAX_GROUPS: usize = 1_000;
/// The `token_hash` of a user created by single sign-on: not a PHC string,
/// so no token ever verifies against it (migration 12).
pub const NO_TOKEN: &str = "!oidc";
/// Who `created_by` names for a user created at their first sign-in.
pub const CREATED_BY: &str = "oidc";

/// The `[oidc]` table of the config file.
///
/// ```toml
/// [oidc]
/// issuer = "https://login.example.com/realms/pharma"
/// client_id = "onlabel"
/// client_secret = "…"          # or ONLABEL_OIDC_CLIENT_SECRET (which wins)
/// redirect_url = "https://onlabel.example.com/auth/oidc/callback"
/// groups_claim = "groups"      # the ID token claim with the person's groups
/// scopes = ["profile", "email", "groups"]
///
/// [[oidc.roles]]               # first match, in file order, wins
/// group = "onlabel-mlr"
/// role = "mlr_reviewer"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (its discovery document is
    /// `ISSUER/.well-known/openid-configuration`). `https`, except on loopback.
    pub issuer: String,
    /// OnLabel's client id at the provider.
    pub client_id: String,
    /// OnLabel's client secret; `ONLABEL_OIDC_CLIENT_SECRET` overrides it
    /// (keep it out of the file where you can).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// This server's callback, exactly as registered at the provider
    /// (`https://HOST/auth/oidc/callback`).
    pub redirect_url: String,
    /// The ID token claim holding the person's groups (`groups` by default;
    /// `roles` or a namespaced claim at some providers).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid` (default `profile`, `email`, `groups`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Provider group → OnLabel role, first match wins. A person none of
    /// whose groups is listed cannot sign in.
    #[serde(default)]
    pub roles: Vec<RoleMapping>,
}

/// One `[[oidc.roles]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// The group's name as the provider puts it in the groups claim.
    pub group: String,
    /// The OnLabel role it grants: rep, mlr_reviewer, compliance, medical or admin.
    pub role: String,
}

/// What can go wrong with single sign-on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This server has no `[oidc]` table: single sign-on is off.
    #[error("this OnLabel server has no identity provider configured (an [oidc] table in its config file); sign in with your user id and password")]
    NotConfigured,
    /// The `[oidc]` table has a bad or missing value.
    #[error("[oidc] {field}: {reason}")]
    Config {
        /// The key.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The provider did not answer as OpenID Connect requires (discovery,
    /// keys, token endpoint), or could not be reached.
    #[error("the identity provider {issuer} did not answer as expected: {message}")]
    Provider {
        /// The configured issuer.
        issuer: String,
        /// What failed.
        message: String,
    },
    /// The callback's `state` names no sign-in in progress, one that has
    /// expired or was used, or one started in another browser.
    #[error("this sign-in link is unknown, expired, already used or from another browser ({reason}); start again from the sign-in page")]
    Flow {
        /// Which of those, for the audit log and the page.
        reason: &'static str,
    },
    /// Too many sign-ins are in progress at once.
    #[error("too many single sign-ons are in progress ({max}); try again in a minute")]
    TooManyFlows {
        /// The limit.
        max: usize,
    },
    /// The provider answered the authorization request with an error.
    #[error("the identity provider refused the sign-in: {error}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The OAuth error code (`access_denied`, `login_required`, …).
        error: String,
        /// The provider's description, if any.
        description: Option<String>,
    },
    /// The code could not be redeemed, or the ID token failed verification.
    #[error("the identity provider's answer was not accepted: {message}")]
    Token {
        /// What failed (signature, issuer, audience, nonce, expiry, …).
        message: String,
    },
    /// None of the person's groups maps to an OnLabel role.
    #[error("{subject} has no group that maps to an OnLabel role (groups: {}); ask the administrator to add you to one of: {}", if .groups.is_empty() { "none".to_string() } else { .groups.join(", ") }, .mapped.join(", "))]
    NoRole {
        /// The person's subject at the provider.
        subject: String,
        /// Their groups (bounded).
        groups: Vec<String>,
        /// The groups the config maps.
        mapped: Vec<String>,
    },
    /// The user bound to this identity is disabled.
    #[error("the OnLabel user {user} is disabled; an administrator can tell you why")]
    Disabled {
        /// The user id.
        user: String,
    },
    /// The step-up did not prove a fresh sign-in by the signed-in user.
    #[error("the re-authentication was not accepted: {reason}")]
    StepUp {
        /// Why (stale `auth_time`, another person, …).
        reason: String,
    },
    /// A users-table or throttle error.
    #[error(transparent)]
    Users(#[from] super::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Error {
    /// A stable, machine-readable code (see [`crate::error::CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotConfigured => "oidc_not_configured",
            Error::Config { .. } => "oidc_config_invalid",
            Error::Provider { .. } => "oidc_provider_failed",
            Error::Flow { .. } => "oidc_flow_refused",
            Error::TooManyFlows { .. } => "overloaded",
            Error::Denied { .. } => "oidc_denied",
            Error::Token { .. } => "oidc_token_refused",
            Error::NoRole { .. } => "oidc_no_role",
            Error::Disabled { .. } => "bad_credential",
            Error::StepUp { .. } => "oidc_step_up_refused",
            Error::Users(e) => e.code(),
            Error::Store(e) => e.code(),
        }
    }

    /// The throttle's reason word for a failed sign-in (one of the code's own).
    fn reason(&self) -> &'static str {
        match self {
            Error::Flow { .. } => "oidc: bad state",
            Error::Denied { .. } => "oidc: provider refused",
            Error::Token { .. } => "oidc: token refused",
            Error::NoRole { .. } => "oidc: no mapped group",
            Error::Disabled { .. } => "disabled",
            Error::StepUp { .. } => "oidc: step-up refused",
            _ => "oidc: failed",
        }
    }
}

/// Result with the OIDC [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `[oidc]` table, checked: what [`Sso`] runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer, as configured (compared exactly with the ID token's `iss`).
    pub issuer: IssuerUrl,
    /// OnLabel's client id.
    pub client_id: ClientId,
    /// OnLabel's client secret.
    pub client_secret: ClientSecret,
    /// The callback URL registered at the provider.
    pub redirect_url: RedirectUrl,
    /// The claim with the groups.
    pub groups_claim: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Group → role, first match wins.
    pub roles: Vec<(String, Role)>,
    /// How old a step-up's `auth_time` may be (2 minutes).
    pub step_up_max_age: chrono::Duration,
    /// How long a sign-in may stay in progress (10 minutes).
    pub flow_ttl: chrono::Duration,
    /// Most sign-ins in progress at once; beyond, "try again" (503).
    pub max_pending_flows: usize,
    /// How long the provider's discovery document and keys are reused
    /// before they are fetched again (keys rotate).
    pub discovery_ttl: Duration,
}

/// How old a step-up's `auth_time` may be.
pub const STEP_UP_MAX_AGE_SECS: i64 = 120;
/// How long a sign-in may stay in progress.
pub const FLOW_TTL_SECS: i64 = 600;
/// Most sign-ins in progress at once.
pub const MAX_PENDING_FLOWS: usize = 10_000;
/// How long discovery is reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(600);

impl Settings {
    /// Checks `config`; `env_secret` is `ONLABEL_OIDC_CLIENT_SECRET`, which
    /// wins over the file's `client_secret`.
    pub fn from_config(config: &OidcConfig, env_secret: Option<String>) -> Result<Settings> {
        let bad = |field: &'static str, reason: String| Error::Config { field, reason };
        url_of("issuer", &config.issuer)?;
        let redirect = url_of("redirect_url", &config.redirect_url)?;
        if !redirect.path().ends_with("/auth/oidc/callback") {
            return Err(bad("redirect_url", format!("{redirect} must be this server's /auth/oidc/callback")));
        }
        if config.client_id.trim().is_empty() {
            return Err(bad("client_id", "give OnLabel's client id at the provider".into()));
        }
        let secret = env_secret.filter(|s| !s.is_empty()).or_else(|| config.client_secret.clone().filter(|s| !s.is_empty()));
        let Some(secret) = secret else {
            return Err(bad("client_secret", "give it in the file or in ONLABEL_OIDC_CLIENT_SECRET".into()));
        };
        let groups_claim = config.groups_claim.clone().unwrap_or_else(|| "groups".into());
        if groups_claim.trim().is_empty() {
            return Err(bad("groups_claim", "must name a claim".into()));
        }
        let scopes = config.scopes.clone().unwrap_or_else(|| vec!["profile".into(), "email".into(), "groups".into()]);
        if let Some(s) = scopes.iter().find(|s| s.is_empty() || s.contains(char::is_whitespace) || *s == "openid") {
            return Err(bad("scopes", format!("{s:?}: one scope per entry, no spaces (openid is always asked)")));
        }
        if config.roles.is_empty() {
            return Err(bad("roles", "map at least one provider group to a role ([[oidc.roles]] group = \"…\", role = \"…\"); nobody could sign in".into()));
        }
        let mut roles = Vec::with_capacity(config.roles.len());
        for m in &config.roles {
            if m.group.is_empty() {
                return Err(bad("roles", "a group name is empty".into()));
            }
            let role: Role = m.role.parse().map_err(|e: String| bad("roles", e))?;
            roles.push((m.group.clone(), role));
        }
        Ok(Settings {
            // As written: discovery and the ID token's `iss` are compared with this exact string.
            issuer: IssuerUrl::new(config.issuer.trim().to_string()).map_err(|e| bad("issuer", e.to_string()))?,
            client_id: ClientId::new(config.client_id.trim().to_string()),
            client_secret: ClientSecret::new(secret),
            redirect_url: RedirectUrl::new(config.redirect_url.trim().to_string()).map_err(|e| bad("redirect_url", e.to_string()))?,
            groups_claim,
            scopes,
            roles,
            step_up_max_age: chrono::Duration::seconds(STEP_UP_MAX_AGE_SECS),
            flow_ttl: chrono::Duration::seconds(FLOW_TTL_SECS),
            max_pending_flows: MAX_PENDING_FLOWS,
            discovery_ttl: DISCOVERY_TTL,
        })
    }

    /// The role of a person with `groups`: the first mapping (file order)
    /// whose group they have, and that group.
    pub fn role_for<'a>(&'a self, groups: &[String]) -> Option<(Role, &'a str)> {
        self.roles.iter().find(|(g, _)| groups.iter().any(|h| h == g)).map(|(g, r)| (*r, g.as_str()))
    }

    /// True when cookies must be `Secure` (the callback is `https`).
    pub fn secure_cookies(&self) -> bool {
        self.redirect_url.url().scheme() == "https"
    }
}

/// Parses a URL of the config: `https`, or `http` on a loopback host only
/// (a test provider, a demo), never with a fragment or credentials.
fn url_of(field: &'static str, text: &str) -> Result<openidconnect::url::Url> {
    let bad = |reason: String| Error::Config { field, reason };
    let url = openidconnect::url::Url::parse(text.trim()).map_err(|e| bad(format!("{text:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(openidconnect::url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(openidconnect::url::Host::Ipv4(a)) => a.is_loopback(),
        Some(openidconnect::url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(bad(format!("{url} must be https (plain http only on a loopback address)"))),
        s => return Err(bad(format!("{url}: scheme {s} is not https"))),
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad(format!("{url} must have no #fragment and no user:password@")));
    }
    Ok(url)
}

/// The claims of an ID token beyond the standard ones (the groups claim's
/// name is configurable, so they are kept as a map).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraClaims {
    /// Every claim the standard ones did not take.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

type IdFields =
    IdTokenFields<ExtraClaims, EmptyExtraTokenFields, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type TokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
/// The client type `from_provider_metadata` makes, with our extra claims.
type OidcClient = openidconnect::Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The HTTP client `openidconnect` talks to the provider with: ureq with
/// rustls, no redirects followed (the crate's own advice against SSRF), a
/// time limit per call and a size limit per answer.
pub struct HttpClient {
    agent: ureq::Agent,
}

/// A failed call to the provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Default for HttpClient {
    fn default() -> HttpClient {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(PROVIDER_TIMEOUT))
            .user_agent(concat!("onlabel/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        HttpClient { agent }
    }
}

impl HttpClient {
    /// One call: the request as `openidconnect` built it, the answer whole
    /// (at most [`MAX_PROVIDER_ANSWER_BYTES`]).
    pub fn call(&self, req: openidconnect::HttpRequest) -> std::result::Result<openidconnect::HttpResponse, HttpError> {
        let uri = req.uri().to_string();
        let resp = self.agent.run(req).map_err(|e| HttpError(format!("{uri}: {e}")))?;
        let (parts, mut body) = resp.into_parts();
        let bytes = body
            .with_config()
            .limit(MAX_PROVIDER_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| HttpError(format!("{uri}: reading the answer: {e}")))?;
        Ok(openidconnect::http::Response::from_parts(parts, bytes))
    }
}

/// Single sign-on against one provider: its settings, the HTTP client and
/// the discovery document (with the provider's keys), fetched on first use
/// and again after [`Settings::discovery_ttl`].
pub struct Sso {
    settings: Settings,
    http: HttpClient,
    discovered: Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso").field("issuer", &self.settings.issuer.as_str()).finish_non_exhaustive()
    }
}

/// A sign-in to start: where to send the browser, and the cookie that ties
/// the callback to this browser.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorization URL (with state, nonce, PKCE challenge).
    pub url: String,
    /// The value of the `onlabel_oidc` cookie to set with the redirect.
    pub browser: String,
}

/// A step-up request: the signed-in user and the session it will mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// The signed-in user's id.
    pub user: String,
    /// The session's id (as the sessions table knows it).
    pub session: String,
}

/// What a completed sign-in proved.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The identity, its groups and when the person authenticated.
    pub identity: Identity,
    /// The flow's step-up, if it was one.
    pub step_up: Option<StepUp>,
    /// Where the UI goes next (a checked local path).
    pub return_to: String,
}

/// A person as the verified ID token describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `name`, else `preferred_username`, else `email`, else `sub` (bounded).
    pub name: String,
    /// What a new user's id is made from: `preferred_username`, else `email`, else `sub`.
    pub username: String,
    /// The groups claim (at most [`MAX_GROUPS`]).
    pub groups: Vec<String>,
    /// `auth_time`: when the person last entered their credentials at the provider.
    pub auth_time: Option<DateTime<Utc>>,
}

impl Sso {
    /// Single sign-on with `settings`.
    pub fn new(settings: Settings) -> Sso {
        Sso { settings, http: HttpClient::default(), discovered: Mutex::new(None) }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The provider's metadata: cached, or discovered now (blocking).
    fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata> {
        if !fresh {
            if let Ok(g) = self.discovered.lock() {
                if let Some((at, m)) = g.as_ref() {
                    if at.elapsed() < self.settings.discovery_ttl {
                        return Ok(m.clone());
                    }
                }
            }
        }
        let call = |req: openidconnect::HttpRequest| self.http.call(req);
        let m = CoreProviderMetadata::discover(&self.settings.issuer, &call).map_err(|e| Error::Provider {
            issuer: self.settings.issuer.as_str().to_string(),
            message: chain(&e),
        })?;
        if let Ok(mut g) = self.discovered.lock() {
            *g = Some((Instant::now(), m.clone()));
        }
        Ok(m)
    }

    fn client(&self, fresh: bool) -> Result<OidcClient> {
        let m = self.metadata(fresh)?;
        Ok(OidcClient::from_provider_metadata(m, self.settings.client_id.clone(), Some(self.settings.client_secret.clone()))
            .set_redirect_uri(self.settings.redirect_url.clone()))
    }

    /// Starts a sign-in (blocking: may fetch the discovery document):
    /// records the flow and returns the provider URL and the browser cookie.
    /// A step-up asks the provider for `prompt=login` and `max_age=0`.
    pub fn begin(&self, store: &Store, return_to: &str, step_up: Option<StepUp>) -> Result<Started> {
        let return_to = local_path(return_to);
        let client = self.client(false)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in &self.settings.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if step_up.is_some() {
            req = req.add_prompt(CoreAuthPrompt::Login).set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = req.url();
        let browser = random_hex()?;
        Flows { store, ttl: self.settings.flow_ttl, max: self.settings.max_pending_flows }.put(&Flow {
            state_hash: sha256_hex(state.secret()),
            browser_hash: sha256_hex(&browser),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            return_to,
            step_up,
        })?;
        Ok(Started { url: url.to_string(), browser })
    }

    /// Completes a sign-in from the callback's `state`, `code` (or the
    /// provider's `error`) and the browser cookie (blocking). The flow is
    /// consumed first, so a state is never used twice.
    pub fn finish(&self, store: &Store, callback: &Callback, browser: Option<&str>) -> Result<Verified> {
        let flows = Flows { store, ttl: self.settings.flow_ttl, max: self.settings.max_pending_flows };
        let state = callback.state.as_deref().filter(|s| !s.is_empty()).ok_or(Error::Flow { reason: "no state" })?;
        let flow = flows.take(state, browser)?;
        if let Some(error) = &callback.error {
            return Err(Error::Denied {
                error: throttle::bounded(error, 64),
                description: callback.error_description.as_deref().map(|d| throttle::bounded(d, 200)),
            });
        }
        if let Some(iss) = &callback.iss {
            // RFC 9207: the authorization response names its issuer.
            if iss != self.settings.issuer.as_str() && iss.trim_end_matches('/') != self.settings.issuer.as_str().trim_end_matches('/') {
                return Err(Error::Token { message: format!("the answer came from issuer {iss:?}, not {}", self.settings.issuer.as_str()) });
            }
        }
        let code = callback.code.as_deref().filter(|c| !c.is_empty()).ok_or(Error::Token { message: "no code in the callback".into() })?;
        let client = self.client(false)?;
        let call = |req: openidconnect::HttpRequest| self.http.call(req);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| Error::Provider { issuer: self.settings.issuer.as_str().to_string(), message: e.to_string() })?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request(&call)
            .map_err(|e| Error::Token { message: format!("redeeming the code: {}", chain(&e)) })?;
        use openidconnect::TokenResponse as _;
        let id_token = token.id_token().ok_or(Error::Token { message: "the provider returned no ID token".into() })?;
        let nonce = Nonce::new(flow.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(first) => {
                // The provider may have rotated its keys since discovery: fetch them once more.
                let client = self.client(true)?;
                let verifier = client.id_token_verifier();
                let claims = id_token
                    .claims(&verifier, &nonce)
                    .map_err(|_| Error::Token { message: format!("the ID token failed verification: {}", chain(&first)) })?
                    .clone();
                claims
            }
        };
        let std_name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string());
        let preferred = claims.preferred_username().map(|u| u.as_str().to_string());
        let email = claims.email().map(|e| e.as_str().to_string());
        let subject = claims.subject().as_str().to_string();
        let groups = groups_of(claims.additional_claims().other.get(&self.settings.groups_claim));
        let identity = Identity {
            issuer: self.settings.issuer.as_str().to_string(),
            name: cut(
                std_name.clone().or_else(|| preferred.clone()).or_else(|| email.clone()).unwrap_or_else(|| subject.clone()).trim(),
                MAX_NAME_CHARS,
            ),
            username: preferred.or(email).unwrap_or_else(|| subject.clone()),
            subject,
            groups,
            auth_time: claims.auth_time().map(|t| t.to_owned()),
        };
        Ok(Verified { identity, step_up: flow.step_up, return_to: flow.return_to })
    }
}

/// The callback's query parameters.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Callback {
    /// The state sent with the authorization request.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The provider's issuer (RFC 9207), when it sends it.
    pub iss: Option<String>,
    /// An OAuth error instead of a code.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
    /// The session state of OpenID session management (ignored).
    pub session_state: Option<String>,
}

/// The groups claim's value as a list of names: an array of strings, or
/// one string; anything else is no groups. At most [`MAX_GROUPS`].
fn groups_of(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|g| g.as_str()).take(MAX_GROUPS).map(str::to_string).collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// An error with its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    throttle::bounded(&s, 500)
}

/// `path` if it is a local path of this server (`/…`, not `//…`, no
/// backslash or control character, at most [`MAX_RETURN_CHARS`]), else `/`:
/// the return address can never send the browser to another site.
pub fn local_path(path: &str) -> String {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= MAX_RETURN_CHARS
        && !path.chars().any(|c| c == '\\' || c.is_control());
    if ok {
        path.to_string()
    } else {
        "/".to_string()
    }
}

/// At most `max` characters of `s`, control characters dropped (a name or
/// a group as the provider spelled it, accents and all).
fn cut(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// SHA-256, hex.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Users(super::Error::Hash(e.to_string())))?;
    Ok(hex::encode(b))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One sign-in in progress (a row of `oidc_flows`).
#[derive(Debug, Clone, PartialEq)]
struct Flow {
    state_hash: String,
    browser_hash: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
    step_up: Option<StepUp>,
}

/// The sign-ins in progress (table `oidc_flows`).
pub struct Flows<'a> {
    store: &'a Store,
    ttl: chrono::Duration,
    max: usize,
}

impl Flows<'_> {
    /// Records a flow; forgets expired ones first; refuses past the cap.
    fn put(&self, flow: &Flow) -> Result<()> {
        let now = Utc::now();
        let cutoff = stamp(now - self.ttl);
        let max = self.max;
        self.store.transaction(|tx| {
            tx.execute("DELETE FROM oidc_flows WHERE created_at < ?1", vals![&cutoff])?;
            let n: i64 = tx.one("SELECT count(*) FROM oidc_flows", &[])?;
            if n as usize >= max {
                return Err(Error::TooManyFlows { max });
            }
            tx.execute(
                "INSERT INTO oidc_flows (state_hash, browser_hash, nonce, pkce_verifier, return_to, step_up_user, step_up_session, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                vals![
                    &flow.state_hash,
                    &flow.browser_hash,
                    &flow.nonce,
                    &flow.pkce_verifier,
                    &flow.return_to,
                    flow.step_up.as_ref().map(|s| s.user.clone()),
                    flow.step_up.as_ref().map(|s| s.session.clone()),
                    stamp(now)
                ],
            )?;
            Ok(())
        })
    }

    /// Consumes the flow of `state`: deleted whatever the outcome; refused
    /// when unknown, expired, or started in another browser.
    fn take(&self, state: &str, browser: Option<&str>) -> Result<Flow> {
        let now = Utc::now();
        let key = sha256_hex(state);
        let row = self.store.transaction(|tx| {
            let row = tx
                .query_opt(
                    "SELECT browser_hash, nonce, pkce_verifier, return_to, step_up_user, step_up_session, created_at FROM oidc_flows WHERE state_hash = ?1",
                    vals![&key],
                )?
                .map(|r| {
                    Ok::<_, store::Error>((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<String>(2)?,
                        r.get::<String>(3)?,
                        r.get::<Option<String>>(4)?,
                        r.get::<Option<String>>(5)?,
                        r.get::<String>(6)?,
                    ))
                })
                .transpose()?;
            tx.execute("DELETE FROM oidc_flows WHERE state_hash = ?1", vals![&key])?;
            Ok::<_, Error>(row)
        })?;
        let Some((browser_hash, nonce, pkce_verifier, return_to, su_user, su_session, created)) = row else {
            return Err(Error::Flow { reason: "unknown or already used state" });
        };
        let created = DateTime::parse_from_rfc3339(&created).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        if now - created > self.ttl {
            return Err(Error::Flow { reason: "expired" });
        }
        if browser.map(sha256_hex).as_deref() != Some(browser_hash.as_str()) {
            return Err(Error::Flow { reason: "started in another browser" });
        }
        let step_up = match (su_user, su_session) {
            (Some(user), Some(session)) => Some(StepUp { user, session }),
            _ => None,
        };
        Ok(Flow { state_hash: key, browser_hash, nonce, pkce_verifier, return_to, step_up })
    }
}

/// What [`sign_in`] did to the users table.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedIn {
    /// The user, as stored now.
    pub user: User,
    /// True when this sign-in created the user.
    pub created: bool,
    /// The role before, when this sign-in changed it.
    pub role_was: Option<Role>,
    /// The group that granted the role.
    pub group: String,
}

/// Creates or updates the user of `identity` (one write transaction,
/// audited) and returns them: the role from the groups mapping (refused
/// with [`Error::NoRole`] when none maps), the name from the token. A
/// disabled user is refused; a locked one too (an admin unlocks).
pub fn sign_in(store: &Store, settings: &Settings, identity: &Identity) -> Result<SignedIn> {
    let Some((role, group)) = settings.role_for(&identity.groups) else {
        return Err(Error::NoRole {
            subject: throttle::bounded(&identity.subject, 64),
            groups: identity.groups.iter().take(20).map(|g| cut(g, 64)).collect(),
            mapped: settings.roles.iter().map(|(g, _)| g.clone()).collect(),
        });
    };
    let group = group.to_string();
    let now = Utc::now();
    let outcome = store.transaction(|tx| -> Result<Result<(String, bool, Option<Role>)>> {
        let found: Option<(String, String, String, Option<String>, Option<String>)> = tx
            .query_opt(
                "SELECT id, name, role, disabled_at, locked_at FROM users WHERE oidc_issuer = ?1 AND oidc_subject = ?2",
                vals![&identity.issuer, &identity.subject],
            )?
            .map(|r| Ok::<_, store::Error>((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .transpose()?;
        let audit = |tx: &mut dyn Sql, actor: &str, action: &str, detail: serde_json::Value| -> Result<()> {
            let rec = crate::audit::Record::new(actor, role.as_str(), action).detail(detail);
            crate::audit::append_tx(tx, &rec, now)?;
            Ok(())
        };
        match found {
            Some((id, _, _, Some(_), _)) => Ok(Err(Error::Disabled { user: id })),
            Some((id, _, _, _, Some(_))) => Ok(Err(Error::Users(super::Error::Locked { user: id }))),
            Some((id, name, old_role, None, None)) => {
                let mut role_was = None;
                if old_role != role.as_str() {
                    tx.execute("UPDATE users SET role = ?2 WHERE id = ?1", vals![&id, role.as_str()])?;
                    audit(tx, &id, "user_role_changed", serde_json::json!({
                        "user": id, "from": old_role, "to": role.as_str(), "source": "oidc", "group": group,
                    }))?;
                    role_was = old_role.parse::<Role>().ok();
                }
                if name != identity.name && !identity.name.is_empty() {
                    tx.execute("UPDATE users SET name = ?2 WHERE id = ?1", vals![&id, &identity.name])?;
                    audit(tx, &id, "user_name_changed", serde_json::json!({
                        "user": id, "from": name, "to": identity.name, "source": "oidc",
                    }))?;
                }
                Ok(Ok((id, false, role_was)))
            }
            None => {
                let id = free_id(tx, &identity.username)?;
                tx.execute(
                    "INSERT INTO users (id, name, role, token_hash, created_at, created_by, oidc_issuer, oidc_subject)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    vals![&id, &identity.name, role.as_str(), NO_TOKEN, stamp(now), CREATED_BY, &identity.issuer, &identity.subject],
                )?;
                audit(tx, &id, "user_added", serde_json::json!({
                    "user": id, "name": identity.name, "role": role.as_str(), "source": "oidc",
                    "issuer": identity.issuer, "subject": identity.subject, "group": group,
                }))?;
                Ok(Ok((id, true, None)))
            }
        }
    })?;
    let (id, created, role_was) = outcome?;
    let user = Users::new(store).get(&id)?.ok_or_else(|| Error::Users(super::Error::NotFound { id: id.clone() }))?;
    Ok(SignedIn { user, created, role_was, group })
}

/// A free user id made from `wanted` (the allowed characters kept, others
/// dropped; cut to 58, so that `-9999` still fits the 64 of an id): `wanted`, else `wanted-2`, `-3`, …
fn free_id(tx: &mut dyn Sql, wanted: &str) -> Result<String> {
    let mut base: String = wanted
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        .take(58)
        .collect();
    if base.is_empty() {
        base = "sso-user".into();
    }
    for n in 1..10_000 {
        let id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
        let taken = tx.query_opt("SELECT 1 FROM users WHERE id = ?1", vals![&id])?.is_some();
        if !taken {
            return Ok(id);
        }
    }
    Err(Error::Users(super::Error::Exists { id: base }))
}

/// Records a failed single sign-on through the sign-in throttle (coalesced
/// `login_failed`, and `login_throttled` for an address that keeps failing).
/// `user` is the OnLabel user concerned, when one is known.
pub fn record_failure(store: &Store, policy: &SignInPolicy, attempt: &Attempt, user: Option<&str>, tried: &str, error: &Error) -> Result<()> {
    throttle::record_failure(store, policy, attempt, user, tried, error.reason(), Utc::now())?;
    Ok(())
}

/// The single sign-on identity `(issuer, subject)` of user `id`, if bound.
pub fn identity_of(store: &Store, id: &str) -> Result<Option<(String, String)>> {
    Ok(store.read(|c| {
        c.query_opt("SELECT oidc_issuer, oidc_subject FROM users WHERE id = ?1 AND oidc_subject IS NOT NULL", vals![id])?
            .map(|r| Ok::<_, store::Error>((r.get(0)?, r.get(1)?)))
            .transpose()
    })?)
}

/// Audits a completed single sign-on (`login`, method `oidc`): who, through
/// which identity and group, and the session it started (its short id).
pub fn audit_sign_in(store: &Store, signed: &SignedIn, identity: &Identity, session: &str) -> Result<()> {
    let rec = crate::audit::Record::new(&signed.user.id, signed.user.role.as_str(), "login").detail(serde_json::json!({
        "method": "oidc",
        "issuer": identity.issuer,
        "subject": identity.subject,
        "group": signed.group,
        "created": signed.created,
        "role_was": signed.role_was.map(Role::as_str),
        "auth_time": identity.auth_time.map(stamp),
        "session": session,
    }));
    crate::audit::append(store, &rec)?;
    Ok(())
}

/// Audits a step-up (`step_up`, method `oidc`): the session it marked (short
/// id) and when the person entered their credentials.
pub fn audit_step_up(store: &Store, user: &User, identity: &Identity, session_id: &str) -> Result<()> {
    let rec = crate::audit::Record::new(&user.id, user.role.as_str(), "step_up").detail(serde_json::json!({
        "method": "oidc",
        "issuer": identity.issuer,
        "subject": identity.subject,
        "auth_time": identity.auth_time.map(stamp),
        "session": &session_id[..12.min(session_id.len())],
    }));
    crate::audit::append(store, &rec)?;
    Ok(())
}

/// Checks a step-up's sign-in: the identity is `step_up.user`'s own and
/// authenticated at most [`Settings::step_up_max_age`] ago.
pub fn check_step_up(settings: &Settings, signed: &SignedIn, identity: &Identity, step_up: &StepUp, now: DateTime<Utc>) -> Result<()> {
    if signed.user.id != step_up.user {
        return Err(Error::StepUp {
            reason: format!("the provider signed in {} but the signer is {}; sign in as yourself", signed.user.id, step_up.user),
        });
    }
    let Some(at) = identity.auth_time else {
        return Err(Error::StepUp { reason: "the ID token does not say when you signed in (no auth_time)".into() });
    };
    let age = now - at;
    if age > settings.step_up_max_age || age < -chrono::Duration::seconds(60) {
        return Err(Error::StepUp {
            reason: format!(
                "you last entered your password {} s ago; a signature needs it within {} s",
                age.num_seconds(),
                settings.step_up_max_age.num_seconds()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::each_backend;
    use crate::users::tests::audit_of;

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://login.example.com/realms/pharma".into(),
            client_id: "onlabel".into(),
            client_secret: Some("from-file".into()),
            redirect_url: "https://onlabel.example.com/auth/oidc/callback".into(),
            groups_claim: None,
            scopes: None,
            roles: vec![
                RoleMapping { group: "onlabel-mlr".into(), role: "mlr_reviewer".into() },
                RoleMapping { group: "onlabel-reps".into(), role: "rep".into() },
            ],
        }
    }

    fn identity(sub: &str, username: &str, groups: &[&str]) -> Identity {
        Identity {
            issuer: "https://login.example.com/realms/pharma".into(),
            subject: sub.into(),
            name: format!("Name of {username}"),
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            auth_time: Some(Utc::now()),
        }
    }

    #[test]
    fn config_is_checked_and_the_env_secret_wins() {
        let s = Settings::from_config(&config(), Some("from-env".into())).unwrap();
        assert_eq!(s.client_secret.secret(), "from-env");
        assert_eq!(s.groups_claim, "groups");
        assert!(s.secure_cookies());
        let s = Settings::from_config(&config(), None).unwrap();
        assert_eq!(s.client_secret.secret(), "from-file");
        let mut c = config();
        c.issuer = "http://login.example.com".into();
        assert!(matches!(Settings::from_config(&c, None), Err(Error::Config { field: "issuer", .. })));
        c.issuer = "http://127.0.0.1:9000".into();
        Settings::from_config(&c, None).unwrap();
        let mut c = config();
        c.roles[1].role = "superuser".into();
        let e = Settings::from_config(&c, None).unwrap_err().to_string();
        assert!(e.contains("superuser") && e.contains("mlr_reviewer"), "{e}");
        let mut c = config();
        c.roles.clear();
        assert!(matches!(Settings::from_config(&c, None), Err(Error::Config { field: "roles", .. })));
        let mut c = config();
        c.client_secret = None;
        assert!(matches!(Settings::from_config(&c, None), Err(Error::Config { field: "client_secret", .. })));
        let mut c = config();
        c.redirect_url = "https://onlabel.example.com/elsewhere".into();
        assert!(matches!(Settings::from_config(&c, None), Err(Error::Config { field: "redirect_url", .. })));
    }

    #[test]
    fn the_first_mapping_in_file_order_wins_and_no_group_maps_to_nothing() {
        let s = Settings::from_config(&config(), None).unwrap();
        let g = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(s.role_for(&g(&["onlabel-reps", "onlabel-mlr"])), Some((Role::MlrReviewer, "onlabel-mlr")));
        assert_eq!(s.role_for(&g(&["onlabel-reps"])), Some((Role::Rep, "onlabel-reps")));
        assert_eq!(s.role_for(&g(&["Onlabel-MLR", "staff"])), None, "group names match exactly");
        assert_eq!(s.role_for(&[]), None);
    }

    #[test]
    fn return_paths_stay_on_this_server() {
        assert_eq!(local_path("/#/mlr/summary@3"), "/#/mlr/summary@3");
        for bad in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "", "/x\ny"] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
        assert_eq!(local_path(&format!("/{}", "a".repeat(MAX_RETURN_CHARS))), "/");
    }

    #[test]
    fn groups_claim_shapes() {
        assert_eq!(groups_of(Some(&serde_json::json!(["a", 3, "b"]))), vec!["a", "b"]);
        assert_eq!(groups_of(Some(&serde_json::json!("a"))), vec!["a"]);
        assert!(groups_of(Some(&serde_json::json!({"a": 1}))).is_empty());
        assert!(groups_of(None).is_empty());
        let many: Vec<String> = (0..MAX_GROUPS + 5).map(|i| format!("g{i}")).collect();
        assert_eq!(groups_of(Some(&serde_json::json!(many))).len(), MAX_GROUPS);
    }

    #[test]
    fn first_sign_in_creates_later_ones_update_and_a_role_change_is_audited() {
        for t in each_backend("oidc_sign_in") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let users = Users::new(store);
            // A local user already called "amy": the IdP's amy must not become her.
            let (admin, _) = users.add("root", "Ada Admin", Role::Admin, None).unwrap();
            users.add("amy", "Amy Local", Role::Rep, Some(&admin)).unwrap();
            let s = Settings::from_config(&config(), None).unwrap();
            let first = sign_in(store, &s, &identity("sub-1", "amy", &["onlabel-mlr"])).unwrap();
            assert!(first.created);
            assert_eq!(first.user.id, "amy-2");
            assert_eq!(first.user.role, Role::MlrReviewer);
            assert_eq!(first.user.created_by, CREATED_BY);
            assert_eq!(users.get("amy").unwrap().unwrap().name, "Amy Local", "the local amy is untouched");
            // No token verifies against an SSO user's row.
            assert!(users.authenticate("amy-2", "olt_anything", "test").is_err());
            // Same identity, new groups and name: updated, not created again.
            let mut again = identity("sub-1", "amy", &["onlabel-reps"]);
            again.name = "Amy Married-Name".into();
            let second = sign_in(store, &s, &again).unwrap();
            assert!(!second.created);
            assert_eq!(second.user.id, "amy-2");
            assert_eq!(second.role_was, Some(Role::MlrReviewer));
            assert_eq!(second.user.role, Role::Rep);
            assert_eq!(second.user.name, "Amy Married-Name");
            // No mapped group: refused, the user keeps their last role.
            let e = sign_in(store, &s, &identity("sub-1", "amy", &["staff"])).unwrap_err();
            assert!(matches!(e, Error::NoRole { .. }) && e.to_string().contains("onlabel-mlr"), "{e}");
            assert_eq!(users.get("amy-2").unwrap().unwrap().role, Role::Rep);
            // Disabled: refused.
            users.disable("amy-2", &admin).unwrap();
            assert!(matches!(sign_in(store, &s, &identity("sub-1", "amy", &["onlabel-reps"])), Err(Error::Disabled { .. })));
            let audit = audit_of(&t);
            let all = audit.range(None, None).unwrap();
            let changed: Vec<_> = all.iter().filter(|e| e.action == "user_role_changed").collect();
            assert_eq!(changed.len(), 1, "{who}");
            assert!(all.iter().any(|e| e.action == "user_name_changed"), "{who}");
            assert!(audit.verify(None).unwrap().ok, "{who}");
        }
    }

    #[test]
    fn the_identity_binding_never_changes() {
        for t in each_backend("oidc_binding") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let s = Settings::from_config(&config(), None).unwrap();
            sign_in(store, &s, &identity("sub-1", "amy", &["onlabel-mlr"])).unwrap();
            let write = |sql: &str, params: &[store::Value]| store.transaction(|tx| tx.execute(sql, params));
            let rebind = write("UPDATE users SET oidc_subject = 'sub-2' WHERE id = 'amy'", &[]);
            assert!(rebind.is_err(), "{who}: a bound user cannot be rebound");
            let half = write("INSERT INTO users (id, name, role, token_hash, created_at, created_by, oidc_issuer) VALUES ('x','X','rep','!','t','t','https://i')", &[]);
            assert!(half.is_err(), "{who}: issuer without subject");
            let dup = write(
                "INSERT INTO users (id, name, role, token_hash, created_at, created_by, oidc_issuer, oidc_subject) VALUES ('y','Y','rep','!','t','t',?1,'sub-1')",
                vals![s.issuer.as_str()],
            );
            assert!(dup.is_err(), "{who}: one user per identity");
            assert!(write("DELETE FROM users WHERE id = 'amy'", &[]).is_err(), "{who}: 0002's trigger stays");
            // What the store kept: the one binding, unchanged.
            assert_eq!(identity_of(store, "amy").unwrap(), Some((s.issuer.as_str().to_string(), "sub-1".to_string())), "{who}");
            assert_eq!(Users::new(store).list().unwrap().len(), 1, "{who}");
        }
    }

    #[test]
    fn flows_are_consumed_once_bound_to_the_browser_and_capped() {
        for t in each_backend("oidc_flows") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let flows = Flows { store, ttl: chrono::Duration::seconds(600), max: 2 };
            let flow = |state: &str| Flow {
                state_hash: sha256_hex(state),
                browser_hash: sha256_hex("browser-1"),
                nonce: "n".into(),
                pkce_verifier: "v".into(),
                return_to: "/".into(),
                step_up: None,
            };
            flows.put(&flow("s1")).unwrap();
            flows.put(&flow("s2")).unwrap();
            assert!(matches!(flows.put(&flow("s3")), Err(Error::TooManyFlows { max: 2 })));
            assert!(matches!(flows.take("s1", Some("browser-2")), Err(Error::Flow { reason: "started in another browser" })));
            assert!(matches!(flows.take("s1", Some("browser-1")), Err(Error::Flow { .. })), "a refused take still consumed it");
            assert_eq!(flows.take("s2", Some("browser-1")).unwrap().nonce, "n");
            assert!(matches!(flows.take("s2", Some("browser-1")), Err(Error::Flow { reason: "unknown or already used state" })));
            let stale = Flows { store, ttl: chrono::Duration::seconds(-1), max: 2 };
            flows.put(&flow("s4")).unwrap();
            assert!(matches!(stale.take("s4", Some("browser-1")), Err(Error::Flow { reason: "expired" })), "{who}");
            // A step-up flow keeps its signer and session.
            let mut su = flow("s5");
            su.step_up = Some(StepUp { user: "amy".into(), session: "sess".into() });
            flows.put(&su).unwrap();
            assert_eq!(flows.take("s5", Some("browser-1")).unwrap().step_up, su.step_up, "{who}");
        }
    }

    #[test]
    fn a_step_up_must_be_fresh_and_the_signers_own() {
        for t in each_backend("oidc_step_up") {
            let (store, who) = (&t.store, t.name());
            eprintln!("backend: {who}");
            let s = Settings::from_config(&config(), None).unwrap();
            let mut id = identity("sub-1", "amy", &["onlabel-mlr"]);
            let signed = sign_in(store, &s, &id).unwrap();
            let now = Utc::now();
            let mine = StepUp { user: "amy".into(), session: "s".into() };
            check_step_up(&s, &signed, &id, &mine, now).unwrap();
            let other = StepUp { user: "bob".into(), session: "s".into() };
            assert!(matches!(check_step_up(&s, &signed, &id, &other, now), Err(Error::StepUp { .. })));
            id.auth_time = Some(now - chrono::Duration::seconds(STEP_UP_MAX_AGE_SECS + 1));
            assert!(matches!(check_step_up(&s, &signed, &id, &mine, now), Err(Error::StepUp { .. })));
            id.auth_time = None;
            assert!(matches!(check_step_up(&s, &signed, &id, &mine, now), Err(Error::StepUp { .. })), "{who}");
        }
    }
}

crate::coded!(Error);
