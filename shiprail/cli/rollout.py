"""Rollout commands: start, status, list, pause, resume, approve, abort, audit."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from shiprail.cli._console import err, out, print_json
from shiprail.cli._render import status_table
from shiprail.cli._signals import run
from shiprail.client import TASK_QUEUE, connect, connect_config
from shiprail.errors import BadInput, ExitCode, Unreachable
from shiprail.plan import RolloutPlan, load_plan
from shiprail.status import AuditEntry, Phase, RolloutStatus
from shiprail.workflows.inputs import ControlRequest, Refusal, RolloutInput
from shiprail.workflows.rollout import RolloutWorkflow, start_search_attributes

Address = Annotated[str | None, typer.Option(help="Temporal address (default: env config / 127.0.0.1:7233)")]
RolloutId = Annotated[str, typer.Argument(help="the rollout id printed by `start`", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]


def actor() -> str:
    return os.environ.get("SHIPRAIL_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def ui_link(rollout_id: str, address: str | None) -> str:
    return f"{ui_base(address)}/workflows/{rollout_id}"


def ui_base(address: str | None) -> str:
    """The web UI's namespace page: `SHIPRAIL_UI_URL`, or guessed from the address."""
    config = connect_config(address)
    namespace = config["namespace"]
    base = os.environ.get("SHIPRAIL_UI_URL")
    if not base:
        host, _, port = str(config["target_host"]).rpartition(":")
        if host in {"127.0.0.1", "localhost", "0.0.0.0"} and port.isdigit():
            base = f"http://{host}:{int(port) + 1000}"
        elif "tmprl.cloud" in host:
            base = "https://cloud.temporal.io"
        else:
            base = f"http://{host}:8080"
    return f"{base.rstrip('/')}/namespaces/{namespace}"


async def connect_cli(address: str | None) -> Client:
    return await connect(address, identity=actor())


async def _fetch_status(handle: WorkflowHandle[Any, Any]) -> RolloutStatus:
    try:
        status: RolloutStatus = await handle.query(RolloutWorkflow.status)
        return status
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise BadInput(f"no rollout with id {handle.id!r}") from None
        # A finished rollout with no worker to answer queries: its final status is in the memo.
        description = await handle.describe()
        final = await description.memo_value("final", None)
        if final is None:
            raise Unreachable(
                f"rollout {handle.id} cannot be queried ({exc.message}); is a worker running?"
            ) from None
        return RolloutStatus.model_validate(final)


async def _watch(handle: WorkflowHandle[Any, Any], link: str | None = None) -> RolloutStatus:
    status = await _fetch_status(handle)
    with Live(status_table(status, link), console=out, refresh_per_second=4, transient=False) as live:
        while not status.phase.terminal:
            await asyncio.sleep(1)
            status = await _fetch_status(handle)
            live.update(status_table(status, link))
    return status


async def _warn_without_worker(client: Client) -> None:
    try:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        if not response.pollers:
            err.print(
                f"[yellow]warning[/]: no worker polls task queue '{TASK_QUEUE}'; the rollout waits until one"
                " does (`shiprail worker` or `shiprail dev`)"
            )
    except RPCError:
        pass


