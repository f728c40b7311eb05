//! How long a text is as SMS, and cutting one to fit.
//!
//! A text is sent in GSM-7 (the GSM 03.38 default alphabet) when every character is in it:
//! 160 units in one message, 153 in each part of a longer one (the rest of a part is the
//! header that joins the parts). Characters of the basic set are one unit; those of the
//! extension table (`^ { } \ [ ~ ] |`, `€` and form feed) are two (an escape and the
//! character). One character outside both turns the whole text into UCS-2: 70 UTF-16 units
//! in one message, 67 in each part (a character beyond the Basic Multilingual Plane, an
//! emoji say, is two units).
//!
//! Parts are filled in order and a character is never split between two parts (neither a
//! GSM-7 escape and its character nor a UTF-16 surrogate pair), as senders do; so a text of
//! 306 GSM-7 units with an extension character on the boundary of its first part takes three
//! parts, not two.
//!
//! [`fit`] cuts a text that takes more segments than allowed: it keeps the longest start
//! that fits with an ellipsis after it. The ellipsis is `...` in GSM-7 (`…` is not in the
//! GSM-7 alphabet and would turn the message into UCS-2, which holds less than half as
//! much) and `…` in UCS-2; white space before it is dropped.

use std::borrow::Cow;

/// The GSM 03.38 basic character set (its escape, 0x1B, is no character of its own).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each is sent as the escape and a character.
const EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// The GSM-7 units of `c` (1 in the basic set, 2 in the extension table), or None when
/// GSM-7 cannot carry it.
pub fn gsm7_units(c: char) -> Option<usize> {
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// How a text is encoded on the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    /// The encoding of `text`: GSM-7 if it carries every character, else UCS-2.
    pub fn of(text: &str) -> Self {
        if text.chars().all(|c| gsm7_units(c).is_some()) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    /// Units in a message of one segment.
    pub fn single(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units in each part of a message of several segments.
    pub fn part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }

    /// The units of `c` in this encoding (a character GSM-7 cannot carry is not asked
    /// about in GSM-7; it would count 1).
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => gsm7_units(c).unwrap_or(1),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

/// A text's size as SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub encoding: Encoding,
    /// GSM-7 septets or UTF-16 code units.
    pub units: usize,
    /// Messages it is sent as (an empty text is one).
    pub segments: usize,
}

/// The size of `text` as SMS.
pub fn count(text: &str) -> Count {
    let encoding = Encoding::of(text);
    let units = text.chars().map(|c| encoding.units(c)).sum();
    let segments = if units <= encoding.single() {
        1
    } else {
        parts(text, encoding)
    };
    Count {
        encoding,
        units,
        segments,
    }
}

/// The parts of a text too long for one segment: filled in order, no character split
/// between two.
fn parts(text: &str, encoding: Encoding) -> usize {
    let capacity = encoding.part();
    let mut parts = 1;
    let mut used = 0;
    for c in text.chars() {
        let units = encoding.units(c);
        if used + units > capacity {
            parts += 1;
            used = 0;
        }
        used += units;
    }
    parts
}

/// `text` as sent in at most `max_segments` segments (at least 1): itself when it fits,
/// else its longest start that fits with an ellipsis after it (see the module's
/// documentation).
pub fn fit(text: &str, max_segments: usize) -> Cow<'_, str> {
    let max_segments = max_segments.max(1);
    if count(text).segments <= max_segments {
        return Cow::Borrowed(text);
    }
    let ellipsis = match Encoding::of(text) {
        Encoding::Gsm7 => "...",
        Encoding::Ucs2 => "…",
    };
    let cut = |end: usize| format!("{}{ellipsis}", text[..end].trim_end());
    // Byte offsets where the starts of 0, 1, 2, … characters end. The start of `lo`
    // characters fits with the ellipsis (none does: the ellipsis alone is one segment);
    // a start grows no shorter in segments as it gets longer, so search by halves.
    let ends: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    let (mut lo, mut hi) = (0, ends.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if count(&cut(ends[mid])).segments <= max_segments {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Cow::Owned(cut(ends[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gsm7_alphabet_has_127_characters_and_10_in_its_extension_table() {
        assert_eq!(BASIC.chars().count(), 127);
        assert_eq!(EXTENSION.chars().count(), 10);
        assert!(BASIC.chars().all(|c| !EXTENSION.contains(c)));
    }

    #[test]
    fn gsm7_text_of_160_characters_is_one_segment_and_of_161_two() {
        let one = count(&"a".repeat(160));
        assert_eq!(
            one,
            Count {
                encoding: Encoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
        let two = count(&"a".repeat(161));
        assert_eq!(
            (two.encoding, two.units, two.segments),
            (Encoding::Gsm7, 161, 2)
        );
        // 153 per part once there are several.
        assert_eq!(count(&"a".repeat(306)).segments, 2);
        assert_eq!(count(&"a".repeat(307)).segments, 3);
        assert_eq!(count("").segments, 1);
    }

    #[test]
    fn accents_and_greek_capitals_of_the_basic_set_stay_gsm7_and_other_letters_do_not() {
        let gsm = "Ç Ü Δ Ω ß £5 ¥6 §1 ¿Qué? ¡Sì! @home_1 è ù ò Å å Æ æ Ø ø\r\n";
        assert_eq!(Encoding::of(gsm), Encoding::Gsm7);
        assert_eq!(count(gsm).units, gsm.chars().count());
        for other in ["ç", "í", "…", "×", "ж", "’", "\t"] {
            assert_eq!(Encoding::of(other), Encoding::Ucs2, "{other:?}");
            assert_eq!(Encoding::of(&format!("{gsm}{other}")), Encoding::Ucs2);
        }
    }

    #[test]
    fn extension_characters_count_two() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            assert_eq!(gsm7_units(c), Some(2), "{c:?}");
        }
        // 80 of them fill one segment, 81 do not.
        assert_eq!(count(&"€".repeat(80)).units, 160);
        assert_eq!(count(&"€".repeat(80)).segments, 1);
        assert_eq!(count(&"{".repeat(81)).segments, 2);
        // 159 + one extension character is 161 units: two segments.
        let text = format!("{}€", "a".repeat(159));
        assert_eq!(count(&text).units, 161);
        assert_eq!(count(&text).segments, 2);
    }

    #[test]
    fn an_extension_character_is_not_split_between_two_parts() {
        // 152 + 2 + 152 = 306 units, which would be two parts of 153 if the escape and its
        // character could be parted: the € moves to the second part, the last 'a' to a third.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(count(&text).units, 306);
        assert_eq!(count(&text).segments, 3);
    }

    #[test]
    fn ucs2_text_of_70_units_is_one_segment_and_of_71_two() {
        let one = count(&"ж".repeat(70));
        assert_eq!(
            (one.encoding, one.units, one.segments),
            (Encoding::Ucs2, 70, 1)
        );
        assert_eq!(count(&"ж".repeat(71)).segments, 2);
        assert_eq!(count(&"ж".repeat(134)).segments, 2);
        assert_eq!(count(&"ж".repeat(135)).segments, 3);
        // One character outside GSM-7 makes the whole text UCS-2.
        let mixed = format!("{}ж", "a".repeat(69));
        assert_eq!(count(&mixed).encoding, Encoding::Ucs2);
        assert_eq!(count(&mixed).segments, 1);
        let mixed = format!("{}×", "a".repeat(70));
        assert_eq!(count(&mixed).segments, 2, "× (U+00D7) is not GSM-7");
    }

    #[test]
    fn characters_beyond_the_basic_plane_count_two_utf16_units_and_stay_whole() {
        assert_eq!(count(&"😀".repeat(35)).units, 70);
        assert_eq!(count(&"😀".repeat(35)).segments, 1);
        // 36 × 2 = 72 units: 33 emoji (66 units) fill the first part, the 34th would split.
        assert_eq!(count(&"😀".repeat(36)).segments, 2);
        assert_eq!(count(&"😀".repeat(67)).segments, 3, "33 + 33 + 1");
    }

    #[test]
    fn a_text_that_fits_is_left_as_it_is() {
        let text = "Order 7 is confirmed: 2 x ABC-001 reserved for you.";
        assert!(matches!(fit(text, 1), Cow::Borrowed(t) if t == text));
        let long = "b".repeat(459);
        assert!(matches!(fit(&long, 3), Cow::Borrowed(_)));
    }

    #[test]
    fn a_gsm7_text_too_long_is_cut_with_three_dots_and_stays_gsm7() {
        let text = "a".repeat(500);
        let one = fit(&text, 1);
        assert_eq!(one, format!("{}...", "a".repeat(157)));
        assert_eq!(count(&one).encoding, Encoding::Gsm7);
        assert_eq!(count(&one).units, 160);
        let three = fit(&text, 3);
        assert_eq!(three, format!("{}...", "a".repeat(456)));
        assert_eq!(count(&three).segments, 3);
        // White space before the ellipsis goes.
        let words = format!("{} {}", "a".repeat(156), "b".repeat(10));
        assert_eq!(fit(&words, 1), format!("{}...", "a".repeat(156)));
    }

    #[test]
    fn a_ucs2_text_too_long_is_cut_with_an_ellipsis_character() {
        let text = "ж".repeat(200);
        let one = fit(&text, 1);
        assert_eq!(one, format!("{}…", "ж".repeat(69)));
        assert_eq!(count(&one).units, 70);
        let two = fit(&text, 2);
        assert_eq!(two, format!("{}…", "ж".repeat(133)));
        assert_eq!(count(&two).segments, 2);
        // An emoji is not cut in half to make room.
        let emoji = "😀".repeat(50);
        let cut = fit(&emoji, 1);
        assert_eq!(cut, format!("{}…", "😀".repeat(34)));
    }

    #[test]
    fn zero_segments_is_taken_as_one() {
        assert_eq!(fit(&"a".repeat(200), 0), format!("{}...", "a".repeat(157)));
    }
}
