//! Bearer tokens and roles.
//!
//! A tokens file names every caller:
//!
//! ```yaml
//! tokens:
//!   - { name: ops-alice, role: operator, sha256: 3f1c…(64 hex digits) }
//!   - { name: agent-n1, role: agent, node: n1, token: 7d9e… }
//! ```
//!
//! An entry gives either the plain `token` or its `sha256` (hex), so a file can avoid holding
//! secrets. Either way only SHA-256 digests are kept in memory: a presented token is hashed
//! and looked up. The lookup compares digests, never the secret itself, so how long a
//! comparison takes says nothing useful about any token (finding a token whose digest shares
//! a prefix with a real one gives no information about the real token).
//!
//! Roles: `read` < `operator` < `admin`, each including the ones before; `agent` may only
//! sync as its own node.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Plain tokens shorter than this are refused: they could be guessed.
pub const PLAIN_TOKEN_CHARS_MIN: usize = 16;
/// Bound on a tokens file, so a wrong path (a disk image…) fails fast instead of filling memory.
pub const TOKENS_FILE_BYTES_MAX: u64 = 4 << 20;
/// Bytes of randomness in a generated token (64 hex characters).
pub const GENERATED_TOKEN_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything (status, spec, plans, nodes, metrics).
    Read,
    /// Read, plus operating the fleet: cordon, drain, approve and cancel plans, dry runs.
    Operator,
    /// Operator, plus replacing the fleet spec and syncing as any node.
    Admin,
    /// A node agent: only syncs as its own node.
    Agent,
}

impl Role {
    /// Whether this role includes everything `needed` allows. `Agent` is outside the ladder:
    /// it includes nothing but itself.
    pub fn includes(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Agent, _) | (_, Role::Agent) => self == needed,
            _ => self >= needed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operator => "operator",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The node an agent token may sync as (only agents have one).
    pub node: Option<String>,
}

/// Every known token, by the SHA-256 digest of its secret.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], Identity>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("tokens file `{file}`: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("tokens file `{file}` is larger than {TOKENS_FILE_BYTES_MAX} bytes")]
    TooLarge { file: String },
    #[error("tokens file `{file}`: {message}")]
    Syntax { file: String, message: String },
    #[error("tokens file `{file}`: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
}

/// One entry as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntrySpec {
    name: String,
    role: Role,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    tokens: Vec<EntrySpec>,
}

