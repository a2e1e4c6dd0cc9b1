//! Search spaces: the JSON spec the Python layer sends, validated and compiled into genes.
//!
//! A spec is a tree: `{"dict": [[key, node], ...]}`, `{"list": [node, ...]}` (top level only) or
//! `{"param": {...}, "path": "['a']['b']"}`. Leaves are numbered in depth-first order; that order
//! is the column order of `ask_array`.

use crate::error::{Error, Result};
use crate::expr::{display_path, parse, parse_path, Ast, Seg, V};
use serde::Deserialize;

/// A plain value a parameter can take. JSON `1` is an `Int`, `1.0` a `Float`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A number in a range definition; its type decides whether the range yields ints or floats.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// One parameter as the user wrote it (`ss.range`, `ss.choice`, `ss.literal`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ParamSpec {
    Range {
        start: Num,
        end: Num,
        #[serde(default)]
        step: Option<Num>,
        #[serde(default)]
        knockout_prob: Option<f64>,
        #[serde(default)]
        seed_low: Option<Num>,
        #[serde(default)]
        seed_high: Option<Num>,
        #[serde(default)]
        when: Option<WhenSpec>,
    },
    Choice {
        values: Vec<Value>,
        #[serde(default)]
        knockout_prob: Option<f64>,
        #[serde(default)]
        when: Option<WhenSpec>,
    },
    Literal {
        value: Value,
        #[serde(default)]
        knockout_prob: Option<f64>,
        #[serde(default)]
        when: Option<WhenSpec>,
    },
}

/// When a parameter exists: `"path"` (that parameter is present) or `{"path": [values]}` (each
/// named parameter is present and has one of its values).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WhenSpec {
    Present(String),
    Values(std::collections::BTreeMap<String, Vec<Value>>),
}

/// One condition of a parameter's `when`: `gate` is active and, with `allowed`, at one of the
/// allowed gene indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub gate: usize,
    pub allowed: Option<Vec<bool>>,
}

/// A compiled constraint expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    pub text: String,
    pub ast: Ast<usize>,
}

/// The tree of the spec as received.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeSpec {
    Dict(Vec<(String, NodeSpec)>),
    List(Vec<NodeSpec>),
    #[serde(untagged)]
    Param {
        param: ParamSpec,
        path: String,
    },
}

/// The values a compiled parameter can take.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// `start + k*step`, `k` in `0..levels`, as ints.
    IntGrid {
        start: i64,
        step: i64,
        levels: u64,
    },
    /// `start + k*step`, `k` in `0..levels`, as floats, never beyond `end`. When `start` and
    /// `step` are short decimals, `scale = 10^d` and values are computed as
    /// `(start·scale + k·step·scale) / scale`, so `range(0.0, 0.3, 0.1)` yields exactly 0.1,
    /// 0.2, 0.3; otherwise `scale` is 0.
    FloatGrid {
        start: f64,
        step: f64,
        levels: u64,
        end: f64,
        scale: f64,
    },
    /// Any float in `[low, high]`.
    Continuous {
        low: f64,
        high: f64,
    },
    Choice {
        values: Vec<Value>,
    },
    Literal {
        value: Value,
    },
}

/// How the genetic operators treat a parameter's value gene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeneKind {
    /// Integer index in `0..levels`, ordered: SBX and polynomial mutation, then rounding.
    Ordinal { levels: u64 },
    /// A float in `[low, high]`: SBX and polynomial mutation.
    Real { low: f64, high: f64 },
    /// Unordered index in `0..n`: uniform crossover, resampling mutation.
    Categorical { n: u64 },
    /// Nothing to evolve (a literal).
    Fixed,
}

/// A compiled leaf parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub path: String,
    pub domain: Domain,
    /// Probability of being absent at initialisation; `None` means the key is always present.
    pub knockout: Option<f64>,
    /// Bounds of the seed sub-range in gene space (index or value), used only at initialisation.
    pub seed_bounds: Option<(f64, f64)>,
    /// The `when` as written; [`Space`] resolves it into conditions.
    pub when: Option<WhenSpec>,
}

/// The output shape of a candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    Dict(Vec<(String, Layout)>),
    List(Vec<Layout>),
    Leaf(usize),
}

/// A compiled search space.
#[derive(Debug, Clone, PartialEq)]
pub struct Space {
    pub params: Vec<Param>,
    pub layout: Layout,
    /// Per parameter, the conditions of its `when` (empty: always active).
    pub conditions: Vec<Vec<Cond>>,
    /// The parameters in an order where every gate comes before what it gates.
    pub order: Vec<usize>,
    /// Whether any parameter has a `when`.
    pub gated: bool,
    pub constraints: Vec<Constraint>,
}

/// Largest grid we index exactly with f64 genes.
const MAX_LEVELS: u64 = 1 << 52;

/// `10^d` for the smallest `d <= 12` at which `start` and `step` are whole numbers and every
/// grid value stays exactly representable; 0 when there is none.
fn decimal_scale(start: f64, step: f64, levels: u64) -> f64 {
    let whole = |v: f64| (v - v.round()).abs() <= 4.0 * f64::EPSILON * v.abs().max(1.0);
    let mut scale = 1.0f64;
    for _ in 0..=12 {
        let (a, s) = (start * scale, step * scale);
        if whole(a) && whole(s) {
            let top = a.round().abs() + s.round().abs() * levels as f64;
            return if top < 9.0e15 { scale } else { 0.0 };
        }
        scale *= 10.0;
    }
    0.0
}