async def start_rollout(
    client: Client,
    plan: RolloutPlan,
    rollout_id: str,
    *,
    wait_for_locks: bool = True,
    window_override: ControlRequest | None = None,
) -> WorkflowHandle[Any, RolloutStatus]:
    """Start the rollout workflow with its search attributes and web-UI summary."""
    ticket = f" [{plan.metadata.ticket}]" if plan.metadata.ticket else ""
    services = ", ".join(f"{s.name}@{s.version}" for s in plan.spec.services)
    try:
        return await client.start_workflow(
            RolloutWorkflow.run,
            RolloutInput(
                plan=plan,
                rollout_id=rollout_id,
                started_by=actor(),
                wait_for_locks=wait_for_locks,
                window_override=window_override,
            ),
            id=rollout_id,
            task_queue=TASK_QUEUE,
            search_attributes=start_search_attributes(plan),
            static_summary=f"rollout {plan.metadata.name}{ticket}: {services}"[:200],
            static_details=f"owner: {plan.metadata.owner or '–'}  \nticket: {plan.metadata.ticket or '–'}"
            f"  \nstarted by: {actor()}",
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.ALREADY_EXISTS:
            raise BadInput(f"a rollout with id {rollout_id!r} already exists") from None
        raise


def start(
    plan_path: Annotated[Path, typer.Argument(help="the plan file", show_default=False, metavar="PLAN")],
    wait: Annotated[
        bool, typer.Option("--wait", help="wait for the end; exit 0 only if it succeeded")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="show live progress until the end")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="fail at once if a service is locked by another rollout")
    ] = False,
    rollout_id: Annotated[
        str | None, typer.Option("--id", help="rollout id (default: plan name + UTC time)")
    ] = None,
    override_window: Annotated[
        bool, typer.Option("--override-window", help="steps do not wait for deploy windows (needs --reason)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why the windows are overridden (audited)")] = None,
    address: Address = None,
) -> None:
    """Start a rollout; print its id and web-UI link."""
    from shiprail.cli.keys import with_keyring

    plan = with_keyring(load_plan(plan_path), str(plan_path))
    rid = rollout_id or f"{plan.metadata.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if override_window and not reason:
        raise BadInput("--override-window needs --reason: the override is recorded in the audit log")
    if reason and not override_window:
        raise BadInput("--reason goes with --override-window")
    override = ControlRequest(actor=actor(), reason=reason or "") if override_window else None

    async def go() -> int:
        client = await connect_cli(address)
        handle = await start_rollout(client, plan, rid, wait_for_locks=not no_wait, window_override=override)
        link = ui_link(rid, address)
        out.print(f"started rollout [bold]{rid}[/]")
        out.print(f"web UI: {link}")
        await _warn_without_worker(client)
        if watch:
            status = await _watch(handle, link)
        elif wait:
            status = await handle.result()
        else:
            return ExitCode.OK
        out.print(f"rollout {rid} ended [bold]{status.phase.value}[/]: {status.reason}")
        return ExitCode.OK if status.phase is Phase.SUCCEEDED else ExitCode.ROLLOUT_FAILED

    raise typer.Exit(run(go()))


def status(
    rollout_id: RolloutId,
    watch: Annotated[bool, typer.Option("--watch", help="refresh until the rollout ends")] = False,
    as_json: AsJson = False,
    address: Address = None,
) -> None:
    """Per-service wave, step, weight, gate verdicts and the phase."""

    async def go() -> None:
        handle = (await connect_cli(address)).get_workflow_handle(rollout_id)
        if watch and not as_json:
            await _watch(handle, ui_link(rollout_id, address))
            return
        current = await _fetch_status(handle)
        if as_json:
            print_json(current.public())
        else:
            out.print(status_table(current, ui_link(rollout_id, address)))

    run(go())


