//! The peer benchmark's tables: every round's figures, medians over the repetitions, and the
//! issue's targets beside them.

use crate::load::Round;
use crate::peers::Kind;
use crate::support::{median, ms, summarize};
use std::fmt::Write;

/// One round of one target.
pub struct Measure {
    pub rep: usize,
    pub streams: usize,
    pub label: String,
    pub kind: Kind,
    pub chunks: usize,
    pub k: usize,
    pub round: Round,
    /// CPU seconds of the target's process tree during the round.
    pub cpu: f64,
}

impl Measure {
    fn ttfc(&self) -> [f64; 4] {
        summarize(&self.round.samples).map(ms)
    }

    fn cpu_ms_per_request(&self) -> f64 {
        self.cpu * 1e3 / self.round.requests().max(1) as f64
    }

    fn bytes_per_answer(&self) -> f64 {
        self.round.bytes as f64 / self.round.samples.len().max(1) as f64
    }
}

/// Idle and peak RSS (KiB) of one target's process tree.
pub struct Memory {
    pub label: String,
    pub idle: u64,
    pub peak: u64,
    pub streams: usize,
}

impl Memory {
    fn per_stream(&self) -> f64 {
        self.peak.saturating_sub(self.idle) as f64 / self.streams as f64
    }
}

#[derive(Default)]
pub struct Results {
    pub measures: Vec<Measure>,
    pub memory: Vec<Memory>,
    /// Gateways in column order (direct first).
    pub labels: Vec<(String, Kind)>,
}

/// Which rounds a figure is taken from.
#[derive(Clone, Copy)]
struct Sel<'a> {
    label: &'a str,
    streams: usize,
    chunks: usize,
    k: usize,
}

