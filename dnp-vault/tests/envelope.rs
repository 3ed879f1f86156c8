//! The envelope format: AES-256-GCM known answers, and rejection of everything that is not
//! an untouched envelope opened under its own key and associated data.

use dnp_core::{ConnectionId, ProviderId, UserId};
use dnp_vault::envelope::{self, Aad, DataKeyCipher, EnvelopeError, Field, kat};
use secrecy::SecretBox;

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

struct Vector {
    key: &'static str,
    iv: &'static str,
    pt: &'static str,
    aad: &'static str,
    ct: &'static str,
    tag: &'static str,
}

/// AES-256-GCM, 96-bit IVs, 128-bit tags. The first six are from NIST CAVS
/// `gcmEncryptExtIV256.rsp`; the last two are test cases 15 and 16 of McGrew & Viega,
/// "The Galois/Counter Mode of Operation (GCM)".
const VECTORS: &[Vector] = &[
    Vector {
        key: "b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
        iv: "516c33929df5a3284ff463d7",
        pt: "",
        aad: "",
        ct: "",
        tag: "bdc1ac884d332457a1d2664f168c76f0",
    },
    Vector {
        key: "31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
        iv: "0d18e06c7c725ac9e362e1ce",
        pt: "2db5168e932556f8089a0622981d017d",
        aad: "",
        ct: "fa4362189661d163fcd6a56d8bf0405a",
        tag: "d636ac1bbedd5cc3ee727dc2ab4a9489",
    },
    Vector {
        key: "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
        iv: "ac93a1a6145299bde902f21a",
        pt: "2d71bcfa914e4ac045b2aa60955fad24",
        aad: "1e0889016f67601c8ebea4943bc23ad6",
        ct: "8995ae2e6df3dbf96fac7b7137bae67f",
        tag: "eca5aa77d51d4a0a14d9c51e1da474ab",
    },
    Vector {
        key: "7da3bccaffb3464178ca7c722379836db50ce0bfb47640b9572163865332e486",
        iv: "c04fd2e701c3dc62b68738b3",
        pt: "fd671cab1ee21f0df6bb610bf94f0e69",
        aad: "fec0311013202e4ffdc4204926ae0ddf",
        ct: "6be61b17b7f7d494a7cdf270562f37ba",
        tag: "5e702a38323fe1160b780d17adad3e96",
    },
    Vector {
        key: "24501ad384e473963d476edcfe08205237acfd49b5b8f33857f8114e863fec7f",
        iv: "9ff18563b978ec281b3f2794",
        pt: "27f348f9cdc0c5bd5e66b1ccb63ad920ff2219d14e8d631b3872265cf117ee86757accb158bd9abb3868fdc0d0b074b5f01b2c",
        aad: "adb5ec720ccf9898500028bf34afccbcaca126ef",
        ct: "eb7cb754c824e8d96f7c6d9b76c7d26fb874ffbf1d65c6f64a698d839b0b06145dae82057ad55994cf59ad7f67c0fa5e85fab8",
        tag: "bc95c532fecc594c36d1550286a7a3f0",
    },
    Vector {
        key: "5fe0861cdc2690ce69b3658c7f26f8458eec1c9243c5ba0845305d897e96ca0f",
        iv: "770ac1a5a3d476d5d96944a1",
        pt: "",
        aad: "",
        ct: "",
        tag: "196d691e1047093ca4b3d2ef4baba216",
    },
    Vector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        aad: "",
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c",
    },
    Vector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        pt: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

#[test]
fn aes_256_gcm_known_answers_through_the_envelope_code_path() {
    for (i, v) in VECTORS.iter().enumerate() {
        let key: [u8; 32] = hex(v.key).try_into().expect("32-byte key");
        let iv: [u8; 12] = hex(v.iv).try_into().expect("12-byte iv");
        let (pt, aad) = (hex(v.pt), hex(v.aad));
        let sealed = kat::seal_with_nonce(&key, &iv, &aad, &pt);
        let mut expected = vec![envelope::FORMAT_VERSION];
        expected.extend_from_slice(&iv);
        expected.extend_from_slice(&hex(v.ct));
        expected.extend_from_slice(&hex(v.tag));
        assert_eq!(sealed, expected, "vector {i}: envelope = version || iv || ct || tag");
        let opened = kat::open(&key, &aad, &expected).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        assert_eq!(&opened[..], &pt[..], "vector {i}: decrypts to the plaintext");
        let mut bad_tag = expected.clone();
        *bad_tag.last_mut().expect("tag") ^= 1;
        assert_eq!(kat::open(&key, &aad, &bad_tag).unwrap_err(), EnvelopeError::Rejected, "vector {i}");
    }
}

fn setup() -> (DataKeyCipher, UserId, ConnectionId, ProviderId) {
    let key = SecretBox::new(Box::new([0x42u8; 32]));
    (DataKeyCipher::new(&key), UserId::new_random(), ConnectionId::new_random(), "spotify".parse().unwrap())
}

