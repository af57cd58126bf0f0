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
* bytecode caches are never bundled (they are compiled for the env).
Each skipped path is listed with its reason; each bundled file is listed too.
"""

from __future__ import annotations

import fnmatch

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
)
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
