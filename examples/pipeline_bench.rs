//! End-to-end scoring throughput on a seeded, skewed workload.
//!
//! ```text
//! cargo run --release --example pipeline_bench -- --json
//! ```
//!
//! A 200-rule score model (engagement rules with selective conditions on URLs, forms,
//! campaigns and assets over 14 event types, a few fit rules, two decaying capped
//! groups, two thresholds) scores 5,000,000 time-ordered events for 1,000,000 contacts
//! picked with a Zipf-like skew. Reported, single-threaded:
//!
//! - the unbatched path: one `Scorer::handle_event` per event (one reused scratch),
//!   the contact's state looked up per event in a `Vec` indexed by the contact's
//!   interned number;
//! - the batch API: `Scorer::handle_batch` over chunks of 256 events;
//! - both again without the explanation history (`Scorer::with_ledger(0)`);
//! - the touch floor: the same lookup and one counter increment per event;
//! - the bytes of every contact's state, hot part and explanation history, before and
//!   after the stream;
//! - bulk rescoring (`Scorer::rescore`) of 100,000 contacts' full histories;
//! - and, on a smaller stream, throughput at 100, 1,000 and 10,000 rules.
//!
//! With `--json` the last line is one JSON object with the headline figures. Smaller
//! runs for development: `--contacts N --events N --scale-contacts N --scale-events N
//! --scale-seconds S --rescore-contacts N --no-scaling`. `--time-cap S` (default 60)
//! bounds the unbatched pass over the main stream: when the scorer is too slow to finish
//! 5,000,000 events in that time, both paths are measured on the same prefix (and the
//! output says so), to keep the whole run within about five minutes on two cores.

#[path = "common/workload.rs"]
mod workload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use nurture::schema::EventBuilder;

use nurture::engine::{ContactState, EffectKind, Engine, EngineScratch};
use nurture::scoring::{
    BatchEvent, Bounds, ContactScores, Decay, Group, PointRule, Rearm, Repeat, ScoreModel, ScoreScratch,
    Scorer, Threshold,
};
use nurture::{Contact, Duration, Event, EventId, Program, Schema, Timestamp, Type, Value};
use std::sync::Arc;
use workload::Rng;

// ---------------------------------------------------------------------------------------
// Heap accounting: a pass-through allocator that keeps the live byte count. The counters
// are updated with a plain load and store (no locked read-modify-write) so that they cost
// next to nothing; that is exact because this program allocates from one thread only.

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn account(delta: isize, allocs: usize) {
    LIVE.store(LIVE.load(Relaxed).wrapping_add(delta), Relaxed);
    ALLOCS.store(ALLOCS.load(Relaxed).wrapping_add(allocs), Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize, 1);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Relaxed)
}

fn allocs() -> usize {
    ALLOCS.load(Relaxed)
}

// ---------------------------------------------------------------------------------------
// The workload: event types, value pools, events.

/// An event type: name, relative frequency, properties.
type EventTypeSpec = (&'static str, u32, Vec<(&'static str, Type)>);

fn event_types() -> Vec<EventTypeSpec> {
    use Type::{Int, String as Str};
    vec![
        (
            "page_visit",
            500,
            vec![("url", Str), ("referrer", Str), ("utm_source", Str), ("seconds_on_page", Int)],
        ),
        ("email_opened", 180, vec![("campaign", Str)]),
        ("email_clicked", 70, vec![("campaign", Str), ("link", Str)]),
        ("product_login", 60, vec![("feature", Str)]),
        ("asset_download", 40, vec![("asset", Str), ("asset_type", Str)]),
        ("ad_clicked", 40, vec![("campaign", Str), ("network", Str)]),
        ("form_submit", 30, vec![("form", Str), ("page", Str)]),
        ("video_watched", 30, vec![("video", Str), ("percent", Int)]),
        ("webinar_registered", 12, vec![("webinar", Str)]),
        ("chat_started", 10, vec![("topic", Str)]),
        ("webinar_attended", 8, vec![("webinar", Str), ("minutes", Int)]),
        ("email_unsubscribed", 5, vec![("campaign", Str)]),
        ("trial_started", 4, vec![("plan", Str)]),
        ("job_changed", 3, vec![("new_title", Str), ("new_company_size", Int)]),
    ]
}

/// The schema, declared in the order a rule-set document gives (names sorted), so that
/// the same prepared events and contacts fit the full engine's compiled program.
fn schema() -> Schema {
    let mut contact = vec![
        ("job_title", Type::String),
        ("seniority", Type::String),
        ("company_size", Type::Int),
        ("annual_revenue_usd", Type::Double),
        ("country", Type::String),
        ("industry", Type::String),
        ("lifecycle_stage", Type::String),
        ("email_opt_in", Type::Bool),
        ("created_at", Type::Timestamp),
        ("tags", Type::list(Type::String)),
    ];
    contact.sort_by_key(|(name, _)| *name);
    let mut b = Schema::builder();
    for (name, ty) in contact {
        b = b.contact_field(name, ty);
    }
    let mut types = event_types();
    types.sort_by_key(|(name, _, _)| *name);
    for (name, _, mut props) in types {
        props.sort_by_key(|(p, _)| *p);
        b = b.event_type(name, props);
    }
    b.build().expect("valid schema")
}

/// Interned property values, most popular first; events clone the `Value`s (an `Arc`
/// increment), rules quote the strings.
struct Pool {
    strs: Vec<String>,
    vals: Vec<Value>,
}

impl Pool {
    fn new(strs: Vec<String>) -> Pool {
        let vals = strs.iter().map(Value::string).collect();
        Pool { strs, vals }
    }

