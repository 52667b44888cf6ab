//! A seeded, realistic B2B workload for the rule set in `examples/b2b_rules.json`:
//! contacts with skewed activity and events whose types and URLs follow long-tailed
//! distributions. Shared by the examples and benches (included with `#[path]`).
#![allow(dead_code)]

use nurture::{Contact, ContactId, Event, Schema, Timestamp, Value};

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

// ---------------------------------------------------------------------------------------
// A B2B funnel over a longer window, for the quickstart: contacts arrive over time, visit
// in sessions, move from awareness to consideration to decision at their own pace, read
// the weekly nurture email, attend webinars, and some go quiet.

/// How a contact moves through the funnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Persona {
    /// Reads the blog now and then and rarely goes further.
    Browser,
    /// Compares vendors: docs, product pages, case studies, webinars.
    Researcher,
    /// Has a project and a budget: pricing, demo requests.
    Buyer,
}

const PERSONAS: &[(Persona, u32)] =
    &[(Persona::Browser, 55), (Persona::Researcher, 33), (Persona::Buyer, 12)];

/// Per persona: the mean days between sessions, the chance of going quiet after a
/// session, the chance of moving one funnel stage down after a session, the chance of
/// opening a nurture email, and how long sessions are (see [`Rng::skewed`]).
struct Pace {
    gap_days: f64,
    quiet: f64,
    advance: f64,
    opens: f64,
    pages: usize,
}

fn pace(persona: Persona) -> Pace {
    match persona {
        Persona::Browser => Pace { gap_days: 7.0, quiet: 0.15, advance: 0.03, opens: 0.2, pages: 5 },
        Persona::Researcher => Pace { gap_days: 2.5, quiet: 0.05, advance: 0.1, opens: 0.35, pages: 8 },
        Persona::Buyer => Pace { gap_days: 1.2, quiet: 0.03, advance: 0.3, opens: 0.5, pages: 10 },
    }
}

/// Pages by funnel stage: awareness, consideration, decision.
const STAGE_PAGES: [&[&str]; 3] = [
    &[
        "/",
        "/blog/lead-scoring-101",
        "/blog/mql-vs-sql",
        "/blog/decay",
        "/blog/attribution",
        "/about",
        "/careers",
        "/careers/engineering",
        "/integrations",
    ],
    &[
        "/product/scoring",
        "/product/journeys",
        "/docs/getting-started",
        "/customers/acme",
        "/docs/api",
        "/customers/globex",
        "/docs/cel",
        "/security",
        "/integrations",
    ],
    &["/pricing", "/pricing/enterprise", "/customers/acme", "/security", "/docs/api", "/contact"],
];

/// Where a session comes from: (utm_source, referrer).
const LANDINGS: &[((Option<&str>, &str), u32)] = &[
    ((Some("google"), "https://www.google.com/"), 30),
    ((None, "https://www.google.com/"), 15),
    ((Some("linkedin"), "https://www.linkedin.com/"), 20),
    ((Some("newsletter"), "https://mail.example.net/"), 10),
    ((Some("twitter"), "https://t.co/"), 5),
    ((None, "https://duckduckgo.com/"), 5),
    ((None, "https://news.ycombinator.com/"), 5),
];

/// Webinars everyone is invited to: (day of the window, hour UTC).
const WEBINARS: &[(i64, i64)] = &[(20, 16), (48, 16), (76, 16)];

