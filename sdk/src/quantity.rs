//! Kubernetes resource quantities (`100m`, `1.5Gi`, `1e3`): a small exact
//! parser, comparison, and the canonical form Kubernetes prints.
//!
//! A value is kept as sign, integer mantissa and power of ten, rounded up
//! to nano units as Kubernetes rounds. Mantissas are `u128`: quantities
//! beyond 38 significant digits are rejected rather than approximated.

use std::cmp::Ordering;
use std::fmt;

/// Why a string is not a quantity. The messages are Kubernetes'.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the shape of a quantity.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// The number part is missing or malformed.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    /// The suffix is not one Kubernetes knows.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value has more significant digits than this parser keeps.
    #[error("quantity is too large to represent")]
    OutOfRange,
}

/// How a quantity is printed, chosen by the suffix it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantityFormat {
    /// `m`, ``, `k`, `M`, ... (powers of 1000).
    DecimalSi,
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySi,
    /// `e3`, `E-2`.
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^exponent`, negated if `negative`, the
/// mantissa without trailing zeros (zero is `0 × 10^0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedQuantity {
    negative: bool,
    mantissa: u128,
    exponent: i32,
    format: QuantityFormat,
}

/// The smallest unit Kubernetes keeps; finer values round up to it.
const NANO_EXPONENT: i32 = -9;
const MAX_DIGITS: usize = 38;

impl ParsedQuantity {
    /// Parses a quantity as Kubernetes' `ParseQuantity` does (surrounding
    /// whitespace is ignored, as when decoding JSON).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(QuantityError::Format);
        }
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let int_end = rest
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let (integer, rest) = rest.split_at(int_end);
        let (fraction, rest) = match rest.strip_prefix('.') {
            Some(after) => {
                let end = after
                    .bytes()
                    .position(|b| !b.is_ascii_digit())
                    .unwrap_or(after.len());
                after.split_at(end)
            }
            None => ("", rest),
        };
        let suffix = rest;
        check_suffix_shape(suffix)?;
        if integer.is_empty() && fraction.is_empty() {
            return Err(QuantityError::Numeric);
        }
        let (base_exponent, binary_power, format) = interpret_suffix(suffix)?;

        // Significant digits and the power of ten of the last one.
        let mut digits: Vec<u8> = integer
            .bytes()
            .chain(fraction.bytes())
            .map(|b| b - b'0')
            .collect();
        let mut exponent = i64::from(base_exponent) - fraction.len() as i64;
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        if digits.is_empty() {
            return Ok(Self::zero(format));
        }

        let mut mantissa;
        if binary_power == 0 {
            // Round up to nano before building the integer.
            if exponent < i64::from(NANO_EXPONENT) {
                let drop = (i64::from(NANO_EXPONENT) - exponent) as usize;
                let keep = digits.len().saturating_sub(drop);
                digits.truncate(keep);
                exponent = i64::from(NANO_EXPONENT);
                mantissa = digits_to_u128(&digits)?
                    .checked_add(1)
                    .ok_or(QuantityError::OutOfRange)?;
            } else {
                mantissa = digits_to_u128(&digits)?;
            }
        } else {
            mantissa = digits_to_u128(&digits)?;
            mantissa = mantissa
                .checked_mul(1u128 << binary_power)
                .ok_or(QuantityError::OutOfRange)?;
            (mantissa, exponent) = normalize(mantissa, exponent);
            if exponent < i64::from(NANO_EXPONENT) {
                let divisor = pow10((i64::from(NANO_EXPONENT) - exponent) as u32)
                    .ok_or(QuantityError::OutOfRange)?;
                mantissa = mantissa.div_ceil(divisor);
                exponent = i64::from(NANO_EXPONENT);
            }
        }
        let (mantissa, exponent) = normalize(mantissa, exponent);
        let exponent = i32::try_from(exponent).map_err(|_| QuantityError::OutOfRange)?;
        Ok(Self {
            negative,
            mantissa,
            exponent,
            format,
        })
    }

    fn zero(format: QuantityFormat) -> Self {
        Self {
            negative: false,
            mantissa: 0,
            exponent: 0,
            format,
        }
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative && self.mantissa != 0
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is a whole number (what Kubernetes checks with
    /// `MilliValue() % 1000 == 0`).
    pub fn is_integer(&self) -> bool {
        self.mantissa == 0 || self.exponent >= 0
    }

    /// The value in thousandths, rounded up (away from zero for negative
    /// values, as Kubernetes' `MilliValue` rounds), saturating at the `i64`
    /// range: `100m` → 100, `1` → 1000, `1Ki` → 1,024,000.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    /// The value as a whole number, rounded up (Kubernetes' `Value`),
    /// saturating at the `i64` range: `1Gi` → 1,073,741,824, `100m` → 1.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// `value × 10^scale`, rounded up in magnitude, saturating.
    fn scaled(&self, scale: i32) -> i64 {
        if self.mantissa == 0 {
            return 0;
        }
        let exponent = self.exponent + scale;
        let magnitude: u128 = if exponent >= 0 {
            pow10(exponent as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(u128::MAX)
        } else {
            match pow10(exponent.unsigned_abs()) {
                Some(p) => self.mantissa.div_ceil(p),
                None => 1,
            }
        };
        let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
        if self.negative { -magnitude } else { magnitude }
    }

    /// The format the quantity was written in.
    pub fn format(&self) -> QuantityFormat {
        self.format
    }

    /// The canonical form Kubernetes prints (`Quantity.String()`):
    /// `1000m` → `1`, `1.5Gi` → `1536Mi`, `0.5` → `500m`.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_owned();
        }
        let sign = if self.negative { "-" } else { "" };
        if self.format == QuantityFormat::BinarySi
            && let Some(binary) = self.binary_form()
        {
            return format!("{sign}{binary}");
        }
        // Decimal: bring the exponent down to a multiple of three.
        let shift = self.exponent.rem_euclid(3);
        let Some(mantissa) = pow10(shift as u32).and_then(|p| self.mantissa.checked_mul(p)) else {
            return format!("{sign}{}e{}", self.mantissa, self.exponent);
        };
        let exponent = self.exponent - shift;
        let suffix = match (self.format, exponent) {
            (QuantityFormat::DecimalExponent, 0) => String::new(),
            (QuantityFormat::DecimalExponent, e) => format!("e{e}"),
            (_, -9) => "n".to_owned(),
            (_, -6) => "u".to_owned(),
            (_, -3) => "m".to_owned(),
            (_, 0) => String::new(),
            (_, 3) => "k".to_owned(),
            (_, 6) => "M".to_owned(),
            (_, 9) => "G".to_owned(),
            (_, 12) => "T".to_owned(),
            (_, 15) => "P".to_owned(),
            (_, 18) => "E".to_owned(),
            (_, e) => format!("e{e}"),
        };
        format!("{sign}{mantissa}{suffix}")
    }

    /// `Ki`…`Ei` form of a whole value of at least 1024, if exact.
    fn binary_form(&self) -> Option<String> {
        if self.exponent < 0 {
            return None;
        }
        let mut value = self.mantissa.checked_mul(pow10(self.exponent as u32)?)?;
        if value < 1024 {
            return None;
        }
        let mut power = 0;
        while power < 6 && value.is_multiple_of(1024) {
            value /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
        Some(format!("{value}{suffix}"))
    }
}

impl Ord for ParsedQuantity {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.is_negative(), other.is_negative()) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => compare_magnitude(self, other),
            (true, true) => compare_magnitude(other, self),
        }
    }
}

