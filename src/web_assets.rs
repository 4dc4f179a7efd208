//! Why: the browser app ships inside the binary (one file to deploy). In debug builds
//! rust-embed reads `web/dist` from disk, so a rebuilt web app shows without recompiling.
//! Unknown paths get `index.html` so the app's own router can handle them.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "web/dist"]
struct Assets;

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    if let Some(f) = Assets::get(path) {
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let cache = if path == "index.html" {
            "no-cache"
        } else {
            "public, max-age=300"
        };
        return (
            [
                (header::CONTENT_TYPE, mime.as_ref().to_string()),
                (header::CACHE_CONTROL, cache.to_string()),
            ],
            f.data,
        )
            .into_response();
    }
    match Assets::get("index.html") {
        Some(f) if !path.contains('.') => ([(header::CONTENT_TYPE, "text/html; charset=utf-8".to_string())], f.data).into_response(),
        Some(_) => StatusCode::NOT_FOUND.into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The web app was not built into this binary. Run `npm ci && npm run build` in web/ and rebuild.",
        )
            .into_response(),
    }
}