    fn fixed(names: &[&str]) -> Pool {
        Pool::new(names.iter().map(|s| s.to_string()).collect())
    }

    fn named(first: &[&str], prefix: &str, n: usize) -> Pool {
        let mut strs: Vec<String> = first.iter().take(n).map(|s| s.to_string()).collect();
        for i in strs.len()..n {
            strs.push(format!("{prefix}-{i}"));
        }
        Pool::new(strs)
    }

    /// A popularity-skewed index (what events use).
    fn pick(&self, rng: &mut Rng) -> usize {
        rng.skewed(self.vals.len())
    }

    /// What a rule targets: any value, uniformly (so each rule matches a small share of
    /// its type's events); in `popular` mode, a popular value 30% of the time, as real
    /// models weigh the pages that matter.
    fn target(&self, rng: &mut Rng, popular: bool) -> &str {
        let i =
            if popular && rng.chance(0.3) { rng.skewed(self.strs.len()) } else { rng.below(self.strs.len()) };
        &self.strs[i]
    }
}

const SECTIONS: &[&str] = &["/docs/", "/blog/", "/product/", "/customers/", "/careers/", "/integrations/"];

struct Pools {
    url: Pool,
    link: Pool,
    campaign: Pool,
    form: Pool,
    asset: Pool,
    asset_type: Pool,
    webinar: Pool,
    video: Pool,
    plan: Pool,
    feature: Pool,
    topic: Pool,
    network: Pool,
    source: Pool,
    title: Pool,
    referrer: Value,
}

impl Pools {
    /// `wide` multiplies the sizes of the pools that rules select on (for the rule-count
    /// scaling runs, where thousands of rules must stay selective).
    fn new(wide: bool) -> Pools {
        let n = |narrow: usize, w: usize| if wide { w } else { narrow };
        let urls: Vec<String> = (0..n(400, 5_000))
            .map(|i| match i {
                0 => "/".to_string(),
                1 => "/pricing".to_string(),
                2 => "/pricing/enterprise".to_string(),
                3 => "/demo".to_string(),
                _ => format!("{}page-{i}", SECTIONS[i % SECTIONS.len()]),
            })
            .collect();
        let links = urls.iter().map(|u| format!("https://example.com{u}")).collect();
        Pools {
            url: Pool::new(urls),
            link: Pool::new(links),
            campaign: Pool::new(
                (0..n(60, 2_000))
                    .map(|i| format!("{}-{i}", ["nurture", "promo", "launch", "event"][i % 4]))
                    .collect(),
            ),
            form: Pool::named(
                &["newsletter", "demo-request", "contact-us", "webinar-signup", "trial-signup"],
                "form",
                n(12, 500),
            ),
            asset: Pool::named(
                &["state-of-b2b-2026", "scoring-guide", "acme-story", "platform-datasheet", "roi-calculator"],
                "asset",
                n(40, 1_000),
            ),
            asset_type: Pool::fixed(&["whitepaper", "ebook", "case-study", "datasheet", "tool"]),
            webinar: Pool::named(&["scoring-masterclass"], "webinar", n(10, 300)),
            video: Pool::named(&[], "video", n(50, 1_000)),
            plan: Pool::named(&["team", "business", "enterprise"], "plan", n(3, 50)),
            feature: Pool::named(&["journeys", "scoring", "segments", "reports"], "feature", n(30, 500)),
            topic: Pool::named(&["pricing", "support", "security", "integrations"], "topic", n(8, 200)),
            network: Pool::fixed(&["google", "linkedin", "meta", "x"]),
            source: Pool::fixed(&["google", "linkedin", "newsletter", "twitter", "direct"]),
            title: Pool::fixed(&[
                "Software Engineer",
                "Marketing Manager",
                "VP of Marketing",
                "Director of Engineering",
                "Head of Growth",
                "CTO",
                "CEO",
                "Product Manager",
            ]),
            referrer: Value::string("https://www.google.com/"),
        }
    }
}

/// A prepared event stream: events in time order and, per event, the contact's interned
/// number (what a host resolves once at ingestion).
struct Stream {
    events: Vec<Event>,
    contact_of: Vec<u32>,
}

fn set<'s>(b: EventBuilder<'s>, name: &str, v: Value) -> EventBuilder<'s> {
    b.set(name, v).expect("declared property")
}

