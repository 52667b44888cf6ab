//! The schema: the contact fields and event types a host declares, with their types.
//!
//! Names are resolved to dense slots here, once; the compiled program and the records
//! it reads address fields by slot, never by name.

use std::sync::Arc;

use hashbrown::HashMap;

use crate::diagnostic::{did_you_mean, Code, CompileError, Diagnostic};
use crate::id::{ContactId, EventId, EventTypeIndex, EventTypeName};
use crate::time::Timestamp;
use crate::value::{Type, Value};

/// Dense index of a field within its record (contact attributes or one event type's
/// properties).
pub(crate) type Slot = u16;

/// An ordered set of named, typed fields.
#[derive(Clone, Debug, Default)]
pub struct FieldSet {
    names: Vec<Arc<str>>,
    types: Vec<Type>,
    index: HashMap<Arc<str>, Slot>,
}

impl FieldSet {
    pub(crate) fn add(&mut self, name: &str, ty: Type) -> Result<Slot, String> {
        if self.index.contains_key(name) {
            return Err(format!("field `{name}` is declared twice"));
        }
        let slot = Slot::try_from(self.names.len()).map_err(|_| format!("more than {} fields", Slot::MAX))?;
        let name: Arc<str> = Arc::from(name);
        self.index.insert(name.clone(), slot);
        self.names.push(name);
        self.types.push(ty);
        Ok(slot)
    }

    /// The slot of a field.
    pub(crate) fn slot(&self, name: &str) -> Option<Slot> {
        self.index.get(name).copied()
    }

    /// The name of the field in a slot.
    pub(crate) fn name(&self, slot: Slot) -> &Arc<str> {
        &self.names[usize::from(slot)]
    }

    /// The declared type of the field in a slot.
    pub(crate) fn ty(&self, slot: Slot) -> &Type {
        &self.types[usize::from(slot)]
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Field names and types in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Type)> {
        self.names.iter().map(|n| &**n).zip(self.types.iter())
    }

    /// The closest declared name to a misspelled one.
    pub(crate) fn suggest(&self, name: &str) -> Option<String> {
        did_you_mean(name, self.names.iter().map(|n| &**n))
    }
}

/// One declared event type and its properties.
#[derive(Clone, Debug)]
pub struct EventType {
    name: EventTypeName,
    properties: FieldSet,
}

impl EventType {
    /// The event type's name.
    pub fn name(&self) -> &EventTypeName {
        &self.name
    }

    /// Its declared properties.
    pub fn properties(&self) -> &FieldSet {
        &self.properties
    }
}

/// The fields and event types a host declares.
///
/// ```
/// use nurture::{Schema, Type};
/// let schema = Schema::builder()
///     .contact_field("job_title", Type::String)
///     .contact_field("company_size", Type::Int)
///     .event_type("page_visit", [("url", Type::String)])
///     .build()?;
/// assert_eq!(schema.event_types().count(), 1);
/// # Ok::<(), nurture::CompileError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Schema {
    contact: FieldSet,
    events: Vec<EventType>,
    event_index: HashMap<Arc<str>, EventTypeIndex>,
}

