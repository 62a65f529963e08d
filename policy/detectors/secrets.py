"""Secrets in MCP traffic: provider tokens, private keys, passwords and keyed credentials.

Findings come from five independent passes, most specific first:

1. provider token formats (`secret_patterns.TOKEN_RULES`): fixed prefixes, lengths and checksummed
   or decodable structure (JWT headers, Grafana and JFrog payloads, Discord bot ids);
2. armoured and encoded private keys (PEM, OpenSSH, PGP, base64 of a PEM, bare DER in base64);
3. credentials inside a syntax: URL user-info passwords, ``Authorization`` headers, SQL
   ``IDENTIFIED BY``, command-line flags (``curl -u``, ``openssl -passin``, ``sshpass -p``);
4. keyword assignments: a key that names a secret (``password``, ``api_key``, ``client_secret``,
   ``SecretAccessKey``...) followed by ``=``, ``:``, ``=>``, a CLI space or an XML tag, in env files,
   YAML, JSON, TOML, HCL, INI and shell; the key may also be the JSON path of the scanned string;
5. an entropy fallback for long random strings assigned to a key with no telling name.

Text with URL (``%3D``) or JSON and C (``\\u0067``, ``\\x41``) escapes is also scanned as it reads
unescaped, and what is found there is masked over the escaped characters it came from: a token in a
logged query string (``token%3Dghp_...``) has no word boundary before it until the ``%3D`` is read.

A span covers the secret value only, never its key, quotes or delimiters, so that replacing it
keeps a JSON or env file well-formed. Overlapping findings merge under the most specific label.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass

from ..subject import KEY_SUFFIX
from ..verdict import Span
from .escapes import ESCAPE, unescaped_spans
from .secret_patterns import (
    JIRA_RULE,
    TOKEN_RULES,
    KeyKind,
    TokenRule,
    b64decode_loose,
    char_classes,
    classify_key,
    key_words,
    label_for,
    looks_like_placeholder,
    plausible_value,
    random_enough,
    shannon_entropy,
)
from .secret_syntax import (
    ALIBABA_SECRET_NEAR,
    ASSIGNED_RANDOM,
    ASSIGNMENT,
    AWS_SECRET_NEAR,
    B64_PRIVATE_KEY,
    B64_RUN,
    BASE64_CHARS,
    BASIC,
    BEARER,
    CODE_HINT,
    CURL_USER,
    DATABASE_SCHEMES,
    DEFAULT_ARGUMENT,
    DEFINE_BEFORE,
    DEFINE_CALL,
    DER_CONTINUATION,
    DOCKER_ENV_BEFORE,
    ENV_LOOKUPS,
    HTML_ENTITY,
    ID_WORDS,
    IDENT_BEFORE,
    JSON_NUMBER,
    JWK_PRIVATE,
    KEY_BEFORE,
    KEY_LEFT_OK,
    MYSQL_HASH,
    MYSQL_P,
    NAME_VALUE_JSON,
    NAME_VALUE_YAML,
    NETRC_BEFORE,
    OPENSSL_PASS,
    OR_DEFAULT,
    PEM_BEGIN,
    PEM_END,
    POWERSHELL,
    PROSE,
    SCHEME_BEFORE,
    SQL_IDENTIFIED,
    SQL_PASSWORD,
    SSHPASS,
    TWILIO_SID,
    URL_PLACEHOLDERS,
    URL_USERINFO,
    WORD_BEFORE,
    WORDPRESS_SALT,
    XML_ELEMENT,
)

__all__ = ["SecretsDetector"]

_NEEDLES = tuple((rule.needle, rule) for rule in TOKEN_RULES)
_ANY_NEEDLE = re.compile("|".join(re.escape(needle) for needle, _ in _NEEDLES))
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ANSI_BEFORE = re.compile(r"\x1b\[[0-9;]{0,12}m\Z")
_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Ranks decide the label when findings overlap: the most specific evidence names the secret.
_RANK_ENTROPY, _RANK_KEYWORD, _RANK_SYNTAX, _RANK_TOKEN, _RANK_KEY = range(5)
# A standalone base64 run long enough to hide a credential (a password URL, a token, "user:password")
_HEX = frozenset("0123456789abcdefABCDEF")
_ASSIGNED_BEFORE = re.compile(r"[:=][ \t]*[\"']?\Z")
BASE64_VALUE = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/]{16,8192}={0,2}(?![A-Za-z0-9+/=_\-])")
# A data: URL's base64 payload (standard or URL-safe alphabet): a file handed over inline
DATA_URL = re.compile(
    r"data:[\w.+-]*/?[\w.+-]*(?:;[\w.+-]+=?[\w.+-]*)*;base64,([A-Za-z0-9+/_\-]{16,1048576}={0,2})", re.IGNORECASE
)
_BASE64_COMMA = re.compile(";base64,", re.IGNORECASE)
# A provider token that turned out to be a documentation filler ("npm_...EXAMPLE") vetoes the
# weaker passes, which would otherwise report the same string as a keyword or entropy finding.
_VETO = ""


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    label: str
    score: float
    rank: int


def _left_ok(text: str, start: int, extra: str) -> bool:
    """Whether the character before `start` ends whatever came before (so a match is not a tail)."""
    if start == 0:
        return True
    before = text[start - 1]
    if before not in _ASCII_ALNUM and before not in extra:
        return True
    if before in "nrt" and start >= 2 and text[start - 2] == "\\":
        return True  # a JSON or shell escape (`\n`) ends the previous line
    return before == "m" and _ANSI_BEFORE.search(text, max(0, start - 16), start) is not None


def _inside(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(low <= start and end <= high for low, high in ranges)


def _reversed_before(text: str, position: int, width: int) -> str:
    return text[max(0, position - width) : position][::-1]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " \t\r\n":
        start += 1
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return start, end


def _escape_safe(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so that it neither starts inside nor ends inside a backslash escape."""
    backslashes = 0
    while start - backslashes - 1 >= 0 and text[start - backslashes - 1] == "\\":
        backslashes += 1
    if backslashes % 2:
        start += 5 if text[start : start + 1] == "u" else 1
    while end > start and text[end - 1] == "\\":
        end -= 1
    return start, end


