//! How to make a test device trust the CA, as plain text.

use super::CertAuthority;

/// Plain-text steps for trusting `ca` on Android (user store; system store
/// on API 33 and below; Android 14+ Conscrypt APEX store) and iOS, headed by
/// the CA's file paths and SHA-256 fingerprint so the user can check that
/// the device shows the same certificate.
///
/// The text is shared by `leakscope ca show` and the proxy's page at
/// `http://leakscope.cert/`, so it stays plain (no markup) and self-contained.
pub fn install_steps(ca: &CertAuthority) -> String {
    let files = ca.files();
    let cer = files.cert_der.display();
    let pem = files.cert_pem.display();
    let key = files.key_pem.display();
    let android = files.android_system.display();
    let hash = ca.android_hash();
    let fingerprint = ca.fingerprint_sha256();

    format!(
        r#"leakscope interception CA
=========================
Certificate (DER, for phones): {cer}
Certificate (PEM):             {pem}
Android system-store copy:     {android}
Private key (keep it secret):  {key}
SHA-256 fingerprint:           {fingerprint}

Whoever holds the private key can read the TLS traffic of every device that
trusts this CA. Install it only on devices you test with, never commit or
share the key, and remove the CA from the device when you are done.

Android: user store (any device, no root)
-----------------------------------------
1. adb push {cer} /sdcard/Download/leakscope-ca.cer
2. Settings > Security & privacy > More security settings > Encryption &
   credentials > Install a certificate > CA certificate, then pick the file.
   Menu names differ between versions and vendors; searching Settings for
   "CA certificate" finds the screen.
3. Check the fingerprint under Trusted credentials > User.
Since Android 7 (API 24) apps ignore user CAs unless their network security
config opts in; most release builds do not. For those, use the system store.

Android: system store, API 33 and below (rooted or writable emulator)
----------------------------------------------------------------------
Emulators need a "Google APIs" image (not "Google Play") for adb root.
  emulator -avd <name> -writable-system    (use this flag on every start)
  adb root
  adb shell avbctl disable-verification    (API 28 and below: adb disable-verity)
  adb reboot
  adb root
  adb remount                              (if it asks, reboot, adb root, remount again)
  adb push {android} /system/etc/security/cacerts/{hash}.0
  adb shell chmod 644 /system/etc/security/cacerts/{hash}.0
  adb reboot
Afterwards Settings > ... > Trusted credentials > System lists "leakscope".

Android 14+ (API 34 and up, root needed)
----------------------------------------
System CAs now come from the Conscrypt APEX, /apex/com.android.conscrypt/cacerts,
which remount cannot make writable. Instead, fill a tmpfs with the stock
certificates plus {hash}.0 and mount it over that directory. Every app inherits its mount
namespace from zygote, so the mount must also be made inside zygote's
namespace (and inside already running apps', or restart them) with nsenter.
It does not survive a reboot: repeat after each boot.
  adb root
  adb push {android} /data/local/tmp/{hash}.0
  adb shell
then, in that root shell on the device:
  C=/apex/com.android.conscrypt/cacerts
  S=/system/etc/security/cacerts
  mkdir -p -m 700 /data/local/tmp/leakscope-ca
  cp $C/* /data/local/tmp/leakscope-ca/
  cp /data/local/tmp/{hash}.0 /data/local/tmp/leakscope-ca/
  mount -t tmpfs tmpfs $S
  cp /data/local/tmp/leakscope-ca/* $S/
  chown root:root $S/*
  chmod 644 $S/*
  chcon u:object_r:system_file:s0 $S/*
  mount --bind $S $C
  for Z in $(pidof zygote zygote64); do
    nsenter --mount=/proc/$Z/ns/mnt -- mount --bind $S $C
    for P in $(ps -o PID -P $Z | grep -v PID); do
      nsenter --mount=/proc/$P/ns/mnt -- mount --bind $S $C
    done
  done
Check with: ls $C/{hash}.0

iOS and iPadOS
--------------
1. AirDrop or mail {cer} to the device, or open http://leakscope.cert/ in
   Safari while the device uses the proxy, and allow the profile download.
2. Settings > General > VPN & Device Management (older iOS: Profiles),
   select the downloaded profile, Install.
3. Settings > General > About > Certificate Trust Settings: turn on full
   trust for "leakscope interception CA". Without this step the profile is
   installed but TLS connections still fail.
iOS Simulator: xcrun simctl keychain booted add-root-cert {pem}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_paths_fingerprint_and_hash() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ca = CertAuthority::init(dir.path(), false)?;
        let text = install_steps(&ca);
        let files = ca.files();
        for path in [
            &files.cert_der,
            &files.cert_pem,
            &files.key_pem,
            &files.android_system,
        ] {
            assert!(
                text.contains(&path.display().to_string()),
                "{}",
                path.display()
            );
        }
        assert!(text.contains(&ca.fingerprint_sha256()));
        assert!(text.contains(&format!("{}.0", ca.android_hash())));
        assert!(text.contains("/apex/com.android.conscrypt/cacerts"));
        assert!(text.contains("nsenter"));
        assert!(text.contains("Certificate Trust Settings"));
        // The text is about the key's location, never its contents.
        assert!(!text.contains("PRIVATE KEY"));
        Ok(())
    }
}