impl Schema {
    /// Starts declaring a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder::default()
    }

    /// The contact fields.
    pub fn contact_fields(&self) -> &FieldSet {
        &self.contact
    }

    /// A contact's attribute by field name (`None`: no such field, or absent).
    ///
    /// ```
    /// use nurture::{Schema, Type, Value};
    /// let schema = Schema::builder().contact_field("plan", Type::String).build()?;
    /// let contact = schema.contact("c1").set("plan", "pro")?.build();
    /// assert_eq!(schema.attribute(&contact, "plan"), Some(&Value::from("pro")));
    /// assert_eq!(schema.attribute(&contact, "seats"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attribute<'c>(&self, contact: &'c Contact, name: &str) -> Option<&'c Value> {
        contact.get(self.contact.slot(name)?)
    }

    /// A contact as JSON, for a host's store: `{"id": ..., "attributes": {...}}` with
    /// the fields present (timestamps and durations as text). Read it back with
    /// [`Schema::contact_from_json`].
    ///
    /// ```
    /// use nurture::{Schema, Timestamp, Type};
    /// let schema = Schema::builder()
    ///     .contact_field("plan", Type::String)
    ///     .contact_field("renews_at", Type::Timestamp)
    ///     .build()?;
    /// let t = Timestamp::parse("2026-04-03T10:00:00Z")?;
    /// let contact = schema.contact("c1").set("plan", "pro")?.set("renews_at", t)?.build();
    /// let json = schema.contact_to_json(&contact)?;
    /// assert_eq!(json["attributes"]["renews_at"], "2026-04-03T10:00:00Z");
    /// assert_eq!(schema.contact_from_json(&json)?, contact);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecordError::TypeMismatch`] for a value JSON cannot hold (a non-finite double),
    /// [`RecordError::OtherSchema`] for a contact built against another schema (carry it
    /// over with [`Engine::adopt_contact`](crate::engine::Engine::adopt_contact)).
    pub fn contact_to_json(&self, contact: &Contact) -> Result<serde_json::Value, RecordError> {
        let slots = contact.attributes().slots().len();
        if slots != self.contact.len() {
            return Err(RecordError::OtherSchema { fields: self.contact.len(), slots });
        }
        let mut attributes = serde_json::Map::new();
        for (slot, value) in contact.attributes().slots().iter().enumerate() {
            let Some(value) = value else {
                continue;
            };
            let name = self.contact.name(slot as Slot).to_string();
            let json = value.to_json().ok_or_else(|| RecordError::TypeMismatch {
                name: name.clone(),
                expected: self.contact.ty(slot as Slot).clone(),
                found: "value JSON cannot hold".to_string(),
            })?;
            attributes.insert(name, json);
        }
        Ok(serde_json::json!({"id": contact.id().as_str(), "attributes": attributes}))
    }

    /// Reads a contact written by [`Schema::contact_to_json`].
    ///
    /// # Errors
    ///
    /// [`RecordError::UnknownField`] for a field the schema does not declare, and
    /// [`RecordError::TypeMismatch`] for a value of the wrong type or a missing id.
    pub fn contact_from_json(&self, json: &serde_json::Value) -> Result<Contact, RecordError> {
        let id =
            json.get("id").and_then(serde_json::Value::as_str).ok_or_else(|| RecordError::TypeMismatch {
                name: "id".to_string(),
                expected: Type::String,
                found: "a missing or non-string id".to_string(),
            })?;
        let mut contact = Contact { id: ContactId::from(id), attributes: Record::new(self.contact.len()) };
        if let Some(attributes) = json.get("attributes").and_then(serde_json::Value::as_object) {
            for (name, value) in attributes {
                let slot = self.contact.slot(name).ok_or_else(|| RecordError::UnknownField {
                    name: name.clone(),
                    did_you_mean: self.contact.suggest(name),
                })?;
                let ty = self.contact.ty(slot);
                let value =
                    Value::from_json(value, ty).filter(|v| !matches!(v, Value::Null)).ok_or_else(|| {
                        RecordError::TypeMismatch {
                            name: name.clone(),
                            expected: ty.clone(),
                            found: "JSON of another type".into(),
                        }
                    })?;
                contact.attributes.put(slot, Some(value));
            }
        }
        Ok(contact)
    }

    /// An event as JSON: `{"id", "contact", "type", "at", "properties"}`, with timestamps
    /// and durations as strings ([`Value::to_json`]); the inverse of
    /// [`Schema::event_from_json`]. For hosts that carry events over a wire or a log.
    ///
    /// ```
    /// use nurture::{Schema, Timestamp, Type};
    /// let schema = Schema::builder().event_type("page_visit", [("url", Type::String)]).build()?;
    /// let t = Timestamp::parse("2026-04-03T10:00:00Z")?;
    /// let event = schema.event("e1", "c1", "page_visit", t)?.set("url", "/pricing")?.build();
    /// let json = schema.event_to_json(&event)?;
    /// assert_eq!(json["properties"]["url"], "/pricing");
    /// assert_eq!(schema.event_from_json(&json)?, event);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`RecordError::UnknownEventType`] for an event of a type this schema does not
    /// declare, and [`RecordError::TypeMismatch`] for a value JSON cannot hold.
    pub fn event_to_json(&self, event: &Event) -> Result<serde_json::Value, RecordError> {
        let def = self.event_type(event.event_type()).ok_or_else(|| RecordError::UnknownEventType {
            name: event.type_name().as_str().to_string(),
            did_you_mean: None,
        })?;
        let mut properties = serde_json::Map::new();
        for (slot, value) in event.properties().slots().iter().enumerate() {
            let Some(value) = value else {
                continue;
            };
            let name = def.properties.name(slot as Slot).to_string();
            let json = value.to_json().ok_or_else(|| RecordError::TypeMismatch {
                name: name.clone(),
                expected: def.properties.ty(slot as Slot).clone(),
                found: "value JSON cannot hold".to_string(),
            })?;
            properties.insert(name, json);
        }
        Ok(serde_json::json!({
            "id": event.id().as_str(),
            "contact": event.contact().as_str(),
            "type": event.type_name().as_str(),
            "at": event.at().to_string(),
            "properties": properties,
        }))
    }

    /// Reads an event written by [`Schema::event_to_json`].
    ///
    /// # Errors
    ///
    /// [`RecordError::UnknownEventType`] for an undeclared type,
    /// [`RecordError::UnknownField`] for an undeclared property, and
    /// [`RecordError::TypeMismatch`] for a value of the wrong type or a missing or
    /// malformed `id`, `contact`, `type` or `at`.
    pub fn event_from_json(&self, json: &serde_json::Value) -> Result<Event, RecordError> {
        let text = |name: &str| {
            json.get(name).and_then(serde_json::Value::as_str).ok_or_else(|| RecordError::TypeMismatch {
                name: name.to_string(),
                expected: Type::String,
                found: format!("a missing or non-string `{name}`"),
            })
        };
        let at = text("at")?;
        let at = Timestamp::parse(at).map_err(|e| RecordError::TypeMismatch {
            name: "at".to_string(),
            expected: Type::Timestamp,
            found: e.to_string(),
        })?;
        let mut builder = self.event(text("id")?, text("contact")?, text("type")?, at)?;
        if let Some(properties) = json.get("properties").and_then(serde_json::Value::as_object) {
            for (name, value) in properties {
                let slot = builder.fields.slot(name).ok_or_else(|| RecordError::UnknownField {
                    name: name.clone(),
                    did_you_mean: builder.fields.suggest(name),
                })?;
                let ty = builder.fields.ty(slot);
                let value =
                    Value::from_json(value, ty).filter(|v| !matches!(v, Value::Null)).ok_or_else(|| {
                        RecordError::TypeMismatch {
                            name: name.clone(),
                            expected: ty.clone(),
                            found: "JSON of another type".into(),
                        }
                    })?;
                builder.event.properties.put(slot, Some(value));
            }
        }
        Ok(builder.build())
    }

    /// The declared event types in declaration order.
    pub fn event_types(&self) -> impl Iterator<Item = &EventType> {
        self.events.iter()
    }

    /// Resolves an event type name.
    pub fn event_type_index(&self, name: &str) -> Option<EventTypeIndex> {
        self.event_index.get(name).copied()
    }

    /// The event type at an index.
    pub fn event_type(&self, index: EventTypeIndex) -> Option<&EventType> {
        self.events.get(index.get())
    }

    pub(crate) fn suggest_event_type(&self, name: &str) -> Option<String> {
        did_you_mean(name, self.events.iter().map(|e| e.name.as_str()))
    }

    /// Starts building a contact's attribute record.
    pub fn contact(&self, id: impl Into<ContactId>) -> ContactBuilder<'_> {
        ContactBuilder {
            fields: &self.contact,
            contact: Contact { id: id.into(), attributes: Record::new(self.contact.len()) },
        }
    }

    /// Starts building an event of a declared type.
    ///
    /// # Errors
    ///
    /// [`RecordError::UnknownEventType`] when the schema does not declare the type.
    pub fn event(
        &self,
        id: impl Into<EventId>,
        contact: impl Into<ContactId>,
        event_type: &str,
        at: Timestamp,
    ) -> Result<EventBuilder<'_>, RecordError> {
        let index = self.event_type_index(event_type).ok_or_else(|| RecordError::UnknownEventType {
            name: event_type.to_string(),
            did_you_mean: self.suggest_event_type(event_type),
        })?;
        let def = &self.events[index.get()];
        Ok(EventBuilder {
            fields: &def.properties,
            event: Event {
                id: id.into(),
                contact: contact.into(),
                event_type: index,
                type_name: def.name.clone(),
                at,
                properties: Record::new(def.properties.len()),
            },
        })
    }
}

