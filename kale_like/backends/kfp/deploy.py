"""Upload, run and schedule a compiled pipeline on a Kubeflow Pipelines server (kfp `Client`).

The kfp client blocks on a host that never answers, retries a 404 health check for 25 s when
constructed with the default namespace, and raises urllib3 errors that are not `ApiException`.
Here every call to the server is waited for at most a bounded time (nothing of the client is
changed: the call runs in a thread of its own), a health check with a short timeout runs first, and
every failure becomes one `DeployError` naming the host, what failed and what to check. The token
is passed to the client only: never printed, never written to the YAML or the lineage.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED", "CANCELLED")


class DeployError(Exception):
    """A failure talking to KFP. `user_error`: the request or configuration is wrong (exit 2)."""

    def __init__(self, message: str, user_error: bool, hint: str = ""):
        super().__init__(message)
        self.user_error = user_error
        self.hint = hint


@dataclass(frozen=True)
class KfpTarget:
    """Where and as whom to talk to KFP."""

    host: str
    namespace: str | None = None
    token: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:  # never show the token
        return f"KfpTarget(host={self.host!r}, namespace={self.namespace!r}, token={'***' if self.token else None})"


@dataclass(frozen=True)
class Uploaded:
    pipeline_id: str
    version_id: str
    version_name: str


def read_token(env: str | None = None, file: str | None = None) -> str | None:
    """A token from a file or an environment variable (the client's own credentials otherwise)."""
    import os

    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise DeployError(f"cannot read the token file {file}: {error.strerror}", True) from None
    if env:
        return os.environ.get(env) or None
    return None


def health_check(target: KfpTarget) -> None:
    """Fail fast, with a bounded wait, when the host cannot answer KFP's API."""
    url = target.host.rstrip("/") + "/apis/v2beta1/healthz"
    request = urllib.request.Request(url, headers=_auth_headers(target))
    try:
        with urllib.request.urlopen(request, timeout=min(target.timeout, 10.0)) as response:
            response.read()
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise DeployError(f"{target.host}: the server refused the credentials (HTTP {error.code})", True,
                              "check the token (--token-env / --token-file) and your access to the namespace")
        if error.code >= 500:
            raise DeployError(f"{target.host}: the KFP health check failed with HTTP {error.code}", False,
                              "the KFP API server is unwell; see its logs")
        raise DeployError(f"{target.host}: the KFP health check answered HTTP {error.code}", True,
                          "is this the Kubeflow Pipelines API address (e.g. https://kfp.example.org)?")
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeployError(f"{target.host}: cannot reach the KFP API ({reason})", True,
                          "check the host name, the port, the network or VPN, and that KFP is running")


def _auth_headers(target: KfpTarget) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.token}"} if target.token else {}


def connect(target: KfpTarget):
    """A kfp Client (after a short health check); every call through `_call` is bounded in time."""
    health_check(target)
    return _call(target, "connecting", _client, target)


def _client(target: KfpTarget):
    import warnings

    from kfp.client import Client  # not kfp.Client: kfp may be imported without it (sdk_import.py)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return Client(host=target.host, namespace=target.namespace or "kubeflow", existing_token=target.token)


def _translate(error: Exception, target: KfpTarget, action: str) -> DeployError:
    status = getattr(error, "status", None)
    if status is not None:
        body = _error_body(error)
        user = status in (400, 401, 403, 404, 409, 422)
        hint = {401: "check the token", 403: "check your access to the namespace",
                404: "is the host the KFP API, and do the pipeline/experiment exist?"}.get(status, "")
        return DeployError(f"{target.host}: {action} failed: HTTP {status} {body}", user,
                           hint or "see the KFP API server's logs")
    name = type(error).__name__
    if "Timeout" in name or "timed out" in str(error).lower():
        return DeployError(f"{target.host}: {action} timed out after {target.timeout:.0f} s", False,
                           "the server is slow or unreachable; try --timeout or check the network")
    if "MaxRetry" in name or "NewConnection" in str(error) or isinstance(error, OSError):
        return DeployError(f"{target.host}: {action} failed: cannot connect", True,
                           "check the host name, the port and the network")
    return DeployError(f"{target.host}: {action} failed: {name}: {error}", False)


def _error_body(error: Exception) -> str:
    body = getattr(error, "body", "") or ""
    try:
        parsed = json.loads(body)
        return parsed.get("message") or parsed.get("error") or body[:200]
    except (ValueError, TypeError, AttributeError):
        return str(body)[:200]


