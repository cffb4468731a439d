//! Commerce Layer list query strings (jsonapi-resources + Ransack): `page[…]`, `sort`,
//! `fields[kind]`, `include` and `filter[…]`, validated against a static [`Resource`] and
//! turned into SQL fragments. SQL identifiers only ever come from the static tables; every
//! request value is bound (`$n`), never interpolated.
//!
//! Choices: a repeated parameter is last-wins (a repeated filter keeps its first position);
//! a filter with a blank value, or a list of only blank items, is ignored (as Ransack does);
//! blank items of a filter list are dropped; an empty `sort` or `include` means none.
//! Json `blank` also counts `null`, `{}` and `[]`; requested sort keys put NULLs where
//! PostgreSQL does, so both engines order alike.

use std::{cmp::Reverse, collections::BTreeMap, fmt};

use time::{
    Date, OffsetDateTime, PrimitiveDateTime,
    format_description::well_known::{Iso8601, Rfc3339},
    macros::format_description,
};

/// At most this many filter parameters.
const MAX_CONDITIONS: usize = 20;
/// At most this many values in one list value.
const MAX_VALUES: usize = 100;
/// At most this many sort fields.
const MAX_SORT: usize = 10;
/// At most this many attributes joined by `_or_` in one filter.
const MAX_OR: usize = 10;
/// At most this many bound values over all filters.
const MAX_BINDS: usize = MAX_CONDITIONS * MAX_VALUES;
/// Request input quoted in an error is cut to this many characters.
const QUOTE_CHARS: usize = 64;

/// How a field is stored and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// TEXT; LIKE predicates are case-insensitive.
    Text,
    /// An integer; values parse as i64.
    Int,
    /// A boolean; values are true/false/t/f/1/0.
    Bool,
    /// Epoch milliseconds (BIGINT); values are RFC 3339 / ISO 8601 date-times or dates.
    Time,
    /// TEXT holding JSON; only null/not_null/present/blank filters.
    Json,
}

/// One attribute of a resource: wire name, SQL column, type, and what lists may do with it.
#[derive(Debug)]
pub struct Field {
    /// The attribute name on the wire.
    pub name: &'static str,
    /// The SQL column.
    pub column: &'static str,
    /// How it is stored and compared.
    pub ty: FieldType,
    /// Whether `filter[…]` may name it.
    pub filterable: bool,
    /// Whether `sort` may name it.
    pub sortable: bool,
}

/// A resource type's list rules.
#[derive(Debug)]
pub struct Resource {
    /// The JSON:API type, e.g. `api_credentials`.
    pub kind: &'static str,
    /// Attributes, including `id`, `created_at`, `updated_at` and relationship ids.
    pub fields: &'static [Field],
    /// Relationship name → the resource kind it includes.
    pub includes: &'static [(&'static str, &'static str)],
}

impl Resource {
    fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The requested page: number from 1, size 1..=25.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// The page number, from 1.
    pub number: u32,
    /// Items per page, 1..=25.
    pub size: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            number: 1,
            size: 10,
        }
    }
}

/// One sort key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The SQL column (from the static table).
    pub column: &'static str,
    /// `-name` in the request.
    pub descending: bool,
}

/// A value to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlValue {
    /// A string.
    Text(String),
    /// An integer (times too, as epoch milliseconds).
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A condition: SQL from the static tables, and values to bind, in order.
#[derive(Clone, Debug, Default)]
struct Cond(Vec<Piece>);

#[derive(Clone, Debug)]
enum Piece {
    Sql(String),
    Bind(SqlValue),
}

impl Cond {
    fn sql(&mut self, s: impl Into<String>) -> &mut Self {
        self.0.push(Piece::Sql(s.into()));
        self
    }

    fn bind(&mut self, value: SqlValue) -> &mut Self {
        self.0.push(Piece::Bind(value));
        self
    }
}

/// A parsed and validated list query.
#[derive(Clone, Debug)]
pub struct ListQuery {
    /// The page.
    pub page: Page,
    /// The requested sort, in order.
    pub sort: Vec<Sort>,
    /// Sparse fieldsets: resource kind → attribute names.
    pub fields: BTreeMap<String, Vec<&'static str>>,
    /// Relationship names to include, deduplicated, in request order.
    pub include: Vec<&'static str>,
    /// Filter parameter → its condition (None: blank, so ignored).
    conditions: Vec<(String, Option<Cond>)>,
    resource: &'static Resource,
}

/// Why a query string was refused (a 400), in Commerce Layer's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// Commerce Layer's error code, e.g. `INVALID_SORT_CRITERIA`.
    pub code: &'static str,
    /// A short human title for the code.
    pub title: &'static str,
    /// What is wrong, short.
    pub detail: String,
    /// The offending query parameter, e.g. `filter[q][foo_eq]`.
    pub parameter: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.title, self.parameter, self.detail)
    }
}

impl std::error::Error for QueryError {}

#[derive(Clone, Copy)]
enum Code {
    Page,
    Sort,
    Field,
    Include,
    NotAllowed,
    Syntax,
    Value,
    Param,
}

