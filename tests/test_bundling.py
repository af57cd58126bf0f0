"""--src ships what the model imports (modules, packages and their package data), never a
dot-file, a dot-directory or a secret-like name, and lists every bundled file."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build.prefix import bundle_plan
from packer.context import prepare
from packer.settings import Options

from .conftest import SRC, run_cli

Copy = Callable[..., Path]

# secret-like names, as files inside the imported package (a "/" makes a directory)
SECRETS = (
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa.pub", ".git-credentials",
    ".docker/config.json", ".kube/config", ".npmrc", ".pypirc", ".netrc", ".pgpass",
    "application_default_credentials.json", "service-account.json", ".vault-token", ".env",
    ".env.production", "server.pem", "tls.key", "cert.p12", "store.pfx", ".aws/credentials",
    ".ssh/id_rsa", "credentials", "credentials.json", "gcp.credentials", ".git/config",
    "secrets.yaml", "prod.tfvars", "kubeconfig", "client_secret_42.json", "putty.ppk",
    "keystore.jks", "token.json", "config/.htpasswd", "deploy.env",
    # names an outside attack found shipping
    "deploy_rsa", "ssh_host_ed25519_key", "AuthKey_ABC.p8", "vpn.ovpn", "settings.tfstate",
    "password.txt", "api_key.txt", "sub/token.txt", "aws_keys.csv", "db.sqlite3",
)
DATA = ("featurize/__init__.py", "featurize/constants.py", "featurize/scale.py",
        "featurize/data/labels.txt", "featurize/config/settings.yaml")


def hostile_src(tmp_path: Path) -> Path:
    src = shutil.copytree(SRC, tmp_path / "src")
    (src / "featurize" / "server.pem").unlink()
    (src / "featurize" / ".env").unlink()
    pkg = src / "featurize"
    for name in SECRETS:
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text("SECRET\n")
    (pkg / "data").mkdir()
    (pkg / "data" / "labels.txt").write_text("cat\ndog\n")
    (pkg / "config" / "settings.yaml").write_text("scale: 2\n")
    (src / "id_rsa").write_text("SECRET\n")  # beside the package: never even looked at
    (src / "unrelated").mkdir()
    (src / "unrelated" / "__init__.py").write_text("")
    return src


def test_only_the_imported_package_and_its_data_is_bundled(model_copy: Copy,
                                                           tmp_path: Path) -> None:
    assert len(SECRETS) >= 31
    model = model_copy("with_src")
    plan = bundle_plan(prepare(model, Options(src=(hostile_src(tmp_path),))).report)
    assert [rel for rel, _ in plan.files] == sorted(DATA)
    assert all(b"SECRET" not in path.read_bytes() for _, path in plan.files)
    # one line for each left-out name at the top of the package (a dot-dir once, not its files)
    assert "featurize/.docker (dot-directory)" in plan.skipped
    assert "featurize/id_ecdsa (secret-like name)" in plan.skipped
    assert "featurize/config/.htpasswd (dot-file)" in plan.skipped
    left_out = [s.split(" (")[0] for s in plan.skipped]
    assert all(any(f"featurize/{n}".startswith(s) for s in left_out) for n in SECRETS)


@pytest.mark.slow
def test_bundled_files_are_listed_in_verbose_and_the_sbom(model_copy: Copy, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="packer.build.prefix")  # what --verbose shows
    model = model_copy("with_src")
    src = hostile_src(tmp_path)
    res = run_cli(model, "--src", src, "--python-from", "auto", "--sbom", "--verbose", "--no-cache")
    assert res.exit_code == 0, res.stderr
    for rel in DATA:
        assert f"bundled {rel} (sha256 " in caplog.text
    sbom = json.loads((model / "tritonpack-env.cdx.json").read_text())
    files = sorted(c["name"] for c in sbom["components"] if c["type"] == "file")
    assert files == sorted(DATA)
    import tarfile

    with tarfile.open(model / "tritonpack-env.tar.gz") as tar:
        names = [n for n in tar.getnames() if "/site-packages/featurize/" in n]
    secret_names = {s.split("/")[-1] for s in SECRETS} - {"config"}  # .kube/config: a dir name
    assert names and not [n for n in names if secret_names & set(n.split("/"))]


@pytest.mark.slow
def test_an_earlier_sbom_is_refreshed_not_left_stale(model_copy: Copy) -> None:
    """A re-pack without --sbom must not leave a bill of materials of the previous lock."""
    model = model_copy("plain_numpy")
    assert run_cli(model, "--triton", "24.10", "--python-from", "auto", "--sbom", "-q").exit_code == 0
    sbom = model / "tritonpack-env.cdx.json"
    assert "pyyaml" not in sbom.read_text().lower()
    source = model / "1" / "model.py"
    source.write_text("import yaml\n" + source.read_text())
    res = run_cli(model, "--triton", "24.10", "--python-from", "auto")
    assert res.exit_code == 0, res.stderr
    assert "tritonpack-env.cdx.json is there from an earlier --sbom: refreshing it" in res.stderr
    assert "pyyaml" in sbom.read_text().lower()


def test_a_symlinked_module_or_package_in_a_src_root_is_never_bundled(model_copy: Copy,
                                                                      tmp_path: Path) -> None:
    """A link in a --src root may lead anywhere (another checkout, a secret): never followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "featurize").mkdir()
    (outside / "featurize" / "__init__.py").write_text('TOKEN = "ghp_outside_secret"\n')
    src = tmp_path / "src"
    src.mkdir()
    (src / "featurize").symlink_to(outside / "featurize")
    model = model_copy("with_src")
    plan = bundle_plan(prepare(model, Options(src=(src,))).report)
    assert plan.files == ()
    assert plan.skipped == ("featurize (symlink)",)