/// Declares a [`Schema`] (`C-BUILDER`).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SchemaBuilder {
    contact: Vec<(String, Type)>,
    events: Vec<(String, Vec<(String, Type)>)>,
}

impl SchemaBuilder {
    /// Declares a contact field.
    pub fn contact_field(mut self, name: impl Into<String>, ty: Type) -> SchemaBuilder {
        self.contact.push((name.into(), ty));
        self
    }

    /// Declares an event type and its properties.
    pub fn event_type<N: Into<String>>(
        mut self,
        name: impl Into<String>,
        properties: impl IntoIterator<Item = (N, Type)>,
    ) -> SchemaBuilder {
        let props = properties.into_iter().map(|(n, t)| (n.into(), t)).collect();
        self.events.push((name.into(), props));
        self
    }

    /// Checks the declarations and builds the schema.
    ///
    /// # Errors
    ///
    /// Every duplicate or invalid name, at once.
    pub fn build(self) -> Result<Schema, CompileError> {
        let mut diagnostics = Vec::new();
        let mut schema = Schema::default();
        for (name, ty) in &self.contact {
            check_name(name, "/schema/contact", &mut diagnostics);
            if let Err(message) = schema.contact.add(name, ty.clone()) {
                diagnostics.push(duplicate(message, format!("/schema/contact/{name}")));
            }
        }
        for (name, props) in self.events {
            let path = format!("/schema/events/{name}");
            check_name(&name, "/schema/events", &mut diagnostics);
            let mut properties = FieldSet::default();
            for (prop, ty) in &props {
                check_name(prop, &path, &mut diagnostics);
                if let Err(message) = properties.add(prop, ty.clone()) {
                    diagnostics.push(duplicate(message, format!("{path}/{prop}")));
                }
            }
            let key: Arc<str> = Arc::from(name.as_str());
            if schema.event_index.contains_key(&key) {
                diagnostics.push(duplicate(format!("event type `{name}` is declared twice"), path));
                continue;
            }
            let Ok(index) = u32::try_from(schema.events.len()) else {
                diagnostics.push(Diagnostic::new(Code::LimitExceeded, "too many event types"));
                break;
            };
            schema.event_index.insert(key, EventTypeIndex(index));
            schema.events.push(EventType { name: EventTypeName::from(name), properties });
        }
        if diagnostics.is_empty() {
            Ok(schema)
        } else {
            Err(CompileError::new(diagnostics))
        }
    }
}

