//! The one way durations are written in configuration: `500ms`, `5s`, `2m`, `12h`, `7d`, `2w`,
//! or a plain number of seconds (fractions allowed: `1.5h`).

use std::time::Duration;

/// Parses a non-negative duration (see the module docs for the forms).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 5s, 2m, 12h, 7d)"))?;
    let unit_secs = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"
            ));
        }
    };
    let secs = value * unit_secs;
    if !(secs.is_finite() && (0.0..1e12).contains(&secs)) {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration(" 2w "), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["fast", "5y", "-1d", "", "1e300d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