impl Code {
    fn err(self, parameter: &str, detail: impl Into<String>) -> QueryError {
        let (code, title) = match self {
            Code::Page => ("INVALID_PAGE_VALUE", "Invalid page value"),
            Code::Sort => ("INVALID_SORT_CRITERIA", "Invalid sort criteria"),
            Code::Field => ("INVALID_FIELD", "Invalid field"),
            Code::Include => ("INVALID_INCLUDE", "Invalid include"),
            Code::NotAllowed => ("FILTER_NOT_ALLOWED", "Filter not allowed"),
            Code::Syntax => ("INVALID_FILTERS_SYNTAX", "Invalid filters syntax"),
            Code::Value => ("INVALID_FILTER_VALUE", "Invalid filter value"),
            Code::Param => ("PARAM_NOT_ALLOWED", "Param not allowed"),
        };
        let (detail, parameter) = (detail.into(), clip(parameter));
        QueryError {
            code,
            title,
            detail,
            parameter,
        }
    }
}

/// Request input fit to quote: at most [`QUOTE_CHARS`] characters, no control characters.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(QUOTE_CHARS).collect();
    out = out.replace(char::is_control, "\u{fffd}");
    if s.chars().nth(QUOTE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `"input"`, clipped.
fn q(s: &str) -> String {
    format!("\"{}\"", clip(s))
}

/// Parses a raw, still percent-encoded query string (`+` is a space) for a list of
/// `resource`; `attributes_of(kind)` gives the attributes of a kind the response can hold.
pub fn parse(
    query: &str,
    resource: &'static Resource,
    attributes_of: impl Fn(&str) -> Option<&'static [&'static str]>,
) -> Result<ListQuery, QueryError> {
    let mut out = ListQuery {
        page: Page::default(),
        sort: Vec::new(),
        fields: BTreeMap::new(),
        include: Vec::new(),
        conditions: Vec::new(),
        resource,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.as_ref(), value.as_ref());
        let (base, segments) = split_key(key);
        match (base, segments.as_deref()) {
            ("page", Some(["number"])) => out.page.number = page_value(key, value, u32::MAX)?,
            ("page", Some(["size"])) => out.page.size = page_value(key, value, 25)?,
            ("sort", Some([])) => out.sort = sort(resource, value)?,
            ("include", Some([])) => {
                let includes = resource.includes.iter().map(|(name, _)| *name);
                out.include = pick(value, |n| includes.clone().find(|i| *i == n))
                    .map_err(|n| Code::Include.err(key, q(n) + " cannot be included"))?;
            }
            ("fields", Some([kind])) if !kind.is_empty() => {
                let attributes = attributes_of(kind)
                    .ok_or_else(|| Code::Field.err(key, q(kind) + " is not a resource type"))?;
                let list = pick(value, |n| attributes.iter().find(|a| **a == n).copied())
                    .map_err(|n| Code::Field.err(key, q(n) + " is not a field of " + kind))?;
                out.fields.insert((*kind).to_owned(), list);
            }
            ("fields", _) => return Err(Code::Field.err(key, "expected fields[<type>]")),
            ("filter", segments) => filter(&mut out, key, segments, value)?,
            _ => return Err(Code::Param.err(key, q(key) + " is not a parameter of this list")),
        }
    }
    Ok(out)
}

/// `base[a][b]` → (`base`, Some([a, b])); None when the brackets are malformed or too deep.
fn split_key(key: &str) -> (&str, Option<Vec<&str>>) {
    let (base, mut rest) = key.split_at(key.find('[').unwrap_or(key.len()));
    let mut segments = Vec::new();
    while let Some(inner) = rest.strip_prefix('[') {
        match inner.split_once(']') {
            Some((segment, tail)) if !segment.contains('[') && segments.len() < 3 => {
                segments.push(segment);
                rest = tail;
            }
            _ => return (base, None),
        }
    }
    (
        base,
        (rest.is_empty() && !base.contains(']')).then_some(segments),
    )
}

fn page_value(key: &str, value: &str, max: u32) -> Result<u32, QueryError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Code::Page.err(key, format!("{key} must be an integer from 1 to {max}"))),
    }
}

fn sort(resource: &'static Resource, value: &str) -> Result<Vec<Sort>, QueryError> {
    let mut out: Vec<Sort> = Vec::new();
    if value.split(',').nth(MAX_SORT).is_some() {
        return Err(Code::Sort.err("sort", format!("at most {MAX_SORT} sort fields")));
    }
    for item in value.split(',').filter(|_| !value.is_empty()) {
        let (descending, name) = item.strip_prefix('-').map_or((false, item), |n| (true, n));
        let Some(field) = resource.field(name).filter(|f| f.sortable) else {
            return Err(Code::Sort.err("sort", q(item) + " is not a sortable field"));
        };
        if out.iter().any(|s| s.column == field.column) {
            return Err(Code::Sort.err("sort", q(name) + " is repeated"));
        }
        out.push(Sort {
            column: field.column,
            descending,
        });
    }
    Ok(out)
}

