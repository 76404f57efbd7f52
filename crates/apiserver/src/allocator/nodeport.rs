//! NodePorts: one bitmap of the `--service-node-port-range`, stored under
//! `/registry/ranges/servicenodeports` as upstream's RangeAllocation and
//! changed only by compare-and-swap, so two API servers (or two requests)
//! can never hand out the same port.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use capstan_store::{Store, StoreError};
use serde_json::{Value, json};

/// Where the bitmap lives (upstream's key).
pub const KEY: &str = "/registry/ranges/servicenodeports";

/// How often a write retries after losing a compare-and-swap race.
const MAX_RETRIES: usize = 64;

/// An inclusive port range, written `30000-32767` (or `30000+2767`) as upstream's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    pub size: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && u32::from(port) < u32::from(self.base) + u32::from(self.size)
    }

    fn last(&self) -> u16 {
        self.base + (self.size - 1)
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            base: 30000,
            size: 2768,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, self.last())
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid port range {text:?}: want BASE-LAST or BASE+OFFSET, e.g. 30000-32767");
        let number = |s: &str| s.trim().parse::<u16>().map_err(|_| bad());
        let (base, last) = if let Some((a, b)) = text.split_once('-') {
            (number(a)?, number(b)?)
        } else if let Some((a, b)) = text.split_once('+') {
            let base = number(a)?;
            (base, base.checked_add(number(b)?).ok_or_else(bad)?)
        } else {
            let port = number(text)?;
            (port, port)
        };
        if last < base || base == 0 {
            return Err(bad());
        }
        Ok(PortRange {
            base,
            size: last - base + 1,
        })
    }
}

/// Why a port could not be had; the texts are upstream's portallocator errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("provided port is already allocated")]
    Allocated,
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    NotInRange(PortRange),
    #[error("range is full")]
    Full,
    #[error("{0}")]
    Store(String),
}

/// One change to the bitmap, applied atomically: ports to take (a specific
/// one, or any free one) and ports to give back.
#[derive(Debug, Default)]
pub struct Change {
    pub take: Vec<Option<u16>>,
    pub release: Vec<u16>,
}

/// The allocator: a view of the stored bitmap.
pub struct NodePorts {
    pub range: PortRange,
}

impl NodePorts {
    /// Applies `change` (all of it or nothing); returns the ports taken, in
    /// the order asked. A dry run checks without writing.
    pub async fn apply(&self, store: &dyn Store, change: &Change, dry_run: bool) -> Result<Vec<u16>, PortError> {
        for _ in 0..MAX_RETRIES {
            let (mut bitmap, revision) = self.load(store).await?;
            let taken = bitmap.apply(change)?;
            if dry_run || (taken.is_empty() && change.release.is_empty()) {
                return Ok(taken);
            }
            let value = serde_json::to_vec(&bitmap.to_object()).map_err(|e| PortError::Store(e.to_string()))?;
            let written = match revision {
                Some(revision) => store.update(KEY, value, revision).await,
                None => store.create(KEY, value).await,
            };
            match written {
                Ok(_) => return Ok(taken),
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
                Err(err) => return Err(PortError::Store(err.to_string())),
            }
        }
        Err(PortError::Store("too many concurrent node port allocations".into()))
    }

    /// The ports in use, as stored.
    pub async fn allocated(&self, store: &dyn Store) -> Result<Vec<u16>, PortError> {
        Ok(self.load(store).await?.0.ports().collect())
    }

    async fn load(&self, store: &dyn Store) -> Result<(Bitmap, Option<capstan_store::Revision>), PortError> {
        let (kv, _) = store
            .get(KEY, None)
            .await
            .map_err(|e| PortError::Store(e.to_string()))?;
        let Some(kv) = kv else {
            return Ok((Bitmap::empty(self.range), None));
        };
        let stored: Value = serde_json::from_slice(&kv.value).map_err(|e| PortError::Store(e.to_string()))?;
        Ok((Bitmap::from_object(self.range, &stored), Some(kv.mod_revision)))
    }
}

/// One bit per port of the range. A stored bitmap of another range (the
/// flag changed) keeps the ports that still fall in the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Bitmap {
    range: PortRange,
    bits: Vec<u8>,
}

impl Bitmap {
    pub fn empty(range: PortRange) -> Bitmap {
        Bitmap {
            range,
            bits: vec![0; usize::from(range.size).div_ceil(8)],
        }
    }

