"""The deploy pipeline as code (deploy/): its Cloud Build files against the vendored
``cloudbuild.json`` schema, the order its steps must keep, and rollout.sh's decisions, run against
stand-ins of ``pulumi`` and of the checks: canary first, promote when the checks pass, the
previous image back everywhere when one fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.config import ConfigError
from tests.infra.infra_resources import StackRun
from tests.infra.test_infra_config import _parse

ROOT = Path(__file__).parent.parent.parent
BUILDS = ROOT / "deploy" / "cloudbuild"
ROLLOUT = ROOT / "deploy" / "rollout.sh"


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.cloudbuild",
         *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_build_files_follow_cloud_builds_schema(tmp_path: Path) -> None:
    result = _check(*sorted(BUILDS.glob("*.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is really applied: a step with a misspelt key is refused.
    broken = yaml.safe_load((BUILDS / "deploy.yaml").read_text())
    broken["steps"][0]["waitfor"] = ["-"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert _check(tmp_path / "broken.yaml").returncode != 0


def _order(build: dict) -> list[str]:
    """Step ids in the order waitFor forces (each step after the ones it waits for)."""
    steps = {s["id"]: s.get("waitFor", []) for s in build["steps"]}
    done: list[str] = []
    while len(done) < len(steps):
        ready = [i for i, after in steps.items() if i not in done and set(after) <= set(done)]
        assert ready, f"a waitFor cycle among {steps}"
        done.extend(ready)
    return done


def test_deploy_tests_builds_pushes_signs_then_rolls_out_the_signed_digest() -> None:
    build = yaml.safe_load((BUILDS / "deploy.yaml").read_text())
    assert _order(build) == ["test", "image", "push", "sign", "rollout"]
    steps = {s["id"]: s for s in build["steps"]}
    assert steps["test"]["args"] == ["-c", "bash .ci/run"]
    # The image is tagged by the commit (immutable in Artifact Registry), and what rolls out is
    # the digest the sign step signed, not a tag.
    assert steps["image"]["args"][-2] == "${_IMAGE}:${COMMIT_SHA}"
    assert "/workspace/image.txt" in steps["sign"]["args"][1]
    assert "$$(cat /workspace/image.txt)" in steps["rollout"]["args"][1]
    for step in build["steps"]:
        assert ":latest" not in step["name"] and ":" in step["name"], step["name"]


def test_a_pull_request_is_tested_built_and_previewed_with_the_policy_pack() -> None:
    build = yaml.safe_load((BUILDS / "pull-request.yaml").read_text())
    steps = {s["id"]: s for s in build["steps"]}
    assert set(_order(build)) == {"test", "image", "preview"}
    assert "--policy-pack policy" in steps["preview"]["args"][1]
    assert not any("push" in " ".join(s.get("args", [])) for s in build["steps"])


@pytest.fixture
def stand_ins(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH with `pulumi` (records its calls; the stack has 3 runners on image old:1),
    `python` (the canary check and smoke test answer $CANARY_RC / $SMOKE_RC) and `sleep`."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(
        "#!/bin/sh\necho \"pulumi $*\" >> \"$CALLS\"\n"
        "case \"$*\" in\n"
        "  *'config get'*agentlane:image*) echo old:1 ;;\n"
        "  *'config get'*runners.replicas*) echo 3 ;;\n"
        "esac\n"
    )
    (bin_dir / "python").write_text(
        "#!/bin/sh\necho \"python $*\" >> \"$CALLS\"\n"
        "case \"$*\" in\n"
        "  *canary_check*) exit \"${CANARY_RC:-0}\" ;;\n"
        "  *smoke*) exit \"${SMOKE_RC:-0}\" ;;\n"
        "esac\n"
    )
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir, log


def _rollout(stand_ins: tuple[Path, Path], **rcs: str) -> tuple[int, list[str]]:
    bin_dir, log = stand_ins
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log), **rcs}
    result = subprocess.run(
        ["bash", str(ROLLOUT), "prod", "img@sha256:new", "https://x", "aud", "https://prom"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    return result.returncode, log.read_text().splitlines()


def _deploys(calls: list[str]) -> list[tuple[str, str]]:
    """(image, partition) of each `pulumi up`, from the config set before it."""
    image = partition = ""
    ups = []
    for call in calls:
        if "config set" in call and "agentlane:image" in call:
            image = call.split()[-1]
        elif "rolloutPartition" in call:
            partition = call.split()[-1]
        elif call.startswith("pulumi up"):
            assert "--policy-pack policy" in call
            ups.append((image, partition))
    return ups


def test_the_rollout_goes_canary_first_then_everywhere(stand_ins: tuple[Path, Path]) -> None:
    code, calls = _rollout(stand_ins)
    assert code == 0
    assert _deploys(calls) == [("img@sha256:new", "2"), ("img@sha256:new", "0")]
    checks = [c for c in calls if c.startswith("python")]
    assert "--pod agentlane-runner-2" in checks[0] and "canary_check" in checks[0]
    assert ["smoke" in c for c in checks] == [False, True, True]


@pytest.mark.parametrize(("failing", "checks_run"), [("CANARY_RC", 1), ("SMOKE_RC", 2)])
def test_a_failed_check_puts_the_previous_image_back_everywhere(
    stand_ins: tuple[Path, Path], failing: str, checks_run: int
) -> None:
    code, calls = _rollout(stand_ins, **{failing: "1"})
    assert code == 1
    assert _deploys(calls) == [("img@sha256:new", "2"), ("old:1", "0")]
    assert len([c for c in calls if c.startswith("python")]) == checks_run


def test_the_rollout_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(ROLLOUT)], check=False).returncode == 0
    assert os.access(ROLLOUT, os.X_OK)


class _Prometheus:
    """A Prometheus HTTP API on loopback that answers each of canary_check's queries with the
    value given for it (by the query's metric and label shape), recording what was asked."""

    def __init__(self, values: dict[str, float]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)["query"][0]
                outer.asked.append(query)
                name = next(k for k, v in _KEYS.items() if v(query))
                value = values.get(name)
                result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
                body = json.dumps({"status": "success",
                                   "data": {"resultType": "vector", "result": result}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


_KEYS = {
    "others_failed_share": lambda q: 'pod!="' in q,
    "failed_share": lambda q: "advances_total" in q and 'pod!="' not in q,
    "fenced": lambda q: "fenced_appends_total" in q,
    "due_age": lambda q: "oldest_due_work_age_seconds" in q,
}


def _canary(values: dict[str, float]) -> tuple[int, str, list[str]]:
    prometheus = _Prometheus(values)
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "canary_check.py"), "--prometheus",
             prometheus.url, "--pod", "agentlane-runner-2", "--minutes", "5"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    finally:
        prometheus.server.shutdown()
        prometheus.server.server_close()
    return result.returncode, result.stdout, prometheus.asked


@pytest.mark.parametrize(
    ("values", "code", "says"),
    [
        ({"failed_share": 0.01, "others_failed_share": 0.01}, 0, "canary: ok"),
        ({}, 0, "canary: ok"),  # nothing ran in the window: no series, nothing wrong
        ({"failed_share": 0.4, "others_failed_share": 0.01}, 1, "failed advances: 40.0%"),
        # The model is down for everyone: not the canary's fault.
        ({"failed_share": 0.4, "others_failed_share": 0.38}, 0, "canary: ok"),
        ({"fenced": 3}, 1, "fenced appends on the canary: 3"),
        ({"due_age": 600}, 1, "due work 600s old"),
    ],
)
def test_the_canary_check_reads_the_canarys_series(
    values: dict[str, float], code: int, says: str
) -> None:
    returncode, out, asked = _canary(values)
    assert returncode == code and says in out, out
    assert all('pod="agentlane-runner-2"' in q or 'pod!="agentlane-runner-2"' in q
               for q in asked)
    assert all("[5m]" in q for q in asked)


def test_the_runners_roll_out_from_the_stacks_partition(run: StackRun) -> None:
    (runners,) = [r for r in run.kubernetes() if r.inputs["kind"] == "StatefulSet"]
    strategy = runners.get("spec", "updateStrategy")
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


@pytest.mark.parametrize("partition", [-1, 6])  # prod has 6 runners
def test_a_partition_outside_the_runners_is_refused(partition: int) -> None:
    raw = _parse("prod").runners
    runners = {"replicas": raw.replicas, "resources": {"cpu": raw.resources.cpu,
               "memory": raw.resources.memory}, "rolloutPartition": partition}
    with pytest.raises(ConfigError, match=r"runners\.rolloutPartition"):
        _parse("prod", runners=runners)
