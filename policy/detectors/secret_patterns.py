"""The tables behind the secrets detector: what a secret looks like, and what only resembles one.

Three tables live here, each with the small pure functions that read it:

- the vocabulary of key names that announce a secret (``password``, ``client_secret``,
  ``SecretAccessKey``) and of names that only mention one (``password_policy``, ``max_tokens``);
- what a plausible secret value looks like, as opposed to a placeholder, a reference to a vault,
  a variable name or a number;
- provider token formats. Every pattern starts with a literal prefix, so the regular-expression
  engine skips to the next occurrence of that prefix with a fast substring search and a rule costs
  almost nothing on text that lacks it (the detector also tests the prefix itself before running
  the rule). Left boundaries are checked in Python, not with a leading look-behind, which would
  disable that skip. Every quantifier is bounded or possessive: no pattern backtracks
  catastrophically.

Public identifiers that grant nothing on their own are deliberately absent: Stripe and PostHog
publishable keys (``pk_``, ``phc_``), Google OAuth client ids, Salesforce org ids, WeChat app ids,
Firebase hostnames and bare UUIDs. They are designed to ship in web pages, and the engine treats
every span as a violation, so flagging them would block ordinary traffic.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from math import log2

__all__ = [
    "JIRA_RULE",
    "TOKEN_RULES",
    "KeyKind",
    "TokenRule",
    "b64decode_loose",
    "char_classes",
    "classify_key",
    "key_words",
    "label_for",
    "looks_like_placeholder",
    "plausible_value",
    "random_enough",
    "shannon_entropy",
    "word_set",
]


def word_set(words: str) -> frozenset[str]:
    """A vocabulary written as one space-separated string."""
    return frozenset(words.split())


@dataclass(frozen=True, slots=True)
class TokenRule:
    """One provider token format.

    The secret is the ``v`` group when the pattern has one, else the whole match. `back` extends
    the match to the left, for formats whose distinctive literal sits in the middle: it is matched
    against the reversed text before the match (reading backwards costs one anchored match, where
    a search for "...\\Z" would try every start position). `check` rejects look-alikes that the
    pattern alone cannot.
    """

    label: str
    pattern: re.Pattern[str]
    score: float = 0.95
    check: Callable[[str], bool] | None = None
    back: re.Pattern[str] | None = None
    # Characters, besides ASCII letters and digits, that may not sit just before the secret: a
    # match there is the tail of some longer string, not a token. None turns the check off.
    left: str | None = ""
    # Reject "123456"-style runs as documentation fillers; off where the format itself contains
    # long runs (the X bearer token starts with 21 "A"s). Filler words are always rejected.
    runs: bool = True
    # The pattern's leading literal: when the text does not contain it, the rule cannot match and
    # is skipped with one substring test, the cheapest prefilter there is.
    needle: str = ""
    # A value this accepts is a real token however it looks (its checksum holds): no placeholder veto.
    proof: Callable[[str], bool] | None = None


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# count * log2(count), looked up: entropy runs on every candidate value of every message.
_COUNT_BITS = tuple(count * log2(count) if count else 0.0 for count in range(1025))


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    total = len(value)
    if not total:
        return 0.0
    if total >= len(_COUNT_BITS):
        return log2(total) - sum(count * log2(count) for count in Counter(value).values()) / total
    return log2(total) - sum(map(_COUNT_BITS.__getitem__, Counter(value).values())) / total


def b64decode_loose(value: str) -> bytes | None:
    """Decode standard or URL-safe base64 with or without padding; None if it is not base64."""
    cleaned = value.strip().rstrip("=")
    if not cleaned:
        return None
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


_FILLER = re.compile(r"example|sample|dummy|fake|xxxxx|\*\*\*\*\*|your|<|>|\.\.\.")
_SEQUENCES = tuple(
    alphabet[i : i + 6]
    for alphabet in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "9876543210", "zyxwvutsrqponmlkjihgfedcba")
    for i in range(len(alphabet) - 5)
)
_SEQUENCE_RUN = re.compile("|".join(_SEQUENCES))
_SAME_RUN = re.compile(r"(.)\1{19}")


def looks_like_placeholder(value: str, *, runs: bool = True) -> bool:
    """Documentation fillers: "EXAMPLE", "your_token", "123456", "abcdef", long runs of one character."""
    lowered = value.lower()
    if _FILLER.search(lowered):
        return True
    # A random token practically never holds 6 consecutive ("123456") or 20 equal characters.
    return runs and (_SEQUENCE_RUN.search(lowered) is not None or _SAME_RUN.search(value) is not None)


# ---------------------------------------------------------------------------------------------
# Key names that announce a secret
# ---------------------------------------------------------------------------------------------


class KeyKind(IntEnum):
    """How strongly a key name says its value is secret; stronger kinds accept weaker values."""

    WEAK = 1  # "key", "auth": only a random-looking value counts
    SECRET = 2  # "token", "secret", "api_key", "credentials"
    PASSWORD = 3  # "password", "passwd", "pwd": people choose these, so they need not look random


_KIND_LABEL = {KeyKind.PASSWORD: "password", KeyKind.SECRET: "generic-secret", KeyKind.WEAK: "high-entropy-secret"}
_MIN_LENGTH = {KeyKind.PASSWORD: 6, KeyKind.SECRET: 8, KeyKind.WEAK: 16}


_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

_PASSWORD_WORDS = word_set(
    "pw pwd pass passwd password passwords pswd psswd pswrd psword pssword psswrd paswd paswrd pasword passwrd "
    "passphrase passcode passin passout passwort contrasena motdepasse mdp"
)
_PASSWORD_PARTS = ("passw", "pswd", "psswd", "pswrd", "passphrase", "passwd", "paswd", "paswrd", "passcode")
# Words that end in "pass" but mean something else.
_NOT_PASS = word_set("bypass compass overpass underpass surpass trespass impass multipass")
_SECRET_WORDS = word_set("secret secrets token tokens credential credentials creds cred apikey apikeys bearer")
# Qualifiers that make a "key" a credential ("api key", "SecretAccessKey", "activation key").
_KEY_QUALIFIERS = word_set(
    "api private access secret signing master auth authentication encryption app application client subscription "
    "account storage shared consumer license licence ssh gpg pgp deploy service admin webhook hmac jwt aes crypt "
    "crypto session x activation product serial root cipher decryption sas"
)
_WEAK_WORDS = word_set("key keys auth authorization authkey api")
# Names that say the value is not the secret itself: its id, its length, where it is stored...
_NEG_TAIL = word_set(
    "id ids name names type types kind count length len size url uri urls endpoint path paths file filename files "
    "dir directory policy policies hint label field fields prompt placeholder regex pattern format version expiry "
    "expires expiration expire ttl timeout enabled disabled required reset mode rule rules strength min max limit "
    "header headers param params parameter prefix suffix env var variable ref arn location store manager provider "
    "source mask description desc help title text message error status state date time at created updated changed "
    "age index idx usage budget schema spec validation validator complexity history lifetime method methods "
    "algorithm alg scheme scope scopes audience issuer template exists set present link host port user username "
    "login email owner bits bytes algo curve usages ops fingerprint checksum digest sha length policy lock"
)
# Words that make a whole name harmless: public keys, pagination and usage counters, design tokens.
_NEG_ANY = word_set(
    "public pub publishable page next prev previous continuation sync cursor csrf xsrf max min num number total "
    "input output completion prompt cached reasoning remaining used usage limit idempotency dedup cache sort "
    "partition primary foreign unique composite lookup routing hotkey shortcut i18n translation design sample "
    "example dummy fake placeholder mock estimated count hash hashed digest checksum fingerprint sha md5 sha256 "
    "encrypted"
)
_AWS_WORDS = word_set("aws amazon")


def key_words(identifier: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(identifier)]


def _word_kind(word: str, before: str) -> KeyKind | None:
    if (
        word in _PASSWORD_WORDS
        or any(part in word for part in _PASSWORD_PARTS)
        or (word.endswith("pass") and word not in _NOT_PASS)
        or (word.endswith(("pwd", "pw")) and len(word) <= 8)
    ):
        return KeyKind.PASSWORD
    if (
        word in _SECRET_WORDS
        or ("secret" in word and "secretar" not in word)
        or (word.endswith(("token", "tokens")) and not word.startswith("tokeniz"))
        or word.endswith("credentials")
        or (word.endswith("key") and word[:-3] in _KEY_QUALIFIERS)
    ):
        return KeyKind.SECRET
    if word in ("key", "keys"):
        return KeyKind.SECRET if before in _KEY_QUALIFIERS else KeyKind.WEAK
    if word in _WEAK_WORDS:
        return KeyKind.WEAK
    return None


def classify_key(words: list[str], before: str = "") -> KeyKind | None:
    """The kind of secret a key name announces, or None when it does not announce one."""
    if not words or words[-1] in _NEG_TAIL or not _NEG_ANY.isdisjoint(words):
        return None
    kind: KeyKind | None = None
    for index, word in enumerate(words):
        found = _word_kind(word, words[index - 1] if index else before)
        if found is not None and (kind is None or found > kind):
            kind = found
    return kind


def label_for(kind: KeyKind, words: list[str], value: str) -> str:
    if not _AWS_WORDS.isdisjoint(words) or ("secret" in words and "access" in words):
        if "session" in words:
            return "aws-session-token"
        if "secret" in words or any("secret" in word for word in words):
            return "aws-secret-access-key"
    if len(value) == 40 and "secretaccesskey" in "".join(words):
        return "aws-secret-access-key"
    return _KIND_LABEL[kind]


# ---------------------------------------------------------------------------------------------
# What a plausible secret value looks like
# ---------------------------------------------------------------------------------------------

# Values that stand for a secret rather than being one: schema words, template defaults, fillers.
_STOP_VALUES = word_set(
    "null none nil undefined true false yes no on off string str int bool boolean number object array any "
    "optional required secret secrets password passwd token apikey api_key key value example changeme default "
    "empty redacted masked hidden removed omitted unset unknown n/a na tbd todo foo bar baz test bearer basic "
    "sensitive encrypted env environment config settings params args kwargs self this auto generate generated "
    "random notset not_set mypassword yourpassword your_password my_password your-password secretkey your_api_key "
    "api-key your_token"
)
_PLACEHOLDER_PARTS = tuple(
    sorted(
        word_set(
            "xxxx **** .... … < > ${ {{ }} %( $( <% your_ your- yourapi changeme change_me placeholder redacted "
            "example dummy replace_me replaceme insert_ _here -here [masked"
        )
    )
)
_PLACEHOLDER = re.compile("|".join(map(re.escape, _PLACEHOLDER_PARTS)))
# References to where a secret is kept (a vault path, an env variable, a file), not the secret.
_REFERENCE_PREFIXES = tuple(
    sorted(
        word_set(
            "file: env: fd: stdin vault: op:// arn: ssm: secretsmanager: keyvault: sm:// gcpsm: projects/ ref+ k8s: "
            "awssm: azurekv: akv: bws: doppler: /run/secrets /var/run/secrets secret: secretref:"
        )
    )
)
_DOTTED_NAME = re.compile(r"[A-Za-z_$][A-Za-z_$]*(?:\.[A-Za-z_$][A-Za-z_$]*)+")
_MODULE_PATH = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+(?::[a-z_][a-z0-9_]*)?")
_DOTTED_WITH_DIGITS = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,40}(?:\.[A-Za-z_$][A-Za-z0-9_$]{0,40})+")
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_SNAKE_NAME = re.compile(r"[a-z]+(?:_[a-z]+)+")
_SLUG = re.compile(r"[a-z]+(?:[-_.][a-z]+)+")
_PRODUCT_KEY = re.compile(r"[A-Z0-9]{4,6}(?:-[A-Z0-9]{4,6}){3,}")
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+")
_HEX_LITERAL = re.compile(r"0x[0-9a-fA-F]+")


def char_classes(value: str) -> int:
    """How many of upper case, lower case, digits and other characters `value` mixes."""
    upper = any(map(str.isupper, value))
    lower = any(map(str.islower, value))
    digit = any(map(str.isdigit, value))
    other = not value.isalnum()
    return upper + lower + digit + other


_FILE_PATH = re.compile(r"(?:[\w.\-]+/)+[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z][A-Za-z0-9]{0,7}")


_NAME_PART = re.compile(r"[A-Z]{2,}(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
_VOWELS = frozenset("aeiouy")
_CODE_ABBREVIATIONS = word_set("str ctx cfg msg mgr ptr src dst btn svc pkg cls fmt")  # `SecretStr`, `TokenCtx`
_CASE_CHANGE = re.compile(r"[a-z][A-Z]|\A[A-Z][a-z]")


def _identifier(name: str) -> bool:
    """A name made of words, as code names things ("UserAPIKeyAuth", "lastEventId", "token_ids_0"): split at
    case changes, underscores and digits, words with a vowel (and short acronyms) cover 80 % of its letters,
    and at most one run of digits. Of random base62 strings read so: 3 % at 12 characters, 0.8 % at 20,
    0.08 % at 32; of random lower-case and digit strings, none (they have no case change or underscore)."""
    if not _IDENTIFIER.fullmatch(name) or not ("_" in name or _CASE_CHANGE.search(name)):
        return False  # code names by case or underscores; "kfbqz3oemwpla" is no name
    parts = _NAME_PART.findall(name)
    if len(parts) < 2 or sum(part.isdigit() for part in parts) > 1:
        return False
    letters = sum(len(part) for part in parts if not part.isdigit())
    words = sum(
        len(part)
        for part in parts
        if len(part) >= 3
        and not part.isupper()
        and not part.isdigit()
        and (_VOWELS.intersection(part.lower()) or part.lower() in _CODE_ABBREVIATIONS)
    )
    acronyms = sum(len(part) for part in parts if part.isupper() and 2 <= len(part) <= 5)
    return words >= 0.5 * letters and words + acronyms >= 0.8 * letters


def plausible_value(value: str, kind: KeyKind, *, quoted: bool, in_code: bool = False) -> bool:
    """Whether `value`, assigned to a key of `kind`, is plausibly a real secret. `in_code`: the text is source
    code, where an unquoted name made of words is a type or a variable (in an .env or YAML file it can be a
    secret someone chose: `SESSION_SECRET=CorrectHorseBatteryStaple`)."""
    length = len(value)
    if length < _MIN_LENGTH[kind] or length > 512:
        return False
    lowered = value.lower()
    if lowered in _STOP_VALUES or value[0] in "$%{[(*#&<" or "://" in value:
        return False
    if len(set(value)) < 4 or _PLACEHOLDER.search(lowered):
        return False
    if lowered.startswith(_REFERENCE_PREFIXES) or _HEX_LITERAL.fullmatch(value):
        return False
    if lowered.startswith(("enc(", "vault:v")):
        return False  # already encrypted (Jasypt ENC(...), Vault transit ciphertext)
    if not quoted:
        name = value.strip("_")  # `password = _password`: a private name is a name too
        if _DOTTED_NAME.fullmatch(name) or _CONSTANT_NAME.fullmatch(name) or _SNAKE_NAME.fullmatch(name):
            return False  # code: `password = settings.DB_PASSWORD`, `token = get_token`
        if kind is not KeyKind.PASSWORD and (
            _DOTTED_WITH_DIGITS.fullmatch(name) and any(map(_identifier, name.split(".")))
        ):
            return False  # `token = windll.advapi32.OpenProcessToken`: a path to a name, digits or not
        if name.lower() in _STOP_VALUES:
            return False
        if in_code and kind is not KeyKind.PASSWORD and _identifier(name):
            return False  # a type or variable in code: `user_api_key: UserAPIKeyAuth`, `token: TokenStream`
    if _SLUG.fullmatch(value) or _MODULE_PATH.fullmatch(value):
        return False  # "not-a-secret", "my-client-password", "package.module:function"
    if kind is not KeyKind.PASSWORD and (looks_like_placeholder(value) or _FILE_PATH.fullmatch(value)):
        return False  # an object key or file name ("exports/2024/09/orders-7f3a9c2e.parquet") is no secret
    if not any(map(str.isalpha, value)):
        # Numbers, versions, dates and addresses ("2501.03895") are not tokens; a PIN-like
        # password can be.
        return kind is KeyKind.PASSWORD and (length >= 8 or value.isdigit())
    if _PRODUCT_KEY.fullmatch(value):
        return kind is not KeyKind.WEAK
    if value.isalpha():
        # A lone word after "password:" is usually prose or a schema ("Password: Required").
        mixed = sum(map(str.isupper, value)) >= 2 and sum(map(str.islower, value)) >= 2
        if kind is KeyKind.WEAK:
            return False
        return mixed if length < 12 else mixed or kind is KeyKind.PASSWORD
    if kind is KeyKind.PASSWORD:
        return True
    entropy = shannon_entropy(value)
    if kind is KeyKind.SECRET:
        return char_classes(value) >= 2 and entropy >= 2.5
    if _HEX.fullmatch(value):
        return length >= 32 and entropy >= 3.0
    return char_classes(value) >= 2 and any(map(str.isdigit, value)) and entropy >= 3.5


# File signatures of base64 payloads (PNG, JPEG, GIF, WebP, SVG, gzip, zip, PDF, ICO/MP4).
_PAYLOAD_MAGIC = ("iVBORw0KGgo", "/9j/", "R0lGOD", "UklGR", "PHN2Zy", "PD94bWwg", "H4sI", "UEsDB", "JVBERi", "AAAA")


def random_enough(value: str) -> bool:
    if value.startswith(_PAYLOAD_MAGIC) or value.count("/") > 3 or value.count("-") > 4 or _HEX.fullmatch(value):
        return False
    if shannon_entropy(value) < 4.5:
        return False
    upper = sum(map(str.isupper, value))
    lower = sum(map(str.islower, value))
    digits = sum(map(str.isdigit, value))
    return upper >= 2 and lower >= 2 and digits >= 2 and not looks_like_placeholder(value)


# ---------------------------------------------------------------------------------------------
# Provider token formats
# ---------------------------------------------------------------------------------------------


def _distinct(minimum: int) -> Callable[[str], bool]:
    # Documentation placeholders (ghp_xxxxxxxx..., sk-000000...) have almost no distinct characters.
    def check(value: str) -> bool:
        return len(set(value)) >= minimum

    return check


def _body_distinct(prefix: int, minimum: int) -> Callable[[str], bool]:
    # AKIATESTTESTTESTTEST: the part after the fixed prefix is what a real generator randomises.
    def check(value: str) -> bool:
        return len(set(value[prefix:])) >= minimum

    return check


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _github_checksum(value: str) -> bool:
    # A GitHub token ends in the CRC32 of its random characters, base62 in 6: a generator wrote it,
    # however plain the random part looks ("ghp_0000...04WZ4EQ"); a hand-typed placeholder never has it.
    value = value.split(".", 1)[0]  # a token may carry dotted parts after it
    if len(value) < 40:
        return False
    crc = zlib.crc32(value[4:-6].encode())
    digits = ""
    while crc:
        crc, digit = divmod(crc, 62)
        digits = _BASE62[digit] + digits
    return digits.rjust(6, "0") == value[-6:]


_GITHUB_BODY_DISTINCT = _body_distinct(4, 6)


def _github_token(value: str) -> bool:
    return _github_checksum(value) or _GITHUB_BODY_DISTINCT(value)


def _jira_pat(value: str) -> bool:
    # Data Center personal access tokens are base64 of "<12-digit id>:<20 random bytes>".
    raw = b64decode_loose(value)
    return raw is not None and len(raw) >= 32 and raw[:12].isdigit() and raw[12:13] == b":"


def _encoded_private_jwk(value: str) -> bool:
    raw = b64decode_loose(value)
    return raw is not None and b'"kty"' in raw and re.search(rb'"(?:d|k)"\s*:\s*"[A-Za-z0-9_\-]{16,}"', raw) is not None


def _mixed_case(value: str) -> bool:
    return any(c.isupper() for c in value) and any(c.islower() for c in value)


def _has_digit(value: str) -> bool:
    return any(c.isdigit() for c in value)


def _jwt(value: str) -> bool:
    # A JWT's header is base64url JSON naming its algorithm; an unsigned token (alg none, or no
    # signature) authenticates nothing.
    header = b64decode_loose(value.split(".", 1)[0])
    if header is None:
        return False
    try:
        decoded = json.loads(header.decode("utf-8", "strict"))
    except (UnicodeDecodeError, ValueError):
        return False
    if not isinstance(decoded, dict) or "alg" not in decoded:
        return False
    signature = value.rsplit(".", 1)[-1]
    return str(decoded["alg"]).lower() != "none" and len(signature) >= 8 and not looks_like_placeholder(signature)


def _b64_json_with(*keys: str) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        raw = b64decode_loose(value)
        if raw is None:
            return False
        try:
            decoded = json.loads(raw.decode("utf-8", "strict"))
        except (UnicodeDecodeError, ValueError):
            return False
        return isinstance(decoded, dict) and all(key in decoded for key in keys)

    return check


def _decodes_to(prefix: bytes) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        raw = b64decode_loose(value)
        return raw is not None and raw.startswith(prefix)

    return check


def _discord_bot(value: str) -> bool:
    # The first segment is the bot's numeric user id in base64: a random dotted string is not.
    raw = b64decode_loose(value.split(".", 1)[0])
    return raw is not None and raw.isdigit() and 15 <= len(raw) <= 21


def _hex_consistent_case(value: str) -> bool:
    body = value[2:]
    return (body.lower() == body or body.upper() == body) and len(set(body)) >= 8


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_ok(value: str) -> bool:
    # age identities are Bech32 strings: a wrong checksum means an edited (fake) key.
    hrp, _, data = value.lower().rpartition("1")
    if any(ch not in _BECH32 for ch in data):
        return False
    values = [ord(ch) >> 5 for ch in hrp] + [0] + [ord(ch) & 31 for ch in hrp] + [_BECH32.index(ch) for ch in data]
    checksum = 1
    for item in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ item
        for bit, generator in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            checksum ^= generator if (top >> bit) & 1 else 0
    return checksum == 1


def _mixed_letters(value: str) -> bool:
    body = value.rsplit("_", 1)[1]
    return _mixed_case(body) and len(set(body)) >= 10


def _random_body(value: str) -> bool:
    body = re.split(r"[_\-.]", value, maxsplit=1)[-1]
    return len(set(body)) >= 8 and (_has_digit(body) or _mixed_case(body))


_WORDISH = re.compile(r"[A-Z]?[a-z]{3,}")


def _random_not_words(value: str) -> bool:
    """`_random_body`, and not an identifier made of words ("re_compile_patternForEmail"), which short prefixes
    (re_, fw_, aio_) meet in code: words cover 70 % of such a body, and under 1 % of random base62 ones."""
    if not _random_body(value):
        return False
    body = re.sub(r"[_\-.]", "", re.split(r"[_\-.]", value, maxsplit=1)[-1])
    return sum(len(word) for word in _WORDISH.findall(body)) < 0.7 * len(body)


_B62 = "[A-Za-z0-9]"
# Left boundary for tokens that are plain base62 after their prefix: inside a base64 blob (an
# inline image, a certificate) such a prefix is a coincidence, not a token.
_B64 = "+/"
_URLSAFE = "[A-Za-z0-9_\\-]"
_END62 = "(?![A-Za-z0-9])"
_ENDURL = "(?![A-Za-z0-9_\\-])"
_GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_END64 = "(?![A-Za-z0-9+/=])"


def _rule(
    label: str,
    pattern: str,
    score: float = 0.95,
    *,
    check: Callable[[str], bool] | None = None,
    back: re.Pattern[str] | None = None,
    left: str | None = "",
    runs: bool = True,
    proof: Callable[[str], bool] | None = None,
) -> TokenRule:
    needle, needle_end = _literal_prefix(pattern)
    body = pattern[needle_end:]
    if left is not None and back is None and needle:
        # Refuse, right after the prefix, a start that sits inside a longer token or base64 run:
        # "eyJeyJeyJ..." would otherwise make every occurrence scan a 4 kB body. An escape
        # (`\n`) or a colour code (`...m`) before the prefix is let through for `left_ok` to judge.
        escaped = re.escape(needle)
        body = rf"(?:(?<![A-Za-z0-9{re.escape(left)}]{escaped})|(?<=\\[nrt]{escaped})|(?<=m{escaped}))" + body
    # Possessive ranges: a body never gives characters back, so a long run of token characters
    # costs one pass per candidate start instead of one backtrack per length.
    compiled = _rx(pattern[:needle_end] + _RANGE.sub(r"\g<0>+", body))
    return TokenRule(label, compiled, score, check, back, left, runs, needle, proof)


_RANGE = re.compile(r"\{\d+,\d+\}(?![+?])")


def _literal_prefix(pattern: str) -> tuple[str, int]:
    """The literal characters a pattern starts with, and where they end in the pattern text."""
    prefix: list[str] = []
    ends: list[int] = []
    index = 0
    while index < len(pattern):
        ch = pattern[index]
        if ch == "\\" and index + 1 < len(pattern) and pattern[index + 1] in ".|$-~/:":
            prefix.append(pattern[index + 1])
            index += 2
        elif ch in "\\[](){}?*+^$|.":
            break
        else:
            prefix.append(ch)
            index += 1
        ends.append(index)
    # A quantifier after the last literal makes that character optional.
    if index < len(pattern) and pattern[index] in "?*{" and prefix:
        prefix.pop()
        ends.pop()
    return "".join(prefix), ends[-1] if ends else 0


TOKEN_RULES: tuple[TokenRule, ...] = (
    # --- cloud providers ---
    *(
        _rule("aws-access-key-id", rf"{prefix}[A-Z0-9]{{16}}{_END62}", 0.8, check=_body_distinct(4, 6), left=_B64)
        for prefix in ("AKIA", "ASIA", "ABIA", "ACCA")
    ),
    _rule("aws-access-key-id", rf"A3T[A-Z0-9][A-Z0-9]{{16}}{_END62}", 0.8, check=_body_distinct(4, 6), left=_B64),
    *(
        _rule("aws-session-token", rf"{prefix}[A-Za-z0-9+/]{{80,4096}}={{0,2}}{_END64}", left=_B64)
        for prefix in ("IQoJb3JpZ2luX2Vj", "FwoGZXIvYXdzE")
    ),
    _rule("aws-mws-key", r"amzn\.mws\.[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}(?![0-9a-z])"),
    _rule("aws-bedrock-api-key", rf"bedrock-api-key-[A-Za-z0-9+/]{{20,2048}}={{0,2}}{_END64}"),
    _rule("aws-bedrock-api-key", rf"ABSK[A-Za-z0-9+/]{{100,2048}}={{0,2}}{_END64}", left=_B64),
    _rule("aws-appsync-api-key", r"da2-[a-z0-9]{26}(?![a-z0-9])", check=_has_digit),
    _rule("gcp-api-key", rf"AIza{_URLSAFE}{{35}}{_ENDURL}", left=_B64),
    _rule("google-oauth-client-secret", rf"GOCSPX-{_URLSAFE}{{28}}{_ENDURL}"),
    _rule("google-oauth-access-token", rf"ya29\.[A-Za-z0-9_\-.]{{20,2048}}{_ENDURL}", check=_distinct(10), left="."),
    _rule("google-oauth-refresh-token", rf"1//0{_URLSAFE}{{30,512}}{_ENDURL}", check=_distinct(10), left="/"),
    _rule("azure-storage-account-key", rf"AccountKey=(?P<v>[A-Za-z0-9+/]{{40,100}}={{0,2}}){_END64}"),
    _rule("azure-shared-access-key", rf"SharedAccessKey=(?P<v>[A-Za-z0-9+/]{{40,100}}={{0,2}}){_END64}"),
    # Entra ID client secrets carry "Q~" after three characters and a digit.
    _rule(
        "azure-ad-client-secret",
        r"Q~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])",
        back=_rx(r"\d[A-Za-z0-9_~.\-]{3}(?![A-Za-z0-9_~.\-])"),
    ),
    # Azure's identifiable keys carry the fixed signature JQQJ99 after 52 random characters.
    _rule(
        "azure-identifiable-key",
        rf"JQQJ99{_B62}{{18}}AZ{_B62}{{2}}[A-Za-z0-9+/]{{4,10}}={{0,2}}{_END64}",
        back=_rx(r"[A-Za-z0-9]{52}(?![A-Za-z0-9+/])"),
        check=_distinct(16),
    ),
    _rule("azure-sas-signature", r"sig=(?P<v>[A-Za-z0-9%+/]{30,256}={0,2})(?![A-Za-z0-9%+/=])", 0.8, left="_"),
    _rule("presigned-url-signature", r"X-(?:Amz|Goog)-Signature=(?P<v>[0-9a-f]{64,1024})(?![0-9a-fA-F])", 0.8),
    _rule("digitalocean-token", r"do[opr]_v1_[a-f0-9]{64}(?![a-f0-9])"),
    _rule("heroku-api-key", rf"HRKU-{_URLSAFE}{{30,128}}{_ENDURL}"),
    _rule("alibaba-access-key-id", rf"LTAI{_B62}{{12,20}}{_END62}", 0.8, check=_random_body, left=_B64),
    _rule(
        "hashicorp-terraform-token",
        rf"\.atlasv1\.[A-Za-z0-9_\-=]{{60,90}}{_ENDURL}",
        back=_rx(r"[A-Za-z0-9]{14}(?![A-Za-z0-9])"),
    ),
    _rule("hashicorp-vault-token", rf"hv[sbr]\.[A-Za-z0-9_\-]{{24,512}}{_ENDURL}", check=_random_body, left=_B64),
    _rule("cloudflare-api-token", rf"cf(?:at|ut|k)_{_B62}{{40,64}}{_END62}"),
    _rule("akamai-client-token", r"akab-[a-z0-9]{16}-[a-z0-9]{16}(?![a-z0-9.\-])"),
    _rule("databricks-token", r"dapi[a-f0-9]{32}(?:-\d)?(?![A-Za-z0-9])", check=_distinct(8), left=_B64),
    _rule("doppler-token", rf"dp\.(?:pt|st|sa|ct|scim|audit)\.{_B62}{{40,44}}{_END62}"),
    _rule("planetscale-token", r"pscale_(?:pw|tkn|oauth)_[A-Za-z0-9_\-.]{32,64}(?![A-Za-z0-9_\-.])"),
    _rule("supabase-token", r"sbp_(?:v0_)?[a-f0-9]{40}(?![a-f0-9])"),
    _rule("vercel-token", rf"vc[pkiar]_{_B62}{{56}}{_END62}"),
    _rule("netlify-token", rf"nf[pcu]_{_B62}{{36}}{_END62}"),
    _rule("pulumi-token", r"pul-[a-f0-9]{40}(?![a-f0-9])"),
    _rule("fly-io-token", rf"FlyV1 fm\d_[A-Za-z0-9+/_\-]{{50,4096}}={{0,2}}{_END64}"),
    # --- source control, CI and registries ---
    _rule(
        "github-token",
        rf"gh[pousr]_[A-Za-z0-9_]{{36,251}}(?:\.{_URLSAFE}{{10,2048}}){{0,2}}{_ENDURL}",
        check=_github_token,
        proof=_github_checksum,
    ),
    _rule("github-fine-grained-token", rf"github_pat_[A-Za-z0-9_]{{50,255}}{_ENDURL}", check=_distinct(10)),
    _rule(
        "gitlab-token",
        r"gl(?:pat|oas|dt|rt|rtr|cbt|ptt|ft|imt|agent|soat|ffct|wt)-[A-Za-z0-9_\-]{20,64}"
        r"(?:\.[0-9a-z]{2}\.[A-Za-z0-9]{5,12})?(?![A-Za-z0-9_\-])",
        check=_distinct(8),
    ),
    _rule("gitlab-runner-registration-token", rf"GR1348941{_URLSAFE}{{20,40}}{_ENDURL}"),
    _rule("gitlab-session-cookie", r"_gitlab_session=(?P<v>[0-9a-f]{32})(?![0-9a-f])", left=None),
    _rule("bitbucket-app-password", r"ATBB[A-Za-z0-9_=.\-]{28,64}(?![A-Za-z0-9_=.\-])"),
    _rule("bitbucket-http-access-token", r"BBDC-[A-Za-z0-9+/@_\-]{40,64}(?![A-Za-z0-9+/@_\-])"),
    _rule("atlassian-api-token", r"AT(?:ATT|CTT)3xFfG[A-Za-z0-9_\-=]{50,512}(?![A-Za-z0-9_\-=])"),
    _rule("npm-token", rf"npm_{_B62}{{36}}{_END62}", check=_distinct(10)),
    _rule("pypi-token", rf"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw){_URLSAFE}{{40,1024}}{_ENDURL}"),
    _rule("rubygems-api-key", r"rubygems_[a-f0-9]{48}(?![a-f0-9])"),
    _rule("nuget-api-key", r"oy2[a-z0-9]{43}(?![A-Za-z0-9])", check=_has_digit, left=_B64),
    _rule("clojars-deploy-token", r"CLOJARS_[a-z0-9]{60}(?![a-z0-9])"),
    _rule("docker-hub-token", rf"dckr_(?:pat|oat)_{_URLSAFE}{{24,64}}{_ENDURL}"),
    _rule("docker-swarm-join-token", r"SWMTKN-1-[a-z0-9]{50}-[a-z0-9]{25}(?![a-z0-9])"),
    _rule("docker-swarm-unlock-key", rf"SWMKEY-1-[A-Za-z0-9+/]{{43}}{_END64}"),
    _rule("jfrog-api-key", rf"AKCp{_B62}{{69}}{_END64}", left=_B64),
    _rule("jfrog-reference-token", rf"cmVmdGtu{_B62}{{56}}{_END64}", check=_decodes_to(b"reftkn:01:"), left=_B64),
    _rule("sonarqube-token", r"sq[uap]_[a-f0-9]{40}(?![a-f0-9])"),
    _rule("sentry-auth-token", rf"sntry[su]_[A-Za-z0-9+/=_\-]{{40,512}}{_ENDURL}"),
    _rule("grafana-token", rf"glc_[A-Za-z0-9+/]{{32,400}}={{0,2}}{_END64}"),
    _rule("grafana-service-account-token", rf"glsa_{_B62}{{32}}_[A-Fa-f0-9]{{8}}{_END62}"),
    _rule(
        "grafana-api-key",
        rf"eyJrIjoi[A-Za-z0-9+/]{{40,400}}={{0,2}}{_END64}",
        check=_b64_json_with("k", "n"),
        left=_B64,
    ),
    _rule("postman-api-key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}(?![a-f0-9])"),
    _rule("postman-access-token", r"PMAT-[A-Z0-9]{26}(?![A-Za-z0-9])"),
    _rule("newrelic-key", rf"NR(?:AK|BR|II|JS|IQ|AA)-[A-Za-z0-9_\-]{{19,32}}{_ENDURL}", check=_distinct(8)),
    _rule("newrelic-license-key", rf"NRAL{_END62}", back=_rx(r"[A-Za-z0-9]{36}(?![A-Za-z0-9+/])")),
    _rule("linear-api-key", rf"lin_(?:api|oauth)_{_B62}{{40}}{_END62}"),
    _rule("figma-token", rf"figd_{_URLSAFE}{{40,64}}{_ENDURL}"),
    _rule("wundergraph-api-key", r"cosmo_[a-f0-9]{32}(?![a-f0-9])"),
    _rule("defined-networking-api-key", r"dnkey-[A-Z0-9]{26}-[A-Z0-9]{52}(?![A-Za-z0-9])"),
    _rule("onepassword-service-token", rf"ops_eyJ[A-Za-z0-9+/=_\-]{{100,4096}}{_ENDURL}"),
    _rule("age-secret-key", r"AGE-SECRET-KEY-1[0-9A-Z]{58}(?![0-9A-Z])", check=_bech32_ok),
    _rule("nats-nkey-seed", r"S[UANOCPX][A-Z2-7]{56}(?![A-Za-z0-9])", check=_distinct(12), left=_B64),
    _rule("airtable-token", rf"pat{_B62}{{14}}\.[a-f0-9]{{64}}(?![a-f0-9])"),
    _rule("sourcegraph-token", r"sgp_(?:[a-f0-9]{16}_)?[a-f0-9]{40}(?![A-Za-z0-9])"),
    _rule("prefect-api-key", rf"pnu_{_B62}{{36}}{_END62}", check=_random_not_words),
    _rule("dynatrace-api-token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}(?![A-Za-z0-9])"),
    _rule("tencent-secret-id", rf"AKID{_B62}{{32}}{_END62}", check=_random_body, left=_B64),
    # --- messaging and collaboration ---
    _rule("slack-token", r"xox[baprseo]-[0-9A-Za-z\-]{10,250}(?![0-9A-Za-z\-])", check=_has_digit),
    _rule("slack-app-token", r"xapp-\d-[A-Z0-9]{6,16}-\d{6,16}-[a-z0-9]{32,128}(?![a-z0-9])"),
    _rule(
        "slack-webhook-url",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9_]{6,32}/[A-Za-z0-9_]{6,32}/[A-Za-z0-9_/]{16,64})"
        r"(?![A-Za-z0-9_/])",
        left=None,
    ),
    _rule(
        "discord-webhook-url",
        r"discord(?:app)?\.com/api/webhooks/(?P<v>\d{17,20}/[A-Za-z0-9_\-]{60,68})(?![A-Za-z0-9_\-])",
        left=None,
    ),
    # a Microsoft Teams incoming webhook: its path (tenant, connector id and signature) lets anyone post
    _rule(
        "teams-webhook-url",
        rf"webhook\.office\.com/webhookb2/(?P<v>{_GUID}@{_GUID}/IncomingWebhook/[0-9a-f]{{32}}/{_GUID}"
        r"(?:/[A-Za-z0-9_\-]{16,80})?)(?![A-Za-z0-9_\-/])",
        left=None,
    ),
    _rule(
        "teams-webhook-url",
        rf"outlook\.office(?:365)?\.com/webhook/(?P<v>{_GUID}@{_GUID}/IncomingWebhook/[0-9a-f]{{32}}/{_GUID})"
        r"(?![A-Za-z0-9_\-/])",
        left=None,
    ),
    _rule(
        "discord-bot-token",
        rf"\.{_URLSAFE}{{6}}\.{_URLSAFE}{{27,40}}{_ENDURL}",
        check=_discord_bot,
        back=_rx(r"[A-Za-z0-9_\-]{23,27}[MNO](?![A-Za-z0-9_\-.])"),
    ),
    _rule("telegram-bot-token", rf":AA{_URLSAFE}{{33}}{_ENDURL}", back=_rx(r"\d{8,10}(?![0-9])")),
    _rule("contentful-token", rf"CFPAT-{_URLSAFE}{{43}}{_ENDURL}"),
    _rule("adafruit-io-key", rf"aio_{_B62}{{28}}{_END62}", check=_random_not_words, left="_-"),
    _rule("frameio-token", r"fio-u-[A-Za-z0-9_=\-]{64}(?![A-Za-z0-9_=\-])"),
    _rule("readme-api-key", r"rdme_[a-z0-9]{70}(?![a-z0-9])"),
    _rule("twilio-api-key", r"SK[0-9a-fA-F]{32}(?![0-9a-zA-Z])", check=_hex_consistent_case, left=_B64),
    _rule("sendgrid-api-key", rf"SG\.{_URLSAFE}{{16,32}}\.{_URLSAFE}{{16,64}}{_ENDURL}"),
    _rule("mailgun-api-key", r"key-[0-9a-f]{32}(?![0-9a-zA-Z])", left="_-"),
    _rule("mailgun-api-key", r"-[0-9a-f]{8}-[0-9a-f]{8}(?![0-9A-Za-z\-])", back=_rx(r"[0-9a-f]{32}(?![0-9A-Za-z\-])")),
    _rule("mailchimp-api-key", r"-us\d{1,2}(?![0-9A-Za-z])", back=_rx(r"[0-9A-Za-z]{32}(?![A-Za-z0-9])")),
    _rule("brevo-api-key", rf"x(?:keysib|smtpsib)-[a-f0-9]{{64}}-{_B62}{{16}}{_END62}"),
    _rule("notion-token", rf"ntn_{_B62}{{40,50}}{_END62}"),
    _rule("notion-token", rf"secret_{_B62}{{43}}{_END62}", check=_mixed_letters, left="_"),
    # --- payments and commerce ---
    _rule("easypost-api-key", r"EZ[AT]K[a-zA-Z0-9]{54}(?![A-Za-z0-9])", check=_random_body),
    _rule("flutterwave-secret-key", r"FLWSECK(?:_TEST)?-[a-h0-9]{32}-X(?![A-Za-z0-9])"),
    _rule("shippo-api-token", r"shippo_(?:live|test)_[a-f0-9]{40}(?![A-Za-z0-9])"),
    _rule("stripe-secret-key", rf"sk_live_{_B62}{{16,247}}{_END62}"),
    _rule("stripe-secret-key", rf"sk_test_{_B62}{{16,247}}{_END62}", 0.8),
    _rule("stripe-restricted-key", rf"rk_(?:live|test)_{_B62}{{16,247}}{_END62}"),
    _rule("stripe-webhook-secret", rf"whsec_{_B62}{{32,128}}{_END62}"),
    _rule("square-access-token", r"sq0atp-[A-Za-z0-9_\-]{22}(?![A-Za-z0-9_\-])"),
    _rule("square-oauth-secret", r"sq0csp-[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])"),
    _rule("square-access-token", r"EAAA[A-Za-z0-9_\-+=]{60}(?![A-Za-z0-9_\-+=/])", check=_random_body, left=_B64),
    _rule("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![a-fA-F0-9])"),
    _rule("paypal-braintree-token", r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}(?![0-9a-f])"),
    _rule("salesforce-access-token", r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9_.]{80,256}(?![A-Za-z0-9_.])"),
    # --- AI providers ---
    _rule("anthropic-api-key", rf"sk-ant-(?:api|admin|oat|ort|sid)\d{{2}}-{_URLSAFE}{{32,256}}{_ENDURL}"),
    _rule("openai-api-key", rf"sk-(?:proj|svcacct|admin|None)-{_URLSAFE}{{40,400}}{_ENDURL}", check=_distinct(12)),
    _rule("openai-api-key", rf"sk-{_B62}{{20}}T3BlbkFJ{_B62}{{20}}{_END62}"),
    _rule("openrouter-api-key", r"sk-or-v1-[a-f0-9]{64}(?![a-f0-9])"),
    # OpenAI-compatible providers (DeepSeek, Moonshot and others) reuse the bare sk- prefix.
    _rule("sk-api-key", rf"sk-{_B62}{{32,128}}{_ENDURL}", 0.9, check=_random_body),
    _rule("posthog-api-key", rf"ph[xsra]_{_B62}{{40,64}}{_END62}"),
    _rule("huggingface-token", rf"hf_[A-Za-z0-9]{{30,40}}{_END62}", check=_mixed_letters),
    _rule("huggingface-token", rf"api_org_[A-Za-z0-9]{{30,40}}{_END62}", check=_mixed_letters),
    _rule("groq-api-key", rf"gsk_{_B62}{{52}}{_END62}"),
    _rule("xai-api-key", rf"xai-{_B62}{{80}}{_END62}"),
    _rule("perplexity-api-key", rf"pplx-{_B62}{{48}}{_END62}"),
    _rule("tavily-api-key", rf"tvly-(?:dev-|prod-)?{_B62}{{32}}{_END62}"),
    _rule("together-api-key", rf"tgp_v1_{_URLSAFE}{{43}}{_ENDURL}"),
    _rule("llamacloud-api-key", rf"llx-{_URLSAFE}{{40,64}}{_ENDURL}"),
    _rule("replicate-api-token", rf"r8_{_B62}{{37}}{_END62}", check=_random_body),
    _rule("langsmith-api-key", r"lsv2_(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}(?![a-f0-9])"),
    # services MCP servers are commonly configured with (their keys sit in mcp.json env blocks and .env files)
    _rule("langfuse-secret-key", rf"sk-lf-{_GUID}(?![0-9a-f\-])"),
    _rule("pinecone-api-key", rf"pcsk_{_B62}{{4,8}}_{_B62}{{40,90}}{_END62}", check=_random_not_words),
    _rule("firecrawl-api-key", r"fc-[a-f0-9]{32}(?![A-Za-z0-9])", left="_-"),
    _rule("e2b-api-key", r"e2b_[a-f0-9]{40}(?![A-Za-z0-9])"),
    _rule("browserbase-api-key", rf"bb_(?:live|test)_{_URLSAFE}{{24,40}}{_ENDURL}", check=_random_not_words),
    _rule("fireworks-api-key", rf"fw_{_B62}{{20,32}}{_END62}", check=_random_not_words, left="_-"),
    _rule("resend-api-key", rf"re_{_B62}{{6,12}}_{_B62}{{16,40}}{_END62}", check=_random_not_words, left="_-"),
    _rule("elevenlabs-api-key", r"sk_[a-f0-9]{48}(?![A-Za-z0-9])", check=_distinct(12), left="_-"),
    # --- social and consumer platforms ---
    _rule("facebook-access-token", rf"EAA[A-Z]{_B62}{{80,512}}{_END64}", check=_random_body, left=_B64),
    _rule("facebook-app-token", rf"\|{_URLSAFE}{{27}}{_ENDURL}", back=_rx(r"\d{15,16}(?![0-9])")),
    _rule("instagram-access-token", rf"IGQV{_URLSAFE}{{100,512}}{_ENDURL}", left=_B64),
    _rule("twitter-bearer-token", r"AAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,256}(?![A-Za-z0-9%])", left=_B64, runs=False),
    _rule("dropbox-access-token", rf"sl\.(?:u\.)?{_URLSAFE}{{130,1400}}{_ENDURL}"),
    _rule(
        "dropbox-long-lived-token",
        rf"AAAAAAAAAA{_URLSAFE}{{43}}{_ENDURL}",
        back=_rx(r"[A-Za-z0-9]{11}(?![A-Za-z0-9+/_\-])"),
    ),
    _rule("mapbox-secret-token", rf"sk\.eyJ{_URLSAFE}{{50,512}}\.{_URLSAFE}{{20,64}}{_ENDURL}"),
    # --- generic structured credentials ---
    _rule(
        "jwt",
        rf"eyJ{_URLSAFE}{{8,4096}}\.eyJ{_URLSAFE}{{4,16384}}\.{_URLSAFE}{{0,2048}}{_ENDURL}",
        0.9,
        check=_jwt,
        runs=False,
        left="._-",
    ),
    # A JSON Web Key (set) shipped base64-encoded, as Kubernetes secrets carry it.
    *(
        _rule(
            "jwk-private-key",
            rf"{prefix}[A-Za-z0-9+/]{{60,8192}}={{0,2}}{_END64}",
            check=_encoded_private_jwk,
            left=_B64,
            runs=False,
        )
        for prefix in ("ewo", "Wwo", "eyJrdHki", "W3sia3R5Ij")
    ),
    # A PuTTY key file (.ppk): the lines after "Private-Lines: N" are the private key (encrypted or not);
    # the header, public lines and MAC are left readable. Lines may be real or escaped (\n) line breaks.
    _rule(
        "putty-private-key",
        r"Private-Lines:[ \t]{0,4}\d{1,3}(?:\r?\n|(?:\\r)?\\n)(?P<v>[A-Za-z0-9+/=]{16,64}"
        r"(?:(?:\r?\n|(?:\\r)?\\n)[A-Za-z0-9+/=]{4,64}(?=\r?\n|\\[rn]|\Z|[\"'])){0,300})",
        left=None,
        runs=False,
    ),
    _rule("ntlm-credentials", rf"TlRMTVNTUAAD[A-Za-z0-9+/]{{40,4096}}={{0,2}}{_END64}", left=_B64, runs=False),
    # A DER-encoded private key (PKCS#1 RSA, PKCS#8, SEC1 EC, Ed25519) in base64 without PEM armour.
    *(
        _rule("private-key-der-base64", rf"{prefix}[A-Za-z0-9+/]{{40,8192}}={{0,2}}{_END64}", left=_B64, runs=False)
        for prefix in (
            "MII[A-Za-z0-9+/]{3}IBA(?:A[JK]|DAN)",
            "MIG[A-Za-z0-9+/]AgEAMBMGByqGSM49",
            "MHcCAQEEI",
            "MC4CAQAwBQYDK2Vw",
        )
    ),
)

# No literal prefix, so scanning for it costs as much as ten prefixed rules: the detector runs it
# only where Atlassian or a bearer token is mentioned. A decoded "<digits>:" payload must follow.
JIRA_RULE = _rule("jira-data-center-token", rf"[MNO][A-Za-z0-9]{{43}}{_END62}", check=_jira_pat, left=None)
