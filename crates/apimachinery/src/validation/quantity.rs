//! Resource quantities (`resource.Quantity`): parsing, comparison and the
//! canonical string upstream prints in messages such as
//! `must be less than or equal to cpu limit of 1`.

use std::cmp::Ordering;

use serde_json::Value;

/// How a quantity was written, which decides how it is printed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    DecimalSi,
    BinarySi,
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^scale`, exact when it fits in an `i128`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Quantity {
    mantissa: i128,
    scale: i32,
    format: Format,
    /// Pieces of the written form, for the Go `%#v` rendering.
    written: Written,
}

#[derive(Debug, Clone, PartialEq)]
struct Written {
    text: String,
    num: String,
    denom: String,
    exponent: i32,
    negative: bool,
}

/// Upstream's parse error for a malformed quantity.
pub(super) const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const SUFFIX_ERROR: &str = "unable to parse quantity's suffix";

fn digits_end(s: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

struct Parts<'a> {
    negative: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Upstream's `parseQuantityString`.
fn split(text: &str) -> Result<Parts<'_>, &'static str> {
    let s = text.as_bytes();
    let mut pos = 0;
    let mut negative = false;
    match s.first() {
        Some(b'-') => {
            negative = true;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < s.len() && s[pos] == b'0' {
        pos += 1;
    }
    if pos >= s.len() {
        return Ok(Parts {
            negative,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_end = digits_end(s, pos);
    let num = if num_end == pos { "0" } else { &text[pos..num_end] };
    pos = num_end;
    let mut denom = "";
    if pos < s.len() && s[pos] == b'.' {
        let end = digits_end(s, pos + 1);
        denom = &text[pos + 1..end];
        pos = end;
    }
    let suffix_start = pos;
    while pos < s.len() && b"eEinumkKMGTP".contains(&s[pos]) {
        pos += 1;
    }
    if pos < s.len() && (s[pos] == b'-' || s[pos] == b'+') {
        pos += 1;
    }
    if digits_end(s, pos) != s.len() {
        return Err(FORMAT_ERROR);
    }
    Ok(Parts {
        negative,
        num,
        denom,
        suffix: &text[suffix_start..],
    })
}

/// (base, exponent, format) of a suffix, as upstream's suffixer interprets it.
fn interpret(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = |e| Some((10, e, Format::DecimalSi));
    let binary = |e| Some((2, e, Format::BinarySi));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        s if s.starts_with(['e', 'E']) => s[1..].parse::<i32>().ok().map(|e| (10, e, Format::DecimalExponent)),
        _ => None,
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// Parses a quantity as upstream's `ParseQuantity` does.
    pub fn parse(text: &str) -> Result<Quantity, &'static str> {
        if text.is_empty() {
            return Err(FORMAT_ERROR);
        }
        let parts = split(text)?;
        let (base, exponent, format) = interpret(parts.suffix).ok_or(SUFFIX_ERROR)?;
        let digits = format!("{}{}", parts.num, parts.denom);
        let digits: i128 = digits.parse().unwrap_or(i128::MAX);
        let denom_len = i32::try_from(parts.denom.len()).unwrap_or(i32::MAX);
        let (mut mantissa, mut scale) = if base == 2 {
            let factor = 1i128
                .checked_shl(u32::try_from(exponent).unwrap_or(0))
                .unwrap_or(i128::MAX);
            (digits.saturating_mul(factor), -denom_len)
        } else {
            (digits, exponent.saturating_sub(denom_len))
        };
        if scale < -9 {
            // Upstream rounds anything finer than nano up (away from zero).
            let shift = u32::try_from(-9 - scale).unwrap_or(u32::MAX);
            let div = pow10(shift).unwrap_or(i128::MAX);
            let rounded = mantissa / div + i128::from(mantissa % div != 0);
            mantissa = rounded;
            scale = -9;
        }
        if parts.negative {
            mantissa = -mantissa;
        }
        let format = if format == Format::BinarySi && mantissa != 0 && scale < 0 && {
            let one = pow10(u32::try_from(-scale).unwrap_or(0)).unwrap_or(i128::MAX);
            mantissa.abs() < one
        } {
            Format::DecimalSi
        } else {
            format
        };
        Ok(Quantity {
            mantissa,
            scale,
            format,
            written: Written {
                text: text.to_string(),
                num: parts.num.to_string(),
                denom: parts.denom.to_string(),
                exponent,
                negative: parts.negative,
            },
        })
    }

    /// A quantity from its JSON form (a string or a number, as upstream accepts).
    pub fn from_json(value: &Value) -> Option<Result<Quantity, &'static str>> {
        match value {
            Value::String(s) => Some(Quantity::parse(s.trim())),
            Value::Number(n) => Some(Quantity::parse(&n.to_string())),
            _ => None,
        }
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is a whole number (upstream: `MilliValue() % 1000 == 0`).
    pub fn is_integer(&self) -> bool {
        if self.scale >= 0 {
            return true;
        }
        let Some(div) = pow10(u32::try_from(-self.scale).unwrap_or(u32::MAX)) else {
            return self.mantissa == 0;
        };
        if self.scale >= -3 {
            return self.mantissa % div == 0;
        }
        // MilliValue rounds up to whole millis first.
        let milli_div = pow10(u32::try_from(-self.scale - 3).unwrap_or(0)).unwrap_or(1);
        let millis = self.mantissa / milli_div + i128::from(self.mantissa % milli_div > 0);
        millis % 1000 == 0
    }

    /// The integer value (rounded up), as upstream's `Value()`.
    pub fn value(&self) -> i128 {
        if self.scale >= 0 {
            return self
                .mantissa
                .saturating_mul(pow10(u32::try_from(self.scale).unwrap_or(0)).unwrap_or(i128::MAX));
        }
        let div = pow10(u32::try_from(-self.scale).unwrap_or(0)).unwrap_or(i128::MAX);
        let q = self.mantissa / div;
        if self.mantissa % div > 0 { q + 1 } else { q }
    }

    /// The value in thousandths (rounded up), as upstream's `MilliValue()`.
    pub fn milli_value(&self) -> i128 {
        let scale = self.scale.saturating_add(3);
        if scale >= 0 {
            return self
                .mantissa
                .saturating_mul(pow10(u32::try_from(scale).unwrap_or(0)).unwrap_or(i128::MAX));
        }
        let div = pow10(u32::try_from(-scale).unwrap_or(0)).unwrap_or(i128::MAX);
        let q = self.mantissa / div;
        if self.mantissa % div > 0 { q + 1 } else { q }
    }

    fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.scale)
    }

    pub fn cmp(&self, other: &Quantity) -> Ordering {
        let scale = i64::from(self.scale.min(other.scale));
        let widen = |q: &Quantity| {
            let shift = u32::try_from(i64::from(q.scale) - scale).unwrap_or(u32::MAX);
            pow10(shift).and_then(|f| q.mantissa.checked_mul(f))
        };
        match (widen(self), widen(other)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_f64().partial_cmp(&other.as_f64()).unwrap_or(Ordering::Equal),
        }
    }

    /// The canonical form, as upstream's `Quantity.String()`.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        if self.format == Format::BinarySi
            && self.value().unsigned_abs() >= 1024
            && self.is_whole()
            && let Some(s) = self.binary_canonical()
        {
            return s;
        }
        self.decimal_canonical()
    }

    fn is_whole(&self) -> bool {
        self.scale >= 0 || pow10(u32::try_from(-self.scale).unwrap_or(u32::MAX)).is_some_and(|d| self.mantissa % d == 0)
    }

    fn binary_canonical(&self) -> Option<String> {
        let mut amount = self.value();
        let mut exp = 0;
        while amount % 1024 == 0 && exp < 6 {
            amount /= 1024;
            exp += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exp];
        Some(format!("{amount}{suffix}"))
    }

    fn decimal_canonical(&self) -> String {
        let mut amount = self.mantissa;
        let mut exp = i64::from(self.scale);
        while amount % 10 == 0 {
            amount /= 10;
            exp += 1;
        }
        match exp % 3 {
            1 | -2 => {
                amount = amount.saturating_mul(10);
                exp -= 1;
            }
            2 | -1 => {
                amount = amount.saturating_mul(100);
                exp -= 2;
            }
            _ => {}
        }
        let suffix = if self.format == Format::DecimalExponent {
            if exp == 0 { String::new() } else { format!("e{exp}") }
        } else {
            match exp {
                -9 => "n".to_string(),
                -6 => "u".to_string(),
                -3 => "m".to_string(),
                0 => String::new(),
                3 => "k".to_string(),
                6 => "M".to_string(),
                9 => "G".to_string(),
                12 => "T".to_string(),
                15 => "P".to_string(),
                18 => "E".to_string(),
                e => format!("e{e}"),
            }
        };
        format!("{amount}{suffix}")
    }

    /// The quantity as Go's `%#v` prints a `resource.Quantity` struct.
    pub fn go_repr(&self) -> String {
        let format = match self.format {
            Format::DecimalSi => "DecimalSI",
            Format::BinarySi => "BinarySI",
            Format::DecimalExponent => "DecimalExponent",
        };
        let w = &self.written;
        let shifted = format!("{}{}", w.num, w.denom);
        let (value, scale, cached) = match self.format {
            Format::BinarySi => {
                let num: i128 = w.num.parse().unwrap_or(0);
                let cached = w.exponent % 10 == 0 && (num & 0x07) != 0 && w.denom.is_empty();
                (self.mantissa, 0, cached)
            }
            _ => {
                let scale = w
                    .exponent
                    .saturating_sub(i32::try_from(w.denom.len()).unwrap_or(i32::MAX));
                let cached = scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0');
                let value: i128 = shifted.parse().unwrap_or(0);
                (if w.negative { -value } else { value }, scale, cached)
            }
        };
        let s = if cached { w.text.as_str() } else { "" };
        format!(
            "resource.Quantity{{i:resource.int64Amount{{value:{value}, scale:{scale}}}, d:resource.infDecAmount{{Dec:(*inf.Dec)(nil)}}, s:{}, Format:\"{format}\"}}",
            super::field::go_quote(s)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        Quantity::parse(s).unwrap().canonical()
    }

    #[test]
    fn canonical_forms_match_upstream() {
        assert_eq!(canon("1000m"), "1");
        assert_eq!(canon("500m"), "500m");
        assert_eq!(canon("1.5"), "1500m");
        assert_eq!(canon("0.1"), "100m");
        assert_eq!(canon("2000"), "2k");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("1Gi"), "1Gi");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("2048Ki"), "2Mi");
        assert_eq!(canon("1024"), "1024");
        assert_eq!(canon("0"), "0");
        assert_eq!(canon("-1"), "-1");
        assert!(Quantity::parse("1x").is_err());
        assert!(Quantity::parse("abc").is_err());
    }

    #[test]
    fn compares_across_formats() {
        let a = Quantity::parse("1Gi").unwrap();
        let b = Quantity::parse("1G").unwrap();
        assert_eq!(a.cmp(&b), Ordering::Greater);
        let c = Quantity::parse("1000m").unwrap();
        let d = Quantity::parse("1").unwrap();
        assert_eq!(c.cmp(&d), Ordering::Equal);
        assert!(!Quantity::parse("500m").unwrap().is_integer());
        assert!(Quantity::parse("2").unwrap().is_integer());
    }
}