/// The items of a comma list, each found by `find`, deduplicated; Err: an unknown item.
fn pick(
    value: &str,
    find: impl Fn(&str) -> Option<&'static str>,
) -> Result<Vec<&'static str>, &str> {
    let mut out = Vec::new();
    for item in value.split(',').filter(|_| !value.is_empty()) {
        let found = find(item).ok_or(item)?;
        if !out.contains(&found) {
            out.push(found);
        }
    }
    Ok(out)
}

/// A `filter[…]` parameter: added to `out.conditions`.
fn filter(
    out: &mut ListQuery,
    key: &str,
    segments: Option<&[&str]>,
    value: &str,
) -> Result<(), QueryError> {
    let name = match segments {
        Some(["q", name]) if !name.is_empty() => (*name).to_owned(),
        Some(["id"]) => "id_eq".into(),
        Some(["ids"]) => "id_in".into(),
        Some([n @ ("created_at_from" | "updated_at_from")]) => n.replace("_from", "_gteq"),
        Some([n @ ("created_at_to" | "updated_at_to")]) => n.replace("_to", "_lt"),
        Some([n]) if !matches!(*n, "q" | "") => {
            return Err(Code::NotAllowed.err(key, q(n) + " is not a filter"));
        }
        _ => return Err(Code::Syntax.err(key, "expected filter[q][<attribute>_<predicate>]")),
    };
    let cond = condition(out.resource, key, &name, value)?;
    match out.conditions.iter().position(|(k, _)| k == key) {
        Some(i) => out.conditions[i].1 = cond,
        None if out.conditions.len() == MAX_CONDITIONS => {
            return Err(Code::Syntax.err(key, format!("at most {MAX_CONDITIONS} filters")));
        }
        None => out.conditions.push((key.to_owned(), cond)),
    }
    let pieces = out
        .conditions
        .iter()
        .flat_map(|(_, c)| c.iter().flat_map(|c| &c.0));
    if pieces.filter(|p| matches!(p, Piece::Bind(_))).count() > MAX_BINDS {
        return Err(Code::Syntax.err(key, format!("at most {MAX_BINDS} values in all")));
    }
    Ok(())
}

/// How a LIKE pattern is made from the value.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Cont,
    Start,
    End,
    Raw,
}

/// A Ransack predicate.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `col <op> $n`.
    Cmp(&'static str),
    /// `col [NOT] IN (…)`; true: NOT.
    In(bool),
    /// `LOWER(col) [NOT] LIKE LOWER($n)`; true: NOT.
    Like(Shape, bool),
    /// Any of several `cont` patterns.
    ContAny,
    /// `IS NULL`, or (true) `IS NOT NULL`, when the value is true.
    Null(bool),
    /// Present, or (true) blank, when the value is true.
    Present(bool),
    /// `col = <bool>` when the value is true.
    Is(bool),
}

const PREDICATES: &[(&str, Op)] = &[
    ("eq", Op::Cmp("=")),
    ("not_eq", Op::Cmp("<>")),
    ("gt", Op::Cmp(">")),
    ("gteq", Op::Cmp(">=")),
    ("lt", Op::Cmp("<")),
    ("lteq", Op::Cmp("<=")),
    ("in", Op::In(false)),
    ("eq_any", Op::In(false)),
    ("not_in", Op::In(true)),
    ("not_eq_all", Op::In(true)),
    ("matches", Op::Like(Shape::Raw, false)),
    ("does_not_match", Op::Like(Shape::Raw, true)),
    ("cont", Op::Like(Shape::Cont, false)),
    ("not_cont", Op::Like(Shape::Cont, true)),
    ("cont_any", Op::ContAny),
    ("start", Op::Like(Shape::Start, false)),
    ("not_start", Op::Like(Shape::Start, true)),
    ("end", Op::Like(Shape::End, false)),
    ("not_end", Op::Like(Shape::End, true)),
    ("null", Op::Null(false)),
    ("not_null", Op::Null(true)),
    ("present", Op::Present(false)),
    ("blank", Op::Present(true)),
    ("true", Op::Is(true)),
    ("false", Op::Is(false)),
];

/// Whether a predicate applies to a type.
fn applies(op: Op, ty: FieldType) -> bool {
    match op {
        Op::Null(_) | Op::Present(_) => true,
        Op::Like(..) | Op::ContAny => ty == FieldType::Text,
        Op::Is(_) => ty == FieldType::Bool,
        Op::Cmp(_) | Op::In(_) => ty != FieldType::Json,
    }
}

/// Reads `attrs` as field names joined by `_or_` into `out`.
fn resolve(resource: &'static Resource, attrs: &str, out: &mut Vec<&'static Field>) -> bool {
    for field in resource.fields {
        let Some(rest) = attrs.strip_prefix(field.name) else {
            continue;
        };
        out.push(field);
        if rest.is_empty()
            || rest
                .strip_prefix("_or_")
                .is_some_and(|r| resolve(resource, r, out))
        {
            return true;
        }
        out.pop();
    }
    false
}

