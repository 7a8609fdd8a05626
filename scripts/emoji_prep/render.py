"""Drawing one emoji: a vendor's PNG, a colour font's glyph or an SVG, normalised alike."""
import io
import re

import PIL.Image

IMAGE_SIZE = 64     # saved square canvas; the demo's transforms scale it down
CONTENT_SIZE = 56   # the content's longer side after cropping (a 4 px white margin)
ALPHA_THRESHOLD = 16  # a pixel is content when its alpha exceeds this (ignores faint halos)
SVG_SIZE = 96       # first raster size of an SVG's longer side (larger when its content is small)
VIEWBOX = re.compile(r'<svg\b[^>]*?\bviewBox="([^"]+)"')


def normalize_image(rgba):
    """RGBA drawing -> RGB IMAGE_SIZE square: flattened on white, cropped to the content
    (alpha > ALPHA_THRESHOLD), its longer side scaled to CONTENT_SIZE, centred. None when blank."""
    rgba = rgba.convert("RGBA")
    bbox = rgba.getchannel("A").point(lambda a: 255 if a > ALPHA_THRESHOLD else 0).getbbox()
    if bbox is None:
        return None
    flat = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    content = flat.convert("RGB").crop(bbox)
    w, h = content.size
    scale = CONTENT_SIZE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    content = content.resize(size, PIL.Image.Resampling.LANCZOS)
    canvas = PIL.Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    canvas.paste(content, ((IMAGE_SIZE - size[0]) // 2, (IMAGE_SIZE - size[1]) // 2))
    return canvas


class FontRenderer:
    """Draws emoji strings with a colour font; refuses strings the font cannot draw as one glyph."""

    def __init__(self, path, size):
        from PIL import ImageFont, features
        layout = (ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC)
        self.font = ImageFont.truetype(str(path), size, layout_engine=layout)
        self.size = size
        self.canvas = int(size * 2)
        self.advance = self.font.getlength("\U0001F600")  # one emoji glyph's width
        self.notdef = self._draw("\U0010FFFD")  # what a missing character looks like

    def _draw(self, text):
        from PIL import ImageDraw
        im = PIL.Image.new("RGBA", (self.canvas, self.canvas), (255, 255, 255, 0))
        ImageDraw.Draw(im).text((self.canvas // 2, self.canvas // 2), text, font=self.font,
                                embedded_color=True, anchor="mm")
        return im

    def render(self, text):
        """RGBA drawing of `text`, or None when it is missing or falls apart into several glyphs."""
        if self.font.getlength(text) > 1.25 * self.advance:
            return None
        im = self._draw(text)
        if im.getbbox() is None or (self.notdef.getbbox() is not None
                                    and im.tobytes() == self.notdef.tobytes()):
            return None
        return im


def svg_available():
    try:
        import resvg_py  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_svg(svg, size=SVG_SIZE, transform=(False, False, 0)):
    """SVG document -> RGBA image whose longer side is `size` px (resvg, no system fonts), or
    larger when the drawing fills too little of it for CONTENT_SIZE px without upscaling.

    transform: (mirror left-right, flip top-bottom, quarter turns clockwise), applied in that
    order (an iconify alias's flips and rotation). None when the SVG cannot be drawn."""
    m = VIEWBOX.search(svg)
    try:
        w, h = (float(v) for v in m.group(1).replace(",", " ").split()[2:4])
    except (AttributeError, ValueError):
        w = h = 1.0
    if not (w > 0 and h > 0):
        return None
    im = _rasterize(svg, w, h, size)
    if im is None:
        return None
    bbox = im.getchannel("A").point(lambda a: 255 if a > ALPHA_THRESHOLD else 0).getbbox()
    if bbox is not None:
        extent = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
        if extent < CONTENT_SIZE:
            im = _rasterize(svg, w, h, min(4 * size, -(-size * CONTENT_SIZE // extent))) or im
    hflip, vflip, turns = transform
    if hflip:
        im = im.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
    if vflip:
        im = im.transpose(PIL.Image.Transpose.FLIP_TOP_BOTTOM)
    for _ in range(turns % 4):
        im = im.transpose(PIL.Image.Transpose.ROTATE_270)  # 90 degrees clockwise
    return im


def _rasterize(svg, w, h, size):
    import resvg_py
    scale = size / max(w, h)
    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=max(1, round(w * scale)),
                                    height=max(1, round(h * scale)), skip_system_fonts=True)
    except (ValueError, RuntimeError, OSError):
        return None
    with PIL.Image.open(io.BytesIO(bytes(png))) as im:
        return im.convert("RGBA")
