//! SVG plots of a simulation's results: latency, cost and data movement over time, one line
//! per strategy, and the peak utilization of each watched shared level against its capacity.
//!
//! Every plot goes through one line-chart helper (`Chart` and its renderer). The SVGs are
//! a pure function of the [`Results`]: no clock, no hash order, and no system fonts — text is
//! laid out by plotters' built-in estimate and left to the viewer as `<text>` elements — so
//! the same results give the same bytes.

use std::io;
use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::measure::Series;
use crate::simulate::Results;

/// Width and height of every chart, in pixels.
const SIZE: (u32, u32) = (900, 420);
const SECONDS_PER_HOUR: f64 = 3600.0;
const BYTES_PER_TB: f64 = 1e12;
/// On a chart that allows it, values whose largest is at least this many times their
/// smallest (all above zero) are drawn on a logarithmic axis.
const LOG_SPREAD: f64 = 20.0;
const FONT: &str = "sans-serif";
/// Translucent grey over the intervals a fault or workload event was in force.
const EVENT_SHADE: RGBColor = RGBColor(200, 200, 200);
const EVENT_SHADE_ALPHA: f64 = 0.35;
const EVENT_LABEL: &str = "event in force";
const CAPACITY: RGBColor = RGBColor(214, 39, 40);
/// For strategies without a colour of their own, by their index in the results.
const FALLBACK: [RGBColor; 6] = [
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(57, 59, 121),
];

/// Writes every plot of `results` into `dir` (created if missing) and returns
/// `(title, file name)` for each, in a fixed order.
pub fn write_plots(results: &Results, dir: &Path) -> io::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for chart in charts(results) {
        std::fs::write(dir.join(&chart.file), chart.svg()?)?;
        written.push((chart.title, chart.file));
    }
    Ok(written)
}

/// A strategy's colour: fixed for the known strategies, else from a palette by `index`.
pub fn colour(strategy: &str, index: usize) -> RGBColor {
    match strategy {
        "static" => RGBColor(127, 127, 127),
        "reactive" => RGBColor(255, 127, 14),
        "siloed" => RGBColor(148, 103, 189),
        "unified" => RGBColor(31, 119, 180),
        "oracle" => RGBColor(44, 160, 44),
        _ => FALLBACK[index % FALLBACK.len()],
    }
}

/// One line chart over simulated hours.
struct Chart {
    file: String,
    title: String,
    /// Shown after the title in the picture.
    scenario: String,
    y_label: String,
    lines: Vec<Line>,
    /// A dashed horizontal line: `(y, legend label)`.
    reference: Option<(f64, &'static str)>,
    /// Where the series may start steeply and then settle: logarithmic y if the spread is wide.
    log_if_spread: bool,
    /// Hours the run lasted.
    x_max: f64,
    /// Hours during which some event was in force, merged.
    shaded: Vec<(f64, f64)>,
}

/// How the legend shows an entry.
#[derive(Clone, Copy)]
enum Swatch {
    Area(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
}

struct Line {
    label: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

fn charts(r: &Results) -> Vec<Chart> {
    let mut latency = chart(
        r,
        "latency",
        "p99 access latency",
        "p99 latency (ms)",
        |s| s.latency_p99_ms.clone(),
    );
    latency.log_if_spread = true;
    let mut out = vec![
        latency,
        chart(r, "cost", "Cumulative cost", "cost ($)", |s| s.cost.clone()),
        chart(r, "moves", "Copies started (cumulative)", "copies", |s| {
            s.copies.iter().map(|&c| c as f64).collect()
        }),
        chart(r, "bytes", "Bytes moved (cumulative)", "moved (TB)", |s| {
            s.bytes_moved.iter().map(|b| b / BYTES_PER_TB).collect()
        }),
    ];
    let mut files: Vec<String> = out.iter().map(|c| c.file.clone()).collect();
    for label in level_labels(r) {
        let stem = unique(&mut files, &format!("shared-{}", sanitize(&label)));
        let title = format!("Peak utilization: {label}");
        let mut c = chart(r, &stem, &title, "peak demand (% of capacity)", |s| {
            level(s, &label).iter().map(|u| 100.0 * u).collect()
        });
        c.reference = Some((100.0, "capacity"));
        out.push(c);
    }
    out
}

/// A chart of `metric` against time, one line per strategy.
fn chart(
    r: &Results,
    stem: &str,
    title: &str,
    y_label: &str,
    metric: impl Fn(&Series) -> Vec<f64>,
) -> Chart {
    let lines = r
        .outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| Line {
            label: o.strategy.clone(),
            colour: colour(&o.strategy, i),
            points: o
                .series
                .t_s
                .iter()
                .zip(metric(&o.series))
                .map(|(t, v)| (t / SECONDS_PER_HOUR, v))
                .filter(|(t, v)| t.is_finite() && v.is_finite())
                .collect(),
        })
        .collect();
    let x_max = r.duration_s / SECONDS_PER_HOUR;
    Chart {
        file: format!("{stem}.svg"),
        title: title.to_string(),
        scenario: r.scenario.clone(),
        y_label: y_label.to_string(),
        lines,
        reference: None,
        log_if_spread: false,
        x_max,
        shaded: event_hours(&r.events, x_max),
    }
}

/// The watched levels' labels, in order of first appearance.
fn level_labels(r: &Results) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for (label, _) in r.outcomes.iter().flat_map(|o| &o.series.level_peak) {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    labels
}

fn level<'a>(s: &'a Series, label: &str) -> &'a [f64] {
    s.level_peak
        .iter()
        .find(|(l, _)| l == label)
        .map_or(&[], |(_, v)| v)
}

