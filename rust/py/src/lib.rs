//! `genetune._core`: thin PyO3 bindings over `genetune-core`.
//!
//! Conventions: Python inputs are copied into owned Rust values first, population work runs with
//! the GIL released (`detached`), core errors map to `genetune.exceptions` in `to_pyerr`, and a
//! Rust panic becomes `genetune.exceptions.InternalError`, never a `PanicException`.

use genetune_core::engine::{Engine, Setup};
use genetune_core::normalize::normalize_matrix;
use genetune_core::space::{Domain, Layout, Param, Value};
use genetune_core::{EngineConfig, Error};
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// `(ids, X)` as numpy arrays.
type IdsAndColumns<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray2<f64>>);
/// `(ids, X, scores)` as numpy arrays.
type IdsColumnsScores<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<f64>>,
);

pyo3::import_exception!(genetune.exceptions, SearchSpaceError);
pyo3::import_exception!(genetune.exceptions, ConfigurationError);
pyo3::import_exception!(genetune.exceptions, TellError);
pyo3::import_exception!(genetune.exceptions, StateError);
pyo3::import_exception!(genetune.exceptions, InternalError);

/// The one place where core errors become Python exceptions.
fn to_pyerr(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::InvalidSpace { .. } => SearchSpaceError::new_err(msg),
        Error::InvalidConfig(_) => ConfigurationError::new_err(msg),
        Error::InvalidTell(_) => TellError::new_err(msg),
        Error::InvalidState(_) => StateError::new_err(msg),
        Error::InvalidShape(_) => PyValueError::new_err(msg),
    }
}

fn panic_to_pyerr(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    InternalError::new_err(format!(
        "internal error in genetune's engine (please report it): {what}"
    ))
}

/// Runs core work with the GIL released, catching panics and mapping errors.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(e)),
        Err(payload) => Err(panic_to_pyerr(payload)),
    }
}

/// Runs code that needs the GIL (it builds Python objects), catching panics.
fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_to_pyerr(payload)))
}

fn value_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Str(s) => PyString::new(py, s).into_any().unbind(),
    })
}

/// The candidate layout with interned keys and pre-built choice/literal values.
enum PyLayout {
    Dict(Vec<(Py<PyString>, PyLayout)>),
    List(Vec<PyLayout>),
    Leaf(usize),
}

struct Decoder {
    layout: PyLayout,
    /// Per parameter: its choice values (or its literal), as Python objects.
    values: Vec<Vec<Py<PyAny>>>,
}

impl Decoder {
    fn new(py: Python<'_>, engine: &Engine) -> PyResult<Decoder> {
        fn convert(py: Python<'_>, l: &Layout) -> PyLayout {
            match l {
                Layout::Dict(items) => PyLayout::Dict(
                    items
                        .iter()
                        .map(|(k, c)| (PyString::intern(py, k).unbind(), convert(py, c)))
                        .collect(),
                ),
                Layout::List(items) => {
                    PyLayout::List(items.iter().map(|c| convert(py, c)).collect())
                }
                Layout::Leaf(i) => PyLayout::Leaf(*i),
            }
        }
        let mut values = Vec::new();
        for p in &engine.space().params {
            values.push(match &p.domain {
                Domain::Choice { values } => values
                    .iter()
                    .map(|v| value_to_py(py, v))
                    .collect::<PyResult<_>>()?,
                Domain::Literal { value } => vec![value_to_py(py, value)?],
                _ => Vec::new(),
            });
        }
        Ok(Decoder {
            layout: convert(py, &engine.space().layout),
            values,
        })
    }

