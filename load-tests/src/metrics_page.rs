//! Counters read from the service's Prometheus page (`/metrics`).

use std::time::Duration;

/// The page, or None when the service does not answer.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Option<String> {
    client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// The sum of counter `name` over its series whose labels contain
/// `label` (e.g. `outcome="acked"`; every series when None).
pub fn counter(page: &str, name: &str, label: Option<&str>) -> u64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| label.is_none_or(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_matching_series() {
        let page = "# TYPE incidentd_events_published_total counter\n\
            incidentd_events_published_total{sink=\"kafka:e\",outcome=\"acked\"} 10\n\
            incidentd_events_published_total{sink=\"pulsar:e\",outcome=\"acked\"} 5\n\
            incidentd_events_published_total{sink=\"pulsar:e\",outcome=\"retried\"} 2\n\
            incidentd_events_published_total_other 100\n\
            incidentd_kafka_alerts_applied_total 1234\n";
        let events = "incidentd_events_published_total";
        assert_eq!(counter(page, events, Some("outcome=\"acked\"")), 15);
        assert_eq!(counter(page, events, None), 17);
        assert_eq!(
            counter(page, "incidentd_kafka_alerts_applied_total", None),
            1234
        );
        assert_eq!(counter("nothing here", events, None), 0);
    }
}
