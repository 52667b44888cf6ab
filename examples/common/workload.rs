//! A seeded, realistic B2B workload for the rule set in `examples/b2b_rules.json`:
//! contacts with skewed activity and events whose types and URLs follow long-tailed
//! distributions. Shared by the examples and benches (included with `#[path]`).
#![allow(dead_code)]

use nurture::{Contact, Event, Schema, Timestamp, Value};

/// The rule set the workload targets.
pub const RULES_JSON: &str = include_str!("../b2b_rules.json");

/// SplitMix64: tiny, fast, and the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Picks from `(item, weight)` pairs.
    pub fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut pick = (self.unit() * f64::from(total)) as u32;
        for (item, w) in items {
            if pick < *w {
                return item;
            }
            pick -= w;
        }
        &items[items.len() - 1].0
    }

    /// A Zipf-like index in `0..n`: small indices are much more likely.
    pub fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((n as f64).powf(u) - 1.0).floor().min(n as f64 - 1.0) as usize
    }
}

const TITLES: &[(&str, u32)] = &[
    ("Software Engineer", 20),
    ("Marketing Manager", 12),
    ("VP of Marketing", 4),
    ("Director of Engineering", 4),
    ("Head of Growth", 3),
    ("CTO", 2),
    ("CEO", 2),
    ("Sales Development Rep", 8),
    ("Product Manager", 10),
    ("Data Analyst", 8),
    ("Student", 5),
    ("Chief Revenue Officer", 1),
    ("Operations Lead", 6),
    ("Consultant", 5),
];
const COUNTRIES: &[(&str, u32)] = &[
    ("US", 40),
    ("GB", 10),
    ("DE", 8),
    ("FR", 6),
    ("CA", 6),
    ("IN", 10),
    ("BR", 5),
    ("NL", 3),
    ("SE", 2),
    ("AU", 4),
    ("JP", 3),
    ("ES", 3),
];
const INDUSTRIES: &[(&str, u32)] = &[
    ("software", 30),
    ("finance", 12),
    ("healthcare", 10),
    ("retail", 10),
    ("manufacturing", 8),
    ("education", 8),
    ("media", 6),
    ("government", 4),
];
const URLS: &[&str] = &[
    "/",
    "/blog/lead-scoring-101",
    "/pricing",
    "/docs/getting-started",
    "/product/journeys",
    "/blog/mql-vs-sql",
    "/customers/acme",
    "/docs/api",
    "/product/scoring",
    "/careers",
    "/integrations",
    "/blog/decay",
    "/about",
    "/customers/globex",
    "/pricing/enterprise",
    "/docs/cel",
    "/careers/engineering",
    "/security",
    "/blog/attribution",
    "/contact",
];
const EVENT_TYPES: &[(&str, u32)] = &[
    ("page_visit", 560),
    ("email_opened", 160),
    ("email_clicked", 80),
    ("asset_download", 60),
    ("form_submit", 40),
    ("webinar_attended", 15),
    ("email_unsubscribed", 5),
    ("job_changed", 3),
];
const FORMS: &[(&str, u32)] =
    &[("newsletter", 50), ("demo-request", 20), ("contact-us", 15), ("webinar-signup", 15)];
const ASSETS: &[(&str, &str, u32)] = &[
    ("state-of-b2b-2026", "whitepaper", 30),
    ("roi-calculator", "tool", 10),
    ("acme-story", "case-study", 20),
    ("platform-datasheet", "datasheet", 15),
    ("scoring-guide", "ebook", 25),
];
const SOURCES: &[(&str, u32)] =
    &[("google", 40), ("linkedin", 20), ("newsletter", 15), ("twitter", 5), ("direct", 20)];

/// The start of the simulated window.
pub fn start() -> Timestamp {
    Timestamp::from_unix(1_767_225_600, 0).expect("2026-01-01 is in range") // 2026-01-01T00:00:00Z
}

