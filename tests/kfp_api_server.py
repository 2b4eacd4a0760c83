"""A small fake of the Kubeflow Pipelines v2beta1 REST API, for contract tests of kale_like's deploy calls.

`FakeKfp` is an `http.server` on 127.0.0.1 in a background thread. It serves the endpoints the kfp 2.17
client calls for upload / run / schedule (paths from `kfp_server_api/api/*.py`), keeps pipelines,
versions, experiments, runs and recurring runs in memory, and records every request.

Every JSON request body is checked against the `kfp_server_api` model the real API declares for it
(`check_model`: no unknown field, every value of the declared type, enums within their allowed
values); a violation is recorded in `violations` and answered 400, like the real grpc-gateway does.
Responses are built from the same models, so they are what the generated client expects to read.

Like a multi-user KFP (`multi_user=True`), pipelines and experiments live in a namespace: a list
without `namespace` sees only the shared ones (namespace ""). In single-user mode the namespace is
ignored.

Other hosts for failure tests: `PlainHttpServer(status)` answers one status everywhere (a web server
that is not KFP), `SilentServer` accepts connections and never answers, `ResettingServer` accepts and
resets the connection at once, `closed_port()` is a port nothing listens on.
"""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import itertools
import json
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import kfp_server_api
import kfp_server_api.models

API = "/apis/v2beta1"
# the integer the kfp client sends for an EQUALS predicate (kfp.client.client._FILTER_OPERATIONS)
EQUALS = {1, "EQUALS"}


# --- contract: a JSON document against a kfp_server_api model -----------------------------------

_PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "object": (object,)}


