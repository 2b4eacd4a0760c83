"""A large pipeline's checks, made on the machine's other core while its YAML is written.

Once kfp has built a pipeline's spec, three things remain that need only its documents: writing
the YAML (~2 s for 2,058 steps, `yaml_writer.py`), the shape of the Argo Workflow the KFP backend
will make of it (~0.8 s, `workflow_size.py`) and the structural check (~0.4 s, `validate.py`). For
a pipeline of `MANY` tasks or more, a child forked as the documents are ready makes the last two
while this process writes the YAML, and hands back their small results. Only where a fork copies
nothing of a user's: kale_like's own processes (the command line's, a child compiling for a
script: `kale_like/process_role.py`), with one thread, on a platform that forks. Anywhere else, and
if the child fails, they are made here, after the YAML, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import Connection

from kale_like.backends.kfp.validate import check_pipeline_documents
from kale_like.backends.kfp.workflow_size import WorkflowShape, workflow_shape
from kale_like.process_role import kale_like_owns_process

MANY = 500  # tasks from which the fork (a few ms, and the child's copy of what it touches) pays


class ChecksAside:
    """`start(documents)` once they are ready, `result(documents)` once the YAML is written."""

    def __init__(self) -> None:
        self.child: tuple[multiprocessing.process.BaseProcess, Connection] | None = None

    def start(self, documents: list) -> None:
        if not _worth_a_child(documents):
            return
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        try:
            process = context.Process(target=_checks_to, args=(documents, send), name="kale-like-checks", daemon=True)
            process.start()
        except OSError:  # no process to be had: made here afterwards
            receive.close()
            return
        finally:
            send.close()
        self.child = (process, receive)

    def result(self, documents: list) -> tuple[WorkflowShape, list[str]]:
        """The Workflow's shape and the structural check's problems."""
        answer = None
        if self.child is not None:
            process, receive = self.child
            self.child = None
            try:
                answer = receive.recv()
            except (EOFError, OSError):  # the child died: made here
                answer = None
            finally:
                receive.close()
                process.join()
        return answer if answer is not None else checks(documents)


def checks(documents: list) -> tuple[WorkflowShape, list[str]]:
    """The shape of the Workflow for the pipeline's documents, and the structural check's problems."""
    platform = next((d for d in documents[1:] if isinstance(d, dict) and "platforms" in d), None)
    return workflow_shape(documents[0], platform), check_pipeline_documents(documents)


def _worth_a_child(documents: list) -> bool:
    tasks = sum(len(component.get("dag", {}).get("tasks", {}))
                for component in [documents[0].get("root", {}), *documents[0].get("components", {}).values()])
    return (tasks >= MANY and kale_like_owns_process() and threading.active_count() == 1
            and (os.cpu_count() or 1) > 1 and "fork" in multiprocessing.get_all_start_methods()
            and not os.environ.get("KALE_LIKE_ONE_CORE"))


def _checks_to(documents: list, send: Connection) -> None:
    try:
        send.send(checks(documents))
    except Exception:  # noqa: BLE001 - nothing sent: the parent makes them itself, and reports
        pass
    finally:
        send.close()
