use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Where a record sits in its shard. A Kinesis sequence number is a decimal string of up to
/// 128 digits (56 on AWS today, small integers in emulators), so it is compared as a number,
/// never as text. The user records of a KPL aggregated record share their Kinesis record's
/// sequence number and are told apart by their position in it, the *subsequence number*
/// (the KCL's name): shown as `<sequence number>:<subsequence>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber {
    digits: String,
    subsequence: Option<u64>,
}

impl SequenceNumber {
    /// The sequence number of a Kinesis record, as Kinesis gives it.
    pub fn new(raw: impl Into<String>) -> Self {
        Self {
            digits: raw.into(),
            subsequence: None,
        }
    }

    /// The sequence number of the user record at `index` in the aggregated record at `self`.
    pub fn user_record(&self, index: u64) -> Self {
        Self {
            digits: self.digits.clone(),
            subsequence: Some(index),
        }
    }

    /// The Kinesis record's sequence number: what Kinesis knows, and what `batchItemFailures`
    /// reports (a user record's failure is its Kinesis record's).
    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// The position in a KPL aggregated record; `None` for a record that was not aggregated.
    pub fn subsequence(&self) -> Option<u64> {
        self.subsequence
    }

    /// The Kinesis record this one is, or is part of.
    pub fn kinesis_record(&self) -> Self {
        Self::new(self.digits.clone())
    }

    fn significant_digits(&self) -> &str {
        let trimmed = self.digits.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

impl Ord for SequenceNumber {
    /// By Kinesis sequence number, then the record itself before its user records by position.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant_digits(), other.significant_digits());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.cmp(b))
            .then_with(|| self.subsequence.cmp(&other.subsequence))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)?;
        match self.subsequence {
            Some(index) => write!(f, ":{index}"),
            None => Ok(()),
        }
    }
}

/// Text that is not `<digits>` or `<digits>:<subsequence>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a sequence number: {0:?}")]
pub struct NotASequenceNumber(String);

impl FromStr for SequenceNumber {
    type Err = NotASequenceNumber;

    /// Reads back what `Display` writes (in object keys, item ids, alert texts).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || NotASequenceNumber(text.to_string());
        let (digits, subsequence) = match text.split_once(':') {
            Some((digits, index)) => (digits, Some(index.parse().map_err(|_| invalid())?)),
            None => (text, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        Ok(Self {
            digits: digits.to_string(),
            subsequence,
        })
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

    #[test]
    fn user_records_sort_after_their_kinesis_record_and_before_the_next() {
        let nine = SequenceNumber::new("9");
        let (first, second) = (nine.user_record(0), nine.user_record(1));
        assert!(nine < first && first < second && second < SequenceNumber::new("10"));
        assert_ne!(first, second);
        assert_eq!(second.as_str(), "9");
        assert_eq!(second.kinesis_record(), nine);
    }

    #[test]
    fn the_text_form_reads_back() {
        for seq in [
            SequenceNumber::new("49656865813316372830357373633617012963290853298437832706"),
            SequenceNumber::new("7").user_record(12),
        ] {
            assert_eq!(seq.to_string().parse::<SequenceNumber>().unwrap(), seq);
        }
        assert_eq!(SequenceNumber::new("7").user_record(12).to_string(), "7:12");
        for bad in ["", "7:", ":1", "7:x", "abc", "7:1:2"] {
            assert!(bad.parse::<SequenceNumber>().is_err(), "{bad}");
        }
    }
}
