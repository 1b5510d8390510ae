//! A role's `resource:action` rule (docs/protocol.md section 10), compiled
//! when the config is read and matched by the policy.
//!
//! A resource is a path of `/`-separated segments; a `*` segment matches any
//! one segment, and a `*` as the pattern's last segment matches one or more.
//! An action pattern is a name or `*`.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(Box<str>),
}

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(expected) => **expected == *name,
        }
    }
}

/// One compiled `resource:action` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    resource: Box<[Pattern]>,
    action: Pattern,
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Rule {
    /// Compiles `resource-pattern:action-pattern`; the error says what is
    /// wrong with it.
    pub fn parse(text: &str) -> Result<Rule, &'static str> {
        let (resource, action) = text
            .split_once(':')
            .ok_or("a rule is `resource:action`, e.g. `datasets/*:read`")?;
        let segment = |s: &str| match s {
            "*" => Ok(Pattern::Any),
            s if valid_segment(s) => Ok(Pattern::Exact(Box::from(s))),
            _ => Err("a rule segment is `*` or letters, digits, `.`, `_`, `-`"),
        };
        Ok(Rule {
            resource: resource.split('/').map(segment).collect::<Result<_, _>>()?,
            action: segment(action)?,
        })
    }

    /// Whether the rule covers `action` on `resource`.
    pub fn matches(&self, resource: &str, action: &str) -> bool {
        if !self.action.matches(action) {
            return false;
        }
        let mut names = resource.split('/');
        let last = self.resource.len().saturating_sub(1);
        for (n, pattern) in self.resource.iter().enumerate() {
            let Some(name) = names.next() else {
                return false;
            };
            if !pattern.matches(name) {
                return false;
            }
            if n == last && *pattern == Pattern::Any {
                // A trailing `*` takes the rest of the path too.
                return true;
            }
        }
        names.next().is_none()
    }
}