fn generate_events(schema: &Schema, pools: &Pools, contacts: &[Contact], n: usize, rng: &mut Rng) -> Stream {
    let types = event_types();
    let weights: Vec<(&str, u32)> = types.iter().map(|(name, w, _)| (*name, *w)).collect();
    let start = workload::start().unix_seconds();
    let step = (30 * 86_400) as f64 / n.max(1) as f64;
    let nc = contacts.len();
    let mut events = Vec::with_capacity(n);
    let mut contact_of = Vec::with_capacity(n);
    for i in 0..n {
        // Zipf-like activity; ranks scattered over contact numbers (a bijection: the
        // multiplier is odd and not a multiple of 5, and counts here are 2^a 5^b).
        let rank = rng.skewed(nc) as u64;
        let c = (rank.wrapping_mul(2_654_435_761) % nc as u64) as usize;
        let at = Timestamp::from_unix(start + (i as f64 * step) as i64, 0).expect("in range");
        let kind = *rng.weighted(&weights);
        let id = EventId::from(format!("e{i}"));
        let b = schema.event(id, contacts[c].id().clone(), kind, at).expect("declared type");

        let b = match kind {
            "page_visit" => {
                let mut b = set(b, "url", pools.url.vals[pools.url.pick(rng)].clone());
                if rng.chance(0.5) {
                    b = set(b, "referrer", pools.referrer.clone());
                }
                if rng.chance(0.6) {
                    b = set(b, "utm_source", pools.source.vals[pools.source.pick(rng)].clone());
                }
                set(b, "seconds_on_page", Value::Int(rng.below(240) as i64))
            }
            "email_opened" | "email_unsubscribed" => {
                set(b, "campaign", pools.campaign.vals[pools.campaign.pick(rng)].clone())
            }
            "email_clicked" => {
                let b = set(b, "campaign", pools.campaign.vals[pools.campaign.pick(rng)].clone());
                set(b, "link", pools.link.vals[pools.link.pick(rng)].clone())
            }
            "product_login" => set(b, "feature", pools.feature.vals[pools.feature.pick(rng)].clone()),
            "asset_download" => {
                let a = pools.asset.pick(rng);
                let b = set(b, "asset", pools.asset.vals[a].clone());
                set(b, "asset_type", pools.asset_type.vals[a % pools.asset_type.vals.len()].clone())
            }
            "ad_clicked" => {
                let b = set(b, "campaign", pools.campaign.vals[pools.campaign.pick(rng)].clone());
                set(b, "network", pools.network.vals[pools.network.pick(rng)].clone())
            }
            "form_submit" => {
                let b = set(b, "form", pools.form.vals[pools.form.pick(rng)].clone());
                set(b, "page", pools.url.vals[pools.url.pick(rng)].clone())
            }
            "video_watched" => {
                let b = set(b, "video", pools.video.vals[pools.video.pick(rng)].clone());
                set(b, "percent", Value::Int(rng.below(101) as i64))
            }
            "webinar_registered" => set(b, "webinar", pools.webinar.vals[pools.webinar.pick(rng)].clone()),
            "webinar_attended" => {
                let b = set(b, "webinar", pools.webinar.vals[pools.webinar.pick(rng)].clone());
                set(b, "minutes", Value::Int(rng.below(90) as i64))
            }
            "chat_started" => set(b, "topic", pools.topic.vals[pools.topic.pick(rng)].clone()),
            "trial_started" => set(b, "plan", pools.plan.vals[pools.plan.pick(rng)].clone()),
            _ => {
                let b = set(b, "new_title", pools.title.vals[pools.title.pick(rng)].clone());
                set(b, "new_company_size", Value::Int((10f64.powf(rng.unit() * 4.0)) as i64))
            }
        };
        events.push(b.build());
        contact_of.push(c as u32);
    }
    Stream { events, contact_of }
}

// ---------------------------------------------------------------------------------------
// Score models.

/// A condition for an engagement rule on `kind`. `broad` allows the section-wide and
/// property-wide conditions a real model has a few of; without it every condition names
/// one value (or three) out of a large pool.
fn condition_source(kind: &str, pools: &Pools, rng: &mut Rng, broad: bool) -> Option<String> {
    let v = rng.below(100);
    Some(match kind {
        "page_visit" => {
            let u = pools.url.target(rng, broad);
            match v {
                0..=49 => format!("event.url == '{u}'"),
                50..=64 if broad => format!("event.url.startsWith('{}')", SECTIONS[rng.below(SECTIONS.len())]),
                50..=64 => format!("event.url.startsWith('{u}')"),
                65..=79 => format!("event.url == '{u}' && event.seconds_on_page >= 30"),
                80..=89 => {
                    format!("event.url in ['{u}', '{}', '{}']", pools.url.target(rng, broad), pools.url.target(rng, broad))
                }
                _ if broad => {
                    "event.url.startsWith('/blog/') && has(event.utm_source) && event.utm_source == 'linkedin'"
                        .to_string()
                }
                _ => format!(
                    "event.url == '{u}' && has(event.utm_source) && event.utm_source == '{}'",
                    pools.source.target(rng, broad)
                ),
            }
        }
        "email_clicked" => {
            let c = pools.campaign.target(rng, broad);
            match v {
                0..=59 => format!("event.campaign == '{c}'"),
                60..=79 => {
                    format!(
                        "event.campaign == '{c}' && event.link.endsWith('{}')",
                        pools.url.target(rng, broad)
                    )
                }
                _ if broad => "event.link.contains('/pricing')".to_string(),
                _ => format!("event.link == '{}'", pools.link.target(rng, broad)),
            }
        }
        "email_opened" => format!("event.campaign == '{}'", pools.campaign.target(rng, broad)),
        "email_unsubscribed" if broad => return None,
        "email_unsubscribed" => format!("event.campaign == '{}'", pools.campaign.target(rng, broad)),
        "product_login" => format!("event.feature == '{}'", pools.feature.target(rng, broad)),
        "asset_download" => match v {
            0..=79 => format!("event.asset == '{}'", pools.asset.target(rng, broad)),
            _ if broad => format!("event.asset_type == '{}'", pools.asset_type.target(rng, broad)),
            _ => format!(
                "event.asset == '{}' && event.asset_type == 'whitepaper'",
                pools.asset.target(rng, broad)
            ),
        },
        "ad_clicked" => format!(
            "event.network == '{}' && event.campaign == '{}'",
            pools.network.target(rng, broad),
            pools.campaign.target(rng, broad)
        ),
        "form_submit" => match v {
            0..=69 => format!("event.form == '{}'", pools.form.target(rng, broad)),
            _ => format!(
                "event.form == '{}' && event.page.startsWith('/pricing')",
                pools.form.target(rng, broad)
            ),
        },
        "video_watched" => {
            format!("event.video == '{}' && event.percent >= 75", pools.video.target(rng, broad))
        }
        "webinar_registered" => format!("event.webinar == '{}'", pools.webinar.target(rng, broad)),
        "webinar_attended" => {
            format!("event.webinar == '{}' && event.minutes >= 30", pools.webinar.target(rng, broad))
        }
        "chat_started" => format!("event.topic == '{}'", pools.topic.target(rng, broad)),
        "trial_started" if broad => return None,
        "trial_started" => format!("event.plan == '{}'", pools.plan.target(rng, broad)),
        _ => match v {
            0..=49 => "event.new_company_size >= 1000".to_string(),
            _ => format!("event.new_title == '{}'", pools.title.target(rng, broad)),
        },
    })
}

