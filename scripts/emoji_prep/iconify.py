"""Iconify icon sets (npm `@iconify-json/<set>`): SVG icons by name, mapped to class keys.

A package holds `icons.json` ({"icons": {name: {"body": <svg content>, "width"?, "height"?,
"left"?, "top"?, "hFlip"?, "vFlip"?, "rotate"?, "hidden"?}}, "aliases": {name: {"parent": name,
transforms?}}, "width", "height"}) and, for some sets, `chars.json` ({code point hex: name}; an
older layout has it as "chars" inside icons.json).

Code points of an icon: from its set's `chars` when it has them; otherwise by its name, looked up
in the `chars` of the installed sets (`name_index`): iconify names emoji by their current Unicode
CLDR names ('grinning-face', 'beaming-face-with-smiling-eyes') in every set and keeps older names
as aliases. Icons whose name maps to no code point are skipped.
"""
import json
import os

from .keys import is_private_use, key_from_hex

MAX_ALIAS_DEPTH = 8


class IconSet:
    def __init__(self, data, chars=None, info=None, path=None):
        self.prefix = data.get("prefix", "")
        self.width = data.get("width", 16)
        self.height = data.get("height", 16)
        self.left = data.get("left", 0)
        self.top = data.get("top", 0)
        self.icons = data.get("icons", {})
        self.aliases = data.get("aliases", {})
        self.chars = dict(data.get("chars") or {})
        self.chars.update(chars or {})
        self.info = info or {}
        self.path = path

    @classmethod
    def load(cls, folder):
        """An installed package folder (holding icons.json)."""
        with open(os.path.join(folder, "icons.json"), encoding="utf-8") as f:
            data = json.load(f)
        extra = {}
        for name in ("chars", "info"):
            p = os.path.join(folder, f"{name}.json")
            if os.path.isfile(p):
                with open(p, encoding="utf-8") as f:
                    extra[name] = json.load(f)
        return cls(data, chars=extra.get("chars"), info=extra.get("info"), path=folder)

    def resolve(self, name):
        """(icon, (hflip, vflip, quarter turns clockwise)) of an icon or alias name; None if absent.

        Alias transforms compose with their parents' as iconify does (flips toggle, turns add)."""
        h = v = False
        r = 0
        for _ in range(MAX_ALIAS_DEPTH):
            item = self.icons.get(name) or self.aliases.get(name)
            if item is None:
                return None
            h ^= bool(item.get("hFlip", False))
            v ^= bool(item.get("vFlip", False))
            r += int(item.get("rotate", 0))
            if name in self.icons:
                return item, (h, v, r % 4)
            name = item.get("parent")
        return None

    def svg(self, name):
        """(SVG document, (hflip, vflip, turns)) of an icon; the transform is left to the raster."""
        resolved = self.resolve(name)
        if resolved is None:
            return None
        icon, transform = resolved
        w, h = icon.get("width", self.width), icon.get("height", self.height)
        left, top = icon.get("left", self.left), icon.get("top", self.top)
        doc = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
               f'viewBox="{left} {top} {w} {h}" width="{w}" height="{h}">{icon["body"]}</svg>')
        return doc, transform

    def chars_keys(self):
        """{class key: icon name} from the set's own `chars` (private-use code points left out)."""
        out = {}
        for hexseq, name in sorted(self.chars.items()):
            try:
                key = key_from_hex(hexseq)
            except ValueError:
                continue
            if key and not is_private_use(key) and key not in out and self.resolve(name):
                out[key] = name
        return out

    def name_keys(self, index):
        """{class key: icon name} by name through `index` ({name: key}, see `name_index`).

        Drawings by their own names first (icons that are not hidden, and aliases that flip or
        turn their parent, e.g. a right hand drawn as the mirrored left hand); then plain aliases
        for keys that no drawing took (an old name of an icon can be the current name of its
        emoji)."""
        out = {}
        drawings = [n for n in self.icons if not self.icons[n].get("hidden")]
        drawings += [n for n, a in self.aliases.items() if set(a) != {"parent"}]
        plain = [n for n, a in self.aliases.items() if set(a) == {"parent"}]
        for names in (sorted(drawings), sorted(plain)):
            for name in names:
                key = index.get(name)
                if key and key not in out and self.resolve(name):
                    out[key] = name
        return out

    def keys(self, index):
        """{class key: icon name}: from the set's `chars`, then by name for the names they lack
        (iconify's `chars` leave out aliases, e.g. mirrored drawings)."""
        out = self.chars_keys()
        named = set(self.chars.values())  # a name the chars give a code point keeps that one
        for key, name in self.name_keys(index).items():
            if name not in named:
                out.setdefault(key, name)
        return out


def name_index(icon_sets):
    """{icon name: class key} from the `chars` of the given sets. A name that means different
    code points in different sets (private-use ones aside) is left out as ambiguous."""
    seen = {}
    for s in icon_sets:
        for key, name in s.chars_keys().items():
            seen.setdefault(name, set()).add(key)
    return {name: next(iter(keys)) for name, keys in seen.items() if len(keys) == 1}
