"""REST handlers under `<base_url>/kale-like/`.

| verb | path | does |
|---|---|---|
| GET  | `info` | version, the KFP host from the server's environment |
| POST | `analyze` | `{path, notebook?}`: the step graph, or (still 200, `ok` false) the analyzer's problems and the graph without the tags they are on |
| POST | `section-tags` | `{path, notebook?, one_step?}`: the tags of each cell (index, id) of a notebook without tags |
| POST | `compile` | `{path, output_folder?, image?, kfp_version?}`: writes the YAML and DSL module; their paths and a preview |
| POST | `runs` | `{path, params?, image?, kfp_version?}`: starts a local run (202) |
| GET  | `runs?source=PATH` | the server's local runs (of one notebook: with those its run store kept from earlier servers), newest first |
| GET  | `runs/<id>` | its state, per-task status and one row per step of the graph |
| GET  | `runs/<id>/logs?task=LABEL` | a task's log (its tail) |
| POST | `runs/<id>/stop` | ends the run and its step processes |
| GET  | `runs/<id>/outputs?task=LABEL` | previews of a task's outputs, once the run has ended |
| GET  | `runs/<id>/files` | the files of its run folder (outputs and logs) |
| GET  | `runs/<id>/files/<name>` | one of them, as a download |
| GET  | `kfp/status?host=&namespace=` | whether a KFP API answers there (bounded wait) |
| POST | `upload` | `{path, host, namespace?, run_name?, params?, service_account?, kfp_version?}`: upload a version and start a run |
| POST | `schedule/preview` | `{cron}`: KFP's form and the next three fire times |
| POST | `schedule` | `{path, host, cron, name?, service_account?, kfp_version?, ...}`: upload and create a recurring run |

`kfp_version` (the panel's setting: the KFP server release deployed to) overrides the pipeline's own,
as `--kfp-version` does; a release kale_like does not model is a 400. Every verb is `@tornado.web.authenticated` (Jupyter's token or login cookie); POSTs go through
Jupyter's XSRF check. Paths are relative to the server's root and checked by `paths.py`.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from kale_like.surfaces.server import NAMESPACE
from kale_like.surfaces.server.kfp_hosts import checked_host, configured_hosts, lab_settings_dir
from kale_like.surfaces.server.paths import PathRefused, hidden_part, source_file
from kale_like.surfaces.server.runs import RunManager

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kale_like")
_WARMED = False


def _warm_up() -> None:
    """Import the converter ahead of the first analysis (in a worker thread, after start-up)."""
    import kale_like.frontends.notebook  # noqa: F401
    import kale_like.graph.checks  # noqa: F401
    import kale_like.surfaces.graph_layout as graph_layout

    graph_layout.layout({"body": [], "steps": [], "edges": []})  # loads igraph (0.4 s) before the first graph


def kfp_version(data: dict) -> str:
    """The request's `kfp_version` ("": the pipeline's own); a non-string is a 400."""
    value = data.get("kfp_version")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise tornado.web.HTTPError(400, f"'kfp_version' must be a string such as \"2.15\", not {value!r}")
    return value.strip()


def _checked_version(text: str) -> None:
    from kale_like.errors import KaleLikeError
    from kale_like.kfp_server import ServerVersion
    from kale_like.surfaces.server.service import PANEL_VERSION, ServiceError

    try:
        ServerVersion.parse(text, PANEL_VERSION)
    except KaleLikeError as error:
        raise ServiceError(400, f"error: {error.render()}") from None


class BaseHandler(APIHandler):
    """JSON in and out; known failures become a status and a message the panel shows."""

    @property
    def root_dir(self) -> str:
        return self.settings["server_root_dir"]

    @property
    def runs(self) -> RunManager:
        return self.settings["kale_like_runs"]

    def prepare(self):  # noqa: D102 - start the converter import on the first request
        global _WARMED
        result = super().prepare()
        if not _WARMED:
            _WARMED = True
            _POOL.submit(_warm_up)
        return result

    def body(self) -> dict:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "the request body is not JSON") from None
        except RecursionError:
            data = None
        if data is None or _depth(data) > MOST_BODY_DEPTH:
            raise tornado.web.HTTPError(400, f"the request body is nested more than {MOST_BODY_DEPTH} levels deep")
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, "the request body must be a JSON object")
        return data

    def reply(self, data: dict, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    async def blocking(self, function, *args, **kwargs):
        """Run slow work on the thread pool; the event loop keeps serving."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_POOL, lambda: function(*args, **kwargs))

    def source(self, relative) -> tuple:
        path = source_file(self.root_dir, relative)
        if not getattr(self.contents_manager, "allow_hidden", False) and any(
                part.startswith(".") for part in str(relative).replace("\\", "/").split("/") if part):
            raise PathRefused(403, f"'{relative}' is hidden (Jupyter's allow_hidden is off)")
        return path, relative

    def notebook_source(self, data: dict) -> tuple:
        """The request's source path and the unsaved `notebook` content the panel may send for it."""
        path, _ = self.source(data.get("path"))
        notebook = data.get("notebook")
        if notebook is not None and not isinstance(notebook, dict):
            raise PathRefused(400, "'notebook' must be the notebook's JSON")
        return path, notebook

    def output_folder(self, data: dict, source) -> str:
        """The request's `output_folder` (relative to the source's folder), refused when it is
        hidden while Jupyter's allow_hidden is off (like `source`)."""
        from kale_like.surfaces.server.service import output_paths

        folder = data.get("output_folder") or ""
        if not isinstance(folder, str):
            raise PathRefused(400, "'output_folder' must be a folder name")
        yaml_path, _ = output_paths(self.root_dir, source, folder)  # PathRefused outside the root
        hidden = hidden_part(self.root_dir, yaml_path.parent)
        if hidden and not getattr(self.contents_manager, "allow_hidden", False):
            raise PathRefused(403, f"the output folder '{folder}' is hidden ('{hidden}'), and Jupyter's allow_hidden "
                                   "is off; choose a folder whose names do not start with '.'")
        return folder

    async def guarded(self, action):
        from kale_like.surfaces.server.service import ServiceError

        try:
            await action()
        except PathRefused as error:
            self.reply({"ok": False, "message": error.message}, error.status)
        except ServiceError as error:
            self.reply(error.payload(), error.status)


class InfoHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self):
        from kale_like import __version__
        from kale_like.surfaces.server.service import environment_host

        self.reply({"ok": True, "version": __version__, "environment_kfp_host": environment_host()})


class AnalyzeHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import analyze

            data = self.body()
            path, notebook = self.notebook_source(data)
            started = time.perf_counter()
            result = await self.blocking(analyze, self.root_dir, path, notebook)
            self.reply({**result, "analysis_ms": round((time.perf_counter() - started) * 1000)})

        await self.guarded(action)


class SectionTagsHandler(BaseHandler):
    """The tags "Make steps from the headings" writes into the cells (notebook_sections.py decides them)."""

    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import ServiceError, section_tags_of

            data = self.body()
            path, notebook = self.notebook_source(data)
            one_step = data.get("one_step", False)
            if not isinstance(one_step, bool):
                raise ServiceError(400, f"'one_step' must be true or false, not {one_step!r}")
            self.reply(await self.blocking(section_tags_of, self.root_dir, path, notebook, one_step))

        await self.guarded(action)


class CompileHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import compile_source

            data = self.body()
            path, _ = self.source(data.get("path"))
            result = await self.blocking(compile_source, self.root_dir, path, self.output_folder(data, path),
                                         str(data.get("image") or ""), kfp_version(data))
            result.pop("graph", None)
            self.reply(result)

        await self.guarded(action)


class RunsHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self):
        source = self.get_query_argument("source", "")
        try:  # the runs of an earlier server too, from the notebook's run store
            path = self.source(source)[0] if source else None
        except PathRefused:
            path = None  # no such notebook (now), or not one to read: the runs this server holds
        if path is not None:
            await self.blocking(self.runs.load, path.parent / ".kale_like", source)
        runs = sorted((run for run in self.runs.runs.values() if not source or run.source == source),
                      key=lambda run: run.started, reverse=True)
        self.reply({"ok": True, "runs": [run.status() for run in runs]})

    @tornado.web.authenticated
    async def post(self):
        async def action():
            data = self.body()
            path, relative = self.source(data.get("path"))
            params = data.get("params") or {}
            if not isinstance(params, dict):
                self.reply({"ok": False, "message": "'params' must be an object"}, 400)
                return
            workers = data.get("max_workers")
            if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
                self.reply({"ok": False, "message": "'max_workers' must be a positive integer"}, 400)
                return
            version = kfp_version(data)
            if version:  # checked here so that a bad setting is a 400, not a failed run
                _checked_version(version)
            run = await self.runs.start(path, relative, {str(k): v for k, v in params.items()},
                                        str(data.get("image") or ""), workers, version)
            self.reply({"ok": True, **run.status()}, 202)

        await self.guarded(action)


class RunHandler(BaseHandler):
    def _run(self, run_id: str):
        run = self.runs.runs.get(run_id)
        if run is None:
            raise tornado.web.HTTPError(404, f"no run {run_id}")
        return run

    @tornado.web.authenticated
    async def get(self, run_id: str):
        self.reply({"ok": True, **self._run(run_id).status()})


class RunLogHandler(RunHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str):
        run = self._run(run_id)
        task = self.get_query_argument("task", "")
        try:
            text = run.log(task)
        except KeyError:
            raise tornado.web.HTTPError(404, f"run {run_id} has no log for '{task}' (yet)") from None
        self.reply({"ok": True, "task": task, "text": text})


class RunStopHandler(RunHandler):
    @tornado.web.authenticated
    async def post(self, run_id: str):
        run = self._run(run_id)
        await self.runs.stop(run)
        self.reply({"ok": True, **run.status()})


