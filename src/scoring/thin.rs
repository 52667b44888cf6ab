//! An exact-size block of `u32` words behind a thin pointer (8 bytes, where a
//! `Box<[u32]>` takes 16): the allocation keeps its length in its first word. Used for
//! the per-model rule block, held once per contact and model.
//!
//! The only `unsafe` of the scoring state is here. What makes it sound: the pointer is
//! either absent (an empty block) or comes from `alloc` (or `alloc_zeroed`) with
//! [`layout`] of the length
//! written in its first word, which is never exposed (the slices start after it), so
//! no safe method can change it; `Drop` frees with the same layout.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// The words, owned; empty without allocating.
#[derive(Default)]
pub(crate) struct ThinWords(Option<NonNull<u32>>);

// SAFETY: `ThinWords` owns its allocation exactly as a `Box<[u32]>` does (no sharing,
// no interior mutability), so it may move to and be shared between threads as one.
unsafe impl Send for ThinWords {}
// SAFETY: as above; `&ThinWords` gives only `&[u32]`.
unsafe impl Sync for ThinWords {}

/// The layout of a block of `len` words (plus the length word).
fn layout(len: usize) -> Layout {
    match Layout::array::<u32>(len + 1) {
        Ok(layout) => layout,
        // `len` words already exist in memory, so one more cannot overflow `isize`.
        Err(_) => panic!("a block of {len} words"),
    }
}

impl ThinWords {
    /// A block holding a copy of `words`.
    ///
    /// # Panics
    ///
    /// For more than `u32::MAX` words (no rule block comes near: its callers bound it).
    pub(crate) fn from_slice(words: &[u32]) -> ThinWords {
        if words.is_empty() {
            return ThinWords(None);
        }
        let Ok(len) = u32::try_from(words.len()) else {
            panic!("a block of {} words", words.len());
        };
        let layout = layout(words.len());
        // SAFETY: the layout has a nonzero size (at least the length word).
        let Some(ptr) = NonNull::new(unsafe { alloc(layout) }.cast::<u32>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds `len + 1` words, aligned for `u32`; the source
        // cannot overlap a fresh allocation.
        unsafe {
            ptr.as_ptr().write(len);
            ptr.as_ptr().add(1).copy_from_nonoverlapping(words.as_ptr(), words.len());
        }
        ThinWords(Some(ptr))
    }

    /// A block of `len` zero words, to fill in place.
    ///
    /// # Panics
    ///
    /// For more than `u32::MAX` words, as [`ThinWords::from_slice`].
    pub(crate) fn zeroed(len: usize) -> ThinWords {
        if len == 0 {
            return ThinWords(None);
        }
        let Ok(len32) = u32::try_from(len) else {
            panic!("a block of {len} words");
        };
        let layout = layout(len);
        // SAFETY: the layout has a nonzero size (at least the length word).
        let Some(ptr) = NonNull::new(unsafe { alloc_zeroed(layout) }.cast::<u32>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds `len + 1` words, aligned for `u32`; zeroed memory
        // is initialized `u32`s.
        unsafe { ptr.as_ptr().write(len32) };
        ThinWords(Some(ptr))
    }

    /// The words.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u32] {
        match self.0 {
            None => &[],
            // SAFETY: the allocation holds the length word and then that many
            // initialized words, owned by `self` and borrowed with it.
            Some(ptr) => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr().add(1), ptr.as_ptr().read() as usize)
            },
        }
    }

    /// The words, to change in place (not their number).
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u32] {
        match self.0 {
            None => &mut [],
            // SAFETY: as in `as_slice`, borrowed mutably with `self`, which is the
            // allocation's only owner; the length word stays out of the slice.
            Some(ptr) => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr().add(1), ptr.as_ptr().read() as usize)
            },
        }
    }
}

impl Drop for ThinWords {
    fn drop(&mut self) {
        if let Some(ptr) = self.0 {
            // SAFETY: allocated in `from_slice` with the layout of the length it wrote in
            // its first word, which nothing has changed since.
            unsafe {
                let len = ptr.as_ptr().read() as usize;
                dealloc(ptr.as_ptr().cast::<u8>(), layout(len));
            }
        }
    }
}

impl Clone for ThinWords {
    fn clone(&self) -> ThinWords {
        ThinWords::from_slice(self.as_slice())
    }
}

impl std::fmt::Debug for ThinWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl std::ops::Deref for ThinWords {
    type Target = [u32];

    #[inline]
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for ThinWords {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u32] {
        self.as_mut_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The block is the vector it was made of through writes in place, clones and
        /// drops (run it under a leak or memory checker to check the unsafe part).
        #[test]
        fn thin_words_behave_as_a_boxed_slice(
            ops in prop::collection::vec((0u8..4, prop::collection::vec(any::<u32>(), 0..12), any::<usize>()), 0..40),
        ) {
            let mut thin = ThinWords::default();
            let mut model: Vec<u32> = Vec::new();
            let mut clones = Vec::new();
            for (op, words, at) in ops {
                match op {
                    0 if at % 2 == 0 => {
                        thin = ThinWords::from_slice(&words);
                        model = words;
                    }
                    0 => {
                        thin = ThinWords::zeroed(words.len());
                        thin.copy_from_slice(&words);
                        model = words;
                    }
                    1 if !model.is_empty() => {
                        let i = at % model.len();
                        thin[i] = thin[i].wrapping_add(1);
                        model[i] = model[i].wrapping_add(1);
                    }
                    2 => clones.push((thin.clone(), model.clone())),
                    _ => {
                        clones.pop();
                    }
                }
                prop_assert_eq!(&thin[..], &model[..]);
                for (c, m) in &clones {
                    prop_assert_eq!(&c[..], &m[..]);
                }
            }
        }
    }

    #[test]
    fn the_pointer_is_thin() {
        assert_eq!(size_of::<ThinWords>(), 8);
        assert_eq!(&ThinWords::default()[..], &[] as &[u32]);
        assert_eq!(&ThinWords::from_slice(&[])[..], &[] as &[u32]);
    }
}
