//! The pod-template-hash: Kubernetes' `controller.ComputeHash` over a
//! canonical serialization of the template.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The characters `SafeEncodeString` maps bytes to: no vowels (so no words)
/// and no look-alikes such as 0/o or 1/l.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The pod-template-hash of `template` given the Deployment's
/// `status.collisionCount`: the 32-bit FNV-1a of the template's `serde_json`
/// form (k8s-openapi's field order, unset fields omitted, maps sorted),
/// followed, when a collision count is set, by that count as 8
/// little-endian bytes, rendered like Kubernetes' `SafeEncodeString` of the
/// decimal value.
///
/// Kubernetes hashes Go's `spew` dump instead, so the value differs from a
/// real cluster's for the same template; within skiff it is stable, which
/// is what names and adoption need.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing plain data with string keys cannot fail.
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut hash = fnv1a32(FNV_OFFSET_BASIS, &bytes);
    if let Some(count) = collision_count {
        let mut salt = [0u8; 8];
        salt[..4].copy_from_slice(&count.to_le_bytes());
        hash = fnv1a32(hash, &salt);
    }
    safe_encode_string(&hash.to_string())
}

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv1a32(mut hash: u32, bytes: &[u8]) -> u32 {
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Kubernetes' `rand.SafeEncodeString`: each character becomes
/// `SAFE_ALPHABET[code % 27]`.
fn safe_encode_string(s: &str) -> String {
    s.chars()
        .map(|c| char::from(SAFE_ALPHABET[c as usize % SAFE_ALPHABET.len()]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_reference_vectors() {
        for (input, expect) in [
            ("", 0x811c_9dc5),
            ("a", 0xe40c_292c),
            ("foobar", 0xbf9c_f968),
        ] {
            assert_eq!(
                fnv1a32(FNV_OFFSET_BASIS, input.as_bytes()),
                expect,
                "{input:?}"
            );
        }
    }

    #[test]
    fn safe_encode_string_maps_digits_like_kubernetes() {
        assert_eq!(safe_encode_string("0123456789"), "456789bcdf");
        assert_eq!(safe_encode_string(""), "");
    }
}
