//! Capstan's containerd against the real containerd 1.6: start, CRI
//! `Version`, the pause image, restart after SIGKILL.

mod common;

use std::time::{Duration, Instant};

use capstan_containerd::{Containerd, cri, import, pause};
use common::TestRuntime;

#[tokio::test]
async fn start_answers_cri_version_and_has_the_pause_image() {
    let rt = TestRuntime::new();
    let started = Instant::now();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    eprintln!("Containerd::start took {:?}", started.elapsed());
    let (name, version) = cri::version(containerd.endpoint()).await.unwrap();
    assert_eq!(name, "containerd");
    assert!(version.starts_with("1.6"), "version {version}");
    assert!(
        import::image_present(containerd.endpoint(), pause::IMAGE)
            .await
            .unwrap()
    );
    let pid = containerd.pid().unwrap();
    assert_eq!(
        std::fs::read_to_string(rt.state_dir().join("containerd.pid"))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    containerd.stop().await;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "containerd {pid} still runs"
    );
    assert!(!rt.state_dir().join("containerd.pid").exists());

    // A second start on the same state dir finds the pause image already there.
    let started = Instant::now();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts again");
    eprintln!("second Containerd::start took {:?}", started.elapsed());
    containerd.stop().await;
}

#[tokio::test]
async fn a_killed_containerd_is_restarted() {
    let rt = TestRuntime::new();
    let containerd = Containerd::start(rt.config()).await.expect("containerd starts");
    let first = containerd.pid().unwrap();
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = containerd.pid().filter(|pid| *pid != first)
            && cri::version(containerd.endpoint()).await.is_ok()
        {
            assert_eq!(
                std::fs::read_to_string(rt.state_dir().join("containerd.pid"))
                    .unwrap()
                    .trim(),
                pid.to_string()
            );
            break;
        }
        assert!(Instant::now() < deadline, "containerd was not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    containerd.stop().await;
}

#[tokio::test]
async fn a_containerd_left_by_a_crashed_capstan_is_replaced() {
    let rt = TestRuntime::new();
    // A capstan that crashed: its containerd runs on, unsupervised.
    let config = rt.config();
    let stale = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let containerd = runtime.block_on(Containerd::start(config)).expect("containerd starts");
        let pid = containerd.pid().unwrap();
        std::mem::forget(containerd);
        pid
    })
    .join()
    .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{stale}")).exists());

    let containerd = Containerd::start(rt.config())
        .await
        .expect("containerd starts over the stale one");
    let pid = containerd.pid().unwrap();
    assert_ne!(pid, stale);
    let stat = std::fs::read_to_string(format!("/proc/{stale}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the stale containerd {stale} still runs: {stat}"
    );
    cri::version(containerd.endpoint())
        .await
        .expect("the new containerd answers");
    containerd.stop().await;
}
