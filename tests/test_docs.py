"""The README stays true to the code: every setting is documented with its default, the commands exist."""

from __future__ import annotations

import re

from click.testing import CliRunner

from gis_ioc.cli import main
from gis_ioc.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(GIS_IOC_[A-Z_]+)`", README, flags=re.MULTILINE))
    expected = {f"GIS_IOC_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, expected - documented
    for name, field in Settings.model_fields.items():
        if isinstance(field.default, (int, str)) and not isinstance(field.default, bool):
            row = next(line for line in README.splitlines() if line.startswith(f"| `GIS_IOC_{name.upper()}`"))
            assert str(field.default) in row, row


def test_quick_start_has_exactly_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./bootstrap.sh serve", "./bootstrap.sh test"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "./bootstrap.sh test" in ci


def test_documented_commands_exist() -> None:
    for command in re.findall(r"^\| `gis-ioc ([a-z ]+?)[` \[]", README, flags=re.MULTILINE):
        result = CliRunner().invoke(main, [*command.split(), "--help"])
        assert result.exit_code == 0, command
