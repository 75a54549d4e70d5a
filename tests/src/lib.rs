//! End-to-end tests of the Verinfer system live in `tests/`; this library is empty.