class SecretsDetector:
    """Finds credentials, keys and tokens; each span covers the secret value only.

    `entropy_fallback` adds low-score findings for long random strings assigned to keys whose
    names say nothing (``mimi=gX69YO4C...``); it skips identifier, digest and payload keys. Scans
    hold no state, so one instance serves every thread.
    """

    name = "secrets"

    def __init__(self, *, entropy_fallback: bool = True) -> None:
        self._entropy_fallback = entropy_fallback

    @staticmethod
    def field_context(field: str) -> str:
        """Findings depend on the path's last key (`{"password": "..."}` names its value)."""
        return _named_by(field) or ""

    def scan(self, field: str, text: str, *, decoded: bool = False) -> list[Span]:
        """`decoded`: `text` is itself the decoded form of a base64 value or of escapes (it is not decoded
        again)."""
        if len(text) < 6:
            return []
        hits: list[_Hit] = []
        low = text.lower()
        if len(low) != len(text):
            low = text.translate(_UPPER_TO_LOWER)  # offsets in `low` must index `text`
        self._tokens(text, low, hits)
        self._twilio_sid(text, low, hits)
        if "-----BEGIN" in text:
            self._pem(text, hits)
        self._encoded_keys(text, hits)
        # What the specific passes found needs no second opinion from the generic ones.
        known = [(hit.start, hit.end) for hit in hits]
        self._assignments(text, low, hits, known)
        self._name_values(text, low, hits)
        self._syntax(text, low, hits)
        self._field(field, text, hits)
        if self._entropy_fallback:
            self._entropy(text, hits, known)
        if "kind: sealedsecret" in low:
            # A SealedSecret's values are public-key ciphertext, published on purpose.
            hits = [hit for hit in hits if hit.rank > _RANK_KEYWORD or hit.end - hit.start < 64]
        elif not decoded:
            self._base64_values(field, text, hits)
        if not decoded and ESCAPE.search(text):
            self._escaped(field, text, hits)
        return self._spans(field, text, hits)

    def _escaped(self, field: str, text: str, hits: list[_Hit]) -> None:
        """What the text holds once its URL, JSON and C escapes are read, masked where it was written."""
        for span in unescaped_spans(lambda view: self.scan(field, view, decoded=True), text):
            hits.append(_Hit(span.start, span.end, span.label, span.score, _RANK_SYNTAX))

    def _base64_values(self, field: str, text: str, hits: list[_Hit]) -> None:
        """A value written in base64 (a Kubernetes Secret's data, a docker or CI variable) whose decoded
        text holds a secret is masked whole: `DATABASE_URL: cG9zdGdyZXM6Ly9...`."""
        found = sorted((hit.start, hit.end) for hit in hits)
        starts = [start for start, _ in found]
        reach = list(itertools.accumulate((end for _, end in found), max))  # furthest end so far
        seen: dict[str, str | None] = {}  # a value repeated in a message is decoded once
        runs = [match.span() for match in BASE64_VALUE.finditer(text)]
        if _BASE64_COMMA.search(text):
            runs = sorted({*runs, *(match.span(1) for match in DATA_URL.finditer(text))})
        for start, end in runs:
            whole_value = start == 0 and end == len(text) and field.startswith(("structured", "arguments"))
            data_url = text[max(0, start - 7) : start].lower() == "base64,"
            if not (whole_value or data_url or _ASSIGNED_BEFORE.search(text, max(0, start - 4), start)):
                continue  # a value set by a key (`KEY: ...`, `KEY=...`, `"key": "..."`), not a wrapped document
            before = bisect.bisect_left(starts, end)  # found spans that start before this run ends
            if before and reach[before - 1] > start:
                continue  # already found
            run = text[start:end]
            if run not in seen:
                seen[run] = self._decoded_label(field, run)
            label = seen[run]
            if label is not None:
                hits.append(_Hit(start, end, "base64-" + label, 0.85, _RANK_SYNTAX))

    def _decoded_label(self, field: str, run: str) -> str | None:
        if run.isdigit() or all(ch in _HEX for ch in run):
            return None  # a number or a hex digest (hashes, ids)
        raw = b64decode_loose(run)
        if raw is None or len(raw) < 8:
            return None
        try:
            plain = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None  # binary: an image, a hash, ciphertext
        if not plain.replace("\n", "").replace("\t", "").isprintable() or not (
            ":" in plain or "=" in plain or _ANY_NEEDLE.search(plain)
        ):
            return None  # nothing a credential could be: a plain word or sentence
        inner = self.scan(field, plain, decoded=True)
        return inner[0].label if inner else None

    # -- pass 1: provider tokens ----------------------------------------------------------------

    def _tokens(self, text: str, low: str, hits: list[_Hit]) -> None:
        rules = [rule for needle, rule in _NEEDLES if needle in text]
        if any(word in low for word in ("jira", "confluence", "atlassian", "bearer", "token")):
            rules.append(JIRA_RULE)
        for rule in rules:
            for match in rule.pattern.finditer(text):
                hit = self._token_hit(rule, text, match)
                if hit is not None:
                    hits.append(hit)
        aws = [hit for hit in hits if hit.label == "aws-access-key-id"]
        for hit in aws:
            self._companion(text, hit, hits, pattern=AWS_SECRET_NEAR, label="aws-secret-access-key")
        for hit in [hit for hit in hits if hit.label == "alibaba-access-key-id"]:
            self._companion(text, hit, hits, pattern=ALIBABA_SECRET_NEAR, label="alibaba-access-key-secret")

    @staticmethod
    def _twilio_sid(text: str, low: str, hits: list[_Hit]) -> None:
        # An account SID is an identifier; it is worth masking only beside the credential it names.
        if "ac" not in low or not (
            "twilio" in low
            or "auth_token" in low
            or "authtoken" in low
            or any(h.label == "twilio-api-key" for h in hits)
        ):
            return
        for match in TWILIO_SID.finditer(text):
            if _left_ok(text, match.start(), "") and len(set(match.group())) >= 10:
                hits.append(_Hit(match.start(), match.end(), "twilio-account-sid", 0.7, _RANK_TOKEN))

    @staticmethod
    def _token_hit(rule: TokenRule, text: str, match: re.Match[str]) -> _Hit | None:
        start, end = match.span("v") if "v" in rule.pattern.groupindex else match.span()
        outer = match.start()
        if rule.back is not None:
            back = rule.back.match(text[max(0, outer - 64) : outer][::-1])
            if back is None:
                return None
            start = outer = outer - back.end()
        if rule.left is not None and not _left_ok(text, outer, rule.left):
            return None
        value = text[start:end]
        if rule.check is not None and not rule.check(value):
            return None
        if looks_like_placeholder(value, runs=rule.runs) and not (rule.proof is not None and rule.proof(value)):
            return _Hit(start, end, _VETO, 0.0, _RANK_TOKEN)
        if rule.label == "private-key-der-base64":
            end = _der_continuation(text, end)
        return _Hit(start, end, rule.label, rule.score, _RANK_TOKEN)

    @staticmethod
    def _companion(text: str, anchor: _Hit, hits: list[_Hit], *, pattern: re.Pattern[str], label: str) -> None:
        # A key id next to a random string of the secret's exact length is the pair a config holds.
        for match in pattern.finditer(text, max(0, anchor.start - 300), min(len(text), anchor.end + 300)):
            value = match.group()
            if char_classes(value) >= 3 and shannon_entropy(value) >= 3.8 and not looks_like_placeholder(value):
                hits.append(_Hit(match.start(), match.end(), label, 0.85, _RANK_TOKEN))

    # -- pass 2: private keys -------------------------------------------------------------------

    def _pem(self, text: str, hits: list[_Hit]) -> None:
        resume = 0
        for begin in PEM_BEGIN.finditer(text):
            if begin.start() < resume:
                continue
            following = PEM_BEGIN.search(text, begin.end())
            limit = min(len(text), begin.end() + 200_000, following.start() if following else len(text))
            footer = PEM_END.search(text, begin.end(), limit)
            stop = footer.end() if footer else _pem_tail(text, begin.end(), limit)
            body = text[begin.end() : footer.start() if footer else stop]
            if not _pem_body_ok(body):
                continue
            header = begin.group()
            if "ENCRYPTED" in header or "Proc-Type: 4,ENCRYPTED" in body:
                label, score = "encrypted-private-key", 0.5
            elif "OPENSSH" in header:
                label, score = "ssh-private-key", 0.99
            elif "PGP" in header:
                label, score = "pgp-private-key", 0.99
            elif "service_account" in text or "private_key_id" in text:
                label, score = "gcp-service-account-key", 0.99
            else:
                label, score = "private-key", 0.99
            hits.append(_Hit(begin.start(), stop, label, score, _RANK_KEY))
            resume = stop

    def _encoded_keys(self, text: str, hits: list[_Hit]) -> None:
        for needle in B64_PRIVATE_KEY:
            position = text.find(needle)
            while position >= 0:
                start = position
                while start > 0 and text[start - 1] in BASE64_CHARS and position - start < 65_536:
                    start -= 1
                end = position
                while end < len(text) and text[end] in BASE64_CHARS and end - position < 65_536:
                    end += 1
                decoded = _decode_any_alignment(text[start:end])
                if b"-----BEGIN" in decoded and end - start > 200:
                    encrypted = b"ENCRYPTED" in decoded
                    label = "encrypted-private-key" if encrypted else "base64-private-key"
                    hits.append(_Hit(start, end, label, 0.5 if encrypted else 0.95, _RANK_KEY))
                position = text.find(needle, end)

    # -- pass 3: credentials inside a syntax ----------------------------------------------------

    def _syntax(self, text: str, low: str, hits: list[_Hit]) -> None:
        if "://" in text:
            for match in URL_USERINFO.finditer(text):
                self._url_password(text, match, hits)
        if "bearer" in low or "token" in low:
            for match in BEARER.finditer(low):
                self._bearer(text, low, match, hits)
        if "basic" in low:
            for match in BASIC.finditer(low):
                start, end = match.span("v")
                raw = b64decode_loose(text[start:end])
                if raw is not None and _is_user_colon_password(raw) and _left_ok(low, match.start(), "_-"):
                    hits.append(_Hit(start, end, "basic-auth-credentials", 0.9, _RANK_SYNTAX))
        for pattern in (SQL_IDENTIFIED, SQL_PASSWORD, POWERSHELL):
            for match in pattern.finditer(low):
                group = "v" if "v" in pattern.groupindex else ("qv" if match.group("qv") is not None else "uv")
                start, end = match.span(group)
                value = text[start:end]
                if plausible_value(value, KeyKind.PASSWORD, quoted=True) or MYSQL_HASH.fullmatch(value):
                    hits.append(_Hit(start, end, "password", 0.85, _RANK_SYNTAX))
        for pattern in (CURL_USER, OPENSSL_PASS, SSHPASS, MYSQL_P):
            for match in pattern.finditer(text):
                start, end = match.span("v")
                if _left_ok(text, match.start(), "-_") and plausible_value(
                    text[start:end], KeyKind.PASSWORD, quoted=True
                ):
                    hits.append(_Hit(start, end, "password", 0.85, _RANK_SYNTAX))

    @staticmethod
    def _url_password(text: str, match: re.Match[str], hits: list[_Hit]) -> None:
        scheme_match = SCHEME_BEFORE.match(_reversed_before(text, match.start(), 32))
        if scheme_match is None:
            return
        scheme = scheme_match.group()[::-1].lower().lstrip("0123456789+.-")
        start, end = match.span("v")
        value = text[start:end]
        lowered = value.lower()
        if (
            lowered in URL_PLACEHOLDERS
            or value[0] in "$%{<*["
            or len(set(value)) < 2
            or (value.isdigit() and len(value) <= 5)
            or any(part in lowered for part in ("xxxx", "****", "your_", "your-", "<", "${", "{{", "..."))
        ):
            return
        label = "connection-string-password" if scheme in DATABASE_SCHEMES else "url-password"
        hits.append(_Hit(start, end, label, 0.9, _RANK_SYNTAX))

    @staticmethod
    def _bearer(text: str, low: str, match: re.Match[str], hits: list[_Hit]) -> None:
        if not _left_ok(low, match.start(), "_-"):
            return
        start, end = match.span("v")
        value = text[start:end]
        context = low[max(0, match.start() - 40) : match.start()]
        if match.group("scheme") == "token" and "authorization" not in context:
            return  # "token abc" is prose unless it sits in an Authorization header
        if len(set(value)) < 8 or not any(c.isdigit() for c in value) or value.isalpha():
            return
        if any(part in value.lower() for part in ("xxxx", "your", "example", "<", "${", "...")):
            return
        hits.append(_Hit(start, end, "bearer-token", 0.9, _RANK_SYNTAX))

    # -- pass 4: keyword assignments ------------------------------------------------------------

    def _assignments(self, text: str, low: str, hits: list[_Hit], known: list[tuple[int, int]]) -> None:
        code: bool | None = None  # whether the text is source code, looked up at the first candidate
        position = 0
        while True:
            match = ASSIGNMENT.search(low, position)
            if match is None:
                break
            if _inside(known, *match.span("qv" if match.group("qv") is not None else "uv")):
                position = match.end()
                continue
            if code is None:
                code = CODE_HINT.search(text) is not None
            hit = _assignment_hit(text, low, match, code)
            if hit is not None:
                hits.append(hit)
                position = match.end()
            else:
                # Resume after the name, not after the rejected "value": in `SECRET KEY:abc` the
                # first candidate (`SECRET` + space + `KEY:abc`) swallows the real assignment.
                position = match.end("id")
        if "<" in low:
            for match in XML_ELEMENT.finditer(low):
                words = key_words(text[match.start("tag") : match.end("tag")].rpartition(":")[2])
                kind = classify_key(words)
                start, end = match.span("v")
                value = text[start:end]
                if kind is not None and plausible_value(value, kind, quoted=True):
                    hits.append(_Hit(start, end, label_for(kind, words, value), 0.85, _RANK_KEYWORD))
        if "define" in low:
            for match in DEFINE_CALL.finditer(low):
                words = key_words(text[match.start("k") : match.end("k")])
                kind = classify_key(words)
                start, end = match.span("v")
                value = text[start:end]
                if WORDPRESS_SALT.fullmatch(match.group("k")):
                    # WordPress's cookie-signing keys and salts: random printable text, "<", ">" and spaces too
                    if len(value) >= 32 and "unique phrase" not in match.group("v"):
                        hits.append(_Hit(start, end, "wordpress-secret-key", 0.9, _RANK_KEYWORD))
                elif kind is not None and plausible_value(value, kind, quoted=True):
                    hits.append(_Hit(start, end, label_for(kind, words, value), 0.85, _RANK_KEYWORD))
        if '"kty"' in text:
            for match in JWK_PRIVATE.finditer(text):
                start, end = match.span("v")
                hits.append(_Hit(start, end, "jwk-private-key", 0.9, _RANK_KEY))

    def _name_values(self, text: str, low: str, hits: list[_Hit]) -> None:
        if '"value"' in low or '"parametervalue"' in low:
            for match in NAME_VALUE_JSON.finditer(low):
                self._name_value(text, match, hits)
        if "value:" in low:
            for match in NAME_VALUE_YAML.finditer(low):
                self._name_value(text, match, hits)

    @staticmethod
    def _name_value(text: str, match: re.Match[str], hits: list[_Hit]) -> None:
        words = key_words(text[match.start("k") : match.end("k")])
        kind = classify_key(words)
        start, end = match.span("v")
        value = text[start:end]
        if kind is not None and plausible_value(value, kind, quoted=True):
            hits.append(_Hit(start, end, label_for(kind, words, value), 0.8, _RANK_KEYWORD))

    def _field(self, field: str, text: str, hits: list[_Hit]) -> None:
        # A tool argument `{"password": "..."}` reaches us as the string alone, named by its path.
        key = _named_by(field)
        if key is None:
            return
        words = key_words(key)
        kind = classify_key(words)
        if kind is None:
            return
        start = len(text) - len(text.lstrip())
        end = len(text.rstrip())
        value = text[start:end]
        if any(ch.isspace() for ch in value) or not plausible_value(value, kind, quoted=True):
            return
        hits.append(_Hit(start, end, label_for(kind, words, value), 0.85, _RANK_KEYWORD))

    # -- pass 5: entropy ------------------------------------------------------------------------

    def _entropy(self, text: str, hits: list[_Hit], known: list[tuple[int, int]]) -> None:
        for match in ASSIGNED_RANDOM.finditer(text):
            start, end = match.span("v")
            value = text[start:end]
            if _inside(known, start, end) or not random_enough(value):
                continue
            key = KEY_BEFORE.match(_reversed_before(text, match.start(), 66))
            if key is None or text[max(0, match.start() - key.end() - 1) : match.start() - key.end()] in ("?", "&"):
                continue  # URL query parameters are full of random ids (playlists, tracking, state)
            words = key_words(key.group(1)[::-1])
            if not words or not ID_WORDS.isdisjoint(words):
                continue
            hits.append(_Hit(start, end, "high-entropy-string", 0.5, _RANK_ENTROPY))

    # -- merging --------------------------------------------------------------------------------

    @staticmethod
    def _spans(field: str, text: str, hits: list[_Hit]) -> list[Span]:
        vetoes = [hit for hit in hits if hit.label == _VETO]
        if vetoes:
            hits = [
                hit
                for hit in hits
                if hit.label != _VETO
                and (hit.rank >= _RANK_TOKEN or not any(v.start < hit.end and hit.start < v.end for v in vetoes))
            ]
        if not hits:
            return []
        hits.sort(key=lambda hit: (hit.start, -hit.end))
        clusters: list[tuple[int, int, _Hit]] = []
        for hit in hits:
            if hit.end <= hit.start:
                continue
            if clusters and hit.start < clusters[-1][1]:
                start, end, best = clusters[-1]
                if (hit.rank, hit.score, hit.end - hit.start) > (best.rank, best.score, best.end - best.start):
                    best = hit
                clusters[-1] = (start, max(end, hit.end), best)
            else:
                clusters.append((hit.start, hit.end, hit))
        spans: list[Span] = []
        for start, end, best in clusters:
            # Quotes never belong to a secret: a key split across string literals is masked piece
            # by piece, and the quotes (so the JSON or source around it) survive.
            cursor = start
            while cursor < end:
                quote = text.find('"', cursor, end)
                stop = end if quote < 0 else quote
                lo, hi = _escape_safe(text, *_trim(text, cursor, stop))
                if any(ch in _ASCII_ALNUM for ch in text[lo:hi]):
                    spans.append(Span(field=field, start=lo, end=hi, label=best.label, score=best.score))
                cursor = stop + 1
        return spans


