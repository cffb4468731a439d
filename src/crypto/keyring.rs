//! Encryption of data at rest: the master key, data keys and the keyring.
//!
//! Envelope encryption keeps the key that must live outside the database (the
//! 32-byte [`MasterKey`], from configuration) small and rarely used: it only
//! wraps 32-byte [`DataKey`]s, which are stored wrapped in the database and
//! seal column values. Rotating a data key then needs no change to the master
//! key, and rotating the master key only re-wraps a handful of data keys.
//!
//! # Byte format
//!
//! Every sealed value (a column value sealed by a [`Keyring`], or a data key
//! wrapped by a [`MasterKey`]) is laid out as:
//!
//! ```text
//! [format: u8 = 1][key_version: u32 big-endian][nonce: 12 bytes][ciphertext][tag: 16 bytes]
//! ```
//!
//! The cipher is AES-256-GCM with a random 96-bit nonce. The first five bytes
//! (the header) are part of the associated data, so rewriting the format or
//! the version fails authentication instead of silently selecting another key.
//!
//! Associated data is a fixed domain string (different for column values and
//! wrapped keys, so one can never be passed off as the other), then the
//! header, then — for column values — the [`Aad`] fields, each prefixed with
//! its length as a `u64` big-endian so that no two field tuples encode alike.
//!
//! Errors never carry key material, plaintext or the rejected input: callers
//! log them, and logs are not a place for secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{self, AES_256_GCM, LessSafeKey, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use zeroize::Zeroizing;

/// Length of every key in this module (AES-256).
pub const KEY_LEN: usize = 32;
/// The only format byte this code writes or reads.
pub const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Shortest well-formed sealed value: header, nonce and tag around an empty plaintext.
pub const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const COLUMN_DOMAIN: &[u8] = b"latchkey/column/";
const DATA_KEY_DOMAIN: &[u8] = b"latchkey/data-key/";

/// Failures while sealing or opening. Deliberately coarse: an attacker probing
/// ciphertexts learns nothing beyond "that did not open".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Too short to hold a header, nonce and tag, or an unknown format byte.
    #[error("malformed ciphertext")]
    Malformed,
    /// The header names a key version this keyring does not hold.
    #[error("no data key with version {0}")]
    UnknownKeyVersion(u32),
    /// Two keys were offered for the same version.
    #[error("data key version {0} given more than once")]
    DuplicateKeyVersion(u32),
    /// Authentication failed: wrong key, wrong associated data or tampering.
    #[error("decryption failed")]
    Decrypt,
    /// Sealing failed (the plaintext is beyond what AES-GCM can seal).
    #[error("encryption failed")]
    Encrypt,
    /// Decrypted fine, but the caller expected UTF-8 and it is not.
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
    /// Key bytes of the wrong length, or rejected by the crypto library.
    #[error("invalid key material")]
    InvalidKey,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

/// Failures while loading or creating the master key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("master key is not valid standard base64")]
    Base64,
    #[error("master key must decode to {KEY_LEN} bytes, got {0}")]
    Length(usize),
    #[error("master key file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("master key file {} does not hold a valid key: {source}", path.display())]
    InvalidFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
    #[error("random number generator failed")]
    Rng,
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(&mut key[..]).map_err(|_| CryptoError::Rng)?;
    Ok(key)
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey, CryptoError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidKey)
}

fn header(version: u32) -> [u8; HEADER_LEN] {
    let v = version.to_be_bytes();
    [FORMAT_V1, v[0], v[1], v[2], v[3]]
}

/// Checks length and format, returning the key version from the header.
fn parse_header(sealed: &[u8]) -> Result<u32, CryptoError> {
    if sealed.len() < MIN_SEALED_LEN {
        return Err(CryptoError::Malformed);
    }
    match sealed {
        [FORMAT_V1, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(CryptoError::Malformed),
    }
}

/// Seals `plaintext`; `aad` must already contain the header for `version`.
fn seal_raw(
    key: &LessSafeKey,
    version: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Rng)?;

    // Zeroizing so that, should sealing fail, the plaintext copy is wiped.
    let mut out = Zeroizing::new(Vec::with_capacity(MIN_SEALED_LEN + plaintext.len()));
    out.extend_from_slice(&header(version));
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut out[HEADER_LEN + NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Encrypt)?;
    out.extend_from_slice(tag.as_ref());
    // Only ciphertext remains, so the buffer may leave the zeroizing wrapper.
    Ok(std::mem::take(&mut *out))
}

