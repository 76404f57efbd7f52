//! The integer values of resource quantities (`128Mi`, `500m`, `1.5`), as
//! upstream's `Quantity.Value()` and `MilliValue()` (rounded up).

/// The value in thousandths, rounded up: `500m` → 500, `2` → 2000.
pub fn milli_value(text: &str) -> Option<i64> {
    scaled(text, 3)
}

/// The integer value, rounded up: `128Mi` → 134217728, `100m` → 1.
pub fn value(text: &str) -> Option<i64> {
    scaled(text, 0)
}

/// `text × 10^digits`, rounded up.
fn scaled(text: &str, digits: i32) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (binary, exponent): (i128, i32) = match suffix {
        "" => (1, 0),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (1, s[1..].parse().ok()?),
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let negative = whole.starts_with('-');
    let digits_text = format!("{}{fraction}", whole.trim_start_matches(['+', '-']));
    let mut mantissa: i128 = if digits_text.is_empty() {
        0
    } else {
        digits_text.parse().ok()?
    };
    mantissa *= binary;
    let scale = exponent + digits - fraction.len() as i32;
    let value = if scale >= 0 {
        mantissa.checked_mul(10i128.checked_pow(scale as u32)?)?
    } else {
        let div = 10i128.checked_pow((-scale) as u32)?;
        mantissa / div + i128::from(mantissa % div > 0)
    };
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_have_upstreams_values() {
        assert_eq!(milli_value("500m"), Some(500));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value("0.1"), Some(100));
        assert_eq!(value("128Mi"), Some(134_217_728));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(value("100m"), Some(1));
        assert_eq!(value("1.5Gi"), Some(1_610_612_736));
        assert_eq!(value("1e3"), Some(1000));
        assert_eq!(value("12x"), None);
    }
}