def _call(target: KfpTarget, action: str, function, *args, **kwargs):
    """`function(*args, **kwargs)`, waited for at most the target's timeout, any failure one DeployError.

    kfp_server_api sends every request without a timeout (a host that stops answering blocks it for
    good) and kfp's Client offers no way to give one. So the call runs in a thread of its own, which
    this one stops waiting for at the deadline: the thread is left to end with its socket, or with the
    process (it is a daemon)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # handed to the waiting thread, which reports it
            outcome["error"] = error

    worker = threading.Thread(target=work, name=f"kfp: {action}", daemon=True)
    worker.start()
    worker.join(target.timeout)
    if worker.is_alive():
        raise DeployError(f"{target.host}: {action} timed out after {target.timeout:g} s", False,
                          "the server is slow or unreachable; try --timeout or check the network")
    error = outcome.get("error")
    if isinstance(error, DeployError):
        raise error
    if error is not None:  # every client failure becomes one clear message
        raise _translate(error, target, action) from None
    return outcome["value"]


def upload(client, target: KfpTarget, yaml_path: Path, name: str, description: str = "",
           version_name: str | None = None) -> Uploaded:
    """Upload as a new version of the named pipeline (created the first time)."""
    import contextlib
    import io

    named = version_name is not None
    version_name = version_name or f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    with contextlib.redirect_stdout(io.StringIO()):  # the client prints links of its own
        pipeline_id = _call(target, "looking up the pipeline", _pipeline_id, client, name, target.namespace)
        if pipeline_id is None and named:
            # KFP names a new pipeline's first version after the pipeline; a named version follows it
            pipeline = _call(target, "uploading the pipeline", client.upload_pipeline, str(yaml_path),
                             pipeline_name=name, description=description or None, namespace=target.namespace)
            pipeline_id = pipeline.pipeline_id
        elif pipeline_id is None:
            pipeline = _call(target, "uploading the pipeline", client.upload_pipeline, str(yaml_path),
                             pipeline_name=name, description=description or None, namespace=target.namespace)
            pipeline_id = pipeline.pipeline_id
            versions = _call(target, "listing its versions", client.list_pipeline_versions, pipeline_id)
            first = (versions.pipeline_versions or [None])[0]
            if first is None:
                raise DeployError(f"{target.host}: the pipeline was created without a version", False)
            return Uploaded(pipeline_id, first.pipeline_version_id, first.display_name or name)
        version = _call(target, "uploading a new version", client.upload_pipeline_version, str(yaml_path),
                        version_name, pipeline_id=pipeline_id, description=description or None)
    return Uploaded(pipeline_id, version.pipeline_version_id, version_name)


def _pipeline_id(client, name: str, namespace: str | None) -> str | None:
    """The pipeline's id by name, looked up in the namespace (a multi-user KFP lists only shared
    pipelines without one, which the kfp client's own lookup does)."""
    predicate = {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]}
    result = client._pipelines_api.pipeline_service_list_pipelines(filter=json.dumps(predicate),
                                                                   namespace=namespace)
    for pipeline in result.pipelines or []:
        if pipeline.display_name == name:
            return pipeline.pipeline_id
    return None


def experiment_id(client, target: KfpTarget, name: str) -> str:
    """Get or create the experiment by name; its id."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        experiment = _call(target, f"getting experiment '{name}'", client.create_experiment, name,
                           namespace=target.namespace)
    return experiment.experiment_id


def start_run(client, target: KfpTarget, experiment: str, run_name: str, uploaded: Uploaded,
              params: dict, service_account: str | None = None) -> str:
    """Start a run of exactly the uploaded version; its id."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        run = _call(target, "starting the run", client.run_pipeline, experiment_id=experiment, job_name=run_name,
                    params=params, pipeline_id=uploaded.pipeline_id, version_id=uploaded.version_id,
                    service_account=service_account)
    return run.run_id


def wait_for(client, target: KfpTarget, run_id: str, timeout: float, poll: float = 5.0) -> str:
    """Follow a run to a terminal state; its state."""
    deadline = time.monotonic() + timeout
    while True:
        run = _call(target, "reading the run", client.get_run, run_id)
        state = str(getattr(run, "state", "") or "").upper()
        if state in TERMINAL_STATES:
            return state
        if time.monotonic() > deadline:
            raise DeployError(f"{target.host}: run {run_id} is still {state or 'pending'} after {timeout:.0f} s",
                              False, "raise --wait-timeout, or follow it in the KFP UI")
        time.sleep(poll)


def schedule(client, target: KfpTarget, experiment: str, name: str, cron: str, uploaded: Uploaded, params: dict,
             max_concurrency: int = 1, no_catchup: bool = False, enabled: bool = True,
             service_account: str | None = None) -> str:
    """A recurring run bound to the uploaded version; its id."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        job = _call(target, "creating the recurring run", client.create_recurring_run, experiment_id=experiment,
                    job_name=name, cron_expression=cron, max_concurrency=max_concurrency,
                    no_catchup=no_catchup or None, params=params, pipeline_id=uploaded.pipeline_id,
                    version_id=uploaded.version_id, enabled=enabled, service_account=service_account)
    return job.recurring_run_id


def ui_link(target: KfpTarget, run_id: str) -> str:
    return f"{target.host.rstrip('/')}/#/runs/details/{run_id}"
