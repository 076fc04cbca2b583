//! DynamoDB numbers: decimals of up to 38 significant digits, magnitudes from
//! 1E-130 to below 1E+126, compared as numbers and stored normalized (leading
//! and trailing zeros trimmed, no exponent), as DynamoDB returns them.

use std::cmp::Ordering;
use std::fmt;

/// Significant digits a number may have.
const MAX_DIGITS: usize = 38;
/// The largest exponent (value `0.d… × 10^exponent`) below 1E+126.
const MAX_EXPONENT: i32 = 126;
/// The smallest exponent of a non-zero number (1E-130 is `0.1 × 10^-129`).
const MIN_EXPONENT: i32 = -129;

/// A DynamoDB number: `0.d₁d₂…dₙ × 10^exponent`, with `d₁` and `dₙ` not zero
/// (zero has no digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number {
    negative: bool,
    digits: Vec<u8>,
    exponent: i32,
}

/// Why a text is not a storable number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number at all.
    Invalid,
    /// More than 38 significant digits.
    Precision,
    /// Too large or too small in magnitude.
    Range,
}

impl NumberError {
    /// DynamoDB's message for it.
    pub fn message(&self) -> &'static str {
        match self {
            NumberError::Invalid => "A value provided cannot be converted into a number",
            NumberError::Precision => {
                "Attempting to store more than 38 significant digits in a Number"
            }
            NumberError::Range => {
                "Number overflow. Attempting to store a number with magnitude larger than supported range"
            }
        }
    }
}

impl Number {
    /// Zero.
    pub fn zero() -> Self {
        Number {
            negative: false,
            digits: Vec::new(),
            exponent: 0,
        }
    }

    /// Parses DynamoDB's number text (`-12.5`, `1e3`, `+0.25E-2`).
    ///
    /// # Errors
    /// [`NumberError`] when the text is not a number DynamoDB stores.
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => {
                let exponent: i32 = rest[at + 1..].parse().map_err(|_| NumberError::Invalid)?;
                (&rest[..at], exponent)
            }
            None => (rest, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) {
            return Err(NumberError::Invalid);
        }
        let digits: Vec<u8> = whole
            .bytes()
            .chain(fraction.bytes())
            .map(|b| b - b'0')
            .collect();
        let point =
            i64::try_from(whole.len()).map_err(|_| NumberError::Range)? + i64::from(exponent);
        Self::from_parts(negative, digits, point)
    }

    /// A number from digits (most significant first) and the position of the
    /// decimal point after the first `point` digits.
    fn from_parts(
        negative: bool,
        mut digits: Vec<u8>,
        mut point: i64,
    ) -> Result<Self, NumberError> {
        let leading = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..leading);
        point -= leading as i64;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Ok(Number::zero());
        }
        if digits.len() > MAX_DIGITS {
            return Err(NumberError::Precision);
        }
        if point > i64::from(MAX_EXPONENT) || point < i64::from(MIN_EXPONENT) {
            return Err(NumberError::Range);
        }
        Ok(Number {
            negative,
            digits,
            exponent: point as i32,
        })
    }

    /// An integer (exact, even beyond 38 digits).
    pub fn from_integer(value: i128) -> Self {
        let mut digits: Vec<u8> = value
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        let exponent = digits.len() as i32;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        Number {
            negative: value < 0,
            exponent: if digits.is_empty() { 0 } else { exponent },
            digits,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Its significant digits.
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The sum `self + other`.
    ///
    /// # Errors
    /// [`NumberError`] when the sum is not storable (precision or range).
    pub fn add(&self, other: &Number) -> Result<Number, NumberError> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Both as integers scaled by 10^low: digits, then (exponent - len) zeros.
        let low = self.lowest_power().min(other.lowest_power());
        let a = self.scaled(low);
        let b = other.scaled(low);
        let (negative, magnitude) = if self.negative == other.negative {
            (self.negative, add_magnitudes(&a, &b))
        } else {
            match cmp_magnitudes(&a, &b) {
                Ordering::Less => (other.negative, sub_magnitudes(&b, &a)),
                _ => (self.negative, sub_magnitudes(&a, &b)),
            }
        };
        // `magnitude` is little-endian; the point sits `-low` digits from the right.
        let digits: Vec<u8> = magnitude.into_iter().rev().collect();
        let point = digits.len() as i64 + low;
        Self::from_parts(negative, digits, point)
    }

    /// The difference `self - other`.
    ///
    /// # Errors
    /// [`NumberError`] when the difference is not storable.
    pub fn sub(&self, other: &Number) -> Result<Number, NumberError> {
        let mut negated = other.clone();
        negated.negative = !negated.negative && !negated.is_zero();
        self.add(&negated)
    }

    /// The power of ten of its last digit.
    fn lowest_power(&self) -> i64 {
        i64::from(self.exponent) - self.digits.len() as i64
    }

    /// Its digits as a little-endian integer scaled so the last digit has power `low`.
    fn scaled(&self, low: i64) -> Vec<u8> {
        let zeros = usize::try_from(self.lowest_power() - low).unwrap_or(0);
        let mut out = vec![0; zeros];
        out.extend(self.digits.iter().rev());
        out
    }
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let sum = a.get(i).unwrap_or(&0) + b.get(i).unwrap_or(&0) + carry;
        out.push(sum % 10);
        carry = sum / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// `a - b` for `a >= b` (little-endian digits).
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0;
    for (i, digit) in a.iter().enumerate() {
        let mut value = i16::from(*digit) - i16::from(*b.get(i).unwrap_or(&0)) - borrow;
        borrow = i16::from(value < 0);
        if value < 0 {
            value += 10;
        }
        out.push(value as u8);
    }
    out
}

