"""The syntax the secrets detector reads: where a secret can sit in env files, URLs, headers, SQL,
command lines, JSON, YAML and PEM armour. Patterns only; `secrets.SecretsDetector` applies them."""

from __future__ import annotations

import base64
import re

from .secret_patterns import word_set

# ---------------------------------------------------------------------------------------------
# Patterns (those that run on the lower-cased text are marked; offsets are the same)
# ---------------------------------------------------------------------------------------------

# lower-cased: a secret-naming stem, the rest of its identifier, a separator and a value.
ASSIGNMENT = re.compile(
    r"(?P<id>(?:pass|pasw|pw|psw|pssw|secret|token|key|cred|auth|bearer|api)[\w.\-]{0,40}+)"
    r"(?P<kq>\\?[\"'`]\]?|&quot;|\))?"
    r"(?P<sep>[ \t]{0,8}(?::=|=>|==|!=|=|:(?:[ \t]{0,4}(?:str|string|&str)[ \t]{0,4}=)?)|[ \t]{1,8}+)[ \t]{0,8}+"
    r"(?:![!a-z]{1,16}[ \t]{1,4})?"  # a YAML tag: `secret: !!binary c2VjcmV0`
    r"(?:(?P<q>\\?[\"'`]|&quot;|&#39;)(?P<qv>[^\"'`\\\s<>]{1,512}?)(?P=q)"
    r"|(?P<uv>[^\s\"'`\\,;<>(){}\[\]|]{1,512}+))"
)
HTML_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d{1,6})(?![A-Za-z0-9])")
JSON_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# `#define PASSWORD "x"`, `SET password "x"`: a space separates name and value after these.
DEFINE_BEFORE = re.compile(r"(?:#define|%define|%global|\bset|\bsetenv)[ \t]{1,4}\Z", re.IGNORECASE)
# Source code, not a config file: a line that defines, imports or declares in a common language ("export",
# which a shell profile also begins its lines with, is not one of them).
CODE_HINT = re.compile(
    r"^[ \t]*(?:def|class|async[ \t]+def|import|from[ \t]+[\w.]+[ \t]+import|function|const|let|var|"
    r"interface|type[ \t]+\w+[ \t]*=|public|private|protected|func|fn|package|struct|impl)\b",
    re.MULTILINE,
)
# lower-cased: `define('DB_PASSWORD', 'x')` (PHP, as in wp-config.php, whose salts may hold spaces)
DEFINE_CALL = re.compile(
    r"define[ \t]{0,4}\([ \t]{0,4}(?P<kq>[\"'])(?P<k>[\w.\-]{1,60})(?P=kq)[ \t]{0,4},[ \t]{0,16}"
    r"(?P<q>[\"'])(?P<v>[^\"'\\\n]{1,512}?)(?P=q)[ \t]{0,4}\)"
)
WORDPRESS_SALT = re.compile(r"(?:secure_)?(?:auth|logged_in|nonce)_(?:key|salt)")  # lower-cased
# `ENV SECRET_KEY abc` (a Dockerfile's older form) and a .netrc's `machine h login u password p`: a space
# separates an unquoted value after these.
DOCKER_ENV_BEFORE = re.compile(r"(?:^|\n)[ \t]{0,8}(?:ENV|ARG)[ \t]{1,4}\Z")
NETRC_BEFORE = re.compile(  # matched from the last "machine" or "default" before the password, to it
    r"(?:machine[ \t]+\S{1,253}|default)(?:\s+(?:login|account|port)[ \t]+\S{1,128}){0,3}\s+"
)
# lower-cased: `<password name="db">hunter22</password>`
XML_ELEMENT = re.compile(
    r"<(?P<tag>[\w:.\-]{0,20}?(?:pass|pasw|pw|psw|secret|token|key|cred|auth|api)[\w:.\-]{0,20}+)"
    r"(?:[ \t][^<>\n]{0,200})?>(?P<v>[^<>\s]{1,512}+)</(?P=tag)>"
)
JWK_PRIVATE = re.compile(r"\"(?:d|p|q|dp|dq|qi|k)\"[ \t]*:[ \t]*\"(?P<v>[A-Za-z0-9_\-]{16,8192}+)\"")
ENV_LOOKUPS = ("getenv", "environ.get", "env.get", "getproperty", "getenvironmentvariable", "env", "fetch")
DEFAULT_ARGUMENT = re.compile(r"\([^()\n]{0,80}?,[ \t]*(?P<q>[\"'])(?P<v>[^\"'\s]{1,128}+)(?P=q)[ \t]*\)")
OR_DEFAULT = re.compile(r"\([^()\n]{0,80}+\)[ \t]*(?:or|\|\||\?\?|\?:)[ \t]*(?P<q>[\"'])(?P<v>[^\"'\s]{1,128}+)(?P=q)")
# Read backwards (on the reversed text before a position): one anchored match instead of a search.
IDENT_BEFORE = re.compile(r"[\w.\-]{1,60}")
WORD_BEFORE = re.compile(r"[ _]([A-Za-z]{2,24})")
KEY_LEFT_OK = frozenset(" \t\r\n\"'`{[(,;|&?/<*#>!:=+\\")