/// Group 0 (`behaviour`) or group 1 (`intent`, decays faster).
fn group_of(kind: &str) -> usize {
    match kind {
        "form_submit" | "trial_started" | "webinar_attended" | "webinar_registered" | "chat_started" => 1,
        _ => 0,
    }
}

fn engagement_rule(
    schema: &Schema,
    pools: &Pools,
    kind: &str,
    index: usize,
    rng: &mut Rng,
    broad: bool,
) -> (PointRule, serde_json::Value) {
    let source = condition_source(kind, pools, rng, broad);
    let condition = source.as_ref().map(|s| {
        nurture::condition::ConditionNames::default()
            .compile(schema, Some(kind), s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    });
    let negative = kind == "email_unsubscribed" || (broad && kind == "page_visit" && index % 25 == 7);
    let points = if negative { -(5.0 + rng.below(16) as f64) } else { 1.0 + rng.below(20) as f64 };
    let ty = schema.event_type_index(kind).expect("declared");
    let id = format!("{kind}-{index}");
    let rule = PointRule::on_event(id.clone(), ty, condition, points).in_group(group_of(kind));
    let group = ["behaviour", "intent"][group_of(kind)];
    let mut json = serde_json::json!({"id": id, "on": kind, "points": points, "group": group});
    if let Some(s) = source {
        json["when"] = serde_json::Value::String(s);
    }
    let day = Duration::from_days(1).expect("in range");
    let rule = match rng.below(100) {
        0..=59 => rule,
        60..=74 => {
            json["repeat"] = "once".into();
            rule.repeat(Repeat::Once)
        }
        75..=94 => {
            let max = 1 + rng.below(3) as u32;
            json["repeat"] = serde_json::json!({"max": max, "per": "1d"});
            rule.repeat(Repeat::AtMost { max, per: day })
        }
        _ => {
            json["min_interval"] = "1h".into();
            rule.min_interval(Duration::from_hours(1).expect("in range"))
        }
    };
    (rule, json)
}

fn base_model(thresholds: bool) -> ScoreModel {
    let days = |d| Duration::from_days(d).expect("in range");
    let model = ScoreModel::new("engagement")
        .with_groups(vec![
            Group::new("behaviour")
                .bounds(Bounds { floor: None, cap: Some(80.0) })
                .decay(Decay::HalfLife { half_life: days(30) }),
            Group::new("intent")
                .bounds(Bounds { floor: None, cap: Some(60.0) })
                .decay(Decay::HalfLife { half_life: days(14) }),
        ])
        .with_bounds(Bounds { floor: Some(0.0), cap: Some(100.0) });
    if !thresholds {
        return model;
    }
    model
        .with_threshold("mql", Threshold { enter: 60.0, exit: 50.0, rearm: Rearm::EveryCrossing })
        .with_threshold("sales_ready", Threshold { enter: 85.0, exit: 70.0, rearm: Rearm::Once })
}

/// The headline model: 194 engagement rules (more on the frequent types) and 6 fit rules.
fn main_model(
    schema: &Schema,
    pools: &Pools,
    rng: &mut Rng,
    thresholds: bool,
) -> (ScoreModel, usize, Vec<serde_json::Value>) {
    let per_type: &[(&str, usize)] = &[
        ("page_visit", 70),
        ("email_clicked", 22),
        ("email_opened", 14),
        ("product_login", 12),
        ("asset_download", 16),
        ("ad_clicked", 10),
        ("form_submit", 12),
        ("video_watched", 10),
        ("webinar_registered", 6),
        ("chat_started", 5),
        ("webinar_attended", 6),
        ("email_unsubscribed", 3),
        ("trial_started", 3),
        ("job_changed", 5),
    ];
    let mut model = base_model(thresholds);
    let mut json = Vec::new();
    let mut n = 0;
    for &(kind, count) in per_type {
        for i in 0..count {
            let (rule, doc) = engagement_rule(schema, pools, kind, i, rng, true);
            model = model.with_rule(rule);
            json.push(doc);
            n += 1;
        }
    }
    let fit = [
        ("enterprise", "contact.company_size >= 1000", 10.0),
        ("target-country", "contact.country in ['US', 'CA', 'GB', 'DE', 'FR']", 5.0),
        (
            "senior-title",
            "has(contact.job_title) && contact.job_title.matches('(?i)\\\\b(vp|vice president|director|head of|chief|cto|ceo)\\\\b')",
            15.0,
        ),
        ("software", "contact.industry == 'software'", 5.0),
        ("student", "has(contact.job_title) && contact.job_title == 'Student'", -10.0),
        ("revenue", "contact.annual_revenue_usd > 50000000.0", 5.0),
    ];
    for (id, source, points) in fit {
        let condition = nurture::condition::ConditionNames::default()
            .compile(schema, None, source)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        model = model.with_rule(PointRule::fit(id, condition, points));
        json.push(serde_json::json!({"id": id, "fit": source, "points": points}));
        n += 1;
    }
    (model, n, json)
}

/// The headline model as a rule-set document, for the full engine: the same schema
/// (same field and event-type order, so the prepared events fit), the model as a
/// `scoring` section, and a rule on the MQL threshold (an owner alert and the lifecycle
/// stage), as a production rule set has.
fn engine_document(schema: &Schema, rules: &[serde_json::Value]) -> String {
    let contact: serde_json::Map<String, serde_json::Value> =
        schema.contact_fields().iter().map(|(name, ty)| (name.to_string(), ty.to_string().into())).collect();
    let events: serde_json::Map<String, serde_json::Value> = event_types()
        .iter()
        .map(|(name, _, props)| {
            let props: serde_json::Map<String, serde_json::Value> =
                props.iter().map(|(p, ty)| (p.to_string(), ty.to_string().into())).collect();
            (name.to_string(), props.into())
        })
        .collect();
    serde_json::json!({
        "version": 1,
        "schema": {"contact": contact, "events": events, "scores": ["engagement"]},
        "rules": [{
            "id": "mql-alert",
            "on": {"score": "engagement", "threshold": "mql"},
            "actions": [
                {"type": "notify_owner", "message": "new MQL"},
                {"type": "set_lifecycle_stage", "stage": "mql"}
            ]
        }],
        "scoring": {"models": [{
            "id": "engagement", "cap": 100, "floor": 0,
            "groups": [
                {"id": "behaviour", "cap": 80, "decay": {"half_life": "30d"}},
                {"id": "intent", "cap": 60, "decay": {"half_life": "14d"}}
            ],
            "rules": rules,
            "thresholds": [
                {"id": "mql", "enter": 60, "exit": 50, "rearm": "every_crossing"},
                {"id": "sales_ready", "enter": 85, "exit": 70, "rearm": "once"}
            ]
        }]}
    })
    .to_string()
}

/// `n` selective engagement rules spread round-robin over the event types.
fn scaled_model(schema: &Schema, pools: &Pools, n: usize, rng: &mut Rng) -> ScoreModel {
    let types = event_types();
    let mut model = base_model(true);
    for i in 0..n {
        let kind = types[i % types.len()].0;
        model = model.with_rule(engagement_rule(schema, pools, kind, i, rng, false).0);
    }
    model
}

// ---------------------------------------------------------------------------------------
// The host: per-contact slots and the three ways of feeding events.

/// A contact's record for the touch floor: as large as the library's state, plus the
/// host's own counter, so the floor touches memory with the same stride.
struct Slot {
    _scores: ContactScores,
    events: u32,
}

#[derive(Default, Clone, Copy)]
struct Run {
    events: usize,
    seconds: f64,
    changes: usize,
    crossings: usize,
    errors: usize,
    allocs: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// Checks the clock every this many events when a run has a time limit.
const CLOCK_EVERY: usize = 4096;

/// One pass over the stream, one event at a time: `step` handles an event for the
/// contact with the given number and returns (changes, crossings), or `None` for an
/// error. Stops at `limit` seconds.
fn run_stream(
    stream: &Stream,
    limit: Option<f64>,
    mut step: impl FnMut(&Event, usize) -> Option<(usize, usize)>,
) -> Run {
    let mut run = Run::default();
    let a0 = allocs();
    let t0 = Instant::now();
    for (i, (event, &c)) in stream.events.iter().zip(&stream.contact_of).enumerate() {
        if let Some(limit) = limit {
            if i % CLOCK_EVERY == 0 && t0.elapsed().as_secs_f64() > limit {
                break;
            }
        }
        match step(event, c as usize) {
            Some((changes, crossings)) => {
                run.changes += changes;
                run.crossings += crossings;
            }
            None => run.errors += 1,
        }
        run.events += 1;
    }
    run.seconds = t0.elapsed().as_secs_f64();
    run.allocs = allocs() - a0;
    run
}

fn run_unbatched(
    scorer: &Scorer,
    stream: &Stream,
    contacts: &[Contact],
    states: &mut [ContactScores],
    limit: Option<f64>,
) -> Run {
    let mut scratch = ScoreScratch::default();
    run_stream(stream, limit, |event, c| {
        let update = scorer.handle_event(&mut states[c], &contacts[c], event, &mut scratch).ok()?;
        Some((update.changes.len(), update.crossings.len()))
    })
}

/// Events per call of the batch API.
const BATCH: usize = 256;

/// The library's batch API: chunks of events handed to `Scorer::handle_batch`, which
/// applies them in order, fetching states ahead (the results are those of the
/// unbatched path, bit for bit). The host only resolves each event's contact number.
/// Scores the first `count` events.
fn run_batched(
    scorer: &Scorer,
    stream: &Stream,
    contacts: &[Contact],
    states: &mut [ContactScores],
    count: usize,
) -> Run {
    let mut run = Run::default();
    let n = count.min(stream.events.len());
    let mut scratch = ScoreScratch::default();
    let mut batch: Vec<BatchEvent<'_>> = Vec::with_capacity(BATCH);
    let a0 = allocs();
    let t0 = Instant::now();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        batch.clear();
        batch.extend(
            stream.events[start..end]
                .iter()
                .zip(&stream.contact_of[start..end])
                .map(|(event, &c)| BatchEvent { state: c as usize, contact: &contacts[c as usize], event }),
        );
        scorer.handle_batch(states, &batch, &mut scratch, |_, update| match update {
            Ok(update) => {
                run.changes += update.changes.len();
                run.crossings += update.crossings.len();
            }
            Err(_) => run.errors += 1,
        });
        run.events += end - start;
        start = end;
    }
    run.seconds = t0.elapsed().as_secs_f64();
    run.allocs = allocs() - a0;
    run
}

/// The full engine, one event at a time: duplicates, scoring, rules (the MQL alert),
/// effects with idempotency keys, wake-ups.
fn run_engine(
    engine: &Engine,
    stream: &Stream,
    contacts: &[Contact],
    states: &mut [ContactState],
    limit: Option<f64>,
) -> Run {
    let mut scratch = EngineScratch::default();
    run_stream(stream, limit, |event, c| {
        let outcome = engine.handle_event(&mut states[c], &contacts[c], event, &mut scratch).ok()?;
        let crossings =
            outcome.effects.iter().filter(|e| matches!(e.kind, EffectKind::ThresholdCrossed { .. })).count();
        Some((outcome.effects.len(), crossings))
    })
}

/// The floor: the same per-event lookup of the contact's slot and one increment.
fn run_touch(stream: &Stream, slots: &mut [Slot]) -> Run {
    let t0 = Instant::now();
    for &c in &stream.contact_of {
        let slot = &mut slots[black_box(c) as usize];
        slot.events += 1;
    }
    let seconds = t0.elapsed().as_secs_f64();
    black_box(&slots[0].events);
    Run { events: stream.events.len(), seconds, ..Run::default() }
}

/// A fingerprint of every contact's scores at `at`, to check that two runs agree.
fn fingerprint(scorer: &Scorer, states: &[ContactScores], at: Timestamp) -> u64 {
    states.iter().fold(0u64, |h, s| {
        let v = scorer.value(s, 0, at).unwrap_or(f64::NAN);
        (h ^ v.to_bits()).wrapping_mul(0x0100_0000_01b3).rotate_left(5)
    })
}

/// Fresh states for every contact, fit rules evaluated at `at` (outside any timing).
fn fresh_states(scorer: &Scorer, contacts: &[Contact], at: Timestamp) -> Vec<ContactScores> {
    contacts
        .iter()
        .map(|c| {
            let mut scores = scorer.new_state(at);
            let _ = scorer.handle_attributes(&mut scores, c, at).expect("in order");
            scores
        })
        .collect()
}

/// Bytes per contact: the states themselves and their heap, split into the hot part
/// and the explanation history (requested sizes, as `ContactScores::heap_bytes`).
fn state_bytes(states: &[ContactScores]) -> (f64, f64) {
    let (hot, history) = states.iter().fold((0usize, 0usize), |(h, x), s| {
        let (sh, sx) = s.heap_bytes();
        (h + sh, x + sx)
    });
    let n = states.len().max(1) as f64;
    ((hot + std::mem::size_of_val(states)) as f64 / n, history as f64 / n)
}

// ---------------------------------------------------------------------------------------

struct Args {
    json: bool,
    contacts: usize,
    events: usize,
    scale_contacts: usize,
    scale_events: usize,
    scale_seconds: f64,
    time_cap: f64,
    scaling: bool,
    rescore_contacts: usize,
}

fn args() -> Args {
    let mut a = Args {
        json: false,
        contacts: 1_000_000,
        events: 5_000_000,
        scale_contacts: 100_000,
        scale_events: 1_000_000,
        scale_seconds: 10.0,
        time_cap: 60.0,
        scaling: true,
        rescore_contacts: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || it.next().and_then(|v| v.replace('_', "").parse::<f64>().ok()).expect("a number");
        match arg.as_str() {
            "--json" => a.json = true,
            "--contacts" => a.contacts = num() as usize,
            "--events" => a.events = num() as usize,
            "--scale-contacts" => a.scale_contacts = num() as usize,
            "--scale-events" => a.scale_events = num() as usize,
            "--scale-seconds" => a.scale_seconds = num(),
            "--time-cap" => a.time_cap = num(),
            "--rescore-contacts" => a.rescore_contacts = num() as usize,
            "--no-scaling" => a.scaling = false,
            other => panic!("unknown argument `{other}`"),
        }
    }
    a
}

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args = args();
    let schema = schema();
    let n_types = schema.event_types().count();
    let start = workload::start();
    let mut rng = Rng::new(0x5EED_2026);

    println!("nurture pipeline_bench: seeded workload, single thread, release build");
    println!();

    // --- Setup (untimed) ------------------------------------------------------------
    let t = Instant::now();
    let pools = Pools::new(false);
    let (model, n_rules, rules_json) = main_model(&schema, &pools, &mut rng, true);
    let document = engine_document(&schema, &rules_json);
    let scorer = Scorer::new(vec![model], n_types).expect("valid model");
    let m0 = live();
    let contacts = workload::contacts(&schema, args.contacts, &mut rng);
    let m1 = live();
    let stream = generate_events(&schema, &pools, &contacts, args.events, &mut rng);
    let m2 = live();
    let end = stream.events.last().map_or(start, Event::at);
    let touched = {
        let mut seen = vec![false; contacts.len()];
        stream.contact_of.iter().for_each(|&c| seen[c as usize] = true);
        seen.iter().filter(|s| **s).count()
    };
    let hottest = {
        let mut count = vec![0u32; contacts.len()];
        stream.contact_of.iter().for_each(|&c| count[c as usize] += 1);
        count.sort_unstable_by(|a, b| b.cmp(a));
        let top = |k: usize| count.iter().take(k).map(|&x| x as usize).sum::<usize>();
        (count[0], top(100), top(10_000))
    };
    println!("workload (prepared before timing, {:.1} s):", t.elapsed().as_secs_f64());
    println!(
        "  model: {n_rules} rules ({} engagement over {n_types} event types, 6 fit), 2 groups \
         (half-life 30 d cap 80, half-life 14 d cap 60), total cap 100, thresholds mql 60/50 and \
         sales_ready 85/70",
        n_rules - 6
    );
    println!(
        "  contacts: {}  ({:.0} MiB, {:.0} B each)",
        contacts.len(),
        mib(m1 - m0),
        (m1 - m0) as f64 / contacts.len() as f64
    );
    println!(
        "  events: {}  over 30 days in time order ({:.0} MiB, {:.0} B each incl. Vec<Event>)",
        stream.events.len(),
        mib(m2 - m1),
        (m2 - m1) as f64 / stream.events.len().max(1) as f64
    );
    println!(
        "  skew: {touched} contacts have events; hottest contact {} events, top 100 {:.1}%, top 10,000 {:.1}%",
        hottest.0,
        100.0 * hottest.1 as f64 / stream.events.len() as f64,
        100.0 * hottest.2 as f64 / stream.events.len() as f64
    );

    // --- Hot state ----------------------------------------------------------------
    let initial = fresh_states(&scorer, &contacts, start);
    let (hot_before, history_before) = state_bytes(&initial);
    println!();
    println!(
        "state per contact (size_of::<ContactScores>() = {} B inline, plus heap):",
        size_of::<ContactScores>()
    );
    println!(
        "  before any event, fit rules evaluated: hot {hot_before:.0} B, explanation history {history_before:.0} B"
    );

    // --- Streaming ------------------------------------------------------------------
    println!();
    println!(
        "streaming (single thread; states in a Vec indexed by the contact's interned number; \
         every path starts from the same fresh states):"
    );

    let mut slots: Vec<Slot> = initial.iter().map(|s| Slot { _scores: s.clone(), events: 0 }).collect();
    let touch = run_touch(&stream, &mut slots);
    drop(slots);
    println!(
        "  touch floor   {:>12.0} events/s  ({:.1} ns/event: slot lookup + one counter increment, all {} events)",
        touch.rate(),
        1e9 / touch.rate(),
        touch.events
    );

    let mut states = initial.clone();
    let unbatched = run_unbatched(&scorer, &stream, &contacts, &mut states, Some(args.time_cap));
    let fp_unbatched = fingerprint(&scorer, &states, end);
    drop(states);
    let prefix = if unbatched.events < stream.events.len() {
        format!(
            "the first {} of {} events: stopped at the {:.0} s time cap",
            unbatched.events,
            stream.events.len(),
            args.time_cap
        )
    } else {
        format!("all {} events", stream.events.len())
    };
    println!(
        "  unbatched     {:>12.0} events/s  ({:.0} ns/event; Scorer::handle_event, one scratch; {prefix})",
        unbatched.rate(),
        1e9 / unbatched.rate()
    );
    println!(
        "                {:.2} awards/event, {} threshold crossings, {:.3} allocations/event, {} errors",
        unbatched.changes as f64 / unbatched.events as f64,
        unbatched.crossings,
        unbatched.allocs as f64 / unbatched.events as f64,
        unbatched.errors
    );

    let mut states = initial.clone();
    let batched = run_batched(&scorer, &stream, &contacts, &mut states, unbatched.events);
    let fp_batched = fingerprint(&scorer, &states, end);
    let (hot_after, history_after) = state_bytes(&states);
    let final_states = states;
    println!(
        "  batch API     {:>12.0} events/s  ({:.0} ns/event; Scorer::handle_batch, chunks of {BATCH}; same events; \
         {:.3} allocations/event)",
        batched.rate(),
        1e9 / batched.rate(),
        batched.allocs as f64 / batched.events as f64
    );
    // Attribution: without the explanation history (no ledger, no per-rule breakdown).
    let lean = scorer.clone().with_ledger(0);
    let mut states = fresh_states(&lean, &contacts, start);
    let lean_unbatched = run_unbatched(&lean, &stream, &contacts, &mut states, Some(args.time_cap));
    let fp_lean = fingerprint(&lean, &states, end);
    drop(states);
    let mut states = fresh_states(&lean, &contacts, start);
    let lean_batched = run_batched(&lean, &stream, &contacts, &mut states, lean_unbatched.events);
    drop(states);
    println!(
        "  without the explanation history (Scorer::with_ledger(0)): unbatched {:.0} events/s, batch API {:.0} events/s",
        lean_unbatched.rate(),
        lean_batched.rate()
    );
    println!(
        "  every contact's final score identical in all paths: {}",
        fp_unbatched == fp_batched
            && unbatched.events == batched.events
            && (lean_unbatched.events != unbatched.events || fp_lean == fp_unbatched)
    );
    println!(
        "  after the stream, per contact (all {} contacts): hot {hot_after:.0} B, explanation history {history_after:.0} B",
        contacts.len()
    );
    println!(
        "  unbatched / touch floor = {:.4}, batch / touch floor = {:.4}, batch / unbatched = {:.2}",
        unbatched.rate() / touch.rate(),
        batched.rate() / touch.rate(),
        batched.rate() / unbatched.rate()
    );

    // --- The full engine -----------------------------------------------------------
    let program = Program::from_json(&document).unwrap_or_else(|e| panic!("{}", e.render()));
    let engine = Engine::new(Arc::new(program));
    let mut engine_states: Vec<ContactState> = contacts.iter().map(|c| engine.new_state(c, start)).collect();
    let full = run_engine(&engine, &stream, &contacts, &mut engine_states, Some(args.time_cap));
    let engine_scorer = engine.program().scorer().expect("a scoring section");
    let same_scores = full.events == unbatched.events
        && engine_states.iter().zip(&final_states).all(|(e, s)| {
            engine_scorer.value(e.scores().expect("scores"), 0, end).map(f64::to_bits)
                == scorer.value(s, 0, end).map(f64::to_bits)
        });
    drop(engine_states);
    println!(
        "  full engine   {:>12.0} events/s  ({:.0} ns/event; Engine::handle_event: duplicates, scoring, the MQL rule, \
         effects with idempotency keys, wake-ups; {} events)",
        full.rate(),
        1e9 / full.rate(),
        full.events
    );
    println!(
        "                {:.2} effects/event, {} threshold crossings, {:.3} allocations/event, {} errors; \
         scores identical to the scorer's: {same_scores}",
        full.changes as f64 / full.events.max(1) as f64,
        full.crossings,
        full.allocs as f64 / full.events.max(1) as f64,
        full.errors
    );

    // --- Rescoring --------------------------------------------------------------------
    let subset = args.rescore_contacts.min(contacts.len());
    let mut offsets = vec![0usize; subset + 1];
    for &c in &stream.contact_of {
        if (c as usize) < subset {
            offsets[c as usize + 1] += 1;
        }
    }
    for i in 0..subset {
        offsets[i + 1] += offsets[i];
    }
    let mut history: Vec<Option<Event>> = vec![None; offsets[subset]];
    let mut fill = offsets.clone();
    for (e, &c) in stream.events.iter().zip(&stream.contact_of) {
        let c = c as usize;
        if c < subset {
            history[fill[c]] = Some(e.clone());
            fill[c] += 1;
        }
    }
    let history: Vec<Event> = history.into_iter().map(|e| e.expect("filled")).collect();
    let t0 = Instant::now();
    let rescored = scorer
        .rescore((0..subset).map(|c| (&contacts[c], &history[offsets[c]..offsets[c + 1]])), start)
        .expect("histories in order");
    let rescore_seconds = t0.elapsed().as_secs_f64();
    let rescore_rate = history.len() as f64 / rescore_seconds;
    let agrees = if batched.events == stream.events.len() {
        let same = rescored.iter().zip(&final_states).all(|(r, s)| {
            scorer.value(r, 0, end).map(f64::to_bits) == scorer.value(s, 0, end).map(f64::to_bits)
        });
        format!("equal to the streamed scores: {same}")
    } else {
        "not compared with the streamed scores, which covered a prefix".to_string()
    };
    println!();
    println!(
        "rescore (Scorer::rescore over {subset} contacts' full histories, {} events, fit rules included):",
        history.len()
    );
    println!(
        "  {:>12.0} events/s  ({:.2} s; {:.0} contacts/s; {agrees})",
        rescore_rate,
        rescore_seconds,
        subset as f64 / rescore_seconds
    );
    drop(rescored);
    drop(history);
    drop(final_states);
    drop(initial);
    let totals = (contacts.len(), n_rules, stream.events.len());
    drop(stream);
    drop(contacts);

    // --- Rule-count scaling -------------------------------------------------------------
    if args.scaling {
        println!();
        let t = Instant::now();
        let wide = Pools::new(true);
        let mut rng = Rng::new(0x5CA1_E000);
        let contacts = workload::contacts(&schema, args.scale_contacts, &mut rng);
        let stream = generate_events(&schema, &wide, &contacts, args.scale_events, &mut rng);
        println!(
            "rule-count scaling: {} events over {} contacts (wide value pools: 5,000 URLs, 2,000 \
             campaigns, ...), selective rules round-robin over the {n_types} event types \
             (prepared in {:.1} s; the unbatched run stops at a {:.0} s cap and the batch API scores the same prefix):",
            stream.events.len(),
            contacts.len(),
            t.elapsed().as_secs_f64(),
            args.scale_seconds
        );
        println!(
            "  {:>7}  {:>11}  {:>13}  {:>13}  {:>13}  {:>10}  {:>9}",
            "rules", "events run", "unbatched/s", "batch/s", "rules of type", "awards/ev", "vs 100"
        );
        let mut base = None;
        for n in [100usize, 1_000, 10_000] {
            let t = Instant::now();
            let model = scaled_model(&schema, &wide, n, &mut rng);
            let scorer = Scorer::new(vec![model], n_types).expect("valid model");
            let compile = t.elapsed().as_secs_f64();
            let initial = fresh_states(&scorer, &contacts, start);
            let mut states = initial.clone();
            let u = run_unbatched(&scorer, &stream, &contacts, &mut states, Some(args.scale_seconds));
            drop(states);
            let mut states = initial.clone();
            let b = run_batched(&scorer, &stream, &contacts, &mut states, u.events);
            drop(states);
            // Per event, the rules on its type (what a per-type scan evaluates; the scorer may index).
            let per_type = n / n_types;
            let extra = n % n_types;
            let evaluated: f64 = stream.events[..u.events]
                .iter()
                .map(|e| (per_type + usize::from(e.event_type().get() < extra)) as f64)
                .sum::<f64>()
                / u.events as f64;
            let base_rate = *base.get_or_insert(u.rate());
            println!(
                "  {:>7}  {:>11}  {:>13.0}  {:>13.0}  {:>13.1}  {:>10.3}  {:>8.3}x   (compiled in {:.2} s)",
                n,
                u.events,
                u.rate(),
                b.rate(),
                evaluated,
                u.changes as f64 / u.events as f64,
                u.rate() / base_rate,
                compile
            );
        }
    }

    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "contacts": totals.0,
                "rules": totals.1,
                "events": totals.2,
                "events_per_sec": batched.rate().round(),
                "events_per_sec_unbatched": unbatched.rate().round(),
                "touch_events_per_sec": touch.rate().round(),
                "hot_state_bytes_per_contact": hot_after.max(hot_before).round(),
                "rescore_events_per_sec": rescore_rate.round(),
                "engine_events_per_sec": full.rate().round(),
            })
        );
    }
}
