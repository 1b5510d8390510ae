//! Authorization (docs/protocol.md section 10): roles to allow and deny rules,
//! client IP ranges per role, and a global IP allow/deny list.
//!
//! A rule is `resource-pattern:action-pattern`. Resources are paths of
//! `/`-separated segments (`datasets/genomics-42`); a `*` segment matches any
//! one segment, and a `*` as the pattern's last segment matches one or more
//! (so `*:*` matches everything, `datasets/*:read` every dataset instance,
//! and `datasets:read` the resource `datasets` itself only). An action
//! pattern is a name or `*`.
//!
//! Decision, for a principal with roles R calling action A on resource X
//! from address P:
//! 1. P in the global deny list, or a global allow list that does not hold
//!    P: refused.
//! 2. Any deny rule of any role in R matching (X, A): refused. Deny rules
//!    apply wherever the client is.
//! 3. Any allow rule matching (X, A) of a role in R whose IP ranges hold P
//!    (or that has none): granted.
//! 4. Otherwise refused. Unknown roles grant nothing.
//!
//! Every refusal is `access_denied`.

// Public for the tests, benches and loom models (`security::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use ipnet::IpNet;

use crate::config::AuthorizationConfig;
pub use crate::config::Rule;
use crate::error::{Code, Error};

pub use crate::config::ANONYMOUS_ROLE;

#[derive(Clone, Debug, Default)]
struct RolePolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
    ips: Vec<IpNet>,
}

/// The compiled authorization rules.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    roles: HashMap<Box<str>, RolePolicy, RandomState>,
    allow_ips: Vec<IpNet>,
    deny_ips: Vec<IpNet>,
}

/// What a message asks to do: an action on a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The resource (a handler's resource, or an instance below it).
    pub resource: &'a str,
    /// The action.
    pub action: &'a str,
}

impl<'a> Target<'a> {
    /// The default target of a command or event name: `a.b` is action `b`
    /// on resource `a` (split at the last dot); a name without a dot is
    /// action `call` on the resource of that name.
    pub fn of_name(name: &'a str) -> Target<'a> {
        match name.rsplit_once('.') {
            Some((resource, action)) if !resource.is_empty() && !action.is_empty() => {
                Target { resource, action }
            }
            _ => Target {
                resource: name,
                action: "call",
            },
        }
    }

    /// This target narrowed to a resource instance named by the message's
    /// `resource` field. The instance must lie under the declared resource
    /// (`datasets` admits `datasets/genomics-42`), or a client could pick a
    /// resource whose rules suit it: refused with `access_denied`.
    pub fn instance(self, instance: &'a str) -> Result<Target<'a>, Error> {
        let under = instance == self.resource
            || instance
                .strip_prefix(self.resource)
                .is_some_and(|rest| rest.starts_with('/'));
        if !under {
            return Err(Error::new(
                Code::AccessDenied,
                "resource is outside the command's resource",
            ));
        }
        Ok(Target {
            resource: instance,
            action: self.action,
        })
    }
}

fn contains(ranges: &[IpNet], address: IpAddr) -> bool {
    ranges.iter().any(|range| range.contains(&address))
}

/// An IPv4 client reached over IPv6 (`::ffff:a.b.c.d`) is that IPv4 client.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn denied(reason: &'static str) -> Error {
    Error::new(Code::AccessDenied, reason)
}

impl Policy {
    /// Compiles `[authorization]` (already validated by config loading).
    pub fn from_config(config: &AuthorizationConfig) -> Result<Policy, Error> {
        let compile = |rules: &[String]| {
            rules
                .iter()
                .map(|r| {
                    Rule::parse(r).map_err(|problem| {
                        Error::new(Code::ConfigurationError, format!("rule `{r}`: {problem}"))
                    })
                })
                .collect::<Result<Vec<Rule>, Error>>()
        };
        let mut roles = HashMap::default();
        for (name, role) in &config.roles {
            roles.insert(
                Box::from(name.as_str()),
                RolePolicy {
                    allow: compile(&role.allow)?,
                    deny: compile(&role.deny)?,
                    ips: role.ips.clone(),
                },
            );
        }
        Ok(Policy {
            roles,
            allow_ips: config.allow_ips.clone(),
            deny_ips: config.deny_ips.clone(),
        })
    }