# lower-cased: `"name": "DB_PASSWORD", "value": "..."` (Kubernetes env, ECS, CloudFormation parameters)
NAME_VALUE_JSON = re.compile(
    r"\"(?:name|key|parameterkey)\"[ \t]*:[ \t]*\"(?P<k>[^\"\\]{1,64})\"[ \t]*,[ \t\r\n]*"
    r"\"(?:value|parametervalue)\"[ \t]*:[ \t]*\"(?P<v>[^\"\\]{1,512})\""
)
NAME_VALUE_YAML = re.compile(
    r"name:[ \t]*[\"']?(?P<k>[\w.\-]{1,64})[\"']?[ \t]*\r?\n[ \t]*(?:-[ \t]+)?value:[ \t]*"
    r"(?P<q>[\"']?)(?P<v>[^\s\"']{1,512})(?P=q)"
)

# The password runs to the last "@" of the authority: an "@", "#" or "?" left unencoded ("P@ss#1") before
# it belongs to the password.
URL_USERINFO = re.compile(
    r"://(?P<user>[^\s:/?#@\"'<>\[\]{}\\]{0,128}+):"
    r"(?P<v>(?:[^\s/?#@\"'<>\[\]{}\\]|[@#?](?=[^\s/@\"'<>\[\]{}\\]{0,256}+@)){1,256}+)@(?=[A-Za-z0-9\[_])"
)
SCHEME_BEFORE = re.compile(r"[A-Za-z0-9+.\-]{1,31}")  # reversed
DATABASE_SCHEMES = word_set(
    "postgres postgresql mysql mariadb mongodb mongodb+srv redis rediss amqp amqps mssql sqlserver oracle "
    "cockroachdb clickhouse couchdb neo4j neo4j+s bolt cassandra memcached nats kafka mqtt mqtts ldap ldaps "
    "jdbc:postgresql jdbc:mysql jdbc:sqlserver jdbc:oracle snowflake db2 sqlite"
)
URL_PLACEHOLDERS = word_set(
    "pass password passwd pwd secret xxx xxxx changeme pw p yourpassword your_password mypassword token redacted "
    "masked hidden"
)