impl Tokens {
    /// No tokens: only the public routes answer.
    pub fn empty() -> Tokens {
        Tokens::default()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// Reads and validates a tokens file; errors name the file and the offending entries.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let file = path.display().to_string();
        let io = |source| TokensError::Io {
            file: file.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > TOKENS_FILE_BYTES_MAX {
            return Err(TokensError::TooLarge { file });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Tokens::from_yaml(&text, &file)
    }

    /// Parses a tokens file's text; `file` names it in errors. Every problem is reported, not
    /// just the first.
    pub fn from_yaml(text: &str, file: &str) -> Result<Tokens, TokensError> {
        let spec: FileSpec = serde_yaml_ng::from_str(text).map_err(|e| TokensError::Syntax {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let mut tokens = Tokens::empty();
        let mut names = BTreeSet::new();
        let mut problems = Vec::new();
        for (index, entry) in spec.tokens.iter().enumerate() {
            let at = format!("tokens[{index}] (`{}`)", entry.name);
            if !names.insert(entry.name.as_str()) {
                problems.push(format!("{at}: the name is used by an earlier entry"));
            }
            match entry_digest(entry) {
                Ok(digest) => {
                    let identity = Identity {
                        name: entry.name.clone(),
                        role: entry.role,
                        node: entry.node.clone(),
                    };
                    if let Err(problem) = tokens.insert(digest, identity) {
                        problems.push(format!("{at}: {problem}"));
                    }
                }
                Err(problem) => problems.push(format!("{at}: {problem}")),
            }
        }
        if problems.is_empty() {
            Ok(tokens)
        } else {
            Err(TokensError::Invalid {
                file: file.to_string(),
                problems,
            })
        }
    }

    /// Adds a caller known by its plain token (tests, and a CLI that just generated one).
    pub fn add_plain(&mut self, identity: Identity, token: &str) -> Result<(), String> {
        check_plain(token)?;
        self.insert(digest_of(token), identity)
    }

    fn insert(&mut self, digest: [u8; 32], identity: Identity) -> Result<(), String> {
        if identity.name.trim().is_empty() {
            return Err("the name is empty".into());
        }
        match (identity.role, &identity.node) {
            (Role::Agent, None) => return Err("an agent token needs `node`".into()),
            (Role::Agent, Some(node)) if node.trim().is_empty() => {
                return Err("`node` is empty".into())
            }
            (role, Some(_)) if role != Role::Agent => {
                return Err(format!(
                    "only agent tokens are bound to a node; a {role} token has no `node`"
                ))
            }
            _ => {}
        }
        if let Some(other) = self.by_digest.get(&digest) {
            return Err(format!(
                "the same token as `{}`: every caller needs its own",
                other.name
            ));
        }
        self.by_digest.insert(digest, identity);
        Ok(())
    }

    /// The caller a presented token belongs to.
    pub fn identify(&self, presented: &str) -> Option<&Identity> {
        self.by_digest.get(&digest_of(presented))
    }
}

fn entry_digest(entry: &EntrySpec) -> Result<[u8; 32], String> {
    match (&entry.token, &entry.sha256) {
        (Some(_), Some(_)) => Err("give `token` or `sha256`, not both".into()),
        (None, None) => Err("needs `token` or `sha256`".into()),
        (Some(token), None) => {
            check_plain(token)?;
            Ok(digest_of(token))
        }
        (None, Some(hex_digest)) => parse_digest(hex_digest),
    }
}

fn check_plain(token: &str) -> Result<(), String> {
    if token.chars().count() < PLAIN_TOKEN_CHARS_MIN {
        return Err(format!(
            "`token` is shorter than {PLAIN_TOKEN_CHARS_MIN} characters (`meridian token` makes a good one)"
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`token` contains whitespace or control characters".into());
    }
    Ok(())
}

fn parse_digest(text: &str) -> Result<[u8; 32], String> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest)
        .map_err(|e| format!("`sha256` must be 64 hexadecimal digits (a SHA-256 digest): {e}"))?;
    Ok(digest)
}

fn digest_of(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hex SHA-256 of a token, as a tokens file's `sha256` wants it.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(digest_of(token))
}

/// A new random token: 32 bytes from the operating system's generator, in hex.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The token in an `Authorization: Bearer …` header value, if it is one.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123";

    #[test]
    fn roles_form_a_ladder_with_agents_beside_it() {
        assert!(Role::Admin.includes(Role::Operator) && Role::Admin.includes(Role::Read));
        assert!(Role::Operator.includes(Role::Read) && !Role::Operator.includes(Role::Admin));
        assert!(!Role::Read.includes(Role::Operator));
        assert!(!Role::Agent.includes(Role::Read), "an agent reads nothing");
        assert!(!Role::Admin.includes(Role::Agent) && Role::Agent.includes(Role::Agent));
    }

    #[test]
    fn plain_and_hashed_tokens_both_identify_their_caller() {
        let yaml = format!(
            "tokens:\n  - {{ name: alice, role: operator, sha256: {} }}\n  - {{ name: agent-n1, role: agent, node: n1, token: {GOOD} }}\n",
            token_sha256_hex("alice-secret-token-1")
        );
        let tokens = Tokens::from_yaml(&yaml, "tokens.yaml").expect("valid");
        assert_eq!(tokens.len(), 2);
        let alice = tokens.identify("alice-secret-token-1").expect("alice");
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Operator));
        let agent = tokens.identify(GOOD).expect("agent");
        assert_eq!(agent.node.as_deref(), Some("n1"));
        assert!(tokens.identify("alice-secret-token-2").is_none());
    }

    #[test]
    fn every_problem_names_the_file_and_the_entry() {
        let yaml = format!(
            "tokens:\n  - {{ name: a, role: read, token: {GOOD} }}\n  - {{ name: a, role: read, sha256: zz }}\n  - {{ name: b, role: agent, token: {GOOD}x }}\n  - {{ name: c, role: admin, node: n1, token: {GOOD}y }}\n  - {{ name: d, role: read, token: short }}\n  - {{ name: e, role: read }}\n  - {{ name: f, role: read, token: {GOOD} }}\n"
        );
        let error = Tokens::from_yaml(&yaml, "t.yaml").expect_err("invalid");
        let text = error.to_string();
        assert!(text.starts_with("tokens file `t.yaml`"), "{text}");
        let TokensError::Invalid { problems, .. } = error else {
            panic!("not a validation error: {text}")
        };
        let expected = [
            "tokens[1] (`a`): the name is used by an earlier entry",
            "tokens[1] (`a`): `sha256` must be 64 hexadecimal digits",
            "tokens[2] (`b`): an agent token needs `node`",
            "tokens[3] (`c`): only agent tokens are bound to a node",
            "tokens[4] (`d`): `token` is shorter than",
            "tokens[5] (`e`): needs `token` or `sha256`",
            "tokens[6] (`f`): the same token as `a`",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, start) in problems.iter().zip(expected) {
            assert!(
                problem.starts_with(start),
                "{problem} should start with {start}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_roles_are_syntax_errors_naming_the_file() {
        for yaml in [
            "tokens: [{ name: a, role: root, token: 0123456789abcdef0 }]",
            "tokens: [{ name: a, role: read, secret: x }]",
            "tokns: []",
        ] {
            let error = Tokens::from_yaml(yaml, "t.yaml").expect_err(yaml);
            assert!(matches!(error, TokensError::Syntax { .. }), "{error}");
            assert!(error.to_string().contains("`t.yaml`"), "{error}");
        }
    }

    #[test]
    fn load_names_a_missing_file() {
        let error = Tokens::load(Path::new("/nonexistent/tokens.yaml")).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/tokens.yaml"),
            "{error}"
        );
    }

    #[test]
    fn generated_tokens_are_long_distinct_and_accepted() {
        let a = generate_token().expect("random");
        let b = generate_token().expect("random");
        assert_eq!(a.len(), 2 * GENERATED_TOKEN_BYTES);
        assert_ne!(a, b);
        let mut tokens = Tokens::empty();
        let identity = Identity {
            name: "x".into(),
            role: Role::Read,
            node: None,
        };
        tokens.add_plain(identity, &a).expect("accepted");
        assert!(tokens.identify(&a).is_some());
    }

    #[test]
    fn bearer_headers_parse_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