/// The condition of `filter[q][<name>]=value` (None when the value is blank).
fn condition(
    resource: &'static Resource,
    key: &str,
    name: &str,
    value: &str,
) -> Result<Option<Cond>, QueryError> {
    let attrs = |p: &str| {
        name.strip_suffix(p)?
            .strip_suffix('_')
            .filter(|a| !a.is_empty())
    };
    let mut candidates: Vec<_> = PREDICATES
        .iter()
        .filter(|(p, _)| attrs(p).is_some())
        .collect();
    if candidates.is_empty() {
        return Err(Code::Syntax.err(key, "no predicate in ".to_owned() + &q(name)));
    }
    if name.matches("_or_").count() >= MAX_OR {
        return Err(Code::Syntax.err(key, format!("at most {MAX_OR} attributes joined by _or_")));
    }
    // The longest predicate whose attributes resolve.
    candidates.sort_by_key(|(p, _)| Reverse(p.len()));
    let mut fields = Vec::new();
    let Some(&&(_, op)) = candidates.iter().find(|(p, _)| {
        fields.clear();
        attrs(p).is_some_and(|a| resolve(resource, a, &mut fields))
    }) else {
        return Err(Code::NotAllowed.err(key, q(name) + " names no filterable attribute"));
    };
    if let Some(f) = fields.iter().find(|f| !f.filterable || !applies(op, f.ty)) {
        return Err(Code::NotAllowed.err(key, format!("{} cannot filter {}", q(name), f.name)));
    }
    let values: Vec<&str> = match op {
        Op::In(_) | Op::ContAny if value.split(',').nth(MAX_VALUES).is_some() => {
            return Err(Code::Syntax.err(key, format!("at most {MAX_VALUES} values in a list")));
        }
        Op::In(_) | Op::ContAny => value.split(',').filter(|v| !v.is_empty()).collect(),
        _ => Some(value).filter(|v| !v.is_empty()).into_iter().collect(),
    };
    let Some(&first) = values.first() else {
        return Ok(None);
    };
    let flag = match op {
        Op::Null(_) | Op::Present(_) | Op::Is(_) => {
            parse_bool(first).ok_or_else(|| Code::Value.err(key, q(first) + " is not a boolean"))?
        }
        _ => false,
    };
    let mut c = Cond::default();
    let or = fields.len() > 1;
    c.sql(if or { "(" } else { "" });
    for (i, field) in fields.iter().enumerate() {
        c.sql(if i > 0 { " OR " } else { "" });
        term(&mut c, key, field, op, &values, flag)?;
    }
    c.sql(if or { ")" } else { "" });
    Ok(Some(c))
}

/// One field's part of a condition; `values` is not empty, `flag` is a boolean value.
fn term(
    c: &mut Cond,
    key: &str,
    field: &Field,
    op: Op,
    values: &[&str],
    flag: bool,
) -> Result<(), QueryError> {
    let (col, first) = (field.column, values.first().copied().unwrap_or_default());
    let not = |negated: bool| if negated { "NOT " } else { "" };
    match op {
        Op::Cmp(cmp) => {
            c.sql(format!("{col} {cmp} "))
                .bind(typed(key, field, first)?);
        }
        Op::In(negated) => {
            c.sql(format!("{col} {}IN (", not(negated)));
            for (i, v) in values.iter().enumerate() {
                c.sql(if i > 0 { ", " } else { "" })
                    .bind(typed(key, field, v)?);
            }
            c.sql(")");
        }
        Op::Like(shape, negated) => like(c, key, col, shape, negated, first)?,
        Op::ContAny => {
            c.sql("(");
            for (i, v) in values.iter().enumerate() {
                c.sql(if i > 0 { " OR " } else { "" });
                like(c, key, col, Shape::Cont, false, v)?;
            }
            c.sql(")");
        }
        Op::Null(negated) => {
            c.sql(format!("{col} IS {}NULL", not(flag == negated)));
        }
        Op::Present(negated) => {
            let blanks = match field.ty {
                FieldType::Text => "''",
                FieldType::Json => "'', 'null', '{}', '[]'",
                _ => "",
            };
            c.sql(match (flag != negated, blanks.is_empty()) {
                (present, true) => format!("{col} IS {}NULL", not(present)),
                (true, false) => format!("({col} IS NOT NULL AND {col} NOT IN ({blanks}))"),
                (false, false) => format!("({col} IS NULL OR {col} IN ({blanks}))"),
            });
        }
        Op::Is(target) => {
            let cmp = if flag { "=" } else { "<>" };
            c.sql(format!("{col} {cmp} ")).bind(SqlValue::Bool(target));
        }
    }
    Ok(())
}

/// `LOWER(col) [NOT] LIKE LOWER($n) ESCAPE '\'`, the pattern made from `value`.
fn like(
    c: &mut Cond,
    key: &str,
    col: &str,
    shape: Shape,
    negated: bool,
    value: &str,
) -> Result<(), QueryError> {
    let escaped = || {
        value
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    };
    let pattern = match shape {
        Shape::Cont => format!("%{}%", escaped()),
        Shape::Start => format!("{}%", escaped()),
        Shape::End => format!("%{}", escaped()),
        // A pattern ending in a lone escape character is an error on PostgreSQL.
        Shape::Raw if value.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 => {
            return Err(Code::Value.err(key, "a pattern cannot end with an escape character"));
        }
        Shape::Raw => value.to_owned(),
    };
    let not = if negated { "NOT " } else { "" };
    c.sql(format!("LOWER({col}) {not}LIKE LOWER("));
    c.bind(SqlValue::Text(pattern)).sql(") ESCAPE '\\'");
    Ok(())
}

