//! Runs a ZDT1/DTLZ2 search with the objective inlined, for profiling (`perf record`).
//! Usage: cargo run --release --example profile_generation -- [nsga2|nsga3|ga] N n G
use genetune_core::config::Schedule;
use genetune_core::{Algorithm, Direction, Engine, EngineConfig};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let algorithm = match args.get(1).map(String::as_str).unwrap_or("nsga2") {
        "nsga3" => Algorithm::Nsga3,
        "ga" => Algorithm::Ga,
        _ => Algorithm::Nsga2,
    };
    let pool: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    let gens: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    let m = match algorithm {
        Algorithm::Ga => 1,
        Algorithm::Nsga2 => 2,
        Algorithm::Nsga3 => 3,
    };
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"["x{i}",{{"param":{{"type":"range","start":0.0,"end":1.0,"step":null}},"path":"x{i}"}}]"#))
        .collect();
    let space = format!(r#"{{"dict":[{}]}}"#, items.join(","));
    let config = EngineConfig {
        schedule: Schedule::Generational,
        generations: gens,
        pool_size: pool,
        cull_size: (pool * 3 / 4) & !1,
        mutate_rate: 0.9,
        gene_mutate_rate: None,
        surrogate: std::env::var_os("GENETUNE_PROFILE_SURROGATE").is_some(),
        oversampling: 24,
        model_evaluations: u64::MAX,
        directions: vec![Direction::Min; m],
        algorithm,
        init_seed_share: 0.0,
        objective_weights: None,
        crossover_prob: 0.9,
        crossover_eta: 15.0,
        mutation_eta: 20.0,
    };
    let mut e = Engine::new(&space, config, Some(1), String::new()).unwrap();
    let mut cols = vec![0.0; pool * n];
    while !e.done() {
        let t0 = Instant::now();
        let r = e.ask(None);
        let k = r.len();
        let ids = e.fill_columns(r, &mut cols[..k * n]);
        let scores: Vec<f64> = cols[..k * n]
            .chunks(n)
            .flat_map(|x| {
                let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (n as f64 - 1.0);
                let f = [x[0], g * (1.0 - (x[0] / g).sqrt()), x[1] + g];
                f.into_iter().take(m).collect::<Vec<_>>()
            })
            .collect();
        e.tell(&ids, &scores).unwrap();
        println!(
            "generation {}: {:.2} us/candidate",
            e.generation(),
            t0.elapsed().as_secs_f64() * 1e6 / k as f64
        );
    }
}
