//! The `ContactStore` conformance suite on the in-memory store.

use nurture::host::{conformance, MemoryStore};

#[test]
fn memory_store_passes_the_conformance_suite() {
    match conformance::run(|_engine| MemoryStore::new()) {
        Ok(passed) => assert_eq!(passed, conformance::CHECKS),
        Err(failure) => panic!("{failure}"),
    }
}
