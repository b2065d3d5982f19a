"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/nginx.conf, deploy/k8s/)
hold together, checked offline: they parse, pass the linters and schemas that install from
PyPI (hadolint, yamllint, the compose-spec schema, Kubernetes' own schemas through
kubernetes-validate), and say what docs/deploy.md promises (two replicas, Redis, a
balancer, readiness on /health/ready, non-root). The coop.toml files they mount load with
coop's own loader, and the image's start command and healthcheck work on a real
``coop serve``. No container runtime is needed (docs/deploy.md says what was not run).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from redis_server import RedisServer, redis_server_auth_fixture  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def coop_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the coop image (built from the Dockerfile)."""
    return {
        name: service
        for name, service in data["services"].items()
        if service.get("build", {}).get("dockerfile") == "Dockerfile"
    }


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found.append((path, document))
    return found


def find(kind: str, name: str) -> dict[str, Any]:
    for _, document in manifests():
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


# -- compose ------------------------------------------------------------------------------


def test_compose_matches_the_compose_spec_schema() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = yaml.safe_load(schema_file.read_text(encoding="utf-8"))
    jsonschema.validate(compose(), schema)
    broken = compose()
    broken["services"]["redis"]["healthcheck"]["interval"] = ["5s"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_compose_runs_two_replicas_on_redis_behind_a_balancer() -> None:
    data = compose()
    replicas = coop_services(data)
    assert len(replicas) == 2, sorted(replicas)
    services = data["services"]
    assert services["redis"]["image"].startswith("redis:")
    assert services["redis"]["healthcheck"]["test"]
    for name, service in replicas.items():
        assert (ROOT / "deploy" / service["build"]["context"] / "Dockerfile").is_file()
        health = " ".join(service["healthcheck"]["test"])
        assert "/health/ready" in health, name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        env = service["environment"]
        assert env["COOP_REDIS_URL"].startswith("redis://redis:"), name
        assert env["COOP_API_KEY"].startswith("${COOP_API_KEY:?"), name  # required, not defaulted
        assert "./coop.toml:/etc/coop/coop.toml:ro" in service["volumes"], name
        assert service["read_only"] is True, name
    lb = services["lb"]
    assert lb["image"].startswith("nginx:")
    assert lb["healthcheck"]["test"]
    assert {name: dep["condition"] for name, dep in lb["depends_on"].items()} == {
        name: "service_healthy" for name in replicas
    }
    mounted = {v.split(":")[0] for v in lb["volumes"]}
    assert "./nginx.conf" in mounted and (DEPLOY / "nginx.conf").is_file()


@pytest.mark.skipif(
    not shutil.which("docker-compose"),
    reason="docker-compose is not installed (Debian: docker-compose)",
)
def test_docker_compose_config(tmp_path: Path) -> None:
    """Compose's own check (``docker-compose config``, no daemon needed): the file
    resolves, and it will not resolve without COOP_API_KEY."""
    env = {k: v for k, v in os.environ.items() if k != "COOP_API_KEY"}
    command = ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "COOP_API_KEY" in refused.stderr
    env["COOP_API_KEY"] = "sk-deploy-test"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {"redis", "lb", *coop_services(compose())}


def test_nginx_sends_to_each_replica() -> None:
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream coop \{(.*?)\}", text, re.S)
    assert upstream, "deploy/nginx.conf has no 'upstream coop' block"
    servers = re.findall(r"^\s*server ([\w.-]+):(\d+)", upstream.group(1), re.M)
    port = tomllib.loads((DEPLOY / "coop.toml").read_text(encoding="utf-8"))["server"]["port"]
    assert sorted(servers) == sorted((name, str(port)) for name in coop_services(compose()))
    assert "proxy_buffering off;" in text  # streams go out as they come
    assert (
        re.search(r"listen (\d+);", text).group(1)
        == compose()["services"]["lb"]["ports"][0].split(":")[-1]
    )


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (Debian: nginx)")
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    """``nginx -t`` on deploy/nginx.conf with the compose host names made loopback ones."""
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    text = re.sub(r"server coop-\d+:8080", "server 127.0.0.1:8080", text)
    text = text.replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    (tmp_path / "nginx.conf").write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# -- Kubernetes ---------------------------------------------------------------------------


def test_every_manifest_passes_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    checked = 0
    for path, document in manifests():
        if document["apiVersion"].startswith("kustomize.config.k8s.io/"):
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{path.name}: {document['kind']}: {exc.message}") from None
        checked += 1
    assert checked >= 8
    # the check itself rejects a mistake
    broken = copy.deepcopy(find("Deployment", "coop"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(data["resources"]) == files


def test_the_gateway_deployment() -> None:
    deployment = find("Deployment", "coop")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["args"][:3] == ["serve", "--host", "0.0.0.0"]
    port = tomllib.loads((DEPLOY / "coop.toml").read_text(encoding="utf-8"))["server"]["port"]
    assert container["ports"][0]["containerPort"] == port
    # the grace period covers the preStop pause and [server] shutdown_timeout
    shutdown = tomllib.loads((DEPLOY / "coop.toml").read_text())["server"]["shutdown_timeout"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > shutdown + pause
    # every volume mount has a volume; the config comes from the ConfigMap
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    assert volumes[mounts["/etc/coop"]]["configMap"]["name"] == "coop-config"
    assert "/tmp" in mounts  # the root file system is read-only
    # the Secret's keys it reads exist in the example Secret
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e] + [
        e["valueFrom"]["secretKeyRef"]
        for e in find("Deployment", "coop-redis")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    ]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} <= set(secret["stringData"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["COOP_REDIS_URL"].startswith("redis://:$(REDIS_PASSWORD)@coop-redis:")


def test_services_select_their_pods() -> None:
    for name in ("coop", "coop-redis"):
        service = find("Service", name)
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
    redis = find("Deployment", "coop-redis")["spec"]["template"]["spec"]
    assert redis["securityContext"]["runAsNonRoot"] is True


def test_the_configmap_carries_deploy_coop_toml() -> None:
    configmap = find("ConfigMap", "coop-config")
    assert configmap["data"]["coop.toml"] == (DEPLOY / "coop.toml").read_text(encoding="utf-8")


def test_yamllint() -> None:
    result = subprocess.run(
        [BIN / "yamllint", "--strict", "-c", DEPLOY / ".yamllint.yaml", DEPLOY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the image ----------------------------------------------------------------------------


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_hadolint() -> None:
    result = subprocess.run(
        [BIN / "hadolint", ROOT / "Dockerfile"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_user_with_a_readiness_healthcheck() -> None:
    final = dockerfile().split("\nFROM ")[-1]  # the runtime stage
    user = re.search(r"^USER (\S+)", final, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*/health/ready", final, re.M)
    port = tomllib.loads((DEPLOY / "image" / "coop.toml").read_text())["server"]["port"]
    assert re.search(rf"^EXPOSE {port}$", final, re.M)
    assert 'CMD ["serve", "--host", "0.0.0.0"' in final


def test_the_image_installs_extras_that_exist() -> None:
    extras = re.findall(r"^ARG EXTRAS=(\S+)$", dockerfile(), re.M)
    assert extras and len(set(extras)) == 1
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras[0].split(",")) <= set(declared)


def test_dockerignore_keeps_what_the_image_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(), re.M):
        copied.update(source.split())
    assert copied <= kept
    assert all((ROOT / path).exists() for path in copied)


# -- the coop.toml files, with coop's own loader ------------------------------------------


@pytest.mark.parametrize("path", ["deploy/coop.toml", "deploy/image/coop.toml"])
def test_the_mounted_coop_toml_loads(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from coop import SystemConfig, load_plugins
    from coop._config import check_plugins
    from coop._errors import MissingSecretError
    from coop.server import check_bind

    monkeypatch.delenv("COOP_API_KEY", raising=False)
    config = SystemConfig.load(ROOT / path)
    check_plugins(config, load_plugins())
    assert config.server.host == "0.0.0.0"
    # without the key in the environment the gateway refuses to start, naming the variable
    with pytest.raises(MissingSecretError, match="COOP_API_KEY"):
        check_bind(config, "0.0.0.0")
    monkeypatch.setenv("COOP_API_KEY", "sk-deploy-test")
    check_bind(config, "0.0.0.0")
    if path == "deploy/coop.toml":
        assert config.state.backend == "redis"
        monkeypatch.setenv("COOP_REDIS_URL", "redis://redis:6379/0")
        assert config.state.resolved_url() == "redis://redis:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_image_command_and_healthcheck_on_a_real_gateway(tmp_path: Path) -> None:
    """What the container runs: the image's coop.toml, ``serve --host 0.0.0.0``, then the
    HEALTHCHECK command itself. Without COOP_API_KEY it exits 2 naming the variable."""
    text = (DEPLOY / "image" / "coop.toml").read_text(encoding="utf-8")
    text = text.replace("/var/lib/coop/", f"{tmp_path}/")
    config = tmp_path / "coop.toml"
    config.write_text(text, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("COOP_API_KEY", "BASE_URL", "API_KEY")}
    env |= {"COOP_CONFIG": str(config), "XDG_DATA_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "coop", "serve", "--host", "0.0.0.0", "--port", str(port)]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "COOP_API_KEY" in refused.stderr and "Traceback" not in refused.stderr

    env["COOP_API_KEY"] = "sk-deploy-test"
    check = re.search(
        r"^HEALTHCHECK [^\n]*CMD (\[[^\n]*\])$", dockerfile().replace("\\\n", ""), re.M
    )
    assert check
    healthcheck = yaml.safe_load(check.group(1))
    healthcheck = [part.replace(":8080/", f":{port}/") for part in healthcheck]
    assert healthcheck[0] == "python"
    healthcheck[0] = sys.executable
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(healthcheck, capture_output=True, timeout=30)
            if result.returncode == 0:
                break
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/models", timeout=10).status_code == 401
        models = httpx.get(
            f"{base}/v1/models", headers={"authorization": "Bearer sk-deploy-test"}, timeout=10
        )
        assert models.status_code == 200
        assert {m["id"] for m in models.json()["data"]} >= {"sim-light", "sim-large"}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0  # a drained SIGTERM is a clean exit for the orchestrator


def test_two_replicas_of_the_deployed_config_share_keys_on_redis(
    tmp_path: Path, redis_server_auth: RedisServer
) -> None:
    """deploy/coop.toml as compose and Kubernetes run it: two replicas on one Redis with a
    password (COOP_REDIS_URL as the manifest builds it). A managed key made with
    ``coop keys create`` against the same config works on both replicas; the static key
    too."""
    env = {k: v for k, v in os.environ.items() if k not in ("BASE_URL", "API_KEY")}
    env |= {
        "COOP_API_KEY": "sk-deploy-static",
        "COOP_REDIS_URL": redis_server_auth.url,
        "XDG_DATA_HOME": str(tmp_path),
    }
    config = str(DEPLOY / "coop.toml")
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "coop", "serve", "--config", config, "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    try:
        for server, port in zip(servers, ports, strict=True):
            wait_ready(server, port)
        create = ["keys", "create", "--name", "team-a", "--json", "--config", config]
        created = subprocess.run(
            [sys.executable, "-m", "coop", *create],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        managed = json.loads(created.stdout)["key"]
        body = {"model": "sim-light", "messages": [{"role": "user", "content": "hi"}]}
        for port in ports:
            for key in (managed, "sk-deploy-static"):
                deadline = time.monotonic() + 5  # a replica syncs keys every sync_interval
                while True:
                    reply = httpx.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {key}"},
                        timeout=30,
                    )
                    if reply.status_code == 200 or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                assert reply.status_code == 200, (port, reply.text)
            refused = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json=body,
                headers={"authorization": "Bearer sk-not-a-key"},
                timeout=30,
            )
            assert refused.status_code == 401
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


def wait_ready(server: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(server.stderr.read() if server.stderr else "exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no replica ready on port {port}")
