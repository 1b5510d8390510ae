//! [`Field`]: an optional envelope field, with `null` told apart from absent.

/// An optional field of the envelope: absent, `null`, or a value.
///
/// JSON makes a difference between a key that is missing and a key whose
/// value is `null`, and so does the signature over the envelope (RFC 8785 keeps
/// `"signature":null` and drops a missing key). The model keeps the difference
/// so that converting a message never changes what was signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Field<T> {
    /// The key is not in the envelope.
    #[default]
    Absent,
    /// The key is present with the value `null`.
    Null,
    /// The key is present with a value.
    Present(T),
}

impl<T> Field<T> {
    /// The value, if present.
    pub fn present(&self) -> Option<&T> {
        match self {
            Field::Present(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }

    /// The value, if present, by value.
    pub fn into_present(self) -> Option<T> {
        match self {
            Field::Present(v) => Some(v),
            Field::Absent | Field::Null => None,
        }
    }

    /// Whether the key is missing.
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// Whether a value is present.
    pub fn is_present(&self) -> bool {
        matches!(self, Field::Present(_))
    }

    /// A field borrowing the value.
    pub fn as_ref(&self) -> Field<&T> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Present(v) => Field::Present(v),
        }
    }

    /// The field with its value mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Field<U> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Present(v) => Field::Present(f(v)),
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    /// `Some` is present, `None` is `null`: what a writer of new messages means.
    fn from(value: Option<T>) -> Field<T> {
        value.map_or(Field::Null, Field::Present)
    }
}
