"""The campaign report for auditors (CSV and PDF): every item with the evidence the reviewer saw, the decision,
who made it and when, and the range of the audit chain the campaign's period covers, verified."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from portal.audit import seal, verify_chain
from portal.csv_export import SafeWriter
from portal.models import AuditEvent
from reviews.models import ReviewCampaign, ReviewItem

COLUMNS = [
    "item",
    "kind",
    "access",
    "assigned to",
    "last sign-in",
    "last AWS activity",
    "grants in period",
    "last grant",
    "actions used",
    "actions allowed",
    "unused allowed actions",
    "recommendation",
    "decision",
    "decided by",
    "decided at",
    "by deadline",
    "escalated",
    "carried out",
    "comment",
]


@dataclass(frozen=True)
class AuditRange:
    """The audit events of the campaign's period: from its period start to its close (or now, while open)."""

    since: datetime
    until: datetime
    first_seq: int | None
    first_hash: str
    last_seq: int | None
    last_hash: str
    events: int
    chain_intact: bool
    broken_at: int | None

    @property
    def verdict(self) -> str:
        if self.first_seq is None:
            return "no events in the period"
        return "chain verified" if self.chain_intact else f"CHAIN BROKEN at event {self.broken_at}"


def audit_range(campaign: ReviewCampaign) -> AuditRange:
    until = campaign.closed_at or timezone.now()
    seal()  # the report covers every committed event of the period, the last seconds' included
    events = AuditEvent.objects.filter(at__gte=campaign.period_start, at__lte=until, seq__isnull=False)
    first = events.order_by("seq").values("seq", "hash").first()
    last = events.order_by("-seq").values("seq", "hash").first()
    if first is None or last is None:
        return AuditRange(campaign.period_start, until, None, "", None, "", 0, True, None)
    broken = verify_chain(first_seq=first["seq"], last_seq=last["seq"])
    return AuditRange(
        since=campaign.period_start,
        until=until,
        first_seq=first["seq"],
        first_hash=first["hash"] or "",
        last_seq=last["seq"],
        last_hash=last["hash"] or "",
        events=AuditEvent.objects.filter(seq__gte=first["seq"], seq__lte=last["seq"]).count(),
        chain_intact=broken is None,
        broken_at=broken,
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _row(item: ReviewItem) -> list[str]:
    unused = item.unused_actions()
    return [
        str(item.pk),
        item.get_kind_display(),
        item.label,
        item.get_assignee_display(),
        _when(item.last_sign_in_at),
        _when(item.last_activity_at),
        str(item.grants_in_period),
        _when(item.last_grant_at),
        " ".join(item.actions_used),
        str(item.actions_allowed_count),
        " ".join(unused[:50]) + (f" (+{len(unused) - 50} more)" if len(unused) > 50 else ""),
        item.recommendation,
        item.decision or "undecided",
        item.decided_by.get_username() if item.decided_by else ("deadline" if item.by_deadline else ""),
        _when(item.decided_at),
        "yes" if item.by_deadline else "no",
        "yes" if item.escalated else "no",
        _when(item.enacted_at) or (_when(item.follow_up_done_at) if item.decision == "narrow" else ""),
        item.comment,
    ]


def _items(campaign: ReviewCampaign) -> Iterator[ReviewItem]:
    return campaign.items.select_related("decided_by").order_by("id").iterator(chunk_size=2000)


def _header(campaign: ReviewCampaign, audit: AuditRange) -> list[tuple[str, str]]:
    return [
        ("campaign", f"#{campaign.pk} ({campaign.get_kind_display().lower()})"),
        ("partner", f"{campaign.partner.name} ({campaign.partner.slug})"),
        ("status", campaign.get_status_display()),
        ("reviewer", campaign.get_reviewer_display()),
        ("period", f"{_when(campaign.period_start)} to {_when(campaign.period_end)}"),
        ("started", _when(campaign.started_at)),
        ("deadline", f"{_when(campaign.deadline)} (undecided: {campaign.get_on_deadline_display().lower()})"),
        ("closed", _when(campaign.closed_at) or "open"),
        ("audit events", f"{audit.events} from {_when(audit.since)} to {_when(audit.until)}"),
        ("audit first", f"#{audit.first_seq} {audit.first_hash}" if audit.first_seq else ""),
        ("audit last", f"#{audit.last_seq} {audit.last_hash}" if audit.last_seq else ""),
        ("audit chain", audit.verdict),
    ]


def report_csv(campaign: ReviewCampaign) -> str:
    audit = audit_range(campaign)
    out = io.StringIO()
    writer = SafeWriter(out)
    for key, value in _header(campaign, audit):
        writer.writerow([key, value])
    writer.writerow([])
    writer.writerow(COLUMNS)
    for item in _items(campaign):
        writer.writerow(_row(item))
    return out.getvalue()


def _latin1(text: str) -> str:
    # The PDF's built-in fonts cover Latin-1 only.
    return text.replace("→", "->").replace("…", "...").encode("latin-1", "replace").decode("latin-1")


def report_pdf(campaign: ReviewCampaign) -> bytes:
    from fpdf import FPDF

    audit = audit_range(campaign)
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(_latin1(f"Porte access review #{campaign.pk} - {campaign.partner.name}"))
    pdf.set_author("Porte")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(
        0, 9, _latin1(f"Access review #{campaign.pk}: {campaign.partner.name}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", "", 9)
    for key, value in _header(campaign, audit):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(28, 5, _latin1(key))
        pdf.set_font(
            "Courier" if key.startswith("audit ") else "Helvetica", "", 8 if key.startswith("audit ") else 9
        )
        pdf.cell(0, 5, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 7)
    widths = (10, 24, 62, 24, 24, 14, 48, 16, 24, 31)
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=3.6, first_row_as_headings=True
    ) as table:
        table.row(
            [
                "Item",
                "Kind",
                "Access",
                "Last sign-in",
                "Last AWS activity",
                "Grants",
                "Recommendation",
                "Decision",
                "Decided by / at",
                "Comment",
            ]
        )
        for item in _items(campaign):
            r = _row(item)
            decided = f"{r[13]}\n{r[14]}".strip()
            table.row(
                [
                    _latin1(cell)
                    for cell in (
                        r[0],
                        r[1],
                        r[2],
                        r[4],
                        r[5],
                        f"{r[6]} (last {r[7] or '-'})",
                        f"{r[11]}; uses {len(item.actions_used)} of {r[9]} actions"
                        if item.role_id
                        else r[11],
                        r[12] + (" (escalated)" if item.escalated else ""),
                        decided,
                        r[18],
                    )
                ]
            )
    return bytes(pdf.output())
