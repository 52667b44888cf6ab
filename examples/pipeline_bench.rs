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
//! - the native baseline: the same model written by hand in plain Rust (plain structs,
//!   the event type's rules tried in order, the same decay, caps, repeat policies and
//!   thresholds, no explanations) on the same events; its final scores are checked
//!   equal to nurture's within `NATIVE_TOLERANCE` (and its award and crossing counts
//!   equal) before any rate is printed, and the run stops if they are not;
//! - the touch floor: the same lookup and one counter increment per event;
//! - the bytes of every contact's state, hot part and explanation history, before and
//!   after the stream;
//! - bulk rescoring (`Scorer::rescore`) of 100,000 contacts' full histories;
//! - the full `Engine::handle_event` and the bytes of its state per contact;
//! - and, on a smaller stream, throughput at 100, 1,000 and 10,000 rules, each rule set
//!   with about 100 rules on values the stream carries (the others name pages and
//!   campaigns it never touches), so that awards per event stay comparable and the
//!   ratio measures rule count.
//!
//! With `--json` the last line is one JSON object with the headline figures. Smaller
//! runs for development: `--contacts N --events N --scale-contacts N --scale-events N
//! --scale-seconds S --rescore-contacts N --quickstart-contacts N --no-scaling` (the
//! quickstart program's state is measured over a 90-day funnel of
//! `--quickstart-contacts` contacts, default 2,000). The scorer and the engine's
//! program are tuned first (`Scorer::tune`, `Program::tune`) on a separately generated
//! sample of 1% of the stream's size; `--no-tune` skips that. `--time-cap S` (default 60)
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
    fn pick_event(&self, rng: &mut Rng) -> usize {
        rng.skewed(self.vals.len())
    }

    /// What a rule targets: any value, uniformly (so each rule matches a small share of
    /// its type's events); in `popular` mode, a popular value 30% of the time, as real
    /// models weigh the pages that matter.
    fn target_index(&self, rng: &mut Rng, popular: bool) -> usize {
        if popular && rng.chance(0.3) {
            rng.skewed(self.strs.len())
        } else {
            rng.below(self.strs.len())
        }
    }

    /// A target for a rule: the value's text and its position in the pool. A `dead`
    /// target names a value no event carries (position [`DEAD`]), after the same draws.
    fn pick(&self, rng: &mut Rng, popular: bool, dead: Option<usize>) -> (String, u32) {
        let i = self.target_index(rng, popular);
        match dead {
            Some(rule) => (format!("unused-{rule}-{i}"), DEAD),
            None => (self.strs[i].clone(), i as u32),
        }
    }
}

