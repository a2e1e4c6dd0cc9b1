use super::state::STATE_MAGIC;
use super::*;
use crate::config::{Algorithm, Direction};
use std::collections::HashSet;

fn config(algorithm: Algorithm, m: usize, pool: usize, gens: u32) -> EngineConfig {
    EngineConfig {
        schedule: crate::config::Schedule::Generational,
        generations: gens,
        pool_size: pool,
        cull_size: (pool * 3 / 4).max(2),
        mutate_rate: 0.25,
        gene_mutate_rate: None,
        surrogate: false,
        oversampling: 24,
        model_evaluations: u64::MAX,
        directions: vec![Direction::Min; m],
        algorithm,
        init_seed_share: 0.9,
        objective_weights: None,
        crossover_prob: 0.9,
        crossover_eta: 15.0,
        mutation_eta: 20.0,
    }
}

fn real_space(n: usize) -> String {
    let items: Vec<String> = (0..n)
            .map(|i| format!(r#"["x{i}",{{"param":{{"type":"range","start":0.0,"end":1.0,"step":null}},"path":"['x{i}']"}}]"#))
            .collect();
    format!(r#"{{"dict":[{}]}}"#, items.join(","))
}

const SMALL: &str = r#"{"dict":[["a",{"param":{"type":"range","start":0,"end":3,"step":1},"path":"['a']"}],
        ["b",{"param":{"type":"choice","values":["x","y"],"knockout_prob":0.5},"path":"['b']"}]]}"#;

fn zdt1(x: &[f64]) -> [f64; 2] {
    let n = x.len() as f64;
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (n - 1.0);
    [x[0], g * (1.0 - (x[0] / g).sqrt())]
}

fn run(engine: &mut Engine, mut f: impl FnMut(&[f64]) -> Vec<f64>) {
    let n = engine.num_params();
    while !engine.done() {
        let r = engine.ask(None);
        let mut cols = vec![0.0; r.len() * n];
        let ids = engine.fill_columns(r, &mut cols);
        let scores: Vec<f64> = cols.chunks(n).flat_map(&mut f).collect();
        engine.tell(&ids, &scores).unwrap();
    }
}

/// The same config with the model-assisted breeding switched on.
fn screened(cfg: EngineConfig) -> EngineConfig {
    EngineConfig {
        surrogate: true,
        oversampling: std::env::var("GT_OS")
            .map(|v| v.parse().unwrap())
            .unwrap_or(8),
        ..cfg
    }
}

#[test]
fn same_seed_same_stream_and_order_does_not_matter() {
    for cfg in [
        config(Algorithm::Nsga2, 2, 20, 5),
        screened(config(Algorithm::Nsga2, 2, 20, 5)),
    ] {
        same_stream_whatever_the_tell_order(cfg);
    }
}

fn same_stream_whatever_the_tell_order(cfg: EngineConfig) {
    let mk = || Engine::new(&real_space(5), cfg.clone(), Some(42), String::new()).unwrap();
    let (mut a, mut b) = (mk(), mk());
    while !a.done() {
        let ra = a.ask(None);
        let rb = b.ask(None);
        let mut ca = vec![0.0; ra.len() * 5];
        let mut cb = vec![0.0; rb.len() * 5];
        let ia = a.fill_columns(ra, &mut ca);
        let ib = b.fill_columns(rb, &mut cb);
        assert_eq!((&ia, &ca), (&ib, &cb));
        let sa: Vec<f64> = ca.chunks(5).flat_map(zdt1).collect();
        a.tell(&ia, &sa).unwrap();
        // b gets the same scores reversed, in two calls.
        let half = ib.len() / 2;
        let rev: Vec<usize> = (0..ib.len()).rev().collect();
        for part in [&rev[..half], &rev[half..]] {
            let ids: Vec<u64> = part.iter().map(|&i| ib[i]).collect();
            let sc: Vec<f64> = part
                .iter()
                .flat_map(|&i| sa[i * 2..i * 2 + 2].to_vec())
                .collect();
            b.tell(&ids, &sc).unwrap();
        }
    }
    assert!(b.done());
    assert_eq!(a.population(), b.population());
}

#[test]
fn round_trip_continues_identically() {
    for cfg in [
        config(Algorithm::Nsga3, 2, 12, 6),
        screened(config(Algorithm::Nsga3, 2, 12, 6)),
        screened(config(Algorithm::Ga, 1, 12, 6)),
    ] {
        round_trip_continues(cfg);
    }
}

fn round_trip_continues(cfg: EngineConfig) {
    let m = cfg.num_objectives();
    let mut a = Engine::new(&real_space(4), cfg, Some(7), "meta".into()).unwrap();
    let step = |e: &mut Engine| {
        let r = e.ask(None);
        let mut c = vec![0.0; r.len() * 4];
        let ids = e.fill_columns(r, &mut c);
        let s: Vec<f64> = c.chunks(4).flat_map(|r| zdt1(r)[..m].to_vec()).collect();
        e.tell(&ids, &s).unwrap();
        (ids, c)
    };
    step(&mut a);
    let mut b = Engine::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(b.meta(), "meta");
    assert_eq!(b.to_bytes(), a.to_bytes());
    while !a.done() {
        assert_eq!(step(&mut a), step(&mut b));
    }
    assert!(b.done());
}

#[test]
fn never_repeats_and_reports_exhaustion() {
    for (cfg, seed) in [
        (config(Algorithm::Ga, 1, 8, 10), 1),
        (screened(config(Algorithm::Ga, 1, 4, 10)), 2),
    ] {
        never_repeats_then_exhausts(cfg, seed);
    }
}

fn never_repeats_then_exhausts(cfg: EngineConfig, seed: u64) {
    // 4 values x (2 choices + absent) = 12 distinct candidates.
    let mut e = Engine::new(SMALL, cfg, Some(seed), String::new()).unwrap();
    let mut seen = HashSet::new();
    let mut total = 0;
    while !e.done() {
        let r = e.ask(None);
        let mut c = vec![0.0; r.len() * 2];
        let ids = e.fill_columns(r, &mut c);
        for row in c.chunks(2) {
            assert!(seen.insert(format!("{row:?}")), "repeated {row:?}");
        }
        total += ids.len();
        let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
        e.tell(&ids, &s).unwrap();
    }
    assert_eq!(total, 12);
    assert!(e.exhausted());
}

#[test]
fn tell_validates_before_changing_anything() {
    let mut e = Engine::new(
        SMALL,
        config(Algorithm::Ga, 1, 6, 3),
        Some(1),
        String::new(),
    )
    .unwrap();
    let r = e.ask(Some(2));
    assert_eq!(r, 0..2);
    assert!(e.tell(&[0, 1], &[1.0]).is_err());
    assert!(e
        .tell(&[0, 5], &[1.0, 2.0])
        .unwrap_err()
        .to_string()
        .contains("not asked"));
    assert!(e
        .tell(&[0, 0], &[1.0, 2.0])
        .unwrap_err()
        .to_string()
        .contains("already told"));
    assert!(e
        .tell(&[99], &[1.0])
        .unwrap_err()
        .to_string()
        .contains("not in the current generation"));
    e.tell(&[1], &[f64::NAN]).unwrap();
    assert_eq!(e.pending(), vec![0]);
    assert!(e
        .tell(&[1], &[1.0])
        .unwrap_err()
        .to_string()
        .contains("already told"));
}

#[test]
fn ga_converges_on_sphere() {
    let mut e = Engine::new(
        &real_space(5),
        config(Algorithm::Ga, 1, 40, 60),
        Some(3),
        String::new(),
    )
    .unwrap();
    run(&mut e, |x| {
        vec![x.iter().map(|v| (v - 0.3) * (v - 0.3)).sum()]
    });
    let (_, _, f) = e.population();
    assert!(f[0] < 1e-3, "best {}", f[0]);
}

#[test]
fn invalid_candidates_lose() {
    let mut e = Engine::new(
        &real_space(3),
        config(Algorithm::Nsga2, 2, 20, 8),
        Some(5),
        String::new(),
    )
    .unwrap();
    run(&mut e, |x| {
        if x[0] > 0.5 {
            vec![f64::NAN, 0.0]
        } else {
            zdt1(x).to_vec()
        }
    });
    let (_, cols, f) = e.population();
    for (row, s) in cols.chunks(3).zip(f.chunks(2)) {
        assert!(row[0] <= 0.5 && s[0].is_finite());
    }
}

#[test]
fn corrupt_state_is_an_error() {
    let e = Engine::new(
        SMALL,
        config(Algorithm::Ga, 1, 6, 3),
        Some(1),
        String::new(),
    )
    .unwrap();
    let bytes = e.to_bytes();
    assert!(Engine::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    assert!(Engine::from_bytes(b"nonsense").is_err());
    // Out-of-range genes are an invalid state too, not a panic later.
    let mut state: State = postcard::from_bytes(&bytes[STATE_MAGIC.len()..]).unwrap();
    state.batch.x[1] = 99.0;
    let mut damaged = STATE_MAGIC.to_vec();
    damaged.extend(postcard::to_stdvec(&state).unwrap());
    let err = Engine::from_bytes(&damaged).err().expect("refused");
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    assert!(err.to_string().contains("outside its range"), "{err}");
}

/// 40 flags with hidden weights: screening must find better candidates in the same number
/// of evaluations than the plain GA; this fails with the model switched off.
#[test]
fn the_model_finds_better_candidates_per_evaluation() {
    let items: Vec<String> = (0..40)
            .map(|i| format!(r#"["f{i}",{{"param":{{"type":"literal","value":"-f{i}","knockout_prob":0.5}},"path":"f{i}"}}]"#))
            .collect();
    let space = format!(r#"{{"dict":[{}]}}"#, items.join(","));
    let weight = |i: usize| ((i * 7919) % 13) as f64 - 6.0;
    let best_of = |cfg: EngineConfig, seed: u64| {
        let mut e = Engine::new(&space, cfg, Some(seed), String::new()).unwrap();
        let mut best = f64::INFINITY;
        run(&mut e, |row| {
            let v: f64 = (0..40).filter(|&i| row[i].is_finite()).map(weight).sum();
            best = best.min(v);
            vec![v]
        });
        best
    };
    let optimum: f64 = (0..40).map(weight).filter(|w| *w < 0.0).sum();
    let (mut with, mut without) = (0.0, 0.0);
    for seed in 0..5 {
        with += best_of(screened(config(Algorithm::Ga, 1, 16, 6)), seed) - optimum;
        without += best_of(config(Algorithm::Ga, 1, 16, 6), seed) - optimum;
    }
    eprintln!("regret with the model {with}, without {without}");
    assert!(
        with < 0.5 * without,
        "regret with the model {with}, without {without}"
    );
}

#[test]
fn the_model_stops_after_model_evaluations() {
    let cfg = EngineConfig {
        model_evaluations: 20,
        ..screened(config(Algorithm::Ga, 1, 10, 6))
    };
    let mut e = Engine::new(&real_space(3), cfg, Some(4), String::new()).unwrap();
    run(&mut e, |x| vec![x.iter().sum()]);
    // Generations 0 and 1 (20 evaluations) feed the model; later ones are bred plainly.
    assert_eq!(e.state.archive.len(), 20);
    assert_eq!(e.evaluations(), 60);
}

fn setup(constraints: &[&str]) -> Setup {
    Setup {
        constraints: constraints.iter().map(|c| c.to_string()).collect(),
        ..Setup::default()
    }
}

/// Every candidate until done, as column rows.
fn all_rows(e: &mut Engine) -> Vec<Vec<f64>> {
    let n = e.num_params();
    let mut rows = Vec::new();
    while !e.done() {
        let r = e.ask(None);
        let mut c = vec![0.0; r.len() * n];
        let ids = e.fill_columns(r, &mut c);
        let m = e.num_objectives();
        let s: Vec<f64> = c
            .chunks(n)
            .flat_map(|r| {
                let v: f64 = r.iter().filter(|v| v.is_finite()).sum();
                [v, -v][..m].to_vec()
            })
            .collect();
        rows.extend(c.chunks(n).map(<[f64]>::to_vec));
        e.tell(&ids, &s).unwrap();
    }
    rows
}

#[test]
fn constraints_hold_and_exhaustion_counts_feasible_candidates() {
    for cfg in [
        config(Algorithm::Ga, 1, 4, 20),
        screened(config(Algorithm::Ga, 1, 4, 20)),
        config(Algorithm::Nsga2, 1, 4, 20),
    ] {
        let mut e = Engine::create(
            SMALL,
            cfg,
            Some(3),
            String::new(),
            setup(&["a * 2 <= 4 and (b is None or b == 'x')"]),
        )
        .unwrap();
        assert_eq!(e.space().size(), Some(6));
        let rows = all_rows(&mut e);
        assert_eq!(rows.len(), 6, "{rows:?}");
        for r in &rows {
            assert!(r[0] <= 2.0 && (r[1].is_nan() || r[1] == 0.0), "{r:?}");
        }
        let (drawn, rejected) = e.constraint_draws();
        assert!(drawn > 0 && rejected > 0 && rejected < drawn);
        assert!(e.exhausted());
    }
}

#[test]
fn infeasible_and_malformed_constraints_fail_fast_and_clearly() {
    for space in [SMALL.to_string(), real_space(3)] {
        let c = if space == SMALL { "a > 10" } else { "x0 > 2" };
        let started = std::time::Instant::now();
        let err = Engine::create(
            &space,
            config(Algorithm::Ga, 1, 8, 3),
            Some(1),
            String::new(),
            setup(&[c]),
        )
        .err()
        .expect("refused");
        assert!(started.elapsed().as_secs() < 5);
        assert!(matches!(err, Error::InvalidSpace { .. }), "{err:?}");
        assert!(err.to_string().contains("no candidate satisfies"), "{err}");
    }
    let bad = |c: &str| {
        Engine::create(
            SMALL,
            config(Algorithm::Ga, 1, 8, 3),
            Some(1),
            String::new(),
            setup(&[c]),
        )
        .err()
        .expect("refused")
        .to_string()
    };
    let e = bad("a * z <= 4");
    assert!(
        e.contains("constraints[0]")
            && e.contains("unknown parameter 'z'")
            && e.contains("position 4"),
        "{e}"
    );
    let e = bad("a * <= 4");
    assert!(e.contains("syntax error at position 4"), "{e}");
    let e = bad("a in b");
    assert!(e.contains("position 5"), "{e}");
}

/// `u` a knockout flag, `n` exists only with `u`; `o` a level, `v` only at -O2/-O3.
const GATED: &str = r#"{"dict":[
        ["u",{"param":{"type":"literal","value":"-funroll","knockout_prob":0.5},"path":"u"}],
        ["n",{"param":{"type":"range","start":2,"end":8,"step":2,"when":"u"},"path":"n"}],
        ["o",{"param":{"type":"choice","values":["-O1","-O2","-O3"]},"path":"o"}],
        ["v",{"param":{"type":"range","start":0,"end":2,"step":1,"knockout_prob":0.3,"when":{"o":["-O2","-O3"]}},"path":"v"}]]}"#;

#[test]
fn when_rules_hold_under_crossover_and_mutation_and_dedup_ignores_inactive_genes() {
    // (1 + 4) settings of u/n times (1 + 2 * 4) of o/v: 5 * 9 = 45 distinct candidates.
    for cfg in [
        config(Algorithm::Ga, 1, 6, 40),
        screened(config(Algorithm::Ga, 1, 6, 40)),
        config(Algorithm::Nsga3, 2, 6, 40),
    ] {
        let mut e = Engine::new(GATED, cfg, Some(11), String::new()).unwrap();
        assert_eq!(e.space().size(), Some(45));
        let rows = all_rows(&mut e);
        let mut seen = HashSet::new();
        for r in &rows {
            assert_eq!(r[1].is_nan(), r[0].is_nan(), "n without u: {r:?}");
            if r[2] == 0.0 {
                assert!(r[3].is_nan(), "v at -O1: {r:?}");
            }
            let key: Vec<u64> = r.iter().map(|v| v.to_bits()).collect();
            assert!(seen.insert(key), "repeated phenotype {r:?}");
        }
        assert_eq!(rows.len(), 45);
    }
}

#[test]
fn inactive_genes_are_missing_for_the_model() {
    let e = Engine::new(
        GATED,
        screened(config(Algorithm::Ga, 1, 6, 4)),
        Some(1),
        String::new(),
    )
    .unwrap();
    // o = -O1 (index 0), v present with a value: v is inactive, so NaN.
    let f = e.features(&[0.0, 1.0, 0.0, 2.0], &[true, true, true, true]);
    assert!(f[3].is_nan() && f[1] == 1.0);
    let f = e.features(&[0.0, 1.0, 1.0, 2.0], &[false, true, true, true]);
    assert!(f[0].is_nan() && f[1].is_nan() && f[3] == 2.0);
}

#[test]
fn bad_when_names_the_parameter() {
    let space = |when: &str| {
        format!(
            r#"{{"dict":[["a",{{"param":{{"type":"choice","values":[1,2]}},"path":"a"}}],["b",{{"param":{{"type":"range","start":0,"end":3,"when":{when}}},"path":"b"}}]]}}"#
        )
    };
    let err = |w: &str| Space::from_json(&space(w)).unwrap_err().to_string();
    assert!(
        err(r#""c""#).contains("b: when=\"c\": unknown parameter 'c'"),
        "{}",
        err(r#""c""#)
    );
    assert!(
        err(r#"{"a":[3]}"#).contains("3) is not a value of a"),
        "{}",
        err(r#"{"a":[3]}"#)
    );
    assert!(err(r#""b""#).contains("cannot depend on itself"));
    assert!(err(r#""a +""#).contains("syntax error"));
}

#[test]
fn warm_start_comes_first_and_priors_are_never_proposed() {
    let cfg = config(Algorithm::Ga, 1, 4, 20);
    let warm = vec![
        serde_json::json!({"a": 3, "b": "y"}),
        serde_json::json!({"a": 0}),
    ];
    let priors = vec![
        serde_json::json!({"a": 1, "b": "x"}),
        serde_json::json!({"a": 2}),
    ];
    let mut e = Engine::create(
        SMALL,
        cfg.clone(),
        Some(5),
        String::new(),
        Setup {
            warm_start: warm,
            priors,
            prior_scores: vec![1.0, f64::NAN],
            ..Setup::default()
        },
    )
    .unwrap();
    assert_eq!(e.priors(), 2);
    assert_eq!(e.state.population.len(), 2);
    let r = e.ask(None);
    let mut c = vec![0.0; r.len() * 2];
    let ids = e.fill_columns(r, &mut c);
    assert_eq!(ids[0], 2, "priors hold ids 0 and 1");
    assert_eq!(&c[..2], &[3.0, 1.0]);
    assert!(c[2] == 0.0 && c[3].is_nan());
    let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
    e.tell(&ids, &s).unwrap();
    let mut rows: Vec<Vec<f64>> = c.chunks(2).map(<[f64]>::to_vec).collect();
    rows.extend(all_rows(&mut e));
    // 12 candidates in the space, 2 of them told as priors.
    assert_eq!(rows.len(), 10);
    assert!(!rows
        .iter()
        .any(|r| (r[0] == 1.0 && r[1] == 0.0) || (r[0] == 2.0 && r[1].is_nan())));
    // A warm-start candidate outside the space is refused, naming the path.
    let err = Engine::create(
        SMALL,
        cfg,
        Some(5),
        String::new(),
        Setup {
            warm_start: vec![serde_json::json!({"a": 9})],
            ..Setup::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("['a']: warm_start[0]: 9 is not a value"),
        "{err}"
    );
}

#[test]
fn screening_repairs_rejected_candidates_and_drops_them_when_none_is_left() {
    let mut e = Engine::new(
        SMALL,
        config(Algorithm::Ga, 1, 6, 20),
        Some(2),
        String::new(),
    )
    .unwrap();
    let mut told = 0;
    let mut rejected_keys = HashSet::new();
    while !e.done() {
        // An outside rule: a must be even. Screen until every unasked candidate passes.
        loop {
            let todo = e.unscreened();
            if todo.is_empty() {
                break;
            }
            let (ok, bad): (Vec<usize>, Vec<usize>) = todo.into_iter().partition(|&p| {
                let (_, x, _) = e.candidate(p);
                x[0] as i64 % 2 == 0
            });
            for &p in &bad {
                let (_, x, on) = e.candidate(p);
                rejected_keys.insert(format!("{x:?}{on:?}"));
            }
            e.screen(&ok, &bad).unwrap();
        }
        let r = e.ask(None);
        let mut c = vec![0.0; r.len() * 2];
        let ids = e.fill_columns(r.clone(), &mut c);
        assert_eq!(ids, (ids[0]..ids[0] + ids.len() as u64).collect::<Vec<_>>());
        for p in r {
            let (_, x, on) = e.candidate(p);
            assert!(x[0] as i64 % 2 == 0);
            assert!(!rejected_keys.contains(&format!("{x:?}{on:?}")));
        }
        told += ids.len();
        let s: Vec<f64> = c.chunks(2).map(|r| r[0]).collect();
        e.tell(&ids, &s).unwrap();
    }
    // a in {0, 2} times b in {x, y, absent}: 6 candidates pass the rule.
    assert_eq!(told, 6);
    assert!(e.exhausted());
    assert!(e.screen(&[99], &[]).is_err());
}

#[test]
fn state_round_trips_with_constraints_when_and_priors() {
    let cfg = screened(config(Algorithm::Ga, 1, 6, 8));
    let mut a = Engine::create(
        GATED,
        cfg,
        Some(9),
        String::new(),
        Setup {
            constraints: vec!["n is None or n <= 6".into()],
            warm_start: vec![serde_json::json!({"u": "-funroll", "n": 4, "o": "-O3", "v": 1})],
            priors: vec![serde_json::json!({"o": "-O1"})],
            prior_scores: vec![3.0],
        },
    )
    .unwrap();
    let b0 = a.to_bytes();
    let mut b = Engine::from_bytes(&b0).unwrap();
    assert_eq!(b.to_bytes(), b0);
    assert_eq!(b.constraints(), a.constraints());
    assert_eq!(
        all_rows(&mut a)
            .iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        all_rows(&mut b)
            .iter()
            .map(|r| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A random leaf spec as JSON.
    fn leaf() -> impl Strategy<Value = String> {
        let ko = prop_oneof![
            Just(String::new()),
            (0.05f64..0.95).prop_map(|p| format!(r#","knockout_prob":{p}"#))
        ];
        let kind = prop_oneof![
            (-50i64..50, 1i64..40, 1i64..5).prop_map(|(a, span, st)| format!(
                r#""type":"range","start":{a},"end":{},"step":{st}"#,
                a + span
            )),
            (-5.0f64..5.0, 0.5f64..10.0).prop_map(|(a, span)| format!(
                r#""type":"range","start":{a:?},"end":{:?},"step":null"#,
                a + span
            )),
            (-5.0f64..5.0, 1u32..20).prop_map(|(a, k)| format!(
                r#""type":"range","start":{a:?},"end":{:?},"step":0.25"#,
                a + 0.25 * k as f64
            )),
            (1usize..6).prop_map(|k| format!(
                r#""type":"choice","values":[{}]"#,
                (0..k)
                    .map(|i| format!(r#""v{i}""#))
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            Just(r#""type":"literal","value":"-flag""#.to_string()),
        ];
        (kind, ko).prop_map(|(k, ko)| format!("{{{k}{ko}}}"))
    }

    fn space() -> impl Strategy<Value = String> {
        proptest::collection::vec(leaf(), 1..6).prop_map(|leaves| {
            let items: Vec<String> = leaves
                .iter()
                .enumerate()
                .map(|(i, l)| format!(r#"["p{i}",{{"param":{l},"path":"p{i}"}}]"#))
                .collect();
            format!(r#"{{"dict":[{}]}}"#, items.join(","))
        })
    }

    /// A random space with `when` conditions and a constraint, as JSON, plus what the test
    /// needs to check it independently: per parameter its kind (0 int range, 1 choice, 2
    /// literal), its gate (index, and whether the gate must be at its first value), and the
    /// constraint's atoms `(i, k, bound)`: `p_i is None or p_k is None or p_i + p_k <= bound`.
    pub(super) type Rules = (
        String,
        Vec<u8>,
        Vec<Option<(usize, bool)>>,
        Vec<(usize, usize, i64)>,
        bool,
    );

    pub(super) fn gated_space() -> impl Strategy<Value = Rules> {
        let leaf = (
            0u8..3,
            0i64..10,
            1i64..6,
            1u8..4,
            any::<bool>(),
            any::<bool>(),
            0usize..8,
            any::<bool>(),
        );
        (
            proptest::collection::vec(leaf, 2..6),
            proptest::collection::vec((0usize..6, 0usize..6, 0i64..16), 0..3),
            any::<bool>(),
        )
            .prop_map(|(leaves, atoms, any_of)| {
                let n = leaves.len();
                let mut kinds = Vec::new();
                let mut gates = Vec::new();
                let mut items = Vec::new();
                for (i, &(kind, a, span, k, ko, gated, gate, first)) in leaves.iter().enumerate() {
                    let gate = (gated && i > 0).then(|| {
                        let g = gate % i;
                        (g, first && kinds[g] == 1)
                    });
                    let when = match gate {
                        None => String::new(),
                        Some((g, false)) => format!(r#","when":"p{g}""#),
                        Some((g, true)) => format!(r#","when":{{"p{g}":["v0"]}}"#),
                    };
                    let ko = if ko { r#","knockout_prob":0.4"# } else { "" };
                    let body = match kind {
                        0 => {
                            format!(r#""type":"range","start":{a},"end":{},"step":1"#, a + span)
                        }
                        1 => format!(
                            r#""type":"choice","values":[{}]"#,
                            (0..=k)
                                .map(|v| format!(r#""v{v}""#))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                        _ => r#""type":"literal","value":"-f""#.to_string(),
                    };
                    kinds.push(kind);
                    gates.push(gate);
                    items.push(format!(
                        r#"["p{i}",{{"param":{{{body}{ko}{when}}},"path":"p{i}"}}]"#
                    ));
                }
                let ints: Vec<usize> = (0..n).filter(|&i| kinds[i] == 0).collect();
                let atoms: Vec<(usize, usize, i64)> = if ints.is_empty() {
                    Vec::new()
                } else {
                    atoms
                        .into_iter()
                        .map(|(i, k, b)| (ints[i % ints.len()], ints[k % ints.len()], b))
                        .collect()
                };
                (
                    format!(r#"{{"dict":[{}]}}"#, items.join(",")),
                    kinds,
                    gates,
                    atoms,
                    any_of,
                )
            })
    }

    pub(super) fn constraint_text(atoms: &[(usize, usize, i64)], any_of: bool) -> Option<String> {
        if atoms.is_empty() {
            return None;
        }
        let parts: Vec<String> = atoms
            .iter()
            .map(|(i, k, b)| format!("(p{i} is None or p{k} is None or p{i} + p{k} <= {b})"))
            .collect();
        Some(parts.join(if any_of { " or " } else { " and " }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(150))]
        #[test]
        fn constraints_and_conditions_hold_for_every_engine((space_json, kinds, gates, atoms, any_of) in gated_space(), seed in any::<u64>(), algo in 0u8..6, cut in 0u32..4) {
            let algorithm = [Algorithm::Ga, Algorithm::Nsga2, Algorithm::Nsga3][algo as usize % 3];
            let m = if algorithm == Algorithm::Ga { 1 } else { 2 };
            let cfg = EngineConfig { surrogate: algo >= 3, oversampling: 4, ..config(algorithm, m, 8, 6) };
            let constraints: Vec<String> = constraint_text(&atoms, any_of).into_iter().collect();
            let made = Engine::create(&space_json, cfg, Some(seed), String::new(), Setup { constraints, ..Setup::default() });
            let mut e = match made {
                Ok(e) => e,
                // Only a constraint nothing satisfies may refuse the space.
                Err(err) => { prop_assert!(err.to_string().contains("no candidate satisfies"), "{}", err); return Ok(()); }
            };
            let n = e.num_params();
            let holds = |r: &[f64]| {
                let ok = atoms.iter().map(|&(i, k, b)| r[i].is_nan() || r[k].is_nan() || r[i] + r[k] <= b as f64);
                if any_of { ok.into_iter().any(|v| v) } else { ok.into_iter().all(|v| v) }
            };
            let mut seen = HashSet::new();
            let mut copy: Option<Engine> = None;
            while !e.done() {
                if e.generation() == cut && copy.is_none() {
                    copy = Some(Engine::from_bytes(&e.to_bytes()).unwrap());
                }
                let r = e.ask(None);
                let positions: Vec<usize> = r.clone().collect();
                let mut cols = vec![0.0; r.len() * n];
                let ids = e.fill_columns(r, &mut cols);
                for (row, &pos) in cols.chunks(n).zip(&positions) {
                    let (_, _, on) = e.candidate(pos);
                    for i in 0..n {
                        let cond = match gates[i] {
                            None => true,
                            Some((g, false)) => !row[g].is_nan(),
                            Some((g, true)) => row[g] == 0.0,
                        };
                        prop_assert_eq!(row[i].is_nan(), !(on[i] && cond), "presence of p{} in {:?}", i, row);
                    }
                    if !atoms.is_empty() {
                        prop_assert!(holds(row), "violates {:?}: {:?}", constraint_text(&atoms, any_of), row);
                    }
                    prop_assert!(seen.insert(row.iter().map(|v| v.to_bits()).collect::<Vec<_>>()), "repeated {:?}", row);
                }
                let scores: Vec<f64> = cols.chunks(n).flat_map(|r| { let s: f64 = r.iter().filter(|v| v.is_finite()).sum(); vec![s, -s][..m].to_vec() }).collect();
                e.tell(&ids, &scores).unwrap();
                if let Some(c) = copy.as_mut() {
                    if c.generation() + 1 == e.generation() {
                        let r = c.ask(None);
                        let mut cc = vec![0.0; r.len() * n];
                        let cids = c.fill_columns(r, &mut cc);
                        prop_assert_eq!(&cids, &ids);
                        prop_assert_eq!(cc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), cols.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                        c.tell(&cids, &scores).unwrap();
                    }
                }
            }
            let _ = kinds;
            if let Some(size) = e.space().size() {
                prop_assert!(seen.len() as u128 <= size);
                if e.exhausted() { prop_assert_eq!(seen.len() as u128, size); }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        #[test]
        fn in_bounds_unique_and_resumable(space_json in space(), seed in any::<u64>(), algo in 0u8..6, cut in 0u32..4) {
            let algorithm = [Algorithm::Ga, Algorithm::Nsga2, Algorithm::Nsga3][algo as usize % 3];
            let m = if algorithm == Algorithm::Ga { 1 } else { 2 };
            let cfg = EngineConfig { surrogate: algo >= 3, oversampling: 4, ..config(algorithm, m, 10, 5) };
            let mut e = Engine::new(&space_json, cfg, Some(seed), String::new()).unwrap();
            let space = e.space().clone();
            let n = e.num_params();
            let mut seen = HashSet::new();
            let mut copy: Option<Engine> = None;
            while !e.done() {
                if e.generation() == cut && copy.is_none() {
                    copy = Some(Engine::from_bytes(&e.to_bytes()).unwrap());
                }
                let r = e.ask(None);
                let len = r.len();
                let positions: Vec<usize> = r.collect();
                let mut cols = vec![0.0; len * n];
                let ids = e.fill_columns(positions[0]..positions[0] + len, &mut cols);
                for i in positions {
                    let (_, x, on) = e.candidate(i);
                    let key: Vec<String> = (0..n).map(|j| if on[j] { format!("{:?}", space.params[j].value(x[j])) } else { "-".into() }).collect();
                    prop_assert!(seen.insert(key.clone()), "repeated candidate {:?}", key);
                    for (j, p) in space.params.iter().enumerate() {
                        let g = Gene::from_param(p);
                        prop_assert!(x[j] >= g.low && x[j] <= g.high, "gene {} out of bounds: {}", j, x[j]);
                        if let Some(levels) = p.levels() {
                            prop_assert!(x[j].fract() == 0.0 && (x[j] as u64) < levels.max(1));
                        }
                    }
                }
                let scores: Vec<f64> = cols.chunks(n).flat_map(|r| { let s: f64 = r.iter().filter(|v| v.is_finite()).sum(); vec![s, -s * 0.5 + r.len() as f64][..m].to_vec() }).collect();
                e.tell(&ids, &scores).unwrap();
                if let Some(c) = copy.as_mut() {
                    if c.generation() + 1 == e.generation() {
                        let r = c.ask(None);
                        let mut cc = vec![0.0; r.len() * n];
                        let cids = c.fill_columns(r, &mut cc);
                        prop_assert_eq!(&cids, &ids);
                        prop_assert_eq!(cc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), cols.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                        c.tell(&cids, &scores).unwrap();
                    }
                }
            }
            if let Some(size) = space.size() {
                prop_assert!(seen.len() as u128 <= size);
                if e.exhausted() { prop_assert_eq!(seen.len() as u128, size); }
            }
        }
    }
}

/// The steady schedule: asks of any size at any time, tells of any subset in any order.
mod steady {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn steady(cfg: EngineConfig) -> EngineConfig {
        EngineConfig {
            schedule: crate::config::Schedule::Steady,
            ..cfg
        }
    }

    /// What one step did: the candidates asked (id and column bits) and the ids told.
    type Step = (Vec<(u64, Vec<u64>)>, Vec<u64>);

    /// Asks 0-3 candidates, then tells a random subset of the pending ones in a random order
    /// (scores from the columns); the script's own RNG decides, so two engines driven by equal
    /// scripts see the same calls.
    fn step(e: &mut Engine, script: &mut EngineRng) -> Step {
        let n = e.num_params();
        let m = e.num_objectives();
        let r = e.ask(Some(script.random_range(0..4)));
        let mut cols = vec![0.0; r.len() * n];
        let ids = e.fill_columns(r, &mut cols);
        let asked = ids
            .iter()
            .zip(cols.chunks(n))
            .map(|(&id, c)| (id, c.iter().map(|v| v.to_bits()).collect()))
            .collect();
        let mut pending: Vec<usize> = e.pending();
        let mut told = Vec::new();
        let mut scores = Vec::new();
        let mut row = vec![0.0; n];
        while !pending.is_empty() && script.random::<f64>() < 0.6 {
            let p = pending.swap_remove(script.random_range(0..pending.len()));
            let (id, _, _) = e.candidate(p);
            e.fill_columns(p..p + 1, &mut row);
            let v: f64 = row.iter().filter(|v| v.is_finite()).sum();
            told.push(id);
            scores.extend([v, -v * 0.5 + row.len() as f64][..m].iter().copied());
        }
        e.tell(&told, &scores).unwrap();
        (asked, told)
    }

    #[test]
    fn never_repeats_and_exhausts_whatever_the_asks_and_tells() {
        for (cfg, seed) in [
            (steady(config(Algorithm::Ga, 1, 4, 10)), 1),
            (steady(screened(config(Algorithm::Ga, 1, 4, 10))), 2),
            (steady(config(Algorithm::Nsga2, 2, 4, 10)), 3),
        ] {
            let mut e = Engine::new(SMALL, cfg, Some(seed), String::new()).unwrap();
            let mut script = EngineRng::seed_from_u64(seed);
            let mut seen = HashSet::new();
            while !e.done() {
                for (_, c) in step(&mut e, &mut script).0 {
                    assert!(seen.insert(c), "repeated");
                }
            }
            // 4 values x (2 choices + absent) = 12 distinct candidates.
            assert_eq!(seen.len(), 12);
            assert!(e.exhausted() && e.pending().is_empty());
        }
    }

    #[test]
    fn the_budget_is_generations_times_pool_and_generation_counts_cohorts() {
        let cfg = steady(screened(config(Algorithm::Ga, 1, 6, 4)));
        let mut e = Engine::new(&real_space(3), cfg, Some(5), String::new()).unwrap();
        let mut script = EngineRng::seed_from_u64(5);
        let mut asked = 0;
        while !e.done() {
            asked += step(&mut e, &mut script).0.len();
            assert_eq!(e.generation() as u64, e.evaluations() / 6);
        }
        assert_eq!((asked, e.evaluations(), e.generation()), (24, 24, 4));
        assert!(e.ask(Some(3)).is_empty());
    }

    #[test]
    fn pending_candidates_keep_parallel_asks_apart() {
        // Eight asked at once from the same model spread out more than eight asked one at a
        // time with nothing pending would have to; here: no two of them are near-duplicates.
        let cfg = steady(screened(config(Algorithm::Ga, 1, 16, 8)));
        let mut e = Engine::new(&real_space(4), cfg, Some(9), String::new()).unwrap();
        let n = 4;
        for _ in 0..3 {
            let r = e.ask(Some(16));
            let mut c = vec![0.0; r.len() * n];
            let ids = e.fill_columns(r, &mut c);
            let s: Vec<f64> = c
                .chunks(n)
                .map(|x| x.iter().map(|v| (v - 0.3).powi(2)).sum())
                .collect();
            e.tell(&ids, &s).unwrap();
        }
        let r = e.ask(Some(8));
        let mut c = vec![0.0; r.len() * n];
        e.fill_columns(r, &mut c);
        let rows: Vec<&[f64]> = c.chunks(n).collect();
        for i in 0..rows.len() {
            for j in 0..i {
                let d: f64 = rows[i]
                    .iter()
                    .zip(rows[j])
                    .map(|(a, b)| (a - b).abs())
                    .sum::<f64>()
                    / n as f64;
                assert!(d > 0.01, "near-duplicates {:?} {:?}", rows[i], rows[j]);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(60))]
        #[test]
        fn constraints_hold_and_a_recorded_sequence_replays_exactly((space_json, _kinds, gates, atoms, any_of) in properties::gated_space(), seed in any::<u64>(), algo in 0u8..6, cut in 0usize..30) {
            let algorithm = [Algorithm::Ga, Algorithm::Nsga2, Algorithm::Nsga3][algo as usize % 3];
            let m = if algorithm == Algorithm::Ga { 1 } else { 2 };
            let cfg = steady(EngineConfig { surrogate: algo >= 3, oversampling: 4, ..config(algorithm, m, 8, 5) });
            let constraints: Vec<String> = properties::constraint_text(&atoms, any_of).into_iter().collect();
            let setup = Setup { constraints, ..Setup::default() };
            let made = Engine::create(&space_json, cfg.clone(), Some(seed), String::new(), setup.clone());
            let mut e = match made {
                Ok(e) => e,
                Err(err) => { prop_assert!(err.to_string().contains("no candidate satisfies"), "{}", err); return Ok(()); }
            };
            let mut twin = Engine::create(&space_json, cfg, Some(seed), String::new(), setup).unwrap();
            let n = e.num_params();
            let holds = |r: &[f64]| {
                let ok = atoms.iter().map(|&(i, k, b)| r[i].is_nan() || r[k].is_nan() || r[i] + r[k] <= b as f64);
                if any_of { ok.into_iter().any(|v| v) } else { ok.into_iter().all(|v| v) }
            };
            let mut script = EngineRng::seed_from_u64(seed ^ 1);
            let mut twin_script = script.clone();
            let mut seen = HashSet::new();
            let mut copy: Option<(Engine, EngineRng)> = None;
            let mut k = 0;
            while !e.done() {
                if k == cut {
                    // Mid-flight: pending candidates included.
                    copy = Some((Engine::from_bytes(&e.to_bytes()).unwrap(), script.clone()));
                    let restored = &copy.as_ref().unwrap().0;
                    prop_assert_eq!(restored.to_bytes(), e.to_bytes());
                }
                    let (asked, told) = step(&mut e, &mut script);
                    for (_, bits) in &asked {
                    let row: Vec<f64> = bits.iter().map(|b| f64::from_bits(*b)).collect();
                    for i in 0..n {
                        if let Some((g, first)) = gates[i] {
                            let cond = if first { row[g] == 0.0 } else { !row[g].is_nan() };
                            prop_assert!(cond || row[i].is_nan(), "p{} present without its condition in {:?}", i, row);
                        }
                    }
                    if !atoms.is_empty() {
                        prop_assert!(holds(&row), "violates {:?}: {:?}", properties::constraint_text(&atoms, any_of), row);
                    }
                    prop_assert!(seen.insert(bits.clone()), "repeated {:?}", row);
                }
                prop_assert_eq!(&step(&mut twin, &mut twin_script), &(asked.clone(), told.clone()));
                if let Some((c, s)) = copy.as_mut() {
                    prop_assert_eq!(&step(c, s), &(asked, told));
                }
                k += 1;
            }
            prop_assert!(e.pending().is_empty());
            if let Some(size) = e.space().size() {
                prop_assert!(seen.len() as u128 <= size);
                if e.exhausted() { prop_assert_eq!(seen.len() as u128, size); }
            }
        }
    }
}