/// A label as a file-name stem: ASCII letters, digits, `_` and `.`, the rest as single `-`.
fn sanitize(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "level".to_string()
    } else {
        out.to_string()
    }
}

/// `stem.svg`, or `stem-2.svg`, … if that file name is taken; records the one returned.
fn unique(files: &mut Vec<String>, stem: &str) -> String {
    let mut candidate = stem.to_string();
    let mut n = 1;
    while files.contains(&format!("{candidate}.svg")) {
        n += 1;
        candidate = format!("{stem}-{n}");
    }
    files.push(format!("{candidate}.svg"));
    candidate
}

/// The intervals, in hours within `[0, x_max]`, during which some event was in force; an
/// event without an end lasts to the end of the run.
fn event_hours(events: &[(f64, Option<f64>, String)], x_max: f64) -> Vec<(f64, f64)> {
    let mut spans: Vec<(f64, f64)> = events
        .iter()
        .map(|(start, end, _)| {
            let end = end.map_or(x_max, |e| e / SECONDS_PER_HOUR);
            ((start / SECONDS_PER_HOUR).max(0.0), end.min(x_max))
        })
        .filter(|(a, b)| a.is_finite() && b.is_finite() && a < b)
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (a, b) in spans {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

type DrawResult<T> = Result<T, DrawingAreaErrorKind<io::Error>>;

impl Chart {
    /// The chart as an SVG document.
    fn svg(&self) -> io::Result<String> {
        let mut svg = String::new();
        self.render(&mut svg)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(svg)
    }

    fn render(&self, svg: &mut String) -> DrawResult<()> {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!("{} — {}", self.title, self.scenario);
        let body = root.titled(&caption, (FONT, 20))?;
        let (plot, legend) = body.split_horizontally(SIZE.0 as i32 - self.legend_width());
        let x = 0.0..self.x_range_end();
        match self.log_range() {
            Some(y) => self.draw(&plot, x, y.clone(), y.log_scale())?,
            None => {
                let y = self.linear_range();
                self.draw(&plot, x, y.clone(), y)?
            }
        }
        self.draw_legend(&legend)?;
        root.present()
    }

    /// Room on the right for the legend, from its longest label.
    fn legend_width(&self) -> i32 {
        let longest = self
            .legend()
            .iter()
            .map(|(label, _)| label.chars().count())
            .max();
        (48 + 8 * longest.unwrap_or(0)).clamp(120, 280) as i32
    }

    /// The legend's entries: the event shading, each strategy, the reference line.
    fn legend(&self) -> Vec<(&str, Swatch)> {
        let events = (!self.shaded.is_empty()).then_some((EVENT_LABEL, Swatch::Area(EVENT_SHADE)));
        let lines = self
            .lines
            .iter()
            .map(|l| (l.label.as_str(), Swatch::Line(l.colour)));
        let reference = self
            .reference
            .map(|(_, label)| (label, Swatch::Dashed(CAPACITY)));
        events.into_iter().chain(lines).chain(reference).collect()
    }

    fn draw_legend(&self, area: &DrawingArea<SVGBackend, Shift>) -> DrawResult<()> {
        let text = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (label, swatch)) in self.legend().into_iter().enumerate() {
            let (x, y) = (8, 20 + 20 * i as i32);
            let dash = |from: i32, to: i32, c: RGBColor| {
                PathElement::new(vec![(x + from, y), (x + to, y)], c.stroke_width(2))
            };
            match swatch {
                Swatch::Area(c) => {
                    let style = c.mix(EVENT_SHADE_ALPHA).filled();
                    area.draw(&Rectangle::new([(x, y - 6), (x + 24, y + 6)], style))?
                }
                Swatch::Line(c) => area.draw(&dash(0, 24, c))?,
                Swatch::Dashed(c) => {
                    area.draw(&dash(0, 9, c))?;
                    area.draw(&dash(15, 24, c))?;
                }
            }
            area.draw(&Text::new(label, (x + 32, y), text.clone()))?;
        }
        Ok(())
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        let lines = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        lines.chain(self.reference.map(|r| r.0))
    }

    fn x_range_end(&self) -> f64 {
        let last = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let end = last.fold(self.x_max, f64::max);
        if end > 0.0 && end.is_finite() {
            end
        } else {
            1.0
        }
    }

    fn linear_range(&self) -> Range<f64> {
        let (lo, hi) = self
            .values()
            .fold((0.0, 0.0), |(lo, hi): (f64, f64), v| (lo.min(v), hi.max(v)));
        let hi = if hi > lo {
            hi + 0.05 * (hi - lo)
        } else {
            lo + 1.0
        };
        lo..hi
    }

    /// The y range on a logarithmic axis, if this chart asks for one and its values span it.
    fn log_range(&self) -> Option<Range<f64>> {
        if !self.log_if_spread {
            return None;
        }
        let positive = self.values().filter(|&v| v > 0.0);
        let (lo, hi) = positive.fold((f64::INFINITY, 0.0), |(lo, hi): (f64, f64), v| {
            (lo.min(v), hi.max(v))
        });
        let zero = self.values().any(|v| v <= 0.0);
        (!zero && hi >= LOG_SPREAD * lo).then(|| lo / 1.2..hi * 1.2)
    }

    /// Draws the chart on `root` with `y_spec` as its y axis over `y` (the same range).
    fn draw<Y>(
        &self,
        root: &DrawingArea<SVGBackend, Shift>,
        x: Range<f64>,
        y: Range<f64>,
        y_spec: Y,
    ) -> DrawResult<()>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x.clone(), y_spec)?;
        chart
            .configure_mesh()
            .x_desc("time (h)")
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| number(*v))
            .y_label_formatter(&|v| number(*v))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        let shade = EVENT_SHADE.mix(EVENT_SHADE_ALPHA).filled();
        let areas = self
            .shaded
            .iter()
            .map(|&(a, b)| Rectangle::new([(a, y.start), (b, y.end)], shade));
        chart.draw_series(areas)?;
        for line in &self.lines {
            let style = line.colour.stroke_width(2);
            chart.draw_series(LineSeries::new(line.points.iter().copied(), style))?;
        }
        if let Some((level, _)) = self.reference {
            let points = [(x.start, level), (x.end, level)];
            chart.draw_series(DashedLineSeries::new(
                points,
                8,
                5,
                CAPACITY.stroke_width(2),
            ))?;
        }
        Ok(())
    }
}

