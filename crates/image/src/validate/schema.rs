//! A small JSON Schema (draft-04) evaluator for the subset the image-spec schemas use.
//!
//! It reports every failing keyword rather than stopping at the first, with a JSON pointer
//! to the offending value. Supported: `type` (including `integer`), `enum`, `required`,
//! `properties`, `patternProperties`, `additionalProperties`, `items` (schema or tuple),
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum` with
//! draft-04 `exclusiveMinimum`/`exclusiveMaximum`, `oneOf`/`anyOf`/`allOf`/`not`, `$ref`
//! (to another file by name and/or to a JSON pointer fragment) and `format`
//! (`date-time`, `uri`). Other keywords are annotations and are ignored, as the standard
//! says unknown keywords must be.
//!
//! `$ref` is resolved by file name only (`defs.json#/definitions/x` → the embedded
//! `defs.json`), ignoring `id` scopes: the image-spec schemas nest `id`s that would resolve
//! to URLs that do not exist, and the reference Go validator also maps them onto its files.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;
use serde_json::{Number, Value};

use super::Problem;

/// Guard against `$ref` cycles that do not descend into the instance.
const MAX_REF_DEPTH: usize = 32;

/// A set of schema documents, keyed by file name, that may refer to each other.
pub(crate) struct Schemas {
    docs: HashMap<&'static str, Value>,
    /// Compiled patterns (`None`: the pattern does not compile), shared by all validations.
    regexes: Mutex<HashMap<String, Option<Regex>>>,
}

impl Schemas {
    /// Parses the given `(file name, JSON text)` pairs.
    ///
    /// # Errors
    /// The name of the file that is not valid JSON, with the parse error.
    pub(crate) fn new(files: &[(&'static str, &str)]) -> Result<Schemas, String> {
        let mut docs = HashMap::new();
        for (name, text) in files {
            let v: Value = serde_json::from_str(text).map_err(|e| format!("schema {name}: {e}"))?;
            docs.insert(*name, v);
        }
        Ok(Schemas {
            docs,
            regexes: Mutex::default(),
        })
    }

    /// Validates `instance` against the schema document `file`, appending a problem for every
    /// failure. Paths are JSON pointers.
    pub(crate) fn validate(&self, file: &'static str, instance: &Value) -> Vec<Problem> {
        let mut out = Vec::new();
        match self.docs.get(file) {
            Some(schema) => Eval { schemas: self }.check(file, schema, instance, "", 0, &mut out),
            None => out.push(Problem::new("", format!("internal: no schema named {file}"))),
        }
        out
    }
}

struct Eval<'s> {
    schemas: &'s Schemas,
}

/// The JSON Schema type name of a value (`integer` for whole numbers).
fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    let actual = type_of(v);
    actual == ty || (ty == "number" && actual == "integer")
}