/// The `k`-th value of a float grid, never beyond its end.
#[inline]
fn float_grid_value(start: f64, step: f64, end: f64, scale: f64, k: f64) -> f64 {
    let v = if scale > 0.0 {
        ((start * scale).round() + k * (step * scale).round()) / scale
    } else {
        start + k * step
    };
    v.clamp(start, end)
}

fn check_knockout(path: &str, knockout_prob: Option<f64>) -> Result<Option<f64>> {
    match knockout_prob {
        None => Ok(None),
        Some(p) if !(0.0..=1.0).contains(&p) => Err(Error::space(
            path,
            format!("knockout_prob must be within [0, 1], got {p}"),
        )),
        // A zero knockout probability means the key is never absent: no knockout gene.
        Some(0.0) => Ok(None),
        Some(p) => Ok(Some(p)),
    }
}

/// Checks the syntax of a `when`'s paths (they are resolved once the whole space is known).
fn checked_when(path: &str, when: &Option<WhenSpec>) -> Result<Option<WhenSpec>> {
    let paths: Vec<&String> = match when {
        None => return Ok(None),
        Some(WhenSpec::Present(p)) => vec![p],
        Some(WhenSpec::Values(map)) => {
            if map.is_empty() {
                return Err(Error::space(path, "when= needs at least one parameter"));
            }
            for (gate, values) in map {
                if values.is_empty() {
                    return Err(Error::space(
                        path,
                        format!("when={{{gate:?}: [...]}} needs at least one value"),
                    ));
                }
                for v in values {
                    check_value(path, "when values", v)?;
                }
            }
            map.keys().collect()
        }
    };
    for p in paths {
        parse_path(p).map_err(|e| Error::space(path, format!("when={p:?}: {e}")))?;
    }
    Ok(when.clone())
}

fn value_v(v: &Value) -> V<'_> {
    match v {
        Value::Bool(b) => V::Bool(*b),
        Value::Int(i) => V::Int(*i),
        Value::Float(f) => V::Float(*f),
        Value::Str(s) => V::Str(s),
    }
}

fn check_value(path: &str, what: &str, value: &Value) -> Result<()> {
    if let Value::Float(f) = value {
        if !f.is_finite() {
            return Err(Error::space(
                path,
                format!("{what} must be finite, got {f}"),
            ));
        }
    }
    Ok(())
}

impl Param {
    /// Validates a spec and compiles it. `path` is used in error messages.
    pub fn compile(spec: &ParamSpec, path: &str) -> Result<Param> {
        match spec {
            ParamSpec::Range {
                start,
                end,
                step,
                knockout_prob,
                seed_low,
                seed_high,
                when,
            } => {
                let knockout = check_knockout(path, *knockout_prob)?;
                for (name, v) in [
                    ("start", Some(*start)),
                    ("end", Some(*end)),
                    ("step", *step),
                ] {
                    if let Some(v) = v {
                        if !v.as_f64().is_finite() {
                            return Err(Error::space(
                                path,
                                format!("range {name} must be finite, got {}", v.as_f64()),
                            ));
                        }
                    }
                }
                let (lo, hi) = (start.as_f64(), end.as_f64());
                let reversed = match (start, end) {
                    (Num::Int(a), Num::Int(b)) => b <= a,
                    _ => hi <= lo,
                };
                if reversed {
                    return Err(Error::space(
                        path,
                        format!("range end ({hi}) must be greater than start ({lo})"),
                    ));
                }
                if !(hi - lo).is_finite() {
                    return Err(Error::space(
                        path,
                        format!("range [{lo}, {hi}] is too wide: end - start overflows a float"),
                    ));
                }
                if let Some(s) = step {
                    if s.as_f64() <= 0.0 {
                        return Err(Error::space(
                            path,
                            format!("range step must be positive, got {}", s.as_f64()),
                        ));
                    }
                }
                let domain = match (start, end, step) {
                    (_, _, None) => Domain::Continuous { low: lo, high: hi },
                    (Num::Int(a), Num::Int(b), Some(Num::Int(s))) => {
                        let span = (*b as i128) - (*a as i128);
                        let levels = span / (*s as i128) + 1;
                        if levels > MAX_LEVELS as i128 {
                            return Err(Error::space(
                                path,
                                format!("range has {levels} values; at most 2^52 are supported"),
                            ));
                        }
                        Domain::IntGrid {
                            start: *a,
                            step: *s,
                            levels: levels as u64,
                        }
                    }
                    (_, _, Some(s)) => {
                        let s = s.as_f64();
                        // Tolerate float rounding so that range(0.0, 1.0, 0.1) includes 1.0.
                        let ratio = (hi - lo) / s;
                        let levels_f = (ratio + ratio.abs() * 1e-9 + 1e-9).floor() + 1.0;
                        if levels_f.is_nan() || levels_f > MAX_LEVELS as f64 {
                            return Err(Error::space(
                                path,
                                format!("range has {levels_f} values; at most 2^52 are supported"),
                            ));
                        }
                        let levels = levels_f as u64;
                        Domain::FloatGrid {
                            start: lo,
                            step: s,
                            levels,
                            end: hi,
                            scale: decimal_scale(lo, s, levels),
                        }
                    }
                };
                let seed_bounds =
                    Self::compile_seed(path, &domain, (*start, *end), *seed_low, *seed_high)?;
                Ok(Param {
                    path: path.to_owned(),
                    domain,
                    knockout,
                    seed_bounds,
                    when: checked_when(path, when)?,
                })
            }
            ParamSpec::Choice {
                values,
                knockout_prob,
                when,
            } => {
                let knockout = check_knockout(path, *knockout_prob)?;
                if values.is_empty() {
                    return Err(Error::space(path, "choice needs at least one value"));
                }
                for (i, v) in values.iter().enumerate() {
                    check_value(path, "choice values", v)?;
                    if values[..i].contains(v) {
                        return Err(Error::space(
                            path,
                            format!("choice values must be distinct; {v:?} appears twice"),
                        ));
                    }
                }
                Ok(Param {
                    path: path.to_owned(),
                    domain: Domain::Choice {
                        values: values.clone(),
                    },
                    knockout,
                    seed_bounds: None,
                    when: checked_when(path, when)?,
                })
            }
            ParamSpec::Literal {
                value,
                knockout_prob,
                when,
            } => {
                let knockout = check_knockout(path, *knockout_prob)?;
                check_value(path, "literal value", value)?;
                Ok(Param {
                    path: path.to_owned(),
                    domain: Domain::Literal {
                        value: value.clone(),
                    },
                    knockout,
                    seed_bounds: None,
                    when: checked_when(path, when)?,
                })
            }
        }
    }

