//! Talking to the kernel: rulesets go through `nft -f -` (the nftables
//! command-line tool reads them as one atomic transaction).

use std::io::Write;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("running nft: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("nft rejected the ruleset: {0}")]
    Rejected(String),
}

/// Applies `script` atomically: all of it or nothing.
pub fn apply(script: &str) -> Result<(), NftError> {
    if script.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped").write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NftError::Rejected(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}

/// Removes our table (clean shutdown); a missing table is fine.
pub fn delete_table(table: &str) -> Result<(), NftError> {
    apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
}
