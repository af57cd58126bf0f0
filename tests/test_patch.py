"""config.pbtxt patching: only EXECUTION_ENV_PATH changes, every other byte stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packer.core.errors import ConfigPatchError
from packer.patch import config as patch_mod
from packer.patch.config import env_value, patch_config, patched_text
from packer.scan.model import EXECUTION_ENV_PATH, parse_config
from packer.scan.modelconfig import enum_value, new_config

VALUE = env_value("tritonpack-env.tar.gz")

COMMENTED = """\
# my model  -- keep this comment
name: "m"   # trailing comment
backend: "python"
parameters: {
  key: "FOO"
  value: { string_value: "bar" }
}
max_batch_size: 4   # the order of fields is the user's
"""


def params(text: str) -> dict[str, str]:
    msg = parse_config(text, Path("config.pbtxt"))
    return {k: v.string_value for k, v in msg.parameters.items()}


def test_adds_parameter_and_keeps_everything_else(tmp_path: Path) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text(COMMENTED)
    res = patch_config(cfg, VALUE)
    text = cfg.read_text()
    assert res.changed
    assert text.startswith(COMMENTED)  # every original byte, in order
    assert params(text) == {"FOO": "bar", EXECUTION_ENV_PATH: VALUE}


def test_replaces_existing_value_in_place(tmp_path: Path) -> None:
    cfg = tmp_path / "config.pbtxt"
    original = COMMENTED.replace(
        "max_batch_size",
        'parameters [ { key: "EXECUTION_ENV_PATH"  # old env\n'
        '  value { string_value: "$$TRITON_MODEL_DIRECTORY/old.tar.gz" } } ]\nmax_batch_size',
    )
    cfg.write_text(original)
    patch_config(cfg, VALUE)
    text = cfg.read_text()
    assert text == original.replace('"$$TRITON_MODEL_DIRECTORY/old.tar.gz"', f'"{VALUE}"')
    assert "# old env" in text


def test_twice_is_byte_identical(tmp_path: Path) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text(COMMENTED)
    patch_config(cfg, VALUE)
    first = cfg.read_bytes()
    again = patch_config(cfg, VALUE)
    assert not again.changed
    assert cfg.read_bytes() == first


def test_value_must_start_with_the_token(tmp_path: Path) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text(COMMENTED)
    with pytest.raises(ConfigPatchError, match="must start with"):
        patch_config(cfg, "/abs/env.tar.gz")
    assert cfg.read_text() == COMMENTED


def test_failure_mid_write_leaves_the_original(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text(COMMENTED)

    def boom(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr("packer.core.atomic.os.fsync", boom)
    with pytest.raises(OSError, match="disk on fire"):
        patch_config(cfg, VALUE)
    assert cfg.read_text() == COMMENTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.pbtxt"]  # no temp file left


def test_refuses_an_edit_that_changes_anything_else(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text(COMMENTED)
    monkeypatch.setattr(patch_mod, "patched_text",
                        lambda text, value: text.replace("4", "5") + "\n" + _block(value))
    with pytest.raises(ConfigPatchError, match="would change more than EXECUTION_ENV_PATH"):
        patch_config(cfg, VALUE)
    assert cfg.read_text() == COMMENTED


def _block(value: str) -> str:
    return f'parameters {{ key: "{EXECUTION_ENV_PATH}" value {{ string_value: "{value}" }} }}\n'


def test_no_trailing_newline(tmp_path: Path) -> None:
    cfg = tmp_path / "config.pbtxt"
    cfg.write_text('backend: "python"')
    patch_config(cfg, VALUE)
    assert cfg.read_text().startswith('backend: "python"\nparameters {')


# --- property test over generated valid configs -------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
dtypes = st.sampled_from(["TYPE_FP32", "TYPE_INT64", "TYPE_STRING", "TYPE_BOOL", "TYPE_UINT8"])
dims = st.lists(st.integers(min_value=-1, max_value=64), min_size=1, max_size=3)


@st.composite
def configs(draw: st.DrawFn) -> str:
    msg = new_config()
    msg.name = draw(names)
    msg.backend = "python"
    msg.max_batch_size = draw(st.integers(min_value=0, max_value=64))
    for kind in ("input", "output"):
        for i in range(draw(st.integers(min_value=0, max_value=3))):
            t = getattr(msg, kind).add()
            t.name = f"{kind.upper()}{i}"
            t.data_type = enum_value("DataType", draw(dtypes))
            t.dims.extend(draw(dims))
    for key in draw(st.lists(names, max_size=3, unique=True)):
        msg.parameters[key].string_value = draw(st.text(max_size=20))
    if draw(st.booleans()):
        msg.parameters[EXECUTION_ENV_PATH].string_value = draw(st.text(max_size=30))
    text = text_format.MessageToString(msg, as_one_line=draw(st.booleans()))
    if draw(st.booleans()):
        text = "# generated\n" + text.replace("\n", "  # c\n", 1)
    return text


@given(configs())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_patch_property(text: str) -> None:
    path = Path("config.pbtxt")
    original = parse_config(text, path)
    out = patched_text(text, VALUE)
    result = parse_config(out, path)
    want = new_config()
    want.CopyFrom(original)
    want.parameters[EXECUTION_ENV_PATH].string_value = VALUE
    assert result == want
    assert patched_text(out, VALUE) == out  # idempotent
    if EXECUTION_ENV_PATH not in original.parameters:
        assert out.startswith(text)


OLD_VALUE = '"$$TRITON_MODEL_DIRECTORY/old.tar.gz"'
WITH_OLD = COMMENTED + ('parameters { key: "EXECUTION_ENV_PATH"\n'
                        f'  value: {{ string_value: {OLD_VALUE} }} }}\n')


@pytest.mark.parametrize("base", [COMMENTED, WITH_OLD], ids=["insert", "replace"])
def test_crlf_bom_and_odd_bytes_are_kept(tmp_path: Path, base: str) -> None:
    original = b"\xef\xbb\xbf" + base.replace("\n", "\r\n").replace(
        "keep this comment", "keep this comment \xe9t\xe9").encode("latin-1")
    cfg = tmp_path / "config.pbtxt"
    cfg.write_bytes(original)
    patch_config(cfg, VALUE)
    out = cfg.read_bytes()
    assert out.startswith(b"\xef\xbb\xbf# my model  -- keep this comment \xe9t\xe9\r\n")
    assert b"\n" not in out.replace(b"\r\n", b"")  # every line ending still CRLF
    if base is WITH_OLD:
        assert out == original.replace(OLD_VALUE.encode(), f'"{VALUE}"'.encode())
    else:
        assert out.startswith(original)
        assert out.endswith(f'  value: {{ string_value: "{VALUE}" }}\r\n}}\r\n'.encode())


def test_a_symlinked_config_is_followed_to_its_file_inside_the_model_dir(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    real = tmp_path / "configs" / "cpu.pbtxt"
    real.write_text(COMMENTED)
    cfg = tmp_path / "config.pbtxt"
    cfg.symlink_to("configs/cpu.pbtxt")
    patch_config(cfg, VALUE)
    assert cfg.is_symlink() and cfg.readlink() == Path("configs/cpu.pbtxt")
    assert params(real.read_text()) == {"FOO": "bar", EXECUTION_ENV_PATH: VALUE}


def test_a_config_linked_outside_the_model_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "shared.pbtxt"
    outside.write_text(COMMENTED)
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.pbtxt").symlink_to(outside)
    with pytest.raises(ConfigPatchError) as err:
        patch_config(model / "config.pbtxt", VALUE)
    assert err.value.message == (f"{model}/config.pbtxt is a symlink to {outside}, outside the "
                                 "model directory: tritonpack writes only inside it")
    assert outside.read_text() == COMMENTED
