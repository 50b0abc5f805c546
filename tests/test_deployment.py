"""The container image and the deployment docs say what the code does (static checks, no build)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML: uvicorn[standard], a service dependency

from recsvc.service.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$")
VARIABLE = re.compile(rf"\b{ENV_PREFIX}[A-Z0-9_]+\b")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages, in order, of the Dockerfile."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), " ".join(args.split())
        if instruction == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", args, flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            stages.append(Stage(name=match[2], base=match[1]))
        elif not stages and instruction == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, args))
    return global_args, stages


def stage_chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    by_name = {stage.name: stage for stage in stages}
    chain = []
    while name in by_name:
        chain.append(by_name[name])
        name = by_name[name].base
    return chain


def venv_source(stages: list[Stage], name: str) -> str:
    """The stage a final stage copies /opt/venv from."""
    (stage,) = [s for s in stages if s.name == name]
    sources = [
        match[1]
        for copy in stage.args("COPY")
        if (match := re.fullmatch(r"--from=(\S+) /opt/venv /opt/venv", copy))
    ]
    assert len(sources) == 1, f"{name} copies /opt/venv from one build stage: {sources}"
    return sources[0]


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in sorted(K8S.glob("*.yaml"))
    }


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    """The one manifest of `kind` (named `name`, where there are several)."""
    (found,) = [doc for doc in of_kind(kind) if name in (None, doc["metadata"]["name"])]
    return found


def api() -> dict[str, Any]:
    return find("Deployment", "recsvc-api")


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def settings_variables() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def build_variables() -> set[str]:
    """The RECSVC_* variables scripts/venv.sh reads (build time, not Settings)."""
    return set(VARIABLE.findall((ROOT / "scripts" / "venv.sh").read_text()))


def command_variables() -> set[str]:
    """The RECSVC_* variables that stand for a command's option (typer's envvar=), such as
    the nightly job's RECSVC_NIGHTLY_METRICS_FILE: not Settings either."""
    text = "\n".join(path.read_text() for path in (ROOT / "training" / "cli").glob("*.py"))
    return set(re.findall(rf'envvar="({ENV_PREFIX}[A-Z0-9_]+)"', text))


def container_args(workload: dict[str, Any]) -> dict[str, str]:
    """The `--name=value` arguments of a workload's one container."""
    (container,) = pod_spec(workload)["containers"]
    return dict(arg.partition("=")[::2] for arg in container["args"] if arg.startswith("--"))


def claim_mounted_at(workload: dict[str, Any], path: str) -> str:
    """The PersistentVolumeClaim a workload mounts at `path`."""
    spec = pod_spec(workload)
    (mount,) = [
        mount
        for container in spec["containers"]
        for mount in container["volumeMounts"]
        if mount["mountPath"] == path
    ]
    (volume,) = [volume for volume in spec["volumes"] if volume["name"] == mount["name"]]
    return volume["persistentVolumeClaim"]["claimName"]  # type: ignore[no-any-return]


# The Dockerfile


def test_the_dockerfile_has_a_service_and_a_trainer_target_and_builds_the_service_by_default() -> (
    None
):
    _, stages = dockerfile()
    names = [stage.name for stage in stages]
    assert {"service", "trainer"} <= set(names)
    assert names[-1] == "service", "a plain `docker build .` gives the service image"


@pytest.mark.parametrize("target", ["service", "trainer"])
def test_the_final_stages_run_as_a_fixed_non_root_user(target: str) -> None:
    _, stages = dockerfile()
    users = stage_chain(stages, target)[0].args("USER")
    assert users, f"{target} sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"{target} runs as uid {uid}"
    run_as = pod_spec(api() if target == "service" else find("CronJob"))
    assert run_as["securityContext"]["runAsUser"] == int(uid)
    assert run_as["securityContext"]["runAsNonRoot"] is True


def test_the_base_image_is_pinned_by_tag_and_digest() -> None:
    global_args, stages = dockerfile()
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.base in names:
            continue
        variable = re.fullmatch(r"\$\{?(\w+)\}?", stage.base)
        image = global_args[variable[1]] if variable else stage.base
        assert PINNED_PYTHON.match(image), f"stage {stage.name} starts from {image}"


def test_the_images_install_through_scripts_venv_sh_only() -> None:
    _, stages = dockerfile()
    runs = [args for stage in stages for args in stage.args("RUN")]
    assert not [run for run in runs if "pip install" in run or "pip3 install" in run]
    installs = [run for run in runs if "scripts/venv.sh" in run]
    assert installs and all("RECSVC_VENV=/opt/venv" in run for run in installs)
    assert any("scripts/venv.sh scripts/" in stage.args("COPY") for stage in stages)


def extras_installed(stages: list[Stage], target: str) -> set[str]:
    installed: set[str] = set()
    for stage in stage_chain(stages, venv_source(stages, target)):
        for run in stage.args("RUN"):
            if match := re.search(r"RECSVC_EXTRAS=(\S*)", run):
                installed.update(filter(None, match[1].split(",")))
    return installed


def test_the_service_image_has_no_training_extra_and_the_trainer_has_it() -> None:
    _, stages = dockerfile()
    assert extras_installed(stages, "service") == set()
    assert extras_installed(stages, "trainer") == {"train"}