    fn from_object(range: PortRange, stored: &Value) -> Bitmap {
        let mut bitmap = Bitmap::empty(range);
        let old_range = stored.get("range").and_then(Value::as_str).and_then(|r| r.parse().ok());
        let data = stored
            .get("data")
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        if let (Some(old_range), Some(data)) = (old_range, data) {
            let old = Bitmap {
                range: old_range,
                bits: data,
            };
            for port in old.ports().filter(|p| range.contains(*p)) {
                bitmap.set(port, true);
            }
        }
        bitmap
    }

    fn to_object(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "RangeAllocation",
            "metadata": {"name": "servicenodeports"},
            "range": self.range.to_string(),
            "data": base64::engine::general_purpose::STANDARD.encode(&self.bits),
        })
    }

    fn index(&self, port: u16) -> Option<(usize, u8)> {
        self.range.contains(port).then(|| {
            let offset = usize::from(port - self.range.base);
            (offset / 8, 1 << (offset % 8))
        })
    }

    pub fn has(&self, port: u16) -> bool {
        self.index(port)
            .is_some_and(|(byte, bit)| self.bits.get(byte).is_some_and(|b| b & bit != 0))
    }

    fn set(&mut self, port: u16, on: bool) {
        if let Some((byte, bit)) = self.index(port)
            && let Some(b) = self.bits.get_mut(byte)
        {
            if on { *b |= bit } else { *b &= !bit }
        }
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.range.size)
            .map(|offset| self.range.base + offset)
            .filter(|port| self.has(*port))
    }

    /// Takes and releases as `change` says; releases happen first, so an
    /// update can keep a port it already had.
    pub fn apply(&mut self, change: &Change) -> Result<Vec<u16>, PortError> {
        for port in &change.release {
            self.set(*port, false);
        }
        change.take.iter().map(|wanted| self.take(*wanted)).collect()
    }

    fn take(&mut self, wanted: Option<u16>) -> Result<u16, PortError> {
        let port = match wanted {
            Some(port) if !self.range.contains(port) => return Err(PortError::NotInRange(self.range)),
            Some(port) if self.has(port) => return Err(PortError::Allocated),
            Some(port) => port,
            None => self.random_free().ok_or(PortError::Full)?,
        };
        self.set(port, true);
        Ok(port)
    }

    /// A free port, from a random starting point as upstream does, so
    /// services created together do not get neighbouring ports by accident
    /// of order alone.
    fn random_free(&self) -> Option<u16> {
        let size = self.range.size;
        let start = rand::random_range(0..size);
        (0..size)
            .map(|i| self.range.base + (start + i) % size)
            .find(|port| !self.has(*port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> PortRange {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_as_upstreams_flag() {
        assert_eq!(range("30000-32767"), PortRange::default());
        assert_eq!(range("30000+2767"), PortRange::default());
        assert_eq!(range("8080"), PortRange { base: 8080, size: 1 });
        assert!("32767-30000".parse::<PortRange>().is_err());
        assert!("abc".parse::<PortRange>().is_err());
        assert_eq!(PortRange::default().to_string(), "30000-32767");
    }

    #[test]
    fn specific_ports_are_taken_once_and_must_be_in_range() {
        let mut bitmap = Bitmap::empty(range("30000-30009"));
        let take = |p| Change {
            take: vec![Some(p)],
            release: vec![],
        };
        assert_eq!(bitmap.apply(&take(30005)), Ok(vec![30005]));
        assert_eq!(bitmap.apply(&take(30005)), Err(PortError::Allocated));
        assert_eq!(
            bitmap.apply(&take(80)),
            Err(PortError::NotInRange(range("30000-30009")))
        );
        assert_eq!(
            PortError::NotInRange(PortRange::default()).to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }

    #[test]
    fn any_port_until_the_range_is_full() {
        let mut bitmap = Bitmap::empty(range("30000-30003"));
        let any = Change {
            take: vec![None, None, None, None],
            release: vec![],
        };
        let mut taken = bitmap.apply(&any).unwrap();
        taken.sort();
        assert_eq!(taken, vec![30000, 30001, 30002, 30003]);
        let one_more = Change {
            take: vec![None],
            release: vec![],
        };
        assert_eq!(bitmap.apply(&one_more), Err(PortError::Full));
        let swap = Change {
            take: vec![None],
            release: vec![30002],
        };
        assert_eq!(bitmap.apply(&swap), Ok(vec![30002]));
    }

    #[test]
    fn a_stored_bitmap_survives_a_range_change() {
        let mut old = Bitmap::empty(range("30000-30099"));
        old.apply(&Change {
            take: vec![Some(30001), Some(30050)],
            release: vec![],
        })
        .unwrap();
        let moved = Bitmap::from_object(range("30040-30140"), &old.to_object());
        assert_eq!(moved.ports().collect::<Vec<_>>(), vec![30050]);
    }
}
