//! The shell script that makes Android trust the CA through a tmpfs
//! mounted over the trust store, in every mount namespace that matters.
//!
//! Used for Android 14+ (API 34), whose Conscrypt reads CAs from the
//! `com.android.conscrypt` APEX, which `adb remount` cannot make writable,
//! and as the fallback on older versions when the system partition cannot
//! be remounted (su-rooted phones, emulators started without
//! `-writable-system`). Nothing it does survives a reboot.
//!
//! The script runs as root on the device: `sh leakscope-ca.sh install`
//! (setup) or `sh leakscope-ca.sh remove` (teardown). It re-invokes itself
//! with `here` / `unhere` inside other mount namespaces through `nsenter`.
//! It is generated from fixed text plus the CA's hash (8 hex digits,
//! checked here), so nothing from the device or the user reaches it.

/// Where the script is pushed.
pub const SCRIPT_PATH: &str = "/data/local/tmp/leakscope-ca.sh";

/// The system trust store.
pub const SYSTEM_CACERTS: &str = "/system/etc/security/cacerts";

/// The Conscrypt APEX trust store (Android 14+).
pub const APEX_CACERTS: &str = "/apex/com.android.conscrypt/cacerts";

/// Printed by the script as its last line when `install` succeeded.
pub const INSTALLED_MARKER: &str = "leakscope-ca: installed";

/// Printed by the script as its last line when `remove` finished.
pub const REMOVED_MARKER: &str = "leakscope-ca: removed";

/// Where the CA file is pushed before the script copies it.
pub fn staged_cert_path(hash: &str) -> String {
    format!("/data/local/tmp/leakscope-{hash}.0")
}

