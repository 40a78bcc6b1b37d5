"""Shared builders for the payments tests: accounts with finalised invoices, statement files, and the ledger invariant."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from opsline.billing.invoicing.samples import make_account, make_finalised_invoice
from opsline.customers.models import Account


def account_with_invoices(s: Session, *, now: datetime, name: str, amounts: list[int], months_back: int | None = None) -> dict:
    """An account with one finalised invoice per amount (incl. VAT), oldest first, one month apart."""
    acc = make_account(s, now=now, name=name)
    invs = []
    n = len(amounts)
    for k, amt in enumerate(amounts):
        start = date(2026, 11 - (n - 1 - k), 1) if months_back is None else date(2026, months_back + k, 1)
        net = round(amt / 1.15)
        inv = make_finalised_invoice(s, account_id=acc, now=now - timedelta(days=30 * (n - 1 - k)), period_start=start,
                                     period_end=date(start.year + (start.month == 12), start.month % 12 + 1, 1), number=None,
                                     lines=[{"description": "Fibre 50/50", "amount_minor": net}])
        s.execute(text("UPDATE invoice SET total_minor = :t, tax_minor = :t - subtotal_minor WHERE id = :i"), {"t": amt, "i": inv})
        s.execute(text("UPDATE ledger_entry SET amount_minor = :t WHERE ref_type = 'invoice' AND ref_id = :i"), {"t": amt, "i": inv})
        invs.append(inv)
    number = s.get(Account, acc).account_number
    numbers = [s.execute(text("SELECT number FROM invoice WHERE id = :i"), {"i": i}).scalar_one() for i in invs]
    return {"id": acc, "number": number, "invoices": invs, "invoice_numbers": numbers, "name": name}


def assert_ledger_balances(s: Session) -> None:
    """Per account: sum of ledger entries = open invoice amounts − account credit (unapplied payments less refunds)."""
    rows = s.execute(text("""
        SELECT a.id,
          COALESCE((SELECT SUM(amount_minor) FROM ledger_entry l WHERE l.account_id = a.id), 0) AS ledger,
          COALESCE((SELECT SUM(i.total_minor
                 - COALESCE((SELECT SUM(c.total_minor) FROM credit_note c WHERE c.invoice_id = i.id), 0)
                 - COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.invoice_id = i.id AND x.state = 'allocated'), 0))
                 FROM invoice i WHERE i.account_id = a.id AND i.number IS NOT NULL), 0) AS open_items,
          COALESCE((SELECT SUM(x.amount_minor) FROM payment_allocation x WHERE x.account_id = a.id AND x.invoice_id IS NULL AND x.state = 'allocated'), 0)
            - COALESCE((SELECT SUM(r.amount_minor) FROM payment_refund r WHERE r.account_id = a.id AND r.state = 'approved'), 0) AS credit
        FROM account a""")).all()
    for r in rows:
        assert r.ledger == r.open_items - r.credit, f"account {r.id}: ledger {r.ledger} != open items {r.open_items} - credit {r.credit}"


def counts(s: Session) -> dict[str, int]:
    return {t: s.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in
            ("statement_file", "statement_line", "payment", "payment_allocation", "ledger_entry", "suspense_item", "payment_refund", "debit_order_result",
             "pending_charge")}


def mt940(*, lines: list[tuple[str, int, str, str]], opening: int = 1_000_000, closing: int | None = None, account: str = "250655/62012345678") -> bytes:
    """lines: (yymmdd, signed minor, bank ref, :86: details)."""
    body = [":20:STMT1", f":25:{account}", ":28C:00001/001", f":60F:C261120ZAR{opening // 100},{opening % 100:02d}"]
    total = opening
    for d, amt, ref, det in lines:
        sign = "C" if amt > 0 else "D"
        a = abs(amt)
        body.append(f":61:{d}{d[2:]}{sign}{a // 100},{a % 100:02d}NTRFNONREF//{ref}")
        body.append(f":86:{det}")
        total += amt
    c = total if closing is None else closing
    body.append(f":62F:C261123ZAR{c // 100},{c % 100:02d}")
    body.append("-")
    return ("\r\n".join(body) + "\r\n").encode()


def camt053(*, entries: list[tuple[str, int, str, str, str, str]], opening: int = 500_000, closing: int | None = None, version: str = "08") -> bytes:
    """entries: (yyyy-mm-dd, signed minor, ref, debtor name, debtor account, remittance)."""
    def amt(m: int) -> str:
        return f"{abs(m) // 100}.{abs(m) % 100:02d}"
    name_tag = (lambda n: f"<Pty><Nm>{n}</Nm></Pty>") if int(version) >= 8 else (lambda n: f"<Nm>{n}</Nm>")
    ntry = []
    for d, m, ref, nm, acct, remit in entries:
        ntry.append(f"""<Ntry><Amt Ccy="ZAR">{amt(m)}</Amt><CdtDbtInd>{'CRDT' if m > 0 else 'DBIT'}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
<BookgDt><Dt>{d}</Dt></BookgDt><ValDt><Dt>{d}</Dt></ValDt><AcctSvcrRef>{ref}</AcctSvcrRef>
<NtryDtls><TxDtls><RltdPties><Dbtr>{name_tag(nm)}</Dbtr><DbtrAcct><Id><Othr><Id>{acct}</Id></Othr></Id></DbtrAcct></RltdPties>
<RmtInf><Ustrd>{remit}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>""")
    c = opening + sum(e[1] for e in entries) if closing is None else closing
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}"><BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-23T06:00:00</CreDtTm></GrpHdr>
<Stmt><Id>S1</Id><CreDtTm>2026-11-23T06:00:00</CreDtTm><Acct><Id><Othr><Id>62012345678</Id></Othr></Id><Ccy>ZAR</Ccy></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="ZAR">{amt(opening)}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-20</Dt></Dt></Bal>
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="ZAR">{amt(c)}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-23</Dt></Dt></Bal>
{''.join(ntry)}
</Stmt></BkToCstmrStmt></Document>""".encode()
