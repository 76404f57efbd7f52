//! Builds the pause binary (`pause/pause.rs`) with the same `rustc` that
//! builds this crate, as a freestanding static executable for the target
//! architecture; `src/pause.rs` embeds it with `include_bytes!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=pause/pause.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    if arch != "x86_64" && arch != "aarch64" {
        panic!("the pause binary supports x86_64 and aarch64, not {arch}");
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "bin", "--target", &target])
        .args(["-C", "panic=abort", "-C", "opt-level=z", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static", "-C", "debuginfo=0"])
        .args([
            "-C",
            "link-arg=-nostartfiles",
            "-C",
            "link-arg=-nostdlib",
            "-C",
            "link-arg=-static",
        ])
        .arg("pause/pause.rs")
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run rustc for the pause binary");
    assert!(status.success(), "building the pause binary failed: {status}");
}