fn duplicate(message: String, path: String) -> Diagnostic {
    Diagnostic::new(Code::DuplicateId, message)
        .with_path(crate::diagnostic::pointer_path(&path))
        .with_help("remove or rename one of the declarations")
}

/// Whether `name` is a CEL identifier.
pub(crate) fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names are CEL identifiers so that expressions can reach them with `.name`.
fn check_name(name: &str, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    if !is_name(name) {
        diagnostics.push(invalid_name(name, path));
    }
}

/// Why `name`, declared at `path`, cannot be used.
pub(crate) fn invalid_name(name: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("`{name}` is not a valid name"))
        .with_path(path.to_string())
        .with_help("names start with a letter or `_` and contain only letters, digits and `_`")
}

/// Slot-indexed values of one record; `None` marks a field that is absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    values: Box<[Option<Value>]>,
}

impl Record {
    pub(crate) fn new(len: usize) -> Record {
        Record { values: vec![None; len].into_boxed_slice() }
    }

    /// Replaces a slot's value (already of the field's type); `false` for no such slot.
    pub(crate) fn put(&mut self, slot: Slot, value: Option<Value>) -> bool {
        match self.values.get_mut(slot as usize) {
            Some(v) => {
                *v = value;
                true
            }
            None => false,
        }
    }

    pub(crate) fn slots(&self) -> &[Option<Value>] {
        &self.values
    }

    pub(crate) fn set(&mut self, fields: &FieldSet, name: &str, value: Value) -> Result<(), RecordError> {
        let slot = fields.slot(name).ok_or_else(|| RecordError::UnknownField {
            name: name.to_string(),
            did_you_mean: fields.suggest(name),
        })?;
        let expected = fields.ty(slot);
        let value = coerce(value, expected).map_err(|value| RecordError::TypeMismatch {
            name: name.to_string(),
            expected: expected.clone(),
            found: value.kind().to_string(),
        })?;
        self.values[usize::from(slot)] = Some(value);
        Ok(())
    }
}

/// Checks a value against a declared type; an `int` is accepted for a `double` field.
fn coerce(value: Value, expected: &Type) -> Result<Value, Value> {
    match (value, expected) {
        (Value::Int(i), Type::Double) => Ok(Value::Double(i as f64)),
        (value, expected) if value.has_type(expected) => Ok(value),
        (value, _) => Err(value),
    }
}