def test_the_service_image_checks_its_health_on_healthz() -> None:
    _, stages = dockerfile()
    (service,) = [stage for stage in stages if stage.name == "service"]
    (healthcheck,) = service.args("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert any("/models" in volume for volume in service.args("VOLUME"))


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "models"} <= ignored
    assert not {"recsvc", "training", "scripts", "pyproject.toml", "README.md"} & ignored


def test_venv_sh_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "venv.sh")], check=True)


# Kubernetes


def test_every_manifest_parses_and_kustomization_lists_them_all() -> None:
    found = manifests()
    assert all(docs and all("kind" in doc for doc in docs) for docs in found.values())
    (kustomization,) = found.pop("kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(found)


def test_the_deployment_is_ready_on_readyz_alive_on_healthz_and_takes_keys_from_a_secret() -> None:
    (container,) = pod_spec(api())["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    secret_env = {
        env["name"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert {"RECSVC_APP_API_KEYS", "RECSVC_ADMIN_API_KEYS"} <= secret_env
    assert (
        find("Service", "recsvc-api")["spec"]["selector"]
        == api()["spec"]["selector"]["matchLabels"]
    )


def test_the_cronjob_runs_nightly_alone_on_the_models_volume_the_api_reads() -> None:
    cronjob = find("CronJob")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(cronjob)["containers"]
    args = container["args"]
    assert args[0] == "nightly"
    assert {"--events", "--reports"} <= {arg.split("=")[0] for arg in args}
    assert claim_mounted_at(cronjob, "/models") == claim_mounted_at(api(), "/models")


def test_a_gated_night_completes_the_job_so_only_failures_fail_it() -> None:
    """Exit 3 (gated) would fail the Job and fire a standard KubeJobFailed alert on a normal
    night: the CronJob maps it to 0, and no podFailurePolicy rule treats 0 or 3 as failure."""
    cronjob = find("CronJob")
    assert container_args(cronjob)["--gated-exit-code"] == "0"
    rules = cronjob["spec"]["jobTemplate"]["spec"].get("podFailurePolicy", {}).get("rules", [])
    for rule in rules:
        if "onExitCodes" in rule and rule["action"] in {"FailJob", "Count"}:
            assert rule["onExitCodes"]["operator"] == "In"
            assert not {0, 3} & set(rule["onExitCodes"]["values"]), rule
    assert pod_spec(cronjob)["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_the_nightly_metrics_file_is_where_the_textfile_exporter_reads() -> None:
    metrics_file = Path(container_args(find("CronJob"))["--metrics-file"])
    assert metrics_file.suffix == ".prom"
    exporter = find("Deployment", "recsvc-nightly-metrics")
    directory = container_args(exporter)["--collector.textfile.directory"]
    claim = claim_mounted_at(find("CronJob"), str(metrics_file.parent))
    assert claim == claim_mounted_at(exporter, directory)
    assert find("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    service = find("Service", "recsvc-nightly-metrics")
    assert service["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_every_service_selects_the_pods_of_exactly_one_deployment() -> None:
    for service in of_kind("Service"):
        selector = service["spec"]["selector"].items()
        (chosen,) = [
            deployment
            for deployment in of_kind("Deployment")
            if selector <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        ports = {port["name"] for c in pod_spec(chosen)["containers"] for port in c["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


def test_the_disruption_budget_covers_the_api_pods_and_keeps_most_of_them() -> None:
    budget = find("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == api()["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert api()["spec"]["replicas"] > 1  # so one pod may go while the others serve


def test_the_autoscaler_scales_the_api_deployment_on_the_cpu_it_requests() -> None:
    hpa = find("HorizontalPodAutoscaler")["spec"]
    deployment = api()
    assert hpa["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert deployment["spec"]["replicas"] == hpa["minReplicas"] < hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    (container,) = pod_spec(deployment)["containers"]
    assert container["resources"]["requests"]["cpu"]  # utilisation is relative to the request


def test_every_image_is_set_in_the_kustomization() -> None:
    found = manifests()
    (kustomization,) = found.pop("kustomization.yaml")
    listed = {image["name"] for image in kustomization["images"]}
    used = {
        container["image"]
        for workload in of_kind("Deployment") + of_kind("CronJob")
        for container in pod_spec(workload)["containers"]
    }
    assert used == listed


def test_every_variable_the_manifests_set_is_a_setting() -> None:
    named = set(VARIABLE.findall("\n".join(p.read_text() for p in K8S.glob("*.yaml"))))
    assert named and named <= settings_variables() | command_variables()


# The docs


def test_deployment_md_names_every_setting_and_nothing_else() -> None:
    named = set(VARIABLE.findall((ROOT / "docs" / "deployment.md").read_text()))
    assert named - build_variables() - command_variables() == settings_variables()


def test_deployment_md_gives_each_setting_its_default() -> None:
    rows = re.findall(
        rf"^\| `({ENV_PREFIX}[A-Z0-9_]+)` \| ([^|]+) \|",
        (ROOT / "docs" / "deployment.md").read_text(),
        flags=re.MULTILINE,
    )
    documented = {name: default.strip() for name, default in rows}
    assert set(documented) == settings_variables()
    for name, info in Settings.model_fields.items():
        default = info.default
        if default is None or default == "":
            expected = "(none" if default is None else "(empty)"
            assert documented[ENV_PREFIX + name.upper()].startswith(expected), name
            continue
        text = str(default).lower() if isinstance(default, bool) else str(default)
        assert documented[ENV_PREFIX + name.upper()] == f"`{text}`", name