    /// The global IP lists: whether `peer` may be served at all.
    pub fn check_peer(&self, peer: IpAddr) -> Result<(), Error> {
        let peer = canonical(peer);
        if contains(&self.deny_ips, peer) {
            return Err(denied("client address is denied"));
        }
        if !self.allow_ips.is_empty() && !contains(&self.allow_ips, peer) {
            return Err(denied("client address is not allowed"));
        }
        Ok(())
    }

    /// Whether `roles`, from `peer`, may perform `target` (the global lists
    /// are [`check_peer`](Self::check_peer)'s).
    pub fn authorize<R: AsRef<str>>(
        &self,
        roles: &[R],
        target: Target<'_>,
        peer: IpAddr,
    ) -> Result<(), Error> {
        let peer = canonical(peer);
        let covers = |rules: &[Rule]| {
            rules
                .iter()
                .any(|rule| rule.matches(target.resource, target.action))
        };
        // One pass, each role looked up once: a deny in any role wins over
        // an allow in any other, so every role's deny list is read.
        let mut granted = false;
        for role in roles.iter().filter_map(|r| self.roles.get(r.as_ref())) {
            if covers(&role.deny) {
                return Err(denied("a deny rule matches"));
            }
            granted = granted
                || ((role.ips.is_empty() || contains(&role.ips, peer)) && covers(&role.allow));
        }
        if !granted {
            return Err(denied("no allow rule matches"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_segment_or_the_rest_when_last() {
        let rule = |text| Rule::parse(text).unwrap();
        assert!(rule("*:*").matches("datasets/genomics-42", "read"));
        assert!(rule("*:*").matches("demo", "echo"));
        assert!(rule("datasets/*:read").matches("datasets/genomics-42", "read"));
        assert!(rule("datasets/*:read").matches("datasets/a/b", "read"));
        assert!(!rule("datasets/*:read").matches("datasets", "read"));
        assert!(!rule("datasets/*:read").matches("datasets/x", "write"));
        assert!(rule("datasets:read").matches("datasets", "read"));
        assert!(!rule("datasets:read").matches("datasets/x", "read"));
        assert!(rule("*/public:read").matches("datasets/public", "read"));
        assert!(!rule("*/public:read").matches("datasets/public/x", "read"));
        assert!(!rule("*/public:read").matches("datasets/private", "read"));
        assert!(!rule("sys:*").matches("system", "ping"));
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "",
            "demo",
            "demo:",
            ":echo",
            "a//b:c",
            "de mo:echo",
            "a:b:c",
            "d*:x",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_split_at_the_last_dot() {
        assert_eq!(
            Target::of_name("demo.echo"),
            Target {
                resource: "demo",
                action: "echo"
            }
        );
        assert_eq!(Target::of_name("a.b.c").resource, "a.b");
        assert_eq!(Target::of_name("ping").action, "call");
        assert_eq!(Target::of_name(".x").resource, ".x");
    }

    #[test]
    fn an_instance_must_lie_under_the_resource() {
        let target = Target::of_name("datasets.read");
        assert_eq!(
            target.instance("datasets/genomics-42").unwrap().resource,
            "datasets/genomics-42"
        );
        assert!(target.instance("datasets").is_ok());
        assert!(target.instance("datasetsX/1").is_err());
        assert!(target.instance("admin/1").is_err());
    }

    #[test]
    fn mapped_ipv4_addresses_are_their_ipv4_selves() {
        let policy = Policy {
            deny_ips: vec!["10.0.0.0/8".parse().unwrap()],
            ..Policy::default()
        };
        assert!(policy.check_peer("10.1.2.3".parse().unwrap()).is_err());
        assert!(
            policy
                .check_peer("::ffff:10.1.2.3".parse().unwrap())
                .is_err()
        );
        assert!(policy.check_peer("::1".parse().unwrap()).is_ok());
    }
}
