//! A value many readers take cheaply while one writer replaces it whole: the
//! routing table and the certificates, rebuilt on every change, so a request
//! never waits for a rebuild nor sees half of one.

use std::sync::{Arc, RwLock};

pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Current<T> {
        Current(RwLock::new(Arc::new(value)))
    }

    /// The value as it is now; later replacements do not change it.
    pub fn load(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}
