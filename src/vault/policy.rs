//! Why: vault passwords follow a policy (PMP's Low/Medium/Strong plus custom ones): the
//! generator only produces passwords its own policy accepts, and a manually entered password
//! is checked against the same rules, so "generated" and "typed" cannot drift apart.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow)]
pub struct Policy {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub builtin: i64,
    pub min_length: i64,
    pub max_length: i64,
    #[serde(default)]
    pub min_lower: i64,
    #[serde(default)]
    pub min_upper: i64,
    #[serde(default)]
    pub min_digits: i64,
    #[serde(default)]
    pub min_special: i64,
    #[serde(default = "default_specials")]
    pub special_chars: String,
    #[serde(default)]
    pub start_with_letter: i64,
    #[serde(default)]
    pub history_depth: i64,
    #[serde(default)]
    pub max_age_days: i64,
    #[serde(default)]
    pub created_at: i64,
}

fn default_specials() -> String {
    "!#$%&*+-=?@^_~".into()
}

pub const COLUMNS: &str = "id, name, builtin, min_length, max_length, min_lower, min_upper, min_digits, min_special, special_chars, start_with_letter, history_depth, max_age_days, created_at";

const LOWER: &str = "abcdefghijkmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &str = "23456789";

impl Policy {
    pub fn builtins() -> Vec<Policy> {
        let p = |id: &str,
                 name: &str,
                 min: i64,
                 max: i64,
                 lo: i64,
                 up: i64,
                 di: i64,
                 sp: i64,
                 letter: i64,
                 hist: i64,
                 age: i64| Policy {
            id: id.into(),
            name: name.into(),
            builtin: 1,
            min_length: min,
            max_length: max,
            min_lower: lo,
            min_upper: up,
            min_digits: di,
            min_special: sp,
            special_chars: default_specials(),
            start_with_letter: letter,
            history_depth: hist,
            max_age_days: age,
            created_at: 0,
        };
        vec![
            p("policy-low", "Low", 4, 32, 0, 0, 0, 0, 0, 0, 0),
            p("policy-medium", "Medium", 8, 64, 1, 1, 1, 0, 0, 3, 180),
            p("policy-strong", "Strong", 14, 64, 1, 1, 1, 1, 1, 5, 90),
        ]
    }

