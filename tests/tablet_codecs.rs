//! Tablets without VP8 hardware decoding: a pupil page that asks for H.264 gets H.264 when
//! the class's studio publishes it (`studio.codec = "h264"`), and a pupil that only prefers
//! H.264 still plays a VP8 class. Chromium, its offer ordered through setCodecPreferences.

mod common;

use common::TestServer;
use serde_json::Value;

fn play(server: &TestServer, codec: &str) -> Value {
    common::browser_script("codec.mjs", &[server.base.as_str(), codec])
}

#[test]
fn a_pupil_restricted_to_h264_plays_an_h264_class_and_one_preferring_it_plays_a_vp8_class() {
    common::browser_prerequisites().expect("Chromium and node (make test installs them)");
    let server = TestServer::start(&[]);
    let teacher = server.token("teacher", Some("demo"));
    {
        let _studio = common::publishing_studio(&server, "demo", &teacher, |c| {
            c.codec = ardoise_studio::VideoCodec::H264;
        });
        let v = play(&server, "h264");
        println!("H.264 class, H.264-only pupil: {v}");
        assert_eq!(v["videoCodec"], "video/H264", "{v}");
    }
    let _studio = common::publishing_studio(&server, "demo", &teacher, |_| {});
    let v = play(&server, "h264-first");
    println!("VP8 class, pupil preferring H.264: {v}");
    assert_eq!(v["videoCodec"], "video/VP8", "{v}");
}
