"""Downloading and unpacking, shared by scripts/download_data.py and scripts/download_sources.py.

fetch(url, dest, md5=None) downloads over HTTP(S) (or FTP) into `dest + '.part'` with a progress
bar, resumes an existing `.part` with an HTTP Range request (hosts drop multi-GB transfers), checks
the MD5 when one is known, and only then renames the file to `dest`: a file at `dest` is always
complete. unpack() extracts into a scratch folder first, so an archive that turns out damaged
leaves nothing half-unpacked behind.

Failures raise FetchError (a UserError): one line saying what went wrong and what to do.
"""
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib

from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))

from embedding_transfer.errors import UserError  # noqa: E402

CHUNK = 1 << 20
TIMEOUT = 60  # seconds without a byte before giving up (a resumed run continues from there)
USER_AGENT = "LabelRelaxation-reproduction-downloader"  # some hosts refuse urllib's default agent


class FetchError(UserError):
    """One file could not be downloaded, verified or unpacked."""


def md5sum(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path, md5, what=None):
    """Raise FetchError (after removing `path`) when its MD5 is not `md5`: a damaged or wrong file
    must not be unpacked, and must not be resumed from either."""
    got = md5sum(path)
    if got != md5.lower():
        os.remove(path)
        raise FetchError(f"{what or path} is corrupt: MD5 {got}, expected {md5}; removed it")


def fetch(url, dest, md5=None, quiet=False):
    """Download `url` to `dest` through `dest.part` (resumed if present); returns `dest`."""
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    part = dest + ".part"
    _download(url, part, os.path.basename(dest), quiet)
    if md5:
        check_md5(part, md5, f"{os.path.basename(dest)} from {url}")
    os.replace(part, dest)
    return dest


def _resumable(url):
    return url.startswith(("http://", "https://"))


def _open(url, start):
    """The response for `url` from byte `start` on (a Range request when start > 0)."""
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)


def _content_range(resp):
    """(first byte, total size) from a Content-Range header, None where absent or unreadable."""
    m = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", resp.headers.get("Content-Range", ""))
    if not m:
        return None, None
    return (None if m.group(1) == "*" else int(m.group(1)),
            None if m.group(2) == "*" else int(m.group(2)))


def _download(url, part, name, quiet):
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have and not _resumable(url):  # FTP: no Range through urllib, start over
        os.remove(part)
        have = 0
    try:
        resp = _open(url, have)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # Nothing left after byte `have`: the .part is complete if the server's size says so.
            if _content_range(e)[1] == have:
                return
            os.remove(part)  # longer than the file: not this file, start over
            return _download(url, part, name, quiet)
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise FetchError(f"{url}: cannot connect ({reason})") from None
    with resp:
        if have:
            first, _ = _content_range(resp)
            if getattr(resp, "status", None) != 206 or first != have:
                have = 0  # the server ignored the Range and sends the whole file: start over
            elif not quiet:
                print(f"resuming {name} at {have:,} bytes", file=sys.stderr)
        _copy(resp, part, have, name, url, quiet)


def _copy(resp, part, have, name, url, quiet):
    """Append the response body to `part` (or overwrite it when have == 0), with a progress bar."""
    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    got = 0
    try:
        with open(part, "ab" if have else "wb") as f, \
                tqdm(total=None if expected is None else have + expected, initial=have, unit="B",
                     unit_scale=True, unit_divisor=1024, desc=name, disable=quiet) as bar:
            for block in iter(lambda: resp.read(CHUNK), b""):
                f.write(block)
                got += len(block)
                bar.update(len(block))
    except (OSError, http.client.HTTPException) as e:  # connection reset, timeout, disk full
        raise FetchError(f"{url}: the download of {name} stopped after {have + got:,} bytes "
                         f"({type(e).__name__}: {e}); run again to resume it") from None
    if expected is not None and got < expected:
        # http.client returns a short body without complaint when the connection drops.
        raise FetchError(f"{url}: the connection closed after {have + got:,} of {have + expected:,} "
                         f"bytes of {name}; run again to resume it")


def fetch_first(urls, dest, md5=None, quiet=False):
    """fetch() from the first of `urls` that works; FetchError listing every failure otherwise."""
    failures = []
    for url in urls:
        if not quiet:
            print(f"downloading {url}", file=sys.stderr)
        try:
            return fetch(url, dest, md5, quiet)
        except FetchError as e:
            print(f"  failed: {e}", file=sys.stderr)
            failures.append(str(e))
    raise FetchError(f"could not download {os.path.basename(dest)}: " + "; ".join(failures))


def check_archive(path):
    """Read every member of a .zip or .tar(.gz) through its checksums (zip CRCs, gzip CRC), for
    archives whose MD5 is not known: a truncated or damaged one fails here, before unpacking.
    A damaged archive is removed."""
    try:
        if path.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad:
                raise zipfile.BadZipFile(f"CRC error in {bad}")
        else:
            with tarfile.open(path) as t:
                for member in t:
                    if member.isfile():
                        f = t.extractfile(member)
                        while f.read(CHUNK):
                            pass
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
        os.remove(path)
        raise FetchError(f"{path} is damaged ({type(e).__name__}: {e}); removed it "
                         "(run again to download it afresh)") from None


def unpack(archive, into, quiet=False):
    """Extract `archive` (.zip, .tgz, .tar.gz, .tar) into the folder `into`; returns the top-level
    names it added. Extracted into a scratch folder inside `into` first, then moved into place,
    so an interrupted or failed extraction leaves no partial tree that would look complete."""
    scratch = os.path.join(into, f".unpacking-{os.path.basename(archive)}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    if not quiet:
        print(f"unpacking {archive}", file=sys.stderr)
    try:
        if archive.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:  # zipfile drops '..' and absolute paths itself
                z.extractall(scratch)
        else:
            with tarfile.open(archive) as t:
                # The 'data' filter refuses links and paths leaving the folder (Python >= 3.11.4).
                if hasattr(tarfile, "data_filter"):
                    t.extractall(scratch, filter="data")
                else:
                    t.extractall(scratch)
        names = sorted(os.listdir(scratch))
        for name in names:
            merge(os.path.join(scratch, name), os.path.join(into, name))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise FetchError(f"cannot unpack {archive} ({type(e).__name__}: {e}); delete it and run "
                         "again to download it afresh") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return names


def merge(src, dst):
    """Move `src` to `dst`; folders that exist on both sides are merged (files from `src` win),
    so that nothing of the user's beside the archive's files is deleted."""
    if os.path.isdir(src) and os.path.isdir(dst) and not os.path.islink(dst):
        for name in os.listdir(src):
            merge(os.path.join(src, name), os.path.join(dst, name))
        os.rmdir(src)
        return
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)
    os.replace(src, dst)