/// Appends `key` to a JSON pointer, escaping as RFC 6901 requires.
pub(crate) fn pointer_push(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Compares two JSON numbers exactly when both are integers, else as floats.
fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    let int = |n: &Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// RFC 3339 date-time, as Go's time.RFC3339Nano writes and parses it.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r.clone()).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).unwrap_or(99);
    if b.len() < 20 || !digits(0..4) || !digits(5..7) || !digits(8..10) || !digits(11..13) || !digits(14..16) {
        return false;
    }
    if !digits(17..19) || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    if b[13] != b':' || b[16] != b':' {
        return false;
    }
    let (month, day, hour, min, sec) = (num(5..7), num(8..10), num(11..13), num(14..16), num(17..19));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        "Z" | "z" => true,
        _ => {
            let z = rest.as_bytes();
            z.len() == 6
                && matches!(z[0], b'+' | b'-')
                && z[1..3].iter().all(u8::is_ascii_digit)
                && z[3] == b':'
                && z[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

/// A URI with a scheme (RFC 3986 `scheme ":" …`), without whitespace.
fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Eval<'_> {
    fn regex(&self, pattern: &str) -> Option<Regex> {
        // A panic elsewhere cannot leave the map half-updated, so a poisoned lock is still usable.
        let mut cache = self.schemas.regexes.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok())
            .clone()
    }

    /// Resolves a `$ref` relative to the schema file it appears in.
    fn resolve<'a>(&'a self, file: &'static str, reference: &str) -> Option<(&'static str, &'a Value)> {
        let (doc, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let (name, root) = if doc.is_empty() {
            (file, self.schemas.docs.get(file)?)
        } else {
            let base = doc.rsplit('/').next().unwrap_or(doc);
            let (name, root) = self.schemas.docs.get_key_value(base)?;
            (*name, root)
        };
        Some((name, root.pointer(fragment)?))
    }

    /// Evaluates one schema against one instance.
    fn check(
        &self,
        file: &'static str,
        schema: &Value,
        inst: &Value,
        path: &str,
        depth: usize,
        out: &mut Vec<Problem>,
    ) {
        let Some(s) = schema.as_object() else {
            // `true`/`{}` accept everything; draft-04 has no boolean schemas, so only `false` rejects.
            if schema == &Value::Bool(false) {
                out.push(Problem::new(path, "no value is allowed here"));
            }
            return;
        };
        // In draft-04 a `$ref` replaces the schema it appears in.
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            if depth >= MAX_REF_DEPTH {
                out.push(Problem::new(path, format!("internal: schema $ref {r} nests too deep")));
                return;
            }
            match self.resolve(file, r) {
                Some((f, target)) => self.check(f, target, inst, path, depth + 1, out),
                None => out.push(Problem::new(
                    path,
                    format!("internal: schema $ref {r} cannot be resolved"),
                )),
            }
            return;
        }

        if let Some(ty) = s.get("type") {
            let allowed: Vec<&str> = match ty {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.is_empty() && !allowed.iter().any(|t| has_type(inst, t)) {
                out.push(Problem::new(
                    path,
                    format!("expected {}, found {}", allowed.join(" or "), type_of(inst)),
                ));
                // Every other keyword would only restate the type mismatch.
                return;
            }
        }

        if let Some(values) = s.get("enum").and_then(Value::as_array)
            && !values.contains(inst)
        {
            let list: Vec<String> = values.iter().map(Value::to_string).collect();
            out.push(Problem::new(
                path,
                format!("{} is not one of {}", short(inst), list.join(", ")),
            ));
        }

        match inst {
            Value::Object(map) => {
                if let Some(req) = s.get("required").and_then(Value::as_array) {
                    for name in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(name) {
                            out.push(Problem::new(pointer_push(path, name), "required property is missing"));
                        }
                    }
                }
                let props = s.get("properties").and_then(Value::as_object);
                let patterns: Vec<(Option<Regex>, &str, &Value)> = s
                    .get("patternProperties")
                    .and_then(Value::as_object)
                    .map(|p| p.iter().map(|(k, v)| (self.regex(k), k.as_str(), v)).collect())
                    .unwrap_or_default();
                for (pat, src, _) in &patterns {
                    if pat.is_none() {
                        out.push(Problem::new(
                            path,
                            format!("internal: schema pattern {src:?} is invalid"),
                        ));
                    }
                }
                let additional = s.get("additionalProperties");
                for (key, value) in map {
                    let child = pointer_push(path, key);
                    let mut matched = false;
                    if let Some(sub) = props.and_then(|p| p.get(key)) {
                        matched = true;
                        self.check(file, sub, value, &child, 0, out);
                    }
                    for (re, _, sub) in &patterns {
                        if re.as_ref().is_some_and(|re| re.is_match(key)) {
                            matched = true;
                            self.check(file, sub, value, &child, 0, out);
                        }
                    }
                    if !matched && let Some(add) = additional {
                        match add {
                            Value::Bool(false) => out.push(Problem::new(child, "property is not allowed here")),
                            Value::Object(_) => self.check(file, add, value, &child, 0, out),
                            _ => {}
                        }
                    }
                }
            }
            Value::Array(items) => {
                let count = |k: &str| s.get(k).and_then(Value::as_u64);
                if let Some(min) = count("minItems")
                    && (items.len() as u64) < min
                {
                    out.push(Problem::new(
                        path,
                        format!("has {} items, at least {min} required", items.len()),
                    ));
                }
                if let Some(max) = count("maxItems")
                    && (items.len() as u64) > max
                {
                    out.push(Problem::new(
                        path,
                        format!("has {} items, at most {max} allowed", items.len()),
                    ));
                }
                match s.get("items") {
                    Some(Value::Array(tuple)) => {
                        for (i, (sub, item)) in tuple.iter().zip(items).enumerate() {
                            self.check(file, sub, item, &pointer_push(path, &i.to_string()), 0, out);
                        }
                    }
                    Some(sub) => {
                        for (i, item) in items.iter().enumerate() {
                            self.check(file, sub, item, &pointer_push(path, &i.to_string()), 0, out);
                        }
                    }
                    None => {}
                }
            }
            Value::String(text) => {
                let len = text.chars().count() as u64;
                if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                    && len < min
                {
                    out.push(Problem::new(
                        path,
                        format!("is {len} characters long, at least {min} required"),
                    ));
                }
                if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                    && len > max
                {
                    out.push(Problem::new(
                        path,
                        format!("is {len} characters long, at most {max} allowed"),
                    ));
                }
                if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
                    match self.regex(pattern) {
                        Some(re) if re.is_match(text) => {}
                        Some(_) => out.push(Problem::new(
                            path,
                            format!("{} does not match the pattern {pattern}", short(inst)),
                        )),
                        None => out.push(Problem::new(
                            path,
                            format!("internal: schema pattern {pattern:?} is invalid"),
                        )),
                    }
                }
                match s.get("format").and_then(Value::as_str) {
                    Some("date-time") if !is_date_time(text) => out.push(Problem::new(
                        path,
                        format!("{} is not an RFC 3339 date-time", short(inst)),
                    )),
                    Some("uri") if !is_uri(text) => {
                        out.push(Problem::new(path, format!("{} is not a URI", short(inst))))
                    }
                    _ => {}
                }
            }
            Value::Number(n) => {
                let exclusive = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
                if let Some(Value::Number(min)) = s.get("minimum") {
                    let ord = cmp_numbers(n, min);
                    let bad = match exclusive("exclusiveMinimum") {
                        true => ord != Some(Ordering::Greater),
                        false => ord == Some(Ordering::Less),
                    };
                    if bad {
                        out.push(Problem::new(path, format!("{n} is less than the minimum {min}")));
                    }
                }
                if let Some(Value::Number(max)) = s.get("maximum") {
                    let ord = cmp_numbers(n, max);
                    let bad = match exclusive("exclusiveMaximum") {
                        true => ord != Some(Ordering::Less),
                        false => ord == Some(Ordering::Greater),
                    };
                    if bad {
                        out.push(Problem::new(path, format!("{n} is more than the maximum {max}")));
                    }
                }
            }
            Value::Null | Value::Bool(_) => {}
        }

        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(file, sub, inst, path, depth, out);
            }
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(alternatives) = s.get(keyword).and_then(Value::as_array) else {
                continue;
            };
            let results: Vec<Vec<Problem>> = alternatives
                .iter()
                .map(|sub| {
                    let mut v = Vec::new();
                    self.check(file, sub, inst, path, depth, &mut v);
                    v
                })
                .collect();
            let passing = results.iter().filter(|r| r.is_empty()).count();
            if passing == 0 {
                out.extend(best_failure(results, path));
            } else if exactly_one && passing > 1 {
                out.push(Problem::new(
                    path,
                    format!("matches {passing} alternatives of oneOf, exactly one is allowed"),
                ));
            }
        }
        if let Some(not) = s.get("not") {
            let mut v = Vec::new();
            self.check(file, not, inst, path, depth, &mut v);
            if v.is_empty() {
                out.push(Problem::new(path, "matches a schema it must not match"));
            }
        }
    }
}