    /// Checks that the policy itself can be satisfied. Errors name the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let n = self.name.trim();
        if n.is_empty() || n.len() > 64 {
            return Err(("name", "must be 1-64 characters".into()));
        }
        if !(1..=256).contains(&self.min_length) {
            return Err(("min_length", "must be between 1 and 256".into()));
        }
        if self.max_length < self.min_length || self.max_length > 256 {
            return Err((
                "max_length",
                "must be at least min_length and at most 256".into(),
            ));
        }
        for (f, v) in [
            ("min_lower", self.min_lower),
            ("min_upper", self.min_upper),
            ("min_digits", self.min_digits),
            ("min_special", self.min_special),
        ] {
            if !(0..=64).contains(&v) {
                return Err((f, "must be between 0 and 64".into()));
            }
        }
        let required = self.min_lower + self.min_upper + self.min_digits + self.min_special;
        if required > self.max_length {
            return Err((
                "max_length",
                format!("must be at least {required}, the sum of the required characters"),
            ));
        }
        if self.min_special > 0 && self.special_chars.trim().is_empty() {
            return Err((
                "special_chars",
                "must list the allowed special characters".into(),
            ));
        }
        // Punctuation only: a control character (a ^C typed by a rotation script aborts it;
        // a ^U erases the line) or a space would make generated passwords that break the
        // terminals they are typed at.
        if let Some(c) = self
            .special_chars
            .chars()
            .find(|c| !c.is_ascii_punctuation())
        {
            return Err((
                "special_chars",
                format!(
                    "must be ASCII punctuation only, such as !#%+-.:=?@_~ ({} is not)",
                    c.escape_debug()
                ),
            ));
        }
        if !(0..=24).contains(&self.history_depth) {
            return Err(("history_depth", "must be between 0 and 24".into()));
        }
        if !(0..=3650).contains(&self.max_age_days) {
            return Err(("max_age_days", "must be between 0 (never) and 3650".into()));
        }
        Ok(())
    }

    /// Every rule the password breaks, as sentences for the user.
    pub fn violations(&self, pw: &str) -> Vec<String> {
        let mut v = Vec::new();
        let len = pw.chars().count() as i64;
        if len < self.min_length {
            v.push(format!("must be at least {} characters", self.min_length));
        }
        if len > self.max_length {
            v.push(format!("must be at most {} characters", self.max_length));
        }
        let count = |f: &dyn Fn(char) -> bool| pw.chars().filter(|c| f(*c)).count() as i64;
        let checks = [
            (
                count(&|c| c.is_ascii_lowercase()),
                self.min_lower,
                "lower-case letter",
            ),
            (
                count(&|c| c.is_ascii_uppercase()),
                self.min_upper,
                "upper-case letter",
            ),
            (count(&|c| c.is_ascii_digit()), self.min_digits, "digit"),
            (
                count(&|c| self.special_chars.contains(c)),
                self.min_special,
                "special character",
            ),
        ];
        for (have, want, what) in checks {
            if have < want {
                v.push(format!(
                    "needs at least {want} {what}{}",
                    if want > 1 { "s" } else { "" }
                ));
            }
        }
        if self.start_with_letter == 1
            && !pw.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        {
            v.push("must start with a letter".into());
        }
        v
    }

    /// A random password this policy accepts.
    pub fn generate(&self) -> String {
        let mut rng = rand::rngs::OsRng;
        let required = self.min_lower + self.min_upper + self.min_digits + self.min_special;
        let target = self
            .min_length
            .max(required)
            .max(self.max_length.min(20))
            .min(self.max_length)
            .max(1);
        let pick = |set: &str, rng: &mut rand::rngs::OsRng| -> char {
            let chars: Vec<char> = set.chars().collect();
            chars[rng.gen_range(0..chars.len())]
        };
        // A policy stored before specials had to be punctuation may still hold others.
        let specials: String = self
            .special_chars
            .chars()
            .filter(|c| c.is_ascii_punctuation())
            .collect();
        let mut out: Vec<char> = Vec::new();
        for (set, n) in [
            (LOWER, self.min_lower),
            (UPPER, self.min_upper),
            (DIGITS, self.min_digits),
        ] {
            for _ in 0..n {
                out.push(pick(set, &mut rng));
            }
        }
        if !specials.is_empty() {
            for _ in 0..self.min_special {
                out.push(pick(&specials, &mut rng));
            }
        }
        let mut all = format!("{LOWER}{UPPER}{DIGITS}");
        if self.min_special > 0 {
            all.push_str(&specials);
        }
        while (out.len() as i64) < target {
            out.push(pick(&all, &mut rng));
        }
        out.shuffle(&mut rng);
        if self.start_with_letter == 1 {
            match out.iter().position(|c| c.is_ascii_alphabetic()) {
                Some(i) => out.swap(0, i),
                None => {
                    // No letter was required; replace the first free character by one.
                    out[0] = pick(LOWER, &mut rng);
                }
            }
        }
        let pw: String = out.into_iter().collect();
        // A letter put first may have replaced a required character; retry in that case.
        if self.violations(&pw).is_empty() {
            pw
        } else {
            self.generate()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_honours_every_builtin_and_odd_policies() {
        let mut policies = Policy::builtins();
        let mut odd = Policy::builtins()[2].clone();
        odd.min_length = 5;
        odd.max_length = 5;
        odd.min_lower = 0;
        odd.min_upper = 0;
        odd.min_digits = 4;
        odd.min_special = 0;
        odd.start_with_letter = 1;
        policies.push(odd);
        for p in &policies {
            p.validate().unwrap();
            for _ in 0..300 {
                let pw = p.generate();
                assert!(
                    p.violations(&pw).is_empty(),
                    "{} generated {pw}: {:?}",
                    p.name,
                    p.violations(&pw)
                );
            }
        }
    }

    #[test]
    fn violations_name_each_rule() {
        let strong = &Policy::builtins()[2];
        let v = strong.violations("1abc");
        assert!(v.iter().any(|m| m.contains("at least 14")));
        assert!(v.iter().any(|m| m.contains("upper-case")));
        assert!(v.iter().any(|m| m.contains("special")));
        assert!(v.iter().any(|m| m.contains("start with a letter")));
        assert!(strong.violations("Abcdefgh1234!x").is_empty());
    }

    #[test]
    fn impossible_policies_are_refused() {
        let mut p = Policy::builtins()[1].clone();
        p.max_length = 2;
        p.min_length = 1;
        assert_eq!(p.validate().unwrap_err().0, "max_length");
        let mut p = Policy::builtins()[1].clone();
        p.min_special = 1;
        p.special_chars = String::new();
        assert_eq!(p.validate().unwrap_err().0, "special_chars");
        for bad in ["!\u{3}", "! ", "!a", "!\u{7f}", "!é", "!\t"] {
            p.special_chars = bad.into();
            let (field, why) = p.validate().expect_err(bad);
            assert_eq!(field, "special_chars");
            assert!(why.contains("punctuation"), "{why}");
        }
        p.special_chars = "!#%+-.:=?@_~".into();
        assert!(p.validate().is_ok());
    }
}
