"""Feature scripts: syntax-checked by bash, linted by shellcheck, rendered strictly."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from phoenix.desired import load_desired, parse_desired
from phoenix.desired.features import BUILTIN_DIR, FeatureError, available_features, render_feature
from desired_helpers import EXAMPLE, HERE, native_doc

needs_shellcheck = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")


def _rendered(name: str, tmp_path):
    cfg = load_desired(EXAMPLE)
    script = tmp_path / f"{name}.sh"
    script.write_text(render_feature(name, available_features(None)[name], cfg.vms[0]))
    return script


@pytest.mark.parametrize("name", ["base", "docker"])
def test_builtin_scripts_pass_bash_n(name, tmp_path):
    result = subprocess.run(["bash", "-n", str(_rendered(name, tmp_path))], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


@needs_shellcheck
@pytest.mark.parametrize("name", ["base", "docker"])
def test_builtin_scripts_pass_shellcheck(name, tmp_path):
    result = subprocess.run(["shellcheck", "--shell=bash", str(_rendered(name, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", ["base", "docker"])
def test_builtin_scripts_are_strict_and_self_contained(name, tmp_path):
    text = _rendered(name, tmp_path).read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    assert "source " not in text and "\n. " not in text and "$1}" not in text


def test_docker_script_follows_dockers_apt_instructions(tmp_path):
    text = _rendered("docker", tmp_path).read_text()
    assert "/etc/apt/keyrings/docker.asc" in text
    assert "https://download.docker.com/linux/ubuntu" in text
    assert "usermod -aG docker \"$PHOENIX_USER\"" in text and "PHOENIX_USER=phoenix_user" in text
    assert "systemctl enable --now" in text


def test_username_is_shell_quoted(tmp_path):
    cfg = parse_desired(native_doc(), base_dir=HERE)
    vm = cfg.vms[0].model_copy(update={"user": cfg.vms[0].user.model_copy(update={"username": "a b'c"})})
    text = render_feature("docker", available_features(None)["docker"], vm)
    assert "PHOENIX_USER='a b'\"'\"'c'" in text


def test_user_feature_shadows_builtin_and_sees_vm_values(tmp_path):
    features = tmp_path / "features"
    features.mkdir()
    (features / "base.sh").write_text("#!/bin/bash\necho mine\n")
    (features / "motd.sh.j2").write_text(
        "#!/bin/bash\nset -euo pipefail\necho {{ vm_name | shquote }} {{ vmid }} {{ ip }} {{ username }} "
        "{{ features | join(',') }} > /etc/motd\n")
    cfg = parse_desired(native_doc(features=["base", "motd"]), base_dir=tmp_path)
    found = available_features(tmp_path)
    assert found["base"] == features / "base.sh" and found["docker"].parent == BUILTIN_DIR
    assert render_feature("motd", found["motd"], cfg.vms[0]).splitlines()[-1] == \
        "echo docker-vm-01 8001 10.0.0.101 phoenix_user base,motd > /etc/motd"


def test_feature_without_shebang_and_bad_template(tmp_path):
    cfg = parse_desired(native_doc(), base_dir=HERE)
    plain = tmp_path / "x.sh"
    plain.write_text("echo hi\n")
    with pytest.raises(FeatureError, match="#!"):
        render_feature("x", plain, cfg.vms[0])
    broken = tmp_path / "y.sh.j2"
    broken.write_text("#!/bin/bash\n{% if %}\n")
    with pytest.raises(FeatureError, match="y.sh.j2"):
        render_feature("y", broken, cfg.vms[0])


def test_shipped_user_feature_example_renders():
    cfg = load_desired(EXAMPLE)
    for name, path in available_features(cfg.base_dir).items():
        assert render_feature(name, path, cfg.vms[0]).startswith("#!")
