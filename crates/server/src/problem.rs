//! HTTP errors as `application/problem+json` (RFC 9457).

use ardoise_net::NetError;
use ardoise_sfu::SfuError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An HTTP error with a human explanation.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Status code.
    pub status: StatusCode,
    /// What went wrong, for a human.
    pub detail: String,
    /// Seconds to wait before retrying (503).
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem with this status and detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem { status, detail: detail.into(), retry_after: None }
    }
    /// 400
    pub fn bad_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, d)
    }
    /// 401
    pub fn unauthorized(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, d)
    }
    /// 403
    pub fn forbidden(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, d)
    }
    /// 404
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, d)
    }
    /// 503 with `Retry-After`.
    pub fn unavailable(d: impl Into<String>, retry_after_secs: u32) -> Self {
        Problem { retry_after: Some(retry_after_secs), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, d) }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Errors of the database as HTTP answers: a duplicate is 409, a missing row 404, anything
/// else a 503 whose cause goes to the log, never to the client.
pub fn store_problem(e: ardoise_store::StoreError) -> Problem {
    use ardoise_store::StoreError;
    match e {
        StoreError::Duplicate(what) => Problem::new(StatusCode::CONFLICT, format!("this {what} exists already")),
        StoreError::NotFound(what) => Problem::not_found(format!("no such {what}")),
        other => {
            tracing::warn!("database: {other}");
            Problem::unavailable("the database is unavailable; try again soon", 5)
        }
    }
}

/// Errors of the media side as HTTP answers. Details are our own words: the messages of
/// the libraries underneath (SDP parser, WebRTC stack) go to the debug log, never to clients.
impl From<NetError> for Problem {
    fn from(e: NetError) -> Self {
        tracing::debug!("media refusal: {e}");
        match e {
            NetError::Sfu(SfuError::BadSdp(_)) => Problem::bad_request("malformed SDP offer"),
            NetError::Sfu(SfuError::UnusableOffer(d)) => Problem::bad_request(format!("unusable SDP offer: {d}")),
            NetError::Sfu(SfuError::Rtc(_)) => Problem::bad_request("the SDP offer could not be negotiated"),
            NetError::Sfu(SfuError::NotGranted(d)) => Problem::forbidden(d),
            NetError::Sfu(SfuError::Full(n)) => Problem {
                retry_after: Some(30),
                ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("this class is full ({n} connections)"))
            },
            NetError::Sfu(SfuError::UnknownParticipant) | NetError::UnknownClass => {
                Problem::not_found("no such session")
            }
            NetError::WorkerGone | NetError::Bind { .. } => Problem {
                retry_after: Some(5),
                ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "media relay unavailable")
            },
        }
    }
}