def check_model(data, type_name: str, where: str = "") -> list[str]:
    """Violations of `data` against the kfp_server_api type `type_name` ('V2beta1Run', 'list[str]', ...)."""
    where = where or type_name
    if data is None:
        return []
    if type_name.startswith("list["):
        if not isinstance(data, list):
            return [f"{where}: expected a list, got {type(data).__name__}"]
        inner = type_name[5:-1]
        return [v for i, item in enumerate(data) for v in check_model(item, inner, f"{where}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            return [f"{where}: expected an object, got {type(data).__name__}"]
        inner = re.match(r"dict\(([^,]*), (.*)\)", type_name).group(2)
        return [v for key, item in data.items() for v in check_model(item, inner, f"{where}.{key}")]
    if type_name == "str":
        # int64 / uint64 fields are 'str' in the OpenAPI spec; protobuf JSON accepts numbers for them too
        ok = isinstance(data, str) or (isinstance(data, int) and not isinstance(data, bool))
        return [] if ok else [f"{where}: expected a string, got {data!r}"]
    if type_name in ("int", "float"):
        ok = isinstance(data, _PRIMITIVES[type_name]) and not isinstance(data, bool)
        return [] if ok else [f"{where}: expected a number, got {data!r}"]
    if type_name == "bool":
        return [] if isinstance(data, bool) else [f"{where}: expected a boolean, got {data!r}"]
    if type_name == "object":
        return []
    if type_name in ("datetime", "date"):
        return [] if isinstance(data, str) else [f"{where}: expected an RFC 3339 string, got {data!r}"]
    klass = getattr(kfp_server_api.models, type_name)
    allowed = getattr(klass, "allowable_values", None)
    if allowed is not None and not klass.openapi_types:  # an enum
        return [] if data in allowed else [f"{where}: {data!r} is not one of {allowed}"]
    if not isinstance(data, dict):
        return [f"{where}: expected a {type_name} object, got {data!r}"]
    by_json_key = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    violations = []
    for key, value in data.items():
        if key not in by_json_key:
            violations.append(f"{where}: unknown field '{key}' (not in {type_name})")
            continue
        violations += check_model(value, klass.openapi_types[by_json_key[key]], f"{where}.{key}")
    return violations


def to_model(data, type_name: str):
    """The kfp_server_api model object the generated client would build from `data`."""
    return kfp_server_api.ApiClient()._ApiClient__deserialize(data, type_name)


def to_json(model) -> dict:
    return kfp_server_api.ApiClient().sanitize_for_serialization(model)


# --- recording ------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: object = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # multipart field -> (filename, content)
    at: float = 0.0

    @property
    def route(self) -> str:
        """'METHOD /path' with ids replaced by '{id}', e.g. 'GET /apis/v2beta1/runs/{id}'."""
        return f"{self.method} {_route_path(self.path)}"


def _route_path(path: str) -> str:
    path = re.sub(r"/pipelines/(?!upload\b|upload_version\b)[^/]+", "/pipelines/{id}", path)
    return re.sub(r"/(runs|experiments|recurringruns)/[^/:]+", r"/\1/{id}", path)


@dataclass
class Failure:
    """How the server answers a matching request instead of serving it."""

    status: int = 500
    message: str = "internal error"
    hang: float = 0.0  # > 0: accept the request, then say nothing for this many seconds
    times: int | None = None  # None: always
    after: int = 0  # let this many matching requests through first


# --- the fake KFP API ------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "FakeKFP/2.17"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def _serve(self):
        fake: FakeKfp = self.server.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, split.path, {k: v[-1] for k, v in parse_qs(split.query).items()},
                          {k.lower(): v for k, v in self.headers.items()}, body, at=time.monotonic())
        content_type = self.headers.get("Content-Type", "")
        if body and content_type.startswith("application/json"):
            try:
                request.json = json.loads(body)
            except ValueError:
                request.json = "<invalid json>"
        elif body and content_type.startswith("multipart/form-data"):
            request.files = _multipart(content_type, body)
        status, payload = fake.answer(request)
        if status is None:  # hung: say nothing, then drop the connection
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    files = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        files[name] = (part.get_filename(), part.get_payload(decode=True))
    return files


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """Start in a thread on 127.0.0.1 (a free port), stop on exit."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class FakeKfp(_Base):
    """The KFP v2beta1 API subset kale_like uses, with recorded requests and injectable failures."""

    def __init__(self, multi_user: bool = False, token: str | None = None, auth_healthz: bool = True):
        self.multi_user = multi_user
        self.token = token  # when set, requests without `Authorization: Bearer <token>` get 401
        self.auth_healthz = auth_healthz  # False: /healthz answers without a token (as behind some gateways)
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.failures: dict[str, Failure] = {}  # route ('POST /apis/v2beta1/runs') -> failure
        self.run_states: list[str] = ["SUCCEEDED"]  # what successive GET run answer (the last repeats)
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}  # pipeline id -> versions, oldest first
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._hanging = threading.Event()
        self._server = None

    # --- lifecycle
    def start(self):
        self._server = _ThreadingServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self):
        self._hanging.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # --- seeding and queries for tests
    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    def add_pipeline(self, name: str, namespace: str = "", versions: int = 1) -> dict:
        pipeline = {"pipeline_id": self._id("pipeline"), "display_name": name, "name": name,
                    "namespace": self._ns(namespace), "description": ""}
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self.versions[pipeline["pipeline_id"]] = []
        for index in range(versions):
            self._add_version(pipeline["pipeline_id"], name if index == 0 else f"{name}-v{index + 1}", b"")
        return pipeline

    def add_experiment(self, name: str, namespace: str = "") -> dict:
        experiment = {"experiment_id": self._id("experiment"), "display_name": name,
                      "namespace": self._ns(namespace), "storage_state": "AVAILABLE"}
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def calls(self, route: str | None = None) -> list[Request]:
        """Recorded requests, optionally only those of one route ('POST /apis/v2beta1/runs')."""
        return [r for r in self.requests if route is None or r.route == route]

    def routes(self) -> list[str]:
        return [r.route for r in self.requests]

    def fail(self, route: str, status: int = 500, message: str = "internal error", hang: float = 0.0,
             times: int | None = None, after: int = 0):
        """Answer `route` with `status` (or, with `hang`, say nothing for that long, then drop the connection)."""
        self.failures[route] = Failure(status, message, hang, times, after)

    def release(self):
        """End every hang now (the hung connections are dropped)."""
        self._hanging.set()

    # --- serving
    def _ns(self, namespace: str | None) -> str:
        return (namespace or "") if self.multi_user else ""

    def answer(self, request: Request):
        with self._lock:
            self.requests.append(request)
            failure = self.failures.get(request.route)
            if failure and failure.after > 0:
                failure.after -= 1
                failure = None
            elif failure and failure.times is not None:
                failure.times -= 1
                if failure.times < 0:
                    failure = None
        if failure and failure.hang:
            self._hanging.wait(failure.hang)
            return None, None
        if failure:
            return failure.status, _status(failure.status, failure.message)
        guarded = self.token and (self.auth_healthz or request.route != f"GET {API}/healthz")
        if guarded and request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _status(401, "Unauthenticated: invalid bearer token")
        route = request.route
        handler = {
            f"GET {API}/healthz": self._healthz,
            f"GET {API}/pipelines": self._list_pipelines,
            f"POST {API}/pipelines/upload": self._upload,
            f"POST {API}/pipelines/upload_version": self._upload_version,
            f"GET {API}/pipelines/{{id}}/versions": self._list_versions,
            f"GET {API}/experiments": self._list_experiments,
            f"POST {API}/experiments": self._create_experiment,
            f"POST {API}/runs": self._create_run,
            f"GET {API}/runs/{{id}}": self._get_run,
            f"POST {API}/recurringruns": self._create_recurring_run,
        }.get(route)
        if handler is None:
            return 404, _status(404, f"Not Found: {request.method} {request.path}")
        with self._lock:
            try:
                return handler(request)
            except _Reject as rejection:
                return rejection.status, _status(rejection.status, str(rejection))

    def _body(self, request: Request, type_name: str) -> dict:
        if not isinstance(request.json, dict):
            self.violations.append(f"{request.route}: body is not a JSON object: {request.body[:200]!r}")
            raise _Reject(400, "body must be a JSON object")
        violations = check_model(request.json, type_name)
        if violations:
            self.violations += [f"{request.route}: {v}" for v in violations]
            raise _Reject(400, "; ".join(violations))
        return request.json

    def _healthz(self, request):
        return 200, to_json(kfp_server_api.V2beta1GetHealthzResponse(multi_user=self.multi_user))

    def _filter_name(self, request: Request) -> str | None:
        """The display_name an EQUALS filter asks for (None without a filter)."""
        if "filter" not in request.query:
            return None
        try:
            spec = json.loads(request.query["filter"])
            (predicate,) = spec["predicates"]
            assert predicate["operation"] in EQUALS and predicate["key"] == "display_name"
            return predicate["stringValue"]
        except (ValueError, KeyError, TypeError, AssertionError):
            self.violations.append(f"{request.route}: unexpected filter {request.query['filter']!r}")
            raise _Reject(400, "invalid filter") from None

    def _list_pipelines(self, request):
        name, namespace = self._filter_name(request), self._ns(request.query.get("namespace"))
        found = [p for p in self.pipelines.values()
                 if p["namespace"] == namespace and (name is None or p["display_name"] == name)]
        response = kfp_server_api.V2beta1ListPipelinesResponse(
            pipelines=[to_model(p, "V2beta1Pipeline") for p in found] or None, total_size=len(found) or None)
        return 200, to_json(response)

    def _uploaded_file(self, request: Request) -> bytes:
        if "uploadfile" not in request.files:
            self.violations.append(f"{request.route}: no multipart 'uploadfile' part (got {sorted(request.files)})")
            raise _Reject(400, "uploadfile is required")
        return request.files["uploadfile"][1]

    def _upload(self, request):
        content = self._uploaded_file(request)
        name = request.query.get("name") or request.query.get("display_name")
        if not name:
            raise _Reject(400, "name is required")
        namespace = self._ns(request.query.get("namespace"))
        if any(p["display_name"] == name and p["namespace"] == namespace for p in self.pipelines.values()):
            raise _Reject(409, f"Already exists: pipeline with name '{name}' in namespace '{namespace}'")
        pipeline = {"pipeline_id": self._id("pipeline"), "display_name": name, "name": name,
                    "namespace": namespace, "description": request.query.get("description", "")}
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        self.versions[pipeline["pipeline_id"]] = []
        self._add_version(pipeline["pipeline_id"], name, content)  # KFP names the first version after it
        return 200, to_json(to_model(pipeline, "V2beta1Pipeline"))

    def _add_version(self, pipeline_id: str, name: str, content: bytes, description: str = "") -> dict:
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": self._id("version"), "display_name": name,
                   "name": name, "description": description}
        self.versions[pipeline_id].append(version)
        version["_content"] = content
        return version

    def _upload_version(self, request):
        content = self._uploaded_file(request)
        pipeline_id, name = request.query.get("pipelineid"), request.query.get("name")
        if pipeline_id not in self.pipelines:
            raise _Reject(404, f"pipeline {pipeline_id} not found")
        if not name:
            raise _Reject(400, "name is required")
        if any(v["display_name"] == name for v in self.versions[pipeline_id]):
            raise _Reject(409, f"Already exists: version '{name}' of pipeline {pipeline_id}")
        version = self._add_version(pipeline_id, name, content, request.query.get("description", ""))
        return 200, self._version_json(version)

    def _version_json(self, version: dict) -> dict:
        return to_json(to_model({k: v for k, v in version.items() if not k.startswith("_")},
                                "V2beta1PipelineVersion"))

    def _list_versions(self, request):
        pipeline_id = request.path.split("/")[4]
        if pipeline_id not in self.pipelines:
            raise _Reject(404, f"pipeline {pipeline_id} not found")
        versions = self.versions[pipeline_id]
        return 200, {"pipeline_versions": [self._version_json(v) for v in versions], "total_size": len(versions)}

    def _list_experiments(self, request):
        name, namespace = self._filter_name(request), self._ns(request.query.get("namespace"))
        found = [e for e in self.experiments.values()
                 if e["namespace"] == namespace and (name is None or e["display_name"] == name)]
        response = kfp_server_api.V2beta1ListExperimentsResponse(
            experiments=[to_model(e, "V2beta1Experiment") for e in found] or None, total_size=len(found) or None)
        return 200, to_json(response)

    def _create_experiment(self, request):
        body = self._body(request, "V2beta1Experiment")
        if not body.get("display_name"):
            raise _Reject(400, "experiment display_name is required")
        if self.multi_user and not body.get("namespace"):
            raise _Reject(400, "namespace is required in multi-user mode")
        if "experiment_id" in body:
            self.violations.append(f"{request.route}: the client chose an experiment_id")
        return 200, to_json(to_model(self.add_experiment(body["display_name"], body.get("namespace", "")),
                                     "V2beta1Experiment"))

    def _check_reference(self, request: Request, body: dict):
        if body.get("experiment_id") not in self.experiments:
            raise _Reject(404, f"experiment {body.get('experiment_id')!r} not found")
        reference = body.get("pipeline_version_reference") or {}
        pipeline_id, version_id = reference.get("pipeline_id"), reference.get("pipeline_version_id")
        if body.get("pipeline_spec") is None:
            if pipeline_id not in self.pipelines:
                raise _Reject(404, f"pipeline {pipeline_id!r} not found")
            if version_id not in {v["pipeline_version_id"] for v in self.versions[pipeline_id]}:
                raise _Reject(404, f"version {version_id!r} of pipeline {pipeline_id} not found")

    def _create_run(self, request):
        body = self._body(request, "V2beta1Run")
        self._check_reference(request, body)
        run = dict(body, run_id=self._id("run"), state="PENDING", _polls=0)
        self.runs[run["run_id"]] = run
        return 200, self._run_json(run)

    def _run_json(self, run: dict) -> dict:
        return to_json(to_model({k: v for k, v in run.items() if not k.startswith("_")}, "V2beta1Run"))

    def _get_run(self, request):
        run = self.runs.get(request.path.rsplit("/", 1)[1])
        if run is None:
            raise _Reject(404, "run not found")
        run["state"] = self.run_states[min(run["_polls"], len(self.run_states) - 1)]
        run["_polls"] += 1
        return 200, self._run_json(run)

    def _create_recurring_run(self, request):
        body = self._body(request, "V2beta1RecurringRun")
        self._check_reference(request, body)
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        problem = robfig_cron_problem(cron) if cron is not None else None
        if problem:
            raise _Reject(400, f"invalid cron '{cron}': {problem}")
        job = dict(body, recurring_run_id=self._id("recurring"),
                   status="ENABLED" if body.get("mode") == "ENABLE" else "DISABLED")
        self.recurring_runs[job["recurring_run_id"]] = job
        return 200, to_json(to_model(job, "V2beta1RecurringRun"))


# robfig/cron (KFP's scheduler): seconds minutes hours day-of-month month day-of-week, dow 0-6
_ROBFIG_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
          "sun", "mon", "tue", "wed", "thu", "fri", "sat"}


def robfig_cron_problem(cron: str) -> str | None:
    """Why robfig/cron's 6-field parser would reject `cron` (None when it would accept it)."""
    fields = cron.split()
    if len(fields) != 6:
        return f"expected 6 fields, found {len(fields)}"
    for field_text, (low, high) in zip(fields, _ROBFIG_BOUNDS):
        for part in field_text.split(","):
            base, _, step = part.partition("/")
            if step and not step.isdigit():
                return f"bad step in '{part}'"
            if base in ("*", "?"):
                continue
            for value in base.split("-"):
                if value.lower() in _NAMES:
                    continue
                if not value.isdigit():
                    return f"'{value}' is not a number"
                if not low <= int(value) <= high:
                    return f"{value} is out of range {low}-{high}"
    return None


class _Reject(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _status(code: int, message: str) -> dict:
    """A grpc-gateway error body (google.rpc.Status)."""
    grpc = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}.get(code, 2)
    return {"code": grpc, "message": message, "details": []}


# --- hosts that are not a working KFP -------------------------------------------------------------


class PlainHttpServer(_Base):
    """A web server that answers `status` with an HTML page to every request (not KFP)."""

    def __init__(self, status: int = 404):
        self.status = status
        self.requests: list[str] = []
        self.first_contact: float | None = None  # time.monotonic() of the first request

    def start(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                outer.requests.append(f"{self.command} {self.path}")
                outer.first_contact = outer.first_contact or time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                page = f"<html><body><h1>{outer.status}</h1></body></html>".encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = _ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class _SocketServer(_Base):
    """A raw listening socket; `_on_accept(connection)` decides what happens."""

    def __init__(self):
        self.connections: list[socket.socket] = []
        self.first_contact: float | None = None  # time.monotonic() of the first connection
        self._stopped = threading.Event()

    def start(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            self.first_contact = self.first_contact or time.monotonic()
            self.connections.append(connection)
            self._on_accept(connection)

    def _on_accept(self, connection):
        pass

    def stop(self):
        self._stopped.set()
        for connection in self.connections:
            try:
                connection.close()
            except OSError:
                pass
        self._socket.close()


class SilentServer(_SocketServer):
    """Accepts every connection and never sends a byte (a hung server or a black-holing proxy)."""


class ResettingServer(_SocketServer):
    """Accepts every connection and resets it at once (a host refusing the service)."""

    def _on_accept(self, connection):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()


class ClosedPort(_Base):
    """A port bound but not listening: connecting to it is refused. Kept bound so nothing reuses it."""

    def start(self):
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        return self

    def stop(self):
        self._socket.close()