    /// Parses and validates one parameter spec given as JSON.
    pub fn from_json(json: &str, path: &str) -> Result<Param> {
        let spec: ParamSpec = serde_json::from_str(json)
            .map_err(|e| Error::space(path, format!("malformed parameter: {e}")))?;
        Param::compile(&spec, path)
    }

    fn compile_seed(
        path: &str,
        domain: &Domain,
        (start, end): (Num, Num),
        seed_low: Option<Num>,
        seed_high: Option<Num>,
    ) -> Result<Option<(f64, f64)>> {
        if seed_low.is_none() && seed_high.is_none() {
            return Ok(None);
        }
        // A half-given seed range extends to the range's own end.
        let (low, high) = (seed_low.unwrap_or(start), seed_high.unwrap_or(end));
        // Ints compare exactly: f64 cannot tell 2^62 from 2^62 + 1.
        let cmp = |a: Num, b: Num| match (a, b) {
            (Num::Int(x), Num::Int(y)) => x.cmp(&y),
            _ => a.as_f64().total_cmp(&b.as_f64()),
        };
        use std::cmp::Ordering::{Greater, Less};
        if !(low.as_f64().is_finite() && high.as_f64().is_finite())
            || cmp(low, start) == Less
            || cmp(high, end) == Greater
            || cmp(high, low) == Less
        {
            return Err(Error::space(
                path,
                format!(
                    "seed range [{}, {}] must lie within [{}, {}] with seed_low <= seed_high",
                    low.as_f64(),
                    high.as_f64(),
                    start.as_f64(),
                    end.as_f64()
                ),
            ));
        }
        match *domain {
            Domain::Continuous { .. } => Ok(Some((low.as_f64(), high.as_f64()))),
            Domain::IntGrid {
                start: s,
                step,
                levels,
            } => {
                let (s, st) = (s as i128, step as i128);
                let k_lo = match low {
                    Num::Int(v) => (v as i128 - s + st - 1).div_euclid(st) as f64,
                    Num::Float(v) => ((v - s as f64) / st as f64).ceil(),
                };
                let k_hi = match high {
                    Num::Int(v) => (v as i128 - s).div_euclid(st) as f64,
                    Num::Float(v) => ((v - s as f64) / st as f64).floor(),
                };
                Self::grid_seed(path, k_lo.max(0.0), k_hi.min((levels - 1) as f64))
            }
            Domain::FloatGrid {
                start: s,
                step,
                levels,
                ..
            } => {
                let eps = 1e-9;
                let k_lo = ((low.as_f64() - s) / step - eps).ceil();
                let k_hi = ((high.as_f64() - s) / step + eps).floor();
                Self::grid_seed(path, k_lo.max(0.0), k_hi.min((levels - 1) as f64))
            }
            _ => Ok(None),
        }
    }

    fn grid_seed(path: &str, k_lo: f64, k_hi: f64) -> Result<Option<(f64, f64)>> {
        if k_hi < k_lo {
            return Err(Error::space(
                path,
                "seed range contains no value of the range's grid",
            ));
        }
        Ok(Some((k_lo, k_hi)))
    }

    /// The gene kind of this parameter's value gene.
    pub fn gene_kind(&self) -> GeneKind {
        match &self.domain {
            Domain::IntGrid { levels, .. } | Domain::FloatGrid { levels, .. } => {
                if *levels > 1 {
                    GeneKind::Ordinal { levels: *levels }
                } else {
                    GeneKind::Fixed
                }
            }
            Domain::Continuous { low, high } => GeneKind::Real {
                low: *low,
                high: *high,
            },
            Domain::Choice { values } if values.len() > 1 => GeneKind::Categorical {
                n: values.len() as u64,
            },
            Domain::Choice { .. } | Domain::Literal { .. } => GeneKind::Fixed,
        }
    }

