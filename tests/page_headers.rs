//! Every page's security headers and the absence of inline script and style (issue 17):
//! a CSP without `'unsafe-inline'`, `Permissions-Policy` for the camera and microphone,
//! `Referrer-Policy`, `X-Content-Type-Options`; each script and style a page loads is served
//! from `/assets/` with its type. (The Chromium tests fail on any CSP violation.)

mod common;

use common::TestServer;

#[test]
fn pages_carry_strict_headers_and_no_inline_code() {
    let server = TestServer::start(&[]);
    for page in ["/", "/c/demo", "/replay", "/teacher", "/admin", "/watch", "/login", "/my", "/admin/schools"] {
        let r = ureq::get(&format!("{}{page}", server.base)).call().unwrap_or_else(|e| panic!("{page}: {e}"));
        let csp = r.header("Content-Security-Policy").unwrap_or_default().to_owned();
        assert!(csp.contains("script-src 'self';") && csp.contains("style-src 'self';"), "{page}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{page}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{page}: {csp}");
        let pp = r.header("Permissions-Policy").unwrap_or_default().to_owned();
        assert!(
            pp.contains("camera=(self)") && pp.contains("microphone=(self)") && pp.contains("geolocation=()"),
            "{pp}"
        );
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"), "{page}");
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{page}");
        let body = r.into_string().unwrap();
        assert!(!body.contains(" style=\"") && !body.contains("<style"), "{page}: inline style");
        for tag in body.split("<script").skip(1) {
            let src = tag.split('>').next().unwrap();
            assert!(src.contains("src=\"/assets/"), "{page}: an inline script ({src})");
        }
        assert!(!body.to_lowercase().contains(" onclick="), "{page}: inline handler");
        for asset in body.split("=\"/assets/").skip(1).map(|r| r.split('"').next().unwrap()) {
            let a =
                ureq::get(&format!("{}/assets/{asset}", server.base)).call().unwrap_or_else(|e| panic!("{asset}: {e}"));
            let want = if asset.ends_with(".js") { "text/javascript" } else { "text/css" };
            assert_eq!(a.content_type(), want, "{asset}");
            assert_eq!(a.header("X-Content-Type-Options"), Some("nosniff"), "{asset}");
        }
    }
}
