//! Resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`) as Kubernetes
//! writes them, read into exact thousandths so that CPU millicores and byte
//! counts come out without rounding surprises.

/// The quantity in thousandths of its unit: `"100m"` is 100, `"2"` is 2000,
/// `"1Ki"` is 1,024,000. `None` for text Kubernetes would refuse.
pub fn milli_value(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    // `1e3` is an exponent; a lone `E` is the exa suffix, `Ei` the exbi one.
    let exponent = match suffix.strip_prefix(['e', 'E']) {
        Some(exp) if !exp.is_empty() && suffix != "Ei" => Some(exp.parse::<i32>().ok()?),
        _ => None,
    };
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    // The value as an integer of all its digits, scaled by 10^-fraction.len().
    let mut value: i128 = format!("{whole}{fraction}").parse().ok()?;
    let (factor, decimal_exponent) = match suffix {
        _ if exponent.is_some() => (1, exponent.unwrap_or_default()),
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
        "Ti" => (1i128 << 40, 0),
        "Pi" => (1i128 << 50, 0),
        "Ei" => (1i128 << 60, 0),
        _ => return None,
    };
    value = value.checked_mul(factor)?;
    // Thousandths: three more decimal places.
    let shift = decimal_exponent + 3 - i32::try_from(fraction.len()).ok()?;
    let value = if shift >= 0 {
        value.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?
    } else {
        // Round up, as Kubernetes does when a quantity is finer than its scale.
        let divisor = 10i128.checked_pow(shift.unsigned_abs())?;
        (value + divisor - 1) / divisor
    };
    Some(if negative { -value } else { value })
}

/// The quantity in whole units, rounded up (`"1500m"` is 2, `"1Ki"` is 1024).
pub fn value(text: &str) -> Option<i128> {
    milli_value(text).map(|m| (m + 999).div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_read_as_millicores() {
        assert_eq!(milli_value("100m"), Some(100));
        assert_eq!(milli_value("0.5"), Some(500));
        assert_eq!(milli_value("2"), Some(2000));
        assert_eq!(milli_value(".1"), Some(100));
        assert_eq!(milli_value("1e3"), Some(1_000_000));
        assert_eq!(milli_value("0.0001"), Some(1), "rounded up");
    }

    #[test]
    fn memory_quantities_read_as_bytes() {
        assert_eq!(value("128Mi"), Some(128 << 20));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(value("1.5Gi"), Some(3 << 29));
        assert_eq!(value("64974Ki"), Some(64974 * 1024));
        assert_eq!(value("1500m"), Some(2));
        assert_eq!(value("1Ei"), Some(1 << 60));
    }

    #[test]
    fn nonsense_is_refused() {
        assert_eq!(value("2E"), Some(2_000_000_000_000_000_000));
        for bad in ["", "abc", "1X", "1.2.3", "Mi", "--1", "1e"] {
            assert_eq!(milli_value(bad), None, "{bad}");
        }
    }
}
