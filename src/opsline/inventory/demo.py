"""Demo installed products and equipment, generated column-wise with numpy and bulk-loaded (COPY on PostgreSQL).

Every generated account gets one main product that matches its status (fibre at its site for retail, a B2B link for
business), some get a mobile line or a managed service, and a few show a relocation chain (old product ended the
day the new one started). Routers and FNO ONTs come with fibre and links; SIMs with mobile."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy import String, cast, func, select

from opsline.catalog.models import OfferingEquipment, Price, ProductOffering
from opsline.customers.models import Account, Site
from opsline.db.bulk import copy_rows, next_id, reset_sequence

PRODUCT_COLS = ("id", "account_id", "offering_id", "site_id", "state", "start_date", "end_date", "contract_months", "contract_end_date", "partner_code",
                "partner_line_ref", "order_id", "replaces_product_id", "msisdn", "state_reason", "created_at", "updated_at", "version")
EQUIPMENT_COLS = ("id", "account_id", "product_id", "kind", "model", "serial_number", "mac", "owner", "state", "offering_id", "created_at", "updated_at")
CHUNK = 200_000


def _catalog(conn: Any) -> dict[str, Any]:
    offs = conn.execute(select(ProductOffering.id, ProductOffering.code, ProductOffering.kind, ProductOffering.partner_code, ProductOffering.contract_months)
                        .where(ProductOffering.active.is_(True))).all()
    priced = {r[0] for r in conn.execute(select(Price.offering_id).where(Price.kind == "recurring", Price.valid_to.is_(None)))}
    eq = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(select(OfferingEquipment.offering_id, OfferingEquipment.equipment_offering_id, OfferingEquipment.owner, ProductOffering.name)
                                                          .join(ProductOffering, ProductOffering.id == OfferingEquipment.equipment_offering_id)
                                                          .where(ProductOffering.equipment_kind == "router"))}
    ont = conn.execute(select(ProductOffering.id, ProductOffering.name).where(ProductOffering.equipment_kind == "ont")).first()
    sim = conn.execute(select(ProductOffering.id, ProductOffering.name).where(ProductOffering.equipment_kind == "sim")).first()
    by = {"fibre": {}, "b2b_link": {}, "mobile": [], "service": []}  # type: dict[str, Any]
    for oid, code, kind, partner, months in offs:
        if oid not in priced:
            continue
        if kind in ("fibre", "b2b_link"):
            by[kind].setdefault(partner, []).append((oid, months))
        elif kind in ("mobile", "service"):
            by[kind].append((oid, code, months))
    info = {oid: (kind, partner, months) for oid, code, kind, partner, months in offs}
    return {"by": by, "info": info, "router": eq, "ont": ont, "sim": sim}


def load_products(ctx: Any) -> None:
    """Products and equipment for every generated account; set-based, chunked, scales to millions of accounts."""
    ids = np.asarray(ctx.account_ids, dtype=np.int64)
    if len(ids) == 0:
        return
    with ctx.engine.begin() as conn:
        cat = _catalog(conn)
        pid = next_id(conn, "product")
        eid = next_id(conn, "equipment")
    if not cat["by"]["fibre"]:
        return
    today = np.datetime64(ctx.now.date(), "D")
    rng = ctx.rng
    task = ctx.progress.add_task("products", total=len(ids))
    totals = {"products": 0, "active_products": 0, "equipment": 0}
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo: lo + CHUNK]
        with ctx.engine.begin() as conn:
            rows = conn.execute(
                select(Account.id, Account.kind, Account.status, func.substr(cast(Account.created_at, String), 1, 10), func.min(Site.id))
                .outerjoin(Site, Site.account_id == Account.id).where(Account.id.between(int(chunk[0]), int(chunk[-1])))
                .group_by(Account.id, Account.kind, Account.status, Account.created_at).order_by(Account.id)
            ).all()
            site_ids = [r[4] for r in rows if r[4] is not None]
            cov = {r[0]: r[1] for r in conn.execute(select(Site.id, cast(Site.fno_coverage, String)).where(Site.id.between(min(site_ids), max(site_ids))))} if site_ids else {}
            p_rows, e_rows, pid, eid, counts = _generate(rows, cov, cat, rng, today, ctx.now, pid, eid, conn.dialect.name)
            copy_rows(conn, "product", PRODUCT_COLS, p_rows)
            copy_rows(conn, "equipment", EQUIPMENT_COLS, e_rows)
        for k in totals:
            totals[k] += counts[k]
        ctx.progress.advance(task, len(chunk))
    with ctx.engine.begin() as conn:
        reset_sequence(conn, "product")
        reset_sequence(conn, "equipment")
    ctx.counts.update(totals)


_STATE = {"active": "active", "suspended": "suspended", "closed": "terminated"}


def _add_months(d: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Vectorised date + months (day clamped to 28, good enough for demo contract ends)."""
    m = d.astype("datetime64[M]") + months.astype("timedelta64[M]")
    day = np.minimum((d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64), 27)
    return m.astype("datetime64[D]") + day


