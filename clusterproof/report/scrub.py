"""Keep secrets and environment dumps out of everything the report writes, and prove it afterwards.

``clusterproof.redact`` masks registered secrets and ``NAME=value`` assignments whose name looks secret.
Reports need two more things on top of it:

- an *environment dump* (``env`` output, or the ``"env": ["K=V", ...]`` array nccl-tests ``-J`` writes) is
  removed as a whole, because it leaks host names, paths and tokens whose names look harmless;
- JSON objects and table columns whose *key* looks secret (``{"AWS_SECRET_ACCESS_KEY": "..."}``) have their
  value masked, which the text patterns cannot see because of the quotes between name and value.

``scan_dir`` re-reads a finished report directory and says which files still contain something the
redactor would change; the scorecard's Security criterion is built on it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from clusterproof.redact import MASK, redact
from clusterproof.secret_ledger import LEDGER_DIR, Fingerprints

#: Lines of ``env``/``printenv`` output: ``NAME=value``.
_ENV_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=.*$")
#: A line whose name is upper case, as environment variable names are.
_ENV_UPPER_NAME = re.compile(r"^[ \t]*(?:export[ \t]+)?[A-Z_][A-Z0-9_]*=")
#: A dump needs this many consecutive ``NAME=value`` lines; fewer are ordinary settings worth keeping.
_ENV_MIN_LINES = 5
#: One line holding a whole environment (``env | tr '\n' ' '``) has well-known variables in it.
_ENV_TOKEN = re.compile(r"(?<![\w-])[A-Za-z_][A-Za-z0-9_]*=\S*")
_ENV_WELL_KNOWN = re.compile(r"(?<![\w-])(?:PATH|HOME|USER|SHELL|PWD|HOSTNAME|LANG|TERM)=")
#: The ``"env": ["K=V", ...]`` array of nccl-tests JSON output (and any list of quoted assignments).
_QUOTED_ENV_LIST = re.compile(r'"[A-Za-z_][A-Za-z0-9_]*=[^"\n]*"(?:\s*,\s*"[A-Za-z_][A-Za-z0-9_]*=[^"\n]*"){4,}')
#: Base64 images embedded in HTML are generated from scrubbed text; scanning them only finds noise.
_DATA_URI = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+")


def _dump_note(count: int) -> str:
    return f"[environment dump removed: {count} variables]"


def remove_env_dumps(text: str) -> str:
    """Return ``text`` with every environment dump replaced by a one-line note.

    A dump is: five or more consecutive ``NAME=value`` lines, most of them upper case; a single line with five or more ``NAME=value``
    tokens among which a well-known variable (``PATH=``, ``HOME=``...); or a list of five or more quoted
    ``"NAME=value"`` strings. Shorter runs (``NCCL_IB_GID_INDEX=5`` in a command line) are kept.
    """
    text = _QUOTED_ENV_LIST.sub(lambda m: '"' + _dump_note(m.group(0).count('"') // 2) + '"', text)
    lines = text.split("\n")
    out: list[str] = []
    run: list[str] = []

    def one_line(line: str) -> str:
        tokens = _ENV_TOKEN.findall(line)
        if len(tokens) >= _ENV_MIN_LINES and _ENV_WELL_KNOWN.search(line):
            return _dump_note(len(tokens))
        return line

    def flush() -> None:
        # Environment variables are upper case by convention; a run of lower-case `name=value` lines is code
        # (keyword arguments in a traceback), not a dump, and must stay readable.
        upper = sum(1 for line in run if _ENV_UPPER_NAME.match(line))
        if len(run) >= _ENV_MIN_LINES and upper * 2 >= len(run):
            out.append(_dump_note(len(run)))
        else:
            out.extend(one_line(line) for line in run)
        run.clear()

    for line in lines:
        if _ENV_LINE.match(line):
            run.append(line)
            continue
        flush()
        out.append(one_line(line))
    flush()
    return "\n".join(out)


def scrub(text: str) -> str:
    """Return ``text`` without environment dumps, registered secrets or secret-looking assignments."""
    return redact(remove_env_dumps(text))


def redact_page(text: str) -> str:
    """A last ``redact`` pass over a whole page built from already-scrubbed pieces (HTML, Markdown, JSON).

    Two things would go wrong with a plain ``redact``: a mask glued to markup (``KEY=***REDACTED***</td>``)
    would be taken for a value again and swallow the markup, and base64 images could in theory hold a
    secret-shaped run of letters. So masks get a temporary trailing space and data URIs are left alone.

    Returns:
        ``text`` with any registered secret or secret-looking assignment that is still in it masked.
    """
    parts = _DATA_URI.split(text)
    uris = _DATA_URI.findall(text)
    cleaned = [redact(p.replace(MASK, MASK + " ")).replace(MASK + " ", MASK) for p in parts]
    out = cleaned[0]
    for uri, part in zip(uris, cleaned[1:], strict=True):
        out += uri + part
    return out


def _key_is_secret(key: str) -> bool:
    # Reuse the redactor's notion of a secret-looking name instead of keeping a second list.
    return redact(f"{key}=x") != f"{key}=x"


def scrub_obj(obj: Any) -> Any:
    """Return a copy of a JSON-like value (dicts, lists, strings, numbers) with every string scrubbed and
    the values of secret-looking keys replaced by the mask."""
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {
            k: (MASK if isinstance(k, str) and _key_is_secret(k) and v not in (None, "") else scrub_obj(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [scrub_obj(v) for v in obj]
    return obj


def scrub_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` whose string cells are scrubbed; a column whose name looks secret is masked
    whole. Non-string cells (numbers, NA) are left as they are, so dtypes survive."""
    out = df.copy()
    for col in out.columns:
        series = out[col]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        if _key_is_secret(str(col)):
            out[col] = series.map(lambda v: MASK if isinstance(v, str) and v else v)
        else:
            out[col] = series.map(lambda v: scrub(v) if isinstance(v, str) else v)
    return out