/// Chooses what to report when no alternative of `oneOf`/`anyOf` matched.
///
/// When every alternative failed on the value's type, one problem lists the accepted
/// types. Otherwise the alternatives whose type did fit are the ones the author meant,
/// and the one of those with the fewest problems is reported, so a label map with one
/// non-string value says which label is wrong instead of "not null".
fn best_failure(results: Vec<Vec<Problem>>, path: &str) -> Vec<Problem> {
    let type_only = |r: &Vec<Problem>| r.len() == 1 && r[0].path == path && r[0].message.starts_with("expected ");
    if results.iter().all(type_only) {
        let mut expected: Vec<String> = Vec::new();
        let mut found = String::new();
        for r in &results {
            if let Some((exp, f)) = r[0]
                .message
                .strip_prefix("expected ")
                .and_then(|m| m.split_once(", found "))
            {
                expected.push(exp.to_string());
                found = f.to_string();
            }
        }
        return vec![Problem::new(
            path,
            format!("expected {}, found {found}", expected.join(" or ")),
        )];
    }
    results
        .into_iter()
        .filter(|r| !type_only(r))
        .min_by_key(Vec::len)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, inst: Value) -> Vec<(String, String)> {
        let text = schema.to_string();
        let defs = json!({"definitions": {
            "str": {"type": "string"},
            "pos": {"$ref": "#/definitions/int"},
            "int": {"type": "integer", "minimum": 0}
        }})
        .to_string();
        let schemas = Schemas::new(&[("main.json", &text), ("defs.json", &defs)]).unwrap();
        schemas
            .validate("main.json", &inst)
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    fn paths(schema: Value, inst: Value) -> Vec<String> {
        run(schema, inst).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn types_and_integers() {
        assert!(run(json!({"type": "integer"}), json!(2)).is_empty());
        assert_eq!(
            run(json!({"type": "integer"}), json!(2.5))[0].1,
            "expected integer, found number"
        );
        assert!(run(json!({"type": "number"}), json!(2)).is_empty());
        assert_eq!(run(json!({"type": ["string", "null"]}), json!(1)).len(), 1);
        assert!(run(json!({"type": ["string", "null"]}), json!(null)).is_empty());
        assert_eq!(
            run(json!({"type": "object"}), json!([]))[0].1,
            "expected object, found array"
        );
    }

    #[test]
    fn object_keywords_report_every_failure() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "string"}, "b": {}, "n": {"type": "integer"}},
            "patternProperties": {"^x-": {"type": "boolean"}},
            "additionalProperties": false
        });
        let mut got = paths(schema.clone(), json!({"n": "1", "x-y": 1, "zzz": 0, "a/b": 1}));
        got.sort();
        assert_eq!(got, ["/a", "/a~1b", "/b", "/n", "/x-y", "/zzz"]);
        assert!(run(schema, json!({"a": "", "b": 0, "x-1": true})).is_empty());
    }

    #[test]
    fn array_keywords() {
        let schema = json!({"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "string"}});
        assert_eq!(paths(schema.clone(), json!([1])), ["", "/0"]);
        assert_eq!(paths(schema.clone(), json!(["a", "b", "c", 4])), ["", "/3"]);
        assert!(run(schema, json!(["a", "b"])).is_empty());
        let tuple = json!({"items": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(paths(tuple, json!(["a", "b", "c"])), ["/1"]);
    }

    #[test]
    fn strings_numbers_enums() {
        let s = json!({"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 3});
        assert_eq!(run(s.clone(), json!("a")).len(), 1);
        assert_eq!(run(s.clone(), json!("ABCD")).len(), 2);
        assert!(run(s, json!("abc")).is_empty());
        let n = json!({"minimum": 2, "maximum": 2});
        assert!(run(n.clone(), json!(2)).is_empty());
        assert_eq!(run(n.clone(), json!(1))[0].1, "1 is less than the minimum 2");
        assert_eq!(run(n, json!(3))[0].1, "3 is more than the maximum 2");
        let ex = json!({"minimum": 0, "exclusiveMinimum": true});
        assert_eq!(run(ex.clone(), json!(0)).len(), 1);
        assert!(run(ex, json!(0.5)).is_empty());
        // The image-spec's size maximum is written as a float-looking integer larger than i64.
        let size = json!({"type": "integer", "minimum": 0, "maximum": 9223372036854776000u64});
        assert!(run(size.clone(), json!(i64::MAX)).is_empty());
        assert_eq!(run(size, json!(-1)).len(), 1);
        let e = json!({"enum": ["1.0.0"]});
        assert!(run(e.clone(), json!("1.0.0")).is_empty());
        assert_eq!(run(e, json!("2.0.0"))[0].1, "\"2.0.0\" is not one of \"1.0.0\"");
    }

    #[test]
    fn formats() {
        for ok in [
            "2024-01-02T03:04:05Z",
            "2024-01-02T03:04:05.123456789Z",
            "2024-01-02T03:04:05+01:00",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "yesterday",
            "2024-01-02T03:04:05.Z",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
        assert!(is_uri("https://example.com/x"));
        assert!(!is_uri("/relative/path"));
        assert!(!is_uri("http://a b"));
    }

    #[test]
    fn refs_across_files_and_within() {
        let schema = json!({"properties": {
            "s": {"$ref": "defs.json#/definitions/str"},
            "p": {"$ref": "https://example.invalid/x/defs.json#/definitions/pos"}
        }});
        let mut got = paths(schema.clone(), json!({"s": 1, "p": -1}));
        got.sort();
        assert_eq!(got, ["/p", "/s"]);
        assert!(run(schema, json!({"s": "x", "p": 1})).is_empty());
        let broken = json!({"$ref": "nope.json"});
        assert!(run(broken, json!(1))[0].1.contains("cannot be resolved"));
    }

    #[test]
    fn alternatives() {
        let one = json!({"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]});
        assert!(run(one.clone(), json!(null)).is_empty());
        assert!(run(one.clone(), json!(["a"])).is_empty());
        assert_eq!(
            run(one.clone(), json!("a")),
            [(String::new(), "expected array or null, found string".into())]
        );
        // The array alternative fits the type, so its problem is the one reported.
        assert_eq!(paths(one, json!(["a", 1])), ["/1"]);
        let both = json!({"oneOf": [{"type": "integer"}, {"minimum": 0}]});
        assert!(run(both, json!(1))[0].1.contains("exactly one"));
        let any = json!({"anyOf": [{"type": "integer"}, {"minimum": 0}]});
        assert!(run(any, json!(1)).is_empty());
        let all = json!({"allOf": [{"type": "integer"}, {"minimum": 5}]});
        assert_eq!(run(all, json!(1)).len(), 1);
        let not = json!({"not": {"type": "string"}});
        assert_eq!(run(not.clone(), json!("x")).len(), 1);
        assert!(run(not, json!(1)).is_empty());
    }
}
