//! The workload: schema, deterministic rule generator, input pools, and one emitter
//! per rule syntax (CEL for nurture and cel-rust, rhai, zen, evalexpr).

/// SplitMix64: tiny, seeded, deterministic.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Skewed toward small indices (min of two draws): popular values first.
    pub fn skewed(&mut self, n: usize) -> usize {
        self.below(n).min(self.below(n))
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    S,
    I,
    D,
}

impl Kind {
    pub fn nurture_type(self) -> &'static str {
        match self {
            Kind::S => "string",
            Kind::I => "int",
            Kind::D => "double",
        }
    }
}

/// Contact attributes, in this order everywhere (native struct fields follow it).
pub const CONTACT: [(&str, Kind); 9] = [
    ("job_title", Kind::S),
    ("seniority", Kind::S),
    ("country", Kind::S),
    ("industry", Kind::S),
    ("lifecycle_stage", Kind::S),
    ("company_size", Kind::I),
    ("visits", Kind::I),
    ("annual_revenue", Kind::D),
    ("fit_score", Kind::D),
];

/// The property kinds of every event type: a discriminator string (url, form,
/// campaign...), a second string, an int and a double.
pub const EVENT_KINDS: [Kind; 4] = [Kind::S, Kind::S, Kind::I, Kind::D];

/// 20 event types and their four property names.
pub const EVENT_TYPES: [(&str, [&str; 4]); 20] = [
    ("page_visit", ["url", "utm_source", "seconds_on_page", "scroll_depth"]),
    ("form_submit", ["form", "source", "fields_filled", "completion"]),
    ("asset_download", ["asset", "channel", "size_kb", "rating"]),
    ("email_clicked", ["campaign", "link_source", "position", "ctr"]),
    ("email_opened", ["campaign", "client", "opens", "read_ratio"]),
    ("webinar_attended", ["webinar", "source", "minutes", "engagement"]),
    ("webinar_registered", ["webinar", "source", "days_ahead", "fit"]),
    ("trial_started", ["plan", "source", "seats", "mrr"]),
    ("trial_activity", ["feature", "source", "actions", "usage"]),
    ("demo_requested", ["product", "source", "team_size", "budget_k"]),
    ("meeting_booked", ["meeting_type", "source", "duration", "score"]),
    ("chat_started", ["topic", "source", "messages", "sentiment"]),
    ("ad_clicked", ["ad_campaign", "network", "impressions", "cpc"]),
    ("social_engaged", ["post", "network", "reactions", "reach_k"]),
    ("event_checked_in", ["event_name", "source", "sessions", "nps"]),
    ("survey_completed", ["survey", "source", "answers", "csat"]),
    ("invoice_paid", ["product", "channel", "quantity", "amount"]),
    ("support_ticket", ["category", "channel", "priority", "resolution_h"]),
    ("app_installed", ["app", "store", "version_major", "rating"]),
    ("referral_sent", ["program", "channel", "invites", "reward"]),
];

pub const URLS: [&str; 8] =
    ["/pricing", "/docs", "/blog/launch", "/features", "/careers", "/", "/contact", "/integrations"];
pub const DISC_WORDS: [&str; 8] = [
    "spring-launch",
    "q3-webinar",
    "pricing-guide",
    "roi-calculator",
    "case-study",
    "product-tour",
    "newsletter",
    "onboarding",
];
pub const SOURCES: [&str; 6] = ["google", "linkedin", "twitter", "newsletter", "direct", "partner"];
pub const SOURCE_PREFIXES: [&str; 4] = ["goo", "lin", "news", "dir"];
pub const TITLES: [&str; 10] = [
    "VP Marketing",
    "VP of Sales",
    "Director of Engineering",
    "Head of Growth",
    "CTO",
    "Marketing Manager",
    "Software Engineer",
    "Data Analyst",
    "Chief Executive Officer",
    "Sales Director",
];
pub const TITLE_WORDS: [&str; 6] = ["VP", "Director", "Head", "Manager", "Chief", "Engineer"];
pub const SENIORITY: [&str; 4] = ["executive", "director", "manager", "individual"];
pub const COUNTRIES: [&str; 10] = ["US", "CA", "GB", "DE", "FR", "NL", "SE", "JP", "BR", "IN"];
pub const INDUSTRIES: [&str; 6] =
    ["software", "finance", "healthcare", "retail", "manufacturing", "education"];
