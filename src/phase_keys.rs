//! Single-key phase switching from the terminal running `leakscope run`.
//!
//! When stdin is a terminal, line buffering and echo are switched off (but
//! not signal keys: Ctrl-C still stops the session) and a thread turns
//! keys into phase switches. The terminal's settings are restored when the
//! returned guard is dropped.

use crate::consent::ConsentPhase;
use crate::control::PhaseSwitch;
use std::io::{IsTerminal, Read};

/// The keys, as shown to the tester at start.
pub const KEYS: [(char, ConsentPhase); 4] = [
    ('p', ConsentPhase::PreConsent),
    ('c', ConsentPhase::Consented),
    ('r', ConsentPhase::Refused),
    ('b', ConsentPhase::Background),
];

/// The phase a key selects, if any.
pub fn phase_for_key(key: u8) -> Option<ConsentPhase> {
    KEYS.iter()
        .find(|(k, _)| *k as u8 == key.to_ascii_lowercase())
        .map(|(_, p)| *p)
}

/// One line listing the keys.
pub fn legend() -> String {
    let keys: Vec<String> = KEYS.iter().map(|(k, p)| format!("{k} = {p}")).collect();
    format!("Phase keys: {}", keys.join(", "))
}

/// Restores the terminal on drop.
pub struct TerminalGuard {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = self.saved.take() {
            // SAFETY: restoring attributes previously read from fd 0.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
            }
        }
    }
}

/// Starts reading phase keys when stdin is a terminal; does nothing
/// otherwise (phases can still be switched with `leakscope mark`).
pub fn start(switch: PhaseSwitch) -> TerminalGuard {
    if !std::io::stdin().is_terminal() {
        return TerminalGuard {
            #[cfg(unix)]
            saved: None,
        };
    }
    let guard = TerminalGuard {
        #[cfg(unix)]
        saved: unbuffer_stdin(),
    };
    std::thread::Builder::new()
        .name("leakscope-keys".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            let mut stdin = std::io::stdin();
            while let Ok(1) = stdin.read(&mut byte) {
                if let Some(phase) = phase_for_key(byte[0]) {
                    switch.switch(phase);
                }
            }
        })
        .ok();
    guard
}

/// Turns off canonical mode and echo on stdin; returns the old settings.
#[cfg(unix)]
fn unbuffer_stdin() -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own; failure
    // (not a terminal after all) leaves the terminal as it was.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) != 0 {
            return None;
        }
        Some(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_phases_in_either_case() {
        assert_eq!(phase_for_key(b'c'), Some(ConsentPhase::Consented));
        assert_eq!(phase_for_key(b'R'), Some(ConsentPhase::Refused));
        assert_eq!(phase_for_key(b'x'), None);
        assert!(legend().contains("c = consented"));
    }
}