/// Opens a value whose header was already validated by [`parse_header`].
fn open_raw(
    key: &LessSafeKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (nonce, body) = sealed[HEADER_LEN..].split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(nonce, aead::Aad::from(aad), &mut buf[..])
        .map_err(|_| CryptoError::Decrypt)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn data_key_aad(version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DATA_KEY_DOMAIN.len() + HEADER_LEN);
    aad.extend_from_slice(DATA_KEY_DOMAIN);
    aad.extend_from_slice(&header(version));
    aad
}

/// The key-encryption key, configured outside the database.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    /// Generates a fresh random master key.
    pub fn generate() -> Result<Self, CryptoError> {
        random_key().map(Self)
    }

    /// Parses a standard-base64 key that decodes to exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| KeyError::Base64)?,
        );
        if decoded.len() != KEY_LEN {
            return Err(KeyError::Length(decoded.len()));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self(key))
    }

    /// The key in standard base64, for writing to a key file or config.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(&self.0[..]))
    }

    /// Loads the key from `path`, or creates the file with a fresh key if it
    /// does not exist. Returns the key and whether it was just created.
    ///
    /// The file is created with mode 0600 atomically (`create_new` plus the
    /// mode at open time), so it is never readable by others, not even
    /// briefly. Should two processes race to create it, the loser reads the
    /// winner's key rather than overwriting it.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load_file(path) {
            Ok(key) => return Ok((key, false)),
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match Self::create_file(path) {
            Ok(key) => Ok((key, true)),
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Self::load_file(path).map(|key| (key, false))
            }
            Err(e) => Err(e),
        }
    }

    fn load_file(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let content = Zeroizing::new(std::fs::read(path).map_err(io_err)?);
        let text = std::str::from_utf8(&content).map_err(|_| KeyError::InvalidFile {
            path: path.to_owned(),
            source: Box::new(KeyError::Base64),
        })?;
        Self::from_base64(text).map_err(|e| KeyError::InvalidFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    fn create_file(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let key = Self::generate().map_err(|_| KeyError::Rng)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_err)?;
        let mut line = Zeroizing::new(String::with_capacity(45));
        line.push_str(secrecy::ExposeSecret::expose_secret(&key.to_base64()));
        line.push('\n');
        let written = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // A half-written key file would make every later start fail; since
            // nothing has used this key yet, removing it is safe.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(io_err(e));
        }
        Ok(key)
    }

    /// Wraps a data key for storage; `version` is bound into the result, so it
    /// only unwraps under the same version.
    pub fn wrap(&self, version: u32, key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        seal_raw(
            &aead_key(&self.0)?,
            version,
            &data_key_aad(version),
            &key.0[..],
        )
    }

    /// Unwraps a data key produced by [`MasterKey::wrap`] with the same version.
    pub fn unwrap(&self, version: u32, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        if parse_header(wrapped)? != version {
            // Same answer as a failed tag check: a mismatch means the row was
            // moved or edited, which is exactly what authentication reports.
            return Err(CryptoError::Decrypt);
        }
        let plain = open_raw(&aead_key(&self.0)?, &data_key_aad(version), wrapped)?;
        if plain.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&plain);
        Ok(DataKey(key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// A key that seals column values; stored in the database wrapped by the
/// [`MasterKey`].
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// Generates a fresh random data key.
    pub fn generate() -> Result<Self, CryptoError> {
        random_key().map(Self)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Where a sealed value lives. Bound into the ciphertext so that a value
/// copied to another row, table or column no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    pub table: &'a str,
    pub row_id: &'a str,
    pub column: &'a str,
}

impl Aad<'_> {
    fn encode(&self, header: &[u8; HEADER_LEN]) -> Vec<u8> {
        let fields = [self.table, self.row_id, self.column];
        let len =
            COLUMN_DOMAIN.len() + HEADER_LEN + fields.iter().map(|f| 8 + f.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(COLUMN_DOMAIN);
        out.extend_from_slice(header);
        for field in fields {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// The unwrapped data keys, by version, and which one seals new values.
pub struct Keyring {
    current: u32,
    keys: BTreeMap<u32, LessSafeKey>,
}

impl Keyring {
    /// Builds a keyring; `current` must be one of the given versions.
    pub fn new(
        current: u32,
        keys: impl IntoIterator<Item = (u32, DataKey)>,
    ) -> Result<Self, CryptoError> {
        let mut map = BTreeMap::new();
        for (version, key) in keys {
            if map.insert(version, aead_key(&key.0)?).is_some() {
                return Err(CryptoError::DuplicateKeyVersion(version));
            }
        }
        if !map.contains_key(&current) {
            return Err(CryptoError::UnknownKeyVersion(current));
        }
        Ok(Self { current, keys: map })
    }

    /// The version that [`Keyring::seal`] uses.
    pub fn current_version(&self) -> u32 {
        self.current
    }

    /// All versions held, ascending.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Seals with the current data key and a fresh random nonce.
    pub fn seal(&self, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or(CryptoError::UnknownKeyVersion(self.current))?;
        seal_raw(
            key,
            self.current,
            &aad.encode(&header(self.current)),
            plaintext,
        )
    }

    /// Opens a value sealed by any key version this keyring holds.
    pub fn open(&self, aad: &Aad<'_>, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let version = parse_header(sealed)?;
        let key = self
            .keys
            .get(&version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        open_raw(key, &aad.encode(&header(version)), sealed)
    }

    /// [`Keyring::seal`] for text.
    pub fn seal_str(&self, aad: &Aad<'_>, plaintext: &str) -> Result<Vec<u8>, CryptoError> {
        self.seal(aad, plaintext.as_bytes())
    }

    /// [`Keyring::open`] for text sealed with [`Keyring::seal_str`].
    pub fn open_string(&self, aad: &Aad<'_>, sealed: &[u8]) -> Result<SecretString, CryptoError> {
        let plain = self.open(aad, sealed)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::NotUtf8)?;
        Ok(SecretString::from(text))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::ExposeSecret;

    const AAD: Aad<'static> = Aad {
        table: "credentials",
        row_id: "row-1",
        column: "secret",
    };

    fn key_from(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(Zeroizing::new(bytes))
    }

    fn ring() -> Keyring {
        Keyring::new(1, [(1, DataKey::generate().unwrap())]).unwrap()
    }

    #[test]
    fn round_trip_empty_and_large() {
        let ring = ring();
        for pt in [Vec::new(), b"hello".to_vec(), vec![0xA5; 1 << 20]] {
            let sealed = ring.seal(&AAD, &pt).unwrap();
            assert_eq!(sealed.len(), MIN_SEALED_LEN + pt.len());
            assert_eq!(sealed[0], FORMAT_V1);
            assert_eq!(&sealed[1..5], &1u32.to_be_bytes());
            assert_eq!(*ring.open(&AAD, &sealed).unwrap(), pt);
        }
    }

    #[test]
    fn string_round_trip_and_non_utf8() {
        let ring = ring();
        let sealed = ring.seal_str(&AAD, "pässwörd").unwrap();
        assert_eq!(
            ring.open_string(&AAD, &sealed).unwrap().expose_secret(),
            "pässwörd"
        );
        let sealed = ring.seal(&AAD, &[0xff, 0xfe]).unwrap();
        assert!(matches!(
            ring.open_string(&AAD, &sealed),
            Err(CryptoError::NotUtf8)
        ));
    }

    #[test]
    fn tampering_any_byte_fails() {
        let ring = ring();
        let sealed = ring.seal(&AAD, b"some secret value").unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = sealed.clone();
                t[i] ^= bit;
                let err = ring.open(&AAD, &t).unwrap_err();
                match i {
                    0 => assert!(matches!(err, CryptoError::Malformed), "byte {i}: {err:?}"),
                    1..=4 => assert!(
                        matches!(err, CryptoError::UnknownKeyVersion(_)),
                        "byte {i}: {err:?}"
                    ),
                    _ => assert!(matches!(err, CryptoError::Decrypt), "byte {i}: {err:?}"),
                }
            }
        }
        // Truncating or extending also breaks the tag.
        assert!(ring.open(&AAD, &sealed[..sealed.len() - 1]).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(ring.open(&AAD, &longer).is_err());
    }

    #[test]
    fn rewriting_version_to_a_held_key_fails_authentication() {
        // Same key bytes under both versions: only the header binding in the
        // associated data can tell them apart.
        let bytes = [7u8; KEY_LEN];
        let ring = Keyring::new(1, [(1, key_from(bytes)), (3, key_from(bytes))]).unwrap();
        let mut sealed = ring.seal(&AAD, b"value").unwrap();
        sealed[4] ^= 0x02; // version 1 -> 3
        assert_eq!(parse_header(&sealed).unwrap(), 3);
        assert!(matches!(
            ring.open(&AAD, &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = ring().seal(&AAD, b"value").unwrap();
        assert!(matches!(
            ring().open(&AAD, &sealed),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn wrong_aad_fails() {
        let ring = ring();
        let sealed = ring.seal(&AAD, b"value").unwrap();
        let others = [
            Aad {
                table: "other",
                ..AAD
            },
            Aad {
                row_id: "row-2",
                ..AAD
            },
            Aad {
                column: "other",
                ..AAD
            },
        ];
        for aad in others {
            assert!(matches!(
                ring.open(&aad, &sealed),
                Err(CryptoError::Decrypt)
            ));
        }
    }

    #[test]
    fn aad_encoding_is_unambiguous() {
        let a = Aad {
            table: "ab",
            row_id: "c",
            column: "",
        };
        let b = Aad {
            table: "a",
            row_id: "bc",
            column: "",
        };
        let h = header(1);
        assert_ne!(a.encode(&h), b.encode(&h));
        let ring = ring();
        let sealed = ring.seal(&a, b"v").unwrap();
        assert!(ring.open(&b, &sealed).is_err());
    }

    #[test]
    fn short_input_is_an_error() {
        let ring = ring();
        for len in 0..=32 {
            for fill in [0u8, 1, 0xff] {
                let input = vec![fill; len];
                assert!(
                    matches!(ring.open(&AAD, &input), Err(CryptoError::Malformed)),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn unknown_version_is_reported() {
        let other = Keyring::new(9, [(9, DataKey::generate().unwrap())]).unwrap();
        let sealed = other.seal(&AAD, b"value").unwrap();
        assert!(matches!(
            ring().open(&AAD, &sealed),
            Err(CryptoError::UnknownKeyVersion(9))
        ));
    }

    #[test]
    fn keyring_construction_checks() {
        assert!(matches!(
            Keyring::new(2, [(1, DataKey::generate().unwrap())]),
            Err(CryptoError::UnknownKeyVersion(2))
        ));
        assert!(matches!(
            Keyring::new(
                1,
                [
                    (1, DataKey::generate().unwrap()),
                    (1, DataKey::generate().unwrap())
                ]
            ),
            Err(CryptoError::DuplicateKeyVersion(1))
        ));
        assert!(matches!(
            Keyring::new(1, std::iter::empty()),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
    }

    #[test]
    fn sealing_twice_differs() {
        let ring = ring();
        let a = ring.seal(&AAD, b"same").unwrap();
        let b = ring.seal(&AAD, b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[5..17], b[5..17], "nonces must differ");
    }

    #[test]
    fn rotation_opens_old_and_seals_new() {
        let v1 = [1u8; KEY_LEN];
        let v2 = [2u8; KEY_LEN];
        let old = Keyring::new(1, [(1, key_from(v1))]).unwrap();
        let old_sealed = old.seal(&AAD, b"old").unwrap();

        let new = Keyring::new(2, [(1, key_from(v1)), (2, key_from(v2))]).unwrap();
        assert_eq!(new.current_version(), 2);
        assert_eq!(new.versions().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(*new.open(&AAD, &old_sealed).unwrap(), b"old");
        let new_sealed = new.seal(&AAD, b"new").unwrap();
        assert_eq!(&new_sealed[1..5], &2u32.to_be_bytes());
        assert_eq!(*new.open(&AAD, &new_sealed).unwrap(), b"new");
        assert!(matches!(
            old.open(&AAD, &new_sealed),
            Err(CryptoError::UnknownKeyVersion(2))
        ));
    }

    #[test]
    fn master_wrap_unwrap() {
        let master = MasterKey::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let wrapped = master.wrap(5, &dk).unwrap();
        assert_eq!(wrapped.len(), MIN_SEALED_LEN + KEY_LEN);
        let back = master.unwrap(5, &wrapped).unwrap();
        assert_eq!(*back.0, *dk.0);

        // The unwrapped key works in a keyring interchangeably with the original.
        let sealed = Keyring::new(5, [(5, dk)])
            .unwrap()
            .seal(&AAD, b"x")
            .unwrap();
        let ring = Keyring::new(5, [(5, back)]).unwrap();
        assert_eq!(*ring.open(&AAD, &sealed).unwrap(), b"x");

        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.unwrap(5, &wrapped),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            master.unwrap(6, &wrapped),
            Err(CryptoError::Decrypt)
        ));
        // Rewriting the header to match a different claimed version still fails.
        let mut moved = wrapped.clone();
        moved[1..5].copy_from_slice(&6u32.to_be_bytes());
        assert!(matches!(
            master.unwrap(6, &moved),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            master.unwrap(5, &wrapped[..10]),
            Err(CryptoError::Malformed)
        ));
    }

    #[test]
    fn wrapped_key_is_not_a_column_value() {
        let bytes = [9u8; KEY_LEN];
        let master = MasterKey(Zeroizing::new(bytes));
        let ring = Keyring::new(1, [(1, key_from(bytes))]).unwrap();
        let wrapped = master.wrap(1, &DataKey::generate().unwrap()).unwrap();
        assert!(matches!(
            ring.open(&AAD, &wrapped),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn master_base64() {
        let master = MasterKey::generate().unwrap();
        let b64 = master.to_base64();
        assert_eq!(b64.expose_secret().len(), 44);
        let back = MasterKey::from_base64(b64.expose_secret()).unwrap();
        assert_eq!(*back.0, *master.0);

        let short = STANDARD.encode([1u8; 31]);
        let err = MasterKey::from_base64(&short).unwrap_err();
        assert!(matches!(err, KeyError::Length(31)));
        assert!(!err.to_string().contains(&short));

        let garbage = "not base64 !!! SECRETISH";
        let err = MasterKey::from_base64(garbage).unwrap_err();
        assert!(matches!(err, KeyError::Base64));
        assert!(!err.to_string().contains("SECRETISH"));
    }

    #[test]
    fn load_or_create_file_creates_private_file_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/master.key");
        let (created, was_created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(was_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (loaded, was_created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(!was_created);
        assert_eq!(*loaded.0, *created.0);

        // Whitespace around the key is tolerated (editors add newlines).
        let padded = format!("  {}\n\n", created.to_base64().expose_secret());
        std::fs::write(&path, padded).unwrap();
        let (loaded, _) = MasterKey::load_or_create_file(&path).unwrap();
        assert_eq!(*loaded.0, *created.0);
    }

    #[test]
    fn bad_file_content_names_path_not_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        for content in [
            &b"TOPSECRETVALUE-not-a-key"[..],
            STANDARD.encode([3u8; 16]).as_bytes(),
            &[0xff, 0xfe, 0x00][..],
        ] {
            std::fs::write(&path, content).unwrap();
            let err = MasterKey::load_or_create_file(&path).unwrap_err();
            assert!(matches!(err, KeyError::InvalidFile { .. }), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("master.key"), "{shown}");
            assert!(!shown.contains("TOPSECRETVALUE"), "{shown}");
            assert!(!shown.contains(&STANDARD.encode([3u8; 16])), "{shown}");
            // The file must be left alone, not replaced by a fresh key.
            assert_eq!(std::fs::read(&path).unwrap(), content);
        }
    }

    #[test]
    fn debug_output_is_redacted() {
        let bytes = [0x42u8; KEY_LEN];
        let master = MasterKey(Zeroizing::new(bytes));
        let data = key_from(bytes);
        let ring = Keyring::new(7, [(7, key_from(bytes))]).unwrap();
        let b64 = STANDARD.encode(bytes);
        for shown in [
            format!("{master:?}"),
            format!("{data:?}"),
            format!("{ring:?}"),
            format!("{:?}", master.to_base64()),
        ] {
            assert!(!shown.contains(&b64), "{shown}");
            assert!(!shown.contains("42, 42"), "{shown}");
            assert!(!shown.contains("4242"), "{shown}");
        }
        assert_eq!(format!("{master:?}"), "MasterKey([redacted])");
        assert_eq!(format!("{data:?}"), "DataKey([redacted])");
        assert!(format!("{ring:?}").contains('7'));
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            pt in proptest::collection::vec(any::<u8>(), 0..4096),
            table in ".*",
            row_id in ".*",
            column in ".*",
        ) {
            let ring = ring();
            let aad = Aad { table: &table, row_id: &row_id, column: &column };
            let sealed = ring.seal(&aad, &pt).unwrap();
            prop_assert_eq!(&*ring.open(&aad, &sealed).unwrap(), &pt);
        }

        #[test]
        fn prop_open_never_panics(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let ring = ring();
            prop_assert!(ring.open(&AAD, &input).is_err());
            let master = MasterKey::generate().unwrap();
            prop_assert!(master.unwrap(1, &input).is_err());
        }

        #[test]
        fn prop_open_rejects_mutations(
            pt in proptest::collection::vec(any::<u8>(), 0..64),
            index in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let ring = ring();
            let mut sealed = ring.seal(&AAD, &pt).unwrap();
            let i = index.index(sealed.len());
            sealed[i] ^= xor;
            prop_assert!(ring.open(&AAD, &sealed).is_err());
        }
    }
}