/// The position of a value no event carries (a rule's target outside the stream).
const DEAD: u32 = u32::MAX - 1;
/// The position of an absent optional property.
const ABSENT: u32 = u32::MAX;

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
    /// The same events as the native baseline reads them.
    native: Vec<NEvent>,
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
    let mut native = Vec::with_capacity(n);
    for i in 0..n {
        // Zipf-like activity; ranks scattered over contact numbers (a bijection: the
        // multiplier is odd and not a multiple of 5, and counts here are 2^a 5^b).
        let rank = rng.skewed(nc) as u64;
        let c = (rank.wrapping_mul(2_654_435_761) % nc as u64) as usize;
        let seconds = start + (i as f64 * step) as i64;
        let at = Timestamp::from_unix(seconds, 0).expect("in range");
        let kind = *rng.weighted(&weights);
        let id = EventId::from(format!("e{i}"));
        let b = schema.event(id, contacts[c].id().clone(), kind, at).expect("declared type");
        let k = weights.iter().position(|w| w.0 == kind).expect("a workload type") as u8;
        let mut ne = NEvent { contact: c as u32, kind: k, a: ABSENT, b: ABSENT, n: 0, at: seconds };
        let pick = |pool: &Pool, rng: &mut Rng| {
            let i = pool.pick_event(rng);
            (pool.vals[i].clone(), i as u32)
        };

        let b = match kind {
            "page_visit" => {
                let (url, ui) = pick(&pools.url, rng);
                ne.a = ui;
                let mut b = set(b, "url", url);
                if rng.chance(0.5) {
                    b = set(b, "referrer", pools.referrer.clone());
                }
                if rng.chance(0.6) {
                    let (source, si) = pick(&pools.source, rng);
                    ne.b = si;
                    b = set(b, "utm_source", source);
                }
                ne.n = rng.below(240) as i64;
                set(b, "seconds_on_page", Value::Int(ne.n))
            }
            "email_opened" | "email_unsubscribed" => {
                let (v, i) = pick(&pools.campaign, rng);
                ne.a = i;
                set(b, "campaign", v)
            }
            "email_clicked" => {
                let (v, i) = pick(&pools.campaign, rng);
                ne.a = i;
                let b = set(b, "campaign", v);
                let (v, i) = pick(&pools.link, rng);
                ne.b = i;
                set(b, "link", v)
            }
            "product_login" => {
                let (v, i) = pick(&pools.feature, rng);
                ne.a = i;
                set(b, "feature", v)
            }
            "asset_download" => {
                let (v, a) = pick(&pools.asset, rng);
                let t = a % pools.asset_type.vals.len() as u32;
                ne.a = a;
                ne.b = t;
                let b = set(b, "asset", v);
                set(b, "asset_type", pools.asset_type.vals[t as usize].clone())
            }
            "ad_clicked" => {
                let (v, i) = pick(&pools.campaign, rng);
                ne.a = i;
                let b = set(b, "campaign", v);
                let (v, i) = pick(&pools.network, rng);
                ne.b = i;
                set(b, "network", v)
            }
            "form_submit" => {
                let (v, i) = pick(&pools.form, rng);
                ne.a = i;
                let b = set(b, "form", v);
                let (v, i) = pick(&pools.url, rng);
                ne.b = i;
                set(b, "page", v)
            }
            "video_watched" => {
                let (v, i) = pick(&pools.video, rng);
                ne.a = i;
                let b = set(b, "video", v);
                ne.n = rng.below(101) as i64;
                set(b, "percent", Value::Int(ne.n))
            }
            "webinar_registered" => {
                let (v, i) = pick(&pools.webinar, rng);
                ne.a = i;
                set(b, "webinar", v)
            }
            "webinar_attended" => {
                let (v, i) = pick(&pools.webinar, rng);
                ne.a = i;
                let b = set(b, "webinar", v);
                ne.n = rng.below(90) as i64;
                set(b, "minutes", Value::Int(ne.n))
            }
            "chat_started" => {
                let (v, i) = pick(&pools.topic, rng);
                ne.a = i;
                set(b, "topic", v)
            }
            "trial_started" => {
                let (v, i) = pick(&pools.plan, rng);
                ne.a = i;
                set(b, "plan", v)
            }
            _ => {
                let (v, i) = pick(&pools.title, rng);
                ne.a = i;
                let b = set(b, "new_title", v);
                ne.n = (10f64.powf(rng.unit() * 4.0)) as i64;
                set(b, "new_company_size", Value::Int(ne.n))
            }
        };
        events.push(b.build());
        contact_of.push(c as u32);
        native.push(ne);
    }
    Stream { events, contact_of, native }
}

// ---------------------------------------------------------------------------------------
// Score models.

