"""What is never bundled from a --src root: dot-files, junk, and names secrets go by.

Bundling starts from what the model imports (its packages and modules, with the package
data inside them), so a key beside a package is never looked at. Inside an imported package,
three rules, checked on every component of a path:

* a name starting with ``.`` (a dot-file or dot-directory: ``.env``, ``.git``, ``.aws``,
  ``.docker/config.json``, ``.kube/config``, ``.npmrc``, ``.vault-token`` ...) is never
  bundled: no importable module or package data is named so;
* a name secrets go by (private keys, credential files, cloud service-account keys, token
  files) is never bundled, whatever its directory (a ``.py`` file is code, judged by
  nothing but its import);
* bytecode caches are never bundled (they are compiled for the env);
* a file whose content looks like a secret (a PEM private key, a cloud access key, a
  well-known token: ``looks_secret``) is never bundled, whatever its name: a hard link to
  ``~/.ssh/id_rsa`` named ``weights.bin`` is caught by what it holds.
Each skipped path is listed with its reason; each bundled file is listed too. A file the
user means to ship (a test CA's key, say) is named with ``--allow-secret PATH``.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

SECRET_PATTERNS = (
    # private keys and certificates' keys
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "id_xmss*", "*.pem", "*.key", "*.p12",
    "*.pfx", "*.ppk", "*.jks", "*.keystore", "*.kdbx", "*.asc", "*.gpg", "secring.*",
    # credential and token files of common tools and clouds
    "credentials", "credentials.*", "*.credentials", "*credentials*.json",
    "application_default_credentials.json", "service-account*.json", "service_account*.json",
    "*serviceaccount*.json", "client_secret*.json", "*-sa-key.json", "*.token", "token.json",
    "vault-token", "_netrc", "netrc", "pgpass", "git-credentials", "htpasswd", "kubeconfig",
    "secrets.*", "secret.*", "*.tfvars", "terraform.tfstate*", "wallet.dat", "dockercfg",
    "config.json.bak", "*.env",
    # keys by other names, VPN and signing material, state files, token and password notes
    "*_rsa", "*_dsa", "*_ecdsa", "*_ed25519", "ssh_host_*", "*.p8", "*.ovpn", "*.tfstate",
    "*.tfstate.*", "password*", "passwd*", "*api_key*", "*apikey*", "*api-key*", "token.*",
    "*_token.*", "*-token.*", "*access_key*", "*secret_key*", "*_keys.*", "*-keys.*", "*.sqlite3",
    "*.sqlite",
    # the words anywhere in a name (aws_credentials, prod-secrets.yaml, db_password.txt)
    "*credential*", "*secret*", "*password*", "*passwd*", "*private_key*", "*private-key*",
    "*privatekey*", "*privkey*", "*netrc*", "*htpasswd*", "*pgpass*", "*kubeconfig*",
    "*id_rsa*", "*id_dsa*", "*id_ecdsa*", "*id_ed25519*", "*service_account*",
    "*service-account*", "*.pem.*", "*.key.*", "*.tfvars.*", "*authkey*",
)
# Content: what a secret looks like, whatever its file is called (well-known formats only,
# so package data is not mistaken for one).
CONTENT_PATTERNS = (
    ("a private key (PEM block)",
     rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ("a PuTTY private key", rb"PuTTY-User-Key-File-\d+:"),
    ("an AWS access key", rb"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Z0-9])"),
    ("an AWS secret key", rb"(?i:aws_secret_access_key)\s*[=:]\s*[\"']?[A-Za-z0-9/+=]{40}"),
    ("a GitHub token", rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    ("a GitLab token", rb"glpat-[A-Za-z0-9_\-]{20,}"),
    ("a Slack token", rb"xox[abposr]-[A-Za-z0-9-]{10,}"),
    ("a Google API key", rb"AIza[0-9A-Za-z_\-]{35}"),
    ("a Hugging Face token", rb"(?<![A-Za-z0-9_])hf_[A-Za-z]{34}(?![A-Za-z0-9])"),
    ("an OpenAI API key", rb"sk-(?:proj-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}"),
    ("an Anthropic API key", rb"sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}"),
    ("a SendGrid API key", rb"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),
    ("a Databricks token", rb"(?<![A-Za-z0-9])dapi[0-9a-f]{32}(?![A-Za-z0-9])"),
    ("an age secret key", rb"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    ("a Stripe live key", rb"(?:sk|rk)_live_[0-9A-Za-z]{24,}"),
    ("an npm token", rb"npm_[A-Za-z0-9]{36}"),
    ("a PyPI token", rb"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
    ("an Azure storage key", rb"AccountKey=[A-Za-z0-9+/]{86}=="),
)
_CONTENT = re.compile(b"|".join(b"(" + pat + b")" for _, pat in CONTENT_PATTERNS))
_CHUNK = 1 << 20
_OVERLAP = 4096  # longer than any pattern above, so a match across two chunks is seen
JUNK = ("__pycache__", "*.pyc", "*.pyo")


def why_not_bundled(parts: tuple[str, ...]) -> str | None:
    """Why a path (its components, inside an imported package) is not bundled, or None."""
    for part in parts:
        if part.startswith("."):
            return "dot-file" if part is parts[-1] else "in a dot-directory"
        lower = part.lower()
        if any(fnmatch.fnmatchcase(lower, pat) for pat in JUNK):
            return "bytecode cache"
        if not lower.endswith(".py") and any(fnmatch.fnmatchcase(lower, pat)
                                             for pat in SECRET_PATTERNS):
            return "secret-like name"
    return None


def looks_secret(path: Path) -> str | None:
    """What ``path``'s content looks like when it holds a secret ("a private key (PEM
    block)"), else None. The whole file is read in chunks that overlap, so a key buried
    after megabytes of data is found; an unreadable file is left to the copy to report."""
    tail = b""
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                found = _CONTENT.search(tail + chunk)
                if found is not None:
                    return CONTENT_PATTERNS[found.lastindex - 1][0] if found.lastindex else None
                tail = chunk[-_OVERLAP:]
    except OSError:
        return None
    return None