    /// The number of distinct values (`None` if continuous), knockout excluded.
    pub fn levels(&self) -> Option<u64> {
        match &self.domain {
            Domain::IntGrid { levels, .. } | Domain::FloatGrid { levels, .. } => Some(*levels),
            Domain::Continuous { .. } => None,
            Domain::Choice { values } => Some(values.len() as u64),
            Domain::Literal { .. } => Some(1),
        }
    }

    /// The numeric column value of a present gene, as `ask_array` reports it: the value for
    /// ranges, the index for choices, 0 for literals.
    #[inline]
    pub fn column_value(&self, gene: f64) -> f64 {
        match &self.domain {
            Domain::IntGrid { start, step, .. } => (*start as f64) + gene * (*step as f64),
            Domain::FloatGrid {
                start,
                step,
                end,
                scale,
                ..
            } => float_grid_value(*start, *step, *end, *scale, gene),
            Domain::Continuous { .. } | Domain::Choice { .. } => gene,
            Domain::Literal { .. } => 0.0,
        }
    }

    /// The value of a present gene as constraint expressions see it.
    #[inline]
    pub fn v(&self, gene: f64) -> V<'_> {
        match &self.domain {
            Domain::IntGrid { start, step, .. } => V::Int(start + (gene as i64) * step),
            Domain::FloatGrid {
                start,
                step,
                end,
                scale,
                ..
            } => V::Float(float_grid_value(*start, *step, *end, *scale, gene)),
            Domain::Continuous { .. } => V::Float(gene),
            Domain::Choice { values } => value_v(&values[gene as usize]),
            Domain::Literal { value } => value_v(value),
        }
    }

    /// The user-facing value of a present gene.
    pub fn value(&self, gene: f64) -> Value {
        match &self.domain {
            Domain::IntGrid { start, step, .. } => Value::Int(start + (gene as i64) * step),
            Domain::FloatGrid {
                start,
                step,
                end,
                scale,
                ..
            } => Value::Float(float_grid_value(*start, *step, *end, *scale, gene)),
            Domain::Continuous { .. } => Value::Float(gene),
            Domain::Choice { values } => values[gene as usize].clone(),
            Domain::Literal { value } => value.clone(),
        }
    }
}

impl Space {
    /// Parses and compiles a JSON spec.
    pub fn from_json(json: &str) -> Result<Space> {
        let spec: NodeSpec = serde_json::from_str(json)
            .map_err(|e| Error::space("", format!("malformed search-space spec: {e}")))?;
        Space::compile(&spec)
    }

