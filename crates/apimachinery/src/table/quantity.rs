//! Resource quantities as upstream prints them (`resource.Quantity.String()`):
//! in canonical form, so `1024Mi` prints as `1Gi`, `0.5` as `500m` and
//! `1.5Gi` as `1536Mi`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// A parsed quantity: `±mantissa × 10^scale`.
#[derive(Debug, Clone, Copy)]
struct Quantity {
    negative: bool,
    mantissa: i128,
    scale: i32,
    format: Format,
}

/// A quantity field as upstream prints it: canonical, `0` when absent, and the
/// text as given when it is not a quantity Capstan can canonicalize.
pub(crate) fn format(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => return "0".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    canonical(text.trim()).unwrap_or(text)
}

/// Like [`format`], but a pointer field that is absent prints as Go's `<nil>`.
pub(crate) fn format_ptr(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<nil>".into(),
        some => format(some),
    }
}

/// The canonical form of a quantity string, `None` if it does not parse (or
/// is too large for this implementation).
pub(crate) fn canonical(text: &str) -> Option<String> {
    let q = parse(text)?;
    let (number, suffix) = match q.format {
        Format::BinarySi => binary(q).or_else(|| {
            decimal(Quantity {
                format: Format::DecimalSi,
                ..q
            })
        })?,
        _ => decimal(q)?,
    };
    let sign = if q.negative && number != "0" { "-" } else { "" };
    Some(format!("{sign}{number}{suffix}"))
}

fn parse(text: &str) -> Option<Quantity> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_digits, rest) = rest.split_at(int_len);
    let (frac_digits, suffix) = match rest.strip_prefix('.') {
        Some(after) => after.split_at(after.bytes().take_while(u8::is_ascii_digit).count()),
        None => ("", rest),
    };
    let (base, exponent, format) = suffix_of(suffix)?;
    let mut mantissa = digits(int_digits)?;
    for d in frac_digits.bytes() {
        mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    let frac_len = i32::try_from(frac_digits.len()).ok()?;
    let (mantissa, scale) = if base == 2 {
        (
            mantissa.checked_mul(1i128.checked_shl(u32::try_from(exponent).ok()?)?)?,
            -frac_len,
        )
    } else {
        (mantissa, exponent.checked_sub(frac_len)?)
    };
    let q = Quantity {
        negative,
        mantissa,
        scale,
        format,
    };
    Some(bound(round_to_nano(q)?))
}

fn digits(text: &str) -> Option<i128> {
    text.bytes()
        .try_fold(0i128, |acc, d| acc.checked_mul(10)?.checked_add(i128::from(d - b'0')))
}

