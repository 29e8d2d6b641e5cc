//! The workload shared by the `topic` and `topic_memory` benches: filter sets
//! of a building-automation broker (70% exact, 20% with `+`, 10% with `#`,
//! 3 to 7 levels, names like `site42/building3/floor7/room12/temperature`)
//! and published names drawn from the same distribution.
#![allow(dead_code)]

pub use mqtt_benches::{Rng, METRICS};

/// The levels of one random name of `depth` levels (3..=7) for a set of
/// `n` subscriptions: the number of sites grows with the set.
fn levels(r: &mut Rng, n: usize, depth: usize) -> Vec<String> {
    let sites = (n as u64 / 2_000).max(10);
    let mut v = vec![format!("site{}", r.below(sites))];
    let kinds: [(&str, u64); 5] = [
        ("building", 20),
        ("floor", 30),
        ("room", 100),
        ("device", 50),
        ("channel", 8),
    ];
    for (name, count) in kinds.iter().take(depth - 2) {
        v.push(format!("{name}{}", r.below(*count)));
    }
    v.push(METRICS[r.below(METRICS.len() as u64) as usize].to_string());
    v
}

fn depth(r: &mut Rng) -> usize {
    3 + r.below(5) as usize
}

/// `n` filters: 70% exact, 20% with one or two `+` levels, 10% ending in
/// `#` at a random depth.
pub fn filters(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|_| {
            let d = depth(&mut r);
            let mut l = levels(&mut r, n, d);
            match r.below(10) {
                0..=6 => {}
                7 | 8 => {
                    let i = r.below(d as u64) as usize;
                    l[i] = "+".into();
                    if r.below(4) == 0 {
                        let j = r.below(d as u64) as usize;
                        l[j] = "+".into();
                    }
                }
                _ => {
                    let keep = 1 + r.below(d as u64 - 1) as usize;
                    l.truncate(keep);
                    l.push("#".into());
                }
            }
            l.join("/")
        })
        .collect()
}

/// `count` published names for a set of `n` filters: half of them are the
/// exact filters of the set (so exact subscriptions are hit), half random.
pub fn names(n: usize, filters: &[String], count: usize, seed: u64) -> Vec<String> {
    let mut r = Rng::new(seed);
    (0..count)
        .map(|_| {
            if r.below(2) == 0 {
                for _ in 0..64 {
                    let f = &filters[r.below(filters.len() as u64) as usize];
                    if !f.contains(['+', '#']) {
                        return f.clone();
                    }
                }
            }
            let d = depth(&mut r);
            levels(&mut r, n, d).join("/")
        })
        .collect()
}