    pub fn compile(spec: &NodeSpec) -> Result<Space> {
        let mut params = Vec::new();
        let layout = match spec {
            NodeSpec::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(Self::compile_node(item, &mut params, false)?);
                }
                Layout::List(out)
            }
            other => Self::compile_node(other, &mut params, false)?,
        };
        if params.is_empty() {
            return Err(Error::space("", "the search space has no parameters"));
        }
        let n = params.len();
        let mut space = Space {
            params,
            layout,
            conditions: vec![Vec::new(); n],
            order: (0..n).collect(),
            gated: false,
            constraints: Vec::new(),
        };
        space.compile_conditions()?;
        Ok(space)
    }

    fn compile_node(spec: &NodeSpec, params: &mut Vec<Param>, _nested: bool) -> Result<Layout> {
        match spec {
            NodeSpec::Dict(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (key, child) in items {
                    out.push((key.clone(), Self::compile_node(child, params, true)?));
                }
                Ok(Layout::Dict(out))
            }
            NodeSpec::List(_) => Err(Error::space(
                "",
                "a list of search spaces is only allowed at the top level",
            )),
            NodeSpec::Param { param, path } => {
                params.push(Param::compile(param, path)?);
                Ok(Layout::Leaf(params.len() - 1))
            }
        }
    }

    /// Compiles constraint expressions over this space's parameters.
    pub fn with_constraints(mut self, texts: &[String]) -> Result<Space> {
        for (k, text) in texts.iter().enumerate() {
            let at = format!("constraints[{k}]");
            let ast = parse(text).map_err(|e| {
                Error::space(
                    &at,
                    format!("{text:?}: {e}\n    {text}\n    {}^", " ".repeat(e.pos)),
                )
            })?;
            let ast = ast.resolve(&mut |name: crate::expr::Name| {
                self.resolve(&name.path).map_err(|why| {
                    Error::space(&at, format!("{text:?}: {why} (at position {})", name.pos))
                })
            })?;
            self.constraints.push(Constraint {
                text: text.clone(),
                ast,
            });
        }
        Ok(self)
    }

    /// The user-facing names of the parameters (`a.b`, `a['x y']`, `[0].a`), in column order.
    pub fn names(&self) -> Vec<String> {
        fn walk(l: &Layout, prefix: &mut Vec<Seg>, out: &mut Vec<(usize, String)>) {
            match l {
                Layout::Leaf(i) => out.push((*i, display_path(prefix))),
                Layout::Dict(items) => {
                    for (k, c) in items {
                        prefix.push(Seg::Key(k.clone()));
                        walk(c, prefix, out);
                        prefix.pop();
                    }
                }
                Layout::List(items) => {
                    for (i, c) in items.iter().enumerate() {
                        prefix.push(Seg::Index(i));
                        walk(c, prefix, out);
                        prefix.pop();
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.layout, &mut Vec::new(), &mut out);
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// The parameter a path names, or why there is none.
    pub fn resolve(&self, path: &[Seg]) -> std::result::Result<usize, String> {
        let mut node = &self.layout;
        for (depth, seg) in path.iter().enumerate() {
            let child = match (node, seg) {
                (Layout::Dict(items), Seg::Key(k)) => {
                    items.iter().find(|(key, _)| key == k).map(|(_, c)| c)
                }
                (Layout::List(items), Seg::Index(i)) => items.get(*i),
                _ => None,
            };
            node = match child {
                Some(c) => c,
                None => {
                    let names = self.names();
                    let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
                    let more = if names.len() > 12 { ", ..." } else { "" };
                    let what = if depth == 0 {
                        String::new()
                    } else {
                        format!(
                            " (no {} under {})",
                            display_path(&path[depth..=depth]),
                            display_path(&path[..depth])
                        )
                    };
                    return Err(format!(
                        "unknown parameter '{}'{what}; the parameters are {}{more}",
                        display_path(path),
                        shown.join(", ")
                    ));
                }
            };
        }
        match node {
            Layout::Leaf(i) => Ok(*i),
            _ => Err(format!(
                "'{}' is a group of parameters, not one parameter",
                display_path(path)
            )),
        }
    }

    fn compile_conditions(&mut self) -> Result<()> {
        let n = self.params.len();
        for i in 0..n {
            let Some(when) = self.params[i].when.clone() else {
                continue;
            };
            let own = self.params[i].path.clone();
            let gates: Vec<(String, Option<Vec<Value>>)> = match when {
                WhenSpec::Present(p) => vec![(p, None)],
                WhenSpec::Values(map) => map.into_iter().map(|(p, v)| (p, Some(v))).collect(),
            };
            for (text, values) in gates {
                let segs = parse_path(&text)
                    .map_err(|e| Error::space(&own, format!("when={text:?}: {e}")))?;
                let gate = self
                    .resolve(&segs)
                    .map_err(|why| Error::space(&own, format!("when={text:?}: {why}")))?;
                if gate == i {
                    return Err(Error::space(
                        &own,
                        format!("when={text:?}: a parameter cannot depend on itself"),
                    ));
                }
                let allowed = match values {
                    None => None,
                    Some(values) => Some(self.allowed(gate, &values).map_err(|why| {
                        Error::space(&own, format!("when={{{text:?}: ...}}: {why}"))
                    })?),
                };
                self.conditions[i].push(Cond { gate, allowed });
            }
        }
        self.gated = self.conditions.iter().any(|c| !c.is_empty());
        // Gates first (Kahn's algorithm); a cycle is an error naming one of its parameters.
        let mut pending: Vec<usize> = self.conditions.iter().map(Vec::len).collect();
        let mut order: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
        let mut k = 0;
        while k < order.len() {
            let g = order[k];
            k += 1;
            for (i, conds) in self.conditions.iter().enumerate() {
                for c in conds {
                    if c.gate == g {
                        pending[i] -= 1;
                        if pending[i] == 0 {
                            order.push(i);
                        }
                    }
                }
            }
        }
        if order.len() < n {
            let stuck = (0..n)
                .find(|&i| pending[i] > 0)
                .expect("a parameter in a cycle");
            return Err(Error::space(
                &self.params[stuck].path,
                "its when= conditions form a cycle",
            ));
        }
        self.order = order;
        Ok(())
    }

    /// The gene indices of `gate` whose value is one of `values`.
    fn allowed(&self, gate: usize, values: &[Value]) -> std::result::Result<Vec<bool>, String> {
        let p = &self.params[gate];
        let Some(levels) = p.levels().filter(|&l| l <= 1 << 16) else {
            return Err(
                "when= values need a parameter with at most 65536 values (not a continuous range)"
                    .into(),
            );
        };
        let mut allowed = vec![false; levels as usize];
        for v in values {
            let want = value_v(v);
            let mut found = false;
            for (k, slot) in allowed.iter_mut().enumerate() {
                if p.v(k as f64).equals(want) {
                    *slot = true;
                    found = true;
                }
            }
            if !found {
                return Err(format!("{v:?} is not a value of {}", p.path));
            }
        }
        Ok(allowed)
    }

    /// Which parameters the candidate has: present (not knocked out) and, for a parameter with a
    /// `when`, its conditions hold on the active parameters.
    #[inline]
    pub fn active_into(&self, x: &[f64], on: &[bool], active: &mut [bool]) {
        if !self.gated {
            active.copy_from_slice(on);
            return;
        }
        for &i in &self.order {
            active[i] = on[i] && self.conditions_hold(i, x, active);
        }
    }

    /// Whether parameter `i`'s `when` holds, given the activity of its gates.
    #[inline]
    pub fn conditions_hold(&self, i: usize, x: &[f64], active: &[bool]) -> bool {
        self.conditions[i].iter().all(|c| {
            active[c.gate]
                && c.allowed
                    .as_ref()
                    .is_none_or(|a| a.get(x[c.gate] as usize).copied().unwrap_or(false))
        })
    }

    /// Whether a candidate (genes and activity) satisfies every constraint.
    #[inline]
    pub fn feasible(&self, x: &[f64], active: &[bool]) -> bool {
        let value = |i: usize| {
            if active[i] {
                self.params[i].v(x[i])
            } else {
                V::None
            }
        };
        self.constraints.iter().all(|c| c.ast.holds(&value))
    }

    /// Number of genome states, knockout states included (what enumeration walks); `None` when
    /// infinite or beyond u128.
    pub fn raw_size(&self) -> Option<u128> {
        let mut total: u128 = 1;
        for p in &self.params {
            let radix = p.levels()? as u128 + u128::from(p.knockout.is_some());
            total = total.checked_mul(radix)?;
        }
        Some(total)
    }

    /// Number of distinct feasible candidates (inactive parameters count once, as absent);
    /// `None` when infinite, beyond u128, or too many to count when constraints apply.
    pub fn size(&self) -> Option<u128> {
        if !self.gated && self.constraints.is_empty() {
            return self.raw_size();
        }
        // Enumerate the parameters that gate others or that constraints read; multiply in the rest.
        let n = self.params.len();
        let mut relevant = vec![false; n];
        for conds in &self.conditions {
            for c in conds {
                relevant[c.gate] = true;
            }
        }
        for c in &self.constraints {
            let mut names = Vec::new();
            c.ast.names(&mut names);
            for i in names {
                relevant[i] = true;
            }
        }
        let order: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| relevant[i])
            .collect();
        let rest: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| !relevant[i])
            .collect();
        let mut counter = Counter {
            space: self,
            order: &order,
            rest: &rest,
            x: vec![0.0; n],
            active: vec![false; n],
            visits: 0,
        };
        counter.count(0)
    }

    /// A candidate's genes from its params (a JSON value shaped as the objective receives it);
    /// errors name the path. With `strict`, inactive parameters must be absent and the
    /// constraints must hold; without (an earlier evaluation, mapped by name), a value given for
    /// an inactive parameter is ignored.
    pub fn encode(
        &self,
        value: &serde_json::Value,
        what: &str,
        strict: bool,
    ) -> Result<(Vec<f64>, Vec<bool>)> {
        let n = self.params.len();
        let (mut x, mut on) = (vec![0.0; n], vec![false; n]);
        self.encode_node(&self.layout, Some(value), (what, what), &mut x, &mut on)?;
        let mut active = vec![false; n];
        self.active_into(&x, &on, &mut active);
        for i in 0..n {
            let p = &self.params[i];
            if strict && on[i] && !active[i] {
                return Err(Error::space(
                    &p.path,
                    format!("{what}: given although its when= condition does not hold"),
                ));
            }
            if !on[i] && p.knockout.is_none() && self.conditions_hold(i, &x, &active) {
                return Err(Error::space(
                    &p.path,
                    format!("{what}: missing (the parameter has no knockout_prob)"),
                ));
            }
            if !on[i] && p.knockout.is_none() {
                // Absent because inactive: any state of the knockout-free gene is "present".
                on[i] = true;
            }
        }
        if !strict {
            return Ok((x, on));
        }
        if let Some(c) = self.constraints.iter().find(|c| {
            !c.ast.holds(&|i| {
                if active[i] {
                    self.params[i].v(x[i])
                } else {
                    V::None
                }
            })
        }) {
            return Err(Error::space(
                "",
                format!("{what} violates the constraint {:?}", c.text),
            ));
        }
        Ok((x, on))
    }

    /// `(what, at)`: the candidate's name, and where in it `value` is.
    fn encode_node(
        &self,
        node: &Layout,
        value: Option<&serde_json::Value>,
        (what, at): (&str, &str),
        x: &mut [f64],
        on: &mut [bool],
    ) -> Result<()> {
        match node {
            Layout::Leaf(i) => {
                let Some(v) = value else { return Ok(()) };
                x[*i] = self.params[*i]
                    .gene_of(v)
                    .map_err(|why| Error::space(&self.params[*i].path, format!("{what}: {why}")))?;
                on[*i] = true;
                Ok(())
            }
            Layout::Dict(items) => {
                let map = match value {
                    None => None,
                    Some(serde_json::Value::Object(m)) => Some(m),
                    Some(other) => {
                        return Err(Error::space(
                            "",
                            format!("{at}: expected a dict, got {other}"),
                        ))
                    }
                };
                if let Some(m) = map {
                    for k in m.keys() {
                        if !items.iter().any(|(key, _)| key == k) {
                            return Err(Error::space("", format!("{at}: unknown key {k:?}")));
                        }
                    }
                }
                for (k, child) in items {
                    let inner = format!("{at}[{k:?}]");
                    self.encode_node(child, map.and_then(|m| m.get(k)), (what, &inner), x, on)?;
                }
                Ok(())
            }
            Layout::List(items) => {
                let list = match value {
                    Some(serde_json::Value::Array(a)) if a.len() == items.len() => a,
                    other => {
                        return Err(Error::space(
                            "",
                            format!(
                                "{at}: expected a list of {} dicts, got {}",
                                items.len(),
                                other.map_or("nothing".into(), |v| v.to_string())
                            ),
                        ))
                    }
                };
                for (i, (child, v)) in items.iter().zip(list).enumerate() {
                    let inner = format!("{at}[{i}]");
                    self.encode_node(child, Some(v), (what, &inner), x, on)?;
                }
                Ok(())
            }
        }
    }
}

/// Counts feasible candidates by enumerating the relevant parameters (gates and constrained
/// ones) in gate order, multiplying in the others.
struct Counter<'a> {
    space: &'a Space,
    order: &'a [usize],
    rest: &'a [usize],
    x: Vec<f64>,
    active: Vec<bool>,
    visits: u64,
}