@dataclass(frozen=True)
class Leak:
    """A place in a report file where the redactor would still change something. Never holds the secret."""

    path: str  # relative to the scanned directory
    where: str  # "line 12" or "column detail, row 3"

    def __str__(self) -> str:
        return f"{self.path}: secret-looking text at {self.where}"


@dataclass(frozen=True)
class ScanResult:
    """What ``scan_dir`` looked at and what it found."""

    files: int
    bytes: int
    leaks: list[Leak]


def _still_secret(text: str) -> bool:
    """True when scrubbing would change ``text``. A mask glued to what follows it (``KEY=***REDACTED***</td>``)
    would be matched again as a value, so masks are given a trailing space before the comparison."""
    probe = text.replace(MASK, MASK + " ")
    return scrub(probe) != probe


def _text_leaks(rel: str, text: str, minted: Fingerprints | None = None) -> list[Leak]:
    leaks: list[Leak] = []
    if minted is not None and len(minted) and minted.contains_secret(text):
        leaks += [Leak(rel, f"line {i} (a secret this run minted)") for i, line in enumerate(text.split("\n"), start=1)
                  if minted.contains_secret(line)]
    if not _still_secret(text):
        return leaks
    found = [Leak(rel, f"line {i}") for i, line in enumerate(text.split("\n"), start=1) if _still_secret(line)]
    # A multi-line environment dump changes only when seen whole, so no single line is to blame.
    return leaks + (found or [Leak(rel, "an environment dump")])


def _parquet_leaks(rel: str, path: Path, minted: Fingerprints | None = None) -> list[Leak]:
    df = pd.read_parquet(path)
    leaks = []
    for col in df.columns:
        if _key_is_secret(str(col)):
            values = [v for v in df[col].tolist() if isinstance(v, str) and v and v != MASK]
            if values:
                leaks.append(Leak(rel, f"column {col}"))
            continue
        for i, v in enumerate(df[col].tolist()):
            if isinstance(v, str) and (_still_secret(v) or (minted is not None and minted.contains_secret(v))):
                leaks.append(Leak(rel, f"column {col}, row {i}"))
    return leaks


#: Files produced from already-scrubbed data whose bytes are not text (PNG pixels).
_BINARY_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".ico"}


def scan_dir(root: Path, skip: Iterable[Path] = (), minted: Fingerprints | None = None) -> ScanResult:
    """Re-read every file under ``root`` and report each place where registered secrets, secrets the run minted
    (``minted``: their fingerprints, from :func:`~clusterproof.secret_ledger.load_fingerprints`; every process's,
    workers' included), secret-looking assignments or environment dumps remain. HTML is unescaped first
    (``&quot;`` would fool the patterns) and its embedded images are skipped; parquet files are read cell by cell.
    The ledger itself (fingerprints only) is not scanned.

    Returns:
        ``ScanResult`` with the number of files and bytes scanned and the leaks found (never the values).
    """
    skipped = {p.resolve() for p in skip}
    files = 0
    size = 0
    leaks: list[Leak] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.resolve() in skipped or path.suffix.lower() in _BINARY_SUFFIXES:
            continue
        rel = path.relative_to(root).as_posix()
        if rel.split("/", 1)[0] == LEDGER_DIR:
            continue
        files += 1
        size += path.stat().st_size
        if path.suffix == ".parquet":
            leaks.extend(_parquet_leaks(rel, path, minted))
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix in (".html", ".htm"):
            text = html.unescape(_DATA_URI.sub("", text))
        leaks.extend(_text_leaks(rel, text, minted))
    return ScanResult(files, size, leaks)


def scrub_xml_file(path: Path) -> bool:
    """Scrub every text node and attribute value of an XML file (e.g. pytest's ``junit.xml``) in place.

    Parsing first keeps the file valid XML and sees secrets that escaping (``&quot;``) would hide from a text
    pass. Returns True when anything changed.
    """
    import xml.etree.ElementTree as ET

    tree = ET.parse(path)
    changed = False
    for el in tree.iter():
        for attr in ("text", "tail"):
            value = getattr(el, attr)
            if value:
                new = scrub(value)
                if new != value:
                    setattr(el, attr, new)
                    changed = True
        for key, value in el.attrib.items():
            new = scrub(value)
            if new != value:
                el.attrib[key] = new
                changed = True
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed
