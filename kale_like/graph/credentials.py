"""Does a name or a value look like a credential?

Pipeline parameters and environment variables are written in plain text into the compiled YAML and
the KFP module, stored in the KFP database and shown in its UI: a credential belongs in a
Kubernetes secret. Two detectors answer together:

- Yelp's detect-secrets: its pattern plugins for values (AWS, GitHub, GitLab, Slack, Stripe, JWT,
  private keys, `scheme://user:password@host`, ...) and its keyword list for names (`db_pass`,
  `pwd`, `password`, `api_key`, ...). Its entropy plugins are left out: a content hash or a model
  id is not a secret, and a false alarm blocks a compile. Imported on first use (it takes a few
  tenths of a second to import).
- our own rules for what it does not know: names (`apitoken`, `passcode`, `openai_key`, `hf_token`,
  ...) and values (`Bearer ...`, `sk-...`, `hf_...`), and a dict holding a credential-named key
  with a text value (`{"password": "..."}`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

_WORDS = {"password", "passwd", "passphrase", "passcode", "pwd", "secret", "secrets", "token", "tokens", "apikey",
          "apitoken", "accesstoken", "refreshtoken", "authtoken", "credential", "credentials", "privatekey",
          "accesskey", "secretkey", "clientsecret", "apisecret", "bearer"}
_LAST_WORDS = {"pass"}  # db_pass, user_pass; not pass_through
_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("secret", "key"), ("auth", "token"),
          ("client", "secret"), ("auth", "key"), ("service", "key"), ("account", "key"), ("signing", "key"),
          ("encryption", "key"), ("master", "key"), ("ssh", "key")}
# services whose `<service>_key` is their API key
_SERVICES = {"openai", "anthropic", "cohere", "mistral", "groq", "hf", "huggingface", "wandb", "comet", "neptune",
             "aws", "gcp", "azure", "stripe", "github", "gitlab", "slack", "twilio", "sendgrid", "mailchimp",
             "datadog", "sentry", "pinecone", "replicate", "together", "db", "database"}
_VALUE = re.compile(
    r"^(sk-[A-Za-z0-9_-]{16,}|sk_(live|test)_[A-Za-z0-9]{16,}|rk_(live|test)_[A-Za-z0-9]{16,}|"
    r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|"
    r"AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|"
    r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\..*|-----BEGIN [A-Z ]*PRIVATE KEY-----.*|"
    r"(?i:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,})$", re.DOTALL)
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_MOST_ITEMS = 10_000  # of a list or dict default: a large literal is data, checked up to this many strings


def credential_name(name: str) -> str:
    """The word of `name` that reads like a credential ('' if none): api_key, dbPassword, TOKEN, db_pass."""
    words: list[str] = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name.replace("-", "_"))]
    for word in words:
        if word in _WORDS:
            return word
    if words and words[-1] in _LAST_WORDS:
        return words[-1]
    for pair in zip(words, words[1:]):
        if pair in _PAIRS or (pair[1] == "key" and pair[0] in _SERVICES):
            return "_".join(pair)
    match = _keyword_names().search("_".join(words))
    return match.group(1) if match else ""


def credential_value(value: object) -> str:
    """What kind of credential a value holds ('' if none), looking inside lists and dicts: 'token',
    'AWS Access Key' (detect-secrets' name), "a 'password' entry", ..."""
    budget = [_MOST_ITEMS]
    return _value_kind(value, 0, budget)


def _value_kind(value: object, depth: int, budget: list[int]) -> str:
    if depth > 20 or budget[0] <= 0:
        return ""
    budget[0] -= 1
    if isinstance(value, str):
        return _string_kind(value.strip())
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and isinstance(item, str) and item.strip() and credential_name(key):
                return f"a {key!r} entry"
            kind = _value_kind(item, depth + 1, budget)
            if kind:
                return kind
    if isinstance(value, (list, tuple)):
        for item in value:
            kind = _value_kind(item, depth + 1, budget)
            if kind:
                return kind
    return ""


def _string_kind(text: str) -> str:
    if len(text) < 8:
        return ""
    if _VALUE.match(text):
        return "token"
    if _URL_PASSWORD.match(text):
        return "URL with a password"
    for plugin in _value_plugins():
        if any(True for _ in plugin.analyze_string(text)):
            return str(plugin.secret_type)
    return ""


@functools.cache
def _value_plugins() -> tuple[Any, ...]:  # detect-secrets ships no type hints
    """detect-secrets' pattern plugins, less two: a public IP address is not a credential, and the
    Artifactory pattern (`AP`, a hex digit, 8 letters or digits) matches ordinary names such as
    'APDataset2024'."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.artifactory import ArtifactoryDetector
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.ip_public import IPPublicDetector

    kinds: list[type] = list(get_mapping_from_secret_type_to_class().values())
    return tuple(kind() for kind in kinds
                 if issubclass(kind, RegexBasedDetector) and kind not in (IPPublicDetector, ArtifactoryDetector))


@functools.cache
def _keyword_names() -> re.Pattern[str]:
    """detect-secrets' list of credential words in names, matched from the start of a word."""
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile(r"(?:^|_)(" + "|".join(DENYLIST) + ")")
