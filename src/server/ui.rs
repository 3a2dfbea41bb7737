//! The web UI: static files embedded in the binary (works offline), served
//! at `/` without a token — the page signs in with the user's bearer token
//! and every API call is checked by the server. Files are served at `/NAME`
//! (top level) and `/ui/PATH`; scripts and styles must be files (the CSP
//! forbids inline script and eval). `ui/vendor/` holds third-party scripts
//! vendored from npm by `scripts/ui-deps.sh` (pdf.js and its worker, a
//! module worker: `worker-src 'self'`); it is gitignored and may be absent,
//! in which case the source page says to run that script.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, State};

#[derive(rust_embed::Embed)]
#[folder = "src/server/ui/"]
struct Assets;

/// The routes of this file.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route("/{file}", get(|Path(p): Path<String>| async move { file(&p) }))
        .route("/ui/{*path}", get(|Path(p): Path<String>| async move { file(&p) }))
}

fn file(path: &str) -> Response {
    match Assets::get(path) {
        Some(f) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_string()),
                    (header::CACHE_CONTROL, "no-cache".to_string()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                    (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; worker-src 'self'; frame-ancestors 'self'".to_string()),
                ],
                f.data.into_owned(),
            )
                .into_response()
        }
        None => ApiError::coded("not_found", format!("no file {path} in the web UI, and no API route at /{path}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::Assets;

    /// Every block of the stylesheet closes before the next top-level rule
    /// opens, and the file ends at depth zero: a `}` lost in a merge (the
    /// file merges with `merge=union`) would put every later rule inside an
    /// `@media` block, where it silently applies at one width only.
    #[test]
    fn the_stylesheet_blocks_are_balanced() {
        let css = String::from_utf8(Assets::get("app.css").expect("app.css is embedded").data.into_owned()).unwrap();
        let mut depth = 0i32;
        for (n, line) in css.lines().enumerate() {
            let top = !line.starts_with(' ') && !line.starts_with('}') && !line.trim().is_empty();
            assert!(!(top && depth > 0), "app.css:{}: a top-level rule starts inside an unclosed block: {line}", n + 1);
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            assert!(depth >= 0, "app.css:{}: a `}}` closes nothing", n + 1);
        }
        assert_eq!(depth, 0, "app.css ends inside an unclosed block");
    }
}
