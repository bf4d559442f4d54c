//! The chart the bench writes (`bench.svg`): one panel of throughputs and
//! one of latency percentiles, each measurement next to its baselines, so a
//! reader sees at a glance where the pipeline stands. Plain SVG written by
//! hand: no plotting or font dependency, renders on GitHub and in browsers.

use std::fmt::Write as _;

/// One bar group: a label and its bars (series name, value).
#[derive(Debug, Clone)]
pub struct Group {
    /// Shown left of the bars.
    pub label: String,
    /// (series, value) pairs; the series picks the colour.
    pub bars: Vec<(String, f64)>,
}

/// A panel of horizontal grouped bars sharing one axis.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Unit shown after values, e.g. `req/s`.
    pub unit: String,
    /// The groups, top to bottom.
    pub groups: Vec<Group>,
}

const WIDTH: f64 = 1000.0;
const LABEL_WIDTH: f64 = 320.0;
const BAR_HEIGHT: f64 = 16.0;
const GROUP_GAP: f64 = 12.0;
const PALETTE: [&str; 10] = [
    "#9aa5b1", "#5b8def", "#e4572e", "#29a35a", "#f2a541", "#7d5ba6", "#17becf", "#8c564b",
    "#e377c2", "#bcbd22",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Renders `panels` one under the other, with a legend of every series.
pub fn render(title: &str, panels: &[Panel]) -> String {
    let mut series: Vec<String> = Vec::new();
    for bar in panels.iter().flat_map(|p| &p.groups).flat_map(|g| &g.bars) {
        if !series.contains(&bar.0) {
            series.push(bar.0.clone());
        }
    }
    let colour = |name: &str| {
        let index = series.iter().position(|s| s == name).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    let mut body = String::new();
    let mut y = 40.0;
    // Legend.
    let mut x = 20.0;
    for name in &series {
        let _ = write!(
            body,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            colour(name),
            x + 16.0,
            y,
            escape(name)
        );
        x += 24.0 + 7.5 * name.len() as f64;
        if x > WIDTH - 200.0 {
            x = 20.0;
            y += 18.0;
        }
    }
    y += 20.0;
    for panel in panels {
        y += 24.0;
        let _ = write!(
            body,
            r#"<text x="20" y="{y}" font-weight="bold">{}</text>"#,
            escape(&format!("{} ({})", panel.title, panel.unit))
        );
        y += 12.0;
        let max = panel
            .groups
            .iter()
            .flat_map(|g| g.bars.iter().map(|b| b.1))
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let scale = (WIDTH - LABEL_WIDTH - 90.0) / max;
        for group in &panel.groups {
            let height = BAR_HEIGHT * group.bars.len() as f64;
            let _ = write!(
                body,
                r#"<text x="20" y="{}">{}</text>"#,
                y + height / 2.0 + 4.0,
                escape(&group.label)
            );
            for (name, value) in &group.bars {
                let w = (value * scale).max(1.0);
                let _ = write!(
                    body,
                    r#"<rect x="{LABEL_WIDTH}" y="{y}" width="{w:.1}" height="{}" fill="{}"><title>{}: {}</title></rect><text x="{:.1}" y="{}" font-size="11">{}</text>"#,
                    BAR_HEIGHT - 2.0,
                    colour(name),
                    escape(name),
                    format_value(*value),
                    LABEL_WIDTH + w + 4.0,
                    y + BAR_HEIGHT - 5.0,
                    format_value(*value)
                );
                y += BAR_HEIGHT;
            }
            y += GROUP_GAP;
        }
    }
    let height = y + 20.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/><text x="20" y="22" font-size="16" font-weight="bold">{}</text>{body}</svg>
"#,
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_bar_with_its_value_and_escapes_labels() {
        let svg = render(
            "t <&>",
            &[Panel {
                title: "throughput".into(),
                unit: "req/s".into(),
                groups: vec![Group {
                    label: "a<b".into(),
                    bars: vec![("ingest".into(), 1234.4), ("ceiling".into(), 2.5)],
                }],
            }],
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("t &lt;&amp;&gt;"));
        assert!(svg.contains("a&lt;b"));
        assert!(svg.contains(">1234<"));
        assert!(svg.contains(">2.50<"));
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 2 + 2,
            "background, legend, bars"
        );
    }
}
