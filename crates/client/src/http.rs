//! WHIP/WHEP over HTTP or HTTPS (blocking, for client threads), with this process's
//! [`trust`](crate::trust).

use anyhow::{Context, Result, bail};

/// A created WHIP/WHEP session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Absolute URL of the session resource.
    pub resource: String,
    /// SDP answer.
    pub answer: String,
}

/// POST an SDP offer to a WHIP/WHEP endpoint.
pub fn post_offer(base: &str, path: &str, token: &str, offer: &str) -> Result<Session> {
    let url = format!("{base}{path}");
    match crate::trust::agent()
        .post(&url)
        .set("Content-Type", "application/sdp")
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(std::time::Duration::from_secs(10))
        .send_string(offer)
    {
        Ok(r) if r.status() == 201 => {
            let loc = r.header("Location").context("201 without Location")?.to_owned();
            let answer = r.into_string()?;
            Ok(Session { resource: format!("{base}{loc}"), answer })
        }
        Ok(r) => bail!("{url}: unexpected status {}", r.status()),
        Err(ureq::Error::Status(code, r)) => bail!("{url}: HTTP {code}: {}", r.into_string().unwrap_or_default()),
        Err(e) => Err(e).with_context(|| format!("POST {url}")),
    }
}

/// DELETE a session resource.
pub fn delete(resource: &str, token: &str) -> Result<u16> {
    match crate::trust::agent().delete(resource).set("Authorization", &format!("Bearer {token}")).call() {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(e) => Err(e).with_context(|| format!("DELETE {resource}")),
    }
}