pub const STAGES: [&str; 6] = ["subscriber", "lead", "mql", "sql", "opportunity", "customer"];
const SIZES: [i64; 9] = [5, 20, 50, 120, 300, 800, 1500, 5000, 20000];

/// Values of the string attributes, indexed like `CONTACT`.
fn contact_pool(field: usize) -> &'static [&'static str] {
    match field {
        0 => &TITLES,
        1 => &SENIORITY,
        2 => &COUNTRIES,
        3 => &INDUSTRIES,
        4 => &STAGES,
        _ => unreachable!(),
    }
}

pub fn disc_pool(ty: usize) -> &'static [&'static str] {
    if ty == 0 {
        &URLS
    } else {
        &DISC_WORDS
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum V {
    S(String),
    I(i64),
    D(f64),
}

impl V {
    pub fn s(&self) -> &str {
        match self {
            V::S(s) => s,
            _ => panic!("not a string"),
        }
    }
    pub fn i(&self) -> i64 {
        match self {
            V::I(i) => *i,
            _ => panic!("not an int"),
        }
    }
    pub fn d(&self) -> f64 {
        match self {
            V::D(d) => *d,
            _ => panic!("not a double"),
        }
    }
}

/// One contact: values in `CONTACT` order.
#[derive(Clone, Debug)]
pub struct ContactData(pub Vec<V>);

/// One event: its type and its four property values.
#[derive(Clone, Debug)]
pub struct EventData {
    pub ty: usize,
    pub props: [V; 4],
}

/// One prepared input: an event and the contact it is about.
#[derive(Clone, Debug)]
pub struct Input {
    pub contact: ContactData,
    pub event: EventData,
}

pub fn random_contact(rng: &mut Rng) -> ContactData {
    ContactData(vec![
        V::S(rng.pick(&TITLES).to_string()),
        V::S(rng.pick(&SENIORITY).to_string()),
        V::S(COUNTRIES[rng.skewed(COUNTRIES.len())].to_string()),
        V::S(rng.pick(&INDUSTRIES).to_string()),
        V::S(rng.pick(&STAGES).to_string()),
        V::I(*rng.pick(&SIZES) + rng.below(10) as i64),
        V::I(rng.below(30) as i64),
        // Binary fractions: exact in f64 and in zen's decimals; thresholds never tie.
        V::D(rng.below(4000) as f64 * 12_500.0 + 0.5),
        V::D(rng.below(400) as f64 * 0.25),
    ])
}

pub fn random_event(rng: &mut Rng, ty: usize) -> EventData {
    EventData {
        ty,
        props: [
            V::S(disc_pool(ty)[rng.skewed(8)].to_string()),
            V::S(rng.pick(&SOURCES).to_string()),
            V::I(rng.below(600) as i64),
            V::D(rng.below(400) as f64 * 0.25),
        ],
    }
}

/// A field reference: contact attribute or event property (index into the type's 4).
#[derive(Clone, Copy, Debug)]
pub enum F {
    C(usize),
    E(usize),
}

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn sym(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Cond {
    Cmp(F, Op, V),
    In(F, Vec<String>),
    Contains(F, String),
    StartsWith(F, String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Clone, Debug)]
pub struct RuleSpec {
    pub id: String,
    pub ty: usize,
    pub cond: Cond,
}

/// The rule4 scenario: one rule, four conditions, on `page_visit`.
pub fn rule4() -> RuleSpec {
    RuleSpec {
        id: "enterprise-vp-on-pricing".into(),
        ty: 0,
        cond: Cond::And(vec![
            Cond::Cmp(F::E(0), Op::Eq, V::S("/pricing".into())),
            Cond::Cmp(F::C(5), Op::Ge, V::I(100)),
            Cond::In(F::C(2), vec!["US".into(), "CA".into(), "GB".into()]),
            Cond::Contains(F::C(0), "VP".into()),
        ]),
    }
}

/// rule4 inputs: about half hold, the others fail on the first condition (the url).
pub fn rule4_inputs(rng: &mut Rng, n: usize) -> Vec<Input> {
    (0..n)
        .map(|_| {
            if rng.chance(50) {
                let mut c = random_contact(rng);
                c.0[0] = V::S(rng.pick(&["VP Marketing", "VP of Sales", "SVP Operations"]).to_string());
                c.0[2] = V::S(rng.pick(&["US", "CA", "GB"]).to_string());
                c.0[5] = V::I(100 + rng.below(20_000) as i64);
                let mut e = random_event(rng, 0);
                e.props[0] = V::S("/pricing".into());
                Input { contact: c, event: e }
            } else {
                let c = random_contact(rng);
                let mut e = random_event(rng, 0);
                e.props[0] = V::S(URLS[1 + rng.below(URLS.len() - 1)].to_string());
                Input { contact: c, event: e }
            }
        })
        .collect()
}

/// A condition that is not the discriminator and not an `||` group.
fn leaf(rng: &mut Rng) -> Cond {
    match rng.below(9) {
        0 | 1 => {
            let field = 1 + rng.below(4);
            let value = V::S(rng.pick(contact_pool(field)).to_string());
            Cond::Cmp(F::C(field), if rng.below(2) == 0 { Op::Eq } else { Op::Ne }, value)
        }
        2 => {
            let op = *rng.pick(&[Op::Ge, Op::Gt, Op::Lt, Op::Le]);
            if rng.chance(60) {
                Cond::Cmp(F::C(5), op, V::I(*rng.pick(&[50, 100, 500, 1000, 5000])))
            } else {
                Cond::Cmp(F::C(6), op, V::I(*rng.pick(&[1, 3, 5, 10])))
            }
        }
        3 => {
            let op = *rng.pick(&[Op::Ge, Op::Gt, Op::Lt, Op::Le]);
            if rng.chance(50) {
                Cond::Cmp(
                    F::C(7),
                    op,
                    V::D(*rng.pick(&[1_000_000.0, 5_000_000.0, 10_000_000.0, 25_000_000.0])),
                )
            } else {
                Cond::Cmp(F::C(8), op, V::D(*rng.pick(&[25.5, 50.5, 75.5])))
            }
        }
        4 => {
            let field = *rng.pick(&[2, 2, 3, 4]);
            let pool = contact_pool(field);
            let want = if field == 2 { 3 + rng.below(3) } else { 2 + rng.below(2) };
            let mut items: Vec<String> = Vec::new();
            while items.len() < want {
                let v = rng.pick(pool).to_string();
                if !items.contains(&v) {
                    items.push(v);
                }
            }
            Cond::In(F::C(field), items)
        }
        5 => {
            if rng.chance(75) {
                Cond::Contains(F::C(0), rng.pick(&TITLE_WORDS).to_string())
            } else {
                Cond::StartsWith(F::C(0), rng.pick(&["VP", "Head", "Chief"]).to_string())
            }
        }
        6 => {
            if rng.chance(50) {
                let op = if rng.chance(75) { Op::Eq } else { Op::Ne };
                Cond::Cmp(F::E(1), op, V::S(rng.pick(&SOURCES).to_string()))
            } else {
                Cond::StartsWith(F::E(1), rng.pick(&SOURCE_PREFIXES).to_string())
            }
        }
        7 => {
            let op = *rng.pick(&[Op::Ge, Op::Gt, Op::Lt, Op::Le]);
            Cond::Cmp(F::E(2), op, V::I(*rng.pick(&[10, 30, 60, 120, 300])))
        }
        _ => {
            let op = *rng.pick(&[Op::Ge, Op::Gt, Op::Lt, Op::Le]);
            Cond::Cmp(F::E(3), op, V::D(*rng.pick(&[10.5, 50.5, 90.5])))
        }
    }
}

/// 200 rules over the 20 event types (10 each, interleaved in declaration order).
/// About 65% start with an equality discriminator on the event's first property
/// (`event.url == "/pricing"`, `event.campaign in [...]`), as real rule sets do.
pub fn rules200(rng: &mut Rng) -> Vec<RuleSpec> {
    (0..200)
        .map(|k| {
            let ty = k % EVENT_TYPES.len();
            let mut parts = Vec::new();
            let pool = disc_pool(ty);
            let d = rng.below(100);
            if d < 55 {
                parts.push(Cond::Cmp(F::E(0), Op::Eq, V::S(pool[rng.skewed(8)].to_string())));
            } else if d < 65 {
                let a = rng.skewed(8);
                let b = (a + 1 + rng.below(7)) % 8;
                parts.push(Cond::In(F::E(0), vec![pool[a].to_string(), pool[b].to_string()]));
            }
            let extra = 1 + rng.below(3);
            for _ in 0..extra {
                if rng.chance(15) {
                    parts.push(Cond::Or(vec![leaf(rng), leaf(rng)]));
                } else {
                    parts.push(leaf(rng));
                }
            }
            let cond = if parts.len() == 1 { parts.pop().unwrap() } else { Cond::And(parts) };
            RuleSpec { id: format!("r{k:03}"), ty, cond }
        })
        .collect()
}

/// 256 (or n) events over the 20 types, each with a contact from a pool of 64.
pub fn rules200_inputs(rng: &mut Rng, n: usize) -> Vec<Input> {
    let contacts: Vec<ContactData> = (0..64).map(|_| random_contact(rng)).collect();
    (0..n)
        .map(|_| {
            let ty = rng.below(EVENT_TYPES.len());
            Input { contact: contacts[rng.below(contacts.len())].clone(), event: random_event(rng, ty) }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// CEL: nurture and cel-rust.
    Cel,
    Rhai,
    Zen,
    Evalexpr,
}

fn field_name(f: F, ty: usize, syn: Syntax) -> String {
    let (scope, name) = match f {
        F::C(i) => ("contact", CONTACT[i].0),
        F::E(i) => ("event", EVENT_TYPES[ty].1[i]),
    };
    match syn {
        Syntax::Evalexpr => format!("{scope}_{name}"),
        _ => format!("{scope}.{name}"),
    }
}

fn lit(v: &V) -> String {
    match v {
        V::S(s) => format!("\"{s}\""),
        V::I(i) => i.to_string(),
        V::D(d) => format!("{d:?}"),
    }
}

fn str_list(items: &[String], open: &str, close: &str) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("{open}{}{close}", inner.join(", "))
}

/// The rule's condition in one syntax.
pub fn emit(c: &Cond, ty: usize, syn: Syntax) -> String {
    let (and, or) = match syn {
        Syntax::Zen => (" and ", " or "),
        _ => (" && ", " || "),
    };
    match c {
        Cond::Cmp(f, op, v) => format!("{} {} {}", field_name(*f, ty, syn), op.sym(), lit(v)),
        Cond::In(f, items) => match syn {
            Syntax::Evalexpr => {
                format!("contains({}, {})", str_list(items, "(", ")"), field_name(*f, ty, syn))
            }
            _ => format!("{} in {}", field_name(*f, ty, syn), str_list(items, "[", "]")),
        },
        Cond::Contains(f, s) => match syn {
            Syntax::Cel | Syntax::Rhai => format!("{}.contains(\"{s}\")", field_name(*f, ty, syn)),
            Syntax::Zen => format!("contains({}, \"{s}\")", field_name(*f, ty, syn)),
            Syntax::Evalexpr => format!("str::contains({}, \"{s}\")", field_name(*f, ty, syn)),
        },
        Cond::StartsWith(f, s) => match syn {
            Syntax::Cel => format!("{}.startsWith(\"{s}\")", field_name(*f, ty, syn)),
            Syntax::Rhai => format!("{}.starts_with(\"{s}\")", field_name(*f, ty, syn)),
            Syntax::Zen => format!("startsWith({}, \"{s}\")", field_name(*f, ty, syn)),
            Syntax::Evalexpr => format!("str::starts_with({}, \"{s}\")", field_name(*f, ty, syn)),
        },
        Cond::And(items) => items.iter().map(|i| wrap(i, ty, syn)).collect::<Vec<_>>().join(and),
        Cond::Or(items) => items.iter().map(|i| wrap(i, ty, syn)).collect::<Vec<_>>().join(or),
    }
}

/// Nested `&&`/`||` groups get parentheses.
fn wrap(c: &Cond, ty: usize, syn: Syntax) -> String {
    match c {
        Cond::And(_) | Cond::Or(_) => format!("({})", emit(c, ty, syn)),
        _ => emit(c, ty, syn),
    }
}

/// Reference semantics, straight from the spec (used to cross-check the native
/// closures too).
pub fn reference_eval(c: &Cond, input: &Input) -> bool {
    let get = |f: &F| match f {
        F::C(i) => &input.contact.0[*i],
        F::E(i) => &input.event.props[*i],
    };
    match c {
        Cond::Cmp(f, op, v) => {
            let x = get(f);
            let ord = match (x, v) {
                (V::S(a), V::S(b)) => a.as_str().partial_cmp(b.as_str()),
                (V::I(a), V::I(b)) => a.partial_cmp(b),
                (V::D(a), V::D(b)) => a.partial_cmp(b),
                _ => panic!("type mismatch in generated rule"),
            }
            .expect("comparable");
            use std::cmp::Ordering::*;
            match op {
                Op::Eq => ord == Equal,
                Op::Ne => ord != Equal,
                Op::Lt => ord == Less,
                Op::Le => ord != Greater,
                Op::Gt => ord == Greater,
                Op::Ge => ord != Less,
            }
        }
        Cond::In(f, items) => items.iter().any(|s| s == get(f).s()),
        Cond::Contains(f, s) => get(f).s().contains(s.as_str()),
        Cond::StartsWith(f, s) => get(f).s().starts_with(s.as_str()),
        Cond::And(items) => items.iter().all(|i| reference_eval(i, input)),
        Cond::Or(items) => items.iter().any(|i| reference_eval(i, input)),
    }
}

pub fn describe(input: &Input) -> String {
    let fmt = |v: &V| match v {
        V::S(s) => format!("{s:?}"),
        V::I(i) => i.to_string(),
        V::D(d) => format!("{d:?}"),
    };
    let c: Vec<String> =
        CONTACT.iter().zip(&input.contact.0).map(|((n, _), v)| format!("{n}={}", fmt(v))).collect();
    let (tn, props) = EVENT_TYPES[input.event.ty];
    let e: Vec<String> =
        props.iter().zip(&input.event.props).map(|(n, v)| format!("{n}={}", fmt(v))).collect();
    format!("event {tn} {{{}}} contact {{{}}}", e.join(", "), c.join(", "))
}

/// Seeds, shared by the run and by build.rs (which writes the native rules).
pub const RULE4_SEED: u64 = 0x5EED_0004;
pub const RULES200_SEED: u64 = 0x5EED_0200;

/// The condition as Rust source over `c: &NContact` and `e: &NEvent` (build.rs
/// writes one function per rule with it: the "hand-written" native rules).
pub fn emit_rust(c: &Cond) -> String {
    fn field(f: F) -> String {
        match f {
            F::C(i) => format!("c.{}", CONTACT[i].0),
            F::E(i) => format!("e.p{i}"),
        }
    }
    match c {
        Cond::Cmp(f, op, v) => format!("{} {} {}", field(*f), op.sym(), lit(v)),
        Cond::In(f, items) => {
            let alts: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
            format!("matches!({}.as_str(), {})", field(*f), alts.join(" | "))
        }
        Cond::Contains(f, s) => format!("{}.contains(\"{s}\")", field(*f)),
        Cond::StartsWith(f, s) => format!("{}.starts_with(\"{s}\")", field(*f)),
        Cond::And(items) => {
            items.iter().map(|i| format!("({})", emit_rust(i))).collect::<Vec<_>>().join(" && ")
        }
        Cond::Or(items) => {
            items.iter().map(|i| format!("({})", emit_rust(i))).collect::<Vec<_>>().join(" || ")
        }
    }
}
