//! [`Lcg`]: a small deterministic generator for the model tests of the
//! stages' pure cores (dedupe's and the state writer's plans): no
//! dependency, and a seed reproduces a history exactly.

/// A linear congruential generator (Knuth's MMIX constants).
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_reproduces_its_sequence_within_bounds() {
        let (mut a, mut b) = (Lcg(7), Lcg(7));
        for _ in 0..100 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            assert!(n < 10);
        }
        assert_eq!(Lcg(1).below(0), 0);
    }
}