/// (base, exponent, format) of a suffix: `Ki`..`Ei`, `n`..`E`, or `e<N>`/`E<N>`.
fn suffix_of(suffix: &str) -> Option<(u32, i32, Format)> {
    const DECIMAL: &[(&str, i32)] = &[
        ("", 0),
        ("n", -9),
        ("u", -6),
        ("m", -3),
        ("k", 3),
        ("M", 6),
        ("G", 9),
        ("T", 12),
        ("P", 15),
        ("E", 18),
    ];
    const BINARY: &[(&str, i32)] = &[("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40), ("Pi", 50), ("Ei", 60)];
    if let Some((_, e)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        return Some((10, *e, Format::DecimalSi));
    }
    if let Some((_, e)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        return Some((2, *e, Format::BinarySi));
    }
    let exponent = suffix.strip_prefix(['e', 'E'])?;
    let valid = exponent.trim_start_matches(['+', '-']);
    if valid.is_empty() || !valid.bytes().all(|b| b.is_ascii_digit()) || exponent.len() - valid.len() > 1 {
        return None;
    }
    Some((10, exponent.parse().ok()?, Format::DecimalExponent))
}

/// Upstream rounds a non-zero amount up (away from zero) to whole nano units.
fn round_to_nano(q: Quantity) -> Option<Quantity> {
    if q.mantissa == 0 || q.scale >= -9 {
        return Some(q);
    }
    let divisor = 10i128.checked_pow(u32::try_from(-9 - q.scale).ok()?)?;
    let rounded = q.mantissa / divisor + i128::from(q.mantissa % divisor != 0);
    Some(Quantity {
        mantissa: rounded,
        scale: -9,
        ..q
    })
}

/// Binary quantities are capped at the largest int64, and ones below 1024
/// are shown in decimal.
fn bound(mut q: Quantity) -> Quantity {
    if q.format != Format::BinarySi {
        return q;
    }
    match integer(q) {
        Some(v) if v > i128::from(i64::MAX) => {
            q.mantissa = i128::from(i64::MAX);
            q.scale = 0;
        }
        Some(v) if v < 1024 => q.format = Format::DecimalSi,
        None if below_1024(q) => q.format = Format::DecimalSi,
        _ => {}
    }
    q
}

fn below_1024(q: Quantity) -> bool {
    let whole = 10i128.checked_pow(q.scale.unsigned_abs()).map_or(0, |d| q.mantissa / d);
    whole < 1024
}

/// The absolute value as an integer, if it is one.
fn integer(q: Quantity) -> Option<i128> {
    let factor = 10i128.checked_pow(q.scale.unsigned_abs())?;
    if q.scale >= 0 {
        q.mantissa.checked_mul(factor)
    } else {
        (q.mantissa % factor == 0).then_some(q.mantissa / factor)
    }
}

/// Canonical binary form: an integer times the largest power of 1024 (`Ki`..`Ei`).
fn binary(q: Quantity) -> Option<(String, String)> {
    let mut amount = integer(q)?;
    let mut power = 0;
    while amount != 0 && amount % 1024 == 0 && power < 6 {
        amount /= 1024;
        power += 1;
    }
    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
    Some((amount.to_string(), suffix.to_string()))
}

/// Canonical decimal form: all factors of ten moved into the exponent, then
/// the exponent lowered to a multiple of three.
fn decimal(q: Quantity) -> Option<(String, String)> {
    let (mut amount, mut exponent) = (q.mantissa, q.scale);
    while amount != 0 && amount % 10 == 0 {
        amount /= 10;
        exponent = exponent.checked_add(1)?;
    }
    while exponent % 3 != 0 {
        amount = amount.checked_mul(10)?;
        exponent -= 1;
    }
    let suffix = match q.format {
        Format::DecimalExponent if exponent == 0 => String::new(),
        Format::DecimalExponent => format!("e{exponent}"),
        _ => decimal_suffix(exponent)?.to_string(),
    };
    Some((amount.to_string(), suffix))
}

fn decimal_suffix(exponent: i32) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512Ki", "512Ki"),
            ("1000Mi", "1000Mi"),
            ("100", "100"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("0.5", "500m"),
            ("500m", "500m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("10G", "10G"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("12e6", "12e6"),
            ("0", "0"),
            ("0Mi", "0"),
            ("-100m", "-100m"),
            ("+5", "5"),
            ("1E", "1E"),
            ("0.1n", "1n"),
            ("1.0001Ki", "1024102400u"),
            ("100Ki", "100Ki"),
        ] {
            assert_eq!(canonical(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn junk_is_not_a_quantity() {
        for input in ["", "abc", "1Q", "1e", "1.2.3", "1K"] {
            assert_eq!(canonical(input), None, "{input:?}");
        }
    }

    #[test]
    fn fields_print_zero_nil_or_as_given() {
        assert_eq!(format(None), "0");
        assert_eq!(format_ptr(None), "<nil>");
        assert_eq!(format(Some(&json!(5))), "5");
        assert_eq!(format(Some(&json!("2048Ki"))), "2Mi");
        assert_eq!(format(Some(&json!("lots"))), "lots");
    }
}