class RunOutputsHandler(RunHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str):
        run = self._run(run_id)
        task = self.get_query_argument("task", "")
        try:
            shown = await run.previews(task)
        except KeyError:
            raise tornado.web.HTTPError(404, f"run {run_id} has no outputs of '{task}' (yet: they are known "
                                             "once the run has ended)") from None
        self.reply({"ok": True, "task": task, "outputs": shown})


class RunFilesHandler(RunHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str):
        run = self._run(run_id)
        self.reply({"ok": True, "folder": run.folder_name(), "files": await self.blocking(run.files)})


class RunFileHandler(RunHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, name: str):
        run = self._run(run_id)
        try:
            path = run.file(name)
        except KeyError:
            raise tornado.web.HTTPError(404, f"run {run_id} has no file '{name}'") from None
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(path.name)}")
        with open(path, "rb") as stream:
            while chunk := await self.blocking(stream.read, 1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish(set_content_type="application/octet-stream")


class KfpStatusHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self):
        from kale_like.surfaces.server.service import kfp_status

        async def action():
            host = checked_host(self.get_query_argument("host", ""))
            if host and host not in configured_hosts(self.settings.get("kale_like_lab_settings")):
                raise PathRefused(403, f"'{host}' is not the Kubeflow Pipelines host in your settings: the status "
                                       "check connects only to that host (or the server's KF_PIPELINES_ENDPOINT); "
                                       "save it in Settings → kale_like pipelines first")
            namespace = self.get_query_argument("namespace", "")
            self.reply({"ok": True, **await self.blocking(kfp_status, host, namespace)})

        await self.guarded(action)


class KfpDeployHandler(BaseHandler):
    """Upload and Schedule: the same request checks and common fields, then their own call."""

    def deploy_request(self) -> tuple[dict, dict]:
        """(the body, the arguments upload_and_run and schedule share): source path, host, namespace,
        params, output folder, default image and service account (empty: the pipeline's own)."""
        from kale_like.surfaces.server.service import ServiceError

        data = self.body()
        path, _ = self.source(data.get("path"))
        host = checked_host(data.get("host") or "")
        if not host:
            raise ServiceError(400, "no KFP host given")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise ServiceError(400, "'params' must be an object")
        common = {"root": self.root_dir, "source": path, "host": host, "namespace": str(data.get("namespace") or ""),
                  "params": params, "output_folder": self.output_folder(data, path),
                  "image": str(data.get("image") or ""), "service_account": str(data.get("service_account") or ""),
                  "kfp_version": kfp_version(data)}
        return data, common


class UploadHandler(KfpDeployHandler):
    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import upload_and_run

            data, common = self.deploy_request()
            self.reply(await self.blocking(upload_and_run, run_name=str(data.get("run_name") or ""), **common))

        await self.guarded(action)


class CronPreviewHandler(BaseHandler):
    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import cron_preview

            self.reply(cron_preview(str(self.body().get("cron") or "")))

        await self.guarded(action)


class ScheduleHandler(KfpDeployHandler):
    @tornado.web.authenticated
    async def post(self):
        async def action():
            from kale_like.surfaces.server.service import schedule

            data, common = self.deploy_request()
            limit = data.get("max_concurrency") or 1
            if type(limit) is not int and not (isinstance(limit, str) and limit.strip().isdigit()):
                raise tornado.web.HTTPError(400, f"max_concurrency must be a whole number, not {limit!r}")
            self.reply(await self.blocking(
                schedule, cron=str(data.get("cron") or ""), name=str(data.get("name") or ""),
                max_concurrency=int(limit), enabled=bool(data.get("enabled", True)), **common))

        await self.guarded(action)


MOST_BODY_DEPTH = 64  # a notebook is about 6 levels deep; deeper bodies would reach Python's recursion limit


def _depth(value: object) -> int:
    """How deeply a parsed JSON value nests (counted without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MOST_BODY_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return deepest


ROUTES = [
    ("info", InfoHandler),
    ("analyze", AnalyzeHandler),
    ("section-tags", SectionTagsHandler),
    ("compile", CompileHandler),
    ("runs", RunsHandler),
    (r"runs/([0-9a-f]+)", RunHandler),
    (r"runs/([0-9a-f]+)/logs", RunLogHandler),
    (r"runs/([0-9a-f]+)/stop", RunStopHandler),
    (r"runs/([0-9a-f]+)/outputs", RunOutputsHandler),
    (r"runs/([0-9a-f]+)/files", RunFilesHandler),
    (r"runs/([0-9a-f]+)/files/(.+)", RunFileHandler),
    ("kfp/status", KfpStatusHandler),
    ("upload", UploadHandler),
    ("schedule/preview", CronPreviewHandler),
    ("schedule", ScheduleHandler),
]


def setup_handlers(server_app) -> None:
    web_app = server_app.web_app
    manager = RunManager(server_app.log)
    web_app.settings["kale_like_runs"] = manager
    web_app.settings["kale_like_lab_settings"] = lab_settings_dir(server_app)
    atexit.register(manager.stop_all)
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base, NAMESPACE, route) + "$", handler) for route, handler in ROUTES])
