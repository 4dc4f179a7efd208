//! Why: one error type for the API, so every failure becomes a JSON body with a machine code,
//! a sentence a person can act on, and (for validation) the field at fault. Internal errors
//! are logged with detail and shown to the client only as a generic message with an id to
//! quote, so no database or crypto detail (or secret) can leak through an error.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or a field is invalid.
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// 401: not logged in, or the login expired.
    Unauthenticated(String),
    /// 403: logged in, but not allowed.
    Forbidden(String),
    /// 404
    NotFound(String),
    /// 409: conflicts with existing data (e.g. a name already taken).
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// 429
    TooMany(String),
    /// 500: our fault; details go to the log only.
    Internal(anyhow::Error),
    /// An error whose refusal was already written to the audit log by the code that raised
    /// it (with object details); the generic rejected-request audit skips it.
    Audited(Box<ApiError>),
}

/// Response marker: this rejection is already in the audit log.
#[derive(Clone, Copy)]
pub struct AlreadyAudited;

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: None,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::Forbidden(message.into())
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }
    pub fn conflict(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Audited(inner) => inner.status(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(anyhow::anyhow!("database: {e}"))
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, message, field) = match self {
            ApiError::Audited(inner) => {
                let mut res = inner.into_response();
                res.extensions_mut().insert(AlreadyAudited);
                return res;
            }
            ApiError::Invalid { field, message } => ("invalid", message, field),
            ApiError::Unauthenticated(m) => ("unauthenticated", m, None),
            ApiError::Forbidden(m) => ("forbidden", m, None),
            ApiError::NotFound(m) => ("not_found", m, None),
            ApiError::Conflict { field, message } => ("conflict", message, field),
            ApiError::TooMany(m) => ("too_many_requests", m, None),
            ApiError::Internal(e) => {
                let id = &crate::db::new_id()[..8];
                tracing::error!(error_id = id, error = %e, "internal error");
                ("internal", format!("Something went wrong on the server (error id {id}). The details are in the server log."), None)
            }
        };
        (
            status,
            axum::Json(json!({ "error": { "code": code, "message": message, "field": field } })),
        )
            .into_response()
    }
}