/// A contact: its id and its attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    id: ContactId,
    attributes: Record,
}

impl Contact {
    /// The contact's id.
    pub fn id(&self) -> &ContactId {
        &self.id
    }

    /// The attribute record.
    pub fn attributes(&self) -> &Record {
        &self.attributes
    }

    /// An attribute's value by slot (`None` when absent).
    pub(crate) fn get(&self, slot: Slot) -> Option<&Value> {
        self.attributes.slots().get(slot as usize).and_then(Option::as_ref)
    }

    /// Replaces an attribute by slot; `false` for no such slot.
    pub(crate) fn put(&mut self, slot: Slot, value: Option<Value>) -> bool {
        self.attributes.put(slot, value)
    }
}

/// Builds a [`Contact`] against a schema.
#[derive(Debug)]
#[must_use]
pub struct ContactBuilder<'s> {
    fields: &'s FieldSet,
    contact: Contact,
}

impl ContactBuilder<'_> {
    /// Sets an attribute.
    ///
    /// # Errors
    ///
    /// When the schema has no such field or the value's type does not match.
    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Result<Self, RecordError> {
        self.contact.attributes.set(self.fields, name, value.into())?;
        Ok(self)
    }

    /// Finishes the contact.
    pub fn build(self) -> Contact {
        self.contact
    }
}

/// A behavioural event of a declared type.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    id: EventId,
    contact: ContactId,
    event_type: EventTypeIndex,
    type_name: EventTypeName,
    at: Timestamp,
    properties: Record,
}

impl Event {
    /// The event's id.
    pub fn id(&self) -> &EventId {
        &self.id
    }
    /// The contact it belongs to.
    pub fn contact(&self) -> &ContactId {
        &self.contact
    }
    /// Its type, as an index into the schema.
    pub fn event_type(&self) -> EventTypeIndex {
        self.event_type
    }
    /// Its type's name.
    pub fn type_name(&self) -> &EventTypeName {
        &self.type_name
    }
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        self.at
    }
    /// Its property record.
    pub fn properties(&self) -> &Record {
        &self.properties
    }
}

/// Builds an [`Event`] against a schema.
#[derive(Debug)]
#[must_use]
pub struct EventBuilder<'s> {
    fields: &'s FieldSet,
    event: Event,
}

impl EventBuilder<'_> {
    /// Sets a property.
    ///
    /// # Errors
    ///
    /// When the event type has no such property or the value's type does not match.
    pub fn set(mut self, name: &str, value: impl Into<Value>) -> Result<Self, RecordError> {
        self.event.properties.set(self.fields, name, value.into())?;
        Ok(self)
    }

    /// Finishes the event.
    pub fn build(self) -> Event {
        self.event
    }
}

/// Errors building contacts and events against a schema.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The schema declares no such field.
    #[error("unknown field `{name}`{}", hint(.did_you_mean))]
    UnknownField {
        /// The name given.
        name: String,
        /// A close declared name.
        did_you_mean: Option<String>,
    },
    /// The schema declares no such event type.
    #[error("unknown event type `{name}`{}", hint(.did_you_mean))]
    UnknownEventType {
        /// The name given.
        name: String,
        /// A close declared name.
        did_you_mean: Option<String>,
    },
    /// The value's kind does not match the declared type.
    #[error("field `{name}` is declared {expected}, got a {found}")]
    TypeMismatch {
        /// The field.
        name: String,
        /// Its declared type.
        expected: Type,
        /// The kind of the value given.
        found: String,
    },
    /// The contact was built against another schema (it has another number of
    /// attribute slots than this schema has contact fields).
    #[error("the contact has {slots} attribute slots, the schema {fields} contact fields: it was built against another schema")]
    OtherSchema {
        /// This schema's contact fields.
        fields: usize,
        /// The contact's slots.
        slots: usize,
    },
}

fn hint(name: &Option<String>) -> String {
    name.as_ref().map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default()
}

impl Schema {
    /// Resolves an event type named in a document at `path`, or records why not.
    pub(crate) fn resolve_event_type(
        &self,
        name: &str,
        path: String,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<EventTypeIndex> {
        let index = self.event_type_index(name);
        if index.is_none() {
            diagnostics.push(
                Diagnostic::new(Code::UnknownEventType, format!("unknown event type `{name}`"))
                    .with_path(path)
                    .with_did_you_mean(self.suggest_event_type(name))
                    .with_help("declare the event type under `schema.events`"),
            );
        }
        index
    }
}
