"""Word lists for finding people's names in MCP traffic, where most capitalised words are not names.

Tool descriptions and results are full of capitalised product, language and API words ("Docker",
"Python", "Pull Request", "Claude Desktop") that a small NER model readily calls people. These
lists keep such words out of PERSON findings and out of the NER budget.

The first-name list itself is not ours: when the ``names`` package (MIT; US Census 1990 name
frequency lists) is installed, `first_names` reads it at run time. Without it the detector still
finds people, by honorific cues and NER only.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

__all__ = ["AMBIGUOUS_FIRST_NAMES", "NOT_NAME_WORDS", "PLACE_NAMES", "first_names", "last_names"]

logger = logging.getLogger(__name__)

# Capitalised words that are (almost) never part of a person's name in tool traffic: a PERSON
# finding containing one of them is dropped. Lower-case.
NOT_NAME_WORDS = frozenset(
    (
        "python", "docker", "github", "gitlab", "bitbucket", "git", "kubernetes", "k8s", "linux", "windows", "macos",
        "ubuntu", "debian", "fedora", "android", "ios", "node", "nodejs", "npm", "npx", "pip", "pypi", "conda", "react",
        "vue", "angular", "svelte", "django", "flask", "fastapi", "javascript", "typescript", "golang", "haskell",
        "elixir", "erlang", "clojure", "kotlin", "scala", "rust", "php", "perl", "bash", "zsh", "powershell",
        "postgres", "postgresql", "mysql", "sqlite", "redis", "mongo", "mongodb", "kafka", "hadoop", "airflow",
        "terraform", "ansible", "kubectl", "helm", "nginx", "apache", "tomcat", "puppeteer", "playwright", "selenium",
        "chrome", "chromium", "firefox", "safari", "slack", "discord", "notion", "jira", "confluence", "trello",
        "asana", "figma", "google", "gmail", "youtube", "microsoft", "azure", "aws", "amazon", "openai", "anthropic",
        "gemini", "ollama", "copilot", "vscode", "neovim", "vim", "emacs", "cloudflare", "vercel", "netlify", "heroku",
        "stripe", "paypal", "shopify", "salesforce", "hubspot", "zapier", "dropbox", "onedrive", "sharepoint",
        "outlook", "zoom", "whatsapp", "telegram", "spotify", "netflix", "nvidia", "mcp", "api", "apis", "sdk", "cli",
        "json", "yaml", "toml", "html", "css", "sql", "http", "https", "url", "uri", "uuid", "pdf", "csv", "markdown",
        "readme", "server", "servers", "client", "clients", "request", "requests", "response", "tool", "tools", "file",
        "files", "directory", "directories", "folder", "path", "search", "query", "create", "update", "delete", "fetch",
        "memory", "database", "table", "model", "context", "protocol", "desktop", "code", "studio", "app", "apps",
        "cloud", "web", "browser", "page", "pages", "site", "repository", "repo", "repositories", "branch", "commit",
        "pull", "merge", "issue", "issues", "project", "projects", "workspace", "user", "users", "admin", "account",
        "accounts", "service", "services", "function", "functions", "endpoint", "endpoints", "token", "tokens", "key",
        "keys", "error", "errors", "status", "data", "system", "systems", "test", "tests", "demo", "example",
        "examples", "resource", "resources", "prompt", "prompts", "agent", "agents", "assistant", "weather", "forecast",
        "map", "maps", "news", "market", "stock", "stocks", "price", "prices", "crypto", "bitcoin", "ethereum", "max",
        "min", "size", "length", "width", "height", "count", "total", "limit", "offset", "score", "color", "colour",
        "font", "style", "name", "names", "id", "ids", "type", "types", "format", "header", "footer", "row", "rows",
        "column", "columns", "value", "values", "upper", "lower", "bound", "start", "quick", "guide", "overview",
        "summary", "default", "mode", "level", "threshold", "interval", "frequency", "monday", "tuesday", "wednesday",
        "thursday", "friday", "saturday", "sunday", "january", "february", "march", "july", "september", "october",
        "november", "december", "street", "st", "avenue", "ave", "road", "rd", "suite", "apt",
        # street and place words ("Kimberly Way", "Via Roma", "Station Nord") and company words
        # ("Galorath Incorporated"): a phrase with one is an address or an organisation
        "way", "drive", "flat", "flats", "square", "squares", "place", "plaza", "court", "crescent", "terrace",
        "boulevard", "blvd", "highway", "hwy", "via", "rua", "calle", "rue", "gasse", "strasse", "straße", "weg",
        "platz", "station", "store", "airport", "harbour", "harbor", "corporation", "incorporated", "inc", "corp",
        "llc", "ltd", "gmbh", "plc", "company", "holdings", "solutions", "consulting", "agency", "technologies",
        "foundation", "institute", "university", "college", "school", "hospital", "bank", "hotel", "church",
        "group", "partners", "associates", "brothers", "bros", "sons", "international", "global", "labs", "lab",
        "media", "networks", "capital", "ventures", "industries", "enterprises", "investments", "analytics", "trust",
        "fund", "insurance", "financial", "motors", "airlines", "records", "studios", "journal", "magazine",
        "business", "weekly", "daily", "council", "committee", "department", "ministry", "office", "club", "team",
        "association", "society", "union", "party", "army", "navy", "police", "orchestra", "band", "choir",
        "ensemble", "quartet", "lodge",
    )
)

# First names that are also ordinary capitalised words ("Will Return", "Grant Access",
# "Mark Complete") or product names ("Claude", "Julia", "Ruby"): not enough on their own.
AMBIGUOUS_FIRST_NAMES = frozenset(
    (
        "will", "may", "june", "april", "august", "grant", "mark", "bill", "chase", "max", "ray", "rich", "art", "guy",
        "joy", "hope", "faith", "dawn", "summer", "autumn", "winter", "crystal", "ruby", "pearl", "jade", "amber",
        "rose", "lily", "iris", "violet", "ivy", "holly", "heather", "robin", "jack", "frank", "sterling", "earnest",
        "major", "king", "young", "hunter", "rocky", "sandy", "sunny", "carol", "eve", "don", "sue", "pat", "gene",
        "lou", "claude", "ada", "julia", "jean", "page", "dash", "buck", "cliff", "dale", "glen", "lane", "wade",
        "ward", "bud", "sky", "star", "storm", "river", "rain", "misty", "sage", "angel", "christian", "tuesday",
        "fern", "forest", "brook", "brooks", "bay", "cat", "kit", "penny", "rusty", "gay", "harmony", "honey", "miles",
        "norma", "man", "press", "price", "pierce", "reed", "royal", "sharon", "shad", "sol", "tom", "van", "vance",
        "lee", "long", "cash", "chance", "clay", "cole", "deal", "drew", "early", "ebony", "field", "golden", "ginger",
        "hall"
    )
)

# Places that are also in the census first-name lists: alone, they are far more often the place.
PLACE_NAMES = frozenset(
    (
        "america", "asia", "africa", "europe", "china", "india", "france", "israel", "kenya", "austria", "argentina",
        "brazil", "chile", "jordan", "georgia", "florida", "virginia", "carolina", "dakota", "maryland", "nevada",
        "alberta", "victoria", "houston", "dallas", "denver", "austin", "paris", "venice", "milan", "geneva",
        "florence", "sydney", "adelaide", "columbus", "orlando", "raleigh", "tijuana", "trinidad", "dominica",
        "lincoln", "cleveland", "madison", "jackson", "phoenix", "chelsea", "york", "berlin", "vienna", "regina",
        "alexandria", "charlotte", "savannah", "augusta", "helena", "eugene", "tyler", "santiago", "lima",
        "kent", "devon", "essex", "camden", "stanford", "cornell", "princeton", "harvard", "yale", "temple",
    )
)

_FUNCTION_WORDS = frozenset(
    ("the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "his", "one", "our", "out", "see",
     "who", "way", "new", "get", "set", "use", "add", "run", "let", "yet", "nor", "own", "per", "via", "top", "big"),
)


def first_names() -> frozenset[str]:
    """Lower-case first names from the ``names`` package, or an empty set when it is absent."""
    found = _census(("first:male", "first:female"))
    # the census lists hold a few function words too ("My", "An"), which start many titles
    return frozenset(name for name in found - AMBIGUOUS_FIRST_NAMES if len(name) > 2 and name not in _FUNCTION_WORDS)


# The surname list runs to 88,799 names, its tail full of ordinary words ("Purchase" is 29,795th,
# "Counter" 24,796th); the first 20,000 hold the common surnames ("Poulsen" 10,174th) and few words.
LAST_NAME_RANKS = 20_000


def last_names() -> frozenset[str]:
    """The `LAST_NAME_RANKS` commonest surnames from the ``names`` package (lower-case), or an
    empty set when it is absent."""
    return frozenset(_census(("last",), max_rank=LAST_NAME_RANKS))


def _census(keys: tuple[str, ...], *, max_rank: int | None = None) -> set[str]:
    try:
        package = importlib.import_module("names")
    except ImportError:
        logger.info("the 'names' package is not installed: PERSON is found by honorifics and NER only")
        return set()
    files = getattr(package, "FILES", {})
    found: set[str] = set()
    for key in keys:
        path = files.get(key)
        if not path:
            continue
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            logger.warning("cannot read the name list %s (%s): %s", path, key, exc)
            continue
        # each line: NAME, frequency %, cumulative %, rank
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            ranked = len(fields) == 4 and fields[3].isdigit()
            if max_rank is None or (ranked and int(fields[3]) <= max_rank):
                found.add(fields[0].lower())
    return found
