"""Billing at the edges of service, set-based inside the bill run's stage:

- suspension (policy 'no_charge'): a recurring line is credited for the days the account is suspended within it
  (an open suspension runs to the end of the line);
- coverage of the previous period: for every product billed on last period's invoice, what it should have cost
  (the days it was really active, less suspended days under 'no_charge') is compared with what was billed for it
  (recurring and adjustment lines, less credit notes on them); the difference is a correction line on this bill.
  A termination or a relocation recorded after billing therefore gets its pro-rata credit from the end date, and
  the new line of a relocation is caught up from the move date by the catch-up rule: never twice, never a gap.

Both use the cumulative rounding of the recurring charge over the same basis (price and days of the billed period),
so a credit for [x, end) plus the charge kept for [start, x) is exactly what was billed.
"""

from __future__ import annotations

from opsline.billing.sql import STAGE, STAGE_COLS, TAX_BP, Dialect, half_up


def billed_end(dia: Dialect) -> tuple[str, str]:
    """(joins, expression) for the day a product stops being billed: its end date, plus the partner's configured
    relocation overlap when another product replaces it. The joins need `p` (product) and the shard's :lo/:hi."""
    joins = (" LEFT JOIN relocation_overlap ro ON ro.partner_code = p.partner_code"
             " LEFT JOIN (SELECT replaces_product_id AS rid FROM product WHERE replaces_product_id IS NOT NULL AND account_id >= :lo AND account_id < :hi"
             " GROUP BY replaces_product_id) rp ON rp.rid = p.id")
    expr = (f"(CASE WHEN p.end_date IS NOT NULL AND rp.rid IS NOT NULL AND ro.overlap_days > 0 THEN {dia.add_days('p.end_date', 'ro.overlap_days')} "
            "ELSE p.end_date END)")
    return joins, expr


def _piece(dia: Dialect, price: str, basis: str, days: str, a: str, b: str) -> str:
    """round(P * days(basis, b) / D) - round(P * days(basis, a) / D): the charge for [a, b) on that basis."""
    return f"({half_up(f'{price} * {dia.days(basis, b)}', days)} - {half_up(f'{price} * {dia.days(basis, a)}', days)})"