/// One planned event, turned into an [`Event`] once the stream is in time order.
#[derive(Clone, Debug)]
enum Act {
    /// `from`: the referring site, or the previous page of the session (a path).
    Visit {
        url: &'static str,
        from: &'static str,
        utm: Option<&'static str>,
        seconds: i64,
    },
    Form(&'static str),
    Asset(&'static str, &'static str),
    Opened(i64),
    Clicked(i64, &'static str),
    Unsubscribed(i64),
    Webinar(i64),
    JobChanged(&'static str, i64),
}

struct Planned {
    at: i64,
    contact: u32,
    act: Act,
}

/// `days` of funnel activity for contacts `c0..c{contacts}`, in time order, starting at
/// [`start`]. Contacts arrive over the first four fifths of the window; each visits in
/// sessions of a few pages, mostly at its current funnel stage, and moves on (or goes
/// quiet, for good or for a month) at its persona's pace; subscribers get a weekly
/// nurture email; three webinars are held. About 0.2% of events are delivered twice with
/// the same id, as at-least-once webhooks do. Roughly 32 events per contact.
pub fn funnel_events(schema: &Schema, contacts: usize, days: i64, rng: &mut Rng) -> Vec<Event> {
    let start = start().unix_seconds();
    let end = start + days * 86_400;
    let mut plan = Vec::new();
    for c in 0..contacts {
        plan_contact(c as u32, start, end, rng, &mut plan);
    }
    // Stable: a contact's events at the same second keep their planned order.
    plan.sort_by_key(|p| (p.at, p.contact));
    // One shared id per contact rather than one string per event.
    let ids: Vec<ContactId> = (0..contacts).map(|c| ContactId::from(format!("c{c}"))).collect();
    let mut events = Vec::with_capacity(plan.len() + plan.len() / 400);
    for (i, p) in plan.iter().enumerate() {
        let at = Timestamp::from_unix(p.at, 0).expect("in range");
        let event = build_act(schema, format!("e{i}"), &ids[p.contact as usize], at, &p.act);
        let redelivered = rng.chance(0.002);
        events.push(event);
        if redelivered {
            events.push(events[events.len() - 1].clone());
        }
    }
    events
}

/// Plans one contact's events within `[start, end)`.
fn plan_contact(contact: u32, start: i64, end: i64, rng: &mut Rng, plan: &mut Vec<Planned>) {
    const DAY: f64 = 86_400.0;
    let persona = *rng.weighted(PERSONAS);
    let pace = pace(persona);
    let arrival = start + (rng.unit() * 0.8 * (end - start) as f64) as i64;
    let mut push = |at: i64, act: Act| {
        if at < end {
            plan.push(Planned { at, contact, act });
        }
    };
    // Sessions, moving down the funnel.
    let (mut t, mut stage, mut demo_requested) = (arrival, 0usize, false);
    let mut reached_consideration = None;
    while t < end {
        let mut at = t;
        // The first page comes from outside (a search engine, a social post, the
        // newsletter); the others from the previous page.
        let (mut utm, referrer) = *rng.weighted(LANDINGS);
        let mut from = referrer;
        for _ in 0..1 + rng.skewed(pace.pages) {
            // Mostly the current stage's pages, sometimes an earlier stage's.
            let s = if rng.chance(0.3) { rng.below(stage + 1) } else { stage };
            let url = STAGE_PAGES[s][rng.skewed(STAGE_PAGES[s].len())];
            let seconds = 10 + (rng.unit() * 230.0) as i64;
            push(at, Act::Visit { url, from, utm: utm.take(), seconds });
            from = url;
            at += seconds + rng.below(20) as i64;
        }
        match stage {
            0 if rng.chance(0.04) => push(at, Act::Form("newsletter")),
            1 if rng.chance(0.15) => {
                let (asset, kind) = [
                    ("state-of-b2b-2026", "whitepaper"),
                    ("acme-story", "case-study"),
                    ("platform-datasheet", "datasheet"),
                    ("scoring-guide", "ebook"),
                    ("roi-calculator", "tool"),
                ][rng.skewed(5)];
                push(at, Act::Asset(asset, kind));
            }
            2 => {
                let demo = match persona {
                    Persona::Buyer => 0.15,
                    Persona::Researcher => 0.03,
                    Persona::Browser => 0.01,
                };
                if !demo_requested && rng.chance(demo) {
                    demo_requested = true;
                    push(at, Act::Form("demo-request"));
                } else if rng.chance(0.03) {
                    push(at, Act::Form("contact-us"));
                }
            }
            _ => {}
        }
        if stage < 2 && rng.chance(pace.advance) {
            stage += 1;
            if stage == 1 {
                reached_consideration = Some(at);
            }
        }
        let gap = -pace.gap_days * (1.0 - rng.unit()).ln();
        t = at + (gap * DAY) as i64 + 60;
        if rng.chance(pace.quiet) {
            // A third come back after a month or so; the rest are gone.
            if rng.chance(1.0 / 3.0) {
                t += ((25.0 + rng.unit() * 20.0) * DAY) as i64;
            } else {
                break;
            }
        }
    }
    // The weekly nurture email (Tuesdays 14:00 UTC), for subscribers, until they leave.
    if rng.chance(0.7) {
        let first = (arrival - start) / (7 * 86_400) + 1;
        for week in first.. {
            let sent = start + week * 7 * 86_400 + 86_400 + 14 * 3_600;
            if sent >= end {
                break;
            }
            if rng.chance(0.006) {
                push(sent + 3_600, Act::Unsubscribed(week));
                break;
            }
            if rng.chance(pace.opens) {
                let opened = sent + (-6.0 * 3_600.0 * (1.0 - rng.unit()).ln()) as i64;
                push(opened, Act::Opened(week));
                if rng.chance(0.25) {
                    let link = STAGE_PAGES[1][rng.below(4)];
                    push(opened + 30, Act::Clicked(week, link));
                }
            }
        }
    }
    // Webinars, for those past awareness by then.
    for &(day, hour) in WEBINARS {
        let at = start + day * 86_400 + hour * 3_600;
        let attends = match persona {
            Persona::Buyer => 0.35,
            Persona::Researcher => 0.25,
            Persona::Browser => 0.02,
        };
        if reached_consideration.is_some_and(|r| r < at) && rng.chance(attends) {
            push(at + 3_600, Act::Webinar(5 + rng.below(56) as i64));
        }
    }
    // A few change jobs.
    if rng.chance(0.02) {
        let at = arrival + (rng.unit() * (end - arrival) as f64) as i64;
        let title = *rng.weighted(TITLES);
        push(at, Act::JobChanged(title, (10f64.powf(rng.unit() * 4.0)) as i64));
    }
}

/// The [`Event`] for a planned act.
fn build_act(schema: &Schema, id: String, contact: &ContactId, at: Timestamp, act: &Act) -> Event {
    let b = |kind: &str| schema.event(id.as_str(), contact.clone(), kind, at).expect("declared type");
    match act {
        Act::Visit { url, from, utm, seconds } => {
            let referrer =
                if from.starts_with('/') { format!("https://example.com{from}") } else { from.to_string() };
            let mut e = b("page_visit")
                .set("url", *url)
                .expect("declared")
                .set("referrer", referrer)
                .expect("declared");
            if let Some(utm) = utm {
                e = e.set("utm_source", *utm).expect("declared");
            }
            e.set("seconds_on_page", *seconds).expect("declared").build()
        }
        Act::Form(form) => b("form_submit")
            .set("form", *form)
            .expect("declared")
            .set("page", if *form == "newsletter" { "/blog" } else { "/contact" })
            .expect("declared")
            .build(),
        Act::Asset(asset, kind) => b("asset_download")
            .set("asset", *asset)
            .expect("declared")
            .set("asset_type", *kind)
            .expect("declared")
            .build(),
        Act::Opened(week) => {
            b("email_opened").set("campaign", format!("nurture-{week}")).expect("declared").build()
        }
        Act::Clicked(week, link) => b("email_clicked")
            .set("campaign", format!("nurture-{week}"))
            .expect("declared")
            .set("link", format!("https://example.com{link}"))
            .expect("declared")
            .build(),
        Act::Unsubscribed(week) => {
            b("email_unsubscribed").set("campaign", format!("nurture-{week}")).expect("declared").build()
        }
        Act::Webinar(minutes) => b("webinar_attended")
            .set("webinar", "scoring-masterclass")
            .expect("declared")
            .set("minutes", *minutes)
            .expect("declared")
            .build(),
        Act::JobChanged(title, size) => b("job_changed")
            .set("new_title", *title)
            .expect("declared")
            .set("new_company_size", *size)
            .expect("declared")
            .build(),
    }
}
