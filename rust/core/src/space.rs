//! Search spaces: the JSON spec the Python layer sends, validated and compiled into genes.
//!
//! A spec is a tree: `{"dict": [[key, node], ...]}`, `{"list": [node, ...]}` (top level only) or
//! `{"param": {...}, "path": "['a']['b']"}`. Leaves are numbered in depth-first order; that order
//! is the column order of `ask_array`.

use crate::error::{Error, Result};
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
    },
    Choice {
        values: Vec<Value>,
        #[serde(default)]
        knockout_prob: Option<f64>,
    },
    Literal {
        value: Value,
        #[serde(default)]
        knockout_prob: Option<f64>,
    },
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
                })
            }
            ParamSpec::Choice {
                values,
                knockout_prob,
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
                })
            }
            ParamSpec::Literal {
                value,
                knockout_prob,
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
        Ok(Space { params, layout })
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

    /// Number of distinct candidates, knockout states included; `None` when infinite or beyond u128.
    pub fn size(&self) -> Option<u128> {
        let mut total: u128 = 1;
        for p in &self.params {
            let radix = p.levels()? as u128 + u128::from(p.knockout.is_some());
            total = total.checked_mul(radix)?;
        }
        Some(total)
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