/// A condition for an engagement rule on `kind`, as source text and as the native
/// baseline's hand-written test (same draws from `rng`). `broad` allows the
/// section-wide and property-wide conditions a real model has a few of; without it every
/// condition names one value (or three) out of a large pool. `dead` (the rule's number)
/// makes every value the rule names one that no event carries: large rule sets are
/// mostly rules on pages and campaigns this stream never touches.
fn condition_source(
    kind: &str,
    pools: &Pools,
    rng: &mut Rng,
    broad: bool,
    dead: Option<usize>,
) -> (Option<String>, NCond) {
    let v = rng.below(100);
    let url = |rng: &mut Rng| pools.url.pick(rng, broad, dead);
    let campaign = |rng: &mut Rng| pools.campaign.pick(rng, broad, dead);
    match kind {
        "page_visit" => {
            let (u, ui) = url(rng);
            match v {
                0..=49 => (Some(format!("event.url == '{u}'")), NCond::A(ui)),
                50..=64 if broad => {
                    let section = SECTIONS[rng.below(SECTIONS.len())];
                    (Some(format!("event.url.startsWith('{section}')")), NCond::APrefix(section.into()))
                }
                50..=64 => (Some(format!("event.url.startsWith('{u}')")), NCond::APrefix(u.into())),
                65..=79 => (Some(format!("event.url == '{u}' && event.seconds_on_page >= 30")), NCond::AN(ui, 30)),
                80..=89 => {
                    let (u2, i2) = url(rng);
                    let (u3, i3) = url(rng);
                    (Some(format!("event.url in ['{u}', '{u2}', '{u3}']")), NCond::AIn([ui, i2, i3]))
                }
                _ if broad => (
                    Some(
                        "event.url.startsWith('/blog/') && has(event.utm_source) && event.utm_source == 'linkedin'"
                            .to_string(),
                    ),
                    NCond::APrefixB("/blog/".into(), 1),
                ),
                _ => {
                    let (s, si) = pools.source.pick(rng, broad, dead);
                    (
                        Some(format!("event.url == '{u}' && has(event.utm_source) && event.utm_source == '{s}'")),
                        NCond::AB(ui, si),
                    )
                }
            }
        }
        "email_clicked" => {
            let (c, ci) = campaign(rng);
            match v {
                0..=59 => (Some(format!("event.campaign == '{c}'")), NCond::A(ci)),
                60..=79 => {
                    let (u, _) = url(rng);
                    (
                        Some(format!("event.campaign == '{c}' && event.link.endsWith('{u}')")),
                        NCond::ABSuffix(ci, u.into()),
                    )
                }
                _ if broad => {
                    (Some("event.link.contains('/pricing')".to_string()), NCond::BContains("/pricing".into()))
                }
                _ => {
                    let (l, li) = pools.link.pick(rng, broad, dead);
                    (Some(format!("event.link == '{l}'")), NCond::B(li))
                }
            }
        }
        "email_opened" => {
            let (c, ci) = campaign(rng);
            (Some(format!("event.campaign == '{c}'")), NCond::A(ci))
        }
        "email_unsubscribed" if broad => (None, NCond::Always),
        "email_unsubscribed" => {
            let (c, ci) = campaign(rng);
            (Some(format!("event.campaign == '{c}'")), NCond::A(ci))
        }
        "product_login" => {
            let (f, fi) = pools.feature.pick(rng, broad, dead);
            (Some(format!("event.feature == '{f}'")), NCond::A(fi))
        }
        "asset_download" => {
            let asset = |rng: &mut Rng| pools.asset.pick(rng, broad, dead);
            match v {
                0..=79 => {
                    let (a, ai) = asset(rng);
                    (Some(format!("event.asset == '{a}'")), NCond::A(ai))
                }
                _ if broad => {
                    let (t, ti) = pools.asset_type.pick(rng, broad, dead);
                    (Some(format!("event.asset_type == '{t}'")), NCond::B(ti))
                }
                // Position 0 of the asset types is `whitepaper`.
                _ => {
                    let (a, ai) = asset(rng);
                    (
                        Some(format!("event.asset == '{a}' && event.asset_type == 'whitepaper'")),
                        NCond::AB(ai, 0),
                    )
                }
            }
        }
        "ad_clicked" => {
            let (n, ni) = pools.network.pick(rng, broad, dead);
            let (c, ci) = campaign(rng);
            (Some(format!("event.network == '{n}' && event.campaign == '{c}'")), NCond::AB(ci, ni))
        }
        "form_submit" => {
            let (f, fi) = pools.form.pick(rng, broad, dead);
            match v {
                0..=69 => (Some(format!("event.form == '{f}'")), NCond::A(fi)),
                _ => (
                    Some(format!("event.form == '{f}' && event.page.startsWith('/pricing')")),
                    NCond::ABPrefix(fi, "/pricing".into()),
                ),
            }
        }
        "video_watched" => {
            let (x, xi) = pools.video.pick(rng, broad, dead);
            (Some(format!("event.video == '{x}' && event.percent >= 75")), NCond::AN(xi, 75))
        }
        "webinar_registered" => {
            let (w, wi) = pools.webinar.pick(rng, broad, dead);
            (Some(format!("event.webinar == '{w}'")), NCond::A(wi))
        }
        "webinar_attended" => {
            let (w, wi) = pools.webinar.pick(rng, broad, dead);
            (Some(format!("event.webinar == '{w}' && event.minutes >= 30")), NCond::AN(wi, 30))
        }
        "chat_started" => {
            let (t, ti) = pools.topic.pick(rng, broad, dead);
            (Some(format!("event.topic == '{t}'")), NCond::A(ti))
        }
        "trial_started" if broad => (None, NCond::Always),
        "trial_started" => {
            let (p, pi) = pools.plan.pick(rng, broad, dead);
            (Some(format!("event.plan == '{p}'")), NCond::A(pi))
        }
        _ => match v {
            // Sizes in the stream stay below 10,000: a dead rule asks for more.
            0..=49 if dead.is_some() => {
                (Some("event.new_company_size >= 1000000".to_string()), NCond::N(1_000_000))
            }
            0..=49 => (Some("event.new_company_size >= 1000".to_string()), NCond::N(1000)),
            _ => {
                let (t, ti) = pools.title.pick(rng, broad, dead);
                (Some(format!("event.new_title == '{t}'")), NCond::A(ti))
            }
        },
    }
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
    dead: Option<usize>,
) -> (PointRule, serde_json::Value, NRule) {
    let (source, cond) = condition_source(kind, pools, rng, broad, dead);
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
    let (rule, repeat) = match rng.below(100) {
        0..=59 => (rule, NRepeat::Every),
        60..=74 => {
            json["repeat"] = "once".into();
            (rule.repeat(Repeat::Once), NRepeat::Once)
        }
        75..=94 => {
            let max = 1 + rng.below(3) as u32;
            json["repeat"] = serde_json::json!({"max": max, "per": "1d"});
            (rule.repeat(Repeat::AtMost { max, per: day }), NRepeat::PerDay(max as usize))
        }
        _ => {
            json["min_interval"] = "1h".into();
            (rule.min_interval(Duration::from_hours(1).expect("in range")), NRepeat::Hourly)
        }
    };
    (rule, json, NRule { cond, points, group: group_of(kind), repeat, slot: 0 })
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
) -> (ScoreModel, usize, Vec<serde_json::Value>, NativeModel) {
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
    let kinds = event_types();
    let mut native = NativeModel { rules: vec![Vec::new(); kinds.len()], memory_slots: 0 };
    let mut n = 0;
    for &(kind, count) in per_type {
        let k = kinds.iter().position(|t| t.0 == kind).expect("a workload type");
        for i in 0..count {
            let (rule, doc, mut nrule) = engagement_rule(schema, pools, kind, i, rng, true, None);
            model = model.with_rule(rule);
            json.push(doc);
            if nrule.repeat != NRepeat::Every {
                nrule.slot = native.memory_slots;
                native.memory_slots += 1;
            }
            native.rules[k].push(nrule);
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
    (model, n, json, native)
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

/// How many rules of a scaled model target values the stream carries: the rest name
/// pages, campaigns and so on that no event of the stream touches, so that the rule
/// sets of every size award about as often per event and the comparison measures rule
/// count, not award count.
const LIVE_RULES: f64 = 100.0;

/// `n` selective engagement rules spread round-robin over the event types, about
/// [`LIVE_RULES`] of them on values the stream carries.
fn scaled_model(schema: &Schema, pools: &Pools, n: usize, rng: &mut Rng) -> ScoreModel {
    let types = event_types();
    let mut model = base_model(true);
    let live = (LIVE_RULES / n as f64).min(1.0);
    for i in 0..n {
        let kind = types[i % types.len()].0;
        let dead = (!rng.chance(live)).then_some(i);
        model = model.with_rule(engagement_rule(schema, pools, kind, i, rng, false, dead).0);
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

#[inline(never)] // its own entry in profiles
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
#[inline(never)] // its own entry in profiles
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
#[inline(never)] // its own entry in profiles
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
    quickstart_contacts: usize,
    /// Whether the scorer and the engine's program are tuned on a sample first.
    tune: bool,
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
        quickstart_contacts: 2_000,
        tune: true,
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
            "--quickstart-contacts" => a.quickstart_contacts = num() as usize,
            "--no-scaling" => a.scaling = false,
            "--no-tune" => a.tune = false,
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
    let (model, n_rules, rules_json, native) = main_model(&schema, &pools, &mut rng, true);
    let strings = NStrings::new(&pools);
    let document = engine_document(&schema, &rules_json);
    let mut scorer = Scorer::new(vec![model], n_types).expect("valid model");
    let mut program = Program::from_json(&document).unwrap_or_else(|e| panic!("{}", e.render()));
    let m0 = live();
    let contacts = workload::contacts(&schema, args.contacts, &mut rng);
    let m1 = live();
    let stream = generate_events(&schema, &pools, &contacts, args.events, &mut rng);
    let m2 = live();
    // Tuning (`Scorer::tune`, `Program::tune`) on a separately generated sample of 1% of
    // the stream's size (at least 1,000 events), from its own seed: traffic like the
    // stream's, not the timed events themselves.
    let tuning = args.tune.then(|| {
        let sample = generate_events(
            &schema,
            &pools,
            &contacts,
            (args.events / 100).max(1_000),
            &mut Rng::new(0x7A11_2026),
        );
        let pairs = || sample.events.iter().zip(&sample.contact_of).map(|(e, &c)| (&contacts[c as usize], e));
        (sample.events.len(), scorer.tune(pairs()), program.tune(pairs()))
    });
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
    match tuning {
        Some((n, s, p)) => println!(
            "  tuned on a separate sample of {n} events: scorer {} of {} conditions reordered, engine program {} of {} \
             (--no-tune to skip)",
            s.reordered, s.conditions, p.reordered, p.conditions
        ),
        None => println!("  not tuned (--no-tune)"),
    }
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

    let mut states = initial.clone();
    let unbatched = run_unbatched(&scorer, &stream, &contacts, &mut states, Some(args.time_cap));
    let fp_unbatched = fingerprint(&scorer, &states, end);

    // The native baseline on the same events, checked against nurture's scores before
    // any rate is printed.
    let mut native_states: Vec<NState> = contacts
        .iter()
        .map(|c| NState {
            at: [start.unix_seconds(); 2],
            last: start.unix_seconds(),
            fit: native_fit(&schema, c),
            ..NState::default()
        })
        .collect();
    let native_run = run_native(&native, &strings, &stream, &mut native_states, unbatched.events);
    let difference = native_difference(&scorer, &states, &native_states, end.unix_seconds(), end);
    assert!(
        difference <= NATIVE_TOLERANCE
            && native_run.changes == unbatched.changes
            && native_run.crossings == unbatched.crossings,
        "the native baseline disagrees with nurture: largest score difference {difference:e} (tolerance \
         {NATIVE_TOLERANCE:e}), awards {} vs {}, crossings {} vs {}",
        native_run.changes,
        unbatched.changes,
        native_run.crossings,
        unbatched.crossings
    );
    drop(native_states);
    drop(states);
    println!(
        "  touch floor   {:>12.0} events/s  ({:.1} ns/event: slot lookup + one counter increment, all {} events)",
        touch.rate(),
        1e9 / touch.rate(),
        touch.events
    );
    println!(
        "  native        {:>12.0} events/s  ({:.0} ns/event; the same model hand-written in plain Rust, same events; \
         final scores within {NATIVE_TOLERANCE:e} of nurture's (largest difference {difference:.1e}), same {} awards \
         and {} crossings; {:.3} allocations/event)",
        native_run.rate(),
        1e9 / native_run.rate(),
        native_run.changes,
        native_run.crossings,
        native_run.allocs as f64 / native_run.events.max(1) as f64
    );
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
    let engine = Engine::new(Arc::new(program));
    let before_states = live();
    let mut engine_states: Vec<ContactState> = contacts.iter().map(|c| engine.new_state(c, start)).collect();
    let full = run_engine(&engine, &stream, &contacts, &mut engine_states, Some(args.time_cap));
    // Everything the engine keeps for the contacts after the stream, as the allocator
    // counts it (the states' vector and every heap block they own).
    let engine_bytes = (live() - before_states) as f64 / contacts.len().max(1) as f64;
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
         scores identical to the scorer's: {same_scores}; engine state {engine_bytes:.0} B/contact",
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

    // --- The quickstart program's state ------------------------------------------------
    let quickstart = quickstart_state_bytes(args.quickstart_contacts);
    println!();
    println!(
        "quickstart program (examples/b2b_rules.json, 90-day funnel of {} contacts, {} events and their \
         wake-ups through Engine): full engine state {:.0} B/contact after the stream (allocator-measured)",
        args.quickstart_contacts, quickstart.1, quickstart.0
    );

    // --- Rule-count scaling -------------------------------------------------------------
    // Per rule count: (events/s unbatched, awards per event).
    let mut scale: Vec<(usize, f64, f64)> = Vec::new();
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
            scale.push((n, u.rate(), u.changes as f64 / u.events.max(1) as f64));
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

    let scaled = |n: usize| scale.iter().find(|s| s.0 == n).copied();
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
                "native_events_per_sec": native_run.rate().round(),
                "engine_state_bytes_per_contact": engine_bytes.round(),
                "quickstart_state_bytes_per_contact": quickstart.0.round(),
                "scale_100_events_per_sec": scaled(100).map(|s| s.1.round()),
                "scale_10000_events_per_sec": scaled(10_000).map(|s| s.1.round()),
                "scale_100_awards_per_event": scaled(100).map(|s| s.2),
                "scale_10000_awards_per_event": scaled(10_000).map(|s| s.2),
            })
        );
    }
}