/// `n` contacts with realistic attributes; some fields are missing, as in real CRMs.
pub fn contacts(schema: &Schema, n: usize, rng: &mut Rng) -> Vec<Contact> {
    let start = start().unix_seconds();
    (0..n)
        .map(|i| {
            let mut b = schema.contact(format!("c{i}"));
            if rng.chance(0.85) {
                b = b.set("job_title", *rng.weighted(TITLES)).expect("declared");
            }
            if rng.chance(0.95) {
                let size = (10f64.powf(rng.unit() * 4.7)).round() as i64;
                b = b.set("company_size", size).expect("declared");
                b = b
                    .set("annual_revenue_usd", size as f64 * (80_000.0 + rng.unit() * 150_000.0))
                    .expect("declared");
            }
            b = b.set("country", *rng.weighted(COUNTRIES)).expect("declared");
            b = b.set("industry", *rng.weighted(INDUSTRIES)).expect("declared");
            b = b.set("lifecycle_stage", "lead").expect("declared");
            b = b.set("email_opt_in", rng.chance(0.7)).expect("declared");
            let created =
                Timestamp::from_unix(start - (rng.unit() * 365.0 * 86_400.0) as i64, 0).expect("in range");
            b = b.set("created_at", created).expect("declared");
            b = b.set("tags", Value::list([])).expect("declared");
            b.build()
        })
        .collect()
}

/// `n` events over 30 days, for contacts picked with a skew (a few are very active).
pub fn events(schema: &Schema, contacts: usize, n: usize, rng: &mut Rng) -> Vec<Event> {
    let start = start().unix_seconds();
    let step = (30 * 86_400) as f64 / n.max(1) as f64;
    (0..n)
        .map(|i| {
            // Scatter the skewed ranks over contact ids so activity is not ordered by id.
            let rank = rng.skewed(contacts);
            let contact = (rank.wrapping_mul(2_654_435_761) % contacts.max(1)) as u64;
            let at = Timestamp::from_unix(start + (i as f64 * step) as i64, 0).expect("in range");
            let kind = *rng.weighted(EVENT_TYPES);
            let b = schema.event(format!("e{i}"), format!("c{contact}"), kind, at).expect("declared type");
            let b = match kind {
                "page_visit" => {
                    let b = b.set("url", URLS[rng.skewed(URLS.len())]).expect("declared");
                    let b = b.set("referrer", "https://www.google.com/").expect("declared");
                    let b = if rng.chance(0.6) {
                        b.set("utm_source", *rng.weighted(SOURCES)).expect("declared")
                    } else {
                        b
                    };
                    b.set("seconds_on_page", (rng.unit() * 240.0) as i64).expect("declared")
                }
                "form_submit" => b
                    .set("form", *rng.weighted(FORMS))
                    .expect("declared")
                    .set("page", "/contact")
                    .expect("declared"),
                "asset_download" => {
                    let total: u32 = ASSETS.iter().map(|a| a.2).sum();
                    let mut pick = rng.below(total as usize) as u32;
                    let mut chosen = ASSETS[0];
                    for a in ASSETS {
                        if pick < a.2 {
                            chosen = *a;
                            break;
                        }
                        pick -= a.2;
                    }
                    b.set("asset", chosen.0).expect("declared").set("asset_type", chosen.1).expect("declared")
                }
                "email_clicked" => {
                    let campaign =
                        format!("{}-{}", if rng.chance(0.5) { "nurture" } else { "promo" }, rng.below(12));
                    let link = URLS[rng.skewed(URLS.len())];
                    b.set("campaign", campaign)
                        .expect("declared")
                        .set("link", format!("https://example.com{link}"))
                        .expect("declared")
                }
                "email_opened" | "email_unsubscribed" => {
                    b.set("campaign", format!("nurture-{}", rng.below(12))).expect("declared")
                }
                "webinar_attended" => b
                    .set("webinar", "scoring-masterclass")
                    .expect("declared")
                    .set("minutes", rng.below(60) as i64)
                    .expect("declared"),
                _ => b
                    .set("new_title", *rng.weighted(TITLES))
                    .expect("declared")
                    .set("new_company_size", (10f64.powf(rng.unit() * 4.0)) as i64)
                    .expect("declared"),
            };
            b.build()
        })
        .collect()
}