fn cmp_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |x: &[u8]| x.len() - x.iter().rev().take_while(|d| **d == 0).count();
    let (la, lb) = (trim(a), trim(b));
    la.cmp(&lb)
        .then_with(|| a[..la].iter().rev().cmp(b[..lb].iter().rev()))
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        let class = |n: &Number| match (n.is_zero(), n.negative) {
            (true, _) => 1,
            (false, true) => 0,
            (false, false) => 2,
        };
        let by_class = class(self).cmp(&class(other));
        if by_class != Ordering::Equal || self.is_zero() {
            return by_class;
        }
        let magnitude = self
            .exponent
            .cmp(&other.exponent)
            .then_with(|| self.digits.cmp(&other.digits));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Number {
    /// Plain decimal notation, as DynamoDB returns numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if self.negative { "-" } else { "" };
        let len = digits.len() as i32;
        let point = self.exponent;
        if point <= 0 {
            write!(f, "{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if point < len {
            let (whole, fraction) = digits.split_at(point as usize);
            write!(f, "{sign}{whole}.{fraction}")
        } else {
            write!(f, "{sign}{digits}{}", "0".repeat((point - len) as usize))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        Number::parse(text).unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        for (text, shown) in [
            ("0", "0"),
            ("-0", "0"),
            ("007", "7"),
            ("1.50", "1.5"),
            ("1e3", "1000"),
            ("+2.5E-3", "0.0025"),
            ("-12.340", "-12.34"),
            (".5", "0.5"),
            ("5.", "5"),
        ] {
            assert_eq!(n(text).to_string(), shown, "{text}");
        }
        for bad in ["", "-", "abc", "1.2.3", "1e", "--1", " 1", "0x10", "1e+"] {
            assert_eq!(Number::parse(bad), Err(NumberError::Invalid), "{bad:?}");
        }
        assert_eq!(Number::parse(&"1".repeat(39)), Err(NumberError::Precision));
        assert_eq!(Number::parse("1e126"), Err(NumberError::Range));
        assert_eq!(Number::parse("1e-131"), Err(NumberError::Range));
        assert!(Number::parse("9.9e125").is_ok() && Number::parse("1e-130").is_ok());
    }

    #[test]
    fn compares_as_numbers() {
        let mut numbers: Vec<Number> = ["10", "9", "-1", "0", "-10", "0.5", "1e2", "-0.5", "99.99"]
            .iter()
            .map(|t| n(t))
            .collect();
        numbers.sort();
        let shown: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["-10", "-1", "-0.5", "0", "0.5", "9", "10", "99.99", "100"]
        );
        assert_eq!(n("1.0"), n("1"));
        assert_eq!(Number::from_integer(-1200), n("-1.2e3"));
        assert_eq!(Number::from_integer(0), n("0"));
    }

    #[test]
    fn adds_and_subtracts_exactly() {
        for (a, b, sum) in [
            ("1", "2", "3"),
            ("0.1", "0.2", "0.3"),
            ("999", "1", "1000"),
            ("5", "-7", "-2"),
            ("-5", "7", "2"),
            ("1e20", "1", "100000000000000000001"),
            ("3", "-3", "0"),
            ("0", "-4.5", "-4.5"),
        ] {
            assert_eq!(n(a).add(&n(b)).unwrap().to_string(), sum, "{a} + {b}");
        }
        assert_eq!(n("10").sub(&n("0.5")).unwrap().to_string(), "9.5");
        assert_eq!(n("1").sub(&n("0")).unwrap().to_string(), "1");
        let big = "9".repeat(38);
        assert_eq!(
            n(&big).add(&n("1")).map(|_| ()),
            Ok(()),
            "39 digits of which 38 zeros trim"
        );
        assert_eq!(n(&big).add(&n("0.1")), Err(NumberError::Precision));
    }
}