def suspension_credit_sql(dia: Dialect) -> str:
    """Credit lines for the suspended days inside each staged recurring line (used when suspension_policy is no_charge)."""
    xs = dia.greatest("s.period_start", "b.suspended_on")
    xe = dia.least("s.period_end", "COALESCE(b.resumed_on, s.period_end)")
    inner = f"""SELECT s.account_id, s.product_id, s.offering_id, s.price_id, s.description, s.unit_amount_minor, s.tax_bp, s.tax_rate_code,
               s.currency, s.basis_start, s.basis_days, {xs} AS xs, {xe} AS xe, b.suspended_on, b.resumed_on
        FROM {STAGE} s JOIN billing_suspension b ON b.account_id = s.account_id AND b.suspended_on < s.period_end
             AND (b.resumed_on IS NULL OR b.resumed_on > s.period_start)
        WHERE s.kind = 'recurring' AND s.basis_start IS NOT NULL"""
    amount = _piece(dia, "y.unit_amount_minor", "y.basis_start", "y.basis_days", "y.xs", "y.xe")
    expl = (f"'Suspended ' || {dia.date_text('y.xs')} || ' to ' || {dia.minus_day_text('y.xe')} || ': no recurring charge while suspended "
            f"(suspension policy); ' || CAST({dia.days('y.xs', 'y.xe')} AS TEXT) || ' days of ' || y.description || ' credited'")
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT y.account_id, y.product_id, y.offering_id, y.price_id, 'adjustment', 'Suspended: ' || y.description, y.xs, y.xe, 1, y.unit_amount_minor,
               -{amount}, y.tax_bp, y.tax_rate_code, y.currency, {expl}, NULL, NULL, y.basis_start, y.basis_days
        FROM ({inner}) y WHERE y.xe > y.xs"""


def coverage_sql(dia: Dialect, *, charge_suspended: bool) -> str:
    """One correction line per product whose billed amount for [pps, ps) differs from what its real active (and, under
    no_charge, unsuspended) days cost."""
    pps, ps = dia.d("pps"), dia.d("ps")
    billed = f"""SELECT l.account_id, l.product_id, MAX(CASE WHEN l.kind = 'recurring' THEN l.unit_amount_minor END) AS price,
               MAX(CASE WHEN l.kind = 'recurring' THEN l.tax_rate_code END) AS code, MAX(l.offering_id) AS offering_id,
               MAX(CASE WHEN l.kind = 'recurring' THEN l.price_id END) AS price_id, MAX(CASE WHEN l.kind = 'recurring' THEN l.description END) AS description,
               MIN(l.currency) AS currency, SUM(l.amount_minor) AS billed
        FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id
        WHERE i.account_id >= :lo AND i.account_id < :hi AND i.period_start = {pps} AND i.kind = 'cycle' AND i.number IS NOT NULL
          AND l.product_id IS NOT NULL AND l.kind IN ('recurring', 'adjustment') AND l.period_start >= {pps} AND l.period_start < {ps}
        GROUP BY l.account_id, l.product_id
        HAVING SUM(CASE WHEN l.kind = 'recurring' THEN 1 ELSE 0 END) > 0"""
    credited = f"""SELECT l.product_id, SUM(c.amount_minor) AS credited
        FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id JOIN credit_note_line c ON c.invoice_line_id = l.id
        WHERE i.account_id >= :lo AND i.account_id < :hi AND i.period_start = {pps} AND i.kind = 'cycle' AND i.number IS NOT NULL
          AND l.product_id IS NOT NULL AND l.kind IN ('recurring', 'adjustment') AND l.period_start >= {pps} AND l.period_start < {ps}
        GROUP BY l.product_id"""
    dd = dia.days(pps, ps)
    start = dia.greatest("p.start_date", pps)
    joins, bend = billed_end(dia)
    end = dia.least(f"COALESCE({bend}, {ps})", ps)
    x = f"""SELECT b.*, p.end_date, COALESCE(cr.credited, 0) AS credited, {TAX_BP} AS tax_bp, {dd} AS dd,
               {dia.days(pps, start)} AS a1, CASE WHEN {bend} IS NOT NULL AND {bend} <= {pps} THEN 0 ELSE {dia.days(pps, end)} END AS a2
        FROM ({billed}) b
        JOIN product p ON p.id = b.product_id AND NOT EXISTS (SELECT 1 FROM final_account_product fa WHERE fa.product_id = p.id){joins}
        JOIN account a ON a.id = b.account_id AND a.bill_cycle_day = :day
        JOIN tax_rate t ON t.code = b.code
        LEFT JOIN ({credited}) cr ON cr.product_id = b.product_id"""
    active = f"CASE WHEN x.a2 > x.a1 THEN {half_up('x.price * x.a2', 'x.dd')} - {half_up('x.price * x.a1', 'x.dd')} ELSE 0 END"
    susp = "0"
    if not charge_suspended:
        z1 = dia.greatest("x.a1", dia.days(pps, dia.greatest("bs.suspended_on", pps)))
        z2 = dia.least("x.a2", dia.days(pps, dia.least(f"COALESCE(bs.resumed_on, {ps})", ps)))
        susp = (f"(SELECT COALESCE(SUM(CASE WHEN {z2} > {z1} THEN {half_up(f'x.price * {z2}', 'x.dd')} - {half_up(f'x.price * {z1}', 'x.dd')} ELSE 0 END), 0) "
                f"FROM billing_suspension bs WHERE bs.account_id = x.account_id AND bs.suspended_on < {ps} "
                f"AND (bs.resumed_on IS NULL OR bs.resumed_on > {pps}))")
    y = f"SELECT x.*, {active} - {susp} AS expected, x.billed - x.credited AS net FROM ({x}) x"
    ended = f"y.end_date IS NOT NULL AND y.end_date < {ps}"  # explained by the end date (an overlap only shortens the credit)
    last = dia.minus_day_text(ps)
    expl = (f"CASE WHEN {ended} THEN 'Service ended ' || {dia.date_text('y.end_date')} || ': ' ELSE '' END"
            f" || y.description || ' ' || {dia.date_text(pps)} || ' to ' || {last} || ' was billed ' || CAST(y.net AS TEXT)"
            f" || ' (minor units, net of credits) for ' || CAST(CASE WHEN y.a2 > y.a1 THEN y.a2 - y.a1 ELSE 0 END AS TEXT) || ' active of ' || CAST(y.dd AS TEXT)"
            f" || ' days' || CASE WHEN y.expected <> ({active.replace('x.', 'y.')}) THEN ', less suspended days' ELSE '' END"
            f" || '; ' || CASE WHEN y.expected < y.net THEN 'credited' ELSE 'charged' END || ' the difference'")
    pstart = f"CASE WHEN {ended} THEN {dia.greatest('y.end_date', pps)} ELSE {pps} END"
    return f"""INSERT INTO {STAGE} ({STAGE_COLS})
        SELECT y.account_id, y.product_id, y.offering_id, y.price_id, 'adjustment',
               CASE WHEN {ended} THEN 'Credit: ' ELSE 'Correction: ' END || y.description, {pstart}, {ps}, 1, y.price,
               y.expected - y.net, y.tax_bp, y.code, y.currency, {expl}, NULL, NULL, {pps}, y.dd
        FROM ({y}) y WHERE y.expected <> y.net"""


def edge_sql(dia: Dialect, *, charge_suspended: bool) -> list[str]:
    """The edge statements, in order (after recurring, catch-up and discounts; before one-offs and usage)."""
    out = [] if charge_suspended else [suspension_credit_sql(dia)]
    out.append(coverage_sql(dia, charge_suspended=charge_suspended))
    return out