    fn leaf<'py>(
        &self,
        py: Python<'py>,
        p: &Param,
        i: usize,
        gene: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match &p.domain {
            Domain::Choice { .. } => self.values[i][gene as usize].bind(py).clone(),
            Domain::Literal { .. } => self.values[i][0].bind(py).clone(),
            _ => value_to_py(py, &p.value(gene))?.into_bound(py),
        })
    }

    fn build<'py>(
        &self,
        py: Python<'py>,
        params: &[Param],
        node: &PyLayout,
        x: &[f64],
        on: &[bool],
        nested: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match node {
            PyLayout::Leaf(i) => {
                if on[*i] {
                    Ok(Some(self.leaf(py, &params[*i], *i, x[*i])?))
                } else {
                    Ok(None)
                }
            }
            PyLayout::Dict(items) => {
                let d = PyDict::new(py);
                for (k, child) in items {
                    if let Some(v) = self.build(py, params, child, x, on, true)? {
                        d.set_item(k.bind(py), v)?;
                    }
                }
                // A nested dict whose keys are all knocked out disappears with its key.
                if nested && d.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(d.into_any()))
                }
            }
            PyLayout::List(items) => {
                let list = PyList::empty(py);
                for child in items {
                    let v = self.build(py, params, child, x, on, false)?;
                    list.append(v.unwrap_or_else(|| PyDict::new(py).into_any()))?;
                }
                Ok(Some(list.into_any()))
            }
        }
    }
}

/// One candidate to evaluate: its id, its generation and the params the objective receives.
#[pyclass(frozen, module = "genetune._core", name = "Candidate")]
struct PyCandidate {
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    generation: u32,
    #[pyo3(get)]
    params: Py<PyAny>,
}

#[pymethods]
impl PyCandidate {
    #[new]
    fn new(id: u64, generation: u32, params: Py<PyAny>) -> Self {
        PyCandidate {
            id,
            generation,
            params,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Candidate(id={}, generation={}, params={})",
            self.id,
            self.generation,
            self.params.bind(py).repr()?
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(o) = other.cast::<PyCandidate>() else {
            return Ok(false);
        };
        let o = o.get();
        Ok(self.id == o.id
            && self.generation == o.generation
            && self.params.bind(py).eq(o.params.bind(py))?)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.get();
        let args = PyTuple::new(
            py,
            [
                me.id.into_pyobject(py)?.into_any(),
                me.generation.into_pyobject(py)?.into_any(),
                me.params.bind(py).clone(),
            ],
        )?;
        Ok((slf.get_type().into_any(), args))
    }
}

/// The Rust engine. `genetune.Engine` wraps it with the user-facing API.
#[pyclass(module = "genetune._core", name = "CoreEngine")]
struct PyCoreEngine {
    inner: Engine,
    decoder: Decoder,
}

impl PyCoreEngine {
    fn wrap(py: Python<'_>, inner: Engine) -> PyResult<Self> {
        let decoder = guarded(|| Decoder::new(py, &inner))?;
        Ok(PyCoreEngine { inner, decoder })
    }

    fn candidates(
        &self,
        py: Python<'_>,
        positions: impl Iterator<Item = usize>,
    ) -> PyResult<Vec<Py<PyCandidate>>> {
        guarded(|| {
            let generation = self.inner.generation();
            let params = &self.inner.space().params;
            positions
                .map(|i| {
                    let (id, x, on) = self.inner.candidate(i);
                    // Inactive parameters (by `when`) are absent, like knocked-out ones.
                    let active = self.inner.active(x, on);
                    let value = self
                        .decoder
                        .build(py, params, &self.decoder.layout, x, &active, false)?
                        .expect("root is always present");
                    Py::new(
                        py,
                        PyCandidate {
                            id,
                            generation,
                            params: value.unbind(),
                        },
                    )
                })
                .collect()
        })
    }
}

#[pymethods]
impl PyCoreEngine {
    /// `warm_start_json`: a JSON list of candidates evaluated first; `priors_json`: a JSON list
    /// of candidates evaluated before, with their `prior_scores` `(k, num_objectives)`.
    #[new]
    #[pyo3(signature = (space_json, config_json, seed=None, meta=String::new(), constraints=Vec::new(), warm_start_json=None, priors_json=None, prior_scores=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        space_json: String,
        config_json: String,
        seed: Option<u64>,
        meta: String,
        constraints: Vec<String>,
        warm_start_json: Option<String>,
        priors_json: Option<String>,
        prior_scores: Option<PyReadonlyArray2<'_, f64>>,
    ) -> PyResult<Self> {
        let config = EngineConfig::from_json(&config_json).map_err(to_pyerr)?;
        let list = |json: Option<String>, what: &str| -> PyResult<Vec<serde_json::Value>> {
            match json {
                None => Ok(Vec::new()),
                Some(text) => serde_json::from_str(&text).map_err(|e| {
                    SearchSpaceError::new_err(format!(
                        "{what} must be a JSON list of candidates: {e}"
                    ))
                }),
            }
        };
        let setup = Setup {
            constraints,
            warm_start: list(warm_start_json, "warm_start")?,
            priors: list(priors_json, "prior evaluations")?,
            prior_scores: prior_scores
                .map(|a| a.as_array().iter().copied().collect())
                .unwrap_or_default(),
        };
        let inner = detached(py, || {
            Engine::create(&space_json, config, seed, meta, setup)
        })?;
        Self::wrap(py, inner)
    }

