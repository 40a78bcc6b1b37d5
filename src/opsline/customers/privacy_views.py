"""Data protection pages and CLI (POPIA): export a person's data, record an erasure request, and decide it (four eyes)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsline.core.exports import download_headers, file_name
from opsline.customers import privacy
from opsline.web.deps import DB, Now, Principal, require
from opsline.web.templating import render

router = APIRouter(include_in_schema=False)

Requester = Annotated[Principal, Depends(require("privacy.request"))]
Approver = Annotated[Principal, Depends(require("privacy.approve"))]


@router.get("/accounts/{account_id}/privacy/export.{fmt}")
def export(account_id: int, fmt: str, db: DB, now: Now, principal: Requester) -> Response:
    """The person's data as JSON or an xlsx workbook (the export itself is audited)."""
    name, media, body = privacy.export_person(db, account_id=account_id, fmt=fmt, now=now, actor=principal.actor)
    return Response(body, media_type=media, headers=download_headers(file_name(Path(name).stem, fmt)))


@router.post("/accounts/{account_id}/privacy/erasure", response_model=None)
def request_erasure(account_id: int, db: DB, now: Now, principal: Requester, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    privacy.request_erasure(db, account_id=account_id, reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{account_id}#panel-privacy", status_code=303)


@router.get("/privacy/requests", response_class=HTMLResponse)
def waiting(request: Request, db: DB, principal: Approver) -> HTMLResponse:
    return render(request, "privacy/requests.html", {"requests": privacy.waiting_requests(db)}, principal=principal)


@router.post("/privacy/requests/{request_id}/approve", response_model=None)
def approve(request_id: int, db: DB, now: Now, principal: Approver) -> RedirectResponse:
    req = privacy.get_request(db, request_id=request_id)
    privacy.approve_erasure(db, request_id=request_id, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{req.account_id}#panel-privacy", status_code=303)


@router.post("/privacy/requests/{request_id}/reject", response_model=None)
def reject(request_id: int, db: DB, now: Now, principal: Approver, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    privacy.decide_other(db, request_id=request_id, action="reject", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse("/privacy/requests", status_code=303)


@router.post("/privacy/requests/{request_id}/withdraw", response_model=None)
def withdraw(request_id: int, db: DB, now: Now, principal: Requester, reason: Annotated[str, Form(max_length=2000)] = "") -> RedirectResponse:
    req = privacy.get_request(db, request_id=request_id)
    privacy.decide_other(db, request_id=request_id, action="withdraw", reason=reason, now=now, actor=principal.actor)
    return RedirectResponse(f"/accounts/{req.account_id}#panel-privacy", status_code=303)


def register_cli(app: Any) -> None:
    """`opsline privacy export|erase|approve|reject`: the same services for the data protection officer's desk."""
    from rich.console import Console

    cli = typer.Typer(help="Data protection (POPIA): export a person's data; erasure requests with four eyes.", no_args_is_help=True)
    app.add_typer(cli, name="privacy")
    out, err = Console(), Console(stderr=True)

    def _run(fn):  # type: ignore[no-untyped-def]
        from opsline.config import get_settings
        from opsline.core.errors import OpslineError
        from opsline.db.session import make_engine, make_sessionmaker

        engine = make_engine(get_settings().database_url)
        try:
            with make_sessionmaker(engine).begin() as s:
                return fn(s, datetime.now(timezone.utc))
        except OpslineError as exc:
            err.print(f"[red]error:[/red] {exc.detail}" + (f" (field: {exc.field})" if getattr(exc, "field", None) else ""))
            raise typer.Exit(2) from exc
        finally:
            engine.dispose()

    def _staff(s, username: str):  # type: ignore[no-untyped-def]
        """The staff user acting (the person who asked or decides is named, never a shared system login)."""
        from sqlalchemy import select

        from opsline.core.errors import NotAuthenticated
        from opsline.core.events import Actor
        from opsline.users.models import User

        user = s.scalars(select(User).where(User.username == username, User.active.is_(True))).first()
        if user is None:
            raise NotAuthenticated(f"no active staff user '{username}'", field="by")
        return Actor(name=user.username, user_id=user.id, roles=frozenset(user.roles or []))

    def _account(s, number: str) -> int:  # type: ignore[no-untyped-def]
        from opsline.customers import service

        return service.resolve_account_id(s, key=number, field="account")

    def _check(actor, permission: str) -> None:  # type: ignore[no-untyped-def]
        from opsline.core.errors import PermissionDenied
        from opsline.users.roles import allowed

        if not allowed(actor.roles, permission):
            raise PermissionDenied(f"{actor.name}'s role does not allow '{permission}'", field="by")

    @cli.command("export")
    def export_cmd(account: Annotated[str, typer.Option(help="Account number of the person")],
                   by: Annotated[str, typer.Option(help="Your staff username (the export is audited)")],
                   fmt: Annotated[str, typer.Option("--format", help="json or xlsx")] = "json",
                   out_file: Annotated[str, typer.Option("--out", help="File to write (default: the export's own name)")] = "") -> None:
        """Write everything held about the person behind ACCOUNT (all their accounts) to a JSON or xlsx file."""
        def go(s, now):  # type: ignore[no-untyped-def]
            actor = _staff(s, by)
            _check(actor, "privacy.request")
            return privacy.export_person(s, account_id=_account(s, account), fmt=fmt, now=now, actor=actor)

        name, _media, body = _run(go)
        Path(out_file or name).write_bytes(body)
        out.print(f"[green]wrote[/green] {out_file or name} ({len(body):,} bytes)")

    @cli.command("erase")
    def erase_cmd(account: Annotated[str, typer.Option(help="Account number of the person")],
                  reason: Annotated[str, typer.Option(help="How the person asked (date, channel, reference)")],
                  by: Annotated[str, typer.Option(help="Your staff username (the requester; someone else approves)")]) -> None:
        """Record an erasure request (a second person approves it with `opsline privacy approve`)."""
        def go(s, now):  # type: ignore[no-untyped-def]
            actor = _staff(s, by)
            _check(actor, "privacy.request")
            return privacy.request_erasure(s, account_id=_account(s, account), reason=reason, now=now, actor=actor).id

        rid = _run(go)
        out.print(f"[green]erasure request {rid} recorded[/green]; a second person approves it: opsline privacy approve {rid} --by USER")

    @cli.command("approve")
    def approve_cmd(request_id: int, by: Annotated[str, typer.Option(help="Your staff username (not the requester)")]) -> None:
        """Approve an erasure request: the person's data is erased now."""
        def go(s, now):  # type: ignore[no-untyped-def]
            actor = _staff(s, by)
            return privacy.approve_erasure(s, request_id=request_id, now=now, actor=actor)

        counts = _run(go)
        out.print("[green]erased[/green]: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    @cli.command("reject")
    def reject_cmd(request_id: int, reason: Annotated[str, typer.Option(help="Why (the law's grounds to keep the data)")],
                   by: Annotated[str, typer.Option(help="Your staff username")]) -> None:
        """Reject an erasure request with a reason; nothing is erased."""
        _run(lambda s, now: privacy.decide_other(s, request_id=request_id, action="reject", reason=reason, now=now, actor=_staff(s, by)))
        out.print(f"request {request_id} rejected")
