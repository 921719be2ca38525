"""ConnectionSettings.from_env: every bad variable is a one-line error naming it, never its secret."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from phoenix.errors import PhoenixError
from phoenix.pve import settings as settings_mod
from phoenix.pve.settings import ConnectionSettings

SECRET = "0b6c5f8e-3f0c-4a39-9d86-5f7bd9a2c111"
TOKEN = f"root@pam!phoenix={SECRET}"
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def env(**overrides):
    base = {"PROXMOX_VE_ENDPOINT": "https://pve.example:8006/", "PROXMOX_VE_API_TOKEN": TOKEN}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_token_settings_parse_and_hide_the_secret():
    s = ConnectionSettings.from_env(env())
    assert (s.host, s.port, s.token_user, s.token_name) == ("pve.example", 8006, "root@pam", "phoenix")
    assert s.token_secret.get_secret_value() == SECRET
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in s.model_dump_json()
    assert s.verify is True and s.endpoint == "https://pve.example:8006"


def test_pveapitoken_prefix_is_accepted():
    assert ConnectionSettings.from_env(env(PROXMOX_VE_API_TOKEN="PVEAPIToken=" + TOKEN)).token_name == "phoenix"


@pytest.mark.parametrize("endpoint, host, port", [
    ("https://10.0.0.2:8006", "10.0.0.2", 8006),
    ("https://pve.example", "pve.example", 8006),
    ("https://pve.example:443/api2/json", "pve.example", 443),
    ("pve.example:9000", "pve.example", 9000),
    ("https://[::1]:8443/", "[::1]", 8443),
    ("HTTPS://PVE:8006", "pve", 8006),
])
def test_endpoint_forms(endpoint, host, port):
    s = ConnectionSettings.from_env(env(PROXMOX_VE_ENDPOINT=endpoint))
    assert (s.host, s.port) == (host, port)


def test_password_settings():
    s = ConnectionSettings.from_env(env(PROXMOX_VE_API_TOKEN=None, PROXMOX_VE_USERNAME="root@pam",
                                        PROXMOX_VE_PASSWORD="pa ss"))
    assert not s.uses_token and s.username == "root@pam" and s.password.get_secret_value() == "pa ss"
    assert "pa ss" not in repr(s)


@pytest.mark.parametrize("overrides, variable", [
    ({"PROXMOX_VE_ENDPOINT": None}, "PROXMOX_VE_ENDPOINT"),
    ({"PROXMOX_VE_ENDPOINT": "http://pve:8006"}, "PROXMOX_VE_ENDPOINT"),
    ({"PROXMOX_VE_ENDPOINT": "https://pve:notaport"}, "PROXMOX_VE_ENDPOINT"),
    ({"PROXMOX_VE_ENDPOINT": "https://:8006"}, "PROXMOX_VE_ENDPOINT"),
    ({"PROXMOX_VE_ENDPOINT": "https://root:pw@pve:8006"}, "PROXMOX_VE_ENDPOINT"),
    ({"PROXMOX_VE_API_TOKEN": f"root@pam={SECRET}"}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": f"root!phoenix={SECRET}"}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": f"root@pam!9bad={SECRET}"}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": "root@pam!phoenix="}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": f"root@pam!phoenix={SECRET} x"}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": None}, "PROXMOX_VE_API_TOKEN"),
    ({"PROXMOX_VE_API_TOKEN": None, "PROXMOX_VE_USERNAME": "root@pam"}, "PROXMOX_VE_PASSWORD"),
    ({"PROXMOX_VE_API_TOKEN": None, "PROXMOX_VE_PASSWORD": SECRET}, "PROXMOX_VE_USERNAME"),
    ({"PROXMOX_VE_API_TOKEN": None, "PROXMOX_VE_USERNAME": "root", "PROXMOX_VE_PASSWORD": SECRET},
     "PROXMOX_VE_USERNAME"),
    ({"PROXMOX_VE_INSECURE": "maybe"}, "PROXMOX_VE_INSECURE"),
    ({"PROXMOX_VE_CA_FILE": "/nonexistent/ca.pem"}, "PROXMOX_VE_CA_FILE"),
])
def test_bad_values_name_the_variable_not_the_secret(overrides, variable):
    with pytest.raises(PhoenixError) as excinfo:
        ConnectionSettings.from_env(env(**overrides))
    message = str(excinfo.value)
    assert variable in message and SECRET not in message and "\n" not in message


def test_ca_file_must_be_pem(tmp_path):
    bogus = tmp_path / "ca.txt"
    bogus.write_text("not a certificate")
    with pytest.raises(PhoenixError, match="PROXMOX_VE_CA_FILE"):
        ConnectionSettings.from_env(env(PROXMOX_VE_CA_FILE=str(bogus)))
    good = tmp_path / "ca.pem"
    good.write_text(PEM)
    assert ConnectionSettings.from_env(env(PROXMOX_VE_CA_FILE=str(good))).verify == str(good)


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("", False), ("0", False),
                                             ("no", False)])
def test_insecure_values(value, expected):
    s = ConnectionSettings.from_env(env(PROXMOX_VE_INSECURE=value))
    assert s.insecure is expected and (s.verify is False) is expected


def test_insecure_warns_once_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(settings_mod, "_warned", False)
    s = ConnectionSettings.from_env(env(PROXMOX_VE_INSECURE="1"))
    settings_mod.warn_insecure_once(s)
    settings_mod.warn_insecure_once(s)
    err = capsys.readouterr().err
    assert err.count("PROXMOX_VE_INSECURE") == 1 and "not verified" in err


def test_secure_settings_do_not_warn(capsys, monkeypatch):
    monkeypatch.setattr(settings_mod, "_warned", False)
    settings_mod.warn_insecure_once(ConnectionSettings.from_env(env()))
    assert capsys.readouterr().err == ""


@given(st.text(max_size=60))
def test_arbitrary_tokens_never_crash_nor_leak(token):
    try:
        s = ConnectionSettings.from_env(env(PROXMOX_VE_API_TOKEN=token))
    except PhoenixError as exc:
        secret = token.partition("=")[2]
        if len(secret) >= 4:
            assert secret not in str(exc)
        return
    assert s.token_secret is not None or s.password is not None


@given(st.text(max_size=60))
def test_arbitrary_endpoints_never_crash(endpoint):
    try:
        s = ConnectionSettings.from_env(env(PROXMOX_VE_ENDPOINT=endpoint))
    except PhoenixError as exc:
        assert "PROXMOX_VE_ENDPOINT" in str(exc)
        return
    assert 0 < s.port < 65536 and s.host
