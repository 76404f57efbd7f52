//! The pod sandbox ("pause") image, built from Capstan's own source.
//!
//! `build.rs` compiles `pause/pause.rs` into a freestanding static binary;
//! [`archive`] packs it as a one-file image that containerd imports at
//! start, so no node ever pulls `registry.k8s.io/pause`.

use crate::archive::Image;

/// The image name containerd is configured with as `sandbox_image`. The
/// Capstan version is part of the tag, so a new binary brings a new image.
pub const IMAGE: &str = concat!("docker.io/capstan/pause:3.10-capstan", env!("CARGO_PKG_VERSION"));

/// The pause executable (a static ELF for this machine's architecture).
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The pause image: `/pause` as its entrypoint and nothing else.
pub fn image() -> Image {
    Image::new(IMAGE)
        .file("pause", BINARY.to_vec(), 0o755)
        .entrypoint(["/pause"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_a_small_static_elf() {
        assert_eq!(&BINARY[..4], b"\x7fELF");
        assert!(BINARY.len() < 64 * 1024, "pause binary is {} bytes", BINARY.len());
    }
}