/// A tick label: up to three significant digits, no trailing zeros.
fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Outcome;
    use crate::measure::Summary;

    fn outcome(strategy: &str, scale: f64, samples: usize) -> Outcome {
        let t_s: Vec<f64> = (0..samples).map(|i| 3600.0 * i as f64).collect();
        let ramp = |k: f64| -> Vec<f64> { (0..samples).map(|i| k * scale * i as f64).collect() };
        Outcome {
            strategy: strategy.to_string(),
            summary: Summary::default(),
            series: Series {
                latency_p99_ms: (0..samples)
                    .map(|i| 2.0 + 300.0 * scale * (i % 2) as f64)
                    .collect(),
                latency_p50_ms: ramp(1.0),
                cost: ramp(12.5),
                copies: (0..samples as u64).map(|i| i * 3).collect(),
                bytes_moved: ramp(4e11),
                in_flight: vec![1; samples],
                level_peak: vec![
                    ("spine net_mbps".to_string(), ramp(0.4)),
                    ("rack/disk iops".to_string(), ramp(0.1)),
                ],
                t_s,
            },
            saturated: Vec::new(),
        }
    }

    fn results(outcomes: Vec<Outcome>) -> Results {
        Results {
            scenario: "synthetic <&> test".to_string(),
            fleet: "f".to_string(),
            nodes: 4,
            replicas: 12,
            duration_s: 4.0 * 3600.0,
            tick_s: 60.0,
            seed: 7,
            events: vec![
                (3600.0, Some(5400.0), "node n1 down".to_string()),
                (5000.0, Some(7200.0), "spike".to_string()),
                (10800.0, None, "rack r2 degraded".to_string()),
            ],
            outcomes,
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "meridian-plots-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write(r: &Results, dir: &Path) -> Vec<(String, String, String)> {
        let written = write_plots(r, dir).expect("plots written");
        written
            .into_iter()
            .map(|(title, file)| {
                let svg = std::fs::read_to_string(dir.join(&file)).expect("file exists");
                (title, file, svg)
            })
            .collect()
    }

    #[test]
    fn writes_every_plot_deterministically() {
        let r = results(vec![outcome("static", 1.0, 5), outcome("unified", 0.5, 5)]);
        let dir = temp_dir("full");
        let first = write(&r, &dir);
        let files: Vec<&str> = first.iter().map(|(_, f, _)| f.as_str()).collect();
        assert_eq!(
            files,
            [
                "latency.svg",
                "cost.svg",
                "moves.svg",
                "bytes.svg",
                "shared-spine-net_mbps.svg",
                "shared-rack-disk-iops.svg"
            ]
        );
        for (title, file, svg) in &first {
            assert!(svg.starts_with("<svg"), "{file}");
            assert!(svg.contains("<text"), "{file}: no text");
            assert!(svg.contains("static") && svg.contains("unified"), "{file}");
            assert!(svg.contains("time (h)"), "{file}");
            assert!(!title.is_empty() && !title.contains("synthetic"), "{title}");
            assert!(
                svg.contains("synthetic &lt;&amp;&gt; test"),
                "{file}: escaped title"
            );
        }
        assert!(first[4].2.contains("capacity"));
        assert!(!first[0].2.contains("capacity"));
        let again = write(&r, &dir);
        assert_eq!(first, again, "same results, same bytes");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn empty_and_single_runs_still_write() {
        for (name, r) in [
            ("none", results(Vec::new())),
            ("zero", results(vec![outcome("oracle", 1.0, 0)])),
            ("one", results(vec![outcome("custom", 1.0, 1)])),
        ] {
            let dir = temp_dir(name);
            let written = write(&r, &dir);
            assert!(written.len() >= 4, "{name}");
            for (_, file, svg) in &written {
                assert!(svg.starts_with("<svg"), "{name}/{file}");
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }

    #[test]
    fn file_names_are_sanitized_and_unique() {
        assert_eq!(sanitize("spine net_mbps"), "spine-net_mbps");
        assert_eq!(sanitize("  /:?"), "level");
        let mut taken = vec!["shared-a.svg".to_string()];
        assert_eq!(unique(&mut taken, "shared-a"), "shared-a-2");
        assert_eq!(unique(&mut taken, "shared-a"), "shared-a-3");
    }

    #[test]
    fn events_merge_and_clip() {
        let events = results(Vec::new()).events;
        assert_eq!(event_hours(&events, 4.0), [(1.0, 2.0), (3.0, 4.0)]);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1000.0), "1000");
        assert_eq!(number(0.30000000000000004), "0.3");
        assert_eq!(number(12.345), "12.3");
    }

    #[test]
    fn known_strategies_have_their_own_colours() {
        let names = ["static", "reactive", "siloed", "unified", "oracle"];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(colour(a, 0), colour(b, 0));
            }
        }
        assert_ne!(colour("x", 0), colour("x", 1));
    }
}
