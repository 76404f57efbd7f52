//! Resource quantities (`resource.Quantity`) as the scheduler needs them:
//! integers, rounded up like upstream's `Value()` and `MilliValue()`, so
//! that `0.5m` CPU still counts as one millicore and never as zero.

/// A quantity as an exact rational: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

/// The value in base units (bytes, pods, devices), rounded up; `None` when malformed.
pub fn value(text: &str) -> Option<i64> {
    parse(text).map(|p| scaled(p, 0))
}

/// The value in thousandths of a unit (CPU millicores), rounded up; `None` when malformed.
pub fn milli_value(text: &str) -> Option<i64> {
    parse(text).map(|p| scaled(p, 3))
}

fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let (exp10, exp2) = suffix_exponents(suffix)?;
    let mut mantissa: i128 = 0;
    let mut digits_exp = 0i32;
    for (i, c) in whole.bytes().chain(fraction.bytes()).enumerate() {
        if mantissa > i128::MAX / 100 {
            // Further digits cannot change a value that already saturates i64 unless they are fraction digits.
            if i >= whole.len() {
                break;
            }
            digits_exp += 1;
            continue;
        }
        mantissa = mantissa * 10 + i128::from(c - b'0');
        if i >= whole.len() {
            digits_exp -= 1;
        }
    }
    Some(Parsed {
        negative,
        mantissa,
        exp10: exp10 + digits_exp,
        exp2,
    })
}

/// Upstream's suffixes: binary (`Ki`…`Ei`), decimal (`n`…`E`) and exponent (`e3`, `E-2`).
fn suffix_exponents(suffix: &str) -> Option<(i32, u32)> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some((e, 0));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Some((0, e));
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let value: i32 = exponent.parse().ok()?;
    (-100..=100).contains(&value).then_some((value, 0))
}

/// `p × 10^extra`, rounded up (toward +∞) and saturated to `i64`.
fn scaled(p: Parsed, extra: i32) -> i64 {
    let exp10 = p.exp10 + extra;
    let signed = |v: i128| if p.negative { -v } else { v };
    let numerator = p.mantissa.checked_mul(1i128 << p.exp2.min(100));
    let Some(mut numerator) = numerator.filter(|_| p.exp2 < 100) else {
        return saturate(signed(i128::MAX));
    };
    if exp10 >= 0 {
        for _ in 0..exp10 {
            match numerator.checked_mul(10) {
                Some(v) => numerator = v,
                None => return saturate(signed(i128::MAX)),
            }
        }
        return saturate(signed(numerator));
    }
    let mut denominator: i128 = 1;
    for _ in 0..(-exp10) {
        match denominator.checked_mul(10) {
            Some(d) => denominator = d,
            None => return if p.negative || numerator == 0 { 0 } else { 1 },
        }
    }
    let quotient = numerator / denominator;
    let rounded = if p.negative {
        -quotient
    } else if numerator % denominator != 0 {
        quotient + 1
    } else {
        quotient
    };
    saturate(rounded)
}

fn saturate(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values() {
        let cases = [
            ("1", Some(1000)),
            ("100m", Some(100)),
            ("0.5", Some(500)),
            ("1.5", Some(1500)),
            ("0.5m", Some(1)),
            ("250u", Some(1)),
            ("2k", Some(2_000_000)),
            ("1e3", Some(1_000_000)),
            ("0", Some(0)),
            ("-1", Some(-1000)),
            ("+2", Some(2000)),
            ("", None),
            ("abc", None),
            ("1Q", None),
            ("1.2.3", None),
            (".5", Some(500)),
        ];
        for (text, want) in cases {
            assert_eq!(milli_value(text), want, "{text}");
        }
    }

    #[test]
    fn values() {
        let cases = [
            ("1Gi", Some(1 << 30)),
            ("128Mi", Some(128 << 20)),
            ("1G", Some(1_000_000_000)),
            ("1.5Ki", Some(1536)),
            ("100m", Some(1)),
            ("110", Some(110)),
            ("1E", Some(1_000_000_000_000_000_000)),
            ("16Ei", Some(i64::MAX)),
            ("1e-2", Some(1)),
            ("Mi", None),
        ];
        for (text, want) in cases {
            assert_eq!(value(text), want, "{text}");
        }
    }
}