/// Counting gives up (the size is unknown) beyond this many enumerated states.
const COUNT_LIMIT: u64 = 1 << 22;

impl Counter<'_> {
    fn count(&mut self, k: usize) -> Option<u128> {
        self.visits += 1;
        if self.visits > COUNT_LIMIT {
            return None;
        }
        let space = self.space;
        if k == self.order.len() {
            if !space.feasible(&self.x, &self.active) {
                return Some(0);
            }
            let mut total: u128 = 1;
            for &i in self.rest {
                if !space.conditions_hold(i, &self.x, &self.active) {
                    continue;
                }
                let p = &space.params[i];
                total =
                    total.checked_mul(p.levels()? as u128 + u128::from(p.knockout.is_some()))?;
            }
            return Some(total);
        }
        let i = self.order[k];
        let p = &space.params[i];
        if !space.conditions_hold(i, &self.x, &self.active) {
            self.active[i] = false;
            return self.count(k + 1);
        }
        let mut total: u128 = 0;
        if p.knockout.is_some() {
            self.active[i] = false;
            total = total.checked_add(self.count(k + 1)?)?;
        }
        self.active[i] = true;
        let levels = p.levels()?;
        let discrete = p.gene_kind() != GeneKind::Fixed;
        for level in 0..levels {
            self.x[i] = if discrete { level as f64 } else { 0.0 };
            total = total.checked_add(self.count(k + 1)?)?;
        }
        self.x[i] = 0.0;
        Some(total)
    }
}

