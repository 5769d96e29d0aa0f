//! `--format`: docker's Go templates (field paths, `range`, `json`, `table`) over the same JSON
//! objects the commands print, rendered with the gtmpl crate.

use std::collections::HashMap;

use anyhow::Context as _;
use gtmpl::{Context, FuncError, Template, Value};

/// serde_json → gtmpl value (objects keep their keys: `{{.State.Status}}`).
fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        serde_json::Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect::<HashMap<_, _>>())
        }
    }
}

/// gtmpl value → serde_json (for `{{json .}}`).
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => serde_json::json!(i),
            (None, Some(u), _) => serde_json::json!(u),
            (_, _, Some(f)) => serde_json::json!(f),
            _ => serde_json::Value::Null,
        },
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Object(map) | Value::Map(map) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, to_json(v))).collect();
            serde_json::json!(sorted)
        }
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let [value] = args else { return Err(FuncError::ExactlyXArgs("json".into(), 1)) };
    Ok(Value::String(to_json(value).to_string()))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::Array(items), Value::String(separator)] = args else {
        return Err(FuncError::ExactlyXArgs("join".into(), 2));
    };
    let parts: Vec<String> =
        items.iter().map(|v| to_json(v).as_str().map_or_else(|| v.to_string(), str::to_owned)).collect();
    Ok(Value::String(parts.join(separator)))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::String(s)] = args else { return Err(FuncError::ExactlyXArgs("upper".into(), 1)) };
    Ok(Value::String(s.to_uppercase()))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    let [Value::String(s)] = args else { return Err(FuncError::ExactlyXArgs("lower".into(), 1)) };
    Ok(Value::String(s.to_lowercase()))
}

/// A parsed `--format`; `table` prints a header of column names and aligns columns.
pub struct Format {
    template: Template,
    table: bool,
    header: Vec<String>,
}

impl Format {
    /// Parses `text`; `headers` maps field names (`ID`) to docker's column titles
    /// (`CONTAINER ID`) for `table`.
    pub fn parse(text: &str, headers: &[(&str, &str)]) -> anyhow::Result<Self> {
        // docker turns the two characters `\t` and `\n` into a tab and a newline
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) => (true, rest.trim_start().to_owned()),
            None => (false, text),
        };
        let mut template = Template::default();
        template.add_funcs(&[
            ("json", json as gtmpl::Func),
            ("join", join as gtmpl::Func),
            ("upper", upper as gtmpl::Func),
            ("lower", lower as gtmpl::Func),
        ]);
        template.parse(body.clone()).map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
        let header = if table {
            body.split('\t')
                .map(|cell| {
                    let field = cell.trim().trim_start_matches("{{").trim_end_matches("}}").trim();
                    let field = field.strip_prefix('.').unwrap_or(field);
                    headers
                        .iter()
                        .find(|(name, _)| *name == field)
                        .map_or_else(|| field.to_uppercase(), |(_, title)| (*title).to_owned())
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self { template, table, header })
    }

    /// Renders one line per item (aligned under a header for `table`).
    pub fn render(&self, items: &[serde_json::Value]) -> anyhow::Result<String> {
        let mut lines = Vec::new();
        for item in items {
            let line = self
                .template
                .render(&Context::from(to_value(item)))
                .map_err(|e| anyhow::anyhow!("template: {e}"))
                .context("cannot apply --format")?;
            lines.push(line);
        }
        if !self.table {
            return Ok(lines.iter().map(|l| format!("{l}\n")).collect());
        }
        let mut rows = vec![self.header.clone()];
        rows.extend(lines.iter().map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>()));
        let mut out = Vec::new();
        crate::commands::images::write_table(&mut out, &rows)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docker_templates() {
        let items =
            [json!({"ID": "abc", "Names": "web", "State": {"Status": "running"}, "Labels": {"a": "1"}})];
        let render = |text: &str| {
            Format::parse(text, &[("ID", "CONTAINER ID")]).expect(text).render(&items).expect(text)
        };
        assert_eq!(render("{{.ID}} {{.Names}}"), "abc web\n");
        assert_eq!(render("{{.State.Status}}"), "running\n");
        assert_eq!(render("{{json .Labels}}"), "{\"a\":\"1\"}\n");
        assert_eq!(render("{{range $k, $v := .Labels}}{{$k}}={{$v}}{{end}}"), "a=1\n");
        assert_eq!(render("table {{.ID}}\\t{{.Names}}"), "CONTAINER ID   NAMES\nabc            web\n");
        assert!(Format::parse("{{.ID", &[]).is_err());
    }
}
