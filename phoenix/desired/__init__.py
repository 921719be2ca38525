"""Desired state: the config file, its validation, and what it renders to (cloud-init, features).

``load_desired(path, existing_templates=...)`` reads the native form or the original project's
form and returns a :class:`DesiredConfig`, or raises :class:`ConfigError` listing every problem.
"""

from phoenix.desired.loader import load_desired, parse_desired
from phoenix.desired.models import CustomizeSpec, ImageSpec, SftpSettings, VMDefaults
from phoenix.desired.problems import ConfigError, Problem
from phoenix.desired.spec import DesiredConfig, NetworkSpec, TemplateSpec, UserSpec, VMSpec

__all__ = [
    "load_desired", "parse_desired", "ConfigError", "Problem", "DesiredConfig", "TemplateSpec", "VMSpec",
    "NetworkSpec", "UserSpec", "VMDefaults", "ImageSpec", "CustomizeSpec", "SftpSettings",
]