impl Results {
    fn rounds<'a>(&'a self, s: Sel<'a>) -> impl Iterator<Item = &'a Measure> + 'a {
        self.measures.iter().filter(move |m| {
            m.label == s.label && m.streams == s.streams && m.chunks == s.chunks && m.k == s.k
        })
    }

    /// The same rep's direct round (k = 1) for `m`.
    fn direct_of(&self, m: &Measure) -> Option<&Measure> {
        self.measures.iter().find(|d| {
            d.kind == Kind::Direct
                && d.rep == m.rep
                && d.streams == m.streams
                && d.chunks == m.chunks
                && d.k == 1
        })
    }

    /// The median over repetitions of `f` (NaN when there is no such round).
    fn fig(&self, s: Sel, f: impl Fn(&Measure, Option<&Measure>) -> f64) -> f64 {
        median(self.rounds(s).map(|m| f(m, self.direct_of(m))).collect())
    }

    fn added(&self, s: Sel, i: usize) -> f64 {
        self.fig(s, |m, d| d.map_or(f64::NAN, |d| m.ttfc()[i] - d.ttfc()[i]))
    }

    fn throughput_ratio(&self, s: Sel) -> f64 {
        self.fig(s, |m, d| {
            d.map_or(f64::NAN, |d| m.round.throughput() / d.round.throughput())
        })
    }

    fn cpu(&self, s: Sel) -> f64 {
        self.fig(s, |m, _| m.cpu_ms_per_request())
    }

    fn errors(&self, s: Sel) -> usize {
        self.rounds(s).map(|m| m.round.errors).sum()
    }

    fn levels(&self) -> Vec<usize> {
        let mut levels: Vec<usize> = self.measures.iter().map(|m| m.streams).collect();
        levels.sort();
        levels.dedup();
        levels
    }

    /// The main table; with the level of the extra rounds, also the memory table, chunk and
    /// k scaling, and the targets.
    pub fn render(&self, extras: Option<usize>) -> String {
        let mut out = String::new();
        self.main_table(&mut out);
        if let Some(extras) = extras {
            self.memory_table(&mut out);
            self.scaling_table(&mut out, extras);
            self.targets_table(&mut out, extras);
        }
        out
    }

    fn main_table(&self, out: &mut String) {
        out.push_str(
            "\n| streams | gateway | TTFC p50 / p99 ms | added TTFC p50 / p99 ms | added total p50 / p99 ms | answers/s | × direct | errors | CPU ms/req |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for streams in self.levels() {
            for (label, kind) in &self.labels {
                let s = Sel {
                    label,
                    streams,
                    chunks: 20,
                    k: 1,
                };
                if self.rounds(s).next().is_none() {
                    continue;
                }
                let abs = |i: usize| self.fig(s, |m, _| m.ttfc()[i]);
                let rate = self.fig(s, |m, _| m.round.throughput());
                let (added, ratio, cpu) = if *kind == Kind::Direct {
                    ("—".to_owned(), "1".to_owned(), "—".to_owned())
                } else {
                    (
                        format!(
                            "{:+.1} / {:+.1} | {:+.1} / {:+.1}",
                            self.added(s, 0),
                            self.added(s, 1),
                            self.added(s, 2),
                            self.added(s, 3)
                        ),
                        format!("{:.3}", self.throughput_ratio(s)),
                        format!("{:.2}", self.cpu(s)),
                    )
                };
                let added = if *kind == Kind::Direct {
                    format!("{added} | —")
                } else {
                    added
                };
                let _ = writeln!(
                    out,
                    "| {streams} | {label} | {:.1} / {:.1} | {added} | {rate:.0} | {ratio} | {} | {cpu} |",
                    abs(0),
                    abs(1),
                    self.errors(s),
                );
            }
        }
        if let Some(e) = self
            .measures
            .iter()
            .find_map(|m| m.round.first_error.as_ref().map(|e| (&m.label, e)))
        {
            let _ = writeln!(out, "\nfirst error ({}): {}", e.0, e.1);
        }
    }

    fn memory_table(&self, out: &mut String) {
        if self.memory.is_empty() {
            return;
        }
        out.push_str("\n| gateway | idle RSS MiB | peak RSS MiB (streams) | KiB per in-flight stream |\n|---|---|---|---|\n");
        for m in &self.memory {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} ({}) | {:.1} |",
                m.label,
                m.idle as f64 / 1024.0,
                m.peak as f64 / 1024.0,
                m.streams,
                m.per_stream()
            );
        }
    }

    fn scaling_table(&self, out: &mut String, streams: usize) {
        let _ = write!(
            out,
            "\nAt {streams} streams: CPU ms/req for k = 5 and for 200-chunk answers; bytes the client received per answer.\n\n| gateway | CPU k=1, 20 chunks | CPU k=5 | k=5 / k=1 | CPU 200 chunks | 200 / 20 | bytes/answer 20 chunks | 200 chunks | 200 / 20 |\n|---|---|---|---|---|---|---|---|---|\n"
        );
        for (label, kind) in &self.labels {
            let sel = |chunks, k| Sel {
                label,
                streams,
                chunks,
                k,
            };
            let bytes = |chunks| self.fig(sel(chunks, 1), |m, _| m.bytes_per_answer());
            let (c1, c5, c200) = (
                self.cpu(sel(20, 1)),
                self.cpu(sel(20, 5)),
                self.cpu(sel(200, 1)),
            );
            let (b20, b200) = (bytes(20), bytes(200));
            let cpu = |v: f64| {
                if *kind == Kind::Direct {
                    "—".to_owned()
                } else {
                    num(v, 2)
                }
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cpu(c1),
                cpu(c5),
                cpu(c5 / c1),
                cpu(c200),
                cpu(c200 / c1),
                num(b20, 0),
                num(b200, 0),
                num(b200 / b20, 2),
            );
        }
    }

    fn targets_table(&self, out: &mut String, extras: usize) {
        let gateways: Vec<&(String, Kind)> = self
            .labels
            .iter()
            .filter(|(_, k)| *k != Kind::Direct)
            .collect();
        let tz = self.labels.iter().find(|(_, k)| *k == Kind::TensorZero);
        let _ = write!(out, "\nTargets (issue 12), ✓ met, ✗ not met:\n\n| target |");
        for (label, _) in &gateways {
            let _ = write!(out, " {label} |");
        }
        let _ = write!(out, "\n|---|{}\n", "---|".repeat(gateways.len()));
        let tz_cpu = tz.map_or(f64::NAN, |(l, _)| self.cpu(sel(l, 64, 20, 1)));
        for (i, (name, digits)) in TARGETS.iter().enumerate() {
            let _ = write!(out, "| {name} |");
            for (label, kind) in &gateways {
                let (v, ok) = self.target(i, label, extras, tz_cpu);
                let mark = match (*kind, v.is_nan()) {
                    (_, true) => "",
                    (Kind::Ours, _) if ok => " ✓",
                    (Kind::Ours, _) => " ✗",
                    _ => "",
                };
                let _ = write!(out, " {}{mark} |", num(v, *digits));
            }
            out.push('\n');
        }
    }

    /// Target `i` of [`TARGETS`]: the gateway's figure and whether it is met.
    fn target(&self, i: usize, l: &str, extras: usize, tz_cpu: f64) -> (f64, bool) {
        let (at64, at256) = (sel(l, 64, 20, 1), sel(l, 256, 20, 1));
        match i {
            0 => self.added(at64, 0).check(|v| v <= 3.0),
            1 => self.added(at64, 1).check(|v| v <= 10.0),
            2 => self.throughput_ratio(at64).check(|v| v >= 0.95),
            3 => self.cpu(at64).check(|v| v <= tz_cpu),
            4 => {
                let ran = self.rounds(at256).next().is_some();
                let v = if ran {
                    self.errors(at256) as f64
                } else {
                    f64::NAN
                };
                v.check(|v| v == 0.0)
            }
            5 => (self.added(at256, 1) / self.added(at64, 1)).check(|v| v <= 2.0),
            6 => {
                let m = self.memory.iter().find(|m| m.label == l);
                m.map_or(f64::NAN, Memory::per_stream).check(|v| v <= 50.0)
            }
            7 => {
                let k1 = self.cpu(sel(l, extras, 20, 1));
                (self.cpu(sel(l, extras, 20, 5)) / k1).check(|v| v <= 2.0)
            }
            _ => {
                let c20 = self.cpu(sel(l, extras, 20, 1));
                (self.cpu(sel(l, extras, 200, 1)) / c20).check(|v| v <= 3.0)
            }
        }
    }
}

/// The targets, with the digits their figure is shown with.
const TARGETS: [(&str, usize); 9] = [
    ("64 streams: added TTFC p50 ≤ 3 ms", 1),
    ("64 streams: added TTFC p99 ≤ 10 ms", 1),
    ("64 streams: throughput ≥ 0.95× direct", 3),
    ("64 streams: CPU ms/req ≤ TensorZero's", 2),
    ("256 streams: no errors", 0),
    (
        "256 streams: added TTFC p99 ≤ 2× the 64-stream one (ratio)",
        2,
    ),
    ("RSS ≤ 50 KiB per in-flight stream", 1),
    ("CPU of k=5 ≤ 2× k=1 (ratio)", 2),
    ("CPU of a 200-chunk answer ≤ 3× a 20-chunk one (ratio)", 2),
];

fn sel(label: &str, streams: usize, chunks: usize, k: usize) -> Sel<'_> {
    Sel {
        label,
        streams,
        chunks,
        k,
    }
}

trait Check {
    fn check(self, ok: impl Fn(f64) -> bool) -> (f64, bool);
}

impl Check for f64 {
    fn check(self, ok: impl Fn(f64) -> bool) -> (f64, bool) {
        (self, ok(self))
    }
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".to_owned()
    }
}
