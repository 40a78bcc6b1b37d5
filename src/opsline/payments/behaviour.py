"""Realistic payment behaviour and statement files (MT940, camt.053, bank CSV, debit-order results) generated from open
invoices, with the known truth of every line. Used by the demo step, the desk's sample downloads, tests and bench/matching.py.

Per segment: most pay on time by debit order or EFT with a reference; some late, short, combined for several invoices, with
typos or no reference, from a relative's account; some never."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence

import numpy as np

from opsline.payments.tokens import is_valid_account_number

FIRST = ("Thabo Lerato Johan Ayesha Priya Kagiso Lindiwe Themba Zanele Bongani Naledi Karabo Mpho Refilwe Sibusiso Hendrik Annelie Fatima "
         "Yusuf Michelle Craig Lauren").split()


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: int
    account_id: int
    account_number: str
    account_name: str
    invoice_number: str
    open_minor: int
    due_date: date
    segment: str


@dataclass
class Line:
    bank_reference: str
    value_date: date
    amount_minor: int
    payer_name: str
    payer_account: str
    reference: str
    channel: str  # eft | debit_order | noise
    behaviour: str
    truth_account: int | None  # None: nobody could know (suspense is right)
    truth_invoice: int | None  # set when the payer named the invoice
    collection_ref: str = ""
    account_number: str = ""
    invoice_number: str = ""


def payer_account(account_id: int) -> str:
    """The bank account an account's holder always pays from (stable, so the payer-account rule can learn it)."""
    return f"62{(account_id * 7919) % 10**9:09d}"


def _initial_name(name: str, rng: np.random.Generator) -> str:
    parts = name.split()
    if len(parts) < 2 or "(" in name or " CC" in name or "Inc" in name:
        return name.upper()
    style = rng.integers(0, 3)
    if style == 0:
        return f"{parts[0][0]} {' '.join(parts[1:])}".upper()
    if style == 1:
        return f"MR {parts[0][0]} {parts[-1]}".upper()
    return name.upper()


def _invoice_ref(number: str, rng: np.random.Generator) -> str:
    style = rng.integers(0, 5)
    if style == 0:
        return number
    if style == 1:
        return number.lower().replace("-", " ")
    if style == 2:
        return "PAYMENT " + number.replace("-", "")
    if style == 3:
        return number.replace("-", " - ") + " thanks"
    return "inv" + number[3:]


def _account_ref(number: str, rng: np.random.Generator) -> str:
    style = rng.integers(0, 4)
    if style == 0:
        return number
    if style == 1:
        return f"ACC {number[:4]}-{number[4:8]}-{number[8:]}"
    if style == 2:
        return f"a/c {number[:5]} {number[5:]}"
    return f"Internet {number}"


