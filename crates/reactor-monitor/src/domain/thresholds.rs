use std::fmt;

/// How hot a reading is, from the operator's point of view.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Emergency,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Emergency => "emergency",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThresholdsError {
    #[error("thresholds must be finite numbers (warning {warning}, emergency {emergency})")]
    NotFinite { warning: f64, emergency: f64 },
    #[error(
        "the warning threshold ({warning} °C) must be below the emergency threshold ({emergency} °C)"
    )]
    WarningNotBelowEmergency { warning: f64, emergency: f64 },
}

/// Alert thresholds in °C; a reading at or above a threshold raises that severity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    warning: f64,
    emergency: f64,
}

impl Thresholds {
    pub const DEFAULT_WARNING_C: f64 = 700.0;
    pub const DEFAULT_EMERGENCY_C: f64 = 800.0;

    pub fn new(warning: f64, emergency: f64) -> Result<Self, ThresholdsError> {
        if !warning.is_finite() || !emergency.is_finite() {
            return Err(ThresholdsError::NotFinite { warning, emergency });
        }
        if warning >= emergency {
            return Err(ThresholdsError::WarningNotBelowEmergency { warning, emergency });
        }
        Ok(Self { warning, emergency })
    }

    pub fn warning(&self) -> f64 {
        self.warning
    }

    pub fn emergency(&self) -> f64 {
        self.emergency
    }

    /// The severity of a temperature, `None` when it is below the warning threshold.
    /// There is no upper bound: an implausibly hot reading is an emergency (fail-safe).
    pub fn classify(&self, temp_c: f64) -> Option<Severity> {
        if temp_c >= self.emergency {
            Some(Severity::Emergency)
        } else if temp_c >= self.warning {
            Some(Severity::Warning)
        } else {
            None
        }
    }

    pub fn threshold_of(&self, severity: Severity) -> f64 {
        match severity {
            Severity::Warning => self.warning,
            Severity::Emergency => self.emergency,
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warning: Self::DEFAULT_WARNING_C,
            emergency: Self::DEFAULT_EMERGENCY_C,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_of_the_default_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.classify(699.99), None);
        assert_eq!(t.classify(700.0), Some(Severity::Warning));
        assert_eq!(t.classify(799.99), Some(Severity::Warning));
        assert_eq!(t.classify(800.0), Some(Severity::Emergency));
        assert_eq!(t.classify(-273.15), None);
    }

    #[test]
    fn an_implausibly_hot_reading_is_an_emergency_not_hidden() {
        assert_eq!(
            Thresholds::default().classify(5000.0),
            Some(Severity::Emergency)
        );
        assert_eq!(
            Thresholds::default().classify(f64::MAX),
            Some(Severity::Emergency)
        );
    }

    #[test]
    fn warning_at_or_above_emergency_is_refused() {
        assert_eq!(
            Thresholds::new(800.0, 800.0),
            Err(ThresholdsError::WarningNotBelowEmergency {
                warning: 800.0,
                emergency: 800.0
            })
        );
        assert!(Thresholds::new(900.0, 800.0).is_err());
        assert!(Thresholds::new(f64::NAN, 800.0).is_err());
        assert_eq!(
            Thresholds::new(650.0, 750.0).unwrap().classify(650.0),
            Some(Severity::Warning)
        );
    }
}