impl PartialOrd for ParsedQuantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ParsedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

fn compare_magnitude(a: &ParsedQuantity, b: &ParsedQuantity) -> Ordering {
    match (a.mantissa == 0, b.mantissa == 0) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    // Order of magnitude first: number of digits plus exponent.
    let order = |q: &ParsedQuantity| i64::from(q.exponent) + q.mantissa.to_string().len() as i64;
    match order(a).cmp(&order(b)) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    // Same order: align to the smaller exponent; both then fit in 38 digits.
    let low = a.exponent.min(b.exponent);
    let scale = |q: &ParsedQuantity| {
        pow10((q.exponent - low) as u32).and_then(|p| q.mantissa.checked_mul(p))
    };
    match (scale(a), scale(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => Ordering::Equal,
    }
}

fn pow10(power: u32) -> Option<u128> {
    10u128.checked_pow(power)
}

fn digits_to_u128(digits: &[u8]) -> Result<u128, QuantityError> {
    if digits.len() > MAX_DIGITS {
        return Err(QuantityError::OutOfRange);
    }
    Ok(digits
        .iter()
        .fold(0u128, |acc, d| acc * 10 + u128::from(*d)))
}

fn normalize(mut mantissa: u128, mut exponent: i64) -> (u128, i64) {
    if mantissa == 0 {
        return (0, 0);
    }
    while mantissa.is_multiple_of(10) {
        mantissa /= 10;
        exponent += 1;
    }
    (mantissa, exponent)
}

/// The suffix must be letters from `eEinumkKMGTP`, then an optional sign and
/// digits (Kubernetes' `parseQuantityString`).
fn check_suffix_shape(suffix: &str) -> Result<(), QuantityError> {
    let letters = suffix
        .bytes()
        .take_while(|b| b"eEinumkKMGTP".contains(b))
        .count();
    let rest = &suffix[letters..];
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(QuantityError::Format)
    }
}

