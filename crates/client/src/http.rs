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

/// POST an SDP offer to a WHIP/WHEP endpoint (following redirects: [`post`]); the session
/// resource is on the node that answered.
pub fn post_offer(base: &str, path: &str, token: &str, offer: &str) -> Result<Session> {
    offer_to(&format!("{base}{path}"), Some(token), offer)
}

/// POST an SDP offer to `url`, with a bearer `token` if given (a node relaying a class
/// proves itself in the URL instead).
pub fn offer_to(url: &str, token: Option<&str>, offer: &str) -> Result<Session> {
    match post(url, "application/sdp", token, offer) {
        Ok(r) if r.status() == 201 => {
            let loc = r.header("Location").context("201 without Location")?.to_owned();
            let answered = r.get_url().to_owned();
            let answer = r.into_string()?;
            Ok(Session { resource: resolve(&answered, &loc), answer })
        }
        Ok(r) => bail!("{url}: unexpected status {}", r.status()),
        Err(e) => match *e {
            ureq::Error::Status(code, r) => bail!("{url}: HTTP {code}: {}", r.into_string().unwrap_or_default()),
            e => Err(e).with_context(|| format!("POST {url}")),
        },
    }
}

/// POST `body` to `url`, following 307 and 308 (a cluster's node sending a class's request
/// to its owner) with the same body and token, at most [`MAX_REDIRECTS`] times. The
/// response's `get_url()` is where it was answered.
pub fn post(
    url: &str,
    content_type: &str,
    token: Option<&str>,
    body: &str,
) -> Result<ureq::Response, Box<ureq::Error>> {
    let mut url = url.to_owned();
    let mut hops = 0;
    loop {
        let mut req = crate::trust::agent()
            .post(&url)
            .set("Content-Type", content_type)
            .timeout(std::time::Duration::from_secs(10));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let r = req.send_string(body)?;
        // The token goes along (the WHIP and WHEP drafts: the client follows), but never
        // from https down to plain http.
        let next = match r.status() {
            307 | 308 if hops < MAX_REDIRECTS => r
                .header("Location")
                .map(|l| resolve(&url, l))
                .filter(|n| !(url.starts_with("https://") && n.starts_with("http://"))),
            _ => None,
        };
        match next {
            Some(n) => {
                url = n;
                hops += 1;
            }
            None => return Ok(r),
        }
    }
}

/// The origin that serves `path` among `servers` (the nodes of a cluster, or one server):
/// the first that answers, after the redirects it gives (a GET, which needs no token: a
/// node sends a class's requests to its owner before it looks at anything else). A server
/// that does not answer is passed over.
pub fn owner(servers: &[&str], path: &str) -> Result<String> {
    let mut last = None;
    for server in servers {
        let url = format!("{}{path}", server.trim_end_matches('/'));
        let landed = match crate::trust::agent().get(&url).timeout(std::time::Duration::from_secs(5)).call() {
            Ok(r) => r.get_url().to_owned(),
            Err(ureq::Error::Status(_, r)) => r.get_url().to_owned(),
            Err(e) => {
                last = Some(anyhow::Error::new(e).context(format!("GET {url}")));
                continue;
            }
        };
        // The server's base as given (a path included), on the node that answered.
        let landed = landed.split('?').next().unwrap_or(&landed);
        return Ok(landed.strip_suffix(path).map(str::to_owned).unwrap_or_else(|| resolve(landed, "")));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no server given")))
}

/// Redirects an offer follows.
pub const MAX_REDIRECTS: usize = 3;

/// `location` (absolute, or a path) as an absolute URL, against the URL `from`.
pub fn resolve(from: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let after_scheme = from.find("://").map_or(0, |i| i + 3);
    let origin_end = from[after_scheme..].find('/').map_or(from.len(), |i| after_scheme + i);
    format!("{}{location}", &from[..origin_end])
}

/// DELETE a session resource.
pub fn delete(resource: &str, token: &str) -> Result<u16> {
    match crate::trust::agent().delete(resource).set("Authorization", &format!("Bearer {token}")).call() {
        Ok(r) => Ok(r.status()),
        Err(ureq::Error::Status(code, _)) => Ok(code),
        Err(e) => Err(e).with_context(|| format!("DELETE {resource}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_location_resolves_against_the_url_that_gave_it() {
        use super::resolve;
        assert_eq!(resolve("http://a:1/whip/cm1", "/whip/cm1/7"), "http://a:1/whip/cm1/7");
        assert_eq!(resolve("http://a:1/whip/cm1", "https://b:2/whip/cm1?via=n1"), "https://b:2/whip/cm1?via=n1");
        assert_eq!(resolve("http://a:1", "/x"), "http://a:1/x");
        assert_eq!(resolve("http://a:1/whip/cm1?via=n", ""), "http://a:1", "an origin");
    }
}