impl Param {
    /// The gene of a user-given value, or why it is not a value of this parameter.
    pub fn gene_of(&self, v: &serde_json::Value) -> std::result::Result<f64, String> {
        let given: Value = serde_json::from_value(v.clone())
            .map_err(|_| format!("{v} is not a bool, int, float or string"))?;
        let want = value_v(&given);
        let bad = || format!("{v} is not a value of this parameter");
        match &self.domain {
            Domain::Continuous { low, high } => match want {
                V::Int(i) if (*low..=*high).contains(&(i as f64)) => Ok(i as f64),
                V::Float(f) if (*low..=*high).contains(&f) => Ok(f),
                _ => Err(bad()),
            },
            Domain::IntGrid {
                start,
                step,
                levels,
            } => {
                let i = match want {
                    V::Int(i) => i,
                    V::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                    _ => return Err(bad()),
                };
                let off = (i as i128) - (*start as i128);
                if off < 0 || off % (*step as i128) != 0 || off / (*step as i128) >= *levels as i128
                {
                    return Err(bad());
                }
                Ok((off / (*step as i128)) as f64)
            }
            Domain::FloatGrid {
                step,
                levels,
                start,
                ..
            } => {
                let f = match want {
                    V::Int(i) => i as f64,
                    V::Float(f) => f,
                    _ => return Err(bad()),
                };
                let k = ((f - start) / step).round();
                if k < 0.0
                    || k >= *levels as f64
                    || (self.column_value(k) - f).abs() > 1e-9 * step.abs().max(f.abs())
                {
                    return Err(bad());
                }
                Ok(k)
            }
            Domain::Choice { values } => {
                // An exact match first (1.0 is not 1 when both are values), then numeric equality.
                values
                    .iter()
                    .position(|c| *c == given)
                    .or_else(|| values.iter().position(|c| value_v(c).equals(want)))
                    .map(|k| k as f64)
                    .ok_or_else(bad)
            }
            Domain::Literal { value } => {
                if value_v(value).equals(want) {
                    Ok(0.0)
                } else {
                    Err(bad())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(json: &str) -> Result<Param> {
        let spec: ParamSpec = serde_json::from_str(json).unwrap();
        Param::compile(&spec, "['x']")
    }

    #[test]
    fn int_range_levels_are_inclusive() {
        let p = range(r#"{"type":"range","start":0,"end":9,"step":2}"#).unwrap();
        assert_eq!(
            p.domain,
            Domain::IntGrid {
                start: 0,
                step: 2,
                levels: 5
            }
        );
        assert_eq!(p.value(4.0), Value::Int(8));
        let p = range(r#"{"type":"range","start":0,"end":10,"step":2}"#).unwrap();
        assert_eq!(p.levels(), Some(6));
    }

    #[test]
    fn float_range_tolerates_rounding() {
        let p = range(r#"{"type":"range","start":0.0,"end":1.0,"step":0.1}"#).unwrap();
        assert_eq!(p.levels(), Some(11));
    }

    #[test]
    fn float_grid_values_are_the_decimals_written() {
        let p = range(r#"{"type":"range","start":0.0,"end":0.3,"step":0.1}"#).unwrap();
        assert_eq!(p.levels(), Some(4));
        let values: Vec<Value> = (0..4).map(|k| p.value(k as f64)).collect();
        assert_eq!(
            values,
            vec![
                Value::Float(0.0),
                Value::Float(0.1),
                Value::Float(0.2),
                Value::Float(0.3)
            ]
        );
        let p = range(r#"{"type":"range","start":0.1,"end":0.7,"step":0.2}"#).unwrap();
        assert_eq!(p.value(3.0), Value::Float(0.7));
        // Not a short decimal: still clamped to the end.
        let third = 1.0 / 3.0;
        let p = range(&format!(
            r#"{{"type":"range","start":0.0,"end":1.0,"step":{third:?}}}"#
        ))
        .unwrap();
        assert_eq!(p.value(3.0), Value::Float(1.0));
    }

    #[test]
    fn extreme_ranges_are_rejected_not_overflowed() {
        assert!(range(
            r#"{"type":"range","start":-9223372036854775808,"end":9223372036854775807,"step":1}"#
        )
        .is_err());
        assert!(range(r#"{"type":"range","start":-1e308,"end":1e308,"step":null}"#).is_err());
        let p = range(
            r#"{"type":"range","start":9223372036854775802,"end":9223372036854775807,"step":1}"#,
        )
        .unwrap();
        assert_eq!(p.value(5.0), Value::Int(i64::MAX));
    }

    #[test]
    fn continuous_when_step_is_null() {
        let p = range(r#"{"type":"range","start":0,"end":1,"step":null}"#).unwrap();
        assert_eq!(
            p.domain,
            Domain::Continuous {
                low: 0.0,
                high: 1.0
            }
        );
    }

    #[test]
    fn bad_ranges_name_the_path() {
        let e = range(r#"{"type":"range","start":5,"end":5,"step":1}"#).unwrap_err();
        assert!(e.to_string().starts_with("['x']: range end"), "{e}");
        assert!(range(r#"{"type":"range","start":0,"end":5,"step":0}"#).is_err());
        assert!(range(r#"{"type":"range","start":0,"end":5,"step":-1}"#).is_err());
        assert!(range(r#"{"type":"range","start":0,"end":5,"step":1,"seed_low":-1}"#).is_err());
        assert!(
            range(r#"{"type":"range","start":0,"end":5,"step":1,"seed_low":4,"seed_high":3}"#)
                .is_err()
        );
        assert!(
            range(r#"{"type":"range","start":0,"end":5,"step":1,"knockout_prob":1.5}"#).is_err()
        );
        assert!(range(
            r#"{"type":"range","start":0,"end":10,"step":4,"seed_low":1,"seed_high":3}"#
        )
        .is_err());
    }

    #[test]
    fn int_seed_bounds_are_exact_at_64_bits() {
        let p = range(r#"{"type":"range","start":4611686018427387904,"end":4611686018427387914,"step":1,"seed_low":4611686018427387909}"#).unwrap();
        assert_eq!(p.seed_bounds, Some((5.0, 10.0)));
        assert!(range(r#"{"type":"range","start":4611686018427387904,"end":4611686018427387914,"step":1,"seed_low":4611686018427387903}"#).is_err());
    }

    #[test]
    fn seed_bounds_in_index_space() {
        let p = range(r#"{"type":"range","start":0,"end":20,"step":2,"seed_low":3,"seed_high":9}"#)
            .unwrap();
        assert_eq!(p.seed_bounds, Some((2.0, 4.0)));
        let p = range(r#"{"type":"range","start":0,"end":20,"step":2,"seed_low":3}"#).unwrap();
        assert_eq!(p.seed_bounds, Some((2.0, 10.0)));
    }

    #[test]
    fn choices_and_literals() {
        let c: ParamSpec = serde_json::from_str(r#"{"type":"choice","values":[]}"#).unwrap();
        assert!(Param::compile(&c, "p").is_err());
        let c: ParamSpec = serde_json::from_str(r#"{"type":"choice","values":[1, 1]}"#).unwrap();
        assert!(Param::compile(&c, "p").is_err());
        let c: ParamSpec =
            serde_json::from_str(r#"{"type":"choice","values":[1, 1.0, true, "1"]}"#).unwrap();
        let p = Param::compile(&c, "p").unwrap();
        assert_eq!(p.value(1.0), Value::Float(1.0));
        assert_eq!(p.value(2.0), Value::Bool(true));
        assert_eq!(p.gene_kind(), GeneKind::Categorical { n: 4 });
    }

    #[test]
    fn space_size_counts_knockout_states() {
        let s = Space::from_json(
            r#"{"dict":[["a",{"param":{"type":"choice","values":[1,2,3]},"path":"['a']"}],
                        ["b",{"dict":[["c",{"param":{"type":"literal","value":"x","knockout_prob":0.5},"path":"['b']['c']"}]]}]]}"#,
        )
        .unwrap();
        assert_eq!(s.size(), Some(6));
        assert_eq!(s.params[1].path, "['b']['c']");
    }
}