/// `(power of ten, power of two, format)` of a suffix.
fn interpret_suffix(suffix: &str) -> Result<(i32, u32, QuantityFormat), QuantityError> {
    let decimal = |e| Ok((e, 0, QuantityFormat::DecimalSi));
    let binary = |p| Ok((0, p, QuantityFormat::BinarySi));
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
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let exponent: i32 = s[1..].parse().map_err(|_| QuantityError::Suffix)?;
            Ok((exponent, 0, QuantityFormat::DecimalExponent))
        }
        _ => Err(QuantityError::Suffix),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn milli_and_whole_values_round_up() {
        let cases = [
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("1.5", 1500, 2),
            ("1Ki", 1_024_000, 1024),
            ("1Gi", 1_073_741_824_000, 1_073_741_824),
            ("1n", 1, 1),
            ("0", 0, 0),
            ("-1.5", -1500, -2),
            ("2e3", 2_000_000, 2000),
            ("1E", i64::MAX, 1_000_000_000_000_000_000),
        ];
        for (text, milli, whole) in cases {
            let q = ParsedQuantity::parse(text).unwrap();
            assert_eq!(q.milli_value(), milli, "{text} milli");
            assert_eq!(q.value(), whole, "{text} whole");
        }
    }

    use super::*;

    /// `input` → canonical form, or the error.
    fn check(input: &str, expected: Result<&str, QuantityError>) {
        let parsed = ParsedQuantity::parse(input).map(|q| q.canonical());
        assert_eq!(
            parsed.as_deref().map_err(Clone::clone),
            expected,
            "{input:?}"
        );
    }

    #[test]
    fn parses_and_canonicalizes_like_kubernetes() {
        // Decimal SI.
        check("0", Ok("0"));
        check("1", Ok("1"));
        check("100m", Ok("100m"));
        check("1000m", Ok("1"));
        check("1500m", Ok("1500m"));
        check("0.5", Ok("500m"));
        check(".5", Ok("500m"));
        check("1.", Ok("1"));
        check("1.5", Ok("1500m"));
        check("1000", Ok("1k"));
        check("1024", Ok("1024"));
        check("128974848", Ok("128974848"));
        check("129e6", Ok("129e6"));
        check("129M", Ok("129M"));
        check("5G", Ok("5G"));
        check("2E", Ok("2E"));
        check("1n", Ok("1n"));
        check("1u", Ok("1u"));
        check("0.0000000001", Ok("1n"));
        check("1.0000000001", Ok("1000000001n"));
        check("-1", Ok("-1"));
        check("-0.5", Ok("-500m"));
        check("+2", Ok("2"));
        check(" 2 ", Ok("2"));
        check("0.000", Ok("0"));
        // Binary SI.
        check("1Ki", Ok("1Ki"));
        check("1024Ki", Ok("1Mi"));
        check("1.5Gi", Ok("1536Mi"));
        check("0.5Gi", Ok("512Mi"));
        check("123Mi", Ok("123Mi"));
        check("0.5Ki", Ok("512"));
        check("0.1Ki", Ok("102400m"));
        check("1Ei", Ok("1Ei"));
        check("1025Ki", Ok("1025Ki"));
        // Exponents.
        check("1e3", Ok("1e3"));
        check("1E3", Ok("1e3"));
        check("12e2", Ok("1200"));
        check("1e-3", Ok("1e-3"));
        check("100e-3", Ok("100e-3"));
        // Errors.
        check("", Err(QuantityError::Format));
        check("abc", Err(QuantityError::Format));
        check("1 Gi", Err(QuantityError::Format));
        check("1.2.3", Err(QuantityError::Format));
        check("Gi", Err(QuantityError::Numeric));
        check("1K", Err(QuantityError::Suffix));
        check("1Gb", Err(QuantityError::Format));
        check("1e", Err(QuantityError::Suffix));
        check("1i", Err(QuantityError::Suffix));
        check(".", Err(QuantityError::Numeric));
        check("-", Err(QuantityError::Numeric));
        check("m", Err(QuantityError::Numeric));
        check(&"9".repeat(40), Err(QuantityError::OutOfRange));
    }

    #[test]
    fn compares_values_across_formats() {
        let q = |s: &str| ParsedQuantity::parse(s).unwrap();
        let cases = [
            ("1", "1000m", Ordering::Equal),
            ("500m", "0.5", Ordering::Equal),
            ("1Ki", "1024", Ordering::Equal),
            ("1Gi", "1G", Ordering::Greater),
            ("2", "1", Ordering::Greater),
            ("100m", "1", Ordering::Less),
            ("-1", "0", Ordering::Less),
            ("-2", "-1", Ordering::Less),
            ("0", "-0", Ordering::Equal),
            ("1e3", "1k", Ordering::Equal),
            ("999", "1k", Ordering::Less),
            ("1n", "0", Ordering::Greater),
            ("128Mi", "134217728", Ordering::Equal),
        ];
        for (a, b, expected) in cases {
            assert_eq!(q(a).cmp(&q(b)), expected, "{a} vs {b}");
        }
        assert!(q("-1").is_negative());
        assert!(!q("-0").is_negative());
        assert!(q("2").is_integer());
        assert!(q("2k").is_integer());
        assert!(!q("1500m").is_integer());
        assert!(q("0").is_zero());
    }
}
