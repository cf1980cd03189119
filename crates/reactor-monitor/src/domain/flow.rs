use std::fmt;

/// The three unique flows a record can take; the `flow_type` of its trace and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum FlowType {
    #[serde(rename = "store-only")]
    StoreOnly,
    #[serde(rename = "store+alert")]
    StoreAndAlert,
    #[serde(rename = "parse-error")]
    ParseError,
}

impl FlowType {
    pub const ALL: [FlowType; 3] = [Self::StoreOnly, Self::StoreAndAlert, Self::ParseError];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StoreOnly => "store-only",
            Self::StoreAndAlert => "store+alert",
            Self::ParseError => "parse-error",
        }
    }
}

impl fmt::Display for FlowType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