#[test]
fn seal_open_roundtrip_and_layout() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let token = b"BQDx-access-token-value";
    let sealed = cipher.seal(&aad, token).unwrap();
    assert_eq!(sealed.len(), token.len() + envelope::OVERHEAD);
    assert_eq!(sealed[0], envelope::FORMAT_VERSION);
    assert!(!sealed.windows(token.len()).any(|w| w == token), "the plaintext does not appear in the envelope");
    assert_eq!(&cipher.open(&aad, &sealed).unwrap()[..], token);
    // Empty plaintexts work too.
    let empty = cipher.seal(&aad, b"").unwrap();
    assert_eq!(empty.len(), envelope::OVERHEAD);
    assert!(cipher.open(&aad, &empty).unwrap().is_empty());
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..1000 {
        let sealed = cipher.seal(&aad, b"same token").unwrap();
        assert!(nonces.insert(sealed[1..13].to_vec()), "nonce repeated");
    }
}

#[test]
fn tampering_with_any_byte_is_rejected() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::RefreshToken };
    let sealed = cipher.seal(&aad, b"AQAy-refresh-token").unwrap();
    for i in 1..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut tampered = sealed.clone();
            tampered[i] ^= bit;
            assert_eq!(cipher.open(&aad, &tampered).unwrap_err(), EnvelopeError::Rejected, "byte {i} bit {bit:#x}");
        }
    }
    let mut version = sealed.clone();
    version[0] = 2;
    assert_eq!(cipher.open(&aad, &version).unwrap_err(), EnvelopeError::UnknownVersion { version: 2 });
}

#[test]
fn truncated_or_extended_envelopes_are_rejected() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let sealed = cipher.seal(&aad, b"token").unwrap();
    for len in 0..sealed.len() {
        let err = cipher.open(&aad, &sealed[..len]).unwrap_err();
        if len < envelope::OVERHEAD {
            assert_eq!(err, EnvelopeError::Truncated { len }, "length {len}");
        } else {
            assert_eq!(err, EnvelopeError::Rejected, "length {len}");
        }
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert_eq!(cipher.open(&aad, &longer).unwrap_err(), EnvelopeError::Rejected);
}

#[test]
fn an_envelope_opens_only_under_its_own_user_connection_provider_and_field() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let sealed = cipher.seal(&aad, b"token").unwrap();
    let tidal: ProviderId = "tidal".parse().unwrap();
    let wrong = [
        Aad { user: UserId::new_random(), ..aad },
        Aad { connection: ConnectionId::new_random(), ..aad },
        Aad { provider: &tidal, ..aad },
        Aad { field: Field::RefreshToken, ..aad },
    ];
    for (i, other) in wrong.iter().enumerate() {
        assert_eq!(cipher.open(other, &sealed).unwrap_err(), EnvelopeError::Rejected, "case {i}");
    }
    let other_key = DataKeyCipher::new(&SecretBox::new(Box::new([0x43u8; 32])));
    assert_eq!(other_key.open(&aad, &sealed).unwrap_err(), EnvelopeError::Rejected, "another data key");
}

#[test]
fn aad_encoding_is_length_prefixed_and_unambiguous() {
    let user = UserId(uuid::Uuid::from_bytes([1; 16]));
    let connection = ConnectionId(uuid::Uuid::from_bytes([2; 16]));
    let provider: ProviderId = "spotify".parse().unwrap();
    let encoded = Aad { user, connection, provider: &provider, field: Field::AccessToken }.encode();
    let mut expected = vec![1u8];
    for part in [&[1u8; 16][..], &[2u8; 16][..], b"spotify", b"access_token"] {
        expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
        expected.extend_from_slice(part);
    }
    assert_eq!(encoded, expected);
    // Moving bytes between the provider and the field changes the encoding.
    let a: ProviderId = "ab".parse().unwrap();
    let b: ProviderId = "a".parse().unwrap();
    let x = Aad { user, connection, provider: &a, field: Field::AccessToken }.encode();
    let y = Aad { user, connection, provider: &b, field: Field::AccessToken }.encode();
    assert_ne!(x, y);
}

#[test]
fn errors_never_contain_plaintext_or_key_bytes() {
    let (cipher, user, connection, provider) = setup();
    let aad = Aad { user, connection, provider: &provider, field: Field::AccessToken };
    let mut sealed = cipher.seal(&aad, b"SECRET-TOKEN-XYZ").unwrap();
    sealed[20] ^= 1;
    let err = cipher.open(&aad, &sealed).unwrap_err();
    let text = format!("{err} {err:?} {cipher:?}");
    assert!(!text.contains("SECRET-TOKEN-XYZ"));
    assert!(!text.contains("66, 66") && !text.contains("4242"), "no key bytes: {text}");
}
