//! Simulcast layer selection: which layer a subscription wants, among those a publication sends.

use crate::LayerChoice;

/// Orders simulcast rids from lowest to highest quality and picks the wanted one.
///
/// Layers are known by their rid. Common conventions are recognised (`q`/`h`/`f`,
/// `l`/`m`/`h`, `low`/`mid`/`high`, numeric `0`/`1`/`2`); otherwise the SDP order is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSelector {
    choice: LayerChoice,
}

impl LayerSelector {
    /// A selector for this choice.
    pub fn new(choice: LayerChoice) -> Self {
        LayerSelector { choice }
    }

    /// The wanted choice.
    pub fn choice(&self) -> LayerChoice {
        self.choice
    }

    /// Change the wanted choice (takes effect at the next keyframe of the new layer).
    pub fn set_choice(&mut self, choice: LayerChoice) {
        self.choice = choice;
    }

    /// The rank (0 = lowest) wanted among `layers` active layers.
    pub fn select_rank(&self, layers: usize) -> usize {
        match (self.choice, layers) {
            (_, 0) | (LayerChoice::Low, _) => 0,
            (LayerChoice::Medium, n) => (n - 1).min(1),
            (LayerChoice::High, n) => n - 1,
        }
    }

    /// Rank of a rid among `rids` (0 = lowest quality).
    pub fn rank(rid: &str, rids: &[&str]) -> usize {
        let has_f = rids.contains(&"f");
        let score = |r: &str| -> Option<i32> {
            Some(match r {
                "q" | "l" | "lo" | "low" | "0" => 0,
                "m" | "mid" | "medium" | "1" => 1,
                "h" if has_f => 1,
                "h" | "hi" | "high" | "f" | "full" | "2" => 2,
                _ => return None,
            })
        };
        if rids.iter().all(|r| score(r).is_some()) {
            let mine = score(rid).unwrap_or(0);
            rids.iter().filter(|r| score(r).unwrap_or(0) < mine).count()
        } else {
            rids.iter().position(|r| *r == rid).unwrap_or(0)
        }
    }

    /// Index in `rids` of the wanted layer, or `None` when there are no layers.
    pub fn select(&self, rids: &[&str]) -> Option<usize> {
        if rids.is_empty() {
            return None;
        }
        let want = self.select_rank(rids.len());
        rids.iter().position(|r| Self::rank(r, rids) == want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_convention() {
        let hi = LayerSelector::new(LayerChoice::High);
        let mid = LayerSelector::new(LayerChoice::Medium);
        let lo = LayerSelector::new(LayerChoice::Low);
        let qhf = ["q", "h", "f"];
        assert_eq!(hi.select(&qhf), Some(2));
        assert_eq!(mid.select(&qhf), Some(1));
        assert_eq!(lo.select(&qhf), Some(0));
        let hml = ["h", "m", "l"];
        assert_eq!(hi.select(&hml), Some(0));
        assert_eq!(mid.select(&hml), Some(1));
        assert_eq!(lo.select(&hml), Some(2));
        let custom = ["a", "b"];
        assert_eq!(hi.select(&custom), Some(1));
        assert_eq!(mid.select(&custom), Some(1));
        assert_eq!(lo.select(&custom), Some(0));
        assert_eq!(hi.select(&[]), None);
        assert_eq!(mid.select(&["only"]), Some(0));
    }
}
