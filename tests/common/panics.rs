//! Panics in the proxy's own threads. tokio catches a panicking task, the
//! connection just drops, and a test that only looks at other clients
//! would pass; this hook remembers every such panic so tests can say
//! "nothing panicked" and mean it.

use std::sync::{Mutex, Once};

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Starts remembering panics on background threads (tokio workers and
/// blocking threads, the sink thread, unnamed threads). A test's own
/// assertion failures happen on the test's thread and are left to libtest.
/// Idempotent; the default hook still prints every panic.
pub fn watch() {
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name();
            let background =
                name.is_none_or(|n| n.starts_with("tokio-") || n.starts_with("leakscope"));
            if background {
                let name = name.unwrap_or("unnamed");
                let mut panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
                panics.push(format!("{name}: {info}"));
            }
            default(info);
        }));
    });
}

/// Fails if any background thread of this test binary has panicked since
/// [`watch`] was first called.
pub fn assert_none() {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        panics.is_empty(),
        "background threads panicked: {panics:#?}"
    );
}