    /// Generational: up to `n` (default: all) not-yet-asked candidates of the current
    /// generation. Steady: `n` new candidates chosen with every result so far (default:
    /// `pool_size` minus the pending ones).
    #[pyo3(signature = (n=None))]
    fn ask(&mut self, py: Python<'_>, n: Option<usize>) -> PyResult<Vec<Py<PyCandidate>>> {
        let inner = &mut self.inner;
        let range = detached(py, || Ok(inner.ask(n)))?;
        self.candidates(py, range)
    }

    /// Like `ask`, as `(ids, X)` arrays: one column per parameter (value for ranges, index for
    /// choices, 0 for literals, NaN when knocked out).
    #[pyo3(signature = (n=None))]
    fn ask_array<'py>(
        &mut self,
        py: Python<'py>,
        n: Option<usize>,
    ) -> PyResult<IdsAndColumns<'py>> {
        let inner = &mut self.inner;
        let (ids, cols, rows, width) = detached(py, || {
            let range = inner.ask(n);
            let (rows, width) = (range.len(), inner.num_params());
            let mut cols = vec![0.0; rows * width];
            let ids: Vec<i64> = inner
                .fill_columns(range, &mut cols)
                .into_iter()
                .map(|i| i as i64)
                .collect();
            Ok((ids, cols, rows, width))
        })?;
        let x = Array2::from_shape_vec((rows, width), cols)
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        Ok((ids.into_pyarray(py), x.into_pyarray(py)))
    }

    /// Steady schedule: chooses up to `n` candidates (within the budget) for an outside
    /// constraint to judge before `ask` hands them out; nothing under the generational one.
    fn propose(&mut self, py: Python<'_>, n: usize) -> PyResult<()> {
        let inner = &mut self.inner;
        detached(py, || {
            inner.propose(n);
            Ok(())
        })
    }

    /// Not-yet-asked candidates an outside constraint has not accepted yet, with their
    /// positions.
    fn unscreened(&self, py: Python<'_>) -> PyResult<(Vec<usize>, Vec<Py<PyCandidate>>)> {
        let positions = self.inner.unscreened();
        let candidates = self.candidates(py, positions.iter().copied())?;
        Ok((positions, candidates))
    }

    /// An outside constraint's verdict on batch positions: rejected ones are repaired in place
    /// (or dropped when none is left); returns how many were dropped.
    fn screen(
        &mut self,
        py: Python<'_>,
        accepted: Vec<usize>,
        rejected: Vec<usize>,
    ) -> PyResult<usize> {
        let inner = &mut self.inner;
        detached(py, || inner.screen(&accepted, &rejected))
    }

    /// Candidates asked but not yet told.
    fn pending(&self, py: Python<'_>) -> PyResult<Vec<Py<PyCandidate>>> {
        self.candidates(py, self.inner.pending().into_iter())
    }

    /// Records scores `(n, num_objectives)` for ids `(n,)`; NaN/inf = INVALID.
    fn tell(
        &mut self,
        py: Python<'_>,
        ids: PyReadonlyArray1<'_, i64>,
        scores: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<()> {
        let shape = (scores.shape()[0], scores.shape()[1]);
        let ids: Vec<u64> = ids
            .as_array()
            .iter()
            .map(|&i| {
                u64::try_from(i).map_err(|_| {
                    to_pyerr(Error::InvalidTell(format!(
                        "candidate ids are non-negative, got {i}"
                    )))
                })
            })
            .collect::<PyResult<_>>()?;
        let scores: Vec<f64> = scores.as_array().iter().copied().collect();
        let inner = &mut self.inner;
        detached(py, || inner.tell_matrix(&ids, &scores, shape))
    }

    /// The surviving population, best first: `(ids, X, scores)`.
    fn population<'py>(&self, py: Python<'py>) -> PyResult<IdsColumnsScores<'py>> {
        let inner = &self.inner;
        let (ids, cols, f) = detached(py, || Ok(inner.population()))?;
        let (k, n, m) = (
            ids.len(),
            self.inner.num_params(),
            self.inner.num_objectives(),
        );
        let to2 = |v: Vec<f64>, c: usize| {
            Array2::from_shape_vec((k, c), v).map_err(|e| InternalError::new_err(e.to_string()))
        };
        Ok((
            ids.into_iter()
                .map(|i| i as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py),
            to2(cols, n)?.into_pyarray(py),
            to2(f, m)?.into_pyarray(py),
        ))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &self.inner;
        let bytes = detached(py, || Ok(inner.to_bytes()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let data = data.to_vec();
        let inner = detached(py, || Engine::from_bytes(&data))?;
        Self::wrap(py, inner)
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let bytes = slf.borrow().to_bytes(py)?;
        Ok((
            slf.get_type().getattr("from_bytes")?,
            PyTuple::new(py, [bytes])?,
        ))
    }

    #[getter]
    fn seed(&self) -> u64 {
        self.inner.seed()
    }
    #[getter]
    fn generation(&self) -> u32 {
        self.inner.generation()
    }
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }
    #[getter]
    fn exhausted(&self) -> bool {
        self.inner.exhausted()
    }
    #[getter]
    fn evaluations(&self) -> u64 {
        self.inner.evaluations()
    }
    /// True under the steady schedule.
    #[getter]
    fn steady(&self) -> bool {
        self.inner.steady()
    }
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_len()
    }
    #[getter]
    fn asked(&self) -> usize {
        self.inner.asked()
    }
    #[getter]
    fn num_params(&self) -> usize {
        self.inner.num_params()
    }
    #[getter]
    fn num_objectives(&self) -> usize {
        self.inner.num_objectives()
    }
    #[getter]
    fn meta(&self) -> &str {
        self.inner.meta()
    }
    #[getter]
    fn space_json(&self) -> &str {
        self.inner.space_json()
    }
    #[getter]
    fn parameter_paths(&self) -> Vec<String> {
        self.inner
            .space()
            .params
            .iter()
            .map(|p| p.path.clone())
            .collect()
    }
    /// Candidates checked against the constraints so far and how many of them were rejected.
    #[getter]
    fn constraint_draws(&self) -> (u64, u64) {
        self.inner.constraint_draws()
    }
    /// Prior evaluations told at creation (ids `0..prior_count`).
    #[getter]
    fn prior_count(&self) -> u64 {
        self.inner.priors()
    }
    #[getter]
    fn constraints(&self) -> Vec<String> {
        self.inner.constraints().to_vec()
    }
    /// Number of distinct feasible candidates (`None` if infinite, or too many to count under
    /// constraints).
    #[getter]
    fn space_size(&self) -> Option<u128> {
        self.inner.space().size()
    }
}

/// `1 + (score - baseline) / |baseline|` per objective (= `score / baseline` for a positive
/// baseline); NaN where the score or baseline is invalid or the baseline is zero.
#[pyfunction]
fn normalize_scores<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray2<'py, f64>,
    baseline: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let shape = scores.shape().to_vec();
    let s: Vec<f64> = scores.as_array().iter().copied().collect();
    let b: Vec<f64> = baseline.as_array().iter().copied().collect();
    let out = detached(py, || normalize_matrix(&s, shape[1], &b))?;
    let arr = Array2::from_shape_vec((shape[0], shape[1]), out)
        .map_err(|e| InternalError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// Validates one parameter spec (JSON), naming `path` in the error.
#[pyfunction]
#[pyo3(signature = (spec_json, path=String::new()))]
fn validate_parameter(spec_json: &str, path: String) -> PyResult<()> {
    guarded(|| {
        Param::from_json(spec_json, &path)
            .map(|_| ())
            .map_err(to_pyerr)
    })
}

#[pymodule(gil_used = true)]
mod _core {
    #[pymodule_export]
    use super::{normalize_scores, validate_parameter, PyCandidate, PyCoreEngine};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