/// `value` as a value of `field`'s type.
fn typed(key: &str, field: &Field, value: &str) -> Result<SqlValue, QueryError> {
    let (parsed, what) = match field.ty {
        FieldType::Text => (Some(SqlValue::Text(value.to_owned())), "text"),
        FieldType::Int => (value.parse().ok().map(SqlValue::Int), "an integer"),
        FieldType::Bool => (parse_bool(value).map(SqlValue::Bool), "a boolean"),
        FieldType::Time => (parse_time(value).map(SqlValue::Int), "a date-time"),
        FieldType::Json => (None, "comparable"),
    };
    let detail = || format!("{} is not {what} ({})", q(value), field.name);
    parsed.ok_or_else(|| Code::Value.err(key, detail()))
}

/// Ransack's booleans: true/false/t/f (any case), 1/0.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// An RFC 3339 / ISO 8601 date-time (UTC when it has no offset) or a date (midnight UTC),
/// as epoch milliseconds.
fn parse_time(value: &str) -> Option<i64> {
    let date = format_description!("[year]-[month]-[day]");
    let time = OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(value, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(value, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .or_else(|_| Date::parse(value, date).map(|d| d.midnight().assume_utc()))
        .ok()?;
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

impl ListQuery {
    /// Narrows the list to rows whose field `name` equals `value` (a related list, such as
    /// a role's api credentials). `name` must be one of the resource's fields.
    pub fn and_equal(mut self, name: &str, value: &str) -> Self {
        if let Some(field) = self.resource.field(name) {
            let pieces = vec![
                Piece::Sql(format!("{} = ", field.column)),
                Piece::Bind(SqlValue::Text(value.to_owned())),
            ];
            self.conditions.push((name.to_owned(), Some(Cond(pieces))));
        }
        self
    }

    /// The filters as `" AND …"` conditions with placeholders from `$first`, and their values.
    pub fn where_sql(&self, first: usize) -> (String, Vec<SqlValue>) {
        let (mut sql, mut binds) = (String::new(), Vec::new());
        for cond in self.conditions.iter().filter_map(|(_, c)| c.as_ref()) {
            sql.push_str(" AND ");
            for piece in &cond.0 {
                match piece {
                    Piece::Sql(s) => sql.push_str(s),
                    Piece::Bind(v) => {
                        sql.push_str(&format!("${}", first + binds.len()));
                        binds.push(v.clone());
                    }
                }
            }
        }
        (sql, binds)
    }

    /// `" ORDER BY …"`: the requested sort, NULLs placed as PostgreSQL does (last ascending,
    /// first descending), else `created_at`; then `id` ascending unless already sorted on.
    pub fn order_sql(&self) -> String {
        let requested = self.sort.iter().map(|s| match s.descending {
            true => format!("{} DESC NULLS FIRST", s.column),
            false => format!("{} ASC NULLS LAST", s.column),
        });
        let mut keys: Vec<String> = requested.collect();
        let default = self
            .resource
            .field("created_at")
            .filter(|_| keys.is_empty());
        let id = self
            .resource
            .field("id")
            .filter(|id| self.sort.iter().all(|s| s.column != id.column));
        keys.extend(
            default
                .into_iter()
                .chain(id)
                .map(|f| format!("{} ASC", f.column)),
        );
        if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", keys.join(", "))
        }
    }

    /// `" LIMIT size OFFSET (number - 1) * size"`.
    pub fn limit_sql(&self) -> String {
        let offset = u64::from(self.page.number.saturating_sub(1)) * u64::from(self.page.size);
        format!(" LIMIT {} OFFSET {offset}", self.page.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldType::{Bool, Int, Json, Text, Time};

    const fn f(name: &'static str, ty: FieldType, filterable: bool, sortable: bool) -> Field {
        Field {
            name,
            column: name,
            ty,
            filterable,
            sortable,
        }
    }

    static CREDENTIALS: Resource = Resource {
        kind: "api_credentials",
        fields: &[
            f("id", Text, true, true),
            f("name", Text, true, false),
            f("kind", Text, true, false),
            f("mode", Text, true, true),
            f("custom", Bool, true, false),
            f("expires_in", Int, true, false),
            f("reference", Text, true, true),
            f("reference_origin", Text, true, true),
            f("metadata", Json, true, false),
            f("role_id", Text, true, false),
            f("created_at", Time, true, true),
            f("updated_at", Time, true, true),
            f("secret_digest", Text, false, false),
        ],
        includes: &[("organization", "organizations"), ("role", "roles")],
    };

    fn attributes_of(kind: &str) -> Option<&'static [&'static str]> {
        match kind {
            "api_credentials" => Some(&["name", "kind", "mode", "metadata", "created_at"]),
            "organizations" => Some(&["name", "slug"]),
            "roles" => Some(&["name", "kind"]),
            _ => None,
        }
    }

    fn parsed(query: &str) -> ListQuery {
        parse(query, &CREDENTIALS, attributes_of).unwrap()
    }

    /// The WHERE fragment from `$1`, and the binds as `'text', 1, true`.
    fn sql(query: &str) -> (String, String) {
        let (sql, binds) = parsed(query).where_sql(1);
        let binds: Vec<String> = binds
            .iter()
            .map(|v| match v {
                SqlValue::Text(s) => format!("'{s}'"),
                SqlValue::Int(n) => n.to_string(),
                SqlValue::Bool(b) => b.to_string(),
            })
            .collect();
        (sql, binds.join(", "))
    }

    /// The error's code and parameter.
    fn error(query: &str) -> (&'static str, String) {
        let e = parse(query, &CREDENTIALS, attributes_of).unwrap_err();
        assert!(e.detail.chars().count() < 140, "{e}");
        (e.code, e.parameter)
    }

    #[test]
    fn sdk_example() {
        let q = parsed(
            "include=organization%2Crole&fields%5Bapi_credentials%5D=name%2Ckind&sort=-created_at\
             &page%5Bnumber%5D=2&page%5Bsize%5D=25&filter%5Bq%5D%5Bkind_eq%5D=integration\
             &filter%5Bq%5D%5Bname_start%5D=My+app",
        );
        assert_eq!(
            q.page,
            Page {
                number: 2,
                size: 25
            }
        );
        assert_eq!(
            q.sort,
            [Sort {
                column: "created_at",
                descending: true
            }]
        );
        assert_eq!(
            q.fields,
            BTreeMap::from([("api_credentials".into(), vec!["name", "kind"])])
        );
        assert_eq!(q.include, ["organization", "role"]);
        let (sql, binds) = q.where_sql(3);
        assert_eq!(
            sql,
            " AND kind = $3 AND LOWER(name) LIKE LOWER($4) ESCAPE '\\'"
        );
        assert_eq!(
            binds,
            [
                SqlValue::Text("integration".into()),
                SqlValue::Text("My app%".into())
            ]
        );
        assert_eq!(
            q.order_sql(),
            " ORDER BY created_at DESC NULLS FIRST, id ASC"
        );
        assert_eq!(q.limit_sql(), " LIMIT 25 OFFSET 25");
    }

    #[test]
    fn defaults_order_lists_and_repeats() {
        let q = parsed("");
        assert_eq!(
            q.page,
            Page {
                number: 1,
                size: 10
            }
        );
        assert_eq!(q.where_sql(1), (String::new(), vec![]));
        assert_eq!(q.order_sql(), " ORDER BY created_at ASC, id ASC");
        assert_eq!(q.limit_sql(), " LIMIT 10 OFFSET 0");
        assert_eq!(
            parsed("sort=-id,mode").order_sql(),
            " ORDER BY id DESC NULLS FIRST, mode ASC NULLS LAST"
        );
        assert_eq!(
            parsed("sort=&include=").order_sql(),
            " ORDER BY created_at ASC, id ASC"
        );
        assert_eq!(
            parsed("include=role,organization,role").include,
            ["role", "organization"]
        );
        assert_eq!(parsed("fields[roles]=").fields["roles"], Vec::<&str>::new());
        assert_eq!(
            parsed("page[size]=3&page[size]=4&page[number]=3").limit_sql(),
            " LIMIT 4 OFFSET 8"
        );
        // A repeated filter: last wins, in the first one's place; a blank one is ignored.
        let q = "filter[q][name_eq]=a&filter[q][mode_eq]=b&filter[q][name_eq]=c&filter[q][id_in]=,";
        assert_eq!(
            sql(q),
            (" AND name = $1 AND mode = $2".into(), "'c', 'b'".into())
        );
        assert_eq!(
            sql("filter[q][name_eq]=a&filter[q][name_eq]="),
            (String::new(), String::new())
        );
        let q = "filter[id]=a&filter[ids]=b,c&filter[created_at_from]=2023-01-01\
                 &filter[updated_at_to]=2023-01-02";
        let (sql, binds) = sql(q);
        assert_eq!(
            sql,
            " AND id = $1 AND id IN ($2, $3) AND created_at >= $4 AND updated_at < $5"
        );
        assert_eq!(binds, "'a', 'b', 'c', 1672531200000, 1672617600000");
    }

    /// `filter[q][<key>]=<value>` → the condition and its binds.
    #[rustfmt::skip]
    const FILTERS: &[(&str, &str, &str)] = &[
        ("kind_eq=integration", "kind = $1", "'integration'"),
        ("reference_origin_eq=web", "reference_origin = $1", "'web'"),
        ("reference_origin_or_reference_eq=a", "(reference_origin = $1 OR reference = $2)", "'a', 'a'"),
        ("name_or_reference_cont=x", "(LOWER(name) LIKE LOWER($1) ESCAPE '\\' OR \
            LOWER(reference) LIKE LOWER($2) ESCAPE '\\')", "'%x%', '%x%'"),
        ("name_or_expires_in_eq=5", "(name = $1 OR expires_in = $2)", "'5', 5"),
        ("role_id_not_eq=r1", "role_id <> $1", "'r1'"),
        ("expires_in_eq=-7", "expires_in = $1", "-7"),
        ("expires_in_not_eq=1", "expires_in <> $1", "1"),
        ("expires_in_gt=1", "expires_in > $1", "1"),
        ("expires_in_gteq=1", "expires_in >= $1", "1"),
        ("expires_in_lt=1", "expires_in < $1", "1"),
        ("expires_in_lteq=1", "expires_in <= $1", "1"),
        ("expires_in_in=1,2", "expires_in IN ($1, $2)", "1, 2"),
        ("mode_eq_any=live,,test", "mode IN ($1, $2)", "'live', 'test'"),
        ("mode_not_in=a", "mode NOT IN ($1)", "'a'"),
        ("mode_not_eq_all=a,b", "mode NOT IN ($1, $2)", "'a', 'b'"),
        ("name_cont=50%25_a%5Cb", "LOWER(name) LIKE LOWER($1) ESCAPE '\\'", r"'%50\%\_a\\b%'"),
        ("name_not_cont=x", "LOWER(name) NOT LIKE LOWER($1) ESCAPE '\\'", "'%x%'"),
        ("name_start=x_", "LOWER(name) LIKE LOWER($1) ESCAPE '\\'", r"'x\_%'"),
        ("name_not_start=x", "LOWER(name) NOT LIKE LOWER($1) ESCAPE '\\'", "'x%'"),
        ("name_end=x", "LOWER(name) LIKE LOWER($1) ESCAPE '\\'", "'%x'"),
        ("name_not_end=x", "LOWER(name) NOT LIKE LOWER($1) ESCAPE '\\'", "'%x'"),
        ("name_matches=a%25b_", "LOWER(name) LIKE LOWER($1) ESCAPE '\\'", "'a%b_'"),
        ("name_does_not_match=a%5C%25", "LOWER(name) NOT LIKE LOWER($1) ESCAPE '\\'", r"'a\%'"),
        ("name_cont_any=a,b", "(LOWER(name) LIKE LOWER($1) ESCAPE '\\' OR \
            LOWER(name) LIKE LOWER($2) ESCAPE '\\')", "'%a%', '%b%'"),
        ("name_null=true", "name IS NULL", ""),
        ("name_null=false", "name IS NOT NULL", ""),
        ("name_not_null=1", "name IS NOT NULL", ""),
        ("name_not_null=0", "name IS NULL", ""),
        ("name_present=t", "(name IS NOT NULL AND name NOT IN (''))", ""),
        ("name_blank=T", "(name IS NULL OR name IN (''))", ""),
        ("name_blank=f", "(name IS NOT NULL AND name NOT IN (''))", ""),
        ("expires_in_present=true", "expires_in IS NOT NULL", ""),
        ("created_at_blank=true", "created_at IS NULL", ""),
        ("metadata_not_null=true", "metadata IS NOT NULL", ""),
        ("metadata_blank=TRUE", "(metadata IS NULL OR metadata IN ('', 'null', '{}', '[]'))", ""),
        ("custom_true=1", "custom = $1", "true"),
        ("custom_true=false", "custom <> $1", "true"),
        ("custom_false=true", "custom = $1", "false"),
        ("custom_eq=t", "custom = $1", "true"),
        ("custom_eq=TRUE", "custom = $1", "true"),
        ("custom_eq=F", "custom = $1", "false"),
        ("custom_not_eq=0", "custom <> $1", "false"),
        ("created_at_gteq=2023-01-01T00:00:00Z", "created_at >= $1", "1672531200000"),
        ("created_at_lt=2023-01-01T00:00:00.123%2B02:00", "created_at < $1", "1672524000123"),
        ("updated_at_eq=2023-01-01", "updated_at = $1", "1672531200000"),
        ("updated_at_eq=2023-01-01T00:00:00", "updated_at = $1", "1672531200000"),
        ("updated_at_gt=1969-12-31T23:59:59.9995Z", "updated_at > $1", "-1"),
    ];

    #[test]
    fn filters() {
        for (query, where_, binds) in FILTERS {
            let query = format!("filter%5Bq%5D%5B{}", query.replacen('=', "%5D=", 1));
            assert_eq!(
                sql(&query),
                (format!(" AND {where_}"), binds.to_string()),
                "{query}"
            );
        }
    }

    /// A query string → the error code; the parameter is always the query's key.
    #[rustfmt::skip]
    const ERRORS: &[(&str, &str)] = &[
        ("page[size]=26", "INVALID_PAGE_VALUE"),
        ("page[size]=0", "INVALID_PAGE_VALUE"),
        ("page[number]=0", "INVALID_PAGE_VALUE"),
        ("page[number]=two", "INVALID_PAGE_VALUE"),
        ("page[offset]=1", "PARAM_NOT_ALLOWED"),
        ("page=1", "PARAM_NOT_ALLOWED"),
        ("sort[x]=1", "PARAM_NOT_ALLOWED"),
        ("foo=1", "PARAM_NOT_ALLOWED"),
        ("sort=name", "INVALID_SORT_CRITERIA"),
        ("sort=nope", "INVALID_SORT_CRITERIA"),
        ("sort=--id", "INVALID_SORT_CRITERIA"),
        ("sort=mode,-mode", "INVALID_SORT_CRITERIA"),
        ("sort=mode,", "INVALID_SORT_CRITERIA"),
        ("fields[nope]=name", "INVALID_FIELD"),
        ("fields[roles]=slug", "INVALID_FIELD"),
        ("fields=name", "INVALID_FIELD"),
        ("fields[roles][x]=name", "INVALID_FIELD"),
        ("include=owner", "INVALID_INCLUDE"),
        ("include=role.permissions", "INVALID_INCLUDE"),
        ("include=role,", "INVALID_INCLUDE"),
        ("filter[q][foo_eq]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][secret_digest_eq]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][name_or_secret_digest_eq]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][metadata_eq]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][expires_in_cont]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][name_true]=1", "FILTER_NOT_ALLOWED"),
        ("filter[q][name_and_kind_eq]=1", "FILTER_NOT_ALLOWED"),
        ("filter[name]=x", "FILTER_NOT_ALLOWED"),
        ("filter[q][name_bogus]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][eq]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][name_eq][x]=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][name_eq=x", "INVALID_FILTERS_SYNTAX"),
        ("filter=x", "INVALID_FILTERS_SYNTAX"),
        ("filter[q][expires_in_eq]=1.5", "INVALID_FILTER_VALUE"),
        ("filter[q][expires_in_in]=1,x", "INVALID_FILTER_VALUE"),
        ("filter[q][custom_eq]=yes", "INVALID_FILTER_VALUE"),
        ("filter[q][custom_null]=maybe", "INVALID_FILTER_VALUE"),
        ("filter[q][created_at_gt]=2023-13-01", "INVALID_FILTER_VALUE"),
        ("filter[created_at_to]=yesterday", "INVALID_FILTER_VALUE"),
        ("filter[q][name_matches]=a%5C", "INVALID_FILTER_VALUE"),
    ];

    #[test]
    fn errors() {
        for (query, code) in ERRORS {
            let key = query.split('=').next().unwrap_or_default();
            assert_eq!(error(query), (*code, key.to_owned()), "{query}");
        }
        let e = parse("sort=nope", &CREDENTIALS, attributes_of).unwrap_err();
        assert_eq!(
            (e.title, e.detail.as_str()),
            ("Invalid sort criteria", "\"nope\" is not a sortable field")
        );
        let e = parse(
            &format!("{}=1", "x".repeat(5000)),
            &CREDENTIALS,
            attributes_of,
        )
        .unwrap_err();
        assert_eq!(
            (e.parameter.chars().count(), e.detail.chars().count()),
            (65, 99)
        );
    }

    #[test]
    fn limits() {
        let repeated = "filter[q][name_eq]=a&filter[q][kind_eq]=b&".repeat(30);
        assert_eq!(sql(&repeated).1, "'a', 'b'");
        let distinct: Vec<String> = ["name", "kind", "mode", "reference", "role_id"]
            .iter()
            .flat_map(|f| {
                ["eq", "not_eq", "start", "end", "cont"].map(|p| format!("filter[q][{f}_{p}]=1"))
            })
            .collect();
        assert_eq!(parsed(&distinct[..20].join("&")).where_sql(1).1.len(), 20);
        assert_eq!(
            error(&distinct[..21].join("&")),
            ("INVALID_FILTERS_SYNTAX", "filter[q][role_id_eq]".into())
        );
        let list = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(
            parsed(&format!("filter[q][expires_in_in]={}", list(100)))
                .where_sql(1)
                .1
                .len(),
            100
        );
        let e = error(&format!("filter[q][expires_in_in]={}", list(101)));
        assert_eq!(
            e,
            ("INVALID_FILTERS_SYNTAX", "filter[q][expires_in_in]".into())
        );
        let ors = |f: &str, n: usize| vec![f; n].join("_or_");
        assert_eq!(
            parsed(&format!("filter[q][{}_eq]=x", ors("name", 10)))
                .where_sql(1)
                .1
                .len(),
            10
        );
        assert_eq!(
            error(&format!("filter[q][{}_eq]=x", ors("name", 11))).0,
            "INVALID_FILTERS_SYNTAX"
        );
        // 10 attributes × 100 values binds 1000; 2000 in all at most.
        let wide = |f: &str| format!("filter[q][{}_in]={}", ors(f, 10), list(100));
        assert_eq!(
            parsed(&[wide("name"), wide("kind")].join("&"))
                .where_sql(1)
                .1
                .len(),
            2000
        );
        let e = error(&[wide("name"), wide("kind"), wide("mode")].join("&"));
        assert_eq!(e.0, "INVALID_FILTERS_SYNTAX");
        let six = "sort=id,mode,reference,reference_origin,created_at,updated_at";
        assert_eq!(parsed(six).sort.len(), 6);
        assert_eq!(
            error(&format!("sort={}", ["id"; 11].join(","))),
            ("INVALID_SORT_CRITERIA", "sort".into())
        );
    }
}
