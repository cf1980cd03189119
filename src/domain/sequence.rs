use std::cmp::Ordering;
use std::fmt;

/// A Kinesis sequence number: a decimal string of up to 128 digits (56 on AWS today,
/// small integers in emulators), so it is compared as a number, never as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant_digits(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant_digits(), other.significant_digits());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers_not_text() {
        assert!(SequenceNumber::new("9") < SequenceNumber::new("10"));
        assert!(SequenceNumber::new("010") == SequenceNumber::new("010"));
        assert_eq!(
            SequenceNumber::new("010").cmp(&SequenceNumber::new("10")),
            Ordering::Equal
        );
        assert!(
            SequenceNumber::new("49568167373333333333333333333333333333333333333333333333")
                < SequenceNumber::new("49568167373333333334444444444444444444444444444444444444")
        );
    }
}