def _named_by(field: str) -> str | None:
    """The key that names the value at `field` (its path's last key), or None: an object key itself
    (a path ending in `KEY_SUFFIX`) is named by nothing."""
    if field.endswith(KEY_SUFFIX):
        return None
    match = _LAST_KEY.search(field)
    return None if match is None else (match.group(1) if match.group(1) is not None else match.group(2))


_LAST_KEY = re.compile(r"(?:\.([^.\[\]\"]+)|\[\"((?:[^\"\\]|\\.){1,64})\"\])(?:\[\d+\])*\Z")


def _assignment_hit(text: str, low: str, match: re.Match[str], code: bool = False) -> _Hit | None:
    id_start, id_end = match.span("id")
    back = IDENT_BEFORE.match(_reversed_before(low, id_start, 60))
    start = id_start - back.end() if back else id_start
    escaped = start >= 1 and text[start - 1] == "\\" and low[start] in "nrt"
    if escaped:
        start += 1  # `\npassword=` in escaped text: the n belongs to the escape
    elif start > 0 and text[start - 1] not in KEY_LEFT_OK:
        return None  # `M[@%]PW:2Z.Q` (uuencoded data) is not a key
    identifier = text[start:id_end].rstrip(".-")
    sep = match.group("sep").strip()
    quoted = match.group("qv") is not None
    group = "qv" if quoted else "uv"
    v_start, v_end = match.span(group)
    if sep == "":
        # `--password hunter2`: a bare space separates a value only after a command-line flag, a macro
        # definition, a Dockerfile ENV or in a .netrc; elsewhere "password reset" is prose.
        flag = identifier.startswith("-") and text[v_start : v_start + 1] != "-"
        if not (
            flag
            or (quoted and DEFINE_BEFORE.search(text, max(0, start - 20), start))
            or _after_docker_env(text, start)
            or (low[start:id_end] == "password" and _in_netrc(low, start))
        ):
            return None
    elif sep in ("==", "!=") and not quoted:
        return None
    if not quoted and "&" in text[v_start:v_end]:
        # In an env file a bare "&" belongs to the password, but an HTML entity ends the value
        # (`password: abc&lt;/td&gt;`) and so does the "&" after a URL query parameter.
        entity = HTML_ENTITY.search(text, v_start, v_end)
        v_end = entity.start() if entity else v_end
        if start > 0 and text[start - 1] in "?&":
            ampersand = text.find("&", v_start, v_end)
            v_end = v_end if ampersand < 0 else ampersand
    if not quoted:
        if text[v_end : v_end + 1] == "(":
            # A function call is not a secret, but the literal fallback of an environment lookup
            # is one hard-coded: `PASSWORD = os.environ.get("PASSWORD") or "hunter22"`.
            if not low[v_start:v_end].endswith(ENV_LOOKUPS):
                return None
            fallback = DEFAULT_ARGUMENT.match(text, v_end) or OR_DEFAULT.match(text, v_end)
            if fallback is None:
                return None
            v_start, v_end = fallback.span("v")
            quoted = True
        while v_end > v_start and text[v_end - 1] in ".:":
            v_end -= 1
    before = WORD_BEFORE.match(_reversed_before(low, start, 26))
    words = key_words(identifier)
    kind = classify_key(words, before.group(1)[::-1] if before else "")
    if kind is None:
        return None
    value = text[v_start:v_end]
    if not quoted and match.group("kq") and JSON_NUMBER.fullmatch(value):
        return None  # `{"pin": 123456}`: masking a JSON number in place would break the document
    if value[:5].lower() == "pass:":
        return None  # `-passin pass:x` is openssl's own syntax, masked by its dedicated pattern
    if not value or not plausible_value(value, kind, quoted=quoted, in_code=code):
        return None
    return _Hit(v_start, v_end, label_for(kind, words, value), 0.8 if kind is KeyKind.WEAK else 0.85, _RANK_KEYWORD)