# lower-cased
BEARER = re.compile(r"(?P<scheme>bearer|token)[ \t]+(?P<v>[a-z0-9._~+/\-]{12,4096}+=*)")
BASIC = re.compile(r"basic[ \t]+(?P<v>[a-z0-9+/]{8,1024}+={0,2})(?![a-z0-9+/=])")
MYSQL_HASH = re.compile(r"\*[0-9A-Fa-f]{40}")  # `IDENTIFIED ... AS '*92FD05...'`
SQL_IDENTIFIED = re.compile(
    r"identified[ \t]+(?:with[ \t]+['\"`]?[a-z0-9_]{1,40}['\"`]?[ \t]+)?(?:by|as)[ \t]+(?:password[ \t]+)?"
    r"(?P<q>['\"]?)(?P<v>[^\s'\";]{1,128}+)(?P=q)"
)
SQL_PASSWORD = re.compile(r"password[ \t]+(?:(?P<q>')(?P<qv>[^'\s]{1,128}+)'|(?P<uv>[^\s'\";=]{1,128}+)(?=[ \t]*;))")
POWERSHELL = re.compile(
    r"convertto-securestring[ \t]+(?:-string[ \t]+)?(?:-asplaintext[ \t]+)?(?:-force[ \t]+)?"
    r"(?P<q>\\?['\"]?)(?P<v>[^\s'\"\\-][^\s'\"\\]{3,127}+)"
)

# original case
CURL_USER = re.compile(r"(?:-u|--user)[ \t]+(?P<q>['\"]?)[^\s:'\"]{1,64}+:(?P<v>[^\s'\"]{1,128}+)(?P=q)")
OPENSSL_PASS = re.compile(r"-pass(?:in|out)?[ \t]+['\"]?pass:(?P<v>[^\s'\"]{1,128}+)")
SSHPASS = re.compile(r"sshpass[ \t]+-p[ \t]*(?P<q>['\"]?)(?P<v>[^\s'\"]{1,128}+)(?P=q)")
MYSQL_P = re.compile(r"mysql[a-z]{0,6}[ \t][^\n]{0,200}?[ \t]-p(?P<v>[^\s'\"\-][^\s'\"]{3,64}+)")

PEM_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
PEM_END = re.compile(r"-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----")
B64_RUN = re.compile(r"[A-Za-z0-9+/=]{16,}+")
PROSE = re.compile(r"[a-z]{2,} [a-z]{1,} [a-z]{2,}")

BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def b64_needles(plain: bytes) -> tuple[str, ...]:
    """Base64 fragments that appear wherever `plain` sits inside a larger base64 text."""
    needles = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + plain).decode()
        first_full = -(-shift // 3) * 4
        last_full = (shift + len(plain)) // 3 * 4
        needles.append(encoded[first_full:last_full])
    return tuple(needles)


# A Kubernetes Secret or a .env shipped base64-encoded still carries "PRIVATE KEY-----" inside.
B64_PRIVATE_KEY = b64_needles(b"PRIVATE KEY-----")

AWS_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")
ALIBABA_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{30}(?![A-Za-z0-9])")
TWILIO_SID = re.compile(r"AC[0-9a-f]{32}(?![0-9a-zA-Z])")
DER_CONTINUATION = re.compile(r"(?:[ \t]*(?:\r?\n|\\r\\n|\\n)[ \t]*)(?P<run>[A-Za-z0-9+/]{16,}+={0,2})")

# Entropy fallback: a long random string assigned to some key.
ASSIGNED_RANDOM = re.compile(
    r"[=:](?:[ \t]{0,4}[\"']|[ \t]{1,4}|)(?P<v>[A-Za-z0-9+/_\-]{32,256}+={0,2})(?=[\s\"',;&)}\]<]|\Z)"
)
KEY_BEFORE = re.compile(r"[ \t]{0,4}[\"']?([\w.\-]{1,60})")  # reversed
# Keys whose random-looking values are identifiers, digests or payloads, not credentials.
ID_WORDS = word_set(
    "id ids sha hash digest checksum etag integrity node cursor page nonce salt signature sig fingerprint uuid "
    "guid commit tree parent blob ref rev revision version image icon avatar thumbnail data content body base64 "
    "b64 encoded payload certificate cert pubkey public url uri href src link path file filename name title slug "
    "query q search hashtag key md5 sha1 sha256 sha512 crc request trace span session correlation message msg "
    "event run job build task thread tx txn transaction block address wallet contract hmac mac iv tag png jpg "
    "jpeg gif webp svg pdf mime mimetype"
)
