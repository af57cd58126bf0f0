"""No secret is shipped or shown: --src files are judged by name anywhere in it and by content
(a hard link to a key under a harmless name), and credentials in URLs are masked in every
line, JSON document and file tritonpack writes (``packer.core.redact``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from packer.build.prefix import bundle_plan
from packer.context import prepare
from packer.core.errors import ExitCode
from packer.core.redact import redact, restore, strip
from packer.core.secrets import looks_secret
from packer.lock.backend import Indexes
from packer.lock.stage import index_options
from packer.settings import Options

from .conftest import SRC, error_line, run_cli

Copy = Callable[..., Path]
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
PW = "hunter2-s3cr3t"


def _src(tmp_path: Path) -> Path:
    src = shutil.copytree(SRC, tmp_path / "src")
    (src / "featurize" / "server.pem").unlink()
    return src


def _plan(model: Path, src: Path, allow: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    opts = Options(src=(src,), allow_secrets=allow)
    plan = bundle_plan(prepare(model, opts).report, frozenset(allow))
    return [rel for rel, _ in plan.files], list(plan.skipped)


@pytest.mark.parametrize("name", ["aws_credentials", "prod-secrets.yaml", "db_password.txt",
                                  "my_id_rsa_backup", "deploy.pem.bak", "gcp_service_account.js"])
def test_a_secret_word_anywhere_in_a_name_is_not_bundled(model_copy: Copy, tmp_path: Path,
                                                         name: str) -> None:
    src = _src(tmp_path)
    (src / "featurize" / name).write_text("x\n")
    files, skipped = _plan(model_copy("with_src"), src)
    assert f"featurize/{name}" not in files
    assert f"featurize/{name} (secret-like name)" in skipped


@pytest.mark.parametrize(("content", "what"), [
    (PEM, "a private key (PEM block)"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "a private key (PEM block)"),
    ("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "an AWS access key"),
    ("token: ghp_" + "a1B2" * 9 + "\n", "a GitHub token"),
    ("HF = 'hf_" + "abcdefghijklmnopqrstuvwxyzABCDEFGH" + "'\n", "a Hugging Face token"),
    ("KEY = 'sk-ant-api03-" + "aB3_-x" * 15 + "'\n", "an Anthropic API key"),
    ("SG." + "a" * 22 + "." + "B" * 43 + "\n", "a SendGrid API key"),
    ("host = x\ntoken = dapi" + "0123456789abcdef" * 2 + "\n", "a Databricks token"),
    ("AGE-SECRET-KEY-1" + "QW3RTY" * 9 + "ABCD\n", "an age secret key"),
])
def test_a_secret_under_a_harmless_name_is_caught_by_its_content(
        model_copy: Copy, tmp_path: Path, content: str, what: str) -> None:
    src = _src(tmp_path)
    (src / "featurize" / "data").mkdir()
    (src / "featurize" / "data" / "weights.bin").write_bytes(b"\0" * (3 << 20) + content.encode())
    files, skipped = _plan(model_copy("with_src"), src)
    assert "featurize/data/weights.bin" not in files
    assert f"featurize/data/weights.bin (looks like {what})" in skipped
    assert "featurize/scale.py" in files  # the package itself still ships


def test_a_hard_link_to_a_private_key_is_not_bundled(model_copy: Copy, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(PEM)
    src = _src(tmp_path)
    os.link(home / ".ssh" / "id_ed25519", src / "featurize" / "labels.txt")
    files, skipped = _plan(model_copy("with_src"), src)
    assert "featurize/labels.txt" not in files
    assert "featurize/labels.txt (looks like a private key (PEM block))" in skipped


def test_allow_secret_ships_the_file_named_and_only_it(model_copy: Copy, tmp_path: Path) -> None:
    src = _src(tmp_path)
    (src / "featurize" / "test-ca.key").write_text(PEM)
    (src / "featurize" / "other.key").write_text(PEM)
    (src / "featurize" / "fixture.txt").write_text(PEM)
    files, skipped = _plan(model_copy("with_src"), src,
                           allow=("featurize/test-ca.key", "featurize/fixture.txt"))
    assert {"featurize/test-ca.key", "featurize/fixture.txt"} <= set(files)
    assert skipped == ["featurize/.env (dot-file)", "featurize/other.key (secret-like name)"]


@pytest.mark.slow
def test_a_cache_hit_names_this_runs_skipped_files(model_copy: Copy, tmp_path: Path) -> None:
    """The cache key hashes what is bundled, so a --src whose secrets differ shares an entry:
    the skipped list said is this run's (it was the entry's maker's: a file no longer there,
    not the key that is)."""
    model, src = model_copy("with_src"), _src(tmp_path)
    (src / "featurize" / "aws_credentials").write_text("x\n")
    first = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--src", src, "--json")
    assert first.exit_code == 0, first.stderr
    assert "featurize/aws_credentials (secret-like name)" in json.loads(first.stdout)["skipped"]
    (src / "featurize" / "aws_credentials").unlink()
    (src / "featurize" / "notes.txt").write_text(PEM)
    again = run_cli(model, "--triton", "24.10", "--python-from", "auto", "--src", src, "--json")
    out = json.loads(again.stdout)
    assert again.exit_code == 0, again.stderr
    assert out["skipped"] == ["featurize/.env (dot-file)",
                              "featurize/notes.txt (looks like a private key (PEM block))"]


def test_package_data_that_is_no_secret_ships(tmp_path: Path) -> None:
    for name, data in (("vocab.txt", b"AKIA lower case akia\n"), ("tokenizer.json", b"{}"),
                       ("public.txt", b"-----BEGIN PUBLIC KEY-----\nMIIB\n")):
        (tmp_path / name).write_bytes(data)
        assert looks_secret(tmp_path / name) is None


# --- credentials in URLs ---

def test_redact_strip_and_restore() -> None:
    assert redact(f"error: remote cache 'oci://me:{PW}@host/repo'") == (
        "error: remote cache 'oci://***@host/repo'")
    assert redact(f"https://me:p@ss:{PW}@pypi.corp/simple") == "https://***@pypi.corp/simple"
    assert redact("https://conda.anaconda.org/t/tk-1234567/acme") == (
        "https://conda.anaconda.org/t/***/acme")
    assert strip(f"https://me:{PW}@pypi.corp/simple") == "https://pypi.corp/simple"
    assert restore("https://pypi.corp/simple", [f"https://me:{PW}@pypi.corp/simple"]) == (
        f"https://me:{PW}@pypi.corp/simple")
    assert restore("https://pypi.org/simple", [f"https://me:{PW}@pypi.corp/simple"]) == (
        "https://pypi.org/simple")


@pytest.mark.parametrize(("given", "shown"), [
    ("https://me:ab'cd@pypi.corp/simple", "https://***@pypi.corp/simple"),  # RFC 3986 allows '
    ("https://gitlab.corp/simple?private_token=glpat-x1", "https://gitlab.corp/simple?private_token=***"),
    ("https://b.storage/x.whl?X-Goog-Signature=ab12&X-Goog-Credential=sa%2F1",
     "https://b.storage/x.whl?X-Goog-Signature=***&X-Goog-Credential=***"),
    ("https://pypi.corp/simple#token=tk1", "https://pypi.corp/simple#token=***"),
    ("https://pypi.corp/simple?keyword=1&monkey=2", "https://pypi.corp/simple?keyword=1&monkey=2"),
])
def test_redact_masks_every_credential_form(given: str, shown: str) -> None:
    """What --json's failed entries carry as ``detail`` (a command line, an installer's
    output) goes through ``redact``: these forms showed their secret whole or in part."""
    assert redact(f'"detail": "$ uv pip compile --index-url {given}\\nerror"') == (
        f'"detail": "$ uv pip compile --index-url {shown}\\nerror"')
    assert strip(given).endswith(shown.rpartition("/")[2])


def test_a_lock_records_index_urls_without_credentials() -> None:
    """Like uv.lock: the lock holds the index without its credentials (the same lock
    whoever made it); the build takes them again from the URL given for that host."""
    url = f"https://me:{PW}@pypi.corp/simple"
    indexes = Indexes(url, (f"https://tok:{PW}@extra.corp/simple",), ())
    opts = Options(indexes=indexes)
    assert PW not in json.dumps(indexes.as_dict()) + json.dumps(index_options(opts))
    assert index_options(opts) == {"index-url": "https://pypi.corp/simple",
                                   "extra-index-url": ["https://extra.corp/simple"]}
    back = Indexes.from_dict(indexes.as_dict()).with_credentials(indexes.urls())
    assert back == indexes


@pytest.fixture
def model(model_copy: Copy) -> Path:
    return model_copy("plain_numpy")


REF = f"oci://me:{PW}@registry.example/cache"
REFUSED = ("error: remote cache 'oci://***@registry.example/cache' carries credentials in the "
           "URL, where they would be seen (logs, process lists, tritonpack.toml)")


@pytest.mark.parametrize("where", ["option", "toml"])
def test_a_registry_password_is_never_printed(model: Path, where: str) -> None:
    args: list[str | Path] = [model, "--triton", "24.10", "--python-from", "auto"]
    if where == "option":
        args += ["--cache-from", REF]
    else:
        (model / "tritonpack.toml").write_text(f'[options]\ncache-from = ["{REF}"]\n')
    res = run_cli(*args)
    assert res.exit_code == ExitCode.REMOTE
    assert error_line(res.stderr) == REFUSED
    assert PW not in res.stdout + res.stderr
    res = run_cli(*args, "--json")
    assert res.exit_code == ExitCode.REMOTE
    doc = json.loads(res.stdout)
    assert doc["error"]["message"] == REFUSED.removeprefix("error: ")
    assert PW not in res.stdout + res.stderr
    res = run_cli("config", model, *args[1:])
    assert PW not in res.stdout + res.stderr


def test_cache_info_masks_the_password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITONPACK_CACHE_FROM", REF)
    for args in (("cache", "info"), ("cache", "info", "--json")):
        res = run_cli(*args)
        assert res.exit_code == 0, res.stderr
        assert PW not in res.stdout + res.stderr
        assert "oci://***@registry.example/cache" in res.stdout


def test_the_env_and_the_lock_record_conda_urls_without_credentials(tmp_path: Path) -> None:
    """conda-meta/*.json ships inside the environment: its url and channel carry no token."""
    from packer.build import condainstall
    from packer.lock import conda

    pkg = conda.CondaPackage("zlib", "1.3", "h0", 0, "linux-64",
                             f"https://me:{PW}@conda.corp/chan/linux-64/zlib-1.3-h0.conda",
                             "0" * 64, "https://conda.anaconda.org/t/tk-1234567/chan",
                             "zlib-1.3-h0.conda")
    meta = tmp_path / "conda-meta" / "zlib-1.3-h0.json"
    meta.parent.mkdir()
    meta.write_text("{}")
    condainstall._record_locked_origins([pkg], tmp_path)
    assert json.loads(meta.read_text()) == {
        "url": "https://conda.corp/chan/linux-64/zlib-1.3-h0.conda",
        "channel": "https://conda.anaconda.org/chan"}
    assert restore("https://conda.corp/chan/linux-64/zlib-1.3-h0.conda",
                   [f"https://me:{PW}@conda.corp/chan"]) == pkg.url