def list_rollouts(
    phase: Annotated[Phase | None, typer.Option(help="only rollouts in this phase")] = None,
    service: Annotated[str | None, typer.Option(help="only rollouts that include this service")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    as_json: AsJson = False,
    address: Address = None,
) -> None:
    """Rollouts from Temporal visibility, newest first."""
    query = 'WorkflowType = "Rollout"'
    if phase:
        query += f' AND ShiprailPhase = "{phase.value}"'
    if service:
        query += f' AND ShiprailServices = "{service}"'

    async def go() -> None:
        client = await connect_cli(address)
        rows: list[dict[str, Any]] = []
        async for execution in client.list_workflows(query, limit=limit):
            attributes = execution.typed_search_attributes
            rows.append(
                {
                    "id": execution.id,
                    "plan": next((p.value for p in attributes if p.key.name == "ShiprailPlan"), None),
                    "phase": next((p.value for p in attributes if p.key.name == "ShiprailPhase"), None),
                    "services": next((p.value for p in attributes if p.key.name == "ShiprailServices"), []),
                    "started": execution.start_time.isoformat() if execution.start_time else None,
                    "status": execution.status.name.lower() if execution.status else None,
                }
            )
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        table = Table("id", "plan", "phase", "services", "started")
        for row in rows:
            table.add_row(
                row["id"],
                row["plan"] or "",
                row["phase"] or "",
                ", ".join(row["services"]),
                (row["started"] or "")[:19],
            )
        out.print(table if rows else "no rollouts match")

    run(go())


async def _control(rollout_id: str, address: str | None, update: Any, request: ControlRequest) -> str:
    from shiprail.authz import sign
    from shiprail.cli.keys import signing_key

    action = update.__name__
    key = signing_key()
    if key is not None:
        request = sign(key, rollout_id, action, request, datetime.now(UTC))
    handle = (await connect_cli(address)).get_workflow_handle(rollout_id)
    try:
        result: str = await handle.execute_update(update, request)
        return result
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(cause, "message", None) or str(cause or exc)
        if getattr(cause, "type", None) == "NotAuthorized":
            # A rejected update leaves nothing in history: report it, so the audit shows it.
            report = Refusal(
                action=action, actor=request.actor, reason=message.removeprefix("not authorized: ")
            )
            with contextlib.suppress(RPCError):
                await handle.signal(RolloutWorkflow.refused, report)
        raise BadInput(f"refused: {message}") from None
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        phase = await _final_phase(handle)
        if phase is None:
            raise BadInput(f"no rollout with id {rollout_id!r}") from None
        raise BadInput(f"refused: rollout {rollout_id} has already ended ({phase})") from None


async def _final_phase(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The phase of an ended rollout, or None when there is no such rollout."""
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    found = [p.value for p in description.typed_search_attributes if p.key.name == "ShiprailPhase"]
    status = description.status.name.lower() if description.status else "closed"
    return str(found[0]) if found else status


def _control_command(verb: str, update: Any, *, reason_required: bool) -> Any:
    def command(
        rollout_id: RolloutId,
        reason: Annotated[str | None, typer.Option(help="why (recorded in the audit log)")] = None,
        address: Address = None,
    ) -> None:
        if reason_required and not reason:
            raise BadInput(f"`{verb}` needs --reason: it is recorded in the audit log")
        answer = run(
            _control(rollout_id, address, update, ControlRequest(actor=actor(), reason=reason or ""))
        )
        out.print(answer)

    command.__doc__ = {
        "pause": "Hold at the current weight after the current bake; gates keep being evaluated.",
        "resume": "Continue a paused rollout.",
        "abort": "Roll back every touched service now.",
        "override": "Let a rollout that waits for a deploy window go on now (audited with --reason).",
    }[verb]
    return command


def approve(
    rollout_id: RolloutId,
    service: Annotated[
        str | None, typer.Option(help="approve only this service (default: all waiting)")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="note for the audit log")] = None,
    address: Address = None,
) -> None:
    """Approve the services waiting for approval (`approval: before_first_step | before_full`)."""
    request = ControlRequest(actor=actor(), reason=reason or "", service=service)
    out.print(run(_control(rollout_id, address, RolloutWorkflow.approve, request)))


def audit(
    rollout_id: Annotated[
        str, typer.Argument(help="the rollout id, or `verify` to check an exported file", show_default=False)
    ],
    file: Annotated[
        Path | None, typer.Argument(help="with `verify`: the --jsonl export", show_default=False)
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="one JSON object per line, hash-chained, ending in a signed head")
    ] = False,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 PEM key that signs the head (default: yours)")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="with `verify`: the signer's public key (PEM)")
    ] = None,
    address: Address = None,
) -> None:
    """Every decision, actuation, gate verdict and human action, with who, when and why.

    `audit verify FILE` checks an `--jsonl` export: exit 0 when intact, 1 naming the first bad
    record after any edit, insertion, deletion, reordering or truncation."""
    from shiprail.cli import audit as audit_files

    if rollout_id == "verify":
        if file is None:
            raise BadInput("`audit verify` needs the file to check: shiprail audit verify FILE")
        verdict = audit_files.verify_file(file, public_key)
        (out if verdict.intact else err).print(f"{file}: {verdict.message}", markup=False)
        raise typer.Exit(ExitCode.OK if verdict.intact else ExitCode.ROLLOUT_FAILED)
    if file is not None:
        raise BadInput(f"unexpected argument {str(file)!r}: `audit` takes one rollout id")

    async def go() -> list[AuditEntry]:
        handle = (await connect_cli(address)).get_workflow_handle(rollout_id)
        try:
            entries: list[AuditEntry] = await handle.query(RolloutWorkflow.audit)
            return entries
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise BadInput(f"no rollout with id {rollout_id!r}") from None
            raise Unreachable(
                f"cannot read the audit log of {rollout_id}: {exc.message} (is a worker running?)"
            ) from None

    if jsonl:
        signer = audit_files.signing_key(key)  # before the query: a bad key loses nothing
        entries = run(go())
        from shiprail.audit_chain import chain

        lines = chain(rollout_id, [e.model_dump(mode="json") for e in entries], signer)
        out.file.write("\n".join(lines) + "\n")
        return
    for entry in run(go()):
        who = f" [{entry.actor}]" if entry.actor else ""
        where = f" {entry.service}:" if entry.service else ""
        out.print(f"{entry.time:%Y-%m-%d %H:%M:%S} {entry.kind:<9}{where} {entry.message}{who}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("start")(start)
    app.command("status")(status)
    app.command("list")(list_rollouts)
    app.command("pause")(_control_command("pause", RolloutWorkflow.pause, reason_required=True))
    app.command("resume")(_control_command("resume", RolloutWorkflow.resume, reason_required=False))
    app.command("approve")(approve)
    app.command("abort")(_control_command("abort", RolloutWorkflow.abort, reason_required=True))
    app.command("override")(_control_command("override", RolloutWorkflow.override, reason_required=True))
    app.command("audit")(audit)
