"""The image's Dockerfile, checked without a Docker daemon: what it copies is in the build context,
the commands it names are the project's entry points, it runs as a numeric non-root user, and the
final image holds the built venv, not the host's tree."""

from __future__ import annotations

import argparse
import importlib
import tomllib
from importlib import metadata

import pytest

from quota_center.settings import Settings as CenterSettings
from region_agent.settings import Settings as AgentSettings
from tests.deploy.chart import CHART, ROOT, Obj, container, render_file, values_file, workloads
from tests.deploy.dockerfile import DockerIgnore, Stage, copy_parts, env_assignments, exec_form, stages

DOCKERFILE = ROOT / "Dockerfile"
# What the package build reads, beside the sources' Python files.
PACKAGE_FILES = ("*.py", "*.pyi", "*.lua", "*.sql", "*.proto", "py.typed")


def build_stages() -> list[Stage]:
    return stages(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage() -> Stage:
    return build_stages()[-1]


def ignore() -> DockerIgnore:
    return DockerIgnore.parse((ROOT / ".dockerignore").read_text(encoding="utf-8"))


def context_copies() -> list[str]:
    """Sources of every COPY that reads the build context (not another stage)."""
    sources = []
    for stage in build_stages():
        for instruction in stage.of("COPY"):
            parts = copy_parts(instruction.args)
            if "from" not in parts.flags:
                sources += parts.sources
    return sources


def test_copy_sources_exist_and_are_in_the_context() -> None:
    rules = ignore()
    sources = context_copies()
    assert "pyproject.toml" in sources
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"COPY {source}: not in the repository"
        assert not rules.excluded(source), f"COPY {source}: .dockerignore leaves it out of the context"
        if path.is_dir():
            files = [
                f for pattern in PACKAGE_FILES for f in path.rglob(pattern) if "__pycache__" not in f.parts
            ]
            assert files, f"COPY {source}: no package files"
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                assert not rules.excluded(relative), f"{relative}: .dockerignore leaves it out"


def test_the_host_tree_stays_out_of_the_image() -> None:
    rules = ignore()
    for path in (
        "tests/conftest.py",
        ".venv/bin/python",
        ".git/HEAD",
        ".stack/redis.conf",
        "loadtest/run.py",
    ):
        assert rules.excluded(path), f"{path} would be in the build context"
    for path in ("quota_center/__pycache__/main.cpython-311.pyc", "quota_center.egg-info/PKG-INFO"):
        assert rules.excluded(path), path
    for source in context_copies():
        assert source.strip("./") not in ("", "tests", ".venv"), f"COPY {source} brings the host tree"


def test_final_stage_copies_only_from_the_build_stage() -> None:
    names = {stage.name for stage in build_stages()[:-1]}
    final = final_stage()
    assert final.of("ADD") == []
    copies = [copy_parts(instruction.args) for instruction in final.of("COPY")]
    assert copies, "the final stage copies nothing"
    for parts in copies:
        assert parts.flags.get("from") in names, f"the final stage copies {parts.sources} from the host"
        assert all(not source.startswith(("/src", "tests")) for source in parts.sources)


def test_the_project_is_installed_not_linked() -> None:
    # An editable install would point the venv back at /src, which the final image lacks.
    runs = " ".join(instruction.args for instruction in build_stages()[0].of("RUN"))
    assert "pip install" in runs
    assert " -e " not in f" {runs} "
    assert "--editable" not in runs
    assert "[dev" not in runs, "the image needs no dev extras"


def test_runs_as_a_numeric_non_root_user() -> None:
    [user] = final_stage().of("USER")
    ids = user.args.split(":")
    assert all(part.isdigit() for part in ids), f"USER {user.args}: numeric ids let runAsNonRoot check them"
    assert all(int(part) != 0 for part in ids)
    # The chart runs every container as the same user.
    assert values_file(CHART / "values.yaml")["securityContext"]["runAsUser"] == int(ids[0])


def console_scripts() -> dict[str, metadata.EntryPoint]:
    points = metadata.distribution("quota-center").entry_points
    return {point.name: point for point in points if point.group == "console_scripts"}


def test_project_scripts_are_installed_entry_points() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    installed = console_scripts()
    assert set(declared) == {"quota-center", "region-agent", "quotactl"}
    for name, target in declared.items():
        assert installed[name].value == target
        assert callable(installed[name].load())


def command_parser(command: str) -> argparse.ArgumentParser:
    """The argparse parser of an installed command's module."""
    module = importlib.import_module(console_scripts()[command].module)
    parser: argparse.ArgumentParser = module.parser()
    return parser


def test_entrypoint_and_cmd_name_a_real_command() -> None:
    [entrypoint] = final_stage().of("ENTRYPOINT")
    [cmd] = final_stage().of("CMD")
    program = exec_form(entrypoint.args)
    assert program[0] in console_scripts()
    arguments = command_parser(program[0]).parse_args([*program[1:], *exec_form(cmd.args)])
    assert arguments.command == "serve"


def chart_commands() -> list[list[str]]:
    commands = []
    for path in sorted((CHART / "ci").glob("*.yaml")):
        objects: list[Obj] = render_file(path)
        commands += [[*container(w)["command"], *container(w).get("args", [])] for w in workloads(objects)]
    return commands


def test_chart_commands_are_commands_of_the_image() -> None:
    commands = chart_commands()
    assert ["quota-center", "serve"] in commands
    assert ["quota-center", "migrate"] in commands
    assert ["region-agent", "serve"] in commands
    for program, *arguments in commands:
        assert program in console_scripts()
        command_parser(program).parse_args(arguments)


def test_exposes_the_charts_default_ports() -> None:
    # EXPOSE lists the ports the chart opens by default: gRPC and metrics at the settings' own
    # defaults, and the health ports, which the settings leave closed (-1) and the chart always opens.
    exposed = [int(port) for instruction in final_stage().of("EXPOSE") for port in instruction.args.split()]
    chart = values_file(CHART / "values.yaml")
    opened = [
        chart[part][key] for part in ("center", "agents") for key in ("grpcPort", "metricsPort", "healthPort")
    ]
    assert sorted(exposed) == sorted(opened)
    assert len(set(opened)) == len(opened), "two of the chart's default ports are one"
    center, agent = CenterSettings(), AgentSettings()
    assert (chart["center"]["grpcPort"], chart["center"]["metricsPort"]) == (
        center.grpc_port,
        center.metrics_port,
    )
    assert (chart["agents"]["grpcPort"], chart["agents"]["metricsPort"]) == (
        agent.grpc_port,
        agent.metrics_port,
    )
    assert center.health_port == agent.health_port == -1


def test_journal_defaults_into_the_agents_volume() -> None:
    # With a read-only root filesystem the journal must be on the mounted volume.
    env: dict[str, str] = {}
    for instruction in final_stage().of("ENV"):
        env.update(env_assignments(instruction.args))
    journal_dir = values_file(CHART / "values.yaml")["agents"]["journal"]["dir"]
    assert env["REGION_AGENT_JOURNAL_PATH"].startswith(journal_dir.rstrip("/") + "/")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*\n!quota_center\n", "quota_center/main.py", False),
        ("*\n!quota_center\n", "tests/test_x.py", True),
        ("*\n!quota_center\n**/__pycache__\n", "quota_center/a/__pycache__/b.pyc", True),
        ("**/*.py[cod]\n", "quota_center/x.pyc", True),
        ("**/*.py[cod]\n", "quota_center/x.py", False),
        ("tests/\n", "tests/deploy/test_x.py", True),
        ("/.venv\n", ".venv/bin/python", True),
        ("docs/*.md\n!docs/keep.md\n", "docs/keep.md", False),
        ("docs/*.md\n", "docs/sub/a.md", False),
    ],
)
def test_dockerignore_matching(patterns: str, path: str, excluded: bool) -> None:
    assert DockerIgnore.parse(patterns).excluded(path) is excluded
