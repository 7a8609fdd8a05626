"""Class keys: an emoji's code point sequence without U+FE0F, lowercase hex without leading
zeros, joined by '-' (Twemoji's file names, e.g. '1f468-200d-1f469-200d-1f467', '23-20e3').

Skin-tone variants, flags (regional-indicator pairs, tag sequences), lone combining marks and
private-use code points (a vendor's own extras) are left out.
"""
import os

from embedding_transfer.dataset.emoji import sort_key  # noqa: F401  (the dataset's class order, re-exported)

VS16, ZWJ, KEYCAP = 0xFE0F, 0x200D, 0x20E3
SKIN_TONES = range(0x1F3FB, 0x1F400)          # U+1F3FB..U+1F3FF
REGIONAL_INDICATORS = range(0x1F1E6, 0x1F200)  # U+1F1E6..U+1F1FF
TAGS = range(0xE0020, 0xE0080)                 # U+E0020..U+E007F (subdivision flags)
PRIVATE_USE = (range(0xE000, 0xF900), range(0xF0000, 0x110000))


def parse_hex_sequence(name):
    """'0023-FE0F-20E3' / '23-fe0f-20e3.png' / '1f600_200d...' -> [0x23, 0xFE0F, 0x20E3]."""
    stem = os.path.basename(name).split(".")[0]
    return [int(part, 16) for part in stem.replace("_", "-").split("-") if part]


def key_from_codepoints(codepoints):
    """Code points -> class key: U+FE0F dropped, lowercase hex without leading zeros, '-'."""
    return "-".join(f"{cp:x}" for cp in codepoints if cp != VS16)


def key_from_hex(name):
    """A file name or hex sequence (any case, with or without FE0F) -> class key."""
    return key_from_codepoints(parse_hex_sequence(name))


def key_from_text(text):
    """An emoji string ('#\ufe0f\u20e3') -> class key ('23-20e3')."""
    return key_from_codepoints(ord(c) for c in text)


def key_codepoints(key):
    return [int(part, 16) for part in key.split("-")]


def is_private_use(key):
    return any(cp in r for cp in key_codepoints(key) for r in PRIVATE_USE)


def skip_reason(key):
    """Why a class key is left out ('skin tone', 'flag', 'component', 'private use'), or None."""
    cps = key_codepoints(key)
    if cps[0] in (KEYCAP, ZWJ):
        return "component"  # a lone combining mark (OpenMoji draws U+20E3 by itself)
    if any(cp in SKIN_TONES for cp in cps):
        return "skin tone"
    if any(cp in REGIONAL_INDICATORS or cp in TAGS for cp in cps):
        return "flag"
    if is_private_use(key):
        return "private use"  # no standard emoji: one vendor's extra
    return None


def key_to_text(key):
    """The emoji string to render for a key; keycaps get their U+FE0F back ('23-20e3' -> '#\ufe0f\u20e3').

    Without it OpenMoji's font draws a keycap as the empty key frame.
    """
    cps = key_codepoints(key)
    out = []
    for i, cp in enumerate(cps):
        out.append(cp)
        if i + 1 < len(cps) and cps[i + 1] == KEYCAP:
            out.append(VS16)
    return "".join(map(chr, out))