def _datestr(d: np.ndarray, mask: np.ndarray | None = None) -> list[Any]:
    out = np.datetime_as_string(d, unit="D").astype(object)
    if mask is not None:
        out[~mask] = None
    return out.tolist()


def _generate(rows: list[Any], cov: dict[int, Any], cat: dict[str, Any], rng: np.random.Generator, today: np.datetime64, now: Any, pid: int, eid: int, dialect: str) -> tuple[Any, Any, int, int, dict[str, int]]:
    """Column-wise generation: offerings chosen per coverage group with numpy; rows zipped from columns at the end."""
    n = len(rows)
    acc = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    kind = np.array([r[1] for r in rows])
    status = np.array([r[2] for r in rows])
    created = np.array([r[3] for r in rows], dtype="datetime64[D]")
    site = np.fromiter((r[4] if r[4] is not None else -1 for r in rows), dtype=np.int64, count=n)
    cov_key = np.array([cov.get(int(x), "[]") if x >= 0 else "[]" for x in site], dtype=object)
    by, info = cat["by"], cat["info"]
    earliest = np.maximum(created + 1, today - 1095)
    span = np.maximum((today - earliest).astype(np.int64), 1)
    start = earliest + (rng.random(n) * span).astype(np.int64)
    pick = rng.random(n)
    extra = rng.random(n)
    moved_draw = rng.random(n)
    ended_days = rng.integers(1, 120, n)
    mobile = np.array([o for o, _c, _m in by["mobile"]], dtype=np.int64)
    services = np.array([o for o, _c, _m in by["service"]] or [mobile[0]], dtype=np.int64)
    fibre_partners = sorted(by["fibre"])
    width = min(len(v) for v in by["fibre"].values())
    fibre = np.array([[o for o, _m in sorted(by["fibre"][p])[:width]] for p in fibre_partners], dtype=np.int64)  # partner x option
    offering = mobile[(pick * 7919).astype(np.int64) % len(mobile)]
    old_offering = np.full(n, -1, dtype=np.int64)
    retail = kind == "retail"
    for key in set(cov_key.tolist()):
        in_group = cov_key == key
        covered = json.loads(key) if isinstance(key, str) else list(key or [])
        fp = [fibre_partners.index(p) for p in covered if p in by["fibre"]]
        if fp:
            m = in_group & retail & (pick < 0.88)
            pi = np.array(fp)[(pick[m] * 1000).astype(np.int64) % len(fp)]
            oi = (pick[m] * 7919).astype(np.int64) % width
            offering[m] = fibre[pi, oi]
            old_offering[m] = fibre[pi, (oi + width - 2) % width]
        bp = [p for p in covered if p in by["b2b_link"]] or sorted(by["b2b_link"])
        b2b_opts = np.array([o for p in bp for o, _m in by["b2b_link"][p]], dtype=np.int64)
        m = in_group & ~retail
        if len(b2b_opts):
            offering[m] = b2b_opts[(pick[m] * 7919).astype(np.int64) % len(b2b_opts)]
    state = np.array([_STATE.get(x, "active") for x in status.tolist()], dtype=object)
    terminated = state == "terminated"
    end = np.where(terminated, np.minimum(start + ended_days + 30, today), np.datetime64("NaT"))
    reason = np.where(terminated, "account closed", np.where(state == "suspended", "suspended for non-payment", None)).astype(object)
    reason[reason == "None"] = None
    moved = (moved_draw < 0.05) & (state == "active") & (old_offering >= 0) & ((today - start).astype(np.int64) > 90)
    cut = start + ((today - start).astype(np.int64) * 0.6).astype(np.int64)
    has_extra = (extra < 0.2) & ~terminated
    extra_off = np.where(retail, mobile[(extra * 1000).astype(np.int64) % len(mobile)], services[(extra * 1000).astype(np.int64) % len(services)])

    # assemble: replaced (old) products, main products, extra products
    n_old, n_extra = int(moved.sum()), int(has_extra.sum())
    old_ids = np.arange(pid, pid + n_old, dtype=np.int64)
    main_ids = np.arange(pid + n_old, pid + n_old + n, dtype=np.int64)
    extra_ids = np.arange(pid + n_old + n, pid + n_old + n + n_extra, dtype=np.int64)
    replaces = np.full(n, -1, dtype=np.int64)
    replaces[moved] = old_ids
    main_start = np.where(moved, cut, start)
    P = {
        "id": np.concatenate([old_ids, main_ids, extra_ids]),
        "account_id": np.concatenate([acc[moved], acc, acc[has_extra]]),
        "offering_id": np.concatenate([old_offering[moved], offering, extra_off[has_extra]]),
        "site_id": np.concatenate([site[moved], site, site[has_extra]]),
        "state": np.concatenate([np.full(n_old, "terminated", dtype=object), state, state[has_extra]]),
        "start": np.concatenate([start[moved], main_start, np.minimum(start + (extra * 100).astype(np.int64), today)[has_extra]]),
        "end": np.concatenate([cut[moved], end, np.full(n_extra, np.datetime64("NaT"), dtype="datetime64[D]")]),
        "replaces": np.concatenate([np.full(n_old, -1, dtype=np.int64), replaces, np.full(n_extra, -1, dtype=np.int64)]),
        "reason": np.concatenate([np.full(n_old, "upgraded", dtype=object), reason, reason[has_extra]]),
    }
    total = len(P["id"])
    off_kind = np.array([info[int(o)][0] for o in P["offering_id"].tolist()], dtype=object) if total else np.array([], dtype=object)
    off_partner = np.array([info[int(o)][1] for o in P["offering_id"].tolist()], dtype=object)
    months = np.fromiter((info[int(o)][2] for o in P["offering_id"].tolist()), dtype=np.int64, count=total)
    has_partner = off_partner != None  # noqa: E711
    contract_end = _add_months(P["start"], months)
    ids_list = P["id"].tolist()
    line = [f"{p[:3].upper()}-{i:09d}" if p else None for p, i in zip(off_partner.tolist(), ids_list)]
    msisdn = [f"+2760{i % 10_000_000:07d}" if k == "mobile" else None for k, i in zip(off_kind.tolist(), ids_list)]
    suffix = "+00" if dialect == "postgresql" else ""
    created_at = [f"{d} 08:00:00{suffix}" for d in np.datetime_as_string(P["start"] - 10, unit="D").tolist()]
    site_col = np.where(has_partner & (P["site_id"] >= 0), P["site_id"], -1)
    p_cols = [
        ids_list, P["account_id"].tolist(), P["offering_id"].tolist(), [x if x >= 0 else None for x in site_col.tolist()], P["state"].tolist(),
        _datestr(P["start"]), _datestr(P["end"], ~np.isnat(P["end"])), months.tolist(), _datestr(contract_end, months > 0), off_partner.tolist(), line,
        [None] * total, [x if x >= 0 else None for x in P["replaces"].tolist()], msisdn, P["reason"].tolist(), created_at, [now] * total, [1] * total,
    ]
    p_rows = zip(*p_cols)

    # equipment: router (per the offering's bundle) + FNO ONT for lines; SIM for mobile
    live = P["state"] != "terminated"
    recently_ended = ~live & ~np.isnat(P["end"]) & ((today - np.where(np.isnat(P["end"]), today, P["end"])).astype(np.int64) < 60)
    e_cols: list[list[Any]] = [[] for _ in EQUIPMENT_COLS]

    def add(mask: np.ndarray, kind_: str, model: str, serial_prefix: str, owner: Any, state_: Any, offering_: int, with_mac: bool) -> None:
        nonlocal eid
        k = int(mask.sum())
        if not k:
            return
        pids = P["id"][mask].tolist()
        cols = [
            list(range(eid, eid + k)), P["account_id"][mask].tolist(), pids, [kind_] * k, [model] * k, [f"{serial_prefix}{i:010d}" for i in pids],
            [f"D8:0D:17:{(i >> 16) & 255:02X}:{(i >> 8) & 255:02X}:{i & 255:02X}" for i in pids] if with_mac else [None] * k,
            owner[mask].tolist() if isinstance(owner, np.ndarray) else [owner] * k, state_[mask].tolist(), [offering_] * k, [now] * k, [now] * k,
        ]
        for dst, src in zip(e_cols, cols):
            dst.extend(src)
        eid += k

    lines = np.isin(off_kind, ["fibre", "b2b_link"])
    router_owner = np.array([cat["router"].get(int(o), (0, "", ""))[1] for o in P["offering_id"].tolist()], dtype=object)
    if cat["router"]:
        r_id, _owner, r_name = next(iter(cat["router"].values()))
        r_state = np.where(live | (router_owner == "customer_owned"), "installed", np.where(recently_ended, "awaiting_return", "returned")).astype(object)
        add(lines & (router_owner != ""), "router", r_name, "AXD", router_owner, r_state, r_id, True)
    if cat["ont"] is not None:
        add(lines, "ont", cat["ont"][1], "ONT", "fno", np.where(live, "installed", "returned").astype(object), cat["ont"][0], False)
    if cat["sim"] is not None:
        add(off_kind == "mobile", "sim", cat["sim"][1], "8927", "customer_owned", np.where(live, "installed", "returned").astype(object), cat["sim"][0], False)
    counts = {"products": total, "active_products": int((P["state"] == "active").sum()), "equipment": len(e_cols[0])}
    return p_rows, zip(*e_cols), pid + total, eid, counts
