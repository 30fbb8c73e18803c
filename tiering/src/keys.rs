//! Object keys of the tier. Segment keys spread over 256 prefixes so that S3, which scales
//! request rates per prefix, does not throttle a busy cluster on one hot prefix.

use ulid::Ulid;

/// Top-level folder of all segment objects.
pub const SEGMENTS_PREFIX: &str = "segments";

/// A fresh, unique segment key: `segments/<2 hex chars>/<ulid>.seg`.
pub fn new_segment_key() -> String {
    segment_key(Ulid::new())
}

/// The key of the segment with id `id`. The two hex chars are the low byte of the CRC-32C of
/// the ULID's text, so the prefix is a pure function of the id and ids spread evenly over
/// prefixes even though ULIDs created together share their leading (time) characters.
pub fn segment_key(id: Ulid) -> String {
    let text = id.to_string();
    let prefix = crc32c::crc32c(text.as_bytes()) & 0xff;
    format!("{SEGMENTS_PREFIX}/{prefix:02x}/{text}.seg")
}

/// When the segment `key` was created (milliseconds since the epoch), from the ULID in its
/// name; `None` for a key that is not a segment key.
pub fn segment_created_ms(key: &str) -> Option<u64> {
    let name = key.strip_prefix(SEGMENTS_PREFIX)?.rsplit('/').next()?;
    let id = Ulid::from_string(name.strip_suffix(".seg")?).ok()?;
    Some(id.timestamp_ms())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = new_segment_key();
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{key}");
        assert_eq!(parts[0], "segments");
        assert_eq!(parts[1].len(), 2);
        assert!(
            parts[1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let id = parts[2].strip_suffix(".seg").expect("ends in .seg");
        let id: Ulid = id.parse().expect("a ulid");
        assert_eq!(segment_key(id), key);
    }

    #[test]
    fn keys_are_unique_and_spread_over_prefixes() {
        let keys: Vec<String> = (0..4096).map(|_| new_segment_key()).collect();
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        let prefixes: HashSet<&str> = keys.iter().map(|key| &key[9..11]).collect();
        // 4096 keys over 256 prefixes leave a given prefix empty with probability ~1e-7.
        assert!(
            prefixes.len() > 240,
            "only {} prefixes used",
            prefixes.len()
        );
    }

    #[test]
    fn segment_keys_tell_their_creation_time() {
        let id = Ulid::from_parts(1_700_000_000_123, 42);
        assert_eq!(
            segment_created_ms(&segment_key(id)),
            Some(1_700_000_000_123)
        );
        assert_eq!(segment_created_ms("segments/00/not-a-ulid.seg"), None);
        assert_eq!(segment_created_ms("other/00/x"), None);
    }
}