def _after_docker_env(text: str, start: int) -> bool:
    before = text[max(0, start - 8) : start]
    if "ENV" not in before and "ARG" not in before:
        return False
    return DOCKER_ENV_BEFORE.search(text, max(0, start - 20), start) is not None


def _in_netrc(low: str, start: int) -> bool:
    # one anchored match from the nearest "machine" or "default" before the password (a search over the window
    # at every "password " made text full of them slow), which must start a word
    window = max(0, start - 600)
    keyword = max(low.rfind("machine", window, start), low.rfind("default", window, start))
    if keyword < 0 or (keyword > 0 and not low[keyword - 1].isspace()):
        return False
    return NETRC_BEFORE.fullmatch(low, keyword, start) is not None




def _pem_tail(text: str, position: int, limit: int) -> int:
    """Where a PEM body with no END line stops: the last base64 run of a contiguous chain."""
    stop = position
    for run in B64_RUN.finditer(text, position, limit):
        if run.start() - stop > (200 if stop == position else 40):
            break
        stop = run.end()
    return stop


def _pem_body_ok(body: str) -> bool:
    # A body needs real key material; "..." elisions and prose inside a data line mark a fake.
    if "..." in body or "…" in body:
        return False
    long_runs = 0
    for line in re.split(r"\r?\n|\\r\\n|\\n", body):
        if B64_RUN.search(line) is None:
            continue
        if re.search(r"[A-Za-z0-9+/]{32}", line):
            long_runs += 1
        if PROSE.search(line):
            return False
    return long_runs > 0


def _der_continuation(text: str, end: int) -> int:
    # Wrapped base64 (XML, YAML block scalars) continues the key on the following lines.
    for _ in range(256):
        match = DER_CONTINUATION.match(text, end)
        if match is None:
            break
        end = match.end()
    return end


def _decode_any_alignment(run: str) -> bytes:
    for offset in range(4):
        chunk = run[offset:].rstrip("=")
        chunk = chunk[: len(chunk) - len(chunk) % 4]
        raw = b64decode_loose(chunk)
        if raw is not None and b"PRIVATE KEY" in raw:
            return raw
    return b""


def _is_user_colon_password(raw: bytes) -> bool:
    try:
        decoded = raw.decode("utf-8", "strict")
    except UnicodeDecodeError:
        return False
    user, sep, password = decoded.partition(":")
    return bool(sep and user and len(password) >= 3 and decoded.isprintable())
