//! Download links for offline viewing: scoped to one recording of one class (the path names
//! both), to who asked (a pupil's link stops working when the teacher unpublishes the
//! recording or forbids its download), and expiring (`exp`). They carry their own
//! permission, so a tablet's download manager can fetch and resume them without a token:
//! HMAC-SHA256 over what they name, with a key derived from the server's token signing keys
//! (`TokenSigner::link_keys`, from the database): a link outlives a restart and works on
//! every node of a cluster; rotating the signing keys twice ends every link.

use crate::auth::TokenSigner;
use aws_lc_rs::hmac;
use base64::Engine;

/// Who a link was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFor {
    /// The class's teacher or an admin.
    Staff,
    /// One of the class's pupils.
    Pupil,
}

impl LinkFor {
    fn tag(self) -> &'static str {
        match self {
            LinkFor::Staff => "s",
            LinkFor::Pupil => "p",
        }
    }

    fn from_tag(tag: &str) -> Option<LinkFor> {
        match tag {
            "s" => Some(LinkFor::Staff),
            "p" => Some(LinkFor::Pupil),
            _ => None,
        }
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Malformed, or not signed by a key the server keeps.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Signs and checks download links with the keys of a token signer.
pub struct DownloadLinks {
    signer: TokenSigner,
}

impl DownloadLinks {
    /// Links signed by the keys of `signer` (shared: a rotation reaches the links too).
    pub fn new(signer: TokenSigner) -> DownloadLinks {
        DownloadLinks { signer }
    }

    fn message(class: &str, rec: &str, exp: u64, who: LinkFor) -> String {
        format!("{class}\n{rec}\n{exp}\n{}", who.tag())
    }

    /// The query string of a link to `rec` of `class` for `who`, valid until `exp` (seconds
    /// since the Unix epoch).
    pub fn query(&self, class: &str, rec: &str, exp: u64, who: LinkFor) -> String {
        let keys = self.signer.link_keys();
        let tag = hmac::sign(&keys[0], Self::message(class, rec, exp, who).as_bytes());
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref());
        format!("exp={exp}&for={}&sig={sig}", who.tag())
    }

    /// Check a link's query string for `rec` of `class` at `now`: who it was made for.
    pub fn check(&self, class: &str, rec: &str, query: &str, now: u64) -> Result<LinkFor, LinkRefusal> {
        let mut exp = None;
        let mut who = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("exp", v)) => exp = v.parse::<u64>().ok(),
                Some(("for", v)) => who = LinkFor::from_tag(v),
                Some(("sig", v)) => sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).ok(),
                _ => {}
            }
        }
        let (Some(exp), Some(who), Some(sig)) = (exp, who, sig) else { return Err(LinkRefusal::Invalid) };
        let message = Self::message(class, rec, exp, who);
        if !self.signer.link_keys().iter().any(|key| hmac::verify(key, message.as_bytes(), &sig).is_ok()) {
            return Err(LinkRefusal::Invalid);
        }
        if now > exp {
            return Err(LinkRefusal::Expired);
        }
        Ok(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_names_its_recording_its_holder_and_its_expiry() {
        let signer = |secret: u8| TokenSigner::new(&[secret; 32], 3600).unwrap();
        let links = DownloadLinks::new(signer(1));
        let q = links.query("cm1", "1700", 1000, LinkFor::Pupil);
        assert_eq!(links.check("cm1", "1700", &q, 999), Ok(LinkFor::Pupil));
        assert_eq!(links.check("cm1", "1700", &q, 1001), Err(LinkRefusal::Expired));
        assert_eq!(links.check("cm2", "1700", &q, 999), Err(LinkRefusal::Invalid), "another class");
        assert_eq!(links.check("cm1", "1701", &q, 999), Err(LinkRefusal::Invalid), "another recording");
        let promoted = q.replace("for=p", "for=s");
        assert_eq!(links.check("cm1", "1700", &promoted, 999), Err(LinkRefusal::Invalid), "a pupil's made staff's");
        let later = q.replace("exp=1000", "exp=9999");
        assert_eq!(links.check("cm1", "1700", &later, 999), Err(LinkRefusal::Invalid), "a stretched expiry");
        let restarted = DownloadLinks::new(signer(1));
        assert_eq!(restarted.check("cm1", "1700", &q, 999), Ok(LinkFor::Pupil), "after a restart, same keys");
        assert_eq!(
            DownloadLinks::new(signer(2)).check("cm1", "1700", &q, 999),
            Err(LinkRefusal::Invalid),
            "other keys"
        );
        assert_eq!(links.check("cm1", "1700", "exp=1000", 999), Err(LinkRefusal::Invalid));
    }
}