// ---------------------------------------------------------------------------------------
// The native baseline: the same 200-rule model written by hand in plain Rust, as a team
// without a rules engine would write it. Events are plain structs (interned property
// values, prepared outside the timing like nurture's `Event`s), each event type's rules
// are a `Vec` of hand-written tests tried in order, and the per-contact state is a small
// struct: two decaying groups with caps, the total's cap and floor, two thresholds with
// hysteresis, and repeat-policy memory. No explanations, no index, no effects.

/// A hand-written condition over a native event's two interned values `a` and `b` and
/// its number `n` (which property each is depends on the event type, see
/// [`NEvent`]); positions are the values' positions in the pools.
#[derive(Clone, Debug, PartialEq)]
enum NCond {
    Always,
    A(u32),
    B(u32),
    AB(u32, u32),
    AIn([u32; 3]),
    AN(u32, i64),
    N(i64),
    APrefix(Box<str>),
    APrefixB(Box<str>, u32),
    ABSuffix(u32, Box<str>),
    ABPrefix(u32, Box<str>),
    BContains(Box<str>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum NRepeat {
    Every,
    Once,
    PerDay(usize),
    Hourly,
}

#[derive(Clone, Debug)]
struct NRule {
    cond: NCond,
    points: f64,
    group: usize,
    repeat: NRepeat,
    /// The rule's position among the rules with a repeat policy.
    slot: u16,
}

/// An event as the native scorer reads it. Per type, `a` / `b` / `n`: page_visit url /
/// utm_source / seconds_on_page; email_opened and email_unsubscribed campaign;
/// email_clicked campaign / link; product_login feature; asset_download asset /
/// asset_type; ad_clicked campaign / network; form_submit form / page; video_watched
/// video / - / percent; webinar_* webinar / - / minutes; chat_started topic;
/// trial_started plan; job_changed new_title / - / new_company_size.
#[derive(Clone, Copy, Debug)]
struct NEvent {
    contact: u32,
    kind: u8,
    a: u32,
    b: u32,
    n: i64,
    at: i64,
}

/// A rule's repeat-policy memory: its most recent award instants (newest last).
#[derive(Clone, Debug)]
struct NMemory {
    slot: u16,
    len: u8,
    times: [i64; 3],
}

#[derive(Clone, Debug, Default)]
struct NState {
    value: [f64; 2],
    at: [i64; 2],
    last: i64,
    fit: f64,
    inside: [bool; 2],
    entered: [bool; 2],
    memory: Vec<NMemory>,
}

struct NativeModel {
    /// Per event type (in `event_types()` order), its rules in model order.
    rules: Vec<Vec<NRule>>,
    memory_slots: u16,
}

/// The strings behind the interned values the native tests look into.
struct NStrings {
    a: Vec<Vec<String>>,
    b: Vec<Vec<String>>,
}

impl NStrings {
    fn new(pools: &Pools) -> NStrings {
        let table = |p: &Pool| p.strs.clone();
        let mut a = vec![Vec::new(); event_types().len()];
        let mut b = vec![Vec::new(); event_types().len()];
        for (k, (name, _, _)) in event_types().iter().enumerate() {
            let (x, y) = match *name {
                "page_visit" => (table(&pools.url), table(&pools.source)),
                "email_clicked" => (table(&pools.campaign), table(&pools.link)),
                "asset_download" => (table(&pools.asset), table(&pools.asset_type)),
                "ad_clicked" => (table(&pools.campaign), table(&pools.network)),
                "form_submit" => (table(&pools.form), table(&pools.url)),
                _ => (Vec::new(), Vec::new()),
            };
            a[k] = x;
            b[k] = y;
        }
        NStrings { a, b }
    }
}

const HALF_LIFE_SECONDS: [f64; 2] = [30.0 * 86_400.0, 14.0 * 86_400.0];
const GROUP_CAP: [f64; 2] = [80.0, 60.0];
/// mql 60/50 every crossing, sales_ready 85/70 once.
const LEVELS: [(f64, f64, bool); 2] = [(60.0, 50.0, true), (85.0, 70.0, false)];

impl NativeModel {
    #[inline]
    fn holds(cond: &NCond, e: &NEvent, strings: &NStrings) -> bool {
        let a = || strings.a[e.kind as usize].get(e.a as usize).map_or("", String::as_str);
        let b = || strings.b[e.kind as usize].get(e.b as usize).map_or("", String::as_str);
        match cond {
            NCond::Always => true,
            NCond::A(x) => e.a == *x,
            NCond::B(y) => e.b == *y,
            NCond::AB(x, y) => e.a == *x && e.b == *y,
            NCond::AIn(xs) => xs.contains(&e.a),
            NCond::AN(x, n) => e.a == *x && e.n >= *n,
            NCond::N(n) => e.n >= *n,
            NCond::APrefix(p) => a().starts_with(&**p),
            NCond::APrefixB(p, y) => a().starts_with(&**p) && e.b == *y,
            NCond::ABSuffix(x, s) => e.a == *x && b().ends_with(&**s),
            NCond::ABPrefix(x, p) => e.a == *x && b().starts_with(&**p),
            NCond::BContains(s) => b().contains(&**s),
        }
    }

    fn allows(state: &NState, rule: &NRule, now: i64) -> bool {
        let Some(m) = state.memory.iter().find(|m| m.slot == rule.slot) else {
            return true;
        };
        let times = &m.times[..m.len as usize];
        match rule.repeat {
            NRepeat::Every => true,
            NRepeat::Once => false,
            NRepeat::PerDay(max) => times.iter().filter(|&&t| now - t < 86_400).count() < max,
            NRepeat::Hourly => times.last().is_none_or(|&t| now - t >= 3_600),
        }
    }

    fn record(state: &mut NState, rule: &NRule, now: i64) {
        let keep = match rule.repeat {
            NRepeat::PerDay(max) => max,
            _ => 1,
        };
        let m = match state.memory.iter().position(|m| m.slot == rule.slot) {
            Some(i) => &mut state.memory[i],
            None => {
                state.memory.push(NMemory { slot: rule.slot, len: 0, times: [0; 3] });
                state.memory.last_mut().expect("just pushed")
            }
        };
        if (m.len as usize) < keep {
            m.len += 1;
        } else {
            m.times.copy_within(1..keep, 0);
        }
        m.times[m.len as usize - 1] = now;
    }

    fn decayed(state: &NState, now: i64) -> [f64; 2] {
        let d = |g: usize| state.value[g] * (-((now - state.at[g]) as f64) / HALF_LIFE_SECONDS[g]).exp2();
        [d(0), d(1)]
    }

    /// The total at `now`, within the model's bounds (0 to 100).
    fn total(state: &NState, values: [f64; 2]) -> f64 {
        (values[0] + values[1] + state.fit).clamp(0.0, 100.0)
    }

    /// Applies one event; returns (awards, threshold crossings).
    fn handle(&self, state: &mut NState, e: &NEvent, strings: &NStrings) -> (usize, usize) {
        let now = e.at.max(state.last);
        state.last = now;
        let mut values = None;
        let mut awards = 0;
        for rule in &self.rules[e.kind as usize] {
            if !Self::holds(&rule.cond, e, strings)
                || (rule.repeat != NRepeat::Every && !Self::allows(state, rule, now))
            {
                continue;
            }
            let v = values.get_or_insert_with(|| Self::decayed(state, now));
            let raw = v[0] + v[1];
            let points = if rule.points > 0.0 {
                rule.points.min((100.0 - raw).max(0.0))
            } else {
                rule.points.max((-raw).min(0.0))
            };
            let g = rule.group;
            let next = (v[g] + points).min(GROUP_CAP[g]).max(0.0);
            v[g] = next;
            state.value[g] = next;
            state.at[g] = now;
            if rule.repeat != NRepeat::Every {
                Self::record(state, rule, now);
            }
            awards += 1;
        }
        let total = Self::total(state, values.unwrap_or_else(|| Self::decayed(state, now)));
        let mut crossings = 0;
        for (i, &(enter, exit, rearm)) in LEVELS.iter().enumerate() {
            if !state.inside[i] && total >= enter {
                state.inside[i] = true;
                crossings += usize::from(rearm || !state.entered[i]);
                state.entered[i] = true;
            } else if state.inside[i] && total < exit {
                state.inside[i] = false;
                crossings += 1;
            }
        }
        (awards, crossings)
    }
}

/// The fit points of the six fit rules, by hand.
fn native_fit(schema: &Schema, contact: &Contact) -> f64 {
    let get = |name: &str| schema.attribute(contact, name);
    let int = |name: &str| match get(name) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    let text = |name: &str| match get(name) {
        Some(Value::String(s)) => Some(s.to_string()),
        _ => None,
    };
    let mut fit = 0.0;
    if int("company_size").is_some_and(|s| s >= 1000) {
        fit += 10.0;
    }
    if text("country").is_some_and(|c| ["US", "CA", "GB", "DE", "FR"].contains(&c.as_str())) {
        fit += 5.0;
    }
    if let Some(title) = text("job_title") {
        let title = title.to_lowercase();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let senior =
            ["vp", "vice president", "director", "head of", "chief", "cto", "ceo"].iter().any(|kw| {
                title.match_indices(kw).any(|(i, _)| {
                    !title[..i].chars().next_back().is_some_and(word)
                        && !title[i + kw.len()..].chars().next().is_some_and(word)
                })
            });
        if senior {
            fit += 15.0;
        }
    }
    if text("job_title").as_deref() == Some("Student") {
        fit -= 10.0;
    }
    if text("industry").as_deref() == Some("software") {
        fit += 5.0;
    }
    if matches!(get("annual_revenue_usd"), Some(Value::Double(r)) if *r > 50_000_000.0) {
        fit += 5.0;
    }
    fit
}

/// The native pass over the first `count` events of the stream.
#[inline(never)] // its own entry in profiles
fn run_native(
    model: &NativeModel,
    strings: &NStrings,
    stream: &Stream,
    states: &mut [NState],
    count: usize,
) -> Run {
    let mut run = Run::default();
    let a0 = allocs();
    let t0 = Instant::now();
    for e in &stream.native[..count.min(stream.native.len())] {
        let (awards, crossings) = model.handle(&mut states[e.contact as usize], e, strings);
        run.changes += awards;
        run.crossings += crossings;
        run.events += 1;
    }
    run.seconds = t0.elapsed().as_secs_f64();
    run.allocs = allocs() - a0;
    run
}

/// The documented tolerance between the native baseline's final scores and nurture's:
/// the native code uses the platform's `exp2` where nurture uses its own portable decay
/// arithmetic (both within about 1e-15 relative per factor), so scores agree to far
/// better than this.
const NATIVE_TOLERANCE: f64 = 1e-9;

/// The largest difference between native and nurture final scores at `at`.
fn native_difference(
    scorer: &Scorer,
    states: &[ContactScores],
    native: &[NState],
    at: i64,
    ts: Timestamp,
) -> f64 {
    states
        .iter()
        .zip(native)
        .map(|(s, n)| {
            let ours = scorer.value(s, 0, ts).unwrap_or(f64::NAN);
            let theirs = NativeModel::total(n, NativeModel::decayed(n, at.max(n.last)));
            let d = (ours - theirs).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}

/// The full engine state per contact for the quickstart's program: the funnel of
/// `examples/b2b_rules.json` over 90 days for `n` contacts, every event through
/// `Engine::handle_event` and each contact's due wake-ups through
/// `Engine::handle_timeout` before its next event and at the end, as the allocator
/// counts the states (their vector and every heap block they own). Returns (bytes per
/// contact, events).
fn quickstart_state_bytes(n: usize) -> (f64, usize) {
    let program = Program::from_json(workload::RULES_JSON).unwrap_or_else(|e| panic!("{}", e.render()));
    let engine = Engine::new(Arc::new(program));
    let schema = engine.program().schema().clone();
    let mut rng = Rng::new(0x0051_A7E5);
    let contacts = workload::contacts(&schema, n, &mut rng);
    let events = workload::funnel_events(&schema, n, 90, &mut rng);
    let number: std::collections::HashMap<&str, usize> =
        contacts.iter().enumerate().map(|(i, c)| (c.id().as_str(), i)).collect();
    let start = workload::start();
    let end = start.checked_add(Duration::from_days(90).expect("in range")).expect("in range");
    // Scratch buffers and the wake-up list are made first and left out of the count.
    let mut scratch = EngineScratch::default();
    let mut event_scratch = EngineScratch::default();
    let mut wakes: Vec<Option<Timestamp>> = vec![None; n];
    let before = live();
    let mut states: Vec<ContactState> = contacts.iter().map(|c| engine.new_state(c, start)).collect();
    let mut due =
        |c: usize, until: Timestamp, states: &mut Vec<ContactState>, wakes: &mut Vec<Option<Timestamp>>| {
            while let Some(w) = wakes[c].filter(|w| *w <= until) {
                let outcome =
                    engine.handle_timeout(&mut states[c], &contacts[c], w, &mut scratch).expect("in order");
                wakes[c] = outcome.next_wake;
            }
        };
    for event in &events {
        let c = number[event.contact().as_str()];
        due(c, event.at(), &mut states, &mut wakes);
        if let Ok(outcome) = engine.handle_event(&mut states[c], &contacts[c], event, &mut event_scratch) {
            wakes[c] = outcome.next_wake.or(wakes[c]);
        }
    }
    for c in 0..n {
        due(c, end, &mut states, &mut wakes);
    }
    let bytes = (live() - before) as f64 / n.max(1) as f64;
    black_box(&states);
    (bytes, events.len())
}