/// The script for the CA whose `subject_hash_old` is `hash`; `apex` also
/// covers the Conscrypt APEX store (API 34+). `None` if `hash` is not 8
/// lowercase hex digits (never the case for a hash from the CA module).
pub fn tmpfs_script(hash: &str, apex: bool) -> Option<String> {
    let valid = hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return None;
    }
    let apex = if apex { 1 } else { 0 };
    let cert = staged_cert_path(hash);
    Some(format!(
        r#"#!/system/bin/sh
# Written by `leakscope android setup`: trust the leakscope CA ({hash}.0) by
# mounting a tmpfs copy of the trust store that includes it. Nothing here
# survives a reboot, which is also the surest way to undo it.
#   sh {SCRIPT_PATH} install   mount here, in zygote and in running apps
#   sh {SCRIPT_PATH} remove    unmount everywhere, delete the staged files
#   sh {SCRIPT_PATH} here      mount in the current namespace only
#   sh {SCRIPT_PATH} unhere    unmount in the current namespace only
H={hash}.0
CERT={cert}
STAGE=/data/local/tmp/leakscope-cacerts
SELF={SCRIPT_PATH}
S={SYSTEM_CACERTS}
C={APEX_CACERTS}
# 1: Android 14+, where Conscrypt reads the APEX store, not the system one.
APEX={apex}

fail() {{
  echo "leakscope-ca: FAILED: $*"
  exit 1
}}

# Whether a tmpfs is mounted at $1 in this process's mount namespace.
mounted() {{
  grep -q " $1 tmpfs " /proc/self/mounts
}}

# Mount the staged store over $S (and bind it over $C) in the current
# namespace. Idempotent, so running it again or in a namespace that already
# sees the mount (mount propagation) changes nothing.
here() {{
  if mounted $S; then
    [ -f $S/$H ] || cp $STAGE/$H $S/$H || return 1
  else
    mount -t tmpfs -o mode=755 tmpfs $S || return 1
    cp $STAGE/* $S/ || return 1
  fi
  chown root:root $S/*
  chmod 644 $S/*
  # Apps may only read files labelled as system files.
  chcon u:object_r:system_file:s0 $S $S/* || return 1
  if [ $APEX = 1 ]; then
    mounted $C || mount --bind $S $C || return 1
    [ -f $C/$H ] || return 1
  fi
  [ -f $S/$H ]
}}

unhere() {{
  if [ $APEX = 1 ] && mounted $C; then umount $C; fi
  if mounted $S; then umount $S; fi
  return 0
}}

# Every process forked from zygote (apps) and zygote itself: apps get their
# own mount namespace at fork, so a mount made elsewhere does not reach them.
zygotes() {{
  pidof zygote zygote64
}}

children() {{
  ps -o PID -P $1 | grep -v PID
}}

install() {{
  [ -f $CERT ] || fail "$CERT is missing"
  rm -rf $STAGE
  mkdir -m 700 $STAGE || fail "cannot create $STAGE"
  SRC=$S
  [ $APEX = 1 ] && SRC=$C
  cp $SRC/* $STAGE/ || fail "cannot copy the stock CAs from $SRC"
  cp $CERT $STAGE/$H || fail "cannot stage $H"
  here || fail "cannot mount the trust store in the root namespace"
  Z_OK=0
  APPS=0
  MISSED=0
  for Z in $(zygotes); do
    nsenter --mount=/proc/$Z/ns/mnt -- /system/bin/sh $SELF here \
      || fail "cannot mount the trust store in zygote $Z"
    Z_OK=$((Z_OK + 1))
    for P in $(children $Z); do
      if nsenter --mount=/proc/$P/ns/mnt -- /system/bin/sh $SELF here; then
        APPS=$((APPS + 1))
      else
        MISSED=$((MISSED + 1))
      fi
    done
  done
  [ $Z_OK -gt 0 ] || fail "no zygote process found"
  echo "{INSTALLED_MARKER} $H (zygotes: $Z_OK, running apps: $APPS, missed: $MISSED)"
}}

remove() {{
  for Z in $(zygotes); do
    for P in $(children $Z); do
      nsenter --mount=/proc/$P/ns/mnt -- /system/bin/sh $SELF unhere
    done
    nsenter --mount=/proc/$Z/ns/mnt -- /system/bin/sh $SELF unhere
  done
  unhere
  # Any staged CA, not only this one: the CA may have been replaced since.
  rm -rf $STAGE /data/local/tmp/leakscope-*.0
  echo "{REMOVED_MARKER}"
  rm -f $SELF
}}

case "$1" in
  install) install ;;
  remove) remove ;;
  here) here ;;
  unhere) unhere ;;
  *) fail "usage: sh $SELF install|remove|here|unhere" ;;
esac
"#
    ))
}

/// The counts in the script's success line, for the summary:
/// `(zygotes, running apps, missed apps)`.
pub fn installed_counts(output: &str) -> Option<(u32, u32, u32)> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with(INSTALLED_MARKER))?;
    // Only the parenthesis: the hash before it may contain digits.
    let (_, counts) = line.rsplit_once('(')?;
    let numbers: Vec<u32> = counts
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers.as_slice() {
        [z, a, m] => Some((*z, *a, *m)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_hashes() {
        assert!(tmpfs_script("1a2b3c4d", true).is_some());
        assert!(tmpfs_script("1A2B3C4D", true).is_none());
        assert!(tmpfs_script("1a2b3c4", true).is_none());
        assert!(tmpfs_script("1a2b3c4d; reboot", true).is_none());
        assert!(tmpfs_script("", false).is_none());
    }

    #[test]
    fn script_covers_both_stores_and_namespaces() {
        let script = tmpfs_script("1a2b3c4d", true).unwrap_or_default();
        for needle in [
            "H=1a2b3c4d.0",
            "CERT=/data/local/tmp/leakscope-1a2b3c4d.0",
            "APEX=1",
            "mount -t tmpfs -o mode=755 tmpfs $S",
            "mount --bind $S $C",
            "chcon u:object_r:system_file:s0 $S $S/*",
            "pidof zygote zygote64",
            "nsenter --mount=/proc/$Z/ns/mnt -- /system/bin/sh $SELF here",
            "nsenter --mount=/proc/$P/ns/mnt -- /system/bin/sh $SELF here",
        ] {
            assert!(script.contains(needle), "missing {needle:?}");
        }
        let old = tmpfs_script("1a2b3c4d", false).unwrap_or_default();
        assert!(old.contains("APEX=0"));
    }

    #[test]
    fn reads_counts() {
        let out =
            "noise\nleakscope-ca: installed 1a2b3c4d.0 (zygotes: 2, running apps: 57, missed: 1)";
        assert_eq!(installed_counts(out), Some((2, 57, 1)));
        assert_eq!(installed_counts("leakscope-ca: FAILED: x"), None);
        assert_eq!(installed_counts(""), None);
    }
}