def _typo(number: str, rng: np.random.Generator) -> str:
    for _ in range(20):
        i = int(rng.integers(1, len(number)))
        d = str((int(number[i]) + int(rng.integers(1, 10))) % 10)
        cand = number[:i] + d + number[i + 1:]
        if not is_valid_account_number(cand):
            return cand
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def behave(invoices: Sequence[OpenInvoice], *, rng: np.random.Generator, day: date, seq_start: int = 1, debit_order_share: float = 0.40,
           noise: int = 0) -> list[Line]:
    """One line per invoice that gets paid (some never are), by behaviour drawn per segment. Business accounts rarely use debit
    orders and often pay several invoices in one transfer."""
    by_account: dict[int, list[OpenInvoice]] = {}
    for inv in invoices:
        by_account.setdefault(inv.account_id, []).append(inv)
    out: list[Line] = []
    seq = seq_start
    done: set[int] = set()
    for inv in invoices:
        if inv.invoice_id in done:
            continue
        seq += 1
        ref = f"FT{day:%y%m%d}{seq:08d}"
        business = inv.segment in ("sme", "enterprise", "wholesale")
        u = float(rng.random())
        shares = ([(0.05, "debit_order"), (0.45, "invoice_ref"), (0.15, "account_ref"), (0.20, "combined"), (0.04, "typo"), (0.03, "short"),
                   (0.03, "known_payer"), (0.01, "late"), (0.02, "relative"), (0.02, "never")] if business else
                  [(debit_order_share, "debit_order"), (0.20, "invoice_ref"), (0.15, "account_ref"), (0.04, "typo"), (0.04, "short"), (0.05, "known_payer"),
                   (0.03, "late"), (0.02, "combined"), (0.015, "no_reference"), (0.015, "relative"), (0.03, "never")])
        total = sum(s for s, _ in shares)
        u *= total
        kind = shares[-1][1]
        for s, k in shares:
            if u < s:
                kind = k
                break
            u -= s
        when = day - timedelta(days=int(rng.integers(0, 3)))
        name = _initial_name(inv.account_name, rng)
        pacct = payer_account(inv.account_id)
        if kind == "never":
            continue
        if kind == "debit_order":
            out.append(Line(ref, when, inv.open_minor, name, pacct, f"DO{inv.invoice_id}", "debit_order", kind, inv.account_id, inv.invoice_id,
                            collection_ref=f"DO-{day:%Y%m}-{inv.invoice_id}", account_number=inv.account_number, invoice_number=inv.invoice_number))
            continue
        amount, reference, t_acc, t_inv = inv.open_minor, "", inv.account_id, None
        if kind == "invoice_ref":
            reference, t_inv = _invoice_ref(inv.invoice_number, rng), inv.invoice_id
        elif kind in ("account_ref", "late"):
            reference = _account_ref(inv.account_number, rng)  # late: paid weeks after the due date, still with the reference
        elif kind == "short":
            amount = max(100, (inv.open_minor * int(rng.integers(40, 90)) // 100))
            reference = _account_ref(inv.account_number, rng)
        elif kind == "combined":
            siblings = by_account[inv.account_id]
            amount = sum(s.open_minor for s in siblings)
            done.update(s.invoice_id for s in siblings)
            reference = " ".join(s.invoice_number for s in siblings) if business and len(siblings) > 1 else _account_ref(inv.account_number, rng)
            t_inv = None  # several invoices, or an account reference: the payer named no single invoice
        elif kind == "typo":
            reference = _typo(inv.account_number, rng)
        elif kind == "known_payer":
            reference = ["INTERNET", "FIBRE", "MONTHLY", "DEBIT"][int(rng.integers(0, 4))]
        elif kind == "no_reference":
            reference, pacct = "", f"40{int(rng.integers(0, 10**8)):08d}"
        elif kind == "relative":
            name = f"{FIRST[int(rng.integers(0, len(FIRST)))]} {inv.account_name.split()[-1]}".upper()
            pacct, reference, t_acc = f"10{int(rng.integers(0, 10**8)):08d}", "for my son's internet", None
        done.add(inv.invoice_id)
        out.append(Line(ref, when, amount, name, pacct, reference, "eft", kind, t_acc, t_inv))
    for k in range(noise):
        seq += 1
        if k % 2:
            out.append(Line(f"CHG{day:%y%m%d}{seq:06d}", day, -int(rng.integers(500, 5000)), "", "", "Service fees", "noise", "bank_charge", None, None))
        else:
            out.append(Line(f"DEP{day:%y%m%d}{seq:06d}", day, int(rng.integers(1000, 500000)), "CASH DEPOSIT", "", f"BRANCH {int(rng.integers(100, 999))}",
                            "eft", "unknown_deposit", None, None))
    return out


# --- writers -------------------------------------------------------------------------------------------------------------
def _amt(minor: int, sep: str = ".") -> str:
    m = abs(minor)
    return f"{m // 100}{sep}{m % 100:02d}"


def mt940(lines: Iterable[Line], *, account: str, opening_minor: int, currency: str, statement_no: int = 1) -> bytes:
    items = [ln for ln in lines if ln.channel != "debit_order"]
    first = min((ln.value_date for ln in items), default=date.today())
    last = max((ln.value_date for ln in items), default=first)
    out = [f":20:STMT{last:%y%m%d}{statement_no:04d}", f":25:{account}", f":28C:{statement_no:05d}/001",
           f":60F:{'C' if opening_minor >= 0 else 'D'}{first:%y%m%d}{currency}{_amt(opening_minor, ',')}"]
    bal = opening_minor
    for ln in items:
        bal += ln.amount_minor
        out.append(f":61:{ln.value_date:%y%m%d}{ln.value_date:%m%d}{'C' if ln.amount_minor > 0 else 'D'}{_amt(ln.amount_minor, ',')}NTRFNONREF//{ln.bank_reference}")
        det = f"/NAME/{ln.payer_name}/ACCT/{ln.payer_account}/REMI/{ln.reference}" if ln.payer_name or ln.payer_account else ln.reference
        out.append(":86:" + det.replace("\n", " ")[:390])
    out.append(f":62F:{'C' if bal >= 0 else 'D'}{last:%y%m%d}{currency}{_amt(bal, ',')}")
    out.append("-")
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def camt053(lines: Iterable[Line], *, account: str, opening_minor: int, currency: str, version: str = "08") -> bytes:
    from xml.sax.saxutils import escape

    items = [ln for ln in lines if ln.channel != "debit_order"]
    last = max((ln.value_date for ln in items), default=date.today())
    first = min((ln.value_date for ln in items), default=last)
    nm = (lambda n: f"<Pty><Nm>{escape(n)}</Nm></Pty>") if int(version) >= 8 else (lambda n: f"<Nm>{escape(n)}</Nm>")
    ntry = []
    for ln in items:
        party = "Dbtr" if ln.amount_minor > 0 else "Cdtr"
        ntry.append(f"<Ntry><Amt Ccy=\"{currency}\">{_amt(ln.amount_minor)}</Amt><CdtDbtInd>{'CRDT' if ln.amount_minor > 0 else 'DBIT'}</CdtDbtInd>"
                    f"<Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{ln.value_date}</Dt></BookgDt><ValDt><Dt>{ln.value_date}</Dt></ValDt>"
                    f"<AcctSvcrRef>{ln.bank_reference}</AcctSvcrRef><NtryDtls><TxDtls><RltdPties><{party}>{nm(ln.payer_name or 'UNKNOWN')}</{party}>"
                    f"<{party}Acct><Id><Othr><Id>{ln.payer_account or '0'}</Id></Othr></Id></{party}Acct></RltdPties>"
                    f"<RmtInf><Ustrd>{escape(ln.reference)}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n")
    close = opening_minor + sum(ln.amount_minor for ln in items)
    return (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version}\"><BkToCstmrStmt>"
            f"<GrpHdr><MsgId>CAMT{last:%Y%m%d}</MsgId><CreDtTm>{last}T06:00:00</CreDtTm></GrpHdr>\n<Stmt><Id>S{last:%Y%m%d}</Id><CreDtTm>{last}T06:00:00</CreDtTm>"
            f"<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>{currency}</Ccy></Acct>\n"
            f"<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"{currency}\">{_amt(opening_minor)}</Amt><CdtDbtInd>{'CRDT' if opening_minor >= 0 else 'DBIT'}</CdtDbtInd><Dt><Dt>{first}</Dt></Dt></Bal>\n"
            f"<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"{currency}\">{_amt(close)}</Amt><CdtDbtInd>{'CRDT' if close >= 0 else 'DBIT'}</CdtDbtInd><Dt><Dt>{last}</Dt></Dt></Bal>\n"
            + "".join(ntry) + "</Stmt></BkToCstmrStmt></Document>\n").encode("utf-8")


def standard_bank_csv(lines: Iterable[Line]) -> bytes:
    """The 'standard-bank' mapping: semicolon, dd.mm.yyyy, decimal comma, credit/debit columns, a totals footer, cp1252."""
    rows = ["Valutadatum;Credit;Debit;Reference;Counterparty;Counterparty Account"]
    cr = dr = 0
    for ln in lines:
        if ln.channel == "debit_order":
            continue
        c, d = (_amt(ln.amount_minor, ","), "") if ln.amount_minor > 0 else ("", _amt(ln.amount_minor, ","))
        cr += max(ln.amount_minor, 0)
        dr += max(-ln.amount_minor, 0)
        rows.append(f"{ln.value_date:%d.%m.%Y};{c};{d};{ln.reference.replace(';', ' ')};{ln.payer_name.replace(';', ' ')};{ln.payer_account}")
    rows.append(f"Total;{_amt(cr, ',')};{_amt(dr, ',')};;;")
    return ("\r\n".join(rows) + "\r\n").encode("cp1252", errors="replace")


def fnb_csv(lines: Iterable[Line], *, opening_minor: int) -> bytes:
    """The 'fnb' mapping: three header rows, yyyy/mm/dd, signed amount, running balance, bank reference number."""
    rows = ["FNB Business Account Statement", "Account,62012345678", "Date,Amount,Balance,Description,Payer,Payer Account,Reference Number"]
    bal = opening_minor
    for ln in lines:
        if ln.channel == "debit_order":
            continue
        bal += ln.amount_minor
        rows.append(f"{ln.value_date:%Y/%m/%d},{'-' if ln.amount_minor < 0 else ''}{_amt(ln.amount_minor)},{_amt(bal)},"
                    f"\"{ln.reference}\",\"{ln.payer_name}\",{ln.payer_account},{ln.bank_reference}")
    return ("\n".join(rows) + "\n").encode("utf-8")


def debit_results(lines: Iterable[Line], *, unpaid: dict[str, str] | None = None) -> bytes:
    """Debit-order results: every collection paid, or, for the refs in `unpaid` ({collection_ref: reason code}), unpaid."""
    rows = ["collection_ref,account_number,invoice_number,amount,action_date,status,reason_code"]
    for ln in lines:
        if ln.channel != "debit_order":
            continue
        if unpaid is None:
            rows.append(f"{ln.collection_ref},{ln.account_number},{ln.invoice_number},{_amt(ln.amount_minor)},{ln.value_date},paid,")
        elif ln.collection_ref in unpaid:
            rows.append(f"{ln.collection_ref},{ln.account_number},{ln.invoice_number},{_amt(ln.amount_minor)},{ln.value_date + timedelta(days=3)},unpaid,"
                        f"{unpaid[ln.collection_ref]}")
    return ("\n".join(rows) + "\n").encode("utf-8")
